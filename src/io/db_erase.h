/* Erasure requests (sql/017_erase.sql, docs/erasure.md): a user's
 * externalUserId replaced everywhere kycd stores it by a pseudonym, in one
 * transaction, and the action recorded in kyc.erasures. Used by `kycd
 * erase` (src/cmd/erase.c). */
#ifndef KYCD_IO_DB_ERASE_H
#define KYCD_IO_DB_ERASE_H

#include "base/err.h"
#include "io/db.h"

enum db_erase_outcome {
    DB_ERASED,        /* rewritten now */
    DB_ERASE_ALREADY, /* nothing holds the id; an earlier erasure recorded its pseudonym */
    DB_ERASE_UNKNOWN, /* nothing holds the id and no erasure recorded its pseudonym */
};

typedef struct db_erase_result {
    enum db_erase_outcome outcome;
    long long erasure_id; /* kyc.erasures.id (0: unknown) */
    char at[40];          /* when that erasure was carried out, UTC ("" for unknown) */
    char rewritten[512];  /* rows per table, JSON ("{}" when none) */
    int attempts;         /* transactions it took (a concurrent change makes one retry) */
} db_erase_result;

/* kyc.erase_user(user, pseudonym, why, os_user, host) in a REPEATABLE READ
 * transaction, retried (up to 5 times) when a concurrent delivery or check
 * changed the user meanwhile (40001, 40P01, or 23503 from a check that
 * referenced the user's row). os_user and host may be NULL. The user's id
 * goes to the database as a parameter only: never into a message. */
int db_erase_user(db *d, const char *user, const char *pseudonym, const char *why,
                  const char *os_user, const char *host, db_erase_result *out,
                  kerr *err) KYCD_MUST_CHECK;

#endif
