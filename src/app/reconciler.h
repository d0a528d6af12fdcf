/* The reconciler: makes the stored KYC state converge on P100's truth by
 * asking Get KYC Status for users whose webhooks were held (out of order,
 * undocumented values) or who have been pending for too long.
 *
 * One dispatcher thread claims due users (db_claim_due: SKIP LOCKED plus a
 * lease, so several kycd instances share the work and never check one user
 * twice at once) and queues them; `concurrency` worker threads, each with
 * its own P100 client, take them, wait for a slot of the global rate limit
 * (`rate` calls per second), call P100 (no database lock is held during the
 * call) and record the answer (db_record_check). A backlog of N users with
 * rate R drains in about N/R seconds as long as concurrency covers R times
 * P100's latency.
 *
 * P100's answers: ok -> applied through the state machine (source
 * reconciler); final (P445, P412, ...) -> the user is flagged for a person
 * and not checked again; transient (P500, P501, 5xx, timeouts) -> per-user
 * backoff with jitter, flagged after max_failures in a row; 429 -> every
 * worker pauses for Retry-After; 401/403 (misconfigured) -> the whole
 * reconciler pauses for `interval`, marks itself not ready, touches no
 * record, and tries again later. */
#ifndef KYCD_APP_RECONCILER_H
#define KYCD_APP_RECONCILER_H

#include <stdint.h>

#include "app/p100_port.h"
#include "app/store.h"
#include "base/err.h"
#include "io/db.h"
#include "io/p100.h"

typedef struct reconciler reconciler;

typedef struct reconciler_opts {
    db_opts db;
    p100_opts p100;
    int concurrency;
    int rate;            /* calls per second */
    int64_t interval_ms; /* idle poll; pause after misconfiguration */
    int64_t pending_after_ms;
    int64_t backoff_min_ms, backoff_max_ms;
    int max_failures;
    int once; /* stop when nothing is due any more */
    /* Seams for unit tests (borrowed; NULL: the real thing): the database
     * named by db (store_db with `concurrency` pooled connections plus the
     * dispatcher's), and P100 through io/p100 with the p100 options. */
    const reconcile_store *store;
    const p100_port *p100_port;
} reconciler_opts;

typedef struct reconciler_stats {
    long long checks, applied, unchanged, flagged, retries, rate_limited, misconfigured, errors;
} reconciler_stats;

/* Start the threads. The options' strings must outlive the reconciler. */
int reconciler_start(reconciler **out, const reconciler_opts *o, kerr *err) KYCD_MUST_CHECK;

/* Wait until a `once` reconciler has nothing left to do (or was stopped). */
void reconciler_wait(reconciler *r);

/* Start no new P100 call (calls in flight go on); returns at once. */
void reconciler_signal_stop(reconciler *r);

/* Stop: wake every thread, let calls in flight finish (bounded by the P100
 * timeout), give back unprocessed claims, join, free. Accepts NULL. */
void reconciler_stop(reconciler *r, reconciler_stats *final_stats);

/* 0 while P100 accepts our credentials; KERR_STATE (with a message) after a
 * 401/403 until a later call succeeds. For /readyz. */
int reconciler_ready(reconciler *r, kerr *err);

#endif
