/* Durable ingest: database first, the local spool when the database fails,
 * a drainer that replays the spool (see ingest.h; group commit is in
 * app/ingest_commit.c). The database is reached through an ingest_store
 * (app/store.h: the real one, or a unit test's fake). Must never report
 * success before the store's ingest returned 0 (db_ingest: COMMIT
 * acknowledged) or spool_append returned 0 (fdatasync done). */
#include "app/ingest.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app/ingest_internal.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "core/payload.h"
#include "io/spool_dead.h"

/* A write found the database away (call with in->mu held): readiness
 * learns it now rather than at the probe's next ping, which alone could
 * answer "ready" for up to probe_ms while the spool fills. The probe sets it
 * back when the database answers again. Returns whether it was up. */
static int saw_database_down(ingest *in, const kerr *why)
{
    int was_up = in->st.database_up;
    in->st.database_up = 0;
    if (in->probe_ms > 0) {
        in->probe_rc = KERR_DB;
        snprintf(in->probe_err, sizeof in->probe_err, "%s",
                 why && why->msg[0] ? why->msg : "a write failed");
    }
    return was_up;
}

static void count(ingest *in, long long *field, int database_up)
{
    pthread_mutex_lock(&in->mu);
    (*field)++;
    if (database_up >= 0)
        in->st.database_up = database_up;
    pthread_mutex_unlock(&in->mu);
}

/* One attempt at the database, with one retry on a fresh connection when
 * the pooled one died under us (server restart, network cut). */
int ingest_to_database(ingest *in, const kyc_delivery *d, db_ingest_result *res, kerr *err)
{
    int rc = KERR_DB;
    if (d->quarantine[0] && in->store.quarantine == NULL)
        return kerr_set(err, KERR_INVALID, "this store keeps no quarantine");
    for (int attempt = 0; attempt < 2; attempt++) {
        int dead = 0;
        rc = d->quarantine[0] ? in->store.quarantine(in->store.ctx, d, res, &dead, err)
                              : in->store.ingest(in->store.ctx, d, &in->policy, res, &dead, err);
        if (!(rc == KERR_DB && dead))
            break;
    }
    return rc;
}

/* A batch at the database (one transaction), with the same one retry. */
int ingest_batch_to_database(ingest *in, const kyc_delivery *const *d, int n, db_ingest_result *res,
                             kerr *err)
{
    int rc = KERR_DB;
    for (int attempt = 0; attempt < 2; attempt++) {
        int dead = 0;
        rc = in->store.ingest_batch(in->store.ctx, d, n, &in->policy, res, &dead, err);
        if (!(rc == KERR_DB && dead))
            break;
    }
    return rc;
}

static int to_spool(ingest *in, const kyc_delivery *d, db_ingest_result *res, kerr *err)
{
    kbuf rec;
    kbuf_init(&rec);
    int rc = kyc_delivery_encode(d, clock_wall_us(), &rec);
    if (rc == 0)
        rc = spool_append(in->sp, rec.data, rec.len, err);
    kbuf_deinit(&rec);
    if (rc != 0) {
        /* Neither the database nor the disk took it: the caller answers 503. */
        return kerr_set(err, KERR_DB,
                        "database unavailable and the spool refused the delivery (%s)",
                        rc == KERR_TOOBIG ? "spool full"
                        : err             ? err->msg
                                          : "i/o error");
    }
    memset(res, 0, sizeof *res);
    res->outcome = KYC_OUTCOME_SPOOLED;
    res->reason = KYC_R_DATABASE_UNAVAILABLE;
    count(in, &in->st.spooled, -1);
    pthread_mutex_lock(&in->mu);
    pthread_cond_signal(&in->cv);
    pthread_mutex_unlock(&in->mu);
    return 0;
}

int ingest_submit(void *ctx, const kyc_delivery *d, db_ingest_result *res, kerr *err)
{
    ingest *in = ctx;
    if (d->quarantine[0] && in->store.quarantine == NULL)
        return kerr_set(err, KERR_INVALID, "%s", d->quarantine); /* nowhere to keep it */
    if (in->sp) {
        pthread_mutex_lock(&in->mu);
        int gated = in->schema != INGEST_SCHEMA_OK;
        pthread_mutex_unlock(&in->mu);
        if (gated) /* not a database whose schema is this kycd's, yet */
            return to_spool(in, d, res, err);
        spool_stats ss;
        spool_stats_get(in->sp, &ss);
        if (ss.records > 0) /* keep the order: behind what is already spooled */
            return to_spool(in, d, res, err);
    }
    /* A quarantined delivery is one row of its own, not a batch-mate. */
    int rc = in->ncom > 0 && !d->quarantine[0] ? ingest_to_committer(in, d, res, err)
                                               : ingest_to_database(in, d, res, err);
    if (rc == 0) {
        count(in, &in->st.stored, 1);
        return 0;
    }
    if ((rc == KERR_DB || rc == KERR_TIMEOUT) && in->sp) {
        pthread_mutex_lock(&in->mu);
        int was_up = saw_database_down(in, err);
        pthread_mutex_unlock(&in->mu);
        if (was_up) /* once per outage, not once per delivery */
            klog(KLOG_WARN, "database unavailable: spooling deliveries",
                 KLOG_STR("rid", d->request_id), KLOG_STR("error", err ? err->msg : ""));
        return to_spool(in, d, res, err);
    }
    return rc;
}

/* A record the database refuses for good (it passed our own validation,
 * so this should never happen): keep it in a file beside the spool for a
 * person, log loudly, and move on rather than block every later delivery.
 * If even that file cannot be written, the record stays in the spool. */
static int dead_letter(ingest *in, const kyc_delivery *d, const kbuf *rec, const char *why,
                       kerr *err)
{
    char name[64];
    snprintf(name, sizeof name, "%s", d->request_id[0] ? d->request_id : "unknown");
    int rc = spool_dead_letter(in->sp, name, rec->data, rec->len, why, err);
    klog(KLOG_ERROR,
         rc == 0 ? "spooled delivery refused by the database, kept as a dead letter"
                 : "spooled delivery refused by the database, and the dead letter failed",
         KLOG_STR("rid", d->request_id), KLOG_STR("error", why));
    if (rc == 0)
        count(in, &in->st.dead_letters, -1);
    return rc;
}

/* A decoded spool record made ready to store: a quarantined one (its
 * record says so) goes back to the quarantine with its reason, whatever
 * the rules say now (`kycd replay` applies it if they accept it); any
 * other is parsed again. */
static int replay_prepare(kyc_delivery *d, kerr *err)
{
    if (d->quarantine[0]) {
        payload_quarantine(d->kind, d->body, d->body_len, d->remote_addr, d->request_id,
                           d->quarantine, d);
        return 0;
    }
    return payload_parse_delivery(d->kind, d->body, d->body_len, d->remote_addr, d->request_id, d,
                                  err);
}

/* Replay one record. 0: replayed (or dead-lettered), KERR_NOTFOUND: the
 * spool is empty, other: the database failed (try later). */
static int replay_one(ingest *in, kbuf *buf, kerr *err)
{
    spool_pos pos;
    int rc = spool_peek(in->sp, buf, &pos, err);
    if (rc != 0)
        return rc;
    kyc_delivery d;
    memset(&d, 0, sizeof d);
    rc = kyc_delivery_decode(buf->data, buf->len, &d, err);
    if (rc == 0)
        rc = replay_prepare(&d, err);
    if (rc == 0) {
        db_ingest_result res;
        rc = ingest_to_database(in, &d, &res, err);
        if (rc == KERR_DB || rc == KERR_TIMEOUT) {
            pthread_mutex_lock(&in->mu);
            saw_database_down(in, err);
            pthread_mutex_unlock(&in->mu);
            return rc;
        }
        if (rc == 0)
            count(in, &in->st.replayed, 1);
    }
    if (rc != 0) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err ? err->msg : "refused");
        if ((rc = dead_letter(in, &d, buf, why, err)) != 0)
            return rc;
    }
    return spool_ack(in->sp, &pos, err);
}

/* The batched replay's buffers (batch_max of each). */
typedef struct replayer {
    int cap;
    kbuf *bufs;
    kyc_delivery *d;
    const kyc_delivery **good;
    db_ingest_result *res;
    int *bad;
} replayer;

static int replayer_init(replayer *r, int cap)
{
    memset(r, 0, sizeof *r);
    r->cap = cap;
    r->bufs = calloc((size_t)cap, sizeof *r->bufs);
    r->d = calloc((size_t)cap, sizeof *r->d);
    r->good = calloc((size_t)cap, sizeof *r->good);
    r->res = calloc((size_t)cap, sizeof *r->res);
    r->bad = calloc((size_t)cap, sizeof *r->bad);
    for (int i = 0; r->bufs && i < cap; i++)
        kbuf_init(&r->bufs[i]);
    return r->bufs && r->d && r->good && r->res && r->bad ? 0 : KERR_NOMEM;
}

static void replayer_deinit(replayer *r)
{
    for (int i = 0; r->bufs && i < r->cap; i++)
        kbuf_deinit(&r->bufs[i]);
    free(r->bufs);
    free(r->d);
    free(r->good);
    free(r->res);
    free(r->bad);
}

/* Replay up to batch_max records, oldest first, in one transaction. 0:
 * *n records replayed (or dead-lettered), KERR_NOTFOUND: empty, other: the
 * database failed (try later). A record the database refuses makes the
 * batch fall back to replay_one, record by record. */
static int replay_batch(ingest *in, replayer *r, kbuf *one, int *n, kerr *err)
{
    spool_pos span;
    *n = 0;
    int got = 0;
    int rc = spool_peek_many(in->sp, r->bufs, r->cap, &got, &span, err);
    if (rc != 0)
        return rc;
    int m = 0, quarantined = 0;
    for (int i = 0; i < got; i++) {
        kyc_delivery *d = &r->d[i];
        memset(d, 0, sizeof *d);
        kerr derr;
        int drc = kyc_delivery_decode(r->bufs[i].data, r->bufs[i].len, d, &derr);
        if (drc == 0)
            drc = replay_prepare(d, &derr);
        r->bad[i] = drc != 0;
        quarantined += drc == 0 && d->quarantine[0];
        if (drc == 0)
            r->good[m++] = d;
    }
    if (quarantined > 0) {
        /* Quarantined records are rare and not batch-mates (their own
         * statement): this batch goes record by record, in spool order. */
        for (int i = 0; i < got; i++) {
            if ((rc = replay_one(in, one, err)) != 0)
                return rc;
            (*n)++;
        }
        return 0;
    }
    if (m > 0) {
        rc = ingest_batch_to_database(in, r->good, m, r->res, err);
        if (rc == KERR_DB || rc == KERR_TIMEOUT) {
            pthread_mutex_lock(&in->mu);
            saw_database_down(in, err);
            pthread_mutex_unlock(&in->mu);
            return rc;
        }
        if (rc != 0) {
            /* One of them is refused: find it the slow way. */
            for (int i = 0; i < got; i++) {
                if ((rc = replay_one(in, one, err)) != 0)
                    return rc;
                (*n)++;
            }
            return 0;
        }
        pthread_mutex_lock(&in->mu);
        in->st.replayed += m;
        in->st.database_up = 1;
        pthread_mutex_unlock(&in->mu);
    }
    for (int i = 0; i < got; i++) {
        if (!r->bad[i])
            continue;
        /* Unreadable records never reach the database: keep them aside. A
         * failure here acks nothing: the batch is replayed again (stored
         * once: request ids are unique). */
        if ((rc = dead_letter(in, &r->d[i], &r->bufs[i], "cannot decode the spooled record",
                              err)) != 0)
            return rc;
    }
    if ((rc = spool_ack_many(in->sp, &span, got, err)) != 0)
        return rc;
    *n = got;
    return 0;
}

/* One step of the replay: a batch when the store has them, else one. */
static int replay_some(ingest *in, replayer *r, kbuf *one, int *n, kerr *err)
{
    if (r->cap > 1 && in->store.ingest_batch != NULL)
        return replay_batch(in, r, one, n, err);
    *n = 0;
    int rc = replay_one(in, one, err);
    if (rc == 0)
        *n = 1;
    return rc;
}

static void *drainer_main(void *arg)
{
    ingest *in = arg;
    kbuf buf;
    kbuf_init(&buf);
    replayer rp;
    if (replayer_init(&rp, in->batch_max) != 0) {
        replayer_deinit(&rp);
        replayer_init(&rp, 1); /* no memory for batches: one record at a time */
        rp.cap = 1;
    }
    kerr err;
    int64_t backoff = 200, last_report = 0;
    pthread_mutex_lock(&in->mu);
    while (!in->stopping) {
        spool_stats ss;
        spool_stats_get(in->sp, &ss);
        int64_t now = clock_mono_ms();
        if (ss.records > 0 && now - last_report >= 10000) {
            /* The operator's view of an outage: depth and age every 10 s. */
            klog(KLOG_WARN, "spool", KLOG_INT("records", ss.records), KLOG_INT("bytes", ss.bytes),
                 KLOG_INT("oldest_age_ms", ss.oldest_age_ms),
                 KLOG_STR("database", in->st.database_up ? "up" : "down"));
            last_report = now;
        }
        if (ss.records == 0 || in->schema != INGEST_SCHEMA_OK) {
            /* Nothing to replay, or no database with this kycd's schema yet
             * (the probe wakes us when there is one). */
            struct timespec ts = clock_deadline(1000);
            pthread_cond_timedwait(&in->cv, &in->mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&in->mu);
        kerr_clear(&err);
        int done = 0;
        int rc = replay_some(in, &rp, &buf, &done, &err);
        pthread_mutex_lock(&in->mu);
        if (rc == 0 || rc == KERR_NOTFOUND) {
            backoff = 200;
            if (rc == 0 && ss.records <= done)
                klog(KLOG_INFO, "spool drained", KLOG_INT("replayed", in->st.replayed));
            continue;
        }
        /* The database is still away: wait, doubling up to 5 s. */
        struct timespec ts = clock_deadline(backoff);
        pthread_cond_timedwait(&in->cv, &in->mu, &ts);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
    pthread_mutex_unlock(&in->mu);
    replayer_deinit(&rp);
    kbuf_deinit(&buf);
    return NULL;
}

/* The schema gate: once the database answers, is its schema this kycd's?
 * Called by the probe (mu not held) while the gate is closed. */
static void check_schema(ingest *in)
{
    kerr err;
    kerr_clear(&err);
    int rc = in->store.schema ? in->store.schema(in->store.ctx, &err) : 0;
    if (rc == KERR_DB || rc == KERR_TIMEOUT)
        return; /* still away: unchecked as before */
    pthread_mutex_lock(&in->mu);
    enum ingest_schema was = in->schema;
    in->schema = rc == 0 ? INGEST_SCHEMA_OK : INGEST_SCHEMA_MISMATCH;
    snprintf(in->schema_err, sizeof in->schema_err, "%s", rc ? err.msg : "");
    if (rc == 0)
        pthread_cond_broadcast(&in->cv); /* the drainer may replay now */
    pthread_mutex_unlock(&in->mu);
    if (rc == 0)
        klog(KLOG_INFO, "database answers with this kycd's schema: replaying the spool",
             KLOG_STR("schema", "ok"));
    else if (was != INGEST_SCHEMA_MISMATCH) /* once, not at every probe */
        klog(KLOG_ERROR, "database schema does not match: deliveries stay in the spool",
             KLOG_STR("error", err.msg));
}

/* Ping the database every probe_ms (each with the store's short deadline)
 * and keep the answer for ingest_ready; while the schema gate is closed,
 * check the schema once the database answers. */
static void *prober_main(void *arg)
{
    ingest *in = arg;
    pthread_mutex_lock(&in->mu);
    while (!in->stopping) {
        int gated = in->schema != INGEST_SCHEMA_OK;
        pthread_mutex_unlock(&in->mu);
        kerr err;
        kerr_clear(&err);
        int rc = in->store.ping(in->store.ctx, &err);
        if (rc == 0 && gated)
            check_schema(in);
        pthread_mutex_lock(&in->mu);
        in->probe_rc = rc;
        snprintf(in->probe_err, sizeof in->probe_err, "%s", rc ? err.msg : "");
        in->probe_at_ms = clock_mono_ms();
        if (in->stopping)
            break;
        struct timespec ts = clock_deadline(in->probe_ms);
        pthread_cond_timedwait(&in->probe_cv, &in->mu, &ts);
    }
    pthread_mutex_unlock(&in->mu);
    return NULL;
}

void ingest_pool_counts(ingest *in, int *idle, int *busy, int *size)
{
    *idle = *busy = *size = 0;
    if (in->store.pool_counts)
        in->store.pool_counts(in->store.ctx, idle, busy, size);
}

enum ingest_schema ingest_schema_state(ingest *in, char *why, size_t cap)
{
    pthread_mutex_lock(&in->mu);
    enum ingest_schema s = in->schema;
    if (why && cap)
        snprintf(why, cap, "%s",
                 s == INGEST_SCHEMA_MISMATCH    ? in->schema_err
                 : s == INGEST_SCHEMA_UNCHECKED ? "the database has not answered since the start"
                                                : "");
    pthread_mutex_unlock(&in->mu);
    return s;
}

int ingest_database_up(ingest *in, char *why, size_t cap)
{
    pthread_mutex_lock(&in->mu);
    int up = in->probe_rc == 0;
    if (why && cap)
        snprintf(why, cap, "%s", in->probe_err);
    pthread_mutex_unlock(&in->mu);
    return up;
}

int ingest_new(ingest **out, const ingest_opts *o, kerr *err)
{
    ingest *in = calloc(1, sizeof *in);
    if (in == NULL)
        return kerr_set(err, KERR_NOMEM, "out of memory");
    if (clock_cond_init(&in->cv) != 0 || clock_cond_init(&in->probe_cv) != 0) {
        free(in);
        return kerr_set(err, KERR_NOMEM, "cannot create a condition variable");
    }
    pthread_mutex_init(&in->mu, NULL);
    in->policy = o->policy;
    in->sp = o->spool;
    in->record_max = o->record_max > 0 ? o->record_max : 65536 + 512;
    in->st.database_up = 1;
    /* Without a spool there is nowhere to wait: serve checked the schema. */
    in->schema = o->schema_unchecked && o->spool ? INGEST_SCHEMA_UNCHECKED : INGEST_SCHEMA_OK;
    if (in->schema != INGEST_SCHEMA_OK)
        in->st.database_up = 0;
    int rc0;
    if (o->store) {
        in->store = *o->store;
    } else {
        int rc = store_db_new(&in->own, &o->db, o->pool_size, o->wait_ms, err);
        if (rc != 0) {
            ingest_free(in);
            return rc;
        }
        in->store = store_db_ingest(in->own);
    }
    in->batch_max = o->batch_max > 1 ? o->batch_max : 1;
    in->batch_wait_us = o->batch_wait_us;
    if (o->committers > 0 && (rc0 = ingest_committers_start(in, o->committers)) != 0) {
        ingest_free(in);
        return kerr_set(err, rc0, "out of memory for the committers");
    }
    if (o->probe_ms > 0) {
        in->probe_ms = o->probe_ms;
        /* The first answer before serving: readiness is never a guess. */
        kerr perr;
        kerr_clear(&perr);
        in->probe_rc = in->store.ping(in->store.ctx, &perr);
        snprintf(in->probe_err, sizeof in->probe_err, "%s", in->probe_rc ? perr.msg : "");
        if (pthread_create(&in->prober, NULL, prober_main, in) != 0) {
            ingest_free(in);
            return kerr_set(err, KERR_NOMEM, "cannot start the database probe");
        }
        in->prober_started = 1;
    }
    if (in->sp && o->drainer) {
        if (pthread_create(&in->drainer, NULL, drainer_main, in) != 0) {
            ingest_free(in);
            return kerr_set(err, KERR_NOMEM, "cannot start the spool drainer");
        }
        in->drainer_started = 1;
    }
    *out = in;
    return 0;
}

void ingest_free(ingest *in)
{
    if (in == NULL)
        return;
    pthread_mutex_lock(&in->mu);
    in->stopping = 1;
    pthread_cond_broadcast(&in->cv);
    pthread_cond_broadcast(&in->probe_cv);
    pthread_mutex_unlock(&in->mu);
    if (in->drainer_started)
        pthread_join(in->drainer, NULL);
    if (in->prober_started)
        pthread_join(in->prober, NULL);
    ingest_committers_free(in);
    store_db_free(in->own);
    pthread_mutex_destroy(&in->mu);
    pthread_cond_destroy(&in->cv);
    pthread_cond_destroy(&in->probe_cv);
    free(in);
}

int ingest_ready(void *ctx, char *details, size_t cap, kerr *err)
{
    ingest *in = ctx;
    kerr dberr;
    kerr_clear(&dberr);
    int rc;
    if (in->probe_ms > 0) {
        pthread_mutex_lock(&in->mu);
        rc = in->probe_rc;
        kerr_set(&dberr, rc, "%s", in->probe_err);
        pthread_mutex_unlock(&in->mu);
    } else {
        rc = in->store.ping(in->store.ctx, &dberr);
    }
    char why[sizeof dberr.msg];
    enum ingest_schema schema = ingest_schema_state(in, why, sizeof why);
    static const char *const schema_names[] = {"ok", "unchecked", "mismatch"};
    spool_stats ss;
    memset(&ss, 0, sizeof ss);
    if (in->sp)
        spool_stats_get(in->sp, &ss);
    if (details && cap) {
        if (in->sp)
            snprintf(details, cap,
                     "\"database\":\"%s\",\"schema\":\"%s\",\"spool\":{\"records\":%lld,"
                     "\"bytes\":%lld,\"oldest_age_ms\":%lld,\"room\":%lld}",
                     rc == 0 ? "up" : "down", schema_names[schema], (long long)ss.records,
                     (long long)ss.bytes, (long long)ss.oldest_age_ms, (long long)ss.room);
        else
            snprintf(details, cap, "\"database\":\"%s\",\"schema\":\"%s\",\"spool\":null",
                     rc == 0 ? "up" : "down", schema_names[schema]);
    }
    if (schema != INGEST_SCHEMA_OK) {
        /* Deliveries go to the spool (the gate): ready while it has room,
         * so that a balancer keeps sending P100's deliveries here. */
        if (in->sp && (ss.room < 0 || ss.room >= in->record_max))
            return 0;
        return kerr_set(err, KERR_DB, "%s, and the spool is full", why);
    }
    if (rc == 0)
        return 0;
    if (in->sp && (ss.room < 0 || ss.room >= in->record_max))
        return 0; /* the spool takes deliveries while the database is away */
    if (in->sp)
        return kerr_set(err, KERR_DB, "database unavailable (%s) and the spool is full", dberr.msg);
    return kerr_set(err, rc, "%s", dberr.msg);
}

int ingest_drain(ingest *in, long long *replayed, kerr *err)
{
    kbuf buf;
    kbuf_init(&buf);
    replayer rp;
    long long before = in->st.replayed;
    int rc = replayer_init(&rp, in->batch_max);
    if (rc != 0)
        rc = kerr_set(err, KERR_NOMEM, "out of memory");
    int done = 0;
    while (rc == 0 && in->sp && (rc = replay_some(in, &rp, &buf, &done, err)) == 0)
        ;
    replayer_deinit(&rp);
    kbuf_deinit(&buf);
    *replayed = in->st.replayed - before;
    return rc == KERR_NOTFOUND ? 0 : rc;
}
