/* Unit tests for base/units: durations, sizes, booleans, integers. */
#include "testlib.h"

#include <stdint.h>
#include <string.h>

#include "base/units.h"

static int64_t dur(const char *s)
{
    int64_t v = -12345;
    kerr err;
    kerr_clear(&err);
    if (units_duration_ms(s, &v, &err) != 0)
        fail_msg("units_duration_ms(\"%s\") failed: %s", s, err.msg);
    return v;
}

static void dur_bad(const char *s)
{
    int64_t v = -12345;
    kerr err;
    kerr_clear(&err);
    if (units_duration_ms(s, &v, &err) == 0)
        fail_msg("units_duration_ms(\"%s\") accepted (%lld)", s ? s : "(null)", (long long)v);
    assert_int_equal(err.code, KERR_INVALID);
    assert_true(err.msg[0] != '\0');
    assert_int_equal(v, -12345);
}

static int64_t size(const char *s)
{
    int64_t v = -12345;
    kerr err;
    kerr_clear(&err);
    if (units_size(s, &v, &err) != 0)
        fail_msg("units_size(\"%s\") failed: %s", s, err.msg);
    return v;
}

static void size_bad(const char *s)
{
    int64_t v = -12345;
    kerr err;
    kerr_clear(&err);
    if (units_size(s, &v, &err) == 0)
        fail_msg("units_size(\"%s\") accepted (%lld)", s ? s : "(null)", (long long)v);
    assert_true(err.msg[0] != '\0');
    assert_int_equal(v, -12345);
}

static void test_duration_forms(void **state)
{
    assert_int_equal(dur("500ms"), 500);
    assert_int_equal(dur("0ms"), 0);
    assert_int_equal(dur("30s"), 30000);
    assert_int_equal(dur("30"), 30000);
    assert_int_equal(dur("0"), 0);
    assert_int_equal(dur("0.5"), 500);
    assert_int_equal(dur(".5"), 500);
    assert_int_equal(dur("5."), 5000);
    assert_int_equal(dur("1.5s"), 1500);
    assert_int_equal(dur("10m"), 600000);
    assert_int_equal(dur("10min"), 600000);
    assert_int_equal(dur("1.5m"), 90000);
    assert_int_equal(dur("1h"), 3600000);
    assert_int_equal(dur("2d"), 172800000);
    assert_int_equal(dur("0.25h"), 900000);
    assert_int_equal(dur("1.0005s"), 1001); /* rounded to the nearest ms */
    assert_int_equal(dur("007s"), 7000);
    assert_int_equal(dur("9000000000000"), INT64_C(9000000000000000));
}

static void test_duration_rejects(void **state)
{
    dur_bad(NULL);
    dur_bad("");
    dur_bad("-1");
    dur_bad("-1s");
    dur_bad("+1s");
    dur_bad(" 1s");
    dur_bad("1s ");
    dur_bad("1 s");
    dur_bad("10x");
    dur_bad("s");
    dur_bad("ms");
    dur_bad(".");
    dur_bad(".s");
    dur_bad("1.5.2");
    dur_bad("1..5");
    dur_bad("1S"); /* units are lower-case */
    dur_bad("1MS");
    dur_bad("1sec");
    dur_bad("1hh");
    dur_bad("1w");
    dur_bad("0x10"); /* hex is not a duration */
    dur_bad("1e3");  /* nor an exponent */
    dur_bad("1e3s");
    dur_bad("inf");
    dur_bad("nan");
    dur_bad("1e400");
    dur_bad("9000000000001"); /* over 9e15 ms */
    dur_bad("99999999999999999999999d");
}

static void test_size_forms(void **state)
{
    assert_int_equal(size("0"), 0);
    assert_int_equal(size("65536"), 65536);
    assert_int_equal(size("100b"), 100);
    assert_int_equal(size("100B"), 100);
    assert_int_equal(size("64k"), 65536);
    assert_int_equal(size("64K"), 65536);
    assert_int_equal(size("64kb"), 65536);
    assert_int_equal(size("64KiB"), 65536);
    assert_int_equal(size("64kib"), 65536);
    assert_int_equal(size("1M"), 1048576);
    assert_int_equal(size("1m"), 1048576);
    assert_int_equal(size("1MB"), 1048576);
    assert_int_equal(size("1MiB"), 1048576);
    assert_int_equal(size("1G"), INT64_C(1073741824));
    assert_int_equal(size("1GiB"), INT64_C(1073741824));
    assert_int_equal(size("3gb"), INT64_C(3221225472));
    assert_int_equal(size("9223372036854775807"), INT64_MAX);
    assert_int_equal(size("8589934591G"), INT64_C(8589934591) * 1073741824);
}

static void test_size_rejects(void **state)
{
    size_bad(NULL);
    size_bad("");
    size_bad("-1");
    size_bad("-1k");
    size_bad("+1k");
    size_bad(" 1k");
    size_bad("1k ");
    size_bad("1 k");
    size_bad("10x");
    size_bad("k");
    size_bad("1.5M");
    size_bad("1.5.2");
    size_bad("1T");
    size_bad("1KiBs");
    size_bad("0x10");
    size_bad("9223372036854775808");  /* INT64_MAX + 1 */
    size_bad("18446744073709551616"); /* over unsigned long long */
    size_bad("8589934592G");          /* 2^63 bytes */
    size_bad("9007199254740992k");    /* 2^63 bytes */
}

static void test_bool(void **state)
{
    const char *yes[] = {"on", "ON", "On", "true", "TRUE", "True", "yes", "YES", "1"};
    const char *no[] = {"off", "OFF", "false", "False", "no", "NO", "0"};
    const char *bad[] = {"",    "2",   "y",    "n",  "t",  "f",    "enable",
                         "on ", " on", "yes!", "00", "-1", "truee"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        int v = -1;
        assert_int_equal(units_bool(yes[i], &v, NULL), 0);
        assert_int_equal(v, 1);
    }
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        int v = -1;
        assert_int_equal(units_bool(no[i], &v, NULL), 0);
        assert_int_equal(v, 0);
    }
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int v = -1;
        kerr err;
        kerr_clear(&err);
        if (units_bool(bad[i], &v, &err) == 0)
            fail_msg("units_bool(\"%s\") accepted", bad[i]);
        assert_int_equal(err.code, KERR_INVALID);
        assert_int_equal(v, -1);
    }
    int v = -1;
    assert_int_not_equal(units_bool(NULL, &v, NULL), 0);
    assert_int_equal(v, -1);
}

static void test_int(void **state)
{
    int64_t v = 0;
    assert_int_equal(units_int("0", 0, 10, &v, NULL), 0);
    assert_int_equal(v, 0);
    assert_int_equal(units_int("10", 0, 10, &v, NULL), 0);
    assert_int_equal(v, 10);
    assert_int_equal(units_int("+7", 0, 10, &v, NULL), 0);
    assert_int_equal(v, 7);
    assert_int_equal(units_int("-5", -10, 10, &v, NULL), 0);
    assert_int_equal(v, -5);
    assert_int_equal(units_int("0010", 0, 100, &v, NULL), 0);
    assert_int_equal(v, 10);
    assert_int_equal(units_int("9223372036854775807", INT64_MIN, INT64_MAX, &v, NULL), 0);
    assert_int_equal(v, INT64_MAX);
    assert_int_equal(units_int("-9223372036854775808", INT64_MIN, INT64_MAX, &v, NULL), 0);
    assert_int_equal(v, INT64_MIN);
}

static void test_int_rejects(void **state)
{
    const char *bad[] = {"",
                         "abc",
                         "10x",
                         "1.5",
                         "1.5.2",
                         " 10",
                         "10 ",
                         "1 0",
                         "0x10",
                         "1e3",
                         "--1",
                         "+",
                         "-",
                         "9223372036854775808",
                         "-9223372036854775809",
                         "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t v = 42;
        kerr err;
        kerr_clear(&err);
        if (units_int(bad[i], INT64_MIN, INT64_MAX, &v, &err) == 0)
            fail_msg("units_int(\"%s\") accepted", bad[i]);
        assert_int_equal(err.code, KERR_INVALID);
        assert_int_equal(v, 42);
    }
    int64_t v = 42;
    assert_int_not_equal(units_int(NULL, 0, 10, &v, NULL), 0);
    kerr err;
    kerr_clear(&err);
    assert_int_not_equal(units_int("11", 0, 10, &v, &err), 0);
    assert_non_null(strstr(err.msg, "0 to 10"));
    assert_int_not_equal(units_int("-1", 0, 10, &v, NULL), 0); /* negative out of range */
    assert_int_not_equal(units_int("0", 1, 10, &v, NULL), 0);
    assert_int_equal(v, 42);
}

static void test_format_duration(void **state)
{
    struct {
        int64_t ms;
        const char *text;
    } cases[] = {
        {0, "0s"},         {1, "1ms"},         {500, "500ms"},     {1000, "1s"},
        {1500, "1500ms"},  {30000, "30s"},     {59000, "59s"},     {60000, "1m"},
        {90000, "90s"},    {600000, "10m"},    {3600000, "1h"},    {5400000, "90m"},
        {86400000, "24h"}, {172800000, "48h"}, {3601000, "3601s"}, {3600001, "3600001ms"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char buf[32];
        units_format_duration(cases[i].ms, buf, (int)sizeof buf);
        assert_string_equal(buf, cases[i].text);
        /* and back */
        assert_int_equal(dur(buf), cases[i].ms);
    }
    /* round trip of parsed inputs */
    const char *inputs[] = {"2d", "1.5s", "0.25h", "10min", "7", "123ms", "1.5m"};
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
        int64_t ms = dur(inputs[i]);
        char buf[32];
        units_format_duration(ms, buf, (int)sizeof buf);
        assert_int_equal(dur(buf), ms);
    }
    /* a small buffer is cut, never overflowed */
    char small[4];
    units_format_duration(3600001, small, (int)sizeof small);
    assert_string_equal(small, "360");
}

static void test_format_size(void **state)
{
    struct {
        int64_t bytes;
        const char *text;
    } cases[] = {
        {0, "0"},
        {1, "1"},
        {1000, "1000"},
        {1024, "1k"},
        {1536, "1536"},
        {65536, "64k"},
        {4 << 20, "4M"},
        {1 << 30, "1G"},
        {3LL << 40, "3072G"},
        {(1 << 20) + 1024, "1025k"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char buf[32];
        units_format_size(cases[i].bytes, buf, (int)sizeof buf);
        assert_string_equal(buf, cases[i].text);
        /* and back */
        assert_int_equal(size(buf), cases[i].bytes);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_forms), cmocka_unit_test(test_duration_rejects),
        cmocka_unit_test(test_size_forms),     cmocka_unit_test(test_size_rejects),
        cmocka_unit_test(test_bool),           cmocka_unit_test(test_int),
        cmocka_unit_test(test_int_rejects),    cmocka_unit_test(test_format_duration),
        cmocka_unit_test(test_format_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
