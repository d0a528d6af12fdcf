-- kycd schema, version 15: webhooks that never come. A user created with
-- `kycd create-kyc`, or pending, waits for P100's result webhook (iDenfy
-- delivers within about 20 minutes); one still waiting after
-- webhook_overdue is counted in kycd_webhooks_overdue_users (alert
-- KycdWebhooksOverdue), separately from the reconciler correcting it, so
-- that on-call learns P100's webhooks stopped before analysts do
-- (docs/design.md, "Webhooks that never come").

ALTER TABLE kyc.verifications ADD COLUMN requested_at timestamptz;
COMMENT ON COLUMN kyc.verifications.requested_at IS 'when kycd last asked P100 to create a verification for this user (kycd create-kyc, answered 201 or 202 P212); NULL: never';

-- Since when the user has been waiting for a webhook: its last KYC webhook
-- or its last create-kyc, whichever is later; first_seen_at when neither.
-- One definition for the gauge's count and the reconciler's check
-- (src/io/db_reconcile.c); immutable, so it is inlined and the count is
-- served by the partial index verifications_due_idx (sql/005), which
-- holds the pending users only.
CREATE FUNCTION kyc.webhook_awaited_since(last_webhook_at timestamptz, requested_at timestamptz,
                                          first_seen_at timestamptz)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(greatest(last_webhook_at, requested_at), first_seen_at)
$$;
COMMENT ON FUNCTION kyc.webhook_awaited_since(timestamptz, timestamptz, timestamptz) IS 'since when a pending user has waited for a KYC webhook: the later of its last webhook and its last create-kyc; first_seen_at when neither';
GRANT EXECUTE ON FUNCTION kyc.webhook_awaited_since(timestamptz, timestamptz, timestamptz) TO kyc_analyst;

-- The planner's guess for kyc.is_pending(attempt_status) is a flat 50%, so
-- on a large table it took the partial index verifications_due_idx (the
-- held and pending users) to hold half the users and counted them with
-- parallel workers: 400 ms for 10,000 pending users among 3,000,000
-- instead of 13 (tests/bench/overdue_count.sh). Statistics on the
-- expression give it the real share. The claim (src/io/db_reconcile.c)
-- reads the same predicate.
CREATE STATISTICS kyc.verifications_pending_stats ON (kyc.is_pending(attempt_status))
    FROM kyc.verifications;
COMMENT ON STATISTICS kyc.verifications_pending_stats IS 'the share of pending users (kyc.is_pending), for the plans of the reconciler''s claim and count';
ANALYZE kyc.verifications;
