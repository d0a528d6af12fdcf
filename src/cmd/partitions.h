/* The partition commands: `partitions` (show, create ahead), `retention`
 * (drop whole partitions older than the retention period) and `archive`
 * (export partitions before a date). Exit codes as in cmd.h. */
#ifndef KYCD_CMD_PARTITIONS_H
#define KYCD_CMD_PARTITIONS_H

#include "cmd/cmd.h"
#include "io/db.h"

/* Partitions serve and `kycd partitions --create` keep beyond the current
 * month. */
#define KYCD_PARTITIONS_AHEAD 2

int cmd_partitions(int argc, char **argv, const cmd_ctl *ctl);
int cmd_retention(int argc, char **argv, const cmd_ctl *ctl);
int cmd_archive(int argc, char **argv, const cmd_ctl *ctl);

/* serve's partition maintenance: a thread that creates the partitions
 * ahead (db_partitions_ensure) every `every_ms` on its own connection, and
 * logs what it created or why it could not. The options are borrowed until
 * partitions_keeper_stop. */
typedef struct partitions_keeper partitions_keeper;
int partitions_keeper_start(partitions_keeper **out, const db_opts *o, int64_t every_ms);
void partitions_keeper_stop(partitions_keeper *k); /* NULL is fine */
/* One maintenance run on d, logged; 0 or a KERR_* code. */
int partitions_maintain(db *d);

#endif
