/* The spool's record format. A record is
 *     magic "KYS1" (4 bytes) | length (u32 LE) | CRC-32C of payload (u32 LE) | payload
 * with a payload of at most 16 MiB; a segment file is records back to back. */
#ifndef KYCD_IO_SPOOL_RECORD_H
#define KYCD_IO_SPOOL_RECORD_H

#include <stddef.h>

/* Decode one record from a byte buffer (used by spool_open's scan and by
 * the fuzzer): 0, with *used, *payload and *payload_len set, when a whole valid
 * record starts at buf; KERR_INVALID for a bad magic or CRC; KERR_TOOBIG
 * for an absurd length; KERR_NOTFOUND when buf is too short (torn). */
int spool_record_decode(const unsigned char *buf, size_t len, const unsigned char **payload,
                        size_t *payload_len, size_t *used);

#endif
