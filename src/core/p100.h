/* P100's Partner API, the pure part: how an answer is classified, what the
 * create-verification request must contain, retry backoff. No I/O (the
 * HTTP client is io/p100.c; JSON is core/payload.c). See
 * docs/p100-api.md and README.md ("P100 answers"). */
#ifndef KYCD_CORE_P100_H
#define KYCD_CORE_P100_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "core/kyc.h"

enum p100_class {
    P100_OK = 0,        /* 200/201, or 202 P212 (verification already pending) */
    P100_FINAL,         /* P4xx that no retry will change: P412, P445, P459, P403, ... */
    P100_TRANSIENT,     /* P500/P501 (sent as HTTP 400!), 5xx, 408, timeouts, connection errors */
    P100_RATE_LIMITED,  /* 429: honour Retry-After */
    P100_MISCONFIGURED, /* 401 Access Denied xo1/xo2/xo3, 403: stop calling, alert */
    P100_UNUSABLE,      /* says nothing about the user: a 4xx without P100's errorCode (a wrong
                         * p100_status_path's 404, a 405, an HTML page), a 200 that is no
                         * status: the request or the service is wrong, so pause as for 401 */
};
#define P100_CLASS_COUNT (P100_UNUSABLE + 1)

/* P100's documented error codes (docs/p100-api.md); names in core/vocab.c
 * (VOCAB_ERROR_CODE). */
enum p100_code {
    P100_CODE_NONE = 0, /* no errorCode */
    P100_CODE_P403,     /* validation error */
    P100_CODE_P411,     /* user already exists */
    P100_CODE_P412,     /* user does not exist */
    P100_CODE_P433,     /* insufficient funds */
    P100_CODE_P445,     /* KYC not found */
    P100_CODE_P450,     /* KYC already verified */
    P100_CODE_P453,     /* too many KYC verification attempts */
    P100_CODE_P459,     /* user not verified */
    P100_CODE_P500,     /* unknown exception (sent as HTTP 400) */
    P100_CODE_P501,     /* service temporarily unavailable (sent as HTTP 400) */
    P100_CODE_P211,     /* POA verification pending (202) */
    P100_CODE_P212,     /* KYC verification pending (202) */
    P100_CODE_UNKNOWN,  /* a code P100 does not document */
};
enum p100_code p100_code_parse(const char *s); /* NULL, "" -> NONE; undocumented -> UNKNOWN */

/* Create KYC Verification's incomeSource (VOCAB_INCOME_SOURCE). */
enum p100_income {
    P100_INCOME_BUSINESS_ACTIVITY = 0,
    P100_INCOME_SALARY,
    P100_INCOME_OTHER,
    P100_INCOME_MAINTAINED_BY_FAMILY,
    P100_INCOME_INVESTMENTS,
    P100_INCOME_SOCIAL_BENEFITS,
    P100_INCOME_TENANCY,
};

/* Classify from HTTP status and errorCode together (never the status
 * alone: P500/P501 come as 400). http_status 0 means a transport error. */
enum p100_class p100_classify(long http_status, const char *error_code);
const char *p100_class_name(enum p100_class c); /* "ok", "final", "transient", ... */

/* A plain-English explanation of a documented error code, or NULL. */
const char *p100_error_explain(const char *error_code);

/* Create KYC Verification (POST /v1/kyc): the request fields. "" = absent. */
typedef struct p100_create_req {
    char external_user_id[KYC_ID_MAX + 1];
    char document_type[32]; /* ID_CARD PASSPORT RESIDENCE_PERMIT DRIVER_LICENSE */
    char country[8]; /* ISO 3166-1 alpha-2, upper case (room to refuse longer input clearly) */
    char income_source
        [32]; /* BUSINESS_ACTIVITY SALARY OTHER MAINTAINED_BY_FAMILY INVESTMENTS SOCIAL_BENEFITS TENANCY */
    char open_account_reason
        [48]; /* INVESTMENTS_OR_CRYPTOCURRENCIES CURRENCY_EXCHANGE DAILY_USE GAMING_OR_GAMBLING TRANSFER_OF_FUNDS_OUTSIDE_OF_EUROPE */
    char occupation[48];       /* required when income_source is SALARY */
    char additional_info[512]; /* free text */
    char tax_id[64];           /* required when income_source is BUSINESS_ACTIVITY */
} p100_create_req;

/* Validate as documented: required fields, enums, country code shape, the
 * conditional requirements. The message names the field and lists the
 * allowed values. */
int p100_create_validate(const p100_create_req *r, kerr *err) KYCD_MUST_CHECK;

/* Delay before retry number `failures` (1, 2, ...): base * 2^(failures-1),
 * capped at max, with "full jitter" from `random` (any 64-bit value): the
 * result is uniform in [d/2, d]. */
int64_t p100_backoff_ms(int failures, int64_t base_ms, int64_t max_ms, uint64_t random);

/* Parse a Retry-After header value (delta seconds; HTTP dates are not
 * used by P100 as far as known) into ms; -1 when absent or unparsable. */
int64_t p100_retry_after_ms(const char *value);

#endif
