/* A growable byte buffer, always NUL-terminated after len bytes.
 * Caller storage: kbuf_init/kbuf_deinit. */
#ifndef KYCD_BASE_BUF_H
#define KYCD_BASE_BUF_H

#include <stddef.h>

#include "base/err.h"

typedef struct kbuf {
    char *data; /* NULL until the first append; then NUL-terminated */
    size_t len;
    size_t cap;
} kbuf;

void kbuf_init(kbuf *b);
void kbuf_deinit(kbuf *b);
void kbuf_reset(kbuf *b); /* len = 0, keeps the memory */
int kbuf_reserve(kbuf *b, size_t extra) KYCD_MUST_CHECK;
int kbuf_append(kbuf *b, const void *data, size_t len) KYCD_MUST_CHECK;
int kbuf_appendf(kbuf *b, const char *fmt, ...) KYCD_MUST_CHECK
    __attribute__((format(printf, 2, 3)));
/* s as a JSON string, quotes included (", \\ and control characters
 * escaped; the bytes are not checked as UTF-8). NULL: "". */
int kbuf_append_json(kbuf *b, const char *s) KYCD_MUST_CHECK;
/* The contents as a C string ("" when empty). */
const char *kbuf_str(const kbuf *b);

#endif
