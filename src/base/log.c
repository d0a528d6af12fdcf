/* Structured logging in logfmt to one fd: the only place values are escaped
 * (see log.h for the format). libc only. Must never write a line that a
 * logfmt parser cannot read back, whatever bytes a caller passes. */
#include "base/log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Atomic: a reload (SIGHUP) changes it while other threads log. */
static atomic_int g_level = KLOG_INFO;
static int g_fd = 2;
/* -1: not known yet (found out at the first line); 0 or 1: the priority
 * prefix is off or on. Two threads finding out at once find the same. */
static atomic_int g_journal = -1;

static const char *level_name(int level)
{
    switch (level) {
    case KLOG_DEBUG:
        return "debug";
    case KLOG_INFO:
        return "info";
    case KLOG_WARN:
        return "warn";
    default:
        return "error";
    }
}

void klog_set_level(int level)
{
    atomic_store_explicit(&g_level, level, memory_order_relaxed);
}
void klog_set_fd(int fd)
{
    g_fd = fd;
    atomic_store(&g_journal, -1);
}

void klog_set_journal(int on)
{
    atomic_store(&g_journal, on < 0 ? -1 : on != 0);
}

int klog_journal_match(const char *journal_stream, int fd)
{
    if (journal_stream == NULL)
        return 0;
    char *end;
    const char *p = journal_stream;
    if (*p < '0' || *p > '9')
        return 0;
    unsigned long long dev = strtoull(p, &end, 10);
    if (*end != ':' || end[1] < '0' || end[1] > '9')
        return 0;
    unsigned long long ino = strtoull(end + 1, &end, 10);
    if (*end != '\0')
        return 0;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* The syslog priority journald reads from a line's "<N>" prefix. */
static int journal_on(void)
{
    int on = atomic_load(&g_journal);
    if (on < 0) {
        on = klog_journal_match(getenv("JOURNAL_STREAM"), g_fd);
        atomic_store(&g_journal, on);
    }
    return on;
}

static const char *priority_prefix(int level)
{
    switch (level) {
    case KLOG_DEBUG:
        return "<7>";
    case KLOG_INFO:
        return "<6>";
    case KLOG_WARN:
        return "<4>";
    default:
        return "<3>";
    }
}

int klog_level_parse(const char *s)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* Every line can still say it was cut: " truncated=1\n" is always left free. */
#define TRUNC_MARK " truncated=1"
#define RESERVE (sizeof TRUNC_MARK - 1 + 1)

static size_t room(const klog_line *l)
{
    return sizeof l->buf - RESERVE - l->len;
}

/* Callers check room() first. */
static void put(klog_line *l, const char *s, size_t n)
{
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static int bare_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-._:/@+,%~", c) != NULL);
}

/* Length of the valid UTF-8 sequence of 2..4 bytes at p, 0 if there is
 * none (overlong forms, surrogates and code points past U+10FFFF are
 * invalid). p is NUL-terminated, and NUL is no continuation byte, so this
 * never reads past the end. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned char c = p[0];
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return n;
}

/* The escaped form of the next character of p, into out (at most 16 bytes);
 * returns how many input bytes it took. A character is never split, so a
 * line cut between two of them is still valid. */
static size_t escape_next(const unsigned char *p, char *out, size_t *outn)
{
    unsigned char c = *p;
    const char *simple = NULL;
    switch (c) {
    case '"':
        simple = "\\\"";
        break;
    case '\\':
        simple = "\\\\";
        break;
    case '\n':
        simple = "\\n";
        break;
    case '\r':
        simple = "\\r";
        break;
    case '\t':
        simple = "\\t";
        break;
    default:
        break;
    }
    if (simple) {
        *outn = strlen(simple);
        memcpy(out, simple, *outn);
        return 1;
    }
    if (c >= ' ' && c < 0x7f) {
        out[0] = (char)c;
        *outn = 1;
        return 1;
    }
    size_t n = c >= 0x80 ? utf8_len(p) : 0;
    /* C1 controls (C2 80..C2 9F) and U+2028/U+2029 (E2 80 A8/A9) are valid
     * UTF-8 that some terminals and viewers take as control or a new line:
     * written as their bytes, like any other control. */
    int hex = n == 0 || (n == 2 && c == 0xc2 && p[1] <= 0x9f) ||
              (n == 3 && c == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9));
    if (n == 0)
        n = 1;
    if (!hex) {
        memcpy(out, p, n);
        *outn = n;
        return n;
    }
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[4 * i] = '\\';
        out[4 * i + 1] = 'x';
        out[4 * i + 2] = digits[p[i] >> 4];
        out[4 * i + 3] = digits[p[i] & 0xf];
    }
    *outn = 4 * n;
    return n;
}

/* Callers leave at least 2 bytes of room, for "" or "-". */
static void put_value(klog_line *l, const char *v)
{
    if (v == NULL) {
        put(l, "-", 1);
        return;
    }
    size_t n = 0;
    while (v[n] != '\0' && bare_ok((unsigned char)v[n]))
        n++;
    if (n > 0 && v[n] == '\0' && n <= room(l)) {
        put(l, v, n);
        return;
    }
    put(l, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)v; *p;) {
        char esc[16];
        size_t en;
        size_t used = escape_next(p, esc, &en);
        if (en + 1 > room(l)) { /* + 1: the closing quote */
            l->truncated = 1;
            break;
        }
        put(l, esc, en);
        p += used;
    }
    put(l, "\"", 1);
}

void klog_begin(klog_line *l, int level, const char *msg)
{
    l->len = 0;
    l->level = level;
    l->skip = level < atomic_load_explicit(&g_level, memory_order_relaxed);
    l->truncated = 0;
    if (l->skip)
        return;
    if (journal_on())
        put(l, priority_prefix(level), 3);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[64];
    snprintf(ts, sizeof ts,
             "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s msg=", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000),
             level_name(level));
    put(l, ts, strlen(ts)); /* always fits: the buffer is far larger */
    put_value(l, msg);
}

void klog_str(klog_line *l, const char *key, const char *val)
{
    if (l->skip || l->truncated)
        return;
    size_t klen = strlen(key);
    if (klen == 0)
        klen = 1;                     /* written as "_" */
    if (room(l) < 1 + klen + 1 + 2) { /* " key=" and at least "" */
        l->truncated = 1;
        return;
    }
    put(l, " ", 1);
    /* Keys are constants of ours, but one typo must not break the format. */
    if (*key == '\0')
        put(l, "_", 1);
    for (const char *k = key; *k; k++) {
        char c = (*k >= 'a' && *k <= 'z') ? *k : '_';
        put(l, &c, 1);
    }
    put(l, "=", 1);
    put_value(l, val);
}

void klog_int(klog_line *l, const char *key, long long val)
{
    char s[32];
    snprintf(s, sizeof s, "%lld", val);
    klog_str(l, key, s);
}

void klog_ms(klog_line *l, const char *key, double ms)
{
    char s[32];
    snprintf(s, sizeof s, "%.3f", ms);
    klog_str(l, key, s);
}

void klog_end(klog_line *l)
{
    if (l->skip)
        return;
    if (l->truncated) /* room was kept for it */
        put(l, TRUNC_MARK, sizeof TRUNC_MARK - 1);
    l->buf[l->len++] = '\n';
    /* One write per line: lines from different threads never interleave. */
    ssize_t rc = write(g_fd, l->buf, l->len);
    (void)rc;
}

void klog_pairs(int level, const char *msg, const klog_kv *kv)
{
    klog_line l;
    klog_begin(&l, level, msg);
    for (; kv->type != KLOG_KV_END; kv++) {
        switch (kv->type) {
        case KLOG_KV_STR:
            klog_str(&l, kv->key, kv->s);
            break;
        case KLOG_KV_INT:
            klog_int(&l, kv->key, kv->i);
            break;
        case KLOG_KV_MS:
            klog_ms(&l, kv->key, kv->ms);
            break;
        default:
            break;
        }
    }
    klog_end(&l);
}
