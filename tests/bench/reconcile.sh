#!/usr/bin/env bash
# Benchmark: how fast the reconciler drains a backlog. N pending users in a
# real (private, throwaway) PostgreSQL, P100 replaced by p100-sim answering
# every Get KYC Status in LATENCY ms, and `kycd reconcile --once` with a
# rate limit of RATE calls/s. The backlog should drain in about N/RATE
# seconds, not N x latency, as long as the calls in flight cover the rate
# (Little's law: concurrency >= RATE x latency). Prints the figures; fails
# if any user is left unconverged or was checked twice.
#
# With BENCH_LATENCIES (e.g. "50 300 1000 2000") it runs each latency with
# kycd's default settings (the reconciler sizes its calls in flight itself,
# p100_concurrency being only the maximum; BENCH_CONCURRENCY set: that
# value instead) and prints the goal beside each figure: the backlog
# cleared in at most 1.1 x N/R. With BENCH_DEGRADE=1 one more run starts at
# 50 ms and P100 turns to 2 s a third of the way in: the peak of calls in
# flight P100 saw must stay within the maximum.
#
# usage: tests/bench/reconcile.sh [BUILD_DIR]
# env: BENCH_USERS (2000) BENCH_RATE (200) BENCH_LATENCY_MS (50)
#      BENCH_CONCURRENCY (default: kycd's, 64) BENCH_LIMIT_S (fail above this)
#      BENCH_LATENCIES (unset: one run at BENCH_LATENCY_MS) BENCH_DEGRADE
# The issue's table: BENCH_USERS=300 BENCH_RATE=10 BENCH_LATENCIES="50 300 1000 2000"
#      BENCH_DEGRADE=1 tests/bench/reconcile.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); top=$(cd "$here/../.." && pwd)
build=${1:-$top/build/ci}
kycd=${BENCH_KYCD:-$build/kycd}; simbin=${BENCH_SIM:-$build/tests/p100-sim}
users=${BENCH_USERS:-2000}; rate=${BENCH_RATE:-200}; latency=${BENCH_LATENCY_MS:-50}
conc=${BENCH_CONCURRENCY:-}; limit=${BENCH_LIMIT_S:-}; latencies=${BENCH_LATENCIES:-}
degrade=${BENCH_DEGRADE:-}
# shellcheck source=../../deploy/pg-local.sh
source "$top/deploy/pg-local.sh"
work=$(mktemp -d /tmp/kycd-bench-rec.XXXXXX); chmod 755 "$work"
sim_pid=""
cleanup() {
  if [ -n "$sim_pid" ]; then kill "$sim_pid" 2>/dev/null; wait "$sim_pid" 2>/dev/null || true; fi
  pg_local_stop "$work/pg" >/dev/null 2>&1; rm -rf "$work"
}
trap cleanup EXIT INT TERM
pg_local_start "$work/pg" >/dev/null
bash "$top/certs/make-dev-certs.sh" "$work/certs" >/dev/null
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$work/apikey"; chmod 600 "$work/apikey"
# shellcheck source=tests/lib/ports.sh
source "$top/tests/lib/ports.sh"
port=$(kycd_free_port)
"$simbin" --listen "127.0.0.1:$port" --cert "$work/certs/server.pem" \
  --key "$work/certs/server.key" --api-key-file "$work/apikey" --threads 600 \
  >"$work/sim.log" 2>&1 & sim_pid=$!
for _ in $(seq 50); do grep -q 'listening' "$work/sim.log" && break; sleep 0.1; done
sim() { curl -sf --cacert "$work/certs/ca.pem" "https://localhost:$port$1" -d "$2" >/dev/null; }
runs=0
# run LATENCY CONCURRENCY: one pass over a fresh backlog; prints a BENCH line.
run() {
  local lat=$1 c=$2 db url
  runs=$((runs + 1)); db="bench_$runs"
  psql "$PGLOCAL_CONNINFO" -Xqc "CREATE DATABASE $db"
  url=$(printf '%s' "$PGLOCAL_CONNINFO" | sed "s/dbname=[^ ]*/dbname=$db/")
  sim /_sim/faults "{\"latency_ms\":$lat}"
  local envs=(PATH="$PATH" KYCD_DATABASE_URL="$url" KYCD_P100_BASE_URL="https://localhost:$port"
    KYCD_P100_API_KEY_FILE="$work/apikey" KYCD_P100_CA_FILE="$work/certs/ca.pem"
    KYCD_P100_RATE="$rate" KYCD_PENDING_AFTER=1m KYCD_LOG_LEVEL=info)
  if [ "$c" != default ]; then envs+=(KYCD_P100_CONCURRENCY="$c"); fi
  env -i "${envs[@]}" "$kycd" migrate >/dev/null 2>&1
  psql "$url" -Xq -c "INSERT INTO kyc.verifications (external_user_id, source,
    verification_status, attempt_status, updated_at, first_seen_at)
    SELECT 'bench-' || g, 'webhook', 'NOT_VERIFIED', 'VERIFICATION', now() - interval '1 hour',
           now() - interval '1 hour' FROM generate_series(0, $users - 1) g"
  local t0 ms rc=0 turner=""
  # A fresh P100 per run: its peak of calls in flight is this run's.
  sim /_sim/reset '{}'
  sim /_sim/users "{\"prefix\":\"bench-\",\"count\":$users,\"verificationStatus\":\"VERIFIED\",\"attemptStatus\":\"SUCCESSFUL\"}"
  sim /_sim/faults "{\"latency_ms\":$lat}"
  if [ -n "${DEGRADE_AT_MS:-}" ]; then
    ( sleep "$(awk -v m="$DEGRADE_AT_MS" 'BEGIN {print m / 1000}')"; sim /_sim/faults '{"latency_ms":2000}' ) &
    turner=$!
  fi
  t0=$(date +%s%N)
  env -i "${envs[@]}" "$kycd" reconcile --once >"$work/out" 2>"$work/log" || rc=$?
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  if [ -n "$turner" ]; then wait "$turner" 2>/dev/null || true; fi
  PEAK=$(curl -sf --cacert "$work/certs/ca.pem" "https://localhost:$port/_sim/stats" | sed -nE 's/.*"max_concurrent":([0-9]+).*/\1/p')
  q() { psql "$url" -XAtqc "$1"; }
  local converged checks twice p50 ideal achieved
  converged=$(q "SELECT count(*) FROM kyc.verifications WHERE attempt_status = 'SUCCESSFUL' AND source = 'reconciler'")
  checks=$(q "SELECT count(*) FROM kyc.status_checks")
  twice=$(q "SELECT count(*) FROM (SELECT external_user_id FROM kyc.status_checks GROUP BY 1 HAVING count(*) > 1) s")
  p50=$(q "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)::numeric, 1) FROM kyc.status_checks")
  ideal=$(( users * 1000 / rate ))
  achieved=$(( users * 1000 / (ms > 0 ? ms : 1) ))
  local cmax=${c/default/64}
  echo "BENCH reconcile users=$users rate=$rate concurrency=$c sim_latency_ms=$lat elapsed_ms=$ms ideal_ms=$ideal (N/R) serial_ms=$(( users * lat )) (N x latency) achieved_rate=$achieved little_cap=$(( cmax * 1000 / (lat > 0 ? lat : 1) )) converged=$converged checks=$checks checked_twice=$twice call_p50_ms=$p50 p100_peak_in_flight=${PEAK:-?} exit=$rc"
  echo "GOAL latency_ms=$lat elapsed/ideal=$(awk -v a="$ms" -v b="$ideal" 'BEGIN {printf "%.2f", a / b}') goal<=1.10: $(awk -v a="$ms" -v b="$ideal" 'BEGIN {print (a <= 1.1 * b) ? "met" : "NOT met"}')"
  if [ "$converged" != "$users" ] || [ "$twice" != 0 ] || [ "$rc" != 0 ]; then
    cat "$work/out"; echo "bench: FAIL" >&2; tail -5 "$work/log" >&2; return 1
  fi
  LAST_MS=$ms
}

if [ -z "$latencies" ]; then
  run "$latency" "${conc:-default}"
  cat "$work/out"
  if [ -n "$limit" ] && [ "$LAST_MS" -gt $(( limit * 1000 )) ]; then echo "bench: FAIL: over ${limit}s" >&2; exit 1; fi
else
  for lat in $latencies; do
    run "$lat" "${conc:-default}"
  done
fi
if [ -n "$degrade" ]; then
  DEGRADE_AT_MS=$(( users * 1000 / rate / 3 )) run 50 "${conc:-default}"
  max=${conc:-64}
  echo "GOAL degrade 50 ms -> 2 s: p100_peak_in_flight=$PEAK max=$max: $([ "${PEAK:-999}" -le "$max" ] && echo met || echo 'NOT met')"
fi
echo "bench: ok"
