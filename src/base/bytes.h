/* Fixed-width byte encodings used by the on-disk formats (spool segments,
 * spool records): little-endian integers and lower-case hex numbers in
 * file names. Header-only (static inline), libc only; must never allocate
 * or fail silently: a parser says whether the text was exactly right. */
#ifndef KYCD_BASE_BYTES_H
#define KYCD_BASE_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline uint32_t bytes_get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t bytes_get_le64(const unsigned char *p)
{
    return (uint64_t)bytes_get_le32(p) | (uint64_t)bytes_get_le32(p + 4) << 32;
}

static inline void bytes_put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static inline void bytes_put_le64(unsigned char *p, uint64_t v)
{
    bytes_put_le32(p, (uint32_t)v);
    bytes_put_le32(p + 4, (uint32_t)(v >> 32));
}

/* Exactly n (at most 16) lower-case hex digits at s into *out. Upper case
 * is refused: the names we write are lower case, so anything else is not
 * ours. false (and *out untouched) on any other character. */
static inline bool bytes_hex_parse(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 16)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9')
            v = v << 4 | (uint64_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v << 4 | (uint64_t)(c - 'a' + 10);
        else
            return false;
    }
    *out = v;
    return true;
}

#endif
