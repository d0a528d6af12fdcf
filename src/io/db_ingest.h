/* The one write path for webhook deliveries. Part of the database module
 * (io/db.h); the decisions are core's (core/state.h, core/policy.h). */
#ifndef KYCD_IO_DB_INGEST_H
#define KYCD_IO_DB_INGEST_H

#include <stdint.h>

#include "core/kyc.h"
#include "core/state.h"
#include "io/db.h"

typedef struct db_ingest_opts {
    int64_t dedup_window_ms;   /* identical body within this window is a repeat */
    int64_t reorder_window_ms; /* see core/state.h */
} db_ingest_opts;

typedef struct db_ingest_result {
    long long event_id;       /* kyc.webhook_events.id */
    long long repeat_of;      /* earlier identical delivery, or 0 */
    enum kyc_outcome outcome; /* applied, unchanged, held, recorded (kyc_outcome_name) */
    enum kyc_reason reason;   /* state-machine reason, or latest/recorded/repeat/already_stored */
} db_ingest_result;

/* Store one verified delivery and apply it, in one transaction (a batch
 * of one, below):
 * append to kyc.webhook_events, decide with the state machine, update
 * kyc.verifications (or kyc.poa_statuses) and append to kyc.status_changes.
 * Returns only after COMMIT succeeded: the delivery is durable.
 * KERR_DB: database unavailable or failed (retryable; nothing committed
 * unless the failure hit the COMMIT's answer, in which case a retry is
 * recorded as a repeat and changes nothing). KERR_INVALID: the database
 * refused the data itself (not retryable). */
int db_ingest(db *d, const kyc_delivery *dl, const db_ingest_opts *o, db_ingest_result *res,
              kerr *err) KYCD_MUST_CHECK;

/* Store n deliveries in one transaction (group commit), each exactly as
 * db_ingest would, in the order given for deliveries of one user (those
 * of different users are independent). The statements go through libpq's
 * pipeline mode: about one round trip per delivery of the same user in
 * the batch, plus one. Row locks are taken in user order; a deadlock or
 * serialization failure is retried (twice). All or nothing: 0 with res[i]
 * for dl[i] after COMMIT; otherwise nothing is committed and the error is
 * the first statement's that failed (KERR_INVALID when the data of one
 * delivery was refused: the caller stores them one by one to find it). */
int db_ingest_batch(db *d, const kyc_delivery *const *dl, int n, const db_ingest_opts *o,
                    db_ingest_result *res, kerr *err) KYCD_MUST_CHECK;

#endif
