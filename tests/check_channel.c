/*
 * check_channel.c - completion channels (crew_channel_*, crew_submit_to):
 * argument errors; the fd (readable exactly while completions wait,
 * close-on-exec, non-blocking); completions in resolution order;
 * references (a drained completion is the caller's reference); the wait;
 * pending; destroy with work in flight and with completions undrained;
 * cancelled futures (crew_future_cancel and a CREW_CANCEL shutdown). Many
 * completions at once (an edge-triggered epoll loop, many resolving and
 * draining threads) are check_channel_load.c.
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
  crew_config cfg = pool_config(mode, 4);
  cfg.queue_capacity = 64;
  crew_pool *pool = pool_create(&cfg);
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
  crew_config cfg = pool_config(mode, 1);
  cfg.queue_capacity = 8;
  crew_pool *pool = pool_create(&cfg);
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
  crew_config cfg = pool_config(mode, 1);
  cfg.queue_capacity = queued; /* full once they are queued */
  crew_pool *pool = pool_create(&cfg);
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
  return run_suite(s);
}
