/* `kycd config` (see config.h). Must never: print a secret (config_print
 * redacts them), open the spool (a running kycd holds its lock), or
 * serve anything. */
#include "cmd/config.h"

#include <stdio.h>
#include <string.h>

#include "app/server.h"
#include "cmd/common.h"
#include "io/config_check.h"
#include "io/config_print.h"
#include "io/config_reference.h"
#include "io/migrate.h"
#include "io/tls.h"

/* `kycd config --check` (as `nginx -t`): every check `kycd serve` makes
 * before it listens (configuration, tokens and networks, API key for the
 * reconciler, TLS in this build, certificate and key load and match, the
 * database reachable and migrated to this binary's schema), each problem
 * on a line of its own, and nothing served. The spool is not opened: a
 * running kycd holds its lock, and checking before a reload is the point. */
static int config_check(kycd_config *cfg)
{
    int problems = 0;
    kerr err;
    kerr_clear(&err);
    if (config_check_serve(cfg, &err) != 0) {
        cmd_report("configuration refused", &err);
        problems++;
    }
    if (cfg->reconcile && cmd_need_api_key(cfg, "the reconciler") != 0)
        problems++;
    if (server_tls_available(&err) != 0) {
        cmd_report("tls unavailable", &err);
        problems++;
    }
    tls_opts tls = {cfg->tls_cert, cfg->tls_key, cfg->tls_chain, cfg->tls_ciphers,
                    cfg->tls_client_ca};
    if (cfg->tls_cert && cfg->tls_key && tls_check(&tls, &err) != 0) {
        cmd_report("tls configuration refused", &err);
        problems++;
    }
    db *d = NULL;
    if (cmd_open_db(cfg, CMD_DB_READY, &d) != 0)
        problems++;
    db_free(d);
    if (problems == 0) {
        printf("kycd: configuration ok (schema %d, %d webhook token%s)\n", migrate_latest_version(),
               cfg->tokens.count, cfg->tokens.count == 1 ? "" : "s");
        return CMD_OK;
    }
    fprintf(stderr, "kycd: configuration check failed: %d problem%s (one line each above)\n",
            problems, problems == 1 ? "" : "s");
    return CMD_USAGE;
}

int cmd_config(int argc, char **argv, const cmd_ctl *ctl)
{
    cmd_flag flags[] = {{"--check", 0, NULL}, {"--reference", 1, NULL}};
    if (cmd_take_flags(&argc, argv, flags, 2, NULL) != 0)
        return CMD_USAGE;
    /* The documentation of every key (the README's table, kycd.conf(5)):
     * from the table alone, so no configuration is loaded. */
    const char *ref = flags[1].value;
    if (ref != NULL) {
        if (argc != 0 || flags[0].value != NULL ||
            (strcmp(ref, "markdown") != 0 && strcmp(ref, "man") != 0)) {
            fprintf(stderr, "kycd: usage: kycd config --reference markdown|man\n");
            return CMD_USAGE;
        }
        config_reference(strcmp(ref, "man") == 0 ? CONFIG_REF_MAN : CONFIG_REF_MARKDOWN, stdout);
        return fflush(stdout) == 0 && !ferror(stdout) ? CMD_OK : CMD_FAILED;
    }
    kycd_config cfg;
    cmd_needs needs = {.db = CMD_DB_NONE};
    int rc = cmd_begin(&cfg, argc, argv, &needs, NULL);
    if (rc == 0 && flags[0].value)
        rc = config_check(&cfg);
    else if (rc == 0)
        config_print(&cfg, stdout);
    config_deinit(&cfg);
    return rc;
}
