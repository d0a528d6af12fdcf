-- kycd schema, version 7: the history tables (kyc.webhook_events,
-- kyc.status_changes, kyc.status_checks) are range-partitioned by month
-- (UTC) on their time column, so that retention can drop whole months and
-- never DELETE a row (README.md, "Partitions and retention"). An existing
-- database is converted: each table is renamed, a partitioned table with the
-- same columns takes its name, its rows are copied into monthly partitions,
-- and the old table is dropped. The whole migration holds ACCESS EXCLUSIVE
-- locks on the three tables (and kyc.verifications, kyc.poa_statuses, whose
-- foreign keys change) until it commits.
--
-- Keys: a primary key of a partitioned table must contain the partition key,
-- so the keys are now (id, received_at), (id, changed_at), (id, checked_at).
-- Ids still come from one identity sequence per table and stay unique; the
-- references by id (verifications.last_event_id, poa_statuses.last_event_id,
-- verifications.last_check_id, status_changes.event_id and check_id,
-- webhook_events.repeat_of) keep their columns and meaning but are no longer
-- foreign keys (a foreign key would need the referenced time too). A join on
-- the id finds the row through each partition's primary-key index.

-- Views reading the history tables are recreated at the end from their
-- current definitions (a view keeps pointing at the renamed table
-- otherwise); pg_get_viewdef names the tables kyc.<table>, which then are
-- the partitioned ones.
CREATE TEMP TABLE kycd_views ON COMMIT DROP AS
SELECT c.relname::text AS name, pg_get_viewdef(c.oid) AS def,
       obj_description(c.oid, 'pg_class') AS comment
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'kyc' AND c.relname IN ('held_events', 'daily_funnel', 'time_to_verified',
                                           'reconciler_corrections', 'reconciler_daily');
DROP VIEW kyc.held_events;
DROP VIEW kyc.daily_funnel;
DROP VIEW kyc.time_to_verified;
DROP VIEW kyc.reconciler_corrections;
DROP VIEW kyc.reconciler_daily;

ALTER TABLE kyc.verifications DROP CONSTRAINT verifications_last_event_id_fkey;
ALTER TABLE kyc.poa_statuses DROP CONSTRAINT poa_statuses_last_event_id_fkey;
ALTER TABLE kyc.status_changes DROP CONSTRAINT status_changes_event_id_fkey;
ALTER TABLE kyc.status_changes DROP CONSTRAINT status_changes_check_fk;

ALTER TABLE kyc.webhook_events RENAME TO webhook_events_v6;
ALTER TABLE kyc.status_changes RENAME TO status_changes_v6;
ALTER TABLE kyc.status_checks RENAME TO status_checks_v6;

-- The append-only refusal names the table analysts know (the parent), not
-- the partition a row happens to be in.
CREATE OR REPLACE FUNCTION kyc.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'kyc.% is append-only',
        coalesce((SELECT p.relname FROM pg_catalog.pg_inherits i
                  JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
                  WHERE i.inhrelid = TG_RELID), TG_TABLE_NAME)
        USING ERRCODE = 'insufficient_privilege';
END $$;

-- The partition of PARENT (one of the three) for the UTC month holding
-- MONTH: created with the table's append-only TRUNCATE trigger (row
-- triggers are inherited from the parent, TRUNCATE triggers are not) and
-- the analysts' grant. Returns its name, or NULL when it existed already.
-- SECURITY DEFINER: the serving role may create partitions ahead (serve's
-- maintenance) without owning the tables; it cannot drop them.
CREATE FUNCTION kyc.create_partition(parent text, month timestamptz)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    first timestamptz := date_trunc('month', month AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    name  text := parent || '_p' || to_char(first AT TIME ZONE 'UTC', 'YYYYMM');
BEGIN
    IF parent NOT IN ('webhook_events', 'status_changes', 'status_checks') THEN
        RAISE EXCEPTION 'kyc.% is not a partitioned history table', parent;
    END IF;
    -- Two kycd hosts may run their maintenance at the same moment.
    PERFORM pg_advisory_xact_lock(hashtext('kycd partitions'));
    IF to_regclass(format('kyc.%I', name)) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('CREATE TABLE kyc.%I PARTITION OF kyc.%I FOR VALUES FROM (%L) TO (%L)',
                   name, parent,
                   to_char(first AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS+00'),
                   to_char((first AT TIME ZONE 'UTC') + interval '1 month', 'YYYY-MM-DD HH24:MI:SS+00'));
    EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON kyc.%I '
                   'FOR EACH STATEMENT EXECUTE FUNCTION kyc.refuse_change()',
                   name || '_no_truncate', name);
    EXECUTE format('GRANT SELECT ON kyc.%I TO kyc_analyst', name);
    RETURN name;
END $$;
COMMENT ON FUNCTION kyc.create_partition(text, timestamptz) IS 'creates the monthly (UTC) partition of a history table holding an instant; NULL when it exists';

-- The current month and the next AHEAD months, for the three tables.
CREATE FUNCTION kyc.ensure_partitions(ahead integer DEFAULT 2)
RETURNS SETOF text LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
    SELECT p FROM unnest(ARRAY['webhook_events', 'status_changes', 'status_checks']) t,
                  generate_series(0, greatest(ahead, 0)) m,
                  LATERAL kyc.create_partition(t, clock_timestamp() + make_interval(months => m)) p
    WHERE p IS NOT NULL
$$;
COMMENT ON FUNCTION kyc.ensure_partitions(integer) IS 'creates the missing partitions for the current month and the next N (default 2); returns the names created';
REVOKE EXECUTE ON FUNCTION kyc.create_partition(text, timestamptz) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION kyc.ensure_partitions(integer) FROM PUBLIC;

CREATE TABLE kyc.webhook_events (LIKE kyc.webhook_events_v6
    INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY INCLUDING COMMENTS)
    PARTITION BY RANGE (received_at);
CREATE TABLE kyc.status_changes (LIKE kyc.status_changes_v6
    INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY INCLUDING COMMENTS)
    PARTITION BY RANGE (changed_at);
CREATE TABLE kyc.status_checks (LIKE kyc.status_checks_v6
    INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY INCLUDING COMMENTS)
    PARTITION BY RANGE (checked_at);
COMMENT ON TABLE kyc.webhook_events IS 'every accepted webhook delivery, append-only; partitioned by month of received_at (UTC)';
COMMENT ON TABLE kyc.status_changes IS 'every change of a user''s KYC state, append-only; partitioned by month of changed_at (UTC)';
COMMENT ON TABLE kyc.status_checks IS 'every Get KYC Status call made by the reconciler, append-only; partitioned by month of checked_at (UTC)';

-- A partition for every month that holds rows, and the ones ahead.
SELECT count(kyc.create_partition(t, m))
FROM (SELECT 'webhook_events' AS t, received_at AS at FROM kyc.webhook_events_v6
      UNION SELECT 'status_changes', changed_at FROM kyc.status_changes_v6
      UNION SELECT 'status_checks', checked_at FROM kyc.status_checks_v6) d,
     LATERAL (SELECT date_trunc('month', d.at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS m) x
GROUP BY t, m;
SELECT count(*) FROM kyc.ensure_partitions(2);

INSERT INTO kyc.webhook_events OVERRIDING SYSTEM VALUE SELECT * FROM kyc.webhook_events_v6;
INSERT INTO kyc.status_changes OVERRIDING SYSTEM VALUE SELECT * FROM kyc.status_changes_v6;
INSERT INTO kyc.status_checks OVERRIDING SYSTEM VALUE SELECT * FROM kyc.status_checks_v6;
SELECT setval(pg_get_serial_sequence('kyc.webhook_events', 'id'),
              (SELECT coalesce(max(id), 0) + 1 FROM kyc.webhook_events_v6), false);
SELECT setval(pg_get_serial_sequence('kyc.status_changes', 'id'),
              (SELECT coalesce(max(id), 0) + 1 FROM kyc.status_changes_v6), false);
SELECT setval(pg_get_serial_sequence('kyc.status_checks', 'id'),
              (SELECT coalesce(max(id), 0) + 1 FROM kyc.status_checks_v6), false);
DROP TABLE kyc.webhook_events_v6, kyc.status_changes_v6, kyc.status_checks_v6;

-- A DEFAULT partition per table: a row no month holds (a delivery replayed
-- from a spool older than the oldest partition, a clock years off) is
-- stored there rather than refused. It is normally empty; `kycd partitions`
-- shows its rows, retention never drops it. (Creating a month's partition
-- checks the default holds no row of that month.)
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['webhook_events', 'status_changes', 'status_checks'] LOOP
        EXECUTE format('CREATE TABLE kyc.%I PARTITION OF kyc.%I DEFAULT', t || '_default', t);
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON kyc.%I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION kyc.refuse_change()',
                       t || '_default_no_truncate', t || '_default');
    END LOOP;
END $$;

-- Keys and indexes (built after the copy: faster), on every partition.
ALTER TABLE kyc.webhook_events ADD PRIMARY KEY (id, received_at);
CREATE INDEX webhook_events_user_idx ON kyc.webhook_events (external_user_id, received_at);
CREATE INDEX webhook_events_dedup_idx ON kyc.webhook_events (external_user_id, body_sha256, received_at);
CREATE INDEX webhook_events_received_idx ON kyc.webhook_events (received_at);
-- A replayed delivery carries the time it was spooled, so the same delivery
-- has the same (request_id, received_at) and is still refused twice.
CREATE UNIQUE INDEX webhook_events_request_idx ON kyc.webhook_events (request_id, received_at);
ALTER TABLE kyc.status_changes ADD PRIMARY KEY (id, changed_at);
ALTER TABLE kyc.status_changes ADD CONSTRAINT status_changes_user_fk
    FOREIGN KEY (external_user_id) REFERENCES kyc.verifications (external_user_id);
CREATE INDEX status_changes_user_idx ON kyc.status_changes (external_user_id, changed_at);
CREATE INDEX status_changes_changed_idx ON kyc.status_changes (changed_at);
ALTER TABLE kyc.status_checks ADD PRIMARY KEY (id, checked_at);
ALTER TABLE kyc.status_checks ADD CONSTRAINT status_checks_user_fk
    FOREIGN KEY (external_user_id) REFERENCES kyc.verifications (external_user_id);
CREATE INDEX status_checks_user_idx ON kyc.status_checks (external_user_id, checked_at);
CREATE INDEX status_checks_checked_idx ON kyc.status_checks (checked_at);

-- Append-only, as before: row triggers reach every partition; TRUNCATE
-- triggers are on the parents and on each partition (kyc.create_partition).
CREATE TRIGGER webhook_events_append_only BEFORE UPDATE OR DELETE ON kyc.webhook_events
    FOR EACH ROW EXECUTE FUNCTION kyc.refuse_change();
CREATE TRIGGER webhook_events_no_truncate BEFORE TRUNCATE ON kyc.webhook_events
    FOR EACH STATEMENT EXECUTE FUNCTION kyc.refuse_change();
CREATE TRIGGER status_changes_append_only BEFORE UPDATE OR DELETE ON kyc.status_changes
    FOR EACH ROW EXECUTE FUNCTION kyc.refuse_change();
CREATE TRIGGER status_changes_no_truncate BEFORE TRUNCATE ON kyc.status_changes
    FOR EACH STATEMENT EXECUTE FUNCTION kyc.refuse_change();
CREATE TRIGGER status_checks_append_only BEFORE UPDATE OR DELETE ON kyc.status_checks
    FOR EACH ROW EXECUTE FUNCTION kyc.refuse_change();
CREATE TRIGGER status_checks_no_truncate BEFORE TRUNCATE ON kyc.status_checks
    FOR EACH STATEMENT EXECUTE FUNCTION kyc.refuse_change();

-- The partitions, with their bounds, for `kycd partitions` and retention.
CREATE VIEW kyc.partitions AS
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
WHERE n.nspname = 'kyc' AND p.relname IN ('webhook_events', 'status_changes', 'status_checks');
COMMENT ON VIEW kyc.partitions IS 'partitions of the history tables: parent, name, [from_time, to_time) (both NULL for the DEFAULT partition), approximate rows, size';

-- What retention does with the partitions wholly before BEFORE: drop, or
-- keep because the current state of some users (kyc.verifications.
-- last_event_id, last_check_id; kyc.poa_statuses.last_event_id) points into
-- it. status_changes partitions are never pointed into. With DRY_RUN false
-- the droppable ones are dropped (only the tables' owner can).
CREATE FUNCTION kyc.retention(before timestamptz, dry_run boolean)
RETURNS TABLE (parent text, name text, from_time timestamptz, to_time timestamptz,
               row_count bigint, pointed_by bigint, action text)
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
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
            EXECUTE format('DROP TABLE kyc.%I', p.name);
            action := 'dropped';
        END IF;
        RETURN NEXT;
    END LOOP;
END $$;
COMMENT ON FUNCTION kyc.retention(timestamptz, boolean) IS 'drops (or lists, dry_run) the history partitions wholly before an instant, keeping those the current state points into';
REVOKE EXECUTE ON FUNCTION kyc.retention(timestamptz, boolean) FROM PUBLIC;

-- The views, as version 6 left them.
DO $$
DECLARE v record;
BEGIN
    FOR v IN SELECT * FROM pg_temp.kycd_views LOOP
        EXECUTE format('CREATE VIEW kyc.%I AS %s', v.name, v.def);
        EXECUTE format('COMMENT ON VIEW kyc.%I IS %L', v.name, v.comment);
    END LOOP;
END $$;

GRANT SELECT ON ALL TABLES IN SCHEMA kyc TO kyc_analyst;
