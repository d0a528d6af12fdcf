/* The slow-client watchdog (core/slowrate.h decides; this measures and
 * cuts). Each worker thread of the server has a slot saying what its TLS
 * connection is doing; a thread sweeps the slots every 50 ms and shuts
 * down the socket of a connection sending too slowly. Used by server.c
 * only, from CivetWeb's worker threads and its own. */
#ifndef KYCD_APP_SLOWWATCH_H
#define KYCD_APP_SLOWWATCH_H

#include <stdatomic.h>

#include "base/err.h"
#include "core/slowrate.h"

typedef struct slow_watch slow_watch;

/* Slots for threads workers, cuts counted in *cut_total. Nothing is cut
 * until slow_watch_run. */
int slow_watch_new(slow_watch **out, const slow_policy *p, int threads, atomic_llong *cut_total,
                   kerr *err) KYCD_MUST_CHECK;

/* Start the sweeping thread. */
int slow_watch_run(slow_watch *w, kerr *err) KYCD_MUST_CHECK;

/* Stop the thread (if running) and free; NULL is fine. */
void slow_watch_free(slow_watch *w);

/* On the worker: its connection (socket fd) begins its TLS handshake. */
void slow_watch_handshake(slow_watch *w, int fd);

/* On the worker: its connection enters phase ph (no-op for a plain one). */
void slow_watch_enter(slow_watch *w, slow_phase ph);

/* On the worker: its connection is closing (fd is about to be reused). */
void slow_watch_close(slow_watch *w);

/* On the worker: 1 when the watchdog cut its connection (the cut is
 * counted and logged there, so the worker says nothing more of it). */
int slow_watch_was_cut(void);

#endif
