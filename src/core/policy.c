/* Domain policy around the state machine (see policy.h). Pure: must never
 * do I/O, read a clock or know about SQL. */
#include "core/policy.h"

#include <stdio.h>
#include <string.h>

#include "core/vocab.h"

int kyc_is_pending(const kyc_status *s)
{
    enum kyc_astatus a = kyc_astatus_parse(s->attempt);
    return a == KYC_A_NONE || a == KYC_A_PENDING || a == KYC_A_VERIFICATION;
}

static kyc_other_verdict other(enum kyc_outcome o, enum kyc_reason r)
{
    kyc_other_verdict v = {o, r};
    return v;
}

kyc_other_verdict kyc_other_decide(enum kyc_kind kind, int is_repeat, const char *stored,
                                   const char *incoming)
{
    if (kind != KYC_KIND_POA_STATUS)
        return other(KYC_OUTCOME_RECORDED, is_repeat ? KYC_R_REPEAT : KYC_R_RECORDED);
    if (is_repeat)
        return other(KYC_OUTCOME_UNCHANGED, KYC_R_REPEAT);
    if (strcmp(stored, incoming) == 0)
        return other(KYC_OUTCOME_UNCHANGED, KYC_R_SAME);
    return other(KYC_OUTCOME_APPLIED, KYC_R_LATEST);
}

void kyc_status_fill(kyc_status *answer, const kyc_status *stored)
{
    if (answer->verification[0] == '\0')
        memcpy(answer->verification, stored->verification, sizeof answer->verification);
    if (answer->attempt[0] == '\0') {
        memcpy(answer->attempt, stored->attempt, sizeof answer->attempt);
        if (answer->reason[0] == '\0')
            memcpy(answer->reason, stored->reason, sizeof answer->reason);
    }
}

kyc_verdict kyc_after_create(const kyc_status *cur, kyc_status *want)
{
    memset(want, 0, sizeof *want);
    enum kyc_vstatus v =
        kyc_vstatus_parse(cur->verification) == KYC_V_EXPIRED ? KYC_V_EXPIRED : KYC_V_NOT_VERIFIED;
    snprintf(want->verification, sizeof want->verification, "%s", kyc_vstatus_name(v));
    snprintf(want->attempt, sizeof want->attempt, "%s", kyc_astatus_name(KYC_A_PENDING));
    kyc_transition t = {.current = cur,
                        .current_age_ms = -1,
                        .incoming = want,
                        .source = KYC_SRC_API,
                        .is_repeat = 0,
                        .reorder_window_ms = 0};
    return kyc_state_decide(&t);
}

enum kyc_replay_action kyc_replay_decide(int quarantined, int stored, int parses)
{
    if (!quarantined || stored)
        return KYC_REPLAY_REPEAT;
    return parses ? KYC_REPLAY_APPLY : KYC_REPLAY_STILL_QUARANTINED;
}

const char *kyc_replay_action_name(enum kyc_replay_action a)
{
    static const char *const names[] = {
        [KYC_REPLAY_REPEAT] = "repeat",
        [KYC_REPLAY_APPLY] = "apply",
        [KYC_REPLAY_STILL_QUARANTINED] = "still_quarantined",
    };
    return (unsigned)a < sizeof names / sizeof names[0] ? names[a] : "unknown";
}
