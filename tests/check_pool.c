/*
 * check_pool.c - the pool: configuration, workers (init, names, signal
 * masks), submit and backpressure, shutdown (DRAIN, CANCEL, from inside a
 * task, concurrent), destroy, stats, fork, and create/destroy churn.
 *
 * Tasks that must be running while the test looks are parked on a gate
 * (struct lot): they post "started", then wait until the test opens the
 * gate, so "N tasks running, M queued" is a state the test reaches exactly.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* CPU_COUNT, sched_getaffinity, pthread_getname_np */
#endif

#include "testutil.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* -------------------------------------------------------------- helpers */

/* Something to point at, to see that an out pointer was left untouched. */
static char sentinel;
#define NO_FUTURE ((crew_future *)(void *)&sentinel)
#define NO_POOL   ((crew_pool *)(void *)&sentinel)

/* A parking lot: tasks post `started`, then wait at the gate. */
struct lot {
  gate g;
  signal_box started;
};

static void lot_init(struct lot *l)
{
  gate_init(&l->g);
  signal_init(&l->started);
}

static void lot_fini(struct lot *l)
{
  gate_fini(&l->g);
  signal_fini(&l->started);
}

static int park_task(const void *in, void *out)
{
  (void)out;
  struct lot *l = *(struct lot *const *)in;
  signal_post(&l->started);
  gate_pass(&l->g);
  return 0;
}

/* Submit n parked tasks (futures to fs[i] if fs is not NULL) and wait until
 * all n are running: with n workers, every worker is then busy. */
static void park(crew_pool *pool, struct lot *l, size_t n, crew_future **fs)
{
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(crew_submit(pool, park_task, &l, sizeof l, 0,
                                 fs != NULL ? &fs[i] : NULL),
                     0);
  signal_wait(&l->started, n);
}

/* A task that counts that it ran and returns a given status. */
struct job {
  _Atomic size_t *ran;
  int status;
};

static int job_task(const void *in, void *out)
{
  (void)out;
  const struct job *j = in;
  atomic_fetch_add(j->ran, 1);
  return j->status;
}

static int noop_task(const void *in, void *out)
{
  (void)in;
  (void)out;
  return 0;
}

/* Work on another thread: a shutdown, or a submit that may block. */
struct bg {
  pthread_t thread;
  crew_pool *pool;
  int how;             /* bg_shutdown */
  struct job job;      /* bg_submit */
  crew_future *future; /* bg_submit */
  int rc;
  signal_box done;
};

static void *bg_shutdown(void *arg)
{
  struct bg *b = arg;
  b->rc = crew_pool_shutdown(b->pool, b->how);
  signal_post(&b->done);
  return NULL;
}

static void *bg_submit(void *arg)
{
  struct bg *b = arg;
  b->rc = crew_submit(b->pool, job_task, &b->job, sizeof b->job, 0, &b->future);
  signal_post(&b->done);
  return NULL;
}

static void bg_start(struct bg *b, void *(*fn)(void *))
{
  signal_init(&b->done);
  ck_assert_int_eq(pthread_create(&b->thread, NULL, fn, b), 0);
}

/* Wait (at most 10 s) for the thread's call to return, then join it. */
static void bg_join(struct bg *b)
{
  signal_wait(&b->done, 1);
  ck_assert_int_eq(pthread_join(b->thread, NULL), 0);
  signal_fini(&b->done);
}

/*
 * Wait until a shutdown started on another thread has begun. The pool's
 * queue must be full and its workers parked: a submit then blocks until the
 * shutdown closes the queue and wakes it with CREW_ECLOSED (its task never
 * exists, so no counter changes).
 */
static void wait_for_shutdown_to_begin(crew_pool *pool)
{
  crew_future *f = NO_FUTURE;
  ck_assert_int_eq(
      crew_submit_timed(pool, noop_task, NULL, 0, 0, &f, 10000 * MS),
      CREW_ECLOSED);
  ck_assert_ptr_eq(f, NO_FUTURE);
}

static void assert_stats(crew_pool *pool, uint64_t submitted,
                         uint64_t completed, uint64_t failed,
                         uint64_t cancelled, size_t queued, size_t running,
                         size_t workers)
{
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, submitted);
  ck_assert_uint_eq(st.completed, completed);
  ck_assert_uint_eq(st.failed, failed);
  ck_assert_uint_eq(st.cancelled, cancelled);
  ck_assert_uint_eq(st.queued, queued);
  ck_assert_uint_eq(st.running, running);
  ck_assert_uint_eq(st.workers, workers);
}

static crew_pool *make_named_pool(size_t workers, const char *name)
{
  crew_config cfg = pool_config(CREW_THREADS, workers);
  cfg.name = name;
  return pool_create(&cfg);
}

static size_t affinity_cpus(void)
{
  cpu_set_t set;
  CPU_ZERO(&set);
  ck_assert_int_eq(sched_getaffinity(0, sizeof set, &set), 0);
  return (size_t)CPU_COUNT(&set);
}

/* --------------------------------------------------------------- config */

START_TEST(config_init_gives_the_defaults)
{
  crew_config cfg;
  memset(&cfg, 0xab, sizeof cfg);
  crew_config_init(&cfg);
  ck_assert_int_eq(cfg.mode, CREW_THREADS);
  ck_assert_uint_eq(cfg.workers, 0);
  ck_assert_uint_eq(cfg.queue_capacity, 0);
  ck_assert(cfg.init == NULL);
  ck_assert_ptr_null(cfg.init_arg);
  ck_assert_ptr_null(cfg.name);
  ck_assert_uint_eq(cfg.max_in_size, 0);
  ck_assert_uint_eq(cfg.max_out_size, 0);
  ck_assert_uint_eq(cfg.task_timeout_ns, 0);
  ck_assert_uint_eq(cfg.max_tasks_per_worker, 0);
  crew_config_init(NULL); /* a no-op, no crash */
}
END_TEST

START_TEST(create_needs_an_out_pointer)
{
  crew_config cfg;
  crew_config_init(&cfg);
  ck_assert_int_eq(crew_pool_create(NULL, NULL), CREW_EINVAL);
  ck_assert_int_eq(crew_pool_create(NULL, &cfg), CREW_EINVAL);
}
END_TEST

START_TEST(default_workers_are_the_affinity_cpus)
{
  size_t cpus = affinity_cpus();
  ck_assert_uint_ge(cpus, 1);

  crew_pool *pool = NULL;
  ck_assert_int_eq(crew_pool_create(&pool, NULL), 0);
  ck_assert_ptr_nonnull(pool);
  ck_assert_uint_eq(crew_pool_workers(pool), cpus);
  assert_stats(pool, 0, 0, 0, 0, 0, 0, cpus);
  crew_pool_destroy(pool);

  crew_config cfg;
  crew_config_init(&cfg);
  ck_assert_int_eq(crew_pool_create(&pool, &cfg), 0);
  ck_assert_uint_eq(crew_pool_workers(pool), cpus);
  crew_pool_destroy(pool);

  /* Restricted to one CPU, the default is one worker: the affinity mask
   * counts, not the CPUs online. */
  cpu_set_t all, one;
  CPU_ZERO(&all);
  ck_assert_int_eq(sched_getaffinity(0, sizeof all, &all), 0);
  int first = 0;
  while (!CPU_ISSET(first, &all))
    first++;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  ck_assert_int_eq(sched_setaffinity(0, sizeof one, &one), 0);
  ck_assert_int_eq(crew_pool_create(&pool, NULL), 0);
  ck_assert_int_eq(sched_setaffinity(0, sizeof all, &all), 0);
  ck_assert_uint_eq(crew_pool_workers(pool), 1);
  assert_stats(pool, 0, 0, 0, 0, 0, 0, 1);
  crew_pool_destroy(pool);
}
END_TEST

static const int bad_modes[] = {CREW_PROCESSES + 1, 7, -1};

START_TEST(unknown_mode_is_refused)
{
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.mode = bad_modes[_i];
  crew_pool *pool = NO_POOL;
  ck_assert_int_eq(crew_pool_create(&pool, &cfg), CREW_EINVAL);
  ck_assert_ptr_eq(pool, NO_POOL);
}
END_TEST

static const size_t bad_workers[] = {CREW_WORKERS_MAX + 1, SIZE_MAX};

START_TEST(process_only_fields_are_refused_with_threads)
{
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.task_timeout_ns = 1000000;
  crew_pool *pool = NO_POOL;
  ck_assert_int_eq(crew_pool_create(&pool, &cfg), CREW_EINVAL);
  ck_assert_ptr_eq(pool, NO_POOL);
  crew_config_init(&cfg);
  cfg.max_tasks_per_worker = 10;
  ck_assert_int_eq(crew_pool_create(&pool, &cfg), CREW_EINVAL);
  ck_assert_ptr_eq(pool, NO_POOL);
}
END_TEST

START_TEST(too_many_workers_are_refused)
{
  crew_config cfg = pool_config(CREW_THREADS, bad_workers[_i]);
  crew_pool *pool = NO_POOL;
  ck_assert_int_eq(crew_pool_create(&pool, &cfg), CREW_EINVAL);
  ck_assert_ptr_eq(pool, NO_POOL);
}
END_TEST

/* A slot holds at least a function pointer: 8 bytes or more, so capacity *
 * slot size overflows size_t for these. */
static const size_t bad_capacities[] = {SIZE_MAX, SIZE_MAX / 2, SIZE_MAX / 4};

START_TEST(overflowing_queue_capacity_is_refused)
{
  crew_config cfg = pool_config(CREW_THREADS, 1);
  cfg.queue_capacity = bad_capacities[_i];
  crew_pool *pool = NO_POOL;
  ck_assert_int_eq(crew_pool_create(&pool, &cfg), CREW_EINVAL);
  ck_assert_ptr_eq(pool, NO_POOL);
}
END_TEST

static const size_t exact_workers[] = {1, 3};

START_TEST(pool_has_exactly_the_workers_asked)
{
  size_t n = exact_workers[_i];
  crew_pool *pool = make_pool(n, 0);
  ck_assert_uint_eq(crew_pool_workers(pool), n);
  assert_stats(pool, 0, 0, 0, 0, 0, 0, n);
  /* n tasks run at once, and the next one waits: there are n workers. */
  struct lot lot, *lp = &lot;
  lot_init(&lot);
  park(pool, &lot, n, NULL);
  ck_assert_int_eq(crew_submit(pool, park_task, &lp, sizeof lp, 0, NULL), 0);
  ck_assert_int_eq(signal_try(&lot.started, 50 * MS), CREW_ETIMEDOUT);
  assert_stats(pool, n + 1, 0, 0, 0, 1, n, n);
  gate_open(&lot.g, n + 1);
  crew_pool_destroy(pool);
  signal_wait(&lot.started, 1);
  lot_fini(&lot);
}
END_TEST

START_TEST(workers_of_null_is_zero)
{
  ck_assert_uint_eq(crew_pool_workers(NULL), 0);
}
END_TEST

/* ----------------------------------------------------------------- init */

struct init_ctx {
  pthread_t creator;
  _Atomic int calls;
  _Atomic int wrong_arg;
  _Atomic int on_creator;
  _Atomic int task_before_init; /* a task ran on a thread before its init */
  _Atomic int init_twice;       /* init ran twice on one thread */
  struct lot lot;
};

static _Thread_local int init_calls_here;
static struct init_ctx *the_init_ctx;

static int count_init(void *arg)
{
  struct init_ctx *ctx = the_init_ctx;
  if (arg != ctx)
    atomic_fetch_add(&ctx->wrong_arg, 1);
  if (pthread_equal(pthread_self(), ctx->creator))
    atomic_fetch_add(&ctx->on_creator, 1);
  if (init_calls_here++ != 0)
    atomic_fetch_add(&ctx->init_twice, 1);
  atomic_fetch_add(&ctx->calls, 1);
  return 0;
}

static int init_check_task(const void *in, void *out)
{
  (void)out;
  struct init_ctx *ctx = *(struct init_ctx *const *)in;
  if (init_calls_here != 1)
    atomic_fetch_add(&ctx->task_before_init, 1);
  return 0;
}

static int init_park_task(const void *in, void *out)
{
  struct init_ctx *ctx = *(struct init_ctx *const *)in;
  init_check_task(in, out);
  signal_post(&ctx->lot.started);
  gate_pass(&ctx->lot.g);
  return 0;
}

START_TEST(init_runs_once_per_worker_on_the_worker_first)
{
  static struct init_ctx ctx;
  ctx.creator = pthread_self();
  the_init_ctx = &ctx;
  lot_init(&ctx.lot);
  struct init_ctx *p = &ctx;

  crew_config cfg = pool_config(CREW_THREADS, 3);
  cfg.init = count_init;
  cfg.init_arg = &ctx;
  crew_pool *pool = pool_create(&cfg);

  /* Three tasks running at once are on three different workers: each ran
   * its init before the task. */
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(crew_submit(pool, init_park_task, &p, sizeof p, 0, NULL),
                     0);
  signal_wait(&ctx.lot.started, 3);
  ck_assert_int_eq(atomic_load(&ctx.calls), 3);
  gate_open(&ctx.lot.g, 3);

  for (int i = 0; i < 100; i++)
    ck_assert_int_eq(crew_submit(pool, init_check_task, &p, sizeof p, 0, NULL),
                     0);
  crew_pool_destroy(pool);

  ck_assert_int_eq(atomic_load(&ctx.calls), 3);
  ck_assert_int_eq(atomic_load(&ctx.wrong_arg), 0);
  ck_assert_int_eq(atomic_load(&ctx.on_creator), 0);
  ck_assert_int_eq(atomic_load(&ctx.task_before_init), 0);
  ck_assert_int_eq(atomic_load(&ctx.init_twice), 0);
  ck_assert_int_eq(init_calls_here, 0); /* not on the creating thread */
  lot_fini(&ctx.lot);
}
END_TEST

/* ---------------------------------------------------------------- names */

#define NAME_LEN 16

static int name_task(const void *in, void *out)
{
  struct lot *l = *(struct lot *const *)in;
  memset(out, 0, NAME_LEN);
  int rc = pthread_getname_np(pthread_self(), out, NAME_LEN);
  signal_post(&l->started);
  gate_pass(&l->g);
  return rc;
}

static int by_name(const void *a, const void *b)
{
  return strcmp(a, b);
}

/* The names of the n workers of pool, sorted: n name tasks run at once, so
 * each is on a different worker. */
static void worker_names(crew_pool *pool, size_t n, char (*names)[NAME_LEN])
{
  struct lot lot, *lp = &lot;
  lot_init(&lot);
  crew_future **fs = calloc(n, sizeof *fs);
  ck_assert_ptr_nonnull(fs);
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(
        crew_submit(pool, name_task, &lp, sizeof lp, NAME_LEN, &fs[i]), 0);
  signal_wait(&lot.started, n);
  gate_open(&lot.g, n);
  for (size_t i = 0; i < n; i++) {
    ck_assert_int_eq(crew_future_get(fs[i], names[i], NAME_LEN), 0);
    crew_future_release(fs[i]);
  }
  free(fs);
  lot_fini(&lot);
  qsort(names, n, NAME_LEN, by_name);
}

/* Expect the names prefix(i)-i for i < n (sorted like worker_names). */
static void assert_names(char (*names)[NAME_LEN], size_t n,
                         const char *(*prefix)(size_t))
{
  char(*want)[NAME_LEN] = calloc(n, NAME_LEN);
  ck_assert_ptr_nonnull(want);
  for (size_t i = 0; i < n; i++)
    snprintf(want[i], NAME_LEN, "%s-%zu", prefix(i), i);
  qsort(want, n, NAME_LEN, by_name);
  for (size_t i = 0; i < n; i++)
    ck_assert_str_eq(names[i], want[i]);
  free(want);
}

static const char *prefix_crew(size_t i)
{
  (void)i;
  return "crew";
}

static const char *prefix_io(size_t i)
{
  (void)i;
  return "io";
}

static const char *prefix_copy(size_t i)
{
  (void)i;
  return "copy";
}

/* "averyveryverylongname" cut so NAME-INDEX is 15 characters. */
static const char *prefix_long(size_t i)
{
  return i < 10 ? "averyveryvery" : "averyveryver";
}

START_TEST(workers_are_named_crew_by_default)
{
  char names[3][NAME_LEN];
  crew_pool *pool = make_pool(3, 0);
  worker_names(pool, 3, names);
  assert_names(names, 3, prefix_crew);
  crew_pool_destroy(pool);
}
END_TEST

START_TEST(workers_are_named_name_index)
{
  char names[4][NAME_LEN];
  crew_pool *pool = make_named_pool(4, "io");
  worker_names(pool, 4, names);
  assert_names(names, 4, prefix_io);
  crew_pool_destroy(pool);
}
END_TEST

START_TEST(long_names_are_cut_not_the_index)
{
  char one[1][NAME_LEN];
  crew_pool *pool = make_named_pool(1, "averyveryverylongname");
  worker_names(pool, 1, one);
  ck_assert_str_eq(one[0], "averyveryvery-0");
  ck_assert_uint_eq(strlen(one[0]), 15);
  crew_pool_destroy(pool);

  char names[12][NAME_LEN];
  pool = make_named_pool(12, "averyveryverylongname");
  worker_names(pool, 12, names);
  assert_names(names, 12, prefix_long);
  for (size_t i = 0; i < 12; i++)
    ck_assert_uint_eq(strlen(names[i]), 15);
  crew_pool_destroy(pool);
}
END_TEST

START_TEST(the_name_is_copied_at_create)
{
  char *name = strdup("copy");
  ck_assert_ptr_nonnull(name);
  crew_pool *pool = make_named_pool(2, name);
  strcpy(name, "XXXX");
  free(name);
  char names[2][NAME_LEN];
  worker_names(pool, 2, names);
  assert_names(names, 2, prefix_copy);
  crew_pool_destroy(pool);
}
END_TEST

/* --------------------------------------------------------------- submit */

START_TEST(submit_refuses_bad_arguments)
{
  crew_pool *pool = make_pool(1, 0);
  _Atomic size_t ran = 0;
  struct job j = {&ran, 0};
  crew_future *f = NO_FUTURE;
  ck_assert_int_eq(crew_submit(NULL, job_task, &j, sizeof j, 0, &f),
                   CREW_EINVAL);
  ck_assert_int_eq(crew_submit(pool, NULL, &j, sizeof j, 0, &f), CREW_EINVAL);
  ck_assert_int_eq(crew_submit(pool, job_task, NULL, sizeof j, 0, &f),
                   CREW_EINVAL);
  ck_assert_int_eq(crew_submit(pool, job_task, NULL, 1, 0, NULL), CREW_EINVAL);
  ck_assert_int_eq(crew_submit_timed(NULL, job_task, &j, sizeof j, 0, &f, 0),
                   CREW_EINVAL);
  ck_assert_int_eq(crew_submit_timed(pool, NULL, &j, sizeof j, 0, &f, 0),
                   CREW_EINVAL);
  ck_assert_int_eq(
      crew_submit_timed(pool, job_task, NULL, sizeof j, 0, &f, CREW_FOREVER),
      CREW_EINVAL);
  ck_assert_ptr_eq(f, NO_FUTURE);
  crew_pool_destroy(pool);
  ck_assert_uint_eq(atomic_load(&ran), 0);
}
END_TEST

/* Writes whether its input and output pointers were NULL. */
static int null_probe_task(const void *in, void *out)
{
  if (out != NULL)
    *(int *)out = (in == NULL) + 2 * (out == NULL);
  return in == NULL ? 0 : 1;
}

START_TEST(no_input_gives_the_task_null)
{
  crew_pool *pool = make_pool(2, 0);
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, null_probe_task, NULL, 0, sizeof(int), &f),
                   0);
  int r = -1;
  ck_assert_int_eq(crew_future_get(f, &r, sizeof r), 0);
  ck_assert_int_eq(r, 1);
  crew_future_release(f);

  /* No output either: the task gets NULL for both; fire and forget too. */
  ck_assert_int_eq(crew_submit(pool, null_probe_task, NULL, 0, 0, &f), 0);
  ck_assert_int_eq(crew_future_wait(f), 0);
  crew_future_release(f);
  ck_assert_int_eq(crew_submit(pool, null_probe_task, NULL, 0, 0, NULL), 0);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  assert_stats(pool, 3, 3, 0, 0, 0, 0, 0);
  crew_pool_destroy(pool);
}
END_TEST

START_TEST(a_full_queue_pushes_back)
{
  crew_pool *pool = make_pool(1, 2);
  struct lot lot;
  lot_init(&lot);
  crew_future *pf;
  park(pool, &lot, 1, &pf);

  _Atomic size_t ran = 0;
  struct job j = {&ran, 0};
  crew_future *q[2];
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(crew_submit(pool, job_task, &j, sizeof j, 0, &q[i]), 0);

  crew_future *f = NO_FUTURE;
  ck_assert_int_eq(crew_submit_timed(pool, job_task, &j, sizeof j, 0, &f, 0),
                   CREW_ETIMEDOUT);
  ck_assert_ptr_eq(f, NO_FUTURE);
  ck_assert_int_eq(crew_submit_timed(pool, job_task, &j, sizeof j, 0, NULL, 0),
                   CREW_ETIMEDOUT);
  uint64_t t0 = now_ns();
  ck_assert_int_eq(
      crew_submit_timed(pool, job_task, &j, sizeof j, 0, &f, 20 * MS),
      CREW_ETIMEDOUT);
  ck_assert_uint_ge(now_ns() - t0, 20 * MS);
  ck_assert_ptr_eq(f, NO_FUTURE);
  assert_stats(pool, 3, 0, 0, 0, 2, 1, 1);

  /* A blocking submit from another thread waits for room. */
  struct bg b = {.pool = pool, .job = j, .future = NO_FUTURE};
  bg_start(&b, bg_submit);
  ck_assert_int_eq(signal_try(&b.done, 50 * MS), CREW_ETIMEDOUT);
  gate_open(&lot.g, 1);
  bg_join(&b);
  ck_assert_int_eq(b.rc, 0);
  ck_assert_ptr_ne(b.future, NO_FUTURE);
  ck_assert_ptr_nonnull(b.future);

  ck_assert_int_eq(crew_future_wait(pf), 0);
  ck_assert_int_eq(crew_future_wait(q[0]), 0);
  ck_assert_int_eq(crew_future_wait(q[1]), 0);
  ck_assert_int_eq(crew_future_wait(b.future), 0);
  ck_assert_uint_eq(atomic_load(&ran), 3);
  assert_stats(pool, 4, 4, 0, 0, 0, 0, 1);
  crew_future_release(pf);
  crew_future_release(q[0]);
  crew_future_release(q[1]);
  crew_future_release(b.future);
  crew_pool_destroy(pool);
  lot_fini(&lot);
}
END_TEST

static int negative_status_task(const void *in, void *out)
{
  (void)in;
  (void)out;
  return CREW_ECANCELED;
}

START_TEST(a_negative_task_status_is_reported_unchanged)
{
  crew_pool *pool = make_pool(1, 0);
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, negative_status_task, NULL, 0, 0, &f), 0);
  ck_assert_int_eq(crew_future_wait(f), CREW_ECANCELED);
  ck_assert_int_eq(crew_future_status(f), CREW_ECANCELED);
  crew_future_release(f);
  /* It ran: completed and failed, not cancelled. */
  assert_stats(pool, 1, 1, 1, 0, 0, 0, 1);
  crew_pool_destroy(pool);
}
END_TEST

/* ------------------------------------------------------------- shutdown */

enum { BACKLOG = 10000 };

START_TEST(drain_runs_the_whole_backlog)
{
  crew_pool *pool = make_pool(2, BACKLOG);
  struct lot lot;
  lot_init(&lot);
  crew_future *pf[2];
  park(pool, &lot, 2, pf);

  _Atomic size_t ran = 0;
  crew_future **fs = calloc(BACKLOG, sizeof *fs);
  ck_assert_ptr_nonnull(fs);
  uint64_t failed = 0;
  for (int i = 0; i < BACKLOG; i++) {
    struct job j = {&ran, i % 4};
    failed += j.status != 0;
    ck_assert_int_eq(crew_submit(pool, job_task, &j, sizeof j, 0, &fs[i]), 0);
  }
  assert_stats(pool, BACKLOG + 2, 0, 0, 0, BACKLOG, 2, 2);

  struct bg b = {.pool = pool, .how = CREW_DRAIN};
  bg_start(&b, bg_shutdown);
  wait_for_shutdown_to_begin(pool);
  /* The workers are parked: the shutdown cannot have finished. */
  ck_assert_int_eq(signal_try(&b.done, 0), CREW_ETIMEDOUT);
  ck_assert_uint_eq(atomic_load(&ran), 0);
  gate_open(&lot.g, 2);
  bg_join(&b);
  ck_assert_int_eq(b.rc, 0);

  ck_assert_uint_eq(atomic_load(&ran), BACKLOG);
  for (int i = 0; i < BACKLOG; i++) {
    ck_assert(crew_future_done(fs[i]));
    ck_assert_int_eq(crew_future_status(fs[i]), i % 4);
  }
  ck_assert_int_eq(crew_future_status(pf[0]), 0);
  ck_assert_int_eq(crew_future_status(pf[1]), 0);
  assert_stats(pool, BACKLOG + 2, BACKLOG + 2, failed, 0, 0, 0, 0);

  /* Closed now: nothing is accepted, nothing runs, no future is made. */
  struct job j = {&ran, 0};
  crew_future *f = NO_FUTURE;
  ck_assert_int_eq(crew_submit(pool, job_task, &j, sizeof j, 0, &f),
                   CREW_ECLOSED);
  ck_assert_int_eq(crew_submit(pool, job_task, &j, sizeof j, 0, NULL),
                   CREW_ECLOSED);
  ck_assert_int_eq(crew_submit_timed(pool, job_task, &j, sizeof j, 0, &f, 0),
                   CREW_ECLOSED);
  ck_assert_int_eq(
      crew_submit_timed(pool, job_task, &j, sizeof j, 0, &f, CREW_FOREVER),
      CREW_ECLOSED);
  ck_assert_ptr_eq(f, NO_FUTURE);
  ck_assert_int_eq(crew_map(pool, job_task, &j, 0, NULL, 0, 3), CREW_ECLOSED);
  ck_assert_uint_eq(atomic_load(&ran), BACKLOG);

  /* Later shutdowns return 0 and change nothing. */
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_CANCEL), 0);
  assert_stats(pool, BACKLOG + 2, BACKLOG + 2, failed, 0, 0, 0, 0);
  crew_pool_destroy(pool);

  /* Futures outlive the pool. */
  ck_assert_int_eq(crew_future_wait(fs[BACKLOG - 1]), (BACKLOG - 1) % 4);
  for (int i = 0; i < BACKLOG; i++)
    crew_future_release(fs[i]);
  crew_future_release(pf[0]);
  crew_future_release(pf[1]);
  free(fs);
  lot_fini(&lot);
}
END_TEST

static void count_done(crew_future *f, void *arg)
{
  (void)f;
  atomic_fetch_add((_Atomic int *)arg, 1);
}

enum { CANCEL_QUEUED = 50 };

START_TEST(cancel_cancels_the_queued_and_finishes_the_running)
{
  crew_pool *pool = make_pool(2, CANCEL_QUEUED);
  struct lot lot;
  lot_init(&lot);
  crew_future *pf[2];
  park(pool, &lot, 2, pf);

  _Atomic size_t ran = 0;
  static _Atomic int done_calls[CANCEL_QUEUED];
  crew_future *fs[CANCEL_QUEUED];
  struct job j = {&ran, 0};
  for (int i = 0; i < CANCEL_QUEUED; i++) {
    ck_assert_int_eq(crew_submit(pool, job_task, &j, sizeof j, 0, &fs[i]), 0);
    ck_assert_int_eq(crew_future_on_done(fs[i], count_done, &done_calls[i]), 0);
  }
  assert_stats(pool, CANCEL_QUEUED + 2, 0, 0, 0, CANCEL_QUEUED, 2, 2);

  struct bg b = {.pool = pool, .how = CREW_CANCEL};
  bg_start(&b, bg_shutdown);
  wait_for_shutdown_to_begin(pool);
  ck_assert_int_eq(signal_try(&b.done, 0), CREW_ETIMEDOUT);
  gate_open(&lot.g, 2);
  bg_join(&b);
  ck_assert_int_eq(b.rc, 0);

  ck_assert_int_eq(crew_future_status(pf[0]), 0);
  ck_assert_int_eq(crew_future_status(pf[1]), 0);
  for (int i = 0; i < CANCEL_QUEUED; i++) {
    ck_assert_int_eq(crew_future_status(fs[i]), CREW_ECANCELED);
    ck_assert_int_eq(crew_future_wait(fs[i]), CREW_ECANCELED);
    ck_assert_int_eq(atomic_load(&done_calls[i]), 1);
  }
  ck_assert_uint_eq(atomic_load(&ran), 0);
  assert_stats(pool, CANCEL_QUEUED + 2, 2, 0, CANCEL_QUEUED, 0, 0, 0);

  crew_pool_destroy(pool);
  for (int i = 0; i < CANCEL_QUEUED; i++) {
    ck_assert_int_eq(atomic_load(&done_calls[i]), 1);
    crew_future_release(fs[i]);
  }
  crew_future_release(pf[0]);
  crew_future_release(pf[1]);
  lot_fini(&lot);
}
END_TEST

/* A job with more input than fits in a queue slot. */
struct big_job {
  struct job j;
  unsigned char pad[96];
};

START_TEST(cancel_counts_fire_and_forget_tasks)
{
  crew_pool *pool = make_pool(1, 10);
  struct lot lot;
  lot_init(&lot);
  park(pool, &lot, 1, NULL);

  _Atomic size_t ran = 0;
  struct job j = {&ran, 0};
  struct big_job big = {.j = j};
  for (int i = 0; i < 6; i++) /* small: input in the slot */
    ck_assert_int_eq(crew_submit(pool, job_task, &j, sizeof j, 0, NULL), 0);
  for (int i = 0; i < 2; i++) /* large input */
    ck_assert_int_eq(crew_submit(pool, job_task, &big, sizeof big, 0, NULL), 0);
  for (int i = 0; i < 2; i++) /* output nobody reads */
    ck_assert_int_eq(crew_submit(pool, job_task, &j, sizeof j, 8, NULL), 0);
  assert_stats(pool, 11, 0, 0, 0, 10, 1, 1);

  struct bg b = {.pool = pool, .how = CREW_CANCEL};
  bg_start(&b, bg_shutdown);
  wait_for_shutdown_to_begin(pool);
  gate_open(&lot.g, 1);
  bg_join(&b);
  ck_assert_int_eq(b.rc, 0);
  ck_assert_uint_eq(atomic_load(&ran), 0);
  assert_stats(pool, 11, 1, 0, 10, 0, 0, 0);
  crew_pool_destroy(pool);
  lot_fini(&lot);
}
END_TEST

START_TEST(a_blocked_submitter_gets_closed_at_shutdown)
{
  crew_pool *pool = make_pool(1, 1);
  struct lot lot;
  lot_init(&lot);
  crew_future *pf;
  park(pool, &lot, 1, &pf);
  _Atomic size_t queued_ran = 0, late_ran = 0;
  struct job qj = {&queued_ran, 0};
  crew_future *qf;
  ck_assert_int_eq(crew_submit(pool, job_task, &qj, sizeof qj, 0, &qf), 0);

  struct bg sub = {.pool = pool, .job = {&late_ran, 0}, .future = NO_FUTURE};
  bg_start(&sub, bg_submit);
  ck_assert_int_eq(signal_try(&sub.done, 50 * MS), CREW_ETIMEDOUT);

  struct bg down = {.pool = pool, .how = CREW_DRAIN};
  bg_start(&down, bg_shutdown);
  bg_join(&sub); /* woken by the shutdown while the worker is parked */
  ck_assert_int_eq(sub.rc, CREW_ECLOSED);
  ck_assert_ptr_eq(sub.future, NO_FUTURE);
  ck_assert_int_eq(signal_try(&down.done, 0), CREW_ETIMEDOUT);

  gate_open(&lot.g, 1);
  bg_join(&down);
  ck_assert_int_eq(down.rc, 0);
  ck_assert_int_eq(crew_future_status(qf), 0);
  ck_assert_uint_eq(atomic_load(&queued_ran), 1);
  ck_assert_uint_eq(atomic_load(&late_ran), 0);
  assert_stats(pool, 2, 2, 0, 0, 0, 0, 0);
  crew_pool_destroy(pool);
  crew_future_release(pf);
  crew_future_release(qf);
  lot_fini(&lot);
}
END_TEST

/* Shuts its own pool down from inside, then tries to submit. */
struct inside_in {
  crew_pool *pool;
  int how;
};

struct inside_out {
  int shutdown_rc;
  int submit_rc;
};

static int shutdown_inside_task(const void *in, void *out)
{
  const struct inside_in *a = in;
  struct inside_out r;
  r.shutdown_rc = crew_pool_shutdown(a->pool, a->how);
  r.submit_rc = crew_submit(a->pool, noop_task, NULL, 0, 0, NULL);
  memcpy(out, &r, sizeof r);
  return 0;
}

START_TEST(shutdown_from_inside_a_task_is_busy_then_joined_outside)
{
  crew_pool *pool = make_pool(2, 0);
  struct inside_in a = {pool, CREW_DRAIN};
  crew_future *f;
  ck_assert_int_eq(crew_submit(pool, shutdown_inside_task, &a, sizeof a,
                               sizeof(struct inside_out), &f),
                   0);
  struct inside_out r = {0, 0};
  ck_assert_int_eq(crew_future_get(f, &r, sizeof r), 0);
  crew_future_release(f);
  ck_assert_int_eq(r.shutdown_rc, CREW_EBUSY);
  ck_assert_int_eq(r.submit_rc, CREW_ECLOSED);
  ck_assert_int_eq(crew_submit(pool, noop_task, NULL, 0, 0, NULL),
                   CREW_ECLOSED);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  assert_stats(pool, 1, 1, 0, 0, 0, 0, 0);
  crew_pool_destroy(pool);
}
END_TEST

START_TEST(drain_from_inside_a_task_then_destroy_runs_the_rest)
{
  crew_pool *pool = make_pool(1, 0);
  struct lot lot;
  lot_init(&lot);
  park(pool, &lot, 1, NULL);
  struct inside_in a = {pool, CREW_DRAIN};
  crew_future *f;
  ck_assert_int_eq(crew_submit(pool, shutdown_inside_task, &a, sizeof a,
                               sizeof(struct inside_out), &f),
                   0);
  _Atomic size_t ran = 0;
  struct job j = {&ran, 0};
  for (int i = 0; i < 5; i++)
    ck_assert_int_eq(crew_submit(pool, job_task, &j, sizeof j, 0, NULL), 0);
  gate_open(&lot.g, 1);
  struct inside_out r = {0, 0};
  ck_assert_int_eq(crew_future_get(f, &r, sizeof r), 0);
  ck_assert_int_eq(r.shutdown_rc, CREW_EBUSY);
  ck_assert_int_eq(r.submit_rc, CREW_ECLOSED);
  crew_pool_destroy(pool); /* joins the workers; the queued five ran */
  ck_assert_uint_eq(atomic_load(&ran), 5);
  crew_future_release(f);
  lot_fini(&lot);
}
END_TEST

START_TEST(cancel_from_inside_a_task_cancels_the_rest)
{
  crew_pool *pool = make_pool(1, 0);
  struct lot lot;
  lot_init(&lot);
  park(pool, &lot, 1, NULL);
  struct inside_in a = {pool, CREW_CANCEL};
  crew_future *f, *fs[5];
  ck_assert_int_eq(crew_submit(pool, shutdown_inside_task, &a, sizeof a,
                               sizeof(struct inside_out), &f),
                   0);
  _Atomic size_t ran = 0;
  struct job j = {&ran, 0};
  for (int i = 0; i < 5; i++)
    ck_assert_int_eq(crew_submit(pool, job_task, &j, sizeof j, 0, &fs[i]), 0);
  gate_open(&lot.g, 1);
  struct inside_out r = {0, 0};
  ck_assert_int_eq(crew_future_get(f, &r, sizeof r), 0);
  ck_assert_int_eq(r.shutdown_rc, CREW_EBUSY);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_CANCEL), 0);
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(crew_future_status(fs[i]), CREW_ECANCELED);
    crew_future_release(fs[i]);
  }
  ck_assert_uint_eq(atomic_load(&ran), 0);
  assert_stats(pool, 7, 2, 0, 5, 0, 0, 0);
  crew_pool_destroy(pool);
  crew_future_release(f);
  lot_fini(&lot);
}
END_TEST

START_TEST(shutdown_refuses_bad_arguments)
{
  crew_pool *pool = make_pool(1, 0);
  ck_assert_int_eq(crew_pool_shutdown(NULL, CREW_DRAIN), CREW_EINVAL);
  ck_assert_int_eq(crew_pool_shutdown(NULL, CREW_CANCEL), CREW_EINVAL);
  ck_assert_int_eq(crew_pool_shutdown(pool, 5), CREW_EINVAL);
  ck_assert_int_eq(crew_pool_shutdown(pool, -1), CREW_EINVAL);
  /* Refused calls changed nothing: the pool still works. */
  crew_future *f;
  ck_assert_int_eq(crew_submit(pool, noop_task, NULL, 0, 0, &f), 0);
  ck_assert_int_eq(crew_future_wait(f), 0);
  crew_future_release(f);
  assert_stats(pool, 1, 1, 0, 0, 0, 0, 1);
  crew_pool_destroy(pool);
  crew_pool_destroy(NULL);
}
END_TEST

START_TEST(destroy_runs_queued_work_first)
{
  crew_pool *pool = make_pool(1, 1024);
  struct lot lot;
  lot_init(&lot);
  park(pool, &lot, 1, NULL);
  _Atomic size_t ran = 0;
  struct job j = {&ran, 0};
  crew_future *fs[100];
  for (int i = 0; i < 500; i++)
    ck_assert_int_eq(crew_submit(pool, job_task, &j, sizeof j, 0, NULL), 0);
  for (int i = 0; i < 100; i++)
    ck_assert_int_eq(crew_submit(pool, job_task, &j, sizeof j, 0, &fs[i]), 0);
  gate_open(&lot.g, 1);
  crew_pool_destroy(pool);
  ck_assert_uint_eq(atomic_load(&ran), 600);
  for (int i = 0; i < 100; i++) {
    ck_assert_int_eq(crew_future_status(fs[i]), 0);
    crew_future_release(fs[i]);
  }
  lot_fini(&lot);
}
END_TEST

/* ---------------------------------------------------------------- stats */

START_TEST(stats_refuses_null)
{
  crew_pool *pool = make_pool(1, 0);
  crew_stats st;
  ck_assert_int_eq(crew_pool_stats(NULL, &st), CREW_EINVAL);
  ck_assert_int_eq(crew_pool_stats(pool, NULL), CREW_EINVAL);
  crew_pool_destroy(pool);
}
END_TEST

START_TEST(stats_count_exactly)
{
  crew_pool *pool = make_pool(1, 16);
  struct lot lot;
  lot_init(&lot);
  crew_future *pf;
  park(pool, &lot, 1, &pf);

  _Atomic size_t ran = 0;
  const int statuses[3] = {0, 7, 9};
  crew_future *fs[3];
  for (int i = 0; i < 3; i++) {
    struct job j = {&ran, statuses[i]};
    ck_assert_int_eq(crew_submit(pool, job_task, &j, sizeof j, 0, &fs[i]), 0);
  }
  assert_stats(pool, 4, 0, 0, 0, 3, 1, 1);
  gate_open(&lot.g, 1);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(crew_future_wait(fs[i]), statuses[i]);
    crew_future_release(fs[i]);
  }
  ck_assert_int_eq(crew_future_wait(pf), 0);
  crew_future_release(pf);
  assert_stats(pool, 4, 4, 2, 0, 0, 0, 1);

  /* A future cancelled while queued counts as cancelled, not completed. */
  park(pool, &lot, 1, &pf);
  struct job j = {&ran, 0};
  ck_assert_int_eq(crew_submit(pool, job_task, &j, sizeof j, 0, &fs[0]), 0);
  ck_assert_int_eq(crew_submit(pool, job_task, &j, sizeof j, 0, &fs[1]), 0);
  ck_assert_int_eq(crew_future_cancel(fs[0]), 0);
  assert_stats(pool, 7, 4, 2, 1, 1, 1, 1);
  gate_open(&lot.g, 1);
  ck_assert_int_eq(crew_future_wait(fs[1]), 0);
  ck_assert_int_eq(crew_future_wait(pf), 0);
  assert_stats(pool, 7, 6, 2, 1, 0, 0, 1);
  ck_assert_uint_eq(atomic_load(&ran), 4);

  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, st.completed + st.cancelled);
  assert_stats(pool, 7, 6, 2, 1, 0, 0, 0);
  crew_future_release(fs[0]);
  crew_future_release(fs[1]);
  crew_future_release(pf);
  crew_pool_destroy(pool);
  lot_fini(&lot);
}
END_TEST

/* ------------------------------------------------------------ isolation */

START_TEST(destroying_one_pool_leaves_another_alone)
{
  crew_pool *a = make_pool(2, 0), *b = make_pool(2, 0);
  struct lot lot;
  lot_init(&lot);
  park(b, &lot, 2, NULL);
  _Atomic size_t ran_a = 0, ran_b = 0;
  struct job ja = {&ran_a, 0}, jb = {&ran_b, 0};
  for (int i = 0; i < 100; i++) {
    ck_assert_int_eq(crew_submit(b, job_task, &jb, sizeof jb, 0, NULL), 0);
    ck_assert_int_eq(crew_submit(a, job_task, &ja, sizeof ja, 0, NULL), 0);
  }
  crew_pool_destroy(a); /* does not wait for b's parked workers */
  ck_assert_uint_eq(atomic_load(&ran_a), 100);
  ck_assert_uint_eq(atomic_load(&ran_b), 0);
  assert_stats(b, 102, 0, 0, 0, 100, 2, 2);
  gate_open(&lot.g, 2);
  crew_future *f;
  ck_assert_int_eq(crew_submit(b, job_task, &jb, sizeof jb, 0, &f), 0);
  ck_assert_int_eq(crew_future_wait(f), 0);
  crew_future_release(f);
  crew_pool_destroy(b);
  ck_assert_uint_eq(atomic_load(&ran_b), 101);
  lot_fini(&lot);
}
END_TEST

START_TEST(a_forked_child_cannot_use_the_pool)
{
  crew_pool *pool = make_pool(2, 0);
  _Atomic size_t ran = 0;
  struct job j = {&ran, 0};
  crew_future *f;
  ck_assert_int_eq(crew_submit(pool, job_task, &j, sizeof j, 0, &f), 0);
  ck_assert_int_eq(crew_future_wait(f), 0);
  crew_future_release(f);

  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    /* No Check asserts here: report through the exit status. */
    int bad = 0;
    crew_future *cf = NO_FUTURE;
    crew_stats st;
    int items[4] = {1, 2, 3, 4};
    if (crew_submit(pool, job_task, &j, sizeof j, 0, NULL) != CREW_EINVAL)
      bad |= 1;
    if (crew_submit(pool, job_task, &j, sizeof j, 0, &cf) != CREW_EINVAL ||
        cf != NO_FUTURE)
      bad |= 2;
    if (crew_submit_timed(pool, job_task, &j, sizeof j, 0, &cf, 0) !=
        CREW_EINVAL)
      bad |= 4;
    if (crew_map(pool, noop_task, items, sizeof items[0], NULL, 0, 4) !=
        CREW_EINVAL)
      bad |= 8;
    if (crew_pool_shutdown(pool, CREW_DRAIN) != CREW_EINVAL)
      bad |= 16;
    if (crew_pool_stats(pool, &st) != CREW_EINVAL)
      bad |= 32;
    _exit(bad);
  }
  int wstatus = 0;
  ck_assert_int_eq(waitpid(pid, &wstatus, 0), pid);
  ck_assert(WIFEXITED(wstatus));
  ck_assert_int_eq(WEXITSTATUS(wstatus), 0);

  /* The parent's pool is untouched and still works. */
  assert_stats(pool, 1, 1, 0, 0, 0, 0, 2);
  ck_assert_int_eq(crew_submit(pool, job_task, &j, sizeof j, 0, &f), 0);
  ck_assert_int_eq(crew_future_wait(f), 0);
  crew_future_release(f);
  ck_assert_int_eq(crew_map(pool, job_task, &j, 0, NULL, 0, 10), 0);
  ck_assert_uint_eq(atomic_load(&ran), 12);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  assert_stats(pool, 12, 12, 0, 0, 0, 0, 0);
  crew_pool_destroy(pool);
}
END_TEST

/* -------------------------------------------------------------- signals */

/* Which signals are blocked on the calling thread, by number. */
struct mask {
  unsigned char blocked[65];
};

static void read_mask(struct mask *m)
{
  sigset_t set;
  sigemptyset(&set);
  pthread_sigmask(SIG_BLOCK, NULL, &set);
  memset(m, 0, sizeof *m);
  for (int sig = 1; sig < 65; sig++)
    m->blocked[sig] = sigismember(&set, sig) == 1;
}

static int mask_task(const void *in, void *out)
{
  struct lot *l = *(struct lot *const *)in;
  read_mask(out);
  signal_post(&l->started);
  gate_pass(&l->g);
  return 0;
}

START_TEST(workers_block_signals_and_the_caller_keeps_its_mask)
{
  /* A mask of our own, to see that it survives the pool's creation. */
  sigset_t usr2, saved;
  sigemptyset(&usr2);
  sigaddset(&usr2, SIGUSR2);
  ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &usr2, &saved), 0);
  struct mask before, after;
  read_mask(&before);
  ck_assert_int_eq(before.blocked[SIGUSR2], 1);
  ck_assert_int_eq(before.blocked[SIGINT], 0);

  crew_pool *pool = make_pool(3, 0);
  read_mask(&after);
  ck_assert_mem_eq(before.blocked, after.blocked, sizeof before.blocked);

  struct lot lot, *lp = &lot;
  lot_init(&lot);
  crew_future *fs[3];
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(crew_submit(pool, mask_task, &lp, sizeof lp,
                                 sizeof(struct mask), &fs[i]),
                     0);
  signal_wait(&lot.started, 3); /* on three different workers */
  gate_open(&lot.g, 3);
  for (int i = 0; i < 3; i++) {
    struct mask m;
    ck_assert_int_eq(crew_future_get(fs[i], &m, sizeof m), 0);
    crew_future_release(fs[i]);
    ck_assert_int_eq(m.blocked[SIGINT], 1);
    ck_assert_int_eq(m.blocked[SIGTERM], 1);
    ck_assert_int_eq(m.blocked[SIGUSR1], 1);
    /* Every signal is blocked but KILL and STOP, which cannot be, and those
     * of the thread's own faults, which must keep their default action. */
    for (int sig = 1; sig < 32; sig++) {
      bool fault = sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE ||
                   sig == SIGILL || sig == SIGTRAP || sig == SIGSYS ||
                   sig == SIGABRT;
      if (sig == SIGKILL || sig == SIGSTOP)
        continue;
      ck_assert_msg(m.blocked[sig] == !fault, "signal %d %s", sig,
                    fault ? "blocked" : "not blocked");
    }
  }
  crew_pool_destroy(pool);
  read_mask(&after);
  ck_assert_mem_eq(before.blocked, after.blocked, sizeof before.blocked);
  pthread_sigmask(SIG_SETMASK, &saved, NULL);
  lot_fini(&lot);
}
END_TEST

/* ---------------------------------------------------------------- churn */

START_TEST(create_submit_destroy_churn)
{
  for (size_t i = 0; i < 200; i++) {
    crew_pool *pool = make_pool(1 + i % 4, i % 3 == 0 ? 4 : 0);
    size_t n = (i * 7) % 21;
    _Atomic size_t ran = 0;
    struct job j = {&ran, (int)(i % 2)};
    for (size_t k = 0; k < n; k++) {
      crew_future *f = NULL;
      ck_assert_int_eq(
          crew_submit(pool, job_task, &j, sizeof j, 0, k % 2 == 0 ? &f : NULL),
          0);
      crew_future_release(f);
    }
    crew_pool_destroy(pool);
    ck_assert_uint_eq(atomic_load(&ran), n);
  }
}
END_TEST

START_TEST(create_then_destroy_at_once)
{
  for (size_t i = 0; i < 200; i++) {
    crew_pool *pool = make_pool(1 + i % 4, i % 2 == 0 ? 1 : 0);
    crew_pool_destroy(pool);
  }
}
END_TEST

/* ----------------------------------------------------------------- main */

int main(void)
{
  Suite *s = suite_create("pool");

  TCase *tc = tcase_create("config");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, config_init_gives_the_defaults);
  tcase_add_test(tc, create_needs_an_out_pointer);
  tcase_add_test(tc, default_workers_are_the_affinity_cpus);
  tcase_add_loop_test(tc, unknown_mode_is_refused, 0, 3);
  tcase_add_loop_test(tc, too_many_workers_are_refused, 0, 2);
  tcase_add_test(tc, process_only_fields_are_refused_with_threads);
  tcase_add_loop_test(tc, overflowing_queue_capacity_is_refused, 0, 3);
  tcase_add_loop_test(tc, pool_has_exactly_the_workers_asked, 0, 2);
  tcase_add_test(tc, workers_of_null_is_zero);
  suite_add_tcase(s, tc);

  tc = tcase_create("workers");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, init_runs_once_per_worker_on_the_worker_first);
  tcase_add_test(tc, workers_are_named_crew_by_default);
  tcase_add_test(tc, workers_are_named_name_index);
  tcase_add_test(tc, long_names_are_cut_not_the_index);
  tcase_add_test(tc, the_name_is_copied_at_create);
  tcase_add_test(tc, workers_block_signals_and_the_caller_keeps_its_mask);
  suite_add_tcase(s, tc);

  tc = tcase_create("submit");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, submit_refuses_bad_arguments);
  tcase_add_test(tc, no_input_gives_the_task_null);
  tcase_add_test(tc, a_full_queue_pushes_back);
  tcase_add_test(tc, a_negative_task_status_is_reported_unchanged);
  suite_add_tcase(s, tc);

  tc = tcase_create("shutdown");
  tcase_set_timeout(tc, 15);
  tcase_add_test(tc, drain_runs_the_whole_backlog);
  tcase_add_test(tc, cancel_cancels_the_queued_and_finishes_the_running);
  tcase_add_test(tc, cancel_counts_fire_and_forget_tasks);
  tcase_add_test(tc, a_blocked_submitter_gets_closed_at_shutdown);
  tcase_add_test(tc, shutdown_from_inside_a_task_is_busy_then_joined_outside);
  tcase_add_test(tc, drain_from_inside_a_task_then_destroy_runs_the_rest);
  tcase_add_test(tc, cancel_from_inside_a_task_cancels_the_rest);
  tcase_add_test(tc, shutdown_refuses_bad_arguments);
  tcase_add_test(tc, destroy_runs_queued_work_first);
  suite_add_tcase(s, tc);

  tc = tcase_create("stats");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, stats_refuses_null);
  tcase_add_test(tc, stats_count_exactly);
  suite_add_tcase(s, tc);

  tc = tcase_create("isolation");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, destroying_one_pool_leaves_another_alone);
  tcase_add_test(tc, a_forked_child_cannot_use_the_pool);
  suite_add_tcase(s, tc);

  tc = tcase_create("churn");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, create_submit_destroy_churn);
  tcase_add_test(tc, create_then_destroy_at_once);
  suite_add_tcase(s, tc);

  return run_suite(s);
}
