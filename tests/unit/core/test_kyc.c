/* Unit tests for core/kyc: the identifier rule shared by the webhook
 * parser, the create request and the P100 client, and the spool record
 * of a delivery. */
#include "testlib.h"

#include <string.h>

#include "core/kyc.h"

static void id_bad(const char *s, unsigned flags, const char *want)
{
    kerr err;
    kerr_clear(&err);
    assert_int_equal(kyc_id_check("externalUserId", s, flags, &err), KERR_INVALID);
    if (strstr(err.msg, want) == NULL || strstr(err.msg, "'externalUserId'") == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
}

static void test_id_check(void **state)
{
    char id[KYC_ID_MAX + 2];
    memset(id, 'a', KYC_ID_MAX);
    id[KYC_ID_MAX] = '\0';
    assert_int_equal(kyc_id_check("externalUserId", id, 0, NULL), 0);
    assert_int_equal(kyc_id_check("externalUserId", id, KYC_ID_ASCII, NULL), 0);
    assert_int_equal(kyc_id_check("externalUserId", "\xc3\xa9t\xc3\xa9", 0, NULL), 0);
    id[KYC_ID_MAX] = 'a';
    id[KYC_ID_MAX + 1] = '\0';
    id_bad(id, 0, "is longer than 128 bytes");
    id_bad("", 0, "is empty");
    id_bad(NULL, 0, "is empty");
    id_bad("a\nb", 0, "contains control characters");
    id_bad("a\x7f", 0, "contains control characters");
    id_bad("a\nb", KYC_ID_ASCII, "must be printable ASCII");
    id_bad("\xc3\xa9t\xc3\xa9", KYC_ID_ASCII, "must be printable ASCII");
    assert_int_equal(kyc_id_check("x", "", 0, NULL), KERR_INVALID);
}

static void test_record_roundtrip(void **state)
{
    kyc_delivery d, back;
    memset(&d, 0, sizeof d);
    d.kind = KYC_KIND_POA_STATUS;
    strcpy(d.remote_addr, "2001:db8::1");
    strcpy(d.request_id, "0123456789abcdef0123456789abcdef");
    d.body = "{\"a\":1}";
    d.body_len = strlen(d.body);
    kbuf b;
    kbuf_init(&b);
    assert_int_equal(kyc_delivery_encode(&d, 1700000000123456LL, &b), 0);
    assert_int_equal(b.len, 1 + 1 + 8 + 1 + 11 + 1 + 32 + 4 + d.body_len);
    assert_memory_equal(b.data + 2, "\x40\x22\x20\x18\x24\x0a\x06\x00", 8);
    assert_int_equal(kyc_delivery_decode(b.data, b.len, &back, NULL), 0);
    assert_int_equal(back.kind, KYC_KIND_POA_STATUS);
    assert_true(back.received_us == 1700000000123456LL);
    assert_string_equal(back.remote_addr, d.remote_addr);
    assert_string_equal(back.request_id, d.request_id);
    assert_int_equal(back.body_len, d.body_len);
    assert_memory_equal(back.body, d.body, d.body_len);
    assert_int_equal(kyc_delivery_decode(b.data, b.len - 1, &back, NULL), KERR_INVALID);
    kbuf_deinit(&b);
}

/* A quarantined delivery's record says so (version 2, with its reason);
 * an ordinary one stays version 1. */
static void test_record_quarantined(void **state)
{
    kyc_delivery d, back;
    memset(&d, 0, sizeof d);
    d.kind = KYC_KIND_KYC_STATUS;
    strcpy(d.remote_addr, "127.0.0.1");
    strcpy(d.request_id, "0123456789abcdef0123456789abcdef");
    strcpy(d.quarantine, "field 'attemptStatus' must be a string");
    d.body = "{\"attemptStatus\":1}";
    d.body_len = strlen(d.body);
    kbuf b;
    kbuf_init(&b);
    assert_int_equal(kyc_delivery_encode(&d, 1700000000123456LL, &b), 0);
    assert_int_equal((unsigned char)b.data[0], 2);
    assert_int_equal(b.len, 1 + 1 + 8 + 1 + 9 + 1 + 32 + 1 + strlen(d.quarantine) + 4 + d.body_len);
    assert_int_equal(kyc_delivery_decode(b.data, b.len, &back, NULL), 0);
    assert_string_equal(back.quarantine, d.quarantine);
    assert_string_equal(back.request_id, d.request_id);
    assert_int_equal(back.body_len, d.body_len);
    assert_memory_equal(back.body, d.body, d.body_len);
    assert_int_equal(kyc_delivery_decode(b.data, b.len - 1, &back, NULL), KERR_INVALID);
    /* a version 1 record decodes with no reason */
    kbuf_reset(&b);
    d.quarantine[0] = '\0';
    assert_int_equal(kyc_delivery_encode(&d, 1, &b), 0);
    assert_int_equal((unsigned char)b.data[0], 1);
    strcpy(back.quarantine, "stale");
    assert_int_equal(kyc_delivery_decode(b.data, b.len, &back, NULL), 0);
    assert_string_equal(back.quarantine, "");
    /* version 3 is unknown */
    b.data[0] = 3;
    assert_int_equal(kyc_delivery_decode(b.data, b.len, &back, NULL), KERR_INVALID);
    kbuf_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_check),
        cmocka_unit_test(test_record_roundtrip),
        cmocka_unit_test(test_record_quarantined),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
