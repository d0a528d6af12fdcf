/* Unit tests for core/cidr: parsing allowed-network lists and matching. */
#include "testlib.h"

#include <stdio.h>
#include <string.h>

#include "core/cidr.h"

static cidr_list parse_ok(const char *csv)
{
    cidr_list l;
    kerr err;
    kerr_clear(&err);
    if (cidr_list_parse(&l, csv, &err) != 0)
        fail_msg("cidr_list_parse(%s) failed: %s", csv ? csv : "(null)", err.msg);
    return l;
}

/* Refused, the message names the item (want), outputs untouched. */
static void assert_parse_fails(const char *csv, const char *want)
{
    cidr_list l;
    memset(&l, 0x5a, sizeof l);
    cidr_list before = l;
    kerr err;
    kerr_clear(&err);
    assert_int_not_equal(cidr_list_parse(&l, csv, &err), 0);
    if (want != NULL && strstr(err.msg, want) == NULL)
        fail_msg("message \"%s\" does not contain \"%s\"", err.msg, want);
    assert_memory_equal(&l, &before, sizeof l);
}

static void test_ipv4_blocks(void **state)
{
    cidr_list l = parse_ok("10.0.0.0/8, 192.168.1.0/24");
    assert_int_equal(l.count, 2);
    assert_int_equal(l.blocks[0].family, 4);
    assert_int_equal(l.blocks[0].prefix, 8);
    assert_true(cidr_list_allows(&l, "10.0.0.0"));
    assert_true(cidr_list_allows(&l, "10.255.255.255"));
    assert_true(cidr_list_allows(&l, "10.1.2.3"));
    assert_true(cidr_list_allows(&l, "192.168.1.77"));
    assert_false(cidr_list_allows(&l, "11.0.0.0"));
    assert_false(cidr_list_allows(&l, "9.255.255.255"));
    assert_false(cidr_list_allows(&l, "192.168.2.1"));
    assert_false(cidr_list_allows(&l, "::1"));
    assert_false(cidr_list_allows(&l, "2001:db8::1"));
}

static void test_ipv4_odd_prefix(void **state)
{
    cidr_list l = parse_ok("172.16.0.0/12,198.51.100.128/25");
    assert_true(cidr_list_allows(&l, "172.16.0.1"));
    assert_true(cidr_list_allows(&l, "172.31.255.255"));
    assert_false(cidr_list_allows(&l, "172.32.0.0"));
    assert_false(cidr_list_allows(&l, "172.15.255.255"));
    assert_true(cidr_list_allows(&l, "198.51.100.128"));
    assert_true(cidr_list_allows(&l, "198.51.100.255"));
    assert_false(cidr_list_allows(&l, "198.51.100.127"));
}

static void test_ipv6_blocks(void **state)
{
    cidr_list l = parse_ok("2001:db8::/32, fd00:1234:5678::/47");
    assert_int_equal(l.blocks[0].family, 6);
    assert_true(cidr_list_allows(&l, "2001:db8::1"));
    assert_true(cidr_list_allows(&l, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert_false(cidr_list_allows(&l, "2001:db9::1"));
    assert_true(cidr_list_allows(&l, "fd00:1234:5678::1"));
    assert_true(cidr_list_allows(&l, "fd00:1234:5679:ffff::1"));
    assert_false(cidr_list_allows(&l, "fd00:1234:567a::1"));
    assert_false(cidr_list_allows(&l, "10.0.0.1"));
    assert_false(cidr_list_allows(&l, "::ffff:10.0.0.1"));
}

static void test_zero_prefix(void **state)
{
    cidr_list l = parse_ok("0.0.0.0/0");
    assert_true(cidr_list_allows(&l, "1.2.3.4"));
    assert_true(cidr_list_allows(&l, "255.255.255.255"));
    assert_true(cidr_list_allows(&l, "::ffff:1.2.3.4"));
    assert_false(cidr_list_allows(&l, "2001:db8::1")); /* families apart */

    l = parse_ok("::/0");
    assert_true(cidr_list_allows(&l, "2001:db8::1"));
    assert_true(cidr_list_allows(&l, "::1"));
    assert_false(cidr_list_allows(&l, "1.2.3.4"));

    l = parse_ok("0.0.0.0/0, ::/0");
    assert_true(cidr_list_allows(&l, "1.2.3.4"));
    assert_true(cidr_list_allows(&l, "fe80::1"));
}

static void test_host_prefixes(void **state)
{
    cidr_list l = parse_ok("192.0.2.7/32, 2001:db8::7/128");
    assert_true(cidr_list_allows(&l, "192.0.2.7"));
    assert_false(cidr_list_allows(&l, "192.0.2.6"));
    assert_false(cidr_list_allows(&l, "192.0.2.8"));
    assert_true(cidr_list_allows(&l, "2001:db8::7"));
    assert_true(cidr_list_allows(&l, "2001:db8:0:0:0:0:0:7"));
    assert_false(cidr_list_allows(&l, "2001:db8::8"));
    assert_false(cidr_list_allows(&l, "2001:db8::6"));
}

static void test_bare_addresses(void **state)
{
    cidr_list l = parse_ok("192.0.2.7,::1");
    assert_int_equal(l.count, 2);
    assert_int_equal(l.blocks[0].prefix, 32);
    assert_int_equal(l.blocks[1].prefix, 128);
    assert_true(cidr_list_allows(&l, "192.0.2.7"));
    assert_false(cidr_list_allows(&l, "192.0.2.70"));
    assert_true(cidr_list_allows(&l, "::1"));
    assert_false(cidr_list_allows(&l, "::2"));
    assert_false(cidr_list_allows(&l, "127.0.0.1"));
}

static void test_mapped_addresses(void **state)
{
    cidr_list l = parse_ok("10.0.0.0/8, 127.0.0.1");
    assert_true(cidr_list_allows(&l, "::ffff:10.1.2.3"));
    assert_true(cidr_list_allows(&l, "::FFFF:10.1.2.3"));
    assert_true(cidr_list_allows(&l, "::ffff:a01:203")); /* hex form */
    assert_true(cidr_list_allows(&l, "::ffff:127.0.0.1"));
    assert_false(cidr_list_allows(&l, "::ffff:11.1.2.3"));
    /* IPv4-compatible (deprecated) and NAT64 forms are not mapped */
    assert_false(cidr_list_allows(&l, "::10.1.2.3"));
    assert_false(cidr_list_allows(&l, "64:ff9b::10.1.2.3"));

    /* a block written in mapped form is the IPv4 block it means */
    l = parse_ok("::ffff:192.0.2.0/120");
    assert_int_equal(l.blocks[0].family, 4);
    assert_int_equal(l.blocks[0].prefix, 24);
    assert_true(cidr_list_allows(&l, "192.0.2.9"));
    assert_true(cidr_list_allows(&l, "::ffff:192.0.2.9"));
    assert_false(cidr_list_allows(&l, "192.0.3.9"));
    l = parse_ok("::ffff:0:0/96");
    assert_true(cidr_list_allows(&l, "8.8.8.8"));
    assert_false(cidr_list_allows(&l, "2001:db8::1"));
    assert_parse_fails("::ffff:0:0/95", "::ffff:0:0/95");
}

static void test_host_bits_refused(void **state)
{
    assert_parse_fails("10.0.0.1/8", "10.0.0.1/8");
    assert_parse_fails("10.0.0.1/8", "10.0.0.0/8"); /* the hint */
    assert_parse_fails("192.168.1.1/24", "192.168.1.0/24");
    assert_parse_fails("10.0.0.0/8, 172.16.0.1/12", "172.16.0.1/12");
    assert_parse_fails("2001:db8::1/32", "2001:db8::/32");
    assert_parse_fails("1.0.0.0/0", "1.0.0.0/0");
    assert_parse_fails("::1/0", "::1/0");
    assert_parse_fails("198.51.100.129/25", "198.51.100.128/25");
}

static void test_garbage_refused(void **state)
{
    assert_parse_fails("localhost", "localhost");
    assert_parse_fails("10.0.0.0/8, bogus", "bogus");
    assert_parse_fails("10.0.0/8", "10.0.0/8");
    assert_parse_fails("10.0.0.256", "10.0.0.256");
    assert_parse_fails("10.0.0.0/33", "10.0.0.0/33");
    assert_parse_fails("2001:db8::/129", "2001:db8::/129");
    assert_parse_fails("10.0.0.0/", "10.0.0.0/");
    assert_parse_fails("10.0.0.0/-1", "10.0.0.0/-1");
    assert_parse_fails("10.0.0.0/+8", "10.0.0.0/+8");
    assert_parse_fails("10.0.0.0/8x", "10.0.0.0/8x");
    assert_parse_fails("10.0.0.0/0008", "10.0.0.0/0008");
    assert_parse_fails("10.0.0.0/8/8", "10.0.0.0/8/8");
    assert_parse_fails("/8", "/8");
    assert_parse_fails("10.0.0.0 /8", "10.0.0.0 /8");
    assert_parse_fails("10.0.0.0 10.0.0.1", "10.0.0.0 10.0.0.1");
    assert_parse_fails("2001:db8:::/32", "2001:db8:::/32");
    assert_parse_fails("fe80::1%eth0", "fe80::1%eth0");
    assert_parse_fails(",", "empty");
    assert_parse_fails(" , ,", "empty");
    /* a very long item: refused, and the message stays bounded */
    char big[2048];
    memset(big, '1', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    kerr err;
    cidr_list l;
    assert_int_not_equal(cidr_list_parse(&l, big, &err), 0);
    assert_true(strlen(err.msg) < 200);
}

static void test_spaces_and_empty_items(void **state)
{
    cidr_list l = parse_ok("  10.0.0.0/8 ,\t192.0.2.1\t,, ::1  ,");
    assert_int_equal(l.count, 3);
    assert_true(cidr_list_allows(&l, "10.9.9.9"));
    assert_true(cidr_list_allows(&l, "192.0.2.1"));
    assert_true(cidr_list_allows(&l, "::1"));
}

static void test_too_many(void **state)
{
    char csv[CIDR_MAX * 20 + 32] = "";
    for (int i = 0; i < CIDR_MAX; i++) {
        char item[24];
        snprintf(item, sizeof item, "%s10.0.%d.0/24", i ? "," : "", i);
        strcat(csv, item);
    }
    cidr_list l = parse_ok(csv);
    assert_int_equal(l.count, CIDR_MAX);
    assert_true(cidr_list_allows(&l, "10.0.63.1"));
    assert_false(cidr_list_allows(&l, "10.0.64.1"));
    strcat(csv, ",10.0.64.0/24");
    assert_parse_fails(csv, "more than");
}

static void test_empty_list_allows_all(void **state)
{
    cidr_list l = parse_ok("");
    assert_int_equal(l.count, 0);
    assert_true(cidr_list_allows(&l, "1.2.3.4"));
    assert_true(cidr_list_allows(&l, "2001:db8::1"));
    l = parse_ok(NULL);
    assert_int_equal(l.count, 0);
    assert_true(cidr_list_allows(&l, "::ffff:1.2.3.4"));
    l = parse_ok("   ");
    assert_int_equal(l.count, 0);
}

static void test_unparsable_address_refused(void **state)
{
    cidr_list l = parse_ok("0.0.0.0/0, ::/0");
    assert_false(cidr_list_allows(&l, NULL));
    assert_false(cidr_list_allows(&l, ""));
    assert_false(cidr_list_allows(&l, "not-an-address"));
    assert_false(cidr_list_allows(&l, "1.2.3"));
    assert_false(cidr_list_allows(&l, "1.2.3.4.5"));
    assert_false(cidr_list_allows(&l, " 1.2.3.4"));
    assert_false(cidr_list_allows(&l, "1.2.3.4/32"));
    assert_false(cidr_list_allows(&l, "[::1]"));
    assert_false(cidr_list_allows(&l, "::g"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_blocks),
        cmocka_unit_test(test_ipv4_odd_prefix),
        cmocka_unit_test(test_ipv6_blocks),
        cmocka_unit_test(test_zero_prefix),
        cmocka_unit_test(test_host_prefixes),
        cmocka_unit_test(test_bare_addresses),
        cmocka_unit_test(test_mapped_addresses),
        cmocka_unit_test(test_host_bits_refused),
        cmocka_unit_test(test_garbage_refused),
        cmocka_unit_test(test_spaces_and_empty_items),
        cmocka_unit_test(test_too_many),
        cmocka_unit_test(test_empty_list_allows_all),
        cmocka_unit_test(test_unparsable_address_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
