/* Unit tests for core/json: the UTF-8 validator (moved here from
 * test_payload.c with its assertions) and the strict JSON validator
 * called directly (payload_parse's use of it is tested in
 * test_payload.c). */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

/* ---- json_utf8_valid */

static void test_utf8_valid(void **state)
{
    static const char *good[] = {
        "",
        "plain ascii",
        "\xc3\xa9",         /* é */
        "\xe2\x82\xac",     /* € */
        "\xf0\x9f\x98\x80", /* 😀 */
        "caf\xc3\xa9 \xe2\x82\xac"
        "5 \xf0\x9f\x98\x80!",
        "\xc2\x80",         /* U+0080, smallest 2-byte */
        "\xdf\xbf",         /* U+07FF */
        "\xe0\xa0\x80",     /* U+0800, smallest 3-byte */
        "\xed\x9f\xbf",     /* U+D7FF, just below the surrogates */
        "\xee\x80\x80",     /* U+E000, just above */
        "\xef\xbf\xbf",     /* U+FFFF */
        "\xf0\x90\x80\x80", /* U+10000, smallest 4-byte */
        "\xf4\x8f\xbf\xbf", /* U+10FFFF, the largest */
        "\x7f",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!json_utf8_valid(good[i], strlen(good[i])))
            fail_msg("valid UTF-8 case %zu refused", i);
    /* the length bounds the scan: a NUL is just a byte, valid */
    assert_true(json_utf8_valid("a\0b", 3));
    /* a valid prefix of an invalid buffer */
    assert_true(json_utf8_valid("ab\xff", 2));
}

static void test_utf8_invalid(void **state)
{
    static const char *bad[] = {
        "\x80",
        "\xbf",
        "a\x80"
        "b", /* lone continuation bytes */
        "\xc0\x80",
        "\xc0\xaf",
        "\xc1\xbf", /* overlong 2-byte */
        "\xe0\x80\x80",
        "\xe0\x9f\xbf", /* overlong 3-byte */
        "\xf0\x80\x80\x80",
        "\xf0\x8f\xbf\xbf", /* overlong 4-byte */
        "\xed\xa0\x80",
        "\xed\xbf\xbf",
        "\xed\xb0\x80", /* surrogates */
        "\xc3",
        "\xe2\x82",
        "\xf0\x9f\x98", /* truncated at the end */
        "\xc3"
        "a",
        "\xe2\x82"
        "a",
        "\xf0\x9f\x98"
        "a", /* truncated mid-text */
        "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80",
        "\xf7\xbf\xbf\xbf", /* > U+10FFFF */
        "\xf8\x88\x80\x80\x80",
        "\xfc\x84\x80\x80\x80\x80",
        "\xfe",
        "\xff",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (json_utf8_valid(bad[i], strlen(bad[i])))
            fail_msg("invalid UTF-8 case %zu accepted", i);
    /* a sequence cut by the length, even though more bytes follow in memory */
    assert_false(json_utf8_valid("\xe2\x82\xac", 2));
    assert_false(json_utf8_valid("\xf0\x9f\x98\x80", 3));
}

/* ---- json_validate */

static void validate_ok(const char *text)
{
    kerr err;
    kerr_clear(&err);
    if (json_validate(text, strlen(text), &err) != 0)
        fail_msg("refused: %s (%s)", text, err.msg);
}

static void validate_bad(const char *text, size_t len, const char *want)
{
    kerr err;
    kerr_clear(&err);
    assert_int_equal(json_validate(text, len, &err), KERR_INVALID);
    assert_int_equal(err.code, KERR_INVALID);
    if (want && strstr(err.msg, want) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
}

static void test_validate_accepts_rfc8259(void **state)
{
    validate_ok("{}");
    validate_ok("[]");
    validate_ok(" \t\r\n{\"a\": [1, -0, 0.5, 1e9, 2E-3, true, false, null, \"x\"]} \n");
    validate_ok("\"\\u00e9\\ud83d\\ude00\\\"\\\\\\/\\b\\f\\n\\r\\t\"");
    validate_ok("12");
    validate_ok("1e0009"); /* leading zeros of an exponent do not count */
}

/* "0." then n digits (and an exponent): PostgreSQL's numeric limits. */
static char *long_fraction(int n, const char *exp)
{
    char *s = malloc((size_t)n + 16);
    assert_non_null(s);
    memcpy(s, "0.", 2);
    memset(s + 2, '1', (size_t)n);
    strcpy(s + 2 + n, exp);
    return s;
}

static char *long_integer(int n)
{
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    memset(s, '7', (size_t)n);
    s[n] = '\0';
    return s;
}

static void test_validate_numeric_limits(void **state)
{
    /* The limits of PostgreSQL's numeric, where jsonb stores numbers: at
     * most 16383 digits after the point (as written, less the exponent)
     * and 131072 before it. A body past them would get 200 while the
     * database is away and then become a dead letter. */
    char *s = long_fraction(16383, "");
    validate_ok(s);
    free(s);
    s = long_fraction(16384, "");
    validate_bad(s, strlen(s), "more than 16383 digits after the point");
    free(s);
    s = long_fraction(16384, "e1"); /* the exponent moves the point back */
    validate_ok(s);
    free(s);
    s = long_fraction(16000, "e-384");
    validate_bad(s, strlen(s), "after the point");
    free(s);
    validate_bad("1e-16384", 8, "out of range"); /* a 5-digit exponent, at all */
    s = long_fraction(7000, "e-9384");           /* 7000 + 9384 = 16384 */
    validate_bad(s, strlen(s), "after the point");
    free(s);
    s = long_fraction(7000, "e-9383");
    validate_ok(s);
    free(s);
    s = long_fraction(7000, "e-9384");
    s[2] = '0'; /* zeros keep their scale too */
    memset(s + 2, '0', 7000);
    validate_bad(s, strlen(s), "after the point");
    free(s);
    s = long_integer(131072);
    validate_ok(s);
    free(s);
    s = long_integer(131073);
    validate_bad(s, strlen(s), "more than 131072 digits before the point");
    free(s);
    s = long_integer(131070);
    strcpy(s + 131070 - 4, "e4"); /* 131066 digits then e4: 131070 digits */
    validate_ok(s);
    free(s);
    validate_ok("-0.000");
}

static void test_validate_refuses(void **state)
{
    validate_bad("", 0, "unexpected end");
    validate_bad("{\"a\":1,}", 8, "expected a key");
    validate_bad("[1,]", 4, "unexpected character");
    validate_bad("01", 2, "trailing data");
    validate_bad("1.", 2, "bad number");
    validate_bad("1e99999", 7, "number out of range");
    validate_bad("\"a\tb\"", 5, "control character");
    validate_bad("\"\\x\"", 4, "bad escape");
    validate_bad("\"\\u12\"", 6, "escape");
    validate_bad("\"\\u0000\"", 8, "\\u0000");
    validate_bad("\"\\udc00\"", 8, "lone low surrogate");
    validate_bad("\"\\ud800\"", 8, "lone high surrogate");
    validate_bad("{} x", 4, "trailing data");
    validate_bad("{}\0", 3, "NUL byte");
    validate_bad("\"a\0b\"", 5, "NUL byte");
    validate_bad("nul", 3, "unexpected character");
    validate_bad("\xef\xbb\xbf{}", 5, "unexpected character"); /* BOM */
}

static void test_validate_depth(void **state)
{
    char deep[2 * JSON_MAX_DEPTH + 3];
    size_t n = 0;
    for (int i = 0; i < JSON_MAX_DEPTH; i++)
        deep[n++] = '[';
    for (int i = 0; i < JSON_MAX_DEPTH; i++)
        deep[n++] = ']';
    deep[n] = '\0';
    validate_ok(deep);
    n = 0;
    for (int i = 0; i <= JSON_MAX_DEPTH; i++)
        deep[n++] = '[';
    for (int i = 0; i <= JSON_MAX_DEPTH; i++)
        deep[n++] = ']';
    validate_bad(deep, n, "nested deeper than 32 levels");
}

static void test_validate_err_may_be_null(void **state)
{
    assert_int_equal(json_validate("{", 1, NULL), KERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_numeric_limits),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_invalid),
        cmocka_unit_test(test_validate_accepts_rfc8259),
        cmocka_unit_test(test_validate_refuses),
        cmocka_unit_test(test_validate_depth),
        cmocka_unit_test(test_validate_err_may_be_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
