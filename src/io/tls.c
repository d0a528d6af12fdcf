/* Server TLS context setup with OpenSSL 3. Must never log or return key
 * material; errors carry file names and OpenSSL's reason strings only. */
#include "io/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>

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
        /* Session resumption with client verification needs a context id. */
        static const unsigned char sid[] = "kycd";
        SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
    }
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

const char *tls_library_version(void)
{
    return OpenSSL_version(OPENSSL_VERSION);
}
