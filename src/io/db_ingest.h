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

/* Store one verified delivery and apply it, in one transaction:
 * append to kyc.webhook_events, decide with the state machine, update
 * kyc.verifications (or kyc.poa_statuses) and append to kyc.status_changes.
 * Returns only after COMMIT succeeded: the delivery is durable.
 * KERR_DB: database unavailable or failed (retryable; nothing committed
 * unless the failure hit the COMMIT's answer, in which case a retry is
 * recorded as a repeat and changes nothing). KERR_INVALID: the database
 * refused the data itself (not retryable). */
int db_ingest(db *d, const kyc_delivery *dl, const db_ingest_opts *o, db_ingest_result *res,
              kerr *err) KYCD_MUST_CHECK;

#endif
