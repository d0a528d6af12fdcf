/* Unit tests for base/strlist: the splitting rules the CIDR list (commas,
 * spaces and tabs trimmed) and the token list (commas or newlines, CR
 * trimmed too) rely on. */
#include "testlib.h"

#include <stdio.h>
#include <string.h>

#include "base/strlist.h"

/* Items of s joined with "|", and the separator count. */
static const char *split(const char *s, const char *seps, const char *blanks, int *separators)
{
    static char out[256];
    strlist it;
    const char *item;
    size_t n, used = 0;
    out[0] = '\0';
    strlist_init(&it, s, seps, blanks);
    while (strlist_next(&it, &item, &n))
        used += (size_t)snprintf(out + used, sizeof out - used, "%s%.*s", used ? "|" : "", (int)n,
                                 item);
    if (separators)
        *separators = it.separators;
    assert_int_equal(strlist_next(&it, &item, &n), 0); /* stays at the end */
    return out;
}

static void test_commas(void **state)
{
    int seps;
    assert_string_equal(split("10.0.0.0/8, 2001:db8::/32,192.0.2.7", ",", " \t", &seps),
                        "10.0.0.0/8|2001:db8::/32|192.0.2.7");
    assert_int_equal(seps, 2);
    assert_string_equal(split(" \ta b \t", ",", " \t", NULL), "a b");
    assert_string_equal(split("a,,  ,b,", ",", " \t", &seps), "a|b");
    assert_int_equal(seps, 4);
    /* a newline is not a separator here, nor trimmed */
    assert_string_equal(split("a\nb", ",", " \t", NULL), "a\nb");
    assert_string_equal(split("a\r", ",", " \t", NULL), "a\r");
}

static void test_empty_and_separators_only(void **state)
{
    int seps;
    assert_string_equal(split(NULL, ",", " \t", &seps), "");
    assert_int_equal(seps, 0);
    assert_string_equal(split("", ",", " \t", &seps), "");
    assert_int_equal(seps, 0);
    assert_string_equal(split("   ", ",", " \t", &seps), "");
    assert_int_equal(seps, 0);
    assert_string_equal(split(",", ",", " \t", &seps), "");
    assert_int_equal(seps, 1);
    assert_string_equal(split(" , ,", ",", " \t", &seps), "");
    assert_int_equal(seps, 2);
}

static void test_commas_or_lines(void **state)
{
    assert_string_equal(split("tok1\r\ntok2,tok3\n\n tok4 \r\n", ",\n", " \t\r", NULL),
                        "tok1|tok2|tok3|tok4");
    assert_string_equal(split("a b", ",\n", " \t\r", NULL), "a b"); /* inner blanks kept */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commas),
        cmocka_unit_test(test_empty_and_separators_only),
        cmocka_unit_test(test_commas_or_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
