/* `kycd attention` (see attention.h). Must never clear a flag without
 * recording who did it and why (io/db_attention does both in one
 * statement). */
#include "cmd/attention.h"

#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "cmd/common.h"
#include "io/db_attention.h"

static const char usage[] =
    "usage: kycd attention list | retry USER [--reason TEXT] | retry --all [--reason TEXT]\n";

static int attention_list(db *d)
{
    kbuf out;
    kbuf_init(&out);
    kerr err;
    kerr_clear(&err);
    long long n = 0;
    int rc = db_attention_list(d, &out, &n, &err);
    if (rc == 0) {
        printf("users flagged for a person: %lld%s\n", n,
               n ? " (give one back to the reconciler: kycd attention retry USER)" : "");
        fputs(kbuf_str(&out), stdout);
    } else {
        cmd_report("attention list failed", &err);
    }
    kbuf_deinit(&out);
    return rc ? CMD_FAILED : CMD_OK;
}

static int attention_retry(db *d, const char *user, const char *why)
{
    char os_user[64], host[256];
    cmd_who(os_user, sizeof os_user, host, sizeof host);
    kerr err;
    kerr_clear(&err);
    long long n = 0;
    if (db_attention_retry(d, user, why, os_user[0] ? os_user : NULL, host[0] ? host : NULL, &n,
                           &err) != 0) {
        cmd_report("attention retry failed", &err);
        return CMD_FAILED;
    }
    if (user && n == 0)
        printf("%s is not flagged: nothing to give back (recorded)\n", user);
    else
        printf("gave %lld user%s back to the reconciler: checked with P100 at once (recorded "
               "in kyc.attention_actions)\n",
               n, n == 1 ? "" : "s");
    return CMD_OK;
}

int cmd_attention(int argc, char **argv, const cmd_ctl *ctl)
{
    (void)ctl;
    cmd_flag f[] = {{"--all", 0, NULL}, {"--reason", 1, NULL}};
    const char *what = NULL, *user = NULL;
    if (cmd_take_flags(&argc, argv, f, 2, &what) != 0)
        return CMD_USAGE;
    int retry = what && strcmp(what, "retry") == 0;
    if (retry && f[0].value == NULL && cmd_take_flags(&argc, argv, f, 0, &user) != 0)
        return CMD_USAGE;
    int list = what && strcmp(what, "list") == 0;
    if (!(list || retry) || (list && (f[0].value || f[1].value)) ||
        (retry && (f[0].value != NULL) == (user != NULL))) {
        fputs(usage, stderr);
        return CMD_USAGE;
    }
    kycd_config cfg;
    db *d = NULL;
    cmd_needs needs = {.db = CMD_DB_READY};
    int rc = cmd_begin(&cfg, argc, argv, &needs, &d);
    if (rc != 0)
        return rc;
    rc = list ? attention_list(d) : attention_retry(d, user, f[1].value);
    db_free(d);
    config_deinit(&cfg);
    return rc;
}
