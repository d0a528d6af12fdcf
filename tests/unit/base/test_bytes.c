/* Unit tests for base/bytes (little-endian integers, lower-case hex) and
 * the wall and condition-variable helpers of base/clock. */
#include "testlib.h"

#include <string.h>

#include "base/bytes.h"
#include "base/clock.h"

static void test_le(void **state)
{
    unsigned char b[8];
    bytes_put_le32(b, 0x01020304u);
    assert_memory_equal(b, "\x04\x03\x02\x01", 4);
    assert_int_equal(bytes_get_le32(b), 0x01020304u);
    bytes_put_le64(b, 0x0102030405060708ull);
    assert_memory_equal(b, "\x08\x07\x06\x05\x04\x03\x02\x01", 8);
    assert_true(bytes_get_le64(b) == 0x0102030405060708ull);
    bytes_put_le64(b, UINT64_MAX);
    assert_true(bytes_get_le64(b) == UINT64_MAX);
    static const unsigned char hi[4] = {0xff, 0xff, 0xff, 0xff};
    assert_int_equal(bytes_get_le32(hi), 0xffffffffu);
}

static void test_hex(void **state)
{
    uint64_t v = 7;
    assert_true(bytes_hex_parse("00000000000000ff", 16, &v));
    assert_true(v == 0xff);
    assert_true(bytes_hex_parse("ffffffffffffffff", 16, &v));
    assert_true(v == UINT64_MAX);
    assert_true(bytes_hex_parse("a1", 2, &v));
    assert_true(v == 0xa1);
    v = 7;
    assert_false(bytes_hex_parse("00000000000000FF", 16, &v)); /* upper case is not ours */
    assert_false(bytes_hex_parse("000000000000000g", 16, &v));
    assert_false(bytes_hex_parse("0000000000000 01", 16, &v));
    assert_false(bytes_hex_parse("", 0, &v));
    assert_false(bytes_hex_parse("00000000000000000", 17, &v));
    assert_true(v == 7); /* untouched on failure */
}

static void test_clock(void **state)
{
    int64_t ms = clock_wall_ms(), us = clock_wall_us();
    assert_true(ms > 1600000000000LL); /* after 2020 */
    assert_true(us / 1000 - ms >= 0 && us / 1000 - ms < 1000);
    pthread_cond_t c;
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    assert_int_equal(clock_cond_init(&c), 0);
    pthread_mutex_lock(&m);
    int64_t t0 = clock_mono_ms();
    struct timespec ts = clock_deadline(20);
    int rc = 0;
    while (rc == 0)
        rc = pthread_cond_timedwait(&c, &m, &ts); /* a monotonic deadline times out */
    pthread_mutex_unlock(&m);
    assert_true(clock_mono_ms() - t0 >= 19);
    pthread_cond_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_le),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_clock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
