/* What every command shares: its own flags taken out of argv, the
 * configuration loaded (file, environment, flags), the mappings from the
 * configuration to each module's options, and the prologue "load the
 * configuration, check the API key, open a database at this binary's
 * schema, report the error" that each command would otherwise repeat.
 *
 * Errors are reported here, once, on stderr (usage) or as a log line
 * (everything else); callers only return the exit code they are given. */
#ifndef KYCD_CMD_COMMON_H
#define KYCD_CMD_COMMON_H

#include "app/ingest.h"
#include "app/reconciler.h"
#include "base/err.h"
#include "io/config.h"
#include "io/db.h"
#include "io/p100.h"
#include "io/spool.h"

/* A command-specific flag, taken out of argv before the rest goes to the
 * configuration loader (which refuses anything it does not know). */
typedef struct cmd_flag {
    const char *name; /* "--once" */
    int takes_value;
    const char *value; /* out: the value, or "1" for a switch; NULL if absent */
} cmd_flag;

/* Takes `flags` (as "--name", "--name=value" or "--name value") out of
 * argv[0..*argc), compacting what is left and updating *argc. With
 * `positional`, the first bare word that is not the value of a preceding
 * flag is taken out too (NULL if none). CMD_USAGE, with a line on stderr,
 * when a flag lacks its value; 0 otherwise. */
int cmd_take_flags(int *argc, char **argv, cmd_flag *flags, int nflags, const char **positional);

/* Log line "level=error msg=WHAT error=..." for a failure. */
void cmd_report(const char *what, const kerr *err);

/* Load the configuration from environ and argv and set the log level.
 * CMD_USAGE, with the reason on stderr, when it cannot be loaded (then cfg
 * is already deinitialised; calling config_deinit again is harmless). */
int cmd_load(kycd_config *cfg, int argc, char **argv);

/* CMD_USAGE, with a log line naming `what`, when no P100 API key is set. */
int cmd_need_api_key(const kycd_config *cfg, const char *what);

enum cmd_db_need {
    CMD_DB_NONE,  /* no database */
    CMD_DB_ANY,   /* a connection, whatever its schema (status) */
    CMD_DB_READY, /* a connection to a database migrated to this binary's schema */
};

/* Open the database as `need` says. CMD_FAILED, with a "database not ready"
 * log line, when it cannot; *out is NULL then. */
int cmd_open_db(const kycd_config *cfg, enum cmd_db_need need, db **out);

typedef struct cmd_needs {
    const char *api_key_for; /* non-NULL: an API key is required, for this */
    enum cmd_db_need db;
} cmd_needs;

/* The prologue: cmd_load, then cmd_need_api_key, then cmd_open_db, stopping
 * at the first that fails and returning its exit code with everything
 * released (cfg deinitialised, *d NULL). With d NULL the database is only
 * checked (opened and closed again). */
int cmd_begin(kycd_config *cfg, int argc, char **argv, const cmd_needs *needs, db **d);

/* Configuration to module options. The results borrow cfg's strings. */
db_opts cmd_db_options(const kycd_config *cfg);
p100_opts cmd_p100_options(const kycd_config *cfg);
reconciler_opts cmd_reconciler_options(const kycd_config *cfg, int once);
/* The configured re-check policy (recheck_rejected_after, _for,
 * recheck_verified_every), for the reconciler and `kycd migrate`. */
db_recheck_policy cmd_recheck_policy(const kycd_config *cfg);
/* The write path's options, shared by serve and spool drain. */
ingest_opts cmd_ingest_options(const kycd_config *cfg, spool *sp, int pool_size, int drainer);

/* Open the spool named by spool_dir; *out NULL when none is configured. */
int cmd_open_spool(const kycd_config *cfg, spool **out, kerr *err) KYCD_MUST_CHECK;

/* P100's error answer, explained, on stderr. */
void cmd_print_p100_error(const p100_result *res);

/* The operating-system user running the command and the host, for the
 * records of operator actions ("" when unknown). */
void cmd_who(char *user, size_t ucap, char *host, size_t hcap);

#endif
