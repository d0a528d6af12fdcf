/* Parsing and validation of webhook bodies (the only user of cJSON in the
 * service). Pure: takes bytes, fills a kyc_delivery. */
#ifndef KYCD_CORE_PAYLOAD_H
#define KYCD_CORE_PAYLOAD_H

#include <stddef.h>

#include "base/err.h"
#include "core/kyc.h"

/* Parse `body` as the webhook of kind `kind` and fill out->kind,
 * external_user_id, status / other_status and unknown_fields (the other
 * fields of out are left alone). Rules:
 *  - valid UTF-8, a JSON object, no NUL (\u0000), nesting at most 32 deep,
 *    no duplicate top-level keys;
 *  - externalUserId: a non-empty string of at most KYC_ID_MAX bytes with no
 *    control characters;
 *  - KYC status: verificationStatus and attemptStatus required strings,
 *    rejectionReason optional string or null;
 *  - other kinds: status required string;
 *  - a documented field's value that is not a documented enum value is kept
 *    and named in unknown_fields; extra fields are ignored (the raw body is
 *    stored anyway).
 * On error returns KERR_INVALID with a message that names the field and
 * never quotes the body. */
int payload_parse(enum kyc_kind kind, const char *body, size_t len, kyc_delivery *out,
                  kerr *err) KYCD_MUST_CHECK;

/* 1 if buf is well-formed UTF-8 (no overlongs, no surrogates). */
int payload_utf8_valid(const char *buf, size_t len);

#endif
