/*
 * check_procpool.c - the pool in process mode (cfg.mode = CREW_PROCESSES):
 * the thread-mode contract on worker processes, init and names in workers,
 * calls from inside a worker, crew_map (same results as thread mode), crash
 * isolation (segfault, abort, _exit, exit, an outside SIGKILL, a death in a
 * map chunk), deadlines (the task's process group is killed), no fork storm,
 * recycling, and hygiene (no zombies, no orphans when the parent is killed,
 * descriptors, an application's SIGCHLD handler, unknown code, forks).
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

static crew_future *submit_add(crew_pool *pool, int64_t x)
{
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, add_task, &x, sizeof x, sizeof x, &f), 0);
  ck_assert_ptr_nonnull(f);
  return f;
}

/* Wait for an add_task(x) future: status 0 and output x + 1; release it. */
static void expect_add(crew_future *f, int64_t x)
{
  int64_t out = -1;
  ck_assert_int_eq(crew_future_get(f, &out, sizeof out), 0);
  ck_assert_int_eq(out, x + 1);
  crew_future_release(f);
}

/* n add tasks at once, then all their results (quietly). */
static void run_adds(crew_pool *pool, size_t n)
{
  crew_future **fs = calloc(n, sizeof *fs);
  ck_assert_ptr_nonnull(fs);
  for (size_t i = 0; i < n; i++)
    quiet_assert_int_eq(crew_submit(pool, add_task, &(int64_t){(int64_t)i},
                                    sizeof(int64_t), sizeof(int64_t), &fs[i]),
                        0);
  for (size_t i = 0; i < n; i++) {
    int64_t out = -1;
    quiet_assert_int_eq(crew_future_get(fs[i], &out, sizeof out), 0);
    quiet_assert_int_eq(out, (int64_t)i + 1);
    crew_future_release(fs[i]);
  }
  free(fs);
}

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
  crew_pool *pool = pcreate(&cfg);
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
  crew_pool *pool = pcreate(&cfg);
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
  crew_pool *pool = pcreate(&cfg);
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
  crew_pool *pool = pcreate(&cfg);
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
  pool = pcreate(&cfg);
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

/* ================================================================ map */

/* out = in * in for int64_t items; counts the item's run. */
static int square_task(const void *in, void *out)
{
  int64_t x = *(const int64_t *)in;
  *(int64_t *)out = x * x;
  atomic_fetch_add(&hits[x], 1);
  return 0;
}

/* 24-byte items with padding the task must not change. */
struct in24 {
  int64_t x;
  unsigned char pad[16];
};
struct out24 {
  int64_t y;
  unsigned char pad[16];
};

static int square24_task(const void *in, void *out)
{
  int64_t x = ((const struct in24 *)in)->x;
  ((struct out24 *)out)->y = x * x;
  atomic_fetch_add(&hits[x], 1);
  return 0;
}

/* How many of the first n items did not run exactly once. */
static size_t hits_not_once(size_t n)
{
  size_t wrong = 0;
  for (size_t i = 0; i < n; i++)
    wrong += atomic_load(&hits[i]) != 1;
  return wrong;
}

/* Map the squares of 0..n-1 with stride 8 on pool into out; check it. */
static void map_squares8(crew_pool *pool, size_t n, int64_t *out)
{
  int64_t *in = malloc(n * sizeof *in);
  ck_assert_ptr_nonnull(in);
  for (size_t i = 0; i < n; i++) {
    in[i] = (int64_t)i;
    out[i] = -1;
  }
  reset_hits(n);
  ck_assert_int_eq(
      crew_map(pool, square_task, in, sizeof *in, out, sizeof *out, n), 0);
  ck_assert_uint_eq(hits_not_once(n), 0);
  size_t wrong = 0;
  for (size_t i = 0; i < n; i++)
    wrong += out[i] != (int64_t)(i * i) || in[i] != (int64_t)i;
  ck_assert_msg(wrong == 0, "n %zu: %zu items wrong", n, wrong);
  free(in);
}

/* The same with 24-byte items whose padding must come back untouched. */
static void map_squares24(crew_pool *pool, size_t n, struct out24 *out)
{
  struct in24 *in = malloc(n * sizeof *in);
  ck_assert_ptr_nonnull(in);
  for (size_t i = 0; i < n; i++) {
    in[i].x = (int64_t)i;
    memset(in[i].pad, 0xee, sizeof in[i].pad);
    out[i].y = -1;
    memset(out[i].pad, (int)(0x30 + i % 64), sizeof out[i].pad);
  }
  reset_hits(n);
  ck_assert_int_eq(
      crew_map(pool, square24_task, in, sizeof *in, out, sizeof *out, n), 0);
  ck_assert_uint_eq(hits_not_once(n), 0);
  size_t wrong = 0;
  for (size_t i = 0; i < n; i++) {
    wrong += out[i].y != (int64_t)(i * i) || in[i].x != (int64_t)i;
    for (size_t b = 0; b < sizeof in[i].pad; b++)
      wrong += in[i].pad[b] != 0xee || out[i].pad[b] != 0x30 + i % 64;
  }
  ck_assert_msg(wrong == 0, "n %zu: %zu items or bytes wrong", n, wrong);
  free(in);
}

START_TEST(map_squares_match_thread_mode)
{
  static const size_t counts[] = {1, 7, 1000, 100000};
  shared_setup(100000);
  crew_pool *pp = ppool(3, 0);
  crew_pool *tp = make_pool(3, 0);
  int64_t *t8 = malloc(100000 * sizeof *t8), *p8 = malloc(100000 * sizeof *p8);
  struct out24 *t24 = malloc(100000 * sizeof *t24),
               *p24 = malloc(100000 * sizeof *p24);
  ck_assert(t8 != NULL && p8 != NULL && t24 != NULL && p24 != NULL);
  for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
    size_t n = counts[k];
    map_squares8(tp, n, t8);
    map_squares8(pp, n, p8);
    ck_assert_mem_eq(t8, p8, n * sizeof *t8);
    map_squares24(tp, n, t24);
    map_squares24(pp, n, p24);
    ck_assert(memcmp(t24, p24, n * sizeof *t24) == 0);
  }
  crew_stats st = pool_stats(pp);
  ck_assert_uint_eq(st.submitted, 2 * (1 + 7 + 1000 + 100000));
  ck_assert_uint_eq(st.completed, st.submitted);
  ck_assert_uint_eq(st.failed, 0);
  assert_pool_settled(pp);
  free(t8);
  free(p8);
  free(t24);
  free(p24);
  crew_pool_destroy(tp);
  crew_pool_destroy(pp);
  shared_teardown();
}
END_TEST

/* Input and output fields of one array of structs. */
struct both {
  int64_t canary0;
  int64_t x;
  int64_t canary1;
  int64_t y;
  int64_t canary2;
};

START_TEST(map_reads_and_writes_one_array_of_structs)
{
  enum { N = 777 };
  shared_setup(N);
  crew_pool *pool = ppool(3, 0);
  /* count * stride bytes from &a[0].x and &a[0].y travel (see crew_map):
   * they reach into one item of slack, which must come back unchanged. */
  struct both *a = malloc((N + 1) * sizeof *a);
  ck_assert_ptr_nonnull(a);
  for (int i = 0; i <= N; i++)
    a[i] = (struct both){
        .canary0 = 11, .x = i, .canary1 = 22, .y = -1, .canary2 = 33};
  ck_assert_int_eq(crew_map(pool, square_task, &a[0].x, sizeof a[0], &a[0].y,
                            sizeof a[0], N),
                   0);
  ck_assert_uint_eq(hits_not_once(N), 0);
  for (int i = 0; i < N; i++) {
    quiet_assert_int_eq(a[i].x, i);
    quiet_assert_int_eq(a[i].y, (int64_t)i * i);
    quiet_assert_int_eq(a[i].canary0, 11);
    quiet_assert_int_eq(a[i].canary1, 22);
    quiet_assert_int_eq(a[i].canary2, 33);
  }
  ck_assert_int_eq(a[N].canary0, 11);
  ck_assert_int_eq(a[N].x, N);
  ck_assert_int_eq(a[N].canary1, 22);
  ck_assert_int_eq(a[N].y, -1);
  ck_assert_int_eq(a[N].canary2, 33);
  free(a);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* Writes 1 if it got no input, 2 if it did. */
static int null_in_task(const void *in, void *out)
{
  *(int *)out = in == NULL ? 1 : 2;
  atomic_fetch_add(&shm->ran, 1);
  return 0;
}

/* Counts its item; fails (status 1) if it got an output pointer. */
static int null_out_task(const void *in, void *out)
{
  atomic_fetch_add(&hits[*(const int64_t *)in], 1);
  return out == NULL ? 0 : 1;
}

/* Fails (status 1) unless it got neither input nor output. */
static int null_both_task(const void *in, void *out)
{
  atomic_fetch_add(&shm->ran, 1);
  return in == NULL && out == NULL ? 0 : 1;
}

START_TEST(map_without_input_or_output_passes_null)
{
  enum { N = 300 };
  shared_setup(N);
  crew_pool *pool = ppool(3, 0);
  int outs[N];
  for (int i = 0; i < N; i++)
    outs[i] = 0;
  ck_assert_int_eq(
      crew_map(pool, null_in_task, NULL, 0, outs, sizeof outs[0], N), 0);
  for (int i = 0; i < N; i++)
    quiet_assert_int_eq(outs[i], 1);
  ck_assert_uint_eq(atomic_load(&shm->ran), N);

  int64_t ins[N];
  for (int i = 0; i < N; i++)
    ins[i] = i;
  ck_assert_int_eq(
      crew_map(pool, null_out_task, ins, sizeof ins[0], NULL, 0, N), 0);
  ck_assert_uint_eq(hits_not_once(N), 0);

  ck_assert_int_eq(crew_map(pool, null_both_task, NULL, 0, NULL, 0, N), 0);
  ck_assert_uint_eq(atomic_load(&shm->ran), 2 * N);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

#define BIG_ITEM ((size_t)64 << 10)

/* Items of 64 KiB: reads the first and last int64_t of its input, writes
 * first squared and first + last at the ends of its output. */
static int big_item_task(const void *in, void *out)
{
  const unsigned char *p = in;
  unsigned char *o = out;
  int64_t first, last;
  memcpy(&first, p, sizeof first);
  memcpy(&last, p + BIG_ITEM - sizeof last, sizeof last);
  int64_t a = first * first, b = first + last;
  memcpy(o, &a, sizeof a);
  memcpy(o + BIG_ITEM - sizeof b, &b, sizeof b);
  atomic_fetch_add(&hits[first], 1);
  return 0;
}

START_TEST(map_items_may_be_larger_than_max_in_size)
{
  enum { N = 24 };
  shared_setup(N);
  crew_config cfg = pcfg(2, 0);
  cfg.max_in_size = 4096;
  cfg.max_out_size = 4096;
  crew_pool *pool = pcreate(&cfg);
  unsigned char *in = malloc(N * BIG_ITEM), *out = malloc(N * BIG_ITEM);
  ck_assert(in != NULL && out != NULL);
  memset(in, 0x11, N * BIG_ITEM);
  memset(out, 0x22, N * BIG_ITEM);
  for (int64_t i = 0; i < N; i++) {
    int64_t last = 1000 * i;
    memcpy(in + (size_t)i * BIG_ITEM, &i, sizeof i);
    memcpy(in + (size_t)(i + 1) * BIG_ITEM - sizeof last, &last, sizeof last);
  }
  ck_assert_int_eq(
      crew_map(pool, big_item_task, in, BIG_ITEM, out, BIG_ITEM, N), 0);
  ck_assert_uint_eq(hits_not_once(N), 0);
  size_t wrong = 0;
  for (int64_t i = 0; i < N; i++) {
    const unsigned char *o = out + (size_t)i * BIG_ITEM;
    int64_t a, b;
    memcpy(&a, o, sizeof a);
    memcpy(&b, o + BIG_ITEM - sizeof b, sizeof b);
    wrong += a != i * i || b != i + 1000 * i;
    for (size_t k = sizeof a; k < BIG_ITEM - sizeof b; k++)
      wrong += o[k] != 0x22;
  }
  ck_assert_msg(wrong == 0, "%zu items or bytes wrong", wrong);
  free(in);
  free(out);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* A map item that fails with `status`, or crashes its worker. */
struct fail_item {
  int64_t x;
  int32_t status;
  int32_t crash;
};

static int fail_item_task(const void *in, void *out)
{
  const struct fail_item *it = in;
  if (it->crash)
    raise(SIGSEGV);
  *(int64_t *)out = it->x * 3;
  atomic_fetch_add(&hits[it->x], 1);
  return it->status;
}

static struct fail_item *fail_items(size_t n, int64_t **out)
{
  struct fail_item *items = calloc(n, sizeof *items);
  *out = malloc(n * sizeof **out);
  ck_assert(items != NULL && *out != NULL);
  for (size_t i = 0; i < n; i++) {
    items[i].x = (int64_t)i;
    (*out)[i] = -1;
  }
  return items;
}

START_TEST(map_returns_the_lowest_failing_item)
{
  enum { N = 1000 };
  shared_setup(N);
  crew_pool *pool = ppool(2, 0);
  int64_t *out;
  struct fail_item *items = fail_items(N, &out);
  items[700].status = 70;
  items[5].status = 50;
  items[3].status = 30;
  ck_assert_int_eq(
      crew_map(pool, fail_item_task, items, sizeof *items, out, sizeof *out, N),
      30);
  ck_assert_uint_eq(hits_not_once(N), 0);
  for (int i = 0; i < N; i++)
    quiet_assert_int_eq(out[i], 3 * i);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, N);
  ck_assert_uint_eq(st.completed, N);
  ck_assert_uint_eq(st.failed, 3);
  ck_assert_uint_eq(st.crashed, 0);
  free(items);
  free(out);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

static uint64_t mix64(uint64_t z)
{
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static int mix_task(const void *in, void *out)
{
  uint64_t x = *(const uint64_t *)in, z = x;
  for (int r = 0; r < 8; r++)
    z = mix64(z + x);
  *(uint64_t *)out = z;
  return 0;
}

/* A checksum of mix_task over n items, mapped on pool (NULL: serially). */
static uint64_t mix_checksum(crew_pool *pool, size_t n)
{
  uint64_t *in = malloc(n * sizeof *in), *out = calloc(n, sizeof *out);
  ck_assert(in != NULL && out != NULL);
  for (size_t i = 0; i < n; i++)
    in[i] = mix64(i);
  if (pool != NULL)
    ck_assert_int_eq(
        crew_map(pool, mix_task, in, sizeof *in, out, sizeof *out, n), 0);
  else
    for (size_t i = 0; i < n; i++)
      mix_task(&in[i], &out[i]);
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++)
    sum = mix64(sum ^ out[i]) + i;
  free(in);
  free(out);
  return sum;
}

START_TEST(map_checksum_is_the_same_in_both_modes)
{
  enum { N = 100000 };
  shared_setup(0);
  crew_pool *pp = ppool(3, 0);
  crew_pool *tp = make_pool(3, 0);
  uint64_t serial = mix_checksum(NULL, N);
  ck_assert_uint_eq(mix_checksum(tp, N), serial);
  ck_assert_uint_eq(mix_checksum(pp, N), serial);
  crew_pool_destroy(tp);
  crew_pool_destroy(pp);
  shared_teardown();
}
END_TEST

/* In process mode an item's bytes are its stride: a stride of 0 with an
 * array is refused, before the pool's state is looked at. */
START_TEST(map_refuses_a_stride_of_zero_with_an_array)
{
  enum { N = 20 };
  shared_setup(0);
  crew_pool *pool = ppool(2, 0);
  int64_t value = 42, in[N], out[N];
  for (int i = 0; i < N; i++) {
    in[i] = i;
    out[i] = -1;
  }
  ck_assert_int_eq(crew_map(pool, add_task, &value, 0, out, sizeof out[0], N),
                   CREW_EINVAL);
  ck_assert_int_eq(crew_map(pool, add_task, in, sizeof in[0], out, 0, N),
                   CREW_EINVAL);
  ck_assert_int_eq(crew_map(pool, add_task, &value, 0, NULL, 0, N),
                   CREW_EINVAL);
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(out[i], -1);
  ck_assert_uint_eq(pool_stats(pool).submitted, 0);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  /* "Arguments are checked first, then the pool." */
  ck_assert_int_eq(crew_map(pool, add_task, &value, 0, out, sizeof out[0], N),
                   CREW_EINVAL);
  ck_assert_int_eq(crew_map(pool, add_task, in, sizeof in[0], out, 0, N),
                   CREW_EINVAL);
  ck_assert_uint_eq(atomic_load(&shm->ran), 0);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* ============================================================== crash */

/*
 * One worker crashes in a task as `kind` says, while the other runs a
 * parked task: the crash resolves with CREW_ECRASHED, tasks before and
 * after complete, the pool gets its worker back and keeps working.
 */
static void crash_scenario(int kind)
{
  enum { BEFORE = 3, AFTER = 5 };
  shared_setup(0);
  crew_pool *pool = ppool(2, 0);
  crew_future *before[BEFORE], *after[AFTER], *parked = NULL, *crash = NULL;
  for (int i = 0; i < BEFORE; i++)
    before[i] = submit_add(pool, i);
  ck_assert_int_eq(crew_submit(pool, gated_task, NULL, 0, 0, &parked), 0);
  pid_t parked_pid = (pid_t)take();
  ck_assert_int_eq(crew_submit(pool, crash_task, &kind, sizeof kind, 0, &crash),
                   0);
  for (int i = 0; i < AFTER; i++)
    after[i] = submit_add(pool, 100 + i);
  if (kind == CRASH_KILLED) {
    pid_t victim = (pid_t)take();
    ck_assert_int_ne(victim, parked_pid);
    ck_assert_int_ne(victim, getpid());
    ck_assert_int_eq(kill(victim, SIGKILL), 0);
  }
  ck_assert_int_eq(crew_future_wait(crash), CREW_ECRASHED);
  ck_assert_int_eq(crew_future_status(crash), CREW_ECRASHED);
  crew_future_release(crash);
  /* The tasks queued behind it run on its replacement: the other worker is
   * parked. */
  for (int i = 0; i < AFTER; i++)
    expect_add(after[i], 100 + i);
  for (int i = 0; i < BEFORE; i++)
    expect_add(before[i], i);
  ck_assert(!crew_future_done(parked));
  open_gate(1);
  ck_assert_int_eq(crew_future_wait(parked), 0);
  crew_future_release(parked);

  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.crashed, 1);
  ck_assert_uint_eq(st.restarted, 1);
  ck_assert_uint_eq(st.deadline_killed, 0);
  ck_assert_uint_eq(st.completed, BEFORE + AFTER + 1);
  ck_assert_uint_eq(st.failed, 0);
  wait_pool_workers(pool, 2);
  run_adds(pool, 100);
  st = pool_stats(pool);
  ck_assert_uint_eq(st.crashed, 1);
  ck_assert_uint_eq(st.completed, BEFORE + AFTER + 1 + 100);
  ck_assert_uint_eq(st.submitted, BEFORE + AFTER + 2 + 100);
  ck_assert_uint_eq(st.workers, 2);
  assert_pool_settled(pool);
  ck_assert_uint_eq(atomic_load(&shm->ran), BEFORE + AFTER + 1 + 100);
  crew_pool_destroy(pool);
  shared_teardown();
}

START_TEST(a_segfault_resolves_crashed)
{
  crash_scenario(CRASH_SEGV);
}
END_TEST

START_TEST(an_abort_resolves_crashed)
{
  crash_scenario(CRASH_ABORT);
}
END_TEST

START_TEST(an_exit_3_resolves_crashed)
{
  crash_scenario(CRASH_EXIT3);
}
END_TEST

START_TEST(an_exit_0_resolves_crashed)
{
  crash_scenario(CRASH_EXIT0);
}
END_TEST

START_TEST(an_outside_sigkill_resolves_crashed)
{
  crash_scenario(CRASH_KILLED);
}
END_TEST

START_TEST(a_worker_dying_in_a_map_chunk)
{
  enum { N = 1000, BAD = 37 };
  shared_setup(N);
  crew_pool *pool = ppool(2, 0);
  int64_t *out;
  struct fail_item *items = fail_items(N, &out);
  items[BAD].crash = 1;
  ck_assert_int_eq(
      crew_map(pool, fail_item_task, items, sizeof *items, out, sizeof *out, N),
      CREW_ECRASHED);
  /* Every item ran at most once and those that ran have their output. The
   * items that did not run are the rest of the dead chunk: BAD and a
   * contiguous run after it. */
  size_t lost_first = N, lost_end = 0, ran = 0;
  for (size_t i = 0; i < N; i++) {
    uint32_t h = atomic_load(&hits[i]);
    quiet_assert_uint_le(h, 1);
    if (h == 1) {
      ran++;
      quiet_assert_int_eq(out[i], 3 * (int64_t)i);
    } else {
      quiet_assert_int_eq(out[i], -1);
      if (lost_first == N)
        lost_first = i;
      lost_end = i + 1;
    }
  }
  ck_assert_uint_eq(lost_first, BAD);
  ck_assert_uint_eq(ran, N - (lost_end - lost_first));
  ck_assert_uint_lt(lost_end - lost_first, N / 2);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.crashed, 1);
  ck_assert_uint_eq(st.submitted, N);
  ck_assert_uint_eq(st.completed, ran);
  ck_assert_uint_eq(st.cancelled, N - ran - 1);
  assert_pool_settled(pool);

  /* The pool maps again, on its replacement worker. */
  items[BAD].crash = 0;
  reset_hits(N);
  ck_assert_int_eq(
      crew_map(pool, fail_item_task, items, sizeof *items, out, sizeof *out, N),
      0);
  ck_assert_uint_eq(hits_not_once(N), 0);
  for (int i = 0; i < N; i++)
    quiet_assert_int_eq(out[i], 3 * i);
  ck_assert_uint_ge(pool_stats(pool).restarted, 1);
  free(items);
  free(out);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* =========================================================== deadline */

/* Posts its start time, forks a grandchild that sleeps forever, posts its
 * pid, then sleeps forever itself. */
static int sleeper_task(const void *in, void *out)
{
  (void)in;
  (void)out;
  uint64_t start = now_ns();
  pid_t g = fork();
  if (g == 0)
    for (;;)
      pause();
  post(start);
  post((uint64_t)(int64_t)g);
  for (;;)
    pause();
  return 0;
}

START_TEST(a_task_past_its_deadline_is_killed_with_its_group)
{
  shared_setup(0);
  /* The grandchild is reparented to us when its parent dies: we reap it. */
  ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  crew_config cfg = pcfg(2, 0);
  cfg.task_timeout_ns = 200 * MS;
  crew_pool *pool = pcreate(&cfg);
  crew_future *s = NULL;
  ck_assert_int_eq(crew_submit(pool, sleeper_task, NULL, 0, 0, &s), 0);
  uint64_t start = take();
  pid_t g = (pid_t)(int64_t)take();
  ck_assert_int_gt(g, 0);
  run_adds(pool, 5); /* on the other worker meanwhile */
  int rc = crew_future_wait(s);
  uint64_t elapsed = now_ns() - start;
  ck_assert_int_eq(rc, CREW_EDEADLINE);
  ck_assert_msg(elapsed >= 200 * MS && elapsed <= 500 * MS,
                "resolved %.1f ms after the task started",
                (double)elapsed / 1e6);
  crew_future_release(s);

  /* The grandchild was killed too, within a second. */
  int wstatus = 0;
  pid_t r = 0;
  for (int i = 0; i < 500 && r == 0; i++) {
    r = waitpid(g, &wstatus, WNOHANG);
    if (r == 0)
      pause_ms(2);
  }
  ck_assert_int_eq(r, g);
  ck_assert(WIFSIGNALED(wstatus));
  ck_assert_int_eq(WTERMSIG(wstatus), SIGKILL);

  run_adds(pool, 5);
  wait_pool_workers(pool, 2);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.deadline_killed, 1);
  ck_assert_uint_eq(st.crashed, 0);
  ck_assert_uint_eq(st.completed, 10);
  ck_assert_uint_eq(st.submitted, 11);
  ck_assert_uint_eq(st.restarted, 1);
  assert_pool_settled(pool);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/*
 * Every deadline kill costs exactly one replacement: the replacement is not
 * itself taken for the task that overran (its slot's "busy since" is the
 * dead worker's) and killed before it could start.
 */
START_TEST(each_deadline_kill_costs_one_replacement)
{
  enum { ROUNDS = 5 };
  shared_setup(0);
  crew_config cfg = pcfg(1, 0);
  cfg.task_timeout_ns = 100 * MS;
  crew_pool *pool = pcreate(&cfg);
  int kind = CRASH_KILLED; /* posts its pid, then waits to be killed */
  for (int i = 0; i < ROUNDS; i++) {
    crew_future *f = NULL;
    ck_assert_int_eq(crew_submit(pool, crash_task, &kind, sizeof kind, 0, &f),
                     0);
    take();
    ck_assert_int_eq(crew_future_wait(f), CREW_EDEADLINE);
    crew_future_release(f);
    expect_add(submit_add(pool, i), i);
  }
  wait_pool_workers(pool, 1);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.deadline_killed, ROUNDS);
  ck_assert_uint_eq(st.crashed, 0);
  ck_assert_uint_eq(st.completed, ROUNDS);
  ck_assert_uint_eq(st.restarted, ROUNDS);
  assert_pool_settled(pool);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* ============================================================== storm */

START_TEST(crashing_tasks_cannot_start_a_fork_storm)
{
  enum { N = 40 };
  shared_setup(0);
  crew_pool *pool = ppool(2, 0);
  uint64_t t0 = now_ns();
  crew_future *fs[N];
  int kind = CRASH_SEGV;
  for (int i = 0; i < N; i++) {
    int64_t x = i;
    if (i % 2 == 0)
      ck_assert_int_eq(
          crew_submit(pool, crash_task, &kind, sizeof kind, 0, &fs[i]), 0);
    else
      ck_assert_int_eq(
          crew_submit(pool, add_task, &x, sizeof x, sizeof x, &fs[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    if (i % 2 == 0) {
      ck_assert_int_eq(crew_future_wait(fs[i]), CREW_ECRASHED);
      crew_future_release(fs[i]);
    } else {
      expect_add(fs[i], i);
    }
  }
  uint64_t settled = now_ns() - t0;
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.crashed, N / 2);
  ck_assert_uint_eq(st.completed, N / 2);
  ck_assert_uint_le(st.restarted, N / 2);
  /* Once both slots are filled again, every death was replaced once. */
  wait_pool_workers(pool, 2);
  st = pool_stats(pool);
  ck_assert_uint_eq(st.restarted, N / 2);
  assert_pool_settled(pool);
  fprintf(stderr, "fork storm: %d tasks settled in %.0f ms\n", N,
          (double)settled / 1e6);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* ============================================================ recycle */

/* Tasks of the recycling test, times CREW_STRESS_SCALE: 10^5 (about 4 s
 * plain); 2 * 10^4 under sanitizers, where each fork costs several times
 * more (10^5 takes about 25 s under TSan). */
#ifndef RECYCLE_TASKS
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define RECYCLE_TASKS 20000
#else
#define RECYCLE_TASKS 100000
#endif
#endif

struct recycle_out {
  int64_t y;
  int64_t pid;
};

static int recycle_task(const void *in, void *out)
{
  int64_t x = *(const int64_t *)in;
  struct recycle_out *o = out;
  o->y = 2 * x + 1;
  o->pid = getpid();
  atomic_fetch_add(&hits[x], 1);
  return 0;
}

static int cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

START_TEST(workers_are_recycled_after_max_tasks)
{
  size_t n = scaled(RECYCLE_TASKS);
  shared_setup(n);
  crew_config cfg = pcfg(2, 0);
  cfg.max_tasks_per_worker = 10;
  crew_pool *pool = pcreate(&cfg);
  crew_future **fs = calloc(n, sizeof *fs);
  int64_t *pids = calloc(n, sizeof *pids);
  ck_assert(fs != NULL && pids != NULL);
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++)
    quiet_assert_int_eq(crew_submit(pool, recycle_task, &(int64_t){(int64_t)i},
                                    sizeof(int64_t), sizeof(struct recycle_out),
                                    &fs[i]),
                        0);
  for (size_t i = 0; i < n; i++) {
    struct recycle_out o = {-1, -1};
    quiet_assert_int_eq(crew_future_get(fs[i], &o, sizeof o), 0);
    quiet_assert_int_eq(o.y, 2 * (int64_t)i + 1);
    pids[i] = o.pid;
    crew_future_release(fs[i]);
  }
  uint64_t took = now_ns() - t0;
  ck_assert_uint_eq(hits_not_once(n), 0);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.crashed, 0);
  ck_assert_uint_eq(st.completed, n);
  ck_assert_uint_eq(st.failed, 0);
  /* Each process runs at most 10 tasks: at least ceil(n / 10) ran them, 2
   * of them the first workers. Each replacement follows an exit after 10. */
  ck_assert_uint_ge(st.restarted, (n + 9) / 10 - 2);
  ck_assert_uint_le(st.restarted, n / 10);
  qsort(pids, n, sizeof *pids, cmp_i64);
  size_t distinct = 0;
  for (size_t i = 0; i < n; i++) {
    quiet_assert(pids[i] > 0 && pids[i] != getpid());
    distinct += i == 0 || pids[i] != pids[i - 1];
  }
  ck_assert_uint_gt(distinct, 2);
  fprintf(stderr, "recycling: %zu tasks, %ju workers restarted, %.0f ms\n", n,
          (uintmax_t)st.restarted, (double)took / 1e6);
  free(fs);
  free(pids);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* ============================================================ hygiene */

START_TEST(no_child_is_left_after_destroy)
{
  shared_setup(0);
  crew_config cfg = pcfg(2, 0);
  cfg.max_tasks_per_worker = 3;
  crew_pool *pool = pcreate(&cfg);
  run_adds(pool, 20);
  int kind = CRASH_SEGV;
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, crash_task, &kind, sizeof kind, 0, &f), 0);
  ck_assert_int_eq(crew_future_wait(f), CREW_ECRASHED);
  crew_future_release(f);
  run_adds(pool, 10);
  crew_pool_destroy(pool);
  int wstatus;
  errno = 0;
  ck_assert_int_eq(waitpid(-1, &wstatus, WNOHANG), -1);
  ck_assert_int_eq(errno, ECHILD);
  shared_teardown();
}
END_TEST

/* Posts (pid << 32 | parent pid), then blocks until killed. */
static int report_and_block_task(const void *in, void *out)
{
  (void)in;
  (void)out;
  post((uint64_t)getpid() << 32 | (uint64_t)getppid());
  for (;;)
    pause();
  return 0;
}

START_TEST(workers_die_with_a_killed_parent)
{
  shared_setup(0);
  /* Orphans come to us, so that we can reap what dies. */
  ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  pid_t parent = fork();
  ck_assert_int_ge(parent, 0);
  if (parent == 0) {
    crew_config cfg = pcfg(2, 0);
    crew_pool *pool = NULL;
    if (crew_pool_create(&pool, &cfg) != 0)
      _exit(1);
    for (int i = 0; i < 2; i++)
      if (crew_submit(pool, report_and_block_task, NULL, 0, 0, NULL) != 0)
        _exit(2);
    for (;;)
      pause();
  }
  pid_t pids[3]; /* two workers, then the fork server */
  for (int i = 0; i < 2; i++) {
    uint64_t v = take();
    pids[i] = (pid_t)(v >> 32);
    pid_t server = (pid_t)(v & 0xffffffffu);
    if (i == 0)
      pids[2] = server;
    ck_assert_int_eq(server, pids[2]);
  }
  ck_assert_int_ne(pids[0], pids[1]);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_ne(pids[i], parent);
    ck_assert_int_ne(pids[i], getpid());
    ck_assert(!proc_gone(pids[i]));
  }
  ck_assert_int_eq(kill(parent, SIGKILL), 0);
  uint64_t t0 = now_ns();
  int wstatus = 0;
  ck_assert_int_eq(waitpid(parent, &wstatus, 0), parent);
  ck_assert(WIFSIGNALED(wstatus));
  bool gone = false;
  while (!gone && now_ns() - t0 < 1000 * MS) {
    while (waitpid(-1, NULL, WNOHANG) > 0)
      ;
    gone = proc_gone(pids[0]) && proc_gone(pids[1]) && proc_gone(pids[2]);
    if (!gone)
      pause_ms(2);
  }
  ck_assert_msg(gone, "after 1 s: worker %d %s, worker %d %s, server %d %s",
                (int)pids[0], proc_gone(pids[0]) ? "gone" : "alive",
                (int)pids[1], proc_gone(pids[1]) ? "gone" : "alive",
                (int)pids[2], proc_gone(pids[2]) ? "gone" : "alive");
  /* Reap what came to us. */
  for (int i = 0; i < 500; i++) {
    pid_t r = waitpid(-1, NULL, WNOHANG);
    if (r < 0)
      break;
    if (r == 0)
      pause_ms(2);
  }
  shared_teardown();
}
END_TEST

/* The open descriptors of this process, sorted. */
struct fdset {
  int32_t n;
  int32_t fds[255];
};

/* 0, or 1 if /proc/self/fd cannot be listed or has too many entries. */
static int list_fds(struct fdset *s)
{
  s->n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL)
    return 1;
  int self = dirfd(d);
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    int fd = atoi(e->d_name);
    if (fd == self)
      continue;
    if (s->n == 255) {
      rc = 1;
      break;
    }
    int i = s->n++;
    while (i > 0 && s->fds[i - 1] > fd) { /* insertion sort */
      s->fds[i] = s->fds[i - 1];
      i--;
    }
    s->fds[i] = fd;
  }
  closedir(d);
  return rc;
}

static int list_fds_task(const void *in, void *out)
{
  (void)in;
  return list_fds(out);
}

static void fds_str(const struct fdset *s, char *buf, size_t size)
{
  size_t at = 0;
  buf[0] = '\0';
  for (int i = 0; i < s->n && at + 12 < size; i++)
    at += (size_t)snprintf(buf + at, size - at, "%d ", (int)s->fds[i]);
}

static void expect_worker_fds(crew_pool *pool, const struct fdset *want)
{
  struct fdset got;
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, list_fds_task, NULL, 0, sizeof got, &f),
                   0);
  ck_assert_int_eq(crew_future_get(f, &got, sizeof got), 0);
  crew_future_release(f);
  char a[1024], b[1024];
  fds_str(&got, a, sizeof a);
  fds_str(want, b, sizeof b);
  ck_assert_msg(got.n == want->n &&
                    memcmp(got.fds, want->fds,
                           (size_t)want->n * sizeof want->fds[0]) == 0,
                "worker has { %s}, the test had { %s} at create", a, b);
}

START_TEST(workers_get_the_descriptors_of_create_and_no_crew_one)
{
  shared_setup(0);
  int extra[6];
  int p1[2], p2[2];
  extra[0] = open("/dev/null", O_RDONLY);
  extra[1] = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ck_assert_int_eq(pipe(p1), 0);
  ck_assert_int_eq(pipe2(p2, O_CLOEXEC), 0);
  extra[2] = p1[0];
  extra[3] = p1[1];
  extra[4] = p2[0];
  extra[5] = p2[1];
  for (int i = 0; i < 6; i++)
    ck_assert_int_ge(extra[i], 0);
  struct fdset before, after;
  ck_assert_int_eq(list_fds(&before), 0);
  crew_pool *pool = ppool(1, 0);
  ck_assert_int_eq(list_fds(&after), 0);

  /* crew's own descriptors here are close-on-exec. */
  size_t added = 0;
  for (int i = 0; i < after.n; i++) {
    bool old = false;
    for (int j = 0; j < before.n; j++)
      old |= before.fds[j] == after.fds[i];
    if (old)
      continue;
    added++;
    int flags = fcntl(after.fds[i], F_GETFD);
    ck_assert_int_ge(flags, 0);
    ck_assert_msg(flags & FD_CLOEXEC, "crew's descriptor %d is not cloexec",
                  (int)after.fds[i]);
  }
  ck_assert_uint_ge((uintmax_t)after.n, (uintmax_t)before.n);
  ck_assert_uint_eq(added, (size_t)(after.n - before.n));

  /* A worker has exactly what we had at create; so does a replacement. */
  expect_worker_fds(pool, &before);
  int kind = CRASH_ABORT;
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, crash_task, &kind, sizeof kind, 0, &f), 0);
  ck_assert_int_eq(crew_future_wait(f), CREW_ECRASHED);
  crew_future_release(f);
  int later = open("/dev/null", O_RDONLY); /* after create: not inherited */
  ck_assert_int_ge(later, 0);
  expect_worker_fds(pool, &before);
  ck_assert_uint_eq(pool_stats(pool).restarted, 1);
  crew_pool_destroy(pool);
  close(later);
  for (int i = 0; i < 6; i++)
    close(extra[i]);
  shared_teardown();
}
END_TEST

/* The application's SIGCHLD handler writes each si_pid to this pipe. */
static int chld_pipe[2] = {-1, -1};

static void on_sigchld(int sig, siginfo_t *info, void *ctx)
{
  (void)sig;
  (void)ctx;
  int saved = errno;
  int32_t pid = (int32_t)info->si_pid;
  ssize_t n = write(chld_pipe[1], &pid, sizeof pid);
  (void)n;
  errno = saved;
}

/* Read the handler's reports until pid shows up (10 s at most). */
static bool handler_saw(pid_t pid)
{
  uint64_t end = now_ns() + TAKE_LIMIT;
  while (now_ns() < end) {
    struct pollfd p = {.fd = chld_pipe[0], .events = POLLIN};
    int ready = poll(&p, 1, 100);
    if (ready < 0 && errno != EINTR)
      return false;
    if (ready <= 0)
      continue;
    int32_t got;
    ssize_t n = read(chld_pipe[0], &got, sizeof got);
    if (n == (ssize_t)sizeof got && got == (int32_t)pid)
      return true;
  }
  return false;
}

/* out: the parent pid (the fork server). */
static int ppid_task(const void *in, void *out)
{
  (void)in;
  *(int64_t *)out = getppid();
  return 0;
}

START_TEST(an_application_sigchld_handler_is_left_alone)
{
  shared_setup(0);
  ck_assert_int_eq(pipe2(chld_pipe, O_CLOEXEC | O_NONBLOCK), 0);
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigchld;
  sa.sa_flags = SA_SIGINFO; /* no SA_RESTART: crew must bear EINTR */
  sigemptyset(&sa.sa_mask);
  ck_assert_int_eq(sigaction(SIGCHLD, &sa, NULL), 0);

  crew_pool *pool = ppool(2, 0);
  crew_future *f = NULL;
  int64_t server = 0;
  ck_assert_int_eq(crew_submit(pool, ppid_task, NULL, 0, sizeof server, &f), 0);
  ck_assert_int_eq(crew_future_get(f, &server, sizeof server), 0);
  crew_future_release(f);
  ck_assert_int_ne(server, getpid());
  run_adds(pool, 20);
  int kind = CRASH_SEGV;
  ck_assert_int_eq(crew_submit(pool, crash_task, &kind, sizeof kind, 0, &f), 0);
  ck_assert_int_eq(crew_future_wait(f), CREW_ECRASHED);
  crew_future_release(f);
  run_adds(pool, 20);

  /* Our own child: the handler sees it, and we reap it ourselves. */
  pid_t child = fork();
  ck_assert_int_ge(child, 0);
  if (child == 0)
    _exit(7);
  ck_assert(handler_saw(child));
  int wstatus = 0;
  pid_t r;
  while ((r = waitpid(child, &wstatus, 0)) < 0 && errno == EINTR)
    ;
  ck_assert_int_eq(r, child);
  ck_assert(WIFEXITED(wstatus));
  ck_assert_int_eq(WEXITSTATUS(wstatus), 7);

  ck_assert_int_eq(sigaction(SIGCHLD, NULL, &old), 0);
  ck_assert(old.sa_flags & SA_SIGINFO);
  ck_assert(old.sa_sigaction == on_sigchld);
  run_adds(pool, 20);
  crew_pool_destroy(pool);
  /* The fork server was our child: its end reached the handler too. */
  ck_assert(handler_saw((pid_t)server));
  ck_assert_int_eq(sigaction(SIGCHLD, NULL, &old), 0);
  ck_assert(old.sa_sigaction == on_sigchld);
  errno = 0;
  ck_assert_int_eq(waitpid(-1, &wstatus, WNOHANG), -1);
  ck_assert_int_eq(errno, ECHILD);
  signal(SIGCHLD, SIG_DFL);
  close(chld_pipe[0]);
  close(chld_pipe[1]);
  shared_teardown();
}
END_TEST

START_TEST(code_the_workers_lack_is_refused)
{
  shared_setup(0);
  crew_pool *pool = ppool(2, 0);
  unsigned char *heap = malloc(64);
  ck_assert_ptr_nonnull(heap);
  memset(heap, 0xc3, 64); /* ret, were it ever run */
  crew_fn bogus[2] = {(crew_fn)(uintptr_t)0x1000,
                      (crew_fn)(uintptr_t)(void *)heap};
  for (int i = 0; i < 2; i++) {
    int64_t x = 1, in[4] = {1, 2, 3, 4}, out[4];
    crew_future *f = NO_FUTURE;
    ck_assert_int_eq(crew_submit(pool, bogus[i], &x, sizeof x, 0, &f),
                     CREW_EINVAL);
    ck_assert_ptr_eq(f, NO_FUTURE);
    ck_assert_int_eq(crew_submit(pool, bogus[i], &x, sizeof x, 0, NULL),
                     CREW_EINVAL);
    ck_assert_int_eq(crew_submit_timed(pool, bogus[i], &x, sizeof x, 0, &f, 0),
                     CREW_EINVAL);
    ck_assert_int_eq(
        crew_map(pool, bogus[i], in, sizeof in[0], out, sizeof out[0], 4),
        CREW_EINVAL);
  }
  free(heap);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, 0);
  ck_assert_uint_eq(st.crashed, 0);
  run_adds(pool, 10);
  st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, 10);
  ck_assert_uint_eq(st.crashed, 0);
  ck_assert_uint_eq(st.restarted, 0);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

START_TEST(a_forked_child_cannot_use_the_pool)
{
  shared_setup(0);
  crew_pool *pool = ppool(2, 0);
  run_adds(pool, 5);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    /* No Check asserts here: report through the exit status. */
    int bad = 0;
    int64_t x = 1;
    crew_future *f = NO_FUTURE;
    crew_stats st;
    if (crew_submit(pool, add_task, &x, sizeof x, sizeof x, &f) !=
            CREW_EINVAL ||
        f != NO_FUTURE)
      bad |= 1;
    if (crew_submit_timed(pool, add_task, &x, sizeof x, 0, NULL, 0) !=
        CREW_EINVAL)
      bad |= 2;
    if (crew_map(pool, add_task, &x, 0, NULL, 0, 3) != CREW_EINVAL)
      bad |= 4;
    if (crew_pool_stats(pool, &st) != CREW_EINVAL)
      bad |= 8;
    if (crew_pool_shutdown(pool, CREW_CANCEL) != CREW_EINVAL)
      bad |= 16;
    crew_pool_destroy(pool); /* frees nothing in a child */
    _exit(bad);
  }
  int wstatus = 0;
  ck_assert_int_eq(waitpid(pid, &wstatus, 0), pid);
  ck_assert(WIFEXITED(wstatus));
  ck_assert_int_eq(WEXITSTATUS(wstatus), 0);
  run_adds(pool, 5);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, 10);
  ck_assert_uint_eq(st.completed, 10);
  ck_assert_uint_eq(atomic_load(&shm->ran), 10);
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

  tc = tcase_create("map");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, map_squares_match_thread_mode);
  tcase_add_test(tc, map_reads_and_writes_one_array_of_structs);
  tcase_add_test(tc, map_without_input_or_output_passes_null);
  tcase_add_test(tc, map_items_may_be_larger_than_max_in_size);
  tcase_add_test(tc, map_returns_the_lowest_failing_item);
  tcase_add_test(tc, map_checksum_is_the_same_in_both_modes);
  tcase_add_test(tc, map_refuses_a_stride_of_zero_with_an_array);
  suite_add_tcase(s, tc);

  tc = tcase_create("crash");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, a_segfault_resolves_crashed);
  tcase_add_test(tc, an_abort_resolves_crashed);
  tcase_add_test(tc, an_exit_3_resolves_crashed);
  tcase_add_test(tc, an_exit_0_resolves_crashed);
  tcase_add_test(tc, an_outside_sigkill_resolves_crashed);
  tcase_add_test(tc, a_worker_dying_in_a_map_chunk);
  suite_add_tcase(s, tc);

  tc = tcase_create("deadline");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, a_task_past_its_deadline_is_killed_with_its_group);
  tcase_add_test(tc, each_deadline_kill_costs_one_replacement);
  suite_add_tcase(s, tc);

  tc = tcase_create("storm");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, crashing_tasks_cannot_start_a_fork_storm);
  suite_add_tcase(s, tc);

  tc = tcase_create("recycle");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, workers_are_recycled_after_max_tasks);
  suite_add_tcase(s, tc);

  tc = tcase_create("hygiene");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, no_child_is_left_after_destroy);
  tcase_add_test(tc, workers_die_with_a_killed_parent);
  tcase_add_test(tc, workers_get_the_descriptors_of_create_and_no_crew_one);
  tcase_add_test(tc, an_application_sigchld_handler_is_left_alone);
  tcase_add_test(tc, code_the_workers_lack_is_refused);
  tcase_add_test(tc, a_forked_child_cannot_use_the_pool);
  suite_add_tcase(s, tc);

  return run_suite(s);
}
