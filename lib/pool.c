/*
 * pool.c - a fixed set of worker threads fed by one crew_queue of
 * struct crew__task slots.
 *
 * A task travels: crew_submit copies it into a slot (input inline for small
 * fire-and-forget tasks, else a future that holds input and output), pushes
 * the slot on the queue (blocking while full: that is the backpressure), a
 * worker pops it and runs it, and the future resolves. See DESIGN.md.
 *
 * State: `*state` goes OPEN -> DRAINING or OPEN -> CANCELLING once, by one
 * compare-and-swap that decides both that the pool stops and how: the first
 * shutdown wins, and from that instant every worker that pops a slot knows
 * whether to run it or cancel it. Then the queue is closed. Closing the
 * queue is the whole stop protocol: workers pop until the queue says
 * CREW_ECLOSED, so every slot queued before the close is popped exactly once.
 * There are no sentinel tasks. After CREW_CANCEL, the shutting-down thread
 * does not wait for the workers to reach what is queued: it pops and
 * cancels every slot itself, and cancels the items no runner of a map has
 * claimed (every later shutdown call does the same, to be sure). For a
 * process pool the state word lives in the memory it shares with its
 * workers, so they see the same decision.
 *
 * Start: create starts every worker and waits until each has run its init
 * (`start_lock`, `started`, `init_error`); if one failed, create closes the
 * queue, joins them all and fails with CREW_EINIT.
 *
 * Locking: the queue has its own lock. `join_lock` guards `joined` and makes
 * one thread join the workers while later shutdowns wait for it;
 * `start_lock` guards the start counters. Nothing else is locked: counters
 * are atomics, each worker's written only by its thread. Lock order:
 * join_lock, then (inside crew_queue calls) the queue lock.
 *
 * Worker identity: a thread-local pointer names the worker running on the
 * current thread, so the pool can tell its own workers (which must never
 * block on its queue or join themselves) from other threads.
 */
#include "config.h"

#include "histogram.h"
#include "internal.h"
#include "queue.h"
#include "procpool.h"

#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum pool_state {
  OPEN = CREW__POOL_OPEN,
  DRAINING = CREW__POOL_DRAINING,
  CANCELLING = CREW__POOL_CANCELLING
};

struct crew__worker {
  alignas(64) struct crew__counters counters; /* own cache line */
  crew_pool *pool;
  size_t index;
  crew__thread thread;
  struct crew__hist wait_hist, run_hist; /* cfg.latency_stats */
};

struct crew_pool {
  crew_queue *queue; /* of struct crew__task */
  crew__fork_guard fork_guard;
  _Atomic int *state; /* enum pool_state: &own_state, or shared */
  _Atomic int own_state;
  _Atomic size_t alive; /* workers that have not exited */
  crew__mutex join_lock;
  bool joined; /* guarded by join_lock */
  crew__mutex start_lock;
  crew__cond start_cv;    /* a worker finished its init */
  size_t started;         /* workers past their init (start_lock) */
  int init_error;         /* CREW_EINIT once an init failed (start_lock) */
  struct crew__maps maps; /* maps in flight */
  alignas(64) _Atomic uint64_t submitted;
  alignas(64) _Atomic uint64_t cancelled;
  /* Latency: the histograms' sums at the last reset (lat_lock). */
  crew__mutex lat_lock;
  _Atomic uint64_t lat_epoch;      /* resets so far */
  struct crew__hist_sum *lat_base; /* [0] queue wait, [1] run */
  /* Constant after create: */
  size_t nworkers;
  size_t max_in, max_out; /* 0: no limit */
  bool timed;             /* latency_stats or hooks: read the clock */
  bool latency;
  uint64_t idle_spin_ns; /* 0: none */
  crew_task_hook on_start, on_finish;
  void *hook_arg;
  struct crew__procpool *proc; /* CREW_PROCESSES: everything else is there */
  struct crew__future_cache *futures; /* freed small futures, for reuse */
  struct crew__worker *workers;
  int (*init)(void *arg);
  void *init_arg;
  char *name;
};

/* The worker running on this thread, if any (of any pool). Initial-exec:
 * read on every submit, and one pointer of static TLS is what a library
 * loaded at start-up, or later with dlopen, can always have. */
static _Thread_local struct crew__worker *current_worker
    __attribute__((tls_model("initial-exec")));

struct crew__worker *crew__pool_worker(const crew_pool *pool)
{
  struct crew__worker *w = current_worker;
  return w != NULL && w->pool == pool ? w : NULL;
}

struct crew__counters *crew__worker_counters(struct crew__worker *w)
{
  return &w->counters;
}

struct crew__future_cache *crew__pool_future_cache(const crew_pool *pool)
{
  return pool->futures;
}

size_t crew__pool_nworkers(const crew_pool *pool)
{
  return pool->nworkers;
}

struct crew__procpool *crew__pool_procpool(const crew_pool *pool)
{
  return pool->proc;
}

struct crew__maps *crew__pool_maps(crew_pool *pool)
{
  return &pool->maps;
}

size_t crew_pool_workers(const crew_pool *pool)
{
  return pool == NULL ? 0 : pool->nworkers;
}

bool crew__pool_cancel_remote(crew_pool *pool, uint32_t entry, uint64_t ticket)
{
  return crew__procpool_cancel(pool->proc, entry, ticket);
}

void crew__pool_count_cancelled(crew_pool *pool, uint64_t n)
{
  atomic_fetch_add_explicit(&pool->cancelled, n, memory_order_relaxed);
}

void crew__pool_count_submitted(crew_pool *pool, uint64_t n)
{
  atomic_fetch_add_explicit(&pool->submitted, n, memory_order_relaxed);
}

void crew__pool_uncount_submitted(crew_pool *pool, uint64_t n)
{
  atomic_fetch_sub_explicit(&pool->submitted, n, memory_order_relaxed);
}

int crew__pool_check_open(const crew_pool *pool)
{
  if (!crew__fork_guard_same_process(&pool->fork_guard))
    return CREW_EINVAL;
  if (atomic_load_explicit(pool->state, memory_order_acquire) != OPEN)
    return CREW_ECLOSED;
  return 0;
}

/* ------------------------------------------------------- running tasks */

/* Run fn with the pool's hooks and latency histograms. */
static int run_timed(struct crew__worker *w, crew_fn fn, const void *in,
                     void *out, uint64_t submit_ns)
{
  crew_pool *pool = w->pool;
  crew_task_info info = {.fn = fn,
                         .worker = w->index,
                         .submitted_ns = submit_ns,
                         .started_ns = crew__now_ns()};
  if (pool->on_start != NULL)
    pool->on_start(&info, pool->hook_arg);
  info.status = fn(in, out);
  info.finished_ns = crew__now_ns();
  if (pool->latency) {
    uint64_t epoch = crew__read(&pool->lat_epoch);
    if (submit_ns != 0 && info.started_ns >= submit_ns)
      crew__hist_record(&w->wait_hist, info.started_ns - submit_ns, epoch);
    crew__hist_record(&w->run_hist, info.finished_ns - info.started_ns, epoch);
  }
  if (pool->on_finish != NULL)
    pool->on_finish(&info, pool->hook_arg);
  return info.status;
}

/* Run one submitted task's function in worker w and count it. */
static int run_body(struct crew__worker *w, crew_fn fn, const void *in,
                    void *out, uint64_t submit_ns)
{
  crew__count(&w->counters.started, 1);
  int status =
      w->pool->timed ? run_timed(w, fn, in, out, submit_ns) : fn(in, out);
  crew__count(&w->counters.completed, 1);
  if (status != 0)
    crew__count(&w->counters.failed, 1);
  return status;
}

/* Run a claimed future's task in worker w and resolve it. */
static void run_future(struct crew__worker *w, crew_future *f)
{
  crew_fn fn;
  void *in, *out;
  crew__future_parts(f, &fn, &in, &out);
  int status = run_body(w, fn, in, out, crew__future_submitted(f));
  crew__future_complete(f, status); /* counted first: waiters see counts */
}

/* Run one slot in worker w (popped from the queue, or run inline). */
static void run_task(struct crew__worker *w, struct crew__task *t)
{
  switch (t->kind) {
  case CREW__TASK_PLAIN:
    run_body(w, t->fn, t->in_size > 0 ? t->in : NULL, NULL, t->submit_ns);
    break;
  case CREW__TASK_FUTURE:
    if (crew__future_claim(t->ptr)) /* else cancelled or run by a waiter */
      run_future(w, t->ptr);
    crew__future_release_slot(t->ptr);
    break;
  case CREW__TASK_MAP:
    crew__map_run(t->ptr, w);
    break;
  }
}

/* Settle a slot popped after a CREW_CANCEL shutdown began, without running. */
static void drop_task(crew_pool *pool, struct crew__task *t)
{
  switch (t->kind) {
  case CREW__TASK_PLAIN:
    crew__pool_count_cancelled(pool, 1);
    break;
  case CREW__TASK_FUTURE:
    crew__future_cancel(t->ptr); /* CREW_EBUSY if a waiter ran it: fine */
    crew__future_release_slot(t->ptr);
    break;
  case CREW__TASK_MAP:
    crew__map_drop(t->ptr);
    break;
  }
}

bool crew__pool_help(crew_pool *pool, crew_future *f)
{
  struct crew__worker *w = crew__pool_worker(pool);
  if (w == NULL || !crew__future_claim(f))
    return false;
  run_future(w, f);
  return true;
}

/* ----------------------------------------------------------- the worker */

/* Name the thread NAME-INDEX. */
static void name_worker(const struct crew__worker *w)
{
  char suffix[24];
  snprintf(suffix, sizeof suffix, "-%zu", w->index);
  crew__thread_set_name(w->pool->name, suffix);
}

/* Run init (if any) and tell create how it went: 0 or CREW_EINIT. */
static int init_worker(crew_pool *pool)
{
  int rc =
      pool->init != NULL && pool->init(pool->init_arg) != 0 ? CREW_EINIT : 0;
  crew__mutex_lock(&pool->start_lock);
  pool->started++;
  if (rc != 0)
    pool->init_error = rc;
  crew__cond_broadcast(&pool->start_cv);
  crew__mutex_unlock(&pool->start_lock);
  return rc;
}

/*
 * A worker: run init, then pop and run slots until the queue is closed and
 * empty. The queue's close is the only stop signal, so no slot is left
 * behind: after a CREW_CANCEL shutdown began, slots are still popped, but
 * cancelled instead of run. A worker whose init failed takes nothing (create
 * fails and joins it).
 */
static void *worker_main(void *arg)
{
  struct crew__worker *w = arg;
  crew_pool *pool = w->pool;
  current_worker = w;
  name_worker(w);
  if (init_worker(pool) != 0) {
    current_worker = NULL;
    atomic_fetch_sub_explicit(&pool->alive, 1, memory_order_release);
    return NULL;
  }

  struct crew__task t;
  while (crew__queue_pop_spin(pool->queue, &t, CREW_FOREVER,
                              pool->idle_spin_ns) == 0) {
    if (atomic_load_explicit(pool->state, memory_order_acquire) == CANCELLING)
      drop_task(pool, &t);
    else
      run_task(w, &t);
  }
  current_worker = NULL;
  atomic_fetch_sub_explicit(&pool->alive, 1, memory_order_release);
  return NULL;
}

/* ------------------------------------------------------------- submit */

int crew__pool_enqueue(crew_pool *pool, struct crew__task *t,
                       uint64_t timeout_ns)
{
  struct crew__worker *w = crew__pool_worker(pool);
  if (w == NULL)
    return crew_queue_push_timed(pool->queue, t, timeout_ns);
  /* A worker must not wait for room its own pool may never make: if the
   * queue is full it runs the task now. */
  int rc = crew_queue_push_timed(pool->queue, t, 0);
  if (rc == CREW_ETIMEDOUT) {
    run_task(w, t);
    rc = 0;
  }
  return rc;
}

static int submit(crew_pool *pool, crew_fn fn, const void *in, size_t in_size,
                  size_t out_size, crew_future **futurep, uint64_t timeout_ns)
{
  if (pool == NULL || fn == NULL || (in == NULL && in_size > 0))
    return CREW_EINVAL;
  if (pool->proc != NULL) { /* arguments first, then the pool's state */
    int rc = crew__procpool_check_submit(pool->proc, fn, in_size, out_size);
    if (rc == 0)
      rc = crew__pool_check_open(pool);
    if (rc != 0)
      return rc;
    return crew__procpool_submit(pool->proc, fn, in, in_size, out_size, futurep,
                                 timeout_ns);
  }
  if ((pool->max_in != 0 && in_size > pool->max_in) ||
      (pool->max_out != 0 && out_size > pool->max_out))
    return CREW_EINVAL;
  int rc = crew__pool_check_open(pool);
  if (rc != 0)
    return rc;

  struct crew__task t = {.fn = fn,
                         .submit_ns = pool->timed ? crew__now_ns() : 0};
  crew_future *f = NULL;
  if (futurep == NULL && out_size == 0 && in_size <= CREW__INLINE_IN) {
    t.kind = CREW__TASK_PLAIN; /* fire and forget: no allocation */
    t.in_size = (uint32_t)in_size;
    if (in_size > 0)
      memcpy(t.in, in, in_size);
  } else {
    rc = crew__future_create(&f, pool, fn, in, in_size, out_size);
    if (rc != 0)
      return rc;
    crew__future_set_submitted(f, t.submit_ns);
    t.kind = CREW__TASK_FUTURE;
    t.ptr = f;
  }

  crew__pool_count_submitted(pool, 1);
  rc = crew__pool_enqueue(pool, &t, timeout_ns);
  if (rc != 0) {
    crew__pool_uncount_submitted(pool, 1);
    if (f != NULL)
      crew__future_discard(f);
    return rc;
  }
  if (futurep != NULL)
    *futurep = f;
  else if (f != NULL)
    crew_future_release(f); /* fire and forget with output or large input */
  return 0;
}

int crew_submit(crew_pool *pool, crew_fn fn, const void *in, size_t in_size,
                size_t out_size, crew_future **future)
{
  return submit(pool, fn, in, in_size, out_size, future, CREW_FOREVER);
}

int crew_submit_timed(crew_pool *pool, crew_fn fn, const void *in,
                      size_t in_size, size_t out_size, crew_future **future,
                      uint64_t timeout_ns)
{
  return submit(pool, fn, in, in_size, out_size, future, timeout_ns);
}

/* ------------------------------------------------------------- create */

uint64_t crew__idle_spin_ns(const crew_config *cfg)
{
  if (cfg->idle_spin_ns == 0)
    return CREW_IDLE_SPIN_DEFAULT_NS;
  return cfg->idle_spin_ns == CREW_IDLE_SPIN_OFF ? 0 : cfg->idle_spin_ns;
}

void crew_config_init(crew_config *cfg)
{
  if (cfg != NULL)
    *cfg = (crew_config){.mode = CREW_THREADS};
}

static int check_config(const crew_config *cfg, size_t *workers)
{
  if (cfg->mode != CREW_THREADS && cfg->mode != CREW_PROCESSES)
    return CREW_EINVAL;
  if (cfg->mode == CREW_THREADS &&
      (cfg->task_timeout_ns != 0 || cfg->max_tasks_per_worker != 0))
    return CREW_EINVAL; /* threads cannot be killed or recycled */
  *workers = cfg->workers != 0 ? cfg->workers : crew__cpu_count();
  if (*workers > CREW_WORKERS_MAX || *workers > crew__thread_limit())
    return CREW_EINVAL;
  return 0;
}

/* Free what pool_alloc made; the workers are not running. */
static void pool_free(crew_pool *pool)
{
  crew__procpool_destroy(pool->proc);
  crew_queue_destroy(pool->queue);
  crew__future_cache_release(pool->futures);
  crew__fork_guard_fini(&pool->fork_guard);
  crew__mutex_destroy(&pool->join_lock);
  crew__mutex_destroy(&pool->lat_lock);
  crew__mutex_destroy(&pool->start_lock);
  crew__cond_destroy(&pool->start_cv);
  crew__maps_fini(&pool->maps);
  free(pool->lat_base);
  free(pool->workers);
  free(pool->name);
  free(pool);
}

static int pool_alloc(crew_pool **pp, const crew_config *cfg, size_t nworkers)
{
  crew_pool *pool = crew__calloc(1, sizeof *pool);
  if (pool == NULL)
    return CREW_ENOMEM;
  if (crew__mutex_init(&pool->join_lock) != 0) {
    free(pool);
    return CREW_ENOMEM;
  }
  if (crew__mutex_init(&pool->lat_lock) != 0) {
    crew__mutex_destroy(&pool->join_lock);
    free(pool);
    return CREW_ENOMEM;
  }
  if (crew__mutex_init(&pool->start_lock) != 0) {
    crew__mutex_destroy(&pool->lat_lock);
    crew__mutex_destroy(&pool->join_lock);
    free(pool);
    return CREW_ENOMEM;
  }
  if (crew__cond_init(&pool->start_cv) != 0) {
    crew__mutex_destroy(&pool->start_lock);
    crew__mutex_destroy(&pool->lat_lock);
    crew__mutex_destroy(&pool->join_lock);
    free(pool);
    return CREW_ENOMEM;
  }
  if (crew__maps_init(&pool->maps) != 0) {
    crew__cond_destroy(&pool->start_cv);
    crew__mutex_destroy(&pool->start_lock);
    crew__mutex_destroy(&pool->lat_lock);
    crew__mutex_destroy(&pool->join_lock);
    free(pool);
    return CREW_ENOMEM;
  }
  atomic_init(&pool->lat_epoch, 0);
  pool->latency = cfg->latency_stats;
  pool->idle_spin_ns = crew__idle_spin_ns(cfg);
  pool->on_start = cfg->on_task_start;
  pool->on_finish = cfg->on_task_finish;
  pool->hook_arg = cfg->hook_arg;
  pool->timed =
      pool->latency || pool->on_start != NULL || pool->on_finish != NULL;
  if ((pool->latency &&
       (pool->lat_base = crew__calloc(2, sizeof *pool->lat_base)) == NULL) ||
      crew__future_cache_create(&pool->futures) != 0) {
    pool_free(pool);
    return CREW_ENOMEM;
  }
  crew__fork_guard_init(&pool->fork_guard);
  atomic_init(&pool->own_state, OPEN);
  pool->state = &pool->own_state;
  atomic_init(&pool->alive, 0);
  atomic_init(&pool->submitted, 0);
  atomic_init(&pool->cancelled, 0);
  pool->nworkers = nworkers;
  pool->max_in = cfg->max_in_size;
  pool->max_out = cfg->max_out_size;
  pool->init = cfg->init;
  pool->init_arg = cfg->init_arg;
  if (cfg->mode == CREW_PROCESSES) {
    int rc = crew__procpool_create(&pool->proc, pool, cfg, nworkers);
    if (rc != 0) {
      pool_free(pool);
      return rc;
    }
    pool->state = crew__procpool_state(pool->proc); /* shared with workers */
    *pp = pool;
    return 0;
  }

  size_t capacity = cfg->queue_capacity != 0 ? cfg->queue_capacity
                                             : CREW_QUEUE_CAPACITY_DEFAULT;
  int rc =
      crew_queue_create(&pool->queue, capacity, sizeof(struct crew__task), 0);
  pool->name = crew__strdup(cfg->name != NULL ? cfg->name : "crew");
  pool->workers = crew__aligned_alloc(alignof(struct crew__worker),
                                      nworkers * sizeof(struct crew__worker));
  if (rc == 0 && (pool->name == NULL || pool->workers == NULL))
    rc = CREW_ENOMEM;
  if (rc != 0) {
    pool_free(pool);
    return rc;
  }
  *pp = pool;
  return 0;
}

/* Stop and join the first n workers (create failed). */
static void unstart_workers(crew_pool *pool, size_t n)
{
  crew_queue_close(pool->queue);
  for (size_t j = 0; j < n; j++)
    crew__thread_join(&pool->workers[j].thread);
}

/* Start the workers and wait until each has run its init; on failure stop
 * and join those already started. */
static int start_workers(crew_pool *pool)
{
  for (size_t i = 0; i < pool->nworkers; i++) {
    struct crew__worker *w = &pool->workers[i];
    memset(w, 0, sizeof *w);
    w->pool = pool;
    w->index = i;
    atomic_fetch_add_explicit(&pool->alive, 1, memory_order_relaxed);
    if (crew__thread_start(&w->thread, worker_main, w) != 0) {
      atomic_fetch_sub_explicit(&pool->alive, 1, memory_order_relaxed);
      unstart_workers(pool, i);
      return CREW_ENOMEM;
    }
  }
  crew__mutex_lock(&pool->start_lock);
  while (pool->started < pool->nworkers)
    crew__cond_wait(&pool->start_cv, &pool->start_lock,
                    (crew__deadline){CREW__NEVER});
  int rc = pool->init_error;
  crew__mutex_unlock(&pool->start_lock);
  if (rc != 0)
    unstart_workers(pool, pool->nworkers);
  return rc;
}

int crew_pool_create(crew_pool **pp, const crew_config *cfg)
{
  crew_config defaults;
  if (pp == NULL)
    return CREW_EINVAL;
  if (cfg == NULL) {
    crew_config_init(&defaults);
    cfg = &defaults;
  }
  size_t nworkers;
  int rc = check_config(cfg, &nworkers);
  if (rc != 0)
    return rc;
  crew_pool *pool;
  if ((rc = pool_alloc(&pool, cfg, nworkers)) != 0)
    return rc;
  if (pool->proc == NULL && (rc = start_workers(pool)) != 0) {
    pool_free(pool);
    return rc;
  }
  *pp = pool;
  return 0;
}

/* ----------------------------------------------------------- shutdown */

/* Thread mode, after a CREW_CANCEL shutdown began: cancel what is queued
 * here and now, without waiting for a worker to reach it. */
static void cancel_queued(crew_pool *pool)
{
  struct crew__task t;
  while (crew_queue_pop_timed(pool->queue, &t, 0) == 0)
    drop_task(pool, &t);
  crew__maps_cancel(&pool->maps);
}

/* The first caller decides how the pool stops and closes the queue; after
 * CREW_CANCEL, every caller cancels what is still queued. */
static void begin_shutdown(crew_pool *pool, int how)
{
  int state = OPEN;
  int to = how == CREW_CANCEL ? CANCELLING : DRAINING;
  bool first = atomic_compare_exchange_strong_explicit(
      pool->state, &state, to, memory_order_acq_rel, memory_order_acquire);
  if (first)
    state = to;
  if (pool->proc != NULL) {
    crew__procpool_begin_stop(pool->proc,
                              state == CANCELLING ? CREW_CANCEL : CREW_DRAIN);
    return;
  }
  if (first)
    crew_queue_close(pool->queue);
  if (state == CANCELLING)
    cancel_queued(pool);
}

static void join_workers(crew_pool *pool)
{
  crew__mutex_lock(&pool->join_lock);
  if (!pool->joined && pool->proc != NULL)
    crew__procpool_join(pool->proc);
  else if (!pool->joined)
    for (size_t i = 0; i < pool->nworkers; i++)
      crew__thread_join(&pool->workers[i].thread);
  pool->joined = true;
  crew__mutex_unlock(&pool->join_lock);
}

int crew_pool_shutdown(crew_pool *pool, int how)
{
  if (pool == NULL || (how != CREW_DRAIN && how != CREW_CANCEL) ||
      !crew__fork_guard_same_process(&pool->fork_guard))
    return CREW_EINVAL;
  begin_shutdown(pool, how);
  if (crew__pool_worker(pool) != NULL ||
      (pool->proc != NULL && crew__procpool_owns_thread(pool->proc)))
    return CREW_EBUSY; /* a thread cannot join itself */
  join_workers(pool);
  return 0;
}

void crew_pool_destroy(crew_pool *pool)
{
  if (pool == NULL)
    return;
  /* In a forked child the workers do not exist and the locks may have been
   * copied while held: leave the child's copy alone. */
  if (!crew__fork_guard_same_process(&pool->fork_guard))
    return;
  begin_shutdown(pool, CREW_DRAIN);
  join_workers(pool);
  pool_free(pool);
}

/* -------------------------------------------------------------- stats */

/* ------------------------------------------------------------ latency */

uint64_t crew__pool_latency_epoch(crew_pool *pool)
{
  return crew__read(&pool->lat_epoch);
}

/* The sums of every histogram of the pool: [0] queue wait, [1] run. */
static void latency_sums(crew_pool *pool, struct crew__hist_sum sums[2],
                         uint64_t epoch)
{
  memset(sums, 0, 2 * sizeof sums[0]);
  if (pool->proc != NULL) {
    struct crew__hist *h[2];
    crew__procpool_histograms(pool->proc, h);
    crew__hist_add(&sums[0], h[0], epoch);
    crew__hist_add(&sums[1], h[1], epoch);
    return;
  }
  for (size_t i = 0; i < pool->nworkers; i++) {
    crew__hist_add(&sums[0], &pool->workers[i].wait_hist, epoch);
    crew__hist_add(&sums[1], &pool->workers[i].run_hist, epoch);
  }
}

static int check_latency(crew_pool *pool)
{
  if (pool == NULL || !pool->latency ||
      !crew__fork_guard_same_process(&pool->fork_guard))
    return CREW_EINVAL;
  return 0;
}

int crew_pool_latency(crew_pool *pool, crew_latency *queue_wait,
                      crew_latency *run)
{
  int rc = check_latency(pool);
  if (rc != 0)
    return rc;
  struct crew__hist_sum sums[2];
  crew__mutex_lock(&pool->lat_lock);
  latency_sums(pool, sums, crew__read(&pool->lat_epoch));
  crew__hist_subtract(&sums[0], &pool->lat_base[0]);
  crew__hist_subtract(&sums[1], &pool->lat_base[1]);
  crew__mutex_unlock(&pool->lat_lock);
  if (queue_wait != NULL)
    crew__hist_report(&sums[0], queue_wait);
  if (run != NULL)
    crew__hist_report(&sums[1], run);
  return 0;
}

int crew_pool_latency_reset(crew_pool *pool)
{
  int rc = check_latency(pool);
  if (rc != 0)
    return rc;
  crew__mutex_lock(&pool->lat_lock);
  /* New maxima start with the new epoch; the buckets so far become the
   * baseline that later reports subtract. */
  atomic_fetch_add_explicit(&pool->lat_epoch, 1, memory_order_relaxed);
  latency_sums(pool, pool->lat_base, crew__read(&pool->lat_epoch));
  crew__mutex_unlock(&pool->lat_lock);
  return 0;
}

/* -------------------------------------------------------------- stats */

static size_t difference(uint64_t a, uint64_t b)
{
  return a > b ? (size_t)(a - b) : 0;
}

int crew_pool_stats(crew_pool *pool, crew_stats *st)
{
  if (pool == NULL || st == NULL ||
      !crew__fork_guard_same_process(&pool->fork_guard))
    return CREW_EINVAL;
  if (pool->proc != NULL) {
    crew__procpool_stats(pool->proc, st);
    return 0;
  }
  /* Read what happens later first, so no difference goes negative. */
  uint64_t completed = 0, failed = 0, started = 0;
  for (size_t i = 0; i < pool->nworkers; i++) {
    completed += crew__read(&pool->workers[i].counters.completed);
    failed += crew__read(&pool->workers[i].counters.failed);
  }
  for (size_t i = 0; i < pool->nworkers; i++)
    started += crew__read(&pool->workers[i].counters.started);
  uint64_t cancelled = crew__read(&pool->cancelled);
  uint64_t submitted = crew__read(&pool->submitted);
  memset(st, 0, sizeof *st); /* padding too: a caller may compare */
  st->submitted = submitted;
  st->completed = completed;
  st->failed = failed;
  st->cancelled = cancelled;
  st->queued = difference(submitted, started + cancelled);
  st->running = difference(started, completed);
  st->workers = atomic_load_explicit(&pool->alive, memory_order_acquire);
  return 0;
}
