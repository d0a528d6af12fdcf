/* Unit tests for app/ingest.c and app/ingest_commit.c (the durable write
 * path and its group commit) through their seam: the database is a fake
 * ingest_store (app/store.h) that fails on command and records what it
 * stored, in order; the spool is the real io/spool on a fresh mkdtemp
 * directory (a file, not a server). Covers: database first, spool
 * fallback and order, the drainer and ingest_drain, the one retry of a
 * dead connection, dead letters, and ingest_ready.
 *
 * Every test is bounded by alarm() (a hang kills the binary, which fails
 * the test); waits poll with a deadline, never a fixed sleep. */
#include "testlib.h"

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app/ingest.h"
#include "app/store.h"
#include "base/clock.h"
#include "base/log.h"
#include "core/payload.h"
#include "io/spool.h"

#define BODY                                                                                       \
    "{\"externalUserId\":\"user-1\",\"verificationStatus\":\"NOT_VERIFIED\","                      \
    "\"attemptStatus\":\"REJECTED_BY_PROVIDER\",\"rejectionReason\":\"NO_FACE_FOUND\"}"

/* ---- the fake store: thread-safe (request threads and the drainer) */

#define MAXREC 256

typedef struct fake_store {
    pthread_mutex_t mu;
    int down;        /* ingest and ping fail with KERR_DB */
    int dead;        /* the next `dead` ingests fail as a dead connection */
    int ok_left;     /* >= 0: this many more successes, then down; -1: no limit */
    char refuse[33]; /* this request id is refused for good (KERR_INVALID) */
    int attempts, pings;
    char order[MAXREC][33]; /* request ids stored, in order */
    int n;
    int batches, biggest;                  /* ingest_batch calls, and the largest batch */
    int batch_sleep_us;                    /* time a transaction takes (lets others queue up) */
    char last_reason[256], last_user[129]; /* of the last quarantined delivery */
} fake_store;

/* A quarantined delivery: stored as "Q:<rid>" in the same order. */
static int fake_quarantine(void *ctx, const kyc_delivery *d, db_ingest_result *res, int *dead,
                           kerr *err)
{
    fake_store *s = ctx;
    *dead = 0;
    pthread_mutex_lock(&s->mu);
    int rc = s->down ? kerr_set(err, KERR_DB, "fake: database down") : 0;
    if (rc == 0 && s->n < MAXREC) {
        snprintf(s->order[s->n++], sizeof s->order[0], "Q:%.30s", d->request_id);
        snprintf(s->last_reason, sizeof s->last_reason, "%s", d->quarantine);
        snprintf(s->last_user, sizeof s->last_user, "%s", d->external_user_id);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc == 0) {
        memset(res, 0, sizeof *res);
        res->outcome = KYC_OUTCOME_QUARANTINED;
        res->reason = KYC_R_INVALID_BODY;
    }
    return rc;
}

static int fake_ingest(void *ctx, const kyc_delivery *d, const db_ingest_opts *o,
                       db_ingest_result *res, int *dead, kerr *err)
{
    fake_store *s = ctx;
    int rc = 0;
    *dead = 0;
    pthread_mutex_lock(&s->mu);
    int pause = s->batch_sleep_us;
    pthread_mutex_unlock(&s->mu);
    if (pause)
        usleep((useconds_t)pause);
    pthread_mutex_lock(&s->mu);
    s->attempts++;
    if (s->dead > 0) {
        s->dead--;
        *dead = 1;
        rc = kerr_set(err, KERR_DB, "fake: connection died");
    } else if (s->down || s->ok_left == 0) {
        s->down = 1;
        rc = kerr_set(err, KERR_DB, "fake: database down");
    } else if (s->refuse[0] && strcmp(s->refuse, d->request_id) == 0) {
        rc = kerr_set(err, KERR_INVALID, "fake: refused for good");
    } else {
        if (s->ok_left > 0)
            s->ok_left--;
        if (s->n < MAXREC)
            snprintf(s->order[s->n++], sizeof s->order[0], "%s", d->request_id);
        memset(res, 0, sizeof *res);
        res->event_id = s->n;
        res->outcome = KYC_OUTCOME_APPLIED;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* A transaction of n deliveries: all or nothing, by the same rules. */
static int fake_ingest_batch(void *ctx, const kyc_delivery *const *d, int n,
                             const db_ingest_opts *o, db_ingest_result *res, int *dead, kerr *err)
{
    (void)o;
    fake_store *s = ctx;
    int rc = 0;
    *dead = 0;
    pthread_mutex_lock(&s->mu);
    int pause = s->batch_sleep_us;
    pthread_mutex_unlock(&s->mu);
    if (pause)
        usleep((useconds_t)pause);
    pthread_mutex_lock(&s->mu);
    s->attempts++;
    s->batches++;
    if (n > s->biggest)
        s->biggest = n;
    if (s->dead > 0) {
        s->dead--;
        *dead = 1;
        rc = kerr_set(err, KERR_DB, "fake: connection died");
    } else if (s->down || s->ok_left == 0) {
        s->down = 1;
        rc = kerr_set(err, KERR_DB, "fake: database down");
    } else {
        for (int i = 0; i < n && rc == 0; i++)
            if (s->refuse[0] && strcmp(s->refuse, d[i]->request_id) == 0)
                rc = kerr_set(err, KERR_INVALID, "fake: refused for good");
        for (int i = 0; i < n && rc == 0; i++) {
            if (s->ok_left > 0)
                s->ok_left--;
            if (s->n < MAXREC)
                snprintf(s->order[s->n++], sizeof s->order[0], "%s", d[i]->request_id);
            memset(&res[i], 0, sizeof res[i]);
            res[i].event_id = s->n;
            res[i].outcome = KYC_OUTCOME_APPLIED;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int fake_ping(void *ctx, kerr *err)
{
    fake_store *s = ctx;
    pthread_mutex_lock(&s->mu);
    s->pings++;
    int down = s->down;
    pthread_mutex_unlock(&s->mu);
    return down ? kerr_set(err, KERR_DB, "fake: database down") : 0;
}

static void fake_set_down(fake_store *s, int down)
{
    pthread_mutex_lock(&s->mu);
    s->down = down;
    s->ok_left = -1;
    pthread_mutex_unlock(&s->mu);
}

static int fake_count(fake_store *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->n;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ---- fixture */

typedef struct fx {
    char root[64];
    char dir[128];
    fake_store fs;
    ingest_store store;
    spool *sp;
    ingest *in;
    char body[512];
} fx;

static int fx_setup(void **state)
{
    alarm(20);
    fx *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->root, sizeof f->root, "/tmp/kycd-ingest-XXXXXX");
    if (mkdtemp(f->root) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->dir, sizeof f->dir, "%s/spool", f->root);
    pthread_mutex_init(&f->fs.mu, NULL);
    f->fs.ok_left = -1;
    f->store = (ingest_store){.ctx = &f->fs, .ingest = fake_ingest, .ping = fake_ping};
    snprintf(f->body, sizeof f->body, "%s", BODY);
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx *f = *state;
    ingest_free(f->in);
    spool_close(f->sp);
    DIR *d = opendir(f->dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            char p[512];
            snprintf(p, sizeof p, "%s/%s", f->dir, de->d_name);
            if (de->d_name[0] != '.')
                unlink(p);
        }
        closedir(d);
    }
    rmdir(f->dir);
    rmdir(f->root);
    pthread_mutex_destroy(&f->fs.mu);
    free(f);
    alarm(0);
    return 0;
}

/* spool_max_bytes: 0 no spool, -1 no limit, else the limit. With
 * committers > 0 the fake store does batches too (group commit). */
static void start_batched(fx *f, int64_t spool_max_bytes, int drainer, int committers,
                          int batch_max, int64_t batch_wait_us)
{
    kerr err;
    kerr_clear(&err);
    if (spool_max_bytes != 0) {
        spool_opts so = {.dir = f->dir, .max_bytes = spool_max_bytes > 0 ? spool_max_bytes : 0};
        assert_int_equal(spool_open(&f->sp, &so, &err), 0);
    }
    f->store.ingest_batch = fake_ingest_batch;
    ingest_opts o = {
        .db = {.conninfo = "unused", .timeout_ms = 1000},
        .pool_size = 1,
        .wait_ms = 1000,
        .store = &f->store,
        .spool = f->sp,
        .drainer = drainer,
        .record_max = 1024,
        .committers = committers,
        .batch_max = batch_max,
        .batch_wait_us = batch_wait_us,
    };
    assert_int_equal(ingest_new(&f->in, &o, &err), 0);
}

static void start(fx *f, int64_t spool_max_bytes, int drainer)
{
    kerr err;
    kerr_clear(&err);
    if (spool_max_bytes != 0) {
        spool_opts so = {.dir = f->dir, .max_bytes = spool_max_bytes > 0 ? spool_max_bytes : 0};
        assert_int_equal(spool_open(&f->sp, &so, &err), 0);
    }
    ingest_opts o = {
        .db = {.conninfo = "unused", .timeout_ms = 1000},
        .pool_size = 1,
        .wait_ms = 1000,
        .store = &f->store,
        .spool = f->sp,
        .drainer = drainer,
        .record_max = 1024,
    };
    assert_int_equal(ingest_new(&f->in, &o, &err), 0);
}

static int submit(fx *f, const char *rid, db_ingest_result *res, kerr *err)
{
    kyc_delivery d;
    memset(&d, 0, sizeof d);
    kerr perr;
    assert_int_equal(payload_parse(KYC_KIND_KYC_STATUS, f->body, strlen(f->body), &d, &perr), 0);
    d.body = f->body; /* as the handler does: the raw body travels along */
    d.body_len = strlen(f->body);
    snprintf(d.request_id, sizeof d.request_id, "%s", rid);
    snprintf(d.remote_addr, sizeof d.remote_addr, "203.0.113.7");
    memset(res, 0, sizeof *res);
    kerr_clear(err);
    return ingest_submit(f->in, &d, res, err);
}

static void submit_ok(fx *f, const char *rid, enum kyc_outcome want)
{
    db_ingest_result res;
    kerr err;
    int rc = submit(f, rid, &res, &err);
    if (rc != 0)
        fail_msg("submit %s: %d %s", rid, rc, err.msg);
    assert_int_equal(res.outcome, want);
    if (want == KYC_OUTCOME_SPOOLED)
        assert_int_equal(res.reason, KYC_R_DATABASE_UNAVAILABLE);
}

static int64_t spooled(fx *f)
{
    spool_stats ss;
    spool_stats_get(f->sp, &ss);
    return ss.records;
}

static void assert_order(fx *f, const char *const *want, int n)
{
    pthread_mutex_lock(&f->fs.mu);
    int got = f->fs.n;
    char order[MAXREC][33];
    memcpy(order, f->fs.order, sizeof order);
    pthread_mutex_unlock(&f->fs.mu);
    assert_int_equal(got, n);
    for (int i = 0; i < n; i++)
        assert_string_equal(order[i], want[i]);
}

/* A delivery that failed validation, as the handler builds it. */
static int submit_quarantined(fx *f, const char *rid, db_ingest_result *res, kerr *err)
{
    static const char body[] = "{\"externalUserId\":\"qu1\",\"attemptStatus\":1}";
    kyc_delivery d;
    memset(&d, 0, sizeof d);
    payload_quarantine(KYC_KIND_KYC_STATUS, body, strlen(body), "203.0.113.7", rid,
                       "field 'attemptStatus' must be a string", &d);
    memset(res, 0, sizeof *res);
    kerr_clear(err);
    return ingest_submit(f->in, &d, res, err);
}

/* ---- tests */

/* The database away: a quarantined delivery is spooled (its record says
 * so) in acceptance order with the others, and the batched replay puts it
 * back in the quarantine with its reason and user, not in the event log. */
static void quarantined_delivery_spooled_then_replayed_to_quarantine(void **state)
{
    fx *f = *state;
    f->store.quarantine = fake_quarantine;
    start_batched(f, -1, 0, 0, 8, 0);
    db_ingest_result res;
    kerr err;
    fake_set_down(&f->fs, 1);
    submit_ok(f, "rid1", KYC_OUTCOME_SPOOLED);
    assert_int_equal(submit_quarantined(f, "rid2", &res, &err), 0);
    assert_int_equal(res.outcome, KYC_OUTCOME_SPOOLED);
    submit_ok(f, "rid3", KYC_OUTCOME_SPOOLED);
    assert_int_equal(spooled(f), 3);
    fake_set_down(&f->fs, 0);
    long long replayed = 0;
    assert_int_equal(ingest_drain(f->in, &replayed, &err), 0);
    assert_int_equal(spooled(f), 0);
    const char *want[] = {"rid1", "Q:rid2", "rid3"};
    assert_order(f, want, 3);
    assert_string_equal(f->fs.last_reason, "field 'attemptStatus' must be a string");
    assert_string_equal(f->fs.last_user, "qu1");
    /* the database up: straight to the quarantine */
    assert_int_equal(submit_quarantined(f, "rid4", &res, &err), 0);
    assert_int_equal(res.outcome, KYC_OUTCOME_QUARANTINED);
    assert_int_equal(spooled(f), 0);
}

/* A store that keeps no quarantine refuses it (the handler answers 400,
 * as before schema 10), and never spools it. */
static void quarantine_refused_without_a_quarantine(void **state)
{
    fx *f = *state;
    start(f, -1, 0);
    fake_set_down(&f->fs, 1);
    db_ingest_result res;
    kerr err;
    assert_int_equal(submit_quarantined(f, "rid1", &res, &err), KERR_INVALID);
    assert_int_equal(spooled(f), 0);
}

static void database_up_stores_not_spools(void **state)
{
    fx *f = *state;
    start(f, -1, 0);
    submit_ok(f, "rid1", KYC_OUTCOME_APPLIED);
    assert_int_equal(spooled(f), 0);
    const char *want[] = {"rid1"};
    assert_order(f, want, 1);
    assert_int_equal(f->fs.attempts, 1);
}

static void database_down_spools(void **state)
{
    fx *f = *state;
    start(f, -1, 0);
    fake_set_down(&f->fs, 1);
    submit_ok(f, "rid1", KYC_OUTCOME_SPOOLED); /* rc 0: the handler answers 200 */
    assert_int_equal(spooled(f), 1);
    assert_int_equal(fake_count(&f->fs), 0);
    assert_int_equal(f->fs.attempts, 1); /* a live connection's failure: no retry */
}

/* While the spool holds anything, new deliveries queue behind it even with
 * the database back; ingest_drain then replays them in acceptance order. */
static void spool_keeps_order_then_drain(void **state)
{
    fx *f = *state;
    start(f, -1, 0);
    fake_set_down(&f->fs, 1);
    submit_ok(f, "rid1", KYC_OUTCOME_SPOOLED);
    submit_ok(f, "rid2", KYC_OUTCOME_SPOOLED);
    fake_set_down(&f->fs, 0);
    int attempts = f->fs.attempts;
    submit_ok(f, "rid3", KYC_OUTCOME_SPOOLED);
    submit_ok(f, "rid4", KYC_OUTCOME_SPOOLED);
    assert_int_equal(f->fs.attempts, attempts); /* the database was not even tried */
    assert_int_equal(spooled(f), 4);

    long long replayed = -1;
    kerr err;
    assert_int_equal(ingest_drain(f->in, &replayed, &err), 0);
    assert_int_equal(replayed, 4);
    assert_int_equal(spooled(f), 0);
    const char *want[] = {"rid1", "rid2", "rid3", "rid4"};
    assert_order(f, want, 4);
    /* spool empty: straight to the database again */
    submit_ok(f, "rid5", KYC_OUTCOME_APPLIED);
}

/* The drainer thread replays on its own once the store is up again. */
static void drainer_replays_in_order(void **state)
{
    fx *f = *state;
    start(f, -1, 1);
    fake_set_down(&f->fs, 1);
    submit_ok(f, "rid1", KYC_OUTCOME_SPOOLED);
    submit_ok(f, "rid2", KYC_OUTCOME_SPOOLED);
    submit_ok(f, "rid3", KYC_OUTCOME_SPOOLED);
    /* the drainer tries and fails while down: nothing lost, nothing stored */
    int64_t deadline = clock_mono_ms() + 5000;
    for (;;) {
        pthread_mutex_lock(&f->fs.mu);
        int a = f->fs.attempts;
        pthread_mutex_unlock(&f->fs.mu);
        if (a > 1 || clock_mono_ms() > deadline)
            break;
        usleep(5000);
    }
    assert_int_equal(fake_count(&f->fs), 0);
    assert_int_equal(spooled(f), 3);

    fake_set_down(&f->fs, 0);
    deadline = clock_mono_ms() + 8000; /* the drainer's backoff is at most 5 s */
    while (spooled(f) > 0 && clock_mono_ms() < deadline)
        usleep(5000);
    assert_int_equal(spooled(f), 0);
    const char *want[] = {"rid1", "rid2", "rid3"};
    assert_order(f, want, 3);
}

static void dead_connection_retried_once(void **state)
{
    fx *f = *state;
    start(f, -1, 0);
    f->fs.dead = 1; /* the pooled connection died: the retry succeeds */
    submit_ok(f, "rid1", KYC_OUTCOME_APPLIED);
    assert_int_equal(f->fs.attempts, 2);
    assert_int_equal(spooled(f), 0);

    f->fs.dead = 5; /* dead again on the retry: once only, then the spool */
    submit_ok(f, "rid2", KYC_OUTCOME_SPOOLED);
    assert_int_equal(f->fs.attempts, 4);
    assert_int_equal(spooled(f), 1);
}

static void no_database_no_spool_is_kerr_db(void **state)
{
    fx *f = *state;
    start(f, 0, 0);
    fake_set_down(&f->fs, 1);
    db_ingest_result res;
    kerr err;
    assert_int_equal(submit(f, "rid1", &res, &err), KERR_DB);
}

static void no_database_spool_full_is_kerr_db(void **state)
{
    fx *f = *state;
    start(f, 64, 0); /* smaller than one record */
    fake_set_down(&f->fs, 1);
    db_ingest_result res;
    kerr err;
    assert_int_equal(submit(f, "rid1", &res, &err), KERR_DB);
    assert_non_null(strstr(err.msg, "spool full"));
    assert_int_equal(spooled(f), 0);
}

static void drain_stops_at_first_failure(void **state)
{
    fx *f = *state;
    start(f, -1, 0);
    fake_set_down(&f->fs, 1);
    submit_ok(f, "rid1", KYC_OUTCOME_SPOOLED);
    submit_ok(f, "rid2", KYC_OUTCOME_SPOOLED);
    submit_ok(f, "rid3", KYC_OUTCOME_SPOOLED);
    pthread_mutex_lock(&f->fs.mu);
    f->fs.down = 0;
    f->fs.ok_left = 1; /* one commit, then the database goes away */
    pthread_mutex_unlock(&f->fs.mu);

    long long replayed = -1;
    kerr err;
    kerr_clear(&err);
    assert_int_equal(ingest_drain(f->in, &replayed, &err), KERR_DB);
    assert_int_equal(replayed, 1);
    assert_int_equal(spooled(f), 2);

    fake_set_down(&f->fs, 0);
    assert_int_equal(ingest_drain(f->in, &replayed, &err), 0);
    assert_int_equal(replayed, 2);
    assert_int_equal(spooled(f), 0);
    const char *want[] = {"rid1", "rid2", "rid3"};
    assert_order(f, want, 3);
}

static void refused_record_becomes_dead_letter(void **state)
{
    fx *f = *state;
    start(f, -1, 0);
    fake_set_down(&f->fs, 1);
    submit_ok(f, "rid1", KYC_OUTCOME_SPOOLED);
    submit_ok(f, "rid2", KYC_OUTCOME_SPOOLED);
    fake_set_down(&f->fs, 0);
    snprintf(f->fs.refuse, sizeof f->fs.refuse, "rid1");

    long long replayed = -1;
    kerr err;
    assert_int_equal(ingest_drain(f->in, &replayed, &err), 0);
    assert_int_equal(replayed, 1); /* rid2; rid1 is a dead letter, not a replay */
    assert_int_equal(spooled(f), 0);
    const char *want[] = {"rid2"};
    assert_order(f, want, 1);
    char path[256];
    snprintf(path, sizeof path, "%s/dead-rid1.rec", f->dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size > 0);
}

static void ready_follows_database_and_spool(void **state)
{
    fx *f = *state;
    start(f, -1, 0);
    char details[512];
    kerr err;
    kerr_clear(&err);
    assert_int_equal(ingest_ready(f->in, details, sizeof details, &err), 0);
    assert_non_null(strstr(details, "\"database\":\"up\""));
    assert_non_null(strstr(details, "\"spool\":{\"records\":0"));

    fake_set_down(&f->fs, 1); /* down, but the spool has room */
    assert_int_equal(ingest_ready(f->in, details, sizeof details, &err), 0);
    assert_non_null(strstr(details, "\"database\":\"down\""));
    assert_non_null(strstr(details, "\"room\":-1"));
}

static void ready_without_spool(void **state)
{
    fx *f = *state;
    start(f, 0, 0);
    char details[256];
    kerr err;
    kerr_clear(&err);
    assert_int_equal(ingest_ready(f->in, details, sizeof details, &err), 0);
    assert_non_null(strstr(details, "\"spool\":null"));
    fake_set_down(&f->fs, 1);
    assert_int_equal(ingest_ready(f->in, details, sizeof details, &err), KERR_DB);
    assert_non_null(strstr(details, "\"database\":\"down\""));
}

static void ready_spool_without_room(void **state)
{
    fx *f = *state;
    start(f, 900, 0); /* room 900 < record_max 1024 */
    char details[512];
    kerr err;
    kerr_clear(&err);
    assert_int_equal(ingest_ready(f->in, details, sizeof details, &err), 0); /* database up */
    fake_set_down(&f->fs, 1);
    assert_int_equal(ingest_ready(f->in, details, sizeof details, &err), KERR_DB);
    assert_non_null(strstr(err.msg, "spool is full"));
}

/* ---- group commit */

typedef struct sender {
    fx *f;
    pthread_barrier_t *go; /* all senders start at once */
    int id, count;
    int rc[16];
    db_ingest_result res[16];
    pthread_t th;
} sender;

/* One user per sender: its deliveries are rid "s<id>-<k>", k in order. */
static void *sender_main(void *arg)
{
    sender *t = arg;
    char body[256], rid[33];
    pthread_barrier_wait(t->go);
    for (int k = 0; k < t->count; k++) {
        snprintf(body, sizeof body,
                 "{\"externalUserId\":\"user-%d\",\"verificationStatus\":\"NOT_VERIFIED\","
                 "\"attemptStatus\":\"PENDING\",\"k\":%d}",
                 t->id, k);
        kyc_delivery d;
        memset(&d, 0, sizeof d);
        kerr err;
        if (payload_parse(KYC_KIND_KYC_STATUS, body, strlen(body), &d, &err) != 0) {
            t->rc[k] = -1;
            continue;
        }
        d.body = body;
        d.body_len = strlen(body);
        snprintf(rid, sizeof rid, "s%d-%d", t->id, k);
        snprintf(d.request_id, sizeof d.request_id, "%s", rid);
        kerr_clear(&err);
        t->rc[k] = ingest_submit(t->f->in, &d, &t->res[k], &err);
    }
    return NULL;
}

static void run_senders(fx *f, sender *t, int n, int count)
{
    pthread_barrier_t go;
    assert_int_equal(pthread_barrier_init(&go, NULL, (unsigned)n), 0);
    for (int i = 0; i < n; i++) {
        t[i] = (sender){.f = f, .go = &go, .id = i, .count = count};
        assert_int_equal(pthread_create(&t[i].th, NULL, sender_main, &t[i]), 0);
    }
    for (int i = 0; i < n; i++)
        pthread_join(t[i].th, NULL);
    pthread_barrier_destroy(&go);
}

/* Where rid sits in the stored order, or -1; and how often. */
static int stored_at(fx *f, const char *rid, int *times)
{
    int at = -1;
    *times = 0;
    pthread_mutex_lock(&f->fs.mu);
    for (int i = 0; i < f->fs.n; i++) {
        if (strcmp(f->fs.order[i], rid) == 0) {
            if (at < 0)
                at = i;
            (*times)++;
        }
    }
    pthread_mutex_unlock(&f->fs.mu);
    return at;
}

/* 16 request threads, 8 deliveries each for their own user: every 200 is
 * stored exactly once, each user's deliveries in the order they were
 * sent, and transactions are shared. */
static void group_commit_stores_each_once_in_user_order(void **state)
{
    fx *f = *state;
    f->fs.batch_sleep_us = 2000;
    start_batched(f, -1, 0, 2, 16, 0);
    sender t[16];
    run_senders(f, t, 16, 8);
    for (int i = 0; i < 16; i++) {
        int last = -1;
        for (int k = 0; k < 8; k++) {
            char rid[33];
            snprintf(rid, sizeof rid, "s%d-%d", i, k);
            int times = 0;
            int at = stored_at(f, rid, &times);
            assert_int_equal(t[i].rc[k], 0);
            assert_int_equal(t[i].res[k].outcome, KYC_OUTCOME_APPLIED);
            assert_int_equal(times, 1);
            assert_true(at > last);
            last = at;
        }
    }
    assert_int_equal(fake_count(&f->fs), 128);
    assert_int_equal(spooled(f), 0);
    assert_true(f->fs.biggest > 1);
    assert_true(f->fs.biggest <= 16);
    assert_true(f->fs.batches < 128);
}

/* A delivery the database refuses fails alone: its batch-mates are stored
 * (the committer falls back to one by one). */
static void group_commit_isolates_a_refused_delivery(void **state)
{
    fx *f = *state;
    snprintf(f->fs.refuse, sizeof f->fs.refuse, "s2-0");
    /* One committer that waits (up to 0.5 s) until all 4 are queued. */
    start_batched(f, -1, 0, 1, 4, 500000);
    sender t[4];
    run_senders(f, t, 4, 1);
    for (int i = 0; i < 4; i++)
        assert_int_equal(t[i].rc[0], i == 2 ? KERR_INVALID : 0);
    assert_int_equal(fake_count(&f->fs), 3);
    assert_int_equal(spooled(f), 0);
    assert_true(f->fs.biggest > 1);
}

/* The database down: the whole batch goes to the spool (200s), in order
 * behind it the later ones too; the replay then stores them in batches. */
static void group_commit_database_down_spools_then_replays_in_batches(void **state)
{
    fx *f = *state;
    start_batched(f, -1, 0, 2, 8, 0);
    fake_set_down(&f->fs, 1);
    sender t[4];
    run_senders(f, t, 4, 4);
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) {
            assert_int_equal(t[i].rc[k], 0);
            assert_int_equal(t[i].res[k].outcome, KYC_OUTCOME_SPOOLED);
        }
    assert_int_equal(spooled(f), 16);
    assert_int_equal(fake_count(&f->fs), 0);

    fake_set_down(&f->fs, 0);
    int batches = f->fs.batches;
    long long replayed = -1;
    kerr err;
    assert_int_equal(ingest_drain(f->in, &replayed, &err), 0);
    assert_int_equal(replayed, 16);
    assert_int_equal(spooled(f), 0);
    assert_int_equal(f->fs.batches - batches, 2); /* 16 records, 8 to a transaction */
    for (int i = 0; i < 4; i++) {
        int last = -1;
        for (int k = 0; k < 4; k++) {
            char rid[33];
            snprintf(rid, sizeof rid, "s%d-%d", i, k);
            int times = 0;
            int at = stored_at(f, rid, &times);
            assert_int_equal(times, 1);
            assert_true(at > last);
            last = at;
        }
    }
}

/* A spooled record the database refuses, in a batched replay: the others
 * are stored in order, it becomes a dead letter. */
static void batched_replay_dead_letters_a_refused_record(void **state)
{
    fx *f = *state;
    start_batched(f, -1, 0, 1, 8, 0);
    fake_set_down(&f->fs, 1);
    submit_ok(f, "rid1", KYC_OUTCOME_SPOOLED);
    submit_ok(f, "rid2", KYC_OUTCOME_SPOOLED);
    submit_ok(f, "rid3", KYC_OUTCOME_SPOOLED);
    fake_set_down(&f->fs, 0);
    snprintf(f->fs.refuse, sizeof f->fs.refuse, "rid2");
    long long replayed = -1;
    kerr err;
    assert_int_equal(ingest_drain(f->in, &replayed, &err), 0);
    assert_int_equal(replayed, 2);
    assert_int_equal(spooled(f), 0);
    const char *want[] = {"rid1", "rid3"};
    assert_order(f, want, 2);
    char path[256];
    snprintf(path, sizeof path, "%s/dead-rid2.rec", f->dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
}

int main(void)
{
    klog_set_level(getenv("TEST_LOG") ? KLOG_DEBUG
                                      : KLOG_ERROR + 1); /* the outage warnings are expected here */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(database_up_stores_not_spools, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(database_down_spools, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(spool_keeps_order_then_drain, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(drainer_replays_in_order, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(dead_connection_retried_once, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(no_database_no_spool_is_kerr_db, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(no_database_spool_full_is_kerr_db, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(drain_stops_at_first_failure, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(refused_record_becomes_dead_letter, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(ready_follows_database_and_spool, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(ready_without_spool, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(ready_spool_without_room, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(group_commit_stores_each_once_in_user_order, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(group_commit_isolates_a_refused_delivery, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(group_commit_database_down_spools_then_replays_in_batches,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(quarantined_delivery_spooled_then_replayed_to_quarantine,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(quarantine_refused_without_a_quarantine, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(batched_replay_dead_letters_a_refused_record, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
