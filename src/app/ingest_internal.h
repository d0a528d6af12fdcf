/* Private to durable ingest (src/app/ingest*.c): its state and what its
 * parts share. Not an API: nothing outside app/ingest*.c may include it.
 * ingest.c decides where a delivery goes (database, spool) and owns the
 * drainer and the probe; ingest_commit.c is group commit (the committers
 * that batch request threads' deliveries into one transaction). */
#ifndef KYCD_APP_INGEST_INTERNAL_H
#define KYCD_APP_INGEST_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include "app/ingest.h"

typedef struct committer committer;

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
    committer *com; /* group commit: ncom committers, each with its users */
    int ncom;
    int batch_max;
    int64_t batch_wait_us;
    /* The background readiness probe (probe_ms > 0): its last answer,
     * under mu; /readyz reads it and never touches the database itself. */
    int64_t probe_ms;
    pthread_cond_t
        probe_cv; /* wakes the prober at stop (not in->cv: an append's signal is the drainer's) */
    pthread_t prober;
    int prober_started;
    int probe_rc;                             /* 0: the database answered the last probe */
    char probe_err[sizeof(((kerr *)0)->msg)]; /* why not */
    int64_t probe_at_ms;                      /* when (monotonic) */
    /* The schema gate (ingest_opts.schema_unchecked), under mu: until OK,
     * deliveries go to the spool and the drainer waits. */
    enum ingest_schema schema;
    char schema_err[sizeof(((kerr *)0)->msg)];
};
/* One attempt at the database, with one retry on a fresh connection when
 * the pooled one died under us (server restart, network cut). */
int ingest_to_database(ingest *in, const kyc_delivery *d, db_ingest_result *res, kerr *err);

/* A batch at the database (one transaction), with the same one retry. */
int ingest_batch_to_database(ingest *in, const kyc_delivery *const *d, int n, db_ingest_result *res,
                             kerr *err);

/* Group commit (in->ncom > 0): queue the delivery to its user's committer
 * and return once it is committed (or failed), as ingest_to_database. */
int ingest_to_committer(ingest *in, const kyc_delivery *d, db_ingest_result *res, kerr *err);

/* n committers of in->batch_max each: 0 or KERR_NOMEM (then
 * ingest_committers_free cleans up what was made). */
int ingest_committers_start(ingest *in, int n);

/* After the last ingest_submit returned (the server has stopped). */
void ingest_committers_free(ingest *in);

#endif
