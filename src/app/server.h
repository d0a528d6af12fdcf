/* The HTTPS server: CivetWeb glue (the only user of civetweb.h). Adapts a
 * CivetWeb connection to the plain http_request of handler.h, writes the
 * http_response back, and logs one line per request. */
#ifndef KYCD_APP_SERVER_H
#define KYCD_APP_SERVER_H

#include <stdatomic.h>
#include <stdint.h>

#include "app/handler.h"
#include "base/err.h"
#include "io/tls.h"

typedef struct server server;

/* What the server counts, for /readyz (kept by the caller, so it can read
 * them at any time; updated atomically by the server's threads). */
typedef struct server_counters {
    atomic_llong refused;  /* connections from outside allow_cidrs, closed at accept */
    atomic_llong timeouts; /* requests whose headers did not arrive in time (408) */
    atomic_llong slow_cut; /* connections cut for sending too slowly (core/slowrate.h) */
} server_counters;

typedef struct server_opts {
    const char *listen;      /* "HOST:PORT", TLS; IPv6 as "[::]:PORT" */
    const char *http_listen; /* plain HTTP for a local proxy, or NULL */
    int plain;               /* listen is plain HTTP, not TLS (the admin listener on loopback) */
    int exact_allow;         /* allow is the whole list: loopback is not added */
    tls_opts tls;
    int threads; /* worker threads (one per connection) */
    /* The TLS handshake and the request's headers must arrive within this
     * (CivetWeb's request_timeout_ms; also its deadline for each read and
     * write). The body's deadline is the handler's (body_timeout_ms). */
    int64_t header_timeout_ms;
    int64_t keepalive_ms;
    /* Slow clients (core/slowrate.h): in its TLS handshake, its headers and
     * its body, a connection must send slow_min_rate bytes a second after
     * slow_grace_ms (0: SLOW_GRACE_MS), a grace that shrinks as the workers
     * fill; slow_min_rate 0: only the timeouts above. TLS listeners only. */
    int64_t slow_grace_ms;
    int64_t slow_min_rate;
    int64_t linger_ms;    /* lingering close: discard unread input this long, */
    int64_t linger_bytes; /* and at most this much; 0 ms: close at once */
    /* Connections from outside this list (and not from 127.0.0.1 or ::1,
     * for local probes) are closed when accepted: no worker, queue slot or
     * handshake is spent on them. NULL or empty: every address. */
    const cidr_list *allow;
    server_counters *counters; /* borrowed; may be NULL */
    const handler_ctx *handler;
} server_opts;

/* Initialise CivetWeb with TLS and check that TLS really is there: built
 * with OpenSSL 3 linked in, not a library that silently runs without it. */
int server_tls_available(kerr *err) KYCD_MUST_CHECK;

/* Start listening and serving. Fails (and listens on nothing) if the TLS
 * listener does not come up as TLS. */
int server_start(server **out, const server_opts *o, kerr *err) KYCD_MUST_CHECK;

/* The bound TLS port (useful with port 0); the plain one when opts.plain. */
int server_tls_port(const server *s);

/* Wait until no request is being handled, at most timeout_ms; returns how
 * many are still in flight. Call with the handler's draining flag set, so
 * that new requests are turned away (503) while the old ones finish. */
int server_drain(server *s, int64_t timeout_ms);

/* Close every connection, join the workers, free. A request still in
 * flight is cut off: drain first. */
void server_stop(server *s);

/* New connections get o's certificate, key and chain from now on (open
 * ones keep theirs; the listener never stops). On failure the old ones
 * keep serving. Called by SIGHUP's reload. */
int server_tls_reload(server *s, const tls_opts *o, kerr *err) KYCD_MUST_CHECK;

/* CivetWeb's version string. */
const char *server_library_version(void);

#endif
