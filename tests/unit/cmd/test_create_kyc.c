/* Unit tests for cmd/create_kyc: what create-kyc makes of P100's answer
 * (create_kyc_outcome). The command itself is tested end to end
 * (tests/e2e/test_create_kyc.sh). */
#include "testlib.h"

#include <stdio.h>
#include <string.h>

#include "cmd/create_kyc.h"

static p100_result answer(enum p100_class cls, long status, const char *code)
{
    p100_result r;
    memset(&r, 0, sizeof r);
    r.cls = cls;
    r.http_status = status;
    snprintf(r.error_code, sizeof r.error_code, "%s", code);
    return r;
}

static void test_create_outcome(void **state)
{
    p100_result r = answer(P100_OK, 201, "");
    assert_int_equal(create_kyc_outcome(&r, "4f1c-id"), CREATE_KYC_NEW);
    r = answer(P100_OK, 202, "P212");
    assert_int_equal(create_kyc_outcome(&r, ""), CREATE_KYC_PENDING);
    /* the review's bug: 202 without P212 (and without an id) is not a new
     * verification with an empty id */
    r = answer(P100_OK, 202, "");
    assert_int_equal(create_kyc_outcome(&r, ""), CREATE_KYC_UNUSABLE);
    r = answer(P100_OK, 202, "P213");
    assert_int_equal(create_kyc_outcome(&r, ""), CREATE_KYC_UNUSABLE);
    r = answer(P100_OK, 200, "");
    assert_int_equal(create_kyc_outcome(&r, ""), CREATE_KYC_UNUSABLE);
    assert_int_equal(create_kyc_outcome(&r, NULL), CREATE_KYC_UNUSABLE);
    /* errors win, whatever else the answer holds */
    r = answer(P100_MISCONFIGURED, 401, "xo1");
    assert_int_equal(create_kyc_outcome(&r, ""), CREATE_KYC_REFUSED);
    r = answer(P100_TRANSIENT, 400, "P501");
    assert_int_equal(create_kyc_outcome(&r, ""), CREATE_KYC_REFUSED);
    r = answer(P100_TRANSIENT, 201, "");
    assert_int_equal(create_kyc_outcome(&r, "x"), CREATE_KYC_REFUSED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_outcome),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
