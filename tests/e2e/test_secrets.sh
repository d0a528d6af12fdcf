#!/usr/bin/env bash
# End-to-end: secrets never leave kycd. The webhook token, the database
# password and the P100 API key (each from a *_FILE) must not appear in
# `kycd config`, in error messages, in the server log, nor in a core dump:
# kycd serve makes itself non-dumpable, so a crash leaves no core with its
# memory in it (a control process in the same folder shows that this
# machine does write core files).
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_fresh_db
e2e_certs
APIKEY=apikey$(openssl rand -hex 12)
DBPASS=dbpass$(openssl rand -hex 12)
printf '%s\n' "$APIKEY" >"$E2E_TMP/apikey"
printf '%s\n' "$DBPASS" >"$E2E_TMP/dbpass"
secrets=("$E2E_TOKEN" "$APIKEY" "$DBPASS")
no_secret() { # no_secret WHAT FILE
  local s leaked=0
  for s in "${secrets[@]}"; do
    if grep -qF -- "$s" "$2"; then leaked=1; fail "$1 contains a secret (${s:0:6}...)"; fi
  done
  [ "$leaked" = 1 ] || pass "$1 holds no secret"
}
extra=("KYCD_P100_API_KEY_FILE=$E2E_TMP/apikey" "KYCD_DATABASE_PASSWORD_FILE=$E2E_TMP/dbpass")

e2e_section "kycd config and error messages"
e2e_kycd_cmd "${extra[@]}" -- config
assert_eq 0 "$E2E_RC" "kycd config runs"
no_secret "kycd config output" "$E2E_OUT"
assert_contains "$(cat "$E2E_OUT")" "webhook_tokens = (redacted)" "the token is shown as (redacted)"
e2e_kycd_cmd "${extra[@]}" "KYCD_DATABASE_URL=postgresql://kycd:$DBPASS@127.0.0.1:1/nope" -- migrate
assert_ne 0 "$E2E_RC" "a database that cannot be reached is an error"
no_secret "the connection error" "$E2E_OUT"
# A URI libpq cannot parse: libpq's own message quotes the bad text, the
# password ("invalid percent-encoded token: \"50%off-...\""). Every command
# that connects says why without it.
bad_url="postgresql://kycd:50%off-$DBPASS@127.0.0.1:1/nope"
for cmd in migrate "config --check" serve; do
  # shellcheck disable=SC2086  # cmd is two words for config --check
  e2e_kycd_cmd "${extra[@]}" "KYCD_DATABASE_URL=$bad_url" -- $cmd
  assert_ne 0 "$E2E_RC" "kycd $cmd with an unparsable database_url fails"
  assert_contains "$(cat "$E2E_OUT")" "database_url is not a valid connection string or URI" \
    "kycd $cmd says database_url cannot be parsed"
  no_secret "kycd $cmd's error for an unparsable database_url" "$E2E_OUT"
done
# sslpassword (the client key's passphrase) is a secret too, for `kycd config`.
e2e_kycd_cmd "${extra[@]}" "KYCD_DATABASE_URL=postgresql://kycd@127.0.0.1/kycd?sslpassword=$DBPASS&sslmode=disable" -- config
assert_contains "$(cat "$E2E_OUT")" "sslpassword=***" "kycd config shows sslpassword as ***"
no_secret "kycd config with sslpassword in database_url" "$E2E_OUT"
e2e_kycd_cmd "${extra[@]}" "KYCD_P100_BASE_URL=https://127.0.0.1:1" -- status nobody --live
no_secret "a failed P100 call's message" "$E2E_OUT"

e2e_section "the server log"
e2e_migrate
e2e_start_kycd "${extra[@]}"
for a in "Bearer $E2E_TOKEN" "Bearer ${E2E_TOKEN}x" "x$E2E_TOKEN" "$APIKEY" "$DBPASS"; do
  E2E_AUTH=$a post "$E2E_KYC_PATH" "$(kyc_body "$(e2e_uuid)" NOT_VERIFIED PENDING)" >/dev/null
done
e2e_stop_kycd
no_secret "the server log (right, almost right and foreign tokens sent)" "$E2E_KYCD_LOG"

e2e_section "no core dump"
core=$E2E_TMP/core-test
mkdir -p "$core"
port=$(e2e_free_port)
e2e__env
e2e__std_env KYCD_LISTEN
E2E_ENV+=("KYCD_LISTEN=127.0.0.1:$port" "${extra[@]}")
(cd "$core" && ulimit -c unlimited && exec "${E2E_ENV[@]}" "$TEST_KYCD_BIN" serve) >"$core/kycd.log" 2>&1 &
pid=$!
e2e_track_pid "$pid"
e2e_logfmt_track "$core/kycd.log"
for _ in $(seq 1 100); do grep -q 'msg=listening' "$core/kycd.log" && break; sleep 0.1; done
kill -SEGV "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
mkdir -p "$core/control"
(cd "$core/control" && ulimit -c unlimited && exec sleep 30) &
ctl=$!
sleep 0.2
kill -SEGV "$ctl" 2>/dev/null || true
wait "$ctl" 2>/dev/null || true
kycd_cores=$(find "$core" -maxdepth 1 -name 'core*' -type f | wc -l)
ctl_cores=$(find "$core/control" -maxdepth 1 -name 'core*' -type f | wc -l)
if [ "$ctl_cores" = 0 ]; then
  fail "this machine wrote no core file for the control process (core_pattern: $(cat /proc/sys/kernel/core_pattern)): cannot show it"
elif [ "$kycd_cores" = 0 ]; then
  pass "a crashed kycd left no core file (the control process in the same conditions left one)"
else
  fail "kycd left a core file"
  for f in "$core"/core*; do no_secret "core file $f" "$f"; done
fi
rm -rf "$core"
