#!/usr/bin/env bash
# End-to-end: SIGHUP reloads the configuration without a restart (README,
# "Reload"). Over real TLS:
#   - token A -> token B in the tokens file, SIGHUP, under a steady stream of
#     requests with both: A goes from 200 to 401 and B from 401 to 200 once,
#     and no request fails any other way;
#   - a broken tokens file, SIGHUP: the old tokens keep working, the failure
#     is logged naming the key and counted in /readyz;
#   - a key that cannot change live (in the config file): kept, and named in
#     one warning;
#   - the certificate and key replaced under the same names, SIGHUP: a new
#     connection sees the new certificate's serial;
#   - a key file that does not match, SIGHUP: the new certificate keeps
#     serving;
#   - kycd is still running after every SIGHUP and stops with exit 0.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v python3 >/dev/null || e2e_abort "python3 is needed (deploy/packages.sh lists it)"
e2e_fresh_db
e2e_certs

CONF=$E2E_TMP/kycd.conf
printf 'dedup_window = 10m\n' >"$CONF"
TOKEN_A=$E2E_TOKEN
TOKEN_B=$(openssl rand -hex 24)
e2e_start_kycd KYCD_LOG_LEVEL=info "KYCD_CONFIG=$CONF"

reloads() { admin_get /readyz >/dev/null; json_num "$1" "$(resp_body)"; }
# reload_metric RESULT: kycd_config_reloads_total{result="RESULT"} on /metrics.
reload_metric() {
  admin_get /metrics >/dev/null
  awk -v want="kycd_config_reloads_total{result=\"$1\"}" '$1 == want {print $2}' "$E2E_RESP_BODY"
}
# hup: SIGHUP, then wait for the Nth reload line (success or failure).
hup() {
  local want=$1
  kill -HUP "$E2E_KYCD_PID"
  e2e_wait_cmd 10 bash -c "[ \$(grep -c 'msg=\"configuration reload' '$E2E_KYCD_LOG') -ge $want ]" ||
    fail "no reload line ($want) within 10 s"
}
serial_of() { openssl x509 -noout -serial -in "$1" | cut -d= -f2; }
served_serial() {
  timeout 10 openssl s_client -connect "127.0.0.1:$E2E_PORT" -servername localhost </dev/null 2>/dev/null |
    openssl x509 -noout -serial 2>/dev/null | cut -d= -f2
}

# --- token rotation under load ----------------------------------------------------
e2e_section "token A -> B under a stream of requests"
stream=$E2E_TMP/stream.out
python3 - "$E2E_PORT" "$E2E_CA" "$E2E_KYC_PATH" "$TOKEN_A" "$TOKEN_B" "$E2E_TMP/stream.go" >"$stream" <<'PY' &
import http.client, json, os, ssl, sys, time, uuid
port, ca, path, a, b, go = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
ctx = ssl.create_default_context(cafile=ca)
end = time.monotonic() + 30
while time.monotonic() < end and not os.path.exists(go + ".stop"):
    for name, tok in (("A", a), ("B", b)):
        body = json.dumps({"externalUserId": str(uuid.uuid4()), "verificationStatus": "NOT_VERIFIED",
                           "attemptStatus": "PENDING"})
        try:
            c = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
            c.request("POST", path, body, {"Authorization": "Bearer " + tok,
                                           "Content-Type": "application/json"})
            st = c.getresponse().status
            c.close()
        except Exception as e:
            st = "error:" + type(e).__name__
        print("%.3f %s %s" % (time.monotonic(), name, st), flush=True)
PY
streamer=$!
e2e_track_pid "$streamer"
e2e_wait_cmd 10 bash -c "[ \$(wc -l <'$stream') -ge 40 ]" || fail "the request stream did not start"
printf '%s\n' "$TOKEN_B" >"$E2E_TOKEN_FILE"
hup 1
n0=$(wc -l <"$stream")
e2e_wait_cmd 10 bash -c "[ \$(wc -l <'$stream') -ge $((n0 + 40)) ]" || fail "the request stream stopped"
: >"$E2E_TMP/stream.go.stop"
wait "$streamer" 2>/dev/null || true
echo "stream: $(wc -l <"$stream") requests; $(awk '{print $2, $3}' "$stream" | sort | uniq -c | tr '\n' ';')"
assert_eq 0 "$(awk '$3 != 200 && $3 != 401' "$stream" | wc -l)" "every request got 200 or 401 (no error, no other status)"
# Each token switches once: A 200...200 401...401, B 401...401 200...200.
switches() { awk -v t="$1" '$2 == t { if (prev != "" && $3 != prev) n++; prev = $3 } END { print n + 0 }' "$stream"; }
assert_eq "1 1" "$(switches A) $(switches B)" "A and B each switch exactly once"
assert_eq "200 401" "$(awk '$2 == "A" {print $3}' "$stream" | head -n 1) $(awk '$2 == "A" {print $3}' "$stream" | tail -n 1)" \
  "A: 200 before the reload, 401 after"
assert_eq "401 200" "$(awk '$2 == "B" {print $3}' "$stream" | head -n 1) $(awk '$2 == "B" {print $3}' "$stream" | tail -n 1)" \
  "B: 401 before the reload, 200 after"
assert_contains "$(grep 'msg="configuration reloaded"' "$E2E_KYCD_LOG")" "changed=webhook_tokens" \
  "the reload line names the key that changed (never its value)"
assert_not_contains "$(cat "$E2E_KYCD_LOG")" "$TOKEN_B" "the new token is not in the log"
E2E_TOKEN=$TOKEN_B
E2E_AUTH="Bearer $TOKEN_B"

# --- a broken tokens file -----------------------------------------------------------
e2e_section "a broken tokens file keeps the old tokens"
failures_before=$(reload_metric failure)
assert_eq "0 1" "${failures_before:-none} $(reload_metric success)" \
  "/metrics before: kycd_config_reloads_total 0 failures, 1 success"
printf 'short\n' >"$E2E_TOKEN_FILE"
hup 2
assert_contains "$(grep 'reload failed' "$E2E_KYCD_LOG")" "webhook" "the failure names the key"
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "$(e2e_uuid)" NOT_VERIFIED PENDING)")" "token B still gets 200"
assert_eq "1 1" "$(reloads reloads) $(reloads reload_failures)" "/readyz counts 1 reload and 1 failure"
assert_eq "1 1" "$(reload_metric failure) $(reload_metric success)" \
  "/metrics: kycd_config_reloads_total{result=\"failure\"} moved to 1 on the broken reload"
printf '%s\n' "$TOKEN_B" >"$E2E_TOKEN_FILE"

# --- a key that needs a restart -----------------------------------------------------
e2e_section "a key that cannot change live"
printf 'dedup_window = 20m\n' >"$CONF"
hup 3
assert_contains "$(grep 'need a restart' "$E2E_KYCD_LOG")" "keys=dedup_window" "kept, and named in one warning"

# --- the certificate ----------------------------------------------------------------
e2e_section "the certificate renewed under the same file names"
old_serial=$(serial_of "$E2E_CERT")
assert_eq "$old_serial" "$(served_serial)" "before: the first certificate"
timeout 60 bash "$TEST_KYCD_SRC/certs/make-dev-certs.sh" "$E2E_TMP/certs2" >/dev/null
new_serial=$(serial_of "$E2E_TMP/certs2/server.pem")
assert_ne "$old_serial" "$new_serial" "the new certificate has another serial"
cp "$E2E_TMP/certs2/server.pem" "$E2E_CERT"
cp "$E2E_TMP/certs2/server.key" "$E2E_KEY"
cp "$E2E_TMP/certs2/chain.pem" "$E2E_CHAIN"
hup 4
assert_eq "$new_serial" "$(served_serial)" "after SIGHUP a new connection gets the new certificate"
E2E_CA=$E2E_TMP/certs2/ca.pem
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "$(e2e_uuid)" NOT_VERIFIED PENDING)")" \
  "and webhooks over it get 200 (verified against the new CA)"

e2e_section "a key that does not match keeps the certificate that works"
cp "$E2E_TMP/certs2/ca.key" "$E2E_KEY"
hup 5
assert_contains "$(grep 'reload failed' "$E2E_KYCD_LOG" | tail -n 1)" "mismatch" "the failure says why (the key does not match)"
assert_eq "$new_serial" "$(served_serial)" "the renewed certificate keeps serving"
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "$(e2e_uuid)" NOT_VERIFIED PENDING)")" "webhooks still get 200"
assert_eq "3 2" "$(reloads reloads) $(reloads reload_failures)" "/readyz: 3 reloads, 2 failures"

e2e_section "SIGHUP never stops kycd"
assert_eq 1 "$(kill -0 "$E2E_KYCD_PID" 2>/dev/null && echo 1 || echo 0)" "kycd is still running after five SIGHUPs"
e2e_stop_kycd
