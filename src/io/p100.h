/* The HTTPS client for P100's Partner API (the only user of libcurl).
 * One client per thread (a client is not thread-safe); each keeps its
 * connection alive across calls. Hostname verification is always on; the
 * system CA store is used unless ca_file names another. The x-api-key
 * header carries the key, which never appears in a log or an error. */
#ifndef KYCD_IO_P100_H
#define KYCD_IO_P100_H

#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "core/kyc.h"
#include "core/p100.h"

typedef struct p100_client p100_client;

typedef struct p100_opts {
    const char *base_url; /* e.g. https://partner-api-stage.p100.io (no trailing slash needed) */
    const char *api_key;  /* secret */
    const char *ca_file;  /* extra CA bundle (the simulator's), or NULL for the system store */
    const char *
        status_path; /* template with {externalUserId}, default "/v1/kyc/status/{externalUserId}" */
    int64_t timeout_ms; /* whole call */
    int64_t connect_timeout_ms;
} p100_opts;

/* What one call got back. body holds the raw answer (kept for the record). */
typedef struct p100_result {
    enum p100_class cls;
    long http_status;    /* 0: no HTTP answer (transport error) */
    char error_code[16]; /* P100's errorCode (a P4xx or P5xx code), or "" */
    char error_name[64];
    char error_message[256]; /* P100's message, or the transport error */
    int64_t retry_after_ms;  /* from Retry-After, or -1 */
    double latency_ms;
    kbuf body;
} p100_result;

void p100_result_init(p100_result *r);
void p100_result_deinit(p100_result *r);

int p100_client_new(p100_client **out, const p100_opts *o, kerr *err) KYCD_MUST_CHECK;
void p100_client_free(p100_client *c);

/* Get KYC Status. Returns 0 when a classified answer was obtained (look at
 * res->cls; on P100_OK, *status is filled from the body, tolerantly);
 * negative only for local failures (out of memory, bad options). */
int p100_get_status(p100_client *c, const char *external_user_id, p100_result *res,
                    kyc_status *status, kerr *err) KYCD_MUST_CHECK;

/* Create KYC Verification. On P100_OK with 201, verification_id is filled;
 * on 202 P212 (already pending) res->error_code is that code and
 * verification_id is "". The request must have passed p100_create_validate. */
int p100_create_kyc(p100_client *c, const p100_create_req *req, p100_result *res,
                    char *verification_id, size_t cap, kerr *err) KYCD_MUST_CHECK;

/* The verification redirect URL (built, not fetched):
 * {base}/v1/kyc/verification/{externalUserId}/{verificationId}, with both
 * path segments percent-encoded. */
int p100_redirect_url(const p100_opts *o, const char *external_user_id, const char *verification_id,
                      kbuf *out, kerr *err) KYCD_MUST_CHECK;

#endif
