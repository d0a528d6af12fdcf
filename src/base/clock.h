/* Clocks: monotonic milliseconds for deadlines and latencies, and an
 * absolute deadline for pthread_cond_timedwait. libc only. */
#ifndef KYCD_BASE_CLOCK_H
#define KYCD_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic time in milliseconds (fractional), for latencies. */
double clock_now_ms(void);
/* Monotonic whole milliseconds, for deadlines. */
int64_t clock_mono_ms(void);
/* CLOCK_MONOTONIC timespec `ms` from now (for condvars set to that clock). */
struct timespec clock_deadline(int64_t ms);

#endif
