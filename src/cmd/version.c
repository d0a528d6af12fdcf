/* `kycd version` (see version.h). Must never: load the configuration or
 * connect to anything: it answers even where kycd cannot run. */
#include "cmd/version.h"

#include <stdio.h>

#include "app/server.h"
#include "io/migrate.h"
#include "io/tls.h"

int cmd_version(int argc, char **argv, const cmd_ctl *ctl)
{
    int latest = migrate_latest_version(); /* the newest migration compiled in */
    printf("kycd %s (schema %d, civetweb %s, %s)\n", KYCD_VERSION, latest, server_library_version(),
           tls_library_version());
    return CMD_OK;
}
