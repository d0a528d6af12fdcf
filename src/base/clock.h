/* Clocks: monotonic milliseconds for deadlines and latencies, an absolute
 * deadline for pthread_cond_timedwait and the condition variables that
 * wait on it, and the wall clock for timestamps that outlive the process.
 * libc and pthreads only. */
#ifndef KYCD_BASE_CLOCK_H
#define KYCD_BASE_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "base/err.h"

/* Monotonic time in milliseconds (fractional), for latencies. */
double clock_now_ms(void);
/* Monotonic whole milliseconds, for deadlines. */
int64_t clock_mono_ms(void);
/* CLOCK_MONOTONIC timespec `ms` from now (for condvars set to that clock). */
struct timespec clock_deadline(int64_t ms);

/* Initialise *c to wait on CLOCK_MONOTONIC, so that clock_deadline()
 * deadlines hold when the wall clock is stepped. 0, or KERR_NOMEM when
 * pthreads refused (then *c is not initialised and must not be
 * destroyed). */
int clock_cond_init(pthread_cond_t *c) KYCD_MUST_CHECK;

/* Wall-clock (CLOCK_REALTIME) time since the Unix epoch, for timestamps
 * stored or compared across restarts. It may step back: callers clamp. */
int64_t clock_wall_us(void);
int64_t clock_wall_ms(void);

#endif
