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
    KYC_APPLY = 0,  /* write the incoming state */
    KYC_UNCHANGED,  /* incoming equals current: nothing to do */
    KYC_HOLD,       /* keep current, record, recheck with P100 now */
};

typedef struct kyc_transition {
    const kyc_status *current;  /* stored state; empty when none yet */
    int64_t current_age_ms;     /* time since the current state was recorded */
    const kyc_status *incoming;
    enum kyc_source source;
    int is_repeat;              /* same body already received within the dedup window */
    int64_t reorder_window_ms;  /* how late a retried webhook can arrive */
} kyc_transition;

typedef struct kyc_verdict {
    enum kyc_decision decision;
    /* Why, as a stable lower-case code stored in the database and logs:
     * "first", "forward", "new_attempt", "reconciler", "same", "repeat",
     * "out_of_order", "leaves_verified", "conflict", "repeat_conflict",
     * "unknown_value". */
    const char *reason;
} kyc_verdict;

kyc_verdict kyc_state_decide(const kyc_transition *t);

const char *kyc_decision_name(enum kyc_decision d); /* "applied", "unchanged", "held" */

#endif
