/* The decision for one check with P100 (see check.h). Pure: must never do
 * I/O, read a clock, or know about SQL; the caller brings the time-free
 * facts (the stored state under its row lock, the answer, the rules, a
 * random number for the jitter). */
#include "core/check.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/policy.h"
#include "core/vocab.h"

const char *kyc_check_result_name(enum kyc_check_result r)
{
    return vocab_label(&VOCAB_CHECK_RESULT, (int)r);
}

const char *kyc_check_why_name(enum kyc_check_why w)
{
    return vocab_label(&VOCAB_CHECK_WHY, (int)w);
}

int kyc_check_why_is_recheck(enum kyc_check_why w)
{
    return w == KYC_WHY_RECHECK_REJECTED || w == KYC_WHY_RECHECK_VERIFIED;
}

int kyc_webhook_overdue(const kyc_status *stored, int64_t awaited_ms, int64_t webhook_overdue_ms)
{
    return webhook_overdue_ms > 0 && kyc_is_pending(stored) && awaited_ms >= 0 &&
           awaited_ms >= webhook_overdue_ms;
}

__attribute__((format(printf, 2, 3))) static void flag(kyc_check_plan *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->attention, sizeof p->attention, fmt, ap);
    va_end(ap);
    p->result = KYC_CHECK_FLAGGED;
    p->next_check_ms = -1;
}

/* P100 answered: its state is the truth, unless it says something P100
 * does not document (then it cannot be stored: a person must look; the
 * body stays in kyc.status_checks). */
static void decide_answer(const kyc_check_in *in, kyc_check_plan *p)
{
    p->answered = 1;
    p->failures = 0;
    if (in->answer->status == NULL) { /* nothing to compare: as before */
        p->next_check_ms = kyc_is_pending(&p->after) ? in->rules->pending_after_ms : -1;
        return;
    }
    kyc_status merged = *in->answer->status;
    kyc_status_fill(&merged, in->before);
    int bad_v = kyc_vstatus_parse(merged.verification) == KYC_V_UNKNOWN;
    int bad_a = kyc_astatus_parse(merged.attempt) == KYC_A_UNKNOWN;
    if (bad_v || bad_a) {
        flag(p, "P100's answer holds a value it does not document (%s%s%s): not applied",
             bad_v ? "verificationStatus" : "", bad_v && bad_a ? ", " : "",
             bad_a ? "attemptStatus" : "");
        return;
    }
    kyc_transition t = {.current = in->before,
                        .current_age_ms = -1,
                        .incoming = &merged,
                        .source = KYC_SRC_RECONCILER,
                        .is_repeat = 0,
                        .reorder_window_ms = 0};
    kyc_verdict v = kyc_state_decide(&t);
    p->reason = v.reason;
    if (v.decision == KYC_APPLY) {
        p->result = KYC_CHECK_APPLIED;
        p->after = merged;
        /* Say where the correction came from: a settled user's re-check (a
         * lost new attempt or expiry), not a pending one. */
        if (kyc_check_why_is_recheck(in->why))
            p->reason = KYC_R_RECHECK;
    } else {
        p->result = KYC_CHECK_UNCHANGED;
    }
    /* An answer decides by itself whether the user needs watching further. */
    p->next_check_ms = kyc_is_pending(&p->after) ? in->rules->pending_after_ms : -1;
}

/* One pass: a 429 or a transient answer is tried again soon, within the
 * pass and under the same claim (kept long enough for the wait and the
 * call; if kycd stops meanwhile it simply expires). */
static void decide_pass_retry(const kyc_check_in *in, kyc_check_plan *p)
{
    const kyc_check_answer *a = in->answer;
    int unanswered =
        a->cls == P100_RATE_LIMITED || (a->cls == P100_TRANSIENT && p->result != KYC_CHECK_FLAGGED);
    if (!in->rules->once || !unanswered || in->tries >= KYC_CHECK_PASS_TRIES)
        return;
    int64_t wait = 1000;
    if (a->cls == P100_RATE_LIMITED && a->retry_after_ms > 0)
        wait = a->retry_after_ms;
    if (wait > KYC_CHECK_PASS_WAIT_MAX_MS)
        return;
    p->retry_in_ms = wait;
    p->keep_lease_ms = wait + 3 * in->rules->call_timeout_ms + 30000;
}

kyc_check_plan kyc_check_decide(const kyc_check_in *in)
{
    const kyc_check_answer *a = in->answer;
    const kyc_check_rules *r = in->rules;
    kyc_check_plan p;
    memset(&p, 0, sizeof p);
    p.result = KYC_CHECK_RELEASED;
    p.reason = KYC_R_SAME;
    p.after = *in->before;
    p.failures = in->failures;
    p.next_check_ms = -1;
    p.retry_in_ms = -1;
    p.overdue = !kyc_check_why_is_recheck(in->why) &&
                kyc_webhook_overdue(in->before, in->awaited_ms, r->webhook_overdue_ms);
    if (in->lost_lease) {
        p.write = KYC_WRITE_NOTHING; /* the other instance owns the row */
        return p;
    }
    if (a->cls == P100_MISCONFIGURED || a->cls == P100_UNUSABLE) {
        p.write = KYC_WRITE_RELEASE; /* our credentials or request, not the user */
        return p;
    }
    p.write = KYC_WRITE_SCHEDULE;
    switch (a->cls) {
    case P100_OK:
        decide_answer(in, &p);
        break;
    case P100_FINAL:
        flag(&p, "P100 %s: %s", a->error_code[0] ? a->error_code : "error",
             a->error_message[0] ? a->error_message : "final answer");
        break;
    case P100_TRANSIENT:
        p.failures = in->failures + 1;
        if (p.failures >= r->max_failures) {
            flag(&p, "%d transient failures in a row, last: %s", p.failures,
                 a->error_message[0] ? a->error_message : a->error_code);
        } else {
            p.result = KYC_CHECK_RETRY;
            p.next_check_ms =
                p100_backoff_ms(p.failures, r->backoff_min_ms, r->backoff_max_ms, in->random);
        }
        break;
    case P100_RATE_LIMITED:
        p.result = KYC_CHECK_RETRY;
        p.next_check_ms = a->retry_after_ms > 0 ? a->retry_after_ms : r->backoff_min_ms;
        break;
    case P100_MISCONFIGURED:
    case P100_UNUSABLE:
        break;
    }
    decide_pass_retry(in, &p);
    return p;
}
