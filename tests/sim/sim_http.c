/* p100-sim: replies and request helpers (see sim_http.h).
 *
 * Must never: read more than BODY_MAX of a body. */
#include "sim_http.h"

#include "core/p100.h"
#include "core/vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX (1 << 20) /* largest request body read */

void reply_text(reply *r, int status, const char *ctype, const char *text)
{
    r->status = status;
    r->ctype = ctype;
    free(r->body);
    r->body = strdup(text);
}

void reply_json(reply *r, int status, cJSON *obj)
{
    char *s = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (s == NULL) {
        reply_text(r, 500, "application/json", "{\"error\":\"out of memory\"}");
        return;
    }
    r->status = status;
    r->ctype = "application/json";
    free(r->body);
    r->body = s;
}

/* P100's error body; name NULL leaves errorName out (as P403 and 401 do).
 * P100 is silent on most errorName values: only P412's "invalid-user" and
 * P212's "kyc-pending" are documented; the others here are our guesses. */
void reply_p100(reply *r, int status, const char *code, const char *name, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    if (code)
        cJSON_AddStringToObject(o, "errorCode", code);
    if (name)
        cJSON_AddStringToObject(o, "errorName", name);
    cJSON_AddStringToObject(o, "errorMessage", msg);
    reply_json(r, status, o);
    snprintf(r->code, sizeof r->code, "%s", code ? code : "");
    if (code == NULL)
        snprintf(r->code, sizeof r->code, "%d", status);
}

/* errorName and errorMessage by code. P100 documents P412's "invalid-user"
 * and P212's "kyc-pending"; the other names are guesses (P100 is silent),
 * the messages the meanings docs/p100-api.md lists. P403 has no errorName. */
static const struct {
    const char *name, *msg;
} code_text[] = {
    [P100_CODE_P403] = {NULL, "Validation error"},
    [P100_CODE_P411] = {"user-already-exists", "User already exists"},
    [P100_CODE_P412] = {"invalid-user", "User does not exist"},
    [P100_CODE_P433] = {"insufficient-funds", "Insufficient funds"},
    [P100_CODE_P445] = {"kyc-not-found", "KYC not found"},
    [P100_CODE_P450] = {"kyc-already-verified", "KYC already verified"},
    [P100_CODE_P453] = {"too-many-kyc-attempts", "Too many KYC verification attempts"},
    [P100_CODE_P459] = {"user-not-verified", "User not verified"},
    [P100_CODE_P500] = {"unknown-exception", "Unknown exception"},
    [P100_CODE_P501] = {"service-unavailable", "Service temporarily unavailable"},
    [P100_CODE_P211] = {"poa-pending", "POA verification pending"},
    [P100_CODE_P212] = {"kyc-pending", "KYC verification pending"},
};
_Static_assert(sizeof code_text / sizeof code_text[0] == P100_CODE_UNKNOWN,
               "an error code without its text");

int reply_code_http(int code)
{
    switch (code) {
    case P100_CODE_P445:
        return 404;
    case P100_CODE_P211:
    case P100_CODE_P212:
        return 202;
    default:
        return 400;
    }
}

void reply_p100_code(reply *r, int code)
{
    const char *name = vocab_name(&VOCAB_ERROR_CODE, code);
    if (name == NULL) { /* never: every caller passes a documented code */
        reply_p100(r, 500, NULL, NULL, "p100-sim: no such code");
        return;
    }
    reply_p100(r, reply_code_http(code), name, code_text[code].name, code_text[code].msg);
}

void reply_sim_error(reply *r, int status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    reply_json(r, status, o);
}

void reply_send(struct mg_connection *conn, const reply *r)
{
    char len[24], ra[24];
    const char *body = r->body ? r->body : "";
    mg_response_header_start(conn, r->status);
    mg_response_header_add(conn, "Content-Type", r->ctype ? r->ctype : "application/json", -1);
    snprintf(len, sizeof len, "%zu", strlen(body));
    mg_response_header_add(conn, "Content-Length", len, -1);
    mg_response_header_add(conn, "Cache-Control", "no-store", -1);
    if (r->retry_after > 0) {
        snprintf(ra, sizeof ra, "%ld", r->retry_after);
        mg_response_header_add(conn, "Retry-After", ra, -1);
    }
    mg_response_header_send(conn);
    mg_write(conn, body, strlen(body));
}

char *http_read_body(struct mg_connection *conn, bool *too_big)
{
    const struct mg_request_info *ri = mg_get_request_info(conn);
    *too_big = false;
    if (ri->content_length > BODY_MAX) {
        *too_big = true;
        return NULL;
    }
    size_t cap = ri->content_length > 0 ? (size_t)ri->content_length + 1 : 4096, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return NULL;
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > BODY_MAX) {
                free(buf);
                *too_big = true;
                return NULL;
            }
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        int n = mg_read(conn, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

int http_split_path(char *p, char **seg, int max)
{
    int n = 0;
    if (*p == '\0')
        return 0;
    for (;;) {
        if (n == max)
            return -1;
        seg[n++] = p;
        char *slash = strchr(p, '/');
        if (slash == NULL)
            break;
        *slash = '\0';
        p = slash + 1;
    }
    for (int i = 0; i < n; i++)
        if (seg[i][0] == '\0')
            return -1;
    return n;
}
