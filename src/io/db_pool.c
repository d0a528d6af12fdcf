/* The connection pool (see db_pool.h): a stack of slots under one mutex.
 * Must never connect, or wait for the database, while holding the mutex. */
#include "io/db_pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "io/db_internal.h"

struct db_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    db_opts opts;
    char *conninfo, *password, *appname;
    int size;
    int nfree;  /* slots not lent out */
    db **slots; /* free stack: slots[0..nfree) may hold NULL (not yet open) */
};

int db_pool_new(db_pool **out, const db_opts *o, int size, kerr *err)
{
    db_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return kerr_set(err, KERR_NOMEM, "out of memory");
    if (clock_cond_init(&p->cv) != 0) {
        free(p);
        return kerr_set(err, KERR_NOMEM, "cannot create a condition variable");
    }
    pthread_mutex_init(&p->mu, NULL);
    p->slots = calloc((size_t)size, sizeof *p->slots);
    p->conninfo = strdup(o->conninfo ? o->conninfo : "");
    p->password = o->password ? strdup(o->password) : NULL;
    p->appname = strdup(o->application_name ? o->application_name : "kycd");
    if (p->slots == NULL || p->conninfo == NULL || p->appname == NULL ||
        (o->password && p->password == NULL)) {
        db_pool_free(p);
        return kerr_set(err, KERR_NOMEM, "out of memory");
    }
    p->opts = *o;
    p->opts.conninfo = p->conninfo;
    p->opts.password = p->password;
    p->opts.application_name = p->appname;
    p->size = size;
    p->nfree = size;
    *out = p;
    return 0;
}

int db_pool_get(db_pool *p, int64_t timeout_ms, db **out, kerr *err)
{
    struct timespec until = clock_deadline(timeout_ms);
    pthread_mutex_lock(&p->mu);
    while (p->nfree == 0) {
        if (pthread_cond_timedwait(&p->cv, &p->mu, &until) != 0 && p->nfree == 0) {
            pthread_mutex_unlock(&p->mu);
            return kerr_set(err, KERR_TIMEOUT, "no database connection free within %lld ms",
                            (long long)timeout_ms);
        }
    }
    db *d = p->slots[--p->nfree];
    p->slots[p->nfree] = NULL;
    pthread_mutex_unlock(&p->mu);

    if (d != NULL && db_idle_usable(d)) {
        *out = d;
        return 0;
    }
    db_free(d);
    /* Connect outside the lock: other threads keep using their slots. */
    int rc = db_connect(&d, &p->opts, err);
    if (rc != 0) {
        db_pool_put(p, NULL);
        return rc;
    }
    *out = d;
    return 0;
}

void db_pool_put(db_pool *p, db *d)
{
    if (d != NULL && !db_alive(d)) {
        db_free(d);
        d = NULL;
    }
    pthread_mutex_lock(&p->mu);
    /* Open connections go on top so that they are reused first. */
    if (d != NULL) {
        p->slots[p->nfree++] = d;
    } else {
        memmove(p->slots + 1, p->slots, (size_t)p->nfree * sizeof *p->slots);
        p->slots[0] = NULL;
        p->nfree++;
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void db_pool_free(db_pool *p)
{
    if (p == NULL)
        return;
    for (int i = 0; p->slots && i < p->nfree; i++)
        db_free(p->slots[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p->slots);
    free(p->conninfo);
    if (p->password) {
        memset(p->password, 0, strlen(p->password));
        free(p->password);
    }
    free(p->appname);
    free(p);
}

void db_pool_counts(db_pool *p, int *idle, int *busy, int *size)
{
    pthread_mutex_lock(&p->mu);
    int open_free = 0;
    for (int i = 0; i < p->nfree; i++)
        open_free += p->slots[i] != NULL;
    *idle = open_free;
    *busy = p->size - p->nfree;
    *size = p->size;
    pthread_mutex_unlock(&p->mu);
}
