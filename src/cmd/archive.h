/* `kycd archive --before DATE --to DIR`: export the partitions wholly
 * before DATE (COPY, gzip, manifest, SHA-256). Exit codes as in cmd.h. */
#ifndef KYCD_CMD_ARCHIVE_H
#define KYCD_CMD_ARCHIVE_H

#include "cmd/cmd.h"

int cmd_archive(int argc, char **argv, const cmd_ctl *ctl);

#endif
