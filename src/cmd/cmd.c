/* The command table (see cmd.h). Must never: hold command logic; a row
 * points at its command's own file, src/cmd/<command>.c (create-kyc:
 * create_kyc.c), through that file's header. */
#include "cmd/cmd.h"

#include <string.h>

#include "cmd/archive.h"
#include "cmd/attention.h"
#include "cmd/changes.h"
#include "cmd/config.h"
#include "cmd/create_kyc.h"
#include "cmd/erase.h"
#include "cmd/health.h"
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

/* Each command's help (cmd.h: plain text, lines of at most 76 characters,
 * paragraphs separated by an empty line), printed by `kycd COMMAND --help`
 * and as its paragraphs in kycd(8). */
static const char help_serve[] =
    "Run the HTTPS webhook receiver: check each delivery's webhook token, store\n"
    "it durably in PostgreSQL (while the database is away, in the local spool)\n"
    "before answering 200, and run the reconciler thread unless reconcile = off.\n"
    "The admin listener (admin_listen) answers /healthz, /readyz, /status and\n"
    "/metrics.\n"
    "\n"
    "It refuses to start, with one log line naming the problem, when no webhook\n"
    "token is configured, the database is not migrated to this binary's schema\n"
    "(or is unreachable and there is no spool), the certificate or key cannot be\n"
    "loaded, or a key is unknown or bad. SIGTERM or SIGINT drains (requests in\n"
    "flight get shutdown_timeout) and exits 0; a second signal exits 1 at once.\n"
    "SIGHUP reloads the tokens, allowed networks, certificates and log level.\n";
static const char help_migrate[] =
    "Apply the schema migrations compiled into this binary, each in one\n"
    "transaction; safe to run from several hosts at once. Run it once per\n"
    "release, as the database owner, before restarting kycd serve: serve\n"
    "refuses a database that is not at its schema. Then the configured\n"
    "re-check policy (recheck_rejected_after, recheck_rejected_for,\n"
    "recheck_verified_every) becomes the database's, and every settled user\n"
    "is stamped under it, 10,000 per transaction, when it changed.\n";
static const char help_config[] =
    "Print the effective configuration (the file, then KYCD_* variables, then\n"
    "flags), secrets redacted.\n"
    "\n"
    "--check makes every check kycd serve makes before it listens (the keys,\n"
    "tokens and networks, the API key for the reconciler, TLS, the certificate\n"
    "and key, the database reachable and migrated) and serves nothing: run it\n"
    "before a reload or a restart. Exit 0 when all pass, 2 with one line per\n"
    "problem otherwise.\n"
    "\n"
    "--reference markdown|man prints every key with its default and meaning (the\n"
    "table of docs/configuration.md, the KEYS section of kycd.conf(5)); it needs\n"
    "no configuration.\n";
static const char help_reconcile[] =
    "Run one reconciler pass: ask P100's Get KYC Status about every user due\n"
    "when it starts (late, out-of-order or missing webhooks), at most once each,\n"
    "store what changed, print a summary line and exit (for cron). Exit 3 when\n"
    "some users were left for a later pass. Needs the P100 API key and a\n"
    "migrated database.\n";
static const char help_create_kyc[] =
    "Create a KYC verification at P100 for the user, record the user as\n"
    "pending, and print the redirect URL to send the user to. An error answer\n"
    "from P100 is printed with what it means. Needs the P100 API key and a\n"
    "migrated database.\n";
static const char help_spool[] =
    "status shows the spool's depth and age; drain replays it into the\n"
    "database. Both only while kycd serve is stopped: a running kycd holds the\n"
    "spool's lock and drains it itself.\n"
    "\n"
    "dead-letters lists the deliveries the database refused for good, with the\n"
    "reason (--porcelain: tab-separated, one a line); it reads the folder only\n"
    "and works while kycd runs. replay FILE stores one dead letter through the\n"
    "normal write path and removes it once stored.\n";
static const char help_attention[] =
    "list prints the users the reconciler flagged for a person (P100 answered\n"
    "something final about them, or failed too often), oldest check first,\n"
    "with what each was flagged for. retry USER, or retry --all, gives them\n"
    "back to the reconciler: the flag and failure count are cleared and each\n"
    "is checked with P100 at once. --reason TEXT says why. Every retry is\n"
    "recorded in kyc.attention_actions: who (database role, OS user, host),\n"
    "when, why, which users and what each was flagged for. A new webhook for a\n"
    "flagged user also gives it back. Needs a migrated database.\n";
static const char help_erase[] =
    "Carry out an erasure request as pseudonymisation (docs/erasure.md): in one\n"
    "transaction, replace the user's externalUserId everywhere kycd stores it\n"
    "(the current state, every history table, the raw webhook and check bodies,\n"
    "the quarantine, the records of operator actions) with a pseudonym,\n"
    "\"erased-\" and 32 hex digits of HMAC-SHA-256 under erase_key, and record\n"
    "who, when, --reason TEXT (required: the request's reference) and the\n"
    "pseudonym in kyc.erasures, never the id. Statuses, rejection reasons and\n"
    "times are kept: AML record-keeping. The same key gives the same pseudonym,\n"
    "so whoever holds it can still find the records; without it they cannot be\n"
    "linked back to the id.\n"
    "\n"
    "Exit 0 when erased, or when an earlier erasure already did it (nothing\n"
    "holds the id); 3 when kycd holds nothing under the id and never erased it;\n"
    "2 without --reason or without an erase_key of 32 characters or more. A\n"
    "webhook for the same id arriving later is stored under the id again (a\n"
    "new user to kycd); erasing again moves it to the same pseudonym. Run it as\n"
    "the database owner (the only role kyc.erase_user is granted to).\n";
static const char help_replay[] =
    "Run the stored deliveries received from --since TIME (before --until, of\n"
    "one --user) again through the current rules, in received order. A\n"
    "quarantined delivery (its body failed validation when it arrived) that the\n"
    "rules now accept is applied through the state machine, as a late webhook\n"
    "with its own receipt time; one they still refuse stays quarantined; a\n"
    "delivery already stored (applied, held, or replayed before) is a repeat and\n"
    "changes nothing, so a second run changes nothing. --dry-run prints what\n"
    "would change and changes nothing. Every run is recorded in\n"
    "kyc.replay_runs. Exit 2 without --since or with a time PostgreSQL cannot\n"
    "read.\n";
static const char help_status[] =
    "Print what kycd stored about the user: the current state, its history, the\n"
    "latest webhooks and checks, whatever the database's schema. --live also\n"
    "asks P100 (needs the API key). Exit 3 when kycd does not know the user.\n";
static const char help_changes[] =
    "Print every change of a user's state (a row of kyc.status_changes) that\n"
    "committed after the replication slot's position, or after --since CURSOR,\n"
    "once each, in commit order, as one JSON line per change; each line carries\n"
    "the cursor to resume from. --follow keeps waiting for new changes (woken by\n"
    "the NOTIFY on kyc_status_changes) until killed. The slot (--slot NAME,\n"
    "default kycd_changes; created on first use) advances only past lines\n"
    "already written and flushed. Needs a role with the REPLICATION attribute\n"
    "and a server with wal_level = logical: docs/feed.md.\n";
static const char help_partitions[] =
    "List the monthly partitions of the history tables. --create makes the\n"
    "current month's and the ones ahead (partitions_ahead), where missing.\n";
static const char help_retention[] =
    "Drop the history partitions older than the retention key, never one the\n"
    "current state points into. --dry-run lists them and drops nothing. Export\n"
    "them first with kycd archive where they must be kept.\n";
static const char help_archive[] =
    "Export every history partition wholly before DATE (YYYY-MM-DD) into DIR:\n"
    "one gzipped COPY file per partition, a manifest (manifest.tsv) and their\n"
    "SHA-256 sums (SHA256SUMS). It deletes nothing: kycd retention drops.\n";
static const char help_vocabulary[] =
    "Print the values P100 documents that this kycd knows, and kycd's own\n"
    "codes, one a line: FIELD, p100 or kycd, VALUE, tab-separated (--p100:\n"
    "P100's only). Needs no configuration.\n";
static const char help_health[] =
    "GET /healthz (or PATH, e.g. /readyz) from this host's admin listener\n"
    "(admin_listen, plain HTTP on loopback; a wildcard address is reached on\n"
    "loopback) within 2 s: exit 0 when it answers 200, 1 otherwise, with the\n"
    "reason on stderr. The container image's HEALTHCHECK, which so needs no\n"
    "curl. Reads the configuration for admin_listen only.\n";
static const char help_version[] =
    "Print the versions of kycd, its database schema, CivetWeb and OpenSSL.\n"
    "Needs no configuration.\n";

static int cmd_help(int argc, char **argv, const cmd_ctl *ctl);

static const cmd_entry table[] = {
    {"serve", cmd_serve, "  serve     run the HTTPS webhook receiver\n", 1, help_serve},
    {"migrate", cmd_migrate,
     "  migrate   apply the database migrations (safe to run from several hosts)\n", 0,
     help_migrate},
    {"config", cmd_config,
     "  config [--check]\n"
     "            print the effective configuration, secrets redacted (--check: make\n"
     "            every check serve makes before it listens, and serve nothing)\n"
     "  config --reference markdown|man\n"
     "            print every key with its default and meaning (kycd.conf(5))\n",
     0, help_config},
    {"reconcile", cmd_reconcile,
     "  reconcile --once\n"
     "            check every due user with P100 once, then exit (for cron)\n",
     0, help_reconcile},
    {"create-kyc", cmd_create_kyc,
     "  create-kyc --external-user-id ID --document-type T --country CC\n"
     "             --income-source S --open-account-reason R [--occupation O]\n"
     "             [--additional-info TEXT] [--tax-id ID]\n"
     "            create a KYC verification at P100, record it, print the redirect URL\n",
     0, help_create_kyc},
    {"spool", cmd_spool,
     "  spool status|drain\n"
     "            show the local spool, or replay it into the database (kycd stopped)\n"
     "  spool dead-letters [--porcelain]\n"
     "            list the deliveries the database refused for good, with the reason\n"
     "  spool replay FILE\n"
     "            store one dead letter through the normal path; removed once stored\n",
     0, help_spool},
    {"attention", cmd_attention,
     "  attention list | retry USER [--reason TEXT] | retry --all [--reason TEXT]\n"
     "            the users flagged for a person, and give one (or all) back to the\n"
     "            reconciler (recorded in kyc.attention_actions)\n",
     0, help_attention},
    {"erase", cmd_erase,
     "  erase EXTERNAL_USER_ID --reason TEXT\n"
     "            replace the user's id everywhere with a keyed pseudonym (an erasure\n"
     "            request; recorded in kyc.erasures)\n",
     0, help_erase},
    {"replay", cmd_replay,
     "  replay --since TIME [--until TIME] [--user ID] [--dry-run]\n"
     "            run the stored deliveries received since TIME again through the\n"
     "            current rules: a quarantined one they now accept is applied, anything\n"
     "            stored already changes nothing (--dry-run: print what would change)\n",
     0, help_replay},
    {"status", cmd_status,
     "  status EXTERNAL_USER_ID [--live]\n"
     "            print the stored state and history (--live: ask P100 too)\n",
     0, help_status},
    {"changes", cmd_changes,
     "  changes [--since CURSOR] [--follow] [--slot NAME]\n"
     "            print each change of a user's state once, in commit order, as JSON\n"
     "            lines with the cursor to resume from (a logical replication slot)\n",
     0, help_changes},
    {"partitions", cmd_partitions,
     "  partitions [--create]\n"
     "            list the history tables' monthly partitions (--create: the current\n"
     "            month's and the next two, if missing)\n",
     0, help_partitions},
    {"retention", cmd_retention,
     "  retention [--dry-run]\n"
     "            drop the history partitions older than `retention` (never one the\n"
     "            current state points into; --dry-run: list them)\n",
     0, help_retention},
    {"archive", cmd_archive,
     "  archive --before DATE --to DIR\n"
     "            export the partitions wholly before DATE (COPY, gzip, manifest, SHA-256)\n",
     0, help_archive},
    {"vocabulary", cmd_vocabulary,
     "  vocabulary [--p100]\n"
     "            print the values P100 documents (and kycd's own codes) that this\n"
     "            kycd knows, one a line: FIELD, p100 or kycd, VALUE\n",
     0, help_vocabulary},
    {"health", cmd_health,
     "  health [--path PATH]\n"
     "            GET /healthz from the admin listener on loopback; exit 0 on 200\n",
     0, help_health},
    {"version", cmd_version, "  version   print versions\n", 0, help_version},
    /* aliases */
    {"--version", cmd_version, NULL, 0, NULL},
    {"help", cmd_help, NULL, 0, NULL},
    {"--help", cmd_help, NULL, 0, NULL},
    {"-h", cmd_help, NULL, 0, NULL},
};

#define NROWS (sizeof table / sizeof table[0])

size_t cmd_count(void)
{
    return NROWS;
}

const cmd_entry *cmd_at(size_t i)
{
    return i < NROWS ? &table[i] : NULL;
}

const cmd_entry *cmd_find(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < NROWS; i++)
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
    for (size_t i = 0; i < NROWS; i++)
        if (table[i].usage != NULL)
            fputs(table[i].usage, out);
    fputs("\n"
          "Configuration comes from the file, then KYCD_* environment variables, then\n"
          "flags; kycd.conf(5) has every key. Secrets are never accepted as flags.\n"
          "kycd COMMAND --help says what a command does; kycd(8) has them all.\n",
          out);
}

/* The listed row an alias stands for (the row itself when listed). */
static const cmd_entry *listed(const cmd_entry *c)
{
    if (c == NULL || c->usage != NULL)
        return c;
    for (size_t i = 0; i < NROWS; i++)
        if (table[i].usage != NULL && table[i].run == c->run)
            return &table[i];
    return NULL;
}

int cmd_help_requested(const cmd_entry *c, int argc, char **argv)
{
    if (c == NULL || c->run == cmd_help)
        return 0;
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    return 0;
}

void cmd_print_help(const cmd_entry *c, FILE *out)
{
    c = listed(c);
    if (c == NULL) {
        cmd_print_usage(out);
        return;
    }
    fputs("usage:\n", out);
    fputs(c->usage, out);
    if (c->help != NULL) {
        fputc('\n', out);
        fputs(c->help, out);
    }
    fputs("\n"
          "Configuration comes from the file (--config FILE or KYCD_CONFIG), then\n"
          "KYCD_* environment variables, then flags (--KEY VALUE): kycd.conf(5).\n"
          "Exit status, environment and examples: kycd(8).\n",
          out);
}

/* n bytes of s, escaped for roff text: the escape character, hyphens
 * (minus signs in options), grave accents and double quotes. */
static void roff_put(const char *s, size_t n, FILE *out)
{
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '\\':
            fputs("\\e", out);
            break;
        case '-':
            fputs("\\-", out);
            break;
        case '`':
            fputs("\\(ga", out);
            break;
        case '"':
            fputs("\\(dq", out);
            break;
        default:
            fputc(s[i], out);
        }
    }
}

/* The synopsis of one listed row from its usage lines (cmd.h's format: a
 * form starts at column 2, its continuation is indented past column 12, its
 * description starts at column 12 or after a gap of three spaces). */
static void man_synopsis(const char *usage, FILE *out)
{
    fputs(".nf\n", out);
    for (const char *p = usage; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        size_t ind = 0;
        while (ind < len && p[ind] == ' ')
            ind++;
        const char *text = p + ind;
        size_t tlen = len - ind;
        const char *gap = memmem(text, tlen, "   ", 3);
        if (gap != NULL)
            tlen = (size_t)(gap - text);
        if (ind == 2) {
            fputs("\\fBkycd ", out);
            roff_put(text, tlen, out);
            fputs("\\fR\n", out);
        } else if (ind > 12 && tlen > 0) {
            fputs("\\&      \\fB", out);
            roff_put(text, tlen, out);
            fputs("\\fR\n", out);
        }
        p += len + (nl ? 1 : 0);
    }
    fputs(".fi\n", out);
}

void cmd_print_man(FILE *out)
{
    for (size_t i = 0; i < NROWS; i++) {
        const cmd_entry *c = &table[i];
        if (c->usage == NULL)
            continue;
        fputs(".SS ", out);
        roff_put(c->name, strlen(c->name), out);
        fputc('\n', out);
        man_synopsis(c->usage, out);
        fputs(".PP\n", out);
        for (const char *p = c->help ? c->help : ""; *p;) {
            const char *nl = strchr(p, '\n');
            size_t len = nl ? (size_t)(nl - p) : strlen(p);
            if (len == 0) {
                fputs(".PP\n", out);
            } else {
                if (p[0] == '.' || p[0] == '\'')
                    fputs("\\&", out);
                roff_put(p, len, out);
                fputc('\n', out);
            }
            p += len + (nl ? 1 : 0);
        }
    }
}

/* `kycd help`, `kycd --help`, `kycd -h`: the usage text; `kycd help
 * COMMAND`: that command's help; `kycd help --reference man`: kycd(8)'s
 * COMMANDS section (docs/reference.cmake). */
static int cmd_help(int argc, char **argv, const cmd_ctl *ctl)
{
    if (argc == 0) {
        cmd_print_usage(stdout);
    } else if (argc == 2 && strcmp(argv[0], "--reference") == 0 && strcmp(argv[1], "man") == 0) {
        cmd_print_man(stdout);
    } else if (argc == 1 && cmd_find(argv[0]) != NULL) {
        cmd_print_help(cmd_find(argv[0]), stdout);
    } else {
        fprintf(stderr, "kycd: usage: kycd help [COMMAND | --reference man]\n");
        return CMD_USAGE;
    }
    return fflush(stdout) == 0 && !ferror(stdout) ? CMD_OK : CMD_FAILED;
}
