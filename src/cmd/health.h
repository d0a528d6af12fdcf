/* `kycd health [--path PATH]`: GET /healthz (or PATH) from this host's admin
 * listener (admin_listen, plain HTTP on loopback) and exit 0 on 200, 1
 * otherwise: the container image's HEALTHCHECK, which so needs no curl. */
#ifndef KYCD_CMD_HEALTH_H
#define KYCD_CMD_HEALTH_H

#include "cmd/cmd.h"

int cmd_health(int argc, char **argv, const cmd_ctl *ctl);

#endif
