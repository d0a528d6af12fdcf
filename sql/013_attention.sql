-- kycd schema, version 13: on-call acts on the users flagged for a person.
-- `kycd attention retry` gives a flagged user (or all of them) back to the
-- reconciler, and each such action is kept here, append-only: who, when,
-- why, which users. kycd_reconciler_flagged_users counts the flagged ones
-- (the alert KycdUsersFlagged), from the partial index below.

CREATE INDEX verifications_flagged_idx ON kyc.verifications (external_user_id)
    WHERE attention_reason IS NOT NULL;

CREATE TABLE kyc.attention_actions (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    run_by    text NOT NULL DEFAULT session_user,
    os_user   text,
    host      text,
    action    text NOT NULL CHECK (action IN ('retry')),
    reason    text,
    users     text[] NOT NULL,
    flags     text[] NOT NULL
);
COMMENT ON TABLE kyc.attention_actions IS 'every action on-call took on users flagged for a person (kycd attention retry): who, when, why, which users and what each was flagged for; append-only';
COMMENT ON COLUMN kyc.attention_actions.id IS 'identity: the action';
COMMENT ON COLUMN kyc.attention_actions.at IS 'when it was taken, UTC';
COMMENT ON COLUMN kyc.attention_actions.run_by IS 'the database role that took it';
COMMENT ON COLUMN kyc.attention_actions.os_user IS 'the operating-system user that ran kycd attention, when known';
COMMENT ON COLUMN kyc.attention_actions.host IS 'the host it ran on';
COMMENT ON COLUMN kyc.attention_actions.action IS 'retry: the users were given back to the reconciler (flag cleared, checked with P100 at once)';
COMMENT ON COLUMN kyc.attention_actions.reason IS 'why, in on-call''s words (--reason); NULL when none was given';
COMMENT ON COLUMN kyc.attention_actions.users IS 'the external_user_id of every user acted on (empty: none was flagged)';
COMMENT ON COLUMN kyc.attention_actions.flags IS 'what each user was flagged for (attention_reason), in the order of users';
CREATE TRIGGER attention_actions_append_only BEFORE UPDATE OR DELETE ON kyc.attention_actions
    FOR EACH ROW EXECUTE FUNCTION kyc.refuse_change();
CREATE TRIGGER attention_actions_no_truncate BEFORE TRUNCATE ON kyc.attention_actions
    FOR EACH STATEMENT EXECUTE FUNCTION kyc.refuse_change();
GRANT SELECT ON kyc.attention_actions TO kyc_analyst;
