#!/usr/bin/env bash
# End-to-end: kycd's life cycle. Refusals at start (no token, unmigrated
# database, missing certificate, unknown KYCD_* variable), `kycd config`
# redaction and secrets refused as flags, two migrations at once, graceful
# shutdown with a request in flight, and token rotation.
# shellcheck disable=SC2119,SC2120  # helpers with optional arguments
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_certs
e2e_fresh_db
e2e_migrate
MIGRATED_DB=$E2E_DB_URL

# refuses_to_start MESSAGE NEEDLE: the last e2e_kycd_cmd exited non-zero,
# within its timeout, saying NEEDLE.
refuses_to_start() {
  local msg=$1 needle=$2 out
  out=$(cat "$E2E_OUT")
  if [ "$E2E_RC" = 124 ] || [ "$E2E_RC" = 137 ]; then
    fail "$msg: still running at the deadline (exit $E2E_RC)"
  else
    assert_ne 0 "$E2E_RC" "$msg: exits non-zero (exit $E2E_RC, ${E2E_SECS} s)"
  fi
  assert_contains "$out" "$needle" "$msg: message names '$needle'"
  assert_not_contains "$out" "msg=listening" "$msg: never listened"
}

# --- (a) no token -------------------------------------------------------------
e2e_section "(a) no webhook token"
E2E_PORT=$(e2e_free_port)
e2e_kycd_cmd --timeout 5 --without KYCD_WEBHOOK_TOKENS_FILE -- serve
refuses_to_start "serve without a token" KYCD_WEBHOOK_TOKENS
short=$E2E_TMP/short-token
echo "tooshort" >"$short"
e2e_kycd_cmd --timeout 5 --without KYCD_WEBHOOK_TOKENS_FILE "KYCD_WEBHOOK_TOKENS_FILE=$short" -- serve
refuses_to_start "serve with an 8-character token" "shorter than"
assert_not_contains "$(cat "$E2E_OUT")" tooshort "the refused token is not quoted"

# --- (b) unmigrated database --------------------------------------------------
e2e_section "(b) unmigrated database"
e2e_fresh_db
e2e_kycd_cmd --timeout 10 -- serve
refuses_to_start "serve against an unmigrated database" "kycd migrate"
E2E_DB_URL=$MIGRATED_DB

# --- (c) missing certificate --------------------------------------------------
e2e_section "(c) missing certificate"
missing=$E2E_TMP/no-such-dir/server.pem
e2e_kycd_cmd --timeout 10 --without KYCD_TLS_CERT "KYCD_TLS_CERT=$missing" -- serve
refuses_to_start "serve with a missing certificate file" "$missing"
missing_key=$E2E_TMP/no-such-dir/server.key
e2e_kycd_cmd --timeout 10 --without KYCD_TLS_KEY "KYCD_TLS_KEY=$missing_key" -- serve
refuses_to_start "serve with a missing key file" "$missing_key"

# --- (d) unknown KYCD_* variable ----------------------------------------------
e2e_section "(d) unknown KYCD_ variable"
e2e_kycd_cmd --timeout 5 KYCD_FOO=bar -- serve
refuses_to_start "serve with KYCD_FOO set" KYCD_FOO
e2e_kycd_cmd --timeout 5 KYCD_WEBHOOK_TOKEN=0123456789abcdef0123 -- config
refuses_to_start "config with a misspelt KYCD_WEBHOOK_TOKEN" KYCD_WEBHOOK_TOKEN
assert_not_contains "$(cat "$E2E_OUT")" 0123456789abcdef0123 "the misspelt variable's value is not quoted"

# --- (e) kycd config redacts; secrets refused as flags ------------------------
e2e_section "(e) config redaction and secret flags"
tok_secret=tok$(openssl rand -hex 12)
pw_uri=pwuri$(openssl rand -hex 6)
pw_kv=pwkv$(openssl rand -hex 6)
pw_plain=pwplain$(openssl rand -hex 6)
e2e_kycd_cmd --bare "KYCD_WEBHOOK_TOKENS=$tok_secret" \
  "KYCD_DATABASE_URL=postgresql://kycd:$pw_uri@127.0.0.1:5432/kyc?sslmode=disable" -- config
out=$(cat "$E2E_OUT")
assert_eq 0 "$E2E_RC" "kycd config exits 0"
assert_not_contains "$out" "$tok_secret" "config does not print the webhook token"
assert_not_contains "$out" "$pw_uri" "config does not print the password in a URI database_url"
assert_contains "$out" "webhook_tokens = (redacted)" "config shows webhook_tokens as (redacted)"
assert_contains "$out" "postgresql://kycd:***@127.0.0.1:5432/kyc" "config shows the URI password as ***"
e2e_kycd_cmd --bare "KYCD_DATABASE_URL=host=127.0.0.1 user=kycd password=$pw_kv dbname=kyc" \
  "KYCD_DATABASE_PASSWORD=$pw_plain" -- config
out=$(cat "$E2E_OUT")
assert_eq 0 "$E2E_RC" "kycd config (keyword conninfo) exits 0"
assert_not_contains "$out" "$pw_kv" "config does not print password= of a keyword conninfo"
assert_contains "$out" "password=***" "config shows password=***"
assert_not_contains "$out" "$pw_plain" "config does not print database_password"
assert_contains "$out" "database_password = (redacted)" "database_password shown as (redacted)"
for form in "--webhook-tokens $tok_secret" "--webhook-tokens=$tok_secret" "--database-password $pw_plain"; do
  # shellcheck disable=SC2086  # the flag and its value are two words on purpose
  e2e_kycd_cmd --bare -- config $form
  out=$(cat "$E2E_OUT")
  label=${form%%[ =]*}; label="$label${form:${#label}:1}VALUE"   # the flag, its separator, no value
  assert_ne 0 "$E2E_RC" "secret as a flag ($label) is refused"
  assert_contains "$out" "secret" "the refusal says it is a secret"
  assert_not_contains "$out" "$tok_secret" "the refusal does not echo the token"
  assert_not_contains "$out" "$pw_plain" "the refusal does not echo the password"
done
e2e_kycd_cmd --timeout 5 -- serve --webhook-tokens "$tok_secret"
refuses_to_start "serve with --webhook-tokens" KYCD_WEBHOOK_TOKENS_FILE

# --- (f) two migrations at once -----------------------------------------------
e2e_section "(f) concurrent migrate"
e2e_fresh_db
e2e__env
e2e__std_env
m_pids=()
for i in 1 2; do
  timeout -k 2 60 "${E2E_ENV[@]}" "$TEST_KYCD_BIN" migrate >"$E2E_TMP/migrate.$i.out" 2>&1 &
  m_pids+=($!)
  e2e_track_pid "$!"
done
for i in 1 2; do
  rc=0
  wait "${m_pids[$((i - 1))]}" || rc=$?
  assert_eq 0 "$rc" "concurrent kycd migrate #$i exits 0 ($(tr '\n' ' ' <"$E2E_TMP/migrate.$i.out"))"
  e2e__sanitizer_check "$E2E_TMP/migrate.$i.out" "concurrent kycd migrate #$i"
done
nfiles=$(find "$TEST_KYCD_SRC/sql" -maxdepth 1 -name '[0-9][0-9][0-9]_*.sql' | wc -l)
assert_eq "$nfiles|$nfiles" "$(sql "SELECT count(*), count(DISTINCT version) FROM kyc.schema_migrations")" \
  "kyc.schema_migrations has each of the $nfiles versions exactly once"
# The versions of the files (a number may be missing while a migration is
# being written on another branch, e.g. 010).
versions=$(find "$TEST_KYCD_SRC/sql" -maxdepth 1 -name '[0-9][0-9][0-9]_*.sql' -printf '%f\n' |
  sed -E 's/^0*([0-9]+)_.*/\1/' | sort -n | paste -sd,)
assert_eq "$versions" "$(sql "SELECT string_agg(version::text, ',' ORDER BY version) FROM kyc.schema_migrations")" \
  "the versions of sql/ recorded ($versions)"
e2e_kycd_cmd -- migrate
assert_eq 0 "$E2E_RC" "a third migrate on the migrated database exits 0"
assert_contains "$(cat "$E2E_OUT")" "applied=0" "a third migrate applies nothing"
E2E_DB_URL=$MIGRATED_DB

# --- (g) graceful shutdown with a request in flight ---------------------------
e2e_section "(g) graceful shutdown, request in flight"
e2e_start_kycd --no-migrate
ug=$(e2e_uuid)
slow=$E2E_TMP/slow.json
{ printf '{"externalUserId":"%s","verificationStatus":"NOT_VERIFIED","attemptStatus":"PENDING","padding":"' "$ug"
  head -c 20000 /dev/zero | tr '\0' 'x'
  printf '"}'; } >"$slow"
# ~20 KB at 4 KB/s: about 5 s on the wire, inside kycd's default 10 s
# request and shutdown timeouts.
t0=$SECONDS
curl -sS --max-time 30 --cacert "$E2E_CA" --limit-rate 4k \
  -H "Authorization: Bearer $E2E_TOKEN" -H 'Content-Type: application/json' --data-binary "@$slow" \
  -o "$E2E_TMP/slow.body" -w '%{http_code}' "$(e2e_url "$E2E_KYC_PATH")" \
  >"$E2E_TMP/slow.status" 2>"$E2E_TMP/slow.err" &
slow_pid=$!
e2e_track_pid "$slow_pid"
sleep 1.5
kill -0 "$slow_pid" 2>/dev/null && in_flight=1 || in_flight=0
assert_eq 1 "$in_flight" "the slow request is still in flight when SIGTERM is sent"
kill -TERM "$E2E_KYCD_PID"
wait "$slow_pid" || true
slow_status=$(cat "$E2E_TMP/slow.status")
assert_eq 200 "$slow_status" "the in-flight request still gets 200 after SIGTERM (curl: $(cat "$E2E_TMP/slow.err"), $((SECONDS - t0)) s)"
assert_eq 1 "$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id = '$ug'")" \
  "the in-flight request's row is stored"
e2e_stop_kycd --signaled "kycd (graceful shutdown)"
if [ "$slow_status" != 200 ]; then
  grep -E 'shutting down|msg=request|msg=stopped' "$E2E_KYCD_LOG" | sed 's/^/  kycd: /'
fi
assert_eq 000 "$(get /healthz --max-time 3)" "after exit nothing listens on the port"

# --- (h) token rotation -------------------------------------------------------
e2e_section "(h) token rotation"
tok_a=rotA$(openssl rand -hex 12)
tok_b=rotB$(openssl rand -hex 12)
rot=$E2E_TMP/rotation-tokens
printf '%s, %s\n' "$tok_a" "$tok_b" >"$rot"
e2e_start_kycd --no-migrate "KYCD_WEBHOOK_TOKENS_FILE=$rot"
assert_contains "$(grep -m1 msg=listening "$E2E_KYCD_LOG")" "tokens=2" "kycd reports two tokens"
ua=$(e2e_uuid)
assert_eq 200 "$(E2E_AUTH="Bearer $tok_a" post "$E2E_KYC_PATH" "$(kyc_body "$ua" NOT_VERIFIED PENDING)")" "the old token is accepted"
assert_eq 200 "$(E2E_AUTH="$tok_b" post "$E2E_KYC_PATH" "$(kyc_body "$ua" NOT_VERIFIED VERIFICATION)")" "the new token is accepted"
assert_eq 401 "$(post "$E2E_KYC_PATH" "$(kyc_body "$ua" VERIFIED SUCCESSFUL)")" "a token not in the file is refused"
assert_eq 2 "$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id = '$ua'")" "both accepted deliveries stored"
e2e_stop_kycd "kycd (rotation)"
log=$(cat "$E2E_KYCD_LOG")
assert_not_contains "$log" "$tok_a" "token A not in the log"
assert_not_contains "$log" "$tok_b" "token B not in the log"
