/* The configuration as people see it: `key = value` lines with secrets
 * redacted and every secret inside database_url (each keyword libpq holds
 * secret: password, sslpassword, ...) replaced by ***, and the
 * names of the keys that differ between two configurations (for a reload).
 *
 * Must never: print a secret's value, or a conninfo it could not redact
 * (it fails closed), or name a value in a diff (names only). */
#include "io/config_print.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/units.h"
#include "io/config_internal.h"
#include "io/db.h"

/* Any keyword libpq holds secret (password, sslpassword, ...): libpq's
 * own table says which (io/db.c). */
static int is_password_kw(const char *s, size_t n)
{
    return db_conninfo_keyword_is_secret(s, n);
}

/* URI query `?a=b&password=x`: the password's value becomes ***. */
static int redact_query(const char *q, kbuf *out)
{
    int rc = 0;
    while (rc == 0 && *q != '\0') {
        size_t n = strcspn(q, "&");
        const char *eq = memchr(q, '=', n);
        if (eq != NULL && is_password_kw(q, (size_t)(eq - q)))
            rc = kbuf_appendf(out, "%.*s***", (int)(eq + 1 - q), q);
        else
            rc = kbuf_append(out, q, n);
        q += n;
        if (rc == 0 && *q == '&') {
            rc = kbuf_append(out, "&", 1);
            q++;
        }
    }
    return rc;
}

/* libpq keyword/value form: `host=x password=secret` or password='a b'. */
static int redact_kv(const char *p, kbuf *out)
{
    int rc = 0;
    while (rc == 0 && *p != '\0') {
        if (isspace((unsigned char)*p)) {
            rc = kbuf_append(out, p++, 1);
            continue;
        }
        const char *kw = p;
        while (*p != '\0' && *p != '=' && !isspace((unsigned char)*p))
            p++;
        size_t kn = (size_t)(p - kw);
        const char *q = p;
        while (isspace((unsigned char)*q))
            q++;
        if (*q != '=') {
            rc = kbuf_append(out, kw, kn);
            continue;
        }
        q++;
        while (isspace((unsigned char)*q))
            q++;
        /* keyword, '=' and the spaces around it */
        rc = kbuf_append(out, kw, (size_t)(q - kw));
        if (rc != 0)
            break;
        const char *v = q;
        int quoted = *q == '\'';
        if (quoted) {
            q++;
            while (*q != '\0' && *q != '\'') {
                if (*q == '\\' && q[1] != '\0')
                    q++;
                q++;
            }
            if (*q == '\'')
                q++;
        } else {
            while (*q != '\0' && !isspace((unsigned char)*q)) {
                if (*q == '\\' && q[1] != '\0')
                    q++;
                q++;
            }
        }
        if (is_password_kw(kw, kn))
            rc = kbuf_append(out, quoted ? "'***'" : "***", quoted ? 5 : 3);
        else
            rc = kbuf_append(out, v, (size_t)(q - v));
        p = q;
    }
    return rc;
}

/* database_url with any password replaced by ***. In the URI form the
 * userinfo is taken to end at the last '@', so an unescaped '@' or '/' in a
 * password is still hidden (at worst too much is hidden). */
static int redact_dsn(const char *in, kbuf *out)
{
    size_t skip = 0;
    if (strncasecmp(in, "postgresql://", 13) == 0)
        skip = 13;
    else if (strncasecmp(in, "postgres://", 11) == 0)
        skip = 11;
    if (skip == 0)
        return redact_kv(in, out);
    const char *rest = in + skip;
    const char *at = strrchr(rest, '@');
    const char *colon = at != NULL ? memchr(rest, ':', (size_t)(at - rest)) : NULL;
    int rc;
    if (colon != NULL) {
        rc = kbuf_appendf(out, "%.*s***", (int)(colon + 1 - in), in);
        rest = at;
    } else {
        rc = kbuf_append(out, in, skip);
    }
    if (rc != 0)
        return rc;
    const char *q = strchr(rest, '?');
    if (q == NULL)
        return kbuf_append(out, rest, strlen(rest));
    rc = kbuf_append(out, rest, (size_t)(q + 1 - rest));
    if (rc != 0)
        return rc;
    return redact_query(q + 1, out);
}

int config_diff(const kycd_config *a, const kycd_config *b, int live, char *out, size_t cap)
{
    size_t o = 0;
    int n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < CONFIG_NKEYS; i++) {
        const cfg_entry *e = &config_table[i];
        if (!(e->flags & F_LIVE) != !live)
            continue;
        int same;
        if (e->type == T_STRING || e->type == T_LOGLEVEL) {
            const char *x = str_get(a, e), *y = str_get(b, e);
            same = (x == NULL && y == NULL) || (x != NULL && y != NULL && strcmp(x, y) == 0);
        } else {
            same = num_get(a, e) == num_get(b, e);
        }
        if (same)
            continue;
        n++;
        int w = snprintf(out + o, cap - o, "%s%s", o ? "," : "", e->key);
        if (w > 0 && (size_t)w < cap - o)
            o += (size_t)w;
    }
    return n;
}

void config_print(const kycd_config *cfg, FILE *out)
{
    for (size_t i = 0; i < CONFIG_NKEYS; i++) {
        const cfg_entry *e = &config_table[i];
        char tmp[32];
        const char *s;
        switch (e->type) {
        case T_STRING:
        case T_LOGLEVEL:
            s = str_get(cfg, e);
            if (e->flags & F_SECRET) {
                fprintf(out, "%s = %s\n", e->key, s != NULL && *s ? "(redacted)" : "(unset)");
            } else if (s == NULL) {
                fprintf(out, "%s = (unset)\n", e->key);
            } else if (*s == '\0') {
                fprintf(out, "%s = \"\"\n", e->key);
            } else if (e->flags & F_DSN) {
                kbuf b;
                kbuf_init(&b);
                /* Fail closed: if redaction cannot be done, show nothing. */
                if (redact_dsn(s, &b) == 0)
                    fprintf(out, "%s = %s\n", e->key, kbuf_str(&b));
                else
                    fprintf(out, "%s = (redacted)\n", e->key);
                if (b.data != NULL)
                    explicit_bzero(b.data, b.cap);
                kbuf_deinit(&b);
            } else {
                fprintf(out, "%s = %s\n", e->key, s);
            }
            break;
        case T_INT:
        case T_SIZE:
            fprintf(out, "%s = %lld\n", e->key, (long long)num_get(cfg, e));
            break;
        case T_DURATION:
            units_format_duration(num_get(cfg, e), tmp, sizeof tmp);
            fprintf(out, "%s = %s\n", e->key, tmp);
            break;
        case T_SECONDS:
            units_format_duration(num_get(cfg, e) * SEC, tmp, sizeof tmp);
            fprintf(out, "%s = %s\n", e->key, tmp);
            break;
        case T_BOOL:
            fprintf(out, "%s = %s\n", e->key, num_get(cfg, e) ? "on" : "off");
            break;
        }
    }
}
