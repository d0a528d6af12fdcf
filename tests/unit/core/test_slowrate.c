/* Unit tests for core/slowrate: when a slow client is cut, as a table of
 * cases (phase, age, bytes, load) -> cut or not, with kycd's defaults. */
#include "testlib.h"

#include <stdio.h>

#include "core/slowrate.h"

static const slow_policy DEF = {.grace_ms = SLOW_GRACE_MS, .min_rate = SLOW_MIN_RATE};

static void test_grace_shrinks_past_half_busy(void **state)
{
    assert_int_equal(slow_grace_now(&DEF, 0, 256), 1000);
    assert_int_equal(slow_grace_now(&DEF, 128, 256), 1000);
    assert_int_equal(slow_grace_now(&DEF, 192, 256), 625);
    assert_int_equal(slow_grace_now(&DEF, 256, 256), 250);
    assert_int_equal(slow_grace_now(&DEF, 300, 256), 250); /* never below a quarter */
    assert_int_equal(slow_grace_now(&DEF, 3, 0), 1000);    /* no workers known: whole grace */
}

typedef struct cut_case {
    const char *name;
    slow_phase ph;
    double age_ms;
    uint64_t bytes;
    int busy;
    int cut;
} cut_case;

static void test_cut_table(void **state)
{
    static const cut_case cases[] = {
        /* a P100 delivery: ClientHello at once, then its request in one piece */
        {"handshake waiting 1 RTT after a ClientHello", SLOW_HANDSHAKE, 900, 517, 0, 0},
        {"handshake at full load, 600 ms RTT", SLOW_HANDSHAKE, 600, 517, 256, 0},
        {"headers at full load, 240 ms after the handshake", SLOW_HEADERS, 240, 0, 256, 0},
        {"body of 2 KB arrived", SLOW_BODY, 1500, 2048, 0, 0},
        {"a request being stored for 30 s", SLOW_ACTIVE, 30000, 0, 256, 0},
        {"no connection", SLOW_IDLE, 1e9, 0, 256, 0},
        /* slowloris */
        {"silent after connect, past the grace", SLOW_HANDSHAKE, 1001, 0, 0, 1},
        {"one header line (40 bytes) then silence", SLOW_HEADERS, 1100, 40, 0, 1},
        {"one header line, within grace + 80 ms", SLOW_HEADERS, 1070, 40, 0, 0},
        {"one header line, half the workers busy", SLOW_HEADERS, 1100, 40, 128, 1},
        {"one header line, all busy: a quarter grace", SLOW_HEADERS, 400, 40, 256, 1},
        {"a body byte a second, 3 s in", SLOW_BODY, 3000, 3 * 23, 0, 1},
        {"a body at 600 bytes/s keeps going", SLOW_BODY, 10000, 6000, 0, 0},
        /* keep-alive */
        {"idle keep-alive, few busy: CivetWeb's keepalive decides", SLOW_KEEPALIVE, 4000, 0, 10, 0},
        {"idle keep-alive, most busy", SLOW_KEEPALIVE, 700, 0, 200, 1},
        {"idle keep-alive, most busy, within grace", SLOW_KEEPALIVE, 100, 0, 200, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const cut_case *c = &cases[i];
        int64_t g = slow_grace_now(&DEF, c->busy, 256);
        int got = slow_should_cut(&DEF, c->ph, c->age_ms, c->bytes, g, c->busy, 256);
        if (got != c->cut)
            fail_msg("%s: cut=%d, expected %d (grace %lld ms)", c->name, got, c->cut, (long long)g);
    }
}

static void test_zero_rate_never_cuts(void **state)
{
    slow_policy off = {.grace_ms = 1000, .min_rate = 0};
    assert_int_equal(slow_should_cut(&off, SLOW_HEADERS, 1e7, 0, 0, 256, 256), 0);
    assert_int_equal(slow_should_cut(&off, SLOW_KEEPALIVE, 1e7, 0, 0, 256, 256), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grace_shrinks_past_half_busy),
        cmocka_unit_test(test_cut_table),
        cmocka_unit_test(test_zero_rate_never_cuts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
