/* Durable ingest: database first, the local spool when the database fails,
 * a drainer that replays the spool (see ingest.h). The database is reached
 * through an ingest_store (app/store.h: the real one, or a unit test's
 * fake). Must never report success before the store's ingest returned 0
 * (db_ingest: COMMIT acknowledged) or spool_append returned 0 (fdatasync
 * done). */
#include "app/ingest.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "core/payload.h"

struct ingest {
    ingest_store store;
    store_db *own; /* the default store, when the options named none */
    db_ingest_opts policy;
    spool *sp;
    int64_t record_max;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* wakes the drainer: append, stop */
    int stopping;
    pthread_t drainer;
    int drainer_started;
    ingest_stats st;
};

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
static int to_database(ingest *in, const kyc_delivery *d, db_ingest_result *res, kerr *err)
{
    int rc = KERR_DB;
    for (int attempt = 0; attempt < 2; attempt++) {
        int dead = 0;
        rc = in->store.ingest(in->store.ctx, d, &in->policy, res, &dead, err);
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
    if (in->sp) {
        spool_stats ss;
        spool_stats_get(in->sp, &ss);
        if (ss.records > 0) /* keep the order: behind what is already spooled */
            return to_spool(in, d, res, err);
    }
    int rc = to_database(in, d, res, err);
    if (rc == 0) {
        count(in, &in->st.stored, 1);
        return 0;
    }
    if ((rc == KERR_DB || rc == KERR_TIMEOUT) && in->sp) {
        pthread_mutex_lock(&in->mu);
        int was_up = in->st.database_up;
        in->st.database_up = 0;
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
    int rc = spool_dead_letter(in->sp, name, rec->data, rec->len, err);
    klog(KLOG_ERROR,
         rc == 0 ? "spooled delivery refused by the database, kept as a dead letter"
                 : "spooled delivery refused by the database, and the dead letter failed",
         KLOG_STR("rid", d->request_id), KLOG_STR("error", why));
    if (rc == 0)
        count(in, &in->st.dead_letters, -1);
    return rc;
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
        rc = payload_parse_delivery(d.kind, d.body, d.body_len, d.remote_addr, d.request_id, &d,
                                    err);
    if (rc == 0) {
        db_ingest_result res;
        rc = to_database(in, &d, &res, err);
        if (rc == KERR_DB || rc == KERR_TIMEOUT) {
            pthread_mutex_lock(&in->mu);
            in->st.database_up = 0;
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

static void *drainer_main(void *arg)
{
    ingest *in = arg;
    kbuf buf;
    kbuf_init(&buf);
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
        if (ss.records == 0) {
            struct timespec ts = clock_deadline(1000);
            pthread_cond_timedwait(&in->cv, &in->mu, &ts);
            continue;
        }
        pthread_mutex_unlock(&in->mu);
        kerr_clear(&err);
        int rc = replay_one(in, &buf, &err);
        pthread_mutex_lock(&in->mu);
        if (rc == 0 || rc == KERR_NOTFOUND) {
            backoff = 200;
            if (rc == 0 && ss.records == 1)
                klog(KLOG_INFO, "spool drained", KLOG_INT("replayed", in->st.replayed));
            continue;
        }
        /* The database is still away: wait, doubling up to 5 s. */
        struct timespec ts = clock_deadline(backoff);
        pthread_cond_timedwait(&in->cv, &in->mu, &ts);
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
    pthread_mutex_unlock(&in->mu);
    kbuf_deinit(&buf);
    return NULL;
}

int ingest_new(ingest **out, const ingest_opts *o, kerr *err)
{
    ingest *in = calloc(1, sizeof *in);
    if (in == NULL)
        return kerr_set(err, KERR_NOMEM, "out of memory");
    if (clock_cond_init(&in->cv) != 0) {
        free(in);
        return kerr_set(err, KERR_NOMEM, "cannot create a condition variable");
    }
    pthread_mutex_init(&in->mu, NULL);
    in->policy = o->policy;
    in->sp = o->spool;
    in->record_max = o->record_max > 0 ? o->record_max : 65536 + 512;
    in->st.database_up = 1;
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
    pthread_mutex_unlock(&in->mu);
    if (in->drainer_started)
        pthread_join(in->drainer, NULL);
    store_db_free(in->own);
    pthread_mutex_destroy(&in->mu);
    pthread_cond_destroy(&in->cv);
    free(in);
}

int ingest_ready(void *ctx, char *details, size_t cap, kerr *err)
{
    ingest *in = ctx;
    kerr dberr;
    kerr_clear(&dberr);
    int rc = in->store.ping(in->store.ctx, &dberr);
    spool_stats ss;
    memset(&ss, 0, sizeof ss);
    if (in->sp)
        spool_stats_get(in->sp, &ss);
    if (details && cap) {
        if (in->sp)
            snprintf(details, cap,
                     "\"database\":\"%s\",\"spool\":{\"records\":%lld,\"bytes\":%lld,"
                     "\"oldest_age_ms\":%lld,\"room\":%lld}",
                     rc == 0 ? "up" : "down", (long long)ss.records, (long long)ss.bytes,
                     (long long)ss.oldest_age_ms, (long long)ss.room);
        else
            snprintf(details, cap, "\"database\":\"%s\",\"spool\":null", rc == 0 ? "up" : "down");
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
    long long before = in->st.replayed;
    int rc = 0;
    while (in->sp && (rc = replay_one(in, &buf, err)) == 0)
        ;
    kbuf_deinit(&buf);
    *replayed = in->st.replayed - before;
    return rc == KERR_NOTFOUND ? 0 : rc;
}
