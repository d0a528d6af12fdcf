/* `kycd erase` (see erase.h). Must never print or log the user's id (only
 * its pseudonym), nor the key; the rewrite and its record happen in the
 * database's one transaction (io/db_erase, sql/017_erase.sql). */
#include "cmd/erase.h"

#include <stdio.h>

#include "cmd/common.h"
#include "core/token.h"
#include "io/db_erase.h"

static const char usage[] = "usage: kycd erase EXTERNAL_USER_ID --reason TEXT\n";

static int report(const db_erase_result *res, const char *pseudonym)
{
    switch (res->outcome) {
    case DB_ERASED:
        printf("erased: the user's rows now carry %s (rows rewritten: %s); recorded in "
               "kyc.erasures id=%lld at %s\n",
               pseudonym, res->rewritten, res->erasure_id, res->at);
        return CMD_OK;
    case DB_ERASE_ALREADY:
        printf("already erased: nothing holds this id; kyc.erasures id=%lld at %s replaced it "
               "with %s (nothing recorded now)\n",
               res->erasure_id, res->at, pseudonym);
        return CMD_OK;
    case DB_ERASE_UNKNOWN:
    default:
        fputs("unknown user: kycd holds nothing under this id and never erased it (nothing "
              "recorded)\n",
              stdout);
        return CMD_UNKNOWN;
    }
}

int cmd_erase(int argc, char **argv, const cmd_ctl *ctl)
{
    (void)ctl;
    cmd_flag f[] = {{"--reason", 1, NULL}};
    const char *user = NULL;
    if (cmd_take_flags(&argc, argv, f, 1, &user) != 0)
        return CMD_USAGE;
    if (user == NULL || user[0] == '\0' || f[0].value == NULL || f[0].value[0] == '\0') {
        fputs(usage, stderr);
        return CMD_USAGE;
    }
    kycd_config cfg;
    if (cmd_load(&cfg, argc, argv) != 0)
        return CMD_USAGE;
    char pseudonym[TOKEN_PSEUDONYM_LEN + 1];
    kerr err;
    kerr_clear(&err);
    if (token_pseudonym(cfg.erase_key, user, pseudonym, &err) != 0) {
        cmd_report("erase refused", &err);
        config_deinit(&cfg);
        return CMD_USAGE;
    }
    db *d = NULL;
    int rc = cmd_open_db(&cfg, CMD_DB_READY, &d);
    if (rc != 0) {
        config_deinit(&cfg);
        return rc;
    }
    char os_user[64], host[256];
    cmd_who(os_user, sizeof os_user, host, sizeof host);
    db_erase_result res;
    if (db_erase_user(d, user, pseudonym, f[0].value, os_user[0] ? os_user : NULL,
                      host[0] ? host : NULL, &res, &err) != 0) {
        cmd_report("erase failed", &err);
        rc = CMD_FAILED;
    } else {
        rc = report(&res, pseudonym);
    }
    db_free(d);
    config_deinit(&cfg);
    return rc;
}
