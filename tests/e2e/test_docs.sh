#!/usr/bin/env bash
# kycd-test: once
# The documentation generated from the key table cannot drift:
# docs/configuration.md's key table (between the config-keys markers) is exactly what
# `kycd config --reference markdown` prints, and the kycd.conf(5) the build
# made from `kycd config --reference man` names every key, the kycd(8) it
# made from `kycd help --reference man` (the command table's usage and help)
# has a subsection for every command `kycd --help` lists, and both render
# without a warning from man (as lintian checks it).
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -n "${TEST_KYCD_BUILD:-}" ] || e2e_abort "TEST_KYCD_BUILD (the build tree) is not set"

e2e_section "docs/configuration.md's key table"
e2e_kycd_cmd --bare -- config --reference markdown
assert_eq 0 "$E2E_RC" "kycd config --reference markdown: exit 0"
table=$(sed -n '/^<!-- BEGIN config-keys/,/^<!-- END config-keys -->/p' "$TEST_KYCD_SRC/docs/configuration.md" | sed '1d;$d')
assert_ne "" "$table" "docs/configuration.md has the config-keys markers"
if [ "$table" = "$(cat "$E2E_OUT")" ]; then
  pass "docs/configuration.md's table is the generated one"
else
  fail "docs/configuration.md's table is stale: run 'cmake --build BUILD --target config-table' ($(e2e__clip "$(diff <(echo "$table") "$E2E_OUT" || true)"))"
fi
keys=$(env -i "$TEST_KYCD_BIN" config | sed 's/ = .*//')
assert_eq "$(wc -l <<<"$keys")" "$(grep -c '^| `' <<<"$table")" "one row per key kycd prints ($(wc -l <<<"$keys"))"

e2e_section "the man pages"
page=$TEST_KYCD_BUILD/man/kycd.conf.5
[ -f "$page" ] || e2e_abort "$page was not built"
text=$(MANWIDTH=80 man -l "$page" 2>/dev/null)
missing=''
for k in $keys; do grep -qE "^       $k( |\$)" <<<"$text" || missing="$missing $k"; done
assert_eq "" "$missing" "kycd.conf(5) has a paragraph for every key"
e2e_kycd_cmd --bare -- config --reference man
assert_contains "$(cat "$page")" "$(head -c 2000 "$E2E_OUT")" "it holds what kycd config --reference man prints"
page8=$TEST_KYCD_BUILD/man/kycd.8
[ -f "$page8" ] || e2e_abort "$page8 was not built"
e2e_kycd_cmd --bare -- help --reference man
assert_eq 0 "$E2E_RC" "kycd help --reference man: exit 0"
gen=$(cat "$E2E_OUT")
if grep -qxF -- "$(head -n 1 <<<"$gen")" "$page8" && [[ "$(cat "$page8")" == *"$gen"* ]]; then
  pass "kycd(8) holds what kycd help --reference man prints"
else
  fail "kycd(8) is stale: rebuild (cmake --build BUILD; docs/kycd.8.in, src/cmd/cmd.c)"
fi
listed=$(env -i "$TEST_KYCD_BIN" --help | sed -nE 's/^  ([a-z][a-z-]*)( .*)?$/\1/p' | sort -u)
assert_ne "" "$listed" "kycd --help lists commands"
text8=$(MANWIDTH=80 man -l "$page8" 2>/dev/null)
missing=''
for c in $listed; do grep -qxE "   $c" <<<"$text8" || missing="$missing $c"; done
assert_eq "" "$missing" "kycd(8) has a subsection for every command kycd --help lists ($(wc -w <<<"$listed"))"
for s in COMMANDS SIGNALS "EXIT STATUS" ENVIRONMENT FILES EXAMPLES; do
  assert_eq 1 "$(grep -c "^$s\$" <<<"$text8")" "kycd(8) has the section $s"
done
for v in KYCD_CONFIG KYCD_DATABASE_URL_FILE JOURNAL_STREAM NOTIFY_SOCKET; do
  assert_contains "$(sed -n '/^ENVIRONMENT$/,/^FILES$/p' <<<"$text8")" "$v" "its ENVIRONMENT names $v"
done
for p in "$page" "$page8"; do
  warn=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$p" 2>&1 >/dev/null)
  assert_eq "" "$warn" "man --warnings is silent on $(basename "$p")"
done
