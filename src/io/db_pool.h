/* A fixed-size pool of lazily opened database connections shared by
 * request threads. A connection found dead on return is dropped and
 * reopened on the next get. Part of the database module (io/db.h). */
#ifndef KYCD_IO_DB_POOL_H
#define KYCD_IO_DB_POOL_H

#include "io/db.h"

typedef struct db_pool db_pool;

int db_pool_new(db_pool **out, const db_opts *o, int size, kerr *err) KYCD_MUST_CHECK;
/* Borrow a connection, waiting at most timeout_ms for a free slot and
 * connecting if the slot is empty. KERR_TIMEOUT or KERR_DB on failure. */
int db_pool_get(db_pool *p, int64_t timeout_ms, db **out, kerr *err) KYCD_MUST_CHECK;
void db_pool_put(db_pool *p, db *d);
void db_pool_free(db_pool *p);
/* For kycd_db_pool_connections: slots open and free, lent out, and all. */
void db_pool_counts(db_pool *p, int *idle, int *busy, int *size);

#endif
