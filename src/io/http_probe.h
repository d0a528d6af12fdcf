/* A plain-HTTP GET on a listener of this host, for `kycd health` (the
 * container's HEALTHCHECK, which then needs no curl): one request, the
 * status line read, nothing else. Not a client for anything remote: P100 is
 * io/p100's (libcurl). */
#ifndef KYCD_IO_HTTP_PROBE_H
#define KYCD_IO_HTTP_PROBE_H

#include <stdint.h>

#include "base/err.h"

/* GET `path` from the plain-HTTP listener at `addr` ("host:port" or
 * "[v6]:port"; a wildcard host, 0.0.0.0 or [::], is reached on loopback),
 * connecting, sending and reading each within timeout_ms. On 0, *status is
 * the answer's HTTP status; otherwise a negative KERR_* with the reason in
 * err and *status untouched. */
int http_probe_get(const char *addr, const char *path, int64_t timeout_ms, int *status,
                   kerr *err) KYCD_MUST_CHECK;

#endif
