/*
 * crew/imap.h - a map over input of any length, with a bounded window of
 * work in flight (Python's Pool.imap and imap_unordered, and
 * Executor.map(..., buffersize=)).
 *
 * crew_map() needs the whole input in an array and holds the whole output
 * until it returns. crew_imap() pulls inputs one at a time from a function
 * of yours, keeps at most `window` of them in flight, and hands each result
 * to another function of yours as it comes: its memory is bounded by the
 * window whatever the input's length, and results flow while input is
 * still being read.
 *
 * Thread safety: crew_imap() may be called from any thread, several at once
 * on one pool, and from inside a task of the pool in thread mode (it then
 * runs queued items itself while it waits, as crew_future_wait() does, so
 * it finishes even on a one-worker pool). Its `next` and `sink` run only on
 * the calling thread, one call at a time, never with a crew lock held: they
 * may use the pool (submit, wait, map, shut it down).
 */
#ifndef CREW_IMAP_H
#define CREW_IMAP_H

#include <crew/common.h>
#include <crew/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The input of a crew_imap(): write the next input (in_size bytes) into
 * `in` and return 1, or return 0 when there is no more input. Called on the
 * caller's thread only; `in` is crew's buffer, reused once the call returns.
 */
typedef int (*crew_next_fn)(void *arg, void *in);

/*
 * The output of a crew_imap(): one result. index is the input's position
 * (0, 1, ...), status what the task returned (or CREW_ECANCELED,
 * CREW_ECRASHED, CREW_EDEADLINE, CREW_EINIT when it did not run to the
 * end), out its out_size bytes (valid during the call only; NULL when
 * out_size is 0; zeros when the task did not run). Called on the caller's
 * thread only. Return 0 to go on, nonzero to stop.
 */
typedef int (*crew_sink_fn)(void *arg, size_t index, int status,
                            const void *out);

/* crew_imap() flags: results in completion order (imap_unordered). */
#define CREW_UNORDERED 1u

/*
 * crew_imap - run fn on every input that next() gives, at most `window` in
 * flight, and give each result to sink().
 *
 * An input is in flight from the call of next() that wrote it until the
 * call of sink() that gets its result: at most `window` are (0: 4 per
 * worker), so next() is called again only once a result has gone to sink()
 * when the window is full. crew copies each input at submit, so `in` is
 * reused; it keeps one input and one output buffer, and the window's
 * futures: memory does not grow with the input's length.
 *
 * flags: 0 gives results to sink() in input order (index 0, 1, ...: a
 * result that is ready waits for those before it); CREW_UNORDERED gives
 * each as soon as crew_imap() sees it done. Other bits: CREW_EINVAL.
 *
 * Every input next() gave is given to sink() exactly once, whatever its
 * task returned, unless sink() stops the map: when sink() returns nonzero,
 * next() is not called again, the items still queued are cancelled, those
 * running finish (their results go nowhere), and crew_imap() returns what
 * sink() returned. Otherwise it returns 0 once next() returned 0 and every
 * result was given to sink(), whatever the tasks' statuses.
 *
 * Blocks until then; it never waits for room in a full queue while it has
 * results to wait for instead, so a window larger than the queue works.
 * When it returns, every task it submitted has finished or been cancelled.
 *
 * Returns, besides: CREW_EINVAL (pool, fn, next or sink NULL, in_size 0,
 * unknown flags, in_size or out_size above the pool's limits, a window too
 * large to allocate, a call from a forked child; in process mode a
 * function the workers lack), before any call of next();
 * CREW_ECLOSED, before any call of next(), on a pool already shut down;
 * CREW_ENOMEM. If the pool is shut down (or, in process mode, breaks)
 * midway, no more input is taken, the input that could not be submitted is
 * given to sink() with CREW_ECANCELED, those in flight with what their
 * futures say (CREW_ECANCELED for those a CREW_CANCEL shutdown took off the
 * queue), and it returns CREW_ECLOSED (or CREW_EINIT / CREW_ECRASHED).
 */
CREW_API int crew_imap(crew_pool *pool, crew_fn fn, size_t in_size,
                       size_t out_size, size_t window, unsigned flags,
                       crew_next_fn next, crew_sink_fn sink, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* CREW_IMAP_H */
