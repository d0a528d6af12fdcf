/* The reconciler's workers (see reconciler.h, reconciler_internal.h): each
 * takes a claimed user from the dispatcher's queue, waits for a slot of the
 * global rate and any pause, calls P100 with its own client, and records the
 * answer (core decides, the store writes); it also notes what the answer
 * says about P100 itself (429, 401/403, latency). Must never hold a
 * database transaction or r->mu across a P100 call, nor log the API key. */
#include "app/reconciler_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/metrics.h"
#include "base/clock.h"
#include "base/log.h"
#include "core/token.h"

/* Reserve a slot of the global rate: one call every 1000/rate ms
 * (fractional: rates above 1000/s space calls by less than a millisecond).
 * -1 after waiting towards the next slot (the caller looks again: a stop or
 * a pause may have come meanwhile). Called with r->mu held. */
static int reserve_slot(reconciler *r)
{
    double fnow = clock_now_ms();
    double slot = r->next_slot_ms > fnow ? r->next_slot_ms : fnow;
    if (slot - fnow >= 1.0) {
        reconciler_wait_until(r, (int64_t)slot);
        return -1;
    }
    r->next_slot_ms = slot + 1000.0 / r->o.rate;
    return 0;
}

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
            reconciler_wait_until(r, not_before);
            continue;
        }
        if (r->paused_until_ms > now) {
            reconciler_wait_until(r, r->paused_until_ms);
            continue;
        }
        if (reserve_slot(r) != 0)
            continue;
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
            reconciler_wait_until(r, r->paused_until_ms);
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
        /* No more calls in flight than P100 takes now (AIMD). */
        if (r->qlen == 0 || r->busy >= (int)r->limit) {
            pthread_cond_wait(&r->cv, &r->mu);
            continue;
        }
        if (reserve_slot(r) != 0)
            continue;
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
    int64_t awaited_ms;  /* how long it had waited for a webhook; -1: unknown */
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
    if (res->cls == P100_MISCONFIGURED || res->cls == P100_UNUSABLE)
        level = KLOG_ERROR;
    klog_line l;
    klog_begin(&l, level,
               !applied ? "reconciler check"
               : recheck
                   ? "reconciler corrected state (a re-check of a settled user found a change)"
               : p->overdue ? "reconciler corrected state (the result webhook never came)"
                            : "reconciler corrected state (a webhook was missed or wrong)");
    klog_str(&l, "user", c->external_user_id);
    klog_str(&l, "why", kyc_check_why_name(c->why));
    if (p && p->overdue)
        klog_int(&l, "awaited_ms", cd->awaited_ms);
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

/* Congestion control (AIMD, as TCP does): the rate paces the calls, so in
 * flight settles at rate x latency by itself (Little's law) up to the
 * configured maximum; when P100 signals it is overwhelmed (429, P501, a 5xx,
 * no answer, an answer four times slower than the average) the calls
 * allowed in flight are halved, at most once per round trip, and each
 * answer then adds 1/limit (one per round trip). Called with r->mu held,
 * before the latency average takes the call in. */
static void adjust_limit(reconciler *r, const p100_result *res)
{
    int64_t now = clock_mono_ms();
    int slow = r->lat_avg_ms > 0 && res->latency_ms > 4 * r->lat_avg_ms;
    int congested =
        res->cls == P100_RATE_LIMITED ||
        (res->cls == P100_TRANSIENT && (res->http_status == 0 || res->http_status >= 500 ||
                                        p100_code_parse(res->error_code) == P100_CODE_P501)) ||
        (slow && res->cls != P100_MISCONFIGURED);
    if (congested) {
        if (now - r->limit_cut_ms >= (int64_t)r->lat_avg_ms + 1) {
            r->limit = r->limit / 2 < 1 ? 1 : r->limit / 2;
            r->limit_cut_ms = now;
        }
    } else if (res->cls == P100_OK || res->cls == P100_FINAL) {
        r->limit += 1.0 / r->limit;
        if (r->limit > r->o.concurrency)
            r->limit = r->o.concurrency;
    }
    r->st.concurrency_limit = r->limit;
    pthread_cond_broadcast(&r->cv); /* a raised limit lets a worker take */
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
                       .awaited_ms = row.awaited_ms,
                       .answer = &a,
                       .rules = &r->rules,
                       .random = random64()};
    cd->plan = kyc_check_decide(&in);
    cd->before = row.before;
    cd->awaited_ms = row.awaited_ms;
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
        r->st.overdue_applied += cd->plan.overdue;
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
    if (res->cls != P100_MISCONFIGURED && res->cls != P100_UNUSABLE)
        return;
    /* Our credentials, or our request (an answer that says nothing about the
     * user: a wrong p100_status_path, a proxy's page): no user is to blame,
     * so none is flagged; the reconciler pauses and probes once an interval. */
    int refused = res->cls == P100_MISCONFIGURED;
    r->st.misconfigured++;
    r->misconfigured = 1;
    if (refused)
        snprintf(r->not_ready, sizeof r->not_ready,
                 "P100 refuses our API key or address (HTTP %ld: %s): check KYCD_P100_API_KEY "
                 "and P100's IP allow-list",
                 res->http_status, res->error_message[0] ? res->error_message : "access denied");
    else
        snprintf(r->not_ready, sizeof r->not_ready,
                 "P100's answers say nothing about the users (HTTP %ld without P100's error body: "
                 "%s): check p100_base_url and p100_status_path",
                 res->http_status, res->error_message[0] ? res->error_message : "no errorCode");
    if (r->o.once) {
        /* One pass: nothing more can be done with these credentials. */
        if (!r->done)
            klog(KLOG_ERROR,
                 refused ? "reconciler stopped: P100 says we are misconfigured"
                         : "reconciler stopped: P100's answers say nothing about the users",
                 KLOG_INT("http", res->http_status));
        r->done = 1;
        r->stopping = 1;
        pthread_cond_broadcast(&r->cv);
    } else if (now + r->o.interval_ms > r->paused_until_ms) {
        r->paused_until_ms = now + r->o.interval_ms;
        klog(KLOG_ERROR,
             refused ? "reconciler paused: P100 says we are misconfigured"
                     : "reconciler paused: P100's answers say nothing about the users",
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
    if (cd.rc == 0 && cd.plan.result == KYC_CHECK_APPLIED)
        metrics_reconciler_correction(c->why, cd.plan.overdue);
    metrics_observe_p100(res.latency_ms / 1000.0);
    int64_t again = cd.rc == 0 ? cd.plan.retry_in_ms : -1;
    int unanswered =
        res.cls == P100_RATE_LIMITED ||
        (res.cls == P100_TRANSIENT && !(cd.rc == 0 && cd.plan.result == KYC_CHECK_FLAGGED));

    pthread_mutex_lock(&r->mu);
    count_check(r, c, &cd, r->o.once && unanswered && again < 0);
    adjust_limit(r, &res);
    note_latency(r, res.latency_ms);
    note_p100(r, &res);
    pthread_mutex_unlock(&r->mu);
    p100_result_deinit(&res);
    return again;
}

void *reconciler_worker_main(void *arg)
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