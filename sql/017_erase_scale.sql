-- kycd schema, version 17: erasure requests against the append-only
-- history (docs/erasure.md). `kycd erase USER --reason TEXT` replaces a
-- user's externalUserId, everywhere kycd stores it, with a pseudonym the
-- command derives with a key only the partner holds (HMAC-SHA-256, the key
-- from erase_key), in one transaction, and records the action here: who,
-- when, why, the pseudonym and how many rows, never the original id.
--
-- The append-only tables still refuse UPDATE, DELETE and TRUNCATE to every
-- role, with one exception: an UPDATE made by the tables' owner in a
-- transaction that has already recorded an erasure in kyc.erasures (its
-- row's xmin is that transaction), which changes nothing but the user's id
-- (to that erasure's pseudonym) and the copies of it in the raw body and
-- the body's hash. Only kyc.erase_user does that: it runs as the owner
-- (SECURITY DEFINER) and nobody else may INSERT into kyc.erasures. There is
-- no setting a session could flip: a serving role that is not the owner,
-- or the analyst, can neither be the owner nor write the record. (The
-- owner itself can drop any trigger: it is trusted, as before.)

CREATE TABLE kyc.erasures (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    run_by    text NOT NULL DEFAULT session_user,
    os_user   text,
    host      text,
    pseudonym text NOT NULL CHECK (pseudonym ~ '^erased-[0-9a-f]{32}$'),
    reason    text NOT NULL CHECK (reason <> ''),
    rewritten jsonb NOT NULL
);
COMMENT ON TABLE kyc.erasures IS 'every erasure request carried out (kycd erase): who, when, why, the pseudonym that replaced the user''s externalUserId and how many rows of each table were rewritten; never the original id; append-only';
COMMENT ON COLUMN kyc.erasures.id IS 'identity: the erasure';
COMMENT ON COLUMN kyc.erasures.at IS 'when it was carried out, UTC';
COMMENT ON COLUMN kyc.erasures.run_by IS 'the database role that ran it';
COMMENT ON COLUMN kyc.erasures.os_user IS 'the operating-system user that ran kycd erase, when known';
COMMENT ON COLUMN kyc.erasures.host IS 'the host it ran on';
COMMENT ON COLUMN kyc.erasures.pseudonym IS 'erased- and 32 hex digits: HMAC-SHA-256 of the externalUserId under the partner''s erase key, truncated; the same id always gives the same pseudonym, which cannot be reversed without the key';
COMMENT ON COLUMN kyc.erasures.reason IS 'why, in the operator''s words (--reason): the request''s reference, not personal data';
COMMENT ON COLUMN kyc.erasures.rewritten IS 'rows rewritten per table, e.g. {"webhook_events": 4, "status_changes": 3}';
CREATE INDEX erasures_pseudonym_idx ON kyc.erasures (pseudonym);
CREATE TRIGGER erasures_append_only BEFORE UPDATE OR DELETE ON kyc.erasures
    FOR EACH ROW EXECUTE FUNCTION kyc.refuse_change();
CREATE TRIGGER erasures_no_truncate BEFORE TRUNCATE ON kyc.erasures
    FOR EACH STATEMENT EXECUTE FUNCTION kyc.refuse_change();
GRANT SELECT ON kyc.erasures TO kyc_analyst;

-- The append-only refusal, with the erasure's exception (see the top).
-- Checked per row: the caller is the table's owner, this transaction
-- recorded an erasure, and the row changed only in its id columns (which
-- now hold that erasure's pseudonym) and its body and body hash.
CREATE OR REPLACE FUNCTION kyc.refuse_change() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    pseudo pg_catalog.text;
    kept   pg_catalog.text[] := ARRAY['external_user_id', 'users', 'body', 'body_sha256'];
BEGIN
    IF TG_OP = 'UPDATE' AND TG_LEVEL = 'ROW' AND TG_TABLE_NAME <> 'erasures'
       AND (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID)
           = (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = current_user) THEN
        SELECT e.pseudonym INTO pseudo FROM kyc.erasures e
        WHERE e.xmin = pg_catalog.pg_current_xact_id()::pg_catalog.xid
        ORDER BY e.id DESC LIMIT 1;
        IF pseudo IS NOT NULL
           AND (pg_catalog.to_jsonb(NEW) - kept) = (pg_catalog.to_jsonb(OLD) - kept)
           AND (pg_catalog.to_jsonb(NEW) ->> 'external_user_id' = pseudo
                OR (pg_catalog.to_jsonb(NEW) -> 'users') ? pseudo) THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'kyc.% is append-only',
        coalesce((SELECT p.relname FROM pg_catalog.pg_inherits i
                  JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
                  WHERE i.inhrelid = TG_RELID), TG_TABLE_NAME)
        USING ERRCODE = 'insufficient_privilege';
END $$;
COMMENT ON FUNCTION kyc.refuse_change() IS 'trigger of the append-only tables: refuses UPDATE, DELETE and TRUNCATE, except the pseudonymisation kyc.erase_user makes';

-- Rewrites the rows of the one-row-per-user table TAB (verifications,
-- poa_statuses) for USER_ID under PSEUDO: the row is copied under the
-- pseudonym (over the one an earlier erasure left, when the id came back
-- since: the newer state wins), the history is moved by the caller, then
-- kyc.erase_user deletes the original. Returns the rows copied (0 or 1).
CREATE FUNCTION kyc.erase_copy_row(tab pg_catalog.text, user_id pg_catalog.text, pseudo pg_catalog.text)
RETURNS pg_catalog.int8 LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cols pg_catalog.text;
    n    pg_catalog.int8;
BEGIN
    SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum) INTO cols
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = pg_catalog.format('kyc.%I', tab)::pg_catalog.regclass
      AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
      AND a.attname <> 'external_user_id';
    EXECUTE pg_catalog.format(
        'INSERT INTO kyc.%1$I (external_user_id, %2$s) SELECT $2, %2$s FROM kyc.%1$I '
        'WHERE external_user_id = $1 ON CONFLICT (external_user_id) DO UPDATE SET (%2$s) = '
        '(SELECT %2$s FROM kyc.%1$I WHERE external_user_id = $1)', tab, cols)
        USING user_id, pseudo;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
COMMENT ON FUNCTION kyc.erase_copy_row(text, text, text) IS 'part of kyc.erase_user: copies a user''s row of verifications or poa_statuses under the pseudonym (over an earlier one)';
REVOKE EXECUTE ON FUNCTION kyc.erase_copy_row(text, text, text) FROM PUBLIC;

-- bytes with every occurrence of needle replaced by repl (bytea has no
-- replace()).
CREATE FUNCTION kyc.bytea_replace(bytes pg_catalog.bytea, needle pg_catalog.bytea, repl pg_catalog.bytea)
RETURNS pg_catalog.bytea LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    done pg_catalog.bytea := ''::pg_catalog.bytea;
    rest pg_catalog.bytea := bytes;
    at   pg_catalog.int4;
BEGIN
    IF pg_catalog.length(needle) = 0 THEN
        RETURN bytes;
    END IF;
    LOOP
        at := pg_catalog.position(rest, needle);
        EXIT WHEN at = 0;
        done := done || pg_catalog.substr(rest, 1, at - 1) || repl;
        rest := pg_catalog.substr(rest, at + pg_catalog.length(needle));
    END LOOP;
    RETURN done || rest;
END $$;
COMMENT ON FUNCTION kyc.bytea_replace(bytea, bytea, bytea) IS 'bytes with every occurrence of needle replaced by repl (for kyc.erase_user on raw quarantined bodies)';

-- kycd erase (docs/erasure.md). Must run in a REPEATABLE READ (or
-- SERIALIZABLE) transaction: every statement then sees the same snapshot,
-- so a delivery for the user committed meanwhile is wholly after the
-- erasure (its rows keep the real id, as a later webhook's would), and one
-- that changed the user's current row makes this fail with 40001 (kycd
-- erase retries). The user's current row is locked first, as ingestion
-- locks it. Returns one row: outcome erased, already_erased (nothing holds
-- the id and an erasure recorded its pseudonym) or unknown; the erasure's
-- id and time (NULL for unknown) and the rows rewritten per table.
CREATE FUNCTION kyc.erase_user(user_id pg_catalog.text, pseudo pg_catalog.text, why pg_catalog.text,
                               os_user pg_catalog.text, host pg_catalog.text)
RETURNS TABLE (outcome pg_catalog.text, erasure_id pg_catalog.int8, erased_at pg_catalog.timestamptz,
               rewritten pg_catalog.jsonb)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    qid   pg_catalog.text := pg_catalog.to_jsonb(user_id)::pg_catalog.text;
    qp    pg_catalog.text := pg_catalog.to_jsonb(pseudo)::pg_catalog.text;
    n     pg_catalog.jsonb;
    r     record;
BEGIN
    IF pg_catalog.current_setting('transaction_isolation') NOT IN ('repeatable read', 'serializable') THEN
        RAISE EXCEPTION 'kyc.erase_user needs a REPEATABLE READ transaction'
            USING ERRCODE = 'invalid_transaction_state';
    END IF;
    IF user_id IS NULL OR user_id = '' OR why IS NULL OR pg_catalog.btrim(why) = ''
       OR pseudo IS NULL OR pseudo !~ '^erased-[0-9a-f]{32}$' OR pseudo = user_id THEN
        RAISE EXCEPTION 'kyc.erase_user: a user, a reason and a pseudonym (erased-<32 hex>) are needed'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM 1 FROM kyc.verifications v WHERE v.external_user_id = user_id FOR UPDATE;

    SELECT pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
        'verifications', (SELECT pg_catalog.count(*) FROM kyc.verifications x WHERE x.external_user_id = user_id),
        'poa_statuses', (SELECT pg_catalog.count(*) FROM kyc.poa_statuses x WHERE x.external_user_id = user_id),
        'webhook_events', (SELECT pg_catalog.count(*) FROM kyc.webhook_events x WHERE x.external_user_id = user_id),
        'status_changes', (SELECT pg_catalog.count(*) FROM kyc.status_changes x WHERE x.external_user_id = user_id),
        'status_checks', (SELECT pg_catalog.count(*) FROM kyc.status_checks x WHERE x.external_user_id = user_id),
        'quarantine', (SELECT pg_catalog.count(*) FROM kyc.quarantine x WHERE x.external_user_id = user_id),
        'replay_runs', (SELECT pg_catalog.count(*) FROM kyc.replay_runs x WHERE x.external_user_id = user_id),
        'attention_actions', (SELECT pg_catalog.count(*) FROM kyc.attention_actions x WHERE user_id = ANY (x.users))))
    INTO n;
    IF NOT EXISTS (SELECT FROM pg_catalog.jsonb_each_text(n) c WHERE c.value <> '0') THEN
        RETURN QUERY SELECT CASE WHEN e.id IS NULL THEN 'unknown' ELSE 'already_erased' END,
                            e.id, e.at, '{}'::pg_catalog.jsonb
                     FROM (SELECT NULL) one
                     LEFT JOIN LATERAL (SELECT x.id, x.at FROM kyc.erasures x WHERE x.pseudonym = pseudo
                                        ORDER BY x.id DESC LIMIT 1) e ON true;
        RETURN;
    END IF;

    -- The record first: the triggers let this transaction's rewrite through
    -- only once it exists.
    INSERT INTO kyc.erasures (os_user, host, pseudonym, reason, rewritten)
    VALUES (os_user, host, pseudo, why, n)
    RETURNING kyc.erasures.id, kyc.erasures.at INTO r;

    PERFORM kyc.erase_copy_row('verifications', user_id, pseudo);
    PERFORM kyc.erase_copy_row('poa_statuses', user_id, pseudo);
    -- P100 does not know the pseudonym: the reconciler must never ask about
    -- it (both its claims skip a user whose next check is not due), and its
    -- re-check stamp goes, so that the re-check index never holds it; nor
    -- does on-call's list (kycd attention retry would give it back to the
    -- reconciler), nor a held report's debt.
    UPDATE kyc.verifications x SET next_check_at = 'infinity', lease_owner = NULL, lease_until = NULL,
        recheck_at = NULL, attention_reason = NULL, needs_check_reason = NULL
    WHERE x.external_user_id = pseudo;
    UPDATE kyc.webhook_events x
    SET external_user_id = pseudo,
        body = pg_catalog.replace(x.body::pg_catalog.text, qid, qp)::pg_catalog.jsonb,
        body_sha256 = pg_catalog.sha256(pg_catalog.convert_to(
            pg_catalog.replace(x.body::pg_catalog.text, qid, qp)::pg_catalog.jsonb::pg_catalog.text, 'UTF8'))
    WHERE x.external_user_id = user_id;
    UPDATE kyc.status_changes x SET external_user_id = pseudo WHERE x.external_user_id = user_id;
    UPDATE kyc.status_checks x
    SET external_user_id = pseudo, body = pg_catalog.replace(x.body, qid, qp)
    WHERE x.external_user_id = user_id;
    UPDATE kyc.quarantine x
    SET external_user_id = pseudo,
        body = kyc.bytea_replace(x.body, pg_catalog.convert_to(user_id, 'UTF8'), pg_catalog.convert_to(pseudo, 'UTF8')),
        body_sha256 = pg_catalog.sha256(kyc.bytea_replace(x.body, pg_catalog.convert_to(user_id, 'UTF8'),
                                                          pg_catalog.convert_to(pseudo, 'UTF8')))
    WHERE x.external_user_id = user_id;
    UPDATE kyc.replay_runs x SET external_user_id = pseudo WHERE x.external_user_id = user_id;
    UPDATE kyc.attention_actions x SET users = pg_catalog.array_replace(x.users, user_id, pseudo)
    WHERE user_id = ANY (x.users);
    DELETE FROM kyc.poa_statuses x WHERE x.external_user_id = user_id;
    DELETE FROM kyc.verifications x WHERE x.external_user_id = user_id;
    RETURN QUERY SELECT 'erased'::pg_catalog.text, r.id, r.at, n;
END $$;
COMMENT ON FUNCTION kyc.erase_user(text, text, text, text, text) IS 'kycd erase: replaces a user''s externalUserId everywhere kycd stores it with the pseudonym given, in this (REPEATABLE READ) transaction, and records it in kyc.erasures; outcome erased, already_erased or unknown';
REVOKE EXECUTE ON FUNCTION kyc.erase_user(text, text, text, text, text) FROM PUBLIC;

-- ------------------------------------------ the analysts' queries at scale
-- tests/bench/analysts.sh times every view and example query on a large
-- partner's history (docs/benchmarks.md, "Analysts' queries"). Three views
-- looked up each user's history through every monthly partition (a
-- LATERAL per user): kyc.time_to_verified and kyc.daily_funnel (the first
-- change into VERIFIED) and kyc.pending (the start of the pending attempt).
-- Both facts are now kept on the user's row, by kycd: the trigger below
-- runs on every insert into kyc.status_changes (the one place the webhook
-- path, the reconciler and create-kyc all write a change), so analysts
-- maintain nothing. The views keep their columns and meaning.

ALTER TABLE kyc.verifications
    ADD COLUMN first_verified_at timestamptz,
    ADD COLUMN attempt_since timestamptz;
COMMENT ON COLUMN kyc.verifications.first_verified_at IS 'when the user first reached VERIFIED (the first kyc.status_changes row into it); NULL when never; kept by kycd (trigger status_changes_summary)';
COMMENT ON COLUMN kyc.verifications.attempt_since IS 'start of the pending attempt: the first change into PENDING or VERIFICATION after the last settled result; NULL when the latest change settled or none was pending; kept by kycd (trigger status_changes_summary)';

UPDATE kyc.verifications v SET first_verified_at = f.at
FROM (SELECT c.external_user_id, min(c.changed_at) AS at FROM kyc.status_changes c
      WHERE c.new_verification_status = 'VERIFIED' GROUP BY 1) f
WHERE f.external_user_id = v.external_user_id;
UPDATE kyc.verifications v SET attempt_since = a.since
FROM (SELECT c.external_user_id, min(c.changed_at) AS since
      FROM kyc.status_changes c
      LEFT JOIN (SELECT d.external_user_id, max(d.changed_at) AS settled FROM kyc.status_changes d
                 WHERE kyc.is_settled(d.new_attempt_status) GROUP BY 1) s USING (external_user_id)
      WHERE c.new_attempt_status IS NOT NULL AND kyc.is_pending(c.new_attempt_status)
        AND c.changed_at > coalesce(s.settled, '-infinity')
      GROUP BY 1) a
WHERE a.external_user_id = v.external_user_id;

-- Changes are recorded in time order per user (each under the user's row
-- lock), so the first VERIFIED and the start of the attempt follow from
-- the new change alone. Each UPDATE touches the row only when it changes.
CREATE FUNCTION kyc.note_change() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.new_verification_status = 'VERIFIED' THEN
        UPDATE kyc.verifications v SET first_verified_at = NEW.changed_at
        WHERE v.external_user_id = NEW.external_user_id
          AND (v.first_verified_at IS NULL OR v.first_verified_at > NEW.changed_at);
    END IF;
    IF kyc.is_settled(NEW.new_attempt_status) THEN
        UPDATE kyc.verifications v SET attempt_since = NULL
        WHERE v.external_user_id = NEW.external_user_id AND v.attempt_since IS NOT NULL;
    ELSIF NEW.new_attempt_status IS NOT NULL AND kyc.is_pending(NEW.new_attempt_status) THEN
        UPDATE kyc.verifications v SET attempt_since = NEW.changed_at
        WHERE v.external_user_id = NEW.external_user_id AND v.attempt_since IS NULL;
    END IF;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION kyc.note_change() IS 'trigger of kyc.status_changes: keeps kyc.verifications.first_verified_at and attempt_since up to date';
CREATE TRIGGER status_changes_summary AFTER INSERT ON kyc.status_changes
    FOR EACH ROW EXECUTE FUNCTION kyc.note_change();

CREATE OR REPLACE VIEW kyc.time_to_verified AS
SELECT v.external_user_id, v.first_seen_at, v.first_verified_at AS verified_at,
       v.first_verified_at - v.first_seen_at AS time_to_verified
FROM kyc.verifications v
WHERE v.first_verified_at IS NOT NULL;

CREATE OR REPLACE VIEW kyc.pending AS
SELECT v.external_user_id, v.verification_status, v.attempt_status, v.source, v.verification_id,
       coalesce(v.attempt_since, v.first_seen_at) AS pending_since,
       clock_timestamp() - coalesce(v.attempt_since, v.first_seen_at) AS pending_for,
       v.needs_check_reason
FROM kyc.verifications v
WHERE kyc.is_pending(v.attempt_status);
CREATE INDEX verifications_pending_idx ON kyc.verifications ((coalesce(attempt_since, first_seen_at)))
    WHERE kyc.is_pending(attempt_status);

CREATE OR REPLACE VIEW kyc.daily_funnel AS
WITH u AS (
    SELECT (v.first_seen_at AT TIME ZONE 'UTC')::date AS day,
           v.verification_status, v.attempt_status,
           v.verification_status IN ('VERIFIED', 'EXPIRED') OR v.first_verified_at IS NOT NULL AS ever_verified
    FROM kyc.verifications v
), f AS (
    SELECT day,
           count(*) AS started,
           count(*) FILTER (WHERE ever_verified) AS verified,
           count(*) FILTER (WHERE NOT ever_verified AND attempt_status = 'REJECTED_BY_PROVIDER') AS rejected,
           count(*) FILTER (WHERE ever_verified AND verification_status = 'EXPIRED') AS expired,
           count(*) FILTER (WHERE NOT ever_verified AND kyc.is_pending(attempt_status)) AS pending
    FROM u GROUP BY day
)
SELECT day, started, verified, rejected, expired, pending,
       started - verified - rejected - pending AS other,
       round(verified::numeric / started, 4) AS verified_ratio
FROM f
ORDER BY day;
-- A range of cohorts (WHERE day > ...) reads only their users.
CREATE INDEX verifications_first_seen_day_idx ON kyc.verifications (((first_seen_at AT TIME ZONE 'UTC')::date));
-- Users first seen in a range (kyc.time_to_verified WHERE first_seen_at > ...).
CREATE INDEX verifications_first_seen_idx ON kyc.verifications (first_seen_at);

-- kyc.try_jsonb catches errors, which needs a subtransaction, which PostgreSQL
-- refuses inside a parallel plan: declared PARALLEL SAFE (012), it broke
-- kyc.webhook_vs_p100 as soon as a scan was big enough to go parallel.
ALTER FUNCTION kyc.try_jsonb(text) PARALLEL UNSAFE;

-- kyc.attempts read its CTE a twice, so PostgreSQL computed it for every
-- user (a CTE over kyc.status_periods, whose duration calls
-- clock_timestamp(), is never inlined) even for one user's attempts (5 s
-- at 100,000 users). The latest attempt made by create-kyc now comes from
-- window functions over the same rows, with no CTE: a filter on
-- external_user_id reaches kyc.status_periods, whose window is per user.
-- Same columns, same rows as in 012.
CREATE OR REPLACE VIEW kyc.attempts AS
SELECT a.external_user_id, a.attempt,
       CASE WHEN a.kept_attempt = a.attempt THEN v.verification_id END AS verification_id,
       a.started_at, a.started_by, a.ended_at,
       e.new_attempt_status AS result,
       e.new_verification_status AS verification_status,
       e.new_rejection_reason AS rejection_reason,
       a.ended_at - a.started_at AS duration,
       a.ended_at IS NULL AS open,
       coalesce(e.new_attempt_status = 'REJECTED_BY_PROVIDER', false) AS rejected,
       coalesce(e.new_attempt_status = 'SUCCESSFUL', false) AS successful,
       a.start_change_id, a.end_change_id
FROM (
    -- the attempt kycd's one stored verificationId belongs to: the one of
    -- the latest change made by create-kyc, else the latest attempt
    SELECT g.*,
           CASE WHEN bool_or(g.via_api) OVER u
                THEN first_value(g.attempt) OVER (u ORDER BY g.last_api_change_id DESC NULLS LAST)
                ELSE max(g.attempt) OVER u END AS kept_attempt
    FROM (
        SELECT p.external_user_id, p.attempt,
               min(p.entered_at) AS started_at,
               min(p.entered_at) FILTER (WHERE kyc.is_settled(p.attempt_status)) AS ended_at,
               (array_agg(p.change_id ORDER BY p.entered_at, p.change_id)
                    FILTER (WHERE kyc.is_settled(p.attempt_status)))[1] AS end_change_id,
               (array_agg(p.change_id ORDER BY p.entered_at, p.change_id))[1] AS start_change_id,
               (array_agg(p.source ORDER BY p.entered_at, p.change_id))[1] AS started_by,
               bool_or(p.source = 'api') AS via_api,
               max(p.change_id) FILTER (WHERE p.source = 'api') AS last_api_change_id
        FROM kyc.status_periods p
        WHERE p.attempt IS NOT NULL
        GROUP BY p.external_user_id, p.attempt
    ) g
    WINDOW u AS (PARTITION BY g.external_user_id)
) a
JOIN kyc.verifications v USING (external_user_id)
LEFT JOIN kyc.status_changes e ON e.id = a.end_change_id AND e.external_user_id = a.external_user_id;
