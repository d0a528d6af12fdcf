/* The write path for webhook deliveries (see db_ingest.h): one transaction
 * per delivery that appends it to the event log and carries out what core
 * decided (core/state.h for KYC, core/policy.h for the other kinds). Must
 * never decide a state itself, nor report success before COMMIT. */
#include "io/db_ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/policy.h"
#include "io/db_internal.h"

/* The KYC user's row, created by the first delivery (then locked with
 * db_lock_user). */
static const char SQL_KYC_ENSURE[] =
    "INSERT INTO kyc.verifications (external_user_id, source) VALUES ($1, 'webhook') "
    "ON CONFLICT (external_user_id) DO NOTHING";

/* Other kinds have no state row to lock: serialize per (kind, user). */
static const char SQL_OTHER_LOCK[] =
    "SELECT pg_advisory_xact_lock(hashtextextended($2 || ':' || $1, 0))";

/* The earliest identical delivery within the dedup window, and the current
 * POA status. It must be its own statement, run after the lock is held:
 * under READ COMMITTED each statement sees what was committed when it
 * started, so only a statement that starts after the lock sees the delivery
 * that held it. The window ends at now() (the transaction's start), not
 * clock_timestamp(): a stable bound lets PostgreSQL skip the partitions
 * of kyc.webhook_events wholly before the window (a volatile one made every
 * delivery probe every month's index). */
static const char SQL_PRIOR[] =
    "SELECT (SELECT e.id FROM kyc.webhook_events e WHERE e.external_user_id = $1 "
    "          AND e.body_sha256 = decode($2, 'hex') AND e.kind = $3 "
    "          AND e.received_at > coalesce($5::timestamptz, now()) "
    "              - make_interval(secs => $4::float8 / 1000) "
    "        ORDER BY e.id LIMIT 1), "
    "       coalesce((SELECT status FROM kyc.poa_statuses WHERE external_user_id = $1), '')";

/* A delivery replayed from the spool may already be stored (the drainer
 * crashed between COMMIT and its checkpoint): request ids are unique. */
static const char SQL_REPLAYED[] =
    "SELECT id, repeat_of FROM kyc.webhook_events WHERE request_id = $1";

/* Parameters shared by the write statements below:
 * $1 user, $2 kind, $3 body, $4 sha256 hex, $5 remote addr, $6 request id,
 * $7 repeat_of, $8 outcome, $9 reason, $10 unknown fields (text[]),
 * $11 received at (NULL: now; set for deliveries replayed from the spool). */
#define SQL_EVENT_CTE                                                                              \
    "WITH t AS (SELECT coalesce($11::timestamptz, clock_timestamp()) AS ts), "                     \
    "ev AS (INSERT INTO kyc.webhook_events (received_at, kind, external_user_id, body, "           \
    "  body_sha256, remote_addr, request_id, repeat_of, outcome, outcome_reason, "                 \
    "  unknown_fields) "                                                                           \
    "  SELECT t.ts, $2, $1, $3::jsonb, decode($4, 'hex'), $5::inet, $6, $7::bigint, $8, $9, "      \
    "  $10::text[] FROM t RETURNING id, received_at) "

/* A row created by this very delivery takes the delivery's time as its
 * first sight, so that first_seen_at, received_at and changed_at agree. */
#define SQL_FIRST_SEEN                                                                             \
    "  first_seen_at = CASE WHEN v.last_webhook_at IS NULL AND v.source = 'webhook' "              \
    "  AND v.verification_status IS NULL THEN ev.received_at ELSE v.first_seen_at END, "

/* APPLY: new state, history row; $12..$14 the new state. */
static const char SQL_KYC_APPLY[] = SQL_EVENT_CTE
    ", old AS (SELECT verification_status, attempt_status, rejection_reason "
    "  FROM kyc.verifications WHERE external_user_id = $1), "
    "up AS (UPDATE kyc.verifications v SET verification_status = $12, attempt_status = "
    "$13, " SQL_FIRST_SEEN
    "  rejection_reason = nullif($14, ''), source = 'webhook', updated_at = ev.received_at, "
    "  last_webhook_at = ev.received_at, last_event_id = ev.id "
    "  FROM ev WHERE v.external_user_id = $1), "
    "ch AS (INSERT INTO kyc.status_changes (external_user_id, changed_at, source, reason, "
    "  old_verification_status, new_verification_status, old_attempt_status, "
    "  new_attempt_status, old_rejection_reason, new_rejection_reason, event_id) "
    "  SELECT $1, ev.received_at, 'webhook', $9, old.verification_status, $12, "
    "  old.attempt_status, $13, old.rejection_reason, nullif($14, ''), ev.id FROM ev, old) "
    "SELECT id FROM ev";

/* HOLD: keep the state, owe an authoritative check now. */
static const char SQL_KYC_HOLD[] =
    SQL_EVENT_CTE ", up AS (UPDATE kyc.verifications v SET needs_check_reason = $9, " SQL_FIRST_SEEN
                  "  next_check_at = ev.received_at, last_webhook_at = ev.received_at "
                  "  FROM ev WHERE v.external_user_id = $1) "
                  "SELECT id FROM ev";

/* UNCHANGED: only note that P100 spoke. */
static const char SQL_KYC_UNCHANGED[] =
    SQL_EVENT_CTE ", up AS (UPDATE kyc.verifications v SET last_webhook_at = ev.received_at "
                  "  FROM ev WHERE v.external_user_id = $1) "
                  "SELECT id FROM ev";

static const char SQL_POA_APPLY[] = SQL_EVENT_CTE
    ", up AS (INSERT INTO kyc.poa_statuses (external_user_id, status, updated_at, last_event_id) "
    "  SELECT $1, $12, ev.received_at, ev.id FROM ev "
    "  ON CONFLICT (external_user_id) DO UPDATE SET status = EXCLUDED.status, "
    "  updated_at = EXCLUDED.updated_at, last_event_id = EXCLUDED.last_event_id) "
    "SELECT id FROM ev";

static const char SQL_EVENT_ONLY[] = SQL_EVENT_CTE "SELECT id FROM ev";

/* The ingest statements, prepared once per session. */
enum stmt {
    ST_KYC_ENSURE,
    ST_OTHER_LOCK,
    ST_PRIOR,
    ST_REPLAYED,
    ST_KYC_APPLY,
    ST_KYC_HOLD,
    ST_KYC_UNCHANGED,
    ST_POA_APPLY,
    ST_EVENT_ONLY,
    ST_COUNT
};

static const db_stmt STMTS[ST_COUNT] = {
    [ST_KYC_ENSURE] = {"kycd_kyc_ensure", SQL_KYC_ENSURE, 1},
    [ST_OTHER_LOCK] = {"kycd_other_lock", SQL_OTHER_LOCK, 2},
    [ST_PRIOR] = {"kycd_prior", SQL_PRIOR, 5},
    [ST_REPLAYED] = {"kycd_replayed", SQL_REPLAYED, 1},
    [ST_KYC_APPLY] = {"kycd_kyc_apply", SQL_KYC_APPLY, 14},
    [ST_KYC_HOLD] = {"kycd_kyc_hold", SQL_KYC_HOLD, 11},
    [ST_KYC_UNCHANGED] = {"kycd_kyc_unchanged", SQL_KYC_UNCHANGED, 11},
    [ST_POA_APPLY] = {"kycd_poa_apply", SQL_POA_APPLY, 12},
    [ST_EVENT_ONLY] = {"kycd_event_only", SQL_EVENT_ONLY, 11},
};

/* "a,b" -> "{a,b}" (field names are ours: letters only). */
static void text_array(const char *csv, char *out, size_t cap)
{
    snprintf(out, cap, "{%s}", csv);
}

/* One delivery of a batch: its parameters, what the reads found, what core
 * decided. */
typedef struct item {
    const kyc_delivery *dl;
    int idx;   /* in the caller's arrays (arrival order) */
    int round; /* how many earlier deliveries of the batch share its lock */
    char received[48];
    const char *received_p; /* NULL: now */
    char unknown[160];
    char *body; /* NUL-terminated copy */
    int stored; /* a replayed delivery found already stored */
    db_user_row cur;
    long long repeat_of;
    char poa[KYC_VALUE_MAX + 1];
    char repeat_buf[24];
    enum stmt write;
    const char *state_val[3];
    db_ingest_result res;
} item;

/* What each queued statement's result is for. */
enum expect { X_BEGIN, X_REPLAYED, X_ENSURE, X_LOCK, X_OTHER_LOCK, X_PRIOR, X_WRITE, X_COMMIT };

typedef struct expectation {
    enum expect what;
    item *it;
} expectation;

typedef struct batch {
    db *d;
    const db_ingest_opts *o;
    char window[24];
    item *items;
    item **order; /* by (round, user, kind, arrival): the order of the row locks */
    int n;
    expectation *exp;
    int nexp, cap;
    int conflict; /* the failure was a deadlock or serialization failure: retry */
} batch;

static void item_init(item *it, const kyc_delivery *dl, int idx)
{
    memset(it, 0, sizeof *it);
    it->dl = dl;
    it->idx = idx;
    it->cur.age_ms = -1;
    text_array(dl->unknown_fields, it->unknown, sizeof it->unknown);
    /* The receipt time of a delivery replayed from the spool; NULL: now. */
    if (dl->received_us > 0) {
        time_t secs = (time_t)(dl->received_us / 1000000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        snprintf(it->received, sizeof it->received, "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (long long)(dl->received_us % 1000000));
        it->received_p = it->received;
    }
}

/* Same lock: the same KYC user row, or the same (kind, user) advisory lock. */
static int same_lock(const kyc_delivery *a, const kyc_delivery *b)
{
    int ka = a->kind == KYC_KIND_KYC_STATUS, kb = b->kind == KYC_KIND_KYC_STATUS;
    if (ka != kb || (!ka && a->kind != b->kind))
        return 0;
    return strcmp(a->external_user_id, b->external_user_id) == 0;
}

static int order_cmp(const void *pa, const void *pb)
{
    const item *a = *(item *const *)pa, *b = *(item *const *)pb;
    if (a->round != b->round)
        return a->round < b->round ? -1 : 1;
    int c = strcmp(a->dl->external_user_id, b->dl->external_user_id);
    if (c != 0)
        return c;
    if (a->dl->kind != b->dl->kind)
        return a->dl->kind < b->dl->kind ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int expect_push(batch *b, enum expect what, item *it, int sent_rc, kerr *err)
{
    if (sent_rc != 0)
        return db_fail(b->d, NULL, "queueing a statement", err);
    if (b->nexp == b->cap)
        return kerr_set(err, KERR_STATE, "pipeline: more statements than planned");
    b->exp[b->nexp].what = what;
    b->exp[b->nexp].it = it;
    b->nexp++;
    return 0;
}

static int send_plain(batch *b, enum expect what, const char *sql, kerr *err)
{
    int ok = PQsendQueryParams(b->d->conn, sql, 0, NULL, NULL, NULL, NULL, 0) == 1;
    return expect_push(b, what, NULL, ok ? 0 : KERR_DB, err);
}

static int send_stmt(batch *b, enum expect what, item *it, enum stmt st, const char *const *vals,
                     kerr *err)
{
    return expect_push(b, what, it, db_send(b->d, &STMTS[st], vals), err);
}

/* The reads of one delivery: was it stored already (replays), take its
 * lock, then look for repeats (after the lock: see SQL_PRIOR). */
static int send_reads(batch *b, item *it, kerr *err)
{
    const kyc_delivery *dl = it->dl;
    const char *kind = kyc_kind_name(dl->kind);
    int rc;
    if (dl->received_us > 0 && dl->request_id[0]) {
        const char *pr[] = {dl->request_id};
        if ((rc = send_stmt(b, X_REPLAYED, it, ST_REPLAYED, pr, err)) != 0)
            return rc;
    }
    const char *p1[] = {dl->external_user_id, kind};
    if (dl->kind == KYC_KIND_KYC_STATUS) {
        if ((rc = send_stmt(b, X_ENSURE, it, ST_KYC_ENSURE, p1, err)) != 0)
            return rc;
        rc = db_lock_user_send(b->d, dl->external_user_id, it->received_p);
        if ((rc = expect_push(b, X_LOCK, it, rc, err)) != 0)
            return rc;
    } else if ((rc = send_stmt(b, X_OTHER_LOCK, it, ST_OTHER_LOCK, p1, err)) != 0) {
        return rc;
    }
    const char *p4[] = {dl->external_user_id, dl->body_sha256, kind, b->window, it->received_p};
    return send_stmt(b, X_PRIOR, it, ST_PRIOR, p4, err);
}

/* Ask core what the delivery means, given what the reads found. */
static void decide(batch *b, item *it)
{
    const kyc_delivery *dl = it->dl;
    it->state_val[0] = it->state_val[1] = it->state_val[2] = NULL;
    if (dl->kind == KYC_KIND_KYC_STATUS) {
        kyc_transition t = {
            .current = &it->cur.status,
            .current_age_ms = it->cur.age_ms,
            .incoming = &dl->status,
            .source = KYC_SRC_WEBHOOK,
            .is_repeat = it->repeat_of != 0,
            .reorder_window_ms = b->o->reorder_window_ms,
        };
        kyc_verdict v = kyc_state_decide(&t);
        it->res.outcome = (enum kyc_outcome)v.decision;
        it->res.reason = v.reason;
        if (v.decision == KYC_APPLY) {
            it->write = ST_KYC_APPLY;
            it->state_val[0] = dl->status.verification;
            it->state_val[1] = dl->status.attempt;
            it->state_val[2] = dl->status.reason;
        } else if (v.decision == KYC_HOLD) {
            it->write = ST_KYC_HOLD;
        } else {
            it->write = ST_KYC_UNCHANGED;
        }
    } else {
        kyc_other_verdict v =
            kyc_other_decide(dl->kind, it->repeat_of != 0, it->poa, dl->other_status);
        it->res.outcome = v.outcome;
        it->res.reason = v.reason;
        it->write = ST_EVENT_ONLY;
        if (v.outcome == KYC_OUTCOME_APPLIED) {
            it->write = ST_POA_APPLY;
            it->state_val[0] = dl->other_status;
        }
    }
    it->res.repeat_of = it->repeat_of;
}

static int send_write(batch *b, item *it, kerr *err)
{
    const kyc_delivery *dl = it->dl;
    if (it->repeat_of)
        snprintf(it->repeat_buf, sizeof it->repeat_buf, "%lld", it->repeat_of);
    /* The body goes as text: it is valid UTF-8 JSON without NUL bytes
     * (core/payload.c), so the jsonb cast cannot misread it. */
    it->body = malloc(dl->body_len + 1);
    if (it->body == NULL)
        return kerr_set(err, KERR_NOMEM, "out of memory");
    memcpy(it->body, dl->body, dl->body_len);
    it->body[dl->body_len] = '\0';
    const char *pw[14] = {
        dl->external_user_id,
        kyc_kind_name(dl->kind),
        it->body,
        dl->body_sha256,
        dl->remote_addr[0] ? dl->remote_addr : NULL,
        dl->request_id[0] ? dl->request_id : NULL,
        it->repeat_of ? it->repeat_buf : NULL,
        kyc_outcome_name(it->res.outcome),
        kyc_reason_name(it->res.reason),
        it->unknown,
        it->received_p,
        it->state_val[0],
        it->state_val[1],
        it->state_val[2],
    };
    return send_stmt(b, X_WRITE, it, it->write, pw, err);
}

/* Map one statement's result into its delivery. */
static int take(batch *b, const expectation *x, PGresult *r, kerr *err)
{
    ExecStatusType st = PQresultStatus(r);
    item *it = x->it;
    switch (x->what) {
    case X_BEGIN:
    case X_COMMIT:
    case X_ENSURE:
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
            return db_fail(b->d, r,
                           x->what == X_BEGIN    ? "begin"
                           : x->what == X_COMMIT ? "commit"
                                                 : "creating user row",
                           err);
        return 0;
    case X_OTHER_LOCK:
        if (st != PGRES_TUPLES_OK)
            return db_fail(b->d, r, "locking user", err);
        return 0;
    case X_LOCK: {
        int rc = db_lock_user_result(b->d, r, &it->cur, "locking user row", err);
        /* The row was created in this transaction: if it is gone, the
         * database misbehaves (retryable), the data is not at fault. */
        if (rc == KERR_NOTFOUND)
            rc = kerr_set(err, KERR_DB, "user row vanished while locked");
        return rc;
    }
    case X_REPLAYED:
        if (st != PGRES_TUPLES_OK)
            return db_fail(b->d, r, "looking for a replayed delivery", err);
        if (PQntuples(r) == 1) {
            /* Stored before the crash that interrupted the replay. */
            it->stored = 1;
            it->res.event_id = atoll(PQgetvalue(r, 0, 0));
            it->res.repeat_of = PQgetisnull(r, 0, 1) ? 0 : atoll(PQgetvalue(r, 0, 1));
            it->res.outcome = KYC_OUTCOME_UNCHANGED;
            it->res.reason = KYC_R_ALREADY_STORED;
        }
        return 0;
    case X_PRIOR:
        if (st != PGRES_TUPLES_OK || PQntuples(r) != 1)
            return db_fail(b->d, r, "looking for repeats", err);
        it->repeat_of = PQgetisnull(r, 0, 0) ? 0 : atoll(PQgetvalue(r, 0, 0));
        snprintf(it->poa, sizeof it->poa, "%s", PQgetvalue(r, 0, 1));
        return 0;
    case X_WRITE:
        if (st != PGRES_TUPLES_OK || PQntuples(r) != 1)
            return db_fail(b->d, r, "storing delivery", err);
        it->res.event_id = atoll(PQgetvalue(r, 0, 0));
        return 0;
    }
    return kerr_set(err, KERR_STATE, "pipeline: unknown statement");
}

/* Sync, then read every queued statement's result and the sync's. After
 * a failure the rest of the pipeline is skipped by the server (aborted
 * results, read and dropped): the first failure is the one returned. A
 * stream that does not match what was queued marks the connection broken. */
static int sync_collect(batch *b, kerr *err)
{
    PGconn *c = b->d->conn;
    int rc = 0;
    if (PQpipelineSync(c) != 1) {
        b->d->broken = 1;
        return db_fail(b->d, NULL, "pipeline sync", err);
    }
    for (int k = 0; k < b->nexp; k++) {
        PGresult *r = PQgetResult(c);
        if (r == NULL) {
            b->d->broken = 1;
            return rc ? rc : db_fail(b->d, NULL, "pipeline: result missing", err);
        }
        ExecStatusType st = PQresultStatus(r);
        if (rc == 0 && st != PGRES_PIPELINE_ABORTED) {
            rc = take(b, &b->exp[k], r, err);
            if (rc != 0 && st == PGRES_FATAL_ERROR) {
                const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
                b->conflict = state && (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0);
            }
        } else if (rc == 0) {
            rc = kerr_set(err, KERR_DB, "pipeline aborted");
        }
        PQclear(r);
        if ((r = PQgetResult(c)) != NULL) { /* each statement's results end with NULL */
            PQclear(r);
            b->d->broken = 1;
            return rc ? rc : kerr_set(err, KERR_DB, "pipeline: unexpected result");
        }
    }
    b->nexp = 0;
    PGresult *r = PQgetResult(c);
    if (r == NULL || PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
        b->d->broken = 1;
        if (rc == 0)
            rc = db_fail(b->d, r, "pipeline: sync missing", err);
    }
    PQclear(r);
    return rc;
}

/* One try at the whole batch. */
static int batch_once(batch *b, kerr *err)
{
    PGconn *c = b->d->conn;
    int rc = 0;
    b->nexp = 0;
    b->conflict = 0;
    for (int i = 0; i < b->n; i++) {
        item *it = &b->items[i];
        free(it->body);
        item_init(it, it->dl, it->idx);
        for (int j = 0; j < i; j++)
            if (same_lock(b->items[j].dl, it->dl))
                it->round++;
        b->order[i] = it;
    }
    qsort(b->order, (size_t)b->n, sizeof *b->order, order_cmp);

    if (PQenterPipelineMode(c) != 1)
        return db_fail(b->d, NULL, "entering pipeline mode", err);
    if ((rc = send_plain(b, X_BEGIN, "BEGIN", err)) != 0)
        goto out;
    /* Round r holds the r-th delivery of each lock, so that a delivery's
     * reads come after its predecessor's write (statements run in the
     * order they are queued). Round 0 takes every lock, sorted; later
     * rounds only take locks already held: two batches on two instances
     * cannot wait on each other in a cycle. */
    int at = 0;
    while (at < b->n) {
        int end = at, round = b->order[at]->round;
        while (end < b->n && b->order[end]->round == round)
            end++;
        for (int k = at; k < end && rc == 0; k++)
            rc = send_reads(b, b->order[k], err);
        if (rc != 0 || (rc = sync_collect(b, err)) != 0)
            goto out;
        for (int k = at; k < end && rc == 0; k++) {
            if (b->order[k]->stored)
                continue;
            decide(b, b->order[k]);
            rc = send_write(b, b->order[k], err);
        }
        if (rc != 0)
            goto out;
        at = end;
    }
    if ((rc = send_plain(b, X_COMMIT, "COMMIT", err)) != 0)
        goto out;
    rc = sync_collect(b, err);
out:
    if (rc != 0 && b->nexp > 0 && !b->d->broken)
        (void)sync_collect(b, NULL); /* read what was queued before giving up */
    if (PQexitPipelineMode(c) != 1)
        b->d->broken = 1;
    if (rc != 0 && !b->d->broken)
        db_rollback_quietly(b->d);
    return rc;
}

int db_ingest_batch(db *d, const kyc_delivery *const *dl, int n, const db_ingest_opts *o,
                    db_ingest_result *res, kerr *err)
{
    if (n <= 0)
        return 0;
    int rc;
    if ((rc = db_prepare_set(d, DB_SET_INGEST, STMTS, ST_COUNT, err)) != 0)
        return rc;
    if ((rc = db_lock_user_prepare(d, err)) != 0)
        return rc;
    batch b = {.d = d, .o = o, .n = n, .cap = 5 * n + 2};
    snprintf(b.window, sizeof b.window, "%lld", (long long)o->dedup_window_ms);
    b.items = calloc((size_t)n, sizeof *b.items);
    b.order = calloc((size_t)n, sizeof *b.order);
    b.exp = calloc((size_t)b.cap, sizeof *b.exp);
    if (b.items == NULL || b.order == NULL || b.exp == NULL) {
        rc = kerr_set(err, KERR_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        b.items[i].dl = dl[i];
        b.items[i].idx = i;
    }
    /* A deadlock (another instance, or the reconciler, took rows in
     * another order) or a serialization failure: the whole batch again. */
    for (int attempt = 0; attempt < 3; attempt++) {
        rc = batch_once(&b, err);
        if (rc == 0 || !b.conflict || !db_alive(d))
            break;
    }
    if (rc == 0)
        for (int i = 0; i < n; i++)
            res[i] = b.items[i].res;
out:
    for (int i = 0; b.items && i < n; i++)
        free(b.items[i].body);
    free(b.items);
    free(b.order);
    free(b.exp);
    return rc;
}

int db_ingest(db *d, const kyc_delivery *dl, const db_ingest_opts *o, db_ingest_result *res,
              kerr *err)
{
    return db_ingest_batch(d, &dl, 1, o, res, err);
}
