/*
 * crew/queue.h - a bounded, blocking, multi-producer multi-consumer FIFO
 * queue of fixed-size items copied by value (Python's queue.Queue with a
 * maxsize, for C).
 *
 * Thread safety: every function may be called from any number of threads at
 * once, except crew_queue_destroy(), which must be the last call on the
 * queue: no thread may be inside, or later enter, another call on it. A
 * push's last touch of the queue comes before its item can be popped, so
 * the thread that pops the last item other threads pushed may destroy the
 * queue at once, even if those pushes have not returned yet.
 *
 * Semantics:
 *  - Items are copied in on push and out on pop; the queue never keeps a
 *    pointer to the caller's memory. Order is first in, first out.
 *  - One mutex guards the queue; pushers wait on a "not full" condition and
 *    poppers on a "not empty" one. A push wakes at most one waiting popper per
 *    item and a pop at most one waiting pusher per slot it frees; only close
 *    wakes everyone.
 *  - Closing is the shutdown protocol: after crew_queue_close(), pushes fail
 *    with CREW_ECLOSED (pushers blocked on a full queue wake with it) and
 *    pops return what is still queued, then CREW_ECLOSED.
 *  - Blocking calls have _timed twins; see crew/common.h for the timeout
 *    convention (0 tries once, CREW_FOREVER waits as long as needed).
 */
#ifndef CREW_QUEUE_H
#define CREW_QUEUE_H

#include <crew/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crew_queue crew_queue;

/*
 * crew_queue_create flag: put the queue in shared memory, usable by every
 * process forked after it was created (Python's multiprocessing.Queue).
 * Items are still copied by value; a pointer inside an item means nothing
 * in another process unless it points into memory both share.
 *
 * A process that dies at any point, even holding the queue's lock, leaves
 * the queue as it was just before or just after its call: the next locker
 * takes the lock over and nothing is lost or duplicated. On Linux the
 * lock is a futex word naming the holder's pid: a holder that is dead or a
 * zombie is noticed within about 10 ms, and a holder that keeps it for 2 s
 * (stopped, say) loses it. A process killed while waiting wedges nobody:
 * waiters sleep on futex words that keep no state about them, and look again
 * at least every 100 ms, so an item whose wake-up went to a killed process
 * is found by then. (Elsewhere the queue uses a robust process-shared mutex
 * and condition variable, without those guarantees.)
 *
 * The shared memory holds only the queue's state (lock and wait words,
 * counters, items); the geometry is in each process's own handle. So a
 * process that writes garbage over it can change which items come out,
 * never make another process read out of bounds, crash or wait for ever: a
 * state with more items than the capacity makes the queue closed
 * (CREW_ECLOSED) in the process that finds it. Each process that no longer
 * needs the queue calls crew_queue_destroy(), which drops its mapping and
 * handle; the creator's call, which must come last, also destroys the
 * objects.
 */
#define CREW_SHARED 0x1u

/*
 * crew_queue_create - make an empty queue of up to `capacity` items of
 * `item_size` bytes each.
 *
 * `flags` is 0 or CREW_SHARED (see above). Storage for every item is
 * allocated here, once; pushes and pops never allocate. On success *q owns
 * the queue until crew_queue_destroy().
 *
 * Returns 0, CREW_EINVAL (q NULL, capacity or item_size 0, capacity *
 * item_size plus the queue's header overflowing size_t, unknown flag bits)
 * or CREW_ENOMEM. On failure
 * *q is left untouched. Never blocks.
 */
CREW_API int crew_queue_create(crew_queue **q, size_t capacity,
                               size_t item_size, unsigned flags);

/*
 * crew_queue_destroy - free the queue and any items still in it.
 *
 * Must be the last call on the queue (see Thread safety above). NULL is a
 * no-op. Never blocks. For a CREW_SHARED queue, a process other than the
 * creator only drops its own mapping; the creator's call, last of all,
 * frees the queue.
 */
CREW_API void crew_queue_destroy(crew_queue *q);

/*
 * crew_queue_push - copy item_size bytes from `item` to the tail, blocking
 * while the queue is full.
 *
 * Returns 0, CREW_ECLOSED (the queue is closed, or was closed while this call
 * waited; nothing was pushed) or CREW_EINVAL (q or item NULL).
 */
CREW_API int crew_queue_push(crew_queue *q, const void *item);

/*
 * crew_queue_push_timed - crew_queue_push() that waits at most timeout_ns
 * for room. Returns as crew_queue_push(), or CREW_ETIMEDOUT if the queue was
 * still full when the time ran out (nothing was pushed). A timeout of 0 pushes
 * only if there is room now.
 */
CREW_API int crew_queue_push_timed(crew_queue *q, const void *item,
                                   uint64_t timeout_ns);

/*
 * crew_queue_pop - copy the head item into `item` (item_size bytes) and
 * remove it, blocking while the queue is empty.
 *
 * Returns 0, CREW_ECLOSED (the queue is closed and empty; `item` untouched)
 * or CREW_EINVAL (q or item NULL).
 */
CREW_API int crew_queue_pop(crew_queue *q, void *item);

/*
 * crew_queue_pop_timed - crew_queue_pop() that waits at most timeout_ns for
 * an item. Returns as crew_queue_pop(), or CREW_ETIMEDOUT if the queue was
 * still empty when the time ran out. A timeout of 0 pops only if an item is
 * there now.
 */
CREW_API int crew_queue_pop_timed(crew_queue *q, void *item,
                                  uint64_t timeout_ns);

/*
 * crew_queue_push_many - push `count` items stored contiguously at `items`
 * (count * item_size bytes), in order, waiting for room as needed but at most
 * timeout_ns in all.
 *
 * Each time there is room, as many items as fit go in under one lock, so a
 * batch of up to the free space costs one lock and at most one wake-up per
 * item. When the batch has to wait for room part way, pushes of other threads
 * may land between its parts; the items of one call keep their order.
 *
 * *pushed (if `pushed` is not NULL) is set to how many items went in, from
 * the front of `items`, whatever the return value.
 * Returns 0 (all `count` went in; count 0 pushes nothing and returns 0, even
 * on a closed queue), CREW_ETIMEDOUT (time ran out first), CREW_ECLOSED (the
 * queue is or became closed) or CREW_EINVAL (q NULL, items NULL with count >
 * 0, count * item_size overflowing size_t). With timeout 0 it pushes what
 * fits now.
 */
CREW_API int crew_queue_push_many(crew_queue *q, const void *items,
                                  size_t count, size_t *pushed,
                                  uint64_t timeout_ns);

/*
 * crew_queue_pop_many - wait at most timeout_ns until at least one item is
 * queued, then move up to `max` items (as many as are queued, without waiting
 * further) into `items`, in FIFO order, under one lock.
 *
 * *popped is set to how many items were moved (0 on any error).
 * Returns 0 (at least one item moved, or max was 0), CREW_ETIMEDOUT (the queue
 * stayed empty), CREW_ECLOSED (closed and empty) or CREW_EINVAL (q or popped
 * NULL, items NULL with max > 0, max * item_size overflowing size_t).
 */
CREW_API int crew_queue_pop_many(crew_queue *q, void *items, size_t max,
                                 size_t *popped, uint64_t timeout_ns);

/*
 * crew_queue_close - close the queue: later pushes fail with CREW_ECLOSED,
 * pops take what is left and then fail with CREW_ECLOSED. Wakes every blocked
 * pusher and popper. Idempotent; NULL is a no-op. Never blocks beyond taking
 * the queue's lock.
 */
CREW_API void crew_queue_close(crew_queue *q);

/*
 * crew_queue_is_closed - whether crew_queue_close() was called. false for
 * NULL.
 */
CREW_API bool crew_queue_is_closed(const crew_queue *q);

/*
 * crew_queue_size - how many items are queued now: a snapshot that other
 * threads may change at once. 0 for NULL.
 */
CREW_API size_t crew_queue_size(const crew_queue *q);

/*
 * crew_queue_capacity - the capacity given at create. 0 for NULL.
 */
CREW_API size_t crew_queue_capacity(const crew_queue *q);

/*
 * crew_queue_item_size - the item size given at create. 0 for NULL.
 */
CREW_API size_t crew_queue_item_size(const crew_queue *q);

#ifdef __cplusplus
}
#endif

#endif /* CREW_QUEUE_H */
