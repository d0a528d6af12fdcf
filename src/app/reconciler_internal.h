/* Private to the reconciler (src/app/reconciler*.c): its state and what its
 * parts share. Not an API: nothing outside app/reconciler*.c may include it.
 * reconciler.c owns the lifecycle and the dispatcher (claims, re-check share,
 * giving claims back); reconciler_worker.c the workers (rate slots, the call,
 * its record, what P100's answer says about P100). Every field is guarded by
 * `mu` except those set before the threads start. */
#ifndef KYCD_APP_RECONCILER_INTERNAL_H
#define KYCD_APP_RECONCILER_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "app/reconciler.h"

#define QUEUE_MAX 1024

struct reconciler {
    reconciler_opts o;
    char owner[96];
    pthread_mutex_t mu;
    pthread_cond_t cv; /* any change: queue, stop, pause, idle */
    int stopping;
    /* queue of claimed users, not yet taken by a worker */
    db_claim queue[QUEUE_MAX];
    int qhead, qlen;
    int busy; /* workers inside a call */
    /* claims kept for a retry within the pass that a stop abandoned: the
     * dispatcher (whose connection made the claims) gives them back */
    db_claim abandoned[QUEUE_MAX];
    int nabandoned;
    int done;                /* once mode: nothing left */
    double next_slot_ms;     /* rate limiter: earliest start of the next call
                                 * (fractional: rates above 1000/s space calls
                                 * by less than a millisecond) */
    int64_t paused_until_ms; /* 429 or 401: no calls before this */
    int misconfigured;       /* last 401/403 not yet followed by a success */
    int64_t pass_start_ms;   /* once: when the pass started (monotonic) */
    int64_t rl_since_ms;     /* first 429 of the current run of them; 0: none */
    double lat_avg_ms;       /* P100's latency, moving average (for sizing) */
    int64_t size_warned_ms;  /* last "concurrency caps the rate" warning */
    /* Calls in flight allowed now (AIMD, at most o.concurrency): halved at
     * most once a round trip when P100 signals congestion (429, P501, a
     * 5xx, a timeout, an answer four times slower than the average), then
     * grown by one per round trip while it answers. */
    double limit;
    int64_t limit_cut_ms; /* when it was last halved (monotonic) */
    char not_ready[512];
    db_due_counts counts; /* due, flagged, overdue users, feed slots, last counted; -1: not yet */
    int64_t due_at_ms;    /* when (monotonic) */
    reconciler_stats st;
    kyc_check_rules rules; /* what core's decision needs of the options */
    reconcile_store store; /* claims, checks, releases */
    store_db *own;         /* the default store, when the options named none */
    p100_port p100;
    pthread_t dispatcher;
    int dispatcher_started;
    pthread_t *workers;
    int nworkers;
};

/* Wait on r->cv until until_ms (monotonic) at most. Called with r->mu held. */
void reconciler_wait_until(reconciler *r, int64_t until_ms);

/* A worker thread (pthread_create's start routine; arg: the reconciler). */
void *reconciler_worker_main(void *arg);

#endif
