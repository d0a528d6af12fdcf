/* p100-sim: clocks, log lines and the stop signal (see sim_util.h).
 *
 * Must never: print a value that is not made safe for logfmt, or sleep
 * without a way for shutdown to cut the wait short. */
#include "sim_util.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double now_ms_f(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

const char *logsafe(char *dst, size_t cap, const char *s)
{
    size_t i = 0;
    if (s == NULL || *s == '\0')
        return "-";
    for (; s[i] != '\0' && i + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[i] = (c < 0x21 || c > 0x7e || c == '"' || c == '\\' || c == '=') ? '_' : (char)c;
    }
    dst[i] = '\0';
    return dst;
}

void sim_log(const char *level, const char *msg, const char *fmt, ...)
{
    char line[2048], ts[40];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    /* Messages are constants of ours: quoting those with a space is enough. */
    const char *q = strchr(msg, ' ') ? "\"" : "";
    int n = snprintf(line, sizeof line, "ts=%s.%03ldZ level=%s msg=%s%s%s", ts,
                     now.tv_nsec / 1000000, level, q, msg, q);
    if (n < 0)
        return;
    if (fmt != NULL && fmt[0] != '\0' && (size_t)n + 1 < sizeof line) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += m;
    }
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    line[n] = '\0';
    fputs(line, stderr); /* one stdio call: lines never interleave */
}

static pthread_mutex_t stop_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cv; /* CLOCK_MONOTONIC; broadcast when stopping */
static atomic_bool stopping;

void cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

struct timespec deadline_ms(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

void latency_wait(long ms)
{
    if (ms <= 0)
        return;
    struct timespec until = deadline_ms(ms);
    pthread_mutex_lock(&stop_mu);
    while (!atomic_load(&stopping) && pthread_cond_timedwait(&stop_cv, &stop_mu, &until) == 0)
        ;
    pthread_mutex_unlock(&stop_mu);
}

void stop_init(void)
{
    cond_init_mono(&stop_cv);
}

void stop_begin(void)
{
    pthread_mutex_lock(&stop_mu);
    atomic_store(&stopping, true);
    pthread_cond_broadcast(&stop_cv);
    pthread_mutex_unlock(&stop_mu);
}

bool in_list(const char *v, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(v, *list) == 0)
            return true;
    return false;
}
