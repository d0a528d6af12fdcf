/* Errors: a function that can fail returns 0 or a negative KERR_* code and
 * fills the caller's kerr (last argument, may be NULL) with a lower-case
 * message. On failure, outputs are left untouched.
 * Never put a secret or a request body into a message. */
#ifndef KYCD_BASE_ERR_H
#define KYCD_BASE_ERR_H

#include <stddef.h>

enum {
    KERR_OK = 0,
    KERR_INVALID = -1, /* bad input: config value, payload, argument */
    KERR_NOMEM = -2,
    KERR_IO = -3,     /* file or socket */
    KERR_DB = -4,     /* database unreachable or failed */
    KERR_CONFIG = -5, /* configuration refused */
    KERR_NOTFOUND = -6,
    KERR_TIMEOUT = -7,
    KERR_TLS = -8,
    KERR_STATE = -9, /* wrong state: e.g. schema not migrated */
    KERR_TOOBIG = -10,
};

typedef struct kerr {
    int code;
    char msg[512];
} kerr;

/* Set code and message (printf-style); returns code so that callers can
 * write `return kerr_set(err, KERR_INVALID, "...")`. err may be NULL. */
int kerr_set(kerr *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefix an existing message with context ("loading config: ..."). */
int kerr_wrap(kerr *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void kerr_clear(kerr *err);

/* Short name of a code, e.g. "invalid". */
const char *kerr_name(int code);

#define KYCD_MUST_CHECK __attribute__((warn_unused_result))

#endif
