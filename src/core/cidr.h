/* Allowed source networks: a list of IPv4/IPv6 CIDR blocks and a match.
 * Pure: uses inet_pton only. */
#ifndef KYCD_CORE_CIDR_H
#define KYCD_CORE_CIDR_H

#include "base/err.h"

#define CIDR_MAX 64

typedef struct cidr_block {
    int family;             /* 4 or 6 */
    unsigned char addr[16]; /* network address, host bits zeroed */
    int prefix;             /* 0..32 or 0..128 */
} cidr_block;

typedef struct cidr_list {
    int count; /* 0 means: allow every address */
    cidr_block blocks[CIDR_MAX];
} cidr_list;

/* Parse "10.0.0.0/8, 2001:db8::/32, 192.0.2.7" (a bare address is /32 or
 * /128). Host bits set in a block are refused (say what you mean).
 * NULL or "" gives an empty list. */
int cidr_list_parse(cidr_list *out, const char *csv, kerr *err) KYCD_MUST_CHECK;

/* 1 when addr (textual IPv4, IPv6 or IPv4-mapped IPv6) is inside a block, or
 * the list is empty; 0 otherwise, and for unparsable addresses. */
int cidr_list_allows(const cidr_list *list, const char *addr);

#endif
