/* p100-sim: the Partner API (see sim_api.h). Where P100's documentation is
 * silent, the decision taken is marked "P100 is silent".
 *
 * Must never: compare the key in variable time, or log it. */
#include "sim_api.h"

#include "sim_state.h"
#include "sim_util.h"

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

static const char *const document_types[] = {"ID_CARD", "PASSPORT", "RESIDENCE_PERMIT",
                                             "DRIVER_LICENSE", NULL};
static const char *const income_sources[] = {
    "BUSINESS_ACTIVITY", "SALARY",          "OTHER",   "MAINTAINED_BY_FAMILY",
    "INVESTMENTS",       "SOCIAL_BENEFITS", "TENANCY", NULL};
/* The older page spells the first without the final S: both are accepted. */
static const char *const open_reasons[] = {"INVESTMENTS_OR_CRYPTOCURRENCIES",
                                           "INVESTMENTS_OR_CRYPTOCURRENCIE",
                                           "CURRENCY_EXCHANGE",
                                           "DAILY_USE",
                                           "GAMING_OR_GAMBLING",
                                           "TRANSFER_OF_FUNDS_OUTSIDE_OF_EUROPE",
                                           NULL};
static const char *const occupations[] = {"IT",
                                          "HEALTHCARE_AND_MEDICAL_SERVICES",
                                          "FINANCE_AND_ACCOUNTING",
                                          "EDUCATION_AND_TEACHING",
                                          "SALES_AND_MARKETING",
                                          "ENGINEERING",
                                          "CUSTOMER_SERVICE",
                                          "ADMINISTRATION_AND_OFFICE_MANAGEMENT",
                                          "LEGAL_SERVICES",
                                          "ARTS_AND_DESIGN",
                                          "RETAIL_AND_SALES",
                                          "CONSTRUCTION_AND_TRADES",
                                          "HUMAN_RESOURCES",
                                          "MANUFACTURING_AND_PRODUCTION",
                                          "SCIENCE_AND_RESEARCH",
                                          NULL};

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

static void list_join(char *dst, size_t cap, const char *const *list)
{
    dst[0] = '\0';
    for (size_t n = 0; *list; list++) {
        int m = snprintf(dst + n, cap - n, "%s%s", n ? ", " : "", *list);
        if (m < 0 || (size_t)m >= cap - n)
            return;
        n += (size_t)m;
    }
}

/* A required string field from an enum; appends a message when wrong. */
static const char *check_enum(const cJSON *root, const char *field, const char *const *list,
                              bool required, char *msg, size_t cap)
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
    if (list && !in_list(it->valuestring, list)) {
        list_join(allowed, sizeof allowed, list);
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
    check_enum(root, "documentType", document_types, true, msg, cap);
    const char *country = check_enum(root, "country", NULL, true, msg, cap);
    if (country && !(strlen(country) == 2 && country[0] >= 'A' && country[0] <= 'Z' &&
                     country[1] >= 'A' && country[1] <= 'Z'))
        msg_add(msg, cap, "country must be an ISO 3166-1 alpha-2 code");
    const char *income = check_enum(root, "incomeSource", income_sources, true, msg, cap);
    check_enum(root, "openAccountReason", open_reasons, true, msg, cap);
    check_enum(root, "occupation", occupations, income && strcmp(income, "SALARY") == 0, msg, cap);
    if (income && strcmp(income, "BUSINESS_ACTIVITY") == 0) {
        const cJSON *tax = cJSON_GetObjectItemCaseSensitive(root, "taxId");
        if (tax == NULL || cJSON_IsNull(tax) ||
            (cJSON_IsString(tax) && tax->valuestring[0] == '\0') ||
            (cJSON_IsArray(tax) && cJSON_GetArraySize(tax) == 0))
            msg_add(msg, cap, "taxId must not be empty when incomeSource is BUSINESS_ACTIVITY");
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
    return u->has_kyc &&
           (strcmp(u->astatus, "PENDING") == 0 || strcmp(u->astatus, "VERIFICATION") == 0);
}

static void api_create(reply *r, const char *body)
{
    char uid[ID_MAX + 1], msg[2048], vid[37];
    if (!create_validate(body, uid, msg, sizeof msg)) {
        reply_p100(r, 400, "P403", NULL, msg);
        return;
    }
    state_new_uuid(vid);
    pthread_mutex_lock(&sim_state.mu);
    /* P100's "create user account" is outside kycd: the first create makes the user. */
    user *u = state_get(uid);
    int outcome = 0;
    if (u == NULL) {
        outcome = -1;
    } else {
        state_user_make_real(u);
        if (attempt_pending(u)) {
            outcome = 1;
        } else if (u->has_kyc && strcmp(u->vstatus, "VERIFIED") == 0) {
            outcome = 2;
        } else {
            u->has_kyc = true;
            snprintf(u->vstatus, sizeof u->vstatus, "NOT_VERIFIED");
            snprintf(u->astatus, sizeof u->astatus, "PENDING");
            u->reason[0] = '\0';
            snprintf(u->vid, sizeof u->vid, "%s", vid);
        }
    }
    pthread_mutex_unlock(&sim_state.mu);
    if (outcome == -1) {
        reply_p100(r, 400, "P500", "unknown-exception", "Unknown exception");
    } else if (outcome == 1) {
        reply_p100(r, 202, "P212", "kyc-pending", "KYC verification pending");
    } else if (outcome == 2) {
        reply_p100(r, 400, "P450", "kyc-already-verified", "KYC already verified");
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "verificationId", vid);
        reply_json(r, 201, o);
    }
}

static void api_status(reply *r, const char *uid)
{
    user copy;
    bool found = false;
    pthread_mutex_lock(&sim_state.mu);
    user *u = strlen(uid) <= ID_MAX ? state_find(uid) : NULL;
    if (u && u->exists) {
        copy = *u;
        found = true;
    }
    pthread_mutex_unlock(&sim_state.mu);
    if (!found) {
        reply_p100(r, 400, "P412", "invalid-user", "User does not exist");
    } else if (!copy.has_kyc) {
        reply_p100(r, 404, "P445", "kyc-not-found", "KYC not found");
    } else {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "externalUserId", copy.id);
        cJSON_AddStringToObject(o, "verificationStatus", copy.vstatus);
        cJSON_AddStringToObject(o, "attemptStatus", copy.astatus);
        if (copy.reason[0])
            cJSON_AddStringToObject(o, "rejectionReason", copy.reason);
        cJSON_AddStringToObject(o, "verificationId", copy.vid);
        reply_json(r, 200, o);
    }
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
        reply_p100(r, 404, "P445", "kyc-not-found", "KYC not found");
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
        reply_p100(r, 400, "P500", "unknown-exception", "Unknown exception");
        break;
    case FAIL_P501:
        reply_p100(r, 400, "P501", "service-unavailable", "Service temporarily unavailable");
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
    enum { GO, DENY_XO1, DENY_XO2, DENY_XO3, FAIL, FAIL_RL } verdict = GO;
    faults f;
    bool counted_user = false;

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
    pthread_mutex_unlock(&sim_state.mu);

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
        if (counted_user && (u = state_find(uid)) != NULL && u->inflight > 0)
            u->inflight--;
    }
    if (r->code[0])
        state_count_error(r->code);
    pthread_mutex_unlock(&sim_state.mu);
}
