/* p100-sim's control API under /_sim/ (no key: tests only): set users and
 * their states, send webhooks (advance, poa, flush), set faults, reset, and
 * read the counters and the webhook outcomes.
 *
 * Must never: be reachable with P100's paths (main routes /_sim/ here only). */
#ifndef P100_SIM_CONTROL_H
#define P100_SIM_CONTROL_H

#include "sim_http.h"

/* Answers one /_sim/ request into r. */
void control_handle(struct mg_connection *conn, const struct mg_request_info *ri, reply *r);

#endif
