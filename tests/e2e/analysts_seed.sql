-- A few users for tests/e2e/test_analysts_doc.sh, so that the example
-- queries of docs/analysts.md read rows: one verified (the user the
-- examples name), one pending for two hours, one rejected this week. Run
-- as the tables' owner on a freshly migrated database.
INSERT INTO kyc.verifications (external_user_id, source, verification_status, attempt_status,
                               rejection_reason, first_seen_at, updated_at)
VALUES ('bca65c48-df49-4831-a7b2-de7903321581', 'webhook', 'VERIFIED', 'SUCCESSFUL', NULL,
        now() - interval '3 days', now() - interval '2 days'),
       ('analysts-doc-pending', 'webhook', 'NOT_VERIFIED', 'PENDING', NULL,
        now() - interval '2 hours', now() - interval '2 hours'),
       ('analysts-doc-rejected', 'webhook', 'NOT_VERIFIED', 'REJECTED_BY_PROVIDER', 'NO_FACE_FOUND',
        now() - interval '1 day', now() - interval '1 day');
INSERT INTO kyc.webhook_events (received_at, kind, external_user_id, body, body_sha256, request_id,
                                outcome, outcome_reason)
SELECT at, 'kyc_verification_status', u, b, sha256(convert_to(b::text, 'UTF8')),
       md5(u || at::text), o, r
FROM (VALUES
  (now() - interval '3 days', 'bca65c48-df49-4831-a7b2-de7903321581',
   '{"externalUserId":"bca65c48-df49-4831-a7b2-de7903321581","verificationStatus":"NOT_VERIFIED","attemptStatus":"PENDING"}'::jsonb,
   'applied', 'first'),
  (now() - interval '2 days', 'bca65c48-df49-4831-a7b2-de7903321581',
   '{"externalUserId":"bca65c48-df49-4831-a7b2-de7903321581","verificationStatus":"VERIFIED","attemptStatus":"SUCCESSFUL"}'::jsonb,
   'applied', 'forward'),
  (now() - interval '2 days' + interval '1 minute', 'bca65c48-df49-4831-a7b2-de7903321581',
   '{"externalUserId":"bca65c48-df49-4831-a7b2-de7903321581","verificationStatus":"NOT_VERIFIED","attemptStatus":"PENDING"}'::jsonb,
   'held', 'out_of_order'),
  (now() - interval '2 hours', 'analysts-doc-pending',
   '{"externalUserId":"analysts-doc-pending","verificationStatus":"NOT_VERIFIED","attemptStatus":"PENDING"}'::jsonb,
   'applied', 'first'),
  (now() - interval '1 day', 'analysts-doc-rejected',
   '{"externalUserId":"analysts-doc-rejected","verificationStatus":"NOT_VERIFIED","attemptStatus":"REJECTED_BY_PROVIDER","rejectionReason":"NO_FACE_FOUND"}'::jsonb,
   'applied', 'first')
) AS e(at, u, b, o, r);
INSERT INTO kyc.status_changes (external_user_id, changed_at, source, reason, new_verification_status,
                                new_attempt_status, new_rejection_reason)
VALUES ('bca65c48-df49-4831-a7b2-de7903321581', now() - interval '3 days', 'webhook', 'first', 'NOT_VERIFIED', 'PENDING', NULL),
       ('bca65c48-df49-4831-a7b2-de7903321581', now() - interval '2 days', 'webhook', 'forward', 'VERIFIED', 'SUCCESSFUL', NULL),
       ('analysts-doc-pending', now() - interval '2 hours', 'webhook', 'first', 'NOT_VERIFIED', 'PENDING', NULL),
       ('analysts-doc-rejected', now() - interval '1 day', 'webhook', 'first', 'NOT_VERIFIED', 'REJECTED_BY_PROVIDER', 'NO_FACE_FOUND');
