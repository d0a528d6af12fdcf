/* p100-sim: the webhook sender (see sim_webhooks.h).
 *
 * Must never: hold W.mu during a transfer, or keep the token anywhere but
 * webhook_token (wiped by wh_stop) and the stack of one attempt. */
#include "sim_webhooks.h"

#include "sim_state.h"
#include "sim_util.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RING_MAX 4096 /* webhook deliveries remembered for /_sim/webhooks */
/* P100's schedule (docs/p100-api.md): 5 attempts in all, about 8, 16, 32
 * and 64 s apart, so P100 gives up about two minutes after the first.
 * --retry-scale 1 is this schedule; a test scales it down. */
#define ATTEMPTS 5
static const int64_t retry_gap_ms[ATTEMPTS - 1] = {8000, 16000, 32000, 64000};
#define HORIZON_REAL_MS (8000 + 16000 + 32000 + 64000) /* the last attempt, after the first */

static char webhook_base[1024];
static char webhook_token[512];
static char conf_ca[1024]; /* "": curl's default CAs */
static double conf_retry_scale = 1.0;
static long conf_timeout_ms = 10000;

typedef struct delivery {
    struct delivery *next;
    uint64_t seq;
    uint64_t epoch;
    int64_t due_ms;
    int attempts;
    long last_http; /* 0: no HTTP answer */
    char last_error[160];
    double first_ms;         /* the first attempt's start (now_ms_f); 0: not tried */
    int64_t first_unix_ms;   /* the same, wall clock */
    int64_t at_ms[ATTEMPTS]; /* each attempt's start, ms after the first */
    char kind[40];           /* the path under the webhook URL: "kyc-verification-status", ... */
    char user[ID_MAX + 1];
    char *body;
} delivery;

typedef struct wh_record {
    uint64_t seq;
    char kind[40];
    char user[ID_MAX + 1];
    const char *result; /* "acked", "failed", "dropped", "abandoned" */
    int attempts;
    int64_t at_ms[ATTEMPTS];
    int64_t first_unix_ms, done_unix_ms; /* 0: never tried */
    double after_ms;                     /* done (acked or failed) after the first attempt */
    long http;
    char error[160];
    char *body;
} wh_record;

static struct {
    pthread_mutex_t mu; /* guards this struct; never held while sending */
    pthread_cond_t cv;  /* CLOCK_MONOTONIC: new work or stopping */
    bool stop;
    uint64_t seq, epoch;
    delivery *queue; /* unsorted; picked by (due, seq) */
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

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
    memcpy(r->at_ms, d->at_ms, sizeof r->at_ms);
    if (d->attempts > 0) {
        r->first_unix_ms = d->first_unix_ms;
        r->done_unix_ms = unix_ms();
        r->after_ms = now_ms_f() - d->first_ms;
    }
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

int wh_submit(const char *kind, const char *uid, const char *body, enum wh_mode mode,
              uint64_t seqs[2])
{
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

long wh_flush(bool reverse)
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
    double ms = (double)retry_gap_ms[attempts_done - 1] * conf_retry_scale;
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
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, conf_timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     conf_timeout_ms < 5000 ? conf_timeout_ms : 5000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_discard);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, curl_progress);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (conf_ca[0])
        curl_easy_setopt(c, CURLOPT_CAINFO, conf_ca);

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
        if (d->attempts == 0) {
            d->first_ms = t0;
            d->first_unix_ms = unix_ms();
        }
        if (d->attempts < ATTEMPTS)
            d->at_ms[d->attempts] = (int64_t)(t0 - d->first_ms);
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
                "seq=%" PRIu64
                " kind=%s user=%s attempt=%d http=%ld error=\"%s\" result=%s ms=%.1f",
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

void wh_clear(bool counters)
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
        W.seq = 0; /* numbers start again at 1 after a reset */
        for (size_t i = 0; i < RING_MAX; i++) {
            free(W.ring[i].body);
            W.ring[i].body = NULL;
        }
        W.ring_next = W.ring_n = 0;
    }
    pthread_mutex_unlock(&W.mu);
}

bool wh_enabled(void)
{
    return webhook_base[0] != '\0';
}

int wh_start(const wh_conf *c)
{
    snprintf(webhook_base, sizeof webhook_base, "%s", c->base ? c->base : "");
    snprintf(webhook_token, sizeof webhook_token, "%s", c->token ? c->token : "");
    snprintf(conf_ca, sizeof conf_ca, "%s", c->ca ? c->ca : "");
    conf_retry_scale = c->retry_scale;
    conf_timeout_ms = c->timeout_ms;
    cond_init_mono(&W.cv);
    if (pthread_create(&W.thread, NULL, wh_thread, NULL) != 0)
        return -1;
    W.started = true;
    return 0;
}

long wh_stop(void)
{
    atomic_store(&wh_abort, true);
    pthread_mutex_lock(&W.mu);
    W.stop = true;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
    if (W.started)
        pthread_join(W.thread, NULL);
    long left = W.queued + W.held_n;
    wh_clear(true);
    memset(webhook_token, 0, sizeof webhook_token);
    return left;
}

void wh_stats_json(cJSON *o)
{
    pthread_mutex_lock(&W.mu);
    cJSON_AddNumberToObject(o, "webhooks_sent", (double)W.sent);
    cJSON_AddNumberToObject(o, "webhook_attempts", (double)W.attempts);
    cJSON_AddNumberToObject(o, "webhooks_acked", (double)W.acked);
    cJSON_AddNumberToObject(o, "webhooks_failed", (double)W.failed);
    cJSON_AddNumberToObject(o, "webhooks_dropped", (double)W.dropped);
    cJSON_AddNumberToObject(o, "webhooks_held", (double)W.held_n);
    cJSON_AddNumberToObject(o, "webhooks_pending", (double)(W.queued + W.inflight));
    pthread_mutex_unlock(&W.mu);
    /* The schedule, to compare a delivery's times with P100's real horizon:
     * a delivery whose acked_after_ms / retry_scale is over
     * retry_horizon_real_ms would have been lost by P100. */
    cJSON_AddNumberToObject(o, "webhook_attempts_max", ATTEMPTS);
    cJSON_AddNumberToObject(o, "retry_scale", conf_retry_scale);
    cJSON *g = cJSON_AddArrayToObject(o, "retry_gaps_ms");
    double horizon = 0;
    for (int i = 0; i < ATTEMPTS - 1; i++) {
        cJSON_AddItemToArray(g, cJSON_CreateNumber((double)retry_gap(i + 1)));
        horizon += (double)retry_gap(i + 1);
    }
    cJSON_AddNumberToObject(o, "retry_horizon_ms", horizon);
    cJSON_AddNumberToObject(o, "retry_horizon_real_ms", HORIZON_REAL_MS);
}

cJSON *wh_deliveries_json(const char *uid)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "deliveries");
    pthread_mutex_lock(&W.mu);
    size_t start = (W.ring_next + RING_MAX - W.ring_n) % RING_MAX;
    for (size_t i = 0; i < W.ring_n; i++) {
        const wh_record *w = &W.ring[(start + i) % RING_MAX];
        if (uid != NULL && strcmp(w->user, uid) != 0)
            continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "seq", (double)w->seq);
        cJSON_AddStringToObject(e, "kind", w->kind);
        cJSON_AddStringToObject(e, "externalUserId", w->user);
        cJSON_AddStringToObject(e, "result", w->result);
        cJSON_AddNumberToObject(e, "attempts", w->attempts);
        cJSON_AddNumberToObject(e, "http_status", (double)w->http);
        if (w->attempts > 0) {
            /* When it was first sent and when it ended (acked or failed), wall
             * clock in ms since the epoch, and the attempts' starts. */
            cJSON_AddNumberToObject(e, "first_sent_unix_ms", (double)w->first_unix_ms);
            cJSON_AddNumberToObject(e, "done_unix_ms", (double)w->done_unix_ms);
            cJSON_AddNumberToObject(e, "done_after_ms", w->after_ms);
            if (strcmp(w->result, "acked") == 0) {
                cJSON_AddNumberToObject(e, "acked_unix_ms", (double)w->done_unix_ms);
                cJSON_AddNumberToObject(e, "acked_after_ms", w->after_ms);
                /* The same delivery on P100's real schedule. */
                cJSON_AddNumberToObject(e, "acked_after_real_ms", w->after_ms / conf_retry_scale);
            }
            cJSON *at = cJSON_AddArrayToObject(e, "attempt_at_ms");
            for (int k = 0; k < w->attempts && k < ATTEMPTS; k++)
                cJSON_AddItemToArray(at, cJSON_CreateNumber((double)w->at_ms[k]));
        }
        if (w->error[0])
            cJSON_AddStringToObject(e, "error", w->error);
        cJSON *b = w->body ? cJSON_Parse(w->body) : NULL;
        cJSON_AddItemToObject(e, "body", b ? b : cJSON_CreateNull());
        cJSON_AddItemToArray(a, e);
    }
    cJSON_AddNumberToObject(o, "pending", (double)(W.queued + W.inflight));
    cJSON_AddNumberToObject(o, "held", (double)W.held_n);
    pthread_mutex_unlock(&W.mu);
    return o;
}
