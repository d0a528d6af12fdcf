#!/usr/bin/env bash
# End-to-end: a flood of connections cannot starve kycd (README, "What one
# instance withstands"). Loopback only; every phase is bounded in count and
# time (tests/tools/flood.py).
#   1. allow_cidrs = 127.0.0.1/32; 2,000 connections held from 127.0.0.2
#      (plain TCP, and a share sending a TLS ClientHello then stalling)
#      while 200 deliveries come from 127.0.0.1: every one gets 200, p99
#      under 250 ms; no 127.0.0.2 connection gets an HTTP answer; nothing
#      from 127.0.0.2 is stored; the refusals are counted and logged
#      rate-limited.
#   2. no allow list; 200 idle connections from 127.0.0.3: deliveries from
#      127.0.0.1 still get 200 within header_timeout + 1 s, and kycd closes
#      the idle ones when header_timeout runs out.
#   3. slowloris on the headers and on the body (a byte a second): cut off
#      by their deadlines with 408, while normal deliveries get 200.
#   Phases 2 to 4 check the timeouts alone (slow_min_rate = 0): with the
#   slow-client rule on, these connections are cut sooner
#   (tests/e2e/test_slowloris.sh).
#   Then: every delivery of 1 to 3 acknowledged within P100's retry horizon
#   (p100_lost_check, lib.sh), on its one attempt.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v python3 >/dev/null || e2e_abort "python3 is needed (deploy/packages.sh lists it)"
# 2,000 sockets here and as many accepted by kycd: more than the usual 1,024.
ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
[ "$(ulimit -n)" -ge 4096 ] || e2e_abort "need at least 4096 file descriptors (ulimit -n is $(ulimit -n))"
FLOOD=$TEST_KYCD_SRC/tests/tools/flood.py
e2e_fresh_db

figures() { echo "figures: $*"; }
num() { echo "$2" | grep -oE "(^| )$1=[0-9.]+" | head -n 1 | cut -d= -f2; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$E2E_KYCD_PID/status" 2>/dev/null || echo 0; }
# Every delivery's first attempt and 200 go to $TIMES (flood.py deliver
# --times), checked against P100's horizon at the end.
TIMES=$E2E_TMP/deliveries.times
SENT=0
deliver() {
  timeout 120 python3 "$FLOOD" deliver --port "$E2E_PORT" --ca "$E2E_CA" --token-file "$E2E_TOKEN_FILE" \
    --path "$E2E_KYC_PATH" --times "$TIMES" "$@" 2>&1 || true
}
# hold_open NAME WAIT_S WHAT FLOOD_HOLD_ARGS...: flood.py hold in the background
# (holder: its pid; its report in $E2E_TMP/NAME.out), then wait up to WAIT_S
# for all its connections to be attempted; fail "WHAT" if they are not.
hold_open() {
  local name=$1 wait_s=$2 what=$3; shift 3
  timeout 120 python3 "$FLOOD" hold --port "$E2E_PORT" --ready-file "$E2E_TMP/$name.ready" "$@" \
    >"$E2E_TMP/$name.out" 2>&1 &
  holder=$!
  e2e_track_pid "$holder"
  e2e_wait_cmd "$wait_s" test -e "$E2E_TMP/$name.ready" || fail "$what"
}

# --- 1. refused at accept --------------------------------------------------------------
e2e_section "1. 2,000 connections from outside allow_cidrs, 200 deliveries from inside"
e2e_start_kycd KYCD_ALLOW_CIDRS=127.0.0.1/32 KYCD_LOG_LEVEL=info
rss0=$(rss_kib)
hold_open hold1 60 "the 2,000 connections were not all attempted within 60 s" \
  --source 127.0.0.2 --count 2000 --hello-share 0.25 --seconds 40
rss1=$(rss_kib)
out=$(deliver --count 200 --prefix inside)
SENT=$((SENT + 200))
echo "$out"
kill -TERM "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
hold=$(cat "$E2E_TMP/hold1.out")
echo "$hold"
assert_eq 200 "$(num ok "$out")" "all 200 deliveries from 127.0.0.1 got 200 during the flood"
p99=$(num p99_ms "$out")
assert_eq 1 "$(awk -v p="${p99:-9999}" 'BEGIN { print (p < 250) ? 1 : 0 }')" "their p99 is under 250 ms (${p99:-?} ms)"
assert_eq 0 "$(num http_answers "$hold")" "no 127.0.0.2 connection got an HTTP answer"
assert_eq 0 "$(num tls_bytes "$hold")" "no 127.0.0.2 connection got as much as a TLS byte"
assert_eq 0 "$(sql "SELECT count(*) FROM kyc.webhook_events WHERE remote_addr <> '127.0.0.1'")" \
  "nothing from 127.0.0.2 is stored"
readyz=$(admin_get /readyz >/dev/null; resp_body)
refused=$(json_num refused_connections "$readyz")
opened=$(num opened "$hold")
assert_eq 1 "$([ "${refused:-0}" -ge "${opened:-2000}" ] && echo 1 || echo 0)" \
  "/readyz counts the refused connections (${refused:-none} >= ${opened:-?} opened)"
lines=$(grep -c 'msg="connections refused by allow_cidrs"' "$E2E_KYCD_LOG" || true)
assert_eq 1 "$([ "$lines" -ge 1 ] && [ "$lines" -le 10 ] && echo 1 || echo 0)" \
  "refusals are logged rate-limited: $lines lines for ${refused:-?} connections"
figures "flood 1: held_from_outside=${opened:-?} connect_failed=$(num connect_failed "$hold")" \
  "refused=${refused:-?} deliveries_ok=$(num ok "$out")/200 p50_ms=$(num p50_ms "$out") p99_ms=$p99" \
  "max_ms=$(num max_ms "$out") rss_kib_idle=$rss0 rss_kib_flooded=$rss1 log_lines=$lines"
e2e_stop_kycd

# --- 2. idle connections from an allowed address ----------------------------------------------
e2e_section "2. 200 idle connections from 127.0.0.3, no allow list"
e2e_start_kycd --no-migrate KYCD_LOG_LEVEL=info KYCD_HEADER_TIMEOUT=3s KYCD_SLOW_MIN_RATE=0
hold_open hold2 30 "the 200 idle connections were not opened" \
  --source 127.0.0.3 --count 200 --hello-share 0 --seconds 15
rss2=$(rss_kib)
t0=$(e2e_ms)
out=$(deliver --count 20 --prefix idle)
SENT=$((SENT + 20))
took=$(( $(e2e_ms) - t0 ))
echo "$out"
assert_eq 20 "$(num ok "$out")" "20 deliveries from 127.0.0.1 got 200 beside 200 idle connections"
maxms=$(num max_ms "$out")
assert_eq 1 "$(awk -v p="${maxms:-9999}" 'BEGIN { print (p < 4000) ? 1 : 0 }')" \
  "each within header_timeout (3 s) + 1 s (slowest ${maxms:-?} ms)"
wait "$holder" 2>/dev/null || true
hold=$(cat "$E2E_TMP/hold2.out")
echo "$hold"
assert_eq 200 "$(num closed_by_server "$hold")" "kycd closed every idle connection"
cmax=$(num close_max_ms "$hold")
assert_eq 1 "$(awk -v p="${cmax:-99999}" 'BEGIN { print (p >= 2500 && p < 6000) ? 1 : 0 }')" \
  "when header_timeout (3 s) ran out (last closed after ${cmax:-?} ms)"
figures "flood 2: idle_connections=200 deliveries_ok=$(num ok "$out")/20 p50_ms=$(num p50_ms "$out")" \
  "max_ms=$maxms all_ms=$took idle_closed_p50_ms=$(num close_p50_ms "$hold") idle_closed_max_ms=$cmax rss_kib=$rss2"
e2e_stop_kycd

# --- 3. slowloris --------------------------------------------------------------------------------
e2e_section "3. a byte a second: headers, then a body"
e2e_start_kycd --no-migrate KYCD_LOG_LEVEL=info KYCD_HEADER_TIMEOUT=3s KYCD_REQUEST_TIMEOUT=6s KYCD_SLOW_MIN_RATE=0
slow() {
  timeout 60 python3 "$FLOOD" slow --port "$E2E_PORT" --ca "$E2E_CA" --token-file "$E2E_TOKEN_FILE" \
    --path "$E2E_KYC_PATH" --what "$1" --byte-every 1 >"$E2E_TMP/slow-$1.out" 2>&1 || true
}
slow headers &
s1=$!
slow body &
s2=$!
out=$(deliver --count 20 --prefix beside)
SENT=$((SENT + 20))
wait "$s1" "$s2" 2>/dev/null || true
echo "$out"
sh=$(cat "$E2E_TMP/slow-headers.out"); sb=$(cat "$E2E_TMP/slow-body.out")
echo "$sh"; echo "$sb"
assert_eq 20 "$(num ok "$out")" "normal deliveries get 200 while two clients trickle"
assert_eq 408 "$(num status "$sh")" "headers a byte a second: 408"
assert_eq 1 "$(awk -v p="$(num after_ms "$sh")" 'BEGIN { print (p >= 2500 && p < 6000) ? 1 : 0 }')" \
  "cut off when header_timeout (3 s) ran out ($(num after_ms "$sh") ms)"
assert_eq 408 "$(num status "$sb")" "a body a byte a second: 408"
assert_eq 1 "$(awk -v p="$(num after_ms "$sb")" 'BEGIN { print (p >= 5500 && p < 10000) ? 1 : 0 }')" \
  "cut off when request_timeout (6 s) ran out ($(num after_ms "$sb") ms)"
assert_eq 0 "$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id LIKE 'slow-%'")" \
  "nothing of the trickled request is stored"
figures "flood 3: slow_headers_status=$(num status "$sh") after_ms=$(num after_ms "$sh")" \
  "slow_body_status=$(num status "$sb") after_ms=$(num after_ms "$sb") beside_ok=$(num ok "$out")/20 beside_p99_ms=$(num p99_ms "$out")"
e2e_stop_kycd

# --- P100's horizon ------------------------------------------------------------------------------
# flood.py sends each delivery once: P100 would retry one that was not
# answered 200, for two minutes. What a flood must not do is hold a delivery
# past P100's horizon; with single attempts, the bound that the scenario
# justifies is stricter: every delivery of phases 1 to 3 acknowledged, in
# time, on its one attempt (none lost, none unfinished). The self-test shows
# the helper counting a late delivery.
e2e_section "P100's horizon over the $SENT deliveries of phases 1 to 3"
p100_horizon_selftest
p100_lost_check 0 "flood deliveries: P100's horizon" "$TIMES"
assert_eq "$SENT 0" "$P100_IN_TIME $P100_UNFINISHED" \
  "every delivery sent during the floods was acknowledged within the horizon on its one attempt"
figures "flood horizon: deliveries=$SENT in_time=$P100_IN_TIME p100_lost=$P100_LOST unfinished=$P100_UNFINISHED" \
  "slowest_ack_ms=$P100_SLOWEST_MS"

# --- 4. the public workers all held: the admin listener still answers ----------------------------
e2e_section "4. every public worker held by idle connections: the admin listener answers"
e2e_start_kycd --no-migrate KYCD_LOG_LEVEL=info KYCD_THREADS=4 KYCD_HEADER_TIMEOUT=10s KYCD_SLOW_MIN_RATE=0
hold_open hold4 30 "the 40 idle connections were not opened" \
  --source 127.0.0.3 --count 40 --hello-share 0 --seconds 8
assert_eq 000 "$(get /healthz --max-time 2)" "the public listener is starved: /healthz gets no answer within 2 s"
assert_eq 200 "$(admin_get /metrics --max-time 2)" "the admin listener (its own threads) answers /metrics at once"
wait "$holder" 2>/dev/null || true
e2e_stop_kycd
