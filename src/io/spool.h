/* The durable local spool: an append-only log of accepted deliveries kept
 * on disk while PostgreSQL is unreachable or too slow, replayed in order
 * once it is back.
 *
 * Files in the spool directory: segments `seg-<16 hex digits>.log`
 * (sequence numbers, oldest first) and `checkpoint` (how far the oldest
 * segment has been replayed); records are framed and checked as
 * io/spool_record.h says.
 * spool_append writes one record and fdatasync()s it before returning, so
 * an acknowledged record survives a crash or power loss. A torn tail (a
 * record cut by a crash mid-append: short header, short payload, or bad
 * CRC at the end of the newest segment) was never acknowledged: it is
 * detected and cut off at open. Corruption anywhere else is an error that
 * names the file and offset (never guessed over).
 *
 * Replay: spool_peek returns the oldest unacknowledged record; after the
 * caller has committed it elsewhere it calls spool_ack, which advances the
 * checkpoint and deletes segments that are fully replayed. The checkpoint is
 * not fsynced: after a crash some records may be replayed twice, so the
 * consumer must be idempotent (kycd's is: request ids are unique).
 *
 * Thread-safe: one mutex; appends from many request threads, one drainer.
 *
 * The module is spool.c (open, append, replay) and its parts: the record
 * format (spool_record.c, io/spool_record.h), the segment files and the
 * recovery at open (spool_segments.c), the checkpoint (spool_checkpoint.c),
 * and the dead letters (spool_dead.c, io/spool_dead.h); io/spool_internal.h
 * is what they share (spool*.c only). */
#ifndef KYCD_IO_SPOOL_H
#define KYCD_IO_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

typedef struct spool spool;

typedef struct spool_opts {
    const char *dir;       /* created (0700) if missing */
    int64_t max_bytes;     /* total size limit: appends beyond it fail with KERR_TOOBIG */
    int64_t segment_bytes; /* roll over to a new segment past this (default 4 MiB if 0) */
} spool_opts;

typedef struct spool_stats {
    int64_t records; /* unacknowledged records */
    int64_t bytes;   /* bytes on disk in segments */
    int segments;
    int64_t
        oldest_age_ms; /* age of the oldest unacknowledged record (by its append time), 0 if empty */
    int64_t room;      /* bytes left under max_bytes; -1: no limit */
} spool_stats;

/* Position of a record, for spool_ack. */
typedef struct spool_pos {
    uint64_t segment;
    int64_t offset; /* of the record's header */
    int64_t next;   /* offset after it */
} spool_pos;

/* Open (and recover) the spool: scan every segment from the checkpoint,
 * cut a torn tail, count records. */
int spool_open(spool **out, const spool_opts *o, kerr *err) KYCD_MUST_CHECK;
void spool_close(spool *s);

/* Append one record durably (write + fdatasync; a new segment's directory
 * entry is fsynced too). KERR_TOOBIG when the spool is full, KERR_IO when
 * the disk refuses (then nothing was acknowledged and the caller answers
 * 503). The payload must be at most 16 MiB. */
int spool_append(spool *s, const void *payload, size_t len, kerr *err) KYCD_MUST_CHECK;

/* The oldest unacknowledged record into out (replacing its contents).
 * KERR_NOTFOUND when the spool is empty. */
int spool_peek(spool *s, kbuf *out, spool_pos *pos, kerr *err) KYCD_MUST_CHECK;

/* Mark the record at pos (the one spool_peek returned) as replayed. */
int spool_ack(spool *s, const spool_pos *pos, kerr *err) KYCD_MUST_CHECK;

/* The batched replay: up to max of the oldest unacknowledged records (all
 * from the oldest segment, in order) into out[0..*n), *n >= 1; span covers
 * them. A record that cannot be read ends the batch early (it is the first
 * of the next one, where its error is returned). KERR_NOTFOUND when empty. */
int spool_peek_many(spool *s, kbuf *out, int max, int *n, spool_pos *span,
                    kerr *err) KYCD_MUST_CHECK;
/* Mark the n records spool_peek_many returned as replayed, all at once. */
int spool_ack_many(spool *s, const spool_pos *span, int n, kerr *err) KYCD_MUST_CHECK;

void spool_stats_get(spool *s, spool_stats *out);

#endif
