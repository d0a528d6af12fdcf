#!/usr/bin/env bash
# End-to-end tests of the reconciler: the real kycd (serve, reconcile --once),
# the P100 simulator (p100-sim) sending real webhooks to kycd over TLS and
# answering Get KYC Status, and a real PostgreSQL database. Each case drives
# the simulator (dropped, reordered webhooks; P412/P445; P500/P501; 429; 401;
# latency) and polls the database, bounded, for the state kycd must reach.
#
# Must never: leave a process it started running, wait without a bound, print
# the API key.
#
# Environment: TEST_KYCD_BIN, TEST_P100_SIM, TEST_PG, TEST_KYCD_SRC (lib.sh).

# shellcheck disable=SC2119  # lib.sh functions with optional arguments, called without
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Short timings for the reconciler inside kycd serve.
REC=(KYCD_RECONCILE=on KYCD_PENDING_AFTER=1s KYCD_RECONCILE_INTERVAL=300ms
     KYCD_RECONCILE_BACKOFF_MIN=200ms KYCD_RECONCILE_BACKOFF_MAX=1s KYCD_P100_TIMEOUT=3s)
RATE=50
CONC=4
OK_ARGS=(--document-type PASSPORT --country PL --income-source SALARY
         --open-account-reason DAILY_USE --occupation IT)

# --- helpers --------------------------------------------------------------------

# state USER: "verification/attempt/source" as stored.
state() {
  sql "SELECT coalesce(verification_status, '-') || '/' || coalesce(attempt_status, '-') || '/' || source
       FROM kyc.verifications WHERE external_user_id = '$1'"
}
# sim_state USER: "verification/attempt" at the simulator.
sim_state() {
  local u
  u=$(sim GET "/_sim/users/$1")
  printf '%s/%s' "$(json_str verificationStatus "$u")" "$(json_str attemptStatus "$u")"
}
sim_user_calls() { json_num status_calls "$(sim GET "/_sim/users/$1")"; }
sim_stat() { json_num "$1" "$(sim GET /_sim/stats)"; }
# sim_user USER [V A]: a simulator user with that KYC state (none without V A).
sim_user() {
  if [ $# -ge 3 ]; then
    sim POST /_sim/users "{\"externalUserId\":\"$1\",\"verificationStatus\":\"$2\",\"attemptStatus\":\"$3\"}" >/dev/null
  else
    sim POST /_sim/users "{\"externalUserId\":\"$1\"}" >/dev/null
  fi
}
# sim_bulk PREFIX COUNT V A: PREFIX0 .. PREFIX(COUNT-1) at the simulator.
sim_bulk() {
  sim POST /_sim/users "{\"prefix\":\"$1\",\"count\":$2,\"verificationStatus\":\"$3\",\"attemptStatus\":\"$4\"}" >/dev/null
}
# db_pending PREFIX COUNT [AGE]: PREFIX0 .. in kycd's database, NOT_VERIFIED /
# PENDING, last changed AGE ago (default 1 hour: due at once).
db_pending() {
  sql "INSERT INTO kyc.verifications (external_user_id, source, verification_status, attempt_status, updated_at)
       SELECT '$1' || g, 'webhook', 'NOT_VERIFIED', 'PENDING', now() - interval '${3:-1 hour}'
       FROM generate_series(0, $2 - 1) g"
}
faults() { if [ $# -eq 0 ]; then set -- '{}'; fi; sim POST /_sim/faults "$1" >/dev/null; }
ready_is() { [ "$(get /readyz)" = "$1" ]; }
# paused_is V: kycd_reconciler_paused on the admin listener's /metrics is V.
paused_is() {
  admin_get /metrics >/dev/null
  [ "$(awk '$1 == "kycd_reconciler_paused" {print $2}' "$E2E_RESP_BODY")" = "$1" ]
}
sim_in_flight_is() { [ "$(sim_stat in_flight)" = "$1" ]; }
log_has() { grep -E -q -- "$1" "$E2E_KYCD_LOG"; }
ms_since() { echo $(( $(e2e_ms) - $1 )); }

# ------------------------------------------------------------------------------
e2e_section "setup: simulator, kycd serve with the reconciler on"
e2e_fresh_db
e2e_certs
e2e_start_sim
mapfile -t SIM_ENV < <(e2e_sim_env)
e2e_start_kycd "${SIM_ENV[@]}" "${REC[@]}" KYCD_P100_RATE=$RATE KYCD_P100_CONCURRENCY=$CONC
assert_contains "$(grep 'msg="reconciler started"' "$E2E_KYCD_LOG")" "rate=$RATE concurrency=$CONC" \
  "the reconciler started with rate $RATE, concurrency $CONC"

# ------------------------------------------------------------------------------
e2e_section "1. a missed webhook is recovered"
e2e_kycd_cmd "${SIM_ENV[@]}" KYCD_PENDING_AFTER=1s -- create-kyc --external-user-id c1-miss "${OK_ARGS[@]}"
assert_eq 0 "$E2E_RC" "create-kyc c1-miss exits 0"
sim POST /_sim/users/c1-miss/advance \
  '{"verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL","webhook":"drop"}' >/dev/null
t0=$(e2e_ms)
if e2e_wait_sql "SELECT verification_status || '/' || attempt_status || '/' || source FROM kyc.verifications WHERE external_user_id = 'c1-miss'" \
     VERIFIED/SUCCESSFUL/reconciler 10; then
  pass "the dropped VERIFIED/SUCCESSFUL reached kycd through the reconciler in $(ms_since "$t0") ms"
else
  fail "c1-miss not corrected within 10 s: $E2E_SQL_LAST"
fi
assert_eq 0 "$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id = 'c1-miss'")" \
  "no webhook came for c1-miss"
assert_eq "reconciler|VERIFIED/SUCCESSFUL|t|ok|applied|200" \
  "$(sql "SELECT c.source, c.new_verification_status || '/' || c.new_attempt_status, c.check_id IS NOT NULL, s.outcome, s.result, s.http_status
          FROM kyc.status_changes c JOIN kyc.status_checks s ON s.id = c.check_id
          WHERE c.external_user_id = 'c1-miss' AND c.source = 'reconciler'")" \
  "kyc.status_changes has the reconciler's change with its check_id (ok, applied, 200)"
assert_eq "NOT_VERIFIED/PENDING -> VERIFIED/SUCCESSFUL" \
  "$(sql "SELECT old_verification_status || '/' || old_attempt_status || ' -> ' || new_verification_status || '/' || new_attempt_status
          FROM kyc.reconciler_corrections WHERE external_user_id = 'c1-miss'")" \
  "kyc.reconciler_corrections lists it"
assert_eq "||" "$(sql "SELECT coalesce(needs_check_reason, ''), coalesce(next_check_at::text, ''), coalesce(attention_reason, '') FROM kyc.verifications WHERE external_user_id = 'c1-miss'")" \
  "settled: nothing owed, no next check, no flag"
if log_has 'level=warn msg="reconciler corrected state.* user=c1-miss .*from=NOT_VERIFIED/PENDING to=VERIFIED/SUCCESSFUL'; then
  pass "kycd logs the 'reconciler corrected state' warning with from/to"
else
  fail "no 'reconciler corrected state' warn line for c1-miss: $(grep -m2 'c1-miss' "$E2E_KYCD_LOG" || true)"
fi

# ------------------------------------------------------------------------------
e2e_section "2. webhooks in the wrong order: held, then checked at once"
sim_user c2-order NOT_VERIFIED PENDING
sim POST /_sim/users/c2-order/advance \
  '{"verificationStatus":"NOT_VERIFIED","attemptStatus":"PENDING","webhook":"hold"}' >/dev/null
sim POST /_sim/users/c2-order/advance \
  '{"verificationStatus":"NOT_VERIFIED","attemptStatus":"VERIFICATION","webhook":"hold"}' >/dev/null
assert_eq '{"flushed":2}' "$(sim POST /_sim/flush '{"order":"reverse"}')" \
  "the simulator sends the two held webhooks newest first"
e2e_wait_sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id = 'c2-order'" 2 10 ||
  fail "the two webhooks did not arrive: $E2E_SQL_LAST"
assert_eq "VERIFICATION applied first,PENDING held out_of_order" \
  "$(sql "SELECT string_agg(body->>'attemptStatus' || ' ' || outcome || ' ' || outcome_reason, ',' ORDER BY id) FROM kyc.webhook_events WHERE external_user_id = 'c2-order'")" \
  "VERIFICATION is applied, the late PENDING is held (out_of_order)"
if e2e_wait_sql "SELECT last_checked_at IS NOT NULL AND needs_check_reason IS NULL FROM kyc.verifications WHERE external_user_id = 'c2-order'" t 10; then
  pass "the reconciler checked c2-order and cleared needs_check_reason"
else
  fail "c2-order not checked within 10 s"
fi
held_to_check=$(sql "SELECT round(extract(epoch FROM min(s.checked_at) - max(e.received_at)) * 1000)
  FROM kyc.status_checks s, kyc.webhook_events e
  WHERE s.external_user_id = 'c2-order' AND e.external_user_id = 'c2-order' AND e.outcome = 'held'")
if [ -n "$held_to_check" ] && [ "$held_to_check" -ge 0 ] && [ "$held_to_check" -lt 1000 ]; then
  pass "the check came ${held_to_check} ms after the held webhook (at once, not after pending_after 1 s)"
else
  fail "the check came '${held_to_check}' ms after the held webhook (want < 1000)"
fi
assert_eq "ok unchanged" "$(sql "SELECT outcome || ' ' || result FROM kyc.status_checks WHERE external_user_id = 'c2-order' ORDER BY id LIMIT 1")" \
  "P100 agreed with the stored state: the check changed nothing"
assert_eq "$(sim_state c2-order)" "$(state c2-order | cut -d/ -f1,2)" "kycd's state equals the simulator's"
# Settle c2-order so that it is not checked again during the next cases.
sim POST /_sim/users/c2-order/advance '{"verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL"}' >/dev/null
e2e_wait_sql "SELECT attempt_status FROM kyc.verifications WHERE external_user_id = 'c2-order'" SUCCESSFUL 10 ||
  fail "the final webhook for c2-order was not applied: $E2E_SQL_LAST"

# ------------------------------------------------------------------------------
e2e_section "3. final answers: P412 (user unknown to P100), P445 (no KYC)"
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body c3-ghost NOT_VERIFIED PENDING)")" \
  "a webhook for a user P100 does not know is accepted"
sim_user c3-nokyc
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body c3-nokyc NOT_VERIFIED PENDING)")" \
  "a webhook for a user without KYC at P100 is accepted"
t0=$(e2e_ms)
if e2e_wait_sql "SELECT count(*) FROM kyc.verifications WHERE external_user_id IN ('c3-ghost', 'c3-nokyc') AND attention_reason IS NOT NULL" 2 10; then
  pass "both users flagged $(ms_since "$t0") ms after their webhook (pending_after 1 s)"
else
  fail "not flagged within 10 s: $E2E_SQL_LAST"
fi
assert_eq "final|400|P412|flagged" \
  "$(sql "SELECT outcome || '|' || http_status || '|' || error_code || '|' || result FROM kyc.status_checks WHERE external_user_id = 'c3-ghost'")" \
  "c3-ghost: one check, HTTP 400 P412, final, flagged"
assert_eq "final|404|P445|flagged" \
  "$(sql "SELECT outcome || '|' || http_status || '|' || error_code || '|' || result FROM kyc.status_checks WHERE external_user_id = 'c3-nokyc'")" \
  "c3-nokyc: one check, HTTP 404 P445, final, flagged"
assert_match "$(sql "SELECT attention_reason FROM kyc.needs_attention WHERE external_user_id = 'c3-ghost'")" 'P412' \
  "kyc.needs_attention lists c3-ghost with a reason naming P412"
assert_match "$(sql "SELECT attention_reason FROM kyc.needs_attention WHERE external_user_id = 'c3-nokyc'")" 'P445' \
  "kyc.needs_attention lists c3-nokyc with a reason naming P445"
assert_eq "|" "$(sql "SELECT coalesce(next_check_at::text, '') || '|' || coalesce(lease_owner, '') FROM kyc.verifications WHERE external_user_id = 'c3-ghost'")" \
  "no next check, no lease"
if log_has 'level=warn msg="reconciler check" user=c3-ghost .*result=flagged'; then
  pass "kycd logs the flag at warn"
else
  fail "no warn line with result=flagged for c3-ghost"
fi
sleep 2
assert_eq "1 1" "$(sim_user_calls c3-ghost) $(sim_user_calls c3-nokyc)" \
  "2 s later P100 was still asked only once about each"
assert_eq "1 1" "$(sql "SELECT count(*) FROM kyc.status_checks WHERE external_user_id = 'c3-ghost'") $(sql "SELECT count(*) FROM kyc.status_checks WHERE external_user_id = 'c3-nokyc'")" \
  "and kyc.status_checks has one row each"

# ------------------------------------------------------------------------------
e2e_section "4. P500 / P501: backoff, retries, then convergence"
faults '{"fail_rate":1,"fail_with":"P500","scope":"status"}'
sim_user c4-p5000 VERIFIED SUCCESSFUL
db_pending c4-p500 1
u=c4-p5000
# Watch the schedule after each failure: failures -> planned delay (ms).
declare -A DELAY=()
future=0
end=$(( $(e2e_ms) + 4000 ))
while [ "$(e2e_ms)" -lt "$end" ]; do
  row=$(sql "SELECT failures, round(extract(epoch FROM next_check_at - last_checked_at) * 1000), next_check_at > clock_timestamp()
             FROM kyc.verifications WHERE external_user_id = '$u'")
  IFS='|' read -r f d fut <<<"$row"
  if [ "${f:-0}" -gt 0 ] && [ -n "$d" ] && [ -z "${DELAY[$f]:-}" ]; then DELAY[$f]=$d; fi
  if [ "$fut" = t ] && [ "${f:-0}" -gt 0 ]; then future=$((future + 1)); fi
  sleep 0.1
done
# One snapshot of both (a check may land between two queries).
IFS='|' read -r checks transient fails <<<"$(sql "SELECT (SELECT count(*) FROM kyc.status_checks WHERE external_user_id = '$u'),
  (SELECT count(*) FROM kyc.status_checks WHERE external_user_id = '$u' AND outcome = 'transient' AND http_status = 400 AND error_code = 'P500' AND result = 'retry'),
  failures FROM kyc.verifications WHERE external_user_id = '$u'")"
assert_eq "$checks" "$transient" "all $checks checks of $u in 4 s: transient, HTTP 400, P500, retry"
if [ "$checks" -ge 3 ] && [ "$checks" -le 9 ] && [ "$fails" = "$checks" ]; then
  pass "failures grows with each check: $fails after $checks checks"
else
  fail "after 4 s: $checks checks, failures=$fails (want 3..9 and equal)"
fi
if [ "$future" -gt 0 ]; then pass "next_check_at lies in the future between retries"; else fail "next_check_at never seen in the future"; fi
plan=''
bad=''
for f in $(printf '%s\n' "${!DELAY[@]}" | sort -n); do
  d=$((200 << (f - 1))); [ "$d" -gt 1000 ] && d=1000
  plan="$plan f$f:${DELAY[$f]}ms[$((d / 2))-$d]"
  if [ "${DELAY[$f]}" -lt $((d / 2 - 2)) ] || [ "${DELAY[$f]}" -gt $((d + 2)) ]; then bad="$bad f$f"; fi
done
if [ -z "$bad" ] && [ "${#DELAY[@]}" -ge 3 ]; then
  pass "planned delays double with jitter, capped at backoff_max:$plan"
else
  fail "planned delays off (${bad:-too few seen}):$plan"
fi
gaps=$(sql "SELECT string_agg(g::text, ' ' ORDER BY id) FROM (SELECT id, round(extract(epoch FROM checked_at - lag(checked_at) OVER (ORDER BY id)) * 1000) AS g
            FROM kyc.status_checks WHERE external_user_id = '$u') x WHERE g IS NOT NULL")
read -r -a G <<<"$gaps"
n=${#G[@]}
later=0
for ((i = 2; i < n; i++)); do later=$((later + G[i])); done
# The gaps are the planned delays plus up to one idle poll (300 ms) each.
if [ "$n" -ge 3 ] && [ $(( later / (n - 2) )) -gt "${G[0]}" ]; then
  pass "the gaps between checks grow: $gaps ms (mean from the third on: $(( later / (n - 2) )) ms)"
else
  fail "the gaps between checks do not grow: '$gaps' ms"
fi
faults
t0=$(e2e_ms)
if e2e_wait_sql "SELECT verification_status || '/' || attempt_status || '/' || failures || '/' || coalesce(attention_reason, '-') FROM kyc.verifications WHERE external_user_id = '$u'" \
     "VERIFIED/SUCCESSFUL/0/-" 10; then
  pass "faults cleared: $u converged in $(ms_since "$t0") ms, failures back to 0"
else
  fail "$u did not converge within 10 s: $E2E_SQL_LAST"
fi

faults '{"fail_rate":1,"fail_with":"P501","scope":"status"}'
sim_user c4-p5010 VERIFIED SUCCESSFUL
db_pending c4-p501 1
if e2e_wait_sql "SELECT count(*) >= 2 FROM kyc.status_checks WHERE external_user_id = 'c4-p5010' AND outcome = 'transient' AND http_status = 400 AND error_code = 'P501' AND result = 'retry'" t 10; then
  pass "P501 (HTTP 400) is transient too: retried"
else
  fail "no two P501 retries for c4-p5010: $(sql "SELECT string_agg(outcome || ' ' || coalesce(error_code, '-'), ', ') FROM kyc.status_checks WHERE external_user_id = 'c4-p5010'")"
fi
faults
if e2e_wait_sql "SELECT verification_status || '/' || failures FROM kyc.verifications WHERE external_user_id = 'c4-p5010'" VERIFIED/0 10; then
  pass "after P501 stops, c4-p5010 converges"
else
  fail "c4-p5010 did not converge: $E2E_SQL_LAST"
fi

# ------------------------------------------------------------------------------
e2e_section "5. 429: every worker slows down"
faults '{"fail_rate":1,"fail_with":"429","retry_after":1,"scope":"status"}'
sim_bulk c5- 10 VERIFIED SUCCESSFUL
db_pending c5- 10
e2e_wait_sql "SELECT count(*) > 0 FROM kyc.status_checks WHERE external_user_id LIKE 'c5-%' AND outcome = 'rate_limited'" t 5 ||
  fail "no rate_limited check recorded within 5 s"
c0=$(sim_stat status_calls)
sleep 2
calls=$(( $(sim_stat status_calls) - c0 ))
if [ "$calls" -ge 1 ] && [ "$calls" -le $((CONC * 3)) ]; then
  pass "429 with Retry-After 1: $calls calls in 2 s for 10 due users (at most $CONC per second allowed; the rate would allow $((RATE * 2)))"
else
  fail "429 with Retry-After 1: $calls calls in 2 s (want 1..$((CONC * 3)))"
fi
assert_eq "429|retry|0" \
  "$(sql "SELECT DISTINCT http_status || '|' || result || '|' || (SELECT max(failures) FROM kyc.verifications WHERE external_user_id LIKE 'c5-%') FROM kyc.status_checks WHERE external_user_id LIKE 'c5-%' AND outcome = 'rate_limited'")" \
  "recorded as rate_limited (HTTP 429, retry), not counted as failures"
faults
t0=$(e2e_ms)
if e2e_wait_sql "SELECT count(*) FROM kyc.verifications WHERE external_user_id LIKE 'c5-%' AND verification_status = 'VERIFIED'" 10 10; then
  pass "after the 429s stop, all 10 users converge ($(ms_since "$t0") ms)"
else
  fail "only $E2E_SQL_LAST of 10 converged"
fi

# ------------------------------------------------------------------------------
e2e_section "6. 401: the reconciler pauses and touches no record"
SNAP="SELECT string_agg((to_jsonb(v) - 'lease_owner' - 'lease_until')::text, E'\n' ORDER BY external_user_id) FROM kyc.verifications v WHERE external_user_id LIKE 'c6-%'"
assert_eq 200 "$(get /readyz)" "/readyz is 200 before"
faults '{"unauthorized":true}'
sim_bulk c6- 30 VERIFIED SUCCESSFUL
db_pending c6- 30
snap0=$(sql "$SNAP")
# A P100 problem never fails readiness (webhooks do not need P100): it
# shows in /status and in kycd_reconciler_paused instead.
if e2e_wait_cmd 5 paused_is 1; then
  pass "kycd_reconciler_paused is 1 once P100 refuses the key"
else
  fail "kycd_reconciler_paused did not turn 1 within 5 s"
fi
assert_eq 200 "$(get /readyz)" "/readyz stays 200 while P100 refuses the key"
# due_ge N: kycd_reconciler_due_users on /metrics is at least N.
due_ge() {
  local v
  admin_get /metrics >/dev/null
  v=$(awk '$1 == "kycd_reconciler_due_users" {print $2}' "$E2E_RESP_BODY")
  [ -n "$v" ] && [ "$v" -ge "$1" ]
}
if e2e_wait_cmd 10 due_ge 30; then
  pass "kycd_reconciler_due_users counts the 30 paused users (at least)"
else
  fail "kycd_reconciler_due_users did not reach 30 within 10 s"
fi
assert_eq 200 "$(admin_get /status)" "/status answers"
assert_contains "$(resp_body)" '"paused":true' "/status: the reconciler is paused: $(resp_body)"
assert_contains "$(resp_body)" "API key" "/status says why (the API key)"
assert_contains "$(resp_body)" '"credentials":"refused"' "/status: P100 refuses our credentials"
c0=$(sim_stat status_calls)
k0=$(sql "SELECT count(*) FROM kyc.status_checks WHERE external_user_id LIKE 'c6-%'")
sleep 2
calls=$(( $(sim_stat status_calls) - c0 ))
k1=$(sql "SELECT count(*) FROM kyc.status_checks WHERE external_user_id LIKE 'c6-%'")
snap1=$(sql "$SNAP")
if [ "$snap0" = "$snap1" ]; then
  pass "2 s of 401s: the 30 users' rows are unchanged (state, failures, next_check_at, attention_reason, ...)"
else
  fail "401 changed the users' rows: $(diff <(echo "$snap0") <(echo "$snap1") | head -4)"
fi
max=$(( 2000 / 300 + 1 + CONC ))
if [ "$calls" -le "$max" ]; then
  pass "calls to P100 during the pause: $calls in 2 s (interval 300 ms; 30 users due; at most $max allowed)"
else
  fail "calls to P100 during the pause: $calls in 2 s (want <= $max: one try per interval)"
fi
echo "  kyc.status_checks rows for c6 users during the pause: $((k1 - k0))"
assert_eq "misconfigured|401|released" \
  "$(sql "SELECT DISTINCT outcome || '|' || http_status || '|' || result FROM kyc.status_checks WHERE external_user_id LIKE 'c6-%'")" \
  "recorded as misconfigured (401), nothing applied"
assert_eq 0 "$(sql "SELECT count(*) FROM kyc.verifications WHERE external_user_id LIKE 'c6-%' AND (failures > 0 OR attention_reason IS NOT NULL)")" \
  "no failure counted, nobody flagged"
if log_has 'level=error msg="reconciler paused: P100 says we are misconfigured" http=401'; then
  pass "kycd logs an error: reconciler paused, misconfigured"
else
  fail "no error line 'reconciler paused' in kycd's log"
fi
faults
t0=$(e2e_ms)
if e2e_wait_cmd 5 paused_is 0; then
  pass "key accepted again: kycd_reconciler_paused 0 after $(ms_since "$t0") ms"
else
  fail "kycd_reconciler_paused still not 0 5 s after the 401s stopped"
fi
assert_eq 200 "$(get /readyz)" "/readyz still 200"
if e2e_wait_sql "SELECT count(*) FROM kyc.verifications WHERE external_user_id LIKE 'c6-%' AND verification_status = 'VERIFIED'" 30 10; then
  pass "all 30 users converge ($(ms_since "$t0") ms)"
else
  fail "only $E2E_SQL_LAST of 30 converged"
fi
if log_has 'msg="P100 accepts our credentials again"'; then
  pass "kycd logs that P100 accepts the key again"
else
  fail "no 'accepts our credentials again' line"
fi
sim_c6=$(sim GET '/_sim/stats?users=all' | grep -oE '"c6-[0-9]+":[0-9]+' | awk -F: '{n += $2} END {print n + 0}')
assert_eq "$sim_c6" "$(sql "SELECT count(*) FROM kyc.status_checks WHERE external_user_id LIKE 'c6-%'")" \
  "every call for the c6 users (refused or not) is recorded in kyc.status_checks"

e2e_stop_kycd "kycd serve (cases 1-6)"

# ------------------------------------------------------------------------------
e2e_section "6b. 401 with reconcile --once: reported, and the run ends"
faults '{"unauthorized":true}'
sim_user c6b-once0 VERIFIED SUCCESSFUL
db_pending c6b-once 1
c0=$(sim_stat status_calls)
e2e_kycd_cmd --timeout 6 "${SIM_ENV[@]}" "${REC[@]}" -- reconcile --once
assert_eq 2 "$E2E_RC" "reconcile --once while P100 answers 401 exits 2, a configuration error (exit $E2E_RC after ${E2E_SECS} s, $(( $(sim_stat status_calls) - c0 )) calls to P100; 124 = killed after 6 s)"
assert_contains "$(cat "$E2E_OUT")" "refused (401)" "it reports the refusals"
cp "$E2E_OUT" "$E2E_TMP/once-401.out"
assert_eq "NOT_VERIFIED/PENDING/webhook|0" "$(state c6b-once0)|$(sql "SELECT failures FROM kyc.verifications WHERE external_user_id = 'c6b-once0'")" \
  "and touched no record"
faults

# ------------------------------------------------------------------------------
e2e_section "6c. reconcile --once ends when P100 answers 429 or P501 for good"
# A pass checks each due user at most RECONCILER_PASS_TRIES (3) times: 429
# after Retry-After (1 s here), transient errors after 1 s; then it exits 3
# (some left for later) with the users still scheduled and no claim left.
once_fault() { # NAME FAULTS: 3 due users, P100 failing for good; one --once pass
  e2e_fresh_db
  e2e_migrate
  sim POST /_sim/reset >/dev/null
  sim_bulk "c6c-$1-" 3 VERIFIED SUCCESSFUL
  db_pending "c6c-$1-" 3
  faults "$2"
  c0=$(sim_stat status_calls)
  e2e_kycd_cmd --timeout 20 "${SIM_ENV[@]}" "${REC[@]}" KYCD_P100_RATE=50 KYCD_P100_CONCURRENCY=4 -- reconcile --once
  calls=$(( $(sim_stat status_calls) - c0 ))
  faults
}
once_fault rl '{"fail_rate":1,"fail_with":"429","retry_after":1,"scope":"status"}'
assert_eq 3 "$E2E_RC" "429 with Retry-After 1 for good: reconcile --once exits 3, some left for later (exit $E2E_RC after ${E2E_SECS} s)"
# Every 429 pauses every worker for Retry-After, so the calls go one a
# second; after 5 s of nothing but 429s the pass ends (4.7 s measured; bound 3x).
assert_match "$(awk -v s="$E2E_SECS" 'BEGIN {print (s < 15) ? "ok" : "slow"}')" '^ok$' "and ends within 15 s (took ${E2E_SECS} s)"
assert_match "$calls" '^[3-9]$' "at most 3 calls per user, 9 in all ($calls)"
assert_eq "0" "$(sql "SELECT count(*) FROM (SELECT 1 FROM kyc.status_checks WHERE external_user_id LIKE 'c6c-rl-%' GROUP BY external_user_id HAVING count(*) > 3) s")" \
  "no user asked more than 3 times"
assert_contains "$(cat "$E2E_OUT")" "3 left for a later pass" "it says how many were left"
assert_eq "$calls|0" "$(sql "SELECT count(*) FILTER (WHERE outcome = 'rate_limited') || '|' || count(*) FILTER (WHERE outcome <> 'rate_limited') FROM kyc.status_checks WHERE external_user_id LIKE 'c6c-rl-%'")" \
  "every try is recorded as rate_limited"
assert_eq "0|0" "$(sql "SELECT count(*) FILTER (WHERE lease_owner IS NOT NULL) || '|' || sum(failures) FROM kyc.verifications WHERE external_user_id LIKE 'c6c-rl-%'")" \
  "no claim left, no failure counted"
once_fault p501 '{"fail_rate":1,"fail_with":"P501","scope":"status"}'
assert_eq 3 "$E2E_RC" "P501 for good: reconcile --once exits 3 (exit $E2E_RC after ${E2E_SECS} s)"
# 3 tries, 1 s apart: 2.3 s measured; bound 3x.
assert_match "$(awk -v s="$E2E_SECS" 'BEGIN {print (s < 7.5) ? "ok" : "slow"}')" '^ok$' "and ends within 7.5 s (took ${E2E_SECS} s)"
assert_eq 9 "$calls" "each of the 3 users was asked 3 times, no more"
assert_eq "0|3|9|0" "$(sql "SELECT count(*) FILTER (WHERE lease_owner IS NOT NULL) || '|' || count(*) FILTER (WHERE next_check_at IS NOT NULL) || '|' || sum(failures) || '|' || count(*) FILTER (WHERE attention_reason IS NOT NULL) FROM kyc.verifications WHERE external_user_id LIKE 'c6c-p501-%'")" \
  "no claim left, each scheduled with its 3 failures counted, none flagged (ceiling 10)"
# The same pass with P100 healthy: everything due is checked, exit 0.
e2e_wait_sql "SELECT count(*) FROM kyc.verifications WHERE external_user_id LIKE 'c6c-p501-%' AND next_check_at > now()" 0 3 || true
e2e_kycd_cmd --timeout 20 "${SIM_ENV[@]}" KYCD_PENDING_AFTER=1s KYCD_P100_RATE=50 -- reconcile --once
assert_eq 0 "$E2E_RC" "P100 healthy again: the next pass checks the 3 users left and exits 0 (${E2E_SECS} s)"

# ------------------------------------------------------------------------------
e2e_section "4b. reconcile_max_failures 3: flagged after 3 transient failures"
e2e_start_kycd "${SIM_ENV[@]}" "${REC[@]}" KYCD_P100_RATE=$RATE KYCD_P100_CONCURRENCY=$CONC KYCD_RECONCILE_MAX_FAILURES=3
faults '{"fail_rate":1,"fail_with":"P500","scope":"status"}'
sim_user c4b-max0 VERIFIED SUCCESSFUL
db_pending c4b-max 1
if e2e_wait_sql "SELECT attention_reason FROM kyc.needs_attention WHERE external_user_id = 'c4b-max0'" \
     "3 transient failures in a row, last: Unknown exception" 10; then
  pass "flagged: '3 transient failures in a row, last: Unknown exception'"
else
  fail "c4b-max0 not flagged as expected: '$E2E_SQL_LAST'"
fi
assert_eq "retry retry flagged" "$(sql "SELECT string_agg(result, ' ' ORDER BY id) FROM kyc.status_checks WHERE external_user_id = 'c4b-max0'")" \
  "checks: retry, retry, flagged"
sleep 1.5
assert_eq "3 3" "$(sql "SELECT count(*) FROM kyc.status_checks WHERE external_user_id = 'c4b-max0'") $(sim_user_calls c4b-max0)" \
  "no check after the flag (1.5 s later: 3 rows, 3 calls at the simulator)"
faults
e2e_stop_kycd "kycd serve (max failures 3)"

# ------------------------------------------------------------------------------
e2e_section "7. two reconcile --once at once never check one user twice at once"
e2e_fresh_db
e2e_migrate
sim POST /_sim/reset >/dev/null
sim_bulk c7- 300 NOT_VERIFIED PENDING
db_pending c7- 300
faults '{"latency_ms":50}'
once_run() {
  E2E_OUT=$E2E_TMP/once.$1.out
  e2e_kycd_cmd --timeout 30 "${SIM_ENV[@]}" KYCD_P100_RATE=200 KYCD_P100_CONCURRENCY=16 -- reconcile --once
  echo "$E2E_RC $E2E_SECS" >"$E2E_TMP/once.$1.rc"
}
once_run 1 &
p1=$!
once_run 2 &
p2=$!
wait "$p1" || true
wait "$p2" || true
read -r rc1 secs1 <"$E2E_TMP/once.1.rc"
read -r rc2 secs2 <"$E2E_TMP/once.2.rc"
e2e__sanitizer_check "$E2E_TMP/once.1.out" "reconcile --once (1)"
e2e__sanitizer_check "$E2E_TMP/once.2.out" "reconcile --once (2)"
assert_eq "0 0" "$rc1 $rc2" "both exit 0 (${secs1} s and ${secs2} s)"
echo "  run 1: $(grep -h '^checked' "$E2E_TMP/once.1.out" || tail -n 2 "$E2E_TMP/once.1.out")"
echo "  run 2: $(grep -h '^checked' "$E2E_TMP/once.2.out" || tail -n 2 "$E2E_TMP/once.2.out")"
assert_eq "300 300 0" "$(sql "SELECT count(*), count(DISTINCT external_user_id), count(*) FILTER (WHERE outcome <> 'ok') FROM kyc.status_checks WHERE external_user_id LIKE 'c7-%'" | tr '|' ' ')" \
  "300 checks, one per user, all ok"
assert_eq 1 "$(sim_stat max_concurrent_per_user)" "the simulator never saw two calls for one user at once"
assert_eq 300 "$(sim_stat status_calls)" "the simulator saw exactly 300 status calls"
per=$(sql "SELECT string_agg(n::text, ' + ' ORDER BY n DESC) FROM (SELECT checker, count(*) AS n FROM kyc.status_checks GROUP BY checker) x")
assert_eq 2 "$(sql "SELECT count(DISTINCT checker) FROM kyc.status_checks")" "both processes did checks: $per"
assert_eq 0 "$(sql "SELECT count(*) FROM kyc.verifications WHERE lease_owner IS NOT NULL")" "no lease left"

# ------------------------------------------------------------------------------
e2e_section "8. a clean stop in the middle of a backlog"
sim_bulk c8- 200 VERIFIED SUCCESSFUL
db_pending c8- 200
faults '{"latency_ms":500}'
e2e_start_kycd "${SIM_ENV[@]}" KYCD_RECONCILE=on KYCD_RECONCILE_INTERVAL=300ms KYCD_P100_TIMEOUT=3s \
  KYCD_P100_RATE=20 KYCD_P100_CONCURRENCY=16
sleep 1
inflight=$(sim_stat in_flight)
calls_at_term=$(sim_stat status_calls)
before=$(sql "SELECT count(*) FROM kyc.status_checks WHERE external_user_id LIKE 'c8-%'")
t0=$(e2e_ms)
e2e_stop_kycd "kycd serve (backlog)"
took=$(ms_since "$t0")
echo "  P100 calls started after SIGTERM: $(( $(sim_stat status_calls) - calls_at_term ))"
# About 0.9 s measured (2 s in the ASan build idle, 6.6 s on a busy machine);
# the bound is loose but still tells a stop that waits for the P100
# timeout and the whole backlog (the watchdog would allow 18 s).
if [ "$took" -le 10000 ]; then
  pass "SIGTERM with $inflight calls in flight: kycd stopped in $took ms"
else
  fail "kycd took $took ms to stop (want <= 10000)"
fi
assert_eq 0 "$(sql "SELECT count(*) FROM kyc.verifications WHERE lease_owner IS NOT NULL OR lease_until IS NOT NULL")" \
  "no lease left set"
echo "  checks recorded: $before before SIGTERM, $(sql "SELECT string_agg(result || '=' || n, ' ') FROM (SELECT result, count(*) n FROM kyc.status_checks WHERE external_user_id LIKE 'c8-%' GROUP BY 1 ORDER BY 1) x") in all;" \
  "$(sql "SELECT count(*) FROM kyc.verifications WHERE external_user_id LIKE 'c8-%' AND verification_status = 'VERIFIED'") of 200 users converged"
assert_eq "$(sql "SELECT count(*) FROM kyc.status_checks WHERE external_user_id LIKE 'c8-%'")" "$(sim_stat status_calls | awk '{print $1 - 300}')" \
  "every call kycd made to P100 is recorded"
faults

# ------------------------------------------------------------------------------
e2e_section "8b. a second instance during the stop never calls for a user still in flight"
# kycd A checks one user at a time (rate 1, concurrency 1) with P100 taking
# 4 s; it is stopped while the call for the first user is in flight and
# another claimed user waits in its queue. Once A has given back its claims
# (it does so while the call is still in flight), a `reconcile --once` is
# started: it must not call P100 for the user whose call is still in flight.
e2e_fresh_db
e2e_migrate
sim POST /_sim/reset >/dev/null
sim_bulk c8b- 3 VERIFIED SUCCESSFUL
db_pending c8b- 3
faults '{"latency_ms":4000}'
e2e_start_kycd "${SIM_ENV[@]}" KYCD_RECONCILE=on KYCD_RECONCILE_INTERVAL=300ms KYCD_P100_TIMEOUT=8s \
  KYCD_P100_RATE=1 KYCD_P100_CONCURRENCY=1 KYCD_SHUTDOWN_TIMEOUT=10s
e2e_wait_cmd 5 sim_in_flight_is 1 || fail "kycd A's first call never started"
first=$(sql "SELECT external_user_id FROM kyc.verifications WHERE external_user_id LIKE 'c8b-%' AND lease_owner IS NOT NULL ORDER BY external_user_id LIMIT 1")
kill -TERM "$E2E_KYCD_PID"
# Wait until A has given its claims back (while its call is still in flight).
e2e_wait_sql "SELECT count(*) FROM kyc.verifications WHERE external_user_id LIKE 'c8b-%' AND lease_owner IS NOT NULL" 0 3 || true
inflight=$(sim_stat in_flight)
e2e_kycd_cmd --timeout 15 "${SIM_ENV[@]}" KYCD_P100_RATE=10 KYCD_P100_CONCURRENCY=4 KYCD_P100_TIMEOUT=8s -- reconcile --once
assert_eq 0 "$E2E_RC" "the second instance's reconcile --once exits 0 ($E2E_SECS s)"
e2e_stop_kycd --signaled "kycd A (stopped with a call in flight)"
echo "  calls in flight at the simulator when the second instance started: $inflight;" \
  "checks: $(sql "SELECT string_agg(external_user_id || ':' || result, ' ' ORDER BY id) FROM kyc.status_checks WHERE external_user_id LIKE 'c8b-%'")"
assert_eq 1 "$(sim_stat max_concurrent_per_user)" \
  "P100 never saw two calls at once for one user (first user in flight: $first)"
assert_eq 3 "$(sql "SELECT count(*) FROM kyc.verifications WHERE external_user_id LIKE 'c8b-%' AND verification_status = 'VERIFIED'")" \
  "all three users converged"
faults

# ------------------------------------------------------------------------------
e2e_section "the API key stays secret"
leak=$(grep -l -F -- "$E2E_SIM_KEY" "$E2E_TMP"/kycd.*.log "$E2E_TMP"/once.*.out "$E2E_OUT" "$E2E_SIM_LOG" 2>/dev/null || true)
assert_eq "" "$leak" "the API key is in no kycd log or output"
