/* Webhook token verification, SHA-256 hex and random ids.
 *
 * The only file in the project that includes OpenSSL's crypto headers.
 * Tokens are kept as SHA-256 digests only; a presented token is hashed once
 * and compared against every configured digest with CRYPTO_memcmp, without
 * an early exit, so the time taken does not depend on which token matched,
 * on how much of it matched, or on its length.
 * Never: copy a token into a message, a log line or long-lived memory. */
#include "core/token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>
#include <strings.h>

#include "base/strlist.h"

static const char hexdig[] = "0123456789abcdef";

static int sha256(const void *data, size_t len, unsigned char md[32])
{
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return KERR_INVALID;
    return 0;
}

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdig[in[i] >> 4];
        out[2 * i + 1] = hexdig[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

/* The longest token that can still be presented as "Bearer <token>" within
 * TOKEN_MAX_LEN; a longer one could only ever match bare, so refuse it. */
#define TOKEN_CONF_MAX_LEN (TOKEN_MAX_LEN - (sizeof "Bearer " - 1))

int token_set_parse(token_set *out, const char *list, kerr *err)
{
    if (list == NULL)
        return kerr_set(err, KERR_CONFIG, "no webhook token configured");
    token_set set;
    memset(&set, 0, sizeof set);
    int rc = 0;
    int item = 0; /* 1-based number of the non-empty item, for messages */
    strlist it;
    /* CR is trimmed too, so a token file with CRLF line endings works. */
    strlist_init(&it, list, ",\n", " \t\r");
    const char *s;
    size_t len;
    while (strlist_next(&it, &s, &len)) {
        const char *e = s + len;
        item++;
        if (item > TOKEN_MAX) {
            rc = kerr_set(err, KERR_CONFIG, "more than %d webhook tokens", TOKEN_MAX);
            goto out;
        }
        for (const char *q = s; q < e; q++) {
            unsigned char c = (unsigned char)*q;
            if (c <= ' ' || c == 0x7f) {
                rc = kerr_set(err, KERR_CONFIG,
                              "webhook token %d contains a space or control character", item);
                goto out;
            }
        }
        if (len < TOKEN_MIN_LEN) {
            rc = kerr_set(err, KERR_CONFIG, "webhook token %d is shorter than %d characters", item,
                          TOKEN_MIN_LEN);
            goto out;
        }
        if (len > TOKEN_CONF_MAX_LEN) {
            rc = kerr_set(err, KERR_CONFIG, "webhook token %d is longer than %d characters", item,
                          (int)TOKEN_CONF_MAX_LEN);
            goto out;
        }
        if (sha256(s, len, set.digest[set.count]) != 0) {
            rc = kerr_set(err, KERR_CONFIG, "sha-256 is not available from openssl");
            goto out;
        }
        set.count++;
    }
    if (set.count == 0) {
        rc = kerr_set(err, KERR_CONFIG, "no webhook token configured");
        goto out;
    }
    *out = set;
out:
    OPENSSL_cleanse(&set, sizeof set);
    return rc;
}

int token_check(const token_set *set, const char *authorization)
{
    if (set == NULL || authorization == NULL || *authorization == '\0')
        return 0;
    /* Length checks below only reveal the header's own length, which the
     * client already knows. */
    size_t len = strnlen(authorization, TOKEN_MAX_LEN + 1);
    if (len > TOKEN_MAX_LEN)
        return 0;
    const char *s = authorization;
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    /* RFC 9110: credentials = auth-scheme [ 1*SP token68 ]. A bare token
     * cannot contain a space, so "bearer " is never part of a real token. */
    if (len > 7 && strncasecmp(s, "bearer ", 7) == 0) {
        s += 7;
        len -= 7;
        while (len > 0 && *s == ' ') {
            s++;
            len--;
        }
    }
    if (len == 0)
        return 0;
    unsigned char md[32];
    if (sha256(s, len, md) != 0)
        return 0;
    int match = 0;
    for (int i = 0; i < set->count && i < TOKEN_MAX; i++)
        match |= (CRYPTO_memcmp(md, set->digest[i], sizeof md) == 0);
    OPENSSL_cleanse(md, sizeof md);
    return match;
}

void token_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    /* Cannot fail once token_set_parse has hashed at start; should it ever,
     * an empty string is returned rather than a digest of nothing. */
    if (sha256(data, len, md) != 0) {
        out[0] = '\0';
        return;
    }
    to_hex(md, sizeof md, out);
}

int token_random_hex(char *out, size_t nbytes)
{
    unsigned char raw[32];
    if (out == NULL || nbytes > sizeof raw)
        return KERR_INVALID;
    if (nbytes > 0 && RAND_bytes(raw, (int)nbytes) != 1)
        return KERR_IO;
    to_hex(raw, nbytes, out);
    OPENSSL_cleanse(raw, sizeof raw);
    return 0;
}

int token_pseudonym(const char *key, const char *id, char out[TOKEN_PSEUDONYM_LEN + 1], kerr *err)
{
    static const char domain[] = "kycd-erase-v1:";
    if (key == NULL || strlen(key) < TOKEN_ERASE_KEY_MIN)
        return kerr_set(err, KERR_CONFIG, "erase_key must be at least %d characters",
                        TOKEN_ERASE_KEY_MIN);
    size_t idlen = strlen(id), dlen = sizeof domain - 1;
    unsigned char msg[sizeof domain - 1 + 256], md[EVP_MAX_MD_SIZE];
    if (idlen > sizeof msg - dlen)
        return kerr_set(err, KERR_INVALID, "externalUserId longer than 256 bytes");
    memcpy(msg, domain, dlen);
    memcpy(msg + dlen, id, idlen);
    unsigned int mdlen = 0;
    int ok = HMAC(EVP_sha256(), key, (int)strlen(key), msg, dlen + idlen, md, &mdlen) != NULL &&
             mdlen == 32;
    OPENSSL_cleanse(msg, sizeof msg);
    if (!ok)
        return kerr_set(err, KERR_INVALID, "HMAC-SHA-256 failed");
    memcpy(out, "erased-", 7);
    to_hex(md, 16, out + 7);
    OPENSSL_cleanse(md, sizeof md);
    return 0;
}
