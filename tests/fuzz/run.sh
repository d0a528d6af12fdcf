#!/usr/bin/env bash
# Build the libFuzzer targets with clang (-fsanitize=fuzzer,address,undefined)
# and run each for a bounded time on its seed corpus (tests/fuzz/corpus/<name>).
# A crash, leak or sanitizer report fails the run and leaves the reproducer
# in the work folder it prints.
#
# usage: tests/fuzz/run.sh [SECONDS_EACH]      (default 15; run long:
#        tests/fuzz/run.sh 3600, or one target by hand, see the commands printed)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); top=$(cd "$here/../.." && pwd)
secs=${1:-${FUZZ_SECONDS:-15}}
command -v clang >/dev/null || { echo "fuzz: clang missing (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
work=${FUZZ_WORK:-$(mktemp -d /tmp/kycd-fuzz.XXXXXX)}
cjson=$(pkg-config --cflags --libs libcjson)
cflags=(-std=c11 -D_GNU_SOURCE -DKYCD_VERSION='"fuzz"' -g -O1 -fsanitize=fuzzer,address,undefined
        -fno-sanitize-recover=all -I"$top/src" -I/usr/include/postgresql)
base=("$top"/src/base/*.c)
declare -A srcs=(
  [payload]="${base[*]} $top/src/core/payload.c $top/src/core/json.c $top/src/core/kyc.c $top/src/core/p100.c $top/src/core/token.c"
  [request]="${base[*]} $top/src/app/handler.c $top/src/core/payload.c $top/src/core/json.c $top/src/core/kyc.c $top/src/core/p100.c $top/src/core/token.c $top/src/core/cidr.c"
  [config]="${base[*]} $top/src/io/config.c $top/src/core/token.c $top/src/core/cidr.c"
  [spool_record]="${base[*]} $top/src/io/spool.c"
)
fail=0
for name in payload request config spool_record; do
  bin=$work/fuzz_$name
  # shellcheck disable=SC2086  # the source lists are word lists
  clang "${cflags[@]}" "$here/fuzz_$name.c" ${srcs[$name]} -o "$bin" $cjson -lssl -lcrypto -lpthread -lm
  corpus=$here/corpus/${name%_record}
  mkdir -p "$work/new_$name"
  echo "fuzz: $name for ${secs}s (by hand: $bin $work/new_$name $corpus)"
  if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$work/crash_${name}_" "$work/new_$name" "$corpus" >"$work/$name.log" 2>&1; then
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$work/$name.log")
    cov=$(grep -oE 'cov: [0-9]+' "$work/$name.log" | tail -1)
    echo "fuzz: $name ok: $runs runs, $cov"
  else
    echo "fuzz: $name FAILED (log $work/$name.log)"; tail -30 "$work/$name.log"; fail=1
  fi
done
echo "fuzz: $([ $fail = 0 ] && echo 4 passed, 0 failed || echo failures: see above)"
[ $fail = 0 ] && [ -z "${FUZZ_WORK:-}" ] && rm -rf "$work"
exit $fail
