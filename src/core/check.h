/* One check with P100, decided once: what an answer of Get KYC Status does
 * to its user (the state to store, the result recorded, whether a person
 * must look and why, the failure count, when to look again, what happens
 * to the claim, and whether to call again within a one-shot pass) is this
 * file's one pure function, kyc_check_decide. The reconciler (app/)
 * gathers what is known and orchestrates; the database code (io/) carries
 * the plan out and decides nothing. Tested as a table of cases
 * (tests/unit/core/test_check.c). */
#ifndef KYCD_CORE_CHECK_H
#define KYCD_CORE_CHECK_H

#include <stdint.h>

#include "core/kyc.h"
#include "core/p100.h"
#include "core/state.h"

/* What kycd did with one Get KYC Status call (kyc.status_checks.result;
 * names in core/vocab.c). */
enum kyc_check_result {
    KYC_CHECK_APPLIED = 0, /* P100's state corrected ours */
    KYC_CHECK_UNCHANGED,   /* P100 agrees */
    KYC_CHECK_FLAGGED,     /* a person must look */
    KYC_CHECK_RETRY,       /* later, with backoff */
    KYC_CHECK_RELEASED,    /* not handled: lease lost, or our credentials refused */
};
#define KYC_CHECK_RESULT_COUNT (KYC_CHECK_RELEASED + 1)
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
#define KYC_CHECK_WHY_COUNT (KYC_WHY_RECHECK_VERIFIED + 1)
const char *kyc_check_why_name(enum kyc_check_why w); /* "held", ... "recheck_verified" */
int kyc_check_why_is_recheck(enum kyc_check_why w);

/* A one-shot pass (`kycd reconcile --once`) calls one user at most this
 * many times (a 429 or a transient answer is tried again within the pass),
 * and waits at most this long for such a retry. */
#define KYC_CHECK_PASS_TRIES 3
#define KYC_CHECK_PASS_WAIT_MAX_MS 5000

/* The reconciler's settings that bear on one check. */
typedef struct kyc_check_rules {
    int64_t pending_after_ms;               /* a user still pending: look again after this */
    int64_t webhook_overdue_ms;             /* pending with no webhook this long: overdue */
    int max_failures;                       /* transient answers in a row before a person looks */
    int64_t backoff_min_ms, backoff_max_ms; /* after a transient answer (with jitter) */
    int once;                               /* a one-shot pass: retries within the pass */
    int64_t call_timeout_ms;                /* P100's timeout: a kept claim outlasts a call */
} kyc_check_rules;

/* P100's answer to one call, as the client classified it. */
typedef struct kyc_check_answer {
    enum p100_class cls;
    long http_status;          /* 0: no HTTP answer */
    const char *error_code;    /* errorCode, "" when none */
    const char *error_message; /* P100's message or the transport error, "" when none */
    int64_t retry_after_ms;    /* Retry-After of a 429; <= 0: none */
    const kyc_status *status;  /* P100's state on P100_OK; NULL otherwise */
} kyc_check_answer;

/* Everything known when P100 has answered and the user's row is locked. */
typedef struct kyc_check_in {
    const kyc_status *before; /* the stored state */
    int lost_lease;           /* another instance holds the user now */
    int failures;             /* transient answers in a row so far (stored) */
    enum kyc_check_why why;   /* from the claim */
    int tries;                /* calls for this user in this pass, this one included */
    int64_t awaited_ms;       /* since its last webhook or create-kyc (now, stored); -1: unknown */
    const kyc_check_answer *answer; /* never NULL */
    const kyc_check_rules *rules;   /* never NULL */
    uint64_t random;                /* jitter for the backoff */
} kyc_check_in;

enum kyc_check_write {
    KYC_WRITE_NOTHING = 0, /* lost lease: the other instance owns the row */
    KYC_WRITE_RELEASE,     /* misconfigured: our credentials, not the user: only the claim */
    KYC_WRITE_SCHEDULE,    /* bookkeeping (and the new state when applied) */
};

/* What to do, all of it. io writes exactly this. */
typedef struct kyc_check_plan {
    enum kyc_check_result result;
    enum kyc_check_write write;
    kyc_status after;       /* the state to store when result is APPLIED */
    enum kyc_reason reason; /* the state machine's reason when APPLIED (recheck for a re-check) */
    int answered;           /* P100 answered ok: needs_check_reason cleared, rechecked_at now */
    int failures;           /* transient answers in a row, to store */
    int64_t next_check_ms;  /* from now; -1: no next check (settled, or flagged) */
    char attention[512];    /* "": none; else flag the user for a person, with this reason */
    int64_t keep_lease_ms;  /* > 0: keep the claim this much longer (a retry in the pass) */
    int64_t retry_in_ms;    /* >= 0: call again within this pass after this wait; -1: not */
    /* The user was waiting for its result webhook past webhook_overdue
     * (stored pending, not a re-check): an APPLIED result then means the
     * reconciler learned what the webhook never said
     * (kycd_reconciler_corrections_total{cause="webhook_overdue"}). */
    int overdue;
} kyc_check_plan;

/* Whether a user in this state, waiting for a webhook for awaited_ms (-1:
 * unknown), is overdue: pending (kyc_is_pending) and awaited_ms at least
 * webhook_overdue_ms (0: nobody is, the rule is off). The same rule as kycd_webhooks_overdue_users' count
 * (io/db_reconcile.c, kyc.webhook_awaited_since). */
int kyc_webhook_overdue(const kyc_status *stored, int64_t awaited_ms, int64_t webhook_overdue_ms);

kyc_check_plan kyc_check_decide(const kyc_check_in *in);

#endif
