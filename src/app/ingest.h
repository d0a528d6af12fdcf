/* The durable write path: "accept, persist, answer". A request thread hands
 * a verified delivery to ingest_submit, which returns only once it is
 * durable: committed in PostgreSQL, or (when PostgreSQL is unreachable or
 * slower than the deadline) appended and fsynced to the local spool. This is
 * the one place that decides where a delivery goes.
 *
 * While the spool holds anything, new deliveries are spooled too, so that
 * they reach the database in the order they were accepted. A drainer
 * thread replays the spool through the same idempotent db_ingest (request
 * ids are unique: a record replayed twice after a crash is stored once) and
 * removes what is committed.
 *
 * Group commit: with committers, ingest_submit queues the delivery to the
 * committer its user hashes to (one user's deliveries keep their order)
 * and sleeps, unless that committer is idle: then this request thread is
 * the committer for a while. The committer writes whatever is queued, up
 * to a batch, in one transaction (db_ingest_batch) and wakes each request
 * thread after COMMIT. A failing database fails the whole batch (each delivery then
 * goes to the spool, as before); a delivery the database refuses makes
 * the committer store the batch one by one, so only it fails. The spool
 * replay uses the same batches, in spool order. */
#ifndef KYCD_APP_INGEST_H
#define KYCD_APP_INGEST_H

#include <stdint.h>

#include "app/store.h"
#include "base/err.h"
#include "core/kyc.h"
#include "io/db.h"
#include "io/db_ingest.h"
#include "io/spool.h"

typedef struct ingest ingest;

typedef struct ingest_opts {
    db_opts db; /* how to connect */
    int pool_size;
    int64_t wait_ms;           /* deadline for a free connection */
    const ingest_store *store; /* borrowed; NULL: the database above (store_db with
                                * pool_size connections). Unit tests pass a fake. */
    db_ingest_opts policy;     /* dedup and reorder windows */
    spool *spool;              /* borrowed; NULL: no spool (database down means 503) */
    int drainer;               /* start the drainer thread (kycd serve) */
    int64_t record_max;        /* largest spool record a delivery can need (max_body + headers):
                                * with less room than this, /readyz says not ready */
    /* Group commit (see the top of this file): committers (roles taken by
     * request threads, not threads of their own), each writing the
     * deliveries of its users in batches of up to batch_max per
     * transaction; one waits up to batch_wait_us for batch-mates when
     * fewer are queued. committers 0: each request thread writes its own.
     * batch_max also bounds a transaction of the spool replay. */
    int committers;
    int batch_max;
    int64_t batch_wait_us;
    /* A background thread pings the database this often (on the store's
     * own probe connection, with a short deadline) and ingest_ready answers
     * from its last result. 0: ingest_ready pings itself (unit tests). */
    int64_t probe_ms;
    /* The database's schema was not checked at start (kycd serve started
     * while the database was away, with a spool): every delivery goes to
     * the spool, and nothing is replayed, until the probe finds the
     * database answering with the schema this kycd needs (the store's
     * schema check, again at each probe while it does not match). */
    int schema_unchecked;
} ingest_opts;

/* What ingest knows of the database's schema. */
enum ingest_schema {
    INGEST_SCHEMA_OK = 0,    /* checked: this kycd's (at start, or since) */
    INGEST_SCHEMA_UNCHECKED, /* the database has not answered since the start */
    INGEST_SCHEMA_MISMATCH,  /* it answered with another schema: spooling, no replay */
};
/* The state and, unless OK, why (a sentence) in why[cap]. */
enum ingest_schema ingest_schema_state(ingest *in, char *why, size_t cap);

typedef struct ingest_stats {
    long long stored, spooled, replayed, dead_letters;
    int database_up; /* the last attempt reached the database */
} ingest_stats;

int ingest_new(ingest **out, const ingest_opts *o, kerr *err) KYCD_MUST_CHECK;
/* Stops the drainer (what it has not replayed stays in the spool). */
void ingest_free(ingest *in);

/* Persist one delivery (see handler_store.submit). A connection found dead
 * (server restarted) is replaced and the delivery retried once; then, if
 * the database still fails, the delivery goes to the spool. Fails
 * (KERR_DB: answer 503) only when neither the database nor the spool took
 * it; res->outcome is KYC_OUTCOME_SPOOLED for a spooled delivery. */
int ingest_submit(void *in, const kyc_delivery *d, db_ingest_result *res, kerr *err);

/* For /readyz: 0 when deliveries can be made durable (database answers, or
 * the spool has room); details gets a JSON fragment with the database's
 * state and the spool's depth and age. */
int ingest_ready(void *in, char *details, size_t cap, kerr *err);

/* The probe's last answer: 1 when the database answered; why (may be
 * NULL) gets the error otherwise. Only with probe_ms > 0. */
int ingest_database_up(ingest *in, char *why, size_t cap);

/* The database pool's connections (see db_pool_counts); zeros without one. */
void ingest_pool_counts(ingest *in, int *idle, int *busy, int *size);

/* Replay the whole spool now (kycd spool drain): stops at the first
 * database failure. *replayed counts the records committed. */
int ingest_drain(ingest *in, long long *replayed, kerr *err) KYCD_MUST_CHECK;

#endif
