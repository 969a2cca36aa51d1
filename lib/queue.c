/*
 * queue.c - the bounded MPMC queue: a ring of fixed-size items copied by
 * value, one mutex, two condition variables.
 *
 * Layout: one allocation holds the header and the ring of `capacity` items of
 * `item_size` bytes. Items [head, head + count) (mod capacity) are queued,
 * oldest first.
 *
 * Locking: `lock` guards every field below it except capacity, item_size and
 * flags, which never change after create. There is no other lock, so there is
 * no lock order.
 *
 * Waking: pushers wait on not_full, poppers on not_empty; each side counts
 * its waiters under the lock. A push of n items signals not_empty at most
 * min(n, poppers waiting) times, a pop of n items signals not_full at most
 * min(n, pushers waiting) times; only close broadcasts. Signals are sent
 * with the lock held, so a call's last touch of the queue is its unlock: a
 * thread that pops the last item another thread pushed may destroy the queue
 * at once (glibc, like POSIX, makes destroying a mutex right after another
 * thread's unlock safe). Every waiter rechecks its predicate after any
 * wake-up, a timed-out one included, so a signal that reaches a thread which
 * then leaves cannot strand an item: the item is taken by whoever looks next.
 *
 * Fairness: FIFO for items. Threads are woken in the order the condition
 * variable chooses; crew promises no order among waiters.
 */
#include "config.h"

#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct crew_queue {
  crew__mutex lock;
  crew__cond not_empty; /* poppers wait here */
  crew__cond not_full;  /* pushers wait here */
  size_t head;          /* index of the oldest item */
  size_t count;         /* items queued */
  size_t pop_waiters;   /* threads waiting on not_empty */
  size_t push_waiters;  /* threads waiting on not_full */
  bool closed;
  /* Constant after create: */
  size_t capacity;
  size_t item_size;
  unsigned flags;
  unsigned char *ring; /* capacity * item_size bytes, after the header */
};

/* Signal cond once per item or slot, but no more than threads wait. */
static void wake(crew__cond *cond, size_t n, size_t waiters)
{
  for (size_t i = 0; i < n && i < waiters; i++)
    crew__cond_signal(cond);
}

static size_t min_size(size_t a, size_t b)
{
  return a < b ? a : b;
}

/* ------------------------------------------------------------------ create */

int crew_queue_create(crew_queue **qp, size_t capacity, size_t item_size,
                      unsigned flags)
{
  if (qp == NULL || capacity == 0 || item_size == 0 || flags != 0)
    return CREW_EINVAL;
  if (capacity > (SIZE_MAX - sizeof(crew_queue)) / item_size)
    return CREW_EINVAL;
  crew_queue *q = malloc(sizeof *q + capacity * item_size);
  if (q == NULL)
    return CREW_ENOMEM;
  *q = (crew_queue){.capacity = capacity,
                    .item_size = item_size,
                    .flags = flags,
                    .ring = (unsigned char *)(q + 1)};
  if (crew__mutex_init(&q->lock) != 0)
    goto fail_mutex;
  if (crew__cond_init(&q->not_empty) != 0)
    goto fail_not_empty;
  if (crew__cond_init(&q->not_full) != 0)
    goto fail_not_full;
  *qp = q;
  return 0;

fail_not_full:
  crew__cond_destroy(&q->not_empty);
fail_not_empty:
  crew__mutex_destroy(&q->lock);
fail_mutex:
  free(q);
  return CREW_ENOMEM;
}

void crew_queue_destroy(crew_queue *q)
{
  if (q == NULL)
    return;
  crew__cond_destroy(&q->not_full);
  crew__cond_destroy(&q->not_empty);
  crew__mutex_destroy(&q->lock);
  free(q);
}

/* ---------------------------------------------------------- ring copying */

/* Append n items from src at the tail; the caller made sure they fit. */
static void ring_put(crew_queue *q, const unsigned char *src, size_t n)
{
  crew__assert_held(&q->lock);
  crew__assert(q->count + n <= q->capacity);
  size_t tail = (q->head + q->count) % q->capacity;
  size_t first = min_size(n, q->capacity - tail);
  memcpy(q->ring + tail * q->item_size, src, first * q->item_size);
  memcpy(q->ring, src + first * q->item_size, (n - first) * q->item_size);
  q->count += n;
}

/* Remove n items from the head into dst; the caller made sure they exist. */
static void ring_take(crew_queue *q, unsigned char *dst, size_t n)
{
  crew__assert_held(&q->lock);
  crew__assert(n <= q->count);
  size_t first = min_size(n, q->capacity - q->head);
  memcpy(dst, q->ring + q->head * q->item_size, first * q->item_size);
  memcpy(dst + first * q->item_size, q->ring, (n - first) * q->item_size);
  q->head = (q->head + n) % q->capacity;
  q->count -= n;
}

/* ---------------------------------------------------------------- waiting */

/*
 * Wait with the lock held until the predicate may hold or `d` passes.
 * Returns 0 to recheck, or CREW_ETIMEDOUT once the deadline has passed.
 */
static int wait_on(crew_queue *q, crew__cond *cond, size_t *waiters,
                   crew__deadline d)
{
  (*waiters)++;
  int rc = crew__cond_wait(cond, &q->lock, d);
  (*waiters)--;
  return rc;
}

/* ---------------------------------------------------------------- push */

/*
 * Push `count` items, as many at a time as fit, until all are in, the queue
 * closes or `d` passes. *pushed gets how many went in.
 */
static int push_until(crew_queue *q, const unsigned char *items, size_t count,
                      size_t *pushed, crew__deadline d)
{
  size_t done = 0;
  int rc = 0;
  crew__mutex_lock(&q->lock);
  while (done < count) {
    if (q->closed) {
      rc = CREW_ECLOSED;
      break;
    }
    size_t room = q->capacity - q->count;
    if (room > 0) {
      size_t n = min_size(room, count - done);
      ring_put(q, items + done * q->item_size, n);
      done += n;
      wake(&q->not_empty, n, q->pop_waiters);
      continue;
    }
    /* Full. After a timeout the loop looks once more: room may have come. */
    if (rc == CREW_ETIMEDOUT)
      break;
    rc = wait_on(q, &q->not_full, &q->push_waiters, d);
  }
  crew__mutex_unlock(&q->lock);
  *pushed = done;
  return done == count ? 0 : rc;
}

int crew_queue_push(crew_queue *q, const void *item)
{
  return crew_queue_push_timed(q, item, CREW_FOREVER);
}

int crew_queue_push_timed(crew_queue *q, const void *item, uint64_t timeout_ns)
{
  if (q == NULL || item == NULL)
    return CREW_EINVAL;
  size_t pushed;
  return push_until(q, item, 1, &pushed, crew__deadline_in(timeout_ns));
}

int crew_queue_push_many(crew_queue *q, const void *items, size_t count,
                         size_t *pushed, uint64_t timeout_ns)
{
  size_t ignored;
  if (pushed == NULL)
    pushed = &ignored;
  *pushed = 0;
  if (q == NULL || (items == NULL && count > 0) ||
      (count > 0 && count > SIZE_MAX / q->item_size))
    return CREW_EINVAL;
  if (count == 0)
    return 0;
  return push_until(q, items, count, pushed, crew__deadline_in(timeout_ns));
}

/* ----------------------------------------------------------------- pop */

/*
 * Wait until at least one item is queued (or the queue is closed and empty,
 * or `d` passes), then take up to `max` of them.
 */
static int pop_until(crew_queue *q, unsigned char *items, size_t max,
                     size_t *popped, crew__deadline d)
{
  int rc = 0;
  crew__mutex_lock(&q->lock);
  for (;;) {
    if (q->count > 0) {
      size_t n = min_size(q->count, max);
      ring_take(q, items, n);
      wake(&q->not_full, n, q->push_waiters);
      crew__mutex_unlock(&q->lock);
      *popped = n;
      return 0;
    }
    if (q->closed) {
      rc = CREW_ECLOSED;
      break;
    }
    if (rc == CREW_ETIMEDOUT)
      break;
    rc = wait_on(q, &q->not_empty, &q->pop_waiters, d);
  }
  crew__mutex_unlock(&q->lock);
  *popped = 0;
  return rc;
}

int crew_queue_pop(crew_queue *q, void *item)
{
  return crew_queue_pop_timed(q, item, CREW_FOREVER);
}

int crew_queue_pop_timed(crew_queue *q, void *item, uint64_t timeout_ns)
{
  if (q == NULL || item == NULL)
    return CREW_EINVAL;
  size_t popped;
  return pop_until(q, item, 1, &popped, crew__deadline_in(timeout_ns));
}

int crew_queue_pop_many(crew_queue *q, void *items, size_t max, size_t *popped,
                        uint64_t timeout_ns)
{
  if (popped != NULL)
    *popped = 0;
  if (q == NULL || popped == NULL || (items == NULL && max > 0) ||
      (max > 0 && max > SIZE_MAX / q->item_size))
    return CREW_EINVAL;
  if (max == 0)
    return 0;
  return pop_until(q, items, max, popped, crew__deadline_in(timeout_ns));
}

/* ------------------------------------------------------------ the rest */

void crew_queue_close(crew_queue *q)
{
  if (q == NULL)
    return;
  crew__mutex_lock(&q->lock);
  q->closed = true;
  crew__cond_broadcast(&q->not_empty);
  crew__cond_broadcast(&q->not_full);
  crew__mutex_unlock(&q->lock);
}

bool crew_queue_is_closed(const crew_queue *cq)
{
  if (cq == NULL)
    return false;
  crew_queue *q = (crew_queue *)cq; /* the lock is not part of the value */
  crew__mutex_lock(&q->lock);
  bool closed = q->closed;
  crew__mutex_unlock(&q->lock);
  return closed;
}

size_t crew_queue_size(const crew_queue *cq)
{
  if (cq == NULL)
    return 0;
  crew_queue *q = (crew_queue *)cq; /* the lock is not part of the value */
  crew__mutex_lock(&q->lock);
  size_t n = q->count;
  crew__mutex_unlock(&q->lock);
  return n;
}

size_t crew_queue_capacity(const crew_queue *q)
{
  return q == NULL ? 0 : q->capacity;
}

size_t crew_queue_item_size(const crew_queue *q)
{
  return q == NULL ? 0 : q->item_size;
}
