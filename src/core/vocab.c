/* The vocabulary tables (see vocab.h). Pure: must never do I/O. The only
 * C file that spells a P100 value; each table is indexed by its enum, so
 * that a name and its value cannot drift apart. */
#include "core/vocab.h"

#include <string.h>

#include "core/kyc.h"
#include "core/p100.h"
#include "core/check.h"
#include "core/state.h"

#define TABLE(var, fld, is_p100, arr)                                                              \
    const vocab var = {fld, is_p100, arr, (int)(sizeof arr / sizeof arr[0])}

/* ---- P100's (docs/p100-api.md) */

static const char *const vstatus[] = {
    [KYC_V_NOT_VERIFIED] = "NOT_VERIFIED",
    [KYC_V_VERIFIED] = "VERIFIED",
    [KYC_V_EXPIRED] = "EXPIRED",
    [KYC_V_UNKNOWN] = NULL,
};
TABLE(VOCAB_VERIFICATION_STATUS, "verificationStatus", 1, vstatus);

static const char *const astatus[] = {
    [KYC_A_PENDING] = "PENDING",
    [KYC_A_VERIFICATION] = "VERIFICATION",
    [KYC_A_REJECTED] = "REJECTED_BY_PROVIDER",
    [KYC_A_SUCCESSFUL] = "SUCCESSFUL",
    [KYC_A_UNKNOWN] = NULL,
};
TABLE(VOCAB_ATTEMPT_STATUS, "attemptStatus", 1, astatus);

static const char *const poa[] = {"WAITING", "APPROVED", "REJECTED", "QUESTIONED"};
TABLE(VOCAB_POA_STATUS, "poaVerificationStatus.status", 1, poa);

static const char *const file[] = {"ADDED", "ERROR"};
TABLE(VOCAB_KYC_FILE_STATUS, "kycFileAdded.status", 1, file);

static const char *const user[] = {"ACTIVE"};
TABLE(VOCAB_USER_STATUS, "userStatus.status", 1, user);

static const char *const codes[] = {
    [P100_CODE_P403] = "P403",  [P100_CODE_P411] = "P411", [P100_CODE_P412] = "P412",
    [P100_CODE_P433] = "P433",  [P100_CODE_P445] = "P445", [P100_CODE_P450] = "P450",
    [P100_CODE_P453] = "P453",  [P100_CODE_P459] = "P459", [P100_CODE_P500] = "P500",
    [P100_CODE_P501] = "P501",  [P100_CODE_P211] = "P211", [P100_CODE_P212] = "P212",
    [P100_CODE_UNKNOWN] = NULL,
};
TABLE(VOCAB_ERROR_CODE, "errorCode", 1, codes);

static const char *const document_types[] = {"ID_CARD", "PASSPORT", "RESIDENCE_PERMIT",
                                             "DRIVER_LICENSE"};
TABLE(VOCAB_DOCUMENT_TYPE, "documentType", 1, document_types);

static const char *const income_sources[] = {
    [P100_INCOME_BUSINESS_ACTIVITY] = "BUSINESS_ACTIVITY",
    [P100_INCOME_SALARY] = "SALARY",
    [P100_INCOME_OTHER] = "OTHER",
    [P100_INCOME_MAINTAINED_BY_FAMILY] = "MAINTAINED_BY_FAMILY",
    [P100_INCOME_INVESTMENTS] = "INVESTMENTS",
    [P100_INCOME_SOCIAL_BENEFITS] = "SOCIAL_BENEFITS",
    [P100_INCOME_TENANCY] = "TENANCY",
};
TABLE(VOCAB_INCOME_SOURCE, "incomeSource", 1, income_sources);

static const char *const open_reasons[] = {"INVESTMENTS_OR_CRYPTOCURRENCIES", "CURRENCY_EXCHANGE",
                                           "DAILY_USE", "GAMING_OR_GAMBLING",
                                           "TRANSFER_OF_FUNDS_OUTSIDE_OF_EUROPE"};
TABLE(VOCAB_OPEN_ACCOUNT_REASON, "openAccountReason", 1, open_reasons);

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
                                          "SCIENCE_AND_RESEARCH"};
TABLE(VOCAB_OCCUPATION, "occupation", 1, occupations);

/* ---- kycd's own */

static const char *const kinds[] = {
    [KYC_KIND_KYC_STATUS] = "kyc_verification_status",
    [KYC_KIND_POA_STATUS] = "poa_verification_status",
    [KYC_KIND_KYC_FILE] = "kyc_file_added",
    [KYC_KIND_USER_STATUS] = "user_status",
};
TABLE(VOCAB_KIND, "kind", 0, kinds);
_Static_assert(sizeof kinds / sizeof kinds[0] == KYC_KIND_COUNT, "a kind without a name");

static const char *const sources[] = {
    [KYC_SRC_WEBHOOK] = "webhook",
    [KYC_SRC_RECONCILER] = "reconciler",
    [KYC_SRC_API] = "api",
};
TABLE(VOCAB_SOURCE, "source", 0, sources);

static const char *const outcomes[] = {
    [KYC_OUTCOME_APPLIED] = "applied", [KYC_OUTCOME_UNCHANGED] = "unchanged",
    [KYC_OUTCOME_HELD] = "held",       [KYC_OUTCOME_RECORDED] = "recorded",
    [KYC_OUTCOME_SPOOLED] = "spooled", [KYC_OUTCOME_QUARANTINED] = "quarantined",
};
TABLE(VOCAB_OUTCOME, "outcome", 0, outcomes);
_Static_assert(sizeof outcomes / sizeof outcomes[0] == KYC_OUTCOME_COUNT,
               "an outcome without a name");

static const char *const reasons[] = {
    [KYC_R_FIRST] = "first",
    [KYC_R_FORWARD] = "forward",
    [KYC_R_NEW_ATTEMPT] = "new_attempt",
    [KYC_R_RECONCILER] = "reconciler",
    [KYC_R_API] = "api",
    [KYC_R_SAME] = "same",
    [KYC_R_REPEAT] = "repeat",
    [KYC_R_OUT_OF_ORDER] = "out_of_order",
    [KYC_R_LEAVES_VERIFIED] = "leaves_verified",
    [KYC_R_CONFLICT] = "conflict",
    [KYC_R_REPEAT_CONFLICT] = "repeat_conflict",
    [KYC_R_UNKNOWN_VALUE] = "unknown_value",
    [KYC_R_LATEST] = "latest",
    [KYC_R_RECORDED] = "recorded",
    [KYC_R_ALREADY_STORED] = "already_stored",
    [KYC_R_DATABASE_UNAVAILABLE] = "database_unavailable",
    [KYC_R_RECHECK] = "recheck",
    [KYC_R_INVALID_BODY] = "invalid_body",
};
TABLE(VOCAB_REASON, "reason", 0, reasons);
_Static_assert(sizeof reasons / sizeof reasons[0] == KYC_REASON_COUNT, "a reason without a name");

static const char *const results[] = {
    [KYC_CHECK_APPLIED] = "applied",   [KYC_CHECK_UNCHANGED] = "unchanged",
    [KYC_CHECK_FLAGGED] = "flagged",   [KYC_CHECK_RETRY] = "retry",
    [KYC_CHECK_RELEASED] = "released",
};
TABLE(VOCAB_CHECK_RESULT, "result", 0, results);
_Static_assert(sizeof results / sizeof results[0] == KYC_CHECK_RESULT_COUNT,
               "a check result without a name");

static const char *const whys[] = {
    [KYC_WHY_HELD] = "held",
    [KYC_WHY_PENDING] = "pending",
    [KYC_WHY_RECHECK_REJECTED] = "recheck_rejected",
    [KYC_WHY_RECHECK_VERIFIED] = "recheck_verified",
};
TABLE(VOCAB_CHECK_WHY, "purpose", 0, whys);

static const char *const classes[] = {
    [P100_OK] = "ok",
    [P100_FINAL] = "final",
    [P100_TRANSIENT] = "transient",
    [P100_RATE_LIMITED] = "rate_limited",
    [P100_MISCONFIGURED] = "misconfigured",
    [P100_UNUSABLE] = "unusable",
};
TABLE(VOCAB_P100_CLASS, "p100_class", 0, classes);
_Static_assert(sizeof classes / sizeof classes[0] == P100_CLASS_COUNT, "a class without a name");

static const char *const refusals[] = {
    [KYC_REFUSE_UNAUTHORIZED] = "unauthorized",
    [KYC_REFUSE_FORBIDDEN] = "forbidden",
    [KYC_REFUSE_UNSUPPORTED_MEDIA_TYPE] = "unsupported_media_type",
    [KYC_REFUSE_PAYLOAD_TOO_LARGE] = "payload_too_large",
    [KYC_REFUSE_REQUEST_TIMEOUT] = "request_timeout",
    [KYC_REFUSE_BAD_REQUEST] = "bad_request",
    [KYC_REFUSE_INVALID_PAYLOAD] = "invalid_payload",
    [KYC_REFUSE_UNAVAILABLE] = "unavailable",
    [KYC_REFUSE_OVERLOADED] = "overloaded",
    [KYC_REFUSE_DRAINING] = "draining",
    [KYC_REFUSE_METHOD_NOT_ALLOWED] = "method_not_allowed",
    [KYC_REFUSE_NOT_READY] = "not_ready",
    [KYC_REFUSE_INTERNAL] = "internal",
    [KYC_REFUSE_NOT_FOUND] = "not_found",
};
TABLE(VOCAB_REFUSAL, "refusal", 0, refusals);
_Static_assert(sizeof refusals / sizeof refusals[0] == KYC_REFUSAL_COUNT,
               "a refusal without a name");

const vocab *const vocab_all[] = {
    &VOCAB_VERIFICATION_STATUS,
    &VOCAB_ATTEMPT_STATUS,
    &VOCAB_POA_STATUS,
    &VOCAB_KYC_FILE_STATUS,
    &VOCAB_USER_STATUS,
    &VOCAB_ERROR_CODE,
    &VOCAB_DOCUMENT_TYPE,
    &VOCAB_INCOME_SOURCE,
    &VOCAB_OPEN_ACCOUNT_REASON,
    &VOCAB_OCCUPATION,
    &VOCAB_KIND,
    &VOCAB_SOURCE,
    &VOCAB_OUTCOME,
    &VOCAB_REASON,
    &VOCAB_CHECK_RESULT,
    &VOCAB_CHECK_WHY,
    &VOCAB_P100_CLASS,
    &VOCAB_REFUSAL,
};
const size_t vocab_all_count = sizeof vocab_all / sizeof vocab_all[0];

/* ---- lookups */

const char *vocab_name(const vocab *v, int value)
{
    if (value < 0 || value >= v->size)
        return NULL;
    return v->names[value];
}

const char *vocab_label(const vocab *v, int value)
{
    const char *n = vocab_name(v, value);
    return n ? n : "unknown";
}

int vocab_value(const vocab *v, const char *s)
{
    if (s == NULL || *s == '\0')
        return -1;
    for (int i = 0; i < v->size; i++)
        if (v->names[i] != NULL && strcmp(v->names[i], s) == 0)
            return i;
    return -1;
}

int vocab_count(const vocab *v)
{
    int n = 0;
    for (int i = 0; i < v->size; i++)
        n += v->names[i] != NULL;
    return n;
}

const char *vocab_nth(const vocab *v, int i)
{
    for (int k = 0; k < v->size; k++)
        if (v->names[k] != NULL && i-- == 0)
            return v->names[k];
    return NULL;
}
