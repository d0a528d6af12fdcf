-- kycd schema, version 19: a new monthly partition cannot deadlock with
-- the writers.
--
-- kyc.status_changes and kyc.status_checks have a foreign key to
-- kyc.verifications, so creating one of their partitions (kycd serve's
-- partition keeper does, once a month, under live traffic) locks the
-- parent first and then kyc.verifications (SHARE ROW EXCLUSIVE, for the
-- partition's copy of the key). Every writer takes them the other way
-- round: its transaction starts on kyc.verifications (the webhook path's
-- first statement inserts the users' rows; the reconciler and create-kyc
-- update them) and then inserts into the history. A writer between the
-- two waited for the partition, which waited for the writer: PostgreSQL
-- aborted one of them (tests/e2e/test_feed.sh met it). kyc.create_partition
-- now takes kyc.verifications first, in the writers' order, and only when
-- it is about to create a partition (the hourly run that finds them all
-- there locks nothing). As 010 wrote it otherwise.
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
    LOCK TABLE kyc.verifications IN SHARE ROW EXCLUSIVE MODE;
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
