/* `kycd vocabulary`: prints the vocabulary tables of core/vocab.c, P100's
 * documented values and kycd's own codes, one value a line:
 *   FIELD <tab> p100|kycd <tab> VALUE
 * in table order. What the tests compare with docs/p100-api.md and
 * kyc.p100_values(), and where every generator of test data takes P100's
 * values from. Needs no configuration. */
#ifndef KYCD_CMD_VOCABULARY_H
#define KYCD_CMD_VOCABULARY_H

#include "cmd/cmd.h"

/* --p100: P100's tables only. Exit 0; 2 for an unknown argument. */
int cmd_vocabulary(int argc, char **argv, const cmd_ctl *ctl);

#endif
