/* `kycd version` (and `--version`): kycd's version, the newest schema it
 * holds, and the versions of CivetWeb and OpenSSL it runs with. */
#ifndef KYCD_CMD_VERSION_H
#define KYCD_CMD_VERSION_H

#include "cmd/cmd.h"

int cmd_version(int argc, char **argv, const cmd_ctl *ctl);

#endif
