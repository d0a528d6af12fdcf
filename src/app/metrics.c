/* The metrics registry and the exposition (see metrics.h). Must never take
 * a label value that is not in one of the fixed lists below, nor lock on
 * a request thread's path. */
#include "app/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "app/procstat.h"
#include "core/check.h"
#include "core/state.h"
#include "core/vocab.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* The fixed label values; the last of each list is "other". */
static const char *ROUTE[KYC_KIND_COUNT + 5]; /* the webhook kinds, then: */
static const char *const ROUTE_ADMIN[] = {"healthz", "readyz", "metrics", "status", "other"};
static const char *const CODE[] = {"200", "400", "401", "403", "404", "405",  "408",
                                   "413", "415", "429", "500", "503", "other"};
/* The labels that name kycd's own codes take their values from core's
 * tables (core/vocab.c), in enum order, so that a counter cell is found by
 * the enum itself and no name is compared back; then the values only the
 * metric has, then "other". Filled once (labels_init). */
#define KIND_N (KYC_KIND_COUNT + 1)                         /* + other */
#define OUTCOME_N (KYC_OUTCOME_COUNT + 2)                   /* + refused, other */
#define REASON_N (KYC_REASON_COUNT + KYC_REFUSAL_COUNT + 1) /* + other */
#define P100_OUTCOME_N (P100_CLASS_COUNT + 1)               /* + other */
#define CHECK_RESULT_N (KYC_CHECK_RESULT_COUNT + 2)         /* + error, other */
#define CAUSE_N (KYC_CHECK_WHY_COUNT + 2)                   /* + webhook_overdue, other */
static const char *KIND[KIND_N], *OUTCOME[OUTCOME_N], *REASON[REASON_N],
    *P100_OUTCOME[P100_OUTCOME_N], *CHECK_RESULT[CHECK_RESULT_N], *CAUSE[CAUSE_N];
static pthread_once_t labels_once = PTHREAD_ONCE_INIT;

/* list[at..] = v's names in enum order; returns the next free index. */
static int fill(const char **list, int at, const vocab *v)
{
    for (int i = 0; i < v->size; i++)
        list[at + i] = vocab_name(v, i) ? vocab_name(v, i) : "other";
    return at + v->size;
}

static void known_init(void);

static void labels_init(void)
{
    int r = fill(ROUTE, 0, &VOCAB_KIND);
    for (int i = 0; i < N(ROUTE_ADMIN); i++)
        ROUTE[r + i] = ROUTE_ADMIN[i];
    KIND[fill(KIND, 0, &VOCAB_KIND)] = "other";
    int n = fill(OUTCOME, 0, &VOCAB_OUTCOME);
    OUTCOME[n] = "refused";
    OUTCOME[n + 1] = "other";
    REASON[fill(REASON, fill(REASON, 0, &VOCAB_REASON), &VOCAB_REFUSAL)] = "other";
    P100_OUTCOME[fill(P100_OUTCOME, 0, &VOCAB_P100_CLASS)] = "other";
    n = fill(CHECK_RESULT, 0, &VOCAB_CHECK_RESULT);
    CHECK_RESULT[n] = "error";
    CHECK_RESULT[n + 1] = "other";
    n = fill(CAUSE, 0, &VOCAB_CHECK_WHY);
    CAUSE[n] = "webhook_overdue";
    CAUSE[n + 1] = "other";
    known_init();
}
static const char *const RELOAD_RESULT[] = {"success", "failure"};
/* Where a quarantined delivery was made durable (app/ingest.c). */
static const char *const QUARANTINE_STORED[] = {"database", "spool"};

typedef struct label_def {
    const char *name;
    const char *const *values;
    int n;
} label_def;

#define LABEL(name, list)                                                                          \
    {                                                                                              \
        name, (const char *const *)list, N(list)                                                   \
    }
static const label_def L_ROUTE = LABEL("route", ROUTE), L_CODE = LABEL("code", CODE),
                       L_KIND = LABEL("kind", KIND), L_OUTCOME = LABEL("outcome", OUTCOME),
                       L_REASON = LABEL("reason", REASON),
                       L_P100_OUTCOME = LABEL("outcome", P100_OUTCOME),
                       L_RESULT = LABEL("result", CHECK_RESULT), L_CAUSE = LABEL("cause", CAUSE),
                       L_RELOAD = LABEL("result", RELOAD_RESULT),
                       L_QSTORED = LABEL("stored", QUARANTINE_STORED);

/* A counter's cells, and which of them are written at 0: the known label
 * sets, so that rate(), increase() and absent() work from the first scrape
 * (a series that appears at its first increment has no sample of 0 before
 * it). known NULL: every cell is known (small dense families). A cell
 * outside the known ones is still written once it is not 0. */
typedef struct counter {
    const char *name, *help;
    int nl;
    const label_def *l[3];
    const unsigned char *known;
    atomic_llong *cells;
} counter;

static atomic_llong http_cells[N(ROUTE) * N(CODE)];
static atomic_llong delivery_cells[N(KIND) * N(OUTCOME) * N(REASON)];
static atomic_llong check_cells[N(P100_OUTCOME) * N(CHECK_RESULT)];
static atomic_llong reload_cells[N(RELOAD_RESULT)];
static atomic_llong correction_cells[N(CAUSE)];
static atomic_llong quarantine_cells[N(KIND) * N(QUARANTINE_STORED)];
static unsigned char delivery_known[N(delivery_cells)], check_known[N(check_cells)],
    quarantine_known[N(quarantine_cells)], correction_known[N(correction_cells)];

/* The (outcome, reason) pairs a webhook delivery can be counted with, per
 * kind: what handler.c counts is a webhook's own answer, a 200 with the
 * store's outcome or a refusal once the route (the kind) is known. Every
 * kycd_webhook_deliveries_total series a fresh kycd exports is one of
 * these (and nothing else: not kind x outcome x reason, most of which
 * cannot happen). Kept in step with what can produce them:
 *   - kyc_verification_status: core/state.c kyc_state_decide for
 *     source webhook (io/db_ingest.c decide);
 *   - the other kinds: core/policy.c kyc_other_decide (POA keeps the
 *     latest; file and user status are recorded);
 *   - spooled: app/ingest.c to_spool, any kind;
 *   - quarantined: app/handler.c quarantine_delivery, any kind (a
 *     quarantined delivery taken by the spool counts as spooled).
 * Not here, as no webhook's answer carries them: applied x reconciler,
 * api and recheck (Get KYC Status and create-kyc decide with another
 * source; kycd_reconciler_checks_total counts those) and unchanged x
 * already_stored (a spool replay, long after its 200). */
#define K(kind) (1u << (kind))
#define K_ALL (K(KYC_KIND_COUNT) - 1u)
#define K_KYC K(KYC_KIND_KYC_STATUS)
#define K_POA K(KYC_KIND_POA_STATUS)
#define K_RECORDED (K(KYC_KIND_KYC_FILE) | K(KYC_KIND_USER_STATUS))
static const struct delivery_pair {
    unsigned kinds; /* K() of each kind the pair can occur for */
    enum kyc_outcome outcome;
    enum kyc_reason reason;
} DELIVERY_PAIRS[] = {
    {K_KYC, KYC_OUTCOME_APPLIED, KYC_R_FIRST},
    {K_KYC, KYC_OUTCOME_APPLIED, KYC_R_FORWARD},
    {K_KYC, KYC_OUTCOME_APPLIED, KYC_R_NEW_ATTEMPT},
    {K_POA, KYC_OUTCOME_APPLIED, KYC_R_LATEST},
    {K_KYC | K_POA, KYC_OUTCOME_UNCHANGED, KYC_R_SAME},
    {K_KYC | K_POA, KYC_OUTCOME_UNCHANGED, KYC_R_REPEAT},
    {K_KYC, KYC_OUTCOME_HELD, KYC_R_OUT_OF_ORDER},
    {K_KYC, KYC_OUTCOME_HELD, KYC_R_LEAVES_VERIFIED},
    {K_KYC, KYC_OUTCOME_HELD, KYC_R_CONFLICT},
    {K_KYC, KYC_OUTCOME_HELD, KYC_R_REPEAT_CONFLICT},
    {K_KYC, KYC_OUTCOME_HELD, KYC_R_UNKNOWN_VALUE},
    {K_RECORDED, KYC_OUTCOME_RECORDED, KYC_R_RECORDED},
    {K_RECORDED, KYC_OUTCOME_RECORDED, KYC_R_REPEAT},
    {K_ALL, KYC_OUTCOME_SPOOLED, KYC_R_DATABASE_UNAVAILABLE},
    {K_ALL, KYC_OUTCOME_QUARANTINED, KYC_R_INVALID_BODY},
};
/* The refusals a webhook route answers (app/handler.c serve_webhook and
 * what it calls), any kind. Not here: not_found and method_not_allowed
 * (answered before a route, so without a kind), not_ready and internal
 * (health and admin routes only). */
static const enum kyc_refusal DELIVERY_REFUSALS[] = {
    KYC_REFUSE_DRAINING,          KYC_REFUSE_FORBIDDEN,
    KYC_REFUSE_UNAUTHORIZED,      KYC_REFUSE_UNSUPPORTED_MEDIA_TYPE,
    KYC_REFUSE_PAYLOAD_TOO_LARGE, KYC_REFUSE_REQUEST_TIMEOUT,
    KYC_REFUSE_BAD_REQUEST,       KYC_REFUSE_OVERLOADED,
    KYC_REFUSE_INVALID_PAYLOAD,   KYC_REFUSE_UNAVAILABLE,
};

static counter C_HTTP = {"kycd_http_requests_total",
                         "HTTP answers by route and status code",
                         2,
                         {&L_ROUTE, &L_CODE},
                         NULL, /* every route x code */
                         http_cells};
static counter C_DELIVERY = {"kycd_webhook_deliveries_total",
                             "webhook deliveries by kind and outcome (refused: not stored, "
                             "reason is the answer's error code)",
                             3,
                             {&L_KIND, &L_OUTCOME, &L_REASON},
                             delivery_known,
                             delivery_cells};
static counter C_CHECK = {"kycd_reconciler_checks_total",
                          "reconciler checks by P100's answer (outcome) and what was recorded "
                          "(result)",
                          2,
                          {&L_P100_OUTCOME, &L_RESULT},
                          check_known,
                          check_cells};
static counter C_CORRECTION = {"kycd_reconciler_corrections_total",
                               "state changes the reconciler made from P100's Get KYC Status, by "
                               "cause: webhook_overdue when the user had waited for its result "
                               "webhook past webhook_overdue (P100's webhooks may have stopped), "
                               "else why the user was checked (held, pending, recheck_*)",
                               1,
                               {&L_CAUSE},
                               correction_known,
                               correction_cells};
static counter C_QUARANTINE = {"kycd_webhook_quarantined_total",
                               "authentic webhook deliveries kycd could not apply (body failed "
                               "validation, or data refused), kept raw in kyc.quarantine (stored "
                               "database) or in the spool to be put there (stored spool)",
                               2,
                               {&L_KIND, &L_QSTORED},
                               quarantine_known,
                               quarantine_cells};
static counter C_RELOAD = {"kycd_config_reloads_total",
                           "configuration reloads (SIGHUP) by result",
                           1,
                           {&L_RELOAD},
                           NULL,
                           reload_cells};

/* Accepted to durable: committed, or fsynced to the spool. */
static metrics_histogram H_INGEST = {
    "kycd_ingest_duration_seconds",
    "time from a verified webhook to its delivery being durable",
    12,
    {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
    {0},
    0};
static metrics_histogram H_P100 = {"kycd_p100_request_duration_seconds",
                                   "latency of P100's Get KYC Status answers",
                                   11,
                                   {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
                                   {0},
                                   0};

/* Labels given by name (route, code, reload result: no enum behind them). */
static int value_index(const label_def *l, const char *v)
{
    for (int i = 0; v && i < l->n - 1; i++)
        if (strcmp(l->values[i], v) == 0)
            return i;
    return l->n - 1; /* "other" (or the last value of a closed list) */
}

/* One cell's index, found by the index of each label's value; an index
 * outside its list counts as the list's last value ("other"). */
static int cell_index(const counter *c, const int *at)
{
    int idx = 0;
    for (int i = 0; i < c->nl; i++) {
        int k = at[i] >= 0 && at[i] < c->l[i]->n ? at[i] : c->l[i]->n - 1;
        idx = idx * c->l[i]->n + k;
    }
    return idx;
}

static void counter_add(counter *c, const int *at)
{
    atomic_fetch_add_explicit(&c->cells[cell_index(c, at)], 1, memory_order_relaxed);
}

/* The known cells of the sparse families (labels_init, after the lists). */
static void known_init(void)
{
    for (int k = 0; k < KYC_KIND_COUNT; k++) {
        for (int i = 0; i < N(DELIVERY_PAIRS); i++)
            if (DELIVERY_PAIRS[i].kinds & K(k))
                delivery_known[cell_index(&C_DELIVERY, (const int[]){k, DELIVERY_PAIRS[i].outcome,
                                                                     DELIVERY_PAIRS[i].reason})] =
                    1;
        for (int i = 0; i < N(DELIVERY_REFUSALS); i++)
            delivery_known[cell_index(
                &C_DELIVERY,
                (const int[]){k, KYC_OUTCOME_COUNT, KYC_REASON_COUNT + DELIVERY_REFUSALS[i]})] = 1;
    }
    for (int k = 0; k < KYC_KIND_COUNT; k++)
        for (int s = 0; s < N(QUARANTINE_STORED); s++)
            quarantine_known[cell_index(&C_QUARANTINE, (const int[]){k, s})] = 1;
    /* Every cause but "other". */
    for (int c = 0; c <= KYC_CHECK_WHY_COUNT; c++)
        correction_known[c] = 1;
    /* Every answer class x every result (and error): not "other". */
    for (int o = 0; o < P100_CLASS_COUNT; o++)
        for (int r = 0; r <= KYC_CHECK_RESULT_COUNT; r++)
            check_known[cell_index(&C_CHECK, (const int[]){o, r})] = 1;
}

static void counter_inc(counter *c, const char *const *values)
{
    int at[3];
    for (int i = 0; i < c->nl; i++)
        at[i] = value_index(c->l[i], values[i]);
    counter_add(c, at);
}

void metrics_http_request(const char *route, int code)
{
    pthread_once(&labels_once, labels_init);
    char c[8];
    snprintf(c, sizeof c, "%d", code);
    counter_inc(&C_HTTP, (const char *const[]){route, c});
}

void metrics_delivery(enum kyc_kind kind, enum kyc_outcome outcome, enum kyc_reason reason)
{
    pthread_once(&labels_once, labels_init);
    counter_add(&C_DELIVERY, (const int[]){(int)kind, (int)outcome, (int)reason});
}

void metrics_delivery_refused(enum kyc_kind kind, enum kyc_refusal code)
{
    pthread_once(&labels_once, labels_init);
    counter_add(&C_DELIVERY,
                (const int[]){(int)kind, KYC_OUTCOME_COUNT, KYC_REASON_COUNT + (int)code});
}

void metrics_reconciler_check(enum p100_class outcome, int result)
{
    pthread_once(&labels_once, labels_init);
    counter_add(&C_CHECK,
                (const int[]){(int)outcome, result < 0 ? KYC_CHECK_RESULT_COUNT : result});
}

void metrics_reconciler_correction(enum kyc_check_why why, int overdue)
{
    pthread_once(&labels_once, labels_init);
    counter_add(&C_CORRECTION, (const int[]){overdue ? KYC_CHECK_WHY_COUNT : (int)why});
}

void metrics_quarantined(enum kyc_kind kind, int spooled)
{
    pthread_once(&labels_once, labels_init);
    counter_add(&C_QUARANTINE, (const int[]){(int)kind, spooled ? 1 : 0});
}

void metrics_config_reload(int ok)
{
    counter_inc(&C_RELOAD, (const char *const[]){ok ? "success" : "failure"});
}

void metrics_observe_ingest(double seconds)
{
    metrics_histogram_observe(&H_INGEST, seconds);
}

void metrics_observe_p100(double seconds)
{
    metrics_histogram_observe(&H_P100, seconds);
}

const char *metrics_route(const char *path)
{
    pthread_once(&labels_once, labels_init);
    static const char prefix[] = "/webhooks/p100/";
    if (path == NULL)
        return "other";
    if (strncmp(path, prefix, sizeof prefix - 1) == 0) {
        static const char *const paths[] = {"kyc-verification-status", "poa-verification-status",
                                            "kyc-file-added", "user-status"};
        for (int i = 0; i < N(paths); i++)
            if (strcmp(path + sizeof prefix - 1, paths[i]) == 0)
                return ROUTE[i];
        return "other";
    }
    for (int i = KYC_KIND_COUNT; i < N(ROUTE) - 1; i++)
        if (path[0] == '/' && strcmp(path + 1, ROUTE[i]) == 0)
            return ROUTE[i];
    return "other";
}

/* Label values: backslash, double quote and newline escaped (0.0.4). */
static int append_escaped(kbuf *out, const char *s, int quote)
{
    for (const char *p = s; *p; p++) {
        int rc;
        if (*p == '\\')
            rc = kbuf_append(out, "\\\\", 2);
        else if (*p == '\n')
            rc = kbuf_append(out, "\\n", 2);
        else if (quote && *p == '"')
            rc = kbuf_append(out, "\\\"", 2);
        else
            rc = kbuf_append(out, p, 1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int metrics_family(kbuf *out, const char *name, const char *type, const char *help)
{
    int rc = kbuf_appendf(out, "# HELP %s ", name);
    if (rc == 0)
        rc = append_escaped(out, help, 0);
    if (rc == 0)
        rc = kbuf_appendf(out, "\n# TYPE %s %s\n", name, type);
    return rc;
}

static int append_value(kbuf *out, double v)
{
    if (isinf(v))
        return kbuf_appendf(out, v > 0 ? "+Inf" : "-Inf");
    if (isnan(v))
        return kbuf_appendf(out, "NaN");
    if (v == (double)(long long)v && fabs(v) < 9e15)
        return kbuf_appendf(out, "%lld", (long long)v);
    return kbuf_appendf(out, "%.9g", v);
}

int metrics_sample(kbuf *out, const char *name, const char *const *labels, double value)
{
    int rc = kbuf_appendf(out, "%s", name);
    for (int i = 0; rc == 0 && labels && labels[i]; i += 2) {
        rc = kbuf_appendf(out, "%s%s=\"", i ? "," : "{", labels[i]);
        if (rc == 0)
            rc = append_escaped(out, labels[i + 1] ? labels[i + 1] : "", 1);
        if (rc == 0)
            rc = kbuf_append(out, "\"", 1);
    }
    if (rc == 0 && labels && labels[0])
        rc = kbuf_append(out, "}", 1);
    if (rc == 0)
        rc = kbuf_append(out, " ", 1);
    if (rc == 0)
        rc = append_value(out, value);
    if (rc == 0)
        rc = kbuf_append(out, "\n", 1);
    return rc;
}

int metrics_gauge(kbuf *out, const char *name, const char *help, double value)
{
    int rc = metrics_family(out, name, "gauge", help);
    return rc ? rc : metrics_sample(out, name, NULL, value);
}

void metrics_histogram_observe(metrics_histogram *h, double seconds)
{
    int i = 0;
    while (i < h->nbounds && seconds > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    long long ns = seconds > 0 ? (long long)(seconds * 1e9) : 0;
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

int metrics_histogram_write(kbuf *out, const metrics_histogram *h)
{
    char bucket[128], le[32];
    snprintf(bucket, sizeof bucket, "%s_bucket", h->name);
    int rc = metrics_family(out, h->name, "histogram", h->help);
    long long cum = 0;
    /* Read each bucket once: the cumulative counts and _count agree even
     * while observations land (_sum may be a little ahead or behind). */
    for (int i = 0; rc == 0 && i <= h->nbounds; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < h->nbounds)
            snprintf(le, sizeof le, "%.9g", h->bounds[i]);
        else
            snprintf(le, sizeof le, "+Inf");
        rc = metrics_sample(out, bucket, (const char *const[]){"le", le, NULL}, (double)cum);
    }
    char name[128];
    snprintf(name, sizeof name, "%s_sum", h->name);
    if (rc == 0)
        rc = metrics_sample(out, name, NULL,
                            (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9);
    snprintf(name, sizeof name, "%s_count", h->name);
    if (rc == 0)
        rc = metrics_sample(out, name, NULL, (double)cum);
    return rc;
}

static int counter_write(kbuf *out, const counter *c)
{
    int rc = metrics_family(out, c->name, "counter", c->help);
    int cells = 1;
    for (int i = 0; i < c->nl; i++)
        cells *= c->l[i]->n;
    for (int idx = 0; rc == 0 && idx < cells; idx++) {
        long long v = atomic_load_explicit(&c->cells[idx], memory_order_relaxed);
        if (v == 0 && c->known && !c->known[idx])
            continue;
        const char *labels[7];
        int rest = idx;
        for (int i = c->nl - 1; i >= 0; i--) {
            labels[2 * i] = c->l[i]->name;
            labels[2 * i + 1] = c->l[i]->values[rest % c->l[i]->n];
            rest /= c->l[i]->n;
        }
        labels[2 * c->nl] = NULL;
        rc = metrics_sample(out, c->name, labels, (double)v);
    }
    return rc;
}

int metrics_write_registry(kbuf *out)
{
    pthread_once(&labels_once, labels_init);
    const counter *cs[] = {&C_HTTP, &C_DELIVERY, &C_QUARANTINE, &C_CHECK, &C_CORRECTION, &C_RELOAD};
    int rc = 0;
    for (int i = 0; rc == 0 && i < N(cs); i++)
        rc = counter_write(out, cs[i]);
    if (rc == 0)
        rc = metrics_histogram_write(out, &H_INGEST);
    if (rc == 0)
        rc = metrics_histogram_write(out, &H_P100);
    return rc;
}

static void zero(atomic_llong *a, int n)
{
    for (int i = 0; i < n; i++)
        atomic_store(&a[i], 0);
}

void metrics_reset(void)
{
    zero(http_cells, N(http_cells));
    zero(delivery_cells, N(delivery_cells));
    zero(check_cells, N(check_cells));
    zero(reload_cells, N(reload_cells));
    zero(correction_cells, N(correction_cells));
    zero(quarantine_cells, N(quarantine_cells));
    metrics_histogram *hs[] = {&H_INGEST, &H_P100};
    for (int i = 0; i < N(hs); i++) {
        zero(hs[i]->counts, METRICS_BUCKETS_MAX + 1);
        atomic_store(&hs[i]->sum_ns, 0);
    }
}

int metrics_write_process(kbuf *out, double started_s)
{
    procstat p;
    procstat_read(&p);
    int rc = metrics_family(out, "process_cpu_seconds_total", "counter",
                            "user and system CPU time spent, in seconds");
    if (rc == 0)
        rc = metrics_sample(out, "process_cpu_seconds_total", NULL, p.cpu_seconds);
    if (rc == 0)
        rc = metrics_gauge(out, "process_resident_memory_bytes", "resident memory size in bytes",
                           p.rss_bytes);
    if (rc == 0)
        rc = metrics_gauge(out, "process_open_fds", "open file descriptors", p.open_fds);
    if (rc == 0)
        rc = metrics_gauge(out, "process_start_time_seconds",
                           "start time of the process since the Unix epoch, in seconds",
                           (double)(long long)started_s);
    return rc;
}
