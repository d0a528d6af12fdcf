/* The default ingest and reconcile stores over io/db_pool and io/db_* (see
 * app/store.h). Thin by design: the retry of a dead connection, the spool
 * fallback and every reconciler decision live with their callers, where
 * the unit tests can reach them. Must never decide anything itself. */
#include "app/store.h"

#include <pthread.h>
#include <stdlib.h>

#include "io/db_pool.h"
#include "io/migrate.h"

struct store_db {
    db_opts opts;
    db_pool *pool;
    int64_t wait_ms;
    db *conn; /* the dispatcher's (one thread) */
    /* The readiness probe's own connection (never a pooled one: a probe
     * must not wait behind, or take a slot from, the deliveries). */
    pthread_mutex_t probe_mu;
    db *probe;
};

int store_db_new(store_db **out, const db_opts *o, int pool_size, int64_t wait_ms, kerr *err)
{
    store_db *s = calloc(1, sizeof *s);
    if (s == NULL)
        return kerr_set(err, KERR_NOMEM, "out of memory");
    s->opts = *o;
    s->wait_ms = wait_ms;
    pthread_mutex_init(&s->probe_mu, NULL);
    int rc = db_pool_new(&s->pool, o, pool_size, err);
    if (rc != 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void store_db_free(store_db *s)
{
    if (s == NULL)
        return;
    db_free(s->conn);
    db_free(s->probe);
    pthread_mutex_destroy(&s->probe_mu);
    db_pool_free(s->pool);
    free(s);
}

static int db_ingest_op(void *ctx, const kyc_delivery *d, const db_ingest_opts *o,
                        db_ingest_result *res, int *dead, kerr *err)
{
    store_db *s = ctx;
    db *conn = NULL;
    *dead = 0;
    int rc = db_pool_get(s->pool, s->wait_ms, &conn, err);
    if (rc != 0)
        return rc;
    rc = db_ingest(conn, d, o, res, err);
    *dead = rc == KERR_DB && !db_alive(conn);
    db_pool_put(s->pool, conn);
    return rc;
}

static int db_quarantine_op(void *ctx, const kyc_delivery *d, db_ingest_result *res, int *dead,
                            kerr *err)
{
    store_db *s = ctx;
    db *conn = NULL;
    *dead = 0;
    int rc = db_pool_get(s->pool, s->wait_ms, &conn, err);
    if (rc != 0)
        return rc;
    rc = db_quarantine(conn, d, res, err);
    *dead = rc == KERR_DB && !db_alive(conn);
    db_pool_put(s->pool, conn);
    return rc;
}

/* The probe's deadline: short, so a database that hangs is seen as down
 * within it (at most db_timeout). */
#define PROBE_TIMEOUT_MS 2000

static int db_ping_op(void *ctx, kerr *err)
{
    store_db *s = ctx;
    pthread_mutex_lock(&s->probe_mu);
    int rc = 0;
    if (s->probe == NULL || !db_alive(s->probe)) {
        db_free(s->probe);
        s->probe = NULL;
        db_opts o = s->opts;
        if (o.timeout_ms <= 0 || o.timeout_ms > PROBE_TIMEOUT_MS)
            o.timeout_ms = PROBE_TIMEOUT_MS;
        rc = db_connect(&s->probe, &o, err);
    }
    if (rc == 0)
        rc = db_ping(s->probe, err);
    pthread_mutex_unlock(&s->probe_mu);
    return rc;
}

static int db_schema_op(void *ctx, kerr *err)
{
    store_db *s = ctx;
    int rc = db_ping_op(ctx, err); /* (re)opens the probe's connection */
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&s->probe_mu);
    rc = db_check_schema(s->probe, err);
    pthread_mutex_unlock(&s->probe_mu);
    return rc;
}

static int db_ingest_batch_op(void *ctx, const kyc_delivery *const *d, int n,
                              const db_ingest_opts *o, db_ingest_result *res, int *dead, kerr *err)
{
    store_db *s = ctx;
    db *conn = NULL;
    *dead = 0;
    int rc = db_pool_get(s->pool, s->wait_ms, &conn, err);
    if (rc != 0)
        return rc;
    rc = db_ingest_batch(conn, d, n, o, res, err);
    *dead = rc == KERR_DB && !db_alive(conn);
    db_pool_put(s->pool, conn);
    return rc;
}

static void db_pool_counts_op(void *ctx, int *idle, int *busy, int *size)
{
    store_db *s = ctx;
    db_pool_counts(s->pool, idle, busy, size);
}

ingest_store store_db_ingest(store_db *s)
{
    ingest_store st = {.ctx = s,
                       .ingest = db_ingest_op,
                       .ping = db_ping_op,
                       .ingest_batch = db_ingest_batch_op,
                       .pool_counts = db_pool_counts_op,
                       .schema = db_schema_op,
                       .quarantine = db_quarantine_op};
    return st;
}

/* The dispatcher's connection, opened or reopened when needed. */
static int dispatcher_conn(store_db *s, kerr *err)
{
    if (s->conn == NULL || !db_alive(s->conn)) {
        db_free(s->conn);
        s->conn = NULL;
        return db_connect(&s->conn, &s->opts, err);
    }
    return 0;
}

static int db_claim_op(void *ctx, const db_claim_opts *o, db_claim *out, int *n, kerr *err)
{
    store_db *s = ctx;
    int rc = dispatcher_conn(s, err);
    return rc ? rc : db_claim_due(s->conn, o, out, n, err);
}

static int db_count_due_op(void *ctx, int64_t pending_after_ms, int64_t webhook_overdue_ms,
                           db_due_counts *out, kerr *err)
{
    store_db *s = ctx;
    int rc = dispatcher_conn(s, err);
    return rc ? rc : db_count_due(s->conn, pending_after_ms, webhook_overdue_ms, out, err);
}

static int db_recheck_policy_op(void *ctx, const db_recheck_policy *p, int batch, db_restamp *out,
                                kerr *err)
{
    store_db *s = ctx;
    int rc = dispatcher_conn(s, err);
    return rc ? rc : db_recheck_policy_set(s->conn, p, batch, out, err);
}

/* A check holds a pooled connection from begin to finish (a few
 * milliseconds: core decides in between, no call to P100). */
static int db_check_begin_op(void *ctx, const char *external_user_id, const char *owner, void **txn,
                             db_check_row *row, kerr *err)
{
    store_db *s = ctx;
    db *conn = NULL;
    int rc = db_pool_get(s->pool, s->wait_ms, &conn, err);
    if (rc != 0)
        return rc;
    if ((rc = db_check_begin(conn, external_user_id, owner, row, err)) != 0) {
        db_pool_put(s->pool, conn);
        return rc;
    }
    *txn = conn;
    return 0;
}

static int db_check_finish_op(void *ctx, void *txn, const db_check_record *rec,
                              const kyc_check_plan *plan, long long *check_id, kerr *err)
{
    store_db *s = ctx;
    int rc = db_check_finish(txn, rec, plan, check_id, err);
    db_pool_put(s->pool, txn);
    return rc;
}

/* Releases go through the connection that made the claims. Without one
 * (the database went away since) they fail at once rather than wait out a
 * connect per claim during a stop: the leases expire anyway. */
static int db_release_op(void *ctx, const char *owner, const char *external_user_id, kerr *err)
{
    store_db *s = ctx;
    if (s->conn == NULL)
        return kerr_set(err, KERR_DB, "no database connection");
    return db_release_claim(s->conn, owner, external_user_id, err);
}

reconcile_store store_db_reconcile(store_db *s)
{
    reconcile_store st = {.ctx = s,
                          .claim_due = db_claim_op,
                          .check_begin = db_check_begin_op,
                          .check_finish = db_check_finish_op,
                          .release_claim = db_release_op,
                          .count_due = db_count_due_op,
                          .recheck_policy = db_recheck_policy_op};
    return st;
}
