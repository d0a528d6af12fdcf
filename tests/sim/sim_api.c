/* p100-sim: the Partner API (see sim_api.h). Where P100's documentation is
 * silent, the decision taken is marked "P100 is silent".
 *
 * Must never: compare the key in variable time, or log it. */
#include "sim_api.h"

#include "sim_state.h"
#include "sim_util.h"

#include "core/kyc.h"
#include "core/p100.h"
#include "core/vocab.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char api_key[512];

void api_init(const char *key)
{
    snprintf(api_key, sizeof api_key, "%s", key);
}

void api_deinit(void)
{
    memset(api_key, 0, sizeof api_key);
}

static bool consttime_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = (unsigned char)(la != lb);
    for (size_t i = 0; i < la; i++)
        d |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return d == 0 && lb > 0;
}

static void msg_add(char *dst, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void msg_add(char *dst, size_t cap, const char *fmt, ...)
{
    size_t n = strlen(dst);
    if (n > 0 && n + 2 < cap) {
        strcpy(dst + n, "; ");
        n += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst + n, cap - n, fmt, ap);
    va_end(ap);
}

static void list_join(char *dst, size_t cap, const vocab *v)
{
    dst[0] = '\0';
    for (size_t n = 0, i = 0; i < (size_t)vocab_count(v); i++) {
        int m = snprintf(dst + n, cap - n, "%s%s", n ? ", " : "", vocab_nth(v, (int)i));
        if (m < 0 || (size_t)m >= cap - n)
            return;
        n += (size_t)m;
    }
}

/* A string field, from P100's table v when v is not NULL (core's
 * vocabulary: the older spelling INVESTMENTS_OR_CRYPTOCURRENCIE is not
 * P100's current word, so it is refused like any other); appends a message
 * when wrong. */
static const char *check_enum(const cJSON *root, const char *field, const vocab *v, bool required,
                              char *msg, size_t cap)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, field);
    char allowed[1024];
    if (it == NULL || cJSON_IsNull(it)) {
        if (required)
            msg_add(msg, cap, "%s must not be null", field);
        return NULL;
    }
    if (!cJSON_IsString(it) || it->valuestring[0] == '\0') {
        msg_add(msg, cap, "%s must not be blank", field);
        return NULL;
    }
    if (v && vocab_value(v, it->valuestring) < 0) {
        list_join(allowed, sizeof allowed, v);
        msg_add(msg, cap, "%s must be one of: %s", field, allowed);
        return NULL;
    }
    return it->valuestring;
}

/* Validates the create body like P100 (P403, all problems joined). Fills
 * uid on success; returns false with msg set otherwise. */
static bool create_validate(const char *body, char *uid, char *msg, size_t cap)
{
    msg[0] = '\0';
    cJSON *root = body ? cJSON_Parse(body) : NULL;
    if (root == NULL || !cJSON_IsObject(root)) {
        snprintf(msg, cap, "Request body is not a valid JSON object");
        cJSON_Delete(root);
        return false;
    }
    const char *id = check_enum(root, "externalUserId", NULL, true, msg, cap);
    if (id && strlen(id) > ID_MAX)
        msg_add(msg, cap, "externalUserId must be at most %d characters", ID_MAX);
    check_enum(root, "documentType", &VOCAB_DOCUMENT_TYPE, true, msg, cap);
    const char *country = check_enum(root, "country", NULL, true, msg, cap);
    if (country && !(strlen(country) == 2 && country[0] >= 'A' && country[0] <= 'Z' &&
                     country[1] >= 'A' && country[1] <= 'Z'))
        msg_add(msg, cap, "country must be an ISO 3166-1 alpha-2 code");
    const char *income = check_enum(root, "incomeSource", &VOCAB_INCOME_SOURCE, true, msg, cap);
    int inc = vocab_value(&VOCAB_INCOME_SOURCE, income);
    check_enum(root, "openAccountReason", &VOCAB_OPEN_ACCOUNT_REASON, true, msg, cap);
    check_enum(root, "occupation", &VOCAB_OCCUPATION, inc == P100_INCOME_SALARY, msg, cap);
    if (inc == P100_INCOME_BUSINESS_ACTIVITY) {
        const cJSON *tax = cJSON_GetObjectItemCaseSensitive(root, "taxId");
        if (tax == NULL || cJSON_IsNull(tax) ||
            (cJSON_IsString(tax) && tax->valuestring[0] == '\0') ||
            (cJSON_IsArray(tax) && cJSON_GetArraySize(tax) == 0))
            msg_add(msg, cap, "taxId must not be empty when incomeSource is %s", income);
    }
    const cJSON *info = cJSON_GetObjectItemCaseSensitive(root, "additionalInfo");
    if (info && !cJSON_IsNull(info) && !cJSON_IsString(info))
        msg_add(msg, cap, "additionalInfo must be a string");
    bool ok = msg[0] == '\0';
    if (ok)
        snprintf(uid, ID_MAX + 1, "%s", id);
    cJSON_Delete(root);
    return ok;
}

static bool attempt_pending(const user *u)
{
    int a = vocab_value(&VOCAB_ATTEMPT_STATUS, u->astatus);
    return u->has_kyc && (a == KYC_A_PENDING || a == KYC_A_VERIFICATION);
}

static void api_create(reply *r, const char *body)
{
    char uid[ID_MAX + 1], msg[2048], vid[37];
    if (!create_validate(body, uid, msg, sizeof msg)) {
        reply_p100(r, 400, vocab_name(&VOCAB_ERROR_CODE, P100_CODE_P403), NULL, msg);
        return;
    }
    state_new_uuid(vid);
    pthread_mutex_lock(&sim_state.mu);
    /* P100's "create user account" is outside kycd: by default the first
     * create makes the user; with unknown_users "refuse" it is P412, as
     * P100 answers for a user the partner never created. */
    user *u = state_get(uid);
    int outcome = 0;
    if (u == NULL) {
        outcome = P100_CODE_P500;
    } else if (!u->exists && sim_state.a.refuse_unknown) {
        outcome = P100_CODE_P412;
    } else {
        state_user_make_real(u);
        if (attempt_pending(u)) {
            outcome = P100_CODE_P212;
        } else if (u->has_kyc &&
                   vocab_value(&VOCAB_VERIFICATION_STATUS, u->vstatus) == KYC_V_VERIFIED) {
            outcome = P100_CODE_P450;
        } else {
            u->has_kyc = true;
            snprintf(u->vstatus, sizeof u->vstatus, "%s",
                     vocab_name(&VOCAB_VERIFICATION_STATUS, KYC_V_NOT_VERIFIED));
            snprintf(u->astatus, sizeof u->astatus, "%s",
                     vocab_name(&VOCAB_ATTEMPT_STATUS, KYC_A_PENDING));
            u->reason[0] = '\0';
            snprintf(u->vid, sizeof u->vid, "%s", vid);
        }
    }
    pthread_mutex_unlock(&sim_state.mu);
    if (outcome != 0) {
        reply_p100_code(r, outcome);
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "verificationId", vid);
        reply_json(r, 201, o);
    }
}

/* The 200 body of Get KYC Status, in the shape the control API chose (P100
 * is silent on this body: see enum body_shape). */
static cJSON *status_body(const user *u, enum body_shape shape)
{
    cJSON *o = cJSON_CreateObject();
    if (shape == SHAPE_REORDERED) {
        cJSON_AddStringToObject(o, "verificationId", u->vid);
        if (u->reason[0])
            cJSON_AddStringToObject(o, "rejectionReason", u->reason);
        cJSON_AddStringToObject(o, "attemptStatus", u->astatus);
        cJSON_AddStringToObject(o, "verificationStatus", u->vstatus);
        cJSON_AddStringToObject(o, "externalUserId", u->id);
        return o;
    }
    if (shape == SHAPE_EXTRA_FIELDS) {
        /* Fields kycd does not know, of every JSON type, before and after. */
        cJSON_AddStringToObject(o, "kycProvider", "IDENFY");
        cJSON_AddNumberToObject(o, "attemptCount", 2);
    }
    if (shape != SHAPE_NO_EXTERNAL_USER_ID)
        cJSON_AddStringToObject(o, "externalUserId", u->id);
    cJSON_AddStringToObject(o, "verificationStatus", u->vstatus);
    cJSON_AddStringToObject(o, "attemptStatus", u->astatus);
    if (u->reason[0])
        cJSON_AddStringToObject(o, "rejectionReason", u->reason);
    if (shape != SHAPE_NO_VERIFICATION_ID)
        cJSON_AddStringToObject(o, "verificationId", u->vid);
    if (shape == SHAPE_EXTRA_FIELDS) {
        cJSON_AddBoolToObject(o, "manualReview", 0);
        cJSON_AddNullToObject(o, "expiresAt");
        cJSON *docs = cJSON_AddArrayToObject(o, "documents");
        cJSON *d = cJSON_CreateObject();
        cJSON_AddStringToObject(d, "type", vocab_nth(&VOCAB_DOCUMENT_TYPE, 0));
        cJSON_AddStringToObject(d, "country", "PL");
        cJSON_AddItemToArray(docs, d);
        cJSON *meta = cJSON_AddObjectToObject(o, "meta");
        cJSON_AddStringToObject(meta, "verificationStatus", "NOT_A_STATUS");
    }
    return o;
}

static void api_status(reply *r, const char *uid)
{
    user copy;
    bool found = false;
    enum body_shape shape;
    pthread_mutex_lock(&sim_state.mu);
    user *u = strlen(uid) <= ID_MAX ? state_find(uid) : NULL;
    if (u && u->exists) {
        copy = *u;
        found = true;
    }
    shape = sim_state.a.shape;
    pthread_mutex_unlock(&sim_state.mu);
    if (!found)
        reply_p100_code(r, P100_CODE_P412);
    else if (!copy.has_kyc)
        reply_p100_code(r, P100_CODE_P445);
    else
        reply_json(r, 200, status_body(&copy, shape));
}

static void html_escape(char *dst, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        const char *e = NULL;
        switch (*s) {
        case '&':
            e = "&amp;";
            break;
        case '<':
            e = "&lt;";
            break;
        case '>':
            e = "&gt;";
            break;
        case '"':
            e = "&quot;";
            break;
        case '\'':
            e = "&#39;";
            break;
        default:
            break;
        }
        if (e) {
            memcpy(dst + n, e, strlen(e));
            n += strlen(e);
        } else {
            dst[n++] = *s;
        }
    }
    dst[n] = '\0';
}

static void api_page(reply *r, const char *uid, const char *vid)
{
    bool found = false;
    pthread_mutex_lock(&sim_state.mu);
    user *u = strlen(uid) <= ID_MAX ? state_find(uid) : NULL;
    if (u && u->exists && u->has_kyc && strcmp(u->vid, vid) == 0)
        found = true;
    pthread_mutex_unlock(&sim_state.mu);
    if (!found) {
        reply_p100_code(r, P100_CODE_P445);
        return;
    }
    char eu[ID_MAX * 6 + 1], ev[VALUE_MAX * 6 + 1], page[4096];
    html_escape(eu, sizeof eu, uid);
    html_escape(ev, sizeof ev, vid);
    snprintf(page, sizeof page,
             "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>P100 "
             "verification</title></head>\n"
             "<body><h1>Identity verification</h1>\n"
             "<p>User %s, verification %s.</p>\n"
             "<p><a id=\"idp\" href=\"https://idenfy.p100-sim.invalid/session/%s\">Continue to the "
             "identity "
             "provider</a> (simulated: this address does not exist).</p>\n"
             "</body></html>\n",
             eu, ev, ev);
    reply_text(r, 200, "text/html; charset=utf-8", page);
}

static void reply_fault(reply *r, enum fail_kind k, long retry_after)
{
    switch (k) {
    case FAIL_P500:
        reply_p100_code(r, P100_CODE_P500);
        break;
    case FAIL_P501:
        reply_p100_code(r, P100_CODE_P501);
        break;
    case FAIL_503:
        /* What a load balancer in front of P100 would say: not P100's JSON. */
        reply_text(r, 503, "text/html",
                   "<html><head><title>503 Service Temporarily Unavailable</title></head>"
                   "<body><h1>503 Service Temporarily Unavailable</h1></body></html>\n");
        snprintf(r->code, sizeof r->code, "503");
        r->retry_after = retry_after;
        break;
    case FAIL_429:
        /* P100 is silent on its rate limit answer: a bare errorMessage, and
         * Retry-After only when the fault asks for one. */
        reply_p100(r, 429, NULL, NULL, "Too Many Requests");
        r->retry_after = retry_after;
        break;
    }
}

enum api_kind { API_NONE, API_STATUS, API_CREATE, API_PAGE, API_NOT_FOUND, API_BAD_METHOD };

void api_handle(struct mg_connection *conn, const struct mg_request_info *ri, reply *r,
                char *log_user, size_t log_user_cap, const char **fault_out)
{
    char path[2048];
    char *seg[6];
    snprintf(path, sizeof path, "%s", ri->local_uri ? ri->local_uri + 1 : "");
    int n = http_split_path(path, seg, 6);
    bool get = strcmp(ri->request_method, "GET") == 0;
    bool post = strcmp(ri->request_method, "POST") == 0;
    enum api_kind kind = API_NOT_FOUND;
    const char *uid = NULL, *vid = NULL;
    if (n >= 2 && strcmp(seg[0], "v1") == 0 && strcmp(seg[1], "kyc") == 0) {
        if (n == 2) {
            kind = post ? API_CREATE : API_BAD_METHOD;
        } else if (n == 4 && strcmp(seg[2], "status") == 0) {
            kind = get ? API_STATUS : API_BAD_METHOD;
            uid = seg[3];
        } else if (n == 5 && strcmp(seg[2], "verification") == 0) {
            kind = get ? API_PAGE : API_BAD_METHOD;
            uid = seg[3];
            vid = seg[4];
        }
    }

    char *body = NULL;
    bool too_big = false;
    char body_uid[ID_MAX + 1] = "";
    if (kind == API_CREATE) {
        body = http_read_body(conn, &too_big);
        /* Only to count the call against its user; validated later. */
        cJSON *root = body ? cJSON_Parse(body) : NULL;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(root, "externalUserId");
        if (cJSON_IsString(id) && strlen(id->valuestring) <= ID_MAX)
            snprintf(body_uid, sizeof body_uid, "%s", id->valuestring);
        cJSON_Delete(root);
        uid = body_uid[0] ? body_uid : NULL;
    }
    if (uid)
        snprintf(log_user, log_user_cap, "%s", uid);

    const char *key = mg_get_header(conn, "x-api-key");
    enum {
        GO,
        DENY_XO1,
        DENY_XO2,
        DENY_XO3,
        FAIL,
        FAIL_RL,
        LIMIT_BUCKET,
        LIMIT_CONCURRENCY,
        ANSWER
    } verdict = GO;
    faults f;
    bool counted_user = false, admitted_status = false;
    long limit_retry_after = 0;
    char answer_code[sizeof sim_state.a.code] = "";
    int answer_http = 0;

    pthread_mutex_lock(&sim_state.mu);
    uint64_t epoch = sim_state.epoch;
    f = sim_state.f;
    sim_state.api_calls++;
    if (kind == API_STATUS)
        sim_state.status_calls++;
    else if (kind == API_CREATE)
        sim_state.create_calls++;
    else if (kind == API_PAGE)
        sim_state.page_calls++;
    if (++sim_state.inflight > sim_state.max_inflight)
        sim_state.max_inflight = sim_state.inflight;
    user *u = uid ? state_get(uid) : NULL;
    if (u) {
        u->calls++;
        if (kind == API_STATUS) {
            u->status_calls++;
            counted_user = true;
            if (++u->inflight > u->max_inflight)
                u->max_inflight = u->inflight;
            if (u->inflight > sim_state.max_inflight_user)
                sim_state.max_inflight_user = u->inflight;
        }
    }
    /* The order of P100's own checks as far as the codes tell: the IP
         * allow-list (xo3), then the key (xo1 missing, xo2 wrong). The browser
         * page carries no key: it is shown to the user, not the partner. */
    if (f.unauthorized)
        verdict = DENY_XO3;
    else if (kind != API_PAGE && (key == NULL || key[0] == '\0'))
        verdict = DENY_XO1;
    else if (kind != API_PAGE && !consttime_eq(key, api_key))
        verdict = DENY_XO2;
    else if ((kind == API_STATUS || kind == API_CREATE) && !state_bucket_take(&limit_retry_after))
        verdict = LIMIT_BUCKET;
    else if (kind == API_STATUS && sim_state.lim.max_status_in_flight > 0 &&
             sim_state.status_inflight >= sim_state.lim.max_status_in_flight)
        verdict = LIMIT_CONCURRENCY;
    else if ((kind == API_STATUS || kind == API_CREATE || kind == API_PAGE) &&
             (f.scope == SCOPE_ALL || (f.scope == SCOPE_STATUS && kind == API_STATUS) ||
              (f.scope == SCOPE_CREATE && kind == API_CREATE))) {
        if (sim_state.f.fail_next > 0) {
            sim_state.f.fail_next--;
            verdict = FAIL;
        } else if (f.fail_rate > 0 && state_rng_unit() < f.fail_rate) {
            verdict = FAIL;
        } else if (f.rate_limit_rate > 0 && state_rng_unit() < f.rate_limit_rate) {
            verdict = FAIL_RL;
        }
        if (f.slow_rate > 0 && state_rng_unit() < f.slow_rate)
            f.latency_ms = f.slow_ms;
    }
    /* The answer the control API chose, for calls that no fault took. */
    answers *a = &sim_state.a;
    if (verdict == GO && a->code[0] && a->count != 0 &&
        (kind == API_STATUS || kind == API_CREATE) &&
        (a->scope == SCOPE_ALL || (a->scope == SCOPE_STATUS && kind == API_STATUS) ||
         (a->scope == SCOPE_CREATE && kind == API_CREATE)) &&
        (a->user[0] == '\0' || (uid && strcmp(a->user, uid) == 0))) {
        verdict = ANSWER;
        snprintf(answer_code, sizeof answer_code, "%s", a->code);
        answer_http = a->http;
        if (a->count > 0)
            a->count--;
    }
    if (verdict == LIMIT_BUCKET) {
        sim_state.limited_bucket++;
        limit_retry_after = sim_state.lim.retry_after ? limit_retry_after : 0;
    } else if (verdict == LIMIT_CONCURRENCY) {
        sim_state.limited_concurrency++;
        /* P100 is silent: a call refused for concurrency may retry in a second. */
        limit_retry_after = sim_state.lim.retry_after ? 1 : 0;
    } else if (verdict == FAIL_RL || (verdict == FAIL && f.fail_with == FAIL_429)) {
        sim_state.limited_faults++;
    }
    if (kind == API_STATUS &&
        (verdict == GO || verdict == ANSWER || verdict == FAIL || verdict == FAIL_RL)) {
        admitted_status = true;
        sim_state.status_inflight++;
    }
    pthread_mutex_unlock(&sim_state.mu);

    /* A limit answers at once, as a gateway in front of P100 would. */
    if (verdict != LIMIT_BUCKET && verdict != LIMIT_CONCURRENCY)
        latency_wait(f.latency_ms);

    *fault_out = "-";
    switch (verdict) {
    case DENY_XO1:
        reply_p100(r, 401, NULL, NULL, "Access Denied. xo1");
        break;
    case DENY_XO2:
        reply_p100(r, 401, NULL, NULL, "Access Denied. xo2");
        break;
    case DENY_XO3:
        reply_p100(r, 401, NULL, NULL, "Access Denied. xo3");
        *fault_out = "unauthorized";
        break;
    case FAIL:
        reply_fault(r, f.fail_with, f.retry_after);
        *fault_out = fail_names[f.fail_with];
        break;
    case FAIL_RL:
        reply_fault(r, FAIL_429, f.retry_after);
        *fault_out = fail_names[FAIL_429];
        break;
    case LIMIT_BUCKET:
    case LIMIT_CONCURRENCY:
        reply_fault(r, FAIL_429, limit_retry_after);
        *fault_out = verdict == LIMIT_BUCKET ? "token_bucket" : "concurrency";
        break;
    case ANSWER: {
        int c = vocab_value(&VOCAB_ERROR_CODE, answer_code);
        if (c >= 0 && answer_http == reply_code_http(c))
            reply_p100_code(r, c);
        else /* an undocumented code, or a documented one with another status */
            reply_p100(r, answer_http, answer_code, NULL, "Answer chosen by p100-sim");
        *fault_out = "answer";
        break;
    }
    case GO:
        if (kind == API_STATUS)
            api_status(r, uid);
        else if (kind == API_CREATE && too_big)
            reply_p100(r, 413, NULL, NULL, "Request body too large");
        else if (kind == API_CREATE)
            api_create(r, body);
        else if (kind == API_PAGE)
            api_page(r, uid, vid);
        else if (kind == API_BAD_METHOD)
            reply_p100(r, 405, NULL, NULL, "Method Not Allowed");
        else
            reply_p100(r, 404, NULL, NULL, "Not Found");
        break;
    }
    free(body);

    pthread_mutex_lock(&sim_state.mu);
    if (epoch == sim_state.epoch) {
        sim_state.inflight--;
        if (admitted_status && sim_state.status_inflight > 0)
            sim_state.status_inflight--;
        if (counted_user && (u = state_find(uid)) != NULL && u->inflight > 0)
            u->inflight--;
    }
    if (r->code[0])
        state_count_error(r->code);
    pthread_mutex_unlock(&sim_state.mu);
}
