/* systemd's notify protocol (sd_notify(3), without libsystemd): a state
 * such as "READY=1" sent as one datagram to the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace). Without
 * $NOTIFY_SOCKET (not started by systemd with Type=notify) every call does
 * nothing. */
#ifndef KYCD_IO_SDNOTIFY_H
#define KYCD_IO_SDNOTIFY_H

#include <stdint.h>

/* Send state (e.g. "READY=1\nSTATUS=serving"). 0 when sent or when there
 * is no $NOTIFY_SOCKET; -1 when the send failed (the caller logs it once,
 * never stops for it). */
int sdnotify(const char *state);

/* The watchdog interval systemd asked for ($WATCHDOG_USEC, when
 * $WATCHDOG_PID is unset or ours), in milliseconds; 0: no watchdog. Send
 * "WATCHDOG=1" at least twice per interval. */
int64_t sdnotify_watchdog_ms(void);

#endif
