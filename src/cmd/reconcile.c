/* `kycd reconcile --once` (see reconcile.h). Must never: run without
 * --once (a second, unmanaged reconciler beside serve's), or print the API
 * key.
 *
 * One pass (app/reconciler.h): each user due when it starts is checked at
 * most once, or up to RECONCILER_PASS_TRIES times when P100 answers 429
 * (Retry-After at most RECONCILER_PASS_WAIT_MAX_MS) or a transient error
 * (P500, P501, 5xx, timeout; 1 s apart). Exit status:
 *   0  every user due at the start was checked (answered, or flagged)
 *   1  a runtime failure: the database, or a check kycd could not record
 *   2  P100 refused our credentials (401/403): the pass stopped
 *   3  some users were left for a later pass (still 429 or transient)
 * (README.md, "Commands", has the same table.) */
#include "cmd/reconcile.h"

#include <stdio.h>

#include "app/reconciler.h"
#include "cmd/common.h"

/* Exit 3 means, for this command, "some users left for a later pass"
 * (cmd.h's code 3, CMD_UNKNOWN, is `status`'s unknown user). */
enum { RECONCILE_LEFT = 3 };

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
           "%lld to retry, %lld rate-limited, %lld refused (401), %lld errors; "
           "%lld re-checks of settled users (%lld corrected), %lld left for a later pass\n",
           st.checks, st.applied, st.unchanged, st.flagged, st.retries, st.rate_limited,
           st.misconfigured, st.errors, st.rechecks, st.recheck_applied, st.left);
    if (st.misconfigured > 0)
        rc = CMD_USAGE; /* our API key or address: configuration */
    else if (st.errors > 0)
        rc = CMD_FAILED;
    else if (st.left > 0)
        rc = RECONCILE_LEFT;
    else
        rc = CMD_OK;
out:
    config_deinit(&cfg);
    return rc;
}
