#!/usr/bin/env bash
# End-to-end crash and fault tests of kycd's promise: every HTTP 200 means
# the delivery is on disk and will reach PostgreSQL. kycd-loadgen
# (tests/tools/loadgen.c, TEST_LOADGEN) plays P100: many users, three KYC
# webhooks each, every step only after the previous one got 200, anything
# else retried; it writes every acknowledged "user step" to a file. The
# checker then demands, for each acknowledged delivery, exactly one stored
# non-repeat event with that body in kyc.webhook_events (retries of a
# delivery whose answer was lost are allowed, marked by repeat_of), and a
# kyc.verifications state at or beyond the user's last acknowledged step.
#
# Each scenario has its own PRIVATE PostgreSQL cluster (deploy/pg-local.sh:
# stopping it cannot disturb the shared TEST_PG server) and its own spool:
#   1. kill -9 of kycd under load, restart on the same spool and port
#   2. PostgreSQL stopped for 30 s under load: no 5xx, the spool takes it all
#      and drains once the database is back (peak depth and drain time)
#   3. PostgreSQL restarted under load (connections dropped): no 5xx
#   4. the spool full while the database is down: 503 + Retry-After, never
#      200; the 200s are exactly what `kycd spool status` counts and `kycd
#      spool drain` stores; without a spool, database down means 503
#   5. SIGTERM under load: exit 0, in-flight requests answered (every answer
#      kycd logged reached the loadgen), restart, nothing lost
# In 1, 1b, 2, 3 and 5, every delivery is also acknowledged within P100's
# retry horizon (p100_lost_check, lib.sh: none that P100, which stops two
# minutes after the first attempt, would have lost); 0 checks the check.
# DURABILITY_SCENARIOS="2 4" runs a subset (default: all). Figures are
# printed as "figures:" lines.
# shellcheck disable=SC2119,SC2120  # helpers with optional arguments
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=deploy/pg-local.sh
source "$TEST_KYCD_SRC/deploy/pg-local.sh"

SCENARIOS=" ${DURABILITY_SCENARIOS:-1 2 3 4 5} "
want() { [[ $SCENARIOS == *" $1 "* ]]; }

# --- private clusters: e2e_private_pg, e2e_private_pg_drop (lib.sh) ----------

db_stop() { pg_local_stop_server_only "$PRIV_DIR" || e2e_abort "cannot stop the private PostgreSQL"; }
db_start() { pg_local_start_server_only "$PRIV_DIR" >/dev/null || e2e_abort "cannot start the private PostgreSQL"; }

# kycd_restart [NAME=value ...]: start kycd again on the same port (the
# loadgen keeps its URL), without migrating.
kycd_restart() {
  E2E_NEXT_PORT=$SCEN_PORT
  e2e_start_kycd --no-migrate "$@"
}

# The loadgen, the spool depth, the checker and figures: tests/e2e/load.sh.
# shellcheck source=tests/e2e/load.sh
source "$(dirname "${BASH_SOURCE[0]}")/load.sh"

# answers_in STATUS LOG...: webhook answers with STATUS that kycd logged as
# sent (an answer CivetWeb could not write, because the server was already
# stopping, is logged with answer=not_sent: the client saw a closed
# connection and retried).
answers_in() {
  cat "${@:2}" | grep "msg=request .*path=$E2E_KYC_PATH .*status=$1 " | grep -vc "answer=not_sent" || true
}
unsent_in() {
  cat "$@" | grep -c "msg=request .*path=$E2E_KYC_PATH .*answer=not_sent" || true
}

# P100 gives up two minutes after a delivery's first attempt; the loadgen
# retries every 200 ms for 150 s. Every scenario below where the loadgen
# plays P100 must get each delivery acknowledged within P100's horizon:
# kycd (or its spool) is never away for long, so the bound is 0.
horizon_check() { p100_lost_check 0 "$1: P100's horizon" "$LG_TIMES"; }

scenario_begin() {
  e2e_section "$1"
  SCEN_T0=$SECONDS
}
scenario_end() {
  echo "scenario took $((SECONDS - SCEN_T0)) s"
}

# --- 0. the horizon check itself ----------------------------------------------
# Both halves of a lost delivery, quickly: the helper on made-up times (one
# 200 past the horizon), and kycd-loadgen --p100-schedule (at a hundredth of
# P100's pace) against a port nothing listens on, which must give every
# delivery up after five attempts and have the helper count them all lost.
e2e_section "0. P100's horizon: the helper and the loadgen's P100 schedule"
p100_horizon_selftest
e2e_certs
LG_URL="https://localhost:$(e2e_free_port)$E2E_KYC_PATH" lg_start s0 1 1 --p100-schedule --schedule-scale 0.005
lg_wait 30
assert_eq 4 "$LG_RC" "loadgen --p100-schedule with nobody listening: exit 4 (deliveries given up)"
assert_eq 0 "$(lg_acked)" "... and no 200 recorded"
assert_eq "3 3" "$(awk '$5 == "lost" && $6 == 5 && $4 - $3 >= 600 {n++} END {print NR, n + 0}' "$LG_TIMES")" \
  "... each of its 3 deliveries given up after 5 attempts spread over at least 600 ms (120 s x 0.005)"
p100_lost_check 3 "s0 (nobody listening)" "$LG_TIMES" -- --scale 0.005
assert_eq 3 "$P100_LOST" "the helper counts the 3 given-up deliveries as lost"

# --- 1. kill -9 under load ----------------------------------------------------
if want 1; then
  scenario_begin "1. kill -9 under load"
  e2e_private_pg
  SPOOL=$E2E_TMP/spool1
  e2e_start_kycd KYCD_SPOOL_DIR="$SPOOL" KYCD_DB_TIMEOUT=2s KYCD_LOG_LEVEL=info
  SCEN_PORT=$E2E_PORT
  LOG1=$E2E_KYCD_LOG
  lg_start s1 10 170
  # About 2 s of load, earlier on a fast machine: kycd must die mid-run.
  lg_wait_progress 2 40
  at_kill=$(lg_acked)
  assert_eq 1 "$(lg_running && echo 1 || echo 0)" "the loadgen is still running when kycd is killed ($at_kill of $LG_TOTAL acknowledged)"
  kill -KILL "$E2E_KYCD_PID"
  wait "$E2E_KYCD_PID" 2>/dev/null || true
  E2E_KYCD_PID=
  t_kill=$(e2e_ms)
  e2e_kycd_cmd KYCD_SPOOL_DIR="$SPOOL" -- spool status
  assert_eq 0 "$E2E_RC" "kycd spool status after the kill -9 (spool lock released)"
  crash_depth=$(grep -oE '[0-9]+ records' "$E2E_OUT" | grep -oE '^[0-9]+' || echo '?')
  kycd_restart KYCD_SPOOL_DIR="$SPOOL" KYCD_DB_TIMEOUT=2s KYCD_LOG_LEVEL=info
  down_ms=$(( $(e2e_ms) - t_kill ))
  LOG2=$E2E_KYCD_LOG
  depth_poll_start
  lg_wait 120
  assert_eq 0 "$LG_RC" "the loadgen finishes after the restart (every user at step 3)"
  if wait_spool_empty 60; then pass "the spool is empty after the load (${SPOOL_WAIT_MS} ms)"; else fail "the spool still holds $LAST_DEPTH records 60 s after the load"; fi
  peak=$(depth_poll_stop)
  figures "scenario 1: deliveries=$LG_TOTAL acknowledged_at_kill=$at_kill spool_at_crash=$crash_depth" \
    "kycd_down_ms=$down_ms sent=$(lg_num sent) ok=$(lg_num ok) 503=$(lg_num 503) 5xx=$(lg_num 5xx)" \
    "transport_errors=$(lg_num transport_errors) spool_peak_after_restart=$peak seconds=$(lg_num seconds)"
  check_acks s1 "$LG_ACKS" "$LG_TOTAL"
  horizon_check s1
  e2e__sanitizer_check "$LOG1" "kycd (killed)"

  # 1b. The same, while the drainer replays the spool: a record committed
  # but not yet acknowledged in the spool is replayed again after the
  # restart, and must be stored once (request ids are unique).
  e2e_section "1b. kill -9 while the spool drains"
  db_stop
  lg_start s1b 10 60
  lg_wait 60
  assert_eq 0 "$LG_RC" "with the database down, every delivery is acknowledged from the spool"
  full=$(spool_depth)
  assert_eq "$LG_TOTAL" "$full" "the spool holds all $LG_TOTAL deliveries"
  db_start
  t_up=$(e2e_ms)
  depth=$full
  while [ $(( $(e2e_ms) - t_up )) -lt 20000 ]; do
    depth=$(spool_depth)
    [ -n "$depth" ] && [ "$depth" -lt $((full * 2 / 3)) ] && break
    sleep 0.05
  done
  kill -KILL "$E2E_KYCD_PID"
  wait "$E2E_KYCD_PID" 2>/dev/null || true
  E2E_KYCD_PID=
  e2e__sanitizer_check "$LOG2" "kycd (killed while draining)"
  e2e_kycd_cmd KYCD_SPOOL_DIR="$SPOOL" -- spool status
  left=$(grep -oE '[0-9]+ records' "$E2E_OUT" | grep -oE '^[0-9]+' || echo '?')
  assert_eq 1 "$([ "$left" != '?' ] && [ "$left" -gt 0 ] && [ "$left" -lt "$full" ] && echo 1 || echo 0)" \
    "kycd was killed mid-drain ($left of $full records left in the spool)"
  stored_at_kill=$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id LIKE 's1b-%'")
  kycd_restart KYCD_SPOOL_DIR="$SPOOL" KYCD_DB_TIMEOUT=2s KYCD_LOG_LEVEL=info
  LOG3=$E2E_KYCD_LOG
  t0=$(e2e_ms)
  if wait_spool_empty 60; then pass "the restarted kycd drains the rest (${SPOOL_WAIT_MS} ms)"; else fail "the spool still holds $LAST_DEPTH records 60 s after the restart"; fi
  figures "scenario 1b: deliveries=$LG_TOTAL spooled=$full left_at_kill=$left stored_at_kill=$stored_at_kill" \
    "committed_but_still_spooled=$((stored_at_kill + left - full)) (replayed again after the restart)" \
    "drain_after_restart_ms=$(( $(e2e_ms) - t0 ))"
  check_acks s1b "$LG_ACKS" "$LG_TOTAL"
  horizon_check s1b
  no_dead_letters "$LOG1" "$LOG2" "$LOG3"
  e2e_stop_kycd
  e2e_private_pg_drop
  scenario_end
fi

# --- 2. PostgreSQL stopped for 30 s under load --------------------------------
if want 2; then
  scenario_begin "2. PostgreSQL down for 30 s under load"
  e2e_private_pg
  SPOOL=$E2E_TMP/spool2
  e2e_start_kycd KYCD_SPOOL_DIR="$SPOOL" KYCD_DB_TIMEOUT=2s KYCD_LOG_LEVEL=info
  SCEN_PORT=$E2E_PORT
  # ~95 deliveries/s (100 ms between a user's steps) for ~38 s: the outage
  # falls in the middle, with load before, during and after it.
  lg_start s2 10 120 --think-ms 100
  lg_wait_progress 3 100
  before=$(lg_acked)
  db_stop
  t_down=$(e2e_ms)
  echo "database stopped at $before acknowledged deliveries"
  peak=0
  db_state=
  while [ $(( $(e2e_ms) - t_down )) -lt 30000 ]; do
    d=$(spool_depth)
    if [ -n "$d" ] && [ "$d" -gt "$peak" ]; then peak=$d; fi
    # shellcheck disable=SC2031  # the main shell's body file (see depth_poll_start)
    db_state=$(grep -oE '"database":"[a-z]+"' "$SPOOL_DEPTH_BODY" 2>/dev/null || true)
    sleep 0.5
  done
  during=$(( $(lg_acked) - before ))
  assert_eq '"database":"down"' "$db_state" "/readyz reports the database down during the outage"
  db_start
  t_up=$(e2e_ms)
  # Drain: from the database's return until /readyz shows the spool empty
  # (new deliveries keep joining the spool until it is).
  drained=
  while [ $(( $(e2e_ms) - t_up )) -lt 60000 ]; do
    d=$(spool_depth)
    if [ -n "$d" ] && [ "$d" -gt "$peak" ]; then peak=$d; fi
    if [ "$d" = 0 ]; then drained=$(( $(e2e_ms) - t_up )); break; fi
    sleep 0.2
  done
  if [ -n "$drained" ]; then pass "the spool drains once the database is back (${drained} ms)"; else fail "the spool still holds $d records 60 s after the database came back"; fi
  lg_wait 90
  assert_eq 0 "$LG_RC" "the loadgen finishes (every user at step 3)"
  if wait_spool_empty 60; then pass "the spool is empty after the load"; else fail "the spool still holds $LAST_DEPTH records 60 s after the load"; fi
  assert_eq 0 "$(lg_num 503)" "no 503 while the spool takes the deliveries"
  assert_eq 0 "$(lg_num 5xx)" "no other 5xx while the database is away"
  assert_eq 0 "$(lg_num other)" "no other non-200 answer"
  assert_eq 0 "$(lg_num transport_errors)" "no transport error"
  assert_eq 1 "$([ "$peak" -gt 0 ] && echo 1 || echo 0)" "the spool was used during the outage (peak $peak records)"
  assert_eq 1 "$([ "$during" -gt 0 ] && echo 1 || echo 0)" "deliveries were acknowledged during the outage ($during)"
  spooled=$(grep -c 'database unavailable, spooling' "$E2E_KYCD_LOG" || true)
  figures "scenario 2: deliveries=$LG_TOTAL acknowledged_before_outage=$before acknowledged_during_outage=$during" \
    "spool_peak=$peak drain_ms=${drained:-timeout} sent=$(lg_num sent) ok=$(lg_num ok) 503=$(lg_num 503)" \
    "5xx=$(lg_num 5xx) transport_errors=$(lg_num transport_errors) latency_max_ms=$(lg_num latency_max_ms)" \
    "seconds=$(lg_num seconds) db_failures_logged=$spooled"
  check_acks s2 "$LG_ACKS" "$LG_TOTAL"
  horizon_check s2
  no_dead_letters "$E2E_KYCD_LOG"
  e2e_stop_kycd
  e2e_private_pg_drop
  scenario_end
fi

# --- 3. PostgreSQL restarted under load ---------------------------------------
if want 3; then
  scenario_begin "3. PostgreSQL restarted under load"
  e2e_private_pg
  SPOOL=$E2E_TMP/spool3
  e2e_start_kycd KYCD_SPOOL_DIR="$SPOOL" KYCD_DB_TIMEOUT=2s KYCD_LOG_LEVEL=info
  SCEN_PORT=$E2E_PORT
  lg_start s3 10 170
  depth_poll_start
  lg_wait_progress 2 30
  at_restart=$(lg_acked)
  assert_eq 1 "$(lg_running && echo 1 || echo 0)" "the loadgen is still running at the restart ($at_restart of $LG_TOTAL acknowledged)"
  t0=$(e2e_ms)
  pg_local_restart "$PRIV_DIR" >/dev/null || e2e_abort "cannot restart the private PostgreSQL"
  restart_ms=$(( $(e2e_ms) - t0 ))
  lg_wait 120
  assert_eq 0 "$LG_RC" "the loadgen finishes (every user at step 3)"
  if wait_spool_empty 60; then pass "the spool is empty after the load (${SPOOL_WAIT_MS} ms)"; else fail "the spool still holds $LAST_DEPTH records 60 s after the load"; fi
  peak=$(depth_poll_stop)
  assert_eq 0 "$(lg_num 503)" "no 503 across the restart (the spool takes what the database does not)"
  assert_eq 0 "$(lg_num 5xx)" "no other 5xx across the restart"
  assert_eq 0 "$(lg_num transport_errors)" "no transport error"
  spooled=$(grep -c 'database unavailable, spooling' "$E2E_KYCD_LOG" || true)
  figures "scenario 3: deliveries=$LG_TOTAL acknowledged_at_restart=$at_restart restart_ms=$restart_ms" \
    "spool_peak=$peak sent=$(lg_num sent) ok=$(lg_num ok) 503=$(lg_num 503) 5xx=$(lg_num 5xx)" \
    "transport_errors=$(lg_num transport_errors) latency_max_ms=$(lg_num latency_max_ms)" \
    "seconds=$(lg_num seconds) db_failures_logged=$spooled"
  check_acks s3 "$LG_ACKS" "$LG_TOTAL"
  horizon_check s3
  no_dead_letters "$E2E_KYCD_LOG"
  e2e_stop_kycd
  e2e_private_pg_drop
  scenario_end
fi

# --- 4. spool full while the database is down ---------------------------------
# (No horizon check here: the deliveries are single posts, and the 503s are
# the point; kycd's spool_max is what decides whether P100 would lose them.)
if want 4; then
  scenario_begin "4. spool full while the database is down"
  e2e_private_pg
  SPOOL=$E2E_TMP/spool4
  ACKS4=$E2E_TMP/s4.acks
  : >"$ACKS4"
  e2e_start_kycd KYCD_SPOOL_DIR="$SPOOL" KYCD_SPOOL_MAX=1M KYCD_MAX_BODY=64k KYCD_DB_TIMEOUT=2s \
    KYCD_RETRY_AFTER=3s KYCD_LOG_LEVEL=info
  PAD=$(head -c 60000 /dev/zero | tr '\0' x)
  big_body() {  # big_body USER: a KYC webhook of ~60 KB
    printf '{"externalUserId":"%s","verificationStatus":"NOT_VERIFIED","attemptStatus":"PENDING","padding":"%s"}' "$1" "$PAD" >"$E2E_TMP/big.json"
  }
  big_body s4-up-0
  assert_eq 200 "$(post "$E2E_KYC_PATH" @"$E2E_TMP/big.json")" "a 60 KB delivery with the database up: 200"
  echo "s4-up-0 1 200" >>"$ACKS4"
  db_stop
  statuses=()
  n200=0
  first503=
  after_full=0
  after_full_bad=0
  retry_missing=0
  for i in $(seq 1 40); do
    big_body "s4-0-$i"
    st=$(post "$E2E_KYC_PATH" @"$E2E_TMP/big.json")
    statuses+=("$st")
    if [ "$st" = 200 ] && [ -z "$first503" ]; then
      n200=$((n200 + 1))
      echo "s4-0-$i 1 200" >>"$ACKS4"
      continue
    fi
    if [ -z "$first503" ]; then
      first503=$st
      assert_eq 503 "$st" "the first delivery the full spool cannot take: 503 (after $n200 spooled)"
      assert_eq 3 "$(resp_header Retry-After)" "... with Retry-After"
      rd_code=$(admin_get /readyz)
      rd_body=$(resp_body)
      continue
    fi
    # After the first refusal: 5 more, all must be 503 with Retry-After.
    after_full=$((after_full + 1))
    [ "$st" = 503 ] || after_full_bad=$((after_full_bad + 1))
    [ -n "$(resp_header Retry-After)" ] || retry_missing=$((retry_missing + 1))
    if [ "$st" = 200 ]; then echo "s4-0-$i 1 200" >>"$ACKS4"; fi
    [ "$after_full" -ge 5 ] && break
  done
  echo "statuses: ${statuses[*]}"
  assert_eq 1 "$([ "$n200" -ge 10 ] && echo 1 || echo 0)" "the 1 MiB spool took about 1 MiB of 60 KB deliveries ($n200)"
  assert_eq "5 0 0" "$after_full $after_full_bad $retry_missing" "5 more deliveries once the spool is full: all 503 with Retry-After, none 200"
  # ingest.h: /readyz is ready when "the database answers, or the spool has room".
  assert_eq 503 "${rd_code:-}" "/readyz with the database down and the spool full: 503 (body ${rd_body:-})"
  e2e_stop_kycd "kycd (database down, spool full)"
  e2e_kycd_cmd KYCD_SPOOL_DIR="$SPOOL" KYCD_SPOOL_MAX=1M -- spool status
  cat "$E2E_OUT"
  assert_eq 0 "$E2E_RC" "kycd spool status exits 0"
  in_spool=$(grep -oE '[0-9]+ records' "$E2E_OUT" | grep -oE '^[0-9]+' || echo '?')
  assert_eq "$n200" "$in_spool" "the spool holds exactly the deliveries answered 200 while the database was down"
  db_start
  e2e_kycd_cmd --timeout 60 KYCD_SPOOL_DIR="$SPOOL" KYCD_SPOOL_MAX=1M KYCD_MAX_BODY=64k -- spool drain
  cat "$E2E_OUT"
  assert_eq 0 "$E2E_RC" "kycd spool drain exits 0"
  assert_contains "$(cat "$E2E_OUT")" "replayed $n200 records into the database; 0 left" "kycd spool drain replays all $n200"
  drain_secs=$E2E_SECS
  check_acks s4 "$ACKS4" "$((n200 + 1))"

  e2e_section "4b. no spool, database down"
  e2e_start_kycd --no-migrate KYCD_MAX_BODY=64k KYCD_DB_TIMEOUT=2s KYCD_RETRY_AFTER=3s KYCD_LOG_LEVEL=info
  assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body s4-nospool-up NOT_VERIFIED PENDING)")" "without a spool, database up: 200"
  db_stop
  nospool=()
  retry_missing=0
  for i in 1 2 3 4 5; do
    nospool+=("$(post "$E2E_KYC_PATH" "$(kyc_body "s4-nospool-$i" NOT_VERIFIED PENDING)")")
    [ -n "$(resp_header Retry-After)" ] || retry_missing=$((retry_missing + 1))
  done
  assert_eq "503 503 503 503 503 0" "${nospool[*]} $retry_missing" "without a spool, database down: 503 with Retry-After, never 200"
  e2e_stop_kycd "kycd (no spool, database down)"
  db_start
  assert_eq 0 "$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id LIKE 's4-nospool-_'")" "none of the refused deliveries was stored"
  figures "scenario 4: spooled_200=$n200 first_refusal=${first503:-none} refused_after_full=$after_full" \
    "in_spool_at_stop=$in_spool drain_seconds=$drain_secs nospool_statuses=${nospool[*]}"
  e2e_private_pg_drop
  scenario_end
fi

# --- 5. graceful shutdown under load ------------------------------------------
if want 5; then
  scenario_begin "5. SIGTERM under load"
  e2e_private_pg
  SPOOL=$E2E_TMP/spool5
  e2e_start_kycd KYCD_SPOOL_DIR="$SPOOL" KYCD_DB_TIMEOUT=2s KYCD_LOG_LEVEL=info
  SCEN_PORT=$E2E_PORT
  LOG1=$E2E_KYCD_LOG
  lg_start s5 10 170
  lg_wait_progress 2 30
  at_term=$(lg_acked)
  assert_eq 1 "$(lg_running && echo 1 || echo 0)" "the loadgen is still running at SIGTERM ($at_term of $LG_TOTAL acknowledged)"
  t0=$(e2e_ms)
  kill -TERM "$E2E_KYCD_PID"
  e2e_stop_kycd --signaled "kycd (SIGTERM under load)"
  stop_ms=$(( $(e2e_ms) - t0 ))
  inflight=$(grep -oE 'requests still in flight at shutdown.*count=[0-9]+' "$LOG1" | grep -oE '[0-9]+$' || echo 0)
  assert_eq 0 "$inflight" "no request was still in flight when the grace period ended"
  kycd_restart KYCD_SPOOL_DIR="$SPOOL" KYCD_DB_TIMEOUT=2s KYCD_LOG_LEVEL=info
  LOG2=$E2E_KYCD_LOG
  lg_wait 120
  assert_eq 0 "$LG_RC" "the loadgen finishes after the restart (every user at step 3)"
  if wait_spool_empty 60; then pass "the spool is empty after the load"; else fail "the spool still holds $LAST_DEPTH records 60 s after the load"; fi
  # Every answer kycd logged must have reached the loadgen: a request kycd
  # had started handling is answered (200, or 503 "draining"), never cut.
  srv200=$(answers_in 200 "$LOG1" "$LOG2")
  srv503=$(answers_in 503 "$LOG1" "$LOG2")
  draining=$(grep -c 'msg=request .*status=503 .*shutting down' "$LOG1" || true)
  assert_eq "$srv200" "$(lg_num ok)" "every 200 kycd sent reached the loadgen"
  assert_eq "$srv503" "$(lg_num 503)" "every 503 kycd sent reached the loadgen"
  assert_eq 0 "$(lg_num 5xx)" "no 5xx other than 503"
  assert_eq 0 "$(lg_num other)" "no other non-200 answer"
  figures "scenario 5: deliveries=$LG_TOTAL acknowledged_at_sigterm=$at_term shutdown_ms=$stop_ms" \
    "kycd_answers_200=$srv200 kycd_answers_503=$srv503 (draining $draining) not_sent=$(unsent_in "$LOG1" "$LOG2") loadgen_ok=$(lg_num ok) loadgen_503=$(lg_num 503)" \
    "transport_errors=$(lg_num transport_errors) (connect=$(lg_num connect) tls=$(lg_num tls) cut=$(lg_num cut)" \
    "timeout=$(lg_num timeout) other=$(lg_num transport_other)) seconds=$(lg_num seconds)"
  check_acks s5 "$LG_ACKS" "$LG_TOTAL"
  horizon_check s5
  no_dead_letters "$LOG1" "$LOG2"
  e2e_stop_kycd
  e2e_private_pg_drop
  scenario_end
fi
