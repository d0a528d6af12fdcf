/* Shared helpers for the cmocka tests. */
#ifndef KYCD_TESTLIB_H
#define KYCD_TESTLIB_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* The conninfo of the throwaway PostgreSQL server that tests/run.sh
 * started (TEST_PG). Integration tests fail, never skip, without it. */
const char *testlib_pg(void);

/* Create a fresh database named after `prefix` plus a random suffix on the
 * test server and return a conninfo for it (static storage, overwritten by
 * the next call). */
const char *testlib_fresh_db(const char *prefix);

#endif
