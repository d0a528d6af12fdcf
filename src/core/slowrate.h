/* Slow clients: when a connection that holds a worker is cut for sending
 * too slowly (Apache's mod_reqtimeout, with a grace that shrinks as the
 * workers fill). Pure: the server glue measures, this decides. */
#ifndef KYCD_CORE_SLOWRATE_H
#define KYCD_CORE_SLOWRATE_H

#include <stdint.h>

/* What a worker's connection is doing. */
typedef enum slow_phase {
    SLOW_IDLE,      /* no connection */
    SLOW_HANDSHAKE, /* TLS handshake */
    SLOW_HEADERS,   /* request line and headers */
    SLOW_BODY,      /* the handler reads the body */
    SLOW_ACTIVE,    /* the request is being handled or answered: never cut */
    SLOW_KEEPALIVE, /* between requests, nothing received yet */
} slow_phase;

typedef struct slow_policy {
    int64_t grace_ms; /* each phase may take this long before the rate counts */
    int64_t min_rate; /* bytes a second after the grace; <= 0: never cut */
} slow_policy;

/* kycd's defaults: 1 s of grace, then 500 bytes a second (mod_reqtimeout's
 * MinRate), in each of the handshake, the headers and the body. */
#define SLOW_GRACE_MS 1000
#define SLOW_MIN_RATE 500

/* The grace while busy of threads workers hold a connection: the whole
 * grace up to half of them; then shrinking linearly to a quarter of it
 * when all are busy, so that slow clients are cut faster the fewer
 * workers are left for others. */
int64_t slow_grace_now(const slow_policy *p, int busy, int threads);

/* 1 when a connection in phase ph for age_ms, which has received bytes in
 * that phase, is to be cut under grace_ms (from slow_grace_now): it is
 * past grace_ms + bytes / min_rate. A keep-alive connection that has
 * received nothing is cut only while more than half of the workers are
 * busy (the client has no request under way; nginx drops idle keep-alive
 * connections the same way). Active phases are never cut. */
int slow_should_cut(const slow_policy *p, slow_phase ph, double age_ms, uint64_t bytes,
                    int64_t grace_ms, int busy, int threads);

#endif
