-- kycd schema, version 11: an answer of Get KYC Status that says nothing
-- about the user (a 4xx without P100's error body, a 200 that is no status)
-- is recorded with its own class, "unusable" (core/vocab.c's
-- VOCAB_P100_CLASS; tests/e2e/test_vocabulary.sh holds the two together).
-- Such an answer pauses the reconciler as a 401 does: no user is flagged for
-- the request's fault.
ALTER TABLE kyc.status_checks DROP CONSTRAINT status_checks_outcome_check;
ALTER TABLE kyc.status_checks ADD CONSTRAINT status_checks_outcome_check
    CHECK (outcome IN ('ok', 'final', 'transient', 'rate_limited', 'misconfigured', 'unusable'));
COMMENT ON COLUMN kyc.status_checks.outcome IS 'P100''s answer, classified: ok, final (about the user: flagged), transient (retried with backoff), rate_limited (429), misconfigured (401/403, TLS, redirect: the reconciler pauses), unusable (says nothing about the user: a 4xx without P100''s errorCode, a 200 that is no status: the reconciler pauses)';
