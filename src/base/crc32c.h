/* CRC-32C (Castagnoli), the checksum of spool records. Pure, libc only. */
#ifndef KYCD_BASE_CRC32C_H
#define KYCD_BASE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* crc32c(0, "123456789", 9) == 0xE3069283 */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

#endif
