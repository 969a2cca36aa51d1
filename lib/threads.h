/*
 * threads.h - the thread backend's inside, for its two files: threads.c
 * (workers, submit, shutdown, counters) and tmap.c (crew_map on threads).
 */
#ifndef CREW_THREADS_H
#define CREW_THREADS_H

#include "backend.h"
#include "future.h"
#include "queue.h"

#include <stdalign.h>

/* Input bytes a fire-and-forget task carries in its queue slot. */
#define CREW__INLINE_IN 32

enum crew__slot_kind {
  CREW__SLOT_PLAIN = 1,  /* fire and forget: fn + input in the slot */
  CREW__SLOT_FUTURE = 2, /* the task lives in the future at ptr */
  CREW__SLOT_MAP = 3     /* a map runner for the job at ptr */
};

/* One item of the pool's queue: 64 bytes, copied by value. */
struct crew__slot {
  crew_fn fn;         /* PLAIN */
  void *ptr;          /* FUTURE: crew_future *; MAP: struct crew__map * */
  uint64_t submit_ns; /* when submitted, if the pool times tasks; else 0 */
  uint32_t kind;      /* enum crew__slot_kind */
  uint32_t in_size;   /* PLAIN: bytes used in `in` */
  alignas(16) unsigned char in[CREW__INLINE_IN]; /* PLAIN: the input */
};

struct crew__tpool;

/* The most slots a worker takes off the queue at once. */
#define CREW__BATCH 16

/*
 * The slots a worker took off the queue at once. `word` is count << 32 |
 * next: entries [next, count) are unclaimed, and whoever moves next past
 * an entry (one fetch-and-add) owns it, the worker itself or an idle one
 * stealing it. Stealers count themselves in `readers` while they copy an
 * entry out; the owner refills the slots only once every entry is claimed
 * and no stealer reads.
 */
struct crew__batch {
  alignas(64) _Atomic uint64_t word;
  _Atomic uint32_t readers;
  struct crew__slot slots[CREW__BATCH];
};

/* A worker: its accounting (counters, histograms: only its thread writes
 * them), its batch, its pool and its thread. */
struct crew__tworker {
  struct crew__exec exec;
  _Atomic uint64_t handled; /* slots run or dropped here (wait_idle) */
  struct crew__batch batch;
  struct crew__tpool *tp;
  crew__thread thread;
};

/*
 * The maps in flight, so that a CREW_CANCEL shutdown can cancel at once the
 * items no runner has taken yet. `lock` guards the list; lock order: this
 * lock, then a map's own.
 */
struct crew__maps {
  crew__mutex lock;
  struct crew__map *head;
  bool cancelled; /* a CREW_CANCEL shutdown began: later maps too */
};

struct crew__tpool {
  struct crew__owner owner; /* the futures' hooks (cancel, help) */
  const struct crew__cfg *cfg;
  const _Atomic int *state; /* the pool's state word */
  crew_queue *queue;        /* of struct crew__slot */
  struct crew__future_cache *futures;
  struct crew__maps maps;
  _Atomic size_t alive; /* workers that have not exited */
  /* stats: submitted is what the queue took, plus `adjust`: map items less
   * their runner slots, submits blocked on a full queue or run at once */
  alignas(64) _Atomic int64_t adjust;
  alignas(64) _Atomic uint64_t cancelled;
  /* The start: workers past their init, and whether one failed. */
  crew__mutex start_lock;
  crew__cond start_cv;
  size_t started;  /* start_lock */
  int init_error;  /* start_lock */
  size_t nworkers; /* constant */
  size_t share;    /* a refill takes 1/share of the queue, at least 1 */
  struct crew__tworker *workers;
  /* crew_pool_wait_idle: the pool is idle when every slot the queue took
   * or a worker ran at once (`ran_at_once`) was handled by a worker or
   * dropped at a CREW_CANCEL shutdown (`dropped`), and no map is on the
   * list. Waiters count themselves in `waiters` under `idle_lock`, then
   * look; whoever settles the last slot looks at `waiters` (idle_poke). */
  crew__mutex idle_lock;
  crew__cond idle_cv;
  _Atomic unsigned waiters;
  alignas(64) _Atomic uint64_t ran_at_once, dropped;
};

/* ThreadSanitizer does not model fences: under it, the fences of
 * wait_idle become read-modify-writes of `waiters` (below). */
#if defined(__SANITIZE_THREAD__)
#define CREW__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CREW__TSAN 1
#endif
#endif

/* After slots were handled or a map ended: wake the wait_idle waiters, if
 * any, to look again. The fence pairs with the waiter's (idle_now): either
 * the waiter sees what was handled, or this sees the waiter. (Under
 * ThreadSanitizer an RMW: the waiter's count reads it or precedes it.) */
static inline void crew__tpool_poke(struct crew__tpool *tp)
{
#ifdef CREW__TSAN
  unsigned waiters =
      atomic_fetch_add_explicit(&tp->waiters, 0, memory_order_seq_cst);
#else
  atomic_thread_fence(memory_order_seq_cst);
  unsigned waiters = atomic_load_explicit(&tp->waiters, memory_order_relaxed);
#endif
  if (waiters != 0) {
    crew__mutex_lock(&tp->idle_lock);
    crew__cond_broadcast(&tp->idle_cv);
    crew__mutex_unlock(&tp->idle_lock);
  }
}

/* The worker running on this thread, if any (of any pool). Initial-exec:
 * read on every submit, and one pointer of static TLS is what a library
 * loaded at start-up, or later with dlopen, can always have. */
extern _Thread_local struct crew__tworker *crew__current_worker
    __attribute__((tls_model("initial-exec")));

/* The calling thread's worker if it is one of tp's, else NULL. */
static inline struct crew__tworker *crew__tpool_self(struct crew__tpool *tp)
{
  struct crew__tworker *w = crew__current_worker;
  return w != NULL && w->tp == tp ? w : NULL;
}

/* ---------------------------------------------------------------- tmap.c */

/* crew_map on a thread pool: the backend's map op. */
int crew__tmap(struct crew__tpool *tp, const struct crew__map_args *m);

/* A runner slot popped by worker w: claim and run chunks until none are
 * left. With w NULL (a CREW_CANCEL shutdown dropped it) only leave. */
void crew__tmap_runner(struct crew__map *job, struct crew__tworker *w);

/* Cancel every item that no runner of a map in flight has claimed. */
void crew__tmap_cancel(struct crew__maps *maps);

#endif
