/*
 * queue.h - what lib/ shares about crew_queue (not installed).
 *
 * Two kinds of queue sit behind the one public type, chosen at create:
 *  - the private queue (queue.c): one process, a pthread mutex and two
 *    condition variables; every thread-mode task travels through one;
 *  - the shared queue (shqueue.c, CREW_SHARED): state in MAP_SHARED memory
 *    that processes which may die or scribble share, with a futex lock
 *    that survives its holder and checks on everything it reads there.
 * Each begins with struct crew_queue, whose ops are its kind's; the public
 * calls check their arguments and call through them. Neither kind knows
 * what its items are: they are item_size bytes, copied by value.
 */
#ifndef CREW_QUEUE_INTERNAL_H
#define CREW_QUEUE_INTERNAL_H

#include "internal.h"

struct crew__queue_ops {
  /* Push up to n items, as many at a time as fit, until all are in, the
   * queue closes or d passes; *pushed gets how many went in. */
  int (*push)(crew_queue *q, const void *items, size_t n, size_t *pushed,
              crew__deadline d);
  /* Wait for an item (spinning up to spin_ns first), take up to max. */
  int (*pop)(crew_queue *q, void *items, size_t max, size_t *popped,
             crew__deadline d, uint64_t spin_ns);
  void (*close)(crew_queue *q);
  bool (*is_closed)(crew_queue *q);
  size_t (*size)(crew_queue *q);
  void (*destroy)(crew_queue *q);
};

struct crew_queue {
  /* CREW_SHARED: the state in the shared mapping; NULL for a private queue.
   * First, so that the fault tests find what a worker process can reach. */
  void *shared;
  const struct crew__queue_ops *ops;
  size_t capacity;  /* constant */
  size_t item_size; /* constant */
};

/* How long a blocking public pop spins on an empty queue before it
 * sleeps. */
#define CREW__QUEUE_SPIN_NS 20000u

/* crew_queue_pop_timed(), spinning up to spin_ns (0 or CREW_IDLE_SPIN_OFF:
 * not at all) instead of the public calls' 20 us before it sleeps on an
 * empty queue: how idle workers wait. */
int crew__queue_pop_spin(crew_queue *q, void *item, uint64_t timeout_ns,
                         uint64_t spin_ns);

/* ------------------------------------------------------------- shqueue.c */

/* Make a CREW_SHARED queue: 0, CREW_EINVAL or CREW_ENOMEM. */
int crew__shq_create(crew_queue **q, size_t capacity, size_t item_size);

/*
 * For a shared queue that only the calling process pushes to (pusher) or
 * pops from: it keeps its own count of that side and from then on treats
 * a shared counter that disagrees with it as corruption, like a count above
 * capacity (the queue is closed for this process).
 */
void crew__shq_own_side(crew_queue *q, bool pusher);

/* Whether this process found the shared state corrupt (so far). */
bool crew__shq_broken(const crew_queue *q);

/* Check the shared state now, under its lock: whether it is corrupt. */
bool crew__shq_verify(crew_queue *q);

/* Reset the waiter counts (after a process that may have died while
 * waiting): live waiters are woken and count themselves again. */
void crew__shq_forget_waiters(crew_queue *q);

#endif
