#!/usr/bin/env bash
# Benchmark: how fast the reconciler drains a backlog. N pending users in a
# real (private, throwaway) PostgreSQL, P100 replaced by p100-sim answering
# every Get KYC Status in LATENCY ms, and `kycd reconcile --once` with a
# rate limit of RATE calls/s. The backlog should drain in about N/RATE
# seconds, not N x latency. Prints the figures; fails if any user is left
# unconverged or was checked twice.
#
# usage: tests/bench/reconcile.sh [BUILD_DIR]
# env: BENCH_USERS (2000) BENCH_RATE (200) BENCH_LATENCY_MS (50)
#      BENCH_CONCURRENCY (16) BENCH_LIMIT_S (fail above this; default none)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); top=$(cd "$here/../.." && pwd)
build=${1:-$top/build/ci}
kycd=${BENCH_KYCD:-$build/kycd}; simbin=${BENCH_SIM:-$build/tests/p100-sim}
users=${BENCH_USERS:-2000}; rate=${BENCH_RATE:-200}; latency=${BENCH_LATENCY_MS:-50}
conc=${BENCH_CONCURRENCY:-16}; limit=${BENCH_LIMIT_S:-}
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
  --key "$work/certs/server.key" --api-key-file "$work/apikey" --threads 64 \
  >"$work/sim.log" 2>&1 & sim_pid=$!
for _ in $(seq 50); do grep -q 'listening' "$work/sim.log" && break; sleep 0.1; done
sim() { curl -sf --cacert "$work/certs/ca.pem" "https://localhost:$port$1" -d "$2" >/dev/null; }
sim /_sim/users "{\"prefix\":\"bench-\",\"count\":$users,\"verificationStatus\":\"VERIFIED\",\"attemptStatus\":\"SUCCESSFUL\"}"
sim /_sim/faults "{\"latency_ms\":$latency}"

envs=(PATH="$PATH" KYCD_DATABASE_URL="$PGLOCAL_CONNINFO" KYCD_P100_BASE_URL="https://localhost:$port"
  KYCD_P100_API_KEY_FILE="$work/apikey" KYCD_P100_CA_FILE="$work/certs/ca.pem"
  KYCD_P100_RATE="$rate" KYCD_P100_CONCURRENCY="$conc" KYCD_PENDING_AFTER=1m KYCD_LOG_LEVEL=info)
env -i "${envs[@]}" "$kycd" migrate >/dev/null 2>&1
psql "$PGLOCAL_CONNINFO" -Xq -c "INSERT INTO kyc.verifications (external_user_id, source,
  verification_status, attempt_status, updated_at, first_seen_at)
  SELECT 'bench-' || g, 'webhook', 'NOT_VERIFIED', 'VERIFICATION', now() - interval '1 hour',
         now() - interval '1 hour' FROM generate_series(0, $users - 1) g"

t0=$(date +%s%N)
env -i "${envs[@]}" "$kycd" reconcile --once >"$work/out" 2>"$work/log"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
q() { psql "$PGLOCAL_CONNINFO" -XAtqc "$1"; }
converged=$(q "SELECT count(*) FROM kyc.verifications WHERE attempt_status = 'SUCCESSFUL' AND source = 'reconciler'")
checks=$(q "SELECT count(*) FROM kyc.status_checks")
twice=$(q "SELECT count(*) FROM (SELECT external_user_id FROM kyc.status_checks GROUP BY 1 HAVING count(*) > 1) s")
p50=$(q "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms)::numeric, 1) FROM kyc.status_checks")
ideal=$(( users * 1000 / rate ))
echo "BENCH reconcile users=$users rate=$rate concurrency=$conc sim_latency_ms=$latency elapsed_ms=$ms ideal_ms=$ideal (N/R) serial_ms=$(( users * latency )) (N x latency) converged=$converged checks=$checks checked_twice=$twice call_p50_ms=$p50"
cat "$work/out"
if [ "$converged" != "$users" ] || [ "$twice" != 0 ]; then echo "bench: FAIL" >&2; tail -5 "$work/log" >&2; exit 1; fi
if [ -n "$limit" ] && [ "$ms" -gt $(( limit * 1000 )) ]; then echo "bench: FAIL: over ${limit}s" >&2; exit 1; fi
echo "bench: ok"
