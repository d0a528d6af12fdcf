/* `kycd serve` (see serve.h): checks the configuration, starts the ingest,
 * the reconciler, the partition keeper (app/partitions.h) and the servers
 * in that order, waits for main's stop signal, then drains and stops them
 * in reverse order; cmd_serve reads as those steps (serve_load, _check,
 * _open, _start, _listen, _wait, _shutdown). The gauges of /metrics and the
 * /status and /readyz answers are composed here too (serve.h says why); the
 * process's own gauges are app/metrics' (metrics_write_process).
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
#include "app/metrics.h"
#include "app/partitions.h"
#include "app/reconciler.h"
#include "app/server.h"
#include "base/clock.h"
#include "base/log.h"
#include "cmd/common.h"
#include "io/config_check.h"
#include "io/migrate.h"
#include "io/config_print.h"
#include "io/migrations.h"
#include "io/sdnotify.h"
#include "io/spool_dead.h"
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
    /* The admin listener and what only it shows. */
    server *admin;
    server_counters admin_counters;
    double started_s;              /* Unix time serve started */
    atomic_llong last_reload_ok_s; /* Unix time of the last good (re)load */
    atomic_llong cert_expiry_s;    /* the served certificate's notAfter; 0: unknown */
    /* What the listeners borrow until they stop. */
    handler_ctx handler, admin_handler;
    handler_admin admin_ops;
    partitions_keeper *keeper;
    int schema_unchecked; /* started while the database was away (spooling) */
} serve_state;

/* /readyz: a webhook posted now would be made durable, i.e. the database
 * answers the background probe or the spool has room (draining is the
 * handler's). P100 is not asked: receiving webhooks does not need it, and
 * one bad API key must not take every replica out of a load balancer; a
 * paused reconciler shows in /status and kycd_reconciler_paused. */
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
    return rc;
}

static int schema_version(void)
{
    return kycd_migrations_count ? kycd_migrations[kycd_migrations_count - 1].version : 0;
}

/* kycd_build_info, always 1, its labels naming the build. */
static int build_info(kbuf *out)
{
    int rc = metrics_family(out, "kycd_build_info", "gauge", "always 1; the labels name the build");
    char schema[16];
    snprintf(schema, sizeof schema, "%d", schema_version());
    if (rc == 0)
        rc = metrics_sample(out, "kycd_build_info",
                            (const char *const[]){"version", KYCD_VERSION, "schema", schema,
                                                  "civetweb", server_library_version(), "openssl",
                                                  tls_library_version(), NULL},
                            1);
    return rc;
}

/* The database probe and the pool, read now. */
static int db_gauges(serve_state *s, kbuf *out)
{
    int rc =
        metrics_gauge(out, "kycd_db_up", "1 when the database answered the last background probe",
                      ingest_database_up(s->in, NULL, 0));
    enum ingest_schema schema = ingest_schema_state(s->in, NULL, 0);
    if (rc == 0)
        rc = metrics_gauge(out, "kycd_db_schema_mismatch",
                           "1 when the database answers with a schema this kycd does not run "
                           "on: deliveries stay in the spool, none is replayed",
                           schema == INGEST_SCHEMA_MISMATCH);
    if (rc == 0)
        rc = metrics_gauge(out, "kycd_db_schema_unchecked",
                           "1 while the database has not answered since kycd started (it "
                           "started during an outage): deliveries go to the spool",
                           schema == INGEST_SCHEMA_UNCHECKED);
    int idle = 0, busy = 0, size = 0;
    ingest_pool_counts(s->in, &idle, &busy, &size);
    if (rc == 0)
        rc = metrics_family(out, "kycd_db_pool_connections", "gauge",
                            "pooled database connections: open and idle, lent out, not open");
    if (rc == 0)
        rc = metrics_sample(out, "kycd_db_pool_connections",
                            (const char *const[]){"state", "idle", NULL}, idle);
    if (rc == 0)
        rc = metrics_sample(out, "kycd_db_pool_connections",
                            (const char *const[]){"state", "busy", NULL}, busy);
    if (rc == 0)
        rc = metrics_sample(out, "kycd_db_pool_connections",
                            (const char *const[]){"state", "closed", NULL}, size - idle - busy);
    return rc;
}

/* The spool's depth and room, and the dead letters beside it (0 without a
 * spool, room not shown). */
static int spool_gauges(serve_state *s, kbuf *out)
{
    spool_stats ss;
    memset(&ss, 0, sizeof ss);
    long long dead = 0;
    if (s->sp) {
        spool_stats_get(s->sp, &ss);
        dead = spool_dead_letters(s->sp);
    }
    int rc = metrics_gauge(out, "kycd_spool_records", "deliveries in the spool, not yet replayed",
                           (double)ss.records);
    if (rc == 0)
        rc = metrics_gauge(out, "kycd_spool_bytes", "bytes of spool segments on disk",
                           (double)ss.bytes);
    if (rc == 0)
        rc = metrics_gauge(out, "kycd_spool_oldest_age_seconds",
                           "age of the oldest delivery in the spool (0: empty)",
                           (double)ss.oldest_age_ms / 1000.0);
    if (rc == 0 && s->sp && ss.room >= 0)
        rc = metrics_gauge(out, "kycd_spool_room_bytes", "bytes the spool can still take",
                           (double)ss.room);
    if (rc == 0)
        rc = metrics_gauge(out, "kycd_spool_dead_letters",
                           "dead-letter records (dead-*.rec) in the spool directory", (double)dead);
    return rc;
}

/* /metrics (admin listener): the registry's counters and histograms, then
 * the gauges read now. */
static int serve_metrics(void *ctx, kbuf *out)
{
    serve_state *s = ctx;
    int rc = build_info(out);
    if (rc == 0)
        rc = metrics_write_registry(out);
    if (rc == 0)
        rc = db_gauges(s, out);
    if (rc == 0)
        rc = spool_gauges(s, out);
    if (rc == 0)
        rc = reconciler_write_gauges(s->rec, out);
    if (rc == 0)
        rc = metrics_gauge(out, "kycd_config_last_reload_success_timestamp_seconds",
                           "when the configuration was last loaded successfully (start or reload)",
                           (double)atomic_load(&s->last_reload_ok_s));
    if (rc == 0 && atomic_load(&s->cert_expiry_s) > 0)
        rc = metrics_gauge(out, "kycd_tls_certificate_expiry_timestamp_seconds",
                           "notAfter of the served TLS certificate",
                           (double)atomic_load(&s->cert_expiry_s));
    if (rc == 0)
        rc = metrics_family(out, "kycd_connections_refused_total", "counter",
                            "connections closed at accept: source outside allow_cidrs");
    if (rc == 0)
        rc = metrics_sample(out, "kycd_connections_refused_total",
                            (const char *const[]){"listener", "public", NULL},
                            (double)atomic_load(&s->counters.refused));
    if (rc == 0)
        rc = metrics_sample(out, "kycd_connections_refused_total",
                            (const char *const[]){"listener", "admin", NULL},
                            (double)atomic_load(&s->admin_counters.refused));
    if (rc == 0)
        rc = metrics_family(out, "kycd_header_timeouts_total", "counter",
                            "requests whose headers did not arrive within header_timeout (408)");
    if (rc == 0)
        rc = metrics_sample(out, "kycd_header_timeouts_total", NULL,
                            (double)atomic_load(&s->counters.timeouts));
    if (rc == 0)
        rc = metrics_write_process(out, s->started_s);
    return rc;
}

/* /status (admin listener): one JSON object for a person or a script. */
static int serve_status(void *ctx, kbuf *out)
{
    serve_state *s = ctx;
    char dberr[sizeof(((kerr *)0)->msg)] = "";
    int up = ingest_database_up(s->in, dberr, sizeof dberr);
    spool_stats ss;
    memset(&ss, 0, sizeof ss);
    kerr rerr;
    kerr_clear(&rerr);
    int paused = s->rec && reconciler_ready(s->rec, &rerr) != 0;
    int rc = kbuf_appendf(out,
                          "{\"version\":\"%s\",\"schema\":%d,\"uptime_seconds\":%.0f,"
                          "\"config_generation\":%lld,\"reload_failures\":%lld,"
                          "\"draining\":%s,\"database\":{\"up\":%s,\"error\":",
                          KYCD_VERSION, schema_version(), clock_wall_ms() / 1000.0 - s->started_s,
                          (long long)atomic_load(&s->reloads),
                          (long long)atomic_load(&s->reload_failures),
                          atomic_load(&s->draining) ? "true" : "false", up ? "true" : "false");
    if (rc == 0)
        rc = up ? kbuf_appendf(out, "null") : kbuf_append_json(out, dberr);
    char why[sizeof dberr];
    enum ingest_schema schema = ingest_schema_state(s->in, why, sizeof why);
    if (rc == 0)
        rc = kbuf_appendf(out, ",\"schema\":\"%s\",\"schema_error\":",
                          schema == INGEST_SCHEMA_OK          ? "ok"
                          : schema == INGEST_SCHEMA_UNCHECKED ? "unchecked"
                                                              : "mismatch");
    if (rc == 0)
        rc = schema == INGEST_SCHEMA_OK ? kbuf_appendf(out, "null") : kbuf_append_json(out, why);
    if (rc == 0 && s->sp) {
        spool_stats_get(s->sp, &ss);
        rc = kbuf_appendf(
            out,
            "},\"spool\":{\"records\":%lld,\"bytes\":%lld,\"oldest_age_seconds\":%.3f,"
            "\"room_bytes\":%lld,\"dead_letters\":%lld}",
            (long long)ss.records, (long long)ss.bytes, (double)ss.oldest_age_ms / 1000.0,
            (long long)ss.room, spool_dead_letters(s->sp));
    } else if (rc == 0) {
        rc = kbuf_appendf(out, "},\"spool\":null");
    }
    if (rc == 0)
        rc = kbuf_appendf(out,
                          ",\"reconciler\":{\"enabled\":%s,\"paused\":%s,\"due_users\":%lld,"
                          "\"reason\":",
                          s->rec ? "true" : "false", paused ? "true" : "false",
                          reconciler_counts(s->rec).due);
    if (rc == 0)
        rc = paused ? kbuf_append_json(out, rerr.msg) : kbuf_appendf(out, "null");
    if (rc == 0)
        rc = kbuf_appendf(out, "},\"p100\":{\"base_url\":");
    if (rc == 0)
        rc = kbuf_append_json(out, s->cfg->p100_base_url);
    if (rc == 0)
        rc = kbuf_appendf(out, ",\"credentials\":\"%s\"}}",
                          !s->rec  ? "unused"
                          : paused ? "refused"
                                   : "accepted");
    return rc;
}

/* The TLS files and settings of a configuration, for the checks, the
 * listeners and a reload. */
static tls_opts serve_tls(const kycd_config *c)
{
    tls_opts tls = {c->tls_cert, c->tls_key, c->tls_chain, c->tls_ciphers, c->tls_client_ca};
    return tls;
}

static void note_cert_expiry(serve_state *s, const char *cert)
{
    int64_t t = 0;
    kerr err;
    if (cert && tls_cert_expiry(cert, &t, &err) == 0)
        atomic_store(&s->cert_expiry_s, t);
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
    tls_opts tls = serve_tls(&n);
    /* The ciphers are fixed when a connection is made from CivetWeb's
     * context (a restart key): the running ones, so that a new value can
     * neither fail the reload nor half-apply. */
    tls.ciphers = s->cfg->tls_ciphers;
    /* Always loaded again: renewed files usually keep their names. */
    if (server_tls_reload(s->srv, &tls, &err) != 0)
        goto failed;
    /* The admin listener serves the same certificate, never asking for a
     * client's (a failure here, after the public one took the new files,
     * cannot happen for files that just loaded; it is reported all the
     * same). */
    tls.client_ca = NULL;
    if (s->admin && !s->cfg->admin_plain && server_tls_reload(s->admin, &tls, &err) != 0)
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
    metrics_config_reload(1);
    atomic_store(&s->last_reload_ok_s, clock_wall_ms() / 1000);
    note_cert_expiry(s, n.tls_cert);
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
    metrics_config_reload(0);
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
    server_stop(s->admin); /* it answered /readyz 503 (draining) meanwhile */
    s->admin = NULL;
    reconciler_stop(s->rec, NULL); /* after the servers: /status may still ask it */
    s->rec = NULL;
    klog(KLOG_INFO, "stopped", KLOG_INT("ms", (long long)(clock_now_ms() - t0)));
    ingest_free(s->in);
    s->in = NULL;
    spool_close(s->sp);
    s->sp = NULL;
}

/* Step 1, load: the state serve shares with main's thread, before any
 * thread exists. */
static void serve_load(serve_state *s, const kycd_config *cfg, int argc, char **argv)
{
    memset(s, 0, sizeof *s);
    s->grace_ms = cfg->shutdown_timeout_ms;
    s->argc = argc;
    s->argv = argv;
    s->cfg = cfg;
    pthread_rwlock_init(&s->live_lock, NULL);
    atomic_init(&s->reloads, 0);
    atomic_init(&s->reload_failures, 0);
    atomic_init(&s->draining, 0);
    atomic_init(&s->counters.refused, 0);
    atomic_init(&s->counters.timeouts, 0);
    atomic_init(&s->admin_counters.refused, 0);
    atomic_init(&s->admin_counters.timeouts, 0);
    s->started_s = clock_wall_ms() / 1000.0;
    atomic_init(&s->last_reload_ok_s, (long long)s->started_s);
    atomic_init(&s->cert_expiry_s, 0);
}

/* The configuration refusals: CMD_USAGE (CMD_FAILED when this build has no
 * TLS: the build, not the configuration), one log line each; 0 when serve
 * may start. */
static int serve_check(kycd_config *cfg)
{
    kerr err;
    kerr_clear(&err);
    if (config_check_serve(cfg, &err) != 0) { /* parses the tokens and CIDRs, once */
        cmd_report("configuration refused", &err);
        return CMD_USAGE;
    }
    if (cfg->reconcile && cmd_need_api_key(cfg, "the reconciler") != 0)
        return CMD_USAGE;
    if (server_tls_available(&err) != 0) {
        cmd_report("tls unavailable", &err);
        return CMD_FAILED;
    }
    tls_opts tls = serve_tls(cfg);
    if (tls_check(&tls, &err) != 0) {
        cmd_report("tls configuration refused", &err);
        return CMD_USAGE;
    }
    return 0;
}

/* Step 2, open: the spool, then the database checked (and the partitions
 * ahead made before the first insert). A database that does not answer at
 * start is not a reason to leave P100 without a receiver when there is a
 * spool: serve starts, every delivery goes to the spool, and the schema
 * is checked once the database answers (ingest's schema gate). Without a
 * spool, or with a database that answers with another schema, serve
 * refuses. 0 or CMD_FAILED. */
static int serve_open(serve_state *s)
{
    kerr err;
    kerr_clear(&err);
    if (cmd_open_spool(s->cfg, &s->sp, &err) != 0) {
        cmd_report("spool refused", &err);
        return CMD_FAILED;
    }
    if (s->sp == NULL)
        klog(KLOG_WARN, "no spool configured: while the database is away webhooks get 503",
             KLOG_STR("hint", "set KYCD_SPOOL_DIR"));
    db *d = NULL;
    db_opts o = cmd_db_options(s->cfg);
    int rc = db_connect(&d, &o, &err);
    if (rc == 0 && (rc = db_check_schema(d, &err)) == 0)
        (void)partitions_maintain(d); /* then hourly, by the keeper */
    db_free(d);
    if (rc == 0)
        return 0;
    if (s->sp != NULL && (rc == KERR_DB || rc == KERR_TIMEOUT)) {
        klog(KLOG_WARN,
             "database unreachable at start: serving, deliveries go to the spool until it "
             "answers with this kycd's schema",
             KLOG_STR("error", err.msg));
        s->schema_unchecked = 1;
        return 0;
    }
    cmd_report("database not ready", &err);
    return CMD_FAILED;
}

/* Step 3, start: the ingest, the reconciler (unless reconcile = off) and
 * the partition keeper. 0 or CMD_FAILED. */
static int serve_start(serve_state *s)
{
    const kycd_config *cfg = s->cfg;
    kerr err;
    kerr_clear(&err);
    ingest_opts io = cmd_ingest_options(cfg, s->sp, (int)cfg->db_pool, 1);
    io.schema_unchecked = s->schema_unchecked;
    if (ingest_new(&s->in, &io, &err) != 0) {
        cmd_report("cannot start", &err);
        return CMD_FAILED;
    }
    if (cfg->reconcile) {
        reconciler_opts ro = cmd_reconciler_options(cfg, 0);
        if (reconciler_start(&s->rec, &ro, &err) != 0) {
            cmd_report("cannot start the reconciler", &err);
            return CMD_FAILED;
        }
    }
    db_opts keeper_db = cmd_db_options(cfg);
    if (partitions_keeper_start(&s->keeper, &keeper_db, cfg->partitions_every_ms) != 0) {
        klog(KLOG_ERROR, "cannot start the partition maintenance",
             KLOG_STR("error", "out of memory"));
        return CMD_FAILED;
    }
    return 0;
}

/* The admin listener: its own CivetWeb context and threads, so that a
 * flood on the public port cannot starve the operator's view. */
static int serve_listen_admin(serve_state *s, const server_opts *public_opts, kerr *err)
{
    const kycd_config *cfg = s->cfg;
    s->admin_ops = (handler_admin){.metrics = serve_metrics, .status = serve_status, .ctx = s};
    s->admin_handler = s->handler;
    s->admin_handler.admin = &s->admin_ops;
    if (!cfg->admin_on)
        return 0;
    server_opts ao = *public_opts;
    /* Probes and Prometheus carry no client certificate: the admin listener
     * is guarded by admin_allow_cidrs, never by tls_client_ca. */
    ao.tls.client_ca = NULL;
    ao.listen = cfg->admin_listen;
    ao.http_listen = NULL;
    ao.plain = cfg->admin_plain;
    ao.threads = 4;
    ao.allow = &cfg->admin_allow;
    ao.exact_allow = 1;
    ao.counters = &s->admin_counters;
    ao.handler = &s->admin_handler;
    if (server_start(&s->admin, &ao, err) != 0) {
        kerr_wrap(err, "admin_listen");
        return -1;
    }
    return 0;
}

/* Step 3, continued: the public listener, then the admin one. 0 or
 * CMD_FAILED. */
static int serve_listen(serve_state *s)
{
    const kycd_config *cfg = s->cfg;
    kerr err;
    kerr_clear(&err);
    s->tokens = cfg->tokens; /* the handler's copies, replaced by a reload */
    s->allow = cfg->allow;
    s->handler = (handler_ctx){
        .tokens = &s->tokens,
        .allow = &s->allow,
        .live_lock = &s->live_lock,
        .max_body = cfg->max_body,
        .body_timeout_ms = cfg->request_timeout_ms,
        .retry_after_s = (int)cfg->retry_after_s,
        .store = {.submit = ingest_submit, .ready = serve_ready, .ctx = s->in, .ready_ctx = s},
        .draining = &s->draining,
    };
    server_opts so = {
        .listen = cfg->listen,
        .http_listen = cfg->http_listen,
        .tls = serve_tls(cfg),
        .threads = (int)cfg->threads,
        /* Headers cannot take longer than the whole request may. */
        .header_timeout_ms = cfg->header_timeout_ms < cfg->request_timeout_ms
                                 ? cfg->header_timeout_ms
                                 : cfg->request_timeout_ms,
        .allow = &cfg->allow,
        .counters = &s->counters,
        .keepalive_ms = cfg->keepalive_ms,
        .slow_grace_ms = cfg->slow_grace_ms,
        .slow_min_rate = cfg->slow_min_rate,
        .linger_ms = cfg->linger_ms,
        .linger_bytes = cfg->linger_bytes,
        .handler = &s->handler,
    };
    if (server_start(&s->srv, &so, &err) != 0) {
        cmd_report("cannot start", &err);
        return CMD_FAILED;
    }
    note_cert_expiry(s, cfg->tls_cert);
    if (serve_listen_admin(s, &so, &err) != 0) {
        cmd_report("cannot start", &err);
        return CMD_FAILED;
    }
    klog(KLOG_INFO, "listening", KLOG_INT("tls_port", server_tls_port(s->srv)),
         KLOG_INT("admin_port", s->admin ? server_tls_port(s->admin) : 0),
         KLOG_STR("http_listen", cfg->http_listen ? cfg->http_listen : "-"),
         KLOG_INT("threads", cfg->threads), KLOG_INT("tokens", cfg->tokens.count),
         KLOG_STR("version", KYCD_VERSION), KLOG_STR("civetweb", server_library_version()));
    return 0;
}

/* Step 4, wait: serve until main's first stop signal, then drain and stop
 * under main's bound (serve_stop). */
static void serve_wait(serve_state *s, const cmd_ctl *ctl)
{
    notify("READY=1\nSTATUS=serving");
    /* WATCHDOG=1 twice per interval systemd asked for, if it asked. */
    cmd_hooks hooks = {.reload = serve_reload,
                       .tick = serve_tick,
                       .tick_ms = sdnotify_watchdog_ms() / 2,
                       .arg = s};
    const char *sig = ctl->wait_stop(ctl, &hooks);
    notify("STOPPING=1");
    atomic_store(&s->draining, 1);
    klog(KLOG_INFO, "shutting down", KLOG_STR("signal", sig));
    reconciler_signal_stop(s->rec); /* no new P100 calls while requests drain */
    /* Drain, then a P100 call in flight may finish, then a few seconds for
     * closing connections. Past that, or on a second signal, main exits 1
     * (the database transaction of an unfinished request rolls back; P100
     * retries what it did not see acknowledged). */
    int64_t limit = s->grace_ms + (s->rec ? s->cfg->p100_timeout_ms : 0) + 5000;
    ctl->run_bounded(ctl, serve_stop, s, limit);
}

/* Step 5, shutdown: release what is left, whichever step stopped (after a
 * graceful stop only the keeper and the reloaded configuration are). */
static void serve_shutdown(serve_state *s)
{
    partitions_keeper_stop(s->keeper);
    server_stop(s->srv);
    server_stop(s->admin);
    reconciler_stop(s->rec, NULL);
    ingest_free(s->in);
    spool_close(s->sp);
    if (s->have_live)
        config_deinit(&s->live);
    pthread_rwlock_destroy(&s->live_lock);
}

int cmd_serve(int argc, char **argv, const cmd_ctl *ctl)
{
    kycd_config cfg;
    int rc = cmd_load(&cfg, argc, argv);
    if (rc != 0)
        return rc;
    serve_state s;
    serve_load(&s, &cfg, argc, argv);
    /* kycd holds secrets in memory (webhook tokens, API key, database
     * password): no core dump, no ptrace by other users of the same uid. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    rc = serve_check(&cfg); /* refusals: exit 2 */
    if (rc == 0)
        rc = serve_open(&s); /* failures at start, from here on: exit 1 */
    if (rc == 0)
        rc = serve_start(&s);
    if (rc == 0)
        rc = serve_listen(&s);
    if (rc == 0)
        serve_wait(&s, ctl);
    serve_shutdown(&s);
    config_deinit(&cfg);
    return rc;
}
