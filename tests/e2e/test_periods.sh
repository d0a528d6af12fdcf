#!/usr/bin/env bash
# kycd-test: once
# End-to-end: the periods kycd keeps for the analysts' views (kyc.periods,
# sql/018_periods.sql) are the history's periods, however the changes
# arrive. On a database owned by one role and written by another (README,
# "Two roles"):
#   (a) a history written at schema 17, then `kycd migrate`: the backfill
#       holds the periods worked out by hand (attempts, ends, left_at);
#   (b) changes in time order, one statement each, by the serving role
#       (which has no grant on kyc.periods): each closes the previous one;
#   (c) a change older than the user's latest (a delivery replayed from the
#       spool keeps its receive time): the user's periods are rebuilt, the
#       attempts renumbered;
#   (d) one statement with several changes of one user out of order, and
#       ties on changed_at (broken by id);
#   (e) after each step kyc.periods equals kyc.derived_periods (the
#       history's periods by window functions), and that comparison is
#       shown to fail on a wrong row;
#   (f) kyc.retention drops a month of changes and its periods with it;
#   (g) kyc.webhook_vs_p100(since, until), which reads the range the other
#       way round (from P100's answers), has the view's rows for the range
#       in the cases that differ: two answers before the next webhook, two
#       webhooks at one instant, a failed check, a correction.
# (kycd erase rewrites a change's period with it: test_erase.sh.)
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_two_roles periods
grant_service() {
  sql "GRANT USAGE ON SCHEMA kyc TO \"$SERVICE\";
       GRANT SELECT, INSERT ON kyc.webhook_events, kyc.status_changes, kyc.status_checks TO \"$SERVICE\";
       GRANT SELECT, INSERT, UPDATE ON kyc.verifications, kyc.poa_statuses TO \"$SERVICE\"" >/dev/null
}
svc() { timeout 30 psql "$SERVICE_URL" -XAtq -v ON_ERROR_STOP=1 -c "$1"; }
# One line per period of USER, in order: attempt|begins|ends|status|entered|left
periods() {
  sql "SET TIME ZONE 'UTC'; SELECT string_agg(concat_ws('|', coalesce(attempt::text, '-'), begins_attempt::int,
              ends_attempt::int, coalesce(attempt_status, '-'), to_char(entered_at, 'DD HH24:MI'),
              coalesce(to_char(left_at, 'DD HH24:MI'), '-')), ' ' ORDER BY entered_at, change_id)
       FROM kyc.periods WHERE external_user_id = '$1'"
}
agree() {
  assert_eq "0|0|$(sql "SELECT count(*) FROM kyc.status_changes")" "$(e2e_periods_diff)" \
    "kyc.periods equals the history's periods (kyc.derived_periods): none missing, none extra, one per change ($1)"
}
# ch USER AT OLD_ATTEMPT NEW_ATTEMPT [NEW_VERIFICATION] [OLD_REASON NEW_REASON] [SOURCE]
# The statuses are P100's words, each checked against kycd's vocabulary
# (p100_word); rejectionReason is free text (docs/p100-api.md).
ch() {
  local v
  v=$(p100_word verificationStatus "${5:-NOT_VERIFIED}")
  printf "('%s', '%s', '%s', 'forward', %s, %s, %s, %s, %s, %s)" "$1" "$2" "${8:-webhook}" \
    "$(q "$3" attemptStatus)" "$(q "$4" attemptStatus)" "$(q "$v")" "$(q "$v")" "$(q "${6:-}")" "$(q "${7:-}")"
}
# q VALUE [FIELD]: VALUE quoted for SQL (P100's word for FIELD), or NULL.
q() {
  if [ -z "$1" ]; then printf NULL; return; fi
  if [ -n "${2:-}" ]; then printf "'%s'" "$(p100_word "$2" "$1")"; else printf "'%s'" "$1"; fi
}
CH="INSERT INTO kyc.status_changes (external_user_id, changed_at, source, reason, old_attempt_status,
      new_attempt_status, old_verification_status, new_verification_status, old_rejection_reason,
      new_rejection_reason) VALUES"
user() { sql "INSERT INTO kyc.verifications (external_user_id, source, first_seen_at) VALUES ('$1', 'webhook', '2024-03-01Z')" >/dev/null; }

e2e_section "(a) a history at schema 17, then kycd migrate"
e2e_schema_upto 17
sql "SELECT kyc.create_partition('status_changes', '2024-03-01Z')" >/dev/null
user u1; user u2; user u3
# u1: PENDING, VERIFICATION, SUCCESSFUL: one attempt. u2: rejected twice for
# different reasons (two attempts, each ended by its settled report), then
# the same rejection again (no new attempt). u3: nothing settled (NULL), then PENDING.
sql "$CH $(ch u1 '2024-03-01 10:00Z' '' PENDING), $(ch u2 '2024-03-01 10:00Z' '' REJECTED_BY_PROVIDER '' '' NO_FACE_FOUND),
         $(ch u3 '2024-03-01 10:00Z' '' '')" >/dev/null
sql "$CH $(ch u1 '2024-03-01 10:05Z' PENDING VERIFICATION), $(ch u2 '2024-03-01 11:00Z' REJECTED_BY_PROVIDER REJECTED_BY_PROVIDER '' NO_FACE_FOUND DOC_EXPIRED),
         $(ch u3 '2024-03-01 10:30Z' '' PENDING)" >/dev/null
sql "$CH $(ch u1 '2024-03-01 10:20Z' VERIFICATION SUCCESSFUL VERIFIED), $(ch u2 '2024-03-01 12:00Z' REJECTED_BY_PROVIDER REJECTED_BY_PROVIDER '' DOC_EXPIRED DOC_EXPIRED)" >/dev/null
e2e_migrate
files=("$TEST_KYCD_SRC"/sql/[0-9]*.sql); latest=$(basename "${files[-1]}"); latest=$((10#${latest%%_*}))
assert_eq "$latest" "$(sql "SELECT max(version) FROM kyc.schema_migrations")" "kycd migrate brought it to the latest schema ($latest)"
assert_eq "1|1|0|PENDING|01 10:00|01 10:05 1|0|0|VERIFICATION|01 10:05|01 10:20 1|0|1|SUCCESSFUL|01 10:20|-" "$(periods u1)" \
  "u1: one attempt, begun by PENDING, ended by SUCCESSFUL; each period left when the next was entered"
assert_eq "1|1|1|REJECTED_BY_PROVIDER|01 10:00|01 11:00 2|1|1|REJECTED_BY_PROVIDER|01 11:00|01 12:00 2|0|0|REJECTED_BY_PROVIDER|01 12:00|-" "$(periods u2)" \
  "u2: a different rejection begins and ends attempt 2; the same one again is part of it"
assert_eq "-|0|0|-|01 10:00|01 10:30 1|1|0|PENDING|01 10:30|-" "$(periods u3)" "u3: a state before any attempt, then attempt 1"
agree "the backfill"

e2e_section "(e) the comparison can fail"
sql "UPDATE kyc.periods SET left_at = left_at + interval '1 s' WHERE external_user_id = 'u1' AND attempt_status = 'PENDING'" >/dev/null
assert_eq "1|1|$(sql "SELECT count(*) FROM kyc.status_changes")" "$(e2e_periods_diff)" "one wrong left_at: one row missing, one extra"
sql "UPDATE kyc.periods SET left_at = left_at - interval '1 s' WHERE external_user_id = 'u1' AND attempt_status = 'PENDING'" >/dev/null
agree "put back"

e2e_section "(b) changes in time order, by the serving role"
grant_service
assert_eq "f" "$(svc "SELECT has_table_privilege(current_user, 'kyc.periods', 'INSERT')")" "the serving role has no grant on kyc.periods"
user u4
svc "$CH $(ch u4 '2024-03-02 09:00Z' '' PENDING)" >/dev/null
svc "$CH $(ch u4 '2024-03-02 09:10Z' PENDING REJECTED_BY_PROVIDER '' '' NO_FACE_FOUND)" >/dev/null
svc "$CH $(ch u4 '2024-03-02 09:20Z' REJECTED_BY_PROVIDER PENDING '' NO_FACE_FOUND '' api)" >/dev/null
assert_eq "1|1|0|PENDING|02 09:00|02 09:10 1|0|1|REJECTED_BY_PROVIDER|02 09:10|02 09:20 2|1|0|PENDING|02 09:20|-" "$(periods u4)" \
  "u4: rejected, then a new attempt (create-kyc): each change closed the one before"
agree "in order"

e2e_section "(c) a change older than the user's latest"
# u4's PENDING at 09:05, recorded last (a spooled delivery replayed): it
# falls inside attempt 1; and one at 08:50, before everything.
svc "$CH $(ch u4 '2024-03-02 09:05Z' PENDING VERIFICATION)" >/dev/null
assert_eq "1|1|0|PENDING|02 09:00|02 09:05 1|0|0|VERIFICATION|02 09:05|02 09:10 1|0|1|REJECTED_BY_PROVIDER|02 09:10|02 09:20 2|1|0|PENDING|02 09:20|-" \
  "$(periods u4)" "a VERIFICATION at 09:05 recorded last sits between 09:00 and 09:10"
svc "$CH $(ch u4 '2024-03-02 08:50Z' '' REJECTED_BY_PROVIDER '' '' DOC_EXPIRED)" >/dev/null
assert_eq "1|1|1|REJECTED_BY_PROVIDER|02 08:50|02 09:00 2|1|0|PENDING|02 09:00|02 09:05 2|0|0|VERIFICATION|02 09:05|02 09:10 2|0|1|REJECTED_BY_PROVIDER|02 09:10|02 09:20 3|1|0|PENDING|02 09:20|-" \
  "$(periods u4)" "a rejection at 08:50 recorded last becomes attempt 1; the others are renumbered"
agree "out of order"

e2e_section "(d) one statement, out of order, and ties"
user u5
svc "$CH $(ch u5 '2024-03-03 10:10Z' PENDING SUCCESSFUL VERIFIED), $(ch u5 '2024-03-03 10:00Z' '' PENDING),
         $(ch u5 '2024-03-03 10:10Z' SUCCESSFUL SUCCESSFUL EXPIRED), $(ch u1 '2024-03-03 10:00Z' SUCCESSFUL SUCCESSFUL EXPIRED)" >/dev/null
assert_eq "1|1|0|PENDING|03 10:00|03 10:10 1|0|1|SUCCESSFUL|03 10:10|03 10:10 1|0|0|SUCCESSFUL|03 10:10|-" "$(periods u5)" \
  "u5: three changes in one statement, the first recorded the latest but one: in time order, the tie by id"
assert_eq "SUCCESSFUL|03 10:00" "$(sql "SET TIME ZONE 'UTC'; SELECT attempt_status || '|' || to_char(left_at, 'DD HH24:MI') FROM kyc.periods
                                         WHERE external_user_id = 'u1' AND ends_attempt")" \
  "u1's SUCCESSFUL period was left when the same statement recorded EXPIRED"
agree "one statement"

e2e_section "(f) retention"
sql "SELECT kyc.create_partition('status_changes', '2024-04-01Z')" >/dev/null
user u6
svc "$CH $(ch u6 '2024-04-02 10:00Z' '' PENDING)" >/dev/null
n=$(sql "SELECT count(*) FROM kyc.periods")
dropped=$(sql "SELECT string_agg(name, ' ') FROM kyc.retention('2024-04-01Z', false) WHERE action = 'dropped' AND parent = 'status_changes'")
assert_eq "status_changes_p202403" "$dropped" "kyc.retention dropped March's changes"
assert_eq "1" "$(sql "SELECT count(*) FROM kyc.periods")" "and their $((n - 1)) periods; April's one stays"
agree "after retention"

e2e_section "(g) kyc.webhook_vs_p100(since, until) answers as the view"
# One user's KYC webhooks and P100's answers, in the cases the function
# reads the other way round from the view: a webhook with two checks before
# the next (the first counts), one with none, two webhooks at the same
# instant (the later id takes the check), a check that failed (not an
# answer), a check that led to a correction, a webhook after the last check.
user w1
NV=$(p100_word verificationStatus NOT_VERIFIED)
P=$(p100_word attemptStatus PENDING) VER=$(p100_word attemptStatus VERIFICATION)
REJ=$(p100_word attemptStatus REJECTED_BY_PROVIDER)
sql "
CREATE FUNCTION pg_temp.ev(i bigint, at timestamptz, ast text) RETURNS void LANGUAGE sql AS \$\$
  INSERT INTO kyc.webhook_events (id, received_at, kind, external_user_id, body, body_sha256, outcome, outcome_reason)
  OVERRIDING SYSTEM VALUE
  SELECT i, at, 'kyc_verification_status', 'w1', b, sha256(convert_to(b::text, 'UTF8')), 'applied', 'forward'
  FROM jsonb_build_object('externalUserId', 'w1', 'verificationStatus', '$NV', 'attemptStatus', ast) b
\$\$;
CREATE FUNCTION pg_temp.ck(i bigint, at timestamptz, outc text, ast text) RETURNS void LANGUAGE sql AS \$\$
  INSERT INTO kyc.status_checks (id, external_user_id, checked_at, checker, http_status, latency_ms, outcome, result, body)
  OVERRIDING SYSTEM VALUE
  VALUES (i, 'w1', at, 'h:1', 200, 10, outc, 'unchanged',
          jsonb_build_object('verificationStatus', '$NV', 'attemptStatus', ast)::text)
\$\$;
SELECT pg_temp.ev(101, '2024-04-05 10:00Z', '$P');
SELECT pg_temp.ck(201, '2024-04-05 10:10Z', 'ok', '$P');
SELECT pg_temp.ck(202, '2024-04-05 10:20Z', 'ok', '$VER');
SELECT pg_temp.ev(102, '2024-04-05 11:00Z', '$VER');
SELECT pg_temp.ev(103, '2024-04-05 12:00Z', '$VER');
SELECT pg_temp.ev(104, '2024-04-05 12:00Z', '$P');
SELECT pg_temp.ck(203, '2024-04-05 12:05Z', 'transient', '$P');
SELECT pg_temp.ck(204, '2024-04-05 12:10Z', 'ok', '$REJ');
INSERT INTO kyc.status_changes (external_user_id, changed_at, source, reason, new_attempt_status, check_id)
  VALUES ('w1', '2024-04-05 12:10:01Z', 'reconciler', 'reconciler', '$REJ', 204);
SELECT pg_temp.ev(105, '2024-04-05 13:00Z', '$P');
" >/dev/null || e2e_abort "seeding w1's webhooks and checks"
assert_eq "101:201:true 102:-:- 103:-:- 104:204:false:c 105:-:-" \
  "$(sql "SELECT string_agg(concat_ws(':', event_id, coalesce(check_id::text, '-'), coalesce(agrees::text, '-'),
                                      CASE WHEN correction_change_id IS NOT NULL THEN 'c' END), ' ' ORDER BY event_id)
          FROM kyc.webhook_vs_p100 WHERE external_user_id = 'w1'")" \
  "the view: 101 compared with 201 (not 202), 102 and 103 with nothing, 104 with 204 (not the failed 203) and its correction"
for range in "'-infinity', 'infinity'" "'2024-04-05 10:00Z', '2024-04-05 12:00Z'" "'2024-04-05 11:00Z', '2024-04-05 12:00:01Z'" \
             "'2024-04-05 12:00Z', 'infinity'" "'2024-04-05 12:30Z', 'infinity'"; do
  from=${range%%,*}; until=${range#*, }
  assert_eq "0|0" \
    "$(sql "WITH f AS (SELECT * FROM kyc.webhook_vs_p100($range) WHERE external_user_id = 'w1'),
                 v AS (SELECT * FROM kyc.webhook_vs_p100 WHERE external_user_id = 'w1'
                       AND received_at >= $from AND received_at < $until)
            SELECT (SELECT count(*) FROM (SELECT * FROM f EXCEPT ALL SELECT * FROM v) a) || '|' ||
                   (SELECT count(*) FROM (SELECT * FROM v EXCEPT ALL SELECT * FROM f) b)")" \
    "kyc.webhook_vs_p100($range) has the view's rows for that range, no more, no less"
done
