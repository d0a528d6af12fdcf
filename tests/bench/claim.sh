#!/usr/bin/env bash
# Benchmark: what the reconciler costs the database as kyc.verifications
# grows (issue "a reconciler that stays cheap at ten million users"). One
# throwaway cluster (shared_buffers 1 GB, pg_stat_statements), one database
# migrated by `kycd migrate`; settled users are added in SQL up to each size
# (BENCH_SIZES: 100 thousand, 1 million, 10 million; 70% verified, 20%
# rejected, 7% expired, 3% pending, their last word spread over two years,
# every one re-checked just now as a reconciler that keeps up leaves them,
# the pending ones next checked tomorrow; verified users are stamped as if
# re-checked tomorrow, so that no slot comes during the run: 10 million of
# them at the default 30 days make about 4 due a second),
# then stamped as `kycd migrate` stamps them after a change of policy. At
# each size it prints:
#   stamp_ms     `kycd migrate` re-stamping every user (batches of 10,000)
#   pass_db_ms   a whole `kycd reconcile --once` pass with nothing due: the
#                sum of its statements' execution time (pg_stat_statements)
#   none_ms      the re-check claim (limit 1,000) with nothing due,
#   due_ms       and with 1,000 users due: planning + execution, EXPLAIN
#                ANALYZE in a rolled-back transaction, median of BENCH_REPS;
# each claim twice: today's (src/io/db_reconcile.c) and, as the anchor, the
# claim of schema 13 (BENCH_ANCHOR_REV, the last commit before the stored
# re-check time: it computed who was due from every settled user's columns),
# both read from the C source by claim_sql.py, on the same data in the same
# run. Then RESULT lines with the ratios (10 M / 100 k; anchor / today).
# Last, what the stamp costs the write path: kycd's SQL for one delivery of
# a new user (pgbench_sql.py), BENCH_WRITE_ROUNDS rounds of
# BENCH_WRITE_SECONDS at 8 connections with the stamping trigger on and
# off (disabled for its round only), alternating, on the 10 M database:
#   RESULT write tps_stamped=... tps_unstamped=... ratio=...
#
# usage: tests/bench/claim.sh [BUILD_DIR]
# env: BENCH_SIZES ("100000 1000000 10000000"), BENCH_REPS (5),
#      BENCH_ANCHOR_REV (2476e5d), BENCH_WRITE_SECONDS (10),
#      BENCH_WRITE_ROUNDS (3; 0 skips it)
# Needs about 8 GB in /tmp and 15 minutes at 10 million users.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); top=$(cd "$here/../.." && pwd)
build=${1:-$top/build/ci}
kycd=${BENCH_KYCD:-$build/kycd}
sizes=${BENCH_SIZES:-100000 1000000 10000000}
reps=${BENCH_REPS:-5}
anchor=${BENCH_ANCHOR_REV:-2476e5d}
wsecs=${BENCH_WRITE_SECONDS:-10}; wrounds=${BENCH_WRITE_ROUNDS:-3}
pgbin=${PGLOCAL_PGBIN:-/usr/lib/postgresql/15/bin}
[ -x "$pgbin/pgbench" ] || { echo "bench: $pgbin/pgbench missing" >&2; exit 1; }
# shellcheck source=SCRIPTDIR/../../deploy/pg-local.sh
source "$top/deploy/pg-local.sh"
for n in $sizes; do [ "$n" -ge 100000 ] || { echo "bench: sizes start at 100000" >&2; exit 2; }; done
work=$(mktemp -d /tmp/kycd-benchclaim.XXXXXX); chmod 755 "$work"
cleanup() { pg_local_stop "$work/pg" >/dev/null 2>&1; rm -rf "$work"; }
trap cleanup EXIT INT TERM; [ -n "${BENCH_KEEP:-}" ] && trap - EXIT
pg_local_start "$work/pg" >/dev/null
url=$PGLOCAL_CONNINFO
psql "$url" -Xqc "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" \
  -c "ALTER SYSTEM SET shared_buffers = '1GB'" -c "ALTER SYSTEM SET max_wal_size = '8GB'" >/dev/null
pg_local_restart "$work/pg" >/dev/null
sql() { psql "$url" -XAtq -v ON_ERROR_STOP=1 "$@"; }
sql -c "CREATE EXTENSION pg_stat_statements"

word() { python3 "$top/tests/tools/p100_vocab.py" get "$1" "$kycd" | grep -x "$2"; }
verified=$(word verificationStatus VERIFIED); not_verified=$(word verificationStatus NOT_VERIFIED)
expired=$(word verificationStatus EXPIRED); successful=$(word attemptStatus SUCCESSFUL)
rejected=$(word attemptStatus REJECTED_BY_PROVIDER); pending=$(word attemptStatus PENDING)

printf 'bench-api-key\n' >"$work/apikey"
envs=(PATH="$PATH" KYCD_DATABASE_URL="$url" KYCD_P100_BASE_URL="https://127.0.0.1:9"
  KYCD_P100_API_KEY_FILE="$work/apikey" KYCD_LOG_LEVEL=warn)
env -i "${envs[@]}" "$kycd" migrate >/dev/null

python3 "$here/claim_sql.py" "$top/src/io/db_reconcile.c" SQL_CLAIM_RECHECK today >"$work/claims.sql"
git -C "$top" show "$anchor:src/io/db_reconcile.c" >"$work/anchor.c"
python3 "$here/claim_sql.py" "$work/anchor.c" SQL_CLAIM_RECHECK anchor >>"$work/claims.sql"
# What kycd passes (src/io/db_reconcile.c, db_claim_due), with the defaults.
args_today="1000, 'bench:1', 600000, 60000, 0, 0, '$rejected'"
args_anchor="1000, 'bench:1', 600000, 60000, 0, 0, 3600000, 2592000000, 2592000000, '$rejected', '$verified'"

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
# claim_ms NAME ARGS: planning + execution of the claim, median of reps
claim_ms() {
  for _ in $(seq "$reps"); do
    sql -f "$work/claims.sql" -c "BEGIN" -c "EXPLAIN (ANALYZE) EXECUTE $1($2)" -c "ROLLBACK" |
      awk '/^Planning Time:/ { p = $3 } /^Execution Time:/ { e = $3 } END { printf "%.2f\n", p + e }'
  done | median
}
# claimed NAME ARGS: how many users the claim takes (rolled back)
claimed() {
  sql -f "$work/claims.sql" -c "BEGIN" -c "EXECUTE $1($2)" -c "ROLLBACK" | grep -c . || true
}

printf '%-9s %9s %11s %14s %15s %13s %14s\n' users stamp_ms pass_db_ms none_ms_today none_ms_anchor \
  due_ms_today due_ms_anchor
have=0
for n in $sizes; do
  # Settled users, written past the trigger (session_replication_role)
  # and stamped below as kycd migrate does: the bench measures that too.
  sql -v from=$((have + 1)) -v to="$n" -v verified="$verified" -v not_verified="$not_verified" \
    -v expired="$expired" -v successful="$successful" -v rejected="$rejected" -v pending="$pending" <<'EOF'
SET session_replication_role = replica;
INSERT INTO kyc.verifications (external_user_id, source, verification_status, attempt_status,
    first_seen_at, updated_at, last_webhook_at, rechecked_at, last_checked_at, next_check_at)
SELECT 'bench-' || g, 'webhook', s.vs, s.ast, w.at - interval '20 minutes', w.at, w.at,
  now() + CASE WHEN s.vs = :'verified' THEN interval '1 day' ELSE interval '0' END,
  now(), CASE WHEN s.ast = :'pending' THEN now() + interval '1 day' END
FROM generate_series(:from::bigint, :to::bigint) g
CROSS JOIN LATERAL (SELECT now() - (hashint8(g) & 65535) * interval '1 day' * 730 / 65536 AS at) w
CROSS JOIN LATERAL (SELECT CASE WHEN g % 100 < 70 THEN :'verified' WHEN g % 100 < 97 THEN
    CASE WHEN g % 100 < 90 THEN :'not_verified' ELSE :'expired' END ELSE :'not_verified' END AS vs,
  CASE WHEN g % 100 < 70 THEN :'successful' WHEN g % 100 < 90 THEN :'rejected'
       WHEN g % 100 < 97 THEN :'successful' ELSE :'pending' END AS ast) s;
UPDATE kyc.recheck_policy SET restamp_after = '';
EOF
  t0=$(date +%s%N)
  env -i "${envs[@]}" "$kycd" migrate >/dev/null
  stamp=$(( ($(date +%s%N) - t0) / 1000000 ))
  sql -c "VACUUM ANALYZE kyc.verifications"

  # Nothing due: one whole pass of `kycd reconcile --once`.
  due0=$(claimed today "$args_today")
  [ "$due0" = 0 ] || { echo "bench: $due0 users due before the pass" >&2; sql -f "$work/claims.sql" -c "BEGIN" -c "EXECUTE today($args_today)" -c "ROLLBACK" | head -3 >&2; exit 1; }
  sql -c "SELECT pg_stat_statements_reset()" >/dev/null
  env -i "${envs[@]}" "$kycd" reconcile --once >/dev/null 2>"$work/pass.log" ||
    { cat "$work/pass.log" >&2; exit 1; }
  pass=$(sql -c "SELECT round(sum(total_exec_time)::numeric, 2) FROM pg_stat_statements
                 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                   AND query NOT LIKE '%pg_stat_statements%'")
  none_t=$(claim_ms today "$args_today"); none_a=$(claim_ms anchor "$args_anchor")

  # 1,000 verified users due (their last word 40 days ago, never re-checked).
  sql -c "UPDATE kyc.verifications SET rechecked_at = NULL,
            updated_at = now() - interval '40 days', last_webhook_at = now() - interval '40 days'
          WHERE external_user_id IN (SELECT 'bench-' || (1 + (g - 1) * ($n / 100000)) * 100
                                     FROM generate_series(1, 1000) g)" >/dev/null
  got=$(claimed today "$args_today"); got_a=$(claimed anchor "$args_anchor")
  [ "$got" = 1000 ] && [ "$got_a" = 1000 ] ||
    { echo "bench: the two claims disagree ($got, $got_a users due)" >&2; exit 1; }
  due_t=$(claim_ms today "$args_today"); due_a=$(claim_ms anchor "$args_anchor")
  sql -c "UPDATE kyc.verifications SET rechecked_at = now() WHERE rechecked_at IS NULL" >/dev/null

  printf '%-9s %9s %11s %14s %15s %13s %14s\n' "$n" "$stamp" "$pass" "$none_t" "$none_a" "$due_t" "$due_a"
  echo "$n $pass $none_t $none_a $due_t $due_a" >>"$work/rows"
  have=$n
done
awk 'NR == 1 { f = $0 } { l = $0 } END {
  split(f, a); split(l, b)
  printf "RESULT users=%s..%s pass_db_ms=%s..%s due_claim_ratio=%.2f (today %s / %s ms)\n",
    a[1], b[1], a[2], b[2], b[5] / a[5], b[5], a[5]
  printf "RESULT at %s users: nothing due anchor/today=%.0f, 1000 due anchor/today=%.0f\n",
    b[1], b[4] / b[3], b[6] / b[5] }' "$work/rows"

[ "$wrounds" -gt 0 ] || exit 0
python3 "$here/pgbench_sql.py" "$top" >"$work/delivery.sql"
: >"$work/on"; : >"$work/off"
for r in $(seq 1 "$wrounds"); do
  for t in on off; do
    [ "$t" = off ] && sql -c "ALTER TABLE kyc.verifications DISABLE TRIGGER verifications_recheck_at"
    tps=$("$pgbin/pgbench" -n -M prepared -c 8 -j 2 -T "$wsecs" -f "$work/delivery.sql" "$url" 2>&1 |
          awk '/^tps = / { print int($3) }')
    [ "$t" = off ] && sql -c "ALTER TABLE kyc.verifications ENABLE TRIGGER verifications_recheck_at"
    echo "$tps" >>"$work/$t"
    echo "ROUND $r stamp=$t tps=$tps"
  done
done
a=$(median <"$work/on"); b=$(median <"$work/off")
echo "RESULT write tps_stamped=$a tps_unstamped=$b ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')"
