/* The configuration as printed (`kycd config`) and compared (a reload). */
#ifndef KYCD_IO_CONFIG_PRINT_H
#define KYCD_IO_CONFIG_PRINT_H

#include <stddef.h>
#include <stdio.h>

#include "io/config.h"

/* The keys whose values differ between a and b, comma-separated into out
 * (names only: never a value, so secrets are safe), restricted to the keys
 * a reload applies live (live = 1: webhook_tokens, allow_cidrs, tls_cert,
 * tls_key, tls_chain, log_level) or to all the others (live = 0). Returns
 * how many differ. */
int config_diff(const kycd_config *a, const kycd_config *b, int live, char *out, size_t cap);

/* Print the effective configuration, one `key = value` per line, with
 * secrets shown as "(redacted)" (or "(unset)"), in table order. */
void config_print(const kycd_config *cfg, FILE *out);

#endif
