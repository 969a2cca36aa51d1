/*
 * sync.h - crew's layer over the operating system: mutexes, condition
 * variables on CLOCK_MONOTONIC, deadlines, threads, CPU count and fork
 * detection. lib/sync.c is the only file that calls pthreads; every other
 * file waits through the functions here.
 *
 * Errors from pthread calls that cannot fail on valid objects (lock, unlock,
 * signal) are not reported: crew only passes objects it initialised.
 */
#ifndef CREW_SYNC_H
#define CREW_SYNC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* --------------------------------------------------------------- deadlines */

/*
 * An absolute time on CLOCK_MONOTONIC, in nanoseconds. `at` 0 has always
 * passed ("now": a poll); CREW__NEVER never passes.
 */
typedef struct crew__deadline {
  uint64_t at;
} crew__deadline;

#define CREW__NEVER UINT64_MAX

/* The deadline timeout_ns from now (> 0, < UINT64_MAX), saturating. */
crew__deadline crew__deadline_after(uint64_t timeout_ns);

/* The deadline timeout_ns from now, saturating; 0 polls, UINT64_MAX never
 * (inline: the common constants cost no call and no clock read). */
static inline crew__deadline crew__deadline_in(uint64_t timeout_ns)
{
  if (timeout_ns == 0)
    return (crew__deadline){0};
  if (timeout_ns == UINT64_MAX)
    return (crew__deadline){CREW__NEVER};
  return crew__deadline_after(timeout_ns);
}
bool crew__deadline_passed(crew__deadline d);
uint64_t crew__now_ns(void);

/* ------------------------------------------------------------------ mutex */

typedef struct crew__mutex {
  pthread_mutex_t m;
#ifdef CREW_DEBUG
  _Atomic(const void *) owner; /* the holder's identity, for held-asserts */
#endif
} crew__mutex;

int crew__mutex_init(crew__mutex *mu);
void crew__mutex_destroy(crew__mutex *mu);
void crew__mutex_lock(crew__mutex *mu);
void crew__mutex_unlock(crew__mutex *mu);

/*
 * A mutex in MAP_SHARED memory, usable by every process that maps it, and
 * robust: if a process dies holding it, the next locker gets it with
 * CREW__OWNER_DIED, must make the state it guards consistent, then call
 * crew__mutex_consistent(). Lock it with crew__mutex_lock_robust() only.
 */
#define CREW__OWNER_DIED 1

/* A hint to the CPU that this thread spins (a pause), not a system call. */
static inline void crew__cpu_relax(void);

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

void crew__spin_yield(void); /* sched_yield() */

static inline void crew__spin_lock(crew__spinlock *l)
{
  for (unsigned i = 1;
       atomic_flag_test_and_set_explicit(&l->held, memory_order_acquire); i++) {
    crew__cpu_relax();
    if (i % 128 == 0)
      crew__spin_yield();
  }
}

static inline void crew__spin_unlock(crew__spinlock *l)
{
  atomic_flag_clear_explicit(&l->held, memory_order_release);
}

static inline void crew__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}
int crew__mutex_init_shared(crew__mutex *mu);
int crew__mutex_lock_robust(crew__mutex *mu);
void crew__mutex_consistent(crew__mutex *mu);

#ifdef CREW_DEBUG
#include <assert.h>
bool crew__mutex_held(const crew__mutex *mu);
#define crew__assert(expr)    assert(expr)
#define crew__assert_held(mu) assert(crew__mutex_held(mu))
#else
#define crew__assert(expr)    ((void)0)
#define crew__assert_held(mu) ((void)0)
#endif

/* ------------------------------------------------------------- condition */

typedef struct crew__cond {
  pthread_cond_t c;
} crew__cond;

int crew__cond_init(crew__cond *cv);
void crew__cond_destroy(crew__cond *cv);
void crew__cond_signal(crew__cond *cv);
void crew__cond_broadcast(crew__cond *cv);

/*
 * Wait on cv with mu held until signalled or the deadline passes. Returns 0
 * (woken, perhaps spuriously: recheck the predicate) or CREW_ETIMEDOUT (the
 * deadline has passed; the predicate may still have come true).
 */
int crew__cond_wait(crew__cond *cv, crew__mutex *mu, crew__deadline d);

/* --------------------------------------------------------------- wait sets */

/*
 * Where threads wait for a condition guarded by a crew__mutex: a condition
 * variable, process-shared when made `shared` (for a CREW_SHARED queue
 * where there are no futexes; with futexes, shared memory uses
 * crew__slock and its wait words instead, below, because a process killed
 * while waiting on a process-shared condition variable can wedge glibc's
 * signal, broadcast and destroy).
 */
typedef struct crew__waitset {
  crew__cond cond;
} crew__waitset;

int crew__waitset_init(crew__waitset *ws, bool shared);
void crew__waitset_destroy(crew__waitset *ws);

/*
 * With mu held, sleep until woken or `d` passes, and return with mu held.
 * Returns 0 (recheck the predicate), CREW_ETIMEDOUT, or, for a shared wait
 * set, CREW__OWNER_DIED when relocking found mu's previous owner dead.
 */
int crew__waitset_wait(crew__waitset *ws, crew__mutex *mu, crew__deadline d);

/* With the mutex held: wake up to n waiters, or every waiter. */
void crew__waitset_wake(crew__waitset *ws, size_t n);
void crew__waitset_wake_all(crew__waitset *ws);

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
void crew__thread_join(crew__thread *th);

/*
 * Name the calling thread PREFIX SUFFIX, cut to the 15 bytes Linux keeps by
 * shortening the prefix, never the suffix; best effort. In a single-threaded
 * process this names the process.
 */
void crew__thread_set_name(const char *prefix, const char *suffix);

/* How many CPUs this process may run on (its affinity mask); at least 1. */
size_t crew__cpu_count(void);

/* How many more threads this process may start, or SIZE_MAX if unlimited. */
size_t crew__thread_limit(void);

/* ------------------------------------------------------------ fork guard */

/*
 * Tells whether the calling process is the one that made the guard. Where
 * the kernel has MADV_WIPEONFORK the check is one load from a page that fork
 * zeroes in the child; elsewhere it compares getpid().
 */
typedef struct crew__fork_guard {
  volatile uint32_t *page; /* MADV_WIPEONFORK page holding a nonzero mark */
  pid_t pid;               /* the fallback */
} crew__fork_guard;

void crew__fork_guard_init(crew__fork_guard *g);
void crew__fork_guard_fini(crew__fork_guard *g);
bool crew__fork_guard_same_process(const crew__fork_guard *g);

/* Make the guard name the calling process (a forked child's copy). */
void crew__fork_guard_rearm(crew__fork_guard *g);

/* ------------------------------------------------- lock in untrusted memory */

#if HAVE_DECL_SYS_FUTEX && defined(HAVE_LINUX_FUTEX_H)
/*
 * A lock for memory shared with processes that may die at any moment or
 * write garbage over it (a CREW_SHARED queue's state): one futex word, 0
 * when free, else the holder's pid, with bit 31 set while others may sleep
 * on it. Nothing else of it lives in shared memory, so no value a process
 * can write there makes a locker crash, and none makes it wait for ever:
 *  - a holder that died (gone, or a zombie) is noticed by the next locker
 *    after a 10 ms slice of waiting, which takes the lock over and gets
 *    CREW__OWNER_DIED (check what the lock guards);
 *  - a word naming this process while none of its threads holds the lock
 *    (garbage) is taken over the same way;
 *  - a word naming the same other, live process for 2 s is taken over too
 *    (a holder's critical section is a few instructions: it has died in
 *    all but name, is stopped, or the word is garbage). A stopped holder
 *    that resumes finds the lock gone and releases nothing.
 * Threads of one process are told apart through the process's own
 * crew__slock_local, kept in private memory beside its handle.
 */
#define CREW__SLOCK 1

typedef struct crew__slock_local {
  crew__fork_guard guard; /* refreshes `pid` in a forked child */
  uint32_t pid;
  _Atomic uint32_t inside; /* this process's threads locking or holding */
} crew__slock_local;

int crew__slock_local_init(crew__slock_local *me);
void crew__slock_local_fini(crew__slock_local *me);

/* 0, or CREW__OWNER_DIED when the lock was taken over (see above). */
int crew__slock_lock(_Atomic uint32_t *word, crew__slock_local *me);
void crew__slock_unlock(_Atomic uint32_t *word, crew__slock_local *me);

/*
 * With the lock held: sleep on `wake` (a word bumped by every wake-up)
 * until woken, 100 ms pass or `d`, and relock. Returns 0 (recheck),
 * CREW_ETIMEDOUT or CREW__OWNER_DIED (relocked by a take-over).
 */
int crew__slock_wait(_Atomic uint32_t *wake, _Atomic uint32_t *word,
                     crew__slock_local *me, crew__deadline d);

/* Wake up to n sleepers of `wake` (SIZE_MAX: all). */
void crew__slock_wake(_Atomic uint32_t *wake, size_t n);
#endif

#endif /* CREW_SYNC_H */
