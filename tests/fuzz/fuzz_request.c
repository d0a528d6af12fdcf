/* libFuzzer target: the request handler (app/handler.c) with the header
 * and token checks, content rules, body limits and payload parsing, behind
 * a fake store. The input is split on '\n' into method, path,
 * content-type, authorization, content-length, and the rest is the body.
 * Invariants: the answer is one of the documented statuses, the body is
 * JSON-looking, and no answer or error ever contains the token. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/handler.h"
#include "base/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char TOKEN[] = "fuzz-token-0123456789abcdef";

typedef struct reader {
    const char *p;
    size_t left;
} reader;

static int read_body(void *io, char *buf, size_t len)
{
    reader *r = io;
    size_t n = len < r->left ? len : r->left;
    if (n > 7)
        n = 7; /* short reads, as from a slow socket */
    memcpy(buf, r->p, n);
    r->p += n;
    r->left -= n;
    return (int)n;
}

static int submit(void *ctx, const kyc_delivery *d, db_ingest_result *res, kerr *err)
{
    (void)ctx;
    /* A parsed delivery names its user; only a quarantined one (a body
     * that did not parse, kept with why) may not. */
    if (d->external_user_id[0] == '\0' && d->quarantine[0] == '\0')
        abort();
    memset(res, 0, sizeof *res);
    res->outcome = KYC_OUTCOME_APPLIED;
    res->reason = KYC_R_FIRST;
    res->event_id = 1;
    return 0;
}

static char *field(const char **p, const char *end)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    const char *stop = nl ? nl : end;
    size_t n = (size_t)(stop - *p);
    char *s = malloc(n + 1);
    memcpy(s, *p, n);
    s[n] = '\0';
    *p = nl ? nl + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static token_set tokens;
    static cidr_list allow;
    static int init;
    if (!init) {
        kerr e;
        if (token_set_parse(&tokens, TOKEN, &e) != 0 ||
            cidr_list_parse(&allow, "127.0.0.0/8", &e) != 0)
            abort();
        klog_set_level(KLOG_ERROR + 1);
        init = 1;
    }
    const char *p = (const char *)data, *end = p + size;
    char *method = field(&p, end), *path = field(&p, end), *ct = field(&p, end);
    char *auth = field(&p, end), *cl = field(&p, end);
    /* "@T" in the authorization field stands for the right token, so the
     * fuzzer reaches the body parser. */
    if (strcmp(auth, "@T") == 0) {
        free(auth);
        auth = strdup(TOKEN);
    }
    reader r = {p, (size_t)(end - p)};
    http_request req = {
        .method = method,
        .path = path,
        .content_type = ct[0] ? ct : NULL,
        .authorization = auth[0] ? auth : NULL,
        .remote_addr = "127.0.0.1",
        .content_length = cl[0] ? strtoll(cl, NULL, 10) : (long long)r.left,
        .request_id = "00000000000000000000000000000000",
        .read_body = read_body,
        .io = &r,
    };
    handler_ctx h = {.tokens = &tokens,
                     .allow = &allow,
                     .max_body = 4096,
                     .retry_after_s = 5,
                     .store = {.submit = submit, .ctx = NULL}};
    http_response resp;
    handler_note note;
    handler_serve(&h, &req, &resp, &note);
    switch (resp.status) {
    case 200:
    case 400:
    case 401:
    case 403:
    case 404:
    case 405:
    case 408: /* a body shorter than its Content-Length */
    case 413:
    case 415:
    case 503:
        break;
    default:
        abort();
    }
    size_t bl = strlen(resp.body);
    if (bl < 2 || resp.body[0] != '{' || resp.body[bl - 1] != '}')
        abort();
    if (strstr(resp.body, TOKEN) || strstr(note.error, TOKEN))
        abort();
    free(method), free(path), free(ct), free(auth), free(cl);
    return 0;
}
