#!/usr/bin/env bash
# kycd-test: once
# End-to-end: a schema that explains itself (sql/012_analysts.sql).
#   (a) every column of every table and view in kyc (parents, not
#       partitions) has a comment, and no comment is empty; the check finds
#       an uncommented view column (it can fail);
#   (b) on a small seeded history (status_changes and webhook_events rows
#       inserted as the owner), the analysts' views and functions answer
#       what they should: pending_since is the start of the pending attempt,
#       kyc.status_as_of, kyc.attempts, kyc.status_periods,
#       kyc.time_in_status, the cohort kyc.daily_funnel (never above 100%),
#       kyc.webhook_vs_p100, kyc.reconciler_corrections with the event
#       corrected, kyc.rejection_reasons_daily;
#   (c) kyc_analyst may use them, and every ```sql block of
#       docs/analysts-schema.md runs as kyc_analyst.
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_fresh_db
e2e_migrate

# Columns of kyc's tables and views (not partitions) without a comment, or
# with an empty one.
UNCOMMENTED="SELECT coalesce(string_agg(format('%s.%s', c.relname, a.attname), ' ' ORDER BY c.relname, a.attnum), '')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  WHERE n.nspname = 'kyc' AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
    AND coalesce(btrim(col_description(c.oid, a.attnum)), '') = ''"

e2e_section "(a) every column has a comment"
assert_eq "" "$(sql "$UNCOMMENTED")" "no column of a kyc table or view lacks a comment or has an empty one"
assert_eq "" "$(sql "SELECT coalesce(string_agg(c.relname, ' '), '') FROM pg_class c
                     JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = 'kyc' AND c.relkind IN ('r', 'p', 'v', 'm') AND NOT c.relispartition
                       AND coalesce(btrim(obj_description(c.oid, 'pg_class')), '') = ''")" \
  "every kyc table and view has a comment itself"
ncols=$(sql "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             WHERE n.nspname = 'kyc' AND c.relkind IN ('r', 'p', 'v') AND NOT c.relispartition")
assert_eq 1 "$([ "$ncols" -ge 150 ] && echo 1 || echo 0)" "the check looked at $ncols columns (at least 150)"
sql "CREATE VIEW kyc.zz_probe AS SELECT 1 AS a, 2 AS b; COMMENT ON COLUMN kyc.zz_probe.a IS ' '" >/dev/null
assert_eq "zz_probe.a zz_probe.b" "$(sql "$UNCOMMENTED")" "the check finds a view column without a comment and one with an empty comment"
sql "DROP VIEW kyc.zz_probe" >/dev/null

e2e_section "(b) the analysts' views on a seeded history"
# ev ID USER AT V A REASON OUTCOME RULE: a KYC webhook as kycd stores it.
sql "
CREATE FUNCTION pg_temp.ev(i bigint, u text, at timestamptz, vs text, ast text, rr text, outc text, rule text)
RETURNS void LANGUAGE sql AS \$\$
  INSERT INTO kyc.webhook_events (id, received_at, kind, external_user_id, body, body_sha256, outcome, outcome_reason)
  OVERRIDING SYSTEM VALUE
  SELECT i, at, 'kyc_verification_status', u, b, sha256(convert_to(b::text, 'UTF8')), outc, rule
  FROM jsonb_strip_nulls(jsonb_build_object('externalUserId', u, 'verificationStatus', vs,
                                            'attemptStatus', ast, 'rejectionReason', rr)) b
\$\$;
CREATE FUNCTION pg_temp.ch(u text, at timestamptz, src text, rule text, ov text, nv text, oa text, na text,
                           orr text, nrr text, ev bigint, ck bigint)
RETURNS void LANGUAGE sql AS \$\$
  INSERT INTO kyc.status_changes (external_user_id, changed_at, source, reason, old_verification_status,
      new_verification_status, old_attempt_status, new_attempt_status, old_rejection_reason,
      new_rejection_reason, event_id, check_id)
  VALUES (u, at, src, rule, ov, nv, oa, na, orr, nrr, ev, ck)
\$\$;
INSERT INTO kyc.verifications (external_user_id, source, verification_status, attempt_status, rejection_reason,
                               verification_id, first_seen_at, updated_at, last_webhook_at) VALUES
  ('u-a',   'webhook',    'VERIFIED',     'SUCCESSFUL',   NULL, NULL, '2024-03-01 10:00Z', '2024-03-01 10:20Z', '2024-03-01 10:20Z'),
  ('u-p',   'webhook',    'NOT_VERIFIED', 'VERIFICATION', NULL, NULL, '2024-03-01 11:00Z', '2024-03-01 11:30Z', '2024-03-01 11:30Z'),
  ('u-r',   'webhook',    'NOT_VERIFIED', 'VERIFICATION', NULL, 'vid-2', '2024-03-01 12:00Z', '2024-03-02 09:05Z', '2024-03-02 09:05Z'),
  ('u-o1',  'webhook',    'VERIFIED',     'SUCCESSFUL',   NULL, NULL, '2024-02-28 08:00Z', '2024-03-02 08:00Z', '2024-03-02 08:00Z'),
  ('u-o2',  'webhook',    'EXPIRED',      'SUCCESSFUL',   NULL, NULL, '2024-02-28 09:00Z', '2024-03-02 10:00Z', '2024-03-02 10:00Z'),
  ('u-c',   'reconciler', 'NOT_VERIFIED', 'REJECTED_BY_PROVIDER', 'DOC_EXPIRED', NULL, '2024-03-03 10:00Z', '2024-03-03 10:30Z', '2024-03-03 10:01Z');
-- u-a: PENDING 10:00, VERIFICATION 10:05, VERIFIED 10:20
SELECT pg_temp.ev(1, 'u-a', '2024-03-01 10:00Z', 'NOT_VERIFIED', 'PENDING', NULL, 'applied', 'first');
SELECT pg_temp.ev(2, 'u-a', '2024-03-01 10:05Z', 'NOT_VERIFIED', 'VERIFICATION', NULL, 'applied', 'forward');
SELECT pg_temp.ev(3, 'u-a', '2024-03-01 10:20Z', 'VERIFIED', 'SUCCESSFUL', NULL, 'applied', 'forward');
SELECT pg_temp.ch('u-a', '2024-03-01 10:00Z', 'webhook', 'first', NULL, 'NOT_VERIFIED', NULL, 'PENDING', NULL, NULL, 1, NULL);
SELECT pg_temp.ch('u-a', '2024-03-01 10:05Z', 'webhook', 'forward', 'NOT_VERIFIED', 'NOT_VERIFIED', 'PENDING', 'VERIFICATION', NULL, NULL, 2, NULL);
SELECT pg_temp.ch('u-a', '2024-03-01 10:20Z', 'webhook', 'forward', 'NOT_VERIFIED', 'VERIFIED', 'VERIFICATION', 'SUCCESSFUL', NULL, NULL, 3, NULL);
-- u-p: PENDING 11:00, VERIFICATION 11:30, still pending
SELECT pg_temp.ev(4, 'u-p', '2024-03-01 11:00Z', 'NOT_VERIFIED', 'PENDING', NULL, 'applied', 'first');
SELECT pg_temp.ev(5, 'u-p', '2024-03-01 11:30Z', 'NOT_VERIFIED', 'VERIFICATION', NULL, 'applied', 'forward');
SELECT pg_temp.ch('u-p', '2024-03-01 11:00Z', 'webhook', 'first', NULL, 'NOT_VERIFIED', NULL, 'PENDING', NULL, NULL, 4, NULL);
SELECT pg_temp.ch('u-p', '2024-03-01 11:30Z', 'webhook', 'forward', 'NOT_VERIFIED', 'NOT_VERIFIED', 'PENDING', 'VERIFICATION', NULL, NULL, 5, NULL);
-- u-r: rejected (NO_FACE_FOUND) on the 1st, a new attempt (create-kyc) on the 2nd, in VERIFICATION
SELECT pg_temp.ev(6, 'u-r', '2024-03-01 12:00Z', 'NOT_VERIFIED', 'PENDING', NULL, 'applied', 'first');
SELECT pg_temp.ev(7, 'u-r', '2024-03-01 12:10Z', 'NOT_VERIFIED', 'REJECTED_BY_PROVIDER', 'NO_FACE_FOUND', 'applied', 'forward');
SELECT pg_temp.ev(8, 'u-r', '2024-03-02 09:05Z', 'NOT_VERIFIED', 'VERIFICATION', NULL, 'applied', 'forward');
SELECT pg_temp.ch('u-r', '2024-03-01 12:00Z', 'webhook', 'first', NULL, 'NOT_VERIFIED', NULL, 'PENDING', NULL, NULL, 6, NULL);
SELECT pg_temp.ch('u-r', '2024-03-01 12:10Z', 'webhook', 'forward', 'NOT_VERIFIED', 'NOT_VERIFIED', 'PENDING', 'REJECTED_BY_PROVIDER', NULL, 'NO_FACE_FOUND', 7, NULL);
SELECT pg_temp.ch('u-r', '2024-03-02 09:00Z', 'api', 'api', 'NOT_VERIFIED', 'NOT_VERIFIED', 'REJECTED_BY_PROVIDER', 'PENDING', 'NO_FACE_FOUND', NULL, NULL, NULL);
SELECT pg_temp.ch('u-r', '2024-03-02 09:05Z', 'webhook', 'forward', 'NOT_VERIFIED', 'NOT_VERIFIED', 'PENDING', 'VERIFICATION', NULL, NULL, 8, NULL);
-- u-o1, u-o2: first seen on Feb 28, verified on Mar 2 (u-o2 expired since)
SELECT pg_temp.ch('u-o1', '2024-02-28 08:00Z', 'webhook', 'first', NULL, 'NOT_VERIFIED', NULL, 'PENDING', NULL, NULL, NULL, NULL);
SELECT pg_temp.ch('u-o1', '2024-03-02 08:00Z', 'webhook', 'forward', 'NOT_VERIFIED', 'VERIFIED', 'PENDING', 'SUCCESSFUL', NULL, NULL, NULL, NULL);
SELECT pg_temp.ch('u-o2', '2024-02-28 09:00Z', 'webhook', 'first', NULL, 'NOT_VERIFIED', NULL, 'PENDING', NULL, NULL, NULL, NULL);
SELECT pg_temp.ch('u-o2', '2024-03-02 09:00Z', 'webhook', 'forward', 'NOT_VERIFIED', 'VERIFIED', 'PENDING', 'SUCCESSFUL', NULL, NULL, NULL, NULL);
SELECT pg_temp.ch('u-o2', '2024-03-02 10:00Z', 'webhook', 'forward', 'VERIFIED', 'EXPIRED', 'SUCCESSFUL', 'SUCCESSFUL', NULL, NULL, NULL, NULL);
-- u-c: webhooks PENDING 10:00, VERIFICATION 10:01; P100 says REJECTED at 10:30 (a correction)
SELECT pg_temp.ev(9, 'u-c', '2024-03-03 10:00Z', 'NOT_VERIFIED', 'PENDING', NULL, 'applied', 'first');
SELECT pg_temp.ev(10, 'u-c', '2024-03-03 10:01Z', 'NOT_VERIFIED', 'VERIFICATION', NULL, 'applied', 'forward');
SELECT pg_temp.ch('u-c', '2024-03-03 10:00Z', 'webhook', 'first', NULL, 'NOT_VERIFIED', NULL, 'PENDING', NULL, NULL, 9, NULL);
SELECT pg_temp.ch('u-c', '2024-03-03 10:01Z', 'webhook', 'forward', 'NOT_VERIFIED', 'NOT_VERIFIED', 'PENDING', 'VERIFICATION', NULL, NULL, 10, NULL);
INSERT INTO kyc.status_checks (id, external_user_id, checked_at, checker, http_status, latency_ms, outcome, result, body, purpose)
  OVERRIDING SYSTEM VALUE VALUES
  (50, 'u-c', '2024-03-03 10:30Z', 'h:1', 200, 80, 'ok', 'applied',
   '{\"verificationStatus\":\"NOT_VERIFIED\",\"attemptStatus\":\"REJECTED_BY_PROVIDER\",\"rejectionReason\":\"DOC_EXPIRED\"}', 'pending');
SELECT pg_temp.ch('u-c', '2024-03-03 10:30Z', 'reconciler', 'reconciler', 'NOT_VERIFIED', 'NOT_VERIFIED', 'VERIFICATION',
                  'REJECTED_BY_PROVIDER', NULL, 'DOC_EXPIRED', NULL, 50);
" >/dev/null || e2e_abort "seeding the history failed"

e2e_section "kyc.pending: pending_since is the start of the attempt"
assert_eq "u-p|2024-03-01 11:00:00+00 u-r|2024-03-02 09:00:00+00" \
  "$(sql "SET TIME ZONE 'UTC'; SELECT string_agg(external_user_id || '|' || pending_since, ' ' ORDER BY external_user_id) FROM kyc.pending")" \
  "u-p (PENDING 11:00, VERIFICATION 11:30) pending since 11:00; u-r since its new attempt, not its first one"
assert_eq "t" "$(sql "SELECT bool_and(pending_for = clock_timestamp() - pending_since OR pending_for > interval '0') FROM kyc.pending")" \
  "pending_for counts from pending_since"
assert_eq "u-p" "$(sql "SELECT string_agg(external_user_id, ' ') FROM kyc.pending_longer_than(0) WHERE pending_since < '2024-03-02'")" \
  "kyc.pending_longer_than() returns the new pending_since"

e2e_section "kyc.status_as_of"
assert_eq "VERIFICATION|true" "$(sql "SELECT attempt_status || '|' || pending FROM kyc.status_as_of('u-a', '2024-03-01 10:10Z')")" \
  "u-a at 10:10 (PENDING 10:00, VERIFICATION 10:05, VERIFIED 10:20): VERIFICATION, pending"
assert_eq "VERIFIED/SUCCESSFUL|false" "$(sql "SELECT verification_status || '/' || attempt_status || '|' || pending FROM kyc.status_as_of('u-a', '2024-03-01 10:20Z')")" \
  "u-a at 10:20: VERIFIED/SUCCESSFUL, not pending"
assert_eq "0" "$(sql "SELECT count(*) FROM kyc.status_as_of('u-a', '2024-03-01 09:59Z')")" "u-a before kycd saw it: no row"
assert_eq "u-a:VERIFICATION u-o1:PENDING u-o2:PENDING" \
  "$(sql "SELECT string_agg(external_user_id || ':' || coalesce(attempt_status, '-'), ' ' ORDER BY external_user_id)
          FROM kyc.status_as_of('2024-03-01 10:10Z')")" \
  "everyone at 10:10 on Mar 1: the three users seen by then, each in its state then"

e2e_section "kyc.attempts and kyc.status_periods"
assert_eq "u-a|1|2024-03-01 10:00:00+00|2024-03-01 10:20:00+00|SUCCESSFUL|00:20:00|f|t" \
  "$(sql "SET TIME ZONE 'UTC'; SELECT concat_ws('|', external_user_id, attempt, started_at, ended_at, result, duration, open, successful)
          FROM kyc.attempts WHERE external_user_id = 'u-a'")" \
  "u-a: one attempt, 10:00 to 10:20, SUCCESSFUL, 20 minutes"
assert_eq "1|REJECTED_BY_PROVIDER|NO_FACE_FOUND|00:10:00|-|webhook 2|-|-|-|vid-2|api" \
  "$(sql "SELECT string_agg(concat_ws('|', attempt, coalesce(result, '-'), coalesce(rejection_reason, '-'),
                                      coalesce(duration::text, '-'), coalesce(verification_id, '-'), started_by), ' ' ORDER BY attempt)
          FROM kyc.attempts WHERE external_user_id = 'u-r'")" \
  "u-r: attempt 1 rejected (NO_FACE_FOUND) after 10 min, attempt 2 open, started by create-kyc, with its verificationId"
assert_eq "1" "$(sql "SELECT count(*) FROM kyc.attempts WHERE external_user_id = 'u-o2'")" \
  "u-o2: VERIFIED then EXPIRED is one attempt, not two"
assert_eq "PENDING:00:05:00 VERIFICATION:00:15:00 SUCCESSFUL:current" \
  "$(sql "SELECT string_agg(attempt_status || ':' || CASE WHEN current THEN 'current' ELSE duration::text END, ' ' ORDER BY entered_at)
          FROM kyc.status_periods WHERE external_user_id = 'u-a'")" \
  "u-a's periods: PENDING 5 min, VERIFICATION 15 min, SUCCESSFUL now"
assert_eq "00:22:00|2|2" \
  "$(sql "SELECT concat_ws('|', median, periods - current, current) FROM kyc.time_in_status
          WHERE verification_status = 'NOT_VERIFIED' AND attempt_status = 'VERIFICATION'")" \
  "kyc.time_in_status: VERIFICATION left twice (u-a 15 min, u-c 29 min: median 22 min), 2 users in it now"

assert_eq "PENDING:1:0:00:01:00 REJECTED_BY_PROVIDER:1:1 VERIFICATION:1:0:00:29:00" \
  "$(sql "SELECT string_agg(concat_ws(':', attempt_status, periods, current, median), ' ' ORDER BY attempt_status)
          FROM kyc.time_in_status('2024-03-03', 'infinity')")" \
  "kyc.time_in_status(since, until): only the periods entered since Mar 3 (u-c: PENDING 1 min, VERIFICATION 29 min, REJECTED now)"

e2e_section "kyc.daily_funnel: a cohort funnel"
assert_eq "2024-02-28|2|2|0|1|0|0|1.0000 2024-03-01|3|1|0|0|2|0|0.3333 2024-03-03|1|0|1|0|0|0|0.0000" \
  "$(sql "SELECT string_agg(concat_ws('|', day, started, verified, rejected, expired, pending, other, verified_ratio), ' ' ORDER BY day)
          FROM kyc.daily_funnel")" \
  "cohorts: Feb 28 (2 started, both verified, one since expired), Mar 1 (3: 1 verified, 2 pending), Mar 3 (1 rejected)"
assert_eq "0" "$(sql "SELECT count(*) FROM kyc.daily_funnel WHERE verified > started OR rejected + pending > started")" \
  "no day has more verified (or rejected and pending) users than started (the per-day funnel had Mar 2: 0 started, 2 verified)"
assert_eq "0" "$(sql "SELECT count(*) FROM kyc.daily_funnel WHERE verified + rejected + pending + other <> started OR verified_ratio > 1")" \
  "verified + rejected + pending + other = started, verified_ratio <= 1"

e2e_section "kyc.webhook_vs_p100 and kyc.reconciler_corrections"
assert_eq "9|-|- 10|50|false" \
  "$(sql "SELECT string_agg(concat_ws('|', event_id, coalesce(check_id::text, '-'), coalesce(agrees::text, '-')), ' ' ORDER BY event_id)
          FROM kyc.webhook_vs_p100 WHERE external_user_id = 'u-c'")" \
  "u-c: the PENDING webhook was followed by another before any check; the VERIFICATION one is compared with the check at 10:30 and disagrees"
assert_eq "VERIFICATION|REJECTED_BY_PROVIDER|DOC_EXPIRED|t" \
  "$(sql "SELECT concat_ws('|', said_attempt_status, p100_attempt_status, p100_rejection_reason, correction_change_id IS NOT NULL)
          FROM kyc.webhook_vs_p100 WHERE event_id = 10")" \
  "what the webhook said beside what P100 said, and the correction it led to"
assert_eq "u-c|10|webhook|10|applied" \
  "$(sql "SELECT concat_ws('|', external_user_id, corrected_event_id, corrected_source, last_event_id, last_event_outcome)
          FROM kyc.reconciler_corrections")" \
  "the correction names the webhook whose state it replaced (event 10)"

assert_eq "0|0|10" \
  "$(sql "SELECT (SELECT count(*) FROM (SELECT * FROM kyc.webhook_vs_p100 EXCEPT ALL SELECT * FROM kyc.webhook_vs_p100('-infinity', 'infinity')) a)
          || '|' || (SELECT count(*) FROM (SELECT * FROM kyc.webhook_vs_p100('-infinity', 'infinity') EXCEPT ALL SELECT * FROM kyc.webhook_vs_p100) b)
          || '|' || (SELECT count(*) FROM kyc.webhook_vs_p100('-infinity', 'infinity'))")" \
  "kyc.webhook_vs_p100(since, until) over all time: the view's 10 rows, none more, none less"
assert_eq "10" "$(sql "SELECT string_agg(event_id::text, ' ') FROM kyc.webhook_vs_p100('2024-03-03 10:01Z', '2024-03-03 10:02Z')")" \
  "and for a range, only the webhooks received in it (event 10 at 10:01), still compared with the check after it"
assert_eq "50|false" "$(sql "SELECT check_id || '|' || agrees FROM kyc.webhook_vs_p100('2024-03-03 10:01Z', '2024-03-03 10:02Z')")" \
  "the range's webhook is compared with P100's answer at 10:30, after the range's end"

e2e_section "kyc.rejection_reasons_daily"
assert_eq "2024-03-01|NO_FACE_FOUND|1|1|1.0000 2024-03-03|DOC_EXPIRED|1|1|1.0000" \
  "$(sql "SELECT string_agg(concat_ws('|', day, rejection_reason, attempts, users, share), ' ' ORDER BY day) FROM kyc.rejection_reasons_daily")" \
  "per day and reason: u-r's NO_FACE_FOUND on Mar 1, u-c's DOC_EXPIRED (from the reconciler) on Mar 3"

e2e_section "(c) kyc_analyst, and the docs' queries"
for q in "SELECT count(*) FROM kyc.attempts" "SELECT count(*) FROM kyc.status_periods" \
         "SELECT count(*) FROM kyc.time_in_status" "SELECT count(*) FROM kyc.webhook_vs_p100" \
         "SELECT count(*) FROM kyc.rejection_reasons_daily" "SELECT count(*) FROM kyc.status_as_of(now())" \
         "SELECT count(*) FROM kyc.status_as_of('u-a', now())" "SELECT count(*) FROM kyc.daily_funnel" \
         "SELECT count(*) FROM kyc.pending" "SELECT count(*) FROM kyc.reconciler_corrections"; do
  try "$E2E_DB_URL" "SET ROLE kyc_analyst; $q"
  assert_eq 0 "$TRY_RC" "kyc_analyst: $q ($(e2e__clip "$TRY_OUT"))"
done
DOC=$TEST_KYCD_SRC/docs/analysts-schema.md
[ -f "$DOC" ] || e2e_abort "$DOC is missing"
python3 - "$DOC" "$E2E_TMP/block" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
for i, b in enumerate(re.findall(r"^```sql\n(.*?)^```", text, re.S | re.M)):
    open(f"{sys.argv[2]}.{i:02d}.sql", "w").write(b)
PY
nblocks=0
for f in "$E2E_TMP"/block.*.sql; do
  [ -f "$f" ] || continue
  nblocks=$((nblocks + 1))
  if out=$(PGOPTIONS='-c role=kyc_analyst' timeout 30 psql "$E2E_DB_URL" -XAtq -v ON_ERROR_STOP=1 -f "$f" 2>&1); then
    pass "docs/analysts-schema.md block $nblocks runs as kyc_analyst"
  else
    fail "docs/analysts-schema.md block $nblocks: $(e2e__clip "$out")"
  fi
done
assert_ne 0 "$nblocks" "docs/analysts-schema.md has sql blocks ($nblocks)"
