/* List splitting (see strlist.h). Pure, libc only: must never allocate or
 * write to the string it walks. */
#include "base/strlist.h"

#include <string.h>

void strlist_init(strlist *it, const char *s, const char *seps, const char *blanks)
{
    it->p = s ? s : "";
    it->seps = seps;
    it->blanks = blanks;
    it->separators = 0;
}

static int is_blank(const strlist *it, char c)
{
    return c != '\0' && strchr(it->blanks, c) != NULL;
}

int strlist_next(strlist *it, const char **item, size_t *len)
{
    while (it->p != NULL) {
        const char *p = it->p;
        size_t n = strcspn(p, it->seps);
        const char *s = p, *e = p + n;
        if (p[n] == '\0') {
            it->p = NULL;
        } else {
            it->separators++;
            it->p = p + n + 1;
        }
        while (s < e && is_blank(it, *s))
            s++;
        while (e > s && is_blank(it, e[-1]))
            e--;
        if (e > s) {
            *item = s;
            *len = (size_t)(e - s);
            return 1;
        }
    }
    return 0;
}
