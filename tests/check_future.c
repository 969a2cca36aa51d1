/*
 * check_future.c - futures (crew/future.h): argument errors, results and
 * outputs, timed waits, cancellation (and its race with the workers), and
 * done callbacks. Waits on many futures, many waiters, waits nested in
 * tasks, lifetimes and the copy of a task's input at submit are
 * check_future_wait.c.
 *
 * Tasks park on gates and say "I got here" with signals (testutil.h); they
 * get pointers to the test's gates and counters by value, in their input.
 */
#include "futures.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ args */

START_TEST(null_future_is_einval)
{
  int out = 0;
  ck_assert_int_eq(crew_future_wait(NULL), CREW_EINVAL);
  ck_assert_int_eq(crew_future_wait_timed(NULL, 0), CREW_EINVAL);
  ck_assert_int_eq(crew_future_wait_timed(NULL, CREW_FOREVER), CREW_EINVAL);
  ck_assert_int_eq(crew_future_get(NULL, &out, sizeof out), CREW_EINVAL);
  ck_assert_int_eq(crew_future_get(NULL, NULL, 0), CREW_EINVAL);
  ck_assert_int_eq(crew_future_get_timed(NULL, &out, sizeof out, 0),
                   CREW_EINVAL);
  ck_assert_int_eq(crew_future_get_timed(NULL, NULL, 0, CREW_FOREVER),
                   CREW_EINVAL);
  ck_assert(!crew_future_done(NULL));
  ck_assert_int_eq(crew_future_status(NULL), CREW_EINVAL);
  ck_assert_int_eq(crew_future_cancel(NULL), CREW_EINVAL);
  atomic_int calls = 0;
  ck_assert_int_eq(crew_future_on_done(NULL, noop_cb, &calls), CREW_EINVAL);
  ck_assert_int_eq(atomic_load(&calls), 0);
  crew_future_release(NULL); /* a no-op */
  ck_assert_int_eq(out, 0);
}
END_TEST

START_TEST(get_larger_than_output_fails_without_waiting)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  crew_future *f = submit_job(pool, (struct job){.g = &g, .out_len = 8}, 8);
  unsigned char buf[16];
  memset(buf, 0xEE, sizeof buf);
  /* The task is parked on the gate: a wait here would never return. */
  ck_assert_int_eq(crew_future_get(f, buf, 9), CREW_EINVAL);
  ck_assert_int_eq(crew_future_get(f, buf, sizeof buf), CREW_EINVAL);
  ck_assert_int_eq(crew_future_get_timed(f, buf, 9, CREW_FOREVER), CREW_EINVAL);
  for (size_t i = 0; i < sizeof buf; i++)
    ck_assert_uint_eq(buf[i], 0xEE);
  ck_assert_int_eq(crew_future_status(f), CREW_EBUSY);
  ck_assert(!crew_future_done(f));

  gate_open(&g, 1);
  ck_assert_int_eq(crew_future_wait(f), 0);
  /* Still too large once resolved. */
  ck_assert_int_eq(crew_future_get(f, buf, 9), CREW_EINVAL);
  for (size_t i = 0; i < sizeof buf; i++)
    ck_assert_uint_eq(buf[i], 0xEE);
  crew_future_release(f);
  destroy_pool(pool);
  gate_fini(&g);
}
END_TEST

START_TEST(get_null_out_with_size_is_einval)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  crew_future *f = submit_job(pool, (struct job){.g = &g, .out_len = 8}, 8);
  /* Parked: these must return at once. */
  ck_assert_int_eq(crew_future_get(f, NULL, 4), CREW_EINVAL);
  ck_assert_int_eq(crew_future_get_timed(f, NULL, 8, CREW_FOREVER),
                   CREW_EINVAL);
  ck_assert_int_eq(crew_future_status(f), CREW_EBUSY);
  gate_open(&g, 1);
  ck_assert_int_eq(crew_future_get(f, NULL, 0), 0); /* waits, copies none */
  ck_assert_int_eq(crew_future_get(f, NULL, 1), CREW_EINVAL);
  crew_future_release(f);
  destroy_pool(pool);
  gate_fini(&g);
}
END_TEST

START_TEST(on_done_null_callback_is_einval)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  atomic_int calls = 0;
  crew_future *f = submit_parked(pool, &g, 0);
  ck_assert_int_eq(crew_future_on_done(f, NULL, &calls), CREW_EINVAL);
  ck_assert_int_eq(crew_future_on_done(f, NULL, NULL), CREW_EINVAL);
  gate_open(&g, 1);
  ck_assert_int_eq(crew_future_wait(f), 0);
  ck_assert_int_eq(crew_future_on_done(f, NULL, NULL), CREW_EINVAL);
  destroy_pool(pool); /* nothing was registered: nothing to call */
  ck_assert_int_eq(atomic_load(&calls), 0);
  crew_future_release(f);
  gate_fini(&g);
}
END_TEST

/* ============================================================= results */

START_TEST(wait_returns_the_task_status)
{
  crew_pool *pool = make_pool(2, 0);
  crew_future *ok = submit_status(pool, 0);
  crew_future *seven = submit_status(pool, 7);
  ck_assert_int_eq(crew_future_wait(ok), 0);
  ck_assert_int_eq(crew_future_wait(seven), 7);
  /* Waiting again gives the same. */
  ck_assert_int_eq(crew_future_wait(ok), 0);
  ck_assert_int_eq(crew_future_wait(seven), 7);
  ck_assert_int_eq(crew_future_status(seven), 7);
  crew_future_release(ok);
  crew_future_release(seven);
  destroy_pool(pool);
}
END_TEST

START_TEST(get_copies_the_output)
{
  crew_pool *pool = make_pool(1, 0);
  crew_future *f =
      submit_job(pool, (struct job){.status = 3, .out_len = 16}, 16);
  unsigned char buf[16];
  memset(buf, 0, sizeof buf);
  ck_assert_int_eq(crew_future_get(f, buf, sizeof buf), 3);
  for (size_t i = 0; i < sizeof buf; i++)
    ck_assert_uint_eq(buf[i], pattern(i));
  /* Again, with the timed variant. */
  memset(buf, 0, sizeof buf);
  ck_assert_int_eq(crew_future_get_timed(f, buf, sizeof buf, 0), 3);
  for (size_t i = 0; i < sizeof buf; i++)
    ck_assert_uint_eq(buf[i], pattern(i));
  crew_future_release(f);
  destroy_pool(pool);
}
END_TEST

START_TEST(get_copies_a_prefix)
{
  crew_pool *pool = make_pool(1, 0);
  crew_future *f = submit_job(pool, (struct job){.out_len = 16}, 16);
  unsigned char buf[16];
  memset(buf, 0xEE, sizeof buf);
  ck_assert_int_eq(crew_future_get(f, buf, 5), 0);
  for (size_t i = 0; i < 5; i++)
    ck_assert_uint_eq(buf[i], pattern(i));
  for (size_t i = 5; i < sizeof buf; i++)
    ck_assert_uint_eq(buf[i], 0xEE);
  crew_future_release(f);
  destroy_pool(pool);
}
END_TEST

START_TEST(get_leaves_out_untouched_when_cancelled)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  signal_box parked;
  signal_init(&parked);
  park_workers(pool, 1, &g, &parked);
  atomic_int runs = 0;
  crew_future *f =
      submit_job(pool, (struct job){.runs = &runs, .out_len = 8}, 8);
  ck_assert_int_eq(crew_future_cancel(f), 0);
  unsigned char buf[8];
  memset(buf, 0xEE, sizeof buf);
  ck_assert_int_eq(crew_future_get(f, buf, sizeof buf), CREW_ECANCELED);
  ck_assert_int_eq(crew_future_get_timed(f, buf, 4, 0), CREW_ECANCELED);
  for (size_t i = 0; i < sizeof buf; i++)
    ck_assert_uint_eq(buf[i], 0xEE);
  gate_open(&g, 1);
  destroy_pool(pool);
  ck_assert_int_eq(atomic_load(&runs), 0);
  crew_future_release(f);
  signal_fini(&parked);
  gate_fini(&g);
}
END_TEST

/* =============================================================== timed */

START_TEST(wait_timed_times_out_while_parked)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  crew_future *f = submit_parked(pool, &g, 12);
  uint64_t t0 = now_ns();
  ck_assert_int_eq(crew_future_wait_timed(f, 50 * MS), CREW_ETIMEDOUT);
  ck_assert_uint_ge(now_ns() - t0, 50 * MS);
  ck_assert(!crew_future_done(f));
  /* A timed-out wait changes nothing: a later wait gets the result. */
  gate_open(&g, 1);
  ck_assert_int_eq(crew_future_wait_timed(f, 10000 * MS), 12);
  ck_assert_int_eq(crew_future_wait(f), 12);
  crew_future_release(f);
  destroy_pool(pool);
  gate_fini(&g);
}
END_TEST

START_TEST(get_timed_times_out_and_leaves_out_untouched)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  crew_future *f = submit_job(pool, (struct job){.g = &g, .out_len = 8}, 8);
  unsigned char buf[8];
  memset(buf, 0xEE, sizeof buf);
  uint64_t t0 = now_ns();
  ck_assert_int_eq(crew_future_get_timed(f, buf, sizeof buf, 50 * MS),
                   CREW_ETIMEDOUT);
  ck_assert_uint_ge(now_ns() - t0, 50 * MS);
  for (size_t i = 0; i < sizeof buf; i++)
    ck_assert_uint_eq(buf[i], 0xEE);
  gate_open(&g, 1);
  ck_assert_int_eq(crew_future_get_timed(f, buf, sizeof buf, CREW_FOREVER), 0);
  for (size_t i = 0; i < sizeof buf; i++)
    ck_assert_uint_eq(buf[i], pattern(i));
  crew_future_release(f);
  destroy_pool(pool);
  gate_fini(&g);
}
END_TEST

START_TEST(wait_timed_zero_polls)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  crew_future *f = submit_parked(pool, &g, 4);
  /* The task stays parked: only a poll can return here. */
  ck_assert_int_eq(crew_future_wait_timed(f, 0), CREW_ETIMEDOUT);
  ck_assert_int_eq(crew_future_wait_timed(f, 0), CREW_ETIMEDOUT);
  gate_open(&g, 1);
  ck_assert_int_eq(crew_future_wait(f), 4);
  ck_assert_int_eq(crew_future_wait_timed(f, 0), 4);
  crew_future_release(f);
  destroy_pool(pool);
  gate_fini(&g);
}
END_TEST

START_TEST(wait_timed_forever_waits)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  signal_box started;
  signal_init(&started);
  crew_future *f = submit_job(
      pool, (struct job){.started = &started, .g = &g, .status = 9}, 0);
  signal_wait(&started, 1);
  gate_open(&g, 1);
  ck_assert_int_eq(crew_future_wait_timed(f, CREW_FOREVER), 9);
  ck_assert_int_eq(crew_future_get_timed(f, NULL, 0, CREW_FOREVER), 9);
  crew_future_release(f);
  destroy_pool(pool);
  signal_fini(&started);
  gate_fini(&g);
}
END_TEST

START_TEST(status_and_done_follow_resolution)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  crew_future *f = submit_parked(pool, &g, 8);
  ck_assert_int_eq(crew_future_status(f), CREW_EBUSY);
  ck_assert(!crew_future_done(f));
  gate_open(&g, 1);
  ck_assert_int_eq(crew_future_wait(f), 8);
  ck_assert_int_eq(crew_future_status(f), 8);
  ck_assert(crew_future_done(f));
  crew_future_release(f);
  destroy_pool(pool);
  gate_fini(&g);
}
END_TEST

/* ============================================================== cancel */

START_TEST(cancel_a_queued_task)
{
  crew_pool *pool = make_pool(2, 0);
  gate g;
  gate_init(&g);
  signal_box parked;
  signal_init(&parked);
  park_workers(pool, 2, &g,
               &parked); /* no worker is free: the next task stays queued */
  atomic_int runs = 0;
  crew_future *f = submit_job(pool, (struct job){.runs = &runs}, 0);
  struct cb_log log = {.next = 0};
  struct cb_arg a = {.log = &log, .id = 1};
  ck_assert_int_eq(crew_future_on_done(f, log_cb, &a), 0);
  ck_assert_int_eq(crew_future_status(f), CREW_EBUSY);

  ck_assert_int_eq(crew_future_cancel(f), 0);
  /* Resolved, and its callback ran once, in the cancel, on this thread. */
  ck_assert(crew_future_done(f));
  ck_assert_int_eq(crew_future_status(f), CREW_ECANCELED);
  ck_assert_int_eq(crew_future_wait(f), CREW_ECANCELED);
  ck_assert_int_eq(atomic_load(&log.next), 1);
  ck_assert_ptr_eq(log.seen[0], f);
  ck_assert(pthread_equal(log.thread[0], pthread_self()));

  gate_open(&g, 2);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  ck_assert_int_eq(atomic_load(&runs), 0); /* the body never ran */
  ck_assert_int_eq(atomic_load(&log.next), 1);
  crew_stats st;
  ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
  ck_assert_uint_eq(st.submitted, 3);
  ck_assert_uint_eq(st.completed, 2);
  ck_assert_uint_eq(st.cancelled, 1);
  ck_assert_uint_eq(st.failed, 0);
  ck_assert_uint_eq(st.queued, 0);
  ck_assert_uint_eq(st.running, 0);
  ck_assert_int_eq(crew_future_wait(f), CREW_ECANCELED);
  crew_future_release(f);
  crew_pool_destroy(pool);
  signal_fini(&parked);
  gate_fini(&g);
}
END_TEST

START_TEST(cancel_a_running_task_is_busy)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  signal_box started;
  signal_init(&started);
  atomic_int runs = 0;
  crew_future *f = submit_job(
      pool,
      (struct job){.started = &started, .g = &g, .runs = &runs, .status = 2},
      0);
  signal_wait(&started, 1);
  ck_assert_int_eq(crew_future_cancel(f), CREW_EBUSY);
  ck_assert_int_eq(crew_future_status(f), CREW_EBUSY); /* still running */
  gate_open(&g, 1);
  ck_assert_int_eq(crew_future_wait(f), 2); /* it completed normally */
  ck_assert_int_eq(atomic_load(&runs), 1);
  crew_future_release(f);
  destroy_pool(pool);
  signal_fini(&started);
  gate_fini(&g);
}
END_TEST

START_TEST(cancel_a_completed_future_is_busy)
{
  crew_pool *pool = make_pool(1, 0);
  crew_future *f = submit_status(pool, 5);
  ck_assert_int_eq(crew_future_wait(f), 5);
  ck_assert_int_eq(crew_future_cancel(f), CREW_EBUSY);
  ck_assert_int_eq(crew_future_status(f), 5);
  ck_assert_int_eq(crew_future_wait(f), 5);
  crew_future_release(f);
  destroy_pool(pool);
}
END_TEST

START_TEST(cancel_twice)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  signal_box parked;
  signal_init(&parked);
  park_workers(pool, 1, &g, &parked);
  atomic_int runs = 0, calls = 0;
  crew_future *f = submit_job(pool, (struct job){.runs = &runs}, 0);
  ck_assert_int_eq(crew_future_on_done(f, noop_cb, &calls), 0);
  ck_assert_int_eq(crew_future_cancel(f), 0);
  ck_assert_int_eq(crew_future_cancel(f), CREW_EBUSY);
  ck_assert_int_eq(crew_future_status(f), CREW_ECANCELED);
  ck_assert_int_eq(atomic_load(&calls), 1);
  gate_open(&g, 1);
  destroy_pool(pool);
  ck_assert_int_eq(atomic_load(&runs), 0);
  ck_assert_int_eq(atomic_load(&calls), 1);
  crew_future_release(f);
  signal_fini(&parked);
  gate_fini(&g);
}
END_TEST

START_TEST(cancel_wakes_the_waiters_of_the_only_queued_task)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  signal_box parked;
  signal_init(&parked);
  park_workers(pool, 1, &g, &parked);
  crew_future *f = submit_status(pool, 0); /* the only queued task */
  signal_box ready, woke;
  signal_init(&ready);
  signal_init(&woke);
  struct waiter w[3] = {
      {.how = WAIT_PLAIN, .f = f, .ready = &ready, .woke = &woke},
      {.how = WAIT_TIMED_LONG, .f = f, .ready = &ready, .woke = &woke},
      {.how = WAIT_GET, .f = f, .ready = &ready, .woke = &woke},
  };
  for (size_t i = 0; i < 3; i++)
    waiter_start(&w[i]);
  signal_wait(&ready, 3);
  ck_assert_int_eq(signal_try(&woke, 50 * MS), CREW_ETIMEDOUT);
  ck_assert_int_eq(crew_future_cancel(f), 0);
  /* The worker is still parked: nothing but the cancel can wake them. */
  signal_wait(&woke, 3);
  for (size_t i = 0; i < 3; i++) {
    waiter_join(&w[i]);
    ck_assert_int_eq(w[i].rc, CREW_ECANCELED);
  }
  gate_open(&g, 1);
  destroy_pool(pool);
  crew_future_release(f);
  signal_fini(&ready);
  signal_fini(&woke);
  signal_fini(&parked);
  gate_fini(&g);
}
END_TEST

static int flag_fn(const void *in, void *out)
{
  atomic_int *flag;
  memcpy(&flag, in, sizeof flag);
  atomic_fetch_add(flag, 1);
  return 0;
}

START_TEST(cancel_races_with_the_workers)
{
  const size_t rounds = scaled(2000);
  crew_pool *pool = make_pool(2, 0);
  atomic_int *ran = calloc(rounds, sizeof *ran);
  crew_future **fs = calloc(rounds, sizeof *fs);
  int *rc = calloc(rounds, sizeof *rc);
  ck_assert(ran != NULL && fs != NULL && rc != NULL);
  for (size_t i = 0; i < rounds; i++) {
    atomic_init(&ran[i], 0);
    atomic_int *flag = &ran[i];
    ck_assert_int_eq(crew_submit(pool, flag_fn, &flag, sizeof flag, 0, &fs[i]),
                     0);
    rc[i] = crew_future_cancel(fs[i]);
  }
  ck_assert_int_eq(crew_wait_all(fs, rounds, CREW_FOREVER), 0);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);

  uint64_t cancelled = 0, completed = 0;
  for (size_t i = 0; i < rounds; i++) {
    if (rc[i] == 0) {
      cancelled++;
      ck_assert_int_eq(crew_future_status(fs[i]), CREW_ECANCELED);
      ck_assert_int_eq(crew_future_wait(fs[i]), CREW_ECANCELED);
      ck_assert_int_eq(atomic_load(&ran[i]), 0);
    } else {
      completed++;
      ck_assert_int_eq(rc[i], CREW_EBUSY);
      ck_assert_int_eq(crew_future_status(fs[i]), 0);
      ck_assert_int_eq(atomic_load(&ran[i]), 1);
    }
    crew_future_release(fs[i]);
  }
  ck_assert_uint_eq(cancelled + completed, rounds);
  crew_stats st;
  ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
  ck_assert_uint_eq(st.submitted, rounds);
  ck_assert_uint_eq(st.cancelled, cancelled);
  ck_assert_uint_eq(st.completed, completed);
  ck_assert_uint_eq(st.failed, 0);
  ck_assert_uint_eq(st.queued, 0);
  ck_assert_uint_eq(st.running, 0);
  crew_pool_destroy(pool);
  free(ran);
  free(fs);
  free(rc);
}
END_TEST

/* =========================================================== callbacks */

START_TEST(on_done_callbacks_run_once_in_order)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  signal_box sig;
  signal_init(&sig);
  crew_future *f = submit_parked(pool, &g, 0);
  struct cb_log log = {.next = 0, .sig = &sig};
  struct cb_arg a[5];
  for (int i = 0; i < 5; i++) {
    a[i] = (struct cb_arg){.log = &log, .id = i};
    ck_assert_int_eq(crew_future_on_done(f, log_cb, &a[i]), 0);
  }
  ck_assert_int_eq(signal_try(&sig, 0), CREW_ETIMEDOUT); /* none ran yet */
  gate_open(&g, 1);
  signal_wait(&sig, 5);
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(log.order[i], i);
    ck_assert_ptr_eq(log.seen[i], f);
  }
  destroy_pool(pool);
  ck_assert_int_eq(atomic_load(&log.next), 5); /* each exactly once */
  crew_future_release(f);
  signal_fini(&sig);
  gate_fini(&g);
}
END_TEST

START_TEST(on_done_after_resolution_runs_at_once_in_the_caller)
{
  crew_pool *pool = make_pool(1, 0);
  crew_future *f = submit_status(pool, 6);
  destroy_pool(pool); /* drains: f resolved, no worker left */
  struct cb_log log = {.next = 0};
  struct cb_arg a = {.log = &log, .id = 1};
  ck_assert_int_eq(crew_future_on_done(f, log_cb, &a), 0);
  ck_assert_int_eq(atomic_load(&log.next), 1); /* ran in the call */
  ck_assert(pthread_equal(log.thread[0], pthread_self()));
  ck_assert_ptr_eq(log.seen[0], f);
  crew_future_release(f);
}
END_TEST

/* Where an inline-or-not callback ran. */
struct inline_rec {
  pthread_t caller; /* set before the callback is added */
  atomic_int calls;
  atomic_int on_caller; /* calls made on the caller's thread */
};

static void inline_cb(crew_future *f, void *arg)
{
  struct inline_rec *r = arg;
  if (pthread_equal(pthread_self(), r->caller))
    atomic_fetch_add(&r->on_caller, 1);
  atomic_fetch_add(&r->calls, 1);
}

START_TEST(on_done_right_after_wait_runs_at_once)
{
  /* No callbacks before: once wait has returned, the future is resolved and
   * has no earlier callback to run, so a new one runs in the call. */
  crew_pool *pool = make_pool(2, 0);
  const size_t rounds = scaled(300);
  for (size_t r = 0; r < rounds; r++) {
    crew_future *f = submit_status(pool, 1);
    ck_assert_int_eq(crew_future_wait(f), 1);
    struct inline_rec rec = {.caller = pthread_self()};
    ck_assert_int_eq(crew_future_on_done(f, inline_cb, &rec), 0);
    int calls = atomic_load(&rec.calls);
    int on_caller = atomic_load(&rec.on_caller);
    if (calls != 1) /* it went to the worker: let it finish with rec */
      ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
    ck_assert_msg(calls == 1 && on_caller == 1,
                  "round %zu: on_done after wait did not run the callback in "
                  "the call (ran %d times by then, %d on this thread)",
                  r, calls, on_caller);
    crew_future_release(f);
  }
  destroy_pool(pool);
}
END_TEST

START_TEST(on_done_after_cancel_runs_at_once_in_the_caller)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  signal_box parked;
  signal_init(&parked);
  park_workers(pool, 1, &g, &parked);
  crew_future *f = submit_status(pool, 0);
  ck_assert_int_eq(crew_future_cancel(f), 0);
  struct cb_log log = {.next = 0};
  struct cb_arg a = {.log = &log, .id = 1};
  ck_assert_int_eq(crew_future_on_done(f, log_cb, &a), 0);
  ck_assert_int_eq(atomic_load(&log.next), 1);
  ck_assert(pthread_equal(log.thread[0], pthread_self()));
  ck_assert_ptr_eq(log.seen[0], f);
  gate_open(&g, 1);
  destroy_pool(pool);
  ck_assert_int_eq(atomic_load(&log.next), 1);
  crew_future_release(f);
  signal_fini(&parked);
  gate_fini(&g);
}
END_TEST

/* A task that writes its thread to out after passing a gate. */
static int gated_self_fn(const void *in, void *out)
{
  gate *g;
  memcpy(&g, in, sizeof g);
  gate_pass(g);
  return self_fn(in, out);
}

START_TEST(on_done_runs_on_the_worker_that_completes)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  signal_box sig;
  signal_init(&sig);
  gate *gp = &g;
  crew_future *f = NULL;
  ck_assert_int_eq(
      crew_submit(pool, gated_self_fn, &gp, sizeof gp, sizeof(pthread_t), &f),
      0);
  struct cb_log log = {.next = 0, .sig = &sig};
  struct cb_arg a = {.log = &log, .id = 1};
  ck_assert_int_eq(crew_future_on_done(f, log_cb, &a), 0); /* f is parked */
  gate_open(&g, 1);
  pthread_t task_thread;
  ck_assert_int_eq(crew_future_get(f, &task_thread, sizeof task_thread), 0);
  signal_wait(&sig, 1);
  ck_assert(pthread_equal(log.thread[0], task_thread));
  ck_assert(!pthread_equal(log.thread[0], pthread_self()));
  ck_assert_ptr_eq(log.seen[0], f);
  destroy_pool(pool);
  ck_assert_int_eq(atomic_load(&log.next), 1);
  crew_future_release(f);
  signal_fini(&sig);
  gate_fini(&g);
}
END_TEST

struct canceller {
  crew_future *f;
  pthread_t self;
  int rc;
};

static void *canceller_main(void *arg)
{
  struct canceller *c = arg;
  c->self = pthread_self();
  c->rc = crew_future_cancel(c->f);
  return NULL;
}

START_TEST(on_done_runs_on_the_cancelling_thread)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  signal_box parked;
  signal_init(&parked);
  park_workers(pool, 1, &g, &parked);
  crew_future *f = submit_status(pool, 0);
  struct cb_log log = {.next = 0};
  struct cb_arg a = {.log = &log, .id = 1};
  ck_assert_int_eq(crew_future_on_done(f, log_cb, &a), 0);
  struct canceller c = {.f = f, .rc = 1};
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, canceller_main, &c), 0);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  ck_assert_int_eq(c.rc, 0);
  ck_assert_int_eq(atomic_load(&log.next), 1);
  ck_assert(pthread_equal(log.thread[0], c.self));
  ck_assert_ptr_eq(log.seen[0], f);
  gate_open(&g, 1);
  destroy_pool(pool);
  ck_assert_int_eq(atomic_load(&log.next), 1);
  crew_future_release(f);
  signal_fini(&parked);
  gate_fini(&g);
}
END_TEST

/* Releases the caller's reference, then posts. */
static void release_cb(crew_future *f, void *arg)
{
  crew_future_release(f);
  signal_post(arg);
}

START_TEST(on_done_may_release_the_future)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  signal_box parked;
  signal_init(&parked);
  signal_box sig;
  signal_init(&sig);
  struct cb_log log = {.next = 0};
  struct cb_arg a = {.log = &log, .id = 1};

  /* Completion: the worker resolves; the callback drops our reference and
   * the one after it still runs. */
  crew_future *done = submit_parked(pool, &g, 0);
  ck_assert_int_eq(crew_future_on_done(done, release_cb, &sig), 0);
  ck_assert_int_eq(crew_future_on_done(done, log_cb, &a), 0);
  gate_open(&g, 1);
  signal_wait(&sig, 1);

  /* Cancel: this thread resolves; the callback drops our reference. */
  park_workers(pool, 1, &g, &parked);
  crew_future *cancelled = submit_status(pool, 0);
  ck_assert_int_eq(crew_future_on_done(cancelled, release_cb, &sig), 0);
  ck_assert_int_eq(crew_future_cancel(cancelled), 0);
  signal_wait(&sig, 1);
  gate_open(&g, 1);

  destroy_pool(pool); /* ASan: nothing used after free, nothing leaked */
  ck_assert_int_eq(atomic_load(&log.next), 1);
  signal_fini(&sig);
  signal_fini(&parked);
  gate_fini(&g);
}
END_TEST

/* What a callback that calls into crew did. */
struct nested_cb {
  crew_pool *pool;
  crew_future *other; /* to wait on or cancel */
  crew_future *made;  /* submitted by the callback */
  int rc;
  signal_box sig;
};

static void submit_cb(crew_future *f, void *arg)
{
  struct nested_cb *n = arg;
  int v = 13;
  n->rc = crew_submit(n->pool, value_fn, &v, sizeof v, 0, &n->made);
  signal_post(&n->sig);
}

static void wait_cb(crew_future *f, void *arg)
{
  struct nested_cb *n = arg;
  n->rc = crew_future_wait(n->other);
  signal_post(&n->sig);
}

static void cancel_cb(crew_future *f, void *arg)
{
  struct nested_cb *n = arg;
  n->rc = crew_future_cancel(n->other);
  signal_post(&n->sig);
}

START_TEST(on_done_may_submit)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  struct nested_cb n = {.pool = pool, .rc = 99};
  signal_init(&n.sig);
  crew_future *f = submit_parked(pool, &g, 0);
  ck_assert_int_eq(crew_future_on_done(f, submit_cb, &n), 0);
  gate_open(&g, 1);
  signal_wait(&n.sig, 1);
  ck_assert_int_eq(n.rc, 0);
  ck_assert_ptr_nonnull(n.made);
  ck_assert_int_eq(crew_future_wait(n.made), 13);
  crew_future_release(n.made);
  crew_future_release(f);
  destroy_pool(pool);
  signal_fini(&n.sig);
  gate_fini(&g);
}
END_TEST

START_TEST(on_done_may_wait_on_another_future)
{
  /* One worker: the callback runs on it and waits for a task queued behind
   * the one it belongs to; the worker runs that task itself. */
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  crew_future *f = submit_parked(pool, &g, 0);
  struct nested_cb n = {.pool = pool, .rc = 99};
  signal_init(&n.sig);
  n.other = submit_status(pool, 17);
  ck_assert_int_eq(crew_future_on_done(f, wait_cb, &n), 0);
  gate_open(&g, 1);
  signal_wait(&n.sig, 1);
  ck_assert_int_eq(n.rc, 17);
  ck_assert_int_eq(crew_future_wait(f), 0);
  ck_assert_int_eq(crew_future_wait(n.other), 17);
  crew_future_release(n.other);
  crew_future_release(f);
  destroy_pool(pool);
  signal_fini(&n.sig);
  gate_fini(&g);
}
END_TEST

START_TEST(on_done_may_cancel_another_future)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  crew_future *f = submit_parked(pool, &g, 0);
  atomic_int runs = 0;
  struct nested_cb n = {.pool = pool, .rc = 99};
  signal_init(&n.sig);
  n.other = submit_job(pool, (struct job){.runs = &runs}, 0); /* queued */
  ck_assert_int_eq(crew_future_on_done(f, cancel_cb, &n), 0);
  gate_open(&g, 1);
  signal_wait(&n.sig, 1);
  ck_assert_int_eq(n.rc, 0);
  ck_assert_int_eq(crew_future_wait(n.other), CREW_ECANCELED);
  destroy_pool(pool);
  ck_assert_int_eq(atomic_load(&runs), 0);
  crew_future_release(n.other);
  crew_future_release(f);
  signal_fini(&n.sig);
  gate_fini(&g);
}
END_TEST

/* Adds log_cb with id 2 to its own future, then logs itself as id 1. */
static void adding_cb(crew_future *f, void *arg)
{
  struct cb_arg *a = arg;
  ck_assert_int_eq(crew_future_on_done(f, log_cb, a + 1), 0);
  log_cb(f, a);
}

START_TEST(on_done_added_by_a_callback_runs_after_it)
{
  crew_pool *pool = make_pool(1, 0);
  gate g;
  gate_init(&g);
  signal_box sig;
  signal_init(&sig);
  crew_future *f = submit_parked(pool, &g, 0);
  struct cb_log log = {.next = 0, .sig = &sig};
  struct cb_arg a[2] = {{.log = &log, .id = 1}, {.log = &log, .id = 2}};
  ck_assert_int_eq(crew_future_on_done(f, adding_cb, a), 0);
  gate_open(&g, 1);
  signal_wait(&sig, 2);
  ck_assert_int_eq(log.order[0], 1);
  ck_assert_int_eq(log.order[1], 2);
  ck_assert(pthread_equal(log.thread[0], log.thread[1]));
  ck_assert_ptr_eq(log.seen[1], f);
  destroy_pool(pool);
  ck_assert_int_eq(atomic_load(&log.next), 2);
  crew_future_release(f);
  signal_fini(&sig);
  gate_fini(&g);
}
END_TEST

/* ================================================================= main */

int main(void)
{
  Suite *s = suite_create("future");
  TCase *tc = timed_tcase(s, "args", 10);
  tcase_add_test(tc, null_future_is_einval);
  tcase_add_test(tc, get_larger_than_output_fails_without_waiting);
  tcase_add_test(tc, get_null_out_with_size_is_einval);
  tcase_add_test(tc, on_done_null_callback_is_einval);

  tc = timed_tcase(s, "results", 10);
  tcase_add_test(tc, wait_returns_the_task_status);
  tcase_add_test(tc, get_copies_the_output);
  tcase_add_test(tc, get_copies_a_prefix);
  tcase_add_test(tc, get_leaves_out_untouched_when_cancelled);

  tc = timed_tcase(s, "timed", 10);
  tcase_add_test(tc, wait_timed_times_out_while_parked);
  tcase_add_test(tc, get_timed_times_out_and_leaves_out_untouched);
  tcase_add_test(tc, wait_timed_zero_polls);
  tcase_add_test(tc, wait_timed_forever_waits);
  tcase_add_test(tc, status_and_done_follow_resolution);

  tc = timed_tcase(s, "cancel", 10);
  tcase_add_test(tc, cancel_a_queued_task);
  tcase_add_test(tc, cancel_a_running_task_is_busy);
  tcase_add_test(tc, cancel_a_completed_future_is_busy);
  tcase_add_test(tc, cancel_twice);
  tcase_add_test(tc, cancel_wakes_the_waiters_of_the_only_queued_task);

  tc = timed_tcase(s, "cancel_race", 30);
  tcase_add_test(tc, cancel_races_with_the_workers);

  tc = timed_tcase(s, "on_done", 10);
  tcase_add_test(tc, on_done_callbacks_run_once_in_order);
  tcase_add_test(tc, on_done_after_resolution_runs_at_once_in_the_caller);
  tcase_add_test(tc, on_done_right_after_wait_runs_at_once);
  tcase_add_test(tc, on_done_after_cancel_runs_at_once_in_the_caller);
  tcase_add_test(tc, on_done_runs_on_the_worker_that_completes);
  tcase_add_test(tc, on_done_runs_on_the_cancelling_thread);
  tcase_add_test(tc, on_done_may_release_the_future);
  tcase_add_test(tc, on_done_may_submit);
  tcase_add_test(tc, on_done_may_wait_on_another_future);
  tcase_add_test(tc, on_done_may_cancel_another_future);
  tcase_add_test(tc, on_done_added_by_a_callback_runs_after_it);
  return run_suite(s);
}
