#!/usr/bin/env bash
# End-to-end: kycd restarted during a database outage (a watchdog, an OOM
# kill, a deploy, a node drain) still receives P100's deliveries. On a
# private cluster:
#   (a) with a spool: the database stopped, `kycd serve` starts and
#       listens; /readyz is 200 (the spool takes deliveries) and says the
#       schema is unchecked; N deliveries get 200; the database started:
#       the schema is checked, and all N are stored exactly once, in the
#       order they were answered;
#   (b) the database comes back with another schema (a kycd older than the
#       database's migrations, simulated by removing the last migration's
#       record): deliveries keep going to the spool, nothing is replayed,
#       /readyz (200: the spool has room), /status, /metrics
#       (kycd_db_schema_mismatch 1) and the log say why; once the schema is
#       right again, the spool is replayed without a restart;
#   (c) without a spool, serve still refuses to start with no database.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=40
SPOOL=$E2E_TMP/spool
metric() { admin_get /metrics >/dev/null; awk -v m="$1" '$1 == m {print $2}' "$E2E_RESP_BODY"; }
readyz_body() { admin_get /readyz >/dev/null; resp_body; } # the details are the admin's

e2e_section "(a) started while the database is down, with a spool"
e2e_private_pg
e2e_migrate
pg_local_stop_server_only "$PRIV_DIR" || e2e_abort "cannot stop the private PostgreSQL"
e2e_start_kycd --no-migrate "KYCD_SPOOL_DIR=$SPOOL" KYCD_DB_TIMEOUT=2s
assert_contains "$(cat "$E2E_KYCD_LOG")" "database unreachable at start: serving" \
  "kycd serve starts and says the database is away"
assert_eq 200 "$(get /readyz)" "/readyz 200: the spool takes deliveries"
assert_contains "$(readyz_body)" '"schema":"unchecked"' "/readyz says the schema is unchecked"
assert_eq 1 "$(metric kycd_db_schema_unchecked)" "kycd_db_schema_unchecked 1"
u=sd-$(e2e_uuid)
NV=$(p100_word verificationStatus NOT_VERIFIED)
steps=("$(p100_word attemptStatus PENDING)" "$(p100_word attemptStatus VERIFICATION)")
ok=0
for i in $(seq 1 "$N"); do
  # 4 users, each with its deliveries numbered (seq, an extra field kycd
  # keeps in the raw body): P100's order per user is what must survive
  st=$(post "$E2E_KYC_PATH" "{\"externalUserId\":\"$u-$((i % 4))\",\"verificationStatus\":\"$NV\",\"attemptStatus\":\"${steps[$(((i / 4) % 2))]}\",\"seq\":$i}")
  [ "$st" = 200 ] && ok=$((ok + 1))
done
assert_eq "$N" "$ok" "all $N deliveries answered 200 with the database down"
assert_eq 0 "$(grep -c 'status=200.*outcome=applied' "$E2E_KYCD_LOG" || true)" "none of them reached a database"
pg_local_start_server_only "$PRIV_DIR" || e2e_abort "cannot start the private PostgreSQL"
if e2e_wait_sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id LIKE '$u-%'" "$N" 30; then
  pass "the database back: all $N stored"
else
  fail "stored: $E2E_SQL_LAST of $N"
fi
assert_eq "$N" "$(sql "SELECT count(DISTINCT request_id) FROM kyc.webhook_events WHERE external_user_id LIKE '$u-%'")" \
  "each exactly once"
# Each user's deliveries in the order they were answered: the spool is
# replayed in order (ids follow it within a user; a batch may number
# different users' deliveries in any order).
assert_eq 0 "$(sql "SELECT count(*) FROM (SELECT (body->>'seq')::int - lag((body->>'seq')::int)
                      OVER (PARTITION BY external_user_id ORDER BY id) AS step
                    FROM kyc.webhook_events WHERE external_user_id LIKE '$u-%') s WHERE step <> 4")" \
  "each user's deliveries stored in the order they were answered"
assert_contains "$(cat "$E2E_KYCD_LOG")" "database answers with this kycd's schema: replaying the spool" \
  "the log says the schema was checked and the spool replayed"
assert_contains "$(readyz_body)" '"schema":"ok"' "/readyz says the schema is ok"
assert_eq 0 "$(metric kycd_db_schema_unchecked)" "kycd_db_schema_unchecked back to 0"
e2e_stop_kycd

e2e_section "(b) the database comes back with another schema"
pg_local_stop_server_only "$PRIV_DIR" || e2e_abort "cannot stop the private PostgreSQL"
e2e_start_kycd --no-migrate "KYCD_SPOOL_DIR=$SPOOL" KYCD_DB_TIMEOUT=2s
last=$(find "$TEST_KYCD_SRC/sql" -maxdepth 1 -name '[0-9]*.sql' | sort | tail -1 | xargs basename | cut -d_ -f1 | sed 's/^0*//')
pg_local_start_server_only "$PRIV_DIR" || e2e_abort "cannot start the private PostgreSQL"
# Before kycd's probe looks (it starts checking once the database answers):
saved=$(sql "DELETE FROM kyc.schema_migrations WHERE version = $last RETURNING name || '|' || sha256")
m=sm-$(e2e_uuid)
for i in 1 2 3; do
  assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "$m-$i" NOT_VERIFIED PENDING)")" "delivery $i: 200 (spooled)"
done
if e2e_wait_cmd 15 bash -c "grep -q 'database schema does not match' '$E2E_KYCD_LOG'"; then
  pass "the log says the schema does not match"
else
  fail "no schema mismatch line in the log"
fi
assert_contains "$(grep 'database schema does not match' "$E2E_KYCD_LOG" | head -1)" "run \`kycd migrate\` first" \
  "... and what to do"
assert_eq 1 "$(metric kycd_db_schema_mismatch)" "kycd_db_schema_mismatch 1 (KycdDatabaseSchemaMismatch fires)"
assert_eq 200 "$(get /readyz)" "/readyz 200: deliveries still have the spool"
assert_contains "$(readyz_body)" '"schema":"mismatch"' "/readyz says mismatch"
admin_get /status >/dev/null
have=$(sql "SELECT max(version) FROM kyc.schema_migrations")
assert_contains "$(resp_body)" "\"schema_error\":\"database schema is at version $have, this kycd needs $last" "/status says why"
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "$m-4" NOT_VERIFIED PENDING)")" "a delivery during the mismatch: 200 (spooled)"
assert_eq 0 "$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id LIKE '$m-%'")" \
  "nothing replayed into a database with another schema"
# The schema right again (as `kycd migrate` would leave it): replayed, no restart.
sql "INSERT INTO kyc.schema_migrations (version, name, sha256) VALUES ($last, '${saved%%|*}', '${saved##*|}')" >/dev/null
if e2e_wait_sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id LIKE '$m-%'" 4 30; then
  pass "the schema right again: the 4 spooled deliveries are stored, without a restart"
else
  fail "stored: $E2E_SQL_LAST of 4 after the schema was fixed"
fi
assert_eq 0 "$(metric kycd_db_schema_mismatch)" "kycd_db_schema_mismatch back to 0"
e2e_stop_kycd

e2e_section "(c) without a spool, no database means no start"
pg_local_stop_server_only "$PRIV_DIR" || e2e_abort "cannot stop the private PostgreSQL"
e2e_kycd_cmd --timeout 60 KYCD_DB_TIMEOUT=2s -- serve
assert_eq 1 "$E2E_RC" "kycd serve without a spool and without a database: exit 1"
assert_contains "$(cat "$E2E_OUT")" "database not ready" "... saying the database is not ready"
