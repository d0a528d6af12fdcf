/* The state rules, as a table: each row is one line of README.md's
 * "State rules" table. Reorder window 5 min; "fresh" means the current state
 * was recorded 10 s ago, "old" 1 h ago. */
#include <stdio.h>
#include <string.h>

#include "core/state.h"
#include "testlib.h"

#define FRESH 10000
#define OLD 3600000
#define WINDOW 300000

enum { WH = KYC_SRC_WEBHOOK, RC = KYC_SRC_RECONCILER, API = KYC_SRC_API };

struct row {
    const char *cv, *ca, *cr; /* current */
    int64_t age;
    const char *iv, *ia, *ir; /* incoming */
    int source;
    int repeat;
    enum kyc_decision want;
    const char *reason;
};

#define NV "NOT_VERIFIED"
#define VD "VERIFIED"
#define EX "EXPIRED"
#define PE "PENDING"
#define VE "VERIFICATION"
#define RJ "REJECTED_BY_PROVIDER"
#define OK "SUCCESSFUL"

static const struct row ROWS[] = {
    /* nothing known yet */
    {"", "", "", -1, NV, PE, "", WH, 0, KYC_APPLY, "first"},
    {"", "", "", -1, VD, OK, "", WH, 0, KYC_APPLY, "first"},
    {"", "", "", -1, "NEW_THING", PE, "", WH, 0, KYC_HOLD, "unknown_value"},
    /* same state again */
    {NV, PE, "", FRESH, NV, PE, "", WH, 0, KYC_UNCHANGED, "same"},
    {NV, PE, "", FRESH, NV, PE, "", WH, 1, KYC_UNCHANGED, "repeat"},
    /* forward within an attempt */
    {NV, PE, "", FRESH, NV, VE, "", WH, 0, KYC_APPLY, "forward"},
    {NV, VE, "", FRESH, NV, RJ, "NO_FACE_FOUND", WH, 0, KYC_APPLY, "forward"},
    {NV, PE, "", FRESH, NV, RJ, "NO_FACE_FOUND", WH, 0, KYC_APPLY, "forward"},
    {NV, VE, "", FRESH, VD, OK, "", WH, 0, KYC_APPLY, "forward"},
    /* forward in the lifecycle */
    {NV, RJ, "NO_FACE_FOUND", FRESH, VD, OK, "", WH, 0, KYC_APPLY, "forward"},
    {VD, OK, "", FRESH, EX, OK, "", WH, 0, KYC_APPLY, "forward"},
    {NV, PE, "", FRESH, EX, PE, "", WH, 0, KYC_APPLY, "forward"},
    /* backwards within the reorder window: a late retry, held */
    {NV, VE, "", FRESH, NV, PE, "", WH, 0, KYC_HOLD, "out_of_order"},
    {NV, RJ, "NO_FACE_FOUND", FRESH, NV, PE, "", WH, 0, KYC_HOLD, "out_of_order"},
    {EX, OK, "", FRESH, VD, OK, "", WH, 0, KYC_HOLD, "out_of_order"},
    {VD, OK, "", FRESH, VD, PE, "", WH, 0, KYC_HOLD, "out_of_order"},
    /* sideways within the window: two different verdicts, held */
    {NV, RJ, "NO_FACE_FOUND", FRESH, NV, RJ, "DOC_EXPIRED", WH, 0, KYC_HOLD, "conflict"},
    {NV, OK, "", FRESH, NV, RJ, "NO_FACE_FOUND", WH, 0, KYC_HOLD, "conflict"},
    /* backwards after the window: only a new attempt can look like this */
    {NV, RJ, "NO_FACE_FOUND", OLD, NV, PE, "", WH, 0, KYC_APPLY, "new_attempt"},
    {EX, OK, "", OLD, NV, PE, "", WH, 0, KYC_APPLY, "new_attempt"},
    {VD, OK, "", OLD, VD, PE, "", WH, 0, KYC_APPLY, "new_attempt"},
    {NV, RJ, "NO_FACE_FOUND", OLD, NV, RJ, "DOC_EXPIRED", WH, 0, KYC_APPLY, "new_attempt"},
    /* a verified user is never downgraded by a webhook, however late */
    {VD, OK, "", FRESH, NV, RJ, "NO_FACE_FOUND", WH, 0, KYC_HOLD, "leaves_verified"},
    {VD, OK, "", OLD, NV, PE, "", WH, 0, KYC_HOLD, "leaves_verified"},
    /* the same bytes again after the user moved on */
    {NV, VE, "", FRESH, NV, PE, "", WH, 1, KYC_HOLD, "repeat_conflict"},
    {NV, VE, "", OLD, NV, PE, "", WH, 1, KYC_HOLD, "repeat_conflict"},
    /* undocumented values */
    {NV, PE, "", FRESH, NV, "ON_HOLD", "", WH, 0, KYC_HOLD, "unknown_value"},
    {NV, "ON_HOLD", "", FRESH, NV, PE, "", WH, 0, KYC_HOLD, "conflict"},
    /* P100's own answer is the truth, whatever it says */
    {VD, OK, "", FRESH, NV, PE, "", RC, 0, KYC_APPLY, "reconciler"},
    {NV, VE, "", FRESH, NV, VE, "", RC, 0, KYC_UNCHANGED, "same"},
    {NV, PE, "", FRESH, "NEW_THING", PE, "", RC, 0, KYC_APPLY, "reconciler"},
    {"", "", "", -1, NV, PE, "", API, 0, KYC_APPLY, "api"},
};

static void fill(kyc_status *s, const char *v, const char *a, const char *r)
{
    memset(s, 0, sizeof *s);
    snprintf(s->verification, sizeof s->verification, "%s", v);
    snprintf(s->attempt, sizeof s->attempt, "%s", a);
    snprintf(s->reason, sizeof s->reason, "%s", r);
}

static void test_table(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof ROWS / sizeof ROWS[0]; i++) {
        const struct row *r = &ROWS[i];
        kyc_status cur, in;
        fill(&cur, r->cv, r->ca, r->cr);
        fill(&in, r->iv, r->ia, r->ir);
        kyc_transition t = {
            .current = &cur,
            .current_age_ms = r->age,
            .incoming = &in,
            .source = (enum kyc_source)r->source,
            .is_repeat = r->repeat,
            .reorder_window_ms = WINDOW,
        };
        kyc_verdict v = kyc_state_decide(&t);
        if (v.decision != r->want || strcmp(kyc_reason_name(v.reason), r->reason) != 0) {
            fprintf(stderr, "row %zu: %s/%s -> %s/%s (src %d rep %d): got %s %s, want %s %s\n", i,
                    r->cv, r->ca, r->iv, r->ia, r->source, r->repeat, kyc_decision_name(v.decision),
                    kyc_reason_name(v.reason), kyc_decision_name(r->want), r->reason);
            failed++;
        }
    }
    assert_int_equal(failed, 0);
}

/* The window boundary: exactly at the window it is a new attempt. */
static void test_window_boundary(void **state)
{
    (void)state;
    kyc_status cur, in;
    fill(&cur, NV, RJ, "X");
    fill(&in, NV, PE, "");
    kyc_transition t = {&cur, WINDOW - 1, &in, KYC_SRC_WEBHOOK, 0, WINDOW};
    assert_int_equal(kyc_state_decide(&t).decision, KYC_HOLD);
    t.current_age_ms = WINDOW;
    assert_int_equal(kyc_state_decide(&t).decision, KYC_APPLY);
    /* unknown age (never recorded) is treated as inside the window */
    t.current_age_ms = -1;
    assert_int_equal(kyc_state_decide(&t).decision, KYC_HOLD);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(kyc_decision_name(KYC_APPLY), "applied");
    assert_string_equal(kyc_decision_name(KYC_UNCHANGED), "unchanged");
    assert_string_equal(kyc_decision_name(KYC_HOLD), "held");
    assert_int_equal(kyc_vstatus_parse("VERIFIED"), KYC_V_VERIFIED);
    assert_int_equal(kyc_vstatus_parse("verified"), KYC_V_UNKNOWN);
    assert_int_equal(kyc_vstatus_parse(""), KYC_V_NONE);
    assert_int_equal(kyc_astatus_parse("REJECTED_BY_PROVIDER"), KYC_A_REJECTED);
    assert_int_equal(kyc_astatus_parse("REJECTED"), KYC_A_UNKNOWN);
    assert_true(kyc_other_status_known(KYC_KIND_POA_STATUS, "QUESTIONED"));
    assert_false(kyc_other_status_known(KYC_KIND_POA_STATUS, "ADDED"));
    assert_true(kyc_other_status_known(KYC_KIND_KYC_FILE, "ERROR"));
    assert_true(kyc_other_status_known(KYC_KIND_USER_STATUS, "ACTIVE"));
    assert_string_equal(kyc_kind_name(KYC_KIND_KYC_STATUS), "kyc_verification_status");
    assert_string_equal(kyc_source_name(KYC_SRC_RECONCILER), "reconciler");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_window_boundary),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
