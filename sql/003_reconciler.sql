-- kycd schema, version 3: the reconciler. Every call to P100's Get KYC
-- Status is recorded in kyc.status_checks; a user's row carries the claim
-- (lease) of the kycd that is checking it, and a reason when a person must
-- look at it. See README.md ("The reconciler").

ALTER TABLE kyc.verifications
    ADD COLUMN lease_owner      text,
    ADD COLUMN lease_until      timestamptz,
    ADD COLUMN attention_reason text,
    ADD COLUMN last_check_id    bigint;
COMMENT ON COLUMN kyc.verifications.lease_owner IS 'the kycd instance (host:pid) checking this user now';
COMMENT ON COLUMN kyc.verifications.lease_until IS 'until when that claim holds; an expired claim is free again';
COMMENT ON COLUMN kyc.verifications.attention_reason IS 'why a person must look at this user (P100 final error, too many failures); the reconciler stops checking';

-- Users the reconciler may pick, in the order it picks them.
CREATE INDEX verifications_due_idx ON kyc.verifications (coalesce(next_check_at, updated_at))
    WHERE attention_reason IS NULL
      AND (needs_check_reason IS NOT NULL OR attempt_status IS NULL
           OR attempt_status IN ('PENDING', 'VERIFICATION'));

-- Every call to Get KYC Status, append-only.
CREATE TABLE kyc.status_checks (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_user_id text NOT NULL REFERENCES kyc.verifications (external_user_id),
    checked_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    checker          text NOT NULL,
    http_status      integer,
    error_code       text,
    latency_ms       double precision NOT NULL,
    outcome          text NOT NULL CHECK (outcome IN ('ok', 'final', 'transient', 'rate_limited', 'misconfigured')),
    result           text NOT NULL CHECK (result IN ('applied', 'unchanged', 'flagged', 'retry', 'released')),
    detail           text,
    body             text
);
COMMENT ON TABLE kyc.status_checks IS 'every Get KYC Status call made by the reconciler, append-only';
COMMENT ON COLUMN kyc.status_checks.http_status IS 'NULL when no HTTP answer came (timeout, connection error)';
COMMENT ON COLUMN kyc.status_checks.outcome IS 'P100''s answer, classified: ok, final (P445, P412, ...), transient (P500, P501, 5xx, timeouts), rate_limited (429), misconfigured (401)';
COMMENT ON COLUMN kyc.status_checks.result IS 'what kycd did: applied (state corrected), unchanged, flagged (for a person), retry (later, with backoff), released (not handled)';
COMMENT ON COLUMN kyc.status_checks.body IS 'the raw answer (at most 64 KiB)';
CREATE INDEX status_checks_user_idx ON kyc.status_checks (external_user_id, checked_at);
CREATE INDEX status_checks_checked_idx ON kyc.status_checks (checked_at);
CREATE TRIGGER status_checks_append_only BEFORE UPDATE OR DELETE ON kyc.status_checks
    FOR EACH ROW EXECUTE FUNCTION kyc.refuse_change();
CREATE TRIGGER status_checks_no_truncate BEFORE TRUNCATE ON kyc.status_checks
    FOR EACH STATEMENT EXECUTE FUNCTION kyc.refuse_change();

ALTER TABLE kyc.status_changes
    ADD CONSTRAINT status_changes_check_fk FOREIGN KEY (check_id) REFERENCES kyc.status_checks (id);

-- A change made by the reconciler means a webhook was missed or wrong.
CREATE VIEW kyc.reconciler_corrections AS
SELECT c.id AS change_id, c.changed_at, c.external_user_id,
       c.old_verification_status, c.old_attempt_status,
       c.new_verification_status, c.new_attempt_status, c.new_rejection_reason,
       s.http_status, s.latency_ms,
       v.last_webhook_at
FROM kyc.status_changes c
JOIN kyc.status_checks s ON s.id = c.check_id
JOIN kyc.verifications v ON v.external_user_id = c.external_user_id
WHERE c.source = 'reconciler';
COMMENT ON VIEW kyc.reconciler_corrections IS 'state changes made by the reconciler: each one is a webhook that was missed or wrong';

CREATE VIEW kyc.needs_attention AS
SELECT external_user_id, attention_reason, verification_status, attempt_status,
       failures, last_checked_at, updated_at
FROM kyc.verifications
WHERE attention_reason IS NOT NULL;
COMMENT ON VIEW kyc.needs_attention IS 'users the reconciler gave up on: a person must look';

CREATE VIEW kyc.reconciler_daily AS
SELECT (checked_at AT TIME ZONE 'UTC')::date AS day, outcome, result,
       count(*) AS checks,
       round(avg(latency_ms)::numeric, 1) AS avg_latency_ms,
       round((percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms))::numeric, 1) AS p99_latency_ms
FROM kyc.status_checks
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;
COMMENT ON VIEW kyc.reconciler_daily IS 'per UTC day: P100 checks by outcome and result, with latency';

GRANT SELECT ON kyc.status_checks, kyc.reconciler_corrections, kyc.needs_attention,
    kyc.reconciler_daily TO kyc_analyst;
