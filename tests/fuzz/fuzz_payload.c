/* libFuzzer target: the webhook payload parser and the parsers of P100's
 * answers (core/payload.c). Any input: no crash, no read past the input,
 * and an accepted webhook has a non-empty externalUserId. The first byte
 * picks the parser. Built and run by tests/fuzz/run.sh. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/payload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned pick = data[0];
    /* A private copy of exactly the bytes, so ASan sees any overread. */
    size_t n = size - 1;
    char *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data + 1, n);
    kerr err;
    switch (pick % 6) {
    case 0:
    case 1:
    case 2:
    case 3: {
        kyc_delivery d;
        memset(&d, 0, sizeof d);
        if (payload_parse((enum kyc_kind)(pick % 4), buf, n, &d, &err) == 0 &&
            d.external_user_id[0] == '\0')
            abort();
        break;
    }
    case 4: {
        kyc_status st;
        if (payload_parse_p100_status(buf, n, &st, &err) == 0 && st.verification[0] == '\0' &&
            st.attempt[0] == '\0')
            abort();
        char code[16], name[64], msg[256];
        (void)payload_parse_p100_error(buf, n, code, name, msg);
        break;
    }
    default: {
        char vid[128];
        (void)payload_parse_p100_created(buf, n, vid, sizeof vid, &err);
        break;
    }
    }
    free(buf);
    return 0;
}
