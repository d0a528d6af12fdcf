/* CivetWeb glue. Must never include anything but the plain handler API
 * from above it, and never log request bodies or headers' values. */
#include "app/server.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <pthread.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "app/slowwatch.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/log.h"
#include "core/token.h"

struct server {
    struct mg_context *ctx;
    server_opts opts;
    int tls_port;
    tls_live *tls;       /* the listener's certificates, reloadable */
    char acl[8192];      /* CivetWeb's access_control_list, from allow_cidrs */
    server_counters own; /* when the caller keeps none */
    server_counters *counters;
    double refused_logged_ms;   /* rate limit of the refusal line (master thread only) */
    long long refused_unlogged; /* refusals since that line */
    pthread_mutex_t mu;         /* guards active */
    pthread_cond_t idle;        /* signalled when active drops to 0 */
    int active;                 /* requests inside on_request */
    /* Slow clients (core/slowrate.h). */
    slow_policy slow;
    slow_watch *watch;
};

/* From io/tls.c, on the worker, as a TLS handshake starts. */
static void on_handshake(void *arg, int fd)
{
    server *s = arg;
    slow_watch_handshake(s->watch, fd);
}

static void on_connection_close(const struct mg_connection *conn)
{
    server *s = mg_get_user_data(mg_get_context(conn));
    if (s != NULL)
        slow_watch_close(s->watch);
}

int server_tls_available(kerr *err)
{
    unsigned features = mg_init_library(MG_FEATURES_TLS);
    if (!(features & MG_FEATURES_TLS) || !mg_check_feature(MG_FEATURES_TLS))
        return kerr_set(err, KERR_TLS,
                        "this kycd's CivetWeb has no working TLS (it must be built from source "
                        "with OPENSSL_API_3_0 and NO_SSL_DL); refusing to start");
    return 0;
}

/* The body as the handler reads it, and how far it got: what is left
 * unread when the answer is sent decides whether to linger. */
typedef struct body_io {
    struct mg_connection *conn;
    size_t chunk; /* the next read's size (see read_body) */
    int ended;    /* mg_read said the body is complete */
    int failed;   /* a read failed or timed out: the client stopped sending */
    server *s;
    long long length; /* declared; -1: chunked */
    long long got;
} body_io;

/* CivetWeb's mg_read returns only once it has filled the whole buffer
 * asked for (or the client went quiet for header_timeout), so one large
 * read from a client trickling a byte a second would run for hours, past
 * the handler's body deadline (request_timeout). So reads start at one
 * byte, and double (up to 16 KiB) only while each comes back at once (the
 * bytes were already there: CivetWeb's buffer, OpenSSL's record); a read
 * that had to wait starts again at one byte. A trickling client is cut
 * off within about one byte's wait of the deadline; a fast one is read in
 * large pieces (README, "Slow clients": measured). */
static int read_body(void *io, char *buf, size_t len)
{
    body_io *b = io;
    if (b->chunk == 0)
        b->chunk = 1;
    size_t want = len < b->chunk ? len : b->chunk;
    double t0 = clock_now_ms();
    int n = mg_read(b->conn, buf, want);
    if (clock_now_ms() - t0 < 1.0) {
        if (b->chunk < 16384)
            b->chunk *= 2;
    } else {
        b->chunk = 1;
    }
    if (slow_watch_was_cut()) {
        /* The watchdog cut a trickling body. With a declared length, say
         * "no more" (the handler sees it short: 408); a chunked body has
         * no length to fall short of, so it is a failed read (400). */
        b->failed = 1;
        n = b->length >= 0 ? 0 : -1;
        slow_watch_enter(b->s->watch, SLOW_ACTIVE);
        return n;
    }
    if (n == 0)
        b->ended = 1;
    else if (n < 0)
        b->failed = 1;
    else
        b->got += n;
    if (n <= 0 || (b->length >= 0 && b->got >= b->length))
        slow_watch_enter(b->s->watch, SLOW_ACTIVE); /* the request is in: never cut now */
    return n;
}

/* Lingering close (nginx's lingering_close). An answer given before the
 * whole request was read (413 on the declared length, 401/403/415 before
 * the body, 503 while draining) leaves the rest of the body on its way; a
 * socket closed with unread input makes the kernel answer RST, and a
 * client still writing then loses the answer it has not read yet. So the
 * rest is read and thrown away first, for at most linger_ms and
 * linger_bytes: a client cannot hold the worker with it (a read that has
 * to wait waits at most header_timeout, CivetWeb's read deadline). Returns
 * the bytes discarded. */
static long long linger(body_io *b, const server_opts *o, int *complete)
{
    char buf[16384]; /* read_body's largest read */
    long long discarded = 0;
    double t0 = clock_now_ms();
    *complete = b->ended;
    if (b->ended || b->failed || o->linger_ms <= 0)
        return 0;
    while (discarded < o->linger_bytes && clock_now_ms() - t0 < (double)o->linger_ms) {
        size_t want = sizeof buf;
        if ((long long)want > o->linger_bytes - discarded)
            want = (size_t)(o->linger_bytes - discarded);
        /* read_body's growing reads: a client trickling its body cannot
         * stretch a large read past linger_ms. */
        int n = read_body(b, buf, want);
        if (n == 0) {
            *complete = 1;
            break;
        }
        if (n < 0)
            break;
        discarded += n;
    }
    return discarded;
}

/* CivetWeb 1.15 has no call that closes a server connection after the
 * answer: it keeps the connection open when the client asked for keep-alive
 * (HTTP/1.1's default), although the answer said "Connection: close", and
 * RFC 9112 9.6 says the server MUST close then. CivetWeb decides from the
 * request's Connection header, which lives in the public request info (not
 * const storage: the pointer is const only as an API promise), so set it
 * to "close" there. With 64 headers and none of them Connection (CivetWeb's
 * limit) there is no room; the client still got "Connection: close". */
static void force_close(struct mg_connection *conn)
{
    struct mg_request_info *ri = (struct mg_request_info *)mg_get_request_info(conn);
    for (int i = 0; i < ri->num_headers; i++)
        if (strcasecmp(ri->http_headers[i].name, "Connection") == 0) {
            ri->http_headers[i].value = "close";
            return;
        }
    if (ri->num_headers < MG_MAX_HEADERS) {
        ri->http_headers[ri->num_headers].name = "Connection";
        ri->http_headers[ri->num_headers].value = "close";
        ri->num_headers++;
    }
}

/* What CivetWeb would answer in its Connection header when the answer does
 * not ask to close (its should_keep_alive, for our listener: keep-alive is
 * enabled): the client's explicit wish, else HTTP/1.1's default. */
static int client_keeps_alive(const struct mg_request_info *ri)
{
    for (int i = 0; i < ri->num_headers; i++)
        if (strcasecmp(ri->http_headers[i].name, "Connection") == 0)
            return strcasestr(ri->http_headers[i].value, "keep-alive") != NULL;
    return ri->http_version && strcmp(ri->http_version, "1.1") == 0;
}

/* Returns 0 when the whole answer was handed to the socket; -1 when
 * CivetWeb could not write it (the peer is gone, or the server is already
 * stopping: CivetWeb writes nothing once mg_stop has begun).
 *
 * The status line, headers and body go in one mg_write: CivetWeb's
 * mg_response_header_send writes each header line on its own, and with
 * tcp_nodelay each write is a TLS record and a TCP segment of its own
 * (about 9 per answer, each waking the client), a large part of the cost
 * of a small answer. */
static int send_response(struct mg_connection *conn, const http_response *r, const char *rid)
{
    const char *body = r->ext.len > 0 ? kbuf_str(&r->ext) : r->body;
    size_t blen = strlen(body);
    char date[40];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    int keep = !r->close && client_keeps_alive(mg_get_request_info(conn));
    kbuf b;
    kbuf_init(&b);
    int rc = kbuf_appendf(&b,
                          "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                          "Content-Length: %zu\r\nCache-Control: no-store\r\n",
                          r->status, mg_get_response_code_text(conn, r->status),
                          r->content_type ? r->content_type : "application/json", blen);
    if (rc == 0 && rid)
        rc = kbuf_appendf(&b, "X-Request-Id: %s\r\n", rid);
    if (rc == 0 && r->retry_after > 0)
        rc = kbuf_appendf(&b, "Retry-After: %d\r\n", r->retry_after);
    if (rc == 0 && r->allow)
        rc = kbuf_appendf(&b, "Allow: %s\r\n", r->allow);
    if (rc == 0)
        rc = kbuf_appendf(&b, "Date: %s\r\nConnection: %s\r\n\r\n", date,
                          keep ? "keep-alive" : "close");
    /* A HEAD answer has the GET answer's headers and no body (RFC 9110
     * 9.3.2): bytes after the headers would be read by a keep-alive client
     * as the start of its next answer. */
    const char *method = mg_get_request_info(conn)->request_method;
    if (rc == 0 && !(method && strcmp(method, "HEAD") == 0))
        rc = kbuf_append(&b, body, blen);
    if (rc == 0)
        rc = mg_write(conn, b.data, b.len) == (int)b.len ? 0 : -1;
    kbuf_deinit(&b);
    return rc == 0 ? 0 : -1;
}

/* 128 random bits in hex; if the random source fails, the time and pid
 * (still unique enough for a log, and never a secret). */
static void new_request_id(char rid[33])
{
    if (token_random_hex(rid, 16) != 0)
        snprintf(rid, 33, "%016llx%016llx", (long long)(clock_now_ms() * 1000),
                 (long long)getpid());
}

/* When the connection a worker thread serves began waiting for its next
 * request (after the handshake, or after the last answer), and how many it
 * has answered: each CivetWeb worker serves one connection at a time, so
 * this lives with the thread (set in on_init_connection and on_request,
 * read by on_http_error, all on that thread). */
static _Thread_local struct {
    double wait_start_ms;
    int handled;
} conn_clock;

static int on_init_connection(const struct mg_connection *conn, void **conn_data)
{
    conn_clock.wait_start_ms = clock_now_ms();
    conn_clock.handled = 0;
    server *s = mg_get_user_data(mg_get_context(conn));
    if (s)
        slow_watch_enter(s->watch, SLOW_HEADERS); /* the handshake is done */
    return 0;
}

static int on_request(struct mg_connection *conn, void *cbdata)
{
    server *s = cbdata;
    double t0 = clock_now_ms();
    pthread_mutex_lock(&s->mu);
    s->active++;
    pthread_mutex_unlock(&s->mu);
    const struct mg_request_info *ri = mg_get_request_info(conn);
    char rid[33];
    new_request_id(rid);

    long long content_length = ri->content_length;
    const char *te = mg_get_header(conn, "Transfer-Encoding");
    if (content_length < 0 && !(te && strcasecmp(te, "chunked") == 0))
        content_length = 0; /* no body (RFC 9112 6.3) */

    body_io body = {.conn = conn, .ended = content_length == 0, .s = s, .length = content_length};
    slow_watch_enter(s->watch, content_length != 0 ? SLOW_BODY : SLOW_ACTIVE);
    http_request req = {
        .method = ri->request_method,
        .path = ri->local_uri,
        .content_type = mg_get_header(conn, "Content-Type"),
        .authorization = mg_get_header(conn, "Authorization"),
        .remote_addr = ri->remote_addr,
        .content_length = content_length,
        .request_id = rid,
        .read_body = read_body,
        .io = &body,
    };
    http_response resp;
    handler_note note;
    handler_serve(s->opts.handler, &req, &resp, &note);
    note.unsent = send_response(conn, &resp, rid) != 0;
    if (!note.unsent && content_length != 0) {
        int complete = 0;
        note.lingered = linger(&body, &s->opts, &complete);
        note.linger_cut = !complete && !body.failed;
    }
    if (resp.close)
        force_close(conn);
    /* A body the watchdog cut is counted and logged there, rate-limited:
     * one line per cut connection would let a flood flood the log too. */
    if (!slow_watch_was_cut())
        handler_log(&req, &resp, &note, clock_now_ms() - t0);
    handler_response_deinit(&resp);
    conn_clock.wait_start_ms = clock_now_ms();
    conn_clock.handled++;
    slow_watch_enter(s->watch, SLOW_KEEPALIVE);
    pthread_mutex_lock(&s->mu);
    if (--s->active == 0)
        pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
    return resp.status;
}

static void server_free_(server *s)
{
    tls_live_free(s->tls); /* after mg_stop: no handshake uses it any more */
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->idle);
    slow_watch_free(s->watch); /* after mg_stop: no connection uses its slot any more */
    free(s);
}

/* TLS context: certificate, key and chain from separate files, TLS 1.2+. */
static int on_init_ssl(void *ssl_ctx, void *user_data)
{
    server *s = user_data;
    kerr err;
    if (s->tls != NULL) /* one TLS listener, one context */
        return 1;
    if (tls_live_new(&s->tls, ssl_ctx, &s->opts.tls, &err) != 0) {
        klog(KLOG_ERROR, "tls setup failed", KLOG_STR("error", err.msg));
        return -1;
    }
    if (s->slow.min_rate > 0 && tls_live_on_handshake(s->tls, on_handshake, s) != 0) {
        klog(KLOG_ERROR, "tls setup failed", KLOG_STR("error", "no room for the handshake hook"));
        return -1;
    }
    return 1; /* done: CivetWeb must not load certificates itself */
}

/* CivetWeb's access list from allow_cidrs: deny by default, then each
 * block (an IPv4 block also as its IPv4-mapped IPv6 form, for a dual-stack
 * listener), then 127.0.0.1 and ::1 so that local probes and a local proxy
 * still reach /healthz and /readyz (their webhooks still get 403 from the
 * handler unless allow_cidrs names them). */
static int build_acl(char *out, size_t cap, const cidr_list *l, int loopback)
{
    size_t o = 0;
    out[0] = '\0';
#define ACL_PUT(...)                                                                               \
    do {                                                                                           \
        int n_ = snprintf(out + o, cap - o, __VA_ARGS__);                                          \
        if (n_ < 0 || (size_t)n_ >= cap - o)                                                       \
            return -1;                                                                             \
        o += (size_t)n_;                                                                           \
    } while (0)
    for (int i = 0; i < l->count; i++) {
        const cidr_block *b = &l->blocks[i];
        char a[INET6_ADDRSTRLEN];
        if (b->family == 4) {
            inet_ntop(AF_INET, b->addr, a, sizeof a);
            ACL_PUT("%s+%s/%d,+[::ffff:%s]/%d", o ? "," : "", a, b->prefix, a, 96 + b->prefix);
        } else {
            inet_ntop(AF_INET6, b->addr, a, sizeof a);
            ACL_PUT("%s+[%s]/%d", o ? "," : "", a, b->prefix);
        }
    }
    if (loopback)
        ACL_PUT(",+127.0.0.1/32,+[::ffff:127.0.0.1]/128,+[::1]/128");
#undef ACL_PUT
    return 0;
}

/* CivetWeb reports each connection its access list refused (one line per
 * connection: a flood would flood the log too). Count them all; log the
 * first at once and then at most one line per 10 s with the count. The
 * accepting thread is the only caller for these. */
static int note_refused(server *s, const char *message)
{
    const char *p = strstr(message, " is not allowed to connect");
    if (p == NULL)
        return 0;
    long long total = atomic_fetch_add(&s->counters->refused, 1) + 1;
    s->refused_unlogged++;
    double now = clock_now_ms();
    if (s->refused_logged_ms == 0 || now - s->refused_logged_ms >= 10000) {
        const char *q = strstr(message, ": ");
        char addr[64] = "";
        if (q && q < p) {
            q += 2;
            snprintf(addr, sizeof addr, "%.*s", (int)(p - q < 63 ? p - q : 63), q);
        }
        klog(KLOG_WARN, "connections refused by allow_cidrs",
             KLOG_INT("count", s->refused_unlogged), KLOG_INT("total", total),
             KLOG_STR("last", addr));
        s->refused_logged_ms = now;
        s->refused_unlogged = 0;
    }
    return 1;
}

/* CivetWeb answers a request whose headers did not all arrive (the
 * header_timeout ran out, or the client closed mid-headers) with a plain
 * 400 "Malformed message". That is a timeout to the client: answer 408 in
 * kycd's JSON form. Every other error keeps CivetWeb's own answer. */
static int on_http_error(struct mg_connection *conn, int status, const char *msg)
{
    if (status != 400 || msg == NULL || strcmp(msg, "Malformed message") != 0)
        return 1; /* not handled: CivetWeb's default page */
    server *s = mg_get_user_data(mg_get_context(conn));
    /* CivetWeb says "Malformed message" for headers over its size limit
     * too: a timeout is told apart by the time spent waiting (the limit is
     * keepalive for a connection's later requests, as in CivetWeb). */
    int64_t limit = conn_clock.handled ? s->opts.keepalive_ms : s->opts.header_timeout_ms;
    if (!slow_watch_was_cut() && clock_now_ms() - conn_clock.wait_start_ms < 0.9 * (double)limit)
        return 1;
    atomic_fetch_add(&s->counters->timeouts, 1);
    const struct mg_request_info *ri = mg_get_request_info(conn);
    char rid[33];
    new_request_id(rid);
    http_request req = {.remote_addr = ri->remote_addr, .request_id = rid};
    http_response resp;
    handler_note note;
    handler_header_timeout(&resp, &note, rid);
    note.unsent = send_response(conn, &resp, rid) != 0;
    if (!slow_watch_was_cut()) /* as in on_request: the watchdog logs its cuts */
        handler_log(&req, &resp, &note, clock_now_ms() - conn_clock.wait_start_ms);
    handler_response_deinit(&resp);
    return 0;
}

static int on_log_message(const struct mg_connection *conn, const char *message)
{
    server *s = mg_get_user_data(mg_get_context(conn));
    if (s && note_refused(s, message))
        return 1;
    if (slow_watch_was_cut()) /* the handshake or read the watchdog cut: counted and logged there */
        return 1;
    klog_line l;
    klog_begin(&l, KLOG_WARN, "http server");
    klog_str(&l, "detail", message);
    klog_end(&l);
    return 1;
}

/* "0.0.0.0:8443" -> "0.0.0.0:8443s"; "[::]:8443" -> "[::]:8443s". */
static void port_spec(char *out, size_t cap, const char *tls, const char *plain)
{
    snprintf(out, cap, "%ss%s%s", tls, plain ? "," : "", plain ? plain : "");
}

int server_start(server **out, const server_opts *o, kerr *err)
{
    server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return kerr_set(err, KERR_NOMEM, "out of memory");
    s->opts = *o;
    s->counters = o->counters ? o->counters : &s->own;
    s->slow = (slow_policy){.grace_ms = o->slow_grace_ms > 0 ? o->slow_grace_ms : SLOW_GRACE_MS,
                            .min_rate = o->slow_min_rate};
    if (slow_watch_new(&s->watch, &s->slow, o->threads, &s->counters->slow_cut, err) != 0) {
        free(s);
        return -1;
    }
    if (clock_cond_init(&s->idle) != 0) {
        slow_watch_free(s->watch);
        free(s);
        return kerr_set(err, KERR_NOMEM, "cannot create a condition variable");
    }
    pthread_mutex_init(&s->mu, NULL);

    char ports[300], threads[16], req_to[24], ka_to[24];
    if (o->plain)
        snprintf(ports, sizeof ports, "%s", o->listen);
    else
        port_spec(ports, sizeof ports, o->listen, o->http_listen);
    snprintf(threads, sizeof threads, "%d", o->threads);
    snprintf(req_to, sizeof req_to, "%lld", (long long)o->header_timeout_ms);
    snprintf(ka_to, sizeof ka_to, "%lld", (long long)o->keepalive_ms);
    if (o->allow && o->allow->count > 0 &&
        build_acl(s->acl, sizeof s->acl, o->allow, !o->exact_allow) != 0) {
        server_free_(s);
        return kerr_set(err, KERR_INVALID, "allow_cidrs does not fit CivetWeb's access list");
    }
    /* clang-format off */
    const char *options[] = {
        "listening_ports", ports,
        "num_threads", threads,
        "tcp_nodelay", "1",          /* without it keep-alive requests stall 40 ms each */
        "enable_keep_alive", "yes",
        "keep_alive_timeout_ms", ka_to,
        "request_timeout_ms", req_to, /* handshake, headers, and each read or write */
        "ssl_protocol_version", "4",  /* TLS 1.2 and newer */
        "max_request_size", "16384",  /* request line + headers */
        /* Sized in the README ("What one instance withstands"): the
         * kernel's queue absorbs bursts of connections (capped by
         * net.core.somaxconn), CivetWeb's queue holds accepted sockets a
         * worker has not taken yet. */
        "listen_backlog", "4096",
        "connection_queue", "1024",
        s->acl[0] ? "access_control_list" : NULL, s->acl,
        NULL, NULL,
    };
    /* clang-format on */
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.init_ssl = o->plain ? NULL : on_init_ssl;
    cb.log_message = on_log_message;
    cb.http_error = on_http_error;
    cb.init_connection = on_init_connection;
    cb.connection_close = on_connection_close;

    struct mg_init_data init = {.callbacks = &cb, .user_data = s, .configuration_options = options};
    struct mg_error_data ed;
    char ebuf[256] = "";
    memset(&ed, 0, sizeof ed);
    ed.text = ebuf;
    ed.text_buffer_size = sizeof ebuf;
    s->ctx = mg_start2(&init, &ed);
    if (s->ctx == NULL) {
        server_free_(s);
        return kerr_set(err, KERR_IO, "cannot start the %s server on %s: %s",
                        o->plain ? "HTTP" : "HTTPS", o->listen, ebuf[0] ? ebuf : "unknown error");
    }
    mg_set_request_handler(s->ctx, "/", on_request, s);

    /* Check that the TLS listener really is TLS. */
    struct mg_server_port bound[4];
    int n = mg_get_server_ports(s->ctx, 4, bound);
    for (int i = 0; i < n; i++)
        if (bound[i].is_ssl || o->plain)
            s->tls_port = bound[i].port;
    if (s->tls_port == 0 && !o->plain) {
        mg_stop(s->ctx);
        server_free_(s);
        return kerr_set(err, KERR_TLS, "the listener on %s did not come up with TLS", o->listen);
    }
    if (s->slow.min_rate > 0 && !o->plain) {
        if (slow_watch_run(s->watch, err) != 0) {
            mg_stop(s->ctx);
            server_free_(s);
            return -1;
        }
    }
    *out = s;
    return 0;
}

int server_drain(server *s, int64_t timeout_ms)
{
    struct timespec until = clock_deadline(timeout_ms);
    pthread_mutex_lock(&s->mu);
    while (s->active > 0 && pthread_cond_timedwait(&s->idle, &s->mu, &until) == 0)
        ;
    int left = s->active;
    pthread_mutex_unlock(&s->mu);
    return left;
}

int server_tls_port(const server *s)
{
    return s->tls_port;
}

void server_stop(server *s)
{
    if (s == NULL)
        return;
    /* CivetWeb aborts reads and writes in progress once stopping: callers
     * drain first (server_drain). This closes connections, joins workers. */
    mg_stop(s->ctx);
    server_free_(s);
}

int server_tls_reload(server *s, const tls_opts *o, kerr *err)
{
    if (s->tls == NULL)
        return kerr_set(err, KERR_STATE, "the TLS listener is not up");
    return tls_live_reload(s->tls, o, err);
}

const char *server_library_version(void)
{
    return mg_version();
}
