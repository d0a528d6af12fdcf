/* `kycd create-kyc`: create a KYC verification at P100, record it, print
 * the redirect URL. Exit codes as in cmd.h. */
#ifndef KYCD_CMD_CREATE_KYC_H
#define KYCD_CMD_CREATE_KYC_H

#include "cmd/cmd.h"
#include "io/p100.h"

int cmd_create_kyc(int argc, char **argv, const cmd_ctl *ctl);

/* What create-kyc makes of P100's answer to Create KYC Verification. */
enum create_kyc_answer {
    CREATE_KYC_NEW,     /* 2xx with a verificationId: record it, print the redirect URL */
    CREATE_KYC_PENDING, /* 202 P212: already pending; record the user as pending */
    CREATE_KYC_REFUSED, /* an error answer: print it, record nothing */
    /* 2xx with neither a verificationId nor P212 (P100 documents no such
     * answer): nothing to record that the reconciler could follow, and no
     * URL to give; record nothing, say what was missing, exit 1. */
    CREATE_KYC_UNUSABLE,
};

/* The decision, from the classified answer and the verificationId that
 * p100_create_kyc extracted ("" when none). */
enum create_kyc_answer create_kyc_outcome(const p100_result *res, const char *verification_id);

#endif
