/* The command table (see cmd.h). Must never: hold command logic; a row
 * points at its command's own file, src/cmd/<command>.c (create-kyc:
 * create_kyc.c), through that file's header. */
#include "cmd/cmd.h"

#include <string.h>

#include "cmd/archive.h"
#include "cmd/config.h"
#include "cmd/create_kyc.h"
#include "cmd/migrate.h"
#include "cmd/partitions.h"
#include "cmd/reconcile.h"
#include "cmd/replay.h"
#include "cmd/retention.h"
#include "cmd/serve.h"
#include "cmd/spool.h"
#include "cmd/status.h"
#include "cmd/version.h"
#include "cmd/vocabulary.h"

static int cmd_help(int argc, char **argv, const cmd_ctl *ctl)
{
    cmd_print_usage(stdout);
    return CMD_OK;
}

static const cmd_entry table[] = {
    {"serve", cmd_serve, "  serve     run the HTTPS webhook receiver\n", 1},
    {"migrate", cmd_migrate,
     "  migrate   apply the database migrations (safe to run from several hosts)\n", 0},
    {"config", cmd_config,
     "  config [--check]\n"
     "            print the effective configuration, secrets redacted (--check: make\n"
     "            every check serve makes before it listens, and serve nothing)\n"
     "  config --reference markdown|man\n"
     "            print every key with its default and meaning (README, kycd.conf(5))\n",
     0},
    {"reconcile", cmd_reconcile,
     "  reconcile --once\n"
     "            check every due user with P100 once, then exit (for cron)\n",
     0},
    {"create-kyc", cmd_create_kyc,
     "  create-kyc --external-user-id ID --document-type T --country CC\n"
     "             --income-source S --open-account-reason R [--occupation O]\n"
     "             [--additional-info TEXT] [--tax-id ID]\n"
     "            create a KYC verification at P100, record it, print the redirect URL\n",
     0},
    {"spool", cmd_spool,
     "  spool status|drain\n"
     "            show the local spool, or replay it into the database (kycd stopped)\n"
     "  spool dead-letters [--porcelain]\n"
     "            list the deliveries the database refused for good, with the reason\n"
     "  spool replay FILE\n"
     "            store one dead letter through the normal path; removed once stored\n",
     0},
    {"replay", cmd_replay,
     "  replay --since TIME [--until TIME] [--user ID] [--dry-run]\n"
     "            run the stored deliveries received since TIME again through the\n"
     "            current rules: a quarantined one they now accept is applied, anything\n"
     "            stored already changes nothing (--dry-run: print what would change)\n",
     0},
    {"status", cmd_status,
     "  status EXTERNAL_USER_ID [--live]\n"
     "            print the stored state and history (--live: ask P100 too)\n",
     0},
    {"partitions", cmd_partitions,
     "  partitions [--create]\n"
     "            list the history tables' monthly partitions (--create: the current\n"
     "            month's and the next two, if missing)\n",
     0},
    {"retention", cmd_retention,
     "  retention [--dry-run]\n"
     "            drop the history partitions older than `retention` (never one the\n"
     "            current state points into; --dry-run: list them)\n",
     0},
    {"archive", cmd_archive,
     "  archive --before DATE --to DIR\n"
     "            export the partitions wholly before DATE (COPY, gzip, manifest, SHA-256)\n",
     0},
    {"vocabulary", cmd_vocabulary,
     "  vocabulary [--p100]\n"
     "            print the values P100 documents (and kycd's own codes) that this\n"
     "            kycd knows, one a line: FIELD, p100 or kycd, VALUE\n",
     0},
    {"version", cmd_version, "  version   print versions\n", 0},
    /* aliases */
    {"--version", cmd_version, NULL, 0},
    {"help", cmd_help, NULL, 0},
    {"--help", cmd_help, NULL, 0},
    {"-h", cmd_help, NULL, 0},
};

const cmd_entry *cmd_find(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

void cmd_print_usage(FILE *out)
{
    fputs("usage: kycd COMMAND [--config FILE] [--KEY VALUE ...]\n"
          "\n"
          "commands:\n",
          out);
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].usage != NULL)
            fputs(table[i].usage, out);
    fputs("\n"
          "Configuration comes from the file, then KYCD_* environment variables, then\n"
          "flags; see README.md for every key. Secrets are never accepted as flags.\n",
          out);
}
