/*
 * check_shutdown.c - no future may stay pending: what a shutdown and a done
 * callback promise, in both modes.
 *
 *  - CREW_CANCEL cancels everything queued at once, in the call, while a
 *    task still runs: futures resolve CREW_ECANCELED, their callbacks run,
 *    channel completions arrive, fire-and-forget tasks and the items of a
 *    map that no runner has claimed count as cancelled, before the call
 *    waits for the running task.
 *  - A done callback may wait on another future of the pool, submit to a
 *    full pool, and shut the pool down (CREW_EBUSY); shutdown and destroy
 *    still wait for every worker and leave no future unresolved. In process
 *    mode this is what the callback thread is for: the manager thread that
 *    resolves the futures never runs application code.
 *
 * Every test runs once per mode (the loop index: 0 threads, 1 processes).
 * Tasks talk to the test through what exists before the pool and is shared
 * with every process forked after it: a CREW_SHARED gate (a task that
 * passes it pops a token), a CREW_SHARED box of posts, and a MAP_SHARED
 * counter of task bodies that ran. Callbacks run in this process, so they
 * use plain memory and crew queues.
 */
#include "harness.h"
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

/* =================================================== shared with tasks */

static crew_queue *gate_q[2]; /* tokens: two gates, opened apart */
static crew_queue *box_q;     /* uint64_t posts */
static _Atomic uint64_t *ran;

#define TAKE_LIMIT (10000 * MS)

static void shared_setup(void)
{
  for (int g = 0; g < 2; g++)
    ck_assert_int_eq(crew_queue_create(&gate_q[g], 1024, 1, CREW_SHARED), 0);
  ck_assert_int_eq(
      crew_queue_create(&box_q, 1024, sizeof(uint64_t), CREW_SHARED), 0);
  ran = mmap(NULL, sizeof *ran, PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ck_assert(ran != MAP_FAILED);
  atomic_store(ran, 0);
}

static void shared_teardown(void)
{
  munmap((void *)ran, sizeof *ran);
  crew_queue_destroy(box_q);
  crew_queue_destroy(gate_q[1]);
  crew_queue_destroy(gate_q[0]);
}

/* Let n tasks through gate g. */
static void open_gate_n(int g, size_t n)
{
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(crew_queue_push(gate_q[g], "t"), 0);
}

static void open_gate(size_t n)
{
  open_gate_n(0, n);
}

/* The next post of a task, failing after 10 s instead of hanging. */
static uint64_t take(void)
{
  uint64_t v = 0;
  ck_assert_msg(crew_queue_pop_timed(box_q, &v, TAKE_LIMIT) == 0,
                "waited 10 s for a post from a task");
  return v;
}

/* Posts 1, waits at gate 0 (or at the gate its int input names), then
 * counts its run. */
static int gated_task(const void *in, void *out)
{
  (void)out;
  uint64_t one = 1;
  crew_queue_push(box_q, &one);
  char token;
  int rc = crew_queue_pop(gate_q[in != NULL ? *(const int *)in : 0], &token);
  atomic_fetch_add(ran, 1);
  return rc == 0 ? 0 : 1;
}

/* Counts its run; out (if any): its input plus one. */
static int count_task(const void *in, void *out)
{
  if (out != NULL)
    *(int64_t *)out = *(const int64_t *)in + 1;
  atomic_fetch_add(ran, 1);
  return 0;
}

/* A map item: item 0 is gated, the others count. */
static int map_item(const void *in, void *out)
{
  int64_t i = *(const int64_t *)in;
  *(int64_t *)out = i;
  return i == 0 ? gated_task(NULL, NULL) : count_task(in, NULL);
}

/* ============================================================== pools */

static const char *mode_name(int mode)
{
  return mode == CREW_PROCESSES ? "processes" : "threads";
}

static crew_pool *pool_of(int mode, size_t workers, size_t capacity)
{
  crew_config cfg = pool_config(mode, workers);
  cfg.queue_capacity = capacity;
  crew_pool *pool = NULL;
  ck_assert_msg(crew_pool_create(&pool, &cfg) == 0, "create (%s)",
                mode_name(mode));
  return pool;
}

/* A gated task at gate g, running once this returns. */
static crew_future *submit_gated_at(crew_pool *pool, int g)
{
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, gated_task, &g, sizeof g, 0, &f), 0);
  return f;
}

static crew_future *submit_gated(crew_pool *pool)
{
  return submit_gated_at(pool, 0);
}

static crew_future *submit_count(crew_pool *pool, int64_t x)
{
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, count_task, &x, sizeof x, sizeof x, &f),
                   0);
  return f;
}

/* A shutdown on another thread, and whether it has returned. */
struct stopper {
  crew_pool *pool;
  int how, rc;
  signal_box done;
  pthread_t thread;
};

static void *stopper_main(void *arg)
{
  struct stopper *s = arg;
  s->rc = crew_pool_shutdown(s->pool, s->how);
  signal_post(&s->done);
  return NULL;
}

static void stopper_start(struct stopper *s, crew_pool *pool, int how)
{
  *s = (struct stopper){.pool = pool, .how = how, .rc = 1};
  signal_init(&s->done);
  ck_assert_int_eq(pthread_create(&s->thread, NULL, stopper_main, s), 0);
}

/* Wait (at most 10 s) for the shutdown to return 0, and join it. */
static void stopper_join(struct stopper *s)
{
  signal_wait(&s->done, 1);
  ck_assert_int_eq(pthread_join(s->thread, NULL), 0);
  ck_assert_int_eq(s->rc, 0);
  signal_fini(&s->done);
}

/* A done callback that counts and posts. */
struct tally {
  _Atomic int calls;
  signal_box posts;
};

static void tally_cb(crew_future *f, void *arg)
{
  (void)f;
  struct tally *t = arg;
  atomic_fetch_add(&t->calls, 1);
  signal_post(&t->posts);
}

/* ================================================ 1. prompt CREW_CANCEL */

enum { WITH_FUTURES = 10, FIRE_AND_FORGET = 10, ON_CHANNEL = 3 };

/* Drain exactly n completions from ch (waiting at most 10 s in all); each
 * must be cancelled. */
static void expect_cancelled_completions(crew_channel *ch, size_t n)
{
  size_t got = 0;
  while (got < n) {
    crew_completion c[ON_CHANNEL];
    size_t k = 0;
    ck_assert_int_eq(crew_channel_wait(ch, c, n - got, &k, TAKE_LIMIT), 0);
    for (size_t i = 0; i < k; i++) {
      ck_assert_int_eq(crew_future_status(c[i].future), CREW_ECANCELED);
      crew_future_release(c[i].future);
    }
    got += k;
  }
}

START_TEST(cancel_resolves_every_queued_task_while_one_runs)
{
  shared_setup();
  crew_pool *pool = pool_of(_i, 1, 64);
  crew_future *running = submit_gated(pool);
  take();

  struct tally t = {.calls = 0};
  signal_init(&t.posts);
  crew_future *fs[WITH_FUTURES];
  for (int i = 0; i < WITH_FUTURES; i++) {
    fs[i] = submit_count(pool, i);
    ck_assert_int_eq(crew_future_on_done(fs[i], tally_cb, &t), 0);
  }
  for (int64_t i = 0; i < FIRE_AND_FORGET; i++)
    ck_assert_int_eq(crew_submit(pool, count_task, &i, sizeof i, 0, NULL), 0);
  crew_channel *ch;
  ck_assert_int_eq(crew_channel_create(&ch), 0);
  for (int64_t i = 0; i < ON_CHANNEL; i++)
    ck_assert_int_eq(
        crew_submit_to(pool, ch, NULL, count_task, &i, sizeof i, sizeof i), 0);
  const size_t queued = WITH_FUTURES + FIRE_AND_FORGET + ON_CHANNEL;
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, queued + 1);
  ck_assert_uint_eq(st.queued, queued);

  struct stopper s;
  stopper_start(&s, pool, CREW_CANCEL);
  /* The running task still holds its worker: nothing below may wait for
   * it. */
  ck_assert_int_eq(crew_wait_all(fs, WITH_FUTURES, TAKE_LIMIT), 0);
  for (int i = 0; i < WITH_FUTURES; i++)
    ck_assert_int_eq(crew_future_status(fs[i]), CREW_ECANCELED);
  signal_wait(&t.posts, WITH_FUTURES);
  expect_cancelled_completions(ch, ON_CHANNEL);
  for (int i = 0; i < 10000; i++) { /* the last cancel is counted just after */
    st = pool_stats(pool);
    if (st.cancelled == queued)
      break;
    pause_ms(1);
  }
  ck_assert_uint_eq(st.cancelled, queued);
  ck_assert_uint_eq(st.queued, 0);
  ck_assert_uint_eq(st.running, 1);
  ck_assert_uint_eq(st.completed, 0);
  ck_assert(!crew_future_done(running));
  ck_assert_int_eq(signal_try(&s.done, 0), CREW_ETIMEDOUT);

  open_gate(1);
  stopper_join(&s);
  ck_assert_int_eq(crew_future_status(running), 0);
  ck_assert_uint_eq(atomic_load(ran), 1); /* only the running one ran */
  ck_assert_int_eq(atomic_load(&t.calls), WITH_FUTURES);
  st = pool_stats(pool);
  ck_assert_uint_eq(st.completed, 1);
  ck_assert_uint_eq(st.cancelled, queued);
  assert_pool_settled(pool);
  crew_pool_destroy(pool);
  for (int i = 0; i < WITH_FUTURES; i++)
    crew_future_release(fs[i]);
  crew_future_release(running);
  crew_channel_destroy(ch);
  signal_fini(&t.posts);
  shared_teardown();
}
END_TEST

/* A map on another thread. */
struct mapper {
  crew_pool *pool;
  int64_t in[64], out[64];
  int rc;
  signal_box done;
  pthread_t thread;
};

static void *mapper_main(void *arg)
{
  struct mapper *m = arg;
  m->rc = crew_map(m->pool, map_item, m->in, sizeof m->in[0], m->out,
                   sizeof m->out[0], 64);
  signal_post(&m->done);
  return NULL;
}

START_TEST(cancel_takes_the_map_items_no_runner_has_claimed)
{
  /* Two workers: one parked in a task, the other running the map's first
   * chunk (8 items of 64, the first parked); the map's second runner waits
   * in the queue. A cancel must settle the 56 items of the 7 chunks nobody
   * claimed at once, while both tasks still run. */
  shared_setup();
  crew_pool *pool = pool_of(_i, 2, 0);
  crew_future *parked = submit_gated(pool);
  take();
  struct mapper m = {.pool = pool, .rc = 1};
  for (int i = 0; i < 64; i++)
    m.in[i] = i;
  signal_init(&m.done);
  ck_assert_int_eq(pthread_create(&m.thread, NULL, mapper_main, &m), 0);
  take(); /* item 0 runs */

  struct stopper s;
  stopper_start(&s, pool, CREW_CANCEL);
  crew_stats st = pool_stats(pool);
  for (int i = 0; i < 10000 && st.cancelled < 56; i++) {
    pause_ms(1);
    st = pool_stats(pool);
  }
  ck_assert_uint_eq(st.cancelled, 56);
  ck_assert_int_eq(signal_try(&m.done, 0), CREW_ETIMEDOUT);
  ck_assert_int_eq(signal_try(&s.done, 0), CREW_ETIMEDOUT);

  open_gate(2);
  signal_wait(&m.done, 1);
  ck_assert_int_eq(pthread_join(m.thread, NULL), 0);
  ck_assert_int_eq(m.rc, CREW_ECANCELED); /* item 8, the first cancelled */
  for (int i = 0; i < 8; i++)
    ck_assert_int_eq(m.out[i], i);
  stopper_join(&s);
  ck_assert_int_eq(crew_future_status(parked), 0);
  ck_assert_uint_eq(atomic_load(ran), 1 + 8);
  st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, 1 + 64);
  ck_assert_uint_eq(st.completed, 1 + 8);
  ck_assert_uint_eq(st.cancelled, 56);
  assert_pool_settled(pool);
  crew_pool_destroy(pool);
  crew_future_release(parked);
  signal_fini(&m.done);
  shared_teardown();
}
END_TEST

START_TEST(a_map_whose_runners_wait_in_the_queue_returns_at_once)
{
  shared_setup();
  crew_pool *pool = pool_of(_i, 1, 0);
  crew_future *parked = submit_gated(pool);
  take();
  struct mapper m = {.pool = pool, .rc = 1};
  for (int i = 0; i < 64; i++)
    m.in[i] = i + 1; /* no item is gated */
  signal_init(&m.done);
  ck_assert_int_eq(pthread_create(&m.thread, NULL, mapper_main, &m), 0);
  for (int i = 0; i < 10000 && pool_stats(pool).submitted < 65; i++)
    pause_ms(1);
  ck_assert_uint_eq(pool_stats(pool).submitted, 65);

  struct stopper s;
  stopper_start(&s, pool, CREW_CANCEL);
  signal_wait(&m.done, 1); /* the worker is still parked */
  ck_assert_int_eq(pthread_join(m.thread, NULL), 0);
  ck_assert_int_eq(m.rc, CREW_ECANCELED);
  ck_assert(!crew_future_done(parked));
  ck_assert_uint_eq(pool_stats(pool).cancelled, 64);
  open_gate(1);
  stopper_join(&s);
  ck_assert_uint_eq(atomic_load(ran), 1);
  assert_pool_settled(pool);
  crew_pool_destroy(pool);
  crew_future_release(parked);
  signal_fini(&m.done);
  shared_teardown();
}
END_TEST

/* Shuts its own pool down with CREW_CANCEL (thread mode: from a task). */
static int cancel_inside_task(const void *in, void *out)
{
  crew_pool *pool = *(crew_pool *const *)in;
  *(int *)out = crew_pool_shutdown(pool, CREW_CANCEL);
  return 0;
}

START_TEST(a_cancel_begun_inside_a_task_cancels_at_once_and_destroy_waits)
{
  /* Thread mode only: a worker process cannot call its pool. */
  shared_setup();
  crew_pool *pool = pool_of(CREW_THREADS, 2, 0);
  crew_future *parked = submit_gated(pool);
  take();
  crew_future *inside = NULL;
  ck_assert_int_eq(crew_submit(pool, cancel_inside_task, &pool, sizeof pool,
                               sizeof(int), &inside),
                   0);
  int rc = 0;
  ck_assert_int_eq(crew_future_get(inside, &rc, sizeof rc), 0);
  ck_assert_int_eq(rc, CREW_EBUSY);
  crew_future *late = NULL;
  ck_assert_int_eq(
      crew_submit(pool, count_task, &(int64_t){0}, sizeof(int64_t), 0, &late),
      CREW_ECLOSED);
  ck_assert_ptr_null(late);
  /* A later call keeps CREW_CANCEL and still waits for the parked task. */
  struct stopper s;
  stopper_start(&s, pool, CREW_DRAIN);
  ck_assert_int_eq(signal_try(&s.done, 50 * MS), CREW_ETIMEDOUT);
  open_gate(1);
  stopper_join(&s);
  ck_assert_int_eq(crew_future_status(parked), 0);
  crew_pool_destroy(pool);
  crew_future_release(parked);
  crew_future_release(inside);
  shared_teardown();
}
END_TEST

/* Cancels its own pool, then counts which of the futures it was given are
 * cancelled already, before it returns. */
struct cancel_and_look {
  crew_pool *pool;
  crew_future *const *fs;
  int n;
};

struct looked {
  int rc;
  int cancelled;
};

static int cancel_and_look_task(const void *in, void *out)
{
  const struct cancel_and_look *a = in;
  struct looked r = {crew_pool_shutdown(a->pool, CREW_CANCEL), 0};
  for (int i = 0; i < a->n; i++)
    r.cancelled += crew_future_status(a->fs[i]) == CREW_ECANCELED;
  memcpy(out, &r, sizeof r);
  return 0;
}

START_TEST(a_cancel_inside_a_task_resolves_the_queued_before_it_returns)
{
  shared_setup();
  crew_pool *pool = pool_of(CREW_THREADS, 2, 0);
  crew_future *parked = submit_gated(pool);
  take();
  /* The other worker is held too, so that everything below stays queued
   * until the cancelling task runs. */
  crew_future *held = submit_gated_at(pool, 1);
  take();
  crew_future *inside = NULL, *fs[5];
  struct cancel_and_look a = {pool, fs, 5};
  ck_assert_int_eq(crew_submit(pool, cancel_and_look_task, &a, sizeof a,
                               sizeof(struct looked), &inside),
                   0);
  for (int i = 0; i < 5; i++)
    fs[i] = submit_count(pool, i);
  open_gate_n(1, 1); /* that worker goes on: it runs the cancelling task */
  struct looked r = {0, 0};
  ck_assert_int_eq(crew_future_get(inside, &r, sizeof r), 0);
  ck_assert_int_eq(r.rc, CREW_EBUSY);
  ck_assert_int_eq(r.cancelled, 5); /* in the call, not by a worker later */
  ck_assert(!crew_future_done(parked));
  ck_assert_uint_eq(pool_stats(pool).cancelled, 5);
  open_gate(1);
  crew_pool_destroy(pool); /* joins: nothing else runs */
  ck_assert_uint_eq(atomic_load(ran), 2);
  for (int i = 0; i < 5; i++)
    crew_future_release(fs[i]);
  crew_future_release(parked);
  crew_future_release(held);
  crew_future_release(inside);
  shared_teardown();
}
END_TEST

/* ========================================== 2. callbacks keep promises */

/* What a callback did, for the test to look at once `done` is posted. */
struct cb_probe {
  crew_pool *pool;
  crew_future *other; /* to wait on */
  int rc;
  int64_t out;
  signal_box done;
};

static void wait_other_cb(crew_future *f, void *arg)
{
  (void)f;
  struct cb_probe *p = arg;
  p->rc = crew_future_wait(p->other);
  signal_post(&p->done);
}

START_TEST(a_callback_may_wait_on_another_future_of_its_pool)
{
  shared_setup();
  crew_pool *pool = pool_of(_i, 2, 0);
  crew_future *a = submit_gated_at(pool, 1);
  take();
  crew_future *b = submit_gated(pool);
  take();
  struct cb_probe p = {.pool = pool, .other = b, .rc = 1};
  signal_init(&p.done);
  ck_assert_int_eq(crew_future_on_done(a, wait_other_cb, &p), 0);
  open_gate_n(1, 1); /* a resolves; its callback waits for b */
  ck_assert_int_eq(crew_future_wait_timed(a, TAKE_LIMIT), 0);
  ck_assert_int_eq(signal_try(&p.done, 20 * MS), CREW_ETIMEDOUT);
  open_gate(1); /* b resolves: whoever resolves futures is not stuck */
  signal_wait(&p.done, 1);
  ck_assert_int_eq(p.rc, 0);
  crew_future_release(a);
  crew_future_release(b);
  crew_pool_destroy(pool);
  signal_fini(&p.done);
  shared_teardown();
}
END_TEST

static void submit_cb(crew_future *f, void *arg)
{
  (void)f;
  struct cb_probe *p = arg;
  crew_future *g = NULL;
  p->rc = crew_submit(p->pool, count_task, &(int64_t){41}, sizeof(int64_t),
                      sizeof(int64_t), &g);
  if (p->rc == 0) {
    p->rc = crew_future_get(g, &p->out, sizeof p->out);
    crew_future_release(g);
  }
  signal_post(&p->done);
}

START_TEST(a_callback_may_submit_to_a_full_pool)
{
  /* One worker, a queue of one: with the running task and one queued, the
   * pool is full when the running task's callback submits. */
  shared_setup();
  crew_pool *pool = pool_of(_i, 1, 1);
  crew_future *a = submit_gated(pool);
  take();
  crew_future *q = submit_count(pool, 1);
  if (_i == CREW_PROCESSES) /* full: capacity + workers tasks */
    ck_assert_int_eq(crew_submit_timed(pool, count_task, &(int64_t){0},
                                       sizeof(int64_t), 0, NULL, 0),
                     CREW_ETIMEDOUT);
  struct cb_probe p = {.pool = pool, .rc = 1};
  signal_init(&p.done);
  ck_assert_int_eq(crew_future_on_done(a, submit_cb, &p), 0);
  open_gate(1);
  signal_wait(&p.done, 1);
  ck_assert_int_eq(p.rc, 0);
  ck_assert_int_eq(p.out, 42);
  ck_assert_int_eq(crew_future_wait(q), 0);
  assert_pool_settled(pool);
  crew_future_release(a);
  crew_future_release(q);
  crew_pool_destroy(pool);
  signal_fini(&p.done);
  shared_teardown();
}
END_TEST

static void shutdown_cb(crew_future *f, void *arg)
{
  (void)f;
  struct cb_probe *p = arg;
  p->rc = crew_pool_shutdown(p->pool, CREW_DRAIN);
  signal_post(&p->done);
}

START_TEST(a_callback_may_shut_its_pool_down_and_shutdown_still_waits)
{
  shared_setup();
  crew_pool *pool = pool_of(_i, 2, 0);
  crew_future *slow = submit_gated(pool);
  take();
  crew_future *quick = submit_gated_at(pool, 1);
  take();
  struct cb_probe p = {.pool = pool, .rc = 1};
  signal_init(&p.done);
  ck_assert_int_eq(crew_future_on_done(quick, shutdown_cb, &p), 0);
  open_gate_n(1, 1); /* quick ends; its callback begins the shutdown */
  signal_wait(&p.done, 1);
  ck_assert_int_eq(p.rc, CREW_EBUSY);

  /* The other task still runs: a shutdown from here waits for it. */
  struct stopper s;
  stopper_start(&s, pool, CREW_DRAIN);
  ck_assert_int_eq(signal_try(&s.done, 50 * MS), CREW_ETIMEDOUT);
  ck_assert(!crew_future_done(slow));
  open_gate(1);
  stopper_join(&s);
  ck_assert(crew_future_done(slow));
  ck_assert(crew_future_done(quick));
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.workers, 0);
  ck_assert_uint_eq(st.running, 0);
  ck_assert_uint_eq(st.completed, 2);
  crew_pool_destroy(pool);
  crew_future_release(slow);
  crew_future_release(quick);
  signal_fini(&p.done);
  shared_teardown();
}
END_TEST

static void destroy_waits_cb(crew_future *f, void *arg)
{
  (void)f;
  struct cb_probe *p = arg;
  p->rc = crew_pool_shutdown(p->pool, CREW_CANCEL);
  signal_post(&p->done);
}

START_TEST(destroy_after_a_shutdown_from_a_callback_resolves_everything)
{
  shared_setup();
  crew_pool *pool = pool_of(_i, 2, 0);
  crew_future *slow = submit_gated(pool);
  take();
  crew_future *quick = submit_gated_at(pool, 1);
  take();
  /* When quick ends, its worker takes `filler` (which parks at gate 0) or
   * finds it cancelled already: `queued`, behind it, waits either way. */
  crew_future *filler = submit_gated(pool);
  crew_future *queued = submit_count(pool, 7);
  struct cb_probe p = {.pool = pool, .rc = 1};
  signal_init(&p.done);
  ck_assert_int_eq(crew_future_on_done(quick, destroy_waits_cb, &p), 0);
  open_gate_n(1, 1);
  signal_wait(&p.done, 1);
  ck_assert_int_eq(p.rc, CREW_EBUSY);
  ck_assert_int_eq(crew_future_wait_timed(queued, TAKE_LIMIT), CREW_ECANCELED);
  ck_assert(!crew_future_done(slow));
  open_gate(2);            /* slow, and filler if it runs */
  crew_pool_destroy(pool); /* returns only once everything resolved */
  ck_assert_int_eq(crew_future_status(slow), 0);
  ck_assert_int_eq(crew_future_status(quick), 0);
  ck_assert(crew_future_done(filler));
  crew_future_release(slow);
  crew_future_release(quick);
  crew_future_release(filler);
  crew_future_release(queued);
  signal_fini(&p.done);
  shared_teardown();
}
END_TEST

/* ============================================================== suite */

int main(void)
{
  Suite *s = suite_create("shutdown");
  TCase *tc = tcase_create("cancel");
  harness_tcase(tc, 30);
  tcase_add_loop_test(tc, cancel_resolves_every_queued_task_while_one_runs, 0,
                      2);
  tcase_add_loop_test(tc, cancel_takes_the_map_items_no_runner_has_claimed, 0,
                      2);
  tcase_add_loop_test(tc, a_map_whose_runners_wait_in_the_queue_returns_at_once,
                      0, 2);
  tcase_add_test(
      tc, a_cancel_begun_inside_a_task_cancels_at_once_and_destroy_waits);
  tcase_add_test(tc,
                 a_cancel_inside_a_task_resolves_the_queued_before_it_returns);
  suite_add_tcase(s, tc);

  tc = tcase_create("callbacks");
  harness_tcase(tc, 30);
  tcase_add_loop_test(tc, a_callback_may_wait_on_another_future_of_its_pool, 0,
                      2);
  tcase_add_loop_test(tc, a_callback_may_submit_to_a_full_pool, 0, 2);
  tcase_add_loop_test(
      tc, a_callback_may_shut_its_pool_down_and_shutdown_still_waits, 0, 2);
  tcase_add_loop_test(
      tc, destroy_after_a_shutdown_from_a_callback_resolves_everything, 0, 2);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
