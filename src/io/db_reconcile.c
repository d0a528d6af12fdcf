/* The reconciler's side of the database (see db_reconcile.h): claims,
 * the record of each check and of each Create KYC Verification. What an
 * answer does to a user is core/check.h's decision (made by app/ between
 * db_check_begin and db_check_finish); this file only carries it out, in
 * one transaction per call. Must never hold a lock after it returns (a
 * begun check excepted, until finish or abort). */
#include "io/db_reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "io/db_internal.h"

/* Both claims: the time the pass is due as of (now, or the start of a
 * `reconcile --once` pass: $5 ms ago), and the lease they take. */
#define SQL_CLAIM_NOW                                                                              \
    "WITH t0 AS (SELECT clock_timestamp() - make_interval(secs => $5::float8 / 1000) AS now), "    \
    "t AS (SELECT now, extract(epoch FROM now) * 1000 AS now_ms, "                                 \
    "  $3::float8 / 1000 AS pending_after_s FROM t0), "
#define SQL_CLAIM_COMMON                                                                           \
    "    AND (v.lease_until IS NULL OR v.lease_until < clock_timestamp())"                         \
    "    AND (v.next_check_at IS NULL OR v.next_check_at <= t.now)"                                \
    "    AND ($6::int = 0 OR v.last_checked_at IS NULL OR v.last_checked_at < t.now)"
/* The claimed users' rows are found again by their keys, as an array (an
 * InitPlan): joined to the CTE alone, the planner guessed the LIMIT's 1,000
 * rows and hashed the whole table (100,000 users: 50 ms a claim). */
#define SQL_CLAIM_TAKE                                                                             \
    "  LIMIT $1 FOR UPDATE OF v SKIP LOCKED) "                                                     \
    "UPDATE kyc.verifications v SET lease_owner = $2, "                                            \
    "  lease_until = clock_timestamp() + make_interval(secs => $4::float8 / 1000) "                \
    "FROM due WHERE v.external_user_id = due.external_user_id "                                    \
    "  AND v.external_user_id = ANY ((SELECT array_agg(external_user_id) FROM due)::text[]) "      \
    "RETURNING v.external_user_id, v.failures, due.why"

/* Held and pending users. "Pending" is kyc.is_pending
 * (sql/005_pending.sql), the same expression as the partial index
 * verifications_due_idx, so that the index serves this query; its key
 * bounded by a scalar subquery (a value when the scan starts: see
 * SQL_CLAIM_RECHECK), so that users not yet due are never read. */
static const char SQL_CLAIM[] = SQL_CLAIM_NOW
    "due AS ("
    "  SELECT v.external_user_id, CASE WHEN v.needs_check_reason IS NOT NULL THEN 0 ELSE 1 END "
    "    AS why FROM kyc.verifications v, t"
    "  WHERE v.attention_reason IS NULL"
    "    AND (v.needs_check_reason IS NOT NULL OR "
    "kyc.is_pending(v.attempt_status))" SQL_CLAIM_COMMON "    AND (v.needs_check_reason IS NOT NULL"
    "         OR v.updated_at <= t.now - make_interval(secs => t.pending_after_s))"
    "    AND coalesce(v.next_check_at, v.updated_at) <= (SELECT now FROM t)"
    "  ORDER BY coalesce(v.next_check_at, v.updated_at)" SQL_CLAIM_TAKE;

/* Settled users due a re-check (see db_reconcile.h), by their stored
 * recheck_at (sql/014_recheck_at.sql: kept by a trigger from
 * kyc.recheck_policy), through the partial index verifications_recheck_idx,
 * whose predicate the WHERE repeats: the scan starts at the earliest due
 * and stops at LIMIT or at the first user not yet due, so with nothing due
 * it reads one index page whatever the table's size. The bound is a
 * scalar subquery (an InitPlan: a value when the scan starts), not a join
 * with t, which the planner applies as a filter after reading the index. A rejected user whose
 * re-check fell due but was not taken before recheck_rejected_for ran out
 * is no longer due (as the policy says). $7 the rejected attemptStatus,
 * P100's word from core/vocab.c (never spelled here). */
static const char SQL_CLAIM_RECHECK[] = SQL_CLAIM_NOW
    "due AS ("
    "  SELECT v.external_user_id, CASE WHEN v.attempt_status = $7 THEN 2 ELSE 3 END AS why"
    "  FROM kyc.verifications v, t, kyc.recheck_policy p"
    "  WHERE v.recheck_at <= (SELECT now FROM t) AND v.recheck_at IS NOT NULL"
    "    AND v.attention_reason IS NULL AND v.needs_check_reason IS NULL" SQL_CLAIM_COMMON
    "    AND NOT (v.attempt_status IS NOT DISTINCT FROM p.rejected_attempt"
    "      AND v.verification_status IS DISTINCT FROM p.verified_status"
    "      AND greatest(v.updated_at, v.last_webhook_at)"
    "          <= t.now - make_interval(secs => p.rejected_for_ms / 1000.0))"
    "  ORDER BY v.recheck_at" SQL_CLAIM_TAKE;

/* SQL_CLAIM's held and pending users, counted (leased ones too: they are
 * being checked, not yet done), its index's key bounded by now() (stable:
 * it may bound a scan, where clock_timestamp() may not); the flagged ones
 * (verifications_flagged_idx, sql/013); and the pending ones waiting for a
 * webhook for webhook_overdue ($2), which the partial index
 * verifications_due_idx serves (kyc.webhook_awaited_since, sql/015); and
 * the change feed's logical replication slots on this database
 * (docs/feed.md): the most WAL one keeps (restart_lsn behind the current
 * position; -1 on a standby, which has no current position of its own) and
 * how many no consumer is reading. pg_replication_slots and
 * pg_current_wal_lsn() need no grant. */
static const char SQL_COUNT_DUE[] =
    "SELECT (SELECT count(*) FROM kyc.verifications v"
    " WHERE v.attention_reason IS NULL"
    "   AND (v.needs_check_reason IS NOT NULL OR kyc.is_pending(v.attempt_status))"
    "   AND (v.next_check_at IS NULL OR v.next_check_at <= clock_timestamp())"
    "   AND (v.needs_check_reason IS NOT NULL"
    "        OR v.updated_at <= clock_timestamp() - make_interval(secs => $1::float8 / 1000))"
    "   AND coalesce(v.next_check_at, v.updated_at) <= now()),"
    " (SELECT count(*) FROM kyc.verifications WHERE attention_reason IS NOT NULL),"
    " (SELECT count(*) FROM kyc.verifications v"
    " WHERE v.attention_reason IS NULL AND kyc.is_pending(v.attempt_status)"
    "   AND kyc.webhook_awaited_since(v.last_webhook_at, v.requested_at, v.first_seen_at)"
    "       <= clock_timestamp() - make_interval(secs => $2::float8 / 1000)),"
    " CASE WHEN pg_is_in_recovery() THEN -1 ELSE"
    "   (SELECT coalesce(max(pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)), 0)::bigint"
    "    FROM pg_replication_slots s"
    "    WHERE s.database = current_database() AND s.slot_type = 'logical') END,"
    " (SELECT count(*) FROM pg_replication_slots s"
    "  WHERE s.database = current_database() AND s.slot_type = 'logical' AND NOT s.active)";

int db_count_due(db *d, int64_t pending_after_ms, int64_t webhook_overdue_ms, db_due_counts *out,
                 kerr *err)
{
    char after[24], overdue[24];
    snprintf(after, sizeof after, "%lld", (long long)pending_after_ms);
    snprintf(overdue, sizeof overdue, "%lld", (long long)webhook_overdue_ms);
    const char *p[] = {after, overdue};
    PGresult *r = db_exec(d, SQL_COUNT_DUE, 2, p);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        int rc = db_fail(d, r, "counting due users", err);
        PQclear(r);
        return rc;
    }
    out->due = atoll(PQgetvalue(r, 0, 0));
    out->flagged = atoll(PQgetvalue(r, 0, 1));
    out->overdue = atoll(PQgetvalue(r, 0, 2));
    out->feed_wal_bytes = atoll(PQgetvalue(r, 0, 3));
    out->feed_inactive = atoll(PQgetvalue(r, 0, 4));
    PQclear(r);
    return 0;
}

int db_recheck_policy_set(db *d, const db_recheck_policy *pol, int batch, db_restamp *out,
                          kerr *err)
{
    char after[24], until[24], every[24], n[16];
    snprintf(after, sizeof after, "%lld", (long long)pol->rejected_after_ms);
    snprintf(until, sizeof until, "%lld", (long long)pol->rejected_for_ms);
    snprintf(every, sizeof every, "%lld", (long long)pol->verified_every_ms);
    snprintf(n, sizeof n, "%d", batch);
    const char *p[] = {
        kyc_astatus_name(KYC_A_REJECTED), kyc_vstatus_name(KYC_V_VERIFIED), after, until, every, n};
    PGresult *r = db_exec(d,
                          "SELECT changed::int, restamped, done::int "
                          "FROM kyc.set_recheck_policy($1, $2, $3, $4, $5, $6)",
                          6, p);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        int rc = db_fail(d, r, "setting the re-check policy", err);
        PQclear(r);
        return rc;
    }
    out->changed = atoi(PQgetvalue(r, 0, 0));
    out->restamped = atoll(PQgetvalue(r, 0, 1));
    out->done = atoi(PQgetvalue(r, 0, 2));
    PQclear(r);
    return 0;
}

int db_claim_due(db *d, const db_claim_opts *o, db_claim *out, int *n, kerr *err)
{
    char limit[16], after[24], lease[24], age[24], once[4];
    snprintf(limit, sizeof limit, "%d", o->limit);
    snprintf(after, sizeof after, "%lld", (long long)o->pending_after_ms);
    snprintf(lease, sizeof lease, "%lld", (long long)o->lease_ms);
    snprintf(age, sizeof age, "%lld", (long long)(o->once ? o->pass_age_ms : 0));
    snprintf(once, sizeof once, "%d", o->once ? 1 : 0);
    const char *p[] = {limit, o->owner, after, lease, age, once, kyc_astatus_name(KYC_A_REJECTED)};
    PGresult *r = db_exec(d, o->recheck ? SQL_CLAIM_RECHECK : SQL_CLAIM, o->recheck ? 7 : 6, p);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = db_fail(d, r, "claiming due users", err);
        PQclear(r);
        return rc;
    }
    int rows = PQntuples(r);
    for (int i = 0; i < rows && i < o->limit; i++) {
        snprintf(out[i].external_user_id, sizeof out[i].external_user_id, "%s",
                 PQgetvalue(r, i, 0));
        out[i].failures = atoi(PQgetvalue(r, i, 1));
        out[i].why = (enum kyc_check_why)atoi(PQgetvalue(r, i, 2));
    }
    *n = rows < o->limit ? rows : o->limit;
    PQclear(r);
    return 0;
}

int db_release_claim(db *d, const char *owner, const char *external_user_id, kerr *err)
{
    const char *p[] = {owner, external_user_id};
    return db_exec_ok(d,
                      "UPDATE kyc.verifications SET lease_owner = NULL, lease_until = NULL "
                      "WHERE lease_owner = $1 AND external_user_id = $2",
                      2, p, "releasing a claim", err);
}

/* Apply a state from P100's own API (source reconciler or api), with its
 * history row. $1 user, $2..$4 new state, $5 source, $6 reason, $7 check id. */
static const char SQL_APPLY_AUTHORITATIVE[] =
    "WITH old AS (SELECT verification_status, attempt_status, rejection_reason "
    "  FROM kyc.verifications WHERE external_user_id = $1), "
    "up AS (UPDATE kyc.verifications SET verification_status = nullif($2, ''), "
    "  attempt_status = nullif($3, ''), rejection_reason = nullif($4, ''), source = $5, "
    "  updated_at = clock_timestamp() WHERE external_user_id = $1 RETURNING updated_at) "
    "INSERT INTO kyc.status_changes (external_user_id, changed_at, source, reason, "
    "  old_verification_status, new_verification_status, old_attempt_status, "
    "  new_attempt_status, old_rejection_reason, new_rejection_reason, check_id) "
    "SELECT $1, up.updated_at, $5, $6, old.verification_status, nullif($2, ''), "
    "  old.attempt_status, nullif($3, ''), old.rejection_reason, nullif($4, ''), $7::bigint "
    "FROM old, up";

static int apply_authoritative(db *d, const char *uid, const kyc_status *s, enum kyc_source src,
                               enum kyc_reason reason, const char *check_id, const char *what,
                               kerr *err)
{
    const char *p[] = {uid,       s->verification,      s->attempt,
                       s->reason, kyc_source_name(src), kyc_reason_name(reason),
                       check_id};
    return db_exec_ok(d, SQL_APPLY_AUTHORITATIVE, 7, p, what, err);
}

/* The raw answer goes in a text column: at most 64 KiB, valid UTF-8, no
 * NUL. *out is NULL when there is no body. */
static int check_body(const db_check_record *c, char **out, kerr *err)
{
    *out = NULL;
    if (c->body == NULL)
        return 0;
    size_t blen = c->body_len > 65536 ? 65536 : c->body_len;
    char *body = malloc(blen + 1);
    if (body == NULL)
        return kerr_set(err, KERR_NOMEM, "out of memory");
    for (size_t i = 0; i < blen; i++)
        body[i] = c->body[i] ? c->body[i] : ' ';
    body[blen] = '\0';
    if (!json_utf8_valid(body, blen))
        snprintf(body, blen + 1, "(not UTF-8, %zu bytes)", c->body_len);
    *out = body;
    return 0;
}

int db_check_begin(db *d, const char *external_user_id, const char *owner, db_check_row *row,
                   kerr *err)
{
    int rc = db_exec_ok(d, "BEGIN", 0, NULL, "begin", err);
    if (rc != 0)
        return rc;
    db_user_row u;
    if ((rc = db_lock_user(d, external_user_id, NULL, &u, "locking user for a check", err)) != 0) {
        db_rollback_quietly(d);
        return rc;
    }
    /* How long the user has waited for a webhook (sql/015), for core's
     * "overdue": read under the lock just taken. */
    const char *p1[] = {external_user_id};
    PGresult *r = db_exec(
        d,
        "SELECT (extract(epoch FROM clock_timestamp() - kyc.webhook_awaited_since(last_webhook_at, "
        "requested_at, first_seen_at)) * 1000)::bigint FROM kyc.verifications "
        "WHERE external_user_id = $1",
        1, p1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rc = db_fail(d, r, "reading the user's wait for a webhook", err);
        PQclear(r);
        db_rollback_quietly(d);
        return rc;
    }
    memset(row, 0, sizeof *row);
    row->awaited_ms = PQgetisnull(r, 0, 0) ? -1 : atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    row->before = u.status;
    row->lost_lease = strcmp(u.lease_owner, owner) != 0;
    row->failures = u.failures;
    return 0;
}

/* The call, always recorded. */
static int insert_check(db *d, const db_check_record *c, const kyc_check_plan *plan,
                        long long *check_id, kerr *err)
{
    char http[16], latency[32];
    snprintf(http, sizeof http, "%ld", c->http_status);
    snprintf(latency, sizeof latency, "%.3f", c->latency_ms);
    char *body = NULL;
    int rc = check_body(c, &body, err);
    if (rc != 0)
        return rc;
    const char *pc[] = {c->external_user_id,
                        c->owner,
                        c->http_status ? http : NULL,
                        c->error_code && *c->error_code ? c->error_code : NULL,
                        latency,
                        p100_class_name(c->cls),
                        kyc_check_result_name(plan->result),
                        c->detail,
                        body,
                        kyc_check_why_name(c->why)};
    PGresult *r =
        db_exec(d,
                "INSERT INTO kyc.status_checks (external_user_id, checker, http_status, "
                "error_code, latency_ms, outcome, result, detail, body, purpose) "
                "VALUES ($1, $2, $3::integer, $4, $5::float8, $6, $7, $8, $9, $10) RETURNING id",
                10, pc);
    free(body);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        rc = db_fail(d, r, "recording the check", err);
    else
        *check_id = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

/* Bookkeeping: schedule, failures, flag, lease, exactly as planned. */
static int write_schedule(db *d, const char *uid, const char *check_id, const kyc_check_plan *plan,
                          kerr *err)
{
    char next[24], fails[16], keep[24];
    snprintf(next, sizeof next, "%lld", (long long)plan->next_check_ms);
    snprintf(fails, sizeof fails, "%d", plan->failures);
    snprintf(keep, sizeof keep, "%lld", (long long)plan->keep_lease_ms);
    const char *pb[] = {uid,
                        check_id,
                        next,
                        fails,
                        plan->answered ? "1" : "0",
                        plan->attention[0] ? plan->attention : NULL,
                        keep};
    return db_exec_ok(
        d,
        "UPDATE kyc.verifications SET last_checked_at = clock_timestamp(), "
        "  last_check_id = $2::bigint, "
        "  lease_owner = CASE WHEN $7::bigint > 0 THEN lease_owner END, "
        "  lease_until = CASE WHEN $7::bigint > 0 THEN clock_timestamp() + "
        "    make_interval(secs => $7::float8 / 1000) END, "
        "  next_check_at = CASE WHEN $3::bigint < 0 THEN NULL "
        "    ELSE clock_timestamp() + make_interval(secs => $3::float8 / 1000) END, "
        "  failures = $4::int, "
        "  needs_check_reason = CASE WHEN $5::int = 1 THEN NULL ELSE needs_check_reason END, "
        "  rechecked_at = CASE WHEN $5::int = 1 THEN clock_timestamp() ELSE rechecked_at END, "
        "  attention_reason = coalesce($6, attention_reason) "
        "WHERE external_user_id = $1",
        7, pb, "updating the user's schedule", err);
}

int db_check_finish(db *d, const db_check_record *rec, const kyc_check_plan *plan,
                    long long *check_id, kerr *err)
{
    long long id = 0;
    const char *uid = rec->external_user_id;
    int rc = insert_check(d, rec, plan, &id, err);
    char cid[24];
    snprintf(cid, sizeof cid, "%lld", id);
    const char *p1[] = {uid};
    if (rc == 0 && plan->write == KYC_WRITE_RELEASE)
        rc = db_exec_ok(d,
                        "UPDATE kyc.verifications SET lease_owner = NULL, lease_until = NULL "
                        "WHERE external_user_id = $1",
                        1, p1, "releasing the claim", err);
    if (rc == 0 && plan->write == KYC_WRITE_SCHEDULE && plan->result == KYC_CHECK_APPLIED)
        rc = apply_authoritative(d, uid, &plan->after, KYC_SRC_RECONCILER, plan->reason, cid,
                                 "applying P100's state", err);
    if (rc == 0 && plan->write == KYC_WRITE_SCHEDULE)
        rc = write_schedule(d, uid, cid, plan, err);
    if (rc == 0)
        rc = db_exec_ok(d, "COMMIT", 0, NULL, "commit", err);
    if (rc != 0) {
        db_rollback_quietly(d);
        return rc;
    }
    *check_id = id;
    return 0;
}

int db_record_created(db *d, const char *external_user_id, const char *verification_id,
                      int already_pending, int64_t pending_after_ms, kerr *err)
{
    int rc;
    if ((rc = db_exec_ok(d, "BEGIN", 0, NULL, "begin", err)) != 0)
        return rc;
    const char *p1[] = {external_user_id};
    if ((rc = db_exec_ok(
             d,
             "INSERT INTO kyc.verifications (external_user_id, source) VALUES ($1, 'api') "
             "ON CONFLICT (external_user_id) DO NOTHING",
             1, p1, "creating user row", err)) != 0)
        goto out;
    db_user_row row;
    rc = db_lock_user(d, external_user_id, NULL, &row, "locking user", err);
    /* Created just above, in this transaction: gone means the database
     * misbehaves. */
    if (rc == KERR_NOTFOUND)
        rc = kerr_set(err, KERR_DB, "locking user: user row vanished while locked");
    if (rc != 0)
        goto out;

    char after[24];
    snprintf(after, sizeof after, "%lld", (long long)pending_after_ms);
    if (!already_pending) {
        kyc_status want;
        kyc_verdict v = kyc_after_create(&row.status, &want);
        if (v.decision == KYC_APPLY &&
            (rc = apply_authoritative(d, external_user_id, &want, KYC_SRC_API, v.reason, NULL,
                                      "recording the new verification", err)) != 0)
            goto out;
        const char *pv[] = {external_user_id, verification_id, after};
        rc = db_exec_ok(
            d,
            "UPDATE kyc.verifications SET verification_id = $2, attention_reason = NULL, "
            "  requested_at = clock_timestamp(), failures = 0, next_check_at = clock_timestamp() + "
            "  make_interval(secs => $3::float8 / 1000) WHERE external_user_id = $1",
            3, pv, "recording the verification id", err);
    } else {
        /* P100 says a verification is already pending: follow it at once,
         * even if no webhook ever comes. */
        rc = db_exec_ok(
            d,
            "UPDATE kyc.verifications SET needs_check_reason = coalesce(needs_check_reason, "
            "  'api_pending'), next_check_at = clock_timestamp(), attention_reason = NULL, "
            "  requested_at = clock_timestamp(), "
            "  failures = 0 WHERE external_user_id = $1",
            1, p1, "marking the user pending", err);
    }
    if (rc == 0)
        rc = db_exec_ok(d, "COMMIT", 0, NULL, "commit", err);
out:
    if (rc != 0)
        db_rollback_quietly(d);
    return rc;
}
