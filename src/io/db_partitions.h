/* The monthly partitions of the history tables (sql/007_partitions.sql):
 * keeping them ahead, showing them, retention (dropping whole partitions,
 * never rows) and the archive of the partitions about to go. Part of the
 * database module (io/db.h). */
#ifndef KYCD_IO_DB_PARTITIONS_H
#define KYCD_IO_DB_PARTITIONS_H

#include "base/buf.h"
#include "io/db.h"

/* Create the missing partitions of the current UTC month and the next
 * `ahead` months (kyc.ensure_partitions); *created: how many. */
int db_partitions_ensure(db *d, int ahead, int *created, kerr *err) KYCD_MUST_CHECK;

/* The partitions, oldest first, appended to out. */
int db_partitions_report(db *d, kbuf *out, kerr *err) KYCD_MUST_CHECK;

/* Retention (kyc.retention): the partitions wholly before `before` (a
 * timestamptz literal), each with its action: would_drop / dropped, or
 * keep when the current state of a user points into it. Appended to out;
 * *dropped and *kept count them. */
int db_retention(db *d, const char *before, int dry_run, kbuf *out, int *dropped, int *kept,
                 kerr *err) KYCD_MUST_CHECK;

/* Writes every partition wholly before `before` into dir (created if
 * absent) as NAME.copy.gz (COPY text format, gzip), with manifest.tsv
 * (file, table, partition, bounds, rows, sha256, columns) and SHA256SUMS
 * (for `sha256sum -c`). One snapshot (REPEATABLE READ). *files: how many. */
int db_archive(db *d, const char *before, const char *dir, kbuf *out, int *files,
               kerr *err) KYCD_MUST_CHECK;

#endif
