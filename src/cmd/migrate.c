/* `kycd migrate` (see migrate.h). Must never: check the schema before
 * migrating (making it ready is the point), or leave a migration half
 * applied (io/migrate runs each in one transaction). */
#include "cmd/migrate.h"

#include "base/log.h"
#include "cmd/common.h"
#include "io/migrate.h"

int cmd_migrate(int argc, char **argv, const cmd_ctl *ctl)
{
    kycd_config cfg;
    cmd_needs needs = {.db = CMD_DB_NONE}; /* the schema is what migrate makes ready */
    int rc = cmd_begin(&cfg, argc, argv, &needs, NULL);
    if (rc != 0)
        return rc;
    kerr err;
    kerr_clear(&err);
    db *d = NULL;
    db_opts o = cmd_db_options(&cfg);
    int applied = 0, version = 0;
    if (db_connect(&d, &o, &err) != 0 || db_migrate(d, &applied, &err) != 0 ||
        db_schema_version(d, &version, &err) != 0) {
        cmd_report("migrate failed", &err);
        rc = CMD_FAILED;
    } else {
        klog(KLOG_INFO, "migrate done", KLOG_INT("applied", applied), KLOG_INT("schema", version));
    }
    db_free(d);
    config_deinit(&cfg);
    return rc;
}
