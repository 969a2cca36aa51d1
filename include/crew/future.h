/*
 * crew/future.h - the result of one submitted task (Python's
 * concurrent.futures.Future, for C).
 *
 * A successful crew_submit() with a non-NULL `future` argument gives the
 * caller a future holding one reference. The future resolves exactly once:
 *  - completed: the task ran; its status is what the task function returned
 *    (0 or the task's own positive code) and its output bytes are kept;
 *  - cancelled: it never ran (crew_future_cancel(), or a pool shut down with
 *    CREW_CANCEL); its status is CREW_ECANCELED;
 *  - and, for process workers, crashed (CREW_ECRASHED) or killed at its
 *    deadline (CREW_EDEADLINE).
 *
 * Ownership: the caller releases its reference exactly once with
 * crew_future_release(), before or after the future resolves. A released,
 * unresolved task still runs. A future stays valid after its pool is
 * destroyed, until released.
 *
 * Thread safety: every function may be called from any thread at once on the
 * same future, except that crew_future_release() must be the caller's last
 * call on it (other threads may still hold no reference of their own: the
 * reference is the caller's).
 *
 * Waiting from inside a task: a task may wait on futures of its own pool
 * (crew_future_wait(), _get(), crew_wait_any(), crew_wait_all()) without
 * deadlock, even with one worker: when a worker waits on a future whose task
 * is still queued, it takes that task and runs it itself. It never runs a
 * task it is not waiting for, so waiting cannot tangle unrelated tasks.
 */
#ifndef CREW_FUTURE_H
#define CREW_FUTURE_H

#include <crew/common.h>

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crew_future crew_future;

/* A done callback: gets the future and the arg given to crew_future_on_done. */
typedef void (*crew_done_fn)(crew_future *f, void *arg);

/*
 * crew_future_wait - block until the future resolves.
 *
 * Returns the task's status if it ran (0 or the task's own positive code;
 * a task that returns one of crew's negative codes has it passed on), or
 * CREW_ECANCELED, CREW_ECRASHED, CREW_EDEADLINE; CREW_EINVAL for NULL.
 * Allocates nothing.
 */
CREW_API int crew_future_wait(crew_future *f);

/*
 * crew_future_wait_timed - crew_future_wait() for at most timeout_ns.
 * Returns as crew_future_wait(), or CREW_ETIMEDOUT only if the future is
 * still unresolved when the time runs out. Timeout 0 polls.
 */
CREW_API int crew_future_wait_timed(crew_future *f, uint64_t timeout_ns);

/*
 * crew_future_get - wait, then copy the first out_size bytes of the task's
 * output to `out` if the task ran.
 *
 * out_size may be smaller than the task's out_size (a prefix is copied) but
 * not larger: that returns CREW_EINVAL at once, without waiting. out may be
 * NULL only with out_size 0. If the task did not run (cancelled, crashed,
 * killed) `out` is left untouched. Returns as crew_future_wait().
 */
CREW_API int crew_future_get(crew_future *f, void *out, size_t out_size);

/*
 * crew_future_get_timed - crew_future_get() waiting at most timeout_ns;
 * CREW_ETIMEDOUT (out untouched) if the future is still unresolved then.
 */
CREW_API int crew_future_get_timed(crew_future *f, void *out, size_t out_size,
                                   uint64_t timeout_ns);

/*
 * crew_future_done - whether the future has resolved (in any way). Never
 * blocks; false for NULL.
 */
CREW_API bool crew_future_done(const crew_future *f);

/*
 * crew_future_status - the status crew_future_wait() would return, without
 * waiting: CREW_EBUSY while the future is unresolved, CREW_EINVAL for NULL.
 */
CREW_API int crew_future_status(const crew_future *f);

/* How the worker process that ran a failed task ended (crew_future_exit). */
typedef struct crew_exit {
  pid_t pid; /* the worker process that ran the task */
  int code;  /* its exit status 0..255, or -signal if a signal ended it */
} crew_exit;

/*
 * crew_future_exit - how the worker process died under a task: for a future
 * that resolved CREW_ECRASHED or CREW_EDEADLINE because its worker ended,
 * fill *e with the worker's pid and its exit status (0..255) or -N if
 * signal N ended it (a deadline kill reads -SIGKILL), and return 0.
 *
 * Returns CREW_EINVAL, leaving *e untouched, for a future not resolved, one
 * that completed or was cancelled, any future of a thread pool, f or e
 * NULL, and a task crew settled as lost without a worker's death to tell
 * of: its pool broke (the fork server died, a shared queue was found
 * corrupt, no worker could start) or its worker reported nonsense. Never
 * blocks. The answer stays readable after the pool is destroyed, until the
 * future is released.
 */
CREW_API int crew_future_exit(const crew_future *f, crew_exit *e);

/*
 * crew_future_cancel - cancel the task if it has not started.
 *
 * Returns 0 if the task was queued and now never runs: the future resolves
 * with CREW_ECANCELED and its done callbacks run in this call, on this
 * thread. Returns CREW_EBUSY if the task is running or the future already
 * resolved (a running task is never interrupted), CREW_EINVAL for NULL.
 * Never blocks beyond a short internal lock and running the callbacks.
 * In thread mode the cancelled task keeps its queue slot until a worker
 * reaches it and drops it, so it still counts against queue_capacity (and
 * in crew_pool_stats().queued) until then.
 */
CREW_API int crew_future_cancel(crew_future *f);

/*
 * crew_future_on_done - call cb(f, arg) once when the future resolves.
 *
 * Callbacks of one future run exactly once each, in the order they were
 * added, on the thread that resolves the future (a worker, or a thread that
 * cancels), never with a crew lock held: a callback may submit, wait on
 * other futures, cancel, or release f. If the future has already resolved
 * and its earlier callbacks have run, cb runs at once, in this call;
 * otherwise it runs after them, on the resolving thread.
 *
 * In a process pool, futures of tasks that ran (or whose worker died) are
 * resolved by the pool's manager thread (NAME-mgr), and their callbacks run
 * on the pool's callback thread (NAME-cb), one future after the other in the
 * order they resolved: the future is resolved, and its waiters woken, before
 * its callbacks run, and a callback may wait on other futures of the pool,
 * submit to it even while it is full, or shut it down (CREW_EBUSY, as from a
 * task) without holding up the pool.
 *
 * The callback may use f until it returns, even if every reference was
 * released meanwhile. Returns 0, CREW_EINVAL (f or cb NULL) or CREW_ENOMEM
 * (cb will never run).
 */
CREW_API int crew_future_on_done(crew_future *f, crew_done_fn cb, void *arg);

/*
 * crew_wait_any - wait at most timeout_ns until at least one of the n
 * futures in fs has resolved, and set *index to it (the lowest index if
 * several have).
 *
 * Returns 0, CREW_ETIMEDOUT (none resolved in time; *index untouched),
 * CREW_EINVAL (fs or index NULL, n 0, a NULL entry) or CREW_ENOMEM. Returns 0
 * whatever the resolved task's own status is.
 */
CREW_API int crew_wait_any(crew_future *const *fs, size_t n,
                           uint64_t timeout_ns, size_t *index);

/*
 * crew_wait_all - wait at most timeout_ns until all n futures in fs have
 * resolved.
 *
 * Returns 0 when all have resolved, whatever their statuses; CREW_ETIMEDOUT
 * if time ran out first; CREW_EINVAL (fs NULL, n 0, a NULL entry).
 * Allocates nothing.
 */
CREW_API int crew_wait_all(crew_future *const *fs, size_t n,
                           uint64_t timeout_ns);

/*
 * crew_future_release - give up the caller's reference. The future's memory
 * is freed once it has resolved, its callbacks have run and no reference is
 * left. NULL is a no-op. Never blocks.
 */
CREW_API void crew_future_release(crew_future *f);

#ifdef __cplusplus
}
#endif

#endif /* CREW_FUTURE_H */
