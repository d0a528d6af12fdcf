#!/usr/bin/env bash
# End-to-end: dead letters and their replay. A delivery accepted into the
# spool while PostgreSQL is down, which the database then refuses for good
# (a trigger of the test raises check_violation for users "refused-*", as a
# constraint added by a DBA could), is kept as dead-<rid>.rec with its
# reason beside it, and the spool moves on. `kycd spool dead-letters` lists
# it (time, kind, user, reason; --porcelain: tab-separated) while kycd runs;
# `kycd spool replay FILE` leaves it in place and prints the reason while
# the cause remains, and stores it once (with its original receipt time)
# and removes it after the cause is fixed. Private cluster
# (deploy/pg-local.sh): stopping it cannot disturb the shared server.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=deploy/pg-local.sh
source "$TEST_KYCD_SRC/deploy/pg-local.sh"

e2e_section "a delivery the database refuses for good"
e2e_private_pg
SPOOL=$E2E_TMP/spool
e2e_start_kycd KYCD_SPOOL_DIR="$SPOOL" KYCD_DB_TIMEOUT=2s KYCD_LOG_LEVEL=info
sql "CREATE FUNCTION public.refuse_test_users() RETURNS trigger LANGUAGE plpgsql AS \$\$
     BEGIN RAISE EXCEPTION 'refused by the test for %', NEW.external_user_id
       USING ERRCODE = 'check_violation'; END \$\$;
     CREATE TRIGGER refuse_test_users BEFORE INSERT ON kyc.webhook_events FOR EACH ROW
       WHEN (NEW.external_user_id LIKE 'refused-%') EXECUTE FUNCTION public.refuse_test_users()" >/dev/null

pg_local_stop_server_only "$PRIV_DIR" || e2e_abort "cannot stop the private PostgreSQL"
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body refused-1 NOT_VERIFIED PENDING)")" \
  "database down: the delivery for refused-1 is answered 200 from the spool"
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body fine-1 NOT_VERIFIED PENDING)")" \
  "database down: the delivery for fine-1 is answered 200 from the spool"
pg_local_start_server_only "$PRIV_DIR" >/dev/null || e2e_abort "cannot start the private PostgreSQL"

dead_file() {
  local f
  for f in "$SPOOL"/dead-*.rec; do [ -e "$f" ] && { echo "$f"; return; }; done
}
has_dead() { [ -n "$(dead_file)" ]; }
if e2e_wait_cmd 30 has_dead; then pass "the refused delivery became a dead letter"; else fail "no dead letter after 30 s"; fi
e2e_wait_sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id = 'fine-1'" 1 30 ||
  fail "the spool moved on: fine-1 is stored (got $E2E_SQL_LAST)"
DEAD=$(dead_file)
NAME=$(basename "$DEAD")
echo "dead letter: $NAME"
assert_eq 1 "$([ -f "${DEAD%.rec}.reason" ] && echo 1 || echo 0)" "its reason is kept beside it"
assert_eq 1 "$(grep -c 'kept as a dead letter' "$E2E_KYCD_LOG")" "kycd logged the dead letter once"

e2e_section "kycd spool dead-letters (kycd running)"
e2e_kycd_cmd KYCD_SPOOL_DIR="$SPOOL" -- spool dead-letters
cat "$E2E_OUT"
assert_eq 0 "$E2E_RC" "dead-letters exits 0 while kycd owns the spool"
assert_contains "$(cat "$E2E_OUT")" "dead letters in $SPOOL: 1" "one dead letter listed"
assert_contains "$(cat "$E2E_OUT")" "$NAME" "listed by file name"
assert_contains "$(cat "$E2E_OUT")" "kind=kyc_verification_status user=refused-1" "with its kind and user"
assert_contains "$(cat "$E2E_OUT")" "refused by the test for refused-1" "with the database's reason"
assert_contains "$(cat "$E2E_OUT")" "23514" "with the SQLSTATE"
e2e_kycd_cmd KYCD_SPOOL_DIR="$SPOOL" -- spool dead-letters --porcelain
assert_eq 0 "$E2E_RC" "dead-letters --porcelain exits 0"
IFS=$'\t' read -r p_file p_time p_kind p_rid p_user p_bytes p_reason <"$E2E_OUT" || true
assert_eq "$NAME" "$p_file" "porcelain: file"
assert_match "$p_time" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$' "porcelain: ISO time"
assert_eq kyc_verification_status "$p_kind" "porcelain: kind"
assert_eq "dead-$p_rid.rec" "$NAME" "porcelain: the request id names the file"
assert_eq refused-1 "$p_user" "porcelain: user"
assert_match "$p_bytes" '^[1-9][0-9]*$' "porcelain: size"
assert_contains "$p_reason" "refused by the test" "porcelain: reason"
assert_eq 1 "$(wc -l <"$E2E_OUT" | tr -d ' ')" "porcelain: one line per dead letter, no header"

e2e_section "kycd spool replay while the cause remains"
e2e_kycd_cmd KYCD_SPOOL_DIR="$SPOOL" -- spool replay "$NAME"
cat "$E2E_OUT"
assert_eq 1 "$E2E_RC" "replay fails (exit 1) while the database still refuses it"
assert_contains "$(cat "$E2E_OUT")" "stays a dead letter" "it says the dead letter stays"
assert_contains "$(cat "$E2E_OUT")" "refused by the test for refused-1" "and prints the reason"
assert_eq 1 "$([ -f "$DEAD" ] && echo 1 || echo 0)" "the dead letter is still there"
assert_eq 0 "$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id = 'refused-1'")" \
  "nothing of it stored"

e2e_section "kycd spool replay takes only the spool's own dead letters"
# A copy elsewhere, and a symlink in the spool to it: stored without a
# token check and then deleted, either would let anyone inject a delivery.
mkdir -p "$E2E_TMP/elsewhere"
cp "$DEAD" "$E2E_TMP/elsewhere/$NAME"
e2e_kycd_cmd KYCD_SPOOL_DIR="$SPOOL" -- spool replay "$E2E_TMP/elsewhere/$NAME"
assert_eq 2 "$E2E_RC" "a dead letter outside the spool directory: refused (exit 2)"
assert_contains "$(cat "$E2E_OUT")" "is not in the spool directory" "... saying why"
assert_eq 1 "$([ -f "$E2E_TMP/elsewhere/$NAME" ] && echo 1 || echo 0)" "... and the file is left alone"
ln -s "$E2E_TMP/elsewhere/$NAME" "$SPOOL/dead-0000symlink.rec"
e2e_kycd_cmd KYCD_SPOOL_DIR="$SPOOL" -- spool replay dead-0000symlink.rec
assert_eq 2 "$E2E_RC" "a symlink in the spool directory: refused (exit 2)"
assert_contains "$(cat "$E2E_OUT")" "not a regular file" "... saying why"
rm -f "$SPOOL/dead-0000symlink.rec"
if [ "$(id -u)" = 0 ]; then
  cp "$DEAD" "$SPOOL/dead-0000foreign.rec"
  chown nobody "$SPOOL/dead-0000foreign.rec"
  e2e_kycd_cmd KYCD_SPOOL_DIR="$SPOOL" -- spool replay dead-0000foreign.rec
  assert_eq 2 "$E2E_RC" "a dead letter owned by another user: refused (exit 2)"
  assert_contains "$(cat "$E2E_OUT")" "does not belong to the spool's owner" "... saying why"
  rm -f "$SPOOL/dead-0000foreign.rec"
fi
assert_eq 0 "$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id = 'refused-1'")" \
  "none of them was stored"

e2e_section "kycd spool replay after the fix"
sql "DROP TRIGGER refuse_test_users ON kyc.webhook_events" >/dev/null
e2e_kycd_cmd KYCD_SPOOL_DIR="$SPOOL" -- spool replay "$DEAD"
cat "$E2E_OUT"
assert_eq 0 "$E2E_RC" "replay succeeds once the cause is fixed"
assert_contains "$(cat "$E2E_OUT")" "the dead letter is removed" "it says so"
assert_eq 0 "$([ -e "$DEAD" ] || [ -e "${DEAD%.rec}.reason" ] && echo 1 || echo 0)" "its files are gone"
assert_eq 1 "$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id = 'refused-1'")" \
  "refused-1's delivery is stored once"
assert_eq "NOT_VERIFIED PENDING" "$(sql "SELECT verification_status || ' ' || attempt_status FROM kyc.verifications WHERE external_user_id = 'refused-1'")" \
  "and applied to the user's state"
# Its receipt time is the original one (before fine-1 was replayed), not the replay's.
assert_eq t "$(sql "SELECT (SELECT received_at FROM kyc.webhook_events WHERE external_user_id = 'refused-1')
                         <= (SELECT received_at FROM kyc.webhook_events WHERE external_user_id = 'fine-1')")" \
  "stored with its original receipt time"

e2e_section "bad replays"
e2e_kycd_cmd KYCD_SPOOL_DIR="$SPOOL" -- spool replay "$NAME"
assert_eq 1 "$E2E_RC" "replaying it again: exit 1 (it is gone)"
assert_contains "$(cat "$E2E_OUT")" "cannot stat" "naming the missing file"
e2e_kycd_cmd KYCD_SPOOL_DIR="$SPOOL" -- spool replay "$SPOOL/checkpoint"
assert_eq 2 "$E2E_RC" "replaying a file that is not a dead letter: usage error (exit 2)"
assert_contains "$(cat "$E2E_OUT")" "is not a dead letter" "saying why"
e2e_kycd_cmd KYCD_SPOOL_DIR="$SPOOL" -- spool replay
assert_eq 2 "$E2E_RC" "replay without FILE: usage error"
e2e_kycd_cmd KYCD_SPOOL_DIR="$SPOOL" -- spool dead-letters
assert_contains "$(cat "$E2E_OUT")" "dead letters in $SPOOL: 0" "no dead letter left"
e2e_stop_kycd

e2e_section "the operator's spool commands keep the spool the service's"
# The service runs as its own user; on-call runs `kycd spool status` or
# `drain` as root (the runbook says to): the files root makes must stay the
# service's, or kycd refuses its own spool at the next start. Another
# (non-root) user is told whom to run as.
if [ "$(id -u)" = 0 ]; then
  own=$E2E_TMP/owned-spool
  mkdir -p "$own"
  chown nobody:nogroup "$own"
  chmod 700 "$own"
  for cmd in status drain; do
    e2e_kycd_cmd KYCD_SPOOL_DIR="$own" -- spool $cmd
    assert_eq 0 "$E2E_RC" "kycd spool $cmd as root on nobody's spool: exit 0"
  done
  assert_ne 0 "$(find "$own" | wc -l)" "the commands made files there"
  assert_eq "" "$(find "$own" -mindepth 1 ! -user nobody -printf '%p %u\n')" \
    "every file in it still belongs to nobody, the spool's owner"
  out=$(env -i PATH=/usr/bin:/bin KYCD_SPOOL_DIR="$own" KYCD_DATABASE_URL="$E2E_DB_URL" \
          setpriv --reuid=daemon --regid=daemon --clear-groups "$TEST_KYCD_BIN" spool status 2>&1) && rc=0 || rc=$?
  assert_ne 0 "$rc" "kycd spool status as another user (daemon): fails"
  assert_contains "$out" "belongs to user nobody" "... naming the spool's owner"
  assert_contains "$out" "sudo -u nobody" "... and how to run it"
fi
