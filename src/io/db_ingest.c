/* The write path for webhook deliveries (see db_ingest.h): one transaction
 * per batch that appends each delivery to the event log and carries out
 * what core decided (core/state.h for KYC, core/policy.h for the other
 * kinds). Must never decide a state itself, nor report success before
 * COMMIT.
 *
 * The statements are set-based: each takes one array per column, one
 * element per delivery of the round (unnest ... WITH ORDINALITY: a row's
 * ordinal says which delivery it is for), so that a batch pays each
 * statement's fixed cost (executor start-up, partition routing, index and
 * constraint set-up) once, not once per delivery. A single delivery is a
 * batch of one and runs the same statements. Each element finds its rows
 * through a LATERAL subquery that cannot be flattened (FOR UPDATE, OFFSET
 * 0): index lookups per element, in array order, never a join of the
 * whole table (see SQL_PLANS). The statements' texts are in
 * io/db_ingest_sql.c; the row lock is io/db.c's DB_LOCK_USERS. */
#include "io/db_ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "core/policy.h"
#include "io/db_ingest_internal.h"

/* SQL_WRITE's $12 (io/db_ingest_sql.c): what core decided. */
static const char W_APPLY[] = "apply", W_HOLD[] = "hold", W_UNCHANGED[] = "unchanged",
                  W_POA[] = "poa", W_EVENT[] = "event";

/* One of the ingest statements (io/db_ingest_sql.c). */
static const db_stmt *stmt(enum db_ingest_stmt s)
{
    return &DB_INGEST_STMTS[s];
}

/* The most array parameters of one statement (SQL_WRITE's). */
enum { NCOLS = 15 };

/* One delivery of a batch: its parameters, what the reads found, what core
 * decided. */
typedef struct item {
    const kyc_delivery *dl;
    int idx;   /* in the caller's arrays (arrival order) */
    int round; /* how many earlier deliveries of the batch share its lock */
    char received[48];
    const char *received_p; /* NULL: now */
    char unknown[160];
    int stored; /* a replayed delivery found already stored */
    int locked; /* its KYC row was locked and read into cur */
    int read;   /* SQL_PRIOR answered for it */
    int written;
    db_user_row cur;
    long long repeat_of;
    char poa[KYC_VALUE_MAX + 1];
    char repeat_buf[24];
    const char *act; /* W_*; NULL: nothing to write */
    const char *state_val[3];
    db_ingest_result res;
} item;

/* What each queued statement's result is for: a round's deliveries are
 * order[at .. at + n). */
enum expect { X_BEGIN, X_REPLAYED, X_ENSURE, X_LOCK, X_OTHER_LOCK, X_PRIOR, X_WRITE, X_COMMIT };

typedef struct expectation {
    enum expect what;
    int at, n;
} expectation;

typedef struct batch {
    db *d;
    const db_ingest_opts *o;
    char window[24];
    item *items;
    item **order; /* by (round, user, kind, arrival): the order of the locks */
    int n;
    expectation *exp;
    int nexp, cap;
    int conflict;     /* the failure was a deadlock or serialization failure: retry */
    kbuf cols[NCOLS]; /* the array parameters of the statement being queued */
    int at, end;      /* the round being queued: order[at .. end) */
} batch;

static void item_init(item *it, const kyc_delivery *dl, int idx)
{
    memset(it, 0, sizeof *it);
    it->dl = dl;
    it->idx = idx;
    it->cur.age_ms = -1;
    /* "a,b" -> "{a,b}" (field names are ours: letters only). */
    snprintf(it->unknown, sizeof it->unknown, "{%s}", dl->unknown_fields);
    /* The receipt time of a delivery replayed from the spool; NULL: now. */
    if (dl->received_us > 0) {
        db_time_param(dl->received_us, it->received, sizeof it->received);
        it->received_p = it->received;
    }
}

static int is_kyc(const item *it)
{
    return it->dl->kind == KYC_KIND_KYC_STATUS;
}

/* Same lock: the same KYC user row, or the same (kind, user) advisory lock. */
static int same_lock(const kyc_delivery *a, const kyc_delivery *b)
{
    int ka = a->kind == KYC_KIND_KYC_STATUS, kb = b->kind == KYC_KIND_KYC_STATUS;
    if (ka != kb || (!ka && a->kind != b->kind))
        return 0;
    return strcmp(a->external_user_id, b->external_user_id) == 0;
}

static int order_cmp(const void *pa, const void *pb)
{
    const item *a = *(item *const *)pa, *b = *(item *const *)pb;
    if (a->round != b->round)
        return a->round < b->round ? -1 : 1;
    int c = strcmp(a->dl->external_user_id, b->dl->external_user_id);
    if (c != 0)
        return c;
    if (a->dl->kind != b->dl->kind)
        return a->dl->kind < b->dl->kind ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int expect_push(batch *b, enum expect what, int sent_rc, kerr *err)
{
    if (sent_rc != 0)
        return db_fail(b->d, NULL, "queueing a statement", err);
    if (b->nexp == b->cap)
        return kerr_set(err, KERR_STATE, "pipeline: more statements than planned");
    b->exp[b->nexp] = (expectation){.what = what, .at = b->at, .n = b->end - b->at};
    b->nexp++;
    return 0;
}

/* A column of the round: one element per delivery, in lock order. */
typedef const char *(*column_fn)(const item *it);

static const char *c_user(const item *it)
{
    return it->dl->external_user_id;
}
static const char *c_user_kyc(const item *it)
{
    return is_kyc(it) ? it->dl->external_user_id : NULL;
}
static const char *c_kind(const item *it)
{
    return kyc_kind_name(it->dl->kind);
}
static const char *c_kind_other(const item *it)
{
    return is_kyc(it) ? NULL : kyc_kind_name(it->dl->kind);
}
static const char *c_body(const item *it)
{
    return it->dl->body; /* not NUL-terminated: fill() takes its length */
}
static const char *c_sha(const item *it)
{
    return it->dl->body_sha256;
}
static const char *c_received(const item *it)
{
    return it->received_p;
}
static const char *c_replay(const item *it)
{
    return it->dl->received_us > 0 && it->dl->request_id[0] ? it->dl->request_id : NULL;
}
static const char *c_addr(const item *it)
{
    return it->dl->remote_addr[0] ? it->dl->remote_addr : NULL;
}
static const char *c_request(const item *it)
{
    return it->dl->request_id[0] ? it->dl->request_id : NULL;
}
static const char *c_repeat(const item *it)
{
    return it->repeat_of ? it->repeat_buf : NULL;
}
static const char *c_outcome(const item *it)
{
    return kyc_outcome_name(it->res.outcome);
}
static const char *c_reason(const item *it)
{
    return kyc_reason_name(it->res.reason);
}
static const char *c_unknown(const item *it)
{
    return it->unknown;
}
static const char *c_act(const item *it)
{
    return it->act;
}
static const char *c_state0(const item *it)
{
    return it->state_val[0];
}
static const char *c_state1(const item *it)
{
    return it->state_val[1];
}
static const char *c_state2(const item *it)
{
    return it->state_val[2];
}

/* Fill cols[k] from the round. */
static int fill(batch *b, int k, column_fn col)
{
    kbuf_reset(&b->cols[k]);
    for (int j = b->at; j < b->end; j++) {
        const item *it = b->order[j];
        size_t len = col == c_body ? it->dl->body_len : (size_t)-1;
        int rc = db_array_add(&b->cols[k], col(it), len);
        if (rc != 0)
            return rc;
    }
    return db_array_done(&b->cols[k]);
}

/* Queue statement st with the columns given, then nscalars scalar
 * parameters (SQL_PRIOR's). */
static int send_set(batch *b, enum expect what, const db_stmt *st, const column_fn *cols, int ncols,
                    const char *const *scalars, int nscalars, kerr *err)
{
    const char *vals[NCOLS + 2];
    for (int k = 0; k < ncols; k++) {
        if (fill(b, k, cols[k]) != 0)
            return kerr_set(err, KERR_NOMEM, "out of memory");
        vals[k] = b->cols[k].data;
    }
    for (int k = 0; k < nscalars && ncols + k < NCOLS + 2; k++)
        vals[ncols + k] = scalars[k];
    return expect_push(b, what, db_send(b->d, st, vals), err);
}

/* The reads of a round: were replays stored already, take the locks,
 * then look for repeats (after the locks: see SQL_PRIOR). */
static int send_reads(batch *b, kerr *err)
{
    int replays = 0, kyc = 0, other = 0, rc;
    for (int j = b->at; j < b->end; j++) {
        replays += c_replay(b->order[j]) != NULL;
        kyc += is_kyc(b->order[j]);
        other += !is_kyc(b->order[j]);
    }
    if (replays) {
        static const column_fn c[] = {c_replay};
        if ((rc = send_set(b, X_REPLAYED, stmt(DB_INGEST_REPLAYED), c, 1, NULL, 0, err)) != 0)
            return rc;
    }
    if (kyc) {
        /* Later rounds only hold users of round 0: their rows exist. */
        static const column_fn ce[] = {c_user_kyc}, cl[] = {c_user_kyc, c_received};
        if (b->order[b->at]->round == 0 &&
            (rc = send_set(b, X_ENSURE, stmt(DB_INGEST_ENSURE), ce, 1, NULL, 0, err)) != 0)
            return rc;
        if ((rc = send_set(b, X_LOCK, &DB_LOCK_USERS, cl, 2, NULL, 0, err)) != 0)
            return rc;
    }
    if (other) {
        static const column_fn c[] = {c_user, c_kind_other};
        if ((rc = send_set(b, X_OTHER_LOCK, stmt(DB_INGEST_OTHER_LOCK), c, 2, NULL, 0, err)) != 0)
            return rc;
    }
    /* The round's oldest receipt (replays), NULL when all are live. */
    const item *oldest = NULL;
    for (int j = b->at; j < b->end; j++) {
        const item *it = b->order[j];
        if (it->received_p && (oldest == NULL || it->dl->received_us < oldest->dl->received_us))
            oldest = it;
    }
    static const column_fn c[] = {c_user, c_sha, c_kind, c_received};
    const char *scalars[] = {b->window, oldest ? oldest->received_p : NULL};
    return send_set(b, X_PRIOR, stmt(DB_INGEST_PRIOR), c, 4, scalars, 2, err);
}

/* Ask core what the delivery means, given what the reads found. */
static void decide(batch *b, item *it)
{
    const kyc_delivery *dl = it->dl;
    it->state_val[0] = it->state_val[1] = it->state_val[2] = NULL;
    if (dl->kind == KYC_KIND_KYC_STATUS) {
        kyc_transition t = {
            .current = &it->cur.status,
            .current_age_ms = it->cur.age_ms,
            .incoming = &dl->status,
            .source = KYC_SRC_WEBHOOK,
            .is_repeat = it->repeat_of != 0,
            .reorder_window_ms = b->o->reorder_window_ms,
        };
        kyc_verdict v = kyc_state_decide(&t);
        it->res.outcome = (enum kyc_outcome)v.decision;
        it->res.reason = v.reason;
        if (v.decision == KYC_APPLY) {
            it->act = W_APPLY;
            it->state_val[0] = dl->status.verification;
            it->state_val[1] = dl->status.attempt;
            it->state_val[2] = dl->status.reason;
        } else {
            it->act = v.decision == KYC_HOLD ? W_HOLD : W_UNCHANGED;
        }
    } else {
        kyc_other_verdict v =
            kyc_other_decide(dl->kind, it->repeat_of != 0, it->poa, dl->other_status);
        it->res.outcome = v.outcome;
        it->res.reason = v.reason;
        it->act = W_EVENT;
        if (v.outcome == KYC_OUTCOME_APPLIED) {
            it->act = W_POA;
            it->state_val[0] = dl->other_status;
        }
    }
    it->res.repeat_of = it->repeat_of;
}

/* Decide the round's deliveries and queue their writes (one statement).
 * The bodies go as text: valid UTF-8 JSON without NUL bytes
 * (core/payload.c), so the jsonb cast cannot misread them. */
static int send_writes(batch *b, kerr *err)
{
    int writes = 0;
    for (int j = b->at; j < b->end; j++) {
        item *it = b->order[j];
        if (it->stored)
            continue;
        decide(b, it);
        writes++;
    }
    if (writes == 0)
        return 0;
    static const column_fn c[NCOLS] = {
        c_user,   c_kind,    c_body,     c_sha, c_addr,   c_request, c_repeat, c_outcome,
        c_reason, c_unknown, c_received, c_act, c_state0, c_state1,  c_state2,
    };
    return send_set(b, X_WRITE, stmt(DB_INGEST_WRITE), c, NCOLS, NULL, 0, err);
}

/* The round's delivery a result row is for (its first column: the
 * ordinal), or NULL when the row makes no sense. */
static item *row_item(batch *b, const expectation *x, PGresult *r, int row)
{
    long long ord = atoll(PQgetvalue(r, row, 0));
    return ord >= 1 && ord <= x->n ? b->order[x->at + ord - 1] : NULL;
}

/* The rows DB_LOCK_USERS locked and read. */
static int take_locked(batch *b, const expectation *x, PGresult *r, kerr *err)
{
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return db_fail(b->d, r, "locking user rows", err);
    for (int i = 0; i < PQntuples(r); i++) {
        item *it = row_item(b, x, r, i);
        if (it == NULL || !is_kyc(it))
            return kerr_set(err, KERR_DB, "locking user rows: unexpected row");
        db_user_row_read(r, i, 1, &it->cur);
        it->locked = 1;
    }
    /* The rows were created or found in this transaction: one is gone
     * when `kycd erase` deleted it meanwhile (pseudonymised: the id is
     * new again). The whole batch again, as for a deadlock: it creates
     * the row anew, a delivery after the erasure. */
    for (int j = x->at; j < x->at + x->n; j++)
        if (is_kyc(b->order[j]) && !b->order[j]->locked) {
            b->conflict = 1;
            return kerr_set(err, KERR_DB, "user row vanished while locked");
        }
    return 0;
}

/* The replayed deliveries found already stored. */
static int take_replayed(batch *b, const expectation *x, PGresult *r, kerr *err)
{
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return db_fail(b->d, r, "looking for replayed deliveries", err);
    for (int i = 0; i < PQntuples(r); i++) {
        item *it = row_item(b, x, r, i);
        if (it == NULL)
            return kerr_set(err, KERR_DB, "looking for replayed deliveries: unexpected row");
        /* Stored before the crash that interrupted the replay. */
        it->stored = 1;
        it->res.event_id = atoll(PQgetvalue(r, i, 1));
        it->res.repeat_of = PQgetisnull(r, i, 2) ? 0 : atoll(PQgetvalue(r, i, 2));
        it->res.outcome = KYC_OUTCOME_UNCHANGED;
        it->res.reason = KYC_R_ALREADY_STORED;
    }
    return 0;
}

/* Each delivery's earlier identical one and its user's POA status. */
static int take_prior(batch *b, const expectation *x, PGresult *r, kerr *err)
{
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != x->n)
        return db_fail(b->d, r, "looking for repeats", err);
    for (int i = 0; i < x->n; i++) {
        item *it = row_item(b, x, r, i);
        if (it == NULL || it->read)
            return kerr_set(err, KERR_DB, "looking for repeats: unexpected row");
        it->read = 1;
        it->repeat_of = PQgetisnull(r, i, 1) ? 0 : atoll(PQgetvalue(r, i, 1));
        snprintf(it->repeat_buf, sizeof it->repeat_buf, "%lld", it->repeat_of);
        snprintf(it->poa, sizeof it->poa, "%s", PQgetvalue(r, i, 2));
    }
    return 0;
}

/* The event of each delivery written. */
static int take_written(batch *b, const expectation *x, PGresult *r, kerr *err)
{
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return db_fail(b->d, r, "storing deliveries", err);
    int want = 0;
    for (int j = x->at; j < x->at + x->n; j++)
        want += !b->order[j]->stored;
    if (PQntuples(r) != want)
        return kerr_set(err, KERR_DB, "storing deliveries: %d events for %d", PQntuples(r), want);
    for (int i = 0; i < want; i++) {
        item *it = row_item(b, x, r, i);
        if (it == NULL || it->stored || it->written)
            return kerr_set(err, KERR_DB, "storing deliveries: unexpected row");
        it->written = 1;
        it->res.event_id = atoll(PQgetvalue(r, i, 1));
    }
    return 0;
}

/* Map one statement's result into its deliveries. */
static int take(batch *b, const expectation *x, PGresult *r, kerr *err)
{
    ExecStatusType st = PQresultStatus(r);
    switch (x->what) {
    case X_BEGIN:
    case X_COMMIT:
    case X_ENSURE:
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
            return db_fail(b->d, r,
                           x->what == X_BEGIN    ? "begin"
                           : x->what == X_COMMIT ? "commit"
                                                 : "creating user rows",
                           err);
        return 0;
    case X_OTHER_LOCK:
        if (st != PGRES_TUPLES_OK)
            return db_fail(b->d, r, "locking user", err);
        return 0;
    case X_LOCK:
        return take_locked(b, x, r, err);
    case X_REPLAYED:
        return take_replayed(b, x, r, err);
    case X_PRIOR:
        return take_prior(b, x, r, err);
    case X_WRITE:
        return take_written(b, x, r, err);
    }
    return kerr_set(err, KERR_STATE, "pipeline: unknown statement");
}

/* Sync, then read every queued statement's result and the sync's. After
 * a failure the rest of the pipeline is skipped by the server (aborted
 * results, read and dropped): the first failure is the one returned. A
 * stream that does not match what was queued marks the connection broken. */
static int sync_collect(batch *b, kerr *err)
{
    PGconn *c = b->d->conn;
    int rc = 0;
    if (PQpipelineSync(c) != 1) {
        b->d->broken = 1;
        return db_fail(b->d, NULL, "pipeline sync", err);
    }
    for (int k = 0; k < b->nexp; k++) {
        PGresult *r = PQgetResult(c);
        if (r == NULL) {
            b->d->broken = 1;
            return rc ? rc : db_fail(b->d, NULL, "pipeline: result missing", err);
        }
        ExecStatusType st = PQresultStatus(r);
        if (rc == 0 && st != PGRES_PIPELINE_ABORTED) {
            rc = take(b, &b->exp[k], r, err);
            if (rc != 0 && st == PGRES_FATAL_ERROR) {
                const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
                b->conflict = state && (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0);
            }
        } else if (rc == 0) {
            rc = kerr_set(err, KERR_DB, "pipeline aborted");
        }
        PQclear(r);
        if ((r = PQgetResult(c)) != NULL) { /* each statement's results end with NULL */
            PQclear(r);
            b->d->broken = 1;
            return rc ? rc : kerr_set(err, KERR_DB, "pipeline: unexpected result");
        }
    }
    b->nexp = 0;
    PGresult *r = PQgetResult(c);
    if (r == NULL || PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
        b->d->broken = 1;
        if (rc == 0)
            rc = db_fail(b->d, r, "pipeline: sync missing", err);
    }
    PQclear(r);
    return rc;
}

/* One try at the whole batch. */
static int batch_once(batch *b, kerr *err)
{
    PGconn *c = b->d->conn;
    int rc = 0;
    b->nexp = 0;
    b->conflict = 0;
    for (int i = 0; i < b->n; i++) {
        item *it = &b->items[i];
        item_init(it, it->dl, it->idx);
        for (int j = 0; j < i; j++)
            if (same_lock(b->items[j].dl, it->dl))
                it->round++;
        b->order[i] = it;
    }
    qsort(b->order, (size_t)b->n, sizeof *b->order, order_cmp);

    if (PQenterPipelineMode(c) != 1)
        return db_fail(b->d, NULL, "entering pipeline mode", err);
    b->at = b->end = 0;
    if ((rc = send_set(b, X_BEGIN, stmt(DB_INGEST_BEGIN), NULL, 0, NULL, 0, err)) != 0 ||
        (rc = send_set(b, X_BEGIN, stmt(DB_INGEST_PLANS), NULL, 0, NULL, 0, err)) != 0)
        goto out;
    /* Round r holds the r-th delivery of each lock, so that a delivery's
     * reads come after its predecessor's write (statements run in the
     * order they are queued). Round 0 takes every lock, sorted; later
     * rounds only take locks already held: two batches on two instances
     * cannot wait on each other in a cycle. */
    while (b->at < b->n) {
        int round = b->order[b->at]->round;
        b->end = b->at;
        while (b->end < b->n && b->order[b->end]->round == round)
            b->end++;
        if ((rc = send_reads(b, err)) != 0 || (rc = sync_collect(b, err)) != 0 ||
            (rc = send_writes(b, err)) != 0)
            goto out;
        b->at = b->end;
    }
    if ((rc = send_set(b, X_COMMIT, stmt(DB_INGEST_COMMIT), NULL, 0, NULL, 0, err)) != 0)
        goto out;
    rc = sync_collect(b, err);
out:
    if (rc != 0 && b->nexp > 0 && !b->d->broken)
        (void)sync_collect(b, NULL); /* read what was queued before giving up */
    if (PQexitPipelineMode(c) != 1)
        b->d->broken = 1;
    if (rc != 0 && !b->d->broken)
        db_rollback_quietly(b->d);
    return rc;
}

int db_ingest_batch(db *d, const kyc_delivery *const *dl, int n, const db_ingest_opts *o,
                    db_ingest_result *res, kerr *err)
{
    if (n <= 0)
        return 0;
    int rc;
    if ((rc = db_prepare_set(d, DB_SET_INGEST, DB_INGEST_STMTS, DB_INGEST_COUNT, err)) != 0 ||
        (rc = db_prepare_set(d, DB_SET_COMMON, &DB_LOCK_USERS, 1, err)) != 0)
        return rc;
    batch b = {.d = d, .o = o, .n = n, .cap = 5 * n + 3};
    for (int k = 0; k < NCOLS; k++)
        kbuf_init(&b.cols[k]);
    snprintf(b.window, sizeof b.window, "%lld", (long long)o->dedup_window_ms);
    b.items = calloc((size_t)n, sizeof *b.items);
    b.order = calloc((size_t)n, sizeof *b.order);
    b.exp = calloc((size_t)b.cap, sizeof *b.exp);
    if (b.items == NULL || b.order == NULL || b.exp == NULL) {
        rc = kerr_set(err, KERR_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        b.items[i].dl = dl[i];
        b.items[i].idx = i;
    }
    /* A deadlock (another instance, or the reconciler, took rows in
     * another order) or a serialization failure: the whole batch again. */
    for (int attempt = 0; attempt < 3; attempt++) {
        rc = batch_once(&b, err);
        if (rc == 0 || !b.conflict || !db_alive(d))
            break;
    }
    if (rc == 0)
        for (int i = 0; i < n; i++)
            res[i] = b.items[i].res;
out:
    for (int k = 0; k < NCOLS; k++)
        kbuf_deinit(&b.cols[k]);
    free(b.items);
    free(b.order);
    free(b.exp);
    return rc;
}

int db_ingest(db *d, const kyc_delivery *dl, const db_ingest_opts *o, db_ingest_result *res,
              kerr *err)
{
    return db_ingest_batch(d, &dl, 1, o, res, err);
}
