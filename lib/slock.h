/*
 * slock.h - a lock and wait words for memory shared with untrusted
 * processes (see slock.c). Used by the shared queue only.
 */
#ifndef CREW_SLOCK_H
#define CREW_SLOCK_H

#include "internal.h"

#include <unistd.h>

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
 *    or is claiming it (garbage) is taken over the same way; a thread of
 *    this process that holds it is never taken over, however long it
 *    holds it (threads do not die alone);
 *  - a word naming the same other, live process through 2 s of slices in
 *    which it neither changed nor woke the waiter is taken over too (a
 *    holder's critical section is a few instructions: it has died in all
 *    but name, is stopped, or the word is garbage). A stopped holder that
 *    resumes finds the lock gone and releases nothing.
 * Threads of one process are told apart through the process's own
 * crew__slock_local, kept in private memory beside its handle.
 */
#define CREW__SLOCK 1

typedef struct crew__slock_local {
  crew__fork_guard guard; /* refreshes `pid` in a forked child */
  uint32_t pid;
  _Atomic uint32_t inside; /* this process's threads holding or claiming */
} crew__slock_local;

static inline void crew__slock_local_init(crew__slock_local *me)
{
  crew__fork_guard_init(&me->guard);
  me->pid = (uint32_t)getpid();
  atomic_init(&me->inside, 0);
}

static inline void crew__slock_local_fini(crew__slock_local *me)
{
  crew__fork_guard_fini(&me->guard);
}

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

#endif /* CREW_SLOCK_H */
