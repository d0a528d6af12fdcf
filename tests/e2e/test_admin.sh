#!/usr/bin/env bash
# End-to-end: the admin listener (admin_listen, plain HTTP on loopback).
# It answers /healthz, /readyz (with the details), /metrics and /status;
# the public listener's probes carry no detail and it has no /metrics;
# `promtool check metrics` accepts the real output; a fresh kycd exports
# every known counter series at 0; the counters move by exactly a known load; admin_allow_cidrs refuses a source outside it.
# `kycd health` (the image's HEALTHCHECK): exit 0 when the admin listener's
# /healthz (or --path) answers 200, 1 when nothing answers, 2 without one.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_fresh_db
e2e_start_kycd

# metric NAME{LABELS}: the sample's value on /metrics ("" when absent).
metric() {
  admin_get /metrics >/dev/null
  awk -v want="$1" '$1 == want {print $2}' "$E2E_RESP_BODY"
}
# delta BEFORE AFTER: AFTER - BEFORE, an absent sample counting as 0.
delta() { echo $(( ${2:-0} - ${1:-0} )); }

e2e_section "the admin listener answers, the public one keeps its secrets"
assert_eq 200 "$(admin_get /healthz)" "admin /healthz: 200"
assert_eq 200 "$(admin_get /readyz)" "admin /readyz: 200"
assert_contains "$(resp_body)" '"database":"up"' "admin /readyz carries the detail: $(resp_body)"
assert_contains "$(resp_body)" '"refused_connections":' "... and the counters"
assert_eq 200 "$(get /readyz)" "public /readyz: 200"
assert_eq '{"status":"ready"}' "$(resp_body)" "public /readyz body: the status only"
assert_eq 404 "$(get /metrics)" "no /metrics on the public listener"
assert_eq 404 "$(get /status)" "no /status on the public listener"
assert_eq 404 "$(admin_get "$E2E_KYC_PATH" --data-binary '{}' -H 'Content-Type: application/json')" \
  "no webhooks on the admin listener"

e2e_section "/metrics: Prometheus text format, accepted by promtool"
assert_eq 200 "$(admin_get /metrics)" "admin /metrics: 200"
assert_eq "text/plain; version=0.0.4; charset=utf-8" "$(resp_header Content-Type)" "its Content-Type"
cp "$E2E_RESP_BODY" "$E2E_TMP/metrics.txt"
if out=$(promtool check metrics <"$E2E_TMP/metrics.txt" 2>&1); then
  pass "promtool check metrics: no problem"
else
  fail "promtool check metrics: $out"
fi
for name in kycd_build_info kycd_http_requests_total kycd_webhook_deliveries_total \
  kycd_ingest_duration_seconds kycd_db_up kycd_db_pool_connections kycd_spool_records \
  kycd_spool_bytes kycd_spool_oldest_age_seconds kycd_spool_dead_letters \
  kycd_reconciler_checks_total kycd_reconciler_paused kycd_p100_request_duration_seconds \
  kycd_config_reloads_total kycd_config_last_reload_success_timestamp_seconds \
  kycd_tls_certificate_expiry_timestamp_seconds kycd_connections_refused_total \
  kycd_header_timeouts_total process_resident_memory_bytes process_open_fds \
  process_cpu_seconds_total process_start_time_seconds; do
  grep -q "^# TYPE $name " "$E2E_TMP/metrics.txt" || fail "/metrics lacks $name"
done
pass "/metrics names every metric of docs/operations.md's table"
# Before any webhook: every known label set is there at 0 (rate() and
# absent() work from the first scrape), and no more than those.
count_series() { grep -c "^$1{" "$E2E_TMP/metrics.txt" || true; }
assert_eq "117 65 36 2" \
  "$(count_series kycd_http_requests_total) $(count_series kycd_webhook_deliveries_total) $(count_series kycd_reconciler_checks_total) $(count_series kycd_config_reloads_total)" \
  "a fresh kycd's counters: every route x code, the 65 delivery pairs that can occur (with quarantined for each kind), every answer x result, both reload results"
assert_contains "$(cat "$E2E_TMP/metrics.txt")" \
  'kycd_webhook_deliveries_total{kind="kyc_verification_status",outcome="applied",reason="first"} 0' \
  "a delivery outcome is exported at 0 before the first delivery"
assert_match "$(grep '^kycd_build_info{' "$E2E_TMP/metrics.txt")" \
  '^kycd_build_info\{version="[^"]+",schema="[0-9]+",civetweb="[^"]+",openssl="[^"]+"\} 1$' \
  "kycd_build_info's labels"
assert_eq 1 "$(metric kycd_db_up)" "kycd_db_up 1"
expiry=$(metric kycd_tls_certificate_expiry_timestamp_seconds)
want=$(date -d "$(openssl x509 -enddate -noout -in "$E2E_CERT" | cut -d= -f2)" +%s)
assert_eq "$want" "$expiry" "the certificate's expiry is its notAfter"

e2e_section "/status"
assert_eq 200 "$(admin_get /status)" "admin /status: 200"
st=$(resp_body)
if python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert {"version","schema","uptime_seconds","config_generation","spool","database","reconciler","p100"} <= d.keys(); assert d["database"]["up"] is True; assert d["reconciler"]["enabled"] is False' "$st"; then
  pass "/status is JSON with version, schema, uptime, config generation, spool, database, reconciler, P100"
else
  fail "/status: $st"
fi
assert_eq "$(sql "SELECT max(version) FROM kyc.schema_migrations")" "$(json_num schema "$st")" \
  "/status: the schema is the database's"

e2e_section "kycd health"
health() { # health ENV... [-- ARGS]: kycd health under env -i, exit code in $hrc
  local envs=()
  while [ "$#" -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
  [ "$#" -gt 0 ] && shift
  hrc=0
  hout=$(env -i "${envs[@]}" timeout 10 "$TEST_KYCD_BIN" health "$@" 2>&1) || hrc=$?
}
health "KYCD_ADMIN_LISTEN=127.0.0.1:$E2E_ADMIN_PORT"
assert_eq 0 "$hrc" "kycd health against the running kycd: exit 0 ($hout)"
health "KYCD_ADMIN_LISTEN=0.0.0.0:$E2E_ADMIN_PORT" -- --path /readyz
assert_eq 0 "$hrc" "a wildcard admin_listen is reached on loopback; --path /readyz: exit 0 ($hout)"
health "KYCD_ADMIN_LISTEN=127.0.0.1:$E2E_ADMIN_PORT" -- --path /no-such
assert_eq 1 "$hrc" "a path answering 404: exit 1 ($hout)"
health "KYCD_ADMIN_LISTEN=127.0.0.1:$(e2e_free_port)"
assert_eq 1 "$hrc" "nothing listening: exit 1 ($hout)"
health "KYCD_ADMIN_LISTEN=127.0.0.1:$E2E_PORT"
assert_eq 1 "$hrc" "a TLS listener: exit 1 ($hout)"
health "KYCD_ADMIN_LISTEN=off"
assert_eq 2 "$hrc" "admin_listen = off: exit 2 ($hout)"

e2e_section "the counters move by a known load"
K='route="kyc_verification_status"'
ok0=$(metric "kycd_http_requests_total{$K,code=\"200\"}")
un0=$(metric "kycd_http_requests_total{$K,code=\"401\"}")
bad0=$(metric "kycd_http_requests_total{$K,code=\"400\"}")
big0=$(metric "kycd_http_requests_total{$K,code=\"413\"}")
ref0=$(metric 'kycd_webhook_deliveries_total{kind="kyc_verification_status",outcome="refused",reason="unauthorized"}')
ing0=$(metric kycd_ingest_duration_seconds_count)
inf0=$(metric 'kycd_ingest_duration_seconds_bucket{le="+Inf"}')
n200=0
for _ in 1 2 3 4 5; do
  [ "$(post "$E2E_KYC_PATH" "$(kyc_body "$(e2e_uuid)" NOT_VERIFIED PENDING)")" = 200 ] && n200=$((n200 + 1))
done
assert_eq 5 "$n200" "5 webhooks accepted"
for _ in 1 2 3; do
  E2E_AUTH="Bearer wrong-token-wrong-token-wrong-token" post "$E2E_KYC_PATH" '{}' >/dev/null
done
post "$E2E_KYC_PATH" '{"externalUserId":' >/dev/null
post "$E2E_KYC_PATH" '[1]' >/dev/null
head -c 70000 /dev/zero | tr '\0' 'x' >"$E2E_TMP/big"
post "$E2E_KYC_PATH" "@$E2E_TMP/big" >/dev/null
assert_eq "7 3 0 1" \
  "$(delta "$ok0" "$(metric "kycd_http_requests_total{$K,code=\"200\"}")") $(delta "$un0" "$(metric "kycd_http_requests_total{$K,code=\"401\"}")") $(delta "$bad0" "$(metric "kycd_http_requests_total{$K,code=\"400\"}")") $(delta "$big0" "$(metric "kycd_http_requests_total{$K,code=\"413\"}")")" \
  "kycd_http_requests_total by code: 7 x 200 (the 2 malformed bodies quarantined), 3 x 401, 0 x 400, 1 x 413"
assert_eq 3 "$(delta "$ref0" "$(metric 'kycd_webhook_deliveries_total{kind="kyc_verification_status",outcome="refused",reason="unauthorized"}')")" \
  "kycd_webhook_deliveries_total: 3 refused as unauthorized"
assert_eq "5 5" "$(delta "$ing0" "$(metric kycd_ingest_duration_seconds_count)") $(delta "$inf0" "$(metric 'kycd_ingest_duration_seconds_bucket{le="+Inf"}')")" \
  "kycd_ingest_duration_seconds: 5 observations, _count equal to the +Inf bucket"
stored=$(sql "SELECT count(*) FROM kyc.webhook_events")
applied=$(metric 'kycd_webhook_deliveries_total{kind="kyc_verification_status",outcome="applied",reason="first"}')
assert_eq "$stored" "${applied:-0}" "deliveries applied (first) on /metrics = rows in kyc.webhook_events"
assert_not_contains "$(cat "$E2E_RESP_BODY")" "wrong-token" "no token in /metrics"
e2e_stop_kycd

e2e_section "admin_allow_cidrs refuses a source outside it"
e2e_start_kycd --no-migrate KYCD_ADMIN_ALLOW_CIDRS=127.0.0.2/32
assert_eq 200 "$(admin_get /healthz --interface 127.0.0.2)" "from 127.0.0.2 (allowed): 200"
assert_eq 000 "$(admin_get /healthz)" "from 127.0.0.1 (not in admin_allow_cidrs): no answer"
assert_eq 200 "$(get /readyz)" "the public listener still answers 127.0.0.1"
admin_get /metrics --interface 127.0.0.2 >/dev/null
got=$(awk '$1 == "kycd_connections_refused_total{listener=\"admin\"}" {print $2}' "$E2E_RESP_BODY")
assert_eq 1 "${got:-none}" "kycd_connections_refused_total{listener=\"admin\"} counts the refusal"
e2e_stop_kycd

e2e_section "admin_listen = off"
e2e_start_kycd --no-migrate KYCD_ADMIN_LISTEN=off
assert_eq 000 "$(admin_get /healthz)" "nothing listens on the admin port"
assert_eq 200 "$(get /readyz)" "the public listener answers"
e2e_stop_kycd

