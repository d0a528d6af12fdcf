/* Names and parsing of the domain's enums (through core/vocab.c's tables), the identifier rule, and the
 * spool record of a delivery. Pure: must never do I/O or log. */
#include "core/kyc.h"

#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "base/bytes.h"
#include "core/vocab.h"

const char *kyc_kind_name(enum kyc_kind k)
{
    return vocab_label(&VOCAB_KIND, (int)k);
}

const char *kyc_source_name(enum kyc_source s)
{
    return vocab_label(&VOCAB_SOURCE, (int)s);
}

const char *kyc_refusal_name(enum kyc_refusal r)
{
    return vocab_label(&VOCAB_REFUSAL, (int)r);
}

enum kyc_vstatus kyc_vstatus_parse(const char *s)
{
    if (s == NULL || *s == '\0')
        return KYC_V_NONE;
    int v = vocab_value(&VOCAB_VERIFICATION_STATUS, s);
    return v < 0 ? KYC_V_UNKNOWN : (enum kyc_vstatus)v;
}

enum kyc_astatus kyc_astatus_parse(const char *s)
{
    if (s == NULL || *s == '\0')
        return KYC_A_NONE;
    int v = vocab_value(&VOCAB_ATTEMPT_STATUS, s);
    return v < 0 ? KYC_A_UNKNOWN : (enum kyc_astatus)v;
}

const char *kyc_vstatus_name(enum kyc_vstatus v)
{
    return vocab_name(&VOCAB_VERIFICATION_STATUS, (int)v);
}

const char *kyc_astatus_name(enum kyc_astatus a)
{
    return vocab_name(&VOCAB_ATTEMPT_STATUS, (int)a);
}

int kyc_other_status_known(enum kyc_kind k, const char *s)
{
    switch (k) {
    case KYC_KIND_POA_STATUS:
        return vocab_value(&VOCAB_POA_STATUS, s) >= 0;
    case KYC_KIND_KYC_FILE:
        return vocab_value(&VOCAB_KYC_FILE_STATUS, s) >= 0;
    case KYC_KIND_USER_STATUS:
        return vocab_value(&VOCAB_USER_STATUS, s) >= 0;
    default:
        return 0;
    }
}

int kyc_id_check(const char *field, const char *s, unsigned flags, kerr *err)
{
    /* Bounded: a longer string is refused without being read to its end. */
    size_t len = s ? strnlen(s, KYC_ID_MAX + 1) : 0;
    if (len == 0)
        return kerr_set(err, KERR_INVALID, "field '%s' is empty", field);
    if (len > KYC_ID_MAX)
        return kerr_set(err, KERR_INVALID, "field '%s' is longer than %d bytes", field, KYC_ID_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((flags & KYC_ID_ASCII) && (c < 0x20 || c > 0x7e))
            return kerr_set(err, KERR_INVALID, "field '%s' must be printable ASCII", field);
        if (c < 0x20 || c == 0x7f)
            return kerr_set(err, KERR_INVALID, "field '%s' contains control characters", field);
    }
    return 0;
}

int kyc_status_empty(const kyc_status *s)
{
    return s->verification[0] == '\0' && s->attempt[0] == '\0';
}

int kyc_status_equal(const kyc_status *a, const kyc_status *b)
{
    return strcmp(a->verification, b->verification) == 0 && strcmp(a->attempt, b->attempt) == 0 &&
           strcmp(a->reason, b->reason) == 0;
}

/* Spool record layout (all integers little-endian):
 *   version u8 (1) | kind u8 | received_us i64 | addr_len u8 | addr |
 *   rid_len u8 | rid | body_len u32 | body
 * A quarantined delivery is version 2, with its reason after the rid:
 *   ... | rid | reason_len u8 | reason | body_len u32 | body
 * (version 1 stays as it was: a spool written by an older kycd replays.) */
static int put(kbuf *out, const void *p, size_t n)
{
    return kbuf_append(out, p, n);
}

static int put_u8(kbuf *out, unsigned v)
{
    unsigned char b = (unsigned char)v;
    return put(out, &b, 1);
}

static int put_le32(kbuf *out, uint32_t v)
{
    unsigned char b[4];
    bytes_put_le32(b, v);
    return put(out, b, sizeof b);
}

static int put_le64(kbuf *out, uint64_t v)
{
    unsigned char b[8];
    bytes_put_le64(b, v);
    return put(out, b, sizeof b);
}

int kyc_delivery_encode(const kyc_delivery *d, long long received_us, kbuf *out)
{
    size_t al = strnlen(d->remote_addr, sizeof d->remote_addr);
    size_t rl = strnlen(d->request_id, sizeof d->request_id);
    size_t ql = strnlen(d->quarantine, sizeof d->quarantine - 1);
    if (d->body_len > 0xffffffffu || al > 255 || rl > 255 || ql > 255)
        return KERR_TOOBIG;
    unsigned char al8 = (unsigned char)al, rl8 = (unsigned char)rl, ql8 = (unsigned char)ql;
    int rc = put_u8(out, ql ? 2 : 1);
    if (rc == 0)
        rc = put_u8(out, (unsigned)d->kind);
    if (rc == 0)
        rc = put_le64(out, (uint64_t)received_us);
    if (rc == 0)
        rc = put(out, &al8, 1);
    if (rc == 0)
        rc = put(out, d->remote_addr, al);
    if (rc == 0)
        rc = put(out, &rl8, 1);
    if (rc == 0)
        rc = put(out, d->request_id, rl);
    if (rc == 0 && ql)
        rc = put(out, &ql8, 1);
    if (rc == 0 && ql)
        rc = put(out, d->quarantine, ql);
    if (rc == 0)
        rc = put_le32(out, (uint32_t)d->body_len);
    if (rc == 0)
        rc = put(out, d->body, d->body_len);
    return rc;
}

int kyc_delivery_decode(const void *buf, size_t len, kyc_delivery *d, kerr *err)
{
    const unsigned char *p = buf, *end = p + len;
    if (len < 1 + 1 + 8 + 1 || (p[0] != 1 && p[0] != 2))
        return kerr_set(err, KERR_INVALID, "spool record: unknown version or too short");
    int quarantined = p[0] == 2;
    unsigned kind = p[1];
    if (kind >= KYC_KIND_COUNT)
        return kerr_set(err, KERR_INVALID, "spool record: unknown webhook kind %u", kind);
    uint64_t v = bytes_get_le64(p + 2);
    p += 10;
    size_t al = *p++;
    if (al >= sizeof d->remote_addr || (size_t)(end - p) < al + 1)
        return kerr_set(err, KERR_INVALID, "spool record: bad address field");
    const unsigned char *addr = p;
    p += al;
    size_t rl = *p++;
    if (rl >= sizeof d->request_id || (size_t)(end - p) < rl + 4)
        return kerr_set(err, KERR_INVALID, "spool record: bad request id field");
    const unsigned char *rid = p;
    p += rl;
    const unsigned char *why = NULL;
    size_t ql = 0;
    if (quarantined) {
        ql = *p++;
        if (ql == 0 || ql >= sizeof d->quarantine || (size_t)(end - p) < ql + 4)
            return kerr_set(err, KERR_INVALID, "spool record: bad quarantine reason field");
        why = p;
        p += ql;
    }
    size_t bl = bytes_get_le32(p);
    p += 4;
    if ((size_t)(end - p) != bl)
        return kerr_set(err, KERR_INVALID, "spool record: body length mismatch");
    memset(d, 0, sizeof *d);
    d->kind = (enum kyc_kind)kind;
    d->received_us = (long long)v;
    memcpy(d->remote_addr, addr, al);
    memcpy(d->request_id, rid, rl);
    if (why)
        memcpy(d->quarantine, why, ql);
    d->body = (const char *)p;
    d->body_len = bl;
    return 0;
}
