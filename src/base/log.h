/* Structured logging: one line per event, `key=value` pairs, to stderr.
 *
 *   klog_line l;
 *   klog_begin(&l, KLOG_INFO, "request");
 *   klog_str(&l, "rid", rid);       // quoted and escaped when needed
 *   klog_int(&l, "status", 200);
 *   klog_end(&l);
 *
 * Values from the network go through klog_str, which escapes quotes, control
 * bytes and newlines, so no client can forge a log line. Never log a secret
 * or a request body. Thread-safe: each line is written with one write(2). */
#ifndef KYCD_BASE_LOG_H
#define KYCD_BASE_LOG_H

#include <stddef.h>

enum klog_level { KLOG_DEBUG = 0, KLOG_INFO = 1, KLOG_WARN = 2, KLOG_ERROR = 3 };

typedef struct klog_line {
    char buf[2048];
    size_t len;
    int level;
    int skip;  /* below the threshold: appends are no-ops */
} klog_line;

void klog_set_level(int level);
/* Parse "debug", "info", "warn", "error"; -1 when unknown. */
int klog_level_parse(const char *s);
/* Send lines to fd instead of stderr (tests). */
void klog_set_fd(int fd);

void klog_begin(klog_line *l, int level, const char *msg);
void klog_str(klog_line *l, const char *key, const char *val);
void klog_int(klog_line *l, const char *key, long long val);
void klog_ms(klog_line *l, const char *key, double ms);
void klog_end(klog_line *l);

/* One-shot line with only a message and trusted printf-formatted pairs
 * (e.g. "port=%d"). Do not pass network input through fmt. */
void klog(int level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
