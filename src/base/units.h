/* Parsing of the value forms used in configuration: durations, byte sizes,
 * booleans and integers. Pure functions, libc only. */
#ifndef KYCD_BASE_UNITS_H
#define KYCD_BASE_UNITS_H

#include <stdint.h>

#include "base/err.h"

/* "500ms", "30s", "10m", "1h", "2d" or plain seconds ("30", "0.5") into
 * milliseconds. Rejects negatives, empty strings and trailing garbage. */
int units_duration_ms(const char *s, int64_t *out_ms, kerr *err) KYCD_MUST_CHECK;

/* "65536", "64k", "64KiB", "1M", "1MiB", "1G" (binary multiples) into bytes. */
int units_size(const char *s, int64_t *out, kerr *err) KYCD_MUST_CHECK;

/* on/off, true/false, yes/no, 1/0 (case-insensitive). */
int units_bool(const char *s, int *out, kerr *err) KYCD_MUST_CHECK;

/* A decimal integer within [min, max]. */
int units_int(const char *s, int64_t min, int64_t max, int64_t *out, kerr *err) KYCD_MUST_CHECK;

/* Render a duration back in the shortest exact unit ("500ms", "30s", "10m"). */
void units_format_duration(int64_t ms, char *buf, int len);

/* Render a size back in the largest exact binary unit ("64k", "4M", "1G",
 * "1500"), as units_size reads it. */
void units_format_size(int64_t bytes, char *buf, int len);

#endif
