/* Shared parts of the commands (see common.h). Must never: print a secret
 * (an API key, a token, a password), or exit the process: a command returns
 * its exit code to main. */
#include "cmd/common.h"

#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "cmd/cmd.h"
#include "io/migrate.h"

extern char **environ;

int cmd_take_flags(int *argc, char **argv, cmd_flag *flags, int nflags, const char **positional)
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
                return CMD_USAGE;
            }
        }
        if (hit)
            continue;
        /* A bare word right after "--key" (no '=') is that key's value. */
        if (positional && *positional == NULL && a[0] != '-' &&
            (w == 0 || argv[w - 1][0] != '-' || strchr(argv[w - 1], '='))) {
            *positional = a;
            continue;
        }
        argv[w++] = argv[i];
    }
    *argc = w;
    return 0;
}

void cmd_report(const char *what, const kerr *err)
{
    klog_line l;
    klog_begin(&l, KLOG_ERROR, what);
    klog_str(&l, "error", err->msg);
    klog_end(&l);
}

int cmd_load(kycd_config *cfg, int argc, char **argv)
{
    kerr err;
    kerr_clear(&err);
    if (config_load(cfg, environ, argc, argv, &err) != 0) {
        fprintf(stderr, "kycd: %s\n", err.msg);
        config_deinit(cfg);
        return CMD_USAGE;
    }
    klog_set_level(klog_level_parse(cfg->log_level));
    return 0;
}

int cmd_need_api_key(const kycd_config *cfg, const char *what)
{
    if (cfg->p100_api_key && *cfg->p100_api_key)
        return 0;
    char why[256];
    snprintf(why, sizeof why, "%s needs KYCD_P100_API_KEY or KYCD_P100_API_KEY_FILE%s", what,
             strcmp(what, "the reconciler") == 0 ? " (or KYCD_RECONCILE=off)" : "");
    klog(KLOG_ERROR, "no P100 API key", KLOG_STR("error", why));
    return CMD_USAGE;
}

db_opts cmd_db_options(const kycd_config *cfg)
{
    db_opts o = {
        .conninfo = cfg->database_url,
        .password = cfg->database_password,
        .timeout_ms = cfg->db_timeout_ms,
        .application_name = "kycd",
    };
    return o;
}

int cmd_open_db(const kycd_config *cfg, enum cmd_db_need need, db **out)
{
    kerr err;
    kerr_clear(&err);
    db_opts o = cmd_db_options(cfg);
    *out = NULL;
    if (need == CMD_DB_NONE)
        return 0;
    if (db_connect(out, &o, &err) != 0 ||
        (need == CMD_DB_READY && db_check_schema(*out, &err) != 0)) {
        db_free(*out);
        *out = NULL;
        cmd_report("database not ready", &err);
        return CMD_FAILED;
    }
    return 0;
}

int cmd_begin(kycd_config *cfg, int argc, char **argv, const cmd_needs *needs, db **d)
{
    db *tmp = NULL;
    int rc = cmd_load(cfg, argc, argv);
    if (rc != 0)
        return rc;
    if (needs->api_key_for != NULL && (rc = cmd_need_api_key(cfg, needs->api_key_for)) != 0)
        goto out;
    rc = cmd_open_db(cfg, needs->db, &tmp);
out:
    if (rc != 0)
        config_deinit(cfg);
    if (d != NULL)
        *d = tmp;
    else
        db_free(tmp);
    return rc;
}

p100_opts cmd_p100_options(const kycd_config *cfg)
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

db_recheck_policy cmd_recheck_policy(const kycd_config *cfg)
{
    return (db_recheck_policy){.rejected_after_ms = cfg->recheck_rejected_after_ms,
                               .rejected_for_ms = cfg->recheck_rejected_for_ms,
                               .verified_every_ms = cfg->recheck_verified_every_ms};
}

reconciler_opts cmd_reconciler_options(const kycd_config *cfg, int once)
{
    reconciler_opts o = {
        .db = cmd_db_options(cfg),
        .p100 = cmd_p100_options(cfg),
        .concurrency = (int)cfg->p100_concurrency,
        .rate = (int)cfg->p100_rate,
        .interval_ms = cfg->reconcile_interval_ms,
        .pending_after_ms = cfg->pending_after_ms,
        .webhook_overdue_ms = cfg->webhook_overdue_ms,
        .backoff_min_ms = cfg->reconcile_backoff_min_ms,
        .backoff_max_ms = cfg->reconcile_backoff_max_ms,
        .max_failures = (int)cfg->reconcile_max_failures,
        .recheck = cmd_recheck_policy(cfg),
        .recheck_share = (int)cfg->recheck_share,
        .once = once,
    };
    return o;
}

ingest_opts cmd_ingest_options(const kycd_config *cfg, spool *sp, int pool_size, int drainer)
{
    ingest_opts o = {
        .db = cmd_db_options(cfg),
        .pool_size = pool_size,
        .wait_ms = cfg->db_timeout_ms,
        .policy = {.dedup_window_ms = cfg->dedup_window_ms,
                   .reorder_window_ms = cfg->reorder_window_ms},
        .spool = sp,
        .drainer = drainer,
        /* a spool record: the body plus kind, time, address and id */
        .record_max = cfg->max_body + 512,
        .committers = (int)cfg->db_committers,
        .batch_max = (int)cfg->db_batch_max,
        .batch_wait_us = cfg->db_batch_us,
        .probe_ms = drainer ? 1000 : 0, /* kycd serve: /readyz answers from a probe per second */
    };
    return o;
}

int cmd_open_spool(const kycd_config *cfg, spool **out, kerr *err)
{
    *out = NULL;
    if (cfg->spool_dir == NULL || *cfg->spool_dir == '\0')
        return 0;
    spool_opts so = {.dir = cfg->spool_dir, .max_bytes = cfg->spool_max};
    return spool_open(out, &so, err);
}

void cmd_print_p100_error(const p100_result *res)
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
    else if (res->cls == P100_UNUSABLE)
        fprintf(stderr, "      the answer says nothing about the user (no errorCode): check "
                        "p100_base_url and p100_status_path\n");
    else if (res->cls == P100_TRANSIENT)
        fprintf(stderr, "      this is temporary on P100's side: try again later\n");
}

void cmd_who(char *user, size_t ucap, char *host, size_t hcap)
{
    struct passwd *pw = getpwuid(geteuid());
    snprintf(user, ucap, "%s", pw && pw->pw_name ? pw->pw_name : "");
    if (gethostname(host, hcap) != 0)
        host[0] = '\0';
    host[hcap - 1] = '\0';
}
