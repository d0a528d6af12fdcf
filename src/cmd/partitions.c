/* `kycd partitions` (see partitions.h). Must never delete a row or drop a
 * partition: it only lists and creates, through io/db_partitions. */
#include "cmd/partitions.h"

#include <stdio.h>

#include "app/partitions.h"
#include "base/buf.h"
#include "cmd/common.h"
#include "io/db_partitions.h"

int cmd_partitions(int argc, char **argv, const cmd_ctl *ctl)
{
    cmd_flag f[] = {{"--create", 0, NULL}};
    if (cmd_take_flags(&argc, argv, f, 1, NULL) != 0)
        return CMD_USAGE;
    kycd_config cfg;
    db *d = NULL;
    cmd_needs needs = {.db = CMD_DB_READY};
    int rc = cmd_begin(&cfg, argc, argv, &needs, &d);
    if (rc != 0)
        return rc;
    kerr err;
    kerr_clear(&err);
    kbuf out;
    kbuf_init(&out);
    int created = 0;
    if (f[0].value && db_partitions_ensure(d, KYCD_PARTITIONS_AHEAD, &created, &err) != 0) {
        cmd_report("creating partitions failed", &err);
        rc = CMD_FAILED;
    } else if (db_partitions_report(d, &out, &err) != 0) {
        cmd_report("listing partitions failed", &err);
        rc = CMD_FAILED;
    } else {
        if (f[0].value)
            printf("created %d partitions (current month and %d ahead)\n", created,
                   KYCD_PARTITIONS_AHEAD);
        fputs(kbuf_str(&out), stdout);
    }
    kbuf_deinit(&out);
    db_free(d);
    config_deinit(&cfg);
    return rc;
}
