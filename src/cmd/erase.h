/* `kycd erase USER --reason TEXT`: an erasure request carried out as
 * pseudonymisation (docs/erasure.md): the user's externalUserId replaced,
 * everywhere kycd stores it, by a keyed pseudonym (erase_key), in one
 * transaction, recorded in kyc.erasures (who, when, why, the pseudonym). */
#ifndef KYCD_CMD_ERASE_H
#define KYCD_CMD_ERASE_H

#include "cmd/cmd.h"

/* Exit 0 when erased (or erased before and nothing holds the id); 3 when
 * kycd holds nothing about the user and never erased it; 2 for bad usage
 * or a missing or short erase_key; 1 when the database fails. */
int cmd_erase(int argc, char **argv, const cmd_ctl *ctl);

#endif
