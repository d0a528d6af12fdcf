/* The spool's record format (spool_record.h): encoding, decoding, and the
 * test that tells a torn tail from corruption.
 *
 * Must never: accept a record whose CRC does not match, or read past the
 * buffer it is given (the fuzzer feeds it arbitrary bytes). */
#include "io/spool_record.h"

#include <string.h>

#include "base/bytes.h"
#include "base/crc32c.h"
#include "io/spool_internal.h"

static const unsigned char rec_magic[4] = {'K', 'Y', 'S', '1'};

void spool_record_encode(unsigned char *rec, const void *payload, size_t len)
{
    memcpy(rec, rec_magic, 4);
    bytes_put_le32(rec + 4, (uint32_t)len);
    bytes_put_le32(rec + 8, crc32c(0, payload, len));
    if (len)
        memcpy(rec + REC_HDR, payload, len);
}

bool spool_record_header(const unsigned char hdr[REC_HDR], uint32_t *n)
{
    *n = bytes_get_le32(hdr + 4);
    return memcmp(hdr, rec_magic, 4) == 0 && *n <= REC_MAX_PAYLOAD;
}

int spool_record_decode(const unsigned char *buf, size_t len, const unsigned char **payload,
                        size_t *payload_len, size_t *used)
{
    if (len == 0 || buf == NULL)
        return KERR_NOTFOUND;
    /* A prefix that already disagrees with the magic is garbage, not torn. */
    if (memcmp(buf, rec_magic, len < 4 ? len : 4) != 0)
        return KERR_INVALID;
    if (len < REC_HDR)
        return KERR_NOTFOUND;
    uint32_t n = bytes_get_le32(buf + 4);
    if (n > REC_MAX_PAYLOAD)
        return KERR_TOOBIG;
    if (len - REC_HDR < n)
        return KERR_NOTFOUND;
    if (crc32c(0, buf + REC_HDR, n) != bytes_get_le32(buf + 8))
        return KERR_INVALID;
    if (payload)
        *payload = buf + REC_HDR;
    if (payload_len)
        *payload_len = n;
    if (used)
        *used = REC_HDR + (size_t)n;
    return 0;
}

const char *spool_record_reason(int rc)
{
    switch (rc) {
    case KERR_NOTFOUND:
        return "short record";
    case KERR_TOOBIG:
        return "absurd record length";
    default:
        return "bad magic or crc";
    }
}

/* A record failed to decode at x in the newest segment: is it a torn tail
 * (the last, interrupted append) or corruption? Torn only if its header, when
 * intact, does not end before end of file and nothing after x decodes. */
bool spool_record_tail_is_corrupt(const unsigned char *map, size_t size, size_t x)
{
    const unsigned char *p = map + x;
    size_t rest = size - x;
    if (rest >= REC_HDR && memcmp(p, rec_magic, 4) == 0) {
        uint32_t n = bytes_get_le32(p + 4);
        if (n <= REC_MAX_PAYLOAD && (size_t)n < rest - REC_HDR)
            return true; /* a whole record with more data behind it */
    }
    for (size_t y = x + 1; y + REC_HDR <= size; y++) {
        if (map[y] == rec_magic[0] && spool_record_decode(map + y, size - y, NULL, NULL, NULL) == 0)
            return true;
    }
    return false;
}
