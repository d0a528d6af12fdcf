/* The report of one user for `kycd status`, and the rows printer that the
 * other reporting commands share. Part of the database module
 * (io/db.h). Read-only. */
#ifndef KYCD_IO_DB_REPORT_H
#define KYCD_IO_DB_REPORT_H

#include "base/buf.h"
#include "io/db.h"

/* A human-readable report of one user: current state, changes, recent
 * deliveries and checks. KERR_NOTFOUND if unknown. */
int db_user_report(db *d, const char *external_user_id, kbuf *out, kerr *err) KYCD_MUST_CHECK;

/* Append a query's rows to out under "TITLE (N)", one line per row of
 * "column=value" pairs ("-" for NULL). */
int db_report_rows(db *d, kbuf *out, const char *title, const char *sql, int n,
                   const char *const *vals, kerr *err) KYCD_MUST_CHECK;

#endif
