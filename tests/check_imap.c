/*
 * check_imap.c - crew_imap: results in input order or as they complete,
 * every input given to the sink exactly once, the window bound, a window
 * larger than the queue, a sink that stops, statuses and crashes passed
 * through, shut-down pools (before and midway), argument errors, a map from
 * inside a task, and out NULL for out_size 0.
 *
 * next() and sink() run on the test's thread, so the test keeps its
 * accounts there (a struct run) and checks them once the map returns. The
 * loop index of the tests that apply to both modes is the mode. Tasks that
 * must be held (a gate) or must say they started (a post) use proctest's
 * shared queues, which work from worker threads and worker processes alike.
 */
#include "proctest.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- tasks */

/* One input: x, the status to return (x % mod, or 0 when mod is 0), and
 * what else the task does. */
struct item {
  int64_t x;
  int32_t mod;
  int32_t act; /* enum act */
};

enum act { ACT_NONE, ACT_GATE, ACT_CRASH };

/* out (if any) = x * x; returns x % mod; ACT_GATE posts x and waits at the
 * gate first, ACT_CRASH kills its worker process. */
static int item_task(const void *in, void *out)
{
  const struct item *it = in;
  if (it->act == ACT_GATE) {
    post((uint64_t)it->x);
    if (gate_wait() != 0)
      return 99;
  } else if (it->act == ACT_CRASH) {
    raise(SIGKILL);
  }
  if (out != NULL)
    *(int64_t *)out = it->x * it->x;
  return it->mod != 0 ? (int)(it->x % it->mod) : 0;
}

/* --------------------------------------------------------- next and sink */

#define NEVER SIZE_MAX

struct run {
  crew_pool *pool;
  size_t n;        /* inputs next() gives */
  int32_t mod;     /* each item's status: index % mod */
  size_t gate_at;  /* this input waits at the gate (NEVER: none) */
  size_t crash_at; /* this input kills its worker (NEVER: none) */
  bool ordered;    /* sink checks that indexes come in order */
  bool out_null;   /* sink checks that out is NULL (out_size 0) */
  size_t stop_at;  /* the sink call that returns stop_value */
  int stop_value;  /* (NEVER: none) */
  void (*hook)(struct run *r, size_t index); /* called by sink first */
  /* accounts: */
  size_t next_calls, given, sunk;
  size_t max_in_flight;
  size_t next_after_stop, sunk_after_stop;
  bool stopped;
  size_t wrong; /* results that were not what the item computes */
  unsigned char *seen;
  size_t *order; /* the indexes in the order the sink got them */
  int *statuses; /* by index */
  int64_t *outs; /* by index */
};

static struct run new_run(crew_pool *pool, size_t n, bool ordered)
{
  struct run r = {.pool = pool,
                  .n = n,
                  .gate_at = NEVER,
                  .crash_at = NEVER,
                  .ordered = ordered,
                  .stop_at = NEVER};
  r.seen = calloc(n + 1, 1);
  r.order = calloc(n + 1, sizeof *r.order);
  r.statuses = calloc(n + 1, sizeof *r.statuses);
  r.outs = calloc(n + 1, sizeof *r.outs);
  ck_assert_ptr_nonnull(r.seen);
  ck_assert_ptr_nonnull(r.order);
  ck_assert_ptr_nonnull(r.statuses);
  ck_assert_ptr_nonnull(r.outs);
  return r;
}

static void free_run(struct run *r)
{
  free(r->seen);
  free(r->order);
  free(r->statuses);
  free(r->outs);
}

static int next_item(void *arg, void *in)
{
  struct run *r = arg;
  r->next_calls++;
  if (r->stopped)
    r->next_after_stop++;
  if (r->given == r->n)
    return 0;
  size_t i = r->given++;
  *(struct item *)in = (struct item){.x = (int64_t)i,
                                     .mod = r->mod,
                                     .act = i == r->gate_at    ? ACT_GATE
                                            : i == r->crash_at ? ACT_CRASH
                                                               : ACT_NONE};
  size_t in_flight = r->given - r->sunk;
  if (in_flight > r->max_in_flight)
    r->max_in_flight = in_flight;
  return 1;
}

static int sink_item(void *arg, size_t index, int status, const void *out)
{
  struct run *r = arg;
  if (r->stopped) {
    r->sunk_after_stop++;
    return 0;
  }
  quiet_assert_uint_lt(index, r->given);
  quiet_assert_msg(r->seen[index] == 0, "index %zu given to sink twice", index);
  if (r->ordered)
    quiet_assert_uint_eq(index, r->sunk);
  if (r->out_null)
    quiet_assert_ptr_null(out);
  else
    quiet_assert_ptr_nonnull(out);
  r->seen[index] = 1;
  r->order[r->sunk++] = index;
  r->statuses[index] = status;
  int64_t y = out != NULL ? *(const int64_t *)out : 0;
  r->outs[index] = y;
  int64_t x = (int64_t)index;
  int want = r->mod != 0 ? (int)(x % r->mod) : 0;
  if (status == want && out != NULL && y != x * x)
    r->wrong++;
  if (r->hook != NULL)
    r->hook(r, index);
  if (r->sunk == r->stop_at) {
    r->stopped = true;
    return r->stop_value;
  }
  return 0;
}

static int imap(struct run *r, size_t window, unsigned flags)
{
  return crew_imap(r->pool, item_task, sizeof(struct item),
                   r->out_null ? 0 : sizeof(int64_t), window, flags, next_item,
                   sink_item, r);
}

/* Every input given exactly once, each with status index % mod and its
 * square. */
static void assert_all_given(const struct run *r)
{
  ck_assert_uint_eq(r->given, r->n);
  ck_assert_uint_eq(r->sunk, r->n);
  ck_assert_uint_eq(r->next_calls, r->n + 1);
  ck_assert_uint_eq(r->wrong, 0);
  for (size_t i = 0; i < r->n; i++) {
    int want = r->mod != 0 ? (int)((int64_t)i % r->mod) : 0;
    quiet_assert_uint_eq(r->seen[i], 1);
    quiet_assert_int_eq(r->statuses[i], want);
  }
}

/* ---------------------------------------------------------------- pools */

static crew_pool *mode_pool(int mode, size_t workers, size_t capacity)
{
  shared_setup(0);
  crew_config cfg = pool_config(mode, workers);
  cfg.queue_capacity = capacity;
  return pool_create(&cfg);
}

static void pool_done(crew_pool *pool)
{
  crew_pool_destroy(pool);
  shared_teardown();
}

/* ---------------------------------------------------------------- order */

START_TEST(ordered_results_come_in_input_order)
{
  crew_pool *pool = mode_pool(_i, 3, 0);
  struct run r = new_run(pool, 10000, true);
  r.mod = 5;
  ck_assert_int_eq(imap(&r, 8, 0), 0);
  assert_all_given(&r);
  ck_assert_uint_le(r.max_in_flight, 8);
  free_run(&r);
  pool_done(pool);
}
END_TEST

START_TEST(unordered_gives_every_index_exactly_once)
{
  crew_pool *pool = mode_pool(_i, 3, 0);
  struct run r = new_run(pool, 10000, false);
  r.mod = 5;
  ck_assert_int_eq(imap(&r, 8, CREW_UNORDERED), 0);
  assert_all_given(&r);
  ck_assert_uint_le(r.max_in_flight, 8);
  free_run(&r);
  pool_done(pool);
}
END_TEST

/* The 7th result opens the gate that holds item 0. */
static void open_after_seven(struct run *r, size_t index)
{
  (void)index;
  if (r->sunk == 7)
    open_gate(1);
}

START_TEST(unordered_does_not_wait_for_earlier_inputs)
{
  /* Item 0 waits at a gate that only the 7th result opens: in completion
   * order the other seven come first (in input order this would hang). */
  crew_pool *pool = mode_pool(_i, 2, 0);
  struct run r = new_run(pool, 8, false);
  r.gate_at = 0;
  r.hook = open_after_seven;
  ck_assert_int_eq(imap(&r, 8, CREW_UNORDERED), 0);
  assert_all_given(&r);
  ck_assert_uint_eq(take(), 0); /* item 0 did wait at the gate */
  ck_assert_uint_eq(r.order[7], 0);
  free_run(&r);
  pool_done(pool);
}
END_TEST

/* --------------------------------------------------------------- window */

START_TEST(the_window_bounds_inputs_in_flight)
{
  static const size_t windows[] = {1, 2, 5, 64};
  crew_pool *pool = mode_pool(_i, 2, 0);
  for (size_t k = 0; k < 4; k++) {
    for (unsigned flags = 0; flags <= CREW_UNORDERED; flags++) {
      struct run r = new_run(pool, 2000, flags == 0);
      ck_assert_int_eq(imap(&r, windows[k], flags), 0);
      assert_all_given(&r);
      /* The window fills before the first result is waited for. */
      ck_assert_uint_eq(r.max_in_flight, windows[k]);
      free_run(&r);
    }
  }
  pool_done(pool);
}
END_TEST

START_TEST(window_zero_is_four_per_worker)
{
  crew_pool *pool = mode_pool(_i, 3, 0);
  for (unsigned flags = 0; flags <= CREW_UNORDERED; flags++) {
    struct run r = new_run(pool, 1000, flags == 0);
    ck_assert_int_eq(imap(&r, 0, flags), 0);
    assert_all_given(&r);
    ck_assert_uint_eq(r.max_in_flight, 12);
    free_run(&r);
  }
  pool_done(pool);
}
END_TEST

START_TEST(a_window_larger_than_the_queue_completes)
{
  crew_pool *pool = mode_pool(_i, 2, 4);
  for (unsigned flags = 0; flags <= CREW_UNORDERED; flags++) {
    struct run r = new_run(pool, 5000, flags == 0);
    r.mod = 3;
    ck_assert_int_eq(imap(&r, 64, flags), 0);
    assert_all_given(&r);
    ck_assert_uint_le(r.max_in_flight, 64);
    free_run(&r);
  }
  pool_done(pool);
}
END_TEST

/* ----------------------------------------------------------------- stop */

/* The pool runs more work, then drains with nothing left over. */
static void assert_pool_usable_and_idle(crew_pool *pool)
{
  struct run again = new_run(pool, 300, true);
  ck_assert_int_eq(imap(&again, 16, 0), 0);
  assert_all_given(&again);
  free_run(&again);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  assert_pool_settled(pool);
}

START_TEST(a_sink_that_stops_ends_the_map)
{
  for (unsigned flags = 0; flags <= CREW_UNORDERED; flags++) {
    crew_pool *pool = mode_pool(_i, 2, 0);
    struct run r = new_run(pool, 100000, flags == 0);
    r.stop_at = 100;
    r.stop_value = 42;
    ck_assert_int_eq(imap(&r, 16, flags), 42);
    ck_assert(r.stopped);
    ck_assert_uint_eq(r.sunk, 100);
    ck_assert_uint_eq(r.next_after_stop, 0);
    ck_assert_uint_eq(r.sunk_after_stop, 0);
    ck_assert_uint_le(r.given, 100 + 16);
    ck_assert_uint_eq(r.wrong, 0);
    if (flags == 0)
      for (size_t i = 0; i < 100; i++)
        ck_assert_uint_eq(r.order[i], i);
    free_run(&r);
    assert_pool_usable_and_idle(pool);
    pool_done(pool);
  }
}
END_TEST

/* -------------------------------------------------------------- statuses */

START_TEST(task_statuses_are_passed_through)
{
  crew_pool *pool = mode_pool(_i, 2, 0);
  struct run r = new_run(pool, 1000, true);
  r.mod = 10; /* item 7 returns 7, item 13 returns 3 ... */
  ck_assert_int_eq(imap(&r, 8, 0), 0);
  assert_all_given(&r);
  ck_assert_int_eq(r.statuses[7], 7);
  ck_assert_int_eq(r.outs[7], 49);
  free_run(&r);
  pool_done(pool);
}
END_TEST

START_TEST(a_crashing_item_gives_ecrashed_and_the_map_goes_on)
{
  crew_pool *pool = mode_pool(CREW_PROCESSES, 2, 0);
  for (unsigned flags = 0; flags <= CREW_UNORDERED; flags++) {
    struct run r = new_run(pool, 200, flags == 0);
    r.crash_at = 50;
    ck_assert_int_eq(imap(&r, 8, flags), 0);
    ck_assert_uint_eq(r.sunk, 200);
    ck_assert_uint_eq(r.wrong, 0);
    for (size_t i = 0; i < 200; i++) {
      ck_assert_uint_eq(r.seen[i], 1);
      ck_assert_int_eq(r.statuses[i], i == 50 ? CREW_ECRASHED : 0);
      ck_assert_int_eq(r.outs[i], i == 50 ? 0 : (int64_t)(i * i));
    }
    free_run(&r);
  }
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.crashed, 2);
  pool_done(pool);
}
END_TEST

/* ------------------------------------------------------------- shutdown */

START_TEST(a_shut_down_pool_is_closed_before_next)
{
  crew_pool *pool = mode_pool(_i, 2, 0);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  struct run r = new_run(pool, 10, true);
  ck_assert_int_eq(imap(&r, 4, 0), CREW_ECLOSED);
  ck_assert_int_eq(imap(&r, 4, CREW_UNORDERED), CREW_ECLOSED);
  ck_assert_uint_eq(r.next_calls, 0);
  ck_assert_uint_eq(r.sunk, 0);
  free_run(&r);
  pool_done(pool);
}
END_TEST

struct shutter {
  pthread_t thread;
  crew_pool *pool;
  int rc;
};

static void *shut_main(void *arg)
{
  struct shutter *s = arg;
  s->rc = crew_pool_shutdown(s->pool, CREW_CANCEL);
  return NULL;
}

static struct shutter shutter;

/*
 * At the first result (item 0), item 1 holds the one worker at the gate and
 * items 2..7 are queued. Queue a marker task behind them, start a
 * CREW_CANCEL shutdown on another thread, and wait for the marker to be
 * cancelled: the shutdown cancels the queue in order, so 2..7 went before
 * it. Then let item 1 finish.
 */
static void cancel_behind_the_window(struct run *r, size_t index)
{
  if (index != 0)
    return;
  ck_assert_uint_eq(take(), 1);
  struct item mark = {.x = 1000};
  crew_future *f;
  ck_assert_int_eq(
      crew_submit(r->pool, item_task, &mark, sizeof mark, sizeof(int64_t), &f),
      0);
  shutter.pool = r->pool;
  start_thread(&shutter.thread, shut_main, &shutter);
  ck_assert_int_eq(crew_future_wait(f), CREW_ECANCELED);
  crew_future_release(f);
  open_gate(1);
}

START_TEST(a_cancel_shutdown_midway_cancels_the_rest)
{
  for (unsigned flags = 0; flags <= CREW_UNORDERED; flags++) {
    crew_pool *pool = mode_pool(_i, 1, 0);
    struct run r = new_run(pool, 1000, flags == 0);
    r.gate_at = 1;
    r.hook = cancel_behind_the_window;
    ck_assert_int_eq(imap(&r, 8, flags), CREW_ECLOSED);
    join_thread(shutter.thread);
    ck_assert_int_eq(shutter.rc, 0);
    /* 0..7 were in flight, 8 was taken and refused: no more was taken. */
    ck_assert_uint_eq(r.given, 9);
    ck_assert_uint_eq(r.next_calls, 9);
    ck_assert_uint_eq(r.sunk, 9);
    ck_assert_uint_eq(r.wrong, 0);
    for (size_t i = 0; i < 9; i++) {
      ck_assert_uint_eq(r.seen[i], 1);
      ck_assert_int_eq(r.statuses[i], i < 2 ? 0 : CREW_ECANCELED);
      ck_assert_int_eq(r.outs[i], i < 2 ? (int64_t)(i * i) : 0);
    }
    ck_assert_uint_eq(r.order[8], 8);
    free_run(&r);
    assert_pool_settled(pool);
    pool_done(pool);
  }
}
END_TEST

/* At the first result, drain the pool from the sink itself: the other
 * seven in flight run. */
static void drain_at_first(struct run *r, size_t index)
{
  (void)index;
  if (r->sunk == 1)
    ck_assert_int_eq(crew_pool_shutdown(r->pool, CREW_DRAIN), 0);
}

START_TEST(a_drain_shutdown_midway_runs_what_was_queued)
{
  for (unsigned flags = 0; flags <= CREW_UNORDERED; flags++) {
    crew_pool *pool = mode_pool(_i, 2, 0);
    struct run r = new_run(pool, 1000, flags == 0);
    r.hook = drain_at_first;
    ck_assert_int_eq(imap(&r, 8, flags), CREW_ECLOSED);
    ck_assert_uint_eq(r.given, 9);
    ck_assert_uint_eq(r.next_calls, 9);
    ck_assert_uint_eq(r.sunk, 9);
    ck_assert_uint_eq(r.wrong, 0);
    for (size_t i = 0; i < 9; i++)
      ck_assert_int_eq(r.statuses[i], i < 8 ? 0 : CREW_ECANCELED);
    ck_assert_uint_eq(r.order[8], 8);
    free_run(&r);
    assert_pool_settled(pool);
    pool_done(pool);
  }
}
END_TEST

/* ---------------------------------------------------------------- errors */

START_TEST(bad_arguments_are_refused_before_next)
{
  crew_pool *pool = mode_pool(_i, 2, 0);
  struct run r = new_run(pool, 10, true);
  size_t is = sizeof(struct item), os = sizeof(int64_t);
  ck_assert_int_eq(
      crew_imap(NULL, item_task, is, os, 4, 0, next_item, sink_item, &r),
      CREW_EINVAL);
  ck_assert_int_eq(
      crew_imap(pool, NULL, is, os, 4, 0, next_item, sink_item, &r),
      CREW_EINVAL);
  ck_assert_int_eq(
      crew_imap(pool, item_task, is, os, 4, 0, NULL, sink_item, &r),
      CREW_EINVAL);
  ck_assert_int_eq(
      crew_imap(pool, item_task, is, os, 4, 0, next_item, NULL, &r),
      CREW_EINVAL);
  ck_assert_int_eq(
      crew_imap(pool, item_task, 0, os, 4, 0, next_item, sink_item, &r),
      CREW_EINVAL);
  ck_assert_int_eq(
      crew_imap(pool, item_task, is, os, 4, 2, next_item, sink_item, &r),
      CREW_EINVAL);
  ck_assert_int_eq(crew_imap(pool, item_task, is, os, 4, CREW_UNORDERED | 8,
                             next_item, sink_item, &r),
                   CREW_EINVAL);
  ck_assert_int_eq(
      crew_imap(pool, item_task, is, os, SIZE_MAX, 0, next_item, sink_item, &r),
      CREW_EINVAL);
  ck_assert_uint_eq(r.next_calls, 0);
  ck_assert_uint_eq(r.sunk, 0);
  free_run(&r);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, 0);
  pool_done(pool);
}
END_TEST

START_TEST(sizes_above_the_pools_limits_are_refused)
{
  shared_setup(0);
  crew_config cfg = pcfg(2, 0);
  cfg.max_in_size = sizeof(struct item);
  cfg.max_out_size = 4;
  crew_pool *pool = pool_create(&cfg);
  for (int k = 0; k < 2; k++) {
    struct run r = new_run(pool, 10, true);
    /* one byte of input too many; or 8 bytes of output above 4 */
    size_t is = sizeof(struct item) + (k == 0);
    size_t os = k == 0 ? 0 : sizeof(int64_t);
    r.out_null = os == 0;
    int rc = crew_imap(pool, item_task, is, os, 4, 0, next_item, sink_item, &r);
    ck_assert_int_eq(rc, CREW_EINVAL);
    ck_assert_uint_eq(r.next_calls, 0); /* found before any input */
    ck_assert_uint_eq(r.sunk, 0);
    free_run(&r);
  }
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, 0);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* --------------------------------------------------------------- nesting */

struct nest {
  crew_pool *pool;
  unsigned flags;
};

struct nest_out {
  int rc;
  size_t sunk, wrong, not_once;
};

static int nested_imap_task(const void *in, void *out)
{
  const struct nest *a = in;
  struct run r = new_run(a->pool, 2000, a->flags == 0);
  r.mod = 4;
  struct nest_out o = {.rc = imap(&r, 8, a->flags)};
  o.sunk = r.sunk;
  o.wrong = r.wrong;
  for (size_t i = 0; i < r.n; i++)
    o.not_once += r.seen[i] != 1;
  free_run(&r);
  memcpy(out, &o, sizeof o);
  return 0;
}

START_TEST(imap_from_inside_a_task_with_one_worker)
{
  crew_pool *pool = mode_pool(CREW_THREADS, 1, 0);
  for (unsigned flags = 0; flags <= CREW_UNORDERED; flags++) {
    struct nest a = {pool, flags};
    crew_future *f;
    ck_assert_int_eq(crew_submit(pool, nested_imap_task, &a, sizeof a,
                                 sizeof(struct nest_out), &f),
                     0);
    struct nest_out o = {.rc = -100};
    ck_assert_int_eq(crew_future_get(f, &o, sizeof o), 0);
    crew_future_release(f);
    ck_assert_int_eq(o.rc, 0);
    ck_assert_uint_eq(o.sunk, 2000);
    ck_assert_uint_eq(o.wrong, 0);
    ck_assert_uint_eq(o.not_once, 0);
  }
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.completed, 2 * 2001);
  pool_done(pool);
}
END_TEST

START_TEST(out_size_zero_gives_out_null)
{
  crew_pool *pool = mode_pool(_i, 2, 0);
  for (unsigned flags = 0; flags <= CREW_UNORDERED; flags++) {
    struct run r = new_run(pool, 500, flags == 0);
    r.out_null = true;
    r.mod = 7;
    ck_assert_int_eq(imap(&r, 8, flags), 0);
    assert_all_given(&r);
    free_run(&r);
  }
  pool_done(pool);
}
END_TEST

/* ----------------------------------------------------------------- main */

int main(void)
{
  Suite *s = suite_create("imap");
  int modes = 2; /* loop index: CREW_THREADS, CREW_PROCESSES */

  TCase *tc = timed_tcase(s, "order", 60);
  tcase_add_loop_test(tc, ordered_results_come_in_input_order, 0, modes);
  tcase_add_loop_test(tc, unordered_gives_every_index_exactly_once, 0, modes);
  tcase_add_loop_test(tc, unordered_does_not_wait_for_earlier_inputs, 0, modes);

  tc = timed_tcase(s, "window", 60);
  tcase_add_loop_test(tc, the_window_bounds_inputs_in_flight, 0, modes);
  tcase_add_loop_test(tc, window_zero_is_four_per_worker, 0, modes);
  tcase_add_loop_test(tc, a_window_larger_than_the_queue_completes, 0, modes);

  tc = timed_tcase(s, "outcomes", 60);
  tcase_add_loop_test(tc, a_sink_that_stops_ends_the_map, 0, modes);
  tcase_add_loop_test(tc, task_statuses_are_passed_through, 0, modes);
  tcase_add_test(tc, a_crashing_item_gives_ecrashed_and_the_map_goes_on);
  tcase_add_loop_test(tc, out_size_zero_gives_out_null, 0, modes);

  tc = timed_tcase(s, "shutdown", 60);
  tcase_add_loop_test(tc, a_shut_down_pool_is_closed_before_next, 0, modes);
  tcase_add_loop_test(tc, a_cancel_shutdown_midway_cancels_the_rest, 0, modes);
  tcase_add_loop_test(tc, a_drain_shutdown_midway_runs_what_was_queued, 0,
                      modes);

  tc = timed_tcase(s, "errors", 30);
  tcase_add_loop_test(tc, bad_arguments_are_refused_before_next, 0, modes);
  tcase_add_test(tc, sizes_above_the_pools_limits_are_refused);

  tc = timed_tcase(s, "nesting", 30);
  tcase_add_test(tc, imap_from_inside_a_task_with_one_worker);

  return run_suite(s);
}
