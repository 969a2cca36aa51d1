/*
 * future_impl.h - the inside of a future, for the two files that keep it:
 * future.c (lifetime, resolution, callbacks, the cache) and wait.c
 * (waiting). See future.c for the states and the locking.
 */
#ifndef CREW_FUTURE_IMPL_H
#define CREW_FUTURE_IMPL_H

#include "future.h"

#include <stdalign.h>
#include <stddef.h>

enum future_state { QUEUED, RUNNING, CANCELLING, DONE, FAILED, CANCELLED };

struct callback {
  crew_done_fn fn;
  void *arg;
  struct callback *next;
};

struct waiter {
  crew__mutex lock;
  crew__cond cond;
  bool woken; /* guarded by lock */
};

/* One waiter's place on one future's waiter list. */
struct waiter_link {
  struct waiter *waiter;
  struct waiter_link *prev, *next;
  bool linked; /* guarded by the future's lock */
};

struct crew_future {
  struct crew__future_cache *cache; /* where it returns; NULL: freed */
  struct crew_future *next; /* on the cache's free list, or on a callback
                               thread's list (never both: a future on the
                               latter holds a reference) */
  crew__mutex lock;
  _Atomic int state; /* enum future_state */
  int status;        /* valid once state is resolved */
  _Atomic unsigned refs;
  /* Guarded by lock: */
  crew__cond resolved_cv; /* single waiters sleep here, once cv_ready */
  bool cv_ready;
  unsigned sleepers; /* threads waiting on resolved_cv */
  struct waiter_link *waiters;
  struct callback *callbacks; /* not yet run, in the order added */
  struct callback **callbacks_tail;
  bool callbacks_done; /* resolved and every callback has run */
  bool first_used;     /* `first` holds or held a callback */
  struct callback first;
  /* Constant after create: */
  struct crew__owner *owner;
  crew_fn fn;
  size_t out_size;
  uint64_t submitted_ns; /* for the pool's timing; 0 if it does not time */
  void *in;              /* NULL when in_size is 0 */
  void *out;             /* NULL when out_size is 0 */
  alignas(max_align_t) unsigned char data[]; /* input, then output */
};

static inline bool crew__is_resolved(int state)
{
  return state == DONE || state == FAILED || state == CANCELLED;
}

static inline int crew__load_state(const crew_future *f)
{
  return atomic_load_explicit(&((crew_future *)f)->state, memory_order_acquire);
}

static inline void crew__future_ref(crew_future *f)
{
  atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
}

#endif
