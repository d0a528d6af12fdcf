/* `kycd health` (see health.h). Must never: open the database or the spool
 * (it probes the running kycd, whose state that is), or wait without a bound
 * (io/http_probe bounds every step). */
#include "cmd/health.h"

#include <stdio.h>
#include <string.h>

#include "cmd/common.h"
#include "io/http_probe.h"

/* Shorter than the image's HEALTHCHECK --timeout (3 s), so kycd says why. */
#define HEALTH_TIMEOUT_MS 2000

int cmd_health(int argc, char **argv, const cmd_ctl *ctl)
{
    cmd_flag f[] = {{"--path", 1, NULL}};
    if (cmd_take_flags(&argc, argv, f, 1, NULL) != 0)
        return CMD_USAGE;
    const char *path = f[0].value ? f[0].value : "/healthz";
    if (path[0] != '/' || strpbrk(path, " \r\n") != NULL) {
        fprintf(stderr, "kycd: health: --path must be a path like /readyz\n");
        return CMD_USAGE;
    }
    kycd_config cfg;
    int rc = cmd_load(&cfg, argc, argv);
    if (rc != 0)
        return rc;
    const char *addr = cfg.admin_listen;
    if (addr == NULL || addr[0] == '\0' || strcmp(addr, "off") == 0) {
        fprintf(stderr, "kycd: health: no admin listener (admin_listen is off)\n");
        config_deinit(&cfg);
        return CMD_USAGE;
    }
    kerr err;
    kerr_clear(&err);
    int status = 0;
    if (http_probe_get(addr, path, HEALTH_TIMEOUT_MS, &status, &err) != 0) {
        fprintf(stderr, "kycd: health: %s\n", err.msg);
        rc = CMD_FAILED;
    } else if (status != 200) {
        fprintf(stderr, "kycd: health: %s on %s answered %d\n", path, addr, status);
        rc = CMD_FAILED;
    } else {
        printf("kycd: %s on %s answered 200\n", path, addr);
        rc = CMD_OK;
    }
    config_deinit(&cfg);
    return rc;
}
