-- kycd schema, version 1: the event log, the current state per user, and
-- the history of changes. This is the analysts' contract: README.md
-- ("What is stored") documents every column. Applied once by `kycd migrate`
-- inside a transaction; never edit an applied migration, add a new one.

CREATE SCHEMA IF NOT EXISTS kyc;
COMMENT ON SCHEMA kyc IS 'kycd: P100 KYC webhooks, current state per user, history';

-- Every accepted webhook delivery, append-only.
CREATE TABLE kyc.webhook_events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind             text NOT NULL CHECK (kind IN ('kyc_verification_status',
                          'poa_verification_status', 'kyc_file_added', 'user_status')),
    external_user_id text NOT NULL CHECK (external_user_id <> '' AND length(external_user_id) <= 128),
    body             jsonb NOT NULL,
    body_sha256      bytea NOT NULL CHECK (length(body_sha256) = 32),
    remote_addr      inet,
    request_id       text,
    repeat_of        bigint REFERENCES kyc.webhook_events (id),
    outcome          text NOT NULL CHECK (outcome IN ('applied', 'unchanged', 'held', 'recorded')),
    outcome_reason   text NOT NULL,
    unknown_fields   text[] NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE kyc.webhook_events IS 'every accepted webhook delivery, append-only';
COMMENT ON COLUMN kyc.webhook_events.repeat_of IS 'earlier delivery with the same kind, user and body within the dedup window';
COMMENT ON COLUMN kyc.webhook_events.outcome IS 'applied: changed the user''s state; unchanged: no change; held: not applied, user marked for an authoritative check; recorded: kinds without state';
COMMENT ON COLUMN kyc.webhook_events.unknown_fields IS 'fields whose value P100 does not document (kept as sent)';
CREATE INDEX webhook_events_user_idx ON kyc.webhook_events (external_user_id, received_at);
CREATE INDEX webhook_events_dedup_idx ON kyc.webhook_events (external_user_id, body_sha256, received_at);
CREATE INDEX webhook_events_received_idx ON kyc.webhook_events (received_at);

-- The current KYC state, one row per externalUserId.
CREATE TABLE kyc.verifications (
    external_user_id    text PRIMARY KEY CHECK (external_user_id <> '' AND length(external_user_id) <= 128),
    verification_status text,
    attempt_status      text,
    rejection_reason    text,
    verification_id     text,
    source              text NOT NULL CHECK (source IN ('webhook', 'reconciler', 'api')),
    first_seen_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_webhook_at     timestamptz,
    last_event_id       bigint REFERENCES kyc.webhook_events (id),
    needs_check_reason  text,
    last_checked_at     timestamptz,
    next_check_at       timestamptz,
    failures            integer NOT NULL DEFAULT 0 CHECK (failures >= 0)
);
COMMENT ON TABLE kyc.verifications IS 'current KYC state per user (P100 externalUserId)';
COMMENT ON COLUMN kyc.verifications.source IS 'who set the current state: webhook, reconciler (Get KYC Status) or api (create verification)';
COMMENT ON COLUMN kyc.verifications.updated_at IS 'when the current state was recorded';
COMMENT ON COLUMN kyc.verifications.needs_check_reason IS 'why the reconciler must ask P100 (out_of_order, leaves_verified, unknown_value, conflict, repeat_conflict); NULL when nothing is owed';
COMMENT ON COLUMN kyc.verifications.next_check_at IS 'when the reconciler should next ask P100 for this user';
CREATE INDEX verifications_next_check_idx ON kyc.verifications (next_check_at)
    WHERE next_check_at IS NOT NULL;

-- Every change of a user's state, append-only.
CREATE TABLE kyc.status_changes (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_user_id        text NOT NULL REFERENCES kyc.verifications (external_user_id),
    changed_at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    source                  text NOT NULL CHECK (source IN ('webhook', 'reconciler', 'api')),
    reason                  text NOT NULL,
    old_verification_status text,
    new_verification_status text,
    old_attempt_status      text,
    new_attempt_status      text,
    old_rejection_reason    text,
    new_rejection_reason    text,
    event_id                bigint REFERENCES kyc.webhook_events (id),
    check_id                bigint
);
COMMENT ON TABLE kyc.status_changes IS 'every change of a user''s KYC state, append-only';
COMMENT ON COLUMN kyc.status_changes.reason IS 'state-machine rule that allowed the change: first, forward, new_attempt, reconciler, api';
COMMENT ON COLUMN kyc.status_changes.event_id IS 'the webhook delivery that caused the change (source webhook)';
COMMENT ON COLUMN kyc.status_changes.check_id IS 'the reconciler''s status check that caused the change (source reconciler)';
CREATE INDEX status_changes_user_idx ON kyc.status_changes (external_user_id, changed_at);
CREATE INDEX status_changes_changed_idx ON kyc.status_changes (changed_at);

-- The latest POA (proof of address) status per user.
CREATE TABLE kyc.poa_statuses (
    external_user_id text PRIMARY KEY CHECK (external_user_id <> '' AND length(external_user_id) <= 128),
    status           text NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_event_id    bigint NOT NULL REFERENCES kyc.webhook_events (id)
);
COMMENT ON TABLE kyc.poa_statuses IS 'latest POA Verification Status per user (last received wins)';

-- Append-only tables refuse UPDATE, DELETE and TRUNCATE, whoever asks.
CREATE FUNCTION kyc.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'kyc.% is append-only', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER webhook_events_append_only BEFORE UPDATE OR DELETE ON kyc.webhook_events
    FOR EACH ROW EXECUTE FUNCTION kyc.refuse_change();
CREATE TRIGGER webhook_events_no_truncate BEFORE TRUNCATE ON kyc.webhook_events
    FOR EACH STATEMENT EXECUTE FUNCTION kyc.refuse_change();
CREATE TRIGGER status_changes_append_only BEFORE UPDATE OR DELETE ON kyc.status_changes
    FOR EACH ROW EXECUTE FUNCTION kyc.refuse_change();
CREATE TRIGGER status_changes_no_truncate BEFORE TRUNCATE ON kyc.status_changes
    FOR EACH STATEMENT EXECUTE FUNCTION kyc.refuse_change();
