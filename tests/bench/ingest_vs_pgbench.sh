#!/usr/bin/env bash
# Benchmark: kycd's ingest against the database doing nothing but kycd's own
# SQL. One throwaway cluster; pgbench runs the statements kycd issues for one
# delivery (generated from the code by pgbench_sql.py), one transaction per
# delivery; kycd (real TLS, keep-alive, wrk, each request a new delivery)
# runs with group commit. Rounds alternate pgbench and kycd, at 8 and at 64
# connections, so that a noisy neighbour hits both alike. Then the spool
# replay rate: deliveries spooled while the database is down, replayed by
# `kycd spool drain`. Prints per round and a summary:
#   RESULT conns=8 pgbench_tps=... kycd_rps=... p50_ms=... p99_ms=... ratio=...
#   RESULT replay records=... seconds=... rate=...
# and checks that every 200 was stored exactly once.
#
# usage: tests/bench/ingest_vs_pgbench.sh [BUILD_DIR]
# env: BENCH_SECONDS (10 per round), BENCH_ROUNDS (2 per side and size),
#      BENCH_CONNS ("8 64"), BENCH_REPLAY (20000 records; 0: skip),
#      BENCH_KYCD_ENV (extra KYCD_*=... for kycd serve)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); top=$(cd "$here/../.." && pwd)
build=${1:-$top/build/ci}
kycd=${BENCH_KYCD:-$build/kycd}
secs=${BENCH_SECONDS:-10}; rounds=${BENCH_ROUNDS:-2}; sizes=${BENCH_CONNS:-8 64}
replay_n=${BENCH_REPLAY:-20000}
pgbin=${PGLOCAL_PGBIN:-/usr/lib/postgresql/15/bin}
bench_prefix="kycd-benchpg"
# shellcheck source=SCRIPTDIR/lib.sh
source "$here/lib.sh"
start_kycd
sql() { psql "$PGLOCAL_CONNINFO" -XAtqc "$1"; }

acked=0
declare -A tps_sum rps_sum p50_sum p99_sum
for c in $sizes; do tps_sum[$c]=0; rps_sum[$c]=0; p50_sum[$c]=0; p99_sum[$c]=0; done
for r in $(seq 1 "$rounds"); do
  for c in $sizes; do
    t=$("$pgbin/pgbench" -n -M prepared -c "$c" -j 2 -T "$secs" -f "$work/delivery.sql" "$PGLOCAL_CONNINFO" 2>&1 |
        sed -nE 's/^tps = ([0-9.]+) .*/\1/p')
    out=$(BENCH_TOKEN=$token wrk -t2 -c"$c" -d"${secs}s" --latency -s "$here/ingest.lua" "https://127.0.0.1:$port")
    line=$(grep '^BENCH' <<<"$out")
    req=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line"); bad=$(sed -E 's/.*errors_status=([0-9]+).*/\1/' <<<"$line")
    rps=$(sed -E 's/.* rps=([0-9]+).*/\1/' <<<"$line")
    p50=$(sed -E 's/.*p50_ms=([0-9.]+).*/\1/' <<<"$line"); p99=$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$line")
    acked=$((acked + req - bad))
    echo "ROUND $r conns=$c pgbench_tps=${t%.*} kycd_rps=$rps p50_ms=$p50 p99_ms=$p99 errors_status=$bad"
    tps_sum[$c]=$(awk -v a="${tps_sum[$c]}" -v b="$t" 'BEGIN{print a+b}')
    rps_sum[$c]=$((rps_sum[$c] + rps))
    p50_sum[$c]=$(awk -v a="${p50_sum[$c]}" -v b="$p50" 'BEGIN{print a+b}')
    p99_sum[$c]=$(awk -v a="${p99_sum[$c]}" -v b="$p99" 'BEGIN{print a+b}')
  done
done
for c in $sizes; do
  awk -v c="$c" -v t="${tps_sum[$c]}" -v k="${rps_sum[$c]}" -v p50="${p50_sum[$c]}" -v p99="${p99_sum[$c]}" -v n="$rounds" \
    'BEGIN{printf "RESULT conns=%d pgbench_tps=%.0f kycd_rps=%.0f p50_ms=%.2f p99_ms=%.2f ratio=%.2f\n", c, t/n, k/n, p50/n, p99/n, k/t}'
done

# Every 200 stored exactly once: no body twice (each request is a new body),
# and at least as many events as 200s (wrk does not count the requests still
# in flight when it stops; kycd may have stored those).
stored=$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id LIKE 'bench-%' AND external_user_id NOT LIKE 'bench-pgb-%'")
twice=$(sql "SELECT count(*) FROM (SELECT body::text FROM kyc.webhook_events WHERE external_user_id NOT LIKE 'bench-pgb-%' GROUP BY 1 HAVING count(*) > 1) x")
spooled_in_rounds=$(grep -c 'spooling deliveries' "$work/kycd.log" || true)
[ "$spooled_in_rounds" = 0 ] || { echo "bench: kycd spooled during the rounds:"; grep -m3 'spooling' "$work/kycd.log"; }
echo "bench: kycd acknowledged $acked, stored $stored, bodies stored twice: $twice"
if [ "$stored" -lt "$acked" ] || [ "$twice" != 0 ]; then echo "bench: FAIL: a 200 not stored exactly once" >&2; exit 1; fi

# The spool replay: the database away, deliveries spooled (fsynced), kycd
# stopped, the database back, then `kycd spool drain` replays them all.
if [ "$replay_n" -gt 0 ]; then
  before=$(sql "SELECT count(*) FROM kyc.webhook_events")
  pg_local_stop_server_only "$work/pg" >/dev/null
  spooled=0
  while [ "$spooled" -lt "$replay_n" ]; do
    out=$(BENCH_TOKEN=$token wrk -t2 -c8 -d2s -s "$here/ingest.lua" "https://127.0.0.1:$port")
    s=$(grep '^BENCH' <<<"$out" | sed -E 's/.*requests=([0-9]+).*/\1/')
    spooled=$((spooled + s))
  done
  stop_kycd
  records=$(env -i "${envs[@]}" "$kycd" spool status 2>/dev/null | sed -nE 's/.*: ([0-9]+) records.*/\1/p')
  pg_local_start_server_only "$work/pg" >/dev/null
  t0=$(date +%s%N)
  env -i "${envs[@]}" "$kycd" spool drain >"$work/drain.out" 2>&1 || { cat "$work/drain.out"; exit 1; }
  ns=$(( $(date +%s%N) - t0 ))
  after=$(sql "SELECT count(*) FROM kyc.webhook_events")
  awk -v n="$records" -v ns="$ns" 'BEGIN{printf "RESULT replay records=%d seconds=%.2f rate=%.0f\n", n, ns/1e9, n/(ns/1e9)}'
  if [ $((after - before)) -lt "$records" ]; then
    echo "bench: FAIL: $records spooled but $((after - before)) replayed" >&2; exit 1
  fi
fi
echo "bench: ok"
