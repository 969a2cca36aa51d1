/*
 * check_batches.c - a thread pool's workers take several tasks per lock
 * acquisition (a batch), and nothing in a batch may be stranded:
 *
 *  - short tasks in the batch of a worker stuck in a long task run on the
 *    other worker while the long one still runs;
 *  - on a one-worker pool, a task that waits on futures queued behind it,
 *    in its own batch or in the queue, runs them itself and returns;
 *  - a CREW_CANCEL shutdown resolves at once every task that sits in a
 *    batch of a worker that is busy, while that worker's task still runs;
 *  - a task is never run twice, whoever claims it.
 *
 * The pool's refill takes up to 16 slots and no more than an eighth of the
 * queue on two workers (a quarter on one), so every test queues enough for
 * batches of several: the tests assert the outcome whatever the split.
 */
#include "harness.h"
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

/* ====================================================== shared by tasks */

static gate hold;        /* what the holders pass */
static gate release;     /* what the long task and the blockers pass */
static signal_box held;  /* a holder began */
static signal_box began; /* the long task or a blocker began */
static signal_box shorts_done;
#define MAX_SHORT 2048
static _Atomic uint32_t runs[MAX_SHORT]; /* runs of each short task */
static _Atomic int long_done;

static void shared_setup(void)
{
  gate_init(&hold);
  gate_init(&release);
  signal_init(&held);
  signal_init(&began);
  signal_init(&shorts_done);
  for (size_t i = 0; i < MAX_SHORT; i++)
    atomic_store(&runs[i], 0);
  atomic_store(&long_done, 0);
}

static void shared_teardown(void)
{
  signal_fini(&shorts_done);
  signal_fini(&began);
  signal_fini(&held);
  gate_fini(&release);
  gate_fini(&hold);
}

/* Keeps a worker busy: posts `held`, then waits at `hold`. */
static int holder(const void *in, void *out)
{
  (void)in;
  (void)out;
  signal_post(&held);
  gate_pass(&hold);
  return 0;
}

/* Does nothing: a marker behind other tasks. */
static int marker_task(const void *in, void *out)
{
  (void)in;
  (void)out;
  return 0;
}

/* Posts `began`, then waits at `release`. */
static int blocker(const void *in, void *out)
{
  (void)in;
  (void)out;
  signal_post(&began);
  gate_pass(&release);
  return 0;
}

/* A blocker that says when it is done. */
static int long_task(const void *in, void *out)
{
  blocker(in, out);
  atomic_store(&long_done, 1);
  return 0;
}

/* Counts its run under its index, posts `shorts_done`. */
static int short_task(const void *in, void *out)
{
  uint32_t i;
  memcpy(&i, in, sizeof i);
  if (i >= MAX_SHORT)
    return 1;
  atomic_fetch_add(&runs[i], 1);
  if (out != NULL)
    memcpy(out, &i, sizeof i);
  signal_post(&shorts_done);
  return 0;
}

static void submit_short(crew_pool *pool, uint32_t i, crew_future **f)
{
  ck_assert_int_eq(
      crew_submit(pool, short_task, &i, sizeof i, f ? sizeof i : 0, f), 0);
}

/* Block every one of the pool's n workers in a holder, and wait until all
 * of them run: what is queued after this waits in the queue. */
static void hold_workers(crew_pool *pool, size_t n)
{
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(crew_submit(pool, holder, NULL, 0, 0, NULL), 0);
  signal_wait(&held, n);
}

static void assert_each_ran_once(uint32_t n)
{
  for (uint32_t i = 0; i < n; i++)
    ck_assert_msg(atomic_load(&runs[i]) == 1, "short task %u ran %u times", i,
                  atomic_load(&runs[i]));
}

/* ================================================== a long task's batch */

/*
 * Two workers, held while the queue fills with `before` short tasks, the
 * long task, and `after` short tasks. Released, each worker takes a batch;
 * one of them holds the long task with short tasks behind it. Every short
 * task must run while the long task still runs: the other worker steals
 * what the stuck worker's batch holds.
 */
static void run_long_among_short(uint32_t before, uint32_t after)
{
  shared_setup();
  crew_pool *pool = make_pool(2, 1024);
  hold_workers(pool, 2);
  uint32_t i = 0;
  for (; i < before; i++)
    submit_short(pool, i, NULL);
  ck_assert_int_eq(crew_submit(pool, long_task, NULL, 0, 0, NULL), 0);
  for (; i < before + after; i++)
    submit_short(pool, i, NULL);
  gate_open(&hold, 2); /* the holders leave; the long task is taken */

  signal_wait(&began, 1);                       /* the long task runs */
  signal_wait(&shorts_done, before + after);    /* every short one ran ... */
  ck_assert_int_eq(atomic_load(&long_done), 0); /* ... beside it */
  /* A short task posts before it returns and is counted after: a marker
   * behind them, which only the free worker can run, resolves once that
   * worker counted the last of them (a future is counted, then resolved). */
  crew_future *marker = NULL;
  ck_assert_int_eq(crew_submit(pool, marker_task, NULL, 0, 0, &marker), 0);
  ck_assert_int_eq(crew_future_wait_timed(marker, 10000 * MS), 0);
  crew_future_release(marker);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.running, 1);
  ck_assert_uint_eq(st.queued, 0);

  gate_open(&release, 1);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  ck_assert_int_eq(atomic_load(&long_done), 1);
  assert_each_ran_once(before + after);
  assert_pool_settled(pool);
  st = pool_stats(pool);
  ck_assert_uint_eq(st.completed, 2 + 1 + before + after + 1);
  crew_pool_destroy(pool);
  shared_teardown();
}

START_TEST(short_tasks_behind_a_long_one_run_on_the_other_worker)
{
  run_long_among_short(0, 200);
}
END_TEST

START_TEST(short_tasks_around_a_long_one_run_on_the_other_worker)
{
  run_long_among_short(3, 200);
}
END_TEST

/* A batch of futures: the short tasks are waited on one by one while the
 * long task runs, each from this thread (no worker helps it). */
START_TEST(futures_behind_a_long_task_resolve_while_it_runs)
{
  enum { N = 120 };
  shared_setup();
  crew_pool *pool = make_pool(2, 1024);
  hold_workers(pool, 2);
  ck_assert_int_eq(crew_submit(pool, long_task, NULL, 0, 0, NULL), 0);
  crew_future *f[N];
  for (uint32_t i = 0; i < N; i++)
    submit_short(pool, i, &f[i]);
  gate_open(&hold, 2);
  for (uint32_t i = 0; i < N; i++) {
    uint32_t v = UINT32_MAX;
    ck_assert_int_eq(crew_future_get_timed(f[i], &v, sizeof v, 10000 * MS), 0);
    ck_assert_uint_eq(v, i);
    crew_future_release(f[i]);
  }
  ck_assert_int_eq(atomic_load(&long_done), 0);
  gate_open(&release, 1);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  assert_each_ran_once(N);
  assert_pool_settled(pool);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* ============================================ nested waits, one worker */

static crew_pool *nest_pool;

enum { CHILDREN = 40 };

/* Submits CHILDREN short tasks with futures to its own pool and gets each;
 * returns the sum of their outputs. */
static int parent_gets_each(const void *in, void *out)
{
  (void)in;
  crew_future *f[CHILDREN];
  uint64_t sum = 0;
  for (uint32_t i = 0; i < CHILDREN; i++)
    if (crew_submit(nest_pool, short_task, &i, sizeof i, sizeof i, &f[i]) != 0)
      return 1;
  for (uint32_t i = 0; i < CHILDREN; i++) {
    uint32_t v = 0;
    if (crew_future_get(f[i], &v, sizeof v) != 0)
      return 2;
    sum += v;
    crew_future_release(f[i]);
  }
  memcpy(out, &sum, sizeof sum);
  return 0;
}

/* The same, waiting with crew_wait_all. */
static int parent_waits_all(const void *in, void *out)
{
  (void)in;
  crew_future *f[CHILDREN];
  uint64_t sum = 0;
  for (uint32_t i = 0; i < CHILDREN; i++)
    if (crew_submit(nest_pool, short_task, &i, sizeof i, sizeof i, &f[i]) != 0)
      return 1;
  if (crew_wait_all(f, CHILDREN, CREW_FOREVER) != 0)
    return 2;
  for (uint32_t i = 0; i < CHILDREN; i++) {
    uint32_t v = 0;
    if (crew_future_get(f[i], &v, sizeof v) != 0)
      return 3;
    sum += v;
    crew_future_release(f[i]);
  }
  memcpy(out, &sum, sizeof sum);
  return 0;
}

static void run_nested(crew_fn parent, size_t capacity)
{
  shared_setup();
  nest_pool = make_pool(1, capacity);
  crew_future *f = NULL;
  ck_assert_int_eq(
      crew_submit(nest_pool, parent, NULL, 0, sizeof(uint64_t), &f), 0);
  uint64_t sum = 0;
  ck_assert_int_eq(crew_future_get_timed(f, &sum, sizeof sum, 10000 * MS), 0);
  ck_assert_uint_eq(sum, (uint64_t)CHILDREN * (CHILDREN - 1) / 2);
  crew_future_release(f);
  ck_assert_int_eq(crew_pool_shutdown(nest_pool, CREW_DRAIN), 0);
  assert_each_ran_once(CHILDREN);
  assert_pool_settled(nest_pool);
  crew_pool_destroy(nest_pool);
  shared_teardown();
}

START_TEST(a_task_on_one_worker_gets_its_children_one_by_one)
{
  run_nested(parent_gets_each, 1024);
}
END_TEST

START_TEST(a_task_on_one_worker_waits_for_all_its_children)
{
  run_nested(parent_waits_all, 1024);
}
END_TEST

START_TEST(a_task_on_one_worker_with_a_full_queue_gets_its_children)
{
  run_nested(parent_gets_each, 4); /* most children run at their submit */
}
END_TEST

/* A task that waits on the futures queued right behind it: on one worker
 * they sit in the same batch as the waiting task, or in the queue. */
static crew_future *behind[CHILDREN];

static int wait_behind(const void *in, void *out)
{
  (void)in;
  uint64_t sum = 0;
  for (uint32_t i = 0; i < CHILDREN; i++) {
    uint32_t v = 0;
    if (crew_future_get(behind[i], &v, sizeof v) != 0)
      return 1;
    sum += v;
  }
  memcpy(out, &sum, sizeof sum);
  return 0;
}

START_TEST(a_task_on_one_worker_waits_on_the_futures_behind_it)
{
  shared_setup();
  crew_pool *pool = make_pool(1, 1024);
  hold_workers(pool, 1);
  crew_future *f = NULL;
  ck_assert_int_eq(
      crew_submit(pool, wait_behind, NULL, 0, sizeof(uint64_t), &f), 0);
  for (uint32_t i = 0; i < CHILDREN; i++)
    submit_short(pool, i, &behind[i]);
  gate_open(&hold, 1); /* the worker takes wait_behind and its neighbours */
  uint64_t sum = 0;
  ck_assert_int_eq(crew_future_get_timed(f, &sum, sizeof sum, 10000 * MS), 0);
  ck_assert_uint_eq(sum, (uint64_t)CHILDREN * (CHILDREN - 1) / 2);
  crew_future_release(f);
  for (uint32_t i = 0; i < CHILDREN; i++)
    crew_future_release(behind[i]);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  assert_each_ran_once(CHILDREN);
  assert_pool_settled(pool);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* =========================================== CREW_CANCEL, batches held */

struct shutdown_call {
  crew_pool *pool;
  int rc;
};

static void *shutdown_main(void *arg)
{
  struct shutdown_call *c = arg;
  c->rc = crew_pool_shutdown(c->pool, CREW_CANCEL);
  return NULL;
}

/*
 * Two workers each stuck in a blocker at the head of a batch: the queue
 * held GROUPS groups of a blocker and 15 short tasks with futures. A
 * CREW_CANCEL shutdown, from another thread, must resolve every task that
 * has not begun (in a held batch or in the queue) while both blockers
 * still run; then the blockers finish and the shutdown returns.
 */
START_TEST(cancel_resolves_what_busy_workers_hold_in_their_batches)
{
  enum { GROUPS = 8, PER = 15, N = GROUPS * PER };
  shared_setup();
  crew_pool *pool = make_pool(2, 1024);
  hold_workers(pool, 2);
  crew_future *blockers[GROUPS], *f[N];
  for (uint32_t g = 0, i = 0; g < GROUPS; g++) {
    ck_assert_int_eq(crew_submit(pool, blocker, NULL, 0, 0, &blockers[g]), 0);
    for (uint32_t k = 0; k < PER; k++, i++)
      submit_short(pool, i, &f[i]);
  }
  gate_open(&hold, 2);    /* the holders leave */
  signal_wait(&began, 2); /* two blockers run, each ahead of its batch */

  struct shutdown_call call = {pool, -1};
  pthread_t t;
  start_thread(&t, shutdown_main, &call);
  size_t ran_before = 0;
  for (uint32_t i = 0; i < N; i++) {
    /* resolved while the blockers still run */
    int rc = crew_future_wait_timed(f[i], 10000 * MS);
    if (rc == 0)
      ran_before++; /* ran before the shutdown began: must not happen */
    else
      ck_assert_int_eq(rc, CREW_ECANCELED);
  }
  size_t running = 0, cancelled = 0;
  for (uint32_t g = 0; g < GROUPS; g++) {
    if (!crew_future_done(blockers[g]))
      running++;
    else {
      ck_assert_int_eq(crew_future_status(blockers[g]), CREW_ECANCELED);
      cancelled++;
    }
  }
  ck_assert_uint_eq(running, 2);
  ck_assert_uint_eq(cancelled, GROUPS - 2);
  /* Both workers were stuck before any short task could run. */
  ck_assert_uint_eq(ran_before, 0);

  gate_open(&release, 2);
  join_thread(t);
  ck_assert_int_eq(call.rc, 0);
  for (uint32_t g = 0; g < GROUPS; g++) {
    ck_assert(crew_future_done(blockers[g]));
    crew_future_release(blockers[g]);
  }
  for (uint32_t i = 0; i < N; i++) {
    ck_assert_uint_eq(atomic_load(&runs[i]), 0);
    crew_future_release(f[i]);
  }
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.completed, 2 + 2);
  ck_assert_uint_eq(st.cancelled, N + GROUPS - 2);
  assert_pool_settled(pool);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* ======================================= exactly once, stealing at work */

struct producer {
  crew_pool *pool;
  uint32_t first, count;
};

static void *produce(void *arg)
{
  struct producer *p = arg;
  for (uint32_t i = p->first; i < p->first + p->count; i++)
    submit_short(p->pool, i, NULL);
  return NULL;
}

/*
 * Four producers and two workers, one of which is stuck in a long task at
 * the head of a batch for most of the run: every short task runs exactly
 * once, whether its owner, a stealer or a worker's refill took it.
 */
START_TEST(every_task_runs_once_while_workers_steal)
{
  enum { PRODUCERS = 4, PER = 250 };
  shared_setup();
  crew_pool *pool = make_pool(2, 64);
  hold_workers(pool, 2);
  ck_assert_int_eq(crew_submit(pool, long_task, NULL, 0, 0, NULL), 0);
  for (uint32_t i = 0; i < 40; i++)
    submit_short(pool, PRODUCERS * PER + i, NULL);
  gate_open(&hold, 2);
  signal_wait(&began, 1);
  struct producer p[PRODUCERS];
  pthread_t t[PRODUCERS];
  for (uint32_t k = 0; k < PRODUCERS; k++) {
    p[k] = (struct producer){pool, k * PER, PER};
    start_thread(&t[k], produce, &p[k]);
  }
  for (uint32_t k = 0; k < PRODUCERS; k++)
    join_thread(t[k]);
  signal_wait(&shorts_done, PRODUCERS * PER + 40);
  ck_assert_int_eq(atomic_load(&long_done), 0);
  gate_open(&release, 1);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  assert_each_ran_once(PRODUCERS * PER + 40);
  assert_pool_settled(pool);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* ============================================================== suite */

int main(void)
{
  Suite *s = suite_create("batches");
  TCase *tc = tcase_create("stranding");
  harness_tcase(tc, 30);
  tcase_add_test(tc, short_tasks_behind_a_long_one_run_on_the_other_worker);
  tcase_add_test(tc, short_tasks_around_a_long_one_run_on_the_other_worker);
  tcase_add_test(tc, futures_behind_a_long_task_resolve_while_it_runs);
  tcase_add_test(tc, every_task_runs_once_while_workers_steal);
  suite_add_tcase(s, tc);

  tc = tcase_create("nested");
  harness_tcase(tc, 30);
  tcase_add_test(tc, a_task_on_one_worker_gets_its_children_one_by_one);
  tcase_add_test(tc, a_task_on_one_worker_waits_for_all_its_children);
  tcase_add_test(tc, a_task_on_one_worker_with_a_full_queue_gets_its_children);
  tcase_add_test(tc, a_task_on_one_worker_waits_on_the_futures_behind_it);
  suite_add_tcase(s, tc);

  tc = tcase_create("cancel");
  harness_tcase(tc, 30);
  tcase_add_test(tc, cancel_resolves_what_busy_workers_hold_in_their_batches);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
