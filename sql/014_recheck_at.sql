-- kycd schema, version 14: each settled user's next re-check is stored,
-- indexed, and claimed by. Until version 13 the reconciler's claim computed
-- who was due from every settled user's columns, reading the whole table
-- once per reconcile_interval with nothing due (1 million users: about
-- 1 s). Now kyc.verifications.recheck_at holds the time, kept by a trigger
-- on every write that can move it (one home for the schedule, whatever
-- statement writes: a webhook, a check, create-kyc, attention, a replay),
-- from the re-check policy below; the claim walks a partial index from its
-- start and stops at the first user not yet due (docs/design.md,
-- "Re-checks"; tests/bench/claim.sh measures it).

-- The policy: kycd's recheck_* settings and P100's two words it reads
-- (src/core/vocab.c: the rejected attemptStatus and the verified
-- verificationStatus), one row. `kycd migrate` sets it from its
-- configuration, and so does the reconciler when it starts (if its role
-- may: kyc.set_recheck_policy). Until it is set, no user is due a re-check.
CREATE TABLE kyc.recheck_policy (
    one                boolean PRIMARY KEY DEFAULT true CHECK (one),
    rejected_attempt   text CHECK (rejected_attempt = ANY (kyc.p100_values('attemptStatus'))),
    verified_status    text CHECK (verified_status = ANY (kyc.p100_values('verificationStatus'))),
    rejected_after_ms  bigint NOT NULL DEFAULT 0 CHECK (rejected_after_ms >= 0),
    rejected_for_ms    bigint NOT NULL DEFAULT 0 CHECK (rejected_for_ms >= 0),
    verified_every_ms  bigint NOT NULL DEFAULT 0 CHECK (verified_every_ms >= 0),
    set_at             timestamptz,
    set_by             text,
    restamp_after      text
);
COMMENT ON TABLE kyc.recheck_policy IS 'the re-check policy kyc.verifications.recheck_at is computed from (one row): kycd''s recheck_* settings, set by kycd migrate and by the reconciler at start';
COMMENT ON COLUMN kyc.recheck_policy.one IS 'always true: the table has one row';
COMMENT ON COLUMN kyc.recheck_policy.rejected_attempt IS 'P100''s attemptStatus of a rejected user (REJECTED_BY_PROVIDER), as kycd''s core says it; NULL until kycd sets the policy';
COMMENT ON COLUMN kyc.recheck_policy.verified_status IS 'P100''s verificationStatus of a verified user (VERIFIED), as kycd''s core says it; NULL until kycd sets the policy';
COMMENT ON COLUMN kyc.recheck_policy.rejected_after_ms IS 'recheck_rejected_after, in milliseconds: the first re-check of a rejected user comes this long after the last word about it';
COMMENT ON COLUMN kyc.recheck_policy.rejected_for_ms IS 'recheck_rejected_for, in milliseconds: no re-check of a rejected user falls due this long after the last word; 0: rejected users are never re-checked';
COMMENT ON COLUMN kyc.recheck_policy.verified_every_ms IS 'recheck_verified_every, in milliseconds: each verified user is re-checked once per interval; 0: never';
COMMENT ON COLUMN kyc.recheck_policy.set_at IS 'when the policy was last changed, UTC; NULL: never set';
COMMENT ON COLUMN kyc.recheck_policy.set_by IS 'the database role that changed it last';
COMMENT ON COLUMN kyc.recheck_policy.restamp_after IS 'while a change of policy is being applied to the users stamped under the old one: the last external_user_id done ('''' before the first); NULL when every user is stamped under this policy';
INSERT INTO kyc.recheck_policy DEFAULT VALUES;
-- Every role that writes kyc.verifications reads the policy (the trigger
-- runs as it): readable by all, so that an existing DML-only serving role
-- keeps working after this migration.
GRANT SELECT ON kyc.recheck_policy TO PUBLIC;

-- When a user is next due a re-check under a policy, or NULL. `at` is the
-- last word about the user (its last state change or webhook). Rejected:
-- rejected_after after it, then each time after twice the time since it
-- (from the last re-check), while that is within rejected_for of it.
-- Verified: the first of its slots (kyc.recheck_slot) after both the last
-- word and the last re-check. Pending users (kyc.is_pending) never. STABLE,
-- not IMMUTABLE: a rejected user whose window has already closed when it
-- is stamped (the migration stamping years of history) gets none, so
-- that the claim's index never holds users it would only skip.
CREATE FUNCTION kyc.recheck_rejected_at(at timestamptz, rechecked_at timestamptz,
                                        after_ms bigint, for_ms bigint)
RETURNS timestamptz LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN for_ms > 0 AND at + make_interval(secs => for_ms / 1000.0) > now()
        AND CASE WHEN rechecked_at IS NULL OR rechecked_at < at
                 THEN at + make_interval(secs => after_ms / 1000.0)
                 ELSE rechecked_at + greatest(make_interval(secs => after_ms / 1000.0),
                                              rechecked_at - at) END
            < at + make_interval(secs => for_ms / 1000.0)
    THEN CASE WHEN rechecked_at IS NULL OR rechecked_at < at
              THEN at + make_interval(secs => after_ms / 1000.0)
              ELSE rechecked_at + greatest(make_interval(secs => after_ms / 1000.0),
                                           rechecked_at - at) END END
$$;
COMMENT ON FUNCTION kyc.recheck_rejected_at(timestamptz, timestamptz, bigint, bigint) IS 'a rejected user''s next re-check: after_ms after the last word (at), then after twice the time since it (from the last re-check), while within for_ms of it; NULL for none. One expression, so that PostgreSQL inlines it';

-- Both are one expression each (no FROM), so that PostgreSQL inlines
-- them into the statements that call them: called per row as functions,
-- stamping cost several times as much.
CREATE FUNCTION kyc.recheck_at(verification_status text, attempt_status text,
                               updated_at timestamptz, last_webhook_at timestamptz,
                               rechecked_at timestamptz, external_user_id text,
                               p kyc.recheck_policy)
RETURNS timestamptz LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN kyc.is_pending(attempt_status) THEN NULL ELSE least(
        CASE WHEN attempt_status = (p).rejected_attempt
             THEN kyc.recheck_rejected_at(greatest(updated_at, last_webhook_at), rechecked_at,
                                          (p).rejected_after_ms, (p).rejected_for_ms) END,
        CASE WHEN verification_status = (p).verified_status AND (p).verified_every_ms > 0
             THEN kyc.recheck_slot(kyc.recheck_phase(external_user_id), (p).verified_every_ms,
                                   greatest(rechecked_at, updated_at, last_webhook_at))
                  + make_interval(secs => (p).verified_every_ms / 1000.0) END) END
$$;
COMMENT ON FUNCTION kyc.recheck_at(text, text, timestamptz, timestamptz, timestamptz, text, kyc.recheck_policy) IS 'when a settled user is next due a re-check under a policy (its state, last change, last webhook, last re-check, id): rejected users at rejected_after after the last word then after twice the time since it, within rejected_for; verified users in their slot once per interval; NULL for none';

ALTER TABLE kyc.verifications ADD COLUMN recheck_at timestamptz;
COMMENT ON COLUMN kyc.verifications.recheck_at IS 'when this settled user is next due a re-check with P100 (kyc.recheck_at under kyc.recheck_policy), kept by a trigger; NULL: none due (pending, re-checks off, or a rejected user past recheck_rejected_for)';

CREATE FUNCTION kyc.stamp_recheck() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    p kyc.recheck_policy;
BEGIN
    SELECT * INTO p FROM kyc.recheck_policy;
    NEW.recheck_at := kyc.recheck_at(NEW.verification_status, NEW.attempt_status,
                                     NEW.updated_at, NEW.last_webhook_at, NEW.rechecked_at,
                                     NEW.external_user_id, p);
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION kyc.stamp_recheck() IS 'trigger: sets kyc.verifications.recheck_at from the row and kyc.recheck_policy on every write that can move it';
CREATE TRIGGER verifications_recheck_at
    BEFORE INSERT OR UPDATE OF verification_status, attempt_status, updated_at, last_webhook_at,
        rechecked_at ON kyc.verifications
    FOR EACH ROW EXECUTE FUNCTION kyc.stamp_recheck();

-- The claim's index: users that may be due, by due time; the claim's
-- WHERE repeats this predicate.
CREATE INDEX verifications_recheck_idx ON kyc.verifications (recheck_at)
    WHERE recheck_at IS NOT NULL AND attention_reason IS NULL AND needs_check_reason IS NULL;

-- Sets the policy and applies it to up to `batch` users stamped under the
-- one before (resumed by the next call, by any kycd: the progress is kept
-- in restamp_after); one call per transaction, so no user stays locked
-- longer than its batch. Runs as the owner: the serving role needs only
-- EXECUTE (docs/operations.md, "Two roles").
CREATE FUNCTION kyc.set_recheck_policy(rejected_attempt pg_catalog.text,
                                       verified_status pg_catalog.text,
                                       rejected_after_ms pg_catalog.int8,
                                       rejected_for_ms pg_catalog.int8,
                                       verified_every_ms pg_catalog.int8,
                                       batch pg_catalog.int4,
                                       OUT changed pg_catalog.bool,
                                       OUT restamped pg_catalog.int8,
                                       OUT done pg_catalog.bool)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p kyc.recheck_policy;
    last_id pg_catalog.text;
    ids pg_catalog.text[];
BEGIN
    SELECT * INTO STRICT p FROM kyc.recheck_policy FOR UPDATE;
    changed := p.rejected_attempt IS DISTINCT FROM set_recheck_policy.rejected_attempt
        OR p.verified_status IS DISTINCT FROM set_recheck_policy.verified_status
        OR p.rejected_after_ms <> set_recheck_policy.rejected_after_ms
        OR p.rejected_for_ms <> set_recheck_policy.rejected_for_ms
        OR p.verified_every_ms <> set_recheck_policy.verified_every_ms;
    IF changed THEN
        UPDATE kyc.recheck_policy r SET rejected_attempt = set_recheck_policy.rejected_attempt,
            verified_status = set_recheck_policy.verified_status,
            rejected_after_ms = set_recheck_policy.rejected_after_ms,
            rejected_for_ms = set_recheck_policy.rejected_for_ms,
            verified_every_ms = set_recheck_policy.verified_every_ms,
            set_at = pg_catalog.clock_timestamp(), set_by = pg_catalog.session_user(),
            restamp_after = ''
        RETURNING * INTO p;
    END IF;
    restamped := 0;
    IF p.restamp_after IS NOT NULL THEN
        -- The batch's keys first, then the rows by them (an index scan per
        -- key): a join with the batch's query hashed the whole table for
        -- every batch.
        SELECT pg_catalog.array_agg(b.external_user_id ORDER BY b.external_user_id) INTO ids
        FROM (SELECT v.external_user_id FROM kyc.verifications v
              WHERE v.external_user_id OPERATOR(pg_catalog.>) p.restamp_after
              ORDER BY v.external_user_id LIMIT batch) b;
        restamped := COALESCE(pg_catalog.cardinality(ids), 0);
        last_id := ids[restamped];
        UPDATE kyc.verifications v
        SET recheck_at = kyc.recheck_at(v.verification_status, v.attempt_status, v.updated_at,
                                        v.last_webhook_at, v.rechecked_at, v.external_user_id, p)
        WHERE v.external_user_id OPERATOR(pg_catalog.=) ANY (ids);
        UPDATE kyc.recheck_policy SET restamp_after = CASE WHEN restamped OPERATOR(pg_catalog.<) batch
            THEN NULL ELSE last_id END;
        done := restamped OPERATOR(pg_catalog.<) batch;
    ELSE
        done := true;
    END IF;
END
$$;
COMMENT ON FUNCTION kyc.set_recheck_policy(text, text, bigint, bigint, bigint, integer) IS 'sets kyc.recheck_policy (changed: it differed) and re-stamps up to batch users'' recheck_at under it (restamped; done: none is left under an older policy); call again until done';
REVOKE ALL ON FUNCTION kyc.set_recheck_policy(text, text, bigint, bigint, bigint, integer) FROM PUBLIC;
