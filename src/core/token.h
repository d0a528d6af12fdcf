/* Webhook token verification, hashing and random ids (the only user of
 * OpenSSL's crypto API). Pure: no I/O beyond the CSPRNG. */
#ifndef KYCD_CORE_TOKEN_H
#define KYCD_CORE_TOKEN_H

#include <stddef.h>

#include "base/err.h"

#define TOKEN_MAX 16     /* tokens configured at once (rotation) */
#define TOKEN_MIN_LEN 16 /* shorter tokens are refused at start */
#define TOKEN_MAX_LEN 4096

/* Configured webhook tokens, kept only as SHA-256 digests. */
typedef struct token_set {
    int count;
    unsigned char digest[TOKEN_MAX][32];
} token_set;

/* Parse a comma- or newline-separated list (spaces around items ignored,
 * empty items skipped). Refuses an empty list, more than TOKEN_MAX tokens,
 * tokens shorter than TOKEN_MIN_LEN or containing spaces or control bytes.
 * Error messages never include a token. */
int token_set_parse(token_set *out, const char *list, kerr *err) KYCD_MUST_CHECK;

/* 1 when the Authorization header value matches a configured token, either
 * bare or as "Bearer <token>" (scheme case-insensitive; trailing spaces and
 * tabs ignored as optional whitespace). The comparison runs over every
 * configured token in constant time. NULL or empty header: 0. */
int token_check(const token_set *set, const char *authorization);

/* SHA-256 of data as 64 lower-case hex digits plus NUL. */
void token_sha256_hex(const void *data, size_t len, char out[65]);

/* `nbytes` random bytes (nbytes <= 32) as hex into out (2*nbytes+1). */
int token_random_hex(char *out, size_t nbytes) KYCD_MUST_CHECK;

/* The pseudonym `kycd erase` gives an externalUserId: "erased-" and the
 * first 16 bytes of HMAC-SHA-256(key, "kycd-erase-v1:" id) as hex, plus
 * NUL. The same key and id always give the same pseudonym; without the
 * key it cannot be reversed (nor recomputed from a guessed id). Refuses a
 * key shorter than TOKEN_ERASE_KEY_MIN (the message never quotes it). */
#define TOKEN_PSEUDONYM_LEN 39
#define TOKEN_ERASE_KEY_MIN 32
int token_pseudonym(const char *key, const char *id, char out[TOKEN_PSEUDONYM_LEN + 1],
                    kerr *err) KYCD_MUST_CHECK;

#endif
