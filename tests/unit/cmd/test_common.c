/* Unit tests for cmd/common: a command's own flags taken out of argv
 * (cmd_take_flags), with the rest left in order for the configuration
 * loader. */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "cmd/common.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flags_forms),
        cmocka_unit_test(test_flags_prefix_is_not_a_match),
        cmocka_unit_test(test_flags_missing_value),
        cmocka_unit_test(test_flags_positional),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
