/* Strict JSON and UTF-8 validation (see json.h). Pure: must never
 * allocate, log, or quote the text it checks in a message. */
#include "core/json.h"

#include <string.h>

int json_utf8_valid(const char *buf, size_t len)
{
    const unsigned char *s = (const unsigned char *)buf;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        unsigned int cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - i - 1 < n) /* truncated sequence */
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000))
            return 0; /* overlong */
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* A strict RFC 8259 validator, run before cJSON (which is lenient: it takes
 * raw control characters in strings, leading zeros, a BOM...). What passes
 * here is also accepted by PostgreSQL's jsonb, so a body that got past the
 * parser is never refused by the database. Messages never quote the body. */
typedef struct jscan {
    const unsigned char *p, *end;
    int depth;
    kerr *err;
} jscan;

static int js_fail(jscan *j, const char *msg)
{
    return kerr_set(j->err, KERR_INVALID, "malformed JSON: %s", msg);
}

static void js_ws(jscan *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int js_hex4(jscan *j, unsigned *out)
{
    if (j->end - j->p < 4)
        return js_fail(j, "short \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = j->p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return js_fail(j, "bad \\u escape");
    }
    j->p += 4;
    *out = v;
    return 0;
}

static int js_string(jscan *j)
{
    j->p++; /* opening quote */
    while (j->p < j->end) {
        unsigned char c = *j->p;
        if (c == '"') {
            j->p++;
            return 0;
        }
        if (c == '\0')
            return kerr_set(j->err, KERR_INVALID, "body contains a NUL byte");
        if (c < 0x20)
            return js_fail(j, "control character inside a string");
        if (c != '\\') {
            j->p++;
            continue;
        }
        if (++j->p >= j->end)
            return js_fail(j, "unterminated string");
        c = *j->p++;
        if (c != '\0' && strchr("\"\\/bfnrt", c) != NULL)
            continue;
        if (c != 'u')
            return js_fail(j, "bad escape in a string");
        unsigned u;
        if (js_hex4(j, &u) != 0)
            return KERR_INVALID;
        if (u == 0)
            return kerr_set(j->err, KERR_INVALID, "body contains a \\u0000 escape");
        if (u >= 0xDC00 && u <= 0xDFFF)
            return js_fail(j, "lone low surrogate escape");
        if (u >= 0xD800 && u <= 0xDBFF) {
            unsigned lo;
            if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
                return js_fail(j, "lone high surrogate escape");
            j->p += 2;
            if (js_hex4(j, &lo) != 0)
                return KERR_INVALID;
            if (lo < 0xDC00 || lo > 0xDFFF)
                return js_fail(j, "lone high surrogate escape");
        }
    }
    return js_fail(j, "unterminated string");
}

static int js_digits(jscan *j)
{
    const unsigned char *start = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return (int)(j->p - start);
}

/* PostgreSQL's numeric, which jsonb stores numbers in: at most 16383
 * digits after the point (its display scale, counted as written: digits
 * after the point minus the exponent) and 131072 before it. */
#define PG_NUMERIC_DSCALE_MAX 16383
#define PG_NUMERIC_INT_DIGITS_MAX 131072

/* The digits of a number as written: how many before the point (and how
 * many of those are leading zeros), after it (and leading zeros there,
 * when the integer part is zero), and the exponent. */
typedef struct js_num {
    long intd, int_zeros, fracd, frac_zeros, exp;
} js_num;

/* 0 when PostgreSQL's numeric takes it (so jsonb does): a body the
 * database would refuse must be refused on receipt, before a 200 that
 * could only become a dead letter. */
static int js_number_fits(jscan *j, const js_num *n)
{
    if (n->fracd - n->exp > PG_NUMERIC_DSCALE_MAX)
        return js_fail(j, "number out of range (more than 16383 digits after the point)");
    long lead; /* the power of ten of the first significant digit */
    if (n->intd > n->int_zeros)
        lead = n->intd - n->int_zeros - 1 + n->exp;
    else if (n->fracd > n->frac_zeros)
        lead = -(n->frac_zeros + 1) + n->exp;
    else
        return 0; /* zero */
    if (lead + 1 > PG_NUMERIC_INT_DIGITS_MAX)
        return js_fail(j, "number out of range (more than 131072 digits before the point)");
    return 0;
}

static int js_number(jscan *j)
{
    js_num n = {0};
    if (*j->p == '-')
        j->p++;
    const unsigned char *start = j->p;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (js_digits(j) == 0)
        return js_fail(j, "bad number");
    n.intd = (long)(j->p - start);
    while (n.int_zeros < n.intd && start[n.int_zeros] == '0')
        n.int_zeros++;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        const unsigned char *frac = j->p;
        if ((n.fracd = js_digits(j)) == 0)
            return js_fail(j, "bad number");
        while (n.frac_zeros < n.fracd && frac[n.frac_zeros] == '0')
            n.frac_zeros++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        int neg = 0;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            neg = *j->p++ == '-';
        const unsigned char *exp = j->p;
        int d = js_digits(j);
        if (d == 0)
            return js_fail(j, "bad number");
        /* Huge exponents are refused outright: allow 4 digits. */
        while (d > 1 && *exp == '0')
            exp++, d--;
        if (d > 4)
            return js_fail(j, "number out of range");
        for (int i = 0; i < d; i++)
            n.exp = n.exp * 10 + (exp[i] - '0');
        if (neg)
            n.exp = -n.exp;
    }
    return js_number_fits(j, &n);
}

static int js_value(jscan *j);

static int js_container(jscan *j, char close)
{
    if (++j->depth > JSON_MAX_DEPTH)
        return kerr_set(j->err, KERR_INVALID, "JSON nested deeper than %d levels", JSON_MAX_DEPTH);
    j->p++;
    js_ws(j);
    if (j->p < j->end && *j->p == (unsigned char)close) {
        j->p++;
        j->depth--;
        return 0;
    }
    for (;;) {
        if (close == '}') {
            if (j->p >= j->end || *j->p != '"')
                return js_fail(j, "expected a key");
            if (js_string(j) != 0)
                return KERR_INVALID;
            js_ws(j);
            if (j->p >= j->end || *j->p != ':')
                return js_fail(j, "expected ':'");
            j->p++;
            js_ws(j);
        }
        if (js_value(j) != 0)
            return KERR_INVALID;
        js_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            js_ws(j);
            continue;
        }
        if (j->p < j->end && *j->p == (unsigned char)close) {
            j->p++;
            j->depth--;
            return 0;
        }
        return js_fail(j, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static int js_literal(jscan *j, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return js_fail(j, "unexpected character");
    j->p += n;
    return 0;
}

static int js_value(jscan *j)
{
    if (j->p >= j->end)
        return js_fail(j, "unexpected end");
    switch (*j->p) {
    case '{':
        return js_container(j, '}');
    case '[':
        return js_container(j, ']');
    case '"':
        return js_string(j);
    case 't':
        return js_literal(j, "true");
    case 'f':
        return js_literal(j, "false");
    case 'n':
        return js_literal(j, "null");
    case '\0':
        return kerr_set(j->err, KERR_INVALID, "body contains a NUL byte");
    default:
        if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
            return js_number(j);
        return js_fail(j, "unexpected character");
    }
}

int json_validate(const char *body, size_t len, kerr *err)
{
    jscan j = {(const unsigned char *)body, (const unsigned char *)body + len, 0, err};
    js_ws(&j);
    if (js_value(&j) != 0)
        return KERR_INVALID;
    js_ws(&j);
    if (j.p != j.end)
        return *j.p == '\0' ? kerr_set(err, KERR_INVALID, "body contains a NUL byte")
                            : kerr_set(err, KERR_INVALID, "trailing data after the JSON value");
    return 0;
}
