/*
 * pool.c - the pool's front end: the public calls of crew/pool.h, their
 * argument checks, the configuration, the fork guard and the pool's state
 * word. Where tasks run is a backend's business (backend.h): worker threads
 * or worker processes, picked once at create; nothing here asks which.
 *
 * State: `state` goes OPEN -> DRAINING or OPEN -> CANCELLING once, by one
 * compare-and-swap that decides both that the pool stops and how: the first
 * shutdown wins, but for one exception: CREW_KILL (a backend that can kill
 * its workers) moves DRAINING on to CANCELLING. Every shutdown call then
 * tells the backend (ops->stop): the first closes its queue, and after
 * CREW_CANCEL every call cancels what is still queued, at once, before it
 * waits; a CREW_KILL then has the backend kill what runs (ops->kill).
 * CREW_NOWAIT returns before the join. Then one caller joins the
 * backend under `join_lock` (`joined`), and later ones wait for it and
 * return. A thread the join would wait for (a worker, a process pool's
 * callback thread) cannot join: its shutdown begins the stop and returns
 * CREW_EBUSY.
 *
 * Latency: the backend's workers record into their own histograms; a reset
 * keeps their sums as a baseline (`lat_base`, under `lat_lock`) and bumps
 * `lat_epoch`, which tags each worker's exact maximum.
 *
 * Locking: join_lock guards joined; lat_lock guards lat_base. Lock order:
 * join_lock, then whatever the backend takes.
 */
#include "config.h"

#include "backend.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

enum pool_state {
  OPEN = CREW__POOL_OPEN,
  DRAINING = CREW__POOL_DRAINING,
  CANCELLING = CREW__POOL_CANCELLING
};

struct crew_pool {
  const struct crew__backend_ops *ops;
  struct crew__backend *b;
  crew__fork_guard fork_guard;
  _Atomic int state; /* enum pool_state */
  crew__mutex join_lock;
  bool joined; /* guarded by join_lock */
  crew__mutex lat_lock;
  _Atomic uint64_t lat_epoch;      /* resets so far */
  struct crew__hist_sum *lat_base; /* [0] queue wait, [1] run (lat_lock) */
  struct crew__cfg cfg;            /* constant after create */
};

/* Whether the pool is usable from here: not shut down, same process. */
static int check_open(const crew_pool *pool)
{
  if (!crew__fork_guard_same_process(&pool->fork_guard))
    return CREW_EINVAL;
  if (atomic_load_explicit(&pool->state, memory_order_acquire) != OPEN)
    return CREW_ECLOSED;
  return 0;
}

/* ------------------------------------------------------------- create */

void crew_config_init(crew_config *cfg)
{
  if (cfg != NULL)
    *cfg = (crew_config){.mode = CREW_THREADS};
}

/* The most threads this process may have, as far as RLIMIT_NPROC says
 * (it counts the user's threads in every process: only an upper bound). */
static size_t thread_limit(void)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NPROC, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
    return SIZE_MAX;
  return rl.rlim_cur > SIZE_MAX ? SIZE_MAX : (size_t)rl.rlim_cur;
}

/* Check cfg and resolve it into *out (the name not yet copied). */
static int resolve_config(const crew_config *cfg, struct crew__cfg *out)
{
  bool threads = cfg->mode == CREW_THREADS;
  if (!threads && cfg->mode != CREW_PROCESSES)
    return CREW_EINVAL;
  if (threads && (cfg->task_timeout_ns != 0 || cfg->max_tasks_per_worker != 0))
    return CREW_EINVAL; /* threads cannot be killed or recycled */
  size_t workers = cfg->workers != 0 ? cfg->workers : crew__cpu_count();
  if (workers > CREW_WORKERS_MAX || workers > thread_limit())
    return CREW_EINVAL;
  size_t unlimited = threads ? SIZE_MAX : CREW_TASK_BYTES_DEFAULT;
  *out = (struct crew__cfg){
      .workers = workers,
      .capacity = cfg->queue_capacity != 0 ? cfg->queue_capacity
                                           : CREW_QUEUE_CAPACITY_DEFAULT,
      .max_in = cfg->max_in_size != 0 ? cfg->max_in_size : unlimited,
      .max_out = cfg->max_out_size != 0 ? cfg->max_out_size : unlimited,
      .init = cfg->init,
      .init_arg = cfg->init_arg,
      .task_timeout_ns = cfg->task_timeout_ns,
      .max_tasks = cfg->max_tasks_per_worker,
      .idle_spin_ns = cfg->idle_spin_ns == 0 ? CREW_IDLE_SPIN_DEFAULT_NS
                      : cfg->idle_spin_ns == CREW_IDLE_SPIN_OFF
                          ? 0
                          : cfg->idle_spin_ns,
      .hooks = {.on_start = cfg->on_task_start,
                .on_finish = cfg->on_task_finish,
                .arg = cfg->hook_arg,
                .latency = cfg->latency_stats,
                .timed = cfg->latency_stats || cfg->on_task_start != NULL ||
                         cfg->on_task_finish != NULL}};
  return 0;
}

/* Free what pool_alloc made; the backend is gone or never was. */
static void pool_free(crew_pool *pool)
{
  crew__fork_guard_fini(&pool->fork_guard);
  crew__mutex_destroy(&pool->join_lock);
  crew__mutex_destroy(&pool->lat_lock);
  free(pool->lat_base);
  free(pool->cfg.name);
  free(pool);
}

static int pool_alloc(crew_pool **pp, const crew_config *cfg)
{
  crew_pool *pool = crew__calloc(1, sizeof *pool);
  if (pool == NULL)
    return CREW_ENOMEM;
  int rc = resolve_config(cfg, &pool->cfg);
  if (rc != 0) {
    free(pool);
    return rc;
  }
  pool->cfg.hooks.epoch = &pool->lat_epoch;
  if (crew__mutex_init(&pool->join_lock) != 0) {
    free(pool);
    return CREW_ENOMEM;
  }
  if (crew__mutex_init(&pool->lat_lock) != 0) {
    crew__mutex_destroy(&pool->join_lock);
    free(pool);
    return CREW_ENOMEM;
  }
  crew__fork_guard_init(&pool->fork_guard);
  atomic_init(&pool->state, OPEN);
  atomic_init(&pool->lat_epoch, 0);
  pool->cfg.name = crew__strdup(cfg->name != NULL ? cfg->name : "crew");
  if (pool->cfg.name == NULL ||
      (cfg->latency_stats &&
       (pool->lat_base = crew__calloc(2, sizeof *pool->lat_base)) == NULL)) {
    pool_free(pool);
    return CREW_ENOMEM;
  }
  pool->ops =
      cfg->mode == CREW_PROCESSES ? &crew__processes_ops : &crew__threads_ops;
  *pp = pool;
  return 0;
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
  crew_pool *pool;
  int rc = pool_alloc(&pool, cfg);
  if (rc != 0)
    return rc;
  if ((rc = pool->ops->create(&pool->b, &pool->cfg, &pool->state)) != 0) {
    pool_free(pool);
    return rc;
  }
  *pp = pool;
  return 0;
}

size_t crew_pool_workers(const crew_pool *pool)
{
  return pool == NULL ? 0 : pool->cfg.workers;
}

/* ------------------------------------------------------ submit and map */

int crew__pool_admits(crew_pool *pool, crew_fn fn, size_t in_size,
                      size_t out_size)
{
  /* A forked child (a worker process too) has a copy of the pool as it
   * was when it was forked: look no further into it. */
  if (pool == NULL || !crew__fork_guard_same_process(&pool->fork_guard) ||
      fn == NULL || in_size > pool->cfg.max_in || out_size > pool->cfg.max_out)
    return CREW_EINVAL;
  if (pool->ops->check != NULL) {
    int rc = pool->ops->check(pool->b, fn, NULL);
    if (rc != 0)
      return rc;
  }
  if (atomic_load_explicit(&pool->state, memory_order_acquire) != OPEN)
    return CREW_ECLOSED;
  return 0;
}

/* Every case the inline path below leaves: bad arguments, a forked child,
 * a backend with arguments of its own to judge (processes; those first,
 * then the state), a pool shut down. */
static __attribute__((noinline)) int submit_slow(crew_pool *pool,
                                                 const struct crew__call *c)
{
  if (c->in == NULL && c->in_size > 0)
    return CREW_EINVAL;
  int rc = crew__pool_admits(pool, c->fn, c->in_size, c->out_size);
  return rc != 0 ? rc : pool->ops->submit(pool->b, c);
}

/* Inline into both public calls: this is every task's first step, each
 * check once and no call but the backend's. */
static inline __attribute__((always_inline)) int
submit(crew_pool *pool, crew_fn fn, const void *in, size_t in_size,
       size_t out_size, crew_future **future, uint64_t timeout_ns)
{
  struct crew__call c = {fn,       in,     in_size,
                         out_size, future, crew__deadline_in(timeout_ns)};
  if (__builtin_expect(
          pool == NULL || pool->fork_guard.page == NULL ||
              *pool->fork_guard.page != CREW__FORK_MARK || fn == NULL ||
              (in == NULL && in_size > 0) || in_size > pool->cfg.max_in ||
              out_size > pool->cfg.max_out || pool->ops->check != NULL ||
              atomic_load_explicit(&pool->state, memory_order_acquire) != OPEN,
          0))
    return submit_slow(pool, &c);
  return pool->ops->submit(pool->b, &c);
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

int crew_map(crew_pool *pool, crew_fn fn, const void *in, size_t in_stride,
             void *out, size_t out_stride, size_t count)
{
  if (pool == NULL || !crew__fork_guard_same_process(&pool->fork_guard) ||
      fn == NULL || (in == NULL && in_stride != 0) ||
      (out == NULL && out_stride != 0) ||
      (in_stride != 0 && count > SIZE_MAX / in_stride) ||
      (out_stride != 0 && count > SIZE_MAX / out_stride))
    return CREW_EINVAL; /* count * stride overflows */
  struct crew__map_args m = {fn, in, in_stride, out, out_stride, count};
  int rc = pool->ops->check != NULL ? pool->ops->check(pool->b, fn, &m) : 0;
  if (rc == 0)
    rc = check_open(pool);
  if (rc != 0 || count == 0)
    return rc;
  return pool->ops->map(pool->b, &m);
}

/* ----------------------------------------------------------- shutdown */

/* The first caller decides how the pool stops (a kill moves a drain on to a
 * cancel); every caller tells the backend. */
static void begin_shutdown(crew_pool *pool, int how)
{
  int state = OPEN;
  int to = how == CREW_DRAIN ? DRAINING : CANCELLING;
  while (!atomic_compare_exchange_weak_explicit(
      &pool->state, &state, to, memory_order_acq_rel, memory_order_acquire))
    if (state == CANCELLING || (state == DRAINING && how != CREW_KILL)) {
      to = state;
      break;
    }
  pool->ops->stop(pool->b, to == CANCELLING ? CREW_CANCEL : CREW_DRAIN);
  if (how == CREW_KILL)
    pool->ops->kill(pool->b);
}

static void join(crew_pool *pool)
{
  crew__mutex_lock(&pool->join_lock);
  if (!pool->joined)
    pool->ops->join(pool->b);
  pool->joined = true;
  crew__mutex_unlock(&pool->join_lock);
}

int crew_pool_shutdown(crew_pool *pool, int how)
{
  int nowait = how & CREW_NOWAIT;
  how &= ~CREW_NOWAIT;
  if (pool == NULL ||
      (how != CREW_DRAIN && how != CREW_CANCEL && how != CREW_KILL) ||
      (how == CREW_KILL && pool->ops->kill == NULL) ||
      !crew__fork_guard_same_process(&pool->fork_guard))
    return CREW_EINVAL;
  begin_shutdown(pool, how);
  if (nowait)
    return 0;
  if (pool->ops->owns_thread(pool->b))
    return CREW_EBUSY; /* a thread cannot join itself */
  join(pool);
  return 0;
}

int crew_pool_wait_idle(crew_pool *pool, uint64_t timeout_ns)
{
  crew__deadline d = crew__deadline_in(timeout_ns);
  if (pool == NULL || !crew__fork_guard_same_process(&pool->fork_guard))
    return CREW_EINVAL;
  if (pool->ops->owns_thread(pool->b))
    return CREW_EBUSY; /* it would wait for itself */
  return pool->ops->wait_idle(pool->b, d);
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
  join(pool);
  pool->ops->destroy(pool->b);
  pool_free(pool);
}

/* ------------------------------------------------------ stats, latency */

int crew_pool_stats(crew_pool *pool, crew_stats *st)
{
  if (pool == NULL || st == NULL ||
      !crew__fork_guard_same_process(&pool->fork_guard))
    return CREW_EINVAL;
  memset(st, 0, sizeof *st); /* padding too: a caller may compare */
  pool->ops->stats(pool->b, st);
  return 0;
}

static int check_latency(crew_pool *pool)
{
  if (pool == NULL || !pool->cfg.hooks.latency ||
      !crew__fork_guard_same_process(&pool->fork_guard))
    return CREW_EINVAL;
  return 0;
}

/* The sums of the backend's histograms for `epoch`. */
static void latency_sums(crew_pool *pool, struct crew__hist_sum sums[2],
                         uint64_t epoch)
{
  memset(sums, 0, 2 * sizeof sums[0]);
  pool->ops->latency(pool->b, sums, epoch);
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
