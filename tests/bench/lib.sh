# Shared setup of the ingest benchmarks (sourced by ingest_vs_pgbench.sh and
# ingest_cpu.sh; sets shell state, exits on failure): one throwaway cluster
# with room for the connections, development certificates, a token, the
# pgbench script of kycd's per-delivery SQL (pgbench_sql.py), kycd's
# environment, and kycd migrated. Expects here, top, kycd, sizes, pgbin and
# bench_prefix (the mktemp prefix of the work folder); defines work, pid,
# token, port, envs, stop_kycd, cleanup (trapped on exit), up, start_kycd.
# shellcheck shell=bash
# shellcheck disable=SC2154  # the expected variables above
command -v wrk >/dev/null || { echo "bench: wrk missing (apt-get install wrk)" >&2; exit 1; }
[ -x "$pgbin/pgbench" ] || { echo "bench: $pgbin/pgbench missing (postgresql-contrib?)" >&2; exit 1; }
# shellcheck source=SCRIPTDIR/../../deploy/pg-local.sh
source "$top/deploy/pg-local.sh"
work=$(mktemp -d "/tmp/$bench_prefix.XXXXXX"); chmod 755 "$work"
pid=""
stop_kycd() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true; pid=""; fi; }
cleanup() { stop_kycd; pg_local_stop "$work/pg" >/dev/null 2>&1; rm -rf "$work"; }
trap cleanup EXIT INT TERM
pg_local_start "$work/pg" >/dev/null
psql "$PGLOCAL_CONNINFO" -Xqc "ALTER SYSTEM SET max_connections = 200" >/dev/null
pg_local_restart "$work/pg" >/dev/null
bash "$top/certs/make-dev-certs.sh" "$work/certs" >/dev/null
token=bench-token-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$token" > "$work/tokens"; chmod 600 "$work/tokens"
python3 "$here/pgbench_sql.py" "$top" > "$work/delivery.sql"
port=$(( 20000 + RANDOM % 20000 ))
maxc=0; for c in $sizes; do [ "$c" -gt "$maxc" ] && maxc=$c; done
envs=(PATH="$PATH" KYCD_DATABASE_URL="$PGLOCAL_CONNINFO" KYCD_LISTEN="127.0.0.1:$port"
  KYCD_TLS_CERT="$work/certs/server.pem" KYCD_TLS_KEY="$work/certs/server.key"
  KYCD_WEBHOOK_TOKENS_FILE="$work/tokens" KYCD_THREADS=$((maxc + 8)) KYCD_DB_POOL="${BENCH_POOL:-8}"
  KYCD_LOG_LEVEL=warn KYCD_RECONCILE=off KYCD_SPOOL_DIR="$work/spool")
# BENCH_KYCD_ENV: extra KEY=VALUE words (no spaces inside a value)
read -r -a extra <<<"${BENCH_KYCD_ENV:-}"
envs+=("${extra[@]}")
env -i "${envs[@]}" "$kycd" migrate >/dev/null 2>&1
up() { curl -sf --cacert "$work/certs/ca.pem" "https://localhost:$port/healthz" >/dev/null; }
start_kycd() {
  env -i "${envs[@]}" "$kycd" serve 2>>"$work/kycd.log" >/dev/null & pid=$!
  for _ in $(seq 50); do up && break; sleep 0.1; done
  up || { cat "$work/kycd.log"; exit 1; }
}
