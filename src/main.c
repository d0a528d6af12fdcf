/* kycd: receives P100's KYC webhooks over TLS and stores them in
 * PostgreSQL. main finds the command in the table (src/cmd/cmd.c) and runs
 * it; it owns signals and the bound on shutdown, and holds no command logic.
 *
 * Two-stage shutdown (as PgBouncer's): for a command flagged `signals`
 * (serve), SIGTERM and SIGINT are blocked before any thread starts and read
 * here from a signalfd. The first one starts the command's drain, which runs
 * on a thread of main's while main waits for the drain to finish, for a
 * second signal ("stop now": exit 1 at once) or for the command's bound
 * (exit 1 too).
 *
 * Must never: install a signal handler that does work, let any other thread
 * take SIGTERM/SIGINT, or wait for a drain without a bound. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "cmd/cmd.h"

static const char *signal_name(int sig)
{
    return sig == SIGTERM ? "TERM" : sig == SIGINT ? "INT" : sig == SIGHUP ? "HUP" : "other";
}

/* The next SIGTERM/SIGINT from the signalfd; -1 on a read error. */
static int signal_read(int fd)
{
    struct signalfd_siginfo si;
    ssize_t n;
    do
        n = read(fd, &si, sizeof si);
    while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof si ? (int)si.ssi_signo : -1;
}

static const char *ctl_wait_stop(const cmd_ctl *ctl, const cmd_hooks *h)
{
    int fd = *(const int *)ctl->impl;
    int sig;
    int64_t tick = h && h->tick && h->tick_ms > 0 ? h->tick_ms : -1;
    double next = clock_now_ms() + (double)tick;
    for (;;) {
        if (tick > 0) {
            double left = next - clock_now_ms();
            struct pollfd p = {.fd = fd, .events = POLLIN};
            int n = left > 0 ? poll(&p, 1, (int)left + 1) : 0;
            if (n < 0 && errno != EINTR)
                return "none";
            if (n <= 0) {
                if (clock_now_ms() >= next) {
                    h->tick(h->arg);
                    next = clock_now_ms() + (double)tick;
                }
                continue;
            }
        }
        sig = signal_read(fd);
        if (sig == SIGTERM || sig == SIGINT)
            break;
        if (sig == SIGHUP) {
            if (h && h->reload)
                h->reload(h->arg);
            continue;
        }
        if (sig < 0) {
            /* cannot happen with a valid fd; treat as a stop request rather than spin */
            klog(KLOG_ERROR, "cannot read signals", KLOG_STR("error", strerror(errno)));
            return "none";
        }
    }
    return signal_name(sig);
}

typedef struct bounded_run {
    void (*fn)(void *);
    void *arg;
    int done_fd; /* written once fn has returned */
} bounded_run;

static void *bounded_thread(void *p)
{
    bounded_run *r = p;
    r->fn(r->arg);
    ssize_t n;
    do
        n = write(r->done_fd, "x", 1);
    while (n < 0 && errno == EINTR);
    return NULL;
}

static void ctl_run_bounded(const cmd_ctl *ctl, void (*fn)(void *), void *arg, int64_t limit_ms)
{
    int sfd = *(const int *)ctl->impl;
    int pfd[2];
    pthread_t t;
    bounded_run r = {.fn = fn, .arg = arg};
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        klog(KLOG_ERROR, "cannot bound the shutdown, stopping now",
             KLOG_STR("error", strerror(errno)));
        _exit(1);
    }
    r.done_fd = pfd[1];
    int rc = pthread_create(&t, NULL, bounded_thread, &r);
    if (rc != 0) {
        klog(KLOG_ERROR, "cannot bound the shutdown, stopping now",
             KLOG_STR("error", strerror(rc)));
        _exit(1);
    }
    double deadline = clock_now_ms() + (double)limit_ms;
    for (;;) {
        double left = deadline - clock_now_ms();
        if (left <= 0) {
            /* The database transaction of an unfinished request rolls back;
             * P100 retries what it did not see acknowledged. */
            klog(KLOG_ERROR, "shutdown timed out, exiting", KLOG_INT("timeout_ms", limit_ms));
            _exit(1);
        }
        struct pollfd p[2] = {{.fd = pfd[0], .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        int n = poll(p, 2, left > 2e9 ? 2000000000 : (int)left + 1);
        if (n < 0 && errno != EINTR) {
            klog(KLOG_ERROR, "cannot wait for the shutdown, stopping now",
                 KLOG_STR("error", strerror(errno)));
            _exit(1);
        }
        if (n <= 0)
            continue;
        if (p[0].revents != 0) { /* done first wins over a signal in the same instant */
            pthread_join(t, NULL);
            close(pfd[0]);
            close(pfd[1]);
            return;
        }
        if (p[1].revents != 0) {
            int sig = signal_read(sfd);
            if (sig == SIGHUP) {
                klog(KLOG_WARN, "reload ignored", KLOG_STR("reason", "shutting down"));
                continue;
            }
            if (sig == SIGTERM || sig == SIGINT) {
                klog(KLOG_WARN, "second signal during shutdown, stopping now",
                     KLOG_STR("signal", signal_name(sig)));
                _exit(1);
            }
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        cmd_print_usage(stderr);
        return CMD_USAGE;
    }
    const cmd_entry *c = cmd_find(argv[1]);
    if (c == NULL) {
        fprintf(stderr, "kycd: unknown command '%s'\n\n", argv[1]);
        cmd_print_usage(stderr);
        return CMD_USAGE;
    }
    /* `kycd COMMAND --help`: the row's usage and help, nothing run, no
     * configuration loaded (so it answers where the command could not run). */
    if (cmd_help_requested(c, argc - 2, argv + 2)) {
        cmd_print_help(c, stdout);
        return fflush(stdout) == 0 && !ferror(stdout) ? CMD_OK : CMD_FAILED;
    }
    if (!c->signals)
        return c->run(argc - 2, argv + 2, NULL);

    /* Signals go to main only: block them before any thread starts (every
     * thread inherits the mask) and read them from a signalfd. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP); /* reload, never the default (exit) */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
    if (sfd < 0) {
        fprintf(stderr, "kycd: cannot read signals: %s\n", strerror(errno));
        return CMD_FAILED;
    }
    cmd_ctl ctl = {.wait_stop = ctl_wait_stop, .run_bounded = ctl_run_bounded, .impl = &sfd};
    int rc = c->run(argc - 2, argv + 2, &ctl);
    close(sfd);
    return rc;
}
