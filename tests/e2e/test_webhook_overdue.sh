#!/usr/bin/env bash
# End-to-end: webhooks that never come (issue 22 §4). The real kycd serve
# (reconciler on, webhook_overdue 8 s), the P100 simulator (p100-sim) and a
# real PostgreSQL database:
#   1. a verification created with `kycd create-kyc`, and a user pending
#      after a real VERIFICATION webhook, whose result webhooks the
#      simulator never sends, are counted in kycd_webhooks_overdue_users on
#      the admin listener's /metrics once webhook_overdue has passed; a user
#      whose result webhook arrives is not (the gauge is exactly 2);
#   2. the reconciler then corrects them from Get KYC Status and
#      kycd_reconciler_corrections_total{cause="webhook_overdue"} rises to
#      2, with the warn line "the result webhook never came"; the gauge
#      falls back to 0;
#   3. a dropped webhook the reconciler corrects before webhook_overdue is
#      an ordinary correction (cause="pending"), not an overdue one;
#   4. the count is the same rule as kycd's SQL (kyc.webhook_awaited_since):
#      requested_at is set by create-kyc.
# Must never: wait without a bound, leave a process running.
#
# Environment: TEST_KYCD_BIN, TEST_P100_SIM, TEST_PG, TEST_KYCD_SRC (lib.sh).

# shellcheck disable=SC2119  # lib.sh functions with optional arguments, called without
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OVERDUE_S=8
REC=(KYCD_RECONCILE=on KYCD_PENDING_AFTER=1s KYCD_RECONCILE_INTERVAL=300ms
     "KYCD_WEBHOOK_OVERDUE=${OVERDUE_S}s" KYCD_P100_TIMEOUT=3s)
OK_ARGS=(--document-type PASSPORT --country PL --income-source SALARY
         --open-account-reason DAILY_USE --occupation IT)
NV=$(p100_word verificationStatus NOT_VERIFIED)
VERIFIED=$(p100_word verificationStatus VERIFIED)
PENDING=$(p100_word attemptStatus PENDING)
VERIFICATION=$(p100_word attemptStatus VERIFICATION)
SUCCESSFUL=$(p100_word attemptStatus SUCCESSFUL)
REJECTED=$(p100_word attemptStatus REJECTED_BY_PROVIDER)

# metric SERIES: its value in a fresh scrape of the admin listener ("" when absent).
metric() {
  admin_get /metrics >/dev/null
  awk -v k="$1" '$1 == k {print $2}' "$E2E_RESP_BODY"
}
metric_is() { [ "$(metric "$1")" = "$2" ]; }
OVERDUE_GAUGE=kycd_webhooks_overdue_users
C_OVERDUE='kycd_reconciler_corrections_total{cause="webhook_overdue"}'
C_PENDING='kycd_reconciler_corrections_total{cause="pending"}'
state() {
  sql "SELECT verification_status || '/' || attempt_status || '/' || source
       FROM kyc.verifications WHERE external_user_id = '$1'"
}
# advance USER V A MODE: the simulator's user moves on; MODE send or drop.
advance() {
  sim POST "/_sim/users/$1/advance" \
    "{\"verificationStatus\":\"$2\",\"attemptStatus\":\"$3\",\"webhook\":\"$4\"}" >/dev/null
}
create() {
  e2e_kycd_cmd "${SIM_ENV[@]}" KYCD_PENDING_AFTER=1s -- create-kyc --external-user-id "$1" "${OK_ARGS[@]}"
  assert_eq 0 "$E2E_RC" "create-kyc $1 exits 0"
}

# ------------------------------------------------------------------------------
e2e_section "setup: simulator, kycd serve (reconciler on, webhook_overdue ${OVERDUE_S} s)"
e2e_fresh_db
e2e_certs
e2e_start_sim
mapfile -t SIM_ENV < <(e2e_sim_env)
e2e_start_kycd "${SIM_ENV[@]}" "${REC[@]}"
assert_contains "$(grep 'msg="reconciler started"' "$E2E_KYCD_LOG")" "webhook_overdue_ms=$((OVERDUE_S * 1000))" \
  "the reconciler started with webhook_overdue ${OVERDUE_S} s"
if e2e_wait_cmd 15 metric_is "$OVERDUE_GAUGE" 0; then
  pass "$OVERDUE_GAUGE is 0 before any user"
else
  fail "$OVERDUE_GAUGE not 0 within 15 s: '$(metric "$OVERDUE_GAUGE")'"
fi
assert_eq "0|0" "$(metric "$C_OVERDUE")|$(metric "$C_PENDING")" \
  "the corrections counter is exported at 0 for cause webhook_overdue and pending from the start"

# ------------------------------------------------------------------------------
e2e_section "1. results that never come are counted; one that arrives is not"
t0=$(e2e_ms)
create ov-created                       # its result webhook will be dropped
create ov-answered                      # its result webhook arrives
advance ov-answered "$VERIFIED" "$SUCCESSFUL" send
# A user pending after a real webhook (VERIFICATION), then silence.
sim POST /_sim/users "{\"externalUserId\":\"ov-pending\",\"verificationStatus\":\"$NV\",\"attemptStatus\":\"$PENDING\"}" >/dev/null
advance ov-pending "$NV" "$VERIFICATION" send
if e2e_wait_sql "SELECT string_agg(external_user_id || '=' || verification_status || '/' || attempt_status || '/' || source, ' ' ORDER BY external_user_id)
                 FROM kyc.verifications WHERE external_user_id IN ('ov-answered', 'ov-pending')" \
     "ov-answered=$VERIFIED/$SUCCESSFUL/webhook ov-pending=$NV/$VERIFICATION/webhook" 10; then
  pass "the delivered webhooks arrived: ov-answered settled, ov-pending in $VERIFICATION"
else
  fail "webhooks not stored within 10 s: $E2E_SQL_LAST"
fi
assert_eq "t|t" "$(sql "SELECT requested_at IS NOT NULL, last_webhook_at IS NULL FROM kyc.verifications WHERE external_user_id = 'ov-created'")" \
  "create-kyc recorded requested_at; no webhook for ov-created"
# Within webhook_overdue of their start (minus the scrape): nobody yet.
waited=$(( $(e2e_ms) - t0 ))
if [ "$waited" -lt $(( (OVERDUE_S - 2) * 1000 )) ]; then
  assert_eq 0 "$(metric "$OVERDUE_GAUGE")" "before webhook_overdue has passed ($waited ms), nobody is overdue"
else
  fail "the setup of section 1 took $waited ms, too close to webhook_overdue to check that nobody is overdue yet"
fi
# The gauge is counted every 5 s at most: overdue (8 s) + 5 s + slack.
if e2e_wait_cmd 30 metric_is "$OVERDUE_GAUGE" 2; then
  pass "$OVERDUE_GAUGE is 2 (ov-created, ov-pending) $(( $(e2e_ms) - t0 )) ms after they began waiting"
else
  fail "$OVERDUE_GAUGE not 2 within 30 s: '$(metric "$OVERDUE_GAUGE")'"
fi
assert_eq "ov-created ov-pending" \
  "$(sql "SELECT string_agg(external_user_id, ' ' ORDER BY external_user_id) FROM kyc.verifications
          WHERE kyc.is_pending(attempt_status) AND attention_reason IS NULL
            AND kyc.webhook_awaited_since(last_webhook_at, requested_at, first_seen_at) <= now() - interval '${OVERDUE_S} s'")" \
  "the same users by kyc.webhook_awaited_since: not ov-answered, whose webhook came"
assert_eq 0 "$(metric "$C_OVERDUE")" "no overdue correction yet: P100 still says they are pending"
assert_eq "$NV/$PENDING/api" "$(state ov-created)" "ov-created is still pending, as P100 says (checked, unchanged)"

# ------------------------------------------------------------------------------
e2e_section "2. the reconciler learns the results the webhooks never brought"
advance ov-created "$VERIFIED" "$SUCCESSFUL" drop
advance ov-pending "$NV" "$REJECTED" drop
t1=$(e2e_ms)
if e2e_wait_sql "SELECT string_agg(external_user_id || '=' || verification_status || '/' || attempt_status || '/' || source, ' ' ORDER BY external_user_id)
                 FROM kyc.verifications WHERE external_user_id IN ('ov-created', 'ov-pending')" \
     "ov-created=$VERIFIED/$SUCCESSFUL/reconciler ov-pending=$NV/$REJECTED/reconciler" 15; then
  pass "both corrected from Get KYC Status in $(( $(e2e_ms) - t1 )) ms"
else
  fail "not corrected within 15 s: $E2E_SQL_LAST"
fi
if e2e_wait_cmd 10 metric_is "$C_OVERDUE" 2; then
  pass "$C_OVERDUE is 2"
else
  fail "$C_OVERDUE not 2 within 10 s: '$(metric "$C_OVERDUE")'"
fi
assert_eq 2 "$(grep -c 'level=warn msg="reconciler corrected state (the result webhook never came)".* user=ov-\(created\|pending\) ' "$E2E_KYCD_LOG" || true)" \
  "one warn line 'the result webhook never came' per overdue user"
if e2e_wait_cmd 15 metric_is "$OVERDUE_GAUGE" 0; then
  pass "$OVERDUE_GAUGE falls back to 0 once they are settled"
else
  fail "$OVERDUE_GAUGE not 0 within 15 s: '$(metric "$OVERDUE_GAUGE")'"
fi
assert_eq 0 "$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id = 'ov-created'")" \
  "no webhook ever came for ov-created"

# ------------------------------------------------------------------------------
e2e_section "3. a dropped webhook corrected before webhook_overdue is an ordinary correction"
create ov-early
advance ov-early "$VERIFIED" "$SUCCESSFUL" drop
if e2e_wait_sql "SELECT verification_status || '/' || attempt_status || '/' || source FROM kyc.verifications WHERE external_user_id = 'ov-early'" \
     "$VERIFIED/$SUCCESSFUL/reconciler" 10; then
  pass "ov-early corrected by the reconciler"
else
  fail "ov-early not corrected within 10 s: $E2E_SQL_LAST"
fi
early=$(sql "SELECT c.changed_at - v.requested_at < interval '${OVERDUE_S} s' FROM kyc.status_changes c
             JOIN kyc.verifications v USING (external_user_id)
             WHERE c.external_user_id = 'ov-early' AND c.source = 'reconciler'")
if [ "$early" = t ]; then
  if e2e_wait_cmd 10 metric_is "$C_PENDING" 1; then
    pass "$C_PENDING is 1"
  else
    fail "$C_PENDING not 1 within 10 s: '$(metric "$C_PENDING")'"
  fi
  assert_eq 2 "$(metric "$C_OVERDUE")" "the overdue counter did not move"
else
  # A machine so slow the check came after webhook_overdue: then it was overdue.
  fail "the reconciler took longer than webhook_overdue (${OVERDUE_S} s) to correct ov-early: cannot tell the causes apart"
fi

e2e_stop_kycd
assert_contains "$(grep 'msg="reconciler stopped"' "$E2E_KYCD_LOG")" "overdue_applied=2" \
  "the stop summary counts the overdue corrections"
