/* The configuration keys: one table (name, type, flags, range, default,
 * documentation) that the loader, the printer and the reference all read,
 * and the spelling of a key's name as a file key, a variable or a flag.
 *
 * Must never: hold or print a value (values live in kycd_config), or list a
 * key twice; a key added here is documented by its `desc`, nowhere else. */
#include "io/config_keys.h"

#include <ctype.h>
#include <stddef.h>
#include <string.h>

#include "io/config_internal.h"

#define OFF(field) offsetof(kycd_config, field)

const cfg_entry config_table[] = {
    {"database_url", T_STRING, F_FILE_OK | F_DSN, OFF(database_url), 0, 0, "", 0,
     "libpq conninfo or URI of the database; its password is redacted when printed. Several hosts "
     "with `target_session_attrs=read-write` follow a failover (see "
     "[Failover](reliability.md#failover-a-standby-promoted))",
     "libpq's `PG*` environment"},
    {"database_password", T_STRING, F_SECRET | F_FILE_OK, OFF(database_password), 0, 0, NULL, 0,
     "password, overriding the one in `database_url`", NULL},
    {"db_pool", T_INT, 0, OFF(db_pool), 1, 256, NULL, 8,
     "database connections shared by the request threads", NULL},
    {"db_timeout", T_DURATION, 0, OFF(db_timeout_ms), 1, DAY, NULL, 5 * SEC,
     "deadline to connect, to get a pooled connection, and for every statement and lock wait",
     NULL},
    {"db_committers", T_INT, 0, OFF(db_committers), 0, 64, NULL, 2,
     "group commit: how many committers write deliveries in shared transactions, each taking the "
     "users a hash of `externalUserId` gives it; `0`: one transaction per delivery (see [Group "
     "commit](design.md#group-commit))",
     NULL},
    {"db_batch_max", T_INT, 0, OFF(db_batch_max), 1, 1024, NULL, 64,
     "most deliveries in one transaction, for group commit and the spool replay", NULL},
    {"db_batch_wait_us", T_INT, 0, OFF(db_batch_us), 0, 100000, NULL, 200,
     "microseconds a committer waits for more deliveries before writing a short batch; adds up to "
     "that much to a delivery's latency (`0`: take what is queued)",
     NULL},
    {"listen", T_STRING, 0, OFF(listen), 0, 0, "0.0.0.0:8443", 0,
     "TLS listener, `ADDR:PORT` (IPv6 as `[::]:8443`)", NULL},
    {"http_listen", T_STRING, 0, OFF(http_listen), 0, 0, NULL, 0,
     "optional plain-HTTP listener for a local TLS-terminating proxy; loopback addresses only",
     NULL},
    {"tls_cert", T_STRING, F_LIVE, OFF(tls_cert), 0, 0, NULL, 0,
     "PEM certificate (may also hold the chain)", "required"},
    {"tls_key", T_STRING, F_LIVE, OFF(tls_key), 0, 0, NULL, 0, "PEM private key (ECDSA or RSA)",
     "required"},
    {"tls_chain", T_STRING, F_LIVE, OFF(tls_chain), 0, 0, NULL, 0,
     "PEM intermediate certificates, sent after the certificate", NULL},
    {"tls_client_ca", T_STRING, F_LIVE, OFF(tls_client_ca), 0, 0, NULL, 0,
     "PEM CA bundle: when set, every client of the webhook listener must present a certificate it "
     "signed (mutual TLS), for operators whose proxy or P100 contract provides one; a reload "
     "adds, changes or removes it for new connections; the admin listener never asks for one",
     NULL},
    {"tls_ciphers", T_STRING, 0, OFF(tls_ciphers), 0, 0,
     "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
     "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
     "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
     0, "TLS 1.2 cipher list; TLS 1.3 uses OpenSSL's suites; TLS 1.0/1.1 are never offered", NULL},
    {"threads", T_INT, 0, OFF(threads), 2, 4096, NULL, 256,
     "worker threads (2 to 4,096); each open connection holds one, from its TLS handshake to its "
     "close, so set at least the connections you expect at once (see [What one instance "
     "withstands](reliability.md#what-one-instance-withstands))",
     NULL},
    {"header_timeout", T_DURATION, 0, OFF(header_timeout_ms), 100, 10 * 60 * SEC, NULL, 5 * SEC,
     "the TLS handshake and the request line and headers must arrive within this, or the "
     "connection is closed (headers begun: 408); so a connection that says nothing holds a worker "
     "for at most this long. It is also the longest pause allowed between two reads or writes (a "
     "body that stops for this long is answered 408). Never longer than `request_timeout`",
     NULL},
    {"request_timeout", T_DURATION, 0, OFF(request_timeout_ms), 1, DAY, NULL, 10 * SEC,
     "the whole request, body included, must have arrived by then: a client trickling its body is "
     "answered 408 and cut off",
     NULL},
    {"linger_time", T_DURATION, 0, OFF(linger_ms), 0, 60 * SEC, NULL, 2 * SEC,
     "after an answer that leaves part of the request unread (413, 401, 403, 415, 503 while "
     "draining), how long kycd reads and discards the rest before closing, so the client receives "
     "the answer instead of a reset; `0` closes at once (see [Lingering "
     "close](design.md#lingering-close))",
     NULL},
    {"linger_bytes", T_SIZE, 0, OFF(linger_bytes), 0, 1LL << 30, NULL, 4LL << 20,
     "at most this much unread input is discarded before closing", NULL},
    {"keepalive", T_DURATION, 0, OFF(keepalive_ms), 0, DAY, NULL, 5 * SEC,
     "idle time before a keep-alive connection is closed (it holds a worker while idle); the next "
     "request's headers must also arrive within it",
     NULL},
    {"slow_grace", T_DURATION, 0, OFF(slow_grace_ms), 100, 10 * 60 * SEC, NULL, 1 * SEC,
     "slow clients: a TLS connection's handshake, its headers and its body may each take this "
     "long before `slow_min_rate` applies; once more than half of the workers are busy it shrinks, "
     "to a quarter when all are (see [What one instance "
     "withstands](reliability.md#what-one-instance-withstands))",
     NULL},
    {"slow_min_rate", T_INT, 0, OFF(slow_min_rate), 0, 1LL << 30, NULL, 500,
     "slow clients: after `slow_grace`, a TLS connection must have sent this many bytes a second "
     "(TLS records included) in its handshake, headers and body, or it is cut (headers or body "
     "begun: 408); `0`: only `header_timeout` and `request_timeout` bound it",
     NULL},
    {"webhook_tokens", T_STRING, F_SECRET | F_FILE_OK | F_LIVE, OFF(webhook_tokens), 0, 0, NULL, 0,
     "webhook security tokens, separated by commas or newlines (see above); several at once for "
     "rotation; each 16 to 4,089 characters",
     "required"},
    {"max_body", T_SIZE, 0, OFF(max_body), 1, 16LL << 20, NULL, 64LL << 10,
     "largest accepted body; larger is 413, without reading it", NULL},
    {"allow_cidrs", T_STRING, F_LIVE, OFF(allow_cidrs), 0, 0, "", 0,
     "comma-separated CIDR blocks allowed to post webhooks (P100's addresses), checked against the "
     "TCP peer. A connection from anywhere else is closed as it is accepted, before a worker, a "
     "queue slot or a TLS handshake is spent on it (counted in `/readyz` as `refused_connections`, "
     "logged at most once per 10 s); 127.0.0.1 and ::1 are always let in for local probes of "
     "`/healthz` and `/readyz`, and their webhooks get 403 unless listed",
     "any"},
    {"dedup_window", T_DURATION, 0, OFF(dedup_window_ms), 0, 30 * DAY, NULL, 600 * SEC,
     "a body identical to one received for the same user and kind within this window is a repeat",
     NULL},
    {"reorder_window", T_DURATION, 0, OFF(reorder_window_ms), 0, 30 * DAY, NULL, 300 * SEC,
     "how late a retried webhook can arrive (P100 retries for about 2 min); see [State "
     "rules](design.md#state-rules)",
     NULL},
    {"retry_after", T_SECONDS, 0, OFF(retry_after_s), 1, 3600, NULL, 5,
     "`Retry-After` sent with 503 (whole seconds)", NULL},
    {"shutdown_timeout", T_DURATION, 0, OFF(shutdown_timeout_ms), 1, DAY, NULL, 10 * SEC,
     "grace for in-flight requests after SIGTERM, then exit", NULL},
    {"log_level", T_LOGLEVEL, F_LIVE, OFF(log_level), 0, 0, "info", 0,
     "`debug`, `info`, `warn` or `error`", NULL},
    {"spool_dir", T_STRING, 0, OFF(spool_dir), 0, 0, NULL, 0,
     "local spool for deliveries while the database is unreachable or slower than `db_timeout`; "
     "created 0700; locked by the running kycd. Unset: such deliveries get 503",
     "no spool"},
    {"spool_max", T_SIZE, 0, OFF(spool_max), 1 << 20, 1LL << 40, NULL, 1LL << 30,
     "spool size limit; past it deliveries the database cannot take get 503", NULL},
    {"p100_base_url", T_STRING, 0, OFF(p100_base_url), 0, 0, "https://partner-api-stage.p100.io", 0,
     "P100's Partner API (production: `https://partner-api.p100.io`)", NULL},
    {"p100_api_key", T_STRING, F_SECRET | F_FILE_OK, OFF(p100_api_key), 0, 0, NULL, 0,
     "sent as `x-api-key`; required by the reconciler, `create-kyc` and `status --live`", NULL},
    {"erase_key", T_STRING, F_SECRET | F_FILE_OK, OFF(erase_key), 0, 0, NULL, 0,
     "key of `kycd erase`'s pseudonyms (HMAC-SHA-256; at least 32 characters, e.g. `openssl rand "
     "-hex 32`); the same key gives the same pseudonym for the same user, so keep it as long as "
     "the history (see [Erasure requests](erasure.md))",
     NULL},
    {"p100_ca_file", T_STRING, 0, OFF(p100_ca_file), 0, 0, NULL, 0,
     "extra CA bundle for P100's certificate (the simulator's in tests); hostname verification is "
     "always on",
     "system store"},
    {"p100_status_path", T_STRING, 0, OFF(p100_status_path), 0, 0,
     "/v1/kyc/status/{externalUserId}", 0,
     "Get KYC Status path template (P100 does not name its parameter)", NULL},
    {"p100_timeout", T_DURATION, 0, OFF(p100_timeout_ms), 100, 10 * 60 * SEC, NULL, 10 * SEC,
     "deadline of one P100 call; connecting may take at most half", NULL},
    {"p100_rate", T_INT, 0, OFF(p100_rate), 1, 100000, NULL, 10,
     "P100 calls per second, at most, for this kycd", NULL},
    {"p100_concurrency", T_INT, 0, OFF(p100_concurrency), 1, 512, NULL, 64,
     "P100 calls in flight at once, at most: the rate paces the calls, so in flight settles at "
     "rate × P100's latency by itself below it; halved when P100 signals congestion (429, P501, "
     "5xx, timeouts), then grown by one per round trip",
     NULL},
    {"reconcile", T_BOOL, 0, OFF(reconcile), 0, 1, NULL, 1,
     "run the reconciler inside `kycd serve` (off: use `kycd reconcile --once` from cron, or "
     "nothing)",
     NULL},
    {"reconcile_interval", T_DURATION, 0, OFF(reconcile_interval_ms), 10, DAY, NULL, 30 * SEC,
     "how often an idle reconciler looks for due users; how long it pauses after a 401", NULL},
    {"pending_after", T_DURATION, 0, OFF(pending_after_ms), 0, 30 * DAY, NULL, 600 * SEC,
     "a pending user unchanged this long is checked with P100, and again every `pending_after` "
     "while pending",
     NULL},
    {"webhook_overdue", T_DURATION, 0, OFF(webhook_overdue_ms), SEC, 30 * DAY, NULL, 1800 * SEC,
     "a user created with `kycd create-kyc`, or pending, that has had no KYC webhook for this "
     "long is overdue: counted in `kycd_webhooks_overdue_users` (alert KycdWebhooksOverdue), and "
     "a correction the reconciler then makes is counted with cause `webhook_overdue` (P100's "
     "provider answers within about 20 min; see [Webhooks that never come]"
     "(design.md#webhooks-that-never-come))",
     NULL},
    {"reconcile_max_failures", T_INT, 0, OFF(reconcile_max_failures), 1, 1000, NULL, 10,
     "transient failures in a row after which a user is flagged for a person", NULL},
    {"reconcile_backoff_min", T_DURATION, 0, OFF(reconcile_backoff_min_ms), 10, DAY, NULL, 10 * SEC,
     "first wait before retrying a user after a transient failure; doubles each time, with jitter",
     NULL},
    {"reconcile_backoff_max", T_DURATION, 0, OFF(reconcile_backoff_max_ms), 100, 30 * DAY, NULL,
     3600 * SEC, "longest wait between two retries of one user", NULL},
    {"recheck_rejected_after", T_DURATION, 0, OFF(recheck_rejected_after_ms), 100, 30 * DAY, NULL,
     3600 * SEC,
     "first re-check of a rejected user with P100, after the last word about it (state change or "
     "webhook); then each time after twice the time since that word",
     NULL},
    {"recheck_rejected_for", T_DURATION, 0, OFF(recheck_rejected_for_ms), 0, 365 * DAY, NULL,
     30 * DAY, "re-check a rejected user until this long after the last word about it; `0`: never",
     NULL},
    {"recheck_verified_every", T_DURATION, 0, OFF(recheck_verified_every_ms), 0, 365 * DAY, NULL,
     30 * DAY,
     "re-check each verified user once per interval, in a slot given by a hash of its id (spread "
     "evenly); `0`: never",
     NULL},
    {"recheck_share", T_INT, 0, OFF(recheck_share), 0, 100, NULL, 20,
     "percent of `p100_rate` re-checks may use, and only what held and pending users leave; `0`: "
     "no re-checks",
     NULL},
    {"admin_listen", T_STRING, 0, OFF(admin_listen), 0, 0, "127.0.0.1:8444", 0,
     "the admin listener (`/metrics`, `/status`, `/healthz`, `/readyz` with details; see "
     "\"Monitoring\"): plain HTTP on a loopback address, TLS with `tls_cert`/`tls_key`/`tls_chain` "
     "on any other; its own CivetWeb context with 4 threads, so a flood on the public port cannot "
     "starve it. `off` or empty: no admin listener",
     NULL},
    {"admin_allow_cidrs", T_STRING, 0, OFF(admin_allow_cidrs), 0, 0, "127.0.0.0/8,::1/128", 0,
     "source networks allowed on the admin listener (exactly this list: loopback is not added); "
     "others are closed at accept, counted in "
     "`kycd_connections_refused_total{listener=\"admin\"}`. "
     "Empty: any source",
     NULL},
    {"retention", T_DURATION, 0, OFF(retention_ms), 0, 100 * 366 * DAY, NULL, 0,
     "`kycd retention` drops the history partitions wholly older than this (e.g. `1830d`); `0`: "
     "keep everything (see [Partitions, retention and "
     "archive](analysts.md#partitions-retention-and-archive))",
     NULL},
    {"partitions_every", T_DURATION, 0, OFF(partitions_every_ms), 1000, DAY, NULL, 3600 * SEC,
     "how often `serve` creates the history partitions of the current month and the next two, if "
     "missing (also once at start)",
     NULL},
};

_Static_assert(sizeof config_table / sizeof config_table[0] == CONFIG_NKEYS,
               "CONFIG_NKEYS in config_internal.h must count the keys of config_table");

/* The name of a key as spelled in a layer: `max_body`, `KYCD_MAX_BODY`,
 * `--max-body`, with `_file` / `_FILE` / `-file` appended for is_file. */
void config_form_name(enum layer layer, const cfg_entry *e, int is_file, char *buf, size_t len)
{
    const char *prefix = layer == L_ENV ? "KYCD_" : layer == L_FLAG ? "--" : "";
    const char *suffix = !is_file          ? ""
                         : layer == L_ENV  ? "_FILE"
                         : layer == L_FLAG ? "-file"
                                           : "_file";
    size_t o = 0;
    for (const char *p = prefix; *p && o + 1 < len; p++)
        buf[o++] = *p;
    for (const char *p = e->key; *p && o + 1 < len; p++) {
        char c = *p;
        if (layer == L_ENV)
            c = (char)toupper((unsigned char)c);
        else if (layer == L_FLAG && c == '_')
            c = '-';
        buf[o++] = c;
    }
    for (const char *p = suffix; *p && o + 1 < len; p++)
        buf[o++] = *p;
    buf[o] = '\0';
}

/* The entry named `name[0..n)` in a layer's spelling, or NULL. */
const cfg_entry *config_lookup(enum layer layer, const char *name, size_t n, int *is_file)
{
    char buf[64];
    for (size_t i = 0; i < CONFIG_NKEYS; i++) {
        for (int f = 0; f <= 1; f++) {
            if (f && !(config_table[i].flags & F_FILE_OK))
                continue;
            config_form_name(layer, &config_table[i], f, buf, sizeof buf);
            if (strlen(buf) == n && memcmp(buf, name, n) == 0) {
                *is_file = f;
                return &config_table[i];
            }
        }
    }
    return NULL;
}

/* Accepts the file key, the flag (with or without "--") or the variable. */
int config_key_is_secret(const char *name)
{
    char buf[64];
    size_t n = 0;
    if (name == NULL)
        return 0;
    if (strncmp(name, "--", 2) == 0)
        name += 2;
    else if (strncmp(name, "KYCD_", 5) == 0)
        name += 5;
    for (; *name != '\0'; name++) {
        if (n + 1 >= sizeof buf)
            return 0;
        char c = *name == '-' ? '_' : (char)tolower((unsigned char)*name);
        buf[n++] = c;
    }
    buf[n] = '\0';
    int is_file = 0;
    const cfg_entry *e = config_lookup(L_FILE, buf, n, &is_file);
    return e != NULL && !is_file && (e->flags & F_SECRET) != 0;
}
