/* Unit tests for core/token: token list parsing, Authorization matching,
 * SHA-256 hex and random hex. */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/token.h"

#define TOK_A "abcdefghijklmnop0123"   /* 20 characters */
#define TOK_B "ZYXWVUTSRQPONMLK9876-_" /* 22 characters */

static token_set parse_ok(const char *list)
{
    token_set s;
    kerr err;
    kerr_clear(&err);
    int rc = token_set_parse(&s, list, &err);
    if (rc != 0)
        fail_msg("token_set_parse(%s) failed: %s", list ? list : "(null)", err.msg);
    return s;
}

static void assert_parse_fails(const char *list, const char *want_msg)
{
    token_set s;
    memset(&s, 0x5a, sizeof s);
    token_set before = s;
    kerr err;
    kerr_clear(&err);
    assert_int_not_equal(token_set_parse(&s, list, &err), 0);
    assert_true(err.msg[0] != '\0');
    if (want_msg)
        assert_non_null(strstr(err.msg, want_msg));
    /* outputs untouched on failure */
    assert_memory_equal(&s, &before, sizeof s);
}

/* ---- token_set_parse */

static void test_parse_single(void **state)
{
    token_set s = parse_ok(TOK_A);
    assert_int_equal(s.count, 1);
}

static void test_parse_separators(void **state)
{
    token_set s = parse_ok(TOK_A "," TOK_B);
    assert_int_equal(s.count, 2);
    s = parse_ok(TOK_A "\n" TOK_B "\n");
    assert_int_equal(s.count, 2);
    s = parse_ok("  " TOK_A " ,\t" TOK_B "  ");
    assert_int_equal(s.count, 2);
    /* CRLF files */
    s = parse_ok(TOK_A "\r\n" TOK_B "\r\n");
    assert_int_equal(s.count, 2);
    assert_true(token_check(&s, TOK_B));
}

static void test_parse_empty_items(void **state)
{
    token_set s = parse_ok(",," TOK_A ",,\n\n , " TOK_B ",");
    assert_int_equal(s.count, 2);
    assert_true(token_check(&s, TOK_A));
    assert_true(token_check(&s, TOK_B));
}

static void test_parse_refuses_empty(void **state)
{
    assert_parse_fails("", "no webhook token");
    assert_parse_fails(NULL, "no webhook token");
    assert_parse_fails(" , \n,", "no webhook token");
}

static void test_parse_too_many(void **state)
{
    char list[TOKEN_MAX * 40 + 64] = "";
    for (int i = 0; i < TOKEN_MAX; i++) {
        char t[40];
        snprintf(t, sizeof t, "%stoken-number-%04d", i ? "," : "", i);
        strcat(list, t);
    }
    token_set s = parse_ok(list);
    assert_int_equal(s.count, TOKEN_MAX);
    assert_true(token_check(&s, "token-number-0000"));
    assert_true(token_check(&s, "token-number-0015"));
    strcat(list, ",token-number-9999");
    assert_parse_fails(list, "more than 16");
}

static void test_parse_too_short(void **state)
{
    assert_parse_fails("short", "webhook token 1 is shorter than 16 characters");
    assert_parse_fails(TOK_A ",0123456789abcde", "webhook token 2 is shorter than 16");
    /* exactly TOKEN_MIN_LEN is fine */
    token_set s = parse_ok("0123456789abcdef");
    assert_int_equal(s.count, 1);
}

static void test_parse_too_long(void **state)
{
    size_t n = TOKEN_MAX_LEN;
    char *t = malloc(n + 1);
    assert_non_null(t);
    memset(t, 'x', n);
    t[n] = '\0';
    assert_parse_fails(t, "webhook token 1 is longer");
    /* the longest accepted still fits "Bearer " within TOKEN_MAX_LEN */
    t[TOKEN_MAX_LEN - 7] = '\0';
    token_set s = parse_ok(t);
    char *h = malloc(TOKEN_MAX_LEN + 1);
    assert_non_null(h);
    snprintf(h, TOKEN_MAX_LEN + 1, "Bearer %s", t);
    assert_int_equal(strlen(h), TOKEN_MAX_LEN);
    assert_true(token_check(&s, h));
    assert_true(token_check(&s, t));
    free(h);
    free(t);
}

static void test_parse_whitespace_inside(void **state)
{
    assert_parse_fails("abcdefgh ijklmnopq", "webhook token 1 contains a space");
    assert_parse_fails("abcdefgh\tijklmnopq", "contains a space or control");
    assert_parse_fails(TOK_A ",abcdefgh\rijklmnopq", "webhook token 2");
    assert_parse_fails("abcdefgh\x01ijklmnopq", "control");
    assert_parse_fails("abcdefgh\x7fijklmnopq", "control");
}

static void test_parse_messages_hide_tokens(void **state)
{
    const char *lists[] = {"secret-but-short", "secret-token with-space", TOK_A ",tiny",
                           "secret-token\x02secret"};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        token_set s;
        kerr err;
        kerr_clear(&err);
        int rc = token_set_parse(&s, lists[i], &err);
        if (i == 0) { /* 16 characters: accepted */
            assert_int_equal(rc, 0);
            continue;
        }
        assert_int_not_equal(rc, 0);
        assert_null(strstr(err.msg, "secret"));
        assert_null(strstr(err.msg, "tiny"));
        assert_null(strstr(err.msg, TOK_A));
    }
}

/* ---- token_check */

static void test_check_bare_and_bearer(void **state)
{
    token_set s = parse_ok(TOK_A);
    assert_int_equal(token_check(&s, TOK_A), 1);
    assert_int_equal(token_check(&s, "Bearer " TOK_A), 1);
    assert_int_equal(token_check(&s, "bearer " TOK_A), 1);
    assert_int_equal(token_check(&s, "BEARER " TOK_A), 1);
    assert_int_equal(token_check(&s, "bEaReR " TOK_A), 1);
    assert_int_equal(token_check(&s, "Bearer    " TOK_A), 1);
}

static void test_check_rotation(void **state)
{
    token_set s = parse_ok(TOK_A "," TOK_B);
    assert_true(token_check(&s, TOK_A));
    assert_true(token_check(&s, TOK_B));
    assert_true(token_check(&s, "Bearer " TOK_A));
    assert_true(token_check(&s, "Bearer " TOK_B));
    assert_false(token_check(&s, TOK_A "," TOK_B));
    assert_false(token_check(&s, "Bearer " TOK_A " " TOK_B));
}

static void test_check_wrong(void **state)
{
    token_set s = parse_ok(TOK_A);
    assert_false(token_check(&s, "completely-wrong-token"));
    assert_false(token_check(&s, "abcdefghijklmnop0124")); /* last char off */
    assert_false(token_check(&s, "Abcdefghijklmnop0123")); /* first char off */
    assert_false(token_check(&s, "abcdefghijklmnop012"));  /* prefix */
    assert_false(token_check(&s, "bcdefghijklmnop0123"));  /* suffix */
    assert_false(token_check(&s, TOK_A "4"));              /* extra char */
    assert_false(token_check(&s, "x" TOK_A));              /* extra char */
    assert_false(token_check(&s, "Bearer abcdefghijklmnop012"));
    assert_false(token_check(&s, "Basic " TOK_A));
    assert_false(token_check(&s, "Token " TOK_A));
}

static void test_check_empty_null(void **state)
{
    token_set s = parse_ok(TOK_A);
    assert_false(token_check(&s, ""));
    assert_false(token_check(&s, NULL));
    assert_false(token_check(NULL, TOK_A));
    assert_false(token_check(&s, " "));
    assert_false(token_check(&s, "\t \t"));
    assert_false(token_check(&s, "Bearer"));
    assert_false(token_check(&s, "Bearer "));
    assert_false(token_check(&s, "Bearer    "));
    assert_false(token_check(&s, "bearer"));
}

static void test_check_very_long(void **state)
{
    token_set s = parse_ok(TOK_A);
    size_t n = 1 << 20;
    char *h = malloc(n + 1);
    assert_non_null(h);
    memset(h, 'a', n);
    h[n] = '\0';
    assert_false(token_check(&s, h));
    /* the right token followed by a long run of optional whitespace: the
     * header value as a whole is over TOKEN_MAX_LEN, so it never matches */
    memcpy(h, TOK_A, strlen(TOK_A));
    memset(h + strlen(TOK_A), ' ', n - strlen(TOK_A));
    assert_false(token_check(&s, h));
    /* ... but within TOKEN_MAX_LEN it does */
    h[TOKEN_MAX_LEN] = '\0';
    assert_true(token_check(&s, h));
    free(h);
}

static void test_check_whitespace(void **state)
{
    token_set s = parse_ok(TOK_A);
    assert_true(token_check(&s, TOK_A " "));
    assert_true(token_check(&s, TOK_A " \t "));
    assert_true(token_check(&s, "Bearer " TOK_A "\t"));
    /* leading garbage or whitespace is not stripped */
    assert_false(token_check(&s, " " TOK_A));
    assert_false(token_check(&s, "x Bearer " TOK_A));
    assert_false(token_check(&s, "xBearer " TOK_A));
    assert_false(token_check(&s, " Bearer " TOK_A));
    /* the scheme needs SP; no space, or a tab, is not the Bearer form */
    assert_false(token_check(&s, "Bearer" TOK_A));
    assert_false(token_check(&s, "Bearer\t" TOK_A));
    /* whitespace inside */
    assert_false(token_check(&s, "abcdefghij klmnop0123"));
    assert_false(token_check(&s, TOK_A "\n"));
}

static void test_check_empty_set(void **state)
{
    token_set s;
    memset(&s, 0, sizeof s);
    assert_false(token_check(&s, TOK_A));
    /* an all-zero digest slot matches nothing real */
    assert_false(token_check(&s, ""));
}

/* ---- token_sha256_hex, token_random_hex */

static void test_sha256_vectors(void **state)
{
    char hex[65];
    token_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    token_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    token_sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* binary data with a NUL inside: the length counts, not strlen */
    char a[65], b[65];
    token_sha256_hex("a\0b", 3, a);
    token_sha256_hex("a", 1, b);
    assert_string_not_equal(a, b);
    assert_int_equal(strlen(a), 64);
}

static void test_random_hex(void **state)
{
    char a[65], b[65];
    memset(a, '#', sizeof a);
    assert_int_equal(token_random_hex(a, 16), 0);
    assert_int_equal(strlen(a), 32);
    assert_int_equal(strspn(a, "0123456789abcdef"), 32);
    assert_int_equal(token_random_hex(b, 16), 0);
    assert_string_not_equal(a, b);

    assert_int_equal(token_random_hex(a, 32), 0);
    assert_int_equal(strlen(a), 64);
    assert_int_equal(strspn(a, "0123456789abcdef"), 64);

    assert_int_equal(token_random_hex(a, 1), 0);
    assert_int_equal(strlen(a), 2);

    assert_int_equal(token_random_hex(a, 0), 0);
    assert_string_equal(a, "");

    strcpy(b, "untouched");
    assert_int_not_equal(token_random_hex(b, 33), 0);
    assert_string_equal(b, "untouched");
}

/* A vector computed independently (Python's hmac module), stability, and
 * a short key refused without quoting it. */
static void test_pseudonym(void **state)
{
    (void)state;
    char out[TOKEN_PSEUDONYM_LEN + 1], again[TOKEN_PSEUDONYM_LEN + 1];
    kerr err;
    kerr_clear(&err);
    const char *key = "0123456789abcdef0123456789abcdef";
    assert_int_equal(token_pseudonym(key, "user-1", out, &err), 0);
    assert_string_equal(out, "erased-b5526a445b655b1be2c38413cf481955");
    assert_int_equal(token_pseudonym(key, "user-1", again, &err), 0);
    assert_string_equal(out, again);
    assert_int_equal(token_pseudonym(key, "user-2", again, &err), 0);
    assert_string_not_equal(out, again);
    assert_int_equal(token_pseudonym("1123456789abcdef0123456789abcdef", "user-1", again, &err), 0);
    assert_string_not_equal(out, again);
    assert_int_not_equal(token_pseudonym("short-secret-key", "user-1", out, &err), 0);
    assert_null(strstr(err.msg, "short-secret-key"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_single),
        cmocka_unit_test(test_parse_separators),
        cmocka_unit_test(test_parse_empty_items),
        cmocka_unit_test(test_parse_refuses_empty),
        cmocka_unit_test(test_parse_too_many),
        cmocka_unit_test(test_parse_too_short),
        cmocka_unit_test(test_parse_too_long),
        cmocka_unit_test(test_parse_whitespace_inside),
        cmocka_unit_test(test_parse_messages_hide_tokens),
        cmocka_unit_test(test_check_bare_and_bearer),
        cmocka_unit_test(test_check_rotation),
        cmocka_unit_test(test_check_wrong),
        cmocka_unit_test(test_check_empty_null),
        cmocka_unit_test(test_check_very_long),
        cmocka_unit_test(test_check_whitespace),
        cmocka_unit_test(test_check_empty_set),
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_random_hex),
        cmocka_unit_test(test_pseudonym),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
