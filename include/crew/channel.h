/*
 * crew/channel.h - completions for an event loop: a channel whose file
 * descriptor becomes readable when watched futures resolve, so a loop
 * (epoll, poll, libevent, libuv) learns of finished work without blocking.
 * Python's as_completed, or libuv's after-work callbacks, for C.
 *
 *   crew_channel_create(&ch);
 *   add crew_channel_fd(ch) to the loop, for reading;
 *   crew_submit_to_timed(pool, ch, conn, fn, in, n, out_n, 0);  // never blocks
 *   ... the fd is readable:
 *   crew_completion done[64]; size_t n;
 *   crew_channel_drain(ch, done, 64, &n);    // never blocks
 *   for each: crew_future_get(done[i].future, ...), use done[i].tag,
 *             crew_future_release(done[i].future);
 *
 * Readiness: the fd is readable exactly while completions wait to be
 * drained (level-triggered). It is made readable when the first completion
 * arrives in an empty channel, and cleared when a drain takes the last one:
 * one write and one read per batch, not per task. With edge-triggered
 * polling (EPOLLET), drain until crew_channel_drain() gives fewer than you
 * asked for; completions that arrive meanwhile are never lost, and none is
 * handed out twice. The fd is an eventfd on Linux, the read end of a pipe
 * elsewhere; both are non-blocking and close-on-exec. Read it only through
 * crew_channel_drain(), never with read(2).
 *
 * Order: completions come out in the order their futures resolved. A
 * completion is queued by the future's done callback, which runs on the
 * resolving thread just after the future's waiters are woken: a thread that
 * sees the future resolved (crew_future_wait returned) may find the channel
 * still empty for that moment.
 *
 * Ownership: watching a future gives the channel a reference of its own, so
 * the caller may release its reference at once. A drained completion hands
 * that reference to the caller, who must release it.
 *
 * Thread safety: every function may be called from any thread at once,
 * except crew_channel_destroy(), which must be the channel's last call.
 * Futures may resolve on any thread (pool workers, or a thread that
 * cancels; for a process pool, the callback thread): that is where the
 * channel is told, under its own lock.
 *
 * Closing with work in flight: crew_channel_destroy() closes the fd at once
 * and releases the completions not yet drained. Futures still being watched
 * resolve as usual later; their completions are dropped (the channel's
 * reference released) and the channel's memory is freed by the last of
 * them. Nothing waits and nothing is leaked.
 */
#ifndef CREW_CHANNEL_H
#define CREW_CHANNEL_H

#include <crew/common.h>
#include <crew/future.h>
#include <crew/pool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crew_channel crew_channel;

/* A resolved future and the tag it was watched with. */
typedef struct crew_completion {
  crew_future *future; /* resolved; the reference is now the caller's */
  void *tag;
} crew_completion;

/*
 * crew_channel_create - make an empty channel. Returns 0, CREW_EINVAL (ch
 * NULL) or CREW_ENOMEM (memory or a descriptor). Never blocks.
 */
CREW_API int crew_channel_create(crew_channel **ch);

/*
 * crew_channel_destroy - close the fd and let the channel go (see "Closing
 * with work in flight" above). NULL is a no-op. Never blocks.
 */
CREW_API void crew_channel_destroy(crew_channel *ch);

/*
 * crew_channel_fd - the descriptor to poll for reading; -1 for NULL. It
 * stays the same for the channel's life; do not close it.
 */
CREW_API int crew_channel_fd(const crew_channel *ch);

/*
 * crew_channel_watch - when f resolves (or at once, if it has), queue the
 * completion {f, tag} on the channel. The channel takes a reference to f
 * for it. A future may be watched by several channels, or twice. Returns 0,
 * CREW_EINVAL (ch or f NULL) or CREW_ENOMEM (nothing queued, no reference
 * taken).
 */
CREW_API int crew_channel_watch(crew_channel *ch, crew_future *f, void *tag);

/*
 * crew_submit_to - crew_submit() whose completion goes to the channel with
 * `tag`; the caller gets no reference (the drained completion is it).
 * Blocks while the pool's queue is full: a loop thread should use
 * crew_submit_to_timed() with a timeout of 0 and try again after a drain.
 * Returns as crew_submit().
 */
CREW_API int crew_submit_to(crew_pool *pool, crew_channel *ch, void *tag,
                            crew_fn fn, const void *in, size_t in_size,
                            size_t out_size);

/*
 * crew_submit_to_timed - crew_submit_to() waiting at most timeout_ns for
 * room; CREW_ETIMEDOUT if there was none (no task was made).
 */
CREW_API int crew_submit_to_timed(crew_pool *pool, crew_channel *ch, void *tag,
                                  crew_fn fn, const void *in, size_t in_size,
                                  size_t out_size, uint64_t timeout_ns);

/*
 * crew_channel_drain - take up to max completions, oldest first, without
 * blocking; *n gets how many (0 if none was ready). The fd stops being
 * readable when this takes the last one. Returns 0, or CREW_EINVAL (ch or n
 * NULL, out NULL with max > 0).
 */
CREW_API int crew_channel_drain(crew_channel *ch, crew_completion *out,
                                size_t max, size_t *n);

/*
 * crew_channel_wait - for threads without a loop: wait at most timeout_ns
 * for at least one completion, then take up to max as crew_channel_drain()
 * does. Returns 0 (*n >= 1, or max was 0), CREW_ETIMEDOUT (*n 0) or
 * CREW_EINVAL.
 */
CREW_API int crew_channel_wait(crew_channel *ch, crew_completion *out,
                               size_t max, size_t *n, uint64_t timeout_ns);

/*
 * crew_channel_pending - futures watched and not yet drained (resolved or
 * not): a snapshot. 0 for NULL.
 */
CREW_API size_t crew_channel_pending(const crew_channel *ch);

#ifdef __cplusplus
}
#endif

#endif /* CREW_CHANNEL_H */
