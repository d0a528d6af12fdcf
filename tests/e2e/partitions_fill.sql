-- Fills a kycd database at schema version 6 with :events webhook events
-- spread from the start of the UTC month 14 months ago to now (15 months), one user per 5 events, a
-- state change per event and a status check per 10 events; each user's
-- current state points at its last event and check. Used by
-- test_partitions.sh to convert a filled database to version 7 and later.
-- P100's values come as psql variables from `kycd vocabulary` (:verified,
-- :successful): this file spells none of them.
INSERT INTO kyc.verifications (external_user_id, source, verification_status, attempt_status)
SELECT 'fill-' || u, 'webhook', :'verified', :'successful'
FROM generate_series(1, greatest(:events / 5, 1)) u;
INSERT INTO kyc.webhook_events (received_at, kind, external_user_id, body, body_sha256,
                                request_id, outcome, outcome_reason)
SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '14 months') AT TIME ZONE 'UTC'
       + (now() - (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '14 months') AT TIME ZONE 'UTC')
         * ((i - 1)::double precision / :events),
       'kyc_verification_status', 'fill-' || (1 + i % greatest(:events / 5, 1)),
       jsonb_build_object('externalUserId', 'fill-' || (1 + i % greatest(:events / 5, 1)),
                          'verificationStatus', :'verified', 'attemptStatus', :'successful', 'n', i),
       sha256(i::text::bytea), 'fill-req-' || i, 'applied', 'forward'
FROM generate_series(1, :events) i;
INSERT INTO kyc.status_checks (external_user_id, checked_at, checker, http_status, latency_ms,
                               outcome, result, purpose)
SELECT external_user_id, received_at, 'fill', 200, 12.5, 'ok', 'unchanged', 'pending'
FROM kyc.webhook_events WHERE id % 10 = 0;
INSERT INTO kyc.status_changes (external_user_id, changed_at, source, reason,
                                new_verification_status, event_id)
SELECT external_user_id, received_at, 'webhook', 'forward', :'verified', id
FROM kyc.webhook_events;
UPDATE kyc.verifications v SET last_event_id = e.id, last_webhook_at = e.received_at
FROM (SELECT external_user_id, max(id) AS id, max(received_at) AS received_at
      FROM kyc.webhook_events GROUP BY 1) e
WHERE e.external_user_id = v.external_user_id;
UPDATE kyc.verifications v SET last_check_id = c.id
FROM (SELECT external_user_id, max(id) AS id FROM kyc.status_checks GROUP BY 1) c
WHERE c.external_user_id = v.external_user_id;
-- One user whose only event (its current state) is in the oldest month:
-- retention must keep that partition.
INSERT INTO kyc.verifications (external_user_id, source, verification_status, attempt_status)
VALUES ('fill-stale', 'webhook', :'verified', :'successful');
WITH e AS (INSERT INTO kyc.webhook_events (received_at, kind, external_user_id, body, body_sha256,
                                           request_id, outcome, outcome_reason)
           VALUES ((date_trunc('month', now() AT TIME ZONE 'UTC') - interval '14 months' + interval '1 day') AT TIME ZONE 'UTC', 'kyc_verification_status', 'fill-stale',
                   '{"externalUserId": "fill-stale"}', sha256('stale'::bytea), 'fill-req-stale',
                   'applied', 'first')
           RETURNING id, received_at)
UPDATE kyc.verifications v SET last_event_id = e.id, last_webhook_at = e.received_at
FROM e WHERE v.external_user_id = 'fill-stale';
