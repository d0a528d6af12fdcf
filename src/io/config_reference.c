/* The reference of every configuration key, printed from the key table:
 * the README's table (markdown) and kycd.conf(5)'s KEYS section (roff).
 *
 * Must never: print a value from a running configuration (only the table's
 * defaults), or document a key anywhere but in its table entry. */
#include "io/config_reference.h"

#include <stdio.h>
#include <string.h>

#include "base/units.h"
#include "io/config_internal.h"

/* The default as the documentation shows it: `value`, `""` or unset, then
 * the note in parentheses. */
static void reference_default(const cfg_entry *e, char *buf, size_t cap)
{
    char tmp[32];
    const char *v = tmp;
    switch (e->type) {
    case T_STRING:
    case T_LOGLEVEL:
        v = e->sdef;
        break;
    case T_INT:
        snprintf(tmp, sizeof tmp, "%lld", (long long)e->ndef);
        break;
    case T_SIZE:
        units_format_size(e->ndef, tmp, (int)sizeof tmp);
        break;
    case T_DURATION:
    case T_SECONDS:
        units_format_duration(e->type == T_SECONDS ? e->ndef * SEC : e->ndef, tmp, (int)sizeof tmp);
        break;
    case T_BOOL:
        v = e->ndef ? "on" : "off";
        break;
    }
    int n = v == NULL    ? snprintf(buf, cap, "unset")
            : *v == '\0' ? snprintf(buf, cap, "`\"\"`")
                         : snprintf(buf, cap, "`%s`", v);
    if (e->note != NULL && n >= 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, " (%s)", e->note);
}

/* The table's markdown (`code`, [text](#anchor)) as roff: code in bold,
 * links as their text, backslashes and the hyphens in code escaped, UTF-8
 * as \[uXXXX], and a leading control character made harmless. */
static void put_roff(const char *s, FILE *out)
{
    int code = 0;
    const char *close, *end;
    if (*s == '.' || *s == '\'')
        fputs("\\&", out);
    for (; *s != '\0'; s++) {
        if (*s == '`') {
            code = !code;
            fputs(code ? "\\fB" : "\\fR", out);
        } else if (*s == '[' && !code && (close = strchr(s, ']')) != NULL && close[1] == '(' &&
                   (end = strchr(close, ')')) != NULL) {
            for (const char *p = s + 1; p < close; p++)
                fputc(*p, out);
            s = end;
        } else if (*s == '\\') {
            fputs("\\e", out);
        } else if (*s == '-' && code) {
            fputs("\\-", out);
        } else if (*s == ':' && code) {
            fputs(":\\:", out); /* a place to break a long list */
        } else if ((unsigned char)*s >= 0xc0 && (unsigned char)*s < 0xf0 &&
                   ((unsigned char)s[1] & 0xc0) == 0x80) {
            /* UTF-8 (two or three bytes, as "×" or "µ") as a roff escape */
            unsigned c = (unsigned char)*s, cp;
            if (c < 0xe0) {
                cp = (c & 0x1fu) << 6 | ((unsigned char)s[1] & 0x3fu);
                s += 1;
            } else {
                cp = (c & 0x0fu) << 12 | ((unsigned char)s[1] & 0x3fu) << 6 |
                     ((unsigned char)s[2] & 0x3fu);
                s += s[2] != '\0' ? 2 : 1;
            }
            fprintf(out, "\\[u%04X]", cp);
        } else {
            fputc(*s, out);
        }
    }
}

void config_reference(enum config_ref_format fmt, FILE *out)
{
    char def[512], env[64], flag[64];
    if (fmt == CONFIG_REF_MARKDOWN) {
        fputs("| key (env `KYCD_...`) | default | meaning |\n| --- | --- | --- |\n", out);
    }
    for (size_t i = 0; i < CONFIG_NKEYS; i++) {
        const cfg_entry *e = &config_table[i];
        reference_default(e, def, sizeof def);
        if (fmt == CONFIG_REF_MARKDOWN) {
            fprintf(out, "| `%s`%s | %s | %s |\n", e->key, e->flags & F_SECRET ? " (secret)" : "",
                    def, e->desc);
            continue;
        }
        config_form_name(L_ENV, e, 0, env, sizeof env);
        config_form_name(L_FLAG, e, 0, flag, sizeof flag);
        fprintf(out, ".TP\n.B %s\n", e->key);
        fprintf(out, "Default: ");
        put_roff(def, out);
        fprintf(out, ". Environment: \\fB%s\\fR", env);
        if (e->flags & F_SECRET) {
            fputs(". A secret: never accepted as a flag, never printed", out);
        } else {
            char code[80];
            snprintf(code, sizeof code, "`%s`", flag);
            fputs(". Flag: ", out);
            put_roff(code, out);
        }
        if (e->flags & F_FILE_OK)
            fprintf(out, ". Also read from a file named by \\fB%s_file\\fR", e->key);
        if (e->flags & F_LIVE)
            fputs(". Applied by a reload (SIGHUP)", out);
        fputs(".\n.br\n", out);
        put_roff(e->desc, out);
        fputs(".\n", out);
    }
}
