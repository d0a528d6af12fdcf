/* `kycd replay` (see replay.h). Must never decide what a delivery means:
 * core decides (kyc_replay_decide, payload parsing, and the state machine
 * inside io/db_ingest), io reads and writes. Two connections: one reads the
 * stored deliveries under one snapshot (what this run stores is not read
 * back), the other writes through the ordinary write path. */
#include "cmd/replay.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "cmd/common.h"
#include "core/payload.h"
#include "core/policy.h"
#include "io/db_ingest.h"
#include "io/db_quarantine.h"

typedef struct replay {
    db *w;
    db_ingest_opts policy;
    int dry_run;
    int examined, applied, repeats, still;
    long long *events;
    int nevents, cap;
} replay;

static void iso_time(long long us, char *buf, size_t cap)
{
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", gmtime_r(&s, &tm));
    snprintf(buf, cap, "%s.%06lldZ", day, us % 1000000);
}

static int note_event(replay *r, long long id)
{
    if (r->nevents == r->cap) {
        int cap = r->cap ? r->cap * 2 : 16;
        long long *e = realloc(r->events, (size_t)cap * sizeof *e);
        if (e == NULL)
            return KERR_NOMEM;
        r->events = e;
        r->cap = cap;
    }
    r->events[r->nevents++] = id;
    return 0;
}

/* One stored delivery: core's decision, then (not a dry run) the write. */
static int replay_row(void *ctx, const db_replay_row *row, kerr *err)
{
    replay *r = ctx;
    r->examined++;
    kyc_delivery d;
    memset(&d, 0, sizeof d);
    d.received_us = row->received_us; /* its own receipt time: a late webhook */
    kerr perr;
    kerr_clear(&perr);
    int parses = row->kind < KYC_KIND_COUNT &&
                 payload_parse_delivery(row->kind, kbuf_str(&row->body), row->body.len,
                                        row->remote_addr, row->request_id, &d, &perr) == 0;
    enum kyc_replay_action a = kyc_replay_decide(row->quarantined, row->stored != 0, parses);
    if (a == KYC_REPLAY_REPEAT)
        r->repeats++;
    if (!row->quarantined) /* events: counted, not listed */
        return 0;
    char at[48];
    iso_time(row->received_us, at, sizeof at);
    printf("quarantine id=%lld received_at=%s kind=%s user=%s ", row->id, at,
           kyc_kind_name(row->kind), row->external_user_id[0] ? row->external_user_id : "-");
    if (a == KYC_REPLAY_REPEAT) {
        printf("action=repeat event=%lld\n", row->stored);
        return 0;
    }
    if (a == KYC_REPLAY_STILL_QUARANTINED) {
        r->still++;
        printf("action=still_quarantined why=\"%s\"\n", perr.msg);
        return 0;
    }
    if (r->dry_run) {
        r->applied++;
        printf("action=would_apply (the state machine decides, as for a late webhook)\n");
        return 0;
    }
    db_ingest_result res;
    memset(&res, 0, sizeof res);
    int rc = db_ingest(r->w, &d, &r->policy, &res, err);
    if (rc == KERR_INVALID) { /* the database refuses it still: it stays */
        r->still++;
        printf("action=still_quarantined why=\"refused by the database: %s\"\n", err->msg);
        kerr_clear(err);
        return 0;
    }
    if (rc != 0)
        return rc;
    if (res.reason == KYC_R_ALREADY_STORED) { /* stored by a run that overlapped this one */
        r->repeats++;
        printf("action=repeat event=%lld\n", res.event_id);
        return 0;
    }
    r->applied++;
    printf("action=applied event=%lld outcome=%s reason=%s\n", res.event_id,
           kyc_outcome_name(res.outcome), kyc_reason_name(res.reason));
    return note_event(r, res.event_id) == 0 ? 0 : kerr_set(err, KERR_NOMEM, "out of memory");
}

int cmd_replay(int argc, char **argv, const cmd_ctl *ctl)
{
    (void)ctl;
    cmd_flag f[] = {
        {"--since", 1, NULL}, {"--until", 1, NULL}, {"--user", 1, NULL}, {"--dry-run", 0, NULL}};
    if (cmd_take_flags(&argc, argv, f, 4, NULL) != 0)
        return CMD_USAGE;
    if (f[0].value == NULL || f[0].value[0] == '\0') {
        fprintf(stderr, "kycd replay: --since TIME is required (e.g. 2026-12-01T00:00Z)\n");
        return CMD_USAGE;
    }
    kycd_config cfg;
    if (cmd_load(&cfg, argc, argv) != 0)
        return CMD_USAGE;
    replay r;
    memset(&r, 0, sizeof r);
    r.dry_run = f[3].value != NULL;
    r.policy = cmd_ingest_options(&cfg, NULL, 1, 0).policy;
    db *rd = NULL;
    int rc = cmd_open_db(&cfg, CMD_DB_READY, &rd);
    if (rc == 0)
        rc = cmd_open_db(&cfg, CMD_DB_READY, &r.w);
    if (rc != 0)
        goto out;
    char started[48];
    iso_time(clock_wall_us(), started, sizeof started);
    kerr err;
    kerr_clear(&err);
    int lrc = db_replay_each(rd, f[0].value, f[1].value, f[2].value, replay_row, &r, &err);
    char user[64], host[256];
    cmd_who(user, sizeof user, host, sizeof host);
    db_replay_run run = {.started_at = started,
                         .os_user = user[0] ? user : NULL,
                         .host = host[0] ? host : NULL,
                         .since = f[0].value,
                         .until = f[1].value,
                         .user = f[2].value,
                         .dry_run = r.dry_run,
                         .examined = r.examined,
                         .applied = r.applied,
                         .repeats = r.repeats,
                         .still_quarantined = r.still,
                         .event_ids = r.events,
                         .nevents = r.nevents};
    long long id = 0;
    kerr rerr;
    kerr_clear(&rerr);
    /* Recorded even when the run stopped half way: what it stored is. */
    int recrc =
        lrc == KERR_INVALID && r.examined == 0 ? 0 : db_replay_record(r.w, &run, &id, &rerr);
    if (lrc == KERR_INVALID && r.examined == 0) {
        fprintf(stderr, "kycd replay: %s (check --since and --until)\n", err.msg);
        rc = CMD_USAGE;
        goto out;
    }
    printf("replay run=%lld since=%s until=%s user=%s dry_run=%s examined=%d %s=%d repeats=%d "
           "still_quarantined=%d\n",
           id, f[0].value, f[1].value ? f[1].value : "-", f[2].value ? f[2].value : "-",
           r.dry_run ? "yes" : "no", r.examined, r.dry_run ? "would_apply" : "applied", r.applied,
           r.repeats, r.still);
    if (lrc != 0) {
        cmd_report("replay stopped", &err);
        rc = CMD_FAILED;
    }
    if (recrc != 0) {
        cmd_report("replay could not be recorded", &rerr);
        rc = CMD_FAILED;
    }
    klog(KLOG_INFO, r.dry_run ? "replay dry run" : "replay done", KLOG_INT("run", id),
         KLOG_INT("examined", r.examined), KLOG_INT("applied", r.applied),
         KLOG_INT("repeats", r.repeats), KLOG_INT("still_quarantined", r.still));
out:
    free(r.events);
    db_free(r.w);
    db_free(rd);
    config_deinit(&cfg);
    return rc;
}
