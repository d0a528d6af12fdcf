#!/usr/bin/env bash
# End-to-end: nothing authentic is lost (README "Quarantine and replay").
#   (a) an authentic KYC report with a wrong-typed field is answered 200
#       {"status":"quarantined"}, stored raw in kyc.quarantine with its
#       reason, counted in kycd_webhook_quarantined_total, logged, and its
#       user marked for a check with P100 (needs_check_reason invalid_body);
#       a body with no readable user is kept too; a wrong token still gets
#       401 and nothing is stored;
#   (b) with the database down it goes to the spool (stored="spool") and the
#       drainer puts it in the quarantine, not in the event log;
#   (c) `kycd replay`: a quarantined body the current rules accept (inserted
#       as the owner: "a kycd that learned the field") is listed by
#       --dry-run, which changes nothing; replay applies it once, through the
#       state machine, with its own request id and receipt time; a second run
#       changes nothing; every run is in kyc.replay_runs; a body the rules
#       still refuse stays quarantined; bad usage exits 2;
#   (d) kyc.quarantine is append-only, partitioned, readable by kyc_analyst.
# Private cluster (deploy/pg-local.sh): stopping it cannot disturb the
# shared server.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=deploy/pg-local.sh
source "$TEST_KYCD_SRC/deploy/pg-local.sh"

metric() {
  admin_get /metrics >/dev/null
  awk -v want="$1" '$1 == want {print $2}' "$E2E_RESP_BODY"
}
delta() { echo $(( ${2:-0} - ${1:-0} )); }
Q_DB='kycd_webhook_quarantined_total{kind="kyc_verification_status",stored="database"}'
Q_SPOOL='kycd_webhook_quarantined_total{kind="kyc_verification_status",stored="spool"}'
VERIFIED=$(p100_word verificationStatus VERIFIED)
NOT_VERIFIED=$(p100_word verificationStatus NOT_VERIFIED)
PENDING=$(p100_word attemptStatus PENDING)
# kyc_wrong_type USER: a KYC report whose attemptStatus is a number.
kyc_wrong_type() { printf '{"externalUserId":"%s","verificationStatus":"%s","attemptStatus":7}' "$1" "$VERIFIED"; }

e2e_section "(a) an authentic body that fails validation"
e2e_private_pg
SPOOL=$E2E_TMP/spool
e2e_start_kycd KYCD_SPOOL_DIR="$SPOOL" KYCD_DB_TIMEOUT=2s KYCD_LOG_LEVEL=info
assert_eq 0 "$(metric "$Q_DB")" "kycd_webhook_quarantined_total is exported at 0 from the start"
u1=$(e2e_uuid)
body1=$(kyc_wrong_type "$u1")
assert_eq 200 "$(post "$E2E_KYC_PATH" "$body1")" "a wrong-typed attemptStatus is answered 200"
assert_contains "$(resp_body)" '"status":"quarantined"' "... as quarantined"
rid1=$(json_str requestId "$(resp_body)")
assert_eq "1|field 'attemptStatus' must be a string|t|$rid1" \
  "$(sql "SELECT count(*), min(reason), bool_and(body = convert_to('$body1', 'UTF8')), min(request_id)
          FROM kyc.quarantine WHERE external_user_id = '$u1'")" \
  "stored raw in kyc.quarantine, with its reason and request id"
assert_eq 0 "$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id = '$u1'")" \
  "and not in the event log"
assert_eq "invalid_body|t||" \
  "$(sql "SELECT needs_check_reason, next_check_at IS NOT NULL, verification_status, attempt_status
          FROM kyc.verifications WHERE external_user_id = '$u1'")" \
  "its user is marked for a check with P100, no state invented"
assert_eq 1 "$(metric "$Q_DB")" "counted in kycd_webhook_quarantined_total{stored=\"database\"}"
assert_eq 1 "$(metric 'kycd_webhook_deliveries_total{kind="kyc_verification_status",outcome="quarantined",reason="invalid_body"}')" \
  "and in kycd_webhook_deliveries_total as quarantined"
line=$(grep "rid=$rid1" "$E2E_KYCD_LOG" || true)
assert_contains "$line" "status=200" "the log line says 200"
assert_contains "$line" "outcome=quarantined reason=invalid_body" "... outcome quarantined"
assert_contains "$line" "quarantine=\"field 'attemptStatus' must be a string\"" "... and why"
assert_not_contains "$line" '"attemptStatus":7' "... never the body"

n0=$(sql "SELECT count(*) FROM kyc.quarantine")
assert_eq 200 "$(post "$E2E_KYC_PATH" 'not json at all')" "a body that is not JSON: 200 as well"
assert_eq "1|" "$(sql "SELECT count(*), min(external_user_id) FROM kyc.quarantine WHERE body = convert_to('not json at all', 'UTF8')")" \
  "kept, with no user"
u_poa=$(e2e_uuid)
assert_eq 200 "$(post "$E2E_POA_PATH" "{\"externalUserId\":\"$u_poa\",\"status\":1}")" "a POA report with a number status: 200"
assert_eq "poa_verification_status|0" \
  "$(sql "SELECT min(kind), (SELECT count(*) FROM kyc.verifications WHERE external_user_id = '$u_poa') FROM kyc.quarantine WHERE external_user_id = '$u_poa'")" \
  "kept under its kind; no KYC check owed for it"
assert_eq 401 "$(E2E_AUTH='Bearer wrong' post "$E2E_KYC_PATH" "$(kyc_wrong_type "$(e2e_uuid)")")" \
  "a wrong token: 401 as before"
assert_eq 415 "$(E2E_CT=text/plain post "$E2E_KYC_PATH" "$(kyc_wrong_type "$(e2e_uuid)")")" \
  "a wrong content type: 415 as before"
assert_eq $((n0 + 2)) "$(sql "SELECT count(*) FROM kyc.quarantine")" "refusals that are not authentic store nothing"

e2e_section "(b) the database down: the spool, then the quarantine"
u2=$(e2e_uuid)
body2=$(kyc_wrong_type "$u2")
pg_local_stop_server_only "$PRIV_DIR" || e2e_abort "cannot stop the private PostgreSQL"
assert_eq 200 "$(post "$E2E_KYC_PATH" "$body2")" "database down: answered 200 from the spool"
assert_contains "$(resp_body)" '"status":"quarantined"' "... as quarantined"
assert_eq 1 "$(metric "$Q_SPOOL")" "counted in kycd_webhook_quarantined_total{stored=\"spool\"}"
assert_contains "$(grep "$u2" "$E2E_KYCD_LOG" || true)" "outcome=spooled" "the log line says spooled"
pg_local_start_server_only "$PRIV_DIR" >/dev/null || e2e_abort "cannot start the private PostgreSQL"
e2e_wait_sql "SELECT count(*) FROM kyc.quarantine WHERE external_user_id = '$u2'" 1 30 ||
  fail "the spooled delivery did not reach the quarantine (got $E2E_SQL_LAST)"
assert_eq "field 'attemptStatus' must be a string|t|0|invalid_body" \
  "$(sql "SELECT q.reason, q.body = convert_to('$body2', 'UTF8'),
                 (SELECT count(*) FROM kyc.webhook_events e WHERE e.external_user_id = '$u2'),
                 (SELECT needs_check_reason FROM kyc.verifications v WHERE v.external_user_id = '$u2')
          FROM kyc.quarantine q WHERE q.external_user_id = '$u2'")" \
  "replayed into the quarantine with its reason and raw body, not applied, user marked"
e2e_stop_kycd "kycd"

e2e_section "(c) kycd replay"
# "A kycd that learned the field": a quarantined body the current rules accept.
u3=$(e2e_uuid)
rid3=$(openssl rand -hex 16)
sql "INSERT INTO kyc.quarantine (received_at, kind, external_user_id, body, body_sha256, remote_addr, request_id, reason)
     VALUES (now() - interval '1 minute', 'kyc_verification_status', '$u3',
             convert_to('$(kyc_body "$u3" "$NOT_VERIFIED" "$PENDING")', 'UTF8'),
             sha256(convert_to('$(kyc_body "$u3" "$NOT_VERIFIED" "$PENDING")', 'UTF8')),
             '127.0.0.1', '$rid3', 'simulated: an older kycd did not know this shape')" >/dev/null
since=$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)
before=$(sql "SELECT (SELECT count(*) FROM kyc.webhook_events) || '/' || (SELECT count(*) FROM kyc.status_changes)")

e2e_kycd_cmd -- replay --since "$since" --dry-run
cat "$E2E_OUT"
assert_eq 0 "$E2E_RC" "replay --dry-run exits 0"
assert_contains "$(grep "user=$u3" "$E2E_OUT" || true)" "action=would_apply" "--dry-run: the body the rules now accept would be applied"
assert_contains "$(grep "user=$u1" "$E2E_OUT" || true)" "action=still_quarantined" "--dry-run: the wrong-typed one stays quarantined"
assert_contains "$(cat "$E2E_OUT")" "dry_run=yes" "the summary says dry run"
assert_contains "$(cat "$E2E_OUT")" "would_apply=1" "... and 1 would be applied"
assert_eq "$before" "$(sql "SELECT (SELECT count(*) FROM kyc.webhook_events) || '/' || (SELECT count(*) FROM kyc.status_changes)")" \
  "--dry-run changes nothing"

e2e_kycd_cmd -- replay --since "$since"
cat "$E2E_OUT"
assert_eq 0 "$E2E_RC" "replay exits 0"
assert_contains "$(grep "user=$u3" "$E2E_OUT" || true)" "action=applied" "the learned body is applied"
assert_contains "$(grep "user=$u3" "$E2E_OUT" || true)" "outcome=applied reason=first" "... through the state machine (the user's first report)"
assert_eq "1|t" "$(sql "SELECT count(*), bool_and(e.received_at = q.received_at)
                       FROM kyc.webhook_events e JOIN kyc.quarantine q ON q.request_id = e.request_id
                       WHERE e.external_user_id = '$u3'")" \
  "stored once, with its own request id and receipt time"
assert_eq "$NOT_VERIFIED|$PENDING|1" "$(sql "SELECT verification_status, attempt_status,
                         (SELECT count(*) FROM kyc.status_changes c WHERE c.external_user_id = '$u3')
                       FROM kyc.verifications WHERE external_user_id = '$u3'")" \
  "the user's state is the report's, one state change"
assert_eq 1 "$(sql "SELECT count(*) FROM kyc.quarantined_events WHERE request_id = '$rid3' AND replayed_event_id IS NOT NULL")" \
  "kyc.quarantined_events shows it replayed"
assert_eq 0 "$(sql "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id IN ('$u1', '$u2')")" \
  "the wrong-typed bodies stay quarantined"
after=$(sql "SELECT (SELECT count(*) FROM kyc.webhook_events) || '/' || (SELECT count(*) FROM kyc.status_changes) || '/' || (SELECT count(*) FROM kyc.verifications WHERE needs_check_reason IS NOT NULL)")

e2e_kycd_cmd -- replay --since "$since"
cat "$E2E_OUT"
assert_eq 0 "$E2E_RC" "a second replay exits 0"
assert_contains "$(grep "user=$u3" "$E2E_OUT" || true)" "action=repeat" "the applied one is now a repeat"
assert_contains "$(cat "$E2E_OUT")" " applied=0 " "nothing applied the second time"
assert_eq "$after" "$(sql "SELECT (SELECT count(*) FROM kyc.webhook_events) || '/' || (SELECT count(*) FROM kyc.status_changes) || '/' || (SELECT count(*) FROM kyc.verifications WHERE needs_check_reason IS NOT NULL)")" \
  "a second run changes nothing"

assert_eq "true|1|0|false|1|1|false|0|0" \
  "$(sql "SELECT string_agg(dry_run || '|' || applied || '|' || cardinality(event_ids), '|' ORDER BY id) FROM kyc.replay_runs")" \
  "kyc.replay_runs (dry_run|applied|events): the dry run (1 would apply), the run that applied 1, the run that changed nothing"
assert_eq "1|$since|t|t" "$(sql "SELECT count(*), to_char(min(since) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                          bool_and(run_by = current_user), bool_and(os_user <> '' AND started_at <= finished_at)
                        FROM kyc.replay_runs WHERE applied = 1 AND event_ids[1] =
                          (SELECT id FROM kyc.webhook_events WHERE external_user_id = '$u3')")" \
  "each run says who, when, the range and the events it created"

e2e_kycd_cmd -- replay --since "$since" --user "$u1" --dry-run
assert_eq 0 "$E2E_RC" "replay --user exits 0"
assert_eq 1 "$(grep -c '^quarantine ' "$E2E_OUT")" "--user: only that user's deliveries"
e2e_kycd_cmd -- replay --dry-run
assert_eq 2 "$E2E_RC" "replay without --since: exit 2"
e2e_kycd_cmd -- replay --since yesterday-ish
assert_eq 2 "$E2E_RC" "replay with a --since that is not a time: exit 2"

e2e_section "(d) the table"
try "$E2E_DB_URL" "UPDATE kyc.quarantine SET reason = 'x'"
assert_contains "$TRY_OUT" "append-only" "kyc.quarantine: UPDATE refused"
try "$E2E_DB_URL" "DELETE FROM kyc.replay_runs"
assert_contains "$TRY_OUT" "append-only" "kyc.replay_runs: DELETE refused"
assert_eq "p|3" "$(sql "SELECT relkind, (SELECT count(*) FROM kyc.partitions WHERE parent = 'quarantine' AND from_time IS NOT NULL)
                        FROM pg_class WHERE oid = 'kyc.quarantine'::regclass")" \
  "partitioned by month: this month and the next two"
assert_eq "t|t" "$(sql "SELECT has_table_privilege('kyc_analyst', 'kyc.quarantine', 'SELECT'),
                               has_table_privilege('kyc_analyst', 'kyc.replay_runs', 'SELECT')")" \
  "kyc_analyst reads both"

