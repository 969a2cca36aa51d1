/*
 * threads.c - the thread backend: a fixed set of worker threads fed by one
 * private crew_queue of struct crew__slot (threads.h).
 *
 * A task travels: submit copies it into a slot (input inline for a small
 * fire-and-forget task, else a future that holds input and output), pushes
 * the slot (blocking while the queue is full: that is the backpressure), a
 * worker pops it and runs it (crew__future_popped: the future claims, runs
 * and resolves itself), and the slot's reference is dropped.
 *
 * Stopping: closing the queue is the whole stop protocol: workers pop
 * until the queue says CREW_ECLOSED, so every slot queued before the close
 * is popped exactly once, and there are no sentinel tasks. After
 * CREW_CANCEL a worker that pops a slot cancels it instead of running it,
 * and the shutting-down thread does not wait for that: it pops and cancels
 * every slot itself, and cancels the map items no runner has claimed.
 *
 * Nested work: a thread-local pointer names the worker running on the
 * current thread. A worker that waits on a future of its own pool whose
 * task is still queued runs it itself (the owner's help hook); a worker
 * that submits to its own pool and finds the queue full runs the new task
 * at once instead of waiting for room that only it could make.
 *
 * Start: create waits until every worker ran its init (`start_lock`); if
 * one failed, it closes the queue, joins them all and fails: CREW_EINIT.
 *
 * Locking: the queue has its own lock; start_lock guards the start
 * counters; idle_lock only puts wait_idle's waiters to sleep (threads.h).
 * Counters are atomics, each worker's written only by its thread.
 */
#include "config.h"

#include "threads.h"

#include <stdlib.h>
#include <string.h>

_Thread_local struct crew__tworker *crew__current_worker
    __attribute__((tls_model("initial-exec")));

static struct crew__tpool *tp_of(struct crew__backend *b)
{
  return (struct crew__tpool *)b;
}

/* ------------------------------------------------- the futures' hooks */

/* crew_future_cancel cancelled a queued future: its slot stays queued
 * until a worker drops it; count it now. */
static void owner_cancelled(struct crew__owner *o)
{
  struct crew__tpool *tp = (struct crew__tpool *)o;
  atomic_fetch_add_explicit(&tp->cancelled, 1, memory_order_relaxed);
}

/* A worker of the pool waits on a queued future: it runs it itself. */
static bool owner_help(struct crew__owner *o, crew_future *f)
{
  struct crew__tworker *w = crew__tpool_self((struct crew__tpool *)o);
  if (w == NULL)
    return false;
  crew__future_retain(f); /* its callbacks may drop every other reference */
  bool ran = crew__future_run(f, &w->exec);
  crew_future_release(f);
  return ran;
}

/* ------------------------------------------------------- running slots */

/* Run one slot in worker w (popped from the queue, or run inline). */
static void run_slot(struct crew__tworker *w, struct crew__slot *t)
{
  switch (t->kind) {
  case CREW__SLOT_PLAIN:
    crew__exec_run(&w->exec, t->fn, t->in_size > 0 ? t->in : NULL, NULL,
                   t->submit_ns);
    break;
  case CREW__SLOT_FUTURE:
    crew__future_popped(t->ptr, &w->exec);
    break;
  case CREW__SLOT_MAP:
    crew__tmap_runner(t->ptr, w);
    break;
  }
}

/* Settle a slot after a CREW_CANCEL shutdown began, without running it. */
static void drop_slot(struct crew__tpool *tp, struct crew__slot *t)
{
  switch (t->kind) {
  case CREW__SLOT_PLAIN:
    atomic_fetch_add_explicit(&tp->cancelled, 1, memory_order_relaxed);
    break;
  case CREW__SLOT_FUTURE:
    crew__future_popped(t->ptr, NULL);
    break;
  case CREW__SLOT_MAP:
    crew__tmap_runner(t->ptr, NULL);
    break;
  }
}

/* Run init and tell create how it went: 0 or CREW_EINIT. */
static int start_worker(struct crew__tworker *w)
{
  struct crew__tpool *tp = w->tp;
  int rc = crew__worker_begin(tp->cfg->name, w->exec.index, tp->cfg->init,
                              tp->cfg->init_arg);
  crew__mutex_lock(&tp->start_lock);
  tp->started++;
  if (rc != 0)
    tp->init_error = rc;
  crew__cond_broadcast(&tp->start_cv);
  crew__mutex_unlock(&tp->start_lock);
  return rc;
}

/* ------------------------------------------------------------- batches */

static uint32_t batch_next(uint64_t word)
{
  return (uint32_t)word;
}

static uint32_t batch_count(uint64_t word)
{
  return (uint32_t)(word >> 32);
}

/* The owner claims the next entry of its batch (read in place: only the
 * owner writes the slots); NULL once none is left. */
static struct crew__slot *claim(struct crew__batch *b)
{
  uint64_t word = atomic_fetch_add_explicit(&b->word, 1, memory_order_seq_cst);
  if (batch_next(word) >= batch_count(word))
    return NULL;
  return &b->slots[batch_next(word)];
}

/* An idle worker steals the next unclaimed entry of another's batch. */
static bool steal(struct crew__batch *b, struct crew__slot *t)
{
  bool got = false;
  atomic_fetch_add_explicit(&b->readers, 1, memory_order_seq_cst);
  uint64_t word = atomic_load_explicit(&b->word, memory_order_seq_cst);
  if (batch_next(word) < batch_count(word)) {
    word = atomic_fetch_add_explicit(&b->word, 1, memory_order_seq_cst);
    if ((got = batch_next(word) < batch_count(word)))
      *t = b->slots[batch_next(word)];
  }
  atomic_fetch_sub_explicit(&b->readers, 1, memory_order_release);
  return got;
}

/* Whether another worker's batch has an unclaimed entry. Called by a worker
 * about to sleep, with the queue's lock held, after it counted itself a
 * sleeper: a batch published before that is seen here; one published
 * after it nudges the sleeper awake (refill). */
static bool stealable(void *arg)
{
  struct crew__tworker *self = arg;
  struct crew__tpool *tp = self->tp;
  for (size_t i = 0; i < tp->nworkers; i++) {
    uint64_t word =
        atomic_load_explicit(&tp->workers[i].batch.word, memory_order_seq_cst);
    if (&tp->workers[i] != self && batch_next(word) < batch_count(word))
      return true;
  }
  return false;
}

/* Run (or, after a CREW_CANCEL shutdown began, drop) a slot in worker w. */
static void handle(struct crew__tworker *w, struct crew__slot *t)
{
  if (atomic_load_explicit(w->tp->state, memory_order_acquire) ==
      CREW__POOL_CANCELLING)
    drop_slot(w->tp, t);
  else
    run_slot(w, t);
  crew__count(&w->handled, 1);
}

/* Drop a slot taken off the queue or a batch by a CREW_CANCEL shutdown. */
static void drop_queued(struct crew__tpool *tp, struct crew__slot *t)
{
  drop_slot(tp, t);
  atomic_fetch_add_explicit(&tp->dropped, 1, memory_order_relaxed);
}

/* Steal and handle every unclaimed entry of the other workers' batches;
 * (w NULL: a CREW_CANCEL shutdown drops them all). */
static void steal_all(struct crew__tpool *tp, struct crew__tworker *w)
{
  struct crew__slot t;
  for (size_t i = 0; i < tp->nworkers; i++)
    while (&tp->workers[i] != w && steal(&tp->workers[i].batch, &t)) {
      if (w != NULL)
        handle(w, &t);
      else
        drop_queued(tp, &t);
    }
}

/*
 * Refill w's batch from the queue: a small share of what is queued (a
 * quarter of a worker's fair share, at most CREW__BATCH), so that a short
 * queue goes one task at a time, in order, and a long one in batches. Once
 * entries are left for others to steal, wake a sleeper to take them.
 * Returns 0, CREW__ELSEWHERE (the queue is empty but another batch is not)
 * or CREW_ECLOSED (closed and empty).
 */
static int refill(struct crew__tworker *w)
{
  struct crew__tpool *tp = w->tp;
  struct crew__batch *b = &w->batch;
  while (atomic_load_explicit(&b->readers, memory_order_seq_cst) != 0)
    crew__cpu_relax(); /* a stealer is copying an entry out */
  size_t n;
  int rc = crew__queue_take(tp->queue, b->slots, CREW__BATCH, tp->share, &n,
                            tp->cfg->idle_spin_ns, stealable, w);
  if (rc != 0)
    return rc;
  atomic_store_explicit(&b->word, (uint64_t)n << 32, memory_order_seq_cst);
  if (n > 1)
    crew__queue_nudge(tp->queue);
  return 0;
}

/*
 * A worker: start, then run its batch, refill it, and again, until the
 * queue is closed and empty. An empty queue sends it to steal from the
 * other workers' batches before it sleeps, and again before it leaves.
 * After a CREW_CANCEL shutdown began, slots are still taken, but dropped
 * instead of run. A worker whose init failed takes nothing (create fails
 * and joins it).
 */
static void *worker_main(void *arg)
{
  struct crew__tworker *w = arg;
  struct crew__tpool *tp = w->tp;
  crew__current_worker = w;
  if (start_worker(w) == 0) {
    struct crew__slot *t;
    for (int rc = 0; rc != CREW_ECLOSED;) {
      while ((t = claim(&w->batch)) != NULL)
        handle(w, t);
      crew__tpool_poke(tp);
      if ((rc = refill(w)) != 0) {
        steal_all(tp, w);
        crew__tpool_poke(tp);
      }
    }
  }
  crew__current_worker = NULL;
  atomic_fetch_sub_explicit(&tp->alive, 1, memory_order_release);
  return NULL;
}

/* ------------------------------------------------------------- submit */

/* The queue was full (enqueue): in a worker of the pool run the task at
 * once, else wait until d for room. Counted in `adjust` meanwhile. */
static __attribute__((noinline)) int
enqueue_full(struct crew__tpool *tp, struct crew__slot *t, crew__deadline d)
{
  struct crew__tworker *w = crew__tpool_self(tp);
  if (w == NULL && d.at == 0)
    return CREW_ETIMEDOUT;
  atomic_fetch_add_explicit(&tp->adjust, 1, memory_order_relaxed);
  if (w != NULL) { /* no room, and only this worker could make it */
    atomic_fetch_add_explicit(&tp->ran_at_once, 1, memory_order_relaxed);
    run_slot(w, t);
    crew__count(&w->handled, 1);
    return 0;
  }
  int rc = crew__queue_put(tp->queue, t, sizeof *t, d);
  atomic_fetch_sub_explicit(&tp->adjust, 1, memory_order_relaxed);
  return rc;
}

/*
 * Queue a slot, waiting until d for room; in a worker of the pool a full
 * queue runs the task at once instead. 0, CREW_ECLOSED or CREW_ETIMEDOUT.
 * The queue counts what it took (stats: submitted); a submit blocked on a
 * full queue, or run at once, is counted in `adjust` meanwhile.
 */
static inline __attribute__((always_inline)) int
enqueue(struct crew__tpool *tp, struct crew__slot *t, crew__deadline d)
{
  int rc = crew__queue_put(tp->queue, t, sizeof *t, (crew__deadline){0});
  if (__builtin_expect(rc == CREW_ETIMEDOUT, 0))
    return enqueue_full(tp, t, d);
  return rc;
}

/* The slot of a task with a future: made here, the slot's and the caller's
 * references in it. */
static int future_slot(struct crew__tpool *tp, struct crew__slot *t,
                       const void *in, size_t in_size, size_t out_size)
{
  crew_future *f;
  int rc = crew__future_create(&f, &tp->owner, tp->futures, t->fn, in, in_size,
                               out_size, t->submit_ns);
  t->kind = CREW__SLOT_FUTURE;
  t->ptr = rc == 0 ? f : NULL;
  return rc;
}

/* Every submit but the plainest: with a future, an output, a large input,
 * timing, or no room in the ring. */
static __attribute__((noinline)) int submit_general(struct crew__tpool *tp,
                                                    const struct crew__call *c)
{
  size_t in_size = c->in_size, out_size = c->out_size;
  struct crew__slot t;
  t.fn = c->fn;
  t.submit_ns = tp->cfg->hooks.timed ? crew__now_ns() : 0;
  if (c->future == NULL && out_size == 0 && in_size <= CREW__INLINE_IN) {
    t.kind = CREW__SLOT_PLAIN; /* fire and forget: no allocation */
    t.in_size = (uint32_t)in_size;
    if (in_size > 0)
      memcpy(t.in, c->in, in_size);
    return enqueue(tp, &t, c->d);
  }
  int rc = future_slot(tp, &t, c->in, in_size, out_size);
  if (rc == 0 && (rc = enqueue(tp, &t, c->d)) != 0) {
    crew_future_release(t.ptr); /* never queued: both references go */
    crew_future_release(t.ptr);
  }
  if (rc == 0 && c->future != NULL)
    *c->future = t.ptr;
  else if (rc == 0)
    crew_future_release(t.ptr); /* fire and forget with output or input */
  return rc;
}

/* A fire-and-forget task with a small input, untimed: written straight
 * into the ring. */
static int submit(struct crew__backend *b, const struct crew__call *c)
{
  struct crew__tpool *tp = tp_of(b);
  struct crew__slot *t;
  if (c->future != NULL || c->out_size != 0 || c->in_size > CREW__INLINE_IN ||
      tp->cfg->hooks.timed ||
      (t = crew__queue_put_begin(tp->queue, sizeof *t)) == NULL)
    return submit_general(tp, c);
  t->fn = c->fn;
  t->submit_ns = 0;
  t->kind = CREW__SLOT_PLAIN;
  t->in_size = (uint32_t)c->in_size;
  if (c->in_size > 0)
    memcpy(t->in, c->in, c->in_size);
  return crew__queue_put_end(tp->queue);
}

static int map(struct crew__backend *b, const struct crew__map_args *m)
{
  return crew__tmap(tp_of(b), m);
}

/* ------------------------------------------------------ create, destroy */

static void destroy(struct crew__backend *b)
{
  struct crew__tpool *tp = tp_of(b);
  crew_queue_destroy(tp->queue);
  crew__future_cache_release(tp->futures);
  crew__mutex_destroy(&tp->start_lock);
  crew__cond_destroy(&tp->start_cv);
  crew__mutex_destroy(&tp->maps.lock);
  crew__mutex_destroy(&tp->idle_lock);
  crew__cond_destroy(&tp->idle_cv);
  free(tp->workers);
  free(tp);
}

static int tpool_alloc(struct crew__tpool **out, const struct crew__cfg *cfg)
{
  struct crew__tpool *tp = crew__aligned_alloc(64, (sizeof *tp + 63) / 64 * 64);
  if (tp == NULL)
    return CREW_ENOMEM;
  memset(tp, 0, sizeof *tp);
  tp->owner =
      (struct crew__owner){.cancelled = owner_cancelled, .help = owner_help};
  tp->cfg = cfg;
  tp->nworkers = cfg->workers;
  tp->share = 4 * cfg->workers;
  int rc = crew_queue_create(&tp->queue, cfg->capacity,
                             sizeof(struct crew__slot), 0);
  if (rc != 0)
    goto fail_queue;
  rc = CREW_ENOMEM;
  if (crew__future_cache_create(&tp->futures) != 0)
    goto fail_cache;
  if (crew__mutex_init(&tp->start_lock) != 0)
    goto fail_start_lock;
  if (crew__cond_init(&tp->start_cv) != 0)
    goto fail_start_cv;
  if (crew__mutex_init(&tp->maps.lock) != 0)
    goto fail_maps;
  if (crew__mutex_init(&tp->idle_lock) != 0)
    goto fail_idle_lock;
  if (crew__cond_init(&tp->idle_cv) != 0)
    goto fail_idle_cv;
  tp->workers = crew__aligned_alloc(alignof(struct crew__tworker),
                                    tp->nworkers * sizeof *tp->workers);
  if (tp->workers == NULL)
    goto fail_workers;
  /* Every worker is zeroed before the first starts: a sleeping worker reads
   * the others' batch words (stealable). */
  memset(tp->workers, 0, tp->nworkers * sizeof *tp->workers);
  *out = tp;
  return 0;

fail_workers:
  crew__cond_destroy(&tp->idle_cv);
fail_idle_cv:
  crew__mutex_destroy(&tp->idle_lock);
fail_idle_lock:
  crew__mutex_destroy(&tp->maps.lock);
fail_maps:
  crew__cond_destroy(&tp->start_cv);
fail_start_cv:
  crew__mutex_destroy(&tp->start_lock);
fail_start_lock:
  crew__future_cache_release(tp->futures);
fail_cache:
  crew_queue_destroy(tp->queue);
fail_queue:
  free(tp);
  return rc;
}

/* Stop and join the first n workers (create failed). */
static void unstart(struct crew__tpool *tp, size_t n)
{
  crew_queue_close(tp->queue);
  for (size_t j = 0; j < n; j++)
    crew__thread_join(&tp->workers[j].thread);
}

/* Start the workers and wait until each has run its init. */
static int start_workers(struct crew__tpool *tp)
{
  for (size_t i = 0; i < tp->nworkers; i++) {
    struct crew__tworker *w = &tp->workers[i];
    w->tp = tp;
    w->exec.hooks = &tp->cfg->hooks;
    w->exec.index = i;
    atomic_fetch_add_explicit(&tp->alive, 1, memory_order_relaxed);
    if (crew__thread_start(&w->thread, worker_main, w) != 0) {
      atomic_fetch_sub_explicit(&tp->alive, 1, memory_order_relaxed);
      unstart(tp, i);
      return CREW_ENOMEM;
    }
  }
  crew__mutex_lock(&tp->start_lock);
  while (tp->started < tp->nworkers)
    crew__cond_wait(&tp->start_cv, &tp->start_lock,
                    (crew__deadline){CREW__NEVER});
  int rc = tp->init_error;
  crew__mutex_unlock(&tp->start_lock);
  if (rc != 0)
    unstart(tp, tp->nworkers);
  return rc;
}

static int create(struct crew__backend **b, const struct crew__cfg *cfg,
                  const _Atomic int *state)
{
  struct crew__tpool *tp;
  int rc = tpool_alloc(&tp, cfg);
  if (rc != 0)
    return rc;
  tp->state = state;
  if ((rc = start_workers(tp)) != 0) {
    destroy((struct crew__backend *)tp);
    return rc;
  }
  *b = (struct crew__backend *)tp;
  return 0;
}

/* ---------------------------------------------------------------- stop */

static void stop(struct crew__backend *b, int how)
{
  struct crew__tpool *tp = tp_of(b);
  crew_queue_close(tp->queue); /* again is harmless */
  if (how != CREW_CANCEL)
    return;
  /* Cancel what is queued here and now, without waiting for a worker. */
  struct crew__slot t;
  while (crew_queue_pop_timed(tp->queue, &t, 0) == 0)
    drop_queued(tp, &t);
  steal_all(tp, NULL); /* what workers took but have not begun */
  crew__tmap_cancel(&tp->maps);
  crew__tpool_poke(tp);
}

/* With idle_lock held: every slot handled (read before the slots taken:
 * equal sums mean all were handled when those were read), no map. */
static bool idle_now(void *arg)
{
  struct crew__tpool *tp = arg;
#ifndef CREW__TSAN
  atomic_thread_fence(memory_order_seq_cst); /* pairs with crew__tpool_poke */
#endif
  uint64_t out = atomic_load_explicit(&tp->dropped, memory_order_acquire);
  for (size_t i = 0; i < tp->nworkers; i++)
    out += atomic_load_explicit(&tp->workers[i].handled, memory_order_acquire);
  uint64_t in = crew__queue_pushed(tp->queue) +
                atomic_load_explicit(&tp->ran_at_once, memory_order_acquire);
  if (out != in)
    return false;
  crew__mutex_lock(&tp->maps.lock);
  bool no_map = tp->maps.head == NULL;
  crew__mutex_unlock(&tp->maps.lock);
  return no_map;
}

static int wait_idle(struct crew__backend *b, crew__deadline d)
{
  struct crew__tpool *tp = tp_of(b);
  crew__mutex_lock(&tp->idle_lock);
  atomic_fetch_add_explicit(&tp->waiters, 1, memory_order_seq_cst);
  int rc = crew__cond_wait_for(&tp->idle_cv, &tp->idle_lock, d, idle_now, tp);
  atomic_fetch_sub_explicit(&tp->waiters, 1, memory_order_relaxed);
  crew__mutex_unlock(&tp->idle_lock);
  return rc;
}

static void join(struct crew__backend *b)
{
  struct crew__tpool *tp = tp_of(b);
  for (size_t i = 0; i < tp->nworkers; i++)
    crew__thread_join(&tp->workers[i].thread);
}

static bool owns_thread(const struct crew__backend *b)
{
  return crew__tpool_self((struct crew__tpool *)b) != NULL;
}

/* ---------------------------------------------------- stats, latency */

static void stats(struct crew__backend *b, crew_stats *st)
{
  struct crew__tpool *tp = tp_of(b);
  /* Read what happens later first, so no difference goes negative. */
  uint64_t completed = 0, failed = 0, started = 0;
  for (size_t i = 0; i < tp->nworkers; i++) {
    completed += crew__read(&tp->workers[i].exec.counters.completed);
    failed += crew__read(&tp->workers[i].exec.counters.failed);
  }
  for (size_t i = 0; i < tp->nworkers; i++)
    started += crew__read(&tp->workers[i].exec.counters.started);
  uint64_t cancelled = crew__read(&tp->cancelled);
  int64_t adjust = atomic_load_explicit(&tp->adjust, memory_order_relaxed);
  uint64_t submitted = crew__queue_pushed(tp->queue) + (uint64_t)adjust;
  st->submitted = submitted;
  st->completed = completed;
  st->failed = failed;
  st->cancelled = cancelled;
  st->queued = crew__minus(submitted, started + cancelled);
  st->running = crew__minus(started, completed);
  st->workers = atomic_load_explicit(&tp->alive, memory_order_acquire);
}

static void latency(struct crew__backend *b, struct crew__hist_sum sums[2],
                    uint64_t epoch)
{
  struct crew__tpool *tp = tp_of(b);
  for (size_t i = 0; i < tp->nworkers; i++) {
    crew__hist_add(&sums[0], &tp->workers[i].exec.wait_hist, epoch);
    crew__hist_add(&sums[1], &tp->workers[i].exec.run_hist, epoch);
  }
}

const struct crew__backend_ops crew__threads_ops = {
    .create = create,
    .check = NULL, /* the front end judges all a thread pool needs */
    .submit = submit,
    .map = map,
    .stop = stop,
    .kill = NULL, /* a thread cannot be killed alone */
    .wait_idle = wait_idle,
    .join = join,
    .owns_thread = owns_thread,
    .stats = stats,
    .latency = latency,
    .destroy = destroy,
};
