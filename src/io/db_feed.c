/* The change feed's slot (see db_feed.h). Must never advance the slot past
 * a change that was not handed to the caller: the slot's confirmed position
 * is what every later reader starts from. */
#include "io/db_feed.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pgoutput.h"
#include "io/db_internal.h"

int db_feed_slot(db *d, const char *slot, int *created, uint64_t *confirmed, kerr *err)
{
    const char *p[] = {slot};
    /* A slot of another plugin or database under this name is refused: it
     * would decode something else. */
    PGresult *r = db_exec(d,
                          "SELECT plugin, database = current_database(), "
                          "coalesce(confirmed_flush_lsn, '0/0')::text "
                          "FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
                          1, p);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = db_fail(d, r, "reading the replication slot", err);
        PQclear(r);
        return rc;
    }
    int found = PQntuples(r) == 1, rc = 0;
    if (found &&
        (strcmp(PQgetvalue(r, 0, 0), "pgoutput") != 0 || strcmp(PQgetvalue(r, 0, 1), "t") != 0))
        rc = kerr_set(err, KERR_STATE,
                      "replication slot %s is not a pgoutput slot of this database", slot);
    else if (found && pgo_lsn_parse(PQgetvalue(r, 0, 2), confirmed) != 0)
        rc = kerr_set(err, KERR_DB, "replication slot %s: unreadable position", slot);
    PQclear(r);
    *created = 0;
    if (found || rc != 0)
        return rc;
    r = db_exec(d,
                "SELECT lsn::text FROM pg_catalog.pg_create_logical_replication_slot($1, "
                "'pgoutput')",
                1, p);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = db_fail(d, r, "creating the replication slot", err);
        PQclear(r);
        return rc;
    }
    if (pgo_lsn_parse(PQgetvalue(r, 0, 0), confirmed) != 0)
        rc = kerr_set(err, KERR_DB, "replication slot %s: unreadable position", slot);
    PQclear(r);
    *created = rc == 0;
    return rc;
}

int db_feed_peek(db *d, const char *slot, uint64_t from, uint64_t span, int max_msgs,
                 db_feed_msg_fn fn, void *arg, uint64_t *upto, int *all, int *more, kerr *err)
{
    /* The flushed WAL position first: decoding reads at least that far, so
     * when the batch is not cut, every commit before it was returned. */
    PGresult *r = db_exec(d, "SELECT pg_catalog.pg_current_wal_flush_lsn()::text", 0, NULL);
    uint64_t flushed = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || pgo_lsn_parse(PQgetvalue(r, 0, 0), &flushed) != 0) {
        int rc = db_fail(d, r, "reading the WAL position", err);
        PQclear(r);
        return rc;
    }
    PQclear(r);
    uint64_t to = flushed;
    if (flushed > from && flushed - from > span)
        to = from + span;
    char lsn[24], n[16];
    pgo_lsn_format(to, lsn, sizeof lsn);
    snprintf(n, sizeof n, "%d", max_msgs);
    const char *p[] = {slot, lsn, n, DB_FEED_PUBLICATION};
    /* Binary results: the messages as sent, no bytea escaping. */
    r = PQexecParams(d->conn,
                     "SELECT data FROM pg_catalog.pg_logical_slot_peek_binary_changes($1, "
                     "$2::pg_lsn, $3::integer, 'proto_version', '1', 'publication_names', $4)",
                     4, NULL, p, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = db_fail(d, r, "reading the replication slot", err);
        PQclear(r);
        return rc;
    }
    int rows = PQntuples(r), rc = 0;
    for (int i = 0; rc == 0 && i < rows; i++)
        rc = fn(arg, (const unsigned char *)PQgetvalue(r, i, 0), (size_t)PQgetlength(r, i, 0));
    PQclear(r);
    if (rc != 0)
        return rc;
    *upto = to;
    *all = rows < max_msgs;
    *more = to < flushed;
    return 0;
}

int db_feed_advance(db *d, const char *slot, uint64_t lsn, kerr *err)
{
    char l[24];
    pgo_lsn_format(lsn, l, sizeof l);
    const char *p[] = {slot, l};
    return db_exec_ok(d,
                      "SELECT pg_catalog.pg_replication_slot_advance($1, "
                      "greatest($2::pg_lsn, s.confirmed_flush_lsn)) "
                      "FROM pg_catalog.pg_replication_slots s WHERE s.slot_name = $1",
                      2, p, "advancing the replication slot", err);
}

int db_feed_listen(db *d, kerr *err)
{
    return db_exec_ok(d, "LISTEN " DB_FEED_CHANNEL, 0, NULL, "listening", err);
}

int db_feed_wait(db *d, int ms, kerr *err)
{
    PGnotify *n;
    int got = 0;
    while ((n = PQnotifies(d->conn)) != NULL) {
        PQfreemem(n);
        got = 1;
    }
    if (got)
        return 0;
    struct pollfd pfd = {.fd = PQsocket(d->conn), .events = POLLIN};
    if (pfd.fd < 0)
        return kerr_set(err, KERR_DB, "waiting for changes: no connection");
    int rc = poll(&pfd, 1, ms);
    if (rc < 0 && errno != EINTR)
        return kerr_set(err, KERR_IO, "waiting for changes: %s", strerror(errno));
    if (rc > 0 && PQconsumeInput(d->conn) == 0)
        return db_fail(d, NULL, "waiting for changes", err);
    while ((n = PQnotifies(d->conn)) != NULL)
        PQfreemem(n);
    return 0;
}
