/* Names and parsing of the domain's enums. Pure. */
#include "core/kyc.h"

#include <string.h>

const char *kyc_kind_name(enum kyc_kind k)
{
    switch (k) {
    case KYC_KIND_KYC_STATUS: return "kyc_verification_status";
    case KYC_KIND_POA_STATUS: return "poa_verification_status";
    case KYC_KIND_KYC_FILE: return "kyc_file_added";
    case KYC_KIND_USER_STATUS: return "user_status";
    case KYC_KIND_COUNT: break;
    }
    return "unknown";
}

const char *kyc_source_name(enum kyc_source s)
{
    switch (s) {
    case KYC_SRC_WEBHOOK: return "webhook";
    case KYC_SRC_RECONCILER: return "reconciler";
    case KYC_SRC_API: return "api";
    }
    return "unknown";
}

enum kyc_vstatus kyc_vstatus_parse(const char *s)
{
    if (s == NULL || *s == '\0')
        return KYC_V_NONE;
    if (strcmp(s, "NOT_VERIFIED") == 0)
        return KYC_V_NOT_VERIFIED;
    if (strcmp(s, "VERIFIED") == 0)
        return KYC_V_VERIFIED;
    if (strcmp(s, "EXPIRED") == 0)
        return KYC_V_EXPIRED;
    return KYC_V_UNKNOWN;
}

enum kyc_astatus kyc_astatus_parse(const char *s)
{
    if (s == NULL || *s == '\0')
        return KYC_A_NONE;
    if (strcmp(s, "PENDING") == 0)
        return KYC_A_PENDING;
    if (strcmp(s, "VERIFICATION") == 0)
        return KYC_A_VERIFICATION;
    if (strcmp(s, "REJECTED_BY_PROVIDER") == 0)
        return KYC_A_REJECTED;
    if (strcmp(s, "SUCCESSFUL") == 0)
        return KYC_A_SUCCESSFUL;
    return KYC_A_UNKNOWN;
}

int kyc_other_status_known(enum kyc_kind k, const char *s)
{
    static const char *poa[] = {"WAITING", "APPROVED", "REJECTED", "QUESTIONED", NULL};
    static const char *file[] = {"ADDED", "ERROR", NULL};
    static const char *user[] = {"ACTIVE", NULL};
    const char **list = NULL;
    switch (k) {
    case KYC_KIND_POA_STATUS: list = poa; break;
    case KYC_KIND_KYC_FILE: list = file; break;
    case KYC_KIND_USER_STATUS: list = user; break;
    default: return 0;
    }
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return 1;
    return 0;
}

int kyc_status_empty(const kyc_status *s)
{
    return s->verification[0] == '\0' && s->attempt[0] == '\0';
}

int kyc_status_equal(const kyc_status *a, const kyc_status *b)
{
    return strcmp(a->verification, b->verification) == 0 && strcmp(a->attempt, b->attempt) == 0 &&
           strcmp(a->reason, b->reason) == 0;
}
