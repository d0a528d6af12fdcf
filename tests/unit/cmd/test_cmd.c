/* Unit tests for cmd/cmd: the command table (every command's row points at
 * its own file's handler) and the usage text built from it. Flags are
 * tested in test_common.c, create-kyc's decision in test_create_kyc.c; the
 * commands themselves are tested end to end (tests/e2e). */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/archive.h"
#include "cmd/changes.h"
#include "cmd/cmd.h"
#include "cmd/config.h"
#include "cmd/create_kyc.h"
#include "cmd/health.h"
#include "cmd/migrate.h"
#include "cmd/partitions.h"
#include "cmd/reconcile.h"
#include "cmd/retention.h"
#include "cmd/serve.h"
#include "cmd/spool.h"
#include "cmd/status.h"
#include "cmd/version.h"

/* ---- the table */

static void test_find(void **state)
{
    static const char *names[] = {"serve",      "migrate", "config", "reconcile",
                                  "create-kyc", "spool",   "status", "version"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const cmd_entry *c = cmd_find(names[i]);
        assert_non_null(c);
        assert_string_equal(c->name, names[i]);
        assert_non_null(c->run);
        assert_non_null(c->usage);
        assert_int_equal(c->signals, strcmp(names[i], "serve") == 0);
    }
    assert_ptr_equal(cmd_find("serve")->run, cmd_serve);
    /* aliases run the same handler and are not listed */
    assert_ptr_equal(cmd_find("--version")->run, cmd_find("version")->run);
    assert_null(cmd_find("--version")->usage);
    assert_ptr_equal(cmd_find("-h")->run, cmd_find("help")->run);
    assert_ptr_equal(cmd_find("--help")->run, cmd_find("help")->run);
    /* exact names only */
    assert_null(cmd_find("serv"));
    assert_null(cmd_find("Serve"));
    assert_null(cmd_find("serve "));
    assert_null(cmd_find(""));
    assert_null(cmd_find(NULL));
}

/* The usage text built from the table is the one kycd always printed. */
static void test_usage(void **state)
{
    static const char want[] =
        "usage: kycd COMMAND [--config FILE] [--KEY VALUE ...]\n"
        "\n"
        "commands:\n"
        "  serve     run the HTTPS webhook receiver\n"
        "  migrate   apply the database migrations (safe to run from several hosts)\n"
        "  config [--check]\n"
        "            print the effective configuration, secrets redacted (--check: make\n"
        "            every check serve makes before it listens, and serve nothing)\n"
        "  config --reference markdown|man\n"
        "            print every key with its default and meaning (kycd.conf(5))\n"
        "  reconcile --once\n"
        "            check every due user with P100 once, then exit (for cron)\n"
        "  create-kyc --external-user-id ID --document-type T --country CC\n"
        "             --income-source S --open-account-reason R [--occupation O]\n"
        "             [--additional-info TEXT] [--tax-id ID]\n"
        "            create a KYC verification at P100, record it, print the redirect URL\n"
        "  spool status|drain\n"
        "            show the local spool, or replay it into the database (kycd stopped)\n"
        "  spool dead-letters [--porcelain]\n"
        "            list the deliveries the database refused for good, with the reason\n"
        "  spool replay FILE\n"
        "            store one dead letter through the normal path; removed once stored\n"
        "  attention list | retry USER [--reason TEXT] | retry --all [--reason TEXT]\n"
        "            the users flagged for a person, and give one (or all) back to the\n"
        "            reconciler (recorded in kyc.attention_actions)\n"
        "  erase EXTERNAL_USER_ID --reason TEXT\n"
        "            replace the user's id everywhere with a keyed pseudonym (an erasure\n"
        "            request; recorded in kyc.erasures)\n"
        "  replay --since TIME [--until TIME] [--user ID] [--dry-run]\n"
        "            run the stored deliveries received since TIME again through the\n"
        "            current rules: a quarantined one they now accept is applied, anything\n"
        "            stored already changes nothing (--dry-run: print what would change)\n"
        "  status EXTERNAL_USER_ID [--live]\n"
        "            print the stored state and history (--live: ask P100 too)\n"
        "  changes [--since CURSOR] [--follow] [--slot NAME]\n"
        "            print each change of a user's state once, in commit order, as JSON\n"
        "            lines with the cursor to resume from (a logical replication slot)\n"
        "  partitions [--create]\n"
        "            list the history tables' monthly partitions (--create: the current\n"
        "            month's and the next two, if missing)\n"
        "  retention [--dry-run]\n"
        "            drop the history partitions older than `retention` (never one the\n"
        "            current state points into; --dry-run: list them)\n"
        "  archive --before DATE --to DIR\n"
        "            export the partitions wholly before DATE (COPY, gzip, manifest, SHA-256)\n"
        "  vocabulary [--p100]\n"
        "            print the values P100 documents (and kycd's own codes) that this\n"
        "            kycd knows, one a line: FIELD, p100 or kycd, VALUE\n"
        "  health [--path PATH]\n"
        "            GET /healthz from the admin listener on loopback; exit 0 on 200\n"
        "  version   print versions\n"
        "\n"
        "Configuration comes from the file, then KYCD_* environment variables, then\n"
        "flags; kycd.conf(5) has every key. Secrets are never accepted as flags.\n"
        "kycd COMMAND --help says what a command does; kycd(8) has them all.\n";
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    cmd_print_usage(f);
    fclose(f);
    assert_string_equal(buf, want);
    free(buf);
}

/* Each row runs the handler of the file named after its command. */
static void test_rows_point_at_their_files(void **state)
{
    static const struct {
        const char *name;
        cmd_fn run;
    } rows[] = {
        {"serve", cmd_serve},         {"migrate", cmd_migrate},       {"config", cmd_config},
        {"reconcile", cmd_reconcile}, {"create-kyc", cmd_create_kyc}, {"spool", cmd_spool},
        {"status", cmd_status},       {"partitions", cmd_partitions}, {"retention", cmd_retention},
        {"archive", cmd_archive},     {"health", cmd_health},         {"version", cmd_version},
        {"changes", cmd_changes},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const cmd_entry *c = cmd_find(rows[i].name);
        assert_non_null(c);
        assert_ptr_equal(c->run, rows[i].run);
    }
}

static char *capture(void (*fn)(const cmd_entry *, FILE *), const cmd_entry *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    fn(c, f);
    fclose(f);
    return buf;
}

/* Every listed row has usage and help in cmd.h's format (so that --help and
 * kycd(8) have something to say about it); aliases have neither. A row added
 * without help fails here, by name. */
static void test_every_row_has_usage_and_help(void **state)
{
    size_t listed = 0;
    assert_null(cmd_at(cmd_count()));
    for (size_t i = 0; i < cmd_count(); i++) {
        const cmd_entry *c = cmd_at(i);
        assert_non_null(c);
        if (c->usage == NULL) {
            assert_null(c->help);
            continue;
        }
        listed++;
        if (c->help == NULL || c->help[0] == '\0')
            fail_msg("the row %s has no help", c->name);
        /* the usage starts with "  NAME" and ends with a newline */
        assert_int_equal(strncmp(c->usage, "  ", 2), 0);
        assert_int_equal(strncmp(c->usage + 2, c->name, strlen(c->name)), 0);
        assert_int_equal(c->usage[strlen(c->usage) - 1], '\n');
        assert_int_equal(c->help[strlen(c->help) - 1], '\n');
        for (const char *p = c->help; *p;) {
            size_t n = strcspn(p, "\n");
            if (n > 76)
                fail_msg("%s: a help line is %zu characters long: %.*s", c->name, n, (int)n, p);
            if (*p == '.' || *p == '\'')
                fail_msg("%s: a help line starts with %c (roff)", c->name, *p);
            p += n + (p[n] == '\n');
        }
        /* --help prints the usage and the help */
        char *out = capture(cmd_print_help, c);
        assert_non_null(strstr(out, c->usage));
        assert_non_null(strstr(out, c->help));
        free(out);
    }
    assert_true(listed >= 12);
}

/* `kycd CMD --help` or -h, wherever it is among the arguments, asks for the
 * help of every command but `help` itself; an alias prints its command's. */
static void test_help_requested(void **state)
{
    char a0[] = "--once", a1[] = "--help", a2[] = "-h", a3[] = "--helpful";
    char *with_long[] = {a0, a1}, *with_short[] = {a2}, *without[] = {a0, a3};
    for (size_t i = 0; i < cmd_count(); i++) {
        const cmd_entry *c = cmd_at(i);
        int is_help = cmd_find("help")->run == c->run;
        assert_int_equal(cmd_help_requested(c, 2, with_long), !is_help);
        assert_int_equal(cmd_help_requested(c, 1, with_short), !is_help);
        assert_int_equal(cmd_help_requested(c, 2, without), 0);
        assert_int_equal(cmd_help_requested(c, 0, NULL), 0);
    }
    char *alias = capture(cmd_print_help, cmd_find("--version"));
    char *row = capture(cmd_print_help, cmd_find("version"));
    assert_string_equal(alias, row);
    free(alias);
    free(row);
}

static void print_man(const cmd_entry *c, FILE *out)
{
    cmd_print_man(out);
}

/* kycd(8)'s COMMANDS: a subsection per listed row, its synopsis, its help;
 * minus signs escaped. */
static void test_man(void **state)
{
    char *man = capture(print_man, NULL);
    assert_non_null(strstr(man, ".SS serve\n.nf\n\\fBkycd serve\\fR\n.fi\n.PP\nRun the HTTPS"));
    assert_non_null(strstr(man, ".SS create\\-kyc\n"));
    assert_non_null(strstr(man, "\\fBkycd config [\\-\\-check]\\fR\n"));
    assert_non_null(strstr(man, "\\&      \\fB\\-\\-income\\-source S"));
    assert_null(
        strstr(man, "print every key with its default")); /* short descriptions stay in --help */
    for (size_t i = 0; i < cmd_count(); i++) {
        const cmd_entry *c = cmd_at(i);
        if (c->usage == NULL)
            continue;
        char want[64] = ".SS ";
        for (const char *p = c->name; *p; p++)
            strcat(want, *p == '-' ? "\\-" : (char[]){*p, 0});
        strcat(want, "\n");
        if (strstr(man, want) == NULL)
            fail_msg("no subsection for %s", c->name);
    }
    free(man);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_rows_point_at_their_files),
        cmocka_unit_test(test_every_row_has_usage_and_help),
        cmocka_unit_test(test_help_requested),
        cmocka_unit_test(test_man),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
