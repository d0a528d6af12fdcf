#!/usr/bin/env bash
# Benchmark: the analysts' queries at a large partner's scale. A throwaway
# cluster, a database migrated by the real kycd, its monthly partitions
# made by kyc.create_partition / kyc.ensure_partitions, and a history made
# in SQL (tests/bench/analysts_seed.sql: USERS users, about 5 webhooks
# each, over BENCH_MONTHS months; P100's words from kycd's one table).
# Then every view of schema kyc (SELECT *) and every example query of
# docs/analysts.md and docs/analysts-schema.md, once each under EXPLAIN
# ANALYZE (tests/bench/analysts_time.py), as a table: query, rows, ms, the
# plan's top node and biggest scan. Prints:
#   RESULT seed users=... events=... changes=... checks=... s=... bytes=...
#   RESULT over_1s=N of M
#
# usage: tests/bench/analysts.sh [USERS] [BUILD_DIR]     (USERS: 10000000)
# env: BENCH_MONTHS (24), BENCH_TIMEOUT (seconds per query, 120),
#      BENCH_DIR (keep the cluster there; a second run with the same
#      BENCH_DIR and USERS only times the queries again)
# Needs about 1 KB of disk per event, indexes and the other tables included (full scale:
# about 50 GB under /tmp; 100,000 users: 501 MB). Run it under `nice -n 19` on a shared machine.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); top=$(cd "$here/../.." && pwd)
users=${1:-10000000}
build=${2:-$top/build/ci}
kycd=${BENCH_KYCD:-$build/kycd}
months=${BENCH_MONTHS:-24}
timeout_s=${BENCH_TIMEOUT:-120}
# shellcheck source=SCRIPTDIR/../../deploy/pg-local.sh
source "$top/deploy/pg-local.sh"
if [ -n "${BENCH_DIR:-}" ]; then
  work=$BENCH_DIR; mkdir -p "$work"; chmod 755 "$work"
  trap 'pg_local_stop_server_only "$work/pg" >/dev/null 2>&1 || true' EXIT INT TERM
else
  work=$(mktemp -d /tmp/kycd-benchanalysts.XXXXXX); chmod 755 "$work"
  trap 'pg_local_stop "$work/pg" >/dev/null 2>&1; rm -rf "$work"' EXIT INT TERM
fi
if [ -f "$work/pg/data/PG_VERSION" ]; then
  pg_local_start_server_only "$work/pg" >/dev/null
else
  pg_local_start "$work/pg" >/dev/null
  # A database server of its own on this machine: memory for sorts and
  # hashes, the default parallelism (2 workers: 2 cores), no checkpoint
  # storm while seeding. Durability settings keep their defaults.
  psql "$PGLOCAL_CONNINFO" -Xq -c "ALTER SYSTEM SET shared_buffers = '2GB'" \
    -c "ALTER SYSTEM SET work_mem = '64MB'" -c "ALTER SYSTEM SET maintenance_work_mem = '1GB'" \
    -c "ALTER SYSTEM SET effective_cache_size = '8GB'" -c "ALTER SYSTEM SET max_wal_size = '16GB'" \
    -c "ALTER SYSTEM SET random_page_cost = 1.1" >/dev/null
  pg_local_restart "$work/pg" >/dev/null
fi
url=$PGLOCAL_CONNINFO
seeded=$(psql "$url" -XAtq -c "SELECT to_regclass('kyc.verifications') IS NOT NULL AND (SELECT count(*) FROM kyc.verifications) = $users" 2>/dev/null || echo f)
if [ "$seeded" != t ]; then
  env -i PATH="$PATH" KYCD_DATABASE_URL="$url" "$kycd" migrate >/dev/null 2>&1
  word() { python3 "$top/tests/tools/p100_vocab.py" get "$1" "$kycd" | grep -x "$2"; }
  t0=$(date +%s)
  psql "$url" -XAtq -v ON_ERROR_STOP=1 -v users="$users" -v months="$months" \
    -v nv="$(word verificationStatus NOT_VERIFIED)" -v verified="$(word verificationStatus VERIFIED)" \
    -v pending="$(word attemptStatus PENDING)" -v inver="$(word attemptStatus VERIFICATION)" \
    -v ok="$(word attemptStatus SUCCESSFUL)" -v rej="$(word attemptStatus REJECTED_BY_PROVIDER)" \
    -v waiting="$(word poaVerificationStatus.status WAITING)" \
    -v approved="$(word poaVerificationStatus.status APPROVED)" -v added="$(word kycFileAdded.status ADDED)" \
    -f "$here/analysts_seed.sql" >/dev/null
  psql "$url" -XAtq -c "VACUUM ANALYZE" >/dev/null
  secs=$(( $(date +%s) - t0 ))
  psql "$url" -XAtq -F' ' -c "SELECT 'RESULT seed users=' || (SELECT count(*) FROM kyc.verifications)
      || ' events=' || (SELECT count(*) FROM kyc.webhook_events)
      || ' changes=' || (SELECT count(*) FROM kyc.status_changes)
      || ' checks=' || (SELECT count(*) FROM kyc.status_checks)
      || ' months=' || (SELECT count(DISTINCT date_trunc('month', received_at)) FROM kyc.webhook_events)
      || ' avg_body_bytes=' || (SELECT round(avg(pg_column_size(body))) FROM kyc.webhook_events)
      || ' s=$secs bytes=' || pg_database_size(current_database())"
fi
python3 "$here/analysts_time.py" "$url" "$timeout_s" "$top/docs/analysts.md" "$top/docs/analysts-schema.md"
