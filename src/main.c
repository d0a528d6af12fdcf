/* kycd: receives P100's KYC webhooks over TLS and stores them in
 * PostgreSQL. This file wires the layers together for each command and owns
 * signals and shutdown; it holds no logic of its own. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/handler.h"
#include "app/ingest.h"
#include "app/server.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "core/cidr.h"
#include "core/token.h"
#include "io/config.h"
#include "io/db.h"
#include "io/migrations.h"
#include "io/tls.h"

extern char **environ;

static const char USAGE[] =
    "usage: kycd COMMAND [--config FILE] [--KEY VALUE ...]\n"
    "\n"
    "commands:\n"
    "  serve     run the HTTPS webhook receiver\n"
    "  migrate   apply the database migrations (safe to run from several hosts)\n"
    "  config    print the effective configuration, secrets redacted\n"
    "  version   print versions\n"
    "\n"
    "Configuration comes from the file, then KYCD_* environment variables, then\n"
    "flags; see README.md for every key. Secrets are never accepted as flags.\n";

static void die(const char *what, const kerr *err)
{
    klog_line l;
    klog_begin(&l, KLOG_ERROR, what);
    klog_str(&l, "error", err->msg);
    klog_end(&l);
}

static db_opts db_options(const kycd_config *cfg)
{
    db_opts o = {
        .conninfo = cfg->database_url,
        .password = cfg->database_password,
        .timeout_ms = cfg->db_timeout_ms,
        .application_name = "kycd",
    };
    return o;
}

static int load(kycd_config *cfg, int argc, char **argv)
{
    kerr err;
    kerr_clear(&err);
    if (config_load(cfg, environ, argc, argv, &err) != 0) {
        fprintf(stderr, "kycd: %s\n", err.msg);
        return 2;
    }
    klog_set_level(klog_level_parse(cfg->log_level));
    return 0;
}

static int cmd_config(int argc, char **argv)
{
    kycd_config cfg;
    int rc = load(&cfg, argc, argv);
    if (rc == 0)
        config_print(&cfg, stdout);
    config_deinit(&cfg);
    return rc;
}

static int cmd_migrate(int argc, char **argv)
{
    kycd_config cfg;
    int rc = load(&cfg, argc, argv);
    if (rc != 0)
        goto out;
    kerr err;
    kerr_clear(&err);
    db *d = NULL;
    db_opts o = db_options(&cfg);
    int applied = 0, version = 0;
    if (db_connect(&d, &o, &err) != 0 || db_migrate(d, &applied, &err) != 0 ||
        db_schema_version(d, &version, &err) != 0) {
        die("migrate failed", &err);
        rc = 1;
    } else {
        klog(KLOG_INFO, "migrate done", "applied=%d schema=%d", applied, version);
    }
    db_free(d);
out:
    config_deinit(&cfg);
    return rc;
}

/* Bounds the graceful stop: if in-flight work does not finish within the
 * shutdown timeout, exit anyway (the database transaction of an unfinished
 * request rolls back; P100 retries what it did not see acknowledged). */
static void *shutdown_watchdog(void *arg)
{
    int64_t ms = *(int64_t *)arg;
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    klog(KLOG_ERROR, "shutdown timed out, exiting", "timeout_ms=%lld", (long long)ms);
    _exit(1);
    return NULL;
}

static int cmd_serve(int argc, char **argv)
{
    kycd_config cfg;
    int rc = load(&cfg, argc, argv);
    if (rc != 0) {
        config_deinit(&cfg);
        return rc;
    }
    kerr err;
    kerr_clear(&err);
    db *d = NULL;
    ingest *in = NULL;
    server *srv = NULL;
    static token_set tokens;
    static cidr_list allow;
    static volatile int draining;
    rc = 1;

    /* Signals go to main only: block them before any thread starts. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (config_check_serve(&cfg, &err) != 0) {
        die("configuration refused", &err);
        goto out;
    }
    if (server_tls_available(&err) != 0) {
        die("tls unavailable", &err);
        goto out;
    }
    if (token_set_parse(&tokens, cfg.webhook_tokens, &err) != 0 ||
        cidr_list_parse(&allow, cfg.allow_cidrs, &err) != 0) {
        die("configuration refused", &err);
        goto out;
    }
    tls_opts tls = {cfg.tls_cert, cfg.tls_key, cfg.tls_chain, cfg.tls_ciphers};
    if (tls_check(&tls, &err) != 0) {
        die("tls configuration refused", &err);
        goto out;
    }
    db_opts dbo = db_options(&cfg);
    if (db_connect(&d, &dbo, &err) != 0 || db_check_schema(d, &err) != 0) {
        die("database not ready", &err);
        goto out;
    }
    db_free(d);
    d = NULL;

    ingest_opts io = {
        .db = dbo,
        .pool_size = (int)cfg.db_pool,
        .wait_ms = cfg.db_timeout_ms,
        .policy = {.dedup_window_ms = cfg.dedup_window_ms,
                   .reorder_window_ms = cfg.reorder_window_ms},
    };
    if (ingest_new(&in, &io, &err) != 0) {
        die("cannot start", &err);
        goto out;
    }
    handler_ctx h = {
        .tokens = &tokens,
        .allow = &allow,
        .max_body = cfg.max_body,
        .retry_after_s = (int)cfg.retry_after_s,
        .store = {.submit = ingest_submit, .ready = ingest_ready, .ctx = in},
        .draining = &draining,
    };
    server_opts so = {
        .listen = cfg.listen,
        .http_listen = cfg.http_listen,
        .tls = tls,
        .threads = (int)cfg.threads,
        .request_timeout_ms = cfg.request_timeout_ms,
        .keepalive_ms = cfg.keepalive_ms,
        .handler = &h,
    };
    if (server_start(&srv, &so, &err) != 0) {
        die("cannot start", &err);
        goto out;
    }
    klog(KLOG_INFO, "listening",
         "tls_port=%d http_listen=%s threads=%lld tokens=%d version=%s civetweb=%s", 
         server_tls_port(srv), cfg.http_listen ? cfg.http_listen : "-", (long long)cfg.threads,
         tokens.count, KYCD_VERSION, server_library_version());

    int sig = 0;
    sigwait(&sigs, &sig);
    draining = 1;
    klog(KLOG_INFO, "shutting down", "signal=%s", sig == SIGTERM ? "TERM" : "INT");
    pthread_t wd;
    int64_t grace = cfg.shutdown_timeout_ms;
    static int64_t limit; /* drain, then a few seconds for closing connections */
    limit = grace + 5000;
    pthread_create(&wd, NULL, shutdown_watchdog, &limit);
    pthread_detach(wd);
    double t0 = clock_now_ms();
    int left = server_drain(srv, grace); /* in-flight requests finish; new ones get 503 */
    if (left > 0)
        klog(KLOG_WARN, "requests still in flight at shutdown", "count=%d", left);
    server_stop(srv);
    srv = NULL;
    klog(KLOG_INFO, "stopped", "ms=%.0f", clock_now_ms() - t0);
    rc = 0;
out:
    server_stop(srv);
    ingest_free(in);
    db_free(d);
    config_deinit(&cfg);
    return rc;
}

static int cmd_version(void)
{
    int latest = kycd_migrations_count ? kycd_migrations[kycd_migrations_count - 1].version : 0;
    printf("kycd %s (schema %d, civetweb %s, %s)\n", KYCD_VERSION, latest,
           server_library_version(), tls_library_version());
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc - 2, argv + 2);
    if (strcmp(cmd, "migrate") == 0)
        return cmd_migrate(argc - 2, argv + 2);
    if (strcmp(cmd, "config") == 0)
        return cmd_config(argc - 2, argv + 2);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0)
        return cmd_version();
    fprintf(stderr, "kycd: unknown command '%s'\n\n%s", cmd, USAGE);
    return 2;
}
