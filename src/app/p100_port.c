/* The real P100 port: io/p100's client behind app/p100_port.h. Adapters
 * only; must never look at an answer. */
#include "app/p100_port.h"

static int real_client_new(void *ctx, void **client, kerr *err)
{
    p100_client *c = NULL;
    int rc = p100_client_new(&c, ctx, err);
    if (rc == 0)
        *client = c;
    return rc;
}

static int real_get_status(void *client, const char *external_user_id, p100_result *res,
                           kyc_status *status, kerr *err)
{
    return p100_get_status(client, external_user_id, res, status, err);
}

static void real_client_free(void *client)
{
    p100_client_free(client);
}

p100_port p100_port_real(const p100_opts *o)
{
    /* The options are only read: the context is const in spirit. */
    p100_port p = {.ctx = (void *)o,
                   .client_new = real_client_new,
                   .get_status = real_get_status,
                   .client_free = real_client_free};
    return p;
}
