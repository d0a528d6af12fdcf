/* Unit tests for core/vocab.c: the lookups, and the tables themselves (no
 * table empty, no name twice in one, P100's values in P100's spelling,
 * kycd's codes lower-case). That the P100 tables say what
 * docs/p100-api.md says is tests/e2e/test_vocabulary.sh's job. */
#include "testlib.h"

#include <ctype.h>
#include <string.h>

#include "core/check.h"
#include "core/kyc.h"
#include "core/p100.h"
#include "core/state.h"
#include "core/vocab.h"

static void test_lookups(void **state)
{
    (void)state;
    assert_int_equal(vocab_value(&VOCAB_ATTEMPT_STATUS, "REJECTED_BY_PROVIDER"), KYC_A_REJECTED);
    assert_string_equal(vocab_name(&VOCAB_ATTEMPT_STATUS, KYC_A_REJECTED), "REJECTED_BY_PROVIDER");
    /* a POA value is not an attemptStatus */
    assert_int_equal(vocab_value(&VOCAB_ATTEMPT_STATUS, "REJECTED"), -1);
    assert_int_equal(vocab_value(&VOCAB_POA_STATUS, "REJECTED"), 2);
    assert_int_equal(vocab_value(&VOCAB_ATTEMPT_STATUS, ""), -1);
    assert_int_equal(vocab_value(&VOCAB_ATTEMPT_STATUS, NULL), -1);
    assert_null(vocab_name(&VOCAB_ATTEMPT_STATUS, KYC_A_NONE));    /* no name */
    assert_null(vocab_name(&VOCAB_ATTEMPT_STATUS, KYC_A_UNKNOWN)); /* no name */
    assert_null(vocab_name(&VOCAB_ATTEMPT_STATUS, -1));
    assert_null(vocab_name(&VOCAB_ATTEMPT_STATUS, 1000));
    assert_int_equal(vocab_count(&VOCAB_ATTEMPT_STATUS), 4);
    assert_string_equal(vocab_nth(&VOCAB_ATTEMPT_STATUS, 0), "PENDING");
    assert_null(vocab_nth(&VOCAB_ATTEMPT_STATUS, 4));
    assert_int_equal(p100_code_parse("P445"), P100_CODE_P445);
    assert_int_equal(p100_code_parse("P999"), P100_CODE_UNKNOWN);
    assert_int_equal(p100_code_parse(""), P100_CODE_NONE);
    assert_int_equal(kyc_astatus_parse("SUCCESSFUL"), KYC_A_SUCCESSFUL);
    assert_int_equal(kyc_vstatus_parse("PARTIALLY_VERIFIED"), KYC_V_UNKNOWN);
    assert_string_equal(kyc_refusal_name(KYC_REFUSE_NOT_FOUND), "not_found");
}

static void test_tables(void **state)
{
    (void)state;
    assert_true(vocab_all_count > 0);
    int p100 = 0;
    for (size_t t = 0; t < vocab_all_count; t++) {
        const vocab *v = vocab_all[t];
        print_message("table %s\n", v->field);
        assert_true(vocab_count(v) > 0);
        for (int i = 0; i < vocab_count(v); i++) {
            const char *n = vocab_nth(v, i);
            assert_non_null(n);
            assert_true(*n != '\0');
            /* the value back from its name */
            assert_string_equal(vocab_name(v, vocab_value(v, n)), n);
            for (int k = i + 1; k < vocab_count(v); k++)
                if (strcmp(n, vocab_nth(v, k)) == 0)
                    fail_msg("%s: '%s' twice", v->field, n);
            for (const char *c = n; *c; c++) {
                if (v->p100 &&
                    !(isupper((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '_'))
                    fail_msg("%s: '%s' is not in P100's spelling", v->field, n);
                if (!v->p100 && !(islower((unsigned char)*c) || *c == '_'))
                    fail_msg("%s: '%s' is not one of kycd's lower-case codes", v->field, n);
            }
        }
        p100 += v->p100;
        /* P100's tables come first (kycd vocabulary --p100 prints them) */
        if (t > 0 && v->p100)
            assert_true(vocab_all[t - 1]->p100);
    }
    assert_int_equal(p100, 10);
    /* kycd's own tables name every enum value */
    assert_int_equal(vocab_count(&VOCAB_KIND), KYC_KIND_COUNT);
    assert_int_equal(vocab_count(&VOCAB_OUTCOME), KYC_OUTCOME_COUNT);
    assert_int_equal(vocab_count(&VOCAB_REASON), KYC_REASON_COUNT);
    assert_int_equal(vocab_count(&VOCAB_CHECK_RESULT), KYC_CHECK_RESULT_COUNT);
    assert_int_equal(vocab_count(&VOCAB_P100_CLASS), P100_CLASS_COUNT);
    assert_int_equal(vocab_count(&VOCAB_REFUSAL), KYC_REFUSAL_COUNT);
    assert_int_equal(vocab_count(&VOCAB_ERROR_CODE), P100_CODE_UNKNOWN - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
