/* `kycd reconcile --once`: one reconciler pass over every due user, a
 * summary line on stdout, then exit (for cron or a manual run). The
 * reconciler thread of a running kycd is started by serve, not here. */
#ifndef KYCD_CMD_RECONCILE_H
#define KYCD_CMD_RECONCILE_H

#include "cmd/cmd.h"

/* Exit 0 when every check got an answer it could use; 1 after a 401 or an
 * error; 2 for usage or configuration (no --once, no API key). */
int cmd_reconcile(int argc, char **argv, const cmd_ctl *ctl);

#endif
