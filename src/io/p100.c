/* The HTTPS client for P100's Partner API: the only user of libcurl.
 * Turns one call into a classified p100_result. Must never log (the caller
 * logs once per outcome), never put the API key into an error or a result,
 * never turn certificate or hostname verification off, and never follow a
 * redirect. */
#include "io/p100.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/clock.h"
#include "core/payload.h"

#define P100_BODY_MAX (1024 * 1024) /* an answer larger than this is refused */
#define P100_DEFAULT_TIMEOUT_MS 10000
#define P100_DEFAULT_CONNECT_TIMEOUT_MS 5000
#define P100_DEFAULT_STATUS_PATH "/v1/kyc/status/{externalUserId}"
#define P100_ID_PLACEHOLDER "{externalUserId}"

struct p100_client {
    CURL *h;
    char *base_url; /* without trailing slashes */
    char *status_path;
    struct curl_slist *hdr_get;
    struct curl_slist *hdr_post;
    /* per call */
    p100_result *res;
    int too_big;
    int nomem;
    char errbuf[CURL_ERROR_SIZE];
};

/* ---- process-wide init: curl_global_init is not thread-safe, so it runs
 * once; there is no matching cleanup, the library lives as long as the
 * process. */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int global_ready(kerr *err)
{
    if (pthread_once(&global_once, global_init) != 0 || global_rc != CURLE_OK)
        return kerr_set(err, KERR_IO, "initialising libcurl: %s", curl_easy_strerror(global_rc));
    return 0;
}

/* ---- results */

void p100_result_init(p100_result *r)
{
    memset(r, 0, sizeof *r);
    r->cls = P100_TRANSIENT;
    r->retry_after_ms = -1;
    kbuf_init(&r->body);
}

void p100_result_deinit(p100_result *r)
{
    if (r == NULL)
        return;
    kbuf_deinit(&r->body);
}

static void result_reset(p100_result *r)
{
    r->cls = P100_TRANSIENT;
    r->http_status = 0;
    r->error_code[0] = r->error_name[0] = r->error_message[0] = '\0';
    r->retry_after_ms = -1;
    r->latency_ms = 0;
    kbuf_reset(&r->body);
}

static void set_message(p100_result *r, const char *msg)
{
    snprintf(r->error_message, sizeof r->error_message, "%s", msg);
}

/* ---- options */

/* Plain http is allowed only towards this host (the simulator in tests):
 * localhost, [::1] or a dotted 127.x.y.z, checked on the whole host so that
 * "http://127.evil.example" or "http://localhost.evil.example" is refused. */
static int loopback_host(const char *host, size_t n)
{
    if ((n == 9 && strncasecmp(host, "localhost", 9) == 0) ||
        (n == 5 && memcmp(host, "[::1]", 5) == 0))
        return 1;
    if (n < 7 || memcmp(host, "127.", 4) != 0)
        return 0;
    int dots = 0;
    for (size_t i = 0; i < n; i++) {
        if (host[i] == '.')
            dots++;
        else if (host[i] < '0' || host[i] > '9')
            return 0;
    }
    return dots == 3;
}

/* 0 with *plain_http set, or an error naming the rule (never the URL's
 * secrets: a URL with credentials is refused without being quoted). */
static int check_base_url(const char *url, int *plain_http, kerr *err)
{
    if (url == NULL || *url == '\0')
        return kerr_set(err, KERR_CONFIG, "p100 base url is empty");
    const char *rest;
    if (strncasecmp(url, "https://", 8) == 0) {
        rest = url + 8;
        *plain_http = 0;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        rest = url + 7;
        *plain_http = 1;
    } else {
        return kerr_set(err, KERR_CONFIG, "p100 base url must start with https://");
    }
    if (strchr(rest, '@') != NULL)
        return kerr_set(err, KERR_CONFIG, "p100 base url must not carry credentials");
    size_t host_len;
    if (rest[0] == '[') { /* an IPv6 literal ends at its bracket */
        const char *close = strchr(rest, ']');
        host_len = close ? (size_t)(close - rest) + 1 : 0;
    } else {
        host_len = strcspn(rest, ":/?#");
    }
    if (host_len == 0)
        return kerr_set(err, KERR_CONFIG, "p100 base url has no host");
    if (strpbrk(rest, "?# \t\r\n") != NULL)
        return kerr_set(err, KERR_CONFIG,
                        "p100 base url must not contain a query, a fragment or spaces");
    if (*plain_http && !loopback_host(rest, host_len))
        return kerr_set(err, KERR_CONFIG,
                        "p100 base url must use https:// (http:// is allowed only for "
                        "localhost and 127.x.y.z)");
    return 0;
}

static int check_api_key(const char *key, kerr *err)
{
    if (key == NULL || *key == '\0')
        return kerr_set(err, KERR_CONFIG, "p100 api key is empty");
    /* It goes into a header line: a CR or LF would inject headers. */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            return kerr_set(err, KERR_CONFIG,
                            "p100 api key holds a control or non-ASCII character");
    return 0;
}

static char *dup_trimmed_url(const char *s)
{
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '/')
        n--;
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* ---- curl callbacks */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    p100_client *c = ud;
    size_t n = size * nmemb;
    if (c->res->body.len + n > P100_BODY_MAX) {
        c->too_big = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (kbuf_append(&c->res->body, ptr, n) != 0) {
        c->nomem = 1;
        return 0;
    }
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud)
{
    p100_client *c = ud;
    size_t n = size * nmemb;
    /* A new status line (after a 100 Continue, say) starts a new answer. */
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        c->res->retry_after_ms = -1;
        return n;
    }
    static const char name[] = "retry-after:";
    size_t nl = sizeof name - 1;
    if (n > nl && n - nl < 64 && strncasecmp(ptr, name, nl) == 0) {
        char value[64];
        memcpy(value, ptr + nl, n - nl);
        value[n - nl] = '\0';
        c->res->retry_after_ms = p100_retry_after_ms(value);
    }
    return n;
}

/* ---- client */

/* The options a client is made from, checked before anything is
 * allocated; *path is o's status path or the default. */
static int check_opts(const p100_opts *o, int *plain_http, const char **path, kerr *err)
{
    int rc;
    if ((rc = check_base_url(o->base_url, plain_http, err)) != 0 ||
        (rc = check_api_key(o->api_key, err)) != 0)
        return rc;
    const char *p = o->status_path && *o->status_path ? o->status_path : P100_DEFAULT_STATUS_PATH;
    if (p[0] != '/' || strstr(p, P100_ID_PLACEHOLDER) == NULL)
        return kerr_set(err, KERR_CONFIG,
                        "p100 status path must start with '/' and contain " P100_ID_PLACEHOLDER);
    for (const unsigned char *q = (const unsigned char *)p; *q; q++)
        if (*q <= 0x20 || *q >= 0x7f || *q == '?' || *q == '#')
            return kerr_set(err, KERR_CONFIG,
                            "p100 status path must be printable ASCII without spaces, '?' "
                            "or '#'");
    if (o->timeout_ms < 0 || o->connect_timeout_ms < 0)
        return kerr_set(err, KERR_CONFIG, "p100 timeouts must not be negative");
    if (o->ca_file && *o->ca_file && access(o->ca_file, R_OK) != 0)
        return kerr_set(err, KERR_CONFIG, "p100 ca file %s cannot be read", o->ca_file);
    *path = p;
    return 0;
}

/* The header lists of GET and POST calls, the API key in both. -1: out of
 * memory (c frees what was made). */
static int make_headers(p100_client *c, const char *api_key)
{
    int rc = -1;
    size_t key_header_len = strlen("x-api-key: ") + strlen(api_key) + 1;
    char *key_header = malloc(key_header_len);
    if (key_header == NULL)
        return -1;
    snprintf(key_header, key_header_len, "x-api-key: %s", api_key);
    /* curl copies each line; ours is wiped below. */
    static const char *const common[] = {"Accept: application/json", "Expect:"};
    struct curl_slist *t;
    for (int post = 0; post < 2; post++) {
        struct curl_slist **list = post ? &c->hdr_post : &c->hdr_get;
        if ((t = curl_slist_append(*list, key_header)) == NULL)
            goto out;
        *list = t;
        for (size_t i = 0; i < sizeof common / sizeof common[0]; i++) {
            if ((t = curl_slist_append(*list, common[i])) == NULL)
                goto out;
            *list = t;
        }
        if (post) {
            if ((t = curl_slist_append(*list, "Content-Type: application/json")) == NULL)
                goto out;
            *list = t;
        }
    }
    rc = 0;
out:
    explicit_bzero(key_header, key_header_len);
    free(key_header);
    return rc;
}

/* Set one option unless an earlier one failed. */
#define SETOPT(h, opt, val)                                                                        \
    if (cc == CURLE_OK)                                                                            \
        cc = curl_easy_setopt(h, opt, val);

/* Verification on, always; TLS 1.2 at least; no redirect followed (and
 * never to anything but https); plain http only where check_base_url
 * allowed it (a loopback test server). */
static CURLcode set_tls_opts(CURL *h, const p100_opts *o, int plain_http)
{
    CURLcode cc = CURLE_OK;
    SETOPT(h, CURLOPT_PROTOCOLS_STR, plain_http ? "http" : "https")
    SETOPT(h, CURLOPT_REDIR_PROTOCOLS_STR, "https")
    SETOPT(h, CURLOPT_FOLLOWLOCATION, 0L)
    SETOPT(h, CURLOPT_SSL_VERIFYPEER, 1L)
    SETOPT(h, CURLOPT_SSL_VERIFYHOST, 2L)
    SETOPT(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2)
    if (o->ca_file && *o->ca_file)
        SETOPT(h, CURLOPT_CAINFO, o->ca_file)
    return cc;
}

/* The handle's options: no signals, TLS, deadlines, and the callbacks
 * that fill the client's result. */
static CURLcode set_curl_opts(p100_client *c, const p100_opts *o, int plain_http)
{
    int64_t timeout = o->timeout_ms > 0 ? o->timeout_ms : P100_DEFAULT_TIMEOUT_MS;
    int64_t connect =
        o->connect_timeout_ms > 0 ? o->connect_timeout_ms : P100_DEFAULT_CONNECT_TIMEOUT_MS;
    if (connect > timeout)
        connect = timeout;
    CURLcode cc = curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    if (cc == CURLE_OK)
        cc = set_tls_opts(c->h, o, plain_http);
    SETOPT(c->h, CURLOPT_TIMEOUT_MS, (long)timeout)
    SETOPT(c->h, CURLOPT_CONNECTTIMEOUT_MS, (long)connect)
    SETOPT(c->h, CURLOPT_TCP_KEEPALIVE, 1L)
    SETOPT(c->h, CURLOPT_USERAGENT, "kycd/" KYCD_VERSION)
    SETOPT(c->h, CURLOPT_ERRORBUFFER, c->errbuf)
    SETOPT(c->h, CURLOPT_WRITEFUNCTION, on_body)
    SETOPT(c->h, CURLOPT_WRITEDATA, c)
    SETOPT(c->h, CURLOPT_HEADERFUNCTION, on_header)
    SETOPT(c->h, CURLOPT_HEADERDATA, c)
    return cc;
}
#undef SETOPT

int p100_client_new(p100_client **out, const p100_opts *o, kerr *err)
{
    int rc, plain_http = 0;
    const char *path = NULL;

    if (out == NULL || o == NULL)
        return kerr_set(err, KERR_INVALID, "p100 client: no options");
    if ((rc = check_opts(o, &plain_http, &path, err)) != 0 || (rc = global_ready(err)) != 0)
        return rc;

    p100_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        goto nomem;
    c->base_url = dup_trimmed_url(o->base_url);
    c->status_path = strdup(path);
    if (c->base_url == NULL || c->status_path == NULL || make_headers(c, o->api_key) != 0)
        goto nomem;

    c->h = curl_easy_init();
    if (c->h == NULL) {
        rc = kerr_set(err, KERR_IO, "p100 client: curl_easy_init failed");
        goto out;
    }
    CURLcode cc = set_curl_opts(c, o, plain_http);
    if (cc != CURLE_OK) {
        rc = kerr_set(err, cc == CURLE_OUT_OF_MEMORY ? KERR_NOMEM : KERR_CONFIG,
                      "p100 client: setting curl options: %s", curl_easy_strerror(cc));
        goto out;
    }

    *out = c;
    c = NULL;
    rc = 0;
    goto out;
nomem:
    rc = kerr_set(err, KERR_NOMEM, "out of memory");
out:
    p100_client_free(c);
    return rc;
}

/* curl's copies of the key header line are freed without being wiped: the
 * key also sits in the configuration for the life of the process. */
void p100_client_free(p100_client *c)
{
    if (c == NULL)
        return;
    if (c->h)
        curl_easy_cleanup(c->h);
    curl_slist_free_all(c->hdr_post);
    curl_slist_free_all(c->hdr_get);
    free(c->status_path);
    free(c->base_url);
    free(c);
}

/* ---- one call */

/* Append the percent-encoded `s` (RFC 3986 unreserved characters kept). */
static int append_escaped(CURL *h, kbuf *b, const char *s)
{
    char *e = curl_easy_escape(h, s, (int)strlen(s));
    if (e == NULL)
        return KERR_NOMEM;
    int rc = kbuf_append(b, e, strlen(e));
    curl_free(e);
    return rc;
}

/* base + path with every {externalUserId} replaced by the encoded id. */
static int status_url(p100_client *c, const char *id, kbuf *url)
{
    int rc = kbuf_append(url, c->base_url, strlen(c->base_url));
    const char *p = c->status_path;
    const char *hit;
    while (rc == 0 && (hit = strstr(p, P100_ID_PLACEHOLDER)) != NULL) {
        if ((rc = kbuf_append(url, p, (size_t)(hit - p))) == 0)
            rc = append_escaped(c->h, url, id);
        p = hit + strlen(P100_ID_PLACEHOLDER);
    }
    if (rc == 0)
        rc = kbuf_append(url, p, strlen(p));
    return rc;
}

/* Errors of the TLS set-up or of the peer's certificate: every call would
 * fail the same way, so they stop the caller like a 401 does. */
static int tls_config_error(CURLcode cc)
{
    return cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE ||
           cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_SSL_PINNEDPUBKEYNOTMATCH ||
           cc == CURLE_SSL_ISSUER_ERROR || cc == CURLE_SSL_CRL_BADFILE;
}

/* Perform the request prepared on c->h and classify what came back.
 * Returns 0 when res holds a classified answer, negative on a local
 * failure. */
static int perform(p100_client *c, const char *url, const char *post_body, p100_result *res,
                   kerr *err)
{
    CURLcode cc = curl_easy_setopt(c->h, CURLOPT_URL, url);
    if (cc == CURLE_OK && post_body) {
        cc = curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, post_body);
        if (cc == CURLE_OK)
            cc = curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(post_body));
        if (cc == CURLE_OK)
            cc = curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdr_post);
    } else if (cc == CURLE_OK) {
        cc = curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
        if (cc == CURLE_OK)
            cc = curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdr_get);
    }
    if (cc != CURLE_OK)
        return kerr_set(err, cc == CURLE_OUT_OF_MEMORY ? KERR_NOMEM : KERR_INVALID,
                        "p100 request: %s", curl_easy_strerror(cc));

    c->res = res;
    c->too_big = c->nomem = 0;
    c->errbuf[0] = '\0';
    double t0 = clock_now_ms();
    cc = curl_easy_perform(c->h);
    res->latency_ms = clock_now_ms() - t0;
    c->res = NULL;
    /* POSTFIELDS points into the caller's buffer: forget it now. */
    if (post_body && curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L) != CURLE_OK)
        return kerr_set(err, KERR_INVALID, "p100 request: resetting to GET failed");

    if (c->nomem || cc == CURLE_OUT_OF_MEMORY) {
        kbuf_reset(&res->body);
        return kerr_set(err, KERR_NOMEM, "out of memory reading p100's answer");
    }
    if (c->too_big) {
        long status = 0;
        curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
        kbuf_reset(&res->body);
        res->http_status = status;
        res->cls = P100_TRANSIENT;
        snprintf(res->error_message, sizeof res->error_message, "answer body larger than %d bytes",
                 P100_BODY_MAX);
        return 0;
    }
    if (cc != CURLE_OK) {
        if (cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL ||
            cc == CURLE_BAD_FUNCTION_ARGUMENT || cc == CURLE_NOT_BUILT_IN)
            return kerr_set(err, KERR_INVALID, "p100 request: %s",
                            c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
        res->http_status = 0;
        kbuf_reset(&res->body);
        set_message(res, c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
        res->cls = tls_config_error(cc) ? P100_MISCONFIGURED : p100_classify(0, NULL);
        return 0;
    }

    long status = 0;
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    res->http_status = status;
    if (status != 200 && status != 201) {
        if (payload_parse_p100_error(res->body.data, res->body.len, res->error_code,
                                     res->error_name, res->error_message) != 0 &&
            (status < 200 || status >= 300))
            snprintf(res->error_message, sizeof res->error_message,
                     res->body.len ? "http %ld answer body is not a JSON object"
                                   : "http %ld answer with an empty body",
                     status);
    }
    res->cls = p100_classify(status, res->error_code);
    return 0;
}

int p100_get_status(p100_client *c, const char *external_user_id, p100_result *res,
                    kyc_status *status, kerr *err)
{
    int rc;
    kbuf url;
    kbuf_init(&url);
    if (c == NULL || res == NULL || status == NULL)
        return kerr_set(err, KERR_INVALID, "p100 get status: missing argument");
    if ((rc = kyc_id_check("externalUserId", external_user_id, 0, err)) != 0)
        return rc;
    result_reset(res);
    if ((rc = status_url(c, external_user_id, &url)) != 0) {
        rc = kerr_set(err, KERR_NOMEM, "out of memory");
        goto out;
    }
    if ((rc = perform(c, kbuf_str(&url), NULL, res, err)) != 0)
        goto out;
    if (res->cls != P100_OK)
        goto out;
    if (res->http_status != 200) {
        /* 201/202 are answers to a create, not to a status read. */
        res->cls = P100_TRANSIENT;
        snprintf(res->error_message, sizeof res->error_message,
                 "get kyc status answered http %ld instead of 200", res->http_status);
        goto out;
    }
    kyc_status st;
    kerr perr;
    kerr_clear(&perr);
    if (payload_parse_p100_status(res->body.data, res->body.len, &st, &perr) != 0) {
        /* A 200 that is no status (an HTML page, another JSON): the path or
         * the service is wrong, not the user. */
        res->cls = P100_UNUSABLE;
        /* Cut to fit; checking the result keeps -Wformat-truncation quiet. */
        if (snprintf(res->error_message, sizeof res->error_message,
                     "http 200 answer not understood: %s", perr.msg) < 0)
            res->error_message[0] = '\0';
        goto out;
    }
    *status = st;
out:
    kbuf_deinit(&url);
    return rc;
}

int p100_create_kyc(p100_client *c, const p100_create_req *req, p100_result *res,
                    char *verification_id, size_t cap, kerr *err)
{
    int rc;
    kbuf url, body;
    kbuf_init(&url);
    kbuf_init(&body);
    if (c == NULL || req == NULL || res == NULL || verification_id == NULL || cap == 0)
        return kerr_set(err, KERR_INVALID, "p100 create kyc: missing argument");
    if ((rc = payload_build_p100_create(req, &body, err)) != 0)
        goto out; /* validation happens there */
    if ((rc = kbuf_appendf(&url, "%s/v1/kyc", c->base_url)) != 0) {
        rc = kerr_set(err, KERR_NOMEM, "out of memory");
        goto out;
    }
    result_reset(res);
    verification_id[0] = '\0';
    if ((rc = perform(c, kbuf_str(&url), kbuf_str(&body), res, err)) != 0)
        goto out;
    if (res->cls != P100_OK || res->http_status == 202)
        goto out; /* 202: P212, already pending, no new id */
    char id[KYC_ID_MAX + 1];
    kerr perr;
    kerr_clear(&perr);
    if (payload_parse_p100_created(res->body.data, res->body.len, id, sizeof id, &perr) != 0) {
        res->cls = P100_TRANSIENT;
        if (snprintf(res->error_message, sizeof res->error_message,
                     "http %ld answer not understood: %s", res->http_status, perr.msg) < 0)
            res->error_message[0] = '\0';
        goto out;
    }
    if (strlen(id) >= cap) {
        rc = kerr_set(err, KERR_INVALID, "p100 create kyc: verification id longer than %zu bytes",
                      cap - 1);
        goto out;
    }
    memcpy(verification_id, id, strlen(id) + 1);
out:
    kbuf_deinit(&body);
    kbuf_deinit(&url);
    return rc;
}

int p100_redirect_url(const p100_opts *o, const char *external_user_id, const char *verification_id,
                      kbuf *out, kerr *err)
{
    int rc, plain_http;
    kbuf u;
    kbuf_init(&u);
    char *base = NULL;
    if (o == NULL || out == NULL)
        return kerr_set(err, KERR_INVALID, "p100 redirect url: missing argument");
    if ((rc = check_base_url(o->base_url, &plain_http, err)) != 0 ||
        (rc = kyc_id_check("externalUserId", external_user_id, 0, err)) != 0 ||
        (rc = kyc_id_check("verificationId", verification_id, 0, err)) != 0)
        return rc;
    if ((rc = global_ready(err)) != 0)
        return rc;
    /* curl_easy_escape ignores its handle (since curl 7.82). */
    if ((base = dup_trimmed_url(o->base_url)) == NULL ||
        kbuf_appendf(&u, "%s/v1/kyc/verification/", base) != 0 ||
        append_escaped(NULL, &u, external_user_id) != 0 || kbuf_append(&u, "/", 1) != 0 ||
        append_escaped(NULL, &u, verification_id) != 0 || kbuf_append(out, u.data, u.len) != 0) {
        rc = kerr_set(err, KERR_NOMEM, "out of memory");
        goto out;
    }
    rc = 0;
out:
    free(base);
    kbuf_deinit(&u);
    return rc;
}
