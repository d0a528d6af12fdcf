#!/usr/bin/env bash
# Benchmark: kycd's insert SQL (one delivery of a new user, as
# pgbench_sql.py generates it from the code) against the schema before
# partitioning (version 6: sql/001-006) and after it (version 7, kycd
# migrate), in two databases of one throwaway cluster. Rounds alternate the
# two, so that a noisy neighbour hits both alike. Both start from the same
# history (BENCH_PRELOAD events, partitions_fill.sql). Prints per round and:
#   RESULT v6_tps=... v7_tps=... ratio=...   (v7 / v6, medians)
# Then EXPLAIN of the main queries on the partitioned schema (README).
#
# usage: tests/bench/partitions.sh [BUILD_DIR]
# env: BENCH_SECONDS (10 per round), BENCH_ROUNDS (3 per schema),
#      BENCH_CONNS (8), BENCH_PRELOAD (100000)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); top=$(cd "$here/../.." && pwd)
build=${1:-$top/build/ci}
kycd=${BENCH_KYCD:-$build/kycd}
secs=${BENCH_SECONDS:-10}; rounds=${BENCH_ROUNDS:-3}; conns=${BENCH_CONNS:-8}
preload=${BENCH_PRELOAD:-100000}
pgbin=${PGLOCAL_PGBIN:-/usr/lib/postgresql/15/bin}
[ -x "$pgbin/pgbench" ] || { echo "bench: $pgbin/pgbench missing (postgresql-contrib?)" >&2; exit 1; }
# shellcheck source=SCRIPTDIR/../../deploy/pg-local.sh
source "$top/deploy/pg-local.sh"
work=$(mktemp -d /tmp/kycd-benchpart.XXXXXX); chmod 755 "$work"
cleanup() { pg_local_stop "$work/pg" >/dev/null 2>&1; rm -rf "$work"; }
trap cleanup EXIT INT TERM
pg_local_start "$work/pg" >/dev/null
base=$PGLOCAL_CONNINFO
db() { printf '%s' "$base" | sed -E "s/dbname=[^ ]*/dbname=$1/"; }
python3 "$here/pgbench_sql.py" "$top" > "$work/delivery.sql"
for v in v6 v7; do
  psql "$base" -XAtq -c "CREATE DATABASE bench_$v" >/dev/null
  url=$(db "bench_$v")
  psql "$url" -XAtq -v ON_ERROR_STOP=1 -c "CREATE SCHEMA kyc; CREATE TABLE kyc.schema_migrations (version integer PRIMARY KEY, name text NOT NULL, sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT clock_timestamp())"
  for f in "$top"/sql/00[1-6]_*.sql; do
    b=$(basename "$f" .sql)
    psql "$url" -XAtq -v ON_ERROR_STOP=1 -1 -f "$f" >/dev/null
    psql "$url" -XAtq -c "INSERT INTO kyc.schema_migrations VALUES (${b%%_*}, '$b', '$(sha256sum "$f" | cut -d' ' -f1)')"
  done
  # P100's words from kycd's one table (tests/tools/p100_vocab.py refuses others).
  psql "$url" -XAtq -v ON_ERROR_STOP=1 -v events="$preload" \
    -v verified="$(python3 "$top/tests/tools/p100_vocab.py" get verificationStatus "$kycd" | grep -x VERIFIED)" \
    -v successful="$(python3 "$top/tests/tools/p100_vocab.py" get attemptStatus "$kycd" | grep -x SUCCESSFUL)" \
    -f "$top/tests/e2e/partitions_fill.sql" >/dev/null
  if [ "$v" = v7 ]; then
    t0=$(date +%s%N)
    env -i PATH="$PATH" KYCD_DATABASE_URL="$url" "$kycd" migrate >/dev/null
    echo "RESULT conversion events=$preload ms=$(( ($(date +%s%N) - t0) / 1000000 ))"
  fi
  psql "$url" -XAtq -c "VACUUM ANALYZE" >/dev/null
done
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
: >"$work/v6"; : >"$work/v7"
for r in $(seq 1 "$rounds"); do
  for v in v6 v7; do
    t=$("$pgbin/pgbench" -n -M prepared -c "$conns" -j 2 -T "$secs" -f "$work/delivery.sql" "$(db "bench_$v")" 2>&1 |
        awk '/^tps = / { print int($3) }')
    echo "$t" >>"$work/$v"
    echo "ROUND $r schema=$v conns=$conns tps=$t"
  done
done
a=$(median <"$work/v6"); b=$(median <"$work/v7")
echo "RESULT v6_tps=$a v7_tps=$b ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')"
url=$(db bench_v7)
for q in "SELECT * FROM kyc.current_status WHERE external_user_id = 'fill-7'" \
         "SELECT * FROM kyc.held_events WHERE received_at > now() - interval '1 day'" \
         "SELECT * FROM kyc.webhook_events WHERE external_user_id = 'fill-7' ORDER BY received_at DESC LIMIT 20" \
         "SELECT * FROM kyc.time_to_verified WHERE external_user_id = 'fill-7'" \
         "SELECT * FROM kyc.daily_funnel WHERE day >= current_date - 7"; do
  echo "EXPLAIN $q"
  psql "$url" -XAtq -c "EXPLAIN (COSTS OFF) $q" | sed 's/^/  /'
done
