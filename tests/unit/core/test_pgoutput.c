/* Unit tests for core/pgoutput: decoding pgoutput messages (built here
 * byte by byte, as protocol version 1 lays them out), LSNs and cursors,
 * and the change feed's JSON line. */
#include "testlib.h"

#include <stdint.h>
#include <string.h>

#include "core/pgoutput.h"

typedef struct msg {
    unsigned char b[512];
    size_t n;
} msg;

static void put(msg *m, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        m->b[m->n++] = (unsigned char)(v >> (8 * i));
}

static void put_str(msg *m, const char *s)
{
    size_t l = strlen(s) + 1;
    memcpy(m->b + m->n, s, l);
    m->n += l;
}

static msg relation(void)
{
    msg m = {.n = 0};
    put(&m, 'R', 1);
    put(&m, 16582, 4);
    put_str(&m, "kyc");
    put_str(&m, "status_changes");
    put(&m, 'd', 1);
    put(&m, 3, 2);
    const char *names[] = {"id", "external_user_id", "old_verification_status"};
    const uint32_t types[] = {20, 25, 25};
    for (int i = 0; i < 3; i++) {
        put(&m, i == 0, 1);
        put_str(&m, names[i]);
        put(&m, types[i], 4);
        put(&m, 0xffffffffu, 4);
    }
    return m;
}

static msg insert(const char *id, const char *user)
{
    msg m = {.n = 0};
    put(&m, 'I', 1);
    put(&m, 16582, 4);
    put(&m, 'N', 1);
    put(&m, 3, 2);
    put(&m, 't', 1);
    put(&m, strlen(id), 4);
    memcpy(m.b + m.n, id, strlen(id));
    m.n += strlen(id);
    put(&m, 't', 1);
    put(&m, strlen(user), 4);
    memcpy(m.b + m.n, user, strlen(user));
    m.n += strlen(user);
    put(&m, 'n', 1);
    return m;
}

static void test_transaction_to_json(void **state)
{
    (void)state;
    kerr err;
    kerr_clear(&err);
    msg b = {.n = 0};
    put(&b, 'B', 1);
    put(&b, 0x1B39208, 8);
    put(&b, 818401866943604LL, 8); /* 2025-12-07 05:51:06.943604 UTC */
    put(&b, 743, 4);
    pgo_msg begin, rel, ins, commit;
    assert_int_equal(pgo_decode(b.b, b.n, &begin, &err), 0);
    assert_int_equal(begin.kind, PGO_BEGIN);
    assert_true(begin.final_lsn == 0x1B39208);
    assert_int_equal(begin.xid, 743);

    msg r = relation();
    assert_int_equal(pgo_decode(r.b, r.n, &rel, &err), 0);
    assert_int_equal(rel.kind, PGO_RELATION);
    assert_int_equal(rel.relid, 16582);
    assert_string_equal(rel.relname, "status_changes");
    assert_int_equal(rel.ncols, 3);
    assert_string_equal(rel.names[2], "old_verification_status");

    msg i = insert("42", "u\"1");
    assert_int_equal(pgo_decode(i.b, i.n, &ins, &err), 0);
    assert_int_equal(ins.kind, PGO_INSERT);
    assert_null(ins.values[2].p);

    kbuf out;
    kbuf_init(&out);
    assert_int_equal(pgo_change_json(&out, &begin, &rel, &ins, 2), 0);
    assert_string_equal(kbuf_str(&out),
                        "{\"cursor\":\"0/1B39208:2\",\"commit_lsn\":\"0/1B39208\",\"xid\":743,"
                        "\"commit_time\":\"2025-12-07T05:51:06.943604Z\",\"table\":\"kyc.status_"
                        "changes\",\"change\":{\"id\":42,\"external_user_id\":\"u\\\"1\","
                        "\"old_verification_status\":null}}\n");
    kbuf_deinit(&out);

    msg c = {.n = 0};
    put(&c, 'C', 1);
    put(&c, 0, 1);
    put(&c, 0x1B39208, 8);
    put(&c, 0x1B39238, 8);
    put(&c, 818401866943604LL, 8);
    assert_int_equal(pgo_decode(c.b, c.n, &commit, &err), 0);
    assert_int_equal(commit.kind, PGO_COMMIT);
    assert_true(commit.end_lsn == 0x1B39238);
}

/* Every prefix of a message is refused, never read past. */
static void test_truncated(void **state)
{
    (void)state;
    msg r = relation(), i = insert("7", "user");
    pgo_msg m;
    kerr err;
    for (size_t n = 0; n < r.n; n++) {
        kerr_clear(&err);
        assert_int_not_equal(pgo_decode(r.b, n, &m, &err), 0);
    }
    for (size_t n = 0; n < i.n; n++) {
        kerr_clear(&err);
        assert_int_not_equal(pgo_decode(i.b, n, &m, &err), 0);
    }
    /* A value longer than the message. */
    msg bad = insert("7", "user");
    bad.b[9] = 0x7f;
    assert_int_not_equal(pgo_decode(bad.b, bad.n, &m, &err), 0);
    /* Messages a publication of inserts does not send are skipped. */
    const unsigned char origin[] = {'O', 0, 0, 0, 0, 0, 0, 0, 1, 'x', 0};
    assert_int_equal(pgo_decode(origin, sizeof origin, &m, &err), 0);
    assert_int_equal(m.kind, PGO_OTHER);
}

static void test_lsn_and_cursor(void **state)
{
    (void)state;
    char buf[24];
    uint64_t l = 0;
    pgo_lsn_format(0x16B3F58ULL | (0x2AULL << 32), buf, sizeof buf);
    assert_string_equal(buf, "2A/16B3F58");
    assert_int_equal(pgo_lsn_parse("2A/16B3F58", &l), 0);
    assert_true(l == (0x16B3F58ULL | (0x2AULL << 32)));
    const char *bad[] = {"", "/", "1/", "/1", "1/G", "123456789/0", "1/2/3", "1:2"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        assert_int_not_equal(pgo_lsn_parse(bad[k], &l), 0);

    pgo_cursor c;
    assert_int_equal(pgo_cursor_parse("0/1B39208:2", &c), 0);
    assert_true(c.lsn == 0x1B39208 && c.n == 2);
    const char *badc[] = {"0/1B39208",    "0/1B39208:", "0/1B39208:0", "0/1B39208:-1",
                          "0/1B39208:2x", ":3",         "x/1:1"};
    for (size_t k = 0; k < sizeof badc / sizeof badc[0]; k++)
        assert_int_not_equal(pgo_cursor_parse(badc[k], &c), 0);

    /* Resuming from "0/1B39208:2": earlier transactions and the first two
     * changes of that one were delivered; its third and anything later
     * were not. */
    assert_int_equal(pgo_cursor_parse("0/1B39208:2", &c), 0);
    assert_true(pgo_cursor_covers(&c, 0x1B39000, 9));
    assert_true(pgo_cursor_covers(&c, 0x1B39208, 1));
    assert_true(pgo_cursor_covers(&c, 0x1B39208, 2));
    assert_false(pgo_cursor_covers(&c, 0x1B39208, 3));
    assert_false(pgo_cursor_covers(&c, 0x1B39209, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transaction_to_json),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_lsn_and_cursor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
