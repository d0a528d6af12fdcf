/* Structured key=value logging to one fd. libc and pthreads only. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int g_level = KLOG_INFO;
static int g_fd = 2;

static const char *level_name(int level)
{
    switch (level) {
    case KLOG_DEBUG: return "debug";
    case KLOG_INFO: return "info";
    case KLOG_WARN: return "warn";
    default: return "error";
    }
}

void klog_set_level(int level) { g_level = level; }
void klog_set_fd(int fd) { g_fd = fd; }

int klog_level_parse(const char *s)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static void put(klog_line *l, const char *s, size_t n)
{
    size_t room = sizeof l->buf - 2 - l->len;  /* keep space for "\n" */
    if (n > room)
        n = room;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void putc_(klog_line *l, char c) { put(l, &c, 1); }

static void put_value(klog_line *l, const char *v)
{
    if (v == NULL) {
        put(l, "-", 1);
        return;
    }
    int quote = (*v == '\0');
    for (const char *p = v; *p && !quote; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f)
            quote = 1;
    }
    if (!quote) {
        put(l, v, strlen(v));
        return;
    }
    putc_(l, '"');
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\') {
            putc_(l, '\\');
            putc_(l, (char)*p);
        } else if (*p < ' ' || *p == 0x7f) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\x%02x", *p);
            put(l, esc, 4);
        } else {
            putc_(l, (char)*p);  /* UTF-8 bytes pass through */
        }
    }
    putc_(l, '"');
}

void klog_begin(klog_line *l, int level, const char *msg)
{
    l->len = 0;
    l->level = level;
    l->skip = level < g_level;
    if (l->skip)
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[64];
    snprintf(ts, sizeof ts, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s msg=",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
             tm.tm_sec, (int)(tv.tv_usec / 1000), level_name(level));
    put(l, ts, strlen(ts));
    put_value(l, msg);
}

void klog_str(klog_line *l, const char *key, const char *val)
{
    if (l->skip)
        return;
    putc_(l, ' ');
    put(l, key, strlen(key));
    putc_(l, '=');
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
    l->buf[l->len++] = '\n';
    /* One write per line: lines from different threads never interleave. */
    ssize_t rc = write(g_fd, l->buf, l->len);
    (void)rc;
}

void klog(int level, const char *msg, const char *fmt, ...)
{
    klog_line l;
    klog_begin(&l, level, msg);
    if (l.skip)
        return;
    if (fmt && *fmt) {
        char tail[1536];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(tail, sizeof tail, fmt, ap);
        va_end(ap);
        if (tail[0] != '\0') {  /* e.g. "%s" of "": no trailing space */
            putc_(&l, ' ');
            put(&l, tail, strlen(tail));
        }
    }
    klog_end(&l);
}
