/* Private to the configuration module (src/io/config*.c): the key table's
 * types and flags, the table itself (config_keys.c) and the spelling of a
 * key's name in each layer. Not an API: nothing outside io/config*.c may
 * include it. It must never hold a value: values live in kycd_config. */
#ifndef KYCD_IO_CONFIG_INTERNAL_H
#define KYCD_IO_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "io/config.h"

enum cfg_type {
    T_STRING,
    T_INT,      /* int64_t within [min, max] */
    T_SIZE,     /* bytes within [min, max] */
    T_DURATION, /* milliseconds within [min, max] */
    T_SECONDS,  /* a duration in whole seconds, stored as seconds */
    T_BOOL,     /* 0 or 1, stored as int64_t */
    T_LOGLEVEL, /* string accepted by klog_level_parse */
};

enum {
    F_SECRET = 1,  /* refused on the command line, printed as (redacted) */
    F_FILE_OK = 2, /* a `<key>_file` form reads the value from a file */
    F_DSN = 4,     /* libpq conninfo: its password is redacted when printed */
    F_LIVE = 8,    /* a reload (SIGHUP) applies it to a running kycd serve */
};

/* Where a value came from; decides the spelling of names. */
enum layer { L_FILE, L_ENV, L_FLAG };

typedef struct cfg_entry {
    const char *key;
    enum cfg_type type;
    int flags;
    size_t off;       /* into kycd_config */
    int64_t min, max; /* numbers, in the stored unit */
    const char *sdef; /* strings: default, NULL = unset */
    int64_t ndef;     /* numbers: default, in the stored unit */
    /* The documentation: the README's table and kycd.conf(5) are printed
     * from these (config_reference). Markdown: `code` and [text](#anchor). */
    const char *desc;
    const char *note; /* shown after the default, in parentheses; NULL: none */
} cfg_entry;

#define SEC 1000LL
#define DAY (86400LL * SEC)

/* The keys, in the order they are printed and documented (config_keys.c,
 * which checks this count against the table). */
#define CONFIG_NKEYS 55
extern const cfg_entry config_table[];

static inline char **str_slot(kycd_config *cfg, const cfg_entry *e)
{
    return (char **)(void *)((char *)cfg + e->off);
}

static inline const char *str_get(const kycd_config *cfg, const cfg_entry *e)
{
    return *(char *const *)(const void *)((const char *)cfg + e->off);
}

static inline int64_t *num_slot(kycd_config *cfg, const cfg_entry *e)
{
    return (int64_t *)(void *)((char *)cfg + e->off);
}

static inline int64_t num_get(const kycd_config *cfg, const cfg_entry *e)
{
    return *(const int64_t *)(const void *)((const char *)cfg + e->off);
}

static inline int is_str_type(enum cfg_type t)
{
    return t == T_STRING || t == T_LOGLEVEL;
}

/* The name of a key as spelled in a layer: `max_body`, `KYCD_MAX_BODY`,
 * `--max-body`, with `_file` / `_FILE` / `-file` appended for is_file. */
void config_form_name(enum layer layer, const cfg_entry *e, int is_file, char *buf, size_t len);

/* The entry named `name[0..n)` in a layer's spelling, or NULL; *is_file is
 * set when the name is the `_file` form. */
const cfg_entry *config_lookup(enum layer layer, const char *name, size_t n, int *is_file);

#endif
