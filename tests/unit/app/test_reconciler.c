/* Unit tests for app/reconciler.c and app/reconciler_worker.c (the
 * dispatcher and the workers) through their seams: the database is a fake
 * reconcile_store (app/store.h) holding a list of users, and P100 is a fake
 * p100_port (app/p100_port.h) answering from a script, with a gate that
 * holds calls in flight. Both fakes record every call under one mutex
 * (the reconciler runs a dispatcher and N workers) and wake waiters on a
 * condition variable. The fake store keeps what the real one would (the
 * failures, the claim) from core's plan, which the reconciler decides with
 * the real core/check kyc_check_decide between the store's two steps.
 *
 * Covers: claims and one check per claimed user, the concurrency limit, the
 * rate limit's spacing (loose bounds), transient backoff and the failure
 * ceiling, final errors, 429 and 401 pauses, reconciler_ready, once mode
 * (one pass: bounded retries within it for 429 and transient answers),
 * re-checks after the held and pending users and within their share of the
 * rate, and a stop with calls in flight. Every test is bounded by alarm(); waits
 * are condition-variable waits with a deadline, never a fixed sleep. */
#include "testlib.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/p100_port.h"
#include "app/reconciler.h"
#include "app/store.h"
#include "base/clock.h"
#include "base/log.h"
#include "core/check.h"

#define MAXU 64
#define MAXC 256

typedef struct fuser {
    char id[KYC_ID_MAX + 1];
    int failures;
    int due, claimed;
    int recheck; /* a settled user: claimed only by a re-check claim */
    int checks;  /* P100 calls for this user */
} fuser;

typedef struct frecord { /* one check_finish */
    char uid[KYC_ID_MAX + 1];
    char owner[96];
    enum p100_class cls;
    int flag, count_failure, has_answer;
    int64_t next_check_ms;
    char detail[512];
    enum kyc_check_write write; /* what the real database would write */
    enum kyc_check_why why;
    enum kyc_reason reason;
    int64_t keep_lease_ms;
    double at_ms;
} frecord;

typedef struct fanswer { /* one scripted P100 answer */
    enum p100_class cls;
    long http;
    const char *code, *message;
    int64_t retry_after_ms;
} fanswer;

typedef struct fake {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* any change */
    /* store */
    fuser users[MAXU];
    int nusers;
    int claim_calls;
    db_claim_opts last_claim;
    char claim_owner[96];
    frecord rec[MAXC];
    int nrec;
    char released[MAXU][KYC_ID_MAX + 1];
    int nreleased;
    /* P100 */
    fanswer script[8]; /* answers of the first calls, in order; then ok */
    int nscript;
    fanswer always; /* when cls is set (not P100_OK): every call past the script */
    int recheck_claims, recheck_claimed, max_recheck_limit;
    int calls, in_flight, max_in_flight;
    double start_ms[MAXC], end_ms[MAXC];
    int gate_closed; /* calls wait while set */
    int hold_until;  /* calls wait until max_in_flight reaches this (2 s at most) */
    int clients;
} fake;

static double now_ms(void)
{
    return clock_now_ms();
}

static fuser *find_user(fake *f, const char *id)
{
    for (int i = 0; i < f->nusers; i++)
        if (strcmp(f->users[i].id, id) == 0)
            return &f->users[i];
    return NULL;
}

/* ---- fake store */

static int fk_claim(void *ctx, const db_claim_opts *o, db_claim *out, int *n, kerr *err)
{
    fake *f = ctx;
    pthread_mutex_lock(&f->mu);
    f->claim_calls++;
    f->last_claim = *o;
    snprintf(f->claim_owner, sizeof f->claim_owner, "%s", o->owner);
    f->last_claim.owner = f->claim_owner;
    int k = 0;
    if (o->recheck) {
        f->recheck_claims++;
        if (o->limit > f->max_recheck_limit)
            f->max_recheck_limit = o->limit;
    }
    for (int i = 0; i < f->nusers && k < o->limit; i++) {
        fuser *u = &f->users[i];
        if (!u->due || u->claimed || u->recheck != o->recheck)
            continue;
        u->due = 0;
        u->claimed = 1;
        memset(&out[k], 0, sizeof out[k]);
        snprintf(out[k].external_user_id, sizeof out[k].external_user_id, "%s", u->id);
        out[k].failures = u->failures;
        out[k].why = u->recheck ? KYC_WHY_RECHECK_VERIFIED : KYC_WHY_PENDING;
        k++;
    }
    if (o->recheck)
        f->recheck_claimed += k;
    *n = k;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return 0;
}

/* A check's transaction: the user's row, as the database would read it
 * (no state yet; the failures stored by earlier checks). The txn is the
 * fake user. */
static int fk_begin(void *ctx, const char *uid, const char *owner, void **txn, db_check_row *row,
                    kerr *err)
{
    fake *f = ctx;
    (void)owner;
    pthread_mutex_lock(&f->mu);
    fuser *u = find_user(f, uid);
    memset(row, 0, sizeof *row);
    if (u)
        row->failures = u->failures;
    pthread_mutex_unlock(&f->mu);
    if (u == NULL)
        return kerr_set(err, KERR_NOTFOUND, "no such user");
    *txn = u;
    return 0;
}

/* Records what the real database would write: core's plan, as is. */
static int fk_finish(void *ctx, void *txn, const db_check_record *c, const kyc_check_plan *plan,
                     long long *check_id, kerr *err)
{
    fake *f = ctx;
    fuser *u = txn;
    (void)err;
    pthread_mutex_lock(&f->mu);
    if (f->nrec < MAXC) {
        frecord *r = &f->rec[f->nrec++];
        snprintf(r->uid, sizeof r->uid, "%s", c->external_user_id);
        snprintf(r->owner, sizeof r->owner, "%s", c->owner);
        r->cls = c->cls;
        r->flag = plan->attention[0] != '\0';
        r->count_failure = plan->failures > u->failures;
        r->has_answer = plan->answered;
        r->next_check_ms = plan->next_check_ms;
        snprintf(r->detail, sizeof r->detail, "%s", c->detail ? c->detail : "");
        r->write = plan->write;
        r->why = c->why;
        r->reason = plan->reason;
        r->keep_lease_ms = plan->keep_lease_ms;
        r->at_ms = now_ms();
    }
    if (plan->write != KYC_WRITE_NOTHING && plan->write != KYC_WRITE_RELEASE)
        u->failures = plan->failures;
    if (plan->keep_lease_ms <= 0) { /* a kept claim stays the reconciler's */
        u->claimed = 0;
        if (plan->write == KYC_WRITE_RELEASE) /* nothing changed: still due */
            u->due = 1;
    }
    *check_id = f->nrec;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int fk_release(void *ctx, const char *owner, const char *uid, kerr *err)
{
    fake *f = ctx;
    pthread_mutex_lock(&f->mu);
    if (f->nreleased < MAXU)
        snprintf(f->released[f->nreleased++], sizeof f->released[0], "%s", uid);
    fuser *u = find_user(f, uid);
    if (u) {
        u->claimed = 0;
        u->due = 1;
    }
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return 0;
}

/* ---- fake P100: the client is the fake itself (thread-safe) */

static int fk_client_new(void *ctx, void **client, kerr *err)
{
    fake *f = ctx;
    pthread_mutex_lock(&f->mu);
    f->clients++;
    pthread_mutex_unlock(&f->mu);
    *client = f;
    return 0;
}

static void fk_client_free(void *client)
{
    fake *f = client;
    pthread_mutex_lock(&f->mu);
    f->clients--;
    pthread_mutex_unlock(&f->mu);
}

static void timed_wait(fake *f, int64_t ms)
{
    struct timespec ts = clock_deadline(ms);
    pthread_cond_timedwait(&f->cv, &f->mu, &ts);
}

static int fk_get_status(void *client, const char *uid, p100_result *res, kyc_status *status,
                         kerr *err)
{
    fake *f = client;
    pthread_mutex_lock(&f->mu);
    int i = f->calls++;
    if (i < MAXC)
        f->start_ms[i] = now_ms();
    f->in_flight++;
    if (f->in_flight > f->max_in_flight)
        f->max_in_flight = f->in_flight;
    fuser *u = find_user(f, uid);
    if (u)
        u->checks++;
    pthread_cond_broadcast(&f->cv);
    int64_t deadline = clock_mono_ms() + 2000;
    while ((f->gate_closed || f->max_in_flight < f->hold_until) && clock_mono_ms() < deadline)
        timed_wait(f, 10);
    fanswer a = {.cls = P100_OK, .http = 200};
    if (i < f->nscript)
        a = f->script[i];
    else if (f->always.cls != P100_OK)
        a = f->always;
    pthread_mutex_unlock(&f->mu);

    usleep(2000); /* a little latency, so overlapping calls can overlap */
    res->cls = a.cls;
    res->http_status = a.http;
    snprintf(res->error_code, sizeof res->error_code, "%s", a.code ? a.code : "");
    snprintf(res->error_message, sizeof res->error_message, "%s", a.message ? a.message : "");
    res->retry_after_ms = a.retry_after_ms ? a.retry_after_ms : -1;
    res->latency_ms = 2.0;
    if (a.cls == P100_OK) {
        snprintf(status->verification, sizeof status->verification, "%s",
                 kyc_vstatus_name(KYC_V_VERIFIED));
        snprintf(status->attempt, sizeof status->attempt, "%s", kyc_astatus_name(KYC_A_SUCCESSFUL));
    }

    pthread_mutex_lock(&f->mu);
    if (i < MAXC)
        f->end_ms[i] = now_ms();
    f->in_flight--;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return 0;
}

/* ---- fixture */

typedef struct fx {
    fake f;
    reconcile_store store;
    p100_port port;
    reconciler_opts o;
    reconciler *r;
} fx;

static int fx_setup(void **state)
{
    alarm(20);
    fx *x = calloc(1, sizeof *x);
    if (x == NULL)
        return -1;
    pthread_mutex_init(&x->f.mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&x->f.cv, &ca);
    pthread_condattr_destroy(&ca);
    x->store = (reconcile_store){.ctx = &x->f,
                                 .claim_due = fk_claim,
                                 .check_begin = fk_begin,
                                 .check_finish = fk_finish,
                                 .release_claim = fk_release};
    x->port = (p100_port){.ctx = &x->f,
                          .client_new = fk_client_new,
                          .get_status = fk_get_status,
                          .client_free = fk_client_free};
    x->o = (reconciler_opts){
        .db = {.conninfo = "unused", .timeout_ms = 1000},
        .p100 = {.base_url = "https://p100.invalid", .timeout_ms = 1000, .connect_timeout_ms = 500},
        .concurrency = 2,
        .rate = 1000,
        .interval_ms = 100,
        .pending_after_ms = 60000,
        .backoff_min_ms = 1000,
        .backoff_max_ms = 60000,
        .max_failures = 3,
        .store = &x->store,
        .p100_port = &x->port,
    };
    *state = x;
    return 0;
}

static int fx_teardown(void **state)
{
    fx *x = *state;
    reconciler_stop(x->r, NULL);
    pthread_mutex_destroy(&x->f.mu);
    pthread_cond_destroy(&x->f.cv);
    free(x);
    alarm(0);
    return 0;
}

static void add_users(fx *x, int n, int failures)
{
    for (int i = 0; i < n; i++) {
        fuser *u = &x->f.users[x->f.nusers];
        snprintf(u->id, sizeof u->id, "user-%02d", x->f.nusers);
        u->failures = failures;
        u->due = 1;
        x->f.nusers++;
    }
}

static void start(fx *x)
{
    kerr err;
    kerr_clear(&err);
    if (reconciler_start(&x->r, &x->o, &err) != 0)
        fail_msg("reconciler_start: %s", err.msg);
}

static void stop(fx *x, reconciler_stats *st)
{
    reconciler_stop(x->r, st);
    x->r = NULL;
}

/* Wait (at most ms) until *field >= want; returns the value seen. */
static int wait_at_least(fx *x, const int *field, int want, int64_t ms)
{
    int64_t deadline = clock_mono_ms() + ms;
    pthread_mutex_lock(&x->f.mu);
    while (*field < want && clock_mono_ms() < deadline)
        timed_wait(&x->f, 20);
    int v = *field;
    pthread_mutex_unlock(&x->f.mu);
    return v;
}

/* reconciler_ready's answer, polled until it is `want` (at most ms): the
 * reconciler updates its state just after the record the fake saw. */
static int wait_ready(fx *x, int want, int64_t ms, kerr *err)
{
    int64_t deadline = clock_mono_ms() + ms;
    int rc;
    while ((rc = reconciler_ready(x->r, err)) != want && clock_mono_ms() < deadline)
        usleep(1000);
    return rc;
}

static const frecord *record_of(fx *x, const char *uid)
{
    for (int i = 0; i < x->f.nrec; i++)
        if (strcmp(x->f.rec[i].uid, uid) == 0)
            return &x->f.rec[i];
    return NULL;
}

/* ---- tests */

static void claimed_users_checked_once(void **state)
{
    fx *x = *state;
    add_users(x, 40, 0);
    x->o.concurrency = 4;
    start(x);
    assert_int_equal(wait_at_least(x, &x->f.nrec, 40, 5000), 40);
    reconciler_stats st;
    stop(x, &st);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(x->f.users[i].checks, 1);
        const frecord *r = record_of(x, x->f.users[i].id);
        assert_non_null(r);
        assert_int_equal(r->cls, P100_OK);
        assert_true(r->has_answer);
        /* P100 says VERIFIED/SUCCESSFUL: settled, the plan has no next check
         * (a pending answer would be looked at again after pending_after:
         * tests/unit/core/test_check.c) */
        assert_int_equal(r->next_check_ms, -1);
        assert_string_equal(r->owner, x->f.claim_owner);
    }
    assert_int_equal(x->f.nrec, 40);
    assert_int_equal(x->f.calls, 40);
    assert_int_equal(x->f.nreleased, 0);
    assert_true(x->f.claim_owner[0] != '\0');
    assert_true(x->f.last_claim.lease_ms > 0);
    assert_true(x->f.last_claim.limit > 0);
    assert_int_equal(x->f.last_claim.pending_after_ms, 60000);
    assert_int_equal(st.checks, 40);
    assert_int_equal(st.applied + st.unchanged, 40);
    assert_int_equal(x->f.clients, 0); /* every worker freed its client */
}

static void concurrency_limits_calls_in_flight(void **state)
{
    fx *x = *state;
    add_users(x, 12, 0);
    x->o.concurrency = 3;
    x->f.hold_until = 3; /* the first calls wait until three overlap */
    start(x);
    assert_int_equal(wait_at_least(x, &x->f.nrec, 12, 8000), 12);
    stop(x, NULL);
    assert_int_equal(x->f.max_in_flight, 3);
    assert_int_equal(x->f.calls, 12);
}

static void rate_limit_spaces_calls(void **state)
{
    fx *x = *state;
    add_users(x, 8, 0);
    x->o.concurrency = 4;
    x->o.rate = 20; /* one call per 50 ms */
    double t0 = now_ms();
    start(x);
    assert_int_equal(wait_at_least(x, &x->f.nrec, 8, 5000), 8);
    stop(x, NULL);
    double first = x->f.start_ms[0], last = x->f.start_ms[0];
    for (int i = 0; i < 8; i++) {
        if (x->f.start_ms[i] < first)
            first = x->f.start_ms[i];
        if (x->f.start_ms[i] > last)
            last = x->f.start_ms[i];
    }
    /* eight slots 50 ms apart from the first: the last starts >= 350 ms
     * after the start (a millisecond of rounding allowed per slot), and
     * well before 3 s */
    assert_true(last - t0 >= 7 * 50 - 8);
    assert_true(last - first < 3000);
}

static void transient_backs_off_then_flags(void **state)
{
    fx *x = *state;
    add_users(x, 1, 0); /* user-00: first failure */
    add_users(x, 1, 2); /* user-01: third failure in a row = max_failures */
    x->o.concurrency = 1;
    x->f.script[0] = (fanswer){P100_TRANSIENT, 400, "P500", "internal error", 0};
    x->f.script[1] = (fanswer){P100_TRANSIENT, 400, "P500", "internal error", 0};
    x->f.nscript = 2;
    start(x);
    assert_int_equal(wait_at_least(x, &x->f.nrec, 2, 5000), 2);
    reconciler_stats st;
    stop(x, &st);
    const frecord *a = record_of(x, "user-00"), *b = record_of(x, "user-01");
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a->cls, P100_TRANSIENT);
    assert_int_equal(a->count_failure, 1);
    assert_int_equal(a->flag, 0);
    /* p100_backoff_ms(1, 1000, ...): 1000 ms with full jitter, in [500, 1000] */
    assert_true(a->next_check_ms >= 500 && a->next_check_ms <= 1000);
    assert_int_equal(b->count_failure, 1);
    assert_int_equal(b->flag, 1);
    assert_int_equal(b->next_check_ms, -1);
    assert_non_null(strstr(b->detail, "3 transient failures in a row"));
    assert_int_equal(st.retries, 1);
    assert_int_equal(st.flagged, 1);
}

static void final_error_flags(void **state)
{
    fx *x = *state;
    add_users(x, 1, 0);
    x->f.script[0] = (fanswer){P100_FINAL, 400, "P445", "no such user", 0};
    x->f.nscript = 1;
    start(x);
    assert_int_equal(wait_at_least(x, &x->f.nrec, 1, 5000), 1);
    reconciler_stats st;
    stop(x, &st);
    const frecord *r = &x->f.rec[0];
    assert_int_equal(r->cls, P100_FINAL);
    assert_int_equal(r->flag, 1);
    assert_int_equal(r->count_failure, 0);
    assert_int_equal(r->next_check_ms, -1);
    assert_non_null(strstr(r->detail, "P100 P445: no such user"));
    assert_int_equal(st.flagged, 1);
}

/* AIMD: a burst of 429s halves the calls allowed in flight once (once per
 * round trip, not once per 429), and answers then grow it back by about one
 * per round trip, never past p100_concurrency. */
static void congestion_halves_the_limit(void **state)
{
    fx *x = *state;
    add_users(x, 20, 0);
    x->o.concurrency = 8;
    for (int i = 0; i < 4; i++)
        x->f.script[i] = (fanswer){P100_RATE_LIMITED, 429, "", "slow down", 20};
    x->f.nscript = 4;
    start(x);
    assert_true(wait_at_least(x, &x->f.nrec, 20, 5000) >= 20);
    reconciler_stats now = reconciler_stats_now(x->r);
    reconciler_stats st;
    stop(x, &st);
    assert_true(now.concurrency_limit >= 4.0);
    assert_true(now.concurrency_limit < 8.0); /* not yet grown back: 16 answers after the cut */
    assert_true(st.concurrency_limit <= 8.0);
}

/* Without congestion the limit stays at the maximum: the rate paces. */
static void no_congestion_keeps_the_maximum(void **state)
{
    fx *x = *state;
    add_users(x, 10, 0);
    x->o.concurrency = 6;
    start(x);
    assert_int_equal(wait_at_least(x, &x->f.nrec, 10, 5000), 10);
    reconciler_stats now = reconciler_stats_now(x->r);
    reconciler_stats st;
    stop(x, &st);
    assert_true(now.concurrency_limit == 6.0);
}

static void rate_limited_pauses(void **state)
{
    fx *x = *state;
    add_users(x, 2, 0);
    x->o.concurrency = 1;
    x->f.script[0] = (fanswer){P100_RATE_LIMITED, 429, "", "slow down", 300};
    x->f.nscript = 1;
    start(x);
    assert_int_equal(wait_at_least(x, &x->f.nrec, 2, 5000), 2);
    reconciler_stats st;
    stop(x, &st);
    assert_int_equal(x->f.rec[0].cls, P100_RATE_LIMITED);
    assert_int_equal(x->f.rec[0].next_check_ms, 300); /* Retry-After */
    assert_int_equal(x->f.rec[0].flag, 0);
    assert_int_equal(x->f.rec[0].count_failure, 0);
    /* no call during the pause (which starts after the record) */
    assert_true(x->f.start_ms[1] - x->f.end_ms[0] >= 300 - 2);
    assert_int_equal(st.rate_limited, 1);
}

static void misconfigured_pauses_and_recovers(void **state)
{
    fx *x = *state;
    add_users(x, 1, 0);
    x->o.concurrency = 1;
    x->o.interval_ms = 400;
    x->f.script[0] = (fanswer){P100_MISCONFIGURED, 401, "", "Access Denied", 0};
    x->f.nscript = 1;
    start(x);
    assert_int_equal(wait_at_least(x, &x->f.nrec, 1, 5000), 1);
    kerr err;
    kerr_clear(&err);
    assert_int_equal(wait_ready(x, KERR_STATE, 2000, &err), KERR_STATE);
    assert_non_null(strstr(err.msg, "HTTP 401"));
    assert_non_null(strstr(err.msg, "KYCD_P100_API_KEY"));
    pthread_mutex_lock(&x->f.mu);
    frecord r0 = x->f.rec[0];
    int calls = x->f.calls;
    pthread_mutex_unlock(&x->f.mu);
    /* the user's record is not touched: only its claim is given back */
    assert_int_equal(r0.cls, P100_MISCONFIGURED);
    assert_int_equal(r0.flag, 0);
    assert_int_equal(r0.count_failure, 0);
    assert_int_equal(r0.write, KYC_WRITE_RELEASE);
    assert_int_equal(calls, 1);

    /* after the pause the user (still due) is checked again; ok clears it */
    assert_int_equal(wait_at_least(x, &x->f.nrec, 2, 5000), 2);
    assert_int_equal(wait_ready(x, 0, 2000, &err), 0);
    reconciler_stats st;
    stop(x, &st);
    assert_true(x->f.start_ms[1] - x->f.end_ms[0] >= 400 - 2);
    assert_int_equal(x->f.rec[1].cls, P100_OK);
    assert_int_equal(st.misconfigured, 1);
    assert_int_equal(x->f.users[0].checks, 2);
}

static void once_ends_when_nothing_due(void **state)
{
    fx *x = *state;
    add_users(x, 5, 0);
    x->o.once = 1;
    start(x);
    reconciler_wait(x->r); /* bounded by alarm() */
    reconciler_stats st;
    stop(x, &st);
    assert_int_equal(x->f.calls, 5);
    assert_int_equal(x->f.nrec, 5);
    assert_int_equal(st.checks, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(x->f.users[i].checks, 1);
}

static void once_stops_when_misconfigured(void **state)
{
    fx *x = *state;
    add_users(x, 5, 0);
    x->o.once = 1;
    x->o.concurrency = 1;
    x->f.script[0] = (fanswer){P100_MISCONFIGURED, 403, "", "forbidden", 0};
    x->f.nscript = 1;
    start(x);
    reconciler_wait(x->r);
    reconciler_stats st;
    stop(x, &st);
    assert_int_equal(x->f.calls, 1);
    assert_int_equal(st.misconfigured, 1);
    /* the rest of the batch is given back */
    for (int i = 1; i < 5; i++) {
        int released = 0;
        for (int k = 0; k < x->f.nreleased; k++)
            released += strcmp(x->f.released[k], x->f.users[i].id) == 0;
        assert_int_equal(released, 1);
    }
}

static void once_retries_429_within_the_pass_then_leaves(void **state)
{
    fx *x = *state;
    add_users(x, 1, 0);
    x->o.once = 1;
    x->f.always = (fanswer){P100_RATE_LIMITED, 429, "", "Too Many Requests", 100};
    double t0 = now_ms();
    start(x);
    reconciler_wait(x->r); /* bounded by alarm() */
    reconciler_stats st;
    stop(x, &st);
    assert_int_equal(x->f.calls, RECONCILER_PASS_TRIES);
    assert_int_equal(x->f.nrec, RECONCILER_PASS_TRIES);
    assert_int_equal(st.left, 1);
    assert_int_equal(st.rate_limited, RECONCILER_PASS_TRIES);
    for (int i = 0; i < RECONCILER_PASS_TRIES - 1; i++)
        assert_true(x->f.rec[i].keep_lease_ms > 0); /* the retry keeps the claim */
    assert_int_equal(x->f.rec[RECONCILER_PASS_TRIES - 1].keep_lease_ms, 0);
    assert_int_equal(x->f.users[0].claimed, 0);
    /* Retry-After 100 ms between tries; well under a second in all */
    assert_true(x->f.start_ms[1] - x->f.start_ms[0] >= 90);
    assert_true(now_ms() - t0 < 3000);
}

static void once_transient_for_good_leaves_or_flags(void **state)
{
    fx *x = *state;
    add_users(x, 2, 0);
    x->f.users[1].failures = 1; /* one more failure reaches the ceiling of 3 */
    x->o.once = 1;
    x->o.concurrency = 1;
    x->f.always = (fanswer){P100_TRANSIENT, 400, "P501", "Service temporarily unavailable", 0};
    start(x);
    reconciler_wait(x->r);
    reconciler_stats st;
    stop(x, &st);
    /* user-00: 3 tries (failures 1, 2, 3 -> the third flags it); user-01:
     * failures 2, then 3: flagged on its second try. Neither is left. */
    assert_int_equal(x->f.users[0].checks, 3);
    assert_int_equal(x->f.users[1].checks, 2);
    assert_int_equal(st.flagged, 2);
    assert_int_equal(st.left, 0);
}

static void once_transient_ceiling_high_leaves(void **state)
{
    fx *x = *state;
    add_users(x, 1, 0);
    x->o.once = 1;
    x->o.max_failures = 10;
    x->f.always = (fanswer){P100_TRANSIENT, 400, "P501", "Service temporarily unavailable", 0};
    start(x);
    reconciler_wait(x->r);
    reconciler_stats st;
    stop(x, &st);
    assert_int_equal(x->f.calls, RECONCILER_PASS_TRIES);
    assert_int_equal(st.left, 1);
    assert_int_equal(st.flagged, 0);
    for (int i = 0; i < RECONCILER_PASS_TRIES; i++)
        assert_int_equal(x->f.rec[i].count_failure, 1);
}

static void rechecks_go_after_pending_within_their_share(void **state)
{
    fx *x = *state;
    add_users(x, 40, 0);
    for (int i = 0; i < 30; i++)
        x->f.users[i].recheck = 1; /* 30 settled users, 10 pending ones */
    x->o.rate = 100;
    x->o.recheck_share = 10; /* 10 re-checks a second */
    x->o.recheck.verified_every_ms = 1000;
    x->o.concurrency = 4;
    start(x);
    assert_int_equal(wait_at_least(x, &x->f.nrec, 40, 8000), 40);
    reconciler_stats st;
    stop(x, &st);
    double first_recheck = 1e18, last_pending = 0;
    for (int i = 0; i < x->f.nrec; i++) {
        const frecord *r = &x->f.rec[i];
        if (kyc_check_why_is_recheck(r->why)) {
            if (r->at_ms < first_recheck)
                first_recheck = r->at_ms;
            assert_int_equal(r->reason, KYC_R_RECHECK); /* the correction says so */
        } else {
            if (r->at_ms > last_pending)
                last_pending = r->at_ms;
            assert_int_equal(r->reason, KYC_R_RECONCILER);
        }
    }
    /* The bucket holds one second's worth: never more than 10 asked at once. */
    assert_true(x->f.max_recheck_limit <= 10);
    assert_int_equal(st.rechecks, 30);
    assert_int_equal(st.recheck_applied, 30);
    /* 30 re-checks at 10/s, the first 10 at once: about 2 s, not 0.3 s. */
    assert_true(x->f.rec[x->f.nrec - 1].at_ms - x->f.rec[0].at_ms >= 1500);
    (void)first_recheck;
    (void)last_pending;
}

static void rechecks_off_claim_nothing(void **state)
{
    fx *x = *state;
    add_users(x, 3, 0);
    x->f.users[0].recheck = 1;
    x->o.once = 1; /* recheck_verified_every and recheck_rejected_for are 0 */
    start(x);
    reconciler_wait(x->r);
    reconciler_stats st;
    stop(x, &st);
    assert_int_equal(x->f.recheck_claims, 0);
    assert_int_equal(x->f.users[0].checks, 0);
    assert_int_equal(st.checks, 2);
}

static void stop_with_calls_in_flight(void **state)
{
    fx *x = *state;
    add_users(x, 10, 0);
    x->o.concurrency = 2;
    x->f.gate_closed = 1;
    start(x);
    assert_int_equal(wait_at_least(x, &x->f.in_flight, 2, 5000), 2);
    reconciler_signal_stop(x->r);
    pthread_mutex_lock(&x->f.mu);
    x->f.gate_closed = 0; /* let the two calls in flight answer */
    pthread_cond_broadcast(&x->f.cv);
    pthread_mutex_unlock(&x->f.mu);
    reconciler_stats st;
    stop(x, &st);

    assert_int_equal(x->f.calls, 2); /* no call started after the stop */
    assert_int_equal(x->f.nrec, 2);  /* the calls in flight were recorded */
    assert_int_equal(st.checks, 2);
    assert_int_equal(x->f.nreleased, 8); /* every unstarted claim given back */
    for (int i = 0; i < 10; i++) {
        const fuser *u = &x->f.users[i];
        int released = 0;
        for (int k = 0; k < x->f.nreleased; k++)
            released += strcmp(x->f.released[k], u->id) == 0;
        assert_int_equal(released + u->checks, 1); /* each: checked or released, once */
        assert_int_equal(u->claimed, 0);
    }
    assert_int_equal(x->f.clients, 0);
}

int main(void)
{
    klog_set_level(getenv("TEST_LOG") ? KLOG_DEBUG : KLOG_ERROR + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(claimed_users_checked_once, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(concurrency_limits_calls_in_flight, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(rate_limit_spaces_calls, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(transient_backs_off_then_flags, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(final_error_flags, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(rate_limited_pauses, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(congestion_halves_the_limit, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(no_congestion_keeps_the_maximum, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(misconfigured_pauses_and_recovers, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(once_ends_when_nothing_due, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(once_stops_when_misconfigured, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(once_retries_429_within_the_pass_then_leaves, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(once_transient_for_good_leaves_or_flags, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(once_transient_ceiling_high_leaves, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(rechecks_go_after_pending_within_their_share, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(rechecks_off_claim_nothing, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(stop_with_calls_in_flight, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
