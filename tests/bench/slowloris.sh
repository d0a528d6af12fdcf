#!/usr/bin/env bash
# Benchmark: slowloris against one kycd with default settings (256 workers,
# header_timeout 5 s, slow_grace 1 s, slow_min_rate 500), as the security
# review tried it: an attacker on an allowed address keeps 1,000 TLS
# connections open, opening 200 a second (and again whatever kycd closes),
# each sending a header line every 5 s (run "headers") or whole headers and
# then a body byte every 5 s (run "body"), while real deliveries come from
# the same address; directly and through HAProxy (TCP mode, as in
# tests/e2e/test_haproxy.sh). Runs tests/e2e/test_slowloris.sh at this
# scale against a private, throwaway PostgreSQL and prints, per run, the
# real deliveries sent, answered 200 within 1 s (%), p50/p99 latency, the
# attack connections held, and the goal (>= 99 % within 1 s) beside it.
# Four runs of BENCH_SECONDS each (about 3.5 minutes in all); exits 1 if a
# run missed the goal or an assertion failed.
#
# usage: tests/bench/slowloris.sh [BUILD_DIR]
# env: BENCH_CONNS (1000) BENCH_RATE (200/s) BENCH_EVERY (5 s) BENCH_SECONDS (40)
#      BENCH_DELIVERIES (4/s) BENCH_THREADS (empty: kycd's default)
#      BENCH_KYCD_ENV (extra KYCD_X=v words, e.g. KYCD_SLOW_MIN_RATE=0: the defence off)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); top=$(cd "$here/../.." && pwd)
build=${1:-$top/build/ci}
# shellcheck source=SCRIPTDIR/../../deploy/pg-local.sh
source "$top/deploy/pg-local.sh"
work=$(mktemp -d /tmp/kycd-bench-slowloris.XXXXXX); chmod 755 "$work"
cleanup() { pg_local_stop "$work/pg" >/dev/null 2>&1; rm -rf "$work"; }
trap cleanup EXIT INT TERM
pg_local_start "$work/pg" >/dev/null
echo "bench: slowloris, ${BENCH_CONNS:-1000} connections at ${BENCH_RATE:-200}/s, a piece every" \
  "${BENCH_EVERY:-5} s, real deliveries ${BENCH_DELIVERIES:-4}/s, ${BENCH_SECONDS:-40} s a run;" \
  "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
rc=0
TEST_PG=$PGLOCAL_CONNINFO TEST_KYCD_BIN=${BENCH_KYCD:-$build/kycd} TEST_KYCD_SRC=$top \
  SLOW_CONNS=${BENCH_CONNS:-1000} SLOW_RATE=${BENCH_RATE:-200} SLOW_EVERY=${BENCH_EVERY:-5} \
  SLOW_SECONDS=${BENCH_SECONDS:-40} SLOW_DELIVERIES=${BENCH_DELIVERIES:-4} \
  SLOW_THREADS=${BENCH_THREADS:-} SLOW_FLOOR=99 SLOW_TRICKLE=0 SLOW_KYCD_ENV=${BENCH_KYCD_ENV:-} \
  timeout 600 bash "$top/tests/e2e/test_slowloris.sh" >"$work/out" 2>&1 || rc=$?
grep -E '^(figures|PASS|FAIL)' "$work/out" | sed 's/^figures: //'
echo "bench: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
if [ "$rc" != 0 ]; then echo "bench: FAIL (exit $rc)" >&2; tail -20 "$work/out" >&2; exit 1; fi
echo "bench: ok"
