/* Private to the database module (src/io/db*.c and io/migrate.c): what its
 * parts share. Not an API: nothing outside io/db*.c and io/migrate.c may
 * include it; it is the one place besides them that includes libpq.
 *
 * The helpers follow the module's error convention: a failed result is
 * mapped by db_fail (data refused: KERR_INVALID; anything else: KERR_DB,
 * retryable), and every PGresult is cleared by the function that got it. */
#ifndef KYCD_IO_DB_INTERNAL_H
#define KYCD_IO_DB_INTERNAL_H

#include <libpq-fe.h>

#include "base/buf.h"
#include "io/db.h"

struct db {
    PGconn *conn;
    unsigned prepared; /* bit per statement set prepared on this session */
    int broken;        /* a pipeline's stream went out of step: never reuse */
};

/* Map a failed result (or the connection's error, r NULL) to a kerr. */
int db_fail(db *d, PGresult *r, const char *what, kerr *err);

/* Without parameters, PQexec (which accepts several statements); with
 * them, PQexecParams (one statement, values never parsed as SQL). */
PGresult *db_exec(db *d, const char *sql, int n, const char *const *vals);

/* Check and clear a result of a statement whose rows are ignored. */
int db_result_ok(db *d, PGresult *r, const char *what, kerr *err);

/* db_exec, then db_result_ok. */
int db_exec_ok(db *d, const char *sql, int n, const char *const *vals, const char *what, kerr *err);

/* ROLLBACK if a transaction is open and the connection still works. */
void db_rollback_quietly(db *d);

/* A statement prepared once per session (parsing and planning a hot
 * statement on every call would cost more than running it). */
typedef struct db_stmt {
    const char *name;
    const char *sql;
    int nparams;
} db_stmt;

/* Statement sets, one bit each in db.prepared. */
enum { DB_SET_COMMON = 1u << 0, DB_SET_INGEST = 1u << 1 };

/* Prepare the n statements of one set on this session, once. Lazily: the
 * tables must exist (after kycd migrate). */
int db_prepare_set(db *d, unsigned set, const db_stmt *stmts, int n, kerr *err);
/* Run a prepared statement. */
PGresult *db_run(db *d, const db_stmt *st, const char *const *vals);
/* Queue a prepared statement in pipeline mode (PQsendQueryPrepared): 0,
 * or KERR_DB when libpq refused it (see PQerrorMessage). */
int db_send(db *d, const db_stmt *st, const char *const *vals);

/* The user's row, locked FOR UPDATE for this transaction. */
typedef struct db_user_row {
    kyc_status status;     /* "" for a NULL column */
    int64_t age_ms;        /* since updated_at, at `at` (or now); -1 if unknown */
    char lease_owner[256]; /* "" when unclaimed */
    int failures;          /* the reconciler's transient answers in a row */
} db_user_row;

/* Lock the user's row and read its state. at: a timestamptz to measure
 * the age from (NULL: now). KERR_NOTFOUND when there is no such row. */
int db_lock_user(db *d, const char *external_user_id, const char *at, db_user_row *row,
                 const char *what, kerr *err);

/* The row lock of db_lock_user for several users at once (io/db_ingest.c
 * queues it in pipeline mode: prepare it first with db_prepare_set(d,
 * DB_SET_COMMON, &DB_LOCK_USERS, 1, ...)): $1 users, $2 the times to
 * measure the ages from (arrays, see db_array_add); one row per user found,
 * its ordinal in $1 first, then db_user_row_read's columns. */
extern const db_stmt DB_LOCK_USERS;

/* Read a user row from r's row `row`, columns col .. col + 4 (of
 * DB_LOCK_USERS): the verification, attempt and rejection reason ('' for
 * NULL), the age in ms (NULL: -1) and the lease owner. */
void db_user_row_read(PGresult *r, int row, int col, db_user_row *out);

/* PostgreSQL array literals for the parameters of set-based statements,
 * one element per row: add each element (v NULL: a NULL element; len
 * (size_t)-1: strlen(v)), quoted and escaped, then close it ("{}" when
 * empty). Start from an empty buffer. 0 or KERR_NOMEM. */
int db_array_add(kbuf *a, const char *v, size_t len) KYCD_MUST_CHECK;
int db_array_done(kbuf *a) KYCD_MUST_CHECK;

/* A timestamptz parameter ("YYYY-MM-DD HH:MM:SS.uuuuuu+00") for an instant
 * in Unix microseconds (a delivery's receipt time). */
void db_time_param(long long us, char *buf, size_t cap);

/* An idle connection that may be lent out (no round trip). */
int db_idle_usable(db *d);

#endif
