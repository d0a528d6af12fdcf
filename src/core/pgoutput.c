/* The pgoutput decoder and the feed's JSON line (see pgoutput.h). Must
 * never allocate or read past the message: every read is bounds-checked. */
#include "core/pgoutput.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct rd {
    const unsigned char *p, *end;
    int bad;
} rd;

static uint64_t rd_n(rd *r, int bytes)
{
    if (r->bad || r->end - r->p < bytes) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = (v << 8) | *r->p++;
    return v;
}

static const char *rd_str(rd *r)
{
    if (r->bad)
        return "";
    const unsigned char *nul = memchr(r->p, 0, (size_t)(r->end - r->p));
    if (nul == NULL) {
        r->bad = 1;
        return "";
    }
    const char *s = (const char *)r->p;
    r->p = nul + 1;
    return s;
}

static int decode_relation(rd *r, pgo_msg *m, kerr *err)
{
    m->relid = (uint32_t)rd_n(r, 4);
    m->nspname = rd_str(r);
    m->relname = rd_str(r);
    (void)rd_n(r, 1); /* replica identity */
    m->ncols = (int)rd_n(r, 2);
    if (m->ncols > PGO_MAX_COLS)
        return kerr_set(err, KERR_INVALID, "pgoutput: relation has %d columns (at most %d)",
                        m->ncols, PGO_MAX_COLS);
    for (int i = 0; i < m->ncols && !r->bad; i++) {
        (void)rd_n(r, 1); /* flags: part of the key */
        m->names[i] = rd_str(r);
        m->types[i] = (uint32_t)rd_n(r, 4);
        (void)rd_n(r, 4); /* typmod */
    }
    return 0;
}

static int decode_insert(rd *r, pgo_msg *m, kerr *err)
{
    m->relid = (uint32_t)rd_n(r, 4);
    if (rd_n(r, 1) != 'N' && !r->bad)
        return kerr_set(err, KERR_INVALID, "pgoutput: insert without a new tuple");
    m->ncols = (int)rd_n(r, 2);
    if (m->ncols > PGO_MAX_COLS)
        return kerr_set(err, KERR_INVALID, "pgoutput: row has %d columns (at most %d)", m->ncols,
                        PGO_MAX_COLS);
    for (int i = 0; i < m->ncols && !r->bad; i++) {
        int kind = (int)rd_n(r, 1);
        m->values[i].p = NULL;
        m->values[i].len = 0;
        if (kind == 't') {
            uint64_t len = rd_n(r, 4);
            if (r->bad || len > (uint64_t)(r->end - r->p)) {
                r->bad = 1;
                break;
            }
            m->values[i].p = (const char *)r->p;
            m->values[i].len = (size_t)len;
            r->p += len;
        } else if (kind != 'n' && !r->bad) {
            /* 'u' (unchanged TOAST) cannot occur in an insert; 'b' only
             * with the binary option, which is never asked for. */
            return kerr_set(err, KERR_INVALID, "pgoutput: column kind '%c' not expected", kind);
        }
    }
    return 0;
}

int pgo_decode(const unsigned char *buf, size_t len, pgo_msg *out, kerr *err)
{
    if (len == 0)
        return kerr_set(err, KERR_INVALID, "pgoutput: empty message");
    rd r = {buf + 1, buf + len, 0};
    int rc = 0;
    out->ncols = 0;
    switch (buf[0]) {
    case 'B':
        out->kind = PGO_BEGIN;
        out->final_lsn = rd_n(&r, 8);
        out->commit_ts = (int64_t)rd_n(&r, 8);
        out->xid = (uint32_t)rd_n(&r, 4);
        break;
    case 'C':
        out->kind = PGO_COMMIT;
        (void)rd_n(&r, 1); /* flags */
        out->commit_lsn = rd_n(&r, 8);
        out->end_lsn = rd_n(&r, 8);
        out->commit_ts = (int64_t)rd_n(&r, 8);
        break;
    case 'R':
        out->kind = PGO_RELATION;
        rc = decode_relation(&r, out, err);
        break;
    case 'I':
        out->kind = PGO_INSERT;
        rc = decode_insert(&r, out, err);
        break;
    default:
        out->kind = PGO_OTHER;
        return 0;
    }
    if (rc != 0)
        return rc;
    if (r.bad)
        return kerr_set(err, KERR_INVALID, "pgoutput: truncated '%c' message", buf[0]);
    return 0;
}

void pgo_lsn_format(uint64_t lsn, char *buf, size_t cap)
{
    snprintf(buf, cap, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32), (uint32_t)lsn);
}

/* Up to 8 hex digits ending at stop; *end after them. */
static int hex32(const char *s, char stop, uint32_t *v, const char **end)
{
    int n = 0;
    uint32_t x = 0;
    for (; s[n] != stop && s[n] != '\0'; n++) {
        char c = s[n];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0 || n >= 8)
            return -1;
        x = (x << 4) | (uint32_t)d;
    }
    if (n == 0 || s[n] != stop)
        return -1;
    *v = x;
    *end = s + n;
    return 0;
}

int pgo_lsn_parse(const char *s, uint64_t *out)
{
    uint32_t hi, lo;
    const char *e;
    if (s == NULL || hex32(s, '/', &hi, &e) != 0 || hex32(e + 1, '\0', &lo, &e) != 0)
        return KERR_INVALID;
    *out = ((uint64_t)hi << 32) | lo;
    return 0;
}

int pgo_cursor_parse(const char *s, pgo_cursor *out)
{
    const char *colon = s ? strrchr(s, ':') : NULL;
    char lsn[24];
    if (colon == NULL || (size_t)(colon - s) >= sizeof lsn)
        return KERR_INVALID;
    memcpy(lsn, s, (size_t)(colon - s));
    lsn[colon - s] = '\0';
    char *end = NULL;
    long long n = strtoll(colon + 1, &end, 10);
    uint64_t l;
    if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || n < 1 || pgo_lsn_parse(lsn, &l) != 0)
        return KERR_INVALID;
    out->lsn = l;
    out->n = n;
    return 0;
}

int pgo_cursor_covers(const pgo_cursor *c, uint64_t lsn, long long n)
{
    return lsn < c->lsn || (lsn == c->lsn && n <= c->n);
}

/* One column value as JSON, by its type: int2, int4, int8 and oid as
 * numbers, bool as true/false, NULL as null, the rest as strings. */
static int value_json(kbuf *out, uint32_t type, const pgo_value *v)
{
    if (v->p == NULL)
        return kbuf_append(out, "null", 4);
    if (type == 16)
        return kbuf_appendf(out, "%s", v->len > 0 && v->p[0] == 't' ? "true" : "false");
    if (type == 20 || type == 21 || type == 23 || type == 26)
        return kbuf_append(out, v->p, v->len);
    char small[256];
    if (v->len < sizeof small) {
        memcpy(small, v->p, v->len);
        small[v->len] = '\0';
        return kbuf_append_json(out, small);
    }
    char *s = strndup(v->p, v->len);
    if (s == NULL)
        return KERR_NOMEM;
    int rc = kbuf_append_json(out, s);
    free(s);
    return rc;
}

int pgo_change_json(kbuf *out, const pgo_msg *begin, const pgo_msg *rel, const pgo_msg *ins,
                    long long n)
{
    char lsn[24], when[96];
    pgo_lsn_format(begin->final_lsn, lsn, sizeof lsn);
    /* PostgreSQL's epoch is 2000-01-01 00:00:00 UTC, 946684800 s after Unix's. */
    int64_t us = begin->commit_ts;
    time_t secs = (time_t)(us / 1000000 + 946684800);
    long frac = (long)(us % 1000000);
    if (frac < 0) {
        frac += 1000000;
        secs--;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
    int rc = kbuf_appendf(out,
                          "{\"cursor\":\"%s:%lld\",\"commit_lsn\":\"%s\",\"xid\":%" PRIu32
                          ",\"commit_time\":\"%s\",\"table\":",
                          lsn, n, lsn, begin->xid, when);
    char table[2 * 64 + 2];
    snprintf(table, sizeof table, "%s.%s", rel->nspname, rel->relname);
    if (rc == 0)
        rc = kbuf_append_json(out, table);
    if (rc == 0)
        rc = kbuf_append(out, ",\"change\":{", 11);
    for (int i = 0; rc == 0 && i < ins->ncols && i < rel->ncols; i++) {
        if (i > 0)
            rc = kbuf_append(out, ",", 1);
        if (rc == 0)
            rc = kbuf_append_json(out, rel->names[i]);
        if (rc == 0)
            rc = kbuf_append(out, ":", 1);
        if (rc == 0)
            rc = value_json(out, rel->types[i], &ins->values[i]);
    }
    if (rc == 0)
        rc = kbuf_append(out, "}}\n", 3);
    return rc;
}
