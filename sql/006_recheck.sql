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
-- congruent to the user's phase modulo the interval. The phase is a hash of
-- the id (a fraction in [0, 1) of the interval), so users verified on one
-- day are spread evenly over the interval (no thundering herd). It is
-- stored, so that the reconciler's claim, which looks at every settled
-- user, does arithmetic per row rather than a hash (1M users: about 1 s
-- instead of 7). Adding the column rewrites the table once.
CREATE FUNCTION kyc.recheck_phase(external_user_id text)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ('x' || substr(md5(external_user_id), 1, 12))::bit(48)::bigint / 281474976710656.0
$$;
COMMENT ON FUNCTION kyc.recheck_phase(text) IS 'a user''s re-check phase: a fraction in [0, 1) of the interval, from a hash of the id';
ALTER TABLE kyc.verifications ADD COLUMN recheck_phase double precision
    GENERATED ALWAYS AS (kyc.recheck_phase(external_user_id)) STORED;
COMMENT ON COLUMN kyc.verifications.recheck_phase IS 'where in each recheck_verified_every interval this user is re-checked (kyc.recheck_phase of the id)';

CREATE FUNCTION kyc.recheck_slot(phase double precision, every_ms bigint, at timestamptz)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_timestamp((floor((extract(epoch FROM at) * 1000 - phase * every_ms) / every_ms)
                         * every_ms + phase * every_ms) / 1000.0)
$$;
COMMENT ON FUNCTION kyc.recheck_slot(double precision, bigint, timestamptz) IS 'latest re-check slot at or before at, for a phase (kyc.recheck_phase) and an interval of every_ms';

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
