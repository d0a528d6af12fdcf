-- Views for people who query by hand, and the read-only role kyc_analyst.
-- "Pending" means: attempt PENDING or VERIFICATION, or nothing settled yet
-- (created through the API, or the first report was held because P100 used
-- an undocumented value).

CREATE VIEW kyc.current_status AS
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
       p.updated_at AS poa_updated_at
FROM kyc.verifications v
LEFT JOIN kyc.poa_statuses p USING (external_user_id);
COMMENT ON VIEW kyc.current_status IS 'one row per user: current KYC state, whether pending, POA status';

CREATE VIEW kyc.pending AS
SELECT external_user_id, verification_status, attempt_status, source, verification_id,
       updated_at AS pending_since,
       clock_timestamp() - updated_at AS pending_for,
       needs_check_reason
FROM kyc.current_status
WHERE pending;
COMMENT ON VIEW kyc.pending IS 'users whose verification is pending, with how long; filter on pending_for';

CREATE FUNCTION kyc.pending_longer_than(minutes integer)
RETURNS SETOF kyc.pending LANGUAGE sql STABLE AS $$
    SELECT * FROM kyc.pending WHERE pending_for > make_interval(mins => minutes)
    ORDER BY pending_for DESC
$$;
COMMENT ON FUNCTION kyc.pending_longer_than(integer) IS 'users pending for longer than N minutes, oldest first';

-- Per UTC day: users first seen, and users reaching each outcome that day.
CREATE VIEW kyc.daily_funnel AS
WITH started AS (
    SELECT (first_seen_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n
    FROM kyc.verifications GROUP BY 1
), outcomes AS (
    SELECT (changed_at AT TIME ZONE 'UTC')::date AS day,
           count(DISTINCT external_user_id) FILTER (WHERE new_verification_status = 'VERIFIED'
               AND old_verification_status IS DISTINCT FROM 'VERIFIED') AS verified,
           count(DISTINCT external_user_id) FILTER (WHERE new_attempt_status = 'REJECTED_BY_PROVIDER'
               AND old_attempt_status IS DISTINCT FROM 'REJECTED_BY_PROVIDER') AS rejected,
           count(DISTINCT external_user_id) FILTER (WHERE new_verification_status = 'EXPIRED'
               AND old_verification_status IS DISTINCT FROM 'EXPIRED') AS expired
    FROM kyc.status_changes GROUP BY 1
)
SELECT day,
       coalesce(s.n, 0) AS started,
       coalesce(o.verified, 0) AS verified,
       coalesce(o.rejected, 0) AS rejected,
       coalesce(o.expired, 0) AS expired
FROM started s FULL JOIN outcomes o USING (day)
ORDER BY day;
COMMENT ON VIEW kyc.daily_funnel IS 'per UTC day: users first seen (started) and users that became verified, rejected, expired';

CREATE VIEW kyc.time_to_verified AS
SELECT v.external_user_id,
       v.first_seen_at,
       f.verified_at,
       f.verified_at - v.first_seen_at AS time_to_verified
FROM kyc.verifications v
JOIN LATERAL (
    SELECT min(c.changed_at) AS verified_at
    FROM kyc.status_changes c
    WHERE c.external_user_id = v.external_user_id AND c.new_verification_status = 'VERIFIED'
) f ON f.verified_at IS NOT NULL;
COMMENT ON VIEW kyc.time_to_verified IS 'per verified user: time from first sight to first VERIFIED';

CREATE VIEW kyc.held_events AS
SELECT e.id AS event_id, e.received_at, e.external_user_id, e.outcome_reason,
       e.body ->> 'verificationStatus' AS verification_status,
       e.body ->> 'attemptStatus' AS attempt_status,
       e.unknown_fields,
       v.verification_status AS current_verification_status,
       v.attempt_status AS current_attempt_status
FROM kyc.webhook_events e
JOIN kyc.verifications v USING (external_user_id)
WHERE e.outcome = 'held';
COMMENT ON VIEW kyc.held_events IS 'webhooks stored but not applied (out of order, conflicting, undocumented values)';

-- The read-only role for analysts: grant it to their login roles
-- (GRANT kyc_analyst TO alice). It can read everything in kyc and change
-- nothing.
-- Roles are per cluster: another database of the same cluster may be
-- creating it at this very moment, hence the exception handler.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kyc_analyst') THEN
        CREATE ROLE kyc_analyst NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END $$;
GRANT USAGE ON SCHEMA kyc TO kyc_analyst;
GRANT SELECT ON ALL TABLES IN SCHEMA kyc TO kyc_analyst;
GRANT EXECUTE ON FUNCTION kyc.pending_longer_than(integer) TO kyc_analyst;
ALTER DEFAULT PRIVILEGES IN SCHEMA kyc GRANT SELECT ON TABLES TO kyc_analyst;
REVOKE CREATE ON SCHEMA kyc FROM PUBLIC;
