-- kycd schema, version 12: a schema that explains itself to analysts.
--
-- * Every column of every table and view in kyc has a comment (what it
--   holds, its unit, its values where they are a set); partitions inherit
--   nothing, but psql's \d+ and the catalogs of the parent are what
--   analysts read (tests/e2e/test_schema_comments.sh checks parents and
--   views).
-- * An attempt is defined once (kyc.status_periods, kyc.attempts): it
--   starts with the first change into a pending attempt status (PENDING or
--   VERIFICATION, kyc.is_pending) after the last settled one, or with a
--   settled report that follows nothing or another settled result; it ends
--   at the first change into a settled attempt status.
-- * kyc.pending.pending_since is the start of the pending attempt (it was
--   updated_at: a move PENDING -> VERIFICATION reset the clock).
-- * kyc.daily_funnel is a cohort funnel: users by the UTC day kycd first
--   saw them, and what became of them (its ratio cannot pass 100%).
-- * First-day questions: kyc.attempts, kyc.status_periods,
--   kyc.time_in_status, kyc.status_as_of(at) and (user, at),
--   kyc.webhook_vs_p100, kyc.reconciler_corrections (with the event
--   corrected), kyc.rejection_reasons_daily.
-- P100's values are named here only where one value is meant; sets come
-- from kyc.p100_values() and kyc.is_pending().

-- ---------------------------------------------------------------- helpers

-- A text that may or may not be JSON (kyc.status_checks.body: the raw
-- answer, possibly cut at 64 KiB or not JSON at all): NULL instead of an
-- error, so that one odd answer cannot break an analyst's query.
CREATE FUNCTION kyc.try_jsonb(t text)
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN t::pg_catalog.jsonb;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;
COMMENT ON FUNCTION kyc.try_jsonb(text) IS 'the text as jsonb, or NULL when it is not JSON (for kyc.status_checks.body)';

-- Whether an attempt status is settled: REJECTED_BY_PROVIDER or SUCCESSFUL
-- (every documented value that is not pending); NULL (nothing settled yet)
-- is not.
CREATE FUNCTION kyc.is_settled(attempt_status text)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(NOT kyc.is_pending(attempt_status), false)
$$;
COMMENT ON FUNCTION kyc.is_settled(text) IS 'whether an attempt status ends an attempt: a documented attemptStatus that is not pending (REJECTED_BY_PROVIDER, SUCCESSFUL); false for NULL';

-- --------------------------------------------------- periods and attempts

-- One row per stored state of a user: from a change to the next one.
CREATE VIEW kyc.status_periods AS
WITH c AS (
    SELECT c.*,
           -- a change begins an attempt: into pending from anything not
           -- pending, or a settled report after nothing or after another
           -- settled result (the pending reports of that attempt were lost)
           CASE WHEN c.new_attempt_status IS NOT NULL AND kyc.is_pending(c.new_attempt_status)
                THEN NOT (c.old_attempt_status IS NOT NULL AND kyc.is_pending(c.old_attempt_status))
                WHEN kyc.is_settled(c.new_attempt_status)
                THEN c.old_attempt_status IS NULL
                     OR (kyc.is_settled(c.old_attempt_status)
                         AND (c.old_attempt_status, c.old_rejection_reason)
                             IS DISTINCT FROM (c.new_attempt_status, c.new_rejection_reason))
                ELSE false END AS begins
    FROM kyc.status_changes c
), n AS (
    SELECT c.*,
           sum(c.begins::int) OVER w AS attempt,
           lead(c.changed_at) OVER w AS left_at
    FROM c
    WINDOW w AS (PARTITION BY c.external_user_id ORDER BY c.changed_at, c.id)
)
SELECT n.id AS change_id, n.external_user_id,
       nullif(n.attempt, 0) AS attempt,
       n.new_verification_status AS verification_status,
       n.new_attempt_status AS attempt_status,
       n.new_rejection_reason AS rejection_reason,
       n.source,
       n.changed_at AS entered_at,
       n.left_at,
       coalesce(n.left_at, clock_timestamp()) - n.changed_at AS duration,
       n.left_at IS NULL AS current,
       n.begins AS begins_attempt
FROM n;
COMMENT ON VIEW kyc.status_periods IS 'one row per state a user was in (one per kyc.status_changes row): when it was entered and left, how long it lasted, and which attempt it belongs to';
COMMENT ON COLUMN kyc.status_periods.change_id IS 'the kyc.status_changes row (id) that entered this state';
COMMENT ON COLUMN kyc.status_periods.external_user_id IS 'P100''s externalUserId (the partner''s user id)';
COMMENT ON COLUMN kyc.status_periods.attempt IS 'number of the user''s verification attempt (1, 2, ...; as in kyc.attempts); NULL for a state before the first attempt';
COMMENT ON COLUMN kyc.status_periods.verification_status IS 'P100''s verificationStatus in this state: NOT_VERIFIED, VERIFIED, EXPIRED (kyc.p100_values(''verificationStatus'')); NULL when P100''s answer had none';
COMMENT ON COLUMN kyc.status_periods.attempt_status IS 'P100''s attemptStatus in this state: PENDING, VERIFICATION, REJECTED_BY_PROVIDER, SUCCESSFUL (kyc.p100_values(''attemptStatus'')); NULL when P100''s answer had none';
COMMENT ON COLUMN kyc.status_periods.rejection_reason IS 'P100''s rejectionReason in this state (the identity provider''s code, free text); NULL unless rejected';
COMMENT ON COLUMN kyc.status_periods.source IS 'who set this state: webhook, reconciler (P100''s Get KYC Status) or api (kycd create-kyc)';
COMMENT ON COLUMN kyc.status_periods.entered_at IS 'when the state was recorded (kyc.status_changes.changed_at; for a webhook, when kycd received it)';
COMMENT ON COLUMN kyc.status_periods.left_at IS 'when the next state was recorded; NULL while this is the current state';
COMMENT ON COLUMN kyc.status_periods.duration IS 'time spent in this state (interval): left_at - entered_at, or until now for the current state';
COMMENT ON COLUMN kyc.status_periods.current IS 'true for the user''s current state (not left yet)';
COMMENT ON COLUMN kyc.status_periods.begins_attempt IS 'true when this change began a new attempt: the first change into a pending attempt status (PENDING, VERIFICATION) after a settled one (or none), or a settled result after none or after a different settled result';

-- One row per verification attempt.
CREATE VIEW kyc.attempts AS
WITH a AS (
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
), k AS (
    -- the attempt kycd's one stored verificationId belongs to: the one of
    -- the latest change made by create-kyc, else the latest attempt
    SELECT a.external_user_id,
           coalesce((array_agg(a.attempt ORDER BY a.last_api_change_id DESC)
                         FILTER (WHERE a.via_api))[1], max(a.attempt)) AS attempt
    FROM a GROUP BY a.external_user_id
)
SELECT a.external_user_id, a.attempt,
       CASE WHEN k.attempt = a.attempt THEN v.verification_id END AS verification_id,
       a.started_at, a.started_by, a.ended_at,
       e.new_attempt_status AS result,
       e.new_verification_status AS verification_status,
       e.new_rejection_reason AS rejection_reason,
       a.ended_at - a.started_at AS duration,
       a.ended_at IS NULL AS open,
       coalesce(e.new_attempt_status = 'REJECTED_BY_PROVIDER', false) AS rejected,
       coalesce(e.new_attempt_status = 'SUCCESSFUL', false) AS successful,
       a.start_change_id, a.end_change_id
FROM a
JOIN k USING (external_user_id)
JOIN kyc.verifications v USING (external_user_id)
LEFT JOIN kyc.status_changes e ON e.id = a.end_change_id AND e.external_user_id = a.external_user_id;
COMMENT ON VIEW kyc.attempts IS 'one row per verification attempt: from the first change into a pending attempt status after the last settled one (or a settled report with no pending one before it) to the first settled result; open attempts have no end';
COMMENT ON COLUMN kyc.attempts.external_user_id IS 'P100''s externalUserId (the partner''s user id)';
COMMENT ON COLUMN kyc.attempts.attempt IS 'the user''s attempt number: 1 for the first, counting up';
COMMENT ON COLUMN kyc.attempts.verification_id IS 'P100''s verificationId, where known: kycd keeps one per user (the latest kycd create-kyc''s; webhooks carry none), shown on the attempt that create-kyc started (else the latest); NULL on the others';
COMMENT ON COLUMN kyc.attempts.started_at IS 'when the attempt started: the first change into PENDING or VERIFICATION after the last settled result (for a settled report with no pending one before it, that report''s time)';
COMMENT ON COLUMN kyc.attempts.started_by IS 'who recorded the start: webhook, reconciler or api (kycd create-kyc)';
COMMENT ON COLUMN kyc.attempts.ended_at IS 'when the first settled result (REJECTED_BY_PROVIDER or SUCCESSFUL) was recorded; NULL while the attempt is open';
COMMENT ON COLUMN kyc.attempts.result IS 'P100''s attemptStatus at the end: REJECTED_BY_PROVIDER or SUCCESSFUL; NULL while open';
COMMENT ON COLUMN kyc.attempts.verification_status IS 'P100''s verificationStatus at the end: NOT_VERIFIED, VERIFIED, EXPIRED; NULL while open';
COMMENT ON COLUMN kyc.attempts.rejection_reason IS 'P100''s rejectionReason at the end (the identity provider''s code, free text); NULL unless rejected';
COMMENT ON COLUMN kyc.attempts.duration IS 'ended_at - started_at (interval); NULL while open';
COMMENT ON COLUMN kyc.attempts.open IS 'true while the attempt has no settled result';
COMMENT ON COLUMN kyc.attempts.rejected IS 'true when the attempt ended REJECTED_BY_PROVIDER';
COMMENT ON COLUMN kyc.attempts.successful IS 'true when the attempt ended SUCCESSFUL';
COMMENT ON COLUMN kyc.attempts.start_change_id IS 'the kyc.status_changes row (id) that started the attempt';
COMMENT ON COLUMN kyc.attempts.end_change_id IS 'the kyc.status_changes row (id) that ended it; NULL while open';

-- Time in each status, over all users.
CREATE VIEW kyc.time_in_status AS
SELECT p.verification_status, p.attempt_status,
       count(*) AS periods,
       count(*) FILTER (WHERE p.current) AS current,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY p.duration) FILTER (WHERE NOT p.current) AS median,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY p.duration) FILTER (WHERE NOT p.current) AS p90,
       avg(p.duration) FILTER (WHERE NOT p.current) AS mean,
       max(p.duration) AS longest
FROM kyc.status_periods p
GROUP BY 1, 2
ORDER BY 1, 2;
COMMENT ON VIEW kyc.time_in_status IS 'per (verification_status, attempt_status): how often users were in it and how long they stayed (left periods only; the current ones are counted apart); filter kyc.status_periods for a time range or a user';
COMMENT ON COLUMN kyc.time_in_status.verification_status IS 'P100''s verificationStatus: NOT_VERIFIED, VERIFIED, EXPIRED (NULL: none)';
COMMENT ON COLUMN kyc.time_in_status.attempt_status IS 'P100''s attemptStatus: PENDING, VERIFICATION, REJECTED_BY_PROVIDER, SUCCESSFUL (NULL: none)';
COMMENT ON COLUMN kyc.time_in_status.periods IS 'number of times a user entered this state (count of kyc.status_periods rows)';
COMMENT ON COLUMN kyc.time_in_status.current IS 'number of users in this state now (periods not left yet; not in the statistics)';
COMMENT ON COLUMN kyc.time_in_status.median IS 'median time in the state (interval), over the periods that ended';
COMMENT ON COLUMN kyc.time_in_status.p90 IS '90th percentile of the time in the state (interval), over the periods that ended';
COMMENT ON COLUMN kyc.time_in_status.mean IS 'mean time in the state (interval), over the periods that ended';
COMMENT ON COLUMN kyc.time_in_status.longest IS 'longest time in the state (interval), the current periods included (counted until now)';

-- ------------------------------------------------------ pending, funnel

-- pending_since: the start of the pending attempt, not updated_at.
CREATE OR REPLACE VIEW kyc.pending AS
SELECT s.external_user_id, s.verification_status, s.attempt_status, s.source, s.verification_id,
       coalesce(a.since, s.first_seen_at) AS pending_since,
       clock_timestamp() - coalesce(a.since, s.first_seen_at) AS pending_for,
       s.needs_check_reason
FROM kyc.current_status s
LEFT JOIN LATERAL (
    SELECT min(c.changed_at) AS since
    FROM kyc.status_changes c
    WHERE c.external_user_id = s.external_user_id
      AND c.new_attempt_status IS NOT NULL AND kyc.is_pending(c.new_attempt_status)
      AND c.changed_at > coalesce((SELECT max(d.changed_at) FROM kyc.status_changes d
                                   WHERE d.external_user_id = s.external_user_id
                                     AND kyc.is_settled(d.new_attempt_status)), '-infinity')
) a ON true
WHERE s.pending;
COMMENT ON VIEW kyc.pending IS 'users whose verification is pending, since when (the start of the pending attempt, not the last change) and for how long; filter on pending_for';
COMMENT ON COLUMN kyc.pending.external_user_id IS 'P100''s externalUserId (the partner''s user id)';
COMMENT ON COLUMN kyc.pending.verification_status IS 'P100''s verificationStatus now: NOT_VERIFIED, VERIFIED, EXPIRED; NULL when nothing is settled yet';
COMMENT ON COLUMN kyc.pending.attempt_status IS 'P100''s attemptStatus now: PENDING or VERIFICATION; NULL when nothing is settled yet (created through the API, or the first report was held)';
COMMENT ON COLUMN kyc.pending.source IS 'who set the current state: webhook, reconciler or api';
COMMENT ON COLUMN kyc.pending.verification_id IS 'P100''s verificationId, when kycd create-kyc made the verification; else NULL';
COMMENT ON COLUMN kyc.pending.pending_since IS 'start of the pending attempt: the first change into PENDING or VERIFICATION after the user''s last settled result (a move PENDING -> VERIFICATION does not reset it); first_seen_at when no such change is stored (nothing settled yet)';
COMMENT ON COLUMN kyc.pending.pending_for IS 'now - pending_since (interval)';
COMMENT ON COLUMN kyc.pending.needs_check_reason IS 'why the reconciler must ask P100 (out_of_order, leaves_verified, unknown_value, conflict, repeat_conflict, api_pending); NULL when nothing is owed';

-- A cohort funnel: the first columns keep their names (dashboards read
-- them); their meaning is now per cohort.
CREATE OR REPLACE VIEW kyc.daily_funnel AS
WITH u AS (
    SELECT (v.first_seen_at AT TIME ZONE 'UTC')::date AS day,
           v.verification_status, v.attempt_status,
           v.verification_status IN ('VERIFIED', 'EXPIRED')
               OR EXISTS (SELECT FROM kyc.status_changes c
                          WHERE c.external_user_id = v.external_user_id
                            AND c.new_verification_status = 'VERIFIED') AS ever_verified
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
COMMENT ON VIEW kyc.daily_funnel IS 'cohort funnel: users by the UTC day kycd first saw them (started), and what became of them by now: verified, rejected, pending, other (verified + rejected + pending + other = started, so verified_ratio <= 1); a cohort''s numbers change as its users progress';
COMMENT ON COLUMN kyc.daily_funnel.day IS 'the cohort: UTC date of kyc.verifications.first_seen_at';
COMMENT ON COLUMN kyc.daily_funnel.started IS 'users first seen that day (the cohort''s size)';
COMMENT ON COLUMN kyc.daily_funnel.verified IS 'of them, users that reached VERIFIED at any time up to now (those since EXPIRED included)';
COMMENT ON COLUMN kyc.daily_funnel.rejected IS 'of them, users never verified whose latest attempt is REJECTED_BY_PROVIDER';
COMMENT ON COLUMN kyc.daily_funnel.expired IS 'of the verified ones, users whose verification is EXPIRED now (a part of verified, not added to the total)';
COMMENT ON COLUMN kyc.daily_funnel.pending IS 'of them, users never verified who are pending now (PENDING, VERIFICATION, or nothing settled yet)';
COMMENT ON COLUMN kyc.daily_funnel.other IS 'of them, the rest: never verified, not rejected, not pending (e.g. SUCCESSFUL without VERIFIED); started - verified - rejected - pending';
COMMENT ON COLUMN kyc.daily_funnel.verified_ratio IS 'verified / started, a fraction from 0 to 1 (4 decimals)';

-- ------------------------------------------------------------ as of a time

CREATE FUNCTION kyc.status_as_of(user_id text, at timestamptz)
RETURNS TABLE (external_user_id text, verification_status text, attempt_status text,
               rejection_reason text, source text, since timestamptz, change_id bigint,
               pending boolean)
LANGUAGE sql STABLE AS $$
    SELECT v.external_user_id, c.new_verification_status, c.new_attempt_status,
           c.new_rejection_reason, c.source, c.changed_at, c.id,
           kyc.is_pending(c.new_attempt_status)
    FROM kyc.verifications v
    LEFT JOIN LATERAL (
        SELECT * FROM kyc.status_changes c
        WHERE c.external_user_id = v.external_user_id AND c.changed_at <= status_as_of.at
        ORDER BY c.changed_at DESC, c.id DESC LIMIT 1
    ) c ON true
    WHERE v.external_user_id = status_as_of.user_id AND v.first_seen_at <= status_as_of.at
$$;
COMMENT ON FUNCTION kyc.status_as_of(text, timestamptz) IS 'one user''s state as of an instant (the latest kyc.status_changes row at or before it); no row when kycd had not seen the user yet; NULL statuses when nothing was recorded yet; columns as kyc.status_as_of(timestamptz)';

CREATE FUNCTION kyc.status_as_of(at timestamptz)
RETURNS TABLE (external_user_id text, verification_status text, attempt_status text,
               rejection_reason text, source text, since timestamptz, change_id bigint,
               pending boolean)
LANGUAGE sql STABLE AS $$
    SELECT v.external_user_id, c.new_verification_status, c.new_attempt_status,
           c.new_rejection_reason, c.source, c.changed_at, c.id,
           kyc.is_pending(c.new_attempt_status)
    FROM kyc.verifications v
    LEFT JOIN (
        SELECT DISTINCT ON (c.external_user_id) c.*
        FROM kyc.status_changes c
        WHERE c.changed_at <= status_as_of.at
        ORDER BY c.external_user_id, c.changed_at DESC, c.id DESC
    ) c ON c.external_user_id = v.external_user_id
    WHERE v.first_seen_at <= status_as_of.at
$$;
COMMENT ON FUNCTION kyc.status_as_of(timestamptz) IS 'the state of every user kycd had seen by an instant: external_user_id, verification_status, attempt_status, rejection_reason, source (webhook, reconciler, api), since (when that state was recorded), change_id (kyc.status_changes.id), pending (kyc.is_pending); statuses NULL when nothing was recorded yet';

-- ------------------------------------------- webhooks against P100's word

-- Each KYC webhook beside the first answer of P100's Get KYC Status that
-- came after it (before the user's next KYC webhook).
CREATE VIEW kyc.webhook_vs_p100 AS
SELECT e.id AS event_id, e.received_at, e.external_user_id, e.outcome, e.outcome_reason,
       e.body ->> 'verificationStatus' AS said_verification_status,
       e.body ->> 'attemptStatus' AS said_attempt_status,
       e.body ->> 'rejectionReason' AS said_rejection_reason,
       k.id AS check_id, k.checked_at, k.purpose,
       kyc.try_jsonb(k.body) ->> 'verificationStatus' AS p100_verification_status,
       kyc.try_jsonb(k.body) ->> 'attemptStatus' AS p100_attempt_status,
       kyc.try_jsonb(k.body) ->> 'rejectionReason' AS p100_rejection_reason,
       CASE WHEN k.id IS NOT NULL THEN
           (e.body ->> 'verificationStatus', e.body ->> 'attemptStatus')
           IS NOT DISTINCT FROM (kyc.try_jsonb(k.body) ->> 'verificationStatus',
                                 kyc.try_jsonb(k.body) ->> 'attemptStatus') END AS agrees,
       x.id AS correction_change_id
FROM kyc.webhook_events e
LEFT JOIN LATERAL (
    SELECT min(n.received_at) AS at FROM kyc.webhook_events n
    WHERE n.external_user_id = e.external_user_id AND n.kind = e.kind
      AND (n.received_at, n.id) > (e.received_at, e.id)
) nx ON true
LEFT JOIN LATERAL (
    SELECT k.* FROM kyc.status_checks k
    WHERE k.external_user_id = e.external_user_id AND k.outcome = 'ok'
      AND k.checked_at >= e.received_at
      AND (nx.at IS NULL OR k.checked_at < nx.at)
    ORDER BY k.checked_at, k.id LIMIT 1
) k ON true
LEFT JOIN LATERAL (
    SELECT c.id FROM kyc.status_changes c
    WHERE c.check_id = k.id AND c.external_user_id = e.external_user_id
      AND c.changed_at >= k.checked_at
    ORDER BY c.id LIMIT 1
) x ON true
WHERE e.kind = 'kyc_verification_status';
COMMENT ON VIEW kyc.webhook_vs_p100 IS 'each KYC webhook: what it said beside what P100''s Get KYC Status said when kycd next asked (the first answered check after it and before the user''s next KYC webhook); check columns NULL when P100 was not asked in between';
COMMENT ON COLUMN kyc.webhook_vs_p100.event_id IS 'the delivery (kyc.webhook_events.id)';
COMMENT ON COLUMN kyc.webhook_vs_p100.received_at IS 'when kycd received it';
COMMENT ON COLUMN kyc.webhook_vs_p100.external_user_id IS 'P100''s externalUserId (the partner''s user id)';
COMMENT ON COLUMN kyc.webhook_vs_p100.outcome IS 'what kycd did with it: applied, unchanged, held (kyc.webhook_events.outcome)';
COMMENT ON COLUMN kyc.webhook_vs_p100.outcome_reason IS 'the state rule that decided (first, forward, new_attempt, same, repeat, out_of_order, leaves_verified, conflict, repeat_conflict, unknown_value)';
COMMENT ON COLUMN kyc.webhook_vs_p100.said_verification_status IS 'verificationStatus as the webhook said it (as sent, documented or not)';
COMMENT ON COLUMN kyc.webhook_vs_p100.said_attempt_status IS 'attemptStatus as the webhook said it (as sent, documented or not)';
COMMENT ON COLUMN kyc.webhook_vs_p100.said_rejection_reason IS 'rejectionReason as the webhook said it; NULL when absent';
COMMENT ON COLUMN kyc.webhook_vs_p100.check_id IS 'the Get KYC Status call compared (kyc.status_checks.id, outcome ok); NULL when none came before the next webhook';
COMMENT ON COLUMN kyc.webhook_vs_p100.checked_at IS 'when that call was made';
COMMENT ON COLUMN kyc.webhook_vs_p100.purpose IS 'why the user was checked: held, pending, recheck_rejected, recheck_verified (NULL: before schema 6)';
COMMENT ON COLUMN kyc.webhook_vs_p100.p100_verification_status IS 'verificationStatus in P100''s answer';
COMMENT ON COLUMN kyc.webhook_vs_p100.p100_attempt_status IS 'attemptStatus in P100''s answer';
COMMENT ON COLUMN kyc.webhook_vs_p100.p100_rejection_reason IS 'rejectionReason in P100''s answer; NULL when absent';
COMMENT ON COLUMN kyc.webhook_vs_p100.agrees IS 'true when P100 said the same verificationStatus and attemptStatus as the webhook, false when not (the user moved on since, or the webhook was wrong), NULL when P100 was not asked';
COMMENT ON COLUMN kyc.webhook_vs_p100.correction_change_id IS 'the kyc.status_changes row the check wrote when it corrected kycd''s state (source reconciler); NULL when it changed nothing';

-- Reconciler corrections, with the event whose state they corrected and
-- the latest webhook before them (columns added at the end).
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
JOIN kyc.status_checks s ON s.id = c.check_id
JOIN kyc.verifications v ON v.external_user_id = c.external_user_id
LEFT JOIN LATERAL (
    SELECT b.event_id, b.source FROM kyc.status_changes b
    WHERE b.external_user_id = c.external_user_id AND (b.changed_at, b.id) < (c.changed_at, c.id)
    ORDER BY b.changed_at DESC, b.id DESC LIMIT 1
) p ON true
LEFT JOIN LATERAL (
    SELECT e.id, e.outcome, e.outcome_reason FROM kyc.webhook_events e
    WHERE e.external_user_id = c.external_user_id AND e.kind = 'kyc_verification_status'
      AND e.received_at <= s.checked_at
    ORDER BY e.received_at DESC, e.id DESC LIMIT 1
) w ON true
WHERE c.source = 'reconciler';
COMMENT ON VIEW kyc.reconciler_corrections IS 'state changes made by the reconciler: each one is a webhook that was missed or wrong; reason recheck: found by a re-check of a settled user; corrected_event_id: the webhook whose state it replaced, last_event_id: the latest KYC webhook before the check';
COMMENT ON COLUMN kyc.reconciler_corrections.change_id IS 'the correction (kyc.status_changes.id)';
COMMENT ON COLUMN kyc.reconciler_corrections.changed_at IS 'when it was recorded';
COMMENT ON COLUMN kyc.reconciler_corrections.external_user_id IS 'P100''s externalUserId (the partner''s user id)';
COMMENT ON COLUMN kyc.reconciler_corrections.old_verification_status IS 'verificationStatus kycd held before (NOT_VERIFIED, VERIFIED, EXPIRED; NULL: none)';
COMMENT ON COLUMN kyc.reconciler_corrections.old_attempt_status IS 'attemptStatus kycd held before (PENDING, VERIFICATION, REJECTED_BY_PROVIDER, SUCCESSFUL; NULL: none)';
COMMENT ON COLUMN kyc.reconciler_corrections.new_verification_status IS 'verificationStatus P100 answered (NOT_VERIFIED, VERIFIED, EXPIRED)';
COMMENT ON COLUMN kyc.reconciler_corrections.new_attempt_status IS 'attemptStatus P100 answered (PENDING, VERIFICATION, REJECTED_BY_PROVIDER, SUCCESSFUL)';
COMMENT ON COLUMN kyc.reconciler_corrections.new_rejection_reason IS 'rejectionReason P100 answered; NULL unless rejected';
COMMENT ON COLUMN kyc.reconciler_corrections.http_status IS 'HTTP status of P100''s answer';
COMMENT ON COLUMN kyc.reconciler_corrections.latency_ms IS 'how long P100 took to answer, in milliseconds';
COMMENT ON COLUMN kyc.reconciler_corrections.last_webhook_at IS 'the user''s latest KYC webhook now (kyc.verifications.last_webhook_at), applied or not';
COMMENT ON COLUMN kyc.reconciler_corrections.reason IS 'reconciler (a pending or held user checked) or recheck (a settled user re-checked)';
COMMENT ON COLUMN kyc.reconciler_corrections.purpose IS 'why the user was checked: held, pending, recheck_rejected, recheck_verified (NULL: before schema 6)';
COMMENT ON COLUMN kyc.reconciler_corrections.corrected_event_id IS 'the webhook (kyc.webhook_events.id) that had set the state this correction replaced; NULL when that state came from the reconciler or the API, or no state was stored';
COMMENT ON COLUMN kyc.reconciler_corrections.corrected_source IS 'who had set the replaced state: webhook, reconciler, api; NULL when none was stored';
COMMENT ON COLUMN kyc.reconciler_corrections.last_event_id IS 'the latest KYC webhook (kyc.webhook_events.id) received before the check, applied or held; NULL when none';
COMMENT ON COLUMN kyc.reconciler_corrections.last_event_outcome IS 'what kycd did with it: applied, unchanged, held';
COMMENT ON COLUMN kyc.reconciler_corrections.last_event_reason IS 'the rule that decided it (kyc.webhook_events.outcome_reason)';

-- ------------------------------------------------------ rejection reasons

CREATE VIEW kyc.rejection_reasons_daily AS
SELECT (a.ended_at AT TIME ZONE 'UTC')::date AS day,
       a.rejection_reason,
       count(*) AS attempts,
       count(DISTINCT a.external_user_id) AS users,
       round(count(*)::numeric / sum(count(*)) OVER (PARTITION BY (a.ended_at AT TIME ZONE 'UTC')::date), 4) AS share
FROM kyc.attempts a
WHERE a.rejected
GROUP BY 1, 2
ORDER BY 1, 3 DESC;
COMMENT ON VIEW kyc.rejection_reasons_daily IS 'per UTC day and rejection reason: attempts that ended REJECTED_BY_PROVIDER that day (kyc.attempts), the users, and the reason''s share of the day''s rejections';
COMMENT ON COLUMN kyc.rejection_reasons_daily.day IS 'UTC date the attempt ended (kyc.attempts.ended_at)';
COMMENT ON COLUMN kyc.rejection_reasons_daily.rejection_reason IS 'P100''s rejectionReason (the identity provider''s code, free text); NULL when P100 gave none';
COMMENT ON COLUMN kyc.rejection_reasons_daily.attempts IS 'attempts rejected that day for this reason';
COMMENT ON COLUMN kyc.rejection_reasons_daily.users IS 'distinct users among them';
COMMENT ON COLUMN kyc.rejection_reasons_daily.share IS 'attempts / all attempts rejected that day, a fraction from 0 to 1 (4 decimals)';

-- ----------------------------------------------- the other columns, once

-- kyc.webhook_events
COMMENT ON COLUMN kyc.webhook_events.id IS 'delivery id, from one sequence, in commit-lock order per user; with received_at the primary key';
COMMENT ON COLUMN kyc.webhook_events.kind IS 'which webhook: kyc_verification_status, poa_verification_status, kyc_file_added, user_status';
COMMENT ON COLUMN kyc.webhook_events.external_user_id IS 'P100''s externalUserId (the partner''s user id), 1 to 128 characters';
COMMENT ON COLUMN kyc.webhook_events.body IS 'the body as received (jsonb: keys reordered, whitespace dropped; body_sha256 is of the exact bytes)';
COMMENT ON COLUMN kyc.webhook_events.body_sha256 IS 'SHA-256 of the exact bytes received (32 bytes)';
COMMENT ON COLUMN kyc.webhook_events.remote_addr IS 'TCP peer address of the delivery (a proxy''s, behind one); NULL when unknown';
COMMENT ON COLUMN kyc.webhook_events.outcome_reason IS 'the rule that decided the outcome: for KYC webhooks first, forward, new_attempt, same, repeat, out_of_order, leaves_verified, conflict, repeat_conflict, unknown_value; latest, same, repeat, recorded for the other kinds';
COMMENT ON COLUMN kyc.webhook_events.repeat_of IS 'id of the earlier identical delivery (same kind, user and bytes) within dedup_window; NULL when not a repeat';

-- kyc.verifications
COMMENT ON COLUMN kyc.verifications.external_user_id IS 'P100''s externalUserId (the partner''s user id), 1 to 128 characters; the primary key';
COMMENT ON COLUMN kyc.verifications.verification_status IS 'P100''s verificationStatus now: NOT_VERIFIED, VERIFIED, EXPIRED (kyc.p100_values(''verificationStatus'')); NULL when nothing is settled yet';
COMMENT ON COLUMN kyc.verifications.attempt_status IS 'P100''s attemptStatus now: PENDING, VERIFICATION, REJECTED_BY_PROVIDER, SUCCESSFUL (kyc.p100_values(''attemptStatus'')); NULL when nothing is settled yet (created through the API, or the first report was held)';
COMMENT ON COLUMN kyc.verifications.rejection_reason IS 'P100''s rejectionReason now (the identity provider''s code, free text, e.g. NO_FACE_FOUND); NULL unless rejected';
COMMENT ON COLUMN kyc.verifications.verification_id IS 'P100''s verificationId of the latest verification kycd create-kyc made; NULL when none (webhooks do not carry it)';
COMMENT ON COLUMN kyc.verifications.first_seen_at IS 'when kycd first heard of the user (its first KYC webhook''s received_at, or the create-kyc call)';
COMMENT ON COLUMN kyc.verifications.last_webhook_at IS 'when the user''s latest KYC webhook was received, applied or not; NULL when none';
COMMENT ON COLUMN kyc.verifications.last_event_id IS 'the delivery (kyc.webhook_events.id) that set the current state; NULL when the reconciler or the API set it';
COMMENT ON COLUMN kyc.verifications.last_checked_at IS 'when the reconciler last called Get KYC Status for the user, answered or not; NULL when never';
COMMENT ON COLUMN kyc.verifications.failures IS 'consecutive failed checks of the user (transient errors); 0 after an answer or a new webhook';
COMMENT ON COLUMN kyc.verifications.last_check_id IS 'the latest kyc.status_checks row (id) for the user; NULL when never checked';

-- kyc.status_changes
COMMENT ON COLUMN kyc.status_changes.id IS 'change id, from one sequence; with changed_at the primary key';
COMMENT ON COLUMN kyc.status_changes.external_user_id IS 'P100''s externalUserId (the partner''s user id)';
COMMENT ON COLUMN kyc.status_changes.changed_at IS 'when the new state was recorded (for a webhook: when kycd received it)';
COMMENT ON COLUMN kyc.status_changes.source IS 'who made the change: webhook, reconciler (P100''s Get KYC Status) or api (kycd create-kyc)';
COMMENT ON COLUMN kyc.status_changes.reason IS 'the rule that allowed the change: first, forward, new_attempt (webhooks), reconciler, recheck (the reconciler), api';
COMMENT ON COLUMN kyc.status_changes.old_verification_status IS 'verificationStatus before: NOT_VERIFIED, VERIFIED, EXPIRED; NULL when none';
COMMENT ON COLUMN kyc.status_changes.new_verification_status IS 'verificationStatus after: NOT_VERIFIED, VERIFIED, EXPIRED; NULL when P100 gave none';
COMMENT ON COLUMN kyc.status_changes.old_attempt_status IS 'attemptStatus before: PENDING, VERIFICATION, REJECTED_BY_PROVIDER, SUCCESSFUL; NULL when none';
COMMENT ON COLUMN kyc.status_changes.new_attempt_status IS 'attemptStatus after: PENDING, VERIFICATION, REJECTED_BY_PROVIDER, SUCCESSFUL; NULL when P100 gave none';
COMMENT ON COLUMN kyc.status_changes.old_rejection_reason IS 'rejectionReason before (free text); NULL unless rejected';
COMMENT ON COLUMN kyc.status_changes.new_rejection_reason IS 'rejectionReason after (free text); NULL unless rejected';

-- kyc.status_checks
COMMENT ON COLUMN kyc.status_checks.id IS 'check id, from one sequence; with checked_at the primary key';
COMMENT ON COLUMN kyc.status_checks.external_user_id IS 'P100''s externalUserId (the partner''s user id) checked';
COMMENT ON COLUMN kyc.status_checks.checked_at IS 'when the call was made';
COMMENT ON COLUMN kyc.status_checks.checker IS 'the kycd instance that made it (host:pid)';
COMMENT ON COLUMN kyc.status_checks.error_code IS 'P100''s errorCode in the answer (e.g. P412, P500; kyc.p100_values(''errorCode'')); NULL when none';
COMMENT ON COLUMN kyc.status_checks.latency_ms IS 'time from the request to the whole answer (or the failure), in milliseconds';
COMMENT ON COLUMN kyc.status_checks.detail IS 'kycd''s words on what happened (the error, the decision); NULL when nothing to add';

-- kyc.poa_statuses
COMMENT ON COLUMN kyc.poa_statuses.external_user_id IS 'P100''s externalUserId (the partner''s user id); the primary key';
COMMENT ON COLUMN kyc.poa_statuses.status IS 'the latest POA (proof of address) status received: WAITING, APPROVED, REJECTED, QUESTIONED (kyc.p100_values(''poaVerificationStatus.status''))';
COMMENT ON COLUMN kyc.poa_statuses.updated_at IS 'when that delivery was received';
COMMENT ON COLUMN kyc.poa_statuses.last_event_id IS 'that delivery (kyc.webhook_events.id)';

-- kyc.schema_migrations (created by kycd migrate itself)
COMMENT ON TABLE kyc.schema_migrations IS 'the migrations kycd migrate applied, one row each';
COMMENT ON COLUMN kyc.schema_migrations.version IS 'the migration''s number (sql/NNN_name.sql)';
COMMENT ON COLUMN kyc.schema_migrations.name IS 'its file name without .sql';
COMMENT ON COLUMN kyc.schema_migrations.sha256 IS 'SHA-256 (hex) of the file as applied: kycd refuses a database whose applied migration differs';
COMMENT ON COLUMN kyc.schema_migrations.applied_at IS 'when it was applied';

-- kyc.current_status
COMMENT ON COLUMN kyc.current_status.external_user_id IS 'P100''s externalUserId (the partner''s user id)';
COMMENT ON COLUMN kyc.current_status.verification_status IS 'P100''s verificationStatus now: NOT_VERIFIED, VERIFIED, EXPIRED; NULL when nothing is settled yet';
COMMENT ON COLUMN kyc.current_status.attempt_status IS 'P100''s attemptStatus now: PENDING, VERIFICATION, REJECTED_BY_PROVIDER, SUCCESSFUL; NULL when nothing is settled yet';
COMMENT ON COLUMN kyc.current_status.rejection_reason IS 'P100''s rejectionReason now (free text); NULL unless rejected';
COMMENT ON COLUMN kyc.current_status.verification_id IS 'P100''s verificationId of the latest verification kycd create-kyc made; NULL when none';
COMMENT ON COLUMN kyc.current_status.source IS 'who set the current state: webhook, reconciler, api';
COMMENT ON COLUMN kyc.current_status.pending IS 'kyc.is_pending(attempt_status): PENDING, VERIFICATION, or nothing settled yet';
COMMENT ON COLUMN kyc.current_status.needs_check IS 'true when the reconciler owes P100 a question about the user (needs_check_reason set)';
COMMENT ON COLUMN kyc.current_status.needs_check_reason IS 'why: out_of_order, leaves_verified, unknown_value, conflict, repeat_conflict, api_pending; NULL when nothing is owed';
COMMENT ON COLUMN kyc.current_status.first_seen_at IS 'when kycd first heard of the user';
COMMENT ON COLUMN kyc.current_status.updated_at IS 'when the current state was recorded (the latest change, not the start of the attempt: see kyc.pending.pending_since)';
COMMENT ON COLUMN kyc.current_status.last_webhook_at IS 'when the user''s latest KYC webhook was received, applied or not; NULL when none';
COMMENT ON COLUMN kyc.current_status.poa_status IS 'the latest POA status: WAITING, APPROVED, REJECTED, QUESTIONED; NULL when none received';
COMMENT ON COLUMN kyc.current_status.poa_updated_at IS 'when that POA status was received; NULL when none';
COMMENT ON COLUMN kyc.current_status.attention_reason IS 'why a person must look (P100''s final error such as P412, or too many failures); NULL when nothing';
COMMENT ON COLUMN kyc.current_status.last_checked_at IS 'when the reconciler last called Get KYC Status for the user; NULL when never';

-- kyc.time_to_verified
COMMENT ON COLUMN kyc.time_to_verified.external_user_id IS 'P100''s externalUserId (the partner''s user id)';
COMMENT ON COLUMN kyc.time_to_verified.first_seen_at IS 'when kycd first heard of the user';
COMMENT ON COLUMN kyc.time_to_verified.verified_at IS 'when the user''s first change into VERIFIED was recorded';
COMMENT ON COLUMN kyc.time_to_verified.time_to_verified IS 'verified_at - first_seen_at (interval)';

-- kyc.held_events
COMMENT ON COLUMN kyc.held_events.event_id IS 'the held delivery (kyc.webhook_events.id)';
COMMENT ON COLUMN kyc.held_events.received_at IS 'when kycd received it';
COMMENT ON COLUMN kyc.held_events.external_user_id IS 'P100''s externalUserId (the partner''s user id)';
COMMENT ON COLUMN kyc.held_events.outcome_reason IS 'why it was held: out_of_order, leaves_verified, conflict, repeat_conflict, unknown_value';
COMMENT ON COLUMN kyc.held_events.verification_status IS 'verificationStatus the webhook said (as sent, documented or not)';
COMMENT ON COLUMN kyc.held_events.attempt_status IS 'attemptStatus the webhook said (as sent, documented or not)';
COMMENT ON COLUMN kyc.held_events.unknown_fields IS 'fields whose value P100 does not document, e.g. {verificationStatus}';
COMMENT ON COLUMN kyc.held_events.current_verification_status IS 'the user''s verificationStatus now';
COMMENT ON COLUMN kyc.held_events.current_attempt_status IS 'the user''s attemptStatus now';
COMMENT ON COLUMN kyc.held_events.resolved IS 'true once P100 was asked after the report arrived (kyc.verifications.last_checked_at later)';

-- kyc.needs_attention
COMMENT ON COLUMN kyc.needs_attention.external_user_id IS 'P100''s externalUserId (the partner''s user id)';
COMMENT ON COLUMN kyc.needs_attention.attention_reason IS 'why a person must look: P100''s final error (e.g. P412) or too many failures';
COMMENT ON COLUMN kyc.needs_attention.verification_status IS 'P100''s verificationStatus now (NULL: none)';
COMMENT ON COLUMN kyc.needs_attention.attempt_status IS 'P100''s attemptStatus now (NULL: none)';
COMMENT ON COLUMN kyc.needs_attention.failures IS 'consecutive failed checks';
COMMENT ON COLUMN kyc.needs_attention.last_checked_at IS 'when the reconciler last called Get KYC Status for the user';
COMMENT ON COLUMN kyc.needs_attention.updated_at IS 'when the current state was recorded';

-- kyc.reconciler_daily
COMMENT ON COLUMN kyc.reconciler_daily.day IS 'UTC date of the checks';
COMMENT ON COLUMN kyc.reconciler_daily.outcome IS 'P100''s answer, classified: ok, final, transient, rate_limited, misconfigured, unusable';
COMMENT ON COLUMN kyc.reconciler_daily.result IS 'what kycd did: applied, unchanged, flagged, retry, released';
COMMENT ON COLUMN kyc.reconciler_daily.checks IS 'number of Get KYC Status calls';
COMMENT ON COLUMN kyc.reconciler_daily.avg_latency_ms IS 'their mean latency, in milliseconds (1 decimal)';
COMMENT ON COLUMN kyc.reconciler_daily.p99_latency_ms IS 'their 99th percentile latency, in milliseconds (1 decimal)';

-- kyc.partitions
COMMENT ON COLUMN kyc.partitions.parent IS 'the history table: webhook_events, status_changes, status_checks';
COMMENT ON COLUMN kyc.partitions.name IS 'the partition: <parent>_pYYYYMM, or <parent>_default';
COMMENT ON COLUMN kyc.partitions.from_time IS 'its lower bound, included (a UTC month start); NULL for the DEFAULT partition';
COMMENT ON COLUMN kyc.partitions.to_time IS 'its upper bound, excluded; NULL for the DEFAULT partition';
COMMENT ON COLUMN kyc.partitions.approx_rows IS 'approximate row count (the planner''s statistics; 0 before the first ANALYZE)';
COMMENT ON COLUMN kyc.partitions.bytes IS 'size on disk with indexes and TOAST, in bytes';

-- ------------------------------------------------------------------ grants

GRANT SELECT ON kyc.status_periods, kyc.attempts, kyc.time_in_status, kyc.webhook_vs_p100,
    kyc.rejection_reasons_daily, kyc.pending, kyc.daily_funnel, kyc.reconciler_corrections
    TO kyc_analyst;
GRANT EXECUTE ON FUNCTION kyc.status_as_of(timestamptz), kyc.status_as_of(text, timestamptz),
    kyc.is_settled(text), kyc.try_jsonb(text) TO kyc_analyst;
