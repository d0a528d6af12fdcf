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
}

/* kycd replay: what is stored already is a repeat; a quarantined body is
 * applied once the rules accept it, and stays quarantined until then. */
static void test_replay_decide(void **state)
{
    (void)state;
    static const struct {
        int quarantined, stored, parses;
        enum kyc_replay_action want;
    } cases[] = {
        {0, 1, 1, KYC_REPLAY_REPEAT},            /* an event: applied, held, ... */
        {0, 1, 0, KYC_REPLAY_REPEAT},            /* an event the rules would refuse now */
        {1, 0, 1, KYC_REPLAY_APPLY},             /* learned the field */
        {1, 0, 0, KYC_REPLAY_STILL_QUARANTINED}, /* still refused */
        {1, 1, 1, KYC_REPLAY_REPEAT},            /* applied by an earlier run */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(kyc_replay_decide(cases[i].quarantined, cases[i].stored, cases[i].parses),
                         cases[i].want);
    assert_string_equal(kyc_replay_action_name(KYC_REPLAY_APPLY), "apply");
    assert_string_equal(kyc_replay_action_name(KYC_REPLAY_STILL_QUARANTINED), "still_quarantined");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_is_pending),  cmocka_unit_test(test_other_decide),
        cmocka_unit_test(test_status_fill), cmocka_unit_test(test_after_create),
        cmocka_unit_test(test_names),       cmocka_unit_test(test_replay_decide),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
