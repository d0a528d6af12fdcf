#!/usr/bin/env bash
# End-to-end test of kycd's guesses about Get KYC Status, which P100 does not
# document (docs/p100-api.md, "Where P100's documentation is silent"): the
# path parameter and the fields of the 200 body. The simulator answers in
# each plausible shape (/_sim/answers status_body: as it always did, without
# externalUserId, with extra unknown fields of every JSON type, with the
# fields in another order, without verificationId); for each, the real kycd
# reconciler must store P100's state from the answer alone (the webhook is
# dropped), keep the raw body, and flag nothing. Then an answer with an
# undocumented value must be flagged, not applied.
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
OK_ARGS=(--document-type "$(p100_word documentType PASSPORT)" --country PL
         --income-source "$(p100_word incomeSource SALARY)"
         --open-account-reason "$(p100_word openAccountReason DAILY_USE)" --occupation "$(p100_word occupation IT)")
NV=$(p100_word verificationStatus NOT_VERIFIED)
REJ=$(p100_word attemptStatus REJECTED_BY_PROVIDER)

# state_sql USER: the query of "verification/attempt/reason/source/flag" as
# kycd stores it; state USER: its answer.
state_sql() {
  printf '%s' "SELECT coalesce(verification_status, '-') || '/' || coalesce(attempt_status, '-') || '/' ||
              coalesce(rejection_reason, '-') || '/' || source || '/' || coalesce(attention_reason, '-')
       FROM kyc.verifications WHERE external_user_id = '$1'"
}
state() { sql "$(state_sql "$1")"; }

# ------------------------------------------------------------------------------
e2e_section "setup: simulator, kycd serve with the reconciler on"
e2e_fresh_db
e2e_certs
e2e_start_sim
mapfile -t SIM_ENV < <(e2e_sim_env)
e2e_start_kycd "${SIM_ENV[@]}" "${REC[@]}"

# ------------------------------------------------------------------------------
for shape in default no_external_user_id extra_fields reordered no_verification_id; do
  e2e_section "status body shape: $shape"
  u=shape-${shape//_/-}
  sim POST /_sim/answers "{\"status_body\":\"$shape\"}" >/dev/null
  e2e_kycd_cmd "${SIM_ENV[@]}" KYCD_PENDING_AFTER=1s -- create-kyc --external-user-id "$u" "${OK_ARGS[@]}"
  assert_eq 0 "$E2E_RC" "$shape: create-kyc $u exits 0"
  sim POST "/_sim/users/$u/advance" \
    "{\"verificationStatus\":\"$NV\",\"attemptStatus\":\"$REJ\",\"rejectionReason\":\"NO_FACE_FOUND\",\"webhook\":\"drop\"}" >/dev/null
  if e2e_wait_sql "$(state_sql "$u")" \
       "$NV/$REJ/NO_FACE_FOUND/reconciler/-" 15; then
    pass "$shape: kycd holds P100's state from the answer alone (dropped webhook)"
  else
    fail "$shape: kycd did not reach $NV/$REJ/NO_FACE_FOUND/reconciler/- within 15 s: $E2E_SQL_LAST"
  fi
  body=$(sql "SELECT body FROM kyc.status_checks WHERE external_user_id = '$u' AND http_status = 200 ORDER BY id DESC LIMIT 1")
  case $shape in
    no_external_user_id) assert_not_contains "$body" externalUserId "$shape: the kept body has no externalUserId" ;;
    extra_fields) assert_contains "$body" '"meta"' "$shape: the kept body has the unknown fields" ;;
    reordered) assert_match "$body" '^\{"verificationId"' "$shape: the kept body starts with verificationId" ;;
    no_verification_id) assert_not_contains "$body" verificationId "$shape: the kept body has no verificationId" ;;
    *) assert_contains "$body" "\"externalUserId\":\"$u\"" "$shape: the kept body names the user" ;;
  esac
  assert_eq 0 "$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id = '$u'")" \
    "$shape: no webhook came"
done

# ------------------------------------------------------------------------------
e2e_section "an answer with an undocumented value is flagged, not applied"
sim POST /_sim/answers '{"status_body":"extra_fields"}' >/dev/null
u="shape-undocumented"
e2e_kycd_cmd "${SIM_ENV[@]}" KYCD_PENDING_AFTER=1s -- create-kyc --external-user-id "$u" "${OK_ARGS[@]}"
assert_eq 0 "$E2E_RC" "create-kyc $u exits 0"
sim POST "/_sim/users/$u/advance" \
  "{\"verificationStatus\":\"$NV\",\"attemptStatus\":\"ESCALATED\",\"webhook\":\"drop\",\"undocumented\":true}" >/dev/null
if e2e_wait_sql "SELECT attention_reason IS NOT NULL FROM kyc.verifications WHERE external_user_id = '$u'" t 15; then
  pass "an undocumented attemptStatus in the answer flags the user"
else
  fail "the user was not flagged within 15 s: $(state "$u")"
fi
assert_match "$(state "$u")" "^$NV/$(p100_word attemptStatus PENDING)/-/api/.*attemptStatus" \
  "the stored state is kept (what create-kyc recorded) and the flag names the field"
