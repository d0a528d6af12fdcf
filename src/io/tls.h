/* The server's TLS context: certificate, private key and chain from
 * separate PEM files, TLS 1.2 and 1.3 only, a modern cipher list (the only
 * user of OpenSSL's SSL API). */
#ifndef KYCD_IO_TLS_H
#define KYCD_IO_TLS_H

#include <stdint.h>

#include "base/err.h"

typedef struct tls_opts {
    const char *cert;      /* PEM: the server certificate (leaf first; may hold the chain) */
    const char *key;       /* PEM: its private key */
    const char *chain;     /* PEM: intermediate certificates, optional */
    const char *ciphers;   /* TLS 1.2 cipher list (TLS 1.3 suites are OpenSSL's defaults) */
    const char *client_ca; /* PEM CA bundle: when set, clients must present a certificate
                            * it signed (mutual TLS); NULL: no client certificates */
} tls_opts;

/* Configure an OpenSSL SSL_CTX (passed as void * so that callers need not
 * include OpenSSL). Errors name the file and OpenSSL's reason, never key
 * material. */
int tls_configure(void *ssl_ctx, const tls_opts *o, kerr *err) KYCD_MUST_CHECK;

/* Load everything into a throwaway context: the check `kycd serve` runs
 * before it starts listening, so that a bad file is a clear message. */
int tls_check(const tls_opts *o, kerr *err) KYCD_MUST_CHECK;

/* Certificates that can change while the listener serves (SIGHUP). */
typedef struct tls_live tls_live;

/* Configure CivetWeb's listener context ssl_ctx (as tls_configure) and
 * make it reloadable: after tls_live_reload, new connections get the new
 * certificate, key and chain; open ones keep theirs. Free after the
 * listener has stopped. */
int tls_live_new(tls_live **out, void *ssl_ctx, const tls_opts *o, kerr *err) KYCD_MUST_CHECK;

/* Load o's files into a new context and use it for new connections. On
 * failure nothing changes (the old certificate keeps serving). */
int tls_live_reload(tls_live *l, const tls_opts *o, kerr *err) KYCD_MUST_CHECK;

/* Call fn(arg, fd) on the thread that accepts each new TLS connection, as
 * its handshake starts (fd: its socket): the server glue's way to watch
 * how fast a client sends (app/server.c). Once, before serving; -1 if
 * OpenSSL has no room for it. */
int tls_live_on_handshake(tls_live *l, void (*fn)(void *arg, int fd), void *arg);

void tls_live_free(tls_live *l);

/* OpenSSL's version string, e.g. "OpenSSL 3.0.17 1 Jul 2025". */
const char *tls_library_version(void);

/* The leaf certificate's notAfter (Unix seconds), for the
 * kycd_tls_certificate_expiry_timestamp_seconds metric. */
int tls_cert_expiry(const char *cert_file, int64_t *not_after_s, kerr *err) KYCD_MUST_CHECK;

#endif
