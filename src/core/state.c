/* The KYC state machine (rules in state.h and README.md "State rules").
 * Pure: must never do I/O or read a clock; time comes in as current_age_ms. */
#include "core/state.h"

#include "core/vocab.h"

/* Lifecycle order of verificationStatus: a verification can expire, and a
 * message saying VERIFIED or EXPIRED was produced after the user got there. */
static int rank_v(enum kyc_vstatus v)
{
    switch (v) {
    case KYC_V_NOT_VERIFIED:
        return 0;
    case KYC_V_VERIFIED:
        return 1;
    case KYC_V_EXPIRED:
        return 2;
    default:
        return -1;
    }
}

/* Order of one attempt: initiated, being processed, decided. */
static int rank_a(enum kyc_astatus a)
{
    switch (a) {
    case KYC_A_PENDING:
        return 0;
    case KYC_A_VERIFICATION:
        return 1;
    case KYC_A_REJECTED:
    case KYC_A_SUCCESSFUL:
        return 2;
    default:
        return -1;
    }
}

static kyc_verdict verdict(enum kyc_decision d, enum kyc_reason reason)
{
    kyc_verdict v = {d, reason};
    return v;
}

kyc_verdict kyc_state_decide(const kyc_transition *t)
{
    const kyc_status *cur = t->current;
    const kyc_status *in = t->incoming;
    int same = kyc_status_equal(cur, in);

    /* P100's answer to Get KYC Status, or our own create call, is the truth. */
    if (t->source != KYC_SRC_WEBHOOK) {
        if (same)
            return verdict(KYC_UNCHANGED, KYC_R_SAME);
        return verdict(KYC_APPLY, t->source == KYC_SRC_RECONCILER ? KYC_R_RECONCILER : KYC_R_API);
    }

    enum kyc_vstatus vi = kyc_vstatus_parse(in->verification);
    enum kyc_astatus ai = kyc_astatus_parse(in->attempt);
    /* An undocumented value cannot be placed in the order: keep it in the
     * event log and let P100 say what the user's state is. */
    if (rank_v(vi) < 0 || rank_a(ai) < 0)
        return verdict(KYC_HOLD, KYC_R_UNKNOWN_VALUE);

    if (kyc_status_empty(cur))
        return verdict(KYC_APPLY, KYC_R_FIRST);
    if (same)
        return verdict(KYC_UNCHANGED, t->is_repeat ? KYC_R_REPEAT : KYC_R_SAME);
    /* The same bytes again, but the user has moved on since: either a late
     * retry (harmless) or a real new report identical to an old one. */
    if (t->is_repeat)
        return verdict(KYC_HOLD, KYC_R_REPEAT_CONFLICT);

    enum kyc_vstatus vc = kyc_vstatus_parse(cur->verification);
    enum kyc_astatus ac = kyc_astatus_parse(cur->attempt);
    if (rank_v(vc) < 0 || rank_a(ac) < 0)
        return verdict(KYC_HOLD, KYC_R_CONFLICT);

    /* A verified user is only ever downgraded on P100's own word. */
    if (vc == KYC_V_VERIFIED && vi == KYC_V_NOT_VERIFIED)
        return verdict(KYC_HOLD, KYC_R_LEAVES_VERIFIED);

    if (rank_v(vi) > rank_v(vc) || (vi == vc && rank_a(ai) > rank_a(ac)))
        return verdict(KYC_APPLY, KYC_R_FORWARD);

    /* Sideways or backwards. P100 retries a webhook for about two minutes,
     * so a report older than the current state arrives within that horizon
     * of it; later than the reorder window it can only be a new attempt. */
    if (t->current_age_ms >= 0 && t->current_age_ms >= t->reorder_window_ms)
        return verdict(KYC_APPLY, KYC_R_NEW_ATTEMPT);
    if (rank_v(vi) < rank_v(vc) || (vi == vc && rank_a(ai) < rank_a(ac)))
        return verdict(KYC_HOLD, KYC_R_OUT_OF_ORDER);
    return verdict(KYC_HOLD, KYC_R_CONFLICT);
}

const char *kyc_decision_name(enum kyc_decision d)
{
    return kyc_outcome_name((enum kyc_outcome)d);
}

const char *kyc_outcome_name(enum kyc_outcome o)
{
    return vocab_label(&VOCAB_OUTCOME, (int)o);
}

const char *kyc_reason_name(enum kyc_reason r)
{
    return vocab_label(&VOCAB_REASON, (int)r);
}
