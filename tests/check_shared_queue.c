/*
 * check_shared_queue.c - the process-shared queue, crew_queue_create(&q, n,
 * size, CREW_SHARED), used by processes forked after its creation:
 *   1. the private queue's semantics across processes: FIFO by value,
 *      capacity, close waking blocked poppers and pushers, drain then
 *      CREW_ECLOSED, timeouts, push_many/pop_many;
 *   2. waiters killed with SIGKILL (just after one of them was woken, or
 *      with nothing sent) wedge nobody: the scenario that leaves a
 *      process-shared pthread_cond_t blocking its next signal and destroy
 *      forever on glibc; and a waiter killed as it is woken leaves the item
 *      (or slot) it was woken for to another waiter;
 *   3. a process killed while it holds the queue's lock (caught there with
 *      SIGSTOP): the next locker recovers the robust mutex, and the items
 *      are intact, none duplicated, at most the dead process's one missing;
 *      the creator's destroy may also be the very next call;
 *   4. 3 producer x 3 consumer processes, every item exactly once;
 *   5. crew_queue_destroy in a child only drops the child's mapping;
 *   6. CREW_SHARED with an unknown flag bit is CREW_EINVAL.
 *
 * Children never call Check: they report through their exit status (0, a
 * crew error code as -rc, or CHILD_FAILED after printing the failed check to
 * stderr) and always end with _exit(), never returning into Check. The test
 * process reaps every child and asserts its status. Synchronisation is the
 * queue itself, or a second shared queue on which children post "ready";
 * the only timed waits give a negative check ("still blocked") its chance to
 * fail.
 *
 * No leftovers: every child is registered and the checked teardown kills
 * and reaps any still there (and fails the test). A failed assertion ends
 * the test process at once, skipping the teardown; then each child dies
 * with it (PR_SET_PDEATHSIG), and Check SIGKILLs the test's process group,
 * which the children never leave. Each TCase's timeout is its hang watchdog.
 */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define CHILD_FAILED   100 /* a check in the child failed (see stderr) */
#define CHILD_ORPHANED 101 /* the test process was gone before we started */

/* -------------------------------------------------------------- children */

#define MAX_KIDS 8
static pid_t kids[MAX_KIDS]; /* children not reaped yet; 0: a free slot */

static void kid_add(pid_t pid)
{
  for (size_t i = 0; i < MAX_KIDS; i++)
    if (kids[i] == 0) {
      kids[i] = pid;
      return;
    }
  kill(pid, SIGKILL);
  ck_abort_msg("more than %d children at once", MAX_KIDS);
}

static void kid_remove(pid_t pid)
{
  for (size_t i = 0; i < MAX_KIDS; i++)
    if (kids[i] == pid)
      kids[i] = 0;
}

static pid_t waitpid_retry(pid_t pid, int *st, int options)
{
  pid_t r;
  do
    r = waitpid(pid, st, options);
  while (r == -1 && errno == EINTR);
  return r;
}

/* Kill and reap the children still registered; returns how many there were. */
static size_t kill_kids(void)
{
  size_t n = 0;
  for (size_t i = 0; i < MAX_KIDS; i++)
    if (kids[i] != 0) {
      int st;
      kill(kids[i], SIGKILL);
      waitpid_retry(kids[i], &st, 0);
      kids[i] = 0;
      n++;
    }
  return n;
}

static void setup_kids(void)
{
  memset(kids, 0, sizeof kids);
}

static void teardown_kids(void)
{
  size_t left = kill_kids();
  ck_assert_msg(left == 0, "the test left %zu children unreaped", left);
}

static _Noreturn void child_fail(int line, const char *what)
{
  fprintf(stderr, "check_shared_queue.c:%d: child %d: '%s' failed\n", line,
          (int)getpid(), what);
  _exit(CHILD_FAILED);
}

/* A check in a child: on failure, say where on stderr and exit CHILD_FAILED. */
#define child_require(expr) ((expr) ? (void)0 : child_fail(__LINE__, #expr))

/* The exit status reporting a crew return code: 0, or -rc (1 to 8). */
static int code_of(int rc)
{
  return rc == 0 ? 0 : -rc;
}

typedef int (*child_fn)(void *arg);

/* Fork a child that runs fn(arg) and _exit()s with what it returns. */
static pid_t spawn(child_fn fn, void *arg)
{
  pid_t parent = getpid();
  pid_t pid = fork();
  ck_assert_int_ne(pid, -1);
  if (pid == 0) {
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* die with a test that failed */
#endif
    if (getppid() != parent)
      _exit(CHILD_ORPHANED);
    _exit(fn(arg));
  }
  kid_add(pid);
  return pid;
}

static void describe(int st, char *buf, size_t n)
{
  if (WIFEXITED(st))
    snprintf(buf, n, "exited with %d", WEXITSTATUS(st));
  else if (WIFSIGNALED(st))
    snprintf(buf, n, "was killed by signal %d", WTERMSIG(st));
  else
    snprintf(buf, n, "ended with status %#x", (unsigned)st);
}

/* Reap a child (blocking) and return its wait status. */
static int reap(pid_t pid)
{
  int st = 0;
  pid_t r = waitpid_retry(pid, &st, 0);
  ck_assert_msg(r == pid, "waitpid(%d) returned %d (errno %d)", (int)pid,
                (int)r, errno);
  kid_remove(pid);
  return st;
}

static void expect_exit(pid_t pid, int code)
{
  int st = reap(pid);
  char what[64];
  describe(st, what, sizeof what);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == code,
                "child %d %s, expected exit %d", (int)pid, what, code);
}

/* The child has not ended (checked without waiting). */
static void expect_running(pid_t pid)
{
  int st;
  pid_t r = waitpid_retry(pid, &st, WNOHANG);
  char what[64] = "";
  if (r == pid) {
    kid_remove(pid);
    describe(st, what, sizeof what);
  }
  ck_assert_msg(r == 0, "child %d should be blocked but %s", (int)pid, what);
}

/* -------------------------------------------------------- shared memory */

static crew_queue *shared_queue(size_t capacity, size_t item_size)
{
  crew_queue *q = NULL;
  ck_assert_int_eq(crew_queue_create(&q, capacity, item_size, CREW_SHARED), 0);
  ck_assert_ptr_nonnull(q);
  return q;
}

static void *shared_alloc(size_t size)
{
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
  ck_assert_msg(p != MAP_FAILED, "mmap of %zu bytes failed", size);
  return p;
}

static void shared_free(void *p, size_t size)
{
  ck_assert_int_eq(munmap(p, size), 0);
}

/*
 * "ready" queues: a shared queue of ints on which children post before they
 * block, so the test knows they got that far.
 */
#define READY_CAPACITY 16

static void post_ready(crew_queue *ready, int who)
{
  child_require(crew_queue_push_timed(ready, &who, 0) == 0);
}

static void wait_ready(crew_queue *ready, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    int who;
    ck_assert_msg(crew_queue_pop_timed(ready, &who, 10000 * MS) == 0,
                  "waited 10 s for ready post %zu of %zu", i + 1, n);
  }
}

/* A negative check's chance to fail: nothing more is posted for `ms`. */
static void expect_quiet(crew_queue *ready, uint64_t ms)
{
  int who;
  ck_assert_int_eq(crew_queue_pop_timed(ready, &who, ms * MS), CREW_ETIMEDOUT);
}

static int pop_int(crew_queue *q)
{
  int v = -1;
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, 10000 * MS), 0);
  return v;
}

static void push_int(crew_queue *q, int v)
{
  ck_assert_int_eq(crew_queue_push_timed(q, &v, 0), 0);
}

/* ------------------------------------------------------ 1. semantics */

struct ints_arg {
  crew_queue *q;
  crew_queue *ready;
  int first; /* the first value (pushers) or the one expected (poppers) */
  int count;
};

static int push_ints(void *p)
{
  struct ints_arg *a = p;
  for (int i = 0; i < a->count; i++) {
    int v = a->first + i;
    child_require(crew_queue_push(a->q, &v) == 0);
  }
  return 0;
}

static int pop_ints(void *p)
{
  struct ints_arg *a = p;
  for (int i = 0; i < a->count; i++) {
    int v = -1;
    child_require(crew_queue_pop(a->q, &v) == 0);
    child_require(v == a->first + i);
  }
  return 0;
}

START_TEST(fifo_by_value_between_processes)
{
  int n = (int)scaled(2000);
  crew_queue *q = shared_queue(4, sizeof(int));

  /* A producer child, the test pops. */
  struct ints_arg a = {q, NULL, 0, n};
  pid_t pid = spawn(push_ints, &a);
  for (int i = 0; i < n; i++) {
    int v = -1;
    quiet_assert_int_eq(crew_queue_pop_timed(q, &v, 10000 * MS), 0);
    quiet_assert_int_eq(v, i);
  }
  expect_exit(pid, 0);
  ck_assert_uint_eq(crew_queue_size(q), 0);

  /* The test pushes, a consumer child checks the order. */
  struct ints_arg b = {q, NULL, 5000, n};
  pid = spawn(pop_ints, &b);
  for (int i = 0; i < n; i++) {
    int v = 5000 + i;
    quiet_assert_int_eq(crew_queue_push_timed(q, &v, 10000 * MS), 0);
  }
  expect_exit(pid, 0);
  ck_assert_uint_eq(crew_queue_size(q), 0);
  crew_queue_destroy(q);
}
END_TEST

static int fill_then_overflow(void *p)
{
  struct ints_arg *a = p;
  for (int i = 0; i < a->count; i++) {
    int v = a->first + i;
    child_require(crew_queue_push_timed(a->q, &v, 0) == 0);
  }
  child_require(crew_queue_size(a->q) == (size_t)a->count);
  int v = -1;
  return code_of(crew_queue_push_timed(a->q, &v, 0));
}

START_TEST(capacity_is_respected_across_processes)
{
  crew_queue *q = shared_queue(3, sizeof(int));
  ck_assert_uint_eq(crew_queue_capacity(q), 3);
  ck_assert_uint_eq(crew_queue_item_size(q), sizeof(int));

  /* The child fills it; its fourth push finds it full. */
  struct ints_arg a = {q, NULL, 0, 3};
  expect_exit(spawn(fill_then_overflow, &a), -CREW_ETIMEDOUT);

  /* The test sees the child's items, and the queue full. */
  ck_assert_uint_eq(crew_queue_size(q), 3);
  int v = 99;
  ck_assert_int_eq(crew_queue_push_timed(q, &v, 0), CREW_ETIMEDOUT);
  ck_assert_uint_eq(crew_queue_size(q), 3);
  ck_assert_int_eq(pop_int(q), 0);
  push_int(q, 3);
  ck_assert_int_eq(crew_queue_push_timed(q, &v, 0), CREW_ETIMEDOUT);
  for (int i = 1; i <= 3; i++)
    ck_assert_int_eq(pop_int(q), i);
  ck_assert_uint_eq(crew_queue_size(q), 0);
  crew_queue_destroy(q);
}
END_TEST

static int blocked_pop(void *p)
{
  struct ints_arg *a = p;
  post_ready(a->ready, a->first);
  int v = -1;
  int rc = crew_queue_pop(a->q, &v);
  return code_of(rc);
}

static int blocked_push(void *p)
{
  struct ints_arg *a = p;
  post_ready(a->ready, a->first);
  int rc = crew_queue_push(a->q, &a->first);
  return code_of(rc);
}

START_TEST(close_wakes_children_blocked_in_pop)
{
  crew_queue *q = shared_queue(4, sizeof(int));
  crew_queue *ready = shared_queue(READY_CAPACITY, sizeof(int));
  struct ints_arg a[2] = {{q, ready, 0, 1}, {q, ready, 1, 1}};
  pid_t pid[2] = {spawn(blocked_pop, &a[0]), spawn(blocked_pop, &a[1])};
  wait_ready(ready, 2);
  expect_quiet(ready, 50);
  expect_running(pid[0]);
  expect_running(pid[1]);
  ck_assert_uint_eq(crew_queue_size(q), 0);

  crew_queue_close(q);
  expect_exit(pid[0], -CREW_ECLOSED);
  expect_exit(pid[1], -CREW_ECLOSED);
  ck_assert(crew_queue_is_closed(q));
  crew_queue_destroy(ready);
  crew_queue_destroy(q);
}
END_TEST

START_TEST(close_wakes_children_blocked_in_push)
{
  crew_queue *q = shared_queue(2, sizeof(int));
  crew_queue *ready = shared_queue(READY_CAPACITY, sizeof(int));
  push_int(q, 10);
  push_int(q, 11);
  struct ints_arg a[2] = {{q, ready, 20, 1}, {q, ready, 21, 1}};
  pid_t pid[2] = {spawn(blocked_push, &a[0]), spawn(blocked_push, &a[1])};
  wait_ready(ready, 2);
  expect_quiet(ready, 50);
  expect_running(pid[0]);
  expect_running(pid[1]);
  ck_assert_uint_eq(crew_queue_size(q), 2);

  crew_queue_close(q);
  expect_exit(pid[0], -CREW_ECLOSED);
  expect_exit(pid[1], -CREW_ECLOSED);
  /* Nothing of theirs went in; what was queued drains, then ECLOSED. */
  ck_assert_uint_eq(crew_queue_size(q), 2);
  ck_assert_int_eq(pop_int(q), 10);
  ck_assert_int_eq(pop_int(q), 11);
  int v = -1;
  ck_assert_int_eq(crew_queue_pop(q, &v), CREW_ECLOSED);
  ck_assert_int_eq(v, -1);
  crew_queue_destroy(ready);
  crew_queue_destroy(q);
}
END_TEST

/* The test pushed first..first+count-1 and closed: drain, then ECLOSED. */
static int drain_closed(void *p)
{
  struct ints_arg *a = p;
  int v = -1;
  child_require(crew_queue_is_closed(a->q));
  child_require(crew_queue_push(a->q, &v) == CREW_ECLOSED);
  child_require(crew_queue_push_timed(a->q, &v, 0) == CREW_ECLOSED);
  for (int i = 0; i < a->count; i++) {
    child_require(crew_queue_pop(a->q, &v) == 0);
    child_require(v == a->first + i);
  }
  v = -1;
  child_require(crew_queue_pop(a->q, &v) == CREW_ECLOSED);
  child_require(crew_queue_pop_timed(a->q, &v, 0) == CREW_ECLOSED);
  child_require(crew_queue_pop_timed(a->q, &v, CREW_FOREVER) == CREW_ECLOSED);
  child_require(v == -1);
  return 0;
}

/* Push first..first+count-1, then close. */
static int push_then_close(void *p)
{
  struct ints_arg *a = p;
  for (int i = 0; i < a->count; i++) {
    int v = a->first + i;
    child_require(crew_queue_push_timed(a->q, &v, 0) == 0);
  }
  crew_queue_close(a->q);
  return 0;
}

START_TEST(pops_drain_then_report_closed_across_processes)
{
  /* Closed in the test, drained in a child. */
  crew_queue *q = shared_queue(8, sizeof(int));
  for (int i = 0; i < 5; i++)
    push_int(q, 10 + i);
  crew_queue_close(q);
  struct ints_arg a = {q, NULL, 10, 5};
  expect_exit(spawn(drain_closed, &a), 0);
  ck_assert_uint_eq(crew_queue_size(q), 0);
  int v = -1;
  ck_assert_int_eq(crew_queue_pop(q, &v), CREW_ECLOSED);
  crew_queue_destroy(q);

  /* Filled and closed in a child, drained in the test. */
  q = shared_queue(8, sizeof(int));
  struct ints_arg b = {q, NULL, 30, 3};
  expect_exit(spawn(push_then_close, &b), 0);
  ck_assert(crew_queue_is_closed(q));
  ck_assert_int_eq(crew_queue_push_timed(q, &v, 0), CREW_ECLOSED);
  ck_assert_uint_eq(crew_queue_size(q), 3);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(pop_int(q), 30 + i);
  v = -1;
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, 10000 * MS), CREW_ECLOSED);
  ck_assert_int_eq(v, -1);
  crew_queue_destroy(q);
}
END_TEST

/* 20 ms timed calls on an empty and on a full queue, in the child. */
static int timed_calls(void *p)
{
  struct ints_arg *a = p;
  int v = -1;
  uint64_t t0 = now_ns();
  child_require(crew_queue_pop_timed(a->q, &v, 20 * MS) == CREW_ETIMEDOUT);
  child_require(now_ns() - t0 >= 20 * MS);
  child_require(v == -1);
  for (int i = 0; i < 2; i++)
    child_require(crew_queue_push_timed(a->q, &i, 0) == 0);
  t0 = now_ns();
  child_require(crew_queue_push_timed(a->q, &v, 20 * MS) == CREW_ETIMEDOUT);
  child_require(now_ns() - t0 >= 20 * MS);
  return 0;
}

START_TEST(timeouts_wait_their_time_across_processes)
{
  crew_queue *q = shared_queue(2, sizeof(int));
  int v = -1;
  uint64_t t0 = now_ns();
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, 20 * MS), CREW_ETIMEDOUT);
  ck_assert_uint_ge(now_ns() - t0, 20 * MS);
  ck_assert_int_eq(v, -1);

  struct ints_arg a = {q, NULL, 0, 0};
  expect_exit(spawn(timed_calls, &a), 0);
  /* The child left the queue full. */
  ck_assert_uint_eq(crew_queue_size(q), 2);
  t0 = now_ns();
  ck_assert_int_eq(crew_queue_push_timed(q, &v, 20 * MS), CREW_ETIMEDOUT);
  ck_assert_uint_ge(now_ns() - t0, 20 * MS);
  ck_assert_int_eq(pop_int(q), 0);
  ck_assert_int_eq(pop_int(q), 1);
  crew_queue_destroy(q);
}
END_TEST

#define MANY       100
#define MANY_BATCH 5

static int push_many_child(void *p)
{
  struct ints_arg *a = p;
  int items[MANY];
  for (int i = 0; i < MANY; i++)
    items[i] = a->first + i;
  size_t pushed = 0;
  child_require(
      crew_queue_push_many(a->q, items, MANY, &pushed, CREW_FOREVER) == 0);
  child_require(pushed == MANY);
  return 0;
}

static int pop_many_child(void *p)
{
  struct ints_arg *a = p;
  int got = 0;
  while (got < MANY) {
    int buf[MANY_BATCH];
    size_t popped = 0;
    child_require(
        crew_queue_pop_many(a->q, buf, MANY_BATCH, &popped, CREW_FOREVER) == 0);
    child_require(popped >= 1 && popped <= MANY_BATCH);
    for (size_t i = 0; i < popped; i++)
      child_require(buf[i] == a->first + got++);
  }
  return 0;
}

START_TEST(push_many_and_pop_many_across_processes)
{
  crew_queue *q = shared_queue(8, sizeof(int));

  /* A child's push_many of 100 through 8 slots; the test pop_many's. */
  struct ints_arg a = {q, NULL, 0, MANY};
  pid_t pid = spawn(push_many_child, &a);
  int got = 0;
  while (got < MANY) {
    int buf[16];
    size_t popped = 0;
    ck_assert_int_eq(crew_queue_pop_many(q, buf, 16, &popped, 10000 * MS), 0);
    ck_assert_uint_ge(popped, 1);
    ck_assert_uint_le(popped, 8);
    for (size_t i = 0; i < popped; i++)
      ck_assert_int_eq(buf[i], got++);
  }
  expect_exit(pid, 0);
  ck_assert_uint_eq(crew_queue_size(q), 0);

  /* The test's push_many; a child pop_many's in batches of 5. */
  struct ints_arg b = {q, NULL, 1000, MANY};
  pid = spawn(pop_many_child, &b);
  int items[MANY];
  for (int i = 0; i < MANY; i++)
    items[i] = 1000 + i;
  size_t pushed = 0;
  ck_assert_int_eq(crew_queue_push_many(q, items, MANY, &pushed, 10000 * MS),
                   0);
  ck_assert_uint_eq(pushed, MANY);
  expect_exit(pid, 0);
  ck_assert_uint_eq(crew_queue_size(q), 0);
  crew_queue_destroy(q);
}
END_TEST

/* -------------------------------------------------- 2. killed waiters */

#define NWAITERS 3

enum round_kind {
  KILL_AFTER_PUSH, /* poppers blocked on empty; one item pushed, then kill */
  KILL_AFTER_POP,  /* pushers blocked on full; one item popped, then kill */
  KILL_UNWOKEN     /* poppers blocked on empty; killed with nothing sent */
};

/*
 * After killed waiters: the queue still holds `expect` (in order, values
 * first..), and new items and new waiters work; then close and destroy.
 */
static void check_after_kill(crew_queue *q, crew_queue *ready,
                             const int *expect, size_t nexpect)
{
  ck_assert_uint_eq(crew_queue_size(q), nexpect);
  for (size_t i = 0; i < nexpect; i++)
    ck_assert_int_eq(pop_int(q), expect[i]);
  /* New items: each push wakes per the dead waiters' stale counts. */
  for (int i = 0; i < 2; i++)
    push_int(q, 2000 + i);
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(pop_int(q), 2000 + i);
  int v = -1;
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, 0), CREW_ETIMEDOUT);

  /* A new popper gets the next push (woken by it if already asleep). */
  struct ints_arg a = {q, ready, 3000, 1};
  pid_t pid = spawn(pop_ints, &a);
  push_int(q, 3000);
  expect_exit(pid, 0);

  /* A new pusher on a full queue gets in after the next pop. */
  size_t cap = crew_queue_capacity(q);
  for (size_t i = 0; i < cap; i++)
    push_int(q, 4000 + (int)i);
  struct ints_arg b = {q, ready, 5000, 1};
  pid = spawn(push_ints, &b);
  for (size_t i = 0; i < cap; i++)
    ck_assert_int_eq(pop_int(q), 4000 + (int)i);
  ck_assert_int_eq(pop_int(q), 5000);
  expect_exit(pid, 0);

  crew_queue_close(q);
  ck_assert_int_eq(crew_queue_pop(q, &v), CREW_ECLOSED);
  ck_assert_int_eq(crew_queue_push(q, &v), CREW_ECLOSED);
  crew_queue_destroy(q); /* must return: the TCase timeout watches */
}

static void killed_waiters_round(enum round_kind kind)
{
  size_t cap = kind == KILL_AFTER_POP ? 2 : 4;
  crew_queue *q = shared_queue(cap, sizeof(int));
  crew_queue *ready = shared_queue(READY_CAPACITY, sizeof(int));
  if (kind == KILL_AFTER_POP)
    for (size_t i = 0; i < cap; i++)
      push_int(q, (int)i);

  struct ints_arg a[NWAITERS];
  pid_t pid[NWAITERS];
  for (int i = 0; i < NWAITERS; i++) {
    a[i] = (struct ints_arg){q, ready, 100 + i, 1};
    pid[i] = spawn(kind == KILL_AFTER_POP ? blocked_push : blocked_pop, &a[i]);
  }
  /* All three are in their call and stay blocked. */
  wait_ready(ready, NWAITERS);
  expect_quiet(ready, 20);
  for (int i = 0; i < NWAITERS; i++)
    expect_running(pid[i]);
  ck_assert_uint_eq(crew_queue_size(q), kind == KILL_AFTER_POP ? cap : 0);

  /* Wake one (it is being woken as they die), then kill all three. */
  if (kind == KILL_AFTER_PUSH)
    push_int(q, 1000);
  if (kind == KILL_AFTER_POP) {
    int v = -1;
    ck_assert_int_eq(crew_queue_pop_timed(q, &v, 0), 0);
    ck_assert_int_eq(v, 0);
  }
  for (int i = 0; i < NWAITERS; i++)
    ck_assert_int_eq(kill(pid[i], SIGKILL), 0);

  /* Each died of SIGKILL, or finished its call first (exit 0). */
  int finished = 0, finisher = -1;
  for (int i = 0; i < NWAITERS; i++) {
    int st = reap(pid[i]);
    char what[64];
    describe(st, what, sizeof what);
    bool killed = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
    bool done = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    ck_assert_msg(killed || done, "waiter %d %s", i, what);
    if (done) {
      finished++;
      finisher = i;
    }
  }

  /* The arithmetic: the dead took (or added) 0 or 1 item, no more. */
  size_t n = crew_queue_size(q);
  int expect[4];
  size_t nexpect = 0;
  if (kind == KILL_UNWOKEN) {
    ck_assert_int_eq(finished, 0);
    ck_assert_uint_eq(n, 0);
  } else if (kind == KILL_AFTER_PUSH) {
    ck_assert_msg(n <= 1, "%zu items after pushing 1", n);
    size_t taken = 1 - n;
    ck_assert_uint_le((size_t)finished, taken);
    if (n == 1)
      expect[nexpect++] = 1000;
  } else {
    ck_assert_msg(n == cap - 1 || n == cap, "%zu items in a queue of %zu", n,
                  cap);
    size_t added = n - (cap - 1);
    ck_assert_uint_le((size_t)finished, added);
    for (size_t i = 1; i < cap; i++)
      expect[nexpect++] = (int)i;
    if (added == 1) {
      /* The pusher that got in; which one, only its exit can tell. */
      int v = -1;
      for (size_t i = 1; i < cap; i++)
        ck_assert_int_eq(pop_int(q), (int)i);
      v = pop_int(q);
      ck_assert_msg(v >= 100 && v < 100 + NWAITERS, "popped %d", v);
      if (finisher >= 0)
        ck_assert_int_eq(v, 100 + finisher);
      nexpect = 0;
    }
  }
  check_after_kill(q, ready, expect, nexpect);
  crew_queue_destroy(ready);
}

static size_t waiter_rounds(void)
{
  return scaled(30);
}

START_TEST(poppers_killed_as_one_is_woken_wedge_nobody)
{
  for (size_t r = 0; r < waiter_rounds(); r++)
    killed_waiters_round(KILL_AFTER_PUSH);
}
END_TEST

START_TEST(pushers_killed_as_one_is_woken_wedge_nobody)
{
  for (size_t r = 0; r < waiter_rounds(); r++)
    killed_waiters_round(KILL_AFTER_POP);
}
END_TEST

START_TEST(poppers_killed_unwoken_wedge_nobody)
{
  for (size_t r = 0; r < scaled(20); r++)
    killed_waiters_round(KILL_UNWOKEN);
}
END_TEST

/*
 * Two waiters, A blocked before B; one item pushed (or one slot freed) wakes
 * one of them, and A is killed at once. When A died without the item (or
 * slot), B must take it: a wake-up spent on a dead process may not leave a
 * live waiter asleep next to an item (or a free slot).
 */
struct second_arg {
  crew_queue *q;
  crew_queue *ready;
  bool pop;
  int value;
};

#define DONE 1000 /* a waiter posts value + DONE when its call returned */

/* Post `value`, block in the call, then post value + DONE. */
static int second_waiter(void *p)
{
  struct second_arg *a = p;
  post_ready(a->ready, a->value);
  int v = -1;
  int rc = a->pop ? crew_queue_pop(a->q, &v) : crew_queue_push(a->q, &a->value);
  child_require(rc == 0);
  child_require(!a->pop || v == 1000);
  post_ready(a->ready, a->value + DONE);
  return 0;
}

/* Whether `want` is posted within timeout_ns (other posts are dropped). */
static bool posted(crew_queue *ready, int want, uint64_t timeout_ns)
{
  uint64_t end = now_ns() + timeout_ns;
  int got;
  for (;;) {
    uint64_t now = now_ns();
    uint64_t left = now < end ? end - now : 0;
    if (crew_queue_pop_timed(ready, &got, left) != 0)
      return false;
    if (got == want)
      return true;
  }
}

/* One round; returns whether it showed B taking what A was woken for. */
static bool woken_then_killed_round(bool pop)
{
  crew_queue *q = shared_queue(1, sizeof(int));
  crew_queue *ready = shared_queue(READY_CAPACITY, sizeof(int));
  if (!pop)
    push_int(q, 0);
  struct second_arg a = {q, ready, pop, 100}, b = {q, ready, pop, 101};
  pid_t pa = spawn(second_waiter, &a);
  wait_ready(ready, 1);
  expect_quiet(ready, 20); /* A is asleep before B comes */
  pid_t pb = spawn(second_waiter, &b);
  wait_ready(ready, 1);
  expect_quiet(ready, 20);
  expect_running(pa);
  expect_running(pb);

  if (pop)
    push_int(q, 1000);
  else
    ck_assert_int_eq(pop_int(q), 0);
  ck_assert_int_eq(kill(pa, SIGKILL), 0);
  int st = reap(pa);
  char what[64];
  describe(st, what, sizeof what);
  bool killed = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
  ck_assert_msg(killed || (WIFEXITED(st) && WEXITSTATUS(st) == 0),
                "waiter A %s", what);
  /* Whether A's item (or slot) is still there, or was taken (by B?). */
  size_t n = crew_queue_size(q);
  bool untaken = pop ? n == 1 : n == 0;
  bool shown;
  if (!killed) {
    shown = false; /* A finished its call: B rightly waits on */
  } else if (untaken) {
    /* Nobody has taken it yet: B must. */
    ck_assert_msg(posted(ready, b.value + DONE, 2000 * MS),
                  "the %s waiter A was woken and killed; waiter B still "
                  "sleeps 2 s later though the queue %s",
                  pop ? "popping" : "pushing",
                  pop ? "holds an item" : "has a free slot");
    shown = true;
  } else {
    /* Taken: by B (it posts), or by A before it died (B rightly waits). */
    shown = posted(ready, b.value + DONE, 20 * MS);
  }
  if (shown) {
    expect_exit(pb, 0);
    ck_assert_uint_eq(crew_queue_size(q), pop ? 0 : 1);
  } else {
    /* Still blocked (or done only now): either way, it has no more to do. */
    ck_assert_int_eq(kill(pb, SIGKILL), 0);
    st = reap(pb);
    describe(st, what, sizeof what);
    ck_assert_msg((WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) ||
                      (WIFEXITED(st) && WEXITSTATUS(st) == 0),
                  "waiter B %s", what);
  }
  crew_queue_close(q);
  crew_queue_destroy(q);
  crew_queue_destroy(ready);
  return shown;
}

START_TEST(a_waiter_killed_as_it_is_woken_passes_nothing_by)
{
  /* Rounds where A took its item first show nothing: run until 3 show it. */
  for (int pop = 1; pop >= 0; pop--) {
    size_t shown = 0;
    for (size_t r = 0; r < scaled(20) && shown < 3; r++)
      shown += woken_then_killed_round(pop);
  }
}
END_TEST

/* ------------------------------------------- 3. killed holding the lock */

#define BIG_SIZE    4096
#define BIG_MAGIC   0x5eed0c0du
#define NTAGGED     6
#define NHAMMERS    3
#define MAX_CATCHES 2000

struct big_item {
  uint32_t id;
  uint32_t magic;
  unsigned char fill[BIG_SIZE - 2 * sizeof(uint32_t)];
};

static void big_make(struct big_item *it, uint32_t id)
{
  it->id = id;
  it->magic = BIG_MAGIC ^ id;
  for (size_t i = 0; i < sizeof it->fill; i++)
    it->fill[i] = (unsigned char)(id * 131u + i * 7u);
}

static bool big_ok(const struct big_item *it)
{
  if (it->id >= NTAGGED || it->magic != (BIG_MAGIC ^ it->id))
    return false;
  for (size_t i = 0; i < sizeof it->fill; i++)
    if (it->fill[i] != (unsigned char)(it->id * 131u + i * 7u))
      return false;
  return true;
}

struct hammer_arg {
  crew_queue *q;
  crew_queue *ready;
  _Atomic int *stop;
  _Atomic uint64_t *pairs; /* shared: pop-push pairs this hammer finished */
};

/* Pop an item, check it, push it back; until told to stop. */
static int hammer(void *p)
{
  struct hammer_arg *a = p;
  struct big_item it;
  post_ready(a->ready, 0);
  while (!atomic_load_explicit(a->stop, memory_order_relaxed)) {
    child_require(crew_queue_pop_timed(a->q, &it, 10000 * MS) == 0);
    child_require(big_ok(&it));
    child_require(crew_queue_push_timed(a->q, &it, 10000 * MS) == 0);
    atomic_fetch_add_explicit(a->pairs, 1, memory_order_relaxed);
  }
  return 0;
}

/* A thread of the test that calls crew_queue_size when asked. */
struct sizer {
  crew_queue *q;        /* the shared queue to measure */
  crew_queue *requests; /* private: a byte per request; closed to end */
  crew_queue *replies;  /* private: the size_t results */
  pthread_t thread;
};

static void *sizer_main(void *p)
{
  struct sizer *s = p;
  char req;
  while (crew_queue_pop(s->requests, &req) == 0) {
    size_t n = crew_queue_size(s->q);
    if (crew_queue_push(s->replies, &n) != 0)
      break;
  }
  return NULL;
}

static void sizer_start(struct sizer *s, crew_queue *q)
{
  s->q = q;
  ck_assert_int_eq(crew_queue_create(&s->requests, 4, 1, 0), 0);
  ck_assert_int_eq(crew_queue_create(&s->replies, 4, sizeof(size_t), 0), 0);
  ck_assert_int_eq(pthread_create(&s->thread, NULL, sizer_main, s), 0);
}

static void sizer_ask(struct sizer *s)
{
  quiet_assert_int_eq(crew_queue_push_timed(s->requests, "?", 0), 0);
}

static int sizer_answer(struct sizer *s, size_t *n, uint64_t timeout_ns)
{
  return crew_queue_pop_timed(s->replies, n, timeout_ns);
}

static void sizer_stop(struct sizer *s)
{
  crew_queue_close(s->requests);
  ck_assert_int_eq(pthread_join(s->thread, NULL), 0);
  crew_queue_destroy(s->requests);
  crew_queue_destroy(s->replies);
}

static uint32_t xorshift(uint32_t *state)
{
  uint32_t x = *state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *state = x;
}

/*
 * Stop a hammer at a varied moment: once it has done 1 to 3 more pairs
 * (since it was last continued: a continued child that never ran would be
 * stopped where it already was) and after a random spin.
 */
static void stop_hammer(pid_t pid, _Atomic uint64_t *pairs, uint32_t *rng)
{
  uint64_t until = atomic_load(pairs) + 1 + xorshift(rng) % 3;
  uint64_t t0 = now_ns();
  while (atomic_load(pairs) < until) {
    quiet_assert_msg(now_ns() - t0 < 10000 * MS,
                     "hammer %d made no progress in 10 s", (int)pid);
    sched_yield();
  }
  for (volatile uint32_t spin = xorshift(rng) % 20000; spin > 0; spin--)
    ;
  quiet_assert_int_eq(kill(pid, SIGSTOP), 0);
  int st;
  quiet_assert_int_eq(waitpid_retry(pid, &st, WUNTRACED), pid);
  quiet_assert(WIFSTOPPED(st));
}

/* One round; returns how many attempts it took to catch the lock held. */
static unsigned killed_holder_round(uint32_t seed)
{
  crew_queue *q = shared_queue(8, sizeof(struct big_item));
  crew_queue *ready = shared_queue(READY_CAPACITY, sizeof(int));
  _Atomic int *stop = shared_alloc(sizeof *stop);
  atomic_init(stop, 0);
  static struct big_item it; /* 4 KiB: not on the stack */
  for (uint32_t id = 0; id < NTAGGED; id++) {
    big_make(&it, id);
    ck_assert_int_eq(crew_queue_push_timed(q, &it, 0), 0);
  }
  _Atomic uint64_t *pairs = shared_alloc(NHAMMERS * sizeof *pairs);
  struct hammer_arg ha[NHAMMERS];
  pid_t pid[NHAMMERS];
  for (int i = 0; i < NHAMMERS; i++) {
    atomic_init(&pairs[i], 0);
    ha[i] = (struct hammer_arg){q, ready, stop, &pairs[i]};
    pid[i] = spawn(hammer, &ha[i]);
  }
  wait_ready(ready, NHAMMERS);
  struct sizer sz;
  sizer_start(&sz, q); /* after the forks: they copy only this thread */

  /*
   * Stop a child at a varied moment; if the sizer's crew_queue_size does
   * not return within 20 ms, the stopped child holds the lock.
   */
  uint32_t rng = seed * 2654435761u + 1;
  unsigned attempt;
  pid_t victim = -1;
  size_t n = 0;
  for (attempt = 1; attempt <= MAX_CATCHES; attempt++) {
    victim = pid[attempt % NHAMMERS];
    stop_hammer(victim, &pairs[attempt % NHAMMERS], &rng);
    sizer_ask(&sz);
    int rc = sizer_answer(&sz, &n, 20 * MS);
    if (rc == CREW_ETIMEDOUT)
      break; /* caught: the stopped child holds the lock */
    quiet_assert_int_eq(rc, 0);
    /* Each hammer holds at most one item outside the queue. */
    quiet_assert_uint_ge(n, NTAGGED - NHAMMERS);
    quiet_assert_uint_le(n, NTAGGED);
    quiet_assert_int_eq(kill(victim, SIGCONT), 0);
  }
  ck_assert_msg(attempt <= MAX_CATCHES,
                "never caught a child holding the queue's lock in %d "
                "attempts (SIGSTOP at varied moments, crew_queue_size "
                "answered within 20 ms every time)",
                MAX_CATCHES);

  /* Kill it there: the blocked crew_queue_size must return (robust lock). */
  ck_assert_int_eq(kill(victim, SIGKILL), 0);
  int st = reap(victim);
  ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  ck_assert_msg(sizer_answer(&sz, &n, 10000 * MS) == 0,
                "crew_queue_size still blocked 10 s after the lock holder "
                "was killed");
  ck_assert_uint_ge(n, NTAGGED - NHAMMERS);
  ck_assert_uint_le(n, NTAGGED);

  /* The others went on; stop them with no item in hand. */
  atomic_store(stop, 1);
  for (int i = 0; i < NHAMMERS; i++)
    if (pid[i] != victim)
      expect_exit(pid[i], 0);
  sizer_stop(&sz);

  /* The items: intact, no duplicate, at most the dead child's one missing. */
  n = crew_queue_size(q);
  ck_assert_msg(n == NTAGGED || n == NTAGGED - 1, "%zu of %d items left", n,
                NTAGGED);
  bool seen[NTAGGED] = {false};
  for (size_t i = 0; i < n; i++) {
    ck_assert_int_eq(crew_queue_pop_timed(q, &it, 0), 0);
    ck_assert_msg(big_ok(&it), "item %zu corrupted (id %u)", i, it.id);
    ck_assert_msg(!seen[it.id], "item %u twice", it.id);
    seen[it.id] = true;
  }
  ck_assert_int_eq(crew_queue_pop_timed(q, &it, 0), CREW_ETIMEDOUT);

  /* The queue still works: fill it, drain it in order, close, destroy. */
  for (uint32_t id = 0; id < 8; id++) {
    big_make(&it, id % NTAGGED);
    ck_assert_int_eq(crew_queue_push_timed(q, &it, 0), 0);
  }
  ck_assert_int_eq(crew_queue_push_timed(q, &it, 0), CREW_ETIMEDOUT);
  for (uint32_t id = 0; id < 8; id++) {
    ck_assert_int_eq(crew_queue_pop_timed(q, &it, 0), 0);
    ck_assert(big_ok(&it));
    ck_assert_uint_eq(it.id, id % NTAGGED);
  }
  crew_queue_close(q);
  ck_assert_int_eq(crew_queue_pop(q, &it), CREW_ECLOSED);
  crew_queue_destroy(q);
  crew_queue_destroy(ready);
  shared_free(stop, sizeof *stop);
  shared_free(pairs, NHAMMERS * sizeof *pairs);
  return attempt;
}

START_TEST(a_process_killed_holding_the_lock_wedges_nobody)
{
  for (uint32_t r = 0; r < scaled(8); r++)
    killed_holder_round(r + 1);
}
END_TEST

/*
 * The holder killed, and the creator's crew_queue_destroy the very next call
 * (nobody recovered the lock): it must return. The lock holder is caught as
 * above, but asked with a child process (killed too), not a thread.
 */
static int size_then_post(void *p)
{
  struct hammer_arg *a = p;
  size_t n = crew_queue_size(a->q);
  child_require(n >= NTAGGED - 1 && n <= NTAGGED);
  post_ready(a->ready, 1);
  return 0;
}

static void destroy_after_holder_died_round(uint32_t seed)
{
  crew_queue *q = shared_queue(8, sizeof(struct big_item));
  crew_queue *ready = shared_queue(READY_CAPACITY, sizeof(int));
  _Atomic int *stop = shared_alloc(sizeof *stop);
  atomic_init(stop, 0);
  static struct big_item it;
  for (uint32_t id = 0; id < NTAGGED; id++) {
    big_make(&it, id);
    ck_assert_int_eq(crew_queue_push_timed(q, &it, 0), 0);
  }
  _Atomic uint64_t *pairs = shared_alloc(sizeof *pairs);
  atomic_init(pairs, 0);
  struct hammer_arg ha = {q, ready, stop, pairs};
  pid_t holder = spawn(hammer, &ha);
  wait_ready(ready, 1);

  uint32_t rng = seed * 2654435761u + 1;
  unsigned attempt;
  pid_t asker = -1;
  for (attempt = 1; attempt <= MAX_CATCHES; attempt++) {
    stop_hammer(holder, pairs, &rng);
    asker = spawn(size_then_post, &ha);
    int done;
    if (crew_queue_pop_timed(ready, &done, 20 * MS) == CREW_ETIMEDOUT)
      break; /* caught */
    expect_exit(asker, 0);
    quiet_assert_int_eq(kill(holder, SIGCONT), 0);
  }
  ck_assert_msg(attempt <= MAX_CATCHES,
                "never caught the child holding the queue's lock in %d "
                "attempts",
                MAX_CATCHES);

  /* Kill the blocked asker, then the holder; reap both. */
  ck_assert_int_eq(kill(asker, SIGKILL), 0);
  int st = reap(asker);
  ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  ck_assert_int_eq(kill(holder, SIGKILL), 0);
  st = reap(holder);
  ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

  crew_queue_destroy(q); /* must return; the TCase timeout watches */
  crew_queue_destroy(ready);
  shared_free(stop, sizeof *stop);
  shared_free(pairs, sizeof *pairs);
}

START_TEST(destroy_right_after_the_lock_holder_died_returns)
{
  for (uint32_t r = 0; r < scaled(4); r++)
    destroy_after_holder_died_round(r + 1);
}
END_TEST

/* ------------------------------------------- 4. exactly once, 3 x 3 */

#define NPRODUCERS 3
#define NCONSUMERS 3
#define MP_MAGIC   0x6372657771756575ull

struct mp_item {
  uint32_t producer;
  uint32_t seq;
  uint64_t magic;
};

struct mp_arg {
  crew_queue *q;
  uint32_t n;               /* items per producer */
  uint32_t index;           /* producer or consumer number */
  _Atomic uint32_t *counts; /* shared: [producer * n + seq] */
  _Atomic uint64_t *popped; /* shared: items each consumer took */
};

static uint64_t mp_magic(uint32_t producer, uint32_t seq)
{
  return MP_MAGIC ^ ((uint64_t)producer << 32 | seq);
}

/* Producer 0 and 1 push one at a time, producer 2 in batches of 7. */
static int mp_produce(void *p)
{
  struct mp_arg *a = p;
  struct mp_item batch[7];
  uint32_t seq = 0;
  while (seq < a->n) {
    size_t k = a->index == 2 ? 7 : 1;
    if (k > a->n - seq)
      k = a->n - seq;
    for (size_t i = 0; i < k; i++)
      batch[i] = (struct mp_item){a->index, seq + (uint32_t)i,
                                  mp_magic(a->index, seq + (uint32_t)i)};
    if (k == 1) {
      child_require(crew_queue_push(a->q, &batch[0]) == 0);
    } else {
      size_t pushed = 0;
      child_require(
          crew_queue_push_many(a->q, batch, k, &pushed, CREW_FOREVER) == 0);
      child_require(pushed == k);
    }
    seq += (uint32_t)k;
  }
  return 0;
}

/* Consumer 0 and 1 pop one at a time, consumer 2 up to 5 at once. */
static int mp_consume(void *p)
{
  struct mp_arg *a = p;
  int64_t last[NPRODUCERS];
  for (int i = 0; i < NPRODUCERS; i++)
    last[i] = -1;
  uint64_t took = 0;
  for (;;) {
    struct mp_item got[5];
    size_t n = 1;
    int rc = a->index == 2 ? crew_queue_pop_many(a->q, got, 5, &n, CREW_FOREVER)
                           : crew_queue_pop(a->q, &got[0]);
    if (rc == CREW_ECLOSED)
      break;
    child_require(rc == 0);
    child_require(n >= 1 && n <= 5);
    for (size_t i = 0; i < n; i++) {
      const struct mp_item *it = &got[i];
      child_require(it->producer < NPRODUCERS);
      child_require(it->seq < a->n);
      child_require(it->magic == mp_magic(it->producer, it->seq));
      child_require((int64_t)it->seq > last[it->producer]); /* FIFO */
      last[it->producer] = it->seq;
      atomic_fetch_add_explicit(&a->counts[it->producer * a->n + it->seq], 1,
                                memory_order_relaxed);
    }
    took += n;
  }
  atomic_store(&a->popped[a->index], took);
  return 0;
}

START_TEST(three_by_three_processes_every_item_exactly_once)
{
  uint32_t n = (uint32_t)scaled(30000);
  size_t ncounts = (size_t)NPRODUCERS * n;
  _Atomic uint32_t *counts = shared_alloc(ncounts * sizeof *counts);
  _Atomic uint64_t *popped = shared_alloc(NCONSUMERS * sizeof *popped);
  for (size_t i = 0; i < ncounts; i++)
    atomic_init(&counts[i], 0);
  for (size_t i = 0; i < NCONSUMERS; i++)
    atomic_init(&popped[i], 0);
  crew_queue *q = shared_queue(8, sizeof(struct mp_item));

  struct mp_arg ca[NCONSUMERS], pa[NPRODUCERS];
  pid_t cpid[NCONSUMERS], ppid[NPRODUCERS];
  for (uint32_t i = 0; i < NCONSUMERS; i++) {
    ca[i] = (struct mp_arg){q, n, i, counts, popped};
    cpid[i] = spawn(mp_consume, &ca[i]);
  }
  for (uint32_t i = 0; i < NPRODUCERS; i++) {
    pa[i] = (struct mp_arg){q, n, i, counts, popped};
    ppid[i] = spawn(mp_produce, &pa[i]);
  }
  for (int i = 0; i < NPRODUCERS; i++)
    expect_exit(ppid[i], 0);
  crew_queue_close(q);
  for (int i = 0; i < NCONSUMERS; i++)
    expect_exit(cpid[i], 0);

  uint64_t total = 0;
  for (int i = 0; i < NCONSUMERS; i++)
    total += atomic_load(&popped[i]);
  ck_assert_uint_eq(total, ncounts);
  for (size_t i = 0; i < ncounts; i++)
    quiet_assert_msg(atomic_load(&counts[i]) == 1,
                     "item %zu of producer %zu popped %u times", i % n, i / n,
                     (unsigned)atomic_load(&counts[i]));
  ck_assert_uint_eq(crew_queue_size(q), 0);
  crew_queue_destroy(q);
  shared_free(counts, ncounts * sizeof *counts);
  shared_free(popped, NCONSUMERS * sizeof *popped);
}
END_TEST

/* ------------------------------------------------ 5. destroy in a child */

static int pop_then_destroy(void *p)
{
  struct ints_arg *a = p;
  int v = -1;
  child_require(crew_queue_pop_timed(a->q, &v, 0) == 0);
  child_require(v == a->first);
  crew_queue_destroy(a->q);
  return 0;
}

static int just_destroy(void *p)
{
  struct ints_arg *a = p;
  crew_queue_destroy(a->q);
  return 0;
}

START_TEST(destroy_in_a_child_only_drops_its_mapping)
{
  crew_queue *q = shared_queue(4, sizeof(int));
  crew_queue *ready = shared_queue(READY_CAPACITY, sizeof(int));
  for (int i = 1; i <= 3; i++)
    push_int(q, i);

  struct ints_arg a = {q, ready, 1, 1};
  expect_exit(spawn(pop_then_destroy, &a), 0);

  /* The test's queue is intact: items, lock and wait sets. */
  ck_assert_uint_eq(crew_queue_size(q), 2);
  ck_assert(!crew_queue_is_closed(q));
  push_int(q, 4);
  for (int i = 2; i <= 4; i++)
    ck_assert_int_eq(pop_int(q), i);

  /* A child blocked in pop, while another child destroys its mapping. */
  struct ints_arg b = {q, ready, 5, 1};
  pid_t waiter = spawn(blocked_pop, &b);
  wait_ready(ready, 1);
  expect_exit(spawn(just_destroy, &a), 0);
  expect_quiet(ready, 20);
  expect_running(waiter);
  push_int(q, 5);
  expect_exit(waiter, 0); /* blocked_pop exits code_of(0) */
  ck_assert_uint_eq(crew_queue_size(q), 0);

  push_int(q, 6);
  ck_assert_int_eq(pop_int(q), 6);
  crew_queue_close(q);
  int v;
  ck_assert_int_eq(crew_queue_pop(q, &v), CREW_ECLOSED);
  crew_queue_destroy(q);
  crew_queue_destroy(ready);
}
END_TEST

/* -------------------------------------------------------------- 6. flags */

START_TEST(shared_with_an_unknown_flag_is_einval)
{
  static const unsigned bad[] = {CREW_SHARED | 0x2u, CREW_SHARED | 0x100u,
                                 CREW_SHARED | 0x80000000u, ~0u};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    crew_queue *untouched = (crew_queue *)&bad; /* any non-NULL marker */
    crew_queue *q = untouched;
    ck_assert_int_eq(crew_queue_create(&q, 4, 8, bad[i]), CREW_EINVAL);
    ck_assert_ptr_eq(q, untouched);
  }
  /* CREW_SHARED alone is fine. */
  crew_queue *q = shared_queue(4, 8);
  ck_assert_uint_eq(crew_queue_capacity(q), 4);
  ck_assert_uint_eq(crew_queue_item_size(q), 8);
  ck_assert_uint_eq(crew_queue_size(q), 0);
  ck_assert(!crew_queue_is_closed(q));
  crew_queue_destroy(q);
}
END_TEST

/* ------------------------------------------------------------------ main */

static TCase *make_tcase(Suite *s, const char *name, double timeout)
{
  TCase *tc = tcase_create(name);
  tcase_add_checked_fixture(tc, setup_kids, teardown_kids);
  tcase_set_timeout(tc, timeout);
  suite_add_tcase(s, tc);
  return tc;
}

int main(void)
{
  Suite *s = suite_create("shared_queue");
  double scale = (double)scaled(1);

  TCase *tc = make_tcase(s, "semantics", 10 * scale);
  tcase_add_test(tc, fifo_by_value_between_processes);
  tcase_add_test(tc, capacity_is_respected_across_processes);
  tcase_add_test(tc, close_wakes_children_blocked_in_pop);
  tcase_add_test(tc, close_wakes_children_blocked_in_push);
  tcase_add_test(tc, pops_drain_then_report_closed_across_processes);
  tcase_add_test(tc, timeouts_wait_their_time_across_processes);
  tcase_add_test(tc, push_many_and_pop_many_across_processes);

  tc = make_tcase(s, "killed_waiters", 20 * scale);
  tcase_add_test(tc, poppers_killed_as_one_is_woken_wedge_nobody);
  tcase_add_test(tc, pushers_killed_as_one_is_woken_wedge_nobody);
  tcase_add_test(tc, poppers_killed_unwoken_wedge_nobody);
  tcase_add_test(tc, a_waiter_killed_as_it_is_woken_passes_nothing_by);

  tc = make_tcase(s, "killed_lock_holder", 20 * scale);
  tcase_add_test(tc, a_process_killed_holding_the_lock_wedges_nobody);
  tcase_add_test(tc, destroy_right_after_the_lock_holder_died_returns);

  tc = make_tcase(s, "exactly_once", 30 * scale);
  tcase_add_test(tc, three_by_three_processes_every_item_exactly_once);

  tc = make_tcase(s, "destroy", 10);
  tcase_add_test(tc, destroy_in_a_child_only_drops_its_mapping);

  tc = make_tcase(s, "flags", 5);
  tcase_add_test(tc, shared_with_an_unknown_flag_is_einval);

  return run_suite(s);
}
