/* p100-sim: a test double for P100's Partner API (docs/p100-api.md),
 * used by kycd's tests and demo. It answers Get KYC Status, Create KYC
 * Verification and the verification page over TLS like P100 does (x-api-key,
 * error bodies, P500/P501 as HTTP 400, 202 P212, 401 xo1/xo2/xo3), keeps users
 * in memory, sends P100's webhooks with P100's retry schedule, and offers a
 * control API under /_sim/ (no key) to set state, inject faults and read
 * counters. The usage text below lists the endpoints; the decisions taken
 * where P100's documentation is silent are marked "P100 is silent" in the
 * modules.
 *
 * This file is main: options, secrets, the CivetWeb server and its request
 * callback, start and shutdown. The modules beside it: sim_state (users,
 * faults, counters), sim_webhooks (the sender), sim_api (P100's API),
 * sim_control (/_sim/), sim_http (replies), sim_util (clocks, log, stop).
 *
 * Must never: take a secret on the command line, log the API key, the
 * webhook token or a request body, hold the state lock while sleeping or
 * sending, or talk to anything but the addresses it is given.
 *
 * Threads: CivetWeb's workers serve requests; one sender thread delivers
 * webhooks; main only waits for SIGTERM/SIGINT and shuts down, in reverse
 * order of start. */
#include "sim_api.h"
#include "sim_control.h"
#include "sim_http.h"
#include "sim_state.h"
#include "sim_util.h"
#include "sim_webhooks.h"

#include <civetweb.h>
#include <curl/curl.h>
#include <openssl/ssl.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct opts {
    const char *listen;
    const char *cert;
    const char *key;
    const char *api_key_file;
    const char *webhook_url;
    const char *webhook_token_file;
    const char *webhook_ca;
    double retry_scale;
    long latency_ms;
    int threads;
    uint64_t seed;
    long webhook_timeout_ms;
    limits lim; /* --rate-limit, --rate-burst, --rate-retry-after, --max-status-in-flight */
} opts;

static opts O = {.retry_scale = 1.0, .threads = 64, .seed = 1, .webhook_timeout_ms = 10000};
static char api_key[512];
static char webhook_token[512];
static char webhook_base[1024];

static atomic_long request_ids;

static int on_request(struct mg_connection *conn, void *cbdata)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    double t0 = now_ms_f();
    long rid = atomic_fetch_add(&request_ids, 1) + 1;
    reply r;
    memset(&r, 0, sizeof r);
    char user_buf[ID_MAX + 1] = "", p[256], u[ID_MAX + 1];
    const char *fault = "-";
    const char *uri = ri->local_uri ? ri->local_uri : "/";
    bool sim = strncmp(uri, "/_sim/", 6) == 0;
    if (sim)
        control_handle(conn, ri, &r);
    else
        api_handle(conn, ri, &r, user_buf, sizeof user_buf, &fault);
    reply_send(conn, &r);
    sim_log("info", "request",
            "rid=%ld method=%s path=%s status=%d code=%s user=%s fault=%s ms=%.1f", rid,
            ri->request_method, logsafe(p, sizeof p, uri), r.status, r.code[0] ? r.code : "-",
            logsafe(u, sizeof u, user_buf), fault, now_ms_f() - t0);
    free(r.body);
    return r.status;
}

static int on_init_ssl(void *ssl_ctx, void *user_data)
{
    SSL_CTX *ctx = ssl_ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, O.cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, O.key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        char c[512], k[512];
        sim_log("error", "tls setup failed", "cert=%s key=%s", logsafe(c, sizeof c, O.cert),
                logsafe(k, sizeof k, O.key));
        return -1;
    }
    return 1; /* done: CivetWeb must not load certificates itself */
}

static int on_log_message(const struct mg_connection *conn, const char *message)
{
    char m[512];
    sim_log("warn", "http server", "detail=%s", logsafe(m, sizeof m, message));
    return 1;
}

static void usage(FILE *f)
{
    fputs("usage: p100-sim --listen HOST:PORT --cert server.pem --key server.key --api-key-file "
          "FILE\n"
          "                [--webhook-url https://HOST:PORT/webhooks/p100] [--webhook-token-file "
          "FILE]\n"
          "                [--webhook-ca ca.pem] [--retry-scale X] [--latency-ms N] [--threads N]\n"
          "                [--seed N] [--webhook-timeout-ms N]\n"
          "                [--rate-limit PER_SECOND] [--rate-burst N] [--rate-retry-after on|off]\n"
          "                [--max-status-in-flight N]\n"
          "A simulator of P100's Partner API for tests (TLS only). Secrets come from files.\n"
          "API:     POST /v1/kyc, GET /v1/kyc/status/{externalUserId},\n"
          "         GET /v1/kyc/verification/{externalUserId}/{verificationId}\n"
          "Control: POST /_sim/users, /_sim/users/{id}/advance, /_sim/users/{id}/poa,\n"
          "         /_sim/users/{id}/kyc-file, /_sim/users/{id}/user-status, /_sim/flush,\n"
          "         /_sim/faults, /_sim/answers, /_sim/limits, /_sim/reset;\n"
          "         GET /_sim/stats[?user=ID|?users=all], /_sim/faults, /_sim/answers, "
          "/_sim/limits,\n"
          "         /_sim/users, /_sim/users/{id}, /_sim/webhooks[?user=ID]\n"
          "P100's values are refused where P100 does not document them, unless the\n"
          "control request says \"undocumented\": true.\n",
          f);
}

/* First line of a file, trailing white space removed; the secret never reaches a log. */
static int read_secret(const char *path, char *dst, size_t cap, const char *what)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "p100-sim: cannot read the %s file %s: %s\n", what, path, strerror(errno));
        return -1;
    }
    char line[1024];
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    size_t n = ok ? strlen(line) : 0;
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' ||
                     line[n - 1] == '\t'))
        line[--n] = '\0';
    if (n == 0 || n >= cap) {
        fprintf(stderr, "p100-sim: the %s file %s is empty or too long\n", what, path);
        memset(line, 0, sizeof line);
        return -1;
    }
    memcpy(dst, line, n + 1);
    memset(line, 0, sizeof line);
    return 0;
}

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static int parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        char name[64];
        const char *eq = strchr(a, '=');
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0)
            goto bad;
        if (eq) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - a), a);
            v = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
            if (i + 1 >= argc)
                goto bad;
            v = argv[++i];
        }
        long n;
        if (strcmp(name, "--listen") == 0)
            O.listen = v;
        else if (strcmp(name, "--cert") == 0)
            O.cert = v;
        else if (strcmp(name, "--key") == 0)
            O.key = v;
        else if (strcmp(name, "--api-key-file") == 0)
            O.api_key_file = v;
        else if (strcmp(name, "--webhook-url") == 0)
            O.webhook_url = v;
        else if (strcmp(name, "--webhook-token-file") == 0)
            O.webhook_token_file = v;
        else if (strcmp(name, "--webhook-ca") == 0)
            O.webhook_ca = v;
        else if (strcmp(name, "--retry-scale") == 0) {
            char *end;
            O.retry_scale = strtod(v, &end);
            if (end == v || *end || !(O.retry_scale > 0 && O.retry_scale <= 100))
                goto bad_value;
        } else if (strcmp(name, "--latency-ms") == 0) {
            if (!parse_long(v, 0, 600000, &O.latency_ms))
                goto bad_value;
        } else if (strcmp(name, "--threads") == 0) {
            if (!parse_long(v, 1, 1024, &n))
                goto bad_value;
            O.threads = (int)n;
        } else if (strcmp(name, "--seed") == 0) {
            if (!parse_long(v, 0, LONG_MAX, &n))
                goto bad_value;
            O.seed = (uint64_t)n;
        } else if (strcmp(name, "--webhook-timeout-ms") == 0) {
            if (!parse_long(v, 1, 600000, &O.webhook_timeout_ms))
                goto bad_value;
        } else if (strcmp(name, "--rate-limit") == 0) {
            char *end;
            O.lim.rate = strtod(v, &end);
            if (end == v || *end || !(O.lim.rate >= 0 && O.lim.rate <= 1e6))
                goto bad_value;
        } else if (strcmp(name, "--rate-burst") == 0) {
            if (!parse_long(v, 1, 1000000, &n))
                goto bad_value;
            O.lim.burst = (double)n;
        } else if (strcmp(name, "--rate-retry-after") == 0) {
            if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
                goto bad_value;
            O.lim.retry_after = strcmp(v, "on") == 0;
        } else if (strcmp(name, "--max-status-in-flight") == 0) {
            if (!parse_long(v, 0, 100000, &n))
                goto bad_value;
            O.lim.max_status_in_flight = (int)n;
        } else if (strcmp(name, "--api-key") == 0 || strcmp(name, "--webhook-token") == 0) {
            fprintf(stderr, "p100-sim: secrets are not taken on the command line: use %s-file\n",
                    name);
            return -1;
        } else
            goto bad;
        continue;
    bad_value:
        fprintf(stderr, "p100-sim: bad value for %s\n", name);
        return -1;
    bad:
        fprintf(stderr, "p100-sim: unexpected argument %s\n", a);
        usage(stderr);
        return -1;
    }
    if (!O.listen || !O.cert || !O.key || !O.api_key_file) {
        fprintf(stderr, "p100-sim: --listen, --cert, --key and --api-key-file are required\n");
        usage(stderr);
        return -1;
    }
    if (O.lim.rate > 0 && O.lim.burst <= 0)
        O.lim.burst = O.lim.rate > 1 ? O.lim.rate : 1;
    if (O.lim.rate <= 0)
        O.lim.burst = 0;
    if (O.webhook_url) {
        if (strncmp(O.webhook_url, "https://", 8) != 0 &&
            strncmp(O.webhook_url, "http://", 7) != 0) {
            fprintf(stderr, "p100-sim: --webhook-url must start with https:// or http://\n");
            return -1;
        }
        snprintf(webhook_base, sizeof webhook_base, "%s", O.webhook_url);
        size_t l = strlen(webhook_base);
        while (l > 0 && webhook_base[l - 1] == '/')
            webhook_base[--l] = '\0';
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) != 0)
        return 2;
    if (read_secret(O.api_key_file, api_key, sizeof api_key, "API key") != 0)
        return 2;
    if (O.webhook_token_file && read_secret(O.webhook_token_file, webhook_token,
                                            sizeof webhook_token, "webhook token") != 0)
        return 2;

    state_init(O.latency_ms, O.seed, &O.lim);
    api_init(api_key);
    memset(api_key, 0, sizeof api_key); /* api_init keeps its copy */
    stop_init();

    /* Signals go to main alone: block them before any thread starts. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "p100-sim: curl_global_init failed\n");
        return 1;
    }
    mg_init_library(MG_FEATURES_TLS);
    if (!mg_check_feature(MG_FEATURES_TLS)) {
        fprintf(stderr, "p100-sim: this CivetWeb has no TLS\n");
        return 1;
    }

    wh_conf whc = {.base = webhook_base,
                   .token = webhook_token,
                   .ca = O.webhook_ca,
                   .retry_scale = O.retry_scale,
                   .timeout_ms = O.webhook_timeout_ms};
    int whrc = wh_start(&whc);
    memset(webhook_token, 0, sizeof webhook_token); /* wh_start keeps its copy */
    if (whrc != 0) {
        fprintf(stderr, "p100-sim: cannot start the webhook sender\n");
        return 1;
    }

    char ports[300], threads[16];
    snprintf(ports, sizeof ports, "%ss", O.listen);
    snprintf(threads, sizeof threads, "%d", O.threads);
    const char *options[] = {
        "listening_ports",
        ports,
        "num_threads",
        threads,
        "tcp_nodelay",
        "1", /* without it keep-alive requests stall 40 ms each */
        "enable_keep_alive",
        "yes",
        "keep_alive_timeout_ms",
        "10000",
        "request_timeout_ms",
        "30000",
        "ssl_protocol_version",
        "4",
        "listen_backlog",
        "512",
        "connection_queue",
        "512",
        NULL,
        NULL,
    };
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.init_ssl = on_init_ssl;
    cb.log_message = on_log_message;
    struct mg_init_data init = {
        .callbacks = &cb, .user_data = NULL, .configuration_options = options};
    char ebuf[256] = "";
    struct mg_error_data ed;
    memset(&ed, 0, sizeof ed);
    ed.text = ebuf;
    ed.text_buffer_size = sizeof ebuf;
    struct mg_context *ctx = mg_start2(&init, &ed);
    int rc = 0, port = 0;
    if (ctx == NULL) {
        char l[256], e[512];
        sim_log("error", "cannot start", "listen=%s error=%s", logsafe(l, sizeof l, O.listen),
                logsafe(e, sizeof e, ebuf));
        rc = 1;
        goto out;
    }
    mg_set_request_handler(ctx, "/", on_request, NULL);
    struct mg_server_port bound[4];
    int nb = mg_get_server_ports(ctx, 4, bound);
    for (int i = 0; i < nb; i++)
        if (bound[i].is_ssl)
            port = bound[i].port;
    if (port == 0) {
        char l[256];
        sim_log("error", "cannot start", "listen=%s error=\"no TLS listener\"",
                logsafe(l, sizeof l, O.listen));
        rc = 1;
        goto out;
    }
    char w[1024];
    sim_log("info", "listening",
            "port=%d threads=%d webhook_url=%s retry_scale=%g latency_ms=%ld rate_limit=%g "
            "rate_burst=%g max_status_in_flight=%d",
            port, O.threads, logsafe(w, sizeof w, webhook_base), O.retry_scale, O.latency_ms,
            O.lim.rate, O.lim.burst, O.lim.max_status_in_flight);
    printf("p100-sim listening port=%d\n", port);
    fflush(stdout);

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0)
        ;
    sim_log("info", "stopping", "signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");

out:
    /* Reverse order of start: requests (and their latency waits), then the sender. */
    stop_begin();
    if (ctx)
        mg_stop(ctx);
    long left = wh_stop();
    state_deinit();
    curl_global_cleanup();
    mg_exit_library();
    api_deinit();
    if (rc == 0)
        sim_log("info", "stopped", "webhooks_abandoned=%ld", left);
    return rc;
}
