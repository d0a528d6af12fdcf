-- The data of tests/bench/analysts.sh: a large partner's history, made in
-- SQL. psql variables: users (how many), months (of history, ending now),
-- and P100's words from kycd's one table (tests/tools/p100_vocab.py): nv,
-- verified, pending, inver (VERIFICATION), ok (SUCCESSFUL), rej
-- (REJECTED_BY_PROVIDER), waiting, approved, added. Run as the tables'
-- owner on a freshly migrated database.
--
-- Per user (fates drawn once, in kyc_bench.users): first seen uniformly
-- over the months; KYC webhooks PENDING, then VERIFICATION 1-30 min later,
-- then a settled result (70% SUCCESSFUL, 18% REJECTED_BY_PROVIDER with one
-- of 8 reasons; 12% stay pending) 5 min to 3 days later; a repeat of the
-- last report (50%); POA WAITING (50%) and APPROVED (30% of all); a KYC
-- file added (80%); a late report held out of order (3%). About 5 webhooks
-- a user. 10% were checked by the reconciler once, 2% of users corrected
-- by it. Bodies are the JSON P100 sends (100-200 bytes), checks' bodies
-- Get KYC Status's answer. Rows go in month by month, in time order (ids
-- grow with time, as in production).
\set ON_ERROR_STOP 1
SET synchronous_commit = off;
CREATE SCHEMA kyc_bench;
SELECT setseed(0.25);
CREATE UNLOGGED TABLE kyc_bench.users AS
SELECT i,
       CASE WHEN i = 1 THEN 'bca65c48-df49-4831-a7b2-de7903321581' ELSE md5('bench' || i)::uuid::text END AS uid,
       now() - interval '2 hours' - random() * (make_interval(months => :months) - interval '4 days') AS t0,
       make_interval(secs => 60 + random() * 1740) AS d1,
       make_interval(secs => 300 + (random() ^ 3) * 259200) AS d2,
       random() AS fate, random() < 0.5 AS rep, random() AS poa, random() < 0.8 AS file,
       random() < 0.03 AS held, random() < 0.10 AS chk, random() < 0.02 AS corr,
       (ARRAY['NO_FACE_FOUND', 'DOCUMENT_EXPIRED', 'BLURRY_IMAGE', 'SELFIE_MISMATCH',
              'UNSUPPORTED_DOCUMENT', 'DUPLICATE_ACCOUNT', 'AGE_RESTRICTION', 'FRAUD_SUSPECTED'])[1 + (random() * 7.99)::int] AS reason
FROM generate_series(1, :users) i;
CREATE INDEX ON kyc_bench.users (t0);
-- The user's last KYC state (slot 3, 2 or 1: the last one already
-- received) and the reconciler's correction of a user left pending.
ALTER TABLE kyc_bench.users ADD COLUMN last_slot int, ADD COLUMN fixed_at timestamptz;
UPDATE kyc_bench.users SET
    last_slot = CASE WHEN fate < 0.88 AND t0 + d1 + d2 < now() THEN 3 WHEN t0 + d1 < now() THEN 2 ELSE 1 END,
    fixed_at = CASE WHEN corr AND fate >= 0.88 AND t0 + d1 + interval '2 days' < now() THEN t0 + d1 + interval '2 days' END;
ANALYZE kyc_bench.users;

-- The months' partitions, as serve's maintenance makes them.
SELECT count(kyc.create_partition(t, m))
FROM unnest(ARRAY['webhook_events', 'status_changes', 'status_checks', 'quarantine']) t,
     generate_series(date_trunc('month', now() - make_interval(months => :months)), now(), interval '1 month') m;
SELECT count(*) FROM kyc.ensure_partitions(2);

-- Every event of a user: (slot, at, kind, body, outcome, reason).
CREATE VIEW kyc_bench.events AS
SELECT u.i, u.uid, u.t0, e.*
FROM kyc_bench.users u
CROSS JOIN LATERAL (VALUES
    (1, u.t0, 'kyc_verification_status',
     jsonb_build_object('externalUserId', u.uid, 'verificationStatus', :'nv', 'attemptStatus', :'pending'),
     'applied', 'first'),
    (2, u.t0 + u.d1, 'kyc_verification_status',
     jsonb_build_object('externalUserId', u.uid, 'verificationStatus', :'nv', 'attemptStatus', :'inver'),
     'applied', 'forward'),
    (3, CASE WHEN u.fate < 0.88 THEN u.t0 + u.d1 + u.d2 END, 'kyc_verification_status',
     CASE WHEN u.fate < 0.70
          THEN jsonb_build_object('externalUserId', u.uid, 'verificationStatus', :'verified', 'attemptStatus', :'ok')
          ELSE jsonb_build_object('externalUserId', u.uid, 'verificationStatus', :'nv', 'attemptStatus', :'rej',
                                  'rejectionReason', u.reason) END,
     'applied', 'forward'),
    (4, CASE WHEN u.rep THEN u.t0 + u.d1 + CASE WHEN u.fate < 0.88 THEN u.d2 ELSE interval '0' END + interval '30 seconds' END,
     'kyc_verification_status',
     CASE WHEN u.fate >= 0.88
          THEN jsonb_build_object('externalUserId', u.uid, 'verificationStatus', :'nv', 'attemptStatus', :'inver')
          WHEN u.fate < 0.70
          THEN jsonb_build_object('externalUserId', u.uid, 'verificationStatus', :'verified', 'attemptStatus', :'ok')
          ELSE jsonb_build_object('externalUserId', u.uid, 'verificationStatus', :'nv', 'attemptStatus', :'rej',
                                  'rejectionReason', u.reason) END,
     'unchanged', 'repeat'),
    (5, CASE WHEN u.poa < 0.5 THEN u.t0 + interval '1 hour' END, 'poa_verification_status',
     jsonb_build_object('externalUserId', u.uid, 'status', :'waiting'), 'applied', 'poa'),
    (6, CASE WHEN u.poa < 0.3 THEN u.t0 + interval '1 day' END, 'poa_verification_status',
     jsonb_build_object('externalUserId', u.uid, 'status', :'approved'), 'applied', 'poa'),
    (7, CASE WHEN u.file THEN u.t0 + interval '5 minutes' END, 'kyc_file_added',
     jsonb_build_object('externalUserId', u.uid, 'status', :'added'), 'recorded', 'recorded'),
    (8, CASE WHEN u.held AND u.fate < 0.88 THEN u.t0 + u.d1 + u.d2 + interval '1 minute' END, 'kyc_verification_status',
     jsonb_build_object('externalUserId', u.uid, 'verificationStatus', :'nv', 'attemptStatus', :'pending'),
     'held', 'out_of_order')
) AS e(slot, at, kind, body, outcome, outcome_reason)
WHERE e.at IS NOT NULL AND e.at < now();

-- The current state (before the history: the history's foreign keys point
-- at it).
INSERT INTO kyc.verifications (external_user_id, verification_status, attempt_status, rejection_reason,
                               source, first_seen_at, updated_at, last_webhook_at, last_checked_at)
SELECT u.uid,
       CASE WHEN u.fixed_at IS NOT NULL OR (u.last_slot = 3 AND u.fate < 0.70) THEN :'verified' ELSE :'nv' END,
       CASE WHEN u.fixed_at IS NOT NULL THEN :'ok' WHEN u.last_slot = 1 THEN :'pending'
            WHEN u.last_slot = 2 THEN :'inver' WHEN u.fate < 0.70 THEN :'ok' ELSE :'rej' END,
       CASE WHEN u.fixed_at IS NULL AND u.last_slot = 3 AND u.fate >= 0.70 THEN u.reason END,
       CASE WHEN u.fixed_at IS NOT NULL THEN 'reconciler' ELSE 'webhook' END,
       u.t0,
       coalesce(u.fixed_at, CASE u.last_slot WHEN 3 THEN u.t0 + u.d1 + u.d2 WHEN 2 THEN u.t0 + u.d1 ELSE u.t0 END),
       CASE u.last_slot WHEN 3 THEN u.t0 + u.d1 + u.d2 WHEN 2 THEN u.t0 + u.d1 ELSE u.t0 END,
       CASE WHEN u.chk OR u.fixed_at IS NOT NULL THEN coalesce(u.fixed_at, u.t0 + u.d1 + interval '10 minutes') END
FROM kyc_bench.users u ORDER BY u.t0;

-- Month by month, in time order: events, then the changes they made
-- (with their event), the reconciler's checks and corrections.
SELECT format($f$INSERT INTO kyc.webhook_events (received_at, kind, external_user_id, body, body_sha256,
                      remote_addr, request_id, outcome, outcome_reason)
                  SELECT e.at, e.kind, e.uid, e.body, sha256(convert_to(e.body::text, 'UTF8')), '10.1.2.3',
                         md5(e.uid || e.slot), e.outcome, e.outcome_reason
                  FROM kyc_bench.events e
                  WHERE e.t0 >= %1$L::timestamptz - interval '4 days' AND e.t0 < %1$L::timestamptz + interval '1 month'
                    AND e.at >= %1$L AND e.at < %1$L::timestamptz + interval '1 month'
                  ORDER BY e.at$f$, m)
FROM generate_series(date_trunc('month', (SELECT min(t0) FROM kyc_bench.users)), now(), interval '1 month') m
\gexec
SELECT format($f$INSERT INTO kyc.status_checks (external_user_id, checked_at, checker, http_status, latency_ms,
                      outcome, result, body)
                  SELECT u.uid, coalesce(u.fixed_at, u.t0 + u.d1 + interval '10 minutes'), 'kycd-1:4242', 200,
                         40 + random() * 300, 'ok', CASE WHEN u.fixed_at IS NOT NULL THEN 'applied' ELSE 'unchanged' END,
                         jsonb_build_object('externalUserId', u.uid,
                             'verificationStatus', CASE WHEN u.fixed_at IS NOT NULL THEN %2$L ELSE %3$L END,
                             'attemptStatus', CASE WHEN u.fixed_at IS NOT NULL THEN %4$L ELSE %5$L END,
                             'verificationId', md5('v' || u.i)::uuid, 'createdAt', u.t0)::text
                  FROM kyc_bench.users u
                  WHERE (u.chk OR u.fixed_at IS NOT NULL)
                    AND coalesce(u.fixed_at, u.t0 + u.d1 + interval '10 minutes') >= %1$L
                    AND coalesce(u.fixed_at, u.t0 + u.d1 + interval '10 minutes') < %1$L::timestamptz + interval '1 month'
                    AND coalesce(u.fixed_at, u.t0 + u.d1 + interval '10 minutes') < now()
                  ORDER BY 2$f$, m, :'verified', :'nv', :'ok', :'inver')
FROM generate_series(date_trunc('month', (SELECT min(t0) FROM kyc_bench.users)), now(), interval '1 month') m
\gexec
SELECT format($f$INSERT INTO kyc.status_changes (external_user_id, changed_at, source, reason,
                      old_verification_status, new_verification_status, old_attempt_status, new_attempt_status,
                      old_rejection_reason, new_rejection_reason, event_id, check_id)
                  SELECT c.uid, c.at, c.source, c.reason, c.ov, c.nv, c.oa, c.na, NULL, c.nr, w.id, k.id
                  FROM (SELECT e.uid, e.slot, e.at, 'webhook' AS source, e.outcome_reason AS reason,
                               CASE WHEN e.slot > 1 THEN %2$L END AS ov, e.body ->> 'verificationStatus' AS nv,
                               CASE e.slot WHEN 2 THEN %3$L WHEN 3 THEN %4$L END AS oa,
                               e.body ->> 'attemptStatus' AS na, e.body ->> 'rejectionReason' AS nr
                        FROM kyc_bench.events e
                        WHERE e.slot <= 3
                          AND e.t0 >= %1$L::timestamptz - interval '4 days' AND e.t0 < %1$L::timestamptz + interval '1 month'
                          AND e.at >= %1$L AND e.at < %1$L::timestamptz + interval '1 month'
                        UNION ALL
                        SELECT u.uid, 9, u.fixed_at, 'reconciler', 'reconciler', %2$L, %5$L, %4$L, %6$L, NULL
                        FROM kyc_bench.users u
                        WHERE u.fixed_at >= %1$L AND u.fixed_at < %1$L::timestamptz + interval '1 month') c
                  LEFT JOIN kyc.webhook_events w ON c.slot < 9 AND w.request_id = md5(c.uid || c.slot) AND w.received_at = c.at
                       AND w.received_at >= %1$L AND w.received_at < %1$L::timestamptz + interval '1 month'
                  LEFT JOIN kyc.status_checks k ON c.slot = 9 AND k.external_user_id = c.uid AND k.checked_at = c.at
                       AND k.checked_at >= %1$L AND k.checked_at < %1$L::timestamptz + interval '1 month'
                  ORDER BY c.at$f$, m, :'nv', :'pending', :'inver', :'verified', :'ok')
FROM generate_series(date_trunc('month', (SELECT min(t0) FROM kyc_bench.users)), now(), interval '1 month') m
\gexec

-- The latest POA status, and the event behind each current state.
INSERT INTO kyc.poa_statuses (external_user_id, status, updated_at, last_event_id)
SELECT DISTINCT ON (w.external_user_id) w.external_user_id, w.body ->> 'status', w.received_at, w.id
FROM kyc.webhook_events w WHERE w.kind = 'poa_verification_status'
ORDER BY w.external_user_id, w.received_at DESC;
UPDATE kyc.verifications v SET last_event_id = w.id
FROM kyc_bench.users u, kyc.webhook_events w
WHERE u.uid = v.external_user_id AND v.source = 'webhook'
  AND w.request_id = md5(u.uid || u.last_slot)
  AND w.received_at = CASE u.last_slot WHEN 3 THEN u.t0 + u.d1 + u.d2 WHEN 2 THEN u.t0 + u.d1 ELSE u.t0 END;
UPDATE kyc.verifications v SET last_check_id = k.id
FROM kyc.status_checks k WHERE k.external_user_id = v.external_user_id;
DROP SCHEMA kyc_bench CASCADE;
