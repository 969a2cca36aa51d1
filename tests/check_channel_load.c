/*
 * check_channel_load.c - completion channels under load: an edge-triggered
 * epoll loop over 100000 tasks, and rounds drained to empty (every empty ->
 * non-empty change is an edge), in thread and process mode; many resolving
 * threads at once, and several draining threads.
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

/* ============================================ edge-triggered epoll */

#ifdef __linux__
static void epoll_loop(int mode)
{
  const size_t total = 100000, batch = 64;
  crew_config cfg = pool_config(mode, 4);
  cfg.queue_capacity = 256;
  crew_pool *pool = pool_create(&cfg);
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
  crew_config cfg = pool_config(mode, 2);
  cfg.queue_capacity = 8;
  crew_pool *pool = pool_create(&cfg);
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

/* ================================================================ main */

int main(void)
{
  Suite *s = suite_create("channel_load");
  TCase *tc = timed_tcase(s, "resolvers", 30);
  tcase_add_test(tc, many_resolving_threads);
  tcase_add_test(tc, concurrent_drainers);

#ifdef __linux__
  tc = timed_tcase(s, "epoll", 60);
  tcase_add_test(tc, epoll_edge_triggered_threads);
  tcase_add_test(tc, epoll_edge_triggered_processes);
  tcase_add_test(tc, epoll_edge_per_round_threads);
  tcase_add_test(tc, epoll_edge_per_round_processes);
#endif
  return run_suite(s);
}
