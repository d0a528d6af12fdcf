#!/usr/bin/env bash
# End-to-end: answers that say nothing about the user. With the real kycd,
# p100-sim and PostgreSQL:
#   (a) a wrong p100_status_path: p100-sim answers 404 without P100's error
#       body for every user. The reconciler pauses as for a 401 (one log
#       line, kycd_reconciler_paused 1, /status says why, /readyz stays 200)
#       and flags nobody; the calls are recorded with outcome unusable;
#   (b) a user flagged for a person (a final P445) is brought back under
#       the reconciler by a new webhook: the flag is cleared, and a repeat of
#       an old body does not clear it.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NV=$(p100_word verificationStatus NOT_VERIFIED)
PENDING=$(p100_word attemptStatus PENDING)
metric() { admin_get /metrics >/dev/null; awk -v m="$1" '$1 == m {print $2}' "$E2E_RESP_BODY"; }

e2e_section "(a) a wrong p100_status_path: 404 without P100's body for every user"
e2e_fresh_db
e2e_certs
E2E_NEXT_PORT=$(e2e_free_port)
e2e_start_sim
mapfile -t SIM_ENV < <(e2e_sim_env)
e2e_migrate
for i in 1 2 3 4 5; do
  sim POST /_sim/users "{\"externalUserId\":\"un-$i\",\"verificationStatus\":\"$NV\",\"attemptStatus\":\"$PENDING\"}" >/dev/null
done
sql "INSERT INTO kyc.verifications (external_user_id, source, verification_status, attempt_status, updated_at)
     SELECT 'un-' || g, 'webhook', '$NV', '$PENDING', now() - interval '1 hour' FROM generate_series(1, 5) g" >/dev/null
e2e_start_kycd --no-migrate "${SIM_ENV[@]}" KYCD_RECONCILE=on KYCD_PENDING_AFTER=1s \
  KYCD_RECONCILE_INTERVAL=500ms "KYCD_P100_STATUS_PATH=/v1/no-such-path/{externalUserId}"
if e2e_wait_cmd 15 grep -q "reconciler paused: P100's answers say nothing about the users" "$E2E_KYCD_LOG"; then
  pass "the reconciler paused with one log line naming the cause"
else
  fail "no pause line: $(grep -m3 'reconciler' "$E2E_KYCD_LOG" || true)"
fi
# One line per probe (once an interval), never one per user.
lines=$(grep -c "reconciler paused: P100's answers say nothing" "$E2E_KYCD_LOG")
probes=$(sql "SELECT count(*) FROM kyc.status_checks")
assert_eq 1 "$([ "$lines" -le "$probes" ] && [ "$probes" -lt 5 ] && echo 1 || echo 0)" \
  "one line per probe, not one per user ($lines lines, $probes calls, 5 users due)"
assert_contains "$(grep -m1 "reconciler paused: P100's answers" "$E2E_KYCD_LOG")" "http=404" "... with the status"
assert_eq 1 "$(metric kycd_reconciler_paused)" "kycd_reconciler_paused 1 (KycdReconcilerPaused fires)"
admin_get /status >/dev/null
assert_contains "$(resp_body)" "say nothing about the users" "/status says why"
assert_eq 200 "$(get /readyz)" "/readyz stays 200: webhooks do not need P100"
assert_eq 0 "$(sql "SELECT count(*) FROM kyc.verifications WHERE attention_reason IS NOT NULL")" \
  "no user is flagged for the request's fault"
assert_eq "unusable|404" "$(sql "SELECT string_agg(DISTINCT outcome || '|' || http_status, ',') FROM kyc.status_checks")" \
  "the calls are recorded with outcome unusable"

e2e_stop_kycd

e2e_section "(b) a flagged user comes back with a new webhook"
sim POST /_sim/answers '{"errorCode":"P445","scope":"status","count":-1,"externalUserId":"un-1"}' >/dev/null
e2e_start_kycd --no-migrate "${SIM_ENV[@]}" KYCD_RECONCILE=on KYCD_PENDING_AFTER=1s KYCD_RECONCILE_INTERVAL=500ms
if e2e_wait_sql "SELECT attention_reason IS NOT NULL FROM kyc.verifications WHERE external_user_id = 'un-1'" t 15; then
  pass "un-1 is flagged after P100's final P445"
else
  fail "un-1 not flagged: $E2E_SQL_LAST"
fi
VERIF=$(p100_word attemptStatus VERIFICATION)
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body un-1 "$NV" "$VERIF")")" "a new webhook for un-1: 200"
assert_eq "-|0" "$(sql "SELECT coalesce(attention_reason, '-') || '|' || failures FROM kyc.verifications WHERE external_user_id = 'un-1'")" \
  "the flag is cleared: the user is the reconciler's again"
sql "UPDATE kyc.verifications SET attention_reason = 'test: flagged again' WHERE external_user_id = 'un-1'" >/dev/null
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body un-1 "$NV" "$VERIF")")" "the same webhook again (a repeat): 200"
assert_eq "test: flagged again" "$(sql "SELECT attention_reason FROM kyc.verifications WHERE external_user_id = 'un-1'")" \
  "a repeat is no new word: the flag stays"
e2e_stop_kycd
