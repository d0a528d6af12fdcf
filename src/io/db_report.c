/* The report of one user for `kycd status` (see db_report.h). Read-only:
 * must never write, nor lock a row. */
#include "io/db_report.h"

#include "io/db_internal.h"

int db_report_rows(db *d, kbuf *out, const char *title, const char *sql, int n,
                   const char *const *vals, kerr *err)
{
    PGresult *r = db_exec(d, sql, n, vals);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = db_fail(d, r, title, err);
        PQclear(r);
        return rc;
    }
    int rc = kbuf_appendf(out, "\n%s (%d)\n", title, PQntuples(r));
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        rc = kbuf_appendf(out, "  ");
        for (int j = 0; rc == 0 && j < PQnfields(r); j++)
            rc = kbuf_appendf(out, "%s%s=%s", j ? "  " : "", PQfname(r, j),
                              PQgetisnull(r, i, j) ? "-" : PQgetvalue(r, i, j));
        if (rc == 0)
            rc = kbuf_appendf(out, "\n");
    }
    PQclear(r);
    return rc ? kerr_set(err, KERR_NOMEM, "out of memory") : 0;
}

/* One user's rows of a query whose only parameter is the user. */
static int report_rows(db *d, kbuf *out, const char *title, const char *sql, const char *uid,
                       kerr *err)
{
    const char *p[] = {uid};
    return db_report_rows(d, out, title, sql, 1, p, err);
}

int db_user_report(db *d, const char *external_user_id, kbuf *out, kerr *err)
{
    const char *p[] = {external_user_id};
    PGresult *r = db_exec(d,
                          "SELECT verification_status, attempt_status, rejection_reason, "
                          "verification_id, source, first_seen_at, updated_at, last_webhook_at, "
                          "needs_check_reason, attention_reason, failures, last_checked_at, "
                          "next_check_at FROM kyc.verifications WHERE external_user_id = $1",
                          1, p);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = db_fail(d, r, "reading the user", err);
        PQclear(r);
        return rc;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        return kerr_set(err, KERR_NOTFOUND, "no such user in kyc.verifications");
    }
    int rc = kbuf_appendf(out, "user %s\n", external_user_id);
    for (int j = 0; rc == 0 && j < PQnfields(r); j++)
        rc = kbuf_appendf(out, "  %-20s %s\n", PQfname(r, j),
                          PQgetisnull(r, 0, j) ? "-" : PQgetvalue(r, 0, j));
    PQclear(r);
    if (rc != 0)
        return kerr_set(err, KERR_NOMEM, "out of memory");
    if ((rc = report_rows(d, out, "changes",
                          "SELECT changed_at, source, reason, "
                          "coalesce(old_verification_status, '-') || '/' || "
                          "coalesce(old_attempt_status, '-') AS old, "
                          "coalesce(new_verification_status, '-') || '/' || "
                          "coalesce(new_attempt_status, '-') AS new, "
                          "new_rejection_reason AS reason_code, event_id, check_id "
                          "FROM kyc.status_changes WHERE external_user_id = $1 ORDER BY id",
                          external_user_id, err)) != 0)
        return rc;
    if ((rc = report_rows(d, out, "webhooks (latest 20)",
                          "SELECT * FROM (SELECT id, received_at, kind, "
                          "coalesce(body->>'verificationStatus', body->>'status') AS v, "
                          "body->>'attemptStatus' AS a, outcome, outcome_reason, repeat_of "
                          "FROM kyc.webhook_events WHERE external_user_id = $1 "
                          "ORDER BY id DESC LIMIT 20) e ORDER BY id",
                          external_user_id, err)) != 0)
        return rc;
    return report_rows(d, out, "checks with P100 (latest 20)",
                       "SELECT * FROM (SELECT id, checked_at, checker, http_status, error_code, "
                       "round(latency_ms::numeric, 1) AS ms, outcome, result "
                       "FROM kyc.status_checks WHERE external_user_id = $1 "
                       "ORDER BY id DESC LIMIT 20) c ORDER BY id",
                       external_user_id, err);
}
