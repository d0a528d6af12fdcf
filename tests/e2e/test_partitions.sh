#!/usr/bin/env bash
# kycd-test: once
# End-to-end: partitioned history (sql/007_partitions.sql), on a database
# owned by a role that is not the one serving:
#   (a) a database at schema 6 filled with 100,000 events is converted by
#       `kycd migrate` (time and locks printed); rows, ids and views survive,
#       the append-only triggers still refuse UPDATE, DELETE, TRUNCATE (also
#       of one partition);
#   (b) two roles: the serving role (DML only) serves webhooks, creates
#       partitions ahead, and cannot disable triggers, drop a partition or
#       run retention; serve creates the missing partitions ahead at start;
#   (c) `kycd partitions` lists them;
#   (d) `kycd retention --dry-run` lists, `kycd retention` drops whole old
#       partitions but keeps the one a user's current state points into;
#   (e) `kycd archive` writes COPY files + manifest + SHA-256; restored into
#       a fresh database the counts match.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

EVENTS=${TEST_PARTITIONS_EVENTS:-100000}
month() { date -u -d "$(date -u +%Y-%m-01) $1 month" +%Y%m; }  # month N: YYYYMM, N from now

e2e_section "(a) converting a filled schema-6 database"
e2e_two_roles part
# Schema 6 as kycd before this version left it: the files and their records.
e2e_schema_upto 6
t0=$(e2e_ms)
timeout 300 psql "$E2E_DB_URL" -XAtq -v ON_ERROR_STOP=1 -v events="$EVENTS" \
  -v verified="$(p100_word verificationStatus VERIFIED)" -v successful="$(p100_word attemptStatus SUCCESSFUL)" \
  -f "$TEST_KYCD_SRC/tests/e2e/partitions_fill.sql" >/dev/null || e2e_abort "filling the database"
echo "filled $EVENTS events at schema 6 in $(( $(e2e_ms) - t0 )) ms"
snap="SELECT (SELECT count(*) || '/' || md5(string_agg(id || received_at::text || request_id || encode(body_sha256, 'hex'), ',' ORDER BY id)) FROM kyc.webhook_events)
      || ' ' || (SELECT count(*) || '/' || md5(string_agg(id || changed_at::text || coalesce(event_id, 0), ',' ORDER BY id)) FROM kyc.status_changes)
      || ' ' || (SELECT count(*) || '/' || md5(string_agg(id || checked_at::text, ',' ORDER BY id)) FROM kyc.status_checks)"
# kyc.daily_funnel counts cohorts since schema 12 (it counted outcome days
# too): the days users started on, and how many, are the same in both.
views="SELECT (SELECT count(*) FROM kyc.held_events) || ' ' || (SELECT count(*) || '/' || sum(started) FROM kyc.daily_funnel WHERE started > 0)
       || ' ' || (SELECT count(*) FROM kyc.time_to_verified) || ' ' || (SELECT count(*) FROM kyc.reconciler_daily)
       || ' ' || (SELECT count(*) FROM kyc.reconciler_corrections) || ' ' || (SELECT count(*) FROM kyc.current_status)"
before=$(sql "$snap")
views_before=$(sql "$views")

# The locks the conversion holds, sampled from another session while it runs.
locks=$E2E_TMP/locks
(
  end=$(( $(date +%s) + 120 ))
  while [ "$(date +%s)" -lt "$end" ] && [ ! -e "$E2E_TMP/migrated" ]; do
    timeout 10 psql "$SUPER_URL" -XAtq -c "SELECT c.relname || ' ' || l.mode FROM pg_locks l
      JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE n.nspname = 'kyc' AND l.granted AND a.application_name <> 'psql'
        AND c.relkind IN ('r', 'p')" >>"$locks" 2>/dev/null || true
    sleep 0.05
  done
) &
sampler=$!
t0=$(e2e_ms)
e2e_kycd_cmd --timeout 300 KYCD_DATABASE_URL="$OWNER_URL" -- migrate
conv_ms=$(( $(e2e_ms) - t0 ))
touch "$E2E_TMP/migrated"
wait "$sampler" || true
assert_eq 0 "$E2E_RC" "kycd migrate converts the filled database (as the owner, no superuser)"
echo "FIGURE conversion of $EVENTS events (+ $EVENTS changes, $((EVENTS / 10)) checks) to partitions: $conv_ms ms"
held=$(sort -u "$locks" | grep -E 'AccessExclusiveLock' | cut -d' ' -f1 | sort -u | tr '\n' ' ')
echo "FIGURE locks held by the conversion (ACCESS EXCLUSIVE, until commit): $held"
assert_contains "$held" "verifications" "the conversion locks kyc.verifications (its foreign keys change)"
assert_contains "$held" "webhook_events" "the conversion locks the events table"
latest=$(find "$TEST_KYCD_SRC/sql" -maxdepth 1 -name "[0-9]*.sql" | sort | tail -1 | xargs basename | cut -d_ -f1 | sed "s/^0*//")
assert_eq "$latest" "$(sql "SELECT max(version) FROM kyc.schema_migrations")" "schema is at the latest version ($latest)"
assert_eq "$before" "$(sql "$snap")" "every event, change and check kept, same ids, times and hashes"
assert_eq "$views_before" "$(sql "$views")" "the analysts' views give the same counts"
assert_eq "p" "$(sql "SELECT relkind FROM pg_class WHERE oid = 'kyc.webhook_events'::regclass")" \
  "kyc.webhook_events is partitioned"
assert_eq "15" "$(sql "SELECT count(*) FROM kyc.partitions WHERE parent = 'webhook_events'
                       AND approx_rows > 0")" "events spread over 15 monthly partitions"
assert_eq "4" "$(sql "SELECT count(*) FROM kyc.partitions WHERE to_time > date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '2 months'")" \
  "the month after next exists for all four tables (kyc.quarantine's made by migration 10)"
first_part=webhook_events_p$(month -14)
for q in "DELETE FROM kyc.webhook_events WHERE id = 1" "UPDATE kyc.status_changes SET reason = 'x' WHERE id = 1" \
         "TRUNCATE kyc.status_checks" "TRUNCATE kyc.$first_part" "DELETE FROM kyc.$first_part"; do
  try "$OWNER_URL" "$q"
  assert_contains "$TRY_OUT" "is append-only" "owner: '$q' refused by the append-only trigger"
done
nextid=$(sql "SELECT max(id) FROM kyc.webhook_events")

e2e_section "(b) two roles: the serving role has DML only"
# The grants of README.md ("Two roles").
sql "GRANT USAGE ON SCHEMA kyc TO \"$SERVICE\";
     GRANT SELECT, INSERT ON kyc.webhook_events, kyc.status_changes, kyc.status_checks, kyc.quarantine, kyc.replay_runs TO \"$SERVICE\";
     GRANT SELECT, INSERT, UPDATE ON kyc.verifications, kyc.poa_statuses TO \"$SERVICE\";
     GRANT SELECT ON kyc.schema_migrations TO \"$SERVICE\";
     GRANT EXECUTE ON FUNCTION kyc.ensure_partitions(integer) TO \"$SERVICE\"" >/dev/null
# Next month's and the one after are missing (empty, dropped by the owner).
sql "DROP TABLE kyc.webhook_events_p$(month 1), kyc.webhook_events_p$(month 2), kyc.status_checks_p$(month 2)"
for q in "ALTER TABLE kyc.webhook_events DISABLE TRIGGER ALL" "ALTER TABLE kyc.$first_part DISABLE TRIGGER USER" \
         "DROP TABLE kyc.$first_part" "ALTER TABLE kyc.webhook_events DETACH PARTITION kyc.$first_part" \
         "SELECT * FROM kyc.retention(now(), false)" "DELETE FROM kyc.webhook_events WHERE id = 1" \
         "SELECT kyc.create_partition('webhook_events', now() - interval '5 years')"; do
  try "$SERVICE_URL" "$q"
  if [ "$TRY_RC" != 0 ] && [[ $TRY_OUT == *"must be owner"* || $TRY_OUT == *"permission denied"* ]]; then
    pass "serving role: '$q' refused ($(head -1 <<<"$TRY_OUT" | cut -c1-60))"
  else
    fail "serving role: '$q' not refused: $TRY_OUT"
  fi
done
E2E_DB_URL=$SERVICE_URL
e2e_start_kycd --no-migrate
assert_contains "$(cat "$E2E_KYCD_LOG")" 'msg="partitions created" created=3' \
  "serve (serving role) created the 3 missing partitions ahead at start"
assert_eq "12" "$(as_super "SELECT count(*) FROM kyc.partitions WHERE from_time >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'" "$SUPER_URL")" \
  "the current month and the next two exist for all four tables (with kyc.quarantine)"
u=$(e2e_uuid)
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "$u" NOT_VERIFIED PENDING)")" "a webhook is accepted by the serving role"
assert_eq "webhook_events_p$(month 0)" "$(sql "SELECT tableoid::regclass FROM kyc.webhook_events WHERE external_user_id = '$u'" | sed 's/^kyc\.//')" \
  "it is stored in the current month's partition"
assert_eq 1 "$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id = '$u' AND id > $nextid")" \
  "its id continues the converted table's sequence"
# A delivery replayed from a spool older than every month lands in the
# DEFAULT partition, it is not refused (tests/integration/test_db.c replays
# one from 2023 through the write path).
e2e_stop_kycd "kycd (serving role)"
e2e_kycd_cmd KYCD_RETENTION=30d -- retention --dry-run
assert_ne 0 "$E2E_RC" "kycd retention as the serving role fails"
assert_contains "$(cat "$E2E_OUT")" "permission denied" "... with permission denied"

e2e_section "(c) kycd partitions"
E2E_DB_URL=$OWNER_URL
e2e_kycd_cmd -- partitions
assert_eq 0 "$E2E_RC" "kycd partitions exits 0"
assert_contains "$(cat "$E2E_OUT")" "partitions (54)" "lists 54 partitions (17 months x 3 tables, and kyc.quarantine's 3 since schema 10)"
assert_contains "$(cat "$E2E_OUT")" "name=status_checks_p$(month 2)" "including the month after next"
assert_contains "$(cat "$E2E_OUT")" "name=webhook_events_default  rows=0" "and the rows in the DEFAULT partitions (none)"
e2e_kycd_cmd -- partitions --create
assert_contains "$(cat "$E2E_OUT")" "created 0 partitions" "--create: nothing missing"

e2e_section "(d) retention"
# 12 months: the partitions wholly older than now - 360 days go; the stale
# user's only event (400 days old) keeps its partition.
stale_part=$(sql "SELECT tableoid::regclass FROM kyc.webhook_events WHERE external_user_id = 'fill-stale'" | sed 's/^kyc\.//')
cutoff=$(date -u -d '-360 days' +%Y-%m-%dT%H:%M:%SZ)
expect_go=$(sql "SELECT count(*) FROM kyc.partitions WHERE to_time <= '$cutoff'")
e2e_kycd_cmd KYCD_RETENTION=360d -- retention --dry-run
assert_eq 0 "$E2E_RC" "kycd retention --dry-run exits 0"
assert_contains "$(cat "$E2E_OUT")" "name=$stale_part " "dry run lists $stale_part"
assert_eq 1 "$(grep -c "name=$stale_part .*pointed_by=1 action=keep" "$E2E_OUT")" "... kept: the stale user's current state points into it"
assert_eq "$((expect_go - 1))" "$(grep -c 'action=would_drop' "$E2E_OUT")" "the other $((expect_go - 1)) old partitions would go"
assert_eq 54 "$(sql 'SELECT count(*) FROM kyc.partitions WHERE from_time IS NOT NULL')" "a dry run drops nothing"
e2e_kycd_cmd KYCD_RETENTION=0 -- retention
assert_contains "$(cat "$E2E_OUT")" "keep everything" "retention 0 (the default) drops nothing"

e2e_section "(e) archive, then drop, then restore"
# Never over an existing file, nor through a symlink planted in its place.
trap_dir=$E2E_TMP/archive-trap
mkdir -p "$trap_dir"
echo "precious" >"$E2E_TMP/victim"
ln -s "$E2E_TMP/victim" "$trap_dir/manifest.tsv"
e2e_kycd_cmd --timeout 120 -- archive --before "$cutoff" --to "$trap_dir"
assert_ne 0 "$E2E_RC" "kycd archive into a folder whose manifest.tsv is a symlink fails"
assert_contains "$(cat "$E2E_OUT")" "never overwrites" "... and says why"
assert_eq "precious" "$(cat "$E2E_TMP/victim")" "the symlink's target is untouched"
assert_eq 0 "$(find "$trap_dir" -name '*.copy.gz' | wc -l)" "no partition was copied before the refusal"
arch=$E2E_TMP/archive
e2e_kycd_cmd --timeout 120 -- archive --before "$cutoff" --to "$arch"
assert_eq 0 "$E2E_RC" "kycd archive exits 0"
assert_eq "$expect_go" "$(tail -n +2 "$arch/manifest.tsv" | wc -l)" "the manifest lists the $expect_go partitions"
if (cd "$arch" && sha256sum -c --quiet SHA256SUMS); then pass "SHA256SUMS verifies"; else fail "SHA256SUMS does not verify"; fi
archived_events=$(sql "SELECT count(*) FROM kyc.webhook_events WHERE received_at < (SELECT max(to_time) FROM kyc.partitions WHERE to_time <= '$cutoff')")
e2e_kycd_cmd KYCD_RETENTION=360d -- retention
assert_eq 0 "$E2E_RC" "kycd retention (owner) exits 0"
assert_eq "$((expect_go - 1))" "$(grep -c 'action=dropped' "$E2E_OUT")" "drops the $((expect_go - 1)) partitions"
assert_eq "$((54 - expect_go + 1))" "$(sql 'SELECT count(*) FROM kyc.partitions WHERE from_time IS NOT NULL')" "they are gone"
assert_eq 4 "$(sql "SELECT count(*) FROM kyc.partitions WHERE name LIKE '%_default'")" "the DEFAULT partitions stay"
assert_eq 1 "$(sql "SELECT count(*) FROM kyc.verifications v JOIN kyc.webhook_events e ON e.id = v.last_event_id WHERE v.external_user_id = 'fill-stale'")" \
  "the stale user's last event is still there"
assert_eq "$(sql "$views" | cut -d' ' -f6)" "$((EVENTS / 5 + 2))" "kyc.current_status still has every user"

e2e_fresh_db
e2e_migrate
sql "CREATE SCHEMA restored;
     CREATE TABLE restored.webhook_events (LIKE kyc.webhook_events);
     CREATE TABLE restored.status_changes (LIKE kyc.status_changes);
     CREATE TABLE restored.status_checks (LIKE kyc.status_checks)"
ok=1
while IFS=$'\t' read -r file table _part _from _to _rows _sum cols; do
  [ "$file" = file ] && continue
  gunzip -c "$arch/$file" | timeout 60 psql "$E2E_DB_URL" -XAtq -v ON_ERROR_STOP=1 \
    -c "\\copy restored.$table ($cols) FROM STDIN" >/dev/null || ok=0
done <"$arch/manifest.tsv"
assert_eq 1 "$ok" "every archive file loads back with \\copy"
assert_eq "$(awk -F'\t' 'NR > 1 { n += $6 } END { print n }' "$arch/manifest.tsv")" \
  "$(sql "SELECT (SELECT count(*) FROM restored.webhook_events) + (SELECT count(*) FROM restored.status_changes) + (SELECT count(*) FROM restored.status_checks)")" \
  "restored rows = the manifest's counts"
assert_eq "$archived_events" "$(sql 'SELECT count(*) FROM restored.webhook_events')" \
  "restored events = the events the source held before the cutoff"
