/*
 * check_inject.c - the fault-injection suite: crew's test hooks
 * (crew/testhook.h) drive failures and schedules at exact protocol steps.
 *
 * Part 1, "k-th call fails" (issue 7 item 3; catalog 20): every scenario
 * below runs once per k = 1, 2, ... with a hook that fails the k-th call at
 * one point (CREW_TP_ALLOC, _THREAD, _MAP or _FORK), until a run makes
 * fewer than k such calls and so completes with no injected failure. Each
 * failing run must give exactly CREW_ENOMEM from the call that failed (or
 * the outcome the library documents, named where it applies), leave the
 * caller's out-pointer untouched and no half-made object behind (counters,
 * channel pending counts), and leak nothing: the harness's resource counts
 * (descriptors, threads, children, zombies, mappings) must be back at the
 * baseline after each k, and under AddressSanitizer a recoverable LeakSanitizer
 * check runs after each k, so a leak is pinned to its k.
 *
 * Catalog 20 (init failure rollback: pthread_create, fork and mmap failing
 * at the k-th call) is this part: the THREAD, FORK and MAP points of
 * crew_pool_create (threads and processes), crew_queue_create(CREW_SHARED)
 * and crew_process_start, for every k.
 *
 * Counting: the hook counts calls only while the scenario's own calls run
 * (an atomic "armed" flag set around them; calls on worker threads in that
 * window count too), and only in this process: forked process-pool workers
 * and the fork server inherit the hook, but their calls neither count nor
 * fail, except in the *_children scenarios, which count in every process
 * through a MAP_SHARED counter and so fail the fork server's fork of a worker
 * (FORK) or its own start-up allocation (ALLOC).
 *
 * Part 2, schedule perturbation: a seeded hook (env CREW_INJECT_SEED; the
 * seed is printed in every failure message) that at the LOCK, UNLOCK, WAIT,
 * WAKE, ENQUEUE, DEQUEUE and PUBLISH points randomly yields or sleeps 1-50 us,
 * with one random-number state per thread (thread-local), under the
 * scenarios of catalog 1/3, 7, 13/15 and 27.
 *
 * Outcomes other than CREW_ENOMEM that the library documents, and so
 * accepted here:
 *  - MAP: lib/arena.c reserves the process pool's arena at 64 GiB and halves
 *    the size until the system accepts it (down to 64 MiB), so a failed
 *    reservation above 64 MiB is retried and the pool is made;
 *  - ALLOC in lib/arena.c crew__arena_free (a free list that cannot grow
 *    loses the block to reuse, not the call): crew_map in process mode
 *    frees its block at the end, and a process pool's manager thread frees
 *    settled tasks' blocks, possibly while a later call is armed;
 *  - crew_wait_any on more than 8 futures allocates its links: CREW_ENOMEM
 *    is its documented failure.
 * Anything else that succeeds although one of its calls failed is a soft
 * failure: the loop goes on, and the test fails at its end listing them.
 *
 * Environment: CREW_INJECT_SEED (part 2's seed), CREW_INJECT_ONLY=NAME (run
 * only the part-1 scenario NAME), CREW_INJECT_VERBOSE (print each injected
 * failure: k, the failed call's object, its process), CREW_STRESS_SCALE
 * (part 2's sizes). Not covered here: catalog 20's lowered RLIMIT_NPROC.
 *
 * A library built without --enable-test-hooks has no hooks: the suite then
 * has one test that says so (Makefile.am builds it only with hooks anyway).
 */
#include "config.h"

#include "harness.h"
#include "testutil.h"

#ifdef CREW_TEST_HOOKS

#include <crew/testhook.h>

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define INJECT_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define INJECT_LSAN 1
#endif
#endif
#ifdef INJECT_LSAN
#include <sanitizer/lsan_interface.h>
#endif

/* ------------------------------------------------------------- the hook */

/*
 * The hook's state, in a MAP_SHARED mapping made once in main() (so it is
 * part of every test's resource baseline, and forked children share it).
 */
struct inject {
  _Atomic int armed;     /* count and act only while set */
  _Atomic int all_procs; /* count fail-point calls in every process */
  _Atomic pid_t self;    /* else only in this process */
  /* Part 1: fail the k-th call at `point`. */
  _Atomic int point;
  _Atomic long k;
  _Atomic long calls;              /* calls at `point` while armed */
  _Atomic long failed;             /* failures injected (0 or 1) */
  _Atomic uintptr_t failed_object; /* the failed call's object (a size) */
  _Atomic pid_t failed_pid;        /* the process it failed in */
  _Atomic int failed_on_caller;    /* on the thread that armed the hook */
  /* Part 2: perturbation. */
  _Atomic unsigned perturb_mask; /* bit (1 << point) */
  _Atomic unsigned yield_permille, sleep_permille;
  _Atomic uint64_t seed;
  _Atomic uint64_t threads;          /* per-thread seeds */
  _Atomic uint64_t publish_delay_us; /* extra delay at PUBLISH, max */
  _Atomic uint64_t perturbed;        /* yields and sleeps done */
  /* Catalog 7: park pool workers at their first WAIT. */
  _Atomic int park;
  _Atomic int parked;
  _Atomic int go;
};

static struct inject *inj;

static _Thread_local uint64_t tl_rng;  /* 0: not seeded yet */
static _Thread_local int tl_in_worker; /* a worker of a catalog-7 pool */
static _Thread_local int tl_parked;    /* parked once already */
static _Thread_local int tl_caller;    /* this thread arms the hook */

static uint64_t splitmix(uint64_t x)
{
  x += 0x9e3779b97f4a7c15u;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
  return x ^ (x >> 31);
}

static uint64_t rng_next(void)
{
  if (tl_rng == 0) {
    uint64_t idx = atomic_fetch_add(&inj->threads, 1) + 1;
    tl_rng = splitmix(atomic_load(&inj->seed) ^ (idx * 0x2545f4914f6cdd1du));
    if (tl_rng == 0)
      tl_rng = 1;
  }
  tl_rng ^= tl_rng >> 12; /* xorshift64* */
  tl_rng ^= tl_rng << 25;
  tl_rng ^= tl_rng >> 27;
  return tl_rng * 0x2545f4914f6cdd1du;
}

static void nap_us(uint64_t us)
{
  struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(us * 1000)};
  nanosleep(&ts, NULL);
}

/* Yield, or sleep 1-50 us, or nothing, as the dice say. */
static void perturb(void)
{
  unsigned roll = (unsigned)(rng_next() % 1000);
  unsigned yields =
      atomic_load_explicit(&inj->yield_permille, memory_order_relaxed);
  unsigned sleeps =
      atomic_load_explicit(&inj->sleep_permille, memory_order_relaxed);
  if (roll < yields)
    sched_yield();
  else if (roll < yields + sleeps)
    nap_us(1 + rng_next() % 50);
  else
    return;
  atomic_fetch_add_explicit(&inj->perturbed, 1, memory_order_relaxed);
}

static int hook(enum crew_test_point point, const void *object, void *arg)
{
  struct inject *s = arg;
  if (!atomic_load_explicit(&s->armed, memory_order_acquire))
    return 0;
  if (atomic_load_explicit(&s->perturb_mask, memory_order_relaxed) &
      (1u << point))
    perturb();
  if (point == CREW_TP_PUBLISH) {
    uint64_t max = atomic_load(&s->publish_delay_us);
    if (max > 0)
      nap_us(1 + rng_next() % max);
  }
  if (point == CREW_TP_WAIT && tl_in_worker && !tl_parked &&
      atomic_exchange(&s->park, 0)) {
    /* Catalog 7: between the predicate check and the wait, lock held. */
    tl_parked = 1;
    atomic_fetch_add(&s->parked, 1);
    while (!atomic_load(&s->go))
      sched_yield();
    nap_us(rng_next() % 50);
  }
  if ((int)point == atomic_load_explicit(&s->point, memory_order_relaxed) &&
      (atomic_load(&s->all_procs) || getpid() == atomic_load(&s->self))) {
    long n = atomic_fetch_add(&s->calls, 1) + 1;
    if (n == atomic_load(&s->k)) {
      atomic_store(&s->failed_object, (uintptr_t)object);
      atomic_store(&s->failed_pid, getpid());
      atomic_store(&s->failed_on_caller, tl_caller);
      atomic_fetch_add(&s->failed, 1);
      /* In a child (the fork server): fail 20 ms late, so the parent's
       * requests sent meanwhile meet a failure that comes after them, the
       * same way every run. */
      if (getpid() != atomic_load(&s->self))
        nap_us(20000);
      return CREW_ENOMEM;
    }
  }
  return 0;
}

static void *no_op_thread(void *arg)
{
  return arg;
}

/*
 * Per test, before the harness's baseline: a clean state (the mapping
 * outlives tests in fork mode), and one thread started and joined, because
 * ThreadSanitizer starts its background thread at a process's first
 * pthread_create (in Check's forked child: during the test), which the
 * harness would count as a thread the test left behind.
 */
static void inject_setup(void)
{
  pthread_t t;
  if (pthread_create(&t, NULL, no_op_thread, NULL) == 0)
    pthread_join(t, NULL);
  memset(inj, 0, sizeof *inj);
  atomic_store(&inj->self, getpid());
  const char *env = getenv("CREW_INJECT_SEED");
  uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : now_ns();
  atomic_store(&inj->seed, seed);
}

static void inject_teardown(void)
{
  atomic_store(&inj->armed, 0);
}

static uint64_t seed_of(void)
{
  return atomic_load(&inj->seed);
}

/* ============================================== part 1: the k-th call */

static const char *point_name(int point)
{
  switch (point) {
  case CREW_TP_ALLOC:
    return "ALLOC";
  case CREW_TP_THREAD:
    return "THREAD";
  case CREW_TP_MAP:
    return "MAP";
  case CREW_TP_FORK:
    return "FORK";
  default:
    return "?";
  }
}

/* What the current run is, for failure messages. */
static char where[160];

#define inj_check(expr) ck_assert_msg((expr), "%s: '%s' failed", where, #expr)
#define inj_check_int(x, y)                                                    \
  do {                                                                         \
    long long x_ = (x), y_ = (y);                                              \
    ck_assert_msg(x_ == y_, "%s: %s == %lld, expected %s == %lld", where, #x,  \
                  x_, #y, y_);                                                 \
  } while (0)

static void arm(void)
{
  tl_caller = 1;
  atomic_store(&inj->armed, 1);
}

static void disarm(void)
{
  atomic_store(&inj->armed, 0);
}

static long calls_now(void)
{
  return atomic_load(&inj->calls);
}

static bool injected(void)
{
  return atomic_load(&inj->failed) != 0;
}

/* Whether the injected failure hit a call made since `before` calls. */
static bool failed_since(long before)
{
  long k = atomic_load(&inj->k);
  return injected() && k > before && k <= calls_now();
}

/*
 * Failures that do not stop the loop (a call that succeeded although one of
 * its allocations failed): collected, and reported together once the loop
 * is over, so one such call does not hide what larger k would show.
 */
static char soft[4096];

static void soft_fail(const char *fmt, ...)
{
  size_t len = strlen(soft);
  if (len + 2 >= sizeof soft)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(soft + len, sizeof soft - len - 1, fmt, ap);
  va_end(ap);
  len = strlen(soft);
  soft[len] = '\n';
  soft[len + 1] = '\0';
}

/* Whether the failed call was the arena's reservation with a smaller one
 * still to try: lib/arena.c halves it from 64 GiB down to 64 MiB until the
 * system accepts one, so such a failure is absorbed (documented there). */
static bool arena_retries(void)
{
  return atomic_load(&inj->point) == CREW_TP_MAP &&
         atomic_load(&inj->failed_object) > ((uintptr_t)64 << 20);
}

/* Set by a scenario whose calls may absorb a failed allocation by design:
 * names where that is documented. */
static const char *alloc_absorbed;

/* The mode of the scenario's pool. A process pool's manager thread frees
 * settled tasks' arena blocks, and may do so while the hook is armed for
 * the caller's next call: a failed allocation there (the arena's free list
 * growing) is absorbed by design, as in crew_map below. */
static int ctx_mode = -1;

static bool manager_absorbed(void)
{
  return ctx_mode == CREW_PROCESSES &&
         atomic_load(&inj->point) == CREW_TP_ALLOC &&
         !atomic_load(&inj->failed_on_caller);
}

/*
 * The outcome of a call made while a failure was injected in it (or not):
 * true if it failed as it must (exactly CREW_ENOMEM, checked here), false
 * if it succeeded; a success despite the injected failure is recorded as a
 * soft failure unless documented.
 */
static bool call_failed(const char *call, int rc, bool failed_in_call)
{
  if (!failed_in_call) {
    ck_assert_msg(rc == 0, "%s: %s returned %d (%s) with no failure injected",
                  where, call, rc, crew_strerror(rc));
    return false;
  }
  if (rc == 0) {
    bool documented =
        arena_retries() || manager_absorbed() ||
        (alloc_absorbed != NULL && atomic_load(&inj->point) == CREW_TP_ALLOC);
    if (!documented)
      soft_fail("%s: %s returned 0 although its call failed (object %" PRIuPTR
                ", pid %d)",
                where, call, atomic_load(&inj->failed_object),
                (int)atomic_load(&inj->failed_pid));
    return false;
  }
  ck_assert_msg(rc == CREW_ENOMEM,
                "%s: %s returned %d (%s), expected CREW_ENOMEM; the failed "
                "call's object was %" PRIuPTR ", in pid %d (test pid %d)",
                where, call, rc, crew_strerror(rc),
                atomic_load(&inj->failed_object),
                (int)atomic_load(&inj->failed_pid), (int)getpid());
  return true;
}

/* A pointer no crew call may write on failure. */
static char untouched_mark;
#define UNTOUCHED ((void *)&untouched_mark)

/* --------------------------------------------------------- task bodies */

static int task_inc(const void *in, void *out)
{
  int v;
  memcpy(&v, in, sizeof v);
  v++;
  if (out != NULL)
    memcpy(out, &v, sizeof v);
  return 0;
}

static int task_gated(const void *in, void *out)
{
  gate *g = *(gate *const *)in;
  gate_pass(g);
  if (out != NULL)
    memset(out, 7, sizeof(int));
  return 7;
}

/* -------------------------------------------------------- the scenarios */

/*
 * A scenario makes its calls with the hook armed, checks the outcome
 * (CREW_ENOMEM from the call that failed, or success and a working object),
 * and undoes whatever succeeded. What it needs beforehand (a pool, a gate)
 * is made unarmed for each run, so caches start empty every time (a pool
 * recycles futures: a second run on the same pool would allocate none).
 */
struct ctx {
  crew_pool *pool; /* threads or processes, 2 workers, if the scenario asks */
  int mode;        /* the pool's */
  gate g;
};

typedef void scenario_fn(struct ctx *c);

static void use_queue(crew_queue *q)
{
  int v = 41, got = 0;
  inj_check_int(crew_queue_push(q, &v), 0);
  inj_check_int(crew_queue_pop(q, &got), 0);
  inj_check_int(got, 41);
}

static void queue_scenario(unsigned flags)
{
  crew_queue *q = UNTOUCHED;
  arm();
  int rc = crew_queue_create(&q, 4, sizeof(int), flags);
  disarm();
  if (call_failed("crew_queue_create", rc, injected())) {
    inj_check(q == UNTOUCHED);
    return;
  }
  use_queue(q);
  crew_queue_destroy(q);
}

static void scen_queue_private(struct ctx *c)
{
  (void)c;
  queue_scenario(0);
}

static void scen_queue_shared(struct ctx *c)
{
  (void)c;
  queue_scenario(CREW_SHARED);
}

/* A new pool must run a task and give its result. */
static void use_pool(crew_pool *pool)
{
  int v = 1, out = 0;
  crew_future *f = NULL;
  inj_check_int(crew_submit(pool, task_inc, &v, sizeof v, sizeof out, &f), 0);
  inj_check_int(crew_future_get(f, &out, sizeof out), 0);
  inj_check_int(out, 2);
  crew_future_release(f);
}

static int init_nothing(void *arg)
{
  (void)arg;
  return 0;
}

static void pool_scenario(int mode)
{
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.mode = mode;
  cfg.workers = mode == CREW_THREADS ? 3 : 2;
  cfg.queue_capacity = 8;
  cfg.latency_stats = true; /* one more allocation */
  cfg.name = "inj";
  cfg.init = init_nothing;
  crew_pool *pool = UNTOUCHED;
  arm();
  int rc = crew_pool_create(&pool, &cfg);
  disarm();
  if (call_failed("crew_pool_create", rc, injected())) {
    inj_check(pool == UNTOUCHED);
    return;
  }
  use_pool(pool);
  crew_pool_destroy(pool);
}

static void scen_pool_threads(struct ctx *c)
{
  (void)c;
  pool_scenario(CREW_THREADS);
}

static void scen_pool_processes(struct ctx *c)
{
  (void)c;
  pool_scenario(CREW_PROCESSES);
}

/* The children variant counts in every process (see the top). */
struct create_call {
  crew_pool *pool;
  crew_config cfg;
  int rc;
  signal_box done;
};

static void *create_thread(void *arg)
{
  struct create_call *cc = arg;
  cc->rc = crew_pool_create(&cc->pool, &cc->cfg);
  signal_post(&cc->done);
  return NULL;
}

static void scen_pool_processes_children(struct ctx *c)
{
  (void)c;
  struct create_call cc = {.pool = UNTOUCHED};
  crew_config_init(&cc.cfg);
  cc.cfg.mode = CREW_PROCESSES;
  cc.cfg.workers = 2;
  cc.cfg.queue_capacity = 8;
  signal_init(&cc.done);
  atomic_store(&inj->all_procs, 1);
  pthread_t t;
  arm();
  ck_assert_int_eq(pthread_create(&t, NULL, create_thread, &cc), 0);
  /* A create that waits forever for a fork server that died must fail the
   * test by name, not by Check's timeout. */
  if (signal_try(&cc.done, 5000 * MS) != 0)
    ck_abort_msg("%s: crew_pool_create has not returned after 5 s; the "
                 "failed call (object %" PRIuPTR ") was in pid %d, the test "
                 "is pid %d",
                 where, atomic_load(&inj->failed_object),
                 (int)atomic_load(&inj->failed_pid), (int)getpid());
  disarm();
  pthread_join(t, NULL);
  signal_fini(&cc.done);
  atomic_store(&inj->all_procs, 0);
  if (call_failed("crew_pool_create", cc.rc, injected())) {
    inj_check(cc.pool == UNTOUCHED);
    return;
  }
  use_pool(cc.pool);
  crew_pool_destroy(cc.pool);
}

/* Let fire-and-forget tasks finish: the counters add up (10 s at most). */
static void settle_stats(crew_pool *pool, crew_stats *st)
{
  uint64_t until = now_ns() + 10000 * MS;
  for (;;) {
    ck_assert_int_eq(crew_pool_stats(pool, st), 0);
    if (st->completed + st->cancelled == st->submitted || now_ns() > until)
      return;
    sched_yield();
  }
}

/* crew_submit with a future, then fire and forget with a large input (it
 * needs a future too), on a fresh pool. */
static void scen_submit(struct ctx *c)
{
  int v = 5, out = 0;
  crew_future *f = UNTOUCHED;
  long mark = calls_now();
  arm();
  int rc1 = crew_submit(c->pool, task_inc, &v, sizeof v, sizeof out, &f);
  disarm();
  bool failed1 = call_failed("crew_submit", rc1, failed_since(mark));
  unsigned char big[64] = {0};
  memcpy(big, &v, sizeof v);
  mark = calls_now();
  arm();
  int rc2 = crew_submit(c->pool, task_inc, big, sizeof big, 0, NULL);
  disarm();
  bool failed2 = call_failed("crew_submit (fire and forget, 64 bytes in)", rc2,
                             failed_since(mark));
  uint64_t accepted = 0;
  if (failed1) {
    inj_check(f == UNTOUCHED);
  } else {
    inj_check_int(crew_future_get(f, &out, sizeof out), 0);
    inj_check_int(out, 6);
    crew_future_release(f);
    accepted++;
  }
  accepted += !failed2;
  /* A refused task left no trace in the counters; the others ran. */
  crew_stats st;
  settle_stats(c->pool, &st);
  inj_check_int(st.submitted, accepted);
  inj_check_int(st.completed, accepted);
}

static void scen_map(struct ctx *c)
{
  int in[40], out[40];
  for (int i = 0; i < 40; i++) {
    in[i] = i;
    out[i] = -1;
  }
  /* In process mode the map frees its arena block at the end, and a free
   * list that cannot grow loses the block to reuse, not the map (documented
   * in lib/arena.c, crew__arena_free). */
  if (c->mode == CREW_PROCESSES)
    alloc_absorbed = "lib/arena.c: crew__arena_free";
  arm();
  int rc =
      crew_map(c->pool, task_inc, in, sizeof in[0], out, sizeof out[0], 40);
  disarm();
  bool failed = call_failed("crew_map", rc, injected());
  alloc_absorbed = NULL;
  crew_stats st;
  settle_stats(c->pool, &st);
  if (failed) {
    for (int i = 0; i < 40; i++)
      inj_check_int(out[i], -1); /* nothing ran */
    inj_check_int(st.submitted, 0);
    return;
  }
  for (int i = 0; i < 40; i++)
    inj_check_int(out[i], i + 1);
  inj_check_int(st.submitted, 40);
}

/* crew_channel_create, then crew_submit_to on the new channel. */
static void scen_channel(struct ctx *c)
{
  crew_channel *ch = UNTOUCHED;
  arm();
  int rc = crew_channel_create(&ch);
  disarm();
  if (call_failed("crew_channel_create", rc, injected())) {
    inj_check(ch == UNTOUCHED);
    return;
  }
  int v = 9;
  arm();
  rc = crew_submit_to(c->pool, ch, &untouched_mark, task_inc, &v, sizeof v,
                      sizeof v);
  disarm();
  crew_stats st;
  settle_stats(c->pool, &st);
  if (call_failed("crew_submit_to", rc, injected())) {
    inj_check_int(crew_channel_pending(ch), 0);
    inj_check_int(st.submitted, 0);
    size_t n = 99;
    inj_check_int(crew_channel_drain(ch, NULL, 0, &n), 0);
    inj_check_int(n, 0);
  } else {
    crew_completion done[2];
    size_t n = 0;
    inj_check_int(crew_channel_wait(ch, done, 2, &n, 10000 * MS), 0);
    inj_check_int(n, 1);
    inj_check(done[0].tag == &untouched_mark);
    int out = 0;
    inj_check_int(crew_future_get(done[0].future, &out, sizeof out), 0);
    inj_check_int(out, 10);
    crew_future_release(done[0].future);
  }
  crew_channel_destroy(ch);
}

/* crew_channel_watch on a queued future that has a done callback already,
 * so the watch needs two allocations (its node, and its callback's); a
 * refused watch takes no reference (LeakSanitizer would find the future
 * if it did) and queues nothing. */
static void count_done(crew_future *f, void *arg)
{
  (void)f;
  atomic_fetch_add((_Atomic int *)arg, 1);
}

static void scen_channel_watch(struct ctx *c)
{
  gate *gp = &c->g;
  crew_future *f;
  ck_assert_int_eq(
      crew_submit(c->pool, task_gated, &gp, sizeof gp, sizeof(int), &f), 0);
  _Atomic int called = 0;
  ck_assert_int_eq(crew_future_on_done(f, count_done, &called), 0);
  crew_channel *ch;
  ck_assert_int_eq(crew_channel_create(&ch), 0);
  arm();
  int rc = crew_channel_watch(ch, f, &untouched_mark);
  disarm();
  bool failed = call_failed("crew_channel_watch", rc, injected());
  inj_check_int(crew_channel_pending(ch), failed ? 0 : 1);
  gate_open(&c->g, 1);
  inj_check_int(crew_future_wait(f), 7);
  /* Callbacks run just after the waiters wake: give them 10 s. */
  uint64_t until = now_ns() + 10000 * MS;
  while (atomic_load(&called) == 0 && now_ns() < until)
    sched_yield();
  inj_check_int(atomic_load(&called), 1);
  crew_future_release(f); /* the channel's reference, if any, is its own */
  crew_completion done[2];
  size_t n = 0;
  rc = crew_channel_wait(ch, done, 2, &n, failed ? 50 * MS : 10000 * MS);
  if (failed) {
    inj_check_int(rc, CREW_ETIMEDOUT); /* a negative check: nothing comes */
    inj_check_int(n, 0);
  } else {
    inj_check_int(rc, 0);
    inj_check_int(n, 1);
    inj_check(done[0].tag == &untouched_mark);
    inj_check_int(crew_future_status(done[0].future), 7);
    crew_future_release(done[0].future);
  }
  crew_channel_destroy(ch);
  inj_check_int(atomic_load(&called), 1);
}

/* crew_future_on_done: three callbacks on a queued future (the first needs
 * no memory); one refused with CREW_ENOMEM never runs, the others run once
 * each, in order. */
struct cb_log {
  _Atomic int order[3];
  _Atomic int next;
};

struct cb_arg {
  struct cb_log *log;
  int id;
};

static void on_done_cb(crew_future *f, void *arg)
{
  (void)f;
  struct cb_arg *a = arg;
  int at = atomic_fetch_add(&a->log->next, 1);
  if (at < 3)
    atomic_store(&a->log->order[at], a->id);
}

static void scen_on_done(struct ctx *c)
{
  gate *gp = &c->g;
  crew_future *f;
  ck_assert_int_eq(
      crew_submit(c->pool, task_gated, &gp, sizeof gp, sizeof(int), &f), 0);
  struct cb_log log = {.next = 0};
  struct cb_arg args[3] = {{&log, 1}, {&log, 2}, {&log, 3}};
  bool failed[3];
  for (int i = 0; i < 3; i++) {
    long mark = calls_now();
    arm();
    int rc = crew_future_on_done(f, on_done_cb, &args[i]);
    disarm();
    failed[i] = call_failed("crew_future_on_done", rc, failed_since(mark));
  }
  gate_open(&c->g, 1);
  inj_check_int(crew_future_wait(f), 7);
  crew_future_release(f);
  int expect[3], n = 0;
  for (int i = 0; i < 3; i++)
    if (!failed[i])
      expect[n++] = i + 1;
  /* Callbacks run on the worker just after the waiters wake: wait for them
   * (up to 10 s). */
  uint64_t until = now_ns() + 10000 * MS;
  while (atomic_load(&log.next) < n && now_ns() < until)
    sched_yield();
  inj_check_int(atomic_load(&log.next), n);
  for (int i = 0; i < n; i++)
    inj_check_int(atomic_load(&log.order[i]), expect[i]);
}

/* crew_wait_any on more futures than it links on its stack (8): the links
 * are allocated, CREW_ENOMEM is its documented failure. */
static void scen_wait_any(struct ctx *c)
{
  enum { N = 9 };
  gate *gp = &c->g;
  crew_future *fs[N];
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(
        crew_submit(c->pool, task_gated, &gp, sizeof gp, sizeof(int), &fs[i]),
        0);
  size_t index = 99;
  arm();
  int rc = crew_wait_any(fs, N, 1 * MS, &index);
  disarm();
  if (injected())
    inj_check_int(rc, CREW_ENOMEM);
  else
    inj_check_int(rc, CREW_ETIMEDOUT);
  inj_check_int(index, 99);
  gate_open(&c->g, N);
  inj_check_int(crew_wait_all(fs, N, CREW_FOREVER), 0);
  for (int i = 0; i < N; i++) {
    inj_check_int(crew_future_status(fs[i]), 7);
    crew_future_release(fs[i]);
  }
}

static void scen_process_start(struct ctx *c)
{
  (void)c;
  crew_process *p = UNTOUCHED;
  int v = 20;
  arm();
  int rc = crew_process_start(&p, task_inc, &v, sizeof v, sizeof v);
  disarm();
  if (call_failed("crew_process_start", rc, injected())) {
    inj_check(p == UNTOUCHED);
    return;
  }
  int code = -1, out = 0;
  inj_check_int(crew_process_join(p, &code), 0);
  inj_check_int(code, 0);
  inj_check_int(crew_process_result(p, &out, sizeof out), 0);
  inj_check_int(out, 21);
  crew_process_destroy(p);
}

/* ------------------------------------------------------------- the loop */

enum needs { NEEDS_NOTHING, NEEDS_THREADS, NEEDS_PROCESSES };

struct scenario {
  const char *name;
  scenario_fn *run;
  enum needs needs;
};

static const struct scenario scenarios[] = {
    {"queue_create", scen_queue_private, NEEDS_NOTHING},
    {"queue_create_shared", scen_queue_shared, NEEDS_NOTHING},
    {"pool_create_threads", scen_pool_threads, NEEDS_NOTHING},
    {"pool_create_processes", scen_pool_processes, NEEDS_NOTHING},
    {"pool_create_processes_children", scen_pool_processes_children,
     NEEDS_NOTHING},
    {"submit_future_threads", scen_submit, NEEDS_THREADS},
    {"submit_future_processes", scen_submit, NEEDS_PROCESSES},
    {"map_threads", scen_map, NEEDS_THREADS},
    {"map_processes", scen_map, NEEDS_PROCESSES},
    {"channel_create_submit_to", scen_channel, NEEDS_THREADS},
    {"channel_submit_to_processes", scen_channel, NEEDS_PROCESSES},
    {"channel_watch", scen_channel_watch, NEEDS_THREADS},
    {"future_on_done", scen_on_done, NEEDS_THREADS},
    {"wait_any_9", scen_wait_any, NEEDS_THREADS},
    {"process_start", scen_process_start, NEEDS_NOTHING},
};
#define NSCENARIOS (sizeof scenarios / sizeof scenarios[0])

static const int points[] = {CREW_TP_ALLOC, CREW_TP_THREAD, CREW_TP_MAP,
                             CREW_TP_FORK};
#define NPOINTS (sizeof points / sizeof points[0])

static void ctx_init(struct ctx *c, const struct scenario *s)
{
  memset(c, 0, sizeof *c);
  gate_init(&c->g);
  if (s->needs != NEEDS_NOTHING) {
    crew_config cfg;
    crew_config_init(&cfg);
    cfg.mode = s->needs == NEEDS_THREADS ? CREW_THREADS : CREW_PROCESSES;
    c->mode = cfg.mode;
    ctx_mode = cfg.mode;
    cfg.workers = 2;
    cfg.queue_capacity = 16;
    ck_assert_int_eq(crew_pool_create(&c->pool, &cfg), 0);
  }
}

static void ctx_fini(struct ctx *c)
{
  ctx_mode = -1;
  crew_pool_destroy(c->pool);
  gate_fini(&c->g);
}

/* Compare the resources after one run with the baseline; threads and
 * children may take a moment to go (as in the harness: up to 2 s). */
static void check_resources(const struct harness_resources *base)
{
  char msg[512];
  uint64_t until = now_ns() + 2000 * MS;
  for (;;) {
    struct harness_resources now;
    harness_count(&now);
    if (harness_compare(base, &now, msg, sizeof msg) == 0)
      return;
    if (now_ns() > until)
      break;
    nap_us(1000); /* a positive check: waiting only delays a pass */
  }
  ck_abort_msg("%s: resources leaked: %s", where, msg);
}

static void check_leaks(void)
{
#ifdef INJECT_LSAN
  ck_assert_msg(__lsan_do_recoverable_leak_check() == 0,
                "%s: LeakSanitizer found a leak (report above)", where);
#endif
}

static void run_once(const struct scenario *s)
{
  struct ctx c;
  ctx_init(&c, s);
  s->run(&c);
  ctx_fini(&c);
}

/*
 * Run scenario `s` failing the k-th call at `point` for k = 1, 2, ... until
 * a run has no injected failure. Two first runs with nothing armed to fail
 * warm what stays after them (thread stacks, malloc arenas, stdio buffers)
 * before the baseline is taken.
 */
static long explore(const struct scenario *s, int point)
{
  snprintf(where, sizeof where, "%s %s warm-up", s->name, point_name(point));
  atomic_store(&inj->point, 0);
  run_once(s);
  run_once(s);
  struct harness_resources base;
  harness_count(&base);
  soft[0] = '\0';
  long k;
  for (k = 1;; k++) {
    snprintf(where, sizeof where, "%s: fail call k=%ld at %s", s->name, k,
             point_name(point));
    atomic_store(&inj->calls, 0);
    atomic_store(&inj->failed, 0);
    atomic_store(&inj->failed_object, 0);
    atomic_store(&inj->failed_on_caller, 0);
    atomic_store(&inj->k, k);
    atomic_store(&inj->point, point);
    run_once(s);
    atomic_store(&inj->point, 0);
    if (getenv("CREW_INJECT_VERBOSE") != NULL && injected())
      printf("inject: %s: object %" PRIuPTR " in pid %d (test %d)\n", where,
             atomic_load(&inj->failed_object),
             (int)atomic_load(&inj->failed_pid), (int)getpid());
    check_resources(&base);
    check_leaks();
    if (!injected())
      break;
    ck_assert_msg(k < 10000, "%s: no end in sight", where);
  }
  ck_assert_msg(soft[0] == '\0', "%s %s, k = 1..%ld:\n%s", s->name,
                point_name(point), k - 1, soft);
  return k;
}

/*
 * One test per (scenario, point): _i = scenario * NPOINTS + point index.
 * Catalog 20 is the THREAD, FORK and MAP rows of the create scenarios.
 */
START_TEST(kth_call_fails)
{
  const struct scenario *s = &scenarios[(size_t)_i / NPOINTS];
  int point = points[(size_t)_i % NPOINTS];
  const char *only = getenv("CREW_INJECT_ONLY"); /* a scenario's name */
  if (only != NULL && strcmp(only, s->name) != 0)
    return;
  long k = explore(s, point);
  printf("inject: %-32s %-6s failed k = 1..%ld, clean run at k = %ld\n",
         s->name, point_name(point), k - 1, k);
  fflush(stdout);
}
END_TEST

/* ====================================== part 2: schedule perturbation */

#define SEEDED_MSG(fmt, ...)                                                   \
  fmt " (CREW_INJECT_SEED=%" PRIu64 ")", __VA_ARGS__, seed_of()
#define seed_check(expr)                                                       \
  quiet_assert_msg((expr), SEEDED_MSG("'%s' failed", #expr))
#define seed_check_int(x, y)                                                   \
  do {                                                                         \
    long long x_ = (x), y_ = (y);                                              \
    quiet_assert_msg(x_ == y_,                                                 \
                     SEEDED_MSG("%s == %lld, expected %lld", #x, x_, y_));     \
  } while (0)

static void perturb_on(unsigned yields, unsigned sleeps)
{
  atomic_store(&inj->yield_permille, yields);
  atomic_store(&inj->sleep_permille, sleeps);
  atomic_store(&inj->perturb_mask,
               1u << CREW_TP_LOCK | 1u << CREW_TP_UNLOCK | 1u << CREW_TP_WAIT |
                   1u << CREW_TP_WAKE | 1u << CREW_TP_ENQUEUE |
                   1u << CREW_TP_DEQUEUE | 1u << CREW_TP_PUBLISH);
  arm();
}

static void perturb_off(void)
{
  disarm();
  atomic_store(&inj->perturb_mask, 0);
}

/* At a test's end: the hook must have acted (a test whose hook never ran
 * would pass for nothing). */
static void check_perturbed(void)
{
  ck_assert_msg(atomic_load(&inj->perturbed) > 0,
                "the schedule was never perturbed: hooks not called?");
}

/* ------------------------------------------- catalog 1/3: MPMC, exactly once
 */

enum { PRODUCERS = 3, CONSUMERS = 3 };

struct item {
  uint32_t producer;
  uint32_t seq;
};

struct mpmc {
  crew_queue *q;
  size_t per_producer;
  _Atomic uint8_t *seen; /* [producer * per_producer + seq] */
  _Atomic size_t consumed;
};

struct producer_arg {
  struct mpmc *m;
  uint32_t id;
};

static void *producer_main(void *arg)
{
  struct producer_arg *a = arg;
  struct mpmc *m = a->m;
  for (uint32_t seq = 0; seq < m->per_producer; seq++) {
    struct item it = {a->id, seq};
    int rc;
    if (seq % 3 == 0) { /* mixed: blocking, timed, and try-again */
      rc = crew_queue_push(m->q, &it);
    } else if (seq % 3 == 1) {
      while ((rc = crew_queue_push_timed(m->q, &it, 1 * MS)) == CREW_ETIMEDOUT)
        ;
    } else {
      while ((rc = crew_queue_push_timed(m->q, &it, 0)) == CREW_ETIMEDOUT)
        sched_yield();
    }
    seed_check_int(rc, 0);
  }
  return NULL;
}

static void *consumer_main(void *arg)
{
  struct mpmc *m = arg;
  uint32_t last[PRODUCERS];
  bool any[PRODUCERS] = {false};
  for (;;) {
    struct item got[2];
    size_t n = 0;
    int rc;
    if (atomic_load(&m->consumed) % 2 == 0) {
      rc = crew_queue_pop(m->q, &got[0]);
      n = rc == 0;
    } else {
      rc = crew_queue_pop_many(m->q, got, 2, &n, CREW_FOREVER);
    }
    if (rc == CREW_ECLOSED)
      break;
    seed_check_int(rc, 0);
    for (size_t i = 0; i < n; i++) {
      seed_check(got[i].producer < PRODUCERS);
      seed_check(got[i].seq < m->per_producer);
      uint32_t p = got[i].producer;
      /* One producer's items leave in the order they went in. */
      seed_check(!any[p] || got[i].seq > last[p]);
      any[p] = true;
      last[p] = got[i].seq;
      atomic_fetch_add(&m->seen[p * m->per_producer + got[i].seq], 1);
      atomic_fetch_add(&m->consumed, 1);
    }
  }
  return NULL;
}

/*
 * Catalog 1 and 3 (MPMC exactly once, signal-vs-broadcast hunt): capacity 1
 * and 2, 3 producers x 3 consumers, per-producer sequence numbers, mixed
 * blocking/timed/try calls, every lock, wait, wake, enqueue and dequeue
 * perturbed. Invariants: INV-1/2 (every item consumed exactly once, per
 * producer in order), INV-3 (no hang: the harness timeout).
 */
START_TEST(mpmc_exactly_once_perturbed)
{
  size_t capacity = (size_t)_i + 1;
  struct mpmc m = {.per_producer = scaled(1000)};
  m.seen = calloc(PRODUCERS * m.per_producer, sizeof *m.seen);
  ck_assert_ptr_nonnull(m.seen);
  ck_assert_int_eq(crew_queue_create(&m.q, capacity, sizeof(struct item), 0),
                   0);
  perturb_on(150, 30);
  pthread_t prod[PRODUCERS], cons[CONSUMERS];
  struct producer_arg pa[PRODUCERS];
  for (int i = 0; i < CONSUMERS; i++)
    ck_assert_int_eq(pthread_create(&cons[i], NULL, consumer_main, &m), 0);
  for (uint32_t i = 0; i < PRODUCERS; i++) {
    pa[i] = (struct producer_arg){&m, i};
    ck_assert_int_eq(pthread_create(&prod[i], NULL, producer_main, &pa[i]), 0);
  }
  for (int i = 0; i < PRODUCERS; i++)
    pthread_join(prod[i], NULL);
  crew_queue_close(m.q);
  for (int i = 0; i < CONSUMERS; i++)
    pthread_join(cons[i], NULL);
  perturb_off();
  seed_check_int(atomic_load(&m.consumed), PRODUCERS * m.per_producer);
  for (size_t i = 0; i < PRODUCERS * m.per_producer; i++)
    seed_check_int(atomic_load(&m.seen[i]), 1);
  crew_queue_destroy(m.q);
  free(m.seen);
  check_perturbed();
}
END_TEST

/* ------------------------------- catalog 7: shutdown racing parked workers */

static int mark_worker(void *arg)
{
  (void)arg;
  tl_in_worker = 1;
  return 0;
}

struct releaser {
  uint64_t delay_us;
};

static void *release_main(void *arg)
{
  struct releaser *r = arg;
  nap_us(r->delay_us);
  atomic_store(&inj->go, 1);
  return NULL;
}

/*
 * Catalog 7 (predicate changes only under the mutex): the first worker to
 * find the queue empty and open is parked by the hook at CREW_TP_WAIT,
 * after its predicate check and before it sleeps, holding the queue's lock
 * (the other workers queue up on that lock, or spin, or sleep). Then
 * shutdown (DRAIN or CANCEL) or destroy is called while another thread lets
 * the parked worker go after a random 0-100 us (it then waits a random
 * 0-50 us more). Pools alternate the default idle spin and none, so the
 * race also meets the spin's unlocked look at the queue. Invariants: the
 * shutdown returns 0, every worker exits (stats.workers 0, the harness's
 * thread count), no hang (INV-4).
 */
START_TEST(shutdown_races_parked_worker)
{
  size_t rounds = scaled(90);
  for (size_t round = 0; round < rounds; round++) {
    size_t workers = 1 + round % 3;
    crew_config cfg;
    crew_config_init(&cfg);
    cfg.workers = workers;
    cfg.queue_capacity = 4;
    cfg.init = mark_worker;
    cfg.idle_spin_ns = round % 2 == 0 ? 0 : CREW_IDLE_SPIN_OFF;
    atomic_store(&inj->parked, 0);
    atomic_store(&inj->go, 0);
    atomic_store(&inj->park, 1);
    perturb_on(100, 20);
    crew_pool *pool;
    ck_assert_int_eq(crew_pool_create(&pool, &cfg), 0);
    uint64_t until = now_ns() + 10000 * MS;
    while (atomic_load(&inj->parked) < 1) {
      seed_check(now_ns() < until);
      sched_yield();
    }
    struct releaser r = {.delay_us = rng_next() % 100};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, release_main, &r), 0);
    int how = (int)(round / 2 % 3);
    if (how < 2) {
      seed_check_int(
          crew_pool_shutdown(pool, how == 0 ? CREW_DRAIN : CREW_CANCEL), 0);
      crew_stats st;
      ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
      seed_check_int(st.workers, 0);
    }
    crew_pool_destroy(pool);
    pthread_join(t, NULL);
    perturb_off();
    atomic_store(&inj->park, 0);
  }
  check_perturbed();
}
END_TEST

/* ------------------------------------- catalog 15: submit, cancel, shutdown */

static int task_count(const void *in, void *out)
{
  _Atomic int *ran = *(_Atomic int *const *)in;
  atomic_fetch_add(ran, 1);
  if (out != NULL)
    memset(out, 1, sizeof(int));
  return 0;
}

/*
 * Catalog 15: submit(x); cancel(x); shutdown(DRAIN), repeated, every
 * protocol step perturbed. Invariants: shutdown returns every time (INV-3);
 * exactly one outcome (INV-1): cancel 0 -> CREW_ECANCELED and the body never
 * ran; cancel CREW_EBUSY -> the body ran once and the status is 0; the
 * counters add up.
 */
START_TEST(submit_cancel_shutdown_perturbed)
{
  size_t rounds = scaled(300);
  perturb_on(150, 30);
  for (size_t round = 0; round < rounds; round++) {
    crew_pool *pool = make_pool(1 + round % 2, 4);
    _Atomic int ran = 0;
    _Atomic int *rp = &ran;
    crew_future *f;
    seed_check_int(
        crew_submit(pool, task_count, &rp, sizeof rp, sizeof(int), &f), 0);
    int rc = crew_future_cancel(f);
    seed_check(rc == 0 || rc == CREW_EBUSY);
    seed_check_int(crew_pool_shutdown(pool, CREW_DRAIN), 0);
    seed_check(crew_future_done(f));
    crew_stats st;
    ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
    seed_check_int(st.submitted, 1);
    if (rc == 0) {
      seed_check_int(crew_future_status(f), CREW_ECANCELED);
      seed_check_int(atomic_load(&ran), 0);
      seed_check_int(st.cancelled, 1);
      seed_check_int(st.completed, 0);
    } else {
      seed_check_int(crew_future_status(f), 0);
      seed_check_int(atomic_load(&ran), 1);
      seed_check_int(st.cancelled, 0);
      seed_check_int(st.completed, 1);
    }
    crew_future_release(f);
    crew_pool_destroy(pool);
  }
  perturb_off();
  check_perturbed();
}
END_TEST

/* ------------------------------------------ catalog 13: shutdown vs submit */

enum { SUBMITTERS = 3, KEEP = 128 };

struct racer {
  crew_pool *pool;
  _Atomic int *ran;
  _Atomic size_t *accepted;
  int how;
  size_t ok, cancelled; /* this thread's futures, by outcome */
};

/* Wait for and check a batch of futures; count outcomes. */
static void settle_batch(struct racer *r, crew_future **fs, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    int st = crew_future_wait(fs[i]);
    if (st == 0)
      r->ok++;
    else if (st == CREW_ECANCELED && r->how == CREW_CANCEL)
      r->cancelled++;
    else
      quiet_assert_msg(0, SEEDED_MSG("a future resolved with %d", st));
    crew_future_release(fs[i]);
  }
}

static void *submitter_main(void *arg)
{
  struct racer *r = arg;
  crew_future *fs[KEEP];
  size_t n = 0;
  for (;;) {
    int rc = crew_submit(r->pool, task_count, &r->ran, sizeof r->ran,
                         sizeof(int), &fs[n]);
    if (rc == CREW_ECLOSED)
      break;
    seed_check_int(rc, 0);
    atomic_fetch_add(r->accepted, 1);
    if (++n == KEEP) {
      settle_batch(r, fs, n);
      n = 0;
    }
  }
  settle_batch(r, fs, n);
  return NULL;
}

/*
 * Catalog 13: 3 threads submit in a loop while the test shuts the pool down
 * (DRAIN or CANCEL) once some tasks went in, every step perturbed.
 * Invariants: each submit succeeds and its future resolves, or fails with
 * CREW_ECLOSED (crew's word for the catalog's ESHUTDOWN) and makes nothing;
 * with DRAIN every accepted task ran; with CANCEL each ran or was
 * cancelled, never both; ran == futures that completed; the counters add up.
 */
START_TEST(shutdown_races_submit_perturbed)
{
  size_t rounds = scaled(20);
  perturb_on(150, 30);
  for (size_t round = 0; round < rounds; round++) {
    crew_pool *pool = make_pool(2, 8);
    _Atomic int ran = 0;
    _Atomic size_t accepted = 0;
    struct racer r[SUBMITTERS];
    pthread_t t[SUBMITTERS];
    int how = round % 2 == 0 ? CREW_DRAIN : CREW_CANCEL;
    for (int i = 0; i < SUBMITTERS; i++) {
      r[i] = (struct racer){
          .pool = pool, .ran = &ran, .accepted = &accepted, .how = how};
      ck_assert_int_eq(pthread_create(&t[i], NULL, submitter_main, &r[i]), 0);
    }
    size_t want = 20 + rng_next() % 200;
    uint64_t until = now_ns() + 10000 * MS;
    while (atomic_load(&accepted) < want) {
      seed_check(now_ns() < until);
      sched_yield();
    }
    seed_check_int(crew_pool_shutdown(pool, how), 0);
    size_t ok = 0, cancelled = 0;
    for (int i = 0; i < SUBMITTERS; i++) {
      pthread_join(t[i], NULL);
      ok += r[i].ok;
      cancelled += r[i].cancelled;
    }
    crew_stats st;
    ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
    seed_check_int(ok + cancelled, atomic_load(&accepted));
    seed_check_int((size_t)atomic_load(&ran), ok);
    seed_check_int(st.submitted, atomic_load(&accepted));
    seed_check_int(st.completed, ok);
    seed_check_int(st.cancelled, cancelled);
    if (how == CREW_DRAIN)
      seed_check_int(cancelled, 0);
    crew_pool_destroy(pool);
  }
  perturb_off();
  check_perturbed();
}
END_TEST

/* ---------------------------- catalog 27: many waiters, publish delayed */

enum { WAITERS = 24 };

struct waiter_arg {
  crew_future *f;
  crew_future *never; /* a future that resolves only at the end */
  signal_box *started;
  int kind;
  int status;
  int out;
};

static void *waiter_main(void *arg)
{
  struct waiter_arg *w = arg;
  signal_post(w->started);
  size_t index = 99;
  crew_future *pair[2] = {w->never, w->f};
  switch (w->kind) {
  case 0: /* plain wait */
    w->status = crew_future_wait(w->f);
    break;
  case 1: /* get: the output too */
    w->status = crew_future_get(w->f, &w->out, sizeof w->out);
    break;
  case 2: /* timed: the result or CREW_ETIMEDOUT; after that, wait again */
    for (;;) {
      int rc = crew_future_wait_timed(w->f, (1 + rng_next() % 200) * 1000);
      if (rc != CREW_ETIMEDOUT) {
        w->status = rc;
        break;
      }
    }
    break;
  case 3: /* on the waiter list, with another future */
    seed_check_int(crew_wait_any(pair, 2, CREW_FOREVER, &index), 0);
    seed_check_int(index, 1);
    w->status = crew_future_status(w->f);
    break;
  default: /* wait_all on the one future */
    seed_check_int(crew_wait_all(&w->f, 1, CREW_FOREVER), 0);
    w->status = crew_future_status(w->f);
    break;
  }
  return NULL;
}

/*
 * Catalog 27 (many waiters): 24 threads wait on one future in five ways
 * (wait, get, timed waits in a loop, wait_any with a future that stays
 * queued, wait_all), the task is let go, and the hook delays the publish
 * itself by 1-50 us (plus the usual perturbation). Invariants: every waiter
 * wakes (broadcast, not signal) with the task's status 7 and output; a timed
 * waiter sees either the result or CREW_ETIMEDOUT, and a later wait after
 * CREW_ETIMEDOUT sees the result (INV-1).
 */
START_TEST(many_waiters_delayed_publish)
{
  size_t rounds = scaled(12);
  crew_pool *pool = make_pool(2, 16);
  for (size_t round = 0; round < rounds; round++) {
    gate g, hold;
    gate_init(&g);
    gate_init(&hold);
    gate *gp = &g, *hp = &hold;
    crew_future *f, *never;
    ck_assert_int_eq(
        crew_submit(pool, task_gated, &hp, sizeof hp, sizeof(int), &never), 0);
    ck_assert_int_eq(
        crew_submit(pool, task_gated, &gp, sizeof gp, sizeof(int), &f), 0);
    signal_box started;
    signal_init(&started);
    struct waiter_arg w[WAITERS];
    pthread_t t[WAITERS];
    perturb_on(100, 20);
    atomic_store(&inj->publish_delay_us, 50);
    for (int i = 0; i < WAITERS; i++) {
      w[i] = (struct waiter_arg){
          .f = f, .never = never, .started = &started, .kind = i % 5};
      ck_assert_int_eq(pthread_create(&t[i], NULL, waiter_main, &w[i]), 0);
    }
    signal_wait(&started, WAITERS);
    gate_open(&g, 1);
    for (int i = 0; i < WAITERS; i++) {
      pthread_join(t[i], NULL);
      seed_check_int(w[i].status, 7);
      if (w[i].kind == 1)
        seed_check_int(w[i].out, 0x07070707);
    }
    perturb_off();
    atomic_store(&inj->publish_delay_us, 0);
    seed_check_int(crew_future_wait_timed(f, 0), 7);
    gate_open(&hold, 1);
    seed_check_int(crew_future_wait(never), 7);
    crew_future_release(f);
    crew_future_release(never);
    signal_fini(&started);
    gate_fini(&g);
    gate_fini(&hold);
  }
  crew_pool_destroy(pool);
  check_perturbed();
}
END_TEST

/* ------------------------------------------------------------------ main */

static Suite *inject_suite(void)
{
  Suite *s = suite_create("inject");
  TCase *tc = tcase_create("kth_call");
  tcase_add_checked_fixture(tc, inject_setup, inject_teardown); /* first */
  harness_tcase(tc, 20);
  tcase_add_loop_test(tc, kth_call_fails, 0, (int)(NSCENARIOS * NPOINTS));
  suite_add_tcase(s, tc);

  tc = tcase_create("perturb");
  tcase_add_checked_fixture(tc, inject_setup, inject_teardown); /* first */
  harness_tcase(tc, 30);
  tcase_add_loop_test(tc, mpmc_exactly_once_perturbed, 0, 2);
  tcase_add_test(tc, shutdown_races_parked_worker);
  tcase_add_test(tc, submit_cancel_shutdown_perturbed);
  tcase_add_test(tc, shutdown_races_submit_perturbed);
  tcase_add_test(tc, many_waiters_delayed_publish);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  /* Shared, so forked pool workers and the fork server count with us. */
  void *p = mmap(NULL, sizeof *inj, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    return EXIT_FAILURE;
  }
  inj = p;
  crew_test_hook_set(hook, inj);
  return run_suite(inject_suite());
}

#else /* !CREW_TEST_HOOKS */

START_TEST(hooks_not_built)
{
  /* Configure with --enable-test-hooks to run this suite. */
  ck_assert_int_eq(crew_strerror(0)[0], 's');
}
END_TEST

int main(void)
{
  Suite *s = suite_create("inject");
  TCase *tc = tcase_create("no_hooks");
  harness_tcase(tc, 10);
  tcase_add_test(tc, hooks_not_built);
  suite_add_tcase(s, tc);
  return run_suite(s);
}

#endif
