-- kycd schema, version 4: deliveries replayed from the local spool are
-- stored exactly once. Every delivery carries a random 128-bit request id;
-- a replay after a crash finds its earlier copy by it.
CREATE UNIQUE INDEX webhook_events_request_idx ON kyc.webhook_events (request_id);
COMMENT ON COLUMN kyc.webhook_events.request_id IS 'unique per delivery: the requestId of the HTTP answer and log line';
COMMENT ON COLUMN kyc.webhook_events.received_at IS 'when kycd accepted the delivery (for one replayed from the spool: when it was spooled, not when it reached the database)';
