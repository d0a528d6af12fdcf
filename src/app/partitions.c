/* serve's partition maintenance (see partitions.h). Must never delete a
 * row or drop a partition (only db_partitions_ensure is called), nor share
 * a connection with another thread: the keeper opens its own each run. */
#include "app/partitions.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "base/log.h"
#include "io/db_partitions.h"

int partitions_maintain(db *d)
{
    kerr err;
    kerr_clear(&err);
    int created = 0;
    int rc = db_partitions_ensure(d, KYCD_PARTITIONS_AHEAD, &created, &err);
    if (rc != 0)
        klog(KLOG_WARN, "partition maintenance failed", KLOG_STR("error", err.msg),
             KLOG_STR("hint", "run `kycd partitions --create` as the tables' owner"));
    else if (created > 0)
        klog(KLOG_INFO, "partitions created", KLOG_INT("created", created),
             KLOG_INT("ahead_months", KYCD_PARTITIONS_AHEAD));
    return rc;
}

struct partitions_keeper {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    db_opts opts;
    int64_t every_ms;
};

static void *keeper_main(void *arg)
{
    partitions_keeper *k = arg;
    pthread_mutex_lock(&k->mu);
    while (!k->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += (time_t)(k->every_ms / 1000);
        until.tv_nsec += (long)(k->every_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!k->stop && pthread_cond_timedwait(&k->cv, &k->mu, &until) == 0) {
        }
        if (k->stop)
            break;
        pthread_mutex_unlock(&k->mu);
        db *d = NULL;
        kerr err;
        kerr_clear(&err);
        if (db_connect(&d, &k->opts, &err) != 0)
            klog(KLOG_WARN, "partition maintenance failed", KLOG_STR("error", err.msg));
        else
            (void)partitions_maintain(d);
        db_free(d);
        pthread_mutex_lock(&k->mu);
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

int partitions_keeper_start(partitions_keeper **out, const db_opts *o, int64_t every_ms)
{
    *out = NULL;
    partitions_keeper *k = calloc(1, sizeof *k);
    if (!k)
        return KERR_NOMEM;
    k->opts = *o;
    k->every_ms = every_ms;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&k->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&k->mu, NULL);
    if (pthread_create(&k->thread, NULL, keeper_main, k) != 0) {
        pthread_cond_destroy(&k->cv);
        pthread_mutex_destroy(&k->mu);
        free(k);
        return KERR_NOMEM;
    }
    *out = k;
    return 0;
}

void partitions_keeper_stop(partitions_keeper *k)
{
    if (!k)
        return;
    pthread_mutex_lock(&k->mu);
    k->stop = 1;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thread, NULL);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    free(k);
}
