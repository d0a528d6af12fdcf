/* Dead letters: records of the spool that can never be replayed, kept as
 * files in the spool directory for a person (kycd spool dead-letters,
 * kycd spool replay). Reading, listing and removing need no open spool: a
 * running kycd may own the directory. */
#ifndef KYCD_IO_SPOOL_DEAD_H
#define KYCD_IO_SPOOL_DEAD_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "io/spool.h"

/* Keep a record that can never be replayed (the database refuses its data
 * for good) in the spool directory as `dead-<name>.rec` (the record, as it
 * was in the spool), with `dead-<name>.reason` beside it (the database's
 * answer, one line), both fsynced, for a person to look at and replay
 * (kycd spool dead-letters, kycd spool replay); name is made of
 * [0-9A-Za-z_-] only (others become _). */
int spool_dead_letter(spool *s, const char *name, const void *payload, size_t len,
                      const char *reason, kerr *err) KYCD_MUST_CHECK;

/* One dead letter, as found on disk. */
typedef struct spool_dead {
    char file[160];   /* dead-<name>.rec */
    int64_t mtime_ms; /* when it was written (Unix ms) */
    int64_t bytes;
    char reason[512]; /* "" when it has no .reason (written by an older kycd) */
} spool_dead;

/* The dead letters of a spool directory, oldest first, into *out (free()
 * it) and *n. Needs no open spool: a running kycd may own the directory. */
int spool_dead_list(const char *dir, spool_dead **out, size_t *n, kerr *err) KYCD_MUST_CHECK;
/* Read the dead letter at path (a dead-*.rec file): its record into
 * payload (NULL: only *info), what is known of it into *info. KERR_INVALID for another file
 * name, KERR_NOTFOUND when it does not exist. */
int spool_dead_read(const char *path, kbuf *payload, spool_dead *info, kerr *err) KYCD_MUST_CHECK;
/* The dead letter `file` (a dead-*.rec name, or a path) of the spool in
 * spool_dir, as a path in path[cap]: it must lie in that very directory
 * (symlinks resolved), be a regular file and belong to the directory's
 * owner, so that no file from elsewhere is stored without a token check
 * and then deleted. KERR_INVALID with the reason otherwise. */
int spool_dead_locate(const char *spool_dir, const char *file, char *path, size_t cap,
                      kerr *err) KYCD_MUST_CHECK;
/* Remove a dead letter (its .rec and .reason) once it has been replayed. */
int spool_dead_remove(const char *path, kerr *err) KYCD_MUST_CHECK;

/* How many dead-letter files (dead-*.rec) the spool directory holds now. */
long long spool_dead_letters(spool *s);

#endif
