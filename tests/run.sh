#!/usr/bin/env bash
# The one test command, for developers and CI (.ci/run): from the repo root or
# anywhere, as root or not.
#
#   1. installs the Debian packages the build and tests need, if any is
#      missing (as root: apt-get; otherwise it prints the sudo line and stops);
#   2. builds with CMake, warnings as errors, twice: build/ci (RelWithDebInfo)
#      and build/asan (Debug, AddressSanitizer + UndefinedBehaviorSanitizer);
#      the second reuses the CivetWeb source the first fetched;
#   3. for each build, starts a fresh throwaway PostgreSQL 15
#      (deploy/pg-local.sh, in a folder under /tmp, so the postgres user never
#      needs to read the repo), exports TEST_PG (its conninfo) and
#      TEST_PG_DIR (its folder: end-to-end tests may source
#      deploy/pg-local.sh and call pg_local_stop_server_only /
#      pg_local_start_server_only on it for database-down cases), runs ctest,
#      and removes the cluster again (also on failure or interrupt);
#   4. valgrind (whole runs only, when build ci is among the builds): on one
#      more throwaway PostgreSQL, the end-to-end suites test_receiver.sh and
#      test_hostile.sh with the kycd of build/ci (not the ASan build: the two
#      do not mix) serving under valgrind memcheck (TEST_KYCD_WRAP, see
#      tests/e2e/lib.sh): any memory error or definite/indirect leak fails;
#   5. fuzzing (whole runs only): build/fuzz, configured with clang and
#      -DKYCD_FUZZ=ON (kycd_lib instrumented, the targets of tests/fuzz/ linked
#      to it; CivetWeb's source reused from build/ci), then every libFuzzer
#      target for a bounded time on its seed corpus (tests/fuzz/run.sh).
#   Before the builds (whole runs only): every C file must be formatted as
#   .clang-format says (clang-format 14 --dry-run --Werror).
#
# Usage: tests/run.sh [CTEST ARGS...]     e.g. tests/run.sh -R state
# Environment:
#   TEST_BUILDS  which builds to make and test, from "ci asan" (the
#                     default); e.g. TEST_BUILDS=ci for a quick run
#   VALGRIND     0 skips step 4
#   FUZZ_SECONDS seconds per fuzz target (default 10); 0 skips step 5
#   TEST_ALLOW_SKIP  test names (e2e/test_container or test_container,
#                space-separated) allowed to skip (exit 77: they print why);
#                any other skip fails the run. Every skip is in the summary.
# Exit status: 0 when every build built and every ctest run passed, with no
# test skipped that TEST_ALLOW_SKIP does not name.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
say() { echo "run.sh: $*"; }

# Which builds (checked first, before anything is installed).
builds=()
for b in ${TEST_BUILDS:-ci asan}; do   # also accepts "ci,asan"
  for b2 in ${b//,/ }; do
    case $b2 in
      ci|asan) builds+=("$b2") ;;
      *) echo "run.sh: unknown build '$b2' in TEST_BUILDS (known: ci asan)" >&2; exit 2 ;;
    esac
  done
done
[ "${#builds[@]}" -gt 0 ] || { echo "run.sh: TEST_BUILDS names no build" >&2; exit 2; }

# --- 1. packages --------------------------------------------------------------
# shellcheck source=SCRIPTDIR/../deploy/packages.sh
source "$root/deploy/packages.sh"
kycd_install_packages run.sh test || exit 1   # the build set and the test set

# --- 1b. format: every C file as .clang-format says (whole runs only) ----------
# clang-format 14 (Debian 12's); a file it would change fails the run, with
# the command that fixes it.
fmt_result=
if [ "$#" -eq 0 ]; then
  mapfile -t cfiles < <(cd "$root" && git ls-files '*.c' '*.h' 2>/dev/null ||
                        find src tests -name '*.[ch]' -not -path '*/build/*')
  if (cd "$root" && clang-format --dry-run --Werror "${cfiles[@]}" >"$root/.format.log" 2>&1); then
    fmt_result="PASSED (${#cfiles[@]} files)"
  else
    bad=$(grep -oE '^[^:]+\.[ch]:' "$root/.format.log" | sort -u | tr -d ':' | head -n 20 | tr '\n' ' ')
    fmt_result="FAILED (run: clang-format -i $bad)"
    head -n 40 "$root/.format.log"
  fi
  rm -f "$root/.format.log"
  say "format: $fmt_result"
fi

# --- 2. builds ----------------------------------------------------------------
civetweb_src=$root/build/ci/_deps/civetweb-1.15
declare -A result=()
built=()
for b in "${builds[@]}"; do
  bdir=$root/build/$b
  case $b in
    ci)   args=(-DKYCD_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo) ;;
    asan) args=(-DKYCD_WERROR=ON "-DKYCD_SANITIZE=address,undefined" -DCMAKE_BUILD_TYPE=Debug) ;;
  esac
  if [ "$b" != ci ] && [ -f "$civetweb_src/src/civetweb.c" ]; then
    args+=("-DKYCD_CIVETWEB_SRC=$civetweb_src")
  fi
  # A build folder configured from another checkout (a moved or copied clone)
  # cannot be reused by CMake.
  if [ -f "$bdir/CMakeCache.txt" ] &&
     ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$root" "$bdir/CMakeCache.txt"; then
    say "build $b: $bdir was configured for another source folder; starting it afresh"
    rm -rf -- "$bdir"
  fi
  say "build $b: configuring and building in $bdir"
  if cmake -S "$root" -B "$bdir" "${args[@]}" && cmake --build "$bdir" -j2; then
    built+=("$b")
  else
    result[$b]="BUILD FAILED"
  fi
done

# --- 3. PostgreSQL and ctest --------------------------------------------------
# shellcheck source=SCRIPTDIR/../deploy/pg-local.sh
source "$root/deploy/pg-local.sh"
pg_dir=
job=
cleanup() {
  # ctest runs as a background job in its own process group (see below), so
  # a signal to this script reaches this trap at once; stop ctest and its
  # tests before their database.
  if [ -n "$job" ]; then
    kill -TERM -- "-$job" 2>/dev/null || true
    wait "$job" 2>/dev/null || true
    # The tests' own exit traps (a kycd under valgrind finishing its leak
    # check) may outlive the job's first process: give them a bounded while.
    for _ in $(seq 1 700); do kill -0 -- "-$job" 2>/dev/null || break; sleep 0.1; done
  fi
  job=
  if [ -n "$pg_dir" ] && [ -d "$pg_dir" ]; then
    pg_local_stop "$pg_dir" || echo "run.sh: could not remove the test cluster in $pg_dir" >&2
  fi
  pg_dir=
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

skipped_ok=()
skipped_bad=()
for b in "${built[@]}"; do
  bdir=$root/build/$b
  say "build $b: starting a throwaway PostgreSQL"
  if ! pg_local_start; then
    result[$b]="FAILED (could not start PostgreSQL)"
    continue
  fi
  pg_dir=$PGLOCAL_DIR
  export TEST_PG=$PGLOCAL_CONNINFO TEST_PG_DIR=$PGLOCAL_DIR
  say "build $b: PostgreSQL at $TEST_PG (folder $TEST_PG_DIR)"
  say "build $b: ctest $*"
  rc=0
  set -m   # the job gets its own process group, for cleanup's kill
  (cd "$bdir" && ctest --output-on-failure --timeout 600 --no-tests=error -j2 "$@" </dev/null 2>&1 |
     tee "$bdir/ctest.log") &
  job=$!
  set +m
  wait "$job" || rc=$?
  job=
  counts=$(grep -E '[0-9]+% tests passed' "$bdir/ctest.log" | tail -n 1 || true)
  # A skipped test (exit 77: it said why it could not run here) is not a
  # pass: it fails the run unless TEST_ALLOW_SKIP names it.
  mapfile -t skips < <(sed -nE 's/^[[:space:]]*[0-9]+ - ([^ ]+) \(Skipped\)$/\1/p' "$bdir/ctest.log" | sort -u)
  unallowed=()
  for t in "${skips[@]}"; do
    allowed=0
    for a in ${TEST_ALLOW_SKIP:-}; do
      if [ "$a" = "$t" ] || [ "$a" = "${t##*/}" ]; then allowed=1; fi
    done
    if [ "$allowed" = 1 ]; then skipped_ok+=("$b:$t"); else unallowed+=("$t"); skipped_bad+=("$b:$t"); fi
  done
  if [ "$rc" = 0 ] && [ "${#unallowed[@]}" -eq 0 ]; then
    result[$b]="PASSED${counts:+ ($counts)}${skips[0]:+ (skipped, allowed: ${skips[*]})}"
  elif [ "$rc" = 0 ]; then
    result[$b]="FAILED (skipped, not allowed by TEST_ALLOW_SKIP: ${unallowed[*]})${counts:+ ($counts)}"
  else
    result[$b]="FAILED (ctest exit $rc)${counts:+ ($counts)}"
  fi
  cleanup
done

# --- 4. valgrind: two end-to-end suites with kycd under memcheck --------------
# (whole runs only, like fuzzing; VALGRIND=0 skips). About half a minute.
vg_result=
vg_log=$root/build/ci/valgrind.log
if [ "$#" -eq 0 ] && [ "${VALGRIND:-1}" != 0 ] && [[ " ${builds[*]} " == *" ci "* ]]; then
  if [[ " ${built[*]} " != *" ci "* ]]; then
    vg_result="FAILED (build ci did not build)"
  elif ! command -v valgrind >/dev/null 2>&1; then
    vg_result="FAILED (valgrind is not installed)"
  elif ! pg_local_start; then
    vg_result="FAILED (could not start PostgreSQL)"
  else
    pg_dir=$PGLOCAL_DIR
    export TEST_PG=$PGLOCAL_CONNINFO TEST_PG_DIR=$PGLOCAL_DIR
    # shellcheck disable=SC2054  # the commas belong to valgrind's options
    vg=(valgrind --quiet --error-exitcode=99 --leak-check=full
        --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect
        --num-callers=30)
    if [ -f "$root/tests/e2e/valgrind.supp" ]; then vg+=("--suppressions=$root/tests/e2e/valgrind.supp"); fi
    say "valgrind: test_receiver.sh and test_hostile.sh, kycd (build/ci) under ${vg[*]}"
    say "valgrind: PostgreSQL at $TEST_PG; output in $vg_log"
    rc=0
    set -m   # own process group, for cleanup's kill (tee ignores it and
             # stays until the tests' exit traps have written their last line)
    ( (export TEST_KYCD_BIN=$root/build/ci/kycd TEST_KYCD_SRC=$root
       export TEST_P100_SIM=$root/build/ci/tests/p100-sim TEST_KYCD_WRAP="${vg[*]}"
       src=0
       for t in test_receiver test_hostile; do
         bash "$root/tests/e2e/$t.sh" </dev/null || src=1
       done
       exit "$src") 2>&1 | (trap '' INT TERM; exec tee "$vg_log")) &
    job=$!
    set +m
    wait "$job" || rc=$?
    job=
    counts=$(grep -E '^test_(receiver|hostile): [0-9]+ passed, [0-9]+ failed' "$vg_log" |
               sed -E 's/ \([0-9]+ s\)$//' | paste -sd ';' - | sed 's/;/; /g' || true)
    if [ "$rc" = 0 ]; then
      vg_result="PASSED${counts:+ ($counts)}"
    else
      vg_result="FAILED${counts:+ ($counts)}; see $vg_log"
    fi
    cleanup
  fi
fi

# --- 5. fuzzing: each libFuzzer target for a bounded time ---------------------
# (whole runs only: not when ctest arguments select a subset; FUZZ_SECONDS=0 skips)
fuzz_secs=${FUZZ_SECONDS:-10}
fuzz_result=
if [ "$#" -eq 0 ] && [ "$fuzz_secs" != 0 ]; then
  say "fuzz: building build/fuzz, then every target for ${fuzz_secs}s"
  fuzz_env=()
  if [ -f "$civetweb_src/src/civetweb.c" ]; then fuzz_env=("KYCD_CIVETWEB_SRC=$civetweb_src"); fi
  if env "${fuzz_env[@]}" bash "$root/tests/fuzz/run.sh" -B "$root/build/fuzz" "$fuzz_secs"; then
    fuzz_result=PASSED
  else
    fuzz_result=FAILED
  fi
fi

# --- summary ------------------------------------------------------------------
status=0
echo
for b in "${builds[@]}"; do
  r=${result[$b]:-FAILED (not run)}
  echo "run.sh: build $b: $r"
  case $r in PASSED*) ;; *) status=1 ;; esac
done
if [ -n "$vg_result" ]; then
  echo "run.sh: valgrind: $vg_result"
  case $vg_result in PASSED*) ;; *) status=1 ;; esac
fi
if [ -n "$fmt_result" ]; then
  echo "run.sh: format: $fmt_result"
  case $fmt_result in PASSED*) ;; *) status=1 ;; esac
fi
if [ -n "$fuzz_result" ]; then
  echo "run.sh: fuzz: $fuzz_result"
  [ "$fuzz_result" = PASSED ] || status=1
fi
for s in "${skipped_bad[@]}"; do
  echo "run.sh: SKIPPED (fails the run; TEST_ALLOW_SKIP does not name it): $s"
  grep -m1 -E "^SKIP: ${s##*/}" "$root/build/${s%%:*}/Testing/Temporary/LastTest.log" 2>/dev/null |
    sed 's/^/run.sh:   /' || true
done
for s in "${skipped_ok[@]}"; do
  echo "run.sh: skipped (allowed by TEST_ALLOW_SKIP): $s"
done
[ "${#skipped_bad[@]}" -eq 0 ] || status=1
exit "$status"
