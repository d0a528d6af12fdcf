/* `kycd retention` (see retention.h). Must never delete a row: it only
 * calls io/db_partitions, whose retention drops whole partitions. */
#include "cmd/retention.h"

#include <stdio.h>
#include <time.h>

#include "base/buf.h"
#include "base/log.h"
#include "cmd/common.h"
#include "io/db_partitions.h"

int cmd_retention(int argc, char **argv, const cmd_ctl *ctl)
{
    cmd_flag f[] = {{"--dry-run", 0, NULL}};
    if (cmd_take_flags(&argc, argv, f, 1, NULL) != 0)
        return CMD_USAGE;
    kycd_config cfg;
    if (cmd_load(&cfg, argc, argv) != 0)
        return CMD_USAGE;
    if (cfg.retention_ms == 0) {
        printf("retention is 0 (keep everything): nothing to drop\n");
        config_deinit(&cfg);
        return CMD_OK;
    }
    db *d = NULL;
    int rc = cmd_open_db(&cfg, CMD_DB_READY, &d);
    if (rc != 0) {
        config_deinit(&cfg);
        return rc;
    }
    time_t before = time(NULL) - (time_t)(cfg.retention_ms / 1000);
    struct tm tm;
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&before, &tm));
    kerr err;
    kerr_clear(&err);
    kbuf out;
    kbuf_init(&out);
    int dropped = 0, kept = 0;
    if (db_retention(d, when, f[0].value != NULL, &out, &dropped, &kept, &err) != 0) {
        cmd_report("retention failed", &err);
        rc = CMD_FAILED;
    } else {
        fputs(kbuf_str(&out), stdout);
        klog(KLOG_INFO, f[0].value ? "retention dry run" : "retention done",
             KLOG_STR("before", when), KLOG_INT(f[0].value ? "would_drop" : "dropped", dropped),
             KLOG_INT("kept", kept));
    }
    kbuf_deinit(&out);
    db_free(d);
    config_deinit(&cfg);
    return rc;
}
