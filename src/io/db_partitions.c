/* The history tables' partitions (see db_partitions.h). Must never delete
 * a row: retention only ever drops whole partitions, through kyc.retention,
 * which keeps those the current state points into. */
#include "io/db_partitions.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/db_internal.h"
#include "io/db_report.h"

extern char **environ;

int db_partitions_ensure(db *d, int ahead, int *created, kerr *err)
{
    char n[16];
    snprintf(n, sizeof n, "%d", ahead);
    const char *p[] = {n};
    PGresult *r = db_exec(d, "SELECT count(*) FROM kyc.ensure_partitions($1::integer)", 1, p);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = db_fail(d, r, "creating partitions ahead", err);
        PQclear(r);
        return rc;
    }
    *created = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

int db_partitions_report(db *d, kbuf *out, kerr *err)
{
    int rc = db_report_rows(d, out, "partitions",
                            "SELECT parent AS table, name, from_time, to_time, approx_rows, "
                            "pg_size_pretty(bytes) AS size FROM kyc.partitions "
                            "WHERE from_time IS NOT NULL ORDER BY from_time, parent",
                            0, NULL, err);
    if (rc != 0)
        return rc;
    /* Rows no month holds: normally none (see sql/007_partitions.sql). */
    return db_report_rows(
        d, out, "default partitions (rows outside every month)",
        "SELECT 'webhook_events_default' AS name, count(*) AS rows "
        "FROM kyc.webhook_events_default UNION ALL "
        "SELECT 'status_changes_default', count(*) FROM kyc.status_changes_default "
        "UNION ALL "
        "SELECT 'status_checks_default', count(*) FROM kyc.status_checks_default "
        "UNION ALL "
        "SELECT 'quarantine_default', count(*) FROM kyc.quarantine_default",
        0, NULL, err);
}

int db_retention(db *d, const char *before, int dry_run, kbuf *out, int *dropped, int *kept,
                 kerr *err)
{
    /* Counting a partition's rows and who points into it takes longer than
     * a request's deadline; the drops are one transaction. */
    int rc = db_exec_ok(d, "BEGIN; SET LOCAL statement_timeout = 0", 0, NULL, "begin", err);
    if (rc != 0)
        return rc;
    const char *p[] = {before, dry_run ? "true" : "false"};
    PGresult *r = db_exec(d,
                          "SELECT parent AS table, name, from_time, to_time, row_count AS rows, "
                          "pointed_by, action FROM kyc.retention($1::timestamptz, $2::boolean)",
                          2, p);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = db_fail(d, r, "retention", err);
        PQclear(r);
        db_rollback_quietly(d);
        return rc;
    }
    *dropped = *kept = 0;
    int col = PQfnumber(r, "action");
    rc = kbuf_appendf(out, "retention before %s%s (%d)\n", before, dry_run ? ", dry run" : "",
                      PQntuples(r));
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        if (strcmp(PQgetvalue(r, i, col), "keep") == 0)
            (*kept)++;
        else
            (*dropped)++;
        rc = kbuf_appendf(out, " ");
        for (int j = 0; rc == 0 && j < PQnfields(r); j++)
            rc = kbuf_appendf(out, " %s=%s", PQfname(r, j), PQgetvalue(r, i, j));
        if (rc == 0)
            rc = kbuf_appendf(out, "\n");
    }
    PQclear(r);
    if (rc != 0) {
        db_rollback_quietly(d);
        return kerr_set(err, KERR_NOMEM, "out of memory");
    }
    return db_exec_ok(d, dry_run ? "ROLLBACK" : "COMMIT", 0, NULL, "commit", err);
}

/* gzip -n -c > path, fed through the returned pipe. */
static int gzip_start(const char *path, int *in, pid_t *pid, kerr *err)
{
    int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (out < 0)
        return kerr_set(err, KERR_IO, "creating %s: %s", path, strerror(errno));
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        close(out);
        return kerr_set(err, KERR_IO, "pipe: %s", strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out, 1);
    char *argv[] = {"gzip", "-n", "-c", NULL};
    int rc = posix_spawnp(pid, "gzip", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[0]);
    close(out);
    if (rc != 0) {
        close(p[1]);
        return kerr_set(err, KERR_IO, "cannot run gzip: %s", strerror(rc));
    }
    *in = p[1];
    return 0;
}

static int gzip_finish(pid_t pid, const char *path, kerr *err)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return kerr_set(err, KERR_IO, "waiting for gzip: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return kerr_set(err, KERR_IO, "gzip failed writing %s", path);
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The SHA-256 of a file, hex. */
static int file_sha256(const char *path, char hex[65], kerr *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return kerr_set(err, KERR_IO, "reading %s: %s", path, strerror(errno));
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1;
    unsigned char buf[65536];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, f)) > 0)
        ok = EVP_DigestUpdate(c, buf, n) == 1;
    ok = ok && !ferror(f);
    unsigned char md[32];
    unsigned len = 0;
    ok = ok && EVP_DigestFinal_ex(c, md, &len) == 1 && len == 32;
    EVP_MD_CTX_free(c);
    fclose(f);
    if (!ok)
        return kerr_set(err, KERR_IO, "hashing %s failed", path);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* fsync a file or folder by name (open flags: O_RDONLY, | O_DIRECTORY). */
static int fsync_path(const char *path, int flags, kerr *err)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return kerr_set(err, KERR_IO, "opening %s: %s", path, strerror(errno));
    int rc = fsync(fd) == 0 ? 0 : kerr_set(err, KERR_IO, "fsync %s: %s", path, strerror(errno));
    close(fd);
    return rc;
}

/* A new file holding data, synced: never an existing file (a symlink
 * included: O_EXCL), as for the partitions' files. */
static int write_new_file(const char *path, const char *data, size_t len, kerr *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (fd < 0)
        return kerr_set(err, KERR_IO, "creating %s: %s", path, strerror(errno));
    int rc = 0;
    if ((len && write_all(fd, data, len) != 0) || fsync(fd) != 0)
        rc = kerr_set(err, KERR_IO, "writing %s: %s", path, strerror(errno ? errno : EIO));
    if (close(fd) != 0 && rc == 0)
        rc = kerr_set(err, KERR_IO, "writing %s: %s", path, strerror(errno));
    return rc;
}

/* COPY one partition to dir/NAME.copy.gz; *rows: how many. */
static int archive_one(db *d, const char *name, const char *path, long long *rows, kerr *err)
{
    char *ident = PQescapeIdentifier(d->conn, name, strlen(name));
    if (!ident)
        return kerr_set(err, KERR_NOMEM, "out of memory");
    char sql[256];
    snprintf(sql, sizeof sql, "COPY kyc.%s TO STDOUT", ident);
    PQfreemem(ident);
    int in = -1;
    pid_t pid;
    int rc = gzip_start(path, &in, &pid, err);
    if (rc != 0)
        return rc;
    PGresult *r = PQexec(d->conn, sql);
    if (PQresultStatus(r) != PGRES_COPY_OUT) {
        rc = db_fail(d, r, "starting COPY", err);
        PQclear(r);
        close(in);
        kerr ignored;
        (void)gzip_finish(pid, path, &ignored);
        return rc;
    }
    PQclear(r);
    char *buf = NULL;
    int n, wfail = 0;
    *rows = 0;
    while ((n = PQgetCopyData(d->conn, &buf, 0)) > 0) {
        if (!wfail && write_all(in, buf, (size_t)n) != 0)
            wfail = errno ? errno : EIO;
        (*rows)++;
        PQfreemem(buf);
    }
    close(in);
    r = PQgetResult(d->conn);
    if (n == -2 || PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = db_fail(d, r, "COPY", err);
    PQclear(r);
    while ((r = PQgetResult(d->conn)) != NULL)
        PQclear(r);
    kerr gz;
    int grc = gzip_finish(pid, path, &gz);
    if (rc != 0)
        return rc;
    if (wfail)
        return kerr_set(err, KERR_IO, "writing to gzip for %s: %s", path, strerror(wfail));
    if (grc != 0) {
        *err = gz;
        return grc;
    }
    return 0;
}

int db_archive(db *d, const char *before, const char *dir, kbuf *out, int *files, kerr *err)
{
    *files = 0;
    if (mkdir(dir, 0750) != 0 && errno != EEXIST)
        return kerr_set(err, KERR_IO, "creating %s: %s", dir, strerror(errno));
    /* Never an existing manifest (nor a symlink in its place): refused
     * before any partition is copied. */
    static const char *const own[] = {"manifest.tsv", "SHA256SUMS"};
    for (int k = 0; k < 2; k++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, own[k]);
        if (lstat(path, &st) == 0)
            return kerr_set(err, KERR_IO, "%s exists: an archive never overwrites a file", path);
    }
    int rc = db_exec_ok(d,
                        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
                        " SET LOCAL statement_timeout = 0",
                        0, NULL, "begin", err);
    if (rc != 0)
        return rc;
    const char *p[] = {before};
    PGresult *r =
        db_exec(d,
                "SELECT x.parent, x.name, x.from_time, x.to_time,"
                " (SELECT string_agg(a.attname, ',' ORDER BY a.attnum) FROM pg_attribute a"
                "  WHERE a.attrelid = format('kyc.%I', x.name)::regclass AND a.attnum > 0"
                "  AND NOT a.attisdropped) FROM kyc.partitions x WHERE x.to_time <= $1::timestamptz"
                " ORDER BY x.from_time, x.parent",
                1, p);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = db_fail(d, r, "listing partitions", err);
        PQclear(r);
        db_rollback_quietly(d);
        return rc;
    }
    kbuf man, sums;
    kbuf_init(&man);
    kbuf_init(&sums);
    rc = kbuf_appendf(&man, "file\ttable\tpartition\tfrom\tto\trows\tsha256\tcolumns\n");
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        const char *name = PQgetvalue(r, i, 1);
        char file[256], path[4096], hex[65];
        snprintf(file, sizeof file, "%s.copy.gz", name);
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, file) >= sizeof path) {
            rc = kerr_set(err, KERR_INVALID, "archive folder name too long");
            break;
        }
        long long rows = 0;
        if ((rc = archive_one(d, name, path, &rows, err)) != 0 ||
            (rc = fsync_path(path, O_RDONLY, err)) != 0 || (rc = file_sha256(path, hex, err)) != 0)
            break;
        if (kbuf_appendf(&man, "%s\t%s\t%s\t%s\t%s\t%lld\t%s\t%s\n", file, PQgetvalue(r, i, 0),
                         name, PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), rows, hex,
                         PQgetvalue(r, i, 4)) != 0 ||
            kbuf_appendf(&sums, "%s  %s\n", hex, file) != 0 ||
            kbuf_appendf(out, "  %s rows=%lld sha256=%s\n", path, rows, hex) != 0)
            rc = kerr_set(err, KERR_NOMEM, "out of memory");
        (*files)++;
    }
    PQclear(r);
    db_rollback_quietly(d);
    const char *names[] = {"manifest.tsv", "SHA256SUMS"};
    kbuf *bodies[] = {&man, &sums};
    for (int k = 0; rc == 0 && k < 2; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[k]);
        rc = write_new_file(path, bodies[k]->data, bodies[k]->len, err);
    }
    /* The archive is what retention's dropped partitions leave: on disk,
     * names included, before the command says it is done. */
    if (rc == 0)
        rc = fsync_path(dir, O_RDONLY | O_DIRECTORY, err);
    kbuf_deinit(&man);
    kbuf_deinit(&sums);
    return rc;
}
