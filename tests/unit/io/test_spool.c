/* Unit tests for io/spool (the durable on-disk queue) and base/crc32c.
 * Each spool test runs in its own mkdtemp directory under /tmp, removed by
 * the teardown. Recovery is tested by editing segment files between a close
 * and the next open, exactly as a crash or a bad disk would leave them. */
#include "testlib.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/crc32c.h"
#include "base/log.h"
#include "io/spool.h"
#include "io/spool_dead.h"
#include "io/spool_record.h"

#define HDR 12

/* ---- fixture: a fresh directory per test; the spool lives in <tmp>/spool */

typedef struct fx {
    char root[64];
    char dir[128];
} fx;

static int fx_setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    snprintf(f->root, sizeof f->root, "/tmp/kycd-spool-XXXXXX");
    if (mkdtemp(f->root) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->dir, sizeof f->dir, "%s/spool", f->root);
    *state = f;
    return 0;
}

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        chmod(path, 0700);
        DIR *d = opendir(path);
        if (d) {
            struct dirent *de;
            while ((de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                    continue;
                char sub[512];
                snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
                rm_rf(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int fx_teardown(void **state)
{
    fx *f = *state;
    klog_set_fd(2);
    rm_rf(f->root);
    free(f);
    return 0;
}

/* ---- helpers */

static spool *open_ok(const char *dir, int64_t max_bytes, int64_t segment_bytes)
{
    spool_opts o = {.dir = dir, .max_bytes = max_bytes, .segment_bytes = segment_bytes};
    spool *s = NULL;
    kerr err = {0};
    int rc = spool_open(&s, &o, &err);
    if (rc != 0)
        fail_msg("spool_open(%s): %s", dir, err.msg);
    return s;
}

static int open_rc(const char *dir, kerr *err)
{
    spool_opts o = {.dir = dir, .max_bytes = 0, .segment_bytes = 0};
    spool *s = NULL;
    int rc = spool_open(&s, &o, err);
    if (rc == 0)
        spool_close(s);
    return rc;
}

/* Deterministic payload number i of length n. */
static void fill(unsigned char *p, size_t n, uint32_t i)
{
    uint32_t x = i * 2654435761u + 12345u;
    for (size_t k = 0; k < n; k++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[k] = (unsigned char)x;
    }
}

static void append_ok(spool *s, const void *p, size_t n)
{
    kerr err = {0};
    int rc = spool_append(s, p, n, &err);
    if (rc != 0)
        fail_msg("spool_append(%zu bytes): %s", n, err.msg);
}

static void append_str(spool *s, const char *str)
{
    append_ok(s, str, strlen(str));
}

/* Peek the next record, expect it to equal want, ack it. */
static void take_expect(spool *s, const void *want, size_t n)
{
    kbuf b;
    kbuf_init(&b);
    spool_pos pos;
    kerr err = {0};
    int rc = spool_peek(s, &b, &pos, &err);
    if (rc != 0)
        fail_msg("spool_peek: %s", err.msg);
    assert_int_equal(b.len, n);
    if (n)
        assert_memory_equal(b.data, want, n);
    assert_int_equal(pos.next - pos.offset, (int64_t)(HDR + n));
    assert_int_equal(spool_ack(s, &pos, &err), 0);
    kbuf_deinit(&b);
}

static void take_expect_str(spool *s, const char *str)
{
    take_expect(s, str, strlen(str));
}

static void expect_empty(spool *s)
{
    kbuf b;
    kbuf_init(&b);
    spool_pos pos;
    kerr err = {0};
    assert_int_equal(spool_peek(s, &b, &pos, &err), KERR_NOTFOUND);
    kbuf_deinit(&b);
    spool_stats st;
    spool_stats_get(s, &st);
    assert_int_equal(st.records, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(st.segments, 0);
    assert_int_equal(st.oldest_age_ms, 0);
}

static int count_segments(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "seg-", 4) == 0)
            n++;
    closedir(d);
    return n;
}

/* Path of the only (or the newest) segment file. */
static void newest_segment(const char *dir, char *out, size_t n)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    char best[256] = "";
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, "seg-", 4) == 0 && strcmp(de->d_name, best) > 0)
            snprintf(best, sizeof best, "%s", de->d_name);
    closedir(d);
    assert_true(best[0] != '\0');
    snprintf(out, n, "%s/%s", dir, best);
}

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return p;
}

static void write_file(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

static int64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (int64_t)st.st_size;
}

static void quiet_log(void)
{
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    klog_set_fd(fd); /* leaked on purpose: one fd for the process */
}

/* ---- crc32c */

static uint32_t crc32c_bitwise(uint32_t crc, const unsigned char *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ ((crc & 1u) ? 0x82F63B78u : 0u);
    }
    return ~crc;
}

static void test_crc32c(void **state)
{
    assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c(0, "", 0), 0);
    assert_int_equal(crc32c(0, NULL, 0), 0);
    /* chaining: crc of a+b equals crc of b continued from crc of a */
    assert_int_equal(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    /* every table entry, against a bit-by-bit reference */
    unsigned char buf[4096];
    fill(buf, sizeof buf, 7);
    for (unsigned v = 0; v < 256; v++) {
        unsigned char c = (unsigned char)v;
        assert_int_equal(crc32c(0, &c, 1), crc32c_bitwise(0, &c, 1));
    }
    for (size_t n = 0; n <= sizeof buf; n += 97)
        assert_int_equal(crc32c(0, buf, n), crc32c_bitwise(0, buf, n));
}

/* ---- record decode */

static size_t make_record(unsigned char *out, const void *payload, uint32_t n)
{
    memcpy(out, "KYS1", 4);
    out[4] = (unsigned char)n;
    out[5] = (unsigned char)(n >> 8);
    out[6] = (unsigned char)(n >> 16);
    out[7] = (unsigned char)(n >> 24);
    uint32_t c = crc32c(0, payload, n);
    out[8] = (unsigned char)c;
    out[9] = (unsigned char)(c >> 8);
    out[10] = (unsigned char)(c >> 16);
    out[11] = (unsigned char)(c >> 24);
    memcpy(out + HDR, payload, n);
    return HDR + n;
}

static void test_record_decode(void **state)
{
    unsigned char rec[HDR + 64 + 8];
    size_t len = make_record(rec, "hello, spool", 12);
    const unsigned char *p = NULL;
    size_t pl = 0, used = 0;
    assert_int_equal(spool_record_decode(rec, len, &p, &pl, &used), 0);
    assert_ptr_equal(p, rec + HDR);
    assert_int_equal(pl, 12);
    assert_int_equal(used, len);
    assert_memory_equal(p, "hello, spool", 12);

    /* trailing bytes are not part of the record */
    memcpy(rec + len, "KYS1xxxx", 8);
    assert_int_equal(spool_record_decode(rec, len + 8, &p, &pl, &used), 0);
    assert_int_equal(used, len);

    /* every strict prefix is torn, and leaves the outputs alone */
    for (size_t k = 0; k < len; k++) {
        const unsigned char *p2 = (const unsigned char *)"x";
        size_t pl2 = 77, used2 = 88;
        assert_int_equal(spool_record_decode(rec, k, &p2, &pl2, &used2), KERR_NOTFOUND);
        assert_int_equal(pl2, 77);
        assert_int_equal(used2, 88);
    }
    assert_int_equal(spool_record_decode(NULL, 0, NULL, NULL, NULL), KERR_NOTFOUND);

    /* empty payload */
    unsigned char empty[HDR];
    assert_int_equal(make_record(empty, "", 0), HDR);
    assert_int_equal(spool_record_decode(empty, HDR, &p, &pl, &used), 0);
    assert_int_equal(pl, 0);
    assert_int_equal(used, HDR);

    /* garbage: bad magic, even a short one */
    assert_int_equal(
        spool_record_decode((const unsigned char *)"GARBAGE GARBAGE!", 16, NULL, NULL, NULL),
        KERR_INVALID);
    assert_int_equal(spool_record_decode((const unsigned char *)"KX", 2, NULL, NULL, NULL),
                     KERR_INVALID);
    /* bad CRC: one payload bit */
    len = make_record(rec, "hello, spool", 12);
    rec[HDR + 3] ^= 0x01;
    assert_int_equal(spool_record_decode(rec, len, &p, &pl, &used), KERR_INVALID);
    rec[HDR + 3] ^= 0x01;
    rec[9] ^= 0x80; /* the CRC itself */
    assert_int_equal(spool_record_decode(rec, len, &p, &pl, &used), KERR_INVALID);
    rec[9] ^= 0x80;

    /* huge lengths: absurd beyond 16 MiB, merely torn at 16 MiB */
    unsigned char hdr[HDR];
    memcpy(hdr, "KYS1\xff\xff\xff\xff\0\0\0\0", HDR);
    assert_int_equal(spool_record_decode(hdr, HDR, NULL, NULL, NULL), KERR_TOOBIG);
    uint32_t over = 16u * 1024 * 1024 + 1;
    hdr[4] = (unsigned char)over;
    hdr[5] = (unsigned char)(over >> 8);
    hdr[6] = (unsigned char)(over >> 16);
    hdr[7] = (unsigned char)(over >> 24);
    assert_int_equal(spool_record_decode(hdr, HDR, NULL, NULL, NULL), KERR_TOOBIG);
    over--;
    hdr[4] = (unsigned char)over;
    hdr[5] = (unsigned char)(over >> 8);
    hdr[6] = (unsigned char)(over >> 16);
    hdr[7] = (unsigned char)(over >> 24);
    assert_int_equal(spool_record_decode(hdr, HDR, NULL, NULL, NULL), KERR_NOTFOUND);

    /* random garbage never decodes as valid with a bad claim on used */
    unsigned char junk[256];
    for (uint32_t i = 0; i < 2000; i++) {
        fill(junk, sizeof junk, i);
        if (i % 2)
            memcpy(junk, "KYS1", 4);
        size_t n = i % sizeof junk;
        size_t u = 0;
        int rc = spool_record_decode(junk, n, NULL, NULL, &u);
        assert_true(rc == KERR_INVALID || rc == KERR_NOTFOUND || rc == KERR_TOOBIG ||
                    (rc == 0 && u <= n));
    }
}

/* ---- round trip */

static size_t vsize(uint32_t i)
{
    if (i == 0)
        return 0;
    if (i == 1)
        return 100 * 1024;
    switch (i % 3) {
    case 0:
        return i % 50;
    case 1:
        return (i * 131u) % 4096;
    default:
        return (i * 7919u) % (100 * 1024 + 1);
    }
}

static void test_roundtrip_1000(void **state)
{
    fx *f = *state;
    spool *s = open_ok(f->dir, 0, 0);
    struct stat st;
    assert_int_equal(stat(f->dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    expect_empty(s);

    unsigned char *buf = malloc(100 * 1024);
    assert_non_null(buf);
    int64_t bytes = 0;
    for (uint32_t i = 0; i < 1000; i++) {
        size_t n = vsize(i);
        fill(buf, n, i);
        append_ok(s, buf, n);
        bytes += HDR + (int64_t)n;
    }
    spool_stats sst;
    spool_stats_get(s, &sst);
    assert_int_equal(sst.records, 1000);
    assert_int_equal(sst.bytes, bytes);
    assert_true(sst.segments > 1); /* ~17 MB over 4 MiB segments */
    assert_true(sst.oldest_age_ms >= 0);

    char seg[256];
    newest_segment(f->dir, seg, sizeof seg);
    assert_int_equal(stat(seg, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    for (uint32_t i = 0; i < 1000; i++) {
        size_t n = vsize(i);
        fill(buf, n, i);
        take_expect(s, buf, n);
        spool_stats_get(s, &sst);
        assert_int_equal(sst.records, 999 - (int64_t)i);
    }
    expect_empty(s);
    assert_int_equal(count_segments(f->dir), 0);

    /* and it goes on working after draining to empty */
    append_str(s, "after");
    take_expect_str(s, "after");
    expect_empty(s);
    free(buf);
    spool_close(s);
}

static void test_peek_ack_misuse(void **state)
{
    fx *f = *state;
    spool *s = open_ok(f->dir, 0, 0);
    kbuf b;
    kbuf_init(&b);
    assert_int_equal(kbuf_append(&b, "untouched", 9), 0);
    spool_pos pos = {0};
    kerr err = {0};
    assert_int_equal(spool_peek(s, &b, &pos, &err), KERR_NOTFOUND);
    assert_string_equal(kbuf_str(&b), "untouched");
    assert_int_equal(spool_ack(s, &pos, &err), KERR_STATE);

    append_str(s, "one");
    append_str(s, "two");
    /* ack before any peek */
    spool_pos guess = {.segment = 1, .offset = 0, .next = HDR + 3};
    assert_int_equal(spool_ack(s, &guess, &err), KERR_STATE);
    assert_int_equal(spool_peek(s, &b, &pos, &err), 0);
    assert_string_equal(kbuf_str(&b), "one");
    /* peeking twice returns the same record */
    spool_pos pos2;
    assert_int_equal(spool_peek(s, &b, &pos2, &err), 0);
    assert_memory_equal(&pos, &pos2, sizeof pos);
    /* wrong offsets */
    spool_pos bad = pos;
    bad.next++;
    assert_int_equal(spool_ack(s, &bad, &err), KERR_STATE);
    bad = pos;
    bad.segment++;
    assert_int_equal(spool_ack(s, &bad, &err), KERR_STATE);
    assert_int_equal(spool_ack(s, &pos, &err), 0);
    /* the same ack twice */
    assert_int_equal(spool_ack(s, &pos, &err), KERR_STATE);
    take_expect_str(s, "two");
    expect_empty(s);

    /* payload limit: 16 MiB is fine, one more byte is refused */
    size_t big = 16u * 1024 * 1024;
    unsigned char *p = calloc(1, big + 1);
    assert_non_null(p);
    assert_int_equal(spool_append(s, p, big + 1, &err), KERR_INVALID);
    assert_int_equal(spool_append(s, p, big, &err), 0);
    take_expect(s, p, big);
    free(p);
    kbuf_deinit(&b);
    spool_close(s);
}

/* ---- segments */

static void test_rollover_and_delete(void **state)
{
    fx *f = *state;
    /* 300-byte payloads, 312-byte records: 3 per 1000-byte segment */
    spool *s = open_ok(f->dir, 0, 1000);
    char p[300];
    for (uint32_t i = 0; i < 30; i++) {
        memset(p, 'a' + (int)(i % 26), sizeof p);
        append_ok(s, p, sizeof p);
    }
    spool_stats st;
    spool_stats_get(s, &st);
    assert_int_equal(st.segments, 10);
    assert_int_equal(count_segments(f->dir), 10);
    assert_int_equal(st.bytes, 30 * 312);

    /* a record larger than a segment gets one of its own */
    char huge[3000];
    memset(huge, 'H', sizeof huge);
    append_ok(s, huge, sizeof huge);
    append_str(s, "tail");
    assert_int_equal(count_segments(f->dir), 12);

    for (uint32_t i = 0; i < 30; i++) {
        memset(p, 'a' + (int)(i % 26), sizeof p);
        take_expect(s, p, sizeof p);
        /* a segment disappears as soon as its last record is acknowledged */
        assert_int_equal(count_segments(f->dir), 12 - (int)((i + 1) / 3));
        spool_stats_get(s, &st);
        assert_int_equal(st.segments, 12 - (int)((i + 1) / 3));
    }
    take_expect(s, huge, sizeof huge);
    assert_int_equal(count_segments(f->dir), 1);
    take_expect_str(s, "tail");
    assert_int_equal(count_segments(f->dir), 0);
    expect_empty(s);

    /* sequence numbers keep growing after a drain; the checkpoint names the
     * segment that the next append will create */
    append_str(s, "again");
    char seg[256];
    newest_segment(f->dir, seg, sizeof seg);
    assert_non_null(strstr(seg, "seg-000000000000000d.log"));
    spool_close(s);

    char cp[256];
    snprintf(cp, sizeof cp, "%s/checkpoint", f->dir);
    size_t n;
    unsigned char *c = read_file(cp, &n);
    c[n] = '\0';
    assert_string_equal((char *)c, "000000000000000d 0\n");
    free(c);
}

static void test_reopen(void **state)
{
    fx *f = *state;
    spool *s = open_ok(f->dir, 0, 2000);
    char p[64];
    for (int i = 0; i < 20; i++) {
        snprintf(p, sizeof p, "record %02d", i);
        append_str(s, p);
    }
    for (int i = 0; i < 7; i++) {
        snprintf(p, sizeof p, "record %02d", i);
        take_expect_str(s, p);
    }
    spool_close(s);

    char cp[256];
    snprintf(cp, sizeof cp, "%s/checkpoint", f->dir);
    size_t n;
    unsigned char *c = read_file(cp, &n);
    c[n] = '\0';
    char want[64];
    snprintf(want, sizeof want, "%016x %d\n", 1, 7 * (HDR + 9));
    assert_string_equal((char *)c, want);
    free(c);

    s = open_ok(f->dir, 0, 2000);
    spool_stats st;
    spool_stats_get(s, &st);
    assert_int_equal(st.records, 13);
    assert_int_equal(st.bytes, 20 * (HDR + 9));
    for (int i = 7; i < 12; i++) {
        snprintf(p, sizeof p, "record %02d", i);
        take_expect_str(s, p);
    }
    append_str(s, "after reopen");
    spool_close(s);

    /* a clean reopen with nothing acknowledged in between */
    s = open_ok(f->dir, 0, 2000);
    spool_stats_get(s, &st);
    assert_int_equal(st.records, 9);
    spool_close(s);

    s = open_ok(f->dir, 0, 2000);
    for (int i = 12; i < 20; i++) {
        snprintf(p, sizeof p, "record %02d", i);
        take_expect_str(s, p);
    }
    take_expect_str(s, "after reopen");
    expect_empty(s);
    spool_close(s);

    s = open_ok(f->dir, 0, 2000);
    expect_empty(s);
    append_str(s, "fresh");
    spool_close(s);
    s = open_ok(f->dir, 0, 2000);
    take_expect_str(s, "fresh");
    spool_close(s);
}

/* ---- recovery */

/* Three records in one segment; returns the offsets of each. */
static void three_records(const char *dir, int64_t off[4])
{
    spool *s = open_ok(dir, 0, 0);
    append_str(s, "first record");
    append_str(s, "second record, a bit longer");
    append_str(s, "third record: the one that will be torn");
    spool_close(s);
    off[0] = 0;
    off[1] = HDR + 12;
    off[2] = off[1] + HDR + 27;
    off[3] = off[2] + HDR + 39;
}

static void test_torn_tail_every_offset(void **state)
{
    fx *f = *state;
    int64_t off[4];
    three_records(f->dir, off);
    char seg[256];
    newest_segment(f->dir, seg, sizeof seg);
    size_t len;
    unsigned char *orig = read_file(seg, &len);
    assert_int_equal(len, off[3]);

    /* one cut with the log captured: the warning names file and offset */
    char logpath[256];
    snprintf(logpath, sizeof logpath, "%s/log", f->root);
    int lfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(lfd >= 0);
    klog_set_fd(lfd);
    write_file(seg, orig, (size_t)off[2] + 5);
    spool *s = open_ok(f->dir, 0, 0);
    spool_close(s);
    klog_set_fd(2);
    close(lfd);
    size_t ln;
    unsigned char *logtext = read_file(logpath, &ln);
    logtext[ln] = '\0';
    assert_non_null(strstr((char *)logtext, "torn tail"));
    assert_non_null(strstr((char *)logtext, seg));
    char offkv[64];
    snprintf(offkv, sizeof offkv, "offset=%" PRId64, off[2]);
    assert_non_null(strstr((char *)logtext, offkv));
    free(logtext);

    quiet_log();
    for (int64_t cut = off[2]; cut < off[3]; cut++) {
        write_file(seg, orig, (size_t)cut);
        s = open_ok(f->dir, 0, 0);
        spool_stats st;
        spool_stats_get(s, &st);
        assert_int_equal(st.records, 2);
        assert_int_equal(st.bytes, off[2]);
        assert_int_equal(file_size(seg), off[2]);
        append_str(s, "replacement");
        spool_close(s);

        s = open_ok(f->dir, 0, 0);
        take_expect_str(s, "first record");
        take_expect_str(s, "second record, a bit longer");
        take_expect_str(s, "replacement");
        expect_empty(s);
        spool_close(s);
        /* draining deleted the segment: put the three records back */
        char cp[256];
        snprintf(cp, sizeof cp, "%s/checkpoint", f->dir);
        unlink(cp);
    }

    /* a whole last record with a bad CRC, and a tail of zeros (size grew,
     * data never reached the disk): both torn */
    unsigned char *bad = malloc(len + 40);
    assert_non_null(bad);
    memcpy(bad, orig, len);
    bad[len - 1] ^= 0xff;
    write_file(seg, bad, len);
    s = open_ok(f->dir, 0, 0);
    spool_stats st;
    spool_stats_get(s, &st);
    assert_int_equal(st.records, 2);
    spool_close(s);
    memcpy(bad, orig, len);
    memset(bad + len, 0, 40);
    write_file(seg, bad, len + 40);
    s = open_ok(f->dir, 0, 0);
    spool_stats_get(s, &st);
    assert_int_equal(st.records, 3);
    assert_int_equal(file_size(seg), (int64_t)len);
    take_expect_str(s, "first record");
    spool_close(s);
    free(bad);
    free(orig);
}

static void test_corrupt_middle_record(void **state)
{
    fx *f = *state;
    int64_t off[4];
    three_records(f->dir, off);
    char seg[256];
    newest_segment(f->dir, seg, sizeof seg);
    size_t len;
    unsigned char *orig = read_file(seg, &len);
    char offtxt[64];
    snprintf(offtxt, sizeof offtxt, "offset %" PRId64, off[1]);

    /* every byte of the middle record, header included */
    for (int64_t b = off[1]; b < off[2]; b++) {
        orig[b] ^= 0x5a;
        write_file(seg, orig, len);
        orig[b] ^= 0x5a;
        kerr err = {0};
        assert_int_equal(open_rc(f->dir, &err), KERR_INVALID);
        assert_non_null(strstr(err.msg, offtxt));
        assert_non_null(strstr(err.msg, seg));
        /* refused, and nothing was cut */
        assert_int_equal(file_size(seg), (int64_t)len);
    }
    write_file(seg, orig, len);
    spool *s = open_ok(f->dir, 0, 0);
    spool_stats st;
    spool_stats_get(s, &st);
    assert_int_equal(st.records, 3);
    spool_close(s);
    free(orig);
}

static void test_corrupt_older_segment(void **state)
{
    fx *f = *state;
    /* 2 records of 112 bytes per 250-byte segment */
    spool *s = open_ok(f->dir, 0, 250);
    char p[100];
    for (int i = 0; i < 4; i++) {
        memset(p, 'A' + i, sizeof p);
        append_ok(s, p, sizeof p);
    }
    spool_close(s);
    char older[256];
    snprintf(older, sizeof older, "%s/seg-0000000000000001.log", f->dir);
    size_t len;
    unsigned char *orig = read_file(older, &len);
    assert_int_equal(len, 224);

    /* the last record of an older segment is not a torn tail */
    orig[len - 1] ^= 1;
    write_file(older, orig, len);
    kerr err = {0};
    assert_int_equal(open_rc(f->dir, &err), KERR_INVALID);
    assert_non_null(strstr(err.msg, "offset 112"));
    assert_non_null(strstr(err.msg, older));
    orig[len - 1] ^= 1;
    /* nor is a short one */
    write_file(older, orig, len - 10);
    assert_int_equal(open_rc(f->dir, &err), KERR_INVALID);
    assert_non_null(strstr(err.msg, "offset 112"));
    write_file(older, orig, len);
    s = open_ok(f->dir, 0, 250);
    spool_stats st;
    spool_stats_get(s, &st);
    assert_int_equal(st.records, 4);
    spool_close(s);
    free(orig);
}

static void test_stale_checkpoint(void **state)
{
    fx *f = *state;
    char cp[256];
    snprintf(cp, sizeof cp, "%s/checkpoint", f->dir);
    spool *s = open_ok(f->dir, 0, 0);
    char p[32];
    for (int i = 0; i < 10; i++) {
        snprintf(p, sizeof p, "r%d", i);
        append_str(s, p);
    }
    for (int i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "r%d", i);
        take_expect_str(s, p);
    }
    spool_close(s);

    /* a crash lost the last checkpoints: the record after the stale one is
     * replayed again, nothing is lost */
    write_file(cp, "0000000000000001 14\n", 20);
    s = open_ok(f->dir, 0, 0);
    spool_stats st;
    spool_stats_get(s, &st);
    assert_int_equal(st.records, 9);
    for (int i = 1; i < 10; i++) {
        snprintf(p, sizeof p, "r%d", i);
        take_expect_str(s, p);
    }
    expect_empty(s);
    spool_close(s);

    /* several segments; the first is replayed and deleted, then the
     * checkpoint goes back to a segment that no longer exists */
    s = open_ok(f->dir, 0, 100);
    char big[60];
    for (int i = 0; i < 6; i++) {
        memset(big, '0' + i, sizeof big);
        append_ok(s, big, sizeof big);
    }
    memset(big, '0', sizeof big);
    take_expect(s, big, sizeof big);
    spool_close(s);
    quiet_log();
    write_file(cp, "0000000000000001 0\n", 19);
    s = open_ok(f->dir, 0, 100);
    spool_stats_get(s, &st);
    assert_int_equal(st.records, 5);
    for (int i = 1; i < 6; i++) {
        memset(big, '0' + i, sizeof big);
        take_expect(s, big, sizeof big);
    }
    expect_empty(s);
    append_str(s, "x");
    spool_close(s);

    /* a checkpoint left empty or garbled by a crash: replay from the oldest */
    const char *garbage[] = {"",
                             "zz 1\n",
                             "0000000000000001\n",
                             "0000000000000001 -1\n",
                             "00000000000000010 0\n",
                             "0000000000000001 12"};
    for (size_t g = 0; g < sizeof garbage / sizeof *garbage; g++) {
        write_file(cp, garbage[g], strlen(garbage[g]));
        s = open_ok(f->dir, 0, 100);
        spool_stats_get(s, &st);
        assert_int_equal(st.records, 1);
        spool_close(s);
    }
    /* a checkpoint beyond the end of its segment is refused */
    char seg[256];
    newest_segment(f->dir, seg, sizeof seg);
    char line[64];
    snprintf(line, sizeof line, "%.16s 999\n", strrchr(seg, '-') + 1);
    write_file(cp, line, strlen(line));
    kerr err = {0};
    assert_int_equal(open_rc(f->dir, &err), KERR_INVALID);
    assert_non_null(strstr(err.msg, "checkpoint"));
}

/* A crash between the checkpoint and the unlink of a replayed segment
 * leaves that segment behind: the next open deletes it, not replays it. */
static void test_leftover_replayed_segment(void **state)
{
    fx *f = *state;
    spool *s = open_ok(f->dir, 0, 100);
    char p[60];
    for (int i = 0; i < 3; i++) {
        memset(p, 'a' + i, sizeof p);
        append_ok(s, p, sizeof p);
    }
    char first[256];
    snprintf(first, sizeof first, "%s/seg-0000000000000001.log", f->dir);
    size_t len;
    unsigned char *copy = read_file(first, &len);
    memset(p, 'a', sizeof p);
    take_expect(s, p, sizeof p);
    assert_int_equal(access(first, F_OK), -1);
    spool_close(s);

    write_file(first, copy, len);
    s = open_ok(f->dir, 0, 100);
    assert_int_equal(access(first, F_OK), -1);
    spool_stats st;
    spool_stats_get(s, &st);
    assert_int_equal(st.records, 2);
    assert_int_equal(st.segments, 2);
    memset(p, 'b', sizeof p);
    take_expect(s, p, sizeof p);
    spool_close(s);
    free(copy);
}

static void test_max_bytes(void **state)
{
    fx *f = *state;
    /* room for exactly 3 records of 100 payload bytes */
    spool *s = open_ok(f->dir, 3 * (HDR + 100), 0);
    char p[100];
    memset(p, 'm', sizeof p);
    for (int i = 0; i < 3; i++)
        append_ok(s, p, sizeof p);
    char seg[256];
    newest_segment(f->dir, seg, sizeof seg);
    kerr err = {0};
    assert_int_equal(spool_append(s, p, sizeof p, &err), KERR_TOOBIG);
    assert_int_equal(spool_append(s, "", 0, &err), KERR_TOOBIG);
    assert_non_null(strstr(err.msg, "full"));
    spool_stats st;
    spool_stats_get(s, &st);
    assert_int_equal(st.records, 3);
    assert_int_equal(st.bytes, 3 * (HDR + 100));
    assert_int_equal(file_size(seg), 3 * (HDR + 100));

    /* acknowledging does not free space until the segment goes */
    take_expect(s, p, sizeof p);
    assert_int_equal(spool_append(s, p, sizeof p, &err), KERR_TOOBIG);
    take_expect(s, p, sizeof p);
    take_expect(s, p, sizeof p);
    append_ok(s, p, sizeof p);
    spool_close(s);
}

/* Write failures: a spool directory turned read-only makes the first append
 * (which must create a segment) fail with KERR_IO, and nothing is written.
 * Root bypasses permissions, so as root the append runs in a child that
 * has dropped to the `nobody` user (uid/gid 65534). */
static int readonly_append_fails(spool *s, const char *dir)
{
    kerr err = {0};
    if (spool_append(s, "x", 1, &err) != KERR_IO)
        return 1;
    if (strstr(err.msg, dir) == NULL)
        return 2;
    return 0;
}

static void test_readonly_dir(void **state)
{
    fx *f = *state;
    spool *s = open_ok(f->dir, 0, 0);
    assert_int_equal(chmod(f->dir, 0500), 0);
    int rc;
    if (geteuid() == 0) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            if (setgid(65534) != 0 || setuid(65534) != 0)
                _exit(10);
            _exit(readonly_append_fails(s, f->dir));
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        rc = WEXITSTATUS(status);
    } else {
        rc = readonly_append_fails(s, f->dir);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(count_segments(f->dir), 0);
    assert_int_equal(chmod(f->dir, 0700), 0);
    append_str(s, "y");
    take_expect_str(s, "y");
    spool_close(s);
}

/* RLIMIT_FSIZE makes write() stop short and then fail with EFBIG, for root
 * too: the failed append must be cut back, and the next one must work. */
static void test_write_fails_fsize(void **state)
{
    fx *f = *state;
    spool *s = open_ok(f->dir, 0, 0);
    append_str(s, "before");
    char seg[256];
    newest_segment(f->dir, seg, sizeof seg);
    int64_t before = file_size(seg);

    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = old;
    lim.rlim_cur = (rlim_t)before + 100;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    char p[1000];
    memset(p, 'f', sizeof p);
    kerr err = {0};
    int rc = spool_append(s, p, sizeof p, &err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, oldsig);
    assert_int_equal(rc, KERR_IO);
    assert_non_null(strstr(err.msg, seg));
    assert_int_equal(file_size(seg), before);
    spool_stats st;
    spool_stats_get(s, &st);
    assert_int_equal(st.records, 1);
    assert_int_equal(st.bytes, before);

    append_ok(s, p, sizeof p);
    spool_close(s);
    s = open_ok(f->dir, 0, 0);
    take_expect_str(s, "before");
    take_expect(s, p, sizeof p);
    expect_empty(s);
    spool_close(s);
}

static void test_two_opens(void **state)
{
    fx *f = *state;
    spool *a = open_ok(f->dir, 0, 0);
    spool_opts o = {.dir = f->dir};
    spool *b = NULL;
    kerr err = {0};
    assert_int_not_equal(spool_open(&b, &o, &err), 0);
    assert_null(b);
    assert_non_null(strstr(err.msg, f->dir));
    spool_close(a);
    b = open_ok(f->dir, 0, 0);
    spool_close(b);
}

static void test_bad_paths(void **state)
{
    fx *f = *state;
    kerr err = {0};
    char file[256];
    snprintf(file, sizeof file, "%s/plain-file", f->root);
    write_file(file, "x", 1);
    assert_int_equal(open_rc(file, &err), KERR_INVALID);
    assert_non_null(strstr(err.msg, file));
    assert_non_null(strstr(err.msg, "not a directory"));

    char deep[256];
    snprintf(deep, sizeof deep, "%s/missing/spool", f->root);
    assert_int_equal(open_rc(deep, &err), KERR_IO);
    assert_non_null(strstr(err.msg, deep));

    assert_int_equal(open_rc("", &err), KERR_INVALID);
    spool *s = NULL;
    assert_int_equal(spool_open(&s, NULL, &err), KERR_INVALID);
    spool_close(NULL);
}

static void test_oldest_age(void **state)
{
    fx *f = *state;
    spool *s = open_ok(f->dir, 0, 0);
    append_str(s, "old");
    struct timespec ts = {0, 30 * 1000 * 1000};
    nanosleep(&ts, NULL);
    append_str(s, "new");
    spool_stats st;
    spool_stats_get(s, &st);
    assert_true(st.oldest_age_ms >= 30);
    assert_true(st.oldest_age_ms < 10000);
    take_expect_str(s, "old");
    spool_stats_get(s, &st);
    assert_true(st.oldest_age_ms < 30);
    spool_close(s);

    /* after a restart the segment's mtime stands in for the append time */
    char seg[256];
    newest_segment(f->dir, seg, sizeof seg);
    struct timespec times[2];
    clock_gettime(CLOCK_REALTIME, &times[0]);
    times[0].tv_sec -= 3600;
    times[1] = times[0];
    assert_int_equal(utimensat(AT_FDCWD, seg, times, 0), 0);
    s = open_ok(f->dir, 0, 0);
    spool_stats_get(s, &st);
    assert_int_equal(st.records, 1);
    assert_true(st.oldest_age_ms >= 3600 * 1000 - 10);
    assert_true(st.oldest_age_ms < 3600 * 1000 + 60000);
    take_expect_str(s, "new");
    expect_empty(s);
    spool_close(s);
}

/* ---- concurrency */

#define WRITERS 8
#define PER_WRITER 500

typedef struct conc {
    spool *s;
    int id;
    int seen[WRITERS][PER_WRITER];
    int fails;
} conc;

typedef struct writer_arg {
    conc *c;
    int id;
} writer_arg;

static void *writer_main(void *arg)
{
    writer_arg *w = arg;
    char p[600];
    for (int i = 0; i < PER_WRITER; i++) {
        int n = snprintf(p, sizeof p, "w%d-r%d:", w->id, i);
        size_t len = (size_t)n + (size_t)((w->id * 131 + i * 17) % 400);
        memset(p + n, 'a' + w->id, len - (size_t)n);
        kerr err;
        if (spool_append(w->c->s, p, len, &err) != 0)
            __atomic_add_fetch(&w->c->fails, 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

static void *drainer_main(void *arg)
{
    conc *c = arg;
    kbuf b;
    kbuf_init(&b);
    int last[WRITERS];
    for (int i = 0; i < WRITERS; i++)
        last[i] = -1;
    int got = 0;
    while (got < WRITERS * PER_WRITER) {
        spool_pos pos;
        kerr err;
        int rc = spool_peek(c->s, &b, &pos, &err);
        if (rc == KERR_NOTFOUND) {
            sched_yield();
            continue;
        }
        if (rc != 0 || spool_ack(c->s, &pos, &err) != 0) {
            __atomic_add_fetch(&c->fails, 1, __ATOMIC_SEQ_CST);
            break;
        }
        int w = -1, r = -1;
        if (sscanf(kbuf_str(&b), "w%d-r%d:", &w, &r) != 2 || w < 0 || w >= WRITERS || r < 0 ||
            r >= PER_WRITER) {
            __atomic_add_fetch(&c->fails, 1, __ATOMIC_SEQ_CST);
            break;
        }
        c->seen[w][r]++;
        /* one writer's records come back in the order it appended them */
        if (r <= last[w])
            __atomic_add_fetch(&c->fails, 1, __ATOMIC_SEQ_CST);
        last[w] = r;
        got++;
    }
    kbuf_deinit(&b);
    return NULL;
}

static void test_concurrent_append_drain(void **state)
{
    fx *f = *state;
    conc *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->s = open_ok(f->dir, 0, 64 * 1024);
    pthread_t wt[WRITERS], dt;
    writer_arg wa[WRITERS];
    assert_int_equal(pthread_create(&dt, NULL, drainer_main, c), 0);
    for (int i = 0; i < WRITERS; i++) {
        wa[i] = (writer_arg){c, i};
        assert_int_equal(pthread_create(&wt[i], NULL, writer_main, &wa[i]), 0);
    }
    for (int i = WRITERS - 1; i >= 0; i--)
        pthread_join(wt[i], NULL);
    pthread_join(dt, NULL);
    assert_int_equal(__atomic_load_n(&c->fails, __ATOMIC_SEQ_CST), 0);
    for (int w = 0; w < WRITERS; w++)
        for (int r = 0; r < PER_WRITER; r++)
            assert_int_equal(c->seen[w][r], 1);
    expect_empty(c->s);
    assert_int_equal(count_segments(f->dir), 0);
    spool_close(c->s);
    free(c);
}

/* A record that can never be replayed is kept beside the spool, fsynced,
 * under a sanitised name, and the spool itself is unaffected. */
static void test_dead_letter(void **state)
{
    fx *f = *state;
    spool *s = open_ok(f->dir, 0, 0);
    kerr err = {0};
    assert_int_equal(spool_dead_letter(s, "abc/../x y", "payload", 7, "refused\nsecond line", &err),
                     0);
    char path[512];
    snprintf(path, sizeof path, "%s/dead-abc____x_y.rec", f->dir);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char got[16] = "";
    assert_int_equal(fread(got, 1, sizeof got, fp), 7);
    fclose(fp);
    assert_memory_equal(got, "payload", 7);
    spool_stats st;
    spool_stats_get(s, &st);
    assert_int_equal(st.records, 0);
    spool_close(s);
    /* reopening ignores it */
    s = open_ok(f->dir, 0, 0);
    spool_stats_get(s, &st);
    assert_int_equal(st.records, 0);

    /* Listed (without the spool's lock: a running kycd may hold it), with
     * its reason's first line; read back; removed with its reason. */
    assert_int_equal(spool_dead_letter(s, "second", "p2", 2, "", &err), 0);
    spool_dead *v = NULL;
    size_t n = 0;
    assert_int_equal(spool_dead_list(f->dir, &v, &n, &err), 0);
    assert_int_equal(n, 2);
    int first = strcmp(v[0].file, "dead-abc____x_y.rec") == 0 ? 0 : 1;
    assert_string_equal(v[first].file, "dead-abc____x_y.rec");
    assert_string_equal(v[first].reason, "refused");
    assert_int_equal(v[first].bytes, 7);
    assert_true(v[first].mtime_ms > 0);
    assert_string_equal(v[1 - first].file, "dead-second.rec");
    assert_string_equal(v[1 - first].reason, "");
    free(v);
    kbuf b;
    kbuf_init(&b);
    spool_dead info;
    assert_int_equal(spool_dead_read(path, &b, &info, &err), 0);
    assert_int_equal(b.len, 7);
    assert_memory_equal(b.data, "payload", 7);
    assert_string_equal(info.reason, "refused");
    char other[512];
    snprintf(other, sizeof other, "%s/checkpoint", f->dir);
    assert_int_equal(spool_dead_read(other, &b, &info, &err), KERR_INVALID);
    assert_int_equal(spool_dead_remove(other, &err), KERR_INVALID);
    assert_int_equal(spool_dead_remove(path, &err), 0);
    assert_int_equal(spool_dead_read(path, &b, &info, &err), KERR_NOTFOUND);
    snprintf(other, sizeof other, "%s/dead-abc____x_y.reason", f->dir);
    assert_int_equal(access(other, F_OK), -1);
    assert_int_equal(spool_dead_list(f->dir, &v, &n, &err), 0);
    assert_int_equal(n, 1);
    free(v);
    kbuf_deinit(&b);
    spool_close(s);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_record_decode),
        T(test_roundtrip_1000),
        T(test_peek_ack_misuse),
        T(test_rollover_and_delete),
        T(test_reopen),
        T(test_torn_tail_every_offset),
        T(test_corrupt_middle_record),
        T(test_corrupt_older_segment),
        T(test_stale_checkpoint),
        T(test_leftover_replayed_segment),
        T(test_max_bytes),
        T(test_readonly_dir),
        T(test_dead_letter),
        T(test_write_fails_fsize),
        T(test_two_opens),
        T(test_bad_paths),
        T(test_oldest_age),
        T(test_concurrent_append_drain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
#undef T
}
