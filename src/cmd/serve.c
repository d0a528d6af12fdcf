/* `kycd serve` (see serve.h): checks the configuration, starts the ingest,
 * the reconciler and the server in that order, waits for main's stop signal,
 * then drains and stops them in reverse order.
 *
 * Must never: handle a signal itself (main does, through cmd_ctl), start a
 * thread before main has blocked the signals (every thread inherits the
 * mask), or keep running with a configuration it refused. */
#include "cmd/serve.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "app/handler.h"
#include "app/ingest.h"
#include "app/reconciler.h"
#include "app/server.h"
#include "base/clock.h"
#include "base/log.h"
#include "cmd/common.h"
#include "io/tls.h"

/* What serve runs, shared with the stop function on main's thread. */
typedef struct serve_state {
    ingest *in;
    reconciler *rec;
    server *srv;
    spool *sp;
    int64_t grace_ms;
    atomic_int draining; /* read by the server's worker threads */
    server_counters counters;
} serve_state;

/* /readyz: the database (or spool) takes deliveries and P100 accepts our
 * credentials. */
static int serve_ready(void *ctx, char *details, size_t cap, kerr *err)
{
    serve_state *s = ctx;
    int rc = ingest_ready(s->in, details, cap, err);
    size_t n = strlen(details);
    if (n + 1 < cap)
        snprintf(details + n, cap - n, "%s\"refused_connections\":%lld,\"header_timeouts\":%lld",
                 n ? "," : "", (long long)atomic_load(&s->counters.refused),
                 (long long)atomic_load(&s->counters.timeouts));
    if (rc == 0)
        rc = reconciler_ready(s->rec, err);
    return rc;
}

/* The drain and the teardown, in reverse order of start; run by main under
 * its bound (cmd_ctl.run_bounded). */
static void serve_stop(void *arg)
{
    serve_state *s = arg;
    double t0 = clock_now_ms();
    int left = server_drain(s->srv, s->grace_ms); /* in-flight requests finish; new ones get 503 */
    if (left > 0)
        klog(KLOG_WARN, "requests still in flight at shutdown", KLOG_INT("count", left));
    server_stop(s->srv);
    s->srv = NULL;
    reconciler_stop(s->rec, NULL); /* after the server: /readyz may still ask it */
    s->rec = NULL;
    klog(KLOG_INFO, "stopped", KLOG_INT("ms", (long long)(clock_now_ms() - t0)));
    ingest_free(s->in);
    s->in = NULL;
    spool_close(s->sp);
    s->sp = NULL;
}

int cmd_serve(int argc, char **argv, const cmd_ctl *ctl)
{
    kycd_config cfg;
    int rc = cmd_load(&cfg, argc, argv);
    if (rc != 0)
        return rc;
    kerr err;
    kerr_clear(&err);
    db *d = NULL;
    serve_state s = {.grace_ms = cfg.shutdown_timeout_ms};
    atomic_init(&s.draining, 0);
    atomic_init(&s.counters.refused, 0);
    atomic_init(&s.counters.timeouts, 0);

    /* kycd holds secrets in memory (webhook tokens, API key, database
     * password): no core dump, no ptrace by other users of the same uid. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    /* Configuration refusals: exit 2. */
    rc = CMD_USAGE;
    if (config_check_serve(&cfg, &err) != 0) { /* parses the tokens and CIDRs, once */
        cmd_report("configuration refused", &err);
        goto out;
    }
    if (cfg.reconcile && cmd_need_api_key(&cfg, "the reconciler") != 0)
        goto out;
    if (server_tls_available(&err) != 0) {
        cmd_report("tls unavailable", &err);
        rc = CMD_FAILED; /* the build, not the configuration */
        goto out;
    }
    tls_opts tls = {cfg.tls_cert, cfg.tls_key, cfg.tls_chain, cfg.tls_ciphers, cfg.tls_client_ca};
    if (tls_check(&tls, &err) != 0) {
        cmd_report("tls configuration refused", &err);
        goto out;
    }

    /* Failures at start: exit 1. */
    rc = CMD_FAILED;
    if (cmd_open_db(&cfg, CMD_DB_READY, &d) != 0)
        goto out;
    db_free(d);
    d = NULL;
    if (cmd_open_spool(&cfg, &s.sp, &err) != 0) {
        cmd_report("spool refused", &err);
        goto out;
    }
    if (s.sp == NULL)
        klog(KLOG_WARN, "no spool configured: while the database is away webhooks get 503",
             KLOG_STR("hint", "set KYCD_SPOOL_DIR"));

    ingest_opts io = cmd_ingest_options(&cfg, s.sp, (int)cfg.db_pool, 1);
    if (ingest_new(&s.in, &io, &err) != 0) {
        cmd_report("cannot start", &err);
        goto out;
    }
    if (cfg.reconcile) {
        reconciler_opts ro = cmd_reconciler_options(&cfg, 0);
        if (reconciler_start(&s.rec, &ro, &err) != 0) {
            cmd_report("cannot start the reconciler", &err);
            goto out;
        }
    }
    handler_ctx h = {
        .tokens = &cfg.tokens,
        .allow = &cfg.allow,
        .max_body = cfg.max_body,
        .body_timeout_ms = cfg.request_timeout_ms,
        .retry_after_s = (int)cfg.retry_after_s,
        .store = {.submit = ingest_submit, .ready = serve_ready, .ctx = s.in, .ready_ctx = &s},
        .draining = &s.draining,
    };
    server_opts so = {
        .listen = cfg.listen,
        .http_listen = cfg.http_listen,
        .tls = tls,
        .threads = (int)cfg.threads,
        /* Headers cannot take longer than the whole request may. */
        .header_timeout_ms = cfg.header_timeout_ms < cfg.request_timeout_ms
                                 ? cfg.header_timeout_ms
                                 : cfg.request_timeout_ms,
        .allow = &cfg.allow,
        .counters = &s.counters,
        .keepalive_ms = cfg.keepalive_ms,
        .linger_ms = cfg.linger_ms,
        .linger_bytes = cfg.linger_bytes,
        .handler = &h,
    };
    if (server_start(&s.srv, &so, &err) != 0) {
        cmd_report("cannot start", &err);
        goto out;
    }
    klog(KLOG_INFO, "listening", KLOG_INT("tls_port", server_tls_port(s.srv)),
         KLOG_STR("http_listen", cfg.http_listen ? cfg.http_listen : "-"),
         KLOG_INT("threads", cfg.threads), KLOG_INT("tokens", cfg.tokens.count),
         KLOG_STR("version", KYCD_VERSION), KLOG_STR("civetweb", server_library_version()));

    const char *sig = ctl->wait_stop(ctl);
    atomic_store(&s.draining, 1);
    klog(KLOG_INFO, "shutting down", KLOG_STR("signal", sig));
    reconciler_signal_stop(s.rec); /* no new P100 calls while requests drain */
    /* Drain, then a P100 call in flight may finish, then a few seconds for
     * closing connections. Past that, or on a second signal, main exits 1
     * (the database transaction of an unfinished request rolls back; P100
     * retries what it did not see acknowledged). */
    int64_t limit = s.grace_ms + (s.rec ? cfg.p100_timeout_ms : 0) + 5000;
    ctl->run_bounded(ctl, serve_stop, &s, limit);
    rc = CMD_OK;
out:
    server_stop(s.srv);
    reconciler_stop(s.rec, NULL);
    ingest_free(s.in);
    spool_close(s.sp);
    db_free(d);
    config_deinit(&cfg);
    return rc;
}
