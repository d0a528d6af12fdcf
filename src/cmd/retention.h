/* `kycd retention [--dry-run]`: drop the history partitions older than the
 * retention period (never one the current state points into). Exit codes
 * as in cmd.h. */
#ifndef KYCD_CMD_RETENTION_H
#define KYCD_CMD_RETENTION_H

#include "cmd/cmd.h"

int cmd_retention(int argc, char **argv, const cmd_ctl *ctl);

#endif
