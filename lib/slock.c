/*
 * slock.c - a lock for memory shared with processes that may die at any
 * moment or write garbage over it (a CREW_SHARED queue's state), and its
 * wait words: futexes, never pthread objects (see slock.h for why and for
 * the take-over rules).
 *
 * The lock word is 0 when free, else the holder's pid, with bit 31 set while
 * others may sleep on it. A locker spins a little, then sleeps on the word
 * in 10 ms slices; after each slice it looks whether the holder can still
 * release it, and takes it over if not. Wait words only count wake-ups:
 * a waiter reads one, drops the lock, and sleeps while it is unchanged.
 */
#include "config.h"

#include "slock.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <unistd.h>

#ifdef CREW__SLOCK
/* The longest a shared wait sleeps before it looks again (see below). */
#define SHARED_SLICE_NS (100 * 1000000ull)

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

#define SLOCK_WAITERS  0x80000000u
#define SLOCK_PID      0x7fffffffu
#define SLOCK_SLICE_NS (10 * 1000000ull)
#define SLOCK_STALE_NS (2000 * 1000000ull)
#define SLOCK_SPINS    100

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
  if (owner == self) /* garbage, unless a thread of ours holds or claims it */
    return atomic_load(&me->inside) == 0;
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

/*
 * Word v -> want, counted in `inside` first: a thread of this process that
 * sees the word name its process, and `inside` at 0 after it (both
 * sequentially consistent), knows that no thread of the process holds the
 * lock or is about to.
 */
static bool claim(_Atomic uint32_t *word, crew__slock_local *me, uint32_t v,
                  uint32_t want)
{
  atomic_fetch_add(&me->inside, 1);
  if (atomic_compare_exchange_strong(word, &v, want))
    return true;
  atomic_fetch_sub(&me->inside, 1);
  return false;
}

int crew__slock_lock(_Atomic uint32_t *word, crew__slock_local *me)
{
  uint32_t self = slock_self(me);
  (void)CREW__HOOK(CREW_TP_LOCK, word);
  if (claim(word, me, 0, self))
    return 0;
  uint32_t stale = 0;
  uint64_t stale_since = 0;
  for (unsigned spins = 0;; spins++) {
    uint32_t v = atomic_load(word);
    if ((v & SLOCK_PID) == 0) { /* free; keep the waiters bit: others sleep */
      if (claim(word, me, v, self | SLOCK_WAITERS))
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
    if (futex_wait(word, v, crew__deadline_in(SLOCK_SLICE_NS)) == 0) {
      stale = 0; /* woken, or the word changed: the holder moves on */
      continue;
    }
    /* A slice passed with the word unchanged. A thread of this process
     * that holds the lock is alive (threads do not die alone): only
     * another process's hold can go stale. */
    uint32_t owner = v & SLOCK_PID;
    uint64_t now = crew__now_ns();
    if (owner != stale) {
      stale = owner;
      stale_since = now;
    }
    if (atomic_load(word) == v &&
        (holder_gone(owner, self, me) ||
         (owner != self && now - stale_since >= SLOCK_STALE_NS)) &&
        claim(word, me, v, self | SLOCK_WAITERS))
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
  atomic_fetch_sub(&me->inside, 1);
}

int crew__slock_wait(_Atomic uint32_t *wake, _Atomic uint32_t *word,
                     crew__slock_local *me, crew__deadline d)
{
  (void)CREW__HOOK(CREW_TP_WAIT, wake);
  if (d.at != CREW__NEVER && crew__deadline_passed(d))
    return CREW_ETIMEDOUT;
  /* Wakers bump `wake` with the lock held, and a sleep lasts one slice at
   * most. */
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
