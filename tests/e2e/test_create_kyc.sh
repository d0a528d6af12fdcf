#!/usr/bin/env bash
# End-to-end: `kycd create-kyc`, `kycd status [--live]` and a small
# `kycd reconcile --once`, against the real kycd, the P100 simulator
# (p100-sim) and a real PostgreSQL database. Loopback only, every wait
# bounded, every process started here stopped at exit (lib.sh).
#
# Must never: print the API key; leave a process running.
#
# Environment: TEST_KYCD_BIN, TEST_P100_SIM, TEST_PG, TEST_KYCD_SRC (lib.sh).

# shellcheck disable=SC2119  # lib.sh functions with optional arguments, called without
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Everything kycd printed in this script, to look for the API key at the end.
ALL_OUT=$E2E_TMP/all-output
: >"$ALL_OUT"
keep_out() { cat "$E2E_OUT" >>"$ALL_OUT"; }

# create ARGS...: kycd create-kyc with the simulator's settings.
create() {
  e2e_kycd_cmd "${SIM_ENV[@]}" KYCD_PENDING_AFTER=1s -- create-kyc "$@"
  keep_out
}
OK_ARGS=(--document-type PASSPORT --country PL --income-source SALARY
         --open-account-reason INVESTMENTS_OR_CRYPTOCURRENCIES --occupation IT)

sim_num() { json_num "$1" "$(sim GET /_sim/stats)"; }

# ------------------------------------------------------------------------------
e2e_section "setup"
e2e_fresh_db
e2e_certs
e2e_migrate
e2e_start_sim --no-webhooks
mapfile -t SIM_ENV < <(e2e_sim_env)
SIM_BASE=https://localhost:$E2E_SIM_PORT

# ------------------------------------------------------------------------------
e2e_section "create-kyc: a new verification"
create --external-user-id ck-alice "${OK_ARGS[@]}"
out=$(cat "$E2E_OUT")
assert_eq 0 "$E2E_RC" "create-kyc exits 0 (${E2E_SECS} s)"
vid=$(grep -oE '^verificationId [0-9a-f-]{36}$' "$E2E_OUT" | cut -d' ' -f2 || true)
assert_match "$vid" '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' \
  "create-kyc prints the verificationId"
assert_contains "$out" "$SIM_BASE/v1/kyc/verification/ck-alice/$vid" \
  "create-kyc prints the redirect URL on the simulator's base URL"
sim_user=$(sim GET /_sim/users/ck-alice)
assert_eq "$vid" "$(json_str verificationId "$sim_user")" "the simulator knows the same verificationId"
code=$(curl -sS --max-time 10 --cacert "$E2E_CA" -o /dev/null -w '%{http_code}' \
  "$SIM_BASE/v1/kyc/verification/ck-alice/$vid" || echo 000)
assert_eq 200 "$code" "the redirect URL opens the verification page"
assert_eq "api|$vid|NOT_VERIFIED|PENDING" \
  "$(sql "SELECT source, verification_id, verification_status, attempt_status FROM kyc.verifications WHERE external_user_id = 'ck-alice'")" \
  "recorded: source api, verificationId, NOT_VERIFIED/PENDING"
assert_eq "t|f" "$(sql "SELECT pending, needs_check FROM kyc.current_status WHERE external_user_id = 'ck-alice'")" \
  "kyc.current_status shows the user pending"
assert_eq "api|api|-/-|NOT_VERIFIED/PENDING" \
  "$(sql "SELECT source, reason, coalesce(old_verification_status, '-') || '/' || coalesce(old_attempt_status, '-'), new_verification_status || '/' || new_attempt_status FROM kyc.status_changes WHERE external_user_id = 'ck-alice'")" \
  "one status change, source api"
# Measured from the recorded change, not from now: on a busy machine the
# queries above may take longer than pending_after (1 s) itself.
assert_eq t "$(sql "SELECT v.next_check_at >= c.changed_at + interval '0.9 s' AND v.next_check_at < c.changed_at + interval '5 s' FROM kyc.verifications v JOIN kyc.status_changes c USING (external_user_id) WHERE external_user_id = 'ck-alice'")" \
  "the first check is scheduled after pending_after"

# ------------------------------------------------------------------------------
e2e_section "create-kyc: already pending (202 P212)"
create --external-user-id ck-alice "${OK_ARGS[@]}"
assert_eq 0 "$E2E_RC" "a second create for the same user exits 0"
assert_contains "$(cat "$E2E_OUT")" "202 P212" "it says P100 answered 202 P212"
assert_contains "$(cat "$E2E_OUT")" "already pending" "it says a verification is already pending"
assert_eq "api_pending|t|$vid" \
  "$(sql "SELECT needs_check_reason, next_check_at <= now(), verification_id FROM kyc.verifications WHERE external_user_id = 'ck-alice'")" \
  "the user is marked for an immediate check (api_pending), verificationId kept"
assert_eq 1 "$(sql "SELECT count(*) FROM kyc.status_changes WHERE external_user_id = 'ck-alice'")" \
  "no second status change"

# ------------------------------------------------------------------------------
e2e_section "create-kyc: validation (no call to P100)"
creates_before=$(sim_num create_calls)
create --external-user-id ck-bob --document-type SELFIE --country PL --income-source SALARY \
  --open-account-reason DAILY_USE --occupation IT
assert_eq 2 "$E2E_RC" "bad documentType: exit 2"
assert_contains "$(cat "$E2E_OUT")" "documentType" "the message names documentType"
create --external-user-id ck-bob --document-type PASSPORT --country PL --income-source SALARY \
  --open-account-reason DAILY_USE
assert_eq 2 "$E2E_RC" "SALARY without --occupation: exit 2"
assert_contains "$(cat "$E2E_OUT")" "occupation" "the message names occupation"
create --external-user-id ck-bob --document-type PASSPORT --country pl --income-source SALARY \
  --open-account-reason DAILY_USE --occupation IT
assert_eq 2 "$E2E_RC" "lower-case country: exit 2"
assert_contains "$(cat "$E2E_OUT")" "country" "the message names country"
create --document-type PASSPORT --country PL --income-source SALARY \
  --open-account-reason DAILY_USE --occupation IT
assert_eq 2 "$E2E_RC" "no --external-user-id: exit 2"
assert_contains "$(cat "$E2E_OUT")" "externalUserId" "the message names externalUserId"
assert_eq "$creates_before" "$(sim_num create_calls)" "no create call reached the simulator"
assert_eq 0 "$(sql "SELECT count(*) FROM kyc.verifications WHERE external_user_id = 'ck-bob'")" \
  "nothing recorded for a refused request"

# ------------------------------------------------------------------------------
e2e_section "create-kyc: wrong API key"
WRONG_KEY_FILE=$E2E_TMP/wrong-key
WRONG_KEY=$(openssl rand -hex 20)
( umask 077; printf '%s\n' "$WRONG_KEY" >"$WRONG_KEY_FILE" )
e2e_kycd_cmd "${SIM_ENV[@]}" "KYCD_P100_API_KEY_FILE=$WRONG_KEY_FILE" -- \
  create-kyc --external-user-id ck-carol "${OK_ARGS[@]}"
keep_out
assert_ne 0 "$E2E_RC" "a wrong API key: non-zero exit (got $E2E_RC)"
assert_contains "$(cat "$E2E_OUT")" "401" "the message gives P100's 401"
assert_contains "$(cat "$E2E_OUT")" "API_KEY" "the message points at the API key setting"
assert_not_contains "$(cat "$E2E_OUT")" "$WRONG_KEY" "the wrong key is not printed"
assert_eq 0 "$(sql "SELECT count(*) FROM kyc.verifications WHERE external_user_id = 'ck-carol'")" \
  "no row written"
# (the simulator counts calls per user id: a refused call leaves exists:false)
assert_not_contains "$(sim GET /_sim/users/ck-carol 2>/dev/null || true)" '"exists":true' \
  "and the simulator created no user"

e2e_kycd_cmd KYCD_P100_CA_FILE="$E2E_CA" \
  "KYCD_P100_BASE_URL=$SIM_BASE" -- create-kyc --external-user-id ck-carol "${OK_ARGS[@]}"
keep_out
assert_eq 2 "$E2E_RC" "no API key at all: exit 2"
assert_contains "$(cat "$E2E_OUT")" "KYCD_P100_API_KEY" "the message names KYCD_P100_API_KEY"

# ------------------------------------------------------------------------------
e2e_section "reconcile --once, status, status --live"
sim POST /_sim/users/ck-alice/advance '{"verificationStatus":"NOT_VERIFIED","attemptStatus":"VERIFICATION","webhook":"drop"}' >/dev/null
e2e_kycd_cmd "${SIM_ENV[@]}" -- reconcile --once
keep_out
assert_eq 0 "$E2E_RC" "reconcile --once exits 0 (${E2E_SECS} s)"
assert_contains "$(cat "$E2E_OUT")" "checked 1 users: 1 corrected" "it checked the one due user and corrected it"
assert_eq "NOT_VERIFIED|VERIFICATION|reconciler|" \
  "$(sql "SELECT verification_status, attempt_status, source, coalesce(needs_check_reason, '') FROM kyc.verifications WHERE external_user_id = 'ck-alice'")" \
  "the user now has P100's state (source reconciler), nothing owed"

e2e_kycd_cmd "${SIM_ENV[@]}" -- status ck-alice
keep_out
out=$(cat "$E2E_OUT")
assert_eq 0 "$E2E_RC" "status USER exits 0"
assert_match "$out" 'attempt_status +VERIFICATION' "status prints the state"
assert_contains "$out" "$vid" "status prints the verificationId"
assert_match "$out" 'changes \(2\)' "status lists the two changes"
assert_match "$out" 'source=reconciler +reason=' "status shows the reconciler's change"
assert_match "$out" 'checks with P100 \(latest 20\) \(1\)' "status lists the check"
assert_match "$out" 'http_status=200 .*outcome=ok +result=applied' "status shows the check's answer"

sim POST /_sim/users/ck-alice/advance '{"verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL","webhook":"drop"}' >/dev/null
e2e_kycd_cmd "${SIM_ENV[@]}" -- status ck-alice --live
keep_out
out=$(cat "$E2E_OUT")
assert_eq 0 "$E2E_RC" "status USER --live exits 0"
assert_match "$out" 'attempt_status +VERIFICATION' "status --live still prints the stored state"
assert_match "$out" 'P100 now says \([0-9]+ ms\): verificationStatus=VERIFIED attemptStatus=SUCCESSFUL' \
  "status --live prints P100's current state"
assert_eq VERIFICATION "$(sql "SELECT attempt_status FROM kyc.verifications WHERE external_user_id = 'ck-alice'")" \
  "status --live changes nothing stored"

e2e_kycd_cmd "${SIM_ENV[@]}" -- status nobody-here
keep_out
assert_eq 3 "$E2E_RC" "status of an unknown user exits 3"
assert_contains "$(cat "$E2E_OUT")" "not known" "and says the user is not known"

e2e_kycd_cmd "${SIM_ENV[@]}" -- status
assert_eq 2 "$E2E_RC" "status without a user: exit 2 (usage)"

# ------------------------------------------------------------------------------
e2e_section "the API key stays secret"
e2e_kycd_cmd --without KYCD_RECONCILE "KYCD_P100_API_KEY=$E2E_SIM_KEY" -- config
keep_out
assert_match "$(cat "$E2E_OUT")" 'p100_api_key = \(redacted\)' "kycd config redacts the API key"
e2e_kycd_cmd "${SIM_ENV[@]}" -- create-kyc --external-user-id ck-dave "${OK_ARGS[@]}" --p100-api-key "$E2E_SIM_KEY"
keep_out
assert_eq 2 "$E2E_RC" "the API key on the command line is refused (exit 2)"
assert_not_contains "$(cat "$ALL_OUT")" "$E2E_SIM_KEY" "the API key appears in no output of kycd"
assert_not_contains "$(cat "$E2E_SIM_LOG")" "$E2E_SIM_KEY" "nor in the simulator's log"
