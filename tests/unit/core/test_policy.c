/* core/policy.c: pending, the kinds without documented order, partial
 * answers of P100, the state after Create KYC Verification, what a check
 * does, and the one name table of each enum (the names are stored in the
 * database: they must never change). */
#include <stdio.h>
#include <string.h>

#include "core/policy.h"
#include "core/state.h"
#include "core/vocab.h"
#include "testlib.h"

static kyc_status st_undocumented(const char *v, const char *a, const char *r)
{
    kyc_status s;
    memset(&s, 0, sizeof s);
    snprintf(s.verification, sizeof s.verification, "%s", v);
    snprintf(s.attempt, sizeof s.attempt, "%s", a);
    snprintf(s.reason, sizeof s.reason, "%s", r);
    return s;
}

/* A state in P100's words: every value given is one P100 documents (the
 * tests of undocumented values use st_undocumented, and say so). */
static kyc_status st(const char *v, const char *a, const char *r)
{
    if (*v && vocab_value(&VOCAB_VERIFICATION_STATUS, v) < 0)
        fail_msg("test data: verificationStatus '%s' is not P100's", v);
    if (*a && vocab_value(&VOCAB_ATTEMPT_STATUS, a) < 0)
        fail_msg("test data: attemptStatus '%s' is not P100's", a);
    return st_undocumented(v, a, r);
}

static void test_is_pending(void **state)
{
    (void)state;
    kyc_status s = st("", "", "");
    assert_true(kyc_is_pending(&s)); /* nothing settled yet */
    s = st("NOT_VERIFIED", "PENDING", "");
    assert_true(kyc_is_pending(&s));
    s = st("NOT_VERIFIED", "VERIFICATION", "");
    assert_true(kyc_is_pending(&s));
    s = st("NOT_VERIFIED", "REJECTED_BY_PROVIDER", "NO_FACE_FOUND");
    assert_false(kyc_is_pending(&s));
    s = st("VERIFIED", "SUCCESSFUL", "");
    assert_false(kyc_is_pending(&s));
    s = st_undocumented("NOT_VERIFIED", "ON_HOLD", ""); /* not pending (as in SQL) */
    assert_false(kyc_is_pending(&s));
}

static void test_other_decide(void **state)
{
    (void)state;
    /* POA: the latest delivery wins... */
    kyc_other_verdict v = kyc_other_decide(KYC_KIND_POA_STATUS, 0, "", "WAITING");
    assert_int_equal(v.outcome, KYC_OUTCOME_APPLIED);
    assert_int_equal(v.reason, KYC_R_LATEST);
    v = kyc_other_decide(KYC_KIND_POA_STATUS, 0, "APPROVED", "WAITING");
    assert_int_equal(v.outcome, KYC_OUTCOME_APPLIED);
    assert_int_equal(v.reason, KYC_R_LATEST);
    v = kyc_other_decide(KYC_KIND_POA_STATUS, 0, "WAITING", "WAITING");
    assert_int_equal(v.outcome, KYC_OUTCOME_UNCHANGED);
    assert_int_equal(v.reason, KYC_R_SAME);
    /* ...but a repeat of an older body never overrides a newer status. */
    v = kyc_other_decide(KYC_KIND_POA_STATUS, 1, "APPROVED", "WAITING");
    assert_int_equal(v.outcome, KYC_OUTCOME_UNCHANGED);
    assert_int_equal(v.reason, KYC_R_REPEAT);
    /* Kinds without state are recorded. */
    v = kyc_other_decide(KYC_KIND_KYC_FILE, 0, "", "ADDED");
    assert_int_equal(v.outcome, KYC_OUTCOME_RECORDED);
    assert_int_equal(v.reason, KYC_R_RECORDED);
    v = kyc_other_decide(KYC_KIND_USER_STATUS, 1, "", "ACTIVE");
    assert_int_equal(v.outcome, KYC_OUTCOME_RECORDED);
    assert_int_equal(v.reason, KYC_R_REPEAT);
}

static void test_status_fill(void **state)
{
    (void)state;
    kyc_status stored = st("NOT_VERIFIED", "REJECTED_BY_PROVIDER", "NO_FACE_FOUND");
    kyc_status a = st("VERIFIED", "SUCCESSFUL", "");
    kyc_status_fill(&a, &stored); /* complete: kept as sent, reason cleared */
    assert_string_equal(a.verification, "VERIFIED");
    assert_string_equal(a.attempt, "SUCCESSFUL");
    assert_string_equal(a.reason, "");

    a = st("EXPIRED", "", "");
    kyc_status_fill(&a, &stored); /* no attempt: attempt and reason kept */
    assert_string_equal(a.verification, "EXPIRED");
    assert_string_equal(a.attempt, "REJECTED_BY_PROVIDER");
    assert_string_equal(a.reason, "NO_FACE_FOUND");

    a = st("", "VERIFICATION", "");
    kyc_status_fill(&a, &stored); /* no verification: kept; the attempt's reason is its own */
    assert_string_equal(a.verification, "NOT_VERIFIED");
    assert_string_equal(a.attempt, "VERIFICATION");
    assert_string_equal(a.reason, "");

    a = st("", "", "DOC_EXPIRED");
    kyc_status_fill(&a, &stored); /* a reason without an attempt is P100's */
    assert_string_equal(a.attempt, "REJECTED_BY_PROVIDER");
    assert_string_equal(a.reason, "DOC_EXPIRED");
}

static void test_after_create(void **state)
{
    (void)state;
    kyc_status want;
    kyc_status cur = st("", "", "");
    kyc_verdict v = kyc_after_create(&cur, &want);
    assert_int_equal(v.decision, KYC_APPLY);
    assert_int_equal(v.reason, KYC_R_API);
    assert_string_equal(want.verification, "NOT_VERIFIED");
    assert_string_equal(want.attempt, "PENDING");
    assert_string_equal(want.reason, "");

    /* An expired verification stays EXPIRED until the new one is decided. */
    cur = st("EXPIRED", "SUCCESSFUL", "");
    v = kyc_after_create(&cur, &want);
    assert_int_equal(v.decision, KYC_APPLY);
    assert_string_equal(want.verification, "EXPIRED");
    assert_string_equal(want.attempt, "PENDING");

    /* A rejected attempt's reason goes with it. */
    cur = st("NOT_VERIFIED", "REJECTED_BY_PROVIDER", "NO_FACE_FOUND");
    v = kyc_after_create(&cur, &want);
    assert_int_equal(v.decision, KYC_APPLY);
    assert_string_equal(want.reason, "");

    /* Already exactly that: nothing to write. */
    cur = st("NOT_VERIFIED", "PENDING", "");
    v = kyc_after_create(&cur, &want);
    assert_int_equal(v.decision, KYC_UNCHANGED);
}

static kyc_check_in check(const kyc_status *before, enum p100_class cls, const kyc_status *answer)
{
    kyc_check_in c = {.before = before,
                      .lost_lease = 0,
                      .cls = cls,
                      .answer = answer,
                      .flag = 0,
                      .count_failure = 0,
                      .next_check_ms = 60000};
    return c;
}

static void test_check_answers(void **state)
{
    (void)state;
    kyc_status before = st("NOT_VERIFIED", "PENDING", "");

    /* P100 says more than we know: applied, settled, no next check. */
    kyc_status answer = st("VERIFIED", "SUCCESSFUL", "");
    kyc_check_in c = check(&before, P100_OK, &answer);
    kyc_check_plan p = kyc_check_decide(&c);
    assert_int_equal(p.result, KYC_CHECK_APPLIED);
    assert_int_equal(p.write, KYC_WRITE_SCHEDULE);
    assert_int_equal(p.reason, KYC_R_RECONCILER);
    assert_string_equal(p.after.verification, "VERIFIED");
    assert_true(p.answered);
    assert_int_equal(p.next_check_ms, -1);

    /* P100 agrees, the user still pending: checked again on schedule. */
    answer = st("NOT_VERIFIED", "PENDING", "");
    p = kyc_check_decide(&c);
    assert_int_equal(p.result, KYC_CHECK_UNCHANGED);
    assert_true(p.answered);
    assert_int_equal(p.next_check_ms, 60000);
    assert_string_equal(p.after.attempt, "PENDING");

    /* A partial answer is filled from the stored state before deciding. */
    answer = st("", "VERIFICATION", "");
    p = kyc_check_decide(&c);
    assert_int_equal(p.result, KYC_CHECK_APPLIED);
    assert_string_equal(p.after.verification, "NOT_VERIFIED");
    assert_string_equal(p.after.attempt, "VERIFICATION");
    assert_int_equal(p.next_check_ms, 60000);

    /* An empty answer changes nothing. */
    answer = st("", "", "");
    p = kyc_check_decide(&c);
    assert_int_equal(p.result, KYC_CHECK_UNCHANGED);

    /* ok without a body: no decision, but failures are reset. */
    c = check(&before, P100_OK, NULL);
    p = kyc_check_decide(&c);
    assert_int_equal(p.result, KYC_CHECK_RELEASED);
    assert_int_equal(p.write, KYC_WRITE_SCHEDULE);
    assert_true(p.answered);
    assert_int_equal(p.next_check_ms, 60000); /* the stored state is pending */
}

static void test_check_rechecks(void **state)
{
    (void)state;
    /* A rejected user's new attempt, all of whose webhooks were lost. */
    kyc_status before = st("NOT_VERIFIED", "REJECTED_BY_PROVIDER", "DOCUMENT_EXPIRED");
    kyc_status answer = st("VERIFIED", "SUCCESSFUL", "");
    kyc_check_in c = check(&before, P100_OK, &answer);
    c.why = KYC_WHY_RECHECK_REJECTED;
    kyc_check_plan p = kyc_check_decide(&c);
    assert_int_equal(p.result, KYC_CHECK_APPLIED);
    assert_int_equal(p.reason, KYC_R_RECHECK);
    assert_string_equal(kyc_reason_name(p.reason), "recheck");
    assert_int_equal(p.next_check_ms, -1); /* settled: the re-check schedule takes over */

    /* A verified user whose expiry webhook was lost. */
    before = st("VERIFIED", "SUCCESSFUL", "");
    answer = st("EXPIRED", "SUCCESSFUL", "");
    c = check(&before, P100_OK, &answer);
    c.why = KYC_WHY_RECHECK_VERIFIED;
    p = kyc_check_decide(&c);
    assert_int_equal(p.result, KYC_CHECK_APPLIED);
    assert_int_equal(p.reason, KYC_R_RECHECK);

    /* P100 agrees: unchanged, reason same. */
    answer = before;
    p = kyc_check_decide(&c);
    assert_int_equal(p.result, KYC_CHECK_UNCHANGED);
    assert_int_equal(p.reason, KYC_R_SAME);

    /* A pending or held check keeps reason reconciler. */
    answer = st("EXPIRED", "SUCCESSFUL", "");
    c.why = KYC_WHY_PENDING;
    assert_int_equal(kyc_check_decide(&c).reason, KYC_R_RECONCILER);
    c.why = KYC_WHY_HELD;
    assert_int_equal(kyc_check_decide(&c).reason, KYC_R_RECONCILER);

    assert_string_equal(kyc_check_why_name(KYC_WHY_HELD), "held");
    assert_string_equal(kyc_check_why_name(KYC_WHY_PENDING), "pending");
    assert_string_equal(kyc_check_why_name(KYC_WHY_RECHECK_REJECTED), "recheck_rejected");
    assert_string_equal(kyc_check_why_name(KYC_WHY_RECHECK_VERIFIED), "recheck_verified");
    assert_false(kyc_check_why_is_recheck(KYC_WHY_PENDING));
    assert_true(kyc_check_why_is_recheck(KYC_WHY_RECHECK_VERIFIED));
}

static void test_check_failures(void **state)
{
    (void)state;
    kyc_status before = st("NOT_VERIFIED", "PENDING", "");
    kyc_check_in c = check(&before, P100_FINAL, NULL);
    c.flag = 1;
    c.next_check_ms = -1;
    kyc_check_plan p = kyc_check_decide(&c);
    assert_int_equal(p.result, KYC_CHECK_FLAGGED);
    assert_int_equal(p.write, KYC_WRITE_SCHEDULE);
    assert_false(p.answered);
    assert_int_equal(p.next_check_ms, -1);

    c = check(&before, P100_TRANSIENT, NULL);
    c.count_failure = 1;
    c.next_check_ms = 1234;
    p = kyc_check_decide(&c);
    assert_int_equal(p.result, KYC_CHECK_RETRY);
    assert_int_equal(p.next_check_ms, 1234);

    /* The ceiling: counted and flagged, flagged wins. */
    c.flag = 1;
    p = kyc_check_decide(&c);
    assert_int_equal(p.result, KYC_CHECK_FLAGGED);

    c = check(&before, P100_RATE_LIMITED, NULL);
    p = kyc_check_decide(&c);
    assert_int_equal(p.result, KYC_CHECK_RETRY);
    assert_int_equal(p.write, KYC_WRITE_SCHEDULE);

    /* Our credentials, not the user: only the claim is given back. */
    c = check(&before, P100_MISCONFIGURED, NULL);
    p = kyc_check_decide(&c);
    assert_int_equal(p.result, KYC_CHECK_RELEASED);
    assert_int_equal(p.write, KYC_WRITE_RELEASE);

    /* Another instance took the user: nothing is written, whatever P100 said. */
    kyc_status answer = st("VERIFIED", "SUCCESSFUL", "");
    c = check(&before, P100_OK, &answer);
    c.lost_lease = 1;
    p = kyc_check_decide(&c);
    assert_int_equal(p.result, KYC_CHECK_RELEASED);
    assert_int_equal(p.write, KYC_WRITE_NOTHING);
    assert_string_equal(p.after.verification, "NOT_VERIFIED");
}

static void test_names(void **state)
{
    (void)state;
    /* kyc.webhook_events.outcome's CHECK constraint lists the first four. */
    assert_string_equal(kyc_outcome_name(KYC_OUTCOME_APPLIED), "applied");
    assert_string_equal(kyc_outcome_name(KYC_OUTCOME_UNCHANGED), "unchanged");
    assert_string_equal(kyc_outcome_name(KYC_OUTCOME_HELD), "held");
    assert_string_equal(kyc_outcome_name(KYC_OUTCOME_RECORDED), "recorded");
    assert_string_equal(kyc_outcome_name(KYC_OUTCOME_SPOOLED), "spooled");
    assert_string_equal(kyc_decision_name(KYC_HOLD), "held");

    static const char *const reasons[] = {
        "first",
        "forward",
        "new_attempt",
        "reconciler",
        "api",
        "same",
        "repeat",
        "out_of_order",
        "leaves_verified",
        "conflict",
        "repeat_conflict",
        "unknown_value",
        "latest",
        "recorded",
        "already_stored",
        "database_unavailable",
    };
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        assert_string_equal(kyc_reason_name((enum kyc_reason)i), reasons[i]);

    /* kyc.status_checks.result's CHECK constraint. */
    assert_string_equal(kyc_check_result_name(KYC_CHECK_APPLIED), "applied");
    assert_string_equal(kyc_check_result_name(KYC_CHECK_UNCHANGED), "unchanged");
    assert_string_equal(kyc_check_result_name(KYC_CHECK_FLAGGED), "flagged");
    assert_string_equal(kyc_check_result_name(KYC_CHECK_RETRY), "retry");
    assert_string_equal(kyc_check_result_name(KYC_CHECK_RELEASED), "released");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_is_pending),    cmocka_unit_test(test_other_decide),
        cmocka_unit_test(test_status_fill),   cmocka_unit_test(test_after_create),
        cmocka_unit_test(test_check_answers), cmocka_unit_test(test_check_failures),
        cmocka_unit_test(test_names),         cmocka_unit_test(test_check_rechecks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
