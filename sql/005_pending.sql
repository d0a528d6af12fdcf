-- kycd schema, version 5: one definition of "pending". A user is pending
-- while its attempt is PENDING or VERIFICATION, or nothing is settled yet
-- (created through the API, or the first report was held because P100 used
-- an undocumented value). kycd's C side says the same in core/policy.c
-- (kyc_is_pending); the integration test compares the two.

CREATE FUNCTION kyc.is_pending(attempt_status text)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(attempt_status IN ('PENDING', 'VERIFICATION'), true)
$$;
COMMENT ON FUNCTION kyc.is_pending(text) IS 'whether a user with this attempt_status is pending: PENDING, VERIFICATION, or nothing settled yet (NULL)';
GRANT EXECUTE ON FUNCTION kyc.is_pending(text) TO kyc_analyst;

-- The analysts' main view (and kyc.pending, which reads its column).
CREATE OR REPLACE VIEW kyc.current_status AS
SELECT v.external_user_id,
       v.verification_status,
       v.attempt_status,
       v.rejection_reason,
       v.verification_id,
       v.source,
       kyc.is_pending(v.attempt_status) AS pending,
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

-- The users the reconciler may pick: its claim (src/io/db_reconcile.c)
-- writes the same predicate, so that this index serves it.
DROP INDEX kyc.verifications_due_idx;
CREATE INDEX verifications_due_idx ON kyc.verifications (coalesce(next_check_at, updated_at))
    WHERE attention_reason IS NULL
      AND (needs_check_reason IS NOT NULL OR kyc.is_pending(attempt_status));
