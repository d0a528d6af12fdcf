/* PostgreSQL's logical-replication protocol as the core `pgoutput` plugin
 * writes it (proto_version 1): one message is decoded into a plain struct,
 * and a change is written as one JSON line of the change feed (`kycd
 * changes`, docs/feed.md). Pure: no libpq, no I/O, no allocation; the
 * decoded strings and values point into the caller's message bytes.
 *
 * Only what a publication of inserts produces is decoded (Begin, Commit,
 * Relation, Insert); every other message is PGO_OTHER and carries nothing. */
#ifndef KYCD_CORE_PGOUTPUT_H
#define KYCD_CORE_PGOUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

#define PGO_MAX_COLS 64

typedef enum { PGO_BEGIN, PGO_COMMIT, PGO_RELATION, PGO_INSERT, PGO_OTHER } pgo_kind;

typedef struct pgo_value {
    const char *p; /* text form, not NUL-terminated; NULL for SQL NULL */
    size_t len;
} pgo_value;

typedef struct pgo_msg {
    pgo_kind kind;
    uint64_t final_lsn;  /* begin: where the commit record starts */
    uint64_t commit_lsn; /* commit: the same position */
    uint64_t end_lsn;    /* commit: just after the commit record */
    int64_t commit_ts;   /* begin and commit: microseconds since 2000-01-01 UTC */
    uint32_t xid;        /* begin */
    uint32_t relid;      /* relation and insert */
    const char *nspname; /* relation (NUL-terminated, inside the message) */
    const char *relname;
    int ncols;                       /* relation and insert */
    const char *names[PGO_MAX_COLS]; /* relation: column names */
    uint32_t types[PGO_MAX_COLS];    /* relation: column type oids */
    pgo_value values[PGO_MAX_COLS];  /* insert: the new row */
} pgo_msg;

/* Decode one message of len bytes. KERR_INVALID ("pgoutput: ...") when it
 * is truncated or malformed, or has more than PGO_MAX_COLS columns; *out
 * is then unspecified. */
int pgo_decode(const unsigned char *buf, size_t len, pgo_msg *out, kerr *err) KYCD_MUST_CHECK;

/* "X/Y", as PostgreSQL prints a pg_lsn. cap >= 20. */
void pgo_lsn_format(uint64_t lsn, char *buf, size_t cap);
/* 0 and *out for "X/Y" (hex, each at most 8 digits); KERR_INVALID otherwise. */
int pgo_lsn_parse(const char *s, uint64_t *out) KYCD_MUST_CHECK;

/* A feed cursor: the transaction's commit position and how many of its
 * changes (1-based) were delivered, "X/Y:N". */
typedef struct pgo_cursor {
    uint64_t lsn;
    long long n;
} pgo_cursor;
int pgo_cursor_parse(const char *s, pgo_cursor *out) KYCD_MUST_CHECK;
/* 1 when change n of the transaction committing at lsn was delivered up to
 * cursor c (transactions are decoded in commit order). */
int pgo_cursor_covers(const pgo_cursor *c, uint64_t lsn, long long n);

/* One change as a JSON line (newline included): {"cursor", "commit_lsn",
 * "xid", "commit_time", "table", "change": {column: value}}. Integer
 * columns are JSON numbers, booleans true/false, the rest strings. rel is
 * the relation message the insert refers to. */
int pgo_change_json(kbuf *out, const pgo_msg *begin, const pgo_msg *rel, const pgo_msg *ins,
                    long long n) KYCD_MUST_CHECK;

#endif
