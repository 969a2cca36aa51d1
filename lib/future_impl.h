/*
 * future_impl.h - the inside of a future, for the two files that keep it:
 * future.c (lifetime, resolution, callbacks, slabs) and wait.c (waiting).
 * See future.c for the states and the locking.
 */
#ifndef CREW_FUTURE_IMPL_H
#define CREW_FUTURE_IMPL_H

#include "future.h"

#include <stdalign.h>
#include <stddef.h>

/* The state word: the state in the low bits, flags above. RUNNING + 1 is
 * DONE and RUNNING + 2 is FAILED, so the one thread that ran a task
 * resolves it with one fetch-and-add that keeps the flags. */
enum future_state {
  QUEUED = 0,
  RUNNING = 1,
  DONE = 2,
  FAILED = 3,
  CANCELLED = 4,
  STATE_MASK = 7
};
#define WAITED    8u /* a waiter sleeps or is linked: wake through the stripe */
#define CALLBACKS 16u /* a callback was added: run them through the stripe */

struct waiter {
  crew__mutex lock;
  crew__cond cond;
  bool woken; /* guarded by lock */
};

/* One waiter's place on one future's waiter list. */
struct waiter_link {
  struct waiter *waiter;
  struct waiter_link *prev, *next;
  bool linked; /* guarded by the future's stripe */
};

/* A lock and a condition variable that a future shares with the others
 * of its cache that hash to it: what a future's slow paths (sleeping,
 * callbacks, cancelling) lock, so that a future has no lock of its own. */
struct crew__stripe {
  crew__mutex lock;
  crew__cond cond; /* sleepers on any of its futures */
};
#define STRIPES 64

struct crew_future {
  _Atomic uint32_t state; /* enum future_state | WAITED | CALLBACKS */
  int32_t status;         /* valid once resolved (DONE, FAILED) */
  _Atomic uint32_t refs;
  size_t in_room; /* the output follows the input at data + in_room */
  size_t out_size;
  struct crew__future_cache *cache;
  struct crew_future *next; /* on the free list, or on a callback thread's
                               list (never both: the latter holds a ref) */
  struct crew__owner *owner;
  crew_fn fn;
  union {
    uint64_t submitted_ns; /* for the pool's timing; 0 if it does not time */
    crew_exit end;         /* FAILED: how its worker ended (pid 0: not known) */
  };
  /* Guarded by the stripe: */
  struct waiter_link *waiters;
  struct crew__callback *callbacks; /* not yet run, in the order added */
  struct crew__callback **callbacks_tail;
  bool callbacks_done; /* resolved and every callback has run */
  /* Constant after create: */
  bool has_in; /* in_size was not 0 */
  bool large;  /* allocated alone (payload above CREW__FUTURE_ROOM) */
  alignas(max_align_t) unsigned char data[]; /* input, then output */
};

/* Payload bytes (input rounded up, then output) of a future from a slab. */
#define CREW__FUTURE_ROOM 64

static inline int crew__state_of(uint32_t word)
{
  return (int)(word & STATE_MASK);
}

static inline bool crew__is_resolved(int state)
{
  return state == DONE || state == FAILED || state == CANCELLED;
}

static inline int crew__load_state(const crew_future *f)
{
  return crew__state_of(
      atomic_load_explicit(&((crew_future *)f)->state, memory_order_acquire));
}

static inline void crew__future_ref(crew_future *f)
{
  atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
}

/* The input (NULL when in_size was 0: see create) and output (NULL when
 * out_size is 0). */
static inline void *crew__future_in(crew_future *f, bool has_in)
{
  return has_in ? f->data : NULL;
}

static inline void *crew__future_out(crew_future *f)
{
  return f->out_size > 0 ? f->data + f->in_room : NULL;
}

#define SLAB_MIN 64
#define SLAB_MAX 4096

struct slab {
  struct slab *next;
  alignas(max_align_t) unsigned char futures[];
};

struct crew__future_cache {
  crew__spinlock lock;
  /* Guarded by lock: */
  crew_future *free;  /* futures ready for reuse */
  struct slab *slabs; /* every slab, to free them at the end */
  size_t next_slab;   /* futures in the next slab */
  size_t out;         /* futures taken and not yet back */
  bool orphaned;      /* the pool is gone: the last future back frees all */
  struct crew__stripe stripes[STRIPES];
};

/* Bytes from one slab future to the next. */
#define STRIDE                                                                 \
  ((sizeof(crew_future) + CREW__FUTURE_ROOM + alignof(max_align_t) - 1) /      \
   alignof(max_align_t) * alignof(max_align_t))

/* The stripe that guards f's slow paths. */
static inline struct crew__stripe *crew__future_stripe(const crew_future *f)
{
  uintptr_t at = (uintptr_t)f / STRIDE;
  return &f->cache->stripes[(at ^ (at >> 6)) % STRIPES];
}

/* With f's stripe held: set flag in f's state word; false if f resolved
 * first (then no resolver will look at the flag). */
static inline bool crew__future_flag(crew_future *f, uint32_t flag)
{
  uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
  while (!crew__is_resolved(crew__state_of(s)))
    if ((s & flag) || atomic_compare_exchange_weak_explicit(
                          &f->state, &s, s | flag, memory_order_acq_rel,
                          memory_order_acquire))
      return true;
  return false;
}

#endif
