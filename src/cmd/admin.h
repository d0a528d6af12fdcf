/* The short-lived admin commands: config, migrate, status, spool,
 * create-kyc, version. Each runs to completion and returns its exit code
 * (cmd.h: 0 ok, 1 failed, 2 usage or configuration, 3 unknown user); none
 * handles signals. */
#ifndef KYCD_CMD_ADMIN_H
#define KYCD_CMD_ADMIN_H

#include "cmd/cmd.h"
#include "io/p100.h"

int admin_config(int argc, char **argv, const cmd_ctl *ctl);
int admin_migrate(int argc, char **argv, const cmd_ctl *ctl);
int admin_status(int argc, char **argv, const cmd_ctl *ctl);
int admin_spool(int argc, char **argv, const cmd_ctl *ctl);
int admin_create_kyc(int argc, char **argv, const cmd_ctl *ctl);
int admin_version(int argc, char **argv, const cmd_ctl *ctl);

/* What create-kyc makes of P100's answer to Create KYC Verification. */
enum admin_created {
    ADMIN_CREATED_NEW,     /* 2xx with a verificationId: record it, print the redirect URL */
    ADMIN_CREATED_PENDING, /* 202 P212: already pending; record the user as pending */
    ADMIN_CREATED_REFUSED, /* an error answer: print it, record nothing */
    /* 2xx with neither a verificationId nor P212 (P100 documents no such
     * answer): nothing to record that the reconciler could follow, and no
     * URL to give; record nothing, say what was missing, exit 1. */
    ADMIN_CREATED_UNUSABLE,
};

/* The decision, from the classified answer and the verificationId that
 * p100_create_kyc extracted ("" when none). */
enum admin_created admin_create_outcome(const p100_result *res, const char *verification_id);

#endif
