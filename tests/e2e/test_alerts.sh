#!/usr/bin/env bash
# kycd-test: once
# End-to-end: the alert rules and the Grafana dashboard that ship in deploy/.
#   1. `promtool check rules` and `promtool test rules` (Debian's prometheus
#      package) on deploy/prometheus/kycd-alerts.yml and its unit tests; every
#      alert has a firing and a not-firing case (tests/tools/alert_tests_check.py);
#      a broken expectation and an untested alert are caught;
#   2. the metric-name checker (tests/tools/metric_names_check.py): its
#      self-tests, and it fails on a name no kycd exports and on a bare
#      histogram name;
#   3. the dashboard loads and has the structure Grafana needs
#      (tests/tools/dashboard_check.py); each PostgreSQL panel's SQL, macros
#      expanded as Grafana does, runs as the read-only role kyc_analyst on a
#      real migrated database that a real kycd, its reconciler and the P100
#      simulator filled, and returns the rows that data implies;
#   4. every metric a panel or an alert names is in a real scrape of that
#      kycd's admin listener (/metrics on E2E_ADMIN_PORT), with the label
#      values the rules select on;
#   5. a real Prometheus scraping that listener loads every rule, evaluates
#      each without an error, and the recording rule sees deliveries.
# Must never: pass a part it could not run (a missing tool or listener is a
# failure), wait without a bound.
#
# Environment: TEST_KYCD_BIN, TEST_P100_SIM, TEST_PG, TEST_KYCD_SRC (lib.sh).
# shellcheck disable=SC2119  # lib.sh functions with optional arguments, called without
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

RULES=$TEST_KYCD_SRC/deploy/prometheus/kycd-alerts.yml
RULE_TESTS=$TEST_KYCD_SRC/tests/prometheus/kycd-alerts.test.yml
DASH=$TEST_KYCD_SRC/deploy/grafana/kycd-dashboard.json
TOOLS=$TEST_KYCD_SRC/tests/tools
NAMES=$TEST_KYCD_SRC/tests/prometheus/metric-names.txt
for tool in promtool python3; do
  command -v "$tool" >/dev/null 2>&1 || e2e_abort "needs $tool (deploy/packages.sh: prometheus, python3)"
done
python3 -c 'import yaml' 2>/dev/null || e2e_abort "needs python3-yaml (deploy/packages.sh)"

# run CMD...: output in $OUT, exit code in $RC.
run() { RC=0; OUT=$(timeout 60 "$@" 2>&1) || RC=$?; }
# expect_rc WANT WHAT CMD...: CMD must exit WANT.
expect_rc() {
  local want=$1 what=$2; shift 2
  run "$@"
  if [ "$RC" = "$want" ]; then pass "$what (exit $RC)"; else fail "$what: exit $RC, want $want: $(e2e__clip "$OUT")"; fi
}

# ------------------------------------------------------------------------------
e2e_section "1. promtool check rules, promtool test rules"
expect_rc 0 "promtool check rules deploy/prometheus/kycd-alerts.yml" promtool check rules "$RULES"
assert_match "$OUT" 'SUCCESS: [0-9]+ rules found' "promtool found the rules"
expect_rc 0 "promtool test rules tests/prometheus/kycd-alerts.test.yml" promtool test rules "$RULE_TESTS"
assert_contains "$OUT" "SUCCESS" "every promtool unit test passes"
expect_rc 0 "every alert has a firing and a not-firing case, the recording rule a test" \
  python3 "$TOOLS/alert_tests_check.py" "$RULES" "$RULE_TESTS"
n_alerts=$(grep -c '^alert ' <<<"$OUT" || true)
assert_eq "$(grep -c '^ *- alert: ' "$RULES")" "$n_alerts" "alert_tests_check saw each of the $n_alerts alerts"

# The same tests with one expected summary changed must fail: promtool
# really compares the annotations.
sed -e "s#\.\./\.\./deploy/prometheus/kycd-alerts\.yml#$RULES#" \
    -e 's/refused 100 webhook requests/refused 99 webhook requests/' "$RULE_TESTS" >"$E2E_TMP/broken.test.yml"
expect_rc 1 "promtool test rules fails on a wrong expected annotation" promtool test rules "$E2E_TMP/broken.test.yml"
assert_contains "$OUT" "alertname: KycdWebhookUnauthorized" "the failure names the alert"
# An alert without test cases is reported.
{ cat "$RULES"; printf '      - alert: KycdUntested\n        expr: vector(1)\n'; } >"$E2E_TMP/extra.yml"
expect_rc 1 "alert_tests_check fails on an alert without cases" \
  python3 "$TOOLS/alert_tests_check.py" "$E2E_TMP/extra.yml" "$RULE_TESTS"
assert_contains "$OUT" "FAIL alert KycdUntested needs a firing and a not-firing case" "it names the alert"

# ------------------------------------------------------------------------------
e2e_section "1b. the up rules on the series the shipped Kubernetes monitoring writes"
# The labels the Prometheus Operator gives a target of the ServiceMonitor
# in deploy/kubernetes (rendered overlay): job from the Service's jobLabel,
# else the Service's name; namespace, service, endpoint (port name), pod,
# container, instance (pod address:port).
operator_labels() {
  python3 - "$1" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1], encoding="utf-8")) if d]
sm = next(d for d in docs if d["kind"] == "ServiceMonitor")
sel = sm["spec"]["selector"]["matchLabels"]
svcs = [d for d in docs if d["kind"] == "Service"
        and all((d["metadata"].get("labels") or {}).get(k) == v for k, v in sel.items())]
if len(svcs) != 1:
    sys.exit("the ServiceMonitor selects %d Services, want 1" % len(svcs))
svc = svcs[0]
jl = sm["spec"].get("jobLabel")
job = (svc["metadata"].get("labels") or {}).get(jl) if jl else None
ep = sm["spec"]["endpoints"][0]["port"]
sts = next(d for d in docs if d["kind"] == "StatefulSet" and d["spec"]["serviceName"] == svc["metadata"]["name"])
c = sts["spec"]["template"]["spec"]["containers"][0]
port = next(p["containerPort"] for p in c["ports"] if p["name"] == ep)
print('job="%s",namespace="%s",service="%s",endpoint="%s",pod="%s-0",container="%s",instance="10.244.1.7:%d"'
      % (job or svc["metadata"]["name"], svc["metadata"].get("namespace", "default"),
         svc["metadata"]["name"], ep, sts["metadata"]["name"], c["name"], port))
PY
}
if ! command -v kubectl >/dev/null 2>&1; then
  fail "needs kubectl to render deploy/kubernetes (deploy/packages.sh)"
elif ! kubectl kustomize "$TEST_KYCD_SRC/deploy/kubernetes/overlays/example" >"$E2E_TMP/k8s.yaml" 2>"$E2E_TMP/k8s.err"; then
  fail "kubectl kustomize deploy/kubernetes/overlays/example: $(e2e__clip "$(cat "$E2E_TMP/k8s.err")")"
else
  RC=0
  OPL=$(operator_labels "$E2E_TMP/k8s.yaml" 2>&1) || RC=$?
  assert_eq 0 "$RC" "the Operator's labels for the shipped ServiceMonitor: $OPL"
  assert_contains "$(cat "$RULE_TESTS")" "up{$OPL}" \
    "tests/prometheus/kycd-alerts.test.yml tests the up rules on exactly these labels"
  # The real rules on a target with those labels that stopped answering:
  # KycdDown's expression selects it, and KycdMetricsAbsent stays quiet.
  python3 - "$RULES" "$OPL" >"$E2E_TMP/operator.test.yml" <<'PY'
import json, sys, yaml
rules = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
down = next(r["expr"] for g in rules["groups"] for r in g["rules"] if r.get("alert") == "KycdDown")
series = "up{%s}" % sys.argv[2]
print(json.dumps({"rule_files": [sys.argv[1]], "evaluation_interval": "1m", "tests": [{
    "interval": "1m",
    "input_series": [{"series": series, "values": "0x15"}],
    "promql_expr_test": [{"expr": down, "eval_time": "5m",
                          "exp_samples": [{"labels": series, "value": 0}]}],
    "alert_rule_test": [{"eval_time": "12m", "alertname": "KycdMetricsAbsent", "exp_alerts": []}],
}]}))
PY
  expect_rc 0 "promtool: KycdDown's expression selects a down target labelled as the Operator labels it, and it is not absent" \
    promtool test rules "$E2E_TMP/operator.test.yml"
fi

# ------------------------------------------------------------------------------
e2e_section "2. the metric-name checker, on its own"
expect_rc 0 "metric_names_check.py --self-test" python3 "$TOOLS/metric_names_check.py" --self-test
expect_rc 0 "the dashboard and rules use only the issue's names (hand-made list)" \
  python3 "$TOOLS/metric_names_check.py" --metrics "$NAMES" --dashboard "$DASH" --rules "$RULES"
sed 's/expr: kycd_db_up == 0/expr: kycd_db_upp == 0/' "$RULES" >"$E2E_TMP/typo.yml"
assert_contains "$(cat "$E2E_TMP/typo.yml")" "kycd_db_upp == 0" "the copy of the rules has the typo"
expect_rc 1 "a rule naming kycd_db_upp (not exported) fails the check" \
  python3 "$TOOLS/metric_names_check.py" --metrics "$NAMES" --dashboard "$DASH" --rules "$E2E_TMP/typo.yml"
assert_contains "$OUT" "unknown metric kycd_db_upp: not exported by kycd (used in alert KycdDatabaseDown)" \
  "the failure names the metric and the alert"
sed 's/kycd_ingest_duration_seconds_bucket/kycd_ingest_duration_seconds/' "$DASH" >"$E2E_TMP/bare.json"
expect_rc 1 "a panel selecting the bare histogram name fails the check" \
  python3 "$TOOLS/metric_names_check.py" --metrics "$NAMES" --dashboard "$E2E_TMP/bare.json" --rules "$RULES"
assert_contains "$OUT" "kycd_ingest_duration_seconds: a histogram" "the failure says it is a histogram"

# ------------------------------------------------------------------------------
e2e_section "3. the dashboard: structure, and its SQL as kyc_analyst on real data"
expect_rc 0 "dashboard_check.py: the JSON loads and its structure is sound" \
  python3 "$TOOLS/dashboard_check.py" "$DASH" --sql-dir "$E2E_TMP/sql"
printf '%s\n' "$OUT" >"$E2E_TMP/sql/index"
n_sql=$(grep -c $'^[0-9][0-9]\t' "$E2E_TMP/sql/index" || true)
if [ "$n_sql" -ge 4 ]; then pass "$n_sql PostgreSQL panels"; else fail "only $n_sql PostgreSQL panels"; fi
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["templating"]["list"]=[v for v in d["templating"]["list"] if v["type"]!="datasource"]; json.dump(d,open(sys.argv[2],"w"))' \
  "$DASH" "$E2E_TMP/nods.json"
expect_rc 1 "a dashboard without datasource variables fails the structure check" \
  python3 "$TOOLS/dashboard_check.py" "$E2E_TMP/nods.json"
assert_contains "$OUT" "no datasource variable of type postgres" "the failure says which variable"

e2e_fresh_db
e2e_certs
e2e_start_sim
mapfile -t SIM_ENV < <(e2e_sim_env)
REC=(KYCD_RECONCILE=on KYCD_PENDING_AFTER=1s KYCD_RECONCILE_INTERVAL=300ms
     KYCD_RECONCILE_BACKOFF_MIN=200ms KYCD_RECONCILE_BACKOFF_MAX=1s KYCD_P100_TIMEOUT=3s)
mkdir -p "$E2E_TMP/spool"
e2e_start_kycd "${SIM_ENV[@]}" "${REC[@]}" "KYCD_SPOOL_DIR=$E2E_TMP/spool"

# Data for every analyst panel: a user verified by webhook (funnel), one
# pending at P100 and here (pending), one P100 does not know (flagged: needs
# attention), one whose webhook P100 drops (a reconciler correction).
sim POST /_sim/users '{"externalUserId":"al-wait","verificationStatus":"NOT_VERIFIED","attemptStatus":"PENDING"}' >/dev/null
assert_eq 200 "$(post "$E2E_KYC_PATH" '{"externalUserId":"al-verified","verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL"}')" \
  "a VERIFIED webhook is stored"
assert_eq 200 "$(post "$E2E_KYC_PATH" '{"externalUserId":"al-wait","verificationStatus":"NOT_VERIFIED","attemptStatus":"PENDING"}')" \
  "a PENDING webhook is stored"
assert_eq 200 "$(post "$E2E_KYC_PATH" '{"externalUserId":"al-unknown","verificationStatus":"NOT_VERIFIED","attemptStatus":"PENDING"}')" \
  "a PENDING webhook for a user P100 does not know is stored"
assert_eq 401 "$(E2E_AUTH="Bearer wrong-token-0123456789abcdef" post "$E2E_KYC_PATH" '{"externalUserId":"al-x","verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL"}')" \
  "a wrong token gets 401 (the alerts' 401 series)"
e2e_kycd_cmd "${SIM_ENV[@]}" KYCD_PENDING_AFTER=1s -- create-kyc --external-user-id al-missed --document-type PASSPORT --country PL \
  --income-source SALARY --open-account-reason DAILY_USE --occupation IT
assert_eq 0 "$E2E_RC" "create-kyc al-missed exits 0"
sim POST /_sim/users/al-missed/advance \
  '{"verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL","webhook":"drop"}' >/dev/null
if e2e_wait_sql "SELECT count(*) FROM kyc.reconciler_corrections WHERE external_user_id = 'al-missed'" 1 20; then
  pass "the reconciler corrected al-missed (a dropped webhook)"
else
  fail "no correction for al-missed within 20 s: $E2E_SQL_LAST"
fi
if e2e_wait_sql "SELECT count(*) FROM kyc.needs_attention WHERE external_user_id = 'al-unknown'" 1 20; then
  pass "al-unknown is flagged for a person (P100 does not know it)"
else
  fail "al-unknown not in kyc.needs_attention within 20 s: $E2E_SQL_LAST"
fi
assert_eq 1 "$(sql "SELECT count(*) FROM kyc.pending WHERE external_user_id = 'al-wait'")" "al-wait is pending"

# As the analysts' role: SET ROLE in the same session as each panel's query.
as_analyst() {
  RC=0
  OUT=$(timeout 30 psql "$E2E_DB_URL" -XAtq -v ON_ERROR_STOP=1 -v VERBOSITY=verbose \
          -c 'SET ROLE kyc_analyst' "$@" 2>&1) || RC=$?
}
as_analyst -c 'SELECT current_user'
assert_eq "0|kyc_analyst" "$RC|$OUT" "queries run as kyc_analyst"
as_analyst -c "DELETE FROM kyc.verifications WHERE external_user_id = 'al-wait'"
assert_contains "$RC $OUT" "42501" "kyc_analyst cannot change data (so the panels run read-only)"
# Count panels that may rightly show 0 on this data.
ZERO_OK="Pending over an hour"
while IFS=$'\t' read -r n title; do
  [[ $n =~ ^[0-9][0-9]$ ]] || continue
  as_analyst -f "$E2E_TMP/sql/$n.sql"
  rows=$(grep -c . <<<"$OUT" || true)
  if [ "$RC" != 0 ]; then
    fail "panel '$title': its SQL fails as kyc_analyst: $(e2e__clip "$OUT")"
  elif [ "$rows" -lt 1 ]; then
    fail "panel '$title': no row on data that should give one"
  elif [ "$OUT" = 0 ] && [ "$title" != "$ZERO_OK" ]; then
    fail "panel '$title': counts 0 on data that should give more"
  else
    pass "panel '$title': its SQL runs as kyc_analyst, $rows row(s): $(e2e__clip "$(head -1 <<<"$OUT")")"
  fi
done <"$E2E_TMP/sql/index"

# ------------------------------------------------------------------------------
e2e_section "4. every metric the dashboard and the alerts name is in a real scrape"
if [ -z "${E2E_ADMIN_PORT:-}" ]; then
  fail "lib.sh exports no E2E_ADMIN_PORT: this kycd has no admin listener to scrape /metrics from"
else
  RC=0
  curl -sS --max-time 10 -o "$E2E_TMP/metrics.txt" "http://127.0.0.1:$E2E_ADMIN_PORT/metrics" 2>"$E2E_TMP/curl.err" || RC=$?
  assert_eq 0 "$RC" "GET http://127.0.0.1:$E2E_ADMIN_PORT/metrics answers ($(wc -l <"$E2E_TMP/metrics.txt" 2>/dev/null || echo 0) lines)"
  expect_rc 0 "every name the dashboard and the rules use is one kycd exports" \
    python3 "$TOOLS/metric_names_check.py" --metrics "$E2E_TMP/metrics.txt" --dashboard "$DASH" --rules "$RULES"
  echo "$OUT"
  # The label values the rules select on: accepted outcomes (KycdNoWebhooks,
  # KycdWebhookTokenRejected) and code="401" (the 401 alerts).
  accepted=$(grep -cE '^kycd_webhook_deliveries_total\{[^}]*outcome="(applied|unchanged|held|recorded|spooled)"[^}]*\} [1-9]' \
               "$E2E_TMP/metrics.txt" || true)
  if [ "$accepted" -ge 1 ]; then
    pass "the scrape counts the accepted deliveries under the outcomes the rules select ($accepted series)"
  else
    fail "no kycd_webhook_deliveries_total series with an accepted outcome the rules select: $(e2e__clip "$(grep '^kycd_webhook_deliveries_total' "$E2E_TMP/metrics.txt" || true)")"
  fi
  if grep -qE '^kycd_http_requests_total\{[^}]*code="401"[^}]*\} [1-9]' "$E2E_TMP/metrics.txt"; then
    pass "the scrape counts the 401 under code=\"401\""
  else
    fail "no kycd_http_requests_total series with code=\"401\": $(e2e__clip "$(grep '^kycd_http_requests_total' "$E2E_TMP/metrics.txt" || true)")"
  fi
  expect_rc 1 "against the real scrape too, a name kycd does not export fails" \
    python3 "$TOOLS/metric_names_check.py" --metrics "$E2E_TMP/metrics.txt" --dashboard "$DASH" --rules "$E2E_TMP/typo.yml"
  assert_contains "$OUT" "unknown metric kycd_db_upp" "the failure names it"
fi

# ------------------------------------------------------------------------------
e2e_section "5. a real Prometheus loads the rules and evaluates them on kycd's series"
# prom_query PROMQL: prints the first sample's value of an instant query ("" if none).
prom_query() {
  curl -sS --max-time 5 -G "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" 2>/dev/null |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' 2>/dev/null
}
prom_value_is() { [ "$(prom_query "$1")" = "$2" ]; }
prom_positive() { python3 -c 'import sys; sys.exit(0 if float(sys.argv[1] or 0) > 0 else 1)' "$(prom_query "$1")"; }
# rules_state: "rules=N evaluated=E errors=X" from Prometheus' rules API.
rules_state() {
  curl -sS --max-time 5 "http://127.0.0.1:$PROM_PORT/api/v1/rules" 2>/dev/null | python3 -c '
import json, sys
rs = [r for g in json.load(sys.stdin)["data"]["groups"] for r in g["rules"]]
ev = [r for r in rs if not r.get("lastEvaluation", "").startswith("0001")]
bad = [r["name"] + ": " + r.get("lastError", "") for r in rs if r.get("health") == "err"]
print("rules=%d evaluated=%d errors=%d %s" % (len(rs), len(ev), len(bad), "; ".join(bad)))' 2>/dev/null
}
rules_all_evaluated() { [[ $(rules_state) == "rules=$N_RULES evaluated=$N_RULES errors=0 " ]]; }
N_RULES=$(grep -cE '^ *- (alert|record): ' "$RULES")
if [ -z "${E2E_ADMIN_PORT:-}" ]; then
  fail "no admin listener (E2E_ADMIN_PORT) for Prometheus to scrape"
elif ! command -v prometheus >/dev/null 2>&1; then
  fail "needs prometheus (deploy/packages.sh)"
else
  PROM_PORT=$(e2e_free_port)
  mkdir -p "$E2E_TMP/prom"
  cat >"$E2E_TMP/prom/prometheus.yml" <<YML
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ["$RULES"]
scrape_configs:
  - job_name: kycd
    static_configs: [{targets: ["127.0.0.1:$E2E_ADMIN_PORT"]}]
YML
  prometheus --config.file="$E2E_TMP/prom/prometheus.yml" --storage.tsdb.path="$E2E_TMP/prom/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$E2E_TMP/prom/log" 2>&1 &
  e2e_track_pid $!
  if e2e_wait_cmd 30 prom_value_is 'up{job="kycd"}' 1; then
    pass "Prometheus scrapes kycd's admin listener (up == 1)"
  else
    fail "Prometheus did not scrape kycd within 30 s: $(e2e__clip "$(tail -3 "$E2E_TMP/prom/log")")"
  fi
  if e2e_wait_cmd 30 rules_all_evaluated; then
    pass "Prometheus loaded and evaluated all $N_RULES rules without an error"
  else
    fail "rules not all evaluated cleanly within 30 s: $(rules_state)"
  fi
  # Deliveries while Prometheus watches: the recording rule sees them.
  for i in 1 2 3; do
    assert_eq 200 "$(post "$E2E_KYC_PATH" "{\"externalUserId\":\"al-prom-$i\",\"verificationStatus\":\"NOT_VERIFIED\",\"attemptStatus\":\"PENDING\"}")" \
      "delivery $i while Prometheus scrapes"
  done
  if e2e_wait_cmd 30 prom_positive 'kycd:webhook_accepted:rate5m{job="kycd"}'; then
    pass "kycd:webhook_accepted:rate5m is above 0 after 3 deliveries ($(prom_query 'kycd:webhook_accepted:rate5m{job="kycd"}')/s)"
  else
    fail "kycd:webhook_accepted:rate5m not above 0 within 30 s: '$(prom_query 'kycd:webhook_accepted:rate5m{job="kycd"}')'"
  fi
  firing=$(prom_query 'count(ALERTS{alertstate="firing", severity="critical"})')
  assert_eq "" "$firing" "no critical alert fires on a healthy kycd"
fi

e2e_stop_kycd
e2e_stop_sim
