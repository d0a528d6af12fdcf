/* Unit tests for base/buf (growth, NUL termination) and base/log (level
 * filter, quoting and escaping of values: one event is always one line). */
#include "testlib.h"

#include <fcntl.h>
#include <stdint.h>
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
    kbuf_deinit(&b);    /* twice is fine */
    kbuf_deinit(NULL);  /* and NULL */

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
    kbuf_reset(&b);  /* before any append */
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
    assert_one_line_with(drain(), " v=\"tab\\x09here\"\n");
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
    assert_one_line_with(out, " rid=\"x\\x0ats=2020-01-01T00:00:00Z level=error msg=forged\"\n");

    log_one(KLOG_INFO, "v", "say \"hi\"");
    assert_one_line_with(drain(), " v=\"say \\\"hi\\\"\"\n");
    log_one(KLOG_INFO, "v", "back\\slash");
    assert_one_line_with(drain(), " v=\"back\\\\slash\"\n");
    log_one(KLOG_INFO, "v", "cr\rlf\n");
    assert_one_line_with(drain(), " v=\"cr\\x0dlf\\x0a\"\n");
    log_one(KLOG_INFO, "v", "del\x7f");
    assert_one_line_with(drain(), " v=\"del\\x7f\"\n");
    log_one(KLOG_INFO, "v", "\"");
    assert_one_line_with(drain(), " v=\"\\\"\"\n");
    /* UTF-8 passes through (quoted) */
    log_one(KLOG_INFO, "name", "Zo\xc3\xab");
    assert_one_line_with(drain(), " name=\"Zo\xc3\xab\"\n");
    /* the message goes through the same escaping */
    klog_line l;
    klog_begin(&l, KLOG_INFO, "bad\nmsg");
    klog_end(&l);
    assert_one_line_with(drain(), " msg=\"bad\\x0amsg\"\n");
}

static void test_log_long_value_one_line(void **state)
{
    char big[5000];
    for (size_t i = 0; i < sizeof big - 1; i++)
        big[i] = (i % 7 == 0) ? '\n' : 'x';
    big[sizeof big - 1] = '\0';
    log_one(KLOG_INFO, "v", big);
    const char *out = drain();
    assert_one_line_with(out, " v=\"\\x0axxxxxx\\x0ax");
    assert_true(strlen(out) <= sizeof ((klog_line *)0)->buf);
}

static void test_log_level_filter(void **state)
{
    klog_set_level(KLOG_WARN);
    log_one(KLOG_DEBUG, "k", "dropped");
    log_one(KLOG_INFO, "k", "dropped");
    assert_string_equal(drain(), "");
    klog(KLOG_INFO, "dropped", "n=%d", 1);
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
    klog(KLOG_INFO, "listening", "port=%d tls=%s", 8443, "on");
    assert_one_line_with(drain(), " level=info msg=listening port=8443 tls=on\n");
    klog(KLOG_INFO, "bare", NULL);
    assert_one_line_with(drain(), " msg=bare\n");
    klog(KLOG_INFO, "bare", "%s", "");
    assert_one_line_with(drain(), " msg=bare\n");
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
        cmocka_unit_test_setup_teardown(test_log_long_value_one_line, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_log_level_filter, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_log_oneshot, log_setup, log_teardown),
        cmocka_unit_test(test_log_level_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
