/*
 * check_catalog_futures.c - scenarios 25-31 of the reliability catalog,
 * futures, that the older suites (check_future, check_procpool,
 * check_stress) do not already check, or check only in part: the outcome
 * matrix in both modes, sixty-four waiters (half of them timed), and
 * process results of every size, with a death in the middle of the
 * transfer.
 *
 * Every test's comment starts with "catalog N:" and names the invariant it
 * checks (INV-1 exactly once, INV-2 accounting, INV-3 liveness, INV-4
 * bounded shutdown, INV-5 containment, INV-7 limits); tests/CATALOG.md
 * says what each scenario asks. Where crew's documented behaviour differs
 * from the scenario's wording, the test checks crew's header contract and
 * says so.
 *
 * Sizes: `make check` runs the short sizes (the whole suite takes a few
 * seconds); CREW_STRESS_SCALE=N multiplies the loop counts (scaled()).
 *
 * Failures in the test's own pthreads use the quiet assertions of testutil.h
 * (in Check's fork mode they end the test from any thread); failures inside
 * tasks are counted in atomics and asserted by the test's main thread.
 */
#include "config.h"

#include "catalog.h"
#include "harness.h"
#include "proctest.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ================================================================ futures */

/*
 * catalog 25: the outcome matrix. For each outcome crew has, with threads:
 * success, a task error (status 7), cancel before start, cancel while
 * running (CREW_EBUSY, then it completes), shutdown(CANCEL) of a queued
 * task; with processes: success, a worker crash (CREW_ECRASHED), a deadline
 * kill (CREW_EDEADLINE), cancel before start. Before the future resolves,
 * two done callbacks are added and three threads wait on it (wait,
 * get_timed FOREVER, wait_any). INV-1: every waiter wakes exactly once with
 * the final status; each callback runs exactly once, sees the future
 * resolved, and a callback added afterwards runs at once; the status never
 * changes afterwards (a later cancel is CREW_EBUSY); the output is there
 * only if the task ran. crew has no "abandon" outcome (destroy drains) and
 * no argument free functions or sentinel tasks (inputs are copied): those
 * rows of the scenario do not apply.
 */
enum outcome {
  O_SUCCESS,
  O_ERROR,
  O_CANCEL_QUEUED,
  O_CANCEL_RUNNING,
  O_SHUTDOWN_CANCEL,
  O_P_SUCCESS,
  O_P_CRASH,
  O_P_DEADLINE,
  O_P_CANCEL_QUEUED,
  O_COUNT
};

#define OUT_BYTES 16

struct oc_in {
  gate *g; /* threads: park here */
  signal_box *started;
  int status;
  int how; /* processes: 0 return, 1 SIGKILL self, 2 block forever */
};

static void oc_fill(unsigned char *out)
{
  if (out == NULL) /* the blocker in front has no output */
    return;
  for (int i = 0; i < OUT_BYTES; i++)
    out[i] = (unsigned char)(0x40 + i);
}

static int oc_thread_task(const void *in, void *out)
{
  struct oc_in t;
  memcpy(&t, in, sizeof t);
  signal_post(t.started);
  gate_pass(t.g);
  oc_fill(out);
  return t.status;
}

static int oc_proc_task(const void *in, void *out)
{
  struct oc_in t;
  memcpy(&t, in, sizeof t);
  gate_wait(); /* parked until the test opens */
  if (t.how == 1) {
    oc_fill(out); /* dies with its output written: must not show */
    kill(getpid(), SIGKILL);
  }
  if (t.how == 2)
    for (;;)
      pause();
  oc_fill(out);
  return t.status;
}

struct oc_waiter {
  crew_future *f;
  int how; /* 0 wait, 1 get_timed, 2 wait_any */
  signal_box *ready, *woke;
  _Atomic int returns;
  int rc;
  unsigned char out[OUT_BYTES];
  pthread_t th;
};

static void *oc_waiter_main(void *arg)
{
  struct oc_waiter *w = arg;
  memset(w->out, 0xEE, sizeof w->out);
  signal_post(w->ready);
  size_t index = 99;
  if (w->how == 0)
    w->rc = crew_future_wait(w->f);
  else if (w->how == 1)
    w->rc = crew_future_get_timed(w->f, w->out, OUT_BYTES, CREW_FOREVER);
  else if ((w->rc = crew_wait_any(&w->f, 1, CREW_FOREVER, &index)) == 0) {
    quiet_assert_uint_eq(index, 0);
    w->rc = crew_future_status(w->f);
  }
  atomic_fetch_add(&w->returns, 1);
  signal_post(w->woke);
  return NULL;
}

struct oc_cb {
  _Atomic int calls;
  _Atomic int bad; /* called while the future looked unresolved */
};

static void oc_callback(crew_future *f, void *arg)
{
  struct oc_cb *c = arg;
  if (!crew_future_done(f) || crew_future_status(f) == CREW_EBUSY)
    atomic_fetch_add(&c->bad, 1);
  atomic_fetch_add(&c->calls, 1);
}

static const int oc_expect[O_COUNT] = {[O_SUCCESS] = 0,
                                       [O_ERROR] = 7,
                                       [O_CANCEL_QUEUED] = CREW_ECANCELED,
                                       [O_CANCEL_RUNNING] = 0,
                                       [O_SHUTDOWN_CANCEL] = CREW_ECANCELED,
                                       [O_P_SUCCESS] = 0,
                                       [O_P_CRASH] = CREW_ECRASHED,
                                       [O_P_DEADLINE] = CREW_EDEADLINE,
                                       [O_P_CANCEL_QUEUED] = CREW_ECANCELED};

/* One run of the matrix: its outcome, its pool, its future and what
 * watches it. */
struct oc_run {
  enum outcome o;
  bool procs, runs, queued;
  gate g;
  signal_box started, ready, woke, bready, bdone;
  crew_pool *pool;
  crew_future *blocker, *f;
  struct oc_cb cbs[3];
  struct oc_waiter ws[3];
  struct bg_shutdown b;
};

/* Submit the task (behind a blocker when it must stay queued), add two
 * callbacks and start three waiters: none returns before it resolves. */
static void oc_start(struct oc_run *r, enum outcome o)
{
  r->o = o;
  r->procs = o >= O_P_SUCCESS;
  r->runs = oc_expect[o] >= 0;
  gate_init(&r->g);
  signal_init(&r->started);
  signal_init(&r->ready);
  signal_init(&r->woke);
  if (r->procs) {
    shared_setup(0);
    r->pool = make_proc_pool(1, o == O_P_DEADLINE ? 300 * MS : 0, 0);
  } else {
    r->pool = make_pool(1, 8);
  }
  struct oc_in in = {
      .g = &r->g, .started = &r->started, .status = 7 * (o == O_ERROR)};
  in.how = o == O_P_CRASH ? 1 : o == O_P_DEADLINE ? 2 : 0;
  crew_fn fn = r->procs ? oc_proc_task : oc_thread_task;
  r->queued =
      o == O_CANCEL_QUEUED || o == O_SHUTDOWN_CANCEL || o == O_P_CANCEL_QUEUED;
  r->blocker = r->f = NULL;
  if (r->queued) { /* a task in front keeps ours queued */
    ck_assert_int_eq(crew_submit(r->pool, fn, &in, sizeof in, 0, &r->blocker),
                     0);
    if (!r->procs)
      signal_wait(&r->started, 1);
  }
  ck_assert_int_eq(crew_submit(r->pool, fn, &in, sizeof in, OUT_BYTES, &r->f),
                   0);
  for (int i = 0; i < 3; i++) {
    atomic_init(&r->cbs[i].calls, 0);
    atomic_init(&r->cbs[i].bad, 0);
  }
  ck_assert_int_eq(crew_future_on_done(r->f, oc_callback, &r->cbs[0]), 0);
  ck_assert_int_eq(crew_future_on_done(r->f, oc_callback, &r->cbs[1]), 0);
  for (int i = 0; i < 3; i++) {
    r->ws[i] = (struct oc_waiter){
        .f = r->f, .how = i, .ready = &r->ready, .woke = &r->woke, .rc = 99};
    atomic_init(&r->ws[i].returns, 0);
    start_thread(&r->ws[i].th, oc_waiter_main, &r->ws[i]);
  }
  signal_wait(&r->ready, 3);
  ck_assert_int_eq(signal_try(&r->woke, NEG_WAIT), CREW_ETIMEDOUT);
  ck_assert(!crew_future_done(r->f));
}

/* Bring about the outcome. */
static void oc_resolve(struct oc_run *r)
{
  r->b = (struct bg_shutdown){.pool = r->pool, .how = CREW_CANCEL, .rc = 99};
  signal_init(&r->bready);
  signal_init(&r->bdone);
  switch (r->o) {
  case O_SUCCESS:
  case O_ERROR:
    gate_open(&r->g, 1);
    break;
  case O_CANCEL_QUEUED:
  case O_P_CANCEL_QUEUED:
    ck_assert_int_eq(crew_future_cancel(r->f), 0);
    break;
  case O_CANCEL_RUNNING:
    signal_wait(&r->started, 1);
    ck_assert_int_eq(crew_future_cancel(r->f), CREW_EBUSY);
    ck_assert(!crew_future_done(r->f));
    gate_open(&r->g, 1);
    break;
  case O_SHUTDOWN_CANCEL:
    r->b.ready = &r->bready;
    r->b.done = &r->bdone;
    start_thread(&r->b.th, bg_shutdown_main, &r->b);
    signal_wait(&r->bready, 1);
    /* Once the shutdown has begun (a map of nothing says CREW_ECLOSED),
     * the blocker may end: the worker then drops our task. */
    while (crew_map(r->pool, noop_task, NULL, 0, NULL, 0, 0) == 0)
      sched_yield();
    gate_open(&r->g, 1);
    break;
  case O_P_SUCCESS:
  case O_P_CRASH:
    open_gate(1);
    break;
  default: /* O_P_DEADLINE: the deadline resolves it */
    open_gate(1);
    break;
  }
}

/* Every waiter woke once with the final status; the output is there only
 * if the task ran. */
static void oc_check_waiters(struct oc_run *r, const unsigned char *want,
                             const unsigned char *none)
{
  int expect = oc_expect[r->o];
  signal_wait(&r->woke, 3);
  for (int i = 0; i < 3; i++) {
    join_thread(r->ws[i].th);
    ck_assert_int_eq(atomic_load(&r->ws[i].returns), 1);
    ck_assert_msg(r->ws[i].rc == expect, "waiter %d got %d, expected %d", i,
                  r->ws[i].rc, expect);
  }
  ck_assert_int_eq(memcmp(r->ws[1].out, r->runs ? want : none, OUT_BYTES), 0);
}

/* Release what is in front, and finish the shutdown. */
static void oc_release_front(struct oc_run *r)
{
  if (r->queued && !r->procs && r->o != O_SHUTDOWN_CANCEL)
    gate_open(&r->g, 1);
  if (r->queued && r->procs)
    open_gate(1);
  if (r->o == O_SHUTDOWN_CANCEL) {
    signal_wait(&r->bdone, 1);
    join_thread(r->b.th);
    ck_assert_int_eq(r->b.rc, 0);
  }
  if (r->blocker != NULL) {
    ck_assert_int_eq(crew_future_wait(r->blocker), 0);
    crew_future_release(r->blocker);
  }
}

static void oc_fini(struct oc_run *r)
{
  if (r->procs)
    shared_teardown();
  signal_fini(&r->bready);
  signal_fini(&r->bdone);
  signal_fini(&r->started);
  signal_fini(&r->ready);
  signal_fini(&r->woke);
  gate_fini(&r->g);
}

START_TEST(catalog25_outcome_matrix)
{
  struct oc_run r;
  oc_start(&r, (enum outcome)_i);
  int expect = oc_expect[r.o];
  oc_resolve(&r);
  unsigned char want[OUT_BYTES], none[OUT_BYTES];
  oc_fill(want);
  memset(none, 0xEE, sizeof none);
  oc_check_waiters(&r, want, none);
  oc_release_front(&r);
  ck_assert_int_eq(crew_future_status(r.f), expect);
  ck_assert_int_eq(crew_future_cancel(r.f), CREW_EBUSY);
  ck_assert_int_eq(crew_future_wait(r.f), expect);
  /* Added after resolution: runs once, at once if the earlier callbacks
   * have run, else after them on the resolving thread (future.h); by the
   * end of destroy in any case. */
  ck_assert_int_eq(crew_future_on_done(r.f, oc_callback, &r.cbs[2]), 0);
  crew_pool_destroy(r.pool);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(atomic_load(&r.cbs[i].calls), 1);
    ck_assert_int_eq(atomic_load(&r.cbs[i].bad), 0);
  }
  unsigned char out[OUT_BYTES];
  memset(out, 0xEE, sizeof out);
  ck_assert_int_eq(crew_future_get(r.f, out, OUT_BYTES), expect);
  ck_assert_int_eq(memcmp(out, r.runs ? want : none, OUT_BYTES), 0);
  crew_future_release(r.f);
  oc_fini(&r);
}
END_TEST

/*
 * catalog 27: many waiters. 64 threads wait on one future: 32 with
 * crew_future_wait, 32 with crew_future_get_timed in a loop of short random
 * timeouts (1-4 ms); the future resolves at a moment that varies by round.
 * INV-3: all wake (a broadcast, not a signal); a timed waiter gets either
 * the result or CREW_ETIMEDOUT, and after CREW_ETIMEDOUT a new wait still
 * sees the result.
 */
struct many_waiter {
  crew_future *f;
  bool timed;
  uint64_t seed;
  signal_box *ready;
  int rc;
  uint32_t value;
  uint64_t timeouts;
  pthread_t th;
};

static void *many_waiter_main(void *arg)
{
  struct many_waiter *w = arg;
  signal_post(w->ready);
  if (!w->timed) {
    w->rc = crew_future_get(w->f, &w->value, sizeof w->value);
    return NULL;
  }
  for (;;) {
    uint64_t t = MS + next_rand(&w->seed) % (3 * MS);
    w->rc = crew_future_get_timed(w->f, &w->value, sizeof w->value, t);
    if (w->rc != CREW_ETIMEDOUT)
      return NULL;
    w->timeouts++;
  }
}

static int value_task(const void *in, void *out)
{
  gate_pass(*(gate *const *)in);
  uint32_t v = 0xC0FFEE;
  memcpy(out, &v, sizeof v);
  return 11;
}

START_TEST(catalog27_sixty_four_waiters_half_timed)
{
  enum { N = 64 };
  size_t rounds = scaled(4);
  uint64_t rng = 0x243f6a8885a308d3ull;
  for (size_t r = 0; r < rounds; r++) {
    crew_pool *pool = make_pool(1, 0);
    gate g, *gp = &g;
    gate_init(&g);
    crew_future *f = NULL;
    ck_assert_int_eq(
        crew_submit(pool, value_task, &gp, sizeof gp, sizeof(uint32_t), &f), 0);
    signal_box ready;
    signal_init(&ready);
    struct many_waiter *w = calloc(N, sizeof *w);
    ck_assert_ptr_nonnull(w);
    for (size_t i = 0; i < N; i++) {
      w[i] = (struct many_waiter){
          .f = f, .timed = i % 2 == 1, .seed = i + 1, .ready = &ready};
      start_thread(&w[i].th, many_waiter_main, &w[i]);
    }
    signal_wait(&ready, N);
    /* The resolving moment: 0-20 ms after everyone waits (randomises, does
     * not synchronise anything). */
    pause_us((long)(next_rand(&rng) % 20000));
    gate_open(&g, 1);
    uint64_t timeouts = 0;
    for (size_t i = 0; i < N; i++) {
      join_thread(w[i].th);
      ck_assert_int_eq(w[i].rc, 11);
      ck_assert_uint_eq(w[i].value, 0xC0FFEE);
      timeouts += w[i].timeouts;
    }
    (void)timeouts; /* usually > 0: timed waiters retried after ETIMEDOUT */
    ck_assert_int_eq(crew_future_wait_timed(f, 0), 11);
    crew_future_release(f);
    crew_pool_destroy(pool);
    free(w);
    signal_fini(&ready);
    gate_fini(&g);
  }
}
END_TEST

/*
 * catalog 31: large and failing result transfer, processes. With
 * max_out_size 1 MiB, outputs of 0, 1, 4096, 64 KiB, 640 KiB (10x the
 * 64 KiB one) and exactly 1 MiB come back whole, every byte checked; 1 MiB +
 * 1 is refused at submit with CREW_EINVAL and no future (crew's
 * "EMSGSIZE-like" error: results are never chunked, the size is fixed at
 * submit). A worker that dies after writing half its output, or all of it,
 * resolves CREW_ECRASHED with the caller's buffer untouched; the pool goes
 * on and the next 1 MiB round trip is intact. INV-1/5.
 */
struct xfer_in {
  uint32_t size;
  uint32_t die; /* 0 no, 1 SIGKILL after half, 2 _exit(0) after all */
};

static unsigned char xfer_byte(size_t i)
{
  return (unsigned char)(i * 131 + 7);
}

static int xfer_task(const void *in, void *out)
{
  struct xfer_in t;
  memcpy(&t, in, sizeof t);
  unsigned char *o = out;
  size_t upto = t.die == 1 ? t.size / 2 : t.size;
  for (size_t i = 0; i < upto; i++)
    o[i] = xfer_byte(i);
  if (t.die == 1)
    kill(getpid(), SIGKILL);
  if (t.die == 2)
    _exit(0);
  return 0;
}

static void xfer_round_trip(crew_pool *pool, uint32_t size, unsigned char *buf)
{
  struct xfer_in in = {.size = size};
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, xfer_task, &in, sizeof in, size, &f), 0);
  memset(buf, 0xEE, (size_t)size + 1);
  ck_assert_int_eq(crew_future_get(f, size > 0 ? buf : NULL, size), 0);
  for (size_t i = 0; i < size; i++)
    quiet_assert_msg(buf[i] == xfer_byte(i), "size %u: byte %zu wrong", size,
                     i);
  ck_assert_uint_eq(buf[size], 0xEE);
  crew_future_release(f);
}

START_TEST(catalog31_process_results_sizes_and_death_mid_transfer)
{
  enum { CAP = 1 << 20 };
  static const uint32_t sizes[] = {0, 1, 4096, 64 << 10, 640 << 10, CAP};
  shared_setup(0);
  crew_pool *pool = make_proc_pool(1, 0, CAP);
  unsigned char *buf = malloc(CAP + 1);
  ck_assert_ptr_nonnull(buf);
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    xfer_round_trip(pool, sizes[i], buf);

  struct xfer_in in = {.size = CAP + 1};
  crew_future *f = (crew_future *)buf;
  ck_assert_int_eq(crew_submit(pool, xfer_task, &in, sizeof in, CAP + 1, &f),
                   CREW_EINVAL);
  ck_assert_ptr_eq(f, (crew_future *)buf);

  for (uint32_t die = 1; die <= 2; die++) {
    in = (struct xfer_in){.size = 64 << 10, .die = die};
    ck_assert_int_eq(crew_submit(pool, xfer_task, &in, sizeof in, in.size, &f),
                     0);
    memset(buf, 0xEE, in.size);
    ck_assert_int_eq(crew_future_get(f, buf, in.size), CREW_ECRASHED);
    for (size_t i = 0; i < in.size; i++)
      quiet_assert_msg(buf[i] == 0xEE, "die %u: byte %zu written", die, i);
    crew_future_release(f);
    xfer_round_trip(pool, CAP, buf); /* the replacement works */
  }
  crew_stats st;
  ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
  ck_assert_uint_eq(st.crashed, 2);
  ck_assert_uint_eq(st.completed, sizeof sizes / sizeof sizes[0] + 2);
  crew_pool_destroy(pool);
  free(buf);
  shared_teardown();
}
END_TEST

/* =================================================================== main */

int main(void)
{
  Suite *s = suite_create("catalog_futures");

  TCase *tc = catalog_tcase(s, "futures", 60);
  tcase_add_loop_test(tc, catalog25_outcome_matrix, 0, O_COUNT);
  tcase_add_test(tc, catalog27_sixty_four_waiters_half_timed);
  tcase_add_test(tc, catalog31_process_results_sizes_and_death_mid_transfer);
  return run_suite(s);
}
