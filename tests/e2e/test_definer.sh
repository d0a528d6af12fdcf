#!/usr/bin/env bash
# kycd-test: once
# End-to-end: no SECURITY DEFINER function of schema kyc can be hijacked
# through the caller's temporary schema (sql/008_definer_search_path.sql).
# On a database owned by one role and served by another (README.md, "Two
# roles"), the serving role runs the attack of the security review:
#   pg_temp.timestamptz, a domain whose CHECK calls the attacker's own
#   function, then kyc.ensure_partitions(2), which runs as the owner;
#   (a) at schema 7 (001-007 applied, the state before the fix) the attack
#       works: the attacker's function runs as the owner and grants the
#       serving role DELETE. This proves the attack below is real;
#   (b) `kycd migrate` to the latest schema; the same attack in a new
#       session gains nothing and ensure_partitions still works;
#   (c) every SECURITY DEFINER function in kyc sets search_path to exactly
#       "pg_catalog, pg_temp" and is not executable by PUBLIC; every
#       function of kyc that sets a search_path names pg_temp last.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_two_roles def

# The serving role's grants, as README.md ("Two roles") gives them.
grant_service() {
  sql "GRANT USAGE ON SCHEMA kyc TO \"$SERVICE\";
       GRANT SELECT, INSERT ON kyc.webhook_events, kyc.status_changes, kyc.status_checks TO \"$SERVICE\";
       GRANT SELECT, INSERT, UPDATE ON kyc.verifications, kyc.poa_statuses TO \"$SERVICE\";
       GRANT SELECT ON kyc.schema_migrations TO \"$SERVICE\";
       GRANT EXECUTE ON FUNCTION kyc.ensure_partitions(integer) TO \"$SERVICE\"" >/dev/null
}

# attack: as the serving role, in one session: plant the domain and the
# function in pg_temp, call ensure_partitions, then print who ran the
# planted function (empty: nobody) and whether the serving role may DELETE.
attack() {
  try "$SERVICE_URL" "
    CREATE TEMP TABLE ran_as (who text);
    GRANT INSERT ON pg_temp.ran_as TO PUBLIC;
    CREATE FUNCTION pg_temp.grab(v pg_catalog.timestamptz) RETURNS boolean LANGUAGE plpgsql AS \$f\$
    BEGIN
      INSERT INTO pg_temp.ran_as VALUES (current_user);
      EXECUTE pg_catalog.format('GRANT DELETE ON kyc.webhook_events TO %I', session_user);
      RETURN true;
    END \$f\$;
    CREATE DOMAIN pg_temp.timestamptz AS pg_catalog.timestamptz CHECK (pg_temp.grab(VALUE));
    SELECT count(*) FROM kyc.ensure_partitions(2);
    SELECT 'ran_as=' || coalesce((SELECT string_agg(DISTINCT who, ',') FROM pg_temp.ran_as), '')
           || ' delete=' || has_table_privilege(session_user, 'kyc.webhook_events', 'DELETE');"
}

e2e_section "(a) schema 7: the attack works (the test is real)"
e2e_schema_upto 7
grant_service
attack
assert_eq 0 "$TRY_RC" "schema 7: the serving role's session runs (exit $TRY_RC)"
assert_contains "$TRY_OUT" "ran_as=$OWNER delete=true" \
  "schema 7: the planted function ran as the owner and granted the serving role DELETE"
sql "REVOKE DELETE ON kyc.webhook_events FROM \"$SERVICE\"" >/dev/null

e2e_section "(b) the latest schema: the attack gains nothing"
e2e_kycd_cmd --timeout 60 -- migrate
assert_eq 0 "$E2E_RC" "kycd migrate as the owner: exit 0"
[ "$E2E_RC" = 0 ] || sed 's/^/  kycd: /' "$E2E_OUT"
attack
assert_eq 0 "$TRY_RC" "the serving role's session runs, ensure_partitions included (exit $TRY_RC)"
assert_contains "$TRY_OUT" "ran_as= delete=false" \
  "the planted function never ran; the serving role has no DELETE"
assert_eq "f" "$(sql "SELECT has_table_privilege('$SERVICE', 'kyc.webhook_events', 'DELETE')")" \
  "seen from the owner: no DELETE for the serving role"
# The same through create_partition's other path: a missing partition is
# created (the function still works for the serving role).
month2=webhook_events_p$(date -u -d "$(date -u +%Y-%m-01) 2 month" +%Y%m)
sql "DROP TABLE kyc.$month2" >/dev/null
attack
assert_contains "$TRY_OUT" "ran_as= delete=false" "creating a missing partition: the planted function never ran"
assert_eq "kyc.$month2" "$(sql "SELECT to_regclass('kyc.$month2')")" "... and the missing partition was created"

e2e_section "(c) every SECURITY DEFINER function of kyc"
definers=$(sql "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                WHERE n.nspname = 'kyc' AND p.prosecdef")
assert_ne 0 "$definers" "kyc has SECURITY DEFINER functions to check ($definers)"
assert_eq "" "$(sql "SELECT string_agg(p.oid::regprocedure::text || ' ' || coalesce(array_to_string(p.proconfig, ';'), '(none)'), ', ')
                     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                     WHERE n.nspname = 'kyc' AND p.prosecdef
                       AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)")" \
  "every SECURITY DEFINER function sets search_path = pg_catalog, pg_temp"
assert_eq "" "$(sql "SELECT string_agg(p.oid::regprocedure::text, ', ')
                     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                     WHERE n.nspname = 'kyc' AND p.prosecdef
                       AND has_function_privilege('public', p.oid, 'EXECUTE')")" \
  "no SECURITY DEFINER function is executable by PUBLIC"
assert_eq "" "$(sql "SELECT string_agg(p.oid::regprocedure::text, ', ')
                     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,
                          unnest(p.proconfig) c
                     WHERE n.nspname = 'kyc' AND c LIKE 'search_path=%'
                       AND c NOT LIKE '%, pg_temp'")" \
  "every function of kyc that sets a search_path names pg_temp last"
