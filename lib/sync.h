/*
 * sync.h - crew's layer over the operating system: mutexes, condition
 * variables on CLOCK_MONOTONIC, deadlines, threads, CPU count and fork
 * detection. sync.h and sync.c are the only places that call pthreads;
 * every other file locks and waits through the functions here. The small
 * ones are inline: they are on every task's path.
 *
 * Errors from pthread calls that cannot fail on valid objects (lock, unlock,
 * signal) are not reported: crew only passes objects it initialised.
 */
#ifndef CREW_SYNC_H
#define CREW_SYNC_H

#include "testhook.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* Whether this system has futexes: shared queues then lock with them. */
#if HAVE_DECL_SYS_FUTEX && defined(HAVE_LINUX_FUTEX_H)
#define CREW__FUTEX 1
#endif

/* --------------------------------------------------------------- deadlines */

/*
 * An absolute time on CLOCK_MONOTONIC, in nanoseconds. `at` 0 has always
 * passed ("now": a poll); CREW__NEVER never passes.
 */
typedef struct crew__deadline {
  uint64_t at;
} crew__deadline;

#define CREW__NEVER UINT64_MAX

static inline uint64_t crew__now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The deadline timeout_ns from now (> 0, < UINT64_MAX), saturating. */
crew__deadline crew__deadline_after(uint64_t timeout_ns);

/* The deadline timeout_ns from now, saturating; 0 polls, UINT64_MAX never
 * (the common constants cost no call and no clock read). */
static inline crew__deadline crew__deadline_in(uint64_t timeout_ns)
{
  if (timeout_ns == 0)
    return (crew__deadline){0};
  if (timeout_ns == UINT64_MAX)
    return (crew__deadline){CREW__NEVER};
  return crew__deadline_after(timeout_ns);
}

static inline bool crew__deadline_passed(crew__deadline d)
{
  if (d.at == CREW__NEVER)
    return false;
  return d.at == 0 || crew__now_ns() >= d.at;
}

/* A hint to the CPU that this thread spins (a pause), not a system call. */
static inline void crew__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* ------------------------------------------------------------------ mutex */

typedef struct crew__mutex {
  pthread_mutex_t m;
#ifdef CREW_DEBUG
  _Atomic(const void *) owner; /* the holder's identity, for held-asserts */
#endif
} crew__mutex;

#ifdef CREW_DEBUG
#include <assert.h>
extern _Thread_local char crew__self_tag; /* this thread's identity */
static inline bool crew__mutex_held(const crew__mutex *mu)
{
  return atomic_load_explicit(&mu->owner, memory_order_relaxed) ==
         &crew__self_tag;
}
static inline void crew__mutex_owned(crew__mutex *mu, bool now)
{
  atomic_store_explicit(&mu->owner, now ? &crew__self_tag : NULL,
                        memory_order_relaxed);
}
#define crew__assert(expr)    assert(expr)
#define crew__assert_held(mu) assert(crew__mutex_held(mu))
#else
#define crew__mutex_owned(mu, now) ((void)0)
#define crew__assert(expr)         ((void)0)
#define crew__assert_held(mu)      ((void)0)
#endif

/* An adaptive mutex where the system has one: 0 or CREW_ENOMEM. */
int crew__mutex_init(crew__mutex *mu);

static inline void crew__mutex_destroy(crew__mutex *mu)
{
  pthread_mutex_destroy(&mu->m);
}

static inline void crew__mutex_lock(crew__mutex *mu)
{
  crew__assert(!crew__mutex_held(mu));
  (void)CREW__HOOK(CREW_TP_LOCK, mu);
  pthread_mutex_lock(&mu->m);
  crew__mutex_owned(mu, true);
}

static inline void crew__mutex_unlock(crew__mutex *mu)
{
  crew__assert_held(mu);
  (void)CREW__HOOK(CREW_TP_UNLOCK, mu);
  crew__mutex_owned(mu, false);
  pthread_mutex_unlock(&mu->m);
}

/*
 * A spin lock, for critical sections of a few instructions that never block
 * (a free list's push or pop), where a mutex would cost more than the work.
 * A waiter spins, yielding the CPU now and then so that a preempted holder
 * can finish.
 */
typedef struct crew__spinlock {
  atomic_flag held;
} crew__spinlock;

#define CREW__SPINLOCK_INIT                                                    \
  {                                                                            \
    ATOMIC_FLAG_INIT                                                           \
  }

static inline void crew__spin_lock(crew__spinlock *l)
{
  for (unsigned i = 1;
       atomic_flag_test_and_set_explicit(&l->held, memory_order_acquire); i++) {
    crew__cpu_relax();
    if (i % 128 == 0)
      sched_yield();
  }
}

static inline void crew__spin_unlock(crew__spinlock *l)
{
  atomic_flag_clear_explicit(&l->held, memory_order_release);
}

/* ------------------------------------------------------------- condition */

typedef struct crew__cond {
  pthread_cond_t c;
} crew__cond;

/* A condition variable on CLOCK_MONOTONIC: 0 or CREW_ENOMEM. */
int crew__cond_init(crew__cond *cv);

static inline void crew__cond_destroy(crew__cond *cv)
{
  pthread_cond_destroy(&cv->c);
}

static inline void crew__cond_signal(crew__cond *cv)
{
  pthread_cond_signal(&cv->c);
}

static inline void crew__cond_broadcast(crew__cond *cv)
{
  pthread_cond_broadcast(&cv->c);
}

/*
 * Wait on cv with mu held until signalled or the deadline passes. Returns 0
 * (woken, perhaps spuriously: recheck the predicate), CREW_ETIMEDOUT (the
 * deadline has passed; the predicate may still have come true) or, for a
 * robust mutex, CREW__OWNER_DIED.
 */
int crew__cond_wait(crew__cond *cv, crew__mutex *mu, crew__deadline d);

/* With mu held: wait on cv until holds(arg) (0), or until d passes with it
 * still false (CREW_ETIMEDOUT). holds is asked first, and after every
 * wake-up, a timed-out one included. */
static inline int crew__cond_wait_for(crew__cond *cv, crew__mutex *mu,
                                      crew__deadline d, bool (*holds)(void *),
                                      void *arg)
{
  while (!holds(arg))
    if (crew__cond_wait(cv, mu, d) == CREW_ETIMEDOUT && !holds(arg))
      return CREW_ETIMEDOUT;
  return 0;
}

#ifndef CREW__FUTEX
/*
 * Where there are no futexes, a shared queue's state holds a robust,
 * process-shared mutex and process-shared condition variables. If a process
 * dies holding the mutex, the next locker gets it with CREW__OWNER_DIED,
 * must make the state it guards consistent, then call
 * crew__mutex_consistent(). Lock it with crew__mutex_lock_robust() only.
 */
int crew__mutex_init_shared(crew__mutex *mu);
int crew__cond_init_shared(crew__cond *cv);
int crew__mutex_lock_robust(crew__mutex *mu);
void crew__mutex_consistent(crew__mutex *mu);
#endif
#define CREW__OWNER_DIED 1

/* ---------------------------------------------------------------- threads */

typedef struct crew__thread {
  pthread_t t;
} crew__thread;

/*
 * Start fn(arg) on a new thread that blocks every signal it can (signals go
 * to the application's threads), except those of its own faults (SIGSEGV,
 * SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT). Returns 0 or
 * CREW_ENOMEM.
 */
int crew__thread_start(crew__thread *th, void *(*fn)(void *), void *arg);

static inline void crew__thread_join(crew__thread *th)
{
  pthread_join(th->t, NULL);
}

/*
 * Name the calling thread PREFIX SUFFIX, cut to the 15 bytes Linux keeps by
 * shortening the prefix, never the suffix; best effort. In a single-threaded
 * process this names the process.
 */
void crew__thread_set_name(const char *prefix, const char *suffix);

/* How many CPUs this process may run on (its affinity mask), at least 1. */
size_t crew__cpu_count(void);

/* ------------------------------------------------------------ fork guard */

/*
 * Tells whether the calling process is the one that made the guard. Where
 * the kernel has MADV_WIPEONFORK the check is one load from a page that fork
 * zeroes in the child; elsewhere it compares getpid().
 */
typedef struct crew__fork_guard {
  volatile uint32_t *page; /* MADV_WIPEONFORK page holding CREW__FORK_MARK */
  pid_t pid;               /* the fallback */
} crew__fork_guard;

#define CREW__FORK_MARK 0x63726577u /* "crew" */

void crew__fork_guard_init(crew__fork_guard *g);

static inline void crew__fork_guard_fini(crew__fork_guard *g)
{
  if (g->page != NULL)
    munmap((void *)g->page, (size_t)sysconf(_SC_PAGESIZE));
  g->page = NULL;
}

static inline bool crew__fork_guard_same_process(const crew__fork_guard *g)
{
  if (g->page != NULL)
    return *g->page == CREW__FORK_MARK;
  return getpid() == g->pid;
}

/* Make the guard name the calling process (a forked child's copy). */
static inline void crew__fork_guard_rearm(crew__fork_guard *g)
{
  g->pid = getpid();
  if (g->page != NULL)
    *g->page = CREW__FORK_MARK;
}

#endif /* CREW_SYNC_H */
