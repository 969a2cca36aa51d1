/*
 * check_future_wait.c - waiting on futures (crew/future.h): crew_wait_any
 * and crew_wait_all, many waiters on one future, waits nested in tasks
 * (a worker that waits runs the queued task itself), lifetimes (a future
 * outlives its pool, a released future's task still runs), and the copy
 * of a task's input at submit.
 *
 * Tasks park on gates and say "I got here" with signals (testutil.h); they
 * get pointers to the test's gates and counters by value, in their input.
 */
#include "futures.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ============================================================ wait_any */

START_TEST(wait_any_argument_errors)
{
  crew_pool *pool = make_pool(1, 0);
  crew_future *f = submit_status(pool, 0);
  crew_future *fs[2] = {f, NULL};
  size_t idx = 77;
  ck_assert_int_eq(crew_wait_any(NULL, 1, 0, &idx), CREW_EINVAL);
  ck_assert_int_eq(crew_wait_any(fs, 0, CREW_FOREVER, &idx), CREW_EINVAL);
  ck_assert_int_eq(crew_wait_any(fs, 1, CREW_FOREVER, NULL), CREW_EINVAL);
  ck_assert_int_eq(crew_wait_any(fs, 2, CREW_FOREVER, &idx), CREW_EINVAL);
  ck_assert_uint_eq(idx, 77);
  ck_assert_int_eq(crew_wait_any(fs, 1, CREW_FOREVER, &idx), 0);
  ck_assert_uint_eq(idx, 0);
  crew_future_release(f);
  destroy_pool(pool);
}
END_TEST

START_TEST(wait_any_returns_the_lowest_resolved_index)
{
  crew_pool *pool = make_pool(2, 0);
  gate g;
  gate_init(&g);
  crew_future *fs[4];
  fs[0] = submit_parked(pool, &g, 0);
  fs[1] = submit_status(pool, 1);
  fs[2] = submit_status(pool, 2);
  fs[3] = submit_parked(pool, &g, 0);
  ck_assert_int_eq(crew_future_wait(fs[1]), 1);
  ck_assert_int_eq(crew_future_wait(fs[2]), 2);
  size_t idx = 77;
  ck_assert_int_eq(crew_wait_any(fs, 4, CREW_FOREVER, &idx), 0);
  ck_assert_uint_eq(idx, 1);
  ck_assert_int_eq(crew_wait_any(fs + 2, 2, 0, &idx), 0);
  ck_assert_uint_eq(idx, 0);
  gate_open(&g, 2);
  ck_assert_int_eq(crew_future_wait(fs[0]), 0);
  ck_assert_int_eq(crew_wait_any(fs, 4, 0, &idx), 0);
  ck_assert_uint_eq(idx, 0);
  for (size_t i = 0; i < 4; i++)
    crew_future_release(fs[i]);
  destroy_pool(pool);
  gate_fini(&g);
}
END_TEST

START_TEST(wait_any_wakes_for_the_gate_opened)
{
  crew_pool *pool = make_pool(4, 0);
  gate g[4];
  signal_box started, ready, woke;
  signal_init(&started);
  signal_init(&ready);
  signal_init(&woke);
  crew_future *fs[4];
  for (size_t i = 0; i < 4; i++) {
    gate_init(&g[i]);
    fs[i] = submit_job(
        pool, (struct job){.started = &started, .g = &g[i], .status = 40}, 0);
  }
  signal_wait(&started, 4); /* all four running, each on its own gate */
  struct waiter w = {
      .how = WAIT_ANY, .fs = fs, .n = 4, .ready = &ready, .woke = &woke};
  waiter_start(&w);
  signal_wait(&ready, 1);
  ck_assert_int_eq(signal_try(&woke, 50 * MS), CREW_ETIMEDOUT);
  gate_open(&g[2], 1);
  signal_wait(&woke, 1);
  waiter_join(&w);
  ck_assert_int_eq(w.rc, 0);
  ck_assert_uint_eq(w.idx, 2);
  ck_assert_int_eq(crew_future_status(fs[2]), 40);
  ck_assert(!crew_future_done(fs[0]));
  ck_assert(!crew_future_done(fs[1]));
  ck_assert(!crew_future_done(fs[3]));
  for (size_t i = 0; i < 4; i++) {
    if (i != 2)
      gate_open(&g[i], 1);
    ck_assert_int_eq(crew_future_wait(fs[i]), 40);
    crew_future_release(fs[i]);
  }
  destroy_pool(pool);
  for (size_t i = 0; i < 4; i++)
    gate_fini(&g[i]);
  signal_fini(&started);
  signal_fini(&ready);
  signal_fini(&woke);
}
END_TEST

START_TEST(wait_any_many_wakes_for_a_cancel)
{
  /* More futures than fit the waiter's links on the stack. */
  enum { N = 12 };
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  signal_box parked;
  signal_init(&parked);
  park_workers(pool, 1, &g, &parked);
  crew_future *fs[N];
  for (size_t i = 0; i < N; i++)
    fs[i] = submit_status(pool, 0); /* all queued */
  signal_box ready, woke;
  signal_init(&ready);
  signal_init(&woke);
  struct waiter w = {
      .how = WAIT_ANY, .fs = fs, .n = N, .ready = &ready, .woke = &woke};
  waiter_start(&w);
  signal_wait(&ready, 1);
  ck_assert_int_eq(signal_try(&woke, 50 * MS), CREW_ETIMEDOUT);
  ck_assert_int_eq(crew_future_cancel(fs[9]), 0);
  signal_wait(&woke, 1);
  waiter_join(&w);
  ck_assert_int_eq(w.rc, 0);
  ck_assert_uint_eq(w.idx, 9);
  gate_open(&g, 1);
  ck_assert_int_eq(crew_wait_all(fs, N, CREW_FOREVER), 0);
  for (size_t i = 0; i < N; i++) {
    ck_assert_int_eq(crew_future_status(fs[i]), i == 9 ? CREW_ECANCELED : 0);
    crew_future_release(fs[i]);
  }
  destroy_pool(pool);
  signal_fini(&ready);
  signal_fini(&woke);
  signal_fini(&parked);
  gate_fini(&g);
}
END_TEST

START_TEST(wait_any_timeout_leaves_index_untouched)
{
  crew_pool *pool = make_pool(2, 0);
  gate g;
  gate_init(&g);
  crew_future *fs[2] = {submit_parked(pool, &g, 0), submit_parked(pool, &g, 0)};
  size_t idx = 77;
  uint64_t t0 = now_ns();
  ck_assert_int_eq(crew_wait_any(fs, 2, 50 * MS, &idx), CREW_ETIMEDOUT);
  ck_assert_uint_ge(now_ns() - t0, 50 * MS);
  ck_assert_uint_eq(idx, 77);
  ck_assert_int_eq(crew_wait_any(fs, 2, 0, &idx), CREW_ETIMEDOUT);
  ck_assert_uint_eq(idx, 77);
  gate_open(&g, 2);
  ck_assert_int_eq(crew_wait_all(fs, 2, CREW_FOREVER), 0);
  crew_future_release(fs[0]);
  crew_future_release(fs[1]);
  destroy_pool(pool);
  gate_fini(&g);
}
END_TEST

START_TEST(wait_any_returns_zero_whatever_the_status)
{
  crew_pool *pool = make_pool(2, 0);
  gate g;
  gate_init(&g);
  signal_box parked;
  signal_init(&parked);
  crew_future *fs[3];
  fs[0] = submit_parked(pool, &g, 0);
  fs[1] = submit_status(pool, 5);
  size_t idx = 77;
  ck_assert_int_eq(crew_wait_any(fs, 2, CREW_FOREVER, &idx), 0);
  ck_assert_uint_eq(idx, 1);
  ck_assert_int_eq(crew_future_status(fs[1]), 5);
  /* A cancelled one counts as resolved too. */
  park_workers(pool, 1, &g, &parked); /* both workers parked now */
  fs[2] = submit_status(pool, 0);
  ck_assert_int_eq(crew_future_cancel(fs[2]), 0);
  crew_future *pair[2] = {fs[0], fs[2]};
  idx = 77;
  ck_assert_int_eq(crew_wait_any(pair, 2, CREW_FOREVER, &idx), 0);
  ck_assert_uint_eq(idx, 1);
  gate_open(&g, 2);
  ck_assert_int_eq(crew_future_wait(fs[0]), 0);
  for (size_t i = 0; i < 3; i++)
    crew_future_release(fs[i]);
  destroy_pool(pool);
  signal_fini(&parked);
  gate_fini(&g);
}
END_TEST

/* ============================================================ wait_all */

START_TEST(wait_all_argument_errors)
{
  crew_pool *pool = make_pool(1, 0);
  crew_future *f = submit_status(pool, 0);
  crew_future *fs[3] = {f, NULL, f};
  ck_assert_int_eq(crew_wait_all(NULL, 1, CREW_FOREVER), CREW_EINVAL);
  ck_assert_int_eq(crew_wait_all(fs, 0, CREW_FOREVER), CREW_EINVAL);
  ck_assert_int_eq(crew_wait_all(fs, 2, CREW_FOREVER), CREW_EINVAL);
  ck_assert_int_eq(crew_wait_all(fs + 1, 1, 0), CREW_EINVAL);
  ck_assert_int_eq(crew_wait_all(fs, 1, CREW_FOREVER), 0);
  crew_future_release(f);
  destroy_pool(pool);
}
END_TEST

START_TEST(wait_all_with_completed_failed_and_cancelled)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  crew_future *fs[4];
  fs[0] = submit_parked(pool, &g, 0); /* holds the only worker */
  fs[1] = submit_status(pool, 3);     /* fails */
  fs[2] = submit_status(pool, 0);     /* cancelled */
  fs[3] = submit_status(pool, 0);     /* completes */
  ck_assert_int_eq(crew_future_cancel(fs[2]), 0);
  gate_open(&g, 1);
  ck_assert_int_eq(crew_wait_all(fs, 4, CREW_FOREVER), 0);
  ck_assert_int_eq(crew_future_status(fs[0]), 0);
  ck_assert_int_eq(crew_future_status(fs[1]), 3);
  ck_assert_int_eq(crew_future_status(fs[2]), CREW_ECANCELED);
  ck_assert_int_eq(crew_future_status(fs[3]), 0);
  ck_assert_int_eq(crew_wait_all(fs, 4, 0), 0);
  for (size_t i = 0; i < 4; i++)
    crew_future_release(fs[i]);
  destroy_pool(pool);
  gate_fini(&g);
}
END_TEST

START_TEST(wait_all_times_out_while_one_is_parked)
{
  crew_pool *pool = make_pool(2, 0);
  gate g;
  gate_init(&g);
  crew_future *fs[3];
  fs[0] = submit_status(pool, 0);
  fs[1] = submit_parked(pool, &g, 0);
  fs[2] = submit_status(pool, 0);
  ck_assert_int_eq(crew_future_wait(fs[0]), 0);
  ck_assert_int_eq(crew_future_wait(fs[2]), 0);
  uint64_t t0 = now_ns();
  ck_assert_int_eq(crew_wait_all(fs, 3, 50 * MS), CREW_ETIMEDOUT);
  ck_assert_uint_ge(now_ns() - t0, 50 * MS);
  ck_assert_int_eq(crew_wait_all(fs, 3, 0), CREW_ETIMEDOUT);
  gate_open(&g, 1);
  ck_assert_int_eq(crew_wait_all(fs, 3, CREW_FOREVER), 0);
  for (size_t i = 0; i < 3; i++)
    crew_future_release(fs[i]);
  destroy_pool(pool);
  gate_fini(&g);
}
END_TEST

START_TEST(wait_all_many_futures)
{
  enum { N = 1000 };
  crew_pool *pool = make_pool(4, 0);
  crew_future **fs = calloc(N, sizeof *fs);
  ck_assert_ptr_nonnull(fs);
  for (int i = 0; i < N; i++)
    fs[i] = submit_value(pool, i % 50, sizeof(int));
  ck_assert_int_eq(crew_wait_all(fs, N, CREW_FOREVER), 0);
  for (int i = 0; i < N; i++) {
    ck_assert(crew_future_done(fs[i]));
    int out = -1;
    ck_assert_int_eq(crew_future_get_timed(fs[i], &out, sizeof out, 0), i % 50);
    ck_assert_int_eq(out, 2 * (i % 50));
    crew_future_release(fs[i]);
  }
  free(fs);
  destroy_pool(pool);
}
END_TEST

/* ======================================================= many waiters */

START_TEST(many_waiters_all_wake)
{
  enum { N = 32 };
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  crew_future *f = submit_parked(pool, &g, 11);
  signal_box ready, woke;
  signal_init(&ready);
  signal_init(&woke);
  struct waiter w[N];
  for (size_t i = 0; i < N; i++) {
    w[i] = (struct waiter){.how = i % 2 == 0 ? WAIT_TIMED_LONG : WAIT_PLAIN,
                           .f = f,
                           .ready = &ready,
                           .woke = &woke,
                           .rc = 99};
    waiter_start(&w[i]);
  }
  signal_wait(&ready, N);
  ck_assert_int_eq(signal_try(&woke, 50 * MS), CREW_ETIMEDOUT);
  gate_open(&g, 1);
  signal_wait(&woke, N);
  for (size_t i = 0; i < N; i++) {
    waiter_join(&w[i]);
    ck_assert_int_eq(w[i].rc, 11);
  }
  crew_future_release(f);
  destroy_pool(pool);
  signal_fini(&ready);
  signal_fini(&woke);
  gate_fini(&g);
}
END_TEST

START_TEST(short_timed_waiter_among_others)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  crew_future *f = submit_parked(pool, &g, 11);
  signal_box ready, woke;
  signal_init(&ready);
  signal_init(&woke);
  struct waiter w = {
      .how = WAIT_PLAIN, .f = f, .ready = &ready, .woke = &woke, .rc = 99};
  waiter_start(&w);
  signal_wait(&ready, 1);
  /* Our short wait times out; the other waiter keeps waiting. */
  ck_assert_int_eq(crew_future_wait_timed(f, 20 * MS), CREW_ETIMEDOUT);
  ck_assert_int_eq(signal_try(&woke, 0), CREW_ETIMEDOUT);
  gate_open(&g, 1);
  signal_wait(&woke, 1);
  waiter_join(&w);
  ck_assert_int_eq(w.rc, 11);
  ck_assert_int_eq(crew_future_wait_timed(f, 20 * MS), 11);
  crew_future_release(f);
  destroy_pool(pool);
  signal_fini(&ready);
  signal_fini(&woke);
  gate_fini(&g);
}
END_TEST

/* =============================================================== nested */

/* Submit fn with the pool itself as its input (a task that calls into its
 * own pool), asserting it is accepted. */
static crew_future *submit_nested(crew_pool *pool, crew_fn fn, size_t out_size)
{
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, fn, &pool, sizeof pool, out_size, &f), 0);
  return f;
}

/* Submits a sub-task to its own pool and waits for it; out: int[3]. */
static int nested_wait_fn(const void *in, void *out)
{
  crew_pool *pool;
  memcpy(&pool, in, sizeof pool);
  int v = 21;
  crew_future *sub = NULL;
  if (crew_submit(pool, value_fn, &v, sizeof v, sizeof(int), &sub) != 0)
    return 100;
  int res[3] = {0, 0, 0};
  res[0] = crew_future_wait(sub);
  res[1] = crew_future_get(sub, &res[2], sizeof res[2]);
  crew_future_release(sub);
  memcpy(out, res, sizeof res);
  return 0;
}

START_TEST(nested_wait_on_one_worker)
{
  crew_pool *pool = make_pool(1, 0);
  crew_future *f = submit_nested(pool, nested_wait_fn, 3 * sizeof(int));
  int res[3] = {0, 0, 0};
  ck_assert_int_eq(crew_future_get(f, res, sizeof res), 0);
  ck_assert_int_eq(res[0], 21);
  ck_assert_int_eq(res[1], 21);
  ck_assert_int_eq(res[2], 42);
  crew_future_release(f);
  destroy_pool(pool);
}
END_TEST

/* Submits 4 sub-tasks, waits for any, then all; out: int[7]. */
static int nested_any_all_fn(const void *in, void *out)
{
  crew_pool *pool;
  memcpy(&pool, in, sizeof pool);
  crew_future *subs[4];
  for (int i = 0; i < 4; i++) {
    int v = i + 1;
    if (crew_submit(pool, value_fn, &v, sizeof v, 0, &subs[i]) != 0)
      return 100;
  }
  int res[7];
  size_t idx = 99;
  res[0] = crew_wait_any(subs, 4, CREW_FOREVER, &idx);
  /* idx resolved, every lower one not. */
  res[1] = idx < 4 && crew_future_done(subs[idx]);
  for (size_t j = 0; j < idx && j < 4; j++)
    if (crew_future_done(subs[j]))
      res[1] = 0;
  res[2] = crew_wait_all(subs, 4, CREW_FOREVER);
  for (int i = 0; i < 4; i++) {
    res[3 + i] = crew_future_status(subs[i]);
    crew_future_release(subs[i]);
  }
  memcpy(out, res, sizeof res);
  return 0;
}

START_TEST(nested_wait_any_and_all_on_one_worker)
{
  crew_pool *pool = make_pool(1, 0);
  crew_future *f = submit_nested(pool, nested_any_all_fn, 7 * sizeof(int));
  int res[7];
  ck_assert_int_eq(crew_future_get(f, res, sizeof res), 0);
  ck_assert_int_eq(res[0], 0);
  ck_assert_int_eq(res[1], 1);
  ck_assert_int_eq(res[2], 0);
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(res[3 + i], i + 1);
  crew_future_release(f);
  destroy_pool(pool);
}
END_TEST

struct chain {
  crew_pool *pool;
  int depth;
};

/* Submits the next link and waits for it; out: the links below + 1. */
static int chain_fn(const void *in, void *out)
{
  struct chain c;
  memcpy(&c, in, sizeof c);
  int below = 0;
  if (c.depth > 1) {
    struct chain next = {.pool = c.pool, .depth = c.depth - 1};
    crew_future *f = NULL;
    if (crew_submit(c.pool, chain_fn, &next, sizeof next, sizeof below, &f) !=
        0)
      return 100;
    int rc = crew_future_get(f, &below, sizeof below);
    crew_future_release(f);
    if (rc != 0)
      return 101;
  }
  int mine = below + 1;
  memcpy(out, &mine, sizeof mine);
  return 0;
}

START_TEST(nested_chain_of_ten_on_one_worker)
{
  crew_pool *pool = make_pool(1, 0);
  struct chain c = {.pool = pool, .depth = 10};
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, chain_fn, &c, sizeof c, sizeof(int), &f),
                   0);
  int links = 0;
  ck_assert_int_eq(crew_future_get(f, &links, sizeof links), 0);
  ck_assert_int_eq(links, 10);
  crew_future_release(f);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  crew_stats st;
  ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
  ck_assert_uint_eq(st.submitted, 10);
  ck_assert_uint_eq(st.completed, 10);
  crew_pool_destroy(pool);
}
END_TEST

/*
 * On a pool of one worker and a queue of one slot: submits B (fills the
 * queue), then C (the queue is full: C runs at once, inline), then waits for
 * B. out: int[4] = done(C) after its submit, status(C), done(B) before the
 * wait, wait(B).
 */
static int full_queue_fn(const void *in, void *out)
{
  crew_pool *pool;
  memcpy(&pool, in, sizeof pool);
  int b = 5, c = 6;
  crew_future *fb = NULL, *fc = NULL;
  if (crew_submit(pool, value_fn, &b, sizeof b, 0, &fb) != 0)
    return 100;
  if (crew_submit(pool, value_fn, &c, sizeof c, 0, &fc) != 0)
    return 101;
  int res[4];
  res[0] = crew_future_done(fc);
  res[1] = crew_future_status(fc);
  res[2] = crew_future_done(fb);
  res[3] = crew_future_wait(fb);
  crew_future_release(fb);
  crew_future_release(fc);
  memcpy(out, res, sizeof res);
  return 0;
}

START_TEST(nested_submit_to_a_full_queue_runs_inline)
{
  crew_pool *pool = make_pool(1, 1);
  crew_future *f = submit_nested(pool, full_queue_fn, 4 * sizeof(int));
  int res[4];
  ck_assert_int_eq(crew_future_get(f, res, sizeof res), 0);
  ck_assert_int_eq(res[0], 1);
  ck_assert_int_eq(res[1], 6);
  ck_assert_int_eq(res[2], 0);
  ck_assert_int_eq(res[3], 5);
  crew_future_release(f);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  crew_stats st;
  ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
  ck_assert_uint_eq(st.submitted, 3);
  ck_assert_uint_eq(st.completed, 3);
  crew_pool_destroy(pool);
}
END_TEST

/* ============================================================ lifetimes */

START_TEST(released_future_task_still_runs)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  atomic_int runs = 0;
  /* Released while running (parked) ... */
  signal_box started;
  signal_init(&started);
  crew_future *running = submit_job(
      pool, (struct job){.started = &started, .g = &g, .runs = &runs}, 0);
  signal_wait(&started, 1);
  crew_future_release(running);
  /* ... and released while still queued behind it, with an output. */
  crew_future *queued =
      submit_job(pool, (struct job){.runs = &runs, .out_len = 32}, 32);
  crew_future_release(queued);
  gate_open(&g, 1);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  ck_assert_int_eq(atomic_load(&runs), 2);
  crew_stats st;
  ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
  ck_assert_uint_eq(st.completed, 2);
  ck_assert_uint_eq(st.cancelled, 0);
  crew_pool_destroy(pool); /* ASan: both futures freed */
  signal_fini(&started);
  gate_fini(&g);
}
END_TEST

START_TEST(future_outlives_its_pool)
{
  crew_pool *pool = make_pool(1, 0);
  crew_future *f = submit_job(pool, (struct job){.status = 6, .out_len = 8}, 8);
  crew_pool_destroy(pool); /* drains: the task ran */

  ck_assert(crew_future_done(f));
  ck_assert_int_eq(crew_future_status(f), 6);
  ck_assert_int_eq(crew_future_wait(f), 6);
  ck_assert_int_eq(crew_future_wait_timed(f, 0), 6);
  unsigned char buf[8];
  ck_assert_int_eq(crew_future_get(f, buf, sizeof buf), 6);
  for (size_t i = 0; i < sizeof buf; i++)
    ck_assert_uint_eq(buf[i], pattern(i));
  ck_assert_int_eq(crew_future_cancel(f), CREW_EBUSY);
  size_t idx = 77;
  ck_assert_int_eq(crew_wait_any(&f, 1, 0, &idx), 0);
  ck_assert_uint_eq(idx, 0);
  ck_assert_int_eq(crew_wait_all(&f, 1, 0), 0);
  struct cb_log log = {.next = 0};
  struct cb_arg a = {.log = &log, .id = 1};
  ck_assert_int_eq(crew_future_on_done(f, log_cb, &a), 0);
  ck_assert_int_eq(atomic_load(&log.next), 1);
  ck_assert(pthread_equal(log.thread[0], pthread_self()));
  ck_assert_ptr_eq(log.seen[0], f);
  crew_future_release(f);
}
END_TEST

START_TEST(cancelled_future_outlives_its_pool)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  crew_future *parked = submit_parked(pool, &g, 0);
  atomic_int runs = 0;
  crew_future *f = submit_job(pool, (struct job){.runs = &runs}, 4);
  ck_assert_int_eq(crew_future_wait_timed(parked, 0), CREW_ETIMEDOUT);
  ck_assert_int_eq(crew_future_status(f), CREW_EBUSY);
  ck_assert_int_eq(crew_future_cancel(f), 0); /* queued behind parked */
  gate_open(&g, 1);
  crew_pool_destroy(pool);
  ck_assert_int_eq(atomic_load(&runs), 0);
  ck_assert_int_eq(crew_future_status(f), CREW_ECANCELED);
  ck_assert_int_eq(crew_future_wait(f), CREW_ECANCELED);
  unsigned char buf[4] = {0xEE, 0xEE, 0xEE, 0xEE};
  ck_assert_int_eq(crew_future_get(f, buf, sizeof buf), CREW_ECANCELED);
  for (size_t i = 0; i < sizeof buf; i++)
    ck_assert_uint_eq(buf[i], 0xEE);
  ck_assert_int_eq(crew_future_cancel(f), CREW_EBUSY);
  ck_assert_int_eq(crew_future_wait(parked), 0);
  crew_future_release(f);
  crew_future_release(parked);
  gate_fini(&g);
}
END_TEST

/* ================================================================ input */

struct text_in {
  gate *g;
  char text[32];
};

/* Passes the gate, then copies its text to out (32 bytes). */
static int text_fn(const void *in, void *out)
{
  const struct text_in *t = in;
  gate_pass(t->g);
  memcpy(out, t->text, sizeof t->text);
  return 0;
}

START_TEST(input_is_copied_at_submit)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  struct text_in t = {.g = &g};
  strcpy(t.text, "the original input");
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, text_fn, &t, sizeof t, sizeof t.text, &f),
                   0);
  /* The task reads its input only after the gate: overwrite ours now. */
  memset(t.text, 'X', sizeof t.text);
  t.g = NULL;
  gate_open(&g, 1);
  char out[32];
  ck_assert_int_eq(crew_future_get(f, out, sizeof out), 0);
  ck_assert_str_eq(out, "the original input");
  crew_future_release(f);
  destroy_pool(pool);
  gate_fini(&g);
}
END_TEST

enum { BIG = 100000 };

/* Checks BIG bytes of pattern(i) and a NULL out: 0, or what was wrong. */
static int big_fn(const void *in, void *out)
{
  const unsigned char *b = in;
  if (out != NULL)
    return 1;
  if (b == NULL)
    return 2;
  for (size_t i = 0; i < BIG; i++)
    if (b[i] != pattern(i))
      return 3;
  return 0;
}

START_TEST(large_input_with_no_output)
{
  crew_pool *pool = make_pool(2, 0);
  unsigned char *buf = malloc(BIG);
  ck_assert_ptr_nonnull(buf);
  for (size_t i = 0; i < BIG; i++)
    buf[i] = pattern(i);
  crew_future *fs[4];
  for (size_t k = 0; k < 4; k++)
    ck_assert_int_eq(crew_submit(pool, big_fn, buf, BIG, 0, &fs[k]), 0);
  memset(buf, 0, BIG); /* each task has its own copy */
  for (size_t k = 0; k < 4; k++) {
    ck_assert_int_eq(crew_future_get(fs[k], NULL, 0), 0);
    ck_assert_int_eq(crew_future_get(fs[k], buf, 1), CREW_EINVAL);
    crew_future_release(fs[k]);
  }
  free(buf);
  destroy_pool(pool);
}
END_TEST

/* 0 if in is NULL and out is not (it writes 4 bytes), else what was wrong. */
static int null_in_fn(const void *in, void *out)
{
  if (in != NULL)
    return 1;
  if (out == NULL)
    return 2;
  memcpy(out, "abcd", 4);
  return 0;
}

START_TEST(empty_input_gives_the_task_null)
{
  crew_pool *pool = make_pool(1, 0);
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, null_in_fn, NULL, 0, 4, &f), 0);
  char out[5] = {0};
  ck_assert_int_eq(crew_future_get(f, out, 4), 0);
  ck_assert_str_eq(out, "abcd");
  crew_future_release(f);
  destroy_pool(pool);
}
END_TEST

/* 0 if out is NULL and in holds 'q', else what was wrong. */
static int null_out_fn(const void *in, void *out)
{
  if (out != NULL)
    return 1;
  if (in == NULL || *(const char *)in != 'q')
    return 2;
  return 0;
}

START_TEST(no_output_gives_the_task_null)
{
  crew_pool *pool = make_pool(1, 0);
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, null_out_fn, "q", 1, 0, &f), 0);
  ck_assert_int_eq(crew_future_wait(f), 0);
  ck_assert_int_eq(crew_future_get(f, NULL, 0), 0);
  char c = 'z';
  ck_assert_int_eq(crew_future_get(f, &c, 1), CREW_EINVAL);
  ck_assert_int_eq(c, 'z');
  crew_future_release(f);
  destroy_pool(pool);
}
END_TEST

/* ================================================================= main */

int main(void)
{
  Suite *s = suite_create("future_wait");
  TCase *tc = timed_tcase(s, "wait_any", 10);
  tcase_add_test(tc, wait_any_argument_errors);
  tcase_add_test(tc, wait_any_returns_the_lowest_resolved_index);
  tcase_add_test(tc, wait_any_wakes_for_the_gate_opened);
  tcase_add_test(tc, wait_any_many_wakes_for_a_cancel);
  tcase_add_test(tc, wait_any_timeout_leaves_index_untouched);
  tcase_add_test(tc, wait_any_returns_zero_whatever_the_status);

  tc = timed_tcase(s, "wait_all", 10);
  tcase_add_test(tc, wait_all_argument_errors);
  tcase_add_test(tc, wait_all_with_completed_failed_and_cancelled);
  tcase_add_test(tc, wait_all_times_out_while_one_is_parked);
  tcase_add_test(tc, wait_all_many_futures);

  tc = timed_tcase(s, "waiters", 10);
  tcase_add_test(tc, many_waiters_all_wake);
  tcase_add_test(tc, short_timed_waiter_among_others);

  tc = timed_tcase(s, "nested", 10);
  tcase_add_test(tc, nested_wait_on_one_worker);
  tcase_add_test(tc, nested_wait_any_and_all_on_one_worker);
  tcase_add_test(tc, nested_chain_of_ten_on_one_worker);
  tcase_add_test(tc, nested_submit_to_a_full_queue_runs_inline);

  tc = timed_tcase(s, "lifetime", 10);
  tcase_add_test(tc, released_future_task_still_runs);
  tcase_add_test(tc, future_outlives_its_pool);
  tcase_add_test(tc, cancelled_future_outlives_its_pool);

  tc = timed_tcase(s, "input", 10);
  tcase_add_test(tc, input_is_copied_at_submit);
  tcase_add_test(tc, large_input_with_no_output);
  tcase_add_test(tc, empty_input_gives_the_task_null);
  tcase_add_test(tc, no_output_gives_the_task_null);
  return run_suite(s);
}
