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

#include "base/clock.h"
#include "base/log.h"
#include "core/token.h"

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
    int busy;                /* workers inside a call */
    int done;                /* once mode: nothing left */
    double next_slot_ms;     /* rate limiter: earliest start of the next call
                                 * (fractional: rates above 1000/s space calls
                                 * by less than a millisecond) */
    int64_t paused_until_ms; /* 429 or 401: no calls before this */
    int misconfigured;       /* last 401/403 not yet followed by a success */
    char not_ready[512];
    reconciler_stats st;
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

static void log_check(const db_claim *c, const p100_result *res, const db_check_result *cr,
                      const kyc_status *answer)
{
    int applied = cr && cr->result == KYC_CHECK_APPLIED;
    int level = KLOG_DEBUG;
    if (applied || (cr && cr->result == KYC_CHECK_FLAGGED))
        level = KLOG_WARN;
    if (res->cls == P100_MISCONFIGURED)
        level = KLOG_ERROR;
    klog_line l;
    klog_begin(&l, level,
               applied ? "reconciler corrected state (a webhook was missed or wrong)"
                       : "reconciler check");
    klog_str(&l, "user", c->external_user_id);
    klog_str(&l, "outcome", p100_class_name(res->cls));
    klog_int(&l, "http", res->http_status);
    if (res->error_code[0])
        klog_str(&l, "code", res->error_code);
    if (res->cls != P100_OK && res->error_message[0])
        klog_str(&l, "error", res->error_message);
    if (cr) {
        klog_str(&l, "result", kyc_check_result_name(cr->result));
        if (applied) {
            char from[140], to[140];
            snprintf(from, sizeof from, "%s/%s",
                     cr->before.verification[0] ? cr->before.verification : "-",
                     cr->before.attempt[0] ? cr->before.attempt : "-");
            snprintf(to, sizeof to, "%s/%s", answer->verification, answer->attempt);
            klog_str(&l, "from", from);
            klog_str(&l, "to", to);
        }
        klog_int(&l, "check", cr->check_id);
    }
    klog_ms(&l, "ms", res->latency_ms);
    klog_end(&l);
}

static void check_one(reconciler *r, void *client, const db_claim *c)
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
        return;
    }

    db_check chk = {
        .owner = r->owner,
        .external_user_id = c->external_user_id,
        .cls = res.cls,
        .http_status = res.http_status,
        .error_code = res.error_code,
        .latency_ms = res.latency_ms,
        .detail = res.error_message[0] ? res.error_message : NULL,
        .body = res.body.data,
        .body_len = res.body.len,
        .answer = res.cls == P100_OK ? &answer : NULL,
        .next_check_ms = r->o.pending_after_ms,
    };
    char flag_reason[512];
    switch (res.cls) {
    case P100_OK:
        break;
    case P100_FINAL:
        snprintf(flag_reason, sizeof flag_reason, "P100 %s: %s",
                 res.error_code[0] ? res.error_code : "error",
                 res.error_message[0] ? res.error_message : "final answer");
        chk.flag = 1;
        chk.detail = flag_reason;
        chk.next_check_ms = -1;
        break;
    case P100_TRANSIENT:
        chk.count_failure = 1;
        if (c->failures + 1 >= r->o.max_failures) {
            snprintf(flag_reason, sizeof flag_reason, "%d transient failures in a row, last: %s",
                     c->failures + 1, res.error_message[0] ? res.error_message : res.error_code);
            chk.flag = 1;
            chk.detail = flag_reason;
            chk.next_check_ms = -1;
        } else {
            chk.next_check_ms = p100_backoff_ms(c->failures + 1, r->o.backoff_min_ms,
                                                r->o.backoff_max_ms, random64());
        }
        break;
    case P100_RATE_LIMITED:
        chk.next_check_ms = res.retry_after_ms > 0 ? res.retry_after_ms : r->o.backoff_min_ms;
        break;
    case P100_MISCONFIGURED:
        break;
    }

    db_check_result cr;
    memset(&cr, 0, sizeof cr);
    int rc = r->store.record_check(r->store.ctx, &chk, &cr, &err);
    if (rc != 0)
        klog(KLOG_WARN, "reconciler could not record a check",
             KLOG_STR("user", c->external_user_id), KLOG_STR("error", err.msg));
    log_check(c, &res, rc == 0 ? &cr : NULL, &answer);

    pthread_mutex_lock(&r->mu);
    r->st.checks++;
    if (rc != 0) {
        r->st.errors++;
    } else {
        switch (cr.result) {
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
    int64_t now = clock_mono_ms();
    if (res.cls == P100_OK && r->misconfigured) {
        r->misconfigured = 0;
        klog(KLOG_INFO, "P100 accepts our credentials again", KLOG_INT("misconfigured", 0));
    }
    if (res.cls == P100_RATE_LIMITED) {
        r->st.rate_limited++;
        int64_t pause = res.retry_after_ms > 0 ? res.retry_after_ms : 1000;
        if (now + pause > r->paused_until_ms)
            r->paused_until_ms = now + pause;
    }
    if (res.cls == P100_MISCONFIGURED) {
        r->st.misconfigured++;
        r->misconfigured = 1;
        snprintf(r->not_ready, sizeof r->not_ready,
                 "P100 refuses our API key or address (HTTP %ld: %s): check KYCD_P100_API_KEY and "
                 "P100's IP allow-list",
                 res.http_status, res.error_message[0] ? res.error_message : "access denied");
        if (r->o.once) {
            /* One pass: nothing more can be done with these credentials. */
            if (!r->done)
                klog(KLOG_ERROR, "reconciler stopped: P100 says we are misconfigured",
                     KLOG_INT("http", res.http_status));
            r->done = 1;
            r->stopping = 1;
            pthread_cond_broadcast(&r->cv);
        } else if (now + r->o.interval_ms > r->paused_until_ms) {
            r->paused_until_ms = now + r->o.interval_ms;
            klog(KLOG_ERROR, "reconciler paused: P100 says we are misconfigured",
                 KLOG_INT("http", res.http_status), KLOG_INT("retry_in_ms", r->o.interval_ms));
        }
    }
    pthread_mutex_unlock(&r->mu);
    p100_result_deinit(&res);
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
        check_one(r, client, &item);
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

        int n = 0;
        db_claim_opts co = {r->owner, room, lease, r->o.pending_after_ms};
        int rc = r->store.claim_due(r->store.ctx, &co, batch, &n, &err);
        if (rc != 0)
            klog(KLOG_WARN, "reconciler cannot claim users", KLOG_STR("error", err.msg));

        pthread_mutex_lock(&r->mu);
        for (int i = 0; i < n; i++) {
            r->queue[(r->qhead + r->qlen) % QUEUE_MAX] = batch[i];
            r->qlen++;
        }
        if (n > 0) {
            pthread_cond_broadcast(&r->cv);
            continue;
        }
        if (r->o.once && rc == 0 && r->qlen == 0 && r->busy == 0) {
            r->done = 1;
            pthread_cond_broadcast(&r->cv);
            break;
        }
        /* Nothing due (or the database is away): look again later, or
         * sooner if workers finish (once mode needs to see them idle). */
        wait_until(r, clock_mono_ms() + (r->o.once ? 200 : r->o.interval_ms));
    }
    /* Give back what no worker took (calls in flight keep their claims
     * until their answers are recorded). */
    int left = r->qlen;
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
    free(batch);
    return NULL;
}

/* --- lifecycle ------------------------------------------------------------- */

int reconciler_start(reconciler **out, const reconciler_opts *o, kerr *err)
{
    if (o->rate < 1 || o->concurrency < 1)
        return kerr_set(err, KERR_INVALID, "reconciler rate and concurrency must be at least 1");
    reconciler *r = calloc(1, sizeof *r);
    if (r == NULL)
        return kerr_set(err, KERR_NOMEM, "out of memory");
    r->o = *o;
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
        int rc = store_db_new(&r->own, &o->db, o->concurrency, o->db.timeout_ms, err);
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
         KLOG_INT("once", o->once));
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
         KLOG_INT("misconfigured", r->st.misconfigured), KLOG_INT("errors", r->st.errors));
    free(r->workers);
    store_db_free(r->own);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
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
