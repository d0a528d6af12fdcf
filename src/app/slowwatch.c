/* The slow-client watchdog: measures (the kernel's received-bytes count)
 * and cuts; core/slowrate.c decides. */
#include "app/slowwatch.h"

#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_received */
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/clock.h"
#include "base/log.h"

/* What one worker's connection is doing. The worker writes its own slot;
 * the watchdog reads it and may cut the connection (shutdown on fd), both
 * under slow_watch.mu. fd is cleared (slow_watch_close) before CivetWeb
 * closes the socket, so the watchdog never shuts down a descriptor that
 * was reused. */
typedef struct conn_slot {
    int fd; /* -1: no connection (or a plain one: not watched) */
    slow_phase phase;
    double start_ms; /* the phase began */
    uint64_t bytes0; /* the kernel's received-bytes count then */
    atomic_int cut;  /* the watchdog shut it down */
} conn_slot;

struct slow_watch {
    slow_policy policy;
    int threads;
    atomic_llong *cut_total;
    conn_slot *slots; /* one per worker thread, handed out as each first needs it */
    int nslots;
    atomic_int slots_used;
    pthread_mutex_t mu; /* guards the slots' fields and stop */
    pthread_cond_t wake;
    pthread_t thread;
    int running, stop;
    double cut_logged_ms; /* rate limit of the "slow clients cut" line (watchdog only) */
    long long cut_unlogged;
};

/* The worker thread's slot: each CivetWeb worker belongs to one server. */
static _Thread_local conn_slot *my_slot;

int slow_watch_new(slow_watch **out, const slow_policy *p, int threads, atomic_llong *cut_total,
                   kerr *err)
{
    slow_watch *w = calloc(1, sizeof *w);
    if (w == NULL)
        return kerr_set(err, KERR_NOMEM, "out of memory");
    w->policy = *p;
    w->threads = threads;
    w->cut_total = cut_total;
    w->nslots = threads > 0 ? threads : 1;
    w->slots = calloc((size_t)w->nslots, sizeof *w->slots);
    if (w->slots == NULL || clock_cond_init(&w->wake) != 0) {
        free(w->slots);
        free(w);
        return kerr_set(err, KERR_NOMEM, "cannot create a condition variable");
    }
    for (int i = 0; i < w->nslots; i++)
        w->slots[i].fd = -1;
    pthread_mutex_init(&w->mu, NULL);
    *out = w;
    return 0;
}

static conn_slot *slot_of(slow_watch *w)
{
    if (my_slot == NULL) {
        int i = atomic_fetch_add(&w->slots_used, 1);
        if (i < w->nslots)
            my_slot = &w->slots[i];
    }
    return my_slot;
}

int slow_watch_was_cut(void)
{
    return my_slot != NULL && atomic_load(&my_slot->cut);
}

/* Bytes the kernel has received on fd since the connection began (TLS
 * records included): the rate the slow-client rule measures. */
static uint64_t tcp_received(int fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return 0;
    return ti.tcpi_bytes_received;
}

void slow_watch_enter(slow_watch *w, slow_phase ph)
{
    conn_slot *c = my_slot;
    if (c == NULL || c->fd < 0) /* only this thread writes fd */
        return;
    uint64_t b = ph == SLOW_ACTIVE ? 0 : tcp_received(c->fd);
    pthread_mutex_lock(&w->mu);
    c->phase = ph;
    c->start_ms = clock_now_ms();
    c->bytes0 = b;
    pthread_mutex_unlock(&w->mu);
}

void slow_watch_handshake(slow_watch *w, int fd)
{
    conn_slot *c = slot_of(w);
    if (c == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    c->fd = fd;
    c->phase = SLOW_HANDSHAKE;
    c->start_ms = clock_now_ms();
    c->bytes0 = 0; /* the ClientHello counts */
    atomic_store(&c->cut, 0);
    pthread_mutex_unlock(&w->mu);
}

void slow_watch_close(slow_watch *w)
{
    conn_slot *c = my_slot;
    if (w == NULL || c == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    c->fd = -1;
    c->phase = SLOW_IDLE;
    atomic_store(&c->cut, 0); /* its lines are logged by now; the next connection starts clean */
    pthread_mutex_unlock(&w->mu);
}

/* One pass of the watchdog, under mu: cut what the policy says.
 * Returns how many were cut. A cut connection is shut down for reading
 * (its worker sees the end of the input at once: CivetWeb answers 400,
 * which on_http_error turns into 408; a body read ends short of its
 * Content-Length, which the handler answers 408), and for writing too where no answer is due (in
 * the handshake, or between requests). */
static long long slow_sweep(slow_watch *s, int *busy_out, int by_phase[SLOW_KEEPALIVE + 1])
{
    double now = clock_now_ms();
    int busy = 0;
    for (int i = 0; i < s->nslots; i++)
        if (s->slots[i].fd >= 0) {
            busy++;
            by_phase[s->slots[i].phase]++;
        }
    int64_t grace = slow_grace_now(&s->policy, busy, s->threads);
    long long cut = 0;
    for (int i = 0; i < s->nslots; i++) {
        conn_slot *c = &s->slots[i];
        if (c->fd < 0 || atomic_load(&c->cut) || c->phase == SLOW_ACTIVE)
            continue;
        uint64_t b = tcp_received(c->fd);
        uint64_t got = b > c->bytes0 ? b - c->bytes0 : 0;
        if (c->phase == SLOW_KEEPALIVE && got > 0) { /* the next request began */
            c->phase = SLOW_HEADERS;
            c->start_ms = now;
            continue;
        }
        if (!slow_should_cut(&s->policy, c->phase, now - c->start_ms, got, grace, busy, s->threads))
            continue;
        atomic_store(&c->cut, 1);
        int quiet = c->phase == SLOW_HANDSHAKE || c->phase == SLOW_KEEPALIVE;
        shutdown(c->fd, quiet ? SHUT_RDWR : SHUT_RD);
        cut++;
    }
    *busy_out = busy;
    return cut;
}

/* The watchdog thread: a sweep every 50 ms; one log line at most every
 * 10 s with the count (a flood would flood the log too). */
static void *slow_watchdog(void *arg)
{
    slow_watch *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        struct timespec until = clock_deadline(50);
        pthread_cond_timedwait(&s->wake, &s->mu, &until);
        if (s->stop)
            break;
        int busy = 0, by_phase[SLOW_KEEPALIVE + 1] = {0};
        long long n = slow_sweep(s, &busy, by_phase);
        if (n == 0)
            continue;
        long long total = atomic_fetch_add(s->cut_total, n) + n;
        s->cut_unlogged += n;
        double now = clock_now_ms();
        if (s->cut_logged_ms == 0 || now - s->cut_logged_ms >= 10000) {
            long long count = s->cut_unlogged;
            s->cut_logged_ms = now;
            s->cut_unlogged = 0;
            pthread_mutex_unlock(&s->mu);
            klog(KLOG_WARN, "slow clients cut", KLOG_INT("count", count), KLOG_INT("total", total),
                 KLOG_INT("busy_workers", busy), KLOG_INT("in_handshake", by_phase[SLOW_HANDSHAKE]),
                 KLOG_INT("in_headers", by_phase[SLOW_HEADERS]),
                 KLOG_INT("in_body", by_phase[SLOW_BODY]),
                 KLOG_INT("in_keepalive", by_phase[SLOW_KEEPALIVE]));
            pthread_mutex_lock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int slow_watch_run(slow_watch *w, kerr *err)
{
    if (pthread_create(&w->thread, NULL, slow_watchdog, w) != 0)
        return kerr_set(err, KERR_IO, "cannot start the slow-client watchdog");
    w->running = 1;
    return 0;
}

void slow_watch_free(slow_watch *w)
{
    if (w == NULL)
        return;
    if (w->running) {
        pthread_mutex_lock(&w->mu);
        w->stop = 1;
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->wake);
    free(w->slots);
    free(w);
}
