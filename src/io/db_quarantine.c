/* Quarantined deliveries and kycd replay's reads and record (see
 * db_quarantine.h). Must never decide what a delivery means, nor format
 * input into SQL: every statement is fixed text with $n parameters. */
#include "io/db_quarantine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/vocab.h"
#include "io/db_internal.h"

/* Append to kyc.quarantine, and mark the user for a check ($9 the
 * needs_check_reason, NULL: this kind has no state to check), as
 * SQL_WRITE (io/db_ingest_sql.c) does for a held report. $1 kind, $2 user
 * (NULL: none could be read), $3 body (hex), $4 sha256 (hex), $5 remote
 * addr, $6 request id, $7 received at (NULL: now), $8 reason. Returns the
 * quarantine id, or no row when (request id, received at) is stored
 * already. */
static const char SQL_QUARANTINE[] =
    "WITH q AS (INSERT INTO kyc.quarantine (received_at, kind, external_user_id, body, "
    "    body_sha256, remote_addr, request_id, reason) "
    "  VALUES (coalesce($7::timestamptz, clock_timestamp()), $1, $2, decode($3, 'hex'), "
    "    decode($4, 'hex'), $5::inet, $6, $8) "
    "  ON CONFLICT (request_id, received_at) DO NOTHING "
    "  RETURNING id, received_at, external_user_id), "
    "m AS (INSERT INTO kyc.verifications AS v (external_user_id, source, first_seen_at, "
    "    needs_check_reason, next_check_at, last_webhook_at) "
    "  SELECT q.external_user_id, 'webhook', q.received_at, $9, q.received_at, q.received_at "
    "  FROM q WHERE q.external_user_id IS NOT NULL AND $9::text IS NOT NULL "
    "  ON CONFLICT (external_user_id) DO UPDATE SET "
    "    needs_check_reason = EXCLUDED.needs_check_reason, "
    "    next_check_at = EXCLUDED.next_check_at, "
    "    last_webhook_at = greatest(v.last_webhook_at, EXCLUDED.last_webhook_at) "
    "  RETURNING 1) "
    "SELECT q.id, (SELECT count(*) FROM m) FROM q";

static int hex_encode(kbuf *out, const void *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *b = p;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char two[2] = {digits[b[i] >> 4], digits[b[i] & 15]};
        rc = kbuf_append(out, two, 2);
    }
    return rc;
}

static int hex_value(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int hex_decode(kbuf *out, const char *hex)
{
    kbuf_reset(out);
    size_t n = strlen(hex);
    for (size_t i = 0; i + 1 < n; i += 2) {
        int hi = hex_value(hex[i]), lo = hex_value(hex[i + 1]);
        if (hi < 0 || lo < 0)
            return KERR_INVALID;
        unsigned char c = (unsigned char)(hi << 4 | lo);
        if (kbuf_append(out, &c, 1) != 0)
            return KERR_NOMEM;
    }
    return 0;
}

int db_quarantine(db *d, const kyc_delivery *dl, db_ingest_result *res, kerr *err)
{
    kbuf body;
    kbuf_init(&body);
    if (hex_encode(&body, dl->body, dl->body_len) != 0) {
        kbuf_deinit(&body);
        return kerr_set(err, KERR_NOMEM, "out of memory");
    }
    char received[48];
    if (dl->received_us > 0)
        db_time_param(dl->received_us, received, sizeof received);
    /* Only a KYC report has a state P100 can be asked about (Get KYC
     * Status); the other kinds' users are not marked. */
    int mark = dl->kind == KYC_KIND_KYC_STATUS && dl->external_user_id[0];
    const char *vals[9] = {
        kyc_kind_name(dl->kind),
        dl->external_user_id[0] ? dl->external_user_id : NULL,
        kbuf_str(&body),
        dl->body_sha256,
        dl->remote_addr[0] ? dl->remote_addr : NULL,
        dl->request_id,
        dl->received_us > 0 ? received : NULL,
        dl->quarantine[0] ? dl->quarantine : "not applied",
        mark ? kyc_reason_name(KYC_R_INVALID_BODY) : NULL,
    };
    PGresult *r = db_exec(d, SQL_QUARANTINE, 9, vals);
    kbuf_deinit(&body);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = db_fail(d, r, "storing a quarantined delivery", err);
        PQclear(r);
        return rc;
    }
    memset(res, 0, sizeof *res);
    res->outcome = KYC_OUTCOME_QUARANTINED;
    res->reason = KYC_R_INVALID_BODY;
    res->event_id = PQntuples(r) == 1 ? atoll(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    return 0;
}

/* Both tables in received order, events first at the same instant. $1
 * since, $2 until (NULL: no end), $3 user (NULL: all). */
static const char SQL_REPLAY_CURSOR[] =
    "DECLARE kycd_replay NO SCROLL CURSOR FOR "
    "SELECT * FROM ("
    "  SELECT false AS quarantined, e.id, e.id AS stored, "
    "    (extract(epoch FROM e.received_at) * 1000000)::bigint AS us, e.received_at, e.kind, "
    "    e.external_user_id, coalesce(e.request_id, ''), coalesce(host(e.remote_addr), ''), '', "
    "    encode(convert_to(e.body::text, 'UTF8'), 'hex') "
    "  FROM kyc.webhook_events e WHERE e.received_at >= $1::timestamptz "
    "    AND ($2::timestamptz IS NULL OR e.received_at < $2::timestamptz) "
    "    AND ($3::text IS NULL OR e.external_user_id = $3::text) "
    "  UNION ALL "
    "  SELECT true, q.id, coalesce((SELECT e.id FROM kyc.webhook_events e "
    "      WHERE e.request_id = q.request_id AND e.received_at = q.received_at), 0), "
    "    (extract(epoch FROM q.received_at) * 1000000)::bigint, q.received_at, q.kind, "
    "    coalesce(q.external_user_id, ''), q.request_id, coalesce(host(q.remote_addr), ''), "
    "    q.reason, encode(q.body, 'hex') "
    "  FROM kyc.quarantine q WHERE q.received_at >= $1::timestamptz "
    "    AND ($2::timestamptz IS NULL OR q.received_at < $2::timestamptz) "
    "    AND ($3::text IS NULL OR q.external_user_id = $3::text)) s "
    "ORDER BY 5, 1, 2";

static void copy_col(char *dst, size_t cap, PGresult *r, int row, int col)
{
    snprintf(dst, cap, "%s", PQgetvalue(r, row, col));
}

int db_replay_each(db *d, const char *since, const char *until, const char *user, db_replay_fn fn,
                   void *ctx, kerr *err)
{
    const char *vals[3] = {since, until, user};
    db_replay_row row;
    memset(&row, 0, sizeof row);
    kbuf_init(&row.body);
    int rc = db_exec_ok(d, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL,
                        "replay: begin", err);
    if (rc == 0)
        rc = db_exec_ok(d, SQL_REPLAY_CURSOR, 3, vals, "replay: reading stored deliveries", err);
    while (rc == 0) {
        PGresult *r = db_exec(d, "FETCH 500 FROM kycd_replay", 0, NULL);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rc = db_fail(d, r, "replay: reading stored deliveries", err);
            PQclear(r);
            break;
        }
        int n = PQntuples(r);
        for (int i = 0; i < n && rc == 0; i++) {
            row.quarantined = PQgetvalue(r, i, 0)[0] == 't';
            row.id = atoll(PQgetvalue(r, i, 1));
            row.stored = atoll(PQgetvalue(r, i, 2));
            row.received_us = atoll(PQgetvalue(r, i, 3));
            int kind = vocab_value(&VOCAB_KIND, PQgetvalue(r, i, 5));
            row.kind = kind < 0 ? KYC_KIND_COUNT : (enum kyc_kind)kind;
            copy_col(row.external_user_id, sizeof row.external_user_id, r, i, 6);
            copy_col(row.request_id, sizeof row.request_id, r, i, 7);
            copy_col(row.remote_addr, sizeof row.remote_addr, r, i, 8);
            copy_col(row.reason, sizeof row.reason, r, i, 9);
            if (hex_decode(&row.body, PQgetvalue(r, i, 10)) != 0)
                rc = kerr_set(err, KERR_DB, "replay: a stored body could not be read");
            else
                rc = fn(ctx, &row, err);
        }
        PQclear(r);
        if (n == 0)
            break;
    }
    if (rc == 0)
        rc = db_exec_ok(d, "COMMIT", 0, NULL, "replay: end", err);
    else
        db_rollback_quietly(d);
    kbuf_deinit(&row.body);
    return rc;
}

static const char SQL_REPLAY_RECORD[] =
    "INSERT INTO kyc.replay_runs (started_at, os_user, host, since, until, external_user_id, "
    "  dry_run, examined, applied, repeats, still_quarantined, event_ids) "
    "VALUES ($1::timestamptz, $2, $3, $4::timestamptz, $5::timestamptz, $6, $7::boolean, "
    "  $8::integer, $9::integer, $10::integer, $11::integer, $12::bigint[]) RETURNING id";

int db_replay_record(db *d, const db_replay_run *run, long long *id, kerr *err)
{
    kbuf ids;
    kbuf_init(&ids);
    int rc = 0;
    for (int i = 0; i < run->nevents && rc == 0; i++) {
        char v[24];
        snprintf(v, sizeof v, "%lld", run->event_ids[i]);
        rc = db_array_add(&ids, v, (size_t)-1);
    }
    if (rc == 0)
        rc = db_array_done(&ids);
    if (rc != 0) {
        kbuf_deinit(&ids);
        return kerr_set(err, KERR_NOMEM, "out of memory");
    }
    char n[4][16];
    snprintf(n[0], sizeof n[0], "%d", run->examined);
    snprintf(n[1], sizeof n[1], "%d", run->applied);
    snprintf(n[2], sizeof n[2], "%d", run->repeats);
    snprintf(n[3], sizeof n[3], "%d", run->still_quarantined);
    const char *vals[12] = {run->started_at,
                            run->os_user,
                            run->host,
                            run->since,
                            run->until,
                            run->user,
                            run->dry_run ? "true" : "false",
                            n[0],
                            n[1],
                            n[2],
                            n[3],
                            kbuf_str(&ids)};
    PGresult *r = db_exec(d, SQL_REPLAY_RECORD, 12, vals);
    kbuf_deinit(&ids);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        rc = db_fail(d, r, "recording the replay run", err);
        PQclear(r);
        return rc;
    }
    *id = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}
