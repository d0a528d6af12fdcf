/* Strict RFC 8259 JSON and UTF-8 validation, shared by the webhook parser,
 * the P100 answer parser (core/payload.c) and the create-request checks
 * (core/p100.c). It sits below both so that neither includes the other.
 * Pure: no cJSON, no allocation, no I/O. */
#ifndef KYCD_CORE_JSON_H
#define KYCD_CORE_JSON_H

#include <stddef.h>

#include "base/err.h"

#define JSON_MAX_DEPTH 32 /* deepest nesting accepted */

/* 1 if buf is well-formed UTF-8 (no overlongs, no surrogates, nothing
 * above U+10FFFF). The length bounds the scan: a NUL is just a byte. */
int json_utf8_valid(const char *buf, size_t len);

/* 0 when body is exactly one JSON value as RFC 8259 writes it, with
 * nothing but whitespace around it, and also acceptable to PostgreSQL's
 * jsonb: no NUL byte, no \u0000 escape, no lone surrogate escape, nesting
 * at most JSON_MAX_DEPTH, exponents of at most 4 digits, numbers that
 * PostgreSQL's numeric holds (at most 16383 digits after the point, as
 * written less the exponent, and 131072 before it). Otherwise
 * KERR_INVALID with a message that never quotes the body ("malformed
 * JSON: ...", "body contains a NUL byte", "JSON nested deeper than 32
 * levels", "trailing data after the JSON value"). It does not check
 * UTF-8: call json_utf8_valid first. */
int json_validate(const char *body, size_t len, kerr *err) KYCD_MUST_CHECK;

#endif
