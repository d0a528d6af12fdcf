/* Unit tests for core/check.c: what one answer of Get KYC Status does to
 * its user, as a table of cases (stored state, answer, failures so far,
 * purpose, pass) -> the whole plan. Every state is in P100's words
 * (core/vocab.c); the one case about an undocumented value says so. */
#include "testlib.h"

#include <stdio.h>
#include <string.h>

#include "core/check.h"
#include "core/vocab.h"

#define PENDING_AFTER 60000
#define BACKOFF_MIN 1000
#define BACKOFF_MAX 8000
#define TIMEOUT 10000

/* A state from P100's values (NULL: the field absent, ""); a value P100
 * does not document fails the test unless `undocumented` says so. */
static kyc_status kyc_state(const char *v, const char *a, const char *r, int undocumented)
{
    kyc_status s;
    memset(&s, 0, sizeof s);
    if (!undocumented && v && vocab_value(&VOCAB_VERIFICATION_STATUS, v) < 0)
        fail_msg("test data: verificationStatus '%s' is not P100's", v);
    if (!undocumented && a && vocab_value(&VOCAB_ATTEMPT_STATUS, a) < 0)
        fail_msg("test data: attemptStatus '%s' is not P100's", a);
    snprintf(s.verification, sizeof s.verification, "%s", v ? v : "");
    snprintf(s.attempt, sizeof s.attempt, "%s", a ? a : "");
    snprintf(s.reason, sizeof s.reason, "%s", r ? r : "");
    return s;
}

typedef struct check_case {
    const char *name;
    /* in */
    const char *bv, *ba, *br; /* stored */
    enum p100_class cls;
    const char *code, *message;
    int64_t retry_after_ms;
    int answered;             /* an ok answer carries a state: */
    const char *av, *aa, *ar; /* ... this one */
    int undocumented;         /* the answer holds a value P100 does not document */
    int failures, lost_lease, once, tries;
    enum kyc_check_why why;
    /* want */
    enum kyc_check_result result;
    enum kyc_check_write write;
    enum kyc_reason reason;
    const char *after_v, *after_a; /* the state to store (APPLIED), or NULL */
    int want_answered, want_failures;
    int64_t next_lo, next_hi; /* next_check_ms within [lo, hi] */
    const char *attention;    /* a substring of the flag's reason; NULL: no flag */
    int64_t retry_in_ms;      /* -1: no retry within the pass */
    int keeps_lease;
} check_case;

#define NV "NOT_VERIFIED"
static const check_case CASES[] = {
    {.name = "pending user verified: applied, settled, no next check",
     .bv = NV,
     .ba = "PENDING",
     .cls = P100_OK,
     .answered = 1,
     .av = "VERIFIED",
     .aa = "SUCCESSFUL",
     .why = KYC_WHY_PENDING,
     .result = KYC_CHECK_APPLIED,
     .write = KYC_WRITE_SCHEDULE,
     .reason = KYC_R_RECONCILER,
     .after_v = "VERIFIED",
     .after_a = "SUCCESSFUL",
     .want_answered = 1,
     .next_lo = -1,
     .next_hi = -1,
     .retry_in_ms = -1},
    {.name = "P100 agrees, still pending: looked at again after pending_after",
     .bv = NV,
     .ba = "PENDING",
     .cls = P100_OK,
     .answered = 1,
     .av = NV,
     .aa = "PENDING",
     .why = KYC_WHY_PENDING,
     .result = KYC_CHECK_UNCHANGED,
     .write = KYC_WRITE_SCHEDULE,
     .reason = KYC_R_SAME,
     .want_answered = 1,
     .next_lo = PENDING_AFTER,
     .next_hi = PENDING_AFTER,
     .retry_in_ms = -1},
    {.name = "a partial answer is filled from the stored state",
     .bv = NV,
     .ba = "PENDING",
     .cls = P100_OK,
     .answered = 1,
     .aa = "VERIFICATION",
     .why = KYC_WHY_PENDING,
     .result = KYC_CHECK_APPLIED,
     .write = KYC_WRITE_SCHEDULE,
     .reason = KYC_R_RECONCILER,
     .after_v = NV,
     .after_a = "VERIFICATION",
     .want_answered = 1,
     .next_lo = PENDING_AFTER,
     .next_hi = PENDING_AFTER,
     .retry_in_ms = -1},
    {.name = "an empty answer changes nothing",
     .bv = NV,
     .ba = "PENDING",
     .cls = P100_OK,
     .answered = 1,
     .why = KYC_WHY_HELD,
     .result = KYC_CHECK_UNCHANGED,
     .write = KYC_WRITE_SCHEDULE,
     .reason = KYC_R_SAME,
     .want_answered = 1,
     .next_lo = PENDING_AFTER,
     .next_hi = PENDING_AFTER,
     .retry_in_ms = -1},
    {.name = "ok without a state: no decision, failures reset",
     .bv = NV,
     .ba = "PENDING",
     .cls = P100_OK,
     .failures = 2,
     .why = KYC_WHY_PENDING,
     .result = KYC_CHECK_RELEASED,
     .write = KYC_WRITE_SCHEDULE,
     .reason = KYC_R_SAME,
     .want_answered = 1,
     .next_lo = PENDING_AFTER,
     .next_hi = PENDING_AFTER,
     .retry_in_ms = -1},
    {.name = "re-check: a rejected user's lost new attempt is found (reason recheck)",
     .bv = NV,
     .ba = "REJECTED_BY_PROVIDER",
     .br = "DOCUMENT_EXPIRED",
     .cls = P100_OK,
     .answered = 1,
     .av = "VERIFIED",
     .aa = "SUCCESSFUL",
     .why = KYC_WHY_RECHECK_REJECTED,
     .result = KYC_CHECK_APPLIED,
     .write = KYC_WRITE_SCHEDULE,
     .reason = KYC_R_RECHECK,
     .after_v = "VERIFIED",
     .after_a = "SUCCESSFUL",
     .want_answered = 1,
     .next_lo = -1,
     .next_hi = -1,
     .retry_in_ms = -1},
    {.name = "re-check: a verified user's lost expiry is found",
     .bv = "VERIFIED",
     .ba = "SUCCESSFUL",
     .cls = P100_OK,
     .answered = 1,
     .av = "EXPIRED",
     .aa = "SUCCESSFUL",
     .why = KYC_WHY_RECHECK_VERIFIED,
     .result = KYC_CHECK_APPLIED,
     .write = KYC_WRITE_SCHEDULE,
     .reason = KYC_R_RECHECK,
     .after_v = "EXPIRED",
     .after_a = "SUCCESSFUL",
     .want_answered = 1,
     .next_lo = -1,
     .next_hi = -1,
     .retry_in_ms = -1},
    {.name = "re-check: P100 agrees with a rejection",
     .bv = NV,
     .ba = "REJECTED_BY_PROVIDER",
     .br = "DOCUMENT_EXPIRED",
     .cls = P100_OK,
     .answered = 1,
     .av = NV,
     .aa = "REJECTED_BY_PROVIDER",
     .ar = "DOCUMENT_EXPIRED",
     .why = KYC_WHY_RECHECK_REJECTED,
     .result = KYC_CHECK_UNCHANGED,
     .write = KYC_WRITE_SCHEDULE,
     .reason = KYC_R_SAME,
     .want_answered = 1,
     .next_lo = -1,
     .next_hi = -1,
     .retry_in_ms = -1},
    {.name = "a held user's correction keeps reason reconciler",
     .bv = "VERIFIED",
     .ba = "SUCCESSFUL",
     .cls = P100_OK,
     .answered = 1,
     .av = "EXPIRED",
     .aa = "SUCCESSFUL",
     .why = KYC_WHY_HELD,
     .result = KYC_CHECK_APPLIED,
     .write = KYC_WRITE_SCHEDULE,
     .reason = KYC_R_RECONCILER,
     .after_v = "EXPIRED",
     .after_a = "SUCCESSFUL",
     .want_answered = 1,
     .next_lo = -1,
     .next_hi = -1,
     .retry_in_ms = -1},
    {.name = "undocumented: an answer P100 does not document is flagged, not applied",
     .bv = NV,
     .ba = "PENDING",
     .cls = P100_OK,
     .answered = 1,
     .av = NV,
     .aa = "ON_HOLD",
     .undocumented = 1,
     .why = KYC_WHY_PENDING,
     .result = KYC_CHECK_FLAGGED,
     .write = KYC_WRITE_SCHEDULE,
     .reason = KYC_R_SAME,
     .want_answered = 1,
     .next_lo = -1,
     .next_hi = -1,
     .attention = "does not document (attemptStatus)",
     .retry_in_ms = -1},
    {.name = "final answer: flagged for a person with P100's code and message",
     .bv = NV,
     .ba = "PENDING",
     .cls = P100_FINAL,
     .code = "P445",
     .message = "no such user",
     .why = KYC_WHY_PENDING,
     .result = KYC_CHECK_FLAGGED,
     .write = KYC_WRITE_SCHEDULE,
     .reason = KYC_R_SAME,
     .next_lo = -1,
     .next_hi = -1,
     .attention = "P100 P445: no such user",
     .retry_in_ms = -1},
    {.name = "transient: counted, backed off with jitter",
     .bv = NV,
     .ba = "PENDING",
     .cls = P100_TRANSIENT,
     .code = "P501",
     .message = "later",
     .failures = 0,
     .why = KYC_WHY_PENDING,
     .result = KYC_CHECK_RETRY,
     .write = KYC_WRITE_SCHEDULE,
     .reason = KYC_R_SAME,
     .want_failures = 1,
     .next_lo = BACKOFF_MIN / 2,
     .next_hi = BACKOFF_MIN,
     .retry_in_ms = -1},
    {.name = "transient at the ceiling: counted and flagged",
     .bv = NV,
     .ba = "PENDING",
     .cls = P100_TRANSIENT,
     .code = "P500",
     .message = "boom",
     .failures = 2,
     .why = KYC_WHY_PENDING,
     .result = KYC_CHECK_FLAGGED,
     .write = KYC_WRITE_SCHEDULE,
     .reason = KYC_R_SAME,
     .want_failures = 3,
     .next_lo = -1,
     .next_hi = -1,
     .attention = "3 transient failures in a row, last: boom",
     .retry_in_ms = -1},
    {.name = "429: Retry-After is the next look",
     .bv = NV,
     .ba = "PENDING",
     .cls = P100_RATE_LIMITED,
     .retry_after_ms = 300,
     .why = KYC_WHY_PENDING,
     .result = KYC_CHECK_RETRY,
     .write = KYC_WRITE_SCHEDULE,
     .reason = KYC_R_SAME,
     .next_lo = 300,
     .next_hi = 300,
     .retry_in_ms = -1},
    {.name = "429 without Retry-After: backoff_min",
     .bv = NV,
     .ba = "PENDING",
     .cls = P100_RATE_LIMITED,
     .why = KYC_WHY_PENDING,
     .result = KYC_CHECK_RETRY,
     .write = KYC_WRITE_SCHEDULE,
     .reason = KYC_R_SAME,
     .next_lo = BACKOFF_MIN,
     .next_hi = BACKOFF_MIN,
     .retry_in_ms = -1},
    {.name = "misconfigured: our credentials, only the claim is given back",
     .bv = NV,
     .ba = "PENDING",
     .cls = P100_MISCONFIGURED,
     .failures = 1,
     .why = KYC_WHY_PENDING,
     .result = KYC_CHECK_RELEASED,
     .write = KYC_WRITE_RELEASE,
     .reason = KYC_R_SAME,
     .want_failures = 1,
     .next_lo = -1,
     .next_hi = -1,
     .retry_in_ms = -1},
    {.name = "lost lease: nothing written, whatever P100 said",
     .bv = NV,
     .ba = "PENDING",
     .cls = P100_OK,
     .answered = 1,
     .av = "VERIFIED",
     .aa = "SUCCESSFUL",
     .lost_lease = 1,
     .why = KYC_WHY_PENDING,
     .result = KYC_CHECK_RELEASED,
     .write = KYC_WRITE_NOTHING,
     .reason = KYC_R_SAME,
     .next_lo = -1,
     .next_hi = -1,
     .retry_in_ms = -1},
    {.name = "one pass: a 429 is retried within the pass, the claim kept",
     .bv = NV,
     .ba = "PENDING",
     .cls = P100_RATE_LIMITED,
     .retry_after_ms = 100,
     .once = 1,
     .tries = 1,
     .why = KYC_WHY_PENDING,
     .result = KYC_CHECK_RETRY,
     .write = KYC_WRITE_SCHEDULE,
     .reason = KYC_R_SAME,
     .next_lo = 100,
     .next_hi = 100,
     .retry_in_ms = 100,
     .keeps_lease = 1},
    {.name = "one pass: a transient answer is retried after 1 s",
     .bv = NV,
     .ba = "PENDING",
     .cls = P100_TRANSIENT,
     .message = "later",
     .once = 1,
     .tries = 2,
     .why = KYC_WHY_PENDING,
     .result = KYC_CHECK_RETRY,
     .write = KYC_WRITE_SCHEDULE,
     .reason = KYC_R_SAME,
     .want_failures = 1,
     .next_lo = BACKOFF_MIN / 2,
     .next_hi = BACKOFF_MIN,
     .retry_in_ms = 1000,
     .keeps_lease = 1},
    {.name = "one pass: no retry past the last try",
     .bv = NV,
     .ba = "PENDING",
     .cls = P100_RATE_LIMITED,
     .retry_after_ms = 100,
     .once = 1,
     .tries = KYC_CHECK_PASS_TRIES,
     .why = KYC_WHY_PENDING,
     .result = KYC_CHECK_RETRY,
     .write = KYC_WRITE_SCHEDULE,
     .reason = KYC_R_SAME,
     .next_lo = 100,
     .next_hi = 100,
     .retry_in_ms = -1},
    {.name = "one pass: no retry after a Retry-After longer than a pass waits",
     .bv = NV,
     .ba = "PENDING",
     .cls = P100_RATE_LIMITED,
     .retry_after_ms = 60000,
     .once = 1,
     .tries = 1,
     .why = KYC_WHY_PENDING,
     .result = KYC_CHECK_RETRY,
     .write = KYC_WRITE_SCHEDULE,
     .reason = KYC_R_SAME,
     .next_lo = 60000,
     .next_hi = 60000,
     .retry_in_ms = -1},
    {.name = "one pass: a flagged user is not retried",
     .bv = NV,
     .ba = "PENDING",
     .cls = P100_TRANSIENT,
     .message = "boom",
     .failures = 2,
     .once = 1,
     .tries = 1,
     .why = KYC_WHY_PENDING,
     .result = KYC_CHECK_FLAGGED,
     .write = KYC_WRITE_SCHEDULE,
     .reason = KYC_R_SAME,
     .want_failures = 3,
     .next_lo = -1,
     .next_hi = -1,
     .attention = "3 transient failures",
     .retry_in_ms = -1},
};

static void test_cases(void **state)
{
    (void)state;
    kyc_check_rules rules = {.pending_after_ms = PENDING_AFTER,
                             .max_failures = 3,
                             .backoff_min_ms = BACKOFF_MIN,
                             .backoff_max_ms = BACKOFF_MAX,
                             .call_timeout_ms = TIMEOUT};
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const check_case *c = &CASES[i];
        print_message("case: %s\n", c->name);
        kyc_status before = kyc_state(c->bv, c->ba, c->br, 0);
        kyc_status answer = kyc_state(c->av, c->aa, c->ar, c->undocumented);
        kyc_check_answer a = {.cls = c->cls,
                              .http_status = c->cls == P100_OK ? 200 : 400,
                              .error_code = c->code ? c->code : "",
                              .error_message = c->message ? c->message : "",
                              .retry_after_ms = c->retry_after_ms,
                              .status = c->answered ? &answer : NULL};
        rules.once = c->once;
        kyc_check_in in = {.before = &before,
                           .lost_lease = c->lost_lease,
                           .failures = c->failures,
                           .why = c->why,
                           .tries = c->tries ? c->tries : 1,
                           .answer = &a,
                           .rules = &rules,
                           .random = 0x9e3779b97f4a7c15u};
        kyc_check_plan p = kyc_check_decide(&in);
        assert_int_equal(p.result, c->result);
        assert_int_equal(p.write, c->write);
        assert_int_equal(p.reason, c->reason);
        if (c->after_v) {
            assert_string_equal(p.after.verification, c->after_v);
            assert_string_equal(p.after.attempt, c->after_a);
        } else {
            assert_true(kyc_status_equal(&p.after, &before)); /* nothing new to store */
        }
        assert_int_equal(p.answered, c->want_answered);
        assert_int_equal(p.failures, c->want_answered ? 0 : c->want_failures);
        assert_in_range(p.next_check_ms + 1, c->next_lo + 1, c->next_hi + 1);
        if (c->attention)
            assert_non_null(strstr(p.attention, c->attention));
        else
            assert_string_equal(p.attention, "");
        assert_int_equal(p.retry_in_ms, c->retry_in_ms);
        if (c->keeps_lease)
            assert_true(p.keep_lease_ms >= p.retry_in_ms + 3 * TIMEOUT);
        else
            assert_int_equal(p.keep_lease_ms, 0);
    }
}

static void test_names(void **state)
{
    (void)state;
    /* kyc.status_checks.result and .purpose (test_vocabulary.sh holds the
     * tables against the CHECK constraints). */
    assert_string_equal(kyc_check_result_name(KYC_CHECK_APPLIED), "applied");
    assert_string_equal(kyc_check_result_name(KYC_CHECK_RELEASED), "released");
    assert_string_equal(kyc_check_result_name((enum kyc_check_result)42), "unknown");
    assert_string_equal(kyc_check_why_name(KYC_WHY_HELD), "held");
    assert_string_equal(kyc_check_why_name(KYC_WHY_RECHECK_VERIFIED), "recheck_verified");
    assert_false(kyc_check_why_is_recheck(KYC_WHY_PENDING));
    assert_true(kyc_check_why_is_recheck(KYC_WHY_RECHECK_REJECTED));
}

/* Overdue: a pending user that has waited for its result webhook at
 * least webhook_overdue (as kycd_webhooks_overdue_users counts it); a
 * correction of such a user is the reconciler learning what the webhook
 * never said. A re-check, a settled user, an unknown wait, or a wait
 * short of the limit is not overdue, whatever the answer. */
static void test_overdue(void **state)
{
    (void)state;
    enum { LIMIT = 1800000 };
    static const struct {
        const char *name, *bv, *ba; /* stored */
        int64_t awaited_ms;
        enum kyc_check_why why;
        const char *av, *aa; /* P100's answer (ok) */
        int overdue;
        enum kyc_check_result result;
    } cases[] = {
        {"created, no webhook for the limit, P100 verified: overdue correction", NV, "PENDING",
         LIMIT, KYC_WHY_PENDING, "VERIFIED", "SUCCESSFUL", 1, KYC_CHECK_APPLIED},
        {"held and overdue: overdue too", NV, "VERIFICATION", LIMIT + 1, KYC_WHY_HELD, NV,
         "REJECTED_BY_PROVIDER", 1, KYC_CHECK_APPLIED},
        {"nothing settled yet (NULL attempt), long wait: overdue", NULL, NULL, 3 * LIMIT,
         KYC_WHY_PENDING, NV, "PENDING", 1, KYC_CHECK_APPLIED},
        {"overdue, P100 agrees (still pending): overdue, unchanged", NV, "PENDING", 2 * LIMIT,
         KYC_WHY_PENDING, NV, "PENDING", 1, KYC_CHECK_UNCHANGED},
        {"a webhook came just short of the limit: an ordinary correction", NV, "PENDING", LIMIT - 1,
         KYC_WHY_PENDING, "VERIFIED", "SUCCESSFUL", 0, KYC_CHECK_APPLIED},
        {"wait unknown: not overdue", NV, "PENDING", -1, KYC_WHY_PENDING, "VERIFIED", "SUCCESSFUL",
         0, KYC_CHECK_APPLIED},
        {"settled (rejected) re-check, long silence: not overdue", NV, "REJECTED_BY_PROVIDER",
         10 * LIMIT, KYC_WHY_RECHECK_REJECTED, NV, "PENDING", 0, KYC_CHECK_APPLIED},
        {"verified re-check, long silence: not overdue", "VERIFIED", "SUCCESSFUL", 10 * LIMIT,
         KYC_WHY_RECHECK_VERIFIED, "EXPIRED", "SUCCESSFUL", 0, KYC_CHECK_APPLIED},
    };
    kyc_check_rules rules = {.pending_after_ms = PENDING_AFTER,
                             .webhook_overdue_ms = LIMIT,
                             .max_failures = 3,
                             .backoff_min_ms = BACKOFF_MIN,
                             .backoff_max_ms = BACKOFF_MAX,
                             .call_timeout_ms = TIMEOUT};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        print_message("case: %s\n", cases[i].name);
        kyc_status before = kyc_state(cases[i].bv, cases[i].ba, NULL, 0);
        kyc_status answer = kyc_state(cases[i].av, cases[i].aa, NULL, 0);
        kyc_check_answer a = {.cls = P100_OK,
                              .http_status = 200,
                              .error_code = "",
                              .error_message = "",
                              .status = &answer};
        kyc_check_in in = {.before = &before,
                           .why = cases[i].why,
                           .tries = 1,
                           .awaited_ms = cases[i].awaited_ms,
                           .answer = &a,
                           .rules = &rules};
        kyc_check_plan p = kyc_check_decide(&in);
        assert_int_equal(p.overdue, cases[i].overdue);
        assert_int_equal(p.result, cases[i].result);
        assert_int_equal(kyc_webhook_overdue(&before, cases[i].awaited_ms, LIMIT),
                         kyc_check_why_is_recheck(cases[i].why) ? 0 : cases[i].overdue);
        /* No limit (a caller that sets none): nobody is overdue. */
        rules.webhook_overdue_ms = 0;
        assert_false(kyc_check_decide(&in).overdue);
        rules.webhook_overdue_ms = LIMIT;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_overdue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
