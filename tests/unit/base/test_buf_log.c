/* Unit tests for base/buf (growth, NUL termination) and base/log (level
 * filter, quoting and escaping of values: one event is always one line, and
 * every line, however hostile its values or long, reads back through a
 * strict logfmt parser). */
#include "testlib.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"

/* ---- kbuf */

static void test_buf_empty(void **state)
{
    kbuf b;
    kbuf_init(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_string_equal(kbuf_str(&b), "");
    /* appending nothing still gives a NUL-terminated buffer */
    assert_int_equal(kbuf_append(&b, "", 0), 0);
    assert_non_null(b.data);
    assert_int_equal(b.len, 0);
    assert_string_equal(kbuf_str(&b), "");
    kbuf_deinit(&b);
    assert_null(b.data);
    kbuf_deinit(&b);   /* twice is fine */
    kbuf_deinit(NULL); /* and NULL */

    kbuf_init(&b);
    assert_int_equal(kbuf_appendf(&b, "%s", ""), 0);
    assert_non_null(b.data);
    assert_string_equal(kbuf_str(&b), "");
    kbuf_deinit(&b);
}

static void test_buf_append_growth(void **state)
{
    kbuf b;
    kbuf_init(&b);
    char want[10000];
    for (size_t i = 0; i < sizeof want; i++) {
        char c = (char)('a' + i % 26);
        want[i] = c;
        assert_int_equal(kbuf_append(&b, &c, 1), 0);
        assert_int_equal(b.len, i + 1);
        assert_true(b.cap > b.len);
        assert_int_equal(b.data[b.len], '\0');
    }
    assert_memory_equal(b.data, want, sizeof want);
    assert_int_equal(strlen(kbuf_str(&b)), sizeof want);

    /* one large append across several doublings */
    char big[100000];
    memset(big, 'Z', sizeof big);
    assert_int_equal(kbuf_append(&b, big, sizeof big), 0);
    assert_int_equal(b.len, sizeof want + sizeof big);
    assert_int_equal(b.data[b.len], '\0');
    assert_memory_equal(b.data, want, sizeof want);
    assert_memory_equal(b.data + sizeof want, big, sizeof big);
    kbuf_deinit(&b);
}

static void test_buf_binary(void **state)
{
    kbuf b;
    kbuf_init(&b);
    assert_int_equal(kbuf_append(&b, "a\0b", 3), 0);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "a\0b\0", 4);
    kbuf_deinit(&b);
}

static void test_buf_appendf(void **state)
{
    kbuf b;
    kbuf_init(&b);
    assert_int_equal(kbuf_appendf(&b, "x=%d", 42), 0);
    assert_int_equal(kbuf_appendf(&b, " y=%s", "hello"), 0);
    assert_string_equal(kbuf_str(&b), "x=42 y=hello");
    assert_int_equal(b.len, strlen("x=42 y=hello"));

    /* growth inside appendf: far past the initial capacity */
    char long_s[5000];
    memset(long_s, 'q', sizeof long_s - 1);
    long_s[sizeof long_s - 1] = '\0';
    assert_int_equal(kbuf_appendf(&b, "[%s]", long_s), 0);
    assert_int_equal(b.len, strlen("x=42 y=hello") + 2 + strlen(long_s));
    assert_int_equal(b.data[b.len], '\0');
    assert_int_equal(b.data[b.len - 1], ']');
    assert_int_equal(strlen(kbuf_str(&b)), b.len);

    /* many small appendf calls */
    kbuf_reset(&b);
    for (int i = 0; i < 2000; i++)
        assert_int_equal(kbuf_appendf(&b, "%d,", i % 10), 0);
    assert_int_equal(b.len, 4000);
    assert_int_equal(strncmp(b.data, "0,1,2,", 6), 0);
    assert_int_equal(strcmp(b.data + 3994, "7,8,9,"), 0);
    kbuf_deinit(&b);
}

static void test_buf_reset(void **state)
{
    kbuf b;
    kbuf_init(&b);
    kbuf_reset(&b); /* before any append */
    assert_string_equal(kbuf_str(&b), "");
    assert_int_equal(kbuf_append(&b, "hello", 5), 0);
    char *mem = b.data;
    size_t cap = b.cap;
    kbuf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(kbuf_str(&b), "");
    assert_ptr_equal(b.data, mem);
    assert_int_equal(b.cap, cap);
    assert_int_equal(kbuf_append(&b, "hi", 2), 0);
    assert_string_equal(kbuf_str(&b), "hi");
    kbuf_deinit(&b);
}

static void test_buf_reserve_too_big(void **state)
{
    kbuf b;
    kbuf_init(&b);
    assert_int_equal(kbuf_append(&b, "keep", 4), 0);
    assert_int_equal(kbuf_reserve(&b, SIZE_MAX), KERR_NOMEM);
    assert_int_equal(kbuf_reserve(&b, SIZE_MAX / 2), KERR_NOMEM);
    assert_string_equal(kbuf_str(&b), "keep");
    assert_int_equal(b.len, 4);
    kbuf_deinit(&b);
}

/* ---- klog */

static int log_pipe[2] = {-1, -1};

static int log_setup(void **state)
{
    if (pipe(log_pipe) != 0)
        return -1;
    /* Reads must not block when a line was (rightly) dropped. */
    if (fcntl(log_pipe[0], F_SETFL, O_NONBLOCK) != 0)
        return -1;
    klog_set_fd(log_pipe[1]);
    klog_set_level(KLOG_DEBUG);
    return 0;
}

static int log_teardown(void **state)
{
    klog_set_fd(2);
    klog_set_level(KLOG_INFO);
    close(log_pipe[0]);
    close(log_pipe[1]);
    log_pipe[0] = log_pipe[1] = -1;
    return 0;
}

/* Everything written to the log since the last call (static storage). */
static const char *drain(void)
{
    static char out[16384];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(log_pipe[0], out + len, sizeof out - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    return out;
}

static size_t count_char(const char *s, char c)
{
    size_t n = 0;
    for (; *s; s++)
        n += (*s == c);
    return n;
}

/* One line ending in "\n" that contains `want`. */
static void assert_one_line_with(const char *out, const char *want)
{
    if (count_char(out, '\n') != 1 || out[strlen(out) - 1] != '\n')
        fail_msg("not exactly one line: [%s]", out);
    if (strstr(out, want) == NULL)
        fail_msg("line [%s] lacks [%s]", out, want);
}

static void log_one(int level, const char *key, const char *val)
{
    klog_line l;
    klog_begin(&l, level, "event");
    klog_str(&l, key, val);
    klog_end(&l);
}

/* ---- a strict logfmt reader, independent of log.c: what a log pipeline
 * would do with kycd's lines. A line is key=value( key=value)*\n with keys
 * [a-z_]+ and values either bare (printable ASCII but space " = \) or
 * quoted with the escapes \" \\ \n \r \t \xHH; no raw control byte and no
 * invalid UTF-8 anywhere. Values are decoded back to the original bytes. */

#define MAXPAIRS 1024 /* a 2048-byte line has fewer than 700 */

typedef struct pair {
    char key[64];
    char val[2100]; /* a decoded value is never longer than its line */
    size_t len;
} pair;

typedef struct parsed {
    pair p[MAXPAIRS];
    int n;
} parsed;

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Length of a valid UTF-8 sequence (1..4) at s, 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t left)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    /* C1 controls and U+2028/U+2029 must have been escaped */
    if ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029)
        return 0;
    return n;
}

/* Parse exactly one line (the whole of `out`); fails the test with the
 * reason and the line when it is not valid. */
static void parse_line(const char *out, parsed *r)
{
    const unsigned char *s = (const unsigned char *)out;
    size_t len = strlen(out);
    size_t i = 0;
    r->n = 0;
    if (len == 0 || s[len - 1] != '\n')
        fail_msg("no final newline: [%s]", out);
    len--; /* the newline */
    for (size_t j = 0; j < len; j++)
        if (s[j] < 0x20 || s[j] == 0x7f)
            fail_msg("raw control byte 0x%02x at %zu: [%s]", s[j], j, out);
    while (i < len) {
        if (r->n > 0) {
            if (s[i] != ' ')
                fail_msg("no space before pair %d at %zu: [%s]", r->n, i, out);
            i++;
        }
        if (r->n == MAXPAIRS)
            fail_msg("too many pairs: [%s]", out);
        pair *p = &r->p[r->n++];
        size_t k = 0;
        while (i < len && ((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_')) {
            if (k + 1 >= sizeof p->key)
                fail_msg("key too long at %zu: [%s]", i, out);
            p->key[k++] = (char)s[i++];
        }
        p->key[k] = '\0';
        if (k == 0 || i >= len || s[i] != '=')
            fail_msg("bad key at %zu: [%s]", i, out);
        i++;
        p->len = 0;
        if (i < len && s[i] == '"') {
            i++;
            for (;;) {
                if (i >= len)
                    fail_msg("unterminated quoted value for %s: [%s]", p->key, out);
                if (p->len + 4 >= sizeof p->val)
                    fail_msg("value too long for %s", p->key);
                unsigned char c = s[i];
                if (c == '"') {
                    i++;
                    break;
                }
                if (c == '\\') {
                    char e = i + 1 < len ? (char)s[i + 1] : '\0';
                    char d = 0;
                    switch (e) {
                    case '"':
                        d = '"';
                        break;
                    case '\\':
                        d = '\\';
                        break;
                    case 'n':
                        d = '\n';
                        break;
                    case 'r':
                        d = '\r';
                        break;
                    case 't':
                        d = '\t';
                        break;
                    case 'x': {
                        int h = i + 3 < len ? hexval((char)s[i + 2]) : -1;
                        int l = i + 3 < len ? hexval((char)s[i + 3]) : -1;
                        if (h < 0 || l < 0)
                            fail_msg("bad \\x escape at %zu: [%s]", i, out);
                        p->val[p->len++] = (char)(h << 4 | l);
                        i += 4;
                        continue;
                    }
                    default:
                        fail_msg("unknown escape \\%c at %zu: [%s]", e, i, out);
                    }
                    p->val[p->len++] = d;
                    i += 2;
                    continue;
                }
                size_t n = utf8_seq(s + i, len - i);
                if (n == 0)
                    fail_msg("invalid UTF-8 or an unescaped control at %zu: [%s]", i, out);
                memcpy(p->val + p->len, s + i, n);
                p->len += n;
                i += n;
            }
        } else {
            while (i < len && s[i] != ' ') {
                unsigned char c = s[i];
                if (c == '"' || c == '=' || c == '\\' || c > 0x7e)
                    fail_msg("byte 0x%02x not allowed in a bare value at %zu: [%s]", c, i, out);
                if (p->len + 1 >= sizeof p->val)
                    fail_msg("value too long for %s", p->key);
                p->val[p->len++] = (char)s[i++];
            }
            if (p->len == 0)
                fail_msg("empty bare value for %s: [%s]", p->key, out);
        }
        p->val[p->len] = '\0';
    }
    if (r->n < 3 || strcmp(r->p[0].key, "ts") != 0 || strcmp(r->p[1].key, "level") != 0 ||
        strcmp(r->p[2].key, "msg") != 0)
        fail_msg("does not start with ts= level= msg=: [%s]", out);
}

static const pair *find(const parsed *r, const char *key)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->p[i].key, key) == 0)
            return &r->p[i];
    return NULL;
}

/* Log val under key v, parse the line, expect val back byte for byte. */
static void roundtrip(const char *val)
{
    static parsed r;
    log_one(KLOG_INFO, "v", val);
    const char *out = drain();
    parse_line(out, &r);
    const pair *p = find(&r, "v");
    if (p == NULL)
        fail_msg("no v= in [%s]", out);
    if (p->len != strlen(val) || memcmp(p->val, val, p->len) != 0)
        fail_msg("v does not read back as written: [%s]", out);
    assert_null(find(&r, "truncated"));
}

static void test_log_basic(void **state)
{
    klog_line l;
    klog_begin(&l, KLOG_INFO, "request");
    klog_str(&l, "rid", "abc123");
    klog_int(&l, "status", 200);
    klog_int(&l, "neg", -5);
    klog_ms(&l, "took", 1.5);
    klog_end(&l);
    const char *out = drain();
    assert_one_line_with(out, " level=info msg=request rid=abc123 status=200 neg=-5 took=1.500\n");
    assert_int_equal(strncmp(out, "ts=", 3), 0);
    static parsed r;
    parse_line(out, &r);
    assert_int_equal(r.n, 7);
}

static void test_log_quotes_spaces(void **state)
{
    log_one(KLOG_INFO, "path", "/a b");
    assert_one_line_with(drain(), " path=\"/a b\"\n");
    log_one(KLOG_INFO, "v", "");
    assert_one_line_with(drain(), " v=\"\"\n");
    log_one(KLOG_INFO, "v", NULL);
    assert_one_line_with(drain(), " v=-\n");
    log_one(KLOG_INFO, "v", "a=b");
    assert_one_line_with(drain(), " v=\"a=b\"\n");
    log_one(KLOG_INFO, "v", "tab\there");
    assert_one_line_with(drain(), " v=\"tab\\there\"\n");
    /* the safe characters stay bare, anything else is quoted */
    log_one(KLOG_INFO, "v", "Az09-._:/@+,%~");
    assert_one_line_with(drain(), " v=Az09-._:/@+,%~\n");
    log_one(KLOG_INFO, "v", "a#b");
    assert_one_line_with(drain(), " v=\"a#b\"\n");
    /* a message with spaces is quoted too */
    klog_line l;
    klog_begin(&l, KLOG_WARN, "two words");
    klog_end(&l);
    assert_one_line_with(drain(), " level=warn msg=\"two words\"\n");
}

static void test_log_escapes_newline_and_quote(void **state)
{
    /* an attempt to forge a second line */
    log_one(KLOG_INFO, "rid", "x\nts=2020-01-01T00:00:00Z level=error msg=forged");
    const char *out = drain();
    assert_one_line_with(out, " rid=\"x\\nts=2020-01-01T00:00:00Z level=error msg=forged\"\n");

    log_one(KLOG_INFO, "v", "say \"hi\"");
    assert_one_line_with(drain(), " v=\"say \\\"hi\\\"\"\n");
    log_one(KLOG_INFO, "v", "back\\slash");
    assert_one_line_with(drain(), " v=\"back\\\\slash\"\n");
    log_one(KLOG_INFO, "v", "cr\rlf\n");
    assert_one_line_with(drain(), " v=\"cr\\rlf\\n\"\n");
    log_one(KLOG_INFO, "v", "del\x7f bell\a esc\x1b");
    assert_one_line_with(drain(), " v=\"del\\x7f bell\\x07 esc\\x1b\"\n");
    log_one(KLOG_INFO, "v", "\"");
    assert_one_line_with(drain(), " v=\"\\\"\"\n");
    /* UTF-8 passes through (quoted) */
    log_one(KLOG_INFO, "name", "Zo\xc3\xab");
    assert_one_line_with(drain(), " name=\"Zo\xc3\xab\"\n");
    /* invalid UTF-8 is written as bytes */
    log_one(KLOG_INFO, "v",
            "a\xff\xfe"
            "b\xc3");
    assert_one_line_with(drain(), " v=\"a\\xff\\xfeb\\xc3\"\n");
    /* NEL (a C1 control) and U+2028 too */
    log_one(KLOG_INFO, "v",
            "a\xc2\x85"
            "b\xe2\x80\xa8");
    assert_one_line_with(drain(), " v=\"a\\xc2\\x85b\\xe2\\x80\\xa8\"\n");
    /* the message goes through the same escaping */
    klog_line l;
    klog_begin(&l, KLOG_INFO, "bad\nmsg \"x\"");
    klog_end(&l);
    assert_one_line_with(drain(), " msg=\"bad\\nmsg \\\"x\\\"\"\n");
}

/* Every nasty value reads back exactly through a strict parser. */
static void test_log_roundtrip(void **state)
{
    static const char *vals[] = {
        "plain",
        "",
        "-",
        "say \"hi\"",
        "\"",
        "\"\"\"",
        "\\",
        "ends with a backslash\\",
        "\\\"",
        "x\nts=2020-01-01T00:00:00Z level=error msg=forged",
        "\r\n\t",
        "a=b c=d",
        "=",
        " ",
        "  leading and trailing  ",
        "ERROR:  duplicate key value violates unique constraint \"x_pkey\"\n"
        "DETAIL:  Key (id)=(1) already exists.\n",
        "connection to server at \"127.0.0.1\", port 5432 failed: Connection refused\n"
        "\tIs the server running on that host and accepting TCP/IP connections?\n",
        "/tmp/spool \"q\"\n\\dir/checkpoint",
        "\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f\x10\x1f\x7f",
        "Zo\xc3\xab \xe2\x82\xac \xf0\x9f\x98\x80", /* valid UTF-8 */
        "\xff\xfe",                                 /* never UTF-8 */
        "\x80 lone continuation",
        "\xc0\xaf overlong /",
        "\xe0\x80\xaf overlong /, three bytes",
        "\xed\xa0\x80 surrogate",
        "\xf4\x90\x80\x80 past U+10FFFF",
        "\xe2\x82 cut sequence",
        "\xf0\x9f\x98",             /* cut at the end */
        "\xc2\x80\xc2\x9f\xc2\xa0", /* C1, then NBSP */
        "\xe2\x80\xa8\xe2\x80\xa9",
        "\\x41 looks like an escape",
    };
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        roundtrip(vals[i]);
    /* every byte value */
    char all[256];
    for (int b = 1; b < 256; b++)
        all[b - 1] = (char)b;
    all[255] = '\0';
    roundtrip(all);
}

/* The message and the one-shot form go through the same writer. */
static void test_log_msg_and_oneshot_roundtrip(void **state)
{
    static parsed r;
    const char *nasty = "db said \"no\"\nDETAIL: \\x \x01 \xff";
    klog(KLOG_WARN, nasty, KLOG_STR("error", nasty), KLOG_INT("n", -42), KLOG_MS("ms", 2.25),
         KLOG_STR("user", NULL));
    const char *out = drain();
    parse_line(out, &r);
    assert_string_equal(r.p[1].val, "warn");
    assert_string_equal(r.p[2].val, nasty);
    assert_string_equal(find(&r, "error")->val, nasty);
    assert_string_equal(find(&r, "n")->val, "-42");
    assert_string_equal(find(&r, "ms")->val, "2.250");
    assert_string_equal(find(&r, "user")->val, "-");
}

/* A key that is not [a-z_]+ (a typo of ours) still gives a valid line. */
static void test_log_bad_key(void **state)
{
    static parsed r;
    log_one(KLOG_INFO, "Bad-Key 1=", "v");
    const char *out = drain();
    parse_line(out, &r);
    assert_one_line_with(out, " _ad__ey___=v\n");
    log_one(KLOG_INFO, "", "v");
    out = drain();
    parse_line(out, &r);
    assert_one_line_with(out, " _=v\n");
}

/* Parse an overlong line: at most the buffer, valid, ends truncated=1,
 * and the cut value is a prefix of what was logged. */
static void check_truncated(const char *val, const char *key)
{
    static parsed r;
    const char *out = drain();
    if (strlen(out) > sizeof((klog_line *)0)->buf)
        fail_msg("line of %zu bytes", strlen(out));
    parse_line(out, &r);
    const pair *t = &r.p[r.n - 1];
    if (strcmp(t->key, "truncated") != 0 || strcmp(t->val, "1") != 0)
        fail_msg("no final truncated=1: [%s]", out);
    const pair *p = find(&r, key);
    if (p != NULL && (p->len > strlen(val) || memcmp(p->val, val, p->len) != 0))
        fail_msg("the cut %s is not a prefix of the value: [%s]", key, out);
    assert_null(find(&r, "after")); /* pairs after the cut are dropped */
}

static void test_log_long_value_one_line(void **state)
{
    static char big[5000];
    for (size_t i = 0; i < sizeof big - 1; i++)
        big[i] = (i % 7 == 0) ? '\n' : 'x';
    big[sizeof big - 1] = '\0';
    log_one(KLOG_INFO, "v", big);
    const char *out = drain();
    assert_one_line_with(out, " v=\"\\nxxxxxx\\nx");
    assert_true(strlen(out) <= sizeof((klog_line *)0)->buf);
    assert_non_null(strstr(out, "\" truncated=1\n"));

    /* A cut at every offset relative to escapes and UTF-8 sequences: the
     * escape or the character is whole or absent, never split. */
    static const char *units[] = {
        "\"", "\\", "\n", "\x01", "\xff", "\xc3\xab", "\xf0\x9f\x98\x80", "\xc2\x85", "a", "a b"};
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        for (size_t shift = 0; shift < 16; shift++) {
            size_t n = 0;
            for (; n < shift; n++)
                big[n] = 'y';
            while (n + strlen(units[u]) < sizeof big - 1) {
                memcpy(big + n, units[u], strlen(units[u]));
                n += strlen(units[u]);
            }
            big[n] = '\0';
            klog_line l;
            klog_begin(&l, KLOG_INFO, "event");
            klog_str(&l, "v", big);
            klog_str(&l, "after", "x");
            klog_end(&l);
            check_truncated(big, "v");
        }
    }

    /* A long bare value is cut too (then quoted) */
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    klog_line l;
    klog_begin(&l, KLOG_INFO, "event");
    klog_str(&l, "v", big);
    klog_str(&l, "after", "x");
    klog_end(&l);
    check_truncated(big, "v");

    /* Many short pairs: the cut falls on a pair boundary */
    for (size_t len = 1; len < 12; len++) {
        char v[16];
        memset(v, 'q', len);
        v[len] = '\0';
        klog_begin(&l, KLOG_INFO, "event");
        for (int i = 0; i < 600; i++)
            klog_str(&l, "k", v);
        klog_end(&l);
        check_truncated(v, "k");
    }

    /* A long message */
    klog_begin(&l, KLOG_INFO, big);
    klog_str(&l, "after", "x");
    klog_end(&l);
    check_truncated(big, "msg");

    /* A line that just fits is not cut; one byte more is */
    static parsed r;
    log_one(KLOG_INFO, "v", "a");
    size_t base = strlen(drain()) - 1 - 1; /* without "\n" and the "a" */
    size_t fit = sizeof l.buf - strlen(" truncated=1\n") - base;
    memset(big, 'w', fit);
    big[fit] = '\0';
    log_one(KLOG_INFO, "v", big);
    out = drain();
    parse_line(out, &r);
    assert_null(find(&r, "truncated"));
    assert_int_equal(find(&r, "v")->len, fit);
    big[fit] = 'w';
    big[fit + 1] = '\0';
    log_one(KLOG_INFO, "v", big);
    check_truncated(big, "v");
}

static void test_log_level_filter(void **state)
{
    klog_set_level(KLOG_WARN);
    log_one(KLOG_DEBUG, "k", "dropped");
    log_one(KLOG_INFO, "k", "dropped");
    assert_string_equal(drain(), "");
    klog(KLOG_INFO, "dropped", KLOG_INT("n", 1));
    assert_string_equal(drain(), "");

    log_one(KLOG_WARN, "k", "kept");
    assert_one_line_with(drain(), " level=warn msg=event k=kept\n");
    log_one(KLOG_ERROR, "k", "kept");
    assert_one_line_with(drain(), " level=error msg=event k=kept\n");

    klog_set_level(KLOG_DEBUG);
    log_one(KLOG_DEBUG, "k", "kept");
    assert_one_line_with(drain(), " level=debug msg=event k=kept\n");

    klog_set_level(KLOG_ERROR);
    log_one(KLOG_WARN, "k", "dropped");
    assert_string_equal(drain(), "");
    klog_set_level(KLOG_DEBUG);
}

static void test_log_oneshot(void **state)
{
    klog(KLOG_INFO, "listening", KLOG_INT("port", 8443), KLOG_STR("tls", "on"));
    assert_one_line_with(drain(), " level=info msg=listening port=8443 tls=on\n");
    klog(KLOG_INFO, "bare", KLOG_STR("path", "/a \"b\""));
    assert_one_line_with(drain(), " msg=bare path=\"/a \\\"b\\\"\"\n");
}

/* JOURNAL_STREAM names the journal's stream as "DEV:INO": only that exact
 * fd matches. */
static void test_log_journal_match(void **state)
{
    struct stat st;
    assert_int_equal(fstat(log_pipe[1], &st), 0);
    char js[64], other[64];
    snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    snprintf(other, sizeof other, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + 1);
    assert_int_equal(klog_journal_match(js, log_pipe[1]), 1);
    assert_int_equal(klog_journal_match(other, log_pipe[1]), 0);
    int fd = open("/dev/null", O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(klog_journal_match(js, fd), 0);
    close(fd);
    assert_int_equal(klog_journal_match(NULL, log_pipe[1]), 0);
    assert_int_equal(klog_journal_match("", log_pipe[1]), 0);
    assert_int_equal(klog_journal_match("12", log_pipe[1]), 0);
    assert_int_equal(klog_journal_match("12:", log_pipe[1]), 0);
    assert_int_equal(klog_journal_match(":12", log_pipe[1]), 0);
    char trailing[80];
    snprintf(trailing, sizeof trailing, "%s ", js);
    assert_int_equal(klog_journal_match(trailing, log_pipe[1]), 0);
}

/* Lines to the journal start with their syslog priority; elsewhere with ts=.
 * The rest of the line is the same. */
static void test_log_journal_prefix(void **state)
{
    static const struct {
        int level;
        const char *prefix, *name;
    } cases[] = {{KLOG_DEBUG, "<7>", "debug"},
                 {KLOG_INFO, "<6>", "info"},
                 {KLOG_WARN, "<4>", "warn"},
                 {KLOG_ERROR, "<3>", "error"}};
    klog_set_journal(1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        klog(cases[i].level, "event", KLOG_STR("k", "v"));
        const char *out = drain();
        assert_int_equal(strncmp(out, cases[i].prefix, 3), 0);
        assert_int_equal(strncmp(out + 3, "ts=", 3), 0);
        char want[64];
        snprintf(want, sizeof want, " level=%s msg=event k=v\n", cases[i].name);
        assert_non_null(strstr(out, want));
    }
    klog_set_journal(0);
    klog(KLOG_ERROR, "event", KLOG_STR("k", "v"));
    assert_int_equal(strncmp(drain(), "ts=", 3), 0);
    /* found out from JOURNAL_STREAM and the fd */
    struct stat st;
    assert_int_equal(fstat(log_pipe[1], &st), 0);
    char js[64];
    snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", js, 1);
    klog_set_journal(-1);
    klog(KLOG_ERROR, "event", KLOG_STR("k", "v"));
    assert_int_equal(strncmp(drain(), "<3>ts=", 6), 0);
    setenv("JOURNAL_STREAM", "1:1", 1);
    klog_set_fd(log_pipe[1]); /* found out again: no match now */
    klog(KLOG_ERROR, "event", KLOG_STR("k", "v"));
    assert_int_equal(strncmp(drain(), "ts=", 3), 0);
    unsetenv("JOURNAL_STREAM");
    klog_set_journal(-1);
}

static void test_log_level_parse(void **state)
{
    assert_int_equal(klog_level_parse("debug"), KLOG_DEBUG);
    assert_int_equal(klog_level_parse("info"), KLOG_INFO);
    assert_int_equal(klog_level_parse("warn"), KLOG_WARN);
    assert_int_equal(klog_level_parse("error"), KLOG_ERROR);
    assert_int_equal(klog_level_parse("verbose"), -1);
    assert_int_equal(klog_level_parse(""), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_empty),
        cmocka_unit_test(test_buf_append_growth),
        cmocka_unit_test(test_buf_binary),
        cmocka_unit_test(test_buf_appendf),
        cmocka_unit_test(test_buf_reset),
        cmocka_unit_test(test_buf_reserve_too_big),
        cmocka_unit_test_setup_teardown(test_log_basic, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_log_quotes_spaces, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_log_escapes_newline_and_quote, log_setup,
                                        log_teardown),
        cmocka_unit_test_setup_teardown(test_log_roundtrip, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_log_msg_and_oneshot_roundtrip, log_setup,
                                        log_teardown),
        cmocka_unit_test_setup_teardown(test_log_bad_key, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_log_long_value_one_line, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_log_level_filter, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_log_oneshot, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_log_journal_match, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_log_journal_prefix, log_setup, log_teardown),
        cmocka_unit_test(test_log_level_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
