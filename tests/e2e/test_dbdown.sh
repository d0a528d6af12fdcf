#!/usr/bin/env bash
# End-to-end: PostgreSQL goes away and comes back. kycd runs against a
# PRIVATE cluster (deploy/pg-local.sh) so that stopping it cannot disturb the
# shared TEST_PG server other tests use. While the database is down a webhook
# gets 503 with Retry-After (P100 retries it: nothing is lost silently),
# /readyz 503 and /healthz 200; once it is back the pool reconnects by
# itself. At the end the events table must hold exactly the deliveries that
# were answered 200.
# shellcheck disable=SC2119,SC2120  # helpers with optional arguments
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=deploy/pg-local.sh
source "$TEST_KYCD_SRC/deploy/pg-local.sh"

e2e_section "private PostgreSQL"
e2e_private_pg
e2e_start_kycd KYCD_RETRY_AFTER=7s KYCD_DB_TIMEOUT=2s KYCD_DB_COMMITTERS=4

DELIVERIES=$E2E_TMP/deliveries   # "user status" per webhook sent

# deliver: one KYC webhook for a new user; prints the status and records it.
deliver() {
  local u st
  u=$(e2e_uuid)
  st=$(post "$E2E_KYC_PATH" "$(kyc_body "$u" NOT_VERIFIED PENDING)" "$@")
  echo "$u $st" >>"$DELIVERIES"
  echo "$st"
}

# deliver_parallel N: N webhooks at once, each on its own connection; prints
# the statuses, sorted and counted ("8x200").
deliver_parallel() {
  local n=$1 i pids=() dir
  dir=$(mktemp -d "$E2E_TMP/par.XXXXXX")
  for i in $(seq 1 "$n"); do
    ( E2E_RESP_BODY=$dir/$i.body E2E_RESP_HEADERS=$dir/$i.headers deliver >"$dir/$i.status" ) &
    pids+=($!)
    e2e_track_pid "$!"
  done
  for i in "${pids[@]}"; do wait "$i" || true; done
  cat "$dir"/*.status | sort | uniq -c | awk '{printf "%sx%s ", $1, $2}'
}

e2e_section "database up"
assert_eq 200 "$(deliver)" "webhook with the database up: 200"
# Open several pool connections, so that several go stale at once below.
assert_eq "8x200 " "$(deliver_parallel 8)" "8 parallel webhooks with the database up: 200"
assert_eq 200 "$(get /readyz)" "/readyz: 200 while the database is up"

e2e_section "database down"
pg_local_stop_server_only "$PRIV_DIR" || e2e_abort "cannot stop the private PostgreSQL"
t0=$(date +%s%N)
st=$(deliver)
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
assert_eq 503 "$st" "webhook with the database down: 503 (${ms} ms)"
assert_eq 7 "$(resp_header Retry-After)" "503 carries Retry-After (the configured 7 s)"
assert_contains "$(resp_body)" '"error":"unavailable"' "503 body says unavailable"
assert_eq 1 "$([ "$ms" -lt 10000 ] && echo 1 || echo 0)" "the 503 comes quickly, not after a hang (${ms} ms)"
for i in 1 2 3; do
  assert_eq 503 "$(deliver)" "webhook #$((i + 1)) with the database down: 503"
done
assert_eq "4x503 " "$(deliver_parallel 4)" "4 parallel webhooks with the database down: 503"
# /readyz answers from a background probe (once a second, 2 s deadline).
ready_is() { [ "$(get /readyz)" = "$1" ]; }
if e2e_wait_cmd 5 ready_is 503; then pass "/readyz with the database down: 503"; else fail "/readyz not 503 within 5 s"; fi
assert_not_contains "$(resp_body)" "127.0.0.1" "the public /readyz names no host (the detail is on the admin listener)"
assert_eq 503 "$(admin_get /readyz)" "admin /readyz: 503 too"
assert_contains "$(resp_body)" '"detail"' "the admin /readyz says why: $(resp_body)"
assert_eq 7 "$(resp_header Retry-After)" "/readyz 503 carries Retry-After"
assert_eq 200 "$(get /healthz)" "/healthz with the database down: still 200"
assert_eq 1 "$(kill -0 "$E2E_KYCD_PID" 2>/dev/null && echo 1 || echo 0)" "kycd keeps running without its database"

e2e_section "database back"
pg_local_start_server_only "$PRIV_DIR" >/dev/null || e2e_abort "cannot restart the private PostgreSQL"
t0=$SECONDS
back=
for i in $(seq 1 30); do
  if [ "$(deliver)" = 200 ]; then back=$((SECONDS - t0)); break; fi
  sleep 0.5
done
if [ -n "$back" ]; then
  pass "a webhook gets 200 again ${back} s after the restart (attempt $i)"
else
  fail "no webhook got 200 within 15 s of the restart; log tail: $(tail -n 3 "$E2E_KYCD_LOG")"
fi
if e2e_wait_cmd 5 ready_is 200; then pass "/readyz: 200 again"; else fail "/readyz not 200 within 5 s of the database's return"; fi
assert_eq "8x200 " "$(deliver_parallel 8)" "8 parallel webhooks after the restart: all 200 (stale pool connections replaced)"
seq_ok=0
for i in $(seq 1 8); do [ "$(deliver)" = 200 ] && seq_ok=$((seq_ok + 1)); done
assert_eq 8 "$seq_ok" "8 sequential webhooks after the restart: all 200"

e2e_section "quick restart, every pooled connection stale"
# Make kycd hold N pool connections at once: webhooks for users whose rows
# are locked here for a moment wait in their committers (group commit: a
# user's deliveries go to the one committer its id hashes to), each holding
# a connection. 16 users over 4 committers block at least 3 of them (all but
# certainly: 1 - 1e-4).
held_users=()
for i in $(seq 1 16); do
  u=$(e2e_uuid)
  assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "$u" NOT_VERIFIED PENDING)")" "webhook for lock holder's user $i: 200"
  echo "$u 200" >>"$DELIVERIES"
  held_users+=("$u")
done
in_list=$(printf "'%s'," "${held_users[@]}"); in_list=${in_list%,}
timeout 20 psql "$E2E_DB_URL" -XAtq -v ON_ERROR_STOP=1 \
  -c "BEGIN" -c "SELECT 1 FROM kyc.verifications WHERE external_user_id IN ($in_list) ORDER BY external_user_id FOR UPDATE" \
  -c "SELECT pg_sleep(1)" -c "COMMIT" >/dev/null &
lock_pid=$!
e2e_track_pid "$lock_pid"
for i in $(seq 1 50); do
  [ "$(sql "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
             WHERE c.relname = 'verifications' AND l.mode = 'RowShareLock' AND l.pid <> pg_backend_pid()")" -gt 0 ] && break
  sleep 0.05
done
held_pids=()
for i in $(seq 1 16); do
  ( E2E_RESP_BODY=$E2E_TMP/held.$i.body E2E_RESP_HEADERS=$E2E_TMP/held.$i.headers \
      post "$E2E_KYC_PATH" "{\"externalUserId\":\"${held_users[$((i - 1))]}\",\"verificationStatus\":\"NOT_VERIFIED\",\"attemptStatus\":\"PENDING\",\"n\":$i}" \
      >"$E2E_TMP/held.$i.status" ) &
  held_pids+=($!)
  e2e_track_pid "$!"
done
sleep 0.3 # let them reach their committers while the rows are locked
npool=$(sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'kycd'")
wait "$lock_pid" || true
for p in "${held_pids[@]}"; do wait "$p" || true; done
assert_eq "16x200 " "$(for f in "$E2E_TMP"/held.*.status; do cat "$f"; echo; done | sort | uniq -c | awk '{printf "%sx%s ", $1, $2}')" "16 webhooks queued on locked rows: all 200"
assert_eq 1 "$([ "$npool" -ge 3 ] && echo 1 || echo 0)" "kycd holds several pool connections ($npool)"
pg_local_restart "$PRIV_DIR" >/dev/null || e2e_abort "cannot restart the private PostgreSQL"
st=$(deliver)
assert_eq 200 "$st" "first webhook after a quick restart (database up, $npool pooled connections stale): 200"
if [ "$st" != 200 ]; then grep 'status=503' "$E2E_KYCD_LOG" | tail -n 1 | sed 's/^/  kycd: /'; fi
later=$(for i in 1 2 3 4 5 6; do printf '%s ' "$(deliver)"; done)
assert_eq "200 200 200 200 200 200 " "$later" "the next 6 webhooks after the quick restart: 200"

e2e_section "accounting"
others=$(awk '$2 != 200 && $2 != 503 {print $2}' "$DELIVERIES" | sort | uniq -c | tr -s ' \n' ' ')
assert_eq "" "$others" "every delivery was answered 200 or 503, nothing else"
ok_users=$(awk '$2 == 200 {print $1}' "$DELIVERIES" | LC_ALL=C sort)
stored=$(sql "SELECT DISTINCT external_user_id FROM kyc.webhook_events" | LC_ALL=C sort)
n_ok=$(printf '%s\n' "$ok_users" | grep -c . || true)
n_503=$(awk '$2 == 503' "$DELIVERIES" | wc -l)
assert_eq "$ok_users" "$stored" "kyc.webhook_events holds exactly the $n_ok deliveries answered 200 (and none of the $n_503 answered 503)"
assert_eq "$((n_ok + 16))" "$(sql "SELECT count(*) FROM kyc.webhook_events")" \
  "event count = deliveries answered 200 (plus the 16 second ones for the locked users)"
assert_eq "$n_ok" "$(sql "SELECT count(*) FROM kyc.verifications")" "one kyc.verifications row per stored user"

e2e_stop_kycd
assert_contains "$(cat "$E2E_KYCD_LOG")" "status=503" "the 503 answers are logged"
