#!/usr/bin/env bash
# kycd-test: once
# The benchmarks under tests/bench/, run small and checked against loose
# bounds only (a noisy machine must not fail CI; the figures themselves are
# for people: run the scripts directly for the full size).
set -uo pipefail
top=${TEST_KYCD_SRC:?}; kycd=${TEST_KYCD_BIN:?}; sim=${TEST_P100_SIM:?}
pass=0; failn=0
ok() { pass=$((pass + 1)); echo "PASS: $*"; }
bad() { failn=$((failn + 1)); echo "FAIL: $*"; }

# Reconciler: 600 users at 200/s with a 50 ms P100 should take ~3 s; allow 9.
out=$(BENCH_KYCD=$kycd BENCH_SIM=$sim BENCH_USERS=600 BENCH_RATE=200 BENCH_LATENCY_MS=50 \
      BENCH_LIMIT_S=9 timeout 120 bash "$top/tests/bench/reconcile.sh" 2>&1)
rc=$?
echo "$out" | grep -E '^BENCH|bench:'
if [ "$rc" = 0 ]; then ok "reconciler drains 600 users at 200/s within 9 s, each checked once"
else bad "reconciler benchmark (exit $rc): $(echo "$out" | tail -3)"; fi

# Slow answers: 300 ms at 200/s needs 60 calls in flight (Little's law);
# with kycd's default settings (the rate paces the calls, p100_concurrency
# 64 only caps them) the same 600 users take ~3.3 s (N/R + one latency),
# nothing sized by hand; allow 12 (3x).
out=$(BENCH_KYCD=$kycd BENCH_SIM=$sim BENCH_USERS=600 BENCH_RATE=200 BENCH_LATENCY_MS=300 \
      BENCH_LIMIT_S=12 timeout 120 bash "$top/tests/bench/reconcile.sh" 2>&1)
rc=$?
echo "$out" | grep -E '^BENCH|^GOAL|bench:'
if [ "$rc" = 0 ]; then ok "reconciler with 300 ms answers, default settings: 600 users within 12 s, each checked once"
else bad "reconciler benchmark, 300 ms answers (exit $rc): $(echo "$out" | tail -3)"; fi

# Ingest: at least 50 acknowledged deliveries/s over TLS (about 1,000/s is
# typical on 2 cores), every 200 stored.
out=$(BENCH_KYCD=$kycd BENCH_SECONDS=4 timeout 120 bash "$top/tests/bench/ingest.sh" 2>&1)
rc=$?
echo "$out" | grep -E '^BENCH|bench:'
rps=$(echo "$out" | sed -nE 's/^BENCH .* rps=([0-9]+) .*/\1/p')
if [ "$rc" = 0 ] && [ -n "$rps" ] && [ "$rps" -ge 50 ]; then ok "ingest: $rps deliveries/s, all stored"
else bad "ingest benchmark (exit $rc, rps '${rps:-?}'): $(echo "$out" | tail -3)"; fi

# Group commit against pgbench running kycd's own SQL (tests/bench/
# ingest_vs_pgbench.sh), short: one round of 3 s at 8 and at 64
# connections, and a small replay. Loose bounds: kycd at least half the
# database's one-transaction-per-delivery rate (about 1.5x at 8 and 4x at
# 64 are typical on 2 cores), the replay at least 1,000 records/s (3,000 to
# 6,000 typical; one record per transaction did about 500), every 200
# stored exactly once (the script checks).
if [ -x /usr/lib/postgresql/15/bin/pgbench ]; then
  out=$(BENCH_KYCD=$kycd BENCH_SECONDS=3 BENCH_ROUNDS=1 BENCH_REPLAY=2000 timeout 180 \
        bash "$top/tests/bench/ingest_vs_pgbench.sh" 2>&1)
  rc=$?
  echo "$out" | grep -E '^RESULT|bench:'
  r8=$(echo "$out" | sed -nE 's/^RESULT conns=8 .* ratio=([0-9.]+).*/\1/p')
  r64=$(echo "$out" | sed -nE 's/^RESULT conns=64 .* ratio=([0-9.]+).*/\1/p')
  rate=$(echo "$out" | sed -nE 's/^RESULT replay .* rate=([0-9]+).*/\1/p')
  # The ratio compares kycd with pgbench, which the sanitizers do not slow
  # down: an ASan build of kycd runs at about half speed (0.48 at 8
  # connections seen), so its floor is lower.
  floor=0.5
  if ldd "$kycd" 2>/dev/null | grep -q libasan; then floor=0.2; fi
  if [ "$rc" = 0 ] && awk -v a="${r8:-0}" -v b="${r64:-0}" -v c="${rate:-0}" -v f="$floor" 'BEGIN{exit !(a >= f && b >= f && c >= 1000)}'; then
    ok "group commit: ratio ${r8} (8) ${r64} (64) to pgbench (floor $floor), replay ${rate}/s, all stored once"
  else bad "ingest vs pgbench (exit $rc, ratios '${r8:-?}' '${r64:-?}', replay '${rate:-?}'): $(echo "$out" | tail -3)"; fi
else
  skipped="pgbench is not installed (postgresql-15, deploy/packages.sh)"
fi

echo "test_bench_bounds: $pass passed, $failn failed"
[ "$failn" = 0 ] || exit 1
# A part that could not run is a skip (77), never a pass: tests/run.sh fails
# on it unless TEST_ALLOW_SKIP names this test.
if [ -n "${skipped:-}" ]; then
  echo "SKIP: test_bench_bounds: the group-commit bench did not run: $skipped"
  exit 77
fi
