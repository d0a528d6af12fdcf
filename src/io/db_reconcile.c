/* The reconciler's side of the database (see db_reconcile.h): claims,
 * the record of each check and of each Create KYC Verification. What an
 * answer does to a user is core/policy.h's decision; this file only
 * carries it out, in one transaction per call. Must never hold a lock
 * after it returns. */
#include "io/db_reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "io/db_internal.h"

/* "Pending" is kyc.is_pending (sql/005_pending.sql), the same expression
 * as the partial index verifications_due_idx, so that the index serves
 * this query. */
static const char SQL_CLAIM[] =
    "WITH due AS ("
    "  SELECT external_user_id FROM kyc.verifications"
    "  WHERE attention_reason IS NULL"
    "    AND (needs_check_reason IS NOT NULL OR kyc.is_pending(attempt_status))"
    "    AND (lease_until IS NULL OR lease_until < clock_timestamp())"
    "    AND (next_check_at IS NULL OR next_check_at <= clock_timestamp())"
    "    AND (needs_check_reason IS NOT NULL"
    "         OR updated_at <= clock_timestamp() - make_interval(secs => $3::float8 / 1000))"
    "  ORDER BY coalesce(next_check_at, updated_at)"
    "  LIMIT $1 FOR UPDATE SKIP LOCKED) "
    "UPDATE kyc.verifications v SET lease_owner = $2, "
    "  lease_until = clock_timestamp() + make_interval(secs => $4::float8 / 1000) "
    "FROM due WHERE v.external_user_id = due.external_user_id "
    "RETURNING v.external_user_id, v.failures";

int db_claim_due(db *d, const db_claim_opts *o, db_claim *out, int *n, kerr *err)
{
    char limit[16], after[24], lease[24];
    snprintf(limit, sizeof limit, "%d", o->limit);
    snprintf(after, sizeof after, "%lld", (long long)o->pending_after_ms);
    snprintf(lease, sizeof lease, "%lld", (long long)o->lease_ms);
    const char *p[] = {limit, o->owner, after, lease};
    PGresult *r = db_exec(d, SQL_CLAIM, 4, p);
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
static int check_body(const db_check *c, char **out, kerr *err)
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

int db_record_check(db *d, const db_check *c, db_check_result *res, kerr *err)
{
    int rc;
    PGresult *r = NULL;
    db_check_result out;
    memset(&out, 0, sizeof out);
    const char *uid = c->external_user_id;

    if ((rc = db_exec_ok(d, "BEGIN", 0, NULL, "begin", err)) != 0)
        return rc;
    db_user_row row;
    if ((rc = db_lock_user(d, uid, NULL, &row, "locking user for a check", err)) != 0)
        goto out;
    out.before = row.status;
    out.lost_lease = strcmp(row.lease_owner, c->owner) != 0;

    kyc_check_in in = {
        .before = &out.before,
        .lost_lease = out.lost_lease,
        .cls = c->cls,
        .answer = c->answer,
        .flag = c->flag,
        .count_failure = c->count_failure,
        .next_check_ms = c->next_check_ms,
    };
    kyc_check_plan plan = kyc_check_decide(&in);

    /* The call, always recorded. */
    char http[16], latency[32];
    snprintf(http, sizeof http, "%ld", c->http_status);
    snprintf(latency, sizeof latency, "%.3f", c->latency_ms);
    char *body = NULL;
    if ((rc = check_body(c, &body, err)) != 0)
        goto out;
    const char *pc[] = {uid,
                        c->owner,
                        c->http_status ? http : NULL,
                        c->error_code && *c->error_code ? c->error_code : NULL,
                        latency,
                        p100_class_name(c->cls),
                        kyc_check_result_name(plan.result),
                        c->detail,
                        body};
    r = db_exec(d,
                "INSERT INTO kyc.status_checks (external_user_id, checker, http_status, "
                "error_code, latency_ms, outcome, result, detail, body) "
                "VALUES ($1, $2, $3::integer, $4, $5::float8, $6, $7, $8, $9) RETURNING id",
                9, pc);
    free(body);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rc = db_fail(d, r, "recording the check", err);
        goto out;
    }
    out.check_id = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    r = NULL;
    char check_id[24];
    snprintf(check_id, sizeof check_id, "%lld", out.check_id);

    const char *p1[] = {uid};
    if (plan.write == KYC_WRITE_RELEASE) {
        rc = db_exec_ok(d,
                        "UPDATE kyc.verifications SET lease_owner = NULL, lease_until = NULL "
                        "WHERE external_user_id = $1",
                        1, p1, "releasing the claim", err);
        if (rc != 0)
            goto out;
    } else if (plan.write == KYC_WRITE_SCHEDULE) {
        if (plan.result == KYC_CHECK_APPLIED &&
            (rc = apply_authoritative(d, uid, &plan.after, KYC_SRC_RECONCILER, plan.reason,
                                      check_id, "applying P100's state", err)) != 0)
            goto out;
        /* Bookkeeping: schedule, failures, flag, lease. */
        char next[24], fails[8];
        snprintf(next, sizeof next, "%lld", (long long)plan.next_check_ms);
        snprintf(fails, sizeof fails, "%d", c->count_failure ? 1 : 0);
        const char *pb[] = {uid,
                            check_id,
                            next,
                            fails,
                            plan.answered ? "1" : "0",
                            c->flag ? (c->detail ? c->detail : p100_class_name(c->cls)) : NULL};
        rc = db_exec_ok(
            d,
            "UPDATE kyc.verifications SET last_checked_at = clock_timestamp(), "
            "  last_check_id = $2::bigint, lease_owner = NULL, lease_until = NULL, "
            "  next_check_at = CASE WHEN $3::bigint < 0 THEN NULL "
            "    ELSE clock_timestamp() + make_interval(secs => $3::float8 / 1000) END, "
            "  failures = CASE WHEN $5::int = 1 THEN 0 ELSE failures + $4::int END, "
            "  needs_check_reason = CASE WHEN $5::int = 1 THEN NULL ELSE needs_check_reason END, "
            "  attention_reason = coalesce($6, attention_reason) "
            "WHERE external_user_id = $1",
            6, pb, "updating the user's schedule", err);
        if (rc != 0)
            goto out;
    }
    if ((rc = db_exec_ok(d, "COMMIT", 0, NULL, "commit", err)) != 0)
        goto out;
    out.result = plan.result;
    *res = out;
    return 0;
out:
    PQclear(r);
    db_rollback_quietly(d);
    return rc;
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
            "  failures = 0, next_check_at = clock_timestamp() + "
            "  make_interval(secs => $3::float8 / 1000) WHERE external_user_id = $1",
            3, pv, "recording the verification id", err);
    } else {
        /* P100 says a verification is already pending: follow it at once,
         * even if no webhook ever comes. */
        rc = db_exec_ok(
            d,
            "UPDATE kyc.verifications SET needs_check_reason = coalesce(needs_check_reason, "
            "  'api_pending'), next_check_at = clock_timestamp(), attention_reason = NULL, "
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
