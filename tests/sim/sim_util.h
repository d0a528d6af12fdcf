/* p100-sim's small shared helpers: clocks, logfmt log lines, and the stop
 * signal that cuts the simulated latency short at shutdown.
 *
 * Must never: log a secret or a request body (callers pass only values made
 * safe with logsafe), or depend on any other module of the simulator. */
#ifndef P100_SIM_UTIL_H
#define P100_SIM_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC, in whole and in fractional milliseconds. */
int64_t now_ms(void);
double now_ms_f(void);

/* The CLOCK_MONOTONIC time ms from now, for pthread_cond_timedwait on a
 * condition variable made by cond_init_mono. */
struct timespec deadline_ms(int64_t ms);
void cond_init_mono(pthread_cond_t *cv);

/* A value safe to print bare after key= (logfmt): no spaces, quotes, '=',
 * backslashes or control bytes; written into dst (cap bytes), "-" for
 * NULL or empty. */
const char *logsafe(char *dst, size_t cap, const char *s);

/* One logfmt line on stderr: ts, level, msg (quoted when it has a space),
 * then fmt's key=value pairs. msg is a constant of ours. */
__attribute__((format(printf, 3, 4))) void sim_log(const char *level, const char *msg,
                                                   const char *fmt, ...);

/* True when v is one of the NULL-terminated list. */
bool in_list(const char *v, const char *const *list);

/* Stopping: stop_init before any thread starts; stop_begin (main, at
 * shutdown) wakes every latency_wait at once. */
void stop_init(void);
void stop_begin(void);

/* The simulated network/processing latency: a wait that shutdown cuts short. */
void latency_wait(long ms);

#endif
