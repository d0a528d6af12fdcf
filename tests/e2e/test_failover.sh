#!/usr/bin/env bash
# End-to-end failover: kycd with a multi-host database_url
# (host=A,B port=PA,PB target_session_attrs=read-write) in front of a
# primary and its streaming standby (pg_basebackup -R of it; two private
# clusters, deploy/pg-local.sh), webhooks under a bounded load
# (kycd-loadgen, tests/e2e/load.sh), the primary stopped with
# `pg_ctl stop -m immediate` mid-load and the standby promoted. Demands:
# no 5xx during the switch (the spool answers while it has room), kycd
# reconnects to the new primary by itself and drains the spool there, and
# every acknowledged delivery is on the new primary exactly once.
# Then a server that turns read-only under kycd's open connections (the
# 25006 path, without a failover). The failover runs twice:
#   sync   synchronous_standby_names='*', synchronous_commit=on: a COMMIT
#          is acknowledged only once the standby has it: nothing lost (asserted)
#   async  no synchronous standby: what the primary had not yet sent is
#          lost with it; the count is printed (and its being reported is
#          asserted), not failed
# In both modes every delivery must also be acknowledged within P100's
# retry horizon (p100_lost_check, lib.sh: P100 stops retrying two minutes
# after the first attempt).
# FAILOVER_MODES="sync" runs one (" ": none, only the read-only part). Figures are printed as "figures:" lines:
# failover gap (seconds answered from the spool), deliveries lost per mode.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=deploy/pg-local.sh
source "$TEST_KYCD_SRC/deploy/pg-local.sh"
# shellcheck source=tests/e2e/load.sh
source "$(dirname "${BASH_SOURCE[0]}")/load.sh"

MODES=${FAILOVER_MODES:-sync async}
T_START=$SECONDS

# primary_sql SQL: on the primary's maintenance database.
primary_sql() { timeout 30 psql "$PRIV_PG" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }

# standby_make: a streaming standby of the private cluster (PRIV_DIR), in a
# pg-local folder of its own on a free port; sets STBY_DIR, STBY_PORT, STBY_PG.
standby_make() {
  STBY_DIR=$(mktemp -d /tmp/kycd-pg.XXXXXX) || e2e_abort "mktemp"
  chmod 755 "$STBY_DIR"
  : >"$STBY_DIR/.pg-local"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$STBY_DIR"; fi
  E2E_PG_DIRS+=("$STBY_DIR")
  STBY_PORT=$(e2e_free_port)
  _pg_local_run "$STBY_DIR" timeout 120 "$PGLOCAL_PGBIN/pg_basebackup" -D "$STBY_DIR/data" \
    -h 127.0.0.1 -p "$PRIM_PORT" -U postgres -X stream -R -c fast --no-sync \
    >"$E2E_TMP/basebackup.log" 2>&1 || { cat "$E2E_TMP/basebackup.log"; e2e_abort "pg_basebackup failed"; }
  # The copy carries the primary's pg-local.conf (its port and socket folder).
  _pg_local_write_conf "$STBY_DIR" "$STBY_PORT" || e2e_abort "cannot configure the standby"
  pg_local_start_server_only "$STBY_DIR" >/dev/null || e2e_abort "cannot start the standby"
  STBY_PG="host=127.0.0.1 port=$STBY_PORT user=postgres dbname=postgres"
  echo "standby $STBY_DIR ($STBY_PG)"
}

# repl_is STATE: the primary's one standby is in STATE (streaming, sync).
repl_is() {
  local q="SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
  [ "$1" = sync ] && q="SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'"
  [ "$(primary_sql "$q" 2>/dev/null)" = 1 ]
}
standby_has_schema() {
  [ "$(timeout 10 psql "$STBY_PG dbname=$dbname" -XAtq -c \
    "SELECT count(*) FROM pg_tables WHERE schemaname = 'kyc' AND tablename = 'webhook_events'" 2>/dev/null)" = 1 ]
}
# spool_holds N: the depth poller's last sample is at least N.
spool_holds() { [ "$(tail -n 1 "$DEPTH_LOG" | cut -d' ' -f2)" -ge "$1" ] 2>/dev/null; }

for mode in $MODES; do
  case $mode in sync | async) ;; *) e2e_abort "FAILOVER_MODES: unknown mode '$mode' (sync, async)" ;; esac
  e2e_section "failover, $mode replication"
  t_mode=$SECONDS
  e2e_private_pg
  PRIM_DIR=$PRIV_DIR
  PRIM_PORT=$(cat "$PRIM_DIR/port")
  dbname=$(sed -n 's/.*dbname=\([^ ]*\).*/\1/p' <<<"$E2E_DB_URL")
  standby_make
  if e2e_wait_cmd 30 repl_is streaming; then pass "$mode: the standby streams from the primary"; else fail "$mode: the standby streams from the primary"; fi
  if [ "$mode" = sync ]; then
    primary_sql "ALTER SYSTEM SET synchronous_standby_names = '*'" >/dev/null
    primary_sql "SELECT pg_reload_conf()" >/dev/null
    if e2e_wait_cmd 30 repl_is sync; then pass "$mode: the standby is synchronous"; else fail "$mode: the standby is synchronous"; fi
  fi
  echo "$mode: primary synchronous_commit=$(primary_sql 'SHOW synchronous_commit')" \
    "synchronous_standby_names='$(primary_sql 'SHOW synchronous_standby_names')'" \
    "replication=$(primary_sql "SELECT string_agg(sync_state, ',') FROM pg_stat_replication")"

  # kycd, psql and the checker all follow the primary through libpq's
  # multi-host conninfo.
  E2E_DB_URL="host=127.0.0.1,127.0.0.1 port=$PRIM_PORT,$STBY_PORT user=postgres dbname=$dbname target_session_attrs=read-write"
  export E2E_DB_URL
  SPOOL=$E2E_TMP/spool-$mode
  e2e_start_kycd KYCD_SPOOL_DIR="$SPOOL" KYCD_DB_TIMEOUT=2s KYCD_LOG_LEVEL=info
  LOG=$E2E_KYCD_LOG
  if e2e_wait_cmd 30 standby_has_schema; then pass "$mode: the migrated schema reached the standby"; else fail "$mode: the migrated schema reached the standby"; fi

  depth_poll_start
  lg_start "fo$mode" 4 100 --think-ms 15
  lg_wait_progress 30 30
  acked_at_stop=$(lg_acked)
  assert_eq 1 "$(lg_running && echo 1 || echo 0)" \
    "$mode: the loadgen is still running when the primary stops ($acked_at_stop of $LG_TOTAL acknowledged)"
  t_stop=$(e2e_ms)
  _pg_local_run "$PRIM_DIR" "$PGLOCAL_PGBIN/pg_ctl" -D "$PRIM_DIR/data" -m immediate -w -t 60 stop >/dev/null ||
    e2e_abort "cannot stop the primary"
  # The deliveries keep coming: they are answered from the spool. Promote
  # once it holds 150 (about a second of this load: a failover manager
  # takes seconds to decide), or after 20 s.
  if e2e_wait_cmd 20 spool_holds 150; then pass "$mode: deliveries go to the spool while there is no primary"; else fail "$mode: deliveries go to the spool while there is no primary"; fi
  t_promote=$(e2e_ms)
  _pg_local_run "$STBY_DIR" "$PGLOCAL_PGBIN/pg_ctl" -D "$STBY_DIR/data" -w -t 60 promote >/dev/null ||
    e2e_abort "cannot promote the standby"
  t_promoted=$(e2e_ms)
  lg_wait 120
  assert_eq 0 "$LG_RC" "$mode: the loadgen finishes (every user at step 3)"
  if wait_spool_empty 60; then pass "$mode: the spool drained into the new primary"; else fail "$mode: the spool still holds $LAST_DEPTH records"; fi
  peak=$(depth_poll_stop)
  # The gap: from the primary's stop until the first sample of an empty
  # spool after it had filled (while it holds anything every delivery is
  # answered from it); the poller samples every 0.2 s.
  t_empty=$(awk -v t="$t_stop" '$1 >= t && $2 > 0 {seen = 1} seen && $2 == 0 {printf "%.0f", $1; exit}' "$DEPTH_LOG")
  [ -n "$t_empty" ] || t_empty=$(e2e_ms)
  gap_ms=$((t_empty - t_stop))
  gap=$(awk -v m="$gap_ms" 'BEGIN {printf "%.1f", m / 1000}')
  assert_eq 0 "$(lg_num 5xx)" "$mode: no 5xx answer during the switch"
  assert_eq 0 "$(lg_num 503)" "$mode: no 503 (the spool had room)"
  assert_eq 1 "$(grep -c 'database unavailable: spooling deliveries' "$LOG" | awk '{print ($1 > 0)}')" \
    "$mode: kycd logged that it spooled during the switch"
  assert_eq "$STBY_PORT" "$(sql 'SELECT inet_server_port()')" "$mode: the writable server is now the standby"
  assert_eq f "$(sql 'SELECT pg_is_in_recovery()')" "$mode: the new primary is out of recovery"

  CHECK_ACKS_MISSING=
  if [ "$mode" = async ]; then CHECK_ACKS_LOSS_OK=1; else CHECK_ACKS_LOSS_OK=0; fi
  check_acks "fo$mode" "$LG_ACKS" "$LG_TOTAL"
  CHECK_ACKS_LOSS_OK=0
  assert_match "$CHECK_ACKS_MISSING" '^[0-9]+$' "$mode: the deliveries lost are counted ($CHECK_ACKS_MISSING)"
  if [ "$mode" = sync ]; then
    assert_eq 0 "$CHECK_ACKS_MISSING" "$mode: synchronous replication lost nothing"
  fi
  # P100 gives up two minutes after a delivery's first attempt: the switch
  # (answered from the spool) must not hold any delivery that long, in
  # either mode (what async replication loses was acknowledged in time;
  # that loss is the checker's count above, not this one).
  p100_lost_check 0 "$mode: P100's horizon" "$LG_TIMES"
  no_dead_letters "$LOG"
  e2e_stop_kycd
  figures "failover $mode: deliveries=$LG_TOTAL acknowledged_at_stop=$acked_at_stop" \
    "failover_gap_s=$gap (primary stopped -> spool empty on the new primary)" \
    "promote_after_ms=$((t_promote - t_stop)) promote_took_ms=$((t_promoted - t_promote))" \
    "spool_peak=$peak lost=$CHECK_ACKS_MISSING p100_lost=$P100_LOST slowest_ack_ms=$P100_SLOWEST_MS" \
    "sent=$(lg_num sent) ok=$(lg_num ok)" \
    "5xx=$(lg_num 5xx) transport_errors=$(lg_num transport_errors) mode_seconds=$((SECONDS - t_mode))"
  e2e_private_pg_drop "$STBY_DIR" "$STBY_PG"
  e2e_private_pg_drop "$PRIM_DIR" "$PRIV_PG"
done
# A server that stops taking writes under kycd's open connections (as a
# primary turned standby would, without closing them): here the config
# file's default_transaction_read_only goes on and is reloaded, which
# existing sessions take, while the database's own setting keeps new
# sessions writable. kycd must drop a connection that answers 25006
# read_only_sql_transaction and retry on a new one: the deliveries are then
# stored at once, never spooled behind a connection that can never write.
e2e_section "a server turned read-only under kycd's pooled connections"
e2e_private_pg
dbname=$(sed -n 's/.*dbname=\([^ ]*\).*/\1/p' <<<"$E2E_DB_URL")
e2e_start_kycd KYCD_SPOOL_DIR="$E2E_TMP/spool-ro" KYCD_DB_TIMEOUT=2s KYCD_LOG_LEVEL=info
LOG=$E2E_KYCD_LOG
for i in 1 2 3 4 5; do
  assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "ro-before-$i" NOT_VERIFIED PENDING)")" "before: delivery $i stored"
done
kycd_backends() { primary_sql "SELECT count(*) FROM pg_stat_activity WHERE datname = '$dbname' AND application_name = 'kycd' $1"; }
before=$(kycd_backends "")
assert_match "$before" '^[1-9][0-9]*$' "kycd holds pooled connections ($before)"
primary_sql "ALTER DATABASE \"$dbname\" SET default_transaction_read_only = off" >/dev/null
primary_sql "ALTER SYSTEM SET default_transaction_read_only = on" >/dev/null
t_switch=$(primary_sql "SELECT clock_timestamp()")
primary_sql "SELECT pg_reload_conf()" >/dev/null
# Each delivery gets 200 whichever way it went: what counts is where it went.
for i in $(seq 1 20); do
  assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "ro-after-$i" NOT_VERIFIED PENDING)")" "after: delivery $i answered 200"
done
e2e_wait_sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id LIKE 'ro-after-%'" 20 15 ||
  fail "the 20 deliveries after the switch are stored (got $E2E_SQL_LAST)"
[ "$E2E_SQL_LAST" = 20 ] && pass "the 20 deliveries after the switch are stored"
assert_eq 0 "$(grep -c 'spooling deliveries' "$LOG" || true)" "none was spooled: the read-only connections were dropped and the retry wrote"
old_left=$(kycd_backends "AND backend_start < '$t_switch'::timestamptz")
assert_eq 1 "$([ "$old_left" -lt "$before" ] && echo 1 || echo 0)" \
  "kycd replaced connections that had turned read-only ($before before, $old_left of them left)"
primary_sql "ALTER SYSTEM RESET default_transaction_read_only" >/dev/null
primary_sql "SELECT pg_reload_conf()" >/dev/null
e2e_stop_kycd
e2e_private_pg_drop

figures "failover test run time: $((SECONDS - T_START)) s"
