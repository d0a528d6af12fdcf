/* `kycd attention list|retry`: on-call's view of the users the reconciler
 * flagged for a person (attention_reason) and the way to give them back to
 * it: `retry USER` or `retry --all`, each with an optional --reason TEXT,
 * each recorded in kyc.attention_actions (who, when, why, which users). */
#ifndef KYCD_CMD_ATTENTION_H
#define KYCD_CMD_ATTENTION_H

#include "cmd/cmd.h"

/* Exit 0; 2 for bad usage; 1 when the database fails. */
int cmd_attention(int argc, char **argv, const cmd_ctl *ctl);

#endif
