/* Error values and messages. libc only. */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int kerr_set(kerr *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    /* Formatted apart, then copied: a caller may pass err->msg itself as an
     * argument ("... (%s)", err->msg), and vsnprintf into the buffer it
     * reads from is undefined (glibc writes the prefix over the argument
     * before reading it: the message came out garbled). */
    char msg[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    err->code = code;
    memcpy(err->msg, msg, sizeof msg);
    return code;
}

int kerr_wrap(kerr *err, const char *fmt, ...)
{
    if (err == NULL)
        return KERR_INVALID;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    /* A long message is cut at sizeof msg; the result is checked only so
     * that -Wformat-truncation (an error under KYCD_WERROR) accepts that. */
    if (snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old) < 0)
        err->msg[0] = '\0';
    return err->code;
}

void kerr_clear(kerr *err)
{
    if (err == NULL)
        return;
    err->code = 0;
    err->msg[0] = '\0';
}

const char *kerr_name(int code)
{
    switch (code) {
    case KERR_OK:
        return "ok";
    case KERR_INVALID:
        return "invalid";
    case KERR_NOMEM:
        return "nomem";
    case KERR_IO:
        return "io";
    case KERR_DB:
        return "db";
    case KERR_CONFIG:
        return "config";
    case KERR_NOTFOUND:
        return "notfound";
    case KERR_TIMEOUT:
        return "timeout";
    case KERR_TLS:
        return "tls";
    case KERR_STATE:
        return "state";
    case KERR_TOOBIG:
        return "toobig";
    }
    return "unknown";
}
