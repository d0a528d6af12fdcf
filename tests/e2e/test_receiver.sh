#!/usr/bin/env bash
# End-to-end: the webhook receiver, one kycd for the whole group, real TLS on
# loopback, real PostgreSQL. Every answer of src/app/handler.h is checked
# over the wire, and for each refused request that nothing was stored.
# Finally the server log must hold neither the token nor any request body.
# shellcheck disable=SC2119,SC2120  # helpers with optional arguments
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_fresh_db
e2e_start_kycd

# A marker that only ever travels inside request bodies (never in a user id,
# which the log names on purpose): it must not reach the log.
MARK=bodymark$(openssl rand -hex 6)

# refused EXPECTED_STATUS MESSAGE COMMAND...: run a request, check its status
# and that kyc.webhook_events did not grow.
refused() {
  local expected=$1 msg=$2 before after status
  shift 2
  before=$(events_count)
  status=$("$@")
  after=$(events_count)
  assert_eq "$expected" "$status" "$msg: answer $expected"
  assert_eq "$before" "$after" "$msg: nothing stored"
}

# request id of the last answer, from its body
body_rid() { sed -nE 's/.*"requestId":"([^"]*)".*/\1/p' "$E2E_RESP_BODY"; }

# --- 200: a valid KYC webhook, bare token and Bearer --------------------------
e2e_section "valid KYC webhooks"
u1=$(e2e_uuid)
b1=$(kyc_body "$u1" NOT_VERIFIED PENDING)
st=$(E2E_AUTH=$E2E_TOKEN post "$E2E_KYC_PATH" "$b1")
assert_eq 200 "$st" "KYC webhook with the bare token: 200"
assert_contains "$(resp_body)" '"status":"stored"' "200 body says stored"
rid=$(resp_header X-Request-Id)
assert_match "$rid" '^[0-9a-f]{32}$' "X-Request-Id header present on 200"
assert_eq "$rid" "$(body_rid)" "X-Request-Id header equals the requestId in the body"
row=$(sql "SELECT kind, outcome, outcome_reason, request_id, host(remote_addr), encode(body_sha256,'hex'),
                  body->>'verificationStatus', body->>'attemptStatus', coalesce(repeat_of::text,'-'),
                  array_length(unknown_fields, 1) IS NULL
           FROM kyc.webhook_events WHERE external_user_id = '$u1'")
sha=$(printf '%s' "$b1" | openssl dgst -sha256 -r | cut -d' ' -f1)
assert_eq "kyc_verification_status|applied|first|$rid|127.0.0.1|$sha|NOT_VERIFIED|PENDING|-|t" "$row" \
  "event row: kind, outcome first, request id, peer, sha256 of the body, body, no repeat, no unknown fields"
assert_eq "NOT_VERIFIED|PENDING||webhook|t|" \
  "$(sql "SELECT verification_status, attempt_status, coalesce(rejection_reason,''), source,
                 last_event_id = (SELECT max(id) FROM kyc.webhook_events WHERE external_user_id = '$u1'),
                 coalesce(needs_check_reason,'')
          FROM kyc.verifications WHERE external_user_id = '$u1'")" \
  "verifications row holds the new state, from the webhook, nothing owed"
assert_eq "webhook|first||NOT_VERIFIED||PENDING|t" \
  "$(sql "SELECT c.source, c.reason, coalesce(c.old_verification_status,''), c.new_verification_status,
                 coalesce(c.old_attempt_status,''), c.new_attempt_status, c.event_id = e.id
          FROM kyc.status_changes c JOIN kyc.webhook_events e ON e.external_user_id = c.external_user_id
          WHERE c.external_user_id = '$u1'")" \
  "one status change (first), linked to the event"

st=$(post "$E2E_KYC_PATH" "$(kyc_body "$u1" NOT_VERIFIED VERIFICATION)")
assert_eq 200 "$st" "KYC webhook with 'Bearer <token>': 200"
st=$(E2E_AUTH="bearer $E2E_TOKEN" post "$E2E_KYC_PATH" "$(kyc_body "$u1" NOT_VERIFIED REJECTED_BY_PROVIDER "NO_FACE_FOUND")")
assert_eq 200 "$st" "KYC webhook with 'bearer <token>' (scheme in lower case): 200"
assert_eq "NOT_VERIFIED|REJECTED_BY_PROVIDER|NO_FACE_FOUND" \
  "$(sql "SELECT verification_status, attempt_status, rejection_reason FROM kyc.verifications WHERE external_user_id = '$u1'")" \
  "forward transitions applied: state is the rejected attempt with its reason"
assert_eq "first,forward,forward" \
  "$(sql "SELECT string_agg(reason, ',' ORDER BY id) FROM kyc.status_changes WHERE external_user_id = '$u1'")" \
  "status changes: first, forward, forward"
st=$(E2E_CT="application/json; charset=utf-8" post "$E2E_KYC_PATH" "$(kyc_body "$(e2e_uuid)" NOT_VERIFIED PENDING)")
assert_eq 200 "$st" "Content-Type with a charset parameter: 200"

# --- 401 ----------------------------------------------------------------------
e2e_section "401: token checks"
last=${E2E_TOKEN: -1}; other=0; [ "$last" = 0 ] && other=1
bad_tokens=("${E2E_TOKEN%?}$other" "${E2E_TOKEN%?}" "${E2E_TOKEN}0" "Bearer ${E2E_TOKEN:0:24}"
            "Basic $E2E_TOKEN" "Bearer  x$E2E_TOKEN")
bad_names=("last character changed" "one character short" "one character more"
           "first half only" "Basic scheme" "junk before it")
body401=$(kyc_body "$(e2e_uuid)" NOT_VERIFIED PENDING)
E2E_AUTH='' refused 401 "missing Authorization header" post "$E2E_KYC_PATH" "$body401"
assert_contains "$(resp_body)" '"error":"unauthorized"' "401 body is the generic error"
assert_eq "$(resp_header X-Request-Id)" "$(body_rid)" "X-Request-Id header equals requestId on a 401"
E2E_AUTH="Bearer wrong-token-0123456789abcdef" refused 401 "wrong token" post "$E2E_KYC_PATH" "$body401"
for i in "${!bad_tokens[@]}"; do
  E2E_AUTH=${bad_tokens[$i]} refused 401 "almost-right token (${bad_names[$i]})" post "$E2E_KYC_PATH" "$body401"
  b=$(resp_body)
  assert_match "$b" '^\{"error":"unauthorized","requestId":"[0-9a-f]{32}"\}$' "401 body is generic (error and requestId only)"
  assert_not_contains "$b" "${E2E_TOKEN:0:16}" "401 body does not echo any token"
done

# --- 404, 405, 415 ------------------------------------------------------------
e2e_section "404, 405, 415"
refused 404 "unknown webhook path" post /webhooks/p100/nope "$body401"
refused 404 "root path" post / "$body401"
refused 405 "GET on a webhook path" get "$E2E_KYC_PATH" -H "Authorization: Bearer $E2E_TOKEN"
assert_eq POST "$(resp_header Allow)" "405 names the allowed method in Allow"
refused 405 "PUT on a webhook path" post "$E2E_KYC_PATH" "$body401" -X PUT
assert_eq POST "$(resp_header Allow)" "405 (PUT) names the allowed method in Allow"
refused 405 "POST on /healthz" post /healthz "{}"
assert_eq "GET, HEAD" "$(resp_header Allow)" "405 on /healthz allows GET, HEAD"
E2E_CT=text/plain refused 415 "Content-Type text/plain" post "$E2E_KYC_PATH" "$body401"
E2E_CT='' refused 415 "no Content-Type (curl's form default)" post "$E2E_KYC_PATH" "$body401"

# --- 413 ----------------------------------------------------------------------
e2e_section "413: body limits"
big=$E2E_TMP/big.json
{ printf '{"externalUserId":"%s","verificationStatus":"NOT_VERIFIED","attemptStatus":"PENDING","pad":"' "$(e2e_uuid)"
  head -c 70000 /dev/zero | tr '\0' 'x'
  printf '"}'; } >"$big"
refused 413 "declared Content-Length over 64 KiB ($(stat -c %s "$big") bytes)" post "$E2E_KYC_PATH" "@$big"
assert_contains "$(resp_body)" payload_too_large "413 body names the error"
refused 413 "chunked body over 64 KiB" post "$E2E_KYC_PATH" "@$big" -H 'Transfer-Encoding: chunked'
small=$E2E_TMP/small.json
kyc_body "$(e2e_uuid)" NOT_VERIFIED PENDING >"$small"
st=$(post "$E2E_KYC_PATH" "@$small" -H 'Transfer-Encoding: chunked')
assert_eq 200 "$st" "chunked body under the limit: 200"

# --- quarantined ----------------------------------------------------------------
# An authentic body that fails validation was a 400; since schema 10 it is
# kept raw in kyc.quarantine and answered 200 (README "Quarantine and
# replay"): not in the event log, and the answer still quotes nothing.
e2e_section "200 quarantined: payloads that fail validation"
quarantined() {
  local msg=$1 q0
  shift
  q0=$(sql "SELECT count(*) FROM kyc.quarantine")
  refused 200 "$msg" "$@"
  assert_contains "$(resp_body)" '"status":"quarantined"' "$msg: quarantined"
  assert_eq $((q0 + 1)) "$(sql "SELECT count(*) FROM kyc.quarantine")" "$msg: kept in kyc.quarantine"
}
quarantined "malformed JSON" post "$E2E_KYC_PATH" "{\"externalUserId\":\"$MARK\",\"verificationStatus\":"
assert_not_contains "$(resp_body)" "$MARK" "the answer does not quote the request body"
quarantined "missing attemptStatus" post "$E2E_KYC_PATH" "{\"externalUserId\":\"$(e2e_uuid)\",\"verificationStatus\":\"VERIFIED\",\"note\":\"$MARK\"}"
assert_contains "$(sql "SELECT reason FROM kyc.quarantine ORDER BY id DESC LIMIT 1")" attemptStatus "its reason names the missing field"
quarantined "a number for verificationStatus" post "$E2E_KYC_PATH" "{\"externalUserId\":\"$(e2e_uuid)\",\"verificationStatus\":5,\"attemptStatus\":\"PENDING\"}"
quarantined "a number for externalUserId" post "$E2E_KYC_PATH" '{"externalUserId":12345,"verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL"}'
quarantined "empty body" post "$E2E_KYC_PATH" ""
quarantined "a JSON array" post "$E2E_KYC_PATH" "[1,2]"

# --- undocumented enum value ---------------------------------------------------
e2e_section "undocumented values"
uu=$(e2e_uuid)
st=$(post "$E2E_KYC_PATH" "$(kyc_body_undocumented "$uu" PARTIALLY_VERIFIED PENDING)")
assert_eq 200 "$st" "undocumented verificationStatus: 200"
assert_eq "verificationStatus|held|unknown_value|PARTIALLY_VERIFIED" \
  "$(sql "SELECT array_to_string(unknown_fields, ','), outcome, outcome_reason, body->>'verificationStatus'
          FROM kyc.webhook_events WHERE external_user_id = '$uu'")" \
  "undocumented value stored as sent, flagged in unknown_fields, held"
assert_eq "unknown_value" \
  "$(sql "SELECT coalesce(needs_check_reason,'') FROM kyc.verifications WHERE external_user_id = '$uu'")" \
  "user marked for a check (unknown_value)"
up=$(e2e_uuid)
st=$(post "$E2E_POA_PATH" "$(status_body_undocumented "$up" MAYBE_LATER)")
assert_eq 200 "$st" "undocumented POA status: 200"
assert_eq "status" "$(sql "SELECT array_to_string(unknown_fields, ',') FROM kyc.webhook_events WHERE external_user_id = '$up'")" \
  "undocumented POA status flagged in unknown_fields"

# --- duplicates ---------------------------------------------------------------
e2e_section "duplicates"
ud=$(e2e_uuid)
bd=$(kyc_body "$ud" NOT_VERIFIED VERIFICATION)
st1=$(post "$E2E_KYC_PATH" "$bd")
st2=$(post "$E2E_KYC_PATH" "$bd")
assert_eq "200 200" "$st1 $st2" "the same body twice: 200 both times"
assert_eq "2" "$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id = '$ud'")" "two events stored"
assert_eq "t|unchanged|repeat" \
  "$(sql "SELECT e2.repeat_of = e1.id, e2.outcome, e2.outcome_reason
          FROM kyc.webhook_events e1 JOIN kyc.webhook_events e2 ON e2.external_user_id = e1.external_user_id AND e2.id > e1.id
          WHERE e1.external_user_id = '$ud' AND e1.repeat_of IS NULL")" \
  "the second has repeat_of = the first, outcome unchanged (repeat)"
assert_eq 1 "$(sql "SELECT count(*) FROM kyc.status_changes WHERE external_user_id = '$ud'")" "one status change"

# --- out of order -------------------------------------------------------------
e2e_section "out of order"
uo=$(e2e_uuid)
st1=$(post "$E2E_KYC_PATH" "$(kyc_body "$uo" NOT_VERIFIED VERIFICATION)")
st2=$(post "$E2E_KYC_PATH" "$(kyc_body "$uo" NOT_VERIFIED PENDING)")
assert_eq "200 200" "$st1 $st2" "VERIFICATION then PENDING: 200 both"
assert_eq "held|out_of_order" \
  "$(sql "SELECT outcome, outcome_reason FROM kyc.webhook_events WHERE external_user_id = '$uo' ORDER BY id DESC LIMIT 1")" \
  "the late PENDING is held (out_of_order)"
assert_eq "NOT_VERIFIED|VERIFICATION|out_of_order|t" \
  "$(sql "SELECT verification_status, attempt_status, needs_check_reason, next_check_at IS NOT NULL
          FROM kyc.verifications WHERE external_user_id = '$uo'")" \
  "state stays VERIFICATION, needs_check_reason = out_of_order, check scheduled"
assert_eq 1 "$(sql "SELECT count(*) FROM kyc.status_changes WHERE external_user_id = '$uo'")" "only the first report changed the state"

uv=$(e2e_uuid)
st1=$(post "$E2E_KYC_PATH" "$(kyc_body "$uv" VERIFIED SUCCESSFUL)")
st2=$(post "$E2E_KYC_PATH" "$(kyc_body "$uv" NOT_VERIFIED REJECTED_BY_PROVIDER NO_FACE_FOUND)")
assert_eq "200 200" "$st1 $st2" "VERIFIED then NOT_VERIFIED: 200 both"
assert_eq "held|leaves_verified" \
  "$(sql "SELECT outcome, outcome_reason FROM kyc.webhook_events WHERE external_user_id = '$uv' ORDER BY id DESC LIMIT 1")" \
  "NOT_VERIFIED after VERIFIED is held (leaves_verified)"
assert_eq "VERIFIED|SUCCESSFUL|leaves_verified" \
  "$(sql "SELECT verification_status, attempt_status, needs_check_reason FROM kyc.verifications WHERE external_user_id = '$uv'")" \
  "state stays VERIFIED, needs_check_reason = leaves_verified"

# --- the other webhooks -------------------------------------------------------
e2e_section "POA, KYC file added, user status"
ua=$(e2e_uuid)
st1=$(post "$E2E_POA_PATH" "$(status_body "$ua" WAITING)")
st2=$(post "$E2E_POA_PATH" "$(status_body "$ua" APPROVED)")
assert_eq "200 200" "$st1 $st2" "POA WAITING then APPROVED: 200 both"
assert_eq "poa_verification_status:applied,poa_verification_status:applied" \
  "$(sql "SELECT string_agg(kind || ':' || outcome, ',' ORDER BY id) FROM kyc.webhook_events WHERE external_user_id = '$ua'")" \
  "both POA deliveries stored and applied"
assert_eq "APPROVED|t" \
  "$(sql "SELECT status, last_event_id = (SELECT max(id) FROM kyc.webhook_events WHERE external_user_id = '$ua')
          FROM kyc.poa_statuses WHERE external_user_id = '$ua'")" \
  "kyc.poa_statuses holds the latest POA status"
st=$(post "$E2E_FILE_PATH" "$(status_body "$ua" ADDED)")
assert_eq 200 "$st" "KYC file added: 200"
st=$(post "$E2E_USER_PATH" "$(status_body "$ua" ACTIVE)")
assert_eq 200 "$st" "user status: 200"
assert_eq "kyc_file_added:recorded:ADDED,user_status:recorded:ACTIVE" \
  "$(sql "SELECT string_agg(kind || ':' || outcome || ':' || (body->>'status'), ',' ORDER BY id)
          FROM kyc.webhook_events WHERE external_user_id = '$ua' AND kind IN ('kyc_file_added', 'user_status')")" \
  "file-added and user-status deliveries stored (recorded)"
assert_eq 0 "$(sql "SELECT count(*) FROM kyc.verifications WHERE external_user_id = '$ua'")" \
  "the other webhooks do not invent a KYC state"

# --- health -------------------------------------------------------------------
e2e_section "health"
assert_eq 200 "$(get /healthz)" "/healthz: 200"
assert_contains "$(resp_body)" '"status":"up"' "/healthz body"
assert_eq 200 "$(get /readyz)" "/readyz: 200"
assert_contains "$(resp_body)" '"status":"ready"' "/readyz body"
assert_eq 200 "$(get /healthz -I)" "HEAD /healthz: 200"

# --- TLS ----------------------------------------------------------------------
e2e_section "TLS versions"
# SECLEVEL=0 lets this OpenSSL 3 client really offer TLS 1.0/1.1 (its own
# defaults refuse them), so a failure is the server's refusal; the alert
# proves the server answered the ClientHello with "protocol version".
for v in tls1 tls1_1; do
  out=$(timeout 10 openssl s_client -connect "127.0.0.1:$E2E_PORT" -servername localhost \
          -CAfile "$E2E_CA" "-$v" -cipher 'DEFAULT:@SECLEVEL=0' </dev/null 2>&1) && rc=0 || rc=$?
  assert_ne 0 "$rc" "openssl s_client -$v: handshake fails"
  assert_contains "$out" "alert protocol version" "-$v: refused by the server (protocol version alert)"
done
for v in tls1_2 tls1_3; do
  out=$(timeout 10 openssl s_client -connect "127.0.0.1:$E2E_PORT" -servername localhost \
          -CAfile "$E2E_CA" -verify_return_error "-$v" </dev/null 2>&1) && rc=0 || rc=$?
  assert_eq 0 "$rc" "openssl s_client -$v: handshake succeeds"
  want=TLSv1.2; [ "$v" = tls1_3 ] && want=TLSv1.3
  assert_contains "$out" "New, $want" "-$v: negotiated $want"
  assert_contains "$out" "Verify return code: 0 (ok)" "-$v: certificate verifies against the dev CA"
done
before=$(events_count)
pst=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $E2E_TOKEN" \
        -H 'Content-Type: application/json' --data-binary "$(kyc_body "$(e2e_uuid)" NOT_VERIFIED PENDING)" \
        "http://127.0.0.1:$E2E_PORT$E2E_KYC_PATH" || true)
assert_ne 200 "$pst" "plain HTTP to the TLS port gets no HTTP 200 (got '$pst')"
assert_eq "$before" "$(events_count)" "plain HTTP webhook: nothing stored"

# --- keep-alive ---------------------------------------------------------------
e2e_section "keep-alive"
uk=$(e2e_uuid)
ka=$(curl -sS --max-time 20 --cacert "$E2E_CA" -H "Authorization: Bearer $E2E_TOKEN" \
       -H 'Content-Type: application/json' --data-binary "$(kyc_body "$uk" NOT_VERIFIED PENDING)" \
       -o /dev/null -o /dev/null -w '%{http_code}:%{num_connects} ' \
       "$(e2e_url "$E2E_KYC_PATH")" "$(e2e_url "$E2E_KYC_PATH")" 2>&1 || true)
assert_eq "200:1 200:0 " "$ka" "two requests in one curl: one TLS connection, reused (num_connects 1 then 0)"

# The whole answer (status line, headers, body) in one TLS record: kycd
# writes it at once (CivetWeb's header calls write each line on its own, a
# record and a TCP segment each). Records the client received after the
# last session ticket, up to the server's close_notify alert (the body
# ends without a newline: a record line may follow it on the same line).
ur=$(e2e_uuid)
br=$(kyc_body "$ur" NOT_VERIFIED PENDING)
recs=$(printf 'POST %s HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
         "$E2E_KYC_PATH" "$E2E_TOKEN" "${#br}" "$br" |
       timeout 20 openssl s_client -connect "127.0.0.1:$E2E_PORT" -servername localhost -CAfile "$E2E_CA" \
         -msg -ign_eof -quiet 2>&1 || true)
assert_contains "$recs" "HTTP/1.1 200 OK" "raw TLS request answered 200"
assert_contains "$recs" "Connection: close" "the answer to 'Connection: close' says close"
assert_match "$(grep -m1 '^Date: ' <<<"$recs" | tr -d '\r')" '^Date: [A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9:]{8} GMT$' "the answer carries an HTTP Date"
n=$(awk '/NewSessionTicket/{n=0; next} /<<<.*RecordHeader/{n++} /<<<.*Alert/{print n - 1; exit}' <<<"$recs")
assert_eq 1 "$n" "the answer arrived in one TLS record"

# HEAD: the GET answer's headers, no body. Bytes after them would be read
# by a keep-alive client as its next answer: HEAD then GET on one TLS
# connection must give exactly two answers, the second one whole.
for path in /healthz "$E2E_KYC_PATH"; do
  two=$(printf 'HEAD %s HTTP/1.1\r\nHost: localhost\r\n\r\nGET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$path" |
        timeout 20 openssl s_client -connect "127.0.0.1:$E2E_PORT" -servername localhost -CAfile "$E2E_CA" \
          -ign_eof -quiet 2>/dev/null | tr -d '\r' || true)
  first=$(awk '/^HTTP\/1.1 /{n++} n == 1' <<<"$two")
  # A refusal closes the connection (the webhook path refuses HEAD): then
  # one answer, still without a body.
  want=2
  if [ "$path" != /healthz ]; then want=1; fi
  assert_eq "$want" "$(grep -c '^HTTP/1.1 ' <<<"$two")" "HEAD $path then GET on one connection: $want answer(s)"
  assert_match "$(grep '^Content-Length: ' <<<"$first")" '^Content-Length: [1-9]' \
    "HEAD $path: Content-Length says the GET body's size"
  assert_eq "" "$(awk 'body {print} /^$/ {body = 1}' <<<"$first")" "HEAD $path: no body before the next answer"
done

# --- concurrency --------------------------------------------------------------
e2e_section "concurrency: 20 clients x 25 requests"
run=c$(openssl rand -hex 4)
before=$(events_count)
pids=()
for c in $(seq 1 20); do
  cfg=$E2E_TMP/conc.$c.cfg
  : >"$cfg"
  for r in $(seq 1 25); do
    [ "$r" = 1 ] || echo next >>"$cfg"
    cat >>"$cfg" <<EOF
url = "$(e2e_url "$E2E_KYC_PATH")"
cacert = "$E2E_CA"
header = "Authorization: Bearer $E2E_TOKEN"
header = "Content-Type: application/json"
data-binary = "{\"externalUserId\":\"$run-$c-$r\",\"verificationStatus\":\"NOT_VERIFIED\",\"attemptStatus\":\"PENDING\",\"note\":\"$MARK\"}"
output = "/dev/null"
write-out = "%{http_code}\n"
max-time = 40
silent
EOF
  done
  curl -K "$cfg" >"$E2E_TMP/conc.$c.out" 2>"$E2E_TMP/conc.$c.err" &
  pids+=($!)
  e2e_track_pid "$!"
done
for p in "${pids[@]}"; do wait "$p" || true; done
ok=$(cat "$E2E_TMP"/conc.*.out | grep -c '^200$' || true)
assert_eq 500 "$ok" "500 concurrent requests all answered 200 ($(cat "$E2E_TMP"/conc.*.out | sort | uniq -c | tr -s ' \n' ' '))"
assert_eq 500 "$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id LIKE '$run-%'")" "500 events stored"
assert_eq 500 "$(sql "SELECT count(DISTINCT external_user_id) FROM kyc.verifications WHERE external_user_id LIKE '$run-%'")" "500 users in kyc.verifications"
assert_eq $((before + 500)) "$(events_count)" "no other event appeared"
assert_eq 1 "$(kill -0 "$E2E_KYCD_PID" 2>/dev/null && echo 1 || echo 0)" "kycd still running after the load"

# --- the log ------------------------------------------------------------------
e2e_section "the server log"
e2e_stop_kycd
log=$(cat "$E2E_KYCD_LOG")
assert_not_contains "$log" "$E2E_TOKEN" "the token never appears in the log"
assert_not_contains "$log" "${E2E_TOKEN:0:16}" "no part of the token (first 16 characters) appears in the log"
assert_not_contains "$log" "$MARK" "no request body appears in the log"
assert_not_contains "$log" "NO_FACE_FOUND" "no body field (rejectionReason) appears in the log"
assert_not_contains "$log" "PARTIALLY_VERIFIED" "no undocumented body value appears in the log"
n200=$(grep -c 'msg=request .*status=200' "$E2E_KYCD_LOG" || true)
assert_eq 1 "$([ "$n200" -ge 520 ] && echo 1 || echo 0)" "one request line per answered request ($n200 lines with status=200)"
assert_match "$(grep -m1 'status=401' "$E2E_KYCD_LOG")" 'rid=[0-9a-f]{32} .*status=401 .*error=' "refusals are logged with rid, status and a reason"
