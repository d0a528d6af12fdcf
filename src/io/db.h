/* The database: connections, a small pool, migrations and the one write
 * path for webhook deliveries (the only user of libpq).
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

/* ------------------------------------------------------- reconciler */

/* One user claimed for a check. */
typedef struct db_claim {
    char external_user_id[KYC_ID_MAX + 1];
    int failures;
} db_claim;

typedef struct db_claim_opts {
    const char *owner;          /* this instance, "host:pid" */
    int limit;                  /* at most this many */
    int64_t lease_ms;           /* how long the claim holds */
    int64_t pending_after_ms;   /* a pending user unchanged this long is due */
} db_claim_opts;

/* Claim users due for a check: held reports (needs_check_reason) and
 * pending users unchanged for pending_after, whose next_check_at has come,
 * not flagged for a person, not claimed by a live lease. Uses FOR UPDATE
 * SKIP LOCKED, so concurrent instances never claim the same user; the
 * claim is a lease (lease_owner, lease_until), so a crashed instance's
 * claims expire. No lock is held after this returns. */
int db_claim_due(db *d, const db_claim_opts *o, db_claim *out, int *n, kerr *err) KYCD_MUST_CHECK;

/* Give back this owner's claim on one user (a clean stop returns what no
 * worker took; claims of calls in flight stay until they are recorded). */
int db_release_claim(db *d, const char *owner, const char *external_user_id,
                     kerr *err) KYCD_MUST_CHECK;

/* The outcome of one Get KYC Status call, to record and apply. */
typedef struct db_check {
    const char *owner;
    const char *external_user_id;
    const char *outcome;        /* p100_class_name() */
    long http_status;           /* 0: none */
    const char *error_code;     /* "" when none */
    double latency_ms;
    const char *detail;         /* error message or NULL */
    const char *body;           /* raw answer, may be NULL */
    size_t body_len;
    const kyc_status *answer;   /* on outcome "ok": P100's state */
    /* What to do with the user (decided by the reconciler): */
    int flag;                   /* set attention_reason = detail, stop checking */
    int count_failure;          /* failures + 1 (the caller flags at the ceiling) */
    int64_t next_check_ms;      /* next_check_at = now + this; -1: NULL */
} db_check;

typedef struct db_check_result {
    long long check_id;
    const char *result;         /* "applied", "unchanged", "flagged", "retry", "released" */
    kyc_status before;          /* the stored state before */
    int lost_lease;             /* another instance took the user meanwhile: nothing applied */
} db_check_result;

/* Record the call in kyc.status_checks and, for an "ok" answer, apply
 * P100's state through the state machine (source reconciler; a change is
 * appended to kyc.status_changes with check_id), clear needs_check_reason
 * and failures; update the bookkeeping and release the lease. One
 * transaction. */
int db_record_check(db *d, const db_check *c, db_check_result *res, kerr *err) KYCD_MUST_CHECK;

/* After Create KYC Verification: record the user as pending with its
 * verificationId (source api). already_pending (202 P212): make sure the
 * user exists and is checked at once. pending_after_ms schedules the next
 * check. */
int db_record_created(db *d, const char *external_user_id, const char *verification_id,
                      int already_pending, int64_t pending_after_ms, kerr *err) KYCD_MUST_CHECK;

/* A human-readable report of one user: current state, changes, recent
 * deliveries and checks (for `kycd status`). KERR_NOTFOUND if unknown. */
int db_user_report(db *d, const char *external_user_id, kbuf *out, kerr *err) KYCD_MUST_CHECK;

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
