/* Differential test: kycd's JSON validator (core/json.c) against the real
 * PostgreSQL jsonb. A body kycd accepts is acknowledged with 200 even while
 * the database is away (spooled), so it must be one jsonb takes: otherwise
 * the 200 becomes a dead letter at replay for a reason knowable on
 * receipt.
 *   - every file of the fuzz corpora (tests/fuzz/corpus, and the folders
 *     named by TEST_JSONB_CORPUS, colon-separated: a fuzz run's grown
 *     corpora) that the validator accepts, jsonb accepts;
 *   - numbers at and around PostgreSQL numeric's limits, and a few
 *     thousand random ones: the validator and jsonb agree, both ways. */
#include "testlib.h"

#include <ftw.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"

static PGconn *pg;
static int checked, accepted;

/* 1 when jsonb takes text (len bytes; no NUL inside by the validator). */
static int jsonb_takes(const char *text, size_t len, char *why, size_t cap)
{
    char *copy = malloc(len + 1);
    assert_non_null(copy);
    memcpy(copy, text, len);
    copy[len] = '\0';
    const char *p[] = {copy};
    PGresult *r = PQexecParams(pg, "SELECT $1::jsonb IS NOT NULL", 1, NULL, p, NULL, NULL, 0);
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok && why)
        snprintf(why, cap, "%s", PQresultErrorMessage(r));
    PQclear(r);
    free(copy);
    return ok;
}

static int kycd_takes(const char *text, size_t len)
{
    kerr err;
    kerr_clear(&err);
    return json_utf8_valid(text, len) && memchr(text, '\0', len) == NULL &&
           json_validate(text, len, &err) == 0;
}

static int one_file(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)ftw;
    if (type != FTW_F || st->st_size > 4 * 1024 * 1024)
        return 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    char *buf = malloc((size_t)st->st_size + 1);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (size_t)st->st_size, f);
    fclose(f);
    /* The body inside each harness's input: the whole file, the file after
     * a selector byte (fuzz_payload), or from its first '{' or '[' on (the
     * request and spool-record harnesses carry the body last). */
    size_t starts[3] = {0, n > 0 ? 1 : 0, n};
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '{' || buf[i] == '[') {
            starts[2] = i;
            break;
        }
    for (int c = 0; c < 3; c++) {
        if (c > 0 && starts[c] == starts[c - 1])
            continue;
        const char *b = buf + starts[c];
        size_t bl = n - starts[c];
        checked++;
        if (!kycd_takes(b, bl))
            continue;
        accepted++;
        char why[512];
        if (!jsonb_takes(b, bl, why, sizeof why))
            fail_msg("%s (from byte %zu): kycd's validator accepts it, jsonb refuses: %s", path,
                     starts[c], why);
    }
    free(buf);
    return 0;
}

static void test_corpora(void **state)
{
    (void)state;
    const char *src = getenv("TEST_KYCD_SRC");
    assert_non_null(src);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus", src);
    assert_int_equal(nftw(dir, one_file, 16, FTW_PHYS), 0);
    const char *more = getenv("TEST_JSONB_CORPUS");
    if (more && *more) {
        char *list = strdup(more);
        for (char *save = NULL, *d = strtok_r(list, ":", &save); d; d = strtok_r(NULL, ":", &save))
            (void)nftw(d, one_file, 16, FTW_PHYS); /* a folder that is not there: none */
        free(list);
    }
    print_message("corpora: %d candidate bodies, %d accepted by kycd, all of them by jsonb\n",
                  checked, accepted);
    assert_true(accepted > 0);
}

/* {"n": NUMBER} with the number built from its parts. */
static char *number_body(const char *sign, long intd, char intc, long fracd, char fracc,
                         const char *exp)
{
    size_t cap = (size_t)(intd + fracd + 64);
    char *s = malloc(cap);
    assert_non_null(s);
    size_t k = (size_t)snprintf(s, cap, "{\"n\": %s", sign);
    memset(s + k, intc, (size_t)intd);
    k += (size_t)intd;
    if (fracd > 0) {
        s[k++] = '.';
        memset(s + k, fracc, (size_t)fracd);
        k += (size_t)fracd;
    }
    snprintf(s + k, cap - k, "%s}", exp);
    return s;
}

/* The validator and jsonb agree on s. */
static void agree(char *s)
{
    char why[512] = "";
    int k = kycd_takes(s, strlen(s)), p = jsonb_takes(s, strlen(s), why, sizeof why);
    if (k != p)
        fail_msg("disagreement on a %zu-byte number body (%.40s...): kycd %s, jsonb %s %s",
                 strlen(s), s, k ? "accepts" : "refuses", p ? "accepts" : "refuses", why);
    free(s);
}

static void test_numeric_limits(void **state)
{
    (void)state;
    static const long fracs[] = {0, 1, 16382, 16383, 16384, 20000};
    static const char *const exps[] = {"",      "e0",    "e1",   "e-1",  "E+5", "e-9999",
                                       "e9999", "e-400", "e400", "e-16", "e2"};
    for (size_t i = 0; i < sizeof fracs / sizeof fracs[0]; i++)
        for (size_t e = 0; e < sizeof exps / sizeof exps[0]; e++) {
            agree(number_body("", 1, '3', fracs[i], '1', exps[e]));
            agree(number_body("-", 1, '0', fracs[i], '0', exps[e])); /* zeros */
            agree(number_body("", 1, '0', fracs[i], '5', exps[e]));
        }
    static const long ints[] = {1, 131071, 131072, 131073};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        for (size_t e = 0; e < sizeof exps / sizeof exps[0]; e++)
            agree(number_body("", ints[i], '9', 0, '0', exps[e]));
    /* Random numbers near the limits (deterministic). */
    srandom(20261207);
    for (int t = 0; t < 400; t++) {
        long intd = 1 + random() % 3, fracd = random() % 17000;
        long ex = random() % 19999 - 9999;
        char exp[16];
        snprintf(exp, sizeof exp, "e%ld", ex);
        agree(number_body(random() % 2 ? "-" : "", intd, (char)('1' + random() % 9), fracd,
                          (char)('0' + random() % 10), random() % 4 ? exp : ""));
    }
}

static int setup(void **state)
{
    (void)state;
    pg = PQconnectdb(testlib_fresh_db("jsonb"));
    if (PQstatus(pg) != CONNECTION_OK)
        fail_msg("cannot connect: %s", PQerrorMessage(pg));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    PQfinish(pg);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpora),
        cmocka_unit_test(test_numeric_limits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
