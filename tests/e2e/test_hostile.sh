#!/usr/bin/env bash
# End-to-end: the hostile-input table of README.md ("Hostile input"), each
# row sent over real TLS to the real kycd. For every row: the documented
# answer, nothing stored, and the server still serves a normal webhook
# right after. The unit tests (test_payload, test_handler) cover the same
# rows byte by byte; this proves them on the wire. Last, hostile text in
# log lines (paths, libpq errors): every line stays valid logfmt.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_fresh_db
e2e_start_kycd KYCD_REQUEST_TIMEOUT=1s

# row NAME EXPECTED_STATUS STATUS: assert the answer, that nothing was
# stored, and that a normal webhook still gets 200 afterwards.
before=$(events_count)
row() {
  local name=$1 expected=$2 got=$3 after
  assert_eq "$expected" "$got" "$name: answer $expected"
  after=$(events_count)
  assert_eq "$before" "$after" "$name: nothing stored"
  local u st
  u=$(e2e_uuid)
  st=$(post "$E2E_KYC_PATH" "$(kyc_body "$u" NOT_VERIFIED PENDING)")
  assert_eq 200 "$st" "$name: the server still serves a normal webhook"
  before=$(events_count)
}

# qrow NAME STATUS: an authentic body that fails validation: answered 200
# quarantined, kept once in kyc.quarantine (README "Quarantine and
# replay"), nothing in the event log; the server still serves.
qrow() {
  assert_contains "$(resp_body)" '"status":"quarantined"' "$1: quarantined"
  assert_eq $((qbefore + 1)) "$(sql "SELECT count(*) FROM kyc.quarantine")" "$1: kept once in kyc.quarantine"
  row "$1" 200 "$2"
  qbefore=$(sql "SELECT count(*) FROM kyc.quarantine")
}
qbefore=0

b=$E2E_TMP/body
ok_body() { kyc_body "$(e2e_uuid)" NOT_VERIFIED PENDING; }

e2e_section "bodies"
head -c 70000 /dev/zero | tr '\0' 'a' > "$b"
row "oversized body (70 KB, limit 64 KiB)" 413 "$(post "$E2E_KYC_PATH" "@$b")"
row "chunked body over the limit" 413 "$(post "$E2E_KYC_PATH" "@$b" -H 'Transfer-Encoding: chunked')"
printf '%s' "$(printf '[%.0s' $(seq 40))" > "$b"; printf '%s' "$(printf ']%.0s' $(seq 40))" >> "$b"
qrow "deep JSON nesting (40 levels)" "$(post "$E2E_KYC_PATH" "@$b")"
u=$(e2e_uuid)
qrow "duplicate keys" "$(post "$E2E_KYC_PATH" "{\"externalUserId\":\"$u\",\"externalUserId\":\"other\",\"verificationStatus\":\"VERIFIED\",\"attemptStatus\":\"SUCCESSFUL\"}")"
printf '{"externalUserId":"\xff\xfe","verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL"}' > "$b"
qrow "non-UTF-8 bytes" "$(post "$E2E_KYC_PATH" "@$b")"
printf '{"externalUserId":"a\0b","verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL"}' > "$b"
qrow "NUL byte" "$(post "$E2E_KYC_PATH" "@$b")"
qrow "\\u0000 escape" "$(post "$E2E_KYC_PATH" '{"externalUserId":"a\u0000b","verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL"}')"
qrow "number where a string belongs" "$(post "$E2E_KYC_PATH" '{"externalUserId":12345,"verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL"}')"
qrow "empty body" "$(post "$E2E_KYC_PATH" '')"
qrow "JSON array" "$(post "$E2E_KYC_PATH" '[1,2,3]')"
qrow "lone surrogate escape" "$(post "$E2E_KYC_PATH" '{"externalUserId":"\ud800","verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL"}')"
{ printf '{"externalUserId":"%s","verificationStatus":"NOT_VERIFIED","attemptStatus":"PENDING"' "$(e2e_uuid)"
  for i in $(seq 1 4000); do printf ',"g%d":%d' "$i" "$i"; done; printf '}'; } > "$b"
st=$(post "$E2E_KYC_PATH" "@$b")
assert_eq 200 "$st" "4,000 garbage fields beside the required ones (60 KB): accepted, extra fields ignored"
before=$(events_count)
u=$(e2e_uuid)
sqlish="x'); DROP TABLE kyc.verifications; --"
st=$(post "$E2E_KYC_PATH" "{\"externalUserId\":\"$u\",\"verificationStatus\":\"NOT_VERIFIED\",\"attemptStatus\":\"REJECTED_BY_PROVIDER\",\"rejectionReason\":\"$sqlish\"}")
assert_eq 200 "$st" "SQL-looking values are data: 200"
assert_eq "$sqlish" "$(sql "SELECT rejection_reason FROM kyc.verifications WHERE external_user_id = '$u'")" \
  "SQL-looking value stored literally"
assert_eq 1 "$(sql "SELECT count(*) FROM pg_tables WHERE schemaname = 'kyc' AND tablename = 'verifications'")" \
  "and the table is still there"
before=$(events_count)

e2e_section "headers"
big=$(head -c 20000 /dev/zero | tr '\0' 'h')
st=$(post "$E2E_KYC_PATH" "$(ok_body)" -H "X-Big: $big")
case $st in 400|431) pass "a huge header (20 KB): refused ($st)";; *) fail "a huge header: got $st";; esac
row "a huge header (20 KB): state" "$st" "$st"
hdrs=()
for i in $(seq 1 80); do hdrs+=(-H "X-H$i: v"); done
st=$(post "$E2E_KYC_PATH" "$(ok_body)" "${hdrs[@]}")
# CivetWeb keeps 64 headers and drops the rest, Content-Length among them:
# the body then reads as empty, which under the right token is an authentic
# delivery that fails validation, kept (empty) in the quarantine since
# schema 10 (README "Hostile input").
if [ "$st" = 200 ]; then
  assert_contains "$(resp_body)" '"status":"quarantined"' "80 headers: the body lost with the dropped headers, quarantined (200)"
  qbefore=$(sql "SELECT count(*) FROM kyc.quarantine")
else
  case $st in 400|431|000) pass "80 headers: refused ($st)";; *) fail "80 headers: got $st";; esac
fi
assert_eq "$before" "$(events_count)" "80 headers: nothing stored"
before=$(events_count)
st=$( (printf 'POST %s HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"externalUserId":"x"' \
      "$E2E_KYC_PATH" "$E2E_TOKEN"; sleep 4) | timeout 3 openssl s_client -connect "127.0.0.1:$E2E_PORT" -quiet 2>/dev/null \
      | head -n 1 | sed -nE 's/^HTTP\/1\.[01] ([0-9]{3}).*/\1/p' || true)
# The client sends 20 of the 500 bytes it declared and then goes quiet:
# kycd answers 408 when request_timeout (1 s here) runs out.
row "declared length larger than sent (cut short)" 408 "$st"

e2e_section "authorization, every shape"
long=$(head -c 5000 /dev/zero | tr '\0' 'A')
for shape in "" "Bearer" "Bearer " "bearer$E2E_TOKEN" "Basic $E2E_TOKEN" "${E2E_TOKEN%?}" "${E2E_TOKEN}x" \
             "x$E2E_TOKEN" " Bearer  x$E2E_TOKEN" "$long" "Bearer $long" "$(tr 'a-f' 'A-F' <<<"$E2E_TOKEN")"; do
  st=$(E2E_AUTH=$shape post "$E2E_KYC_PATH" "$(ok_body)")
  assert_eq 401 "$st" "Authorization '${shape:0:24}...' (${#shape} chars): 401"
done
st=$(E2E_AUTH="" post "$E2E_KYC_PATH" "$(ok_body)")
assert_eq 401 "$st" "no Authorization header: 401"
assert_eq "$before" "$(events_count)" "no refused request stored anything"
st=$(E2E_AUTH="Bearer $E2E_TOKEN  " post "$E2E_KYC_PATH" "$(ok_body)")
assert_eq 200 "$st" "the right token with trailing spaces (optional whitespace): 200"
assert_not_contains "$(cat "$E2E_KYCD_LOG")" "$E2E_TOKEN" "the token never appears in the log"

e2e_section "TLS"
st=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$E2E_PORT$E2E_KYC_PATH" -d '{}' || true)
case $st in 200) fail "plain HTTP to the TLS port got 200";; *) pass "plain HTTP to the TLS port: no HTTP answer ($st)";; esac
for v in tls1 tls1_1; do
  out=$(echo | timeout 5 openssl s_client -connect "127.0.0.1:$E2E_PORT" "-$v" -cipher 'DEFAULT@SECLEVEL=0' 2>&1 || true)
  assert_contains "$out" "alert protocol version" "$v client hello: refused with a protocol-version alert"
done
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(ok_body)")" "after all of it, a normal webhook still gets 200"

e2e_section "hostile values in log lines"
# kycd logs text it does not control: request paths, libpq's messages (with
# quotes and new lines), file paths. Each line must still be one valid
# logfmt line that reads back to the original text.
st=$(post "/webhooks/p100/a%22b%0Ac%5Cd%20e%09f%3Dg" "$(ok_body)")
assert_eq 404 "$st" "a path with a quote, newline, backslash, space, tab and =: 404"
# (CivetWeb turns the backslash into a slash while cleaning the path.)
assert_contains "$(cat "$E2E_KYCD_LOG")" 'path="/webhooks/p100/a\"b\nc/d e\tf=g" status=404' \
  "its request line carries the path quoted and escaped"
e2e_logfmt_check "$E2E_KYCD_LOG" "the server log after hostile paths"

sp="$E2E_TMP/spool \"q\" \\ x
y"
mkdir -p "$sp"
printf 'not a checkpoint\n' >"$sp/checkpoint"
e2e_kycd_cmd "KYCD_SPOOL_DIR=$sp" -- spool status
assert_eq 0 "$E2E_RC" "kycd spool status on a spool folder named with a quote, backslash and newline"
assert_contains "$(cat "$E2E_OUT")" \
  "msg=\"spool checkpoint unreadable, replaying from the oldest segment\" file=\"$E2E_TMP/spool \\\"q\\\" \\\\ x\\ny/checkpoint\"" \
  "the warning names that path, escaped"
e2e_logfmt_check "$E2E_OUT" "the spool warning with that path"

e2e_kycd_cmd --without KYCD_DATABASE_URL "KYCD_DATABASE_URL=$(e2e__with_db "$TEST_PG" "'no\"such\\\\ db'")" -- migrate
assert_ne 0 "$E2E_RC" "kycd migrate to a database named no\"such\\ db fails"
assert_contains "$(cat "$E2E_OUT")" 'database \"no\"such\\ db\" does not exist' \
  "the libpq error is logged with its quotes escaped"
e2e_logfmt_check "$E2E_OUT" "the database error line"
