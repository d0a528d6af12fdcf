/* Schema migrations (see migrate.h): applies the sql/ files compiled into
 * kycd, under an advisory lock, each in its own transaction with its
 * record. Must never apply a migration twice, nor one whose applied copy
 * was edited. */
#include "io/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "io/db_internal.h"
#include "io/migrations.h"

/* Advisory lock key for migrations: any constant unique to kycd. */
#define MIGRATE_LOCK_KEY 0x6b796364 /* "kycd" */

int migrate_latest_version(void)
{
    return kycd_migrations_count ? kycd_migrations[kycd_migrations_count - 1].version : 0;
}

int db_schema_version(db *d, int *version, kerr *err)
{
    PGresult *r =
        PQexec(d->conn, "SELECT CASE WHEN to_regclass('kyc.schema_migrations') IS NULL THEN 0 "
                        "ELSE (SELECT coalesce(max(version), 0) FROM kyc.schema_migrations) END");
    /* to_regclass keeps this a single round trip that cannot fail on a
     * fresh database; the subquery is only planned when the table exists. */
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        /* Older servers plan the subquery anyway: treat "missing" as 0. */
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (state && strcmp(state, "42P01") == 0) {
            PQclear(r);
            *version = 0;
            return 0;
        }
        int rc = db_fail(d, r, "reading schema version", err);
        PQclear(r);
        return rc;
    }
    *version = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

int db_check_schema(db *d, kerr *err)
{
    int have = 0;
    int rc = db_schema_version(d, &have, err);
    if (rc != 0)
        return rc;
    int want = migrate_latest_version();
    if (have < want)
        return kerr_set(
            err, KERR_STATE,
            "database schema is at version %d, this kycd needs %d: run `kycd migrate` first", have,
            want);
    if (have > want)
        klog(KLOG_WARN, "database schema is newer than this kycd", KLOG_INT("schema", have),
             KLOG_INT("kycd", want));
    return 0;
}

static int migrate_locked(db *d, int *applied, kerr *err)
{
    int rc = db_exec_ok(d,
                        "CREATE SCHEMA IF NOT EXISTS kyc;"
                        "CREATE TABLE IF NOT EXISTS kyc.schema_migrations ("
                        " version integer PRIMARY KEY, name text NOT NULL, sha256 text NOT NULL,"
                        " applied_at timestamptz NOT NULL DEFAULT clock_timestamp())",
                        0, NULL, "creating kyc.schema_migrations", err);
    if (rc != 0)
        return rc;
    int count = 0;
    for (size_t i = 0; i < kycd_migrations_count; i++) {
        const struct migration *m = &kycd_migrations[i];
        char version[16];
        snprintf(version, sizeof version, "%d", m->version);
        const char *p1[] = {version};
        PGresult *r =
            db_exec(d, "SELECT sha256 FROM kyc.schema_migrations WHERE version = $1", 1, p1);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rc = db_fail(d, r, "reading kyc.schema_migrations", err);
            PQclear(r);
            return rc;
        }
        if (PQntuples(r) == 1) {
            int same = strcmp(PQgetvalue(r, 0, 0), m->sha256) == 0;
            PQclear(r);
            if (!same)
                return kerr_set(
                    err, KERR_STATE,
                    "migration %s was changed after it was applied: add a new migration instead",
                    m->name);
            continue;
        }
        PQclear(r);

        /* One transaction per migration: the file and its record together. */
        if ((rc = db_exec_ok(d, "BEGIN", 0, NULL, "begin", err)) != 0)
            return rc;
        if ((rc = db_exec_ok(d, m->sql, 0, NULL, m->name, err)) != 0) {
            db_rollback_quietly(d);
            return rc;
        }
        const char *p3[] = {version, m->name, m->sha256};
        rc = db_exec_ok(
            d, "INSERT INTO kyc.schema_migrations (version, name, sha256) VALUES ($1, $2, $3)", 3,
            p3, "recording migration", err);
        if (rc == 0)
            rc = db_exec_ok(d, "COMMIT", 0, NULL, "commit", err);
        if (rc != 0) {
            db_rollback_quietly(d);
            return rc;
        }
        klog(KLOG_INFO, "migration applied", KLOG_INT("version", m->version),
             KLOG_STR("name", m->name));
        count++;
    }
    *applied = count;
    return 0;
}

int db_migrate(db *d, int *applied, kerr *err)
{
    /* Schema changes may take long and may wait for the other host. */
    int rc = db_exec_ok(d, "SET statement_timeout = 0; SET lock_timeout = 0", 0, NULL,
                        "clearing timeouts", err);
    if (rc != 0)
        return rc;
    char key[24];
    snprintf(key, sizeof key, "%d", MIGRATE_LOCK_KEY);
    const char *p[] = {key};
    if ((rc = db_exec_ok(d, "SELECT pg_advisory_lock($1::bigint)", 1, p,
                         "taking the migration lock", err)) != 0)
        return rc;
    int n = 0;
    rc = migrate_locked(d, &n, err);
    kerr ignored;
    if (db_exec_ok(d, "SELECT pg_advisory_unlock($1::bigint)", 1, p, "unlock", &ignored) != 0 &&
        rc == 0)
        rc = kerr_set(err, KERR_DB, "releasing the migration lock: %s", ignored.msg);
    if (rc == 0)
        *applied = n;
    return rc;
}
