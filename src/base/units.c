/* Value parsers for configuration. libc only. */
#include "base/units.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int units_duration_ms(const char *s, int64_t *out_ms, kerr *err)
{
    if (s == NULL || *s == '\0')
        return kerr_set(err, KERR_INVALID, "empty duration");
    /* Plain decimal only: strtod alone would also take "0x10" and "1e3". */
    size_t digits = 0, dots = 0, n = 0;
    for (; isdigit((unsigned char)s[n]) || s[n] == '.'; n++) {
        if (s[n] == '.')
            dots++;
        else
            digits++;
    }
    if (digits == 0 || dots > 1)
        return kerr_set(err, KERR_INVALID, "bad duration (use e.g. 500ms, 30s, 10m, 1h)");
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno != 0 || end != s + n || !isfinite(v) || v < 0)
        return kerr_set(err, KERR_INVALID, "bad duration (use e.g. 500ms, 30s, 10m, 1h)");
    double mult;
    if (*end == '\0' || strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else if (strcmp(end, "d") == 0)
        mult = 86400000;
    else
        return kerr_set(err, KERR_INVALID, "bad duration unit (use ms, s, m, h or d)");
    double ms = v * mult;
    if (ms > 9.0e15)
        return kerr_set(err, KERR_INVALID, "duration too large");
    *out_ms = (int64_t)llround(ms);
    return 0;
}

int units_size(const char *s, int64_t *out, kerr *err)
{
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return kerr_set(err, KERR_INVALID, "bad size (use e.g. 65536, 64k, 1M)");
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return kerr_set(err, KERR_INVALID, "size too large");
    unsigned long long mult = 1;
    if (*end == '\0' || strcasecmp(end, "b") == 0)
        mult = 1;
    else if (strcasecmp(end, "k") == 0 || strcasecmp(end, "kb") == 0 || strcasecmp(end, "kib") == 0)
        mult = 1ULL << 10;
    else if (strcasecmp(end, "m") == 0 || strcasecmp(end, "mb") == 0 || strcasecmp(end, "mib") == 0)
        mult = 1ULL << 20;
    else if (strcasecmp(end, "g") == 0 || strcasecmp(end, "gb") == 0 || strcasecmp(end, "gib") == 0)
        mult = 1ULL << 30;
    else
        return kerr_set(err, KERR_INVALID, "bad size unit (use k, M or G)");
    if (v > (unsigned long long)INT64_MAX / mult)
        return kerr_set(err, KERR_INVALID, "size too large");
    *out = (int64_t)(v * mult);
    return 0;
}

int units_bool(const char *s, int *out, kerr *err)
{
    static const char *yes[] = {"on", "true", "yes", "1"};
    static const char *no[] = {"off", "false", "no", "0"};
    for (int i = 0; i < 4; i++) {
        if (s && strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (s && strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return kerr_set(err, KERR_INVALID, "bad boolean (use on or off)");
}

int units_int(const char *s, int64_t min, int64_t max, int64_t *out, kerr *err)
{
    if (s == NULL || *s == '\0')
        return kerr_set(err, KERR_INVALID, "empty number");
    /* strtoll would skip leading spaces; trailing ones are refused, so
     * refuse both. */
    if (!isdigit((unsigned char)s[0]) && s[0] != '-' && s[0] != '+')
        return kerr_set(err, KERR_INVALID, "not a whole number");
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || end == s)
        return kerr_set(err, KERR_INVALID, "not a whole number");
    if (v < min || v > max)
        return kerr_set(err, KERR_INVALID, "out of range (%lld to %lld)", (long long)min,
                        (long long)max);
    *out = v;
    return 0;
}

void units_format_duration(int64_t ms, char *buf, int len)
{
    if (ms != 0 && ms % 3600000 == 0)
        snprintf(buf, (size_t)len, "%lldh", (long long)(ms / 3600000));
    else if (ms != 0 && ms % 60000 == 0)
        snprintf(buf, (size_t)len, "%lldm", (long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(buf, (size_t)len, "%llds", (long long)(ms / 1000));
    else
        snprintf(buf, (size_t)len, "%lldms", (long long)ms);
}

void units_format_size(int64_t bytes, char *buf, int len)
{
    static const char unit[] = {'G', 'M', 'k'};
    for (int i = 0; i < 3; i++) {
        int64_t m = (int64_t)1 << (10 * (3 - i));
        if (bytes != 0 && bytes % m == 0) {
            snprintf(buf, (size_t)len, "%lld%c", (long long)(bytes / m), unit[i]);
            return;
        }
    }
    snprintf(buf, (size_t)len, "%lld", (long long)bytes);
}
