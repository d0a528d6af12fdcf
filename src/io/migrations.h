/* The schema migrations compiled into kycd (generated from sql/ at build
 * time by sql/embed.cmake), in ascending version order. */
#ifndef KYCD_IO_MIGRATIONS_H
#define KYCD_IO_MIGRATIONS_H

#include <stddef.h>

struct migration {
    int version;        /* NNN of sql/NNN_name.sql */
    const char *name;   /* file name without .sql */
    const char *sha256; /* hex digest of the file, to detect edits */
    const char *sql;    /* the file's text */
};

extern const struct migration kycd_migrations[];
extern const size_t kycd_migrations_count;

#endif
