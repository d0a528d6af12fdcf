/* libFuzzer target for spool_record_decode, the parser that reads spool
 * segments back at startup: it must never read past len, and whenever it
 * accepts a record, the record must be whole and its CRC must match.
 * Built and run by tests/fuzz/run.sh (its seeds: tests/fuzz/corpus/spool_record). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/crc32c.h"
#include "base/err.h"
#include "io/spool_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy of exactly size bytes, so ASan catches any read past it. */
    unsigned char *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return 0;
    if (size)
        memcpy(buf, data, size);
    const unsigned char *payload = NULL;
    size_t plen = 0, used = 0;
    int rc = spool_record_decode(buf, size, &payload, &plen, &used);
    if (rc == 0) {
        if (used > size || used != 12 + plen || payload != buf + 12 || memcmp(buf, "KYS1", 4) != 0)
            abort();
        uint32_t want = (uint32_t)buf[8] | (uint32_t)buf[9] << 8 | (uint32_t)buf[10] << 16 |
                        (uint32_t)buf[11] << 24;
        uint32_t len = (uint32_t)buf[4] | (uint32_t)buf[5] << 8 | (uint32_t)buf[6] << 16 |
                       (uint32_t)buf[7] << 24;
        if (len != plen || crc32c(0, payload, plen) != want)
            abort();
    } else if (rc != KERR_INVALID && rc != KERR_TOOBIG && rc != KERR_NOTFOUND) {
        abort();
    }
    free(buf);
    return 0;
}
