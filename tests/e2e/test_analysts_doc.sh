#!/usr/bin/env bash
# kycd-test: once
# Every ```sql example of docs/analysts.md runs: on a database migrated by
# the real kycd and seeded with a few users (tests/e2e/analysts_seed.sql),
# each block is run by psql as the read-only role kyc_analyst (SET ROLE, in
# a transaction rolled back afterwards), and fails the test when
# PostgreSQL refuses it. A block right after the line
# "<!-- test: as the owner -->" is a statement for the tables' owner (giving
# a person the role): it runs as the superuser, rolled back. The runner is
# shown to fail on a broken query and on a write, so a pass means something.
# Must never: leave a role or database behind (lib.sh drops them).
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DOC=$TEST_KYCD_SRC/docs/analysts.md
[ -f "$DOC" ] || e2e_abort "no $DOC"

e2e_section "a migrated, seeded database"
e2e_fresh_db
e2e_migrate
rc=0
out=$(timeout 30 psql "$E2E_DB_URL" -XAtq -v ON_ERROR_STOP=1 -f "$TEST_KYCD_SRC/tests/e2e/analysts_seed.sql" 2>&1) || rc=$?
assert_eq 0 "$rc" "the seed loads ($(e2e__clip "$out"))"

# extract DOC DIR: each ```sql block into DIR/NNN.sql (DIR/NNN.owner for
# the owner's), its first line number in DIR/NNN.line.
extract() {
  awk -v dir="$2" '
    /^<!-- test: as the owner -->$/ { owner = 1; next }
    !inb && /^```sql[ \t]*$/ { inb = 1; n++; f = sprintf("%s/%03d.%s", dir, n, owner ? "owner" : "sql");
                               print NR + 1 > sprintf("%s/%03d.line", dir, n); owner = 0; next }
    inb && /^```[ \t]*$/ { inb = 0; close(f); next }
    inb { print > f; next }
    /^[^ \t]/ { owner = 0 }
  ' "$1"
}
# run_block FILE: as kyc_analyst (or, for .owner, as the superuser), rolled back.
run_block() {
  local f=$1 pre
  if [[ $f == *.owner ]]; then pre='BEGIN;'; else pre='BEGIN; SET LOCAL ROLE kyc_analyst;'; fi
  RUN_RC=0
  RUN_OUT=$({ echo "$pre"; cat "$f"; echo; echo 'ROLLBACK;'; } |
    timeout 30 psql "$E2E_DB_URL" -XAq -v ON_ERROR_STOP=1 -f - 2>&1) || RUN_RC=$?
}

e2e_section "the runner fails on a broken query and on a write"
mkdir -p "$E2E_TMP/self"
printf 'SELECT no_such_column FROM kyc.current_status;\n' >"$E2E_TMP/self/broken.sql"
run_block "$E2E_TMP/self/broken.sql"
assert_ne 0 "$RUN_RC" "a query naming a missing column fails ($(e2e__clip "$RUN_OUT"))"
printf 'DELETE FROM kyc.verifications;\n' >"$E2E_TMP/self/write.sql"
run_block "$E2E_TMP/self/write.sql"
assert_ne 0 "$RUN_RC" "a write as kyc_analyst fails ($(e2e__clip "$RUN_OUT"))"
printf 'SELECT count(*) FROM kyc.current_status;\n' >"$E2E_TMP/self/ok.sql"
run_block "$E2E_TMP/self/ok.sql"
assert_eq 0 "$RUN_RC" "a good query passes ($(e2e__clip "$RUN_OUT"))"

e2e_section "every sql example of docs/analysts.md"
mkdir -p "$E2E_TMP/blocks"
extract "$DOC" "$E2E_TMP/blocks"
n=0
for f in "$E2E_TMP"/blocks/*.sql "$E2E_TMP"/blocks/*.owner; do
  [ -f "$f" ] || continue
  n=$((n + 1))
  line=$(cat "${f%.*}.line")
  run_block "$f"
  who=kyc_analyst; [[ $f == *.owner ]] && who='the owner'
  if [ "$RUN_RC" = 0 ]; then
    pass "docs/analysts.md:$line runs as $who ($(grep -c ';' "$f") statements)"
  else
    fail "docs/analysts.md:$line fails as $who: $(e2e__clip "$RUN_OUT")"
  fi
done
assert_ne 0 "$n" "docs/analysts.md has sql examples ($n blocks)"
# The example queries read the seeded rows: a query that silently matches
# nothing would hide a renamed column value.
e2e_section "the examples see the seed"
rows=$(printf "BEGIN READ ONLY; SET LOCAL ROLE kyc_analyst;\nSELECT count(*) FROM kyc.current_status WHERE external_user_id = 'bca65c48-df49-4831-a7b2-de7903321581';\nROLLBACK;\n" |
  timeout 30 psql "$E2E_DB_URL" -XAtq -v ON_ERROR_STOP=1 -f - 2>&1)
assert_eq 1 "$rows" "the user the examples name is in kyc.current_status"

# What kycd keeps on each user's row for the views (sql/017: the trigger on
# kyc.status_changes) follows the seeded changes.
assert_eq "t|t" \
  "$(sql "SELECT (SELECT verified_at = (SELECT min(changed_at) FROM kyc.status_changes
                                         WHERE external_user_id = t.external_user_id AND new_verification_status = 'VERIFIED')
                  FROM kyc.time_to_verified t WHERE external_user_id = 'bca65c48-df49-4831-a7b2-de7903321581'),
                 (SELECT pending_since = (SELECT changed_at FROM kyc.status_changes WHERE external_user_id = 'analysts-doc-pending')
                  FROM kyc.pending WHERE external_user_id = 'analysts-doc-pending')")" \
  "kyc.time_to_verified and kyc.pending read the first VERIFIED and the attempt's start kycd keeps"
