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

#endif
