#!/usr/bin/env bash
# Benchmark: what the reconciler's count costs (kycd_reconciler_due_users,
# _flagged_users and kycd_webhooks_overdue_users, one statement every 5 s
# at most) on a large kyc.verifications: BENCH_SETTLED settled users
# (verified, some rejected) and BENCH_PENDING pending ones, half of them
# overdue, generated in SQL with generate_series in a throwaway cluster
# migrated by `kycd migrate`. The statement is the one in
# src/io/db_reconcile.c (SQL_COUNT_DUE, read from the source). Prints its
# plan (EXPLAIN ANALYZE; it must use the partial indexes, no sequential
# scan of kyc.verifications, no parallel workers), then:
#   RESULT overdue_count settled=... pending=... overdue=... median_ms=... max_ms=...
#
# usage: tests/bench/overdue_count.sh [BUILD_DIR]
# env: BENCH_SETTLED (3000000), BENCH_PENDING (10000), BENCH_RUNS (20)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); top=$(cd "$here/../.." && pwd)
build=${1:-$top/build/ci}
kycd=${BENCH_KYCD:-$build/kycd}
settled=${BENCH_SETTLED:-3000000}; pending=${BENCH_PENDING:-10000}; runs=${BENCH_RUNS:-20}
# shellcheck source=SCRIPTDIR/../../deploy/pg-local.sh
source "$top/deploy/pg-local.sh"
work=$(mktemp -d /tmp/kycd-benchoverdue.XXXXXX); chmod 755 "$work"
cleanup() { pg_local_stop "$work/pg" >/dev/null 2>&1; rm -rf "$work"; }
trap cleanup EXIT INT TERM
pg_local_start "$work/pg" >/dev/null
url=$PGLOCAL_CONNINFO
q() { psql "$url" -XAtq -v ON_ERROR_STOP=1 "$@"; }
env -i PATH="$PATH" KYCD_DATABASE_URL="$url" "$kycd" migrate >/dev/null 2>&1

# P100's words from kycd's one table (tests/tools/p100_vocab.py refuses others).
word() { python3 "$top/tests/tools/p100_vocab.py" get "$1" "$kycd" | grep -x "$2"; }
t0=$(date +%s%N)
q -v settled="$settled" -v pending="$pending" \
  -v verified="$(word verificationStatus VERIFIED)" -v not_verified="$(word verificationStatus NOT_VERIFIED)" \
  -v successful="$(word attemptStatus SUCCESSFUL)" -v rejected="$(word attemptStatus REJECTED_BY_PROVIDER)" \
  -v pend="$(word attemptStatus PENDING)" <<'SQL'
-- Settled: 90% verified, 10% rejected, over the last year.
INSERT INTO kyc.verifications (external_user_id, source, verification_status, attempt_status,
                               first_seen_at, updated_at, last_webhook_at)
SELECT 's' || g, 'webhook',
       CASE WHEN g % 10 = 0 THEN :'not_verified' ELSE :'verified' END,
       CASE WHEN g % 10 = 0 THEN :'rejected' ELSE :'successful' END,
       t, t, t
FROM generate_series(1, :settled) g,
     LATERAL (SELECT now() - (g % 525600) * interval '1 minute' AS t) x;
-- Pending: created with create-kyc (requested_at) over the last hour, so
-- about half have waited past 30 min.
INSERT INTO kyc.verifications (external_user_id, source, verification_status, attempt_status,
                               first_seen_at, updated_at, requested_at, next_check_at)
SELECT 'p' || g, 'api', :'not_verified', :'pend', t, t, t, t + interval '10 min'
FROM generate_series(1, :pending) g,
     LATERAL (SELECT now() - (g % 3600) * interval '1 second' AS t) x;
VACUUM ANALYZE kyc.verifications;
SQL
echo "seeded settled=$settled pending=$pending in $(( ($(date +%s%N) - t0) / 1000000 )) ms"

# SQL_COUNT_DUE as kycd sends it: the C string literals, joined.
stmt=$(python3 - "$top/src/io/db_reconcile.c" <<'PY'
import re, sys
src = open(sys.argv[1]).read()
body = re.search(r'static const char SQL_COUNT_DUE\[\] =(.*?);\n', src, re.S).group(1)
print(''.join(re.findall(r'"((?:[^"\\]|\\.)*)"', body)))
PY
)
pending_after_ms=600000; overdue_ms=1800000
q -c "PREPARE c(text, text) AS $stmt" -c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE c('$pending_after_ms', '$overdue_ms')" >"$work/plan"
sed 's/^/  plan: /' "$work/plan"
if grep -q 'Seq Scan on verifications' "$work/plan"; then
  echo "bench: the count reads kyc.verifications sequentially" >&2; exit 1
fi
grep -q 'verifications_due_idx' "$work/plan" || { echo "bench: verifications_due_idx unused" >&2; exit 1; }
# Parallel workers for a few thousand rows: the planner took the pending
# users for half the table (the statistics of sql/015 are missing).
if grep -q 'Gather' "$work/plan"; then
  echo "bench: the count starts parallel workers (planner's estimate of pending users?)" >&2; exit 1
fi
counts=$(q -c "PREPARE c(text, text) AS $stmt" -c "EXECUTE c('$pending_after_ms', '$overdue_ms')")
overdue=${counts##*|}
: >"$work/ms"
# One session, as the dispatcher's connection: the statement parsed and
# planned each time, as kycd sends it (PQexecParams, unnamed).
lit=${stmt//\$1/\'$pending_after_ms\'}; lit=${lit//\$2/\'$overdue_ms\'}
{ printf '%s\n' '\timing on'; for _ in $(seq 1 "$runs"); do echo "$lit;"; done; } |
  q | awk '/^Time: / { print $2 }' >"$work/ms"
median=$(sort -n "$work/ms" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
max=$(sort -n "$work/ms" | tail -1)
echo "RESULT overdue_count settled=$settled pending=$pending due|flagged|overdue=$counts overdue=$overdue median_ms=$median max_ms=$max"
