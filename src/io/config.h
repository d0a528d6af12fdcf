/* Configuration: one table of keys (src/io/config_keys.c), read from a
 * `key = value` file, then KYCD_* environment variables, then command-line
 * flags, each overriding the one before.
 *
 * Names: file key `max_body`, environment `KYCD_MAX_BODY`, flag
 * `--max-body VALUE` or `--max-body=VALUE`. The file is named by
 * `--config FILE` or KYCD_CONFIG.
 *
 * Secrets (webhook tokens, database password, P100 API key) are flagged in
 * the table: they are refused on the command line (visible in ps), may come
 * from a file through the `_FILE` form of the key (`webhook_tokens_file`,
 * KYCD_WEBHOOK_TOKENS_FILE, --webhook-tokens-file), and are redacted when the
 * configuration is printed. The password inside database_url is redacted too.
 * Unknown keys, unknown KYCD_* variables, unknown flags and bad values stop
 * the load with a message naming the key and never the value of a secret.
 *
 * The module is this header's config.c (load and free) plus its parts,
 * each with its own header:
 *   io/config_keys.h      the key table: which names are secrets
 *   io/config_check.h     the checks serve makes across several keys
 *   io/config_print.h     the printed configuration, redacted; the diff of two
 *   io/config_reference.h the reference of every key (README, kycd.conf(5))
 * io/config_internal.h is what the parts share (config*.c only). */
#ifndef KYCD_IO_CONFIG_H
#define KYCD_IO_CONFIG_H

#include <stdint.h>

#include "base/err.h"
#include "core/cidr.h"
#include "core/token.h"

typedef struct kycd_config {
    /* database */
    char *database_url;      /* libpq conninfo or URI; default "" (libpq's PG* env) */
    char *database_password; /* secret; default NULL */
    int64_t db_pool;         /* connections; default 8 */
    int64_t db_timeout_ms;   /* connect/query/pool-wait deadline; default 5s */
    int64_t db_committers;   /* group commit threads; default 2, 0: off */
    int64_t db_batch_max;    /* deliveries per transaction; default 64 */
    int64_t db_batch_us;     /* db_batch_wait_us: wait for batch-mates; default 200 */
    /* listener */
    char *listen;               /* "ADDR:PORT" TLS; default "0.0.0.0:8443" */
    char *http_listen;          /* plain HTTP for a local proxy, loopback only; default NULL */
    char *admin_listen;         /* admin listener; default "127.0.0.1:8444"; "off"/"": none */
    char *admin_allow_cidrs;    /* its allowed sources; default loopback */
    char *tls_cert;             /* PEM certificate (path) */
    char *tls_key;              /* PEM private key (path) */
    char *tls_chain;            /* PEM intermediate chain (path), optional */
    char *tls_ciphers;          /* TLS 1.2 cipher list */
    char *tls_client_ca;        /* mutual TLS: CA of accepted client certificates, optional */
    int64_t threads;            /* worker threads; default 256 */
    int64_t header_timeout_ms;  /* TLS handshake + request headers deadline; default 5s */
    int64_t request_timeout_ms; /* whole-request deadline for slow clients; default 10s */
    int64_t linger_ms;          /* lingering close after an early answer; default 2s */
    int64_t linger_bytes;       /* at most this much unread input discarded; default 4 MiB */
    int64_t keepalive_ms;       /* idle keep-alive; default 5s */
    int64_t slow_grace_ms;      /* slow clients: grace before slow_min_rate; default 1s */
    int64_t slow_min_rate;      /* slow clients: bytes/s after the grace; default 500, 0 off */
    /* webhooks */
    char *webhook_tokens;        /* secret; comma-separated */
    int64_t max_body;            /* bytes; default 64 KiB */
    char *allow_cidrs;           /* comma-separated CIDRs; default "" (all) */
    int64_t dedup_window_ms;     /* repeat detection; default 10m */
    int64_t reorder_window_ms;   /* late-retry horizon; default 5m */
    int64_t retry_after_s;       /* Retry-After on 503; default 5 */
    int64_t shutdown_timeout_ms; /* grace for in-flight requests; default 10s */
    char *log_level;             /* debug|info|warn|error; default info */
    /* spool */
    char *spool_dir;   /* unset: no spool */
    int64_t spool_max; /* bytes; default 1 GiB */
    /* P100 and the reconciler */
    char *p100_base_url;              /* default P100 staging */
    char *p100_api_key;               /* secret */
    char *erase_key;                  /* secret: kycd erase's pseudonym key */
    char *p100_ca_file;               /* extra CA bundle, optional */
    char *p100_status_path;           /* "/v1/kyc/status/{externalUserId}" */
    int64_t p100_timeout_ms;          /* default 10s */
    int64_t p100_rate;                /* calls per second; default 10 */
    int64_t p100_concurrency;         /* calls in flight; default 16 */
    int64_t reconcile;                /* bool: reconciler thread in serve; default on */
    int64_t reconcile_interval_ms;    /* idle poll and 401 pause; default 30s */
    int64_t pending_after_ms;         /* default 10m */
    int64_t webhook_overdue_ms;       /* default 30m */
    int64_t reconcile_max_failures;   /* default 10 */
    int64_t reconcile_backoff_min_ms; /* default 10s */
    int64_t reconcile_backoff_max_ms; /* default 1h */

    /* re-checks of settled users: defaults 1h, 30d (0 off), 30d (0 off), 20 (percent of rate) */
    int64_t recheck_rejected_after_ms;
    int64_t recheck_rejected_for_ms;
    int64_t recheck_verified_every_ms;
    int64_t recheck_share;
    int64_t partitions_every_ms; /* serve's partition maintenance; default 1h */
    int64_t retention_ms;        /* history kept by `kycd retention`; default 0: everything */
    /* Typed values, filled by config_check_serve from webhook_tokens and
     * allow_cidrs (the only place either string is parsed); zero before. */
    token_set tokens; /* digests only: a token is never kept in the clear here */
    cidr_list allow;
    cidr_list admin_allow; /* from admin_allow_cidrs */
    int admin_on;          /* admin_listen is set (not "off" or empty) */
    int admin_plain;       /* admin_listen is a loopback address: plain HTTP */
} kycd_config;

/* Fill cfg with defaults, then the file (KYCD_CONFIG or --config), then
 * `envp` (NULL-terminated "NAME=value" strings, usually environ), then
 * `argv[0..argc)`, which must contain only configuration flags.
 * On error cfg is left deinitialised-safe (config_deinit may be called). */
int config_load(kycd_config *cfg, char **envp, int argc, char **argv, kerr *err) KYCD_MUST_CHECK;

/* Free every string (wiping it first) and zero cfg; NULL is fine. */
void config_deinit(kycd_config *cfg);

#endif
