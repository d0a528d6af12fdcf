/* HTTP request handling for kycd, independent of the HTTP server: routes,
 * source-network and token checks, content rules, body limits, parsing, and
 * the hand-off to the store. Takes a plain request and fills a plain
 * response, so that it is unit-tested without a socket (tests/unit/
 * test_handler.c); src/app/server.c adapts CivetWeb to it.
 *
 * Order of checks (first failure answers): route 404, method 405, source
 * network 403, token 401, content type 415, declared length 413, body read
 * (413 if it grows past the limit, 400 if cut short), payload 400, store
 * 503 (database unavailable, with Retry-After) or 200. */
#ifndef KYCD_APP_HANDLER_H
#define KYCD_APP_HANDLER_H

#include <stdatomic.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "core/cidr.h"
#include "core/kyc.h"
#include "core/token.h"
#include "io/db_ingest.h"

typedef struct http_request {
    const char *method;
    const char *path;          /* decoded path, without query string */
    const char *content_type;  /* NULL when absent */
    const char *authorization; /* NULL when absent */
    const char *remote_addr;   /* textual peer address */
    long long content_length;  /* -1 when not declared (chunked) */
    const char *request_id;
    /* Read up to len body bytes: >0 bytes read, 0 at the end of the body,
     * <0 on error or timeout. */
    int (*read_body)(void *io, char *buf, size_t len);
    void *io;
} http_request;

typedef struct http_response {
    int status;
    char body[512];    /* JSON */
    int retry_after;   /* seconds; 0 for none */
    int close;         /* ask the server to close the connection */
    const char *allow; /* Allow header for 405 */
    /* A large answer (/metrics, /status): when ext.len > 0 it is sent
     * instead of body, and the server frees it (handler_response_deinit). */
    kbuf ext;
    const char *content_type; /* NULL: application/json */
} http_response;

/* Free what an answer owns (ext). */
void handler_response_deinit(http_response *r);

/* What happened, for the one log line per request (written by the caller). */
typedef struct handler_note {
    int has_kind; /* a webhook route: kind is set */
    enum kyc_kind kind;
    char external_user_id[KYC_ID_MAX + 1];
    int has_outcome; /* stored: outcome and reason are set */
    enum kyc_outcome outcome;
    enum kyc_reason reason;
    int refused;           /* refused: code is set */
    enum kyc_refusal code; /* the answer's "error" */
    long long event_id;
    char error[sizeof(((kerr *)0)->msg)]; /* why the request was refused, or "" */
    /* Not "": the delivery was authentic but not applied, and is kept in
     * the quarantine (or the spool, marked for it): why. */
    char quarantine[sizeof(((kyc_delivery *)0)->quarantine)];
    /* Filled by the server after the answer: */
    int unsent;         /* the answer could not be written */
    long long lingered; /* unread body bytes discarded after the answer */
    int linger_cut;     /* the discard hit its bounds: the client may see a reset */
} handler_note;

/* Where accepted deliveries go ("accept, persist, answer"): submit returns
 * only when the delivery is durable (0), or fails with KERR_DB/KERR_TIMEOUT
 * (not stored: 503) or KERR_INVALID (refused by the database: 400). A
 * delivery with d->quarantine set (payload_quarantine) is kept raw in the
 * quarantine; a store without one answers KERR_INVALID. */
typedef struct handler_store {
    int (*submit)(void *ctx, const kyc_delivery *d, db_ingest_result *res, kerr *err);
    /* 0 when deliveries can be made durable; details gets a JSON fragment
     * ("key":value,...) for the /readyz body, or stays "". */
    int (*ready)(void *ready_ctx, char *details, size_t cap, kerr *err);
    void *ctx;       /* for submit */
    void *ready_ctx; /* for ready; NULL: ctx */
} handler_store;

/* What only the admin listener serves, filled by the command (it knows
 * the spool, the database probe, the reconciler). Each appends to out and
 * returns 0, or a negative error (answered 500). */
typedef struct handler_admin {
    int (*metrics)(void *ctx, kbuf *out); /* Prometheus text format 0.0.4 */
    int (*status)(void *ctx, kbuf *out);  /* the /status JSON object */
    void *ctx;
} handler_admin;

typedef struct handler_ctx {
    const token_set *tokens;
    const cidr_list *allow;
    /* Held for writing while a reload replaces *tokens and *allow in place;
     * the handler reads both under it. NULL: they never change. */
    pthread_rwlock_t *live_lock;
    int64_t max_body;
    int64_t body_timeout_ms; /* the whole body must have arrived by then (408); 0: no limit */
    int retry_after_s;
    handler_store store;
    /* Set (non-zero) by the command at shutdown, read by every worker
     * thread: an atomic, so the store is seen without a data race. While
     * set, webhooks and /readyz answer 503. NULL: never draining. */
    const atomic_int *draining;
    /* Set: this is the admin listener. It serves /metrics, /status,
     * /healthz and /readyz (with the details: database, spool, counters,
     * the reason it is not ready), and nothing else (404). Not set: the
     * public listener, whose /healthz and /readyz carry no detail (no
     * database error, no host name) and which serves the webhooks. */
    const handler_admin *admin;
} handler_ctx;

void handler_serve(const handler_ctx *h, const http_request *req, http_response *resp,
                   handler_note *note);

/* The answer to a request whose headers did not arrive within
 * header_timeout (the server glue notices it, not handler_serve): 408, in
 * the same JSON form as every other answer. */
void handler_header_timeout(http_response *resp, handler_note *note, const char *rid);

/* Write the request's log line (key=value, one per request) and count it
 * (app/metrics.h): the one place each answer is accounted for. */
void handler_log(const http_request *req, const http_response *resp, const handler_note *note,
                 double elapsed_ms);

#endif
