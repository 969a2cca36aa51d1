/*
 * queue.c - the bounded MPMC queue: the public calls, and the private queue
 * behind them (CREW_SHARED queues are shqueue.c's; see queue.h). The thread
 * pool feeds its workers through a private queue too, with two calls of its
 * own: crew__queue_put and crew__queue_take.
 *
 * The private queue: one block holds the header and a ring of `capacity`
 * items of `item_size` bytes. `head` and `tail` count the items ever taken
 * and ever put; items [head, tail) are queued, oldest first, item k at ring
 * slot k % capacity (a mask when the capacity is a power of two).
 *
 * Locking: `lock` guards every field but the constants. There is no other
 * lock, so there is no lock order. A few fields are atomics only so that a
 * thread may read them without the lock: a spinner (`items`, `closed`), the
 * pool (`waiting`).
 *
 * Waking: pushers wait on cv[PUSHER], poppers on cv[POPPER]. Each side
 * counts its sleepers (`waiting`) and the signals sent to them that no
 * sleeper has taken yet (`signalled`): a push signals only a popper that
 * sleeps and that nobody has signalled yet, and a pop only such a pusher,
 * so a thread that was woken but is not running yet is never signalled
 * again, and a busy queue signals nobody. A woken sleeper (or one whose
 * wait ended otherwise) takes one signal off the count, if any is left:
 * the count never exceeds the signals in flight, so a sleeper that needs a
 * wake-up is never thought to have one. Only close broadcasts. Signals go
 * out with the lock held, so a call's last touch of the queue is its
 * unlock: a thread that pops the last item another thread pushed may
 * destroy the queue at once. Every waiter rechecks its predicate after any
 * wake-up, a timed-out one included, so a signal that reaches a thread
 * which then leaves cannot strand an item.
 *
 * Spinning: before a popper sleeps on an empty queue it may spin a while,
 * without the lock, watching `items` (bumped by a push onto an empty queue,
 * so a busy producer never writes the line a spinner reads) and `closed`:
 * most waits in a busy program are short, and a spinner is not counted as a
 * sleeper, so pushers make no system call for it. At most one thread spins
 * (`spinning`), the spin is bounded in time, and a call with a zero timeout
 * never spins. The first push during a spin wakes one sleeper fewer: that
 * item is the spinner's (`spinning` 2), which looks again under the lock
 * when its spin ends; a sleeper woken for it would take a core from the
 * spinner and the item a futex wake-up later (W4's slow repetitions). Pushers
 * never spin: a full queue means the consumers are behind, and a spinning
 * producer would only take a core from them.
 *
 * Fairness: FIFO for items. Threads are woken in the order the condition
 * variable chooses; crew promises no order among waiters.
 */
#include "config.h"

#include "queue.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

enum side { POPPER = CREW__POPPER, PUSHER = CREW__PUSHER };

static const struct crew__queue_ops private_ops;

static struct crew__pqueue *pq(crew_queue *q)
{
  return (struct crew__pqueue *)q;
}

static uint64_t load(const _Atomic uint64_t *counter)
{
  return atomic_load_explicit(counter, memory_order_relaxed);
}

/* Items queued; the lock held. */
static size_t queued(const struct crew__pqueue *p)
{
  return (size_t)(load(&p->tail) - load(&p->head));
}

static size_t min_size(size_t a, size_t b)
{
  return a < b ? a : b;
}

/* ------------------------------------------------------------- the ring */

static size_t slot_of(const struct crew__pqueue *p, uint64_t at)
{
  return p->mask != 0 || p->q.capacity == 1 ? (size_t)(at & p->mask)
                                            : (size_t)(at % p->q.capacity);
}

/* Copy n items; one item of a common size with a constant size, which the
 * compiler turns into a few moves instead of a call. */
static void copy_items(const struct crew__pqueue *p, unsigned char *dst,
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
static void ring_put(struct crew__pqueue *p, const unsigned char *src, size_t n)
{
  crew__assert_held(&p->lock);
  uint64_t tail = load(&p->tail);
  size_t at = slot_of(p, tail);
  size_t first = min_size(n, p->q.capacity - at);
  copy_items(p, p->ring + at * p->q.item_size, src, first);
  copy_items(p, p->ring, src + first * p->q.item_size, n - first);
  if (tail == load(&p->head)) /* was empty: tell a spinner */
    atomic_store_explicit(
        &p->items, atomic_load_explicit(&p->items, memory_order_relaxed) + 1,
        memory_order_release);
  atomic_store_explicit(&p->tail, tail + n, memory_order_release);
  (void)CREW__HOOK(CREW_TP_ENQUEUE, &p->q);
}

/* Remove n items into dst; the caller made sure they exist. */
static void ring_take(struct crew__pqueue *p, unsigned char *dst, size_t n)
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

static uint32_t waiting(const struct crew__pqueue *p, enum side side)
{
  return atomic_load_explicit(&p->waiting[side], memory_order_relaxed);
}

/* With the lock held: sleep on side's condition variable until woken or
 * d; the sleeper is counted from the moment `counted` says (see take). */
static int sleep_on(struct crew__pqueue *p, enum side side, crew__deadline d)
{
  (void)CREW__HOOK(CREW_TP_WAIT, &p->cv[side]);
  int rc = crew__cond_wait(&p->cv[side], &p->lock, d);
  atomic_store_explicit(&p->waiting[side], waiting(p, side) - 1,
                        memory_order_relaxed);
  if (p->signalled[side] > 0) /* ours, or one a leaver would have had */
    p->signalled[side]--;
  return rc;
}

static void count_sleeper(struct crew__pqueue *p, enum side side)
{
  atomic_store_explicit(&p->waiting[side], waiting(p, side) + 1,
                        memory_order_seq_cst);
}

/* With the lock held: signal up to n sleepers of `side` that nobody has
 * signalled yet. */
static void wake(struct crew__pqueue *p, enum side side, size_t n)
{
  uint32_t unsignalled = waiting(p, side) - p->signalled[side];
  if (unsignalled == 0 || n == 0)
    return;
  size_t k = min_size(n, unsignalled);
  (void)CREW__HOOK(CREW_TP_WAKE, &p->cv[side]);
  p->signalled[side] += (uint32_t)k;
  for (size_t i = 0; i < k; i++)
    crew__cond_signal(&p->cv[side]);
}

/* With the lock held, after n items were pushed: wake poppers for them,
 * one fewer the first time during a popper's spin (`spinning` 1 -> 2: that
 * item is promised to the spinner, which looks again under the lock once
 * its spin ends). A sleeper woken for it would only fight the spinner for
 * a core and take the item a futex wake-up later. */
static void wake_pushed(struct crew__pqueue *p, size_t n)
{
  if (n > 0 && crew__queue_spinner_takes(&p->spinning))
    n--;
  wake(p, POPPER, n);
}

/*
 * With the lock held, by a popper about to wait: unless another thread
 * spins already, drop the lock, spin up to spin_ns until a push or a close
 * may let the caller on, and take the lock again. Whether it spun.
 */
static bool spin_unlocked(struct crew__pqueue *p, uint64_t spin_ns)
{
  if (spin_ns == 0 || spin_ns == CREW_IDLE_SPIN_OFF ||
      atomic_load_explicit(&p->spinning, memory_order_relaxed) ||
      atomic_exchange_explicit(&p->spinning, 1, memory_order_relaxed))
    return false;
  uint32_t seen = atomic_load_explicit(&p->items, memory_order_relaxed);
  crew__mutex_unlock(&p->lock);
  uint64_t start = crew__now_ns();
  for (unsigned i = 1;
       atomic_load_explicit(&p->items, memory_order_acquire) == seen &&
       !atomic_load_explicit(&p->closed, memory_order_relaxed);
       i++) {
    crew__cpu_relax();
    if (i % 64 == 0 && crew__now_ns() - start >= spin_ns)
      break;
  }
  atomic_store_explicit(&p->spinning, 0, memory_order_relaxed);
  crew__mutex_lock(&p->lock);
  return true;
}

/* ------------------------------------------------------ push, pop, close */

/* With the lock held: push up to count - *done items, until they are in,
 * the queue closes or d passes. */
static int push_locked(struct crew__pqueue *p, const unsigned char *src,
                       size_t count, size_t *done, crew__deadline d)
{
  int rc = 0;
  while (*done < count) {
    if (p->closed)
      return CREW_ECLOSED;
    size_t room = p->q.capacity - queued(p);
    if (room > 0) {
      size_t n = min_size(room, count - *done);
      ring_put(p, src + *done * p->q.item_size, n);
      *done += n;
      wake_pushed(p, n);
      continue;
    }
    if (rc == CREW_ETIMEDOUT) /* after a timeout, one more look */
      return rc;
    count_sleeper(p, PUSHER);
    rc = sleep_on(p, PUSHER, d);
  }
  return 0;
}

static int private_push(crew_queue *q, const void *items, size_t count,
                        size_t *pushed, crew__deadline d)
{
  struct crew__pqueue *p = pq(q);
  size_t done = 0;
  crew__mutex_lock(&p->lock);
  int rc = push_locked(p, items, count, &done, d);
  crew__mutex_unlock(&p->lock);
  *pushed = done;
  return rc;
}

int crew__queue_put_slow(crew_queue *q, const void *item, crew__deadline d)
{
  struct crew__pqueue *p = pq(q);
  size_t done = 0;
  int rc = 0;
  if (item == NULL) /* pushed already: a popper sleeps */
    wake_pushed(p, 1);
  else
    rc = push_locked(p, item, 1, &done, d);
  crew__mutex_unlock(&p->lock);
  return rc;
}

/*
 * The popper's loop: wait (spinning first, unless a try) until items are
 * queued or the queue is closed and empty or d passes, then take up to max
 * of them, but no more than a 1/share of those queued (at least one). A
 * popper about to sleep counts itself a sleeper, then asks `idle` (if not
 * NULL, with the lock held) whether there is work elsewhere: then it
 * returns CREW__ELSEWHERE instead of sleeping.
 */
static int take(struct crew__pqueue *p, unsigned char *items, size_t max,
                size_t share, size_t *popped, crew__deadline d,
                uint64_t spin_ns, bool (*idle)(void *), void *arg)
{
  int rc = 0;
  bool spun = d.at == 0; /* a try does not spin */
  crew__mutex_lock(&p->lock);
  for (;;) {
    size_t n = queued(p);
    if (n > 0) {
      n = min_size(max, (n + share - 1) / share);
      ring_take(p, items, n);
      wake(p, PUSHER, n);
      crew__mutex_unlock(&p->lock);
      *popped = n;
      return 0;
    }
    if (p->closed || rc == CREW_ETIMEDOUT) {
      rc = p->closed ? CREW_ECLOSED : rc;
      break;
    }
    if (!spun && (spun = spin_unlocked(p, spin_ns)))
      continue;
    count_sleeper(p, POPPER);
    if (idle != NULL && idle(arg)) {
      atomic_store_explicit(&p->waiting[POPPER], waiting(p, POPPER) - 1,
                            memory_order_relaxed);
      rc = CREW__ELSEWHERE;
      break;
    }
    rc = sleep_on(p, POPPER, d);
  }
  crew__mutex_unlock(&p->lock);
  *popped = 0;
  return rc;
}

static int private_pop(crew_queue *q, void *items, size_t max, size_t *popped,
                       crew__deadline d, uint64_t spin_ns)
{
  return take(pq(q), items, max, 1, popped, d, spin_ns, NULL, NULL);
}

int crew__queue_take(crew_queue *q, void *items, size_t max, size_t share,
                     size_t *popped, uint64_t spin_ns, bool (*idle)(void *),
                     void *arg)
{
  return take(pq(q), items, max, share, popped, (crew__deadline){CREW__NEVER},
              spin_ns, idle, arg);
}

void crew__queue_nudge(crew_queue *q)
{
  struct crew__pqueue *p = pq(q);
  if (atomic_load_explicit(&p->waiting[POPPER], memory_order_seq_cst) == 0)
    return; /* a popper counting itself from now on sees the work first */
  crew__mutex_lock(&p->lock);
  wake(p, POPPER, 1);
  crew__mutex_unlock(&p->lock);
}

static void private_close(crew_queue *q)
{
  struct crew__pqueue *p = pq(q);
  crew__mutex_lock(&p->lock);
  atomic_store_explicit(&p->closed, 1, memory_order_relaxed);
  (void)CREW__HOOK(CREW_TP_WAKE, &p->cv[POPPER]);
  crew__cond_broadcast(&p->cv[POPPER]);
  crew__cond_broadcast(&p->cv[PUSHER]);
  crew__mutex_unlock(&p->lock);
}

static bool private_is_closed(crew_queue *q)
{
  struct crew__pqueue *p = pq(q);
  crew__mutex_lock(&p->lock);
  bool closed = p->closed != 0;
  crew__mutex_unlock(&p->lock);
  return closed;
}

static size_t private_size(crew_queue *q)
{
  struct crew__pqueue *p = pq(q);
  crew__mutex_lock(&p->lock);
  size_t n = queued(p);
  crew__mutex_unlock(&p->lock);
  return n;
}

static void private_destroy(crew_queue *q)
{
  struct crew__pqueue *p = pq(q);
  crew__cond_destroy(&p->cv[PUSHER]);
  crew__cond_destroy(&p->cv[POPPER]);
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
  if (capacity > (SIZE_MAX - sizeof(struct crew__pqueue) - 63) / item_size)
    return CREW_EINVAL;
  size_t size =
      (sizeof(struct crew__pqueue) + capacity * item_size + 63) / 64 * 64;
  struct crew__pqueue *p = crew__aligned_alloc(64, size);
  if (p == NULL)
    return CREW_ENOMEM;
  memset(p, 0, sizeof *p);
  p->q = (struct crew_queue){NULL, &private_ops, capacity, item_size};
  p->mask = (capacity & (capacity - 1)) == 0 ? capacity - 1 : 0;
  if (crew__mutex_init(&p->lock) != 0)
    goto fail_lock;
  if (crew__cond_init(&p->cv[POPPER]) != 0)
    goto fail_not_empty;
  if (crew__cond_init(&p->cv[PUSHER]) != 0)
    goto fail_not_full;
  *qp = &p->q;
  return 0;

fail_not_full:
  crew__cond_destroy(&p->cv[POPPER]);
fail_not_empty:
  crew__mutex_destroy(&p->lock);
fail_lock:
  free(p);
  return CREW_ENOMEM;
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
