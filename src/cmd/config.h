/* `kycd config`: print the effective configuration (secrets redacted),
 * `--check` every check serve makes before it listens, or `--reference`
 * the documentation of every key. Exit codes as in cmd.h. */
#ifndef KYCD_CMD_CONFIG_H
#define KYCD_CMD_CONFIG_H

#include "cmd/cmd.h"

int cmd_config(int argc, char **argv, const cmd_ctl *ctl);

#endif
