/* PostgreSQL access, the connection: connect with deadlines, map errors,
 * the exec helpers, prepared statements and the user-row lock shared by
 * the other parts of the database module (io/db_internal.h). The module
 * (io/db*.c, io/migrate.c) is the only code that includes libpq. Must
 * never format input into SQL, log a password, or hold a transaction open
 * across anything but its own statements. */
#include "io/db.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "io/db_internal.h"

/* ---------------------------------------------------------------- errors */

/* A server that cannot take writes on this session any more: it is (or
 * became, after a failover) a read-only standby (25006), it is shutting
 * down or in recovery (class 57P), or the connection failed (class 08).
 * The connection is never lent out again: the next one is made anew, and
 * libpq, given several hosts and target_session_attrs=read-write, finds
 * the primary. */
static int db_server_gone(const char *state)
{
    return state && (strcmp(state, "25006") == 0 || strncmp(state, "57P", 3) == 0 ||
                     strncmp(state, "08", 2) == 0);
}

/* Class 22 (data exception) and 23 (integrity) mean the data itself was
 * refused: KERR_INVALID. Everything else (connection lost, timeouts,
 * shutdown, a read-only server) is KERR_DB: retryable. */
int db_fail(db *d, PGresult *r, const char *what, kerr *err)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    char clean[256];
    snprintf(clean, sizeof clean, "%s", msg ? msg : PQerrorMessage(d->conn));
    clean[strcspn(clean, "\r\n")] = '\0';
    int code = KERR_DB;
    if (state && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0))
        code = KERR_INVALID;
    if (db_server_gone(state))
        d->broken = 1;
    return kerr_set(err, code, "%s: %s%s%s%s", what, clean, state ? " (sqlstate " : "",
                    state ? state : "", state ? ")" : "");
}

PGresult *db_exec(db *d, const char *sql, int n, const char *const *vals)
{
    if (n == 0)
        return PQexec(d->conn, sql);
    return PQexecParams(d->conn, sql, n, NULL, vals, NULL, NULL, 0);
}

int db_result_ok(db *d, PGresult *r, const char *what, kerr *err)
{
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = db_fail(d, r, what, err);
    PQclear(r);
    return rc;
}

int db_exec_ok(db *d, const char *sql, int n, const char *const *vals, const char *what, kerr *err)
{
    return db_result_ok(d, db_exec(d, sql, n, vals), what, err);
}

void db_time_param(long long us, char *buf, size_t cap)
{
    time_t secs = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(buf, cap, "%04d-%02d-%02d %02d:%02d:%02d.%06lld+00", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)(us % 1000000));
}

void db_rollback_quietly(db *d)
{
    if (PQstatus(d->conn) == CONNECTION_OK && PQtransactionStatus(d->conn) != PQTRANS_IDLE)
        PQclear(PQexec(d->conn, "ROLLBACK"));
}

/* ------------------------------------------------------------ connection */

int db_conninfo_keyword_is_secret(const char *kw, size_t n)
{
    /* libpq marks the keywords whose values it never shows ("password",
     * "sslpassword", and any it adds) with dispchar "*". */
    PQconninfoOption *opts = PQconndefaults();
    int secret = opts == NULL; /* fail closed: without libpq's table, hide it */
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strlen(o->keyword) == n && strncasecmp(o->keyword, kw, n) == 0)
            secret = o->dispchar && o->dispchar[0] == '*';
    PQconninfoFree(opts);
    return secret || (n >= 8 && strncasecmp(kw + n - 8, "password", 8) == 0);
}

int db_conninfo_check(const char *conninfo, kerr *err)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", &msg);
    if (opts == NULL) {
        /* libpq's message quotes the text it could not parse, which may be
         * a password ("invalid percent-encoded token: \"50%off-...\""): it
         * is never shown. */
        PQfreemem(msg);
        return kerr_set(err, KERR_INVALID,
                        "database_url is not a valid connection string or URI (libpq's message "
                        "is not shown: it may quote a secret); in a URI, percent-encode special "
                        "characters of the user and password (%% as %%25, @ as %%40)");
    }
    PQconninfoFree(opts);
    return 0;
}

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

    int rc0 = db_conninfo_check(o->conninfo, err);
    if (rc0 != 0)
        return rc0;
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
        int rc = db_fail(d, r, "setting session timeouts", err);
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
    return d && !d->broken && PQstatus(d->conn) == CONNECTION_OK;
}

/* An idle connection has nothing to read: if its socket is readable, the
 * server said something unprompted (a FATAL on shutdown or termination) or
 * closed it. Either way it must not be lent out. No round trip. */
int db_idle_usable(db *d)
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
    return db_exec_ok(d, "SELECT 1", 0, NULL, "ping", err);
}

/* --------------------------------------------------- prepared statements */

int db_prepare_set(db *d, unsigned set, const db_stmt *stmts, int n, kerr *err)
{
    if (d->prepared & set)
        return 0;
    for (int i = 0; i < n; i++) {
        PGresult *r = PQprepare(d->conn, stmts[i].name, stmts[i].sql, stmts[i].nparams, NULL);
        /* 42P05: prepared on this session by an earlier attempt that failed
         * on a later statement of the set (a PREPARE waits for the locks of
         * the tables it names, so a lock held past db_timeout stops it half
         * way). The names are kycd's own: it is this statement. Without
         * this the session could never prepare the set again. */
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (PQresultStatus(r) != PGRES_COMMAND_OK && !(state && strcmp(state, "42P05") == 0)) {
            int rc = db_fail(d, r, "preparing statements", err);
            PQclear(r);
            return rc;
        }
        PQclear(r);
    }
    d->prepared |= set;
    return 0;
}

PGresult *db_run(db *d, const db_stmt *st, const char *const *vals)
{
    return PQexecPrepared(d->conn, st->name, st->nparams, vals, NULL, NULL, 0);
}

int db_send(db *d, const db_stmt *st, const char *const *vals)
{
    return PQsendQueryPrepared(d->conn, st->name, st->nparams, vals, NULL, NULL, 0) == 1 ? 0
                                                                                         : KERR_DB;
}

/* ------------------------------------------------------- the user's row */

/* Lock users' rows, in the order given, and read their state. $1 users
 * (NULL elements are skipped), $2 the time to measure each row's age from
 * (NULL: now). One row per user found: its ordinal in $1, then the columns
 * db_user_row_read reads. Each element finds its row through a LATERAL
 * subquery that cannot be flattened (FOR UPDATE): one index lookup per
 * element, in array order, whatever the statistics say. */
static const char SQL_LOCK_USERS[] =
    "SELECT i.ord, l.* FROM unnest($1::text[], $2::timestamptz[]) WITH ORDINALITY AS i(u, at, ord) "
    "CROSS JOIN LATERAL (SELECT coalesce(v.verification_status, ''), "
    "    coalesce(v.attempt_status, ''), coalesce(v.rejection_reason, ''), "
    "    (extract(epoch FROM coalesce(i.at, clock_timestamp()) - v.updated_at) * 1000)::bigint, "
    "    coalesce(v.lease_owner, ''), v.failures "
    "  FROM kyc.verifications v WHERE v.external_user_id = i.u FOR UPDATE) l";

const db_stmt DB_LOCK_USERS = {"kycd_lock_users", SQL_LOCK_USERS, 2};

void db_user_row_read(PGresult *r, int row, int col, db_user_row *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->status.verification, sizeof out->status.verification, "%s",
             PQgetvalue(r, row, col));
    snprintf(out->status.attempt, sizeof out->status.attempt, "%s", PQgetvalue(r, row, col + 1));
    snprintf(out->status.reason, sizeof out->status.reason, "%s", PQgetvalue(r, row, col + 2));
    out->age_ms = PQgetisnull(r, row, col + 3) ? -1 : atoll(PQgetvalue(r, row, col + 3));
    snprintf(out->lease_owner, sizeof out->lease_owner, "%s", PQgetvalue(r, row, col + 4));
    out->failures = atoi(PQgetvalue(r, row, col + 5));
}

int db_lock_user(db *d, const char *external_user_id, const char *at, db_user_row *row,
                 const char *what, kerr *err)
{
    int rc = db_prepare_set(d, DB_SET_COMMON, &DB_LOCK_USERS, 1, err);
    if (rc != 0)
        return rc;
    kbuf users, ats;
    kbuf_init(&users);
    kbuf_init(&ats);
    if (db_array_add(&users, external_user_id, (size_t)-1) != 0 || db_array_done(&users) != 0 ||
        db_array_add(&ats, at, (size_t)-1) != 0 || db_array_done(&ats) != 0) {
        rc = kerr_set(err, KERR_NOMEM, "out of memory");
    } else {
        const char *p[] = {users.data, ats.data};
        PGresult *r = db_run(d, &DB_LOCK_USERS, p);
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            rc = db_fail(d, r, what, err);
        else if (PQntuples(r) != 1)
            rc = kerr_set(err, KERR_NOTFOUND, "%s: user row vanished while locked", what);
        else
            db_user_row_read(r, 0, 1, row);
        PQclear(r);
    }
    kbuf_deinit(&users);
    kbuf_deinit(&ats);
    return rc;
}

/* ------------------------------------------------------ array literals */

int db_array_add(kbuf *a, const char *v, size_t len)
{
    int rc = kbuf_append(a, a->len ? "," : "{", 1);
    if (rc != 0 || v == NULL)
        return rc ? rc : kbuf_append(a, "NULL", 4);
    if (len == (size_t)-1)
        len = strlen(v);
    if ((rc = kbuf_reserve(a, len + len / 8 + 2)) != 0 || (rc = kbuf_append(a, "\"", 1)) != 0)
        return rc;
    size_t from = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] != '"' && v[i] != '\\')
            continue;
        if ((rc = kbuf_append(a, v + from, i - from)) != 0 || (rc = kbuf_append(a, "\\", 1)) != 0)
            return rc;
        from = i;
    }
    if ((rc = kbuf_append(a, v + from, len - from)) != 0)
        return rc;
    return kbuf_append(a, "\"", 1);
}

int db_array_done(kbuf *a)
{
    int rc = a->len ? 0 : kbuf_append(a, "{", 1);
    return rc ? rc : kbuf_append(a, "}", 1);
}
