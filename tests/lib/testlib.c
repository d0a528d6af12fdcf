/* Helpers for the cmocka tests: the test PostgreSQL server. Uses libpq
 * directly (tests are outside the layering of src/). */
#include "testlib.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *testlib_pg(void)
{
    const char *pg = getenv("TEST_PG");
    if (pg == NULL || *pg == '\0') {
        fprintf(stderr, "TEST_PG is not set: run the suite with tests/run.sh\n");
        exit(1);
    }
    return pg;
}

const char *testlib_fresh_db(const char *prefix)
{
    static char conninfo[1024];
    char name[64];
    snprintf(name, sizeof name, "%s_%d_%ld", prefix, (int)getpid(), random() % 100000);
    PGconn *c = PQconnectdb(testlib_pg());
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "cannot connect to test server: %s", PQerrorMessage(c));
        exit(1);
    }
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "create database: %s", PQerrorMessage(c));
        exit(1);
    }
    PQclear(r);
    PQfinish(c);
    snprintf(conninfo, sizeof conninfo, "%s dbname=%s", testlib_pg(), name);
    return conninfo;
}
