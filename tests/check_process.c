/*
 * check_process.c - crew_process, one function run in a forked child
 * (Python's multiprocessing.Process):
 *   1. argument errors: nothing forked, NULL handles, bad signals, result
 *      with a size above the start's or before the join;
 *   2. exit codes as exit() truncates them (0, 3, 255, 256 -> 0, 300 -> 44),
 *      repeated joins, the output copied back (whole and a prefix), NULL in
 *      and out, the input a snapshot taken at the start, alive and pid;
 *   3. two children running at once (the classic demo: their own
 *      timestamps show overlapping intervals);
 *   4. crashes: SIGSEGV, abort(), _exit() and exit() inside fn;
 *   5. kill and timed joins on a child blocked forever, kill after the join,
 *      destroy of a running or ended, unjoined child (no zombie);
 *   6. several threads on one process: join while another thread kills,
 *      many threads joining at once;
 *   7. stdout buffered in the parent is flushed before the fork, and the
 *      child's buffered output is flushed at its exit, each exactly once;
 *   8. an application SIGCHLD handler still sees crew's children and its own
 *      (crew installs none); one that reaps everything makes the join report
 *      CREW_ECRASHED;
 *   9. fifty processes at once, every code right, no zombie left.
 *
 * Children never call Check: a child's fn reports through its return value
 * (the exit code) and its output, and children the test forks itself end
 * with _exit(). Every test reaps every child, and a checked teardown fails
 * a test that left one (zombie or running). If an assertion ends a test
 * early, Check kills the test's process group, children included. The only
 * timed waits give a negative check ("still blocked") its chance to fail,
 * or measure a timeout.
 */
#include "testutil.h"

#include <crew/process.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define LONG_WAIT (10000 * MS) /* "forever" for a wait that must succeed */

/* ------------------------------------------------------------- helpers */

/* Whether this process has no child at all, running or zombie (checked
 * without reaping anything). */
static bool no_children(void)
{
  siginfo_t info;
  memset(&info, 0, sizeof info);
  int r;
  do
    r = waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT);
  while (r == -1 && errno == EINTR);
  return r == -1 && errno == ECHILD;
}

/* Block until the child `pid` has ended, without reaping it. */
static void wait_ended_unreaped(pid_t pid)
{
  siginfo_t info;
  int r;
  do {
    memset(&info, 0, sizeof info);
    r = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT);
  } while (r == -1 && errno == EINTR);
  ck_assert_int_eq(r, 0);
  ck_assert_int_eq(info.si_pid, pid);
}

/* Whether the child `pid` is a zombie now (ended, not reaped). */
static bool is_zombie(pid_t pid)
{
  siginfo_t info;
  memset(&info, 0, sizeof info);
  int r;
  do
    r = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT);
  while (r == -1 && errno == EINTR);
  return r == 0 && info.si_pid == pid;
}

static pid_t waitpid_retry(pid_t pid, int *st, int options)
{
  pid_t r;
  do
    r = waitpid(pid, st, options);
  while (r == -1 && errno == EINTR);
  return r;
}

static void setup_none(void)
{
  ck_assert_msg(no_children(), "the test process has children at the start");
}

static void teardown_no_children(void)
{
  ck_assert_msg(no_children(), "the test left a child (running or zombie)");
}

static crew_process *start(crew_fn fn, const void *in, size_t in_size,
                           size_t out_size)
{
  crew_process *p = NULL;
  ck_assert_int_eq(crew_process_start(&p, fn, in, in_size, out_size), 0);
  ck_assert_ptr_nonnull(p);
  ck_assert_int_gt(crew_process_pid(p), 0);
  return p;
}

/* Join p, expecting return 0 and exit code `code`. */
static void expect_code(crew_process *p, int code)
{
  int got = 12345;
  ck_assert_int_eq(crew_process_join(p, &got), 0);
  ck_assert_int_eq(got, code);
}

static crew_queue *shared_queue(size_t capacity, size_t item_size)
{
  crew_queue *q = NULL;
  ck_assert_int_eq(crew_queue_create(&q, capacity, item_size, CREW_SHARED), 0);
  ck_assert_ptr_nonnull(q);
  return q;
}

/*
 * Queues made before a start are usable by the child (CREW_SHARED); the
 * child finds them through these globals, its copy of the parent's.
 */
static crew_queue *go_q;    /* tokens (char) the test pushes to let fn go */
static crew_queue *ready_q; /* tokens (char) fn pushes when it got there */

static void go(size_t n)
{
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(crew_queue_push_timed(go_q, "g", 0), 0);
}

static void wait_ready(size_t n)
{
  for (size_t i = 0; i < n; i++) {
    char t;
    ck_assert_msg(crew_queue_pop_timed(ready_q, &t, LONG_WAIT) == 0,
                  "waited 10 s for ready post %zu of %zu", i + 1, n);
  }
}

static void setup_queues(void)
{
  setup_none();
  go_q = shared_queue(64, 1);
  ready_q = shared_queue(64, 1);
}

static void teardown_queues(void)
{
  crew_queue_destroy(ready_q);
  crew_queue_destroy(go_q);
  ready_q = go_q = NULL;
  teardown_no_children();
}

/* A crashing child must not leave a core file behind. */
static void no_core_dump(void)
{
#ifdef __linux__
  prctl(PR_SET_DUMPABLE, 0);
#endif
}

/* ------------------------------------------------------------- the fns */

static int fn_return_in(const void *in, void *out)
{
  (void)out;
  return *(const int *)in;
}

/* Returns 1 if in is NULL, plus 2 if out is NULL. */
static int fn_nulls(const void *in, void *out)
{
  return (in == NULL ? 1 : 0) + (out == NULL ? 2 : 0);
}

/* Writes out[i] = in[0] + i for the 64 bytes of out, and its own pid. */
struct pattern_out {
  unsigned char bytes[64];
  pid_t pid;
};

static int fn_pattern(const void *in, void *out)
{
  unsigned char base = *(const unsigned char *)in;
  struct pattern_out *o = out;
  for (size_t i = 0; i < sizeof o->bytes; i++)
    o->bytes[i] = (unsigned char)(base + i);
  o->pid = getpid();
  return 0;
}

/* Waits for a go token, then copies its input (4096 bytes) to out. */
#define SNAP_SIZE 4096
static int fn_copy_after_go(const void *in, void *out)
{
  char t;
  if (crew_queue_pop(go_q, &t) != 0)
    return 1;
  memcpy(out, in, SNAP_SIZE);
  return 0;
}

/* Posts ready, waits for a go token, returns 42. */
static int fn_ready_go_42(const void *in, void *out)
{
  (void)in;
  (void)out;
  char t;
  if (crew_queue_push(ready_q, "r") != 0 || crew_queue_pop(go_q, &t) != 0)
    return 1;
  return 42;
}

/*
 * The child inherits every handler, Check's included: in fork mode Check's
 * SIGTERM handler, which a test process inherits, signals the whole process
 * group. A child the test means to end with SIGTERM takes the default.
 */
static void default_sigterm(void)
{
  signal(SIGTERM, SIG_DFL);
}

/* Posts ready, then sleeps forever. */
static int fn_block_forever(const void *in, void *out)
{
  (void)in;
  (void)out;
  default_sigterm();
  if (crew_queue_push(ready_q, "r") != 0)
    return 1;
  for (;;)
    pause();
}

/* Posts ready, then blocks popping a queue nobody fills (go_q). */
static int fn_block_in_pop(const void *in, void *out)
{
  (void)in;
  default_sigterm();
  if (crew_queue_push(ready_q, "r") != 0)
    return 1;
  char t;
  int rc = crew_queue_pop(go_q, &t);
  memcpy(out, "returned", 8);
  return rc == 0 ? 2 : 3;
}

static int fn_segv(const void *in, void *out)
{
  (void)in;
  memcpy(out, "written!", 8);
  no_core_dump();
  signal(SIGSEGV, SIG_DFL); /* not a sanitizer's handler */
  raise(SIGSEGV);
  return 0;
}

static int fn_abort(const void *in, void *out)
{
  (void)in;
  memcpy(out, "written!", 8);
  no_core_dump();
  signal(SIGABRT, SIG_DFL);
  abort();
}

static int fn_underscore_exit_7(const void *in, void *out)
{
  (void)in;
  memcpy(out, "written!", 8);
  _exit(7);
}

static int fn_exit_9(const void *in, void *out)
{
  (void)in;
  memcpy(out, "written!", 8);
  exit(9);
}

/* ---------------------------------------------------------- 1. errors */

START_TEST(start_rejects_bad_arguments)
{
  crew_process *p = NULL;
  int v = 1;
  ck_assert(no_children());
  ck_assert_int_eq(crew_process_start(NULL, fn_return_in, &v, sizeof v, 0),
                   CREW_EINVAL);
  ck_assert_int_eq(crew_process_start(&p, NULL, &v, sizeof v, 0), CREW_EINVAL);
  ck_assert_int_eq(crew_process_start(&p, fn_return_in, NULL, sizeof v, 0),
                   CREW_EINVAL);
  ck_assert_int_eq(crew_process_start(&p, fn_return_in, NULL, 1, 8),
                   CREW_EINVAL);
  ck_assert_msg(no_children(), "a failed start forked a child");
}
END_TEST

/* An output no mapping can hold: the start fails cleanly, nothing forked. */
START_TEST(start_without_memory_is_enomem)
{
#if SIZE_MAX > 0xFFFFFFFFu
  crew_process *p = NULL;
  int v = 1;
  ck_assert(no_children());
  ck_assert_int_eq(
      crew_process_start(&p, fn_return_in, &v, sizeof v, SIZE_MAX / 4),
      CREW_ENOMEM);
  ck_assert_msg(no_children(), "a failed start forked a child");
  /* And the next start works. */
  p = start(fn_return_in, &v, sizeof v, 8);
  expect_code(p, 1);
  crew_process_destroy(p);
#endif
}
END_TEST

START_TEST(null_handles)
{
  int code = 77;
  char buf[4];
  ck_assert_int_eq(crew_process_join(NULL, &code), CREW_EINVAL);
  ck_assert_int_eq(crew_process_join(NULL, NULL), CREW_EINVAL);
  ck_assert_int_eq(crew_process_join_timed(NULL, &code, 0), CREW_EINVAL);
  ck_assert_int_eq(crew_process_join_timed(NULL, &code, CREW_FOREVER),
                   CREW_EINVAL);
  ck_assert_int_eq(code, 77);
  ck_assert_int_eq(crew_process_result(NULL, buf, sizeof buf), CREW_EINVAL);
  ck_assert_int_eq(crew_process_result(NULL, NULL, 0), CREW_EINVAL);
  ck_assert_int_eq(crew_process_kill(NULL, SIGTERM), CREW_EINVAL);
  ck_assert(!crew_process_alive(NULL));
  ck_assert_int_eq(crew_process_pid(NULL), -1);
  crew_process_destroy(NULL);
}
END_TEST

START_TEST(kill_rejects_invalid_signals)
{
  crew_process *p = start(fn_block_forever, NULL, 0, 0);
  wait_ready(1);
  ck_assert_int_eq(crew_process_kill(p, -1), CREW_EINVAL);
  ck_assert_int_eq(crew_process_kill(p, NSIG), CREW_EINVAL);
  ck_assert_int_eq(crew_process_kill(p, NSIG + 100), CREW_EINVAL);
  /* Nothing was sent: the child still runs. */
  ck_assert_int_eq(crew_process_join_timed(p, NULL, 50 * MS), CREW_ETIMEDOUT);
  ck_assert(crew_process_alive(p));
  ck_assert_int_eq(crew_process_kill(p, SIGKILL), 0);
  expect_code(p, -SIGKILL);
  crew_process_destroy(p);
}
END_TEST

START_TEST(result_rejects_bad_sizes_and_comes_after_join)
{
  unsigned char base = 10;
  crew_process *p = start(fn_pattern, &base, 1, sizeof(struct pattern_out));
  struct pattern_out o;
  memset(&o, 0xEE, sizeof o);
  ck_assert_int_eq(crew_process_result(p, &o, sizeof o), CREW_EBUSY);
  ck_assert_int_eq(crew_process_result(p, NULL, 0), CREW_EBUSY);

  /* Still CREW_EBUSY once the child has ended, until the join. */
  wait_ended_unreaped(crew_process_pid(p));
  ck_assert_int_eq(crew_process_result(p, &o, sizeof o), CREW_EBUSY);
  ck_assert_uint_eq(o.bytes[0], 0xEE);

  expect_code(p, 0);
  ck_assert_int_eq(crew_process_result(p, &o, sizeof o + 1), CREW_EINVAL);
  ck_assert_int_eq(crew_process_result(p, NULL, 1), CREW_EINVAL);
  ck_assert_uint_eq(o.bytes[0], 0xEE);
  ck_assert_int_eq(crew_process_result(p, &o, sizeof o), 0);
  ck_assert_uint_eq(o.bytes[0], 10);
  crew_process_destroy(p);
}
END_TEST

START_TEST(result_with_no_output_rejects_any_size)
{
  int v = 0;
  crew_process *p = start(fn_return_in, &v, sizeof v, 0);
  expect_code(p, 0);
  char c = 'x';
  ck_assert_int_eq(crew_process_result(p, &c, 1), CREW_EINVAL);
  ck_assert_int_eq(crew_process_result(p, NULL, 0), 0);
  ck_assert_int_eq(c, 'x');
  crew_process_destroy(p);
}
END_TEST

/* ------------------------------------------------------ 2. exit codes */

START_TEST(exit_codes_are_truncated_as_exit_does)
{
  static const int ret[] = {0, 3, 255, 256, 300, 1000};
  static const int want[] = {0, 3, 255, 0, 44, 232};
  for (size_t i = 0; i < sizeof ret / sizeof ret[0]; i++) {
    crew_process *p = start(fn_return_in, &ret[i], sizeof ret[i], 0);
    int code = -12345;
    ck_assert_int_eq(crew_process_join(p, &code), 0);
    ck_assert_int_eq(code, want[i]);
    /* Joining again gives the same, in every form. */
    code = -12345;
    ck_assert_int_eq(crew_process_join(p, &code), 0);
    ck_assert_int_eq(code, want[i]);
    code = -12345;
    ck_assert_int_eq(crew_process_join_timed(p, &code, 0), 0);
    ck_assert_int_eq(code, want[i]);
    ck_assert_int_eq(crew_process_join(p, NULL), 0);
    ck_assert(!crew_process_alive(p));
    ck_assert_int_eq(crew_process_result(p, NULL, 0), 0);
    crew_process_destroy(p);
  }
}
END_TEST

START_TEST(result_copies_the_output_whole_and_a_prefix)
{
  unsigned char base = 100;
  crew_process *p = start(fn_pattern, &base, 1, sizeof(struct pattern_out));
  pid_t pid = crew_process_pid(p);
  expect_code(p, 0);

  struct pattern_out o;
  memset(&o, 0, sizeof o);
  ck_assert_int_eq(crew_process_result(p, &o, sizeof o), 0);
  for (size_t i = 0; i < sizeof o.bytes; i++)
    quiet_assert_uint_eq(o.bytes[i], (unsigned char)(100 + i));
  ck_assert_int_eq(o.pid, pid); /* pid() is the child's own getpid() */

  unsigned char prefix[64];
  memset(prefix, 0xEE, sizeof prefix);
  ck_assert_int_eq(crew_process_result(p, prefix, 10), 0);
  for (size_t i = 0; i < 10; i++)
    ck_assert_uint_eq(prefix[i], (unsigned char)(100 + i));
  for (size_t i = 10; i < sizeof prefix; i++)
    ck_assert_uint_eq(prefix[i], 0xEE);

  /* The result can be read again, the same. */
  memset(&o, 0, sizeof o);
  ck_assert_int_eq(crew_process_result(p, &o, sizeof o), 0);
  ck_assert_uint_eq(o.bytes[63], (unsigned char)(100 + 63));
  ck_assert_int_eq(crew_process_pid(p), pid); /* pid survives the join */
  crew_process_destroy(p);
}
END_TEST

START_TEST(null_input_and_no_output_give_fn_null)
{
  /* in NULL, in_size 0, out_size 0: fn gets NULL for both. */
  crew_process *p = start(fn_nulls, NULL, 0, 0);
  expect_code(p, 3);
  crew_process_destroy(p);

  /* An input and an output: neither NULL. */
  int v = 1;
  p = start(fn_nulls, &v, sizeof v, 16);
  expect_code(p, 0);
  crew_process_destroy(p);

  /* Only the output missing. */
  p = start(fn_nulls, &v, sizeof v, 0);
  expect_code(p, 2);
  crew_process_destroy(p);

  /* Only the input missing. */
  p = start(fn_nulls, NULL, 0, 1);
  expect_code(p, 1);
  crew_process_destroy(p);
}
END_TEST

START_TEST(input_is_a_snapshot_at_start)
{
  static unsigned char buf[SNAP_SIZE];
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (unsigned char)(i * 7 + 1);
  crew_process *p = start(fn_copy_after_go, buf, sizeof buf, sizeof buf);
  /* Overwrite right after the start, then let the child read. */
  memset(buf, 0, sizeof buf);
  go(1);
  expect_code(p, 0);
  static unsigned char got[SNAP_SIZE];
  ck_assert_int_eq(crew_process_result(p, got, sizeof got), 0);
  for (size_t i = 0; i < sizeof got; i++)
    quiet_assert_uint_eq(got[i], (unsigned char)(i * 7 + 1));
  crew_process_destroy(p);
}
END_TEST

START_TEST(alive_until_the_end_and_does_not_reap)
{
  crew_process *p = start(fn_ready_go_42, NULL, 0, 0);
  pid_t pid = crew_process_pid(p);
  wait_ready(1);
  ck_assert(crew_process_alive(p));
  ck_assert(!is_zombie(pid));
  go(1);
  wait_ended_unreaped(pid);
  ck_assert(!crew_process_alive(p));
  ck_assert_msg(is_zombie(pid), "alive() reaped the child");
  ck_assert(!crew_process_alive(p));
  expect_code(p, 42);
  ck_assert(!is_zombie(pid));
  ck_assert(!crew_process_alive(p));
  crew_process_destroy(p);
}
END_TEST

/* ----------------------------------------------------- 3. concurrency */

/*
 * Two children each push a start mark, a tick every 2 ms, and an end mark,
 * with their own timestamps, into a shared queue. Each ticks at least
 * MIN_TICKS times and on until it sees the other has started (up to
 * MAX_TICKS), so two children that really run at once always overlap, and
 * two run one after the other (a start that waited for the child) never do.
 */
#define MIN_TICKS 5
#define MAX_TICKS 1000

struct mark {
  char who;  /* 'A' or 'B' */
  char what; /* 'S'tart, 'T'ick, 'E'nd */
  uint64_t t;
};

struct ticker_arg {
  char who;
  crew_queue *marks;
  _Atomic int *started; /* in memory both children share */
};

static int fn_ticker(const void *in, void *out)
{
  (void)out;
  const struct ticker_arg *a = in;
  struct mark m = {a->who, 'S', now_ns()};
  if (crew_queue_push(a->marks, &m) != 0)
    return 1;
  atomic_fetch_add(a->started, 1);
  for (int i = 0; i < MAX_TICKS; i++) {
    struct timespec tick = {0, 2000000};
    nanosleep(&tick, NULL);
    m = (struct mark){a->who, 'T', now_ns()};
    if (crew_queue_push(a->marks, &m) != 0)
      return 1;
    if (i + 1 >= MIN_TICKS && atomic_load(a->started) == 2)
      break;
  }
  m = (struct mark){a->who, 'E', now_ns()};
  return crew_queue_push(a->marks, &m) == 0 ? 0 : 1;
}

START_TEST(two_children_run_at_once)
{
  crew_queue *marks = shared_queue(2 * MAX_TICKS + 8, sizeof(struct mark));
  _Atomic int *started = mmap(NULL, sizeof *started, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ck_assert(started != MAP_FAILED);
  atomic_init(started, 0);

  struct ticker_arg a = {'A', marks, started}, b = {'B', marks, started};
  crew_process *pa = start(fn_ticker, &a, sizeof a, 0);
  crew_process *pb = start(fn_ticker, &b, sizeof b, 0);
  expect_code(pa, 0);
  expect_code(pb, 0);
  crew_process_destroy(pa);
  crew_process_destroy(pb);

  uint64_t first[2] = {0, 0}, last[2] = {0, 0};
  size_t count[2] = {0, 0}, ticks[2] = {0, 0};
  bool ended[2] = {false, false};
  size_t n = crew_queue_size(marks);
  for (size_t i = 0; i < n; i++) {
    struct mark m;
    ck_assert_int_eq(crew_queue_pop_timed(marks, &m, 0), 0);
    ck_assert(m.who == 'A' || m.who == 'B');
    int k = m.who - 'A';
    /* Per child: S first, then ticks in time order, E last. */
    ck_assert_msg(!ended[k], "mark after the end of %c", m.who);
    if (count[k] == 0) {
      ck_assert_int_eq(m.what, 'S');
      first[k] = m.t;
    } else {
      ck_assert_int_ne(m.what, 'S');
      ck_assert_uint_ge(m.t, last[k]);
    }
    if (m.what == 'T')
      ticks[k]++;
    ended[k] = m.what == 'E';
    last[k] = m.t;
    count[k]++;
  }
  ck_assert(ended[0] && ended[1]);
  ck_assert_uint_ge(ticks[0], MIN_TICKS);
  ck_assert_uint_ge(ticks[1], MIN_TICKS);
  /* Each started before the other ended. */
  ck_assert_msg(first[0] < last[1] && first[1] < last[0],
                "A ran [%llu, %llu], B ran [%llu, %llu] ns: no overlap",
                (unsigned long long)first[0], (unsigned long long)last[0],
                (unsigned long long)first[1], (unsigned long long)last[1]);
  ck_assert_int_eq(atomic_load(started), 2);

  munmap(started, sizeof *started);
  crew_queue_destroy(marks);
}
END_TEST

/* --------------------------------------------------------- 4. crashes */

static void expect_crash(crew_fn fn, int code)
{
  crew_process *p = start(fn, NULL, 0, 8);
  int got = 12345;
  ck_assert_int_eq(crew_process_join(p, &got), 0);
  ck_assert_int_eq(got, code);
  got = 12345;
  ck_assert_int_eq(crew_process_join(p, &got), 0);
  ck_assert_int_eq(got, code);
  char out[8];
  memset(out, 'u', sizeof out);
  ck_assert_int_eq(crew_process_result(p, out, sizeof out), CREW_ECRASHED);
  ck_assert_int_eq(crew_process_result(p, NULL, 0), CREW_ECRASHED);
  for (size_t i = 0; i < sizeof out; i++)
    ck_assert_int_eq(out[i], 'u');
  ck_assert(!crew_process_alive(p));
  crew_process_destroy(p);
}

START_TEST(segv_in_fn)
{
  expect_crash(fn_segv, -SIGSEGV);
}
END_TEST

START_TEST(abort_in_fn)
{
  expect_crash(fn_abort, -SIGABRT);
}
END_TEST

START_TEST(underscore_exit_in_fn)
{
  expect_crash(fn_underscore_exit_7, 7);
}
END_TEST

START_TEST(exit_in_fn)
{
  expect_crash(fn_exit_9, 9);
}
END_TEST

/* ----------------------------------------------- 5. kill and destroy */

START_TEST(timed_join_kill_and_join)
{
  crew_process *p = start(fn_block_forever, NULL, 0, 8);
  pid_t pid = crew_process_pid(p);
  wait_ready(1);
  ck_assert(crew_process_alive(p));

  int code = 12345;
  uint64_t t0 = now_ns();
  ck_assert_int_eq(crew_process_join_timed(p, &code, 20 * MS), CREW_ETIMEDOUT);
  uint64_t waited = now_ns() - t0;
  ck_assert_msg(waited >= 20 * MS, "timed out after %llu ns, before 20 ms",
                (unsigned long long)waited);
  ck_assert_int_eq(code, 12345);
  /* Timeout 0 polls. */
  ck_assert_int_eq(crew_process_join_timed(p, &code, 0), CREW_ETIMEDOUT);
  ck_assert_int_eq(code, 12345);
  ck_assert(crew_process_alive(p));
  ck_assert_int_eq(crew_process_result(p, NULL, 0), CREW_EBUSY);

  ck_assert_int_eq(crew_process_kill(p, SIGTERM), 0);
  expect_code(p, -SIGTERM);
  ck_assert(!crew_process_alive(p));
  ck_assert_int_eq(crew_process_result(p, NULL, 0), CREW_ECRASHED);

  /* After the join, kill sends nothing: the pid is no longer ours. */
  ck_assert_int_eq(waitpid_retry(pid, NULL, WNOHANG), -1);
  ck_assert_int_eq(errno, ECHILD);
  ck_assert_int_eq(crew_process_kill(p, SIGKILL), 0);
  ck_assert_int_eq(crew_process_kill(p, SIGTERM), 0);
  ck_assert_int_eq(crew_process_kill(p, -1), CREW_EINVAL);
  expect_code(p, -SIGTERM);
  crew_process_destroy(p);
}
END_TEST

START_TEST(kill_a_child_blocked_in_a_shared_queue)
{
  crew_process *p = start(fn_block_in_pop, NULL, 0, 8);
  wait_ready(1);
  ck_assert_int_eq(crew_process_join_timed(p, NULL, 50 * MS), CREW_ETIMEDOUT);
  ck_assert(crew_process_alive(p));
  ck_assert_int_eq(crew_process_kill(p, SIGKILL), 0);
  expect_code(p, -SIGKILL);
  char out[8];
  memset(out, 'u', sizeof out);
  ck_assert_int_eq(crew_process_result(p, out, sizeof out), CREW_ECRASHED);
  ck_assert_int_eq(out[0], 'u');
  crew_process_destroy(p);
  /* The queue is still usable by the test. */
  char t;
  ck_assert_int_eq(crew_queue_push_timed(go_q, "g", 0), 0);
  ck_assert_int_eq(crew_queue_pop_timed(go_q, &t, 0), 0);
}
END_TEST

static volatile sig_atomic_t got_usr1;

static void on_usr1(int signo)
{
  (void)signo;
  got_usr1 = 1;
}

/* Handles SIGUSR1, posts ready, waits for it, writes out and returns 5. */
static int fn_wait_usr1(const void *in, void *out)
{
  (void)in;
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  sigprocmask(SIG_BLOCK, &block, &old);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGUSR1, &sa, NULL) != 0 || crew_queue_push(ready_q, "r") != 0)
    return 1;
  sigdelset(&old, SIGUSR1);
  while (!got_usr1)
    sigsuspend(&old);
  memcpy(out, "usr1", 4);
  return 5;
}

START_TEST(kill_sends_the_given_signal)
{
  crew_process *p = start(fn_wait_usr1, NULL, 0, 4);
  wait_ready(1);
  ck_assert_int_eq(crew_process_kill(p, SIGUSR1), 0);
  expect_code(p, 5);
  char out[4];
  ck_assert_int_eq(crew_process_result(p, out, sizeof out), 0);
  ck_assert_int_eq(memcmp(out, "usr1", 4), 0);
  crew_process_destroy(p);
}
END_TEST

START_TEST(destroy_kills_and_reaps_a_running_child)
{
  crew_process *p = start(fn_block_forever, NULL, 0, 0);
  pid_t pid = crew_process_pid(p);
  wait_ready(1);
  ck_assert(crew_process_alive(p));
  crew_process_destroy(p);
  ck_assert_int_eq(waitpid_retry(pid, NULL, WNOHANG), -1);
  ck_assert_int_eq(errno, ECHILD);
  ck_assert(no_children());
}
END_TEST

START_TEST(destroy_reaps_an_ended_unjoined_child)
{
  int v = 4;
  crew_process *p = start(fn_return_in, &v, sizeof v, 0);
  pid_t pid = crew_process_pid(p);
  wait_ended_unreaped(pid);
  crew_process_destroy(p);
  ck_assert_int_eq(waitpid_retry(pid, NULL, WNOHANG), -1);
  ck_assert_int_eq(errno, ECHILD);
  ck_assert(no_children());
}
END_TEST

/* ------------------------------------------------------- 6. threads */

struct joiner {
  pthread_t thread;
  crew_process *p;
  signal_box *about_to_join;
  atomic_int *done;
  bool timed;
  int rc, code;
};

static void *joiner_main(void *arg)
{
  struct joiner *j = arg;
  signal_post(j->about_to_join);
  j->code = 12345;
  j->rc = j->timed ? crew_process_join_timed(j->p, &j->code, LONG_WAIT)
                   : crew_process_join(j->p, &j->code);
  atomic_fetch_add(j->done, 1);
  return NULL;
}

struct killer {
  crew_process *p;
  int rc;
};

static void *killer_main(void *arg)
{
  struct killer *k = arg;
  k->rc = crew_process_kill(k->p, SIGTERM);
  return NULL;
}

START_TEST(one_thread_joins_while_another_kills)
{
  crew_process *p = start(fn_block_forever, NULL, 0, 0);
  wait_ready(1);
  signal_box s;
  signal_init(&s);
  atomic_int done = 0;
  struct joiner j = {.p = p, .about_to_join = &s, .done = &done};
  ck_assert_int_eq(pthread_create(&j.thread, NULL, joiner_main, &j), 0);
  signal_wait(&s, 1);
  /* The joiner is blocked: the child runs and the join has not returned. */
  ck_assert_int_eq(crew_process_join_timed(p, NULL, 50 * MS), CREW_ETIMEDOUT);
  ck_assert_int_eq(atomic_load(&done), 0);

  struct killer k = {p, 12345};
  pthread_t kt;
  ck_assert_int_eq(pthread_create(&kt, NULL, killer_main, &k), 0);
  ck_assert_int_eq(pthread_join(kt, NULL), 0);
  ck_assert_int_eq(pthread_join(j.thread, NULL), 0);
  ck_assert_int_eq(k.rc, 0);
  ck_assert_int_eq(j.rc, 0);
  ck_assert_int_eq(j.code, -SIGTERM);
  expect_code(p, -SIGTERM);
  signal_fini(&s);
  crew_process_destroy(p);
}
END_TEST

#define JOINERS 8

START_TEST(many_threads_join_at_once)
{
  crew_process *p = start(fn_ready_go_42, NULL, 0, 0);
  wait_ready(1);
  signal_box s;
  signal_init(&s);
  atomic_int done = 0;
  struct joiner j[JOINERS];
  for (int i = 0; i < JOINERS; i++) {
    j[i] = (struct joiner){
        .p = p, .about_to_join = &s, .done = &done, .timed = i % 2 == 1};
    ck_assert_int_eq(pthread_create(&j[i].thread, NULL, joiner_main, &j[i]), 0);
  }
  signal_wait(&s, JOINERS);
  ck_assert_int_eq(crew_process_join_timed(p, NULL, 50 * MS), CREW_ETIMEDOUT);
  ck_assert_int_eq(atomic_load(&done), 0);
  go(1);
  for (int i = 0; i < JOINERS; i++) {
    ck_assert_int_eq(pthread_join(j[i].thread, NULL), 0);
    ck_assert_int_eq(j[i].rc, 0);
    ck_assert_int_eq(j[i].code, 42);
  }
  expect_code(p, 42);
  signal_fini(&s);
  crew_process_destroy(p);
}
END_TEST

/* Threads that each start and join processes while the others do. */
#define STARTERS    4
#define STARTS_EACH 10
struct starter {
  pthread_t thread;
  int id;
  signal_box *ready;
  gate *go;
  int bad; /* how many starts, joins or codes went wrong */
};

static void *starter_main(void *arg)
{
  struct starter *st = arg;
  signal_post(st->ready);
  gate_pass(st->go);
  for (int i = 0; i < STARTS_EACH; i++) {
    int v = st->id * STARTS_EACH + i;
    crew_process *p = NULL;
    int code = -1;
    if (crew_process_start(&p, fn_return_in, &v, sizeof v, 0) != 0) {
      st->bad++;
      continue;
    }
    if (crew_process_join(p, &code) != 0 || code != v)
      st->bad++;
    crew_process_destroy(p);
  }
  return NULL;
}

START_TEST(several_threads_start_at_once)
{
  signal_box ready;
  gate go_gate;
  signal_init(&ready);
  gate_init(&go_gate);
  struct starter st[STARTERS];
  for (int i = 0; i < STARTERS; i++) {
    st[i] = (struct starter){.id = i, .ready = &ready, .go = &go_gate};
    ck_assert_int_eq(pthread_create(&st[i].thread, NULL, starter_main, &st[i]),
                     0);
  }
  signal_wait(&ready, STARTERS);
  gate_open(&go_gate, STARTERS);
  for (int i = 0; i < STARTERS; i++) {
    ck_assert_int_eq(pthread_join(st[i].thread, NULL), 0);
    ck_assert_int_eq(st[i].bad, 0);
  }
  gate_fini(&go_gate);
  signal_fini(&ready);
  ck_assert(no_children());
}
END_TEST

/* ----------------------------------------------------------- 7. stdout */

static int fn_print_child(const void *in, void *out)
{
  (void)in;
  (void)out;
  printf("child"); /* no newline, no flush: crew flushes at the exit */
  return 0;
}

START_TEST(stdout_is_flushed_once_around_the_fork)
{
  FILE *tf = tmpfile();
  ck_assert_ptr_nonnull(tf);
  int fd = fileno(tf);
  ck_assert_int_eq(fflush(stdout), 0);
  int saved = dup(STDOUT_FILENO);
  ck_assert_int_ge(saved, 0);
  ck_assert_int_eq(dup2(fd, STDOUT_FILENO), STDOUT_FILENO);

  printf("before"); /* stays in the parent's buffer... */
  char buf[64];
  ssize_t n = pread(fd, buf, sizeof buf, 0);
  /* ... so restore stdout before asserting anything. */
  int written_early = (int)n;

  crew_process *p = NULL;
  int rc = crew_process_start(&p, fn_print_child, NULL, 0, 0);
  int code = 12345, jrc = rc == 0 ? crew_process_join(p, &code) : rc;
  fflush(stdout);
  dup2(saved, STDOUT_FILENO);
  close(saved);

  ck_assert_int_eq(written_early, 0); /* "before" was buffered */
  ck_assert_int_eq(rc, 0);
  ck_assert_int_eq(jrc, 0);
  ck_assert_int_eq(code, 0);
  crew_process_destroy(p);

  memset(buf, 0, sizeof buf);
  n = pread(fd, buf, sizeof buf - 1, 0);
  ck_assert_int_eq(n, 11);
  ck_assert_str_eq(buf, "beforechild");
  fclose(tf);
}
END_TEST

/* --------------------------------------------------------- 8. SIGCHLD */

#define MAX_SEEN 64
static _Atomic pid_t seen[MAX_SEEN];
static atomic_uint nseen;
static _Atomic pid_t reaped_by_handler[MAX_SEEN];
static atomic_uint nreaped;

static void on_chld_record(int signo, siginfo_t *info, void *ctx)
{
  (void)signo;
  (void)ctx;
  unsigned i = atomic_fetch_add(&nseen, 1);
  if (i < MAX_SEEN)
    atomic_store(&seen[i], info->si_pid);
}

static void on_chld_reap_all(int signo, siginfo_t *info, void *ctx)
{
  (void)signo;
  (void)info;
  (void)ctx;
  int saved = errno;
  pid_t r;
  while ((r = waitpid(-1, NULL, WNOHANG)) > 0) {
    unsigned i = atomic_fetch_add(&nreaped, 1);
    if (i < MAX_SEEN)
      atomic_store(&reaped_by_handler[i], r);
  }
  errno = saved;
}

static bool in_list(_Atomic pid_t *list, atomic_uint *n, pid_t pid)
{
  unsigned k = atomic_load(n);
  for (unsigned i = 0; i < k && i < MAX_SEEN; i++)
    if (atomic_load(&list[i]) == pid)
      return true;
  return false;
}

/* Wait (at most 10 s) until the handler listed pid. The signal is pending
 * once the child has ended; this only waits for its delivery. */
static void wait_listed(_Atomic pid_t *list, atomic_uint *n, pid_t pid)
{
  uint64_t end = now_ns() + LONG_WAIT;
  while (!in_list(list, n, pid)) {
    ck_assert_msg(now_ns() < end, "the SIGCHLD handler never saw child %d",
                  (int)pid);
    struct timespec nap = {0, 1000000};
    nanosleep(&nap, NULL);
  }
}

static void install(void (*handler)(int, siginfo_t *, void *),
                    struct sigaction *old)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = handler;
  sa.sa_flags = SA_SIGINFO; /* no SA_RESTART: crew must cope with EINTR */
  sigemptyset(&sa.sa_mask);
  ck_assert_int_eq(sigaction(SIGCHLD, &sa, old), 0);
}

static void expect_installed(void (*handler)(int, siginfo_t *, void *))
{
  struct sigaction now;
  memset(&now, 0, sizeof now);
  ck_assert_int_eq(sigaction(SIGCHLD, NULL, &now), 0);
  ck_assert_msg((now.sa_flags & SA_SIGINFO) && now.sa_sigaction == handler,
                "the test's SIGCHLD handler was replaced");
}

START_TEST(application_sigchld_handler_sees_every_child)
{
  struct sigaction old;
  atomic_store(&nseen, 0);
  install(on_chld_record, &old);

  int v = 6;
  crew_process *p = start(fn_return_in, &v, sizeof v, 0);
  pid_t pid = crew_process_pid(p);
  expect_installed(on_chld_record);
  expect_code(p, 6);
  expect_installed(on_chld_record);
  wait_listed(seen, &nseen, pid);
  crew_process_destroy(p);

  /* A child the test forks itself. */
  pid_t own = fork();
  ck_assert_int_ne(own, -1);
  if (own == 0)
    _exit(5);
  wait_listed(seen, &nseen, own);
  int st = 0;
  ck_assert_int_eq(waitpid_retry(own, &st, 0), own);
  ck_assert(WIFEXITED(st));
  ck_assert_int_eq(WEXITSTATUS(st), 5);

  /* And crew again, after the test's own child. */
  v = 8;
  p = start(fn_return_in, &v, sizeof v, 0);
  pid = crew_process_pid(p);
  expect_code(p, 8);
  wait_listed(seen, &nseen, pid);
  crew_process_destroy(p);
  expect_installed(on_chld_record);

  ck_assert_int_eq(sigaction(SIGCHLD, &old, NULL), 0);
}
END_TEST

START_TEST(a_handler_that_reaps_everything_loses_the_exit_code)
{
  struct sigaction old;
  atomic_store(&nreaped, 0);
  install(on_chld_reap_all, &old);

  unsigned char base = 3;
  crew_process *p = start(fn_pattern, &base, 1, sizeof(struct pattern_out));
  pid_t pid = crew_process_pid(p);
  wait_listed(reaped_by_handler, &nreaped, pid);
  ck_assert(!crew_process_alive(p));
  int code = 12345;
  ck_assert_int_eq(crew_process_join(p, &code), CREW_ECRASHED);
  ck_assert_int_eq(code, 12345);
  ck_assert_int_eq(crew_process_join_timed(p, &code, 0), CREW_ECRASHED);
  ck_assert_int_eq(code, 12345);
  ck_assert(!crew_process_alive(p));
  /* fn did return: its output is there. */
  struct pattern_out o;
  ck_assert_int_eq(crew_process_result(p, &o, sizeof o), 0);
  ck_assert_uint_eq(o.bytes[0], 3);
  ck_assert_uint_eq(o.bytes[63], 3 + 63);
  ck_assert_int_eq(crew_process_kill(p, SIGKILL), 0); /* nothing sent */
  crew_process_destroy(p);

  ck_assert_int_eq(sigaction(SIGCHLD, &old, NULL), 0);
}
END_TEST

/* ------------------------------------------------------------ 9. many */

#define MANY 50

START_TEST(fifty_processes_at_once)
{
  crew_process *p[MANY];
  for (int i = 0; i < MANY; i++) {
    unsigned char base = (unsigned char)i;
    p[i] = start(fn_pattern, &base, 1, sizeof(struct pattern_out));
  }
  /* Distinct children. */
  for (int i = 0; i < MANY; i++)
    for (int k = 0; k < i; k++)
      quiet_assert(crew_process_pid(p[i]) != crew_process_pid(p[k]));
  for (int i = MANY - 1; i >= 0; i--) {
    int code = 12345;
    quiet_assert_int_eq(crew_process_join(p[i], &code), 0);
    quiet_assert_int_eq(code, 0);
    struct pattern_out o;
    quiet_assert_int_eq(crew_process_result(p[i], &o, sizeof o), 0);
    quiet_assert_uint_eq(o.bytes[0], (unsigned char)i);
    quiet_assert_uint_eq(o.bytes[63], (unsigned char)(i + 63));
    quiet_assert_int_eq(o.pid, crew_process_pid(p[i]));
  }
  ck_assert(no_children());
  for (int i = 0; i < MANY; i++)
    crew_process_destroy(p[i]);

  /* Exit codes 0..MANY-1, joined in start order. */
  int codes[MANY];
  for (int i = 0; i < MANY; i++) {
    codes[i] = i;
    p[i] = start(fn_return_in, &codes[i], sizeof codes[i], 0);
  }
  for (int i = 0; i < MANY; i++) {
    int code = 12345;
    quiet_assert_int_eq(crew_process_join(p[i], &code), 0);
    quiet_assert_int_eq(code, i);
    crew_process_destroy(p[i]);
  }
  ck_assert(no_children());
}
END_TEST

/* ------------------------------------------------------------- suite */

static TCase *tcase(Suite *s, const char *name, int timeout,
                    void (*setup)(void), void (*teardown)(void))
{
  TCase *tc = tcase_create(name);
  tcase_set_timeout(tc, timeout);
  tcase_add_checked_fixture(tc, setup, teardown);
  suite_add_tcase(s, tc);
  return tc;
}

int main(void)
{
  Suite *s = suite_create("process");

  TCase *tc = tcase(s, "errors", 10, setup_queues, teardown_queues);
  tcase_add_test(tc, start_rejects_bad_arguments);
  tcase_add_test(tc, start_without_memory_is_enomem);
  tcase_add_test(tc, null_handles);
  tcase_add_test(tc, kill_rejects_invalid_signals);
  tcase_add_test(tc, result_rejects_bad_sizes_and_comes_after_join);
  tcase_add_test(tc, result_with_no_output_rejects_any_size);

  tc = tcase(s, "exit", 10, setup_queues, teardown_queues);
  tcase_add_test(tc, exit_codes_are_truncated_as_exit_does);
  tcase_add_test(tc, result_copies_the_output_whole_and_a_prefix);
  tcase_add_test(tc, null_input_and_no_output_give_fn_null);
  tcase_add_test(tc, input_is_a_snapshot_at_start);
  tcase_add_test(tc, alive_until_the_end_and_does_not_reap);

  tc = tcase(s, "concurrency", 15, setup_none, teardown_no_children);
  tcase_add_test(tc, two_children_run_at_once);

  tc = tcase(s, "crash", 10, setup_none, teardown_no_children);
  tcase_add_test(tc, segv_in_fn);
  tcase_add_test(tc, abort_in_fn);
  tcase_add_test(tc, underscore_exit_in_fn);
  tcase_add_test(tc, exit_in_fn);

  tc = tcase(s, "kill", 10, setup_queues, teardown_queues);
  tcase_add_test(tc, timed_join_kill_and_join);
  tcase_add_test(tc, kill_a_child_blocked_in_a_shared_queue);
  tcase_add_test(tc, kill_sends_the_given_signal);
  tcase_add_test(tc, destroy_kills_and_reaps_a_running_child);
  tcase_add_test(tc, destroy_reaps_an_ended_unjoined_child);

  tc = tcase(s, "threads", 10, setup_queues, teardown_queues);
  tcase_add_test(tc, one_thread_joins_while_another_kills);
  tcase_add_test(tc, many_threads_join_at_once);
  tcase_add_test(tc, several_threads_start_at_once);

  tc = tcase(s, "stdout", 10, setup_none, teardown_no_children);
  tcase_add_test(tc, stdout_is_flushed_once_around_the_fork);

  tc = tcase(s, "sigchld", 10, setup_none, teardown_no_children);
  tcase_add_test(tc, application_sigchld_handler_sees_every_child);
  tcase_add_test(tc, a_handler_that_reaps_everything_loses_the_exit_code);

  tc = tcase(s, "many", 20, setup_none, teardown_no_children);
  tcase_add_test(tc, fifty_processes_at_once);

  return run_suite(s);
}
