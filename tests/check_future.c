/*
 * check_future.c - futures (crew/future.h): argument errors, results and
 * outputs, timed waits, cancellation (and its race with the workers), done
 * callbacks, crew_wait_any / crew_wait_all, many waiters, waits nested in
 * tasks, lifetimes, and the copy of a task's input at submit.
 *
 * Tasks park on gates and say "I got here" with signals (testutil.h); they
 * get pointers to the test's gates and counters by value, in their input.
 */
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- tasks */

/* The input of job_fn, copied at submit. */
struct job {
  signal_box *started; /* posted first, if not NULL */
  gate *g;             /* passed next, if not NULL */
  atomic_int *runs;    /* incremented once the gate let it through */
  int status;          /* what the task returns */
  size_t out_len;      /* bytes of out filled with pattern(i) */
};

static unsigned char pattern(size_t i)
{
  return (unsigned char)(i * 7 + 3);
}

static int job_fn(const void *in, void *out)
{
  struct job j;
  memcpy(&j, in, sizeof j);
  if (j.started != NULL)
    signal_post(j.started);
  if (j.g != NULL)
    gate_pass(j.g);
  if (j.runs != NULL)
    atomic_fetch_add(j.runs, 1);
  for (size_t i = 0; i < j.out_len; i++)
    ((unsigned char *)out)[i] = pattern(i);
  return j.status;
}

/* Submit job_fn with j, keeping out_size bytes of output. */
static crew_future *submit_job(crew_pool *pool, struct job j, size_t out_size)
{
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, job_fn, &j, sizeof j, out_size, &f), 0);
  ck_assert_ptr_nonnull(f);
  return f;
}

/* A task parked on g, returning status. */
static crew_future *submit_parked(crew_pool *pool, gate *g, int status)
{
  return submit_job(pool, (struct job){.g = g, .status = status}, 0);
}

/* A task that returns status at once. */
static crew_future *submit_status(crew_pool *pool, int status)
{
  return submit_job(pool, (struct job){.status = status}, 0);
}

/*
 * Park n workers of pool on g (fire-and-forget tasks) and return once all n
 * are running, so that whatever is submitted next stays queued. The tasks
 * post `parked` when they start; a poster may still be inside signal_post
 * when signal_wait returns, so the caller destroys `parked` only after the
 * pool.
 */
static void park_workers(crew_pool *pool, size_t n, gate *g, signal_box *parked)
{
  for (size_t i = 0; i < n; i++) {
    struct job j = {.started = parked, .g = g};
    ck_assert_int_eq(crew_submit(pool, job_fn, &j, sizeof j, 0, NULL), 0);
  }
  signal_wait(parked, n);
}

/* Returns its int input; writes twice it to out if there is an out. */
static int value_fn(const void *in, void *out)
{
  int v;
  memcpy(&v, in, sizeof v);
  if (out != NULL) {
    int twice = 2 * v;
    memcpy(out, &twice, sizeof twice);
  }
  return v;
}

static crew_future *submit_value(crew_pool *pool, int v, size_t out_size)
{
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, value_fn, &v, sizeof v, out_size, &f), 0);
  ck_assert_ptr_nonnull(f);
  return f;
}

/* Writes the thread it runs on to out. */
static int self_fn(const void *in, void *out)
{
  pthread_t self = pthread_self();
  memcpy(out, &self, sizeof self);
  return 0;
}

static void destroy_pool(crew_pool *pool)
{
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  crew_pool_destroy(pool);
}

/* ------------------------------------------------------------ callbacks */

#define LOG_MAX 16

/* What done callbacks saw, in the order they ran. */
struct cb_log {
  atomic_int next; /* calls so far */
  int order[LOG_MAX];
  crew_future *seen[LOG_MAX];
  pthread_t thread[LOG_MAX];
  signal_box *sig; /* posted after each call, if not NULL */
};

struct cb_arg {
  struct cb_log *log;
  int id;
};

static void log_cb(crew_future *f, void *arg)
{
  struct cb_arg *a = arg;
  int slot = atomic_fetch_add(&a->log->next, 1);
  if (slot < LOG_MAX) {
    a->log->order[slot] = a->id;
    a->log->seen[slot] = f;
    a->log->thread[slot] = pthread_self();
  }
  if (a->log->sig != NULL)
    signal_post(a->log->sig);
}

static void noop_cb(crew_future *f, void *arg)
{
  atomic_fetch_add((atomic_int *)arg, 1);
}

/* -------------------------------------------------------------- threads */

enum wait_how { WAIT_PLAIN, WAIT_TIMED_LONG, WAIT_GET, WAIT_ANY };

/* A thread that waits on a future (or on several, with WAIT_ANY). */
struct waiter {
  pthread_t th;
  int how; /* enum wait_how */
  crew_future *f;
  crew_future *const *fs; /* WAIT_ANY */
  size_t n;               /* WAIT_ANY */
  signal_box *ready;      /* posted before waiting */
  signal_box *woke;       /* posted after waiting */
  int rc;
  size_t idx; /* WAIT_ANY */
};

static void *waiter_main(void *arg)
{
  struct waiter *w = arg;
  signal_post(w->ready);
  int out = 0;
  switch (w->how) {
  case WAIT_PLAIN:
    w->rc = crew_future_wait(w->f);
    break;
  case WAIT_TIMED_LONG:
    w->rc = crew_future_wait_timed(w->f, 10000 * MS);
    break;
  case WAIT_GET:
    w->rc = crew_future_get(w->f, &out, 0);
    break;
  case WAIT_ANY:
    w->idx = 999;
    w->rc = crew_wait_any(w->fs, w->n, CREW_FOREVER, &w->idx);
    break;
  }
  signal_post(w->woke);
  return NULL;
}

static void waiter_start(struct waiter *w)
{
  ck_assert_int_eq(pthread_create(&w->th, NULL, waiter_main, w), 0);
}

static void waiter_join(struct waiter *w)
{
  ck_assert_int_eq(pthread_join(w->th, NULL), 0);
}

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
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, nested_wait_fn, &pool, sizeof pool,
                               3 * sizeof(int), &f),
                   0);
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
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, nested_any_all_fn, &pool, sizeof pool,
                               7 * sizeof(int), &f),
                   0);
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
  crew_future *f = NULL;
  ck_assert_int_eq(
      crew_submit(pool, full_queue_fn, &pool, sizeof pool, 4 * sizeof(int), &f),
      0);
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

  tc = timed_tcase(s, "wait_any", 10);
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
