/* `kycd status EXTERNAL_USER_ID [--live]`: the stored state and history of
 * one user, and with --live P100's current answer. Exit codes as in cmd.h
 * (3: a user kycd does not know). */
#ifndef KYCD_CMD_STATUS_H
#define KYCD_CMD_STATUS_H

#include "cmd/cmd.h"

int cmd_status(int argc, char **argv, const cmd_ctl *ctl);

#endif
