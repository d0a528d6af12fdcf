/* `kycd changes [--since CURSOR] [--follow] [--slot NAME]`: the change
 * feed (docs/feed.md): every change of a user's state committed after the
 * slot's position (or after CURSOR), once, in commit order, as JSON lines
 * each carrying the cursor to resume from. Exit codes as in cmd.h. */
#ifndef KYCD_CMD_CHANGES_H
#define KYCD_CMD_CHANGES_H

#include "cmd/cmd.h"

int cmd_changes(int argc, char **argv, const cmd_ctl *ctl);

#endif
