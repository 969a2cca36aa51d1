/*
 * shqueue.c - the CREW_SHARED queue: the bounded queue of queue.c with its
 * state in MAP_SHARED memory, for processes that may die at any
 * instruction or write garbage over what they share (a process pool's
 * workers).
 *
 * Two parts: the handle (struct shqueue) is private to each process and
 * holds what never changes (geometry); fork copies it. The state (struct
 * sh_state: lock, wait words, counters, closed) and the ring sit in one
 * shared mapping, inherited by every process forked after create. So a
 * process that writes garbage over the mapping can change which items are
 * queued, never where the ring is or how long.
 *
 * Crash safety: every change of state is one store made after the bytes it
 * publishes: a put copies the items, then advances tail; a take copies them
 * out, then advances head. A process that dies at any point, holding the
 * lock, leaves the queue as it was before or after its call; the next
 * locker is told (CREW__OWNER_DIED), wakes everyone (the dead process may
 * have owed a wake-up) and goes on.
 *
 * Garbage closes the queue, never crashes it: ring indexes come from the
 * private geometry, so no value of head or tail reaches outside the ring. A
 * state with more than `capacity` items, or (for a process that declared
 * itself the only pusher or popper, crew__shq_own_side) a counter of its
 * own side that moved without it, marks the queue broken in that process:
 * every call returns CREW_ECLOSED and sleepers are woken.
 *
 * Locking: with futexes, the lock is slock.c's word and waits sleep on wait
 * words (no pthread object lives in the mapping: a process killed while
 * waiting on a process-shared condition variable can wedge glibc); without,
 * a robust process-shared mutex and condition variables. The lock guards
 * every field of the state. A process killed while waiting leaves its
 * waiter count behind (extra wake-ups, never missing ones);
 * crew__shq_forget_waiters() resets the counts under a new generation.
 *
 * Spinning, waking and fairness are as in queue.c; a killed spinner's flag
 * is reset with the waiter counts. The first push during a spin counts on
 * the spinner (one wake fewer) only in a queue whose one pusher also
 * recovers from its poppers' deaths (crew__shq_own_side, the process
 * pool): a spinner killed after the push leaves its item to the sleepers
 * only once crew__shq_forget_waiters wakes them. In any other shared queue
 * every push wakes a sleeper, so a dead spinner never strands an item.
 */
#include "config.h"

#include "queue.h"
#include "slock.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum side { POPPER, PUSHER };

/* What changes: in the shared mapping, where it may be garbage. */
struct sh_state {
#ifdef CREW__SLOCK
  _Atomic uint32_t slock;
  _Atomic uint32_t wake[2]; /* [POPPER]: not empty, [PUSHER]: not full */
#else
  crew__mutex lock;
  crew__cond wake[2];
#endif
  _Atomic uint64_t head;     /* items ever taken (release stores) */
  _Atomic uint64_t tail;     /* items ever put */
  uint64_t waiters[2];       /* threads waiting for items, for room */
  uint64_t waiter_gen;       /* bumped when the waiter counts reset */
  _Atomic uint32_t closed;   /* written under the lock, read by spinners */
  _Atomic uint32_t spinning; /* a popper spins */
};

/* The handle: private to each process, constant after create but for
 * `broken` and the owned side's count. */
struct shqueue {
  struct crew_queue q; /* ops, capacity, item_size */
  struct sh_state *s;
  unsigned char *ring; /* capacity * item_size bytes, after the state */
  size_t mask;         /* capacity - 1 if a power of two, else 0 */
  size_t map_size;
  pid_t creator;       /* the process that destroys pthread objects */
  _Atomic bool broken; /* this process found the state corrupt */
  bool spinner_counts; /* a push may count on a spinner (see the top) */
#ifdef CREW__SLOCK
  crew__slock_local me; /* this process's threads */
  /* crew__shq_own_side(): the one process that pushes (or pops), and its
   * own count of that side's counter (under the lock). */
  int owned_side; /* 0: none; PUSHER + 1 or POPPER + 1 */
  uint32_t owner_pid;
  uint64_t owned_count;
#endif
};

static struct shqueue *shq(crew_queue *q)
{
  return (struct shqueue *)q;
}

static uint64_t load(const _Atomic uint64_t *counter)
{
  return atomic_load_explicit(counter, memory_order_relaxed); /* lock held */
}

/* Items queued, as head and tail say: more than capacity if corrupt. */
static uint64_t queued(const struct shqueue *h)
{
  return load(&h->s->tail) - load(&h->s->head);
}

static size_t min_size(size_t a, size_t b)
{
  return a < b ? a : b;
}

/* ------------------------------------------------------ lock and wake */

/* Wake up to n waiters of `side` (SIZE_MAX: all of them). */
static void wake_side(struct shqueue *h, enum side side, size_t n)
{
#ifdef CREW__SLOCK
  crew__slock_wake(&h->s->wake[side], n);
#else
  (void)CREW__HOOK(CREW_TP_WAKE, &h->s->wake[side]);
  if (n == SIZE_MAX)
    crew__cond_broadcast(&h->s->wake[side]);
  else
    for (size_t i = 0; i < n; i++)
      crew__cond_signal(&h->s->wake[side]);
#endif
}

static void wake_all(struct shqueue *h)
{
  wake_side(h, POPPER, SIZE_MAX);
  wake_side(h, PUSHER, SIZE_MAX);
}

/* After a process died holding the lock: wake all (the dead one may have
 * owed a wake-up); the counters are checked by each call (corrupt()). */
static void recover(struct shqueue *h)
{
  wake_all(h);
#ifndef CREW__SLOCK
  crew__mutex_consistent(&h->s->lock);
#endif
}

static void lock(struct shqueue *h)
{
#ifdef CREW__SLOCK
  if (crew__slock_lock(&h->s->slock, &h->me) == CREW__OWNER_DIED)
#else
  if (crew__mutex_lock_robust(&h->s->lock) == CREW__OWNER_DIED)
#endif
    recover(h);
}

static void unlock(struct shqueue *h)
{
#ifdef CREW__SLOCK
  crew__slock_unlock(&h->s->slock, &h->me);
#else
  crew__mutex_unlock(&h->s->lock);
#endif
}

/*
 * Wait with the lock held until woken or `d` passes. Returns 0 to recheck,
 * or CREW_ETIMEDOUT once the deadline has passed.
 */
static int wait_on(struct shqueue *h, enum side side, crew__deadline d)
{
  struct sh_state *s = h->s;
  uint64_t gen = s->waiter_gen;
  s->waiters[side]++;
#ifdef CREW__SLOCK
  int rc = crew__slock_wait(&s->wake[side], &s->slock, &h->me, d);
#else
  (void)CREW__HOOK(CREW_TP_WAIT, &s->wake[side]);
  int rc = crew__cond_wait(&s->wake[side], &s->lock, d);
#endif
  if (rc == CREW__OWNER_DIED) {
    recover(h);
    rc = 0;
  }
  if (s->waiter_gen == gen) /* else the counts were reset meanwhile */
    s->waiters[side]--;
  return rc;
}

/* Wake one waiter of `side` per item or slot, but no more than wait. */
static void wake(struct shqueue *h, enum side side, size_t n)
{
  uint64_t waiters = h->s->waiters[side];
  if (waiters > 0)
    wake_side(h, side, waiters < n ? (size_t)waiters : n);
}

/* With the lock held, after n items were pushed: wake poppers for them,
 * one fewer the first time during a popper's spin if the queue allows it
 * (as queue.c's wake_pushed). */
static void wake_pushed(struct shqueue *h, size_t n)
{
  if (h->spinner_counts && n > 0 && crew__queue_spinner_takes(&h->s->spinning))
    n--;
  wake(h, POPPER, n);
}

/* ------------------------------------------------------------ corruption */

#ifdef CREW__SLOCK
/* With the lock held: whether this process is the queue's one pusher or
 * popper (the lock has refreshed h->me.pid in a forked child). */
static bool owns_side(const struct shqueue *h, enum side side)
{
  return h->owned_side == (int)side + 1 && h->owner_pid == h->me.pid;
}
#endif

/*
 * With the lock held: whether this process must treat the queue as closed
 * because its state is corrupt (more items than the ring holds: single
 * stores cannot leave that behind, only garbage can). The first caller to
 * see it wakes everyone, so no thread of this process sleeps on.
 */
static bool corrupt(struct shqueue *h)
{
  if (atomic_load_explicit(&h->broken, memory_order_relaxed))
    return true;
  bool bad = queued(h) > h->q.capacity;
#ifdef CREW__SLOCK
  if (owns_side(h, PUSHER))
    bad = bad || load(&h->s->tail) != h->owned_count;
  if (owns_side(h, POPPER))
    bad = bad || load(&h->s->head) != h->owned_count;
#endif
  if (!bad)
    return false;
  atomic_store_explicit(&h->broken, true, memory_order_relaxed);
  wake_all(h);
  return true;
}

/* ------------------------------------------------------------- the ring */

static size_t slot_of(const struct shqueue *h, uint64_t at)
{
  return h->mask != 0 || h->q.capacity == 1 ? (size_t)(at & h->mask)
                                            : (size_t)(at % h->q.capacity);
}

/* Move n items between the ring at counter `at` and buf (put or take). */
static void ring_copy(struct shqueue *h, uint64_t at, unsigned char *buf,
                      size_t n, bool put)
{
  size_t size = h->q.item_size;
  size_t slot = slot_of(h, at);
  size_t first = min_size(n, h->q.capacity - slot);
  unsigned char *ring = h->ring + slot * size;
  memcpy(put ? ring : buf, put ? buf : ring, first * size);
  if (n > first)
    memcpy(put ? h->ring : buf + first * size,
           put ? buf + first * size : h->ring, (n - first) * size);
}

/* Append n items: the copy, then one store that publishes them, for
 * whoever locks next even if this process dies right now. */
static void ring_put(struct shqueue *h, const unsigned char *src, size_t n)
{
  ring_copy(h, load(&h->s->tail), (unsigned char *)src, n, true);
  atomic_store_explicit(&h->s->tail, load(&h->s->tail) + n,
                        memory_order_release);
#ifdef CREW__SLOCK
  if (owns_side(h, PUSHER))
    h->owned_count += n;
#endif
  (void)CREW__HOOK(CREW_TP_ENQUEUE, &h->q);
}

/* Remove n items: the copy, then one store. */
static void ring_take(struct shqueue *h, unsigned char *dst, size_t n)
{
  ring_copy(h, load(&h->s->head), dst, n, false);
  atomic_store_explicit(&h->s->head, load(&h->s->head) + n,
                        memory_order_release);
#ifdef CREW__SLOCK
  if (owns_side(h, POPPER))
    h->owned_count += n;
#endif
  (void)CREW__HOOK(CREW_TP_DEQUEUE, &h->q);
}

/* -------------------------------------------------------- push and pop */

/* Without the lock: whether a popper may go on. */
static bool may_pop(const struct shqueue *h)
{
  return atomic_load_explicit(&h->s->tail, memory_order_relaxed) !=
             atomic_load_explicit(&h->s->head, memory_order_relaxed) ||
         atomic_load_explicit(&h->s->closed, memory_order_relaxed) ||
         atomic_load_explicit(&h->broken, memory_order_relaxed);
}

/* As queue.c's spin_unlocked (poppers only). */
static bool spin_unlocked(struct shqueue *h, uint64_t spin_ns)
{
  _Atomic uint32_t *spinning = &h->s->spinning;
  if (spin_ns == 0 || spin_ns == CREW_IDLE_SPIN_OFF ||
      atomic_load_explicit(spinning, memory_order_relaxed) ||
      atomic_exchange_explicit(spinning, 1, memory_order_relaxed))
    return false;
  unlock(h);
  uint64_t start = crew__now_ns();
  for (unsigned i = 1; !may_pop(h); i++) {
    crew__cpu_relax();
    if (i % 64 == 0 && crew__now_ns() - start >= spin_ns)
      break;
  }
  atomic_store_explicit(spinning, 0, memory_order_relaxed);
  lock(h);
  return true;
}

static int shared_push(crew_queue *q, const void *items, size_t count,
                       size_t *pushed, crew__deadline d)
{
  struct shqueue *h = shq(q);
  const unsigned char *src = items;
  size_t done = 0;
  int rc = 0;
  lock(h);
  while (done < count) {
    if (h->s->closed || corrupt(h)) {
      rc = CREW_ECLOSED;
      break;
    }
    size_t room = q->capacity - (size_t)queued(h);
    if (room > 0) {
      size_t n = min_size(room, count - done);
      ring_put(h, src + done * q->item_size, n);
      done += n;
      wake_pushed(h, n);
      continue;
    }
    if (rc == CREW_ETIMEDOUT) /* after a timeout, one more look */
      break;
    rc = wait_on(h, PUSHER, d);
  }
  unlock(h);
  *pushed = done;
  return done == count ? 0 : rc;
}

static int shared_pop(crew_queue *q, void *items, size_t max, size_t *popped,
                      crew__deadline d, uint64_t spin_ns)
{
  struct shqueue *h = shq(q);
  int rc = 0;
  bool spun = d.at == 0; /* a try does not spin */
  lock(h);
  for (;;) {
    if (corrupt(h)) {
      rc = CREW_ECLOSED;
      break;
    }
    if (queued(h) > 0) {
      size_t n = min_size((size_t)queued(h), max);
      ring_take(h, items, n);
      wake(h, PUSHER, n);
      unlock(h);
      *popped = n;
      return 0;
    }
    if (h->s->closed) {
      rc = CREW_ECLOSED;
      break;
    }
    if (rc == CREW_ETIMEDOUT)
      break;
    if (!spun && (spun = spin_unlocked(h, spin_ns)))
      continue;
    rc = wait_on(h, POPPER, d);
  }
  unlock(h);
  *popped = 0;
  return rc;
}

/* ----------------------------------------------------- the other calls */

static void shared_close(crew_queue *q)
{
  struct shqueue *h = shq(q);
  lock(h);
  atomic_store_explicit(&h->s->closed, 1, memory_order_relaxed);
  wake_all(h);
  unlock(h);
}

static bool shared_is_closed(crew_queue *q)
{
  struct shqueue *h = shq(q);
  lock(h);
  bool closed = h->s->closed != 0 || corrupt(h);
  unlock(h);
  return closed;
}

static size_t shared_size(crew_queue *q)
{
  struct shqueue *h = shq(q);
  lock(h);
  size_t n = corrupt(h) ? 0 : (size_t)queued(h);
  unlock(h);
  return n;
}

static void shared_destroy(crew_queue *q)
{
  struct shqueue *h = shq(q);
#ifdef CREW__SLOCK
  crew__slock_local_fini(&h->me); /* nothing but words in the mapping */
#else
  /* The pthread objects belong to the creator; another process only drops
   * its own mapping. */
  if (getpid() == h->creator) {
    crew__cond_destroy(&h->s->wake[PUSHER]);
    crew__cond_destroy(&h->s->wake[POPPER]);
    crew__mutex_destroy(&h->s->lock);
  }
#endif
  munmap(h->s, h->map_size);
  free(h);
}

static const struct crew__queue_ops shared_ops = {
    .push = shared_push,
    .pop = shared_pop,
    .close = shared_close,
    .is_closed = shared_is_closed,
    .size = shared_size,
    .destroy = shared_destroy,
};

/* Make the lock and wait objects in a zeroed state. */
static int init_sync(struct shqueue *h)
{
#ifdef CREW__SLOCK
  crew__slock_local_init(&h->me); /* the words are zero: free, no waiter */
  return 0;
#else
  struct sh_state *s = h->s;
  if (crew__mutex_init_shared(&s->lock) != 0)
    return CREW_ENOMEM;
  if (crew__cond_init_shared(&s->wake[POPPER]) == 0) {
    if (crew__cond_init_shared(&s->wake[PUSHER]) == 0)
      return 0;
    crew__cond_destroy(&s->wake[POPPER]);
  }
  crew__mutex_destroy(&s->lock);
  return CREW_ENOMEM;
#endif
}

int crew__shq_create(crew_queue **qp, size_t capacity, size_t item_size)
{
  if (capacity > (SIZE_MAX - sizeof(struct sh_state)) / item_size)
    return CREW_EINVAL;
  size_t map_size = sizeof(struct sh_state) + capacity * item_size;
  struct shqueue *h = crew__calloc(1, sizeof *h);
  if (h == NULL)
    return CREW_ENOMEM;
  void *p = crew__mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    free(h);
    return CREW_ENOMEM;
  }
  h->q = (struct crew_queue){p, &shared_ops, capacity, item_size};
  h->s = p;
  h->ring = (unsigned char *)(h->s + 1);
  h->mask = (capacity & (capacity - 1)) == 0 ? capacity - 1 : 0;
  h->map_size = map_size;
  h->creator = getpid();
  if (init_sync(h) != 0) {
    munmap(p, map_size);
    free(h);
    return CREW_ENOMEM;
  }
  *qp = &h->q;
  return 0;
}

/* ----------------------------------------------- for the process pool */

void crew__shq_own_side(crew_queue *q, bool pusher)
{
  struct shqueue *h = shq(q);
  lock(h);
  h->spinner_counts = h->spinner_counts || pusher;
#ifdef CREW__SLOCK
  h->owned_side = (pusher ? PUSHER : POPPER) + 1;
  h->owner_pid = h->me.pid;
  h->owned_count = load(pusher ? &h->s->tail : &h->s->head);
#endif
  unlock(h);
}

bool crew__shq_broken(const crew_queue *q)
{
  return atomic_load_explicit(&((const struct shqueue *)q)->broken,
                              memory_order_relaxed);
}

bool crew__shq_verify(crew_queue *q)
{
  struct shqueue *h = shq(q);
  lock(h);
  bool broken = corrupt(h);
  unlock(h);
  return broken;
}

void crew__shq_forget_waiters(crew_queue *q)
{
  struct shqueue *h = shq(q);
  lock(h);
  h->s->waiter_gen++;
  h->s->waiters[POPPER] = 0;
  h->s->waiters[PUSHER] = 0;
  /* A process killed while spinning left its flag set. */
  atomic_store_explicit(&h->s->spinning, 0, memory_order_relaxed);
  wake_all(h);
  unlock(h);
}
