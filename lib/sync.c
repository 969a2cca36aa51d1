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

crew__deadline crew__deadline_in(uint64_t timeout_ns)
{
  if (timeout_ns == 0)
    return (crew__deadline){0};
  if (timeout_ns == UINT64_MAX)
    return (crew__deadline){CREW__NEVER};
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

int crew__mutex_init(crew__mutex *mu)
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
  int rc = pthread_mutex_init(&mu->m, &attr);
  pthread_mutexattr_destroy(&attr);
  return rc == 0 ? 0 : CREW_ENOMEM;
}

void crew__mutex_destroy(crew__mutex *mu)
{
  crew__assert(atomic_load(&mu->owner) == NULL);
  pthread_mutex_destroy(&mu->m);
}

void crew__mutex_lock(crew__mutex *mu)
{
  crew__assert(!crew__mutex_held(mu));
  pthread_mutex_lock(&mu->m);
#ifdef CREW_DEBUG
  atomic_store_explicit(&mu->owner, &crew__self_tag, memory_order_relaxed);
#endif
}

void crew__mutex_unlock(crew__mutex *mu)
{
  crew__assert_held(mu);
#ifdef CREW_DEBUG
  atomic_store_explicit(&mu->owner, NULL, memory_order_relaxed);
#endif
  pthread_mutex_unlock(&mu->m);
}

/* ------------------------------------------------------------- condition */

int crew__cond_init(crew__cond *cv)
{
  pthread_condattr_t attr;
  if (pthread_condattr_init(&attr) != 0)
    return CREW_ENOMEM;
#ifdef HAVE_PTHREAD_CONDATTR_SETCLOCK
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
#endif
  int rc = pthread_cond_init(&cv->c, &attr);
  pthread_condattr_destroy(&attr);
  return rc == 0 ? 0 : CREW_ENOMEM;
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
  return rc == ETIMEDOUT ? CREW_ETIMEDOUT : 0;
}

/* ---------------------------------------------------------------- threads */

int crew__thread_start(crew__thread *th, void *(*fn)(void *), void *arg)
{
  /* The new thread inherits the creator's signal mask: block everything for
   * the moment of creation, then restore the caller's mask. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&th->t, NULL, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc == 0 ? 0 : CREW_ENOMEM;
}

void crew__thread_join(crew__thread *th)
{
  pthread_join(th->t, NULL);
}

void crew__thread_set_name(const char *name)
{
#ifdef HAVE_PTHREAD_SETNAME_NP
  char buf[16];
  snprintf(buf, sizeof buf, "%s", name);
  pthread_setname_np(pthread_self(), buf);
#else
  (void)name;
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
