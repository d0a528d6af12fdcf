/* The spool's segment files: their names, the directory and its lock, the
 * recovery scan at open, and the removal of replayed segments.
 *
 * Recovery (spool_open): segments older than the checkpoint's are deleted;
 * each remaining one is scanned from the checkpoint (or from 0). A record
 * that does not decode at offset X is
 *  - a torn tail, cut off with a warning, when X is in the newest segment,
 *    its header (if intact) does not end before end of file, and no valid
 *    record can be decoded anywhere after X;
 *  - otherwise corruption: spool_open fails with KERR_INVALID naming the
 *    file and the offset.
 * Sequence numbers only grow: a new segment gets max(existing segments,
 * checkpoint's segment) + 1, so a stale checkpoint never names a segment
 * that was reused.
 *
 * Must never: skip over corruption it cannot explain as a torn tail, or
 * delete a segment that still holds unreplayed records. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* flock, fdatasync, O_CLOEXEC outside the CMake build (fuzzer) */
#endif

#include "io/spool_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/log.h"
#include "io/spool_record.h"

void spool_seg_name(char out[SEG_NAME_LEN + 1], uint64_t seq)
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
const char *spool_seg_path(const spool *s, uint64_t seq, char *buf, size_t n)
{
    char name[SEG_NAME_LEN + 1];
    spool_seg_name(name, seq);
    snprintf(buf, n, "%s/%s", s->dir, name);
    return buf;
}

int spool_segs_reserve(spool *s, size_t extra)
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
    spool_seg_path(s, seq, path, sizeof path);
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
                          path, x, spool_record_reason(drc));
        } else if (spool_record_tail_is_corrupt(map, len, x)) {
            rc = kerr_set(err, KERR_INVALID,
                          "spool: corrupt record in %s at offset %zu (%s) followed by more data; "
                          "refusing to guess",
                          path, x, spool_record_reason(drc));
        } else {
            /* A torn tail was never acknowledged: cut it, durably, before
             * anything is appended behind it. */
            if (ftruncate(fd, (off_t)x) != 0 || fdatasync(fd) != 0) {
                rc = kerr_set(err, KERR_IO, "spool: cutting the torn tail of %s at offset %zu: %s",
                              path, x, strerror(errno));
            } else {
                klog(KLOG_WARN, "spool cut a torn tail", KLOG_STR("file", path),
                     KLOG_INT("offset", (long long)x), KLOG_INT("bytes", (long long)(len - x)),
                     KLOG_STR("reason", spool_record_reason(drc)));
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
int spool_fsync_parent(const char *path, kerr *err)
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

int spool_create_at(int dirfd, const char *name, int flags)
{
    int fd = openat(dirfd, name, flags | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    struct stat d;
    if (fd >= 0 && geteuid() == 0 && fstat(dirfd, &d) == 0 && d.st_uid != 0 &&
        fchown(fd, d.st_uid, d.st_gid) != 0) {
        int e = errno;
        close(fd);
        unlinkat(dirfd, name, 0);
        errno = e;
        return -1;
    }
    return fd;
}

/* The spool is its owner's: another user (root aside, see spool_create_at)
 * is told whom to run as, rather than failing on the first file. */
static int check_owner(const spool *s, const struct stat *st, kerr *err)
{
    uid_t me = geteuid();
    if (me == 0 || me == st->st_uid)
        return 0;
    struct passwd *pw = getpwuid(st->st_uid);
    char who[64];
    if (pw != NULL)
        snprintf(who, sizeof who, "%s", pw->pw_name);
    else
        snprintf(who, sizeof who, "#%u", (unsigned)st->st_uid);
    return kerr_set(err, KERR_STATE,
                    "spool: %s belongs to user %s, and this command runs as uid %u: run it as "
                    "that user (sudo -u %s kycd ...) or as root",
                    s->dir, who, (unsigned)me, who);
}

int spool_open_dir(spool *s, kerr *err)
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
    int orc = check_owner(s, &st, err);
    if (orc != 0)
        return orc;
    s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0)
        return kerr_set(err, KERR_IO, "spool: opening directory %s: %s", s->dir, strerror(errno));
    if (created) {
        int rc = spool_fsync_parent(s->dir, err);
        if (rc != 0)
            return rc;
    }
    s->lockfd = spool_create_at(s->dirfd, "lock", O_RDWR);
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
void spool_retire_replayed(spool *s)
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
        spool_seg_name(name, seq);
        if (unlinkat(s->dirfd, name, 0) != 0) {
            const char *why = strerror(errno); /* before seg_path may touch errno */
            klog(KLOG_WARN, "spool could not delete a replayed segment",
                 KLOG_STR("file", spool_seg_path(s, seq, path, sizeof path)),
                 KLOG_STR("error", why));
        }
        s->bytes -= s->segs[0].size;
        memmove(s->segs, s->segs + 1, (s->nsegs - 1) * sizeof *s->segs);
        s->nsegs--;
        s->roff = 0;
        s->peek_next = -1;
    }
}

int spool_recover(spool *s, kerr *err)
{
    bool have_cp;
    uint64_t cp_seq = 0;
    int64_t cp_off = 0;
    uint64_t *seqs = NULL;
    size_t n = 0;
    int fd = -1;
    int rc = spool_checkpoint_read(s, &have_cp, &cp_seq, &cp_off, err);
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
            spool_seg_name(name, seqs[i]);
            if (unlinkat(s->dirfd, name, 0) != 0) {
                const char *why = strerror(errno); /* before seg_path may touch errno */
                klog(KLOG_WARN, "spool could not delete a replayed segment",
                     KLOG_STR("file", spool_seg_path(s, seqs[i], path, sizeof path)),
                     KLOG_STR("error", why));
            }
            first = i + 1;
        }
    }
    s->next_seq = max_seq + 1;
    if (s->next_seq == 0)
        rc = kerr_set(err, KERR_INVALID, "spool: segment numbers in %s are exhausted", s->dir);
    if (rc == 0 && spool_segs_reserve(s, n - first) != 0)
        rc = kerr_set(err, KERR_NOMEM, "spool: out of memory");
    if (rc != 0)
        goto out;

    for (size_t i = first; i < n; i++) {
        bool newest = (i == n - 1);
        int64_t start = (have_cp && seqs[i] == cp_seq) ? cp_off : 0;
        char name[SEG_NAME_LEN + 1];
        spool_seg_name(name, seqs[i]);
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
        spool_ages_push(s, mtime, count);
        if (newest) {
            s->wfd = fd;
        } else {
            close(fd);
        }
        fd = -1;
    }
    spool_retire_replayed(s);
    kerr cerr;
    if (spool_checkpoint_save(s, &cerr) != 0)
        klog(KLOG_WARN, "spool checkpoint not written", KLOG_STR("error", cerr.msg));
out:
    if (fd >= 0)
        close(fd);
    free(seqs);
    return rc;
}
