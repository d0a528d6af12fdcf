/* Configuration: the loader that layers defaults, a `key = value` file,
 * KYCD_* environment variables and command-line flags over the key table
 * (config_keys.c), each value parsed once into its typed slot; and the
 * release of a loaded configuration.
 *
 * Must never: put a secret's value into an error message or the printed
 * configuration, accept a secret on the command line, or ignore an unknown
 * key, variable or flag (a typo must stop the daemon, not run it with a
 * default). Secret strings are wiped before their memory is freed. */
#include "io/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/units.h"
#include "io/config_internal.h"

/* A file read through `<key>_file` larger than this is a mistake. */
#define VALUE_FILE_MAX (1 << 20)

/* Every string is wiped: database_url may hold a password too. */
static void str_free(char *s)
{
    if (s == NULL)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

static void str_replace(char **slot, char *s)
{
    str_free(*slot);
    *slot = s;
}

static int check_range(const cfg_entry *e, int64_t v, const char *where, const char *shown,
                       kerr *err)
{
    if (v >= e->min && v <= e->max)
        return 0;
    char lo[32], hi[32];
    if (e->type == T_DURATION || e->type == T_SECONDS) {
        int64_t m = e->type == T_SECONDS ? SEC : 1;
        units_format_duration(e->min * m, lo, sizeof lo);
        units_format_duration(e->max * m, hi, sizeof hi);
    } else {
        snprintf(lo, sizeof lo, "%lld", (long long)e->min);
        snprintf(hi, sizeof hi, "%lld", (long long)e->max);
    }
    return kerr_set(err, KERR_INVALID, "%s: bad value '%s' for %s: out of range (%s to %s%s)",
                    where, shown, e->key, lo, hi, e->type == T_SIZE ? " bytes" : "");
}

/* Parse `value` for entry e and store it. `where` says which line, variable
 * or flag it came from. Secret values never reach a message. */
static int apply_value(kycd_config *cfg, const cfg_entry *e, const char *value, const char *where,
                       kerr *err)
{
    kerr perr;
    int rc = 0;
    int64_t v = 0;
    int b = 0;
    kerr_clear(&perr);
    /* For secrets and the conninfo the value is not quoted; neither is
     * validated here today, but the rule must hold for whoever adds a check. */
    int hide = (e->flags & (F_SECRET | F_DSN)) != 0;
    const char *shown = hide ? "(not shown)" : value;

    switch (e->type) {
    case T_STRING:
    case T_LOGLEVEL: {
        if (e->type == T_LOGLEVEL && klog_level_parse(value) < 0) {
            rc = kerr_set(err, KERR_INVALID,
                          "%s: bad value '%s' for %s: use debug, info, warn or error", where, shown,
                          e->key);
            goto out;
        }
        /* An empty value unsets a key that is unset by default, so that a
         * later layer can take back an earlier one's setting. */
        char *s = NULL;
        if (*value != '\0' || e->sdef != NULL) {
            s = strdup(value);
            if (s == NULL) {
                rc = kerr_set(err, KERR_NOMEM, "%s: out of memory", where);
                goto out;
            }
        }
        str_replace(str_slot(cfg, e), s);
        goto out;
    }
    case T_INT:
        rc = units_int(value, e->min, e->max, &v, &perr);
        break;
    case T_SIZE:
        rc = units_size(value, &v, &perr);
        break;
    case T_DURATION:
    case T_SECONDS:
        rc = units_duration_ms(value, &v, &perr);
        if (rc == 0 && e->type == T_SECONDS) {
            if (v % SEC != 0)
                rc = kerr_set(&perr, KERR_INVALID, "use whole seconds");
            else
                v /= SEC;
        }
        break;
    case T_BOOL:
        rc = units_bool(value, &b, &perr);
        v = b;
        break;
    }
    if (rc != 0) {
        rc = kerr_set(err, rc, "%s: bad value '%s' for %s: %s", where, shown, e->key, perr.msg);
        goto out;
    }
    rc = check_range(e, v, where, shown, err);
    if (rc != 0)
        goto out;
    *num_slot(cfg, e) = v;
out:
    return rc;
}

/* Read a value file whole, trailing newlines and CRs stripped. The buffer
 * grows by copying so that no unwiped copy of a secret is left behind. */
static int read_value_file(const cfg_entry *e, const char *path, const char *where, char **out,
                           kerr *err)
{
    int rc = 0;
    size_t cap = 4096, len = 0;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        rc = kerr_set(err, KERR_IO, "%s: %s_file: cannot read '%s': %s", where, e->key, path,
                      strerror(errno));
        goto out;
    }
    buf = malloc(cap);
    if (buf == NULL) {
        rc = kerr_set(err, KERR_NOMEM, "%s: out of memory", where);
        goto out;
    }
    for (;;) {
        if (len + 1 == cap) {
            if (cap > VALUE_FILE_MAX) {
                rc = kerr_set(err, KERR_TOOBIG, "%s: %s_file: '%s' is larger than %d bytes", where,
                              e->key, path, VALUE_FILE_MAX);
                goto out;
            }
            char *nb = malloc(cap * 2);
            if (nb == NULL) {
                rc = kerr_set(err, KERR_NOMEM, "%s: out of memory", where);
                goto out;
            }
            memcpy(nb, buf, len);
            explicit_bzero(buf, cap);
            free(buf);
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - 1 - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        rc = kerr_set(err, KERR_IO, "%s: %s_file: cannot read '%s': %s", where, e->key, path,
                      strerror(errno));
        goto out;
    }
    buf[len] = '\0';
    if (memchr(buf, '\0', len) != NULL) {
        rc = kerr_set(err, KERR_INVALID, "%s: %s_file: '%s' contains a NUL byte", where, e->key,
                      path);
        goto out;
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    *out = buf;
    buf = NULL;
out:
    if (buf != NULL) {
        explicit_bzero(buf, cap);
        free(buf);
    }
    if (f != NULL)
        fclose(f);
    return rc;
}

/* One setting from one layer: `raw` is the value, or for is_file the path
 * of the file holding it. `seen` (one per layer) refuses a key given both
 * plainly and as `_file` in the same layer: which one wins would depend on
 * the order of the environment. */
static int apply_setting(kycd_config *cfg, unsigned char *seen, enum layer layer,
                         const cfg_entry *e, int is_file, const char *raw, const char *where,
                         kerr *err)
{
    int rc = 0;
    char *content = NULL;
    size_t idx = (size_t)(e - config_table);
    unsigned char bit = is_file ? 2 : 1;
    if (seen[idx] & (bit ^ 3)) {
        char a[64], b[64];
        config_form_name(layer, e, 0, a, sizeof a);
        config_form_name(layer, e, 1, b, sizeof b);
        rc = kerr_set(err, KERR_CONFIG, "%s: %s and %s both given: use one", where, a, b);
        goto out;
    }
    seen[idx] |= bit;
    if (is_file) {
        rc = read_value_file(e, raw, where, &content, err);
        if (rc != 0)
            goto out;
        raw = content;
    }
    rc = apply_value(cfg, e, raw, where, err);
out:
    str_free(content);
    return rc;
}

static int set_defaults(kycd_config *cfg, kerr *err)
{
    for (size_t i = 0; i < CONFIG_NKEYS; i++) {
        const cfg_entry *e = &config_table[i];
        if (!is_str_type(e->type)) {
            *num_slot(cfg, e) = e->ndef;
            continue;
        }
        if (e->sdef == NULL)
            continue;
        char *s = strdup(e->sdef);
        if (s == NULL)
            return kerr_set(err, KERR_NOMEM, "config defaults: out of memory");
        *str_slot(cfg, e) = s;
    }
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* `key = value` lines; `#` starts a comment only at the beginning of a line,
 * because values (tokens, passwords, URLs) may contain `#`. */
static int load_file(kycd_config *cfg, const char *path, kerr *err)
{
    int rc = 0;
    unsigned char seen[CONFIG_NKEYS] = {0};
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        rc = kerr_set(err, KERR_IO, "config file %s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (eq == NULL || eq == s) {
            /* The line is not quoted back: it may be a stray secret. */
            rc = kerr_set(err, KERR_CONFIG, "config file %s line %d: expected 'key = value'", path,
                          lineno);
            goto out;
        }
        *eq = '\0';
        char *key = trim(s);
        char *value = trim(eq + 1);
        size_t vn = strlen(value);
        if (vn >= 2 && value[0] == '"' && value[vn - 1] == '"') {
            value[vn - 1] = '\0';
            value++;
        }
        int is_file = 0;
        const cfg_entry *e = config_lookup(L_FILE, key, strlen(key), &is_file);
        if (e == NULL) {
            rc = kerr_set(err, KERR_CONFIG, "config file %s line %d: unknown key '%.64s'", path,
                          lineno, key);
            goto out;
        }
        char where[320];
        snprintf(where, sizeof where, "config file %.200s line %d", path, lineno);
        rc = apply_setting(cfg, seen, L_FILE, e, is_file, value, where, err);
        if (rc != 0)
            goto out;
    }
    if (ferror(f)) {
        rc = kerr_set(err, KERR_IO, "config file %s: read error: %s", path, strerror(errno));
        goto out;
    }
out:
    if (line != NULL) {
        explicit_bzero(line, cap);
        free(line);
    }
    if (f != NULL)
        fclose(f);
    return rc;
}

static const char *env_get(char **envp, const char *name)
{
    size_t n = strlen(name);
    for (char **p = envp; p != NULL && *p != NULL; p++)
        if (strncmp(*p, name, n) == 0 && (*p)[n] == '=')
            return *p + n + 1;
    return NULL;
}

static int load_env(kycd_config *cfg, char **envp, kerr *err)
{
    unsigned char seen[CONFIG_NKEYS] = {0};
    for (char **p = envp; p != NULL && *p != NULL; p++) {
        const char *s = *p;
        const char *eq = strchr(s, '=');
        if (strncmp(s, "KYCD_", 5) != 0 || eq == NULL)
            continue;
        size_t n = (size_t)(eq - s);
        if (n == strlen("KYCD_CONFIG") && memcmp(s, "KYCD_CONFIG", n) == 0)
            continue;
        int is_file = 0;
        const cfg_entry *e = config_lookup(L_ENV, s, n, &is_file);
        if (e == NULL)
            return kerr_set(err, KERR_CONFIG, "unknown environment variable %.*s", (int)n, s);
        char where[96];
        snprintf(where, sizeof where, "environment %.*s", (int)n, s);
        int rc = apply_setting(cfg, seen, L_ENV, e, is_file, eq + 1, where, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Take the flag at argv[*i] (and its value, which may be the next element).
 * *e is NULL for --config. Secrets are refused before their value is looked
 * at; unknown flags are named without anything after '='. */
static int argv_next(int argc, char **argv, int *i, const cfg_entry **e, int *is_file,
                     const char **value, kerr *err)
{
    const char *arg = argv[*i];
    if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
        return kerr_set(err, KERR_CONFIG, "unexpected argument '%.64s'", arg);
    const char *eq = strchr(arg, '=');
    size_t n = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    *is_file = 0;
    if (n == strlen("--config") && memcmp(arg, "--config", n) == 0) {
        *e = NULL;
    } else {
        *e = config_lookup(L_FLAG, arg, n, is_file);
        if (*e == NULL)
            return kerr_set(err, KERR_CONFIG, "unknown flag '%.*s'", (int)(n > 64 ? 64 : n), arg);
        if (((*e)->flags & F_SECRET) && !*is_file) {
            char flag[64], env[64];
            config_form_name(L_FLAG, *e, 0, flag, sizeof flag);
            config_form_name(L_ENV, *e, 1, env, sizeof env);
            return kerr_set(err, KERR_CONFIG,
                            "%s is a secret: pass it through %s or the config file, not the "
                            "command line",
                            flag, env);
        }
    }
    if (eq != NULL) {
        *value = eq + 1;
    } else if (*i + 1 < argc) {
        *value = argv[++*i];
    } else {
        return kerr_set(err, KERR_CONFIG, "flag %.*s needs a value", (int)(n > 64 ? 64 : n), arg);
    }
    return 0;
}

/* First pass: validate every flag and find --config (the last one wins). */
static int scan_argv(int argc, char **argv, const char **config_path, kerr *err)
{
    for (int i = 0; i < argc; i++) {
        const cfg_entry *e;
        const char *value;
        int is_file;
        int rc = argv_next(argc, argv, &i, &e, &is_file, &value, err);
        if (rc != 0)
            return rc;
        if (e == NULL)
            *config_path = value;
    }
    return 0;
}

static int load_argv(kycd_config *cfg, int argc, char **argv, kerr *err)
{
    unsigned char seen[CONFIG_NKEYS] = {0};
    for (int i = 0; i < argc; i++) {
        const cfg_entry *e;
        const char *value;
        int is_file;
        int rc = argv_next(argc, argv, &i, &e, &is_file, &value, err);
        if (rc != 0)
            return rc;
        if (e == NULL)
            continue;
        char where[96];
        char name[64];
        config_form_name(L_FLAG, e, is_file, name, sizeof name);
        snprintf(where, sizeof where, "flag %s", name);
        rc = apply_setting(cfg, seen, L_FLAG, e, is_file, value, where, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int config_load(kycd_config *cfg, char **envp, int argc, char **argv, kerr *err)
{
    int rc;
    memset(cfg, 0, sizeof *cfg);
    rc = set_defaults(cfg, err);
    if (rc != 0)
        goto out;
    const char *path = env_get(envp, "KYCD_CONFIG");
    rc = scan_argv(argc, argv, &path, err);
    if (rc != 0)
        goto out;
    if (path != NULL && *path != '\0') {
        rc = load_file(cfg, path, err);
        if (rc != 0)
            goto out;
    }
    rc = load_env(cfg, envp, err);
    if (rc != 0)
        goto out;
    rc = load_argv(cfg, argc, argv, err);
out:
    if (rc != 0)
        config_deinit(cfg);
    return rc;
}

void config_deinit(kycd_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < CONFIG_NKEYS; i++)
        if (is_str_type(config_table[i].type))
            str_replace(str_slot(cfg, &config_table[i]), NULL);
    /* digests of the tokens: not secrets, but no reason to leave them */
    explicit_bzero(&cfg->tokens, sizeof cfg->tokens);
    memset(cfg, 0, sizeof *cfg);
}
