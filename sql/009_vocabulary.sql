-- kycd schema, version 9: P100's words, once, in the database too.
--
-- kyc.p100_values(field) is the one place SQL holds P100's documented
-- values (docs/p100-api.md); it says what src/core/vocab.c says
-- (tests/e2e/test_vocabulary.sh compares the three). The columns of
-- kyc.verifications that hold P100's values are constrained to them: a
-- report with a value P100 does not document is held (kept in
-- kyc.webhook_events, outcome held, reason unknown_value), and an answer of
-- Get KYC Status with one is flagged for a person (kyc.status_checks keeps
-- its body), so neither can reach the current state.

CREATE FUNCTION kyc.p100_values(field text)
RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE field
        WHEN 'verificationStatus' THEN ARRAY['NOT_VERIFIED', 'VERIFIED', 'EXPIRED']
        WHEN 'attemptStatus' THEN ARRAY['PENDING', 'VERIFICATION', 'REJECTED_BY_PROVIDER', 'SUCCESSFUL']
        WHEN 'poaVerificationStatus.status' THEN ARRAY['WAITING', 'APPROVED', 'REJECTED', 'QUESTIONED']
        WHEN 'kycFileAdded.status' THEN ARRAY['ADDED', 'ERROR']
        WHEN 'userStatus.status' THEN ARRAY['ACTIVE']
        WHEN 'errorCode' THEN ARRAY['P403', 'P411', 'P412', 'P433', 'P445', 'P450', 'P453', 'P459',
                                    'P500', 'P501', 'P211', 'P212']
    END
$$;
COMMENT ON FUNCTION kyc.p100_values(text) IS 'the values P100 documents for a field (verificationStatus, attemptStatus, poaVerificationStatus.status, kycFileAdded.status, userStatus.status, errorCode), in the order of docs/p100-api.md; NULL for any other field';
GRANT EXECUTE ON FUNCTION kyc.p100_values(text) TO kyc_analyst;

-- A database where an undocumented value already reached the current state
-- (an answer of Get KYC Status applied verbatim before this version) is
-- not converted silently: the migration stops, changes nothing, and says
-- which rows an operator must look at.
DO $$
DECLARE n bigint;
BEGIN
    SELECT count(*) INTO n FROM kyc.verifications
    WHERE verification_status <> ALL (kyc.p100_values('verificationStatus'))
       OR attempt_status <> ALL (kyc.p100_values('attemptStatus'));
    IF n > 0 THEN
        RAISE EXCEPTION '% users in kyc.verifications hold a status P100 does not document', n
            USING HINT = 'find them with: SELECT external_user_id, verification_status, attempt_status '
                         'FROM kyc.verifications WHERE verification_status <> ALL (ARRAY[''NOT_VERIFIED'', '
                         '''VERIFIED'', ''EXPIRED'']) OR attempt_status <> ALL (ARRAY[''PENDING'', '
                         '''VERIFICATION'', ''REJECTED_BY_PROVIDER'', ''SUCCESSFUL'']); ask P100 '
                         '(kycd status ID --live) and correct them, then run kycd migrate again';
    END IF;
END $$;

ALTER TABLE kyc.verifications
    ADD CONSTRAINT verifications_verification_status_documented
        CHECK (verification_status = ANY (kyc.p100_values('verificationStatus'))),
    ADD CONSTRAINT verifications_attempt_status_documented
        CHECK (attempt_status = ANY (kyc.p100_values('attemptStatus')));
