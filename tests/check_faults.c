/*
 * check_faults.c - process-mode faults (catalog 31-47 of the reliability
 * catalog; see tests/CATALOG.md) that need no test hooks:
 *
 *   34  a process-shared pthread_cond_t with waiters killed (the raw glibc
 *       experiment, run in a child with a watchdog so that a hang is a
 *       measured result), then the same abuse on crew's CREW_SHARED queue;
 *   31, 38-41, 44-47  result transfer cut by a crash, parent death with
 *       idle workers, a short-lived creator thread, a spinning task past its
 *       deadline, a crash loop (bounded processes, rate-limited respawn),
 *       many crashes and no zombie (also with SIGCHLD ignored), an
 *       application that reaps with waitpid(-1), its own children, and
 *       recycling of map runners with a backlog; a killed fork server.
 *
 * The faults that need a hook at an exact step of the protocol (33, 35-37,
 * 42) are check_faults_hooks.c, built with --enable-test-hooks.
 *
 * Tasks run in worker processes: they talk to the test through the shared
 * memory of proctest.h, made before the pool (a CREW_SHARED queue of posts,
 * a gate, counters).
 */
#include "config.h"

#include "harness.h"
#include "proctest.h"

#include <dirent.h>
#include <errno.h>
#include <gnu/libc-version.h>
#include <pthread.h>
#include <sched.h>
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

/* ThreadSanitizer sleeps 1 s in every exit() (atexit_sleep_ms): workers
 * that exit() on purpose would make the crash tests crawl. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
  return "atexit_sleep_ms=0";
}

/* ============================================================ helpers */

/* The child processes of pid (from /proc/PID/task/PID/children). */
static size_t children_of(pid_t pid)
{
  char path[96];
  snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return 0;
  size_t n = 0;
  int c, prev = ' ';
  while ((c = fgetc(f)) != EOF) {
    if (c != ' ' && prev == ' ')
      n++;
    prev = c;
  }
  fclose(f);
  return n;
}

/* ================================================ catalog 34: condvars */

/*
 * The raw experiment: a robust process-shared mutex and a process-shared
 * pthread_cond_t (CLOCK_MONOTONIC) in MAP_SHARED memory; each round forks
 * 20 waiters that block in pthread_cond_wait, then kills them all, either
 * while they wait (even rounds) or right after a broadcast woke them, before
 * they could take the mutex back (odd rounds); then signals and broadcasts.
 * After the rounds (or in a fresh experiment) it destroys the condvar. Each
 * call is watched: one that does not return within 500 ms is a hang.
 */
struct condx {
  pthread_mutex_t m;
  pthread_cond_t c;
  _Atomic int waiting;
  _Atomic int round;
  _Atomic int op; /* the call in progress: enum condx_op */
  _Atomic uint64_t progress;
};

enum condx_op {
  OP_SETUP = 0,
  OP_WAKE_THEN_KILL,
  OP_SIGNAL,
  OP_BROADCAST,
  OP_DESTROY,
  OP_DONE
};

static const char *condx_op_name(int op)
{
  static const char *names[] = {
      "setup",
      "pthread_cond_broadcast (waking those about to die)",
      "pthread_cond_signal",
      "pthread_cond_broadcast",
      "pthread_cond_destroy",
      "nothing (completed)"};
  return op >= 0 && op <= OP_DONE ? names[op] : "?";
}

static void condx_lock(struct condx *x)
{
  if (pthread_mutex_lock(&x->m) == EOWNERDEAD)
    pthread_mutex_consistent(&x->m);
}

static void condx_waiter(struct condx *x)
{
  condx_lock(x);
  x->waiting++;
  for (;;)
    if (pthread_cond_wait(&x->c, &x->m) == EOWNERDEAD)
      pthread_mutex_consistent(&x->m);
}

static void condx_step(struct condx *x, int op)
{
  atomic_store(&x->op, op);
  atomic_fetch_add(&x->progress, 1);
}

/* The experiment's process: `rounds` rounds, then destroy. */
static void condx_run(struct condx *x, int rounds, int nwaiters)
{
  for (int r = 0; r < rounds; r++) {
    atomic_store(&x->round, r);
    condx_step(x, OP_SETUP);
    x->waiting = 0;
    pid_t pid[32];
    for (int i = 0; i < nwaiters; i++) {
      pid[i] = fork();
      if (pid[i] == 0)
        condx_waiter(x);
      if (pid[i] < 0)
        _exit(2);
    }
    /* Holding the mutex with every waiter counted: all are in the wait. */
    for (;;) {
      condx_lock(x);
      if (x->waiting == nwaiters)
        break;
      pthread_mutex_unlock(&x->m);
      sched_yield();
    }
    if (r % 2 == 1) {
      condx_step(x, OP_WAKE_THEN_KILL);
      pthread_cond_broadcast(&x->c);
    }
    for (int i = 0; i < nwaiters; i++)
      kill(pid[i], SIGKILL);
    for (int i = 0; i < nwaiters; i++)
      while (waitpid(pid[i], NULL, 0) < 0 && errno == EINTR)
        ;
    condx_step(x, OP_SIGNAL);
    pthread_cond_signal(&x->c);
    condx_step(x, OP_BROADCAST);
    pthread_cond_broadcast(&x->c);
    pthread_mutex_unlock(&x->m);
  }
  condx_step(x, OP_DESTROY);
  pthread_cond_destroy(&x->c);
  condx_step(x, OP_DONE);
  _exit(0);
}

struct condx_result {
  bool hung;
  int round, op;
};

/* Run the experiment in a child, watching every call (500 ms each). */
static struct condx_result condx_experiment(int rounds, int nwaiters)
{
  struct condx *x = shared_map(sizeof *x);
  pthread_mutexattr_t ma;
  pthread_mutexattr_init(&ma);
  pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST);
  ck_assert_int_eq(pthread_mutex_init(&x->m, &ma), 0);
  pthread_mutexattr_destroy(&ma);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  ck_assert_int_eq(pthread_cond_init(&x->c, &ca), 0);
  pthread_condattr_destroy(&ca);

  pid_t child = fork();
  ck_assert_int_ge(child, 0);
  if (child == 0) {
    signal(SIGTERM, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    condx_run(x, rounds, nwaiters);
  }
  struct condx_result res = {false, 0, 0};
  uint64_t seen = UINT64_MAX, since = now_ns();
  int status = 0;
  for (;;) {
    pid_t r = waitpid(child, &status, WNOHANG);
    if (r == child)
      break;
    uint64_t p = atomic_load(&x->progress);
    if (p != seen) {
      seen = p;
      since = now_ns();
    } else if (atomic_load(&x->op) != OP_SETUP && now_ns() - since > 500 * MS) {
      /* Every waiter is dead and reaped before each watched call, so the
       * experiment has no children left to orphan. */
      res.hung = true;
      kill(child, SIGKILL);
      ck_assert_int_eq(waitpid(child, &status, 0), child);
      break;
    } else if (now_ns() - since > 5000 * MS) {
      kill(child, SIGKILL);
      waitpid(child, &status, 0);
      ck_abort_msg("the experiment's round %d set-up took over 5 s",
                   atomic_load(&x->round));
    }
    pause_ms(1);
  }
  res.round = atomic_load(&x->round);
  res.op = atomic_load(&x->op);
  if (!res.hung)
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the experiment failed (status %#x)", status);
  munmap(x, sizeof *x);
  return res;
}

/*
 * catalog 34, part 1: what this glibc does. Not an assertion about glibc
 * (which may change), but a measured result, printed, and the reason crew's
 * shared waits use a futex word (lib/sync.c crew__waitset_*). The test
 * checks that the experiment itself ran: it reached its watched calls.
 */
START_TEST(glibc_shared_condvar_with_killed_waiters)
{
  enum { ROUNDS = 50, WAITERS = 20 };
  struct condx_result a = condx_experiment(ROUNDS, WAITERS);
  ck_assert(a.hung || a.op == OP_DONE);
  ck_assert_int_ne(a.op, OP_SETUP);
  fprintf(stderr,
          "catalog 34 (glibc %s): %d rounds x %d killed waiters on a shared "
          "pthread_cond_t: %s%s, round %d\n",
          gnu_get_libc_version(), ROUNDS, WAITERS,
          a.hung ? "BLOCKED in " : "completed",
          a.hung ? condx_op_name(a.op) : "", a.round);
  /* Destroy alone, after one round of waiters killed while waiting. */
  struct condx_result d = condx_experiment(1, WAITERS);
  ck_assert(d.hung || d.op == OP_DONE);
  fprintf(stderr,
          "catalog 34 (glibc %s): destroy after %d waiters killed while "
          "waiting: %s%s\n",
          gnu_get_libc_version(), WAITERS, d.hung ? "BLOCKED in " : "returned",
          d.hung ? condx_op_name(d.op) : "");
}
END_TEST

/* A popper child: says it is ready, then blocks in crew_queue_pop. */
static void popper(crew_queue *q, crew_queue *ready, int id)
{
  signal(SIGTERM, SIG_DFL);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  crew_queue_push(ready, &id);
  int v;
  int rc = crew_queue_pop(q, &v);
  _exit(rc == 0 && v >= 0 && v < 100 ? v : 200); /* what it popped */
}

/* How many rounds of the shared queue abuse: fewer under sanitizers, where
 * each fork costs several times more. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define QUEUE_ROUNDS 20
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define QUEUE_ROUNDS 20
#endif
#endif
#ifndef QUEUE_ROUNDS
#define QUEUE_ROUNDS 50
#endif

/* Fork n + 1 poppers of q; return once each has said it is ready on
 * `ready` and sleeps in its pop. */
static void start_poppers(crew_queue *q, crew_queue *ready, pid_t *pid, int n)
{
  for (int i = 0; i <= n; i++) {
    pid[i] = fork();
    ck_assert_int_ge(pid[i], 0);
    if (pid[i] == 0)
      popper(q, ready, i);
  }
  for (int i = 0; i <= n; i++) {
    int id;
    ck_assert_int_eq(crew_queue_pop_timed(ready, &id, TAKE_LIMIT), 0);
  }
  for (int i = 0; i <= n; i++)
    wait_sleeping(pid[i]);
}

/* The dead took nothing twice and made nothing up: what is left of the
 * `pushed` items 0, 1, ... (`finished` poppers took one each) is a subset
 * of them, in order (the survivor may hold one). */
static void expect_the_rest_in_order(crew_queue *q, int pushed, int finished)
{
  size_t left = crew_queue_size(q);
  ck_assert_uint_le(left, (size_t)(pushed - finished));
  int v, last = -1, missed = 0;
  for (size_t i = 0; i < left; i++) {
    if (crew_queue_pop_timed(q, &v, 0) != 0) {
      /* the survivor, woken by the pushes, took one since the size */
      ck_assert_int_eq(++missed, 1);
      continue;
    }
    ck_assert_int_lt(v, pushed);
    ck_assert_int_gt(v, last);
    last = v;
  }
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, 0), CREW_ETIMEDOUT);
}

/* The live popper wakes: for this token, unless it took an item of the
 * batch already (then the token stays queued). */
static void expect_the_live_popper_woken(crew_queue *q, pid_t live, int pushed,
                                         size_t r)
{
  int v, token = 99, st = 0;
  ck_assert_int_eq(crew_queue_push_timed(q, &token, 1000 * MS), 0);
  pid_t got = 0;
  for (int i = 0; i < 2000 && (got = waitpid(live, &st, WNOHANG)) == 0; i++)
    pause_ms(1);
  ck_assert_msg(got == live, "round %zu: the live popper was not woken in 2 s",
                r);
  ck_assert(WIFEXITED(st));
  if (WEXITSTATUS(st) == token) {
    ck_assert_uint_eq(crew_queue_size(q), 0);
  } else {
    ck_assert_int_lt(WEXITSTATUS(st), pushed);
    ck_assert_int_eq(crew_queue_pop_timed(q, &v, 0), 0);
    ck_assert_int_eq(v, token);
  }
  ck_assert_uint_eq(crew_queue_size(q), 0);
}

/*
 * catalog 34, part 2: the same abuse on a CREW_SHARED crew_queue. Each round
 * forks 20 poppers blocked in crew_queue_pop (and one that lives), kills the
 * 20 while they wait (even rounds) or right after 20 pushes woke them (odd
 * rounds), then push, pop, a wake-up of the live popper, and, after the
 * rounds, close and destroy: every call returns at once (each within 1 s;
 * crew's shared waits sleep on a futex word that a dead waiter cannot
 * wedge), and no item is made up or duplicated.
 */
START_TEST(crew_shared_queue_with_killed_waiters)
{
  enum { WAITERS = 20 };
  size_t rounds = scaled(QUEUE_ROUNDS);
  crew_queue *q = NULL, *ready = NULL;
  ck_assert_int_eq(crew_queue_create(&q, 64, sizeof(int), CREW_SHARED), 0);
  ck_assert_int_eq(crew_queue_create(&ready, 64, sizeof(int), CREW_SHARED), 0);
  for (size_t r = 0; r < rounds; r++) {
    pid_t pid[WAITERS + 1];
    start_poppers(q, ready, pid, WAITERS);
    int pushed = 0;
    if (r % 2 == 1)
      for (; pushed < WAITERS; pushed++)
        ck_assert_int_eq(crew_queue_push_timed(q, &pushed, 0), 0);
    for (int i = 0; i < WAITERS; i++)
      ck_assert_int_eq(kill(pid[i], SIGKILL), 0);
    int finished = 0;
    for (int i = 0; i < WAITERS; i++) {
      int st;
      ck_assert_int_eq(waitpid(pid[i], &st, 0), pid[i]);
      ck_assert((WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) ||
                (WIFEXITED(st) && WEXITSTATUS(st) < pushed));
      finished += WIFEXITED(st);
    }
    uint64_t t0 = now_ns();
    expect_the_rest_in_order(q, pushed, finished);
    expect_the_live_popper_woken(q, pid[WAITERS], pushed, r);
    ck_assert_msg(now_ns() - t0 < 2000 * MS, "round %zu took %.0f ms", r,
                  (double)(now_ns() - t0) / 1e6);
  }
  uint64_t t0 = now_ns();
  crew_queue_close(q);
  int v;
  ck_assert_int_eq(crew_queue_pop(q, &v), CREW_ECLOSED);
  crew_queue_destroy(q);
  crew_queue_destroy(ready);
  ck_assert_uint_lt(now_ns() - t0, 1000 * MS);
}
END_TEST

/* ==================================================== result transfer */

/* Writes half of its output, then crashes (catalog 31). */
static int half_then_crash_task(const void *in, void *out)
{
  size_t n = *(const size_t *)in;
  memset(out, 0x5a, n / 2);
  raise(SIGSEGV);
  return 0;
}

/* Writes all n bytes of its output: byte i is i * 7. */
static int fill_task(const void *in, void *out)
{
  size_t n = *(const size_t *)in;
  unsigned char *o = out;
  for (size_t i = 0; i < n; i++)
    o[i] = (unsigned char)(i * 7);
  return 0;
}

/*
 * catalog 31: results of 0 bytes, exactly the cap, above the cap (refused
 * at submit), and a worker that dies halfway through writing a 1 MiB
 * result: CREW_ECRASHED, and crew_future_get leaves the caller's buffer
 * untouched (no half result comes back). Limits of every size and large
 * round trips: check_procpool task_sizes_are_limited_exactly,
 * default_sizes_and_a_large_round_trip.
 */
START_TEST(a_result_cut_by_a_crash_never_arrives)
{
  enum { CAP = 1 << 20 };
  shared_setup(0);
  crew_config cfg = flt_cfg(2);
  cfg.max_out_size = CAP;
  crew_pool *pool = pool_create(&cfg);
  size_t n = CAP;
  crew_future *f = NULL, *zero = NULL, *full = NULL;
  ck_assert_int_eq(crew_submit(pool, fill_task, &n, sizeof n, CAP + 1, &f),
                   CREW_EINVAL);
  ck_assert_int_eq(
      crew_submit(pool, half_then_crash_task, &n, sizeof n, CAP, &f), 0);
  size_t z = 0;
  ck_assert_int_eq(crew_submit(pool, fill_task, &z, sizeof z, 0, &zero), 0);
  ck_assert_int_eq(crew_submit(pool, fill_task, &n, sizeof n, CAP, &full), 0);
  unsigned char *buf = malloc(CAP);
  ck_assert_ptr_nonnull(buf);
  memset(buf, 0xee, CAP);
  ck_assert_int_eq(crew_future_get(f, buf, CAP), CREW_ECRASHED);
  for (size_t i = 0; i < CAP; i += 4093)
    quiet_assert_uint_eq(buf[i], 0xee);
  ck_assert_uint_eq(buf[CAP - 1], 0xee);
  ck_assert_int_eq(crew_future_get(zero, NULL, 0), 0);
  ck_assert_int_eq(crew_future_get(full, buf, CAP), 0);
  for (size_t i = 0; i < CAP; i += 4093)
    quiet_assert_uint_eq(buf[i], (unsigned char)(i * 7));
  ck_assert_uint_eq(buf[CAP - 1], (unsigned char)((CAP - 1) * 7));
  crew_future_release(f);
  crew_future_release(zero);
  crew_future_release(full);
  free(buf);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.crashed, 1);
  ck_assert_uint_eq(st.completed, 2);
  assert_pool_settled(pool);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* ============================================ catalog 38, 39: lifetime */

/* init: posts the worker's pid. */
static int post_pid_init(void *arg)
{
  (void)arg;
  post((uint64_t)getpid());
  return 0;
}

/*
 * catalog 38: the parent is SIGKILLed while its workers are idle, blocked
 * in their wait for work (check_procpool_hygiene
 * workers_die_with_a_killed_parent has them busy). Every worker and the
 * fork server are gone within 1 s: the server dies with the parent
 * (PR_SET_PDEATHSIG), each worker with the server (PR_SET_PDEATHSIG against
 * a single-threaded process).
 */
START_TEST(idle_workers_die_with_a_killed_parent)
{
  enum { W = 3 };
  shared_setup(0);
  ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  pid_t parent = fork();
  ck_assert_int_ge(parent, 0);
  if (parent == 0) {
    signal(SIGTERM, SIG_DFL);
    crew_config cfg = flt_cfg(W);
    cfg.init = post_pid_init;
    crew_pool *pool = NULL;
    if (crew_pool_create(&pool, &cfg) != 0)
      _exit(1);
    post(0); /* created */
    for (;;)
      pause();
  }
  pid_t pids[W];
  size_t got = 0;
  for (int i = 0; i < W + 1; i++) {
    uint64_t v = take();
    if (v != 0)
      pids[got++] = (pid_t)v;
  }
  ck_assert_uint_eq(got, W);
  for (int i = 0; i < W; i++)
    wait_sleeping(pids[i]);
  ck_assert_int_eq(kill(parent, SIGKILL), 0);
  ck_assert_int_eq(waitpid(parent, NULL, 0), parent);
  uint64_t t0 = now_ns();
  bool gone = false;
  while (!gone && now_ns() - t0 < 1000 * MS) {
    while (waitpid(-1, NULL, WNOHANG) > 0)
      ;
    gone = true;
    for (int i = 0; i < W; i++)
      gone = gone && proc_gone(pids[i]);
    if (!gone)
      pause_ms(2);
  }
  ck_assert_msg(gone, "idle workers outlived their parent by 1 s");
  for (int i = 0; i < 500; i++) { /* reap what came to us */
    pid_t r = waitpid(-1, NULL, WNOHANG);
    if (r < 0)
      break;
    if (r == 0)
      pause_ms(2);
  }
  ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
  shared_teardown();
}
END_TEST

static void *create_pool_thread(void *arg)
{
  crew_config cfg = flt_cfg(2);
  cfg.init = post_pid_init;
  crew_pool **pool = arg;
  if (crew_pool_create(pool, &cfg) != 0)
    *pool = NULL;
  return NULL;
}

/* out: the worker's pid. */
static int pid_task(const void *in, void *out)
{
  (void)in;
  *(int64_t *)out = getpid();
  return 0;
}

/*
 * catalog 39: a pool created by a thread that exits at once. crew forks its
 * fork server from the pool's own manager thread (which lives until the
 * pool is shut down), so PR_SET_PDEATHSIG does not fire when the creator
 * thread ends: the same workers keep serving, none is restarted.
 */
START_TEST(a_pool_outlives_the_thread_that_created_it)
{
  shared_setup(0);
  crew_pool *pool = NULL;
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, create_pool_thread, &pool), 0);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  ck_assert_ptr_nonnull(pool);
  int64_t w0 = (int64_t)take(), w1 = (int64_t)take();
  pause_ms(50); /* a PR_SET_PDEATHSIG surprise would strike now */
  for (int i = 0; i < 20; i++) {
    crew_future *f = NULL;
    ck_assert_int_eq(crew_submit(pool, pid_task, NULL, 0, sizeof(int64_t), &f),
                     0);
    int64_t pid = 0;
    ck_assert_int_eq(crew_future_get(f, &pid, sizeof pid), 0);
    ck_assert(pid == w0 || pid == w1);
    crew_future_release(f);
  }
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.restarted, 0);
  ck_assert_uint_eq(st.workers, 2);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* ============================================ catalog 40, 41: hung, loop */

/* Spins on the CPU forever (no system call to interrupt). */
static int spin_task(const void *in, void *out)
{
  (void)in;
  (void)out;
  post(1);
  for (volatile uint64_t i = 0;; i++)
    ;
  return 0;
}

/*
 * catalog 40: a task spinning on the CPU past task_timeout_ns: its worker
 * is killed, the future resolves CREW_EDEADLINE, the tasks queued behind it
 * run on the replacement. (Sleeping tasks and their process groups:
 * check_procpool_crash a_task_past_its_deadline_is_killed_with_its_group,
 * each_deadline_kill_costs_one_replacement.)
 */
START_TEST(a_spinning_task_is_killed_at_its_deadline)
{
  shared_setup(0);
  crew_config cfg = flt_cfg(1);
  cfg.task_timeout_ns = 100 * MS;
  crew_pool *pool = pool_create(&cfg);
  crew_future *spin = NULL, *after[4];
  ck_assert_int_eq(crew_submit(pool, spin_task, NULL, 0, 0, &spin), 0);
  for (uint32_t i = 0; i < 4; i++)
    after[i] = submit_counted(pool, i, i);
  take();
  uint64_t t0 = now_ns();
  ck_assert_int_eq(crew_future_wait(spin), CREW_EDEADLINE);
  ck_assert_uint_lt(now_ns() - t0, 1000 * MS);
  crew_future_release(spin);
  for (uint32_t i = 0; i < 4; i++)
    expect_counted(after[i], i, i);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.deadline_killed, 1);
  ck_assert_uint_eq(st.crashed, 0);
  ck_assert_uint_eq(st.completed, 4);
  assert_pool_settled(pool);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

static int segv_task(const void *in, void *out)
{
  (void)in;
  (void)out;
  raise(SIGSEGV);
  return 0;
}

/* The fork server's pid: the parent of a worker. */
static int ppid_task(const void *in, void *out)
{
  (void)in;
  *(int64_t *)out = getppid();
  return 0;
}

/*
 * catalog 41: a crash loop. One worker, a task that always crashes,
 * submitted 6 times between good tasks. Respawn is rate-limited: a slot
 * whose workers die young waits 10 ms, then 20, 40, 80 (doubling to 1 s),
 * so the 6 crashes take at least 150 ms; the fork server never has more
 * than the one worker child; the good tasks all complete.
 */
START_TEST(a_crash_loop_is_rate_limited_and_bounded)
{
  enum { CRASHES = 6 };
  shared_setup(0);
  crew_config cfg = flt_cfg(1);
  crew_pool *pool = pool_create(&cfg);
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, ppid_task, NULL, 0, sizeof(int64_t), &f),
                   0);
  int64_t server = 0;
  ck_assert_int_eq(crew_future_get(f, &server, sizeof server), 0);
  crew_future_release(f);
  crew_future *bad[CRASHES], *good[CRASHES];
  uint64_t t0 = now_ns();
  for (uint32_t i = 0; i < CRASHES; i++) {
    ck_assert_int_eq(crew_submit(pool, segv_task, NULL, 0, 0, &bad[i]), 0);
    good[i] = submit_counted(pool, i, i);
  }
  size_t most = 0;
  for (uint32_t i = 0; i < CRASHES; i++) {
    while (crew_future_wait_timed(bad[i], 2 * MS) == CREW_ETIMEDOUT) {
      size_t n = children_of((pid_t)server);
      most = n > most ? n : most;
    }
    ck_assert_int_eq(crew_future_wait(bad[i]), CREW_ECRASHED);
    crew_future_release(bad[i]);
  }
  uint64_t took = now_ns() - t0;
  for (uint32_t i = 0; i < CRASHES; i++)
    expect_counted(good[i], i, i);
  ck_assert_uint_le(most, 1);
  ck_assert_msg(took >= 150 * MS, "6 crash-loop deaths in %.0f ms",
                (double)took / 1e6);
  wait_pool_workers(pool, 1);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.crashed, CRASHES);
  ck_assert_uint_eq(st.restarted, CRASHES);
  assert_pool_settled(pool);
  fprintf(stderr, "catalog 41: %d crash-loop deaths took %.0f ms\n", CRASHES,
          (double)took / 1e6);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* ================================================= catalog 44-47: reaping */

/* Whether this process has a zombie child. */
static bool has_zombie_child(void)
{
  siginfo_t info;
  memset(&info, 0, sizeof info);
  return waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         info.si_pid != 0;
}

/* 100 crashes (scaled) over 20 workers, then destroy. */
static void many_crashes(void)
{
  enum { W = 20 };
  size_t n = scaled(100);
  crew_config cfg = flt_cfg(W);
  crew_pool *pool = pool_create(&cfg);
  crew_future **fs = calloc(n, sizeof *fs);
  ck_assert_ptr_nonnull(fs);
  for (size_t i = 0; i < n; i++)
    quiet_assert_int_eq(crew_submit(pool, segv_task, NULL, 0, 0, &fs[i]), 0);
  for (size_t i = 0; i < n; i++) {
    quiet_assert_int_eq(crew_future_wait(fs[i]), CREW_ECRASHED);
    crew_future_release(fs[i]);
  }
  free(fs);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.crashed, n);
  crew_pool_destroy(pool);
}

/*
 * catalog 44: after 100 worker crashes and destroy, this process has no
 * zombie child (workers are the fork server's children, and it reaps each
 * one once, when the parent says so); the harness checks that the children
 * are back to the baseline.
 */
START_TEST(many_crashes_leave_no_zombie)
{
  many_crashes();
  ck_assert(!has_zombie_child());
}
END_TEST

/*
 * catalog 44 with SIGCHLD set to SIG_IGN by the application: its children
 * (the fork server) are reaped by the kernel; crew's waitpid on the server
 * gets ECHILD and destroy still returns. Worker deaths are seen by the
 * server, which resets its signal dispositions, so each crash still
 * resolves CREW_ECRASHED.
 */
START_TEST(many_crashes_with_sigchld_ignored)
{
  struct sigaction ign = {.sa_handler = SIG_IGN}, old;
  sigemptyset(&ign.sa_mask);
  ck_assert_int_eq(sigaction(SIGCHLD, &ign, &old), 0);
  many_crashes();
  ck_assert(!has_zombie_child());
  ck_assert_int_eq(sigaction(SIGCHLD, &old, NULL), 0);
}
END_TEST

struct stealer {
  _Atomic bool stop;
  pid_t reaped[16];
  _Atomic int nreaped;
};

static void *steal_children(void *arg)
{
  struct stealer *s = arg;
  while (!atomic_load(&s->stop)) {
    pid_t r = waitpid(-1, NULL, WNOHANG);
    if (r > 0 && atomic_load(&s->nreaped) < 16)
      s->reaped[atomic_fetch_add(&s->nreaped, 1)] = r;
    sched_yield();
  }
  return NULL;
}

/*
 * catalog 45: an application thread loops on waitpid(-1, WNOHANG) while
 * workers crash and are replaced. It cannot take crew's workers (they are
 * the fork server's children), so crew still sees every death; at most it
 * reaps the fork server after the shutdown, and destroy returns.
 */
START_TEST(an_application_reaping_everything_steals_no_worker)
{
  enum { N = 10 };
  shared_setup(0);
  struct stealer s = {.nreaped = 0};
  atomic_init(&s.stop, false);
  crew_config cfg = flt_cfg(2);
  crew_pool *pool = pool_create(&cfg);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, steal_children, &s), 0);
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, ppid_task, NULL, 0, sizeof(int64_t), &f),
                   0);
  int64_t server = 0;
  ck_assert_int_eq(crew_future_get(f, &server, sizeof server), 0);
  crew_future_release(f);
  for (int i = 0; i < N; i++) {
    ck_assert_int_eq(crew_submit(pool, segv_task, NULL, 0, 0, &f), 0);
    ck_assert_int_eq(crew_future_wait(f), CREW_ECRASHED);
    crew_future_release(f);
    expect_counted(submit_counted(pool, i, (uint32_t)i), i, (uint32_t)i);
  }
  crew_pool_destroy(pool);
  atomic_store(&s.stop, true);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  int n = atomic_load(&s.nreaped);
  ck_assert_int_le(n, 1);
  if (n == 1)
    ck_assert_int_eq(s.reaped[0], (pid_t)server);
  shared_teardown();
}
END_TEST

/*
 * catalog 46: the application forks its own child while the pool runs and
 * recycles workers (max_tasks_per_worker 2); crew never reaps nor signals
 * it, and the application gets its exit status.
 */
START_TEST(the_applications_own_child_keeps_its_status)
{
  shared_setup(0);
  crew_config cfg = flt_cfg(2);
  cfg.max_tasks_per_worker = 2;
  crew_pool *pool = pool_create(&cfg);
  pid_t child = fork();
  ck_assert_int_ge(child, 0);
  if (child == 0) {
    char token;
    crew_queue_pop(gate_q, &token);
    _exit(42);
  }
  for (uint32_t i = 0; i < 20; i++)
    expect_counted(submit_counted(pool, i, i), i, i);
  ck_assert(!proc_gone(child));
  open_gate(1);
  int st = 0;
  ck_assert_int_eq(waitpid(child, &st, 0), child);
  ck_assert(WIFEXITED(st));
  ck_assert_int_eq(WEXITSTATUS(st), 42);
  ck_assert_uint_ge(pool_stats(pool).restarted, 8);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* The fork server of this process's one process pool: the only child of
 * this process that has children itself (its workers; the harness's
 * watchdog has none), or 0. */
static pid_t fork_server(void)
{
  DIR *d = opendir("/proc");
  ck_assert_ptr_nonnull(d);
  pid_t found = 0;
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    char path[300], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    if (read_text(path, buf, sizeof buf) < 0)
      continue;
    char *q = strrchr(buf, ')');
    char state;
    int ppid;
    if (q != NULL && sscanf(q + 1, " %c %d", &state, &ppid) == 2 &&
        ppid == (int)getpid() && children_of((pid_t)atoi(e->d_name)) > 0) {
      found = (pid_t)atoi(e->d_name);
      n++;
    }
  }
  closedir(d);
  return n == 1 ? found : 0;
}

/*
 * The fork server killed from outside (the OOM killer, an operator): its
 * workers die with it and none can be started again, so the pool is broken
 * (pool.h). Both running tasks and all queued ones resolve as crashed,
 * later submits fail with CREW_ECRASHED, and destroy returns.
 */
static int wait_at_gate_task(const void *in, void *out)
{
  post((uint64_t)getpid());
  char token;
  crew_queue_pop(gate_q, &token);
  return counted_task(in, out);
}

START_TEST(a_killed_fork_server_breaks_the_pool_cleanly)
{
  shared_setup(0);
  crew_config cfg = flt_cfg(2);
  crew_pool *pool = pool_create(&cfg);
  expect_counted(submit_counted(pool, 1, 1), 1, 1);
  crew_future *f[5];
  for (uint32_t i = 0; i < 2; i++) {
    struct counted_in c = {.x = i, .id = 10 + i};
    ck_assert_int_eq(crew_submit(pool, wait_at_gate_task, &c, sizeof c,
                                 sizeof(int64_t), &f[i]),
                     0);
  }
  take();
  take(); /* both workers wait at the gate */
  for (uint32_t i = 2; i < 5; i++)
    f[i] = submit_counted(pool, i, 10 + i);
  pid_t server = fork_server();
  ck_assert_int_gt(server, 0);
  ck_assert_int_eq(kill(server, SIGKILL), 0);
  for (int i = 0; i < 5; i++) {
    ck_assert_int_eq(crew_future_wait_timed(f[i], 5000 * MS), CREW_ECRASHED);
    crew_exit e; /* lost with the server: no worker's death to tell of */
    ck_assert_int_eq(crew_future_exit(f[i], &e), CREW_EINVAL);
    crew_future_release(f[i]);
  }
  crew_future *late = NULL;
  ck_assert_int_eq(crew_submit(pool, counted_task, &(struct counted_in){0},
                               sizeof(struct counted_in), 0, &late),
                   CREW_ECRASHED);
  ck_assert_ptr_null(late);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.crashed, 5);
  ck_assert_uint_eq(st.workers, 0);
  assert_pool_settled(pool);
  for (uint32_t i = 0; i < 5; i++)
    ck_assert_int_eq(atomic_load(&shm->runs[10 + i]), 0);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/*
 * catalog 47: recycling with a backlog, for map runners: max_tasks_per_worker
 * 1 (a map chunk counts as one) with 2 workers and 8 chunks: runners are
 * recycled after each chunk and re-queued while chunks remain; every item
 * runs exactly once. (Submitted tasks with a backlog far above workers x
 * limit: check_procpool_crash workers_are_recycled_after_max_tasks.)
 */
START_TEST(map_runners_are_recycled_with_a_backlog)
{
  enum { N = NRUNS };
  shared_setup(0);
  crew_config cfg = flt_cfg(2);
  cfg.max_tasks_per_worker = 1;
  crew_pool *pool = pool_create(&cfg);
  int64_t in[N], out[N];
  for (int i = 0; i < N; i++) {
    in[i] = i;
    out[i] = -1;
  }
  ck_assert_int_eq(
      crew_map(pool, triple_item, in, sizeof in[0], out, sizeof out[0], N), 0);
  for (int i = 0; i < N; i++) {
    quiet_assert_int_eq(out[i], 3 * i);
    quiet_assert_uint_eq(atomic_load(&shm->runs[i]), 1);
  }
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.completed, N);
  ck_assert_uint_ge(st.restarted, 6);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* Map item {x, what}: what 1 fails with status 7, 2 crashes the worker;
 * out = 3x. */
struct fault_item {
  int64_t x;
  int64_t what;
};

static int fault_item_task(const void *in, void *out)
{
  const struct fault_item *it = in;
  if (it->what == 2)
    raise(SIGSEGV);
  *(int64_t *)out = 3 * it->x;
  return it->what == 1 ? 7 : 0;
}

/*
 * catalog 37/31 for maps: an item fails (status 7), and a later item of
 * the same chunk crashes the worker. crew_map returns the status of the
 * lowest failing item, 7, not CREW_ECRASHED (pool.h: "CREW_ECRASHED ...
 * unless an item at a lower index failed otherwise"), and the counters
 * count the failure. (lib/procpool.c dead_task used to overwrite the
 * chunk's lowest failure with the crash.)
 */
START_TEST(a_map_failure_before_a_crash_in_its_chunk_wins)
{
  enum { N = 16 }; /* 1 worker: 4 chunks of 4 items */
  shared_setup(0);
  crew_config cfg = flt_cfg(1);
  crew_pool *pool = pool_create(&cfg);
  struct fault_item in[N];
  int64_t out[N];
  for (int i = 0; i < N; i++) {
    in[i] = (struct fault_item){.x = i, .what = i == 1 ? 1 : i == 3 ? 2 : 0};
    out[i] = -1;
  }
  ck_assert_int_eq(
      crew_map(pool, fault_item_task, in, sizeof in[0], out, sizeof out[0], N),
      7);
  ck_assert_int_eq(out[0], 0);
  ck_assert_int_eq(out[1], 3);
  ck_assert_int_eq(out[2], 6);
  ck_assert_int_eq(out[3], -1);
  for (int i = 4; i < N; i++)
    quiet_assert_int_eq(out[i], 3 * i);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.crashed, 1);
  ck_assert_uint_eq(st.failed, 1);
  ck_assert_uint_eq(st.completed, N - 1);
  assert_pool_settled(pool);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* ================================================================ main */

int main(void)
{
  Suite *s = suite_create("faults");

  TCase *tc = tcase_create("condvar");
  harness_tcase(tc, 20);
  tcase_add_test(tc, glibc_shared_condvar_with_killed_waiters);
  tcase_add_test(tc, crew_shared_queue_with_killed_waiters);
  suite_add_tcase(s, tc);

  tc = tcase_create("process");
  harness_tcase(tc, 10);
  tcase_add_test(tc, a_result_cut_by_a_crash_never_arrives);
  tcase_add_test(tc, idle_workers_die_with_a_killed_parent);
  tcase_add_test(tc, a_pool_outlives_the_thread_that_created_it);
  tcase_add_test(tc, a_spinning_task_is_killed_at_its_deadline);
  tcase_add_test(tc, a_crash_loop_is_rate_limited_and_bounded);
  tcase_add_test(tc, many_crashes_leave_no_zombie);
  tcase_add_test(tc, many_crashes_with_sigchld_ignored);
  tcase_add_test(tc, an_application_reaping_everything_steals_no_worker);
  tcase_add_test(tc, the_applications_own_child_keeps_its_status);
  tcase_add_test(tc, map_runners_are_recycled_with_a_backlog);
  tcase_add_test(tc, a_map_failure_before_a_crash_in_its_chunk_wins);
  tcase_add_test(tc, a_killed_fork_server_breaks_the_pool_cleanly);
  suite_add_tcase(s, tc);

  return run_suite(s);
}
