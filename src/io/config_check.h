/* The checks of the configuration that only `kycd serve` needs. */
#ifndef KYCD_IO_CONFIG_CHECK_H
#define KYCD_IO_CONFIG_CHECK_H

#include "base/err.h"
#include "io/config.h"

/* Checks that need several keys, for `kycd serve`: tokens present and
 * valid, certificate and key set, http_listen on loopback, etc. On success
 * the parsed tokens and allowed networks are in cfg->tokens and cfg->allow,
 * for the server to use as they are; on failure cfg is untouched.
 * Tokens and CIDRs are validated here and not at load: the other commands
 * (config, migrate, status...) must work with a token list serve refuses. */
int config_check_serve(kycd_config *cfg, kerr *err) KYCD_MUST_CHECK;

#endif
