/* Webhook body parsing and validation, P100's answers, the create request's
 * JSON: the only user of cJSON in the service (strict JSON and UTF-8
 * checks are core/json.c). Pure: never logs, never quotes the body in an
 * error. */
#include "core/payload.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/token.h"

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted, so that 10,000 keys cost n log n, not n squared. */
static int no_duplicate_keys(const cJSON *obj, kerr *err)
{
    size_t n = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        n++;
    if (n < 2)
        return 0;
    const char **keys = malloc(n * sizeof *keys);
    if (keys == NULL)
        return kerr_set(err, KERR_NOMEM, "out of memory");
    size_t i = 0;
    for (const cJSON *c = obj->child; c; c = c->next)
        keys[i++] = c->string ? c->string : "";
    qsort(keys, n, sizeof *keys, cmp_keys);
    int rc = 0;
    /* Name the key only when it is one of ours: never echo client text. */
    static const char *const ours[] = {"externalUserId", "verificationStatus", "attemptStatus",
                                       "rejectionReason", "status"};
    for (i = 1; i < n && rc == 0; i++) {
        if (strcmp(keys[i - 1], keys[i]) != 0)
            continue;
        rc = kerr_set(err, KERR_INVALID, "duplicate key in the JSON object");
        for (size_t k = 0; k < sizeof ours / sizeof ours[0]; k++)
            if (strcmp(keys[i], ours[k]) == 0)
                kerr_set(err, KERR_INVALID, "duplicate key '%s'", ours[k]);
    }
    free(keys);
    return rc;
}

static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* The string field `name` into *val (borrowed from obj). Missing or null:
 * an error when required, else *val = NULL. */
static int find_string(const cJSON *obj, const char *name, int required, const char **val,
                       kerr *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    *val = NULL;
    if (it == NULL || cJSON_IsNull(it)) {
        if (required)
            return kerr_set(err, KERR_INVALID, "missing required field '%s'", name);
        return 0;
    }
    if (!cJSON_IsString(it) || it->valuestring == NULL)
        return kerr_set(err, KERR_INVALID, "field '%s' must be a string", name);
    *val = it->valuestring;
    return 0;
}

/* Copy the string field `name` into dst (size cap+1). required: missing or
 * null is an error; otherwise it leaves dst "". */
static int get_string(const cJSON *obj, const char *name, int required, char *dst, size_t cap,
                      kerr *err)
{
    const char *v;
    int rc = find_string(obj, name, required, &v, err);
    if (rc != 0)
        return rc;
    if (v == NULL) {
        dst[0] = '\0';
        return 0;
    }
    size_t n = strlen(v);
    if (required && n == 0)
        return kerr_set(err, KERR_INVALID, "field '%s' is empty", name);
    if (n > cap)
        return kerr_set(err, KERR_INVALID, "field '%s' is longer than %zu bytes", name, cap);
    if (has_control(v))
        return kerr_set(err, KERR_INVALID, "field '%s' contains control characters", name);
    memcpy(dst, v, n + 1);
    return 0;
}

/* externalUserId, checked by the rule every identifier follows. */
static int get_user_id(const cJSON *obj, char dst[KYC_ID_MAX + 1], kerr *err)
{
    const char *v;
    int rc = find_string(obj, "externalUserId", 1, &v, err);
    if (rc != 0)
        return rc;
    if ((rc = kyc_id_check("externalUserId", v, 0, err)) != 0)
        return rc;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

static void note_unknown(char *list, size_t cap, const char *field)
{
    size_t used = strlen(list);
    snprintf(list + used, cap - used, "%s%s", used ? "," : "", field);
}

int payload_parse(enum kyc_kind kind, const char *body, size_t len, kyc_delivery *out, kerr *err)
{
    int rc;
    cJSON *root = NULL;
    char id[KYC_ID_MAX + 1];
    kyc_status st;
    char other[KYC_VALUE_MAX + 1] = "";
    char unknown[sizeof out->unknown_fields] = "";

    memset(&st, 0, sizeof st);
    if (kind < 0 || kind >= KYC_KIND_COUNT)
        return kerr_set(err, KERR_INVALID, "unknown webhook kind");
    if (len == 0)
        return kerr_set(err, KERR_INVALID, "empty body");
    if (!json_utf8_valid(body, len))
        return kerr_set(err, KERR_INVALID, "body is not valid UTF-8");
    if ((rc = json_validate(body, len, err)) != 0)
        return rc;

    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (root == NULL) {
        rc = kerr_set(err, KERR_INVALID, "malformed JSON");
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        rc = kerr_set(err, KERR_INVALID, "body must be a JSON object");
        goto out;
    }
    if ((rc = no_duplicate_keys(root, err)) != 0)
        goto out;
    if ((rc = get_user_id(root, id, err)) != 0)
        goto out;

    if (kind == KYC_KIND_KYC_STATUS) {
        if ((rc = get_string(root, "verificationStatus", 1, st.verification, KYC_VALUE_MAX, err)) ||
            (rc = get_string(root, "attemptStatus", 1, st.attempt, KYC_VALUE_MAX, err)) ||
            (rc = get_string(root, "rejectionReason", 0, st.reason, KYC_REASON_MAX, err)))
            goto out;
        if (kyc_vstatus_parse(st.verification) == KYC_V_UNKNOWN)
            note_unknown(unknown, sizeof unknown, "verificationStatus");
        if (kyc_astatus_parse(st.attempt) == KYC_A_UNKNOWN)
            note_unknown(unknown, sizeof unknown, "attemptStatus");
    } else {
        if ((rc = get_string(root, "status", 1, other, KYC_VALUE_MAX, err)) != 0)
            goto out;
        if (!kyc_other_status_known(kind, other))
            note_unknown(unknown, sizeof unknown, "status");
    }

    /* Success: only now touch the caller's struct. */
    out->kind = kind;
    memcpy(out->external_user_id, id, sizeof id);
    out->status = st;
    memcpy(out->other_status, other, sizeof other);
    memcpy(out->unknown_fields, unknown, sizeof unknown);
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

int payload_parse_delivery(enum kyc_kind kind, const char *body, size_t len, const char *remote,
                           const char *rid, kyc_delivery *d, kerr *err)
{
    /* Built in a copy: remote and rid may be d's own fields. */
    kyc_delivery t = *d;
    int rc = payload_parse(kind, body, len, &t, err);
    if (rc != 0)
        return rc;
    t.body = body;
    t.body_len = len;
    token_sha256_hex(body, len, t.body_sha256);
    snprintf(t.remote_addr, sizeof t.remote_addr, "%s", remote ? remote : "");
    snprintf(t.request_id, sizeof t.request_id, "%s", rid ? rid : "");
    *d = t;
    return 0;
}

void payload_quarantine(enum kyc_kind kind, const char *body, size_t len, const char *remote,
                        const char *rid, const char *reason, kyc_delivery *d)
{
    /* Built in a copy: remote, rid and reason may be d's own fields. */
    kyc_delivery t;
    memset(&t, 0, sizeof t);
    t.kind = kind;
    t.received_us = d->received_us;
    t.body = body;
    t.body_len = len;
    token_sha256_hex(body, len, t.body_sha256);
    snprintf(t.remote_addr, sizeof t.remote_addr, "%s", remote ? remote : "");
    snprintf(t.request_id, sizeof t.request_id, "%s", rid ? rid : "");
    snprintf(t.quarantine, sizeof t.quarantine, "%s", reason && *reason ? reason : "not applied");
    /* The user, if it can be read at all: lenient JSON (the body may have
     * failed the strict rules), the identifier rule unchanged. */
    cJSON *root = len > 0 && json_utf8_valid(body, len)
                      ? cJSON_ParseWithLengthOpts(body, len, NULL, 0)
                      : NULL;
    kerr ignored;
    if (cJSON_IsObject(root) && get_user_id(root, t.external_user_id, &ignored) != 0)
        t.external_user_id[0] = '\0';
    cJSON_Delete(root);
    *d = t;
}

/* ---- P100's API answers and requests. Tolerant, unlike the webhooks:
 * unknown fields are ignored and null counts as absent. */

/* Copy a string for logs: control characters become spaces, and the copy
 * is cut at a UTF-8 character boundary; a string that is not valid UTF-8
 * keeps its ASCII only. */
static void copy_for_log(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src), o = 0;
    int utf8 = json_utf8_valid(src, n);
    for (size_t i = 0; i < n && o + 1 < cap;) {
        unsigned char c = (unsigned char)src[i];
        if (c < 0x80) {
            dst[o++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
            i++;
            continue;
        }
        size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : 4;
        if (!utf8) {
            dst[o++] = '?';
            i++;
            continue;
        }
        if (o + len + 1 > cap)
            break;
        memcpy(dst + o, src + i, len);
        o += len;
        i += len;
    }
    dst[o] = '\0';
}

/* errorMessage as a string, or an array of strings (P403 may carry
 * several messages), joined with "; ". */
static void error_message_of(const cJSON *it, char *dst, size_t cap)
{
    if (cJSON_IsString(it) && it->valuestring) {
        copy_for_log(dst, cap, it->valuestring);
        return;
    }
    if (!cJSON_IsArray(it))
        return;
    size_t used = 0;
    for (const cJSON *e = it->child; e && used + 1 < cap; e = e->next) {
        if (!cJSON_IsString(e) || e->valuestring == NULL)
            continue;
        if (used) {
            if (used + 3 >= cap)
                break;
            memcpy(dst + used, "; ", 3);
            used += 2;
        }
        copy_for_log(dst + used, cap - used, e->valuestring);
        used += strlen(dst + used);
    }
}

int payload_parse_p100_error(const char *body, size_t len, char code[16], char name[64],
                             char message[256])
{
    code[0] = name[0] = message[0] = '\0';
    if (body == NULL || len == 0)
        return KERR_INVALID;
    cJSON *root = cJSON_ParseWithLength(body, len);
    int rc = KERR_INVALID;
    if (root == NULL || !cJSON_IsObject(root))
        goto out;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, "errorCode");
    if (cJSON_IsString(it) && it->valuestring)
        copy_for_log(code, 16, it->valuestring);
    it = cJSON_GetObjectItemCaseSensitive(root, "errorName");
    if (cJSON_IsString(it) && it->valuestring)
        copy_for_log(name, 64, it->valuestring);
    it = cJSON_GetObjectItemCaseSensitive(root, "errorMessage");
    if (it == NULL || cJSON_IsNull(it))
        it = cJSON_GetObjectItemCaseSensitive(root, "message");
    error_message_of(it, message, 256);
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

/* Strict JSON (as for webhooks) because the caller stores the raw body:
 * what passes here is accepted by PostgreSQL's jsonb. */
static cJSON *parse_api_object(const char *body, size_t len, const char *what, kerr *err)
{
    if (body == NULL || len == 0) {
        kerr_set(err, KERR_INVALID, "%s: empty body", what);
        return NULL;
    }
    if (!json_utf8_valid(body, len)) {
        kerr_set(err, KERR_INVALID, "%s: body is not valid UTF-8", what);
        return NULL;
    }
    if (json_validate(body, len, err) != 0) {
        kerr_wrap(err, "%s", what);
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (root == NULL) {
        kerr_set(err, KERR_INVALID, "%s: malformed JSON", what);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        kerr_set(err, KERR_INVALID, "%s: body must be a JSON object", what);
        return NULL;
    }
    return root;
}

int payload_parse_p100_status(const char *body, size_t len, kyc_status *out, kerr *err)
{
    kyc_status st;
    int rc;
    memset(&st, 0, sizeof st);
    cJSON *root = parse_api_object(body, len, "get kyc status answer", err);
    if (root == NULL)
        return KERR_INVALID;
    if ((rc = get_string(root, "verificationStatus", 0, st.verification, KYC_VALUE_MAX, err)) ||
        (rc = get_string(root, "attemptStatus", 0, st.attempt, KYC_VALUE_MAX, err)) ||
        (rc = get_string(root, "rejectionReason", 0, st.reason, KYC_REASON_MAX, err))) {
        kerr_wrap(err, "get kyc status answer");
        goto out;
    }
    if (st.verification[0] == '\0' && st.attempt[0] == '\0') {
        rc = kerr_set(err, KERR_INVALID,
                      "get kyc status answer: neither 'verificationStatus' nor "
                      "'attemptStatus' is present");
        goto out;
    }
    *out = st;
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

int payload_parse_p100_created(const char *body, size_t len, char *verification_id, size_t cap,
                               kerr *err)
{
    char id[KYC_ID_MAX + 1];
    int rc;
    if (verification_id == NULL || cap == 0)
        return kerr_set(err, KERR_INVALID, "no room for the verification id");
    cJSON *root = parse_api_object(body, len, "create kyc answer", err);
    if (root == NULL)
        return KERR_INVALID;
    if ((rc = get_string(root, "verificationId", 1, id, KYC_ID_MAX, err)) != 0) {
        kerr_wrap(err, "create kyc answer");
        goto out;
    }
    size_t n = strlen(id);
    if (n >= cap) {
        rc =
            kerr_set(err, KERR_INVALID,
                     "create kyc answer: field 'verificationId' is longer than %zu bytes", cap - 1);
        goto out;
    }
    memcpy(verification_id, id, n + 1);
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

int payload_build_p100_create(const p100_create_req *req, kbuf *out, kerr *err)
{
    int rc;
    char *text = NULL;
    cJSON *root = NULL;
    if ((rc = p100_create_validate(req, err)) != 0)
        return rc;
    static const struct {
        const char *key;
        size_t off;
        int optional;
    } fields[] = {
        {"externalUserId", offsetof(p100_create_req, external_user_id), 0},
        {"documentType", offsetof(p100_create_req, document_type), 0},
        {"country", offsetof(p100_create_req, country), 0},
        {"incomeSource", offsetof(p100_create_req, income_source), 0},
        {"openAccountReason", offsetof(p100_create_req, open_account_reason), 0},
        {"occupation", offsetof(p100_create_req, occupation), 1},
        {"additionalInfo", offsetof(p100_create_req, additional_info), 1},
        {"taxId", offsetof(p100_create_req, tax_id), 1},
    };
    root = cJSON_CreateObject();
    if (root == NULL)
        goto nomem;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const char *v = (const char *)req + fields[i].off;
        if (fields[i].optional && v[0] == '\0')
            continue;
        if (cJSON_AddStringToObject(root, fields[i].key, v) == NULL)
            goto nomem;
    }
    text = cJSON_PrintUnformatted(root);
    if (text == NULL)
        goto nomem;
    if (kbuf_append(out, text, strlen(text)) != 0)
        goto nomem;
    rc = 0;
    goto out;
nomem:
    rc = kerr_set(err, KERR_NOMEM, "out of memory building the create kyc request");
out:
    cJSON_free(text);
    cJSON_Delete(root);
    return rc;
}
