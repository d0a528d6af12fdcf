/* p100-sim's HTTP plumbing over CivetWeb: the reply a handler fills (then
 * sent by main's request callback), P100's error body, and request body and
 * path helpers.
 *
 * Must never: log a request body. */
#ifndef P100_SIM_HTTP_H
#define P100_SIM_HTTP_H

#include <civetweb.h>
#include <cjson/cJSON.h>
#include <stdbool.h>

typedef struct reply {
    int status;
    char *body; /* malloc'd */
    const char *ctype;
    long retry_after; /* seconds; 0: no header */
    char code[16];    /* errorCode (or HTTP status) for the log and errors_sent */
} reply;

/* Sets the reply to a copy of text. */
void reply_text(reply *r, int status, const char *ctype, const char *text);

/* A JSON reply; takes ownership of obj. */
void reply_json(reply *r, int status, cJSON *obj);

/* P100's error body; name NULL leaves errorName out (as P403 and 401 do);
 * code NULL leaves errorCode out (r->code is then the HTTP status). */
void reply_p100(reply *r, int status, const char *code, const char *name, const char *msg);

/* The HTTP status docs/p100-api.md gives an errorCode (P445 404, P211 and
 * P212 202, the others 400); code is an enum p100_code (core/p100.h). */
int reply_code_http(int code);

/* P100's error answer for a code P100 documents (an enum p100_code): its
 * HTTP status, errorCode from core's vocabulary, errorName and message. */
void reply_p100_code(reply *r, int code);

/* The control API's error body: {"error": msg}. */
void reply_sim_error(reply *r, int status, const char *msg);

/* Writes the reply (status, Content-Type, Content-Length, no-store,
 * Retry-After when set, the body) to the connection. */
void reply_send(struct mg_connection *conn, const reply *r);

/* Read the whole body; NULL with *too_big set when over 1 MiB (NULL alone:
 * no memory). The caller frees it. */
char *http_read_body(struct mg_connection *conn, bool *too_big);

/* Split "a/b/c" into at most max segments (in place). Returns the count, or
 * -1 when there are more or one is empty. */
int http_split_path(char *p, char **seg, int max);

#endif
