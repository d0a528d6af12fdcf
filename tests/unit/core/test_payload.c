/* Unit tests for core/payload: webhook bodies of every kind, accepted and
 * refused (the UTF-8 validator itself is tested in test_json.c). Every refusal is checked for the code,
 * a message that names the field (where there is one) and never quotes the
 * body, and an output struct left untouched. */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/kyc.h"
#include "core/payload.h"

#define UID "bca65c48-df49-4831-a7b2-de7903321581"
#define SENTINEL 0xA5

/* The documented example of each kind (docs/p100-api.md). */
#define KYC_EXAMPLE                                                                                \
    "{\n  \"externalUserId\": \"" UID "\",\n  \"verificationStatus\": \"NOT_VERIFIED\",\n"         \
    "  \"attemptStatus\": \"REJECTED_BY_PROVIDER\",\n  \"rejectionReason\": \"NO_FACE_FOUND\"\n}"
#define POA_EXAMPLE "{\"externalUserId\": \"" UID "\", \"status\": \"WAITING\"}"
#define FILE_EXAMPLE "{\"externalUserId\": \"" UID "\", \"status\": \"ADDED\"}"
#define USER_EXAMPLE "{\"externalUserId\": \"" UID "\", \"status\": \"ACTIVE\"}"

/* ---- helpers */

static void sentinel(kyc_delivery *d)
{
    memset(d, SENTINEL, sizeof *d);
}

/* Parse `len` bytes that must be accepted; d is filled with the sentinel
 * first so that fields payload_parse must not touch can be checked. */
static void parse_ok_n(enum kyc_kind kind, const char *body, size_t len, kyc_delivery *d)
{
    kerr err;
    kerr_clear(&err);
    sentinel(d);
    int rc = payload_parse(kind, body, len, d, &err);
    if (rc != 0)
        fail_msg("payload_parse refused a valid body: rc=%d msg=%s", rc, err.msg);
    assert_int_equal(d->kind, kind);
    /* fields other than the parsed ones are left alone */
    unsigned char s[sizeof d->body_sha256];
    memset(s, SENTINEL, sizeof s);
    assert_memory_equal(d->remote_addr, s, sizeof d->remote_addr);
    assert_memory_equal(d->request_id, s, sizeof d->request_id);
    assert_memory_equal(d->body_sha256, s, sizeof d->body_sha256);
}

static void parse_ok(enum kyc_kind kind, const char *body, kyc_delivery *d)
{
    parse_ok_n(kind, body, strlen(body), d);
}

static const void *find_bytes(const void *hay, size_t hlen, const void *needle, size_t nlen)
{
    if (nlen == 0 || nlen > hlen)
        return NULL;
    return memmem(hay, hlen, needle, nlen);
}

/* The body must be refused with KERR_INVALID, a message that contains
 * `want` (a field name, or a phrase; NULL: any non-empty message), never
 * the body or the user id, and d untouched. */
static void refuse_at(int line, enum kyc_kind kind, const char *body, size_t len, const char *want)
{
    kyc_delivery d, before;
    sentinel(&d);
    before = d;
    kerr err;
    kerr_clear(&err);
    int rc = payload_parse(kind, body, len, &d, &err);
    if (rc != KERR_INVALID)
        fail_msg("line %d: expected KERR_INVALID, got rc=%d (msg=%s) for body of %zu bytes", line,
                 rc, err.msg, len);
    assert_int_equal(err.code, KERR_INVALID);
    size_t mlen = strlen(err.msg);
    assert_true(mlen > 0);
    if (want && strstr(err.msg, want) == NULL)
        fail_msg("line %d: message '%s' does not name '%s'", line, err.msg, want);
    if (len >= 4)
        assert_null(find_bytes(err.msg, mlen, body, len));
    assert_null(strstr(err.msg, UID));
    assert_null(strstr(err.msg, "SECRETVALUE"));
    assert_memory_equal(&d, &before, sizeof d);
}

#define refuse_n(kind, body, len, want) refuse_at(__LINE__, kind, body, len, want)
#define refuse(kind, body, want) refuse_at(__LINE__, kind, body, strlen(body), want)

/* Build a KYC body with the given raw JSON values (NULL: field absent). */
static char *kyc_body(const char *uid, const char *vs, const char *as, const char *rr)
{
    size_t cap = 256 + (uid ? strlen(uid) : 0) + (vs ? strlen(vs) : 0) + (as ? strlen(as) : 0) +
                 (rr ? strlen(rr) : 0);
    char *b = malloc(cap);
    assert_non_null(b);
    size_t n = (size_t)snprintf(b, cap, "{");
    const char *sep = "";
    if (uid) {
        n += (size_t)snprintf(b + n, cap - n, "%s\"externalUserId\":%s", sep, uid);
        sep = ",";
    }
    if (vs) {
        n += (size_t)snprintf(b + n, cap - n, "%s\"verificationStatus\":%s", sep, vs);
        sep = ",";
    }
    if (as) {
        n += (size_t)snprintf(b + n, cap - n, "%s\"attemptStatus\":%s", sep, as);
        sep = ",";
    }
    if (rr)
        n += (size_t)snprintf(b + n, cap - n, "%s\"rejectionReason\":%s", sep, rr);
    snprintf(b + n, cap - n, "}");
    return b;
}

/* A JSON string literal of n copies of c, quoted. */
static char *repeat_str(char c, size_t n)
{
    char *s = malloc(n + 3);
    assert_non_null(s);
    s[0] = '"';
    memset(s + 1, c, n);
    s[n + 1] = '"';
    s[n + 2] = '\0';
    return s;
}

/* ---- accepted bodies */

static void test_kyc_documented_example(void **state)
{
    kyc_delivery d;
    parse_ok(KYC_KIND_KYC_STATUS, KYC_EXAMPLE, &d);
    assert_string_equal(d.external_user_id, UID);
    assert_string_equal(d.status.verification, "NOT_VERIFIED");
    assert_string_equal(d.status.attempt, "REJECTED_BY_PROVIDER");
    assert_string_equal(d.status.reason, "NO_FACE_FOUND");
    assert_string_equal(d.other_status, "");
    assert_string_equal(d.unknown_fields, "");
}

static void test_other_kinds_documented_examples(void **state)
{
    static const struct {
        enum kyc_kind kind;
        const char *body, *status;
    } cases[] = {
        {KYC_KIND_POA_STATUS, POA_EXAMPLE, "WAITING"},
        {KYC_KIND_KYC_FILE, FILE_EXAMPLE, "ADDED"},
        {KYC_KIND_USER_STATUS, USER_EXAMPLE, "ACTIVE"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kyc_delivery d;
        parse_ok(cases[i].kind, cases[i].body, &d);
        assert_string_equal(d.external_user_id, UID);
        assert_string_equal(d.other_status, cases[i].status);
        assert_string_equal(d.unknown_fields, "");
        /* the KYC status of another kind is empty, not left as garbage */
        assert_true(kyc_status_empty(&d.status));
        assert_string_equal(d.status.reason, "");
    }
}

static void test_other_kinds_all_documented_values(void **state)
{
    static const struct {
        enum kyc_kind kind;
        const char *status;
    } cases[] = {
        {KYC_KIND_POA_STATUS, "WAITING"},  {KYC_KIND_POA_STATUS, "APPROVED"},
        {KYC_KIND_POA_STATUS, "REJECTED"}, {KYC_KIND_POA_STATUS, "QUESTIONED"},
        {KYC_KIND_KYC_FILE, "ADDED"},      {KYC_KIND_KYC_FILE, "ERROR"},
        {KYC_KIND_USER_STATUS, "ACTIVE"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"externalUserId\":\"u1\",\"status\":\"%s\"}",
                 cases[i].status);
        kyc_delivery d;
        parse_ok(cases[i].kind, body, &d);
        assert_string_equal(d.other_status, cases[i].status);
        assert_string_equal(d.unknown_fields, "");
    }
}

static void test_kyc_all_documented_values(void **state)
{
    static const char *vs[] = {"NOT_VERIFIED", "VERIFIED", "EXPIRED"};
    static const char *as[] = {"PENDING", "VERIFICATION", "REJECTED_BY_PROVIDER", "SUCCESSFUL"};
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 4; j++) {
            char body[256];
            snprintf(body, sizeof body,
                     "{\"externalUserId\":\"u1\",\"verificationStatus\":\"%s\","
                     "\"attemptStatus\":\"%s\"}",
                     vs[i], as[j]);
            kyc_delivery d;
            parse_ok(KYC_KIND_KYC_STATUS, body, &d);
            assert_string_equal(d.status.verification, vs[i]);
            assert_string_equal(d.status.attempt, as[j]);
            assert_string_equal(d.unknown_fields, "");
        }
}

static void test_rejection_reason_absent_null_string(void **state)
{
    kyc_delivery d;
    parse_ok(KYC_KIND_KYC_STATUS,
             "{\"externalUserId\":\"u1\",\"verificationStatus\":\"VERIFIED\","
             "\"attemptStatus\":\"SUCCESSFUL\"}",
             &d);
    assert_string_equal(d.status.reason, "");
    parse_ok(KYC_KIND_KYC_STATUS,
             "{\"externalUserId\":\"u1\",\"verificationStatus\":\"VERIFIED\","
             "\"attemptStatus\":\"SUCCESSFUL\",\"rejectionReason\":null}",
             &d);
    assert_string_equal(d.status.reason, "");
    parse_ok(KYC_KIND_KYC_STATUS,
             "{\"externalUserId\":\"u1\",\"verificationStatus\":\"NOT_VERIFIED\","
             "\"attemptStatus\":\"REJECTED_BY_PROVIDER\",\"rejectionReason\":\"DOC_EXPIRED\"}",
             &d);
    assert_string_equal(d.status.reason, "DOC_EXPIRED");
    /* an undocumented reason is not "unknown": P100 does not enumerate them */
    assert_string_equal(d.unknown_fields, "");
    /* an empty reason string is accepted as "" */
    parse_ok(KYC_KIND_KYC_STATUS,
             "{\"externalUserId\":\"u1\",\"verificationStatus\":\"NOT_VERIFIED\","
             "\"attemptStatus\":\"PENDING\",\"rejectionReason\":\"\"}",
             &d);
    assert_string_equal(d.status.reason, "");
}

static void test_extra_fields_ignored(void **state)
{
    kyc_delivery d;
    parse_ok(KYC_KIND_KYC_STATUS,
             "{\"eventTime\":\"2024-01-01T00:00:00Z\",\"externalUserId\":\"u1\","
             "\"nested\":{\"a\":[1,2,{\"b\":null}],\"externalUserId\":\"other\"},"
             "\"verificationStatus\":\"VERIFIED\",\"n\":1.5e3,\"t\":true,\"f\":false,\"z\":null,"
             "\"attemptStatus\":\"SUCCESSFUL\",\"arr\":[]}",
             &d);
    assert_string_equal(d.external_user_id, "u1");
    assert_string_equal(d.status.verification, "VERIFIED");
    assert_string_equal(d.unknown_fields, "");
    /* the other kinds ignore KYC fields */
    parse_ok(KYC_KIND_POA_STATUS,
             "{\"externalUserId\":\"u1\",\"status\":\"APPROVED\","
             "\"verificationStatus\":42,\"attemptStatus\":{}}",
             &d);
    assert_string_equal(d.other_status, "APPROVED");
    assert_true(kyc_status_empty(&d.status));
}

static void test_whitespace_around(void **state)
{
    kyc_delivery d;
    parse_ok(KYC_KIND_KYC_STATUS, " \t\r\n" KYC_EXAMPLE "\r\n\t ", &d);
    assert_string_equal(d.external_user_id, UID);
    parse_ok(KYC_KIND_USER_STATUS, "\n\n" USER_EXAMPLE "\n", &d);
    assert_string_equal(d.other_status, "ACTIVE");
}

static void test_undocumented_values_kept(void **state)
{
    kyc_delivery d;
    parse_ok(KYC_KIND_KYC_STATUS,
             "{\"externalUserId\":\"u1\",\"verificationStatus\":\"PARTIALLY_VERIFIED\","
             "\"attemptStatus\":\"SUCCESSFUL\"}",
             &d);
    assert_string_equal(d.status.verification, "PARTIALLY_VERIFIED");
    assert_string_equal(d.unknown_fields, "verificationStatus");

    parse_ok(KYC_KIND_KYC_STATUS,
             "{\"externalUserId\":\"u1\",\"verificationStatus\":\"VERIFIED\","
             "\"attemptStatus\":\"MANUAL_REVIEW\"}",
             &d);
    assert_string_equal(d.status.attempt, "MANUAL_REVIEW");
    assert_string_equal(d.unknown_fields, "attemptStatus");

    parse_ok(KYC_KIND_KYC_STATUS,
             "{\"externalUserId\":\"u1\",\"verificationStatus\":\"verified\","
             "\"attemptStatus\":\"pending\"}",
             &d);
    assert_string_equal(d.status.verification, "verified");
    assert_string_equal(d.status.attempt, "pending");
    assert_string_equal(d.unknown_fields, "verificationStatus,attemptStatus");

    parse_ok(KYC_KIND_POA_STATUS, "{\"externalUserId\":\"u1\",\"status\":\"ESCALATED\"}", &d);
    assert_string_equal(d.other_status, "ESCALATED");
    assert_string_equal(d.unknown_fields, "status");

    /* a value documented for another kind is unknown for this one */
    parse_ok(KYC_KIND_KYC_FILE, "{\"externalUserId\":\"u1\",\"status\":\"ACTIVE\"}", &d);
    assert_string_equal(d.unknown_fields, "status");
    parse_ok(KYC_KIND_USER_STATUS, "{\"externalUserId\":\"u1\",\"status\":\"SUSPENDED\"}", &d);
    assert_string_equal(d.other_status, "SUSPENDED");
    assert_string_equal(d.unknown_fields, "status");
}

static void test_max_lengths_accepted(void **state)
{
    kyc_delivery d;
    char *id = repeat_str('i', KYC_ID_MAX);
    char *vs = repeat_str('V', KYC_VALUE_MAX);
    char *rr = repeat_str('R', KYC_REASON_MAX);
    char *b = kyc_body(id, vs, "\"PENDING\"", rr);
    parse_ok(KYC_KIND_KYC_STATUS, b, &d);
    assert_int_equal(strlen(d.external_user_id), KYC_ID_MAX);
    assert_int_equal(strlen(d.status.verification), KYC_VALUE_MAX);
    assert_int_equal(strlen(d.status.reason), KYC_REASON_MAX);
    assert_string_equal(d.unknown_fields, "verificationStatus");
    free(b);

    char *st = repeat_str('S', KYC_VALUE_MAX);
    char body[512];
    snprintf(body, sizeof body, "{\"externalUserId\":%s,\"status\":%s}", id, st);
    parse_ok(KYC_KIND_POA_STATUS, body, &d);
    assert_int_equal(strlen(d.other_status), KYC_VALUE_MAX);
    free(st);
    free(rr);
    free(vs);
    free(id);
}

static void test_utf8_values_accepted(void **state)
{
    kyc_delivery d;
    /* raw multi-byte UTF-8 and escapes (including a surrogate pair) */
    parse_ok(KYC_KIND_KYC_STATUS,
             "{\"externalUserId\":\"caf\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x98\x80\","
             "\"verificationStatus\":\"VERIFIED\",\"attemptStatus\":\"SUCCESSFUL\","
             "\"rejectionReason\":\"\\u00e9\\ud83d\\ude00\"}",
             &d);
    assert_string_equal(d.external_user_id, "caf\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x98\x80");
    assert_string_equal(d.status.reason, "\xc3\xa9\xf0\x9f\x98\x80");
}

static void test_escaped_backslash_u0000_accepted(void **state)
{
    /* JSON text a\\u0000 is a backslash followed by "u0000": legal */
    kyc_delivery d;
    parse_ok(KYC_KIND_USER_STATUS, "{\"externalUserId\":\"a\\\\u0000\",\"status\":\"ACTIVE\"}", &d);
    assert_string_equal(d.external_user_id, "a\\u0000");
    /* also in an ignored field and in a key */
    parse_ok(KYC_KIND_USER_STATUS,
             "{\"x\\\\u0000\":\"\\\\u0000\",\"externalUserId\":\"u\",\"status\":\"ACTIVE\"}", &d);
}

static char *nested_body(int depth)
{
    /* depth counts the top-level object: 1 + (depth - 1) nested arrays */
    size_t cap = 128 + 2 * (size_t)depth;
    char *b = malloc(cap);
    assert_non_null(b);
    size_t n = (size_t)snprintf(b, cap, "{\"externalUserId\":\"u\",\"status\":\"ACTIVE\",\"x\":");
    for (int i = 1; i < depth; i++)
        b[n++] = '[';
    b[n++] = '1';
    for (int i = 1; i < depth; i++)
        b[n++] = ']';
    b[n++] = '}';
    b[n] = '\0';
    return b;
}

static void test_nesting(void **state)
{
    kyc_delivery d;
    char *b = nested_body(10);
    parse_ok(KYC_KIND_USER_STATUS, b, &d);
    free(b);
    b = nested_body(32); /* the limit itself */
    parse_ok(KYC_KIND_USER_STATUS, b, &d);
    free(b);
    b = nested_body(33);
    refuse(KYC_KIND_USER_STATUS, b, "nested");
    free(b);
    b = nested_body(5000);
    refuse(KYC_KIND_USER_STATUS, b, "nested");
    free(b);
    /* objects count as well as arrays */
    char obj[1024];
    size_t n = (size_t)snprintf(obj, sizeof obj, "{\"externalUserId\":\"u\",\"status\":\"ACTIVE\"");
    for (int i = 0; i < 32; i++)
        n += (size_t)snprintf(obj + n, sizeof obj - n, ",\"k\":{\"a\":1");
    for (int i = 0; i < 32; i++)
        obj[n++] = '}';
    obj[n++] = '}';
    obj[n] = '\0';
    refuse(KYC_KIND_USER_STATUS, obj, "nested");
    /* brackets inside strings are not nesting */
    char *s = repeat_str('[', 100);
    char body[512];
    snprintf(body, sizeof body, "{\"externalUserId\":\"u\",\"status\":\"ACTIVE\",\"x\":%s}", s);
    parse_ok(KYC_KIND_USER_STATUS, body, &d);
    free(s);
}

static void test_many_garbage_fields_fast(void **state)
{
    enum { nfields = 10000 };
    /* static, so that a failed assertion (a longjmp) leaks nothing */
    static char b[(size_t)nfields * 32 + 256];
    size_t cap = sizeof b;
    size_t n = (size_t)snprintf(b, cap, "{");
    for (int i = 0; i < nfields; i++)
        n += (size_t)snprintf(b + n, cap - n, "\"g%d\":%s,", i,
                              (i % 3 == 0)   ? "\"junk\""
                              : (i % 3 == 1) ? "[1,{}]"
                                             : "null");
    snprintf(b + n, cap - n,
             "\"externalUserId\":\"u1\",\"verificationStatus\":\"VERIFIED\","
             "\"attemptStatus\":\"SUCCESSFUL\"}");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    kyc_delivery d;
    parse_ok(KYC_KIND_KYC_STATUS, b, &d);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    print_message("%d fields (%zu bytes) parsed in %.3f s\n", nfields, strlen(b), s);
    /* Fails under ASan (about 1.1 s): the duplicate-key check in payload.c
     * compares every pair of top-level keys, O(n^2). Reported, not hidden. */
    assert_true(s < 1.0);
    assert_string_equal(d.external_user_id, "u1");
}

/* ---- refused bodies */

static void test_refuse_empty_and_not_json(void **state)
{
    refuse_n(KYC_KIND_KYC_STATUS, "", 0, "empty");
    refuse_n(KYC_KIND_KYC_STATUS, KYC_EXAMPLE, 0, "empty");
    refuse(KYC_KIND_KYC_STATUS, "   \r\n", NULL);
    refuse(KYC_KIND_KYC_STATUS, "hello world", NULL);
    refuse(KYC_KIND_KYC_STATUS, "externalUserId=u1&status=ACTIVE", NULL);
    refuse(KYC_KIND_KYC_STATUS, "{\"externalUserId\":\"u1\",", NULL);
    refuse(KYC_KIND_KYC_STATUS, "{\"externalUserId\":\"u1\" \"status\":\"x\"}", NULL);
    refuse(KYC_KIND_KYC_STATUS, "{'externalUserId':'u1'}", NULL);
    refuse(KYC_KIND_POA_STATUS, "{\"externalUserId\":\"u1\",\"status\":\"WAITING\",}", NULL);
    /* the documented example cut short */
    refuse_n(KYC_KIND_KYC_STATUS, KYC_EXAMPLE, strlen(KYC_EXAMPLE) - 1, NULL);
}

static void test_refuse_top_level_not_object(void **state)
{
    refuse(KYC_KIND_KYC_STATUS, "[" KYC_EXAMPLE "]", "object");
    refuse(KYC_KIND_KYC_STATUS, "[]", "object");
    refuse(KYC_KIND_KYC_STATUS, "\"" UID "\"", "object");
    refuse(KYC_KIND_KYC_STATUS, "42", "object");
    refuse(KYC_KIND_KYC_STATUS, "-1.5e10", "object");
    refuse(KYC_KIND_USER_STATUS, "true", "object");
    refuse(KYC_KIND_USER_STATUS, "null", "object");
}

static void test_refuse_trailing_garbage(void **state)
{
    refuse(KYC_KIND_KYC_STATUS, KYC_EXAMPLE "x", "trailing");
    refuse(KYC_KIND_KYC_STATUS, KYC_EXAMPLE " {}", "trailing");
    refuse(KYC_KIND_KYC_STATUS, KYC_EXAMPLE KYC_EXAMPLE, "trailing");
    refuse(KYC_KIND_POA_STATUS, POA_EXAMPLE "}", NULL);
    refuse(KYC_KIND_POA_STATUS, POA_EXAMPLE "\n,", "trailing");
    refuse(KYC_KIND_POA_STATUS, POA_EXAMPLE "\v", "trailing");
}

static void test_refuse_missing_fields(void **state)
{
    refuse(KYC_KIND_KYC_STATUS,
           "{\"verificationStatus\":\"VERIFIED\",\"attemptStatus\":\"SUCCESSFUL\"}",
           "externalUserId");
    refuse(KYC_KIND_KYC_STATUS, "{\"externalUserId\":\"" UID "\",\"attemptStatus\":\"SUCCESSFUL\"}",
           "verificationStatus");
    refuse(KYC_KIND_KYC_STATUS,
           "{\"externalUserId\":\"" UID "\",\"verificationStatus\":\"VERIFIED\"}", "attemptStatus");
    refuse(KYC_KIND_KYC_STATUS, "{}", "externalUserId");
    /* the KYC kind does not take `status` for verificationStatus */
    refuse(KYC_KIND_KYC_STATUS, POA_EXAMPLE, "verificationStatus");
    /* case matters */
    refuse(KYC_KIND_KYC_STATUS,
           "{\"ExternalUserId\":\"u1\",\"verificationStatus\":\"VERIFIED\","
           "\"attemptStatus\":\"SUCCESSFUL\"}",
           "externalUserId");
    /* null for a required field counts as missing */
    refuse(KYC_KIND_KYC_STATUS,
           "{\"externalUserId\":\"u1\",\"verificationStatus\":null,\"attemptStatus\":\"PENDING\"}",
           "verificationStatus");
    refuse(KYC_KIND_KYC_STATUS,
           "{\"externalUserId\":null,\"verificationStatus\":\"VERIFIED\","
           "\"attemptStatus\":\"PENDING\"}",
           "externalUserId");
    enum kyc_kind others[] = {KYC_KIND_POA_STATUS, KYC_KIND_KYC_FILE, KYC_KIND_USER_STATUS};
    for (size_t i = 0; i < 3; i++) {
        refuse(others[i], "{\"externalUserId\":\"" UID "\"}", "'status'");
        refuse(others[i], "{\"externalUserId\":\"" UID "\",\"status\":null}", "'status'");
        refuse(others[i], "{\"status\":\"ACTIVE\"}", "externalUserId");
        refuse(others[i], KYC_EXAMPLE, "'status'");
    }
}

static void test_refuse_empty_values(void **state)
{
    refuse(KYC_KIND_KYC_STATUS,
           "{\"externalUserId\":\"\",\"verificationStatus\":\"VERIFIED\","
           "\"attemptStatus\":\"SUCCESSFUL\"}",
           "externalUserId");
    refuse(KYC_KIND_USER_STATUS, "{\"externalUserId\":\"\",\"status\":\"ACTIVE\"}",
           "externalUserId");
    refuse(KYC_KIND_KYC_STATUS,
           "{\"externalUserId\":\"u1\",\"verificationStatus\":\"\",\"attemptStatus\":\"PENDING\"}",
           "verificationStatus");
    refuse(KYC_KIND_POA_STATUS, "{\"externalUserId\":\"u1\",\"status\":\"\"}", "'status'");
}

static void test_refuse_wrong_types(void **state)
{
    static const char *bad[] = {"123",           "0",  "-1.5",    "true", "false", "{}",
                                "{\"a\":\"b\"}", "[]", "[\"u1\"]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *b = kyc_body(bad[i], "\"VERIFIED\"", "\"SUCCESSFUL\"", NULL);
        refuse(KYC_KIND_KYC_STATUS, b, "externalUserId");
        free(b);
        b = kyc_body("\"u1\"", bad[i], "\"SUCCESSFUL\"", NULL);
        refuse(KYC_KIND_KYC_STATUS, b, "verificationStatus");
        free(b);
        b = kyc_body("\"u1\"", "\"VERIFIED\"", bad[i], NULL);
        refuse(KYC_KIND_KYC_STATUS, b, "attemptStatus");
        free(b);
        b = kyc_body("\"u1\"", "\"NOT_VERIFIED\"", "\"REJECTED_BY_PROVIDER\"", bad[i]);
        refuse(KYC_KIND_KYC_STATUS, b, "rejectionReason");
        free(b);
        char body[256];
        snprintf(body, sizeof body, "{\"externalUserId\":\"u1\",\"status\":%s}", bad[i]);
        refuse(KYC_KIND_POA_STATUS, body, "'status'");
        refuse(KYC_KIND_KYC_FILE, body, "'status'");
        refuse(KYC_KIND_USER_STATUS, body, "'status'");
    }
}

static void test_refuse_too_long(void **state)
{
    char *id = repeat_str('i', KYC_ID_MAX + 1);
    char *b = kyc_body(id, "\"VERIFIED\"", "\"SUCCESSFUL\"", NULL);
    refuse(KYC_KIND_KYC_STATUS, b, "externalUserId");
    free(b);
    free(id);
    /* counted in bytes, not characters: 65 two-byte characters = 130 bytes */
    char mb[2 * 65 + 3];
    size_t n = 0;
    mb[n++] = '"';
    for (int i = 0; i < 65; i++) {
        mb[n++] = '\xc3';
        mb[n++] = '\xa9';
    }
    mb[n++] = '"';
    mb[n] = '\0';
    b = kyc_body(mb, "\"VERIFIED\"", "\"SUCCESSFUL\"", NULL);
    refuse(KYC_KIND_KYC_STATUS, b, "externalUserId");
    free(b);

    char *v = repeat_str('V', KYC_VALUE_MAX + 1);
    b = kyc_body("\"u1\"", v, "\"SUCCESSFUL\"", NULL);
    refuse(KYC_KIND_KYC_STATUS, b, "verificationStatus");
    free(b);
    b = kyc_body("\"u1\"", "\"VERIFIED\"", v, NULL);
    refuse(KYC_KIND_KYC_STATUS, b, "attemptStatus");
    free(b);
    char body[512];
    snprintf(body, sizeof body, "{\"externalUserId\":\"u1\",\"status\":%s}", v);
    refuse(KYC_KIND_POA_STATUS, body, "'status'");
    refuse(KYC_KIND_USER_STATUS, body, "'status'");
    free(v);
    char *r = repeat_str('R', KYC_REASON_MAX + 1);
    b = kyc_body("\"u1\"", "\"NOT_VERIFIED\"", "\"REJECTED_BY_PROVIDER\"", r);
    refuse(KYC_KIND_KYC_STATUS, b, "rejectionReason");
    free(b);
    free(r);
}

static void test_refuse_control_characters(void **state)
{
    /* escaped control characters decode to control bytes */
    static const char *esc[] = {"\"u\\u0001x\"", "\"u\\nx\"",    "\"u\\tx\"", "\"u\\rx\"",
                                "\"u\\u001f\"",  "\"u\\u007f\"", "\"\\b\""};
    for (size_t i = 0; i < sizeof esc / sizeof esc[0]; i++) {
        char *b = kyc_body(esc[i], "\"VERIFIED\"", "\"SUCCESSFUL\"", NULL);
        refuse(KYC_KIND_KYC_STATUS, b, "externalUserId");
        free(b);
        b = kyc_body("\"u1\"", esc[i], "\"SUCCESSFUL\"", NULL);
        refuse(KYC_KIND_KYC_STATUS, b, "verificationStatus");
        free(b);
        b = kyc_body("\"u1\"", "\"VERIFIED\"", esc[i], NULL);
        refuse(KYC_KIND_KYC_STATUS, b, "attemptStatus");
        free(b);
        b = kyc_body("\"u1\"", "\"NOT_VERIFIED\"", "\"REJECTED_BY_PROVIDER\"", esc[i]);
        refuse(KYC_KIND_KYC_STATUS, b, "rejectionReason");
        free(b);
        char body[256];
        snprintf(body, sizeof body, "{\"externalUserId\":\"u1\",\"status\":%s}", esc[i]);
        refuse(KYC_KIND_POA_STATUS, body, "'status'");
    }
    /* raw control bytes inside a string (invalid JSON as well) */
    refuse(KYC_KIND_USER_STATUS, "{\"externalUserId\":\"u\x01x\",\"status\":\"ACTIVE\"}", NULL);
    refuse(KYC_KIND_USER_STATUS, "{\"externalUserId\":\"u\nx\",\"status\":\"ACTIVE\"}", NULL);
    refuse(KYC_KIND_USER_STATUS, "{\"externalUserId\":\"u\x7fx\",\"status\":\"ACTIVE\"}", NULL);
}

static void test_refuse_duplicate_keys(void **state)
{
    refuse(KYC_KIND_KYC_STATUS,
           "{\"externalUserId\":\"u1\",\"externalUserId\":\"u2\","
           "\"verificationStatus\":\"VERIFIED\",\"attemptStatus\":\"SUCCESSFUL\"}",
           "externalUserId");
    refuse(KYC_KIND_KYC_STATUS,
           "{\"externalUserId\":\"u1\",\"verificationStatus\":\"NOT_VERIFIED\","
           "\"attemptStatus\":\"PENDING\",\"verificationStatus\":\"VERIFIED\"}",
           "verificationStatus");
    refuse(KYC_KIND_POA_STATUS,
           "{\"externalUserId\":\"u1\",\"status\":\"WAITING\",\"status\":\"APPROVED\"}",
           "'status'");
    /* duplicates among ignored fields too */
    refuse(KYC_KIND_POA_STATUS,
           "{\"x\":1,\"externalUserId\":\"u1\",\"status\":\"WAITING\",\"x\":2}", "duplicate");
    /* the same value twice is still a duplicate */
    refuse(KYC_KIND_USER_STATUS,
           "{\"externalUserId\":\"u1\",\"status\":\"ACTIVE\",\"status\":\"ACTIVE\"}", "'status'");
}

static void test_refuse_invalid_utf8(void **state)
{
    static const char *bad[] = {
        "\x80",                     /* lone continuation byte */
        "\xbf",                     /* lone continuation byte */
        "\xc0\xaf",                 /* overlong '/' */
        "\xc1\xbf",                 /* overlong */
        "\xe0\x80\xaf",             /* overlong, 3 bytes */
        "\xf0\x80\x80\xaf",         /* overlong, 4 bytes */
        "\xed\xa0\x80",             /* U+D800 high surrogate */
        "\xed\xbf\xbf",             /* U+DFFF low surrogate */
        "\xed\xa0\xbd\xed\xb8\x80", /* CESU-8 surrogate pair */
        "\xe2\x82",                 /* truncated euro sign */
        "\xf0\x9f\x98",             /* truncated emoji */
        "\xc3",                     /* truncated */
        "\xf4\x90\x80\x80",         /* above U+10FFFF */
        "\xf8\x88\x80\x80\x80",     /* 5-byte form */
        "\xfe",
        "\xff",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[256];
        /* inside the id ... */
        snprintf(body, sizeof body, "{\"externalUserId\":\"u%sx\",\"status\":\"ACTIVE\"}", bad[i]);
        refuse(KYC_KIND_USER_STATUS, body, "UTF-8");
        /* ... in an ignored field ... */
        snprintf(body, sizeof body, "{\"externalUserId\":\"u\",\"status\":\"ACTIVE\",\"x\":\"%s\"}",
                 bad[i]);
        refuse(KYC_KIND_USER_STATUS, body, "UTF-8");
        /* ... and at the very end of the body (truncated sequences) */
        snprintf(body, sizeof body, "{\"externalUserId\":\"u\",\"status\":\"ACTIVE\"}%s", bad[i]);
        refuse(KYC_KIND_USER_STATUS, body, NULL);
    }
    /* a lone surrogate written as a JSON escape is not valid text either */
    refuse(KYC_KIND_USER_STATUS, "{\"externalUserId\":\"\\ud800\",\"status\":\"ACTIVE\"}", NULL);
    refuse(KYC_KIND_USER_STATUS, "{\"externalUserId\":\"\\udc00x\",\"status\":\"ACTIVE\"}", NULL);
}

static void test_refuse_nul(void **state)
{
    static const char raw[] = "{\"externalUserId\":\"u\0x\",\"status\":\"ACTIVE\"}";
    refuse_n(KYC_KIND_USER_STATUS, raw, sizeof raw - 1, "NUL");
    static const char raw_end[] = "{\"externalUserId\":\"u\",\"status\":\"ACTIVE\"}\0";
    refuse_n(KYC_KIND_USER_STATUS, raw_end, sizeof raw_end - 1, NULL);
    static const char raw_out[] = "{\"externalUserId\":\"u\",\0\"status\":\"ACTIVE\"}";
    refuse_n(KYC_KIND_USER_STATUS, raw_out, sizeof raw_out - 1, NULL);

    refuse(KYC_KIND_USER_STATUS, "{\"externalUserId\":\"u\\u0000x\",\"status\":\"ACTIVE\"}",
           "u0000");
    refuse(KYC_KIND_USER_STATUS, "{\"externalUserId\":\"\\u0000\",\"status\":\"ACTIVE\"}", "u0000");
    /* in an ignored field, and in a key */
    refuse(KYC_KIND_USER_STATUS,
           "{\"externalUserId\":\"u\",\"status\":\"ACTIVE\",\"x\":\"\\u0000\"}", "u0000");
    refuse(KYC_KIND_USER_STATUS, "{\"externalUserId\":\"u\",\"status\":\"ACTIVE\",\"x\\u0000\":1}",
           "u0000");
    /* escaped backslash, then a real \u0000 escape */
    refuse(KYC_KIND_USER_STATUS, "{\"externalUserId\":\"a\\\\\\u0000\",\"status\":\"ACTIVE\"}",
           "u0000");
}

/* RFC 8259 JSON only: what cJSON tolerates but PostgreSQL's jsonb (where
 * the raw body is stored) refuses must be refused here, not by the
 * database after the fact. */
static void test_refuse_raw_control_in_ignored_value(void **state)
{
    /* raw control bytes must be escaped in every string, not only in the
     * fields this service reads */
    refuse(KYC_KIND_USER_STATUS,
           "{\"externalUserId\":\"u\",\"status\":\"ACTIVE\",\"x\":\"a\x01z\"}", NULL);
    refuse(KYC_KIND_USER_STATUS, "{\"externalUserId\":\"u\",\"status\":\"ACTIVE\",\"x\":\"a\nz\"}",
           NULL);
    refuse(KYC_KIND_USER_STATUS, "{\"externalUserId\":\"u\",\"status\":\"ACTIVE\",\"x\x01\":1}",
           NULL);
}

static void test_refuse_non_json_whitespace(void **state)
{
    /* JSON whitespace is space, tab, CR and LF only */
    refuse(KYC_KIND_USER_STATUS, "\v" USER_EXAMPLE, NULL);
    refuse(KYC_KIND_USER_STATUS, "\f" USER_EXAMPLE, NULL);
    refuse(KYC_KIND_USER_STATUS, "\x01" USER_EXAMPLE, NULL);
    refuse(KYC_KIND_USER_STATUS, "{\x01\"externalUserId\"\x02:\x03\"u\",\"status\":\"ACTIVE\"}",
           NULL);
}

static void test_refuse_non_json_numbers(void **state)
{
    refuse(KYC_KIND_USER_STATUS, "{\"externalUserId\":\"u\",\"status\":\"ACTIVE\",\"x\":01}", NULL);
    refuse(KYC_KIND_USER_STATUS, "{\"externalUserId\":\"u\",\"status\":\"ACTIVE\",\"x\":1.}", NULL);
    refuse(KYC_KIND_USER_STATUS, "{\"externalUserId\":\"u\",\"status\":\"ACTIVE\",\"x\":1.e5}",
           NULL);
}

static void test_refuse_bom(void **state)
{
    /* RFC 8259 lets a parser ignore a BOM, but PostgreSQL refuses the body */
    refuse(KYC_KIND_USER_STATUS, "\xef\xbb\xbf" USER_EXAMPLE, NULL);
}

static void test_refuse_unknown_kind(void **state)
{
    refuse(KYC_KIND_COUNT, KYC_EXAMPLE, NULL);
    refuse((enum kyc_kind) - 1, KYC_EXAMPLE, NULL);
}

static void test_err_may_be_null(void **state)
{
    kyc_delivery d;
    sentinel(&d);
    kyc_delivery before = d;
    assert_int_equal(payload_parse(KYC_KIND_KYC_STATUS, "[]", 2, &d, NULL), KERR_INVALID);
    assert_memory_equal(&d, &before, sizeof d);
}

/* What can be known of a body that failed validation: its bytes, hash and
 * ids, the reason, and the user when the body names one validly. */
static void test_quarantine(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        const char *user;
    } cases[] = {
        {"{\"externalUserId\":\"u-9\",\"verificationStatus\":1,\"attemptStatus\":\"x\"}", "u-9"},
        {"{\"externalUserId\":9}", ""},
        {"{\"externalUserId\":\"bad\\u0001\"}", ""},
        {"[\"externalUserId\"]", ""},
        {"not json", ""},
        {"{\"externalUserId\":\"\xc0\xaf\"}", ""},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kyc_delivery d;
        memset(&d, 0, sizeof d);
        d.received_us = 5;
        strcpy(d.unknown_fields, "stale");
        const char *b = cases[i].body;
        payload_quarantine(KYC_KIND_KYC_STATUS, b, strlen(b), "10.0.0.1", "rid1", "why", &d);
        assert_string_equal(d.external_user_id, cases[i].user);
        assert_string_equal(d.quarantine, "why");
        assert_string_equal(d.remote_addr, "10.0.0.1");
        assert_string_equal(d.request_id, "rid1");
        assert_string_equal(d.unknown_fields, "");
        assert_true(d.received_us == 5);
        assert_ptr_equal(d.body, b);
        assert_int_equal(d.body_len, strlen(b));
        assert_int_equal(strlen(d.body_sha256), 64);
    }
    /* reason, remote and rid may be d's own fields (a spool replay) */
    kyc_delivery d;
    memset(&d, 0, sizeof d);
    strcpy(d.quarantine, "kept");
    strcpy(d.request_id, "r2");
    payload_quarantine(KYC_KIND_USER_STATUS, "{}", 2, d.remote_addr, d.request_id, d.quarantine,
                       &d);
    assert_string_equal(d.quarantine, "kept");
    assert_string_equal(d.request_id, "r2");
    assert_int_equal(d.kind, KYC_KIND_USER_STATUS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kyc_documented_example),
        cmocka_unit_test(test_other_kinds_documented_examples),
        cmocka_unit_test(test_other_kinds_all_documented_values),
        cmocka_unit_test(test_kyc_all_documented_values),
        cmocka_unit_test(test_rejection_reason_absent_null_string),
        cmocka_unit_test(test_extra_fields_ignored),
        cmocka_unit_test(test_whitespace_around),
        cmocka_unit_test(test_undocumented_values_kept),
        cmocka_unit_test(test_max_lengths_accepted),
        cmocka_unit_test(test_utf8_values_accepted),
        cmocka_unit_test(test_escaped_backslash_u0000_accepted),
        cmocka_unit_test(test_nesting),
        cmocka_unit_test(test_many_garbage_fields_fast),
        cmocka_unit_test(test_refuse_empty_and_not_json),
        cmocka_unit_test(test_refuse_top_level_not_object),
        cmocka_unit_test(test_refuse_trailing_garbage),
        cmocka_unit_test(test_refuse_missing_fields),
        cmocka_unit_test(test_refuse_empty_values),
        cmocka_unit_test(test_refuse_wrong_types),
        cmocka_unit_test(test_refuse_too_long),
        cmocka_unit_test(test_refuse_control_characters),
        cmocka_unit_test(test_refuse_duplicate_keys),
        cmocka_unit_test(test_refuse_invalid_utf8),
        cmocka_unit_test(test_refuse_nul),
        cmocka_unit_test(test_refuse_raw_control_in_ignored_value),
        cmocka_unit_test(test_refuse_non_json_whitespace),
        cmocka_unit_test(test_refuse_non_json_numbers),
        cmocka_unit_test(test_refuse_bom),
        cmocka_unit_test(test_refuse_unknown_kind),
        cmocka_unit_test(test_err_may_be_null),
        cmocka_unit_test(test_quarantine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
