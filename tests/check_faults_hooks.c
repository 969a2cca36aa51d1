/*
 * check_faults_hooks.c - process-mode faults that need the test hooks
 * (configure --enable-test-hooks; the suite is built only then), catalog
 * 33, 35-37 and 42 of the reliability catalog (see tests/CATALOG.md):
 *
 *   33  a worker killed inside the robust critical section of the task and
 *       event queues, 35/36 the repair of a lock whose repairer dies, a
 *       waiter that finds the owner dead on waking, and a thread of this
 *       process that holds the lock for long (never taken over);
 *   37  a worker dying at every step of the process protocol, five ways;
 *   42  a worker scribbling on its slot, its record, other workers' slots,
 *       a map's job and the pool's state word (shared memory is untrusted).
 *
 * Tasks run in worker processes: they talk to the test through the shared
 * memory of proctest.h, made before the pool (a CREW_SHARED queue of posts,
 * a gate, counters); the hook acts as a plan in shared memory says.
 */
#include "config.h"

#include "harness.h"
#include "proctest.h"

#include <crew/testhook.h>

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
 * that exit() on purpose would make the death matrix crawl. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
  return "atexit_sleep_ms=0";
}

/* ======================================================= the test hook */

enum death {
  DIE_EXIT0 = 1, /* exit(0) */
  DIE_EXIT99,    /* _exit(99) */
  DIE_ABORT,     /* abort() */
  DIE_SEGV,      /* SIGSEGV */
  DIE_KILL,      /* SIGKILL */
  NDEATHS = DIE_KILL
};

static const char *death_name(int d)
{
  static const char *names[] = {"?",       "exit(0)", "_exit(99)",
                                "abort()", "SIGSEGV", "SIGKILL"};
  return d >= 1 && d <= NDEATHS ? names[d] : "?";
}

static void die(int how)
{
  switch (how) {
  case DIE_EXIT0:
    exiting_on_purpose = 1;
    exit(0);
  case DIE_EXIT99:
    _exit(99);
  case DIE_ABORT:
    abort();
  case DIE_SEGV:
    raise(SIGSEGV);
    break;
  default:
    raise(SIGKILL);
    break;
  }
  _exit(98);
}

enum action {
  ACT_NONE = 0,
  ACT_DIE,            /* die as plan->death says */
  ACT_PARK,           /* post the pid, then wait to be killed */
  ACT_SCRIBBLE,       /* scribble on the slot (plan->pattern), go on */
  ACT_SCRIBBLE_DIE,   /* scribble on the slot, then die (SIGKILL) */
  ACT_SCRIBBLE_PEER,  /* scribble on the other workers' slots, go on */
  ACT_SCRIBBLE_JOB,   /* scribble on the map's job, then die (SIGKILL) */
  ACT_SCRIBBLE_STATE, /* scribble on the pool's state word, go on */
  ACT_SCRIBBLE_TASKQ, /* scribble on the task queue's head, go on */
  ACT_SCRIBBLE_EVENTQ /* scribble on the event queue's head, go on */
};

/* What the hook does, in shared memory: set by the test before the pool
 * exists or while it is idle, read in the workers. */
struct plan {
  _Atomic int point;  /* enum crew_test_point; 0: none */
  _Atomic int action; /* enum action */
  _Atomic int death;  /* enum death */
  _Atomic int pattern;
  _Atomic uint64_t passes; /* passes at `point` in workers so far */
  _Atomic uint64_t target; /* act on this pass (1 is the first) */
  _Atomic int fired;
  _Atomic size_t nworkers; /* for ACT_SCRIBBLE_PEER */
  /* The pool's queues, as workers saw them (the same address everywhere):
   * the one they pop, the one they push. */
  void *_Atomic task_q;
  void *_Atomic event_q;
};

static struct plan *plan;

/* The descriptor at the start of a worker's shared slot (lib/procpool.c:
 * a slot is 64 bytes and begins with it). */
struct slot_desc {
  uint32_t entry, kind;
  uint64_t ticket, offset;
};
#define SLOT_SIZE 64

/* Whether this process is a worker of a pool named "flt" ("flt-N"; the
 * manager thread and the fork server are "flt-mgr"). */
static bool in_worker(void)
{
  static pid_t known;
  static bool worker;
  if (known != getpid()) {
    char name[17] = {0};
    prctl(PR_GET_NAME, name);
    worker = strncmp(name, "flt-", 4) == 0 && strcmp(name, "flt-mgr") != 0;
    known = getpid();
  }
  return worker;
}

enum pattern {
  PAT_RANDOM = 0, /* random bytes */
  PAT_ONES,       /* every byte 0xff: SIZE_MAX lengths, NO_ENTRY... */
  PAT_ZERO,       /* every byte 0: entry 0, ticket 0, offset 0 */
  PAT_OFF_BY_ONE, /* indices and counts one past what is valid */
  PAT_PEER,       /* a copy of another worker's slot */
  NPATTERNS
};

/* Scribble on n bytes at p as `pattern` says (seeded by `seed`). */
static void scribble(void *p, size_t n, int pattern, uint64_t seed)
{
  unsigned char *b = p;
  uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
  if (pattern == PAT_RANDOM) {
    for (size_t i = 0; i < n; i++)
      b[i] = (unsigned char)next_rand(&s);
  } else if (pattern == PAT_ONES || pattern == PAT_ZERO) {
    memset(b, pattern == PAT_ONES ? 0xff : 0, n);
  } else if (pattern == PAT_OFF_BY_ONE) {
    struct slot_desc *d = p;
    d->entry += 1; /* the next entry: valid index, wrong ticket */
    d->ticket += 1;
    d->offset += 64;
    uint64_t *rest = (uint64_t *)(b + sizeof *d);
    for (size_t i = 0; i < (n - sizeof *d) / 8; i++)
      rest[i] = UINT64_MAX - i;
  }
}

/* The largest shared writable mapping of this process: crew's arena. */
static unsigned char *arena_base(void)
{
  FILE *f = fopen("/proc/self/maps", "r");
  if (f == NULL)
    return NULL;
  char line[512];
  uintptr_t best = 0, best_size = 0;
  while (fgets(line, sizeof line, f) != NULL) {
    unsigned long lo, hi;
    char perms[5];
    if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 &&
        strcmp(perms, "rw-s") == 0 && hi - lo > best_size) {
      best = lo;
      best_size = hi - lo;
    }
  }
  fclose(f);
  return (unsigned char *)best;
}

static void act(int action, void *object)
{
  unsigned char *slot = object;
  int pattern = atomic_load(&plan->pattern);
  switch (action) {
  case ACT_DIE:
    die(atomic_load(&plan->death));
    break;
  case ACT_PARK:
    post((uint64_t)getpid());
    for (;;)
      pause();
  case ACT_SCRIBBLE:
  case ACT_SCRIBBLE_DIE:
    if (pattern == PAT_PEER) { /* the other slot of a 2-worker pool */
      bool first = ((uintptr_t)slot / SLOT_SIZE) % 2 == 0;
      unsigned char *peer = first ? slot + SLOT_SIZE : slot - SLOT_SIZE;
      memcpy(slot, peer, SLOT_SIZE);
      ((struct slot_desc *)slot)->entry ^= 1;
    } else {
      scribble(slot, SLOT_SIZE, pattern, (uint64_t)getpid());
    }
    if (action == ACT_SCRIBBLE_DIE)
      raise(SIGKILL);
    break;
  case ACT_SCRIBBLE_PEER: {
    /* Slots are 64 bytes in a page-aligned array, after a 64-byte head. */
    unsigned char *base =
        (unsigned char *)((uintptr_t)slot & ~(uintptr_t)4095) + 64;
    for (size_t i = 0; i < atomic_load(&plan->nworkers); i++)
      if (base + i * SLOT_SIZE != slot)
        scribble(base + i * SLOT_SIZE, SLOT_SIZE, pattern, i + 7);
    break;
  }
  case ACT_SCRIBBLE_JOB: {
    unsigned char *arena = arena_base();
    const struct slot_desc *d = object;
    if (arena != NULL) /* the job's head and its chunk outcomes */
      scribble(arena + d->offset, 512, pattern, 3);
    raise(SIGKILL);
    break;
  }
  case ACT_SCRIBBLE_STATE: { /* the first int of the slots' page */
    int *state = (int *)((uintptr_t)slot & ~(uintptr_t)4095);
    if (pattern == PAT_OFF_BY_ONE)
      *state = 2; /* CREW__POOL_CANCELLING */
    else
      scribble(state, sizeof *state, pattern, 5);
    break;
  }
  case ACT_SCRIBBLE_TASKQ:
  case ACT_SCRIBBLE_EVENTQ: {
    void *q = atomic_load(action == ACT_SCRIBBLE_TASKQ ? &plan->task_q
                                                       : &plan->event_q);
    /* A queue handle is private to each process (a worker's is its own
     * copy); its first word points to the state it shares with the others
     * (lib/queue.c): the lock word, wait words, head and tail, waiter
     * counts and closed flag. That is what a worker can reach. */
    if (q != NULL)
      scribble(*(void *const *)q, 256, pattern, 9);
    break;
  }
  default:
    break;
  }
}

static int hook(enum crew_test_point point, const void *object, void *arg)
{
  (void)arg;
  if ((point == CREW_TP_DEQUEUE || point == CREW_TP_ENQUEUE) &&
      object != (const void *)box_q && object != (const void *)gate_q &&
      in_worker())
    atomic_store(point == CREW_TP_DEQUEUE ? &plan->task_q : &plan->event_q,
                 (void *)(uintptr_t)object);
  if ((int)point != atomic_load_explicit(&plan->point, memory_order_relaxed))
    return 0;
  if (object == (const void *)box_q || object == (const void *)gate_q ||
      !in_worker())
    return 0;
  uint64_t pass = atomic_fetch_add(&plan->passes, 1) + 1;
  int zero = 0;
  if (pass != atomic_load(&plan->target) ||
      !atomic_compare_exchange_strong(&plan->fired, &zero, 1))
    return 0;
  act(atomic_load(&plan->action), (void *)(uintptr_t)object);
  return 0;
}

static void plan_setup(void)
{
  plan = shared_map(sizeof *plan);
  crew_test_hook_set(hook, NULL);
}

static void plan_teardown(void)
{
  crew_test_hook_set(NULL, NULL);
  munmap(plan, sizeof *plan);
}

/* Arm the plan: act on the target-th pass at point. */
static void arm(int point, int action, int death, int pattern, uint64_t target)
{
  atomic_store(&plan->point, 0);
  atomic_store(&plan->action, action);
  atomic_store(&plan->death, death);
  atomic_store(&plan->pattern, pattern);
  atomic_store(&plan->passes, 0);
  atomic_store(&plan->target, target);
  atomic_store(&plan->fired, 0);
  atomic_store(&plan->point, point);
}

static void disarm(void)
{
  atomic_store(&plan->point, 0);
}

/* ===================================== catalog 37: death at every step */

/* What a task's future must say after its worker died at a step. */
struct step {
  int point;
  const char *name;
  int status; /* CREW_ECRASHED, or 0: it ran (or ran again) once */
  uint64_t runs;
};

static const struct step steps[] = {
    /* popped into the slot, not yet claimed: put back, runs on the
     * replacement */
    {CREW_TP_PROC_CLAIM, "claim", 0, 1},
    /* claimed, about to run: the task is lost with its worker */
    {CREW_TP_PROC_RUN, "run", CREW_ECRASHED, 0},
    /* result in the record (DONE), not posted: settled from the record */
    {CREW_TP_PROC_RESULT, "result", 0, 1},
    /* inside the event push, the event queue's lock held: the push is
     * whole (the robust lock's next owner repairs), settled once */
    {CREW_TP_ENQUEUE, "publish", 0, 1},
    /* posted, the slot not yet cleared: the event settles it, the death
     * finds nothing (its ticket is spent) */
    {CREW_TP_PROC_POST, "post", 0, 1},
};

/*
 * One cell of the matrix: a 1-worker pool whose first task (the victim)
 * meets death `how` at step s; 3 tasks queued behind it. Exactly one
 * outcome for the victim, no duplicate run or result, the others complete
 * on the replacement, and the pool's counters add up.
 */
static void death_at_step(const struct step *s, int how)
{
  memset(shm, 0, sizeof *shm);
  arm(s->point, ACT_DIE, how, 0, 1);
  crew_config cfg = flt_cfg(1);
  crew_pool *pool = pool_create(&cfg);
  crew_future *victim = submit_counted(pool, 100, 0);
  crew_future *after[3];
  for (uint32_t i = 0; i < 3; i++)
    after[i] = submit_counted(pool, i, i + 1);
  int64_t out = -1;
  int rc = crew_future_get(victim, &out, sizeof out);
  ck_assert_msg(rc == s->status, "death by %s at %s: status %d (%s), not %d",
                death_name(how), s->name, rc, crew_strerror(rc), s->status);
  ck_assert_int_eq(crew_future_status(victim), s->status);
  ck_assert_int_eq(out, s->status == 0 ? 201 : -1);
  for (uint32_t i = 0; i < 3; i++)
    expect_counted(after[i], i, i + 1);
  ck_assert_msg(atomic_load(&plan->fired) == 1, "the hook never fired at %s",
                s->name);
  ck_assert_msg(atomic_load(&shm->runs[0]) == s->runs,
                "death by %s at %s: the victim ran %ju times", death_name(how),
                s->name, (uintmax_t)atomic_load(&shm->runs[0]));
  crew_future_release(victim);
  wait_pool_workers(pool, 1);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, 4);
  ck_assert_uint_eq(st.crashed, s->status == CREW_ECRASHED);
  ck_assert_uint_eq(st.completed, 3 + (s->status == 0));
  ck_assert_uint_eq(st.restarted, 1);
  assert_pool_settled(pool);
  disarm();
  crew_pool_destroy(pool);
}

START_TEST(death_at_every_protocol_step)
{
  shared_setup(0);
  plan_setup();
  const struct step *s = &steps[_i / NDEATHS];
  death_at_step(s, _i % NDEATHS + 1);
  plan_teardown();
  shared_teardown();
}
END_TEST

/* ===================================== catalog 33, 35, 36: robust locks */

/*
 * catalog 33: a worker parked (then SIGKILLed by the test) while it holds
 * the lock of the task queue (just after taking a descriptor: the
 * CREW_TP_DEQUEUE point is inside the critical section) or of the event
 * queue (CREW_TP_ENQUEUE, inside its push of the task's event). The next
 * locker (the parent's submit or manager) finds the robust mutex's owner
 * dead, repairs, and goes on: the parked task runs once (it was put back:
 * its record was not claimed) or is settled once from its event, the tasks
 * behind it complete.
 */
static void killed_holding(int point)
{
  memset(shm, 0, sizeof *shm);
  arm(point, ACT_PARK, 0, 0, 1);
  crew_config cfg = flt_cfg(1);
  crew_pool *pool = pool_create(&cfg);
  crew_future *victim = submit_counted(pool, 7, 0);
  pid_t parked = (pid_t)take();
  /* (A submit now would wait for the lock the parked worker holds.) */
  ck_assert_int_eq(crew_future_wait_timed(victim, 20 * MS), CREW_ETIMEDOUT);
  ck_assert_int_eq(kill(parked, SIGKILL), 0);
  crew_future *after[3];
  for (uint32_t i = 0; i < 3; i++)
    after[i] = submit_counted(pool, i, i + 1);
  expect_counted(victim, 7, 0);
  for (uint32_t i = 0; i < 3; i++)
    expect_counted(after[i], i, i + 1);
  wait_pool_workers(pool, 1);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.completed, 4);
  ck_assert_uint_eq(st.crashed, 0);
  ck_assert_uint_eq(st.restarted, 1);
  assert_pool_settled(pool);
  disarm();
  crew_pool_destroy(pool);
}

START_TEST(killed_holding_the_task_queue_lock)
{
  shared_setup(0);
  plan_setup();
  killed_holding(CREW_TP_DEQUEUE);
  plan_teardown();
  shared_teardown();
}
END_TEST

START_TEST(killed_holding_the_event_queue_lock)
{
  shared_setup(0);
  plan_setup();
  killed_holding(CREW_TP_ENQUEUE);
  plan_teardown();
  shared_teardown();
}
END_TEST

/* Child processes of the robust tests are named "flt-N" so that the hook
 * acts in them. */
static void become_worker(void)
{
  signal(SIGTERM, SIG_DFL);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  prctl(PR_SET_NAME, "flt-1");
}

/* A child (a worker, for the hook) that pushes v on q and is killed in
 * the push, holding q's lock: it dies of SIGKILL. */
static void killed_pushing(crew_queue *q, int v)
{
  arm(CREW_TP_ENQUEUE, ACT_DIE, DIE_KILL, 0, 1);
  pid_t a = fork();
  ck_assert_int_ge(a, 0);
  if (a == 0) {
    become_worker();
    crew_queue_push(q, &v);
    _exit(0);
  }
  int st;
  ck_assert_int_eq(waitpid(a, &st, 0), a);
  ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

/*
 * catalog 35: crew never unlocks a robust mutex without making it
 * consistent (every lock of a shared queue repairs first), so
 * ENOTRECOVERABLE cannot arise from crew's own calls; what can happen is a
 * repairer that dies during the repair, before pthread_mutex_consistent.
 * Here A dies holding the queue's lock (in a push, CREW_TP_ENQUEUE), B
 * finds the owner dead and dies inside the repair (its wake-all,
 * CREW_TP_WAKE), and the test's next call repairs again: the queue keeps
 * A's whole item and nothing else, and works on. (catalog 36 below.)
 */
START_TEST(a_repairer_that_dies_mid_repair_wedges_nobody)
{
  shared_setup(0);
  plan_setup();
  crew_queue *q = NULL;
  ck_assert_int_eq(crew_queue_create(&q, 8, sizeof(int), CREW_SHARED), 0);
  killed_pushing(q, 41);
  arm(CREW_TP_WAKE, ACT_DIE, DIE_KILL, 0, 1);
  pid_t b = fork();
  ck_assert_int_ge(b, 0);
  if (b == 0) {
    become_worker();
    crew_queue_size(q); /* locks: owner dead: repairs: wakes: dies */
    _exit(0);
  }
  int st;
  ck_assert_int_eq(waitpid(b, &st, 0), b);
  ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  ck_assert_int_eq(atomic_load(&plan->fired), 1);
  disarm();
  ck_assert_uint_eq(crew_queue_size(q), 1);
  int v = 0;
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, 0), 0);
  ck_assert_int_eq(v, 41);
  for (int i = 0; i < 8; i++)
    ck_assert_int_eq(crew_queue_push_timed(q, &i, 0), 0);
  for (int i = 0; i < 8; i++) {
    ck_assert_int_eq(crew_queue_pop_timed(q, &v, 0), 0);
    ck_assert_int_eq(v, i);
  }
  crew_queue_close(q);
  crew_queue_destroy(q);
  plan_teardown();
  shared_teardown();
}
END_TEST

/*
 * catalog 36: a process blocked in crew_queue_pop (a shared wait, on a
 * futex word: the "condition variable bound to the robust mutex") while
 * another dies holding the lock, inside its push of the item the popper
 * waits for (before its wake-up). The popper's wait ends at its 100 ms
 * slice, its relock finds the owner dead, it repairs exactly as a lock
 * does, and it gets the item, well within a second.
 */
START_TEST(a_waiter_finds_the_owner_dead_on_waking)
{
  shared_setup(0);
  plan_setup();
  crew_queue *q = NULL;
  ck_assert_int_eq(crew_queue_create(&q, 8, sizeof(int), CREW_SHARED), 0);
  pid_t popper_pid = fork();
  ck_assert_int_ge(popper_pid, 0);
  if (popper_pid == 0) {
    signal(SIGTERM, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int v = -1;
    int rc = crew_queue_pop(q, &v);
    post((uint64_t)now_ns());
    _exit(rc == 0 && v == 77 ? 0 : 1);
  }
  wait_sleeping(popper_pid);
  uint64_t t0 = now_ns();
  killed_pushing(q, 77);
  uint64_t woke = take();
  int st;
  ck_assert_int_eq(waitpid(popper_pid, &st, 0), popper_pid);
  ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  ck_assert_uint_lt(woke - t0, 1000 * MS);
  disarm();
  ck_assert_uint_eq(crew_queue_size(q), 0);
  crew_queue_destroy(q);
  plan_teardown();
  shared_teardown();
}
END_TEST

/* ================================= catalog 42, 43: untrusted shared memory */

/* Posts its pid, waits at the gate, then returns its counted result. */
static int gated_counted_task(const void *in, void *out)
{
  post((uint64_t)getpid());
  char token;
  crew_queue_pop(gate_q, &token);
  return counted_task(in, out);
}

/*
 * A task whose body scribbles on its own record: the 64 bytes before its
 * input (lib/procpool.c: the record's head, state, status, fn, sizes,
 * times), then returns. in: {pattern, x, id}.
 */
struct scribble_in {
  int32_t pattern;
  uint32_t id;
  int64_t x;
};

static int scribble_record_task(const void *in, void *out)
{
  const struct scribble_in *s = in;
  atomic_fetch_add(&shm->runs[s->id], 1);
  *(int64_t *)out = s->x;
  unsigned char *head = (unsigned char *)(uintptr_t)in - 64;
  int pattern = s->pattern;
  if (pattern == PAT_OFF_BY_ONE) { /* adversarial, field by field */
    uint32_t *state = (uint32_t *)head;
    *state = 2; /* DONE, without the owner crew writes */
    uint64_t *sizes = (uint64_t *)(head + 16);
    sizes[0] = SIZE_MAX;          /* in_size */
    sizes[1] = SIZE_MAX;          /* out_size */
    sizes[2] = (uint64_t)1 << 40; /* out_at */
    return 0;
  }
  if (pattern == PAT_PEER)
    pattern = PAT_RANDOM;
  scribble(head, 64, pattern, s->id + 11);
  return 0;
}

/* A pool of 2 workers; one task parked on the other worker meanwhile. */
struct scene {
  crew_pool *pool;
  crew_future *parked;
  size_t restarted;
};

static struct scene scene_start(void)
{
  memset(shm, 0, sizeof *shm);
  struct scene sc = {0};
  crew_config cfg = flt_cfg(2);
  sc.pool = pool_create(&cfg);
  struct counted_in c = {.x = 50, .id = 50};
  ck_assert_int_eq(crew_submit(sc.pool, gated_counted_task, &c, sizeof c,
                               sizeof(int64_t), &sc.parked),
                   0);
  take();
  return sc;
}

/* The others went on: the parked task completes, then 10 more; the
 * counters (UINT64_MAX: not checked) and they add up. */
static void scene_finish(struct scene *sc, uint64_t crashed, uint64_t restarted)
{
  for (uint32_t i = 0; i < 5; i++)
    expect_counted(submit_counted(sc->pool, i, 10 + i), i, 10 + i);
  open_gate(1);
  expect_counted(sc->parked, 50, 50);
  for (uint32_t i = 5; i < 10; i++)
    expect_counted(submit_counted(sc->pool, i, 10 + i), i, 10 + i);
  wait_pool_workers(sc->pool, 2);
  crew_stats st = pool_stats(sc->pool);
  if (crashed != UINT64_MAX)
    ck_assert_uint_eq(st.crashed, crashed);
  if (restarted != UINT64_MAX)
    ck_assert_uint_eq(st.restarted, restarted);
  assert_pool_settled(sc->pool);
  crew_pool_destroy(sc->pool);
}

/*
 * catalog 42, from the task body: the task scribbles on its own record's
 * head (random bytes, all ones: SIZE_MAX sizes and an invalid state, all
 * zeros: QUEUED again, and field by field: DONE without an owner, SIZE_MAX
 * sizes, an output offset 1 TiB away) and returns. The worker finds its
 * record changed under it, puts back what the parent reads and exits; the
 * parent reads nothing out of bounds (its own copies of sizes and offsets),
 * resolves the task CREW_ECRASHED once, and replaces the worker; the
 * parked task and later ones complete.
 */
START_TEST(a_task_scribbling_on_its_record_is_crashed)
{
  shared_setup(0);
  int pattern = _i;
  struct scene sc = scene_start();
  struct scribble_in in = {.pattern = pattern, .id = 1, .x = 5};
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(sc.pool, scribble_record_task, &in, sizeof in,
                               sizeof(int64_t), &f),
                   0);
  int64_t out = -1;
  ck_assert_int_eq(crew_future_get(f, &out, sizeof out), CREW_ECRASHED);
  ck_assert_int_eq(out, -1);
  ck_assert_uint_eq(atomic_load(&shm->runs[1]), 1);
  crew_future_release(f);
  scene_finish(&sc, 1, 1);
  shared_teardown();
}
END_TEST

static const int scribble_points[] = {CREW_TP_PROC_CLAIM, CREW_TP_PROC_RUN,
                                      CREW_TP_PROC_RESULT};
#define NSCRIBBLE_POINTS 3

/*
 * catalog 42, from a hook: at its claim, just before the task runs, or once
 * its result is written, the worker scribbles on its own slot (random
 * bytes, all ones: entry NO_ENTRY and SIZE_MAX offset, all zeros: entry 0
 * ticket 0, off by one: the next entry and ticket, a 64-byte-later offset,
 * UINT64_MAX counters; or a copy of the other worker's slot, which names
 * the parked task). The worker puts its slot back from its own copy of the
 * descriptor and goes on: the task completes once, the parked task is not
 * touched, nothing is crashed.
 */
START_TEST(a_worker_scribbling_on_its_slot_repairs_it)
{
  shared_setup(0);
  plan_setup();
  int point = scribble_points[_i / NPATTERNS], pattern = _i % NPATTERNS;
  struct scene sc = scene_start();
  arm(point, ACT_SCRIBBLE, 0, pattern, 1);
  expect_counted(submit_counted(sc.pool, 3, 1), 3, 1);
  ck_assert_int_eq(atomic_load(&plan->fired), 1);
  disarm();
  scene_finish(&sc, 0, 0);
  plan_teardown();
  shared_teardown();
}
END_TEST

/*
 * catalog 42: the worker scribbles on its slot and dies at once (SIGKILL),
 * before it could put the slot back: the parent cannot use the slot (it
 * names no live entry, or, copied from the peer, names the parked task,
 * whose record says another worker owns it). The records are the second
 * witness: a task claimed by the dead pid is settled, crashed if it was
 * RUNNING (scribbled just before it ran), completed if its result was in
 * (DONE, scribbled after). The parked task is untouched.
 */
START_TEST(a_worker_scribbling_on_its_slot_then_dying)
{
  static const int patterns[] = {PAT_RANDOM, PAT_ONES, PAT_OFF_BY_ONE,
                                 PAT_PEER};
  shared_setup(0);
  plan_setup();
  bool after_result = _i / 4 == 1;
  int pattern = patterns[_i % 4];
  struct scene sc = scene_start();
  arm(after_result ? CREW_TP_PROC_RESULT : CREW_TP_PROC_RUN, ACT_SCRIBBLE_DIE,
      0, pattern, 1);
  crew_future *f = submit_counted(sc.pool, 4, 1);
  int64_t out = -1;
  int rc = crew_future_get(f, &out, sizeof out);
  crew_future_release(f);
  ck_assert_int_eq(atomic_load(&plan->fired), 1);
  disarm();
  if (after_result) {
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(out, 9);
    ck_assert_uint_eq(atomic_load(&shm->runs[1]), 1);
  } else {
    ck_assert_int_eq(rc, CREW_ECRASHED);
    ck_assert_uint_eq(atomic_load(&shm->runs[1]), 0);
  }
  scene_finish(&sc, after_result ? 0 : 1, 1);
  plan_teardown();
  shared_teardown();
}
END_TEST

/*
 * catalog 42: a worker scribbles on the other workers' slots (random, all
 * ones, all zeros) while one of them runs the parked task, and goes on. The
 * parked worker puts its slot back when its task returns; nothing is
 * crashed, every task completes once.
 */
START_TEST(a_worker_scribbling_on_other_slots)
{
  shared_setup(0);
  plan_setup();
  atomic_store(&plan->nworkers, 2);
  struct scene sc = scene_start();
  arm(CREW_TP_PROC_RUN, ACT_SCRIBBLE_PEER, 0, _i, 1);
  expect_counted(submit_counted(sc.pool, 5, 1), 5, 1);
  ck_assert_int_eq(atomic_load(&plan->fired), 1);
  disarm();
  scene_finish(&sc, 0, 0);
  plan_teardown();
  shared_teardown();
}
END_TEST

/*
 * catalog 42, 43: a map runner scribbles on its job in shared memory (the
 * head: fn, count, chunk size, chunk count, strides, offsets, the next
 * chunk; the chunk outcomes; the first input items), as its first chunk
 * starts, and dies. The parent uses its own copy of the map's geometry and
 * checks each chunk's outcome (read once) against it: no read out of
 * bounds, no hang, the map returns CREW_ECRASHED (its first chunk died),
 * and the pool goes on (a second map is right).
 */
START_TEST(a_map_runner_scribbling_on_its_job)
{
  enum { N = 64 };
  static const int patterns[] = {PAT_RANDOM, PAT_ZERO};
  shared_setup(0);
  plan_setup();
  struct scene sc = scene_start();
  int64_t in[N], out[N];
  for (int i = 0; i < N; i++)
    in[i] = i;
  arm(CREW_TP_PROC_RUN, ACT_SCRIBBLE_JOB, 0, patterns[_i], 1);
  ck_assert_int_eq(
      crew_map(sc.pool, triple_item, in, sizeof in[0], out, sizeof out[0], N),
      CREW_ECRASHED);
  ck_assert_int_eq(atomic_load(&plan->fired), 1);
  disarm();
  memset(shm, 0, sizeof *shm);
  ck_assert_int_eq(
      crew_map(sc.pool, triple_item, in, sizeof in[0], out, sizeof out[0], N),
      0);
  for (int i = 0; i < N; i++) {
    quiet_assert_int_eq(out[i], 3 * i);
    quiet_assert_uint_eq(atomic_load(&shm->runs[i]), 1);
  }
  memset(shm, 0, sizeof *shm); /* the parked task has not counted yet */
  scene_finish(&sc, UINT64_MAX, UINT64_MAX);
  plan_teardown();
  shared_teardown();
}
END_TEST

/*
 * catalog 42: a worker scribbles on the workers' copy of the pool's state
 * word (random, all ones, all zeros after a copy, or exactly the value
 * that means "cancelling"). The pool's own state word is the parent's
 * (pool.c CASes it; a scribble could otherwise keep shutdown from ever
 * beginning and destroy from returning); the manager puts the copy back at
 * its next event. The task completes, later tasks run (none is cancelled),
 * shutdown and destroy return.
 */
START_TEST(a_worker_scribbling_on_the_pool_state)
{
  shared_setup(0);
  plan_setup();
  struct scene sc = scene_start();
  arm(CREW_TP_PROC_RUN, ACT_SCRIBBLE_STATE, 0, _i, 1);
  expect_counted(submit_counted(sc.pool, 6, 1), 6, 1);
  ck_assert_int_eq(atomic_load(&plan->fired), 1);
  disarm();
  crew_stats st = pool_stats(sc.pool);
  ck_assert_uint_eq(st.cancelled, 0);
  scene_finish(&sc, 0, 0);
  plan_teardown();
  shared_teardown();
}
END_TEST

/* In the application child of the queue-head tests: 0 if every future
 * resolved within 3 s and destroy returned; else which step failed. */
static int queue_head_child(int action, int pattern)
{
  enum { N = 8 };
  crew_config cfg = flt_cfg(2);
  crew_pool *pool = NULL;
  if (crew_pool_create(&pool, &cfg) != 0)
    return 10;
  /* One task first, so that a worker has seen both queues. */
  crew_future *f = NULL;
  struct counted_in c = {.x = 1, .id = 1};
  if (crew_submit(pool, counted_task, &c, sizeof c, 8, &f) != 0 ||
      crew_future_wait(f) != 0)
    return 11;
  crew_future_release(f);
  arm(CREW_TP_PROC_RUN, action, 0, pattern, 1);
  crew_future *fs[N];
  for (int i = 0; i < N; i++) {
    c.x = i;
    int rc = crew_submit_timed(pool, counted_task, &c, sizeof c, 8, &fs[i],
                               1000 * MS);
    if (rc != 0)
      fs[i] = NULL; /* refused: a broken queue may say so */
  }
  for (int i = 0; i < N; i++) {
    if (fs[i] == NULL)
      continue;
    int rc = crew_future_wait_timed(fs[i], 3000 * MS);
    if (rc == CREW_ETIMEDOUT)
      return 20 + i;
    crew_future_release(fs[i]);
  }
  crew_pool_destroy(pool);
  return 0;
}

/*
 * catalog 42: a worker scribbles on the head of the task queue or of the
 * event queue (the shared crew_queue: robust mutex, wait words, head and
 * tail, waiter counts, closed flag, and the geometry: capacity, item size,
 * ring pointer). The application (a child here, so that a hang or a crash
 * is a measured result) must not crash nor hang: every future resolves
 * within 3 s and destroy returns.
 *
 * The queue keeps its geometry in each process's private handle and, on
 * Linux, its shared lock is a futex word naming the holder's pid, which a
 * locker takes over when it names a dead process, this process without a
 * holding thread, or the same process for 2 s; a state with more items
 * than the ring holds closes the queue for the process that finds it, so
 * the pool settles what it can no longer run as crashed.
 */
START_TEST(a_worker_scribbling_on_a_queue_head)
{
  static const int patterns[] = {PAT_RANDOM, PAT_ONES, PAT_ZERO};
  int action = _i / 3 == 0 ? ACT_SCRIBBLE_TASKQ : ACT_SCRIBBLE_EVENTQ;
  int pattern = patterns[_i % 3];
  shared_setup(0);
  plan_setup();
  pid_t app = fork();
  ck_assert_int_ge(app, 0);
  if (app == 0) {
    signal(SIGTERM, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    setpgid(0, 0);
    _exit(queue_head_child(action, pattern));
  }
  int st = 0;
  uint64_t t0 = now_ns();
  while (waitpid(app, &st, WNOHANG) == 0 && now_ns() - t0 < 6000 * MS)
    pause_ms(5);
  bool hung = !proc_gone(app);
  if (hung) {
    kill(-app, SIGKILL);
    kill(app, SIGKILL);
    waitpid(app, &st, 0);
  }
  ck_assert_msg(!hung, "scribbled %s queue head (%d): the application hung",
                action == ACT_SCRIBBLE_TASKQ ? "task" : "event", pattern);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                "scribbled %s queue head (pattern %d): the application %s %d",
                action == ACT_SCRIBBLE_TASKQ ? "task" : "event", pattern,
                WIFEXITED(st) ? "failed at step" : "died of signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
  plan_teardown();
  shared_teardown();
}
END_TEST

/* ================================================ a long hold, in-process */

/* What the holding hook does: once armed, at the next enqueue onto `arg`
 * (the tail is stored, the lock still held), post, hold the lock for
 * 2.5 s, and note when it lets go. */
static _Atomic int hold_armed;
static _Atomic uint64_t hold_left_ns;
static signal_box hold_began;

static int holding_hook(enum crew_test_point point, const void *object,
                        void *arg)
{
  if (point != CREW_TP_ENQUEUE || object != arg ||
      !atomic_exchange(&hold_armed, 0))
    return 0;
  signal_post(&hold_began);
  pause_ms(2500); /* a holder descheduled for longer than 2 s, on purpose */
  atomic_store(&hold_left_ns, now_ns());
  return 0;
}

static void *push_one(void *arg)
{
  int v = 7;
  ck_assert_int_eq(crew_queue_push((crew_queue *)arg, &v), 0);
  return NULL;
}

/*
 * catalog 33's other side: a shared queue's lock held by a thread of this
 * process for longer than the 2 s after which another process's hold is
 * taken over. The thread is alive, so the lock stays its own: a popper in
 * another thread waits until it lets go, and nothing is taken over (under
 * load, threads of one process could otherwise take the lock from each
 * other and run the queue's critical sections at once).
 */
START_TEST(a_thread_holding_a_shared_lock_long_keeps_it)
{
  crew_queue *q = NULL;
  ck_assert_int_eq(crew_queue_create(&q, 4, sizeof(int), CREW_SHARED), 0);
  signal_init(&hold_began);
  atomic_store(&hold_left_ns, 0);
  atomic_store(&hold_armed, 1);
  ck_assert_int_eq(crew_test_hook_set(holding_hook, q), 0);
  pthread_t t;
  start_thread(&t, push_one, q);
  signal_wait(&hold_began, 1); /* the pusher holds the lock */
  int v = 0;
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, 10000 * MS), 0);
  uint64_t popped_ns = now_ns();
  ck_assert_int_eq(v, 7);
  uint64_t left = atomic_load(&hold_left_ns);
  ck_assert_msg(left != 0 && left <= popped_ns,
                "the pop took the lock while the pusher held it");
  join_thread(t);
  ck_assert_int_eq(crew_test_hook_set(NULL, NULL), 0);
  ck_assert_uint_eq(crew_queue_size(q), 0);
  ck_assert(!crew_queue_is_closed(q)); /* nothing looked corrupt */
  crew_queue_destroy(q);
  signal_fini(&hold_began);
}
END_TEST

/* ================================================================ main */

int main(void)
{
  Suite *s = suite_create("faults_hooks");

  TCase *tc = tcase_create("protocol");
  harness_tcase(tc, 10);
  tcase_add_loop_test(tc, death_at_every_protocol_step, 0,
                      (int)(sizeof steps / sizeof steps[0]) * NDEATHS);
  suite_add_tcase(s, tc);

  tc = tcase_create("robust");
  harness_tcase(tc, 10);
  tcase_add_test(tc, killed_holding_the_task_queue_lock);
  tcase_add_test(tc, killed_holding_the_event_queue_lock);
  tcase_add_test(tc, a_repairer_that_dies_mid_repair_wedges_nobody);
  tcase_add_test(tc, a_waiter_finds_the_owner_dead_on_waking);
  tcase_add_test(tc, a_thread_holding_a_shared_lock_long_keeps_it);
  suite_add_tcase(s, tc);

  tc = tcase_create("scribble");
  harness_tcase(tc, 10);
  tcase_add_loop_test(tc, a_task_scribbling_on_its_record_is_crashed, 0,
                      NPATTERNS);
  tcase_add_loop_test(tc, a_worker_scribbling_on_its_slot_repairs_it, 0,
                      NPATTERNS * NSCRIBBLE_POINTS);
  tcase_add_loop_test(tc, a_worker_scribbling_on_its_slot_then_dying, 0, 8);
  tcase_add_loop_test(tc, a_worker_scribbling_on_other_slots, 0, 3);
  tcase_add_loop_test(tc, a_map_runner_scribbling_on_its_job, 0, 2);
  tcase_add_loop_test(tc, a_worker_scribbling_on_the_pool_state, 0, 4);
  tcase_add_loop_test(tc, a_worker_scribbling_on_a_queue_head, 0, 6);
  suite_add_tcase(s, tc);

  return run_suite(s);
}
