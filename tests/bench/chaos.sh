#!/usr/bin/env bash
# Benchmark: the chaos test (tests/e2e/test_chaos.sh) at full size, 1,000
# users by default, against a private, throwaway PostgreSQL. Prints the
# time until every user kycd has heard of equals P100's truth, the bound
# (pending_after + re-check delay + interval + users / re-check rate + fault
# allowance) and their ratio; fails if any assertion of the test fails.
#
# usage: tests/bench/chaos.sh [BUILD_DIR]
# env: BENCH_USERS (1000) BENCH_SEED (11)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); top=$(cd "$here/../.." && pwd)
build=${1:-$top/build/ci}
# shellcheck source=../../deploy/pg-local.sh
source "$top/deploy/pg-local.sh"
work=$(mktemp -d /tmp/kycd-bench-chaos.XXXXXX); chmod 755 "$work"
cleanup() { pg_local_stop "$work/pg" >/dev/null 2>&1; rm -rf "$work"; }
trap cleanup EXIT INT TERM
pg_local_start "$work/pg" >/dev/null
rc=0
TEST_PG=$PGLOCAL_CONNINFO TEST_KYCD_BIN=${BENCH_KYCD:-$build/kycd} \
  TEST_P100_SIM=${BENCH_SIM:-$build/tests/p100-sim} TEST_KYCD_SRC=$top \
  CHAOS_USERS=${BENCH_USERS:-1000} CHAOS_SEED=${BENCH_SEED:-11} \
  bash "$top/tests/e2e/test_chaos.sh" >"$work/out" 2>&1 || rc=$?
grep -E '^(CHAOS|PASS|FAIL)|^  (\{|phase|checks by|reconcile)' "$work/out"
if [ "$rc" != 0 ]; then echo "bench: FAIL (exit $rc)" >&2; tail -20 "$work/out" >&2; exit 1; fi
echo "bench: ok"
