/*
 * sync.c - mutexes, monotonic condition variables, deadlines, threads and
 * fork detection: the one file of crew that calls pthreads.
 *
 * Invariants:
 *  - Every condition variable waits on CLOCK_MONOTONIC
 *    (pthread_condattr_setclock), so deadlines are immune to wall-clock
 *    jumps. A deadline is computed once by the caller; waits never recompute
 *    it, so spurious wake-ups cannot stretch a wait.
 *  - A "never" deadline waits with pthread_cond_wait: no timespec arithmetic
 *    that could overflow.
 *  - With CREW_DEBUG, a mutex records its holder so callers can assert lock
 *    ownership (crew__assert_held); the record is an atomic pointer to a
 *    thread-local byte, written by the holder only.
 *  - Shared objects (for MAP_SHARED memory): mutexes are process-shared and
 *    robust, and wait sets sleep on a futex word that only counts wake-ups,
 *    so a process that dies holding the lock or while waiting leaves nothing
 *    the others wait on forever.
 */
#include "config.h"

#include "sync.h"

#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* --------------------------------------------------------------- deadlines */

uint64_t crew__now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

crew__deadline crew__deadline_after(uint64_t timeout_ns)
{
  uint64_t now = crew__now_ns();
  if (timeout_ns >= CREW__NEVER - now) /* saturate: still finite */
    return (crew__deadline){CREW__NEVER - 1};
  return (crew__deadline){now + timeout_ns};
}

bool crew__deadline_passed(crew__deadline d)
{
  if (d.at == CREW__NEVER)
    return false;
  return d.at == 0 || crew__now_ns() >= d.at;
}

/* ------------------------------------------------------------------ mutex */

#ifdef CREW_DEBUG
static _Thread_local char crew__self_tag; /* this thread's identity */

bool crew__mutex_held(const crew__mutex *mu)
{
  return atomic_load_explicit(&mu->owner, memory_order_relaxed) ==
         &crew__self_tag;
}
#endif

static int mutex_init(crew__mutex *mu, bool shared)
{
#ifdef CREW_DEBUG
  atomic_init(&mu->owner, NULL);
#endif
  pthread_mutexattr_t attr;
  if (pthread_mutexattr_init(&attr) != 0)
    return CREW_ENOMEM;
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
  /* glibc: spin briefly before sleeping. crew's critical sections are a few
   * dozen instructions, and a contended queue lock that sleeps at once costs
   * a futex wait and wake per hand-off (the submit benchmark ran at half
   * the speed with a plain mutex). */
  pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
  int rc = 0;
  if (shared) {
    rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
#ifdef HAVE_PTHREAD_MUTEXATTR_SETROBUST
    if (rc == 0)
      rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
#endif
  }
  if (rc == 0)
    rc = pthread_mutex_init(&mu->m, &attr);
  pthread_mutexattr_destroy(&attr);
  return rc == 0 ? 0 : CREW_ENOMEM;
}

int crew__mutex_init(crew__mutex *mu)
{
  return mutex_init(mu, false);
}

int crew__mutex_init_shared(crew__mutex *mu)
{
  return mutex_init(mu, true);
}

void crew__mutex_destroy(crew__mutex *mu)
{
  /* No owner check: a shared mutex's owner may have died holding it. */
  pthread_mutex_destroy(&mu->m);
}

void crew__mutex_lock(crew__mutex *mu)
{
  crew__assert(!crew__mutex_held(mu));
  (void)CREW__HOOK(CREW_TP_LOCK, mu);
  pthread_mutex_lock(&mu->m);
#ifdef CREW_DEBUG
  atomic_store_explicit(&mu->owner, &crew__self_tag, memory_order_relaxed);
#endif
}

int crew__mutex_lock_robust(crew__mutex *mu)
{
  /* No held-assert: a thread of another process, forked from ours, has the
   * same thread-local address, so the owner record cannot tell. */
  (void)CREW__HOOK(CREW_TP_LOCK, mu);
  int rc = pthread_mutex_lock(&mu->m);
#ifdef CREW_DEBUG
  atomic_store_explicit(&mu->owner, &crew__self_tag, memory_order_relaxed);
#endif
  return rc == EOWNERDEAD ? CREW__OWNER_DIED : 0;
}

void crew__mutex_consistent(crew__mutex *mu)
{
  crew__assert_held(mu);
#ifdef HAVE_PTHREAD_MUTEX_CONSISTENT
  pthread_mutex_consistent(&mu->m);
#else
  (void)mu;
#endif
}

void crew__mutex_unlock(crew__mutex *mu)
{
  crew__assert_held(mu);
  (void)CREW__HOOK(CREW_TP_UNLOCK, mu);
#ifdef CREW_DEBUG
  atomic_store_explicit(&mu->owner, NULL, memory_order_relaxed);
#endif
  pthread_mutex_unlock(&mu->m);
}

/* ------------------------------------------------------------- condition */

/* A condition variable on CLOCK_MONOTONIC, process-shared if asked. */
static int cond_init(crew__cond *cv, bool shared)
{
  pthread_condattr_t attr;
  if (pthread_condattr_init(&attr) != 0)
    return CREW_ENOMEM;
#ifdef HAVE_PTHREAD_CONDATTR_SETCLOCK
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
#endif
  if (shared)
    pthread_condattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  int rc = pthread_cond_init(&cv->c, &attr);
  pthread_condattr_destroy(&attr);
  return rc == 0 ? 0 : CREW_ENOMEM;
}

int crew__cond_init(crew__cond *cv)
{
  return cond_init(cv, false);
}

void crew__cond_destroy(crew__cond *cv)
{
  pthread_cond_destroy(&cv->c);
}

void crew__cond_signal(crew__cond *cv)
{
  pthread_cond_signal(&cv->c);
}

void crew__cond_broadcast(crew__cond *cv)
{
  pthread_cond_broadcast(&cv->c);
}

/* The deadline as the absolute time pthread_cond_timedwait() expects. */
static struct timespec crew__deadline_timespec(crew__deadline d)
{
  uint64_t at = d.at;
#ifndef HAVE_PTHREAD_CONDATTR_SETCLOCK
  /* The condvar waits on CLOCK_REALTIME: move the deadline there. */
  struct timespec real;
  clock_gettime(CLOCK_REALTIME, &real);
  uint64_t now = crew__now_ns();
  uint64_t left = at > now ? at - now : 0;
  at = (uint64_t)real.tv_sec * 1000000000u + (uint64_t)real.tv_nsec + left;
#endif
  return (struct timespec){.tv_sec = (time_t)(at / 1000000000u),
                           .tv_nsec = (long)(at % 1000000000u)};
}

int crew__cond_wait(crew__cond *cv, crew__mutex *mu, crew__deadline d)
{
  crew__assert_held(mu);
  if (d.at != CREW__NEVER && crew__deadline_passed(d))
    return CREW_ETIMEDOUT;
#ifdef CREW_DEBUG
  atomic_store_explicit(&mu->owner, NULL, memory_order_relaxed);
#endif
  int rc;
  if (d.at == CREW__NEVER) {
    rc = pthread_cond_wait(&cv->c, &mu->m);
  } else {
    struct timespec ts = crew__deadline_timespec(d);
    rc = pthread_cond_timedwait(&cv->c, &mu->m, &ts);
  }
#ifdef CREW_DEBUG
  atomic_store_explicit(&mu->owner, &crew__self_tag, memory_order_relaxed);
#endif
  if (rc == EOWNERDEAD) /* a robust mutex whose owner died */
    return CREW__OWNER_DIED;
  return rc == ETIMEDOUT ? CREW_ETIMEDOUT : 0;
}

void crew__spin_yield(void)
{
  sched_yield();
}

/* --------------------------------------------------------------- wait sets */

/* The longest a shared wait sleeps before it looks again (see below). */
#define SHARED_SLICE_NS (100 * 1000000ull)

#ifdef CREW__SLOCK
#include <linux/futex.h>
#include <sys/syscall.h>

/* Sleep while *word == seen, until woken or the monotonic deadline. */
static int futex_wait(_Atomic uint32_t *word, uint32_t seen, crew__deadline d)
{
  struct timespec ts, *abs = NULL;
  if (d.at != CREW__NEVER) {
    ts = (struct timespec){.tv_sec = (time_t)(d.at / 1000000000u),
                           .tv_nsec = (long)(d.at % 1000000000u)};
    abs = &ts;
  }
  /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time. Shared (no
   * FUTEX_PRIVATE_FLAG): the word is in memory other processes map. */
  long rc = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, seen, abs, NULL,
                    FUTEX_BITSET_MATCH_ANY);
  return rc == -1 && errno == ETIMEDOUT ? CREW_ETIMEDOUT : 0;
}

static void futex_wake(_Atomic uint32_t *word, int n)
{
  syscall(SYS_futex, word, FUTEX_WAKE, n, NULL, NULL, 0);
}
#endif

int crew__waitset_init(crew__waitset *ws, bool shared)
{
  return cond_init(&ws->cond, shared);
}

void crew__waitset_destroy(crew__waitset *ws)
{
  crew__cond_destroy(&ws->cond);
}

int crew__waitset_wait(crew__waitset *ws, crew__mutex *mu, crew__deadline d)
{
  (void)CREW__HOOK(CREW_TP_WAIT, ws);
  return crew__cond_wait(&ws->cond, mu, d);
}

void crew__waitset_wake(crew__waitset *ws, size_t n)
{
  if (n == 0)
    return;
  (void)CREW__HOOK(CREW_TP_WAKE, ws);
  for (size_t i = 0; i < n; i++)
    crew__cond_signal(&ws->cond);
}

void crew__waitset_wake_all(crew__waitset *ws)
{
  (void)CREW__HOOK(CREW_TP_WAKE, ws);
  crew__cond_broadcast(&ws->cond);
}

/* ---------------------------------------------------------------- threads */

int crew__thread_start(crew__thread *th, void *(*fn)(void *), void *arg)
{
  /* The new thread inherits the creator's signal mask: block everything for
   * the moment of creation, then restore the caller's mask. The signals of
   * a thread's own faults stay open: a task that crashes (or raises them)
   * must get their default action, not a pending signal and a return. */
  if (CREW__HOOK(CREW_TP_THREAD, arg) != 0)
    return CREW_ENOMEM;
  sigset_t all, old;
  sigfillset(&all);
  static const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL,
                               SIGTRAP, SIGSYS, SIGABRT};
  for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
    sigdelset(&all, faults[i]);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&th->t, NULL, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc == 0 ? 0 : CREW_ENOMEM;
}

void crew__thread_join(crew__thread *th)
{
  pthread_join(th->t, NULL);
}

void crew__thread_set_name(const char *prefix, const char *suffix)
{
  /* Linux keeps 15 bytes: cut the prefix, never the suffix (the index). */
  char name[16];
  size_t len = strlen(suffix) < 15 ? strlen(suffix) : 15;
  size_t keep = strlen(prefix);
  if (keep > 15 - len)
    keep = 15 - len;
  memcpy(name, prefix, keep);
  memcpy(name + keep, suffix, len);
  name[keep + len] = '\0';
#ifdef HAVE_PTHREAD_SETNAME_NP
  pthread_setname_np(pthread_self(), name);
#endif
}

size_t crew__cpu_count(void)
{
#if defined(HAVE_SCHED_GETAFFINITY) && HAVE_DECL_CPU_COUNT
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0)
      return (size_t)n;
  }
#endif
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (size_t)n : 1;
}

size_t crew__thread_limit(void)
{
  struct rlimit rl;
  if (getrlimit(RLIMIT_NPROC, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
    return SIZE_MAX;
  /* The limit counts the user's threads in every process; it is only an
   * upper bound for this one. */
  return rl.rlim_cur > SIZE_MAX ? SIZE_MAX : (size_t)rl.rlim_cur;
}

/* ------------------------------------------------------------ fork guard */

#define CREW__FORK_MARK 0x63726577u /* "crew" */

void crew__fork_guard_init(crew__fork_guard *g)
{
  g->page = NULL;
  g->pid = getpid();
#if HAVE_DECL_MADV_WIPEONFORK
  long size = sysconf(_SC_PAGESIZE);
  void *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return;
  if (madvise(p, (size_t)size, MADV_WIPEONFORK) != 0) {
    munmap(p, (size_t)size); /* an older kernel: fall back to getpid() */
    return;
  }
  g->page = p;
  *g->page = CREW__FORK_MARK;
#endif
}

void crew__fork_guard_fini(crew__fork_guard *g)
{
  if (g->page != NULL)
    munmap((void *)g->page, (size_t)sysconf(_SC_PAGESIZE));
  g->page = NULL;
}

bool crew__fork_guard_same_process(const crew__fork_guard *g)
{
  if (g->page != NULL)
    return *g->page == CREW__FORK_MARK;
  return getpid() == g->pid;
}

void crew__fork_guard_rearm(crew__fork_guard *g)
{
  g->pid = getpid();
  if (g->page != NULL)
    *g->page = CREW__FORK_MARK;
}

/* ------------------------------------------------- lock in untrusted memory */

#ifdef CREW__SLOCK

#define SLOCK_WAITERS  0x80000000u
#define SLOCK_PID      0x7fffffffu
#define SLOCK_SLICE_NS (10 * 1000000ull)
#define SLOCK_STALE_NS (2000 * 1000000ull)
#define SLOCK_SPINS    100

int crew__slock_local_init(crew__slock_local *me)
{
  crew__fork_guard_init(&me->guard);
  me->pid = (uint32_t)getpid();
  atomic_init(&me->inside, 0);
  return 0;
}

void crew__slock_local_fini(crew__slock_local *me)
{
  crew__fork_guard_fini(&me->guard);
}

/* The calling process's record: a forked child starts a fresh one. */
static uint32_t slock_self(crew__slock_local *me)
{
  if (!crew__fork_guard_same_process(&me->guard)) {
    crew__fork_guard_rearm(&me->guard);
    me->pid = (uint32_t)getpid();
    atomic_store(&me->inside, 0);
  }
  return me->pid;
}

/* Whether a process named by a lock word can no longer release it. */
static bool holder_gone(uint32_t owner, uint32_t self, crew__slock_local *me)
{
  if (owner == self) /* garbage, unless another thread of ours holds it */
    return atomic_load(&me->inside) <= 1;
  if (owner > (uint32_t)INT32_MAX)
    return true;
  if (kill((pid_t)owner, 0) != 0 && errno == ESRCH)
    return true;
  char path[40], buf[256];
  snprintf(path, sizeof path, "/proc/%u/stat", owner);
  FILE *f = fopen(path, "re");
  if (f == NULL)
    return false;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *paren = strrchr(buf, ')');
  return paren != NULL && (paren[2] == 'Z' || paren[2] == 'X');
}

int crew__slock_lock(_Atomic uint32_t *word, crew__slock_local *me)
{
  uint32_t self = slock_self(me);
  (void)CREW__HOOK(CREW_TP_LOCK, word);
  atomic_fetch_add_explicit(&me->inside, 1, memory_order_acq_rel);
  uint32_t v = 0;
  if (atomic_compare_exchange_strong_explicit(
          word, &v, self, memory_order_acquire, memory_order_relaxed))
    return 0;
  uint32_t stale = 0;
  uint64_t stale_since = 0;
  for (unsigned spins = 0;; spins++) {
    v = atomic_load_explicit(word, memory_order_relaxed);
    if ((v & SLOCK_PID) == 0) { /* free; keep the waiters bit: others sleep */
      if (atomic_compare_exchange_strong_explicit(
              word, &v, self | SLOCK_WAITERS, memory_order_acquire,
              memory_order_relaxed))
        return 0;
      continue;
    }
    if (spins < SLOCK_SPINS) {
      crew__cpu_relax();
      continue;
    }
    if (!(v & SLOCK_WAITERS) && !atomic_compare_exchange_strong_explicit(
                                    word, &v, v | SLOCK_WAITERS,
                                    memory_order_relaxed, memory_order_relaxed))
      continue;
    v |= SLOCK_WAITERS;
    if (futex_wait(word, v, crew__deadline_in(SLOCK_SLICE_NS)) == 0)
      continue; /* woken, or the word changed */
    uint32_t owner = v & SLOCK_PID;
    uint64_t now = crew__now_ns();
    if (owner != stale) {
      stale = owner;
      stale_since = now;
    }
    if (atomic_load_explicit(word, memory_order_relaxed) == v &&
        (holder_gone(owner, self, me) || now - stale_since >= SLOCK_STALE_NS) &&
        atomic_compare_exchange_strong_explicit(word, &v, self | SLOCK_WAITERS,
                                                memory_order_acquire,
                                                memory_order_relaxed))
      return CREW__OWNER_DIED;
  }
}

void crew__slock_unlock(_Atomic uint32_t *word, crew__slock_local *me)
{
  (void)CREW__HOOK(CREW_TP_UNLOCK, word);
  uint32_t self = me->pid;
  uint32_t v = atomic_load_explicit(word, memory_order_relaxed);
  while ((v & SLOCK_PID) == self) {
    if (atomic_compare_exchange_weak_explicit(word, &v, 0, memory_order_release,
                                              memory_order_relaxed)) {
      if (v & SLOCK_WAITERS)
        futex_wake(word, 1);
      break;
    }
  }
  /* Else it was taken over (we were stopped, or it was scribbled on). */
  atomic_fetch_sub_explicit(&me->inside, 1, memory_order_acq_rel);
}

int crew__slock_wait(_Atomic uint32_t *wake, _Atomic uint32_t *word,
                     crew__slock_local *me, crew__deadline d)
{
  (void)CREW__HOOK(CREW_TP_WAIT, wake);
  if (d.at != CREW__NEVER && crew__deadline_passed(d))
    return CREW_ETIMEDOUT;
  /* As crew__waitset_wait's shared kind: wakers bump `wake` with the lock
   * held, and a sleep lasts one slice at most. */
  uint32_t seen = atomic_load_explicit(wake, memory_order_relaxed);
  crew__deadline slice = crew__deadline_in(SHARED_SLICE_NS);
  bool sliced = slice.at < d.at;
  crew__slock_unlock(word, me);
  int rc = futex_wait(wake, seen, sliced ? slice : d);
  if (sliced && rc == CREW_ETIMEDOUT)
    rc = 0;
  if (crew__slock_lock(word, me) == CREW__OWNER_DIED)
    return CREW__OWNER_DIED;
  return rc;
}

void crew__slock_wake(_Atomic uint32_t *wake, size_t n)
{
  if (n == 0)
    return;
  (void)CREW__HOOK(CREW_TP_WAKE, wake);
  atomic_fetch_add_explicit(wake, 1, memory_order_release);
  futex_wake(wake, n > INT32_MAX ? INT32_MAX : (int)n);
}
#endif
