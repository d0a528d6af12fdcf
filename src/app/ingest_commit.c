/* Group commit for durable ingest (see ingest.h, ingest_internal.h):
 * request threads queue deliveries to a committer (the one their user
 * hashes to, so that one user's deliveries keep their order and batches
 * never wait on each other's row locks), which writes whatever is waiting
 * in one transaction and wakes each request thread only after COMMIT (see
 * ingest_to_committer). Decides nothing about the spool: a failed delivery
 * goes back to ingest_submit. Must never wake a request thread before its
 * delivery's COMMIT was acknowledged (or failed). */
#include "app/ingest_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"

typedef struct pending {
    const kyc_delivery *d;
    db_ingest_result *res;
    kerr err;
    int rc;
    int done;
    pthread_cond_t cv; /* done */
    struct pending *next;
} pending;

struct committer {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a delivery was queued (for a committer waiting for batch-mates) */
    pending *head, *tail;
    int depth;
    int busy;                /* a request thread is committing a batch */
    pending **batch;         /* batch_max; the busy thread's */
    const kyc_delivery **ds; /* batch_max */
    db_ingest_result *rs;    /* batch_max */
};

static unsigned route(const ingest *in, const char *user)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)user; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % (unsigned)in->ncom;
}

/* Store a batch: in one transaction when it can; a failed database fails
 * every delivery (each goes to the spool); a delivery refused for good
 * fails the transaction, so then each is stored on its own and only the
 * refused one fails. */
static void commit_batch(ingest *in, committer *c, int n)
{
    pending **b = c->batch;
    if (n == 1 || in->store.ingest_batch == NULL) {
        for (int i = 0; i < n; i++)
            b[i]->rc = ingest_to_database(in, b[i]->d, b[i]->res, &b[i]->err);
        return;
    }
    for (int i = 0; i < n; i++)
        c->ds[i] = b[i]->d;
    kerr err;
    kerr_clear(&err);
    int rc = ingest_batch_to_database(in, c->ds, n, c->rs, &err);
    for (int i = 0; i < n; i++) {
        if (rc == 0) {
            *b[i]->res = c->rs[i];
            b[i]->rc = 0;
        } else if (rc == KERR_DB || rc == KERR_TIMEOUT) {
            b[i]->rc = rc;
            b[i]->err = err;
        } else {
            b[i]->rc = ingest_to_database(in, b[i]->d, b[i]->res, &b[i]->err);
        }
    }
}

static struct timespec deadline_us(int64_t us)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(us / 1000000);
    ts.tv_nsec += (long)(us % 1000000) * 1000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    return ts;
}

/* Take up to batch_max queued deliveries (oldest first). With mu held. */
static int take_batch(ingest *in, committer *c)
{
    if (in->batch_wait_us > 0 && c->depth < in->batch_max) {
        /* A short wait for batch-mates: latency for throughput. */
        struct timespec until = deadline_us(in->batch_wait_us);
        while (c->depth < in->batch_max && pthread_cond_timedwait(&c->cv, &c->mu, &until) == 0)
            ;
    }
    int n = 0;
    while (c->head && n < in->batch_max) {
        c->batch[n++] = c->head;
        c->head = c->head->next;
        c->depth--;
    }
    if (c->head == NULL)
        c->tail = NULL;
    return n;
}

/* Queue the delivery to its committer and wait until it is committed (or
 * failed). The committer is a role, not a thread: a request thread that
 * finds it idle takes it, writes whatever is queued (its own delivery
 * among them) in one transaction, wakes the others of that batch, and
 * hands the role to the oldest still waiting. So a delivery that arrives
 * at an idle committer costs no thread switch before its COMMIT. */
int ingest_to_committer(ingest *in, const kyc_delivery *d, db_ingest_result *res, kerr *err)
{
    committer *c = &in->com[route(in, d->external_user_id)];
    pending p;
    memset(&p, 0, sizeof p);
    p.d = d;
    p.res = res;
    if (pthread_cond_init(&p.cv, NULL) != 0)
        return ingest_to_database(in, d, res, err);
    pthread_mutex_lock(&c->mu);
    if (c->tail)
        c->tail->next = &p;
    else
        c->head = &p;
    c->tail = &p;
    c->depth++;
    pthread_cond_signal(&c->cv); /* a committer waiting for batch-mates */
    while (!p.done) {
        if (c->busy) {
            pthread_cond_wait(&p.cv, &c->mu);
            continue;
        }
        c->busy = 1;
        int n = take_batch(in, c);
        pthread_mutex_unlock(&c->mu);
        commit_batch(in, c, n);
        pthread_mutex_lock(&c->mu);
        for (int i = 0; i < n; i++) {
            /* Each waiter owns its pending (on its stack): not touched after. */
            c->batch[i]->done = 1;
            if (c->batch[i] != &p)
                pthread_cond_signal(&c->batch[i]->cv);
        }
        c->busy = 0;
        if (c->head) /* the next committer: the oldest waiting */
            pthread_cond_signal(&c->head->cv);
    }
    pthread_mutex_unlock(&c->mu);
    pthread_cond_destroy(&p.cv);
    if (p.rc != 0 && err)
        *err = p.err;
    return p.rc;
}

int ingest_committers_start(ingest *in, int n)
{
    in->com = calloc((size_t)n, sizeof *in->com);
    if (in->com == NULL)
        return KERR_NOMEM;
    for (int i = 0; i < n; i++) {
        committer *c = &in->com[i];
        if (clock_cond_init(&c->cv) != 0) /* monotonic: take_batch's deadline */
            return KERR_NOMEM;
        pthread_mutex_init(&c->mu, NULL);
        in->ncom = i + 1; /* ingest_free cleans up to here */
        c->batch = calloc((size_t)in->batch_max, sizeof *c->batch);
        c->ds = calloc((size_t)in->batch_max, sizeof *c->ds);
        c->rs = calloc((size_t)in->batch_max, sizeof *c->rs);
        if (c->batch == NULL || c->ds == NULL || c->rs == NULL)
            return KERR_NOMEM;
    }
    return 0;
}

/* After the last ingest_submit returned (the server has stopped). */
void ingest_committers_free(ingest *in)
{
    for (int i = 0; i < in->ncom; i++) {
        committer *c = &in->com[i];
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        free(c->batch);
        free(c->ds);
        free(c->rs);
    }
    free(in->com);
    in->com = NULL;
    in->ncom = 0;
}
