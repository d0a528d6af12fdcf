#!/usr/bin/env bash
# End-to-end: the change feed (docs/feed.md, sql/016_feed.sql) with real
# consumers. On a private primary with wal_level = logical:
#   (a) NOTIFY: a listener gets one notification per change of a user's
#       state, at commit, with the documented JSON payload (the user, the
#       change id of the row, old and new state, source); a rolled-back
#       change sends none;
#   (b) the consumers' role (LOGIN REPLICATION, SELECT on
#       kyc.status_changes only, as docs/feed.md makes it) reads the feed
#       and nothing else;
#   (c) under load from three `kycd serve` writers (kycd-loadgen, load.sh)
#       and their reconcilers (correcting pending users from the simulator),
#       a second PostgreSQL subscribes to the publication (CREATE
#       SUBSCRIPTION) while `kycd changes --follow` runs beside it and is
#       killed (SIGKILL) twice and resumed from the cursor of its last
#       complete line; rows land in a partition created after the
#       subscription and in the DEFAULT partition too. Both consumers end
#       with every change, none twice, none extra, in commit order: the
#       order test_decoding (another output plugin, on its own slot)
#       decodes the commits in (tests/tools/feed_check.py);
#       and a cursor inside a transaction of three changes resumes with
#       exactly the other two;
#   (d) the slot-lag query of docs/operations.md answers for every slot.
# Figures are printed as "figures:" lines: changes written, received by
# each consumer, duplicates, missing, resumes, ids committed out of order.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=deploy/pg-local.sh
source "$TEST_KYCD_SRC/deploy/pg-local.sh"
# shellcheck source=tests/e2e/load.sh
source "$(dirname "${BASH_SOURCE[0]}")/load.sh"

T_START=$SECONDS
N=3          # kycd serve writers
THREADS=3    # loadgen threads per writer
USERS=40     # users per thread: 3 changes each (PENDING, VERIFICATION, VERIFIED)
USERS_REC=90 # pending users whose VERIFIED only P100 knows: the reconcilers write one change each
THINK_MS=60  # between a thread's deliveries: the load lasts about 10 s, past both kills
CHECK=$TEST_KYCD_SRC/tests/tools/feed_check.py

primary_sql() { timeout 30 psql "$PRIV_PG" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
sub_sql() { timeout 30 psql "$SUB_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

e2e_section "a primary with wal_level = logical"
e2e_private_pg
primary_sql "ALTER SYSTEM SET wal_level = logical" >/dev/null
pg_local_restart "$PRIV_DIR" >/dev/null || e2e_abort "cannot restart the primary"
PRIM_PORT=$(cat "$PRIV_DIR/port")
assert_eq logical "$(primary_sql 'SHOW wal_level')" "the primary runs with wal_level = logical"
e2e_migrate
assert_eq "status_changes|t" \
  "$(sql "SELECT string_agg(t.tablename, ','), bool_and(p.pubviaroot) FROM pg_publication p
          JOIN pg_publication_tables t USING (pubname) WHERE p.pubname = 'kyc_status_changes'")" \
  "the publication kyc_status_changes holds kyc.status_changes, published as the parent"

# --- (a) NOTIFY -----------------------------------------------------------------
e2e_section "(a) NOTIFY kyc_status_changes"
declare -a K_PORT K_PID K_LOG K_ADMIN
# Each writer runs its reconciler too, against the simulated P100.
e2e_certs
e2e_start_sim --no-webhooks
mapfile -t SIM_ENV < <(e2e_sim_env)
REC=(KYCD_RECONCILE=on KYCD_PENDING_AFTER=1h KYCD_RECONCILE_INTERVAL=300ms KYCD_P100_TIMEOUT=2s
     KYCD_P100_RATE=15 KYCD_P100_CONCURRENCY=4 KYCD_RECHECK_SHARE=0)
for i in $(seq 1 "$N"); do
  E2E_KYCD_PID=
  if [ "$i" = 1 ]; then mig=(); else mig=(--no-migrate); fi
  e2e_start_kycd "${mig[@]}" "${SIM_ENV[@]}" "${REC[@]}" KYCD_LOG_LEVEL=info
  K_PORT[i]=$E2E_PORT K_PID[i]=$E2E_KYCD_PID K_LOG[i]=$E2E_KYCD_LOG K_ADMIN[i]=$E2E_ADMIN_PORT
done
E2E_PORT=${K_PORT[1]}
U=feed-notify
LISTEN_OUT=$E2E_TMP/listen.out
# A listener that waits (bounded) for the user's three changes, then
# returns to idle: psql prints the notifications it got.
timeout 60 psql "$E2E_DB_URL" -XAtq -v ON_ERROR_STOP=1 >"$LISTEN_OUT" 2>&1 <<SQL &
LISTEN kyc_status_changes;
DO \$\$ BEGIN
  FOR i IN 1..400 LOOP
    EXIT WHEN (SELECT count(*) FROM kyc.status_changes WHERE external_user_id = '$U') >= 3;
    PERFORM pg_sleep(0.1);
  END LOOP;
END \$\$;
SELECT 'listener done';
SQL
LISTEN_PID=$!
e2e_track_pid "$LISTEN_PID"
e2e_wait_sql "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'PgSleep'" 1 15 ||
  e2e_abort "the listener did not start"
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "$U" NOT_VERIFIED PENDING)")" "webhook 1 of $U stored"
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "$U" NOT_VERIFIED VERIFICATION)")" "webhook 2 of $U stored"
# A change that rolls back notifies nobody.
sql "BEGIN; INSERT INTO kyc.status_changes (external_user_id, source, reason) VALUES ('$U', 'api', 'api'); ROLLBACK" >/dev/null
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "$U" VERIFIED SUCCESSFUL)")" "webhook 3 of $U stored"
e2e_wait_exit "$LISTEN_PID" 45 || fail "the listener did not finish"
wait "$LISTEN_PID" 2>/dev/null || true
got=$(python3 - "$LISTEN_OUT" <<'PY'
import json, re, sys
out = []
for line in open(sys.argv[1]):
    m = re.match(r'Asynchronous notification "kyc_status_changes" with payload "(.*)" received', line)
    if m:
        p = json.loads(m.group(1))
        out.append("%s,%s,%s,%s,%s,%s" % (p["change_id"], p["external_user_id"], p["source"],
                                          p["old_verification_status"], p["new_verification_status"],
                                          p["new_attempt_status"]))
print(" ".join(out))
PY
)
want=$(sql "SELECT string_agg(concat_ws(',', id, external_user_id, source, coalesce(old_verification_status, 'None'),
                                        new_verification_status, new_attempt_status), ' ' ORDER BY id)
            FROM kyc.status_changes WHERE external_user_id = '$U'")
assert_match "$want" '^[0-9]+,.* [0-9]+,.* [0-9]+,.*VERIFIED,SUCCESSFUL$' "$U has three changes, the last to VERIFIED ($want)"
assert_eq "$want" "$got" "the listener got one notification per change, at commit, with its id, user, source, old and new state (none for the rolled-back one)"

# --- (b) the consumers' role ----------------------------------------------------
e2e_section "(b) the consumers' role"
FEED=kyc_feed_$$
# As docs/feed.md makes it (a superuser: REPLICATION), then the owner's grants.
primary_sql "CREATE ROLE $FEED LOGIN REPLICATION" >/dev/null
sql "GRANT USAGE ON SCHEMA kyc TO $FEED; GRANT SELECT ON kyc.status_changes TO $FEED" >/dev/null
FEED_URL=$(with_user "$E2E_DB_URL" "$FEED")
assert_eq "t|f|f" "$(timeout 10 psql "$FEED_URL" -XAtq -c "SELECT rolreplication, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user")" \
  "$FEED has REPLICATION, no superuser, no CREATEROLE"
for q in "SELECT count(*) FROM kyc.verifications" "SELECT count(*) FROM kyc.webhook_events" \
         "INSERT INTO kyc.status_changes (external_user_id, source, reason) VALUES ('$U', 'api', 'api')"; do
  try "$FEED_URL" "$q"
  if [ "$TRY_RC" != 0 ] && [[ $TRY_OUT == *"permission denied"* ]]; then
    pass "$FEED is refused: $q"
  else
    fail "$FEED: $q: expected permission denied, got exit $TRY_RC: $TRY_OUT"
  fi
done

# --- (c) the consumers under load -----------------------------------------------
e2e_section "(c) a subscriber, kycd changes and test_decoding under load"
# test_decoding's slot first: the reference commit order of everything after it.
sql "SELECT pg_create_logical_replication_slot('feed_check', 'test_decoding')" >/dev/null
dbname=$(sed -n 's/.*dbname=\([^ ]*\).*/\1/p' <<<"$E2E_DB_URL")
FIRST_ID=$(sql "SELECT coalesce(max(id), 0) FROM kyc.status_changes")

# The subscriber: a second cluster, a table with the published columns (from
# the primary's catalog) plus its own applied_seq, no key: a duplicate would
# show. The apply worker runs as the subscriber's superuser.
port=$(e2e_free_port)
pg_local_start "" "$port" >"$E2E_TMP/sub-start.log" 2>&1 || { cat "$E2E_TMP/sub-start.log"; e2e_abort "cannot start the subscriber"; }
SUB_DIR=$PGLOCAL_DIR
E2E_PG_DIRS+=("$SUB_DIR")
SUB_PG=$PGLOCAL_CONNINFO
timeout 30 psql "$SUB_PG" -XAtq -c "CREATE DATABASE feedsub" >/dev/null || e2e_abort "cannot create the subscriber database"
SUB_URL="$SUB_PG dbname=feedsub"
cols=$(sql "SELECT string_agg(format('%I %s', attname, format_type(atttypid, atttypmod)), ', ' ORDER BY attnum)
            FROM pg_attribute WHERE attrelid = 'kyc.status_changes'::regclass AND attnum > 0 AND NOT attisdropped")
sub_sql "CREATE SCHEMA kyc; CREATE TABLE kyc.status_changes ($cols, applied_seq bigserial)" >/dev/null
sub_sql "CREATE SUBSCRIPTION feed_sub CONNECTION 'host=127.0.0.1 port=$PRIM_PORT dbname=$dbname user=$FEED'
         PUBLICATION kyc_status_changes WITH (copy_data = false)" >/dev/null
sub_ready() { [ "$(sub_sql "SELECT count(*) FROM pg_stat_subscription WHERE subname = 'feed_sub' AND pid IS NOT NULL")" = 1 ]; }
if e2e_wait_cmd 30 sub_ready; then pass "the subscriber's apply worker runs"; else fail "the subscriber's apply worker runs"; fi
assert_eq 1 "$(primary_sql "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'feed_sub' AND plugin = 'pgoutput'")" \
  "the subscription made its slot on the primary"

# kycd changes --follow, as the consumers' role; its slot is made before
# the load so that it holds every change of the load.
feed_env=(env -i "PATH=$PATH" "HOME=${HOME:-/tmp}" "LANG=C.UTF-8" "KYCD_DATABASE_URL=$FEED_URL" "KYCD_LOG_LEVEL=info")
e2e_kycd_cmd --bare "KYCD_DATABASE_URL=$FEED_URL" -- changes
assert_eq 0 "$E2E_RC" "kycd changes as $FEED makes its slot and exits 0 when nothing is new"
assert_contains "$(cat "$E2E_OUT")" 'msg="replication slot created" slot=kycd_changes' "it said it made the slot"
RUN=0
FEED_OUTS=()
# feed_start [CURSOR]: run N of kycd changes --follow in the background.
feed_start() {
  RUN=$((RUN + 1))
  FEED_OUTS+=("$E2E_TMP/feed.$RUN.out")
  local since=()
  if [ -n "${1:-}" ]; then since=(--since "$1"); fi
  "${feed_env[@]}" "$TEST_KYCD_BIN" changes --follow "${since[@]}" >"$E2E_TMP/feed.$RUN.out" 2>"$E2E_TMP/feed.$RUN.err" &
  FEED_PID=$!
  e2e_track_pid "$FEED_PID"
  e2e_logfmt_track "$E2E_TMP/feed.$RUN.err"
}
# The complete lines (newline-terminated: a killed run may end mid-line)
# received so far, over every run.
feed_count() {
  local f n=0
  for f in "${FEED_OUTS[@]}"; do n=$((n + $(wc -l <"$f"))); done
  echo "$n"
}
feed_at_least() { [ "$(feed_count)" -ge "$1" ]; }
# The cursor of the last complete line: where the consumer resumes.
last_cursor() {
  local f
  for f in "${FEED_OUTS[@]}"; do head -n "$(wc -l <"$f")" "$f"; done | tail -n 1 |
    sed -n 's/^{"cursor":"\([^"]*\)".*/\1/p'
}
slot_idle() { [ "$(primary_sql "SELECT active FROM pg_replication_slots WHERE slot_name = 'kycd_changes'")" = f ]; }
feed_start

E2E_DB_URL_SAVED=$E2E_DB_URL
declare -a L_PID L_ACKS L_STDOUT L_STDERR
TOTAL=0
for i in $(seq 1 "$N"); do
  E2E_PORT=${K_PORT[$i]}
  lg_start "feed$i" "$THREADS" "$USERS" --think-ms "$THINK_MS"
  L_PID[i]=$LG_PID L_ACKS[i]=$LG_ACKS L_STDOUT[i]=$LG_STDOUT L_STDERR[i]=$LG_STDERR
  TOTAL=$((TOTAL + LG_TOTAL))
done
# The reconcilers' share of the load: users kycd holds as pending for two
# hours whom P100 (the simulator) has as verified.
sim POST /_sim/users "{\"prefix\":\"feed-rc-\",\"count\":$USERS_REC,\"verificationStatus\":\"$(p100_word verificationStatus VERIFIED)\",\"attemptStatus\":\"$(p100_word attemptStatus SUCCESSFUL)\"}" >/dev/null
sql "INSERT INTO kyc.verifications (external_user_id, source, verification_status, attempt_status, updated_at)
     SELECT 'feed-rc-' || g, 'webhook', '$(p100_word verificationStatus NOT_VERIFIED)', '$(p100_word attemptStatus PENDING)',
            now() - interval '2 hours'
     FROM generate_series(0, $USERS_REC - 1) g" >/dev/null
# Partitions made after the publication and the subscription are covered:
# one row in a month created now, one in the DEFAULT partition.
sql "SELECT kyc.create_partition('status_changes', now() + interval '14 months')" >/dev/null
sql "INSERT INTO kyc.status_changes (external_user_id, changed_at, source, reason)
     VALUES ('$U', now() + interval '14 months', 'api', 'api'), ('$U', '2001-01-01', 'api', 'api')" >/dev/null
assert_eq "1|1" "$(sql "SELECT (SELECT count(*) FROM kyc.status_changes_default),
                              (SELECT count(*) FROM kyc.status_changes s JOIN pg_class c ON c.oid = s.tableoid
                               WHERE c.relname = 'status_changes_p' ||
                                     to_char(now() AT TIME ZONE 'UTC' + interval '14 months', 'YYYYMM'))")" \
  "a row is in the DEFAULT partition and one in a partition made after the subscription"

# Two kills, at about a third and two thirds of the load's changes.
RESUMES=0
for target in $((TOTAL / 3)) $((TOTAL * 2 / 3)); do
  e2e_wait_cmd 120 feed_at_least "$target" || fail "kycd changes printed $(feed_count) lines, not $target, within 120 s"
  kill -KILL "$FEED_PID" 2>/dev/null || true
  wait "$FEED_PID" 2>/dev/null || true
  cursor=$(last_cursor)
  assert_match "$cursor" '^[0-9A-F]+/[0-9A-F]+:[0-9]+$' "run $RUN killed after $(feed_count) lines; its last cursor is $cursor"
  # The server ends the killed session's use of the slot by itself.
  e2e_wait_cmd 30 slot_idle || fail "the slot stayed active after the kill"
  feed_start "$cursor"
  RESUMES=$((RESUMES + 1))
done
load_running=0
for i in $(seq 1 "$N"); do kill -0 "${L_PID[$i]}" 2>/dev/null && load_running=$((load_running + 1)); done
echo "loadgens still running after the second resume: $load_running of $N"

e2e_section "(c) the load ends; every consumer catches up"
for i in $(seq 1 "$N"); do
  LG_PID=${L_PID[$i]} LG_ACKS=${L_ACKS[$i]} LG_STDOUT=${L_STDOUT[$i]} LG_STDERR=${L_STDERR[$i]}
  lg_wait 150
  assert_eq 0 "$LG_RC" "writer $i's loadgen finished ($(lg_acked) acknowledged)"
done
E2E_DB_URL=$E2E_DB_URL_SAVED
echo "the loadgens finished at $((SECONDS - T_START)) s"
e2e_wait_sql "SELECT count(*) FROM kyc.status_changes WHERE external_user_id LIKE 'feed-rc-%' AND source = 'reconciler'" "$USERS_REC" 60 ||
  fail "the reconcilers wrote $E2E_SQL_LAST of $USERS_REC changes within 60 s"
t_load_end=$(e2e_ms)
echo "the reconcilers' changes were all in at $((SECONDS - T_START)) s: the last change was written"
REC_WRITERS=$(sql "SELECT count(DISTINCT checker) FROM kyc.status_checks WHERE external_user_id LIKE 'feed-rc-%'")
echo "reconciler changes: $USERS_REC, by $REC_WRITERS instances"
WRITTEN=$(sql "SELECT count(*) FROM kyc.status_changes WHERE id > $FIRST_ID")
assert_eq 1 "$([ "$WRITTEN" -ge $((TOTAL + USERS_REC)) ] && echo 1 || echo 0)" \
  "the load wrote $WRITTEN changes (at least one per delivery and reconciled user: $((TOTAL + USERS_REC)))"
sub_all() { [ "$(sub_sql "SELECT count(*) FROM kyc.status_changes")" -ge "$WRITTEN" ]; }
e2e_wait_cmd 120 sub_all || fail "the subscriber has $(sub_sql "SELECT count(*) FROM kyc.status_changes") of $WRITTEN changes after 120 s"
t_end=$(e2e_ms)
echo "the subscriber had every change $(( (t_end - t_load_end) / 1000 )) s after the last was written"
e2e_wait_cmd 120 feed_at_least "$WRITTEN" || fail "kycd changes printed $(feed_count) of $WRITTEN changes after 120 s"
echo "kycd changes had printed every change $(( ($(e2e_ms) - t_load_end) / 1000 )) s after the last was written"
kill -TERM "$FEED_PID" 2>/dev/null || true
e2e_wait_exit "$FEED_PID" 10 || fail "kycd changes --follow did not stop on SIGTERM"
wait "$FEED_PID" 2>/dev/null || true

e2e_section "(c) what each consumer received"
sql "SELECT id FROM kyc.status_changes WHERE id > $FIRST_ID" >"$E2E_TMP/primary.ids"
sub_sql "SELECT id FROM kyc.status_changes ORDER BY applied_seq" >"$E2E_TMP/sub.ids"
# test_decoding names the partition ("table kyc.status_changes_p202612: INSERT: id[bigint]:7 ...").
sql "SELECT data FROM pg_logical_slot_get_changes('feed_check', NULL, NULL)" |
  sed -n 's/^table kyc\.status_changes[_a-z0-9]*: INSERT: id\[bigint\]:\([0-9]*\) .*/\1/p' >"$E2E_TMP/decoded.ids"
res=$(python3 "$CHECK" "$E2E_TMP/primary.ids" "$E2E_TMP/sub.ids" "$E2E_TMP/decoded.ids" "${FEED_OUTS[@]}") ||
  e2e_abort "feed_check.py failed"
echo "feed_check: $res"
val() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$res"; }
assert_eq "$WRITTEN" "$(val written)" "the checker read the $WRITTEN changes written"
assert_eq "$WRITTEN" "$(val decoded)" "test_decoding decoded every change"
assert_eq "$WRITTEN|0|0|0" "$(val subscriber)|$(val subscriber_dup)|$(val subscriber_missing)|$(val subscriber_extra)" \
  "the subscriber has every change, none twice, none extra"
assert_eq "$WRITTEN|0|0|0" "$(val feed)|$(val feed_dup)|$(val feed_missing)|$(val feed_extra)" \
  "kycd changes, over $RUN runs ($RESUMES resumed from a cursor), printed every change, none twice, none extra"
assert_eq 1 "$(val subscriber_in_commit_order)" "the subscriber applied them in commit order (test_decoding's)"
assert_eq 1 "$(val feed_in_commit_order)" "kycd changes printed them in commit order (test_decoding's)"
assert_eq 1 "$(val cursors_increasing)" "its cursors only grow"
assert_eq 2 "$RESUMES" "kycd changes was killed and resumed twice"
for r in $(seq 1 "$RUN"); do
  if grep -q 'level=error' "$E2E_TMP/feed.$r.err"; then fail "run $r logged an error: $(grep 'level=error' "$E2E_TMP/feed.$r.err" | head -n 1)"; fi
done

# A cursor inside a transaction: two fresh slots, one transaction of three
# changes; the first slot's run gives the cursor of its first change, the
# second slot, resumed from it, exactly the other two, once.
for s in feed_mid0 feed_mid; do
  e2e_kycd_cmd --bare "KYCD_DATABASE_URL=$FEED_URL" -- changes --slot "$s"
  assert_eq 0 "$E2E_RC" "kycd changes --slot $s makes another slot"
done
sql "BEGIN; INSERT INTO kyc.status_changes (external_user_id, source, reason)
     SELECT '$U', 'api', 'api' FROM generate_series(1, 3); COMMIT" >/dev/null
mid_ids=$(sql "SELECT string_agg(id::text, ' ' ORDER BY id) FROM (SELECT id FROM kyc.status_changes ORDER BY id DESC LIMIT 3) x")
e2e_kycd_cmd --bare "KYCD_DATABASE_URL=$FEED_URL" -- changes --slot feed_mid0
first=$(grep -m 1 '^{"cursor"' "$E2E_OUT" | sed -n 's/^{"cursor":"\([^"]*\)".*/\1/p')
assert_match "$first" ':1$' "the transaction's first change has cursor $first"
e2e_kycd_cmd --bare "KYCD_DATABASE_URL=$FEED_URL" -- changes --slot feed_mid --since "$first"
assert_eq "${mid_ids#* }" "$(grep '^{"cursor"' "$E2E_OUT" | sed -n 's/.*"change":{"id":\([0-9]*\),.*/\1/p' | tr '\n' ' ' | sed 's/ $//')" \
  "resumed from $first it prints the transaction's other two changes (${mid_ids#* }), nothing else"
e2e_kycd_cmd --bare "KYCD_DATABASE_URL=$FEED_URL" -- changes --slot feed_mid
assert_eq 0 "$(grep -c '^{"cursor"' "$E2E_OUT" || true)" "then the slot has moved past them: a run without a cursor prints nothing"
sql "SELECT pg_drop_replication_slot('feed_mid'), pg_drop_replication_slot('feed_mid0')" >/dev/null

# --- (d) slot lag -----------------------------------------------------------------
e2e_section "(d) the slot-lag query"
# The query of docs/operations.md ("The change feed"), run as written there.
# shellcheck disable=SC2016  # the backquotes are the markdown fence, not an expansion
LAG_SQL=$(sed -n '/^ *```sql feed-lag$/,/^ *```$/p' "$TEST_KYCD_SRC/docs/operations.md" | sed '1d;$d')
assert_ne "" "$LAG_SQL" "docs/operations.md holds the slot-lag query"
lag=$(sql "$LAG_SQL")
printf '  %s\n' "$lag"
assert_eq "feed_check feed_sub kycd_changes" "$(cut -d'|' -f1 <<<"$lag" | sort | tr '\n' ' ' | sed 's/ $//')" \
  "it answers for each slot"

# The reconciler's gauges of the same slots (kycd_feed_slot_retained_wal_bytes,
# kycd_feed_slots_inactive; alert KycdFeedSlotRetainingWal): a new slot
# nobody reads, then about 3.6 MB of WAL written (a table of this test's
# database): the gauge shows at least that much kept, and counts the
# inactive slots as PostgreSQL does.
gauge() {
  E2E_ADMIN_PORT=${K_ADMIN[1]} admin_get /metrics >/dev/null
  awk -v m="$1" '$1 == m { print $2 }' "$E2E_RESP_BODY"
}
sql "SELECT pg_create_logical_replication_slot('feed_gauge', 'test_decoding')" >/dev/null
sql "CREATE TABLE public.feed_gauge_wal AS SELECT g FROM generate_series(1, 100000) g" >/dev/null
kept=$(sql "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint FROM pg_replication_slots WHERE slot_name = 'feed_gauge'")
inactive=$(sql "SELECT count(*) FROM pg_replication_slots WHERE database = current_database() AND slot_type = 'logical' AND NOT active")
gauges_caught_up() {
  local w i
  w=$(gauge kycd_feed_slot_retained_wal_bytes); i=$(gauge kycd_feed_slots_inactive)
  [ -n "$w" ] && awk -v w="$w" -v k="$kept" 'BEGIN { exit !(w + 0 >= k + 0) }' && [ "$i" = "$inactive" ]
}
if e2e_wait_cmd 20 gauges_caught_up; then
  pass "kycd_feed_slot_retained_wal_bytes $(gauge kycd_feed_slot_retained_wal_bytes) >= the $kept bytes feed_gauge keeps; kycd_feed_slots_inactive $inactive, as pg_replication_slots says"
else
  fail "the slot gauges: retained $(gauge kycd_feed_slot_retained_wal_bytes) (want >= $kept), inactive $(gauge kycd_feed_slots_inactive) (want $inactive)"
fi
assert_ne 0 "$((kept > 3000000))" "the WAL written was kept by the new slot ($kept bytes)"
sql "SELECT pg_drop_replication_slot('feed_gauge'); DROP TABLE public.feed_gauge_wal" >/dev/null

# --- (e) the analysts' periods --------------------------------------------------
# The periods kycd kept (kyc.periods, one per change, written by the writers'
# batches and the reconcilers under this load) are the history's periods.
e2e_section "(e) kyc.periods under this load"
assert_eq "0|0|$(sql "SELECT count(*) FROM kyc.status_changes")" "$(e2e_periods_diff)" \
  "kyc.periods equals the history's periods (kyc.derived_periods): none missing, none extra"

for i in $(seq 1 "$N"); do
  E2E_KYCD_PID=${K_PID[$i]} E2E_KYCD_LOG=${K_LOG[$i]} E2E_PORT=${K_PORT[$i]}
  e2e_stop_kycd
done
sub_sql "DROP SUBSCRIPTION feed_sub" >/dev/null || true
e2e_stop_sim
figures "feed: writers=$N reconciler_changes=$USERS_REC reconciler_instances=$REC_WRITERS changes_written=$WRITTEN subscriber_received=$(val subscriber) subscriber_dup=$(val subscriber_dup)" \
  "subscriber_missing=$(val subscriber_missing) feed_received=$(val feed) feed_dup=$(val feed_dup) feed_missing=$(val feed_missing)" \
  "feed_runs=$RUN resumes=$RESUMES ids_committed_out_of_order=$(val ids_committed_out_of_order)" \
  "transactions=$(val transactions) largest_transaction=$(val largest_transaction)" \
  "loadgens_running_at_second_resume=$load_running run_time_s=$((SECONDS - T_START))"
e2e_private_pg_drop "$SUB_DIR" "$SUB_PG"
e2e_private_pg_drop
