/* Quarantined deliveries (kyc.quarantine, sql/010_quarantine.sql) and
 * `kycd replay`'s reads and its record. Part of the database module
 * (io/db.h); what a quarantine or a replay means is decided by the caller
 * (app/ingest.c, core/policy.h kyc_replay_decide). */
#ifndef KYCD_IO_DB_QUARANTINE_H
#define KYCD_IO_DB_QUARANTINE_H

#include "base/buf.h"
#include "core/kyc.h"
#include "io/db.h"
#include "io/db_ingest.h"

/* Store one quarantined delivery (dl->quarantine set: payload_quarantine)
 * raw in kyc.quarantine, in one transaction: once per (request id,
 * receipt time), so a spooled record replayed twice is stored once. A
 * KYC Verification Status report whose externalUserId could be read marks
 * that user for a check with P100, as a held report does
 * (needs_check_reason invalid_body, next_check_at its receipt; the row is
 * created if the user is new). res: outcome quarantined, reason
 * invalid_body, event_id the kyc.quarantine id (0 when it was stored
 * already). Errors as db_ingest's. */
int db_quarantine(db *d, const kyc_delivery *dl, db_ingest_result *res, kerr *err) KYCD_MUST_CHECK;

/* One stored delivery, as `kycd replay` reads it. */
typedef struct db_replay_row {
    int quarantined;  /* from kyc.quarantine; else from kyc.webhook_events */
    long long id;     /* in its table */
    long long stored; /* the kyc.webhook_events row it is (an event: itself; a
                       * quarantined delivery replayed before: that one); 0: none */
    long long received_us;
    enum kyc_kind kind;
    char external_user_id[KYC_ID_MAX + 1];
    char request_id[33];
    char remote_addr[64];
    char reason[256]; /* why it was quarantined */
    kbuf body;        /* raw bytes (an event's: its stored JSON) */
} db_replay_row;

/* The stored deliveries received in [since, until) (until NULL: no end),
 * of one user (NULL: all), from kyc.webhook_events and kyc.quarantine, in
 * received order (receipt time, then events before quarantined ones,
 * then id), read in pages under one snapshot (a cursor in a transaction
 * of d's own: use another connection for the writes), each handed to fn;
 * a non-zero return from fn stops and is returned. since and until are
 * timestamptz text. */
typedef int (*db_replay_fn)(void *ctx, const db_replay_row *row, kerr *err);
int db_replay_each(db *d, const char *since, const char *until, const char *user, db_replay_fn fn,
                   void *ctx, kerr *err) KYCD_MUST_CHECK;

/* What one run did (kyc.replay_runs). */
typedef struct db_replay_run {
    const char *started_at; /* timestamptz text */
    const char *os_user, *host;
    const char *since, *until, *user; /* NULL: none */
    int dry_run;
    int examined, applied, repeats, still_quarantined;
    const long long *event_ids; /* the events created */
    int nevents;
} db_replay_run;

/* Append the run to kyc.replay_runs; *id its id. */
int db_replay_record(db *d, const db_replay_run *run, long long *id, kerr *err) KYCD_MUST_CHECK;

#endif
