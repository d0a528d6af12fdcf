/* The configuration's key table, seen from outside the configuration
 * module: what a name means (see io/config.h for the spellings). */
#ifndef KYCD_IO_CONFIG_KEYS_H
#define KYCD_IO_CONFIG_KEYS_H

/* 1 if `name` is a secret key (for tests and for the CLI's own checks). */
int config_key_is_secret(const char *name);

#endif
