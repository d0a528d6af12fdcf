/* Unit tests for io/config: defaults, layering (file < environment < flags),
 * the _FILE forms, refusal of unknown names and bad values, secrets kept
 * off the command line and out of messages and printed output, database_url
 * redaction, and the serve-time checks. */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/config.h"
#include "io/config_check.h"
#include "io/config_keys.h"
#include "io/config_print.h"
#include "io/config_reference.h"

/* Distinctive values: if one shows up in a message or in printed output,
 * a secret leaked. */
#define SECRET_TOK "SEKRIT-tok3n-9f8e7d6c5b4a"
#define SECRET_TOK2 "0ther-SEKRIT-tok3n-1a2b3c4d"
#define SECRET_PW "pw-SEKRIT-77q"
#define SHORT_TOK "tiny-t0k"

/* Temporary files created by a test, removed by its teardown. */
static char *g_paths[16];
static int g_npaths;

static const char *temp_file(const char *content)
{
    char tmpl[] = "/tmp/kycd_test_config_XXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    size_t n = strlen(content);
    assert_int_equal(write(fd, content, n), (ssize_t)n);
    close(fd);
    assert_true(g_npaths < 16);
    g_paths[g_npaths] = strdup(tmpl);
    assert_non_null(g_paths[g_npaths]);
    return g_paths[g_npaths++];
}

static int teardown_files(void **state)
{
    for (int i = 0; i < g_npaths; i++) {
        unlink(g_paths[i]);
        free(g_paths[i]);
    }
    g_npaths = 0;
    return 0;
}

static int count(char **v)
{
    int n = 0;
    while (v != NULL && v[n] != NULL)
        n++;
    return n;
}

static int load(kycd_config *cfg, char **envp, char **argv, kerr *err)
{
    kerr_clear(err);
    return config_load(cfg, envp, count(argv), argv, err);
}

static void load_ok(kycd_config *cfg, char **envp, char **argv)
{
    kerr err;
    int rc = load(cfg, envp, argv, &err);
    if (rc != 0)
        fail_msg("config_load failed: %s", err.msg);
}

/* Loads, expects failure, checks that the message contains every string in
 * `want` and never contains `never` (may be NULL), and that cfg was left
 * zeroed. */
static void load_fails(char **envp, char **argv, const char **want, const char *never)
{
    kycd_config cfg;
    kerr err;
    assert_int_not_equal(load(&cfg, envp, argv, &err), 0);
    assert_int_not_equal(err.code, 0);
    for (int i = 0; want != NULL && want[i] != NULL; i++)
        if (strstr(err.msg, want[i]) == NULL)
            fail_msg("message '%s' lacks '%s'", err.msg, want[i]);
    if (never != NULL && strstr(err.msg, never) != NULL)
        fail_msg("message '%s' leaks '%s'", err.msg, never);
    kycd_config zero;
    memset(&zero, 0, sizeof zero);
    assert_memory_equal(&cfg, &zero, sizeof cfg);
    config_deinit(&cfg);
}

#define NOENV ((char *[]){NULL})
#define NOARGS ((char *[]){NULL})
#define WANT(...) ((const char *[]){__VA_ARGS__, NULL})

/* What config_print (cfg) or else config_reference (fmt) writes, as a string. */
static char *printed(const kycd_config *cfg, enum config_ref_format fmt)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    if (cfg != NULL)
        config_print(cfg, f);
    else
        config_reference(fmt, f);
    fclose(f);
    return text;
}

static char *print_cfg(const kycd_config *cfg)
{
    return printed(cfg, CONFIG_REF_MARKDOWN);
}

static const char *env_config(char *buf, size_t len, const char *path)
{
    snprintf(buf, len, "KYCD_CONFIG=%s", path);
    return buf;
}

/* ---- defaults */

static void test_defaults(void **state)
{
    kycd_config cfg;
    load_ok(&cfg, NOENV, NOARGS);
    assert_string_equal(cfg.database_url, "");
    assert_null(cfg.database_password);
    assert_int_equal(cfg.db_pool, 8);
    assert_int_equal(cfg.db_timeout_ms, 5000);
    assert_string_equal(cfg.listen, "0.0.0.0:8443");
    assert_null(cfg.http_listen);
    assert_null(cfg.tls_cert);
    assert_null(cfg.tls_key);
    assert_null(cfg.tls_chain);
    assert_string_equal(cfg.tls_ciphers,
                        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305");
    assert_int_equal(cfg.threads, 256);
    assert_int_equal(cfg.request_timeout_ms, 10000);
    assert_int_equal(cfg.keepalive_ms, 5000);
    assert_null(cfg.webhook_tokens);
    assert_int_equal(cfg.max_body, 65536);
    assert_string_equal(cfg.allow_cidrs, "");
    assert_int_equal(cfg.dedup_window_ms, 600000);
    assert_int_equal(cfg.reorder_window_ms, 300000);
    assert_int_equal(cfg.retry_after_s, 5);
    assert_int_equal(cfg.shutdown_timeout_ms, 10000);
    assert_string_equal(cfg.log_level, "info");
    config_deinit(&cfg);
}

static void test_non_kycd_env_ignored(void **state)
{
    kycd_config cfg;
    load_ok(&cfg, (char *[]){"PATH=/usr/bin", "KYCDX=1", "HOME=/root", "NOEQUALS", NULL}, NOARGS);
    assert_int_equal(cfg.threads, 256);
    config_deinit(&cfg);
}

/* ---- layering */

static void test_precedence(void **state)
{
    const char *path = temp_file("threads = 4\nlog_level = warn\n");
    char envc[512];
    kycd_config cfg;

    /* file alone, named by --config */
    load_ok(&cfg, NOENV, (char *[]){"--config", (char *)path, NULL});
    assert_int_equal(cfg.threads, 4);
    assert_string_equal(cfg.log_level, "warn");
    config_deinit(&cfg);

    /* file named by KYCD_CONFIG; environment beats file */
    load_ok(&cfg, (char *[]){(char *)env_config(envc, sizeof envc, path), "KYCD_THREADS=5", NULL},
            NOARGS);
    assert_int_equal(cfg.threads, 5);
    assert_string_equal(cfg.log_level, "warn");
    config_deinit(&cfg);

    /* flag beats environment beats file, --config after the flag */
    load_ok(&cfg, (char *[]){"KYCD_THREADS=5", NULL},
            (char *[]){"--threads", "6", "--config", (char *)path, NULL});
    assert_int_equal(cfg.threads, 6);
    assert_string_equal(cfg.log_level, "warn");
    config_deinit(&cfg);

    /* --config beats KYCD_CONFIG */
    const char *other = temp_file("threads = 9\n");
    load_ok(&cfg, (char *[]){(char *)env_config(envc, sizeof envc, path), NULL},
            (char *[]){"--config=", NULL});
    assert_int_equal(cfg.threads, 256); /* an empty --config= names no file */
    config_deinit(&cfg);
    load_ok(&cfg, (char *[]){(char *)env_config(envc, sizeof envc, path), NULL},
            (char *[]){"--config", (char *)other, NULL});
    assert_int_equal(cfg.threads, 9);
    assert_string_equal(cfg.log_level, "info");
    config_deinit(&cfg);
}

static void test_flag_forms(void **state)
{
    kycd_config cfg;
    load_ok(&cfg, NOENV,
            (char *[]){"--threads=7", "--max-body", "1M", "--db-timeout=250ms", "--log-level",
                       "debug", "--http-listen", "127.0.0.1:8080", "--retry-after=2m", NULL});
    assert_int_equal(cfg.threads, 7);
    assert_int_equal(cfg.max_body, 1 << 20);
    assert_int_equal(cfg.db_timeout_ms, 250);
    assert_string_equal(cfg.log_level, "debug");
    assert_string_equal(cfg.http_listen, "127.0.0.1:8080");
    assert_int_equal(cfg.retry_after_s, 120);
    config_deinit(&cfg);

    /* the same flag twice: the last wins */
    load_ok(&cfg, NOENV, (char *[]){"--threads", "7", "--threads=8", NULL});
    assert_int_equal(cfg.threads, 8);
    config_deinit(&cfg);
}

static void test_file_syntax(void **state)
{
    const char *path = temp_file("# a comment\n"
                                 "\n"
                                 "   # an indented comment\n"
                                 "threads=12\n"
                                 "  listen   =   127.0.0.1:9443   \r\n"
                                 "tls_cert = \"/etc/kycd/cert pem\"\n"
                                 "allow_cidrs = \"\"\n"
                                 "tls_key = /etc/kycd/key#1.pem\n"
                                 "max_body = 128k\n"
                                 "dedup_window = 1h\n");
    kycd_config cfg;
    load_ok(&cfg, NOENV, (char *[]){"--config", (char *)path, NULL});
    assert_int_equal(cfg.threads, 12);
    assert_string_equal(cfg.listen, "127.0.0.1:9443");
    assert_string_equal(cfg.tls_cert, "/etc/kycd/cert pem");
    assert_string_equal(cfg.allow_cidrs, "");
    assert_string_equal(cfg.tls_key, "/etc/kycd/key#1.pem");
    assert_int_equal(cfg.max_body, 128 * 1024);
    assert_int_equal(cfg.dedup_window_ms, 3600000);
    config_deinit(&cfg);
}

static void test_empty_value_unsets(void **state)
{
    const char *path = temp_file("http_listen = 127.0.0.1:8080\n");
    kycd_config cfg;
    load_ok(&cfg, (char *[]){"KYCD_HTTP_LISTEN=", NULL},
            (char *[]){"--config", (char *)path, NULL});
    assert_null(cfg.http_listen);
    config_deinit(&cfg);
}

/* ---- _FILE forms */

static void test_file_variants(void **state)
{
    const char *tok1 = temp_file(SECRET_TOK "\n\r\n");
    const char *tok2 = temp_file(SECRET_TOK2);
    const char *pw = temp_file(SECRET_PW "\n");
    const char *url = temp_file("postgresql://kycd:" SECRET_PW "@db/kycd\n");
    char line[1024];
    snprintf(line, sizeof line, "webhook_tokens_file = %s\ndatabase_password_file = \"%s\"\n", tok1,
             pw);
    const char *conf = temp_file(line);
    char env1[512], env2[512];
    kycd_config cfg;

    /* from the config file */
    load_ok(&cfg, NOENV, (char *[]){"--config", (char *)conf, NULL});
    assert_string_equal(cfg.webhook_tokens, SECRET_TOK);
    assert_string_equal(cfg.database_password, SECRET_PW);
    config_deinit(&cfg);

    /* KYCD_*_FILE beats the file's _file */
    snprintf(env1, sizeof env1, "KYCD_WEBHOOK_TOKENS_FILE=%s", tok2);
    snprintf(env2, sizeof env2, "KYCD_DATABASE_URL_FILE=%s", url);
    load_ok(&cfg, (char *[]){env1, env2, NULL}, (char *[]){"--config", (char *)conf, NULL});
    assert_string_equal(cfg.webhook_tokens, SECRET_TOK2);
    assert_string_equal(cfg.database_url, "postgresql://kycd:" SECRET_PW "@db/kycd");
    config_deinit(&cfg);

    /* a plain environment value beats the file's _file */
    load_ok(&cfg, (char *[]){"KYCD_WEBHOOK_TOKENS=" SECRET_TOK2, NULL},
            (char *[]){"--config", (char *)conf, NULL});
    assert_string_equal(cfg.webhook_tokens, SECRET_TOK2);
    config_deinit(&cfg);

    /* --*-file beats a plain environment value, both flag forms */
    load_ok(&cfg, (char *[]){"KYCD_WEBHOOK_TOKENS=" SECRET_TOK2, NULL},
            (char *[]){"--webhook-tokens-file", (char *)tok1, NULL});
    assert_string_equal(cfg.webhook_tokens, SECRET_TOK);
    config_deinit(&cfg);
    char flag[512];
    snprintf(flag, sizeof flag, "--database-password-file=%s", pw);
    load_ok(&cfg, NOENV, (char *[]){flag, NULL});
    assert_string_equal(cfg.database_password, SECRET_PW);
    config_deinit(&cfg);
}

static void test_file_variant_unreadable(void **state)
{
    load_fails((char *[]){"KYCD_DATABASE_PASSWORD_FILE=/nonexistent/kycd-pw", NULL}, NOARGS,
               WANT("database_password", "/nonexistent/kycd-pw"), NULL);
    load_fails(NOENV, (char *[]){"--webhook-tokens-file", "/nonexistent/tok", NULL},
               WANT("webhook_tokens", "/nonexistent/tok"), NULL);
    const char *conf = temp_file("webhook_tokens_file = /nonexistent/t2\n");
    load_fails(NOENV, (char *[]){"--config", (char *)conf, NULL},
               WANT("line 1", "webhook_tokens", "/nonexistent/t2"), NULL);
}

static void test_plain_and_file_same_layer(void **state)
{
    const char *tok = temp_file(SECRET_TOK);
    char env[512];
    snprintf(env, sizeof env, "KYCD_WEBHOOK_TOKENS_FILE=%s", tok);
    load_fails((char *[]){"KYCD_WEBHOOK_TOKENS=" SECRET_TOK2, env, NULL}, NOARGS,
               WANT("KYCD_WEBHOOK_TOKENS", "KYCD_WEBHOOK_TOKENS_FILE"), SECRET_TOK2);
}

/* ---- unknown names */

static void test_unknown_file_key(void **state)
{
    const char *path = temp_file("threads = 4\n# comment\nfoo = bar\n");
    char want[512];
    snprintf(want, sizeof want, "config file %s line 3: unknown key 'foo'", path);
    load_fails(NOENV, (char *[]){"--config", (char *)path, NULL}, WANT(want), NULL);

    /* a line that is not key = value is not quoted back */
    path = temp_file("\n" SECRET_TOK "\n");
    snprintf(want, sizeof want, "config file %s line 2", path);
    load_fails(NOENV, (char *[]){"--config", (char *)path, NULL}, WANT(want), SECRET_TOK);

    /* a missing config file */
    load_fails((char *[]){"KYCD_CONFIG=/nonexistent/kycd.conf", NULL}, NOARGS,
               WANT("/nonexistent/kycd.conf"), NULL);
}

static void test_unknown_env(void **state)
{
    load_fails((char *[]){"PATH=/bin", "KYCD_THREAD=4", NULL}, NOARGS, WANT("KYCD_THREAD"), NULL);
    /* exact spelling only */
    load_fails((char *[]){"KYCD_threads=4", NULL}, NOARGS, WANT("KYCD_threads"), NULL);
    /* no _FILE form for a key that has none */
    load_fails((char *[]){"KYCD_THREADS_FILE=/tmp/x", NULL}, NOARGS, WANT("KYCD_THREADS_FILE"),
               NULL);
}

static void test_unknown_flag(void **state)
{
    load_fails(NOENV, (char *[]){"--frobnicate", "1", NULL}, WANT("--frobnicate"), NULL);
    load_fails(NOENV, (char *[]){"--threads", "4", "serve", NULL}, WANT("'serve'"), NULL);
    load_fails(NOENV, (char *[]){"-t", "4", NULL}, WANT("'-t'"), NULL);
    load_fails(NOENV, (char *[]){"--max_body=1k", NULL}, WANT("--max_body"), "1k");
    load_fails(NOENV, (char *[]){"--threads", NULL}, WANT("--threads", "value"), NULL);
}

/* ---- bad values */

static void test_bad_values(void **state)
{
    load_fails((char *[]){"KYCD_DB_TIMEOUT=5x", NULL}, NOARGS,
               WANT("KYCD_DB_TIMEOUT", "db_timeout", "'5x'"), NULL);
    load_fails(NOENV, (char *[]){"--max-body=32M", NULL}, WANT("max_body", "out of range"), NULL);
    load_fails(NOENV, (char *[]){"--max-body", "lots", NULL}, WANT("max_body", "'lots'"), NULL);
    load_fails(NOENV, (char *[]){"--threads", "1", NULL}, WANT("threads", "2 to 4096"), NULL);
    load_fails(NOENV, (char *[]){"--db-pool=ten", NULL}, WANT("db_pool", "'ten'"), NULL);
    load_fails(NOENV, (char *[]){"--log-level=loud", NULL}, WANT("log_level", "'loud'"), NULL);
    load_fails(NOENV, (char *[]){"--retry-after=1500ms", NULL},
               WANT("retry_after", "whole seconds"), NULL);
    load_fails(NOENV, (char *[]){"--request-timeout=0", NULL}, WANT("request_timeout"), NULL);
    const char *path = temp_file("keepalive = -1s\n");
    load_fails(NOENV, (char *[]){"--config", (char *)path, NULL},
               WANT("line 1", "keepalive", "'-1s'"), NULL);
}

/* ---- secrets */

static void test_secret_on_command_line(void **state)
{
    load_fails(NOENV, (char *[]){"--webhook-tokens", SECRET_TOK, NULL},
               WANT("--webhook-tokens is a secret: pass it through KYCD_WEBHOOK_TOKENS_FILE or "
                    "the config file, not the command line"),
               SECRET_TOK);
    load_fails(NOENV, (char *[]){"--webhook-tokens=" SECRET_TOK, NULL},
               WANT("--webhook-tokens is a secret"), SECRET_TOK);
    load_fails(NOENV, (char *[]){"--database-password", SECRET_PW, NULL},
               WANT("--database-password is a secret: pass it through "
                    "KYCD_DATABASE_PASSWORD_FILE or the config file, not the command line"),
               SECRET_PW);

    /* a URL with a password is accepted on the command line, but not printed */
    kycd_config cfg;
    load_ok(&cfg, NOENV,
            (char *[]){"--database-url", "postgresql://kycd:" SECRET_PW "@db:5432/kycd", NULL});
    char *text = print_cfg(&cfg);
    assert_null(strstr(text, SECRET_PW));
    assert_non_null(strstr(text, "database_url = postgresql://kycd:***@db:5432/kycd\n"));
    free(text);
    config_deinit(&cfg);
}

static void test_no_secret_in_messages(void **state)
{
    /* misspelt secret keys in every layer */
    const char *path = temp_file("webhook_token = " SECRET_TOK "\n");
    load_fails(NOENV, (char *[]){"--config", (char *)path, NULL}, WANT("webhook_token"),
               SECRET_TOK);
    load_fails((char *[]){"KYCD_WEBHOOK_TOKEN=" SECRET_TOK, NULL}, NOARGS,
               WANT("KYCD_WEBHOOK_TOKEN"), SECRET_TOK);
    load_fails(NOENV, (char *[]){"--webhook-token=" SECRET_TOK, NULL}, WANT("--webhook-token"),
               SECRET_TOK);
    /* an error after secrets were loaded */
    load_fails(
        (char *[]){"KYCD_WEBHOOK_TOKENS=" SECRET_TOK, "KYCD_DATABASE_PASSWORD=" SECRET_PW, NULL},
        (char *[]){"--threads=0", NULL}, WANT("threads"), SECRET_TOK);
    /* serve checks with a bad token among good ones */
    kycd_config cfg;
    kerr err;
    load_ok(&cfg, (char *[]){"KYCD_WEBHOOK_TOKENS=" SECRET_TOK "," SHORT_TOK, NULL}, NOARGS);
    assert_int_not_equal(config_check_serve(&cfg, &err), 0);
    assert_null(strstr(err.msg, SECRET_TOK));
    assert_null(strstr(err.msg, SHORT_TOK));
    config_deinit(&cfg);
}

/* The documentation of the keys (README table, kycd.conf(5)) comes from the
 * table: defaults rendered as kycd reads them, secrets marked, and roff
 * that no markdown, raw UTF-8 or stray control line leaks into. */
static void test_reference(void **state)
{
    char *md = printed(NULL, CONFIG_REF_MARKDOWN);
    assert_true(strncmp(md, "| key (env `KYCD_...`) | default | meaning |\n| --- | --- | --- |\n",
                        62) == 0);
    const char *rows_wanted[] = {
        "\n| `max_body` | `64k` | largest accepted body",
        "\n| `linger_bytes` | `4M` |",
        "\n| `retry_after` | `5s` |",
        "\n| `reconcile` | `on` |",
        "\n| `webhook_tokens` (secret) | unset (required) |",
        "\n| `database_url` | `\"\"` (libpq's `PG*` environment) |",
    };
    for (size_t i = 0; i < sizeof rows_wanted / sizeof *rows_wanted; i++)
        assert_non_null(strstr(md, rows_wanted[i]));
    int rows = 0;
    for (const char *p = md; (p = strstr(p, "\n| `")) != NULL; p++)
        rows++;
    char *cfgtext = NULL;
    kycd_config cfg;
    load_ok(&cfg, NOENV, NOARGS);
    cfgtext = print_cfg(&cfg);
    int keys = 0;
    for (const char *p = cfgtext; (p = strchr(p, '\n')) != NULL; p++)
        keys++;
    assert_int_equal(rows, keys); /* one row per key */
    free(cfgtext);
    config_deinit(&cfg);

    char *man = printed(NULL, CONFIG_REF_MAN);
    assert_non_null(strstr(man, ".TP\n.B max_body\nDefault: \\fB64k\\fR. Environment: "
                                "\\fBKYCD_MAX_BODY\\fR. Flag: \\fB\\-\\-max\\-body\\fR.\n"));
    assert_non_null(strstr(man, "A secret: never accepted as a flag"));
    assert_non_null(strstr(man, "Also read from a file named by \\fBwebhook_tokens_file\\fR"));
    assert_non_null(strstr(man, "rate \\[u00D7] P100"));
    assert_null(strchr(man, '`'));
    assert_null(strstr(man, "](#"));
    assert_non_null(strstr(man, "(see Group commit)")); /* a link is its text */
    assert_non_null(
        strstr(man, "(IPv6 as \\fB[:\\::\\:]:\\:8443\\fR)")); /* brackets in code stay */
    for (const char *line = man; *line != '\0'; line = strchr(line, '\n') + 1) {
        if (*line == '.')
            assert_true(strncmp(line, ".TP\n", 4) == 0 || strncmp(line, ".B ", 3) == 0 ||
                        strncmp(line, ".br\n", 4) == 0);
        for (const char *c = line; *c != '\n'; c++)
            assert_true((unsigned char)*c < 0x80);
    }
    free(man);
    free(md);
}

static void test_print(void **state)
{
    kycd_config cfg;
    load_ok(&cfg,
            (char *[]){"KYCD_WEBHOOK_TOKENS=" SECRET_TOK "," SECRET_TOK2,
                       "KYCD_DATABASE_PASSWORD=" SECRET_PW, NULL},
            (char *[]){"--tls-cert", "/c.pem", NULL});
    char *text = print_cfg(&cfg);
    assert_null(strstr(text, SECRET_TOK));
    assert_null(strstr(text, SECRET_TOK2));
    assert_null(strstr(text, SECRET_PW));
    const char *want = "database_url = \"\"\n"
                       "database_password = (redacted)\n"
                       "db_pool = 8\n"
                       "db_timeout = 5s\n"
                       "db_committers = 2\n"
                       "db_batch_max = 64\n"
                       "db_batch_wait_us = 200\n"
                       "listen = 0.0.0.0:8443\n"
                       "http_listen = (unset)\n"
                       "tls_cert = /c.pem\n"
                       "tls_key = (unset)\n"
                       "tls_chain = (unset)\n"
                       "tls_client_ca = (unset)\n"
                       "tls_ciphers = ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                       "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                       "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305\n"
                       "threads = 256\n"
                       "header_timeout = 5s\n"
                       "request_timeout = 10s\n"
                       "linger_time = 2s\n"
                       "linger_bytes = 4194304\n"
                       "keepalive = 5s\n"
                       "slow_grace = 1s\n"
                       "slow_min_rate = 500\n"
                       "webhook_tokens = (redacted)\n"
                       "max_body = 65536\n"
                       "allow_cidrs = \"\"\n"
                       "dedup_window = 10m\n"
                       "reorder_window = 5m\n"
                       "retry_after = 5s\n"
                       "shutdown_timeout = 10s\n"
                       "log_level = info\n"
                       "spool_dir = (unset)\n"
                       "spool_max = 1073741824\n"
                       "p100_base_url = https://partner-api-stage.p100.io\n"
                       "p100_api_key = (unset)\n"
                       "erase_key = (unset)\n"
                       "p100_ca_file = (unset)\n"
                       "p100_status_path = /v1/kyc/status/{externalUserId}\n"
                       "p100_timeout = 10s\n"
                       "p100_rate = 10\n"
                       "p100_concurrency = 64\n"
                       "reconcile = on\n"
                       "reconcile_interval = 30s\n"
                       "pending_after = 10m\n"
                       "webhook_overdue = 30m\n"
                       "reconcile_max_failures = 10\n"
                       "reconcile_backoff_min = 10s\n"
                       "reconcile_backoff_max = 1h\n"
                       "recheck_rejected_after = 1h\n"
                       "recheck_rejected_for = 720h\n"
                       "recheck_verified_every = 720h\n"
                       "recheck_share = 20\n"
                       "admin_listen = 127.0.0.1:8444\n"
                       "admin_allow_cidrs = 127.0.0.0/8,::1/128\n"
                       "retention = 0s\n"
                       "partitions_every = 1h\n";
    assert_string_equal(text, want);
    free(text);
    config_deinit(&cfg);

    load_ok(&cfg, NOENV, NOARGS);
    text = print_cfg(&cfg);
    assert_non_null(strstr(text, "webhook_tokens = (unset)\n"));
    assert_non_null(strstr(text, "database_password = (unset)\n"));
    free(text);
    config_deinit(&cfg);
}

static void assert_url_prints(const char *url, const char *want)
{
    kycd_config cfg;
    char *argv[] = {"--database-url", (char *)url, NULL};
    load_ok(&cfg, NOENV, argv);
    char *text = print_cfg(&cfg);
    char line[1024];
    snprintf(line, sizeof line, "database_url = %s\n", want);
    if (strstr(text, line) == NULL)
        fail_msg("printed:\n%s\nwanted line: %s", text, line);
    assert_null(strstr(text, SECRET_PW));
    free(text);
    config_deinit(&cfg);
}

static void test_database_url_redaction(void **state)
{
    assert_url_prints("postgresql://user:" SECRET_PW "@host/db", "postgresql://user:***@host/db");
    assert_url_prints("postgres://user:" SECRET_PW "@h1:5432,h2:5433/db?sslmode=require",
                      "postgres://user:***@h1:5432,h2:5433/db?sslmode=require");
    /* an unescaped '@' inside the password */
    assert_url_prints("postgresql://user:" SECRET_PW "@x@host/db", "postgresql://user:***@host/db");
    assert_url_prints("postgresql://user:" SECRET_PW
                      "@host/db?sslmode=verify-full&password=" SECRET_PW "&application_name=kycd",
                      "postgresql://user:***@host/db?sslmode=verify-full&password=***"
                      "&application_name=kycd");
    assert_url_prints("postgresql://host/db?password=" SECRET_PW,
                      "postgresql://host/db?password=***");
    /* nothing to hide */
    assert_url_prints("postgresql://user@host:5432/db", "postgresql://user@host:5432/db");
    assert_url_prints("postgresql:///kycd?host=/run/postgresql",
                      "postgresql:///kycd?host=/run/postgresql");
    /* keyword/value form */
    assert_url_prints("host=db user=kycd password=" SECRET_PW " dbname=kycd",
                      "host=db user=kycd password=*** dbname=kycd");
    assert_url_prints("host=db password='" SECRET_PW " \\' x' dbname=kycd",
                      "host=db password='***' dbname=kycd");
    assert_url_prints("password = " SECRET_PW, "password = ***");
    assert_url_prints("host=db dbname=kycd", "host=db dbname=kycd");
    /* every keyword libpq holds secret, not only password */
    assert_url_prints("host=db sslkey=/k.pem sslpassword=" SECRET_PW " dbname=kycd",
                      "host=db sslkey=/k.pem sslpassword=*** dbname=kycd");
    assert_url_prints("postgresql://host/db?sslpassword=" SECRET_PW "&sslmode=require",
                      "postgresql://host/db?sslpassword=***&sslmode=require");
    assert_url_prints("host=db SSLPassword='" SECRET_PW "'", "host=db SSLPassword='***'");
    /* several hosts, as for a failover */
    assert_url_prints("host=db1,db2 port=5432,5433 password=" SECRET_PW
                      " dbname=kycd target_session_attrs=read-write",
                      "host=db1,db2 port=5432,5433 password=*** dbname=kycd "
                      "target_session_attrs=read-write");
}

static void test_key_is_secret(void **state)
{
    assert_true(config_key_is_secret("webhook_tokens"));
    assert_true(config_key_is_secret("database_password"));
    assert_true(config_key_is_secret("--webhook-tokens"));
    assert_true(config_key_is_secret("KYCD_DATABASE_PASSWORD"));
    assert_false(config_key_is_secret("webhook_tokens_file"));
    assert_false(config_key_is_secret("database_url"));
    assert_false(config_key_is_secret("threads"));
    assert_false(config_key_is_secret("nonsense"));
    assert_false(config_key_is_secret(""));
}

static void test_deinit(void **state)
{
    kycd_config cfg;
    memset(&cfg, 0, sizeof cfg);
    config_deinit(&cfg);
    config_deinit(NULL);
    load_ok(&cfg, NOENV, NOARGS);
    config_deinit(&cfg);
    config_deinit(&cfg);
}

/* ---- config_check_serve */

static void serve_cfg(kycd_config *cfg, char *http_listen)
{
    char *env[] = {"KYCD_WEBHOOK_TOKENS=" SECRET_TOK "," SECRET_TOK2, "KYCD_TLS_CERT=/c.pem",
                   "KYCD_TLS_KEY=/k.pem", "KYCD_ALLOW_CIDRS=10.0.0.0/8, 2001:db8::/32", NULL};
    char *argv[] = {"--http-listen", http_listen, NULL};
    load_ok(cfg, env, http_listen != NULL ? argv : NOARGS);
}

static void assert_serve_fails(kycd_config *cfg, const char *want)
{
    kerr err;
    kerr_clear(&err);
    assert_int_not_equal(config_check_serve(cfg, &err), 0);
    if (strstr(err.msg, want) == NULL)
        fail_msg("message '%s' lacks '%s'", err.msg, want);
    assert_null(strstr(err.msg, SECRET_TOK));
}

static void assert_serve_ok(kycd_config *cfg)
{
    kerr err;
    kerr_clear(&err);
    if (config_check_serve(cfg, &err) != 0)
        fail_msg("config_check_serve failed: %s", err.msg);
}

static void test_serve_no_tokens(void **state)
{
    kycd_config cfg;
    load_ok(&cfg, (char *[]){"KYCD_TLS_CERT=/c.pem", "KYCD_TLS_KEY=/k.pem", NULL}, NOARGS);
    assert_serve_fails(&cfg, "no webhook token configured (KYCD_WEBHOOK_TOKENS or "
                             "KYCD_WEBHOOK_TOKENS_FILE): refusing to start");
    config_deinit(&cfg);
    /* an empty token file unsets the key: still refused */
    const char *empty = temp_file("\n");
    char env[512];
    snprintf(env, sizeof env, "KYCD_WEBHOOK_TOKENS_FILE=%s", empty);
    load_ok(&cfg, (char *[]){env, "KYCD_TLS_CERT=/c.pem", "KYCD_TLS_KEY=/k.pem", NULL}, NOARGS);
    assert_serve_fails(&cfg, "no webhook token configured");
    config_deinit(&cfg);
}

static void test_serve_short_token(void **state)
{
    kycd_config cfg;
    load_ok(&cfg,
            (char *[]){"KYCD_WEBHOOK_TOKENS=" SHORT_TOK, "KYCD_TLS_CERT=/c.pem",
                       "KYCD_TLS_KEY=/k.pem", NULL},
            NOARGS);
    kerr err;
    assert_int_not_equal(config_check_serve(&cfg, &err), 0);
    assert_non_null(strstr(err.msg, "webhook_tokens"));
    assert_null(strstr(err.msg, SHORT_TOK));
    config_deinit(&cfg);
}

static void test_serve_http_listen(void **state)
{
    kycd_config cfg;
    serve_cfg(&cfg, "0.0.0.0:8080");
    assert_serve_fails(&cfg, "http_listen '0.0.0.0:8080' is not a loopback address");
    config_deinit(&cfg);
    serve_cfg(&cfg, "10.1.2.3:8080");
    assert_serve_fails(&cfg, "loopback");
    config_deinit(&cfg);
    serve_cfg(&cfg, "[::]:8080");
    assert_serve_fails(&cfg, "loopback");
    config_deinit(&cfg);
    serve_cfg(&cfg, "localhost:8080");
    assert_serve_fails(&cfg, "http_listen 'localhost:8080' is not HOST:PORT");
    config_deinit(&cfg);
    serve_cfg(&cfg, "127.0.0.1:8080");
    assert_serve_ok(&cfg);
    config_deinit(&cfg);
    serve_cfg(&cfg, "127.1.2.3:80");
    assert_serve_ok(&cfg);
    config_deinit(&cfg);
    serve_cfg(&cfg, "[::1]:8080");
    assert_serve_ok(&cfg);
    config_deinit(&cfg);
}

static void test_serve_listen_forms(void **state)
{
    static const char *bad[] = {"0.0.0.0",     "0.0.0.0:",     "0.0.0.0:0", "0.0.0.0:65536",
                                "0.0.0.0:+80", "0.0.0.0:80x",  ":8443",     "[::1:8443",
                                "::1:8443",    "[nothost]:80", "1.2.3:80",  "",
                                NULL};
    kycd_config cfg;
    serve_cfg(&cfg, NULL);
    for (int i = 0; bad[i] != NULL; i++) {
        char *saved = cfg.listen;
        cfg.listen = (char *)bad[i];
        assert_serve_fails(&cfg, "listen");
        cfg.listen = saved;
    }
    static const char *good[] = {"0.0.0.0:8443", "192.0.2.1:1", "[::]:443", "[2001:db8::1]:65535",
                                 NULL};
    for (int i = 0; good[i] != NULL; i++) {
        char *saved = cfg.listen;
        cfg.listen = (char *)good[i];
        assert_serve_ok(&cfg);
        cfg.listen = saved;
    }
    config_deinit(&cfg);
}

static void test_serve_tls_and_cidrs(void **state)
{
    kycd_config cfg;
    load_ok(&cfg, (char *[]){"KYCD_WEBHOOK_TOKENS=" SECRET_TOK, "KYCD_TLS_KEY=/k.pem", NULL},
            NOARGS);
    assert_serve_fails(&cfg, "tls_cert");
    config_deinit(&cfg);
    load_ok(&cfg, (char *[]){"KYCD_WEBHOOK_TOKENS=" SECRET_TOK, "KYCD_TLS_CERT=/c.pem", NULL},
            NOARGS);
    assert_serve_fails(&cfg, "tls_key");
    config_deinit(&cfg);
    load_ok(&cfg,
            (char *[]){"KYCD_WEBHOOK_TOKENS=" SECRET_TOK, "KYCD_TLS_CERT=/c.pem",
                       "KYCD_TLS_KEY=/k.pem", "KYCD_ALLOW_CIDRS=10.0.0.1/8", NULL},
            NOARGS);
    assert_serve_fails(&cfg, "allow_cidrs");
    config_deinit(&cfg);
}

static void test_serve_good(void **state)
{
    kycd_config cfg;
    serve_cfg(&cfg, NULL);
    assert_serve_ok(&cfg);
    config_deinit(&cfg);
}

/* config_check_serve is where the tokens and CIDRs are parsed, once: the
 * server uses cfg->tokens and cfg->allow as they are. */
static void test_serve_typed_values(void **state)
{
    kycd_config cfg;
    serve_cfg(&cfg, NULL);
    assert_int_equal(cfg.tokens.count, 0);
    assert_int_equal(cfg.allow.count, 0);
    assert_serve_ok(&cfg);
    assert_int_equal(cfg.tokens.count, 2);
    assert_true(token_check(&cfg.tokens, "Bearer " SECRET_TOK));
    assert_true(token_check(&cfg.tokens, SECRET_TOK2));
    assert_false(token_check(&cfg.tokens, "Bearer " SHORT_TOK));
    assert_int_equal(cfg.allow.count, 2);
    assert_true(cidr_list_allows(&cfg.allow, "10.1.2.3"));
    assert_true(cidr_list_allows(&cfg.allow, "2001:db8::7"));
    assert_false(cidr_list_allows(&cfg.allow, "192.0.2.1"));
    /* the digests only: no token text is kept in the typed value */
    assert_null(memmem(&cfg.tokens, sizeof cfg.tokens, SECRET_TOK, strlen(SECRET_TOK)));
    config_deinit(&cfg);
    kycd_config zero;
    memset(&zero, 0, sizeof zero);
    assert_memory_equal(&cfg, &zero, sizeof cfg);
    /* refused: cfg's typed values are left as they were */
    load_ok(&cfg,
            (char *[]){"KYCD_WEBHOOK_TOKENS=" SECRET_TOK, "KYCD_TLS_CERT=/c.pem",
                       "KYCD_TLS_KEY=/k.pem", "KYCD_ALLOW_CIDRS=10.0.0.1/8", NULL},
            NOARGS);
    assert_serve_fails(&cfg, "allow_cidrs");
    assert_int_equal(cfg.tokens.count, 0);
    assert_int_equal(cfg.allow.count, 0);
    config_deinit(&cfg);
}

#define T(f) cmocka_unit_test_teardown(f, teardown_files)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_non_kycd_env_ignored),
        T(test_precedence),
        T(test_flag_forms),
        T(test_file_syntax),
        T(test_empty_value_unsets),
        T(test_file_variants),
        T(test_file_variant_unreadable),
        T(test_plain_and_file_same_layer),
        T(test_unknown_file_key),
        T(test_unknown_env),
        T(test_unknown_flag),
        T(test_bad_values),
        T(test_secret_on_command_line),
        T(test_no_secret_in_messages),
        T(test_print),
        T(test_reference),
        T(test_database_url_redaction),
        T(test_key_is_secret),
        T(test_deinit),
        T(test_serve_no_tokens),
        T(test_serve_short_token),
        T(test_serve_http_listen),
        T(test_serve_listen_forms),
        T(test_serve_tls_and_cidrs),
        T(test_serve_good),
        T(test_serve_typed_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
