/* Integration tests for io/db against a real PostgreSQL (TEST_PG, a
 * superuser on a throwaway server): migrations, the delivery write path and
 * its state rules, concurrent deliveries, the append-only tables, the
 * analyst role, the views and the connection pool. Nothing is mocked: every
 * test gets a fresh database of its own (testlib_fresh_db), deliveries are
 * built by payload_parse from real JSON bodies, and the test reads the
 * tables back with its own libpq connection.
 *
 * cmocka asserts only from the main thread (they longjmp): worker threads
 * and forked children record what happened and the main thread asserts. */
#include "testlib.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "core/kyc.h"
#include "core/payload.h"
#include "core/policy.h"
#include "core/token.h"
#include "io/db.h"
#include "io/db_ingest.h"
#include "io/db_pool.h"
#include "io/db_reconcile.h"
#include "io/migrate.h"
#include "io/migrations.h"

#define TIMEOUT_MS 10000
#define END ((const char *)NULL) /* ends the parameter list of q() and friends */

static const db_ingest_opts OPTS = {.dedup_window_ms = 600000, .reorder_window_ms = 300000};

typedef struct fixture {
    char conninfo[1024]; /* the fresh database */
    char dbname[64];
    db *d;      /* kycd's connection (migrated unless the test says otherwise) */
    PGconn *pq; /* the test's own superuser connection, to read tables back */
} fixture;

/* ------------------------------------------------------------- helpers */

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* NOTICEs of the statements the tests expect */
}

static PGconn *pq_connect(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
        PQfinish(c);
        fail_msg("cannot connect (%s): %s", conninfo, msg);
    }
    PQsetNoticeProcessor(c, quiet, NULL);
    return c;
}

static db *connect_db(const char *conninfo, const char *app)
{
    db_opts o = {
        .conninfo = conninfo, .password = NULL, .timeout_ms = TIMEOUT_MS, .application_name = app};
    db *d = NULL;
    kerr e;
    kerr_clear(&e);
    int rc = db_connect(&d, &o, &e);
    if (rc != 0)
        fail_msg("db_connect: %s (%d)", e.msg, rc);
    return d;
}

static int collect_params(va_list ap, const char **p, int cap)
{
    int n = 0;
    for (const char *s; (s = va_arg(ap, const char *)) != NULL;) {
        if (n == cap)
            fail_msg("too many query parameters");
        p[n++] = s;
    }
    return n;
}

/* The single value of a one-row, one-column query ("<null>" for NULL).
 * Results live in a small ring of buffers, so a few can be compared in one
 * expression. Parameters: const char * values ended by END. */
static const char *q(PGconn *c, const char *sql, ...)
{
    static char ring[8][4096];
    static unsigned next;
    const char *p[16];
    va_list ap;
    va_start(ap, sql);
    int n = collect_params(ap, p, 16);
    va_end(ap);
    PGresult *r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) != 1) {
        char msg[600];
        snprintf(msg, sizeof msg, "status %s, %d rows: %s", PQresStatus(PQresultStatus(r)),
                 PQntuples(r), PQresultErrorMessage(r));
        PQclear(r);
        fail_msg("query failed: %s\n  %s", sql, msg);
    }
    char *out = ring[next++ % 8];
    snprintf(out, sizeof ring[0], "%s", PQgetisnull(r, 0, 0) ? "<null>" : PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

/* Run a statement expected to fail; returns its SQLSTATE ("" when it
 * succeeded, which the caller then reports). */
static const char *q_fails(PGconn *c, const char *sql, ...)
{
    static char state[8];
    const char *p[16];
    va_list ap;
    va_start(ap, sql);
    int n = collect_params(ap, p, 16);
    va_end(ap);
    PGresult *r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    snprintf(state, sizeof state, "%s",
             (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) ? ""
             : s                                               ? s
                                                               : "?????");
    PQclear(r);
    return state;
}

/* Run a statement that must succeed (no parameters, may be several). */
static void q_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        PQclear(r);
        fail_msg("statement failed: %s\n  %s", sql, msg);
    }
    PQclear(r);
}

static const char *lld(long long v)
{
    static char ring[8][24];
    static unsigned next;
    char *out = ring[next++ % 8];
    snprintf(out, sizeof ring[0], "%lld", v);
    return out;
}

/* A delivery as the handler builds it: parsed from the body, with the
 * body's digest, a peer address and a request id. The body is borrowed. */
static void delivery(kyc_delivery *dl, enum kyc_kind kind, const char *body)
{
    static int reqno;
    memset(dl, 0, sizeof *dl);
    size_t len = strlen(body);
    kerr e;
    kerr_clear(&e);
    if (payload_parse(kind, body, len, dl, &e) != 0)
        fail_msg("payload_parse refused %s: %s", body, e.msg);
    dl->body = body;
    dl->body_len = len;
    token_sha256_hex(body, len, dl->body_sha256);
    snprintf(dl->remote_addr, sizeof dl->remote_addr, "198.51.100.23");
    /* Request ids are unique in kyc.webhook_events: threads share the counter. */
    snprintf(dl->request_id, sizeof dl->request_id, "req%08d",
             __atomic_add_fetch(&reqno, 1, __ATOMIC_SEQ_CST));
}

static db_ingest_result ingest_dl(db *d, const kyc_delivery *dl, const db_ingest_opts *o)
{
    db_ingest_result res;
    memset(&res, 0, sizeof res);
    kerr e;
    kerr_clear(&e);
    int rc = db_ingest(d, dl, o, &res, &e);
    if (rc != 0)
        fail_msg("db_ingest(%s) failed: %s (%d)", dl->body, e.msg, rc);
    assert_true(res.event_id > 0);
    assert_non_null(kyc_outcome_name(res.outcome));
    assert_non_null(kyc_reason_name(res.reason));
    return res;
}

static db_ingest_result ingest(db *d, enum kyc_kind kind, const char *body, const db_ingest_opts *o)
{
    kyc_delivery dl;
    delivery(&dl, kind, body);
    return ingest_dl(d, &dl, o);
}

static void kyc_json(char *buf, size_t cap, const char *user, const char *v, const char *a,
                     const char *reason)
{
    if (reason)
        snprintf(
            buf, cap,
            "{\"externalUserId\":\"%s\",\"verificationStatus\":\"%s\",\"attemptStatus\":\"%s\","
            "\"rejectionReason\":\"%s\"}",
            user, v, a, reason);
    else
        snprintf(
            buf, cap,
            "{\"externalUserId\":\"%s\",\"verificationStatus\":\"%s\",\"attemptStatus\":\"%s\"}",
            user, v, a);
}

/* One KYC status delivery for `user`. */
static db_ingest_result kyc(db *d, const char *user, const char *v, const char *a,
                            const char *reason, const db_ingest_opts *o)
{
    char body[1024];
    kyc_json(body, sizeof body, user, v, a, reason);
    return ingest(d, KYC_KIND_KYC_STATUS, body, o);
}

/* `res` may be a call (evaluated once). */
#define assert_result(res, want_outcome, want_reason)                                              \
    do {                                                                                           \
        db_ingest_result res_once_ = (res);                                                        \
        assert_string_equal(kyc_outcome_name(res_once_.outcome), (want_outcome));                  \
        assert_string_equal(kyc_reason_name(res_once_.reason), (want_reason));                     \
    } while (0)

/* The user's history as "reason:oldV/oldA>newV/newA ..." in order. */
static const char *changes(PGconn *c, const char *user)
{
    return q(c,
             "SELECT coalesce(string_agg(format('%s:%s/%s>%s/%s', reason, "
             "  coalesce(old_verification_status, '-'), coalesce(old_attempt_status, '-'), "
             "  coalesce(new_verification_status, '-'), coalesce(new_attempt_status, '-')), "
             "  ' ' ORDER BY id), '') FROM kyc.status_changes WHERE external_user_id = $1",
             user, END);
}

/* The user's current state as "V/A/reason|source|needs_check_reason". */
static const char *state_of(PGconn *c, const char *user)
{
    return q(c,
             "SELECT format('%s/%s/%s|%s|%s', coalesce(verification_status, '-'), "
             "  coalesce(attempt_status, '-'), coalesce(rejection_reason, '-'), source, "
             "  coalesce(needs_check_reason, '-')) "
             "FROM kyc.verifications WHERE external_user_id = $1",
             user, END);
}

static const char *count_where(PGconn *c, const char *table_and_where, const char *param)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table_and_where);
    return q(c, sql, param, END);
}

/* Terminate the backends of this database with that application_name and
 * wait until they are gone. */
static void terminate_app(PGconn *c, const char *app)
{
    const char *n = q(c,
                      "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                      "WHERE application_name = $1 AND datname = current_database()",
                      app, END);
    if (strcmp(n, "0") == 0)
        fail_msg("no backend with application_name %s", app);
    for (int i = 0; i < 500; i++) {
        if (strcmp(q(c,
                     "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
                     "AND datname = current_database()",
                     app, END),
                   "0") == 0)
            return;
        usleep(10000); /* test code: polling pg_stat_activity is the only way */
    }
    fail_msg("backend of %s still there 5 s after pg_terminate_backend", app);
}

/* ------------------------------------------------------------- fixture */

static int setup_common(void **state, int migrate)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->conninfo, sizeof f->conninfo, "%s", testlib_fresh_db("kycd_it_db"));
    const char *name = NULL;
    for (const char *s = f->conninfo; (s = strstr(s, "dbname=")) != NULL; s++)
        name = s + strlen("dbname=");
    assert_non_null(name);
    snprintf(f->dbname, sizeof f->dbname, "%s", name);
    f->d = connect_db(f->conninfo, "kycd-test");
    if (migrate) {
        int applied = -1;
        kerr e;
        kerr_clear(&e);
        if (db_migrate(f->d, &applied, &e) != 0)
            fail_msg("db_migrate: %s", e.msg);
        assert_int_equal(applied, (int)kycd_migrations_count);
    }
    f->pq = pq_connect(f->conninfo);
    *state = f;
    return 0;
}

static int setup_migrated(void **state)
{
    return setup_common(state, 1);
}

static int setup_empty(void **state)
{
    return setup_common(state, 0);
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f == NULL)
        return 0;
    db_free(f->d);
    PQfinish(f->pq);
    /* The name is ours (prefix, pid, number), never input. */
    PGconn *c = pq_connect(testlib_pg());
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", f->dbname);
    PQclear(PQexec(c, sql));
    PQfinish(c);
    free(f);
    return 0;
}

/* ---------------------------------------------------------- 1. migrations */

static void test_migrate_fresh_then_noop(void **state)
{
    fixture *f = *state;
    kerr e;
    int version = -1;
    assert_true(kycd_migrations_count >= 2);

    kerr_clear(&e);
    assert_int_equal(db_check_schema(f->d, &e), KERR_STATE);
    assert_non_null(strstr(e.msg, "kycd migrate"));
    assert_int_equal(db_schema_version(f->d, &version, &e), 0);
    assert_int_equal(version, 0);

    int applied = -1;
    kerr_clear(&e);
    if (db_migrate(f->d, &applied, &e) != 0)
        fail_msg("db_migrate: %s", e.msg);
    assert_int_equal(applied, (int)kycd_migrations_count);

    applied = -1;
    assert_int_equal(db_migrate(f->d, &applied, &e), 0);
    assert_int_equal(applied, 0);

    kerr_clear(&e);
    assert_int_equal(db_check_schema(f->d, &e), 0);
    assert_int_equal(db_schema_version(f->d, &version, &e), 0);
    assert_int_equal(version, kycd_migrations[kycd_migrations_count - 1].version);

    /* Exactly the embedded migrations, each once, with their checksums. */
    char want[2048] = "";
    for (size_t i = 0; i < kycd_migrations_count; i++) {
        size_t used = strlen(want);
        snprintf(want + used, sizeof want - used, "%s%d:%s:%s", i ? " " : "",
                 kycd_migrations[i].version, kycd_migrations[i].name, kycd_migrations[i].sha256);
    }
    assert_string_equal(q(f->pq,
                          "SELECT string_agg(format('%s:%s:%s', version, name, sha256), ' ' "
                          "ORDER BY version) FROM kyc.schema_migrations",
                          END),
                        want);
    /* The migration lock is not left behind. */
    /* (Of this database: tests running beside it take their own.) */
    assert_string_equal(
        q(f->pq,
          "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
          "(SELECT oid FROM pg_database WHERE datname = current_database())",
          END),
        "0");
}

static void test_migrate_refuses_tampered(void **state)
{
    fixture *f = *state;
    assert_int_equal(kycd_migrations[0].version, 1);
    q_ok(f->pq, "UPDATE kyc.schema_migrations SET sha256 = repeat('0', 64) WHERE version = 1");

    int applied = -7;
    kerr e;
    kerr_clear(&e);
    assert_int_equal(db_migrate(f->d, &applied, &e), KERR_STATE);
    assert_int_equal(applied, -7); /* outputs untouched on failure */
    if (strstr(e.msg, kycd_migrations[0].name) == NULL)
        fail_msg("message does not name %s: %s", kycd_migrations[0].name, e.msg);
    /* (Of this database: tests running beside it take their own.) */
    assert_string_equal(
        q(f->pq,
          "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
          "(SELECT oid FROM pg_database WHERE datname = current_database())",
          END),
        "0");
}

/* Child process: connect and migrate; exit status = migrations applied, or
 * 100 on failure. No cmocka here. */
static void migrate_child(const char *conninfo, int gate)
{
    char c;
    if (read(gate, &c, 1) < 0) /* returns 0 when the parent closes the pipe */
        _exit(101);
    db_opts o = {
        .conninfo = conninfo, .timeout_ms = TIMEOUT_MS, .application_name = "kycd-migrate"};
    db *d = NULL;
    kerr e;
    kerr_clear(&e);
    int applied = -1;
    if (db_connect(&d, &o, &e) != 0 || db_migrate(d, &applied, &e) != 0) {
        fprintf(stderr, "child %d: %s\n", (int)getpid(), e.msg);
        db_free(d);
        _exit(100);
    }
    db_free(d);
    _exit(applied);
}

static void test_migrate_two_processes(void **state)
{
    fixture *f = *state;
    int gate[2];
    assert_int_equal(pipe(gate), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            close(gate[1]);
            migrate_child(f->conninfo, gate[0]);
        }
    }
    close(gate[0]);
    close(gate[1]); /* both start now */

    int total = 0;
    for (int i = 0; i < 2; i++) {
        int st = 0;
        pid_t got = 0;
        for (int t = 0; t < 6000 && (got = waitpid(kids[i], &st, WNOHANG)) == 0; t++)
            usleep(10000);
        if (got == 0) {
            kill(kids[i], SIGKILL);
            waitpid(kids[i], &st, 0);
            fail_msg("migrating child %d did not finish within 60 s", i);
        }
        assert_true(WIFEXITED(st));
        if (WEXITSTATUS(st) >= 100)
            fail_msg("migrating child %d failed (exit %d)", i, WEXITSTATUS(st));
        total += WEXITSTATUS(st);
    }
    /* One of them applied everything, the other found nothing to do. */
    assert_int_equal(total, (int)kycd_migrations_count);
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.schema_migrations", END),
                        lld((long long)kycd_migrations_count));
    assert_string_equal(q(f->pq, "SELECT count(DISTINCT version) FROM kyc.schema_migrations", END),
                        lld((long long)kycd_migrations_count));
    kerr e;
    kerr_clear(&e);
    assert_int_equal(db_check_schema(f->d, &e), 0);
}

/* ------------------------------------------------------- 2.-8. KYC status */

static void test_first_delivery(void **state)
{
    fixture *f = *state;
    const char *body = "{\"externalUserId\":\"u-first\",\"verificationStatus\":\"NOT_VERIFIED\","
                       "\"attemptStatus\":\"PENDING\",\"rejectionReason\":null,"
                       "\"extra\":{\"nested\":[1,2.5,\"\\u00e9t\\u00e9\"]}}";
    kyc_delivery dl;
    delivery(&dl, KYC_KIND_KYC_STATUS, body);
    db_ingest_result r = ingest_dl(f->d, &dl, &OPTS);
    assert_result(r, "applied", "first");
    assert_int_equal(r.repeat_of, 0);
    const char *id = lld(r.event_id);

    char want[256];
    snprintf(want, sizeof want,
             "kyc_verification_status|u-first|applied|first|198.51.100.23|%s|t|{}", dl.request_id);
    assert_string_equal(
        q(f->pq,
          "SELECT format('%s|%s|%s|%s|%s|%s|%s|%s', kind, external_user_id, outcome, "
          "  outcome_reason, host(remote_addr), request_id, repeat_of IS NULL, "
          "  unknown_fields) FROM kyc.webhook_events WHERE id = $1::bigint",
          id, END),
        want);
    /* The body is kept as jsonb equal to what was sent, its digest is the
     * SHA-256 of the raw bytes. */
    assert_string_equal(q(f->pq,
                          "SELECT body = $2::jsonb FROM kyc.webhook_events WHERE id = $1::bigint",
                          id, body, END),
                        "t");
    assert_string_equal(q(f->pq,
                          "SELECT encode(body_sha256, 'hex') FROM kyc.webhook_events "
                          "WHERE id = $1::bigint",
                          id, END),
                        dl.body_sha256);
    assert_string_equal(q(f->pq, "SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex')", body, END),
                        dl.body_sha256);
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.webhook_events", END), "1");

    /* Current state. */
    assert_string_equal(state_of(f->pq, "u-first"), "NOT_VERIFIED/PENDING/-|webhook|-");
    assert_string_equal(
        q(f->pq,
          "SELECT format('%s|%s|%s|%s|%s', v.last_event_id, v.next_check_at IS NULL, "
          "  v.updated_at = e.received_at, v.last_webhook_at = e.received_at, "
          "  v.failures) "
          "FROM kyc.verifications v JOIN kyc.webhook_events e ON e.id = v.last_event_id "
          "WHERE v.external_user_id = 'u-first'",
          END),
        q(f->pq, "SELECT format('%s|t|t|t|0', $1::bigint)", id, END));

    /* History: one row, from nothing to the new state, caused by the event. */
    char want_change[256];
    snprintf(want_change, sizeof want_change,
             "webhook|first|NULL|'NOT_VERIFIED'|NULL|'PENDING'|NULL|NULL|%s|t|t", id);
    assert_string_equal(
        q(f->pq,
          "SELECT format('%s|%s|%L|%L|%L|%L|%L|%L|%s|%s|%s', c.source, c.reason, "
          "  c.old_verification_status, c.new_verification_status, "
          "  c.old_attempt_status, c.new_attempt_status, c.old_rejection_reason, "
          "  c.new_rejection_reason, c.event_id, c.changed_at = e.received_at, "
          "  c.check_id IS NULL) "
          "FROM kyc.status_changes c JOIN kyc.webhook_events e ON e.id = c.event_id "
          "WHERE c.external_user_id = 'u-first'",
          END),
        want_change);
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.status_changes", END), "1");
}

static void test_repeat(void **state)
{
    fixture *f = *state;
    const char *body = "{\"externalUserId\":\"u-rep\",\"verificationStatus\":\"NOT_VERIFIED\","
                       "\"attemptStatus\":\"PENDING\"}";
    db_ingest_result r1 = ingest(f->d, KYC_KIND_KYC_STATUS, body, &OPTS);
    assert_result(r1, "applied", "first");
    db_ingest_result r2 = ingest(f->d, KYC_KIND_KYC_STATUS, body, &OPTS);
    assert_result(r2, "unchanged", "repeat");
    assert_int_equal(r2.repeat_of, r1.event_id);
    assert_true(r2.event_id > r1.event_id);
    /* A third copy still points at the earliest one. */
    db_ingest_result r3 = ingest(f->d, KYC_KIND_KYC_STATUS, body, &OPTS);
    assert_result(r3, "unchanged", "repeat");
    assert_int_equal(r3.repeat_of, r1.event_id);

    assert_string_equal(q(f->pq,
                          "SELECT string_agg(format('%s:%s:%s:%s', id, outcome, outcome_reason, "
                          "  coalesce(repeat_of::text, '-')), ' ' ORDER BY id) "
                          "FROM kyc.webhook_events WHERE external_user_id = 'u-rep'",
                          END),
                        q(f->pq,
                          "SELECT format('%s:applied:first:- %s:unchanged:repeat:%s "
                          "%s:unchanged:repeat:%s', $1::bigint, $2::bigint, $1::bigint, "
                          "$3::bigint, $1::bigint)",
                          lld(r1.event_id), lld(r2.event_id), lld(r3.event_id), END));
    assert_string_equal(changes(f->pq, "u-rep"), "first:-/->NOT_VERIFIED/PENDING");
    /* The state is untouched; only "P100 spoke" moves. */
    assert_string_equal(
        q(f->pq,
          "SELECT format('%s|%s', v.last_event_id, v.last_webhook_at = e.received_at) "
          "FROM kyc.verifications v, kyc.webhook_events e "
          "WHERE v.external_user_id = 'u-rep' AND e.id = $1::bigint",
          lld(r3.event_id), END),
        q(f->pq, "SELECT format('%s|t', $1::bigint)", lld(r1.event_id), END));

    /* Without a dedup window identical bytes are just the same state. */
    const db_ingest_opts nodedup = {.dedup_window_ms = 0, .reorder_window_ms = 300000};
    const char *body2 = "{\"externalUserId\":\"u-nodedup\",\"verificationStatus\":\"NOT_VERIFIED\","
                        "\"attemptStatus\":\"PENDING\"}";
    db_ingest_result n1 = ingest(f->d, KYC_KIND_KYC_STATUS, body2, &nodedup);
    assert_result(n1, "applied", "first");
    db_ingest_result n2 = ingest(f->d, KYC_KIND_KYC_STATUS, body2, &nodedup);
    assert_result(n2, "unchanged", "same");
    assert_int_equal(n2.repeat_of, 0);
    assert_string_equal(q(f->pq,
                          "SELECT count(*) FROM kyc.webhook_events "
                          "WHERE external_user_id = 'u-nodedup' AND repeat_of IS NULL",
                          END),
                        "2");
    assert_string_equal(changes(f->pq, "u-nodedup"), "first:-/->NOT_VERIFIED/PENDING");
}

static void test_forward(void **state)
{
    fixture *f = *state;
    db_ingest_result a = kyc(f->d, "u-fwd", "NOT_VERIFIED", "PENDING", NULL, &OPTS);
    db_ingest_result b = kyc(f->d, "u-fwd", "NOT_VERIFIED", "VERIFICATION", NULL, &OPTS);
    db_ingest_result c = kyc(f->d, "u-fwd", "VERIFIED", "SUCCESSFUL", NULL, &OPTS);
    assert_result(a, "applied", "first");
    assert_result(b, "applied", "forward");
    assert_result(c, "applied", "forward");
    assert_string_equal(changes(f->pq, "u-fwd"),
                        "first:-/->NOT_VERIFIED/PENDING "
                        "forward:NOT_VERIFIED/PENDING>NOT_VERIFIED/VERIFICATION "
                        "forward:NOT_VERIFIED/VERIFICATION>VERIFIED/SUCCESSFUL");
    char want[96];
    snprintf(want, sizeof want, "%lld,%lld,%lld", a.event_id, b.event_id, c.event_id);
    assert_string_equal(q(f->pq,
                          "SELECT string_agg(event_id::text, ',' ORDER BY id) "
                          "FROM kyc.status_changes WHERE external_user_id = 'u-fwd'",
                          END),
                        want);
    assert_string_equal(q(f->pq,
                          "SELECT bool_and(ok) FROM (SELECT changed_at >= lag(changed_at) "
                          "OVER (ORDER BY id) AS ok FROM kyc.status_changes "
                          "WHERE external_user_id = 'u-fwd') s",
                          END),
                        "t");
    assert_string_equal(state_of(f->pq, "u-fwd"), "VERIFIED/SUCCESSFUL/-|webhook|-");
    assert_string_equal(q(f->pq,
                          "SELECT last_event_id FROM kyc.verifications "
                          "WHERE external_user_id = 'u-fwd'",
                          END),
                        lld(c.event_id));
}

static void test_out_of_order(void **state)
{
    fixture *f = *state;
    db_ingest_result a = kyc(f->d, "u-ooo", "NOT_VERIFIED", "VERIFICATION", NULL, &OPTS);
    assert_result(a, "applied", "first");
    db_ingest_result b = kyc(f->d, "u-ooo", "NOT_VERIFIED", "PENDING", NULL, &OPTS);
    assert_result(b, "held", "out_of_order");
    assert_int_equal(b.repeat_of, 0);

    assert_string_equal(state_of(f->pq, "u-ooo"),
                        "NOT_VERIFIED/VERIFICATION/-|webhook|out_of_order");
    assert_string_equal(
        q(f->pq,
          "SELECT format('%s|%s|%s', v.last_event_id, v.next_check_at = e.received_at, "
          "  v.last_webhook_at = e.received_at) "
          "FROM kyc.verifications v, kyc.webhook_events e "
          "WHERE v.external_user_id = 'u-ooo' AND e.id = $1::bigint",
          lld(b.event_id), END),
        q(f->pq, "SELECT format('%s|t|t', $1::bigint)", lld(a.event_id), END));
    assert_string_equal(q(f->pq,
                          "SELECT format('%s:%s', outcome, outcome_reason) "
                          "FROM kyc.webhook_events WHERE id = $1::bigint",
                          lld(b.event_id), END),
                        "held:out_of_order");
    assert_string_equal(changes(f->pq, "u-ooo"), "first:-/->NOT_VERIFIED/VERIFICATION");
    assert_string_equal(
        q(f->pq,
          "SELECT string_agg(format('%s|%s|%s|%s/%s|%s/%s|%s', event_id, "
          "  external_user_id, outcome_reason, verification_status, attempt_status, "
          "  current_verification_status, current_attempt_status, unknown_fields), "
          "  ' ') FROM kyc.held_events",
          END),
        q(f->pq,
          "SELECT format('%s|u-ooo|out_of_order|NOT_VERIFIED/PENDING|"
          "NOT_VERIFIED/VERIFICATION|{}', $1::bigint)",
          lld(b.event_id), END));
}

static void test_leaves_verified(void **state)
{
    fixture *f = *state;
    assert_result(kyc(f->d, "u-lv", "VERIFIED", "SUCCESSFUL", NULL, &OPTS), "applied", "first");
    db_ingest_result r =
        kyc(f->d, "u-lv", "NOT_VERIFIED", "REJECTED_BY_PROVIDER", "document expired", &OPTS);
    assert_result(r, "held", "leaves_verified");
    assert_string_equal(state_of(f->pq, "u-lv"), "VERIFIED/SUCCESSFUL/-|webhook|leaves_verified");
    assert_string_equal(q(f->pq,
                          "SELECT next_check_at IS NOT NULL FROM kyc.verifications "
                          "WHERE external_user_id = 'u-lv'",
                          END),
                        "t");
    assert_string_equal(changes(f->pq, "u-lv"), "first:-/->VERIFIED/SUCCESSFUL");

    assert_result(kyc(f->d, "u-exp", "VERIFIED", "SUCCESSFUL", NULL, &OPTS), "applied", "first");
    assert_result(kyc(f->d, "u-exp", "EXPIRED", "SUCCESSFUL", NULL, &OPTS), "applied", "forward");
    assert_string_equal(state_of(f->pq, "u-exp"), "EXPIRED/SUCCESSFUL/-|webhook|-");
    assert_string_equal(
        changes(f->pq, "u-exp"),
        "first:-/->VERIFIED/SUCCESSFUL forward:VERIFIED/SUCCESSFUL>EXPIRED/SUCCESSFUL");
}

static void test_new_attempt(void **state)
{
    fixture *f = *state;
    const db_ingest_opts noreorder = {.dedup_window_ms = 600000, .reorder_window_ms = 0};
    assert_result(
        kyc(f->d, "u-na", "NOT_VERIFIED", "REJECTED_BY_PROVIDER", "blurry photo", &noreorder),
        "applied", "first");
    assert_string_equal(state_of(f->pq, "u-na"),
                        "NOT_VERIFIED/REJECTED_BY_PROVIDER/blurry photo|webhook|-");
    assert_result(kyc(f->d, "u-na", "NOT_VERIFIED", "PENDING", NULL, &noreorder), "applied",
                  "new_attempt");
    assert_string_equal(state_of(f->pq, "u-na"), "NOT_VERIFIED/PENDING/-|webhook|-");
    assert_string_equal(changes(f->pq, "u-na"),
                        "first:-/->NOT_VERIFIED/REJECTED_BY_PROVIDER "
                        "new_attempt:NOT_VERIFIED/REJECTED_BY_PROVIDER>NOT_VERIFIED/PENDING");
    assert_string_equal(q(f->pq,
                          "SELECT string_agg(format('%L>%L', old_rejection_reason, "
                          "  new_rejection_reason), ' ' ORDER BY id) FROM kyc.status_changes "
                          "WHERE external_user_id = 'u-na'",
                          END),
                        "NULL>'blurry photo' 'blurry photo'>NULL");

    /* Within the reorder window the same step back is held instead. */
    assert_result(kyc(f->d, "u-na2", "NOT_VERIFIED", "REJECTED_BY_PROVIDER", "blurry photo", &OPTS),
                  "applied", "first");
    assert_result(kyc(f->d, "u-na2", "NOT_VERIFIED", "PENDING", NULL, &OPTS), "held",
                  "out_of_order");
}

static void test_unknown_value(void **state)
{
    fixture *f = *state;
    const char *body = "{\"externalUserId\":\"u-unk\",\"verificationStatus\":\"SOMETHING_NEW\","
                       "\"attemptStatus\":\"PENDING\"}";
    db_ingest_result r = ingest(f->d, KYC_KIND_KYC_STATUS, body, &OPTS);
    assert_result(r, "held", "unknown_value");
    assert_string_equal(q(f->pq,
                          "SELECT format('%s|%s|%s|%s', outcome, outcome_reason, unknown_fields, "
                          "  body = $2::jsonb) FROM kyc.webhook_events WHERE id = $1::bigint",
                          lld(r.event_id), body, END),
                        "held|unknown_value|{verificationStatus}|t");
    /* Nothing applied; the user is owed an authoritative check. */
    assert_string_equal(state_of(f->pq, "u-unk"), "-/-/-|webhook|unknown_value");
    assert_string_equal(q(f->pq,
                          "SELECT next_check_at IS NOT NULL FROM kyc.verifications "
                          "WHERE external_user_id = 'u-unk'",
                          END),
                        "t");
    assert_string_equal(changes(f->pq, "u-unk"), "");

    /* An undocumented value for a user with a state keeps that state. */
    assert_result(kyc(f->d, "u-unk2", "NOT_VERIFIED", "PENDING", NULL, &OPTS), "applied", "first");
    db_ingest_result r2 = kyc(f->d, "u-unk2", "NOT_VERIFIED", "ON_HOLD", NULL, &OPTS);
    assert_result(r2, "held", "unknown_value");
    assert_string_equal(
        q(f->pq, "SELECT unknown_fields::text FROM kyc.webhook_events WHERE id = $1::bigint",
          lld(r2.event_id), END),
        "{attemptStatus}");
    assert_string_equal(state_of(f->pq, "u-unk2"), "NOT_VERIFIED/PENDING/-|webhook|unknown_value");
    db_ingest_result r3 = kyc(f->d, "u-unk2", "MAYBE", "ON_HOLD", NULL, &OPTS);
    assert_result(r3, "held", "unknown_value");
    assert_string_equal(
        q(f->pq, "SELECT unknown_fields::text FROM kyc.webhook_events WHERE id = $1::bigint",
          lld(r3.event_id), END),
        "{verificationStatus,attemptStatus}");
    assert_string_equal(changes(f->pq, "u-unk2"), "first:-/->NOT_VERIFIED/PENDING");
}

/* ----------------------------------------------------------- 9. other kinds */

static void test_other_kinds(void **state)
{
    fixture *f = *state;
    const char *waiting = "{\"externalUserId\":\"u-poa\",\"status\":\"WAITING\"}";
    const char *approved = "{\"externalUserId\":\"u-poa\",\"status\":\"APPROVED\"}";
    db_ingest_result w = ingest(f->d, KYC_KIND_POA_STATUS, waiting, &OPTS);
    assert_result(w, "applied", "latest");
    assert_string_equal(q(f->pq,
                          "SELECT format('%s|%s', status, last_event_id) FROM kyc.poa_statuses "
                          "WHERE external_user_id = 'u-poa'",
                          END),
                        q(f->pq, "SELECT format('WAITING|%s', $1::bigint)", lld(w.event_id), END));
    db_ingest_result a = ingest(f->d, KYC_KIND_POA_STATUS, approved, &OPTS);
    assert_result(a, "applied", "latest");
    const char *poa_approved =
        q(f->pq, "SELECT format('APPROVED|%s', $1::bigint)", lld(a.event_id), END);
    const char *poa_sql = "SELECT format('%s|%s', status, last_event_id) FROM kyc.poa_statuses "
                          "WHERE external_user_id = 'u-poa'";
    assert_string_equal(q(f->pq, poa_sql, END), poa_approved);

    /* The same body again, and a late copy of the older one: neither
     * changes the latest status. */
    db_ingest_result ar = ingest(f->d, KYC_KIND_POA_STATUS, approved, &OPTS);
    assert_result(ar, "unchanged", "repeat");
    assert_int_equal(ar.repeat_of, a.event_id);
    db_ingest_result wr = ingest(f->d, KYC_KIND_POA_STATUS, waiting, &OPTS);
    assert_result(wr, "unchanged", "repeat");
    assert_int_equal(wr.repeat_of, w.event_id);
    assert_string_equal(q(f->pq, poa_sql, END), poa_approved);

    const char *file =
        "{\"externalUserId\":\"u-poa\",\"status\":\"ADDED\",\"fileType\":\"PASSPORT\"}";
    db_ingest_result f1 = ingest(f->d, KYC_KIND_KYC_FILE, file, &OPTS);
    assert_result(f1, "recorded", "recorded");
    db_ingest_result f2 = ingest(f->d, KYC_KIND_KYC_FILE, file, &OPTS);
    assert_result(f2, "recorded", "repeat");
    assert_int_equal(f2.repeat_of, f1.event_id);
    db_ingest_result us = ingest(f->d, KYC_KIND_USER_STATUS,
                                 "{\"externalUserId\":\"u-user\",\"status\":\"ACTIVE\"}", &OPTS);
    assert_result(us, "recorded", "recorded");
    /* The same bytes under another kind are not a repeat. */
    db_ingest_result us2 = ingest(
        f->d, KYC_KIND_USER_STATUS,
        "{\"externalUserId\":\"u-poa\",\"status\":\"ADDED\",\"fileType\":\"PASSPORT\"}", &OPTS);
    assert_string_equal(kyc_outcome_name(us2.outcome), "recorded");
    assert_int_equal(us2.repeat_of, 0);
    assert_string_equal(
        q(f->pq, "SELECT unknown_fields::text FROM kyc.webhook_events WHERE id = $1::bigint",
          lld(us2.event_id), END),
        "{status}");

    assert_string_equal(
        q(f->pq,
          "SELECT string_agg(format('%s:%s:%s:%s', kind, external_user_id, outcome, "
          "  outcome_reason), ' ' ORDER BY id) FROM kyc.webhook_events",
          END),
        "poa_verification_status:u-poa:applied:latest "
        "poa_verification_status:u-poa:applied:latest "
        "poa_verification_status:u-poa:unchanged:repeat "
        "poa_verification_status:u-poa:unchanged:repeat "
        "kyc_file_added:u-poa:recorded:recorded "
        "kyc_file_added:u-poa:recorded:repeat "
        "user_status:u-user:recorded:recorded "
        "user_status:u-poa:recorded:recorded");
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.verifications", END), "0");
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.status_changes", END), "0");
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.poa_statuses", END), "1");
}

/* ----------------------------------------------------------- 10. concurrency */

typedef struct worker {
    const char *conninfo;
    pthread_barrier_t *gate;
    char user[32];
    enum kyc_kind kind;
    const char *body; /* one shared body, or NULL: build per iteration */
    int iterations;
    db_ingest_opts opts;
    /* results */
    int rc;
    char err[512];
    db_ingest_result res; /* of the last delivery */
    int applied;
} worker;

static void *worker_run(void *arg)
{
    worker *w = arg;
    db *d = NULL;
    kerr e;
    kerr_clear(&e);
    db_opts o = {.conninfo = w->conninfo, .timeout_ms = 30000, .application_name = "kycd-worker"};
    w->rc = db_connect(&d, &o, &e);
    pthread_barrier_wait(w->gate); /* even after a failure, or the others would hang */
    for (int i = 0; w->rc == 0 && i < w->iterations; i++) {
        char body[512];
        const char *b = w->body;
        if (b == NULL) {
            /* Distinct bodies (the "n" field), alternating states. */
            snprintf(body, sizeof body,
                     "{\"externalUserId\":\"%s\",\"verificationStatus\":\"NOT_VERIFIED\","
                     "\"attemptStatus\":\"%s\",\"n\":%d}",
                     w->user, i % 2 ? "VERIFICATION" : "PENDING", i);
            b = body;
        }
        kyc_delivery dl;
        memset(&dl, 0, sizeof dl);
        size_t len = strlen(b);
        w->rc = payload_parse(w->kind, b, len, &dl, &e);
        if (w->rc != 0)
            break;
        dl.body = b;
        dl.body_len = len;
        token_sha256_hex(b, len, dl.body_sha256);
        w->rc = db_ingest(d, &dl, &w->opts, &w->res, &e);
        if (w->rc == 0 && strcmp(kyc_outcome_name(w->res.outcome), "applied") == 0)
            w->applied++;
    }
    if (w->rc != 0)
        snprintf(w->err, sizeof w->err, "%s", e.msg);
    db_free(d);
    return NULL;
}

static void run_workers(worker *w, int n)
{
    pthread_t th[16];
    pthread_barrier_t gate;
    assert_true(n <= 16);
    pthread_barrier_init(&gate, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        w[i].gate = &gate;
        assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&gate);
    for (int i = 0; i < n; i++)
        if (w[i].rc != 0)
            fail_msg("worker %d failed: %s (%d)", i, w[i].err, w[i].rc);
}

static void test_concurrent_same_body(void **state)
{
    fixture *f = *state;
    /* Several rounds, each with a user nobody has seen yet, to give a race
     * a few chances to show. */
    for (int round = 0; round < 5; round++) {
        char user[32], body[256];
        snprintf(user, sizeof user, "u-race-%d", round);
        kyc_json(body, sizeof body, user, "NOT_VERIFIED", "PENDING", NULL);
        worker w[8];
        memset(w, 0, sizeof w);
        for (int i = 0; i < 8; i++) {
            w[i].conninfo = f->conninfo;
            w[i].body = body;
            w[i].iterations = 1;
            w[i].opts = OPTS;
        }
        run_workers(w, 8);
        int first = 0, repeat = 0;
        long long first_id = 0;
        for (int i = 0; i < 8; i++) {
            if (strcmp(kyc_outcome_name(w[i].res.outcome), "applied") == 0 &&
                strcmp(kyc_reason_name(w[i].res.reason), "first") == 0) {
                first++;
                first_id = w[i].res.event_id;
            } else if (strcmp(kyc_outcome_name(w[i].res.outcome), "unchanged") == 0 &&
                       strcmp(kyc_reason_name(w[i].res.reason), "repeat") == 0) {
                repeat++;
            } else {
                fail_msg("round %d worker %d: %s/%s", round, i, kyc_outcome_name(w[i].res.outcome),
                         kyc_reason_name(w[i].res.reason));
            }
        }
        assert_int_equal(first, 1);
        assert_int_equal(repeat, 7);
        for (int i = 0; i < 8; i++)
            if (w[i].res.event_id != first_id)
                assert_int_equal(w[i].res.repeat_of, first_id);
        assert_string_equal(
            count_where(f->pq, "kyc.webhook_events WHERE external_user_id = $1", user), "8");
        assert_string_equal(q(f->pq,
                              "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id = $1 "
                              "AND repeat_of = $2::bigint AND outcome = 'unchanged'",
                              user, lld(first_id), END),
                            "7");
        assert_string_equal(changes(f->pq, user), "first:-/->NOT_VERIFIED/PENDING");
        assert_string_equal(state_of(f->pq, user), "NOT_VERIFIED/PENDING/-|webhook|-");
    }
}

/* 8 threads deliver `body` at once; exactly one must win with
 * first_outcome/first_reason, the others are rest_outcome/"repeat" of it. */
static void race_same_body(fixture *f, enum kyc_kind kind, const char *body, const char *user,
                           const char *first_outcome, const char *first_reason,
                           const char *rest_outcome)
{
    char before[32];
    snprintf(before, sizeof before, "%s",
             count_where(f->pq, "kyc.webhook_events WHERE external_user_id = $1", user));
    worker w[8];
    memset(w, 0, sizeof w);
    for (int i = 0; i < 8; i++) {
        w[i].conninfo = f->conninfo;
        w[i].kind = kind;
        w[i].body = body;
        w[i].iterations = 1;
        w[i].opts = OPTS;
    }
    run_workers(w, 8);
    int first = 0, repeat = 0;
    long long first_id = 0;
    char got[1024] = "";
    for (int i = 0; i < 8; i++) {
        size_t used = strlen(got);
        snprintf(got + used, sizeof got - used, " %s/%s(repeat_of=%lld)",
                 kyc_outcome_name(w[i].res.outcome), kyc_reason_name(w[i].res.reason),
                 w[i].res.repeat_of);
        if (strcmp(kyc_outcome_name(w[i].res.outcome), first_outcome) == 0 &&
            strcmp(kyc_reason_name(w[i].res.reason), first_reason) == 0) {
            first++;
            first_id = w[i].res.event_id;
        } else if (strcmp(kyc_outcome_name(w[i].res.outcome), rest_outcome) == 0 &&
                   strcmp(kyc_reason_name(w[i].res.reason), "repeat") == 0) {
            repeat++;
        }
    }
    if (first != 1 || repeat != 7)
        fail_msg("%s: want one %s/%s and seven %s/repeat, got:%s", user, first_outcome,
                 first_reason, rest_outcome, got);
    for (int i = 0; i < 8; i++)
        if (w[i].res.event_id != first_id && w[i].res.repeat_of != first_id)
            fail_msg("%s: repeat_of %lld, want %lld:%s", user, w[i].res.repeat_of, first_id, got);
    assert_string_equal(q(f->pq,
                          "SELECT count(*) FROM kyc.webhook_events WHERE external_user_id = $1 "
                          "AND (id = $2::bigint OR repeat_of = $2::bigint)",
                          user, lld(first_id), END),
                        "8");
    /* and nothing else was stored for the user */
    assert_string_equal(
        q(f->pq, "SELECT count(*) - $2::bigint FROM kyc.webhook_events WHERE external_user_id = $1",
          user, before, END),
        "8");
}

/* A user with a state already: the row lock serializes the deliveries, the
 * dedup check must see the winner's event. */
static void test_concurrent_same_body_known_user(void **state)
{
    fixture *f = *state;
    for (int round = 0; round < 3; round++) {
        char user[32], body[256];
        snprintf(user, sizeof user, "u-known-%d", round);
        assert_result(kyc(f->d, user, "NOT_VERIFIED", "PENDING", NULL, &OPTS), "applied", "first");
        kyc_json(body, sizeof body, user, "NOT_VERIFIED", "VERIFICATION", NULL);
        race_same_body(f, KYC_KIND_KYC_STATUS, body, user, "applied", "forward", "unchanged");
        assert_string_equal(changes(f->pq, user),
                            "first:-/->NOT_VERIFIED/PENDING "
                            "forward:NOT_VERIFIED/PENDING>NOT_VERIFIED/VERIFICATION");
    }
}

/* POA and file deliveries are serialized by an advisory lock per kind and
 * user; the dedup check must see the winner's event. */
static void test_concurrent_same_body_poa(void **state)
{
    fixture *f = *state;
    for (int round = 0; round < 3; round++) {
        char user[32], body[256];
        snprintf(user, sizeof user, "u-poarace-%d", round);
        snprintf(body, sizeof body, "{\"externalUserId\":\"%s\",\"status\":\"APPROVED\"}", user);
        race_same_body(f, KYC_KIND_POA_STATUS, body, user, "applied", "latest", "unchanged");
    }
}

static void test_concurrent_same_body_file(void **state)
{
    fixture *f = *state;
    for (int round = 0; round < 3; round++) {
        char user[32], body[256];
        snprintf(user, sizeof user, "u-filerace-%d", round);
        snprintf(body, sizeof body, "{\"externalUserId\":\"%s\",\"status\":\"ADDED\"}", user);
        race_same_body(f, KYC_KIND_KYC_FILE, body, user, "recorded", "recorded", "recorded");
    }
}

static void test_concurrent_users(void **state)
{
    fixture *f = *state;
    worker w[8];
    memset(w, 0, sizeof w);
    for (int i = 0; i < 8; i++) {
        w[i].conninfo = f->conninfo;
        snprintf(w[i].user, sizeof w[i].user, "u-par-%d", i);
        w[i].iterations = 50;
        /* No reorder window: each step back is a new attempt, so every
         * delivery is applied and the counts are exact. */
        w[i].opts.dedup_window_ms = 600000;
        w[i].opts.reorder_window_ms = 0;
    }
    run_workers(w, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(w[i].applied, 50);
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.webhook_events", END), "400");
    assert_string_equal(
        q(f->pq,
          "SELECT string_agg(format('%s:%s:%s', outcome, outcome_reason, n), ' ' "
          "  ORDER BY outcome_reason) FROM (SELECT outcome, outcome_reason, count(*) n "
          "  FROM kyc.webhook_events GROUP BY 1, 2) s",
          END),
        "applied:first:8 applied:forward:200 applied:new_attempt:192");
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.status_changes", END), "400");
    assert_string_equal(q(f->pq, "SELECT count(DISTINCT event_id) FROM kyc.status_changes", END),
                        "400");
    assert_string_equal(q(f->pq,
                          "SELECT string_agg(format('%s:%s', external_user_id, n), ' ' "
                          "  ORDER BY external_user_id) FROM (SELECT external_user_id, count(*) n "
                          "  FROM kyc.status_changes GROUP BY 1) s",
                          END),
                        "u-par-0:50 u-par-1:50 u-par-2:50 u-par-3:50 u-par-4:50 u-par-5:50 "
                        "u-par-6:50 u-par-7:50");
    /* Per user the history alternates and chains: each change starts from
     * the previous one's new state. */
    assert_string_equal(
        q(f->pq,
          "SELECT count(*) FROM (SELECT old_attempt_status, new_attempt_status, "
          "  lag(new_attempt_status) OVER (PARTITION BY external_user_id ORDER BY id) "
          "  AS prev FROM kyc.status_changes) s "
          "WHERE prev IS NOT NULL AND (prev = new_attempt_status "
          "  OR old_attempt_status IS DISTINCT FROM prev)",
          END),
        "0");
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.verifications", END), "8");
    assert_string_equal(
        q(f->pq,
          "SELECT count(*) FROM kyc.verifications v WHERE attempt_status = 'VERIFICATION' "
          "AND verification_status = 'NOT_VERIFIED' AND last_event_id = "
          "(SELECT max(id) FROM kyc.webhook_events e "
          " WHERE e.external_user_id = v.external_user_id)",
          END),
        "8");
}

/* --------------------------------------------------------- 11. append-only */

static void test_append_only(void **state)
{
    fixture *f = *state;
    assert_result(kyc(f->d, "u-ao", "NOT_VERIFIED", "PENDING", NULL, &OPTS), "applied", "first");
    assert_string_equal(q(f->pq, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user", END),
                        "t");
    static const char *const refused[] = {
        "UPDATE kyc.webhook_events SET outcome_reason = 'edited'",
        "DELETE FROM kyc.webhook_events",
        "UPDATE kyc.status_changes SET reason = 'edited'",
        "DELETE FROM kyc.status_changes",
        "TRUNCATE kyc.status_changes",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        const char *st = q_fails(f->pq, refused[i], END);
        if (strcmp(st, "42501") != 0)
            fail_msg("%s: sqlstate '%s', want 42501", refused[i], st);
    }
    /* webhook_events is also referenced by foreign keys, so a plain TRUNCATE
     * fails earlier; with CASCADE the trigger must still stop it. */
    assert_string_equal(q_fails(f->pq, "TRUNCATE kyc.webhook_events CASCADE", END), "42501");
    assert_string_equal(q(f->pq,
                          "SELECT format('%s|%s', count(*), string_agg(outcome_reason, ',')) "
                          "FROM kyc.webhook_events",
                          END),
                        "1|first");
    assert_string_equal(changes(f->pq, "u-ao"), "first:-/->NOT_VERIFIED/PENDING");
}

/* ---------------------------------------------------------- 12. analyst role */

static void test_analyst_role(void **state)
{
    fixture *f = *state;
    assert_result(kyc(f->d, "u-an", "NOT_VERIFIED", "PENDING", NULL, &OPTS), "applied", "first");
    assert_result(ingest(f->d, KYC_KIND_POA_STATUS,
                         "{\"externalUserId\":\"u-an\",\"status\":\"WAITING\"}", &OPTS),
                  "applied", "latest");

    char role[64], sql[256], conninfo[1200];
    snprintf(role, sizeof role, "alice_%d", (int)getpid());
    /* A role name is an identifier: ours (prefix and pid), not input. */
    snprintf(sql, sizeof sql, "DROP ROLE IF EXISTS %s; CREATE ROLE %s LOGIN IN ROLE kyc_analyst",
             role, role);
    q_ok(f->pq, sql);
    snprintf(conninfo, sizeof conninfo, "%s user=%s", f->conninfo, role);
    PGconn *a = pq_connect(conninfo);
    assert_string_equal(q(a, "SELECT current_user", END), role);

    /* Every table and view in kyc can be read. */
    PGresult *rels = PQexec(f->pq, "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c "
                                   "JOIN pg_namespace n ON n.oid = c.relnamespace "
                                   "WHERE n.nspname = 'kyc' AND c.relkind IN ('r', 'v', 'm', 'p') "
                                   "ORDER BY 1");
    assert_int_equal(PQresultStatus(rels), PGRES_TUPLES_OK);
    int nrel = PQntuples(rels);
    assert_true(nrel >= 10); /* 5 tables (with schema_migrations) and 5 views */
    for (int i = 0; i < nrel; i++) {
        char count_sql[256];
        snprintf(count_sql, sizeof count_sql, "SELECT count(*) >= 0 FROM %s",
                 PQgetvalue(rels, i, 0));
        PGresult *r = PQexec(a, count_sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s: %s", count_sql, PQresultErrorMessage(r));
            PQclear(r);
            PQclear(rels);
            fail_msg("analyst cannot read: %s", msg);
        }
        PQclear(r);
    }
    PQclear(rels);
    assert_string_equal(q(a, "SELECT count(*) FROM kyc.verifications", END), "1");
    assert_string_equal(q(a, "SELECT count(*) FROM kyc.pending_longer_than(0)", END), "1");
    assert_string_equal(
        q(a, "SELECT count(*) FROM kyc.current_status WHERE poa_status = 'WAITING'", END), "1");

    /* And nothing can be changed. */
    static const char *const refused[] = {
        "INSERT INTO kyc.webhook_events (kind, external_user_id, body, body_sha256, outcome, "
        "outcome_reason) VALUES ('user_status', 'x', '{}', sha256('x'), 'recorded', 'recorded')",
        "UPDATE kyc.verifications SET failures = failures + 1",
        "DELETE FROM kyc.verifications",
        "DELETE FROM kyc.poa_statuses",
        "INSERT INTO kyc.poa_statuses (external_user_id, status, last_event_id) VALUES ('x', 'x', "
        "1)",
        "UPDATE kyc.schema_migrations SET sha256 = ''",
        "CREATE TABLE kyc.x (i int)",
        "CREATE VIEW kyc.y AS SELECT 1",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        const char *st = q_fails(a, refused[i], END);
        if (strcmp(st, "42501") != 0)
            fail_msg("analyst: %s: sqlstate '%s', want 42501", refused[i], st);
    }
    PQfinish(a);
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.webhook_events", END), "2");
    assert_string_equal(q(f->pq, "SELECT to_regclass('kyc.x') IS NULL", END), "t");
    snprintf(sql, sizeof sql, "DROP ROLE %s", role);
    q_ok(f->pq, sql);
}

/* ---------------------------------------------------------------- 13. views */

static void test_views(void **state)
{
    fixture *f = *state;
    /* one verified */
    kyc(f->d, "u-v1", "NOT_VERIFIED", "PENDING", NULL, &OPTS);
    kyc(f->d, "u-v1", "NOT_VERIFIED", "VERIFICATION", NULL, &OPTS);
    assert_result(kyc(f->d, "u-v1", "VERIFIED", "SUCCESSFUL", NULL, &OPTS), "applied", "forward");
    /* one rejected */
    kyc(f->d, "u-r1", "NOT_VERIFIED", "PENDING", NULL, &OPTS);
    kyc(f->d, "u-r1", "NOT_VERIFIED", "VERIFICATION", NULL, &OPTS);
    assert_result(kyc(f->d, "u-r1", "NOT_VERIFIED", "REJECTED_BY_PROVIDER", "face mismatch", &OPTS),
                  "applied", "forward");
    /* one pending */
    assert_result(kyc(f->d, "u-p1", "NOT_VERIFIED", "PENDING", NULL, &OPTS), "applied", "first");

    assert_string_equal(q(f->pq,
                          "SELECT format('%s|%s|%s|%s', started, verified, rejected, expired) "
                          "FROM kyc.daily_funnel WHERE day = (now() AT TIME ZONE 'UTC')::date",
                          END),
                        "3|1|1|0");
    assert_string_equal(q(f->pq,
                          "SELECT string_agg(format('%s|%s|%s', external_user_id, "
                          "  time_to_verified >= interval '0', "
                          "  verified_at - first_seen_at = time_to_verified), ' ') "
                          "FROM kyc.time_to_verified",
                          END),
                        "u-v1|t|t");
    assert_string_equal(
        q(f->pq,
          "SELECT string_agg(format('%s|%s/%s|%s|%s', external_user_id, "
          "  verification_status, attempt_status, source, pending_for >= interval '0'), "
          "  ' ') FROM kyc.pending",
          END),
        "u-p1|NOT_VERIFIED/PENDING|webhook|t");
    assert_string_equal(q(f->pq,
                          "SELECT string_agg(format('%s:%s', external_user_id, pending), ' ' "
                          "  ORDER BY external_user_id) FROM kyc.current_status",
                          END),
                        "u-p1:t u-r1:f u-v1:f");
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.pending_longer_than(0)", END), "1");
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.pending_longer_than(60)", END), "0");
}

/* ------------------------------------------------------- 14. SQL-looking text */

static void test_sql_looking_values(void **state)
{
    fixture *f = *state;
    static const char user[] = "x'); DROP TABLE kyc.verifications; --";
    static const char reason[] = "it's \"bad\" \\ C:\\temp\\ '; DELETE FROM kyc.webhook_events; --";
    const char *body =
        "{\"externalUserId\":\"x'); DROP TABLE kyc.verifications; --\","
        "\"verificationStatus\":\"NOT_VERIFIED\",\"attemptStatus\":\"REJECTED_BY_PROVIDER\","
        "\"rejectionReason\":\"it's \\\"bad\\\" \\\\ C:\\\\temp\\\\ '; DELETE FROM "
        "kyc.webhook_events; --\"}";
    kyc_delivery dl;
    delivery(&dl, KYC_KIND_KYC_STATUS, body);
    assert_string_equal(dl.external_user_id, user);
    assert_string_equal(dl.status.reason, reason);
    db_ingest_result r = ingest_dl(f->d, &dl, &OPTS);
    assert_result(r, "applied", "first");

    assert_string_equal(q(f->pq, "SELECT to_regclass('kyc.verifications') IS NOT NULL", END), "t");
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.verifications", END), "1");
    assert_string_equal(q(f->pq, "SELECT external_user_id FROM kyc.verifications", END), user);
    assert_string_equal(q(f->pq,
                          "SELECT rejection_reason FROM kyc.verifications "
                          "WHERE external_user_id = $1",
                          user, END),
                        reason);
    assert_string_equal(q(f->pq,
                          "SELECT new_rejection_reason FROM kyc.status_changes "
                          "WHERE external_user_id = $1",
                          user, END),
                        reason);
    assert_string_equal(
        q(f->pq,
          "SELECT format('%s|%s|%s', external_user_id, body ->> 'externalUserId', "
          "body ->> 'rejectionReason') FROM kyc.webhook_events",
          END),
        q(f->pq, "SELECT format('%s|%s|%s', $1::text, $1::text, $2::text)", user, reason, END));
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.webhook_events", END), "1");
}

/* --------------------------------------------------- 15. broken connections */

static void test_ingest_dead_connection(void **state)
{
    fixture *f = *state;
    char app[64];
    snprintf(app, sizeof app, "kycd-victim-%d", (int)getpid());
    db *victim = connect_db(f->conninfo, app);
    kerr e;
    kerr_clear(&e);
    assert_int_equal(db_ping(victim, &e), 0);
    terminate_app(f->pq, app);

    kyc_delivery dl;
    delivery(&dl, KYC_KIND_KYC_STATUS,
             "{\"externalUserId\":\"u-dead\",\"verificationStatus\":\"NOT_VERIFIED\","
             "\"attemptStatus\":\"PENDING\"}");
    db_ingest_result res;
    memset(&res, 0x5a, sizeof res);
    db_ingest_result before = res;
    assert_int_equal(db_ingest(victim, &dl, &OPTS, &res, &e), KERR_DB);
    assert_memory_equal(&res, &before, sizeof res);
    assert_true(e.msg[0] != '\0');
    assert_int_equal(db_alive(victim), 0);
    /* Again on the same dead connection: still an error, no crash. */
    assert_int_equal(db_ingest(victim, &dl, &OPTS, &res, &e), KERR_DB);
    db_free(victim);

    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.webhook_events", END), "0");
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.verifications", END), "0");
    /* A retry on a good connection is a first delivery, not a repeat. */
    assert_result(ingest_dl(f->d, &dl, &OPTS), "applied", "first");
}

typedef struct blocked_ingest {
    db *d;
    const kyc_delivery *dl;
    int rc;
    kerr err;
    db_ingest_result res;
} blocked_ingest;

static void *blocked_ingest_run(void *arg)
{
    blocked_ingest *b = arg;
    kerr_clear(&b->err);
    b->rc = db_ingest(b->d, b->dl, &OPTS, &b->res, &b->err);
    return NULL;
}

/* The backend dies in the middle of the transaction (waiting for the user
 * row's lock): nothing of the delivery may remain. */
static void test_ingest_killed_mid_transaction(void **state)
{
    fixture *f = *state;
    assert_result(kyc(f->d, "u-mid", "NOT_VERIFIED", "PENDING", NULL, &OPTS), "applied", "first");

    char app[64];
    snprintf(app, sizeof app, "kycd-mid-%d", (int)getpid());
    blocked_ingest b;
    memset(&b, 0, sizeof b);
    b.d = connect_db(f->conninfo, app);
    kyc_delivery dl;
    delivery(&dl, KYC_KIND_KYC_STATUS,
             "{\"externalUserId\":\"u-mid\",\"verificationStatus\":\"NOT_VERIFIED\","
             "\"attemptStatus\":\"VERIFICATION\"}");
    b.dl = &dl;

    /* Its own connection: inside a transaction pg_stat_activity is a
     * snapshot and would never show the victim waiting or gone. */
    PGconn *locker = pq_connect(f->conninfo);
    q_ok(locker,
         "BEGIN; SELECT 1 FROM kyc.verifications WHERE external_user_id = 'u-mid' FOR UPDATE");
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, blocked_ingest_run, &b), 0);
    int waiting = 0;
    for (int i = 0; i < 500 && !waiting; i++) {
        waiting = strcmp(q(f->pq,
                           "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
                           "AND wait_event_type = 'Lock' AND state = 'active'",
                           app, END),
                         "1") == 0;
        if (!waiting)
            usleep(10000);
    }
    if (!waiting) {
        PQfinish(locker);
        pthread_join(th, NULL);
        fail_msg("the ingest never waited for the row lock");
    }
    terminate_app(f->pq, app);
    pthread_join(th, NULL);
    q_ok(locker, "ROLLBACK");
    PQfinish(locker);
    assert_int_equal(b.rc, KERR_DB);
    assert_int_equal(db_alive(b.d), 0);
    db_free(b.d);

    assert_string_equal(
        count_where(f->pq, "kyc.webhook_events WHERE external_user_id = $1", "u-mid"), "1");
    assert_string_equal(state_of(f->pq, "u-mid"), "NOT_VERIFIED/PENDING/-|webhook|-");
    assert_string_equal(changes(f->pq, "u-mid"), "first:-/->NOT_VERIFIED/PENDING");
    /* The retry applies it: the failed attempt left nothing to dedup against. */
    db_ingest_result r = ingest_dl(f->d, &dl, &OPTS);
    assert_result(r, "applied", "forward");
    assert_int_equal(r.repeat_of, 0);
}

/* ----------------------------------------------------------------- pool */

static db_pool *pool_new(const char *conninfo, const char *app, int size)
{
    db_opts o = {.conninfo = conninfo, .timeout_ms = TIMEOUT_MS, .application_name = app};
    db_pool *p = NULL;
    kerr e;
    kerr_clear(&e);
    if (db_pool_new(&p, &o, size, &e) != 0)
        fail_msg("db_pool_new: %s", e.msg);
    return p;
}

static db *pool_get(db_pool *p, int64_t timeout_ms)
{
    db *d = NULL;
    kerr e;
    kerr_clear(&e);
    if (db_pool_get(p, timeout_ms, &d, &e) != 0)
        fail_msg("db_pool_get: %s", e.msg);
    assert_non_null(d);
    return d;
}

static void test_pool_size_and_timeout(void **state)
{
    fixture *f = *state;
    db_pool *p = pool_new(f->conninfo, "kycd-pool", 2);
    db *a = pool_get(p, 1000), *b = pool_get(p, 1000);
    assert_ptr_not_equal(a, b);

    db *c = NULL;
    kerr e;
    kerr_clear(&e);
    double t0 = clock_now_ms();
    assert_int_equal(db_pool_get(p, 200, &c, &e), KERR_TIMEOUT);
    double waited = clock_now_ms() - t0;
    assert_null(c);
    if (waited < 190 || waited > 2000)
        fail_msg("timed out after %.0f ms, want about 200", waited);

    db_pool_put(p, a);
    c = pool_get(p, 200);
    assert_ptr_equal(c, a); /* the open connection is reused */
    assert_int_equal(db_ping(c, &e), 0);
    assert_int_equal(db_ping(b, &e), 0);
    assert_string_equal(
        q(f->pq,
          "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'kycd-pool' "
          "AND datname = current_database()",
          END),
        "2");
    db_pool_put(p, b);
    db_pool_put(p, c);
    db_pool_free(p);
}

/* A caller that saw its connection fail returns it; the next get must hand
 * out a working one. */
static void test_pool_replaces_failed(void **state)
{
    fixture *f = *state;
    char app[64];
    snprintf(app, sizeof app, "kycd-pool-f-%d", (int)getpid());
    db_pool *p = pool_new(f->conninfo, app, 2);
    db *a = pool_get(p, 1000);
    kerr e;
    terminate_app(f->pq, app);
    assert_int_not_equal(db_ping(a, &e), 0);
    db_pool_put(p, a);
    db *b = pool_get(p, 1000);
    kerr_clear(&e);
    if (db_ping(b, &e) != 0)
        fail_msg("connection from the pool is dead: %s", e.msg);
    db_pool_put(p, b);
    db_pool_free(p);
}

/* The backend dies while the connection is lent out and unused (a server
 * restart, an idle-session kill): after put, a later get must still give a
 * working connection, transparently. */
static void test_pool_replaces_terminated(void **state)
{
    fixture *f = *state;
    char app[64];
    snprintf(app, sizeof app, "kycd-pool-t-%d", (int)getpid());
    db_pool *p = pool_new(f->conninfo, app, 2);
    db *a = pool_get(p, 1000);
    kerr e;
    kerr_clear(&e);
    assert_int_equal(db_ping(a, &e), 0);
    terminate_app(f->pq, app);
    db_pool_put(p, a);
    db *b = pool_get(p, 1000);
    kerr_clear(&e);
    int rc = db_ping(b, &e);
    db_pool_put(p, b);
    db_pool_free(p);
    if (rc != 0)
        fail_msg("the pool handed out the connection whose backend was terminated: %s", e.msg);
}

static void exec_or_fail(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

/* After a failover the server a pooled connection reaches may have become a
 * read-only standby: its sessions answer 25006 read_only_sql_transaction
 * while the connection itself stays up. Such a connection must be dropped
 * (a retryable error, never "data refused"), so that the next get connects
 * anew, where libpq finds the writable server. Here the database's new
 * sessions are made read-only, a pooled one is taken, then writes are
 * allowed again: only a new connection can write. */
static void test_pool_drops_read_only(void **state)
{
    fixture *f = *state;
    char sql[256];
    snprintf(sql, sizeof sql, "ALTER DATABASE %s SET default_transaction_read_only = on",
             f->dbname);
    exec_or_fail(f->pq, sql);
    db_pool *p = pool_new(f->conninfo, "kycd-pool-ro", 1);
    db *a = pool_get(p, 1000);
    kyc_delivery dl;
    delivery(&dl, KYC_KIND_KYC_STATUS,
             "{\"externalUserId\":\"u-ro\",\"verificationStatus\":\"NOT_VERIFIED\","
             "\"attemptStatus\":\"PENDING\"}");
    db_ingest_result res;
    kerr e;
    kerr_clear(&e);
    assert_int_equal(db_ingest(a, &dl, &OPTS, &res, &e), KERR_DB);
    if (strstr(e.msg, "25006") == NULL)
        fail_msg("expected sqlstate 25006, got: %s", e.msg);
    assert_int_equal(db_alive(a), 0);
    db_pool_put(p, a);

    snprintf(sql, sizeof sql, "ALTER DATABASE %s RESET default_transaction_read_only", f->dbname);
    exec_or_fail(f->pq, sql);
    db *b = pool_get(p, 1000);
    kerr_clear(&e);
    int rc = db_ingest(b, &dl, &OPTS, &res, &e);
    db_pool_put(p, b);
    db_pool_free(p);
    if (rc != 0)
        fail_msg("the pool handed out the read-only connection again: %s", e.msg);
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.webhook_events", END), "1");
}

/* A delivery replayed from the spool keeps its receipt time, and a second
 * replay of the same request (the drainer crashed after COMMIT) stores
 * nothing more. */
static void test_replay_from_spool(void **state)
{
    fixture *f = *state;
    const char *body = "{\"externalUserId\":\"u-replay\",\"verificationStatus\":\"NOT_VERIFIED\","
                       "\"attemptStatus\":\"PENDING\"}";
    kyc_delivery dl;
    delivery(&dl, KYC_KIND_KYC_STATUS, body);
    dl.received_us = 1700000000123456LL; /* 2023-11-14 22:13:20.123456 UTC */
    db_ingest_result a = ingest_dl(f->d, &dl, &OPTS);
    assert_string_equal(kyc_outcome_name(a.outcome), "applied");
    assert_string_equal(q(f->pq,
                          "SELECT received_at = '2023-11-14 22:13:20.123456+00' "
                          "FROM kyc.webhook_events WHERE id = $1::bigint",
                          lld(a.event_id), END),
                        "t");
    db_ingest_result b = ingest_dl(f->d, &dl, &OPTS);
    assert_int_equal(b.event_id, a.event_id);
    assert_string_equal(kyc_reason_name(b.reason), "already_stored");
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.webhook_events", END), "1");
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.status_changes", END), "1");
    /* A second copy (same request id, same receipt time) is refused by the
     * database itself: since schema 7 the unique key is (request_id,
     * received_at), the partition key being part of every unique index. */
    const char *pa[] = {lld(a.event_id)};
    PGresult *dup =
        PQexecParams(f->pq,
                     "INSERT INTO kyc.webhook_events (received_at, kind, external_user_id, body, "
                     "body_sha256, request_id, outcome, outcome_reason) SELECT received_at, kind, "
                     "external_user_id, body, body_sha256, request_id, outcome, outcome_reason "
                     "FROM kyc.webhook_events WHERE id = $1::bigint",
                     1, NULL, pa, NULL, NULL, 0);
    assert_string_equal(PQresultErrorField(dup, PG_DIAG_SQLSTATE), "23505");
    PQclear(dup);
}

/* A fresh session prepares its ingest statements while another session
 * holds kyc.webhook_events locked past db_timeout: the PREPARE that names
 * the table waits and times out after the first statements of the set were
 * prepared. Once the lock is gone the same session must ingest (it used to
 * fail for good: "prepared statement ... already exists"). */
static void test_prepare_after_lock_timeout(void **state)
{
    fixture *f = *state;
    db_opts o = {.conninfo = f->conninfo, .timeout_ms = 300, .application_name = "kycd-prep"};
    db *d = NULL;
    kerr e;
    kerr_clear(&e);
    assert_int_equal(db_connect(&d, &o, &e), 0);
    kyc_delivery dl;
    delivery(&dl, KYC_KIND_KYC_STATUS,
             "{\"externalUserId\":\"u-prep\",\"verificationStatus\":\"NOT_VERIFIED\","
             "\"attemptStatus\":\"PENDING\"}");
    q_ok(f->pq, "BEGIN");
    q_ok(f->pq, "LOCK TABLE kyc.webhook_events IN EXCLUSIVE MODE");
    db_ingest_result res;
    int rc = db_ingest(d, &dl, &OPTS, &res, &e);
    assert_true(rc == KERR_TIMEOUT || rc == KERR_DB);
    q_ok(f->pq, "COMMIT");
    kerr_clear(&e);
    rc = db_ingest(d, &dl, &OPTS, &res, &e);
    if (rc != 0)
        fail_msg("ingest after the lock: %s (%d)", e.msg, rc);
    assert_string_equal(kyc_outcome_name(res.outcome), "applied");
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.webhook_events", END), "1");
    db_free(d);
}

/* "Pending" is written twice, once per language: kyc.is_pending in SQL
 * (the views, the reconciler's claim and its index) and kyc_is_pending in
 * C (core/policy.c). They must agree on every value, and the claim's
 * predicate must still be served by the partial index. */
static void test_pending_one_definition(void **state)
{
    fixture *f = *state;
    static const char *const attempts[] = {
        NULL, "PENDING", "VERIFICATION", "REJECTED_BY_PROVIDER", "SUCCESSFUL", "ON_HOLD"};
    for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
        kyc_status s;
        memset(&s, 0, sizeof s);
        snprintf(s.attempt, sizeof s.attempt, "%s", attempts[i] ? attempts[i] : "");
        const char *sql = attempts[i] ? q(f->pq, "SELECT kyc.is_pending($1)", attempts[i], END)
                                      : q(f->pq, "SELECT kyc.is_pending(NULL)", END);
        if (strcmp(sql, kyc_is_pending(&s) ? "t" : "f") != 0)
            fail_msg("attempt %s: SQL says %s, C says %d", attempts[i] ? attempts[i] : "NULL", sql,
                     kyc_is_pending(&s));
    }
    assert_non_null(strstr(q(f->pq,
                             "SELECT pg_get_expr(indpred, indrelid) FROM pg_index "
                             "WHERE indexrelid = 'kyc.verifications_due_idx'::regclass",
                             END),
                           "is_pending"));
    q_ok(f->pq, "SET enable_seqscan = off");
    PGresult *r =
        PQexec(f->pq, "EXPLAIN SELECT external_user_id FROM kyc.verifications "
                      "WHERE attention_reason IS NULL "
                      "AND (needs_check_reason IS NOT NULL OR kyc.is_pending(attempt_status)) "
                      "ORDER BY coalesce(next_check_at, updated_at) LIMIT 10");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int uses_index = 0;
    for (int i = 0; i < PQntuples(r); i++)
        uses_index |= strstr(PQgetvalue(r, i, 0), "verifications_due_idx") != NULL;
    PQclear(r);
    q_ok(f->pq, "RESET enable_seqscan");
    assert_true(uses_index);
}

/* ---------------------------------------------- re-checks (sql/006) */

/* Claims with the reconciler's options; returns "id:why,id:why" sorted. */
static const char *claim_ids(fixture *f, const db_claim_opts *o)
{
    static char out[8192];
    db_claim c[32];
    int n = 0;
    kerr e;
    kerr_clear(&e);
    if (db_claim_due(f->d, o, c, &n, &e) != 0)
        fail_msg("db_claim_due: %s", e.msg);
    /* sort by id: the claim's own order is by schedule */
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (strcmp(c[j].external_user_id, c[i].external_user_id) < 0) {
                db_claim t = c[i];
                c[i] = c[j];
                c[j] = t;
            }
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        size_t len = strlen(out);
        snprintf(out + len, sizeof out - len, "%s%s:%s", i ? "," : "", c[i].external_user_id,
                 kyc_check_why_name(c[i].why));
    }
    return out;
}

/* A settled user, its state given as P100's enums: a seed cannot hold a
 * value P100 does not document (the names come from core/vocab.c). */
static void seed_user(fixture *f, const char *id, enum kyc_vstatus vs, enum kyc_astatus as,
                      const char *ago, const char *rechecked_ago)
{
    const char *p[] = {id, kyc_vstatus_name(vs), kyc_astatus_name(as), ago, rechecked_ago};
    PGresult *r = PQexecParams(
        f->pq,
        "INSERT INTO kyc.verifications (external_user_id, source, verification_status, "
        "attempt_status, updated_at, last_webhook_at, rechecked_at) VALUES ($1, 'webhook', $2, "
        "$3, now() - $4::interval, now() - $4::interval, now() - $5::interval)",
        5, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("seed %s: %s", id, PQresultErrorMessage(r));
    PQclear(r);
}

/* One check as the reconciler records it: the row locked and read
 * (db_check_begin), core's decision on it, the plan carried out
 * (db_check_finish). Returns the result recorded. */
static enum kyc_check_result record_check(fixture *f, const char *uid, enum kyc_check_why why,
                                          const kyc_check_answer *a, int once)
{
    kyc_check_rules rules = {.pending_after_ms = 600000,
                             .max_failures = 5,
                             .backoff_min_ms = 1000,
                             .backoff_max_ms = 8000,
                             .once = once,
                             .call_timeout_ms = 10000};
    db_check_row row;
    kerr e;
    kerr_clear(&e);
    assert_int_equal(db_check_begin(f->d, uid, "test:1", &row, &e), 0);
    kyc_check_in in = {.before = &row.before,
                       .lost_lease = row.lost_lease,
                       .failures = row.failures,
                       .why = why,
                       .tries = 1,
                       .answer = a,
                       .rules = &rules,
                       .random = 1};
    kyc_check_plan p = kyc_check_decide(&in);
    db_check_record rec = {.owner = "test:1",
                           .external_user_id = uid,
                           .cls = a->cls,
                           .http_status = a->http_status,
                           .error_code = a->error_code,
                           .latency_ms = 1,
                           .why = why};
    long long id = 0;
    if (db_check_finish(f->d, &rec, &p, &id, &e) != 0)
        fail_msg("db_check_finish: %s", e.msg);
    assert_true(id > 0);
    return p.result;
}

/* Make pol the database's re-check policy, every user stamped under it;
 * returns how many users were re-stamped. */
static long long set_policy(fixture *f, db_recheck_policy pol)
{
    db_restamp rs = {0};
    long long total = 0;
    kerr e;
    do {
        if (db_recheck_policy_set(f->d, &pol, 2, &rs, &e) != 0)
            fail_msg("db_recheck_policy_set: %s", e.msg);
        total += rs.restamped;
    } while (!rs.done);
    return total;
}

static void test_recheck_claims(void **state)
{
    fixture *f = *state;
    const db_recheck_policy pol = {.rejected_after_ms = 3600000,
                                   .rejected_for_ms = 30LL * 86400000,
                                   .verified_every_ms = 30LL * 86400000};
    set_policy(f, pol);
    /* rejected: first after 1 h, then after twice the time since the last word */
    seed_user(f, "r1-due", KYC_V_NOT_VERIFIED, KYC_A_REJECTED, "2 hours", NULL);
    seed_user(f, "r2-early", KYC_V_NOT_VERIFIED, KYC_A_REJECTED, "30 minutes", NULL);
    seed_user(f, "r3-over", KYC_V_NOT_VERIFIED, KYC_A_REJECTED, "31 days", NULL);
    seed_user(f, "r4-wait", KYC_V_NOT_VERIFIED, KYC_A_REJECTED, "5 hours",
              "2 hours"); /* next: +3 h */
    seed_user(f, "r5-due", KYC_V_NOT_VERIFIED, KYC_A_REJECTED, "10 hours",
              "6 hours"); /* was due 2 h ago */
    /* verified: once per interval, in the user's slot */
    seed_user(f, "v1-due", KYC_V_VERIFIED, KYC_A_SUCCESSFUL, "31 days", NULL);
    seed_user(f, "v2-fresh", KYC_V_VERIFIED, KYC_A_SUCCESSFUL, "0 seconds", NULL);
    /* never a re-check: pending, held, flagged, expired */
    seed_user(f, "p1-pending", KYC_V_NOT_VERIFIED, KYC_A_VERIFICATION, "2 hours", NULL);
    seed_user(f, "h1-held", KYC_V_VERIFIED, KYC_A_SUCCESSFUL, "40 days", NULL);
    q_ok(f->pq, "UPDATE kyc.verifications SET needs_check_reason = 'conflict' "
                "WHERE external_user_id = 'h1-held'");
    seed_user(f, "f1-flagged", KYC_V_NOT_VERIFIED, KYC_A_REJECTED, "2 hours", NULL);
    q_ok(f->pq, "UPDATE kyc.verifications SET attention_reason = 'P445' "
                "WHERE external_user_id = 'f1-flagged'");
    seed_user(f, "e1-expired", KYC_V_EXPIRED, KYC_A_SUCCESSFUL, "40 days", NULL);

    db_claim_opts o = {.owner = "test:1",
                       .limit = 32,
                       .lease_ms = 60000,
                       .pending_after_ms = 600000,
                       .recheck = 1};
    assert_string_equal(claim_ids(f, &o),
                        "r1-due:recheck_rejected,r5-due:recheck_rejected,v1-due:recheck_verified");
    /* claimed: a second claim skips them */
    assert_string_equal(claim_ids(f, &o), "");
    /* the other claim: held and pending users only */
    o.recheck = 0;
    assert_string_equal(claim_ids(f, &o), "h1-held:held,p1-pending:pending");

    /* A re-check that finds an expiry: reason recheck, purpose recheck_verified. */
    kyc_status answer;
    memset(&answer, 0, sizeof answer);
    snprintf(answer.verification, sizeof answer.verification, "%s",
             kyc_vstatus_name(KYC_V_EXPIRED));
    snprintf(answer.attempt, sizeof answer.attempt, "%s", kyc_astatus_name(KYC_A_SUCCESSFUL));
    kyc_check_answer ok = {.cls = P100_OK,
                           .http_status = 200,
                           .error_code = "",
                           .error_message = "",
                           .status = &answer};
    assert_int_equal(record_check(f, "v1-due", KYC_WHY_RECHECK_VERIFIED, &ok, 0),
                     KYC_CHECK_APPLIED);
    assert_string_equal(q(f->pq,
                          "SELECT reason || '/' || purpose || '/' || new_verification_status "
                          "FROM kyc.reconciler_corrections WHERE external_user_id = 'v1-due'",
                          END),
                        "recheck/recheck_verified/EXPIRED");
    assert_string_equal(
        q(f->pq,
          "SELECT (rechecked_at IS NOT NULL)::text || (next_check_at IS NULL)::text "
          "|| (lease_owner IS NULL)::text FROM kyc.verifications "
          "WHERE external_user_id = 'v1-due'",
          END),
        "truetruetrue");

    /* P100 agrees with a rejection: unchanged, and the next re-check waits
     * twice the time since the rejection (2 h -> in about 2 h). */
    memset(&answer, 0, sizeof answer);
    snprintf(answer.verification, sizeof answer.verification, "%s",
             kyc_vstatus_name(KYC_V_NOT_VERIFIED));
    snprintf(answer.attempt, sizeof answer.attempt, "%s", kyc_astatus_name(KYC_A_REJECTED));
    assert_int_equal(record_check(f, "r1-due", KYC_WHY_RECHECK_REJECTED, &ok, 0),
                     KYC_CHECK_UNCHANGED);
    assert_string_equal(
        q(f->pq, "SELECT purpose FROM kyc.status_checks WHERE external_user_id = 'r1-due'", END),
        "recheck_rejected");

    /* A retry within a pass keeps the claim; r5 stays claimed. */
    kyc_check_answer slow = {.cls = P100_RATE_LIMITED,
                             .http_status = 429,
                             .error_code = "",
                             .error_message = "",
                             .retry_after_ms = 1000};
    assert_int_equal(record_check(f, "r5-due", KYC_WHY_RECHECK_REJECTED, &slow, 1),
                     KYC_CHECK_RETRY);
    assert_string_equal(q(f->pq,
                          "SELECT lease_owner FROM kyc.verifications "
                          "WHERE external_user_id = 'r5-due'",
                          END),
                        "test:1");

    /* Later, with every claim given back and no next_check_at: r1 waits,
     * nothing else of the re-checks is due (v1 expired, r5 at +1 s). */
    q_ok(f->pq, "UPDATE kyc.verifications SET lease_owner = NULL, lease_until = NULL");
    o.recheck = 1;
    assert_string_equal(claim_ids(f, &o), "");

    /* A new webhook resets the rejected schedule: r2's last word is now. */
    q_ok(f->pq, "UPDATE kyc.verifications SET updated_at = now() - interval '3 hours', "
                "last_webhook_at = now() WHERE external_user_id = 'r2-early'");
    assert_string_equal(claim_ids(f, &o), "");
}

/* The re-check policy is the database's: until kycd sets it nobody is
 * stamped; setting it stamps the users there (in batches: 2 here), the
 * same policy again stamps nobody, and a change re-stamps everyone (off:
 * no stamp is left; on again: they come back). */
static void test_recheck_policy(void **state)
{
    fixture *f = *state;
    const db_recheck_policy pol = {.rejected_after_ms = 3600000,
                                   .rejected_for_ms = 30LL * 86400000,
                                   .verified_every_ms = 30LL * 86400000};
    db_claim_opts o = {.owner = "test:1", .limit = 32, .lease_ms = 60000, .recheck = 1};
    seed_user(f, "v0-before", KYC_V_VERIFIED, KYC_A_SUCCESSFUL, "31 days", NULL);
    seed_user(f, "r0-before", KYC_V_NOT_VERIFIED, KYC_A_REJECTED, "2 hours", NULL);
    seed_user(f, "e0-expired", KYC_V_EXPIRED, KYC_A_SUCCESSFUL, "40 days", NULL);
    const char *stamped = "SELECT count(*) FROM kyc.verifications WHERE recheck_at IS NOT NULL";
    assert_string_equal(q(f->pq, stamped, END), "0");
    assert_string_equal(claim_ids(f, &o), "");
    assert_true(set_policy(f, pol) == 3);
    assert_string_equal(q(f->pq, stamped, END), "2");
    assert_true(set_policy(f, pol) == 0);
    /* off: verified_every 0 and rejected_for 0 stamp nobody, claim nothing */
    assert_true(set_policy(f, (db_recheck_policy){.rejected_after_ms = 3600000}) == 3);
    assert_string_equal(q(f->pq, stamped, END), "0");
    assert_string_equal(claim_ids(f, &o), "");
    set_policy(f, pol);
    assert_string_equal(claim_ids(f, &o), "r0-before:recheck_rejected,v0-before:recheck_verified");
}

static void test_recheck_once_and_spread(void **state)
{
    fixture *f = *state;
    /* A pass: users checked since its start are never claimed again in it. */
    seed_user(f, "p-checked", KYC_V_NOT_VERIFIED, KYC_A_PENDING, "2 hours", NULL);
    seed_user(f, "p-left", KYC_V_NOT_VERIFIED, KYC_A_PENDING, "2 hours", NULL);
    q_ok(f->pq, "UPDATE kyc.verifications SET last_checked_at = now() - interval '1 second' "
                "WHERE external_user_id = 'p-checked'");
    db_claim_opts o = {.owner = "test:1",
                       .limit = 32,
                       .lease_ms = 60000,
                       .pending_after_ms = 600000,
                       .once = 1,
                       .pass_age_ms = 5000}; /* the pass started 5 s ago */
    assert_string_equal(claim_ids(f, &o), "p-left:pending");
    /* A user that became due after the pass started waits for the next. */
    seed_user(f, "p-late", KYC_V_NOT_VERIFIED, KYC_A_PENDING, "600 seconds", NULL);
    q_ok(f->pq, "UPDATE kyc.verifications SET lease_owner = NULL, lease_until = NULL");
    assert_string_equal(claim_ids(f, &o), "p-left:pending");

    /* Verified users' slots spread evenly: 2,000 ids over 10 tenths of the
     * interval, each tenth within 30% of 200. */
    const char *spread =
        q(f->pq,
          "SELECT min(n) || '/' || max(n) FROM (SELECT floor(extract(epoch FROM "
          "  (now() - kyc.recheck_slot(kyc.recheck_phase('user-' || g), 86400000, now()))) / 8640) "
          "  AS tenth, "
          "  count(*) AS n FROM generate_series(1, 2000) g GROUP BY 1) s",
          END);
    int lo = 0, hi = 0;
    assert_int_equal(sscanf(spread, "%d/%d", &lo, &hi), 2);
    if (lo < 140 || hi > 260)
        fail_msg("slots not spread evenly: %s per tenth", spread);
    /* a slot is never in the future, and at most one interval back */
    assert_string_equal(
        q(f->pq,
          "SELECT bool_and(s <= now() AND s > now() - interval '1 day')::text "
          "FROM (SELECT kyc.recheck_slot(kyc.recheck_phase('user-' || g), 86400000, now()) AS s "
          "FROM generate_series(1, 500) g) x",
          END),
        "true");
}

/* Group commit: one batch holding several users, a user three times (its
 * steps in order, each seeing the one before), a repeat, a POA status and a
 * replay of a stored delivery gives what one transaction per delivery
 * gives, in one COMMIT. */
static void test_batch_matches_one_by_one(void **state)
{
    fixture *f = *state;
    enum { N = 7 };
    char bodies[2][N][256];
    enum kyc_kind kinds[N] = {KYC_KIND_KYC_STATUS, KYC_KIND_KYC_STATUS, KYC_KIND_KYC_STATUS,
                              KYC_KIND_KYC_STATUS, KYC_KIND_KYC_STATUS, KYC_KIND_POA_STATUS,
                              KYC_KIND_KYC_STATUS};
    db_ingest_result one[N], batch[N + 1];
    for (int side = 0; side < 2; side++) {
        char a[32], b[32];
        snprintf(a, sizeof a, "u-batch-a%d", side);
        snprintf(b, sizeof b, "u-batch-b%d", side);
        kyc_json(bodies[side][0], 256, a, "NOT_VERIFIED", "PENDING", NULL);
        kyc_json(bodies[side][1], 256, b, "NOT_VERIFIED", "PENDING", NULL);
        kyc_json(bodies[side][2], 256, a, "NOT_VERIFIED", "VERIFICATION", NULL);
        kyc_json(bodies[side][3], 256, a, "NOT_VERIFIED", "VERIFICATION", NULL); /* repeat */
        kyc_json(bodies[side][4], 256, a, "VERIFIED", "SUCCESSFUL", NULL);
        snprintf(bodies[side][5], 256, "{\"externalUserId\":\"%s\",\"status\":\"WAITING\"}", b);
        kyc_json(bodies[side][6], 256, b, "NOT_VERIFIED", "VERIFICATION", NULL);
    }
    /* side 0, one by one */
    for (int i = 0; i < N; i++)
        one[i] = ingest(f->d, kinds[i], bodies[0][i], &OPTS);
    /* side 1, one batch (plus a replay of a delivery stored before it) */
    kyc_delivery dl[N + 1];
    const kyc_delivery *ptr[N + 1];
    for (int i = 0; i < N; i++) {
        delivery(&dl[i], kinds[i], bodies[1][i]);
        ptr[i] = &dl[i];
    }
    char early[256];
    kyc_json(early, sizeof early, "u-batch-c", "NOT_VERIFIED", "PENDING", NULL);
    delivery(&dl[N], KYC_KIND_KYC_STATUS, early);
    dl[N].received_us = 1700000000123456LL;
    db_ingest_result stored = ingest_dl(f->d, &dl[N], &OPTS);
    ptr[N] = &dl[N];
    kerr e;
    kerr_clear(&e);
    int rc = db_ingest_batch(f->d, ptr, N + 1, &OPTS, batch, &e);
    if (rc != 0)
        fail_msg("db_ingest_batch: %s (%d)", e.msg, rc);
    for (int i = 0; i < N; i++) {
        assert_string_equal(kyc_outcome_name(batch[i].outcome), kyc_outcome_name(one[i].outcome));
        assert_string_equal(kyc_reason_name(batch[i].reason), kyc_reason_name(one[i].reason));
        assert_true(batch[i].event_id > 0);
        assert_int_equal(batch[i].repeat_of != 0, one[i].repeat_of != 0);
    }
    assert_int_equal(batch[3].repeat_of, batch[2].event_id); /* the repeat found its twin */
    assert_int_equal(batch[N].event_id, stored.event_id);
    assert_string_equal(kyc_reason_name(batch[N].reason), "already_stored");
    /* the same state on both sides; each user's events in the batch's order */
    for (int side = 0; side < 2; side++) {
        char a[32];
        snprintf(a, sizeof a, "u-batch-a%d", side);
        assert_string_equal(q(f->pq,
                              "SELECT verification_status || '/' || attempt_status "
                              "FROM kyc.verifications WHERE external_user_id = $1",
                              a, END),
                            "VERIFIED/SUCCESSFUL");
        assert_string_equal(q(f->pq,
                              "SELECT string_agg(outcome, ',' ORDER BY id) FROM kyc.webhook_events "
                              "WHERE external_user_id = $1",
                              a, END),
                            "applied,applied,unchanged,applied");
    }
    assert_string_equal(q(f->pq,
                          "SELECT status FROM kyc.poa_statuses WHERE external_user_id = "
                          "'u-batch-b1'",
                          END),
                        "WAITING");
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.webhook_events", END), "15");
    assert_string_equal(q(f->pq,
                          "SELECT count(DISTINCT xmin::text) FROM kyc.webhook_events "
                          "WHERE external_user_id LIKE 'u-batch-%1'",
                          END),
                        "1"); /* one transaction */
}

/* The batch statements take their values as array literals: values that
 * mean something inside one (NULL, a comma, braces, quotes, backslashes)
 * arrive as they were sent, each in its own delivery's rows. */
static void test_batch_array_values(void **state)
{
    fixture *f = *state;
    static const char *const users[] = {"NULL", "a,b", "{x}", "q\"uote", "back\\slash", " "};
    enum { N = sizeof users / sizeof *users };
    char bodies[N][256], json_user[64];
    kyc_delivery dl[N];
    const kyc_delivery *ptr[N];
    for (int i = 0; i < N; i++) {
        /* the id as a JSON string body */
        size_t o = 0;
        for (const char *c = users[i]; *c && o + 2 < sizeof json_user; c++) {
            if (*c == '"' || *c == '\\')
                json_user[o++] = '\\';
            json_user[o++] = *c;
        }
        json_user[o] = '\0';
        kyc_json(bodies[i], sizeof bodies[i], json_user, "NOT_VERIFIED", "REJECTED_BY_PROVIDER",
                 json_user);
        delivery(&dl[i], KYC_KIND_KYC_STATUS, bodies[i]);
        assert_string_equal(dl[i].external_user_id, users[i]);
        ptr[i] = &dl[i];
    }
    db_ingest_result res[N];
    kerr e;
    kerr_clear(&e);
    int rc = db_ingest_batch(f->d, ptr, N, &OPTS, res, &e);
    if (rc != 0)
        fail_msg("db_ingest_batch: %s (%d)", e.msg, rc);
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "%lld", res[i].event_id);
        assert_string_equal(
            q(f->pq,
              "SELECT format('%s|%s|%s', e.external_user_id, "
              "e.body ->> 'externalUserId', v.rejection_reason) "
              "FROM kyc.webhook_events e JOIN kyc.verifications v "
              "USING (external_user_id) WHERE e.id = $1",
              id, END),
            q(f->pq, "SELECT format('%s|%s|%s', $1::text, $1::text, $1::text)", users[i], END));
    }
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.status_changes", END), "6");
}

/* One delivery the database refuses fails the whole batch: nothing of it
 * is committed, the error names the data (KERR_INVALID: the caller stores
 * them one by one), and the connection is fit for the next batch. */
static void test_batch_refused_commits_nothing(void **state)
{
    fixture *f = *state;
    char b1[256], b2[256], b3[256];
    kyc_json(b1, sizeof b1, "u-ref-1", "NOT_VERIFIED", "PENDING", NULL);
    kyc_json(b2, sizeof b2, "u-ref-2", "NOT_VERIFIED", "PENDING", NULL);
    kyc_json(b3, sizeof b3, "u-ref-3", "NOT_VERIFIED", "PENDING", NULL);
    kyc_delivery dl[3];
    delivery(&dl[0], KYC_KIND_KYC_STATUS, b1);
    delivery(&dl[1], KYC_KIND_KYC_STATUS, b2);
    delivery(&dl[2], KYC_KIND_KYC_STATUS, b3);
    (void)ingest_dl(f->d, &dl[1], &OPTS);
    /* A value the database refuses (not an address for the inet column). */
    kyc_delivery bad = dl[1];
    snprintf(bad.remote_addr, sizeof bad.remote_addr, "%s", "not-an-address");
    const kyc_delivery *ptr[3] = {&dl[0], &bad, &dl[2]};
    db_ingest_result res[3];
    kerr e;
    kerr_clear(&e);
    assert_int_equal(db_ingest_batch(f->d, ptr, 3, &OPTS, res, &e), KERR_INVALID);
    assert_non_null(strstr(e.msg, "storing deliveries"));
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.webhook_events", END), "1");
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.verifications", END), "1");
    assert_true(db_alive(f->d));
    const kyc_delivery *rest[2] = {&dl[0], &dl[2]};
    kerr_clear(&e);
    assert_int_equal(db_ingest_batch(f->d, rest, 2, &OPTS, res, &e), 0);
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.webhook_events", END), "3");
    assert_int_equal(db_ping(f->d, &e), 0);
}

/* Two batches over the same users in opposite orders, at once, on two
 * connections (two kycd instances): locks are taken in user order, so
 * neither deadlocks; both commit everything. */
typedef struct batch_arg {
    db *d;
    const kyc_delivery *const *ptr;
    int n, rc;
} batch_arg;

static void *batch_thread(void *arg)
{
    batch_arg *b = arg;
    db_ingest_result res[16];
    kerr e;
    kerr_clear(&e);
    for (int round = 0; round < 20 && b->rc == 0; round++)
        b->rc = db_ingest_batch(b->d, b->ptr, b->n, &OPTS, res, &e);
    return NULL;
}

static void test_batches_cross_no_deadlock(void **state)
{
    fixture *f = *state;
    enum { N = 8 };
    static char bodies[2][N][256];
    kyc_delivery dl[2][N];
    const kyc_delivery *ptr[2][N];
    for (int i = 0; i < N; i++) {
        char user[32];
        snprintf(user, sizeof user, "u-cross-%d", i);
        kyc_json(bodies[0][i], 256, user, "NOT_VERIFIED", "PENDING", NULL);
        kyc_json(bodies[1][N - 1 - i], 256, user, "NOT_VERIFIED", "VERIFICATION", NULL);
    }
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < N; i++) {
            delivery(&dl[s][i], KYC_KIND_KYC_STATUS, bodies[s][i]);
            dl[s][i].request_id[0] = '\0'; /* repeated 20 times */
            ptr[s][i] = &dl[s][i];
        }
    db *other = connect_db(f->conninfo, "kycd-other");
    batch_arg a = {.d = f->d, .ptr = ptr[0], .n = N}, b = {.d = other, .ptr = ptr[1], .n = N};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, batch_thread, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, batch_thread, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    db_free(other);
    assert_int_equal(a.rc, 0);
    assert_int_equal(b.rc, 0);
    assert_string_equal(q(f->pq, "SELECT count(*) FROM kyc.webhook_events", END), "320");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrate_fresh_then_noop, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_refuses_tampered, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_two_processes, setup_empty, teardown),
        cmocka_unit_test_setup_teardown(test_first_delivery, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_repeat, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_forward, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_order, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_leaves_verified, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_new_attempt, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_value, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_other_kinds, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_same_body, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_same_body_known_user, setup_migrated,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_same_body_poa, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_same_body_file, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_users, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_append_only, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_analyst_role, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_views, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_sql_looking_values, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_dead_connection, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_ingest_killed_mid_transaction, setup_migrated,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pool_size_and_timeout, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_pool_replaces_failed, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_pool_replaces_terminated, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_pool_drops_read_only, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_replay_from_spool, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_prepare_after_lock_timeout, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_pending_one_definition, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_recheck_claims, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_recheck_policy, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_recheck_once_and_spread, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_batch_matches_one_by_one, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_batch_array_values, setup_migrated, teardown),
        cmocka_unit_test_setup_teardown(test_batch_refused_commits_nothing, setup_migrated,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_batches_cross_no_deadlock, setup_migrated, teardown),
    };
    return cmocka_run_group_tests_name("integration/db", tests, NULL, NULL);
}
