/* Private to the spool (src/io/spool*.c): the open spool's state and what
 * its parts share. Not an API: nothing outside io/spool*.c may include it.
 * Every function here that touches a `spool` expects its mutex held, or the
 * spool not yet shared (spool_open). */
#ifndef KYCD_IO_SPOOL_INTERNAL_H
#define KYCD_IO_SPOOL_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "io/spool.h"

/* The record format (spool_record.h): header bytes, largest payload. */
#define REC_HDR 12
#define REC_MAX_PAYLOAD ((size_t)16 * 1024 * 1024)
#define SEG_NAME_LEN 24 /* "seg-" + 16 hex + ".log" */

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

/* ---- records (spool_record.c) */

/* Write the record of payload[0..len) (REC_HDR + len bytes) into rec. */
void spool_record_encode(unsigned char *rec, const void *payload, size_t len);
/* A record header's payload length into *n: false for a bad magic or an
 * absurd length. */
bool spool_record_header(const unsigned char hdr[REC_HDR], uint32_t *n);
/* spool_record_decode's error, in words for a message. */
const char *spool_record_reason(int rc);
/* A record failed to decode at x in the newest segment: true when that is
 * corruption rather than a torn tail. */
bool spool_record_tail_is_corrupt(const unsigned char *map, size_t size, size_t x);

/* ---- segments and recovery (spool_segments.c) */

/* openat(dirfd, name, flags | O_CREAT, 0600) for a file of the spool: the
 * file belongs to the spool directory's owner even when root makes it (an
 * operator's `kycd spool drain` as root must not leave a file the service
 * cannot open). -1 with errno on failure. */
int spool_create_at(int dirfd, const char *name, int flags);

void spool_seg_name(char out[SEG_NAME_LEN + 1], uint64_t seq);
/* "<dir>/<name>" of segment seq, for messages. */
const char *spool_seg_path(const spool *s, uint64_t seq, char *buf, size_t n);
/* Room for `extra` more segments in s->segs: 0 or KERR_NOMEM. */
int spool_segs_reserve(spool *s, size_t extra);
/* Fsync the directory that holds path (a new entry in it must survive). */
int spool_fsync_parent(const char *path, kerr *err);
/* Create (0700) or open s->dir and take its lock. */
int spool_open_dir(spool *s, kerr *err);
/* Scan the segments from the checkpoint into s (see spool_segments.c). */
int spool_recover(spool *s, kerr *err);
/* Drop the fully replayed segments from the front. */
void spool_retire_replayed(spool *s);

/* ---- checkpoint (spool_checkpoint.c) */

/* Record the replay position as it is now. */
int spool_checkpoint_save(spool *s, kerr *err);
/* *have = false when missing or malformed (logged). */
int spool_checkpoint_read(spool *s, bool *have, uint64_t *seq, int64_t *off, kerr *err);

/* ---- append times (spool.c) */

/* n records appended at t_ms (run-length encoded; never fails). */
void spool_ages_push(spool *s, int64_t t_ms, int64_t n);

#endif
