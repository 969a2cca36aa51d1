/*
 * queue.c - the bounded MPMC queue: the public calls, and the private queue
 * behind them (CREW_SHARED queues are shqueue.c's; see queue.h).
 *
 * The private queue: one block holds the header and a ring of `capacity`
 * items of `item_size` bytes. `head` and `tail` count the items ever taken
 * and ever put; items [head, tail) are queued, oldest first, item k at ring
 * slot k % capacity (a mask when the capacity is a power of two).
 *
 * Locking: `lock` guards every field but the constants. There is no other
 * lock, so there is no lock order. head, tail and closed are atomics only so
 * that a spinner may read them without the lock.
 *
 * Waking: pushers wait on not_full, poppers on not_empty; each side counts
 * its waiters under the lock. A push of n items signals at most min(n,
 * poppers waiting) poppers, a pop of n items at most min(n, pushers waiting)
 * pushers; only close broadcasts. Signals go out with the lock held, so a
 * call's last touch of the queue is its unlock: a thread that pops the last
 * item another thread pushed may destroy the queue at once. Every waiter
 * rechecks its predicate after any wake-up, a timed-out one included, so a
 * signal that reaches a thread which then leaves cannot strand an item.
 *
 * Spinning: before a popper sleeps on an empty queue it may spin a while,
 * without the lock, reading head, tail and closed until the queue changes:
 * most waits in a busy program are short, and a spinner is not counted as a
 * waiter, so pushers make no system call for it. At most one thread spins
 * (`spinning`), the spin is bounded in time, and a call with a zero timeout
 * never spins. Pushers never spin: a full queue means the consumers are
 * behind, and a spinning producer would only take a core from them.
 *
 * Fairness: FIFO for items. Threads are woken in the order the condition
 * variable chooses; crew promises no order among waiters.
 */
#include "config.h"

#include "queue.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

struct pqueue {
  struct crew_queue q; /* ops, capacity, item_size */
  size_t mask;         /* capacity - 1 if a power of two, else 0 */
  crew__mutex lock;
  crew__cond not_empty; /* poppers wait here */
  crew__cond not_full;  /* pushers wait here */
  _Atomic uint64_t head, tail;
  uint64_t pop_waiters, push_waiters;
  _Atomic uint32_t closed;
  _Atomic uint32_t spinning; /* a popper spins */
  alignas(64) unsigned char ring[];
};

static const struct crew__queue_ops private_ops;

static struct pqueue *pq(crew_queue *q)
{
  return (struct pqueue *)q;
}

static uint64_t load(const _Atomic uint64_t *counter)
{
  return atomic_load_explicit(counter, memory_order_relaxed);
}

/* Items queued; the lock held. */
static size_t queued(const struct pqueue *p)
{
  return (size_t)(load(&p->tail) - load(&p->head));
}

static size_t min_size(size_t a, size_t b)
{
  return a < b ? a : b;
}

/* ------------------------------------------------------------- the ring */

static size_t slot_of(const struct pqueue *p, uint64_t at)
{
  return p->mask != 0 || p->q.capacity == 1 ? (size_t)(at & p->mask)
                                            : (size_t)(at % p->q.capacity);
}

/* Copy n items; one item of a common size with a constant size, which the
 * compiler turns into a few moves instead of a call. */
static void copy_items(const struct pqueue *p, unsigned char *dst,
                       const unsigned char *src, size_t n)
{
  size_t size = p->q.item_size;
  if (n == 1 && size == 64)
    memcpy(dst, src, 64);
  else if (n == 1 && size == 8)
    memcpy(dst, src, 8);
  else if (n > 0)
    memcpy(dst, src, n * size);
}

/* Append n items from src; the caller made sure they fit. */
static void ring_put(struct pqueue *p, const unsigned char *src, size_t n)
{
  crew__assert_held(&p->lock);
  size_t at = slot_of(p, load(&p->tail));
  size_t first = min_size(n, p->q.capacity - at);
  copy_items(p, p->ring + at * p->q.item_size, src, first);
  copy_items(p, p->ring, src + first * p->q.item_size, n - first);
  atomic_store_explicit(&p->tail, load(&p->tail) + n, memory_order_release);
  (void)CREW__HOOK(CREW_TP_ENQUEUE, &p->q);
}

/* Remove n items into dst; the caller made sure they exist. */
static void ring_take(struct pqueue *p, unsigned char *dst, size_t n)
{
  crew__assert_held(&p->lock);
  size_t at = slot_of(p, load(&p->head));
  size_t first = min_size(n, p->q.capacity - at);
  copy_items(p, dst, p->ring + at * p->q.item_size, first);
  copy_items(p, dst + first * p->q.item_size, p->ring, n - first);
  atomic_store_explicit(&p->head, load(&p->head) + n, memory_order_release);
  (void)CREW__HOOK(CREW_TP_DEQUEUE, &p->q);
}

/* -------------------------------------------------------------- waiting */

/* With the lock held: sleep on cv, counted in *waiters, until woken or d. */
static int wait_on(struct pqueue *p, crew__cond *cv, uint64_t *waiters,
                   crew__deadline d)
{
  (void)CREW__HOOK(CREW_TP_WAIT, cv);
  (*waiters)++;
  int rc = crew__cond_wait(cv, &p->lock, d);
  (*waiters)--;
  return rc;
}

/* With the lock held: wake one waiter per item or slot, no more than wait. */
static void wake(crew__cond *cv, uint64_t waiters, size_t n)
{
  if (waiters == 0 || n == 0)
    return;
  (void)CREW__HOOK(CREW_TP_WAKE, cv);
  for (size_t i = 0; i < n && i < waiters; i++)
    crew__cond_signal(cv);
}

/* Without the lock: whether a popper may go on (items, or closed). */
static bool may_pop(struct pqueue *p)
{
  return atomic_load_explicit(&p->tail, memory_order_relaxed) !=
             atomic_load_explicit(&p->head, memory_order_relaxed) ||
         atomic_load_explicit(&p->closed, memory_order_relaxed);
}

/*
 * With the lock held, by a popper about to wait: unless another thread
 * spins already, drop the lock, spin up to spin_ns until the queue may let
 * the caller on, and take the lock again. Whether it spun.
 */
static bool spin_unlocked(struct pqueue *p, uint64_t spin_ns)
{
  if (spin_ns == 0 || spin_ns == CREW_IDLE_SPIN_OFF ||
      atomic_load_explicit(&p->spinning, memory_order_relaxed) ||
      atomic_exchange_explicit(&p->spinning, 1, memory_order_relaxed))
    return false;
  crew__mutex_unlock(&p->lock);
  uint64_t start = crew__now_ns();
  for (unsigned i = 1; !may_pop(p); i++) {
    crew__cpu_relax();
    if (i % 64 == 0 && crew__now_ns() - start >= spin_ns)
      break;
  }
  atomic_store_explicit(&p->spinning, 0, memory_order_relaxed);
  crew__mutex_lock(&p->lock);
  return true;
}

/* ------------------------------------------------------ push, pop, close */

static int private_push(crew_queue *q, const void *items, size_t count,
                        size_t *pushed, crew__deadline d)
{
  struct pqueue *p = pq(q);
  const unsigned char *src = items;
  size_t done = 0;
  int rc = 0;
  crew__mutex_lock(&p->lock);
  while (done < count) {
    if (p->closed) {
      rc = CREW_ECLOSED;
      break;
    }
    size_t room = q->capacity - queued(p);
    if (room > 0) {
      size_t n = min_size(room, count - done);
      ring_put(p, src + done * q->item_size, n);
      done += n;
      wake(&p->not_empty, p->pop_waiters, n);
      continue;
    }
    if (rc == CREW_ETIMEDOUT) /* after a timeout, one more look */
      break;
    rc = wait_on(p, &p->not_full, &p->push_waiters, d);
  }
  crew__mutex_unlock(&p->lock);
  *pushed = done;
  return done == count ? 0 : rc;
}

static int private_pop(crew_queue *q, void *items, size_t max, size_t *popped,
                       crew__deadline d, uint64_t spin_ns)
{
  struct pqueue *p = pq(q);
  int rc = 0;
  bool spun = d.at == 0; /* a try does not spin */
  crew__mutex_lock(&p->lock);
  for (;;) {
    size_t n = queued(p);
    if (n > 0) {
      n = min_size(n, max);
      ring_take(p, items, n);
      wake(&p->not_full, p->push_waiters, n);
      crew__mutex_unlock(&p->lock);
      *popped = n;
      return 0;
    }
    if (p->closed) {
      rc = CREW_ECLOSED;
      break;
    }
    if (rc == CREW_ETIMEDOUT)
      break;
    if (!spun && (spun = spin_unlocked(p, spin_ns)))
      continue;
    rc = wait_on(p, &p->not_empty, &p->pop_waiters, d);
  }
  crew__mutex_unlock(&p->lock);
  *popped = 0;
  return rc;
}

static void private_close(crew_queue *q)
{
  struct pqueue *p = pq(q);
  crew__mutex_lock(&p->lock);
  atomic_store_explicit(&p->closed, 1, memory_order_relaxed);
  (void)CREW__HOOK(CREW_TP_WAKE, &p->not_empty);
  crew__cond_broadcast(&p->not_empty);
  crew__cond_broadcast(&p->not_full);
  crew__mutex_unlock(&p->lock);
}

static bool private_is_closed(crew_queue *q)
{
  struct pqueue *p = pq(q);
  crew__mutex_lock(&p->lock);
  bool closed = p->closed != 0;
  crew__mutex_unlock(&p->lock);
  return closed;
}

static size_t private_size(crew_queue *q)
{
  struct pqueue *p = pq(q);
  crew__mutex_lock(&p->lock);
  size_t n = queued(p);
  crew__mutex_unlock(&p->lock);
  return n;
}

static void private_destroy(crew_queue *q)
{
  struct pqueue *p = pq(q);
  crew__cond_destroy(&p->not_full);
  crew__cond_destroy(&p->not_empty);
  crew__mutex_destroy(&p->lock);
  free(p);
}

static const struct crew__queue_ops private_ops = {
    .push = private_push,
    .pop = private_pop,
    .close = private_close,
    .is_closed = private_is_closed,
    .size = private_size,
    .destroy = private_destroy,
};

static int private_create(crew_queue **qp, size_t capacity, size_t item_size)
{
  if (capacity > (SIZE_MAX - sizeof(struct pqueue) - 63) / item_size)
    return CREW_EINVAL;
  size_t size = (sizeof(struct pqueue) + capacity * item_size + 63) / 64 * 64;
  struct pqueue *p = crew__aligned_alloc(64, size);
  if (p == NULL)
    return CREW_ENOMEM;
  memset(p, 0, sizeof *p);
  p->q = (struct crew_queue){NULL, &private_ops, capacity, item_size};
  p->mask = (capacity & (capacity - 1)) == 0 ? capacity - 1 : 0;
  if (crew__mutex_init(&p->lock) != 0)
    goto fail_lock;
  if (crew__cond_init(&p->not_empty) != 0)
    goto fail_not_empty;
  if (crew__cond_init(&p->not_full) != 0)
    goto fail_not_full;
  *qp = &p->q;
  return 0;

fail_not_full:
  crew__cond_destroy(&p->not_empty);
fail_not_empty:
  crew__mutex_destroy(&p->lock);
fail_lock:
  free(p);
  return CREW_ENOMEM;
}

int crew__queue_pop_spin(crew_queue *q, void *item, uint64_t timeout_ns,
                         uint64_t spin_ns)
{
  size_t popped;
  return q->ops->pop(q, item, 1, &popped, crew__deadline_in(timeout_ns),
                     spin_ns);
}

/* --------------------------------------------------------- public calls */

int crew_queue_create(crew_queue **qp, size_t capacity, size_t item_size,
                      unsigned flags)
{
  if (qp == NULL || capacity == 0 || item_size == 0 ||
      (flags & ~(unsigned)CREW_SHARED) != 0)
    return CREW_EINVAL;
  if (flags & CREW_SHARED)
    return crew__shq_create(qp, capacity, item_size);
  return private_create(qp, capacity, item_size);
}

void crew_queue_destroy(crew_queue *q)
{
  if (q != NULL)
    q->ops->destroy(q);
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
  return q->ops->push(q, item, 1, &pushed, crew__deadline_in(timeout_ns));
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
  return q->ops->push(q, items, count, pushed, crew__deadline_in(timeout_ns));
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
  return q->ops->pop(q, item, 1, &popped, crew__deadline_in(timeout_ns),
                     CREW__QUEUE_SPIN_NS);
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
  return q->ops->pop(q, items, max, popped, crew__deadline_in(timeout_ns),
                     CREW__QUEUE_SPIN_NS);
}

void crew_queue_close(crew_queue *q)
{
  if (q != NULL)
    q->ops->close(q);
}

bool crew_queue_is_closed(const crew_queue *q)
{
  /* The lock is not part of the value. */
  return q != NULL && q->ops->is_closed((crew_queue *)q);
}

size_t crew_queue_size(const crew_queue *q)
{
  return q == NULL ? 0 : q->ops->size((crew_queue *)q);
}

size_t crew_queue_capacity(const crew_queue *q)
{
  return q == NULL ? 0 : q->capacity;
}

size_t crew_queue_item_size(const crew_queue *q)
{
  return q == NULL ? 0 : q->item_size;
}
