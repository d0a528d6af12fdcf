/* The reference of every configuration key, printed from the key table. */
#ifndef KYCD_IO_CONFIG_REFERENCE_H
#define KYCD_IO_CONFIG_REFERENCE_H

#include <stdio.h>

/* The reference of every key, in table order, from the table's own
 * defaults and descriptions: the one source of the README's table
 * (CONFIG_REF_MARKDOWN: a markdown table, header included) and of
 * kycd.conf(5)'s KEYS section (CONFIG_REF_MAN: one roff .TP paragraph per
 * key, with its variable, flag, `_file` form and whether a reload applies
 * it). Printed by `kycd config --reference markdown|man`. */
enum config_ref_format { CONFIG_REF_MARKDOWN, CONFIG_REF_MAN };
void config_reference(enum config_ref_format fmt, FILE *out);

#endif
