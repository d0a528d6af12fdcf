/* Schema migrations: the sql/NNN_*.sql files compiled into kycd
 * (io/migrations.h), applied in order, each once, and the check that the
 * database is not behind this binary. Part of the database module
 * (io/db.h). */
#ifndef KYCD_IO_MIGRATE_H
#define KYCD_IO_MIGRATE_H

#include "io/db.h"

/* The highest migration version this kycd carries (0 when none): the
 * schema version it needs. */
int migrate_latest_version(void);

/* Apply the embedded migrations that are not yet recorded in
 * kyc.schema_migrations, in order, each in its own transaction, holding an
 * advisory lock so that two hosts migrating at once take turns. Refuses
 * when an applied migration's checksum differs from the embedded one. */
int db_migrate(db *d, int *applied, kerr *err) KYCD_MUST_CHECK;
/* Highest applied migration version (0 when none). */
int db_schema_version(db *d, int *version, kerr *err) KYCD_MUST_CHECK;
/* KERR_STATE with a hint to run `kycd migrate` when the database is behind
 * this binary's migrations. */
int db_check_schema(db *d, kerr *err) KYCD_MUST_CHECK;

#endif
