#!/usr/bin/env bash
# Where the time of a delivery goes: CPU per delivery of kycd, of its
# PostgreSQL cluster and of the client, against pgbench running kycd's own
# per-delivery SQL (tests/bench/pgbench_sql.py), and the deliveries per
# COMMIT kycd achieved. CPU times (utime+stime from /proc, the cluster's
# exited backends through the postmaster's children times) are far less
# noisy on a shared machine than rates: compare variants with these.
# One throwaway cluster; rounds alternate pgbench and kycd at each size.
# Prints per round:
#   CPU kycd conns=8 rps=... us_per_delivery: kycd=... pg=... client=... total=... cores=... per_commit=...
#   CPU pgbench conns=8 tps=... us_per_delivery: pg=... client=... total=...
#
# usage: tests/bench/ingest_cpu.sh [BUILD_DIR]
# env: BENCH_SECONDS (5), BENCH_ROUNDS (2), BENCH_CONNS ("8 64"),
#      BENCH_KYCD_ENV (extra KYCD_*=... words for kycd serve)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); top=$(cd "$here/../.." && pwd)
build=${1:-$top/build/ci}
kycd=${BENCH_KYCD:-$build/kycd}
secs=${BENCH_SECONDS:-5}; rounds=${BENCH_ROUNDS:-2}; sizes=${BENCH_CONNS:-8 64}
pgbin=${PGLOCAL_PGBIN:-/usr/lib/postgresql/15/bin}
bench_prefix="kycd-benchcpu"
# shellcheck source=SCRIPTDIR/lib.sh
source "$here/lib.sh"
start_kycd
sql() { psql "$PGLOCAL_CONNINFO" -XAtqc "$1"; }
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() { # the postmaster, its exited children, its live children
  local pm s p; pm=$(head -1 "$work/pg/data/postmaster.pid")
  s=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat")
  for p in $(pgrep -P "$pm"); do s=$((s + $(ticks "$p"))); done
  echo "$s"
}
commits() { sql "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"; }
client_ticks() { awk '/^CLIENTCPU/{printf "%d", ($2 + $3) * '"$hz"'}' <<<"$1"; }

for _ in $(seq 1 "$rounds"); do
  for c in $sizes; do
    p0=$(pg_ticks)
    out=$(/usr/bin/time -f "CLIENTCPU %U %S" "$pgbin/pgbench" -n -M prepared -c "$c" -j 2 -T "$secs" \
            -f "$work/delivery.sql" "$PGLOCAL_CONNINFO" 2>&1)
    p1=$(pg_ticks)
    n=$(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' <<<"$out")
    tps=$(sed -nE 's/^tps = ([0-9.]+) .*/\1/p' <<<"$out")
    awk -v c="$c" -v n="$n" -v t="$tps" -v p=$((p1 - p0)) -v w="$(client_ticks "$out")" -v hz="$hz" \
      'BEGIN{u=1e6/hz; printf "CPU pgbench conns=%d tps=%.0f us_per_delivery: pg=%.0f client=%.0f total=%.0f\n", c, t, p*u/n, w*u/n, (p+w)*u/n}'
    x0=$(commits); k0=$(ticks "$pid"); p0=$(pg_ticks); t0=$(date +%s%N)
    out=$(BENCH_TOKEN=$token /usr/bin/time -f "CLIENTCPU %U %S" wrk -t2 -c"$c" -d"${secs}s" \
            -s "$here/ingest.lua" "https://127.0.0.1:$port" 2>&1)
    k1=$(ticks "$pid"); p1=$(pg_ticks); t1=$(date +%s%N); x1=$(commits)
    line=$(grep '^BENCH' <<<"$out")
    n=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line"); rps=$(sed -E 's/.* rps=([0-9]+).*/\1/' <<<"$line")
    # x1 - x0 also counts the one commit() query of x0 (autocommit)
    awk -v c="$c" -v n="$n" -v rps="$rps" -v k=$((k1 - k0)) -v p=$((p1 - p0)) -v w="$(client_ticks "$out")" \
        -v ns=$((t1 - t0)) -v x=$((x1 - x0 - 1)) -v hz="$hz" \
      'BEGIN{u=1e6/hz; printf "CPU kycd conns=%d rps=%d us_per_delivery: kycd=%.0f pg=%.0f client=%.0f total=%.0f cores=%.2f per_commit=%.2f\n", c, rps, k*u/n, p*u/n, w*u/n, (k+p+w)*u/n, (k+p+w)/hz/(ns/1e9), n/(x > 0 ? x : 1)}'
  done
done
