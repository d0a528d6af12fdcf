/* The durable write path: "accept, persist, answer". A request thread hands
 * a verified delivery to ingest_submit, which returns only once it is
 * committed. This is the one place that decides where a delivery goes (today
 * the database through a connection pool; the spool and shared commits plug
 * in here without touching the handler). */
#ifndef KYCD_APP_INGEST_H
#define KYCD_APP_INGEST_H

#include <stdint.h>

#include "base/err.h"
#include "core/kyc.h"
#include "io/db.h"

typedef struct ingest ingest;

typedef struct ingest_opts {
    db_opts db;                /* how to connect */
    int pool_size;
    int64_t wait_ms;           /* deadline for a free connection */
    db_ingest_opts policy;     /* dedup and reorder windows */
} ingest_opts;

int ingest_new(ingest **out, const ingest_opts *o, kerr *err) KYCD_MUST_CHECK;
void ingest_free(ingest *in);

/* Persist one delivery (see handler_store.submit). A connection found dead
 * (server restarted) is replaced and the delivery retried once; a retry
 * after an unanswered COMMIT is recorded as a repeat and changes nothing. */
int ingest_submit(void *in, const kyc_delivery *d, db_ingest_result *res, kerr *err);

/* The database answers within the deadline (for /readyz). */
int ingest_ready(void *in, kerr *err);

#endif
