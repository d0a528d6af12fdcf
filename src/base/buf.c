/* Growable byte buffer. libc only. */
#include "base/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void kbuf_init(kbuf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void kbuf_deinit(kbuf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    kbuf_init(b);
}

void kbuf_reset(kbuf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

int kbuf_reserve(kbuf *b, size_t extra)
{
    if (extra > ((size_t)-1) / 2 - b->len)
        return KERR_NOMEM;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return KERR_NOMEM;
    if (b->data == NULL)
        p[0] = '\0';
    b->data = p;
    b->cap = cap;
    return 0;
}

int kbuf_append(kbuf *b, const void *data, size_t len)
{
    int rc = kbuf_reserve(b, len);
    if (rc != 0)
        return rc;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int kbuf_appendf(kbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return KERR_INVALID;
    int rc = kbuf_reserve(b, (size_t)n);
    if (rc != 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

const char *kbuf_str(const kbuf *b)
{
    return b->data ? b->data : "";
}

int kbuf_append_json(kbuf *b, const char *s)
{
    int rc = kbuf_append(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); rc == 0 && *p; p++) {
        if (*p == '"' || *p == '\\')
            rc = kbuf_appendf(b, "\\%c", *p);
        else if (*p < 0x20)
            rc = kbuf_appendf(b, "\\u%04x", *p);
        else
            rc = kbuf_append(b, p, 1);
    }
    return rc ? rc : kbuf_append(b, "\"", 1);
}
