-- kycd schema, version 10: nothing authentic is lost (README.md,
-- "Quarantine and replay").
--
-- kyc.quarantine keeps, raw, every delivery that passed the token check but
-- that kycd could not apply: its body failed validation (a field of the
-- wrong type, a missing field, a shape kycd does not know) or the database
-- refused its data. Like kyc.webhook_events it is append-only and
-- partitioned by month (UTC) of received_at; kyc.create_partition and
-- kyc.ensure_partitions (redefined below, as 008 wrote them) create its
-- partitions, and kyc.partitions and kyc.retention see them.
--
-- kyc.replay_runs records every `kycd replay`: who, when, the range, and
-- what it changed. Append-only too (small: one row per run).

CREATE TABLE kyc.quarantine (
    id               bigint GENERATED ALWAYS AS IDENTITY,
    received_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind             text NOT NULL CHECK (kind IN ('kyc_verification_status',
                         'poa_verification_status', 'kyc_file_added', 'user_status')),
    external_user_id text CHECK (external_user_id <> '' AND length(external_user_id) <= 128),
    body             bytea NOT NULL,
    body_sha256      bytea NOT NULL CHECK (length(body_sha256) = 32),
    remote_addr      inet,
    request_id       text NOT NULL,
    reason           text NOT NULL
) PARTITION BY RANGE (received_at);
COMMENT ON TABLE kyc.quarantine IS 'authentic webhook deliveries kycd could not apply (body failed validation, or data refused by the database), raw, with the reason; append-only; partitioned by month of received_at (UTC)';
COMMENT ON COLUMN kyc.quarantine.external_user_id IS 'externalUserId when the body holds it as a valid string; NULL otherwise';
COMMENT ON COLUMN kyc.quarantine.body IS 'the body exactly as received (bytes: it may not be valid JSON or UTF-8)';
COMMENT ON COLUMN kyc.quarantine.reason IS 'why it was not applied (the validation error, never quoting the body)';
COMMENT ON COLUMN kyc.quarantine.id IS 'identity, unique with received_at (the partition key); orders the quarantine';
COMMENT ON COLUMN kyc.quarantine.received_at IS 'when kycd received the delivery (for one kept in the spool first: when it was spooled), UTC';
COMMENT ON COLUMN kyc.quarantine.kind IS 'the webhook it came to: kyc_verification_status, poa_verification_status, kyc_file_added, user_status';
COMMENT ON COLUMN kyc.quarantine.body_sha256 IS 'SHA-256 of body (32 bytes)';
COMMENT ON COLUMN kyc.quarantine.remote_addr IS 'the address the delivery came from (the balancer''s behind one)';
COMMENT ON COLUMN kyc.quarantine.request_id IS 'kycd''s id of the delivery (32 hex digits), in the log line of its answer and in the 200 body';

CREATE TABLE kyc.quarantine_default PARTITION OF kyc.quarantine DEFAULT;
CREATE TRIGGER quarantine_default_no_truncate BEFORE TRUNCATE ON kyc.quarantine_default
    FOR EACH STATEMENT EXECUTE FUNCTION kyc.refuse_change();

ALTER TABLE kyc.quarantine ADD PRIMARY KEY (id, received_at);
-- A delivery replayed from the spool keeps its request id and receipt time:
-- stored once however often it is replayed.
CREATE UNIQUE INDEX quarantine_request_idx ON kyc.quarantine (request_id, received_at);
CREATE INDEX quarantine_user_idx ON kyc.quarantine (external_user_id, received_at);
CREATE INDEX quarantine_received_idx ON kyc.quarantine (received_at);

CREATE TRIGGER quarantine_append_only BEFORE UPDATE OR DELETE ON kyc.quarantine
    FOR EACH ROW EXECUTE FUNCTION kyc.refuse_change();
CREATE TRIGGER quarantine_no_truncate BEFORE TRUNCATE ON kyc.quarantine
    FOR EACH STATEMENT EXECUTE FUNCTION kyc.refuse_change();

CREATE TABLE kyc.replay_runs (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    run_by            text NOT NULL DEFAULT session_user,
    os_user           text,
    host              text,
    since             timestamptz NOT NULL,
    until             timestamptz,
    external_user_id  text,
    dry_run           boolean NOT NULL,
    examined          integer NOT NULL,
    applied           integer NOT NULL,
    repeats           integer NOT NULL,
    still_quarantined integer NOT NULL,
    event_ids         bigint[] NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE kyc.replay_runs IS 'every kycd replay: who (database role, OS user, host), when, the range and user, and what it changed (events created); append-only';
COMMENT ON COLUMN kyc.replay_runs.applied IS 'quarantined deliveries that now parse and were stored in kyc.webhook_events (dry run: would be)';
COMMENT ON COLUMN kyc.replay_runs.repeats IS 'deliveries already in kyc.webhook_events (applied, held, ... or replayed before): changed nothing';
COMMENT ON COLUMN kyc.replay_runs.still_quarantined IS 'quarantined deliveries the current rules still refuse';
COMMENT ON COLUMN kyc.replay_runs.event_ids IS 'the kyc.webhook_events rows this run created';
COMMENT ON COLUMN kyc.replay_runs.id IS 'identity: the run';
COMMENT ON COLUMN kyc.replay_runs.started_at IS 'when the run started, UTC';
COMMENT ON COLUMN kyc.replay_runs.finished_at IS 'when it finished (recorded), UTC';
COMMENT ON COLUMN kyc.replay_runs.run_by IS 'the database role that ran it';
COMMENT ON COLUMN kyc.replay_runs.os_user IS 'the operating-system user that ran kycd replay, when known';
COMMENT ON COLUMN kyc.replay_runs.host IS 'the host kycd replay ran on';
COMMENT ON COLUMN kyc.replay_runs.since IS 'the range''s start: deliveries received at or after it (--since)';
COMMENT ON COLUMN kyc.replay_runs.until IS 'the range''s end, exclusive (--until); NULL: up to the run';
COMMENT ON COLUMN kyc.replay_runs.external_user_id IS 'the one user replayed (--user); NULL: every user';
COMMENT ON COLUMN kyc.replay_runs.dry_run IS 'true: --dry-run, nothing was changed';
COMMENT ON COLUMN kyc.replay_runs.examined IS 'stored deliveries the run read (events and quarantined ones in the range)';
CREATE TRIGGER replay_runs_append_only BEFORE UPDATE OR DELETE ON kyc.replay_runs
    FOR EACH ROW EXECUTE FUNCTION kyc.refuse_change();
CREATE TRIGGER replay_runs_no_truncate BEFORE TRUNCATE ON kyc.replay_runs
    FOR EACH STATEMENT EXECUTE FUNCTION kyc.refuse_change();

-- Each quarantined delivery, with the event a replay stored it as (same
-- request id and receipt time), if any.
CREATE VIEW kyc.quarantined_events AS
SELECT q.id, q.received_at, q.kind, q.external_user_id, q.reason, q.request_id,
       q.remote_addr, e.id AS replayed_event_id, e.outcome AS replayed_outcome
FROM kyc.quarantine q
LEFT JOIN kyc.webhook_events e ON e.request_id = q.request_id AND e.received_at = q.received_at;
COMMENT ON VIEW kyc.quarantined_events IS 'quarantined deliveries, with the kyc.webhook_events row a kycd replay stored each as (NULL: not yet)';
COMMENT ON COLUMN kyc.quarantined_events.id IS 'kyc.quarantine.id';
COMMENT ON COLUMN kyc.quarantined_events.received_at IS 'when kycd received the delivery, UTC';
COMMENT ON COLUMN kyc.quarantined_events.kind IS 'the webhook it came to: kyc_verification_status, poa_verification_status, kyc_file_added, user_status';
COMMENT ON COLUMN kyc.quarantined_events.external_user_id IS 'externalUserId when the body holds it as a valid string; NULL otherwise';
COMMENT ON COLUMN kyc.quarantined_events.reason IS 'why it was not applied';
COMMENT ON COLUMN kyc.quarantined_events.request_id IS 'kycd''s id of the delivery (32 hex digits)';
COMMENT ON COLUMN kyc.quarantined_events.remote_addr IS 'the address the delivery came from';
COMMENT ON COLUMN kyc.quarantined_events.replayed_event_id IS 'the kyc.webhook_events row a kycd replay stored it as; NULL: not (yet) applied';
COMMENT ON COLUMN kyc.quarantined_events.replayed_outcome IS 'that event''s outcome: applied, unchanged, held, recorded; NULL: not applied';

-- 008's functions, with the quarantine added to their list.
CREATE OR REPLACE FUNCTION kyc.create_partition(parent pg_catalog.text, month pg_catalog.timestamptz)
RETURNS pg_catalog.text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    first pg_catalog.timestamptz :=
        pg_catalog.timezone('UTC', pg_catalog.date_trunc('month', pg_catalog.timezone('UTC', month)));
    name  pg_catalog.text := parent || '_p' || pg_catalog.to_char(pg_catalog.timezone('UTC', first), 'YYYYMM');
BEGIN
    IF parent NOT IN ('webhook_events', 'status_changes', 'status_checks', 'quarantine') THEN
        RAISE EXCEPTION 'kyc.% is not a partitioned history table', parent;
    END IF;
    -- Two kycd hosts may run their maintenance at the same moment.
    PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('kycd partitions'));
    IF pg_catalog.to_regclass(pg_catalog.format('kyc.%I', name)) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE pg_catalog.format('CREATE TABLE kyc.%I PARTITION OF kyc.%I FOR VALUES FROM (%L) TO (%L)',
                   name, parent,
                   pg_catalog.to_char(pg_catalog.timezone('UTC', first), 'YYYY-MM-DD HH24:MI:SS+00'),
                   pg_catalog.to_char(pg_catalog.timezone('UTC', first) + pg_catalog.make_interval(months => 1),
                                      'YYYY-MM-DD HH24:MI:SS+00'));
    EXECUTE pg_catalog.format('CREATE TRIGGER %I BEFORE TRUNCATE ON kyc.%I '
                   'FOR EACH STATEMENT EXECUTE FUNCTION kyc.refuse_change()',
                   name || '_no_truncate', name);
    EXECUTE pg_catalog.format('GRANT SELECT ON kyc.%I TO kyc_analyst', name);
    RETURN name;
END $$;

CREATE OR REPLACE FUNCTION kyc.ensure_partitions(ahead pg_catalog.int4 DEFAULT 2)
RETURNS SETOF pg_catalog.text LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT p FROM pg_catalog.unnest(ARRAY['webhook_events', 'status_changes', 'status_checks',
                                          'quarantine']::pg_catalog.text[]) t,
                  pg_catalog.generate_series(0, GREATEST(ahead, 0)) m,
                  LATERAL kyc.create_partition(t, pg_catalog.clock_timestamp() + pg_catalog.make_interval(months => m)) p
    WHERE p IS NOT NULL
$$;

-- 007's view of the partitions, with the quarantine's (same columns).
CREATE OR REPLACE VIEW kyc.partitions AS
SELECT p.relname::text AS parent, c.relname::text AS name,
       b.m[1]::timestamptz AS from_time, b.m[2]::timestamptz AS to_time,
       greatest(c.reltuples, 0)::bigint AS approx_rows,
       pg_total_relation_size(c.oid) AS bytes
FROM pg_inherits i
JOIN pg_class c ON c.oid = i.inhrelid
JOIN pg_class p ON p.oid = i.inhparent
JOIN pg_namespace n ON n.oid = p.relnamespace
CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
                                'FROM \(''([^'']+)''\) TO \(''([^'']+)''\)') AS b(m)
WHERE n.nspname = 'kyc' AND p.relname IN ('webhook_events', 'status_changes', 'status_checks',
                                          'quarantine');

-- The quarantine's months: the current one and the next two (as for the
-- other tables; serve's maintenance keeps creating them ahead).
SELECT count(*) FROM kyc.ensure_partitions(2);

GRANT SELECT ON kyc.quarantine, kyc.quarantine_default, kyc.replay_runs,
    kyc.quarantined_events TO kyc_analyst;
