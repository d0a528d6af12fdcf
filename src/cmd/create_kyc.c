/* `kycd create-kyc` (see create_kyc.h). Must never: print a secret, record
 * a verification P100 did not confirm, or leave the database half-written
 * (the record is one idempotent call of the db module). */
#include "cmd/create_kyc.h"

#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "cmd/common.h"

enum create_kyc_answer create_kyc_outcome(const p100_result *res, const char *verification_id)
{
    if (res->cls != P100_OK)
        return CREATE_KYC_REFUSED;
    if (p100_code_parse(res->error_code) == P100_CODE_P212)
        return CREATE_KYC_PENDING;
    if (verification_id == NULL || verification_id[0] == '\0')
        return CREATE_KYC_UNUSABLE;
    return CREATE_KYC_NEW;
}

/* Copy create-kyc's flags into the request; CMD_USAGE when one is too long. */
static int create_request(cmd_flag *f, int nf, p100_create_req *req)
{
    memset(req, 0, sizeof *req);
    struct {
        char *dst;
        size_t cap;
    } dst[] = {
        {req->external_user_id, sizeof req->external_user_id},
        {req->document_type, sizeof req->document_type},
        {req->country, sizeof req->country},
        {req->income_source, sizeof req->income_source},
        {req->open_account_reason, sizeof req->open_account_reason},
        {req->occupation, sizeof req->occupation},
        {req->additional_info, sizeof req->additional_info},
        {req->tax_id, sizeof req->tax_id},
    };
    for (int i = 0; i < nf; i++) {
        if (f[i].value == NULL)
            continue;
        if (strlen(f[i].value) >= dst[i].cap) {
            fprintf(stderr, "kycd: %s is too long (at most %zu characters)\n", f[i].name,
                    dst[i].cap - 1);
            return CMD_USAGE;
        }
        snprintf(dst[i].dst, dst[i].cap, "%s", f[i].value);
    }
    return 0;
}

int cmd_create_kyc(int argc, char **argv, const cmd_ctl *ctl)
{
    /* in the order of p100_create_req's fields (create_request) */
    cmd_flag f[] = {
        {"--external-user-id", 1, NULL},
        {"--document-type", 1, NULL},
        {"--country", 1, NULL},
        {"--income-source", 1, NULL},
        {"--open-account-reason", 1, NULL},
        {"--occupation", 1, NULL},
        {"--additional-info", 1, NULL},
        {"--tax-id", 1, NULL},
    };
    int nf = (int)(sizeof f / sizeof f[0]);
    p100_create_req req;
    if (cmd_take_flags(&argc, argv, f, nf, NULL) != 0 || create_request(f, nf, &req) != 0)
        return CMD_USAGE;
    kerr err;
    kerr_clear(&err);
    if (p100_create_validate(&req, &err) != 0) {
        fprintf(stderr, "kycd: %s\n", err.msg);
        return CMD_USAGE;
    }
    kycd_config cfg;
    db *d = NULL;
    /* The database first: a verification created at P100 must be recorded. */
    cmd_needs needs = {.api_key_for = "kycd create-kyc", .db = CMD_DB_READY};
    int rc = cmd_begin(&cfg, argc, argv, &needs, &d);
    if (rc != 0)
        return rc;
    p100_client *client = NULL;
    p100_result res;
    p100_result_init(&res);
    kbuf url;
    kbuf_init(&url);
    char vid[128] = "";
    p100_opts po = cmd_p100_options(&cfg);
    rc = CMD_FAILED;
    if (p100_client_new(&client, &po, &err) != 0 ||
        p100_create_kyc(client, &req, &res, vid, sizeof vid, &err) != 0) {
        cmd_report("create-kyc failed", &err);
        goto out;
    }
    enum create_kyc_answer outcome = create_kyc_outcome(&res, vid);
    switch (outcome) {
    case CREATE_KYC_REFUSED:
        cmd_print_p100_error(&res);
        goto out;
    case CREATE_KYC_UNUSABLE:
        fprintf(stderr,
                "kycd: P100 answered HTTP %ld%s%s without a verificationId and without P212 "
                "(already pending): kycd cannot use this answer; nothing was recorded\n"
                "      `kycd status %s --live` shows what P100 now holds for the user\n",
                res.http_status, res.error_code[0] ? " " : "", res.error_code,
                req.external_user_id);
        goto out;
    case CREATE_KYC_PENDING:
    case CREATE_KYC_NEW:
        break;
    }
    int pending = outcome == CREATE_KYC_PENDING;
    if (db_record_created(d, req.external_user_id, pending ? NULL : vid, pending,
                          cfg.pending_after_ms, &err) != 0) {
        cmd_report("P100 created the verification but recording it failed; the reconciler will "
                   "not know of it until you run create-kyc again",
                   &err);
        goto out;
    }
    if (pending) {
        printf("a verification is already pending at P100 for %s (202 P212); recorded as pending, "
               "the reconciler will follow it\n",
               req.external_user_id);
        rc = CMD_OK;
        goto out;
    }
    if (p100_redirect_url(&po, req.external_user_id, vid, &url, &err) != 0) {
        cmd_report("cannot build the redirect URL", &err);
        goto out;
    }
    printf("verificationId %s\nredirect the user to:\n%s\n", vid, kbuf_str(&url));
    rc = CMD_OK;
out:
    kbuf_deinit(&url);
    p100_result_deinit(&res);
    p100_client_free(client);
    db_free(d);
    config_deinit(&cfg);
    return rc;
}
