/* The statements of the ingest write path (see db_ingest.c, which runs
 * them): fixed text with $n parameters, set-based (one array per column,
 * one element per delivery of the round, unnest ... WITH ORDINALITY), with
 * the reasons for their shape. Must never hold anything but constant
 * statement texts: no input is ever formatted into them. */
#include "io/db_ingest_internal.h"

/* The KYC users' rows, created by their first delivery (then locked by
 * DB_LOCK_USERS, io/db.c). $1 users (NULL for deliveries of the other
 * kinds). */
static const char SQL_ENSURE[] =
    "INSERT INTO kyc.verifications (external_user_id, source) "
    "SELECT u, 'webhook' FROM unnest($1::text[]) AS u WHERE u IS NOT NULL "
    "ON CONFLICT (external_user_id) DO NOTHING";

/* Other kinds have no state row to lock: serialize per (kind, user), in
 * the order given (sorted by the caller). $1 users, $2 kinds (NULL: KYC). */
static const char SQL_OTHER_LOCK[] =
    "SELECT pg_advisory_xact_lock(hashtextextended(i.kind || ':' || i.u, 0)) "
    "FROM unnest($1::text[], $2::text[]) AS i(u, kind) WHERE i.kind IS NOT NULL";

/* For each delivery, the earliest identical one within the dedup window,
 * and the user's current POA status. It must be its own statement, run
 * after the locks are held: under READ COMMITTED each statement sees what
 * was committed when it started, so only a statement that starts after
 * the lock sees the delivery that held it. Each delivery's window ends at
 * now() (the transaction's start) unless it was received earlier (spool
 * replays). The same bound for the whole round, from its oldest receipt
 * ($6), is a parameter rather than a column: PostgreSQL prunes the
 * partitions of kyc.webhook_events wholly before it when the statement
 * starts, instead of opening every partition's index (years of them) for
 * every delivery. The identical deliveries are found first (OFFSET 0: by
 * webhook_events_dedup_idx, a few rows), then the earliest taken: "ORDER
 * BY id LIMIT 1" let the generic plan walk the primary key from the
 * oldest event looking for a match, which for a user with none (every
 * new delivery) read the whole window, 2 ms and 4,400 buffers a lookup.
 * $1 users, $2 body sha256 hex, $3 kinds, $4 received at (NULL: now), $5
 * the window in ms, $6 the oldest of $4 (NULL: now). */
static const char SQL_PRIOR[] =
    "SELECT i.ord, "
    "  (SELECT min(d.id) FROM (SELECT e.id FROM kyc.webhook_events e "
    "     WHERE e.external_user_id = i.u AND e.body_sha256 = decode(i.sha, 'hex') "
    "     AND e.kind = i.kind AND e.received_at > coalesce($6::timestamptz, now()) "
    "       - make_interval(secs => $5::float8 / 1000) "
    "     AND e.received_at > coalesce(i.at, now()) - make_interval(secs => $5::float8 / 1000) "
    "     OFFSET 0) d), "
    "  coalesce((SELECT p.status FROM kyc.poa_statuses p WHERE p.external_user_id = i.u), '') "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) "
    "  WITH ORDINALITY AS i(u, sha, kind, at, ord)";

/* Deliveries replayed from the spool may already be stored (the drainer
 * crashed between COMMIT and its checkpoint): request ids are unique.
 * $1 request ids (NULL: not a replay). */
static const char SQL_REPLAYED[] = "SELECT i.ord, e.id, e.repeat_of "
                                   "FROM unnest($1::text[]) WITH ORDINALITY AS i(rid, ord) "
                                   "JOIN kyc.webhook_events e ON e.request_id = i.rid";

/* Every write of a round in one statement. Per delivery: $1 user, $2 kind,
 * $3 body, $4 sha256 hex, $5 remote addr, $6 request id, $7 repeat_of,
 * $8 outcome, $9 reason, $10 unknown fields (a text[] literal), $11
 * received at (NULL: now), $12 what core decided (W_*: apply the KYC
 * state, hold it and owe a check, leave it unchanged, apply a POA status,
 * only record the event; NULL: nothing to write), $13..$15 the new state
 * (verification, attempt, rejection reason; $13 the status for poa).
 * Within a round (user, kind) is unique: each delivery's event is found
 * again by it. A KYC row created by this very delivery takes the
 * delivery's time as its first sight, so that first_seen_at, received_at
 * and changed_at agree. A new word from P100 (applied or held) about a
 * user flagged for a person brings the user back under the reconciler
 * (attention_reason and failures cleared); a repeat is no new word.
 * Returns (ordinal, event id) per delivery. */
static const char SQL_WRITE[] =
    "WITH i AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
    "    $5::text[], $6::text[], $7::bigint[], $8::text[], $9::text[], $10::text[], "
    "    $11::timestamptz[], $12::text[], $13::text[], $14::text[], $15::text[]) "
    "  WITH ORDINALITY AS i(u, kind, body, sha, addr, rid, rep, outcome, reason, unknown, at, "
    "    act, vs, ast, rr, ord) WHERE act IS NOT NULL), "
    "ev AS (INSERT INTO kyc.webhook_events (received_at, kind, external_user_id, body, "
    "    body_sha256, remote_addr, request_id, repeat_of, outcome, outcome_reason, "
    "    unknown_fields) "
    "  SELECT coalesce(i.at, clock_timestamp()), i.kind, i.u, i.body::jsonb, decode(i.sha, 'hex'), "
    "    i.addr::inet, i.rid, i.rep, i.outcome, i.reason, i.unknown::text[] FROM i ORDER BY i.ord "
    "  RETURNING id, received_at, external_user_id, kind), "
    "x AS (SELECT i.*, ev.id, ev.received_at FROM i "
    "  JOIN ev ON ev.external_user_id = i.u AND ev.kind = i.kind), "
    "old AS (SELECT i.u, o.* FROM i CROSS JOIN LATERAL (SELECT v.verification_status, "
    "    v.attempt_status, v.rejection_reason FROM kyc.verifications v "
    "    WHERE v.external_user_id = i.u OFFSET 0) o WHERE i.act = 'apply'), "
    "up AS (UPDATE kyc.verifications v SET "
    "    verification_status = CASE WHEN x.act = 'apply' THEN x.vs "
    "      ELSE v.verification_status END, "
    "    attempt_status = CASE WHEN x.act = 'apply' THEN x.ast ELSE v.attempt_status END, "
    "    rejection_reason = CASE WHEN x.act = 'apply' THEN nullif(x.rr, '') "
    "      ELSE v.rejection_reason END, "
    "    source = CASE WHEN x.act = 'apply' THEN 'webhook' ELSE v.source END, "
    "    updated_at = CASE WHEN x.act = 'apply' THEN x.received_at ELSE v.updated_at END, "
    "    last_event_id = CASE WHEN x.act = 'apply' THEN x.id ELSE v.last_event_id END, "
    "    needs_check_reason = CASE WHEN x.act = 'hold' THEN x.reason "
    "      ELSE v.needs_check_reason END, "
    "    next_check_at = CASE WHEN x.act = 'hold' THEN x.received_at ELSE v.next_check_at END, "
    "    attention_reason = CASE WHEN x.act IN ('apply', 'hold') THEN NULL "
    "      ELSE v.attention_reason END, "
    "    failures = CASE WHEN x.act IN ('apply', 'hold') THEN 0 ELSE v.failures END, "
    "    first_seen_at = CASE WHEN x.act IN ('apply', 'hold') AND v.last_webhook_at IS NULL "
    "      AND v.source = 'webhook' AND v.verification_status IS NULL THEN x.received_at "
    "      ELSE v.first_seen_at END, "
    "    last_webhook_at = x.received_at "
    "  FROM x WHERE v.external_user_id = x.u AND x.act IN ('apply', 'hold', 'unchanged')), "
    "ch AS (INSERT INTO kyc.status_changes (external_user_id, changed_at, source, reason, "
    "    old_verification_status, new_verification_status, old_attempt_status, "
    "    new_attempt_status, old_rejection_reason, new_rejection_reason, event_id) "
    "  SELECT x.u, x.received_at, 'webhook', x.reason, old.verification_status, x.vs, "
    "    old.attempt_status, x.ast, old.rejection_reason, nullif(x.rr, ''), x.id "
    "  FROM x JOIN old ON old.u = x.u WHERE x.act = 'apply'), "
    "poa AS (INSERT INTO kyc.poa_statuses (external_user_id, status, updated_at, last_event_id) "
    "  SELECT x.u, x.vs, x.received_at, x.id FROM x WHERE x.act = 'poa' "
    "  ON CONFLICT (external_user_id) DO UPDATE SET status = EXCLUDED.status, "
    "    updated_at = EXCLUDED.updated_at, last_event_id = EXCLUDED.last_event_id) "
    "SELECT ord, id FROM x";

/* The plans of the statements above, set for the batch's transaction
 * only (the pooled session is left as it was):
 * - generic plans: a custom plan sees each array's length and estimates
 *   better than the generic plan's guess of 10 elements, so PostgreSQL's
 *   plan cache judged the generic plan dearer and planned every execution
 *   anew; planning SQL_WRITE (six CTEs over partitioned tables) cost more
 *   than running it (the database's CPU per delivery: 808-863 µs, against
 *   456-461 µs on generic plans, at 8 connections).
 * - no sequential scans: every lookup here is by index, whatever the
 *   statistics say. Without them (a new monthly partition, a table not yet
 *   analyzed) the lookup of 64 request ids became a scan of each
 *   partition, 11-36 ms a batch against about 0.5 ms. */
static const char SQL_PLANS[] = "SELECT set_config('plan_cache_mode', 'force_generic_plan', true), "
                                "set_config('enable_seqscan', 'off', true)";
const db_stmt DB_INGEST_STMTS[DB_INGEST_COUNT] = {
    [DB_INGEST_BEGIN] = {"kycd_begin", "BEGIN", 0},
    [DB_INGEST_PLANS] = {"kycd_plans", SQL_PLANS, 0},
    [DB_INGEST_ENSURE] = {"kycd_ensure", SQL_ENSURE, 1},
    [DB_INGEST_OTHER_LOCK] = {"kycd_other_lock", SQL_OTHER_LOCK, 2},
    [DB_INGEST_PRIOR] = {"kycd_prior", SQL_PRIOR, 6},
    [DB_INGEST_REPLAYED] = {"kycd_replayed", SQL_REPLAYED, 1},
    [DB_INGEST_WRITE] = {"kycd_write", SQL_WRITE, 15},
    [DB_INGEST_COMMIT] = {"kycd_commit", "COMMIT", 0},
};
