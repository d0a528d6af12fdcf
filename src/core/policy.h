/* Domain policy around the state machine (core/state.h): what counts as
 * pending, how the kinds without documented order are applied, what an
 * answer of P100 that leaves fields out means, the state after Create KYC
 * Verification, and what one reconciler check does to its user. Pure:
 * the database code (io/db_*.c) asks here and only carries out the answer.
 *
 * "Pending" is also written in SQL, as kyc.is_pending(attempt_status)
 * (sql/005_pending.sql), which the analysts' views and the reconciler's
 * claim use: the two definitions must say the same thing (the integration
 * test compares them). */
#ifndef KYCD_CORE_POLICY_H
#define KYCD_CORE_POLICY_H

#include <stdint.h>

#include "core/kyc.h"
#include "core/p100.h"
#include "core/state.h"

/* Attempt PENDING or VERIFICATION, or nothing settled yet (created through
 * the API, or the first report was held for an undocumented value). */
int kyc_is_pending(const kyc_status *s);

/* The verdict on a delivery of a kind other than KYC Verification Status. */
typedef struct kyc_other_verdict {
    enum kyc_outcome outcome; /* APPLIED (store the new POA status), UNCHANGED, RECORDED */
    enum kyc_reason reason;   /* latest, same, repeat, recorded */
} kyc_other_verdict;

/* POA has no documented order: the latest delivery wins, but a repeat of
 * an older body never overrides a newer status. File and user-status
 * deliveries carry no state: they are recorded. stored: the user's POA
 * status ("" when none); incoming: the delivery's status. */
kyc_other_verdict kyc_other_decide(enum kyc_kind kind, int is_repeat, const char *stored,
                                   const char *incoming);

/* P100's status body is not documented: a field its answer leaves out
 * keeps its stored value rather than being erased (a missing attempt keeps
 * the stored attempt, and then a missing reason the stored reason). */
void kyc_status_fill(kyc_status *answer, const kyc_status *stored);

/* After Create KYC Verification created a new verification: its attempt
 * is PENDING (initiated, awaiting processing); an expired verification
 * stays EXPIRED until the new one is decided. Sets *want and returns the
 * state machine's verdict on it (source api). */
kyc_verdict kyc_after_create(const kyc_status *cur, kyc_status *want);

/* What kycd did with one Get KYC Status call (kyc.status_checks.result). */
enum kyc_check_result {
    KYC_CHECK_APPLIED = 0, /* P100's state corrected ours */
    KYC_CHECK_UNCHANGED,   /* P100 agrees */
    KYC_CHECK_FLAGGED,     /* a person must look */
    KYC_CHECK_RETRY,       /* later, with backoff */
    KYC_CHECK_RELEASED,    /* not handled: lease lost, or our credentials refused */
};
const char *kyc_check_result_name(enum kyc_check_result r); /* "applied", ... "released" */

/* Why a user was claimed for a check (kyc.status_checks.purpose, the log
 * line's why=). Held and pending users always go first; re-checks of
 * settled users (rejected: until recheck_rejected_for; verified: every
 * recheck_verified_every) use what the rate budget leaves. */
enum kyc_check_why {
    KYC_WHY_HELD = 0,         /* a webhook was held: P100 must say */
    KYC_WHY_PENDING,          /* pending for pending_after */
    KYC_WHY_RECHECK_REJECTED, /* rejected: a new attempt may have been lost */
    KYC_WHY_RECHECK_VERIFIED, /* verified: an expiry may have been lost */
};
const char *kyc_check_why_name(enum kyc_check_why w); /* "held", ... "recheck_verified" */
int kyc_check_why_is_recheck(enum kyc_check_why w);

/* What to write for one check (decided by the reconciler in app/, carried
 * here with the stored state). */
typedef struct kyc_check_in {
    const kyc_status *before; /* the stored state, read under the row lock */
    int lost_lease;           /* another instance holds the user now */
    enum p100_class cls;      /* P100's answer, classified */
    const kyc_status *answer; /* P100's state on P100_OK; may be NULL */
    int flag;                 /* the reconciler flags the user for a person */
    int count_failure;        /* the reconciler counts a failure */
    int64_t next_check_ms;    /* the reconciler's schedule; -1: none */
    enum kyc_check_why why;   /* a re-check's correction has reason recheck */
} kyc_check_in;

enum kyc_check_write {
    KYC_WRITE_NOTHING = 0, /* lost lease: the other instance owns the row */
    KYC_WRITE_RELEASE,     /* misconfigured: our credentials, not the user: only the claim */
    KYC_WRITE_SCHEDULE,    /* bookkeeping (and the new state when applied) */
};

typedef struct kyc_check_plan {
    enum kyc_check_result result;
    enum kyc_check_write write;
    kyc_status after;       /* the state to store when result is APPLIED */
    enum kyc_reason reason; /* the state machine's reason when APPLIED (recheck for a re-check) */
    int answered;           /* P100 answered ok: failures and needs_check_reason reset */
    int64_t next_check_ms;  /* -1: no next check (an ok answer that settled the user) */
} kyc_check_plan;

kyc_check_plan kyc_check_decide(const kyc_check_in *c);

#endif
