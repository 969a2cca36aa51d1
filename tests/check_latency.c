/*
 * check_latency.c - the pool's latency statistics (crew_pool_latency,
 * crew_pool_latency_reset) and task hooks (crew_config.on_task_start /
 * on_task_finish), in thread and process mode.
 *
 * Latency: the errors; percentiles bracketed against the exact values the
 * hooks see (each percentile is the top of its bucket, at most 1/8 above
 * the value of its nearest rank, never above the exact max), and against
 * what the test knows independently (sleeps, a measured wait behind a
 * gate); reset; map items not counted; process mode.
 *
 * Hooks: called once per task, start then finish, on the thread (or inside
 * the worker process) that runs it, also for a task a waiting worker runs
 * for itself.
 *
 * Process mode: tasks reach the test only through memory made before the
 * pool (CREW_SHARED queues for gates and signals, MAP_SHARED records for
 * hooks and counters). Tasks never use Check's assertions.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "jobs.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif

/* ====================================================== the hooks */

static int state_of(const struct hook_rec *r)
{
  return atomic_load(&((struct hook_rec *)r)->state);
}

static void hook_start(const crew_task_info *info, void *arg)
{
  struct hooks *h = arg;
  uint64_t s = atomic_fetch_add(&h->starts, 1);
  if (s >= HOOK_MAX || tls_seq != -1) {
    atomic_fetch_add(&h->anomalies, 1);
    return;
  }
  struct hook_rec *r = &h->rec[s];
  r->start = *info;
  r->start_thread = pthread_self();
  r->start_pid = getpid();
  r->start_arg = arg;
  atomic_store(&r->state, 1);
  tls_seq = (int64_t)s;
}

static void hook_finish(const crew_task_info *info, void *arg)
{
  struct hooks *h = arg;
  atomic_fetch_add(&h->finishes, 1);
  int64_t s = tls_seq;
  tls_seq = -1;
  if (s < 0) {
    atomic_fetch_add(&h->anomalies, 1);
    return;
  }
  struct hook_rec *r = &h->rec[s];
  int one = 1;
  if (!atomic_compare_exchange_strong(&r->state, &one, 2))
    atomic_fetch_add(&h->anomalies, 1);
  r->finish = *info;
  r->finish_thread = pthread_self();
  r->finish_pid = getpid();
  r->finish_arg = arg;
}

static struct hooks *hooks_make(bool shared)
{
  struct hooks *h =
      shared ? shared_map(sizeof *h) : calloc(1, sizeof(struct hooks));
  ck_assert_ptr_nonnull(h);
  hooks_g = h;
  return h;
}

static void hooks_free(struct hooks *h, bool shared)
{
  hooks_g = NULL;
  if (shared)
    munmap(h, sizeof *h);
  else
    free(h);
}

/* Like triple_fn, noting itself for the hooks; returns v % 4. */
static int hooked_fn(const void *in, void *out)
{
  uint64_t v;
  memcpy(&v, in, sizeof v);
  int status = (int)(v % 4);
  note_task(v, status);
  if (out != NULL) {
    uint64_t r = v * 3;
    memcpy(out, &r, sizeof r);
  }
  return status;
}

/* A map item: out = in + 1; counts itself for the hooks. */
static int map_item_fn(const void *in, void *out)
{
  uint64_t v;
  memcpy(&v, in, sizeof v);
  v++;
  memcpy(out, &v, sizeof v);
  if (hooks_g != NULL) {
    atomic_fetch_add(&hooks_g->map_items, 1);
    if (tls_seq != -1)
      atomic_fetch_add(&hooks_g->map_hooked, 1);
  }
  return 0;
}

/* ======================================================= latency */

static crew_config latency_cfg(int mode, size_t workers, struct hooks *h)
{
  crew_config cfg = pool_config(mode, workers);
  cfg.queue_capacity = 64;
  cfg.latency_stats = true;
  if (h != NULL) {
    cfg.on_task_start = hook_start;
    cfg.on_task_finish = hook_finish;
    cfg.hook_arg = h;
  }
  return cfg;
}

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void check_monotonic(const crew_latency *l)
{
  quiet_assert_uint_le(l->p50_ns, l->p90_ns);
  quiet_assert_uint_le(l->p90_ns, l->p99_ns);
  quiet_assert_uint_le(l->p99_ns, l->max_ns);
}

static void check_zero(const crew_latency *l)
{
  ck_assert_uint_eq(l->count, 0);
  ck_assert_uint_eq(l->p50_ns, 0);
  ck_assert_uint_eq(l->p90_ns, 0);
  ck_assert_uint_eq(l->p99_ns, 0);
  ck_assert_uint_eq(l->max_ns, 0);
}

/*
 * l against the exact values: count, max exact; each percentile p is at
 * least the value of nearest rank ceil(p n / 100), at most 1/8 above it,
 * and never above max.
 */
static void check_distribution(const crew_latency *l, uint64_t *vals, size_t n,
                               const char *what)
{
  qsort(vals, n, sizeof *vals, cmp_u64);
  ck_assert_msg(l->count == n, "%s: count %ju, expected %zu", what,
                (uintmax_t)l->count, n);
  ck_assert_msg(l->max_ns == vals[n - 1], "%s: max %ju, expected %ju", what,
                (uintmax_t)l->max_ns, (uintmax_t)vals[n - 1]);
  const unsigned pct[3] = {50, 90, 99};
  const uint64_t got[3] = {l->p50_ns, l->p90_ns, l->p99_ns};
  for (size_t k = 0; k < 3; k++) {
    size_t rank = (n * pct[k] + 99) / 100;
    uint64_t v = vals[rank - 1];
    ck_assert_msg(got[k] >= v && got[k] * 8 <= v * 9,
                  "%s: p%u %ju, the value of rank %zu of %zu is %ju", what,
                  pct[k], (uintmax_t)got[k], rank, n, (uintmax_t)v);
    ck_assert_uint_le(got[k], l->max_ns);
  }
  check_monotonic(l);
}

START_TEST(latency_errors)
{
  crew_latency q, r;
  ck_assert_int_eq(crew_pool_latency(NULL, &q, &r), CREW_EINVAL);
  ck_assert_int_eq(crew_pool_latency(NULL, NULL, NULL), CREW_EINVAL);
  ck_assert_int_eq(crew_pool_latency_reset(NULL), CREW_EINVAL);
  crew_pool *off = make_pool(1, 8);
  ck_assert_int_eq(crew_pool_latency(off, &q, &r), CREW_EINVAL);
  ck_assert_int_eq(crew_pool_latency(off, NULL, NULL), CREW_EINVAL);
  ck_assert_int_eq(crew_pool_latency_reset(off), CREW_EINVAL);
  crew_pool_destroy(off);

  crew_config cfg = latency_cfg(CREW_THREADS, 1, NULL);
  crew_pool *on = pool_create(&cfg);
  memset(&q, 0xff, sizeof q);
  memset(&r, 0xff, sizeof r);
  ck_assert_int_eq(crew_pool_latency(on, &q, &r), 0);
  check_zero(&q);
  check_zero(&r);
  ck_assert_int_eq(crew_pool_latency(on, NULL, NULL), 0);
  memset(&q, 0xff, sizeof q);
  ck_assert_int_eq(crew_pool_latency(on, &q, NULL), 0);
  check_zero(&q);
  memset(&r, 0xff, sizeof r);
  ck_assert_int_eq(crew_pool_latency(on, NULL, &r), 0);
  check_zero(&r);
  ck_assert_int_eq(crew_pool_latency_reset(on), 0);

  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) { /* no Check asserts here: the exit status says */
    int bad = 0;
    if (crew_pool_latency(on, &q, &r) != CREW_EINVAL)
      bad |= 1;
    if (crew_pool_latency_reset(on) != CREW_EINVAL)
      bad |= 2;
    _exit(bad);
  }
  int wstatus = 0;
  ck_assert_int_eq(waitpid(pid, &wstatus, 0), pid);
  ck_assert(WIFEXITED(wstatus));
  ck_assert_int_eq(WEXITSTATUS(wstatus), 0);
  ck_assert_int_eq(crew_pool_latency(on, &q, &r), 0);
  crew_pool_destroy(on);
}
END_TEST

/*
 * One worker held by a gate task G while 20 tasks queue behind it: 16 that
 * sleep 2 ms and 4 that sleep 20 ms. The hooks see the exact times the
 * histograms are fed; the test knows independently that runs are at least
 * the sleeps and that the first queued task waited at least from its
 * submit to the gate's opening.
 */
static void latency_brackets(int mode)
{
  const size_t nq = 20, total = nq + 1;
  bool shared = mode == CREW_PROCESSES;
  struct hooks *h = hooks_make(shared);
  gate g;
  signal_box started;
  mode_gate_init(&g, shared);
  mode_signal_init(&started, shared);
  crew_config cfg = latency_cfg(mode, 1, h);
  crew_pool *pool = pool_create(&cfg);

  crew_future *gf = submit_job(
      pool, (struct job){.gate = g.tokens, .started = started.posts, .v = 1000},
      0);
  signal_wait(&started, 1);
  crew_future *f[20];
  uint64_t first_submitted = 0;
  for (size_t i = 0; i < nq; i++) {
    uint64_t sleep = i % 5 == 4 ? 20 * MS : 2 * MS;
    f[i] = submit_job(pool, (struct job){.v = i, .sleep_ns = sleep}, 8);
    if (i == 0)
      first_submitted = now_ns();
  }
  /* negative check: nothing behind the gate runs while it is closed */
  ck_assert_int_eq(crew_future_wait_timed(f[0], 20 * MS), CREW_ETIMEDOUT);
  uint64_t opened = now_ns();
  gate_open(&g, 1);
  ck_assert_int_eq(crew_future_wait(gf), 0);
  for (size_t i = 0; i < nq; i++)
    ck_assert_int_eq(crew_future_wait(f[i]), 0);

  crew_latency q, r;
  ck_assert_int_eq(crew_pool_latency(pool, &q, &r), 0);
  ck_assert_uint_eq(load(&h->finishes), total);
  ck_assert_uint_eq(load(&h->anomalies), 0);
  uint64_t waits[21], runs[21];
  for (size_t s = 0; s < total; s++) {
    const crew_task_info *fi = &h->rec[s].finish;
    ck_assert_int_eq(state_of(&h->rec[s]), 2);
    ck_assert_uint_le(fi->submitted_ns, fi->started_ns);
    ck_assert_uint_le(fi->started_ns, fi->finished_ns);
    waits[s] = fi->started_ns - fi->submitted_ns;
    runs[s] = fi->finished_ns - fi->started_ns;
  }
  check_distribution(&q, waits, total, "queue wait");
  check_distribution(&r, runs, total, "run");

  /* what the test knows without the hooks */
  ck_assert_uint_ge(q.max_ns, opened - first_submitted);
  ck_assert_uint_ge(opened - first_submitted, 20 * MS);
  ck_assert_uint_ge(r.max_ns, 20 * MS);
  ck_assert_uint_ge(r.p50_ns, 2 * MS);
  ck_assert_uint_ge(r.p90_ns, 20 * MS); /* ranks 17..21 ran 20 ms or more */

  for (size_t i = 0; i < nq; i++)
    crew_future_release(f[i]);
  crew_future_release(gf);
  crew_pool_destroy(pool);
  signal_fini(&started);
  gate_fini(&g);
  hooks_free(h, shared);
}

START_TEST(latency_brackets_threads)
{
  latency_brackets(CREW_THREADS);
}
END_TEST

START_TEST(latency_brackets_processes)
{
  latency_brackets(CREW_PROCESSES);
}
END_TEST

START_TEST(latency_reset_starts_afresh)
{
  struct hooks *h = hooks_make(false);
  crew_config cfg = latency_cfg(CREW_THREADS, 2, h);
  crew_pool *pool = pool_create(&cfg);
  crew_future *f[6];
  for (size_t i = 0; i < 4; i++)
    f[i] = submit_job(pool, (struct job){.v = i, .sleep_ns = 10 * MS}, 0);
  for (size_t i = 0; i < 4; i++) {
    ck_assert_int_eq(crew_future_wait(f[i]), 0);
    crew_future_release(f[i]);
  }
  crew_latency q, r;
  ck_assert_int_eq(crew_pool_latency(pool, &q, &r), 0);
  ck_assert_uint_eq(q.count, 4);
  ck_assert_uint_eq(r.count, 4);
  ck_assert_uint_ge(r.max_ns, 10 * MS);

  ck_assert_int_eq(crew_pool_latency_reset(pool), 0);
  ck_assert_int_eq(crew_pool_latency(pool, &q, &r), 0);
  check_zero(&q);
  check_zero(&r);
  ck_assert_int_eq(crew_pool_latency_reset(pool), 0); /* twice: still 0 */
  ck_assert_int_eq(crew_pool_latency(pool, &q, &r), 0);
  check_zero(&q);
  check_zero(&r);

  for (size_t i = 0; i < 6; i++)
    f[i] = submit_job(pool, (struct job){.v = 100 + i}, 0);
  for (size_t i = 0; i < 6; i++) {
    ck_assert_int_eq(crew_future_wait(f[i]), 0);
    crew_future_release(f[i]);
  }
  ck_assert_int_eq(crew_pool_latency(pool, &q, &r), 0);
  ck_assert_uint_eq(load(&h->finishes), 10);
  uint64_t waits[6], runs[6];
  size_t k = 0;
  for (size_t s = 0; s < 10; s++) {
    if (h->rec[s].task < 100)
      continue;
    const crew_task_info *fi = &h->rec[s].finish;
    waits[k] = fi->started_ns - fi->submitted_ns;
    runs[k] = fi->finished_ns - fi->started_ns;
    k++;
  }
  ck_assert_uint_eq(k, 6);
  /* only the six after the reset: their own max, not the 10 ms ones */
  check_distribution(&q, waits, 6, "queue wait after reset");
  check_distribution(&r, runs, 6, "run after reset");
  crew_pool_destroy(pool);
  hooks_free(h, false);
}
END_TEST

struct ff_submitter {
  crew_pool *pool;
  size_t count;
  _Atomic bool done;
  pthread_t thread;
};

static void *submit_ff(void *arg)
{
  struct ff_submitter *s = arg;
  for (size_t i = 0; i < s->count; i++) {
    uint64_t v = i;
    quiet_assert_int_eq(crew_submit(s->pool, triple_fn, &v, sizeof v, 0, NULL),
                        0);
  }
  atomic_store(&s->done, true);
  return NULL;
}

START_TEST(latency_reset_while_tasks_run)
{
  const size_t count = scaled(20000);
  crew_config cfg = latency_cfg(CREW_THREADS, 4, NULL);
  crew_pool *pool = pool_create(&cfg);
  struct ff_submitter s = {.pool = pool, .count = count};
  atomic_init(&s.done, false);
  ck_assert_int_eq(pthread_create(&s.thread, NULL, submit_ff, &s), 0);
  size_t resets = 0;
  crew_latency q, r;
  do {
    quiet_assert_int_eq(crew_pool_latency_reset(pool), 0);
    resets++;
    quiet_assert_int_eq(crew_pool_latency(pool, &q, &r), 0);
    quiet_assert_uint_le(q.count, count);
    quiet_assert_uint_le(r.count, count);
    check_monotonic(&q);
    check_monotonic(&r);
  } while (!atomic_load(&s.done) || resets < 10);
  ck_assert_int_eq(pthread_join(s.thread, NULL), 0);

  /* wait until every task has run, on the pool's own counters */
  uint64_t deadline = now_ns() + WAIT_LIMIT;
  crew_stats st;
  for (;;) {
    ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
    if (st.completed == count)
      break;
    ck_assert_msg(now_ns() < deadline, "%ju of %zu tasks ran in 10 s",
                  (uintmax_t)st.completed, count);
    sched_yield();
  }
  ck_assert_int_eq(crew_pool_latency(pool, &q, &r), 0);
  ck_assert_uint_le(q.count, count);
  ck_assert_uint_le(r.count, count);
  check_monotonic(&q);
  check_monotonic(&r);

  /* idle now: a reset empties, and later tasks count exactly */
  ck_assert_int_eq(crew_pool_latency_reset(pool), 0);
  ck_assert_int_eq(crew_pool_latency(pool, &q, &r), 0);
  check_zero(&q);
  check_zero(&r);
  crew_future *f[10];
  for (size_t i = 0; i < 10; i++)
    f[i] = submit_job(pool, (struct job){.v = i}, 0);
  for (size_t i = 0; i < 10; i++) {
    ck_assert_int_eq(crew_future_wait(f[i]), 0);
    crew_future_release(f[i]);
  }
  ck_assert_int_eq(crew_pool_latency(pool, &q, &r), 0);
  ck_assert_uint_eq(q.count, 10);
  ck_assert_uint_eq(r.count, 10);
  ck_assert_uint_gt(r.max_ns, 0);
  check_monotonic(&q);
  check_monotonic(&r);
  crew_pool_destroy(pool);
}
END_TEST

/*
 * One worker, so tasks run in submit order: once the last future has
 * resolved, every earlier task has been measured (and hooked).
 */
static void latency_counts_tasks_not_items(int mode)
{
  bool shared = mode == CREW_PROCESSES;
  struct hooks *h = hooks_make(shared);
  crew_config cfg = latency_cfg(mode, 1, h);
  crew_pool *pool = pool_create(&cfg);
  uint64_t in[100], out[100];
  for (size_t i = 0; i < 100; i++)
    in[i] = i;
  ck_assert_int_eq(
      crew_map(pool, map_item_fn, in, sizeof in[0], out, sizeof out[0], 100),
      0);
  for (size_t i = 0; i < 100; i++)
    ck_assert_uint_eq(out[i], i + 1);
  crew_latency q, r;
  ck_assert_int_eq(crew_pool_latency(pool, &q, &r), 0);
  check_zero(&q);
  check_zero(&r);
  ck_assert_uint_eq(load(&h->map_items), 100);
  ck_assert_uint_eq(load(&h->map_hooked), 0);
  ck_assert_uint_eq(load(&h->starts), 0);
  ck_assert_uint_eq(load(&h->finishes), 0);

  for (uint64_t v = 0; v < 3; v++) /* fire and forget, inline */
    ck_assert_int_eq(crew_submit(pool, hooked_fn, &v, sizeof v, 0, NULL), 0);
  for (uint64_t v = 3; v < 5; v++) /* fire and forget with output */
    ck_assert_int_eq(crew_submit(pool, hooked_fn, &v, sizeof v, 8, NULL), 0);
  crew_future *f[3];
  for (uint64_t v = 5; v < 8; v++)
    ck_assert_int_eq(crew_submit(pool, hooked_fn, &v, sizeof v, 8, &f[v - 5]),
                     0);
  for (size_t i = 0; i < 3; i++) {
    ck_assert_int_eq(crew_future_wait(f[i]), (int)((5 + i) % 4));
    crew_future_release(f[i]);
  }
  ck_assert_int_eq(crew_pool_latency(pool, &q, &r), 0);
  ck_assert_uint_eq(q.count, 8);
  ck_assert_uint_eq(r.count, 8);
  ck_assert_uint_eq(load(&h->starts), 8);
  ck_assert_uint_eq(load(&h->finishes), 8);
  ck_assert_uint_eq(load(&h->unhooked), 0);
  crew_stats st;
  ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
  ck_assert_uint_eq(st.submitted, 108);
  crew_pool_destroy(pool);
  hooks_free(h, shared);
}

START_TEST(latency_counts_tasks_not_map_items_threads)
{
  latency_counts_tasks_not_items(CREW_THREADS);
}
END_TEST

START_TEST(latency_counts_tasks_not_map_items_processes)
{
  latency_counts_tasks_not_items(CREW_PROCESSES);
}
END_TEST

/* ============================================================= hooks */

/*
 * 150 tasks of three kinds (futures, inline fire-and-forget, fire-and-forget
 * with output), returning v % 4, after a map whose items must not be
 * hooked. Checked after the pool is destroyed (every hook has returned).
 */
static void hooks_once_per_task(int mode)
{
  const size_t workers = 3, n = 150, items = 50;
  bool shared = mode == CREW_PROCESSES;
  struct hooks *h = hooks_make(shared);
  crew_config cfg = pool_config(mode, workers);
  cfg.queue_capacity = 32;
  cfg.on_task_start = hook_start;
  cfg.on_task_finish = hook_finish;
  cfg.hook_arg = h;
  crew_pool *pool = pool_create(&cfg);

  uint64_t in[50], out[50];
  for (size_t i = 0; i < items; i++)
    in[i] = i;
  ck_assert_int_eq(
      crew_map(pool, map_item_fn, in, sizeof in[0], out, sizeof out[0], items),
      0);
  ck_assert_uint_eq(load(&h->map_items), items);
  ck_assert_uint_eq(load(&h->map_hooked), 0);
  ck_assert_uint_eq(load(&h->starts), 0);
  ck_assert_uint_eq(load(&h->finishes), 0);

  uint64_t before = now_ns();
  crew_future *f[150] = {0};
  for (uint64_t v = 0; v < n; v++) {
    size_t out_size = v % 3 == 1 ? 0 : 8;
    crew_future **fp = v % 3 == 0 ? &f[v] : NULL;
    ck_assert_int_eq(crew_submit(pool, hooked_fn, &v, sizeof v, out_size, fp),
                     0);
  }
  for (size_t v = 0; v < n; v += 3) {
    uint64_t r = 0;
    ck_assert_int_eq(crew_future_get(f[v], &r, sizeof r), (int)(v % 4));
    ck_assert_uint_eq(r, 3 * v);
    crew_future_release(f[v]);
  }
  crew_pool_destroy(pool);
  uint64_t after = now_ns();

  ck_assert_uint_eq(load(&h->starts), n);
  ck_assert_uint_eq(load(&h->finishes), n);
  ck_assert_uint_eq(load(&h->anomalies), 0);
  ck_assert_uint_eq(load(&h->unhooked), 0);
  ck_assert_uint_eq(load(&h->map_items), items);
  unsigned char seen[150] = {0};
  pthread_t worker_thread[3];
  pid_t worker_pid[3] = {0};
  bool worker_known[3] = {false, false, false};
  for (size_t s = 0; s < n; s++) {
    const struct hook_rec *rec = &h->rec[s];
    ck_assert_int_eq(state_of(rec), 2);
    ck_assert_int_eq(rec->task_seen, 1);
    ck_assert_uint_lt(rec->task, n);
    ck_assert_msg(seen[rec->task] == 0, "task %ju hooked twice",
                  (uintmax_t)rec->task);
    seen[rec->task] = 1;
    /* the same thread, in the same process, called both around the task */
    ck_assert(pthread_equal(rec->start_thread, rec->task_thread));
    ck_assert(pthread_equal(rec->finish_thread, rec->task_thread));
    ck_assert_int_eq(rec->start_pid, rec->task_pid);
    ck_assert_int_eq(rec->finish_pid, rec->task_pid);
    if (shared)
      ck_assert_int_ne(rec->task_pid, getpid()); /* inside the worker */
    else
      ck_assert_int_eq(rec->task_pid, getpid());
    ck_assert_ptr_eq(rec->start_arg, h);
    ck_assert_ptr_eq(rec->finish_arg, h);
    /* what the hooks were told */
    const crew_task_info *a = &rec->start, *b = &rec->finish;
    ck_assert(a->fn == hooked_fn);
    ck_assert(b->fn == hooked_fn);
    ck_assert_uint_lt(a->worker, workers);
    ck_assert_uint_eq(b->worker, a->worker);
    ck_assert_uint_ge(a->submitted_ns, before);
    ck_assert_uint_le(a->submitted_ns, a->started_ns);
    ck_assert_uint_eq(a->finished_ns, 0); /* not known yet */
    ck_assert_uint_eq(b->submitted_ns, a->submitted_ns);
    ck_assert_uint_eq(b->started_ns, a->started_ns);
    ck_assert_uint_le(b->started_ns, b->finished_ns);
    ck_assert_uint_le(b->finished_ns, after);
    ck_assert_int_eq(b->status, rec->task_status);
    ck_assert_int_eq(b->status, (int)(rec->task % 4));
    /* a worker index names one worker */
    size_t w = a->worker;
    if (!worker_known[w]) {
      worker_known[w] = true;
      worker_thread[w] = rec->task_thread;
      worker_pid[w] = rec->task_pid;
    } else if (!shared) {
      ck_assert(pthread_equal(worker_thread[w], rec->task_thread));
    } else {
      ck_assert_int_eq(worker_pid[w], rec->task_pid);
    }
  }
  for (size_t v = 0; v < n; v++)
    ck_assert_msg(seen[v] == 1, "task %zu never hooked", v);
  for (size_t w = 0; w < workers; w++)
    for (size_t x = 0; x < w; x++)
      if (worker_known[w] && worker_known[x]) {
        if (shared)
          ck_assert_int_ne(worker_pid[w], worker_pid[x]);
        else
          ck_assert(!pthread_equal(worker_thread[w], worker_thread[x]));
      }
  hooks_free(h, shared);
}

START_TEST(hooks_once_per_task_threads)
{
  hooks_once_per_task(CREW_THREADS);
}
END_TEST

START_TEST(hooks_once_per_task_processes)
{
  hooks_once_per_task(CREW_PROCESSES);
}
END_TEST

/* A hook sees a task that a worker runs for itself (waiting on a queued
 * future of its own pool), on that worker's thread. */
struct nested_in {
  crew_pool *pool;
};

static int nested_fn(const void *in, void *out)
{
  (void)out;
  struct nested_in ni;
  memcpy(&ni, in, sizeof ni);
  /* leave the hook record of this task aside while the inner one runs */
  int64_t mine = tls_seq;
  note_task(500, 0);
  tls_seq = -1;
  uint64_t v = 501;
  crew_future *f = NULL;
  int rc = crew_submit(ni.pool, hooked_fn, &v, sizeof v, 8, &f);
  if (rc == 0) {
    rc = crew_future_wait(f);
    crew_future_release(f);
  }
  tls_seq = mine;
  return rc;
}

START_TEST(hooks_around_a_task_run_by_a_waiting_worker)
{
  struct hooks *h = hooks_make(false);
  crew_config cfg = pool_config(CREW_THREADS, 1);
  cfg.on_task_start = hook_start;
  cfg.on_task_finish = hook_finish;
  cfg.hook_arg = h;
  crew_pool *pool = pool_create(&cfg);
  struct nested_in ni = {.pool = pool};
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, nested_fn, &ni, sizeof ni, 0, &f), 0);
  ck_assert_int_eq(crew_future_wait(f), 501 % 4);
  crew_future_release(f);
  crew_pool_destroy(pool);
  ck_assert_uint_eq(load(&h->starts), 2);
  ck_assert_uint_eq(load(&h->finishes), 2);
  ck_assert_uint_eq(load(&h->anomalies), 0);
  ck_assert_uint_eq(load(&h->unhooked), 0);
  ck_assert_uint_eq(h->rec[0].task, 500);
  ck_assert_uint_eq(h->rec[1].task, 501);
  ck_assert(h->rec[0].start.fn == nested_fn);
  ck_assert(h->rec[1].start.fn == hooked_fn);
  ck_assert(pthread_equal(h->rec[1].task_thread, h->rec[0].task_thread));
  ck_assert_int_eq(h->rec[1].finish.status, 501 % 4);
  ck_assert_int_eq(h->rec[0].finish.status, 501 % 4);
  /* the inner task ran within the outer one */
  ck_assert_uint_le(h->rec[0].start.started_ns, h->rec[1].start.started_ns);
  ck_assert_uint_le(h->rec[1].finish.finished_ns, h->rec[0].finish.finished_ns);
  hooks_free(h, false);
}
END_TEST

/* ================================================================ main */

int main(void)
{
  Suite *s = suite_create("latency");
  TCase *tc = timed_tcase(s, "latency", 20);
  tcase_add_test(tc, latency_errors);
  tcase_add_test(tc, latency_brackets_threads);
  tcase_add_test(tc, latency_brackets_processes);
  tcase_add_test(tc, latency_reset_starts_afresh);
  tcase_add_test(tc, latency_reset_while_tasks_run);
  tcase_add_test(tc, latency_counts_tasks_not_map_items_threads);
  tcase_add_test(tc, latency_counts_tasks_not_map_items_processes);

  tc = timed_tcase(s, "hooks", 20);
  tcase_add_test(tc, hooks_once_per_task_threads);
  tcase_add_test(tc, hooks_once_per_task_processes);
  tcase_add_test(tc, hooks_around_a_task_run_by_a_waiting_worker);
  return run_suite(s);
}
