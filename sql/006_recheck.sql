-- kycd schema, version 6: re-checks of settled users. A rejected user may
-- start a new attempt whose webhooks are all lost, and a verified user's
-- verification may expire with its one webhook lost: kycd asks P100 again
-- on a schedule (README.md, "Re-checks"). The reconciler's claim
-- (src/io/db_reconcile.c) computes who is due from the columns below.

ALTER TABLE kyc.verifications ADD COLUMN rechecked_at timestamptz;
COMMENT ON COLUMN kyc.verifications.rechecked_at IS 'when P100 last answered Get KYC Status for this user (the re-check schedule counts from it)';

ALTER TABLE kyc.status_checks ADD COLUMN purpose text
    CHECK (purpose IN ('held', 'pending', 'recheck_rejected', 'recheck_verified'));
COMMENT ON COLUMN kyc.status_checks.purpose IS 'why the user was checked: held (a webhook was held), pending (for pending_after), recheck_rejected or recheck_verified (a settled user re-checked); NULL before version 6';

-- A verified user's re-check slot: the latest instant at or before `at`
-- that is congruent to the user's phase modulo every_ms. The phase comes
-- from a hash of the id, so users verified on one day are spread evenly
-- over the interval (no thundering herd).
CREATE FUNCTION kyc.recheck_slot(external_user_id text, every_ms bigint, at timestamptz)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_timestamp((floor((extract(epoch FROM at) * 1000
                                - (('x' || substr(md5(external_user_id), 1, 12))::bit(48)::bigint % every_ms))
                               / every_ms) * every_ms
                         + (('x' || substr(md5(external_user_id), 1, 12))::bit(48)::bigint % every_ms)) / 1000.0)
$$;
COMMENT ON FUNCTION kyc.recheck_slot(text, bigint, timestamptz) IS 'latest re-check slot of a verified user at or before at, for an interval of every_ms';

-- A correction's reason says whether a re-check found it (reason recheck)
-- and what the check was for (purpose). Columns are added at the end.
CREATE OR REPLACE VIEW kyc.reconciler_corrections AS
SELECT c.id AS change_id, c.changed_at, c.external_user_id,
       c.old_verification_status, c.old_attempt_status,
       c.new_verification_status, c.new_attempt_status, c.new_rejection_reason,
       s.http_status, s.latency_ms,
       v.last_webhook_at,
       c.reason, s.purpose
FROM kyc.status_changes c
JOIN kyc.status_checks s ON s.id = c.check_id
JOIN kyc.verifications v ON v.external_user_id = c.external_user_id
WHERE c.source = 'reconciler';
COMMENT ON VIEW kyc.reconciler_corrections IS 'state changes made by the reconciler: each one is a webhook that was missed or wrong; reason recheck: found by a re-check of a settled user';
