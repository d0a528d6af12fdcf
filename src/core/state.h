/* The KYC state machine: given the stored state of a user and a newly
 * reported one, decide whether to apply it. Pure code; the rules are the
 * table in README.md ("State rules") and tests/unit/test_state.c.
 *
 * Webhooks carry no event id or timestamp, may repeat, and come in no
 * promised order; P100 retries one for about two minutes. So a report that
 * looks like a step backwards can be a late retry of an older event (if it
 * arrives within the reorder window of the current state) or a genuinely new
 * attempt (after it). Ambiguous or suspicious reports are held: stored in the
 * event log, not applied, and the user is marked for an immediate
 * authoritative check (Get KYC Status) by the reconciler. The reconciler's
 * answer is P100's truth and is always applied. */
#ifndef KYCD_CORE_STATE_H
#define KYCD_CORE_STATE_H

#include <stdint.h>

#include "core/kyc.h"

enum kyc_decision {
    KYC_APPLY = 0, /* write the incoming state */
    KYC_UNCHANGED, /* incoming equals current: nothing to do */
    KYC_HOLD,      /* keep current, record, recheck with P100 now */
};

/* What became of one delivery (kyc.webhook_events.outcome, the log line's
 * outcome=): the state machine's decisions, and two the machine never
 * makes. The first three equal enum kyc_decision. */
enum kyc_outcome {
    KYC_OUTCOME_APPLIED = KYC_APPLY,
    KYC_OUTCOME_UNCHANGED = KYC_UNCHANGED,
    KYC_OUTCOME_HELD = KYC_HOLD,
    KYC_OUTCOME_RECORDED,    /* kinds without state: stored only */
    KYC_OUTCOME_SPOOLED,     /* database away: kept in the local spool */
    KYC_OUTCOME_QUARANTINED, /* authentic, not applied: kept raw in kyc.quarantine */
};
#define KYC_OUTCOME_COUNT (KYC_OUTCOME_QUARANTINED + 1)

/* Why (kyc.webhook_events.outcome_reason, kyc.status_changes.reason, the
 * log line's reason=). The state machine's reasons first; then those of
 * the other kinds and of the write path. */
enum kyc_reason {
    KYC_R_FIRST = 0,
    KYC_R_FORWARD,
    KYC_R_NEW_ATTEMPT,
    KYC_R_RECONCILER,
    KYC_R_API,
    KYC_R_SAME,
    KYC_R_REPEAT,
    KYC_R_OUT_OF_ORDER,
    KYC_R_LEAVES_VERIFIED,
    KYC_R_CONFLICT,
    KYC_R_REPEAT_CONFLICT,
    KYC_R_UNKNOWN_VALUE,
    KYC_R_LATEST,               /* POA: the latest delivery wins */
    KYC_R_RECORDED,             /* a kind without state */
    KYC_R_ALREADY_STORED,       /* a spool replay found its earlier copy */
    KYC_R_DATABASE_UNAVAILABLE, /* spooled */
    KYC_R_RECHECK,              /* a re-check of a settled user found P100 elsewhere */
    KYC_R_INVALID_BODY,         /* quarantined: the body failed validation or its data was refused
                         * (also the user's needs_check_reason) */
};
#define KYC_REASON_COUNT (KYC_R_INVALID_BODY + 1)

typedef struct kyc_transition {
    const kyc_status *current; /* stored state; empty when none yet */
    int64_t current_age_ms;    /* time since the current state was recorded */
    const kyc_status *incoming;
    enum kyc_source source;
    int is_repeat;             /* same body already received within the dedup window */
    int64_t reorder_window_ms; /* how late a retried webhook can arrive */
} kyc_transition;

typedef struct kyc_verdict {
    enum kyc_decision decision;
    /* Why: first, forward, new_attempt, reconciler, api, same, repeat,
     * out_of_order, leaves_verified, conflict, repeat_conflict or
     * unknown_value (named by kyc_reason_name). */
    enum kyc_reason reason;
} kyc_verdict;

kyc_verdict kyc_state_decide(const kyc_transition *t);

/* The names used in the database, the logs and JSON: the one table for
 * each. Stable lower-case codes ("applied", "held", "out_of_order", ...). */
const char *kyc_decision_name(enum kyc_decision d); /* "applied", "unchanged", "held" */
const char *kyc_outcome_name(enum kyc_outcome o);   /* ... "recorded", "spooled" */
const char *kyc_reason_name(enum kyc_reason r);     /* "first", ..., "database_unavailable" */

#endif
