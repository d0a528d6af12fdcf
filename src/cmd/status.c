/* `kycd status` (see status.h). Must never: write to the database, or
 * print a secret; the stored report is printed whatever its schema. */
#include "cmd/status.h"

#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "cmd/common.h"
#include "io/db_report.h"

/* `status --live`: P100's current answer under the stored report. */
static int status_live(const kycd_config *cfg, const char *user)
{
    kerr err;
    kerr_clear(&err);
    int rc = CMD_OK;
    p100_opts po = cmd_p100_options(cfg);
    p100_client *client = NULL;
    p100_result res;
    p100_result_init(&res);
    kyc_status st;
    memset(&st, 0, sizeof st);
    if (p100_client_new(&client, &po, &err) != 0 ||
        p100_get_status(client, user, &res, &st, &err) != 0) {
        cmd_report("live status failed", &err);
        rc = CMD_FAILED;
    } else if (res.cls == P100_OK) {
        printf("\nP100 now says (%.0f ms): verificationStatus=%s attemptStatus=%s "
               "rejectionReason=%s\n",
               res.latency_ms, st.verification[0] ? st.verification : "-",
               st.attempt[0] ? st.attempt : "-", st.reason[0] ? st.reason : "-");
    } else {
        cmd_print_p100_error(&res);
        rc = CMD_FAILED;
    }
    p100_result_deinit(&res);
    p100_client_free(client);
    return rc;
}

int cmd_status(int argc, char **argv, const cmd_ctl *ctl)
{
    cmd_flag f[] = {{"--live", 0, NULL}};
    const char *user = NULL;
    if (cmd_take_flags(&argc, argv, f, 1, &user) != 0)
        return CMD_USAGE;
    if (user == NULL) {
        fprintf(stderr, "usage: kycd status EXTERNAL_USER_ID [--live]\n");
        return CMD_USAGE;
    }
    kycd_config cfg;
    db *d = NULL;
    /* Any schema: the report reads what is there. The API key is checked
     * after the stored report is printed, so that it is printed anyway. */
    cmd_needs needs = {.db = CMD_DB_ANY};
    int rc = cmd_begin(&cfg, argc, argv, &needs, &d);
    if (rc != 0)
        return rc;
    kerr err;
    kerr_clear(&err);
    kbuf out;
    kbuf_init(&out);
    int found = db_user_report(d, user, &out, &err);
    if (found == 0) {
        fputs(kbuf_str(&out), stdout);
    } else if (found == KERR_NOTFOUND) {
        printf("user %s: not known to kycd\n", user);
    } else {
        cmd_report("status failed", &err);
        rc = CMD_FAILED;
        goto out;
    }
    rc = found == 0 ? CMD_OK : CMD_UNKNOWN;
    if (f[0].value) {
        if (cmd_need_api_key(&cfg, "kycd status --live") != 0) {
            rc = CMD_USAGE;
            goto out;
        }
        int live = status_live(&cfg, user);
        if (live != CMD_OK)
            rc = live;
    }
out:
    kbuf_deinit(&out);
    db_free(d);
    config_deinit(&cfg);
    return rc;
}
