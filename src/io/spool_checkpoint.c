/* The spool's checkpoint: how far the oldest segment has been replayed.
 *
 * The file holds "<segment, 16 lower-case hex digits as in the file name>
 * <offset, decimal>\n", written to checkpoint.tmp and renamed. It is not
 * fsynced: an unreadable or malformed checkpoint (a crash may leave it
 * empty) is logged and treated as missing, and replay restarts at the
 * oldest segment, which only costs duplicates.
 *
 * Must never: be trusted beyond that (a stale checkpoint may only cause
 * replays, never a skipped record), or be read as anything but that one
 * line. */
#include "io/spool_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/log.h"

static int checkpoint_write(spool *s, uint64_t seq, int64_t off, kerr *err)
{
    char line[64];
    int n = snprintf(line, sizeof line, "%016" PRIx64 " %" PRId64 "\n", seq, off);
    int fd = spool_create_at(s->dirfd, "checkpoint.tmp", O_WRONLY | O_TRUNC);
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
int spool_checkpoint_save(spool *s, kerr *err)
{
    if (s->nsegs > 0)
        return checkpoint_write(s, s->segs[0].seq, s->roff, err);
    return checkpoint_write(s, s->next_seq, 0, err);
}

/* *have = false when missing or malformed (logged). */
int spool_checkpoint_read(spool *s, bool *have, uint64_t *seq, int64_t *off, kerr *err)
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
