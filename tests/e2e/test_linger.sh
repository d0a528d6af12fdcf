#!/usr/bin/env bash
# End-to-end: answers given before the request was read reach the client.
# kycd answers some requests without reading their bodies (413 on the
# declared length, 401 before the body, 503 while draining). Closing a
# socket with unread input makes the kernel send RST, and a client that is
# still writing loses the answer it has not read yet. kycd's lingering close
# reads and discards the rest for a bounded time first (README, "Lingering
# close"). Each case is 100 tries over real TLS with a client that writes
# its whole request before reading (tests/tools/early_answer.py): every try
# must get its status, none a reset, and kycd must then close the connection
# (the answer says "Connection: close"; the request did not ask for it).
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v python3 >/dev/null || e2e_abort "python3 is needed (deploy/packages.sh lists it)"
e2e_fresh_db

# probe WHAT EXPECTED_STATUS ARGS...: 100 tries; pass when all got it.
probe() {
  local what=$1 expect=$2 out rc=0
  shift 2
  out=$(timeout 300 python3 "$TEST_KYCD_SRC/tests/tools/early_answer.py" --port "$E2E_PORT" \
          --ca "$E2E_CA" --tries 100 --expect "$expect" --expect-close "$@" 2>&1) || rc=$?
  echo "$out"
  if [ "$rc" = 0 ]; then
    pass "$what: 100/100 got $expect"
  else
    fail "$what: $(echo "$out" | head -n 1)"
    tail -n 20 "$E2E_KYCD_LOG" | sed 's/^/  kycd: /'
  fi
}

e2e_start_kycd KYCD_MAX_BODY=64k KYCD_LOG_LEVEL=info
before=$(events_count)

e2e_section "413: a 1 MiB body against max_body = 64k"
probe "413, 1 MiB sent at once" 413 --path "$E2E_KYC_PATH" --token-file "$E2E_TOKEN_FILE" \
  --body-bytes 1048576 --parallel 4
probe "413, 1 MiB sent slowly (16 KiB every 5 ms)" 413 --path "$E2E_KYC_PATH" \
  --token-file "$E2E_TOKEN_FILE" --body-bytes 1048576 --chunk 16384 --delay-ms 5 --parallel 8

e2e_section "401: a wrong token with a 64 KiB body"
probe "401, 64 KiB body" 401 --path "$E2E_KYC_PATH" --token "wrong-$E2E_TOKEN" \
  --body-bytes 65536 --parallel 4
assert_eq "$before" "$(events_count)" "nothing was stored by the refused requests"
lingered=$(grep -c 'msg=request .*status=413' "$E2E_KYCD_LOG" || true)
assert_eq 200 "$lingered" "kycd logged every 413 (200 requests)"

e2e_section "503: requests arriving while kycd drains"
e2e_stop_kycd
# A request whose body never ends keeps kycd draining (shutdown_timeout
# 60 s) until this script ends it.
e2e_start_kycd --no-migrate KYCD_LOG_LEVEL=info KYCD_SHUTDOWN_TIMEOUT=60s KYCD_REQUEST_TIMEOUT=60s KYCD_HEADER_TIMEOUT=60s \
    KYCD_SLOW_MIN_RATE=0 # the stalled body must stay: no slow-client cut
e2e_stall_request
e2e_wait_cmd 10 bash -c "ss -Htn state established '( sport = :$E2E_PORT )' | grep -q ." ||
  fail "the stalled request did not connect"
kill -TERM "$E2E_KYCD_PID"
e2e_wait_cmd 10 grep -q 'msg="shutting down"' "$E2E_KYCD_LOG" || fail "kycd did not log shutting down"
probe "503 while draining, P100-sized body" 503 --path "$E2E_KYC_PATH" \
  --token-file "$E2E_TOKEN_FILE" --body-bytes 400 --parallel 4
probe "503 while draining, 64 KiB body" 503 --path "$E2E_KYC_PATH" \
  --token-file "$E2E_TOKEN_FILE" --body-bytes 65536 --parallel 4
kill -TERM "$E2E_STALLER" 2>/dev/null || true
e2e_stop_kycd --signaled "kycd (drained)"
draining=$(grep -c 'msg=request .*status=503 .*error="shutting down, retry later"' "$E2E_KYCD_LOG" || true)
assert_eq 200 "$draining" "kycd logged 200 draining answers"
assert_eq "$before" "$(events_count)" "nothing was stored while draining"

# --- an answer that cannot be sent is logged as such ----------------------------
# A request still in the handler when the shutdown grace ends: CivetWeb
# writes nothing once it is stopping, so the client sees the connection
# close. kycd must not log that answer as given (the durability test
# compares kycd's answers with what its load generator received).
e2e_section "an answer cut off by the end of the grace period"
e2e_start_kycd --no-migrate KYCD_LOG_LEVEL=info KYCD_SHUTDOWN_TIMEOUT=1s KYCD_DB_TIMEOUT=3s
timeout 30 psql "$E2E_DB_URL" -XAtq -c "BEGIN" -c "LOCK TABLE kyc.webhook_events IN ACCESS EXCLUSIVE MODE" \
  -c "SELECT pg_sleep(5)" -c "COMMIT" >/dev/null 2>&1 &
locker=$!
e2e_track_pid "$locker"
e2e_wait_sql "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'webhook_events' AND l.mode = 'AccessExclusiveLock' AND l.granted" 1 ||
  fail "the lock was not taken"
u=$(e2e_uuid)
( post "$E2E_KYC_PATH" "$(kyc_body "$u" NOT_VERIFIED PENDING)" >"$E2E_TMP/cut.status" ) &
poster=$!
e2e_wait_sql "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()" 1 ||
  fail "the webhook did not reach the database"
kill -TERM "$E2E_KYCD_PID"
e2e_stop_kycd --signaled "kycd (grace ended with a request in flight)"
wait "$poster" 2>/dev/null || true
wait "$locker" 2>/dev/null || true
got=$(cat "$E2E_TMP/cut.status")
line=$(grep "msg=request .*path=$E2E_KYC_PATH" "$E2E_KYCD_LOG" | tail -n 1)
assert_contains "$(grep 'requests still in flight' "$E2E_KYCD_LOG")" "count=1" "the grace ended with the request in flight"
if [ "$got" = 000 ]; then
  assert_contains "$line" "answer=not_sent" "the client got no answer (000), and kycd logged its answer as not sent"
else
  assert_not_contains "$line" "answer=not_sent" "the client got $got, and kycd did not log it as not sent"
fi
