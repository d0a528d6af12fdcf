/* `kycd replay --since T [--until T] [--user ID] [--dry-run]`: run the
 * stored raw deliveries received in [T, until) again through the current
 * rules (README "Quarantine and replay"): a quarantined one they now accept
 * is applied as the late webhook it is; anything already stored is a repeat
 * and changes nothing. Every run is recorded in kyc.replay_runs. Exit codes
 * as in cmd.h. */
#ifndef KYCD_CMD_REPLAY_H
#define KYCD_CMD_REPLAY_H

#include "cmd/cmd.h"

int cmd_replay(int argc, char **argv, const cmd_ctl *ctl);

#endif
