/* Unit tests for app/procstat: the process's figures read from /proc are
 * those of this test process (a file it opens shows as one more open
 * descriptor; memory and start-up CPU are not zero). */
#include "testlib.h"

#include <stdio.h>

#include "app/procstat.h"

static void test_reads_self(void **state)
{
    (void)state;
    procstat a;
    procstat_read(&a);
    assert_true(a.rss_bytes > 0);
    assert_true(a.cpu_seconds >= 0);
    assert_true(a.open_fds >= 1);
    /* the directory procstat reads is not counted: one more file is one more */
    FILE *f = fopen("/proc/self/stat", "r");
    assert_non_null(f);
    procstat b;
    procstat_read(&b);
    fclose(f);
    assert_true(b.open_fds == a.open_fds + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_self),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
