/* Unit tests for base/err.c: kerr_set and kerr_wrap, including a message
 * built from the error's own message. */
#include "testlib.h"

#include <string.h>

#include "base/err.h"

static void test_set(void **state)
{
    (void)state;
    kerr e;
    kerr_clear(&e);
    assert_int_equal(kerr_set(&e, KERR_IO, "disk %s: %d", "full", 28), KERR_IO);
    assert_int_equal(e.code, KERR_IO);
    assert_string_equal(e.msg, "disk full: 28");
    assert_int_equal(kerr_set(NULL, KERR_DB, "nobody reads %s", "this"), KERR_DB);
}

static void test_set_from_own_message(void **state)
{
    (void)state;
    /* The ingest's "database unavailable and the spool refused the
     * delivery (%s)" with the spool's reason, err->msg itself. */
    kerr e;
    kerr_clear(&e);
    kerr_set(&e, KERR_IO, "spool: writing x: No space left on device");
    kerr_set(&e, KERR_DB, "database unavailable and the spool refused the delivery (%s)", e.msg);
    assert_int_equal(e.code, KERR_DB);
    assert_string_equal(e.msg, "database unavailable and the spool refused the delivery "
                               "(spool: writing x: No space left on device)");
}

static void test_wrap(void **state)
{
    (void)state;
    kerr e;
    kerr_clear(&e);
    kerr_set(&e, KERR_TLS, "bad key");
    kerr_wrap(&e, "tls_key %s", "/k.pem");
    assert_int_equal(e.code, KERR_TLS);
    assert_non_null(strstr(e.msg, "tls_key /k.pem"));
    assert_non_null(strstr(e.msg, "bad key"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_set_from_own_message),
        cmocka_unit_test(test_wrap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
