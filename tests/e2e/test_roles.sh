#!/usr/bin/env bash
# End-to-end: kycd needs no superuser. On the shared server (TEST_PG, a
# superuser conninfo; trust authentication, so no passwords):
#   (a) a service role with NOSUPERUSER NOCREATEROLE NOCREATEDB owns a fresh
#       database; with kyc_analyst already in the cluster (it is a cluster
#       role: other databases' migrations create it), `kycd migrate` as that
#       role succeeds and `kycd serve` as that role stores webhooks;
#   (b) a login role in kyc_analyst reads kyc.webhook_events, every table and
#       every view, and can change nothing (42501 "permission denied");
#   (c) the service role itself cannot UPDATE, DELETE or TRUNCATE the
#       append-only tables (the triggers answer 42501);
# and on a private cluster, where kyc_analyst does not exist yet:
#   (d) migrating as a NOCREATEROLE owner fails cleanly (nothing half
#       applied); with CREATEROLE (still no superuser) it succeeds.
# The roles are dropped at exit, after the databases they own.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

sfx=$$_$(openssl rand -hex 4)
OWNER=kycd_owner_$sfx
ANALYST=kycd_analyst_$sfx
DB=e2e_roles_$sfx

# refused CONNINFO WHO SQL [TEXT]: SQL must fail with SQLSTATE 42501 (and
# the message must hold TEXT, default "permission denied").
refused() {
  local conn=$1 who=$2 q=$3 text=${4:-permission denied} shown
  shown=$(tr -s ' \n' ' ' <<<"$q")
  try "$conn" "$q"
  if [ "$TRY_RC" != 0 ] && [[ $TRY_OUT == *"ERROR:  42501:"* ]] && [[ $TRY_OUT == *"$text"* ]]; then
    pass "$who: refused with 42501 ($text): ${shown% }"
  else
    fail "$who: ${shown% }: expected SQLSTATE 42501 '$text', got exit $TRY_RC: $(e2e__clip "$TRY_OUT")"
  fi
}

# --- (a) the service role ------------------------------------------------------
e2e_section "(a) a service role without superuser, CREATEROLE or CREATEDB"
# kyc_analyst is a cluster role: make sure it exists, as it does once any
# database of the cluster was migrated (the same guarded block as 002).
as_super "DO \$\$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kyc_analyst') THEN
              CREATE ROLE kyc_analyst NOLOGIN;
            END IF;
          EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
          END \$\$" >/dev/null || e2e_abort "cannot make sure kyc_analyst exists"
e2e_track_role "$OWNER"
as_super "CREATE ROLE \"$OWNER\" LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS" >/dev/null ||
  e2e_abort "cannot create role $OWNER"
E2E_DBS+=("$TEST_PG|$DB")
as_super "CREATE DATABASE \"$DB\" OWNER \"$OWNER\"" >/dev/null || e2e_abort "cannot create database $DB"
SUPER_DB=$(e2e__with_db "$TEST_PG" "$DB")
E2E_DB_URL=$(with_user "$SUPER_DB" "$OWNER")
export E2E_DB_URL
assert_eq "$OWNER|f|f|f|f|f|t" \
  "$(sql "SELECT current_user, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls,
                 d.datdba = r.oid
          FROM pg_roles r, pg_database d WHERE r.rolname = current_user AND d.datname = current_database()")" \
  "kycd's conninfo connects as $OWNER: no superuser, CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS; owns the database"

e2e_kycd_cmd --timeout 60 -- migrate
assert_eq 0 "$E2E_RC" "kycd migrate as $OWNER (kyc_analyst already exists): exit 0"
[ "$E2E_RC" = 0 ] || sed 's/^/  kycd: /' "$E2E_OUT"
nmig=$(find "$TEST_KYCD_SRC/sql" -maxdepth 1 -name '[0-9]*.sql' | wc -l)
assert_eq "$nmig" "$(sql "SELECT count(*) FROM kyc.schema_migrations")" "all $nmig migrations recorded"
assert_eq "0" \
  "$(sql "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname = 'kyc' AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user)")" \
  "every relation in schema kyc is owned by $OWNER"
e2e_kycd_cmd --timeout 60 -- migrate
assert_eq 0 "$E2E_RC" "kycd migrate again as $OWNER: exit 0 (nothing to do)"

e2e_start_kycd --no-migrate
assert_eq 200 "$(get /readyz)" "kycd serve as $OWNER: /readyz 200"
u=$(e2e_uuid)
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "$u" NOT_VERIFIED PENDING)")" "a KYC webhook: 200"
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "$u" NOT_VERIFIED VERIFICATION)")" "a second KYC webhook: 200"
assert_eq 200 "$(post "$E2E_POA_PATH" "$(status_body "$u" WAITING)")" "a POA webhook: 200"
assert_eq "kyc_verification_status:applied,kyc_verification_status:applied,poa_verification_status:applied" \
  "$(sql "SELECT string_agg(kind || ':' || outcome, ',' ORDER BY id) FROM kyc.webhook_events WHERE external_user_id = '$u'")" \
  "the three deliveries are stored and applied"
assert_eq "NOT_VERIFIED|VERIFICATION|2|WAITING" \
  "$(sql "SELECT v.verification_status, v.attempt_status,
                 (SELECT count(*) FROM kyc.status_changes c WHERE c.external_user_id = v.external_user_id),
                 p.status
          FROM kyc.verifications v JOIN kyc.poa_statuses p USING (external_user_id)
          WHERE v.external_user_id = '$u'")" \
  "state, history and POA status written"
assert_eq "$OWNER" \
  "$(as_super "SELECT string_agg(DISTINCT usename::text, ',') FROM pg_stat_activity
               WHERE datname = '$DB' AND pid <> pg_backend_pid() AND backend_type = 'client backend'")" \
  "kycd's database sessions run as $OWNER"

# --- (b) the analyst -----------------------------------------------------------
e2e_section "(b) a login role in kyc_analyst"
e2e_track_role "$ANALYST"
as_super "CREATE ROLE \"$ANALYST\" LOGIN IN ROLE kyc_analyst" >/dev/null || e2e_abort "cannot create role $ANALYST"
A_URL=$(with_user "$SUPER_DB" "$ANALYST")
try "$A_URL" "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id = '$u'"
assert_eq "0|3" "$TRY_RC|$TRY_OUT" "$ANALYST reads kyc.webhook_events (the three deliveries)"
mapfile -t rels < <(sql "SELECT format('%I.%I', n.nspname, c.relname) || ':' || c.relkind::text
                         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                         WHERE n.nspname = 'kyc' AND c.relkind IN ('r', 'v', 'm', 'p') ORDER BY 1")
nviews=0
for r in "${rels[@]}"; do
  [ "${r##*:}" = v ] && nviews=$((nviews + 1))
  try "$A_URL" "SELECT count(*) >= 0 FROM ${r%:*}"
  assert_eq "0|t" "$TRY_RC|$TRY_OUT" "$ANALYST reads ${r%:*} ($([ "${r##*:}" = v ] && echo view || echo table))"
done
assert_eq 1 "$([ "${#rels[@]}" -ge 14 ] && [ "$nviews" -ge 8 ] && echo 1 || echo 0)" \
  "all of kyc was read: ${#rels[@]} relations, $nviews of them views (at least 6 tables and 8 views)"
try "$A_URL" "SELECT count(*) FROM kyc.current_status WHERE external_user_id = '$u' AND poa_status = 'WAITING' AND pending"
assert_eq "0|1" "$TRY_RC|$TRY_OUT" "$ANALYST sees the user in kyc.current_status (pending, POA WAITING)"
try "$A_URL" "SELECT count(*) FROM kyc.pending_longer_than(0) WHERE external_user_id = '$u'"
assert_eq "0|1" "$TRY_RC|$TRY_OUT" "$ANALYST runs kyc.pending_longer_than()"

before=$(sql "SELECT (SELECT count(*) FROM kyc.webhook_events) || '/' || (SELECT count(*) FROM kyc.verifications)
                     || '/' || (SELECT count(*) FROM kyc.status_changes) || '/' || (SELECT count(*) FROM kyc.poa_statuses)")
refused "$A_URL" "$ANALYST" "INSERT INTO kyc.webhook_events (kind, external_user_id, body, body_sha256, outcome, outcome_reason)
                             VALUES ('user_status', 'x', '{}', sha256('x'), 'recorded', 'recorded')"
refused "$A_URL" "$ANALYST" "UPDATE kyc.webhook_events SET outcome_reason = 'x'"
refused "$A_URL" "$ANALYST" "DELETE FROM kyc.webhook_events"
refused "$A_URL" "$ANALYST" "TRUNCATE kyc.webhook_events CASCADE"
refused "$A_URL" "$ANALYST" "INSERT INTO kyc.verifications (external_user_id, source) VALUES ('x', 'api')"
refused "$A_URL" "$ANALYST" "UPDATE kyc.verifications SET failures = failures + 1"
refused "$A_URL" "$ANALYST" "DELETE FROM kyc.verifications"
refused "$A_URL" "$ANALYST" "UPDATE kyc.status_changes SET reason = 'x'"
refused "$A_URL" "$ANALYST" "DELETE FROM kyc.status_changes"
refused "$A_URL" "$ANALYST" "INSERT INTO kyc.poa_statuses (external_user_id, status, last_event_id) VALUES ('x', 'x', 1)"
refused "$A_URL" "$ANALYST" "DELETE FROM kyc.poa_statuses"
refused "$A_URL" "$ANALYST" "INSERT INTO kyc.status_checks (external_user_id, checker, latency_ms, outcome, result)
                             VALUES ('$u', 'x', 1, 'ok', 'unchanged')"
refused "$A_URL" "$ANALYST" "UPDATE kyc.schema_migrations SET sha256 = ''"
refused "$A_URL" "$ANALYST" "CREATE TABLE kyc.x (i int)"
refused "$A_URL" "$ANALYST" "CREATE TABLE public.x (i int)"
assert_eq "$before" \
  "$(sql "SELECT (SELECT count(*) FROM kyc.webhook_events) || '/' || (SELECT count(*) FROM kyc.verifications)
                 || '/' || (SELECT count(*) FROM kyc.status_changes) || '/' || (SELECT count(*) FROM kyc.poa_statuses)")" \
  "nothing changed (events/verifications/changes/POA: $before)"

# --- (c) the service role and the append-only tables -----------------------------
e2e_section "(c) the service role cannot rewrite history"
refused "$E2E_DB_URL" "$OWNER" "UPDATE kyc.webhook_events SET outcome_reason = 'x' WHERE external_user_id = '$u'" \
  "kyc.webhook_events is append-only"
refused "$E2E_DB_URL" "$OWNER" "DELETE FROM kyc.webhook_events WHERE external_user_id = '$u'" \
  "kyc.webhook_events is append-only"
refused "$E2E_DB_URL" "$OWNER" "TRUNCATE kyc.webhook_events CASCADE" "is append-only"
refused "$E2E_DB_URL" "$OWNER" "UPDATE kyc.status_changes SET reason = 'x' WHERE external_user_id = '$u'" \
  "kyc.status_changes is append-only"
refused "$E2E_DB_URL" "$OWNER" "DELETE FROM kyc.status_changes WHERE external_user_id = '$u'" \
  "kyc.status_changes is append-only"
assert_eq "$before" \
  "$(sql "SELECT (SELECT count(*) FROM kyc.webhook_events) || '/' || (SELECT count(*) FROM kyc.verifications)
                 || '/' || (SELECT count(*) FROM kyc.status_changes) || '/' || (SELECT count(*) FROM kyc.poa_statuses)")" \
  "nothing changed"
assert_eq "0|0" "$(sql "SELECT (SELECT count(*) FROM kyc.webhook_events WHERE outcome_reason = 'x'),
                               (SELECT count(*) FROM kyc.status_changes WHERE reason = 'x')")" \
  "no event and no change was rewritten"
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "$(e2e_uuid)" NOT_VERIFIED PENDING)")" \
  "kycd still stores webhooks afterwards: 200"
e2e_stop_kycd "kycd serve as $OWNER"

# --- (d) a cluster without kyc_analyst ----------------------------------------
e2e_section "(d) a fresh cluster: creating kyc_analyst needs CREATEROLE"
e2e_private_pg
PRIV_OWNER=kycd_owner_$sfx   # a private cluster: removed whole at exit
as_super "CREATE ROLE \"$PRIV_OWNER\" LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB" "$PRIV_PG" >/dev/null ||
  e2e_abort "cannot create role $PRIV_OWNER on the private cluster"
PRIV_DB=e2e_roles_priv_$sfx
as_super "CREATE DATABASE \"$PRIV_DB\" OWNER \"$PRIV_OWNER\"" "$PRIV_PG" >/dev/null ||
  e2e_abort "cannot create database $PRIV_DB on the private cluster"
E2E_DB_URL=$(with_user "$(e2e__with_db "$PRIV_PG" "$PRIV_DB")" "$PRIV_OWNER")
assert_eq 0 "$(as_super "SELECT count(*) FROM pg_roles WHERE rolname = 'kyc_analyst'" "$PRIV_PG")" \
  "the private cluster has no kyc_analyst yet"
e2e_kycd_cmd --timeout 60 -- migrate
assert_ne 0 "$E2E_RC" "kycd migrate as a NOCREATEROLE owner without kyc_analyst: fails"
assert_contains "$(cat "$E2E_OUT")" "permission denied to create role" "the error says why"
assert_eq "1|t" \
  "$(sql "SELECT coalesce(max(version), 0), to_regclass('kyc.current_status') IS NULL FROM kyc.schema_migrations")" \
  "stopped at version 1: nothing of 002_analyst.sql half applied (no kyc.current_status)"
as_super "ALTER ROLE \"$PRIV_OWNER\" CREATEROLE" "$PRIV_PG" >/dev/null
e2e_kycd_cmd --timeout 60 -- migrate
assert_eq 0 "$E2E_RC" "with CREATEROLE (still no superuser) kycd migrate completes"
[ "$E2E_RC" = 0 ] || sed 's/^/  kycd: /' "$E2E_OUT"
assert_eq "$nmig|1" \
  "$(sql "SELECT (SELECT count(*) FROM kyc.schema_migrations), (SELECT count(*) FROM pg_roles WHERE rolname = 'kyc_analyst')")" \
  "all migrations recorded and kyc_analyst created"
