#!/usr/bin/env bash
# Build the libFuzzer targets with CMake and run each for a bounded time on
# its seed corpus (tests/fuzz/corpus/<name>). The build folder is configured
# with clang and -DKYCD_FUZZ=ON (tests/fuzz/CMakeLists.txt): every fuzz_*.c
# here is a target linked to kycd_lib, the library kycd is built from,
# instrumented with -fsanitize=fuzzer-no-link,address,undefined. A crash,
# leak or sanitizer report fails the run and leaves the reproducer in the
# work folder it prints. tests/run.sh (step 5) calls this with -B build/fuzz.
#
# usage: tests/fuzz/run.sh [-B BUILD_DIR] [SECONDS_EACH]
#   BUILD_DIR     default build/fuzz; configured (or reconfigured) and built
#                 here, incrementally; it must be a clang KYCD_FUZZ build
#   SECONDS_EACH  default $FUZZ_SECONDS, else 15
# Long runs: tests/fuzz/run.sh 3600 (an hour per target); one target by
# hand: the command each line prints ("by hand: ...").
# Environment:
#   KYCD_CIVETWEB_SRC  a CivetWeb 1.15 tree for the configure (default: the
#                      one build/ci fetched, if any; else CMake fetches one)
#   FUZZ_WORK          keep the work folder (new inputs, logs, crashes) there
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); top=$(cd "$here/../.." && pwd)
bdir=$top/build/fuzz
if [ "${1:-}" = -B ]; then
  [ $# -ge 2 ] || { echo "fuzz: -B needs a build folder" >&2; exit 2; }
  bdir=$2; shift 2
fi
case $bdir in /*) ;; *) bdir=$PWD/$bdir ;; esac
secs=${1:-${FUZZ_SECONDS:-15}}
command -v clang >/dev/null || { echo "fuzz: clang missing (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }

# --- build: the same sources as kycd, through CMake
cw=${KYCD_CIVETWEB_SRC:-$top/build/ci/_deps/civetweb-1.15}
args=(-DCMAKE_C_COMPILER=clang -DKYCD_FUZZ=ON -DBUILD_TESTING=OFF -DKYCD_WERROR=ON
      # -O1 as libFuzzer's docs advise: deeper optimisation folds branches
      # the coverage feedback needs (config's coverage fell from 184 to 144 at -O2).
      -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS_DEBUG=-g -O1")
if [ -f "$cw/src/civetweb.c" ]; then args+=("-DKYCD_CIVETWEB_SRC=$cw"); fi
# A folder configured from another checkout, or with another compiler,
# cannot be reused by CMake.
if [ -f "$bdir/CMakeCache.txt" ] &&
   { ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$top" "$bdir/CMakeCache.txt" ||
     ! grep -qE '^CMAKE_C_COMPILER:[A-Z]+=(.*/)?clang' "$bdir/CMakeCache.txt"; }; then
  echo "fuzz: $bdir was configured for another source folder or compiler; starting it afresh"
  rm -rf -- "$bdir"
fi
mkdir -p "$bdir"
blog=$bdir/fuzz-build.log
echo "fuzz: configuring and building in $bdir (log $blog)"
if ! { cmake -S "$top" -B "$bdir" "${args[@]}" && cmake --build "$bdir" --target kycd_fuzz -j2; } \
     >"$blog" 2>&1; then
  echo "fuzz: build FAILED (log $blog)"; tail -30 "$blog"
  echo "fuzz: 0 passed, 1 failed (the build)"
  exit 1
fi

# --- run: every target CMake knows (tests/fuzz/fuzz_*.c)
work=${FUZZ_WORK:-$(mktemp -d /tmp/kycd-fuzz.XXXXXX)}
mkdir -p "$work"
pass=0 fail=0
for src in "$here"/fuzz_*.c; do
  target=$(basename "$src" .c); name=${target#fuzz_}
  bin=$bdir/tests/fuzz/$target
  corpus=$here/corpus/$name
  mkdir -p "$work/new_$name"
  seeds=("$corpus")
  [ -d "$corpus" ] || { seeds=(); echo "fuzz: $name has no seed corpus ($corpus)"; }
  # libFuzzer writes new inputs into the FIRST folder: the seeds stay second.
  echo "fuzz: $name for ${secs}s (by hand: $bin $work/new_$name ${seeds[*]})"
  if [ -x "$bin" ] &&
     "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$work/crash_${name}_" "$work/new_$name" "${seeds[@]}" >"$work/$name.log" 2>&1; then
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$work/$name.log")
    cov=$(grep -oE 'cov: [0-9]+' "$work/$name.log" | tail -1)
    echo "fuzz: $name ok: $runs runs, $cov"
    pass=$((pass + 1))
  else
    echo "fuzz: $name FAILED (log $work/$name.log)"; tail -30 "$work/$name.log" 2>/dev/null || true
    fail=$((fail + 1))
  fi
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" = 0 ] && [ -z "${FUZZ_WORK:-}" ] && rm -rf "$work"
[ "$fail" = 0 ]
