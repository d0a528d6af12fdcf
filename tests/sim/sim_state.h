/* p100-sim's state: the users it knows (a hash table of records, ghosts
 * included: an unknown id asked for only counts calls), the fault set the
 * control API injects, the answers it chooses (next error code, unknown
 * users at Create, the shape of the status body), the rate limits (token
 * bucket, concurrency), the call counters and the seeded fault draws.
 *
 * Everything in sim_state is guarded by sim_state.mu: take it around any read
 * or write, and never hold it while waiting (latency) or sending (webhooks).
 * Functions marked "caller holds sim_state.mu" expect it taken.
 *
 * Must never: keep a secret, or talk to the network. */
#ifndef P100_SIM_STATE_H
#define P100_SIM_STATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ID_MAX 128     /* longest externalUserId kept (kycd's KYC_ID_MAX) */
#define VALUE_MAX 64   /* longest status value */
#define REASON_MAX 256 /* longest rejectionReason */

typedef struct user {
    struct user *next;
    uint64_t hash;
    char id[ID_MAX + 1];
    bool exists;  /* false: a ghost, only call counters (status asked for an unknown id) */
    bool has_kyc; /* a verification exists */
    char vstatus[VALUE_MAX + 1];
    char astatus[VALUE_MAX + 1];
    char reason[REASON_MAX + 1];
    char vid[VALUE_MAX + 1];
    long calls; /* API calls naming this user */
    long status_calls;
    int inflight; /* status calls in flight now */
    int max_inflight;
} user;

enum fail_kind { FAIL_P500, FAIL_P501, FAIL_503, FAIL_429 };
/* Names of fail_kind and scope values, as the control API spells them. */
extern const char *const fail_names[];
enum scope { SCOPE_ALL, SCOPE_STATUS, SCOPE_CREATE };
extern const char *const scope_names[];

typedef struct faults {
    long latency_ms;
    double fail_rate;
    enum fail_kind fail_with;
    long retry_after; /* seconds; 0 leaves the header out */
    bool unauthorized;
    long fail_next; /* the next N calls in scope fail, before fail_rate is drawn */
    enum scope scope;
    /* Mixed faults (the chaos test): besides fail_with at fail_rate, a
     * share of calls in scope answered 429 (with retry_after), and a share
     * answered after slow_ms instead of latency_ms. */
    double rate_limit_rate;
    double slow_rate;
    long slow_ms;
} faults;

/* The shapes of Get KYC Status's 200 body, which P100 does not document:
 * as the sim always answered, without externalUserId, with extra unknown
 * fields, with the fields in another order, without verificationId. */
enum body_shape {
    SHAPE_DEFAULT,
    SHAPE_NO_EXTERNAL_USER_ID,
    SHAPE_EXTRA_FIELDS,
    SHAPE_REORDERED,
    SHAPE_NO_VERIFICATION_ID,
    SHAPE_COUNT
};
extern const char *const shape_names[]; /* as the control API spells them */

/* How the sim answers, besides the faults (/_sim/answers). */
typedef struct answers {
    char code[16];         /* errorCode for the next calls in scope; "": none */
    int http;              /* the HTTP status it comes with */
    long count;            /* calls left to answer with it; -1: every call */
    enum scope scope;      /* which calls */
    char user[ID_MAX + 1]; /* only calls naming this user; "": any */
    bool refuse_unknown;   /* Create answers P412 to a user the sim does not know */
    enum body_shape shape; /* Get KYC Status's 200 body */
} answers;

/* The rate limits (--rate-limit ... or /_sim/limits); zero: off. */
typedef struct limits {
    double rate;              /* token bucket: tokens a second (0: no bucket) */
    double burst;             /* token bucket: its size */
    bool retry_after;         /* a limit's 429 carries Retry-After */
    int max_status_in_flight; /* Get KYC Status calls in flight at most (0: any) */
} limits;

#define ERR_KEYS 16
typedef struct errcount {
    char code[16];
    long n;
} errcount;

typedef struct sim_state_t {
    pthread_mutex_t mu; /* guards everything in this struct; never held while waiting */
    user **buckets;
    size_t nbuckets, nusers, nrecords;
    uint64_t epoch; /* bumped by reset: late decrements of an older epoch are ignored */
    uint64_t rng;
    faults f;
    answers a;
    limits lim;
    double tokens;       /* the token bucket's level */
    int64_t tokens_ms;   /* when it was last filled (now_ms) */
    int status_inflight; /* Get KYC Status calls admitted and in flight */
    long limited_bucket, limited_concurrency, limited_faults; /* 429s by cause */
    long api_calls, status_calls, create_calls, page_calls;
    int inflight, max_inflight, max_inflight_user;
    errcount errs[ERR_KEYS];
} sim_state_t;

extern sim_state_t sim_state;

/* At start, before any request: the fault set's default latency (the
 * --latency-ms option), the fault draws' seed and the rate limits (the
 * --rate-* options), which reset returns to. */
void state_init(long default_latency_ms, uint64_t seed, const limits *lim);

/* At exit, once no request runs: frees every user. */
void state_deinit(void);

/* /_sim/reset: forgets every user, the faults, answers and limits (back to
 * their default), the counters, and reseeds the fault draws. */
void state_reset(void);

/* The record of id, or NULL. Caller holds sim_state.mu. */
user *state_find(const char *id);

/* Find or add a record (added as a ghost). NULL: id empty or too long, or no
 * memory. Caller holds sim_state.mu. */
user *state_get(const char *id);

/* Turns a ghost into a user (counted in nusers). Caller holds sim_state.mu. */
void state_user_make_real(user *u);

/* Overwrites the user's state (both statuses empty: no KYC); an empty vid
 * keeps the user's verificationId or makes a new one. The strings may point
 * into u itself. No webhook. Caller holds sim_state.mu. */
void state_user_set(user *u, const char *vs, const char *as, const char *reason, const char *vid);

/* The default fault set: no fault, the --latency-ms latency. */
void state_faults_default(faults *f);

/* The default answers: none forced, unknown users created, the default body. */
void state_answers_default(answers *a);

/* Sets the rate limits and fills the bucket. Caller holds sim_state.mu. */
void state_limits_set(const limits *l);

/* The limits given on the command line. */
void state_limits_default(limits *l);

/* Takes a token from the bucket: true when there was one (or no bucket);
 * false with *retry_after_s (the seconds until one, rounded up) when it is
 * empty. Caller holds sim_state.mu. */
bool state_bucket_take(long *retry_after_s);

/* A draw in [0, 1) from the seeded generator. Caller holds sim_state.mu. */
double state_rng_unit(void);

/* Counts one error answer under its code (errors_sent). Caller holds sim_state.mu. */
void state_count_error(const char *code);

/* A random (version 4) UUID, for verificationId. */
void state_new_uuid(char out[37]);

#endif
