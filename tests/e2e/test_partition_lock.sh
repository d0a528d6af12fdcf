#!/usr/bin/env bash
# kycd-test: once
# End-to-end: a monthly partition made under live writes cannot deadlock
# with them (sql/019_partition_lock.sql). A writer transaction as kycd's
# take their locks (kyc.verifications first, then the history) stops
# between the two until kyc.create_partition waits for a lock, then goes on
# into kyc.status_changes:
#   (a) at schema 18 (001-018 applied) PostgreSQL detects a deadlock and
#       aborts one of them: the race is real and this test can fail;
#   (b) after `kycd migrate` both finish: the writer's change is stored,
#       the partition made; and kycd serve's keeper path
#       (kyc.ensure_partitions) makes the rest.
# Must never: wait without a bound (the writer waits 20 s at most, each
# psql 40 s).
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_fresh_db

# race MONTHS_AHEAD: the writer, then create_partition for a month that far
# ahead. Sets WRITER_RC, WRITER_OUT, PART_RC, PART_OUT.
race() {
  local n=$1 out=$E2E_TMP/writer.$1 wpid
  PGAPPNAME=race-writer timeout 40 psql "$E2E_DB_URL" -XAtq -v ON_ERROR_STOP=1 >"$out" 2>&1 <<SQL &
BEGIN;
INSERT INTO kyc.verifications (external_user_id, source) VALUES ('race-$n', 'webhook');
DO \$\$ BEGIN
  FOR i IN 1..400 LOOP
    PERFORM pg_stat_clear_snapshot();
    EXIT WHEN EXISTS (SELECT FROM pg_stat_activity
                      WHERE application_name = 'race-partition' AND wait_event_type = 'Lock');
    PERFORM pg_sleep(0.05);
  END LOOP;
END \$\$;
INSERT INTO kyc.status_changes (external_user_id, source, reason) VALUES ('race-$n', 'api', 'api');
COMMIT;
SQL
  wpid=$!
  e2e_track_pid "$wpid"
  e2e_wait_sql "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'race-writer' AND wait_event = 'PgSleep'" 1 15 ||
    e2e_abort "the writer did not reach its wait"
  PART_RC=0
  PART_OUT=$(PGAPPNAME=race-partition timeout 40 psql "$E2E_DB_URL" -XAtq -v ON_ERROR_STOP=1 \
    -c "SELECT kyc.create_partition('status_changes', now() + interval '$n months')" 2>&1) || PART_RC=$?
  WRITER_RC=0
  wait "$wpid" || WRITER_RC=$?
  WRITER_OUT=$(cat "$out")
}

e2e_section "(a) schema 18: the writer and the new partition deadlock"
e2e_schema_upto 18
race 30
assert_contains "$PART_OUT $WRITER_OUT" "deadlock detected" \
  "PostgreSQL aborts one of them (partition: exit $PART_RC; writer: exit $WRITER_RC)"

e2e_section "(b) after kycd migrate: both finish"
e2e_migrate
assert_eq "t" "$(sql "SELECT max(version) >= 19 FROM kyc.schema_migrations")" "schema 19 or later"
race 40
assert_eq "0|0" "$PART_RC|$WRITER_RC" "no deadlock: create_partition and the writer both exit 0 ($(e2e__clip "$PART_OUT $WRITER_OUT"))"
want=$(sql "SELECT 'status_changes_p' || to_char(now() AT TIME ZONE 'UTC' + interval '40 months', 'YYYYMM')")
assert_eq "$want" "$PART_OUT" "the partition was made"
assert_eq "1" "$(sql "SELECT count(*) FROM kyc.status_changes WHERE external_user_id = 'race-40'")" "the writer's change is stored"
assert_eq "t" "$(sql "SELECT count(*) > 0 FROM kyc.ensure_partitions(4)")" "and kyc.ensure_partitions, serve's keeper path, makes months further ahead (3 and 4) through the same function"
