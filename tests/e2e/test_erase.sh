#!/usr/bin/env bash
# End-to-end: an erasure request (docs/erasure.md), with the real kycd,
# p100-sim and PostgreSQL, on a database owned by one role, served by
# another (README "Two roles"), read by an analyst:
#   (a) a user seeded through real deliveries: KYC webhooks (one a repeat),
#       a POA webhook, a quarantined body, the reconciler's check with P100,
#       a `kycd replay --user` run and an on-call action: the id is found,
#       by a generic scan of every column of every table of schema kyc, in
#       each table that stores it;
#   (b) `kycd erase USER --reason` as the owner: exit 0; afterwards the scan
#       finds the id nowhere; the history keeps its rows and statuses, now
#       under the pseudonym (HMAC-SHA-256 of the id under erase_key, as
#       computed here with openssl); kyc.erasures records who, when, why,
#       the pseudonym and the counts; the record is append-only;
#   (c) the serving role, the analyst and the owner by hand cannot rewrite:
#       no execute on kyc.erase_user, no insert into kyc.erasures, and the
#       append-only triggers refuse an UPDATE even when the role holds the
#       UPDATE privilege, and the owner's own UPDATE outside kyc.erase_user,
#       also after it wrote an erasure record by hand, if it changes more
#       than the id;
#   (d) erasing again: "already erased", exit 0, nothing recorded; an unknown
#       user: exit 3; no --reason or a short key: exit 2;
#   (e) a later webhook for the same id makes a new user under the real id;
#       erasing again moves it to the same pseudonym (one current row);
#   (f) a user erased while 40 of its webhooks arrive: every delivery is
#       answered 200 and stored (under the pseudonym or, after the erasure,
#       under the id), the erasure exits 0.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NV=$(p100_word verificationStatus NOT_VERIFIED)
PENDING=$(p100_word attemptStatus PENDING)
IN_VERIFICATION=$(p100_word attemptStatus VERIFICATION)
WAITING=$(p100_word poaVerificationStatus.status WAITING)
APPROVED=$(p100_word poaVerificationStatus.status APPROVED)
KEY_FILE=$E2E_TMP/erase.key
openssl rand -hex 32 >"$KEY_FILE"
chmod 600 "$KEY_FILE"
pseudonym() { printf 'kycd-erase-v1:%s' "$1" | openssl dgst -sha256 -hmac "$(cat "$KEY_FILE")" -r | cut -c1-32 | sed 's/^/erased-/'; }
erase() { e2e_kycd_cmd KYCD_ERASE_KEY_FILE="$KEY_FILE" -- erase "$@"; }

# holders ID: "table.column" for every column of every table of schema kyc
# (a partitioned one read through its parent: every partition) whose value
# holds ID anywhere (any column as text; bytea as bytes), one a line, sorted.
holders() {
  # The columns first (MATERIALIZED: the scan must never run on a relation
  # of another schema, whatever order the planner picks).
  sql "WITH cols AS MATERIALIZED (
         SELECT c.relname, a.attname, a.atttypid = 'bytea'::regtype AS bytes
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE n.nspname = 'kyc' AND c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition)
       SELECT relname || '.' || attname FROM cols
       WHERE (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM kyc.%I WHERE %s', relname,
               CASE WHEN bytes THEN format('position(convert_to(%L, ''UTF8'') IN %I) > 0', '$1', attname)
                    ELSE format('strpos(%I::text, %L) > 0', attname, '$1') END), false, true, '')))[1]::text::int > 0
       ORDER BY 1"
}
# history ID: the user's history as kinds, outcomes and statuses, in order.
history() {
  sql "SELECT (SELECT string_agg(kind || ':' || outcome, ',' ORDER BY id) FROM kyc.webhook_events WHERE external_user_id = '$1')
         || ' / ' || (SELECT string_agg(coalesce(new_verification_status, '') || ':' || coalesce(new_attempt_status, '') || ':' || source, ',' ORDER BY id)
                      FROM kyc.status_changes WHERE external_user_id = '$1')
         || ' / ' || (SELECT count(*) FROM kyc.status_checks WHERE external_user_id = '$1')
         || ' / ' || (SELECT count(*) FROM kyc.quarantine WHERE external_user_id = '$1')"
}

e2e_section "setup: an owner, a serving role, an analyst; p100-sim; kycd with the reconciler"
e2e_two_roles erase
ANALYST=kycd_erase_analyst_$$
e2e_track_role "$ANALYST"
as_super "CREATE ROLE \"$ANALYST\" LOGIN IN ROLE kyc_analyst" >/dev/null
# shellcheck disable=SC2034  # read as ${!url_var} in (c)
ANALYST_URL=$(with_user "$SUPER_URL" "$ANALYST")
e2e_certs
E2E_NEXT_PORT=$(e2e_free_port)
e2e_start_sim
mapfile -t SIM_ENV < <(e2e_sim_env)
e2e_migrate
# The serving role's grants, as README.md ("Two roles") gives them.
sql "GRANT USAGE ON SCHEMA kyc TO \"$SERVICE\";
     GRANT SELECT, INSERT ON kyc.webhook_events, kyc.status_changes, kyc.status_checks, kyc.quarantine TO \"$SERVICE\";
     GRANT SELECT, INSERT, UPDATE ON kyc.verifications, kyc.poa_statuses TO \"$SERVICE\";
     GRANT SELECT ON kyc.schema_migrations TO \"$SERVICE\";
     GRANT EXECUTE ON FUNCTION kyc.ensure_partitions(integer) TO \"$SERVICE\"" >/dev/null
e2e_start_kycd --no-migrate "${SIM_ENV[@]}" KYCD_RECONCILE=on KYCD_RECONCILE_INTERVAL=300ms

e2e_section "(a) a user seeded through real deliveries, a check, a replay and an on-call action"
u=$(e2e_uuid)
since=$(sql "SELECT now()")
sim POST /_sim/users "{\"externalUserId\":\"$u\",\"verificationStatus\":\"$NV\",\"attemptStatus\":\"$IN_VERIFICATION\"}" >/dev/null
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "$u" "$NV" "$PENDING")")" "KYC webhook: 200"
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "$u" "$NV" "$PENDING")")" "the same again (a repeat): 200"
assert_eq 200 "$(post "$E2E_POA_PATH" "$(status_body "$u" "$WAITING")")" "POA webhook: 200"
assert_eq 200 "$(post "$E2E_KYC_PATH" "{\"externalUserId\":\"$u\",\"verificationStatus\":\"$NV\",\"attemptStatus\":7}")" \
  "a body of the wrong shape: 200 (quarantined; the user marked for a check)"
if e2e_wait_sql "SELECT count(*) > 0 FROM kyc.status_checks WHERE external_user_id = '$u' AND outcome = 'ok'" t 20; then
  pass "the reconciler checked the user with P100"
else
  fail "no check: $E2E_SQL_LAST"
fi
e2e_kycd_cmd -- replay --since "$since" --user "$u" --dry-run
assert_eq 0 "$E2E_RC" "kycd replay --user --dry-run: exit 0 (a run recorded with the user)"
sql "INSERT INTO kyc.attention_actions (os_user, action, reason, users, flags)
     VALUES ('on-call', 'retry', 'seeded', ARRAY['$u', 'someone-else'], ARRAY['x', 'y'])" >/dev/null
before=$(history "$u")
assert_match "$before" "^kyc_verification_status:applied,kyc_verification_status:unchanged,poa_verification_status:applied(,.*)? / .*:webhook.*:reconciler / [1-9][0-9]* / 1$" \
  "the history: KYC applied, its repeat, POA; changes by webhook and reconciler; checks; one quarantined"
rows_before=$(sql "SELECT (SELECT count(*) FROM kyc.webhook_events) || '|' || (SELECT count(*) FROM kyc.status_changes)
                   || '|' || (SELECT count(*) FROM kyc.status_checks) || '|' || (SELECT count(*) FROM kyc.quarantine)")
expected="attention_actions.users
periods.external_user_id
poa_statuses.external_user_id
quarantine.body
quarantine.external_user_id
replay_runs.external_user_id
status_changes.external_user_id
status_checks.body
status_checks.external_user_id
verifications.external_user_id
webhook_events.body
webhook_events.external_user_id"
assert_eq "$expected" "$(holders "$u")" "the scan finds the id in every table that stores it"

e2e_section "(b) kycd erase as the owner"
p=$(pseudonym "$u")
erase "$u" --reason "DSR-2026-001"
assert_eq 0 "$E2E_RC" "kycd erase: exit 0"
assert_contains "$(cat "$E2E_OUT")" "erased: the user's rows now carry $p" "says so, with the pseudonym openssl computes (HMAC-SHA-256 under erase_key)"
assert_not_contains "$(cat "$E2E_OUT")" "$u" "never prints the id"
assert_not_contains "$(cat "$E2E_KYCD_LOG")" "$(cat "$KEY_FILE")" "the key is in no log"
assert_eq "" "$(holders "$u")" "the scan finds the id nowhere in schema kyc"
assert_eq "$before" "$(history "$p")" "the history keeps its rows, outcomes and statuses, under the pseudonym"
assert_eq "$rows_before" \
  "$(sql "SELECT (SELECT count(*) FROM kyc.webhook_events) || '|' || (SELECT count(*) FROM kyc.status_changes)
          || '|' || (SELECT count(*) FROM kyc.status_checks) || '|' || (SELECT count(*) FROM kyc.quarantine)")" \
  "no history row added or removed"
assert_eq "1|$p|$NV|$WAITING" \
  "$(sql "SELECT count(*), min(v.external_user_id), min(v.verification_status), min(p.status)
          FROM kyc.verifications v JOIN kyc.poa_statuses p USING (external_user_id) WHERE v.external_user_id = '$p'")" \
  "the current state and POA status are the pseudonym's"
assert_eq "infinity" "$(sql "SELECT next_check_at FROM kyc.verifications WHERE external_user_id = '$p'")" \
  "the reconciler will never ask P100 about the pseudonym"
assert_eq "none" "$(sql "SELECT coalesce(recheck_at::text, 'none') FROM kyc.verifications WHERE external_user_id = '$p'")" \
  "nor re-check it: no stamp in the re-check index"
assert_eq "none" "$(sql "SELECT coalesce(attention_reason, needs_check_reason, 'none') FROM kyc.verifications WHERE external_user_id = '$p'")" \
  "nor list it for on-call"
assert_eq "t" "$(sql "SELECT bool_and(body_sha256 = sha256(convert_to(body::text, 'UTF8')) AND body ->> 'externalUserId' = '$p')
                     FROM kyc.webhook_events WHERE external_user_id = '$p'")" \
  "raw bodies name the pseudonym; body_sha256 is the hash of the stored body"
assert_eq "$OWNER|$(id -un)|DSR-2026-001|$p|true" \
  "$(sql "SELECT run_by || '|' || os_user || '|' || reason || '|' || pseudonym || '|' || ((rewritten ->> 'webhook_events')::int >= 3)
          FROM kyc.erasures")" \
  "kyc.erasures: who, why, the pseudonym, the counts"
try "$OWNER_URL" "UPDATE kyc.erasures SET reason = 'x'"
assert_contains "$TRY_OUT" "append-only" "kyc.erasures is append-only"

e2e_section "(c) no one else can rewrite, nor bypass the triggers"
for who in SERVICE ANALYST; do
  url_var=${who}_URL
  try "${!url_var}" "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT * FROM kyc.erase_user('$p', '$(pseudonym x)', 'r', NULL, NULL)"
  assert_contains "$TRY_OUT" "42501" "$who: kyc.erase_user refused (42501)"
  try "${!url_var}" "INSERT INTO kyc.erasures (pseudonym, reason, rewritten) VALUES ('$(pseudonym x)', 'r', '{}')"
  assert_contains "$TRY_OUT" "42501" "$who: INSERT into kyc.erasures refused (42501)"
  try "${!url_var}" "UPDATE kyc.webhook_events SET external_user_id = 'x' WHERE external_user_id = '$p'"
  assert_contains "$TRY_OUT" "42501" "$who: UPDATE kyc.webhook_events refused (42501)"
done
sql "GRANT UPDATE, DELETE ON kyc.status_changes, kyc.webhook_events TO \"$SERVICE\"" >/dev/null
try "$SERVICE_URL" "UPDATE kyc.status_changes SET external_user_id = '$(pseudonym x)' WHERE external_user_id = '$p'"
assert_contains "$TRY_OUT" "append-only" "the serving role, even granted UPDATE: the trigger refuses"
try "$SERVICE_URL" "SET kyc.erasing = 'on'; DELETE FROM kyc.webhook_events WHERE external_user_id = '$p'"
assert_contains "$TRY_OUT" "append-only" "... and DELETE, whatever settings it sets"
sql "REVOKE UPDATE, DELETE ON kyc.status_changes, kyc.webhook_events FROM \"$SERVICE\"" >/dev/null
try "$OWNER_URL" "UPDATE kyc.status_changes SET external_user_id = '$(pseudonym x)' WHERE external_user_id = '$p'"
assert_contains "$TRY_OUT" "append-only" "the owner's own UPDATE outside kyc.erase_user: refused"
try "$OWNER_URL" "BEGIN; INSERT INTO kyc.erasures (pseudonym, reason, rewritten) VALUES ('$(pseudonym x)', 'r', '{}');
                  UPDATE kyc.status_changes SET external_user_id = '$(pseudonym x)', new_verification_status = NULL
                  WHERE external_user_id = '$p'; COMMIT"
assert_contains "$TRY_OUT" "append-only" "... also after writing an erasure record by hand, when it changes more than the id"
assert_eq "$before" "$(history "$p")" "the history is unchanged"

e2e_section "(d) twice, unknown, bad usage"
erase "$u" --reason "DSR-2026-001 again"
assert_eq 0 "$E2E_RC" "erasing again: exit 0"
assert_contains "$(cat "$E2E_OUT")" "already erased" "says it was erased before"
assert_eq 1 "$(sql "SELECT count(*) FROM kyc.erasures")" "nothing recorded"
erase "never-seen-$u" --reason "DSR-2026-002"
assert_eq 3 "$E2E_RC" "an unknown user: exit 3"
assert_contains "$(cat "$E2E_OUT")" "unknown user" "says so"
erase "$u"
assert_eq 2 "$E2E_RC" "no --reason: exit 2"
e2e_kycd_cmd KYCD_ERASE_KEY=too-short -- erase "$u" --reason r
assert_eq 2 "$E2E_RC" "a key shorter than 32 characters: exit 2"
e2e_kycd_cmd -- erase "$u" --reason r
assert_eq 2 "$E2E_RC" "no key: exit 2"
e2e_kycd_cmd -- erase "$u" --reason r --erase-key 0123456789abcdef0123456789abcdef
assert_eq 2 "$E2E_RC" "the key on the command line: refused (exit 2)"

e2e_section "(e) a later webhook for the same id, then erasing again"
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "$u" "$NV" "$IN_VERIFICATION")")" "a later KYC webhook for the id: 200"
assert_eq 200 "$(post "$E2E_POA_PATH" "$(status_body "$u" "$APPROVED")")" "and a POA webhook: 200"
assert_eq "1|$IN_VERIFICATION|1" \
  "$(sql "SELECT count(*), min(attempt_status), (SELECT count(*) FROM kyc.status_changes WHERE external_user_id = '$u')
          FROM kyc.verifications WHERE external_user_id = '$u'")" \
  "stored under the real id: a new user to kycd, with its own first change"
erase "$u" --reason "DSR-2026-001, the id came back"
assert_eq 0 "$E2E_RC" "erasing it again: exit 0"
assert_eq "" "$(holders "$u")" "the id is nowhere again"
assert_eq "1|$IN_VERIFICATION|$APPROVED|2" \
  "$(sql "SELECT count(*), min(v.attempt_status), min(p.status), (SELECT count(*) FROM kyc.erasures WHERE pseudonym = '$p')
          FROM kyc.verifications v JOIN kyc.poa_statuses p USING (external_user_id) WHERE v.external_user_id = '$p'")" \
  "one current row under the same pseudonym, with the newer state; two erasures recorded"

e2e_section "(f) erased while its webhooks arrive"
u2=$(e2e_uuid)
p2=$(pseudonym "$u2")
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "$u2" "$NV" "$PENDING")")" "a second user: 200"
codes=$E2E_TMP/codes
: >"$codes"
(for i in $(seq 1 40); do
   if [ $((i % 2)) = 0 ]; then post "$E2E_POA_PATH" "$(status_body "$u2" "$WAITING")"; else post "$E2E_KYC_PATH" "$(kyc_body "$u2" "$NV" "$IN_VERIFICATION")"; fi
   echo
 done >"$codes") &
loader=$!
e2e_track_pid "$loader"
e2e_wait_cmd 20 bash -c "[ \$(wc -l <'$codes') -ge 5 ]" || fail "the deliveries did not start"
erase "$u2" --reason "DSR-2026-003"
assert_eq 0 "$E2E_RC" "erased while deliveries arrive: exit 0 ($(head -c 300 "$E2E_OUT"))"
wait "$loader"
assert_eq "40" "$(grep -c '^200$' "$codes")" "all 40 deliveries answered 200 ($(sort "$codes" | uniq -c | tr -s ' \n' ' '))"
assert_eq 41 "$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id IN ('$u2', '$p2')")" \
  "all 41 stored, under the pseudonym or (after the erasure) the id"
assert_eq "t" "$(sql "SELECT (SELECT count(*) FROM kyc.webhook_events WHERE external_user_id = '$p2') > 0")" \
  "the erasure took the ones stored before it"
assert_eq "" "$(sql "SELECT string_agg(DISTINCT c.external_user_id, ',') FROM kyc.status_changes c
                    LEFT JOIN kyc.verifications v USING (external_user_id)
                    WHERE c.external_user_id IN ('$u2', '$p2') AND v.external_user_id IS NULL")" \
  "every change under either name has its current row"
e2e_stop_kycd
e2e_stop_sim
