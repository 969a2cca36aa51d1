/*
 * crew/testhook.h - test-only hooks, for crew's own fault tests. Not
 * installed and not part of <crew.h>: the functions below exist only in a
 * library configured with --enable-test-hooks, and a release build has none
 * of them (the hook points compile to nothing).
 *
 * A hook is one function the library calls at named protocol points: around
 * its locks and waits, where items enter and leave queues, where a result is
 * published, and before every allocation, thread start, mapping and fork.
 * The hook may yield, sleep or end the process (to put a fault at an exact
 * step); at the points marked "can fail" it may also return a negative
 * CREW_E* code, and the library then behaves as if that call had failed.
 */
#ifndef CREW_TESTHOOK_H
#define CREW_TESTHOOK_H

#include <crew/common.h>

#ifdef __cplusplus
extern "C" {
#endif

enum crew_test_point {
  CREW_TP_LOCK = 1,    /* before taking a library mutex */
  CREW_TP_UNLOCK,      /* before releasing one */
  CREW_TP_WAIT,        /* before blocking on a wait set (lock held) */
  CREW_TP_WAKE,        /* before signalling or broadcasting a wait set */
  CREW_TP_ENQUEUE,     /* an item was written into a queue (lock held) */
  CREW_TP_DEQUEUE,     /* an item was read out of a queue (lock held) */
  CREW_TP_PUBLISH,     /* a future is about to be resolved */
  CREW_TP_ALLOC,       /* can fail: before every heap allocation */
  CREW_TP_THREAD,      /* can fail: before starting a thread */
  CREW_TP_MAP,         /* can fail: before mapping shared memory */
  CREW_TP_FORK,        /* can fail: before fork() */
  CREW_TP_PROC_CLAIM,  /* process worker: took a task off the shared queue */
  CREW_TP_PROC_RUN,    /* process worker: about to call the task */
  CREW_TP_PROC_RESULT, /* process worker: result written, not yet posted */
  CREW_TP_PROC_POST    /* process worker: completion posted */
};

/*
 * The hook: called with the point and the object concerned (a queue, a
 * future, a size in bytes for CREW_TP_ALLOC as (const void *)(uintptr_t)n,
 * or NULL). Return 0 to go on; at a point that can fail, a negative CREW_E*
 * code makes that call fail with it (CREW_ENOMEM is what a real failure of
 * any of them gives).
 */
typedef int crew_test_hook_fn(enum crew_test_point point, const void *object,
                              void *arg);

/*
 * Install `fn` (NULL: none) for the whole process. Returns 0. (A library
 * built without test hooks does not have this function at all.) Not for
 * production: the hook is one process-wide pointer, read with an atomic load
 * at each point; install it while no pool is running. Children forked after
 * the call (a process pool's workers) inherit it.
 */
CREW_API int crew_test_hook_set(crew_test_hook_fn *fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif
