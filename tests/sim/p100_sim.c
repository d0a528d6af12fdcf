/* p100-sim: a test double for P100's Partner API (docs/p100-api.md),
 * used by kycd's tests and demo. It answers Get KYC Status, Create KYC
 * Verification and the verification page over TLS like P100 does (x-api-key,
 * error bodies, P500/P501 as HTTP 400, 202 P212, 401 xo1/xo2/xo3), keeps users
 * in memory, sends P100's webhooks with P100's retry schedule, and offers a
 * control API under /_sim/ (no key) to set state, inject faults and read
 * counters. The usage text below lists the endpoints; the decisions taken
 * where P100's documentation is silent are marked "P100 is silent" here.
 *
 * Must never: take a secret on the command line, log the API key, the
 * webhook token or a request body, hold the state lock while sleeping or
 * sending, or talk to anything but the addresses it is given.
 *
 * Threads: CivetWeb's workers serve requests; one sender thread delivers
 * webhooks; main only waits for SIGTERM/SIGINT and shuts down, in reverse
 * order of start. */
#include <civetweb.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/ssl.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#define ID_MAX 128          /* longest externalUserId kept (kycd's KYC_ID_MAX) */
#define VALUE_MAX 64        /* longest status value */
#define REASON_MAX 256      /* longest rejectionReason */
#define BODY_MAX (1 << 20)  /* largest request body read */
#define RING_MAX 4096       /* webhook deliveries remembered for /_sim/webhooks */
#define ATTEMPTS 5          /* P100: 5 attempts in all ... */
static const int64_t retry_gap_ms[ATTEMPTS - 1] = {8000, 16000, 32000, 64000}; /* ... this far apart */

/* ------------------------------------------------------------------ options */

typedef struct opts {
    const char *listen;
    const char *cert;
    const char *key;
    const char *api_key_file;
    const char *webhook_url;
    const char *webhook_token_file;
    const char *webhook_ca;
    double retry_scale;
    long latency_ms;
    int threads;
    uint64_t seed;
    long webhook_timeout_ms;
} opts;

static opts O = {.retry_scale = 1.0, .threads = 64, .seed = 1, .webhook_timeout_ms = 10000};
static char api_key[512];
static char webhook_token[512];
static char webhook_base[1024];

/* ------------------------------------------------------------------ logging */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_ms_f(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* A value safe to print bare after key= (logfmt): no spaces, quotes, '=',
 * backslashes or control bytes. */
static const char *logsafe(char *dst, size_t cap, const char *s)
{
    size_t i = 0;
    if (s == NULL || *s == '\0')
        return "-";
    for (; s[i] != '\0' && i + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[i] = (c < 0x21 || c > 0x7e || c == '"' || c == '\\' || c == '=') ? '_' : (char)c;
    }
    dst[i] = '\0';
    return dst;
}

__attribute__((format(printf, 3, 4)))
static void sim_log(const char *level, const char *msg, const char *fmt, ...)
{
    char line[2048], ts[40];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    /* Messages are constants of ours: quoting those with a space is enough. */
    const char *q = strchr(msg, ' ') ? "\"" : "";
    int n = snprintf(line, sizeof line, "ts=%s.%03ldZ level=%s msg=%s%s%s", ts,
                     now.tv_nsec / 1000000, level, q, msg, q);
    if (n < 0)
        return;
    if (fmt != NULL && fmt[0] != '\0' && (size_t)n + 1 < sizeof line) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += m;
    }
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    line[n] = '\0';
    fputs(line, stderr); /* one stdio call: lines never interleave */
}

/* ------------------------------------------------------------------ stopping */

static pthread_mutex_t stop_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cv; /* CLOCK_MONOTONIC; broadcast when stopping */
static atomic_bool stopping;

static void cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

static struct timespec deadline_ms(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* The simulated network/processing latency: a wait that shutdown cuts short. */
static void latency_wait(long ms)
{
    if (ms <= 0)
        return;
    struct timespec until = deadline_ms(ms);
    pthread_mutex_lock(&stop_mu);
    while (!atomic_load(&stopping) && pthread_cond_timedwait(&stop_cv, &stop_mu, &until) == 0)
        ;
    pthread_mutex_unlock(&stop_mu);
}

/* ------------------------------------------------------------------ state */

typedef struct user {
    struct user *next;
    uint64_t hash;
    char id[ID_MAX + 1];
    bool exists;   /* false: a ghost, only call counters (status asked for an unknown id) */
    bool has_kyc;  /* a verification exists */
    char vstatus[VALUE_MAX + 1];
    char astatus[VALUE_MAX + 1];
    char reason[REASON_MAX + 1];
    char vid[VALUE_MAX + 1];
    long calls;         /* API calls naming this user */
    long status_calls;
    int inflight;       /* status calls in flight now */
    int max_inflight;
} user;

enum fail_kind { FAIL_P500, FAIL_P501, FAIL_503, FAIL_429 };
static const char *const fail_names[] = {"P500", "P501", "503", "429"};
enum scope { SCOPE_ALL, SCOPE_STATUS, SCOPE_CREATE };
static const char *const scope_names[] = {"all", "status", "create"};

typedef struct faults {
    long latency_ms;
    double fail_rate;
    enum fail_kind fail_with;
    long retry_after;  /* seconds; 0 leaves the header out */
    bool unauthorized;
    long fail_next;    /* the next N calls in scope fail, before fail_rate is drawn */
    enum scope scope;
} faults;

#define ERR_KEYS 16
typedef struct errcount {
    char code[16];
    long n;
} errcount;

static struct {
    pthread_mutex_t mu; /* guards everything in this struct; never held while waiting */
    user **buckets;
    size_t nbuckets, nusers, nrecords;
    uint64_t epoch;     /* bumped by reset: late decrements of an older epoch are ignored */
    uint64_t rng;
    faults f;
    long api_calls, status_calls, create_calls, page_calls;
    int inflight, max_inflight, max_inflight_user;
    errcount errs[ERR_KEYS];
} S = {.mu = PTHREAD_MUTEX_INITIALIZER};

static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* splitmix64: small, seeded, good enough for fault draws. Caller holds S.mu. */
static uint64_t rng_next(void)
{
    uint64_t z = (S.rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double rng_unit(void)
{
    return (double)(rng_next() >> 11) / 9007199254740992.0; /* [0, 1) */
}

static user *tab_find(const char *id)
{
    if (S.nbuckets == 0)
        return NULL;
    uint64_t h = hash_id(id);
    for (user *u = S.buckets[h & (S.nbuckets - 1)]; u; u = u->next)
        if (u->hash == h && strcmp(u->id, id) == 0)
            return u;
    return NULL;
}

static int tab_grow(void)
{
    size_t nb = S.nbuckets ? S.nbuckets * 2 : 1024;
    user **b = calloc(nb, sizeof *b);
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < S.nbuckets; i++) {
        user *u = S.buckets[i];
        while (u) {
            user *next = u->next;
            u->next = b[u->hash & (nb - 1)];
            b[u->hash & (nb - 1)] = u;
            u = next;
        }
    }
    free(S.buckets);
    S.buckets = b;
    S.nbuckets = nb;
    return 0;
}

/* Find or add a record (added as a ghost). NULL: id too long or no memory. */
static user *tab_get(const char *id)
{
    if (strlen(id) > ID_MAX || id[0] == '\0')
        return NULL;
    user *u = tab_find(id);
    if (u)
        return u;
    if (S.nrecords + 1 > S.nbuckets / 4 * 3 && tab_grow() != 0)
        return NULL;
    u = calloc(1, sizeof *u);
    if (u == NULL)
        return NULL;
    u->hash = hash_id(id);
    strcpy(u->id, id);
    u->next = S.buckets[u->hash & (S.nbuckets - 1)];
    S.buckets[u->hash & (S.nbuckets - 1)] = u;
    S.nrecords++;
    return u;
}

static void tab_clear(void)
{
    for (size_t i = 0; i < S.nbuckets; i++) {
        user *u = S.buckets[i];
        while (u) {
            user *next = u->next;
            free(u);
            u = next;
        }
    }
    free(S.buckets);
    S.buckets = NULL;
    S.nbuckets = S.nusers = S.nrecords = 0;
}

static void user_make_real(user *u)
{
    if (!u->exists) {
        u->exists = true;
        S.nusers++;
    }
}

static void faults_default(faults *f)
{
    memset(f, 0, sizeof *f);
    f->latency_ms = O.latency_ms;
    f->fail_with = FAIL_P500;
}

/* Caller holds S.mu. */
static void count_error(const char *code)
{
    for (int i = 0; i < ERR_KEYS; i++) {
        if (S.errs[i].code[0] == '\0') {
            snprintf(S.errs[i].code, sizeof S.errs[i].code, "%s", code);
            S.errs[i].n = 1;
            return;
        }
        if (strcmp(S.errs[i].code, code) == 0) {
            S.errs[i].n++;
            return;
        }
    }
}

static void new_uuid(char out[37])
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        /* Never expected; fall back to the clock so ids stay distinct. */
        uint64_t t = (uint64_t)now_ms_f() * 1000003u;
        for (int i = 0; i < 16; i++)
            b[i] = (unsigned char)(t >> ((i % 8) * 8)) ^ (unsigned char)i;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}

/* ------------------------------------------------------------------ webhooks */

enum wh_mode { WH_SEND, WH_DROP, WH_DUPLICATE, WH_HOLD };

typedef struct delivery {
    struct delivery *next;
    uint64_t seq;
    uint64_t epoch;
    int64_t due_ms;
    int attempts;
    long last_http;            /* 0: no HTTP answer */
    char last_error[160];
    char kind[40];             /* "kyc-verification-status", "poa-verification-status" */
    char user[ID_MAX + 1];
    char *body;
} delivery;

typedef struct wh_record {
    uint64_t seq;
    char kind[40];
    char user[ID_MAX + 1];
    const char *result;        /* "acked", "failed", "dropped", "abandoned" */
    int attempts;
    long http;
    char error[160];
    char *body;
} wh_record;

static struct {
    pthread_mutex_t mu;  /* guards this struct; never held while sending */
    pthread_cond_t cv;   /* CLOCK_MONOTONIC: new work or stopping */
    bool stop;
    uint64_t seq, epoch;
    delivery *queue;     /* unsorted; picked by (due, seq) */
    delivery *held, *held_tail;
    long queued, held_n, inflight;
    long sent, attempts, acked, failed, dropped;
    wh_record ring[RING_MAX];
    size_t ring_next, ring_n;
    pthread_t thread;
    bool started;
} W = {.mu = PTHREAD_MUTEX_INITIALIZER};

static atomic_bool wh_abort; /* tells a transfer in progress to give up */

static void delivery_free(delivery *d)
{
    if (d) {
        free(d->body);
        free(d);
    }
}

/* Caller holds W.mu. */
static void wh_remember(const delivery *d, const char *result)
{
    wh_record *r = &W.ring[W.ring_next];
    free(r->body);
    memset(r, 0, sizeof *r);
    r->seq = d->seq;
    snprintf(r->kind, sizeof r->kind, "%s", d->kind);
    snprintf(r->user, sizeof r->user, "%s", d->user);
    r->result = result;
    r->attempts = d->attempts;
    r->http = d->last_http;
    snprintf(r->error, sizeof r->error, "%s", d->last_error);
    r->body = d->body ? strdup(d->body) : NULL;
    W.ring_next = (W.ring_next + 1) % RING_MAX;
    if (W.ring_n < RING_MAX)
        W.ring_n++;
}

static delivery *delivery_new(const char *kind, const char *uid, const char *body)
{
    delivery *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->body = strdup(body);
    if (d->body == NULL) {
        free(d);
        return NULL;
    }
    snprintf(d->kind, sizeof d->kind, "%s", kind);
    snprintf(d->user, sizeof d->user, "%s", uid);
    return d;
}

/* Caller holds W.mu. */
static void wh_push(delivery *d, int64_t due)
{
    d->seq = ++W.seq;
    d->epoch = W.epoch;
    d->due_ms = due;
    d->next = W.queue;
    W.queue = d;
    W.queued++;
}

/* Queue (or drop, or hold) one webhook. Fills seqs[0..1] with the delivery
 * numbers (0 when none). Returns 0, or -1 when out of memory. */
static int wh_submit(const char *kind, const char *uid, const char *body, enum wh_mode mode,
                     uint64_t seqs[2]) {
        seqs[0] = seqs[1] = 0;
        int n = mode == WH_DUPLICATE ? 2 : 1;
        delivery *d[2] = {NULL, NULL};
        for (int i = 0; i < n; i++)
            if ((d[i] = delivery_new(kind, uid, body)) == NULL) {
                delivery_free(d[0]);
                return -1;
            }
        pthread_mutex_lock(&W.mu);
        if (mode == WH_DROP) {
            d[0]->seq = ++W.seq;
            seqs[0] = d[0]->seq;
            snprintf(d[0]->last_error, sizeof d[0]->last_error, "dropped by request");
            W.dropped++;
            wh_remember(d[0], "dropped");
            delivery_free(d[0]);
        } else if (mode == WH_HOLD) {
            d[0]->seq = ++W.seq; /* renumbered when flushed */
            seqs[0] = d[0]->seq;
            if (W.held_tail)
                W.held_tail->next = d[0];
            else
                W.held = d[0];
            W.held_tail = d[0];
            W.held_n++;
        } else {
            int64_t now = now_ms();
            for (int i = 0; i < n; i++) {
                wh_push(d[i], now);
                seqs[i] = d[i]->seq;
            }
            pthread_cond_signal(&W.cv);
        }
        pthread_mutex_unlock(&W.mu);
        return 0;
    }

/* Send the held webhooks now, in arrival order or reversed. */
static long wh_flush(bool reverse)
{
    pthread_mutex_lock(&W.mu);
    delivery *list = W.held;
    W.held = W.held_tail = NULL;
    long n = W.held_n;
    W.held_n = 0;
    if (reverse) {
        delivery *rev = NULL;
        while (list) {
            delivery *next = list->next;
            list->next = rev;
            rev = list;
            list = next;
        }
        list = rev;
    }
    int64_t now = now_ms(); /* one due time for all: the seq keeps the order */
    while (list) {
        delivery *next = list->next;
        wh_push(list, now);
        list = next;
    }
    pthread_cond_signal(&W.cv);
    pthread_mutex_unlock(&W.mu);
    return n;
}

static size_t curl_discard(char *p, size_t size, size_t n, void *ud)
{
    return size * n;
}

static int curl_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    return atomic_load(&wh_abort) ? 1 : 0;
}

/* One HTTP attempt. Fills d->last_http and d->last_error. */
static void wh_attempt(CURL *c, delivery *d)
{
    char url[1200], auth[600];
    snprintf(url, sizeof url, "%s/%s", webhook_base, d->kind);
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
    if (webhook_token[0]) {
        /* P100 is silent on a "Bearer " prefix: the token is sent as is. */
        snprintf(auth, sizeof auth, "Authorization: %s", webhook_token);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, d->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(d->body));
    CURLcode rc = curl_easy_perform(c);
    d->last_http = 0;
    d->last_error[0] = '\0';
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &d->last_http);
        if (d->last_http != 200)
            snprintf(d->last_error, sizeof d->last_error, "http %ld", d->last_http);
    } else {
        snprintf(d->last_error, sizeof d->last_error, "%s", curl_easy_strerror(rc));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    /* The token lived on the stack for this call only. */
    memset(auth, 0, sizeof auth);
}

static int64_t retry_gap(int attempts_done)
{
    double ms = (double)retry_gap_ms[attempts_done - 1] * O.retry_scale;
    return ms < 1.0 ? 1 : (int64_t)ms;
}

static void *wh_thread(void *arg)
{
    CURL *c = curl_easy_init();
    if (c == NULL) {
        sim_log("error", "webhook sender cannot start", "error=\"curl_easy_init failed\"");
        return NULL;
    }
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "p100-sim");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, O.webhook_timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, O.webhook_timeout_ms < 5000 ? O.webhook_timeout_ms : 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_discard);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, curl_progress);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (O.webhook_ca)
        curl_easy_setopt(c, CURLOPT_CAINFO, O.webhook_ca);

    pthread_mutex_lock(&W.mu);
    while (!W.stop) {
        delivery **best = NULL;
        for (delivery **p = &W.queue; *p; p = &(*p)->next)
            if (best == NULL || (*p)->due_ms < (*best)->due_ms ||
                ((*p)->due_ms == (*best)->due_ms && (*p)->seq < (*best)->seq))
                best = p;
        if (best == NULL) {
            pthread_cond_wait(&W.cv, &W.mu);
            continue;
        }
        int64_t now = now_ms();
        if ((*best)->due_ms > now) {
            struct timespec until = deadline_ms((*best)->due_ms - now);
            pthread_cond_timedwait(&W.cv, &W.mu, &until);
            continue;
        }
        delivery *d = *best;
        *best = d->next;
        d->next = NULL;
        W.queued--;
        W.inflight++;
        if (d->attempts == 0)
            W.sent++;
        pthread_mutex_unlock(&W.mu);

        double t0 = now_ms_f();
        wh_attempt(c, d);
        double ms = now_ms_f() - t0;

        pthread_mutex_lock(&W.mu);
        W.inflight--;
        d->attempts++;
        W.attempts++;
        char u[ID_MAX + 1];
        const char *result;
        /* P100: only a 200 acknowledges; anything else is retried. */
        if (d->last_http == 200) {
            result = "acked";
            W.acked++;
        } else if (d->attempts >= ATTEMPTS) {
            result = "failed";
            W.failed++;
        } else {
            result = "retry";
        }
        sim_log(d->last_http == 200 ? "info" : "warn", "webhook",
                "seq=%" PRIu64 " kind=%s user=%s attempt=%d http=%ld error=\"%s\" result=%s ms=%.1f",
                d->seq, d->kind, logsafe(u, sizeof u, d->user), d->attempts, d->last_http,
                d->last_error, result, ms);
        if (strcmp(result, "retry") != 0) {
            wh_remember(d, result);
            delivery_free(d);
        } else if (d->epoch != W.epoch) {
            delivery_free(d); /* reset while it was in flight */
        } else {
            /* Keep its number: a retry is the same delivery. */
            d->due_ms = now_ms() + retry_gap(d->attempts);
            d->next = W.queue;
            W.queue = d;
            W.queued++;
        }
    }
    pthread_mutex_unlock(&W.mu);
    curl_easy_cleanup(c);
    return NULL;
}

/* Drop everything queued or held (reset). The one in flight finishes. */
static void wh_clear(bool counters)
{
    pthread_mutex_lock(&W.mu);
    W.epoch++;
    for (delivery *d = W.queue, *n; d; d = n) {
        n = d->next;
        delivery_free(d);
    }
    for (delivery *d = W.held, *n; d; d = n) {
        n = d->next;
        delivery_free(d);
    }
    W.queue = W.held = W.held_tail = NULL;
    W.queued = W.held_n = 0;
    if (counters) {
        W.sent = W.attempts = W.acked = W.failed = W.dropped = 0;
        for (size_t i = 0; i < RING_MAX; i++) {
            free(W.ring[i].body);
            W.ring[i].body = NULL;
        }
        W.ring_next = W.ring_n = 0;
    }
    pthread_mutex_unlock(&W.mu);
}

/* ------------------------------------------------------------------ HTTP replies */

typedef struct reply {
    int status;
    char *body;              /* malloc'd */
    const char *ctype;
    long retry_after;        /* seconds; 0: no header */
    char code[16];           /* errorCode (or HTTP status) for the log and errors_sent */
} reply;

static void reply_text(reply *r, int status, const char *ctype, const char *text)
{
    r->status = status;
    r->ctype = ctype;
    free(r->body);
    r->body = strdup(text);
}

/* Takes ownership of obj. */
static void reply_json(reply *r, int status, cJSON *obj)
{
    char *s = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (s == NULL) {
        reply_text(r, 500, "application/json", "{\"error\":\"out of memory\"}");
        return;
    }
    r->status = status;
    r->ctype = "application/json";
    free(r->body);
    r->body = s;
}

/* P100's error body; name NULL leaves errorName out (as P403 and 401 do).
 * P100 is silent on most errorName values: only P412's "invalid-user" and
 * P212's "kyc-pending" are documented; the others here are our guesses. */
static void reply_p100(reply *r, int status, const char *code, const char *name, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    if (code)
        cJSON_AddStringToObject(o, "errorCode", code);
    if (name)
        cJSON_AddStringToObject(o, "errorName", name);
    cJSON_AddStringToObject(o, "errorMessage", msg);
    reply_json(r, status, o);
    snprintf(r->code, sizeof r->code, "%s", code ? code : "");
    if (code == NULL)
        snprintf(r->code, sizeof r->code, "%d", status);
}

static void reply_sim_error(reply *r, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    reply_json(r, status, o);
}

static void send_reply(struct mg_connection *conn, const reply *r)
{
    char len[24], ra[24];
    const char *body = r->body ? r->body : "";
    mg_response_header_start(conn, r->status);
    mg_response_header_add(conn, "Content-Type", r->ctype ? r->ctype : "application/json", -1);
    snprintf(len, sizeof len, "%zu", strlen(body));
    mg_response_header_add(conn, "Content-Length", len, -1);
    mg_response_header_add(conn, "Cache-Control", "no-store", -1);
    if (r->retry_after > 0) {
        snprintf(ra, sizeof ra, "%ld", r->retry_after);
        mg_response_header_add(conn, "Retry-After", ra, -1);
    }
    mg_response_header_send(conn);
    mg_write(conn, body, strlen(body));
}

/* Read the whole body; NULL with *too_big set when over BODY_MAX. */
static char *read_body(struct mg_connection *conn, bool *too_big)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    *too_big = false;
    if (ri->content_length > BODY_MAX) {
        *too_big = true;
        return NULL;
    }
    size_t cap = ri->content_length > 0 ? (size_t)ri->content_length + 1 : 4096, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return NULL;
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > BODY_MAX) {
                free(buf);
                *too_big = true;
                return NULL;
            }
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        int n = mg_read(conn, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

/* Split "a/b/c" into at most max segments (in place). Returns the count, or
 * -1 when there are more or one is empty. */
static int split_path(char *p, char **seg, int max)
{
    int n = 0;
    if (*p == '\0')
        return 0;
    for (;;) {
        if (n == max)
            return -1;
        seg[n++] = p;
        char *slash = strchr(p, '/');
        if (slash == NULL)
            break;
        *slash = '\0';
        p = slash + 1;
    }
    for (int i = 0; i < n; i++)
        if (seg[i][0] == '\0')
            return -1;
    return n;
}

static bool consttime_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return d == 0 && lb > 0;
}

/* ------------------------------------------------------------------ P100 API */

static const char *const document_types[] = {"ID_CARD", "PASSPORT", "RESIDENCE_PERMIT",
                                             "DRIVER_LICENSE", NULL};
static const char *const income_sources[] = {"BUSINESS_ACTIVITY", "SALARY", "OTHER",
                                             "MAINTAINED_BY_FAMILY", "INVESTMENTS",
                                             "SOCIAL_BENEFITS", "TENANCY", NULL};
/* The older page spells the first without the final S: both are accepted. */
static const char *const open_reasons[] = {"INVESTMENTS_OR_CRYPTOCURRENCIES",
                                           "INVESTMENTS_OR_CRYPTOCURRENCIE", "CURRENCY_EXCHANGE",
                                           "DAILY_USE", "GAMING_OR_GAMBLING",
                                           "TRANSFER_OF_FUNDS_OUTSIDE_OF_EUROPE", NULL};
static const char *const occupations[] = {
    "IT", "HEALTHCARE_AND_MEDICAL_SERVICES", "FINANCE_AND_ACCOUNTING", "EDUCATION_AND_TEACHING",
    "SALES_AND_MARKETING", "ENGINEERING", "CUSTOMER_SERVICE", "ADMINISTRATION_AND_OFFICE_MANAGEMENT",
    "LEGAL_SERVICES", "ARTS_AND_DESIGN", "RETAIL_AND_SALES", "CONSTRUCTION_AND_TRADES",
    "HUMAN_RESOURCES", "MANUFACTURING_AND_PRODUCTION", "SCIENCE_AND_RESEARCH", NULL};

static bool in_list(const char *v, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(v, *list) == 0)
            return true;
    return false;
}

static void msg_add(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void msg_add(char *dst, size_t cap, const char *fmt, ...)
{
    size_t n = strlen(dst);
    if (n > 0 && n + 2 < cap) {
        strcpy(dst + n, "; ");
        n += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst + n, cap - n, fmt, ap);
    va_end(ap);
}

static void list_join(char *dst, size_t cap, const char *const *list)
{
    dst[0] = '\0';
    for (size_t n = 0; *list; list++) {
        int m = snprintf(dst + n, cap - n, "%s%s", n ? ", " : "", *list);
        if (m < 0 || (size_t)m >= cap - n)
            return;
        n += (size_t)m;
    }
}

/* A required string field from an enum; appends a message when wrong. */
static const char *check_enum(const cJSON *root, const char *field, const char *const *list,
                              bool required, char *msg, size_t cap) {
            const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, field);
            char allowed[1024];
            if (it == NULL || cJSON_IsNull(it)) {
                if (required)
                    msg_add(msg, cap, "%s must not be null", field);
                return NULL;
            }
            if (!cJSON_IsString(it) || it->valuestring[0] == '\0') {
                msg_add(msg, cap, "%s must not be blank", field);
                return NULL;
            }
            if (list && !in_list(it->valuestring, list)) {
                list_join(allowed, sizeof allowed, list);
                msg_add(msg, cap, "%s must be one of: %s", field, allowed);
                return NULL;
            }
            return it->valuestring;
        }

/* Validates the create body like P100 (P403, all problems joined). Fills
 * uid on success; returns false with msg set otherwise. */
static bool create_validate(const char *body, char *uid, char *msg, size_t cap)
{
    msg[0] = '\0';
    cJSON *root = body ? cJSON_Parse(body) : NULL;
    if (root == NULL || !cJSON_IsObject(root)) {
        snprintf(msg, cap, "Request body is not a valid JSON object");
        cJSON_Delete(root);
        return false;
    }
    const char *id = check_enum(root, "externalUserId", NULL, true, msg, cap);
    if (id && strlen(id) > ID_MAX)
        msg_add(msg, cap, "externalUserId must be at most %d characters", ID_MAX);
    check_enum(root, "documentType", document_types, true, msg, cap);
    const char *country = check_enum(root, "country", NULL, true, msg, cap);
    if (country && !(strlen(country) == 2 && country[0] >= 'A' && country[0] <= 'Z' &&
                     country[1] >= 'A' && country[1] <= 'Z'))
        msg_add(msg, cap, "country must be an ISO 3166-1 alpha-2 code");
    const char *income = check_enum(root, "incomeSource", income_sources, true, msg, cap);
    check_enum(root, "openAccountReason", open_reasons, true, msg, cap);
    check_enum(root, "occupation", occupations, income && strcmp(income, "SALARY") == 0, msg, cap);
    if (income && strcmp(income, "BUSINESS_ACTIVITY") == 0) {
        const cJSON *tax = cJSON_GetObjectItemCaseSensitive(root, "taxId");
        if (tax == NULL || cJSON_IsNull(tax) ||
            (cJSON_IsString(tax) && tax->valuestring[0] == '\0') ||
            (cJSON_IsArray(tax) && cJSON_GetArraySize(tax) == 0))
            msg_add(msg, cap, "taxId must not be empty when incomeSource is BUSINESS_ACTIVITY");
    }
    const cJSON *info = cJSON_GetObjectItemCaseSensitive(root, "additionalInfo");
    if (info && !cJSON_IsNull(info) && !cJSON_IsString(info))
        msg_add(msg, cap, "additionalInfo must be a string");
    bool ok = msg[0] == '\0';
    if (ok)
        snprintf(uid, ID_MAX + 1, "%s", id);
    cJSON_Delete(root);
    return ok;
}

static bool attempt_pending(const user *u)
{
    return u->has_kyc && (strcmp(u->astatus, "PENDING") == 0 || strcmp(u->astatus, "VERIFICATION") == 0);
}

static void api_create(reply *r, const char *body)
{
    char uid[ID_MAX + 1], msg[2048], vid[37];
    if (!create_validate(body, uid, msg, sizeof msg)) {
        reply_p100(r, 400, "P403", NULL, msg);
        return;
    }
    new_uuid(vid);
    pthread_mutex_lock(&S.mu);
    /* P100's "create user account" is outside kycd: the first create makes the user. */
    user *u = tab_get(uid);
    int outcome = 0;
    if (u == NULL) {
        outcome = -1;
    } else {
        user_make_real(u);
        if (attempt_pending(u)) {
            outcome = 1;
        } else if (u->has_kyc && strcmp(u->vstatus, "VERIFIED") == 0) {
            outcome = 2;
        } else {
            u->has_kyc = true;
            snprintf(u->vstatus, sizeof u->vstatus, "NOT_VERIFIED");
            snprintf(u->astatus, sizeof u->astatus, "PENDING");
            u->reason[0] = '\0';
            snprintf(u->vid, sizeof u->vid, "%s", vid);
        }
    }
    pthread_mutex_unlock(&S.mu);
    if (outcome == -1) {
        reply_p100(r, 400, "P500", "unknown-exception", "Unknown exception");
    } else if (outcome == 1) {
        reply_p100(r, 202, "P212", "kyc-pending", "KYC verification pending");
    } else if (outcome == 2) {
        reply_p100(r, 400, "P450", "kyc-already-verified", "KYC already verified");
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "verificationId", vid);
        reply_json(r, 201, o);
    }
}

static void api_status(reply *r, const char *uid)
{
    user copy;
    bool found = false;
    pthread_mutex_lock(&S.mu);
    user *u = strlen(uid) <= ID_MAX ? tab_find(uid) : NULL;
    if (u && u->exists) {
        copy = *u;
        found = true;
    }
    pthread_mutex_unlock(&S.mu);
    if (!found) {
        reply_p100(r, 400, "P412", "invalid-user", "User does not exist");
    } else if (!copy.has_kyc) {
        reply_p100(r, 404, "P445", "kyc-not-found", "KYC not found");
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "externalUserId", copy.id);
        cJSON_AddStringToObject(o, "verificationStatus", copy.vstatus);
        cJSON_AddStringToObject(o, "attemptStatus", copy.astatus);
        if (copy.reason[0])
            cJSON_AddStringToObject(o, "rejectionReason", copy.reason);
        cJSON_AddStringToObject(o, "verificationId", copy.vid);
        reply_json(r, 200, o);
    }
}

static void html_escape(char *dst, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        const char *e = NULL;
        switch (*s) {
        case '&': e = "&amp;"; break;
        case '<': e = "&lt;"; break;
        case '>': e = "&gt;"; break;
        case '"': e = "&quot;"; break;
        case '\'': e = "&#39;"; break;
        default: break;
        }
        if (e) {
            memcpy(dst + n, e, strlen(e));
            n += strlen(e);
        } else {
            dst[n++] = *s;
        }
    }
    dst[n] = '\0';
}

static void api_page(reply *r, const char *uid, const char *vid)
{
    bool found = false;
    pthread_mutex_lock(&S.mu);
    user *u = strlen(uid) <= ID_MAX ? tab_find(uid) : NULL;
    if (u && u->exists && u->has_kyc && strcmp(u->vid, vid) == 0)
        found = true;
    pthread_mutex_unlock(&S.mu);
    if (!found) {
        reply_p100(r, 404, "P445", "kyc-not-found", "KYC not found");
        return;
    }
    char eu[ID_MAX * 6 + 1], ev[VALUE_MAX * 6 + 1], page[4096];
    html_escape(eu, sizeof eu, uid);
    html_escape(ev, sizeof ev, vid);
    snprintf(page, sizeof page,
             "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>P100 verification</title></head>\n"
             "<body><h1>Identity verification</h1>\n"
             "<p>User %s, verification %s.</p>\n"
             "<p><a id=\"idp\" href=\"https://idenfy.p100-sim.invalid/session/%s\">Continue to the identity "
             "provider</a> (simulated: this address does not exist).</p>\n"
             "</body></html>\n",
             eu, ev, ev);
    reply_text(r, 200, "text/html; charset=utf-8", page);
}

static void reply_fault(reply *r, enum fail_kind k, long retry_after)
{
    switch (k) {
    case FAIL_P500:
        reply_p100(r, 400, "P500", "unknown-exception", "Unknown exception");
        break;
    case FAIL_P501:
        reply_p100(r, 400, "P501", "service-unavailable", "Service temporarily unavailable");
        break;
    case FAIL_503:
        /* What a load balancer in front of P100 would say: not P100's JSON. */
        reply_text(r, 503, "text/html",
                   "<html><head><title>503 Service Temporarily Unavailable</title></head>"
                   "<body><h1>503 Service Temporarily Unavailable</h1></body></html>\n");
        snprintf(r->code, sizeof r->code, "503");
        r->retry_after = retry_after;
        break;
    case FAIL_429:
        /* P100 is silent on its rate limit answer: a bare errorMessage, and
         * Retry-After only when the fault asks for one. */
        reply_p100(r, 429, NULL, NULL, "Too Many Requests");
        r->retry_after = retry_after;
        break;
    }
}

enum api_kind { API_NONE, API_STATUS, API_CREATE, API_PAGE, API_NOT_FOUND, API_BAD_METHOD };

static void api_handle(struct mg_connection *conn, const struct mg_request_info *ri, reply *r,
                       char *log_user, size_t log_user_cap, const char **fault_out) {
        char path[2048];
        char *seg[6];
        snprintf(path, sizeof path, "%s", ri->local_uri ? ri->local_uri + 1 : "");
        int n = split_path(path, seg, 6);
        bool get = strcmp(ri->request_method, "GET") == 0;
        bool post = strcmp(ri->request_method, "POST") == 0;
        enum api_kind kind = API_NOT_FOUND;
        const char *uid = NULL, *vid = NULL;
        if (n >= 2 && strcmp(seg[0], "v1") == 0 && strcmp(seg[1], "kyc") == 0) {
            if (n == 2) {
                kind = post ? API_CREATE : API_BAD_METHOD;
            } else if (n == 4 && strcmp(seg[2], "status") == 0) {
                kind = get ? API_STATUS : API_BAD_METHOD;
                uid = seg[3];
            } else if (n == 5 && strcmp(seg[2], "verification") == 0) {
                kind = get ? API_PAGE : API_BAD_METHOD;
                uid = seg[3];
                vid = seg[4];
            }
        }

        char *body = NULL;
        bool too_big = false;
        char body_uid[ID_MAX + 1] = "";
        if (kind == API_CREATE) {
            body = read_body(conn, &too_big);
            /* Only to count the call against its user; validated later. */
            cJSON *root = body ? cJSON_Parse(body) : NULL;
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "externalUserId");
            if (cJSON_IsString(id) && strlen(id->valuestring) <= ID_MAX)
                snprintf(body_uid, sizeof body_uid, "%s", id->valuestring);
            cJSON_Delete(root);
            uid = body_uid[0] ? body_uid : NULL;
        }
        if (uid)
            snprintf(log_user, log_user_cap, "%s", uid);

        const char *key = mg_get_header(conn, "x-api-key");
        enum { GO, DENY_XO1, DENY_XO2, DENY_XO3, FAIL } verdict = GO;
        faults f;
        bool counted_user = false;

        pthread_mutex_lock(&S.mu);
        uint64_t epoch = S.epoch;
        f = S.f;
        S.api_calls++;
        if (kind == API_STATUS)
            S.status_calls++;
        else if (kind == API_CREATE)
            S.create_calls++;
        else if (kind == API_PAGE)
            S.page_calls++;
        if (++S.inflight > S.max_inflight)
            S.max_inflight = S.inflight;
        user *u = uid ? tab_get(uid) : NULL;
        if (u) {
            u->calls++;
            if (kind == API_STATUS) {
                u->status_calls++;
                counted_user = true;
                if (++u->inflight > u->max_inflight)
                    u->max_inflight = u->inflight;
                if (u->inflight > S.max_inflight_user)
                    S.max_inflight_user = u->inflight;
            }
        }
        /* The order of P100's own checks as far as the codes tell: the IP
         * allow-list (xo3), then the key (xo1 missing, xo2 wrong). The browser
         * page carries no key: it is shown to the user, not the partner. */
        if (f.unauthorized)
            verdict = DENY_XO3;
        else if (kind != API_PAGE && (key == NULL || key[0] == '\0'))
            verdict = DENY_XO1;
        else if (kind != API_PAGE && !consttime_eq(key, api_key))
            verdict = DENY_XO2;
        else if ((kind == API_STATUS || kind == API_CREATE || kind == API_PAGE) &&
                 (f.scope == SCOPE_ALL || (f.scope == SCOPE_STATUS && kind == API_STATUS) ||
                  (f.scope == SCOPE_CREATE && kind == API_CREATE))) {
            if (S.f.fail_next > 0) {
                S.f.fail_next--;
                verdict = FAIL;
            } else if (f.fail_rate > 0 && rng_unit() < f.fail_rate) {
                verdict = FAIL;
            }
        }
        pthread_mutex_unlock(&S.mu);

        latency_wait(f.latency_ms);

        *fault_out = "-";
        switch (verdict) {
        case DENY_XO1:
            reply_p100(r, 401, NULL, NULL, "Access Denied. xo1");
            break;
        case DENY_XO2:
            reply_p100(r, 401, NULL, NULL, "Access Denied. xo2");
            break;
        case DENY_XO3:
            reply_p100(r, 401, NULL, NULL, "Access Denied. xo3");
            *fault_out = "unauthorized";
            break;
        case FAIL:
            reply_fault(r, f.fail_with, f.retry_after);
            *fault_out = fail_names[f.fail_with];
            break;
        case GO:
            if (kind == API_STATUS)
                api_status(r, uid);
            else if (kind == API_CREATE && too_big)
                reply_p100(r, 413, NULL, NULL, "Request body too large");
            else if (kind == API_CREATE)
                api_create(r, body);
            else if (kind == API_PAGE)
                api_page(r, uid, vid);
            else if (kind == API_BAD_METHOD)
                reply_p100(r, 405, NULL, NULL, "Method Not Allowed");
            else
                reply_p100(r, 404, NULL, NULL, "Not Found");
            break;
        }
        free(body);

        pthread_mutex_lock(&S.mu);
        if (epoch == S.epoch) {
            S.inflight--;
            if (counted_user && (u = tab_find(uid)) != NULL && u->inflight > 0)
                u->inflight--;
        }
        if (r->code[0])
            count_error(r->code);
        pthread_mutex_unlock(&S.mu);
    }

/* ------------------------------------------------------------------ control API */

/* Copies a string field (absent/null -> ""); false when of another type or too long. */
static bool get_str(const cJSON *o, const char *name, char *dst, size_t cap, bool *present)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    if (present)
        *present = it != NULL && !cJSON_IsNull(it);
    dst[0] = '\0';
    if (it == NULL || cJSON_IsNull(it))
        return true;
    if (!cJSON_IsString(it) || strlen(it->valuestring) >= cap)
        return false;
    strcpy(dst, it->valuestring);
    return true;
}

static bool only_keys(const cJSON *o, const char *const *allowed, char *bad, size_t cap)
{
    for (const cJSON *it = o->child; it; it = it->next)
        if (!in_list(it->string, allowed)) {
            snprintf(bad, cap, "unknown field %s", it->string);
            return false;
        }
    return true;
}

static cJSON *user_json(const user *u)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "externalUserId", u->id);
    cJSON_AddBoolToObject(o, "exists", u->exists);
    if (u->has_kyc) {
        cJSON_AddStringToObject(o, "verificationStatus", u->vstatus);
        cJSON_AddStringToObject(o, "attemptStatus", u->astatus);
        if (u->reason[0])
            cJSON_AddStringToObject(o, "rejectionReason", u->reason);
        cJSON_AddStringToObject(o, "verificationId", u->vid);
    }
    cJSON_AddNumberToObject(o, "calls", (double)u->calls);
    cJSON_AddNumberToObject(o, "status_calls", (double)u->status_calls);
    cJSON_AddNumberToObject(o, "in_flight", u->inflight);
    cJSON_AddNumberToObject(o, "max_concurrent", u->max_inflight);
    return o;
}

/* Caller holds S.mu. Overwrites the user's state; no webhook. */
static void user_set(user *u, const char *vs, const char *as, const char *reason, const char *vid)
{
    user_make_real(u);
    if (vs[0] == '\0' && as[0] == '\0') {
        u->has_kyc = false;
        u->vstatus[0] = u->astatus[0] = u->reason[0] = u->vid[0] = '\0';
        return;
    }
    u->has_kyc = true;
    /* The arguments may point into u itself (keep a field as it is):
     * copy through temporaries, never snprintf a buffer onto itself. */
    char v[sizeof u->vstatus], a[sizeof u->astatus], r[sizeof u->reason];
    snprintf(v, sizeof v, "%s", vs);
    snprintf(a, sizeof a, "%s", as);
    snprintf(r, sizeof r, "%s", reason);
    memcpy(u->vstatus, v, sizeof v);
    memcpy(u->astatus, a, sizeof a);
    memcpy(u->reason, r, sizeof r);
    if (vid[0])
        snprintf(u->vid, sizeof u->vid, "%s", vid);
    else if (u->vid[0] == '\0')
        new_uuid(u->vid);
}

static void sim_users(reply *r, const cJSON *in)
{
    static const char *const keys[] = {"externalUserId", "verificationStatus", "attemptStatus",
                                       "rejectionReason", "verificationId", "prefix", "count", NULL};
    char bad[200], id[ID_MAX + 1], prefix[ID_MAX + 1], vs[VALUE_MAX + 1], as[VALUE_MAX + 1],
        reason[REASON_MAX + 1], vid[VALUE_MAX + 1];
    bool has_prefix;
    if (!only_keys(in, keys, bad, sizeof bad)) {
        reply_sim_error(r, 400, bad);
        return;
    }
    if (!get_str(in, "externalUserId", id, sizeof id, NULL) ||
        !get_str(in, "prefix", prefix, sizeof prefix, &has_prefix) ||
        !get_str(in, "verificationStatus", vs, sizeof vs, NULL) ||
        !get_str(in, "attemptStatus", as, sizeof as, NULL) ||
        !get_str(in, "rejectionReason", reason, sizeof reason, NULL) ||
        !get_str(in, "verificationId", vid, sizeof vid, NULL)) {
        reply_sim_error(r, 400, "a field is not a string or is too long");
        return;
    }
    if ((vs[0] == '\0') != (as[0] == '\0')) {
        reply_sim_error(r, 400, "give both verificationStatus and attemptStatus, or neither");
        return;
    }
    const cJSON *cnt = cJSON_GetObjectItemCaseSensitive(in, "count");
    if (has_prefix || cnt) {
        if (id[0] || vid[0]) {
            reply_sim_error(r, 400, "bulk: externalUserId and verificationId are not allowed");
            return;
        }
        if (!cJSON_IsNumber(cnt) || cnt->valuedouble < 1 || cnt->valuedouble > 1000000) {
            reply_sim_error(r, 400, "bulk: count must be 1..1000000");
            return;
        }
        long count = (long)cnt->valuedouble;
        if (strlen(prefix) + 7 > ID_MAX) {
            reply_sim_error(r, 400, "bulk: prefix too long");
            return;
        }
        long made = 0;
        pthread_mutex_lock(&S.mu);
        for (long i = 0; i < count; i++) {
            char bid[ID_MAX + 32]; /* prefix is at most ID_MAX - 7 (checked above) */
            snprintf(bid, sizeof bid, "%s%ld", prefix, i);
            user *u = tab_get(bid);
            if (u == NULL)
                break;
            user_set(u, vs, as, reason, "");
            made++;
        }
        size_t total = S.nusers;
        pthread_mutex_unlock(&S.mu);
        if (made < count) {
            reply_sim_error(r, 500, "out of memory");
            return;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "created", (double)made);
        cJSON_AddNumberToObject(o, "users", (double)total);
        reply_json(r, 200, o);
        return;
    }
    if (id[0] == '\0') {
        reply_sim_error(r, 400, "externalUserId (or prefix and count) is required");
        return;
    }
    pthread_mutex_lock(&S.mu);
    user *u = tab_get(id);
    cJSON *o = NULL;
    if (u) {
        user_set(u, vs, as, reason, vid);
        o = user_json(u);
    }
    pthread_mutex_unlock(&S.mu);
    if (o == NULL) {
        reply_sim_error(r, 500, "out of memory");
        return;
    }
    reply_json(r, 200, o);
}

static bool parse_mode(const char *s, enum wh_mode *m)
{
    if (s[0] == '\0' || strcmp(s, "send") == 0)
        *m = WH_SEND;
    else if (strcmp(s, "drop") == 0)
        *m = WH_DROP;
    else if (strcmp(s, "duplicate") == 0)
        *m = WH_DUPLICATE;
    else if (strcmp(s, "hold") == 0)
        *m = WH_HOLD;
    else
        return false;
    return true;
}

static const char *mode_name(enum wh_mode m)
{
    static const char *const names[] = {"sent", "dropped", "duplicated", "held"};
    return names[m];
}

static void reply_submitted(reply *r, cJSON *o, enum wh_mode mode, const uint64_t seqs[2])
{
    cJSON_AddStringToObject(o, "webhook", mode_name(mode));
    cJSON *a = cJSON_AddArrayToObject(o, "deliveries");
    for (int i = 0; i < 2; i++)
        if (seqs[i])
            cJSON_AddItemToArray(a, cJSON_CreateNumber((double)seqs[i]));
    reply_json(r, 200, o);
}

static void sim_advance(reply *r, const char *id, const cJSON *in)
{
    static const char *const keys[] = {"verificationStatus", "attemptStatus", "rejectionReason",
                                       "webhook", NULL};
    char bad[200], vs[VALUE_MAX + 1], as[VALUE_MAX + 1], reason[REASON_MAX + 1], mode_s[16];
    bool has_vs, has_as;
    enum wh_mode mode;
    if (!only_keys(in, keys, bad, sizeof bad)) {
        reply_sim_error(r, 400, bad);
        return;
    }
    if (!get_str(in, "verificationStatus", vs, sizeof vs, &has_vs) ||
        !get_str(in, "attemptStatus", as, sizeof as, &has_as) ||
        !get_str(in, "rejectionReason", reason, sizeof reason, NULL) ||
        !get_str(in, "webhook", mode_s, sizeof mode_s, NULL) || !parse_mode(mode_s, &mode)) {
        reply_sim_error(r, 400, "bad field (webhook is send, drop, duplicate or hold)");
        return;
    }
    if (mode != WH_DROP && webhook_base[0] == '\0') {
        reply_sim_error(r, 409, "no --webhook-url was given: only \"webhook\":\"drop\" works");
        return;
    }

    pthread_mutex_lock(&S.mu);
    user *u = strlen(id) <= ID_MAX ? tab_find(id) : NULL;
    if (u == NULL || !u->exists) {
        pthread_mutex_unlock(&S.mu);
        reply_sim_error(r, 404, "no such user (create it with POST /v1/kyc or /_sim/users)");
        return;
    }
    /* Absent statuses keep their value; rejectionReason is replaced (absent clears it). */
    user_set(u, has_vs ? vs : (u->has_kyc ? u->vstatus : "NOT_VERIFIED"),
             has_as ? as : (u->has_kyc ? u->astatus : "PENDING"), reason, "");
    cJSON *hook = cJSON_CreateObject();
    cJSON_AddStringToObject(hook, "externalUserId", u->id);
    cJSON_AddStringToObject(hook, "verificationStatus", u->vstatus);
    cJSON_AddStringToObject(hook, "attemptStatus", u->astatus);
    /* P100 is silent on an unset rejectionReason in the webhook: the
     * documented body always has all four fields, so it is sent as null. */
    if (u->reason[0])
        cJSON_AddStringToObject(hook, "rejectionReason", u->reason);
    else
        cJSON_AddNullToObject(hook, "rejectionReason");
    cJSON *o = user_json(u);
    pthread_mutex_unlock(&S.mu);

    char *body = cJSON_PrintUnformatted(hook);
    cJSON_Delete(hook);
    uint64_t seqs[2];
    if (body == NULL || wh_submit("kyc-verification-status", id, body, mode, seqs) != 0) {
        free(body);
        cJSON_Delete(o);
        reply_sim_error(r, 500, "out of memory");
        return;
    }
    free(body);
    reply_submitted(r, o, mode, seqs);
}

static void sim_poa(reply *r, const char *id, const cJSON *in)
{
    static const char *const keys[] = {"status", "webhook", NULL};
    char bad[200], status[VALUE_MAX + 1], mode_s[16];
    enum wh_mode mode;
    if (!only_keys(in, keys, bad, sizeof bad)) {
        reply_sim_error(r, 400, bad);
        return;
    }
    if (!get_str(in, "status", status, sizeof status, NULL) || status[0] == '\0' ||
        !get_str(in, "webhook", mode_s, sizeof mode_s, NULL) || !parse_mode(mode_s, &mode)) {
        reply_sim_error(r, 400, "status (WAITING, APPROVED, REJECTED, QUESTIONED) is required");
        return;
    }
    if (mode != WH_DROP && webhook_base[0] == '\0') {
        reply_sim_error(r, 409, "no --webhook-url was given: only \"webhook\":\"drop\" works");
        return;
    }
    pthread_mutex_lock(&S.mu);
    user *u = strlen(id) <= ID_MAX ? tab_find(id) : NULL;
    bool ok = u && u->exists;
    pthread_mutex_unlock(&S.mu);
    if (!ok) {
        reply_sim_error(r, 404, "no such user (create it with POST /v1/kyc or /_sim/users)");
        return;
    }
    cJSON *hook = cJSON_CreateObject();
    cJSON_AddStringToObject(hook, "externalUserId", id);
    cJSON_AddStringToObject(hook, "status", status);
    char *body = cJSON_PrintUnformatted(hook);
    cJSON_Delete(hook);
    uint64_t seqs[2];
    if (body == NULL || wh_submit("poa-verification-status", id, body, mode, seqs) != 0) {
        free(body);
        reply_sim_error(r, 500, "out of memory");
        return;
    }
    free(body);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "externalUserId", id);
    cJSON_AddStringToObject(o, "status", status);
    reply_submitted(r, o, mode, seqs);
}

static cJSON *faults_json(const faults *f)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "latency_ms", (double)f->latency_ms);
    cJSON_AddNumberToObject(o, "fail_rate", f->fail_rate);
    cJSON_AddStringToObject(o, "fail_with", fail_names[f->fail_with]);
    cJSON_AddNumberToObject(o, "retry_after", (double)f->retry_after);
    cJSON_AddBoolToObject(o, "unauthorized", f->unauthorized);
    cJSON_AddNumberToObject(o, "fail_next", (double)f->fail_next);
    cJSON_AddStringToObject(o, "scope", scope_names[f->scope]);
    return o;
}

static bool get_num(const cJSON *o, const char *name, double lo, double hi, double *v)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    if (it == NULL)
        return true;
    if (!cJSON_IsNumber(it) || it->valuedouble < lo || it->valuedouble > hi)
        return false;
    *v = it->valuedouble;
    return true;
}

/* A POST replaces the whole fault set: what it leaves out returns to its default. */
static void sim_faults(reply *r, const cJSON *in)
{
    static const char *const keys[] = {"latency_ms", "fail_rate", "fail_with", "retry_after",
                                       "unauthorized", "fail_next", "scope", "seed", NULL};
    char bad[200], with[16], scope[16];
    faults f;
    faults_default(&f);
    double lat = (double)f.latency_ms, rate = 0, ra = 0, next = 0, seed = -1;
    if (!only_keys(in, keys, bad, sizeof bad)) {
        reply_sim_error(r, 400, bad);
        return;
    }
    if (!get_num(in, "latency_ms", 0, 600000, &lat) || !get_num(in, "fail_rate", 0, 1, &rate) ||
        !get_num(in, "retry_after", 0, 86400, &ra) || !get_num(in, "fail_next", 0, 1e9, &next) ||
        !get_num(in, "seed", 0, 9007199254740991.0, &seed)) {
        reply_sim_error(r, 400, "a number is out of range (latency_ms 0..600000, fail_rate 0..1, "
                                       "retry_after 0..86400, fail_next >= 0, seed >= 0)");
        return;
    }
    if (!get_str(in, "fail_with", with, sizeof with, NULL) || !get_str(in, "scope", scope, sizeof scope, NULL)) {
        reply_sim_error(r, 400, "fail_with and scope are strings");
        return;
    }
    if (with[0]) {
        int k = -1;
        for (int i = 0; i < 4; i++)
            if (strcmp(with, fail_names[i]) == 0)
                k = i;
        if (k < 0) {
            reply_sim_error(r, 400, "fail_with is one of P500, P501, 503, 429");
            return;
        }
        f.fail_with = (enum fail_kind)k;
    }
    if (scope[0]) {
        int k = -1;
        for (int i = 0; i < 3; i++)
            if (strcmp(scope, scope_names[i]) == 0)
                k = i;
        if (k < 0) {
            reply_sim_error(r, 400, "scope is one of all, status, create");
            return;
        }
        f.scope = (enum scope)k;
    }
    const cJSON *un = cJSON_GetObjectItemCaseSensitive(in, "unauthorized");
    if (un && !cJSON_IsBool(un)) {
        reply_sim_error(r, 400, "unauthorized is true or false");
        return;
    }
    f.unauthorized = un && cJSON_IsTrue(un);
    f.latency_ms = (long)lat;
    f.fail_rate = rate;
    f.retry_after = (long)ra;
    f.fail_next = (long)next;
    pthread_mutex_lock(&S.mu);
    S.f = f;
    if (seed >= 0)
        S.rng = (uint64_t)seed;
    pthread_mutex_unlock(&S.mu);
    reply_json(r, 200, faults_json(&f));
}

static void sim_reset(reply *r)
{
    pthread_mutex_lock(&S.mu);
    tab_clear();
    S.epoch++;
    faults_default(&S.f);
    S.rng = O.seed;
    S.api_calls = S.status_calls = S.create_calls = S.page_calls = 0;
    S.inflight = S.max_inflight = S.max_inflight_user = 0;
    memset(S.errs, 0, sizeof S.errs);
    pthread_mutex_unlock(&S.mu);
    wh_clear(true);
    reply_text(r, 200, "application/json", "{\"reset\":true}");
}

static void sim_stats(reply *r, const struct mg_request_info *ri)
{
    char want[ID_MAX + 1] = "", all[8] = "";
    const char *q = ri->query_string;
    size_t ql = q ? strlen(q) : 0;
    int wl = q ? mg_get_var(q, ql, "user", want, sizeof want) : -1;
    if (q)
        mg_get_var(q, ql, "users", all, sizeof all);
    cJSON *o = cJSON_CreateObject();
    pthread_mutex_lock(&S.mu);
    cJSON_AddNumberToObject(o, "api_calls", (double)S.api_calls);
    cJSON_AddNumberToObject(o, "status_calls", (double)S.status_calls);
    cJSON_AddNumberToObject(o, "create_calls", (double)S.create_calls);
    cJSON_AddNumberToObject(o, "page_calls", (double)S.page_calls);
    cJSON_AddNumberToObject(o, "in_flight", S.inflight);
    cJSON_AddNumberToObject(o, "max_concurrent", S.max_inflight);
    cJSON_AddNumberToObject(o, "max_concurrent_per_user", S.max_inflight_user);
    cJSON_AddNumberToObject(o, "users", (double)S.nusers);
    cJSON *errs = cJSON_AddObjectToObject(o, "errors_sent");
    for (int i = 0; i < ERR_KEYS && S.errs[i].code[0]; i++)
        cJSON_AddNumberToObject(errs, S.errs[i].code, (double)S.errs[i].n);
    if (wl >= 0) {
        const user *u = tab_find(want);
        cJSON *by = cJSON_AddObjectToObject(o, "calls_by_user");
        cJSON_AddNumberToObject(by, want, u ? (double)u->calls : 0);
        cJSON_AddNumberToObject(o, "calls", u ? (double)u->calls : 0);
        cJSON_AddItemToObject(o, "user", u ? user_json(u) : cJSON_CreateNull());
    } else if (strcmp(all, "all") == 0) {
        cJSON *by = cJSON_AddObjectToObject(o, "calls_by_user");
        for (size_t i = 0; i < S.nbuckets; i++)
            for (const user *u = S.buckets[i]; u; u = u->next)
                if (u->calls > 0)
                    cJSON_AddNumberToObject(by, u->id, (double)u->calls);
    }
    pthread_mutex_unlock(&S.mu);
    pthread_mutex_lock(&W.mu);
    cJSON_AddNumberToObject(o, "webhooks_sent", (double)W.sent);
    cJSON_AddNumberToObject(o, "webhook_attempts", (double)W.attempts);
    cJSON_AddNumberToObject(o, "webhooks_acked", (double)W.acked);
    cJSON_AddNumberToObject(o, "webhooks_failed", (double)W.failed);
    cJSON_AddNumberToObject(o, "webhooks_dropped", (double)W.dropped);
    cJSON_AddNumberToObject(o, "webhooks_held", (double)W.held_n);
    cJSON_AddNumberToObject(o, "webhooks_pending", (double)(W.queued + W.inflight));
    pthread_mutex_unlock(&W.mu);
    reply_json(r, 200, o);
}

static void sim_webhooks(reply *r, const struct mg_request_info *ri)
{
    char want[ID_MAX + 1] = "";
    const char *q = ri->query_string;
    int wl = q ? mg_get_var(q, strlen(q), "user", want, sizeof want) : -1;
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "deliveries");
    pthread_mutex_lock(&W.mu);
    size_t start = (W.ring_next + RING_MAX - W.ring_n) % RING_MAX;
    for (size_t i = 0; i < W.ring_n; i++) {
        const wh_record *w = &W.ring[(start + i) % RING_MAX];
        if (wl >= 0 && strcmp(w->user, want) != 0)
            continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "seq", (double)w->seq);
        cJSON_AddStringToObject(e, "kind", w->kind);
        cJSON_AddStringToObject(e, "externalUserId", w->user);
        cJSON_AddStringToObject(e, "result", w->result);
        cJSON_AddNumberToObject(e, "attempts", w->attempts);
        cJSON_AddNumberToObject(e, "http_status", (double)w->http);
        if (w->error[0])
            cJSON_AddStringToObject(e, "error", w->error);
        cJSON *b = w->body ? cJSON_Parse(w->body) : NULL;
        cJSON_AddItemToObject(e, "body", b ? b : cJSON_CreateNull());
        cJSON_AddItemToArray(a, e);
    }
    cJSON_AddNumberToObject(o, "pending", (double)(W.queued + W.inflight));
    cJSON_AddNumberToObject(o, "held", (double)W.held_n);
    pthread_mutex_unlock(&W.mu);
    reply_json(r, 200, o);
}

static void sim_handle(struct mg_connection *conn, const struct mg_request_info *ri, reply *r)
{
    char path[2048];
    char *seg[5];
    snprintf(path, sizeof path, "%s", ri->local_uri + strlen("/_sim/"));
    int n = split_path(path, seg, 5);
    bool get = strcmp(ri->request_method, "GET") == 0;
    bool post = strcmp(ri->request_method, "POST") == 0;

    if (n == 1 && get && strcmp(seg[0], "stats") == 0) {
        sim_stats(r, ri);
        return;
    }
    if (n == 1 && get && strcmp(seg[0], "webhooks") == 0) {
        sim_webhooks(r, ri);
        return;
    }
    if (n == 1 && get && strcmp(seg[0], "faults") == 0) {
        pthread_mutex_lock(&S.mu);
        faults f = S.f;
        pthread_mutex_unlock(&S.mu);
        reply_json(r, 200, faults_json(&f));
        return;
    }
    if (n == 2 && get && strcmp(seg[0], "users") == 0) {
        pthread_mutex_lock(&S.mu);
        const user *u = strlen(seg[1]) <= ID_MAX ? tab_find(seg[1]) : NULL;
        cJSON *o = u ? user_json(u) : NULL;
        pthread_mutex_unlock(&S.mu);
        if (o == NULL) {
            reply_sim_error(r, 404, "no such user");
            return;
        }
        reply_json(r, 200, o);
        return;
    }
    if (!post) {
        reply_sim_error(r, n < 1 ? 404 : 405, "not found, or not with this method");
        return;
    }
    if (n == 1 && strcmp(seg[0], "reset") == 0) {
        sim_reset(r);
        return;
    }

    bool too_big;
    char *body = read_body(conn, &too_big);
    cJSON *in = body && body[0] ? cJSON_Parse(body) : cJSON_CreateObject();
    free(body);
    if (too_big) {
        cJSON_Delete(in);
        reply_sim_error(r, 413, "body too large");
        return;
    }
    if (in == NULL || !cJSON_IsObject(in)) {
        cJSON_Delete(in);
        reply_sim_error(r, 400, "the body must be a JSON object");
        return;
    }
    if (n == 1 && strcmp(seg[0], "users") == 0)
        sim_users(r, in);
    else if (n == 3 && strcmp(seg[0], "users") == 0 && strcmp(seg[2], "advance") == 0)
        sim_advance(r, seg[1], in);
    else if (n == 3 && strcmp(seg[0], "users") == 0 && strcmp(seg[2], "poa") == 0)
        sim_poa(r, seg[1], in);
    else if (n == 1 && strcmp(seg[0], "faults") == 0)
        sim_faults(r, in);
    else if (n == 1 && strcmp(seg[0], "flush") == 0) {
        char order[16];
        if (!get_str(in, "order", order, sizeof order, NULL) ||
            !(order[0] == '\0' || strcmp(order, "fifo") == 0 || strcmp(order, "reverse") == 0)) {
            reply_sim_error(r, 400, "order is fifo or reverse");
        } else {
            long k = wh_flush(strcmp(order, "reverse") == 0);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "flushed", (double)k);
            reply_json(r, 200, o);
        }
    } else
        reply_sim_error(r, 404, "not found");
    cJSON_Delete(in);
}

/* ------------------------------------------------------------------ server */

static atomic_long request_ids;

static int on_request(struct mg_connection *conn, void *cbdata)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    double t0 = now_ms_f();
    long rid = atomic_fetch_add(&request_ids, 1) + 1;
    reply r;
    memset(&r, 0, sizeof r);
    char user_buf[ID_MAX + 1] = "", p[256], u[ID_MAX + 1];
    const char *fault = "-";
    const char *uri = ri->local_uri ? ri->local_uri : "/";
    bool sim = strncmp(uri, "/_sim/", 6) == 0;
    if (sim)
        sim_handle(conn, ri, &r);
    else
        api_handle(conn, ri, &r, user_buf, sizeof user_buf, &fault);
    send_reply(conn, &r);
    sim_log("info", "request", "rid=%ld method=%s path=%s status=%d code=%s user=%s fault=%s ms=%.1f",
            rid, ri->request_method, logsafe(p, sizeof p, uri), r.status, r.code[0] ? r.code : "-",
            logsafe(u, sizeof u, user_buf), fault, now_ms_f() - t0);
    free(r.body);
    return r.status;
}

static int on_init_ssl(void *ssl_ctx, void *user_data)
{
    SSL_CTX *ctx = ssl_ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, O.cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, O.key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        char c[512], k[512];
        sim_log("error", "tls setup failed", "cert=%s key=%s", logsafe(c, sizeof c, O.cert),
                logsafe(k, sizeof k, O.key));
        return -1;
    }
    return 1; /* done: CivetWeb must not load certificates itself */
}

static int on_log_message(const struct mg_connection *conn, const char *message)
{
    char m[512];
    sim_log("warn", "http server", "detail=%s", logsafe(m, sizeof m, message));
    return 1;
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *f)
{
    fputs("usage: p100-sim --listen HOST:PORT --cert server.pem --key server.key --api-key-file FILE\n"
          "                [--webhook-url https://HOST:PORT/webhooks/p100] [--webhook-token-file FILE]\n"
          "                [--webhook-ca ca.pem] [--retry-scale X] [--latency-ms N] [--threads N]\n"
          "                [--seed N] [--webhook-timeout-ms N]\n"
          "A simulator of P100's Partner API for tests (TLS only). Secrets come from files.\n"
          "API:     POST /v1/kyc, GET /v1/kyc/status/{externalUserId},\n"
          "         GET /v1/kyc/verification/{externalUserId}/{verificationId}\n"
          "Control: POST /_sim/users, /_sim/users/{id}/advance, /_sim/users/{id}/poa, /_sim/flush,\n"
          "         /_sim/faults, /_sim/reset; GET /_sim/stats[?user=ID|?users=all], /_sim/faults,\n"
          "         /_sim/users/{id}, /_sim/webhooks[?user=ID]\n",
          f);
}

/* First line of a file, trailing white space removed; the secret never reaches a log. */
static int read_secret(const char *path, char *dst, size_t cap, const char *what)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "p100-sim: cannot read the %s file %s: %s\n", what, path, strerror(errno));
        return -1;
    }
    char line[1024];
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    size_t n = ok ? strlen(line) : 0;
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
        line[--n] = '\0';
    if (n == 0 || n >= cap) {
        fprintf(stderr, "p100-sim: the %s file %s is empty or too long\n", what, path);
        memset(line, 0, sizeof line);
        return -1;
    }
    memcpy(dst, line, n + 1);
    memset(line, 0, sizeof line);
    return 0;
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static int parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        char name[64];
        const char *eq = strchr(a, '=');
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0)
            goto bad;
        if (eq) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
            v = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
            if (i + 1 >= argc)
                goto bad;
            v = argv[++i];
        }
        long n;
        if (strcmp(name, "--listen") == 0)
            O.listen = v;
        else if (strcmp(name, "--cert") == 0)
            O.cert = v;
        else if (strcmp(name, "--key") == 0)
            O.key = v;
        else if (strcmp(name, "--api-key-file") == 0)
            O.api_key_file = v;
        else if (strcmp(name, "--webhook-url") == 0)
            O.webhook_url = v;
        else if (strcmp(name, "--webhook-token-file") == 0)
            O.webhook_token_file = v;
        else if (strcmp(name, "--webhook-ca") == 0)
            O.webhook_ca = v;
        else if (strcmp(name, "--retry-scale") == 0) {
            char *end;
            O.retry_scale = strtod(v, &end);
            if (end == v || *end || !(O.retry_scale > 0 && O.retry_scale <= 100))
                goto bad_value;
        } else if (strcmp(name, "--latency-ms") == 0) {
            if (!parse_long(v, 0, 600000, &O.latency_ms))
                goto bad_value;
        } else if (strcmp(name, "--threads") == 0) {
            if (!parse_long(v, 1, 1024, &n))
                goto bad_value;
            O.threads = (int)n;
        } else if (strcmp(name, "--seed") == 0) {
            if (!parse_long(v, 0, LONG_MAX, &n))
                goto bad_value;
            O.seed = (uint64_t)n;
        } else if (strcmp(name, "--webhook-timeout-ms") == 0) {
            if (!parse_long(v, 1, 600000, &O.webhook_timeout_ms))
                goto bad_value;
        } else if (strcmp(name, "--api-key") == 0 || strcmp(name, "--webhook-token") == 0) {
            fprintf(stderr, "p100-sim: secrets are not taken on the command line: use %s-file\n", name);
            return -1;
        } else
            goto bad;
        continue;
    bad_value:
        fprintf(stderr, "p100-sim: bad value for %s\n", name);
        return -1;
    bad:
        fprintf(stderr, "p100-sim: unexpected argument %s\n", a);
        usage(stderr);
        return -1;
    }
    if (!O.listen || !O.cert || !O.key || !O.api_key_file) {
        fprintf(stderr, "p100-sim: --listen, --cert, --key and --api-key-file are required\n");
        usage(stderr);
        return -1;
    }
    if (O.webhook_url) {
        if (strncmp(O.webhook_url, "https://", 8) != 0 && strncmp(O.webhook_url, "http://", 7) != 0) {
            fprintf(stderr, "p100-sim: --webhook-url must start with https:// or http://\n");
            return -1;
        }
        snprintf(webhook_base, sizeof webhook_base, "%s", O.webhook_url);
        size_t l = strlen(webhook_base);
        while (l > 0 && webhook_base[l - 1] == '/')
            webhook_base[--l] = '\0';
    }
    return 0;
}

int main(int argc, char **argv) {
            if (parse_args(argc, argv) != 0)
                return 2;
            if (read_secret(O.api_key_file, api_key, sizeof api_key, "API key") != 0)
                return 2;
            if (O.webhook_token_file &&
                read_secret(O.webhook_token_file, webhook_token, sizeof webhook_token, "webhook token") != 0)
                return 2;

            faults_default(&S.f);
            S.rng = O.seed;
            cond_init_mono(&stop_cv);
            cond_init_mono(&W.cv);

            /* Signals go to main alone: block them before any thread starts. */
            sigset_t sigs;
            sigemptyset(&sigs);
            sigaddset(&sigs, SIGTERM);
            sigaddset(&sigs, SIGINT);
            pthread_sigmask(SIG_BLOCK, &sigs, NULL);
            signal(SIGPIPE, SIG_IGN);

            if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
                fprintf(stderr, "p100-sim: curl_global_init failed\n");
                return 1;
            }
            mg_init_library(MG_FEATURES_TLS);
            if (!mg_check_feature(MG_FEATURES_TLS)) {
                fprintf(stderr, "p100-sim: this CivetWeb has no TLS\n");
                return 1;
            }

            if (pthread_create(&W.thread, NULL, wh_thread, NULL) != 0) {
                fprintf(stderr, "p100-sim: cannot start the webhook sender\n");
                return 1;
            }
            W.started = true;

            char ports[300], threads[16];
            snprintf(ports, sizeof ports, "%ss", O.listen);
            snprintf(threads, sizeof threads, "%d", O.threads);
            const char *options[] = {
                "listening_ports", ports,
                "num_threads", threads,
                "tcp_nodelay", "1", /* without it keep-alive requests stall 40 ms each */
                "enable_keep_alive", "yes",
                "keep_alive_timeout_ms", "10000",
                "request_timeout_ms", "30000",
                "ssl_protocol_version", "4",
                "listen_backlog", "512",
                "connection_queue", "512",
                NULL, NULL,
            };
            struct mg_callbacks cb;
            memset(&cb, 0, sizeof cb);
            cb.init_ssl = on_init_ssl;
            cb.log_message = on_log_message;
            struct mg_init_data init = {.callbacks = &cb, .user_data = NULL, .configuration_options = options};
            char ebuf[256] = "";
            struct mg_error_data ed;
            memset(&ed, 0, sizeof ed);
            ed.text = ebuf;
            ed.text_buffer_size = sizeof ebuf;
            struct mg_context *ctx = mg_start2(&init, &ed);
            int rc = 0, port = 0;
            if (ctx == NULL) {
                char l[256], e[512];
                sim_log("error", "cannot start", "listen=%s error=%s", logsafe(l, sizeof l, O.listen),
                        logsafe(e, sizeof e, ebuf));
                rc = 1;
                goto out;
            }
            mg_set_request_handler(ctx, "/", on_request, NULL);
            struct mg_server_port bound[4];
            int nb = mg_get_server_ports(ctx, 4, bound);
            for (int i = 0; i < nb; i++)
                if (bound[i].is_ssl)
                    port = bound[i].port;
            if (port == 0) {
                char l[256];
                sim_log("error", "cannot start", "listen=%s error=\"no TLS listener\"",
                        logsafe(l, sizeof l, O.listen));
                rc = 1;
                goto out;
            }
            char w[1024];
            sim_log("info", "listening", "port=%d threads=%d webhook_url=%s retry_scale=%g latency_ms=%ld",
                    port, O.threads, logsafe(w, sizeof w, webhook_base), O.retry_scale, O.latency_ms);
            printf("p100-sim listening port=%d\n", port);
            fflush(stdout);

            int sig = 0;
            while (sigwait(&sigs, &sig) != 0)
                ;
            sim_log("info", "stopping", "signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");

out:
            /* Reverse order of start: requests (and their latency waits), then the sender. */
            pthread_mutex_lock(&stop_mu);
            atomic_store(&stopping, true);
            pthread_cond_broadcast(&stop_cv);
            pthread_mutex_unlock(&stop_mu);
            if (ctx)
                mg_stop(ctx);
            atomic_store(&wh_abort, true);
            pthread_mutex_lock(&W.mu);
            W.stop = true;
            pthread_cond_broadcast(&W.cv);
            pthread_mutex_unlock(&W.mu);
            if (W.started)
                pthread_join(W.thread, NULL);
            long left = W.queued + W.held_n;
            wh_clear(true);
            pthread_mutex_lock(&S.mu);
            tab_clear();
            pthread_mutex_unlock(&S.mu);
            curl_global_cleanup();
            mg_exit_library();
            memset(api_key, 0, sizeof api_key);
            memset(webhook_token, 0, sizeof webhook_token);
            if (rc == 0)
                sim_log("info", "stopped", "webhooks_abandoned=%ld", left);
            return rc;
        }
