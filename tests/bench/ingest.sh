#!/usr/bin/env bash
# Benchmark: webhook ingest throughput and latency of the real kycd over real
# TLS into a real (private, throwaway) PostgreSQL, with wrk as the load.
# Prints the figures; checks that every 200 became exactly one stored event.
#
# usage: tests/bench/ingest.sh [BUILD_DIR] ; env: BENCH_SECONDS (10), BENCH_CONNS (8),
# BENCH_NOTIFY (on; off: the change feed's NOTIFY trigger is disabled, to
# measure what it costs: docs/benchmarks.md, "The change feed"),
# BENCH_PERIODS (on; off: the trigger that keeps kyc.periods is disabled:
# docs/benchmarks.md, "Analysts' queries")
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); top=$(cd "$here/../.." && pwd)
build=${1:-$top/build/ci}
kycd=${BENCH_KYCD:-$build/kycd}
secs=${BENCH_SECONDS:-10}; conns=${BENCH_CONNS:-8}
command -v wrk >/dev/null || { echo "bench: wrk missing (apt-get install wrk)" >&2; exit 1; }
# shellcheck source=../../deploy/pg-local.sh
source "$top/deploy/pg-local.sh"
work=$(mktemp -d /tmp/kycd-bench.XXXXXX); chmod 755 "$work"
pid=""
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; fi
  pg_local_stop "$work/pg" >/dev/null 2>&1; rm -rf "$work"
}
trap cleanup EXIT INT TERM
pg_local_start "$work/pg" >/dev/null
bash "$top/certs/make-dev-certs.sh" "$work/certs" >/dev/null
token=bench-token-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$token" > "$work/tokens"; chmod 600 "$work/tokens"
# shellcheck source=tests/lib/ports.sh
source "$top/tests/lib/ports.sh"
port=$(kycd_free_port)
envs=(PATH="$PATH" KYCD_DATABASE_URL="$PGLOCAL_CONNINFO" KYCD_LISTEN=127.0.0.1:$port KYCD_ADMIN_LISTEN=off
  KYCD_TLS_CERT="$work/certs/server.pem" KYCD_TLS_KEY="$work/certs/server.key"
  KYCD_WEBHOOK_TOKENS_FILE="$work/tokens" KYCD_THREADS=$((conns + 8)) KYCD_DB_POOL="${BENCH_POOL:-8}"
  KYCD_LOG_LEVEL=warn KYCD_RECONCILE=off)
env -i "${envs[@]}" "$kycd" migrate >/dev/null 2>&1
notify=${BENCH_NOTIFY:-on}; periods=${BENCH_PERIODS:-on}
for off in "$notify:status_changes_notify" "$periods:status_changes_periods"; do
  [ "${off%%:*}" = off ] || continue
  psql "$PGLOCAL_CONNINFO" -XAtqc "ALTER TABLE kyc.status_changes DISABLE TRIGGER ${off#*:}" >/dev/null
done
env -i "${envs[@]}" "$kycd" serve 2>"$work/kycd.log" >/dev/null & pid=$!
up() { curl -sf --cacert "$work/certs/ca.pem" "https://localhost:$port/healthz" >/dev/null; }
for _ in $(seq 50); do up && break; sleep 0.1; done
up || { cat "$work/kycd.log"; exit 1; }
rss0=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
out=$(BENCH_TOKEN=$token wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$here/ingest.lua" "https://127.0.0.1:$port")
line=$(grep '^BENCH' <<<"$out")
hwm=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
stored=$(psql "$PGLOCAL_CONNINFO" -XAtqc "select count(*) from kyc.webhook_events")
requests=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")
errs=$(sed -E 's/.*errors_status=([0-9]+).*/\1/' <<<"$line")
echo "$line conns=$conns notify=$notify periods=$periods rss_start_kib=$rss0 rss_peak_kib=$hwm stored=$stored"
# wrk counts requests it completed; every one that got 200 must be stored once.
ok=$((requests - errs))
if [ "$stored" -lt "$ok" ]; then echo "bench: FAIL: $ok answered 200 but only $stored stored" >&2; exit 1; fi
echo "bench: ok ($ok acknowledged, $stored stored)"
