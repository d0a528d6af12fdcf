-- kycd schema, version 8: SECURITY DEFINER functions that cannot be
-- hijacked through pg_temp.
--
-- kyc.create_partition and kyc.ensure_partitions (007) run as the tables'
-- owner for the serving role and set search_path = pg_catalog. PostgreSQL
-- still searches the caller's temporary schema FIRST for relations and
-- types unless pg_temp is named in the path (and then where it is named), so
-- the serving role could create pg_temp.timestamptz, a domain whose CHECK
-- calls a function of its own, and have that function run as the owner
-- (disable the append-only triggers, grant itself DELETE, ...). PostgreSQL's
-- "Writing SECURITY DEFINER Functions Safely": name pg_temp last. Every type
-- below is schema-qualified as well, so the body resolves nothing through
-- the path, and the functions are redefined with the same signatures and
-- behaviour (their EXECUTE grants are kept by CREATE OR REPLACE).
-- tests/e2e/test_definer.sh runs the attack as the serving role and checks
-- every SECURITY DEFINER function of the schema.

CREATE OR REPLACE FUNCTION kyc.create_partition(parent pg_catalog.text, month pg_catalog.timestamptz)
RETURNS pg_catalog.text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    first pg_catalog.timestamptz :=
        pg_catalog.timezone('UTC', pg_catalog.date_trunc('month', pg_catalog.timezone('UTC', month)));
    name  pg_catalog.text := parent || '_p' || pg_catalog.to_char(pg_catalog.timezone('UTC', first), 'YYYYMM');
BEGIN
    IF parent NOT IN ('webhook_events', 'status_changes', 'status_checks') THEN
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
    SELECT p FROM pg_catalog.unnest(ARRAY['webhook_events', 'status_changes', 'status_checks']::pg_catalog.text[]) t,
                  pg_catalog.generate_series(0, GREATEST(ahead, 0)) m,
                  LATERAL kyc.create_partition(t, pg_catalog.clock_timestamp() + pg_catalog.make_interval(months => m)) p
    WHERE p IS NOT NULL
$$;

-- Not SECURITY DEFINER (it runs with its caller's rights, the owner's), but
-- named the same way so that no function of the schema trusts pg_temp.
ALTER FUNCTION kyc.retention(timestamptz, boolean) SET search_path = pg_catalog, pg_temp;
