#!/usr/bin/env bash
# kycd-test: once
# End-to-end: P100's words, once (src/core/vocab.c).
#   (a) `kycd vocabulary` prints core's tables; docs/p100-api.md, core and
#       SQL's kyc.p100_values() hold the same values for every field, in
#       the same order (tests/tools/p100_vocab.py check); the check fails
#       on a copy of the docs with one value changed (it can fail);
#   (b) no C file but src/core/vocab.c spells one of P100's values;
#   (c) the database refuses a value P100 does not document in
#       kyc.verifications, and migration 009 refuses to convert a database
#       that already holds one (nothing changed, the hint names the rows);
#   (d) C and SQL agree on kycd's own sets of codes: every CHECK constraint
#       on kind, source, outcome, result and purpose lists core's names.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VOCAB=$TEST_KYCD_SRC/tests/tools/p100_vocab.py
DOCS=$TEST_KYCD_SRC/docs/p100-api.md

e2e_section "(a) docs, core and SQL"
e2e_kycd_cmd --bare -- vocabulary
assert_eq 0 "$E2E_RC" "kycd vocabulary exits 0 without any configuration"
assert_contains "$(cat "$E2E_OUT")" $'attemptStatus\tp100\tREJECTED_BY_PROVIDER' \
  "it prints P100's attemptStatus REJECTED_BY_PROVIDER"
assert_eq 0 "$(grep -c $'^attemptStatus\tp100\tREJECTED$' "$E2E_OUT" || true)" \
  "and no attemptStatus REJECTED (a POA value)"
e2e_kycd_cmd --bare -- vocabulary --bogus
assert_eq 2 "$E2E_RC" "kycd vocabulary --bogus: exit 2"
e2e_fresh_db
e2e_migrate
if out=$(python3 "$VOCAB" check "$DOCS" "$TEST_KYCD_BIN" "$E2E_DB_URL" 2>&1); then
  pass "docs/p100-api.md = core = kyc.p100_values(): $(tail -1 <<<"$out")"
else
  fail "docs, core and SQL differ: $(grep -v '^ok' <<<"$out")"
fi
assert_eq 6 "$(grep -c 'sql=' <<<"$out")" "SQL holds the six fields it uses (statuses and error codes)"
sed 's/`REJECTED_BY_PROVIDER` (see/`REJECTED` (see/' "$DOCS" >"$E2E_TMP/p100-api.md"
if out=$(python3 "$VOCAB" check "$E2E_TMP/p100-api.md" "$TEST_KYCD_BIN" 2>&1); then
  fail "the check passes docs whose attemptStatus says REJECTED"
else
  assert_contains "$out" "DIFF attemptStatus" "the check fails on docs whose attemptStatus says REJECTED"
fi

e2e_section "(b) no P100 value spelled outside core's table"
mapfile -t p100_values < <(python3 "$VOCAB" check "$DOCS" "$TEST_KYCD_BIN" >/dev/null &&
  "$TEST_KYCD_BIN" vocabulary --p100 | cut -f3 | sort -u)
assert_ne 0 "${#p100_values[@]}" "core knows ${#p100_values[@]} of P100's values"
found=
while IFS= read -r f; do
  [ "$f" = src/core/vocab.c ] && continue
  for v in "${p100_values[@]}"; do
    if grep -nE "[\"']$v[\"']" "$TEST_KYCD_SRC/$f" >/dev/null; then
      found+="$f:$v "
    fi
  done
done < <(cd "$TEST_KYCD_SRC" && git ls-files 'src/*.c' 'src/*.h' 2>/dev/null || (cd "$TEST_KYCD_SRC" && find src -name '*.[ch]'))
assert_eq "" "$found" "no C file but src/core/vocab.c has a P100 value as a literal"

e2e_section "(c) the database keeps to P100's values"
try "$E2E_DB_URL" "INSERT INTO kyc.verifications (external_user_id, source, verification_status, attempt_status)
                   VALUES ('u-rejected', 'webhook', 'NOT_VERIFIED', 'REJECTED')"
assert_contains "$TRY_OUT" "23514" "attempt_status REJECTED (a POA value) is refused (check_violation)"
try "$E2E_DB_URL" "INSERT INTO kyc.verifications (external_user_id, source, verification_status, attempt_status)
                   VALUES ('u-partial', 'webhook', 'PARTIALLY_VERIFIED', 'PENDING')"
assert_contains "$TRY_OUT" "23514" "an undocumented verification_status is refused"
try "$E2E_DB_URL" "INSERT INTO kyc.verifications (external_user_id, source, verification_status, attempt_status)
                   VALUES ('u-ok', 'webhook', 'NOT_VERIFIED', 'REJECTED_BY_PROVIDER'), ('u-api', 'api', NULL, NULL)"
assert_eq 0 "$TRY_RC" "documented values, and none yet (NULL), are stored"

# A database at schema 8 that holds an undocumented value.
e2e_fresh_db
e2e_schema_upto 8
sql "INSERT INTO kyc.verifications (external_user_id, source, verification_status, attempt_status)
     VALUES ('u-old', 'reconciler', 'NOT_VERIFIED', 'ON_HOLD')" >/dev/null
e2e_kycd_cmd -- migrate
assert_eq 1 "$E2E_RC" "kycd migrate over a stored undocumented value: exit 1"
assert_contains "$(cat "$E2E_OUT")" "1 users in kyc.verifications hold a status P100 does not document" \
  "... and says how many users"
assert_eq 8 "$(sql 'SELECT max(version) FROM kyc.schema_migrations')" "the schema stays at 8, nothing half applied"
sql "UPDATE kyc.verifications SET attempt_status = 'PENDING' WHERE external_user_id = 'u-old'" >/dev/null
e2e_kycd_cmd -- migrate
assert_eq 0 "$E2E_RC" "once corrected, kycd migrate completes"

e2e_section "(d) C and SQL agree on kycd's own codes"
# check_values TABLE COLUMN: the values a CHECK constraint of the column lists.
check_values() {
  sql "SELECT string_agg(v, ' ' ORDER BY v) FROM (
         SELECT DISTINCT (regexp_matches(pg_get_constraintdef(c.oid), '''([a-z_]+)''', 'g'))[1] AS v
         FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
         WHERE c.conrelid = 'kyc.$1'::regclass AND c.contype = 'c' AND a.attname = '$2') s"
}
core_values() { "$TEST_KYCD_BIN" vocabulary | awk -F'\t' -v f="$1" '$1 == f && $2 == "kycd" { print $3 }' | sort | tr '\n' ' ' | sed 's/ $//'; }
assert_eq "$(core_values kind)" "$(check_values webhook_events kind)" "kyc.webhook_events.kind = core's kinds"
assert_eq "$(core_values kind)" "$(check_values quarantine kind)" "kyc.quarantine.kind = core's kinds"
assert_eq "$(core_values outcome | tr ' ' '\n' | grep -vxE 'spooled|quarantined' | tr '\n' ' ' | sed 's/ $//')" \
  "$(check_values webhook_events outcome)" "kyc.webhook_events.outcome = core's outcomes but spooled (a spooled delivery is stored with its real outcome) and quarantined (kept in kyc.quarantine, not the event log)"
assert_eq "$(core_values source)" "$(check_values verifications source)" "kyc.verifications.source = core's sources"
assert_eq "$(core_values source)" "$(check_values status_changes source)" "kyc.status_changes.source = core's sources"
assert_eq "$(core_values p100_class)" "$(check_values status_checks outcome)" "kyc.status_checks.outcome = core's P100 answer classes"
assert_eq "$(core_values result)" "$(check_values status_checks result)" "kyc.status_checks.result = core's check results"
assert_eq "$(core_values purpose)" "$(check_values status_checks purpose)" "kyc.status_checks.purpose = core's check purposes"
