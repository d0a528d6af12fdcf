/* Domain policy around the state machine (core/state.h): what counts as
 * pending, how the kinds without documented order are applied, what an
 * answer of P100 that leaves fields out means, the state after Create KYC
 * Verification. What one reconciler check does to its user is
 * core/check.h. Pure: the database code (io/db_*.c) carries out answers
 * decided here.
 *
 * "Pending" is also written in SQL, as kyc.is_pending(attempt_status)
 * (sql/005_pending.sql), which the analysts' views and the reconciler's
 * claim use: the two definitions must say the same thing (the integration
 * test compares them). */
#ifndef KYCD_CORE_POLICY_H
#define KYCD_CORE_POLICY_H

#include <stdint.h>

#include "core/kyc.h"
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

/* What `kycd replay` does with one stored delivery (README "Quarantine and
 * replay"). Anything already in kyc.webhook_events (applied, unchanged,
 * held, recorded, or a quarantined delivery a replay stored before) is a
 * repeat: it changes nothing (its decision was made when it arrived, and
 * P100 has been asked about a held one since). A quarantined delivery the
 * current rules still refuse stays quarantined. One they accept is
 * applied: stored with its own request id and receipt time through the
 * write path, whose state machine treats it as the late webhook it is. */
enum kyc_replay_action {
    KYC_REPLAY_REPEAT = 0,
    KYC_REPLAY_APPLY,
    KYC_REPLAY_STILL_QUARANTINED,
};
/* quarantined: from kyc.quarantine; stored: it has a kyc.webhook_events
 * row (an event always has); parses: the current rules accept its body. */
enum kyc_replay_action kyc_replay_decide(int quarantined, int stored, int parses);
const char *kyc_replay_action_name(enum kyc_replay_action a); /* "repeat", "apply", ... */

#endif
