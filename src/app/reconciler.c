/* The reconciler (see reconciler.h). Threads: one dispatcher, N workers,
 * all owned by the reconciler and joined in reverse order by
 * reconciler_stop. Waiting uses one condition variable; never sleep(). The
 * database and P100 are reached through a reconcile_store and a p100_port
 * (app/store.h, app/p100_port.h: the real ones, or a unit test's fakes). Must
 * never hold a database transaction across a P100 call, nor log the API
 * key. */
#include "app/reconciler.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/metrics.h"
#include "base/clock.h"
#include "base/log.h"
#include "core/token.h"

#define QUEUE_MAX 1024
#define STORE_POOL_MAX 16

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
    char not_ready[512];
    long long due;     /* held and pending users due, last counted; -1: not yet */
    int64_t due_at_ms; /* when (monotonic) */
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

static void wait_until(reconciler *r, int64_t until_ms)
{
    int64_t now = clock_mono_ms();
    if (until_ms <= now)
        return;
    struct timespec ts = clock_deadline(until_ms - now);
    pthread_cond_timedwait(&r->cv, &r->mu, &ts);
}

/* --- workers ----------------------------------------------------------- */

/* Wait until not_before (monotonic ms), any pause, and a slot of the
 * global rate, and reserve the slot. -1 when stopping. Called with r->mu
 * held. */
static int wait_slot(reconciler *r, int64_t not_before)
{
    for (;;) {
        if (r->stopping)
            return -1;
        int64_t now = clock_mono_ms();
        if (not_before > now) {
            wait_until(r, not_before);
            continue;
        }
        if (r->paused_until_ms > now) {
            wait_until(r, r->paused_until_ms);
            continue;
        }
        double fnow = clock_now_ms();
        double slot = r->next_slot_ms > fnow ? r->next_slot_ms : fnow;
        if (slot - fnow >= 1.0) {
            wait_until(r, (int64_t)slot);
            continue;
        }
        r->next_slot_ms = slot + 1000.0 / r->o.rate;
        return 0;
    }
}

/* Take the next claimed user, then wait for the rate limiter and any pause.
 * Returns 0 with *item filled, or -1 when stopping. Called with r->mu held. */
static int take(reconciler *r, db_claim *item)
{
    for (;;) {
        if (r->stopping)
            return -1;
        int64_t now = clock_mono_ms();
        if (r->paused_until_ms > now) {
            wait_until(r, r->paused_until_ms);
            continue;
        }
        /* While P100 refuses our credentials, a single call probes them
         * after each pause: one try per interval whatever the concurrency
         * (without this, every worker woke at the end of a pause and made
         * its own call before the first 401 came back). */
        if (r->misconfigured && r->busy > 0) {
            pthread_cond_wait(&r->cv, &r->mu);
            continue;
        }
        if (r->qlen == 0) {
            pthread_cond_wait(&r->cv, &r->mu);
            continue;
        }
        /* Reserve a slot of the global rate: one call every 1000/rate ms. */
        double fnow = clock_now_ms();
        double slot = r->next_slot_ms > fnow ? r->next_slot_ms : fnow;
        if (slot - fnow >= 1.0) {
            wait_until(r, (int64_t)slot);
            continue;
        }
        r->next_slot_ms = slot + 1000.0 / r->o.rate;
        *item = r->queue[r->qhead];
        r->qhead = (r->qhead + 1) % QUEUE_MAX;
        r->qlen--;
        r->busy++;
        pthread_cond_broadcast(&r->cv); /* the dispatcher may refill */
        return 0;
    }
}

static uint64_t random64(void)
{
    char hex[17];
    if (token_random_hex(hex, 8) != 0)
        return (uint64_t)clock_mono_ms() * 2654435761u;
    return strtoull(hex, NULL, 16);
}

/* What became of one call: the plan and where it was written. */
typedef struct check_done {
    int rc;              /* 0: recorded; else the store failed */
    kyc_check_plan plan; /* core's decision (when rc is 0) */
    kyc_status before;   /* the stored state it was decided on */
    long long check_id;  /* kyc.status_checks.id */
} check_done;

static void log_check(const db_claim *c, const p100_result *res, const check_done *cd)
{
    const kyc_check_plan *p = cd->rc == 0 ? &cd->plan : NULL;
    int applied = p && p->result == KYC_CHECK_APPLIED;
    int recheck = kyc_check_why_is_recheck(c->why);
    int level = KLOG_DEBUG;
    if (applied || (p && p->result == KYC_CHECK_FLAGGED))
        level = KLOG_WARN;
    if (res->cls == P100_MISCONFIGURED)
        level = KLOG_ERROR;
    klog_line l;
    klog_begin(&l, level,
               !applied ? "reconciler check"
               : recheck
                   ? "reconciler corrected state (a re-check of a settled user found a change)"
                   : "reconciler corrected state (a webhook was missed or wrong)");
    klog_str(&l, "user", c->external_user_id);
    klog_str(&l, "why", kyc_check_why_name(c->why));
    if (applied)
        klog_str(&l, "reason", kyc_reason_name(p->reason));
    klog_str(&l, "outcome", p100_class_name(res->cls));
    klog_int(&l, "http", res->http_status);
    if (res->error_code[0])
        klog_str(&l, "code", res->error_code);
    if (res->cls != P100_OK && res->error_message[0])
        klog_str(&l, "error", res->error_message);
    if (p) {
        klog_str(&l, "result", kyc_check_result_name(p->result));
        if (applied) {
            char from[140], to[140];
            snprintf(from, sizeof from, "%s/%s",
                     cd->before.verification[0] ? cd->before.verification : "-",
                     cd->before.attempt[0] ? cd->before.attempt : "-");
            snprintf(to, sizeof to, "%s/%s", p->after.verification, p->after.attempt);
            klog_str(&l, "from", from);
            klog_str(&l, "to", to);
        }
        if (p->attention[0])
            klog_str(&l, "attention", p->attention);
        klog_int(&l, "check", cd->check_id);
    }
    klog_ms(&l, "ms", res->latency_ms);
    klog_end(&l);
}

/* Past this, the reconciler cannot reach `rate` with `concurrency` calls in
 * flight (Little's law): say so, at most once a minute, with the figure to
 * set. Called with r->mu held. */
static void note_latency(reconciler *r, double latency_ms)
{
    if (latency_ms <= 0)
        return;
    r->lat_avg_ms = r->lat_avg_ms > 0 ? 0.9 * r->lat_avg_ms + 0.1 * latency_ms : latency_ms;
    r->st.latency_ms_avg = r->lat_avg_ms;
    double need = r->o.rate * r->lat_avg_ms / 1000.0;
    int64_t now = clock_mono_ms();
    if (need <= r->o.concurrency || r->qlen == 0 ||
        (r->size_warned_ms && now - r->size_warned_ms < 60000))
        return;
    r->size_warned_ms = now;
    klog(KLOG_WARN, "reconciler concurrency caps its rate: raise p100_concurrency",
         KLOG_INT("rate", r->o.rate), KLOG_INT("concurrency", r->o.concurrency),
         KLOG_INT("latency_ms", (long long)r->lat_avg_ms),
         KLOG_INT("reachable_rate", (long long)(r->o.concurrency * 1000.0 / r->lat_avg_ms)),
         KLOG_INT("concurrency_needed", (long long)(need * 1.25) + 1));
}

/* The record of one answer: the user's row locked, core's decision on
 * what is known, the plan carried out, in one transaction (app
 * orchestrates; core decides; io writes). */
static void record_check(reconciler *r, const db_claim *c, const p100_result *res,
                         const kyc_status *answer, int tries, check_done *cd, kerr *err)
{
    void *txn = NULL;
    db_check_row row;
    cd->rc = r->store.check_begin(r->store.ctx, c->external_user_id, r->owner, &txn, &row, err);
    if (cd->rc != 0)
        return;
    kyc_check_answer a = {.cls = res->cls,
                          .http_status = res->http_status,
                          .error_code = res->error_code,
                          .error_message = res->error_message,
                          .retry_after_ms = res->retry_after_ms,
                          .status = res->cls == P100_OK ? answer : NULL};
    kyc_check_in in = {.before = &row.before,
                       .lost_lease = row.lost_lease,
                       .failures = row.failures,
                       .why = c->why,
                       .tries = tries,
                       .answer = &a,
                       .rules = &r->rules,
                       .random = random64()};
    cd->plan = kyc_check_decide(&in);
    cd->before = row.before;
    db_check_record rec = {
        .owner = r->owner,
        .external_user_id = c->external_user_id,
        .cls = res->cls,
        .http_status = res->http_status,
        .error_code = res->error_code,
        .latency_ms = res->latency_ms,
        .detail = cd->plan.attention[0]   ? cd->plan.attention
                  : res->error_message[0] ? res->error_message
                                          : NULL,
        .body = res->body.data,
        .body_len = res->body.len,
        .why = c->why,
    };
    cd->rc = r->store.check_finish(r->store.ctx, txn, &rec, &cd->plan, &cd->check_id, err);
}

/* The counters of one check. Called with r->mu held. */
static void count_check(reconciler *r, const db_claim *c, const check_done *cd, int left)
{
    r->st.checks++;
    if (kyc_check_why_is_recheck(c->why)) {
        r->st.rechecks++;
        if (cd->rc == 0 && cd->plan.result == KYC_CHECK_APPLIED)
            r->st.recheck_applied++;
    }
    if (left)
        r->st.left++;
    if (cd->rc != 0) {
        r->st.errors++;
        return;
    }
    switch (cd->plan.result) {
    case KYC_CHECK_APPLIED:
        r->st.applied++;
        break;
    case KYC_CHECK_UNCHANGED:
        r->st.unchanged++;
        break;
    case KYC_CHECK_FLAGGED:
        r->st.flagged++;
        break;
    case KYC_CHECK_RETRY:
        r->st.retries++;
        break;
    case KYC_CHECK_RELEASED:
        break;
    }
}

/* What P100's answer says about P100 itself (not the user): a 429 pauses
 * every worker, a 401/403 pauses or ends the reconciler. Called with r->mu
 * held. */
static void note_p100(reconciler *r, const p100_result *res)
{
    int64_t now = clock_mono_ms();
    if (res->cls == P100_OK && r->misconfigured) {
        r->misconfigured = 0;
        klog(KLOG_INFO, "P100 accepts our credentials again", KLOG_INT("misconfigured", 0));
    }
    if (res->cls == P100_RATE_LIMITED) {
        r->st.rate_limited++;
        int64_t pause = res->retry_after_ms > 0 ? res->retry_after_ms : 1000;
        if (now + pause > r->paused_until_ms)
            r->paused_until_ms = now + pause;
        if (r->rl_since_ms == 0)
            r->rl_since_ms = now;
        /* One pass: P100 has said nothing but 429 for a while; every further
         * call would only push the pause on. Leave the rest for later. */
        if (r->o.once && now + pause - r->rl_since_ms > RECONCILER_PASS_WAIT_MAX_MS &&
            !r->stopping) {
            klog(KLOG_WARN, "reconciler pass ended: P100 keeps answering 429",
                 KLOG_INT("for_ms", now - r->rl_since_ms));
            r->stopping = 1;
            pthread_cond_broadcast(&r->cv);
        }
    } else if (res->http_status > 0) {
        r->rl_since_ms = 0;
    }
    if (res->cls != P100_MISCONFIGURED)
        return;
    r->st.misconfigured++;
    r->misconfigured = 1;
    snprintf(r->not_ready, sizeof r->not_ready,
             "P100 refuses our API key or address (HTTP %ld: %s): check KYCD_P100_API_KEY and "
             "P100's IP allow-list",
             res->http_status, res->error_message[0] ? res->error_message : "access denied");
    if (r->o.once) {
        /* One pass: nothing more can be done with these credentials. */
        if (!r->done)
            klog(KLOG_ERROR, "reconciler stopped: P100 says we are misconfigured",
                 KLOG_INT("http", res->http_status));
        r->done = 1;
        r->stopping = 1;
        pthread_cond_broadcast(&r->cv);
    } else if (now + r->o.interval_ms > r->paused_until_ms) {
        r->paused_until_ms = now + r->o.interval_ms;
        klog(KLOG_ERROR, "reconciler paused: P100 says we are misconfigured",
             KLOG_INT("http", res->http_status), KLOG_INT("retry_in_ms", r->o.interval_ms));
    }
}

/* One call and its record. Returns the wait before a retry within this
 * pass (core's plan: once mode, a 429 or transient answer, tries left: the
 * claim is kept), or -1 when the user is done with for now. */
static int64_t check_one(reconciler *r, void *client, db_claim *c, int tries)
{
    p100_result res;
    p100_result_init(&res);
    kyc_status answer;
    memset(&answer, 0, sizeof answer);
    kerr err;
    kerr_clear(&err);
    if (r->p100.get_status(client, c->external_user_id, &res, &answer, &err) != 0) {
        /* Local failure (out of memory): count it, let the lease expire. */
        klog(KLOG_ERROR, "reconciler call failed locally", KLOG_STR("error", err.msg));
        pthread_mutex_lock(&r->mu);
        r->st.errors++;
        pthread_mutex_unlock(&r->mu);
        p100_result_deinit(&res);
        return -1;
    }
    check_done cd;
    memset(&cd, 0, sizeof cd);
    record_check(r, c, &res, &answer, tries, &cd, &err);
    if (cd.rc != 0)
        klog(KLOG_WARN, "reconciler could not record a check",
             KLOG_STR("user", c->external_user_id), KLOG_STR("error", err.msg));
    log_check(c, &res, &cd);
    metrics_reconciler_check(res.cls, cd.rc != 0 ? METRICS_CHECK_ERROR : (int)cd.plan.result);
    metrics_observe_p100(res.latency_ms / 1000.0);
    int64_t again = cd.rc == 0 ? cd.plan.retry_in_ms : -1;
    int unanswered =
        res.cls == P100_RATE_LIMITED ||
        (res.cls == P100_TRANSIENT && !(cd.rc == 0 && cd.plan.result == KYC_CHECK_FLAGGED));

    pthread_mutex_lock(&r->mu);
    count_check(r, c, &cd, r->o.once && unanswered && again < 0);
    note_latency(r, res.latency_ms);
    note_p100(r, &res);
    pthread_mutex_unlock(&r->mu);
    p100_result_deinit(&res);
    return again;
}

static void *worker_main(void *arg)
{
    reconciler *r = arg;
    void *client = NULL;
    kerr err;
    if (r->p100.client_new(r->p100.ctx, &client, &err) != 0) {
        klog(KLOG_ERROR, "reconciler worker cannot start", KLOG_STR("error", err.msg));
        return NULL;
    }
    pthread_mutex_lock(&r->mu);
    for (;;) {
        db_claim item;
        if (take(r, &item) != 0)
            break;
        pthread_mutex_unlock(&r->mu);
        int64_t again = check_one(r, client, &item, 1);
        for (int tries = 2; again >= 0; tries++) {
            pthread_mutex_lock(&r->mu);
            int rc = wait_slot(r, clock_mono_ms() + again);
            if (rc != 0) {
                r->st.left++; /* stopping: the dispatcher gives its kept claim back */
                if (r->nabandoned < QUEUE_MAX)
                    r->abandoned[r->nabandoned++] = item;
                pthread_cond_broadcast(&r->cv);
            }
            pthread_mutex_unlock(&r->mu);
            if (rc != 0)
                break;
            again = check_one(r, client, &item, tries);
        }
        pthread_mutex_lock(&r->mu);
        r->busy--;
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    r->p100.client_free(client);
    return NULL;
}

/* --- dispatcher ---------------------------------------------------------- */

static void *dispatcher_main(void *arg)
{
    reconciler *r = arg;
    kerr err;
    /* Keep about two batches' worth ahead of the workers: one second of
     * the rate, at least two per worker. */
    int want = r->o.rate > 2 * r->o.concurrency ? r->o.rate : 2 * r->o.concurrency;
    if (want > QUEUE_MAX)
        want = QUEUE_MAX;
    db_claim *batch = calloc((size_t)want, sizeof *batch);
    /* A claim must outlive its wait in the queue plus the call. */
    int64_t lease = 3 * r->o.p100.timeout_ms + (int64_t)want * 1000 / r->o.rate + 30000;
    /* Re-checks of settled users: claimed only when the held and pending
     * ones leave room, from a bucket that fills at recheck_share percent
     * of the rate (one second's worth at most). */
    int rechecks_on = r->o.recheck_verified_every_ms > 0 || r->o.recheck_rejected_for_ms > 0;
    double share_rate = r->o.rate * (double)r->o.recheck_share / 100.0;
    double bucket_max = share_rate > 1 ? share_rate : 1;
    double tokens = bucket_max;
    int64_t filled_ms = clock_mono_ms(), recheck_idle_until = 0;
    int rechecks_done = 0;
    if (share_rate <= 0)
        rechecks_on = 0;

    pthread_mutex_lock(&r->mu);
    while (!r->stopping && batch) {
        int64_t now = clock_mono_ms();
        if (r->paused_until_ms > now) {
            wait_until(r, r->paused_until_ms);
            continue;
        }
        if (r->qlen >= want / 2) {
            pthread_cond_wait(&r->cv, &r->mu);
            continue;
        }
        int room = want - r->qlen;
        pthread_mutex_unlock(&r->mu);

        tokens += share_rate * (double)(now - filled_ms) / 1000.0;
        if (tokens > bucket_max)
            tokens = bucket_max;
        filled_ms = now;
        int n = 0, nr = 0, rc2 = 0, tried = 0, short_claim = 0;
        db_claim_opts co = {
            .owner = r->owner,
            .limit = room,
            .lease_ms = lease,
            .pending_after_ms = r->o.pending_after_ms,
            .recheck_rejected_after_ms = r->o.recheck_rejected_after_ms,
            .recheck_rejected_for_ms = r->o.recheck_rejected_for_ms,
            .recheck_verified_every_ms = r->o.recheck_verified_every_ms,
            .once = r->o.once,
            .pass_age_ms = r->o.once ? now - r->pass_start_ms : 0,
        };
        /* For kycd_reconciler_due_users: a count every 5 s at most, on
         * the dispatcher's connection (kycd serve only). */
        if (!r->o.once && r->store.count_due && now - r->due_at_ms >= 5000) {
            long long due = -1;
            if (r->store.count_due(r->store.ctx, r->o.pending_after_ms, &due, &err) != 0)
                due = -1;
            pthread_mutex_lock(&r->mu);
            r->due = due;
            r->due_at_ms = now;
            pthread_mutex_unlock(&r->mu);
        }
        int rc = r->store.claim_due(r->store.ctx, &co, batch, &n, &err);
        if (rc != 0)
            klog(KLOG_WARN, "reconciler cannot claim users", KLOG_STR("error", err.msg));
        int k = (int)tokens < room - n ? (int)tokens : room - n;
        /* One pass: due as of its start, so once a re-check claim comes up
         * short no more will be due in it. */
        if (rc == 0 && rechecks_on && k >= 1 &&
            (r->o.once ? !rechecks_done : now >= recheck_idle_until)) {
            co.recheck = 1;
            co.limit = k;
            tried = 1;
            rc2 = r->store.claim_due(r->store.ctx, &co, batch + n, &nr, &err);
            if (rc2 != 0)
                klog(KLOG_WARN, "reconciler cannot claim users to re-check",
                     KLOG_STR("error", err.msg));
            tokens -= nr;
            /* Fewer than asked: none more is due for a while, and the
             * claim reads every settled user: not again before the next
             * interval (a second at least). */
            short_claim = rc2 == 0 && nr < k;
            if (short_claim) {
                rechecks_done = r->o.once;
                recheck_idle_until = now + (r->o.interval_ms > 1000 ? r->o.interval_ms : 1000);
            }
        }

        pthread_mutex_lock(&r->mu);
        for (int i = 0; i < n + nr; i++) {
            r->queue[(r->qhead + r->qlen) % QUEUE_MAX] = batch[i];
            r->qlen++;
        }
        if (n + nr > 0) {
            pthread_cond_broadcast(&r->cv);
            continue;
        }
        if (r->o.once && rc == 0 && rc2 == 0 && (!rechecks_on || tried || rechecks_done) &&
            r->qlen == 0 && r->busy == 0) {
            r->done = 1;
            pthread_cond_broadcast(&r->cv);
            break;
        }
        /* Nothing due (or the database is away): look again later, or
         * sooner if workers finish (once mode needs to see them idle), or
         * when the re-check bucket has a token again. */
        int64_t wait = r->o.once ? 200 : r->o.interval_ms;
        if (rechecks_on && !short_claim && tokens < 1) {
            int64_t t = (int64_t)((1 - tokens) * 1000 / share_rate) + 1;
            if (t < wait)
                wait = t;
        }
        wait_until(r, clock_mono_ms() + wait);
    }
    /* Give back what no worker took (calls in flight keep their claims
     * until their answers are recorded). */
    int left = r->qlen;
    if (r->o.once)
        r->st.left += left;
    db_claim *rest = left > 0 ? calloc((size_t)left, sizeof *rest) : NULL;
    for (int i = 0; rest && i < left; i++)
        rest[i] = r->queue[(r->qhead + i) % QUEUE_MAX];
    r->qlen = 0;
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; rest && i < left; i++)
        if (r->store.release_claim(r->store.ctx, r->owner, rest[i].external_user_id, &err) != 0)
            klog(KLOG_WARN, "reconciler could not release a claim",
                 KLOG_STR("user", rest[i].external_user_id), KLOG_STR("error", err.msg));
    free(rest);
    /* Then the claims kept for retries within a pass, as the workers
     * abandon them (until no worker is inside a call). */
    pthread_mutex_lock(&r->mu);
    while (batch && (r->busy > 0 || r->nabandoned > 0)) {
        if (r->nabandoned == 0) {
            pthread_cond_wait(&r->cv, &r->mu);
            continue;
        }
        int k = r->nabandoned < want ? r->nabandoned : want;
        r->nabandoned -= k;
        memcpy(batch, r->abandoned + r->nabandoned, (size_t)k * sizeof *batch);
        pthread_mutex_unlock(&r->mu);
        for (int i = 0; i < k; i++)
            if (r->store.release_claim(r->store.ctx, r->owner, batch[i].external_user_id, &err) !=
                0)
                klog(KLOG_WARN, "reconciler could not release a claim",
                     KLOG_STR("user", batch[i].external_user_id), KLOG_STR("error", err.msg));
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    free(batch);
    return NULL;
}

/* --- lifecycle ------------------------------------------------------------- */

int reconciler_start(reconciler **out, const reconciler_opts *o, kerr *err)
{
    if (o->rate < 1 || o->concurrency < 1)
        return kerr_set(err, KERR_INVALID, "reconciler rate and concurrency must be at least 1");
    if (o->recheck_share < 0 || o->recheck_share > 100)
        return kerr_set(err, KERR_INVALID, "reconciler recheck_share must be 0..100");
    reconciler *r = calloc(1, sizeof *r);
    if (r == NULL)
        return kerr_set(err, KERR_NOMEM, "out of memory");
    r->due = -1;
    r->o = *o;
    r->rules = (kyc_check_rules){.pending_after_ms = o->pending_after_ms,
                                 .max_failures = o->max_failures,
                                 .backoff_min_ms = o->backoff_min_ms,
                                 .backoff_max_ms = o->backoff_max_ms,
                                 .once = o->once,
                                 .call_timeout_ms = o->p100.timeout_ms};
    r->pass_start_ms = clock_mono_ms();
    char host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    snprintf(r->owner, sizeof r->owner, "%s:%d", host, (int)getpid());
    if (clock_cond_init(&r->cv) != 0) {
        free(r);
        return kerr_set(err, KERR_NOMEM, "cannot create a condition variable");
    }
    pthread_mutex_init(&r->mu, NULL);
    if (o->store) {
        r->store = *o->store;
    } else {
        /* A record takes a connection for a few milliseconds, after a call
         * that takes far longer: many workers share a few connections, so
         * that a high p100_concurrency does not mean as many sessions. */
        int pool = o->concurrency < STORE_POOL_MAX ? o->concurrency : STORE_POOL_MAX;
        int rc = store_db_new(&r->own, &o->db, pool, o->db.timeout_ms, err);
        if (rc != 0) {
            reconciler_stop(r, NULL);
            return rc;
        }
        r->store = store_db_reconcile(r->own);
    }
    r->p100 = o->p100_port ? *o->p100_port : p100_port_real(&r->o.p100);
    r->workers = calloc((size_t)o->concurrency, sizeof *r->workers);
    if (r->workers == NULL) {
        reconciler_stop(r, NULL);
        return kerr_set(err, KERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < o->concurrency; i++) {
        if (pthread_create(&r->workers[i], NULL, worker_main, r) != 0) {
            reconciler_stop(r, NULL);
            return kerr_set(err, KERR_NOMEM, "cannot start reconciler threads");
        }
        r->nworkers++;
    }
    if (pthread_create(&r->dispatcher, NULL, dispatcher_main, r) != 0) {
        reconciler_stop(r, NULL);
        return kerr_set(err, KERR_NOMEM, "cannot start the reconciler");
    }
    r->dispatcher_started = 1;
    klog(KLOG_INFO, "reconciler started", KLOG_STR("owner", r->owner), KLOG_INT("rate", o->rate),
         KLOG_INT("concurrency", o->concurrency), KLOG_INT("pending_after_ms", o->pending_after_ms),
         KLOG_INT("recheck_share", o->recheck_share), KLOG_INT("once", o->once));
    *out = r;
    return 0;
}

void reconciler_wait(reconciler *r)
{
    pthread_mutex_lock(&r->mu);
    while (!r->done && !r->stopping)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

void reconciler_signal_stop(reconciler *r)
{
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    r->stopping = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void reconciler_stop(reconciler *r, reconciler_stats *final_stats)
{
    if (r == NULL)
        return;
    reconciler_signal_stop(r);
    /* Reverse order of start: the dispatcher, then the workers (each
     * finishes the call it is in, bounded by the P100 timeout). */
    if (r->dispatcher_started)
        pthread_join(r->dispatcher, NULL);
    for (int i = r->nworkers - 1; i >= 0; i--)
        pthread_join(r->workers[i], NULL);
    if (final_stats)
        *final_stats = r->st;
    klog(KLOG_INFO, "reconciler stopped", KLOG_INT("checks", r->st.checks),
         KLOG_INT("applied", r->st.applied), KLOG_INT("unchanged", r->st.unchanged),
         KLOG_INT("flagged", r->st.flagged), KLOG_INT("retries", r->st.retries),
         KLOG_INT("rate_limited", r->st.rate_limited),
         KLOG_INT("misconfigured", r->st.misconfigured), KLOG_INT("errors", r->st.errors),
         KLOG_INT("rechecks", r->st.rechecks), KLOG_INT("recheck_applied", r->st.recheck_applied),
         KLOG_INT("left", r->st.left));
    free(r->workers);
    store_db_free(r->own);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

long long reconciler_due_users(reconciler *r)
{
    if (r == NULL)
        return -1;
    pthread_mutex_lock(&r->mu);
    long long due = r->due;
    pthread_mutex_unlock(&r->mu);
    return due;
}

int reconciler_ready(reconciler *r, kerr *err)
{
    if (r == NULL)
        return 0;
    pthread_mutex_lock(&r->mu);
    int rc = 0;
    if (r->misconfigured)
        rc = kerr_set(err, KERR_STATE, "%s", r->not_ready);
    pthread_mutex_unlock(&r->mu);
    return rc;
}
