/* The reconciler's side of the database: claims (leases) of users due for
 * a check, the record of each Get KYC Status call and what it changed, and
 * the record of a Create KYC Verification. Part of the database module
 * (io/db.h); what an answer does is decided in core/policy.h. */
#ifndef KYCD_IO_DB_RECONCILE_H
#define KYCD_IO_DB_RECONCILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/kyc.h"
#include "core/check.h"
#include "core/p100.h"
#include "core/policy.h"
#include "io/db.h"

/* One user claimed for a check. */
typedef struct db_claim {
    char external_user_id[KYC_ID_MAX + 1];
    int failures;
    enum kyc_check_why why; /* held, pending, or a re-check */
} db_claim;

typedef struct db_claim_opts {
    const char *owner;        /* this instance, "host:pid" */
    int limit;                /* at most this many */
    int64_t lease_ms;         /* how long the claim holds */
    int64_t pending_after_ms; /* a pending user unchanged this long is due */
    /* Which users: 0 held and pending ones, 1 settled ones due a re-check. */
    int recheck;
    /* One pass (reconcile --once): due as of pass_age_ms ago (the pass's
     * start, measured on the caller's monotonic clock so that no clock
     * skew matters), and never a user checked since then. 0: now. */
    int once;
    int64_t pass_age_ms;
} db_claim_opts;

/* Claim users due for a check. recheck 0: held reports
 * (needs_check_reason) and pending users (kyc.is_pending) unchanged for
 * pending_after. recheck 1: settled users whose stored recheck_at has come
 * (the database's re-check policy, db_recheck_policy_set: rejected users
 * at recheck_rejected_after after the last word about them, state change
 * or webhook, then each time after twice the time since that word, until
 * recheck_rejected_for; verified users once per recheck_verified_every, in
 * a slot given by a hash of their id), earliest first. Either way:
 * next_check_at has come, not flagged for a person, not claimed by a live
 * lease. Uses FOR UPDATE SKIP LOCKED, so concurrent instances never claim
 * the same user; the claim is a lease (lease_owner, lease_until), so a
 * crashed instance's claims expire. No lock is held after this returns. */
int db_claim_due(db *d, const db_claim_opts *o, db_claim *out, int *n, kerr *err) KYCD_MUST_CHECK;

/* What the dispatcher counts for the gauges (every 5 s at most). */
typedef struct db_due_counts {
    long long due;     /* held and pending users due a check now: kycd_reconciler_due_users */
    long long flagged; /* flagged for a person: kycd_reconciler_flagged_users */
    long long overdue; /* pending, no webhook for webhook_overdue: kycd_webhooks_overdue_users */
    long long feed_wal_bytes; /* WAL kept by the database's logical slots, the most any keeps;
                               * -1 on a standby: kycd_feed_slot_retained_wal_bytes */
    long long feed_inactive;  /* logical slots of the database no consumer is reading:
                               * kycd_feed_slots_inactive */
} db_due_counts;

/* The re-check policy: kycd's recheck_* settings (0: off). */
typedef struct db_recheck_policy {
    int64_t rejected_after_ms; /* first re-check of a rejected user */
    int64_t rejected_for_ms;   /* none due later than this after the last word; 0: off */
    int64_t verified_every_ms; /* verified users; 0: off */
} db_recheck_policy;

/* What one db_recheck_policy_set did. */
typedef struct db_restamp {
    int changed;         /* the database held another policy (now replaced) */
    long long restamped; /* users stamped under it by this call */
    int done;            /* none is left stamped under an older policy */
} db_restamp;

/* Make p (with P100's words from core/vocab.c) the database's re-check
 * policy (kyc.set_recheck_policy, sql/014) and re-stamp up to `batch`
 * users stamped under an older one, in one short transaction; call again
 * until done. The progress is the database's: any kycd may carry on a
 * re-stamp another began. A role without EXECUTE on the function fails
 * with KERR_DB, "sqlstate 42501" in the message. */
int db_recheck_policy_set(db *d, const db_recheck_policy *p, int batch, db_restamp *out,
                          kerr *err) KYCD_MUST_CHECK;

/* How many held and pending users are due a check now (what db_claim_due
 * without recheck would take, leases aside), how many are flagged for a
 * person, and how many pending ones (not flagged) have waited for a
 * webhook at least webhook_overdue_ms since their last webhook or
 * create-kyc (kyc.webhook_awaited_since, sql/015); each served by a
 * partial index, so the cost follows the pending and flagged users, not
 * the settled ones. */
int db_count_due(db *d, int64_t pending_after_ms, int64_t webhook_overdue_ms, db_due_counts *out,
                 kerr *err) KYCD_MUST_CHECK;

/* Give back this owner's claim on one user (a clean stop returns what no
 * worker took; claims of calls in flight stay until they are recorded). */
int db_release_claim(db *d, const char *owner, const char *external_user_id,
                     kerr *err) KYCD_MUST_CHECK;

/* The outcome of one Get KYC Status call, to record and apply. */
/* The facts of one Get KYC Status call, recorded in kyc.status_checks. */
typedef struct db_check_record {
    const char *owner;
    const char *external_user_id;
    enum p100_class cls;    /* P100's answer, classified (outcome) */
    long http_status;       /* 0: none */
    const char *error_code; /* "" when none */
    double latency_ms;
    const char *detail; /* the flag's reason or the error message; NULL: none */
    const char *body;   /* raw answer, may be NULL */
    size_t body_len;
    enum kyc_check_why why; /* from the claim: recorded as purpose */
} db_check_record;

/* The user's row as the check's transaction found it (locked). */
typedef struct db_check_row {
    kyc_status before;  /* the stored state */
    int lost_lease;     /* another instance holds the user now */
    int failures;       /* transient answers in a row so far */
    int64_t awaited_ms; /* since its last webhook or create-kyc (sql/015); -1: unknown */
} db_check_row;

/* A check is one transaction in two steps, so that core decides between
 * them (app/reconciler.c: begin, kyc_check_decide, finish): begin opens it
 * and locks and reads the user's row; finish records the call and carries
 * out the plan exactly (nothing, the claim released, or the state applied
 * with its history row and check_id, then the bookkeeping: schedule,
 * failures, flag, needs_check_reason, rechecked_at, lease), then commits.
 * On failure begin and finish leave no transaction open. KERR_NOTFOUND
 * from begin: no such user. */
int db_check_begin(db *d, const char *external_user_id, const char *owner, db_check_row *row,
                   kerr *err) KYCD_MUST_CHECK;
int db_check_finish(db *d, const db_check_record *rec, const kyc_check_plan *plan,
                    long long *check_id, kerr *err) KYCD_MUST_CHECK;

/* After Create KYC Verification: record the user as pending with its
 * verificationId (source api, state from kyc_after_create).
 * already_pending (202 P212): make sure the user exists and is checked at
 * once. Either way requested_at is now: a webhook is awaited from now
 * (kycd_webhooks_overdue_users). pending_after_ms schedules the next check. */
int db_record_created(db *d, const char *external_user_id, const char *verification_id,
                      int already_pending, int64_t pending_after_ms, kerr *err) KYCD_MUST_CHECK;

#endif
