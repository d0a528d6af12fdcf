/* The database as ingest and the reconciler see it: the few operations each
 * needs, as a struct of function pointers plus a context, so that a unit
 * test can put a fake in its place (STYLE.md: concurrent modules are tested
 * through a small seam). The default implementation (store_db) is backed by
 * io/db_pool and io/db_*; it is what kycd uses.
 *
 * The operations keep the database module's error contract: KERR_DB for a
 * database that is away or failed (retryable), KERR_TIMEOUT for no free
 * connection in time, KERR_INVALID for data the database refuses for good.
 * Never a place for decisions: those stay in app/ingest.c, app/reconciler.c
 * and core/. */
#ifndef KYCD_APP_STORE_H
#define KYCD_APP_STORE_H

#include <stdint.h>

#include "base/err.h"
#include "core/kyc.h"
#include "io/db.h"
#include "io/db_ingest.h"
#include "io/db_quarantine.h"
#include "io/db_reconcile.h"

/* What ingest needs. Both operations may be called from many threads. */
typedef struct ingest_store {
    void *ctx;
    /* Store one delivery (db_ingest). On failure *dead says whether the
     * connection was found dead (server restarted, network cut): a retry on
     * a fresh connection may succeed. *dead is always set. */
    int (*ingest)(void *ctx, const kyc_delivery *d, const db_ingest_opts *o, db_ingest_result *res,
                  int *dead, kerr *err);
    /* One round trip on a connection of its own (never a pooled one), for
     * the readiness probe. Called from one thread at a time. */
    int (*ping)(void *ctx, kerr *err);
    /* Store n deliveries in one transaction (db_ingest_batch): all or
     * nothing, res[i] for d[i]; *dead as for ingest. NULL: the store has
     * no batches (ingest then stores one delivery at a time). */
    int (*ingest_batch)(void *ctx, const kyc_delivery *const *d, int n, const db_ingest_opts *o,
                        db_ingest_result *res, int *dead, kerr *err);
    /* The pool's connections (db_pool_counts); NULL: the store has none. */
    void (*pool_counts)(void *ctx, int *idle, int *busy, int *size);
    /* db_check_schema on the probe's connection: 0 when the database's
     * schema is the one this kycd needs, KERR_STATE when not, KERR_DB when
     * it does not answer. Called from the probe thread only. NULL: the
     * store has no schema to check. */
    int (*schema)(void *ctx, kerr *err);
    /* Store one quarantined delivery (db_quarantine); *dead as for
     * ingest. NULL: the store keeps no quarantine (a body that fails
     * validation is then refused with 400, as before schema 10). */
    int (*quarantine)(void *ctx, const kyc_delivery *d, db_ingest_result *res, int *dead,
                      kerr *err);
} ingest_store;

/* What the reconciler needs. claim_due and release_claim are called by the
 * dispatcher thread only; the check's steps by every worker. */
typedef struct reconcile_store {
    void *ctx;
    int (*claim_due)(void *ctx, const db_claim_opts *o, db_claim *out, int *n, kerr *err);
    /* One check's transaction (db_check_begin/finish): begin takes a
     * connection of its own for it (*txn), locks and reads the user's row;
     * finish records the call, carries out core's plan and commits (or
     * rolls back), and gives the connection back; so does a failed begin.
     * A successful begin is always followed by finish (core's decision in
     * between cannot fail). */
    int (*check_begin)(void *ctx, const char *external_user_id, const char *owner, void **txn,
                       db_check_row *row, kerr *err);
    int (*check_finish)(void *ctx, void *txn, const db_check_record *rec,
                        const kyc_check_plan *plan, long long *check_id, kerr *err);
    int (*release_claim)(void *ctx, const char *owner, const char *external_user_id, kerr *err);
    /* db_count_due, by the dispatcher; NULL: not counted. */
    int (*count_due)(void *ctx, int64_t pending_after_ms, int64_t webhook_overdue_ms,
                     db_due_counts *out, kerr *err);
    /* db_recheck_policy_set, by the dispatcher; NULL: no policy to set. */
    int (*recheck_policy)(void *ctx, const db_recheck_policy *p, int batch, db_restamp *out,
                          kerr *err);
} reconcile_store;

/* The real database: a pool of `pool_size` lazily opened connections
 * (borrowed for at most wait_ms) for ingest and the checks, plus one
 * connection of the reconciler's dispatcher for claims and releases,
 * opened on the first claim and reopened when found dead. The options'
 * strings must outlive the store. */
typedef struct store_db store_db;

int store_db_new(store_db **out, const db_opts *o, int pool_size, int64_t wait_ms,
                 kerr *err) KYCD_MUST_CHECK;
void store_db_free(store_db *s);

/* The two views of one store_db (which they borrow). */
ingest_store store_db_ingest(store_db *s);
reconcile_store store_db_reconcile(store_db *s);

#endif
