/* The change feed's reading side (docs/feed.md): a logical replication
 * slot with the core pgoutput plugin, read through the SQL functions
 * (peek, then advance once the changes are written), and the NOTIFY that
 * wakes a follower. Part of the database module (io/db.h). The role needs
 * the REPLICATION attribute; nothing here writes a table. */
#ifndef KYCD_IO_DB_FEED_H
#define KYCD_IO_DB_FEED_H

#include <stddef.h>
#include <stdint.h>

#include "io/db.h"

/* The publication (sql/016_feed.sql) and the NOTIFY channel. */
#define DB_FEED_PUBLICATION "kyc_status_changes"
#define DB_FEED_CHANNEL "kyc_status_changes"

/* Make sure the logical slot exists (pgoutput); *created is 1 when this
 * call created it. *confirmed: the slot's confirmed position. */
int db_feed_slot(db *d, const char *slot, int *created, uint64_t *confirmed,
                 kerr *err) KYCD_MUST_CHECK;

/* One message of pgoutput, borrowed for the call. Non-zero stops the batch
 * and is returned by db_feed_peek. */
typedef int (*db_feed_msg_fn)(void *arg, const unsigned char *msg, size_t len);

/* The slot's next messages (after its confirmed position `from`, in commit
 * order, whole transactions), at most about max_msgs, up to the WAL flushed
 * when called but at most `span` bytes of WAL past `from` (each call decodes
 * from the slot's restart position: a long stretch is read in pieces, each
 * within the statement deadline): fn for each, in order. *upto: where it
 * read up to; *all: 1 when the batch was not cut by max_msgs (every
 * transaction committed before *upto was returned); *more: 1 when WAL
 * flushed beyond *upto remains. Nothing is consumed: see db_feed_advance. */
int db_feed_peek(db *d, const char *slot, uint64_t from, uint64_t span, int max_msgs,
                 db_feed_msg_fn fn, void *arg, uint64_t *upto, int *all, int *more,
                 kerr *err) KYCD_MUST_CHECK;

/* Move the slot's confirmed position to lsn (never backwards): the server
 * may then recycle the WAL before it. Only past changes already delivered. */
int db_feed_advance(db *d, const char *slot, uint64_t lsn, kerr *err) KYCD_MUST_CHECK;

/* LISTEN on DB_FEED_CHANNEL; then db_feed_wait blocks until a notification
 * arrives or ms pass (0 either way; KERR_DB when the connection fails). */
int db_feed_listen(db *d, kerr *err) KYCD_MUST_CHECK;
int db_feed_wait(db *d, int ms, kerr *err) KYCD_MUST_CHECK;

#endif
