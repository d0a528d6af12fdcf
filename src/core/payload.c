/* Webhook body parsing and validation: the only user of cJSON in the
 * service. Pure: never logs, never quotes the body in an error. */
#include "core/payload.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#define PAYLOAD_MAX_DEPTH 32

int payload_utf8_valid(const char *buf, size_t len)
{
    const unsigned char *s = (const unsigned char *)buf;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        unsigned int cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - i - 1 < n) /* truncated sequence */
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000))
            return 0; /* overlong */
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* One pass over the raw text, outside and inside strings: nesting depth,
 * raw NUL bytes and \u0000 escapes (PostgreSQL's jsonb refuses the latter,
 * and C strings would silently cut the value there). */
static int scan_raw(const char *body, size_t len, kerr *err)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (c == '\0')
            return kerr_set(err, KERR_INVALID, "body contains a NUL byte");
        if (in_str) {
            if (c == '\\') {
                if (i + 5 < len && body[i + 1] == 'u' && memcmp(body + i + 2, "0000", 4) == 0)
                    return kerr_set(err, KERR_INVALID, "body contains a \\u0000 escape");
                i++; /* skip the escaped character */
            } else if (c == '"') {
                in_str = 0;
            }
            continue;
        }
        if (c == '"')
            in_str = 1;
        else if (c == '{' || c == '[') {
            if (++depth > PAYLOAD_MAX_DEPTH)
                return kerr_set(err, KERR_INVALID, "JSON nested deeper than %d levels",
                                PAYLOAD_MAX_DEPTH);
        } else if (c == '}' || c == ']')
            depth--;
    }
    return 0;
}

static int no_duplicate_keys(const cJSON *obj, kerr *err)
{
    for (const cJSON *a = obj->child; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
            if (a->string && b->string && strcmp(a->string, b->string) == 0)
                return kerr_set(err, KERR_INVALID, "duplicate key '%.64s'", a->string);
    return 0;
}

static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* Copy the string field `name` into dst (size cap+1). required: missing or
 * null is an error; otherwise it leaves dst "". */
static int get_string(const cJSON *obj, const char *name, int required, char *dst, size_t cap,
                      kerr *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (it == NULL || cJSON_IsNull(it)) {
        if (required)
            return kerr_set(err, KERR_INVALID, "missing required field '%s'", name);
        dst[0] = '\0';
        return 0;
    }
    if (!cJSON_IsString(it) || it->valuestring == NULL)
        return kerr_set(err, KERR_INVALID, "field '%s' must be a string", name);
    size_t n = strlen(it->valuestring);
    if (required && n == 0)
        return kerr_set(err, KERR_INVALID, "field '%s' is empty", name);
    if (n > cap)
        return kerr_set(err, KERR_INVALID, "field '%s' is longer than %zu bytes", name, cap);
    if (has_control(it->valuestring))
        return kerr_set(err, KERR_INVALID, "field '%s' contains control characters", name);
    memcpy(dst, it->valuestring, n + 1);
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
    if (!payload_utf8_valid(body, len))
        return kerr_set(err, KERR_INVALID, "body is not valid UTF-8");
    if ((rc = scan_raw(body, len, err)) != 0)
        return rc;

    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (root == NULL) {
        rc = kerr_set(err, KERR_INVALID, "malformed JSON");
        goto out;
    }
    for (; end && end < body + len; end++) {
        if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n') {
            rc = kerr_set(err, KERR_INVALID, "trailing data after the JSON value");
            goto out;
        }
    }
    if (!cJSON_IsObject(root)) {
        rc = kerr_set(err, KERR_INVALID, "body must be a JSON object");
        goto out;
    }
    if ((rc = no_duplicate_keys(root, err)) != 0)
        goto out;
    if ((rc = get_string(root, "externalUserId", 1, id, KYC_ID_MAX, err)) != 0)
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
