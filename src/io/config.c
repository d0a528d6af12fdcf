/* Configuration: the table of keys and the loader that layers defaults, a
 * `key = value` file, KYCD_* environment variables and command-line flags.
 *
 * Must never: put a secret's value into an error message or the printed
 * configuration, accept a secret on the command line, or ignore an unknown
 * key, variable or flag (a typo must stop the daemon, not run it with a
 * default). Secret strings are wiped before their memory is freed. */
#include "io/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/units.h"
#include "core/cidr.h"
#include "core/token.h"

enum cfg_type {
    T_STRING,
    T_INT,      /* int64_t within [min, max] */
    T_SIZE,     /* bytes within [min, max] */
    T_DURATION, /* milliseconds within [min, max] */
    T_SECONDS,  /* a duration in whole seconds, stored as seconds */
    T_BOOL,     /* 0 or 1, stored as int64_t */
    T_LOGLEVEL, /* string accepted by klog_level_parse */
};

enum {
    F_SECRET = 1,  /* refused on the command line, printed as (redacted) */
    F_FILE_OK = 2, /* a `<key>_file` form reads the value from a file */
    F_DSN = 4,     /* libpq conninfo: its password is redacted when printed */
    F_LIVE = 8,    /* a reload (SIGHUP) applies it to a running kycd serve */
};

/* Where a value came from; decides the spelling of names. */
enum layer { L_FILE, L_ENV, L_FLAG };

typedef struct cfg_entry {
    const char *key;
    enum cfg_type type;
    int flags;
    size_t off;       /* into kycd_config */
    int64_t min, max; /* numbers, in the stored unit */
    const char *sdef; /* strings: default, NULL = unset */
    int64_t ndef;     /* numbers: default, in the stored unit */
    /* The documentation: the README's table and kycd.conf(5) are printed
     * from these (config_reference). Markdown: `code` and [text](#anchor). */
    const char *desc;
    const char *note; /* shown after the default, in parentheses; NULL: none */
} cfg_entry;

#define OFF(field) offsetof(kycd_config, field)
#define SEC 1000LL
#define DAY (86400LL * SEC)

static const cfg_entry table[] = {
    {"database_url", T_STRING, F_FILE_OK | F_DSN, OFF(database_url), 0, 0, "", 0,
     "libpq conninfo or URI of the database; its password is redacted when printed. Several hosts "
     "with `target_session_attrs=read-write` follow a failover (see "
     "[Failover](#failover-a-standby-promoted))",
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
     "commit](#group-commit))",
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
    {"tls_client_ca", T_STRING, 0, OFF(tls_client_ca), 0, 0, NULL, 0,
     "PEM CA bundle: when set, every client must present a certificate it signed (mutual TLS), for "
     "operators whose proxy or P100 contract provides one",
     NULL},
    {"tls_ciphers", T_STRING, 0, OFF(tls_ciphers), 0, 0,
     "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
     "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
     "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305",
     0, "TLS 1.2 cipher list; TLS 1.3 uses OpenSSL's suites; TLS 1.0/1.1 are never offered", NULL},
    {"threads", T_INT, 0, OFF(threads), 2, 4096, NULL, 256,
     "worker threads (2 to 4,096); each open connection holds one, from its TLS handshake to its "
     "close, so set at least the connections you expect at once; an idle worker costs about 19 KiB "
     "of memory (see [What one instance withstands](#what-one-instance-withstands))",
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
     "the answer instead of a reset; `0` closes at once (see [Lingering close](#lingering-close))",
     NULL},
    {"linger_bytes", T_SIZE, 0, OFF(linger_bytes), 0, 1LL << 30, NULL, 4LL << 20,
     "at most this much unread input is discarded before closing", NULL},
    {"keepalive", T_DURATION, 0, OFF(keepalive_ms), 0, DAY, NULL, 5 * SEC,
     "idle time before a keep-alive connection is closed (it holds a worker while idle); the next "
     "request's headers must also arrive within it",
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
     "rules](#state-rules)",
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
    {"p100_concurrency", T_INT, 0, OFF(p100_concurrency), 1, 512, NULL, 16,
     "P100 calls in flight at once; to use the whole rate, at least rate × P100's latency", NULL},
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
     "keep everything (see [Partitions, retention and archive](#partitions-retention-and-archive))",
     NULL},
    {"partitions_every", T_DURATION, 0, OFF(partitions_every_ms), 1000, DAY, NULL, 3600 * SEC,
     "how often `serve` creates the history partitions of the current month and the next two, if "
     "missing (also once at start)",
     NULL},
};

#define NKEYS (sizeof table / sizeof table[0])

/* A file read through `<key>_file` larger than this is a mistake. */
#define VALUE_FILE_MAX (1 << 20)

static char **str_slot(kycd_config *cfg, const cfg_entry *e)
{
    return (char **)(void *)((char *)cfg + e->off);
}

static const char *str_get(const kycd_config *cfg, const cfg_entry *e)
{
    return *(char *const *)(const void *)((const char *)cfg + e->off);
}

static int64_t *num_slot(kycd_config *cfg, const cfg_entry *e)
{
    return (int64_t *)(void *)((char *)cfg + e->off);
}

static int64_t num_get(const kycd_config *cfg, const cfg_entry *e)
{
    return *(const int64_t *)(const void *)((const char *)cfg + e->off);
}

static int is_str_type(enum cfg_type t)
{
    return t == T_STRING || t == T_LOGLEVEL;
}

/* Every string is wiped: database_url may hold a password too. */
static void str_free(char *s)
{
    if (s == NULL)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

static void str_replace(char **slot, char *s)
{
    str_free(*slot);
    *slot = s;
}

/* The name of a key as spelled in a layer: `max_body`, `KYCD_MAX_BODY`,
 * `--max-body`, with `_file` / `_FILE` / `-file` appended for is_file. */
static void form_name(enum layer layer, const cfg_entry *e, int is_file, char *buf, size_t len)
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
static const cfg_entry *lookup(enum layer layer, const char *name, size_t n, int *is_file)
{
    char buf[64];
    for (size_t i = 0; i < NKEYS; i++) {
        for (int f = 0; f <= 1; f++) {
            if (f && !(table[i].flags & F_FILE_OK))
                continue;
            form_name(layer, &table[i], f, buf, sizeof buf);
            if (strlen(buf) == n && memcmp(buf, name, n) == 0) {
                *is_file = f;
                return &table[i];
            }
        }
    }
    return NULL;
}

static int check_range(const cfg_entry *e, int64_t v, const char *where, const char *shown,
                       kerr *err)
{
    if (v >= e->min && v <= e->max)
        return 0;
    char lo[32], hi[32];
    if (e->type == T_DURATION || e->type == T_SECONDS) {
        int64_t m = e->type == T_SECONDS ? SEC : 1;
        units_format_duration(e->min * m, lo, sizeof lo);
        units_format_duration(e->max * m, hi, sizeof hi);
    } else {
        snprintf(lo, sizeof lo, "%lld", (long long)e->min);
        snprintf(hi, sizeof hi, "%lld", (long long)e->max);
    }
    return kerr_set(err, KERR_INVALID, "%s: bad value '%s' for %s: out of range (%s to %s%s)",
                    where, shown, e->key, lo, hi, e->type == T_SIZE ? " bytes" : "");
}

/* Parse `value` for entry e and store it. `where` says which line, variable
 * or flag it came from. Secret values never reach a message. */
static int apply_value(kycd_config *cfg, const cfg_entry *e, const char *value, const char *where,
                       kerr *err)
{
    kerr perr;
    int rc = 0;
    int64_t v = 0;
    int b = 0;
    kerr_clear(&perr);
    /* For secrets and the conninfo the value is not quoted; neither is
     * validated here today, but the rule must hold for whoever adds a check. */
    int hide = (e->flags & (F_SECRET | F_DSN)) != 0;
    const char *shown = hide ? "(not shown)" : value;

    switch (e->type) {
    case T_STRING:
    case T_LOGLEVEL: {
        if (e->type == T_LOGLEVEL && klog_level_parse(value) < 0) {
            rc = kerr_set(err, KERR_INVALID,
                          "%s: bad value '%s' for %s: use debug, info, warn or error", where, shown,
                          e->key);
            goto out;
        }
        /* An empty value unsets a key that is unset by default, so that a
         * later layer can take back an earlier one's setting. */
        char *s = NULL;
        if (*value != '\0' || e->sdef != NULL) {
            s = strdup(value);
            if (s == NULL) {
                rc = kerr_set(err, KERR_NOMEM, "%s: out of memory", where);
                goto out;
            }
        }
        str_replace(str_slot(cfg, e), s);
        goto out;
    }
    case T_INT:
        rc = units_int(value, e->min, e->max, &v, &perr);
        break;
    case T_SIZE:
        rc = units_size(value, &v, &perr);
        break;
    case T_DURATION:
    case T_SECONDS:
        rc = units_duration_ms(value, &v, &perr);
        if (rc == 0 && e->type == T_SECONDS) {
            if (v % SEC != 0)
                rc = kerr_set(&perr, KERR_INVALID, "use whole seconds");
            else
                v /= SEC;
        }
        break;
    case T_BOOL:
        rc = units_bool(value, &b, &perr);
        v = b;
        break;
    }
    if (rc != 0) {
        rc = kerr_set(err, rc, "%s: bad value '%s' for %s: %s", where, shown, e->key, perr.msg);
        goto out;
    }
    rc = check_range(e, v, where, shown, err);
    if (rc != 0)
        goto out;
    *num_slot(cfg, e) = v;
out:
    return rc;
}

/* Read a value file whole, trailing newlines and CRs stripped. The buffer
 * grows by copying so that no unwiped copy of a secret is left behind. */
static int read_value_file(const cfg_entry *e, const char *path, const char *where, char **out,
                           kerr *err)
{
    int rc = 0;
    size_t cap = 4096, len = 0;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        rc = kerr_set(err, KERR_IO, "%s: %s_file: cannot read '%s': %s", where, e->key, path,
                      strerror(errno));
        goto out;
    }
    buf = malloc(cap);
    if (buf == NULL) {
        rc = kerr_set(err, KERR_NOMEM, "%s: out of memory", where);
        goto out;
    }
    for (;;) {
        if (len + 1 == cap) {
            if (cap > VALUE_FILE_MAX) {
                rc = kerr_set(err, KERR_TOOBIG, "%s: %s_file: '%s' is larger than %d bytes", where,
                              e->key, path, VALUE_FILE_MAX);
                goto out;
            }
            char *nb = malloc(cap * 2);
            if (nb == NULL) {
                rc = kerr_set(err, KERR_NOMEM, "%s: out of memory", where);
                goto out;
            }
            memcpy(nb, buf, len);
            explicit_bzero(buf, cap);
            free(buf);
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - 1 - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        rc = kerr_set(err, KERR_IO, "%s: %s_file: cannot read '%s': %s", where, e->key, path,
                      strerror(errno));
        goto out;
    }
    buf[len] = '\0';
    if (memchr(buf, '\0', len) != NULL) {
        rc = kerr_set(err, KERR_INVALID, "%s: %s_file: '%s' contains a NUL byte", where, e->key,
                      path);
        goto out;
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    *out = buf;
    buf = NULL;
out:
    if (buf != NULL) {
        explicit_bzero(buf, cap);
        free(buf);
    }
    if (f != NULL)
        fclose(f);
    return rc;
}

/* One setting from one layer: `raw` is the value, or for is_file the path
 * of the file holding it. `seen` (one per layer) refuses a key given both
 * plainly and as `_file` in the same layer: which one wins would depend on
 * the order of the environment. */
static int apply_setting(kycd_config *cfg, unsigned char *seen, enum layer layer,
                         const cfg_entry *e, int is_file, const char *raw, const char *where,
                         kerr *err)
{
    int rc = 0;
    char *content = NULL;
    size_t idx = (size_t)(e - table);
    unsigned char bit = is_file ? 2 : 1;
    if (seen[idx] & (bit ^ 3)) {
        char a[64], b[64];
        form_name(layer, e, 0, a, sizeof a);
        form_name(layer, e, 1, b, sizeof b);
        rc = kerr_set(err, KERR_CONFIG, "%s: %s and %s both given: use one", where, a, b);
        goto out;
    }
    seen[idx] |= bit;
    if (is_file) {
        rc = read_value_file(e, raw, where, &content, err);
        if (rc != 0)
            goto out;
        raw = content;
    }
    rc = apply_value(cfg, e, raw, where, err);
out:
    str_free(content);
    return rc;
}

static int set_defaults(kycd_config *cfg, kerr *err)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const cfg_entry *e = &table[i];
        if (!is_str_type(e->type)) {
            *num_slot(cfg, e) = e->ndef;
            continue;
        }
        if (e->sdef == NULL)
            continue;
        char *s = strdup(e->sdef);
        if (s == NULL)
            return kerr_set(err, KERR_NOMEM, "config defaults: out of memory");
        *str_slot(cfg, e) = s;
    }
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* `key = value` lines; `#` starts a comment only at the beginning of a line,
 * because values (tokens, passwords, URLs) may contain `#`. */
static int load_file(kycd_config *cfg, const char *path, kerr *err)
{
    int rc = 0;
    unsigned char seen[NKEYS] = {0};
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        rc = kerr_set(err, KERR_IO, "config file %s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL || eq == s) {
            /* The line is not quoted back: it may be a stray secret. */
            rc = kerr_set(err, KERR_CONFIG, "config file %s line %d: expected 'key = value'", path,
                          lineno);
            goto out;
        }
        *eq = '\0';
        char *key = trim(s);
        char *value = trim(eq + 1);
        size_t vn = strlen(value);
        if (vn >= 2 && value[0] == '"' && value[vn - 1] == '"') {
            value[vn - 1] = '\0';
            value++;
        }
        int is_file = 0;
        const cfg_entry *e = lookup(L_FILE, key, strlen(key), &is_file);
        if (e == NULL) {
            rc = kerr_set(err, KERR_CONFIG, "config file %s line %d: unknown key '%.64s'", path,
                          lineno, key);
            goto out;
        }
        char where[320];
        snprintf(where, sizeof where, "config file %.200s line %d", path, lineno);
        rc = apply_setting(cfg, seen, L_FILE, e, is_file, value, where, err);
        if (rc != 0)
            goto out;
    }
    if (ferror(f)) {
        rc = kerr_set(err, KERR_IO, "config file %s: read error: %s", path, strerror(errno));
        goto out;
    }
out:
    if (line != NULL) {
        explicit_bzero(line, cap);
        free(line);
    }
    if (f != NULL)
        fclose(f);
    return rc;
}

static const char *env_get(char **envp, const char *name)
{
    size_t n = strlen(name);
    for (char **p = envp; p != NULL && *p != NULL; p++)
        if (strncmp(*p, name, n) == 0 && (*p)[n] == '=')
            return *p + n + 1;
    return NULL;
}

static int load_env(kycd_config *cfg, char **envp, kerr *err)
{
    unsigned char seen[NKEYS] = {0};
    for (char **p = envp; p != NULL && *p != NULL; p++) {
        const char *s = *p;
        const char *eq = strchr(s, '=');
        if (strncmp(s, "KYCD_", 5) != 0 || eq == NULL)
            continue;
        size_t n = (size_t)(eq - s);
        if (n == strlen("KYCD_CONFIG") && memcmp(s, "KYCD_CONFIG", n) == 0)
            continue;
        int is_file = 0;
        const cfg_entry *e = lookup(L_ENV, s, n, &is_file);
        if (e == NULL)
            return kerr_set(err, KERR_CONFIG, "unknown environment variable %.*s", (int)n, s);
        char where[96];
        snprintf(where, sizeof where, "environment %.*s", (int)n, s);
        int rc = apply_setting(cfg, seen, L_ENV, e, is_file, eq + 1, where, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Take the flag at argv[*i] (and its value, which may be the next element).
 * *e is NULL for --config. Secrets are refused before their value is looked
 * at; unknown flags are named without anything after '='. */
static int argv_next(int argc, char **argv, int *i, const cfg_entry **e, int *is_file,
                     const char **value, kerr *err)
{
    const char *arg = argv[*i];
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
        return kerr_set(err, KERR_CONFIG, "unexpected argument '%.64s'", arg);
    const char *eq = strchr(arg, '=');
    size_t n = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    *is_file = 0;
    if (n == strlen("--config") && memcmp(arg, "--config", n) == 0) {
        *e = NULL;
    } else {
        *e = lookup(L_FLAG, arg, n, is_file);
        if (*e == NULL)
            return kerr_set(err, KERR_CONFIG, "unknown flag '%.*s'", (int)(n > 64 ? 64 : n), arg);
        if (((*e)->flags & F_SECRET) && !*is_file) {
            char flag[64], env[64];
            form_name(L_FLAG, *e, 0, flag, sizeof flag);
            form_name(L_ENV, *e, 1, env, sizeof env);
            return kerr_set(err, KERR_CONFIG,
                            "%s is a secret: pass it through %s or the config file, not the "
                            "command line",
                            flag, env);
        }
    }
    if (eq != NULL) {
        *value = eq + 1;
    } else if (*i + 1 < argc) {
        *value = argv[++*i];
    } else {
        return kerr_set(err, KERR_CONFIG, "flag %.*s needs a value", (int)(n > 64 ? 64 : n), arg);
    }
    return 0;
}

/* First pass: validate every flag and find --config (the last one wins). */
static int scan_argv(int argc, char **argv, const char **config_path, kerr *err)
{
    for (int i = 0; i < argc; i++) {
        const cfg_entry *e;
        const char *value;
        int is_file;
        int rc = argv_next(argc, argv, &i, &e, &is_file, &value, err);
        if (rc != 0)
            return rc;
        if (e == NULL)
            *config_path = value;
    }
    return 0;
}

static int load_argv(kycd_config *cfg, int argc, char **argv, kerr *err)
{
    unsigned char seen[NKEYS] = {0};
    for (int i = 0; i < argc; i++) {
        const cfg_entry *e;
        const char *value;
        int is_file;
        int rc = argv_next(argc, argv, &i, &e, &is_file, &value, err);
        if (rc != 0)
            return rc;
        if (e == NULL)
            continue;
        char where[96];
        char name[64];
        form_name(L_FLAG, e, is_file, name, sizeof name);
        snprintf(where, sizeof where, "flag %s", name);
        rc = apply_setting(cfg, seen, L_FLAG, e, is_file, value, where, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int config_load(kycd_config *cfg, char **envp, int argc, char **argv, kerr *err)
{
    int rc;
    memset(cfg, 0, sizeof *cfg);
    rc = set_defaults(cfg, err);
    if (rc != 0)
        goto out;
    const char *path = env_get(envp, "KYCD_CONFIG");
    rc = scan_argv(argc, argv, &path, err);
    if (rc != 0)
        goto out;
    if (path != NULL && *path != '\0') {
        rc = load_file(cfg, path, err);
        if (rc != 0)
            goto out;
    }
    rc = load_env(cfg, envp, err);
    if (rc != 0)
        goto out;
    rc = load_argv(cfg, argc, argv, err);
out:
    if (rc != 0)
        config_deinit(cfg);
    return rc;
}

/* HOST:PORT with an IPv4 literal, or [IPv6]:PORT; port 1..65535. */
static int check_addr(const char *key, const char *v, int loopback_only, kerr *err)
{
    char host[INET6_ADDRSTRLEN];
    const char *port;
    size_t hn;
    int loopback;
    if (v == NULL || *v == '\0')
        return kerr_set(err, KERR_CONFIG, "%s is not set", key);
    if (v[0] == '[') {
        const char *rb = strchr(v, ']');
        struct in6_addr a6;
        if (rb == NULL || rb[1] != ':')
            goto bad;
        hn = (size_t)(rb - v - 1);
        if (hn == 0 || hn >= sizeof host)
            goto bad;
        memcpy(host, v + 1, hn);
        host[hn] = '\0';
        if (inet_pton(AF_INET6, host, &a6) != 1)
            goto bad;
        loopback = memcmp(&a6, &in6addr_loopback, sizeof a6) == 0;
        port = rb + 2;
    } else {
        const char *colon = strchr(v, ':');
        struct in_addr a4;
        if (colon == NULL || strchr(colon + 1, ':') != NULL)
            goto bad;
        hn = (size_t)(colon - v);
        if (hn == 0 || hn >= sizeof host)
            goto bad;
        memcpy(host, v, hn);
        host[hn] = '\0';
        if (inet_pton(AF_INET, host, &a4) != 1)
            goto bad;
        loopback = (ntohl(a4.s_addr) >> 24) == 127;
        port = colon + 1;
    }
    /* units_int would also take "+80" or " 80" (strtoll); a port is digits. */
    if (*port == '\0' || strspn(port, "0123456789") != strlen(port))
        goto bad;
    int64_t p;
    if (units_int(port, 1, 65535, &p, NULL) != 0)
        goto bad;
    if (loopback_only && !loopback)
        return kerr_set(err, KERR_CONFIG,
                        "%s '%s' is not a loopback address (127.0.0.0/8 or [::1]): plain HTTP "
                        "is only for a proxy on this host",
                        key, v);
    return 0;
bad:
    return kerr_set(err, KERR_CONFIG,
                    "%s '%.80s' is not HOST:PORT (an IPv4 address, or [IPv6]:PORT; port 1 to "
                    "65535)",
                    key, v);
}

/* A CIDR list key: KERR_CONFIG with a message naming the key. */
static int parse_cidrs(const char *key, const char *v, cidr_list *out, kerr *err)
{
    if (cidr_list_parse(out, v, err) == 0)
        return 0;
    kerr_wrap(err, "%s", key);
    if (err != NULL)
        err->code = KERR_CONFIG;
    return KERR_CONFIG;
}

int config_check_serve(kycd_config *cfg, kerr *err)
{
    int rc = 0;
    token_set tokens;
    cidr_list cidrs;
    if (cfg->webhook_tokens == NULL || cfg->webhook_tokens[0] == '\0') {
        rc = kerr_set(err, KERR_CONFIG,
                      "no webhook token configured (KYCD_WEBHOOK_TOKENS or "
                      "KYCD_WEBHOOK_TOKENS_FILE): refusing to start");
        goto out;
    }
    /* token_set_parse promises never to quote a token in its message. */
    rc = token_set_parse(&tokens, cfg->webhook_tokens, err);
    if (rc != 0) {
        kerr_wrap(err, "webhook_tokens");
        rc = KERR_CONFIG;
        if (err != NULL)
            err->code = rc;
        goto out;
    }
    if (cfg->tls_cert == NULL || cfg->tls_cert[0] == '\0') {
        rc = kerr_set(err, KERR_CONFIG,
                      "tls_cert is not set (KYCD_TLS_CERT or --tls-cert): refusing to start");
        goto out;
    }
    if (cfg->tls_key == NULL || cfg->tls_key[0] == '\0') {
        rc = kerr_set(err, KERR_CONFIG,
                      "tls_key is not set (KYCD_TLS_KEY or --tls-key): refusing to start");
        goto out;
    }
    rc = check_addr("listen", cfg->listen, 0, err);
    if (rc != 0)
        goto out;
    if (cfg->http_listen != NULL && cfg->http_listen[0] != '\0') {
        rc = check_addr("http_listen", cfg->http_listen, 1, err);
        if (rc != 0)
            goto out;
    }
    cfg->admin_on = cfg->admin_listen != NULL && cfg->admin_listen[0] != '\0' &&
                    strcmp(cfg->admin_listen, "off") != 0;
    if (cfg->admin_on) {
        rc = check_addr("admin_listen", cfg->admin_listen, 0, err);
        if (rc != 0)
            goto out;
        cfg->admin_plain = check_addr("admin_listen", cfg->admin_listen, 1, NULL) == 0;
        rc = parse_cidrs("admin_allow_cidrs", cfg->admin_allow_cidrs, &cfg->admin_allow, err);
        if (rc != 0)
            goto out;
    }
    rc = parse_cidrs("allow_cidrs", cfg->allow_cidrs, &cidrs, err);
    if (rc != 0)
        goto out;
    cfg->tokens = tokens;
    cfg->allow = cidrs;
out:
    explicit_bzero(&tokens, sizeof tokens);
    return rc;
}

static int is_password_kw(const char *s, size_t n)
{
    return n == 8 && strncasecmp(s, "password", 8) == 0;
}

/* URI query `?a=b&password=x`: the password's value becomes ***. */
static int redact_query(const char *q, kbuf *out)
{
    int rc = 0;
    while (rc == 0 && *q != '\0') {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        if (eq != NULL && is_password_kw(q, (size_t)(eq - q)))
            rc = kbuf_appendf(out, "%.*s***", (int)(eq + 1 - q), q);
        else
            rc = kbuf_append(out, q, n);
        q += n;
        if (rc == 0 && *q == '&') {
            rc = kbuf_append(out, "&", 1);
            q++;
        }
    }
    return rc;
}

/* libpq keyword/value form: `host=x password=secret` or password='a b'. */
static int redact_kv(const char *p, kbuf *out)
{
    int rc = 0;
    while (rc == 0 && *p != '\0') {
        if (isspace((unsigned char)*p)) {
            rc = kbuf_append(out, p++, 1);
            continue;
        }
        const char *kw = p;
        while (*p != '\0' && *p != '=' && !isspace((unsigned char)*p))
            p++;
        size_t kn = (size_t)(p - kw);
        const char *q = p;
        while (isspace((unsigned char)*q))
            q++;
        if (*q != '=') {
            rc = kbuf_append(out, kw, kn);
            continue;
        }
        q++;
        while (isspace((unsigned char)*q))
            q++;
        /* keyword, '=' and the spaces around it */
        rc = kbuf_append(out, kw, (size_t)(q - kw));
        if (rc != 0)
            break;
        const char *v = q;
        int quoted = *q == '\'';
        if (quoted) {
            q++;
            while (*q != '\0' && *q != '\'') {
                if (*q == '\\' && q[1] != '\0')
                    q++;
                q++;
            }
            if (*q == '\'')
                q++;
        } else {
            while (*q != '\0' && !isspace((unsigned char)*q)) {
                if (*q == '\\' && q[1] != '\0')
                    q++;
                q++;
            }
        }
        if (is_password_kw(kw, kn))
            rc = kbuf_append(out, quoted ? "'***'" : "***", quoted ? 5 : 3);
        else
            rc = kbuf_append(out, v, (size_t)(q - v));
        p = q;
    }
    return rc;
}

/* database_url with any password replaced by ***. In the URI form the
 * userinfo is taken to end at the last '@', so an unescaped '@' or '/' in a
 * password is still hidden (at worst too much is hidden). */
static int redact_dsn(const char *in, kbuf *out)
{
    size_t skip = 0;
    if (strncasecmp(in, "postgresql://", 13) == 0)
        skip = 13;
    else if (strncasecmp(in, "postgres://", 11) == 0)
        skip = 11;
    if (skip == 0)
        return redact_kv(in, out);
    const char *rest = in + skip;
    const char *at = strrchr(rest, '@');
    const char *colon = at != NULL ? memchr(rest, ':', (size_t)(at - rest)) : NULL;
    int rc;
    if (colon != NULL) {
        rc = kbuf_appendf(out, "%.*s***", (int)(colon + 1 - in), in);
        rest = at;
    } else {
        rc = kbuf_append(out, in, skip);
    }
    if (rc != 0)
        return rc;
    const char *q = strchr(rest, '?');
    if (q == NULL)
        return kbuf_append(out, rest, strlen(rest));
    rc = kbuf_append(out, rest, (size_t)(q + 1 - rest));
    if (rc != 0)
        return rc;
    return redact_query(q + 1, out);
}

int config_diff(const kycd_config *a, const kycd_config *b, int live, char *out, size_t cap)
{
    size_t o = 0;
    int n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < NKEYS; i++) {
        const cfg_entry *e = &table[i];
        if (!(e->flags & F_LIVE) != !live)
            continue;
        int same;
        if (e->type == T_STRING || e->type == T_LOGLEVEL) {
            const char *x = str_get(a, e), *y = str_get(b, e);
            same = (x == NULL && y == NULL) || (x != NULL && y != NULL && strcmp(x, y) == 0);
        } else {
            same = num_get(a, e) == num_get(b, e);
        }
        if (same)
            continue;
        n++;
        int w = snprintf(out + o, cap - o, "%s%s", o ? "," : "", e->key);
        if (w > 0 && (size_t)w < cap - o)
            o += (size_t)w;
    }
    return n;
}

int config_key_is_live(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(table[i].key, name) == 0)
            return (table[i].flags & F_LIVE) != 0;
    return 0;
}

void config_print(const kycd_config *cfg, FILE *out)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const cfg_entry *e = &table[i];
        char tmp[32];
        const char *s;
        switch (e->type) {
        case T_STRING:
        case T_LOGLEVEL:
            s = str_get(cfg, e);
            if (e->flags & F_SECRET) {
                fprintf(out, "%s = %s\n", e->key, s != NULL && *s ? "(redacted)" : "(unset)");
            } else if (s == NULL) {
                fprintf(out, "%s = (unset)\n", e->key);
            } else if (*s == '\0') {
                fprintf(out, "%s = \"\"\n", e->key);
            } else if (e->flags & F_DSN) {
                kbuf b;
                kbuf_init(&b);
                /* Fail closed: if redaction cannot be done, show nothing. */
                if (redact_dsn(s, &b) == 0)
                    fprintf(out, "%s = %s\n", e->key, kbuf_str(&b));
                else
                    fprintf(out, "%s = (redacted)\n", e->key);
                if (b.data != NULL)
                    explicit_bzero(b.data, b.cap);
                kbuf_deinit(&b);
            } else {
                fprintf(out, "%s = %s\n", e->key, s);
            }
            break;
        case T_INT:
        case T_SIZE:
            fprintf(out, "%s = %lld\n", e->key, (long long)num_get(cfg, e));
            break;
        case T_DURATION:
            units_format_duration(num_get(cfg, e), tmp, sizeof tmp);
            fprintf(out, "%s = %s\n", e->key, tmp);
            break;
        case T_SECONDS:
            units_format_duration(num_get(cfg, e) * SEC, tmp, sizeof tmp);
            fprintf(out, "%s = %s\n", e->key, tmp);
            break;
        case T_BOOL:
            fprintf(out, "%s = %s\n", e->key, num_get(cfg, e) ? "on" : "off");
            break;
        }
    }
}

void config_deinit(kycd_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < NKEYS; i++)
        if (is_str_type(table[i].type))
            str_replace(str_slot(cfg, &table[i]), NULL);
    /* digests of the tokens: not secrets, but no reason to leave them */
    explicit_bzero(&cfg->tokens, sizeof cfg->tokens);
    memset(cfg, 0, sizeof *cfg);
}

/* The default as the documentation shows it: `value`, `""` or unset, then
 * the note in parentheses. */
static void reference_default(const cfg_entry *e, char *buf, size_t cap)
{
    char tmp[32];
    const char *v = tmp;
    switch (e->type) {
    case T_STRING:
    case T_LOGLEVEL:
        v = e->sdef;
        break;
    case T_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)e->ndef);
        break;
    case T_SIZE:
        units_format_size(e->ndef, tmp, (int)sizeof tmp);
        break;
    case T_DURATION:
    case T_SECONDS:
        units_format_duration(e->type == T_SECONDS ? e->ndef * SEC : e->ndef, tmp, (int)sizeof tmp);
        break;
    case T_BOOL:
        v = e->ndef ? "on" : "off";
        break;
    }
    int n = v == NULL    ? snprintf(buf, cap, "unset")
            : *v == '\0' ? snprintf(buf, cap, "`\"\"`")
                         : snprintf(buf, cap, "`%s`", v);
    if (e->note != NULL && n >= 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, " (%s)", e->note);
}

/* The table's markdown (`code`, [text](#anchor)) as roff: code in bold,
 * links as their text, backslashes and the hyphens in code escaped, UTF-8
 * as \[uXXXX], and a leading control character made harmless. */
static void put_roff(const char *s, FILE *out)
{
    int code = 0;
    const char *close, *end;
    if (*s == '.' || *s == '\'')
        fputs("\\&", out);
    for (; *s != '\0'; s++) {
        if (*s == '`') {
            code = !code;
            fputs(code ? "\\fB" : "\\fR", out);
        } else if (*s == '[' && !code && (close = strchr(s, ']')) != NULL && close[1] == '(' &&
                   (end = strchr(close, ')')) != NULL) {
            for (const char *p = s + 1; p < close; p++)
                fputc(*p, out);
            s = end;
        } else if (*s == '\\') {
            fputs("\\e", out);
        } else if (*s == '-' && code) {
            fputs("\\-", out);
        } else if (*s == ':' && code) {
            fputs(":\\:", out); /* a place to break a long list */
        } else if ((unsigned char)*s >= 0xc0 && (unsigned char)*s < 0xf0 &&
                   ((unsigned char)s[1] & 0xc0) == 0x80) {
            /* UTF-8 (two or three bytes, as "×" or "µ") as a roff escape */
            unsigned c = (unsigned char)*s, cp;
            if (c < 0xe0) {
                cp = (c & 0x1fu) << 6 | ((unsigned char)s[1] & 0x3fu);
                s += 1;
            } else {
                cp = (c & 0x0fu) << 12 | ((unsigned char)s[1] & 0x3fu) << 6 |
                     ((unsigned char)s[2] & 0x3fu);
                s += s[2] != '\0' ? 2 : 1;
            }
            fprintf(out, "\\[u%04X]", cp);
        } else {
            fputc(*s, out);
        }
    }
}

void config_reference(enum config_ref_format fmt, FILE *out)
{
    char def[512], env[64], flag[64];
    if (fmt == CONFIG_REF_MARKDOWN) {
        fputs("| key (env `KYCD_...`) | default | meaning |\n| --- | --- | --- |\n", out);
    }
    for (size_t i = 0; i < NKEYS; i++) {
        const cfg_entry *e = &table[i];
        reference_default(e, def, sizeof def);
        if (fmt == CONFIG_REF_MARKDOWN) {
            fprintf(out, "| `%s`%s | %s | %s |\n", e->key, e->flags & F_SECRET ? " (secret)" : "",
                    def, e->desc);
            continue;
        }
        form_name(L_ENV, e, 0, env, sizeof env);
        form_name(L_FLAG, e, 0, flag, sizeof flag);
        fprintf(out, ".TP\n.B %s\n", e->key);
        fprintf(out, "Default: ");
        put_roff(def, out);
        fprintf(out, ". Environment: \\fB%s\\fR", env);
        if (e->flags & F_SECRET) {
            fputs(". A secret: never accepted as a flag, never printed", out);
        } else {
            char code[80];
            snprintf(code, sizeof code, "`%s`", flag);
            fputs(". Flag: ", out);
            put_roff(code, out);
        }
        if (e->flags & F_FILE_OK)
            fprintf(out, ". Also read from a file named by \\fB%s_file\\fR", e->key);
        if (e->flags & F_LIVE)
            fputs(". Applied by a reload (SIGHUP)", out);
        fputs(".\n.br\n", out);
        put_roff(e->desc, out);
        fputs(".\n", out);
    }
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
    const cfg_entry *e = lookup(L_FILE, buf, n, &is_file);
    return e != NULL && !is_file && (e->flags & F_SECRET) != 0;
}
