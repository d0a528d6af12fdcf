/* `kycd serve`: the HTTPS webhook receiver, with the durable ingest (database
 * or spool) and, unless reconcile = off, the reconciler thread. Runs until
 * the first SIGTERM/SIGINT (through the cmd_ctl main passes), then drains:
 * new requests get 503, the reconciler makes no new P100 call, in-flight
 * requests get shutdown_timeout to finish; the whole stop is bounded by
 * main (shutdown_timeout + p100_timeout + 5 s), and a second signal during
 * it stops at once.
 *
 * Readiness (/readyz) is composed here: the database or spool can take a
 * delivery (ingest) and P100 accepts our key (reconciler). It lives here and
 * not in app/ because serve is what creates and owns both parts, and which
 * parts exist depends on serve's configuration (no reconciler with
 * reconcile = off); the app modules stay independent of each other. */
#ifndef KYCD_CMD_SERVE_H
#define KYCD_CMD_SERVE_H

#include "cmd/cmd.h"

/* Exit 0 after a graceful stop; 2 when the configuration is refused (it
 * cannot be loaded, no or bad token, no certificate, no API key for the
 * reconciler, TLS files refused); 1 for other failures at start (database
 * not ready, spool locked, port taken...). ctl must not be NULL. */
int cmd_serve(int argc, char **argv, const cmd_ctl *ctl);

#endif
