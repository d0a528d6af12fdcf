#!/usr/bin/env bash
# End-to-end: on-call and the users flagged for a person. With the real
# kycd, p100-sim and PostgreSQL: P100 answers a final P445 for two users
# once; the reconciler flags them (kycd_reconciler_flagged_users 2);
# `kycd attention list` shows them and why; `attention retry USER --reason`
# gives one back (checked with P100 at once, now answered: not flagged
# again), `attention retry --all` the other; each action is recorded in
# kyc.attention_actions (who, when, why, which users, what for), which is
# append-only; bad usage is exit 2.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NV=$(p100_word verificationStatus NOT_VERIFIED)
PENDING=$(p100_word attemptStatus PENDING)
metric() { admin_get /metrics >/dev/null; awk -v m="$1" '$1 == m {print $2}' "$E2E_RESP_BODY"; }
flagged() { sql "SELECT count(*) FROM kyc.verifications WHERE attention_reason IS NOT NULL"; }

e2e_section "setup: two users P100 answers P445 for, once"
e2e_fresh_db
e2e_certs
E2E_NEXT_PORT=$(e2e_free_port)
e2e_start_sim
mapfile -t SIM_ENV < <(e2e_sim_env)
e2e_migrate
for u in at-1 at-2; do
  sim POST /_sim/users "{\"externalUserId\":\"$u\",\"verificationStatus\":\"$NV\",\"attemptStatus\":\"$PENDING\"}" >/dev/null
done
# The first two status calls (the two due users) get P445; later ones are answered.
sim POST /_sim/answers '{"errorCode":"P445","scope":"status","count":2}' >/dev/null
sql "INSERT INTO kyc.verifications (external_user_id, source, verification_status, attempt_status, updated_at)
     SELECT u, 'webhook', '$NV', '$PENDING', now() - interval '1 hour' FROM unnest(ARRAY['at-1', 'at-2']) u" >/dev/null
e2e_start_kycd --no-migrate "${SIM_ENV[@]}" KYCD_RECONCILE=on KYCD_PENDING_AFTER=1h KYCD_RECONCILE_INTERVAL=300ms
if e2e_wait_sql "SELECT count(*) FROM kyc.verifications WHERE attention_reason LIKE 'P100 P445%'" 2 15; then
  pass "both users flagged after P100's final P445"
else
  fail "flagged: $E2E_SQL_LAST"
fi
if e2e_wait_cmd 15 bash -c "curl -s http://127.0.0.1:$E2E_ADMIN_PORT/metrics | grep -qx 'kycd_reconciler_flagged_users 2'"; then
  pass "kycd_reconciler_flagged_users 2 (KycdUsersFlagged fires after 15 min)"
else
  fail "kycd_reconciler_flagged_users is $(metric kycd_reconciler_flagged_users)"
fi

e2e_section "kycd attention list"
e2e_kycd_cmd -- attention list
assert_eq 0 "$E2E_RC" "attention list: exit 0"
assert_contains "$(cat "$E2E_OUT")" "users flagged for a person: 2" "says how many"
assert_contains "$(grep 'user=at-1 ' "$E2E_OUT")" "reason=P100 P445" "names each user and what for"

e2e_section "kycd attention retry USER --reason"
e2e_kycd_cmd -- attention retry at-1 --reason "P100 created the KYC since (ticket 42)"
assert_eq 0 "$E2E_RC" "attention retry at-1: exit 0"
assert_contains "$(cat "$E2E_OUT")" "gave 1 user back to the reconciler" "says so"
if e2e_wait_sql "SELECT count(*) FROM kyc.status_checks WHERE external_user_id = 'at-1' AND outcome = 'ok'" 1 15; then
  pass "at-1 checked with P100 at once, answered ok"
else
  fail "at-1 not checked again: $E2E_SQL_LAST"
fi
assert_eq "-|0" "$(sql "SELECT coalesce(attention_reason, '-') || '|' || failures FROM kyc.verifications WHERE external_user_id = 'at-1'")" \
  "at-1 is the reconciler's again, not flagged"
assert_eq 1 "$(flagged)" "at-2 is still flagged"

e2e_section "kycd attention retry --all, and the record"
e2e_kycd_cmd -- attention retry --all --reason "after the P100 incident"
assert_eq 0 "$E2E_RC" "attention retry --all: exit 0"
assert_eq 0 "$(flagged)" "no user flagged"
assert_eq "retry|P100 created the KYC since (ticket 42)|{at-1}|true|retry|after the P100 incident|{at-2}" \
  "$(sql "SELECT string_agg(action || '|' || reason || '|' || users::text || CASE WHEN id = (SELECT min(id) FROM kyc.attention_actions)
                                     THEN '|' || (flags[1] LIKE 'P100 P445%')::text ELSE '' END, '|' ORDER BY id)
          FROM kyc.attention_actions")" \
  "kyc.attention_actions: each action, why, which users and what for"
assert_eq "$(id -un)|t" "$(sql "SELECT string_agg(DISTINCT os_user, ','), bool_and(run_by IS NOT NULL AND host IS NOT NULL) FROM kyc.attention_actions" | tr -d ' ')" \
  "... and who (OS user, database role, host)"
try "$E2E_DB_URL" "UPDATE kyc.attention_actions SET reason = 'x'"
assert_contains "$TRY_OUT" "append-only" "the record is append-only"
e2e_kycd_cmd -- attention retry at-2
assert_contains "$(cat "$E2E_OUT")" "at-2 is not flagged" "retrying a user not flagged changes nothing (and says so)"
if e2e_wait_cmd 15 bash -c "curl -s http://127.0.0.1:$E2E_ADMIN_PORT/metrics | grep -qx 'kycd_reconciler_flagged_users 0'"; then
  pass "kycd_reconciler_flagged_users back to 0"
else
  fail "kycd_reconciler_flagged_users is $(metric kycd_reconciler_flagged_users)"
fi

e2e_section "bad usage"
for args in "attention" "attention retry" "attention retry at-1 --all" "attention list --all" "attention nope"; do
  # shellcheck disable=SC2086
  e2e_kycd_cmd -- $args
  assert_eq 2 "$E2E_RC" "kycd $args: exit 2"
done
e2e_stop_kycd
