/* The partition commands (see partitions.h). Must never delete a row:
 * they only call io/db_partitions, whose retention drops whole partitions. */
#include "cmd/partitions.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/log.h"
#include "cmd/common.h"
#include "io/db_partitions.h"

int cmd_partitions(int argc, char **argv, const cmd_ctl *ctl)
{
    cmd_flag f[] = {{"--create", 0, NULL}};
    if (cmd_take_flags(&argc, argv, f, 1, NULL) != 0)
        return CMD_USAGE;
    kycd_config cfg;
    db *d = NULL;
    cmd_needs needs = {.db = CMD_DB_READY};
    int rc = cmd_begin(&cfg, argc, argv, &needs, &d);
    if (rc != 0)
        return rc;
    kerr err;
    kerr_clear(&err);
    kbuf out;
    kbuf_init(&out);
    int created = 0;
    if (f[0].value && db_partitions_ensure(d, KYCD_PARTITIONS_AHEAD, &created, &err) != 0) {
        cmd_report("creating partitions failed", &err);
        rc = CMD_FAILED;
    } else if (db_partitions_report(d, &out, &err) != 0) {
        cmd_report("listing partitions failed", &err);
        rc = CMD_FAILED;
    } else {
        if (f[0].value)
            printf("created %d partitions (current month and %d ahead)\n", created,
                   KYCD_PARTITIONS_AHEAD);
        fputs(kbuf_str(&out), stdout);
    }
    kbuf_deinit(&out);
    db_free(d);
    config_deinit(&cfg);
    return rc;
}

int cmd_retention(int argc, char **argv, const cmd_ctl *ctl)
{
    cmd_flag f[] = {{"--dry-run", 0, NULL}};
    if (cmd_take_flags(&argc, argv, f, 1, NULL) != 0)
        return CMD_USAGE;
    kycd_config cfg;
    if (cmd_load(&cfg, argc, argv) != 0)
        return CMD_USAGE;
    if (cfg.retention_ms == 0) {
        printf("retention is 0 (keep everything): nothing to drop\n");
        config_deinit(&cfg);
        return CMD_OK;
    }
    db *d = NULL;
    int rc = cmd_open_db(&cfg, CMD_DB_READY, &d);
    if (rc != 0) {
        config_deinit(&cfg);
        return rc;
    }
    time_t before = time(NULL) - (time_t)(cfg.retention_ms / 1000);
    struct tm tm;
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&before, &tm));
    kerr err;
    kerr_clear(&err);
    kbuf out;
    kbuf_init(&out);
    int dropped = 0, kept = 0;
    if (db_retention(d, when, f[0].value != NULL, &out, &dropped, &kept, &err) != 0) {
        cmd_report("retention failed", &err);
        rc = CMD_FAILED;
    } else {
        fputs(kbuf_str(&out), stdout);
        klog(KLOG_INFO, f[0].value ? "retention dry run" : "retention done",
             KLOG_STR("before", when), KLOG_INT(f[0].value ? "would_drop" : "dropped", dropped),
             KLOG_INT("kept", kept));
    }
    kbuf_deinit(&out);
    db_free(d);
    config_deinit(&cfg);
    return rc;
}

int cmd_archive(int argc, char **argv, const cmd_ctl *ctl)
{
    cmd_flag f[] = {{"--before", 1, NULL}, {"--to", 1, NULL}};
    if (cmd_take_flags(&argc, argv, f, 2, NULL) != 0)
        return CMD_USAGE;
    if (f[0].value == NULL || f[1].value == NULL) {
        fprintf(stderr, "usage: kycd archive --before DATE --to DIR\n");
        return CMD_USAGE;
    }
    kycd_config cfg;
    db *d = NULL;
    cmd_needs needs = {.db = CMD_DB_READY};
    int rc = cmd_begin(&cfg, argc, argv, &needs, &d);
    if (rc != 0)
        return rc;
    /* A gzip that dies must fail the archive, not kill kycd. */
    signal(SIGPIPE, SIG_IGN);
    kerr err;
    kerr_clear(&err);
    kbuf out;
    kbuf_init(&out);
    int files = 0;
    if (db_archive(d, f[0].value, f[1].value, &out, &files, &err) != 0) {
        cmd_report("archive failed", &err);
        rc = CMD_FAILED;
    } else {
        printf("archived %d partitions before %s into %s (manifest.tsv, SHA256SUMS)\n", files,
               f[0].value, f[1].value);
        fputs(kbuf_str(&out), stdout);
    }
    kbuf_deinit(&out);
    db_free(d);
    config_deinit(&cfg);
    return rc;
}

int partitions_maintain(db *d)
{
    kerr err;
    kerr_clear(&err);
    int created = 0;
    int rc = db_partitions_ensure(d, KYCD_PARTITIONS_AHEAD, &created, &err);
    if (rc != 0)
        klog(KLOG_WARN, "partition maintenance failed", KLOG_STR("error", err.msg),
             KLOG_STR("hint", "run `kycd partitions --create` as the tables' owner"));
    else if (created > 0)
        klog(KLOG_INFO, "partitions created", KLOG_INT("created", created),
             KLOG_INT("ahead_months", KYCD_PARTITIONS_AHEAD));
    return rc;
}

struct partitions_keeper {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    db_opts opts;
    int64_t every_ms;
};

static void *keeper_main(void *arg)
{
    partitions_keeper *k = arg;
    pthread_mutex_lock(&k->mu);
    while (!k->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += (time_t)(k->every_ms / 1000);
        until.tv_nsec += (long)(k->every_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!k->stop && pthread_cond_timedwait(&k->cv, &k->mu, &until) == 0) {
        }
        if (k->stop)
            break;
        pthread_mutex_unlock(&k->mu);
        db *d = NULL;
        kerr err;
        kerr_clear(&err);
        if (db_connect(&d, &k->opts, &err) != 0)
            klog(KLOG_WARN, "partition maintenance failed", KLOG_STR("error", err.msg));
        else
            (void)partitions_maintain(d);
        db_free(d);
        pthread_mutex_lock(&k->mu);
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

int partitions_keeper_start(partitions_keeper **out, const db_opts *o, int64_t every_ms)
{
    *out = NULL;
    partitions_keeper *k = calloc(1, sizeof *k);
    if (!k)
        return KERR_NOMEM;
    k->opts = *o;
    k->every_ms = every_ms;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&k->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&k->mu, NULL);
    if (pthread_create(&k->thread, NULL, keeper_main, k) != 0) {
        pthread_cond_destroy(&k->cv);
        pthread_mutex_destroy(&k->mu);
        free(k);
        return KERR_NOMEM;
    }
    *out = k;
    return 0;
}

void partitions_keeper_stop(partitions_keeper *k)
{
    if (!k)
        return;
    pthread_mutex_lock(&k->mu);
    k->stop = 1;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thread, NULL);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    free(k);
}
