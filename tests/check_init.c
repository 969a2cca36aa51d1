/*
 * check_init.c - a worker's init: crew_pool_create waits for every init,
 * fails with CREW_EINIT (leaving nothing behind) when one fails, and, in
 * process mode, retries a replacement whose init fails until the pool has
 * no worker left and INIT_FAILURES_MAX (5) in a row failed: then the pool
 * is broken and says so, and no future stays pending.
 *
 * Tests run in both modes where both apply (the loop index is the mode).
 * init runs in the workers, so it talks to the test through what exists
 * before the pool and is shared with every process forked after it: a
 * CREW_SHARED gate and box of posts, and MAP_SHARED counters that also say
 * how the next inits must behave.
 */
#include "harness.h"
#include "testutil.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* ======================================================= shared state */

enum init_way { INIT_OK, INIT_RETURNS_1, INIT_ABORTS, INIT_EXITS };

struct shm {
  _Atomic uint64_t calls;    /* inits begun, in any process */
  _Atomic uint64_t finished; /* inits that returned 0 */
  _Atomic uint64_t ran;      /* task bodies */
  _Atomic int fail_at;       /* the init call (0, 1, ...) that fails, or -1 */
  _Atomic int fail_next;     /* so many inits from now on fail (-1: all) */
  _Atomic int way;           /* enum init_way, for those that fail */
  _Atomic int gated;         /* inits wait at the gate first */
};

static struct shm *shm;
static crew_queue *gate_q, *box_q;

#define TAKE_LIMIT (10000 * MS)

static void shared_setup(void)
{
  shm = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ck_assert(shm != MAP_FAILED);
  *shm = (struct shm){.fail_at = -1};
  ck_assert_int_eq(crew_queue_create(&gate_q, 1024, 1, CREW_SHARED), 0);
  ck_assert_int_eq(
      crew_queue_create(&box_q, 1024, sizeof(uint64_t), CREW_SHARED), 0);
}

static void shared_teardown(void)
{
  crew_queue_destroy(box_q);
  crew_queue_destroy(gate_q);
  munmap(shm, sizeof *shm);
}

static void open_gate(size_t n)
{
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(crew_queue_push(gate_q, "t"), 0);
}

static uint64_t take(void)
{
  uint64_t v = 0;
  ck_assert_msg(crew_queue_pop_timed(box_q, &v, TAKE_LIMIT) == 0,
                "waited 10 s for a post");
  return v;
}

/* Whether this init call must fail. */
static bool must_fail(uint64_t call)
{
  if (atomic_load(&shm->fail_at) == (int)call)
    return true;
  int next = atomic_load(&shm->fail_next);
  while (next != 0) {
    if (next < 0)
      return true;
    if (atomic_compare_exchange_weak(&shm->fail_next, &next, next - 1))
      return true;
  }
  return false;
}

/* The init of every pool here: as shm says. */
static int the_init(void *arg)
{
  struct shm *s = arg;
  uint64_t call = atomic_fetch_add(&s->calls, 1);
  if (atomic_load(&s->gated)) {
    uint64_t one = 1;
    char token;
    crew_queue_push(box_q, &one);
    crew_queue_pop(gate_q, &token);
  }
  if (must_fail(call)) {
    switch (atomic_load(&s->way)) {
    case INIT_ABORTS:
      abort();
    case INIT_EXITS:
      _exit(0);
    default:
      return 1;
    }
  }
  atomic_fetch_add(&s->finished, 1);
  return 0;
}

/* Counts its run; returns its int input. */
static int count_task(const void *in, void *out)
{
  (void)out;
  atomic_fetch_add(&shm->ran, 1);
  return in != NULL ? *(const int *)in : 0;
}

/* Posts, waits at the gate, then dies (abort). */
static int crash_after_gate(const void *in, void *out)
{
  (void)in;
  (void)out;
  uint64_t one = 1;
  char token;
  crew_queue_push(box_q, &one);
  crew_queue_pop(gate_q, &token);
  abort();
}

static crew_config cfg_of(int mode, size_t workers)
{
  crew_config cfg = pool_config(mode, workers);
  cfg.init = the_init;
  cfg.init_arg = shm;
  return cfg;
}

/* ====================================================== at create */

struct creator {
  crew_config cfg;
  crew_pool *pool;
  int rc;
  signal_box done;
  pthread_t thread;
};

static void *creator_main(void *arg)
{
  struct creator *c = arg;
  c->rc = crew_pool_create(&c->pool, &c->cfg);
  signal_post(&c->done);
  return NULL;
}

START_TEST(create_returns_only_once_every_init_has_returned)
{
  enum { W = 3 };
  shared_setup();
  atomic_store(&shm->gated, 1);
  struct creator c = {.cfg = cfg_of(_i, W), .rc = 1};
  signal_init(&c.done);
  ck_assert_int_eq(pthread_create(&c.thread, NULL, creator_main, &c), 0);
  for (int i = 0; i < W; i++)
    take(); /* every worker is in its init */
  open_gate(W - 1);
  ck_assert_int_eq(signal_try(&c.done, 50 * MS), CREW_ETIMEDOUT);
  open_gate(1);
  signal_wait(&c.done, 1);
  ck_assert_int_eq(pthread_join(c.thread, NULL), 0);
  ck_assert_int_eq(c.rc, 0);
  ck_assert_uint_eq(atomic_load(&shm->finished), W); /* no wait needed */
  crew_stats st = pool_stats(c.pool);
  ck_assert_uint_eq(st.workers, W);
  ck_assert_uint_eq(st.init_failed, 0);
  ck_assert_int_eq(st.broken, 0);
  crew_pool_destroy(c.pool);
  signal_fini(&c.done);
  shared_teardown();
}
END_TEST

/* Loop index: mode * 4 + way of failing (threads can only return 1). */
static void fail_create(int mode, int way, int fail_at)
{
  shared_setup();
  atomic_store(&shm->fail_at, fail_at);
  atomic_store(&shm->way, way);
  struct harness_resources before, after;
  harness_count(&before);
  crew_config cfg = cfg_of(mode, 3);
  char sentinel;
  crew_pool *pool = (crew_pool *)(void *)&sentinel;
  ck_assert_int_eq(crew_pool_create(&pool, &cfg), CREW_EINIT);
  ck_assert_ptr_eq(pool, (crew_pool *)(void *)&sentinel);
  harness_count(&after);
  char msg[256];
  ck_assert_msg(harness_compare(&before, &after, msg, sizeof msg) == 0,
                "left behind: %s", msg);
  ck_assert_uint_eq(atomic_load(&shm->ran), 0);
  shared_teardown();
}

START_TEST(a_failing_init_fails_create_and_leaves_nothing)
{
  /* The first and the last of three workers, in turn. */
  fail_create(CREW_THREADS, INIT_RETURNS_1, 0);
  fail_create(CREW_THREADS, INIT_RETURNS_1, 2);
  fail_create(CREW_PROCESSES, INIT_RETURNS_1, 0);
  fail_create(CREW_PROCESSES, INIT_RETURNS_1, 2);
}
END_TEST

START_TEST(a_worker_dying_in_its_init_fails_create)
{
  fail_create(CREW_PROCESSES, INIT_ABORTS, 1);
  fail_create(CREW_PROCESSES, INIT_EXITS, 1);
}
END_TEST

START_TEST(a_failed_create_runs_init_in_no_task)
{
  /* A pool created after a failed one starts afresh. */
  shared_setup();
  atomic_store(&shm->fail_at, 0);
  crew_config cfg = cfg_of(_i, 2);
  crew_pool *pool = NULL;
  ck_assert_int_eq(crew_pool_create(&pool, &cfg), CREW_EINIT);
  atomic_store(&shm->fail_at, -1);
  ck_assert_int_eq(crew_pool_create(&pool, &cfg), 0);
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, count_task, NULL, 0, 0, &f), 0);
  ck_assert_int_eq(crew_future_wait(f), 0);
  crew_future_release(f);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* ================================================= replacements (processes) */

START_TEST(a_replacement_whose_init_fails_is_retried_and_nothing_is_lost)
{
  enum { QUEUED = 3 };
  shared_setup();
  crew_config cfg = cfg_of(CREW_PROCESSES, 1);
  crew_pool *pool = pool_create(&cfg);
  crew_future *crash = NULL, *fs[QUEUED];
  ck_assert_int_eq(crew_submit(pool, crash_after_gate, NULL, 0, 0, &crash), 0);
  take();
  for (int i = 0; i < QUEUED; i++)
    ck_assert_int_eq(crew_submit(pool, count_task, NULL, 0, 0, &fs[i]), 0);
  atomic_store(&shm->way, INIT_RETURNS_1);
  atomic_store(&shm->fail_next, 4); /* one fewer than breaks the pool */
  open_gate(1);
  ck_assert_int_eq(crew_future_wait(crash), CREW_ECRASHED);
  ck_assert_int_eq(crew_wait_all(fs, QUEUED, TAKE_LIMIT), 0);
  for (int i = 0; i < QUEUED; i++) {
    ck_assert_int_eq(crew_future_status(fs[i]), 0);
    crew_future_release(fs[i]);
  }
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.init_failed, 4);
  ck_assert_int_eq(st.broken, 0);
  ck_assert_uint_eq(st.completed, QUEUED);
  ck_assert_uint_eq(st.crashed, 1);
  ck_assert_uint_eq(st.restarted, 5);
  crew_future_release(crash);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

static int map_item(const void *in, void *out)
{
  (void)in;
  (void)out;
  return 0;
}

START_TEST(a_pool_whose_replacements_all_fail_breaks)
{
  enum { QUEUED = 3 };
  shared_setup();
  crew_config cfg = cfg_of(CREW_PROCESSES, 1);
  cfg.name = "brk";
  crew_pool *pool = pool_create(&cfg);
  crew_future *crash = NULL, *fs[QUEUED];
  ck_assert_int_eq(crew_submit(pool, crash_after_gate, NULL, 0, 0, &crash), 0);
  take();
  for (int i = 0; i < QUEUED; i++)
    ck_assert_int_eq(crew_submit(pool, count_task, NULL, 0, 0, &fs[i]), 0);
  atomic_store(&shm->way, _i == 0 ? INIT_RETURNS_1 : INIT_ABORTS);
  atomic_store(&shm->fail_next, -1); /* every init from now on fails */
  open_gate(1);
  ck_assert_int_eq(crew_future_wait(crash), CREW_ECRASHED);
  ck_assert_int_eq(crew_wait_all(fs, QUEUED, TAKE_LIMIT), 0);
  for (int i = 0; i < QUEUED; i++) {
    ck_assert_int_eq(crew_future_status(fs[i]), CREW_EINIT);
    crew_future_release(fs[i]);
  }
  ck_assert_uint_eq(atomic_load(&shm->ran), 0);

  crew_future *late = NULL;
  ck_assert_int_eq(crew_submit(pool, count_task, NULL, 0, 0, &late),
                   CREW_EINIT);
  ck_assert_ptr_null(late);
  int in[4] = {0}, out[4];
  ck_assert_int_eq(
      crew_map(pool, map_item, in, sizeof in[0], out, sizeof out[0], 4),
      CREW_EINIT);
  crew_stats st = pool_stats(pool);
  ck_assert_int_eq(st.broken, CREW_EINIT);
  ck_assert_uint_eq(st.init_failed, 5);
  ck_assert_uint_eq(st.cancelled, QUEUED);
  ck_assert_uint_eq(st.crashed, 1);
  ck_assert_uint_eq(st.queued, 0);
  ck_assert_uint_eq(st.running, 0);
  assert_pool_settled(pool);

  uint64_t t0 = now_ns();
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  crew_pool_destroy(pool);
  uint64_t took = now_ns() - t0;
  ck_assert_msg(took < 1000 * MS, "shutdown and destroy took %.0f ms",
                (double)took / (double)MS);
  crew_future_release(crash);
  shared_teardown();
}
END_TEST

START_TEST(destroy_of_a_pool_with_failing_replacements_returns_promptly)
{
  /* No shutdown first: destroy's drain must not wait for workers that can
   * never start. */
  shared_setup();
  crew_config cfg = cfg_of(CREW_PROCESSES, 1);
  crew_pool *pool = pool_create(&cfg);
  crew_future *crash = NULL, *queued = NULL;
  ck_assert_int_eq(crew_submit(pool, crash_after_gate, NULL, 0, 0, &crash), 0);
  take();
  ck_assert_int_eq(crew_submit(pool, count_task, NULL, 0, 0, &queued), 0);
  atomic_store(&shm->way, INIT_EXITS);
  atomic_store(&shm->fail_next, -1);
  open_gate(1);
  ck_assert_int_eq(crew_future_wait(crash), CREW_ECRASHED);
  uint64_t t0 = now_ns();
  crew_pool_destroy(pool); /* at most the breaking, then at once */
  uint64_t took = now_ns() - t0;
  ck_assert_msg(took < 2000 * MS, "destroy took %.0f ms",
                (double)took / (double)MS);
  ck_assert_int_eq(crew_future_status(queued), CREW_EINIT);
  crew_future_release(queued);
  crew_future_release(crash);
  shared_teardown();
}
END_TEST

/* ============================================================== suite */

int main(void)
{
  Suite *s = suite_create("init");
  TCase *tc = tcase_create("create");
  harness_tcase(tc, 30);
  tcase_add_loop_test(tc, create_returns_only_once_every_init_has_returned, 0,
                      2);
  tcase_add_test(tc, a_failing_init_fails_create_and_leaves_nothing);
  tcase_add_test(tc, a_worker_dying_in_its_init_fails_create);
  tcase_add_loop_test(tc, a_failed_create_runs_init_in_no_task, 0, 2);
  suite_add_tcase(s, tc);

  tc = tcase_create("replacements");
  harness_tcase(tc, 30);
  tcase_add_test(tc,
                 a_replacement_whose_init_fails_is_retried_and_nothing_is_lost);
  tcase_add_loop_test(tc, a_pool_whose_replacements_all_fail_breaks, 0, 2);
  tcase_add_test(tc,
                 destroy_of_a_pool_with_failing_replacements_returns_promptly);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
