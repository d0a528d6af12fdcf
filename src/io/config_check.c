/* The checks `kycd serve` makes across several keys before it starts:
 * listener addresses, certificate and key set, and the parse of the
 * webhook tokens and allowed networks into typed values.
 *
 * Must never: quote a token in a message, parse tokens or CIDRs anywhere
 * else (the typed values in kycd_config are the one parse), or change cfg
 * when a check fails. */
#include "io/config_check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "base/units.h"
#include "core/cidr.h"
#include "core/token.h"

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
