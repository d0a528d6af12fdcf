/* The durable spool (API in spool.h, format in spool_record.h): opening
 * and closing, durable appends, the replay (peek and ack) and the stats.
 * It must never acknowledge a record that is not fdatasync()ed, and never
 * log payloads.
 *
 * Decisions not fixed by the header (the checkpoint's are in
 * spool_checkpoint.c, recovery's in spool_segments.c):
 *  - A segment is deleted as soon as it is fully replayed, the active one
 *    included: when the drainer catches up, the active segment is closed and
 *    unlinked and the next append starts a new one (with a new sequence
 *    number). Truncating the active segment to 0 and reusing it would be
 *    cheaper but unsafe: a stale checkpoint (not fsynced) would then point
 *    into records appended after the truncation and skip them.
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
 *    costs replays after a restart, never a loss. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* flock, fdatasync, O_CLOEXEC outside the CMake build (fuzzer) */
#endif

#include "io/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "io/spool_internal.h"
#include "io/spool_record.h"

#define DEFAULT_SEGMENT_BYTES ((int64_t)4 * 1024 * 1024)

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

void spool_ages_push(spool *s, int64_t t_ms, int64_t n)
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
    rc = spool_open_dir(s, err);
    if (rc == 0)
        rc = spool_recover(s, err);
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
    spool_seg_name(name, s->next_seq);
    spool_seg_path(s, s->next_seq, path, sizeof path);
    if (spool_segs_reserve(s, 1) != 0)
        return kerr_set(err, KERR_NOMEM, "spool: out of memory");
    int fd = spool_create_at(s->dirfd, name, O_WRONLY | O_EXCL | O_APPEND);
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

/* Write rec whole and fdatasync it: 0, or the errno that stopped it. */
static int write_durably(int fd, const unsigned char *rec, size_t reclen)
{
    size_t done = 0;
    while (done < reclen) {
        ssize_t w = write(fd, rec + done, reclen - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (w == 0)
            return ENOSPC; /* a regular file that takes nothing: treat as full */
        done += (size_t)w;
    }
    if (fdatasync(fd) != 0)
        return errno; /* the record is NOT written: cut it like a failed write */
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
    spool_record_encode(rec, payload, len);

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
    int e = write_durably(s->wfd, rec, reclen);
    if (e != 0) {
        char path[4200];
        spool_seg_path(s, act->seq, path, sizeof path);
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
    spool_ages_push(s, clock_wall_ms(), 1);
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
    spool_seg_path(s, sg->seq, path, sizeof path);
    if (s->rfd < 0 || s->rfd_seq != sg->seq) {
        if (s->rfd >= 0)
            close(s->rfd);
        char name[SEG_NAME_LEN + 1];
        spool_seg_name(name, sg->seq);
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
    uint32_t n;
    if (!spool_record_header(hdr, &n) || (int64_t)n > sg->size - off - REC_HDR) {
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
    spool_retire_replayed(s);
    kerr cerr;
    if (spool_checkpoint_save(s, &cerr) != 0)
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
