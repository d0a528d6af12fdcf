#!/usr/bin/env bash
# Benchmark: how fast the reconciler drains a backlog. N pending users in a
# real (private, throwaway) PostgreSQL, P100 replaced by p100-sim answering
# every Get KYC Status in LATENCY ms, and `kycd reconcile --once` with a
# rate limit of RATE calls/s. The backlog should drain in about N/RATE
# seconds, not N x latency, as long as the calls in flight cover the rate
# (Little's law: concurrency >= RATE x latency). Prints the figures; fails
# if any user is left unconverged or was checked twice.
#
# With BENCH_LATENCIES (e.g. "50 300 1000") it runs each latency twice: at
# the fixed BENCH_CONCURRENCY, and at the concurrency sized for it
# (ceil(RATE x latency x 1.25) + 1, at most 512: README "Sizing the
# reconciler"), and prints the rate each reached.
#
# usage: tests/bench/reconcile.sh [BUILD_DIR]
# env: BENCH_USERS (2000) BENCH_RATE (200) BENCH_LATENCY_MS (50)
#      BENCH_CONCURRENCY (16) BENCH_LIMIT_S (fail above this; default none)
#      BENCH_LATENCIES (unset: one run at BENCH_LATENCY_MS)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); top=$(cd "$here/../.." && pwd)
build=${1:-$top/build/ci}
kycd=${BENCH_KYCD:-$build/kycd}; simbin=${BENCH_SIM:-$build/tests/p100-sim}
users=${BENCH_USERS:-2000}; rate=${BENCH_RATE:-200}; latency=${BENCH_LATENCY_MS:-50}
conc=${BENCH_CONCURRENCY:-16}; limit=${BENCH_LIMIT_S:-}; latencies=${BENCH_LATENCIES:-}
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
sim /_sim/users "{\"prefix\":\"bench-\",\"count\":$users,\"verificationStatus\":\"VERIFIED\",\"attemptStatus\":\"SUCCESSFUL\"}"

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
    KYCD_P100_RATE="$rate" KYCD_P100_CONCURRENCY="$c" KYCD_PENDING_AFTER=1m KYCD_LOG_LEVEL=info)
  env -i "${envs[@]}" "$kycd" migrate >/dev/null 2>&1
  psql "$url" -Xq -c "INSERT INTO kyc.verifications (external_user_id, source,
    verification_status, attempt_status, updated_at, first_seen_at)
    SELECT 'bench-' || g, 'webhook', 'NOT_VERIFIED', 'VERIFICATION', now() - interval '1 hour',
           now() - interval '1 hour' FROM generate_series(0, $users - 1) g"
  local t0 ms rc=0
  t0=$(date +%s%N)
  env -i "${envs[@]}" "$kycd" reconcile --once >"$work/out" 2>"$work/log" || rc=$?
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  q() { psql "$url" -XAtqc "$1"; }
  local converged checks twice p50 ideal achieved
  converged=$(q "SELECT count(*) FROM kyc.verifications WHERE attempt_status = 'SUCCESSFUL' AND source = 'reconciler'")
  checks=$(q "SELECT count(*) FROM kyc.status_checks")
  twice=$(q "SELECT count(*) FROM (SELECT external_user_id FROM kyc.status_checks GROUP BY 1 HAVING count(*) > 1) s")
  p50=$(q "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)::numeric, 1) FROM kyc.status_checks")
  ideal=$(( users * 1000 / rate ))
  achieved=$(( users * 1000 / (ms > 0 ? ms : 1) ))
  echo "BENCH reconcile users=$users rate=$rate concurrency=$c sim_latency_ms=$lat elapsed_ms=$ms ideal_ms=$ideal (N/R) serial_ms=$(( users * lat )) (N x latency) achieved_rate=$achieved little_cap=$(( c * 1000 / (lat > 0 ? lat : 1) )) converged=$converged checks=$checks checked_twice=$twice call_p50_ms=$p50 exit=$rc"
  if [ "$converged" != "$users" ] || [ "$twice" != 0 ] || [ "$rc" != 0 ]; then
    cat "$work/out"; echo "bench: FAIL" >&2; tail -5 "$work/log" >&2; return 1
  fi
  LAST_MS=$ms
}

if [ -z "$latencies" ]; then
  run "$latency" "$conc"
  cat "$work/out"
  if [ -n "$limit" ] && [ "$LAST_MS" -gt $(( limit * 1000 )) ]; then echo "bench: FAIL: over ${limit}s" >&2; exit 1; fi
else
  for lat in $latencies; do
    sized=$(awk -v r="$rate" -v l="$lat" 'BEGIN {c = r * l / 1000 * 1.25; c = (c == int(c)) ? c : int(c) + 1; c += 1; print (c > 512) ? 512 : c}')
    run "$lat" "$conc"
    if [ "$sized" != "$conc" ]; then run "$lat" "$sized"; fi
  done
fi
echo "bench: ok"
