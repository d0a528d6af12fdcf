/* `kycd changes` (see changes.h). Must never advance the slot past a
 * change before its line was written to standard output and flushed: the
 * slot's position is where the next run starts when given no cursor. */
#include "cmd/changes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "cmd/common.h"
#include "core/pgoutput.h"
#include "io/db_feed.h"

#define FEED_BATCH 2000              /* messages per read of the slot */
#define FEED_SPAN (64 * 1024 * 1024) /* bytes of WAL per read: decoded well within db_timeout */
#define FEED_WAIT_MS 1000            /* a follower looks again at least this often */
#define FEED_RELATIONS 16 /* relations announced in one run: the parent, its partitions */

typedef struct feed {
    int have_since;
    pgo_cursor since;
    pgo_msg begin; /* the current transaction's Begin */
    long long n;   /* its changes so far */
    /* The Relation messages seen (pgoutput announces the parent and the
     * partition), each decoded from its own copy: the names point into it. */
    pgo_msg rel[FEED_RELATIONS];
    unsigned char *relbuf[FEED_RELATIONS];
    int nrel;
    uint64_t done;     /* end of the last transaction whose changes are out */
    long long written; /* change lines written */
    long long skipped; /* changes the cursor covered */
    char cursor[48];   /* the last line's cursor */
    kbuf line;
    kerr err;
} feed;

static int feed_relation(feed *f, const unsigned char *msg, size_t len)
{
    unsigned char *copy = malloc(len);
    if (copy == NULL)
        return kerr_set(&f->err, KERR_NOMEM, "out of memory");
    memcpy(copy, msg, len);
    pgo_msg m;
    int rc = pgo_decode(copy, len, &m, &f->err);
    if (rc != 0) {
        free(copy);
        return rc;
    }
    int i = 0;
    while (i < f->nrel && f->rel[i].relid != m.relid)
        i++;
    if (i == FEED_RELATIONS) {
        free(copy);
        return kerr_set(&f->err, KERR_INVALID, "pgoutput: more than %d relations", i);
    }
    if (i == f->nrel)
        f->nrel++;
    free(f->relbuf[i]);
    f->relbuf[i] = copy;
    f->rel[i] = m;
    return 0;
}

static int feed_insert(feed *f, const pgo_msg *m)
{
    f->n++;
    if (f->have_since && pgo_cursor_covers(&f->since, f->begin.final_lsn, f->n)) {
        f->skipped++;
        return 0;
    }
    int i = 0;
    while (i < f->nrel && f->rel[i].relid != m->relid)
        i++;
    if (i == f->nrel)
        return kerr_set(&f->err, KERR_INVALID, "pgoutput: insert into an unannounced relation");
    kbuf_reset(&f->line);
    if (pgo_change_json(&f->line, &f->begin, &f->rel[i], m, f->n) != 0)
        return kerr_set(&f->err, KERR_NOMEM, "out of memory");
    if (fwrite(f->line.data, 1, f->line.len, stdout) != f->line.len)
        return kerr_set(&f->err, KERR_IO, "writing to standard output failed");
    char lsn[24];
    pgo_lsn_format(f->begin.final_lsn, lsn, sizeof lsn);
    snprintf(f->cursor, sizeof f->cursor, "%s:%lld", lsn, f->n);
    f->written++;
    return 0;
}

static int feed_msg(void *arg, const unsigned char *msg, size_t len)
{
    feed *f = arg;
    pgo_msg m;
    int rc = pgo_decode(msg, len, &m, &f->err);
    if (rc != 0)
        return rc;
    switch (m.kind) {
    case PGO_BEGIN:
        f->begin = m;
        f->n = 0;
        return 0;
    case PGO_RELATION:
        return feed_relation(f, msg, len);
    case PGO_INSERT:
        return feed_insert(f, &m);
    case PGO_COMMIT:
        f->done = m.end_lsn;
        return 0;
    default:
        return 0;
    }
}

/* Read the slot until it is drained (with follow: until killed). */
static int feed_run(feed *f, db *d, const char *slot, int follow, uint64_t confirmed)
{
    for (;;) {
        uint64_t upto = 0;
        int all = 0, more = 0;
        int rc = db_feed_peek(d, slot, confirmed, FEED_SPAN, FEED_BATCH, feed_msg, f, &upto, &all,
                              &more, &f->err);
        /* Whatever was written, written through before the slot moves. */
        if (fflush(stdout) != 0 && rc == 0)
            rc = kerr_set(&f->err, KERR_IO, "writing to standard output failed");
        if (rc != 0)
            return rc;
        /* Not cut: every commit before upto was read; the stretch after the
         * last one holds no change. */
        uint64_t to = all && upto > f->done ? upto : f->done;
        if (to > confirmed) {
            if ((rc = db_feed_advance(d, slot, to, &f->err)) != 0)
                return rc;
            confirmed = to;
        }
        if (!all || more)
            continue;
        if (!follow)
            return 0;
        if ((rc = db_feed_wait(d, FEED_WAIT_MS, &f->err)) != 0)
            return rc;
    }
}

int cmd_changes(int argc, char **argv, const cmd_ctl *ctl)
{
    (void)ctl;
    cmd_flag fl[] = {{"--since", 1, NULL}, {"--follow", 0, NULL}, {"--slot", 1, NULL}};
    if (cmd_take_flags(&argc, argv, fl, 3, NULL) != 0)
        return CMD_USAGE;
    feed f;
    memset(&f, 0, sizeof f);
    kerr_clear(&f.err);
    if (fl[0].value != NULL && pgo_cursor_parse(fl[0].value, &f.since) != 0) {
        fprintf(stderr, "kycd: --since: not a cursor (LSN:N, as printed in \"cursor\")\n");
        return CMD_USAGE;
    }
    f.have_since = fl[0].value != NULL;
    const char *slot = fl[2].value ? fl[2].value : "kycd_changes";
    kycd_config cfg;
    db *d = NULL;
    cmd_needs needs = {.db = CMD_DB_ANY};
    int rc = cmd_begin(&cfg, argc, argv, &needs, &d);
    if (rc != 0)
        return rc;
    kbuf_init(&f.line);
    uint64_t confirmed = 0;
    int created = 0;
    if (db_feed_slot(d, slot, &created, &confirmed, &f.err) != 0 ||
        (fl[1].value && db_feed_listen(d, &f.err) != 0)) {
        cmd_report("change feed not available", &f.err);
        rc = CMD_FAILED;
        goto out;
    }
    if (created)
        klog(KLOG_INFO, "replication slot created", KLOG_STR("slot", slot));
    if (feed_run(&f, d, slot, fl[1].value != NULL, confirmed) != 0) {
        cmd_report("reading the change feed failed", &f.err);
        rc = CMD_FAILED;
    }
    klog(KLOG_INFO, "changes read", KLOG_STR("slot", slot), KLOG_INT("written", f.written),
         KLOG_INT("skipped", f.skipped), KLOG_STR("cursor", f.cursor[0] ? f.cursor : "none"));
out:
    kbuf_deinit(&f.line);
    for (int i = 0; i < f.nrel; i++)
        free(f.relbuf[i]);
    db_free(d);
    config_deinit(&cfg);
    return rc;
}
