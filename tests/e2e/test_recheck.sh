#!/usr/bin/env bash
# End-to-end: the re-check of rejected users, in P100's own words. The case
# that stayed wrong for good while the re-check matched an attempt status
# P100 never sends (REJECTED instead of REJECTED_BY_PROVIDER): a user
# rejected by the provider starts a new attempt, and every webhook of it is
# lost. With the real kycd, p100-sim and PostgreSQL:
#   (a) the rejection arrives by webhook: stored as P100 sent it;
#   (b) the new attempt's webhooks (PENDING, VERIFICATION, VERIFIED /
#       SUCCESSFUL) are all dropped; within recheck_rejected_after plus the
#       reconciler's interval, a re-check (purpose recheck_rejected) finds
#       VERIFIED / SUCCESSFUL and applies it with reason recheck;
#   (c) a rejected user whose rejection stands is re-checked too, and stays
#       as it is (result unchanged);
#   (d) a verified user is not re-checked as a rejected one.
# Every status here comes from `kycd vocabulary` (p100_word).
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NV=$(p100_word verificationStatus NOT_VERIFIED)
VER=$(p100_word verificationStatus VERIFIED)
PENDING=$(p100_word attemptStatus PENDING)
IN_VERIFICATION=$(p100_word attemptStatus VERIFICATION)
REJECTED=$(p100_word attemptStatus REJECTED_BY_PROVIDER)
SUCCESSFUL=$(p100_word attemptStatus SUCCESSFUL)
AFTER_S=4
INTERVAL_MS=300

advance() { # advance USER V A WEBHOOK [REASON]
  local reason=
  if [ -n "${5:-}" ]; then reason=",\"rejectionReason\":\"$5\""; fi
  sim POST "/_sim/users/$1/advance" "{\"verificationStatus\":\"$2\",\"attemptStatus\":\"$3\",\"webhook\":\"$4\"$reason}" >/dev/null
}
stored() { # USER: verification/attempt/reason as kycd holds it
  sql "SELECT coalesce(verification_status, '-') || '/' || coalesce(attempt_status, '-') || '/' || coalesce(rejection_reason, '-')
       FROM kyc.verifications WHERE external_user_id = '$1'"
}

e2e_section "setup"
e2e_fresh_db
e2e_certs
E2E_NEXT_PORT=$(e2e_free_port)
e2e_start_sim
mapfile -t SIM_ENV < <(e2e_sim_env)
e2e_start_kycd "${SIM_ENV[@]}" KYCD_RECONCILE=on KYCD_PENDING_AFTER=1h \
  "KYCD_RECONCILE_INTERVAL=${INTERVAL_MS}ms" "KYCD_RECHECK_REJECTED_AFTER=${AFTER_S}s" \
  KYCD_RECHECK_REJECTED_FOR=1h KYCD_RECHECK_VERIFIED_EVERY=0 KYCD_P100_RATE=50

e2e_section "(a) rejected by the provider, by webhook"
for u in rv-lost rr-stands; do
  sim POST /_sim/users "{\"externalUserId\":\"$u\"}" >/dev/null
  advance "$u" "$NV" "$PENDING" send
  advance "$u" "$NV" "$IN_VERIFICATION" send
  advance "$u" "$NV" "$REJECTED" send NO_FACE_FOUND
done
sim POST /_sim/users '{"externalUserId":"vv-verified"}' >/dev/null
advance vv-verified "$NV" "$PENDING" send
advance vv-verified "$VER" "$SUCCESSFUL" send
for u in rv-lost rr-stands; do
  if e2e_wait_sql "SELECT verification_status || '/' || attempt_status FROM kyc.verifications WHERE external_user_id = '$u'" \
       "$NV/$REJECTED" 10; then
    pass "$u: kycd holds $NV/$REJECTED, as P100 sent it"
  else
    fail "$u: not rejected within 10 s: $E2E_SQL_LAST"
  fi
  if [ "$u" = rv-lost ]; then
    # (b) at once, well inside recheck_rejected_after: a new attempt whose
    # every webhook is lost (P100 is at VERIFIED/SUCCESSFUL in a few ms).
    events=$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id = 'rv-lost'")
    t0=$(e2e_ms)
    advance rv-lost "$NV" "$PENDING" drop
    advance rv-lost "$NV" "$IN_VERIFICATION" drop
    advance rv-lost "$VER" "$SUCCESSFUL" drop
  fi
done

e2e_section "(b) a new attempt whose every webhook is lost"
assert_eq "$events" "$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id = 'rv-lost'")" \
  "no webhook of the new attempt reached kycd"
bound=$(( AFTER_S + 10 ))
if e2e_wait_sql "SELECT verification_status || '/' || attempt_status FROM kyc.verifications WHERE external_user_id = 'rv-lost'" \
     "$VER/$SUCCESSFUL" "$bound"; then
  pass "rv-lost: the re-check found $VER/$SUCCESSFUL in $(( $(e2e_ms) - t0 )) ms (recheck_rejected_after ${AFTER_S} s, bound ${bound} s)"
else
  fail "rv-lost: still $E2E_SQL_LAST after $bound s: the re-check of rejected users did not find the new attempt"
fi
assert_eq "recheck|recheck_rejected|$NV/$REJECTED -> $VER/$SUCCESSFUL" \
  "$(sql "SELECT reason || '|' || purpose || '|' || old_verification_status || '/' || old_attempt_status || ' -> '
                 || new_verification_status || '/' || new_attempt_status
          FROM kyc.reconciler_corrections WHERE external_user_id = 'rv-lost'")" \
  "the correction is a re-check of a rejected user (reason recheck, purpose recheck_rejected)"
assert_eq "-" "$(sql "SELECT coalesce(rejection_reason, '-') FROM kyc.verifications WHERE external_user_id = 'rv-lost'")" \
  "the old rejection reason went with the rejection"

e2e_section "(c) a rejection that stands is re-checked and kept"
if e2e_wait_sql "SELECT count(*) > 0 FROM kyc.status_checks WHERE external_user_id = 'rr-stands' AND purpose = 'recheck_rejected'" \
     t "$bound"; then
  pass "rr-stands was re-checked (purpose recheck_rejected)"
else
  fail "rr-stands was never re-checked within $bound s"
fi
assert_eq "unchanged" "$(sql "SELECT string_agg(DISTINCT result, ',') FROM kyc.status_checks WHERE external_user_id = 'rr-stands'")" \
  "P100 agrees: result unchanged"
assert_eq "$NV/$REJECTED/NO_FACE_FOUND" "$(stored rr-stands)" "rr-stands stays rejected, with its reason"

e2e_section "(d) a verified user is no rejected user"
assert_eq 0 "$(sql "SELECT count(*) FROM kyc.status_checks WHERE external_user_id = 'vv-verified' AND purpose = 'recheck_rejected'")" \
  "vv-verified is never re-checked as rejected"
e2e_stop_kycd "kycd serve"
