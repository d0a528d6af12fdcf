/* The reconciler: makes the stored KYC state converge on P100's truth by
 * asking Get KYC Status for users whose webhooks were held (out of order,
 * undocumented values) or who have been pending for too long.
 *
 * One dispatcher thread claims due users (db_claim_due: SKIP LOCKED plus a
 * lease, so several kycd instances share the work and never check one user
 * twice at once) and queues them; `concurrency` worker threads, each with
 * its own P100 client, take them, wait for a slot of the global rate limit
 * (`rate` calls per second), call P100 (no database lock is held during the
 * call) and record the answer (store check_begin/finish, core deciding
 * between them). A backlog of N users with
 * rate R drains in about N/R seconds as long as concurrency covers R times
 * P100's latency.
 *
 * What an answer does to its user is core's decision (core/check.h,
 * kyc_check_decide), made between the two steps of the check's transaction
 * (the store's check_begin and check_finish): P100's answers: ok ->
 * applied through the state machine (source reconciler), unless it holds a
 * value P100 does not document (flagged, not applied); final (P445, P412, ...) -> the user is flagged for a person
 * and not checked again; transient (P500, P501, 5xx, timeouts) -> per-user
 * backoff with jitter, flagged after max_failures in a row; 429 -> every
 * worker pauses for Retry-After; 401/403 (misconfigured) -> the whole
 * reconciler pauses for `interval`, marks itself not ready, touches no
 * record, and tries again later.
 *
 * Held and pending users always go first. Settled users are re-checked
 * (rejected: a new attempt's webhooks may all be lost; verified: an expiry
 * may be lost; schedule in io/db_reconcile.h) with what the rate leaves, at
 * most recheck_share percent of it; a change a re-check finds is recorded
 * with reason recheck.
 *
 * Once mode (`kycd reconcile --once`) is one pass: each user due when the
 * pass started is checked at most once, plus at most RECONCILER_PASS_TRIES
 * - 1 retries within the pass after a 429 (Retry-After, if at most
 * RECONCILER_PASS_WAIT_MAX_MS) or a transient error (after 1 s), under the
 * same claim; what is still unanswered stays scheduled and is counted in
 * `left`. A 401/403 ends the pass, and so do 429s alone for longer than
 * RECONCILER_PASS_WAIT_MAX_MS (every further call would push the pause on). */
#ifndef KYCD_APP_RECONCILER_H
#define KYCD_APP_RECONCILER_H

#include <stdint.h>

#include "app/p100_port.h"
#include "app/store.h"
#include "base/buf.h"
#include "base/err.h"
#include "core/check.h"
#include "io/db.h"
#include "io/p100.h"

typedef struct reconciler reconciler;

/* Core's (core/check.h), which decides the retries within a pass. */
#define RECONCILER_PASS_TRIES KYC_CHECK_PASS_TRIES             /* calls per user within one pass */
#define RECONCILER_PASS_WAIT_MAX_MS KYC_CHECK_PASS_WAIT_MAX_MS /* longest wait for such a retry */

typedef struct reconciler_opts {
    db_opts db;
    p100_opts p100;
    int concurrency;
    int rate;            /* calls per second */
    int64_t interval_ms; /* idle poll; pause after misconfiguration */
    int64_t pending_after_ms;
    int64_t webhook_overdue_ms; /* a pending user with no webhook this long is overdue */
    int64_t backoff_min_ms, backoff_max_ms;
    int max_failures;
    /* The re-check policy: made the database's at the start (and the
     * users stamped under an older one re-stamped, in batches, between
     * claims); the re-check claim then reads the stamps. */
    db_recheck_policy recheck;
    int recheck_share; /* percent of rate re-checks may use, 1..100 */
    int once;          /* one pass: stop when everything due at the start was checked */
    /* Seams for unit tests (borrowed; NULL: the real thing): the database
     * named by db (store_db with `concurrency` pooled connections plus the
     * dispatcher's), and P100 through io/p100 with the p100 options. */
    const reconcile_store *store;
    const p100_port *p100_port;
} reconciler_opts;

typedef struct reconciler_stats {
    long long checks, applied, unchanged, flagged, retries, rate_limited, misconfigured, errors;
    long long rechecks,
        recheck_applied;       /* re-checks of settled users, and corrections they found */
    long long overdue_applied; /* corrections of users whose webhook was overdue */
    long long left;            /* once: due users left for a later pass */
    double latency_ms_avg;     /* P100's answers, moving average */
    double concurrency_limit;  /* calls in flight allowed now (AIMD, <= concurrency) */
    int in_flight;             /* calls in flight now */
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

/* Held and pending users due a check (kycd_reconciler_due_users), users
 * flagged for a person (kycd_reconciler_flagged_users), and pending users
 * waiting for a webhook past webhook_overdue (kycd_webhooks_overdue_users),
 * as last counted (every 5 s at most, by the dispatcher; db_count_due);
 * each -1 when not known (not counted yet, the database did not answer,
 * or r is NULL). */
db_due_counts reconciler_counts(reconciler *r);

/* The reconciler's gauges for /metrics: kycd_reconciler_paused (0 when r
 * is NULL: the reconciler is off), and with r the calls in flight, the
 * concurrency limit, and the counts above once known. */
int reconciler_write_gauges(reconciler *r, kbuf *out) KYCD_MUST_CHECK;

/* The counters so far and the calls in flight now (r running; NULL: zeros).
 * For /metrics. */
reconciler_stats reconciler_stats_now(reconciler *r);

#endif
