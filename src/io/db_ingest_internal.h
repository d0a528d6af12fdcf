/* Private to the ingest write path (src/io/db_ingest*.c): its statements.
 * Not an API: nothing outside io/db_ingest*.c may include it.
 * db_ingest_sql.c holds their texts (what each takes and returns is said
 * there); db_ingest.c fills their parameters and reads their results. */
#ifndef KYCD_IO_DB_INGEST_INTERNAL_H
#define KYCD_IO_DB_INGEST_INTERNAL_H

#include "io/db_internal.h"

/* The ingest statements, prepared once per session (DB_SET_INGEST). */
enum db_ingest_stmt {
    DB_INGEST_BEGIN,
    DB_INGEST_PLANS,
    DB_INGEST_ENSURE,
    DB_INGEST_OTHER_LOCK,
    DB_INGEST_PRIOR,
    DB_INGEST_REPLAYED,
    DB_INGEST_WRITE,
    DB_INGEST_COMMIT,
    DB_INGEST_COUNT
};

/* BEGIN and COMMIT too: a batch parses nothing. */
extern const db_stmt DB_INGEST_STMTS[DB_INGEST_COUNT];

#endif
