/* p100-sim: users, faults and counters (see sim_state.h).
 *
 * Must never: block or wait while holding sim_state.mu. */
#include "sim_state.h"

#include "sim_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

const char *const fail_names[] = {"P500", "P501", "503", "429"};
const char *const scope_names[] = {"all", "status", "create"};
const char *const shape_names[] = {"default", "no_external_user_id", "extra_fields", "reordered",
                                   "no_verification_id"};
_Static_assert(sizeof shape_names / sizeof shape_names[0] == SHAPE_COUNT, "a shape without a name");

sim_state_t sim_state = {.mu = PTHREAD_MUTEX_INITIALIZER};

static long default_latency; /* --latency-ms: the fault set's default */
static uint64_t default_seed;
static limits default_limits; /* --rate-limit, --rate-burst, ... */

static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

/* splitmix64: small, seeded, good enough for fault draws. Caller holds sim_state.mu. */
static uint64_t rng_next(void)
{
    uint64_t z = (sim_state.rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double state_rng_unit(void)
{
    return (double)(rng_next() >> 11) / 9007199254740992.0; /* [0, 1) */
}

user *state_find(const char *id)
{
    if (sim_state.nbuckets == 0)
        return NULL;
    uint64_t h = hash_id(id);
    for (user *u = sim_state.buckets[h & (sim_state.nbuckets - 1)]; u; u = u->next)
        if (u->hash == h && strcmp(u->id, id) == 0)
            return u;
    return NULL;
}

static int tab_grow(void)
{
    size_t nb = sim_state.nbuckets ? sim_state.nbuckets * 2 : 1024;
    user **b = calloc(nb, sizeof *b);
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < sim_state.nbuckets; i++) {
        user *u = sim_state.buckets[i];
        while (u) {
            user *next = u->next;
            u->next = b[u->hash & (nb - 1)];
            b[u->hash & (nb - 1)] = u;
            u = next;
        }
    }
    free(sim_state.buckets);
    sim_state.buckets = b;
    sim_state.nbuckets = nb;
    return 0;
}

user *state_get(const char *id)
{
    if (strlen(id) > ID_MAX || id[0] == '\0')
        return NULL;
    user *u = state_find(id);
    if (u)
        return u;
    if (sim_state.nrecords + 1 > sim_state.nbuckets / 4 * 3 && tab_grow() != 0)
        return NULL;
    u = calloc(1, sizeof *u);
    if (u == NULL)
        return NULL;
    u->hash = hash_id(id);
    strcpy(u->id, id);
    u->next = sim_state.buckets[u->hash & (sim_state.nbuckets - 1)];
    sim_state.buckets[u->hash & (sim_state.nbuckets - 1)] = u;
    sim_state.nrecords++;
    return u;
}

static void tab_clear(void)
{
    for (size_t i = 0; i < sim_state.nbuckets; i++) {
        user *u = sim_state.buckets[i];
        while (u) {
            user *next = u->next;
            free(u);
            u = next;
        }
    }
    free(sim_state.buckets);
    sim_state.buckets = NULL;
    sim_state.nbuckets = sim_state.nusers = sim_state.nrecords = 0;
}

void state_user_make_real(user *u)
{
    if (!u->exists) {
        u->exists = true;
        sim_state.nusers++;
    }
}

void state_faults_default(faults *f)
{
    memset(f, 0, sizeof *f);
    f->latency_ms = default_latency;
    f->fail_with = FAIL_P500;
}

void state_answers_default(answers *a)
{
    memset(a, 0, sizeof *a);
    a->shape = SHAPE_DEFAULT;
}

void state_limits_default(limits *l)
{
    *l = default_limits;
}

void state_limits_set(const limits *l)
{
    sim_state.lim = *l;
    sim_state.tokens = l->burst;
    sim_state.tokens_ms = now_ms();
}

bool state_bucket_take(long *retry_after_s)
{
    const limits *l = &sim_state.lim;
    if (l->rate <= 0)
        return true;
    int64_t now = now_ms();
    sim_state.tokens += (double)(now - sim_state.tokens_ms) / 1000.0 * l->rate;
    sim_state.tokens_ms = now;
    if (sim_state.tokens > l->burst)
        sim_state.tokens = l->burst;
    if (sim_state.tokens >= 1.0) {
        sim_state.tokens -= 1.0;
        return true;
    }
    double wait = (1.0 - sim_state.tokens) / l->rate; /* seconds until one token */
    long s = (long)wait;
    if ((double)s < wait)
        s++;
    *retry_after_s = s < 1 ? 1 : s;
    return false;
}

void state_count_error(const char *code)
{
    for (int i = 0; i < ERR_KEYS; i++) {
        if (sim_state.errs[i].code[0] == '\0') {
            snprintf(sim_state.errs[i].code, sizeof sim_state.errs[i].code, "%s", code);
            sim_state.errs[i].n = 1;
            return;
        }
        if (strcmp(sim_state.errs[i].code, code) == 0) {
            sim_state.errs[i].n++;
            return;
        }
    }
}

void state_new_uuid(char out[37])
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
        /* Never expected; fall back to the clock so ids stay distinct. */
        uint64_t t = (uint64_t)now_ms_f() * 1000003u;
        for (int i = 0; i < 16; i++)
            b[i] = (unsigned char)(t >> ((i % 8) * 8)) ^ (unsigned char)i;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

void state_user_set(user *u, const char *vs, const char *as, const char *reason, const char *vid)
{
    state_user_make_real(u);
    if (vs[0] == '\0' && as[0] == '\0') {
        u->has_kyc = false;
        u->vstatus[0] = u->astatus[0] = u->reason[0] = u->vid[0] = '\0';
        return;
    }
    u->has_kyc = true;
    /* The arguments may point into u itself (keep a field as it is):
     * copy through temporaries, never snprintf a buffer onto itself. */
    char v[sizeof u->vstatus], a[sizeof u->astatus], r[sizeof u->reason];
    snprintf(v, sizeof v, "%s", vs);
    snprintf(a, sizeof a, "%s", as);
    snprintf(r, sizeof r, "%s", reason);
    memcpy(u->vstatus, v, sizeof v);
    memcpy(u->astatus, a, sizeof a);
    memcpy(u->reason, r, sizeof r);
    if (vid[0])
        snprintf(u->vid, sizeof u->vid, "%s", vid);
    else if (u->vid[0] == '\0')
        state_new_uuid(u->vid);
}

void state_init(long default_latency_ms, uint64_t seed, const limits *lim)
{
    default_latency = default_latency_ms;
    default_seed = seed;
    default_limits = *lim;
    pthread_mutex_lock(&sim_state.mu);
    state_faults_default(&sim_state.f);
    state_answers_default(&sim_state.a);
    state_limits_set(&default_limits);
    sim_state.rng = seed;
    pthread_mutex_unlock(&sim_state.mu);
}

void state_deinit(void)
{
    pthread_mutex_lock(&sim_state.mu);
    tab_clear();
    pthread_mutex_unlock(&sim_state.mu);
}

void state_reset(void)
{
    pthread_mutex_lock(&sim_state.mu);
    tab_clear();
    sim_state.epoch++;
    state_faults_default(&sim_state.f);
    state_answers_default(&sim_state.a);
    state_limits_set(&default_limits);
    sim_state.status_inflight = 0;
    sim_state.limited_bucket = sim_state.limited_concurrency = sim_state.limited_faults = 0;
    sim_state.rng = default_seed;
    sim_state.api_calls = sim_state.status_calls = sim_state.create_calls = sim_state.page_calls =
        0;
    sim_state.inflight = sim_state.max_inflight = sim_state.max_inflight_user = 0;
    memset(sim_state.errs, 0, sizeof sim_state.errs);
    pthread_mutex_unlock(&sim_state.mu);
}
