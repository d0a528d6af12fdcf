/* CivetWeb glue. Must never include anything but the plain handler API
 * from above it, and never log request bodies or headers' values. */
#include "app/server.h"

#include <civetweb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "core/token.h"

struct server {
    struct mg_context *ctx;
    server_opts opts;
    int tls_port;
    pthread_mutex_t mu;  /* guards active */
    pthread_cond_t idle; /* signalled when active drops to 0 */
    int active;          /* requests inside on_request */
};

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
    int ended;  /* mg_read said the body is complete */
    int failed; /* a read failed or timed out: the client stopped sending */
} body_io;

static int read_body(void *io, char *buf, size_t len)
{
    body_io *b = io;
    int n = mg_read(b->conn, buf, len);
    if (n == 0)
        b->ended = 1;
    else if (n < 0)
        b->failed = 1;
    return n;
}

/* Lingering close (nginx's lingering_close). An answer given before the
 * whole request was read (413 on the declared length, 401/403/415 before
 * the body, 503 while draining) leaves the rest of the body on its way; a
 * socket closed with unread input makes the kernel answer RST, and a
 * client still writing then loses the answer it has not read yet. So the
 * rest is read and thrown away first, for at most linger_ms and
 * linger_bytes: a client cannot hold the worker with it. Each read waits
 * at most request_timeout (CivetWeb's read deadline), so the worst case
 * is linger_ms plus one request_timeout. Returns the bytes discarded. */
static long long linger(body_io *b, const server_opts *o, int *complete)
{
    char buf[4096]; /* small reads: CivetWeb waits until a read is full */
    long long discarded = 0;
    double t0 = clock_now_ms();
    *complete = b->ended;
    if (b->ended || b->failed || o->linger_ms <= 0)
        return 0;
    while (discarded < o->linger_bytes && clock_now_ms() - t0 < (double)o->linger_ms) {
        size_t want = sizeof buf;
        if ((long long)want > o->linger_bytes - discarded)
            want = (size_t)(o->linger_bytes - discarded);
        int n = mg_read(b->conn, buf, want);
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

/* Returns 0 when the whole answer was handed to the socket; -1 when
 * CivetWeb could not write it (the peer is gone, or the server is already
 * stopping: CivetWeb writes nothing once mg_stop has begun). */
static int send_response(struct mg_connection *conn, const http_response *r, const char *rid)
{
    char len[24], retry[24];
    mg_response_header_start(conn, r->status);
    mg_response_header_add(conn, "Content-Type", "application/json", -1);
    snprintf(len, sizeof len, "%zu", strlen(r->body));
    mg_response_header_add(conn, "Content-Length", len, -1);
    mg_response_header_add(conn, "Cache-Control", "no-store", -1);
    if (rid)
        mg_response_header_add(conn, "X-Request-Id", rid, -1);
    if (r->retry_after > 0) {
        snprintf(retry, sizeof retry, "%d", r->retry_after);
        mg_response_header_add(conn, "Retry-After", retry, -1);
    }
    if (r->allow)
        mg_response_header_add(conn, "Allow", r->allow, -1);
    if (r->close)
        mg_response_header_add(conn, "Connection", "close", -1);
    /* CivetWeb does not report failed header writes; the body is written
     * after them on the same socket, so its result stands for the answer. */
    mg_response_header_send(conn);
    size_t blen = strlen(r->body);
    return mg_write(conn, r->body, blen) == (int)blen ? 0 : -1;
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
    if (token_random_hex(rid, 16) != 0)
        snprintf(rid, sizeof rid, "%016llx%016llx", (long long)(t0 * 1000), (long long)getpid());

    long long content_length = ri->content_length;
    const char *te = mg_get_header(conn, "Transfer-Encoding");
    if (content_length < 0 && !(te && strcasecmp(te, "chunked") == 0))
        content_length = 0; /* no body (RFC 9112 6.3) */

    body_io body = {.conn = conn, .ended = content_length == 0};
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
    handler_log(&req, &resp, &note, clock_now_ms() - t0);
    pthread_mutex_lock(&s->mu);
    if (--s->active == 0)
        pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
    return resp.status;
}

static void server_free_(server *s)
{
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->idle);
    free(s);
}

/* TLS context: certificate, key and chain from separate files, TLS 1.2+. */
static int on_init_ssl(void *ssl_ctx, void *user_data)
{
    server *s = user_data;
    kerr err;
    if (tls_configure(ssl_ctx, &s->opts.tls, &err) != 0) {
        klog(KLOG_ERROR, "tls setup failed", KLOG_STR("error", err.msg));
        return -1;
    }
    return 1; /* done: CivetWeb must not load certificates itself */
}

static int on_log_message(const struct mg_connection *conn, const char *message)
{
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
    if (clock_cond_init(&s->idle) != 0) {
        free(s);
        return kerr_set(err, KERR_NOMEM, "cannot create a condition variable");
    }
    pthread_mutex_init(&s->mu, NULL);

    char ports[300], threads[16], req_to[24], ka_to[24];
    port_spec(ports, sizeof ports, o->listen, o->http_listen);
    snprintf(threads, sizeof threads, "%d", o->threads);
    snprintf(req_to, sizeof req_to, "%lld", (long long)o->request_timeout_ms);
    snprintf(ka_to, sizeof ka_to, "%lld", (long long)o->keepalive_ms);
    const char *options[] = {
        "listening_ports",
        ports,
        "num_threads",
        threads,
        "tcp_nodelay",
        "1", /* without it keep-alive requests stall 40 ms each */
        "enable_keep_alive",
        "yes",
        "keep_alive_timeout_ms",
        ka_to,
        "request_timeout_ms",
        req_to,
        "ssl_protocol_version",
        "4", /* TLS 1.2 and newer */
        "max_request_size",
        "16384", /* request line + headers */
        "listen_backlog",
        "512",
        "connection_queue",
        "256",
        NULL,
        NULL,
    };
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.init_ssl = on_init_ssl;
    cb.log_message = on_log_message;

    struct mg_init_data init = {.callbacks = &cb, .user_data = s, .configuration_options = options};
    struct mg_error_data ed;
    char ebuf[256] = "";
    memset(&ed, 0, sizeof ed);
    ed.text = ebuf;
    ed.text_buffer_size = sizeof ebuf;
    s->ctx = mg_start2(&init, &ed);
    if (s->ctx == NULL) {
        server_free_(s);
        return kerr_set(err, KERR_IO, "cannot start the HTTPS server on %s: %s", o->listen,
                        ebuf[0] ? ebuf : "unknown error");
    }
    mg_set_request_handler(s->ctx, "/", on_request, s);

    /* Check that the TLS listener really is TLS. */
    struct mg_server_port bound[4];
    int n = mg_get_server_ports(s->ctx, 4, bound);
    for (int i = 0; i < n; i++)
        if (bound[i].is_ssl)
            s->tls_port = bound[i].port;
    if (s->tls_port == 0) {
        mg_stop(s->ctx);
        server_free_(s);
        return kerr_set(err, KERR_TLS, "the listener on %s did not come up with TLS", o->listen);
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

const char *server_library_version(void)
{
    return mg_version();
}
