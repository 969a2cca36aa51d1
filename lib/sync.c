/*
 * sync.c - the out-of-line half of sync.h: making mutexes and condition
 * variables, timed waits, threads, CPU count and fork guards.
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
 *  - Where there are no futexes (see sync.h), shared queues use robust,
 *    process-shared mutexes and process-shared condition variables, made
 *    here too.
 */
#include "config.h"

#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef CREW_DEBUG
_Thread_local char crew__self_tag;
#endif

crew__deadline crew__deadline_after(uint64_t timeout_ns)
{
  uint64_t now = crew__now_ns();
  if (timeout_ns >= CREW__NEVER - now) /* saturate: still finite */
    return (crew__deadline){CREW__NEVER - 1};
  return (crew__deadline){now + timeout_ns};
}

/* ----------------------------------------------------- mutex, condition */

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

#ifndef CREW__FUTEX
int crew__mutex_init_shared(crew__mutex *mu)
{
  return mutex_init(mu, true);
}

int crew__cond_init_shared(crew__cond *cv)
{
  return cond_init(cv, true);
}

int crew__mutex_lock_robust(crew__mutex *mu)
{
  /* No held-assert: a thread of another process, forked from ours, has the
   * same thread-local address, so the owner record cannot tell. */
  (void)CREW__HOOK(CREW_TP_LOCK, mu);
  int rc = pthread_mutex_lock(&mu->m);
  crew__mutex_owned(mu, true);
  return rc == EOWNERDEAD ? CREW__OWNER_DIED : 0;
}

void crew__mutex_consistent(crew__mutex *mu)
{
#ifdef HAVE_PTHREAD_MUTEX_CONSISTENT
  pthread_mutex_consistent(&mu->m);
#else
  (void)mu;
#endif
}
#endif

/* The deadline as the absolute time pthread_cond_timedwait() expects. */
static struct timespec deadline_timespec(crew__deadline d)
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
  crew__mutex_owned(mu, false);
  int rc;
  if (d.at == CREW__NEVER) {
    rc = pthread_cond_wait(&cv->c, &mu->m);
  } else {
    struct timespec ts = deadline_timespec(d);
    rc = pthread_cond_timedwait(&cv->c, &mu->m, &ts);
  }
  crew__mutex_owned(mu, true);
  if (rc == EOWNERDEAD) /* a robust mutex whose owner died */
    return CREW__OWNER_DIED;
  return rc == ETIMEDOUT ? CREW_ETIMEDOUT : 0;
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

/* ------------------------------------------------------------ fork guard */

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
