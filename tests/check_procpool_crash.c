/*
 * check_procpool_crash.c - worker processes that die or overrun: crash
 * isolation (segfault, abort, _exit, exit, an outside SIGKILL, a death in a
 * map chunk), deadlines (the task's process group is killed, one
 * replacement per kill), how the worker ended (crew_future_exit), no fork
 * storm from crashing tasks, recycling after max_tasks_per_worker, and a
 * worker killed while it spins for a task that was left to it.
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
#include <limits.h>
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

/* ====================================================== a dead spinner */

/*
 * Two idle workers with a spin that does not end: one spins on the task
 * queue, the other sleeps. The first push during a spin counts on the
 * spinner and wakes nobody (a woken sleeper would only take a core from
 * it): with the spinner stopped, nothing runs the task. Killed there, the
 * spinner must not take the task with it: the pool finds the death, and
 * the task runs once, on the sleeper or the replacement.
 */
START_TEST(a_task_pushed_to_a_killed_spinner_still_runs)
{
  shared_setup(0);
  crew_config cfg = pcfg(2, 0);
  cfg.idle_spin_ns = 60000 * MS;
  crew_pool *pool = pool_create(&cfg);
  crew_future *g[2];
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(crew_submit(pool, gated_task, NULL, 0, 0, &g[i]), 0);
  pid_t pid[2] = {(pid_t)take(), (pid_t)take()}; /* both in a task */
  open_gate(2);
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(crew_future_wait(g[i]), 0);
    crew_future_release(g[i]);
  }
  /* Idle now: one spins (runnable), the other sleeps in the queue. */
  pid_t spinner = 0, sleeper = 0;
  for (int i = 0; i < 5000 && spinner == 0; i++) {
    char a = proc_state(pid[0]), b = proc_state(pid[1]);
    if (a == 'S' && b == 'R')
      sleeper = pid[0], spinner = pid[1];
    else if (a == 'R' && b == 'S')
      spinner = pid[0], sleeper = pid[1];
    else
      pause_ms(1);
  }
  ck_assert_msg(spinner != 0, "no worker spins while the other sleeps");
  ck_assert_int_eq(kill(spinner, SIGSTOP), 0);
  wait_state(spinner, 'T');
  crew_future *f = NULL; /* the spinner's, as it stands */
  ck_assert_int_eq(crew_submit(pool, gated_task, NULL, 0, 0, &f), 0);
  uint64_t v = 0;
  ck_assert_int_eq(crew_queue_pop_timed(box_q, &v, 50 * MS), CREW_ETIMEDOUT);
  ck_assert_int_eq(proc_state(sleeper), 'S'); /* not woken */
  ck_assert_int_eq(kill(spinner, SIGKILL), 0);
  pid_t runner = (pid_t)take();
  ck_assert_int_ne(runner, spinner);
  open_gate(1);
  ck_assert_int_eq(crew_future_wait_timed(f, 10000 * MS), 0);
  crew_future_release(f);
  ck_assert_int_eq(atomic_load(&shm->ran), 3);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.completed, 3);
  ck_assert_uint_eq(st.crashed, 0); /* it held no task */
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* ============================================================== crash */

/* How f's worker ended, asserting crew_future_exit tells it: a process of
 * its own. */
static crew_exit exit_of(const crew_future *f)
{
  crew_exit e = {.pid = -1, .code = INT_MIN};
  ck_assert_int_eq(crew_future_exit(f, &e), 0);
  ck_assert_int_gt(e.pid, 0);
  ck_assert_int_ne(e.pid, getpid());
  return e;
}

/*
 * One worker crashes in a task as `kind` says, while the other runs a
 * parked task: the crash resolves with CREW_ECRASHED, and crew_future_exit
 * tells the crashing worker's pid and `code` (before and after the pool is
 * destroyed); tasks before and after complete, the pool gets its worker
 * back and keeps working.
 */
static void crash_scenario(int kind, int code)
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
  pid_t victim = 0;
  if (kind == CRASH_KILLED) {
    victim = (pid_t)take();
    ck_assert_int_ne(victim, parked_pid);
    ck_assert_int_ne(victim, getpid());
    ck_assert_int_eq(kill(victim, SIGKILL), 0);
  }
  ck_assert_int_eq(crew_future_wait(crash), CREW_ECRASHED);
  ck_assert_int_eq(crew_future_status(crash), CREW_ECRASHED);
  crew_exit end = exit_of(crash);
  ck_assert_int_eq(end.code, code);
  ck_assert_int_ne(end.pid, parked_pid);
  if (victim != 0)
    ck_assert_int_eq(end.pid, victim);
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
  crew_exit later = exit_of(crash); /* the future outlives its pool */
  ck_assert_int_eq(later.pid, end.pid);
  ck_assert_int_eq(later.code, code);
  crew_future_release(crash);
  shared_teardown();
}

START_TEST(a_segfault_resolves_crashed)
{
  crash_scenario(CRASH_SEGV, -SIGSEGV);
}
END_TEST

START_TEST(an_abort_resolves_crashed)
{
  crash_scenario(CRASH_ABORT, -SIGABRT);
}
END_TEST

START_TEST(an_exit_3_resolves_crashed)
{
  crash_scenario(CRASH_EXIT3, 3);
}
END_TEST

START_TEST(an_exit_0_resolves_crashed)
{
  crash_scenario(CRASH_EXIT0, 0);
}
END_TEST

START_TEST(an_outside_sigkill_resolves_crashed)
{
  crash_scenario(CRASH_KILLED, -SIGKILL);
}
END_TEST

/*
 * crew_future_exit tells only of a worker's death: CREW_EINVAL, *e left
 * alone, for NULL arguments, a future still queued or running, one that
 * completed (with 0 or a failing status), a cancelled one, and a thread
 * pool's failed future.
 */
static void assert_no_exit(const crew_future *f)
{
  crew_exit e = {.pid = -1, .code = INT_MIN};
  ck_assert_int_eq(crew_future_exit(f, &e), CREW_EINVAL);
  ck_assert_int_eq(e.pid, -1);
  ck_assert_int_eq(e.code, INT_MIN);
}

START_TEST(exit_is_einval_without_a_worker_death)
{
  shared_setup(0);
  crew_pool *pool = ppool(2, 0);
  crew_future *gated[2], *queued = submit_add(pool, 1), *failing = NULL;
  expect_add(queued, 1);
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(crew_submit(pool, gated_task, NULL, 0, 0, &gated[i]), 0);
    take(); /* running, parked at the gate */
  }
  queued = submit_add(pool, 2);
  assert_no_exit(gated[0]); /* running */
  assert_no_exit(queued);   /* queued: both workers are parked */
  ck_assert_int_eq(crew_future_cancel(queued), 0);
  assert_no_exit(queued);
  crew_future_release(queued);
  open_gate(2);
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(crew_future_wait(gated[i]), 0);
    assert_no_exit(gated[i]);
    crew_future_release(gated[i]);
  }
  int status = 7;
  ck_assert_int_eq(
      crew_submit(pool, status_task, &status, sizeof status, 0, &failing), 0);
  ck_assert_int_eq(crew_future_wait(failing), 7);
  assert_no_exit(failing);
  crew_future_release(failing);

  int kind = CRASH_EXIT3;
  crew_future *crash = NULL;
  ck_assert_int_eq(crew_submit(pool, crash_task, &kind, sizeof kind, 0, &crash),
                   0);
  ck_assert_int_eq(crew_future_wait(crash), CREW_ECRASHED);
  crew_exit e = {.pid = -1, .code = INT_MIN};
  ck_assert_int_eq(crew_future_exit(crash, NULL), CREW_EINVAL);
  ck_assert_int_eq(crew_future_exit(NULL, &e), CREW_EINVAL);
  ck_assert_int_eq(e.pid, -1);
  crew_future_release(crash);
  crew_pool_destroy(pool);
  shared_teardown();

  /* A thread pool's futures never tell of a worker's death. */
  crew_config cfg = pool_config(CREW_THREADS, 1);
  pool = pool_create(&cfg);
  ck_assert_int_eq(
      crew_submit(pool, status_task, &status, sizeof status, 0, &failing), 0);
  ck_assert_int_eq(crew_future_wait(failing), 7);
  assert_no_exit(failing);
  crew_pool_destroy(pool);
  assert_no_exit(failing);
  crew_future_release(failing);
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
  crew_pool *pool = pool_create(&cfg);
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
  crew_exit end = exit_of(s); /* killed by the manager */
  ck_assert_int_eq(end.code, -SIGKILL);

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
  ck_assert_int_eq(crew_future_status(s), CREW_EDEADLINE);
  crew_exit later = exit_of(s);
  ck_assert_int_eq(later.pid, end.pid);
  ck_assert_int_eq(later.code, -SIGKILL);
  crew_future_release(s);
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
  crew_pool *pool = pool_create(&cfg);
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
  crew_pool *pool = pool_create(&cfg);
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

/* ================================================================ main */

int main(void)
{
  Suite *s = suite_create("procpool_crash");

  TCase *tc = tcase_create("crash");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, a_segfault_resolves_crashed);
  tcase_add_test(tc, an_abort_resolves_crashed);
  tcase_add_test(tc, an_exit_3_resolves_crashed);
  tcase_add_test(tc, an_exit_0_resolves_crashed);
  tcase_add_test(tc, an_outside_sigkill_resolves_crashed);
  tcase_add_test(tc, exit_is_einval_without_a_worker_death);
  tcase_add_test(tc, a_worker_dying_in_a_map_chunk);
  tcase_add_test(tc, a_task_pushed_to_a_killed_spinner_still_runs);
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
  /* 10^4 forks: about 4 s on a quiet machine, near a minute on a loaded
   * one; the limit is for a hang, not a slow fork. */
  tcase_set_timeout(tc, 240);
  tcase_add_test(tc, workers_are_recycled_after_max_tasks);
  suite_add_tcase(s, tc);

  return run_suite(s);
}
