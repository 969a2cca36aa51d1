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

#include <stdalign.h>
#include <string.h>

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

/* -------------------------------------- the thread pool's private queue */

/* With the queue's lock held, after a push: whether that push may leave
 * one item to a popper that spins (`spinning` 1 -> 2: once per spin; the
 * spinner looks again under the lock when its spin ends). Both queues'
 * pushes wake one sleeper fewer when it returns true. */
static inline bool crew__queue_spinner_takes(_Atomic uint32_t *spinning)
{
  uint32_t spinner = 1;
  return atomic_load_explicit(spinning, memory_order_relaxed) == 1 &&
         atomic_compare_exchange_strong_explicit(
             spinning, &spinner, 2, memory_order_relaxed, memory_order_relaxed);
}

/* What crew__queue_take returns when `idle` found work elsewhere. */
#define CREW__ELSEWHERE 1

/*
 * The private queue, seen from the thread pool's hot path (the rest of it
 * is queue.c's own). `lock` guards everything but the constants; see
 * queue.c for the waking and spinning rules.
 */
enum { CREW__POPPER, CREW__PUSHER };
struct crew__pqueue {
  struct crew_queue q; /* shared NULL, ops, capacity, item_size */
  size_t mask;         /* capacity - 1 if a power of two, else 0 */
  alignas(64) crew__mutex lock;
  _Atomic uint64_t head, tail;
  _Atomic uint32_t waiting[2]; /* sleepers of each side */
  uint32_t signalled[2];       /* signals they have not taken yet */
  _Atomic uint32_t closed;
  /* What an idle popper spins on, on a line of its own: */
  alignas(64) _Atomic uint32_t items; /* bumped by a push onto an empty queue */
  _Atomic uint32_t spinning;    /* 1: a popper spins; 2: a push counts on it */
  alignas(64) crew__cond cv[2]; /* [CREW__POPPER]: not empty */
  alignas(64) unsigned char ring[];
};

/* With the lock held: the general push (wrap, wait, close), or with item
 * NULL (pushed already) the signal for a sleeping popper; then unlock. */
int crew__queue_put_slow(crew_queue *q, const void *item, crew__deadline d);

/*
 * A push in place, in two steps, for the common case: room in a
 * power-of-two ring that is open. crew__queue_put_begin locks q and
 * returns the ring slot the next item goes to, for the caller to write;
 * NULL (q unlocked) when that case does not hold: push through
 * crew__queue_put instead. crew__queue_put_end publishes the item, signals
 * a popper only if one sleeps that nobody has signalled, and unlocks.
 */
static inline void *crew__queue_put_begin(crew_queue *q, size_t size)
{
  struct crew__pqueue *p = (struct crew__pqueue *)q;
  if (p->mask == 0) /* constant: never lock twice */
    return NULL;
  crew__mutex_lock(&p->lock);
  uint64_t tail = atomic_load_explicit(&p->tail, memory_order_relaxed);
  if (tail - atomic_load_explicit(&p->head, memory_order_relaxed) >=
          p->q.capacity ||
      atomic_load_explicit(&p->closed, memory_order_relaxed)) {
    crew__mutex_unlock(&p->lock);
    return NULL;
  }
  return p->ring + (size_t)(tail & p->mask) * size;
}

static inline int crew__queue_put_end(crew_queue *q)
{
  struct crew__pqueue *p = (struct crew__pqueue *)q;
  uint64_t tail = atomic_load_explicit(&p->tail, memory_order_relaxed);
  if (tail == atomic_load_explicit(&p->head, memory_order_relaxed)) {
    uint32_t items = atomic_load_explicit(&p->items, memory_order_relaxed);
    atomic_store_explicit(&p->items, items + 1, /* was empty: tell a spinner */
                          memory_order_release);
  }
  atomic_store_explicit(&p->tail, tail + 1, memory_order_release);
  (void)CREW__HOOK(CREW_TP_ENQUEUE, q);
  if (atomic_load_explicit(&p->waiting[CREW__POPPER], memory_order_relaxed) !=
      p->signalled[CREW__POPPER])
    return crew__queue_put_slow(q, NULL, (crew__deadline){0});
  crew__mutex_unlock(&p->lock);
  return 0;
}

/*
 * Push one item of `size` bytes (the queue's item size, a constant at the
 * call, so the copy is a few moves) onto a private queue, waiting until d
 * for room: 0, CREW_ETIMEDOUT or CREW_ECLOSED. Inline when
 * crew__queue_put_begin finds room.
 */
static inline int crew__queue_put(crew_queue *q, const void *item, size_t size,
                                  crew__deadline d)
{
  void *at = crew__queue_put_begin(q, size);
  if (at == NULL) {
    crew__mutex_lock(&((struct crew__pqueue *)q)->lock);
    return crew__queue_put_slow(q, item, d);
  }
  memcpy(at, item, size);
  return crew__queue_put_end(q);
}

/* How many items were ever pushed onto a private queue. */
static inline uint64_t crew__queue_pushed(const crew_queue *q)
{
  return atomic_load_explicit(&((const struct crew__pqueue *)q)->tail,
                              memory_order_acquire);
}

/*
 * A pool worker's pop from a private queue: wait (spinning up to spin_ns
 * first) for items, then take up to max of them, but no more than a
 * 1/share of those queued (at least one); *popped gets how many. Before it
 * sleeps the worker counts itself a sleeper, then calls idle(arg) with the
 * queue's lock held: if that finds work elsewhere, it returns
 * CREW__ELSEWHERE. Returns 0 or CREW_ECLOSED once closed and empty.
 */
int crew__queue_take(crew_queue *q, void *items, size_t max, size_t share,
                     size_t *popped, uint64_t spin_ns, bool (*idle)(void *),
                     void *arg);

/*
 * Wake one sleeping popper that nobody has signalled yet, if there is one:
 * work appeared that is not in the queue (a worker's batch). A popper that
 * counts itself a sleeper after this looked calls `idle` first, and finds
 * the work (if it was published before this call).
 */
void crew__queue_nudge(crew_queue *q);

/* ------------------------------------------------------------- shqueue.c */

/* Make a CREW_SHARED queue: 0, CREW_EINVAL or CREW_ENOMEM. */
int crew__shq_create(crew_queue **q, size_t capacity, size_t item_size);

/*
 * For a shared queue that only the calling process pushes to (pusher) or
 * pops from: it keeps its own count of that side and from then on treats
 * a shared counter that disagrees with it as corruption, like a count above
 * capacity (the queue is closed for this process). The one pusher also
 * promises to call crew__shq_forget_waiters when a popper dies, so its
 * first push during a popper's spin may leave the sleepers asleep.
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
