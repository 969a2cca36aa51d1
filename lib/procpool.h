/*
 * procpool.h - the process-mode side of a crew_pool (see procpool.c). pool.c
 * checks arguments, the fork guard and the pool's state, then calls these.
 */
#ifndef CREW_PROCPOOL_H
#define CREW_PROCPOOL_H

#include "histogram.h"
#include "internal.h"

struct crew__procpool;

/* Start the shared memory, the manager thread, the fork server and every
 * worker; returns once all workers were started. */
int crew__procpool_create(struct crew__procpool **pp, crew_pool *pool,
                          const crew_config *cfg, size_t nworkers);

/* Process-mode argument checks, made before the pool's state is looked at:
 * 0 or CREW_EINVAL. */
int crew__procpool_check_submit(const struct crew__procpool *pp, crew_fn fn,
                                size_t in_size, size_t out_size);
int crew__procpool_check_map(const struct crew__procpool *pp, crew_fn fn,
                             const void *in, size_t in_stride, const void *out,
                             size_t out_stride);

int crew__procpool_submit(struct crew__procpool *pp, crew_fn fn, const void *in,
                          size_t in_size, size_t out_size, crew_future **future,
                          uint64_t timeout_ns);

int crew__procpool_map(struct crew__procpool *pp, crew_fn fn, const void *in,
                       size_t in_stride, void *out, size_t out_stride,
                       size_t count);

/* The pool's state word, in memory the workers share (see pool.c). */
_Atomic int *crew__procpool_state(struct crew__procpool *pp);

/* After the state word left OPEN: stop taking tasks; CREW_CANCEL also
 * cancels what is queued. */
void crew__procpool_begin_stop(struct crew__procpool *pp, int how);

/* Wait until every task is settled, every worker reaped and every done
 * callback run. */
void crew__procpool_join(struct crew__procpool *pp);

/* Whether the calling thread is one the pool would join (its callback
 * thread, where done callbacks run). */
bool crew__procpool_owns_thread(const struct crew__procpool *pp);

/* Free everything; after crew__procpool_join(). */
void crew__procpool_destroy(struct crew__procpool *pp);

void crew__procpool_stats(struct crew__procpool *pp, crew_stats *st);

/* The manager's latency histograms: [0] queue wait, [1] run. */
void crew__procpool_histograms(struct crew__procpool *pp,
                               struct crew__hist *h[2]);

bool crew__procpool_cancel(struct crew__procpool *pp, uint32_t entry,
                           uint64_t ticket);

#endif
