/* Splitting a configured list ("a, b,c" or one item per line) into trimmed
 * items without copying: the one tokenizer behind the allowed-network
 * list and the webhook token list. Pure, libc only; it never allocates
 * and never looks at what an item means (the caller validates it). */
#ifndef KYCD_BASE_STRLIST_H
#define KYCD_BASE_STRLIST_H

#include <stddef.h>

/* An iterator over `s` (caller storage, borrowed: s must outlive it). */
typedef struct strlist {
    const char *p;      /* start of the next item; NULL after the last */
    const char *seps;   /* separator characters, e.g. "," or ",\n" */
    const char *blanks; /* trimmed from both ends of an item, e.g. " \t" */
    int separators;     /* separators passed so far */
} strlist;

/* Start iterating over s (NULL is taken as ""). */
void strlist_init(strlist *it, const char *s, const char *seps, const char *blanks);

/* The next non-empty item after trimming: 1 with *item (not NUL-terminated)
 * and *len set, 0 when there is none left. Items that are empty once
 * trimmed are skipped; it->separators counts every separator passed, so
 * a caller can tell "" (none) from "," (only empty items). */
int strlist_next(strlist *it, const char **item, size_t *len);

#endif
