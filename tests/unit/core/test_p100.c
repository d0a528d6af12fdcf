/* Unit tests for P100's API in core: core/p100 (classification,
 * explanations, create-request validation, backoff, Retry-After) and the
 * P100 functions of core/payload. The client, io/p100, is tested in
 * tests/unit/io/test_p100.c. */
#include "testlib.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "core/json.h"
#include "core/kyc.h"
#include "core/p100.h"
#include "core/vocab.h"
#include "core/payload.h"

#define UID "bca65c48-df49-4831-a7b2-de7903321581"

/* ---- classification */

static void test_classify_table(void **state)
{
    (void)state;
    static const struct {
        long status;
        const char *code;
        enum p100_class want;
    } rows[] = {
        {200, NULL, P100_OK},
        {201, NULL, P100_OK},
        {201, "", P100_OK},
        {202, "P212", P100_OK},
        {202, NULL, P100_OK},
        {429, NULL, P100_RATE_LIMITED},
        {429, "", P100_RATE_LIMITED},
        {401, NULL, P100_MISCONFIGURED},
        {401, "", P100_MISCONFIGURED},
        {403, NULL, P100_MISCONFIGURED},
        {408, NULL, P100_TRANSIENT},
        {500, NULL, P100_TRANSIENT},
        {502, NULL, P100_TRANSIENT},
        {503, NULL, P100_TRANSIENT},
        {504, "", P100_TRANSIENT},
        {0, NULL, P100_TRANSIENT},
        {0, "", P100_TRANSIENT},
        /* P500/P501 come as HTTP 400: transient whatever the status */
        {400, "P500", P100_TRANSIENT},
        {400, "P501", P100_TRANSIENT},
        {404, "P500", P100_TRANSIENT},
        {200, "P501", P100_TRANSIENT},
        {500, "P500", P100_TRANSIENT},
        /* other 4xx: final */
        {400, "P403", P100_FINAL},
        {400, "P412", P100_FINAL},
        {400, "P433", P100_FINAL},
        {400, "P450", P100_FINAL},
        {400, "P453", P100_FINAL},
        {400, "P459", P100_FINAL},
        {404, "P445", P100_FINAL},
        {400, "P999", P100_FINAL}, /* an undocumented code: still P100 about the user */
        {409, "P411", P100_FINAL},
        /* a 4xx without P100's errorCode says nothing about the user (a wrong
         * path's 404, a 405, a proxy's page): unusable, the reconciler pauses */
        {404, NULL, P100_UNUSABLE},
        {404, "", P100_UNUSABLE},
        {400, NULL, P100_UNUSABLE},
        {405, NULL, P100_UNUSABLE},
        {418, NULL, P100_UNUSABLE},
        /* decisions where the documentation is silent */
        {301, NULL, P100_MISCONFIGURED},
        {302, NULL, P100_MISCONFIGURED},
        {599, NULL, P100_TRANSIENT},
        {999, NULL, P100_TRANSIENT},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        enum p100_class got = p100_classify(rows[i].status, rows[i].code);
        if (got != rows[i].want)
            fail_msg("p100_classify(%ld, %s) = %s, want %s", rows[i].status,
                     rows[i].code ? rows[i].code : "NULL", p100_class_name(got),
                     p100_class_name(rows[i].want));
    }
}

static void test_class_names(void **state)
{
    (void)state;
    assert_string_equal(p100_class_name(P100_OK), "ok");
    assert_string_equal(p100_class_name(P100_FINAL), "final");
    assert_string_equal(p100_class_name(P100_TRANSIENT), "transient");
    assert_string_equal(p100_class_name(P100_RATE_LIMITED), "rate_limited");
    assert_string_equal(p100_class_name(P100_MISCONFIGURED), "misconfigured");
    assert_string_equal(p100_class_name((enum p100_class)42), "unknown");
}

static void test_error_explain(void **state)
{
    (void)state;
    static const char *const codes[] = {"P403", "P411", "P412", "P433", "P445", "P450",
                                        "P453", "P459", "P500", "P501", "P211", "P212"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *t = p100_error_explain(codes[i]);
        if (t == NULL || strlen(t) < 10)
            fail_msg("no explanation for %s", codes[i]);
        /* plain sentence, lower case start, no final period (house style) */
        assert_true(t[strlen(t) - 1] != '.');
    }
    assert_non_null(strstr(p100_error_explain("P445"), "KYC"));
    assert_non_null(strstr(p100_error_explain("P500"), "400"));
    assert_null(p100_error_explain("P999"));
    assert_null(p100_error_explain(""));
    assert_null(p100_error_explain(NULL));
    assert_null(p100_error_explain("xo1"));
    assert_null(p100_error_explain("p412")); /* codes are exact */
}

/* ---- create request validation */

static p100_create_req good_req(const char *income)
{
    p100_create_req r;
    memset(&r, 0, sizeof r);
    snprintf(r.external_user_id, sizeof r.external_user_id, "%s", UID);
    snprintf(r.document_type, sizeof r.document_type, "PASSPORT");
    snprintf(r.country, sizeof r.country, "LT");
    snprintf(r.income_source, sizeof r.income_source, "%s", income);
    snprintf(r.open_account_reason, sizeof r.open_account_reason, "DAILY_USE");
    if (strcmp(income, "SALARY") == 0)
        snprintf(r.occupation, sizeof r.occupation, "ENGINEERING");
    else if (strcmp(income, "BUSINESS_ACTIVITY") == 0)
        snprintf(r.tax_id, sizeof r.tax_id, "LT123456789");
    else
        snprintf(r.additional_info, sizeof r.additional_info, "supported by my parents");
    return r;
}

static void validate_ok(const p100_create_req *r)
{
    kerr err;
    kerr_clear(&err);
    int rc = p100_create_validate(r, &err);
    if (rc != 0)
        fail_msg("valid request refused: %s", err.msg);
}

/* Refused with KERR_INVALID and a message containing each of the words. */
static void validate_bad(const p100_create_req *r, const char *w1, const char *w2)
{
    kerr err;
    kerr_clear(&err);
    int rc = p100_create_validate(r, &err);
    if (rc != KERR_INVALID)
        fail_msg("request accepted (rc=%d), expected refusal naming %s", rc, w1);
    if (strstr(err.msg, w1) == NULL || (w2 && strstr(err.msg, w2) == NULL))
        fail_msg("message '%s' lacks '%s'/'%s'", err.msg, w1, w2 ? w2 : "");
    assert_int_equal(err.code, KERR_INVALID);
}

static void test_validate_good_each_income_source(void **state)
{
    (void)state;
    /* every documented value, from the one table (test_vocabulary.sh holds
     * it against docs/p100-api.md): no second list here to drift */
    for (int i = 0; i < vocab_count(&VOCAB_INCOME_SOURCE); i++) {
        p100_create_req r = good_req(vocab_nth(&VOCAB_INCOME_SOURCE, i));
        validate_ok(&r);
    }
    static const struct {
        const vocab *v;
        size_t off, cap;
    } fields[] = {
        {&VOCAB_DOCUMENT_TYPE, offsetof(p100_create_req, document_type),
         sizeof((p100_create_req *)0)->document_type},
        {&VOCAB_OPEN_ACCOUNT_REASON, offsetof(p100_create_req, open_account_reason),
         sizeof((p100_create_req *)0)->open_account_reason},
        {&VOCAB_OCCUPATION, offsetof(p100_create_req, occupation),
         sizeof((p100_create_req *)0)->occupation},
    };
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
        for (int i = 0; i < vocab_count(fields[f].v); i++) {
            p100_create_req r = good_req("SALARY");
            snprintf((char *)&r + fields[f].off, fields[f].cap, "%s", vocab_nth(fields[f].v, i));
            validate_ok(&r);
        }
    /* optional extras: additionalInfo with SALARY and BUSINESS_ACTIVITY,
     * occupation (from the list) and taxId with other sources */
    p100_create_req r = good_req("SALARY");
    snprintf(r.additional_info, sizeof r.additional_info, "line one\nline\ttwo, \xc5\xa0ilas");
    validate_ok(&r);
    r = good_req("BUSINESS_ACTIVITY");
    snprintf(r.additional_info, sizeof r.additional_info, "shop");
    snprintf(r.occupation, sizeof r.occupation, "RETAIL_AND_SALES");
    validate_ok(&r);
    r = good_req("OTHER");
    snprintf(r.occupation, sizeof r.occupation, "IT");
    snprintf(r.tax_id, sizeof r.tax_id, "X1");
    validate_ok(&r);
    /* longest id */
    r = good_req("SALARY");
    memset(r.external_user_id, 'a', KYC_ID_MAX);
    r.external_user_id[KYC_ID_MAX] = '\0';
    validate_ok(&r);
}

static void test_validate_missing_required(void **state)
{
    (void)state;
    p100_create_req r;
    r = good_req("OTHER"), r.external_user_id[0] = '\0';
    validate_bad(&r, "externalUserId", NULL);
    r = good_req("OTHER"), r.document_type[0] = '\0';
    validate_bad(&r, "documentType", NULL);
    r = good_req("OTHER"), r.country[0] = '\0';
    validate_bad(&r, "country", NULL);
    r = good_req("OTHER"), r.income_source[0] = '\0';
    validate_bad(&r, "incomeSource", NULL);
    r = good_req("OTHER"), r.open_account_reason[0] = '\0';
    validate_bad(&r, "openAccountReason", NULL);
    kerr err;
    assert_int_equal(p100_create_validate(NULL, &err), KERR_INVALID);
}

static void test_validate_bad_values(void **state)
{
    (void)state;
    p100_create_req r;

    r = good_req("OTHER");
    snprintf(r.document_type, sizeof r.document_type, "passport");
    validate_bad(&r, "documentType", "ID_CARD, PASSPORT, RESIDENCE_PERMIT, DRIVER_LICENSE");
    r = good_req("OTHER");
    snprintf(r.document_type, sizeof r.document_type, "VISA");
    validate_bad(&r, "documentType", "DRIVER_LICENSE");

    r = good_req("OTHER");
    snprintf(r.income_source, sizeof r.income_source, "LOTTERY");
    validate_bad(&r, "incomeSource", "BUSINESS_ACTIVITY, SALARY, OTHER");
    r = good_req("OTHER");
    snprintf(r.income_source, sizeof r.income_source, "salary");
    validate_bad(&r, "incomeSource", "TENANCY");

    r = good_req("OTHER");
    snprintf(r.open_account_reason, sizeof r.open_account_reason, "FUN");
    validate_bad(&r, "openAccountReason", "TRANSFER_OF_FUNDS_OUTSIDE_OF_EUROPE");
    /* the older spelling is refused, and the message says so */
    r = good_req("OTHER");
    snprintf(r.open_account_reason, sizeof r.open_account_reason, "INVESTMENTS_OR_CRYPTOCURRENCIE");
    validate_bad(&r, "openAccountReason", "older spelling");

    /* country: two upper-case ASCII letters */
    static const char *const countries[] = {"lt", "Lt", "lT", "L", "L1", "12", "L ", " L"};
    for (size_t i = 0; i < sizeof countries / sizeof countries[0]; i++) {
        r = good_req("OTHER");
        snprintf(r.country, sizeof r.country, "%s", countries[i]);
        validate_bad(&r, "country", "upper-case");
    }
    r = good_req("OTHER");
    memcpy(r.country, "\xc3\x84", 3); /* Ä */
    validate_bad(&r, "country", NULL);

    /* externalUserId: length, control characters, non-ASCII */
    r = good_req("OTHER");
    memset(r.external_user_id, 'a', sizeof r.external_user_id);
    validate_bad(&r, "externalUserId", "terminated");
    r = good_req("OTHER");
    snprintf(r.external_user_id, sizeof r.external_user_id, "abc\ndef");
    validate_bad(&r, "externalUserId", "printable");
    r = good_req("OTHER");
    snprintf(r.external_user_id, sizeof r.external_user_id, "\xc3\xa9t\xc3\xa9");
    validate_bad(&r, "externalUserId", "printable");

    /* occupation */
    r = good_req("SALARY");
    r.occupation[0] = '\0';
    validate_bad(&r, "occupation", "SALARY");
    r = good_req("SALARY");
    snprintf(r.occupation, sizeof r.occupation, "ASTRONAUT");
    validate_bad(&r, "occupation", "SCIENCE_AND_RESEARCH");
    r = good_req("TENANCY");
    snprintf(r.occupation, sizeof r.occupation, "it");
    validate_bad(&r, "occupation", "HEALTHCARE_AND_MEDICAL_SERVICES");

    /* taxId */
    r = good_req("BUSINESS_ACTIVITY");
    r.tax_id[0] = '\0';
    validate_bad(&r, "taxId", "BUSINESS_ACTIVITY");
    r = good_req("BUSINESS_ACTIVITY");
    snprintf(r.tax_id, sizeof r.tax_id, "   ");
    validate_bad(&r, "taxId", NULL);
    r = good_req("BUSINESS_ACTIVITY");
    snprintf(r.tax_id, sizeof r.tax_id, "LT1\n2");
    validate_bad(&r, "taxId", "control");

    /* additionalInfo: required for all but SALARY and BUSINESS_ACTIVITY */
    static const char *const need_info[] = {"OTHER", "MAINTAINED_BY_FAMILY", "INVESTMENTS",
                                            "SOCIAL_BENEFITS", "TENANCY"};
    for (size_t i = 0; i < sizeof need_info / sizeof need_info[0]; i++) {
        r = good_req(need_info[i]);
        r.additional_info[0] = '\0';
        validate_bad(&r, "additionalInfo", need_info[i]);
        snprintf(r.additional_info, sizeof r.additional_info, " \n ");
        validate_bad(&r, "additionalInfo", NULL);
    }
    r = good_req("SALARY");
    r.additional_info[0] = '\0';
    validate_ok(&r);
    r = good_req("BUSINESS_ACTIVITY");
    r.additional_info[0] = '\0';
    validate_ok(&r);
    r = good_req("OTHER");
    snprintf(r.additional_info, sizeof r.additional_info, "bell\x07");
    validate_bad(&r, "additionalInfo", NULL);
    r = good_req("OTHER");
    snprintf(r.additional_info, sizeof r.additional_info, "bad \xff utf-8");
    validate_bad(&r, "additionalInfo", "UTF-8");
    r = good_req("OTHER");
    memset(r.additional_info, 'x', sizeof r.additional_info);
    validate_bad(&r, "additionalInfo", "terminated");
}

/* ---- backoff and Retry-After */

static void test_backoff(void **state)
{
    (void)state;
    /* failures 0 (or less): no wait; bad parameters: no wait */
    assert_int_equal(p100_backoff_ms(0, 1000, 60000, 12345), 0);
    assert_int_equal(p100_backoff_ms(-3, 1000, 60000, 12345), 0);
    assert_int_equal(p100_backoff_ms(1, 0, 60000, 12345), 0);
    assert_int_equal(p100_backoff_ms(1, 1000, 0, 12345), 0);
    /* random 0 gives the low end d/2; random = span-1 gives d */
    int64_t want = 1000;
    for (int f = 1; f <= 8; f++, want *= 2) {
        int64_t d = want > 60000 ? 60000 : want;
        assert_int_equal(p100_backoff_ms(f, 1000, 60000, 0), d / 2);
        assert_int_equal(p100_backoff_ms(f, 1000, 60000, (uint64_t)(d - d / 2)), d);
        assert_int_equal(p100_backoff_ms(f, 1000, 60000, (uint64_t)(d - d / 2) + 1), d / 2);
    }
    /* jitter stays in [d/2, d] for many random values */
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 10000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int f = 1 + i % 70;
        int64_t d = 1000;
        for (int k = 1; k < f && d < 3600000; k++)
            d = d * 2 > 3600000 ? 3600000 : d * 2;
        int64_t got = p100_backoff_ms(f, 1000, 3600000, x);
        if (got < d / 2 || got > d)
            fail_msg("backoff(%d) = %lld, not in [%lld, %lld]", f, (long long)got,
                     (long long)(d / 2), (long long)d);
    }
    /* cap, and no overflow with absurd failure counts or a huge cap */
    assert_int_equal(p100_backoff_ms(1000000, 1000, 60000, 0), 30000);
    assert_int_equal(p100_backoff_ms(1000000, 1000, 60000, UINT64_MAX),
                     30000 + (int64_t)(UINT64_MAX % 30001));
    int64_t big = p100_backoff_ms(200, 1000, INT64_MAX, UINT64_MAX);
    assert_true(big >= INT64_MAX / 2 && big <= INT64_MAX);
    /* base above max: capped at max from the first retry */
    assert_int_equal(p100_backoff_ms(1, 10000, 4000, 0), 2000);
    /* odd values: [d/2 floored, d] */
    assert_int_equal(p100_backoff_ms(1, 3, 100, 0), 1);
    assert_int_equal(p100_backoff_ms(1, 3, 100, 2), 3);
    assert_int_equal(p100_backoff_ms(1, 1, 100, 0), 0);
    assert_int_equal(p100_backoff_ms(1, 1, 100, 1), 1);
}

static void test_retry_after(void **state)
{
    (void)state;
    assert_int_equal(p100_retry_after_ms("5"), 5000);
    assert_int_equal(p100_retry_after_ms("0"), 0);
    assert_int_equal(p100_retry_after_ms(" 120 \r\n"), 120000);
    assert_int_equal(p100_retry_after_ms("007"), 7000);
    assert_int_equal(p100_retry_after_ms(""), -1);
    assert_int_equal(p100_retry_after_ms("   "), -1);
    assert_int_equal(p100_retry_after_ms("abc"), -1);
    assert_int_equal(p100_retry_after_ms("5s"), -1);
    assert_int_equal(p100_retry_after_ms("-5"), -1);
    assert_int_equal(p100_retry_after_ms("+5"), -1);
    assert_int_equal(p100_retry_after_ms("1.5"), -1);
    assert_int_equal(p100_retry_after_ms("5 5"), -1);
    assert_int_equal(p100_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT"), -1);
    assert_int_equal(p100_retry_after_ms(NULL), -1);
    /* huge values are clamped to a day, never overflow */
    assert_int_equal(p100_retry_after_ms("86400"), 86400000);
    assert_int_equal(p100_retry_after_ms("86401"), 86400000);
    assert_int_equal(p100_retry_after_ms("99999999999999999999999999999999"), 86400000);
}

/* ---- payload: error bodies */

static void parse_error(const char *body, int want_rc, const char *code, const char *name,
                        const char *msg)
{
    char c[16], n[64], m[256];
    memset(c, 'X', sizeof c), memset(n, 'X', sizeof n), memset(m, 'X', sizeof m);
    int rc = payload_parse_p100_error(body, body ? strlen(body) : 0, c, n, m);
    if (rc != want_rc)
        fail_msg("payload_parse_p100_error(%s) = %d, want %d", body ? body : "NULL", rc, want_rc);
    assert_string_equal(c, code);
    assert_string_equal(n, name);
    assert_string_equal(m, msg);
}

static void test_payload_error(void **state)
{
    (void)state;
    parse_error("{\"errorCode\": \"P412\", \"errorName\": \"invalid-user\", "
                "\"errorMessage\": \"User does not exist\"}",
                0, "P412", "invalid-user", "User does not exist");
    /* P403 without errorName, joined messages */
    parse_error("{\"errorCode\":\"P403\",\"errorMessage\":\"country must not be blank, "
                "documentType must not be null\"}",
                0, "P403", "", "country must not be blank, documentType must not be null");
    parse_error("{\"errorCode\":\"P403\",\"errorMessage\":[\"country must not be blank\","
                "\"documentType must not be null\"]}",
                0, "P403", "", "country must not be blank; documentType must not be null");
    /* a bare {"message": ...} (the 401) */
    parse_error("{\"message\":\"Access Denied. xo2\"}", 0, "", "", "Access Denied. xo2");
    parse_error("{\"errorMessage\":null,\"message\":\"Access Denied. xo3\"}", 0, "", "",
                "Access Denied. xo3");
    /* P500 as sent with HTTP 400; 202 P212 */
    parse_error("{\"errorCode\":\"P500\",\"errorName\":\"unknown-exception\"}", 0, "P500",
                "unknown-exception", "");
    parse_error("{\"errorCode\":\"P212\",\"errorMessage\":\"KYC verification pending\"}", 0, "P212",
                "", "KYC verification pending");
    /* tolerant: extra fields, nulls, wrong types ignored */
    parse_error("{\"timestamp\":1,\"errorCode\":null,\"errorName\":7,\"errorMessage\":{},"
                "\"x\":[1,2]}",
                0, "", "", "");
    parse_error("{}", 0, "", "", "");
    /* control characters never reach a log line; long values are cut */
    parse_error("{\"errorCode\":\"P4\\n03\",\"errorMessage\":\"a\\tb\\u0007c\"}", 0, "P4 03", "",
                "a b c");
    char longmsg[1200];
    snprintf(longmsg, sizeof longmsg,
             "{\"errorCode\":\"P40300000000000000000\",\"errorMessage\":\"");
    size_t at = strlen(longmsg);
    for (int i = 0; i < 600; i++)
        longmsg[at++] = i % 2 ? 'b' : 'a';
    snprintf(longmsg + at, sizeof longmsg - at, "\"}");
    char c[16], n[64], m[256];
    assert_int_equal(payload_parse_p100_error(longmsg, strlen(longmsg), c, n, m), 0);
    assert_int_equal(strlen(c), 15);
    assert_int_equal(strlen(m), 255);
    /* a multibyte character is never cut in half */
    char utf[600] = "{\"errorMessage\":\"";
    at = strlen(utf);
    for (int i = 0; i < 200; i++)
        memcpy(utf + at, "\xc5\xa0", 2), at += 2; /* Š */
    snprintf(utf + at, sizeof utf - at, "\"}");
    assert_int_equal(payload_parse_p100_error(utf, strlen(utf), c, n, m), 0);
    assert_int_equal(strlen(m), 254);
    assert_true(json_utf8_valid(m, strlen(m)));
    /* not JSON, or not an object: KERR_INVALID, fields "" */
    parse_error("<html>502 Bad Gateway</html>", KERR_INVALID, "", "", "");
    parse_error("[\"P412\"]", KERR_INVALID, "", "", "");
    parse_error("\"P412\"", KERR_INVALID, "", "", "");
    parse_error("", KERR_INVALID, "", "", "");
    parse_error(NULL, KERR_INVALID, "", "", "");
    parse_error("{\"errorCode\":", KERR_INVALID, "", "", "");
}

/* ---- payload: status bodies */

static int parse_status(const char *body, kyc_status *st, kerr *err)
{
    memset(st, 0x5A, sizeof *st);
    kerr_clear(err);
    return payload_parse_p100_status(body, strlen(body), st, err);
}

static void status_bad(const char *body, const char *word)
{
    kyc_status st;
    kerr err;
    int rc = parse_status(body, &st, &err);
    if (rc != KERR_INVALID)
        fail_msg("status body accepted: %s", body);
    if (word && strstr(err.msg, word) == NULL)
        fail_msg("message '%s' lacks '%s'", err.msg, word);
    /* output untouched */
    unsigned char s[sizeof st];
    memset(s, 0x5A, sizeof s);
    assert_memory_equal(&st, s, sizeof st);
}

static void test_payload_status(void **state)
{
    (void)state;
    kyc_status st;
    kerr err;
    assert_int_equal(parse_status("{\"externalUserId\":\"" UID "\","
                                  "\"verificationStatus\":\"NOT_VERIFIED\","
                                  "\"attemptStatus\":\"REJECTED_BY_PROVIDER\","
                                  "\"rejectionReason\":\"NO_FACE_FOUND\"}",
                                  &st, &err),
                     0);
    assert_string_equal(st.verification, "NOT_VERIFIED");
    assert_string_equal(st.attempt, "REJECTED_BY_PROVIDER");
    assert_string_equal(st.reason, "NO_FACE_FOUND");
    /* extra fields of any type ignored; null rejectionReason = absent */
    assert_int_equal(parse_status("{\"verificationStatus\":\"VERIFIED\",\"attemptStatus\":"
                                  "\"SUCCESSFUL\",\"rejectionReason\":null,\"createdAt\":"
                                  "\"2024-01-01\",\"attempts\":[{\"n\":1}],\"score\":0.5,"
                                  "\"ok\":true}",
                                  &st, &err),
                     0);
    assert_string_equal(st.verification, "VERIFIED");
    assert_string_equal(st.attempt, "SUCCESSFUL");
    assert_string_equal(st.reason, "");
    /* missing attemptStatus: tolerated */
    assert_int_equal(parse_status("{\"verificationStatus\":\"EXPIRED\"}", &st, &err), 0);
    assert_string_equal(st.verification, "EXPIRED");
    assert_string_equal(st.attempt, "");
    assert_string_equal(st.reason, "");
    assert_int_equal(
        parse_status("{\"attemptStatus\":\"PENDING\",\"verificationStatus\":null}", &st, &err), 0);
    assert_string_equal(st.verification, "");
    assert_string_equal(st.attempt, "PENDING");
    /* undocumented values are kept verbatim */
    assert_int_equal(parse_status("{\"verificationStatus\":\"ON_HOLD\"}", &st, &err), 0);
    assert_string_equal(st.verification, "ON_HOLD");

    /* refused */
    status_bad("{}", "verificationStatus");
    status_bad("{\"verificationStatus\":null,\"attemptStatus\":null}", "attemptStatus");
    status_bad("{\"verificationStatus\":\"\"}", "verificationStatus");
    status_bad("{\"verificationStatus\":1}", "verificationStatus");
    status_bad("{\"verificationStatus\":\"VERIFIED\",\"attemptStatus\":[]}", "attemptStatus");
    status_bad("{\"verificationStatus\":\"VERIFIED\",\"rejectionReason\":false}",
               "rejectionReason");
    status_bad("{\"verificationStatus\":\"VERIFIED\",\"attemptStatus\":{\"a\":1}}",
               "attemptStatus");
    status_bad("{\"verificationStatus\":\"VER\\nIFIED\"}", "control");
    status_bad("[]", "object");
    status_bad("null", "object");
    status_bad("not json", NULL);
    status_bad("{\"verificationStatus\":\"VERIFIED\"", NULL);
    status_bad("{\"verificationStatus\":\"VERIFIED\"} trailing", NULL);
    status_bad("", "empty");
    status_bad("{\"verificationStatus\":\"\xff\"}", "UTF-8");
    status_bad("{\"x\":\"\\u0000\",\"verificationStatus\":\"VERIFIED\"}", NULL);
    char big[400];
    snprintf(big, sizeof big, "{\"verificationStatus\":\"%0*d\"}", KYC_VALUE_MAX + 1, 0);
    status_bad(big, "longer");
    snprintf(big, sizeof big, "{\"verificationStatus\":\"%0*d\"}", KYC_VALUE_MAX, 0);
    assert_int_equal(parse_status(big, &st, &err), 0);
    snprintf(big, sizeof big, "{\"attemptStatus\":\"A\",\"rejectionReason\":\"%0*d\"}",
             KYC_REASON_MAX + 1, 0);
    status_bad(big, "rejectionReason");
    /* err may be NULL */
    assert_int_equal(payload_parse_p100_status("{}", 2, &st, NULL), KERR_INVALID);
}

/* ---- payload: created bodies */

static void test_payload_created(void **state)
{
    (void)state;
    char id[64];
    kerr err;
    const char *b = "{\"verificationId\":\"1d3c8a13-a2bf-4f0a-9631-723dfe892675\",\"x\":null}";
    assert_int_equal(payload_parse_p100_created(b, strlen(b), id, sizeof id, &err), 0);
    assert_string_equal(id, "1d3c8a13-a2bf-4f0a-9631-723dfe892675");

    static const char *const bad[] = {"{}",
                                      "{\"verificationId\":null}",
                                      "{\"verificationId\":\"\"}",
                                      "{\"verificationId\":5}",
                                      "[]",
                                      "nope",
                                      "{\"verificationId\":\"a\\u0001b\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(id, "untouched", 10);
        kerr_clear(&err);
        assert_int_equal(payload_parse_p100_created(bad[i], strlen(bad[i]), id, sizeof id, &err),
                         KERR_INVALID);
        assert_string_equal(id, "untouched");
        assert_true(err.msg[0] != '\0');
    }
    /* too long for the caller's buffer */
    char small[8];
    memcpy(small, "same", 5);
    assert_int_equal(payload_parse_p100_created(b, strlen(b), small, sizeof small, &err),
                     KERR_INVALID);
    assert_non_null(strstr(err.msg, "verificationId"));
    assert_string_equal(small, "same");
    assert_int_equal(payload_parse_p100_created(b, strlen(b), small, 0, &err), KERR_INVALID);
}

/* ---- payload: the create request body */

static void test_payload_build(void **state)
{
    (void)state;
    kbuf b;
    kbuf_init(&b);
    kerr err;

    p100_create_req r = good_req("SALARY");
    assert_int_equal(payload_build_p100_create(&r, &b, &err), 0);
    const char *s = kbuf_str(&b);
    assert_non_null(strstr(s, "\"externalUserId\":\"" UID "\""));
    assert_non_null(strstr(s, "\"documentType\":\"PASSPORT\""));
    assert_non_null(strstr(s, "\"country\":\"LT\""));
    assert_non_null(strstr(s, "\"incomeSource\":\"SALARY\""));
    assert_non_null(strstr(s, "\"openAccountReason\":\"DAILY_USE\""));
    assert_non_null(strstr(s, "\"occupation\":\"ENGINEERING\""));
    assert_null(strstr(s, "additionalInfo"));
    assert_null(strstr(s, "taxId"));
    assert_int_equal(s[0], '{');
    assert_int_equal(s[b.len - 1], '}');

    /* appends; escapes free text */
    kbuf_reset(&b);
    assert_int_equal(kbuf_append(&b, "X", 1), 0);
    r = good_req("BUSINESS_ACTIVITY");
    snprintf(r.additional_info, sizeof r.additional_info, "say \"hi\"\n\\ \xc5\xa0");
    assert_int_equal(payload_build_p100_create(&r, &b, &err), 0);
    s = kbuf_str(&b);
    assert_int_equal(s[0], 'X');
    assert_non_null(strstr(s, "\"taxId\":\"LT123456789\""));
    assert_non_null(strstr(s, "\"additionalInfo\":\"say \\\"hi\\\"\\n\\\\ \xc5\xa0\""));
    assert_null(strstr(s, "occupation"));
    /* the result is JSON the strict webhook-grade validator accepts */
    kyc_status st;
    assert_int_equal(payload_parse_p100_status(s + 1, b.len - 1, &st, &err), KERR_INVALID);
    assert_null(strstr(err.msg, "malformed"));

    r = good_req("TENANCY");
    kbuf_reset(&b);
    assert_int_equal(payload_build_p100_create(&r, &b, &err), 0);
    assert_non_null(strstr(kbuf_str(&b), "\"additionalInfo\":\"supported by my parents\""));
    assert_null(strstr(kbuf_str(&b), "occupation"));
    assert_null(strstr(kbuf_str(&b), "taxId"));

    /* an invalid request is refused and nothing is appended */
    kbuf_reset(&b);
    r = good_req("SALARY");
    r.occupation[0] = '\0';
    assert_int_equal(payload_build_p100_create(&r, &b, &err), KERR_INVALID);
    assert_int_equal(b.len, 0);
    kbuf_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_table),
        cmocka_unit_test(test_class_names),
        cmocka_unit_test(test_error_explain),
        cmocka_unit_test(test_validate_good_each_income_source),
        cmocka_unit_test(test_validate_missing_required),
        cmocka_unit_test(test_validate_bad_values),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_payload_error),
        cmocka_unit_test(test_payload_status),
        cmocka_unit_test(test_payload_created),
        cmocka_unit_test(test_payload_build),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
