/* Structured logging: one line per event, in logfmt, to stderr.
 *
 *   klog(KLOG_INFO, "listening", KLOG_INT("port", 8443), KLOG_STR("dir", path));
 *
 *   klog_line l;                    // when the pairs depend on the event
 *   klog_begin(&l, KLOG_INFO, "request");
 *   klog_str(&l, "rid", rid);
 *   klog_int(&l, "status", 200);
 *   klog_end(&l);
 *
 * Every line kycd writes is valid logfmt, whatever it carries: there is no
 * printf form, so every string (the message too) goes through one escaper,
 * here in log.c, and no caller can forget it. A line is
 *
 *   ts=2024-05-01T12:00:00.123Z level=info msg=listening port=8443 ...
 *
 * - keys are [a-z_]+; any other byte of a key is written as '_';
 * - a value is bare when it is non-empty and only letters, digits and
 *   - . _ : / @ + , % ~ ; otherwise it is quoted, with the escapes \" \\ \n
 *   \r \t, and \xHH (two lower-case hex digits, one raw byte) for any other
 *   control byte, DEL, a byte that is not part of valid UTF-8, and the bytes
 *   of the C1 controls U+0080..U+009F and of U+2028/U+2029 (line breaks to
 *   some viewers). Valid UTF-8 is kept as it is, inside quotes. NULL is "-";
 * - a line is at most sizeof(klog_line.buf) bytes. What does not fit is cut
 *   at a pair boundary or inside a quoted value, never inside an escape or a
 *   UTF-8 sequence, the quote is closed, later pairs are dropped and the
 *   line ends with truncated=1.
 *
 * When the log fd is the journal (systemd sets JOURNAL_STREAM to the
 * "device:inode" of the stream it connected to stderr, systemd.exec(5)),
 * each line starts with its syslog priority, <3> error, <4> warn, <6> info,
 * <7> debug, which journald takes off and stores as the entry's priority
 * (so `journalctl -p err` works); otherwise lines start with "ts=".
 *
 * Never log a secret or a request body. Thread-safe: each line is written
 * with one write(2). */
#ifndef KYCD_BASE_LOG_H
#define KYCD_BASE_LOG_H

#include <stddef.h>

enum klog_level { KLOG_DEBUG = 0, KLOG_INFO = 1, KLOG_WARN = 2, KLOG_ERROR = 3 };

typedef struct klog_line {
    char buf[2048];
    size_t len;
    int level;
    int skip;      /* below the threshold: appends are no-ops */
    int truncated; /* something did not fit: later appends are no-ops */
} klog_line;

void klog_set_level(int level);
/* Parse "debug", "info", "warn", "error"; -1 when unknown. */
int klog_level_parse(const char *s);
/* Send lines to fd instead of stderr (tests); whether it is the journal is
 * found out again. */
void klog_set_fd(int fd);
/* 1 when journal_stream (JOURNAL_STREAM's value: "DEV:INO", decimal) names
 * the device and inode of fd; 0 otherwise (NULL, malformed, no match). */
int klog_journal_match(const char *journal_stream, int fd);
/* Force the priority prefix on (1) or off (0), or find out from
 * JOURNAL_STREAM and the log fd at the next line (-1, the default). */
void klog_set_journal(int on);

void klog_begin(klog_line *l, int level, const char *msg);
void klog_str(klog_line *l, const char *key, const char *val);
void klog_int(klog_line *l, const char *key, long long val);
void klog_ms(klog_line *l, const char *key, double ms);
void klog_end(klog_line *l);

/* One pair of the one-shot form. Built by KLOG_STR/KLOG_INT/KLOG_MS, whose
 * designated initializers make the compiler check each value's type. */
enum klog_kv_type { KLOG_KV_END = 0, KLOG_KV_STR, KLOG_KV_INT, KLOG_KV_MS };
typedef struct klog_kv {
    enum klog_kv_type type;
    const char *key;
    const char *s;
    long long i;
    double ms;
} klog_kv;

#define KLOG_STR(k, v) ((klog_kv){.type = KLOG_KV_STR, .key = (k), .s = (v)})
#define KLOG_INT(k, v) ((klog_kv){.type = KLOG_KV_INT, .key = (k), .i = (v)})
#define KLOG_MS(k, v) ((klog_kv){.type = KLOG_KV_MS, .key = (k), .ms = (v)})

/* One line: a message and one or more KLOG_* pairs (a line without pairs is
 * klog_begin + klog_end). The pairs are written as klog_str/klog_int/klog_ms
 * would write them. */
#define klog(level, msg, ...)                                                                      \
    klog_pairs((level), (msg), (const klog_kv[]){__VA_ARGS__, {.type = KLOG_KV_END}})
/* The function behind klog(): pairs up to the first KLOG_KV_END. */
void klog_pairs(int level, const char *msg, const klog_kv *kv);

#endif
