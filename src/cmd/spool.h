/* `kycd spool status|drain|dead-letters|replay`: show the local spool,
 * replay it into the database (kycd stopped), list the dead letters, or
 * store one of them through the normal write path. Exit codes as in cmd.h. */
#ifndef KYCD_CMD_SPOOL_H
#define KYCD_CMD_SPOOL_H

#include "cmd/cmd.h"

int cmd_spool(int argc, char **argv, const cmd_ctl *ctl);

#endif
