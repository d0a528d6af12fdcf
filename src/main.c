/* kycd: receives P100's KYC webhooks over TLS and stores them in
 * PostgreSQL. This file wires the layers together for each command and owns
 * signals and shutdown; it holds no logic of its own. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/handler.h"
#include "app/ingest.h"
#include "app/reconciler.h"
#include "app/server.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "core/cidr.h"
#include "core/token.h"
#include "io/config.h"
#include "io/db.h"
#include "io/migrations.h"
#include "io/p100.h"
#include "io/spool.h"
#include "io/tls.h"

extern char **environ;

static const char USAGE[] =
    "usage: kycd COMMAND [--config FILE] [--KEY VALUE ...]\n"
    "\n"
    "commands:\n"
    "  serve     run the HTTPS webhook receiver\n"
    "  migrate   apply the database migrations (safe to run from several hosts)\n"
    "  config    print the effective configuration, secrets redacted\n"
    "  reconcile --once\n"
    "            check every due user with P100 once, then exit (for cron)\n"
    "  create-kyc --external-user-id ID --document-type T --country CC\n"
    "             --income-source S --open-account-reason R [--occupation O]\n"
    "             [--additional-info TEXT] [--tax-id ID]\n"
    "            create a KYC verification at P100, record it, print the redirect URL\n"
    "  spool status|drain\n"
    "            show the local spool, or replay it into the database (kycd stopped)\n"
    "  status EXTERNAL_USER_ID [--live]\n"
    "            print the stored state and history (--live: ask P100 too)\n"
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

/* A connection to a database migrated to this binary's schema; logs and
 * returns non-zero otherwise. */
static int open_ready_db(const kycd_config *cfg, db **out)
{
    kerr err;
    kerr_clear(&err);
    db_opts o = db_options(cfg);
    *out = NULL;
    if (db_connect(out, &o, &err) != 0 || db_check_schema(*out, &err) != 0) {
        db_free(*out);
        *out = NULL;
        die("database not ready", &err);
        return 1;
    }
    return 0;
}

/* The write path's options, shared by serve and spool drain. */
static ingest_opts ingest_options(const kycd_config *cfg, spool *sp, int pool_size, int drainer)
{
    ingest_opts o = {
        .db = db_options(cfg),
        .pool_size = pool_size,
        .wait_ms = cfg->db_timeout_ms,
        .policy = {.dedup_window_ms = cfg->dedup_window_ms,
                   .reorder_window_ms = cfg->reorder_window_ms},
        .spool = sp,
        .drainer = drainer,
        /* a spool record: the body plus kind, time, address and id */
        .record_max = cfg->max_body + 512,
    };
    return o;
}

static int load(kycd_config *cfg, int argc, char **argv)
{
    kerr err;
    kerr_clear(&err);
    if (config_load(cfg, environ, argc, argv, &err) != 0) {
        fprintf(stderr, "kycd: %s\n", err.msg);
        config_deinit(cfg); /* callers need not */
        return 2;
    }
    klog_set_level(klog_level_parse(cfg->log_level));
    return 0;
}

/* Command-specific flags are taken out of argv before the rest goes to the
 * configuration loader (which refuses anything it does not know). */
typedef struct cmd_flag {
    const char *name;   /* "--once" */
    int takes_value;
    const char *value;  /* out: the value, or "1" for a switch; NULL if absent */
} cmd_flag;

static int take_flags(int *argc, char **argv, cmd_flag *flags, int nflags, const char **positional)
{
    int w = 0;
    if (positional)
        *positional = NULL;
    for (int i = 0; i < *argc; i++) {
        const char *a = argv[i];
        int hit = 0;
        for (int f = 0; f < nflags && !hit; f++) {
            size_t n = strlen(flags[f].name);
            if (strncmp(a, flags[f].name, n) != 0 || (a[n] != '\0' && a[n] != '='))
                continue;
            hit = 1;
            if (!flags[f].takes_value) {
                flags[f].value = "1";
            } else if (a[n] == '=') {
                flags[f].value = a + n + 1;
            } else if (i + 1 < *argc) {
                flags[f].value = argv[++i];
            } else {
                fprintf(stderr, "kycd: %s needs a value\n", flags[f].name);
                return 2;
            }
        }
        if (hit)
            continue;
        if (positional && *positional == NULL && a[0] != '-' && (w == 0 || argv[w - 1][0] != '-' ||
                                                               strchr(argv[w - 1], '='))) {
            *positional = a;
            continue;
        }
        argv[w++] = argv[i];
    }
    *argc = w;
    return 0;
}

static p100_opts p100_options(const kycd_config *cfg)
{
    int64_t connect = cfg->p100_timeout_ms / 2;
    p100_opts o = {
        .base_url = cfg->p100_base_url,
        .api_key = cfg->p100_api_key,
        .ca_file = cfg->p100_ca_file,
        .status_path = cfg->p100_status_path,
        .timeout_ms = cfg->p100_timeout_ms,
        .connect_timeout_ms = connect < 100 ? 100 : connect,
    };
    return o;
}

static reconciler_opts reconciler_options(const kycd_config *cfg, int once)
{
    reconciler_opts o = {
        .db = db_options(cfg),
        .p100 = p100_options(cfg),
        .concurrency = (int)cfg->p100_concurrency,
        .rate = (int)cfg->p100_rate,
        .interval_ms = cfg->reconcile_interval_ms,
        .pending_after_ms = cfg->pending_after_ms,
        .backoff_min_ms = cfg->reconcile_backoff_min_ms,
        .backoff_max_ms = cfg->reconcile_backoff_max_ms,
        .max_failures = (int)cfg->reconcile_max_failures,
        .once = once,
    };
    return o;
}

static int need_api_key(const kycd_config *cfg, const char *what)
{
    if (cfg->p100_api_key && *cfg->p100_api_key)
        return 0;
    char why[256];
    snprintf(why, sizeof why, "%s needs KYCD_P100_API_KEY or KYCD_P100_API_KEY_FILE%s", what,
             strcmp(what, "the reconciler") == 0 ? " (or KYCD_RECONCILE=off)" : "");
    klog(KLOG_ERROR, "no P100 API key", KLOG_STR("error", why));
    return 2;
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
        klog(KLOG_INFO, "migrate done", KLOG_INT("applied", applied), KLOG_INT("schema", version));
    }
    db_free(d);
out:
    config_deinit(&cfg);
    return rc;
}

/* /readyz: the database answers and P100 accepts our credentials. */
typedef struct readiness {
    ingest *in;
    reconciler *rec;
} readiness;

static int ready_all(void *ctx, char *details, size_t cap, kerr *err)
{
    readiness *r = ctx;
    int rc = ingest_ready(r->in, details, cap, err);
    if (rc == 0)
        rc = reconciler_ready(r->rec, err);
    return rc;
}

/* Open the spool named by spool_dir (NULL when unset). */
static int open_spool(const kycd_config *cfg, spool **out, kerr *err)
{
    *out = NULL;
    if (cfg->spool_dir == NULL || *cfg->spool_dir == '\0')
        return 0;
    spool_opts so = {.dir = cfg->spool_dir, .max_bytes = cfg->spool_max};
    return spool_open(out, &so, err);
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
    klog(KLOG_ERROR, "shutdown timed out, exiting", KLOG_INT("timeout_ms", ms));
    _exit(1);
    return NULL;
}

static int cmd_serve(int argc, char **argv)
{
    kycd_config cfg;
    int rc = load(&cfg, argc, argv);
    if (rc != 0)
        return rc;
    kerr err;
    kerr_clear(&err);
    db *d = NULL;
    ingest *in = NULL;
    server *srv = NULL;
    static token_set tokens;
    static cidr_list allow;
    static volatile int draining;
    static readiness ready;
    reconciler *rec = NULL;
    spool *sp = NULL;
    rc = 1;

    /* kycd holds secrets in memory (webhook tokens, API key, database
     * password): no core dump, no ptrace by other users of the same uid. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

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
    if (cfg.reconcile && need_api_key(&cfg, "the reconciler") != 0)
        goto out;
    if (server_tls_available(&err) != 0) {
        die("tls unavailable", &err);
        goto out;
    }
    if (token_set_parse(&tokens, cfg.webhook_tokens, &err) != 0 ||
        cidr_list_parse(&allow, cfg.allow_cidrs, &err) != 0) {
        die("configuration refused", &err);
        goto out;
    }
    tls_opts tls = {cfg.tls_cert, cfg.tls_key, cfg.tls_chain, cfg.tls_ciphers, cfg.tls_client_ca};
    if (tls_check(&tls, &err) != 0) {
        die("tls configuration refused", &err);
        goto out;
    }
    if (open_ready_db(&cfg, &d) != 0)
        goto out;
    db_free(d);
    d = NULL;
    if (open_spool(&cfg, &sp, &err) != 0) {
        die("spool refused", &err);
        goto out;
    }
    if (sp == NULL)
        klog(KLOG_WARN, "no spool configured: while the database is away webhooks get 503",
             KLOG_STR("hint", "set KYCD_SPOOL_DIR"));

    ingest_opts io = ingest_options(&cfg, sp, (int)cfg.db_pool, 1);
    if (ingest_new(&in, &io, &err) != 0) {
        die("cannot start", &err);
        goto out;
    }
    ready.in = in;
    if (cfg.reconcile) {
        reconciler_opts ro = reconciler_options(&cfg, 0);
        if (reconciler_start(&rec, &ro, &err) != 0) {
            die("cannot start the reconciler", &err);
            goto out;
        }
        ready.rec = rec;
    }
    handler_ctx h = {
        .tokens = &tokens,
        .allow = &allow,
        .max_body = cfg.max_body,
        .retry_after_s = (int)cfg.retry_after_s,
        .store = {.submit = ingest_submit, .ready = ready_all, .ctx = in, .ready_ctx = &ready},
        .draining = &draining,
    };
    server_opts so = {
        .listen = cfg.listen,
        .http_listen = cfg.http_listen,
        .tls = tls,
        .threads = (int)cfg.threads,
        .request_timeout_ms = cfg.request_timeout_ms,
        .keepalive_ms = cfg.keepalive_ms,
        .linger_ms = cfg.linger_ms,
        .linger_bytes = cfg.linger_bytes,
        .handler = &h,
    };
    if (server_start(&srv, &so, &err) != 0) {
        die("cannot start", &err);
        goto out;
    }
    klog(KLOG_INFO, "listening", KLOG_INT("tls_port", server_tls_port(srv)),
         KLOG_STR("http_listen", cfg.http_listen ? cfg.http_listen : "-"),
         KLOG_INT("threads", cfg.threads), KLOG_INT("tokens", tokens.count),
         KLOG_STR("version", KYCD_VERSION), KLOG_STR("civetweb", server_library_version()));

    int sig = 0;
    sigwait(&sigs, &sig);
    draining = 1;
    klog(KLOG_INFO, "shutting down", KLOG_STR("signal", sig == SIGTERM ? "TERM" : "INT"));
    reconciler_signal_stop(rec); /* no new P100 calls while requests drain */
    pthread_t wd;
    int64_t grace = cfg.shutdown_timeout_ms;
    /* Drain, then a P100 call in flight may finish, then a few seconds for
     * closing connections. */
    static int64_t limit;
    limit = grace + (rec ? cfg.p100_timeout_ms : 0) + 5000;
    pthread_create(&wd, NULL, shutdown_watchdog, &limit);
    pthread_detach(wd);
    double t0 = clock_now_ms();
    int left = server_drain(srv, grace); /* in-flight requests finish; new ones get 503 */
    if (left > 0)
        klog(KLOG_WARN, "requests still in flight at shutdown", KLOG_INT("count", left));
    server_stop(srv);
    srv = NULL;
    reconciler_stop(rec, NULL); /* after the server: /readyz may still ask it */
    rec = NULL;
    klog(KLOG_INFO, "stopped", KLOG_INT("ms", (long long)(clock_now_ms() - t0)));
    rc = 0;
out:
    server_stop(srv);
    reconciler_stop(rec, NULL);
    ingest_free(in);
    spool_close(sp);
    db_free(d);
    config_deinit(&cfg);
    return rc;
}

static int cmd_reconcile(int argc, char **argv)
{
    cmd_flag flags[] = {{"--once", 0, NULL}};
    if (take_flags(&argc, argv, flags, 1, NULL) != 0)
        return 2;
    if (!flags[0].value) {
        fprintf(stderr, "kycd: reconcile runs inside `kycd serve`; use `kycd reconcile --once` "
                        "for a single pass\n");
        return 2;
    }
    kycd_config cfg;
    int rc = load(&cfg, argc, argv);
    if (rc != 0 || (rc = need_api_key(&cfg, "kycd reconcile")) != 0)
        goto out;
    kerr err;
    kerr_clear(&err);
    db *d = NULL;
    if (open_ready_db(&cfg, &d) != 0) {
        rc = 1;
        goto out;
    }
    db_free(d);
    reconciler *rec = NULL;
    reconciler_opts ro = reconciler_options(&cfg, 1);
    if (reconciler_start(&rec, &ro, &err) != 0) {
        die("cannot start the reconciler", &err);
        rc = 1;
        goto out;
    }
    reconciler_wait(rec);
    reconciler_stats st;
    reconciler_stop(rec, &st);
    printf("checked %lld users: %lld corrected, %lld unchanged, %lld flagged for a person, "
           "%lld to retry, %lld rate-limited, %lld refused (401), %lld errors\n",
           st.checks, st.applied, st.unchanged, st.flagged, st.retries, st.rate_limited,
           st.misconfigured, st.errors);
    rc = st.misconfigured > 0 || st.errors > 0 ? 1 : 0;
out:
    config_deinit(&cfg);
    return rc;
}

static void print_p100_error(const p100_result *res)
{
    const char *explain = p100_error_explain(res->error_code);
    fprintf(stderr, "kycd: P100 answered HTTP %ld%s%s: %s\n", res->http_status,
            res->error_code[0] ? " " : "", res->error_code,
            res->error_message[0] ? res->error_message : "(no message)");
    if (explain)
        fprintf(stderr, "      %s\n", explain);
    if (res->cls == P100_MISCONFIGURED)
        fprintf(stderr, "      check KYCD_P100_API_KEY(_FILE) and that P100 allows this "
                        "machine's address\n");
    else if (res->cls == P100_TRANSIENT)
        fprintf(stderr, "      this is temporary on P100's side: try again later\n");
}

static int cmd_create_kyc(int argc, char **argv)
{
    cmd_flag f[] = {
        {"--external-user-id", 1, NULL}, {"--document-type", 1, NULL},
        {"--country", 1, NULL},          {"--income-source", 1, NULL},
        {"--open-account-reason", 1, NULL}, {"--occupation", 1, NULL},
        {"--additional-info", 1, NULL},  {"--tax-id", 1, NULL},
    };
    int nf = (int)(sizeof f / sizeof f[0]);
    if (take_flags(&argc, argv, f, nf, NULL) != 0)
        return 2;
    p100_create_req req;
    memset(&req, 0, sizeof req);
    struct {
        char *dst;
        size_t cap;
    } dst[] = {
        {req.external_user_id, sizeof req.external_user_id}, {req.document_type, sizeof req.document_type},
        {req.country, sizeof req.country}, {req.income_source, sizeof req.income_source},
        {req.open_account_reason, sizeof req.open_account_reason}, {req.occupation, sizeof req.occupation},
        {req.additional_info, sizeof req.additional_info}, {req.tax_id, sizeof req.tax_id},
    };
    for (int i = 0; i < nf; i++) {
        if (f[i].value == NULL)
            continue;
        if (strlen(f[i].value) >= dst[i].cap) {
            fprintf(stderr, "kycd: %s is too long (at most %zu characters)\n", f[i].name,
                    dst[i].cap - 1);
            return 2;
        }
        snprintf(dst[i].dst, dst[i].cap, "%s", f[i].value);
    }
    kerr err;
    kerr_clear(&err);
    if (p100_create_validate(&req, &err) != 0) {
        fprintf(stderr, "kycd: %s\n", err.msg);
        return 2;
    }
    kycd_config cfg;
    int rc = load(&cfg, argc, argv);
    if (rc != 0 || (rc = need_api_key(&cfg, "kycd create-kyc")) != 0) {
        config_deinit(&cfg);
        return rc;
    }
    db *d = NULL;
    p100_client *client = NULL;
    p100_result res;
    p100_result_init(&res);
    kbuf url;
    kbuf_init(&url);
    char vid[128] = "";
    p100_opts po = p100_options(&cfg);
    rc = 1;
    /* The database first: a verification created at P100 must be recorded. */
    if (open_ready_db(&cfg, &d) != 0)
        goto out;
    if (p100_client_new(&client, &po, &err) != 0 ||
        p100_create_kyc(client, &req, &res, vid, sizeof vid, &err) != 0) {
        die("create-kyc failed", &err);
        goto out;
    }
    int pending = res.cls == P100_OK && strcmp(res.error_code, "P212") == 0;
    if (res.cls != P100_OK) {
        print_p100_error(&res);
        goto out;
    }
    if (db_record_created(d, req.external_user_id, pending ? NULL : vid, pending,
                          cfg.pending_after_ms, &err) != 0) {
        die("P100 created the verification but recording it failed; the reconciler will "
            "not know of it until you run create-kyc again",
            &err);
        goto out;
    }
    if (pending) {
        printf("a verification is already pending at P100 for %s (202 P212); recorded as pending, "
               "the reconciler will follow it\n",
               req.external_user_id);
        rc = 0;
        goto out;
    }
    if (p100_redirect_url(&po, req.external_user_id, vid, &url, &err) != 0) {
        die("cannot build the redirect URL", &err);
        goto out;
    }
    printf("verificationId %s\nredirect the user to:\n%s\n", vid, kbuf_str(&url));
    rc = 0;
out:
    kbuf_deinit(&url);
    p100_result_deinit(&res);
    p100_client_free(client);
    db_free(d);
    config_deinit(&cfg);
    return rc;
}

static int cmd_status(int argc, char **argv)
{
    cmd_flag f[] = {{"--live", 0, NULL}};
    const char *user = NULL;
    if (take_flags(&argc, argv, f, 1, &user) != 0)
        return 2;
    if (user == NULL) {
        fprintf(stderr, "usage: kycd status EXTERNAL_USER_ID [--live]\n");
        return 2;
    }
    kycd_config cfg;
    int rc = load(&cfg, argc, argv);
    if (rc != 0)
        return rc;
    kerr err;
    kerr_clear(&err);
    db *d = NULL;
    kbuf out;
    kbuf_init(&out);
    db_opts dbo = db_options(&cfg);
    rc = 1;
    if (db_connect(&d, &dbo, &err) != 0) {
        die("database not ready", &err);
        goto out;
    }
    int found = db_user_report(d, user, &out, &err);
    if (found == 0)
        fputs(kbuf_str(&out), stdout);
    else if (found == KERR_NOTFOUND)
        printf("user %s: not known to kycd\n", user);
    else {
        die("status failed", &err);
        goto out;
    }
    rc = found == 0 ? 0 : 3;
    if (f[0].value) {
        if (need_api_key(&cfg, "kycd status --live") != 0) {
            rc = 2;
            goto out;
        }
        p100_opts po = p100_options(&cfg);
        p100_client *client = NULL;
        p100_result res;
        p100_result_init(&res);
        kyc_status st;
        memset(&st, 0, sizeof st);
        if (p100_client_new(&client, &po, &err) != 0 ||
            p100_get_status(client, user, &res, &st, &err) != 0) {
            die("live status failed", &err);
            rc = 1;
        } else if (res.cls == P100_OK) {
            printf("\nP100 now says (%.0f ms): verificationStatus=%s attemptStatus=%s "
                   "rejectionReason=%s\n",
                   res.latency_ms, st.verification[0] ? st.verification : "-",
                   st.attempt[0] ? st.attempt : "-", st.reason[0] ? st.reason : "-");
        } else {
            print_p100_error(&res);
            rc = 1;
        }
        p100_result_deinit(&res);
        p100_client_free(client);
    }
out:
    kbuf_deinit(&out);
    db_free(d);
    config_deinit(&cfg);
    return rc;
}

static int cmd_spool(int argc, char **argv)
{
    const char *what = NULL;
    cmd_flag none[1];
    if (take_flags(&argc, argv, none, 0, &what) != 0)
        return 2;
    if (what == NULL || (strcmp(what, "status") != 0 && strcmp(what, "drain") != 0)) {
        fprintf(stderr, "usage: kycd spool status|drain\n");
        return 2;
    }
    kycd_config cfg;
    int rc = load(&cfg, argc, argv);
    if (rc != 0)
        return rc;
    kerr err;
    kerr_clear(&err);
    spool *sp = NULL;
    ingest *in = NULL;
    rc = 1;
    if (cfg.spool_dir == NULL || *cfg.spool_dir == '\0') {
        fprintf(stderr, "kycd: no spool configured (KYCD_SPOOL_DIR)\n");
        rc = 2;
        goto out;
    }
    if (open_spool(&cfg, &sp, &err) != 0) {
        /* A running kycd holds the spool's lock: it drains by itself. */
        fprintf(stderr, "kycd: %s\n", err.msg);
        if (err.code == KERR_STATE)
            fprintf(stderr, "      a running kycd owns this spool and drains it; its /readyz "
                            "shows the depth\n");
        goto out;
    }
    spool_stats st;
    spool_stats_get(sp, &st);
    printf("spool %s: %lld records, %lld bytes in %d segments, oldest %.1f s old\n",
           cfg.spool_dir, (long long)st.records, (long long)st.bytes, st.segments,
           (double)st.oldest_age_ms / 1000.0);
    if (strcmp(what, "status") == 0) {
        rc = 0;
        goto out;
    }
    ingest_opts io = ingest_options(&cfg, sp, 1, 0);
    long long n = 0;
    if (ingest_new(&in, &io, &err) != 0 || ingest_drain(in, &n, &err) != 0) {
        fprintf(stderr, "kycd: drain stopped after %lld records: %s\n", n, err.msg);
        goto out;
    }
    spool_stats_get(sp, &st);
    printf("replayed %lld records into the database; %lld left\n", n, (long long)st.records);
    rc = st.records == 0 ? 0 : 1;
out:
    ingest_free(in);
    spool_close(sp);
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
    if (strcmp(cmd, "spool") == 0)
        return cmd_spool(argc - 2, argv + 2);
    if (strcmp(cmd, "reconcile") == 0)
        return cmd_reconcile(argc - 2, argv + 2);
    if (strcmp(cmd, "create-kyc") == 0)
        return cmd_create_kyc(argc - 2, argv + 2);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(argc - 2, argv + 2);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0)
        return cmd_version();
    fprintf(stderr, "kycd: unknown command '%s'\n\n%s", cmd, USAGE);
    return 2;
}
