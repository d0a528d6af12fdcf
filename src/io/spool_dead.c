/* Dead letters: records the database refuses for good, kept beside the
 * spool as dead-<name>.rec with a one-line dead-<name>.reason, for a person
 * to look at and replay (kycd spool dead-letters, kycd spool replay).
 *
 * Must never: write a .rec without its .reason, leave either unsynced when
 * it reports success, or touch a file that is not a dead letter's. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* flock, fdatasync, O_CLOEXEC outside the CMake build (fuzzer) */
#endif

#include "io/spool_dead.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/spool_internal.h"

#define DEAD_PREFIX "dead-"
#define DEAD_SUFFIX ".rec"
#define DEAD_REASON_SUFFIX ".reason"

/* dead-<name>.rec -> dead-<name>.reason, or 0 when `rec` is not a dead
 * letter's file name. */
static int dead_reason_name(const char *rec, char *out, size_t cap)
{
    size_t n = strlen(rec), p = strlen(DEAD_PREFIX), x = strlen(DEAD_SUFFIX);
    if (n <= p + x || strncmp(rec, DEAD_PREFIX, p) != 0 || strcmp(rec + n - x, DEAD_SUFFIX) != 0 ||
        strchr(rec, '/') != NULL)
        return 0;
    return snprintf(out, cap, "%.*s%s", (int)(n - x), rec, DEAD_REASON_SUFFIX) < (int)cap;
}

/* Write a whole file in dirfd and fsync it (not the directory). */
static int write_file_at(int dirfd, const char *dir, const char *file, const void *data, size_t len,
                         kerr *err)
{
    int fd = spool_create_at(dirfd, file, O_WRONLY | O_TRUNC);
    if (fd < 0)
        return kerr_set(err, KERR_IO, "cannot create %s/%s: %s", dir, file, strerror(errno));
    int rc = 0;
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = kerr_set(err, KERR_IO, "cannot write %s/%s: %s", dir, file, strerror(errno));
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = kerr_set(err, KERR_IO, "cannot fsync %s/%s: %s", dir, file, strerror(errno));
    close(fd);
    return rc;
}

int spool_dead_letter(spool *s, const char *name, const void *payload, size_t len,
                      const char *reason, kerr *err)
{
    char file[160], why[180];
    size_t n = (size_t)snprintf(file, sizeof file, DEAD_PREFIX);
    for (const char *p = name; *p && n + 8 < sizeof file; p++) {
        char c = *p;
        int ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 c == '-' || c == '_';
        file[n++] = ok ? c : '_';
    }
    snprintf(file + n, sizeof file - n, DEAD_SUFFIX);
    if (!dead_reason_name(file, why, sizeof why))
        return kerr_set(err, KERR_INVALID, "bad dead letter name %s", file);
    /* The reason first: a .rec is never without its .reason. One line. */
    char line[sizeof((kerr *)0)->msg + 2];
    snprintf(line, sizeof line, "%s", reason ? reason : "");
    line[strcspn(line, "\r\n")] = '\0';
    strcat(line, "\n");
    pthread_mutex_lock(&s->mu);
    int rc = write_file_at(s->dirfd, s->dir, why, line, strlen(line), err);
    if (rc == 0)
        rc = write_file_at(s->dirfd, s->dir, file, payload, len, err);
    if (rc == 0 && fsync(s->dirfd) != 0)
        rc = kerr_set(err, KERR_IO, "cannot fsync %s: %s", s->dir, strerror(errno));
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* Read a small file whole into out (replacing its contents). */
static int read_file(const char *path, kbuf *out, size_t max, kerr *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return kerr_set(err, errno == ENOENT ? KERR_NOTFOUND : KERR_IO, "cannot open %s: %s", path,
                        strerror(errno));
    kbuf_reset(out);
    int rc = 0;
    for (;;) {
        if ((rc = kbuf_reserve(out, 65536)) != 0) {
            rc = kerr_set(err, KERR_NOMEM, "out of memory reading %s", path);
            break;
        }
        ssize_t r = read(fd, out->data + out->len, 65536);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = kerr_set(err, KERR_IO, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        if (r == 0)
            break;
        out->len += (size_t)r;
        out->data[out->len] = '\0';
        if (out->len > max) {
            rc = kerr_set(err, KERR_TOOBIG, "%s is larger than %zu bytes", path, max);
            break;
        }
    }
    close(fd);
    return rc;
}

/* path's folder (into dir) and file name (a pointer into path). */
static const char *split_path(const char *path, char *dir, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(dir, cap, ".");
        return path;
    }
    snprintf(dir, cap, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    return slash + 1;
}

int spool_dead_locate(const char *spool_dir, const char *file, char *path, size_t cap, kerr *err)
{
    char given[4352], real_dir[PATH_MAX], real_file[PATH_MAX];
    if (spool_dir == NULL || *spool_dir == '\0')
        return kerr_set(err, KERR_INVALID, "no spool configured (spool_dir)");
    if (strchr(file, '/') == NULL)
        snprintf(given, sizeof given, "%s/%s", spool_dir, file);
    else
        snprintf(given, sizeof given, "%s", file);
    if (realpath(spool_dir, real_dir) == NULL)
        return kerr_set(err, KERR_INVALID, "spool_dir %s: %s", spool_dir, strerror(errno));
    struct stat st, d;
    if (lstat(given, &st) != 0)
        return kerr_set(err, errno == ENOENT ? KERR_NOTFOUND : KERR_IO, "cannot stat %s: %s", given,
                        strerror(errno));
    if (!S_ISREG(st.st_mode))
        return kerr_set(err, KERR_INVALID, "%s is not a regular file (a symlink?)", given);
    char dir[4096];
    const char *name = split_path(given, dir, sizeof dir);
    if (realpath(dir, real_file) == NULL || strcmp(real_file, real_dir) != 0)
        return kerr_set(err, KERR_INVALID, "%s is not in the spool directory %s", given, real_dir);
    if (stat(real_dir, &d) != 0 || st.st_uid != d.st_uid)
        return kerr_set(err, KERR_INVALID, "%s does not belong to the spool's owner (uid %u)",
                        given, (unsigned)d.st_uid);
    if ((size_t)snprintf(path, cap, "%s/%s", real_dir, name) >= cap)
        return kerr_set(err, KERR_INVALID, "path too long");
    return 0;
}

int spool_dead_read(const char *path, kbuf *payload, spool_dead *info, kerr *err)
{
    char dir[4096], why[180], whypath[4352];
    const char *file = split_path(path, dir, sizeof dir);
    if (!dead_reason_name(file, why, sizeof why))
        return kerr_set(err, KERR_INVALID, "%s is not a dead letter (dead-<request id>.rec)", path);
    struct stat st;
    if (stat(path, &st) != 0)
        return kerr_set(err, errno == ENOENT ? KERR_NOTFOUND : KERR_IO, "cannot stat %s: %s", path,
                        strerror(errno));
    int rc = payload ? read_file(path, payload, REC_MAX_PAYLOAD, err) : 0;
    if (rc != 0)
        return rc;
    memset(info, 0, sizeof *info);
    snprintf(info->file, sizeof info->file, "%s", file);
    info->mtime_ms = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
    info->bytes = (int64_t)st.st_size;
    snprintf(whypath, sizeof whypath, "%s/%s", dir, why);
    kbuf r;
    kbuf_init(&r);
    kerr ignored;
    if (read_file(whypath, &r, 64 * 1024, &ignored) == 0) { /* none: written before reasons */
        size_t m = 0;
        while (m < r.len && r.data[m] != '\n')
            m++;
        snprintf(info->reason, sizeof info->reason, "%.*s", (int)m, m ? (const char *)r.data : "");
    }
    kbuf_deinit(&r);
    return 0;
}

static int cmp_dead(const void *a, const void *b)
{
    const spool_dead *x = a, *y = b;
    if (x->mtime_ms != y->mtime_ms)
        return x->mtime_ms < y->mtime_ms ? -1 : 1;
    return strcmp(x->file, y->file);
}

int spool_dead_list(const char *dir, spool_dead **out, size_t *count, kerr *err)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return kerr_set(err, errno == ENOENT ? KERR_NOTFOUND : KERR_IO, "cannot open %s: %s", dir,
                        strerror(errno));
    spool_dead *v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char why[180], path[4352];
        if (!dead_reason_name(e->d_name, why, sizeof why))
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            spool_dead *nv = realloc(v, nc * sizeof *nv);
            if (nv == NULL) {
                rc = kerr_set(err, KERR_NOMEM, "out of memory");
                break;
            }
            v = nv, cap = nc;
        }
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        kerr one;
        if (spool_dead_read(path, NULL, &v[n], &one) != 0)
            continue; /* removed meanwhile (replayed) */
        n++;
    }
    closedir(d);
    if (rc != 0) {
        free(v);
        return rc;
    }
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_dead);
    *out = v;
    *count = n;
    return 0;
}

int spool_dead_remove(const char *path, kerr *err)
{
    char dir[4096], why[180], whypath[4352];
    const char *file = split_path(path, dir, sizeof dir);
    if (!dead_reason_name(file, why, sizeof why))
        return kerr_set(err, KERR_INVALID, "%s is not a dead letter (dead-<request id>.rec)", path);
    if (unlink(path) != 0)
        return kerr_set(err, KERR_IO, "cannot remove %s: %s", path, strerror(errno));
    snprintf(whypath, sizeof whypath, "%s/%s", dir, why);
    if (unlink(whypath) != 0 && errno != ENOENT)
        return kerr_set(err, KERR_IO, "cannot remove %s: %s", whypath, strerror(errno));
    return spool_fsync_parent(path, err);
}

long long spool_dead_letters(spool *s)
{
    int fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    long long n = 0;
    char why[180];
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += dead_reason_name(e->d_name, why, sizeof why);
    closedir(d);
    return n;
}
