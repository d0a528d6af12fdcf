-- kycd schema, version 18: the analysts' whole-history views at a large
-- partner's scale (tests/bench/analysts.sh, docs/benchmarks.md).
--
-- kyc.status_periods, kyc.attempts, kyc.time_in_status,
-- kyc.rejection_reasons_daily and kyc.status_as_of(at) rebuilt every
-- user's history with window functions before any filter could apply:
-- 9-23 s at 1 M users, even for the last 7 days. kyc.periods keeps what
-- they computed, one row per kyc.status_changes row, maintained by kycd (a
-- trigger on every insert into kyc.status_changes, the one place the
-- webhook path, the reconciler and create-kyc record a change), so the
-- views read rows by index and a range reads only its rows. Analysts
-- maintain nothing. The views keep their columns and meaning (012).
--
-- One definition of a period, two ways to reach it: kyc.derived_periods
-- computes it from the history (for the backfill below and for a user
-- whose change arrived out of time order); the trigger extends it one
-- change at a time. tests/e2e/test_periods.sh checks that they agree.

-- Whether a change begins an attempt: into a pending attempt status from
-- anything not pending, or a settled report after nothing or after a
-- different settled result (the pending reports of that attempt were
-- lost). As kyc.status_periods.begins_attempt defined it in 012.
CREATE FUNCTION kyc.begins_attempt(old_attempt_status text, old_rejection_reason text,
                                   new_attempt_status text, new_rejection_reason text)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN new_attempt_status IS NOT NULL AND kyc.is_pending(new_attempt_status)
                THEN NOT (old_attempt_status IS NOT NULL AND kyc.is_pending(old_attempt_status))
                WHEN kyc.is_settled(new_attempt_status)
                THEN old_attempt_status IS NULL
                     OR (kyc.is_settled(old_attempt_status)
                         AND (old_attempt_status, old_rejection_reason)
                             IS DISTINCT FROM (new_attempt_status, new_rejection_reason))
                ELSE false END
$$;
COMMENT ON FUNCTION kyc.begins_attempt(text, text, text, text) IS 'whether a change (old and new attemptStatus and rejectionReason) begins a verification attempt: into PENDING or VERIFICATION from anything else, or a settled result after none or after a different settled result';
GRANT EXECUTE ON FUNCTION kyc.begins_attempt(text, text, text, text) TO kyc_analyst;

CREATE TABLE kyc.periods (
    change_id bigint PRIMARY KEY,
    external_user_id text NOT NULL,
    attempt bigint,
    begins_attempt boolean NOT NULL,
    ends_attempt boolean NOT NULL,
    verification_status text,
    attempt_status text,
    rejection_reason text,
    source text NOT NULL,
    event_id bigint,
    entered_at timestamptz NOT NULL,
    left_at timestamptz
);
COMMENT ON TABLE kyc.periods IS 'one row per state a user was in (per kyc.status_changes row), with its attempt and when it was left; kept by kycd on every change (trigger status_changes_periods), read through kyc.status_periods and kyc.attempts; rows of changes dropped by kyc.retention go with them';
COMMENT ON COLUMN kyc.periods.change_id IS 'the kyc.status_changes row (id) that entered this state';
COMMENT ON COLUMN kyc.periods.external_user_id IS 'P100''s externalUserId (the partner''s user id)';
COMMENT ON COLUMN kyc.periods.attempt IS 'number of the user''s verification attempt (1, 2, ...); NULL for a state before the first attempt';
COMMENT ON COLUMN kyc.periods.begins_attempt IS 'true when this change began an attempt (kyc.begins_attempt)';
COMMENT ON COLUMN kyc.periods.ends_attempt IS 'true when this change ended its attempt: the first settled attemptStatus (REJECTED_BY_PROVIDER, SUCCESSFUL) in it';
COMMENT ON COLUMN kyc.periods.verification_status IS 'P100''s verificationStatus in this state: NOT_VERIFIED, VERIFIED, EXPIRED (kyc.p100_values(''verificationStatus'')); NULL when none';
COMMENT ON COLUMN kyc.periods.attempt_status IS 'P100''s attemptStatus in this state: PENDING, VERIFICATION, REJECTED_BY_PROVIDER, SUCCESSFUL (kyc.p100_values(''attemptStatus'')); NULL when none';
COMMENT ON COLUMN kyc.periods.rejection_reason IS 'P100''s rejectionReason in this state (the identity provider''s code, free text); NULL unless rejected';
COMMENT ON COLUMN kyc.periods.source IS 'who set this state: webhook, reconciler (P100''s Get KYC Status) or api (kycd create-kyc)';
COMMENT ON COLUMN kyc.periods.event_id IS 'the delivery (kyc.webhook_events.id) that set this state; NULL when the reconciler or the API did';
COMMENT ON COLUMN kyc.periods.entered_at IS 'when the state was recorded (kyc.status_changes.changed_at)';
COMMENT ON COLUMN kyc.periods.left_at IS 'when the next state was recorded (the user''s next change in (changed_at, id) order); NULL while this is the current state';
-- a user's periods in order (the trigger's previous period, one user's views)
CREATE INDEX periods_user_idx ON kyc.periods (external_user_id, entered_at, change_id);
-- periods entered in a range (kyc.status_periods, kyc.time_in_status(from, to))
CREATE INDEX periods_entered_idx ON kyc.periods (entered_at);
-- attempts started in a range (kyc.attempts WHERE started_at ...)
CREATE INDEX periods_begins_idx ON kyc.periods (entered_at) WHERE begins_attempt;
-- attempts ended in a range (kyc.attempts WHERE ended_at ...), and each attempt's end
CREATE INDEX periods_ends_idx ON kyc.periods (entered_at) WHERE ends_attempt;
CREATE INDEX periods_ends_day_idx ON kyc.periods (((entered_at AT TIME ZONE 'UTC')::date)) WHERE ends_attempt;
CREATE INDEX periods_attempt_end_idx ON kyc.periods (external_user_id, attempt) WHERE ends_attempt;
-- the newest corrections first (kyc.reconciler_corrections ORDER BY changed_at DESC)
CREATE INDEX status_changes_reconciler_idx ON kyc.status_changes (changed_at) WHERE source = 'reconciler';

-- The periods as computed from the history: kycd's own definition (012's
-- kyc.status_periods), used to fill kyc.periods and to rebuild one user.
-- A filter on external_user_id reaches the user's index (its windows are
-- per user).
CREATE VIEW kyc.derived_periods AS
SELECT n.id AS change_id, n.external_user_id, nullif(n.attempt, 0) AS attempt, n.begins,
       n.attempt > 0 AND kyc.is_settled(n.new_attempt_status)
           AND row_number() OVER (PARTITION BY n.external_user_id, n.attempt, kyc.is_settled(n.new_attempt_status)
                                  ORDER BY n.changed_at, n.id) = 1 AS ends,
       n.new_verification_status, n.new_attempt_status, n.new_rejection_reason, n.source,
       n.event_id, n.changed_at,
       lead(n.changed_at) OVER (PARTITION BY n.external_user_id ORDER BY n.changed_at, n.id) AS left_at
FROM (
    SELECT c.*, sum(c.begins::int) OVER (PARTITION BY c.external_user_id ORDER BY c.changed_at, c.id) AS attempt
    FROM (SELECT c.*, kyc.begins_attempt(c.old_attempt_status, c.old_rejection_reason,
                                         c.new_attempt_status, c.new_rejection_reason) AS begins
          FROM kyc.status_changes c) c
) n;
COMMENT ON VIEW kyc.derived_periods IS 'kyc.periods as computed from kyc.status_changes (every user''s history, window functions: slow over all users); how kycd fills and repairs kyc.periods; analysts read kyc.status_periods';
COMMENT ON COLUMN kyc.derived_periods.change_id IS 'as kyc.periods.change_id';
COMMENT ON COLUMN kyc.derived_periods.external_user_id IS 'as kyc.periods.external_user_id';
COMMENT ON COLUMN kyc.derived_periods.attempt IS 'as kyc.periods.attempt (a running count of begins)';
COMMENT ON COLUMN kyc.derived_periods.begins IS 'as kyc.periods.begins_attempt';
COMMENT ON COLUMN kyc.derived_periods.ends IS 'as kyc.periods.ends_attempt';
COMMENT ON COLUMN kyc.derived_periods.new_verification_status IS 'as kyc.periods.verification_status';
COMMENT ON COLUMN kyc.derived_periods.new_attempt_status IS 'as kyc.periods.attempt_status';
COMMENT ON COLUMN kyc.derived_periods.new_rejection_reason IS 'as kyc.periods.rejection_reason';
COMMENT ON COLUMN kyc.derived_periods.source IS 'as kyc.periods.source';
COMMENT ON COLUMN kyc.derived_periods.event_id IS 'as kyc.periods.event_id';
COMMENT ON COLUMN kyc.derived_periods.changed_at IS 'as kyc.periods.entered_at';
COMMENT ON COLUMN kyc.derived_periods.left_at IS 'as kyc.periods.left_at';

INSERT INTO kyc.periods SELECT * FROM kyc.derived_periods ORDER BY changed_at, change_id;
GRANT SELECT ON kyc.periods, kyc.derived_periods TO kyc_analyst;

-- Changes are recorded under the user's row lock, each usually later than
-- the last: the new period follows the user's latest one, which it closes.
-- A change recorded out of time order (a delivery replayed from the spool
-- keeps the time it was received) rebuilds that user's periods from the
-- history. A row already there was written by such a rebuild, in the same
-- statement. SECURITY DEFINER: the serving role inserts into
-- kyc.status_changes and needs no grant on kyc.periods.
CREATE FUNCTION kyc.note_period() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    prev record;
    had boolean;
    b boolean;
    a bigint;
BEGIN
    IF EXISTS (SELECT FROM kyc.periods p WHERE p.change_id = NEW.id) THEN
        RETURN NULL;
    END IF;
    SELECT p.change_id, p.attempt, p.entered_at INTO prev FROM kyc.periods p
    WHERE p.external_user_id = NEW.external_user_id
    ORDER BY p.entered_at DESC, p.change_id DESC LIMIT 1;
    had := FOUND;
    IF had AND (prev.entered_at > NEW.changed_at
                  OR (prev.entered_at = NEW.changed_at AND prev.change_id > NEW.id)) THEN
        DELETE FROM kyc.periods p WHERE p.external_user_id = NEW.external_user_id;
        INSERT INTO kyc.periods SELECT * FROM kyc.derived_periods d
        WHERE d.external_user_id = NEW.external_user_id;
        RETURN NULL;
    END IF;
    b := kyc.begins_attempt(NEW.old_attempt_status, NEW.old_rejection_reason,
                            NEW.new_attempt_status, NEW.new_rejection_reason);
    a := CASE WHEN had THEN coalesce(prev.attempt, 0) ELSE 0 END + b::int;
    IF had THEN
        UPDATE kyc.periods p SET left_at = NEW.changed_at WHERE p.change_id = prev.change_id;
    END IF;
    INSERT INTO kyc.periods VALUES (
        NEW.id, NEW.external_user_id, nullif(a, 0), b,
        a > 0 AND kyc.is_settled(NEW.new_attempt_status)
            AND (b OR NOT EXISTS (SELECT FROM kyc.periods e
                                  WHERE e.external_user_id = NEW.external_user_id
                                    AND e.attempt = a AND e.ends_attempt)),
        NEW.new_verification_status, NEW.new_attempt_status, NEW.new_rejection_reason,
        NEW.source, NEW.event_id, NEW.changed_at, NULL);
    RETURN NULL;
END $$;
COMMENT ON FUNCTION kyc.note_period() IS 'trigger of kyc.status_changes: adds the change''s period to kyc.periods and closes the previous one (or rebuilds the user''s periods when the change is out of time order)';
REVOKE EXECUTE ON FUNCTION kyc.note_period() FROM PUBLIC;
CREATE TRIGGER status_changes_periods AFTER INSERT ON kyc.status_changes
    FOR EACH ROW EXECUTE FUNCTION kyc.note_period();

-- kycd erase rewrites a user's id in kyc.status_changes (the one UPDATE
-- the append-only trigger lets through): the periods follow.
CREATE FUNCTION kyc.rename_periods() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE kyc.periods p SET external_user_id = NEW.external_user_id
    WHERE p.change_id = NEW.id AND p.external_user_id = OLD.external_user_id;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION kyc.rename_periods() IS 'trigger of kyc.status_changes: when kycd erase rewrites a change''s external_user_id, rewrites its kyc.periods row too';
REVOKE EXECUTE ON FUNCTION kyc.rename_periods() FROM PUBLIC;
CREATE TRIGGER status_changes_rename_periods AFTER UPDATE OF external_user_id ON kyc.status_changes
    FOR EACH ROW EXECUTE FUNCTION kyc.rename_periods();

-- ------------------------------------------------------------ the views

CREATE OR REPLACE VIEW kyc.status_periods AS
SELECT p.change_id, p.external_user_id, p.attempt,
       p.verification_status, p.attempt_status, p.rejection_reason, p.source,
       p.entered_at, p.left_at,
       coalesce(p.left_at, clock_timestamp()) - p.entered_at AS duration,
       p.left_at IS NULL AS current,
       p.begins_attempt
FROM kyc.periods p;

-- An attempt: its first period (begins_attempt) and, once it ended, its
-- first settled one (ends_attempt). kycd keeps one verificationId per
-- user: shown on the attempt of the latest change create-kyc made, else on
-- the latest attempt.
CREATE OR REPLACE VIEW kyc.attempts AS
SELECT s.external_user_id, s.attempt,
       CASE WHEN v.verification_id IS NOT NULL
             AND s.attempt = coalesce(
                 (SELECT k.attempt FROM kyc.periods k
                  WHERE k.external_user_id = s.external_user_id AND k.source = 'api' AND k.attempt IS NOT NULL
                  ORDER BY k.change_id DESC LIMIT 1),
                 (SELECT max(k.attempt) FROM kyc.periods k WHERE k.external_user_id = s.external_user_id))
            THEN v.verification_id END AS verification_id,
       s.entered_at AS started_at, s.source AS started_by, e.entered_at AS ended_at,
       e.attempt_status AS result,
       e.verification_status,
       e.rejection_reason,
       e.entered_at - s.entered_at AS duration,
       e.change_id IS NULL AS open,
       coalesce(e.attempt_status = 'REJECTED_BY_PROVIDER', false) AS rejected,
       coalesce(e.attempt_status = 'SUCCESSFUL', false) AS successful,
       s.change_id AS start_change_id, e.change_id AS end_change_id
FROM kyc.periods s
JOIN kyc.verifications v ON v.external_user_id = s.external_user_id
LEFT JOIN kyc.periods e ON e.external_user_id = s.external_user_id AND e.attempt = s.attempt AND e.ends_attempt
WHERE s.begins_attempt;

-- Time in each status, for the periods entered in [since, until).
CREATE FUNCTION kyc.time_in_status(since timestamptz, until timestamptz)
RETURNS TABLE (verification_status text, attempt_status text, periods bigint, current bigint,
               median interval, p90 interval, mean interval, longest interval)
LANGUAGE sql STABLE AS $$
    SELECT p.verification_status, p.attempt_status,
           count(*),
           count(*) FILTER (WHERE p.current),
           percentile_cont(0.5) WITHIN GROUP (ORDER BY p.duration) FILTER (WHERE NOT p.current),
           percentile_cont(0.9) WITHIN GROUP (ORDER BY p.duration) FILTER (WHERE NOT p.current),
           avg(p.duration) FILTER (WHERE NOT p.current),
           max(p.duration)
    FROM kyc.status_periods p
    WHERE p.entered_at >= time_in_status.since AND p.entered_at < time_in_status.until
    GROUP BY 1, 2
    ORDER BY 1, 2
$$;
COMMENT ON FUNCTION kyc.time_in_status(timestamptz, timestamptz) IS 'kyc.time_in_status for the periods entered in [since, until): per (verification_status, attempt_status), how often and how long (reads only that range: use it on a large history)';
GRANT EXECUTE ON FUNCTION kyc.time_in_status(timestamptz, timestamptz) TO kyc_analyst;

CREATE OR REPLACE VIEW kyc.time_in_status AS
SELECT * FROM kyc.time_in_status('-infinity', 'infinity');

CREATE OR REPLACE VIEW kyc.rejection_reasons_daily AS
SELECT (p.entered_at AT TIME ZONE 'UTC')::date AS day,
       p.rejection_reason,
       count(*) AS attempts,
       count(DISTINCT p.external_user_id) AS users,
       round(count(*)::numeric / sum(count(*)) OVER (PARTITION BY (p.entered_at AT TIME ZONE 'UTC')::date), 4) AS share
FROM kyc.periods p
WHERE p.ends_attempt AND p.attempt_status = 'REJECTED_BY_PROVIDER'
GROUP BY 1, 2
ORDER BY 1, 3 DESC;

-- Everyone as of an instant: the period each user was in then.
CREATE OR REPLACE FUNCTION kyc.status_as_of(at timestamptz)
RETURNS TABLE (external_user_id text, verification_status text, attempt_status text,
               rejection_reason text, source text, since timestamptz, change_id bigint,
               pending boolean)
LANGUAGE sql STABLE AS $$
    SELECT v.external_user_id, p.verification_status, p.attempt_status,
           p.rejection_reason, p.source, p.entered_at, p.change_id,
           kyc.is_pending(p.attempt_status)
    FROM kyc.verifications v
    LEFT JOIN kyc.periods p ON p.external_user_id = v.external_user_id
        AND p.entered_at <= status_as_of.at AND (p.left_at IS NULL OR p.left_at > status_as_of.at)
    WHERE v.first_seen_at <= status_as_of.at
$$;

-- The newest corrections first read the partial index above; the state a
-- correction replaced is its previous period.
CREATE OR REPLACE VIEW kyc.reconciler_corrections AS
SELECT c.id AS change_id, c.changed_at, c.external_user_id,
       c.old_verification_status, c.old_attempt_status,
       c.new_verification_status, c.new_attempt_status, c.new_rejection_reason,
       s.http_status, s.latency_ms,
       v.last_webhook_at,
       c.reason, s.purpose,
       p.event_id AS corrected_event_id,
       p.source AS corrected_source,
       w.id AS last_event_id,
       w.outcome AS last_event_outcome,
       w.outcome_reason AS last_event_reason
FROM kyc.status_changes c
LEFT JOIN kyc.status_checks s ON s.id = c.check_id
JOIN kyc.verifications v ON v.external_user_id = c.external_user_id
LEFT JOIN LATERAL (
    SELECT b.event_id, b.source FROM kyc.periods b
    WHERE b.external_user_id = c.external_user_id AND (b.entered_at, b.change_id) < (c.changed_at, c.id)
    ORDER BY b.entered_at DESC, b.change_id DESC LIMIT 1
) p ON true
LEFT JOIN LATERAL (
    SELECT e.id, e.outcome, e.outcome_reason FROM kyc.webhook_events e
    WHERE e.external_user_id = c.external_user_id AND e.kind = 'kyc_verification_status'
      AND e.received_at <= s.checked_at
    ORDER BY e.received_at DESC, e.id DESC LIMIT 1
) w ON true
WHERE c.source = 'reconciler';

-- Each KYC webhook received in [since, until) beside P100's next answer,
-- as kyc.webhook_vs_p100 says, read the other way round: each answered
-- check from SINCE on belongs to its user's latest KYC webhook at or before
-- it, and a webhook is compared with the first of its checks (only the
-- reconciler's changes name a check). So the work
-- follows the checks (few) and one pass over the range's webhooks, in the
-- partitions from SINCE on (the view looks each webhook's next one up in
-- every partition).
CREATE FUNCTION kyc.webhook_vs_p100(since timestamptz, until timestamptz)
RETURNS SETOF kyc.webhook_vs_p100 LANGUAGE sql STABLE AS $$
    WITH m AS (
        SELECT DISTINCT ON (w.id) w.id AS event_id, k.id AS check_id, k.checked_at
        FROM kyc.status_checks k
        CROSS JOIN LATERAL (
            SELECT e.id, e.received_at FROM kyc.webhook_events e
            WHERE e.external_user_id = k.external_user_id AND e.kind = 'kyc_verification_status'
              AND e.received_at <= k.checked_at AND e.received_at >= webhook_vs_p100.since
            ORDER BY e.received_at DESC, e.id DESC LIMIT 1
        ) w
        WHERE k.outcome = 'ok' AND k.checked_at >= webhook_vs_p100.since
          AND w.received_at < webhook_vs_p100.until
        ORDER BY w.id, k.checked_at, k.id
    ), x AS (
        SELECT DISTINCT ON (m.check_id) m.check_id, c.id
        FROM m JOIN kyc.status_changes c ON c.check_id = m.check_id AND c.changed_at >= m.checked_at
        WHERE c.source = 'reconciler' AND c.changed_at >= webhook_vs_p100.since
        ORDER BY m.check_id, c.id
    )
    SELECT e.id, e.received_at, e.external_user_id, e.outcome, e.outcome_reason,
           e.body ->> 'verificationStatus', e.body ->> 'attemptStatus', e.body ->> 'rejectionReason',
           k.id, k.checked_at, k.purpose,
           kyc.try_jsonb(k.body) ->> 'verificationStatus',
           kyc.try_jsonb(k.body) ->> 'attemptStatus',
           kyc.try_jsonb(k.body) ->> 'rejectionReason',
           CASE WHEN k.id IS NOT NULL THEN
               (e.body ->> 'verificationStatus', e.body ->> 'attemptStatus')
               IS NOT DISTINCT FROM (kyc.try_jsonb(k.body) ->> 'verificationStatus',
                                     kyc.try_jsonb(k.body) ->> 'attemptStatus') END,
           x.id
    FROM kyc.webhook_events e
    LEFT JOIN m ON m.event_id = e.id
    LEFT JOIN kyc.status_checks k ON k.id = m.check_id AND k.checked_at = m.checked_at
    LEFT JOIN x ON x.check_id = m.check_id
    WHERE e.kind = 'kyc_verification_status'
      AND e.received_at >= webhook_vs_p100.since AND e.received_at < webhook_vs_p100.until
$$;
COMMENT ON FUNCTION kyc.webhook_vs_p100(timestamptz, timestamptz) IS 'kyc.webhook_vs_p100 for the KYC webhooks received in [since, until), read in bulk from the partitions from SINCE on (use it for a range on a large history)';
GRANT EXECUTE ON FUNCTION kyc.webhook_vs_p100(timestamptz, timestamptz) TO kyc_analyst;

-- ------------------------------------------------------------ retention

-- As in 007, and the periods of the changes a dropped partition held go
-- with it.
CREATE OR REPLACE FUNCTION kyc.retention(before timestamptz, dry_run boolean)
RETURNS TABLE (parent text, name text, from_time timestamptz, to_time timestamptz,
               row_count bigint, pointed_by bigint, action text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p record;
BEGIN
    FOR p IN SELECT * FROM kyc.partitions x WHERE x.to_time <= before
             ORDER BY x.from_time, x.parent LOOP
        parent := p.parent; name := p.name; from_time := p.from_time; to_time := p.to_time;
        IF NOT dry_run THEN
            EXECUTE format('LOCK TABLE kyc.%I IN ACCESS EXCLUSIVE MODE', p.name);
        END IF;
        EXECUTE format('SELECT count(*) FROM kyc.%I', p.name) INTO row_count;
        IF p.parent = 'webhook_events' THEN
            EXECUTE format('SELECT (SELECT count(*) FROM kyc.verifications v WHERE v.last_event_id IN (SELECT id FROM kyc.%1$I))'
                           ' + (SELECT count(*) FROM kyc.poa_statuses s WHERE s.last_event_id IN (SELECT id FROM kyc.%1$I))',
                           p.name) INTO pointed_by;
        ELSIF p.parent = 'status_checks' THEN
            EXECUTE format('SELECT count(*) FROM kyc.verifications v WHERE v.last_check_id IN (SELECT id FROM kyc.%I)',
                           p.name) INTO pointed_by;
        ELSE
            pointed_by := 0;
        END IF;
        IF pointed_by > 0 THEN
            action := 'keep';
        ELSIF dry_run THEN
            action := 'would_drop';
        ELSE
            IF p.parent = 'status_changes' THEN
                EXECUTE format('DELETE FROM kyc.periods d WHERE d.change_id IN (SELECT id FROM kyc.%I)', p.name);
            END IF;
            EXECUTE format('DROP TABLE kyc.%I', p.name);
            action := 'dropped';
        END IF;
        RETURN NEXT;
    END LOOP;
END $$;
