/* `kycd archive` (see archive.h). Must never delete a row or drop a
 * partition (retention does that), nor die of a gzip that exits early. */
#include "cmd/archive.h"

#include <signal.h>
#include <stdio.h>

#include "base/buf.h"
#include "cmd/common.h"
#include "io/db_partitions.h"

int cmd_archive(int argc, char **argv, const cmd_ctl *ctl)
{
    cmd_flag f[] = {{"--before", 1, NULL}, {"--to", 1, NULL}};
    if (cmd_take_flags(&argc, argv, f, 2, NULL) != 0)
        return CMD_USAGE;
    if (f[0].value == NULL || f[1].value == NULL) {
        fprintf(stderr, "usage: kycd archive --before DATE --to DIR\n");
        return CMD_USAGE;
    }
    kycd_config cfg;
    db *d = NULL;
    cmd_needs needs = {.db = CMD_DB_READY};
    int rc = cmd_begin(&cfg, argc, argv, &needs, &d);
    if (rc != 0)
        return rc;
    /* A gzip that dies must fail the archive, not kill kycd. */
    signal(SIGPIPE, SIG_IGN);
    kerr err;
    kerr_clear(&err);
    kbuf out;
    kbuf_init(&out);
    int files = 0;
    if (db_archive(d, f[0].value, f[1].value, &out, &files, &err) != 0) {
        cmd_report("archive failed", &err);
        rc = CMD_FAILED;
    } else {
        printf("archived %d partitions before %s into %s (manifest.tsv, SHA256SUMS)\n", files,
               f[0].value, f[1].value);
        fputs(kbuf_str(&out), stdout);
    }
    kbuf_deinit(&out);
    db_free(d);
    config_deinit(&cfg);
    return rc;
}
