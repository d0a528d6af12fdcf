/* Unit tests for app/metrics: the Prometheus text exposition (label value
 * and HELP escaping, histogram buckets cumulative with +Inf last, _sum and
 * _count), fixed label sets (a value outside them counts as "other"), the
 * route names, that the counters move, and the process_* gauges. */
#include "testlib.h"

#include <stdio.h>
#include <string.h>

#include "app/metrics.h"
#include "core/check.h"

static void test_label_escaping(void **state)
{
    (void)state;
    kbuf b;
    kbuf_init(&b);
    assert_int_equal(
        metrics_sample(&b, "m", (const char *const[]){"a", "x\"y\\z\nw", "b", "", NULL}, 3), 0);
    assert_string_equal(kbuf_str(&b), "m{a=\"x\\\"y\\\\z\\nw\",b=\"\"} 3\n");
    kbuf_reset(&b);
    assert_int_equal(metrics_sample(&b, "m", NULL, 0.25), 0);
    assert_string_equal(kbuf_str(&b), "m 0.25\n");
    kbuf_deinit(&b);
}

static void test_help_escaping(void **state)
{
    (void)state;
    kbuf b;
    kbuf_init(&b);
    /* HELP escapes backslash and newline, not the double quote. */
    assert_int_equal(metrics_family(&b, "m", "counter", "a \"b\" c\\d\ne"), 0);
    assert_string_equal(kbuf_str(&b), "# HELP m a \"b\" c\\\\d\\ne\n# TYPE m counter\n");
    kbuf_deinit(&b);
}

static void test_histogram(void **state)
{
    (void)state;
    metrics_histogram h = {"h_seconds", "help", 3, {0.1, 0.5, 1}, {0}, 0};
    metrics_histogram_observe(&h, 0.05); /* le 0.1 */
    metrics_histogram_observe(&h, 0.1);  /* le 0.1 (upper bounds are inclusive) */
    metrics_histogram_observe(&h, 0.7);  /* le 1 */
    metrics_histogram_observe(&h, 3);    /* +Inf only */
    kbuf b;
    kbuf_init(&b);
    assert_int_equal(metrics_histogram_write(&b, &h), 0);
    assert_string_equal(kbuf_str(&b), "# HELP h_seconds help\n"
                                      "# TYPE h_seconds histogram\n"
                                      "h_seconds_bucket{le=\"0.1\"} 2\n"
                                      "h_seconds_bucket{le=\"0.5\"} 2\n"
                                      "h_seconds_bucket{le=\"1\"} 3\n"
                                      "h_seconds_bucket{le=\"+Inf\"} 4\n"
                                      "h_seconds_sum 3.85\n"
                                      "h_seconds_count 4\n");
    kbuf_deinit(&b);
}

static void test_registry_fixed_labels(void **state)
{
    (void)state;
    metrics_reset();
    metrics_http_request(metrics_route("/webhooks/p100/kyc-verification-status"), 200);
    metrics_http_request(metrics_route("/webhooks/p100/kyc-verification-status"), 200);
    metrics_http_request(metrics_route("/no/such/user-id-42"), 404);
    metrics_http_request(metrics_route("/readyz"), 299); /* not a code kycd sends */
    metrics_delivery_refused(KYC_KIND_KYC_STATUS, KYC_REFUSE_UNAUTHORIZED);
    metrics_delivery_refused(KYC_KIND_KYC_STATUS, (enum kyc_refusal)99); /* out of range */
    metrics_delivery(KYC_KIND_POA_STATUS, KYC_OUTCOME_APPLIED, KYC_R_LATEST);
    metrics_reconciler_check(P100_TRANSIENT, KYC_CHECK_RETRY);
    metrics_reconciler_check(P100_OK, METRICS_CHECK_ERROR);
    metrics_config_reload(0);
    metrics_observe_ingest(0.003);
    kbuf b;
    kbuf_init(&b);
    assert_int_equal(metrics_write_registry(&b), 0);
    const char *t = kbuf_str(&b);
    assert_non_null(
        strstr(t, "kycd_http_requests_total{route=\"kyc_verification_status\",code=\"200\"} 2\n"));
    assert_non_null(strstr(t, "kycd_http_requests_total{route=\"other\",code=\"404\"} 1\n"));
    assert_non_null(strstr(t, "kycd_http_requests_total{route=\"readyz\",code=\"other\"} 1\n"));
    assert_non_null(strstr(t, "kycd_webhook_deliveries_total{kind=\"kyc_verification_status\","
                              "outcome=\"refused\",reason=\"unauthorized\"} 1\n"));
    assert_non_null(strstr(t, "kycd_webhook_deliveries_total{kind=\"kyc_verification_status\","
                              "outcome=\"refused\",reason=\"other\"} 1\n"));
    /* Enums in, core's names out: the same names as the log and SQL. */
    assert_non_null(strstr(t, "kycd_webhook_deliveries_total{kind=\"poa_verification_status\","
                              "outcome=\"applied\",reason=\"latest\"} 1\n"));
    assert_non_null(strstr(t, "kycd_reconciler_checks_total{outcome=\"transient\","
                              "result=\"retry\"} 1\n"));
    assert_non_null(strstr(t, "kycd_reconciler_checks_total{outcome=\"ok\",result=\"error\"} 1\n"));
    /* Reloads are dense: both results are there from the start. */
    assert_non_null(strstr(t, "kycd_config_reloads_total{result=\"success\"} 0\n"));
    assert_non_null(strstr(t, "kycd_config_reloads_total{result=\"failure\"} 1\n"));
    assert_non_null(strstr(t, "kycd_ingest_duration_seconds_bucket{le=\"0.005\"} 1\n"));
    assert_non_null(strstr(t, "kycd_ingest_duration_seconds_count 1\n"));
    assert_non_null(strstr(t, "# TYPE kycd_p100_request_duration_seconds histogram\n"));
    kbuf_deinit(&b);
    metrics_reset();
}

static void test_routes(void **state)
{
    (void)state;
    assert_string_equal(metrics_route("/webhooks/p100/user-status"), "user_status");
    assert_string_equal(metrics_route("/webhooks/p100/kyc-file-added"), "kyc_file_added");
    assert_string_equal(metrics_route("/webhooks/p100/other"), "other");
    assert_string_equal(metrics_route("/metrics"), "metrics");
    assert_string_equal(metrics_route("/status"), "status");
    assert_string_equal(metrics_route("/healthz"), "healthz");
    assert_string_equal(metrics_route("/other"), "other");
    assert_string_equal(metrics_route(NULL), "other");
}

/* The four process families, each with its HELP and TYPE, in the order a
 * Prometheus client library writes them. */
static void test_process_gauges(void **state)
{
    (void)state;
    kbuf b;
    kbuf_init(&b);
    assert_int_equal(metrics_write_process(&b, 1700000000.9), 0);
    const char *t = kbuf_str(&b);
    const char *cpu = strstr(t, "# TYPE process_cpu_seconds_total counter\n");
    const char *rss = strstr(t, "# TYPE process_resident_memory_bytes gauge\n");
    const char *fds = strstr(t, "# TYPE process_open_fds gauge\n");
    const char *start = strstr(t, "# TYPE process_start_time_seconds gauge\n");
    assert_non_null(cpu);
    assert_non_null(rss);
    assert_non_null(fds);
    assert_non_null(start);
    assert_true(cpu < rss && rss < fds && fds < start);
    assert_non_null(strstr(t, "\nprocess_start_time_seconds 1700000000\n"));
    kbuf_deinit(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_escaping), cmocka_unit_test(test_help_escaping),
        cmocka_unit_test(test_histogram),      cmocka_unit_test(test_registry_fixed_labels),
        cmocka_unit_test(test_routes),         cmocka_unit_test(test_process_gauges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
