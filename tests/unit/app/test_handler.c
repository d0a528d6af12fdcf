/* Unit tests for app/handler: every answer of handler_serve and the order
 * of its checks, with a plain request, a body reader over memory and a fake
 * store (no socket, no database); and handler_log's one line per request. */
#include "testlib.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app/handler.h"
#include "base/log.h"
#include "core/cidr.h"
#include "core/token.h"

#define TOK_A "tokA-0123456789abcdefXYZ"  /* 24 characters */
#define TOK_B "tokB-zyxwvutsrq9876543210" /* 25 characters */
#define RID "req-7f3e9a1c5b2d4e6f8a0b1c2d3e4f"
#define UID "bca65c48-df49-4831-a7b2-de7903321581"
#define MAX_BODY 1024
#define RETRY_S 7

#define ROUTE_KYC "/webhooks/p100/kyc-verification-status"
#define ROUTE_POA "/webhooks/p100/poa-verification-status"
#define ROUTE_FILE "/webhooks/p100/kyc-file-added"
#define ROUTE_USER "/webhooks/p100/user-status"

#define KYC_BODY                                                                                   \
    "{\"externalUserId\":\"" UID "\",\"verificationStatus\":\"NOT_VERIFIED\","                     \
    "\"attemptStatus\":\"REJECTED_BY_PROVIDER\",\"rejectionReason\":\"NO_FACE_FOUND\","            \
    "\"marker\":\"BODYMARKER\"}"

/* ---- the fake store */

typedef struct fake_store {
    int submit_calls;
    int submit_rc;
    kyc_delivery got;         /* copy of the delivery (body pointer cleared) */
    char body[MAX_BODY + 16]; /* copy of the body bytes */
    size_t body_len;
    int ready_calls;
    int ready_rc;
    /* Quarantined deliveries (d->quarantine set): kept when `keeps`
     * (answered with quarantine_rc), else refused as by a store without a
     * quarantine (KERR_INVALID); not counted in submit_calls. */
    int keeps, quarantine_rc, quarantine_calls;
    kyc_delivery quarantined; /* the last one (body pointer cleared) */
} fake_store;

static int fake_submit(void *ctx, const kyc_delivery *d, db_ingest_result *res, kerr *err)
{
    fake_store *f = ctx;
    if (d->quarantine[0]) {
        f->quarantine_calls++;
        f->quarantined = *d;
        f->quarantined.body = NULL;
        if (!f->keeps)
            return kerr_set(err, KERR_INVALID, "no quarantine");
        if (f->quarantine_rc != 0)
            return kerr_set(err, f->quarantine_rc, "fake quarantine failure");
        res->event_id = 7;
        res->outcome = KYC_OUTCOME_QUARANTINED;
        res->reason = KYC_R_INVALID_BODY;
        return 0;
    }
    f->submit_calls++;
    f->got = *d;
    f->got.body = NULL;
    assert_non_null(d->body);
    assert_true(d->body_len <= sizeof f->body);
    memcpy(f->body, d->body, d->body_len);
    f->body_len = d->body_len;
    if (f->submit_rc != 0)
        return kerr_set(err, f->submit_rc, "fake store failure %s", kerr_name(f->submit_rc));
    res->event_id = 42;
    res->outcome = KYC_OUTCOME_APPLIED;
    res->reason = KYC_R_LATEST;
    return 0;
}

static int fake_ready(void *ctx, char *details, size_t cap, kerr *err)
{
    fake_store *f = ctx;
    snprintf(details, cap, "\"database\":\"%s\"", f->ready_rc ? "down" : "up");
    f->ready_calls++;
    if (f->ready_rc != 0)
        return kerr_set(err, f->ready_rc, "fake database is down");
    return 0;
}

/* ---- body readers over memory */

typedef struct mem_reader {
    const char *buf;
    size_t len, pos;
    size_t chunk;   /* at most this many bytes per call; 0: no limit */
    int fail_after; /* return -1 once this many bytes were given; <0: never */
    int calls;
} mem_reader;

static int mem_read(void *io, char *buf, size_t len)
{
    mem_reader *r = io;
    r->calls++;
    if (r->fail_after >= 0 && r->pos >= (size_t)r->fail_after)
        return -1;
    size_t n = r->len - r->pos;
    if (n > len)
        n = len;
    if (r->chunk && n > r->chunk)
        n = r->chunk;
    if (r->fail_after >= 0 && r->pos + n > (size_t)r->fail_after)
        n = (size_t)r->fail_after - r->pos;
    memcpy(buf, r->buf + r->pos, n);
    r->pos += n;
    return (int)n;
}

/* ---- fixture */

typedef struct fx {
    token_set tokens;
    cidr_list allow;
    atomic_int draining;
    fake_store store;
    handler_ctx h;
    mem_reader rd;
    http_request req;
    http_response resp;
    handler_note note;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    kerr err;
    kerr_clear(&err);
    if (token_set_parse(&f->tokens, TOK_A "," TOK_B, &err) != 0)
        fail_msg("token_set_parse: %s", err.msg);
    if (cidr_list_parse(&f->allow, "10.0.0.0/8, 2001:db8::/32, 192.0.2.7", &err) != 0)
        fail_msg("cidr_list_parse: %s", err.msg);
    f->h.tokens = &f->tokens;
    f->h.allow = &f->allow;
    f->h.max_body = MAX_BODY;
    f->h.retry_after_s = RETRY_S;
    f->h.store.submit = fake_submit;
    f->h.store.ready = fake_ready;
    f->h.store.ctx = &f->store;
    f->h.draining = &f->draining;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

/* A valid POST to `path` with `body`, ready to be altered by the test. */
static void request(fx *f, const char *method, const char *path, const char *body)
{
    memset(&f->rd, 0, sizeof f->rd);
    f->rd.buf = body ? body : "";
    f->rd.len = body ? strlen(body) : 0;
    f->rd.fail_after = -1;
    memset(&f->req, 0, sizeof f->req);
    f->req.method = method;
    f->req.path = path;
    f->req.content_type = "application/json";
    f->req.authorization = TOK_A;
    f->req.remote_addr = "10.1.2.3";
    f->req.content_length = (long long)f->rd.len;
    f->req.request_id = RID;
    f->req.read_body = mem_read;
    f->req.io = &f->rd;
}

static int contains(const char *hay, const char *needle)
{
    return hay != NULL && needle != NULL && *needle && strstr(hay, needle) != NULL;
}

/* Serve the request and check what must hold for every answer. */
static void serve(fx *f)
{
    memset(&f->resp, 0x5a, sizeof f->resp);
    memset(&f->note, 0x5a, sizeof f->note);
    handler_serve(&f->h, &f->req, &f->resp, &f->note);
    size_t n = strnlen(f->resp.body, sizeof f->resp.body);
    assert_true(n < sizeof f->resp.body);
    /* A large answer (/metrics, /status) is in ext, body stays empty. */
    if (f->resp.ext.len == 0) {
        assert_true(n >= 2);
        if (f->resp.body[0] != '{' || f->resp.body[n - 1] != '}')
            fail_msg("response body is not a JSON object: %s", f->resp.body);
    } else {
        assert_int_equal(n, 0);
    }
    assert_true(strnlen(f->note.error, sizeof f->note.error) < sizeof f->note.error);
    /* no token, whole or in part, in anything the caller writes out */
    static const char *secrets[] = {TOK_A, TOK_B, "0123456789abcdef", "zyxwvutsrq98765"};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        if (contains(f->resp.body, secrets[i]) || contains(f->note.error, secrets[i]))
            fail_msg("a token leaked: body=%s error=%s", f->resp.body, f->note.error);
    }
    if (f->req.authorization && strlen(f->req.authorization) >= 8 &&
        (contains(f->resp.body, f->req.authorization) ||
         contains(f->note.error, f->req.authorization)))
        fail_msg("the Authorization value leaked: body=%s error=%s", f->resp.body, f->note.error);
    /* nor the request body */
    assert_false(contains(f->resp.body, "BODYMARKER"));
    assert_false(contains(f->note.error, "BODYMARKER"));
    if (f->rd.len >= 8)
        assert_false(contains(f->resp.body, f->rd.buf));
    if (f->resp.status != 200)
        assert_true(f->note.error[0] != '\0');
    else
        assert_string_equal(f->note.error, "");
    if (f->resp.status != 405)
        assert_null(f->resp.allow);
}

static void expect(fx *f, int status)
{
    serve(f);
    if (f->resp.status != status)
        fail_msg("%s %s: expected %d, got %d (%s; note: %s)", f->req.method, f->req.path, status,
                 f->resp.status, f->resp.body, f->note.error);
}

/* ---- routes and methods */

static void test_404_unknown_path(void **state)
{
    fx *f = *state;
    static const char *paths[] = {"/",
                                  "",
                                  "/webhooks",
                                  "/webhooks/p100",
                                  ROUTE_KYC "/",
                                  "/WEBHOOKS/P100/KYC-VERIFICATION-STATUS",
                                  "/webhooks/p100/kyc-verification-status%00",
                                  "/healthz/",
                                  "/readyz/x",
                                  "//healthz",
                                  "/webhooks/p100/crypto-deposit"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        request(f, "POST", paths[i], KYC_BODY);
        expect(f, 404);
        assert_int_equal(f->rd.calls, 0);
        assert_int_equal(f->store.submit_calls, 0);
        assert_true(contains(f->resp.body, RID));
        request(f, "GET", paths[i], NULL);
        expect(f, 404);
    }
    /* a NULL path is an unknown path */
    request(f, "GET", NULL, NULL);
    f->req.path = NULL;
    expect(f, 404);
    /* 404 comes before everything else */
    request(f, "DELETE", "/nope", KYC_BODY);
    f->req.authorization = NULL;
    f->req.remote_addr = "203.0.113.9";
    f->req.content_type = NULL;
    f->req.content_length = 1 << 30;
    expect(f, 404);
    assert_int_equal(f->rd.calls, 0);
}

static void test_405_wrong_method(void **state)
{
    fx *f = *state;
    static const char *routes[] = {ROUTE_KYC, ROUTE_POA, ROUTE_FILE, ROUTE_USER};
    static const char *methods[] = {"GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "post"};
    for (size_t i = 0; i < 4; i++)
        for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
            request(f, methods[m], routes[i], KYC_BODY);
            expect(f, 405);
            assert_non_null(f->resp.allow);
            assert_string_equal(f->resp.allow, "POST");
            assert_int_equal(f->rd.calls, 0);
            assert_int_equal(f->store.submit_calls, 0);
        }
    static const char *probes[] = {"/healthz", "/readyz"};
    for (size_t i = 0; i < 2; i++) {
        request(f, "POST", probes[i], "{}");
        expect(f, 405);
        assert_non_null(f->resp.allow);
        assert_true(contains(f->resp.allow, "GET"));
        assert_int_equal(f->rd.calls, 0);
        assert_int_equal(f->store.ready_calls, 0);
    }
    /* 405 comes before the network, token and content checks */
    request(f, "GET", ROUTE_KYC, NULL);
    f->req.authorization = NULL;
    f->req.remote_addr = "203.0.113.9";
    f->req.content_type = NULL;
    expect(f, 405);
}

/* ---- source network */

static void test_403_source_address(void **state)
{
    fx *f = *state;
    static const char *denied[] = {
        "203.0.113.9", "11.0.0.1",       "192.0.2.8", "2001:db9::1",
        "::1",         "not-an-address", "",          "::ffff:203.0.113.9"};
    for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) {
        request(f, "POST", ROUTE_KYC, KYC_BODY);
        f->req.remote_addr = denied[i];
        expect(f, 403);
        assert_int_equal(f->rd.calls, 0);
        assert_int_equal(f->store.submit_calls, 0);
    }
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    f->req.remote_addr = NULL;
    expect(f, 403);
    /* 403 comes before 401 and the rest */
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    f->req.remote_addr = "203.0.113.9";
    f->req.authorization = "wrong";
    f->req.content_type = "text/plain";
    f->req.content_length = MAX_BODY * 10;
    expect(f, 403);
    assert_int_equal(f->rd.calls, 0);

    static const char *allowed[] = {"10.1.2.3",    "10.255.255.255",    "192.0.2.7",
                                    "2001:db8::1", "2001:db8:ffff::42", "::ffff:10.9.8.7"};
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        request(f, "POST", ROUTE_KYC, KYC_BODY);
        f->req.remote_addr = allowed[i];
        expect(f, 200);
    }
    /* an empty list allows every address */
    cidr_list all;
    kerr err;
    assert_int_equal(cidr_list_parse(&all, "", &err), 0);
    f->h.allow = &all;
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    f->req.remote_addr = "203.0.113.9";
    expect(f, 200);
    f->h.allow = &f->allow;
}

/* ---- token */

static void test_401_token(void **state)
{
    fx *f = *state;
    static const char *bad[] = {
        "",
        " ",
        "Bearer",
        "Bearer ",
        "tokA-0123456789abcdefXY",   /* one character short */
        "tokA-0123456789abcdefXYZZ", /* one character more */
        "tokA-0123456789abcdefXYz",  /* last character differs */
        "TOKA-0123456789ABCDEFXYZ",  /* case differs */
        "xokA-0123456789abcdefXYZ",  /* first character differs */
        "Basic " TOK_A,              /* other scheme */
        "Bearer " TOK_A "x",
        "Bearer tokA-0123456789abcdefXY",
        "BearerX" TOK_A,
        TOK_A "," TOK_B, /* both at once */
        TOK_A " " TOK_B,
        "tokA-0123456789abcdefXYZ\x01",
        "tokA-0123456789abcdef", /* a prefix */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        request(f, "POST", ROUTE_KYC, KYC_BODY);
        f->req.authorization = bad[i];
        serve(f);
        if (f->resp.status != 401)
            fail_msg("authorization case %zu: expected 401, got %d", i, f->resp.status);
        assert_int_equal(f->rd.calls, 0);
        assert_int_equal(f->store.submit_calls, 0);
        assert_true(f->resp.close);
    }
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    f->req.authorization = NULL;
    expect(f, 401);
    assert_int_equal(f->rd.calls, 0);
    assert_true(contains(f->note.error, "no authorization"));

    static const char *good[] = {
        TOK_A,           TOK_B,           "Bearer " TOK_A, "Bearer " TOK_B,
        "bearer " TOK_A, "BEARER " TOK_B, TOK_A "  ",      "Bearer " TOK_B "\t"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        request(f, "POST", ROUTE_KYC, KYC_BODY);
        f->req.authorization = good[i];
        serve(f);
        if (f->resp.status != 200)
            fail_msg("authorization case %zu: expected 200, got %d (%s)", i, f->resp.status,
                     f->note.error);
    }
    assert_int_equal(f->store.submit_calls, (int)(sizeof good / sizeof good[0]));
}

static void test_401_before_415_and_413(void **state)
{
    fx *f = *state;
    /* wrong token + wrong content type + too large: 401, body not read */
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    f->req.authorization = "Bearer not-the-token-at-all-xx";
    f->req.content_type = "text/plain";
    f->req.content_length = MAX_BODY + 1;
    expect(f, 401);
    assert_int_equal(f->rd.calls, 0);
    /* wrong token + chunked body larger than the limit: 401, body not read */
    char *big = malloc(MAX_BODY * 4 + 1);
    assert_non_null(big);
    memset(big, ' ', MAX_BODY * 4);
    big[MAX_BODY * 4] = '\0';
    request(f, "POST", ROUTE_KYC, big);
    f->req.authorization = NULL;
    f->req.content_length = -1;
    expect(f, 401);
    assert_int_equal(f->rd.calls, 0);
    /* wrong token + missing content type */
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    f->req.authorization = TOK_A "x";
    f->req.content_type = NULL;
    expect(f, 401);
    assert_int_equal(f->rd.calls, 0);
    /* right token: then 415 comes before 413 */
    request(f, "POST", ROUTE_KYC, big);
    f->req.content_type = "text/plain";
    expect(f, 415);
    assert_int_equal(f->rd.calls, 0);
    free(big);
    assert_int_equal(f->store.submit_calls, 0);
}

/* ---- content type */

static void test_415_content_type(void **state)
{
    fx *f = *state;
    static const char *bad[] = {"text/plain",
                                "",
                                "application/x-www-form-urlencoded",
                                "application/jsonp",
                                "application/json-seq",
                                "text/json",
                                "multipart/form-data; boundary=x",
                                "application/javascript"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        request(f, "POST", ROUTE_KYC, KYC_BODY);
        f->req.content_type = bad[i];
        expect(f, 415);
        assert_int_equal(f->rd.calls, 0);
        assert_int_equal(f->store.submit_calls, 0);
    }
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    f->req.content_type = NULL;
    expect(f, 415);
    assert_int_equal(f->rd.calls, 0);

    static const char *good[] = {"application/json", "application/json; charset=utf-8",
                                 "application/json;charset=UTF-8", "Application/JSON",
                                 " application/json"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        request(f, "POST", ROUTE_KYC, KYC_BODY);
        f->req.content_type = good[i];
        expect(f, 200);
    }
    /* 415 comes before 413 */
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    f->req.content_type = "text/plain";
    f->req.content_length = MAX_BODY + 1;
    expect(f, 415);
}

/* ---- body size and reading */

/* A valid KYC body padded with spaces to exactly `len` bytes. */
static char *padded_body(size_t len)
{
    size_t base = strlen(KYC_BODY);
    assert_true(len >= base);
    char *b = malloc(len + 1);
    assert_non_null(b);
    memcpy(b, KYC_BODY, base);
    memset(b + base, ' ', len - base);
    b[len] = '\0';
    return b;
}

static void test_413_declared_length(void **state)
{
    fx *f = *state;
    char *b = padded_body(MAX_BODY + 1);
    request(f, "POST", ROUTE_KYC, b);
    expect(f, 413);
    assert_int_equal(f->rd.calls, 0);
    assert_true(f->resp.close);
    /* a huge declared length is refused without reading either */
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    f->req.content_length = 1LL << 40;
    expect(f, 413);
    assert_int_equal(f->rd.calls, 0);
    assert_int_equal(f->store.submit_calls, 0);
    free(b);
    /* exactly the limit is accepted */
    b = padded_body(MAX_BODY);
    request(f, "POST", ROUTE_KYC, b);
    expect(f, 200);
    assert_int_equal(f->store.body_len, MAX_BODY);
    free(b);
}

static void test_413_chunked_too_large(void **state)
{
    fx *f = *state;
    char *b = padded_body(MAX_BODY + 1);
    request(f, "POST", ROUTE_KYC, b);
    f->req.content_length = -1;
    expect(f, 413);
    assert_true(f->resp.close);
    assert_int_equal(f->store.submit_calls, 0);
    /* it stops reading once past the limit: never more than max+1 bytes */
    assert_true(f->rd.pos <= MAX_BODY + 1);
    free(b);

    b = padded_body(MAX_BODY * 8);
    request(f, "POST", ROUTE_KYC, b);
    f->req.content_length = -1;
    f->rd.chunk = 100;
    expect(f, 413);
    assert_true(f->rd.pos <= MAX_BODY + 1);
    assert_int_equal(f->store.submit_calls, 0);
    free(b);

    /* chunked at exactly the limit is accepted */
    b = padded_body(MAX_BODY);
    request(f, "POST", ROUTE_KYC, b);
    f->req.content_length = -1;
    expect(f, 200);
    assert_int_equal(f->store.body_len, MAX_BODY);
    free(b);
    /* and chunked with a small body */
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    f->req.content_length = -1;
    expect(f, 200);
    assert_int_equal(f->store.body_len, strlen(KYC_BODY));
}

static void test_body_one_byte_chunks(void **state)
{
    fx *f = *state;
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    f->rd.chunk = 1;
    expect(f, 200);
    assert_int_equal(f->store.body_len, strlen(KYC_BODY));
    assert_memory_equal(f->store.body, KYC_BODY, strlen(KYC_BODY));
    assert_true(f->rd.calls >= (int)strlen(KYC_BODY));
    /* chunked transfer too */
    request(f, "POST", ROUTE_POA, "{\"externalUserId\":\"u1\",\"status\":\"APPROVED\"}");
    f->rd.chunk = 1;
    f->req.content_length = -1;
    expect(f, 200);
    assert_int_equal(f->store.got.kind, KYC_KIND_POA_STATUS);
    assert_string_equal(f->store.got.other_status, "APPROVED");
}

static void test_400_body_short_or_timeout(void **state)
{
    fx *f = *state;
    /* declared longer than what arrives: the client stopped sending (408) */
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    f->req.content_length = (long long)strlen(KYC_BODY) + 50;
    expect(f, 408);
    assert_non_null(strstr(f->resp.body, "\"error\":\"request_timeout\""));
    assert_true(f->resp.close);
    assert_int_equal(f->store.submit_calls, 0);
    /* the reader times out at once */
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    f->rd.fail_after = 0;
    expect(f, 400);
    assert_true(f->rd.calls >= 1);
    assert_int_equal(f->store.submit_calls, 0);
    /* the reader times out half way */
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    f->rd.fail_after = 20;
    f->rd.chunk = 7;
    expect(f, 400);
    assert_int_equal(f->store.submit_calls, 0);
    /* timeout on a chunked body */
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    f->req.content_length = -1;
    f->rd.fail_after = 10;
    expect(f, 400);
    assert_int_equal(f->store.submit_calls, 0);
    /* more bytes than declared is not accepted either */
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    f->req.content_length = 10;
    expect(f, 400);
    assert_int_equal(f->store.submit_calls, 0);
}

/* A reader that trickles a byte per call, taking a while each time. */
static int slow_read(void *io, char *buf, size_t len)
{
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return mem_read(io, buf, len);
}

static void test_408_body_past_its_deadline(void **state)
{
    fx *f = *state;
    /* 2 ms a byte, a 20 ms deadline: cut off long before the end */
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    f->req.read_body = slow_read;
    f->rd.chunk = 1;
    f->h.body_timeout_ms = 20;
    expect(f, 408);
    assert_non_null(strstr(f->resp.body, "request_timeout"));
    assert_true(f->resp.close);
    assert_true(f->rd.calls < (int)strlen(KYC_BODY));
    assert_int_equal(f->store.submit_calls, 0);
    /* no deadline (0): the same trickle is read to its end */
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    f->req.read_body = slow_read;
    f->rd.chunk = 1;
    f->h.body_timeout_ms = 0;
    expect(f, 200);
}

/* ---- payload */

static void test_400_malformed_payload(void **state)
{
    fx *f = *state;
    static const char *bad[] = {
        "not json BODYMARKER",
        "[\"BODYMARKER\"]",
        "{\"externalUserId\":\"BODYMARKER\"}",
        "{\"externalUserId\":\"u1\",\"verificationStatus\":\"VERIFIED\"}",
        "{\"externalUserId\":1,\"verificationStatus\":\"VERIFIED\",\"attemptStatus\":\"PENDING\"}",
        "{\"externalUserId\":\"u\\u0000\",\"verificationStatus\":\"VERIFIED\","
        "\"attemptStatus\":\"PENDING\"}",
        KYC_BODY "garbage",
        "{\"externalUserId\":\"\xc0\xaf\",\"verificationStatus\":\"VERIFIED\","
        "\"attemptStatus\":\"PENDING\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        request(f, "POST", ROUTE_KYC, bad[i]);
        expect(f, 400);
        assert_int_equal(f->store.submit_calls, 0);
        assert_int_equal(f->resp.retry_after, 0);
        assert_true(contains(f->resp.body, "invalid_payload"));
        assert_true(contains(f->resp.body, RID));
    }
    /* the field is named in the answer and the note */
    request(f, "POST", ROUTE_KYC,
            "{\"externalUserId\":\"u1\",\"verificationStatus\":\"VERIFIED\"}");
    expect(f, 400);
    assert_true(contains(f->resp.body, "attemptStatus"));
    assert_true(contains(f->note.error, "attemptStatus"));
    /* a body that fits another route's kind is malformed for this one */
    request(f, "POST", ROUTE_KYC, "{\"externalUserId\":\"u1\",\"status\":\"ACTIVE\"}");
    expect(f, 400);
    request(f, "POST", ROUTE_USER, KYC_BODY);
    expect(f, 400);
    /* an empty body */
    request(f, "POST", ROUTE_KYC, "");
    expect(f, 400);
    assert_int_equal(f->store.submit_calls, 0);
}

/* ---- store answers */

static void test_503_store_unavailable(void **state)
{
    fx *f = *state;
    int codes[] = {KERR_DB, KERR_TIMEOUT};
    for (size_t i = 0; i < 2; i++) {
        f->store.submit_rc = codes[i];
        f->store.submit_calls = 0;
        request(f, "POST", ROUTE_KYC, KYC_BODY);
        expect(f, 503);
        assert_int_equal(f->store.submit_calls, 1);
        assert_int_equal(f->resp.retry_after, RETRY_S);
        assert_true(contains(f->resp.body, RID));
        assert_false(f->note.has_outcome);
        /* the store's own message goes to the note, not to the client */
        assert_true(contains(f->note.error, "fake store failure"));
        assert_false(contains(f->resp.body, "fake store failure"));
    }
}

static void test_400_store_refuses(void **state)
{
    fx *f = *state;
    f->store.submit_rc = KERR_INVALID;
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    expect(f, 400);
    assert_int_equal(f->store.submit_calls, 1);
    assert_int_equal(f->resp.retry_after, 0);
    assert_false(f->note.has_outcome);
    assert_true(contains(f->note.error, "fake store failure"));
}

/* An authentic body that fails validation is kept raw in the quarantine
 * and answered 200 once that is durable; its user, if readable, goes
 * with it; without a durable quarantine it is refused as before. */
static void test_200_quarantined(void **state)
{
    fx *f = *state;
    f->store.keeps = 1;
    static const char wrong_type[] = "{\"externalUserId\":\"" UID "\",\"verificationStatus\":"
                                     "\"VERIFIED\",\"attemptStatus\":7,\"m\":\"BODYMARKER\"}";
    request(f, "POST", ROUTE_KYC, wrong_type);
    expect(f, 200);
    assert_true(contains(f->resp.body, "\"status\":\"quarantined\""));
    assert_true(contains(f->resp.body, RID));
    assert_int_equal(f->store.submit_calls, 0);
    assert_int_equal(f->store.quarantine_calls, 1);
    assert_string_equal(f->store.quarantined.external_user_id, UID);
    assert_string_equal(f->store.quarantined.request_id, RID);
    assert_int_equal(f->store.quarantined.kind, KYC_KIND_KYC_STATUS);
    assert_int_equal(f->store.quarantined.body_len, strlen(wrong_type));
    assert_true(contains(f->store.quarantined.quarantine, "attemptStatus"));
    assert_true(f->note.has_outcome);
    assert_int_equal(f->note.outcome, KYC_OUTCOME_QUARANTINED);
    assert_true(contains(f->note.quarantine, "attemptStatus"));
    assert_string_equal(f->note.external_user_id, UID);
    /* no user to be read: kept all the same */
    request(f, "POST", ROUTE_KYC, "not json BODYMARKER");
    expect(f, 200);
    assert_int_equal(f->store.quarantine_calls, 2);
    assert_string_equal(f->store.quarantined.external_user_id, "");
    /* data the database refuses: quarantined too */
    f->store.submit_rc = KERR_INVALID;
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    expect(f, 200);
    assert_int_equal(f->store.submit_calls, 1);
    assert_int_equal(f->store.quarantine_calls, 3);
    assert_true(contains(f->store.quarantined.quarantine, "refused by the database"));
    /* nothing durable took it: 503, P100 retries */
    f->store.submit_rc = 0;
    f->store.quarantine_rc = KERR_DB;
    request(f, "POST", ROUTE_KYC, wrong_type);
    expect(f, 503);
    assert_true(f->resp.retry_after > 0);
}

static void test_200_stored(void **state)
{
    fx *f = *state;
    static const struct {
        const char *path;
        enum kyc_kind kind;
        const char *body;
    } cases[] = {
        {ROUTE_KYC, KYC_KIND_KYC_STATUS, KYC_BODY},
        {ROUTE_POA, KYC_KIND_POA_STATUS,
         "{\"externalUserId\":\"" UID "\",\"status\":\"QUESTIONED\",\"marker\":\"BODYMARKER\"}"},
        {ROUTE_FILE, KYC_KIND_KYC_FILE,
         "{\"externalUserId\":\"" UID "\",\"status\":\"ERROR\",\"marker\":\"BODYMARKER\"}"},
        {ROUTE_USER, KYC_KIND_USER_STATUS,
         "{\"externalUserId\":\"" UID "\",\"status\":\"ACTIVE\",\"marker\":\"BODYMARKER\"}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f->store.submit_calls = 0;
        memset(&f->store.got, 0, sizeof f->store.got);
        request(f, "POST", cases[i].path, cases[i].body);
        f->req.remote_addr = "2001:db8::17";
        expect(f, 200);
        assert_int_equal(f->store.submit_calls, 1);
        assert_true(contains(f->resp.body, RID));
        assert_int_equal(f->resp.retry_after, 0);
        assert_null(f->resp.allow);

        const kyc_delivery *d = &f->store.got;
        assert_int_equal(d->kind, cases[i].kind);
        assert_string_equal(d->external_user_id, UID);
        size_t len = strlen(cases[i].body);
        assert_int_equal(d->body_len, len);
        assert_int_equal(f->store.body_len, len);
        assert_memory_equal(f->store.body, cases[i].body, len);
        char want[65];
        token_sha256_hex(cases[i].body, len, want);
        assert_string_equal(d->body_sha256, want);
        assert_string_equal(d->remote_addr, "2001:db8::17");
        assert_string_equal(d->request_id, RID);
        if (cases[i].kind == KYC_KIND_KYC_STATUS) {
            assert_string_equal(d->status.verification, "NOT_VERIFIED");
            assert_string_equal(d->status.attempt, "REJECTED_BY_PROVIDER");
            assert_string_equal(d->status.reason, "NO_FACE_FOUND");
        } else {
            assert_true(d->other_status[0] != '\0');
        }

        /* the note carries what the log line needs */
        assert_true(f->note.has_kind);
        assert_int_equal(f->note.kind, cases[i].kind);
        assert_string_equal(f->note.external_user_id, UID);
        assert_true(f->note.has_outcome);
        assert_string_equal(kyc_outcome_name(f->note.outcome), "applied");
        assert_string_equal(kyc_reason_name(f->note.reason), "latest");
        assert_int_equal(f->note.event_id, 42);
    }
    /* the same delivery twice is handed to the store twice (dedup is its job) */
    f->store.submit_calls = 0;
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    expect(f, 200);
    request(f, "POST", ROUTE_KYC, KYC_BODY);
    expect(f, 200);
    assert_int_equal(f->store.submit_calls, 2);
}

/* ---- probes */

static void test_healthz(void **state)
{
    fx *f = *state;
    request(f, "GET", "/healthz", NULL);
    expect(f, 200);
    /* always up: even with the database down, while draining, from anywhere */
    f->store.ready_rc = KERR_DB;
    f->draining = 1;
    request(f, "GET", "/healthz", NULL);
    f->req.remote_addr = "203.0.113.9";
    f->req.authorization = NULL;
    f->req.content_type = NULL;
    expect(f, 200);
    request(f, "HEAD", "/healthz", NULL);
    expect(f, 200);
    assert_int_equal(f->store.ready_calls, 0);
    assert_int_equal(f->rd.calls, 0);
}

static void test_readyz(void **state)
{
    fx *f = *state;
    request(f, "GET", "/readyz", NULL);
    expect(f, 200);
    assert_int_equal(f->store.ready_calls, 1);
    assert_int_equal(f->resp.retry_after, 0);

    f->store.ready_rc = KERR_DB;
    request(f, "GET", "/readyz", NULL);
    expect(f, 503);
    assert_int_equal(f->store.ready_calls, 2);
    assert_int_equal(f->resp.retry_after, RETRY_S);

    f->store.ready_rc = KERR_TIMEOUT;
    request(f, "HEAD", "/readyz", NULL);
    expect(f, 503);

    f->store.ready_rc = 0;
    f->draining = 1;
    request(f, "GET", "/readyz", NULL);
    expect(f, 503);
    assert_true(contains(f->resp.body, "draining"));

    f->draining = 0;
    request(f, "GET", "/readyz", NULL);
    expect(f, 200);

    /* no store readiness function: ready */
    f->h.store.ready = NULL;
    request(f, "GET", "/readyz", NULL);
    expect(f, 200);
    /* no draining flag at all */
    f->h.draining = NULL;
    request(f, "GET", "/readyz", NULL);
    expect(f, 200);
}

/* The public /readyz names no internal detail; the admin one does. */
static void test_readyz_public_no_detail(void **state)
{
    fx *f = *state;
    request(f, "GET", "/readyz", NULL);
    expect(f, 200);
    assert_string_equal(f->resp.body, "{\"status\":\"ready\"}");
    f->store.ready_rc = KERR_DB;
    request(f, "GET", "/readyz", NULL);
    expect(f, 503);
    assert_false(contains(f->resp.body, "fake database"));
    assert_false(contains(f->resp.body, "detail"));
    assert_true(contains(f->resp.body, "not_ready"));
    assert_true(contains(f->note.error, "fake database")); /* the log line has it */
}

static int fake_metrics(void *ctx, kbuf *out)
{
    (*(int *)ctx)++;
    return kbuf_appendf(out, "m 1\n");
}

static int fake_status(void *ctx, kbuf *out)
{
    (*(int *)ctx)++;
    return kbuf_appendf(out, "{\"version\":\"x\"}");
}

static int fake_fail(void *ctx, kbuf *out)
{
    (void)ctx;
    (void)out;
    return KERR_NOMEM;
}

static void test_admin_routes(void **state)
{
    fx *f = *state;
    int calls = 0;
    handler_admin a = {.metrics = fake_metrics, .status = fake_status, .ctx = &calls};
    /* Public: no /metrics, no /status. */
    request(f, "GET", "/metrics", NULL);
    expect(f, 404);
    request(f, "GET", "/status", NULL);
    expect(f, 404);
    assert_int_equal(calls, 0);

    f->h.admin = &a;
    request(f, "GET", "/metrics", NULL);
    expect(f, 200);
    assert_string_equal(kbuf_str(&f->resp.ext), "m 1\n");
    assert_string_equal(f->resp.content_type, "text/plain; version=0.0.4; charset=utf-8");
    handler_response_deinit(&f->resp);
    request(f, "GET", "/status", NULL);
    expect(f, 200);
    assert_string_equal(kbuf_str(&f->resp.ext), "{\"version\":\"x\"}");
    assert_null(f->resp.content_type); /* JSON */
    handler_response_deinit(&f->resp);
    assert_int_equal(calls, 2);
    request(f, "POST", "/metrics", NULL);
    expect(f, 405);
    /* No webhooks on the admin listener. */
    request(f, "POST", "/webhooks/p100/kyc-verification-status", "{}");
    expect(f, 404);
    assert_int_equal(f->store.submit_calls, 0);
    /* Its /readyz carries the detail. */
    request(f, "GET", "/readyz", NULL);
    expect(f, 200);
    assert_true(contains(f->resp.body, "\"database\":\"up\""));
    f->store.ready_rc = KERR_DB;
    request(f, "GET", "/readyz", NULL);
    expect(f, 503);
    assert_true(contains(f->resp.body, "fake database is down"));
    /* A failing builder: 500, nothing half-written. */
    a.metrics = fake_fail;
    request(f, "GET", "/metrics", NULL);
    expect(f, 500);
    assert_int_equal(f->resp.ext.len, 0);
    handler_response_deinit(&f->resp);
}

/* ---- handler_log */

static size_t drain_pipe(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return n;
}

static void test_handler_log(void **state)
{
    fx *f = *state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
    klog_set_level(KLOG_DEBUG);
    klog_set_fd(p[1]);

    struct {
        const char *method, *path, *auth, *rid;
        int store_rc, want;
    } cases[] = {
        {"POST", ROUTE_KYC, TOK_A, "rid-ok-0001", 0, 200},
        {"POST", ROUTE_KYC, "Bearer " TOK_B, "rid-ok-0002", 0, 200},
        {"POST", ROUTE_KYC, "tokA-0123456789abcdefXYz", "rid-401-0003", 0, 401},
        {"POST", ROUTE_KYC, NULL, "rid-401-0004", 0, 401},
        {"POST", ROUTE_KYC, TOK_A, "rid-503-0005", KERR_DB, 503},
        {"POST", ROUTE_KYC, TOK_A, "rid-400-0006", KERR_INVALID, 400},
        {"GET", ROUTE_KYC, TOK_A, "rid-405-0007", 0, 405},
        {"GET", "/nope", TOK_A, "rid-404-0008", 0, 404},
        {"GET", "/healthz", NULL, "rid-health-0009", 0, 200},
        {"GET", "/readyz", NULL, "rid-ready-0010", 0, 200},
    };
    size_t ncases = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < ncases; i++) {
        f->store.submit_rc = cases[i].store_rc;
        request(f, cases[i].method, cases[i].path, KYC_BODY);
        f->req.authorization = cases[i].auth;
        f->req.request_id = cases[i].rid;
        expect(f, cases[i].want);
        handler_log(&f->req, &f->resp, &f->note, 1.25);
    }
    /* a payload refusal whose message could echo client bytes */
    request(f, "POST", ROUTE_KYC, "{\"externalUserId\":\"u\nforged=1\",\"x\":\"BODYMARKER\"}");
    f->req.request_id = "rid-400-0011";
    expect(f, 400);
    handler_log(&f->req, &f->resp, &f->note, 0.5);
    ncases++;

    klog_set_fd(2);
    klog_set_level(KLOG_INFO);
    close(p[1]);
    static char out[65536];
    drain_pipe(p[0], out, sizeof out);
    close(p[0]);

    /* one line per request, in order */
    size_t lines = 0;
    for (const char *s = out; *s; s++)
        if (*s == '\n')
            lines++;
    if (lines != ncases)
        fail_msg("expected %zu log lines, got %zu:\n%s", ncases, lines, out);
    assert_true(out[strlen(out) - 1] == '\n');

    char *save = NULL;
    size_t i = 0;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
        const char *rid = i < ncases - 1 ? cases[i].rid : "rid-400-0011";
        int want = i < ncases - 1 ? cases[i].want : 400;
        char key[64];
        snprintf(key, sizeof key, "rid=%s", rid);
        if (!contains(line, key))
            fail_msg("line %zu lacks %s: %s", i, key, line);
        snprintf(key, sizeof key, "status=%d", want);
        if (!contains(line, key))
            fail_msg("line %zu lacks %s: %s", i, key, line);
        /* never the token, whole or in part, nor the body */
        if (contains(line, TOK_A) || contains(line, TOK_B) || contains(line, "0123456789abcdef") ||
            contains(line, "zyxwvutsrq98765") || contains(line, "tokA-") || contains(line, "tokB-"))
            fail_msg("a token leaked into the log: %s", line);
        if (contains(line, "BODYMARKER") || contains(line, "NO_FACE_FOUND") ||
            contains(line, "verificationStatus\""))
            fail_msg("the body leaked into the log: %s", line);
        if (contains(line, "\nforged"))
            fail_msg("a forged line: %s", line);
    }
    assert_int_equal(i, ncases);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_404_unknown_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_405_wrong_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_403_source_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_401_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_401_before_415_and_413, setup, teardown),
        cmocka_unit_test_setup_teardown(test_415_content_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_413_declared_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_413_chunked_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_one_byte_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_400_body_short_or_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_408_body_past_its_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_400_malformed_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_503_store_unavailable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_400_store_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_200_quarantined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_200_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_healthz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readyz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readyz_public_no_detail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handler_log, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
