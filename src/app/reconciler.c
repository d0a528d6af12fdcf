/* The reconciler (see reconciler.h): its lifecycle and its dispatcher.
 * Threads: one dispatcher, N workers (app/reconciler_worker.c), all owned
 * by the reconciler and joined in reverse order by reconciler_stop. Waiting
 * uses one condition variable; never sleep(). The database and P100 are
 * reached through a reconcile_store and a p100_port (app/store.h,
 * app/p100_port.h: the real ones, or a unit test's fakes). Must never hold
 * a database transaction across a P100 call, nor log the API key. */
#include "app/reconciler.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/metrics.h"
#include "app/reconciler_internal.h"
#include "base/clock.h"
#include "base/log.h"

#define STORE_POOL_MAX 16

void reconciler_wait_until(reconciler *r, int64_t until_ms)
{
    int64_t now = clock_mono_ms();
    if (until_ms <= now)
        return;
    struct timespec ts = clock_deadline(until_ms - now);
    pthread_cond_timedwait(&r->cv, &r->mu, &ts);
}

/* --- dispatcher ---------------------------------------------------------- */

/* The dispatcher's own state, kept across its rounds. */
typedef struct dispatch {
    reconciler *r;
    int want;        /* claims kept ahead of the workers */
    db_claim *batch; /* want of them; NULL: out of memory, nothing to do */
    int64_t lease;   /* a claim must outlive its wait in the queue plus the call */
    /* Re-checks of settled users: claimed only when the held and pending
     * ones leave room, from a bucket that fills at recheck_share percent
     * of the rate (one second's worth at most). */
    int rechecks_on;
    double share_rate, bucket_max, tokens;
    int64_t filled_ms, recheck_idle_until;
    int rechecks_done; /* once mode: no more re-checks due in this pass */
    int policy_done;   /* the re-check policy is the database's, every user stamped */
    long long restamped;
} dispatch;

/* What one round of claims brought. */
typedef struct claim_round {
    int n, nr;       /* claimed: due users, then re-checks */
    int rc, rc2;     /* the two claims' results */
    int tried;       /* a re-check claim was made */
    int short_claim; /* it brought fewer than asked */
} claim_round;

static void dispatch_init(dispatch *d, reconciler *r)
{
    memset(d, 0, sizeof *d);
    d->r = r;
    /* Keep about two batches' worth ahead of the workers: one second of
     * the rate, at least two per worker. */
    d->want = r->o.rate > 2 * r->o.concurrency ? r->o.rate : 2 * r->o.concurrency;
    if (d->want > QUEUE_MAX)
        d->want = QUEUE_MAX;
    d->batch = calloc((size_t)d->want, sizeof *d->batch);
    d->lease = 3 * r->o.p100.timeout_ms + (int64_t)d->want * 1000 / r->o.rate + 30000;
    d->rechecks_on = r->o.recheck.verified_every_ms > 0 || r->o.recheck.rejected_for_ms > 0;
    d->policy_done = r->store.recheck_policy == NULL;
    d->share_rate = r->o.rate * (double)r->o.recheck_share / 100.0;
    d->bucket_max = d->share_rate > 1 ? d->share_rate : 1;
    d->tokens = d->bucket_max;
    d->filled_ms = clock_mono_ms();
    if (d->share_rate <= 0)
        d->rechecks_on = 0;
}

/* For kycd_reconciler_due_users, _flagged_users and
 * kycd_webhooks_overdue_users: a count every 5 s at most, on the
 * dispatcher's connection (kycd serve only). */
static void count_due(reconciler *r, int64_t now)
{
    if (r->o.once || !r->store.count_due || now - r->due_at_ms < 5000)
        return;
    kerr err;
    db_due_counts c;
    if (r->store.count_due(r->store.ctx, r->o.pending_after_ms, r->o.webhook_overdue_ms, &c,
                           &err) != 0)
        c.due = c.flagged = c.overdue = c.feed_wal_bytes = c.feed_inactive = -1;
    pthread_mutex_lock(&r->mu);
    r->counts = c;
    r->due_at_ms = now;
    pthread_mutex_unlock(&r->mu);
}

/* Make the configured re-check policy the database's, then re-stamp the
 * users stamped under an older one, a batch per transaction, for at most
 * a second per round so that claims (and a stop) go on. A
 * role that may not (42501) keeps the database's policy: one warning. */
static void sync_policy(dispatch *d)
{
    reconciler *r = d->r;
    int64_t start = clock_mono_ms();
    db_restamp rs = {0};
    kerr err;
    do {
        if (r->store.recheck_policy(r->store.ctx, &r->o.recheck, 5000, &rs, &err) != 0) {
            if (strstr(err.msg, "sqlstate 42501") == NULL)
                return; /* the database is away: the next round tries again */
            klog(KLOG_WARN,
                 "reconciler may not set the re-check policy: the database's stays (GRANT "
                 "EXECUTE ON FUNCTION kyc.set_recheck_policy to this role, or run kycd migrate)",
                 KLOG_STR("error", err.msg));
            d->policy_done = 1;
            return;
        }
        if (rs.changed)
            klog(KLOG_INFO, "re-check policy changed: re-stamping settled users",
                 KLOG_INT("rejected_after_ms", r->o.recheck.rejected_after_ms),
                 KLOG_INT("rejected_for_ms", r->o.recheck.rejected_for_ms),
                 KLOG_INT("verified_every_ms", r->o.recheck.verified_every_ms));
        d->restamped += rs.restamped;
    } while (!rs.done && clock_mono_ms() - start < 1000);
    if (rs.done) {
        d->policy_done = 1;
        if (d->restamped > 0)
            klog(KLOG_INFO, "re-check policy applied", KLOG_INT("users", d->restamped));
    }
}

/* The re-check share: up to k settled users after the cr->n due ones, when
 * the bucket has tokens and re-checks are not idle. */
static void claim_rechecks(dispatch *d, db_claim_opts *co, int k, int64_t now, claim_round *cr)
{
    reconciler *r = d->r;
    kerr err;
    co->recheck = 1;
    co->limit = k;
    cr->tried = 1;
    cr->rc2 = r->store.claim_due(r->store.ctx, co, d->batch + cr->n, &cr->nr, &err);
    if (cr->rc2 != 0)
        klog(KLOG_WARN, "reconciler cannot claim users to re-check", KLOG_STR("error", err.msg));
    d->tokens -= cr->nr;
    /* Fewer than asked: none more is due for a while: not again before the
     * next interval (a second at least). */
    cr->short_claim = cr->rc2 == 0 && cr->nr < k;
    if (cr->short_claim) {
        d->rechecks_done = r->o.once;
        d->recheck_idle_until = now + (r->o.interval_ms > 1000 ? r->o.interval_ms : 1000);
    }
}

/* Claim up to `room` users into d->batch: held and pending ones first, then
 * re-checks with what the share allows. Called without r->mu. */
static void claim_batch(dispatch *d, int room, int64_t now, claim_round *cr)
{
    reconciler *r = d->r;
    kerr err;
    d->tokens += d->share_rate * (double)(now - d->filled_ms) / 1000.0;
    if (d->tokens > d->bucket_max)
        d->tokens = d->bucket_max;
    d->filled_ms = now;
    db_claim_opts co = {
        .owner = r->owner,
        .limit = room,
        .lease_ms = d->lease,
        .pending_after_ms = r->o.pending_after_ms,
        .once = r->o.once,
        .pass_age_ms = r->o.once ? now - r->pass_start_ms : 0,
    };
    if (!d->policy_done)
        sync_policy(d);
    count_due(r, now);
    cr->rc = r->store.claim_due(r->store.ctx, &co, d->batch, &cr->n, &err);
    if (cr->rc != 0)
        klog(KLOG_WARN, "reconciler cannot claim users", KLOG_STR("error", err.msg));
    int k = (int)d->tokens < room - cr->n ? (int)d->tokens : room - cr->n;
    /* One pass: due as of its start, so once a re-check claim comes up
     * short no more will be due in it. */
    if (cr->rc == 0 && d->rechecks_on && k >= 1 &&
        (r->o.once ? !d->rechecks_done : now >= d->recheck_idle_until))
        claim_rechecks(d, &co, k, now, cr);
}

/* Queue n claims for the workers. Called with r->mu held. */
static void enqueue(reconciler *r, const db_claim *batch, int n)
{
    for (int i = 0; i < n; i++) {
        r->queue[(r->qhead + r->qlen) % QUEUE_MAX] = batch[i];
        r->qlen++;
    }
    if (n > 0)
        pthread_cond_broadcast(&r->cv);
}

/* Once mode: the pass is over when a round claimed nothing, without error,
 * with re-checks off or done, and no worker has anything left. Called with
 * r->mu held. */
static int pass_over(const dispatch *d, const claim_round *cr)
{
    const reconciler *r = d->r;
    return r->o.once && d->policy_done && cr->rc == 0 && cr->rc2 == 0 &&
           (!d->rechecks_on || cr->tried || d->rechecks_done) && r->qlen == 0 && r->busy == 0;
}

/* Nothing due (or the database is away): look again later, or sooner if
 * workers finish (once mode needs to see them idle), or when the re-check
 * bucket has a token again. */
static int64_t idle_wait_ms(const dispatch *d, const claim_round *cr)
{
    int64_t wait = d->r->o.once ? 200 : d->r->o.interval_ms;
    if (!d->policy_done && wait > 50)
        wait = 50; /* re-stamping: the next batch soon */
    if (d->rechecks_on && !cr->short_claim && d->tokens < 1) {
        int64_t t = (int64_t)((1 - d->tokens) * 1000 / d->share_rate) + 1;
        if (t < wait)
            wait = t;
    }
    return wait;
}

static void release_claims(reconciler *r, const db_claim *c, int n)
{
    kerr err;
    for (int i = 0; i < n; i++)
        if (r->store.release_claim(r->store.ctx, r->owner, c[i].external_user_id, &err) != 0)
            klog(KLOG_WARN, "reconciler could not release a claim",
                 KLOG_STR("user", c[i].external_user_id), KLOG_STR("error", err.msg));
}

/* Give back what no worker took (calls in flight keep their claims until
 * their answers are recorded). Called with r->mu held; returns without. */
static void give_back_queue(reconciler *r)
{
    int left = r->qlen;
    if (r->o.once)
        r->st.left += left;
    db_claim *rest = left > 0 ? calloc((size_t)left, sizeof *rest) : NULL;
    for (int i = 0; rest && i < left; i++)
        rest[i] = r->queue[(r->qhead + i) % QUEUE_MAX];
    r->qlen = 0;
    pthread_mutex_unlock(&r->mu);
    if (rest)
        release_claims(r, rest, left);
    free(rest);
}

/* Then the claims kept for retries within a pass, as the workers abandon
 * them (until no worker is inside a call). */
static void give_back_abandoned(dispatch *d)
{
    reconciler *r = d->r;
    pthread_mutex_lock(&r->mu);
    while (d->batch && (r->busy > 0 || r->nabandoned > 0)) {
        if (r->nabandoned == 0) {
            pthread_cond_wait(&r->cv, &r->mu);
            continue;
        }
        int k = r->nabandoned < d->want ? r->nabandoned : d->want;
        r->nabandoned -= k;
        memcpy(d->batch, r->abandoned + r->nabandoned, (size_t)k * sizeof *d->batch);
        pthread_mutex_unlock(&r->mu);
        release_claims(r, d->batch, k);
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
}

static void *dispatcher_main(void *arg)
{
    reconciler *r = arg;
    dispatch d;
    dispatch_init(&d, r);
    pthread_mutex_lock(&r->mu);
    while (!r->stopping && d.batch) {
        int64_t now = clock_mono_ms();
        if (r->paused_until_ms > now) {
            reconciler_wait_until(r, r->paused_until_ms);
            continue;
        }
        if (r->qlen >= d.want / 2) {
            pthread_cond_wait(&r->cv, &r->mu);
            continue;
        }
        int room = d.want - r->qlen;
        pthread_mutex_unlock(&r->mu);
        claim_round cr = {0};
        claim_batch(&d, room, now, &cr);
        pthread_mutex_lock(&r->mu);
        enqueue(r, d.batch, cr.n + cr.nr);
        if (cr.n + cr.nr > 0)
            continue;
        if (pass_over(&d, &cr)) {
            r->done = 1;
            pthread_cond_broadcast(&r->cv);
            break;
        }
        reconciler_wait_until(r, clock_mono_ms() + idle_wait_ms(&d, &cr));
    }
    give_back_queue(r);
    give_back_abandoned(&d);
    free(d.batch);
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
    r->counts.due = r->counts.flagged = r->counts.overdue = r->counts.feed_wal_bytes =
        r->counts.feed_inactive = -1;
    r->o = *o;
    r->rules = (kyc_check_rules){.pending_after_ms = o->pending_after_ms,
                                 .webhook_overdue_ms = o->webhook_overdue_ms,
                                 .max_failures = o->max_failures,
                                 .backoff_min_ms = o->backoff_min_ms,
                                 .backoff_max_ms = o->backoff_max_ms,
                                 .once = o->once,
                                 .call_timeout_ms = o->p100.timeout_ms};
    r->pass_start_ms = clock_mono_ms();
    r->limit = o->concurrency; /* the rate paces the calls; congestion cuts this */
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
        if (pthread_create(&r->workers[i], NULL, reconciler_worker_main, r) != 0) {
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
         KLOG_INT("webhook_overdue_ms", o->webhook_overdue_ms),
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
         KLOG_INT("overdue_applied", r->st.overdue_applied), KLOG_INT("left", r->st.left));
    free(r->workers);
    store_db_free(r->own);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

reconciler_stats reconciler_stats_now(reconciler *r)
{
    reconciler_stats st;
    memset(&st, 0, sizeof st);
    if (r == NULL)
        return st;
    pthread_mutex_lock(&r->mu);
    st = r->st;
    st.concurrency_limit = r->limit;
    st.in_flight = r->busy;
    pthread_mutex_unlock(&r->mu);
    return st;
}

db_due_counts reconciler_counts(reconciler *r)
{
    db_due_counts c = {-1, -1, -1, -1, -1};
    if (r == NULL)
        return c;
    pthread_mutex_lock(&r->mu);
    c = r->counts;
    pthread_mutex_unlock(&r->mu);
    return c;
}

int reconciler_write_gauges(reconciler *r, kbuf *out)
{
    kerr err;
    int rc = metrics_gauge(out, "kycd_reconciler_paused",
                           "1 while the reconciler is paused because P100 refused our credentials",
                           r && reconciler_ready(r, &err) != 0);
    if (r == NULL)
        return rc;
    reconciler_stats rs = reconciler_stats_now(r);
    if (rc == 0)
        rc = metrics_gauge(out, "kycd_reconciler_in_flight", "Get KYC Status calls in flight now",
                           (double)rs.in_flight);
    if (rc == 0)
        rc = metrics_gauge(out, "kycd_reconciler_concurrency_limit",
                           "calls in flight the reconciler allows now: p100_concurrency at most, "
                           "halved when P100 signals congestion (429, P501, 5xx, timeouts), then "
                           "grown by one per round trip",
                           rs.concurrency_limit);
    /* The database's counts (every 5 s at most; -1: not counted yet). */
    db_due_counts c = reconciler_counts(r);
    const struct {
        const char *name, *help;
        long long v;
    } counted[] = {
        {"kycd_reconciler_flagged_users",
         "users flagged for a person (attention_reason): the reconciler leaves them until a "
         "webhook or `kycd attention retry` (counted every 5 s at most)",
         c.flagged},
        {"kycd_reconciler_due_users",
         "held and pending users due a check (counted every 5 s at most)", c.due},
        {"kycd_webhooks_overdue_users",
         "users created with create-kyc or pending, not flagged, that have had no KYC webhook for "
         "webhook_overdue (counted every 5 s at most)",
         c.overdue},
        {"kycd_feed_slot_retained_wal_bytes",
         "WAL, in bytes, that the logical replication slots of kycd's database keep on the "
         "primary, the most any one keeps (0: no slot): a feed consumer stopped or behind "
         "(counted every 5 s at most)",
         c.feed_wal_bytes},
        {"kycd_feed_slots_inactive",
         "logical replication slots of kycd's database that no consumer is reading now (counted "
         "every 5 s at most)",
         c.feed_inactive},
    };
    for (size_t i = 0; rc == 0 && i < sizeof counted / sizeof counted[0]; i++)
        if (counted[i].v >= 0)
            rc = metrics_gauge(out, counted[i].name, counted[i].help, (double)counted[i].v);
    return rc;
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