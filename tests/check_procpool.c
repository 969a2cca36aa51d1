/*
 * check_procpool.c - the pool in process mode (cfg.mode = CREW_PROCESSES):
 * the thread-mode contract on worker processes (submit, fire and forget,
 * back-pressure, cancel, done callbacks, wait_any/wait_all, the shutdowns,
 * task sizes), init and names in workers, and calls from inside a worker.
 * crew_map in process mode is check_procpool_map.c, deaths, deadlines and
 * recycling check_procpool_crash.c, what a process pool leaves to the
 * program check_procpool_hygiene.c.
 *
 * Tasks run in other processes: they talk to the test through the shared
 * state of proctest.h (a gate, a box of posts, counters), made before the
 * pool by shared_setup().
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* pthread_getname_np */
#endif

#include "proctest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ========================================================= contract */

START_TEST(submit_gives_output_and_status)
{
  shared_setup(0);
  crew_pool *pool = ppool(2, 0);
  ck_assert_uint_eq(crew_pool_workers(pool), 2);
  expect_add(submit_add(pool, 41), 41);

  int statuses[] = {0, 7, CREW_ECANCELED};
  for (size_t i = 0; i < 3; i++) {
    crew_future *f = NULL;
    ck_assert_int_eq(
        crew_submit(pool, status_task, &statuses[i], sizeof statuses[i], 0, &f),
        0);
    ck_assert_int_eq(crew_future_wait(f), statuses[i]);
    ck_assert(crew_future_done(f));
    ck_assert_int_eq(crew_future_status(f), statuses[i]);
    crew_future_release(f);
  }
  ck_assert_uint_eq(atomic_load(&shm->ran), 1);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, 4);
  ck_assert_uint_eq(st.completed, 4);
  ck_assert_uint_eq(st.failed, 2);
  ck_assert_uint_eq(st.cancelled, 0);
  ck_assert_uint_eq(st.crashed, 0);
  ck_assert_uint_eq(st.deadline_killed, 0);
  ck_assert_uint_eq(st.restarted, 0);
  ck_assert_uint_eq(st.workers, 2);
  assert_pool_settled(pool);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* Posts, then returns the int it gets. */
static int post_status_task(const void *in, void *out)
{
  (void)out;
  post(1);
  return *(const int *)in;
}

START_TEST(fire_and_forget_tasks_run_and_count)
{
  enum { N = 10 };
  shared_setup(0);
  crew_pool *pool = ppool(2, 0);
  for (int i = 0; i < N; i++) {
    int status = i < 3 ? 5 : 0;
    ck_assert_int_eq(
        crew_submit(pool, post_status_task, &status, sizeof status, 0, NULL),
        0);
  }
  for (int i = 0; i < N; i++)
    take();
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, N);
  ck_assert_uint_eq(st.completed, N);
  ck_assert_uint_eq(st.failed, 3);
  ck_assert_uint_eq(st.workers, 0);
  assert_pool_settled(pool);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

START_TEST(a_full_pool_pushes_back_at_capacity_plus_workers)
{
  shared_setup(0);
  crew_pool *pool = ppool(1, 2); /* entries: capacity 2 + 1 worker */
  crew_future *fs[4];
  ck_assert_int_eq(crew_submit_timed(pool, gated_task, NULL, 0, 0, &fs[0], 0),
                   0);
  take(); /* it runs, parked: the worker is busy */
  for (int i = 1; i < 3; i++) {
    int64_t x = i;
    ck_assert_int_eq(
        crew_submit_timed(pool, add_task, &x, sizeof x, sizeof x, &fs[i], 0),
        0);
  }
  /* Three tasks hold the three entries: the fourth finds no room. */
  int64_t x = 3;
  crew_future *f = NO_FUTURE;
  ck_assert_int_eq(
      crew_submit_timed(pool, add_task, &x, sizeof x, sizeof x, &f, 0),
      CREW_ETIMEDOUT);
  ck_assert_ptr_eq(f, NO_FUTURE);
  ck_assert_int_eq(
      crew_submit_timed(pool, add_task, &x, sizeof x, sizeof x, &f, 50 * MS),
      CREW_ETIMEDOUT);
  ck_assert_ptr_eq(f, NO_FUTURE);
  ck_assert_int_eq(crew_submit_timed(pool, add_task, &x, sizeof x, 0, NULL, 0),
                   CREW_ETIMEDOUT);
  ck_assert_uint_eq(pool_stats(pool).submitted, 3);

  open_gate(1);
  /* A blocking submit waits for the room the parked task frees. */
  ck_assert_int_eq(crew_submit(pool, add_task, &x, sizeof x, sizeof x, &fs[3]),
                   0);
  ck_assert_int_eq(crew_future_wait(fs[0]), 0);
  crew_future_release(fs[0]);
  for (int i = 1; i < 4; i++)
    expect_add(fs[i], i);
  ck_assert_uint_eq(atomic_load(&shm->ran), 4);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, 4);
  ck_assert_uint_eq(st.completed, 4);
  assert_pool_settled(pool);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

START_TEST(cancel_wins_a_queued_task_and_is_busy_for_a_running_one)
{
  shared_setup(0);
  crew_pool *pool = ppool(1, 0);
  crew_future *a = NULL, *b = NULL;
  ck_assert_int_eq(crew_submit(pool, gated_task, NULL, 0, 0, &a), 0);
  take(); /* a runs */
  int64_t x = 5;
  ck_assert_int_eq(crew_submit(pool, add_task, &x, sizeof x, sizeof x, &b), 0);
  ck_assert_int_eq(crew_future_cancel(b), 0);
  ck_assert(crew_future_done(b));
  ck_assert_int_eq(crew_future_status(b), CREW_ECANCELED);
  int64_t out = -1;
  ck_assert_int_eq(crew_future_get(b, &out, sizeof out), CREW_ECANCELED);
  ck_assert_int_eq(out, -1);
  ck_assert_int_eq(crew_future_cancel(b), CREW_EBUSY);
  ck_assert_int_eq(crew_future_cancel(a), CREW_EBUSY);
  ck_assert(!crew_future_done(a));
  ck_assert_uint_eq(pool_stats(pool).cancelled, 1);

  open_gate(1);
  ck_assert_int_eq(crew_future_wait(a), 0);
  ck_assert_int_eq(crew_future_cancel(a), CREW_EBUSY);
  /* The worker comes to the cancelled task after a: it skips it. */
  expect_add(submit_add(pool, 9), 9);
  ck_assert_uint_eq(atomic_load(&shm->ran), 2); /* a and the last: not b */
  crew_future_release(a);
  crew_future_release(b);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, 3);
  ck_assert_uint_eq(st.completed, 2);
  ck_assert_uint_eq(st.cancelled, 1);
  assert_pool_settled(pool);
  crew_pool_destroy(pool);
  ck_assert_uint_eq(atomic_load(&shm->ran), 2);
  shared_teardown();
}
END_TEST

/* What a done callback saw. */
struct cb_rec {
  char name[16];
  pid_t pid;
  int status;
  int64_t out;
  crew_queue *done; /* a plain queue: the callback runs in this process */
};

static void record_cb(crew_future *f, void *arg)
{
  struct cb_rec *r = arg;
  r->pid = getpid();
  if (pthread_getname_np(pthread_self(), r->name, sizeof r->name) != 0)
    strcpy(r->name, "?");
  r->status = crew_future_get(f, &r->out, sizeof r->out);
  crew_queue_push(r->done, "d");
}

START_TEST(on_done_callbacks_run_on_the_callback_thread)
{
  shared_setup(0);
  crew_config cfg = pcfg(1, 0);
  cfg.name = "cbt";
  crew_pool *pool = pool_create(&cfg);
  crew_queue *done;
  ck_assert_int_eq(crew_queue_create(&done, 4, 1, 0), 0);
  struct cb_rec rec = {.done = done};

  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, gated_task, NULL, 0, sizeof(int64_t), &f),
                   0);
  int64_t worker = (int64_t)take();
  ck_assert_int_eq(crew_future_on_done(f, record_cb, &rec), 0);
  char token;
  ck_assert_int_eq(crew_queue_pop_timed(done, &token, 50 * MS), CREW_ETIMEDOUT);
  open_gate(1);
  ck_assert_int_eq(crew_queue_pop_timed(done, &token, TAKE_LIMIT), 0);
  ck_assert_str_eq(rec.name, "cbt-cb");
  ck_assert_int_eq(rec.pid, getpid());
  ck_assert_int_eq(rec.status, 0);
  ck_assert_int_eq(rec.out, worker);
  ck_assert_int_ne(worker, getpid());

  crew_future_release(f);
  crew_pool_destroy(pool);
  crew_queue_destroy(done);
  shared_teardown();
}
END_TEST

START_TEST(wait_any_and_wait_all)
{
  shared_setup(0);
  crew_pool *pool = ppool(2, 0);
  crew_future *fs[2] = {NULL, NULL};
  ck_assert_int_eq(crew_submit(pool, gated_task, NULL, 0, 0, &fs[0]), 0);
  take();
  fs[1] = submit_add(pool, 1);
  size_t index = 99;
  ck_assert_int_eq(crew_wait_any(fs, 2, TAKE_LIMIT, &index), 0);
  ck_assert_uint_eq(index, 1);
  index = 99;
  ck_assert_int_eq(crew_wait_any(fs, 1, 50 * MS, &index), CREW_ETIMEDOUT);
  ck_assert_uint_eq(index, 99);
  ck_assert_int_eq(crew_wait_all(fs, 2, 50 * MS), CREW_ETIMEDOUT);
  open_gate(1);
  ck_assert_int_eq(crew_wait_all(fs, 2, TAKE_LIMIT), 0);
  ck_assert_int_eq(crew_wait_any(fs, 2, 0, &index), 0);
  ck_assert_uint_eq(index, 0);
  ck_assert_int_eq(crew_future_status(fs[0]), 0);
  crew_future_release(fs[0]);
  expect_add(fs[1], 1);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* A thread that shuts the pool down and says when it returned. */
struct stopper {
  crew_pool *pool;
  int how, rc;
  crew_queue *done;
  pthread_t thread;
};

static void *stopper_main(void *arg)
{
  struct stopper *s = arg;
  s->rc = crew_pool_shutdown(s->pool, s->how);
  crew_queue_push(s->done, "d");
  return NULL;
}

static void stopper_start(struct stopper *s, crew_pool *pool, int how)
{
  *s = (struct stopper){.pool = pool, .how = how, .rc = 1};
  ck_assert_int_eq(crew_queue_create(&s->done, 1, 1, 0), 0);
  ck_assert_int_eq(pthread_create(&s->thread, NULL, stopper_main, s), 0);
}

/* Whether the stopper returned within timeout_ns. */
static bool stopper_returned(struct stopper *s, uint64_t timeout_ns)
{
  char token;
  int rc = crew_queue_pop_timed(s->done, &token, timeout_ns);
  if (rc == 0)
    crew_queue_push(s->done, "d");
  return rc == 0;
}

static void stopper_join(struct stopper *s)
{
  ck_assert(stopper_returned(s, TAKE_LIMIT));
  ck_assert_int_eq(pthread_join(s->thread, NULL), 0);
  ck_assert_int_eq(s->rc, 0);
  crew_queue_destroy(s->done);
}

/* The pool refuses work once shut down. */
static void assert_closed(crew_pool *pool)
{
  int64_t x = 1;
  crew_future *f = NO_FUTURE;
  ck_assert_int_eq(crew_submit(pool, add_task, &x, sizeof x, sizeof x, &f),
                   CREW_ECLOSED);
  ck_assert_ptr_eq(f, NO_FUTURE);
  ck_assert_int_eq(crew_submit(pool, add_task, &x, sizeof x, 0, NULL),
                   CREW_ECLOSED);
  ck_assert_int_eq(
      crew_submit_timed(pool, add_task, &x, sizeof x, sizeof x, &f, 0),
      CREW_ECLOSED);
  ck_assert_int_eq(crew_map(pool, add_task, &x, sizeof x, NULL, 0, 1),
                   CREW_ECLOSED);
  ck_assert_int_eq(crew_map(pool, add_task, NULL, 0, NULL, 0, 0), CREW_ECLOSED);
}

START_TEST(drain_shutdown_runs_everything_queued)
{
  enum { N = 20 };
  shared_setup(0);
  crew_pool *pool = ppool(1, 0);
  crew_future *a = NULL, *fs[N];
  ck_assert_int_eq(crew_submit(pool, gated_task, NULL, 0, 0, &a), 0);
  take();
  for (int i = 0; i < N; i++)
    fs[i] = submit_add(pool, i);
  struct stopper s;
  stopper_start(&s, pool, CREW_DRAIN);
  ck_assert(!stopper_returned(&s, 50 * MS)); /* a is parked */
  open_gate(1);
  stopper_join(&s);
  ck_assert_uint_eq(atomic_load(&shm->ran), N + 1);
  ck_assert_int_eq(crew_future_wait(a), 0);
  crew_future_release(a);
  for (int i = 0; i < N; i++)
    expect_add(fs[i], i);
  assert_closed(pool);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, N + 1);
  ck_assert_uint_eq(st.completed, N + 1);
  ck_assert_uint_eq(st.cancelled, 0);
  ck_assert_uint_eq(st.workers, 0);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_CANCEL), 0); /* no change */
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

START_TEST(cancel_shutdown_cancels_queued_and_lets_running_finish)
{
  enum { N = 5 };
  shared_setup(0);
  crew_pool *pool = ppool(1, 0);
  crew_future *a = NULL, *fs[N];
  ck_assert_int_eq(crew_submit(pool, gated_task, NULL, 0, 0, &a), 0);
  take();
  for (int i = 0; i < N; i++)
    fs[i] = submit_add(pool, i);
  struct stopper s;
  stopper_start(&s, pool, CREW_CANCEL);
  for (int i = 0; i < N; i++) {
    int64_t out = -1;
    ck_assert_int_eq(crew_future_get_timed(fs[i], &out, sizeof out, TAKE_LIMIT),
                     CREW_ECANCELED);
    ck_assert_int_eq(out, -1);
    crew_future_release(fs[i]);
  }
  ck_assert_int_eq(crew_future_wait_timed(a, 50 * MS), CREW_ETIMEDOUT);
  ck_assert(!stopper_returned(&s, 0));
  assert_closed(pool);
  open_gate(1);
  stopper_join(&s);
  ck_assert_int_eq(crew_future_wait(a), 0);
  crew_future_release(a);
  ck_assert_uint_eq(atomic_load(&shm->ran), 1);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, N + 1);
  ck_assert_uint_eq(st.completed, 1);
  ck_assert_uint_eq(st.cancelled, N);
  ck_assert_uint_eq(st.workers, 0);
  assert_pool_settled(pool);
  assert_closed(pool);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

START_TEST(destroy_runs_queued_work)
{
  enum { N = 30 };
  shared_setup(0);
  crew_pool *pool = ppool(1, 0);
  open_gate(1);
  ck_assert_int_eq(crew_submit(pool, gated_task, NULL, 0, 0, NULL), 0);
  for (int i = 0; i < N; i++) {
    int64_t x = i;
    crew_future *f = NULL;
    ck_assert_int_eq(
        crew_submit(pool, add_task, &x, sizeof x, 0, i % 2 ? &f : NULL), 0);
    crew_future_release(f); /* released unresolved: still runs */
  }
  crew_pool_destroy(pool);
  ck_assert_uint_eq(atomic_load(&shm->ran), N + 1);
  shared_teardown();
}
END_TEST

/* in: a header saying its own length and the output length wanted, then
 * bytes i * 7; checks them (status 1 if wrong), writes out bytes 255 - 13i. */
struct lim_hdr {
  uint64_t in_len, out_len;
};

static unsigned char in_byte(size_t i)
{
  return (unsigned char)(i * 7);
}

static unsigned char out_byte(size_t i)
{
  return (unsigned char)(255 - i * 13);
}

static int limit_task(const void *in, void *out)
{
  struct lim_hdr h;
  memcpy(&h, in, sizeof h);
  const unsigned char *p = in;
  for (size_t i = sizeof h; i < h.in_len; i++)
    if (p[i] != in_byte(i))
      return 1;
  unsigned char *o = out;
  for (size_t i = 0; i < h.out_len; i++)
    o[i] = out_byte(i);
  return 0;
}

/* A limit_task input of in_len bytes asking for out_len. */
static unsigned char *lim_input(size_t in_len, size_t out_len)
{
  unsigned char *buf = malloc(in_len);
  ck_assert_ptr_nonnull(buf);
  struct lim_hdr h = {in_len, out_len};
  memcpy(buf, &h, sizeof h);
  for (size_t i = sizeof h; i < in_len; i++)
    buf[i] = in_byte(i);
  return buf;
}

/* Submit a limit_task; returns crew_submit's code, and on success checks
 * the output (every `step`-th byte and the last). */
static int lim_round_trip(crew_pool *pool, size_t in_len, size_t out_len,
                          size_t step)
{
  unsigned char *in = lim_input(in_len, out_len);
  crew_future *f = NO_FUTURE;
  int rc = crew_submit(pool, limit_task, in, in_len, out_len, &f);
  memset(in, 0, in_len); /* copied at submit */
  free(in);
  if (rc != 0) {
    ck_assert_ptr_eq(f, NO_FUTURE);
    return rc;
  }
  unsigned char *out = out_len > 0 ? malloc(out_len) : NULL;
  ck_assert(out_len == 0 || out != NULL);
  ck_assert_int_eq(crew_future_get(f, out, out_len), 0);
  crew_future_release(f);
  size_t wrong = 0;
  for (size_t i = 0; i < out_len; i += step)
    wrong += out[i] != out_byte(i);
  if (out_len > 0)
    wrong += out[out_len - 1] != out_byte(out_len - 1);
  ck_assert_msg(wrong == 0, "%zu output bytes wrong", wrong);
  free(out);
  return 0;
}

START_TEST(task_sizes_are_limited_exactly)
{
  shared_setup(0);
  crew_config cfg = pcfg(1, 0);
  cfg.max_in_size = 100;
  cfg.max_out_size = 200;
  crew_pool *pool = pool_create(&cfg);
  ck_assert_int_eq(lim_round_trip(pool, 101, 0, 1), CREW_EINVAL);
  ck_assert_int_eq(lim_round_trip(pool, 100, 0, 1), 0);
  ck_assert_int_eq(lim_round_trip(pool, sizeof(struct lim_hdr), 201, 1),
                   CREW_EINVAL);
  ck_assert_int_eq(lim_round_trip(pool, sizeof(struct lim_hdr), 200, 1), 0);
  ck_assert_int_eq(lim_round_trip(pool, 100, 200, 1), 0);
  ck_assert_int_eq(crew_submit(pool, limit_task, NULL, 0, 201, NULL),
                   CREW_EINVAL);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, 3);
  ck_assert_uint_eq(st.completed, 3);
  ck_assert_uint_eq(st.failed, 0);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

START_TEST(default_sizes_and_a_large_round_trip)
{
  shared_setup(0);
  crew_pool *pool = ppool(2, 0);
  /* 0 means CREW_TASK_BYTES_DEFAULT: one byte more is refused. */
  size_t too_big = CREW_TASK_BYTES_DEFAULT + 1;
  unsigned char *big = calloc(too_big, 1);
  ck_assert_ptr_nonnull(big);
  crew_future *f = NO_FUTURE;
  ck_assert_int_eq(crew_submit(pool, limit_task, big, too_big, 0, &f),
                   CREW_EINVAL);
  ck_assert_int_eq(crew_submit(pool, limit_task, big, 16, too_big, &f),
                   CREW_EINVAL);
  ck_assert_ptr_eq(f, NO_FUTURE);
  free(big);
  /* 1 MiB in and out, every byte checked; the default output limit. */
  ck_assert_int_eq(lim_round_trip(pool, 1 << 20, 1 << 20, 1), 0);
  ck_assert_int_eq(lim_round_trip(pool, sizeof(struct lim_hdr),
                                  CREW_TASK_BYTES_DEFAULT, 4093),
                   0);
  ck_assert_uint_eq(pool_stats(pool).completed, 2);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* ============================================================ workers */

static _Atomic int init_here; /* init calls in this process's memory */
static _Atomic pid_t inited;  /* in a worker: the pid init ran in */

static int record_init(void *arg)
{
  struct shm *s = arg;
  atomic_fetch_add(&init_here, 1);
  atomic_store(&inited, getpid());
  uint64_t i = atomic_fetch_add(&s->ninit, 1);
  if (i < 64)
    atomic_store(&s->init_pids[i], getpid());
  post((uint64_t)getpid());
  return 0;
}

/* 0 if init ran in this process before; out: the pid. */
static int inited_task(const void *in, void *out)
{
  (void)in;
  *(int64_t *)out = getpid();
  return atomic_load(&inited) == getpid() ? 0 : 1;
}

START_TEST(init_runs_in_every_worker_process_and_replacements)
{
  enum { W = 3 };
  shared_setup(0);
  crew_config cfg = pcfg(W, 0);
  cfg.init = record_init;
  cfg.init_arg = shm;
  crew_pool *pool = pool_create(&cfg);
  pid_t pids[W + 1];
  for (int i = 0; i < W; i++) {
    pids[i] = (pid_t)take();
    ck_assert_int_ne(pids[i], getpid());
    for (int j = 0; j < i; j++)
      ck_assert_int_ne(pids[i], pids[j]);
  }
  ck_assert_uint_eq(atomic_load(&shm->ninit), W);
  for (int i = 0; i < W; i++) {
    bool found = false;
    for (int j = 0; j < W; j++)
      found |= atomic_load(&shm->init_pids[j]) == pids[i];
    ck_assert(found);
  }
  for (int i = 0; i < 10; i++) {
    crew_future *f = NULL;
    int64_t pid = 0;
    ck_assert_int_eq(crew_submit(pool, inited_task, NULL, 0, sizeof pid, &f),
                     0);
    ck_assert_int_eq(crew_future_get(f, &pid, sizeof pid), 0);
    ck_assert(pid == pids[0] || pid == pids[1] || pid == pids[2]);
    crew_future_release(f);
  }

  /* A crash: the replacement runs init again, in a new process. */
  int kind = CRASH_SEGV;
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, crash_task, &kind, sizeof kind, 0, &f), 0);
  ck_assert_int_eq(crew_future_wait(f), CREW_ECRASHED);
  crew_future_release(f);
  pids[W] = (pid_t)take();
  for (int j = 0; j < W; j++)
    ck_assert_int_ne(pids[W], pids[j]);
  ck_assert_int_ne(pids[W], getpid());
  ck_assert_uint_eq(atomic_load(&shm->ninit), W + 1);
  ck_assert_int_eq(atomic_load(&init_here), 0); /* never here */
  wait_pool_workers(pool, W);
  crew_pool_destroy(pool);
  ck_assert_uint_eq(atomic_load(&shm->ninit), W + 1);
  ck_assert_int_eq(atomic_load(&init_here), 0);
  shared_teardown();
}
END_TEST

/* out: /proc/self/comm (16 bytes); waits at the gate after posting. */
static int comm_task(const void *in, void *out)
{
  (void)in;
  char *name = out;
  memset(name, 0, 16);
  int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return 1;
  ssize_t n = read(fd, name, 15);
  close(fd);
  if (n <= 0)
    return 2;
  if (name[n - 1] == '\n')
    name[n - 1] = '\0';
  post(1);
  return gate_wait();
}

START_TEST(workers_are_named_name_index)
{
  shared_setup(0);
  crew_config cfg = pcfg(2, 0);
  cfg.name = "ppn";
  crew_pool *pool = pool_create(&cfg);
  crew_future *fs[2];
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(crew_submit(pool, comm_task, NULL, 0, 16, &fs[i]), 0);
  take();
  take(); /* both run at once: one on each worker */
  open_gate(2);
  char names[2][16];
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(crew_future_get(fs[i], names[i], 16), 0);
    crew_future_release(fs[i]);
  }
  ck_assert_msg(
      (strcmp(names[0], "ppn-0") == 0 && strcmp(names[1], "ppn-1") == 0) ||
          (strcmp(names[0], "ppn-1") == 0 && strcmp(names[1], "ppn-0") == 0),
      "names '%s' and '%s'", names[0], names[1]);
  crew_pool_destroy(pool);

  cfg = pcfg(1, 0);
  cfg.name = "abcdefghijklmnopq"; /* cut to 15 with the index */
  pool = pool_create(&cfg);
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, comm_task, NULL, 0, 16, &f), 0);
  take();
  open_gate(1);
  ck_assert_int_eq(crew_future_get(f, names[0], 16), 0);
  ck_assert_str_eq(names[0], "abcdefghijklm-0");
  crew_future_release(f);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* in: the pool, by value; out: int[6], what each call on it returned. */
static int call_pool_task(const void *in, void *out)
{
  crew_pool *pool = *(crew_pool *const *)in;
  int *rc = out;
  int64_t x = 1;
  crew_future *f = NO_FUTURE;
  crew_stats st;
  rc[0] = crew_submit(pool, add_task, &x, sizeof x, sizeof x, &f);
  rc[1] = crew_submit_timed(pool, add_task, &x, sizeof x, 0, NULL, 0);
  rc[2] = crew_map(pool, add_task, &x, 0, NULL, 0, 1);
  rc[3] = crew_pool_stats(pool, &st);
  rc[4] = crew_pool_shutdown(pool, CREW_DRAIN);
  rc[5] = f == NO_FUTURE ? 0 : 1;
  return 0;
}

START_TEST(a_worker_cannot_call_its_pool)
{
  shared_setup(0);
  crew_pool *pool = ppool(2, 0);
  crew_future *f = NULL;
  int rc[6];
  ck_assert_int_eq(
      crew_submit(pool, call_pool_task, &pool, sizeof pool, sizeof rc, &f), 0);
  ck_assert_int_eq(crew_future_get(f, rc, sizeof rc), 0);
  crew_future_release(f);
  for (int i = 0; i < 5; i++)
    ck_assert_msg(rc[i] == CREW_EINVAL, "call %d returned %d", i, rc[i]);
  ck_assert_int_eq(rc[5], 0);
  ck_assert_uint_eq(atomic_load(&shm->ran), 0);
  /* The pool is untouched. */
  run_adds(pool, 20);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, 21);
  ck_assert_uint_eq(st.completed, 21);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* ================================================================ main */

int main(void)
{
  Suite *s = suite_create("procpool");

  TCase *tc = tcase_create("contract");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, submit_gives_output_and_status);
  tcase_add_test(tc, fire_and_forget_tasks_run_and_count);
  tcase_add_test(tc, a_full_pool_pushes_back_at_capacity_plus_workers);
  tcase_add_test(tc, cancel_wins_a_queued_task_and_is_busy_for_a_running_one);
  tcase_add_test(tc, on_done_callbacks_run_on_the_callback_thread);
  tcase_add_test(tc, wait_any_and_wait_all);
  tcase_add_test(tc, drain_shutdown_runs_everything_queued);
  tcase_add_test(tc, cancel_shutdown_cancels_queued_and_lets_running_finish);
  tcase_add_test(tc, destroy_runs_queued_work);
  tcase_add_test(tc, task_sizes_are_limited_exactly);
  tcase_add_test(tc, default_sizes_and_a_large_round_trip);
  suite_add_tcase(s, tc);

  tc = tcase_create("workers");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, init_runs_in_every_worker_process_and_replacements);
  tcase_add_test(tc, workers_are_named_name_index);
  tcase_add_test(tc, a_worker_cannot_call_its_pool);
  suite_add_tcase(s, tc);

  return run_suite(s);
}
