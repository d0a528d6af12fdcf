/* `kycd reconcile --once` (see reconcile.h). Must never: run without
 * --once (a second, unmanaged reconciler beside serve's), or print the API
 * key. */
#include "cmd/reconcile.h"

#include <stdio.h>

#include "app/reconciler.h"
#include "cmd/common.h"

int cmd_reconcile(int argc, char **argv, const cmd_ctl *ctl)
{
    cmd_flag flags[] = {{"--once", 0, NULL}};
    if (cmd_take_flags(&argc, argv, flags, 1, NULL) != 0)
        return CMD_USAGE;
    if (!flags[0].value) {
        fprintf(stderr, "kycd: reconcile runs inside `kycd serve`; use `kycd reconcile --once` "
                        "for a single pass\n");
        return CMD_USAGE;
    }
    kycd_config cfg;
    cmd_needs needs = {.api_key_for = "kycd reconcile", .db = CMD_DB_READY};
    int rc = cmd_begin(&cfg, argc, argv, &needs, NULL);
    if (rc != 0)
        return rc;
    kerr err;
    kerr_clear(&err);
    reconciler *rec = NULL;
    reconciler_opts ro = cmd_reconciler_options(&cfg, 1);
    if (reconciler_start(&rec, &ro, &err) != 0) {
        cmd_report("cannot start the reconciler", &err);
        rc = CMD_FAILED;
        goto out;
    }
    reconciler_wait(rec);
    reconciler_stats st;
    reconciler_stop(rec, &st);
    printf("checked %lld users: %lld corrected, %lld unchanged, %lld flagged for a person, "
           "%lld to retry, %lld rate-limited, %lld refused (401), %lld errors\n",
           st.checks, st.applied, st.unchanged, st.flagged, st.retries, st.rate_limited,
           st.misconfigured, st.errors);
    rc = st.misconfigured > 0 || st.errors > 0 ? CMD_FAILED : CMD_OK;
out:
    config_deinit(&cfg);
    return rc;
}
