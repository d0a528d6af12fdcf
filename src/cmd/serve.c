/* `kycd serve` (see serve.h): checks the configuration, starts the ingest,
 * the reconciler and the server in that order, waits for main's stop signal,
 * then drains and stops them in reverse order.
 *
 * Must never: handle a signal itself (main does, through cmd_ctl), start a
 * thread before main has blocked the signals (every thread inherits the
 * mask), or keep running with a configuration it refused. */
#include "cmd/serve.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "app/handler.h"
#include "app/ingest.h"
#include "app/reconciler.h"
#include "app/server.h"
#include "base/clock.h"
#include "base/log.h"
#include "cmd/common.h"
#include "cmd/partitions.h"
#include "io/sdnotify.h"
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
    /* Reload (SIGHUP, on main's thread). */
    int argc;
    char **argv;
    const kycd_config *cfg; /* as started: what cannot change live is compared to it */
    kycd_config live;       /* the last configuration applied (its live keys) */
    int have_live;          /* live is set (after a first successful reload) */
    token_set tokens;       /* what the handler reads, under live_lock */
    cidr_list allow;
    pthread_rwlock_t live_lock;
    atomic_llong reloads, reload_failures; /* read by /readyz */
} serve_state;

/* /readyz: the database (or spool) takes deliveries and P100 accepts our
 * credentials. */
static int serve_ready(void *ctx, char *details, size_t cap, kerr *err)
{
    serve_state *s = ctx;
    int rc = ingest_ready(s->in, details, cap, err);
    size_t n = strlen(details);
    if (n + 1 < cap)
        snprintf(details + n, cap - n,
                 "%s\"refused_connections\":%lld,\"header_timeouts\":%lld,"
                 "\"reloads\":%lld,\"reload_failures\":%lld",
                 n ? "," : "", (long long)atomic_load(&s->counters.refused),
                 (long long)atomic_load(&s->counters.timeouts), (long long)atomic_load(&s->reloads),
                 (long long)atomic_load(&s->reload_failures));
    if (rc == 0)
        rc = reconciler_ready(s->rec, err);
    return rc;
}

/* systemd notify, logged once if it fails (kycd serves on regardless). */
static void notify(const char *state)
{
    static int warned;
    if (sdnotify(state) != 0 && !warned) {
        warned = 1;
        klog(KLOG_WARN, "cannot notify systemd", KLOG_STR("socket", getenv("NOTIFY_SOCKET")));
    }
}

/* SIGHUP (PgBouncer's rule): read the file and every *_file secret again
 * (the environment and the flags are the process's own and do not change),
 * check all of it as serve does at start, and only then apply what can
 * change live: webhook tokens and allow_cidrs (the handler's lists, swapped
 * under their lock), the TLS certificate, key and chain (new connections),
 * the log level. Anything else that changed is kept as it is and named in
 * one warning. A reload that fails anywhere changes nothing and logs one
 * line naming the problem. */
static void serve_reload_(serve_state *s);

static void serve_reload(void *arg)
{
    serve_state *s = arg;
    /* systemd (Type=notify): reloading from now until READY=1 again. */
    char msg[64];
    snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%lld",
             (long long)(clock_now_ms() * 1000.0));
    notify(msg);
    serve_reload_(s);
    notify("READY=1");
}

/* systemd's watchdog: main's loop is alive and answers signals. */
static void serve_tick(void *arg)
{
    (void)arg;
    notify("WATCHDOG=1");
}

static void serve_reload_(serve_state *s)
{
    kycd_config n;
    kerr err;
    kerr_clear(&err);
    const kycd_config *prev = s->have_live ? &s->live : s->cfg;
    char changed[512], kept[512];
    /* config_load starts by zeroing n: config_deinit is safe on any failure. */
    if (config_load(&n, environ, s->argc, s->argv, &err) != 0 || config_check_serve(&n, &err) != 0)
        goto failed;
    tls_opts tls = {n.tls_cert, n.tls_key, n.tls_chain, n.tls_ciphers, n.tls_client_ca};
    /* Always loaded again: renewed files usually keep their names. */
    if (server_tls_reload(s->srv, &tls, &err) != 0)
        goto failed;
    /* From here nothing can fail. */
    config_diff(prev, &n, 1, changed, sizeof changed);
    int nkept = config_diff(s->cfg, &n, 0, kept, sizeof kept);
    pthread_rwlock_wrlock(&s->live_lock);
    s->tokens = n.tokens;
    s->allow = n.allow;
    pthread_rwlock_unlock(&s->live_lock);
    klog_set_level(klog_level_parse(n.log_level));
    if (s->have_live)
        config_deinit(&s->live);
    s->live = n;
    s->have_live = 1;
    long long gen = atomic_fetch_add(&s->reloads, 1) + 1;
    klog(KLOG_INFO, "configuration reloaded", KLOG_INT("generation", gen),
         KLOG_STR("changed", changed[0] ? changed : "-"), KLOG_INT("tokens", s->tokens.count));
    if (nkept > 0)
        klog(KLOG_WARN, "reload kept keys that need a restart", KLOG_STR("keys", kept));
    if (strstr(changed, "allow_cidrs") != NULL)
        klog(KLOG_WARN, "allow_cidrs reloaded for webhooks; the accept-time filter needs a restart",
             KLOG_STR("hint", "connections from newly allowed networks are refused until then"));
    return;
failed:
    config_deinit(&n);
    atomic_fetch_add(&s->reload_failures, 1);
    klog(KLOG_ERROR, "configuration reload failed, keeping the old one",
         KLOG_STR("error", err.msg));
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
    partitions_keeper *keeper = NULL;
    serve_state s = {.grace_ms = cfg.shutdown_timeout_ms, .argc = argc, .argv = argv, .cfg = &cfg};
    pthread_rwlock_init(&s.live_lock, NULL);
    atomic_init(&s.reloads, 0);
    atomic_init(&s.reload_failures, 0);
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
    /* Partitions ahead before the first insert, then hourly. */
    (void)partitions_maintain(d);
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
    db_opts keeper_db = cmd_db_options(&cfg);
    if (partitions_keeper_start(&keeper, &keeper_db, cfg.partitions_every_ms) != 0) {
        klog(KLOG_ERROR, "cannot start the partition maintenance",
             KLOG_STR("error", "out of memory"));
        goto out;
    }
    s.tokens = cfg.tokens; /* the handler's copies, replaced by a reload */
    s.allow = cfg.allow;
    handler_ctx h = {
        .tokens = &s.tokens,
        .allow = &s.allow,
        .live_lock = &s.live_lock,
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

    notify("READY=1\nSTATUS=serving");
    /* WATCHDOG=1 twice per interval systemd asked for, if it asked. */
    cmd_hooks hooks = {.reload = serve_reload,
                       .tick = serve_tick,
                       .tick_ms = sdnotify_watchdog_ms() / 2,
                       .arg = &s};
    const char *sig = ctl->wait_stop(ctl, &hooks);
    notify("STOPPING=1");
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
    partitions_keeper_stop(keeper);
    server_stop(s.srv);
    reconciler_stop(s.rec, NULL);
    ingest_free(s.in);
    spool_close(s.sp);
    db_free(d);
    if (s.have_live)
        config_deinit(&s.live);
    pthread_rwlock_destroy(&s.live_lock);
    config_deinit(&cfg);
    return rc;
}
