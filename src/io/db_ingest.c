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
 * that held it. */
static const char SQL_PRIOR[] =
    "SELECT (SELECT e.id FROM kyc.webhook_events e WHERE e.external_user_id = $1 "
    "          AND e.body_sha256 = decode($2, 'hex') AND e.kind = $3 "
    "          AND e.received_at > coalesce($5::timestamptz, clock_timestamp()) "
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

static PGresult *run(db *d, enum stmt st, const char *const *vals)
{
    return db_run(d, &STMTS[st], vals);
}

/* "a,b" -> "{a,b}" (field names are ours: letters only). */
static void text_array(const char *csv, char *out, size_t cap)
{
    snprintf(out, cap, "{%s}", csv);
}

int db_ingest(db *d, const kyc_delivery *dl, const db_ingest_opts *o, db_ingest_result *res,
              kerr *err)
{
    const char *kind = kyc_kind_name(dl->kind);
    char window[24], repeat_buf[24] = "", unknown[160];
    snprintf(window, sizeof window, "%lld", (long long)o->dedup_window_ms);
    text_array(dl->unknown_fields, unknown, sizeof unknown);
    int rc;
    PGresult *r = NULL;
    long long repeat_of = 0;
    enum stmt write;
    enum kyc_outcome outcome;
    enum kyc_reason reason;
    const char *state_val[3] = {NULL, NULL, NULL};

    /* The receipt time of a delivery replayed from the spool; NULL: now. */
    char received[48] = "";
    if (dl->received_us > 0) {
        time_t secs = (time_t)(dl->received_us / 1000000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        snprintf(received, sizeof received, "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (long long)(dl->received_us % 1000000));
    }
    const char *received_p = received[0] ? received : NULL;

    if ((rc = db_prepare_set(d, DB_SET_INGEST, STMTS, ST_COUNT, err)) != 0)
        return rc;
    if ((rc = db_exec_ok(d, "BEGIN", 0, NULL, "begin", err)) != 0)
        return rc;

    if (dl->received_us > 0 && dl->request_id[0]) {
        const char *pr[] = {dl->request_id};
        r = run(d, ST_REPLAYED, pr);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rc = db_fail(d, r, "looking for a replayed delivery", err);
            goto out;
        }
        if (PQntuples(r) == 1) {
            /* Stored before the crash that interrupted the replay. */
            res->event_id = atoll(PQgetvalue(r, 0, 0));
            res->repeat_of = PQgetisnull(r, 0, 1) ? 0 : atoll(PQgetvalue(r, 0, 1));
            res->outcome = KYC_OUTCOME_UNCHANGED;
            res->reason = KYC_R_ALREADY_STORED;
            PQclear(r);
            r = NULL;
            rc = db_exec_ok(d, "COMMIT", 0, NULL, "commit", err);
            goto out;
        }
        PQclear(r);
        r = NULL;
    }

    db_user_row cur;
    memset(&cur, 0, sizeof cur);
    cur.age_ms = -1;
    const char *p1[] = {dl->external_user_id, kind};
    if (dl->kind == KYC_KIND_KYC_STATUS) {
        if ((rc = db_result_ok(d, run(d, ST_KYC_ENSURE, p1), "creating user row", err)) != 0)
            goto out;
        rc = db_lock_user(d, dl->external_user_id, received_p, &cur, "locking user row", err);
        /* The row was created in this transaction: if it is gone, the
         * database misbehaves (retryable), the data is not at fault. */
        if (rc == KERR_NOTFOUND)
            rc = kerr_set(err, KERR_DB, "user row vanished while locked");
        if (rc != 0)
            goto out;
    } else if ((rc = db_result_ok(d, run(d, ST_OTHER_LOCK, p1), "locking user", err)) != 0) {
        goto out;
    }

    const char *p4[] = {dl->external_user_id, dl->body_sha256, kind, window, received_p};
    r = run(d, ST_PRIOR, p4);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rc = db_fail(d, r, "looking for repeats", err);
        goto out;
    }
    if (!PQgetisnull(r, 0, 0))
        repeat_of = atoll(PQgetvalue(r, 0, 0));
    char poa[KYC_VALUE_MAX + 1];
    snprintf(poa, sizeof poa, "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    r = NULL;

    if (dl->kind == KYC_KIND_KYC_STATUS) {
        kyc_transition t = {
            .current = &cur.status,
            .current_age_ms = cur.age_ms,
            .incoming = &dl->status,
            .source = KYC_SRC_WEBHOOK,
            .is_repeat = repeat_of != 0,
            .reorder_window_ms = o->reorder_window_ms,
        };
        kyc_verdict v = kyc_state_decide(&t);
        outcome = (enum kyc_outcome)v.decision;
        reason = v.reason;
        if (v.decision == KYC_APPLY) {
            write = ST_KYC_APPLY;
            state_val[0] = dl->status.verification;
            state_val[1] = dl->status.attempt;
            state_val[2] = dl->status.reason;
        } else if (v.decision == KYC_HOLD) {
            write = ST_KYC_HOLD;
        } else {
            write = ST_KYC_UNCHANGED;
        }
    } else {
        kyc_other_verdict v = kyc_other_decide(dl->kind, repeat_of != 0, poa, dl->other_status);
        outcome = v.outcome;
        reason = v.reason;
        write = ST_EVENT_ONLY;
        if (v.outcome == KYC_OUTCOME_APPLIED) {
            write = ST_POA_APPLY;
            state_val[0] = dl->other_status;
        }
    }

    if (repeat_of)
        snprintf(repeat_buf, sizeof repeat_buf, "%lld", repeat_of);
    const char *pw[14] = {
        dl->external_user_id,
        kind,
        NULL,
        dl->body_sha256,
        dl->remote_addr[0] ? dl->remote_addr : NULL,
        dl->request_id[0] ? dl->request_id : NULL,
        repeat_of ? repeat_buf : NULL,
        kyc_outcome_name(outcome),
        kyc_reason_name(reason),
        unknown,
        received_p,
        state_val[0],
        state_val[1],
        state_val[2],
    };
    /* The body goes as text: it is valid UTF-8 JSON without NUL bytes
     * (core/payload.c), so the jsonb cast cannot misread it. */
    char *body = malloc(dl->body_len + 1);
    if (body == NULL) {
        rc = kerr_set(err, KERR_NOMEM, "out of memory");
        goto out;
    }
    memcpy(body, dl->body, dl->body_len);
    body[dl->body_len] = '\0';
    pw[2] = body;
    r = run(d, write, pw);
    free(body);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rc = db_fail(d, r, "storing delivery", err);
        goto out;
    }
    long long event_id = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    r = NULL;

    if ((rc = db_exec_ok(d, "COMMIT", 0, NULL, "commit", err)) != 0)
        goto out;
    res->event_id = event_id;
    res->repeat_of = repeat_of;
    res->outcome = outcome;
    res->reason = reason;
    return 0;
out:
    PQclear(r);
    db_rollback_quietly(d);
    return rc;
}
