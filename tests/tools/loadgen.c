/* kycd-loadgen: drives kycd's KYC webhook endpoint the way P100 does, for the
 * crash and fault tests (tests/e2e/test_durability.sh).
 *
 *   kycd-loadgen --url https://localhost:PORT/webhooks/p100/kyc-verification-status
 *                --token-file F --ca ca.pem --threads N --users M --prefix P --out FILE
 *                [--max-seconds S] [--retry-delay-ms 200] [--think-ms 0] [--pad BYTES]
 *                [--request-timeout-ms 30000] [--times FILE]
 *                [--p100-schedule [--schedule-scale 1.0]]
 *
 * N threads; thread t owns the users P-t-0 .. P-t-(M-1) and walks each of
 * them, in order, through three KYC webhooks:
 *     step 1  NOT_VERIFIED / PENDING
 *     step 2  NOT_VERIFIED / VERIFICATION
 *     step 3  VERIFIED     / SUCCESSFUL
 * each step only after the previous one was answered 200. Anything but 200
 * (another status, a transport error) is retried after --retry-delay-ms until
 * it is 200, as P100 retries, within --max-seconds overall. One CURL easy
 * handle per thread: keep-alive connections, reconnected when kycd closes.
 *
 * --p100-schedule retries the way P100 does instead (docs/p100-api.md,
 * "Webhooks"): attempts at 0, 8, 24, 56 and 120 s after the first one (8, 16,
 * 32, 64 s apart), and nothing after the fifth: the delivery is given up
 * (lost), and the user goes on to its next step, as P100 would send its next
 * report anyway. An attempt still running when the next is due delays it.
 * --schedule-scale multiplies those offsets (0.01: 1.2 s in all), for a test
 * of the giving up that cannot wait two minutes. (tests/sim/ measures each
 * gap from the end of the previous attempt; the offsets here are from the
 * first attempt's start, as P100 describes them.)
 *
 * Every 200 is appended to --out as one line "USER STEP 200" (one write() on
 * an O_APPEND descriptor: a line is never torn or interleaved), so a test can
 * check that every acknowledged delivery reached the database.
 *
 * --times FILE gets one line per delivery the loadgen began (appended the
 * same way), in a file of its own so that --out keeps its three columns and
 * holds only 200s:
 *     USER STEP FIRST_MS DONE_MS RESULT ATTEMPTS
 * FIRST_MS: when its first attempt began; DONE_MS: when its last attempt
 * ended; both in ms since the loadgen started (monotonic clock). RESULT: 200
 * (DONE_MS is when the 200 arrived), lost (--p100-schedule: five attempts,
 * none answered 200) or stopped (--max-seconds, a signal or an error ended
 * it first). tests/tools/p100_horizon.py reads it.
 *
 * At the end, or on SIGTERM/SIGINT (stop sending, let the requests in flight
 * finish, report, exit), stdout gets one line
 *     loadgen sent=N ok=N non200=N (503=N 5xx=N other=N) transport_errors=N seconds=S
 * and stderr a line of details (transport errors by kind, latencies).
 * Transport errors are split into: connect (nothing reached kycd: refused,
 * unresolved), tls (the connection was cut during the TLS handshake, before
 * any request was sent), cut (the connection broke while a request was being
 * sent or its answer awaited), timeout, other.
 *
 * Exit: 0 when every user reached step 3 with every step answered 200; 3
 * when --max-seconds ran out; 4 when --p100-schedule gave a delivery up (and
 * nothing else went wrong); 1 when stopped by a signal before that (or on a
 * setup error); 2 for usage. */
#include <curl/curl.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char USAGE[] =
    "usage: kycd-loadgen --url URL --token-file F --ca CA.pem --threads N --users M\n"
    "                    --prefix P --out FILE [--max-seconds S] [--retry-delay-ms MS]\n"
    "                    [--think-ms MS] [--pad BYTES] [--request-timeout-ms MS]\n"
    "                    [--times FILE] [--p100-schedule [--schedule-scale F]]\n";

/* P100's retries (docs/p100-api.md, "Webhooks"): five attempts, 8, 16, 32 and
 * 64 s apart, i.e. these many seconds after the first. */
#define P100_ATTEMPTS 5
static const double P100_ATTEMPT_AT_S[P100_ATTEMPTS] = {0, 8, 24, 56, 120};

static const struct step {
    const char *verification, *attempt;
} STEPS[3] = {
    {"NOT_VERIFIED", "PENDING"},
    {"NOT_VERIFIED", "VERIFICATION"},
    {"VERIFIED", "SUCCESSFUL"},
};

typedef struct opts {
    const char *url, *token_file, *ca, *prefix, *out, *times;
    long threads, users, max_seconds, retry_delay_ms, think_ms, pad, request_timeout_ms;
    int p100_schedule;
    double schedule_scale;
} opts;

enum terr { TE_CONNECT, TE_TLS, TE_CUT, TE_TIMEOUT, TE_OTHER, TE_COUNT };
static const char *const TE_NAMES[TE_COUNT] = {"connect", "tls", "cut", "timeout", "other"};

typedef struct worker {
    pthread_t th;
    int index;
    long sent, ok, s503, s5xx, sother, terr[TE_COUNT];
    long users_done, given_up;
    double lat_sum_ms, lat_max_ms;
} worker;

static opts O;
static char auth_header[600];
static int out_fd = -1, times_fd = -1;
static atomic_int stop_flag; /* 1: a signal asked us to stop; 2: --max-seconds ran out */
static atomic_int threads_left;
static atomic_int errors_logged;
static double t_start, t_deadline;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Sleep up to ms, in small slices, returning early when asked to stop. */
static void pause_ms(long ms)
{
    while (ms > 0 && !atomic_load(&stop_flag)) {
        long slice = ms > 50 ? 50 : ms;
        sleep_ms(slice);
        ms -= slice;
    }
}

static int check_deadline(void)
{
    if (O.max_seconds > 0 && now_s() >= t_deadline) {
        int expected = 0;
        atomic_compare_exchange_strong(&stop_flag, &expected, 2);
        return 1;
    }
    return atomic_load(&stop_flag) != 0;
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

static enum terr classify(CURLcode c)
{
    switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        return TE_CONNECT;
    case CURLE_SSL_CONNECT_ERROR:
        return TE_TLS;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
        return TE_CUT;
    case CURLE_OPERATION_TIMEDOUT:
        return TE_TIMEOUT;
    default:
        return TE_OTHER;
    }
}

static int write_line(int fd, const char *line, int n)
{
    if (n <= 0)
        return -1;
    for (;;) {
        ssize_t w = write(fd, line, (size_t)n);
        if (w == n)
            return 0;
        if (w < 0 && errno == EINTR)
            continue;
        return -1; /* a short write on a regular file: the disk is full */
    }
}

static int append_line(const char *user, int step)
{
    char line[256];
    int n = snprintf(line, sizeof line, "%s %d 200\n", user, step);
    if ((size_t)n >= sizeof line)
        return -1;
    return write_line(out_fd, line, n);
}

/* One --times line (nothing without --times); t_first and t_done are now_s()
 * values. */
static int append_times(const char *user, int step, double t_first, double t_done,
                        const char *result, int attempts)
{
    if (times_fd < 0)
        return 0;
    char line[256];
    int n = snprintf(line, sizeof line, "%s %d %.0f %.0f %s %d\n", user, step,
                     (t_first - t_start) * 1000.0, (t_done - t_start) * 1000.0, result, attempts);
    if ((size_t)n >= sizeof line)
        return -1;
    return write_line(times_fd, line, n);
}

/* Sleep until the next attempt of a delivery that began at t_first and has
 * had `attempts` attempts: --retry-delay-ms, or P100's schedule. */
static void wait_next_attempt(double t_first, int attempts)
{
    if (!O.p100_schedule) {
        pause_ms(O.retry_delay_ms);
        return;
    }
    double due = t_first + P100_ATTEMPT_AT_S[attempts] * O.schedule_scale;
    double left_ms = (due - now_s()) * 1000.0;
    if (left_ms > 0)
        pause_ms((long)left_ms + 1);
}

static char *make_body(const char *user, int step, size_t *len)
{
    const struct step *s = &STEPS[step - 1];
    size_t cap = 512 + (size_t)(O.pad > 0 ? O.pad : 0);
    char *b = malloc(cap);
    if (b == NULL)
        return NULL;
    int n = snprintf(
        b, cap, "{\"externalUserId\":\"%s\",\"verificationStatus\":\"%s\",\"attemptStatus\":\"%s\"",
        user, s->verification, s->attempt);
    size_t used = (size_t)n;
    if (O.pad > 0) {
        static const char key[] = ",\"padding\":\"";
        memcpy(b + used, key, sizeof key - 1);
        used += sizeof key - 1;
        memset(b + used, 'x', (size_t)O.pad);
        used += (size_t)O.pad;
        b[used++] = '"';
    }
    b[used++] = '}';
    b[used] = '\0';
    *len = used;
    return b;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *hdr = NULL;
    char errbuf[CURL_ERROR_SIZE];
    if (c == NULL) {
        fprintf(stderr, "loadgen: thread %d: curl_easy_init failed\n", w->index);
        atomic_store(&stop_flag, 1);
        goto done;
    }
    hdr = curl_slist_append(hdr, auth_header);
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Expect:"); /* no 100-continue round trip for big bodies */
    curl_easy_setopt(c, CURLOPT_URL, O.url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_CAINFO, O.ca);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_POST, 1L);

    for (long k = 0; k < O.users && !check_deadline(); k++) {
        char user[160];
        snprintf(user, sizeof user, "%s-%d-%ld", O.prefix, w->index, k);
        int step = 1, attempts = 0, acked = 0;
        double t_first = 0, t_done = 0;
        while (step <= 3 && !check_deadline()) {
            size_t len = 0;
            char *body = make_body(user, step, &len);
            if (body == NULL) {
                fprintf(stderr, "loadgen: out of memory\n");
                atomic_store(&stop_flag, 1);
                break;
            }
            long limit = O.request_timeout_ms;
            if (O.max_seconds > 0) {
                long left = (long)((t_deadline - now_s()) * 1000.0) + 1000;
                if (left < limit)
                    limit = left < 1000 ? 1000 : left;
            }
            curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, limit);
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
            errbuf[0] = '\0';
            double t0 = now_s();
            if (attempts == 0)
                t_first = t0;
            CURLcode rc = curl_easy_perform(c);
            t_done = now_s();
            attempts++;
            double ms = (t_done - t0) * 1000.0;
            free(body);
            w->sent++;
            long status = 0;
            if (rc == CURLE_OK) {
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
                w->lat_sum_ms += ms;
                if (ms > w->lat_max_ms)
                    w->lat_max_ms = ms;
            }
            if (rc == CURLE_OK && status == 200) {
                w->ok++;
                if (append_line(user, step) != 0 ||
                    append_times(user, step, t_first, t_done, "200", attempts) != 0) {
                    fprintf(stderr, "loadgen: cannot write to %s or %s: %s\n", O.out,
                            O.times ? O.times : "-", strerror(errno));
                    atomic_store(&stop_flag, 1);
                    attempts = 0;
                    break;
                }
                step++;
                acked++;
                attempts = 0;
                if (O.think_ms > 0)
                    pause_ms(O.think_ms);
                continue;
            }
            if (rc == CURLE_OK) {
                if (status == 503)
                    w->s503++;
                else if (status >= 500 && status <= 599)
                    w->s5xx++;
                else
                    w->sother++;
                if (status != 503 && atomic_fetch_add(&errors_logged, 1) < 10)
                    fprintf(stderr, "loadgen: %s step %d: HTTP %ld\n", user, step, status);
            } else {
                enum terr kind = classify(rc);
                w->terr[kind]++;
                if (atomic_fetch_add(&errors_logged, 1) < 10)
                    fprintf(stderr, "loadgen: %s step %d: transport error (%s, curl %d): %s\n",
                            user, step, TE_NAMES[kind], (int)rc,
                            errbuf[0] ? errbuf : curl_easy_strerror(rc));
            }
            if (O.p100_schedule && attempts >= P100_ATTEMPTS) {
                /* P100 gives up here; its next report would still come. */
                w->given_up++;
                if (atomic_fetch_add(&errors_logged, 1) < 10)
                    fprintf(stderr, "loadgen: %s step %d: given up after %d attempts\n", user, step,
                            attempts);
                if (append_times(user, step, t_first, t_done, "lost", attempts) != 0) {
                    fprintf(stderr, "loadgen: cannot write to %s: %s\n", O.times, strerror(errno));
                    atomic_store(&stop_flag, 1);
                    attempts = 0;
                    break;
                }
                step++;
                attempts = 0;
                continue;
            }
            wait_next_attempt(t_first, attempts);
        }
        /* Ended mid-delivery (--max-seconds, a signal): say so, with how
         * long it had been tried. */
        if (attempts > 0)
            (void)append_times(user, step, t_first, t_done, "stopped", attempts);
        if (acked == 3)
            w->users_done++;
    }
done:
    curl_slist_free_all(hdr);
    if (c)
        curl_easy_cleanup(c);
    atomic_fetch_sub(&threads_left, 1);
    return NULL;
}

static int read_token(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "loadgen: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[512];
    if (fgets(line, sizeof line, f) == NULL) {
        fclose(f);
        fprintf(stderr, "loadgen: %s is empty\n", path);
        return -1;
    }
    fclose(f);
    line[strcspn(line, ",\r\n")] = '\0'; /* the first token of a kycd tokens file */
    if (line[0] == '\0' || strlen(line) >= cap) {
        fprintf(stderr, "loadgen: no usable token in %s\n", path);
        return -1;
    }
    snprintf(out, cap, "%s", line);
    return 0;
}

static int parse_long(const char *name, const char *v, long min, long *out)
{
    char *end = NULL;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < min) {
        fprintf(stderr, "loadgen: %s: '%s' is not a number >= %ld\n", name, v, min);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_args(int argc, char **argv)
{
    O.threads = 1;
    O.users = 1;
    O.retry_delay_ms = 200;
    O.request_timeout_ms = 30000;
    O.schedule_scale = 1.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(USAGE, stdout);
            exit(0);
        }
        if (strcmp(a, "--p100-schedule") == 0) {
            O.p100_schedule = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "loadgen: %s needs a value\n%s", a, USAGE);
            return -1;
        }
        const char *v = argv[++i];
        int rc = 0;
        if (strcmp(a, "--url") == 0)
            O.url = v;
        else if (strcmp(a, "--token-file") == 0)
            O.token_file = v;
        else if (strcmp(a, "--ca") == 0)
            O.ca = v;
        else if (strcmp(a, "--prefix") == 0)
            O.prefix = v;
        else if (strcmp(a, "--out") == 0)
            O.out = v;
        else if (strcmp(a, "--times") == 0)
            O.times = v;
        else if (strcmp(a, "--schedule-scale") == 0) {
            char *end = NULL;
            errno = 0;
            O.schedule_scale = strtod(v, &end);
            if (errno || end == v || *end || !(O.schedule_scale > 0) || O.schedule_scale > 100) {
                fprintf(stderr, "loadgen: --schedule-scale: '%s' is not a number in (0, 100]\n", v);
                rc = -1;
            }
        } else if (strcmp(a, "--threads") == 0)
            rc = parse_long(a, v, 1, &O.threads);
        else if (strcmp(a, "--users") == 0)
            rc = parse_long(a, v, 1, &O.users);
        else if (strcmp(a, "--max-seconds") == 0)
            rc = parse_long(a, v, 0, &O.max_seconds);
        else if (strcmp(a, "--retry-delay-ms") == 0)
            rc = parse_long(a, v, 0, &O.retry_delay_ms);
        else if (strcmp(a, "--think-ms") == 0)
            rc = parse_long(a, v, 0, &O.think_ms);
        else if (strcmp(a, "--pad") == 0)
            rc = parse_long(a, v, 0, &O.pad);
        else if (strcmp(a, "--request-timeout-ms") == 0)
            rc = parse_long(a, v, 100, &O.request_timeout_ms);
        else {
            fprintf(stderr, "loadgen: unknown option %s\n%s", a, USAGE);
            return -1;
        }
        if (rc != 0)
            return -1;
    }
    if (!O.url || !O.token_file || !O.ca || !O.prefix || !O.out) {
        fprintf(stderr, "loadgen: --url, --token-file, --ca, --prefix and --out are required\n%s",
                USAGE);
        return -1;
    }
    if (O.threads > 1000 || O.pad > (16L << 20) || strlen(O.prefix) > 100) {
        fprintf(stderr, "loadgen: --threads at most 1000, --pad at most 16 MiB, --prefix at most "
                        "100 characters\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) != 0)
        return 2;
    char token[500];
    if (read_token(O.token_file, token, sizeof token) != 0)
        return 1;
    snprintf(auth_header, sizeof auth_header, "Authorization: Bearer %s", token);
    out_fd = open(O.out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out_fd < 0) {
        fprintf(stderr, "loadgen: cannot open %s: %s\n", O.out, strerror(errno));
        return 1;
    }
    if (O.times != NULL) {
        times_fd = open(O.times, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (times_fd < 0) {
            fprintf(stderr, "loadgen: cannot open %s: %s\n", O.times, strerror(errno));
            return 1;
        }
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "loadgen: curl_global_init failed\n");
        return 1;
    }

    /* Signals are taken by main alone (sigtimedwait): workers never see them,
     * so a request in flight is never interrupted. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    t_start = now_s();
    t_deadline = t_start + (double)O.max_seconds;
    worker *ws = calloc((size_t)O.threads, sizeof *ws);
    if (ws == NULL)
        return 1;
    int started = 0;
    for (long t = 0; t < O.threads; t++) {
        ws[t].index = (int)t;
        atomic_fetch_add(&threads_left, 1);
        if (pthread_create(&ws[t].th, NULL, worker_main, &ws[t]) != 0) {
            atomic_fetch_sub(&threads_left, 1);
            fprintf(stderr, "loadgen: cannot start thread %ld\n", t);
            atomic_store(&stop_flag, 1);
            break;
        }
        started++;
    }
    int signalled = 0;
    while (atomic_load(&threads_left) > 0) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000000L};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            signalled = sig;
            int expected = 0;
            atomic_compare_exchange_strong(&stop_flag, &expected, 1);
        }
    }
    worker sum;
    memset(&sum, 0, sizeof sum);
    for (int t = 0; t < started; t++) {
        pthread_join(ws[t].th, NULL);
        worker *w = &ws[t];
        sum.sent += w->sent;
        sum.ok += w->ok;
        sum.s503 += w->s503;
        sum.s5xx += w->s5xx;
        sum.sother += w->sother;
        for (int k = 0; k < TE_COUNT; k++)
            sum.terr[k] += w->terr[k];
        sum.users_done += w->users_done;
        sum.given_up += w->given_up;
        sum.lat_sum_ms += w->lat_sum_ms;
        if (w->lat_max_ms > sum.lat_max_ms)
            sum.lat_max_ms = w->lat_max_ms;
    }
    double secs = now_s() - t_start;
    long terr = 0;
    for (int k = 0; k < TE_COUNT; k++)
        terr += sum.terr[k];
    long answered = sum.sent - terr;
    long users = O.threads * O.users;
    printf("loadgen sent=%ld ok=%ld non200=%ld (503=%ld 5xx=%ld other=%ld) transport_errors=%ld "
           "seconds=%.1f\n",
           sum.sent, sum.ok, sum.s503 + sum.s5xx + sum.sother, sum.s503, sum.s5xx, sum.sother, terr,
           secs);
    fflush(stdout);
    fprintf(
        stderr,
        "loadgen details: users_done=%ld/%ld transport: connect=%ld tls=%ld cut=%ld timeout=%ld "
        "transport_other=%ld latency_avg_ms=%.1f latency_max_ms=%.0f rate=%.0f/s given_up=%ld "
        "schedule=%s stop=%s\n",
        sum.users_done, users, sum.terr[TE_CONNECT], sum.terr[TE_TLS], sum.terr[TE_CUT],
        sum.terr[TE_TIMEOUT], sum.terr[TE_OTHER],
        answered > 0 ? sum.lat_sum_ms / (double)answered : 0.0, sum.lat_max_ms,
        secs > 0 ? (double)sum.sent / secs : 0.0, sum.given_up,
        O.p100_schedule ? "p100" : "every-retry-delay",
        signalled                      ? (signalled == SIGTERM ? "SIGTERM" : "SIGINT")
        : atomic_load(&stop_flag) == 2 ? "max-seconds"
        : atomic_load(&stop_flag)      ? "error"
                                       : "done");
    free(ws);
    close(out_fd);
    if (times_fd >= 0)
        close(times_fd);
    curl_global_cleanup();
    if (sum.users_done == users)
        return 0;
    if (atomic_load(&stop_flag) == 2)
        return 3;
    return atomic_load(&stop_flag) == 0 && sum.given_up > 0 ? 4 : 1;
}
