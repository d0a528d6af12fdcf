/* Erasure requests (see db_erase.h). Must never: put the user's id into a
 * message or a log line, or rewrite anything outside kyc.erase_user's one
 * transaction. */
#include "io/db_erase.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/db_internal.h"

#define ERASE_TRIES 5

static const char SQL_ERASE[] =
    "SELECT outcome, coalesce(erasure_id, 0), "
    "  coalesce(to_char(erased_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''), "
    "  rewritten::text "
    "FROM kyc.erase_user($1, $2, $3, $4, $5)";

/* A concurrent writer changed or referenced the user's rows: try again on
 * a new snapshot. */
static int retryable(PGresult *r)
{
    const char *s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return s && (strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0 || strcmp(s, "23503") == 0);
}

static void read_result(PGresult *r, db_erase_result *out)
{
    const char *o = PQgetvalue(r, 0, 0);
    out->outcome = strcmp(o, "erased") == 0           ? DB_ERASED
                   : strcmp(o, "already_erased") == 0 ? DB_ERASE_ALREADY
                                                      : DB_ERASE_UNKNOWN;
    out->erasure_id = atoll(PQgetvalue(r, 0, 1));
    snprintf(out->at, sizeof out->at, "%s", PQgetvalue(r, 0, 2));
    snprintf(out->rewritten, sizeof out->rewritten, "%s", PQgetvalue(r, 0, 3));
}

/* One attempt. 1: retry; 0: done (*out filled); < 0: failed. */
static int erase_once(db *d, const char *const p[5], db_erase_result *out, kerr *err)
{
    int rc = db_exec_ok(d, "BEGIN ISOLATION LEVEL REPEATABLE READ", 0, NULL, "begin", err);
    if (rc != 0)
        return rc;
    PGresult *r = db_exec(d, SQL_ERASE, 5, p);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        int again = retryable(r);
        rc = again ? 1 : db_fail(d, r, "erasing the user", err);
        PQclear(r);
        db_rollback_quietly(d);
        return rc;
    }
    db_erase_result res = *out;
    read_result(r, &res);
    PQclear(r);
    r = db_exec(d, "COMMIT", 0, NULL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        int again = retryable(r);
        rc = again ? 1 : db_fail(d, r, "committing the erasure", err);
        PQclear(r);
        db_rollback_quietly(d);
        return rc;
    }
    PQclear(r);
    *out = res;
    return 0;
}

int db_erase_user(db *d, const char *user, const char *pseudonym, const char *why,
                  const char *os_user, const char *host, db_erase_result *out, kerr *err)
{
    const char *p[5] = {user, pseudonym, why, os_user, host};
    db_erase_result res;
    memset(&res, 0, sizeof res);
    int rc = 1;
    while (rc == 1 && res.attempts < ERASE_TRIES) {
        res.attempts++;
        rc = erase_once(d, p, &res, err);
    }
    if (rc == 1)
        return kerr_set(err, KERR_DB,
                        "erasing the user: the user's rows kept changing (%d attempts); try again",
                        ERASE_TRIES);
    if (rc == 0)
        *out = res;
    return rc;
}
