/* Flagged users and on-call's actions (see db_attention.h). Must never
 * change a user that is not flagged, nor act without recording it. */
#include "io/db_attention.h"

#include <stdlib.h>

#include "io/db_internal.h"

int db_attention_list(db *d, kbuf *out, long long *n, kerr *err)
{
    PGresult *r =
        db_exec(d,
                "SELECT external_user_id, coalesce(to_char(last_checked_at AT TIME ZONE 'UTC', "
                "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '-'), failures, attention_reason "
                "FROM kyc.verifications WHERE attention_reason IS NOT NULL "
                "ORDER BY last_checked_at NULLS FIRST, external_user_id",
                0, NULL);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = db_fail(d, r, "listing flagged users", err);
        PQclear(r);
        return rc;
    }
    int rc = 0;
    for (int i = 0; rc == 0 && i < PQntuples(r); i++)
        rc = kbuf_appendf(out, "user=%s checked=%s failures=%s reason=%s\n", PQgetvalue(r, i, 0),
                          PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3));
    *n = PQntuples(r);
    PQclear(r);
    return rc ? kerr_set(err, KERR_NOMEM, "out of memory") : 0;
}

/* One statement: the flagged users given back and the action recorded
 * with them (a CTE's rows feed the insert), so neither happens alone. */
static const char SQL_RETRY[] =
    "WITH back AS (UPDATE kyc.verifications v SET attention_reason = NULL, failures = 0, "
    "    needs_check_reason = coalesce(v.needs_check_reason, 'attention_retry'), "
    "    next_check_at = clock_timestamp() "
    "  FROM (SELECT external_user_id, attention_reason FROM kyc.verifications "
    "        WHERE attention_reason IS NOT NULL AND ($1::text IS NULL OR external_user_id = $1) "
    "        ORDER BY external_user_id FOR UPDATE) f "
    "  WHERE v.external_user_id = f.external_user_id "
    "  RETURNING v.external_user_id, f.attention_reason), "
    "act AS (INSERT INTO kyc.attention_actions (os_user, host, action, reason, users, flags) "
    "  SELECT $3, $4, 'retry', $2, coalesce(array_agg(external_user_id ORDER BY external_user_id), "
    "    '{}'), coalesce(array_agg(attention_reason ORDER BY external_user_id), '{}') FROM back "
    "  RETURNING id) "
    "SELECT (SELECT count(*) FROM back), (SELECT id FROM act)";

int db_attention_retry(db *d, const char *user, const char *why, const char *os_user,
                       const char *host, long long *n, kerr *err)
{
    const char *p[] = {user, why, os_user, host};
    PGresult *r = db_exec(d, SQL_RETRY, 4, p);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        int rc = db_fail(d, r, "giving users back to the reconciler", err);
        PQclear(r);
        return rc;
    }
    *n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}
