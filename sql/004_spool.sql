-- kycd schema, version 4: deliveries replayed from the local spool are
-- stored exactly once. Every delivery carries a random 128-bit request id;
-- a replay after a crash finds its earlier copy by it.
CREATE UNIQUE INDEX webhook_events_request_idx ON kyc.webhook_events (request_id);
COMMENT ON COLUMN kyc.webhook_events.request_id IS 'unique per delivery: the requestId of the HTTP answer and log line';
COMMENT ON COLUMN kyc.webhook_events.received_at IS 'when kycd accepted the delivery (for one replayed from the spool: when it was spooled, not when it reached the database)';

-- The analysts' main view shows whether a person must look at the user.
CREATE OR REPLACE VIEW kyc.current_status AS
SELECT v.external_user_id,
       v.verification_status,
       v.attempt_status,
       v.rejection_reason,
       v.verification_id,
       v.source,
       coalesce(v.attempt_status IN ('PENDING', 'VERIFICATION'), true) AS pending,
       v.needs_check_reason IS NOT NULL AS needs_check,
       v.needs_check_reason,
       v.first_seen_at,
       v.updated_at,
       v.last_webhook_at,
       p.status AS poa_status,
       p.updated_at AS poa_updated_at,
       v.attention_reason,
       v.last_checked_at
FROM kyc.verifications v
LEFT JOIN kyc.poa_statuses p USING (external_user_id);

-- A held report is resolved once P100 was asked after it arrived.
CREATE OR REPLACE VIEW kyc.held_events AS
SELECT e.id AS event_id, e.received_at, e.external_user_id, e.outcome_reason,
       e.body ->> 'verificationStatus' AS verification_status,
       e.body ->> 'attemptStatus' AS attempt_status,
       e.unknown_fields,
       v.verification_status AS current_verification_status,
       v.attempt_status AS current_attempt_status,
       coalesce(v.last_checked_at > e.received_at, false) AS resolved
FROM kyc.webhook_events e
JOIN kyc.verifications v USING (external_user_id)
WHERE e.outcome = 'held';

COMMENT ON COLUMN kyc.verifications.needs_check_reason IS 'why the reconciler must ask P100 (out_of_order, leaves_verified, unknown_value, conflict, repeat_conflict, api_pending); NULL when nothing is owed';
