/* Unit tests for cmd/cmd: the command table (every command's row points at
 * its own file's handler) and the usage text built from it. Flags are
 * tested in test_common.c, create-kyc's decision in test_create_kyc.c; the
 * commands themselves are tested end to end (tests/e2e). */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/archive.h"
#include "cmd/cmd.h"
#include "cmd/config.h"
#include "cmd/create_kyc.h"
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
        "            print every key with its default and meaning (README, kycd.conf(5))\n"
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
        "  replay --since TIME [--until TIME] [--user ID] [--dry-run]\n"
        "            run the stored deliveries received since TIME again through the\n"
        "            current rules: a quarantined one they now accept is applied, anything\n"
        "            stored already changes nothing (--dry-run: print what would change)\n"
        "  status EXTERNAL_USER_ID [--live]\n"
        "            print the stored state and history (--live: ask P100 too)\n"
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
        "  version   print versions\n"
        "\n"
        "Configuration comes from the file, then KYCD_* environment variables, then\n"
        "flags; see README.md for every key. Secrets are never accepted as flags.\n";
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
        {"archive", cmd_archive},     {"version", cmd_version},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const cmd_entry *c = cmd_find(rows[i].name);
        assert_non_null(c);
        assert_ptr_equal(c->run, rows[i].run);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_rows_point_at_their_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
