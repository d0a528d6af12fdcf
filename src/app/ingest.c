/* Durable ingest over the connection pool (see ingest.h). Must never
 * report success before db_ingest returned 0 (COMMIT acknowledged). */
#include "app/ingest.h"

#include <stdlib.h>

struct ingest {
    db_pool *pool;
    int64_t wait_ms;
    db_ingest_opts policy;
};

int ingest_new(ingest **out, const ingest_opts *o, kerr *err)
{
    ingest *in = calloc(1, sizeof *in);
    if (in == NULL)
        return kerr_set(err, KERR_NOMEM, "out of memory");
    int rc = db_pool_new(&in->pool, &o->db, o->pool_size, err);
    if (rc != 0) {
        free(in);
        return rc;
    }
    in->wait_ms = o->wait_ms;
    in->policy = o->policy;
    *out = in;
    return 0;
}

void ingest_free(ingest *in)
{
    if (in == NULL)
        return;
    db_pool_free(in->pool);
    free(in);
}

int ingest_submit(void *ctx, const kyc_delivery *d, db_ingest_result *res, kerr *err)
{
    ingest *in = ctx;
    int rc = KERR_DB;
    for (int attempt = 0; attempt < 2; attempt++) {
        db *conn = NULL;
        rc = db_pool_get(in->pool, in->wait_ms, &conn, err);
        if (rc != 0)
            return rc;
        rc = db_ingest(conn, d, &in->policy, res, err);
        int retry = rc == KERR_DB && !db_alive(conn);
        db_pool_put(in->pool, conn);
        if (!retry)
            break;
        /* The connection died under us (server restart, network cut): one
         * more try on a fresh connection. */
    }
    return rc;
}

int ingest_ready(void *ctx, kerr *err)
{
    ingest *in = ctx;
    db *conn = NULL;
    int rc = db_pool_get(in->pool, in->wait_ms, &conn, err);
    if (rc != 0)
        return rc;
    rc = db_ping(conn, err);
    db_pool_put(in->pool, conn);
    return rc;
}
