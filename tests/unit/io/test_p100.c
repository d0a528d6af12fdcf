/* Unit tests for io/p100 (the P100 client) without a server: option
 * checks, redirect URLs, the local refusals that need no network, and real
 * calls to a closed loopback port. Calls against a live (simulated) P100
 * are tested with the simulator, not here; core/p100 is tested in
 * tests/unit/core/test_p100.c. */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "core/kyc.h"
#include "core/p100.h"
#include "io/p100.h"

#define UID "bca65c48-df49-4831-a7b2-de7903321581"

/* A create request with the fields every income source needs and
 * additional_info (which OTHER needs, and nothing else does). */
static p100_create_req create_req(const char *income)
{
    p100_create_req r;
    memset(&r, 0, sizeof r);
    snprintf(r.external_user_id, sizeof r.external_user_id, "%s", UID);
    snprintf(r.document_type, sizeof r.document_type, "PASSPORT");
    snprintf(r.country, sizeof r.country, "LT");
    snprintf(r.income_source, sizeof r.income_source, "%s", income);
    snprintf(r.open_account_reason, sizeof r.open_account_reason, "DAILY_USE");
    snprintf(r.additional_info, sizeof r.additional_info, "supported by my parents");
    return r;
}

static p100_opts opts_for(const char *base)
{
    p100_opts o;
    memset(&o, 0, sizeof o);
    o.base_url = base;
    o.api_key = "test-key-SECRET-123";
    o.timeout_ms = 3000;
    o.connect_timeout_ms = 1000;
    return o;
}

static void test_redirect_url(void **state)
{
    (void)state;
    kbuf b;
    kbuf_init(&b);
    kerr err;
    p100_opts o = opts_for("https://partner-api-stage.p100.io/");
    assert_int_equal(p100_redirect_url(&o, "a b/c", "v?1#&%", &b, &err), 0);
    assert_string_equal(kbuf_str(&b), "https://partner-api-stage.p100.io/v1/kyc/verification/"
                                      "a%20b%2Fc/v%3F1%23%26%25");
    kbuf_reset(&b);
    assert_int_equal(p100_redirect_url(&o, UID, "1d3c8a13-a2bf-4f0a-9631-723dfe892675", &b, &err),
                     0);
    assert_string_equal(kbuf_str(&b), "https://partner-api-stage.p100.io/v1/kyc/verification/" UID
                                      "/1d3c8a13-a2bf-4f0a-9631-723dfe892675");
    kbuf_reset(&b);
    assert_int_equal(p100_redirect_url(&o, "~a._-Z9", "\xc5\xa0", &b, &err), 0);
    assert_string_equal(kbuf_str(&b),
                        "https://partner-api-stage.p100.io/v1/kyc/verification/~a._-Z9/%C5%A0");
    kbuf_reset(&b);
    assert_int_equal(p100_redirect_url(&o, "", "v", &b, &err), KERR_INVALID);
    assert_non_null(strstr(err.msg, "externalUserId"));
    assert_int_equal(p100_redirect_url(&o, "u", NULL, &b, &err), KERR_INVALID);
    assert_non_null(strstr(err.msg, "verificationId"));
    o.base_url = "ftp://x";
    assert_int_equal(p100_redirect_url(&o, "u", "v", &b, &err), KERR_CONFIG);
    assert_int_equal(b.len, 0);
    kbuf_deinit(&b);
}

static void client_refused(p100_opts o, const char *word)
{
    p100_client *c = (p100_client *)0x1;
    kerr err;
    kerr_clear(&err);
    int rc = p100_client_new(&c, &o, &err);
    if (rc == 0)
        fail_msg("client accepted (base %s), expected '%s'", o.base_url ? o.base_url : "NULL",
                 word);
    assert_ptr_equal(c, (p100_client *)0x1);
    if (strstr(err.msg, word) == NULL)
        fail_msg("message '%s' lacks '%s'", err.msg, word);
    assert_null(strstr(err.msg, "SECRET"));
}

static void client_accepted(p100_opts o)
{
    p100_client *c = NULL;
    kerr err;
    kerr_clear(&err);
    if (p100_client_new(&c, &o, &err) != 0)
        fail_msg("client refused (base %s): %s", o.base_url, err.msg);
    assert_non_null(c);
    p100_client_free(c);
}

static void test_client_options(void **state)
{
    (void)state;
    client_accepted(opts_for("https://partner-api-stage.p100.io"));
    client_accepted(opts_for("https://partner-api.p100.io/"));
    client_accepted(opts_for("HTTPS://partner-api.p100.io:8443/prefix"));
    client_accepted(opts_for("http://127.0.0.1:8080"));
    client_accepted(opts_for("http://127.1.2.3"));
    client_accepted(opts_for("http://localhost:9000/"));
    client_accepted(opts_for("http://[::1]:9000"));

    client_refused(opts_for(NULL), "base url");
    client_refused(opts_for(""), "base url");
    client_refused(opts_for("ftp://partner-api.p100.io"), "https://");
    client_refused(opts_for("partner-api.p100.io"), "https://");
    client_refused(opts_for("http://partner-api.p100.io"), "https://");
    client_refused(opts_for("http://127.evil.example"), "https://");
    client_refused(opts_for("http://localhost.evil.example"), "https://");
    client_refused(opts_for("http://127.0.0.1.evil.example"), "https://");
    client_refused(opts_for("http://10.0.0.1"), "https://");
    client_refused(opts_for("http://127.0.0.1@evil.example"), "credentials");
    client_refused(opts_for("https://user:pw@partner-api.p100.io"), "credentials");
    client_refused(opts_for("https://"), "host");
    client_refused(opts_for("https://partner-api.p100.io/?x=1"), "query");

    p100_opts o = opts_for("https://partner-api.p100.io");
    o.api_key = "";
    client_refused(o, "api key");
    o.api_key = NULL;
    client_refused(o, "api key");
    o.api_key = "SECRET\r\nX-Injected: 1";
    client_refused(o, "api key");

    o = opts_for("https://partner-api.p100.io");
    o.status_path = "/v1/kyc/status/";
    client_refused(o, "{externalUserId}");
    o.status_path = "v1/kyc/status/{externalUserId}";
    client_refused(o, "'/'");
    o.status_path = "/v1/kyc status/{externalUserId}";
    client_refused(o, "spaces");
    o.status_path = "/v2/users/{externalUserId}/kyc";
    client_accepted(o);

    o = opts_for("https://partner-api.p100.io");
    o.timeout_ms = -1;
    client_refused(o, "negative");
    o.timeout_ms = 0; /* default */
    o.connect_timeout_ms = 0;
    client_accepted(o);

    /* a CA file that does not exist: refused up front, naming the file */
    o = opts_for("https://localhost:1");
    o.ca_file = "/nonexistent/kycd-test-ca.pem";
    client_refused(o, "/nonexistent/kycd-test-ca.pem");

    kerr err;
    assert_int_equal(p100_client_new(NULL, &o, &err), KERR_INVALID);
    p100_client_free(NULL);
    p100_result_deinit(NULL);
}

static void test_local_failures_need_no_network(void **state)
{
    (void)state;
    p100_opts o = opts_for("http://127.0.0.1:1");
    p100_client *c = NULL;
    kerr err;
    assert_int_equal(p100_client_new(&c, &o, &err), 0);
    p100_result res;
    p100_result_init(&res);
    kyc_status st;
    assert_int_equal(p100_get_status(c, "", &res, &st, &err), KERR_INVALID);
    assert_int_equal(p100_get_status(c, NULL, &res, &st, &err), KERR_INVALID);
    assert_int_equal(p100_get_status(c, "a\nb", &res, &st, &err), KERR_INVALID);
    char big[KYC_ID_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(p100_get_status(c, big, &res, &st, &err), KERR_INVALID);

    char vid[64] = "untouched";
    p100_create_req r = create_req("SALARY"); /* SALARY needs an occupation */
    assert_int_equal(p100_create_kyc(c, &r, &res, vid, sizeof vid, &err), KERR_INVALID);
    assert_non_null(strstr(err.msg, "occupation"));
    assert_string_equal(vid, "untouched");
    p100_result_deinit(&res);
    p100_client_free(c);
}

/* Real calls to a closed loopback port: a transport error, classified
 * TRANSIENT with http_status 0 and curl's message, quickly. */
static void test_closed_port_is_transient(void **state)
{
    (void)state;
    p100_opts o = opts_for("http://127.0.0.1:1");
    p100_client *c = NULL;
    kerr err;
    assert_int_equal(p100_client_new(&c, &o, &err), 0);
    p100_result res;
    p100_result_init(&res);
    kyc_status st;
    memset(&st, 0x5A, sizeof st);
    for (int i = 0; i < 2; i++) { /* twice: the handle is reused */
        int64_t t0 = clock_mono_ms();
        assert_int_equal(p100_get_status(c, "a b/c", &res, &st, &err), 0);
        assert_true(clock_mono_ms() - t0 < 2000);
        assert_int_equal(res.cls, P100_TRANSIENT);
        assert_int_equal(res.http_status, 0);
        assert_true(res.error_message[0] != '\0');
        assert_null(strstr(res.error_message, "SECRET"));
        assert_string_equal(res.error_code, "");
        assert_int_equal(res.retry_after_ms, -1);
        assert_int_equal(res.body.len, 0);
        assert_true(res.latency_ms >= 0);
    }
    unsigned char s[sizeof st];
    memset(s, 0x5A, sizeof s);
    assert_memory_equal(&st, s, sizeof st); /* untouched when not OK */

    char vid[64] = "x";
    p100_create_req r = create_req("OTHER");
    assert_int_equal(p100_create_kyc(c, &r, &res, vid, sizeof vid, &err), 0);
    assert_int_equal(res.cls, P100_TRANSIENT);
    assert_int_equal(res.http_status, 0);
    assert_string_equal(vid, "");
    p100_result_deinit(&res);
    p100_client_free(c);
}

/* https://localhost:1: with the system CA store a clean transport error;
 * with a CA file that cannot be read, the client is refused up front. */
static void test_https_closed_port(void **state)
{
    (void)state;
    p100_opts o = opts_for("https://localhost:1");
    p100_client *c = NULL;
    kerr err;
    kerr_clear(&err);
    o.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(p100_client_new(&c, &o, &err), KERR_CONFIG);
    assert_null(c);
    assert_non_null(strstr(err.msg, "/nonexistent/ca.pem"));

    o.ca_file = NULL;
    assert_int_equal(p100_client_new(&c, &o, &err), 0);
    p100_result res;
    p100_result_init(&res);
    kyc_status st;
    int64_t t0 = clock_mono_ms();
    assert_int_equal(p100_get_status(c, UID, &res, &st, &err), 0);
    assert_true(clock_mono_ms() - t0 < 3000);
    assert_int_equal(res.cls, P100_TRANSIENT);
    assert_int_equal(res.http_status, 0);
    assert_true(res.error_message[0] != '\0');
    assert_null(strstr(res.error_message, "SECRET"));
    p100_result_deinit(&res);
    p100_client_free(c);
}
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redirect_url),
        cmocka_unit_test(test_client_options),
        cmocka_unit_test(test_local_failures_need_no_network),
        cmocka_unit_test(test_closed_port_is_transient),
        cmocka_unit_test(test_https_closed_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
