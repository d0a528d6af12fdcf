/* `kycd migrate` (see migrate.h). Must never: check the schema before
 * migrating (making it ready is the point), or leave a migration half
 * applied (io/migrate runs each in one transaction). */
#include "cmd/migrate.h"

#include "base/log.h"
#include "cmd/common.h"
#include "io/db_reconcile.h"
#include "io/migrate.h"

/* The configured re-check policy becomes the database's, and every settled
 * user is stamped under it (kyc.verifications.recheck_at), in batches of
 * one short transaction each, so that webhooks never wait long on a user's
 * row: after a change of policy, or the migration that adds the stamps. */
static int apply_recheck_policy(db *d, const kycd_config *cfg, kerr *err)
{
    db_recheck_policy pol = cmd_recheck_policy(cfg);
    db_restamp rs = {0};
    long long total = 0;
    int changed = 0;
    do {
        if (db_recheck_policy_set(d, &pol, 10000, &rs, err) != 0)
            return -1;
        changed |= rs.changed;
        total += rs.restamped;
    } while (!rs.done);
    if (changed || total > 0)
        klog(KLOG_INFO, "re-check policy applied", KLOG_INT("changed", changed),
             KLOG_INT("users", total));
    return 0;
}

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
        db_schema_version(d, &version, &err) != 0 || apply_recheck_policy(d, &cfg, &err) != 0) {
        cmd_report("migrate failed", &err);
        rc = CMD_FAILED;
    } else {
        klog(KLOG_INFO, "migrate done", KLOG_INT("applied", applied), KLOG_INT("schema", version));
    }
    db_free(d);
    config_deinit(&cfg);
    return rc;
}
