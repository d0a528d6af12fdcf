/* serve's partition maintenance: the partitions ahead created once at
 * start (partitions_maintain) and then by a background thread, the keeper,
 * whose start and stop belong to `kycd serve`. `kycd partitions --create`
 * creates as many ahead. */
#ifndef KYCD_APP_PARTITIONS_H
#define KYCD_APP_PARTITIONS_H

#include <stdint.h>

#include "io/db.h"

/* Partitions serve and `kycd partitions --create` keep beyond the current
 * month. */
#define KYCD_PARTITIONS_AHEAD 2

/* A thread that creates the partitions ahead (db_partitions_ensure) every
 * `every_ms` on its own connection, and logs what it created or why it
 * could not. The options are borrowed until partitions_keeper_stop. */
typedef struct partitions_keeper partitions_keeper;
int partitions_keeper_start(partitions_keeper **out, const db_opts *o, int64_t every_ms);
void partitions_keeper_stop(partitions_keeper *k); /* NULL is fine */
/* One maintenance run on d, logged; 0 or a KERR_* code. */
int partitions_maintain(db *d);

#endif
