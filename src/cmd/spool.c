/* `kycd spool` (see spool.h). Must never: take the spool's lock from a
 * running kycd (status and drain need it, and fail when it is held), or
 * remove a dead letter the database has not stored. */
#include "cmd/spool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/ingest.h"
#include "base/buf.h"
#include "cmd/common.h"
#include "io/spool_dead.h"
#include "core/payload.h"

/* UTC time of a Unix ms, ISO 8601. */
static void iso_time(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A field of the --porcelain output: no tab or newline in it. */
static void one_field(char *s)
{
    for (; *s; s++)
        if (*s == '\t' || *s == '\n' || *s == '\r')
            *s = ' ';
}

/* kycd spool dead-letters [--porcelain]: what was kept aside, oldest
 * first, and why. Reads the directory only: works while kycd runs. */
static int list_dead_letters(const kycd_config *cfg, int porcelain)
{
    spool_dead *v = NULL;
    size_t n = 0;
    kerr err;
    kerr_clear(&err);
    int lrc = spool_dead_list(cfg->spool_dir, &v, &n, &err);
    if (lrc == KERR_NOTFOUND) { /* a spool no kycd has opened yet holds none */
        if (!porcelain)
            printf("dead letters in %s: 0 (no spool there yet)\n", cfg->spool_dir);
        return CMD_OK;
    }
    if (lrc != 0) {
        fprintf(stderr, "kycd: %s\n", err.msg);
        return CMD_FAILED;
    }
    if (!porcelain)
        printf("dead letters in %s: %zu%s\n", cfg->spool_dir, n,
               n ? " (replay one with: kycd spool replay FILE)" : "");
    kbuf rec;
    kbuf_init(&rec);
    for (size_t i = 0; i < n; i++) {
        char when[32], path[4352];
        iso_time(v[i].mtime_ms, when, sizeof when);
        snprintf(path, sizeof path, "%s/%s", cfg->spool_dir, v[i].file);
        kyc_delivery d;
        memset(&d, 0, sizeof d);
        spool_dead info;
        kerr derr;
        const char *kind = "unreadable";
        if (spool_dead_read(path, &rec, &info, &derr) == 0 &&
            kyc_delivery_decode(rec.data, rec.len, &d, &derr) == 0) {
            kind = kyc_kind_name(d.kind);
            if (payload_parse_delivery(d.kind, d.body, d.body_len, d.remote_addr, d.request_id, &d,
                                       &derr) != 0)
                d.external_user_id[0] = '\0';
        }
        char *reason = v[i].reason[0] ? v[i].reason : "(not recorded)";
        if (porcelain) {
            one_field(reason);
            one_field(d.external_user_id);
            printf("%s\t%s\t%s\t%s\t%s\t%lld\t%s\n", v[i].file, when, kind, d.request_id,
                   d.external_user_id, (long long)v[i].bytes, reason);
        } else {
            printf("%s  %s  kind=%s user=%s bytes=%lld\n    reason: %s\n", v[i].file, when, kind,
                   d.external_user_id[0] ? d.external_user_id : "?", (long long)v[i].bytes, reason);
        }
    }
    kbuf_deinit(&rec);
    free(v);
    return CMD_OK;
}

/* kycd spool replay FILE: one dead letter through the normal write path
 * (ingest_submit, without a spool: the answer is the database's). Stored
 * (or already stored): the dead letter is removed. Otherwise it stays and
 * the reason is printed. */
static int spool_replay(const kycd_config *cfg, const char *file)
{
    char path[4352];
    kbuf rec;
    kbuf_init(&rec);
    ingest *in = NULL;
    kerr err;
    kerr_clear(&err);
    spool_dead info;
    kyc_delivery d;
    memset(&d, 0, sizeof d);
    int rc = CMD_FAILED;
    if (spool_dead_locate(cfg->spool_dir, file, path, sizeof path, &err) != 0 ||
        spool_dead_read(path, &rec, &info, &err) != 0) {
        fprintf(stderr, "kycd: %s\n", err.msg);
        rc = err.code == KERR_INVALID ? CMD_USAGE : CMD_FAILED;
        goto out;
    }
    if (kyc_delivery_decode(rec.data, rec.len, &d, &err) != 0 ||
        payload_parse_delivery(d.kind, d.body, d.body_len, d.remote_addr, d.request_id, &d, &err) !=
            0) {
        fprintf(stderr, "kycd: %s cannot be replayed, its record is unreadable: %s\n", path,
                err.msg);
        goto out;
    }
    ingest_opts io = cmd_ingest_options(cfg, NULL, 1, 0);
    db_ingest_result res;
    if (ingest_new(&in, &io, &err) != 0 || ingest_submit(in, &d, &res, &err) != 0) {
        fprintf(stderr, "kycd: %s stays a dead letter: %s\n", path, err.msg);
        goto out;
    }
    if (spool_dead_remove(path, &err) != 0) {
        fprintf(stderr, "kycd: stored, but %s\n", err.msg);
        goto out;
    }
    printf("replayed %s (request %s, user %s): %s; the dead letter is removed\n", info.file,
           d.request_id, d.external_user_id, kyc_outcome_name(res.outcome));
    rc = CMD_OK;
out:
    ingest_free(in);
    kbuf_deinit(&rec);
    return rc;
}

int cmd_spool(int argc, char **argv, const cmd_ctl *ctl)
{
    static const char usage[] = "usage: kycd spool status|drain|dead-letters [--porcelain]|"
                                "replay FILE\n";
    const char *what = NULL, *file = NULL;
    cmd_flag f[] = {{"--porcelain", 0, NULL}};
    if (cmd_take_flags(&argc, argv, f, 1, &what) != 0)
        return CMD_USAGE;
    int dead = what && strcmp(what, "dead-letters") == 0;
    int replay = what && strcmp(what, "replay") == 0;
    if (replay && cmd_take_flags(&argc, argv, f, 0, &file) != 0)
        return CMD_USAGE;
    if (what == NULL ||
        (strcmp(what, "status") != 0 && strcmp(what, "drain") != 0 && !dead && !replay) ||
        (replay && file == NULL) || (f[0].value && !dead)) {
        fputs(usage, stderr);
        return CMD_USAGE;
    }
    kycd_config cfg;
    cmd_needs needs = {.db = CMD_DB_NONE}; /* drain and replay connect through the ingest */
    int rc = cmd_begin(&cfg, argc, argv, &needs, NULL);
    if (rc != 0)
        return rc;
    kerr err;
    kerr_clear(&err);
    spool *sp = NULL;
    ingest *in = NULL;
    rc = CMD_FAILED;
    if (cfg.spool_dir == NULL || *cfg.spool_dir == '\0') {
        fprintf(stderr, "kycd: no spool configured (KYCD_SPOOL_DIR)\n");
        rc = CMD_USAGE;
        goto out;
    }
    /* Dead letters are files beside the spool: no need for its lock. */
    if (dead) {
        rc = list_dead_letters(&cfg, f[0].value != NULL);
        goto out;
    }
    if (replay) {
        rc = spool_replay(&cfg, file);
        goto out;
    }
    if (cmd_open_spool(&cfg, &sp, &err) != 0) {
        /* A running kycd holds the spool's lock: it drains by itself. */
        fprintf(stderr, "kycd: %s\n", err.msg);
        if (err.code == KERR_STATE)
            fprintf(stderr, "      a running kycd owns this spool and drains it; its /readyz "
                            "shows the depth\n");
        goto out;
    }
    spool_stats st;
    spool_stats_get(sp, &st);
    printf("spool %s: %lld records, %lld bytes in %d segments, oldest %.1f s old\n", cfg.spool_dir,
           (long long)st.records, (long long)st.bytes, st.segments,
           (double)st.oldest_age_ms / 1000.0);
    if (strcmp(what, "status") == 0) {
        rc = CMD_OK;
        goto out;
    }
    ingest_opts io = cmd_ingest_options(&cfg, sp, 1, 0);
    long long n = 0;
    if (ingest_new(&in, &io, &err) != 0 || ingest_drain(in, &n, &err) != 0) {
        fprintf(stderr, "kycd: drain stopped after %lld records: %s\n", n, err.msg);
        goto out;
    }
    spool_stats_get(sp, &st);
    printf("replayed %lld records into the database; %lld left\n", n, (long long)st.records);
    rc = st.records == 0 ? CMD_OK : CMD_FAILED;
out:
    ingest_free(in);
    spool_close(sp);
    config_deinit(&cfg);
    return rc;
}
