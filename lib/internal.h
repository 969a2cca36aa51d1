/*
 * internal.h - what the files of lib/ share and nobody else sees. Not
 * installed. Every name here starts with crew__ ; everything else in lib/ is
 * static.
 *
 * Layers, each using only those above it in this list:
 *   sync.c   - mutexes, condition variables, deadlines, threads
 *   error.c  - crew_strerror
 *   queue.c  - the public bounded queue
 *   future.c - futures: states, waiting, callbacks
 *   pool.c   - workers fed by a crew_queue of struct crew__task slots
 *   map.c    - crew_map, as map runner tasks on the pool
 * future.c and map.c call back into pool.c through the crew__pool_* hooks
 * below (to run a task in a worker's accounting), never into its state.
 */
#ifndef CREW_INTERNAL_H
#define CREW_INTERNAL_H

#include <crew.h>

#include "sync.h"
#include "testhook.h"

#include <stdalign.h>
#include <stdatomic.h>

struct crew__map;    /* map.c */
struct crew__worker; /* pool.c */

/* A pool's state word (pool.c; shared with a process pool's workers). */
#define CREW__POOL_OPEN       0
#define CREW__POOL_DRAINING   1
#define CREW__POOL_CANCELLING 2

/* ------------------------------------------------------------ task slots */

/* Input bytes a fire-and-forget task carries in its queue slot. */
#define CREW__INLINE_IN 32

enum crew__task_kind {
  CREW__TASK_PLAIN = 1,  /* fire and forget: fn + input in the slot */
  CREW__TASK_FUTURE = 2, /* the task lives in the future at ptr */
  CREW__TASK_MAP = 3     /* a map runner for the job at ptr */
};

/* One item of the pool's queue: 64 bytes, copied by value. */
struct crew__task {
  crew_fn fn; /* PLAIN */
  void *ptr;  /* FUTURE: struct crew_future *; MAP: struct crew__map * */
  uint64_t submit_ns; /* when submitted, if the pool times tasks; else 0 */
  uint32_t kind;      /* enum crew__task_kind */
  uint32_t in_size;   /* PLAIN: bytes used in `in` */
  alignas(16) unsigned char in[CREW__INLINE_IN]; /* PLAIN: the input */
};

/* --------------------------------------------------------------- workers */

/* How long an idle worker spins (crew_config.idle_spin_ns resolved: the
 * default for 0, and 0 for CREW_IDLE_SPIN_OFF). */
uint64_t crew__idle_spin_ns(const crew_config *cfg);

/*
 * A worker's counters. Each is written only by its worker's thread (a
 * relaxed load and store, no read-modify-write) and read by anyone.
 */
struct crew__counters {
  _Atomic uint64_t started;
  _Atomic uint64_t completed;
  _Atomic uint64_t failed;
};

/* Add n to a counter that only the calling thread writes. */
static inline void crew__count(_Atomic uint64_t *c, uint64_t n)
{
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                        memory_order_relaxed);
}

static inline uint64_t crew__read(_Atomic uint64_t *c)
{
  return atomic_load_explicit(c, memory_order_relaxed);
}

/* ------------------------------------------------------------ future.c */

/*
 * Make a future for a task of `pool` in state QUEUED, holding two
 * references: the caller's and the queue slot's. The input is copied into
 * it; out_size bytes are kept for the output. Returns 0 or CREW_ENOMEM.
 */
int crew__future_create(crew_future **f, crew_pool *pool, crew_fn fn,
                        const void *in, size_t in_size, size_t out_size);

/*
 * A pool's cache of freed small futures (future.c), so that a steady stream
 * of submits with futures allocates nothing. Made with the pool; the pool
 * and every future taken from it hold a reference, so futures may outlive
 * their pool.
 */
struct crew__future_cache;
int crew__future_cache_create(struct crew__future_cache **cp);
/* Drop the pool's reference (the cache goes with the last future). */
void crew__future_cache_release(struct crew__future_cache *c);
/* The cache of a pool (pool.c); NULL for none. */
struct crew__future_cache *crew__pool_future_cache(const crew_pool *pool);

/* Undo crew__future_create() for a task that was never queued. */
void crew__future_discard(crew_future *f);

/* QUEUED -> RUNNING: true if the caller now owns the run. */
bool crew__future_claim(crew_future *f);

/* A claimed future's task: its function, input and output. */
void crew__future_parts(crew_future *f, crew_fn *fn, void **in, void **out);

/* Resolve a claimed future as completed with `status`; runs callbacks. */
void crew__future_complete(crew_future *f, int status);

/*
 * Cancel a queued future (QUEUED -> cancelled, callbacks run here). Returns
 * 0, or CREW_EBUSY if it had been claimed or resolved.
 */
int crew__future_cancel(crew_future *f);

/* Take one more reference (released with crew_future_release). */
void crew__future_retain(crew_future *f);

/* When the future's task was submitted (set by the pool if it times
 * tasks), for a worker that runs it without its slot. */
void crew__future_set_submitted(crew_future *f, uint64_t ns);
uint64_t crew__future_submitted(const crew_future *f);

/* Drop the queue slot's reference (a worker took the slot). */
void crew__future_release_slot(crew_future *f);

/* Process mode: the future's task runs remotely as (entry, ticket); set
 * before the future is shared. Its cancel then asks the pool first. */
void crew__future_set_remote(crew_future *f, uint32_t entry, uint64_t ticket);

/* The future's output buffer (out_size bytes), for the pool to fill. */
void *crew__future_out(crew_future *f);

/*
 * A thread that runs done callbacks for a resolver that must not run them
 * itself (a process pool's manager thread), named NAME-cb. Stopping it runs
 * every callback handed to it so far, then joins it.
 */
struct crew__callbacks;
int crew__callbacks_start(struct crew__callbacks **c, const char *name);
void crew__callbacks_stop(struct crew__callbacks *c);
/* Whether the calling thread is c's. */
bool crew__callbacks_here(const struct crew__callbacks *c);

/*
 * Resolve a queued remote future: ran (status and output, already copied
 * in) or not (a worker died under it: status only). Its callbacks run on
 * `later`'s thread, or here if `later` is NULL. False, doing nothing, if a
 * cancel resolved it first.
 */
bool crew__future_settle(crew_future *f, bool ran, int status,
                         struct crew__callbacks *later);

/* Resolve a queued future as cancelled (callbacks as above); false if it
 * was not queued. */
bool crew__future_settle_cancelled(crew_future *f,
                                   struct crew__callbacks *later);

/* ------------------------------------------------------------- pool.c */

/*
 * The worker of `pool` running on the calling thread, or NULL if the calling
 * thread is not one of its workers.
 */
struct crew__worker *crew__pool_worker(const crew_pool *pool);

/* The counters of a worker. */
struct crew__counters *crew__worker_counters(struct crew__worker *w);

/*
 * If the calling thread is a worker of `pool` and f's task is still queued,
 * claim it and run it here (a worker waiting on a future helps it along).
 * Returns true if it ran f.
 */
bool crew__pool_help(crew_pool *pool, crew_future *f);

/*
 * Process mode: cancel (entry, ticket) where it waits in shared memory.
 * True if it will never run (then it is counted as cancelled).
 */
bool crew__pool_cancel_remote(crew_pool *pool, uint32_t entry, uint64_t ticket);

/* Count n tasks cancelled without running; n submitted, or n not after all. */
void crew__pool_count_cancelled(crew_pool *pool, uint64_t n);
void crew__pool_count_submitted(crew_pool *pool, uint64_t n);
void crew__pool_uncount_submitted(crew_pool *pool, uint64_t n);

/* Whether the pool is usable from here: not shut down, same process. */
int crew__pool_check_open(const crew_pool *pool);

/* How many workers the pool has. */
size_t crew__pool_nworkers(const crew_pool *pool);

/* The pool's latency reset count (histogram writers tag maxima with it). */
uint64_t crew__pool_latency_epoch(crew_pool *pool);

/* The process-mode side of the pool, or NULL for a thread pool. */
struct crew__procpool *crew__pool_procpool(const crew_pool *pool);

/*
 * Queue a task slot, waiting at most timeout_ns for room; in a worker of the
 * pool a full queue runs the task at once instead. Returns 0, CREW_ECLOSED or
 * CREW_ETIMEDOUT.
 */
int crew__pool_enqueue(crew_pool *pool, struct crew__task *t,
                       uint64_t timeout_ns);

/* -------------------------------------------------------------- map.c */

/*
 * The maps in flight on a thread pool, so that a CREW_CANCEL shutdown can
 * cancel at once the items no runner has taken yet. `lock` guards the list;
 * lock order: this lock, then a map's own.
 */
struct crew__maps {
  crew__mutex lock;
  struct crew__map *head;
  bool cancelled; /* a CREW_CANCEL shutdown began: later maps too */
};
int crew__maps_init(struct crew__maps *m);
void crew__maps_fini(struct crew__maps *m);
/* Cancel every item that no runner of a map in flight has claimed. */
void crew__maps_cancel(struct crew__maps *m);
/* The maps of a thread pool (pool.c). */
struct crew__maps *crew__pool_maps(crew_pool *pool);

/* Run a map runner slot in worker w. */
void crew__map_run(struct crew__map *job, struct crew__worker *w);

/* A map runner slot was dropped by a CREW_CANCEL shutdown, not run. */
void crew__map_drop(struct crew__map *job);

#endif /* CREW_INTERNAL_H */
