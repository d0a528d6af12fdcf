/* The domain's plain types: webhook kinds, KYC statuses as P100 documents
 * them, sources of a state, and one accepted delivery. Pure: no I/O. */
#ifndef KYCD_CORE_KYC_H
#define KYCD_CORE_KYC_H

#include <stddef.h>

#include "base/buf.h"
#include "base/err.h"

#define KYC_ID_MAX 128     /* longest externalUserId accepted (bytes) */
#define KYC_VALUE_MAX 64   /* longest status value accepted */
#define KYC_REASON_MAX 256 /* longest rejectionReason accepted */

enum kyc_kind {
    KYC_KIND_KYC_STATUS = 0, /* KYC Verification Status */
    KYC_KIND_POA_STATUS,     /* POA Verification Status */
    KYC_KIND_KYC_FILE,       /* KYC File Added */
    KYC_KIND_USER_STATUS,    /* User status / balance generation */
    KYC_KIND_COUNT
};

enum kyc_vstatus {
    KYC_V_NONE = 0, /* no value (no state known yet) */
    KYC_V_NOT_VERIFIED,
    KYC_V_VERIFIED,
    KYC_V_EXPIRED,
    KYC_V_UNKNOWN, /* a value P100 does not document (yet) */
};

enum kyc_astatus {
    KYC_A_NONE = 0,
    KYC_A_PENDING,
    KYC_A_VERIFICATION,
    KYC_A_REJECTED, /* REJECTED_BY_PROVIDER */
    KYC_A_SUCCESSFUL,
    KYC_A_UNKNOWN,
};

enum kyc_source { KYC_SRC_WEBHOOK = 0, KYC_SRC_RECONCILER, KYC_SRC_API };

/* Why a request was refused: the "error" of the answer's JSON, the log
 * line's code and the refused deliveries' reason label (names in
 * core/vocab.c, VOCAB_REFUSAL; README "HTTP interface and answers"). */
enum kyc_refusal {
    KYC_REFUSE_UNAUTHORIZED = 0,
    KYC_REFUSE_FORBIDDEN,
    KYC_REFUSE_UNSUPPORTED_MEDIA_TYPE,
    KYC_REFUSE_PAYLOAD_TOO_LARGE,
    KYC_REFUSE_REQUEST_TIMEOUT,
    KYC_REFUSE_BAD_REQUEST,
    KYC_REFUSE_INVALID_PAYLOAD,
    KYC_REFUSE_UNAVAILABLE,
    KYC_REFUSE_OVERLOADED,
    KYC_REFUSE_DRAINING,
    KYC_REFUSE_METHOD_NOT_ALLOWED,
    KYC_REFUSE_NOT_READY,
    KYC_REFUSE_INTERNAL,
    KYC_REFUSE_NOT_FOUND,
    KYC_REFUSAL_COUNT
};
const char *kyc_refusal_name(enum kyc_refusal r); /* "unauthorized", ... */

/* A user's KYC state as P100 reports it. Strings are kept verbatim (an
 * undocumented value is stored as sent); "" means absent. */
typedef struct kyc_status {
    char verification[KYC_VALUE_MAX + 1];
    char attempt[KYC_VALUE_MAX + 1];
    char reason[KYC_REASON_MAX + 1];
} kyc_status;

/* Names as used in URLs, the database (kyc.webhook_events.kind) and logs. */
const char *kyc_kind_name(enum kyc_kind k);     /* "kyc_verification_status", ... */
const char *kyc_source_name(enum kyc_source s); /* "webhook", "reconciler", "api" */

/* P100's values, through core/vocab.h's tables. */
enum kyc_vstatus kyc_vstatus_parse(const char *s); /* "" -> NONE, undocumented -> UNKNOWN */
enum kyc_astatus kyc_astatus_parse(const char *s);
const char *kyc_vstatus_name(enum kyc_vstatus v); /* NULL for NONE and UNKNOWN */
const char *kyc_astatus_name(enum kyc_astatus a);

/* Whether s is a documented value of the `status` field of the other
 * webhooks (VOCAB_POA_STATUS, VOCAB_KYC_FILE_STATUS, VOCAB_USER_STATUS). */
int kyc_other_status_known(enum kyc_kind k, const char *s);

/* The one rule for an identifier we take from P100 or hand to it
 * (externalUserId, verificationId), the C string s (NULL: empty):
 * not empty, at most KYC_ID_MAX bytes, no control characters (below 0x20,
 * or 0x7f); with KYC_ID_ASCII, printable ASCII only (what a create request
 * sends; a webhook may carry any UTF-8). KERR_INVALID with a message that
 * names `field` and never quotes the value:
 *   "field '<field>' is empty", "... is longer than 128 bytes",
 *   "... contains control characters", "... must be printable ASCII". */
#define KYC_ID_ASCII 1u
int kyc_id_check(const char *field, const char *s, unsigned flags, kerr *err) KYCD_MUST_CHECK;

/* Both statuses empty: nothing known yet. */
int kyc_status_empty(const kyc_status *s);
/* Same verification, attempt and reason. */
int kyc_status_equal(const kyc_status *a, const kyc_status *b);

/* One verified, parsed webhook delivery, ready to persist. Borrowed
 * pointers stay valid for the duration of the call that receives it. */
typedef struct kyc_delivery {
    enum kyc_kind kind;
    char external_user_id[KYC_ID_MAX + 1];
    kyc_status status;                    /* KYC_KIND_KYC_STATUS only */
    char other_status[KYC_VALUE_MAX + 1]; /* `status` of the other kinds */
    char unknown_fields[128];             /* comma list of fields whose value is undocumented */
    const char *body;                     /* raw body as received (valid UTF-8 JSON) */
    size_t body_len;
    char body_sha256[65]; /* hex */
    char remote_addr[64];
    char request_id[33];   /* unique per delivery (128 random bits, hex) */
    long long received_us; /* receipt time (Unix µs) of a delivery replayed
                                       * from the spool; 0: now */
    /* Not "": the delivery is quarantined (authentic, but not applied):
     * why, never quoting the body. Only kind, body, body_sha256,
     * remote_addr, request_id, received_us and external_user_id ("" when
     * none could be read) are then meaningful (payload_quarantine). */
    char quarantine[256];
} kyc_delivery;

/* The spool record of a delivery: kind, receipt time, peer address,
 * request id and the raw body (the parsed fields are not stored: replay
 * parses the body again), and for a quarantined delivery its reason (a
 * version 2 record: replay stores it in the quarantine, it does not parse
 * it). Appends to out. */
int kyc_delivery_encode(const kyc_delivery *d, long long received_us, kbuf *out) KYCD_MUST_CHECK;

/* Decode a spool record: fills kind, received_us, remote_addr, request_id,
 * quarantine ("" for a version 1 record), and points body/body_len into buf
 * (which must outlive d). The other fields are left for payload_parse (or
 * payload_quarantine). KERR_INVALID on anything malformed. */
int kyc_delivery_decode(const void *buf, size_t len, kyc_delivery *d, kerr *err) KYCD_MUST_CHECK;

#endif
