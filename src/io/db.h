/* The database: connections, a small pool, migrations and the one write
 * path for webhook deliveries (the only user of libpq).
 *
 * Every call has a deadline (connect_timeout, statement_timeout and
 * lock_timeout are set from db_opts.timeout_ms); no statement text is ever
 * built from input: SQL is fixed text with $n parameters. */
#ifndef KYCD_IO_DB_H
#define KYCD_IO_DB_H

#include <stdint.h>

#include "base/err.h"
#include "core/kyc.h"
#include "core/state.h"

typedef struct db db;
typedef struct db_pool db_pool;

typedef struct db_opts {
    const char *conninfo;  /* libpq conninfo or URI; "" uses libpq's PG* environment */
    const char *password;  /* overrides the conninfo's; may be NULL */
    int64_t timeout_ms;    /* connect, statement and lock deadline */
    const char *application_name;
} db_opts;

/* Connect and set the session's timeouts. Errors are KERR_DB and never
 * contain the password. */
int db_connect(db **out, const db_opts *o, kerr *err) KYCD_MUST_CHECK;
void db_free(db *d);
/* 0 once libpq has seen the connection fail. */
int db_alive(const db *d);
/* Round trip (SELECT 1). */
int db_ping(db *d, kerr *err) KYCD_MUST_CHECK;

/* Apply the embedded migrations (sql/NNN_*.sql) that are not yet recorded
 * in kyc.schema_migrations, in order, each in its own transaction, holding
 * an advisory lock so that two hosts migrating at once take turns. Refuses
 * when an applied migration's checksum differs from the embedded one. */
int db_migrate(db *d, int *applied, kerr *err) KYCD_MUST_CHECK;
/* Highest applied migration version (0 when none). */
int db_schema_version(db *d, int *version, kerr *err) KYCD_MUST_CHECK;
/* KERR_STATE with a hint to run `kycd migrate` when the database is behind
 * this binary's migrations. */
int db_check_schema(db *d, kerr *err) KYCD_MUST_CHECK;

typedef struct db_ingest_opts {
    int64_t dedup_window_ms;    /* identical body within this window is a repeat */
    int64_t reorder_window_ms;  /* see core/state.h */
} db_ingest_opts;

typedef struct db_ingest_result {
    long long event_id;         /* kyc.webhook_events.id */
    long long repeat_of;        /* earlier identical delivery, or 0 */
    const char *outcome;        /* "applied", "unchanged", "held", "recorded" */
    const char *reason;         /* state-machine reason (core/state.h) or "latest"/"recorded"/"repeat" */
} db_ingest_result;

/* Store one verified delivery and apply it, in one transaction:
 * append to kyc.webhook_events, decide with the state machine, update
 * kyc.verifications (or kyc.poa_statuses) and append to kyc.status_changes.
 * Returns only after COMMIT succeeded: the delivery is durable.
 * KERR_DB: database unavailable or failed (retryable; nothing committed
 * unless the failure hit the COMMIT's answer, in which case a retry is
 * recorded as a repeat and changes nothing). KERR_INVALID: the database
 * refused the data itself (not retryable). */
int db_ingest(db *d, const kyc_delivery *dl, const db_ingest_opts *o, db_ingest_result *res,
              kerr *err) KYCD_MUST_CHECK;

/* A fixed-size pool of lazily opened connections shared by request
 * threads. A connection found dead on return is dropped and reopened on the
 * next get. */
int db_pool_new(db_pool **out, const db_opts *o, int size, kerr *err) KYCD_MUST_CHECK;
/* Borrow a connection, waiting at most timeout_ms for a free slot and
 * connecting if the slot is empty. KERR_TIMEOUT or KERR_DB on failure. */
int db_pool_get(db_pool *p, int64_t timeout_ms, db **out, kerr *err) KYCD_MUST_CHECK;
void db_pool_put(db_pool *p, db *d);
void db_pool_free(db_pool *p);

#endif
