#!/usr/bin/env bash
# kycd-test: once
# Several instances, for real: three `kycd serve` on one PostgreSQL database
# behind Debian's HAProxy (TCP mode: TLS passes through to kycd; health checks
# GET /readyz over TLS every 500 ms). kycd-loadgen (load.sh) sends a steady,
# bounded load of webhooks through HAProxy; one instance is killed with
# SIGKILL mid-load and started again on its port and spool. Meanwhile the
# three reconcilers share a backlog of pending users (P100 is the simulator).
# Asserted:
#   - every acknowledged (200) delivery is stored exactly once (check_acks);
#   - HAProxy marks the killed instance DOWN within 3 s (its stats page, read
#     every 100 ms) and UP again after the restart; the restarted instance
#     takes new connections;
#   - the killed instance dies with acknowledged deliveries in its spool (the
#     events table is held locked for 4 s just before the kill, so inserts
#     wait past db_timeout and the instances spool), and its spool drains
#     after the restart (/readyz spool records 0);
#   - the reconciler work is shared (every instance checked users, as its own
#     log says and kyc.status_checks.checker agrees) and no user was checked
#     twice at once (the simulator's max_concurrent_per_user, and no two
#     recorded checks of one user overlapping in time); the killed instance's
#     leases are taken over once they expire.
# Figures are printed as "figures:" lines.
#
# Must never: leave haproxy, a kycd or the loadgen running, wait without a
# bound, listen outside 127.0.0.1.
#
# Environment: TEST_KYCD_BIN, TEST_P100_SIM, TEST_LOADGEN, TEST_PG (lib.sh);
# haproxy on PATH (or /usr/sbin).

# shellcheck disable=SC2119  # lib.sh functions with optional arguments, called without
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/e2e/load.sh
source "$(dirname "${BASH_SOURCE[0]}")/load.sh"

HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
[ -x "$HAPROXY" ] || e2e_abort "haproxy is not installed (Debian package haproxy, in deploy/packages.sh)"

N=3
USERS_REC=400 # pending users the three reconcilers share
REC=(KYCD_DB_TIMEOUT=1s KYCD_RECONCILE=on KYCD_PENDING_AFTER=1h KYCD_RECONCILE_INTERVAL=300ms KYCD_P100_TIMEOUT=2s
     KYCD_P100_RATE=15 KYCD_P100_CONCURRENCY=4 KYCD_RECHECK_SHARE=0)

declare -a K_PORT K_ADMIN K_PID K_LOG K_SPOOL

# kycd_up I [--no-migrate]: start instance I (1..N) on its port (chosen on
# its first start) and its own spool; records its pid and log.
kycd_up() {
  local i=$1 mig=()
  shift
  if [ "${1:-}" = --no-migrate ]; then mig=(--no-migrate); fi
  if [ -n "${K_PORT[$i]:-}" ]; then E2E_NEXT_PORT=${K_PORT[$i]}; fi
  E2E_KYCD_PID=
  e2e_start_kycd "${mig[@]}" "${SIM_ENV[@]}" "${REC[@]}" KYCD_SPOOL_DIR="${K_SPOOL[$i]}"
  K_PORT[i]=$E2E_PORT
  K_ADMIN[i]=$E2E_ADMIN_PORT
  K_PID[i]=$E2E_KYCD_PID
  K_LOG[i]=$E2E_KYCD_LOG
  E2E_KYCD_PID=
}
# kycd_down I: SIGTERM instance I, assert a clean stop (lib.sh).
kycd_down() {
  E2E_KYCD_PID=${K_PID[$1]} E2E_KYCD_LOG=${K_LOG[$1]} E2E_PORT=${K_PORT[$1]}
  e2e_stop_kycd "kycd k$1"
}
# at I CMD...: run CMD against instance I (e2e_url, get: its port;
# admin_get, spool_depth: its admin port).
at() {
  local i=$1 keep=$E2E_PORT keep_admin=$E2E_ADMIN_PORT rc=0
  shift
  E2E_PORT=${K_PORT[$i]} E2E_ADMIN_PORT=${K_ADMIN[$i]}
  "$@" || rc=$?
  E2E_PORT=$keep E2E_ADMIN_PORT=$keep_admin
  return "$rc"
}

# hp_status SERVER: HAProxy's status of backend server SERVER (UP, DOWN,
# "UP 1/2", ...), from the CSV of its stats page.
hp_status() {
  curl -sS --max-time 5 "http://127.0.0.1:$HP_STATS/stats;csv" 2>/dev/null |
    awk -F, -v s="$1" '$1 == "kycd" && $2 == s { print $18 }'
}
hp_is() { [ "$(hp_status "$1")" = "$2" ]; }
hp_all_up() {
  local i
  for i in $(seq 1 "$N"); do hp_is "k$i" UP || return 1; done
}
# requests_in LOG: webhook requests kycd logged in LOG.
requests_in() { grep -c "msg=request .*path=$E2E_KYC_PATH " "$1" || true; }
# checks_in LOG [all]: the reconciler's checks of rc- users that LOG says were
# recorded (they carry check=ID; with "all", also those whose record failed,
# e.g. a database timeout while the events table was locked).
checks_in() {
  if [ "${2:-}" = all ]; then
    grep -cE 'msg="reconciler (check|corrected state[^"]*)" user=rc-' "$1" || true
  else
    grep -E 'msg="reconciler (check|corrected state[^"]*)" user=rc-' "$1" | grep -cE ' check=[0-9]+' || true
  fi
}

# ------------------------------------------------------------------------------
e2e_section "setup: simulator, $N kycd serve on one database, HAProxy in front"
e2e_fresh_db
e2e_certs
e2e_start_sim --no-webhooks
mapfile -t SIM_ENV < <(e2e_sim_env)
for i in $(seq 1 "$N"); do
  K_SPOOL[i]=$E2E_TMP/spool.k$i
  if [ "$i" = 1 ]; then kycd_up "$i"; else kycd_up "$i" --no-migrate; fi
done

HP_DIR=$E2E_TMP/haproxy
mkdir -p "$HP_DIR"
start_haproxy() {
  HP_PORT=$(e2e_free_port)
  HP_STATS=$(e2e_free_port)
  {
    cat <<EOF
global
    maxconn 4000
    stats socket $HP_DIR/admin.sock mode 600 level admin
defaults
    mode tcp
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch
frontend webhooks
    bind 127.0.0.1:$HP_PORT
    default_backend kycd
backend kycd
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    default-server check check-ssl verify none inter 500ms fall 2 rise 2
EOF
    for i in $(seq 1 "$N"); do echo "    server k$i 127.0.0.1:${K_PORT[$i]}"; done
    cat <<EOF
listen stats
    mode http
    bind 127.0.0.1:$HP_STATS
    stats enable
    stats uri /stats
EOF
  } >"$HP_DIR/haproxy.cfg"
  "$HAPROXY" -c -q -f "$HP_DIR/haproxy.cfg" || e2e_abort "haproxy refuses its configuration"
  "$HAPROXY" -db -f "$HP_DIR/haproxy.cfg" >"$HP_DIR/haproxy.log" 2>&1 &
  HP_PID=$!
  e2e_track_pid "$HP_PID"
}
for _ in 1 2 3; do
  start_haproxy
  if e2e_wait_cmd 10 hp_all_up; then break; fi
  kill -0 "$HP_PID" 2>/dev/null && break
  wait "$HP_PID" 2>/dev/null || true # a port was taken: try others
done
if hp_all_up; then
  pass "HAProxy (pid $HP_PID, 127.0.0.1:$HP_PORT) sees all $N instances UP by their /readyz over TLS"
else
  sed 's/^/  haproxy: /' "$HP_DIR/haproxy.log" | tail -n 20
  e2e_abort "HAProxy does not see all $N instances UP: $(for i in $(seq 1 "$N"); do printf 'k%s=%s ' "$i" "$(hp_status "k$i")"; done)"
fi
HP_URL="https://localhost:$HP_PORT$E2E_KYC_PATH"
E2E_PORT=$HP_PORT
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body probe-1 NOT_VERIFIED PENDING)")" \
  "a webhook through HAProxy is answered 200 by a kycd (TLS passed through, kycd's certificate)"

# ------------------------------------------------------------------------------
e2e_section "reconciler backlog: $USERS_REC pending users, 3 instances"
sim POST /_sim/users "{\"prefix\":\"rc-\",\"count\":$USERS_REC,\"verificationStatus\":\"VERIFIED\",\"attemptStatus\":\"SUCCESSFUL\"}" >/dev/null
sim POST /_sim/faults '{"latency_ms":100}' >/dev/null
sql "INSERT INTO kyc.verifications (external_user_id, source, verification_status, attempt_status, updated_at)
     SELECT 'rc-' || g, 'webhook', 'NOT_VERIFIED', 'PENDING', now() - interval '2 hours'
     FROM generate_series(0, $USERS_REC - 1) g"
REC_T0=$(e2e_ms)

# ------------------------------------------------------------------------------
e2e_section "steady load through HAProxy; kill -9 of k2 mid-load, then restart"
LG_URL=$HP_URL
lg_start hp 6 50 --think-ms 40 --max-seconds 120
lg_wait_progress 60 30
VICTIM=2
VICTIM_OLD_PID=${K_PID[$VICTIM]}
# So that k2 dies with acknowledged deliveries in its spool: hold the events
# table locked for a few seconds (inserts wait past db_timeout 1 s, and the
# instances spool what they answer), kill k2 once its spool holds some.
LOCK_S=4
psql "$E2E_DB_URL" -Xq -c "BEGIN" -c "LOCK TABLE kyc.webhook_events IN EXCLUSIVE MODE" \
  -c "SELECT pg_sleep($LOCK_S)" -c "COMMIT" >/dev/null 2>&1 &
LOCK_PID=$!
e2e_track_pid "$LOCK_PID"
e2e_wait_sql "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
              WHERE c.relname = 'webhook_events' AND l.mode = 'ExclusiveLock' AND l.granted" 1 5 ||
  fail "the events table lock was not taken: $E2E_SQL_LAST"
spool_has() { local d; d=$(at "$VICTIM" spool_depth); [ -n "$d" ] && [ "$d" -gt 0 ]; }
e2e_wait_cmd "$LOCK_S" spool_has || echo "  k$VICTIM's spool stayed empty while the table was locked"
at_kill=$(lg_acked)
kill -KILL "${K_PID[$VICTIM]}"
t_kill=$(e2e_ms)
wait "${K_PID[$VICTIM]}" 2>/dev/null || true
if e2e_wait_cmd 10 hp_is "k$VICTIM" DOWN; then
  down_ms=$(( $(e2e_ms) - t_kill ))
  if [ "$down_ms" -le 3000 ]; then
    pass "HAProxy took k$VICTIM out $down_ms ms after the kill -9 (inter 500 ms, fall 2)"
  else
    fail "HAProxy took k$VICTIM out only after $down_ms ms (want <= 3000)"
  fi
else
  down_ms=-1
  fail "HAProxy still has k$VICTIM as '$(hp_status "k$VICTIM")' 10 s after the kill -9"
fi
assert_eq "UP UP" "$(hp_status k1) $(hp_status k3)" "the other two instances stay UP"
acked_while_down_0=$(lg_acked)
e2e_kycd_cmd KYCD_SPOOL_DIR="${K_SPOOL[$VICTIM]}" -- spool status
assert_eq 0 "$E2E_RC" "kycd spool status on k$VICTIM's spool after the kill -9 (lock released)"
spool_at_crash=$(grep -oE ': [0-9]+ records' "$E2E_OUT" | head -n 1 | tr -dc 0-9)
echo "  k$VICTIM's spool at the crash: $(tr '\n' ' ' <"$E2E_OUT")"
# Stay down for a moment of load (bounded by the loadgen's progress).
lg_wait_progress 20 60
acked_while_down=$(( $(lg_acked) - acked_while_down_0 ))
OLD_LOG=${K_LOG[$VICTIM]}
kycd_up "$VICTIM" --no-migrate
t_start=$(e2e_ms)
if e2e_wait_cmd 10 hp_is "k$VICTIM" UP; then
  up_ms=$(( $(e2e_ms) - t_start ))
  pass "HAProxy put k$VICTIM back $up_ms ms after it listened again (rise 2)"
else
  up_ms=-1
  fail "HAProxy has k$VICTIM as '$(hp_status "k$VICTIM")' 10 s after its restart"
fi
if [ "${spool_at_crash:-0}" -gt 0 ]; then
  pass "k$VICTIM died with $spool_at_crash acknowledged deliveries in its spool"
else
  fail "k$VICTIM's spool was empty at the crash (the locked table did not make it spool)"
fi
wait "$LOCK_PID" 2>/dev/null || true
if at "$VICTIM" wait_spool_empty 30; then
  pass "the restarted k$VICTIM drained its spool ($spool_at_crash records at the crash) in ${SPOOL_WAIT_MS} ms"
else
  fail "k$VICTIM's spool still holds $LAST_DEPTH records 30 s after the restart"
fi
lg_wait 120
assert_eq 0 "$LG_RC" "the loadgen got every delivery acknowledged ($(lg_num ok) of $LG_TOTAL)"
check_acks hp "$LG_ACKS" "$LG_TOTAL"
FIRST_TOTAL=$LG_TOTAL
FIRST_TERR=$(lg_num transport_errors)
FIRST_SECS=$(lg_num seconds)

# New connections after the restart reach the restarted instance too.
before=$(requests_in "${K_LOG[$VICTIM]}")
lg_start hp2 6 10 --max-seconds 60
lg_wait 60
assert_eq 0 "$LG_RC" "a second load after the restart is acknowledged in full"
check_acks hp2 "$LG_ACKS" "$LG_TOTAL"
after=$(( $(requests_in "${K_LOG[$VICTIM]}") - before ))
if [ "$after" -gt 0 ]; then
  pass "the restarted k$VICTIM took $after of the second load's $LG_TOTAL deliveries"
else
  fail "the restarted k$VICTIM took none of the second load's deliveries"
fi
per_instance=''
for i in $(seq 1 "$N"); do
  per_instance="$per_instance k$i=$(requests_in "${K_LOG[$i]}")"
done
old_log_reqs=$(requests_in "$OLD_LOG")
figures "haproxy: deliveries=$FIRST_TOTAL in ${FIRST_SECS} s acknowledged_at_kill=$at_kill acknowledged_while_k${VICTIM}_down=$acked_while_down" \
  "down_detected_ms=$down_ms back_up_ms=$up_ms spool_at_crash=${spool_at_crash:-?}" \
  "requests_per_instance:$per_instance (k$VICTIM before the kill: $old_log_reqs) transport_errors_seen_by_the_loadgen=$FIRST_TERR"

# ------------------------------------------------------------------------------
e2e_section "the reconcilers shared the backlog, no user checked twice at once"
if e2e_wait_sql "SELECT count(*) FROM kyc.verifications WHERE external_user_id LIKE 'rc-%' AND verification_status = 'VERIFIED'" \
     "$USERS_REC" 90; then
  pass "all $USERS_REC pending users converged in $(( $(e2e_ms) - REC_T0 )) ms (the killed instance's leases taken over after they expired)"
else
  fail "only $E2E_SQL_LAST of $USERS_REC users converged within 90 s"
fi
assert_eq 1 "$(json_num max_concurrent_per_user "$(sim GET /_sim/stats)")" \
  "the simulator never saw two calls at once for one user"
assert_eq 0 "$(sql "SELECT count(*) FROM kyc.status_checks a JOIN kyc.status_checks b
                    ON b.external_user_id = a.external_user_id AND b.id > a.id
                    WHERE a.external_user_id LIKE 'rc-%'
                      AND tstzrange(a.checked_at - a.latency_ms * interval '1 ms', a.checked_at)
                       && tstzrange(b.checked_at - b.latency_ms * interval '1 ms', b.checked_at)")" \
  "no two recorded checks of one user overlap in time"
IFS='|' read -r n_checks n_users <<<"$(sql "SELECT count(*), count(DISTINCT external_user_id) FROM kyc.status_checks WHERE external_user_id LIKE 'rc-%'")"
sim_calls=$(json_num status_calls "$(sim GET /_sim/stats)")
shares=''
unrecorded=0
bad_share=''
for i in $(seq 1 "$N"); do
  in_log=$(checks_in "${K_LOG[$i]}")
  unrecorded=$(( unrecorded + $(checks_in "${K_LOG[$i]}" all) - in_log ))
  in_db=$(sql "SELECT count(*) FROM kyc.status_checks WHERE external_user_id LIKE 'rc-%' AND checker LIKE '%:${K_PID[$i]}'")
  shares="$shares k$i=$in_db"
  if [ "$in_log" != "$in_db" ]; then bad_share="$bad_share k$i(log $in_log, db $in_db)"; fi
  if [ "$in_db" -eq 0 ]; then bad_share="$bad_share k$i(none)"; fi
done
old_in_log=$(checks_in "$OLD_LOG")
unrecorded=$(( unrecorded + $(checks_in "$OLD_LOG" all) - old_in_log ))
old_in_db=$(sql "SELECT count(*) FROM kyc.status_checks WHERE external_user_id LIKE 'rc-%' AND checker LIKE '%:$VICTIM_OLD_PID'")
shares="$shares k$VICTIM-before-kill=$old_in_db"
if [ -z "$bad_share" ]; then
  pass "every instance checked users, each live instance's log agrees with kyc.status_checks:$shares (killed k$VICTIM logged $old_in_log)"
else
  fail "checks per instance:$shares;$bad_share (killed k$VICTIM: log $old_in_log, db $old_in_db)"
fi
figures "reconciler: users=$USERS_REC checks=$n_checks distinct_users=$n_users p100_calls=$sim_calls" \
  "per_instance:$shares calls_not_recorded=$((sim_calls - n_checks)) (logged, record failed: $unrecorded; the rest in flight at the kill)"

# ------------------------------------------------------------------------------
e2e_section "clean stop"
for i in $(seq 1 "$N"); do kycd_down "$i"; done
kill -TERM "$HP_PID" 2>/dev/null || true
e2e_wait_exit "$HP_PID" 10 || fail "haproxy still running 10 s after SIGTERM"
