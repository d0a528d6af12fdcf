#!/usr/bin/env bash
# End-to-end: what the network can do to kycd. Slow clients are cut off by
# the request timeout while others are served; a body that stalls is
# refused without storing anything; the source-network allow list answers
# 403; the optional plain-HTTP listener for a local proxy works on loopback
# and is refused anywhere else; mutual TLS (tls_client_ca) is enforced, is
# added, changed and removed by a reload wholly, and never applies to the
# admin listener.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_fresh_db

# --- slow clients (request timeout 1 s) -----------------------------------------
e2e_start_kycd KYCD_REQUEST_TIMEOUT=1s
e2e_section "slowloris: headers that never end"
# The request line and one header, then silence. s_client itself waits for
# its stdin, so it is stopped after 3 s: by then kycd must have answered.
(printf 'POST %s HTTP/1.1\r\nHost: localhost\r\n' "$E2E_KYC_PATH"; sleep 6) |
  timeout 3 openssl s_client -connect "127.0.0.1:$E2E_PORT" -quiet >"$E2E_TMP/slow.out" 2>/dev/null || true
assert_contains "$(head -n 1 "$E2E_TMP/slow.out")" "408" \
  "a client that stops sending headers is answered 408 and cut off within 3 s (timeout 1 s)"

e2e_section "others are served while a slow client waits"
(printf 'POST %s HTTP/1.1\r\nHost: localhost\r\n' "$E2E_KYC_PATH"; sleep 4) |
  timeout 8 openssl s_client -connect "127.0.0.1:$E2E_PORT" -quiet >/dev/null 2>&1 &
slow=$!
e2e_track_pid "$slow"
sleep 0.3
u=$(e2e_uuid)
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "$u" NOT_VERIFIED PENDING)")" \
  "a normal webhook gets 200 while a slow client is connected"
wait "$slow" 2>/dev/null || true

e2e_section "a body that stalls"
before=$(events_count)
body=$(kyc_body "$(e2e_uuid)" NOT_VERIFIED PENDING)
len=$(( ${#body} + 50 ))   # declares 50 bytes more than it will ever send
(printf 'POST %s HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
   "$E2E_KYC_PATH" "$E2E_TOKEN" "$len" "$body"; sleep 6) |
  timeout 3 openssl s_client -connect "127.0.0.1:$E2E_PORT" -quiet >"$E2E_TMP/stall.out" 2>/dev/null || true
assert_eq "$before" "$(events_count)" "a stalled body stores nothing"
assert_contains "$(head -n 1 "$E2E_TMP/stall.out")" "408" "a stalled body is answered 408 within 3 s"
assert_contains "$(cat "$E2E_TMP/stall.out")" '"error":"request_timeout"' "and the answer says why"
e2e_stop_kycd

# --- allow list -------------------------------------------------------------------
e2e_section "source networks"
e2e_start_kycd --no-migrate KYCD_ALLOW_CIDRS=10.0.0.0/8,2001:db8::/32
before=$(events_count)
assert_eq 403 "$(post "$E2E_KYC_PATH" "$(kyc_body "$(e2e_uuid)" NOT_VERIFIED PENDING)")" \
  "a peer outside KYCD_ALLOW_CIDRS gets 403"
assert_contains "$(resp_body)" '"error":"forbidden"' "403 body"
assert_eq "$before" "$(events_count)" "403 stores nothing"
assert_eq 200 "$(get /healthz)" "health checks are not subject to the allow list"
e2e_stop_kycd
e2e_start_kycd --no-migrate KYCD_ALLOW_CIDRS=192.0.2.0/24,127.0.0.0/8
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "$(e2e_uuid)" NOT_VERIFIED PENDING)")" \
  "a peer inside KYCD_ALLOW_CIDRS gets 200"
e2e_stop_kycd

# --- plain HTTP for a local proxy ------------------------------------------------------
e2e_section "plain-HTTP listener on loopback"
hport=$(e2e_free_port)
e2e_start_kycd --no-migrate "KYCD_HTTP_LISTEN=127.0.0.1:$hport"
u=$(e2e_uuid)
st=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $E2E_TOKEN" \
  -H 'Content-Type: application/json' --data-binary "$(kyc_body "$u" NOT_VERIFIED PENDING)" \
  "http://127.0.0.1:$hport$E2E_KYC_PATH" || true)
assert_eq 200 "$st" "a webhook through the plain loopback listener gets 200"
assert_eq 1 "$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id = '$u'")" \
  "and is stored"
assert_eq 200 "$(post "$E2E_KYC_PATH" "$(kyc_body "$(e2e_uuid)" NOT_VERIFIED PENDING)")" \
  "the TLS listener still works beside it"
e2e_stop_kycd

e2e_kycd_cmd "KYCD_HTTP_LISTEN=0.0.0.0:$hport" -- serve
assert_ne 0 "$E2E_RC" "a plain-HTTP listener off loopback is refused"
assert_contains "$(cat "$E2E_OUT")" "http_listen" "the refusal names http_listen"

# --- optional mutual TLS ------------------------------------------------------------
e2e_section "mutual TLS (tls_client_ca), live with a reload, never on the admin listener"
certdir=$(dirname "$E2E_CA")
# A second client CA (another dev CA) with its own client certificate.
timeout 60 bash "$TEST_KYCD_SRC/certs/make-dev-certs.sh" "$E2E_TMP/ca2" >/dev/null || e2e_abort "second CA"
CONF=$E2E_TMP/mtls.conf
printf 'tls_client_ca = %s\n' "$E2E_CA" >"$CONF"
admin_port=$(e2e_free_port)
# The admin listener off loopback speaks TLS (and is guarded by its CIDRs).
e2e_start_kycd --no-migrate "KYCD_CONFIG=$CONF" "KYCD_ADMIN_LISTEN=0.0.0.0:$admin_port" \
  KYCD_ADMIN_ALLOW_CIDRS=127.0.0.0/8
webhook() { post "$E2E_KYC_PATH" "$(kyc_body "$(e2e_uuid)" NOT_VERIFIED PENDING)" "$@"; }
client1=(--cert "$certdir/client.pem" --key "$certdir/client.key")
client2=(--cert "$E2E_TMP/ca2/client.pem" --key "$E2E_TMP/ca2/client.key")
before=$(events_count)
assert_eq 000 "$(webhook)" "without a client certificate the handshake fails"
assert_eq "$before" "$(events_count)" "and nothing is stored"
assert_eq 200 "$(webhook "${client1[@]}")" "with a certificate signed by the client CA: 200"
assert_eq 000 "$(webhook "${client2[@]}")" "a certificate of another CA: refused"
admin_tls() { # the admin listener over TLS, without a client certificate
  curl -sS --max-time 10 --cacert "$E2E_CA" -o /dev/null -w '%{http_code}' \
    --resolve "localhost:$admin_port:127.0.0.1" "https://localhost:$admin_port$1" 2>/dev/null || true
}
assert_eq 200 "$(admin_tls /healthz)" "the admin listener (TLS) answers a probe without a client certificate"
assert_eq 200 "$(admin_tls /metrics)" "... and Prometheus, which has none either"
hup_to() { # hup_to N: SIGHUP, wait for the Nth "configuration reloaded"
  kill -HUP "$E2E_KYCD_PID"
  e2e_wait_cmd 10 bash -c "[ \$(grep -c 'msg=\"configuration reloaded' '$E2E_KYCD_LOG') -ge $1 ]" ||
    fail "no reload line ($1) within 10 s: $(grep 'reload' "$E2E_KYCD_LOG" | tail -n 2)"
}
printf 'tls_client_ca = %s\n' "$E2E_TMP/ca2/ca.pem" >"$CONF"
hup_to 1
assert_contains "$(grep 'msg="configuration reloaded"' "$E2E_KYCD_LOG" | tail -n 1)" "tls_client_ca" \
  "the reload applies tls_client_ca (named among the keys changed)"
assert_eq 000 "$(webhook "${client1[@]}")" "after the reload to CA 2: CA 1's client is refused"
assert_eq 200 "$(webhook "${client2[@]}")" "... and CA 2's client gets 200: the new CA, wholly"
assert_eq 000 "$(webhook)" "... and a client without a certificate is still refused"
assert_eq 200 "$(admin_tls /healthz)" "the admin listener still asks for no client certificate"
: >"$CONF"
hup_to 2
assert_eq 200 "$(webhook)" "tls_client_ca removed by a reload: a client without a certificate gets 200"
assert_eq 200 "$(webhook "${client1[@]}")" "... and one with a certificate too"
e2e_stop_kycd
