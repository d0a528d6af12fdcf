/* P100's Partner API, the pure part: classification of answers, the
 * create-verification request's rules, retry delays. Must never do I/O or
 * log; messages never quote a request value (additionalInfo and taxId can
 * hold personal data), only field names and the allowed values. */
#include "core/p100.h"

#include <stdio.h>
#include <string.h>

#include "core/json.h"
#include "core/vocab.h"

/* ---- classification */

enum p100_code p100_code_parse(const char *s)
{
    if (s == NULL || *s == '\0')
        return P100_CODE_NONE;
    int v = vocab_value(&VOCAB_ERROR_CODE, s);
    return v < 0 ? P100_CODE_UNKNOWN : (enum p100_code)v;
}

enum p100_class p100_classify(long http_status, const char *error_code)
{
    /* P500/P501 come as HTTP 400: the code wins over any status. */
    enum p100_code code = p100_code_parse(error_code);
    if (code == P100_CODE_P500 || code == P100_CODE_P501)
        return P100_TRANSIENT;
    if (http_status == 0)
        return P100_TRANSIENT;
    if (http_status >= 200 && http_status < 300)
        return P100_OK; /* 200, 201, 202 P212; the caller checks the body */
    if (http_status == 429)
        return P100_RATE_LIMITED;
    if (http_status == 401 || http_status == 403)
        return P100_MISCONFIGURED;
    if (http_status == 408)
        return P100_TRANSIENT;
    /* A 4xx is about the user only when P100 says so with its own error
     * body: without an errorCode it is the request or the service that is
     * wrong (a wrong path's 404, a 405, a proxy's HTML page), and every user
     * would be flagged for nothing. */
    if (http_status >= 400 && http_status < 500)
        return code == P100_CODE_NONE ? P100_UNUSABLE : P100_FINAL;
    /* Not documented: a 3xx means the base URL or path template points at
     * the wrong place (redirects are not followed), which no retry of a
     * single record fixes. */
    if (http_status >= 300 && http_status < 400)
        return P100_MISCONFIGURED;
    /* 5xx, and anything outside HTTP's range (a broken proxy). */
    return P100_TRANSIENT;
}

const char *p100_class_name(enum p100_class c)
{
    return vocab_label(&VOCAB_P100_CLASS, (int)c);
}

/* kycd's explanation of each documented code, by enum p100_code. */
static const char *const explain[] = {
    [P100_CODE_P403] = "the request failed P100's validation; the message lists what was wrong",
    [P100_CODE_P411] = "a user with this externalUserId already exists at P100",
    [P100_CODE_P412] = "the user does not exist at P100",
    [P100_CODE_P433] = "the account has insufficient funds",
    [P100_CODE_P445] = "P100 has no KYC verification for this user",
    [P100_CODE_P450] = "the user's KYC is already verified",
    [P100_CODE_P453] = "the user has made too many KYC verification attempts",
    [P100_CODE_P459] = "the user is not verified",
    [P100_CODE_P500] = "P100 hit an unknown exception (sent as HTTP 400); retry later",
    [P100_CODE_P501] = "P100's service is temporarily unavailable (sent as HTTP 400); retry later",
    [P100_CODE_P211] = "a proof-of-address verification is already pending (HTTP 202)",
    [P100_CODE_P212] = "a KYC verification is already pending for this user (HTTP 202)",
    [P100_CODE_UNKNOWN] = NULL,
};

const char *p100_error_explain(const char *error_code)
{
    return explain[p100_code_parse(error_code)];
}

/* ---- create request */

static int in_list(const char *v, const vocab *list)
{
    return vocab_value(list, v) >= 0;
}

static int enum_fail(kerr *err, const vocab *list, const char *extra)
{
    char allowed[400] = "";
    size_t used = 0;
    for (int i = 0; i < vocab_count(list) && used < sizeof allowed; i++)
        used += (size_t)snprintf(allowed + used, sizeof allowed - used, "%s%s", used ? ", " : "",
                                 vocab_nth(list, i));
    return kerr_set(err, KERR_INVALID, "field '%s' must be one of %s%s", list->field, allowed,
                    extra ? extra : "");
}

/* The older page spells the first openAccountReason without its final S:
 * name that mistake rather than just refuse it. */
static int older_open_reason(const char *v)
{
    const char *first = vocab_nth(&VOCAB_OPEN_ACCOUNT_REASON, 0);
    size_t n = strlen(first) - 1;
    return strlen(v) == n && strncmp(v, first, n) == 0;
}

/* The struct's arrays are caller-filled: a missing terminator is refused
 * rather than read past. */
static int terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

/* Text that goes into JSON and P100's records: valid UTF-8, no control
 * characters (tab and newline allowed only where free text is). */
static int text_ok(const char *s, int allow_newlines)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == 0x7f)
            return 0;
        if (*p < 0x20 && !(allow_newlines && (*p == '\t' || *p == '\n' || *p == '\r')))
            return 0;
    }
    return json_utf8_valid(s, strlen(s));
}

static int blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return 0;
    return 1;
}

/* Income sources for which additionalInfo is required: the documentation
 * says "for most income sources"; SALARY (occupation says it) and
 * BUSINESS_ACTIVITY (taxId says it) are the exceptions. */
static int needs_additional_info(int income)
{
    return income != P100_INCOME_SALARY && income != P100_INCOME_BUSINESS_ACTIVITY;
}

int p100_create_validate(const p100_create_req *r, kerr *err)
{
    if (r == NULL)
        return kerr_set(err, KERR_INVALID, "no create request");
#define TERMINATED(f, name)                                                                        \
    if (!terminated(r->f, sizeof r->f))                                                            \
        return kerr_set(err, KERR_INVALID, "field '%s' is not terminated", name);
    TERMINATED(external_user_id, "externalUserId")
    TERMINATED(document_type, "documentType")
    TERMINATED(country, "country")
    TERMINATED(income_source, "incomeSource")
    TERMINATED(open_account_reason, "openAccountReason")
    TERMINATED(occupation, "occupation")
    TERMINATED(additional_info, "additionalInfo")
    TERMINATED(tax_id, "taxId")
#undef TERMINATED

    /* externalUserId: printable ASCII (the ids are UUIDs in every example;
     * the id goes into URLs and logs). "" is an absent field, as below. */
    if (r->external_user_id[0] == '\0')
        return kerr_set(err, KERR_INVALID, "missing required field 'externalUserId'");
    int rc = kyc_id_check("externalUserId", r->external_user_id, KYC_ID_ASCII, err);
    if (rc != 0)
        return rc;

    if (r->document_type[0] == '\0')
        return kerr_set(err, KERR_INVALID, "missing required field 'documentType'");
    if (!in_list(r->document_type, &VOCAB_DOCUMENT_TYPE))
        return enum_fail(err, &VOCAB_DOCUMENT_TYPE, NULL);

    if (r->country[0] == '\0')
        return kerr_set(err, KERR_INVALID, "missing required field 'country'");
    if (!(r->country[0] >= 'A' && r->country[0] <= 'Z' && r->country[1] >= 'A' &&
          r->country[1] <= 'Z' && r->country[2] == '\0'))
        return kerr_set(err, KERR_INVALID,
                        "field 'country' must be an ISO 3166-1 alpha-2 code: two upper-case "
                        "letters A-Z");

    if (r->income_source[0] == '\0')
        return kerr_set(err, KERR_INVALID, "missing required field 'incomeSource'");
    if (!in_list(r->income_source, &VOCAB_INCOME_SOURCE))
        return enum_fail(err, &VOCAB_INCOME_SOURCE, NULL);

    if (r->open_account_reason[0] == '\0')
        return kerr_set(err, KERR_INVALID, "missing required field 'openAccountReason'");
    if (!in_list(r->open_account_reason, &VOCAB_OPEN_ACCOUNT_REASON))
        return enum_fail(err, &VOCAB_OPEN_ACCOUNT_REASON,
                         older_open_reason(r->open_account_reason)
                             ? " (the older spelling without the final S is not accepted)"
                             : NULL);

    int income = vocab_value(&VOCAB_INCOME_SOURCE, r->income_source);
    int salary = income == P100_INCOME_SALARY;
    if (salary && r->occupation[0] == '\0')
        return kerr_set(err, KERR_INVALID,
                        "missing field 'occupation', required when incomeSource is %s",
                        vocab_name(&VOCAB_INCOME_SOURCE, P100_INCOME_SALARY));
    /* Allowed with other income sources, but then it must still be one of
     * the documented values. */
    if (r->occupation[0] != '\0' && !in_list(r->occupation, &VOCAB_OCCUPATION))
        return enum_fail(err, &VOCAB_OCCUPATION, NULL);

    if (income == P100_INCOME_BUSINESS_ACTIVITY && blank(r->tax_id))
        return kerr_set(err, KERR_INVALID,
                        "missing field 'taxId', required when incomeSource is %s",
                        vocab_name(&VOCAB_INCOME_SOURCE, P100_INCOME_BUSINESS_ACTIVITY));
    if (!text_ok(r->tax_id, 0))
        return kerr_set(err, KERR_INVALID,
                        "field 'taxId' must be UTF-8 text without control characters");

    if (needs_additional_info(income) && blank(r->additional_info))
        return kerr_set(err, KERR_INVALID,
                        "missing field 'additionalInfo', required when incomeSource is %s "
                        "(optional only for SALARY and BUSINESS_ACTIVITY)",
                        r->income_source);
    if (!text_ok(r->additional_info, 1))
        return kerr_set(err, KERR_INVALID,
                        "field 'additionalInfo' must be UTF-8 text without control characters "
                        "other than tab and newline");
    return 0;
}

/* ---- retries */

int64_t p100_backoff_ms(int failures, int64_t base_ms, int64_t max_ms, uint64_t random)
{
    if (failures <= 0 || base_ms <= 0 || max_ms <= 0)
        return 0;
    int64_t d = base_ms < max_ms ? base_ms : max_ms;
    /* Double without overflowing: stop as soon as the cap is reached. */
    for (int i = 1; i < failures && d < max_ms; i++)
        d = d > max_ms / 2 ? max_ms : d * 2;
    int64_t lo = d / 2;
    uint64_t span = (uint64_t)(d - lo) + 1;
    return lo + (int64_t)(random % span);
}

/* A longer wait than this is taken as "wait a day": the caller's own
 * ceiling still applies on top. */
#define RETRY_AFTER_MAX_S 86400

int64_t p100_retry_after_ms(const char *value)
{
    if (value == NULL)
        return -1;
    const char *p = value;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p < '0' || *p > '9')
        return -1; /* empty, a sign, or an HTTP date */
    int64_t s = 0;
    for (; *p >= '0' && *p <= '9'; p++)
        if (s <= RETRY_AFTER_MAX_S)
            s = s * 10 + (*p - '0');
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    if (*p != '\0')
        return -1;
    if (s > RETRY_AFTER_MAX_S)
        s = RETRY_AFTER_MAX_S;
    return s * 1000;
}
