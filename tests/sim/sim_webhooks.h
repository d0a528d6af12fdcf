/* p100-sim's webhook sender: one thread that delivers the webhooks the
 * control API asks for, with P100's retry schedule (5 attempts, 8/16/32/64 s
 * apart, scaled by --retry-scale), remembering the last RING_MAX outcomes
 * for /_sim/webhooks. A webhook may also be dropped, duplicated or held
 * until a flush.
 *
 * Must never: hold its lock while sending, or log the webhook token or a
 * body. */
#ifndef P100_SIM_WEBHOOKS_H
#define P100_SIM_WEBHOOKS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

enum wh_mode { WH_SEND, WH_DROP, WH_DUPLICATE, WH_HOLD };

/* Where and how the webhooks go; copied by wh_start. */
typedef struct wh_conf {
    const char *base;  /* --webhook-url without trailing '/'; "" or NULL: none */
    const char *token; /* the Authorization header's value; "" or NULL: none */
    const char *ca;    /* --webhook-ca, or NULL */
    double retry_scale;
    long timeout_ms;
} wh_conf;

/* Starts the sender thread. -1 when it cannot start. */
int wh_start(const wh_conf *c);

/* Stops the sender (a transfer in progress gives up), joins it, drops what
 * is left and wipes the token. Returns how many webhooks were queued or held
 * (abandoned). */
long wh_stop(void);

/* True when a --webhook-url was given: without one only "drop" works. */
bool wh_enabled(void);

/* Queue (or drop, or hold) one webhook. Fills seqs[0..1] with the delivery
 * numbers (0 when none). Returns 0, or -1 when out of memory. */
int wh_submit(const char *kind, const char *uid, const char *body, enum wh_mode mode,
              uint64_t seqs[2]);

/* Send the held webhooks now, in arrival order or reversed; returns how many. */
long wh_flush(bool reverse);

/* Drop everything queued or held (reset), and with counters the counters and
 * remembered outcomes too. The one in flight finishes. */
void wh_clear(bool counters);

/* Adds the webhook counters (webhooks_sent ... webhooks_pending) to o. */
void wh_stats_json(cJSON *o);

/* The remembered outcomes, oldest first (only those of uid when it is not
 * NULL), with pending and held: the body of GET /_sim/webhooks. */
cJSON *wh_deliveries_json(const char *uid);

#endif
