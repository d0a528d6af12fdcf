-- kycd schema, version 16: the change feed (docs/feed.md). The partner's
-- other systems act when a user's state changes (VERIFIED: open the
-- account; EXPIRED: restrict it) without polling kyc.verifications:
--
--   * every row inserted into kyc.status_changes sends a NOTIFY on the
--     channel kyc_status_changes, in the inserting transaction (listeners
--     get it at commit, never for a rolled-back change), with a JSON
--     payload naming the user, the change and the old and new state. A
--     NOTIFY is a wake-up, not a delivery: a listener that was not
--     connected misses it;
--   * the publication kyc_status_changes publishes every insert into
--     kyc.status_changes, as the parent table (publish_via_partition_root),
--     so its monthly partitions, present and future (kyc.create_partition),
--     and the DEFAULT one are all covered without changing the publication.
--     A logical-replication consumer (a subscriber database, Debezium,
--     pg_recvlogical, `kycd changes`) reads through a replication slot:
--     every committed change exactly once, in commit order, whatever order
--     the ids were drawn in.
--
-- The consumers' role (LOGIN REPLICATION, SELECT on kyc.status_changes) is
-- made by the operator, not here: REPLICATION needs a superuser
-- (docs/operations.md, "The change feed").

CREATE FUNCTION kyc.notify_status_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    payload text;
BEGIN
    payload := json_build_object(
        'change_id', NEW.id,
        'external_user_id', NEW.external_user_id,
        'changed_at', NEW.changed_at,
        'source', NEW.source,
        'reason', NEW.reason,
        'old_verification_status', NEW.old_verification_status,
        'new_verification_status', NEW.new_verification_status,
        'old_attempt_status', NEW.old_attempt_status,
        'new_attempt_status', NEW.new_attempt_status)::text;
    -- NOTIFY refuses payloads of 8000 bytes or more; a user id is at most
    -- 128 characters, but the statuses are stored as P100 sent them. The
    -- short form names the change; the consumer reads the row.
    IF octet_length(payload) >= 7900 THEN
        payload := json_build_object('change_id', NEW.id,
                                     'external_user_id', NEW.external_user_id,
                                     'changed_at', NEW.changed_at,
                                     'source', NEW.source,
                                     'truncated', true)::text;
    END IF;
    PERFORM pg_notify('kyc_status_changes', payload);
    RETURN NULL;
END $$;
COMMENT ON FUNCTION kyc.notify_status_change() IS 'trigger: NOTIFY kyc_status_changes with the inserted change as JSON (docs/feed.md), sent at commit';

-- Row triggers of a partitioned table are cloned onto every partition,
-- including those created later.
CREATE TRIGGER status_changes_notify AFTER INSERT ON kyc.status_changes
    FOR EACH ROW EXECUTE FUNCTION kyc.notify_status_change();

CREATE PUBLICATION kyc_status_changes FOR TABLE kyc.status_changes
    WITH (publish = 'insert', publish_via_partition_root = true);
COMMENT ON PUBLICATION kyc_status_changes IS 'every insert into kyc.status_changes (all partitions, as the parent), for logical-replication consumers of the change feed (docs/feed.md)';
