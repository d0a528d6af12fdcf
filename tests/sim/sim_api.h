/* p100-sim's Partner API, as P100 answers it: Create KYC Verification
 * (POST /v1/kyc), Get KYC Status (GET /v1/kyc/status/{id}) and the
 * verification page (GET /v1/kyc/verification/{id}/{vid}), behind the
 * x-api-key check and the faults the control API sets.
 *
 * Must never: log or echo the API key, or hold sim_state.mu while it waits
 * out the simulated latency. */
#ifndef P100_SIM_API_H
#define P100_SIM_API_H

#include "sim_http.h"

#include <stddef.h>

/* The partner's API key (copied); api_deinit wipes it. */
void api_init(const char *api_key);
void api_deinit(void);

/* Answers one API request into r; fills log_user with the user it names
 * (for the log line) and *fault_out with the fault injected ("-": none). */
void api_handle(struct mg_connection *conn, const struct mg_request_info *ri, reply *r,
                char *log_user, size_t log_user_cap, const char **fault_out);

#endif
