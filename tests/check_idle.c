/*
 * check_idle.c - waiting for a pool to go idle, and the shutdowns that do
 * not wait (CREW_NOWAIT) or do not let the running tasks finish
 * (CREW_KILL), in both modes.
 *
 *  - crew_pool_wait_idle returns at the first moment nothing is queued and
 *    nothing runs: every future resolved, every done callback returned, no
 *    map in flight; the pool stays open. It times out, it is busy from
 *    inside the pool, several threads may wait at once.
 *  - CREW_NOWAIT begins a shutdown and returns at once; a later shutdown or
 *    destroy waits.
 *  - CREW_KILL (process mode) cancels the queued tasks and kills the
 *    workers running tasks: their futures resolve CREW_ECANCELED, nothing
 *    is respawned; it overtakes a drain already waiting. Thread mode
 *    refuses it and changes nothing.
 *
 * Loop tests run once per mode (the index: 0 threads, 1 processes). Tasks
 * talk to the test through proctest.h's CREW_SHARED gate and box, made
 * before the pool; callbacks run in this process and use testutil's gates.
 */
#include "harness.h"
#include "proctest.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

static const int modes[2] = {CREW_THREADS, CREW_PROCESSES};

static crew_pool *the_pool; /* for tasks and callbacks that call the pool */

static crew_pool *mode_pool(int mode, size_t workers, size_t capacity)
{
  crew_config cfg = pool_config(mode, workers);
  cfg.queue_capacity = capacity;
  return the_pool = pool_create(&cfg);
}

/* A waiter on another thread: crew_pool_wait_idle(pool, FOREVER), its
 * result posted to `done` and kept in rc. */
struct waiter {
  crew_pool *pool;
  uint64_t timeout;
  int rc;
  signal_box done;
  pthread_t thread;
};

static void *waiter_main(void *arg)
{
  struct waiter *w = arg;
  w->rc = crew_pool_wait_idle(w->pool, w->timeout);
  signal_post(&w->done);
  return NULL;
}

static void waiter_start(struct waiter *w, crew_pool *pool)
{
  *w = (struct waiter){.pool = pool, .timeout = CREW_FOREVER, .rc = 1};
  signal_init(&w->done);
  start_thread(&w->thread, waiter_main, w);
}

/* The waiter's result, once it returned. */
static int waiter_join(struct waiter *w)
{
  join_thread(w->thread);
  signal_fini(&w->done);
  return w->rc;
}

/* A pool of one worker running a gated task (`run`, its pid returned in
 * *pid if not NULL) and holding add_task(x) queued behind it. */
static crew_pool *running_and_queued(int mode, int64_t x, crew_future **run,
                                     crew_future **queued, pid_t *pid)
{
  shared_setup(0);
  crew_pool *pool = mode_pool(mode, 1, 0);
  ck_assert_int_eq(crew_submit(pool, gated_task, NULL, 0, 0, run), 0);
  pid_t ran = (pid_t)take();
  if (pid != NULL)
    *pid = ran;
  *queued = submit_add(pool, x);
  return pool;
}

/* ===================================================== crew_pool_wait_idle */

START_TEST(an_idle_pool_is_idle_at_once)
{
  shared_setup(0);
  crew_pool *pool = mode_pool(modes[_i], 2, 0);
  ck_assert_int_eq(crew_pool_wait_idle(pool, 0), 0);
  ck_assert_int_eq(crew_pool_wait_idle(pool, CREW_FOREVER), 0);
  ck_assert_int_eq(crew_pool_wait_idle(NULL, 0), CREW_EINVAL);
  crew_future *f = submit_add(pool, 1);
  expect_add(f, 1);
  ck_assert_int_eq(crew_pool_wait_idle(pool, CREW_FOREVER), 0);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* Two gated tasks run, three wait behind them: not idle until all five
 * resolved; then every future is done and the pool still takes work. */
START_TEST(wait_idle_returns_once_every_task_resolved)
{
  shared_setup(0);
  crew_pool *pool = mode_pool(modes[_i], 2, 0);
  crew_future *gated[2], *queued[3];
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(crew_submit(pool, gated_task, NULL, 0, 0, &gated[i]), 0);
  take();
  take(); /* both run */
  for (int i = 0; i < 3; i++)
    queued[i] = submit_add(pool, 10 + i);
  int64_t x = 7;
  ck_assert_int_eq(crew_submit(pool, add_task, &x, sizeof x, 0, NULL), 0);
  ck_assert_int_eq(crew_pool_wait_idle(pool, 0), CREW_ETIMEDOUT);
  uint64_t t0 = now_ns();
  ck_assert_int_eq(crew_pool_wait_idle(pool, 20 * MS), CREW_ETIMEDOUT);
  ck_assert_uint_ge(now_ns() - t0, 20 * MS);

  struct waiter w;
  waiter_start(&w, pool);
  ck_assert_int_eq(signal_try(&w.done, 20 * MS), CREW_ETIMEDOUT);
  open_gate(2);
  ck_assert_int_eq(waiter_join(&w), 0);
  for (int i = 0; i < 2; i++)
    ck_assert(crew_future_done(gated[i]));
  for (int i = 0; i < 3; i++)
    ck_assert(crew_future_done(queued[i]));
  ck_assert_uint_eq(atomic_load(&shm->ran), 6);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.queued, 0);
  ck_assert_uint_eq(st.running, 0);
  ck_assert_uint_eq(st.completed, 6);
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(crew_future_wait(gated[i]), 0);
    crew_future_release(gated[i]);
  }
  for (int i = 0; i < 3; i++)
    expect_add(queued[i], 10 + i);
  crew_future *later = submit_add(pool, 99); /* still open */
  expect_add(later, 99);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

static gate cb_gate;
static _Atomic int cb_returned;

static void blocking_callback(crew_future *f, void *arg)
{
  (void)f;
  (void)arg;
  gate_pass(&cb_gate);
  atomic_store(&cb_returned, 1);
}

START_TEST(wait_idle_waits_for_done_callbacks)
{
  shared_setup(0);
  gate_init(&cb_gate);
  atomic_store(&cb_returned, 0);
  crew_pool *pool = mode_pool(modes[_i], 1, 0);
  crew_future *f;
  ck_assert_int_eq(crew_submit(pool, gated_task, NULL, 0, 0, &f), 0);
  take(); /* it runs: the callback is added before it resolves */
  ck_assert_int_eq(crew_future_on_done(f, blocking_callback, NULL), 0);
  open_gate(1);
  ck_assert_int_eq(crew_future_wait(f), 0);
  /* Resolved, but its callback waits at cb_gate. */
  ck_assert_int_eq(crew_pool_wait_idle(pool, 20 * MS), CREW_ETIMEDOUT);
  ck_assert_int_eq(atomic_load(&cb_returned), 0);
  struct waiter w;
  waiter_start(&w, pool);
  ck_assert_int_eq(signal_try(&w.done, 20 * MS), CREW_ETIMEDOUT);
  gate_open(&cb_gate, 1);
  ck_assert_int_eq(waiter_join(&w), 0);
  ck_assert_int_eq(atomic_load(&cb_returned), 1);
  crew_future_release(f);
  crew_pool_destroy(pool);
  gate_fini(&cb_gate);
  shared_teardown();
}
END_TEST

struct map_call {
  crew_pool *pool;
  size_t count;
  int rc;
  pthread_t thread;
};

static void *map_main(void *arg)
{
  struct map_call *m = arg;
  m->rc = crew_map(m->pool, gated_task, NULL, 0, NULL, 0, m->count);
  return NULL;
}

START_TEST(a_map_in_flight_keeps_the_pool_busy)
{
  shared_setup(0);
  crew_pool *pool = mode_pool(modes[_i], 2, 0);
  struct map_call m = {.pool = pool, .count = 4, .rc = 1};
  start_thread(&m.thread, map_main, &m);
  take();
  take(); /* two items run */
  ck_assert_int_eq(crew_pool_wait_idle(pool, 20 * MS), CREW_ETIMEDOUT);
  struct waiter w;
  waiter_start(&w, pool);
  open_gate(2);
  take();
  take(); /* the other two run */
  ck_assert_int_eq(signal_try(&w.done, 10 * MS), CREW_ETIMEDOUT);
  open_gate(2);
  ck_assert_int_eq(waiter_join(&w), 0);
  ck_assert_uint_eq(atomic_load(&shm->ran), 4);
  join_thread(m.thread);
  ck_assert_int_eq(m.rc, 0);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* Four producers, each submitting a burst, and four waiters: once a
 * waiter that started after the bursts returns, every task has run. */
struct producer {
  crew_pool *pool;
  size_t n;
  pthread_t thread;
};

static void *producer_main(void *arg)
{
  struct producer *p = arg;
  for (size_t i = 0; i < p->n; i++) {
    int64_t x = (int64_t)i;
    quiet_assert_int_eq(crew_submit(p->pool, add_task, &x, sizeof x, 0, NULL),
                        0);
  }
  return NULL;
}

START_TEST(many_waiters_see_every_burst_run)
{
  shared_setup(0);
  crew_pool *pool = mode_pool(modes[_i], 2, 64);
  size_t per = modes[_i] == CREW_THREADS ? scaled(20000) : scaled(2000);
  for (int round = 0; round < 3; round++) {
    struct producer p[4];
    for (int i = 0; i < 4; i++) {
      p[i] = (struct producer){.pool = pool, .n = per};
      start_thread(&p[i].thread, producer_main, &p[i]);
    }
    struct waiter w[4];
    for (int i = 0; i < 4; i++)
      waiter_start(&w[i], pool); /* some before the bursts end */
    for (int i = 0; i < 4; i++)
      join_thread(p[i].thread);
    ck_assert_int_eq(crew_pool_wait_idle(pool, CREW_FOREVER), 0);
    ck_assert_uint_eq(atomic_load(&shm->ran), (round + 1) * 4 * per);
    for (int i = 0; i < 4; i++)
      ck_assert_int_eq(waiter_join(&w[i]), 0);
  }
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.completed, 3 * 4 * per);
  ck_assert_uint_eq(st.queued + st.running, 0);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* In a task: wait_idle on the pool; the status is what it returned. */
static int wait_idle_task(const void *in, void *out)
{
  (void)in;
  (void)out;
  return crew_pool_wait_idle(the_pool, CREW_FOREVER);
}

static _Atomic int cb_rc;

static void wait_idle_callback(crew_future *f, void *arg)
{
  (void)f;
  signal_post(arg);
  atomic_store(&cb_rc, crew_pool_wait_idle(the_pool, CREW_FOREVER));
  signal_post(arg);
}

/* Threads: CREW_EBUSY, from a task and from a callback (both run on a
 * worker); processes: CREW_EINVAL from a task (a forked child), CREW_EBUSY
 * from the callback thread. */
START_TEST(wait_idle_inside_the_pool_does_not_wait_for_itself)
{
  shared_setup(0);
  crew_pool *pool = mode_pool(modes[_i], 1, 0);
  crew_future *f;
  ck_assert_int_eq(crew_submit(pool, wait_idle_task, NULL, 0, 0, &f), 0);
  ck_assert_int_eq(crew_future_wait(f),
                   modes[_i] == CREW_THREADS ? CREW_EBUSY : CREW_EINVAL);
  crew_future_release(f);

  signal_box box;
  signal_init(&box);
  atomic_store(&cb_rc, 1);
  ck_assert_int_eq(crew_submit(pool, gated_task, NULL, 0, 0, &f), 0);
  take();
  ck_assert_int_eq(crew_future_on_done(f, wait_idle_callback, &box), 0);
  open_gate(1);
  signal_wait(&box, 2);
  ck_assert_int_eq(atomic_load(&cb_rc), CREW_EBUSY);
  crew_future_release(f);
  ck_assert_int_eq(crew_pool_wait_idle(pool, CREW_FOREVER), 0);
  crew_pool_destroy(pool);
  signal_fini(&box);
  shared_teardown();
}
END_TEST

/* A shut-down pool is idle once every task resolved, before the join. */
START_TEST(a_shut_down_pool_is_idle_once_everything_resolved)
{
  crew_future *run, *queued;
  crew_pool *pool = running_and_queued(modes[_i], 3, &run, &queued, NULL);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN | CREW_NOWAIT), 0);
  ck_assert_int_eq(crew_pool_wait_idle(pool, 20 * MS), CREW_ETIMEDOUT);
  open_gate(1);
  ck_assert_int_eq(crew_pool_wait_idle(pool, CREW_FOREVER), 0);
  ck_assert(crew_future_done(run));
  ck_assert(crew_future_done(queued));
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  ck_assert_int_eq(crew_future_wait(run), 0);
  crew_future_release(run);
  expect_add(queued, 3);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* ============================================================ CREW_NOWAIT */

START_TEST(nowait_returns_while_a_task_runs_and_a_later_shutdown_waits)
{
  crew_future *run, *queued;
  crew_pool *pool = running_and_queued(modes[_i], 5, &run, &queued, NULL);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_CANCEL | CREW_NOWAIT), 0);
  /* Returned with the task still at the gate; the queued one cancelled. */
  ck_assert(!crew_future_done(run));
  ck_assert(crew_future_done(queued));
  ck_assert_int_eq(crew_future_status(queued), CREW_ECANCELED);
  int64_t x = 1;
  ck_assert_int_eq(crew_submit(pool, add_task, &x, sizeof x, 0, NULL),
                   CREW_ECLOSED);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN | CREW_NOWAIT), 0);
  struct waiter w; /* a shutdown without the flag waits: here, wait_idle */
  waiter_start(&w, pool);
  ck_assert_int_eq(signal_try(&w.done, 10 * MS), CREW_ETIMEDOUT);
  open_gate(1);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  ck_assert(crew_future_done(run));
  ck_assert_int_eq(crew_future_status(run), 0);
  ck_assert_int_eq(waiter_join(&w), 0);
  ck_assert_uint_eq(pool_stats(pool).workers, 0);
  crew_future_release(run);
  crew_future_release(queued);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* In a task: shutdown with CREW_NOWAIT, then without. */
static int shutdown_inside_task(const void *in, void *out)
{
  (void)in;
  int *rcs = out;
  rcs[0] = crew_pool_shutdown(the_pool, CREW_DRAIN | CREW_NOWAIT);
  rcs[1] = crew_pool_shutdown(the_pool, CREW_DRAIN);
  return 0;
}

START_TEST(nowait_inside_a_task_returns_zero)
{
  crew_pool *pool = mode_pool(CREW_THREADS, 1, 0);
  crew_future *f;
  ck_assert_int_eq(
      crew_submit(pool, shutdown_inside_task, NULL, 0, 2 * sizeof(int), &f), 0);
  int rcs[2] = {1, 1};
  ck_assert_int_eq(crew_future_get(f, rcs, sizeof rcs), 0);
  ck_assert_int_eq(rcs[0], 0);
  ck_assert_int_eq(rcs[1], CREW_EBUSY);
  crew_future_release(f);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  crew_pool_destroy(pool);
}
END_TEST

START_TEST(unknown_shutdown_flags_are_refused_and_change_nothing)
{
  shared_setup(0);
  crew_pool *pool = mode_pool(modes[_i], 1, 0);
  const int bad[] = {3, -1, 0x200, CREW_NOWAIT | 3, CREW_DRAIN | 0x80};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_int_eq(crew_pool_shutdown(pool, bad[i]), CREW_EINVAL);
  ck_assert_int_eq(crew_pool_shutdown(NULL, CREW_DRAIN | CREW_NOWAIT),
                   CREW_EINVAL);
  crew_future *f = submit_add(pool, 2); /* still open */
  expect_add(f, 2);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* ============================================================== CREW_KILL */

START_TEST(kill_is_refused_in_thread_mode)
{
  shared_setup(0);
  crew_pool *pool = mode_pool(CREW_THREADS, 1, 0);
  crew_future *run;
  ck_assert_int_eq(crew_submit(pool, gated_task, NULL, 0, 0, &run), 0);
  take();
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_KILL), CREW_EINVAL);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_KILL | CREW_NOWAIT),
                   CREW_EINVAL);
  crew_future *f = submit_add(pool, 4); /* still open */
  open_gate(1);
  expect_add(f, 4);
  ck_assert_int_eq(crew_future_wait(run), 0);
  crew_future_release(run);
  ck_assert_uint_eq(pool_stats(pool).cancelled, 0);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

START_TEST(kill_cancels_the_queue_and_kills_the_running_tasks)
{
  shared_setup(0);
  crew_pool *pool = mode_pool(CREW_PROCESSES, 2, 0);
  crew_future *run[2], *queued[5];
  pid_t pids[2];
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(crew_submit(pool, gated_task, NULL, 0, 0, &run[i]), 0);
  for (int i = 0; i < 2; i++)
    pids[i] = (pid_t)take();
  for (int i = 0; i < 5; i++)
    queued[i] = submit_add(pool, i);
  int64_t x = 1;
  ck_assert_int_eq(crew_submit(pool, add_task, &x, sizeof x, 0, NULL), 0);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_KILL), 0); /* gate shut */
  for (int i = 0; i < 2; i++) {
    ck_assert(crew_future_done(run[i]));
    ck_assert_int_eq(crew_future_status(run[i]), CREW_ECANCELED);
    ck_assert(proc_gone(pids[i]));
    crew_future_release(run[i]);
  }
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(crew_future_status(queued[i]), CREW_ECANCELED);
    crew_future_release(queued[i]);
  }
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.cancelled, 8);
  ck_assert_uint_eq(st.crashed, 0);
  ck_assert_uint_eq(st.restarted, 0);
  ck_assert_uint_eq(st.workers, 0);
  ck_assert_uint_eq(st.queued + st.running, 0);
  ck_assert_uint_eq(atomic_load(&shm->ran), 0);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_KILL), 0); /* again: 0 */
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

struct shutdown_call {
  crew_pool *pool;
  int how, rc;
  pthread_t thread;
};

static void *shutdown_main(void *arg)
{
  struct shutdown_call *c = arg;
  c->rc = crew_pool_shutdown(c->pool, c->how);
  return NULL;
}

/* A server's second SIGTERM: a drain waits for a task that never ends; a
 * kill from another thread ends it, and both calls return. */
START_TEST(kill_overtakes_a_drain_that_waits)
{
  crew_future *run, *queued;
  pid_t pid;
  crew_pool *pool = running_and_queued(CREW_PROCESSES, 8, &run, &queued, &pid);
  struct shutdown_call drain = {.pool = pool, .how = CREW_DRAIN, .rc = 1};
  start_thread(&drain.thread, shutdown_main, &drain);
  ck_assert_int_eq(crew_pool_wait_idle(pool, 20 * MS), CREW_ETIMEDOUT);
  ck_assert(!crew_future_done(queued)); /* the drain keeps it queued */
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_KILL), 0);
  join_thread(drain.thread);
  ck_assert_int_eq(drain.rc, 0);
  ck_assert_int_eq(crew_future_status(run), CREW_ECANCELED);
  ck_assert_int_eq(crew_future_status(queued), CREW_ECANCELED);
  ck_assert(proc_gone(pid));
  ck_assert_uint_eq(pool_stats(pool).cancelled, 2);
  crew_future_release(run);
  crew_future_release(queued);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

START_TEST(kill_ends_a_map_in_flight_with_a_failure)
{
  shared_setup(0);
  crew_pool *pool = mode_pool(CREW_PROCESSES, 2, 0);
  struct map_call m = {.pool = pool, .count = 6, .rc = 1};
  start_thread(&m.thread, map_main, &m);
  take();
  take(); /* two items run */
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_KILL | CREW_NOWAIT), 0);
  join_thread(m.thread);
  ck_assert_int_eq(m.rc, CREW_ECANCELED);
  ck_assert_uint_eq(atomic_load(&shm->ran), 0);
  ck_assert_uint_eq(pool_stats(pool).crashed, 0);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

static TCase *add_tcase(Suite *s, const char *name, double timeout_s)
{
  TCase *tc = tcase_create(name);
  harness_tcase(tc, timeout_s);
  suite_add_tcase(s, tc);
  return tc;
}

int main(void)
{
  Suite *s = suite_create("idle");
  TCase *tc = add_tcase(s, "wait_idle", 120);
  tcase_add_loop_test(tc, an_idle_pool_is_idle_at_once, 0, 2);
  tcase_add_loop_test(tc, wait_idle_returns_once_every_task_resolved, 0, 2);
  tcase_add_loop_test(tc, wait_idle_waits_for_done_callbacks, 0, 2);
  tcase_add_loop_test(tc, a_map_in_flight_keeps_the_pool_busy, 0, 2);
  tcase_add_loop_test(tc, many_waiters_see_every_burst_run, 0, 2);
  tcase_add_loop_test(tc, wait_idle_inside_the_pool_does_not_wait_for_itself, 0,
                      2);
  tcase_add_loop_test(tc, a_shut_down_pool_is_idle_once_everything_resolved, 0,
                      2);
  tc = add_tcase(s, "nowait", 60);
  tcase_add_loop_test(
      tc, nowait_returns_while_a_task_runs_and_a_later_shutdown_waits, 0, 2);
  tcase_add_test(tc, nowait_inside_a_task_returns_zero);
  tcase_add_loop_test(tc, unknown_shutdown_flags_are_refused_and_change_nothing,
                      0, 2);
  tc = add_tcase(s, "kill", 60);
  tcase_add_test(tc, kill_is_refused_in_thread_mode);
  tcase_add_test(tc, kill_cancels_the_queue_and_kills_the_running_tasks);
  tcase_add_test(tc, kill_overtakes_a_drain_that_waits);
  tcase_add_test(tc, kill_ends_a_map_in_flight_with_a_failure);
  return run_suite(s);
}
