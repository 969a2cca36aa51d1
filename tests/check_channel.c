/*
 * check_channel.c - completion channels (crew_channel_*, crew_submit_to),
 * latency statistics (crew_pool_latency, crew_pool_latency_reset) and task
 * hooks (crew_config.on_task_start / on_task_finish).
 *
 * Channels: argument errors; the fd (readable exactly while completions
 * wait, close-on-exec, non-blocking); completions in resolution order;
 * references (a drained completion is the caller's reference); an
 * edge-triggered epoll loop over 100000 tasks, and rounds drained to empty
 * (every empty -> non-empty change is an edge), in thread and process mode;
 * many resolving threads at once, and several draining threads; the
 * wait; pending; destroy with work in flight and with completions
 * undrained; cancelled futures (crew_future_cancel and a CREW_CANCEL
 * shutdown).
 *
 * Latency and hooks: the errors; percentiles bracketed against the exact
 * values the hooks see (each percentile is the top of its bucket, at most
 * 1/8 above the value of its nearest rank, never above the exact max), and
 * against what the test knows independently (sleeps, a measured wait
 * behind a gate); reset; map items not counted; process mode; hooks called
 * once per task, start then finish, on the thread (or inside the worker
 * process) that runs it.
 *
 * "The completion is queued now": waiters of a future wake before its done
 * callbacks run, so a future having resolved does not mean its completion
 * is in the channel yet. watch_marked() adds, after the channel's watch, an
 * on_done callback that posts to a signal; callbacks of one future run in
 * the order they were added, so once the post arrives the completion is
 * queued.
 *
 * Process mode: tasks reach the test only through memory made before the
 * pool (CREW_SHARED queues for gates and signals, MAP_SHARED records for
 * hooks and counters). Tasks never use Check's assertions.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "testutil.h"

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

#define WAIT_LIMIT    (10000 * MS) /* the longest any positive wait may take */
#define WAIT_LIMIT_MS 10000

/* ============================================================= helpers */

/* Tags are never NULL: tag i is i + 1. */
static void *tag_of(size_t i)
{
  return (void *)(uintptr_t)(i + 1);
}

static size_t index_of(const void *tag)
{
  return (size_t)(uintptr_t)tag - 1;
}

/* Whether fd is readable within timeout_ms (0: now). */
static bool readable(int fd, int timeout_ms)
{
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int r;
  do
    r = poll(&p, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  quiet_assert_msg(r >= 0, "poll failed: errno %d", errno);
  return r == 1 && (p.revents & POLLIN) != 0;
}

/* An atomic counter's value (keeps assertion messages readable). */
static uint64_t load(_Atomic uint64_t *p)
{
  return atomic_load(p);
}

static void sleep_at_least(uint64_t ns)
{
  uint64_t t0 = now_ns();
  for (uint64_t t = t0; t - t0 < ns; t = now_ns()) {
    uint64_t left = ns - (t - t0);
    struct timespec ts = {.tv_sec = (time_t)(left / 1000000000u),
                          .tv_nsec = (long)(left % 1000000000u)};
    nanosleep(&ts, NULL);
  }
}

/* A gate and a signal that worker processes can use too. */
static void shared_gate_init(gate *g)
{
  ck_assert_int_eq(crew_queue_create(&g->tokens, 1024, 1, CREW_SHARED), 0);
}

static void shared_signal_init(signal_box *s)
{
  ck_assert_int_eq(crew_queue_create(&s->posts, 4096, 1, CREW_SHARED), 0);
}

/* A gate, a signal box and a run counter, process-shared when `shared`
 * (for tests that run in both modes). */
static void mode_gate_init(gate *g, bool shared)
{
  if (shared)
    shared_gate_init(g);
  else
    gate_init(g);
}

static void mode_signal_init(signal_box *s, bool shared)
{
  if (shared)
    shared_signal_init(s);
  else
    signal_init(s);
}

static _Atomic uint64_t *counter_new(bool shared)
{
  _Atomic uint64_t *c = shared ? shared_map(sizeof *c) : calloc(1, sizeof *c);
  ck_assert_ptr_nonnull(c);
  return c;
}

static void counter_free(_Atomic uint64_t *c, bool shared)
{
  if (shared)
    munmap(c, sizeof *c);
  else
    free(c);
}

static crew_channel *make_channel(void)
{
  crew_channel *ch = NULL;
  ck_assert_int_eq(crew_channel_create(&ch), 0);
  ck_assert_ptr_nonnull(ch);
  return ch;
}

/* ============================================================ hooks */

/*
 * What the hooks and the tasks record, one record per task start (in the
 * order of starts). In process mode it lives in MAP_SHARED memory.
 */
#define HOOK_MAX 512

struct hook_rec {
  _Atomic int state; /* 0, 1 started, 2 finished */
  crew_task_info start, finish;
  pthread_t start_thread, task_thread, finish_thread;
  pid_t start_pid, task_pid, finish_pid;
  void *start_arg, *finish_arg;
  uint64_t task;   /* the task's value, written by the task */
  int task_status; /* what the task returned */
  int task_seen;
};

struct hooks {
  _Atomic uint64_t starts, finishes;
  _Atomic uint64_t anomalies;  /* a hook or task out of order */
  _Atomic uint64_t unhooked;   /* hooked_fn ran with no start hook */
  _Atomic uint64_t map_items;  /* map_item_fn ran */
  _Atomic uint64_t map_hooked; /* ... inside a start hook's task */
  struct hook_rec rec[HOOK_MAX];
};

/* Set before a hooked pool is created (workers forked later see it). */
static struct hooks *hooks_g;

/* The record of the task running on this thread, or -1. */
static _Thread_local int64_t tls_seq = -1;

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

/* In a task: note in this thread's hook record that the task v ran. */
static void note_task(uint64_t v, int status)
{
  struct hooks *h = hooks_g;
  if (h == NULL)
    return;
  if (tls_seq < 0) {
    atomic_fetch_add(&h->unhooked, 1);
    return;
  }
  struct hook_rec *r = &h->rec[tls_seq];
  r->task = v;
  r->task_status = status;
  r->task_thread = pthread_self();
  r->task_pid = getpid();
  r->task_seen = 1;
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

/* ============================================================ tasks */

/* A general task: see job_fn. Passed by value (the input is copied). */
struct job {
  crew_queue *gate;    /* if not NULL: pop a token first */
  crew_queue *started; /* if not NULL: push "I started" first */
  _Atomic uint64_t *ran;
  uint64_t v;
  uint64_t sleep_ns;
  int status;
};

static int job_fn(const void *in, void *out)
{
  struct job j;
  memcpy(&j, in, sizeof j);
  if (j.started != NULL && crew_queue_push(j.started, "s") != 0)
    return 90;
  char token;
  if (j.gate != NULL && crew_queue_pop(j.gate, &token) != 0)
    return 91;
  if (j.sleep_ns > 0)
    sleep_at_least(j.sleep_ns);
  if (j.ran != NULL)
    atomic_fetch_add_explicit(j.ran, 1, memory_order_relaxed);
  note_task(j.v, j.status);
  if (out != NULL) {
    uint64_t r = j.v * 3;
    memcpy(out, &r, sizeof r);
  }
  return j.status;
}

/* out = 3 * in; 8 bytes of input, so fire-and-forget stays inline. */
static int triple_fn(const void *in, void *out)
{
  uint64_t v;
  memcpy(&v, in, sizeof v);
  if (out != NULL) {
    uint64_t r = v * 3;
    memcpy(out, &r, sizeof r);
  }
  return 0;
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

/* Spins for a tiny time derived from its index; out = index. */
struct spin_in {
  uint64_t index;
  uint64_t spin_ns;
};

static int spin_fn(const void *in, void *out)
{
  struct spin_in s;
  memcpy(&s, in, sizeof s);
  uint64_t t0 = now_ns();
  while (now_ns() - t0 < s.spin_ns)
    ;
  memcpy(out, &s.index, sizeof s.index);
  return 0;
}

static crew_future *submit_job(crew_pool *pool, struct job j, size_t out_size)
{
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, job_fn, &j, sizeof j, out_size, &f), 0);
  ck_assert_ptr_nonnull(f);
  return f;
}

static void post_cb(crew_future *f, void *arg)
{
  (void)f;
  signal_box *s = arg;
  quiet_assert_int_eq(crew_queue_push(s->posts, "m"), 0);
}

/* Watch f on ch, then post to s once the completion is queued. */
static void watch_marked(crew_channel *ch, crew_future *f, void *tag,
                         signal_box *s)
{
  ck_assert_int_eq(crew_channel_watch(ch, f, tag), 0);
  ck_assert_int_eq(crew_future_on_done(f, post_cb, s), 0);
}

static crew_pool *make_cfg_pool(const crew_config *cfg)
{
  crew_pool *pool = NULL;
  ck_assert_int_eq(crew_pool_create(&pool, cfg), 0);
  ck_assert_ptr_nonnull(pool);
  return pool;
}

/* ============================================================ errors */

START_TEST(null_arguments)
{
  ck_assert_int_eq(crew_channel_create(NULL), CREW_EINVAL);
  ck_assert_int_eq(crew_channel_fd(NULL), -1);
  crew_channel_destroy(NULL);
  ck_assert_uint_eq(crew_channel_pending(NULL), 0);

  crew_pool *pool = make_pool(1, 8);
  crew_channel *ch = make_channel();
  uint64_t v = 7;
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, triple_fn, &v, sizeof v, 8, &f), 0);
  ck_assert_int_eq(crew_channel_watch(NULL, f, tag_of(0)), CREW_EINVAL);
  ck_assert_int_eq(crew_channel_watch(ch, NULL, tag_of(0)), CREW_EINVAL);
  ck_assert_uint_eq(crew_channel_pending(ch), 0);

  crew_completion out[2];
  size_t n = 99;
  ck_assert_int_eq(crew_channel_drain(NULL, out, 2, &n), CREW_EINVAL);
  ck_assert_int_eq(crew_channel_drain(ch, out, 2, NULL), CREW_EINVAL);
  ck_assert_int_eq(crew_channel_drain(ch, NULL, 1, &n), CREW_EINVAL);
  ck_assert_int_eq(crew_channel_wait(NULL, out, 2, &n, 0), CREW_EINVAL);
  ck_assert_int_eq(crew_channel_wait(ch, out, 2, NULL, 0), CREW_EINVAL);
  ck_assert_int_eq(crew_channel_wait(ch, NULL, 1, &n, 0), CREW_EINVAL);
  /* out NULL with max 0 is fine */
  n = 99;
  ck_assert_int_eq(crew_channel_drain(ch, NULL, 0, &n), 0);
  ck_assert_uint_eq(n, 0);
  n = 99;
  ck_assert_int_eq(crew_channel_wait(ch, NULL, 0, &n, 0), 0);
  ck_assert_uint_eq(n, 0);

  /* the failed watches took no reference and queued nothing */
  ck_assert_int_eq(crew_future_wait(f), 0);
  crew_future_release(f);
  ck_assert_int_eq(crew_channel_drain(ch, out, 2, &n), 0);
  ck_assert_uint_eq(n, 0);
  ck_assert(!readable(crew_channel_fd(ch), 0));
  crew_channel_destroy(ch);
  crew_pool_destroy(pool);
}
END_TEST

START_TEST(submit_to_errors_make_no_task)
{
  crew_pool *pool = make_pool(1, 8);
  crew_channel *ch = make_channel();
  uint64_t v = 1;
  crew_stats st;
  ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
  uint64_t before = st.submitted;

  ck_assert_int_eq(
      crew_submit_to(pool, NULL, tag_of(0), triple_fn, &v, sizeof v, sizeof v),
      CREW_EINVAL);
  ck_assert_int_eq(crew_submit_to_timed(pool, NULL, tag_of(0), triple_fn, &v,
                                        sizeof v, sizeof v, 0),
                   CREW_EINVAL);
  ck_assert_int_eq(
      crew_submit_to(NULL, ch, tag_of(0), triple_fn, &v, sizeof v, sizeof v),
      CREW_EINVAL);
  ck_assert_int_eq(
      crew_submit_to(pool, ch, tag_of(0), NULL, &v, sizeof v, sizeof v),
      CREW_EINVAL);
  ck_assert_int_eq(
      crew_submit_to(pool, ch, tag_of(0), triple_fn, NULL, 8, sizeof v),
      CREW_EINVAL);
  ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
  ck_assert_uint_eq(st.submitted, before);
  ck_assert_uint_eq(crew_channel_pending(ch), 0);

  /* a shut-down pool: CREW_ECLOSED, nothing watched (ASan: nothing leaked) */
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  ck_assert_int_eq(
      crew_submit_to(pool, ch, tag_of(0), triple_fn, &v, sizeof v, sizeof v),
      CREW_ECLOSED);
  ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
  ck_assert_uint_eq(st.submitted, before);
  ck_assert_uint_eq(crew_channel_pending(ch), 0);
  ck_assert(!readable(crew_channel_fd(ch), 0));
  crew_channel_destroy(ch);
  crew_pool_destroy(pool);
}
END_TEST

/* A full queue and timeout 0: CREW_ETIMEDOUT, no task, nothing watched. */
START_TEST(submit_to_timed_full_queue)
{
  crew_pool *pool = make_pool(1, 1);
  crew_channel *ch = make_channel();
  gate g;
  signal_box started;
  gate_init(&g);
  signal_init(&started);
  struct job j = {.gate = g.tokens, .started = started.posts};
  ck_assert_int_eq(crew_submit_to(pool, ch, tag_of(0), job_fn, &j, sizeof j, 0),
                   0);
  signal_wait(&started, 1); /* the worker is busy */
  j.started = NULL;
  ck_assert_int_eq(crew_submit_to(pool, ch, tag_of(1), job_fn, &j, sizeof j, 0),
                   0); /* fills the queue */
  crew_stats st;
  ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
  ck_assert_uint_eq(st.submitted, 2);
  ck_assert_int_eq(
      crew_submit_to_timed(pool, ch, tag_of(2), job_fn, &j, sizeof j, 0, 0),
      CREW_ETIMEDOUT);
  uint64_t t0 = now_ns();
  ck_assert_int_eq(crew_submit_to_timed(pool, ch, tag_of(2), job_fn, &j,
                                        sizeof j, 0, 20 * MS),
                   CREW_ETIMEDOUT);
  ck_assert_uint_ge(now_ns() - t0, 20 * MS);
  ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
  ck_assert_uint_eq(st.submitted, 2);
  ck_assert_uint_eq(crew_channel_pending(ch), 2);

  gate_open(&g, 2);
  crew_completion out[4];
  size_t got = 0, n;
  while (got < 2) {
    ck_assert_int_eq(crew_channel_wait(ch, out, 4, &n, WAIT_LIMIT), 0);
    for (size_t i = 0; i < n; i++) {
      ck_assert_uint_eq(index_of(out[i].tag), got + i); /* one worker: FIFO */
      ck_assert_int_eq(crew_future_status(out[i].future), 0);
      crew_future_release(out[i].future);
    }
    got += n;
  }
  ck_assert_uint_eq(got, 2);
  ck_assert_uint_eq(crew_channel_pending(ch), 0);
  crew_channel_destroy(ch);
  crew_pool_destroy(pool);
  signal_fini(&started);
  gate_fini(&g);
}
END_TEST

/* ================================================================ fd */

START_TEST(fd_is_cloexec_and_nonblocking)
{
  crew_channel *ch = make_channel();
  int fd = crew_channel_fd(ch);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(crew_channel_fd(ch), fd);
  int fdflags = fcntl(fd, F_GETFD);
  ck_assert_int_ne(fdflags, -1);
  ck_assert_int_ne(fdflags & FD_CLOEXEC, 0);
  int flflags = fcntl(fd, F_GETFL);
  ck_assert_int_ne(flflags, -1);
  ck_assert_int_ne(flflags & O_NONBLOCK, 0);
  ck_assert(!readable(fd, 0));

  /* two channels: two descriptors */
  crew_channel *ch2 = make_channel();
  ck_assert_int_ne(crew_channel_fd(ch2), fd);
  crew_channel_destroy(ch2);
  crew_channel_destroy(ch);
}
END_TEST

START_TEST(fd_readable_exactly_while_completions_wait)
{
  crew_pool *pool = make_pool(3, 16);
  crew_channel *ch = make_channel();
  int fd = crew_channel_fd(ch);
  gate g;
  signal_box marks;
  gate_init(&g);
  signal_init(&marks);
  ck_assert(!readable(fd, 0));

  crew_future *f[3];
  for (size_t i = 0; i < 3; i++) {
    f[i] = submit_job(pool, (struct job){.gate = g.tokens, .v = i}, 8);
    watch_marked(ch, f[i], tag_of(i), &marks);
    crew_future_release(f[i]);
  }
  /* parked: nothing resolved */
  ck_assert(!readable(fd, 0));
  ck_assert_uint_eq(crew_channel_pending(ch), 3);

  gate_open(&g, 1);
  ck_assert(readable(fd, WAIT_LIMIT_MS));
  signal_wait(&marks, 1);
  ck_assert(readable(fd, 0)); /* level-triggered: still */
  ck_assert(readable(fd, 0));

  gate_open(&g, 2);
  signal_wait(&marks, 2); /* all three queued */
  uint64_t seen = 0;
  for (size_t k = 0; k < 3; k++) {
    ck_assert(readable(fd, 0));
    crew_completion out[1];
    size_t n = 99;
    ck_assert_int_eq(crew_channel_drain(ch, out, 1, &n), 0);
    ck_assert_uint_eq(n, 1);
    size_t i = index_of(out[0].tag);
    ck_assert_uint_lt(i, 3);
    ck_assert_uint_eq(seen & (1u << i), 0);
    seen |= 1u << i;
    uint64_t r = 0;
    ck_assert_int_eq(crew_future_get(out[0].future, &r, sizeof r), 0);
    ck_assert_uint_eq(r, 3 * i);
    crew_future_release(out[0].future);
    ck_assert_uint_eq(crew_channel_pending(ch), 2 - k);
    ck_assert(readable(fd, 0) == (k < 2));
  }
  ck_assert_uint_eq(seen, 7);
  size_t n = 99;
  crew_completion out[1];
  ck_assert_int_eq(crew_channel_drain(ch, out, 1, &n), 0);
  ck_assert_uint_eq(n, 0);
  ck_assert(!readable(fd, 0));

  /* and again: the fd comes back for the next batch */
  crew_future *h = submit_job(pool, (struct job){.v = 9}, 8);
  watch_marked(ch, h, tag_of(9), &marks);
  crew_future_release(h);
  signal_wait(&marks, 1);
  ck_assert(readable(fd, 0));
  ck_assert_int_eq(crew_channel_drain(ch, out, 1, &n), 0);
  ck_assert_uint_eq(n, 1);
  ck_assert_ptr_eq(out[0].tag, tag_of(9));
  crew_future_release(out[0].future);
  ck_assert(!readable(fd, 0));

  crew_channel_destroy(ch);
  crew_pool_destroy(pool);
  signal_fini(&marks);
  gate_fini(&g);
}
END_TEST

/* ============================================================= order */

START_TEST(completions_come_in_resolution_order)
{
  crew_pool *pool = make_pool(3, 16);
  crew_channel *ch = make_channel();
  gate g[3];
  signal_box started, marks;
  signal_init(&started);
  signal_init(&marks);
  crew_future *f[3];
  for (size_t i = 0; i < 3; i++) {
    gate_init(&g[i]);
    f[i] = submit_job(pool,
                      (struct job){.gate = g[i].tokens,
                                   .started = started.posts,
                                   .v = 10 + i},
                      8);
    watch_marked(ch, f[i], tag_of(i), &marks);
  }
  signal_wait(&started, 3); /* all three running, each on its own gate */
  const size_t order[3] = {2, 0, 1};
  for (size_t k = 0; k < 3; k++) {
    gate_open(&g[order[k]], 1);
    signal_wait(&marks, 1); /* queued before the next one is let go */
  }
  crew_completion out[4];
  size_t n = 0;
  ck_assert_int_eq(crew_channel_drain(ch, out, 4, &n), 0);
  ck_assert_uint_eq(n, 3);
  for (size_t k = 0; k < 3; k++) {
    ck_assert_ptr_eq(out[k].tag, tag_of(order[k]));
    ck_assert_ptr_eq(out[k].future, f[order[k]]);
    uint64_t r = 0;
    ck_assert_int_eq(crew_future_get(out[k].future, &r, sizeof r), 0);
    ck_assert_uint_eq(r, 3 * (10 + order[k]));
    crew_future_release(out[k].future);
  }
  for (size_t i = 0; i < 3; i++) {
    crew_future_release(f[i]);
    gate_fini(&g[i]);
  }
  crew_channel_destroy(ch);
  crew_pool_destroy(pool);
  signal_fini(&marks);
  signal_fini(&started);
}
END_TEST

/* ========================================================= ownership */

START_TEST(submit_to_completion_is_the_reference)
{
  crew_pool *pool = make_pool(2, 8);
  crew_channel *ch = make_channel();
  uint64_t v = 41;
  ck_assert_int_eq(
      crew_submit_to(pool, ch, tag_of(5), triple_fn, &v, sizeof v, sizeof v),
      0);
  v = 0; /* the input was copied */
  ck_assert_uint_eq(crew_channel_pending(ch), 1);
  crew_completion out[4];
  size_t n = 0;
  ck_assert_int_eq(crew_channel_wait(ch, out, 4, &n, WAIT_LIMIT), 0);
  ck_assert_uint_eq(n, 1);
  ck_assert_ptr_eq(out[0].tag, tag_of(5));
  ck_assert(crew_future_done(out[0].future));
  uint64_t r = 0;
  ck_assert_int_eq(crew_future_get(out[0].future, &r, sizeof r), 0);
  ck_assert_uint_eq(r, 123);
  ck_assert_uint_eq(crew_channel_pending(ch), 0);
  crew_future_release(out[0].future); /* the only reference: ASan sees */
  ck_assert(!readable(crew_channel_fd(ch), 0));
  crew_channel_destroy(ch);
  crew_pool_destroy(pool);
}
END_TEST

START_TEST(watching_a_resolved_future_queues_at_once)
{
  crew_pool *pool = make_pool(1, 8);
  crew_channel *ch = make_channel();
  crew_future *f = submit_job(pool, (struct job){.v = 4, .status = 7}, 8);
  ck_assert_int_eq(crew_future_wait(f), 7);
  ck_assert(!readable(crew_channel_fd(ch), 0));
  ck_assert_int_eq(crew_channel_watch(ch, f, tag_of(3)), 0);
  /* no waiting of any kind: queued in the call */
  ck_assert_uint_eq(crew_channel_pending(ch), 1);
  ck_assert(readable(crew_channel_fd(ch), 0));
  crew_completion out[2];
  size_t n = 0;
  ck_assert_int_eq(crew_channel_drain(ch, out, 2, &n), 0);
  ck_assert_uint_eq(n, 1);
  ck_assert_ptr_eq(out[0].future, f);
  ck_assert_ptr_eq(out[0].tag, tag_of(3));
  ck_assert_int_eq(crew_future_status(out[0].future), 7);
  crew_future_release(out[0].future); /* the channel's */
  uint64_t r = 0;
  ck_assert_int_eq(crew_future_get(f, &r, sizeof r), 7); /* ours still holds */
  ck_assert_uint_eq(r, 12);
  crew_future_release(f);
  crew_channel_destroy(ch);
  crew_pool_destroy(pool);
}
END_TEST

START_TEST(two_channels_and_a_double_watch)
{
  crew_pool *pool = make_pool(1, 8);
  crew_channel *a = make_channel(), *b = make_channel();
  gate g;
  gate_init(&g);
  crew_future *f = submit_job(pool, (struct job){.gate = g.tokens, .v = 2}, 8);
  ck_assert_int_eq(crew_channel_watch(a, f, tag_of(1)), 0);
  ck_assert_int_eq(crew_channel_watch(b, f, tag_of(2)), 0);
  ck_assert_int_eq(crew_channel_watch(a, f, tag_of(3)), 0); /* twice on a */
  ck_assert_uint_eq(crew_channel_pending(a), 2);
  ck_assert_uint_eq(crew_channel_pending(b), 1);
  crew_future_release(f); /* the channels hold their own */
  gate_open(&g, 1);

  crew_completion out[4];
  size_t n = 0, got = 0;
  void *tags[2] = {0};
  while (got < 2) {
    ck_assert_int_eq(crew_channel_wait(a, out, 4, &n, WAIT_LIMIT), 0);
    for (size_t i = 0; i < n; i++) {
      ck_assert_ptr_eq(out[i].future, f);
      tags[got + i] = out[i].tag;
    }
    got += n;
    for (size_t i = 0; i < n; i++) {
      uint64_t r = 0;
      ck_assert_int_eq(crew_future_get(out[i].future, &r, sizeof r), 0);
      ck_assert_uint_eq(r, 6);
      crew_future_release(out[i].future);
    }
  }
  ck_assert_uint_eq(got, 2);
  ck_assert_ptr_eq(tags[0], tag_of(1)); /* in the order watched */
  ck_assert_ptr_eq(tags[1], tag_of(3));
  ck_assert_int_eq(crew_channel_wait(b, out, 4, &n, WAIT_LIMIT), 0);
  ck_assert_uint_eq(n, 1);
  ck_assert_ptr_eq(out[0].future, f);
  ck_assert_ptr_eq(out[0].tag, tag_of(2));
  uint64_t r = 0;
  ck_assert_int_eq(crew_future_get(out[0].future, &r, sizeof r), 0);
  ck_assert_uint_eq(r, 6);
  crew_future_release(out[0].future);
  ck_assert_uint_eq(crew_channel_pending(a), 0);
  ck_assert_uint_eq(crew_channel_pending(b), 0);
  crew_channel_destroy(a);
  crew_channel_destroy(b);
  crew_pool_destroy(pool);
  gate_fini(&g);
}
END_TEST

START_TEST(released_at_once_still_arrives)
{
  crew_pool *pool = make_pool(1, 8);
  crew_channel *ch = make_channel();
  gate g;
  gate_init(&g);
  crew_future *f = submit_job(pool, (struct job){.gate = g.tokens, .v = 8}, 8);
  ck_assert_int_eq(crew_channel_watch(ch, f, tag_of(8)), 0);
  crew_future_release(f);
  ck_assert_uint_eq(crew_channel_pending(ch), 1);
  gate_open(&g, 1);
  crew_completion out[2];
  size_t n = 0;
  ck_assert_int_eq(crew_channel_wait(ch, out, 2, &n, WAIT_LIMIT), 0);
  ck_assert_uint_eq(n, 1);
  ck_assert_ptr_eq(out[0].tag, tag_of(8));
  uint64_t r = 0;
  ck_assert_int_eq(crew_future_get(out[0].future, &r, sizeof r), 0);
  ck_assert_uint_eq(r, 24);
  crew_future_release(out[0].future);
  crew_channel_destroy(ch);
  crew_pool_destroy(pool);
  gate_fini(&g);
}
END_TEST

/* ============================================ edge-triggered epoll */

#ifdef __linux__
static void epoll_loop(int mode)
{
  const size_t total = 100000, batch = 64;
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.mode = mode;
  cfg.workers = 4;
  cfg.queue_capacity = 256;
  crew_pool *pool = make_cfg_pool(&cfg);
  crew_channel *ch = make_channel();
  int ep = epoll_create1(EPOLL_CLOEXEC);
  ck_assert_int_ge(ep, 0);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = 77};
  ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, crew_channel_fd(ch), &ev), 0);

  unsigned char *seen = calloc(total, 1);
  ck_assert_ptr_nonnull(seen);
  crew_completion *out = calloc(batch, sizeof *out);
  ck_assert_ptr_nonnull(out);
  uint64_t next = 0, done = 0, sum = 0, waits = 0;
  while (done < total) {
    while (next < total) {
      uint64_t v = next;
      int rc = crew_submit_to_timed(pool, ch, tag_of(next), triple_fn, &v,
                                    sizeof v, sizeof v, 0);
      if (rc == CREW_ETIMEDOUT)
        break; /* full: try again after the next drain */
      quiet_assert_int_eq(rc, 0);
      next++;
    }
    quiet_assert_msg(next > done,
                     "no room for a task with none in flight (%ju done)",
                     (uintmax_t)done);
    struct epoll_event got;
    int k;
    do
      k = epoll_wait(ep, &got, 1, WAIT_LIMIT_MS);
    while (k < 0 && errno == EINTR);
    quiet_assert_msg(k == 1,
                     "epoll_wait gave %d after %d ms with %ju tasks in "
                     "flight, %ju pending in the channel",
                     k, WAIT_LIMIT_MS, (uintmax_t)(next - done),
                     (uintmax_t)crew_channel_pending(ch));
    quiet_assert_uint_eq(got.data.u64, 77);
    quiet_assert((got.events & EPOLLIN) != 0);
    waits++;
    size_t n;
    do { /* edge-triggered: until fewer than asked */
      quiet_assert_int_eq(crew_channel_drain(ch, out, batch, &n), 0);
      for (size_t i = 0; i < n; i++) {
        size_t idx = index_of(out[i].tag);
        quiet_assert_uint_lt(idx, next);
        quiet_assert_msg(seen[idx] == 0, "task %zu completed twice", idx);
        seen[idx] = 1;
        uint64_t r = 0;
        quiet_assert_int_eq(crew_future_get(out[i].future, &r, sizeof r), 0);
        quiet_assert_uint_eq(r, 3 * (uint64_t)idx);
        sum += r;
        crew_future_release(out[i].future);
      }
      done += n;
    } while (n == batch);
  }
  ck_assert_uint_eq(done, total);
  for (size_t i = 0; i < total; i++)
    quiet_assert_msg(seen[i] == 1, "task %zu never completed", i);
  ck_assert_uint_eq(sum, 3 * ((uint64_t)total * (total - 1) / 2));
  ck_assert_uint_eq(crew_channel_pending(ch), 0);
  ck_assert(!readable(crew_channel_fd(ch), 0));
  crew_stats st;
  ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
  ck_assert_uint_eq(st.submitted, total);
  ck_assert_uint_ge(waits, 1);
  close(ep);
  crew_channel_destroy(ch);
  crew_pool_destroy(pool);
  free(out);
  free(seen);
}

/*
 * Every change from empty to not empty is a new edge: rounds of 1, 2 or 3
 * tasks, each round drained to empty before the next is submitted, so a
 * lone completion arriving in an empty channel must wake the loop.
 */
static void epoll_rounds(int mode)
{
  const size_t rounds = 300, batch = 2;
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.mode = mode;
  cfg.workers = 2;
  cfg.queue_capacity = 8;
  crew_pool *pool = make_cfg_pool(&cfg);
  crew_channel *ch = make_channel();
  int ep = epoll_create1(EPOLL_CLOEXEC);
  ck_assert_int_ge(ep, 0);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLET};
  ck_assert_int_eq(epoll_ctl(ep, EPOLL_CTL_ADD, crew_channel_fd(ch), &ev), 0);
  uint64_t next = 0;
  for (size_t round = 0; round < rounds; round++) {
    size_t k = 1 + round % 3, got = 0;
    uint64_t first = next;
    for (size_t i = 0; i < k; i++, next++)
      quiet_assert_int_eq(crew_submit_to(pool, ch, tag_of(next), triple_fn,
                                         &next, sizeof next, sizeof next),
                          0);
    while (got < k) {
      struct epoll_event e;
      int w;
      do
        w = epoll_wait(ep, &e, 1, WAIT_LIMIT_MS);
      while (w < 0 && errno == EINTR);
      quiet_assert_msg(w == 1,
                       "round %zu: no edge in %d ms with %zu of %zu "
                       "completions taken, %zu pending",
                       round, WAIT_LIMIT_MS, got, k, crew_channel_pending(ch));
      crew_completion out[2];
      size_t n;
      do {
        quiet_assert_int_eq(crew_channel_drain(ch, out, batch, &n), 0);
        for (size_t i = 0; i < n; i++) {
          size_t idx = index_of(out[i].tag);
          quiet_assert_uint_ge(idx, first);
          quiet_assert_uint_lt(idx, first + k);
          uint64_t r = 0;
          quiet_assert_int_eq(crew_future_get(out[i].future, &r, sizeof r), 0);
          quiet_assert_uint_eq(r, 3 * (uint64_t)idx);
          crew_future_release(out[i].future);
        }
        got += n;
      } while (n == batch);
    }
    quiet_assert_uint_eq(got, k);
    quiet_assert(!readable(crew_channel_fd(ch), 0));
  }
  ck_assert_uint_eq(crew_channel_pending(ch), 0);
  close(ep);
  crew_channel_destroy(ch);
  crew_pool_destroy(pool);
}

START_TEST(epoll_edge_per_round_threads)
{
  epoll_rounds(CREW_THREADS);
}
END_TEST

START_TEST(epoll_edge_per_round_processes)
{
  epoll_rounds(CREW_PROCESSES);
}
END_TEST

START_TEST(epoll_edge_triggered_threads)
{
  epoll_loop(CREW_THREADS);
}
END_TEST

START_TEST(epoll_edge_triggered_processes)
{
  epoll_loop(CREW_PROCESSES);
}
END_TEST
#endif

/* ============================================ many resolving threads */

struct submitter {
  crew_pool *pool;
  crew_channel *ch;
  size_t first, count;
  pthread_t thread;
};

static uint64_t mix(uint64_t x)
{
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

static void *submit_many(void *arg)
{
  struct submitter *s = arg;
  for (size_t i = s->first; i < s->first + s->count; i++) {
    struct spin_in in = {.index = i, .spin_ns = mix(i) % 20000};
    quiet_assert_int_eq(crew_submit_to(s->pool, s->ch, tag_of(i), spin_fn, &in,
                                       sizeof in, sizeof(uint64_t)),
                        0);
  }
  return NULL;
}

START_TEST(many_resolving_threads)
{
  const size_t per = scaled(5000), nthreads = 4, total = per * nthreads;
  crew_pool *pool = make_pool(4, 64);
  crew_channel *ch = make_channel();
  unsigned char *seen = calloc(total, 1);
  ck_assert_ptr_nonnull(seen);
  struct submitter s[4];
  for (size_t t = 0; t < nthreads; t++) {
    s[t] = (struct submitter){
        .pool = pool, .ch = ch, .first = t * per, .count = per};
    ck_assert_int_eq(pthread_create(&s[t].thread, NULL, submit_many, &s[t]), 0);
  }
  crew_completion out[32];
  size_t done = 0;
  while (done < total) {
    size_t n = 0;
    int rc = crew_channel_wait(ch, out, 32, &n, WAIT_LIMIT);
    quiet_assert_msg(rc == 0, "waited 10 s with %zu of %zu completed", done,
                     total);
    quiet_assert_uint_ge(n, 1);
    for (size_t i = 0; i < n; i++) {
      size_t idx = index_of(out[i].tag);
      quiet_assert_uint_lt(idx, total);
      quiet_assert_msg(seen[idx] == 0, "task %zu completed twice", idx);
      seen[idx] = 1;
      uint64_t r = UINT64_MAX;
      quiet_assert_int_eq(crew_future_get(out[i].future, &r, sizeof r), 0);
      quiet_assert_uint_eq(r, idx);
      crew_future_release(out[i].future);
    }
    done += n;
  }
  for (size_t t = 0; t < nthreads; t++)
    ck_assert_int_eq(pthread_join(s[t].thread, NULL), 0);
  ck_assert_uint_eq(done, total);
  size_t n = 99;
  ck_assert_int_eq(crew_channel_drain(ch, out, 32, &n), 0);
  ck_assert_uint_eq(n, 0);
  ck_assert_uint_eq(crew_channel_pending(ch), 0);
  crew_channel_destroy(ch);
  crew_pool_destroy(pool);
  free(seen);
}
END_TEST

/*
 * Several threads take from one channel at once, two with drain and poll,
 * two with crew_channel_wait: every completion is handed out exactly once.
 */
struct drainer {
  crew_channel *ch;
  _Atomic unsigned char *seen;
  _Atomic size_t *taken;
  size_t total;
  bool use_wait;
  pthread_t thread;
};

static void *drain_loop(void *arg)
{
  struct drainer *d = arg;
  crew_completion out[16];
  while (atomic_load(d->taken) < d->total) {
    size_t n = 0;
    if (d->use_wait) {
      int rc = crew_channel_wait(d->ch, out, 16, &n, 20 * MS);
      quiet_assert(rc == 0 || rc == CREW_ETIMEDOUT);
    } else {
      (void)readable(crew_channel_fd(d->ch), 20);
      quiet_assert_int_eq(crew_channel_drain(d->ch, out, 16, &n), 0);
    }
    for (size_t i = 0; i < n; i++) {
      size_t idx = index_of(out[i].tag);
      quiet_assert_uint_lt(idx, d->total);
      quiet_assert_msg(atomic_fetch_add(&d->seen[idx], 1) == 0,
                       "task %zu handed out twice", idx);
      uint64_t r = UINT64_MAX;
      quiet_assert_int_eq(crew_future_get(out[i].future, &r, sizeof r), 0);
      quiet_assert_uint_eq(r, idx);
      crew_future_release(out[i].future);
    }
    atomic_fetch_add(d->taken, n);
  }
  return NULL;
}

START_TEST(concurrent_drainers)
{
  const size_t total = scaled(20000), ndrainers = 4;
  crew_pool *pool = make_pool(4, 64);
  crew_channel *ch = make_channel();
  _Atomic unsigned char *seen = calloc(total, sizeof *seen);
  ck_assert_ptr_nonnull(seen);
  _Atomic size_t taken;
  atomic_init(&taken, 0);
  struct drainer d[4];
  for (size_t t = 0; t < ndrainers; t++) {
    d[t] = (struct drainer){.ch = ch,
                            .seen = seen,
                            .taken = &taken,
                            .total = total,
                            .use_wait = t % 2 == 1};
    ck_assert_int_eq(pthread_create(&d[t].thread, NULL, drain_loop, &d[t]), 0);
  }
  uint64_t deadline = now_ns() + 10 * WAIT_LIMIT;
  for (size_t i = 0; i < total; i++) {
    struct spin_in in = {.index = i, .spin_ns = mix(i) % 5000};
    quiet_assert_int_eq(crew_submit_to(pool, ch, tag_of(i), spin_fn, &in,
                                       sizeof in, sizeof(uint64_t)),
                        0);
  }
  for (size_t t = 0; t < ndrainers; t++)
    ck_assert_int_eq(pthread_join(d[t].thread, NULL), 0);
  ck_assert_uint_lt(now_ns(), deadline);
  ck_assert_uint_eq(atomic_load(&taken), total);
  for (size_t i = 0; i < total; i++)
    quiet_assert_msg(atomic_load(&seen[i]) == 1, "task %zu taken %u times", i,
                     (unsigned)atomic_load(&seen[i]));
  ck_assert_uint_eq(crew_channel_pending(ch), 0);
  crew_channel_destroy(ch);
  crew_pool_destroy(pool);
  free((void *)seen);
}
END_TEST

/* ================================================== crew_channel_wait */

struct opener {
  gate *g;
  crew_future *f;
  _Atomic uint64_t opened_at;
  pthread_t thread;
};

static void *open_later(void *arg)
{
  struct opener *o = arg;
  /* a negative check that also gives the waiter time to block */
  quiet_assert_int_eq(crew_future_wait_timed(o->f, 30 * MS), CREW_ETIMEDOUT);
  atomic_store(&o->opened_at, now_ns());
  gate_open(o->g, 1);
  return NULL;
}

START_TEST(wait_blocks_until_a_completion)
{
  crew_pool *pool = make_pool(1, 8);
  crew_channel *ch = make_channel();
  gate g;
  gate_init(&g);
  crew_future *f = submit_job(pool, (struct job){.gate = g.tokens, .v = 1}, 8);
  ck_assert_int_eq(crew_channel_watch(ch, f, tag_of(1)), 0);
  struct opener o = {.g = &g, .f = f};
  atomic_init(&o.opened_at, 0);
  ck_assert_int_eq(pthread_create(&o.thread, NULL, open_later, &o), 0);
  crew_completion out[4];
  size_t n = 0;
  ck_assert_int_eq(crew_channel_wait(ch, out, 4, &n, WAIT_LIMIT), 0);
  uint64_t back = now_ns();
  ck_assert_uint_eq(n, 1);
  uint64_t opened = atomic_load(&o.opened_at);
  ck_assert_uint_ne(opened, 0);
  ck_assert_uint_ge(back, opened);
  ck_assert_ptr_eq(out[0].tag, tag_of(1));
  ck_assert_ptr_eq(out[0].future, f);
  ck_assert(crew_future_done(out[0].future));
  crew_future_release(out[0].future);
  ck_assert_int_eq(pthread_join(o.thread, NULL), 0);
  crew_future_release(f);
  ck_assert(!readable(crew_channel_fd(ch), 0));
  crew_channel_destroy(ch);
  crew_pool_destroy(pool);
  gate_fini(&g);
}
END_TEST

START_TEST(wait_times_out)
{
  crew_pool *pool = make_pool(1, 8);
  crew_channel *ch = make_channel();
  crew_completion out[2];
  size_t n = 99;
  /* an empty channel */
  ck_assert_int_eq(crew_channel_wait(ch, out, 2, &n, 0), CREW_ETIMEDOUT);
  ck_assert_uint_eq(n, 0);
  /* a watched task that cannot finish */
  gate g;
  gate_init(&g);
  crew_future *f = submit_job(pool, (struct job){.gate = g.tokens}, 0);
  ck_assert_int_eq(crew_channel_watch(ch, f, tag_of(0)), 0);
  crew_future_release(f);
  n = 99;
  uint64_t t0 = now_ns();
  ck_assert_int_eq(crew_channel_wait(ch, out, 2, &n, 40 * MS), CREW_ETIMEDOUT);
  ck_assert_uint_ge(now_ns() - t0, 40 * MS);
  ck_assert_uint_eq(n, 0);
  ck_assert_uint_eq(crew_channel_pending(ch), 1);
  gate_open(&g, 1);
  ck_assert_int_eq(crew_channel_wait(ch, out, 2, &n, WAIT_LIMIT), 0);
  ck_assert_uint_eq(n, 1);
  ck_assert_int_eq(crew_future_status(out[0].future), 0);
  crew_future_release(out[0].future);
  crew_channel_destroy(ch);
  crew_pool_destroy(pool);
  gate_fini(&g);
}
END_TEST

START_TEST(wait_max_zero_and_partial)
{
  crew_pool *pool = make_pool(2, 8);
  crew_channel *ch = make_channel();
  size_t n = 99;
  /* nothing pending, FOREVER: max 0 returns at once */
  ck_assert_int_eq(crew_channel_wait(ch, NULL, 0, &n, CREW_FOREVER), 0);
  ck_assert_uint_eq(n, 0);
  signal_box marks;
  signal_init(&marks);
  for (size_t i = 0; i < 3; i++) {
    crew_future *f = submit_job(pool, (struct job){.v = i}, 8);
    watch_marked(ch, f, tag_of(i), &marks);
    crew_future_release(f);
  }
  signal_wait(&marks, 3);
  crew_completion out[4];
  n = 99;
  ck_assert_int_eq(crew_channel_wait(ch, out, 0, &n, CREW_FOREVER), 0);
  ck_assert_uint_eq(n, 0);
  ck_assert_uint_eq(crew_channel_pending(ch), 3); /* nothing taken */
  ck_assert(readable(crew_channel_fd(ch), 0));
  ck_assert_int_eq(crew_channel_wait(ch, out, 2, &n, WAIT_LIMIT), 0);
  ck_assert_uint_eq(n, 2);
  ck_assert(readable(crew_channel_fd(ch), 0));
  ck_assert_int_eq(crew_channel_wait(ch, out + 2, 2, &n, WAIT_LIMIT), 0);
  ck_assert_uint_eq(n, 1);
  ck_assert(!readable(crew_channel_fd(ch), 0));
  unsigned seen = 0;
  for (size_t i = 0; i < 3; i++) {
    seen |= 1u << index_of(out[i].tag);
    crew_future_release(out[i].future);
  }
  ck_assert_uint_eq(seen, 7);
  crew_channel_destroy(ch);
  crew_pool_destroy(pool);
  signal_fini(&marks);
}
END_TEST

/* ============================================================ pending */

START_TEST(pending_counts_watched_and_not_drained)
{
  crew_pool *pool = make_pool(3, 16);
  crew_channel *ch = make_channel();
  gate g;
  signal_box marks;
  gate_init(&g);
  signal_init(&marks);
  ck_assert_uint_eq(crew_channel_pending(ch), 0);
  for (size_t i = 0; i < 3; i++) {
    crew_future *f = submit_job(pool, (struct job){.gate = g.tokens}, 0);
    watch_marked(ch, f, tag_of(i), &marks);
    crew_future_release(f);
    ck_assert_uint_eq(crew_channel_pending(ch), i + 1);
  }
  gate_open(&g, 1);
  signal_wait(&marks, 1);
  ck_assert_uint_eq(crew_channel_pending(ch), 3); /* 1 ready, 2 running */
  crew_completion out[4];
  size_t n = 0;
  ck_assert_int_eq(crew_channel_drain(ch, out, 4, &n), 0);
  ck_assert_uint_eq(n, 1);
  crew_future_release(out[0].future);
  ck_assert_uint_eq(crew_channel_pending(ch), 2);
  gate_open(&g, 2);
  signal_wait(&marks, 2);
  ck_assert_uint_eq(crew_channel_pending(ch), 2);
  ck_assert_int_eq(crew_channel_drain(ch, out, 1, &n), 0);
  ck_assert_uint_eq(n, 1);
  crew_future_release(out[0].future);
  ck_assert_uint_eq(crew_channel_pending(ch), 1);
  ck_assert_int_eq(crew_channel_drain(ch, out, 4, &n), 0);
  ck_assert_uint_eq(n, 1);
  crew_future_release(out[0].future);
  ck_assert_uint_eq(crew_channel_pending(ch), 0);
  crew_channel_destroy(ch);
  crew_pool_destroy(pool);
  signal_fini(&marks);
  gate_fini(&g);
}
END_TEST

/* ============================================================ destroy */

static void destroy_in_flight(int mode)
{
  const size_t tasks = 50;
  bool shared = mode == CREW_PROCESSES;
  gate g;
  _Atomic uint64_t *ran;
  mode_gate_init(&g, shared);
  ran = counter_new(shared);
  atomic_store(ran, 0);
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.mode = mode;
  cfg.workers = 4;
  cfg.queue_capacity = 64;
  crew_pool *pool = make_cfg_pool(&cfg);
  crew_channel *ch = make_channel();
  for (size_t i = 0; i < tasks; i++) {
    struct job j = {.gate = g.tokens, .ran = ran, .v = i};
    if (i % 2 == 0) {
      ck_assert_int_eq(
          crew_submit_to(pool, ch, tag_of(i), job_fn, &j, sizeof j, 8), 0);
    } else {
      crew_future *f = submit_job(pool, j, 8);
      ck_assert_int_eq(crew_channel_watch(ch, f, tag_of(i)), 0);
      crew_future_release(f);
    }
  }
  ck_assert_uint_eq(crew_channel_pending(ch), tasks);
  int fd = crew_channel_fd(ch);
  crew_channel_destroy(ch);
  /* closed at once (checked before anything could reuse the number) */
  errno = 0;
  ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
  ck_assert_int_eq(errno, EBADF);
  ck_assert_uint_eq(load(ran), 0);
  gate_open(&g, tasks);
  crew_pool_destroy(pool); /* drains: every task runs, and resolves */
  ck_assert_uint_eq(load(ran), tasks);
  gate_fini(&g);
  counter_free(ran, shared);
}

START_TEST(destroy_with_work_in_flight_threads)
{
  destroy_in_flight(CREW_THREADS);
}
END_TEST

START_TEST(destroy_with_work_in_flight_processes)
{
  destroy_in_flight(CREW_PROCESSES);
}
END_TEST

START_TEST(destroy_with_completions_undrained)
{
  crew_pool *pool = make_pool(2, 64);
  crew_channel *ch = make_channel();
  gate g;
  signal_box marks;
  gate_init(&g);
  signal_init(&marks);
  _Atomic uint64_t ran;
  atomic_init(&ran, 0);
  for (size_t i = 0; i < 10; i++) { /* these finish and wait, undrained */
    crew_future *f = submit_job(pool, (struct job){.ran = &ran, .v = i}, 64);
    watch_marked(ch, f, tag_of(i), &marks);
    crew_future_release(f);
  }
  signal_wait(&marks, 10);
  for (size_t i = 10; i < 14; i++) { /* these are in flight */
    crew_future *f = submit_job(
        pool, (struct job){.gate = g.tokens, .ran = &ran, .v = i}, 64);
    ck_assert_int_eq(crew_channel_watch(ch, f, tag_of(i)), 0);
    crew_future_release(f);
  }
  ck_assert_uint_eq(crew_channel_pending(ch), 14);
  ck_assert(readable(crew_channel_fd(ch), 0));
  int fd = crew_channel_fd(ch);
  crew_channel_destroy(ch); /* releases the ten (ASan: no leak) */
  errno = 0;
  ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
  ck_assert_int_eq(errno, EBADF);
  gate_open(&g, 4);
  crew_pool_destroy(pool);
  ck_assert_uint_eq(load(&ran), 14);
  signal_fini(&marks);
  gate_fini(&g);
}
END_TEST

/* An empty channel, never used: destroy frees it (ASan). */
START_TEST(destroy_unused)
{
  crew_channel *ch = make_channel();
  int fd = crew_channel_fd(ch);
  crew_channel_destroy(ch);
  errno = 0;
  ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
  ck_assert_int_eq(errno, EBADF);
}
END_TEST

/* ============================================================= cancel */

static void cancel_watched(int mode)
{
  bool shared = mode == CREW_PROCESSES;
  gate g;
  signal_box started;
  _Atomic uint64_t *ran;
  mode_gate_init(&g, shared);
  mode_signal_init(&started, shared);
  ran = counter_new(shared);
  atomic_store(ran, 0);
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.mode = mode;
  cfg.workers = 1;
  cfg.queue_capacity = 8;
  crew_pool *pool = make_cfg_pool(&cfg);
  crew_channel *ch = make_channel();
  crew_future *a = submit_job(
      pool, (struct job){.gate = g.tokens, .started = started.posts}, 0);
  signal_wait(&started, 1); /* the only worker is busy */
  crew_future *b = submit_job(pool, (struct job){.ran = ran, .v = 5}, 8);
  ck_assert_int_eq(crew_channel_watch(ch, b, tag_of(5)), 0);
  ck_assert(!readable(crew_channel_fd(ch), 0));
  ck_assert_int_eq(crew_future_cancel(b), 0);
  /* callbacks ran in the cancel, on this thread: the completion is there */
  ck_assert(readable(crew_channel_fd(ch), 0));
  crew_completion out[2];
  size_t n = 0;
  ck_assert_int_eq(crew_channel_drain(ch, out, 2, &n), 0);
  ck_assert_uint_eq(n, 1);
  ck_assert_ptr_eq(out[0].future, b);
  ck_assert_ptr_eq(out[0].tag, tag_of(5));
  ck_assert_int_eq(crew_future_status(out[0].future), CREW_ECANCELED);
  uint64_t r = 77;
  ck_assert_int_eq(crew_future_get(out[0].future, &r, sizeof r),
                   CREW_ECANCELED);
  ck_assert_uint_eq(r, 77);
  crew_future_release(out[0].future);
  crew_future_release(b);
  gate_open(&g, 1);
  ck_assert_int_eq(crew_future_wait(a), 0);
  crew_future_release(a);
  crew_pool_destroy(pool);
  ck_assert_uint_eq(load(ran), 0);
  crew_channel_destroy(ch);
  signal_fini(&started);
  gate_fini(&g);
  counter_free(ran, shared);
}

START_TEST(cancelled_future_completes_as_cancelled_threads)
{
  cancel_watched(CREW_THREADS);
}
END_TEST

START_TEST(cancelled_future_completes_as_cancelled_processes)
{
  cancel_watched(CREW_PROCESSES);
}
END_TEST

struct shutter {
  crew_pool *pool;
  crew_channel *ch;
  int rc;
  pthread_t thread;
};

static void *shut_cancel(void *arg)
{
  struct shutter *s = arg;
  s->rc = crew_pool_shutdown(s->pool, CREW_CANCEL);
  return NULL;
}

/* A submit that blocks on the full queue until the shutdown closes it. */
static void *submit_blocked(void *arg)
{
  struct shutter *s = arg;
  struct job j = {.v = 99};
  s->rc = crew_submit_to(s->pool, s->ch, tag_of(99), job_fn, &j, sizeof j, 8);
  return NULL;
}

/* Poll the pool's counters (bounded) until want(st) holds. */
static void wait_stats(crew_pool *pool,
                       bool (*want)(const crew_stats *, size_t), size_t arg,
                       const char *what)
{
  uint64_t deadline = now_ns() + WAIT_LIMIT;
  crew_stats st;
  for (;;) {
    ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
    if (want(&st, arg))
      return;
    ck_assert_msg(now_ns() < deadline, "waited 10 s for %s", what);
    sched_yield();
  }
}

static bool submitted_is(const crew_stats *st, size_t n)
{
  return st->submitted == n;
}

static bool cancelled_is(const crew_stats *st, size_t n)
{
  return st->cancelled == n;
}

/*
 * crew_pool_shutdown(CREW_CANCEL) with submit_to tasks queued behind a
 * parked one: the parked one completes with 0, the queued ones arrive
 * with CREW_ECANCELED.
 *
 * The gate opens only once the cancel has taken effect. A map of 0 items
 * returning CREW_ECLOSED is not enough: the pool reports itself closed a
 * moment before the cancel is in force, and a queued task popped in that
 * window runs (see the report). So: with threads, a submitter blocked on
 * the full queue returns CREW_ECLOSED only when the queue is closed, after
 * the cancel flag is set; with processes, the shutdown itself takes the
 * queued tasks off the queue and counts them cancelled, worker parked.
 */
static void shutdown_cancel(int mode)
{
  const size_t queued = 5;
  bool shared = mode == CREW_PROCESSES;
  gate g;
  signal_box started;
  _Atomic uint64_t *ran;
  mode_gate_init(&g, shared);
  mode_signal_init(&started, shared);
  ran = counter_new(shared);
  atomic_store(ran, 0);
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.mode = mode;
  cfg.workers = 1;
  cfg.queue_capacity = queued; /* full once they are queued */
  crew_pool *pool = make_cfg_pool(&cfg);
  crew_channel *ch = make_channel();
  struct job j = {.gate = g.tokens, .started = started.posts};
  ck_assert_int_eq(crew_submit_to(pool, ch, tag_of(0), job_fn, &j, sizeof j, 8),
                   0);
  signal_wait(&started, 1);
  for (size_t i = 1; i <= queued; i++) {
    j = (struct job){.ran = ran, .v = i};
    ck_assert_int_eq(
        crew_submit_to(pool, ch, tag_of(i), job_fn, &j, sizeof j, 8), 0);
  }
  struct shutter probe = {.pool = pool, .ch = ch, .rc = 99};
  if (!shared) { /* counted at once, then blocked on the full queue */
    ck_assert_int_eq(
        pthread_create(&probe.thread, NULL, submit_blocked, &probe), 0);
    wait_stats(pool, submitted_is, queued + 2, "the blocked submit");
  }
  struct shutter sh = {.pool = pool, .rc = 99};
  ck_assert_int_eq(pthread_create(&sh.thread, NULL, shut_cancel, &sh), 0);
  if (!shared) {
    ck_assert_int_eq(pthread_join(probe.thread, NULL), 0);
    ck_assert_int_eq(probe.rc, CREW_ECLOSED);
  } else {
    wait_stats(pool, cancelled_is, queued, "the queued tasks cancelled");
  }
  gate_open(&g, 1);
  ck_assert_int_eq(pthread_join(sh.thread, NULL), 0);
  ck_assert_int_eq(sh.rc, 0);

  unsigned seen = 0;
  size_t got = 0;
  while (got < queued + 1) {
    crew_completion out[8];
    size_t n = 0;
    ck_assert_int_eq(crew_channel_wait(ch, out, 8, &n, WAIT_LIMIT), 0);
    for (size_t i = 0; i < n; i++) {
      size_t idx = index_of(out[i].tag);
      ck_assert_uint_le(idx, queued);
      ck_assert_uint_eq(seen & (1u << idx), 0);
      seen |= 1u << idx;
      ck_assert_int_eq(crew_future_status(out[i].future),
                       idx == 0 ? 0 : CREW_ECANCELED);
      crew_future_release(out[i].future);
    }
    got += n;
  }
  ck_assert_uint_eq(seen, (1u << (queued + 1)) - 1);
  ck_assert_uint_eq(crew_channel_pending(ch), 0);
  crew_stats st;
  ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
  ck_assert_uint_eq(st.cancelled, queued);
  ck_assert_uint_eq(st.completed, 1);
  ck_assert_uint_eq(load(ran), 0);
  crew_pool_destroy(pool);
  crew_channel_destroy(ch);
  signal_fini(&started);
  gate_fini(&g);
  counter_free(ran, shared);
}

START_TEST(shutdown_cancel_completes_queued_threads)
{
  shutdown_cancel(CREW_THREADS);
}
END_TEST

START_TEST(shutdown_cancel_completes_queued_processes)
{
  shutdown_cancel(CREW_PROCESSES);
}
END_TEST

/* ======================================================= latency */

static crew_config latency_cfg(int mode, size_t workers, struct hooks *h)
{
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.mode = mode;
  cfg.workers = workers;
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
  crew_pool *on = make_cfg_pool(&cfg);
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
  crew_pool *pool = make_cfg_pool(&cfg);

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
  crew_pool *pool = make_cfg_pool(&cfg);
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
  crew_pool *pool = make_cfg_pool(&cfg);
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
  crew_pool *pool = make_cfg_pool(&cfg);
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
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.mode = mode;
  cfg.workers = workers;
  cfg.queue_capacity = 32;
  cfg.on_task_start = hook_start;
  cfg.on_task_finish = hook_finish;
  cfg.hook_arg = h;
  crew_pool *pool = make_cfg_pool(&cfg);

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
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.workers = 1;
  cfg.on_task_start = hook_start;
  cfg.on_task_finish = hook_finish;
  cfg.hook_arg = h;
  crew_pool *pool = make_cfg_pool(&cfg);
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
  Suite *s = suite_create("channel");
  TCase *tc = timed_tcase(s, "errors", 10);
  tcase_add_test(tc, null_arguments);
  tcase_add_test(tc, submit_to_errors_make_no_task);
  tcase_add_test(tc, submit_to_timed_full_queue);

  tc = timed_tcase(s, "fd", 10);
  tcase_add_test(tc, fd_is_cloexec_and_nonblocking);
  tcase_add_test(tc, fd_readable_exactly_while_completions_wait);

  tc = timed_tcase(s, "order", 10);
  tcase_add_test(tc, completions_come_in_resolution_order);

  tc = timed_tcase(s, "ownership", 10);
  tcase_add_test(tc, submit_to_completion_is_the_reference);
  tcase_add_test(tc, watching_a_resolved_future_queues_at_once);
  tcase_add_test(tc, two_channels_and_a_double_watch);
  tcase_add_test(tc, released_at_once_still_arrives);

#ifdef __linux__
  tc = timed_tcase(s, "epoll", 60);
  tcase_add_test(tc, epoll_edge_triggered_threads);
  tcase_add_test(tc, epoll_edge_triggered_processes);
  tcase_add_test(tc, epoll_edge_per_round_threads);
  tcase_add_test(tc, epoll_edge_per_round_processes);
#endif

  tc = timed_tcase(s, "resolvers", 30);
  tcase_add_test(tc, many_resolving_threads);
  tcase_add_test(tc, concurrent_drainers);

  tc = timed_tcase(s, "wait", 10);
  tcase_add_test(tc, wait_blocks_until_a_completion);
  tcase_add_test(tc, wait_times_out);
  tcase_add_test(tc, wait_max_zero_and_partial);

  tc = timed_tcase(s, "pending", 10);
  tcase_add_test(tc, pending_counts_watched_and_not_drained);

  tc = timed_tcase(s, "destroy", 10);
  tcase_add_test(tc, destroy_with_work_in_flight_threads);
  tcase_add_test(tc, destroy_with_work_in_flight_processes);
  tcase_add_test(tc, destroy_with_completions_undrained);
  tcase_add_test(tc, destroy_unused);

  tc = timed_tcase(s, "cancel", 10);
  tcase_add_test(tc, cancelled_future_completes_as_cancelled_threads);
  tcase_add_test(tc, cancelled_future_completes_as_cancelled_processes);
  tcase_add_test(tc, shutdown_cancel_completes_queued_threads);
  tcase_add_test(tc, shutdown_cancel_completes_queued_processes);

  tc = timed_tcase(s, "latency", 20);
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
