/* P100's Get KYC Status as the reconciler sees it: a client per worker
 * thread and one call, as function pointers plus a context, so that a unit
 * test can fake P100 (latency, classes of answer, calls in flight). The
 * default (p100_port_real) is io/p100's libcurl client. Never a place for
 * decisions about answers: those are the reconciler's. */
#ifndef KYCD_APP_P100_PORT_H
#define KYCD_APP_P100_PORT_H

#include "base/err.h"
#include "core/kyc.h"
#include "io/p100.h"

typedef struct p100_port {
    void *ctx;
    /* A client for one thread (clients need not be thread-safe). */
    int (*client_new)(void *ctx, void **client, kerr *err);
    /* p100_get_status's contract: 0 with res->cls set (status filled on
     * P100_OK), negative only for local failures. */
    int (*get_status)(void *client, const char *external_user_id, p100_result *res,
                      kyc_status *status, kerr *err);
    void (*client_free)(void *client);
} p100_port;

/* io/p100 with these options (borrowed: they must outlive every client). */
p100_port p100_port_real(const p100_opts *o);

#endif
