/* The durable spool (API and file format in spool.h): segment files of
 * CRC-checked records, a checkpoint, and the recovery scan at open.
 * It must never acknowledge a record that is not fdatasync()ed, never skip
 * over corruption it cannot explain as a torn tail, and never log payloads.
 *
 * Decisions not fixed by the header:
 *  - checkpoint holds "<segment, 16 lower-case hex digits as in the file
 *    name> <offset, decimal>\n". An unreadable or malformed checkpoint (it is
 *    not fsynced, so a crash may leave it empty) is logged and treated as
 *    missing: replay restarts at the oldest segment, which only costs
 *    duplicates.
 *  - A segment is deleted as soon as it is fully replayed, the active one
 *    included: when the drainer catches up, the active segment is closed and
 *    unlinked and the next append starts a new one (with a new sequence
 *    number). Truncating the active segment to 0 and reusing it would be
 *    cheaper but unsafe: a stale checkpoint (not fsynced) would then point
 *    into records appended after the truncation and skip them.
 *  - Sequence numbers only grow: a new segment gets max(existing segments,
 *    checkpoint's segment) + 1, so a stale checkpoint never names a segment
 *    that was reused.
 *  - Rollover happens before an append, when the active segment is not empty
 *    and the record would take it past segment_bytes (a single record larger
 *    than segment_bytes gets a segment of its own).
 *  - max_bytes <= 0 means no limit.
 *  - One mutex held across write() + fdatasync(): appends are serialised,
 *    one fdatasync per record. That keeps the truncate-back on failure exact
 *    (no other append can land behind a failed one). If even that ftruncate
 *    fails, the spool refuses appends until it is reopened (the garbage then
 *    sits at the tail of the newest segment, where the open-time scan cuts
 *    it).
 *  - A failed checkpoint write during spool_ack is logged, not returned: the
 *    ack has happened (the record is committed elsewhere); a stale checkpoint
 *    costs replays after a restart, never a loss.
 *
 * Recovery (spool_open): segments older than the checkpoint's are deleted;
 * each remaining one is scanned from the checkpoint (or from 0). A record
 * that does not decode at offset X is
 *  - a torn tail, cut off with a warning, when X is in the newest segment,
 *    its header (if intact) does not end before end of file, and no valid
 *    record can be decoded anywhere after X;
 *  - otherwise corruption: spool_open fails with KERR_INVALID naming the
 *    file and the offset. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* flock, fdatasync, O_CLOEXEC outside the CMake build (fuzzer) */
#endif

#include "io/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/crc32c.h"
#include "base/log.h"

#define REC_HDR 12
#define REC_MAX_PAYLOAD ((size_t)16 * 1024 * 1024)
#define DEFAULT_SEGMENT_BYTES ((int64_t)4 * 1024 * 1024)
#define SEG_NAME_LEN 24 /* "seg-" + 16 hex + ".log" */

static const unsigned char rec_magic[4] = {'K', 'Y', 'S', '1'};

typedef struct seg {
    uint64_t seq;
    int64_t size;
} seg;

/* Append times of unacknowledged records, run-length encoded (many records
 * share a millisecond, and all records found at open share their segment's
 * mtime), oldest first. */
typedef struct age_run {
    int64_t t_ms;
    int64_t n;
} age_run;

struct spool {
    pthread_mutex_t mu;
    char *dir;
    int dirfd;
    int lockfd;
    int64_t max_bytes;
    int64_t segment_bytes;

    /* Segments on disk, oldest first: segs[0] is being replayed (from roff),
     * segs[nsegs - 1] is the active one, open as wfd. nsegs == 0 iff wfd < 0. */
    seg *segs;
    size_t nsegs, capsegs;
    int wfd;
    int rfd; /* segs[0] opened for reading, -1 until needed */
    uint64_t rfd_seq;
    int64_t roff;
    int64_t peek_next; /* end of the record(s) spool_peek(_many) returned at roff; -1 if none */
    int peek_count;    /* how many records that was */
    uint64_t next_seq;

    int64_t records;
    int64_t bytes;
    bool broken; /* a failed append could not be truncated back */

    age_run *ages;
    size_t ages_head, ages_len, ages_cap;
};

/* ---- helpers */

static void seg_name(char out[SEG_NAME_LEN + 1], uint64_t seq)
{
    snprintf(out, SEG_NAME_LEN + 1, "seg-%016" PRIx64 ".log", seq);
}

static bool seg_parse(const char *name, uint64_t *seq)
{
    if (strlen(name) != SEG_NAME_LEN || memcmp(name, "seg-", 4) != 0 ||
        memcmp(name + 20, ".log", 4) != 0)
        return false;
    /* upper case is not ours either */
    return bytes_hex_parse(name + 4, 16, seq);
}

/* "<dir>/<name>" for messages. */
static const char *seg_path(const spool *s, uint64_t seq, char *buf, size_t n)
{
    char name[SEG_NAME_LEN + 1];
    seg_name(name, seq);
    snprintf(buf, n, "%s/%s", s->dir, name);
    return buf;
}

static int pread_full(int fd, void *buf, size_t n, int64_t off)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0) {
            errno = EIO; /* the file is shorter than our bookkeeping says */
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += r;
    }
    return 0;
}

static int segs_reserve(spool *s, size_t extra)
{
    if (s->nsegs + extra <= s->capsegs)
        return 0;
    size_t cap = s->capsegs ? s->capsegs * 2 : 16;
    while (cap < s->nsegs + extra)
        cap *= 2;
    seg *p = realloc(s->segs, cap * sizeof *p);
    if (p == NULL)
        return KERR_NOMEM;
    s->segs = p;
    s->capsegs = cap;
    return 0;
}

static void ages_push(spool *s, int64_t t_ms, int64_t n)
{
    if (n <= 0)
        return;
    if (s->ages_len > 0) {
        age_run *last = &s->ages[s->ages_head + s->ages_len - 1];
        if (last->t_ms == t_ms) {
            last->n += n;
            return;
        }
    }
    if (s->ages_head + s->ages_len == s->ages_cap) {
        if (s->ages_head > 0) {
            memmove(s->ages, s->ages + s->ages_head, s->ages_len * sizeof *s->ages);
            s->ages_head = 0;
        } else {
            age_run *p = realloc(s->ages, s->ages_cap * 2 * sizeof *p);
            if (p == NULL) {
                /* The record is already durable; failing now would lie. Count it
                 * in the newest run instead (its age is then over-reported
                 * a little). ages_cap >= 1 from spool_open, and a full array
                 * is not empty, so there is a newest run. */
                s->ages[s->ages_head + s->ages_len - 1].n += n;
                return;
            }
            s->ages = p;
            s->ages_cap *= 2;
        }
    }
    s->ages[s->ages_head + s->ages_len] = (age_run){t_ms, n};
    s->ages_len++;
}

static void ages_pop(spool *s)
{
    if (s->ages_len == 0)
        return;
    if (--s->ages[s->ages_head].n > 0)
        return;
    s->ages_head++;
    if (--s->ages_len == 0)
        s->ages_head = 0;
}

/* ---- record format */

int spool_record_decode(const unsigned char *buf, size_t len, const unsigned char **payload,
                        size_t *payload_len, size_t *used)
{
    if (len == 0 || buf == NULL)
        return KERR_NOTFOUND;
    /* A prefix that already disagrees with the magic is garbage, not torn. */
    if (memcmp(buf, rec_magic, len < 4 ? len : 4) != 0)
        return KERR_INVALID;
    if (len < REC_HDR)
        return KERR_NOTFOUND;
    uint32_t n = bytes_get_le32(buf + 4);
    if (n > REC_MAX_PAYLOAD)
        return KERR_TOOBIG;
    if (len - REC_HDR < n)
        return KERR_NOTFOUND;
    if (crc32c(0, buf + REC_HDR, n) != bytes_get_le32(buf + 8))
        return KERR_INVALID;
    if (payload)
        *payload = buf + REC_HDR;
    if (payload_len)
        *payload_len = n;
    if (used)
        *used = REC_HDR + (size_t)n;
    return 0;
}

static const char *decode_reason(int rc)
{
    switch (rc) {
    case KERR_NOTFOUND:
        return "short record";
    case KERR_TOOBIG:
        return "absurd record length";
    default:
        return "bad magic or crc";
    }
}

/* A record failed to decode at x in the newest segment: is it a torn tail
 * (the last, interrupted append) or corruption? Torn only if its header, when
 * intact, does not end before end of file and nothing after x decodes. */
static bool tail_is_corrupt(const unsigned char *map, size_t size, size_t x)
{
    const unsigned char *p = map + x;
    size_t rest = size - x;
    if (rest >= REC_HDR && memcmp(p, rec_magic, 4) == 0) {
        uint32_t n = bytes_get_le32(p + 4);
        if (n <= REC_MAX_PAYLOAD && (size_t)n < rest - REC_HDR)
            return true; /* a whole record with more data behind it */
    }
    for (size_t y = x + 1; y + REC_HDR <= size; y++) {
        if (map[y] == rec_magic[0] && spool_record_decode(map + y, size - y, NULL, NULL, NULL) == 0)
            return true;
    }
    return false;
}

/* ---- checkpoint */

static int checkpoint_write(spool *s, uint64_t seq, int64_t off, kerr *err)
{
    char line[64];
    int n = snprintf(line, sizeof line, "%016" PRIx64 " %" PRId64 "\n", seq, off);
    int fd = openat(s->dirfd, "checkpoint.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return kerr_set(err, KERR_IO, "spool: creating %s/checkpoint.tmp: %s", s->dir,
                        strerror(errno));
    ssize_t w;
    do
        w = write(fd, line, (size_t)n);
    while (w < 0 && errno == EINTR);
    int e = w < 0 ? errno : (w != n ? ENOSPC : 0);
    if (close(fd) != 0 && e == 0)
        e = errno;
    if (e == 0 && renameat(s->dirfd, "checkpoint.tmp", s->dirfd, "checkpoint") != 0)
        e = errno;
    if (e != 0)
        return kerr_set(err, KERR_IO, "spool: writing %s/checkpoint: %s", s->dir, strerror(e));
    return 0;
}

/* The replay position as it should be recorded now. */
static int checkpoint_save(spool *s, kerr *err)
{
    if (s->nsegs > 0)
        return checkpoint_write(s, s->segs[0].seq, s->roff, err);
    return checkpoint_write(s, s->next_seq, 0, err);
}

/* *have = false when missing or malformed (logged). */
static int checkpoint_read(spool *s, bool *have, uint64_t *seq, int64_t *off, kerr *err)
{
    *have = false;
    int fd = openat(s->dirfd, "checkpoint", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return kerr_set(err, KERR_IO, "spool: opening %s/checkpoint: %s", s->dir, strerror(errno));
    }
    char buf[64];
    ssize_t n;
    do
        n = read(fd, buf, sizeof buf - 1);
    while (n < 0 && errno == EINTR);
    int e = errno;
    close(fd);
    if (n < 0)
        return kerr_set(err, KERR_IO, "spool: reading %s/checkpoint: %s", s->dir, strerror(e));
    buf[n] = '\0';

    /* exactly: 16 hex digits, one space, 1..18 decimal digits, "\n" */
    uint64_t sq = 0;
    int64_t of = 0;
    bool ok = n >= 19 && buf[16] == ' ' && bytes_hex_parse(buf, 16, &sq);
    int i = 17;
    for (; ok && i < n && buf[i] >= '0' && buf[i] <= '9'; i++) {
        if (i - 17 >= 18)
            ok = false;
        else
            of = of * 10 + (buf[i] - '0');
    }
    ok = ok && i > 17 && i == n - 1 && buf[i] == '\n';
    if (!ok) {
        char path[4200];
        snprintf(path, sizeof path, "%s/checkpoint", s->dir);
        klog(KLOG_WARN, "spool checkpoint unreadable, replaying from the oldest segment",
             KLOG_STR("file", path));
        return 0;
    }
    *have = true;
    *seq = sq;
    *off = of;
    return 0;
}

/* ---- open and recovery */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int list_segments(spool *s, uint64_t **out, size_t *count, kerr *err)
{
    int rc = 0;
    uint64_t *v = NULL;
    size_t n = 0, cap = 0;
    int fd = dup(s->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        rc = kerr_set(err, KERR_IO, "spool: listing %s: %s", s->dir, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto out;
    }
    rewinddir(d);
    struct dirent *de;
    for (;;) {
        errno = 0;
        de = readdir(d);
        if (de == NULL) {
            if (errno != 0)
                rc = kerr_set(err, KERR_IO, "spool: listing %s: %s", s->dir, strerror(errno));
            break;
        }
        uint64_t seq;
        if (!seg_parse(de->d_name, &seq))
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            uint64_t *p = realloc(v, nc * sizeof *p);
            if (p == NULL) {
                rc = kerr_set(err, KERR_NOMEM, "spool: out of memory listing %s", s->dir);
                break;
            }
            v = p;
            cap = nc;
        }
        v[n++] = seq;
    }
    closedir(d);
    if (rc == 0) {
        if (n > 1)
            qsort(v, n, sizeof *v, cmp_u64);
        *out = v;
        *count = n;
        v = NULL;
    }
out:
    free(v);
    return rc;
}

/* Scan one segment from start: count records, cut a torn tail (newest
 * segment only). On success *size is the segment's (possibly cut) size. */
static int scan_segment(spool *s, int fd, uint64_t seq, int64_t start, bool newest,
                        int64_t *records, int64_t *size, int64_t *mtime_ms, kerr *err)
{
    char path[4200];
    seg_path(s, seq, path, sizeof path);
    struct stat st;
    if (fstat(fd, &st) != 0)
        return kerr_set(err, KERR_IO, "spool: stat %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return kerr_set(err, KERR_INVALID, "spool: %s is not a regular file", path);
    int64_t fsize = (int64_t)st.st_size;
    if (start > fsize)
        return kerr_set(err, KERR_INVALID,
                        "spool: checkpoint offset %" PRId64 " is beyond the end of %s (%" PRId64
                        " bytes)",
                        start, path, fsize);
    *mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    int64_t count = 0;
    if (start == fsize) {
        *records = 0;
        *size = fsize;
        return 0;
    }
    if ((uint64_t)fsize > (uint64_t)SIZE_MAX)
        return kerr_set(err, KERR_INVALID, "spool: %s is too large to scan", path);
    size_t len = (size_t)fsize;
    unsigned char *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED)
        return kerr_set(err, KERR_IO, "spool: mapping %s: %s", path, strerror(errno));

    int rc = 0;
    size_t x = (size_t)start;
    while (x < len) {
        size_t used = 0;
        int drc = spool_record_decode(map + x, len - x, NULL, NULL, &used);
        if (drc == 0) {
            count++;
            x += used;
            continue;
        }
        if (!newest) {
            rc = kerr_set(err, KERR_INVALID,
                          "spool: corrupt record in %s at offset %zu (%s) in a segment that is "
                          "not the newest; refusing to guess",
                          path, x, decode_reason(drc));
        } else if (tail_is_corrupt(map, len, x)) {
            rc = kerr_set(err, KERR_INVALID,
                          "spool: corrupt record in %s at offset %zu (%s) followed by more data; "
                          "refusing to guess",
                          path, x, decode_reason(drc));
        } else {
            /* A torn tail was never acknowledged: cut it, durably, before
             * anything is appended behind it. */
            if (ftruncate(fd, (off_t)x) != 0 || fdatasync(fd) != 0) {
                rc = kerr_set(err, KERR_IO, "spool: cutting the torn tail of %s at offset %zu: %s",
                              path, x, strerror(errno));
            } else {
                klog(KLOG_WARN, "spool cut a torn tail", KLOG_STR("file", path),
                     KLOG_INT("offset", (long long)x), KLOG_INT("bytes", (long long)(len - x)),
                     KLOG_STR("reason", decode_reason(drc)));
                fsize = (int64_t)x;
            }
        }
        break;
    }
    munmap(map, len);
    if (rc == 0) {
        *records = count;
        *size = fsize;
    }
    return rc;
}

/* Fsync the directory that holds path (a new entry in it must survive). */
static int fsync_parent(const char *path, kerr *err)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return kerr_set(err, KERR_NOMEM, "spool: out of memory");
    char *slash = strrchr(copy, '/');
    const char *parent = ".";
    if (slash == copy)
        parent = "/";
    else if (slash != NULL) {
        *slash = '\0';
        parent = copy;
    }
    int rc = 0;
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        rc = kerr_set(err, KERR_IO, "spool: fsync of %s: %s", parent, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(copy);
    return rc;
}

static int open_dir(spool *s, kerr *err)
{
    bool created = false;
    if (mkdir(s->dir, 0700) == 0)
        created = true;
    else if (errno != EEXIST)
        return kerr_set(err, KERR_IO, "spool: creating directory %s: %s", s->dir, strerror(errno));
    struct stat st;
    if (stat(s->dir, &st) != 0)
        return kerr_set(err, KERR_IO, "spool: stat %s: %s", s->dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return kerr_set(err, KERR_INVALID, "spool: %s is not a directory", s->dir);
    s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0)
        return kerr_set(err, KERR_IO, "spool: opening directory %s: %s", s->dir, strerror(errno));
    if (created) {
        int rc = fsync_parent(s->dir, err);
        if (rc != 0)
            return rc;
    }
    s->lockfd = openat(s->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (s->lockfd < 0)
        return kerr_set(err, KERR_IO, "spool: opening %s/lock: %s", s->dir, strerror(errno));
    if (flock(s->lockfd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            return kerr_set(err, KERR_STATE,
                            "spool: directory %s is in use by another kycd (lock held)", s->dir);
        return kerr_set(err, KERR_IO, "spool: locking %s/lock: %s", s->dir, strerror(errno));
    }
    return 0;
}

/* Drop fully replayed segments from the front; the active one too, when it
 * is fully replayed (see the top of this file). Unlink failures are logged:
 * a leftover segment older than the checkpoint is deleted at the next open. */
static void retire_replayed(spool *s)
{
    while (s->nsegs > 0 && s->roff >= s->segs[0].size) {
        uint64_t seq = s->segs[0].seq;
        if (s->nsegs == 1 && s->records != 0)
            break; /* cannot happen: bookkeeping says records remain */
        if (s->rfd >= 0 && s->rfd_seq == seq) {
            close(s->rfd);
            s->rfd = -1;
        }
        if (s->nsegs == 1) {
            close(s->wfd);
            s->wfd = -1;
        }
        char name[SEG_NAME_LEN + 1], path[4200];
        seg_name(name, seq);
        if (unlinkat(s->dirfd, name, 0) != 0) {
            const char *why = strerror(errno); /* before seg_path may touch errno */
            klog(KLOG_WARN, "spool could not delete a replayed segment",
                 KLOG_STR("file", seg_path(s, seq, path, sizeof path)), KLOG_STR("error", why));
        }
        s->bytes -= s->segs[0].size;
        memmove(s->segs, s->segs + 1, (s->nsegs - 1) * sizeof *s->segs);
        s->nsegs--;
        s->roff = 0;
        s->peek_next = -1;
    }
}

static int recover(spool *s, kerr *err)
{
    bool have_cp;
    uint64_t cp_seq = 0;
    int64_t cp_off = 0;
    uint64_t *seqs = NULL;
    size_t n = 0;
    int fd = -1;
    int rc = checkpoint_read(s, &have_cp, &cp_seq, &cp_off, err);
    if (rc != 0)
        goto out;
    rc = list_segments(s, &seqs, &n, err);
    if (rc != 0)
        goto out;

    uint64_t max_seq = have_cp ? cp_seq : 0;
    size_t first = 0;
    for (size_t i = 0; i < n; i++) {
        if (seqs[i] > max_seq)
            max_seq = seqs[i];
        if (have_cp && seqs[i] < cp_seq) {
            char name[SEG_NAME_LEN + 1], path[4200];
            seg_name(name, seqs[i]);
            if (unlinkat(s->dirfd, name, 0) != 0) {
                const char *why = strerror(errno); /* before seg_path may touch errno */
                klog(KLOG_WARN, "spool could not delete a replayed segment",
                     KLOG_STR("file", seg_path(s, seqs[i], path, sizeof path)),
                     KLOG_STR("error", why));
            }
            first = i + 1;
        }
    }
    s->next_seq = max_seq + 1;
    if (s->next_seq == 0)
        rc = kerr_set(err, KERR_INVALID, "spool: segment numbers in %s are exhausted", s->dir);
    if (rc == 0 && segs_reserve(s, n - first) != 0)
        rc = kerr_set(err, KERR_NOMEM, "spool: out of memory");
    if (rc != 0)
        goto out;

    for (size_t i = first; i < n; i++) {
        bool newest = (i == n - 1);
        int64_t start = (have_cp && seqs[i] == cp_seq) ? cp_off : 0;
        char name[SEG_NAME_LEN + 1];
        seg_name(name, seqs[i]);
        fd = openat(s->dirfd, name,
                    (newest ? O_RDWR | O_APPEND : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
            rc = kerr_set(err, KERR_IO, "spool: opening %s/%s: %s", s->dir, name, strerror(errno));
            goto out;
        }
        int64_t count = 0, size = 0, mtime = 0;
        rc = scan_segment(s, fd, seqs[i], start, newest, &count, &size, &mtime, err);
        if (rc != 0)
            goto out;
        if (i == first)
            s->roff = start;
        s->segs[s->nsegs++] = (seg){seqs[i], size};
        s->records += count;
        s->bytes += size;
        ages_push(s, mtime, count);
        if (newest) {
            s->wfd = fd;
        } else {
            close(fd);
        }
        fd = -1;
    }
    retire_replayed(s);
    kerr cerr;
    if (checkpoint_save(s, &cerr) != 0)
        klog(KLOG_WARN, "spool checkpoint not written", KLOG_STR("error", cerr.msg));
out:
    if (fd >= 0)
        close(fd);
    free(seqs);
    return rc;
}

int spool_open(spool **out, const spool_opts *o, kerr *err)
{
    if (o == NULL || o->dir == NULL || o->dir[0] == '\0')
        return kerr_set(err, KERR_INVALID, "spool: no directory given");
    if (o->segment_bytes < 0)
        return kerr_set(err, KERR_INVALID, "spool: segment_bytes must not be negative");
    if (strlen(o->dir) > 4000)
        return kerr_set(err, KERR_INVALID, "spool: directory name too long");
    spool *s = calloc(1, sizeof *s);
    if (s == NULL)
        return kerr_set(err, KERR_NOMEM, "spool: out of memory");
    s->dirfd = s->lockfd = s->wfd = s->rfd = -1;
    s->peek_next = -1;
    s->max_bytes = o->max_bytes;
    s->segment_bytes = o->segment_bytes ? o->segment_bytes : DEFAULT_SEGMENT_BYTES;
    pthread_mutex_init(&s->mu, NULL);
    int rc;
    s->dir = strdup(o->dir);
    s->ages_cap = 64;
    s->ages = malloc(s->ages_cap * sizeof *s->ages);
    if (s->dir == NULL || s->ages == NULL) {
        rc = kerr_set(err, KERR_NOMEM, "spool: out of memory");
        goto fail;
    }
    rc = open_dir(s, err);
    if (rc == 0)
        rc = recover(s, err);
    if (rc != 0)
        goto fail;
    *out = s;
    return 0;
fail:
    spool_close(s);
    return rc;
}

void spool_close(spool *s)
{
    if (s == NULL)
        return;
    if (s->rfd >= 0)
        close(s->rfd);
    if (s->wfd >= 0)
        close(s->wfd);
    if (s->lockfd >= 0)
        close(s->lockfd); /* releases the flock */
    if (s->dirfd >= 0)
        close(s->dirfd);
    pthread_mutex_destroy(&s->mu);
    free(s->ages);
    free(s->segs);
    free(s->dir);
    free(s);
}

/* ---- append */

/* Start segment next_seq and make it the active one; its directory entry is
 * fsynced, or the segment is removed again. */
static int new_segment(spool *s, kerr *err)
{
    char name[SEG_NAME_LEN + 1];
    char path[4200];
    seg_name(name, s->next_seq);
    seg_path(s, s->next_seq, path, sizeof path);
    if (segs_reserve(s, 1) != 0)
        return kerr_set(err, KERR_NOMEM, "spool: out of memory");
    int fd = openat(s->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
                    0600);
    if (fd < 0)
        return kerr_set(err, KERR_IO, "spool: creating %s: %s", path, strerror(errno));
    if (fsync(s->dirfd) != 0) {
        int e = errno;
        close(fd);
        unlinkat(s->dirfd, name, 0);
        return kerr_set(err, KERR_IO, "spool: fsync of directory %s: %s", s->dir, strerror(e));
    }
    if (s->wfd >= 0)
        close(s->wfd);
    s->wfd = fd;
    if (s->nsegs == 0)
        s->roff = 0;
    s->segs[s->nsegs++] = (seg){s->next_seq, 0};
    s->next_seq++;
    return 0;
}

int spool_append(spool *s, const void *payload, size_t len, kerr *err)
{
    if (s == NULL || (payload == NULL && len > 0))
        return kerr_set(err, KERR_INVALID, "spool_append: no payload");
    if (len > REC_MAX_PAYLOAD)
        return kerr_set(err, KERR_INVALID, "spool: a record of %zu bytes exceeds the 16 MiB limit",
                        len);
    size_t reclen = REC_HDR + len;
    unsigned char *rec = malloc(reclen);
    if (rec == NULL)
        return kerr_set(err, KERR_NOMEM, "spool: out of memory");
    memcpy(rec, rec_magic, 4);
    bytes_put_le32(rec + 4, (uint32_t)len);
    bytes_put_le32(rec + 8, crc32c(0, payload, len));
    if (len)
        memcpy(rec + REC_HDR, payload, len);

    int rc = 0;
    pthread_mutex_lock(&s->mu);
    if (s->broken) {
        rc = kerr_set(err, KERR_IO,
                      "spool: appends to %s are disabled after a failed truncate; reopen it",
                      s->dir);
        goto out;
    }
    if (s->max_bytes > 0 && s->bytes + (int64_t)reclen > s->max_bytes) {
        rc = kerr_set(err, KERR_TOOBIG,
                      "spool: %s is full (%" PRId64 " of %" PRId64 " bytes; record needs %zu)",
                      s->dir, s->bytes, s->max_bytes, reclen);
        goto out;
    }
    if (s->wfd < 0 || (s->segs[s->nsegs - 1].size > 0 &&
                       s->segs[s->nsegs - 1].size + (int64_t)reclen > s->segment_bytes)) {
        rc = new_segment(s, err);
        if (rc != 0)
            goto out;
    }
    seg *act = &s->segs[s->nsegs - 1];
    size_t done = 0;
    int e = 0;
    while (done < reclen) {
        ssize_t w = write(s->wfd, rec + done, reclen - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            e = errno;
            break;
        }
        if (w == 0) {
            e = ENOSPC; /* a regular file that takes nothing: treat as full */
            break;
        }
        done += (size_t)w;
    }
    if (e == 0 && fdatasync(s->wfd) != 0)
        e = errno; /* the record is NOT written: cut it like a failed write */
    if (e != 0) {
        char path[4200];
        seg_path(s, act->seq, path, sizeof path);
        if (ftruncate(s->wfd, (off_t)act->size) != 0) {
            s->broken = true;
            klog(KLOG_ERROR, "spool could not cut a failed append; appends disabled",
                 KLOG_STR("file", path), KLOG_INT("offset", act->size),
                 KLOG_STR("error", strerror(errno)));
        }
        rc = kerr_set(err, KERR_IO, "spool: appending to %s: %s", path, strerror(e));
        goto out;
    }
    act->size += (int64_t)reclen;
    s->bytes += (int64_t)reclen;
    s->records++;
    ages_push(s, clock_wall_ms(), 1);
out:
    pthread_mutex_unlock(&s->mu);
    free(rec);
    return rc;
}

/* ---- replay */

/* Read the record at offset off of the oldest segment into out. Called
 * with the mutex held. */
static int read_oldest_at(spool *s, int64_t off, kbuf *out, spool_pos *pos, kerr *err)
{
    int rc = 0;
    kbuf tmp;
    kbuf_init(&tmp);
    char path[4200];
    if (s->nsegs == 0 || off >= s->segs[0].size) {
        rc = kerr_set(err, KERR_STATE, "spool: %" PRId64 " records counted but none found",
                      s->records);
        goto out;
    }
    seg *sg = &s->segs[0];
    seg_path(s, sg->seq, path, sizeof path);
    if (s->rfd < 0 || s->rfd_seq != sg->seq) {
        if (s->rfd >= 0)
            close(s->rfd);
        char name[SEG_NAME_LEN + 1];
        seg_name(name, sg->seq);
        s->rfd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (s->rfd < 0) {
            rc = kerr_set(err, KERR_IO, "spool: opening %s: %s", path, strerror(errno));
            goto out;
        }
        s->rfd_seq = sg->seq;
    }
    unsigned char hdr[REC_HDR];
    if (sg->size - off < REC_HDR || pread_full(s->rfd, hdr, REC_HDR, off) != 0) {
        rc = kerr_set(err, KERR_IO, "spool: reading %s at offset %" PRId64 ": %s", path, off,
                      sg->size - off < REC_HDR ? "short record" : strerror(errno));
        goto out;
    }
    uint32_t n = bytes_get_le32(hdr + 4);
    if (memcmp(hdr, rec_magic, 4) != 0 || n > REC_MAX_PAYLOAD ||
        (int64_t)n > sg->size - off - REC_HDR) {
        rc = kerr_set(err, KERR_INVALID, "spool: corrupt record header in %s at offset %" PRId64,
                      path, off);
        goto out;
    }
    size_t reclen = REC_HDR + (size_t)n;
    if (kbuf_reserve(&tmp, reclen) != 0) {
        rc = kerr_set(err, KERR_NOMEM, "spool: out of memory");
        goto out;
    }
    memcpy(tmp.data, hdr, REC_HDR);
    if (n > 0 && pread_full(s->rfd, tmp.data + REC_HDR, n, off + REC_HDR) != 0) {
        rc = kerr_set(err, KERR_IO, "spool: reading %s at offset %" PRId64 ": %s", path, off,
                      strerror(errno));
        goto out;
    }
    /* The bytes were checked at append or open; check again, the disk may lie. */
    if (spool_record_decode((const unsigned char *)tmp.data, reclen, NULL, NULL, NULL) != 0) {
        rc = kerr_set(err, KERR_INVALID, "spool: corrupt record (crc) in %s at offset %" PRId64,
                      path, off);
        goto out;
    }
    memmove(tmp.data, tmp.data + REC_HDR, n);
    tmp.len = n;
    tmp.data[n] = '\0';
    kbuf_deinit(out);
    *out = tmp;
    kbuf_init(&tmp);
    pos->segment = sg->seq;
    pos->offset = off;
    pos->next = off + (int64_t)reclen;
out:
    kbuf_deinit(&tmp);
    return rc;
}

int spool_peek(spool *s, kbuf *out, spool_pos *pos, kerr *err)
{
    int rc;
    pthread_mutex_lock(&s->mu);
    if (s->records == 0) {
        rc = kerr_set(err, KERR_NOTFOUND, "spool: empty");
    } else if ((rc = read_oldest_at(s, s->roff, out, pos, err)) == 0) {
        s->peek_next = pos->next;
        s->peek_count = 1;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int spool_peek_many(spool *s, kbuf *out, int max, int *n, spool_pos *span, kerr *err)
{
    int rc = 0;
    *n = 0;
    pthread_mutex_lock(&s->mu);
    if (s->records == 0) {
        rc = kerr_set(err, KERR_NOTFOUND, "spool: empty");
        goto out;
    }
    int64_t off = s->roff;
    spool_pos pos = {0};
    while (*n < max && *n < s->records && (*n == 0 || off < s->segs[0].size)) {
        if ((rc = read_oldest_at(s, off, &out[*n], &pos, err)) != 0)
            break;
        off = pos.next;
        (*n)++;
    }
    if (*n == 0)
        goto out;
    rc = 0; /* what was read before a bad record is returned; the bad one comes first next time */
    span->segment = s->segs[0].seq;
    span->offset = s->roff;
    span->next = off;
    s->peek_next = off;
    s->peek_count = *n;
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* spool_ack and spool_ack_many: the records must be the n that the last
 * peek returned, at the read position. */
static int ack_span(spool *s, const spool_pos *span, int n, kerr *err)
{
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    if (span == NULL || n <= 0 || s->records < n || s->nsegs == 0 ||
        span->segment != s->segs[0].seq || span->offset != s->roff || s->peek_next < 0 ||
        span->next != s->peek_next || n != s->peek_count) {
        rc = kerr_set(err, KERR_STATE,
                      "spool ack: position %016" PRIx64 ":%" PRId64
                      " is not where the last peek read %d record%s",
                      span ? span->segment : 0, span ? span->offset : (int64_t)-1, n,
                      n == 1 ? "" : "s");
        goto out;
    }
    s->roff = span->next;
    s->peek_next = -1;
    s->records -= n;
    for (int i = 0; i < n; i++)
        ages_pop(s);
    retire_replayed(s);
    kerr cerr;
    if (checkpoint_save(s, &cerr) != 0)
        klog(KLOG_WARN, "spool checkpoint not written; records may be replayed after a restart",
             KLOG_STR("error", cerr.msg));
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int spool_ack(spool *s, const spool_pos *pos, kerr *err)
{
    return ack_span(s, pos, 1, err);
}

int spool_ack_many(spool *s, const spool_pos *span, int n, kerr *err)
{
    return ack_span(s, span, n, err);
}

void spool_stats_get(spool *s, spool_stats *out)
{
    pthread_mutex_lock(&s->mu);
    out->records = s->records;
    out->bytes = s->bytes;
    out->segments = (int)s->nsegs;
    out->room = s->max_bytes > 0 ? (s->max_bytes > s->bytes ? s->max_bytes - s->bytes : 0) : -1;
    out->oldest_age_ms = 0;
    if (s->records > 0 && s->ages_len > 0) {
        int64_t age = clock_wall_ms() - s->ages[s->ages_head].t_ms;
        out->oldest_age_ms = age > 0 ? age : 0; /* the wall clock may step back */
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---- dead letters */

#define DEAD_PREFIX "dead-"
#define DEAD_SUFFIX ".rec"
#define DEAD_REASON_SUFFIX ".reason"

/* dead-<name>.rec -> dead-<name>.reason, or 0 when `rec` is not a dead
 * letter's file name. */
static int dead_reason_name(const char *rec, char *out, size_t cap)
{
    size_t n = strlen(rec), p = strlen(DEAD_PREFIX), x = strlen(DEAD_SUFFIX);
    if (n <= p + x || strncmp(rec, DEAD_PREFIX, p) != 0 || strcmp(rec + n - x, DEAD_SUFFIX) != 0 ||
        strchr(rec, '/') != NULL)
        return 0;
    return snprintf(out, cap, "%.*s%s", (int)(n - x), rec, DEAD_REASON_SUFFIX) < (int)cap;
}

/* Write a whole file in dirfd and fsync it (not the directory). */
static int write_file_at(int dirfd, const char *dir, const char *file, const void *data, size_t len,
                         kerr *err)
{
    int fd = openat(dirfd, file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return kerr_set(err, KERR_IO, "cannot create %s/%s: %s", dir, file, strerror(errno));
    int rc = 0;
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = kerr_set(err, KERR_IO, "cannot write %s/%s: %s", dir, file, strerror(errno));
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = kerr_set(err, KERR_IO, "cannot fsync %s/%s: %s", dir, file, strerror(errno));
    close(fd);
    return rc;
}

int spool_dead_letter(spool *s, const char *name, const void *payload, size_t len,
                      const char *reason, kerr *err)
{
    char file[160], why[180];
    size_t n = (size_t)snprintf(file, sizeof file, DEAD_PREFIX);
    for (const char *p = name; *p && n + 8 < sizeof file; p++) {
        char c = *p;
        int ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 c == '-' || c == '_';
        file[n++] = ok ? c : '_';
    }
    snprintf(file + n, sizeof file - n, DEAD_SUFFIX);
    if (!dead_reason_name(file, why, sizeof why))
        return kerr_set(err, KERR_INVALID, "bad dead letter name %s", file);
    /* The reason first: a .rec is never without its .reason. One line. */
    char line[sizeof((kerr *)0)->msg + 2];
    snprintf(line, sizeof line, "%s", reason ? reason : "");
    line[strcspn(line, "\r\n")] = '\0';
    strcat(line, "\n");
    pthread_mutex_lock(&s->mu);
    int rc = write_file_at(s->dirfd, s->dir, why, line, strlen(line), err);
    if (rc == 0)
        rc = write_file_at(s->dirfd, s->dir, file, payload, len, err);
    if (rc == 0 && fsync(s->dirfd) != 0)
        rc = kerr_set(err, KERR_IO, "cannot fsync %s: %s", s->dir, strerror(errno));
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Read a small file whole into out (replacing its contents). */
static int read_file(const char *path, kbuf *out, size_t max, kerr *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return kerr_set(err, errno == ENOENT ? KERR_NOTFOUND : KERR_IO, "cannot open %s: %s", path,
                        strerror(errno));
    kbuf_reset(out);
    int rc = 0;
    for (;;) {
        if ((rc = kbuf_reserve(out, 65536)) != 0) {
            rc = kerr_set(err, KERR_NOMEM, "out of memory reading %s", path);
            break;
        }
        ssize_t r = read(fd, out->data + out->len, 65536);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = kerr_set(err, KERR_IO, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        if (r == 0)
            break;
        out->len += (size_t)r;
        out->data[out->len] = '\0';
        if (out->len > max) {
            rc = kerr_set(err, KERR_TOOBIG, "%s is larger than %zu bytes", path, max);
            break;
        }
    }
    close(fd);
    return rc;
}

/* path's folder (into dir) and file name (a pointer into path). */
static const char *split_path(const char *path, char *dir, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(dir, cap, ".");
        return path;
    }
    snprintf(dir, cap, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    return slash + 1;
}

int spool_dead_read(const char *path, kbuf *payload, spool_dead *info, kerr *err)
{
    char dir[4096], why[180], whypath[4352];
    const char *file = split_path(path, dir, sizeof dir);
    if (!dead_reason_name(file, why, sizeof why))
        return kerr_set(err, KERR_INVALID, "%s is not a dead letter (dead-<request id>.rec)", path);
    struct stat st;
    if (stat(path, &st) != 0)
        return kerr_set(err, errno == ENOENT ? KERR_NOTFOUND : KERR_IO, "cannot stat %s: %s", path,
                        strerror(errno));
    int rc = payload ? read_file(path, payload, REC_MAX_PAYLOAD, err) : 0;
    if (rc != 0)
        return rc;
    memset(info, 0, sizeof *info);
    snprintf(info->file, sizeof info->file, "%s", file);
    info->mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    info->bytes = (int64_t)st.st_size;
    snprintf(whypath, sizeof whypath, "%s/%s", dir, why);
    kbuf r;
    kbuf_init(&r);
    kerr ignored;
    if (read_file(whypath, &r, 64 * 1024, &ignored) == 0) { /* none: written before reasons */
        size_t m = 0;
        while (m < r.len && r.data[m] != '\n')
            m++;
        snprintf(info->reason, sizeof info->reason, "%.*s", (int)m, m ? (const char *)r.data : "");
    }
    kbuf_deinit(&r);
    return 0;
}

static int cmp_dead(const void *a, const void *b)
{
    const spool_dead *x = a, *y = b;
    if (x->mtime_ms != y->mtime_ms)
        return x->mtime_ms < y->mtime_ms ? -1 : 1;
    return strcmp(x->file, y->file);
}

int spool_dead_list(const char *dir, spool_dead **out, size_t *count, kerr *err)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return kerr_set(err, errno == ENOENT ? KERR_NOTFOUND : KERR_IO, "cannot open %s: %s", dir,
                        strerror(errno));
    spool_dead *v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char why[180], path[4352];
        if (!dead_reason_name(e->d_name, why, sizeof why))
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            spool_dead *nv = realloc(v, nc * sizeof *nv);
            if (nv == NULL) {
                rc = kerr_set(err, KERR_NOMEM, "out of memory");
                break;
            }
            v = nv, cap = nc;
        }
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        kerr one;
        if (spool_dead_read(path, NULL, &v[n], &one) != 0)
            continue; /* removed meanwhile (replayed) */
        n++;
    }
    closedir(d);
    if (rc != 0) {
        free(v);
        return rc;
    }
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_dead);
    *out = v;
    *count = n;
    return 0;
}

int spool_dead_remove(const char *path, kerr *err)
{
    char dir[4096], why[180], whypath[4352];
    const char *file = split_path(path, dir, sizeof dir);
    if (!dead_reason_name(file, why, sizeof why))
        return kerr_set(err, KERR_INVALID, "%s is not a dead letter (dead-<request id>.rec)", path);
    if (unlink(path) != 0)
        return kerr_set(err, KERR_IO, "cannot remove %s: %s", path, strerror(errno));
    snprintf(whypath, sizeof whypath, "%s/%s", dir, why);
    if (unlink(whypath) != 0 && errno != ENOENT)
        return kerr_set(err, KERR_IO, "cannot remove %s: %s", whypath, strerror(errno));
    return fsync_parent(path, err);
}
