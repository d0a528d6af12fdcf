#!/usr/bin/env bash
# End-to-end: a real Prometheus (Debian's `prometheus`, run by hand on
# loopback with its own config and data folder in the test's temp dir,
# scrape_interval 1s) scrapes kycd's admin listener. A known load is sent
# (accepted deliveries of two kinds, a repeat, 401s, quarantined bodies,
# 413s); then
# Prometheus' HTTP query API, polled with deadlines, must agree with the
# database (deliveries by kind, outcome and reason) and with the load
# (requests by code).
# kycd-test: once
# shellcheck disable=SC2119  # e2e_start_kycd without arguments
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v prometheus >/dev/null || e2e_abort "prometheus is not installed (deploy/packages.sh lists it)"
e2e_fresh_db
e2e_start_kycd

e2e_section "a real Prometheus scraping the admin listener"
PROM_PORT=$(e2e_free_port)
PROM_DIR=$E2E_TMP/prometheus
mkdir -p "$PROM_DIR/data"
cat >"$PROM_DIR/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: kycd
    static_configs:
      - targets: ['127.0.0.1:$E2E_ADMIN_PORT']
EOF
prometheus --config.file="$PROM_DIR/prometheus.yml" --storage.tsdb.path="$PROM_DIR/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$PROM_DIR/log" 2>&1 &
PROM_PID=$!
e2e_track_pid "$PROM_PID"
PROM=http://127.0.0.1:$PROM_PORT

# promq EXPR: the value of the query's single sample now ("" when no sample).
promq() {
  curl -sS --max-time 5 "$PROM/api/v1/query" --data-urlencode "query=$1" 2>/dev/null |
    python3 -c 'import json,sys
d=json.load(sys.stdin)["data"]["result"]
print(d[0]["value"][1] if len(d) == 1 else "")' 2>/dev/null || true
}
promq_is() { [ "$(promq "$1")" = "$2" ]; }
# expect EXPR WANT MSG: Prometheus reaches WANT within 20 s (the scrapes
# are 1 s apart: the figure must agree once the last one landed).
expect() {
  if e2e_wait_cmd 20 promq_is "$1" "$2"; then
    pass "$3: $1 = $2"
  else
    fail "$3: $1 is '$(promq "$1")', want $2"
  fi
}

ready() { curl -sf --max-time 2 "$PROM/-/ready" >/dev/null; }
if e2e_wait_cmd 30 ready; then pass "Prometheus is ready"; else
  sed 's/^/  prometheus: /' "$PROM_DIR/log" | tail -n 20
  e2e_abort "Prometheus did not get ready within 30 s"
fi
expect 'up{job="kycd"}' 1 "Prometheus scrapes kycd"
expect 'kycd_db_up' 1 "the database is up"

e2e_section "a known load"
n=0
for _ in $(seq 1 8); do
  [ "$(post "$E2E_KYC_PATH" "$(kyc_body "$(e2e_uuid)" NOT_VERIFIED PENDING)")" = 200 ] && n=$((n + 1))
done
u=$(e2e_uuid)
for _ in 1 2; do # the same body twice: the second is a repeat
  [ "$(post "$E2E_KYC_PATH" "$(kyc_body "$u" NOT_VERIFIED PENDING)")" = 200 ] && n=$((n + 1))
done
for _ in 1 2 3; do
  [ "$(post "$E2E_POA_PATH" "$(status_body "$(e2e_uuid)" WAITING)")" = 200 ] && n=$((n + 1))
done
assert_eq 13 "$n" "13 deliveries accepted"
n401=0 nq=0 n413=0
for _ in 1 2 3 4; do
  [ "$(E2E_AUTH="Bearer not-the-token-not-the-token" post "$E2E_KYC_PATH" '{}')" = 401 ] && n401=$((n401 + 1))
done
for _ in 1 2 3 4 5; do
  # authentic, fails validation: 200, kept in kyc.quarantine (README "Quarantine and replay")
  [ "$(post "$E2E_KYC_PATH" '{"externalUserId":1}')" = 200 ] && nq=$((nq + 1))
done
head -c 70000 /dev/zero | tr '\0' 'x' >"$E2E_TMP/big"
for _ in 1 2; do
  [ "$(post "$E2E_KYC_PATH" "@$E2E_TMP/big")" = 413 ] && n413=$((n413 + 1))
done
assert_eq "4 5 2" "$n401 $nq $n413" "the load's refusals: 4 x 401, 2 x 413; and 5 quarantined (200)"

e2e_section "Prometheus agrees with the load"
K='route="kyc_verification_status"'
expect "kycd_http_requests_total{$K,code=\"200\"}" $((10 + nq)) "KYC webhooks answered 200 (quarantined ones too)"
expect 'kycd_http_requests_total{route="poa_verification_status",code="200"}' 3 "POA webhooks answered 200"
expect "kycd_http_requests_total{$K,code=\"401\"}" "$n401" "401s"
expect "kycd_http_requests_total{$K,code=\"400\"}" 0 "no 400s"
expect 'kycd_webhook_quarantined_total{kind="kyc_verification_status",stored="database"}' "$nq" "quarantined deliveries"
expect "kycd_http_requests_total{$K,code=\"413\"}" "$n413" "413s"
expect 'sum(kycd_webhook_deliveries_total{outcome="refused"})' $((n401 + n413)) "refused deliveries"
expect 'kycd_webhook_deliveries_total{kind="kyc_verification_status",outcome="refused",reason="unauthorized"}' "$n401" "refused as unauthorized (the other kinds' series are there too, at 0)"
expect 'kycd_ingest_duration_seconds_count' 13 "every accepted delivery timed from accepted to durable"

e2e_section "Prometheus agrees with the database"
assert_eq 13 "$(sql "SELECT count(*) FROM kyc.webhook_events")" "13 rows in kyc.webhook_events"
assert_eq "$nq" "$(sql "SELECT count(*) FROM kyc.quarantine")" "$nq rows in kyc.quarantine"
expect 'sum(kycd_webhook_deliveries_total{outcome!~"refused|quarantined"})' 13 "stored deliveries"
expect 'sum(kycd_webhook_deliveries_total{outcome="quarantined"})' "$nq" "quarantined deliveries, by outcome"
while read -r kind outcome reason count; do
  [ -n "$kind" ] || continue
  expect "kycd_webhook_deliveries_total{kind=\"$kind\",outcome=\"$outcome\",reason=\"$reason\"}" "$count" \
    "the database's $kind/$outcome/$reason"
done <<<"$(sql "SELECT kind, outcome, outcome_reason, count(*) FROM kyc.webhook_events GROUP BY 1, 2, 3 ORDER BY 1, 2, 3" | tr '|' ' ')"

kill -TERM "$PROM_PID" 2>/dev/null || true
e2e_wait_exit "$PROM_PID" 20 || fail "Prometheus did not stop within 20 s"
e2e_stop_kycd
