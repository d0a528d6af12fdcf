/* Unit tests for the command layer's pure parts: cmd/cmd (the table and
 * its usage text), cmd/common (command flags taken out of argv) and
 * cmd/admin's create-kyc decision on P100's answer. The commands themselves
 * are tested end to end (tests/e2e). */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/admin.h"
#include "cmd/cmd.h"
#include "cmd/common.h"
#include "cmd/serve.h"

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

/* ---- cmd_take_flags */

#define ARGV(...) ((char *[]){__VA_ARGS__, NULL})

static int count(char **argv)
{
    int n = 0;
    while (argv[n] != NULL)
        n++;
    return n;
}

static void test_flags_forms(void **state)
{
    char **argv = ARGV("--once", "--db-pool", "3", "--external-user-id", "u1", "--tax-id=77",
                       "--config", "/x.conf");
    int argc = count(argv);
    cmd_flag f[] = {{"--once", 0, NULL},
                    {"--external-user-id", 1, NULL},
                    {"--tax-id", 1, NULL},
                    {"--live", 0, NULL}};
    assert_int_equal(cmd_take_flags(&argc, argv, f, 4, NULL), 0);
    assert_string_equal(f[0].value, "1");
    assert_string_equal(f[1].value, "u1");
    assert_string_equal(f[2].value, "77");
    assert_null(f[3].value);
    /* what is left goes to the configuration loader, in order */
    assert_int_equal(argc, 4);
    assert_string_equal(argv[0], "--db-pool");
    assert_string_equal(argv[1], "3");
    assert_string_equal(argv[2], "--config");
    assert_string_equal(argv[3], "/x.conf");
}

static void test_flags_prefix_is_not_a_match(void **state)
{
    char **argv = ARGV("--onceover", "--live=yes");
    int argc = count(argv);
    cmd_flag f[] = {{"--once", 0, NULL}};
    assert_int_equal(cmd_take_flags(&argc, argv, f, 1, NULL), 0);
    assert_null(f[0].value);
    assert_int_equal(argc, 2);
}

static void test_flags_missing_value(void **state)
{
    char **argv = ARGV("--country", "PL", "--external-user-id");
    int argc = count(argv);
    cmd_flag f[] = {{"--external-user-id", 1, NULL}, {"--country", 1, NULL}};
    assert_int_equal(cmd_take_flags(&argc, argv, f, 2, NULL), CMD_USAGE);
    /* "--x=" is a value, empty */
    char **argv2 = ARGV("--external-user-id=");
    int argc2 = 1;
    cmd_flag g[] = {{"--external-user-id", 1, NULL}};
    assert_int_equal(cmd_take_flags(&argc2, argv2, g, 1, NULL), 0);
    assert_string_equal(g[0].value, "");
}

static void test_flags_positional(void **state)
{
    const char *pos = "sentinel";
    char **argv = ARGV("--db-pool", "3", "--live", "alice", "bob");
    int argc = count(argv);
    cmd_flag f[] = {{"--live", 0, NULL}};
    assert_int_equal(cmd_take_flags(&argc, argv, f, 1, &pos), 0);
    /* "3" is --db-pool's value, not the positional word */
    assert_non_null(pos);
    assert_string_equal(pos, "alice");
    assert_string_equal(f[0].value, "1");
    assert_int_equal(argc, 3);
    assert_string_equal(argv[0], "--db-pool");
    assert_string_equal(argv[1], "3");
    assert_string_equal(argv[2], "bob");
    /* after "--key=value" a bare word is positional */
    char **argv2 = ARGV("--db-pool=3", "drain");
    int argc2 = 2;
    assert_int_equal(cmd_take_flags(&argc2, argv2, f, 0, &pos), 0);
    assert_string_equal(pos, "drain");
    assert_int_equal(argc2, 1);
    /* none at all */
    char **argv3 = ARGV("--db-pool", "3");
    int argc3 = 2;
    assert_int_equal(cmd_take_flags(&argc3, argv3, f, 0, &pos), 0);
    assert_null(pos);
}

/* ---- create-kyc's decision */

static p100_result answer(enum p100_class cls, long status, const char *code)
{
    p100_result r;
    memset(&r, 0, sizeof r);
    r.cls = cls;
    r.http_status = status;
    snprintf(r.error_code, sizeof r.error_code, "%s", code);
    return r;
}

static void test_create_outcome(void **state)
{
    p100_result r = answer(P100_OK, 201, "");
    assert_int_equal(admin_create_outcome(&r, "4f1c-id"), ADMIN_CREATED_NEW);
    r = answer(P100_OK, 202, "P212");
    assert_int_equal(admin_create_outcome(&r, ""), ADMIN_CREATED_PENDING);
    /* the review's bug: 202 without P212 (and without an id) is not a new
     * verification with an empty id */
    r = answer(P100_OK, 202, "");
    assert_int_equal(admin_create_outcome(&r, ""), ADMIN_CREATED_UNUSABLE);
    r = answer(P100_OK, 202, "P213");
    assert_int_equal(admin_create_outcome(&r, ""), ADMIN_CREATED_UNUSABLE);
    r = answer(P100_OK, 200, "");
    assert_int_equal(admin_create_outcome(&r, ""), ADMIN_CREATED_UNUSABLE);
    assert_int_equal(admin_create_outcome(&r, NULL), ADMIN_CREATED_UNUSABLE);
    /* errors win, whatever else the answer holds */
    r = answer(P100_MISCONFIGURED, 401, "xo1");
    assert_int_equal(admin_create_outcome(&r, ""), ADMIN_CREATED_REFUSED);
    r = answer(P100_TRANSIENT, 400, "P501");
    assert_int_equal(admin_create_outcome(&r, ""), ADMIN_CREATED_REFUSED);
    r = answer(P100_TRANSIENT, 201, "");
    assert_int_equal(admin_create_outcome(&r, "x"), ADMIN_CREATED_REFUSED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_flags_forms),
        cmocka_unit_test(test_flags_prefix_is_not_a_match),
        cmocka_unit_test(test_flags_missing_value),
        cmocka_unit_test(test_flags_positional),
        cmocka_unit_test(test_create_outcome),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
