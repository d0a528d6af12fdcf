/* Allowed source networks: parsing a CIDR list and matching an address.
 *
 * Families are kept apart, as in pg_hba.conf: an IPv4 block matches IPv4
 * clients and an IPv6 block IPv6 clients. An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d, how a dual-stack socket reports an IPv4 client) is
 * matched as the IPv4 address it carries, and a block written inside
 * ::ffff:0:0/96 is stored as the IPv4 block it means. So "::/0" admits every
 * IPv6 client but no IPv4 one; add "0.0.0.0/0" for those.
 * Pure: inet_pton/inet_ntop only, no I/O. */
#include "core/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "base/strlist.h"

static const unsigned char v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Parse a textual address into family 4 or 6 and 16 bytes (IPv4 in the
 * first 4). Mapped IPv6 addresses become IPv4. Returns 0 when unparsable. */
static int parse_addr(const char *s, unsigned char addr[16])
{
    memset(addr, 0, 16);
    if (strchr(s, ':') == NULL)
        return inet_pton(AF_INET, s, addr) == 1 ? 4 : 0;
    unsigned char a6[16];
    if (inet_pton(AF_INET6, s, a6) != 1)
        return 0;
    if (memcmp(a6, v4mapped_prefix, sizeof v4mapped_prefix) == 0) {
        memcpy(addr, a6 + 12, 4);
        return 4;
    }
    memcpy(addr, a6, 16);
    return 6;
}

/* 1 when the first `prefix` bits of a and b are equal. */
static int prefix_equal(const unsigned char *a, const unsigned char *b, int prefix)
{
    int full = prefix / 8;
    int rest = prefix % 8;
    if (full > 0 && memcmp(a, b, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (b[full] & mask);
}

static void clear_host_bits(unsigned char *addr, int nbytes, int prefix)
{
    for (int i = 0; i < nbytes; i++) {
        int bits = prefix - 8 * i;
        if (bits >= 8)
            continue;
        addr[i] &= bits <= 0 ? 0 : (unsigned char)(0xff << (8 - bits));
    }
}

/* Items longer than this cannot be an address with a prefix. */
#define ITEM_MAX (INET6_ADDRSTRLEN + 4)
/* How much of a bad item an error message shows. */
#define ITEM_SHOW 64

static int parse_block(cidr_block *out, const char *item, size_t n, kerr *err)
{
    if (n >= ITEM_MAX)
        return kerr_set(err, KERR_CONFIG, "bad network \"%.*s\": too long", ITEM_SHOW, item);
    char text[ITEM_MAX];
    memcpy(text, item, n);
    text[n] = '\0';

    int prefix = -1;
    char *slash = strchr(text, '/');
    if (slash != NULL) {
        *slash = '\0';
        const char *d = slash + 1;
        size_t nd = strlen(d);
        if (nd == 0 || nd > 3 || strspn(d, "0123456789") != nd)
            return kerr_set(err, KERR_CONFIG, "bad network \"%.*s\": prefix length is not a number",
                            (int)n, item);
        prefix = 0;
        for (; *d; d++)
            prefix = prefix * 10 + (*d - '0');
    }

    cidr_block b;
    memset(&b, 0, sizeof b);
    int fam = parse_addr(text, b.addr);
    if (fam == 0)
        return kerr_set(err, KERR_CONFIG, "bad network \"%.*s\": not an ipv4 or ipv6 address",
                        (int)n, item);
    int written6 = strchr(text, ':') != NULL;
    int max = written6 ? 128 : 32;
    if (prefix < 0)
        prefix = max;
    if (prefix > max)
        return kerr_set(err, KERR_CONFIG, "bad network \"%.*s\": prefix longer than %d", (int)n,
                        item, max);
    if (written6 && fam == 4) {
        /* ::ffff:a.b.c.d/p: the mapped range, stored as the IPv4 block. */
        if (prefix < 96)
            return kerr_set(err, KERR_CONFIG,
                            "bad network \"%.*s\": a block wider than ::ffff:0:0/96 mixes "
                            "ipv4-mapped and other ipv6 addresses",
                            (int)n, item);
        prefix -= 96;
    }
    b.family = fam;
    b.prefix = prefix;

    unsigned char net[16];
    memcpy(net, b.addr, sizeof net);
    clear_host_bits(net, fam == 4 ? 4 : 16, prefix);
    if (memcmp(net, b.addr, sizeof net) != 0) {
        char shown[INET6_ADDRSTRLEN];
        if (inet_ntop(fam == 4 ? AF_INET : AF_INET6, net, shown, sizeof shown) == NULL)
            shown[0] = '\0';
        return kerr_set(err, KERR_CONFIG,
                        "bad network \"%.*s\": host bits set (did you mean %s/%d?)", (int)n, item,
                        shown, prefix);
    }
    *out = b;
    return 0;
}

int cidr_list_parse(cidr_list *out, const char *csv, kerr *err)
{
    cidr_list list;
    list.count = 0;
    strlist it;
    strlist_init(&it, csv, ",", " \t");
    const char *item;
    size_t n;
    while (strlist_next(&it, &item, &n)) {
        if (list.count == CIDR_MAX)
            return kerr_set(err, KERR_CONFIG, "more than %d allowed networks", CIDR_MAX);
        int rc = parse_block(&list.blocks[list.count], item, n, err);
        if (rc != 0)
            return rc;
        list.count++;
    }
    /* Only separators: an empty list would allow everyone, which is surely
     * not what a value like "," meant. */
    if (list.count == 0 && it.separators > 0)
        return kerr_set(err, KERR_CONFIG, "allowed networks list has only empty items");
    *out = list;
    return 0;
}

int cidr_list_allows(const cidr_list *list, const char *addr)
{
    /* An empty list means "no restriction": nothing to parse or compare. */
    if (list == NULL || list->count == 0)
        return 1;
    if (addr == NULL)
        return 0;
    unsigned char a[16];
    int fam = parse_addr(addr, a);
    if (fam == 0)
        return 0;
    for (int i = 0; i < list->count && i < CIDR_MAX; i++) {
        const cidr_block *b = &list->blocks[i];
        if (b->family == fam && prefix_equal(a, b->addr, b->prefix))
            return 1;
    }
    return 0;
}
