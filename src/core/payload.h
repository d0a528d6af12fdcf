/* Parsing and validation of webhook bodies (the only user of cJSON in the
 * service). Pure: takes bytes, fills a kyc_delivery. */
#ifndef KYCD_CORE_PAYLOAD_H
#define KYCD_CORE_PAYLOAD_H

#include <stddef.h>

#include "base/buf.h"
#include "base/err.h"
#include "core/json.h"
#include "core/kyc.h"
#include "core/p100.h"

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

/* A webhook delivery ready to store: payload_parse(kind, body, len), then
 * d->body/body_len point at body (borrowed: it must outlive d),
 * d->body_sha256 is its SHA-256, and remote_addr and request_id are copied
 * from remote and rid (NULL: ""; they may point into d itself, as when a
 * spool record is replayed). received_us is left alone. On error d is
 * untouched and err says why, as payload_parse does. */
int payload_parse_delivery(enum kyc_kind kind, const char *body, size_t len, const char *remote,
                           const char *rid, kyc_delivery *d, kerr *err) KYCD_MUST_CHECK;

/* A delivery that passed the token check but is not applied (its body
 * failed payload_parse_delivery with `reason`, or the database refused
 * it): fills d as payload_parse_delivery would for what can be known
 * without parsing (kind, body, body_len, body_sha256, remote_addr,
 * request_id), d->quarantine = reason (cut to fit), and
 * d->external_user_id = the body's externalUserId when the body is a JSON
 * object holding it as a string that kyc_id_check accepts ("" otherwise).
 * The other fields are cleared; received_us is left alone. */
void payload_quarantine(enum kyc_kind kind, const char *body, size_t len, const char *remote,
                        const char *rid, const char *reason, kyc_delivery *d);

/* --- P100's API answers and requests (tolerant: unknown fields ignored) --- */

/* An error body {"errorCode","errorName","errorMessage"} (any may be
 * missing; a bare {"message": ...} fills message). Returns 0 when the body
 * was a JSON object, KERR_INVALID otherwise; fields default to "". */
int payload_parse_p100_error(const char *body, size_t len, char code[16], char name[64],
                             char message[256]);

/* A Get KYC Status 200 body: verificationStatus and attemptStatus strings
 * (at least one present), rejectionReason optional; other fields ignored.
 * Values longer than the kyc_status fields are refused. */
int payload_parse_p100_status(const char *body, size_t len, kyc_status *out,
                              kerr *err) KYCD_MUST_CHECK;

/* A Create KYC Verification 201 body: {"verificationId": "..."}. */
int payload_parse_p100_created(const char *body, size_t len, char *verification_id, size_t cap,
                               kerr *err) KYCD_MUST_CHECK;

/* The JSON body of POST /v1/kyc for a validated request (absent optional
 * fields are left out). Appends to out. */
int payload_build_p100_create(const p100_create_req *req, kbuf *out, kerr *err) KYCD_MUST_CHECK;

#endif
