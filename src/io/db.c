/* PostgreSQL access: the only file that includes libpq. Owns connections,
 * the pool, migrations and the delivery write path. Must never format input
 * into SQL, log a password, or hold a transaction open across anything but
 * its own statements. */
#include "io/db.h"

#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "core/payload.h"
#include "io/migrations.h"

struct db {
    PGconn *conn;
    int prepared; /* the ingest statements are prepared on this session */
};

/* Advisory lock key for migrations: any constant unique to kycd. */
#define MIGRATE_LOCK_KEY 0x6b796364 /* "kycd" */

/* ---------------------------------------------------------------- errors */

/* Map a failed result or connection to a kerr. Class 22 (data exception) and
 * 23 (integrity) mean the data itself was refused: KERR_INVALID. Everything
 * else (connection lost, timeouts, shutdown) is KERR_DB: retryable. */
static int fail(db *d, PGresult *r, const char *what, kerr *err)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char clean[256];
    snprintf(clean, sizeof clean, "%s", msg ? msg : PQerrorMessage(d->conn));
    clean[strcspn(clean, "\r\n")] = '\0';
    int code = KERR_DB;
    if (state && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0))
        code = KERR_INVALID;
    return kerr_set(err, code, "%s: %s%s%s%s", what, clean, state ? " (sqlstate " : "",
                    state ? state : "", state ? ")" : "");
}

/* Without parameters, PQexec (which accepts several statements); with
 * them, PQexecParams (one statement, values never parsed as SQL). */
static PGresult *exec_params(db *d, const char *sql, int n, const char *const *vals)
{
    if (n == 0)
        return PQexec(d->conn, sql);
    return PQexecParams(d->conn, sql, n, NULL, vals, NULL, NULL, 0);
}

/* Run a statement that returns no rows (or whose rows are ignored). */
static int exec_ok(db *d, const char *sql, int n, const char *const *vals, const char *what,
                   kerr *err)
{
    PGresult *r = exec_params(d, sql, n, vals);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = fail(d, r, what, err);
    PQclear(r);
    return rc;
}

static void rollback_quietly(db *d)
{
    if (PQstatus(d->conn) == CONNECTION_OK && PQtransactionStatus(d->conn) != PQTRANS_IDLE)
        PQclear(PQexec(d->conn, "ROLLBACK"));
}

/* ------------------------------------------------------------ connection */

int db_connect(db **out, const db_opts *o, kerr *err)
{
    char connect_timeout[24], tcp_timeout[24];
    int64_t secs = (o->timeout_ms + 999) / 1000;
    snprintf(connect_timeout, sizeof connect_timeout, "%lld", (long long)(secs < 2 ? 2 : secs));
    snprintf(tcp_timeout, sizeof tcp_timeout, "%lld", (long long)o->timeout_ms);

    /* Our defaults first, then the operator's conninfo (expanded in place of
     * dbname, so its settings win), then the password from its own secret. */
    const char *keys[12], *vals[12];
    int n = 0;
    keys[n] = "connect_timeout", vals[n++] = connect_timeout;
    keys[n] = "keepalives", vals[n++] = "1";
    keys[n] = "keepalives_idle", vals[n++] = "10";
    keys[n] = "keepalives_interval", vals[n++] = "3";
    keys[n] = "keepalives_count", vals[n++] = "3";
    keys[n] = "tcp_user_timeout", vals[n++] = tcp_timeout;
    keys[n] = "application_name", vals[n++] = o->application_name ? o->application_name : "kycd";
    keys[n] = "dbname", vals[n++] = o->conninfo ? o->conninfo : "";
    if (o->password && *o->password)
        keys[n] = "password", vals[n++] = o->password;
    keys[n] = NULL, vals[n] = NULL;

    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL)
        return kerr_set(err, KERR_NOMEM, "out of memory connecting to the database");
    if (PQstatus(c) != CONNECTION_OK) {
        char clean[300];
        snprintf(clean, sizeof clean, "%s", PQerrorMessage(c));
        clean[strcspn(clean, "\r\n")] = '\0';
        PQfinish(c);
        return kerr_set(err, KERR_DB, "cannot connect to the database: %s", clean);
    }
    db *d = calloc(1, sizeof *d);
    if (d == NULL) {
        PQfinish(c);
        return kerr_set(err, KERR_NOMEM, "out of memory");
    }
    d->conn = c;

    /* Deadlines for every statement and lock wait of this session. SET takes
     * no parameters, so the numbers are formatted (they are ours, not input). */
    char sql[160];
    snprintf(sql, sizeof sql,
             "SET statement_timeout = %lld; SET lock_timeout = %lld; SET TIME ZONE 'UTC'; "
             "SET client_min_messages = warning",
             (long long)o->timeout_ms, (long long)o->timeout_ms);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        int rc = fail(d, r, "setting session timeouts", err);
        PQclear(r);
        db_free(d);
        return rc;
    }
    PQclear(r);
    *out = d;
    return 0;
}

void db_free(db *d)
{
    if (d == NULL)
        return;
    PQfinish(d->conn);
    free(d);
}

int db_alive(const db *d)
{
    return d && PQstatus(d->conn) == CONNECTION_OK;
}

/* An idle connection has nothing to read: if its socket is readable, the
 * server said something unprompted (a FATAL on shutdown or termination) or
 * closed it. Either way it must not be lent out. No round trip. */
static int idle_conn_usable(db *d)
{
    if (!db_alive(d) || PQtransactionStatus(d->conn) != PQTRANS_IDLE)
        return 0;
    struct pollfd pfd = {.fd = PQsocket(d->conn), .events = POLLIN};
    int n = poll(&pfd, 1, 0);
    if (n < 0 || pfd.fd < 0)
        return 0;
    return n == 0;
}

int db_ping(db *d, kerr *err)
{
    return exec_ok(d, "SELECT 1", 0, NULL, "ping", err);
}

/* ------------------------------------------------------------ migrations */

int db_schema_version(db *d, int *version, kerr *err)
{
    PGresult *r = PQexec(d->conn,
                         "SELECT CASE WHEN to_regclass('kyc.schema_migrations') IS NULL THEN 0 "
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
        int rc = fail(d, r, "reading schema version", err);
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
    int want = kycd_migrations_count ? kycd_migrations[kycd_migrations_count - 1].version : 0;
    if (have < want)
        return kerr_set(err, KERR_STATE,
                        "database schema is at version %d, this kycd needs %d: run `kycd migrate` first",
                        have, want);
    if (have > want)
        klog(KLOG_WARN, "database schema is newer than this kycd", KLOG_INT("schema", have),
             KLOG_INT("kycd", want));
    return 0;
}

static int migrate_locked(db *d, int *applied, kerr *err)
{
    int rc = exec_ok(d,
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
        PGresult *r = exec_params(d, "SELECT sha256 FROM kyc.schema_migrations WHERE version = $1",
                                  1, p1);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rc = fail(d, r, "reading kyc.schema_migrations", err);
            PQclear(r);
            return rc;
        }
        if (PQntuples(r) == 1) {
            int same = strcmp(PQgetvalue(r, 0, 0), m->sha256) == 0;
            PQclear(r);
            if (!same)
                return kerr_set(err, KERR_STATE,
                                "migration %s was changed after it was applied: add a new migration instead",
                                m->name);
            continue;
        }
        PQclear(r);

        /* One transaction per migration: the file and its record together. */
        if ((rc = exec_ok(d, "BEGIN", 0, NULL, "begin", err)) != 0)
            return rc;
        PGresult *mr = PQexec(d->conn, m->sql);
        if (PQresultStatus(mr) != PGRES_COMMAND_OK && PQresultStatus(mr) != PGRES_TUPLES_OK) {
            rc = fail(d, mr, m->name, err);
            PQclear(mr);
            rollback_quietly(d);
            return rc;
        }
        PQclear(mr);
        const char *p3[] = {version, m->name, m->sha256};
        rc = exec_ok(d, "INSERT INTO kyc.schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
                     3, p3, "recording migration", err);
        if (rc == 0)
            rc = exec_ok(d, "COMMIT", 0, NULL, "commit", err);
        if (rc != 0) {
            rollback_quietly(d);
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
    int rc = exec_ok(d, "SET statement_timeout = 0; SET lock_timeout = 0", 0, NULL,
                     "clearing timeouts", err);
    if (rc != 0)
        return rc;
    char key[24];
    snprintf(key, sizeof key, "%d", MIGRATE_LOCK_KEY);
    const char *p[] = {key};
    if ((rc = exec_ok(d, "SELECT pg_advisory_lock($1::bigint)", 1, p, "taking the migration lock",
                      err)) != 0)
        return rc;
    int n = 0;
    rc = migrate_locked(d, &n, err);
    kerr ignored;
    if (exec_ok(d, "SELECT pg_advisory_unlock($1::bigint)", 1, p, "unlock", &ignored) != 0 && rc == 0)
        rc = kerr_set(err, KERR_DB, "releasing the migration lock: %s", ignored.msg);
    if (rc == 0)
        *applied = n;
    return rc;
}

/* ---------------------------------------------------------------- ingest */

/* The current state of one KYC user, locked for this transaction. */
static const char SQL_KYC_ENSURE[] =
    "INSERT INTO kyc.verifications (external_user_id, source) VALUES ($1, 'webhook') "
    "ON CONFLICT (external_user_id) DO NOTHING";

static const char SQL_KYC_LOCK[] =
    "SELECT coalesce(verification_status, ''), coalesce(attempt_status, ''), "
    "       coalesce(rejection_reason, ''), "
    "       (extract(epoch FROM coalesce($2::timestamptz, clock_timestamp()) - updated_at) "
    "        * 1000)::bigint "
    "FROM kyc.verifications WHERE external_user_id = $1 FOR UPDATE";

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
#define SQL_EVENT_CTE                                                                       \
    "WITH t AS (SELECT coalesce($11::timestamptz, clock_timestamp()) AS ts), "              \
    "ev AS (INSERT INTO kyc.webhook_events (received_at, kind, external_user_id, body, "    \
    "  body_sha256, remote_addr, request_id, repeat_of, outcome, outcome_reason, "          \
    "  unknown_fields) "                                                                    \
    "  SELECT t.ts, $2, $1, $3::jsonb, decode($4, 'hex'), $5::inet, $6, $7::bigint, $8, $9, " \
    "  $10::text[] FROM t RETURNING id, received_at) "

/* A row created by this very delivery takes the delivery's time as its
 * first sight, so that first_seen_at, received_at and changed_at agree. */
#define SQL_FIRST_SEEN                                                                      \
    "  first_seen_at = CASE WHEN v.last_webhook_at IS NULL AND v.source = 'webhook' "       \
    "  AND v.verification_status IS NULL THEN ev.received_at ELSE v.first_seen_at END, "

/* APPLY: new state, history row; $12..$14 the new state. */
static const char SQL_KYC_APPLY[] =
    SQL_EVENT_CTE
    ", old AS (SELECT verification_status, attempt_status, rejection_reason "
    "  FROM kyc.verifications WHERE external_user_id = $1), "
    "up AS (UPDATE kyc.verifications v SET verification_status = $12, attempt_status = $13, "
    SQL_FIRST_SEEN
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
    SQL_EVENT_CTE
    ", up AS (UPDATE kyc.verifications v SET needs_check_reason = $9, "
    SQL_FIRST_SEEN
    "  next_check_at = ev.received_at, last_webhook_at = ev.received_at "
    "  FROM ev WHERE v.external_user_id = $1) "
    "SELECT id FROM ev";

/* UNCHANGED: only note that P100 spoke. */
static const char SQL_KYC_UNCHANGED[] =
    SQL_EVENT_CTE
    ", up AS (UPDATE kyc.verifications v SET last_webhook_at = ev.received_at "
    "  FROM ev WHERE v.external_user_id = $1) "
    "SELECT id FROM ev";

static const char SQL_POA_APPLY[] =
    SQL_EVENT_CTE
    ", up AS (INSERT INTO kyc.poa_statuses (external_user_id, status, updated_at, last_event_id) "
    "  SELECT $1, $12, ev.received_at, ev.id FROM ev "
    "  ON CONFLICT (external_user_id) DO UPDATE SET status = EXCLUDED.status, "
    "  updated_at = EXCLUDED.updated_at, last_event_id = EXCLUDED.last_event_id) "
    "SELECT id FROM ev";

static const char SQL_EVENT_ONLY[] = SQL_EVENT_CTE "SELECT id FROM ev";

/* The ingest statements, prepared once per session (parsing and planning
 * them on every delivery would cost more than running them). */
enum stmt {
    ST_KYC_ENSURE, ST_KYC_LOCK, ST_OTHER_LOCK, ST_PRIOR, ST_REPLAYED,
    ST_KYC_APPLY, ST_KYC_HOLD, ST_KYC_UNCHANGED, ST_POA_APPLY, ST_EVENT_ONLY, ST_COUNT
};

static const struct {
    const char *name;
    const char *sql;
    int nparams;
} STMTS[ST_COUNT] = {
    [ST_KYC_ENSURE] = {"kycd_kyc_ensure", SQL_KYC_ENSURE, 1},
    [ST_KYC_LOCK] = {"kycd_kyc_lock", SQL_KYC_LOCK, 2},
    [ST_OTHER_LOCK] = {"kycd_other_lock", SQL_OTHER_LOCK, 2},
    [ST_PRIOR] = {"kycd_prior", SQL_PRIOR, 5},
    [ST_REPLAYED] = {"kycd_replayed", SQL_REPLAYED, 1},
    [ST_KYC_APPLY] = {"kycd_kyc_apply", SQL_KYC_APPLY, 14},
    [ST_KYC_HOLD] = {"kycd_kyc_hold", SQL_KYC_HOLD, 11},
    [ST_KYC_UNCHANGED] = {"kycd_kyc_unchanged", SQL_KYC_UNCHANGED, 11},
    [ST_POA_APPLY] = {"kycd_poa_apply", SQL_POA_APPLY, 12},
    [ST_EVENT_ONLY] = {"kycd_event_only", SQL_EVENT_ONLY, 11},
};

/* Prepared lazily: the tables must exist (after kycd migrate). */
static int prepare_all(db *d, kerr *err)
{
    if (d->prepared)
        return 0;
    for (int i = 0; i < ST_COUNT; i++) {
        PGresult *r = PQprepare(d->conn, STMTS[i].name, STMTS[i].sql, STMTS[i].nparams, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            int rc = fail(d, r, "preparing statements", err);
            PQclear(r);
            return rc;
        }
        PQclear(r);
    }
    d->prepared = 1;
    return 0;
}

static PGresult *run(db *d, enum stmt st, const char *const *vals)
{
    return PQexecPrepared(d->conn, STMTS[st].name, STMTS[st].nparams, vals, NULL, NULL, 0);
}

static int run_ok(db *d, enum stmt st, const char *const *vals, const char *what, kerr *err)
{
    PGresult *r = run(d, st, vals);
    ExecStatusType s = PQresultStatus(r);
    int rc = 0;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        rc = fail(d, r, what, err);
    PQclear(r);
    return rc;
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
    const char *outcome, *reason;
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

    if ((rc = prepare_all(d, err)) != 0)
        return rc;
    if ((rc = exec_ok(d, "BEGIN", 0, NULL, "begin", err)) != 0)
        return rc;

    if (dl->received_us > 0 && dl->request_id[0]) {
        const char *pr[] = {dl->request_id};
        r = run(d, ST_REPLAYED, pr);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rc = fail(d, r, "looking for a replayed delivery", err);
            goto out;
        }
        if (PQntuples(r) == 1) {
            /* Stored before the crash that interrupted the replay. */
            res->event_id = atoll(PQgetvalue(r, 0, 0));
            res->repeat_of = PQgetisnull(r, 0, 1) ? 0 : atoll(PQgetvalue(r, 0, 1));
            res->outcome = "unchanged";
            res->reason = "already_stored";
            PQclear(r);
            r = NULL;
            rc = exec_ok(d, "COMMIT", 0, NULL, "commit", err);
            goto out;
        }
        PQclear(r);
        r = NULL;
    }

    kyc_status cur;
    memset(&cur, 0, sizeof cur);
    int64_t age = -1;
    const char *p1[] = {dl->external_user_id, kind};
    if (dl->kind == KYC_KIND_KYC_STATUS) {
        if ((rc = run_ok(d, ST_KYC_ENSURE, p1, "creating user row", err)) != 0)
            goto out;
        const char *pl[] = {dl->external_user_id, received_p};
        r = run(d, ST_KYC_LOCK, pl);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
            rc = PQresultStatus(r) == PGRES_TUPLES_OK
                     ? kerr_set(err, KERR_DB, "user row vanished while locked")
                     : fail(d, r, "locking user row", err);
            goto out;
        }
        snprintf(cur.verification, sizeof cur.verification, "%s", PQgetvalue(r, 0, 0));
        snprintf(cur.attempt, sizeof cur.attempt, "%s", PQgetvalue(r, 0, 1));
        snprintf(cur.reason, sizeof cur.reason, "%s", PQgetvalue(r, 0, 2));
        age = PQgetisnull(r, 0, 3) ? -1 : atoll(PQgetvalue(r, 0, 3));
        PQclear(r);
        r = NULL;
    } else if ((rc = run_ok(d, ST_OTHER_LOCK, p1, "locking user", err)) != 0) {
        goto out;
    }

    const char *p4[] = {dl->external_user_id, dl->body_sha256, kind, window, received_p};
    r = run(d, ST_PRIOR, p4);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rc = fail(d, r, "looking for repeats", err);
        goto out;
    }
    if (!PQgetisnull(r, 0, 0))
        repeat_of = atoll(PQgetvalue(r, 0, 0));
    int same_poa = strcmp(PQgetvalue(r, 0, 1), dl->other_status) == 0;
    PQclear(r);
    r = NULL;

    if (dl->kind == KYC_KIND_KYC_STATUS) {
        kyc_transition t = {
            .current = &cur,
            .current_age_ms = age,
            .incoming = &dl->status,
            .source = KYC_SRC_WEBHOOK,
            .is_repeat = repeat_of != 0,
            .reorder_window_ms = o->reorder_window_ms,
        };
        kyc_verdict v = kyc_state_decide(&t);
        outcome = kyc_decision_name(v.decision);
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
        write = ST_EVENT_ONLY;
        if (dl->kind == KYC_KIND_POA_STATUS) {
            /* POA has no documented order: the latest delivery wins, but a
             * repeat of an older body never overrides a newer status. */
            if (repeat_of) {
                outcome = "unchanged", reason = "repeat";
            } else if (same_poa) {
                outcome = "unchanged", reason = "same";
            } else {
                outcome = "applied", reason = "latest";
                write = ST_POA_APPLY;
                state_val[0] = dl->other_status;
            }
        } else {
            outcome = "recorded", reason = repeat_of ? "repeat" : "recorded";
        }
    }

    if (repeat_of)
        snprintf(repeat_buf, sizeof repeat_buf, "%lld", repeat_of);
    const char *pw[14] = {
        dl->external_user_id, kind, NULL, dl->body_sha256,
        dl->remote_addr[0] ? dl->remote_addr : NULL,
        dl->request_id[0] ? dl->request_id : NULL,
        repeat_of ? repeat_buf : NULL, outcome, reason, unknown, received_p,
        state_val[0], state_val[1], state_val[2],
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
        rc = fail(d, r, "storing delivery", err);
        goto out;
    }
    long long event_id = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    r = NULL;

    if ((rc = exec_ok(d, "COMMIT", 0, NULL, "commit", err)) != 0)
        goto out;
    res->event_id = event_id;
    res->repeat_of = repeat_of;
    res->outcome = outcome;
    res->reason = reason;
    return 0;
out:
    PQclear(r);
    rollback_quietly(d);
    return rc;
}

/* ------------------------------------------------------------ reconciler */

static const char SQL_CLAIM[] =
    "WITH due AS ("
    "  SELECT external_user_id FROM kyc.verifications"
    "  WHERE attention_reason IS NULL"
    "    AND (needs_check_reason IS NOT NULL OR attempt_status IS NULL"
    "         OR attempt_status IN ('PENDING', 'VERIFICATION'))"
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
    PGresult *r = exec_params(d, SQL_CLAIM, 4, p);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = fail(d, r, "claiming due users", err);
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
    return exec_ok(d,
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

static int is_pending(const kyc_status *s)
{
    enum kyc_astatus a = kyc_astatus_parse(s->attempt);
    return a == KYC_A_NONE || a == KYC_A_PENDING || a == KYC_A_VERIFICATION;
}

int db_record_check(db *d, const db_check *c, db_check_result *res, kerr *err)
{
    int rc;
    PGresult *r = NULL;
    db_check_result out;
    memset(&out, 0, sizeof out);
    const char *uid = c->external_user_id;

    if ((rc = exec_ok(d, "BEGIN", 0, NULL, "begin", err)) != 0)
        return rc;
    const char *p1[] = {uid};
    r = exec_params(d,
                    "SELECT coalesce(verification_status, ''), coalesce(attempt_status, ''), "
                    "coalesce(rejection_reason, ''), coalesce(lease_owner, '') "
                    "FROM kyc.verifications WHERE external_user_id = $1 FOR UPDATE",
                    1, p1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rc = PQresultStatus(r) == PGRES_TUPLES_OK
                 ? kerr_set(err, KERR_NOTFOUND, "user vanished")
                 : fail(d, r, "locking user for a check", err);
        goto out;
    }
    snprintf(out.before.verification, sizeof out.before.verification, "%s", PQgetvalue(r, 0, 0));
    snprintf(out.before.attempt, sizeof out.before.attempt, "%s", PQgetvalue(r, 0, 1));
    snprintf(out.before.reason, sizeof out.before.reason, "%s", PQgetvalue(r, 0, 2));
    out.lost_lease = strcmp(PQgetvalue(r, 0, 3), c->owner) != 0;
    PQclear(r);
    r = NULL;

    /* Decide what the answer does. */
    const char *result = "released";
    kyc_status merged;
    memset(&merged, 0, sizeof merged);
    kyc_verdict v = {KYC_UNCHANGED, "same"};
    if (out.lost_lease) {
        result = "released";
    } else if (strcmp(c->outcome, "ok") == 0 && c->answer) {
        /* P100's status body is not documented: a field it leaves out keeps
         * its stored value rather than being erased. */
        merged = *c->answer;
        if (merged.verification[0] == '\0')
            memcpy(merged.verification, out.before.verification, sizeof merged.verification);
        if (merged.attempt[0] == '\0') {
            memcpy(merged.attempt, out.before.attempt, sizeof merged.attempt);
            if (merged.reason[0] == '\0')
                memcpy(merged.reason, out.before.reason, sizeof merged.reason);
        }
        kyc_transition t = {.current = &out.before, .current_age_ms = -1, .incoming = &merged,
                            .source = KYC_SRC_RECONCILER, .is_repeat = 0, .reorder_window_ms = 0};
        v = kyc_state_decide(&t);
        result = v.decision == KYC_APPLY ? "applied" : "unchanged";
    } else if (c->flag) {
        result = "flagged";
    } else if (c->count_failure || strcmp(c->outcome, "rate_limited") == 0) {
        result = "retry";
    }

    /* The call, always recorded. */
    char http[16], latency[32];
    snprintf(http, sizeof http, "%ld", c->http_status);
    snprintf(latency, sizeof latency, "%.3f", c->latency_ms);
    size_t blen = c->body ? c->body_len : 0;
    if (blen > 65536)
        blen = 65536;
    /* The raw answer goes in a text column: keep it valid UTF-8, no NUL. */
    char *body = NULL;
    if (c->body) {
        body = malloc(blen + 1);
        if (body == NULL) {
            rc = kerr_set(err, KERR_NOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < blen; i++)
            body[i] = c->body[i] ? c->body[i] : ' ';
        body[blen] = '\0';
        if (!payload_utf8_valid(body, blen))
            snprintf(body, blen + 1, "(not UTF-8, %zu bytes)", c->body_len);
    }
    const char *pc[] = {uid, c->owner, c->http_status ? http : NULL,
                        c->error_code && *c->error_code ? c->error_code : NULL, latency,
                        c->outcome, result, c->detail, body};
    r = exec_params(d,
                    "INSERT INTO kyc.status_checks (external_user_id, checker, http_status, "
                    "error_code, latency_ms, outcome, result, detail, body) "
                    "VALUES ($1, $2, $3::integer, $4, $5::float8, $6, $7, $8, $9) RETURNING id",
                    9, pc);
    free(body);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rc = fail(d, r, "recording the check", err);
        goto out;
    }
    out.check_id = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    r = NULL;
    char check_id[24];
    snprintf(check_id, sizeof check_id, "%lld", out.check_id);

    if (!out.lost_lease && strcmp(c->outcome, "misconfigured") == 0) {
        /* Our credentials are wrong, not the user: touch nothing but the claim. */
        rc = exec_ok(d,
                     "UPDATE kyc.verifications SET lease_owner = NULL, lease_until = NULL "
                     "WHERE external_user_id = $1",
                     1, p1, "releasing the claim", err);
        if (rc != 0)
            goto out;
    } else if (!out.lost_lease) {
        if (strcmp(result, "applied") == 0) {
            const char *pa[] = {uid, merged.verification, merged.attempt, merged.reason,
                                "reconciler", v.reason, check_id};
            if ((rc = exec_ok(d, SQL_APPLY_AUTHORITATIVE, 7, pa, "applying P100's state", err)) != 0)
                goto out;
        }
        /* Bookkeeping: schedule, failures, flag, lease. */
        char next[24], fails[8];
        const kyc_status *now_state = strcmp(result, "applied") == 0 ? &merged : &out.before;
        int64_t next_ms = c->next_check_ms;
        if (strcmp(c->outcome, "ok") == 0)
            next_ms = is_pending(now_state) ? c->next_check_ms : -1;
        snprintf(next, sizeof next, "%lld", (long long)next_ms);
        snprintf(fails, sizeof fails, "%d", c->count_failure ? 1 : 0);
        const char *pb[] = {uid, check_id, next, fails, strcmp(c->outcome, "ok") == 0 ? "1" : "0",
                            c->flag ? (c->detail ? c->detail : c->outcome) : NULL};
        rc = exec_ok(d,
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
    if ((rc = exec_ok(d, "COMMIT", 0, NULL, "commit", err)) != 0)
        goto out;
    out.result = result;
    *res = out;
    return 0;
out:
    PQclear(r);
    rollback_quietly(d);
    return rc;
}

int db_record_created(db *d, const char *external_user_id, const char *verification_id,
                      int already_pending, int64_t pending_after_ms, kerr *err)
{
    int rc;
    PGresult *r = NULL;
    if ((rc = exec_ok(d, "BEGIN", 0, NULL, "begin", err)) != 0)
        return rc;
    const char *p1[] = {external_user_id};
    if ((rc = exec_ok(d,
                      "INSERT INTO kyc.verifications (external_user_id, source) VALUES ($1, 'api') "
                      "ON CONFLICT (external_user_id) DO NOTHING",
                      1, p1, "creating user row", err)) != 0)
        goto out;
    r = exec_params(d,
                    "SELECT coalesce(verification_status, ''), coalesce(attempt_status, ''), "
                    "coalesce(rejection_reason, '') FROM kyc.verifications "
                    "WHERE external_user_id = $1 FOR UPDATE",
                    1, p1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rc = fail(d, r, "locking user", err);
        goto out;
    }
    kyc_status cur, want;
    memset(&cur, 0, sizeof cur);
    memset(&want, 0, sizeof want);
    snprintf(cur.verification, sizeof cur.verification, "%s", PQgetvalue(r, 0, 0));
    snprintf(cur.attempt, sizeof cur.attempt, "%s", PQgetvalue(r, 0, 1));
    snprintf(cur.reason, sizeof cur.reason, "%s", PQgetvalue(r, 0, 2));
    PQclear(r);
    r = NULL;

    char after[24];
    snprintf(after, sizeof after, "%lld", (long long)pending_after_ms);
    if (!already_pending) {
        /* A new verification was created: its attempt is PENDING (initiated,
         * awaiting processing); an expired verification stays EXPIRED
         * until the new one is decided. */
        snprintf(want.verification, sizeof want.verification, "%s",
                 kyc_vstatus_parse(cur.verification) == KYC_V_EXPIRED ? "EXPIRED" : "NOT_VERIFIED");
        snprintf(want.attempt, sizeof want.attempt, "PENDING");
        kyc_transition t = {&cur, -1, &want, KYC_SRC_API, 0, 0};
        if (kyc_state_decide(&t).decision == KYC_APPLY) {
            const char *pa[] = {external_user_id, want.verification, want.attempt, "", "api", "api",
                                NULL};
            if ((rc = exec_ok(d, SQL_APPLY_AUTHORITATIVE, 7, pa, "recording the new verification",
                              err)) != 0)
                goto out;
        }
        const char *pv[] = {external_user_id, verification_id, after};
        rc = exec_ok(d,
                     "UPDATE kyc.verifications SET verification_id = $2, attention_reason = NULL, "
                     "  failures = 0, next_check_at = clock_timestamp() + "
                     "  make_interval(secs => $3::float8 / 1000) WHERE external_user_id = $1",
                     3, pv, "recording the verification id", err);
    } else {
        /* P100 says a verification is already pending: follow it at once,
         * even if no webhook ever comes. */
        rc = exec_ok(d,
                     "UPDATE kyc.verifications SET needs_check_reason = coalesce(needs_check_reason, "
                     "  'api_pending'), next_check_at = clock_timestamp(), attention_reason = NULL, "
                     "  failures = 0 WHERE external_user_id = $1",
                     1, p1, "marking the user pending", err);
    }
    if (rc == 0)
        rc = exec_ok(d, "COMMIT", 0, NULL, "commit", err);
out:
    PQclear(r);
    if (rc != 0)
        rollback_quietly(d);
    return rc;
}

/* Append a query's rows as aligned "label: value" blocks or a small table. */
static int report_rows(db *d, kbuf *out, const char *title, const char *sql, const char *uid,
                       kerr *err)
{
    const char *p[] = {uid};
    PGresult *r = exec_params(d, sql, 1, p);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = fail(d, r, title, err);
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

int db_user_report(db *d, const char *external_user_id, kbuf *out, kerr *err)
{
    const char *p[] = {external_user_id};
    PGresult *r = exec_params(d,
                              "SELECT verification_status, attempt_status, rejection_reason, "
                              "verification_id, source, first_seen_at, updated_at, last_webhook_at, "
                              "needs_check_reason, attention_reason, failures, last_checked_at, "
                              "next_check_at FROM kyc.verifications WHERE external_user_id = $1",
                              1, p);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = fail(d, r, "reading the user", err);
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
                          "coalesce(old_verification_status, '-') || '/' || coalesce(old_attempt_status, '-') AS old, "
                          "coalesce(new_verification_status, '-') || '/' || coalesce(new_attempt_status, '-') AS new, "
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

/* ------------------------------------------------------------------ pool */

struct db_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    db_opts opts;
    char *conninfo, *password, *appname;
    int size;
    int nfree;      /* slots not lent out */
    db **slots;     /* free stack: slots[0..nfree) may hold NULL (not yet open) */
};

int db_pool_new(db_pool **out, const db_opts *o, int size, kerr *err)
{
    db_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return kerr_set(err, KERR_NOMEM, "out of memory");
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->slots = calloc((size_t)size, sizeof *p->slots);
    p->conninfo = strdup(o->conninfo ? o->conninfo : "");
    p->password = o->password ? strdup(o->password) : NULL;
    p->appname = strdup(o->application_name ? o->application_name : "kycd");
    if (p->slots == NULL || p->conninfo == NULL || p->appname == NULL ||
        (o->password && p->password == NULL)) {
        db_pool_free(p);
        return kerr_set(err, KERR_NOMEM, "out of memory");
    }
    p->opts = *o;
    p->opts.conninfo = p->conninfo;
    p->opts.password = p->password;
    p->opts.application_name = p->appname;
    p->size = size;
    p->nfree = size;
    *out = p;
    return 0;
}

int db_pool_get(db_pool *p, int64_t timeout_ms, db **out, kerr *err)
{
    struct timespec until = clock_deadline(timeout_ms);
    pthread_mutex_lock(&p->mu);
    while (p->nfree == 0) {
        if (pthread_cond_timedwait(&p->cv, &p->mu, &until) != 0 && p->nfree == 0) {
            pthread_mutex_unlock(&p->mu);
            return kerr_set(err, KERR_TIMEOUT, "no database connection free within %lld ms",
                            (long long)timeout_ms);
        }
    }
    db *d = p->slots[--p->nfree];
    p->slots[p->nfree] = NULL;
    pthread_mutex_unlock(&p->mu);

    if (d != NULL && idle_conn_usable(d)) {
        *out = d;
        return 0;
    }
    db_free(d);
    /* Connect outside the lock: other threads keep using their slots. */
    int rc = db_connect(&d, &p->opts, err);
    if (rc != 0) {
        db_pool_put(p, NULL);
        return rc;
    }
    *out = d;
    return 0;
}

void db_pool_put(db_pool *p, db *d)
{
    if (d != NULL && !db_alive(d)) {
        db_free(d);
        d = NULL;
    }
    pthread_mutex_lock(&p->mu);
    /* Open connections go on top so that they are reused first. */
    if (d != NULL) {
        p->slots[p->nfree++] = d;
    } else {
        memmove(p->slots + 1, p->slots, (size_t)p->nfree * sizeof *p->slots);
        p->slots[0] = NULL;
        p->nfree++;
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void db_pool_free(db_pool *p)
{
    if (p == NULL)
        return;
    for (int i = 0; p->slots && i < p->nfree; i++)
        db_free(p->slots[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->slots);
    free(p->conninfo);
    if (p->password) {
        memset(p->password, 0, strlen(p->password));
        free(p->password);
    }
    free(p->appname);
    free(p);
}
