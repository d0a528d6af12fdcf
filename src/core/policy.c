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

const char *kyc_check_result_name(enum kyc_check_result r)
{
    const char *n = vocab_name(&VOCAB_CHECK_RESULT, (int)r);
    return n ? n : "unknown";
}

const char *kyc_check_why_name(enum kyc_check_why w)
{
    const char *n = vocab_name(&VOCAB_CHECK_WHY, (int)w);
    return n ? n : "unknown";
}

int kyc_check_why_is_recheck(enum kyc_check_why w)
{
    return w == KYC_WHY_RECHECK_REJECTED || w == KYC_WHY_RECHECK_VERIFIED;
}

kyc_check_plan kyc_check_decide(const kyc_check_in *c)
{
    kyc_check_plan p;
    memset(&p, 0, sizeof p);
    p.result = KYC_CHECK_RELEASED;
    p.reason = KYC_R_SAME;
    p.after = *c->before;
    if (c->lost_lease) {
        p.write = KYC_WRITE_NOTHING;
        p.next_check_ms = c->next_check_ms;
        return p;
    }
    if (c->cls == P100_OK && c->answer) {
        kyc_status merged = *c->answer;
        kyc_status_fill(&merged, c->before);
        kyc_transition t = {.current = c->before,
                            .current_age_ms = -1,
                            .incoming = &merged,
                            .source = KYC_SRC_RECONCILER,
                            .is_repeat = 0,
                            .reorder_window_ms = 0};
        kyc_verdict v = kyc_state_decide(&t);
        p.reason = v.reason;
        if (v.decision == KYC_APPLY) {
            p.result = KYC_CHECK_APPLIED;
            p.after = merged;
            /* Say where the correction came from: a settled user's
             * re-check (a lost new attempt or expiry), not a pending one. */
            if (kyc_check_why_is_recheck(c->why))
                p.reason = KYC_R_RECHECK;
        } else {
            p.result = KYC_CHECK_UNCHANGED;
        }
    } else if (c->flag) {
        p.result = KYC_CHECK_FLAGGED;
    } else if (c->count_failure || c->cls == P100_RATE_LIMITED) {
        p.result = KYC_CHECK_RETRY;
    }
    p.write = c->cls == P100_MISCONFIGURED ? KYC_WRITE_RELEASE : KYC_WRITE_SCHEDULE;
    p.answered = c->cls == P100_OK;
    /* An answer decides by itself whether the user needs watching further. */
    p.next_check_ms = c->next_check_ms;
    if (p.answered)
        p.next_check_ms = kyc_is_pending(&p.after) ? c->next_check_ms : -1;
    return p;
}
