/* p100-sim: the control API (see sim_control.h).
 *
 * Must never: hold sim_state.mu while it submits a webhook. */
#include "sim_control.h"

#include "sim_state.h"
#include "sim_util.h"
#include "sim_webhooks.h"

#include "core/vocab.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copies a string field (absent/null -> ""); false when of another type or too long. */
static bool get_str(const cJSON *o, const char *name, char *dst, size_t cap, bool *present)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    if (present)
        *present = it != NULL && !cJSON_IsNull(it);
    dst[0] = '\0';
    if (it == NULL || cJSON_IsNull(it))
        return true;
    if (!cJSON_IsString(it) || strlen(it->valuestring) >= cap)
        return false;
    strcpy(dst, it->valuestring);
    return true;
}

static bool only_keys(const cJSON *o, const char *const *allowed, char *bad, size_t cap)
{
    for (const cJSON *it = o->child; it; it = it->next)
        if (!in_list(it->string, allowed)) {
            snprintf(bad, cap, "unknown field %s", it->string);
            return false;
        }
    return true;
}

/* A boolean field (absent/null -> false); false when of another type. */
static bool get_bool(const cJSON *o, const char *name, bool *v)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    *v = false;
    if (it == NULL || cJSON_IsNull(it))
        return true;
    if (!cJSON_IsBool(it))
        return false;
    *v = cJSON_IsTrue(it);
    return true;
}

/* Strict values: val ("" passes) must be a value P100 documents for the
 * field (core's table v), unless the request says "undocumented": true (a
 * test of what kycd does with a value P100 may add). Otherwise a 400 that
 * names the field and lists P100's values. */
static bool check_value(reply *r, const vocab *v, const char *field, const char *val,
                        bool undocumented)
{
    if (val[0] == '\0' || undocumented || vocab_value(v, val) >= 0)
        return true;
    char allowed[1024] = "", msg[1400];
    for (size_t n = 0, i = 0; i < (size_t)vocab_count(v); i++) {
        int m =
            snprintf(allowed + n, sizeof allowed - n, "%s%s", n ? ", " : "", vocab_nth(v, (int)i));
        if (m < 0 || (size_t)m >= sizeof allowed - n)
            break;
        n += (size_t)m;
    }
    char shown[VALUE_MAX + 1];
    snprintf(msg, sizeof msg,
             "%s: %s is not a value P100 documents for %s (%s); say \"undocumented\": true to "
             "use it anyway",
             field, logsafe(shown, sizeof shown, val), v->field, allowed);
    reply_sim_error(r, 400, msg);
    return false;
}

static cJSON *user_json(const user *u)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "externalUserId", u->id);
    cJSON_AddBoolToObject(o, "exists", u->exists);
    if (u->has_kyc) {
        cJSON_AddStringToObject(o, "verificationStatus", u->vstatus);
        cJSON_AddStringToObject(o, "attemptStatus", u->astatus);
        if (u->reason[0])
            cJSON_AddStringToObject(o, "rejectionReason", u->reason);
        cJSON_AddStringToObject(o, "verificationId", u->vid);
    }
    cJSON_AddNumberToObject(o, "calls", (double)u->calls);
    cJSON_AddNumberToObject(o, "status_calls", (double)u->status_calls);
    cJSON_AddNumberToObject(o, "in_flight", u->inflight);
    cJSON_AddNumberToObject(o, "max_concurrent", u->max_inflight);
    return o;
}

static void sim_users(reply *r, const cJSON *in)
{
    static const char *const keys[] = {"externalUserId",  "verificationStatus", "attemptStatus",
                                       "rejectionReason", "verificationId",     "prefix",
                                       "count",           "undocumented",       NULL};
    char bad[200], id[ID_MAX + 1], prefix[ID_MAX + 1], vs[VALUE_MAX + 1], as[VALUE_MAX + 1],
        reason[REASON_MAX + 1], vid[VALUE_MAX + 1];
    bool has_prefix, undoc;
    if (!only_keys(in, keys, bad, sizeof bad)) {
        reply_sim_error(r, 400, bad);
        return;
    }
    if (!get_str(in, "externalUserId", id, sizeof id, NULL) ||
        !get_str(in, "prefix", prefix, sizeof prefix, &has_prefix) ||
        !get_str(in, "verificationStatus", vs, sizeof vs, NULL) ||
        !get_str(in, "attemptStatus", as, sizeof as, NULL) ||
        !get_str(in, "rejectionReason", reason, sizeof reason, NULL) ||
        !get_str(in, "verificationId", vid, sizeof vid, NULL) ||
        !get_bool(in, "undocumented", &undoc)) {
        reply_sim_error(r, 400, "a field is not a string (undocumented: a boolean) or is too long");
        return;
    }
    if (!check_value(r, &VOCAB_VERIFICATION_STATUS, "verificationStatus", vs, undoc) ||
        !check_value(r, &VOCAB_ATTEMPT_STATUS, "attemptStatus", as, undoc))
        return;
    if ((vs[0] == '\0') != (as[0] == '\0')) {
        reply_sim_error(r, 400, "give both verificationStatus and attemptStatus, or neither");
        return;
    }
    const cJSON *cnt = cJSON_GetObjectItemCaseSensitive(in, "count");
    if (has_prefix || cnt) {
        if (id[0] || vid[0]) {
            reply_sim_error(r, 400, "bulk: externalUserId and verificationId are not allowed");
            return;
        }
        if (!cJSON_IsNumber(cnt) || cnt->valuedouble < 1 || cnt->valuedouble > 1000000) {
            reply_sim_error(r, 400, "bulk: count must be 1..1000000");
            return;
        }
        long count = (long)cnt->valuedouble;
        if (strlen(prefix) + 7 > ID_MAX) {
            reply_sim_error(r, 400, "bulk: prefix too long");
            return;
        }
        long made = 0;
        pthread_mutex_lock(&sim_state.mu);
        for (long i = 0; i < count; i++) {
            char bid[ID_MAX + 32]; /* prefix is at most ID_MAX - 7 (checked above) */
            snprintf(bid, sizeof bid, "%s%ld", prefix, i);
            user *u = state_get(bid);
            if (u == NULL)
                break;
            state_user_set(u, vs, as, reason, "");
            made++;
        }
        size_t total = sim_state.nusers;
        pthread_mutex_unlock(&sim_state.mu);
        if (made < count) {
            reply_sim_error(r, 500, "out of memory");
            return;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "created", (double)made);
        cJSON_AddNumberToObject(o, "users", (double)total);
        reply_json(r, 200, o);
        return;
    }
    if (id[0] == '\0') {
        reply_sim_error(r, 400, "externalUserId (or prefix and count) is required");
        return;
    }
    pthread_mutex_lock(&sim_state.mu);
    user *u = state_get(id);
    cJSON *o = NULL;
    if (u) {
        state_user_set(u, vs, as, reason, vid);
        o = user_json(u);
    }
    pthread_mutex_unlock(&sim_state.mu);
    if (o == NULL) {
        reply_sim_error(r, 500, "out of memory");
        return;
    }
    reply_json(r, 200, o);
}

static bool parse_mode(const char *s, enum wh_mode *m)
{
    if (s[0] == '\0' || strcmp(s, "send") == 0)
        *m = WH_SEND;
    else if (strcmp(s, "drop") == 0)
        *m = WH_DROP;
    else if (strcmp(s, "duplicate") == 0)
        *m = WH_DUPLICATE;
    else if (strcmp(s, "hold") == 0)
        *m = WH_HOLD;
    else
        return false;
    return true;
}

static const char *mode_name(enum wh_mode m)
{
    static const char *const names[] = {"sent", "dropped", "duplicated", "held"};
    return names[m];
}

static void reply_submitted(reply *r, cJSON *o, enum wh_mode mode, const uint64_t seqs[2])
{
    cJSON_AddStringToObject(o, "webhook", mode_name(mode));
    cJSON *a = cJSON_AddArrayToObject(o, "deliveries");
    for (int i = 0; i < 2; i++)
        if (seqs[i])
            cJSON_AddItemToArray(a, cJSON_CreateNumber((double)seqs[i]));
    reply_json(r, 200, o);
}

static void sim_advance(reply *r, const char *id, const cJSON *in)
{
    static const char *const keys[] = {
        "verificationStatus", "attemptStatus", "rejectionReason", "webhook", "undocumented", NULL};
    char bad[200], vs[VALUE_MAX + 1], as[VALUE_MAX + 1], reason[REASON_MAX + 1], mode_s[16];
    bool has_vs, has_as, undoc;
    enum wh_mode mode;
    if (!only_keys(in, keys, bad, sizeof bad)) {
        reply_sim_error(r, 400, bad);
        return;
    }
    if (!get_str(in, "verificationStatus", vs, sizeof vs, &has_vs) ||
        !get_str(in, "attemptStatus", as, sizeof as, &has_as) ||
        !get_str(in, "rejectionReason", reason, sizeof reason, NULL) ||
        !get_str(in, "webhook", mode_s, sizeof mode_s, NULL) || !parse_mode(mode_s, &mode) ||
        !get_bool(in, "undocumented", &undoc)) {
        reply_sim_error(r, 400,
                        "bad field (webhook is send, drop, duplicate or hold; undocumented a "
                        "boolean)");
        return;
    }
    if (!check_value(r, &VOCAB_VERIFICATION_STATUS, "verificationStatus", vs, undoc) ||
        !check_value(r, &VOCAB_ATTEMPT_STATUS, "attemptStatus", as, undoc))
        return;
    if (mode != WH_DROP && !wh_enabled()) {
        reply_sim_error(r, 409, "no --webhook-url was given: only \"webhook\":\"drop\" works");
        return;
    }

    pthread_mutex_lock(&sim_state.mu);
    user *u = strlen(id) <= ID_MAX ? state_find(id) : NULL;
    if (u == NULL || !u->exists) {
        pthread_mutex_unlock(&sim_state.mu);
        reply_sim_error(r, 404, "no such user (create it with POST /v1/kyc or /_sim/users)");
        return;
    }
    /* Absent statuses keep their value; rejectionReason is replaced (absent clears it). */
    state_user_set(
        u, has_vs ? vs : (u->has_kyc ? u->vstatus : vocab_nth(&VOCAB_VERIFICATION_STATUS, 0)),
        has_as ? as : (u->has_kyc ? u->astatus : vocab_nth(&VOCAB_ATTEMPT_STATUS, 0)), reason, "");
    cJSON *hook = cJSON_CreateObject();
    cJSON_AddStringToObject(hook, "externalUserId", u->id);
    cJSON_AddStringToObject(hook, "verificationStatus", u->vstatus);
    cJSON_AddStringToObject(hook, "attemptStatus", u->astatus);
    /* P100 is silent on an unset rejectionReason in the webhook: the
     * documented body always has all four fields, so it is sent as null. */
    if (u->reason[0])
        cJSON_AddStringToObject(hook, "rejectionReason", u->reason);
    else
        cJSON_AddNullToObject(hook, "rejectionReason");
    cJSON *o = user_json(u);
    pthread_mutex_unlock(&sim_state.mu);

    char *body = cJSON_PrintUnformatted(hook);
    cJSON_Delete(hook);
    uint64_t seqs[2];
    if (body == NULL || wh_submit("kyc-verification-status", id, body, mode, seqs) != 0) {
        free(body);
        cJSON_Delete(o);
        reply_sim_error(r, 500, "out of memory");
        return;
    }
    free(body);
    reply_submitted(r, o, mode, seqs);
}

/* The webhooks with a bare status (POA Verification Status, KYC File
 * Added, user status): {"externalUserId", "status"} to the path kind, the
 * status one of P100's values for it (table v) unless "undocumented". */
static void sim_status_hook(reply *r, const char *id, const cJSON *in, const vocab *v,
                            const char *kind)
{
    static const char *const keys[] = {"status", "webhook", "undocumented", NULL};
    char bad[200], status[VALUE_MAX + 1], mode_s[16], need[1200];
    enum wh_mode mode;
    bool undoc;
    if (!only_keys(in, keys, bad, sizeof bad)) {
        reply_sim_error(r, 400, bad);
        return;
    }
    if (!get_str(in, "status", status, sizeof status, NULL) || status[0] == '\0' ||
        !get_str(in, "webhook", mode_s, sizeof mode_s, NULL) || !parse_mode(mode_s, &mode) ||
        !get_bool(in, "undocumented", &undoc)) {
        snprintf(need, sizeof need, "status (a string, P100's %s) is required", v->field);
        reply_sim_error(r, 400, need);
        return;
    }
    if (!check_value(r, v, "status", status, undoc))
        return;
    if (mode != WH_DROP && !wh_enabled()) {
        reply_sim_error(r, 409, "no --webhook-url was given: only \"webhook\":\"drop\" works");
        return;
    }
    pthread_mutex_lock(&sim_state.mu);
    user *u = strlen(id) <= ID_MAX ? state_find(id) : NULL;
    bool ok = u && u->exists;
    pthread_mutex_unlock(&sim_state.mu);
    if (!ok) {
        reply_sim_error(r, 404, "no such user (create it with POST /v1/kyc or /_sim/users)");
        return;
    }
    cJSON *hook = cJSON_CreateObject();
    cJSON_AddStringToObject(hook, "externalUserId", id);
    cJSON_AddStringToObject(hook, "status", status);
    char *body = cJSON_PrintUnformatted(hook);
    cJSON_Delete(hook);
    uint64_t seqs[2];
    if (body == NULL || wh_submit(kind, id, body, mode, seqs) != 0) {
        free(body);
        reply_sim_error(r, 500, "out of memory");
        return;
    }
    free(body);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "externalUserId", id);
    cJSON_AddStringToObject(o, "status", status);
    reply_submitted(r, o, mode, seqs);
}

static cJSON *faults_json(const faults *f)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "latency_ms", (double)f->latency_ms);
    cJSON_AddNumberToObject(o, "fail_rate", f->fail_rate);
    cJSON_AddStringToObject(o, "fail_with", fail_names[f->fail_with]);
    cJSON_AddNumberToObject(o, "retry_after", (double)f->retry_after);
    cJSON_AddBoolToObject(o, "unauthorized", f->unauthorized);
    cJSON_AddNumberToObject(o, "fail_next", (double)f->fail_next);
    cJSON_AddStringToObject(o, "scope", scope_names[f->scope]);
    cJSON_AddNumberToObject(o, "rate_limit_rate", f->rate_limit_rate);
    cJSON_AddNumberToObject(o, "slow_rate", f->slow_rate);
    cJSON_AddNumberToObject(o, "slow_ms", (double)f->slow_ms);
    return o;
}

static bool get_num(const cJSON *o, const char *name, double lo, double hi, double *v)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    if (it == NULL)
        return true;
    if (!cJSON_IsNumber(it) || it->valuedouble < lo || it->valuedouble > hi)
        return false;
    *v = it->valuedouble;
    return true;
}

/* A POST replaces the whole fault set: what it leaves out returns to its default. */
static void sim_faults(reply *r, const cJSON *in)
{
    static const char *const keys[] = {"latency_ms",      "fail_rate", "fail_with", "retry_after",
                                       "unauthorized",    "fail_next", "scope",     "seed",
                                       "rate_limit_rate", "slow_rate", "slow_ms",   NULL};
    char bad[200], with[16], scope[16];
    faults f;
    state_faults_default(&f);
    double lat = (double)f.latency_ms, rate = 0, ra = 0, next = 0, seed = -1, rl = 0, slow = 0,
           slow_ms = 0;
    if (!only_keys(in, keys, bad, sizeof bad)) {
        reply_sim_error(r, 400, bad);
        return;
    }
    if (!get_num(in, "latency_ms", 0, 600000, &lat) || !get_num(in, "fail_rate", 0, 1, &rate) ||
        !get_num(in, "retry_after", 0, 86400, &ra) || !get_num(in, "fail_next", 0, 1e9, &next) ||
        !get_num(in, "seed", 0, 9007199254740991.0, &seed) ||
        !get_num(in, "rate_limit_rate", 0, 1, &rl) || !get_num(in, "slow_rate", 0, 1, &slow) ||
        !get_num(in, "slow_ms", 0, 600000, &slow_ms)) {
        reply_sim_error(r, 400,
                        "a number is out of range (latency_ms 0..600000, fail_rate 0..1, "
                        "retry_after 0..86400, fail_next >= 0, seed >= 0, rate_limit_rate "
                        "0..1, slow_rate 0..1, slow_ms 0..600000)");
        return;
    }
    if (!get_str(in, "fail_with", with, sizeof with, NULL) ||
        !get_str(in, "scope", scope, sizeof scope, NULL)) {
        reply_sim_error(r, 400, "fail_with and scope are strings");
        return;
    }
    if (with[0]) {
        int k = -1;
        for (int i = 0; i < 4; i++)
            if (strcmp(with, fail_names[i]) == 0)
                k = i;
        if (k < 0) {
            reply_sim_error(r, 400, "fail_with is one of P500, P501, 503, 429");
            return;
        }
        f.fail_with = (enum fail_kind)k;
    }
    if (scope[0]) {
        int k = -1;
        for (int i = 0; i < 3; i++)
            if (strcmp(scope, scope_names[i]) == 0)
                k = i;
        if (k < 0) {
            reply_sim_error(r, 400, "scope is one of all, status, create");
            return;
        }
        f.scope = (enum scope)k;
    }
    const cJSON *un = cJSON_GetObjectItemCaseSensitive(in, "unauthorized");
    if (un && !cJSON_IsBool(un)) {
        reply_sim_error(r, 400, "unauthorized is true or false");
        return;
    }
    f.unauthorized = un && cJSON_IsTrue(un);
    f.latency_ms = (long)lat;
    f.fail_rate = rate;
    f.retry_after = (long)ra;
    f.fail_next = (long)next;
    f.rate_limit_rate = rl;
    f.slow_rate = slow;
    f.slow_ms = (long)slow_ms;
    pthread_mutex_lock(&sim_state.mu);
    sim_state.f = f;
    if (seed >= 0)
        sim_state.rng = (uint64_t)seed;
    pthread_mutex_unlock(&sim_state.mu);
    reply_json(r, 200, faults_json(&f));
}

static int name_index(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static cJSON *answers_json(const answers *a)
{
    cJSON *o = cJSON_CreateObject();
    if (a->code[0]) {
        cJSON_AddStringToObject(o, "errorCode", a->code);
        cJSON_AddNumberToObject(o, "http", a->http);
        cJSON_AddNumberToObject(o, "count", (double)a->count);
        cJSON_AddStringToObject(o, "scope", scope_names[a->scope]);
        if (a->user[0])
            cJSON_AddStringToObject(o, "externalUserId", a->user);
    }
    cJSON_AddStringToObject(o, "unknown_users", a->refuse_unknown ? "refuse" : "create");
    cJSON_AddStringToObject(o, "status_body", shape_names[a->shape]);
    return o;
}

/* POST /_sim/answers: how the sim answers, beyond the faults; like
 * /_sim/faults a POST replaces the whole set.
 *   errorCode      the next calls in scope get this P100 error (P100's
 *                  codes: VOCAB_ERROR_CODE; another with "undocumented")
 *   http           its HTTP status (default: the one docs/p100-api.md gives)
 *   count          how many calls get it (default 1; -1: every call)
 *   scope          all, status or create (default all)
 *   externalUserId only calls naming this user
 *   unknown_users  create (default: Create makes a user it does not know)
 *                  or refuse (Create answers P412)
 *   status_body    the shape of Get KYC Status's 200 body (shape_names) */
static void sim_answers(reply *r, const cJSON *in)
{
    static const char *const keys[] = {"errorCode",     "http",           "count",
                                       "scope",         "externalUserId", "undocumented",
                                       "unknown_users", "status_body",    NULL};
    char bad[200], code[16], scope[16], uid[ID_MAX + 1], unknown[16], shape[32];
    bool undoc;
    answers a;
    state_answers_default(&a);
    double http = 0, count = 1;
    if (!only_keys(in, keys, bad, sizeof bad)) {
        reply_sim_error(r, 400, bad);
        return;
    }
    if (!get_str(in, "errorCode", code, sizeof code, NULL) ||
        !get_str(in, "scope", scope, sizeof scope, NULL) ||
        !get_str(in, "externalUserId", uid, sizeof uid, NULL) ||
        !get_str(in, "unknown_users", unknown, sizeof unknown, NULL) ||
        !get_str(in, "status_body", shape, sizeof shape, NULL) ||
        !get_bool(in, "undocumented", &undoc) || !get_num(in, "http", 200, 599, &http) ||
        !get_num(in, "count", -1, 1e9, &count)) {
        reply_sim_error(r, 400,
                        "errorCode, scope, externalUserId, unknown_users, status_body are "
                        "strings, undocumented a boolean, http 200..599, count -1..1e9");
        return;
    }
    if (!check_value(r, &VOCAB_ERROR_CODE, "errorCode", code, undoc))
        return;
    if (code[0]) {
        int c = vocab_value(&VOCAB_ERROR_CODE, code);
        snprintf(a.code, sizeof a.code, "%s", code);
        a.http = http > 0 ? (int)http : (c >= 0 ? reply_code_http(c) : 400);
        a.count = (long)count;
    } else if (http > 0 || uid[0] || scope[0]) {
        reply_sim_error(r, 400, "http, scope and externalUserId go with errorCode");
        return;
    }
    snprintf(a.user, sizeof a.user, "%s", uid);
    if (scope[0]) {
        int k = name_index(scope, scope_names, 3);
        if (k < 0) {
            reply_sim_error(r, 400, "scope is one of all, status, create");
            return;
        }
        a.scope = (enum scope)k;
    }
    if (unknown[0] && strcmp(unknown, "create") != 0 && strcmp(unknown, "refuse") != 0) {
        reply_sim_error(r, 400, "unknown_users is create or refuse");
        return;
    }
    a.refuse_unknown = strcmp(unknown, "refuse") == 0;
    if (shape[0]) {
        int k = name_index(shape, shape_names, SHAPE_COUNT);
        if (k < 0) {
            reply_sim_error(r, 400,
                            "status_body is one of default, no_external_user_id, extra_fields, "
                            "reordered, no_verification_id");
            return;
        }
        a.shape = (enum body_shape)k;
    }
    pthread_mutex_lock(&sim_state.mu);
    sim_state.a = a;
    pthread_mutex_unlock(&sim_state.mu);
    reply_json(r, 200, answers_json(&a));
}

static cJSON *limits_json(const limits *l)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "rate", l->rate);
    cJSON_AddNumberToObject(o, "burst", l->burst);
    cJSON_AddBoolToObject(o, "retry_after", l->retry_after);
    cJSON_AddNumberToObject(o, "max_status_in_flight", l->max_status_in_flight);
    return o;
}

/* POST /_sim/limits: P100's rate limits as the sim plays them, the whole
 * set (what is left out is off): rate (tokens a second, 0: no bucket) and
 * burst (the bucket's size, default max(1, rate)) of a token bucket over
 * Get KYC Status and Create, retry_after (the 429 says when to come back:
 * the seconds until a token, rounded up, or 1 for the concurrency limit),
 * max_status_in_flight (Get KYC Status calls at once; 0: any). */
static void sim_limits(reply *r, const cJSON *in)
{
    static const char *const keys[] = {"rate", "burst", "retry_after", "max_status_in_flight",
                                       NULL};
    char bad[200];
    double rate = 0, burst = 0, conc = 0;
    bool ra;
    if (!only_keys(in, keys, bad, sizeof bad)) {
        reply_sim_error(r, 400, bad);
        return;
    }
    if (!get_num(in, "rate", 0, 1e6, &rate) || !get_num(in, "burst", 0, 1e6, &burst) ||
        !get_num(in, "max_status_in_flight", 0, 100000, &conc) ||
        !get_bool(in, "retry_after", &ra)) {
        reply_sim_error(r, 400,
                        "rate 0..1e6, burst 0..1e6, max_status_in_flight 0..100000, "
                        "retry_after a boolean");
        return;
    }
    limits l = {.rate = rate,
                .burst = burst > 0 ? burst : (rate > 1 ? rate : 1),
                .retry_after = ra,
                .max_status_in_flight = (int)conc};
    if (rate <= 0)
        l.burst = 0;
    pthread_mutex_lock(&sim_state.mu);
    state_limits_set(&l);
    pthread_mutex_unlock(&sim_state.mu);
    reply_json(r, 200, limits_json(&l));
}

static void sim_reset(reply *r)
{
    state_reset();
    wh_clear(true);
    reply_text(r, 200, "application/json", "{\"reset\":true}");
}

static void sim_stats(reply *r, const struct mg_request_info *ri)
{
    char want[ID_MAX + 1] = "", all[8] = "";
    const char *q = ri->query_string;
    size_t ql = q ? strlen(q) : 0;
    int wl = q ? mg_get_var(q, ql, "user", want, sizeof want) : -1;
    if (q)
        mg_get_var(q, ql, "users", all, sizeof all);
    cJSON *o = cJSON_CreateObject();
    pthread_mutex_lock(&sim_state.mu);
    cJSON_AddNumberToObject(o, "api_calls", (double)sim_state.api_calls);
    cJSON_AddNumberToObject(o, "status_calls", (double)sim_state.status_calls);
    cJSON_AddNumberToObject(o, "create_calls", (double)sim_state.create_calls);
    cJSON_AddNumberToObject(o, "page_calls", (double)sim_state.page_calls);
    cJSON_AddNumberToObject(o, "in_flight", sim_state.inflight);
    cJSON_AddNumberToObject(o, "max_concurrent", sim_state.max_inflight);
    cJSON_AddNumberToObject(o, "max_concurrent_per_user", sim_state.max_inflight_user);
    cJSON_AddNumberToObject(o, "users", (double)sim_state.nusers);
    cJSON_AddNumberToObject(o, "status_in_flight", sim_state.status_inflight);
    /* The 429 answers by cause: the token bucket, the concurrency limit, the
     * random faults (fail_with 429 and rate_limit_rate). */
    cJSON_AddNumberToObject(o, "rate_limited_bucket", (double)sim_state.limited_bucket);
    cJSON_AddNumberToObject(o, "rate_limited_concurrency", (double)sim_state.limited_concurrency);
    cJSON_AddNumberToObject(o, "rate_limited_faults", (double)sim_state.limited_faults);
    cJSON *errs = cJSON_AddObjectToObject(o, "errors_sent");
    for (int i = 0; i < ERR_KEYS && sim_state.errs[i].code[0]; i++)
        cJSON_AddNumberToObject(errs, sim_state.errs[i].code, (double)sim_state.errs[i].n);
    if (wl >= 0) {
        const user *u = state_find(want);
        cJSON *by = cJSON_AddObjectToObject(o, "calls_by_user");
        cJSON_AddNumberToObject(by, want, u ? (double)u->calls : 0);
        cJSON_AddNumberToObject(o, "calls", u ? (double)u->calls : 0);
        cJSON_AddItemToObject(o, "user", u ? user_json(u) : cJSON_CreateNull());
    } else if (strcmp(all, "all") == 0) {
        cJSON *by = cJSON_AddObjectToObject(o, "calls_by_user");
        for (size_t i = 0; i < sim_state.nbuckets; i++)
            for (const user *u = sim_state.buckets[i]; u; u = u->next)
                if (u->calls > 0)
                    cJSON_AddNumberToObject(by, u->id, (double)u->calls);
    }
    pthread_mutex_unlock(&sim_state.mu);
    wh_stats_json(o);
    reply_json(r, 200, o);
}

static void sim_webhooks(reply *r, const struct mg_request_info *ri)
{
    char want[ID_MAX + 1] = "";
    const char *q = ri->query_string;
    int wl = q ? mg_get_var(q, strlen(q), "user", want, sizeof want) : -1;
    reply_json(r, 200, wh_deliveries_json(wl >= 0 ? want : NULL));
}

void control_handle(struct mg_connection *conn, const struct mg_request_info *ri, reply *r)
{
    char path[2048];
    char *seg[5];
    snprintf(path, sizeof path, "%s", ri->local_uri + strlen("/_sim/"));
    int n = http_split_path(path, seg, 5);
    bool get = strcmp(ri->request_method, "GET") == 0;
    bool post = strcmp(ri->request_method, "POST") == 0;

    if (n == 1 && get && strcmp(seg[0], "stats") == 0) {
        sim_stats(r, ri);
        return;
    }
    if (n == 1 && get && strcmp(seg[0], "webhooks") == 0) {
        sim_webhooks(r, ri);
        return;
    }
    if (n == 1 && get && strcmp(seg[0], "answers") == 0) {
        pthread_mutex_lock(&sim_state.mu);
        answers a = sim_state.a;
        pthread_mutex_unlock(&sim_state.mu);
        reply_json(r, 200, answers_json(&a));
        return;
    }
    if (n == 1 && get && strcmp(seg[0], "limits") == 0) {
        pthread_mutex_lock(&sim_state.mu);
        limits l = sim_state.lim;
        pthread_mutex_unlock(&sim_state.mu);
        reply_json(r, 200, limits_json(&l));
        return;
    }
    if (n == 1 && get && strcmp(seg[0], "faults") == 0) {
        pthread_mutex_lock(&sim_state.mu);
        faults f = sim_state.f;
        pthread_mutex_unlock(&sim_state.mu);
        reply_json(r, 200, faults_json(&f));
        return;
    }
    if (n == 1 && get && strcmp(seg[0], "users") == 0) {
        /* Every real user's truth, for a test that compares all of them. */
        cJSON *a = cJSON_CreateArray();
        pthread_mutex_lock(&sim_state.mu);
        for (size_t i = 0; i < sim_state.nbuckets; i++)
            for (const user *u = sim_state.buckets[i]; u; u = u->next)
                if (u->exists)
                    cJSON_AddItemToArray(a, user_json(u));
        pthread_mutex_unlock(&sim_state.mu);
        reply_json(r, 200, a);
        return;
    }
    if (n == 2 && get && strcmp(seg[0], "users") == 0) {
        pthread_mutex_lock(&sim_state.mu);
        const user *u = strlen(seg[1]) <= ID_MAX ? state_find(seg[1]) : NULL;
        cJSON *o = u ? user_json(u) : NULL;
        pthread_mutex_unlock(&sim_state.mu);
        if (o == NULL) {
            reply_sim_error(r, 404, "no such user");
            return;
        }
        reply_json(r, 200, o);
        return;
    }
    if (!post) {
        reply_sim_error(r, n < 1 ? 404 : 405, "not found, or not with this method");
        return;
    }
    if (n == 1 && strcmp(seg[0], "reset") == 0) {
        sim_reset(r);
        return;
    }

    bool too_big;
    char *body = http_read_body(conn, &too_big);
    cJSON *in = body && body[0] ? cJSON_Parse(body) : cJSON_CreateObject();
    free(body);
    if (too_big) {
        cJSON_Delete(in);
        reply_sim_error(r, 413, "body too large");
        return;
    }
    if (in == NULL || !cJSON_IsObject(in)) {
        cJSON_Delete(in);
        reply_sim_error(r, 400, "the body must be a JSON object");
        return;
    }
    if (n == 1 && strcmp(seg[0], "users") == 0)
        sim_users(r, in);
    else if (n == 3 && strcmp(seg[0], "users") == 0 && strcmp(seg[2], "advance") == 0)
        sim_advance(r, seg[1], in);
    else if (n == 3 && strcmp(seg[0], "users") == 0 && strcmp(seg[2], "poa") == 0)
        sim_status_hook(r, seg[1], in, &VOCAB_POA_STATUS, "poa-verification-status");
    else if (n == 3 && strcmp(seg[0], "users") == 0 && strcmp(seg[2], "kyc-file") == 0)
        sim_status_hook(r, seg[1], in, &VOCAB_KYC_FILE_STATUS, "kyc-file-added");
    else if (n == 3 && strcmp(seg[0], "users") == 0 && strcmp(seg[2], "user-status") == 0)
        sim_status_hook(r, seg[1], in, &VOCAB_USER_STATUS, "user-status");
    else if (n == 1 && strcmp(seg[0], "answers") == 0)
        sim_answers(r, in);
    else if (n == 1 && strcmp(seg[0], "limits") == 0)
        sim_limits(r, in);
    else if (n == 1 && strcmp(seg[0], "faults") == 0)
        sim_faults(r, in);
    else if (n == 1 && strcmp(seg[0], "flush") == 0) {
        char order[16];
        if (!get_str(in, "order", order, sizeof order, NULL) ||
            !(order[0] == '\0' || strcmp(order, "fifo") == 0 || strcmp(order, "reverse") == 0)) {
            reply_sim_error(r, 400, "order is fifo or reverse");
        } else {
            long k = wh_flush(strcmp(order, "reverse") == 0);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "flushed", (double)k);
            reply_json(r, 200, o);
        }
    } else
        reply_sim_error(r, 404, "not found");
    cJSON_Delete(in);
}
