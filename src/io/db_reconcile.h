/* The reconciler's side of the database: claims (leases) of users due for
 * a check, the record of each Get KYC Status call and what it changed, and
 * the record of a Create KYC Verification. Part of the database module
 * (io/db.h); what an answer does is decided in core/policy.h. */
#ifndef KYCD_IO_DB_RECONCILE_H
#define KYCD_IO_DB_RECONCILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/kyc.h"
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
    int64_t recheck_rejected_after_ms; /* first re-check of a rejected user */
    int64_t recheck_rejected_for_ms;   /* none after this since the rejection; 0: off */
    int64_t recheck_verified_every_ms; /* verified users; 0: off */
    /* One pass (reconcile --once): due as of pass_age_ms ago (the pass's
     * start, measured on the caller's monotonic clock so that no clock
     * skew matters), and never a user checked since then. 0: now. */
    int once;
    int64_t pass_age_ms;
} db_claim_opts;

/* Claim users due for a check. recheck 0: held reports
 * (needs_check_reason) and pending users (kyc.is_pending) unchanged for
 * pending_after. recheck 1: rejected users (attempt REJECTED_BY_PROVIDER) at
 * recheck_rejected_after after the last word about them (state change or
 * webhook), then each time after twice the time since that word, until
 * recheck_rejected_for; verified users once per recheck_verified_every, in
 * a slot given by a hash of their id (kyc.recheck_slot). Either way:
 * next_check_at has come, not flagged for a person, not claimed by a live
 * lease. Uses FOR UPDATE SKIP LOCKED, so concurrent instances never claim
 * the same user; the claim is a lease (lease_owner, lease_until), so a
 * crashed instance's claims expire. No lock is held after this returns. */
int db_claim_due(db *d, const db_claim_opts *o, db_claim *out, int *n, kerr *err) KYCD_MUST_CHECK;

/* How many held and pending users are due a check now (what db_claim_due
 * without recheck would take, leases aside), for kycd_reconciler_due_users. */
int db_count_due(db *d, int64_t pending_after_ms, long long *n, kerr *err) KYCD_MUST_CHECK;

/* Give back this owner's claim on one user (a clean stop returns what no
 * worker took; claims of calls in flight stay until they are recorded). */
int db_release_claim(db *d, const char *owner, const char *external_user_id,
                     kerr *err) KYCD_MUST_CHECK;

/* The outcome of one Get KYC Status call, to record and apply. */
typedef struct db_check {
    const char *owner;
    const char *external_user_id;
    enum p100_class cls;    /* P100's answer, classified */
    long http_status;       /* 0: none */
    const char *error_code; /* "" when none */
    double latency_ms;
    const char *detail; /* error message or NULL */
    const char *body;   /* raw answer, may be NULL */
    size_t body_len;
    const kyc_status *answer; /* on P100_OK: P100's state */
    /* What to do with the user (decided by the reconciler): */
    int flag;              /* set attention_reason = detail, stop checking */
    int count_failure;     /* failures + 1 (the caller flags at the ceiling) */
    int64_t next_check_ms; /* next_check_at = now + this; -1: NULL */
    enum kyc_check_why
        why; /* from the claim: recorded as purpose; a re-check's correction has reason recheck */
    int64_t
        keep_lease_ms; /* > 0: keep the claim this much longer (a retry within a pass follows) */
} db_check;

typedef struct db_check_result {
    long long check_id;
    enum kyc_check_result result; /* applied, unchanged, flagged, retry, released */
    kyc_status before;            /* the stored state before */
    int lost_lease;               /* another instance took the user meanwhile: nothing applied */
} db_check_result;

/* Record the call in kyc.status_checks and carry out kyc_check_decide: for
 * an ok answer, apply P100's state (source reconciler; a change is
 * appended to kyc.status_changes with check_id), clear needs_check_reason
 * and failures; update the bookkeeping and release the lease. One
 * transaction. */
int db_record_check(db *d, const db_check *c, db_check_result *res, kerr *err) KYCD_MUST_CHECK;

/* After Create KYC Verification: record the user as pending with its
 * verificationId (source api, state from kyc_after_create).
 * already_pending (202 P212): make sure the user exists and is checked at
 * once. pending_after_ms schedules the next check. */
int db_record_created(db *d, const char *external_user_id, const char *verification_id,
                      int already_pending, int64_t pending_after_ms, kerr *err) KYCD_MUST_CHECK;

#endif
