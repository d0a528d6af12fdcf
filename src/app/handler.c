/* Request handling (see handler.h). Must never read a body before the token
 * is verified, log a token or a body, or answer 200 before the store said
 * the delivery is durable. */
#include "app/handler.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/clock.h"
#include "app/metrics.h"
#include "base/log.h"
#include "core/payload.h"

static const struct route {
    const char *path;
    enum kyc_kind kind;
} ROUTES[] = {
    {"/webhooks/p100/kyc-verification-status", KYC_KIND_KYC_STATUS},
    {"/webhooks/p100/poa-verification-status", KYC_KIND_POA_STATUS},
    {"/webhooks/p100/kyc-file-added", KYC_KIND_KYC_FILE},
    {"/webhooks/p100/user-status", KYC_KIND_USER_STATUS},
};

/* Our own messages only (never client bytes), but escape anyway. */
static void json_error(http_response *r, int status, enum kyc_refusal refusal, const char *detail,
                       const char *rid)
{
    const char *code = kyc_refusal_name(refusal);
    char esc[300];
    size_t j = 0;
    for (const char *p = detail ? detail : ""; *p && j + 2 < sizeof esc; p++) {
        if (*p == '"' || *p == '\\')
            esc[j++] = '\\';
        esc[j++] = ((unsigned char)*p < 0x20) ? ' ' : *p;
    }
    esc[j] = '\0';
    r->status = status;
    if (detail)
        snprintf(r->body, sizeof r->body,
                 "{\"error\":\"%s\",\"detail\":\"%s\",\"requestId\":\"%s\"}", code, esc,
                 rid ? rid : "");
    else
        snprintf(r->body, sizeof r->body, "{\"error\":\"%s\",\"requestId\":\"%s\"}", code,
                 rid ? rid : "");
}

static void refuse(http_response *r, handler_note *n, int status, enum kyc_refusal code,
                   const char *detail, const char *rid)
{
    json_error(r, status, code, detail, rid);
    n->refused = 1;
    n->code = code;
    snprintf(n->error, sizeof n->error, "%s", detail ? detail : kyc_refusal_name(code));
}

void handler_header_timeout(http_response *resp, handler_note *note, const char *rid)
{
    memset(resp, 0, sizeof *resp);
    memset(note, 0, sizeof *note);
    refuse(resp, note, 408, KYC_REFUSE_REQUEST_TIMEOUT,
           "request headers not received within header_timeout", rid);
    resp->close = 1;
}

/* 413, whether the declared length or the bytes read went past the limit;
 * the rest of the body is not read, so the connection closes. */
static void refuse_too_large(const handler_ctx *h, http_response *r, handler_note *n,
                             const char *rid)
{
    char msg[96];
    snprintf(msg, sizeof msg, "body larger than %lld bytes", (long long)h->max_body);
    refuse(r, n, 413, KYC_REFUSE_PAYLOAD_TOO_LARGE, msg, rid);
    r->close = 1;
}

static int is_json(const char *ct)
{
    if (ct == NULL)
        return 0;
    while (*ct == ' ')
        ct++;
    static const char want[] = "application/json";
    if (strncasecmp(ct, want, sizeof want - 1) != 0)
        return 0;
    char next = ct[sizeof want - 1];
    return next == '\0' || next == ';' || next == ' ';
}

/* /healthz and /readyz. The public listener's answers name no internal
 * detail (a load balancer needs the status code only; a database error or
 * a host name is for the operator): the admin listener's carry it. */
static void serve_health(const handler_ctx *h, const http_request *req, http_response *resp,
                         handler_note *note, int ready)
{
    if (!ready) {
        resp->status = 200;
        snprintf(resp->body, sizeof resp->body, "{\"status\":\"up\"}");
        return;
    }
    if (h->draining && atomic_load(h->draining)) {
        refuse(resp, note, 503, KYC_REFUSE_DRAINING, "shutting down", req->request_id);
        return;
    }
    kerr err;
    kerr_clear(&err);
    char details[400] = "";
    void *rctx = h->store.ready_ctx ? h->store.ready_ctx : h->store.ctx;
    if (h->store.ready && h->store.ready(rctx, details, sizeof details, &err) != 0) {
        if (h->admin)
            refuse(resp, note, 503, KYC_REFUSE_NOT_READY, err.msg, req->request_id);
        else {
            refuse(resp, note, 503, KYC_REFUSE_NOT_READY, NULL, req->request_id);
            snprintf(note->error, sizeof note->error, "%s", err.msg); /* the log has it */
        }
        resp->retry_after = h->retry_after_s;
        return;
    }
    resp->status = 200;
    if (h->admin)
        snprintf(resp->body, sizeof resp->body, "{\"status\":\"ready\"%s%s}", details[0] ? "," : "",
                 details);
    else
        snprintf(resp->body, sizeof resp->body, "{\"status\":\"ready\"}");
}

/* /metrics and /status on the admin listener. */
static void serve_admin(const handler_ctx *h, const http_request *req, http_response *resp,
                        handler_note *note, int metrics)
{
    const handler_admin *a = h->admin;
    int rc = metrics ? a->metrics(a->ctx, &resp->ext) : a->status(a->ctx, &resp->ext);
    if (rc != 0 || resp->ext.len == 0) {
        kbuf_deinit(&resp->ext);
        kbuf_init(&resp->ext);
        refuse(resp, note, 500, KYC_REFUSE_INTERNAL, "could not build the answer", req->request_id);
        return;
    }
    resp->status = 200;
    resp->content_type = metrics ? "text/plain; version=0.0.4; charset=utf-8" : NULL;
}

/* Read the whole body into buf (cap = max_body + 1 so that "one byte too
 * many" is seen without reading further). */
/* Read the body: 0 at its end, -1 when a read failed, KERR_TIMEOUT when
 * the deadline (timeout_ms after the first read, 0: none) ran out first. A
 * read itself waits at most CivetWeb's read deadline (header_timeout), so
 * a client trickling a byte at a time is cut off here. */
static int read_all(const http_request *req, int64_t timeout_ms, char *buf, size_t cap,
                    size_t *out_len)
{
    size_t len = 0;
    double t0 = clock_now_ms();
    int rc = 0;
    while (len < cap) {
        if (timeout_ms > 0 && clock_now_ms() - t0 >= (double)timeout_ms) {
            rc = KERR_TIMEOUT;
            break;
        }
        int n = req->read_body(req->io, buf + len, cap - len);
        if (n < 0) {
            rc = -1;
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    *out_len = len;
    return rc;
}

/* Who may post: the source network, then the token. Both lists may be
 * swapped by a reload (SIGHUP): they are read under its lock. 0, or -1
 * with the answer (403, 401) set. */
static int check_access(const handler_ctx *h, const http_request *req, http_response *resp,
                        handler_note *note)
{
    const char *rid = req->request_id;
    if (h->live_lock)
        pthread_rwlock_rdlock(h->live_lock);
    int allowed = cidr_list_allows(h->allow, req->remote_addr);
    int token_ok = allowed && token_check(h->tokens, req->authorization);
    if (h->live_lock)
        pthread_rwlock_unlock(h->live_lock);
    if (!allowed) {
        refuse(resp, note, 403, KYC_REFUSE_FORBIDDEN, "source address not allowed", rid);
        resp->close = 1;
        return -1;
    }
    if (!token_ok) {
        refuse(resp, note, 401, KYC_REFUSE_UNAUTHORIZED, NULL, rid);
        snprintf(note->error, sizeof note->error, "%s",
                 req->authorization ? "authorization does not match a webhook token"
                                    : "no authorization header");
        resp->close = 1;
        return -1;
    }
    return 0;
}

/* Everything decided before a body byte is read: draining, access,
 * content type, declared length. 0, or -1 with the answer set. */
static int check_headers(const handler_ctx *h, const http_request *req, http_response *resp,
                         handler_note *note)
{
    const char *rid = req->request_id;
    /* Shutting down: in-flight requests finish, new ones go elsewhere or
     * come back later (P100 retries anything but 200). */
    if (h->draining && atomic_load(h->draining)) {
        refuse(resp, note, 503, KYC_REFUSE_DRAINING, "shutting down, retry later", rid);
        resp->retry_after = h->retry_after_s;
        resp->close = 1;
        return -1;
    }
    if (check_access(h, req, resp, note) != 0)
        return -1;
    if (!is_json(req->content_type)) {
        refuse(resp, note, 415, KYC_REFUSE_UNSUPPORTED_MEDIA_TYPE,
               "Content-Type must be application/json", rid);
        resp->close = 1;
        return -1;
    }
    if (req->content_length > h->max_body) {
        refuse_too_large(h, resp, note, rid);
        return -1;
    }
    return 0;
}

/* Read the body into body[0..cap) (cap = max_body + 1) and check that it
 * arrived whole, in time and within the limit. 0 with *len set, or -1 with
 * the answer (408, 400, 413) set. */
static int receive_body(const handler_ctx *h, const http_request *req, http_response *resp,
                        handler_note *note, char *body, size_t cap, size_t *len)
{
    const char *rid = req->request_id;
    int rrc = read_all(req, h->body_timeout_ms, body, cap, len);
    if (rrc == KERR_TIMEOUT) {
        refuse(resp, note, 408, KYC_REFUSE_REQUEST_TIMEOUT,
               "body not received within request_timeout (client too slow)", rid);
        resp->close = 1;
        return -1;
    }
    if (rrc != 0) {
        refuse(resp, note, 400, KYC_REFUSE_BAD_REQUEST,
               "body could not be read (connection failed)", rid);
        resp->close = 1;
        return -1;
    }
    if (*len > (size_t)h->max_body) {
        refuse_too_large(h, resp, note, rid);
        return -1;
    }
    /* A body that stops short: nothing came for header_timeout (CivetWeb's
     * read deadline), or the client closed; either way the request did not
     * arrive in time (408: if the client is still there, it can read why). */
    if (req->content_length >= 0 && (long long)*len < req->content_length) {
        refuse(resp, note, 408, KYC_REFUSE_REQUEST_TIMEOUT,
               "body ended before Content-Length (client too slow or gone)", rid);
        resp->close = 1;
        return -1;
    }
    if (req->content_length >= 0 && (long long)*len != req->content_length) {
        refuse(resp, note, 400, KYC_REFUSE_BAD_REQUEST, "body length does not match Content-Length",
               rid);
        resp->close = 1;
        return -1;
    }
    return 0;
}

/* An authentic delivery kycd cannot apply (its body failed validation
 * with `why`, or the database refused its data): kept raw in the
 * quarantine, with why, and answered 200 once that is durable. P100's
 * retries could not make it apply (it would send the same bytes), and a
 * refusal would lose it once they end; a 200 keeps it for `kycd replay`
 * after the rules are fixed, and its user is marked for a check with P100
 * (README "Quarantine and replay"). Where the quarantine cannot take it
 * either, the refusal is as before: 400 (with `detail`) when no quarantine
 * is kept (or the database refuses even that), 503 when nothing durable
 * took it. */
static void quarantine_delivery(const handler_ctx *h, const struct route *route,
                                const http_request *req, const char *body, size_t len,
                                const char *why, const char *detail, http_response *resp,
                                handler_note *note)
{
    const char *rid = req->request_id;
    kyc_delivery d;
    memset(&d, 0, sizeof d);
    payload_quarantine(route->kind, body, len, req->remote_addr, rid, why, &d);
    snprintf(note->external_user_id, sizeof note->external_user_id, "%s", d.external_user_id);
    db_ingest_result res;
    memset(&res, 0, sizeof res);
    kerr err;
    kerr_clear(&err);
    int rc = h->store.submit(h->store.ctx, &d, &res, &err);
    if (rc == KERR_INVALID) {
        refuse(resp, note, 400, KYC_REFUSE_INVALID_PAYLOAD, detail, rid);
        snprintf(note->error, sizeof note->error, "%s", why);
        return;
    }
    if (rc != 0) {
        refuse(resp, note, 503, KYC_REFUSE_UNAVAILABLE, "could not store the delivery, retry later",
               rid);
        snprintf(note->error, sizeof note->error, "%s", err.msg);
        resp->retry_after = h->retry_after_s;
        return;
    }
    snprintf(note->quarantine, sizeof note->quarantine, "%s", d.quarantine);
    note->has_outcome = 1;
    note->outcome = res.outcome;
    note->reason = res.reason;
    note->event_id = res.event_id;
    resp->status = 200;
    snprintf(resp->body, sizeof resp->body, "{\"status\":\"quarantined\",\"requestId\":\"%s\"}",
             rid ? rid : "");
}

/* Parse the body and hand the delivery to the store; 200 only once the
 * store says it is durable. */
static void store_delivery(const handler_ctx *h, const struct route *route, const http_request *req,
                           const char *body, size_t len, http_response *resp, handler_note *note)
{
    const char *rid = req->request_id;
    kyc_delivery d;
    memset(&d, 0, sizeof d);
    kerr err;
    kerr_clear(&err);
    if (payload_parse_delivery(route->kind, body, len, req->remote_addr, rid, &d, &err) != 0) {
        quarantine_delivery(h, route, req, body, len, err.msg, err.msg, resp, note);
        return;
    }
    snprintf(note->external_user_id, sizeof note->external_user_id, "%s", d.external_user_id);

    db_ingest_result res;
    memset(&res, 0, sizeof res);
    double t0 = clock_now_ms();
    int rc = h->store.submit(h->store.ctx, &d, &res, &err);
    if (rc == 0)
        metrics_observe_ingest((clock_now_ms() - t0) / 1000.0);
    if (rc == KERR_INVALID) {
        char why[sizeof d.quarantine];
        /* Cut to fit the quarantine's reason (the database's message may be long). */
        if (snprintf(why, sizeof why, "refused by the database: %s", err.msg) >= (int)sizeof why)
            why[sizeof why - 2] = '.';
        quarantine_delivery(h, route, req, body, len, why, "refused by the database", resp, note);
        return;
    }
    if (rc != 0) {
        refuse(resp, note, 503, KYC_REFUSE_UNAVAILABLE, "could not store the delivery, retry later",
               rid);
        snprintf(note->error, sizeof note->error, "%s", err.msg);
        resp->retry_after = h->retry_after_s;
        return;
    }
    note->has_outcome = 1;
    note->outcome = res.outcome;
    note->reason = res.reason;
    note->event_id = res.event_id;
    resp->status = 200;
    snprintf(resp->body, sizeof resp->body, "{\"status\":\"stored\",\"requestId\":\"%s\"}",
             rid ? rid : "");
}

/* A webhook: the checks in handler.h's order, the body, the store. */
static void serve_webhook(const handler_ctx *h, const struct route *route, const http_request *req,
                          http_response *resp, handler_note *note)
{
    note->has_kind = 1;
    note->kind = route->kind;
    if (check_headers(h, req, resp, note) != 0)
        return;
    size_t cap = (size_t)h->max_body + 1, len = 0;
    char *body = malloc(cap);
    if (body == NULL) {
        refuse(resp, note, 503, KYC_REFUSE_OVERLOADED, "out of memory", req->request_id);
        resp->retry_after = h->retry_after_s;
        return;
    }
    if (receive_body(h, req, resp, note, body, cap, &len) == 0)
        store_delivery(h, route, req, body, len, resp, note);
    free(body);
}

void handler_serve(const handler_ctx *h, const http_request *req, http_response *resp,
                   handler_note *note)
{
    memset(resp, 0, sizeof *resp);
    memset(note, 0, sizeof *note);
    const char *path = req->path ? req->path : "";
    const char *rid = req->request_id;

    int health = strcmp(path, "/healthz") == 0, ready = strcmp(path, "/readyz") == 0;
    int metrics = h->admin && strcmp(path, "/metrics") == 0;
    int status = h->admin && strcmp(path, "/status") == 0;
    if (health || ready || metrics || status) {
        if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
            refuse(resp, note, 405, KYC_REFUSE_METHOD_NOT_ALLOWED, "use GET", rid);
            resp->allow = "GET, HEAD";
            return;
        }
        if (metrics || status)
            serve_admin(h, req, resp, note, metrics);
        else
            serve_health(h, req, resp, note, ready);
        return;
    }
    if (h->admin) { /* no webhooks here */
        refuse(resp, note, 404, KYC_REFUSE_NOT_FOUND, NULL, rid);
        resp->close = req->content_length != 0;
        return;
    }
    for (size_t i = 0; i < sizeof ROUTES / sizeof ROUTES[0]; i++) {
        if (strcmp(path, ROUTES[i].path) != 0)
            continue;
        if (strcmp(req->method, "POST") != 0) {
            refuse(resp, note, 405, KYC_REFUSE_METHOD_NOT_ALLOWED, "use POST", rid);
            resp->allow = "POST";
            resp->close = 1;
            return;
        }
        serve_webhook(h, &ROUTES[i], req, resp, note);
        return;
    }
    refuse(resp, note, 404, KYC_REFUSE_NOT_FOUND, NULL, rid);
    resp->close = req->content_length != 0;
}

void handler_response_deinit(http_response *r)
{
    kbuf_deinit(&r->ext);
}

/* The request's counters: its route and status, and for a webhook its
 * delivery's outcome (stored ones by the store's outcome and reason,
 * refused ones by the answer's error code). */
static void count(const http_request *req, const http_response *resp, const handler_note *note)
{
    metrics_http_request(metrics_route(req->path), resp->status);
    if (!note->has_kind)
        return;
    if (resp->status == 200 && note->has_outcome)
        metrics_delivery(note->kind, note->outcome, note->reason);
    if (resp->status == 200 && note->quarantine[0])
        metrics_quarantined(note->kind, note->outcome == KYC_OUTCOME_SPOOLED);
    else if (note->refused)
        metrics_delivery_refused(note->kind, note->code);
}

void handler_log(const http_request *req, const http_response *resp, const handler_note *note,
                 double elapsed_ms)
{
    count(req, resp, note);
    klog_line l;
    /* An answer that never left is worth a warning whatever its status:
     * the client saw the connection close instead (and P100 retries). */
    int level = resp->status >= 500 || note->unsent ? KLOG_WARN : KLOG_INFO;
    /* Probes are frequent: keep them out of the info log when they pass. */
    if (resp->status == 200 && req->path &&
        (strcmp(req->path, "/healthz") == 0 || strcmp(req->path, "/readyz") == 0 ||
         strcmp(req->path, "/metrics") == 0 || strcmp(req->path, "/status") == 0))
        level = KLOG_DEBUG;
    klog_begin(&l, level, "request");
    klog_str(&l, "rid", req->request_id);
    klog_str(&l, "method", req->method);
    klog_str(&l, "path", req->path);
    klog_int(&l, "status", resp->status);
    klog_str(&l, "remote", req->remote_addr);
    if (note->has_kind)
        klog_str(&l, "kind", kyc_kind_name(note->kind));
    if (note->external_user_id[0])
        klog_str(&l, "user", note->external_user_id);
    if (note->has_outcome) {
        klog_str(&l, "outcome", kyc_outcome_name(note->outcome));
        klog_str(&l, "reason", kyc_reason_name(note->reason));
        klog_int(&l, "event", note->event_id);
    }
    if (note->error[0])
        klog_str(&l, "error", note->error);
    if (note->quarantine[0])
        klog_str(&l, "quarantine", note->quarantine);
    if (note->unsent)
        klog_str(&l, "answer", "not_sent");
    if (note->lingered > 0)
        klog_int(&l, "lingered_bytes", note->lingered);
    if (note->linger_cut)
        klog_str(&l, "linger", "cut");
    klog_ms(&l, "ms", elapsed_ms);
    klog_end(&l);
}
