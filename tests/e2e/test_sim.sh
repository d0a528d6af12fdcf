#!/usr/bin/env bash
# kycd-test: once
# End-to-end test of p100-sim, the test double for P100's Partner API that the
# other tests and the demo rely on: it must answer like P100 as documented in
# docs/p100-api.md. Loopback only, every wait bounded; no PostgreSQL and
# no kycd needed. A tiny python3 HTTPS webhook sink also checks
# delivered webhooks (headers, bodies, retries, order); without it that part
# is skipped.
#
# Must never: leave a process it started running, wait without a bound, or
# print the API key or the webhook token.
#
# Environment: TEST_P100_SIM (the p100-sim binary), TEST_KYCD_SRC (repo root).

set -uo pipefail

SIM=${TEST_P100_SIM:-}
SRC=${TEST_KYCD_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
if [ -z "$SIM" ] || [ ! -x "$SIM" ]; then
  echo "test_sim: TEST_P100_SIM is not set or not executable ('$SIM')" >&2
  exit 2
fi
for tool in curl openssl ss timeout; do
  command -v "$tool" >/dev/null 2>&1 || { echo "test_sim: needs $tool" >&2; exit 2; }
done

TMP=$(mktemp -d /tmp/p100-sim-test.XXXXXX)
PASSED=0
FAILED=0
PIDS=()
T0=$SECONDS

pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
section() { echo "--- $* ($((SECONDS - T0)) s)"; }
clip() { local s=${1//$'\n'/ | }; [ "${#s}" -gt 400 ] && s="${s:0:400}..."; printf '%s' "$s"; }
assert_eq() { if [ "$1" = "$2" ]; then pass "$3"; else fail "$3: expected '$(clip "$1")', got '$(clip "$2")'"; fi; }
assert_contains() { if [[ "$1" == *"$2"* ]]; then pass "$3"; else fail "$3: '$2' not in '$(clip "$1")'"; fi; }
assert_not_contains() { if [[ "$1" != *"$2"* ]]; then pass "$3"; else fail "$3: found '$2'"; fi; }
assert_match() { if [[ "$1" =~ $2 ]]; then pass "$3"; else fail "$3: '$(clip "$1")' does not match /$2/"; fi; }
assert_ge() { if [ "$2" -ge "$1" ] 2>/dev/null; then pass "$3"; else fail "$3: expected >= $1, got '$2'"; fi; }

cleanup() {
  local rc=$? pid
  set +e
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [ -n "${KEEP_TMP:-}" ]; then echo "kept $TMP"; else rm -rf -- "$TMP"; fi
  if [ "$rc" != 0 ] && [ "$FAILED" = 0 ]; then fail "script stopped early with exit code $rc"; fi
  echo "$PASSED passed, $FAILED failed"
  if [ "$FAILED" != 0 ]; then exit 1; fi
  exit 0
}
trap cleanup EXIT

# shellcheck source=tests/lib/ports.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/ports.sh"
free_port() { kycd_free_port; }

# wait_for FILE TEXT SECONDS: until FILE contains TEXT.
wait_for() {
  local i
  for i in $(seq 1 $(($3 * 10))); do
    grep -qF -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# call METHOD PATH [BODY] [curl args...] -> $CODE, $BODY, $HDRS (against $BASE)
KEY_HDR=()
call() {
  local method=$1 path=$2 body=${3:-}
  shift 3 2>/dev/null || shift $#
  local args=(-sS --max-time 20 --cacert "$TMP/ca.pem" -o "$TMP/body" -D "$TMP/hdrs" -w '%{http_code}'
              -X "$method" "${KEY_HDR[@]}" "$@")
  if [ -n "$body" ]; then args+=(-H 'Content-Type: application/json' --data-binary "$body"); fi
  CODE=$(curl "${args[@]}" "$BASE$path" 2>"$TMP/curl.err") || CODE=000
  BODY=$(cat "$TMP/body" 2>/dev/null)
  HDRS=$(tr -d '\r' <"$TMP/hdrs" 2>/dev/null)
}
api() { KEY_HDR=(-H "x-api-key: $API_KEY"); call "$@"; KEY_HDR=(); }
sim() { KEY_HDR=(); call "$@"; }

# num KEY: the number after "KEY": in $BODY (first match)
num() { local m; m=$(grep -oE "\"$1\":[0-9.]+" <<<"$BODY" | head -1); echo "${m#*:}"; }

# wait_stat KEY VALUE SECONDS: poll /_sim/stats until KEY == VALUE.
wait_stat() {
  local i
  for i in $(seq 1 $(($3 * 20))); do
    sim GET /_sim/stats
    [ "$(num "$1")" = "$2" ] && return 0
    sleep 0.05
  done
  return 1
}

# start_sim NAME [args...] -> sets BASE, SIM_PID, SIM_LOG (stderr), SIM_OUT (stdout)
start_sim() {
  local name=$1 port
  shift
  port=$(free_port) || { fail "no free port"; exit 1; }
  SIM_LOG=$TMP/$name.log
  SIM_OUT=$TMP/$name.out
  "$SIM" --listen "127.0.0.1:$port" --cert "$TMP/server.pem" --key "$TMP/server.key" \
    --api-key-file "$TMP/api-key" "$@" >"$SIM_OUT" 2>"$SIM_LOG" &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
  if ! wait_for "$SIM_OUT" "p100-sim listening port=$port" 10; then
    fail "$name did not start: $(clip "$(cat "$SIM_LOG")")"
    exit 1
  fi
  BASE=https://localhost:$port
}

# stop_sim: SIGTERM, exit 0 within 10 s
stop_sim() {
  local rc=0 pid=$1 name=$2
  kill -TERM "$pid"
  timeout 10 tail --pid="$pid" -f /dev/null
  wait "$pid" || rc=$?
  assert_eq 0 "$rc" "$name: SIGTERM stops it with exit code 0"
}

CREATE_OK='"documentType":"PASSPORT","country":"PL","incomeSource":"SALARY","openAccountReason":"INVESTMENTS_OR_CRYPTOCURRENCIES","occupation":"IT"'

# ------------------------------------------------------------------------------
section "setup"
"$SRC/certs/make-dev-certs.sh" "$TMP" >/dev/null || { fail "make-dev-certs.sh"; exit 1; }
API_KEY=$(openssl rand -hex 20)
TOKEN=$(openssl rand -hex 24)
printf '%s\n' "$API_KEY" >"$TMP/api-key"
printf '%s\n' "$TOKEN" >"$TMP/token"
chmod 600 "$TMP/api-key" "$TMP/token"

"$SIM" --listen 127.0.0.1:1 --cert "$TMP/server.pem" --key "$TMP/server.key" --api-key "$API_KEY" \
  >/dev/null 2>"$TMP/refuse.err"
rc=$?
assert_eq 2 "$rc" "a secret on the command line is refused (exit 2)"
assert_contains "$(cat "$TMP/refuse.err")" "--api-key-file" "the refusal names the file option"
assert_not_contains "$(cat "$TMP/refuse.err")" "$API_KEY" "the refusal does not echo the key"

DEAD_PORT=$(free_port)
start_sim sim-a --webhook-url "https://localhost:$DEAD_PORT/webhooks/p100" \
  --webhook-token-file "$TMP/token" --webhook-ca "$TMP/ca.pem" --retry-scale 0.001 --threads 64
A_PID=$SIM_PID
A_LOG=$SIM_LOG
pass "simulator started on $BASE"

# ------------------------------------------------------------------------------
section "authentication"
sim GET /v1/kyc/status/alice
assert_eq 401 "$CODE" "no x-api-key: 401"
assert_eq '{"errorMessage":"Access Denied. xo1"}' "$BODY" "no x-api-key: Access Denied. xo1"
KEY_HDR=(-H "x-api-key: wrong-$API_KEY"); call GET /v1/kyc/status/alice; KEY_HDR=()
assert_eq 401 "$CODE" "wrong x-api-key: 401"
assert_eq '{"errorMessage":"Access Denied. xo2"}' "$BODY" "wrong x-api-key: Access Denied. xo2"
KEY_HDR=(-H "x-api-key;"); call POST /v1/kyc "{\"externalUserId\":\"alice\",$CREATE_OK}"; KEY_HDR=()
assert_eq '{"errorMessage":"Access Denied. xo1"}' "$BODY" "empty x-api-key counts as missing (xo1)"

# ------------------------------------------------------------------------------
section "create verification and status"
api GET /v1/kyc/status/alice
assert_eq 400 "$CODE" "unknown user: HTTP 400"
assert_eq '{"errorCode":"P412","errorName":"invalid-user","errorMessage":"User does not exist"}' "$BODY" \
  "unknown user: P412 body"

api POST /v1/kyc "{\"externalUserId\":\"alice\",$CREATE_OK}"
assert_eq 201 "$CODE" "create: 201"
assert_match "$BODY" '^\{"verificationId":"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"\}$' \
  "create: body is {verificationId: uuid}"
VID=$(grep -oE '[0-9a-f-]{36}' <<<"$BODY")

api POST /v1/kyc "{\"externalUserId\":\"alice\",$CREATE_OK}"
assert_eq 202 "$CODE" "create again while pending: 202"
assert_eq '{"errorCode":"P212","errorName":"kyc-pending","errorMessage":"KYC verification pending"}' "$BODY" \
  "create again while pending: P212 body"

api GET /v1/kyc/status/alice
assert_eq 200 "$CODE" "status: 200"
assert_eq "{\"externalUserId\":\"alice\",\"verificationStatus\":\"NOT_VERIFIED\",\"attemptStatus\":\"PENDING\",\"verificationId\":\"$VID\"}" \
  "$BODY" "status: body after create (no rejectionReason when unset)"
assert_contains "$HDRS" "Content-Type: application/json" "status: JSON content type"

api POST /v1/kyc '{"externalUserId":"bob","documentType":"SELFIE","country":"pol","incomeSource":"SALARY"}'
assert_eq 400 "$CODE" "invalid create: HTTP 400"
assert_match "$BODY" '^\{"errorCode":"P403","errorMessage":"[^"]+"\}$' "invalid create: P403 without errorName"
assert_contains "$BODY" "documentType" "P403 names documentType"
assert_contains "$BODY" "openAccountReason" "P403 names the missing openAccountReason"
assert_contains "$BODY" "occupation" "P403: occupation required for SALARY"
api POST /v1/kyc 'not json'
assert_match "$CODE $BODY" '^400 \{"errorCode":"P403"' "create with a non-JSON body: 400 P403"
api POST /v1/kyc '{"externalUserId":"bob","documentType":"ID_CARD","country":"DE","incomeSource":"BUSINESS_ACTIVITY","openAccountReason":"INVESTMENTS_OR_CRYPTOCURRENCIE"}'
assert_match "$CODE $BODY" '^400 .*taxId' "BUSINESS_ACTIVITY needs taxId"
assert_contains "$BODY" "openAccountReason must be one of" \
  "the older spelling INVESTMENTS_OR_CRYPTOCURRENCIE is not P100's word: refused"
api GET /v1/kyc/status/bob
assert_eq 400 "$CODE" "a rejected create does not create the user"

sim POST /_sim/users '{"externalUserId":"carol"}'
assert_eq 200 "$CODE" "control: create a user without KYC"
api GET /v1/kyc/status/carol
assert_eq 404 "$CODE" "user without KYC: HTTP 404"
assert_eq '{"errorCode":"P445","errorName":"kyc-not-found","errorMessage":"KYC not found"}' "$BODY" \
  "user without KYC: P445 body"

sim POST /_sim/users '{"externalUserId":"dave","verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL"}'
api POST /v1/kyc "{\"externalUserId\":\"dave\",$CREATE_OK}"
assert_match "$CODE $BODY" '^400 \{"errorCode":"P450"' "create for a VERIFIED user: 400 P450"
sim POST /_sim/users '{"externalUserId":"erin","verificationStatus":"NOT_VERIFIED","attemptStatus":"REJECTED_BY_PROVIDER","rejectionReason":"NO_FACE_FOUND"}'
api GET /v1/kyc/status/erin
assert_contains "$BODY" '"rejectionReason":"NO_FACE_FOUND"' "status carries rejectionReason when set"
api POST /v1/kyc "{\"externalUserId\":\"erin\",$CREATE_OK}"
assert_eq 201 "$CODE" "create after a rejection: 201 (a new attempt)"
api GET /v1/kyc/status/erin
assert_contains "$BODY" '"attemptStatus":"PENDING"' "the new attempt is PENDING"
assert_not_contains "$BODY" "rejectionReason" "the new attempt has no rejectionReason"

sim GET "/v1/kyc/verification/alice/$VID"
assert_eq 200 "$CODE" "verification page: 200 (a browser page: no key needed)"
assert_contains "$HDRS" "Content-Type: text/html" "verification page: text/html"
assert_match "$BODY" '<a [^>]*href="https://[^"]+"' "verification page links to the identity provider"
sim GET /v1/kyc/verification/alice/00000000-0000-4000-8000-000000000000
assert_match "$CODE $BODY" '^404 \{"errorCode":"P445"' "verification page for an unknown id: 404 P445"

# ------------------------------------------------------------------------------
section "faults"
sim POST /_sim/faults '{"fail_rate":1,"fail_with":"P500"}'
assert_eq 200 "$CODE" "set faults"
api GET /v1/kyc/status/alice
assert_eq 400 "$CODE" "P500 fault comes as HTTP 400"
assert_eq '{"errorCode":"P500","errorName":"unknown-exception","errorMessage":"Unknown exception"}' "$BODY" \
  "P500 fault body"
api POST /v1/kyc "{\"externalUserId\":\"frank\",$CREATE_OK}"
assert_match "$CODE $BODY" '^400 \{"errorCode":"P500"' "faults apply to create as well"
sim GET /_sim/stats
assert_eq 200 "$CODE" "/_sim is not subject to faults"

sim POST /_sim/faults '{"fail_rate":1,"fail_with":"P501"}'
api GET /v1/kyc/status/alice
assert_match "$CODE $BODY" '^400 \{"errorCode":"P501","errorName":"[^"]+","errorMessage":"[^"]+"\}$' "P501 fault: 400 P501"

sim POST /_sim/faults '{"fail_rate":1,"fail_with":"429","retry_after":7}'
api GET /v1/kyc/status/alice
assert_eq 429 "$CODE" "429 fault: HTTP 429"
assert_contains "$HDRS" "Retry-After: 7" "429 fault: Retry-After: 7"
sim POST /_sim/faults '{"fail_rate":1,"fail_with":"429"}'
api GET /v1/kyc/status/alice
assert_not_contains "$HDRS" "Retry-After" "429 without retry_after: no Retry-After header"

sim POST /_sim/faults '{"fail_rate":1,"fail_with":"503"}'
api GET /v1/kyc/status/alice
assert_eq 503 "$CODE" "503 fault: HTTP 503"

sim POST /_sim/faults '{"unauthorized":true}'
api GET /v1/kyc/status/alice
assert_eq 401 "$CODE" "unauthorized fault: 401 with the right key"
assert_eq '{"errorMessage":"Access Denied. xo3"}' "$BODY" "unauthorized fault: Access Denied. xo3"

sim POST /_sim/faults '{"fail_next":2,"fail_with":"P501","scope":"status"}'
api GET /v1/kyc/status/alice; c1=$CODE
api POST /v1/kyc "{\"externalUserId\":\"alice\",$CREATE_OK}"; c2=$CODE
api GET /v1/kyc/status/alice; c3=$CODE
api GET /v1/kyc/status/alice; c4=$CODE
assert_eq "400 202 400 200" "$c1 $c2 $c3 $c4" "fail_next 2 with scope status: two status calls fail, create unaffected"

sim POST /_sim/faults '{"fail_rate":0.5,"seed":7}'
fails=0
for _ in $(seq 1 40); do api GET /v1/kyc/status/alice; [ "$CODE" = 400 ] && fails=$((fails + 1)); done
if [ "$fails" -ge 8 ] && [ "$fails" -le 32 ]; then pass "fail_rate 0.5: $fails of 40 calls failed"; else fail "fail_rate 0.5: $fails of 40 failed"; fi

sim POST /_sim/faults '{"latency_ms":200}'
t0=$(date +%s%N)
api GET /v1/kyc/status/alice
ms=$((($(date +%s%N) - t0) / 1000000))
assert_eq 200 "$CODE" "with latency the call still succeeds"
assert_ge 200 "$ms" "latency_ms 200: the call took ${ms} ms"

sim POST /_sim/faults '{"bogus":1}'
assert_eq 400 "$CODE" "an unknown fault field is refused"
sim POST /_sim/faults '{}'
sim GET /_sim/faults
assert_contains "$BODY" '"fail_rate":0' "empty faults clear them"

# ------------------------------------------------------------------------------
section "concurrency tracking"
sim POST /_sim/faults '{"latency_ms":4000}'
cpids=()
for i in 1 2 3 4 5; do
  curl -sS --max-time 20 --cacert "$TMP/ca.pem" -H "x-api-key: $API_KEY" -o /dev/null \
    "$BASE/v1/kyc/status/alice" &
  cpids+=($!)
done
for i in 1 2 3; do
  curl -sS --max-time 20 --cacert "$TMP/ca.pem" -H "x-api-key: $API_KEY" -o /dev/null \
    "$BASE/v1/kyc/status/carol-$i" &
  cpids+=($!)
done
# Observe them in flight (bounded: the calls take 4 s each).
for _ in $(seq 1 60); do
  sim GET /_sim/stats
  [ "$(num in_flight)" = 8 ] && break
  sleep 0.05
done
inflight_now="\"in_flight\":$(num in_flight)"
for p in "${cpids[@]}"; do wait "$p"; done
sim POST /_sim/faults '{}'
sim GET "/_sim/stats?user=alice"
assert_eq 5 "$(num max_concurrent_per_user)" "five parallel status calls for one user: max_concurrent_per_user 5"
assert_eq 8 "$(num max_concurrent)" "eight parallel calls in all: max_concurrent 8"
assert_eq '"in_flight":8' "$inflight_now" "stats show the calls in flight"
assert_eq 0 "$(num in_flight)" "nothing in flight afterwards"
assert_contains "$BODY" '"calls_by_user":{"alice":' "stats?user= gives calls_by_user"

# ------------------------------------------------------------------------------
section "bulk users"
t0=$(date +%s%N)
sim POST /_sim/users '{"prefix":"u-","count":2000,"verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL"}'
ms=$((($(date +%s%N) - t0) / 1000000))
assert_eq 200 "$CODE" "bulk create 2000 users"
assert_eq 2000 "$(num created)" "bulk: 2000 created (${ms} ms)"
api GET /v1/kyc/status/u-1999
assert_eq 200 "$CODE" "status of u-1999: 200"
assert_contains "$BODY" '"verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL"' "u-1999 is VERIFIED/SUCCESSFUL"
api GET /v1/kyc/status/u-2000
assert_eq 400 "$CODE" "u-2000 does not exist: 400 P412"
sim POST /_sim/users '{"prefix":"big-","count":20000}'
api GET /v1/kyc/status/big-19999
assert_eq 404 "$CODE" "20000 more users without KYC: the last one answers 404 P445"

# ------------------------------------------------------------------------------
section "strict values: P100's words only, unless the request says undocumented"
sim POST /_sim/users '{"externalUserId":"hal","verificationStatus":"NOT_VERIFIED","attemptStatus":"ON_HOLD"}'
assert_eq 400 "$CODE" "an undocumented attemptStatus is refused: 400"
assert_contains "$BODY" "attemptStatus: ON_HOLD is not a value P100 documents" "the refusal names the field"
sim GET /_sim/users/hal
assert_eq 404 "$CODE" "the refused user was not created"
sim POST /_sim/users '{"externalUserId":"hal","verificationStatus":"NOT_VERIFIED","attemptStatus":"ON_HOLD","undocumented":true}'
assert_eq 200 "$CODE" "with \"undocumented\": true it is taken"
api GET /v1/kyc/status/hal
assert_contains "$BODY" '"attemptStatus":"ON_HOLD"' "and Get KYC Status answers it"
sim POST /_sim/users '{"prefix":"pv-","count":2,"verificationStatus":"PARTIALLY_VERIFIED","attemptStatus":"PENDING"}'
assert_match "$CODE $BODY" '^400 .*verificationStatus: PARTIALLY_VERIFIED' "bulk users: the same rule"
sim POST /_sim/users/alice/advance '{"verificationStatus":"PARTIALLY_VERIFIED","webhook":"drop"}'
assert_match "$CODE $BODY" '^400 .*verificationStatus' "advance: an undocumented verificationStatus is refused"
sim POST /_sim/users/alice/advance '{"attemptStatus":"MANUAL_REVIEW","webhook":"drop","undocumented":true}'
assert_eq 200 "$CODE" "advance: taken with undocumented"
sim POST /_sim/users/alice/advance '{"attemptStatus":"PENDING","webhook":"drop"}'
sim POST /_sim/users/alice/poa '{"status":"MAYBE_LATER","webhook":"drop"}'
assert_match "$CODE $BODY" '^400 .*status: MAYBE_LATER .*poaVerificationStatus.status' "poa: an undocumented status is refused"
sim POST /_sim/users/alice/poa '{"status":"MAYBE_LATER","webhook":"drop","undocumented":true}'
assert_eq 200 "$CODE" "poa: taken with undocumented"
sim POST /_sim/users/alice/kyc-file '{"status":"NEW_THING","webhook":"drop"}'
assert_match "$CODE $BODY" '^400 .*kycFileAdded.status' "kyc-file: an undocumented status is refused"
sim POST /_sim/users/alice/user-status '{"status":"SUSPENDED","webhook":"drop"}'
assert_match "$CODE $BODY" '^400 .*userStatus.status' "user-status: an undocumented status is refused"
sim POST /_sim/users/alice/user-status '{"status":"ACTIVE","webhook":"drop"}'
assert_eq 200 "$CODE" "user-status: ACTIVE is taken"
sim POST /_sim/answers '{"errorCode":"P999","scope":"status"}'
assert_match "$CODE $BODY" '^400 .*errorCode: P999' "answers: an undocumented errorCode is refused"
sim POST /_sim/answers '{"errorCode":"P999","scope":"status","undocumented":true}'
assert_eq 200 "$CODE" "answers: taken with undocumented"
api GET /v1/kyc/status/alice
assert_match "$CODE $BODY" '^400 \{"errorCode":"P999"' "the next status call answers 400 P999"
api GET /v1/kyc/status/alice
assert_eq 200 "$CODE" "count 1: the call after is answered as usual"

# ------------------------------------------------------------------------------
section "every documented answer is reachable"
if [ -n "${TEST_KYCD_BIN:-}" ] && [ -x "$TEST_KYCD_BIN" ]; then
  CODES=$("$TEST_KYCD_BIN" vocabulary --p100 | awk -F'\t' '$1 == "errorCode" {print $3}')
else
  fail "TEST_KYCD_BIN is not set: the error codes come from kycd vocabulary"
  CODES=""
fi
for c in $CODES; do
  # The HTTP status docs/p100-api.md gives each code.
  case $c in P445) want=404 ;; P211 | P212) want=202 ;; *) want=400 ;; esac
  sim POST /_sim/answers "{\"errorCode\":\"$c\",\"scope\":\"status\"}"
  api GET /v1/kyc/status/alice
  assert_match "$CODE $BODY" "^$want \\{\"errorCode\":\"$c\"" "$c is reachable: HTTP $want with errorCode $c"
done
sim POST /_sim/answers '{"errorCode":"P433","scope":"create","externalUserId":"erin","count":2}'
api POST /v1/kyc "{\"externalUserId\":\"alice\",$CREATE_OK}"; c1=$CODE
api POST /v1/kyc "{\"externalUserId\":\"erin\",$CREATE_OK}"; c2="$CODE $(grep -oE 'P[0-9]+' <<<"$BODY")"
api POST /v1/kyc "{\"externalUserId\":\"erin\",$CREATE_OK}"; c3="$CODE $(grep -oE 'P[0-9]+' <<<"$BODY")"
api POST /v1/kyc "{\"externalUserId\":\"erin\",$CREATE_OK}"; c4=$CODE
assert_eq "202|400 P433|400 P433|202" "$c1|$c2|$c3|$c4" "a per-user answer for create, twice: others and the third call as usual"
sim POST /_sim/answers '{"errorCode":"P501","http":503}'
api GET /v1/kyc/status/alice
assert_match "$CODE $BODY" '^503 \{"errorCode":"P501"' "an answer can come with another HTTP status"
sim POST /_sim/answers '{"unknown_users":"refuse"}'
sim GET /_sim/answers
assert_contains "$BODY" '"unknown_users":"refuse"' "GET /_sim/answers shows the mode"
api POST /v1/kyc "{\"externalUserId\":\"zed\",$CREATE_OK}"
assert_eq '400 {"errorCode":"P412","errorName":"invalid-user","errorMessage":"User does not exist"}' "$CODE $BODY" \
  "unknown_users refuse: Create for a user P100 does not know is P412"
sim GET /_sim/users/zed
assert_not_contains "$BODY" '"exists":true' "and the user is not created"
api POST /v1/kyc "{\"externalUserId\":\"carol\",$CREATE_OK}"
assert_eq 201 "$CODE" "a known user (no KYC yet) is still served: 201"
sim POST /_sim/answers '{}'
api POST /v1/kyc "{\"externalUserId\":\"zed\",$CREATE_OK}"
assert_eq 201 "$CODE" "by default Create makes the user: 201"
sim POST /_sim/answers '{"status_body":"sideways"}'
assert_eq 400 "$CODE" "an unknown status_body is refused"
bodies=()
for shape in default no_external_user_id extra_fields reordered no_verification_id; do
  sim POST /_sim/answers "{\"status_body\":\"$shape\"}"
  api GET /v1/kyc/status/erin
  bodies+=("$shape $CODE $BODY")
done
assert_match "${bodies[0]}" '^default 200 \{"externalUserId":"erin","verificationStatus":"NOT_VERIFIED","attemptStatus":"PENDING","verificationId":"[^"]+"\}$' "status_body default"
assert_match "${bodies[1]}" '^no_external_user_id 200 \{"verificationStatus":"NOT_VERIFIED","attemptStatus":"PENDING","verificationId":"[^"]+"\}$' "status_body no_external_user_id"
assert_match "${bodies[2]}" '^extra_fields 200 \{"kycProvider":"IDENFY",.*"verificationStatus":"NOT_VERIFIED".*"meta":\{' "status_body extra_fields"
assert_match "${bodies[3]}" '^reordered 200 \{"verificationId":"[^"]+","attemptStatus":"PENDING","verificationStatus":"NOT_VERIFIED","externalUserId":"erin"\}$' "status_body reordered"
assert_match "${bodies[4]}" '^no_verification_id 200 \{"externalUserId":"erin","verificationStatus":"NOT_VERIFIED","attemptStatus":"PENDING"\}$' "status_body no_verification_id"
sim POST /_sim/answers '{}'

# ------------------------------------------------------------------------------
section "rate limits: token bucket and concurrency limit"
sim GET /_sim/stats
RL0=$(num rate_limited_faults) # the 429 faults above
sim POST /_sim/limits '{"rate":1,"burst":3,"retry_after":true}'
assert_eq 200 "$CODE" "set a token bucket: 1 a second, burst 3"
codes=""
for _ in 1 2 3 4 5; do api GET /v1/kyc/status/alice; codes="$codes $CODE"; done
assert_eq " 200 200 200 429 429" "$codes" "the burst passes, then 429"
assert_contains "$HDRS" "Retry-After: 1" "with retry_after: Retry-After 1 (seconds until a token, rounded up)"
sim POST /_sim/limits '{"rate":0.3,"burst":1,"retry_after":true}'
api GET /v1/kyc/status/alice; c1=$CODE
api GET /v1/kyc/status/alice
assert_eq "200 429" "$c1 $CODE" "rate 0.3, burst 1: the second call is refused"
assert_contains "$HDRS" "Retry-After: 4" "Retry-After rounds 3.33 s up to 4"
sim POST /_sim/limits '{"rate":0.3,"burst":1}'
api GET /v1/kyc/status/alice; c1=$CODE
api GET /v1/kyc/status/alice
assert_eq "200 429" "$c1 $CODE" "without retry_after: still 429"
assert_not_contains "$HDRS" "Retry-After" "without retry_after: no Retry-After"
sim GET /_sim/stats
assert_eq "4 0 $RL0" "$(num rate_limited_bucket) $(num rate_limited_concurrency) $(num rate_limited_faults)" \
  "stats: four 429s from the bucket"

for ra in true false; do
  sim POST /_sim/limits "{\"max_status_in_flight\":2,\"retry_after\":$ra}"
  sim POST /_sim/faults '{"latency_ms":3000}'
  cpids=()
  for i in 1 2; do
    curl -sS --max-time 20 --cacert "$TMP/ca.pem" -H "x-api-key: $API_KEY" -o /dev/null \
      -w '%{http_code}\n' "$BASE/v1/kyc/status/alice" >"$TMP/conc-$i" &
    cpids+=($!)
  done
  for _ in $(seq 1 100); do
    sim GET /_sim/stats
    [ "$(num status_in_flight)" = 2 ] && break
    sleep 0.05
  done
  assert_eq 2 "$(num status_in_flight)" "concurrency (retry_after $ra): two status calls in flight"
  api GET /v1/kyc/status/alice; c3=$CODE; h3=$HDRS
  api GET /v1/kyc/status/erin; c4=$CODE
  for p in "${cpids[@]}"; do wait "$p"; done
  assert_eq "200 200 429 429" "$(cat "$TMP/conc-1") $(cat "$TMP/conc-2") $c3 $c4" \
    "max_status_in_flight 2 (retry_after $ra): the third and fourth calls get 429 at once"
  if [ "$ra" = true ]; then
    assert_contains "$h3" "Retry-After: 1" "concurrency 429 with Retry-After: 1"
  else
    assert_not_contains "$h3" "Retry-After" "concurrency 429 without Retry-After"
  fi
  sim POST /_sim/faults '{}'
done
api POST /v1/kyc "{\"externalUserId\":\"alice\",$CREATE_OK}"
assert_eq 202 "$CODE" "the concurrency limit is for Get KYC Status only"
sim GET /_sim/stats
assert_eq "4 4 0" "$(num rate_limited_bucket) $(num rate_limited_concurrency) $(num status_in_flight)" \
  "stats: four 429s from the concurrency limit, none in flight now"
sim POST /_sim/faults '{"fail_rate":1,"fail_with":"429"}'
api GET /v1/kyc/status/alice
sim POST /_sim/faults '{}'
sim GET /_sim/stats
assert_eq $((RL0 + 1)) "$(num rate_limited_faults)" "stats: a random 429 fault counted apart"
sim POST /_sim/limits '{"bogus":1}'
assert_eq 400 "$CODE" "an unknown limits field is refused"
sim POST /_sim/limits '{}'
sim GET /_sim/limits
assert_eq '{"rate":0,"burst":0,"retry_after":false,"max_status_in_flight":0}' "$BODY" "empty limits: off"

# ------------------------------------------------------------------------------
section "reset and stats add up"
sim POST /_sim/reset
assert_eq 200 "$CODE" "reset"
sim GET /_sim/stats
assert_eq "0 0 0 0" "$(num status_calls) $(num create_calls) $(num users) $(num max_concurrent_per_user)" \
  "reset clears users and counters"
assert_contains "$BODY" '"errors_sent":{}' "reset clears errors_sent"
api GET /v1/kyc/status/alice
assert_eq 400 "$CODE" "after reset alice is unknown again"
api POST /v1/kyc "{\"externalUserId\":\"alice\",$CREATE_OK}"
api POST /v1/kyc "{\"externalUserId\":\"alice\",$CREATE_OK}"
for _ in 1 2 3; do api GET /v1/kyc/status/alice; done
sim POST /_sim/faults '{"fail_rate":1,"fail_with":"P500","scope":"status"}'
api GET /v1/kyc/status/alice
api GET /v1/kyc/status/alice
sim POST /_sim/faults '{}'
sim GET /v1/kyc/status/alice
sim GET "/_sim/stats?user=alice"
assert_eq "7 2 9" "$(num status_calls) $(num create_calls) $(num api_calls)" \
  "stats: 7 status calls, 2 creates, 9 API calls in all"
assert_contains "$BODY" '"errors_sent":{"P412":1,"P212":1,"P500":2,"401":1}' "stats: errors_sent by code"
assert_contains "$BODY" '"calls_by_user":{"alice":9}' "stats?user=alice: calls_by_user"
assert_eq 9 "$(num calls)" "stats?user=alice: calls 9"

# ------------------------------------------------------------------------------
section "webhooks to a receiver that is down"
sim POST /_sim/users/alice/advance '{"verificationStatus":"NOT_VERIFIED","attemptStatus":"VERIFICATION"}'
assert_eq 200 "$CODE" "advance: 200"
assert_contains "$BODY" '"webhook":"sent"' "advance: webhook queued"
if wait_stat webhooks_failed 1 20; then pass "the delivery fails in the end"; else fail "webhooks_failed never reached 1: $(clip "$BODY")"; fi
assert_eq "1 5 0" "$(num webhooks_sent) $(num webhook_attempts) $(num webhooks_acked)" \
  "one delivery, five attempts in all (P100's schedule), none acked"
sim GET /_sim/webhooks
assert_contains "$BODY" '"result":"failed","attempts":5' "/_sim/webhooks records the failed delivery"
api GET /v1/kyc/status/alice
assert_contains "$BODY" '"attemptStatus":"VERIFICATION"' "advance changed the state"
attempt_lines=$(grep -c 'msg=webhook seq=1 ' "$A_LOG")
assert_eq 5 "$attempt_lines" "one log line per attempt"

sim POST /_sim/users/alice/advance '{"verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL","webhook":"drop"}'
assert_contains "$BODY" '"webhook":"dropped"' "drop: nothing is sent"
sim GET /_sim/stats
assert_eq "1 5 1" "$(num webhooks_sent) $(num webhook_attempts) $(num webhooks_dropped)" "drop: counted, no attempt"
sim POST /_sim/users/alice/advance '{"webhook":"hold"}'
sim GET /_sim/stats
assert_eq "1 1" "$(num webhooks_held) $(num webhooks_sent)" "hold: queued, not sent"
sim POST /_sim/flush '{"order":"fifo"}'
assert_eq '{"flushed":1}' "$BODY" "flush sends the held one"
if wait_stat webhooks_failed 2 20; then pass "the flushed delivery was tried"; else fail "flushed delivery not tried"; fi
sim POST /_sim/users/nobody/advance '{"verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL"}'
assert_eq 404 "$CODE" "advance for an unknown user: 404"
sim POST /_sim/users/alice/advance '{"webhook":"later"}'
assert_eq 400 "$CODE" "advance with an unknown webhook mode: 400"

# ------------------------------------------------------------------------------
section "webhooks to a receiver (python3 HTTPS sink)"
if ! command -v python3 >/dev/null 2>&1; then
  fail "python3 not found (deploy/packages.sh installs it): delivered webhooks cannot be checked"
else
  cat >"$TMP/sink.py" <<'PY'
# A webhook receiver for the test: records each POST, answers 503 while the
# control file holds a positive count, else 200.
import http.server, json, ssl, sys, threading, time
port, cert, key, log, ctl = sys.argv[1:6]
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        with lock:
            try:
                k = int(open(ctl).read().strip() or 0)
            except (FileNotFoundError, ValueError):
                k = 0
            status = 503 if k > 0 else 200
            if k > 0:
                open(ctl, "w").write(str(k - 1))
            with open(log, "a") as f:
                f.write(json.dumps({"t": time.monotonic(), "path": self.path, "status": status,
                                    "auth": self.headers.get("Authorization"), "body": body}) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print("sink ready", flush=True)
srv.serve_forever()
PY
  SINK_LOG=$TMP/sink.jsonl
  SINK_CTL=$TMP/sink.ctl
  : >"$SINK_LOG"
  echo 0 >"$SINK_CTL"
  # A free port can be taken by a parallel test between the check and the
  # bind: try a few.
  sink_up=0
  for _ in 1 2 3 4 5; do
    SINK_PORT=$(free_port)
    python3 "$TMP/sink.py" "$SINK_PORT" "$TMP/server.pem" "$TMP/server.key" "$SINK_LOG" "$SINK_CTL" \
      >"$TMP/sink.out" 2>&1 &
    sink_pid=$!
    if wait_for "$TMP/sink.out" "sink ready" 10; then PIDS+=("$sink_pid"); sink_up=1; break; fi
    kill "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" 2>/dev/null || true
  done
  [ "$sink_up" = 1 ] || { fail "sink did not start: $(clip "$(cat "$TMP/sink.out")")"; exit 1; }
  # sink Q: evaluate a python expression over the recorded requests (list r)
  sink() {
    python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; print(eval(sys.argv[2]))' \
      "$SINK_LOG" "$1"
  }
  A_BASE=$BASE
  start_sim sim-b --webhook-url "https://localhost:$SINK_PORT/webhooks/p100/" \
    --webhook-token-file "$TMP/token" --webhook-ca "$TMP/ca.pem" --retry-scale 0.01
  B_PID=$SIM_PID
  B_LOG=$SIM_LOG

  sim POST /_sim/users '{"externalUserId":"w1","verificationStatus":"NOT_VERIFIED","attemptStatus":"PENDING"}'
  sim POST /_sim/users/w1/advance '{"verificationStatus":"NOT_VERIFIED","attemptStatus":"REJECTED_BY_PROVIDER","rejectionReason":"NO_FACE_FOUND"}'
  wait_stat webhooks_acked 1 10 || fail "first webhook not acked: $(clip "$BODY")"
  assert_eq "1 1" "$(num webhooks_acked) $(num webhook_attempts)" "a 200 acknowledges at the first attempt"
  assert_eq "/webhooks/p100/kyc-verification-status" "$(sink 'r[0]["path"]')" "KYC webhook path"
  assert_eq '{"externalUserId":"w1","verificationStatus":"NOT_VERIFIED","attemptStatus":"REJECTED_BY_PROVIDER","rejectionReason":"NO_FACE_FOUND"}' \
    "$(sink 'r[0]["body"]')" "KYC webhook body as P100 sends it"
  if [ "$(sink "r[0]['auth'] == '$TOKEN'")" = True ]; then
    pass "Authorization carries the token as is"
  else
    fail "Authorization header is not the token"
  fi

  sim POST /_sim/users/w1/advance '{"verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL"}'
  wait_stat webhooks_acked 2 10 || fail "second webhook not acked"
  assert_contains "$(sink 'r[1]["body"]')" '"rejectionReason":null' "rejectionReason is null when unset"

  echo 2 >"$SINK_CTL"
  sim POST /_sim/users/w1/advance '{"verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL"}'
  wait_stat webhooks_acked 3 20 || fail "retried webhook not acked"
  assert_eq "3 5 0" "$(num webhooks_acked) $(num webhook_attempts) $(num webhooks_failed)" \
    "two 503 answers, then 200: acked at the third attempt"
  assert_eq "[503, 503, 200]" "$(sink '[x["status"] for x in r[2:5]]')" "the receiver saw 503, 503, 200"

  echo 100 >"$SINK_CTL"
  sim POST /_sim/users/w1/poa '{"status":"APPROVED"}'
  assert_eq 200 "$CODE" "POA webhook queued"
  wait_stat webhooks_failed 1 20 || fail "failing POA delivery did not end"
  echo 0 >"$SINK_CTL"
  assert_eq 5 "$(sink 'len(r[5:])')" "a receiver answering 503 gets 5 attempts in all"
  assert_eq "/webhooks/p100/poa-verification-status" "$(sink 'r[5]["path"]')" "POA webhook path"
  assert_eq '{"externalUserId":"w1","status":"APPROVED"}' "$(sink 'r[5]["body"]')" "POA webhook body"
  gaps=$(sink '" ".join(str(int((r[i+1]["t"]-r[i]["t"])*1000)) for i in range(5,9))')
  ok=1
  read -r g1 g2 g3 g4 <<<"$gaps"
  for pair in "$g1:80" "$g2:160" "$g3:320" "$g4:640"; do
    g=${pair%:*} want=${pair#*:}
    if [ "$g" -lt "$want" ] || [ "$g" -gt $((want + 1000)) ]; then ok=0; fi
  done
  if [ "$ok" = 1 ]; then pass "retry gaps follow 8/16/32/64 s x 0.01: $gaps ms"; else fail "retry gaps $gaps ms, want about 80 160 320 640"; fi

  sim POST /_sim/users/w1/advance '{"verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL","webhook":"duplicate"}'
  assert_contains "$BODY" '"webhook":"duplicated"' "duplicate: two deliveries"
  wait_stat webhooks_acked 5 10 || fail "duplicates not acked"
  assert_eq True "$(sink 'len(r) == 12 and r[10]["body"] == r[11]["body"]')" "duplicate: the same body twice"

  for s in PENDING VERIFICATION SUCCESSFUL; do
    sim POST /_sim/users/w1/advance "{\"verificationStatus\":\"NOT_VERIFIED\",\"attemptStatus\":\"$s\",\"webhook\":\"hold\"}"
  done
  sim GET /_sim/stats
  assert_eq 3 "$(num webhooks_held)" "three webhooks held"
  assert_eq 12 "$(sink 'len(r)')" "held webhooks are not sent"
  sim POST /_sim/flush '{"order":"reverse"}'
  assert_eq '{"flushed":3}' "$BODY" "flush reverse"
  wait_stat webhooks_acked 8 10 || fail "flushed webhooks not acked"
  assert_eq "SUCCESSFUL VERIFICATION PENDING" \
    "$(sink '" ".join(json.loads(x["body"])["attemptStatus"] for x in r[12:15])')" "reverse flush: newest first"
  for s in PENDING VERIFICATION; do
    sim POST /_sim/users/w1/advance "{\"attemptStatus\":\"$s\",\"webhook\":\"hold\"}"
  done
  sim POST /_sim/flush '{"order":"fifo"}'
  wait_stat webhooks_acked 10 10 || fail "fifo flush not acked"
  assert_eq "PENDING VERIFICATION" \
    "$(sink '" ".join(json.loads(x["body"])["attemptStatus"] for x in r[15:17])')" "fifo flush: oldest first"

  # Creating a verification sends no webhook.
  api POST /v1/kyc "{\"externalUserId\":\"w2\",$CREATE_OK}"
  assert_eq 201 "$CODE" "create on sim-b"
  sleep 0.3
  assert_eq 17 "$(sink 'len(r)')" "creating a verification sends no webhook"

  # The other two webhooks P100 sends, on kycd's paths.
  sim POST /_sim/users/w1/kyc-file '{"status":"ADDED"}'
  assert_eq 200 "$CODE" "KYC File Added queued"
  sim POST /_sim/users/w1/kyc-file '{"status":"ERROR"}'
  sim POST /_sim/users/w1/user-status '{"status":"ACTIVE"}'
  assert_eq 200 "$CODE" "user status queued"
  wait_stat webhooks_acked 13 10 || fail "kyc-file and user-status webhooks not acked: $(clip "$BODY")"
  assert_eq "/webhooks/p100/kyc-file-added /webhooks/p100/kyc-file-added /webhooks/p100/user-status" \
    "$(sink '" ".join(x["path"] for x in r[17:20])')" "KYC File Added and user status paths"
  assert_eq '{"externalUserId":"w1","status":"ADDED"}|{"externalUserId":"w1","status":"ERROR"}|{"externalUserId":"w1","status":"ACTIVE"}' \
    "$(sink '"|".join(x["body"] for x in r[17:20])')" "KYC File Added and user status bodies"
  if [ "$(sink "all(x['auth'] == '$TOKEN' for x in r[17:20])")" = True ]; then
    pass "the new webhooks carry the token"
  else
    fail "the new webhooks do not carry the token"
  fi

  # When each delivery was first sent and acknowledged.
  sim GET /_sim/stats
  assert_contains "$BODY" '"retry_gaps_ms":[80,160,320,640]' "stats: the scaled retry gaps"
  assert_contains "$BODY" '"retry_horizon_real_ms":120000' "stats: P100's real horizon, 120 s"
  sim GET /_sim/webhooks
  dl=$BODY
  assert_eq True "$(python3 -c '
import json, sys
d = json.loads(sys.argv[1])["deliveries"]
poa = [x for x in d if x["kind"] == "poa-verification-status"][0]
acked = [x for x in d if x["result"] == "acked"]
at = poa["attempt_at_ms"]
ok = len(at) == 5 and all(lo <= b - a <= lo + 1000 for a, b, lo in zip(at, at[1:], (80, 160, 320, 640)))
ok = ok and all(x["acked_unix_ms"] >= x["first_sent_unix_ms"] and x["acked_after_ms"] >= 0 for x in acked)
ok = ok and "acked_unix_ms" not in poa and poa["done_after_ms"] >= 1200
print(ok)' "$dl")" "deliveries carry first_sent, acked and attempt times (the failed POA: 5 attempts 80/160/320/640 ms apart)"
  late=$(python3 -c '
import json, sys
d = json.loads(sys.argv[1])["deliveries"]
x = [x for x in d if x["result"] == "acked" and x["attempts"] == 3][0]
print(x["acked_after_real_ms"] <= 120000)' "$dl")
  assert_eq True "$late" "a delivery acked at the third attempt is within P100's real horizon"

  stop_sim "$B_PID" sim-b
  assert_not_contains "$(cat "$B_LOG")" "$TOKEN" "sim-b's log does not hold the webhook token"
  BASE=$A_BASE
fi

# ------------------------------------------------------------------------------
section "command-line limits and P100's real retry schedule at scale 1"
A_BASE=$BASE
start_sim sim-c --rate-limit 1 --rate-burst 2 --rate-retry-after off --max-status-in-flight 1
C_PID=$SIM_PID
sim GET /_sim/limits
assert_eq '{"rate":1,"burst":2,"retry_after":false,"max_status_in_flight":1}' "$BODY" \
  "--rate-limit, --rate-burst, --rate-retry-after, --max-status-in-flight"
sim GET /_sim/stats
assert_contains "$BODY" '"retry_scale":1,"retry_gaps_ms":[8000,16000,32000,64000],"retry_horizon_ms":120000' \
  "scale 1 is P100's schedule: 8, 16, 32, 64 s (120 s in all)"
assert_contains "$BODY" '"webhook_attempts_max":5' "five attempts in all"
codes=""
for _ in 1 2 3; do api GET /v1/kyc/status/nobody; codes="$codes $CODE"; done
assert_eq " 400 400 429" "$codes" "the command-line bucket: burst 2, then 429"
assert_not_contains "$HDRS" "Retry-After" "--rate-retry-after off: no Retry-After"
sim POST /_sim/limits '{}'
sim POST /_sim/reset
sim GET /_sim/limits
assert_eq '{"rate":1,"burst":2,"retry_after":false,"max_status_in_flight":1}' "$BODY" \
  "reset returns to the command-line limits"
stop_sim "$C_PID" sim-c
BASE=$A_BASE

# ------------------------------------------------------------------------------
section "shutdown"
stop_sim "$A_PID" sim-a
assert_contains "$(cat "$A_LOG")" "msg=stopped" "sim-a logs that it stopped"
assert_not_contains "$(cat "$A_LOG")" "$API_KEY" "sim-a's log does not hold the API key"
assert_not_contains "$(cat "$A_LOG")" "$TOKEN" "sim-a's log does not hold the webhook token"
