/* Unit tests for app/metrics: the Prometheus text exposition (label value
 * and HELP escaping, histogram buckets cumulative with +Inf last, _sum and
 * _count), fixed label sets (a value outside them counts as "other"), the
 * route names, that the counters move, that a fresh registry exports
 * every known label set at 0 (and only those), and the process_* gauges. */
#include "testlib.h"

#include <stdio.h>
#include <string.h>

#include "app/metrics.h"
#include "core/check.h"
#include "core/policy.h"
#include "core/state.h"
#include "core/vocab.h"

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
    metrics_reconciler_correction(KYC_WHY_PENDING, 1); /* overdue: the cause, whatever the why */
    metrics_reconciler_correction(KYC_WHY_HELD, 0);
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
    assert_non_null(strstr(t, "kycd_reconciler_corrections_total{cause=\"webhook_overdue\"} 1\n"));
    assert_non_null(strstr(t, "kycd_reconciler_corrections_total{cause=\"held\"} 1\n"));
    assert_non_null(strstr(t, "kycd_reconciler_corrections_total{cause=\"pending\"} 0\n"));
    /* Reloads are dense: both results are there from the start. */
    assert_non_null(strstr(t, "kycd_config_reloads_total{result=\"success\"} 0\n"));
    assert_non_null(strstr(t, "kycd_config_reloads_total{result=\"failure\"} 1\n"));
    assert_non_null(strstr(t, "kycd_ingest_duration_seconds_bucket{le=\"0.005\"} 1\n"));
    assert_non_null(strstr(t, "kycd_ingest_duration_seconds_count 1\n"));
    assert_non_null(strstr(t, "# TYPE kycd_p100_request_duration_seconds histogram\n"));
    kbuf_deinit(&b);
    metrics_reset();
}

/* Lines of t that start with prefix. */
static int count_lines(const char *t, const char *prefix)
{
    int n = 0;
    size_t len = strlen(prefix);
    for (const char *p = t; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        n += strncmp(p, prefix, len) == 0;
    return n;
}

/* A fresh registry: every known label set at 0 from the first scrape (so
 * rate() and absent() work before the first delivery), and nothing else. */
static void test_registry_fresh_zeros(void **state)
{
    (void)state;
    metrics_reset();
    kbuf b;
    kbuf_init(&b);
    assert_int_equal(metrics_write_registry(&b), 0);
    const char *t = kbuf_str(&b);
    /* Every route x code (9 x 13). */
    assert_int_equal(count_lines(t, "kycd_http_requests_total{"), 9 * 13);
    assert_non_null(
        strstr(t, "kycd_http_requests_total{route=\"kyc_verification_status\",code=\"401\"} 0\n"));
    assert_non_null(strstr(t, "kycd_http_requests_total{route=\"other\",code=\"other\"} 0\n"));
    /* Deliveries: the pairs that can occur, per kind (12 KYC status, 5 POA,
     * 4 each for file and user status: with quarantined x invalid_body for
     * every kind), and 10 refusals for each kind. */
    assert_int_equal(count_lines(t, "kycd_webhook_deliveries_total{"), 12 + 5 + 4 + 4 + 4 * 10);
    assert_int_equal(count_lines(t, "kycd_webhook_deliveries_total{kind=\"kyc_file_added\","), 14);
    assert_non_null(strstr(t, "kycd_webhook_deliveries_total{kind=\"poa_verification_status\","
                              "outcome=\"quarantined\",reason=\"invalid_body\"} 0\n"));
    /* Corrections: every cause (the claim's four reasons and
     * webhook_overdue), not "other". */
    assert_int_equal(count_lines(t, "kycd_reconciler_corrections_total{"), 5);
    assert_non_null(strstr(t, "kycd_reconciler_corrections_total{cause=\"webhook_overdue\"} 0\n"));
    assert_non_null(strstr(t, "kycd_reconciler_corrections_total{cause=\"recheck_verified\"} 0\n"));
    assert_null(strstr(t, "kycd_reconciler_corrections_total{cause=\"other\"}"));
    /* Quarantined deliveries: every kind x where it was made durable. */
    assert_int_equal(count_lines(t, "kycd_webhook_quarantined_total{"), 4 * 2);
    assert_non_null(strstr(t, "kycd_webhook_quarantined_total{kind=\"kyc_verification_status\","
                              "stored=\"spool\"} 0\n"));
    assert_null(strstr(t, "kycd_webhook_quarantined_total{kind=\"other\""));
    assert_non_null(strstr(t, "kycd_webhook_deliveries_total{kind=\"kyc_verification_status\","
                              "outcome=\"held\",reason=\"out_of_order\"} 0\n"));
    assert_non_null(strstr(t, "kycd_webhook_deliveries_total{kind=\"poa_verification_status\","
                              "outcome=\"applied\",reason=\"latest\"} 0\n"));
    assert_non_null(strstr(t, "kycd_webhook_deliveries_total{kind=\"user_status\","
                              "outcome=\"recorded\",reason=\"repeat\"} 0\n"));
    assert_non_null(strstr(t, "kycd_webhook_deliveries_total{kind=\"kyc_file_added\","
                              "outcome=\"spooled\",reason=\"database_unavailable\"} 0\n"));
    assert_non_null(strstr(t, "kycd_webhook_deliveries_total{kind=\"user_status\","
                              "outcome=\"refused\",reason=\"unauthorized\"} 0\n"));
    /* Pairs that cannot occur are not invented. */
    assert_null(strstr(t, "kind=\"user_status\",outcome=\"applied\""));
    assert_null(strstr(t, "kind=\"kyc_verification_status\",outcome=\"recorded\""));
    assert_null(strstr(t, "reason=\"reconciler\""));
    assert_null(strstr(t, "reason=\"not_found\""));
    assert_null(strstr(t, "kind=\"other\""));
    assert_null(strstr(t, "reason=\"other\""));
    /* Checks: every P100 answer class x every result and error (6 x 6). */
    assert_int_equal(count_lines(t, "kycd_reconciler_checks_total{"), P100_CLASS_COUNT * 6);
    assert_non_null(
        strstr(t, "kycd_reconciler_checks_total{outcome=\"rate_limited\",result=\"error\"} 0\n"));
    assert_null(strstr(t, "kycd_reconciler_checks_total{outcome=\"other\""));
    assert_int_equal(count_lines(t, "kycd_config_reloads_total{"), 2);
    /* No counter cell but 0. */
    assert_null(strstr(t, "} 1\n"));
    kbuf_deinit(&b);
}

/* What core can decide for a webhook is among the series exported at 0:
 * every verdict of kyc_state_decide (webhook source) over documented,
 * undocumented and missing values, repeats and ages, and of
 * kyc_other_decide for each other kind. */
static int exported(const char *t, enum kyc_kind k, enum kyc_outcome o, enum kyc_reason r)
{
    char want[200];
    snprintf(want, sizeof want,
             "kycd_webhook_deliveries_total{kind=\"%s\",outcome=\"%s\",reason=\"%s\"} 0\n",
             vocab_name(&VOCAB_KIND, k), vocab_name(&VOCAB_OUTCOME, o),
             vocab_name(&VOCAB_REASON, r));
    return strstr(t, want) != NULL;
}

static void test_registry_covers_core(void **state)
{
    (void)state;
    metrics_reset();
    kbuf b;
    kbuf_init(&b);
    assert_int_equal(metrics_write_registry(&b), 0);
    const char *t = kbuf_str(&b);
    static const char *const v[] = {"", "NOT_VERIFIED", "VERIFIED", "EXPIRED", "BOGUS"};
    static const char *const a[] = {"",           "PENDING", "VERIFICATION", "REJECTED_BY_PROVIDER",
                                    "SUCCESSFUL", "BOGUS"};
    static const int64_t ages[] = {-1, 0, 1000000};
    int seen[KYC_OUTCOME_COUNT][KYC_REASON_COUNT] = {{0}};
    for (int cv = 0; cv < 5; cv++)
        for (int ca = 0; ca < 6; ca++)
            for (int iv = 0; iv < 5; iv++)
                for (int ia = 0; ia < 6; ia++)
                    for (int rep = 0; rep < 2; rep++)
                        for (int g = 0; g < 3; g++) {
                            kyc_status cur, in;
                            memset(&cur, 0, sizeof cur);
                            memset(&in, 0, sizeof in);
                            snprintf(cur.verification, sizeof cur.verification, "%s", v[cv]);
                            snprintf(cur.attempt, sizeof cur.attempt, "%s", a[ca]);
                            snprintf(in.verification, sizeof in.verification, "%s", v[iv]);
                            snprintf(in.attempt, sizeof in.attempt, "%s", a[ia]);
                            kyc_transition tr = {&cur, ages[g], &in, KYC_SRC_WEBHOOK, rep, 120000};
                            kyc_verdict d = kyc_state_decide(&tr);
                            seen[d.decision][d.reason] = 1;
                        }
    int n = 0;
    for (int o = 0; o < KYC_OUTCOME_COUNT; o++)
        for (int r = 0; r < KYC_REASON_COUNT; r++)
            if (seen[o][r]) {
                n++;
                if (!exported(t, KYC_KIND_KYC_STATUS, o, r))
                    fail_msg("kyc_state_decide gives %s/%s, not exported",
                             vocab_name(&VOCAB_OUTCOME, o), vocab_name(&VOCAB_REASON, r));
            }
    assert_int_equal(n, 10); /* every state-machine pair of the table */
    for (int k = KYC_KIND_POA_STATUS; k < KYC_KIND_COUNT; k++)
        for (int rep = 0; rep < 2; rep++)
            for (int same = 0; same < 2; same++) {
                kyc_other_verdict d =
                    kyc_other_decide(k, rep, "WAITING", same ? "WAITING" : "APPROVED");
                assert_true(exported(t, k, d.outcome, d.reason));
            }
    for (int k = 0; k < KYC_KIND_COUNT; k++)
        assert_true(exported(t, k, KYC_OUTCOME_SPOOLED, KYC_R_DATABASE_UNAVAILABLE));
    kbuf_deinit(&b);
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
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_help_escaping),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_registry_fixed_labels),
        cmocka_unit_test(test_registry_fresh_zeros),
        cmocka_unit_test(test_registry_covers_core),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_process_gauges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
