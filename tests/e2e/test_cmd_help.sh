#!/usr/bin/env bash
# kycd-test: once
# `kycd COMMAND --help` (and -h) for every command `kycd --help` lists: exit
# 0, the command's usage and help on stdout, nothing on stderr, with no
# configuration and no database (KYCD_CONFIG names a file that does not
# exist and the database URL a closed port: a command that read either would
# fail). The list comes from `kycd --help`, so a row added to the command
# table is checked here without editing this test.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NOCFG=(KYCD_CONFIG="$E2E_TMP/no-such.conf" KYCD_DATABASE_URL="host=127.0.0.1 port=1 dbname=none")
run() { # run ARGS...: kycd under env -i, stdout in $E2E_TMP/out, stderr in $E2E_TMP/err, rc in $rc
  rc=0
  (cd "$E2E_TMP" && env -i "${NOCFG[@]}" timeout 10 "$TEST_KYCD_BIN" "$@") \
    >"$E2E_TMP/out" 2>"$E2E_TMP/err" || rc=$?
}

e2e_section "kycd --help"
run --help
assert_eq 0 "$rc" "kycd --help: exit 0"
listed=$(sed -nE 's/^  ([a-z][a-z-]*)( .*)?$/\1/p' "$E2E_TMP/out" | uniq)
n=$(wc -w <<<"$listed")
for c in serve migrate config reconcile create-kyc spool status partitions retention archive vocabulary version; do
  assert_contains " $(tr '\n' ' ' <<<"$listed")" " $c " "kycd --help lists $c"
done

e2e_section "kycd COMMAND --help, -h, help COMMAND"
for c in $listed; do
  for form in "$c --help" "$c -h" "help $c" "$c --once --help"; do
    # shellcheck disable=SC2086  # the form is words
    run $form
    out=$(cat "$E2E_TMP/out")
    if [ "$rc" = 0 ] && [[ "$out" == usage:* ]] && grep -qE "^  $c( |\$)" <<<"$out" &&
       [ "$(wc -l <<<"$out")" -ge 6 ] && [ ! -s "$E2E_TMP/err" ]; then
      pass "kycd $form: exit 0, usage and help"
    else
      fail "kycd $form: exit $rc, stdout: $(e2e__clip "$out"), stderr: $(e2e__clip "$(cat "$E2E_TMP/err")")"
    fi
  done
done
assert_ne 0 "$n" "$n commands checked"

e2e_section "errors stay errors"
run serve --no-such-flag
assert_eq 2 "$rc" "an unknown flag is still refused (exit 2)"
run help no-such-command
assert_eq 2 "$rc" "kycd help of an unknown command: exit 2"
