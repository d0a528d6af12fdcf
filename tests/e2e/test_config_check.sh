#!/usr/bin/env bash
# End-to-end: `kycd config --check` makes every check `kycd serve` makes
# before it listens, serves nothing, and lists every problem on a line of
# its own (exit 0, or 2).
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_fresh_db
e2e_migrate
port=$(e2e_free_port)

e2e_section "a good configuration"
e2e_kycd_cmd "KYCD_LISTEN=127.0.0.1:$port" -- config --check
assert_eq 0 "$E2E_RC" "exit 0"
assert_contains "$(cat "$E2E_OUT")" "kycd: configuration ok" "says so"
assert_eq "" "$(ss -Hltn "sport = :$port")" "and listened on nothing"

e2e_section "three problems at once"
good_db=$E2E_DB_URL
e2e_fresh_db # not migrated
printf 'short\n' >"$E2E_TMP/short-token"
e2e_kycd_cmd "KYCD_WEBHOOK_TOKENS_FILE=$E2E_TMP/short-token" "KYCD_TLS_KEY=$E2E_TMP/certs/ca.key" -- config --check
out=$(cat "$E2E_OUT")
assert_eq 2 "$E2E_RC" "exit 2"
assert_contains "$out" "shorter than 16 characters" "the short token"
assert_contains "$out" "msg=\"tls configuration refused\"" "the key that does not match the certificate"
assert_contains "$out" "database not ready" "the database not migrated"
assert_contains "$out" "3 problems" "and counts them"
E2E_DB_URL=$good_db

e2e_section "deploy/kycd.conf.example"
example=$E2E_TMP/example.conf
# Its secret files do not exist here: drop those three lines.
grep -v '_file = /etc/kycd/secrets/' "$TEST_KYCD_SRC/deploy/kycd.conf.example" >"$example"
e2e_kycd_cmd --bare -- config --config "$example"
assert_eq 0 "$E2E_RC" "the example file loads ($(head -c 200 "$E2E_OUT"))"
missing=$(awk -F' = ' '{print $1}' "$E2E_OUT" | while read -r k; do
  grep -qE "^#?${k}(_file)? =" "$TEST_KYCD_SRC/deploy/kycd.conf.example" || printf '%s ' "$k"
done)
assert_eq "" "$missing" "it names every key kycd knows (set or commented out)"
