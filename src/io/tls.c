/* Server TLS context setup with OpenSSL 3. Must never log or return key
 * material; errors carry file names and OpenSSL's reason strings only. */
#include "io/tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int ssl_fail(kerr *err, const char *what, const char *file)
{
    unsigned long e = ERR_get_error();
    char reason[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, reason, sizeof reason);
    ERR_clear_error();
    return kerr_set(err, KERR_TLS, "%s %s: %s", what, file ? file : "", reason);
}

int tls_configure(void *ssl_ctx, const tls_opts *o, kerr *err)
{
    SSL_CTX *ctx = ssl_ctx;
    ERR_clear_error();
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
        return ssl_fail(err, "setting minimum TLS version", NULL);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (o->ciphers && *o->ciphers && !SSL_CTX_set_cipher_list(ctx, o->ciphers))
        return ssl_fail(err, "setting cipher list", o->ciphers);
    if (o->cert == NULL || o->key == NULL)
        return kerr_set(err, KERR_TLS, "certificate and key are required");
    if (!SSL_CTX_use_certificate_chain_file(ctx, o->cert))
        return ssl_fail(err, "loading certificate", o->cert);
    if (o->chain && *o->chain) {
        FILE *f = fopen(o->chain, "r");
        if (f == NULL)
            return kerr_set(err, KERR_TLS, "cannot open chain file %s", o->chain);
        X509 *x;
        int n = 0;
        while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
            if (!SSL_CTX_add_extra_chain_cert(ctx, x)) { /* takes ownership on success */
                X509_free(x);
                fclose(f);
                return ssl_fail(err, "adding chain certificate from", o->chain);
            }
            n++;
        }
        fclose(f);
        ERR_clear_error(); /* the loop ends on a "no start line" error */
        if (n == 0)
            return kerr_set(err, KERR_TLS, "chain file %s holds no certificate", o->chain);
    }
    if (!SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM))
        return ssl_fail(err, "loading private key", o->key);
    if (!SSL_CTX_check_private_key(ctx))
        return kerr_set(err, KERR_TLS, "private key %s does not match certificate %s", o->key,
                        o->cert);
    if (o->client_ca && *o->client_ca) {
        if (!SSL_CTX_load_verify_locations(ctx, o->client_ca, NULL))
            return ssl_fail(err, "loading client CA", o->client_ca);
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->client_ca);
        if (names == NULL)
            return ssl_fail(err, "reading client CA names from", o->client_ca);
        SSL_CTX_set_client_CA_list(ctx, names); /* takes ownership */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        SSL_CTX_set_verify_depth(ctx, 4);
    }
    /* Session resumption with client verification needs a context id; set
     * on every context, so that a reload that adds tls_client_ca finds the
     * same one on the connection. */
    static const unsigned char sid[] = "kycd";
    SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
    return 0;
}

int tls_check(const tls_opts *o, kerr *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return ssl_fail(err, "creating TLS context", NULL);
    int rc = tls_configure(ctx, o, err);
    SSL_CTX_free(ctx);
    return rc;
}

/* Reload without a restart. CivetWeb made the listener's SSL_CTX and keeps
 * it; a reload builds a new context from the new files and a
 * callback on CivetWeb's context moves each new connection onto it
 * (SSL_set_SSL_CTX, as SNI switching does), so connections already open
 * keep theirs and the listener never stops. Both contexts are configured
 * by tls_configure, so they differ only in their files. The switch is made
 * in the servername callback, which OpenSSL calls for every handshake
 * (CivetWeb's own one, replaced here, would switch back). */
struct tls_live {
    pthread_mutex_t mu; /* guards current: a reload may free the one it replaces */
    SSL_CTX *current;   /* the latest reload's context; NULL: CivetWeb's own */
    SSL_CTX *listener;  /* CivetWeb's context, where every handshake starts */
    void (*on_handshake)(void *arg, int fd);
    void *on_handshake_arg;
};

/* The servername callback runs for every handshake, with SNI or without
 * (it replaces CivetWeb's, which with kycd's single domain only switches to
 * the context it already uses). */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
    tls_live *l = arg;
    pthread_mutex_lock(&l->mu);
    if (l->current != NULL) {
        SSL_CTX *c = l->current;
        SSL_set_SSL_CTX(ssl, c); /* takes its own reference */
        /* SSL_set_SSL_CTX moves the certificate and the CA store (checked
         * against the new context's store), but not the verify mode, depth
         * and CA names the connection copied from CivetWeb's context when
         * it was made: copy them too, so that tls_client_ca is live whole
         * (added, changed or removed by a reload), never half. */
        SSL_set_verify(ssl, SSL_CTX_get_verify_mode(c), SSL_CTX_get_verify_callback(c));
        SSL_set_verify_depth(ssl, SSL_CTX_get_verify_depth(c));
        STACK_OF(X509_NAME) *names = SSL_CTX_get_client_CA_list(c);
        SSL_set_client_CA_list(ssl, names ? SSL_dup_CA_list(names) : NULL);
    }
    pthread_mutex_unlock(&l->mu);
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    return name && *name ? SSL_TLSEXT_ERR_OK : SSL_TLSEXT_ERR_NOACK;
}

int tls_live_new(tls_live **out, void *ssl_ctx, const tls_opts *o, kerr *err)
{
    int rc = tls_configure(ssl_ctx, o, err);
    if (rc != 0)
        return rc;
    tls_live *l = calloc(1, sizeof *l);
    if (l == NULL)
        return kerr_set(err, KERR_NOMEM, "out of memory");
    pthread_mutex_init(&l->mu, NULL);
    SSL_CTX_set_tlsext_servername_callback((SSL_CTX *)ssl_ctx, on_servername);
    SSL_CTX_set_tlsext_servername_arg((SSL_CTX *)ssl_ctx, l);
    l->listener = ssl_ctx;
    *out = l;
    return 0;
}

/* The info callback has no argument of its own: it finds its tls_live in
 * the listener context's ex_data. Only the listener's context matters:
 * the handshake starts there, before the servername callback switches a
 * connection to a reloaded context. */
static int live_index = -1;
static pthread_once_t live_once = PTHREAD_ONCE_INIT;
static void live_index_new(void)
{
    live_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static void on_info(const SSL *ssl, int where, int ret)
{
    if (!(where & SSL_CB_HANDSHAKE_START))
        return;
    tls_live *l = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), live_index);
    if (l != NULL && l->on_handshake != NULL)
        l->on_handshake(l->on_handshake_arg, SSL_get_fd(ssl));
}

int tls_live_on_handshake(tls_live *l, void (*fn)(void *arg, int fd), void *arg)
{
    pthread_once(&live_once, live_index_new);
    if (live_index < 0 || !SSL_CTX_set_ex_data(l->listener, live_index, l))
        return -1;
    l->on_handshake = fn;
    l->on_handshake_arg = arg;
    /* Replaces CivetWeb's own info callback, which does nothing. */
    SSL_CTX_set_info_callback(l->listener, on_info);
    /* A connection the watchdog cuts is shut down for reading: OpenSSL 3
     * takes that end of input without close_notify as a fatal error and
     * then refuses to write the 408. Taken as a close instead, the answer
     * goes out; a request cut short is still told by its HTTP framing
     * (Content-Length, chunked), as it always was. */
    SSL_CTX_set_options(l->listener, SSL_OP_IGNORE_UNEXPECTED_EOF);
    return 0;
}

int tls_live_reload(tls_live *l, const tls_opts *o, kerr *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return ssl_fail(err, "creating TLS context", NULL);
    int rc = tls_configure(ctx, o, err);
    if (rc != 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    pthread_mutex_lock(&l->mu);
    SSL_CTX *old = l->current;
    l->current = ctx;
    pthread_mutex_unlock(&l->mu);
    SSL_CTX_free(old); /* connections that use it hold their own reference */
    return 0;
}

void tls_live_free(tls_live *l)
{
    if (l == NULL)
        return;
    SSL_CTX_free(l->current);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

const char *tls_library_version(void)
{
    return OpenSSL_version(OPENSSL_VERSION);
}

int tls_cert_expiry(const char *cert_file, int64_t *not_after_s, kerr *err)
{
    FILE *f = fopen(cert_file, "r");
    if (f == NULL)
        return kerr_set(err, KERR_IO, "cannot open %s", cert_file);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL)
        return kerr_set(err, KERR_TLS, "%s holds no PEM certificate", cert_file);
    struct tm tm;
    int ok = ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm);
    X509_free(x);
    if (!ok)
        return kerr_set(err, KERR_TLS, "%s: unreadable notAfter", cert_file);
    *not_after_s = (int64_t)timegm(&tm);
    return 0;
}
