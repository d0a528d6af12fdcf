/* `kycd migrate`: apply the database migrations this binary holds (safe to
 * run from several hosts at once). Exit codes as in cmd.h. */
#ifndef KYCD_CMD_MIGRATE_H
#define KYCD_CMD_MIGRATE_H

#include "cmd/cmd.h"

int cmd_migrate(int argc, char **argv, const cmd_ctl *ctl);

#endif
