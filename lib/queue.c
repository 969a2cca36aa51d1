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
 * (with a pthread mutex) marks the lock consistent.
 *
 * Two parts: the handle (struct crew_queue) is private to each process
 * and holds what never changes (geometry, flags); the state (struct
 * queue_state: lock, wait sets, counters) sits in the block with the ring.
 * For a CREW_SHARED queue that block is the shared mapping and the handle is
 * each process's own copy, made by fork; so a process that writes garbage
 * over the shared block can change which items are queued, never where the
 * ring is or how long. On Linux the shared state holds no pthread object:
 * its lock is a futex word naming the holder's pid (crew__slock) and its
 * wait sets are futex words, so no garbage makes a caller crash or wait for
 * ever; head and tail are read under the lock and a state where more than
 * `capacity` items would be queued is treated as corrupt: the queue is then
 * closed for the process that found it (every call gives CREW_ECLOSED and
 * items are not read) and wakes everyone.
 *
 * Locking: the state's lock guards every field of the state. There is no
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
 * Spinning: before a popper sleeps on an empty queue it may spin a while,
 * without the lock, reading head, tail and `closed` until the queue
 * changes (pushers on a full queue do not: see PUSH_SPIN_NS): most waits in a
 * busy program are short, and a spinner is woken by the change itself, not by a
 * system call (it is not counted as a waiter, so pushers see nobody to wake).
 * At most one thread spins per side (`spinning`), the spin is bounded in time,
 * and a timed call with a zero timeout never spins.
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

/* What changes: in the block with the ring (shared memory for CREW_SHARED
 * queues, where it may be garbage: see the top). */
struct queue_state {
  crew__mutex lock; /* private queues (and shared ones without futexes) */
  crew__waitset not_empty;         /* poppers wait here */
  crew__waitset not_full;          /* pushers wait here */
  _Atomic uint32_t slock;          /* shared queues with futexes: the lock */
  _Atomic uint32_t not_empty_wake; /* ... and their wait words */
  _Atomic uint32_t not_full_wake;
  _Atomic uint64_t head;        /* items ever taken (release stores) */
  _Atomic uint64_t tail;        /* items ever put */
  uint64_t pop_waiters;         /* threads waiting for items */
  uint64_t push_waiters;        /* threads waiting for room */
  uint64_t waiter_gen;          /* bumped when the waiter counts reset */
  _Atomic uint32_t closed;      /* written under the lock, read by spinners */
  _Atomic uint32_t spinning[2]; /* [POPPER], [PUSHER]: one spinner each */
};

/* The handle: private to each process, constant after create but for
 * `broken`. */
struct crew_queue {
  struct queue_state *s;
  unsigned char *ring; /* capacity * item_size bytes, after the state */
  size_t capacity;
  size_t item_size;
  size_t mask; /* capacity - 1 if a power of two, else 0 */
  unsigned flags;
  _Atomic bool broken; /* this process found the shared state corrupt */
  pid_t creator;       /* CREW_SHARED: the process that destroys objects */
  size_t map_size;     /* CREW_SHARED: the mapping's length */
#ifdef CREW__SLOCK
  crew__slock_local me; /* slocked(): this process's threads */
  /* crew__queue_own_side(): the one process that pushes (or pops), and its
   * own count of that side's counter (under the lock). */
  int owned_side; /* 0: none; PUSHER + 1 or POPPER + 1 */
  uint32_t owner_pid;
  uint64_t owned_count;
#endif
};

enum side { POPPER, PUSHER };

/* How long a blocking push or pop spins before it sleeps. */
/* How long a blocking pop spins on an empty queue before it sleeps, and a
 * blocking push on a full one: not at all, since a full queue means the
 * consumers are behind, and a spinning producer only takes a core from
 * them (W1 of bench/bench_suite: up to half the throughput on 2 cores). */
#ifndef QUEUE_SPIN_NS
#define QUEUE_SPIN_NS 20000u
#endif
#ifndef PUSH_SPIN_NS
#define PUSH_SPIN_NS 0u
#endif

static size_t min_size(size_t a, size_t b)
{
  return a < b ? a : b;
}

static bool is_shared(const crew_queue *q)
{
  return (q->flags & CREW_SHARED) != 0;
}

/* Whether the queue's lock and waits are crew__slock words: a CREW_SHARED
 * queue where there are futexes (else a robust mutex and condvars). */
static bool slocked(const crew_queue *q)
{
#ifdef CREW__SLOCK
  return is_shared(q);
#else
  (void)q;
  return false;
#endif
}

static uint64_t load(const _Atomic uint64_t *counter)
{
  return atomic_load_explicit(counter, memory_order_relaxed); /* lock held */
}

/* Items queued, as head and tail say: more than capacity if corrupt. */
static uint64_t queued(const crew_queue *q)
{
  return load(&q->s->tail) - load(&q->s->head);
}

/* ----------------------------------------------------------------- locking */

static void wake_all(crew_queue *q);

#ifdef CREW__SLOCK
/* With the lock held: whether this process is the queue's one pusher or
 * popper (the lock has refreshed q->me.pid in a forked child). */
static bool owns_side(const crew_queue *q)
{
  return q->owned_side != 0 && q->owner_pid == q->me.pid;
}
#endif

/*
 * With the lock held: whether this process must treat the queue as closed
 * because its shared state is corrupt (more items than the ring holds:
 * single stores cannot leave that behind, only garbage can). The first
 * caller to see it wakes everyone, so no thread of this process sleeps on.
 */
static bool corrupt_shared(crew_queue *q)
{
  if (atomic_load_explicit(&q->broken, memory_order_relaxed))
    return true;
  bool bad = queued(q) > q->capacity;
#ifdef CREW__SLOCK
  if (owns_side(q))
    bad =
        bad || load(q->owned_side == PUSHER + 1 ? &q->s->tail : &q->s->head) !=
                   q->owned_count;
#endif
  if (!bad)
    return false;
  atomic_store_explicit(&q->broken, true, memory_order_relaxed);
  wake_all(q);
  return true;
}

static inline bool corrupt(crew_queue *q)
{
  /* Nobody else writes a private queue's state. */
  return is_shared(q) && corrupt_shared(q);
}

/* After a process died holding the lock: wake all (the dead one may have
 * owed a wake-up), and mark a robust mutex consistent. The counters are
 * checked by each call (corrupt()). */
static void recover(crew_queue *q)
{
  wake_all(q);
  if (!slocked(q))
    crew__mutex_consistent(&q->s->lock);
}

static void lock_shared(crew_queue *q)
{
#ifdef CREW__SLOCK
  if (slocked(q)) {
    if (crew__slock_lock(&q->s->slock, &q->me) == CREW__OWNER_DIED)
      recover(q);
    return;
  }
#endif
  if (crew__mutex_lock_robust(&q->s->lock) == CREW__OWNER_DIED)
    recover(q);
}

static inline void lock(crew_queue *q)
{
  if (!is_shared(q))
    crew__mutex_lock(&q->s->lock);
  else
    lock_shared(q);
}

static inline void unlock(crew_queue *q)
{
#ifdef CREW__SLOCK
  if (slocked(q)) {
    crew__slock_unlock(&q->s->slock, &q->me);
    return;
  }
#endif
  crew__mutex_unlock(&q->s->lock);
}

/* Debug builds: the pthread mutex is held (the futex lock has no owner
 * record to assert on). */
static void assert_locked(const crew_queue *q)
{
  if (!slocked(q))
    crew__assert_held(&q->s->lock);
}

/* ------------------------------------------------------------------ create */

static int init_sync(crew_queue *q)
{
  struct queue_state *s = q->s;
#ifdef CREW__SLOCK
  if (slocked(q)) { /* the words are zero: free, nobody waiting */
    atomic_init(&s->slock, 0);
    atomic_init(&s->not_empty_wake, 0);
    atomic_init(&s->not_full_wake, 0);
    return crew__slock_local_init(&q->me);
  }
#endif
  bool shared = is_shared(q);
  int rc =
      shared ? crew__mutex_init_shared(&s->lock) : crew__mutex_init(&s->lock);
  if (rc != 0)
    return rc;
  if ((rc = crew__waitset_init(&s->not_empty, shared)) != 0)
    goto fail_not_empty;
  if ((rc = crew__waitset_init(&s->not_full, shared)) != 0)
    goto fail_not_full;
  return 0;

fail_not_full:
  crew__waitset_destroy(&s->not_empty);
fail_not_empty:
  crew__mutex_destroy(&s->lock);
  return rc;
}

/* Room for the handle, rounded to a cache line: the state follows it in a
 * private queue's block. */
#define HANDLE_ROOM ((sizeof(crew_queue) + 63) / 64 * 64)

static void release_memory(crew_queue *q)
{
  if (is_shared(q))
    munmap(q->s, q->map_size);
  free(q);
}

int crew_queue_create(crew_queue **qp, size_t capacity, size_t item_size,
                      unsigned flags)
{
  if (qp == NULL || capacity == 0 || item_size == 0 ||
      (flags & ~(unsigned)CREW_SHARED) != 0)
    return CREW_EINVAL;
  const size_t fixed = HANDLE_ROOM + sizeof(struct queue_state);
  if (capacity > (SIZE_MAX - fixed) / item_size)
    return CREW_EINVAL;
  size_t ring_size = capacity * item_size;
  bool shared = (flags & CREW_SHARED) != 0;
  crew_queue *q = crew__aligned_alloc(
      64, shared ? HANDLE_ROOM : (fixed + ring_size + 63) / 64 * 64);
  if (q == NULL)
    return CREW_ENOMEM;
  struct queue_state *s = (struct queue_state *)((char *)q + HANDLE_ROOM);
  size_t map_size = sizeof *s + ring_size;
  if (shared) {
    void *p = crew__mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      free(q);
      return CREW_ENOMEM;
    }
    s = p;
  }
  memset(s, 0, sizeof *s);
  *q =
      (crew_queue){.s = s,
                   .ring = (unsigned char *)(s + 1),
                   .capacity = capacity,
                   .item_size = item_size,
                   .flags = flags,
                   .creator = getpid(),
                   .map_size = map_size,
                   .mask = (capacity & (capacity - 1)) == 0 ? capacity - 1 : 0};
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
#ifdef CREW__SLOCK
  if (slocked(q)) { /* nothing but words in the shared block */
    crew__slock_local_fini(&q->me);
    release_memory(q);
    return;
  }
#endif
  /* A shared queue's objects belong to its creator; another process only
   * drops its own mapping. */
  if (!is_shared(q) || getpid() == q->creator) {
    crew__waitset_destroy(&q->s->not_full);
    crew__waitset_destroy(&q->s->not_empty);
    crew__mutex_destroy(&q->s->lock);
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
  assert_locked(q);
  size_t at = slot_of(q, load(&q->s->tail));
  size_t first = min_size(n, q->capacity - at);
  copy_items(q, q->ring + at * q->item_size, src, first);
  copy_items(q, q->ring, src + first * q->item_size, n - first);
  /* Publishes the items: one store, ordered after the copy, for whoever
   * locks next even if this process dies right now. */
  atomic_store_explicit(&q->s->tail, load(&q->s->tail) + n,
                        memory_order_release);
#ifdef CREW__SLOCK
  if (owns_side(q) && q->owned_side == PUSHER + 1)
    q->owned_count += n;
#endif
  (void)CREW__HOOK(CREW_TP_ENQUEUE, q);
}

/* Remove n items into dst; the caller made sure they exist. */
static void ring_take(crew_queue *q, unsigned char *dst, size_t n)
{
  assert_locked(q);
  size_t at = slot_of(q, load(&q->s->head));
  size_t first = min_size(n, q->capacity - at);
  copy_items(q, dst, q->ring + at * q->item_size, first);
  copy_items(q, dst + first * q->item_size, q->ring, n - first);
  /* The items leave: one store, ordered after the copy. */
  atomic_store_explicit(&q->s->head, load(&q->s->head) + n,
                        memory_order_release);
#ifdef CREW__SLOCK
  if (owns_side(q) && q->owned_side == POPPER + 1)
    q->owned_count += n;
#endif
  (void)CREW__HOOK(CREW_TP_DEQUEUE, q);
}

/* ---------------------------------------------------------------- waiting */

/*
 * Wait with the lock held until the predicate may hold or `d` passes.
 * Returns 0 to recheck, or CREW_ETIMEDOUT once the deadline has passed.
 */
static int wait_on(crew_queue *q, enum side side, crew__deadline d)
{
  struct queue_state *s = q->s;
  uint64_t *waiters = side == POPPER ? &s->pop_waiters : &s->push_waiters;
  uint64_t gen = s->waiter_gen;
  (*waiters)++;
  int rc;
#ifdef CREW__SLOCK
  if (slocked(q))
    rc = crew__slock_wait(side == POPPER ? &s->not_empty_wake
                                         : &s->not_full_wake,
                          &s->slock, &q->me, d);
  else
#endif
    rc = crew__waitset_wait(side == POPPER ? &s->not_empty : &s->not_full,
                            &s->lock, d);
  if (rc == CREW__OWNER_DIED) {
    recover(q);
    rc = 0;
  }
  if (s->waiter_gen == gen) /* else the counts were reset meanwhile */
    (*waiters)--;
  return rc;
}

/* Wake up to n waiters of `side` (SIZE_MAX: all of them). */
static void wake_side(crew_queue *q, enum side side, size_t n)
{
  struct queue_state *s = q->s;
#ifdef CREW__SLOCK
  if (slocked(q)) {
    crew__slock_wake(side == POPPER ? &s->not_empty_wake : &s->not_full_wake,
                     n);
    return;
  }
#endif
  crew__waitset *ws = side == POPPER ? &s->not_empty : &s->not_full;
  if (n == SIZE_MAX)
    crew__waitset_wake_all(ws);
  else
    crew__waitset_wake(ws, n);
}

/* Wake one waiter of `side` per item or slot, but no more than wait. */
static void wake(crew_queue *q, enum side side, size_t n)
{
  uint64_t waiters = side == POPPER ? q->s->pop_waiters : q->s->push_waiters;
  if (waiters > 0)
    wake_side(q, side, waiters < n ? (size_t)waiters : n);
}

static void wake_all(crew_queue *q)
{
  wake_side(q, POPPER, SIZE_MAX);
  wake_side(q, PUSHER, SIZE_MAX);
}

/* Without the lock: whether `side` may go on (items, or room, or closed). */
static bool may_proceed(const crew_queue *q, enum side side)
{
  uint64_t tail = atomic_load_explicit(&q->s->tail, memory_order_relaxed);
  uint64_t head = atomic_load_explicit(&q->s->head, memory_order_relaxed);
  if (atomic_load_explicit(&q->s->closed, memory_order_relaxed) ||
      atomic_load_explicit(&q->broken, memory_order_relaxed))
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
      atomic_load_explicit(&q->s->spinning[side], memory_order_relaxed) ||
      atomic_exchange_explicit(&q->s->spinning[side], 1, memory_order_relaxed))
    return false;
  unlock(q);
  uint64_t start = crew__now_ns();
  for (unsigned i = 1; !may_proceed(q, side); i++) {
    crew__cpu_relax();
    if (i % 64 == 0 && crew__now_ns() - start >= spin_ns)
      break;
  }
  atomic_store_explicit(&q->s->spinning[side], 0, memory_order_relaxed);
  lock(q);
  return true;
}

void crew__queue_own_side(crew_queue *q, bool pusher)
{
#ifdef CREW__SLOCK
  if (!slocked(q))
    return;
  lock(q);
  q->owned_side = pusher ? PUSHER + 1 : POPPER + 1;
  q->owner_pid = q->me.pid;
  q->owned_count = load(pusher ? &q->s->tail : &q->s->head);
  unlock(q);
#else
  (void)q;
  (void)pusher;
#endif
}

bool crew__queue_broken(const crew_queue *q)
{
  return atomic_load_explicit(&q->broken, memory_order_relaxed);
}

bool crew__queue_verify(crew_queue *q)
{
  lock(q);
  bool broken = corrupt(q);
  unlock(q);
  return broken;
}

void crew__queue_forget_waiters(crew_queue *q)
{
  lock(q);
  q->s->waiter_gen++;
  q->s->pop_waiters = 0;
  q->s->push_waiters = 0;
  /* A process killed while spinning left its flag set. */
  atomic_store_explicit(&q->s->spinning[POPPER], 0, memory_order_relaxed);
  atomic_store_explicit(&q->s->spinning[PUSHER], 0, memory_order_relaxed);
  wake_all(q);
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
    if (q->s->closed || corrupt(q)) {
      rc = CREW_ECLOSED;
      break;
    }
    size_t room = q->capacity - (size_t)queued(q);
    if (room > 0) {
      size_t n = min_size(room, count - done);
      ring_put(q, items + done * q->item_size, n);
      done += n;
      wake(q, POPPER, n);
      continue;
    }
    /* Full. After a timeout the loop looks once more: room may have come. */
    if (rc == CREW_ETIMEDOUT)
      break;
    if (!spun && (spun = spin_unlocked(q, PUSHER, PUSH_SPIN_NS)))
      continue;
    rc = wait_on(q, PUSHER, d);
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
    if (corrupt(q)) {
      rc = CREW_ECLOSED;
      break;
    }
    if (queued(q) > 0) {
      size_t n = min_size((size_t)queued(q), max);
      ring_take(q, items, n);
      wake(q, PUSHER, n);
      unlock(q);
      *popped = n;
      return 0;
    }
    if (q->s->closed) {
      rc = CREW_ECLOSED;
      break;
    }
    if (rc == CREW_ETIMEDOUT)
      break;
    if (!spun && (spun = spin_unlocked(q, POPPER, spin_ns)))
      continue;
    rc = wait_on(q, POPPER, d);
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

int crew__queue_pop_spin(crew_queue *q, void *item, uint64_t timeout_ns,
                         uint64_t spin_ns)
{
  size_t popped;
  return pop_until(q, item, 1, &popped, crew__deadline_in(timeout_ns), spin_ns);
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
  atomic_store_explicit(&q->s->closed, 1, memory_order_relaxed);
  wake_all(q);
  unlock(q);
}

bool crew_queue_is_closed(const crew_queue *cq)
{
  if (cq == NULL)
    return false;
  crew_queue *q = (crew_queue *)cq; /* the lock is not part of the value */
  lock(q);
  bool closed = q->s->closed != 0 || corrupt(q);
  unlock(q);
  return closed;
}

size_t crew_queue_size(const crew_queue *cq)
{
  if (cq == NULL)
    return 0;
  crew_queue *q = (crew_queue *)cq; /* the lock is not part of the value */
  lock(q);
  size_t n = corrupt(q) ? 0 : (size_t)queued(q);
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
