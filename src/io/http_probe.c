/* A plain-HTTP GET on a local listener (see http_probe.h). Must never wait
 * without a bound (every socket call has timeout_ms) or read more than the
 * status line. */
#include "io/http_probe.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* host and port of "host:port" / "[v6]:port"; a wildcard host becomes the
 * matching loopback address. */
static int split_addr(const char *addr, char *host, size_t hcap, char *port, size_t pcap, kerr *err)
{
    const char *h = addr, *colon;
    size_t hlen;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':')
            return kerr_set(err, KERR_INVALID, "bad address '%s'", addr);
        h = addr + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL)
            return kerr_set(err, KERR_INVALID, "bad address '%s' (host:port)", addr);
        hlen = (size_t)(colon - addr);
    }
    if (hlen == 0 || hlen >= hcap || strlen(colon + 1) == 0 || strlen(colon + 1) >= pcap)
        return kerr_set(err, KERR_INVALID, "bad address '%s' (host:port)", addr);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    snprintf(port, pcap, "%s", colon + 1);
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0)
        snprintf(host, hcap, "127.0.0.1");
    else if (strcmp(host, "::") == 0)
        snprintf(host, hcap, "::1");
    return 0;
}

int http_probe_get(const char *addr, const char *path, int64_t timeout_ms, int *status, kerr *err)
{
    char host[256], port[16];
    int rc = split_addr(addr, host, sizeof host, port, sizeof port, err);
    if (rc != 0)
        return rc;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int g = getaddrinfo(host, port, &hints, &ai);
    if (g != 0)
        return kerr_set(err, KERR_IO, "%s: %s", addr, gai_strerror(g));
    int fd = -1;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    rc = kerr_set(err, KERR_IO, "%s: no address", addr);
    for (struct addrinfo *a = ai; a != NULL; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        /* SO_SNDTIMEO bounds connect(2) too (Linux). */
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            rc = 0;
            break;
        }
        rc = kerr_set(err, errno == EINPROGRESS || errno == EAGAIN ? KERR_TIMEOUT : KERR_IO,
                      "connect to %s: %s", addr, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (rc != 0)
        return rc;
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: kycd-health\r\n\r\n", path, addr);
    if (n < 0 || (size_t)n >= sizeof req) {
        rc = kerr_set(err, KERR_INVALID, "path too long");
        goto out;
    }
    ssize_t w;
    do
        w = send(fd, req, (size_t)n, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w != n) {
        rc =
            kerr_set(err, KERR_IO, "send to %s: %s", addr, w < 0 ? strerror(errno) : "short write");
        goto out;
    }
    char buf[64];
    size_t got = 0;
    while (got < sizeof buf - 1) { /* "HTTP/1.1 200 " is all we need */
        ssize_t r = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = kerr_set(err, errno == EAGAIN || errno == EWOULDBLOCK ? KERR_TIMEOUT : KERR_IO,
                          "read from %s: %s", addr,
                          errno == EAGAIN || errno == EWOULDBLOCK ? "timed out" : strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        got += (size_t)r;
        if (memchr(buf, '\n', got) != NULL)
            break;
    }
    buf[got] = '\0';
    int code = 0;
    if (sscanf(buf, "HTTP/1.%*[01] %3d", &code) != 1 || code < 100 || code > 599) {
        rc = kerr_set(err, KERR_IO, "%s did not answer HTTP (a TLS listener?)", addr);
        goto out;
    }
    *status = code;
out:
    close(fd);
    return rc;
}
