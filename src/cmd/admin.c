/* The admin commands (see admin.h). Must never: print a secret, record a
 * verification P100 did not confirm, or leave the database half-written
 * (every write is one idempotent call of the db module). */
#include "cmd/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app/ingest.h"
#include "app/server.h"
#include "base/buf.h"
#include "base/log.h"
#include "cmd/common.h"
#include "core/payload.h"
#include "io/config_check.h"
#include "io/config_print.h"
#include "io/config_reference.h"
#include "io/db_report.h"
#include "io/migrate.h"
#include "io/spool_dead.h"
#include "io/tls.h"

/* `kycd config --check` (as `nginx -t`): every check `kycd serve` makes
 * before it listens (configuration, tokens and networks, API key for the
 * reconciler, TLS in this build, certificate and key load and match, the
 * database reachable and migrated to this binary's schema), each problem
 * on a line of its own, and nothing served. The spool is not opened: a
 * running kycd holds its lock, and checking before a reload is the point. */
static int config_check(kycd_config *cfg)
{
    int problems = 0;
    kerr err;
    kerr_clear(&err);
    if (config_check_serve(cfg, &err) != 0) {
        cmd_report("configuration refused", &err);
        problems++;
    }
    if (cfg->reconcile && cmd_need_api_key(cfg, "the reconciler") != 0)
        problems++;
    if (server_tls_available(&err) != 0) {
        cmd_report("tls unavailable", &err);
        problems++;
    }
    tls_opts tls = {cfg->tls_cert, cfg->tls_key, cfg->tls_chain, cfg->tls_ciphers,
                    cfg->tls_client_ca};
    if (cfg->tls_cert && cfg->tls_key && tls_check(&tls, &err) != 0) {
        cmd_report("tls configuration refused", &err);
        problems++;
    }
    db *d = NULL;
    if (cmd_open_db(cfg, CMD_DB_READY, &d) != 0)
        problems++;
    db_free(d);
    if (problems == 0) {
        printf("kycd: configuration ok (schema %d, %d webhook token%s)\n", migrate_latest_version(),
               cfg->tokens.count, cfg->tokens.count == 1 ? "" : "s");
        return CMD_OK;
    }
    fprintf(stderr, "kycd: configuration check failed: %d problem%s (one line each above)\n",
            problems, problems == 1 ? "" : "s");
    return CMD_USAGE;
}

int admin_config(int argc, char **argv, const cmd_ctl *ctl)
{
    cmd_flag flags[] = {{"--check", 0, NULL}, {"--reference", 1, NULL}};
    if (cmd_take_flags(&argc, argv, flags, 2, NULL) != 0)
        return CMD_USAGE;
    /* The documentation of every key (the README's table, kycd.conf(5)):
     * from the table alone, so no configuration is loaded. */
    const char *ref = flags[1].value;
    if (ref != NULL) {
        if (argc != 0 || flags[0].value != NULL ||
            (strcmp(ref, "markdown") != 0 && strcmp(ref, "man") != 0)) {
            fprintf(stderr, "kycd: usage: kycd config --reference markdown|man\n");
            return CMD_USAGE;
        }
        config_reference(strcmp(ref, "man") == 0 ? CONFIG_REF_MAN : CONFIG_REF_MARKDOWN, stdout);
        return fflush(stdout) == 0 && !ferror(stdout) ? CMD_OK : CMD_FAILED;
    }
    kycd_config cfg;
    cmd_needs needs = {.db = CMD_DB_NONE};
    int rc = cmd_begin(&cfg, argc, argv, &needs, NULL);
    if (rc == 0 && flags[0].value)
        rc = config_check(&cfg);
    else if (rc == 0)
        config_print(&cfg, stdout);
    config_deinit(&cfg);
    return rc;
}

int admin_migrate(int argc, char **argv, const cmd_ctl *ctl)
{
    kycd_config cfg;
    cmd_needs needs = {.db = CMD_DB_NONE}; /* the schema is what migrate makes ready */
    int rc = cmd_begin(&cfg, argc, argv, &needs, NULL);
    if (rc != 0)
        return rc;
    kerr err;
    kerr_clear(&err);
    db *d = NULL;
    db_opts o = cmd_db_options(&cfg);
    int applied = 0, version = 0;
    if (db_connect(&d, &o, &err) != 0 || db_migrate(d, &applied, &err) != 0 ||
        db_schema_version(d, &version, &err) != 0) {
        cmd_report("migrate failed", &err);
        rc = CMD_FAILED;
    } else {
        klog(KLOG_INFO, "migrate done", KLOG_INT("applied", applied), KLOG_INT("schema", version));
    }
    db_free(d);
    config_deinit(&cfg);
    return rc;
}

enum admin_created admin_create_outcome(const p100_result *res, const char *verification_id)
{
    if (res->cls != P100_OK)
        return ADMIN_CREATED_REFUSED;
    if (strcmp(res->error_code, "P212") == 0)
        return ADMIN_CREATED_PENDING;
    if (verification_id == NULL || verification_id[0] == '\0')
        return ADMIN_CREATED_UNUSABLE;
    return ADMIN_CREATED_NEW;
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

int admin_create_kyc(int argc, char **argv, const cmd_ctl *ctl)
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
    enum admin_created outcome = admin_create_outcome(&res, vid);
    switch (outcome) {
    case ADMIN_CREATED_REFUSED:
        cmd_print_p100_error(&res);
        goto out;
    case ADMIN_CREATED_UNUSABLE:
        fprintf(stderr,
                "kycd: P100 answered HTTP %ld%s%s without a verificationId and without P212 "
                "(already pending): kycd cannot use this answer; nothing was recorded\n"
                "      `kycd status %s --live` shows what P100 now holds for the user\n",
                res.http_status, res.error_code[0] ? " " : "", res.error_code,
                req.external_user_id);
        goto out;
    case ADMIN_CREATED_PENDING:
    case ADMIN_CREATED_NEW:
        break;
    }
    int pending = outcome == ADMIN_CREATED_PENDING;
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

/* `status --live`: P100's current answer under the stored report. */
static int status_live(const kycd_config *cfg, const char *user)
{
    kerr err;
    kerr_clear(&err);
    int rc = CMD_OK;
    p100_opts po = cmd_p100_options(cfg);
    p100_client *client = NULL;
    p100_result res;
    p100_result_init(&res);
    kyc_status st;
    memset(&st, 0, sizeof st);
    if (p100_client_new(&client, &po, &err) != 0 ||
        p100_get_status(client, user, &res, &st, &err) != 0) {
        cmd_report("live status failed", &err);
        rc = CMD_FAILED;
    } else if (res.cls == P100_OK) {
        printf("\nP100 now says (%.0f ms): verificationStatus=%s attemptStatus=%s "
               "rejectionReason=%s\n",
               res.latency_ms, st.verification[0] ? st.verification : "-",
               st.attempt[0] ? st.attempt : "-", st.reason[0] ? st.reason : "-");
    } else {
        cmd_print_p100_error(&res);
        rc = CMD_FAILED;
    }
    p100_result_deinit(&res);
    p100_client_free(client);
    return rc;
}

int admin_status(int argc, char **argv, const cmd_ctl *ctl)
{
    cmd_flag f[] = {{"--live", 0, NULL}};
    const char *user = NULL;
    if (cmd_take_flags(&argc, argv, f, 1, &user) != 0)
        return CMD_USAGE;
    if (user == NULL) {
        fprintf(stderr, "usage: kycd status EXTERNAL_USER_ID [--live]\n");
        return CMD_USAGE;
    }
    kycd_config cfg;
    db *d = NULL;
    /* Any schema: the report reads what is there. The API key is checked
     * after the stored report is printed, so that it is printed anyway. */
    cmd_needs needs = {.db = CMD_DB_ANY};
    int rc = cmd_begin(&cfg, argc, argv, &needs, &d);
    if (rc != 0)
        return rc;
    kerr err;
    kerr_clear(&err);
    kbuf out;
    kbuf_init(&out);
    int found = db_user_report(d, user, &out, &err);
    if (found == 0) {
        fputs(kbuf_str(&out), stdout);
    } else if (found == KERR_NOTFOUND) {
        printf("user %s: not known to kycd\n", user);
    } else {
        cmd_report("status failed", &err);
        rc = CMD_FAILED;
        goto out;
    }
    rc = found == 0 ? CMD_OK : CMD_UNKNOWN;
    if (f[0].value) {
        if (cmd_need_api_key(&cfg, "kycd status --live") != 0) {
            rc = CMD_USAGE;
            goto out;
        }
        int live = status_live(&cfg, user);
        if (live != CMD_OK)
            rc = live;
    }
out:
    kbuf_deinit(&out);
    db_free(d);
    config_deinit(&cfg);
    return rc;
}

/* UTC time of a Unix ms, ISO 8601. */
static void iso_time(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A field of the --porcelain output: no tab or newline in it. */
static void one_field(char *s)
{
    for (; *s; s++)
        if (*s == '\t' || *s == '\n' || *s == '\r')
            *s = ' ';
}

/* kycd spool dead-letters [--porcelain]: what was kept aside, oldest
 * first, and why. Reads the directory only: works while kycd runs. */
static int list_dead_letters(const kycd_config *cfg, int porcelain)
{
    spool_dead *v = NULL;
    size_t n = 0;
    kerr err;
    kerr_clear(&err);
    if (spool_dead_list(cfg->spool_dir, &v, &n, &err) != 0) {
        fprintf(stderr, "kycd: %s\n", err.msg);
        return CMD_FAILED;
    }
    if (!porcelain)
        printf("dead letters in %s: %zu%s\n", cfg->spool_dir, n,
               n ? " (replay one with: kycd spool replay FILE)" : "");
    kbuf rec;
    kbuf_init(&rec);
    for (size_t i = 0; i < n; i++) {
        char when[32], path[4352];
        iso_time(v[i].mtime_ms, when, sizeof when);
        snprintf(path, sizeof path, "%s/%s", cfg->spool_dir, v[i].file);
        kyc_delivery d;
        memset(&d, 0, sizeof d);
        spool_dead info;
        kerr derr;
        const char *kind = "unreadable";
        if (spool_dead_read(path, &rec, &info, &derr) == 0 &&
            kyc_delivery_decode(rec.data, rec.len, &d, &derr) == 0) {
            kind = kyc_kind_name(d.kind);
            if (payload_parse_delivery(d.kind, d.body, d.body_len, d.remote_addr, d.request_id, &d,
                                       &derr) != 0)
                d.external_user_id[0] = '\0';
        }
        char *reason = v[i].reason[0] ? v[i].reason : "(not recorded)";
        if (porcelain) {
            one_field(reason);
            one_field(d.external_user_id);
            printf("%s\t%s\t%s\t%s\t%s\t%lld\t%s\n", v[i].file, when, kind, d.request_id,
                   d.external_user_id, (long long)v[i].bytes, reason);
        } else {
            printf("%s  %s  kind=%s user=%s bytes=%lld\n    reason: %s\n", v[i].file, when, kind,
                   d.external_user_id[0] ? d.external_user_id : "?", (long long)v[i].bytes, reason);
        }
    }
    kbuf_deinit(&rec);
    free(v);
    return CMD_OK;
}

/* kycd spool replay FILE: one dead letter through the normal write path
 * (ingest_submit, without a spool: the answer is the database's). Stored
 * (or already stored): the dead letter is removed. Otherwise it stays and
 * the reason is printed. */
static int spool_replay(const kycd_config *cfg, const char *file)
{
    char path[4352];
    if (strchr(file, '/') == NULL)
        snprintf(path, sizeof path, "%s/%s", cfg->spool_dir, file);
    else
        snprintf(path, sizeof path, "%s", file);
    kbuf rec;
    kbuf_init(&rec);
    ingest *in = NULL;
    kerr err;
    kerr_clear(&err);
    spool_dead info;
    kyc_delivery d;
    memset(&d, 0, sizeof d);
    int rc = CMD_FAILED;
    if (spool_dead_read(path, &rec, &info, &err) != 0) {
        fprintf(stderr, "kycd: %s\n", err.msg);
        rc = err.code == KERR_INVALID ? CMD_USAGE : CMD_FAILED;
        goto out;
    }
    if (kyc_delivery_decode(rec.data, rec.len, &d, &err) != 0 ||
        payload_parse_delivery(d.kind, d.body, d.body_len, d.remote_addr, d.request_id, &d, &err) !=
            0) {
        fprintf(stderr, "kycd: %s cannot be replayed, its record is unreadable: %s\n", path,
                err.msg);
        goto out;
    }
    ingest_opts io = cmd_ingest_options(cfg, NULL, 1, 0);
    db_ingest_result res;
    if (ingest_new(&in, &io, &err) != 0 || ingest_submit(in, &d, &res, &err) != 0) {
        fprintf(stderr, "kycd: %s stays a dead letter: %s\n", path, err.msg);
        goto out;
    }
    if (spool_dead_remove(path, &err) != 0) {
        fprintf(stderr, "kycd: stored, but %s\n", err.msg);
        goto out;
    }
    printf("replayed %s (request %s, user %s): %s; the dead letter is removed\n", info.file,
           d.request_id, d.external_user_id, kyc_outcome_name(res.outcome));
    rc = CMD_OK;
out:
    ingest_free(in);
    kbuf_deinit(&rec);
    return rc;
}

int admin_spool(int argc, char **argv, const cmd_ctl *ctl)
{
    static const char usage[] = "usage: kycd spool status|drain|dead-letters [--porcelain]|"
                                "replay FILE\n";
    const char *what = NULL, *file = NULL;
    cmd_flag f[] = {{"--porcelain", 0, NULL}};
    if (cmd_take_flags(&argc, argv, f, 1, &what) != 0)
        return CMD_USAGE;
    int dead = what && strcmp(what, "dead-letters") == 0;
    int replay = what && strcmp(what, "replay") == 0;
    if (replay && cmd_take_flags(&argc, argv, f, 0, &file) != 0)
        return CMD_USAGE;
    if (what == NULL ||
        (strcmp(what, "status") != 0 && strcmp(what, "drain") != 0 && !dead && !replay) ||
        (replay && file == NULL) || (f[0].value && !dead)) {
        fputs(usage, stderr);
        return CMD_USAGE;
    }
    kycd_config cfg;
    cmd_needs needs = {.db = CMD_DB_NONE}; /* drain and replay connect through the ingest */
    int rc = cmd_begin(&cfg, argc, argv, &needs, NULL);
    if (rc != 0)
        return rc;
    kerr err;
    kerr_clear(&err);
    spool *sp = NULL;
    ingest *in = NULL;
    rc = CMD_FAILED;
    if (cfg.spool_dir == NULL || *cfg.spool_dir == '\0') {
        fprintf(stderr, "kycd: no spool configured (KYCD_SPOOL_DIR)\n");
        rc = CMD_USAGE;
        goto out;
    }
    /* Dead letters are files beside the spool: no need for its lock. */
    if (dead) {
        rc = list_dead_letters(&cfg, f[0].value != NULL);
        goto out;
    }
    if (replay) {
        rc = spool_replay(&cfg, file);
        goto out;
    }
    if (cmd_open_spool(&cfg, &sp, &err) != 0) {
        /* A running kycd holds the spool's lock: it drains by itself. */
        fprintf(stderr, "kycd: %s\n", err.msg);
        if (err.code == KERR_STATE)
            fprintf(stderr, "      a running kycd owns this spool and drains it; its /readyz "
                            "shows the depth\n");
        goto out;
    }
    spool_stats st;
    spool_stats_get(sp, &st);
    printf("spool %s: %lld records, %lld bytes in %d segments, oldest %.1f s old\n", cfg.spool_dir,
           (long long)st.records, (long long)st.bytes, st.segments,
           (double)st.oldest_age_ms / 1000.0);
    if (strcmp(what, "status") == 0) {
        rc = CMD_OK;
        goto out;
    }
    ingest_opts io = cmd_ingest_options(&cfg, sp, 1, 0);
    long long n = 0;
    if (ingest_new(&in, &io, &err) != 0 || ingest_drain(in, &n, &err) != 0) {
        fprintf(stderr, "kycd: drain stopped after %lld records: %s\n", n, err.msg);
        goto out;
    }
    spool_stats_get(sp, &st);
    printf("replayed %lld records into the database; %lld left\n", n, (long long)st.records);
    rc = st.records == 0 ? CMD_OK : CMD_FAILED;
out:
    ingest_free(in);
    spool_close(sp);
    config_deinit(&cfg);
    return rc;
}

int admin_version(int argc, char **argv, const cmd_ctl *ctl)
{
    int latest = migrate_latest_version(); /* the newest migration compiled in */
    printf("kycd %s (schema %d, civetweb %s, %s)\n", KYCD_VERSION, latest, server_library_version(),
           tls_library_version());
    return CMD_OK;
}
