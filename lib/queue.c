/*
 * queue.c - the bounded MPMC queue: a ring of fixed-size items copied by
 * value, one mutex, two wait sets ("not empty", "not full").
 *
 * Layout: one block holds the header and the ring of `capacity` items of
 * `item_size` bytes: malloc'd for a private queue, a MAP_SHARED mapping for
 * a CREW_SHARED one (inherited by every process forked after create). `head`
 * and `tail` count the items ever taken and ever put; items [head, tail)
 * are queued, oldest first, item k at ring slot k % capacity.
 *
 * Crash safety (CREW_SHARED): every change of state is one store made after
 * the bytes it publishes: a put copies the items, then advances tail; a take
 * copies them out, then advances head. A process that dies at any point,
 * holding the lock, leaves the queue as it was before or after its call,
 * never in between; the next locker sees CREW__OWNER_DIED, checks the
 * counters, wakes everyone (the dead process may have owed a wake-up) and
 * marks the lock consistent.
 *
 * Locking: `lock` guards every field below it except capacity, item_size,
 * flags, creator and ring, which never change after create. There is no
 * other lock, so there is no lock order.
 *
 * Waking: pushers wait on not_full, poppers on not_empty; each side counts
 * its waiters under the lock. A push of n items wakes at most min(n, poppers
 * waiting) poppers, a pop of n items at most min(n, pushers waiting)
 * pushers; only close wakes everyone. Wake-ups are sent with the lock held,
 * so a call's last touch of the queue is its unlock: a thread that pops the
 * last item another thread pushed may destroy the queue at once (glibc, like
 * POSIX, makes destroying a mutex right after another thread's unlock safe).
 * Every waiter rechecks its predicate after any wake-up, a timed-out one
 * included, so a wake-up that reaches a thread which then leaves cannot
 * strand an item. A process killed while waiting leaves its waiter count
 * behind (extra wake-ups, never missing ones); crew__queue_forget_waiters()
 * resets the counts under a new generation.
 *
 * Spinning: before a popper sleeps on an empty queue (or a pusher on a
 * full one) it may spin a while, without the lock, reading head, tail and
 * `closed` until the queue changes: most waits in a busy program are short,
 * and a spinner is woken by the change itself, not by a system call (it is
 * not counted as a waiter, so pushers see nobody to wake). At most one
 * thread spins per side (`spinning`), the spin is bounded in time, and a
 * timed call with a zero timeout never spins.
 *
 * Fairness: FIFO for items. Threads are woken in the order the wait set
 * chooses; crew promises no order among waiters.
 */
#include "config.h"

#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct crew_queue {
  crew__mutex lock;
  crew__waitset not_empty;  /* poppers wait here */
  crew__waitset not_full;   /* pushers wait here */
  _Atomic uint64_t head;    /* items ever taken (release stores: see top) */
  _Atomic uint64_t tail;    /* items ever put */
  size_t pop_waiters;       /* threads waiting on not_empty */
  size_t push_waiters;      /* threads waiting on not_full */
  uint64_t waiter_gen;      /* bumped when the waiter counts are reset */
  _Atomic bool closed;      /* written under the lock, read by spinners */
  _Atomic bool spinning[2]; /* [POPPER], [PUSHER]: one spinner each */
  /* Constant after create: */
  size_t capacity;
  size_t item_size;
  size_t mask; /* capacity - 1 if a power of two, else 0 */
  unsigned flags;
  pid_t creator;       /* CREW_SHARED: the process that destroys the objects */
  size_t map_size;     /* CREW_SHARED: the mapping's length */
  unsigned char *ring; /* capacity * item_size bytes, after the header */
};

enum side { POPPER, PUSHER };

/* How long a blocking push or pop spins before it sleeps. */
#define QUEUE_SPIN_NS 20000u

static size_t min_size(size_t a, size_t b)
{
  return a < b ? a : b;
}

static bool is_shared(const crew_queue *q)
{
  return (q->flags & CREW_SHARED) != 0;
}

static uint64_t load(const _Atomic uint64_t *counter)
{
  return atomic_load_explicit(counter, memory_order_relaxed); /* lock held */
}

static size_t queued(const crew_queue *q)
{
  return (size_t)(load(&q->tail) - load(&q->head));
}

/* ----------------------------------------------------------------- locking */

/* After a process died holding the lock: check, wake all, mark consistent. */
static void recover(crew_queue *q)
{
  if (queued(q) > q->capacity) /* cannot happen: single stores */
    atomic_store_explicit(&q->head, load(&q->tail), memory_order_relaxed);
  crew__waitset_wake_all(&q->not_empty);
  crew__waitset_wake_all(&q->not_full);
  crew__mutex_consistent(&q->lock);
}

static void lock(crew_queue *q)
{
  if (!is_shared(q))
    crew__mutex_lock(&q->lock);
  else if (crew__mutex_lock_robust(&q->lock) == CREW__OWNER_DIED)
    recover(q);
}

static void unlock(crew_queue *q)
{
  crew__mutex_unlock(&q->lock);
}

/* ------------------------------------------------------------------ create */

static int init_sync(crew_queue *q)
{
  bool shared = is_shared(q);
  int rc =
      shared ? crew__mutex_init_shared(&q->lock) : crew__mutex_init(&q->lock);
  if (rc != 0)
    return rc;
  if ((rc = crew__waitset_init(&q->not_empty, shared)) != 0)
    goto fail_not_empty;
  if ((rc = crew__waitset_init(&q->not_full, shared)) != 0)
    goto fail_not_full;
  return 0;

fail_not_full:
  crew__waitset_destroy(&q->not_empty);
fail_not_empty:
  crew__mutex_destroy(&q->lock);
  return rc;
}

static void release_memory(crew_queue *q)
{
  if (is_shared(q))
    munmap(q, q->map_size);
  else
    free(q);
}

int crew_queue_create(crew_queue **qp, size_t capacity, size_t item_size,
                      unsigned flags)
{
  if (qp == NULL || capacity == 0 || item_size == 0 ||
      (flags & ~(unsigned)CREW_SHARED) != 0)
    return CREW_EINVAL;
  if (capacity > (SIZE_MAX - sizeof(crew_queue)) / item_size)
    return CREW_EINVAL;
  size_t size = sizeof(crew_queue) + capacity * item_size;
  crew_queue *q;
  if (flags & CREW_SHARED) {
    void *p = crew__mmap(NULL, size, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    q = p == MAP_FAILED ? NULL : p;
  } else {
    q = crew__malloc(size);
  }
  if (q == NULL)
    return CREW_ENOMEM;
  *q = (crew_queue){.capacity = capacity,
                    .item_size = item_size,
                    .flags = flags,
                    .creator = getpid(),
                    .map_size = size,
                    .mask = (capacity & (capacity - 1)) == 0 ? capacity - 1 : 0,
                    .ring = (unsigned char *)(q + 1)};
  int rc = init_sync(q);
  if (rc != 0) {
    release_memory(q);
    return rc;
  }
  *qp = q;
  return 0;
}

void crew_queue_destroy(crew_queue *q)
{
  if (q == NULL)
    return;
  /* A shared queue's objects belong to its creator; another process only
   * drops its own mapping. */
  if (!is_shared(q) || getpid() == q->creator) {
    crew__waitset_destroy(&q->not_full);
    crew__waitset_destroy(&q->not_empty);
    crew__mutex_destroy(&q->lock);
  }
  release_memory(q);
}

/* ---------------------------------------------------------- ring copying */

/* The ring slot of the item counted `at`. */
static size_t slot_of(const crew_queue *q, uint64_t at)
{
  return q->mask != 0 || q->capacity == 1 ? (size_t)(at & q->mask)
                                          : (size_t)(at % q->capacity);
}

/* Copy n items of the queue's size; the common sizes with a constant size,
 * which the compiler turns into a few moves instead of a call. */
static void copy_items(const crew_queue *q, unsigned char *dst,
                       const unsigned char *src, size_t n)
{
  if (n == 1 && q->item_size == sizeof(struct crew__task))
    memcpy(dst, src, sizeof(struct crew__task));
  else if (n == 1 && q->item_size == sizeof(void *))
    memcpy(dst, src, sizeof(void *));
  else if (n > 0)
    memcpy(dst, src, n * q->item_size);
}

/* Append n items from src; the caller made sure they fit. */
static void ring_put(crew_queue *q, const unsigned char *src, size_t n)
{
  crew__assert_held(&q->lock);
  crew__assert(queued(q) + n <= q->capacity);
  size_t at = slot_of(q, load(&q->tail));
  size_t first = min_size(n, q->capacity - at);
  copy_items(q, q->ring + at * q->item_size, src, first);
  copy_items(q, q->ring, src + first * q->item_size, n - first);
  /* Publishes the items: one store, ordered after the copy, for whoever
   * locks next even if this process dies right now. */
  atomic_store_explicit(&q->tail, load(&q->tail) + n, memory_order_release);
  (void)CREW__HOOK(CREW_TP_ENQUEUE, q);
}

/* Remove n items into dst; the caller made sure they exist. */
static void ring_take(crew_queue *q, unsigned char *dst, size_t n)
{
  crew__assert_held(&q->lock);
  crew__assert(n <= queued(q));
  size_t at = slot_of(q, load(&q->head));
  size_t first = min_size(n, q->capacity - at);
  copy_items(q, dst, q->ring + at * q->item_size, first);
  copy_items(q, dst + first * q->item_size, q->ring, n - first);
  /* The items leave: one store, ordered after the copy. */
  atomic_store_explicit(&q->head, load(&q->head) + n, memory_order_release);
  (void)CREW__HOOK(CREW_TP_DEQUEUE, q);
}

/* ---------------------------------------------------------------- waiting */

/*
 * Wait with the lock held until the predicate may hold or `d` passes.
 * Returns 0 to recheck, or CREW_ETIMEDOUT once the deadline has passed.
 */
static int wait_on(crew_queue *q, crew__waitset *ws, size_t *waiters,
                   crew__deadline d)
{
  uint64_t gen = q->waiter_gen;
  (*waiters)++;
  int rc = crew__waitset_wait(ws, &q->lock, d);
  if (rc == CREW__OWNER_DIED) {
    recover(q);
    rc = 0;
  }
  if (q->waiter_gen == gen) /* else the counts were reset meanwhile */
    (*waiters)--;
  return rc;
}

/* Wake one waiter per item or slot, but no more than are waiting. */
static void wake(crew__waitset *ws, size_t n, size_t waiters)
{
  crew__waitset_wake(ws, min_size(n, waiters));
}

/* Without the lock: whether `side` may go on (items, or room, or closed). */
static bool may_proceed(const crew_queue *q, enum side side)
{
  uint64_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
  uint64_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
  if (atomic_load_explicit(&q->closed, memory_order_relaxed))
    return true;
  return side == POPPER ? tail != head : tail - head < q->capacity;
}

/*
 * Called with the lock held by a caller about to wait: unless another
 * thread spins for this side already, drop the lock, spin up to spin_ns
 * until the queue may let the caller on, and take the lock again. Returns
 * whether it spun (the caller then rechecks before it waits).
 */
static bool spin_unlocked(crew_queue *q, enum side side, uint64_t spin_ns)
{
  if (spin_ns == 0 || spin_ns == CREW_IDLE_SPIN_OFF ||
      atomic_load_explicit(&q->spinning[side], memory_order_relaxed) ||
      atomic_exchange_explicit(&q->spinning[side], true, memory_order_relaxed))
    return false;
  unlock(q);
  uint64_t start = crew__now_ns();
  for (unsigned i = 1; !may_proceed(q, side); i++) {
    crew__cpu_relax();
    if (i % 64 == 0 && crew__now_ns() - start >= spin_ns)
      break;
  }
  atomic_store_explicit(&q->spinning[side], false, memory_order_relaxed);
  lock(q);
  return true;
}

void crew__queue_forget_waiters(crew_queue *q)
{
  lock(q);
  q->waiter_gen++;
  q->pop_waiters = 0;
  q->push_waiters = 0;
  /* A process killed while spinning left its flag set. */
  atomic_store_explicit(&q->spinning[POPPER], false, memory_order_relaxed);
  atomic_store_explicit(&q->spinning[PUSHER], false, memory_order_relaxed);
  crew__waitset_wake_all(&q->not_empty);
  crew__waitset_wake_all(&q->not_full);
  unlock(q);
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
  bool spun = d.at == 0; /* a try does not spin */
  lock(q);
  while (done < count) {
    if (q->closed) {
      rc = CREW_ECLOSED;
      break;
    }
    size_t room = q->capacity - queued(q);
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
    if (!spun && (spun = spin_unlocked(q, PUSHER, QUEUE_SPIN_NS)))
      continue;
    rc = wait_on(q, &q->not_full, &q->push_waiters, d);
  }
  unlock(q);
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
                     size_t *popped, crew__deadline d, uint64_t spin_ns)
{
  int rc = 0;
  bool spun = d.at == 0; /* a try does not spin */
  lock(q);
  for (;;) {
    if (queued(q) > 0) {
      size_t n = min_size(queued(q), max);
      ring_take(q, items, n);
      wake(&q->not_full, n, q->push_waiters);
      unlock(q);
      *popped = n;
      return 0;
    }
    if (q->closed) {
      rc = CREW_ECLOSED;
      break;
    }
    if (rc == CREW_ETIMEDOUT)
      break;
    if (!spun && (spun = spin_unlocked(q, POPPER, spin_ns)))
      continue;
    rc = wait_on(q, &q->not_empty, &q->pop_waiters, d);
  }
  unlock(q);
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
  return pop_until(q, item, 1, &popped, crew__deadline_in(timeout_ns),
                   QUEUE_SPIN_NS);
}

int crew__queue_pop_spin(crew_queue *q, void *item, uint64_t spin_ns)
{
  size_t popped;
  return pop_until(q, item, 1, &popped, (crew__deadline){CREW__NEVER}, spin_ns);
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
  return pop_until(q, items, max, popped, crew__deadline_in(timeout_ns),
                   QUEUE_SPIN_NS);
}

/* ------------------------------------------------------------ the rest */

void crew_queue_close(crew_queue *q)
{
  if (q == NULL)
    return;
  lock(q);
  atomic_store_explicit(&q->closed, true, memory_order_relaxed);
  crew__waitset_wake_all(&q->not_empty);
  crew__waitset_wake_all(&q->not_full);
  unlock(q);
}

bool crew_queue_is_closed(const crew_queue *cq)
{
  if (cq == NULL)
    return false;
  crew_queue *q = (crew_queue *)cq; /* the lock is not part of the value */
  lock(q);
  bool closed = q->closed;
  unlock(q);
  return closed;
}

size_t crew_queue_size(const crew_queue *cq)
{
  if (cq == NULL)
    return 0;
  crew_queue *q = (crew_queue *)cq; /* the lock is not part of the value */
  lock(q);
  size_t n = queued(q);
  unlock(q);
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
