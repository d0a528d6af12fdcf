/* `kycd partitions [--create]`: list the history tables' monthly
 * partitions, and with --create make the current month's and the ones
 * ahead (KYCD_PARTITIONS_AHEAD, app/partitions.h). Exit codes as in cmd.h. */
#ifndef KYCD_CMD_PARTITIONS_H
#define KYCD_CMD_PARTITIONS_H

#include "cmd/cmd.h"

int cmd_partitions(int argc, char **argv, const cmd_ctl *ctl);

#endif
