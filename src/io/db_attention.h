/* The users flagged for a person (kyc.verifications.attention_reason), and
 * on-call's actions on them, recorded in kyc.attention_actions (sql/013).
 * Used by `kycd attention` (src/cmd/attention.c). */
#ifndef KYCD_IO_DB_ATTENTION_H
#define KYCD_IO_DB_ATTENTION_H

#include "base/buf.h"
#include "base/err.h"
#include "io/db.h"

/* One line per flagged user, oldest check first, appended to out:
 * "user=... since=... failures=N reason=..." (reason last: free text);
 * *n how many. */
int db_attention_list(db *d, kbuf *out, long long *n, kerr *err) KYCD_MUST_CHECK;

/* Give flagged users back to the reconciler, in one transaction: the one
 * named (user), or every flagged one (user NULL): attention_reason and
 * failures cleared, needs_check_reason attention_retry, next_check_at now
 * (checked with P100 at once); the action recorded with why (may be NULL),
 * the OS user and host. *n: users given back (a user not flagged: 0,
 * recorded all the same). */
int db_attention_retry(db *d, const char *user, const char *why, const char *os_user,
                       const char *host, long long *n, kerr *err) KYCD_MUST_CHECK;

#endif
