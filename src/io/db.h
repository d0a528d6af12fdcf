/* The database: one connection to PostgreSQL, opaque (`db`), and its
 * errors. The database module is this file's db.c plus its parts, each
 * with its own header, which includes this one (never the other way round:
 * a caller includes the part it uses):
 *   io/migrate.h     schema migrations and the schema check
 *   io/db_ingest.h   the one write path for webhook deliveries
 *   io/db_reconcile.h the reconciler's claims and results, Create KYC records
 *   io/db_report.h   the report of one user (kycd status)
 *   io/db_pool.h     a small pool of connections shared by threads
 *   io/db_partitions.h the history partitions: creation and retention
 *
 * Every call has a deadline (connect_timeout, statement_timeout and
 * lock_timeout are set from db_opts.timeout_ms); no statement text is ever
 * built from input: SQL is fixed text with $n parameters. */
#ifndef KYCD_IO_DB_H
#define KYCD_IO_DB_H

#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "core/kyc.h"
#include "core/state.h"

typedef struct db db;

typedef struct db_opts {
    const char *conninfo; /* libpq conninfo or URI; "" uses libpq's PG* environment */
    const char *password; /* overrides the conninfo's; may be NULL */
    int64_t timeout_ms;   /* connect, statement and lock deadline */
    const char *application_name;
} db_opts;

/* Connect and set the session's timeouts. Errors are KERR_DB and never
 * contain the password. */
/* 0 when conninfo parses as libpq's key/value string or URI; otherwise
 * KERR_INVALID with a message of ours (libpq's quotes the text it could
 * not parse, which may be a secret). db_connect checks this first. */
int db_conninfo_check(const char *conninfo, kerr *err) KYCD_MUST_CHECK;
/* Whether libpq keyword kw (n bytes, any case) holds a secret: one libpq
 * never displays (password, sslpassword, ...), or any *password keyword. */
int db_conninfo_keyword_is_secret(const char *kw, size_t n);

int db_connect(db **out, const db_opts *o, kerr *err) KYCD_MUST_CHECK;
void db_free(db *d);
/* 0 once libpq has seen the connection fail, or the server refused it
 * writes for good (a read-only standby after a failover: 25006; shutting
 * down: 57P*): such a connection is dropped, never lent out again. */
int db_alive(const db *d);
/* Round trip (SELECT 1). */
int db_ping(db *d, kerr *err) KYCD_MUST_CHECK;

#endif
