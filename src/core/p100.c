/* P100's Partner API, the pure part: classification of answers, the
 * create-verification request's rules, retry delays. Must never do I/O or
 * log; messages never quote a request value (additionalInfo and taxId can
 * hold personal data), only field names and the allowed values. */
#include "core/p100.h"

#include <stdio.h>
#include <string.h>

#include "core/json.h"

/* ---- classification */

static int code_is(const char *code, const char *want)
{
    return code != NULL && strcmp(code, want) == 0;
}

enum p100_class p100_classify(long http_status, const char *error_code)
{
    /* P500/P501 come as HTTP 400: the code wins over any status. */
    if (code_is(error_code, "P500") || code_is(error_code, "P501"))
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
    if (http_status >= 400 && http_status < 500)
        return P100_FINAL;
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
    switch (c) {
    case P100_OK:
        return "ok";
    case P100_FINAL:
        return "final";
    case P100_TRANSIENT:
        return "transient";
    case P100_RATE_LIMITED:
        return "rate_limited";
    case P100_MISCONFIGURED:
        return "misconfigured";
    }
    return "unknown";
}

static const struct {
    const char *code;
    const char *text;
} explain[] = {
    {"P403", "the request failed P100's validation; the message lists what was wrong"},
    {"P411", "a user with this externalUserId already exists at P100"},
    {"P412", "the user does not exist at P100"},
    {"P433", "the account has insufficient funds"},
    {"P445", "P100 has no KYC verification for this user"},
    {"P450", "the user's KYC is already verified"},
    {"P453", "the user has made too many KYC verification attempts"},
    {"P459", "the user is not verified"},
    {"P500", "P100 hit an unknown exception (sent as HTTP 400); retry later"},
    {"P501", "P100's service is temporarily unavailable (sent as HTTP 400); retry later"},
    {"P211", "a proof-of-address verification is already pending (HTTP 202)"},
    {"P212", "a KYC verification is already pending for this user (HTTP 202)"},
};

const char *p100_error_explain(const char *error_code)
{
    if (error_code == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof explain / sizeof explain[0]; i++)
        if (strcmp(explain[i].code, error_code) == 0)
            return explain[i].text;
    return NULL;
}

/* ---- create request */

static const char *const document_types[] = {"ID_CARD", "PASSPORT", "RESIDENCE_PERMIT",
                                             "DRIVER_LICENSE", NULL};
static const char *const income_sources[] = {
    "BUSINESS_ACTIVITY", "SALARY",          "OTHER",   "MAINTAINED_BY_FAMILY",
    "INVESTMENTS",       "SOCIAL_BENEFITS", "TENANCY", NULL};
static const char *const open_reasons[] = {"INVESTMENTS_OR_CRYPTOCURRENCIES",
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

static int in_list(const char *v, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(v, *list) == 0)
            return 1;
    return 0;
}

static int enum_fail(kerr *err, const char *field, const char *const *list, const char *extra)
{
    char allowed[400] = "";
    size_t used = 0;
    for (; *list && used < sizeof allowed; list++)
        used += (size_t)snprintf(allowed + used, sizeof allowed - used, "%s%s", used ? ", " : "",
                                 *list);
    return kerr_set(err, KERR_INVALID, "field '%s' must be one of %s%s", field, allowed,
                    extra ? extra : "");
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
static int needs_additional_info(const char *income)
{
    return strcmp(income, "SALARY") != 0 && strcmp(income, "BUSINESS_ACTIVITY") != 0;
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
    if (!in_list(r->document_type, document_types))
        return enum_fail(err, "documentType", document_types, NULL);

    if (r->country[0] == '\0')
        return kerr_set(err, KERR_INVALID, "missing required field 'country'");
    if (!(r->country[0] >= 'A' && r->country[0] <= 'Z' && r->country[1] >= 'A' &&
          r->country[1] <= 'Z' && r->country[2] == '\0'))
        return kerr_set(err, KERR_INVALID,
                        "field 'country' must be an ISO 3166-1 alpha-2 code: two upper-case "
                        "letters A-Z");

    if (r->income_source[0] == '\0')
        return kerr_set(err, KERR_INVALID, "missing required field 'incomeSource'");
    if (!in_list(r->income_source, income_sources))
        return enum_fail(err, "incomeSource", income_sources, NULL);

    if (r->open_account_reason[0] == '\0')
        return kerr_set(err, KERR_INVALID, "missing required field 'openAccountReason'");
    if (!in_list(r->open_account_reason, open_reasons))
        return enum_fail(err, "openAccountReason", open_reasons,
                         strcmp(r->open_account_reason, "INVESTMENTS_OR_CRYPTOCURRENCIE") == 0
                             ? " (the older spelling INVESTMENTS_OR_CRYPTOCURRENCIE is not "
                               "accepted: use INVESTMENTS_OR_CRYPTOCURRENCIES)"
                             : NULL);

    int salary = strcmp(r->income_source, "SALARY") == 0;
    if (salary && r->occupation[0] == '\0')
        return kerr_set(err, KERR_INVALID,
                        "missing field 'occupation', required when incomeSource is SALARY");
    /* Allowed with other income sources, but then it must still be one of
     * the documented values. */
    if (r->occupation[0] != '\0' && !in_list(r->occupation, occupations))
        return enum_fail(err, "occupation", occupations, NULL);

    if (strcmp(r->income_source, "BUSINESS_ACTIVITY") == 0 && blank(r->tax_id))
        return kerr_set(err, KERR_INVALID,
                        "missing field 'taxId', required when incomeSource is "
                        "BUSINESS_ACTIVITY");
    if (!text_ok(r->tax_id, 0))
        return kerr_set(err, KERR_INVALID,
                        "field 'taxId' must be UTF-8 text without control characters");

    if (needs_additional_info(r->income_source) && blank(r->additional_info))
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
