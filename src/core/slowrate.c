/* Slow-client policy (core/slowrate.h). Pure arithmetic: no clock, no I/O. */
#include "core/slowrate.h"

int64_t slow_grace_now(const slow_policy *p, int busy, int threads)
{
    if (threads <= 0 || 2 * busy <= threads)
        return p->grace_ms;
    if (busy > threads)
        busy = threads;
    double half = threads / 2.0;
    double over = (busy - half) / half; /* 0 at half busy, 1 when all are */
    return (int64_t)((double)p->grace_ms * (1.0 - 0.75 * over));
}

int slow_should_cut(const slow_policy *p, slow_phase ph, double age_ms, uint64_t bytes,
                    int64_t grace_ms, int busy, int threads)
{
    if (p->min_rate <= 0)
        return 0;
    switch (ph) {
    case SLOW_HANDSHAKE:
    case SLOW_HEADERS:
    case SLOW_BODY:
        return age_ms > (double)grace_ms + (double)bytes * 1000.0 / (double)p->min_rate;
    case SLOW_KEEPALIVE:
        return bytes == 0 && 2 * busy > threads && age_ms > (double)grace_ms;
    case SLOW_IDLE:
    case SLOW_ACTIVE:
        break;
    }
    return 0;
}
