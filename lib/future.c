/*
 * future.c - futures: one task's input, output and fate, its waiters and its
 * done callbacks.
 *
 * States: QUEUED -> RUNNING -> DONE (ran: status and output) or FAILED
 * (a process-mode worker died under it: status, no output), or QUEUED ->
 * CANCELLING -> CANCELLED. DONE, FAILED and CANCELLED are "resolved" and
 * final. QUEUED -> RUNNING is a
 * compare-and-swap without the lock ("claim"): the worker that pops the
 * task's slot, or a worker of the pool waiting on the future, whichever
 * comes first. QUEUED -> CANCELLING is the same compare-and-swap, made under
 * the lock; CANCELLING is not resolved, so nobody reads the status before
 * the cancel has written it. `status` is written before the resolving store
 * to `state` (release), so whoever sees a resolved state (acquire) may read
 * it.
 *
 * Locking: `lock` guards the sleepers, the waiter list, the callback list and
 * callbacks_done, and every transition to a resolved state. A waiter has its
 * own lock; the order is future lock, then waiter lock, never the other way.
 * Callbacks and tasks run with no lock held.
 *
 * Waiting: a thread waiting on one future sleeps on the future's own
 * condition variable (made at the first such wait; most futures never need
 * it). A thread waiting on several (crew_wait_any) puts a `struct waiter`
 * (on its own stack) on the waiter list of each, through one link per
 * future. The resolver broadcasts the condition variable and wakes and
 * unlinks every listed waiter, under the future's lock; a waiter that leaves
 * unlinks itself under the same lock, so once it has done so no resolver can
 * touch its stack.
 *
 * References: a future starts with two, the caller's and its queue slot's
 * (dropped by the worker that pops the slot, whatever it finds). A thread
 * that resolves it from elsewhere (a cancel, a waiting worker that runs it)
 * holds a reference of its own meanwhile, so done callbacks may release the
 * caller's reference. The memory goes with the last reference.
 *
 * Where callbacks run: on the thread that resolves the future, unless the
 * resolver hands them to a callback thread (struct crew__callbacks): a
 * process pool's manager resolves every future of its pool and must never
 * run application code, which may wait for the manager itself. The future
 * is resolved first either way, so its waiters never wait for callbacks.
 *
 * Recycling: a future whose input and output fit CACHED_ROOM bytes is made
 * with exactly that room and, when its last reference goes, kept on its
 * pool's cache (a free list under the cache's own spin lock, at most
 * CACHE_MAX long: the pool keeps the memory of its busiest moment) with its
 * mutex still initialised, for the next submit to take. The cache counts
 * the futures out of it under the same lock, so it outlives its pool: the
 * pool orphans it, and the last future to come back frees it.
 */
#include "config.h"

#include "internal.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum future_state { QUEUED, RUNNING, CANCELLING, DONE, FAILED, CANCELLED };

struct callback {
  crew_done_fn fn;
  void *arg;
  struct callback *next;
};

struct waiter {
  crew__mutex lock;
  crew__cond cond;
  bool woken; /* guarded by lock */
};

/* One waiter's place on one future's waiter list. */
struct waiter_link {
  struct waiter *waiter;
  struct waiter_link *prev, *next;
  bool linked; /* guarded by the future's lock */
};

struct crew_future {
  struct crew__future_cache *cache; /* where it returns; NULL: freed */
  struct crew_future *next; /* on the cache's free list, or on a callback
                               thread's list (never both: a future on the
                               latter holds a reference) */
  crew__mutex lock;
  _Atomic int state; /* enum future_state */
  int status;        /* valid once state is resolved */
  _Atomic unsigned refs;
  /* Guarded by lock: */
  crew__cond resolved_cv; /* single waiters sleep here, once cv_ready */
  bool cv_ready;
  unsigned sleepers; /* threads waiting on resolved_cv */
  struct waiter_link *waiters;
  struct callback *callbacks; /* not yet run, in the order added */
  struct callback **callbacks_tail;
  bool callbacks_done; /* resolved and every callback has run */
  bool first_used;     /* `first` holds or held a callback */
  struct callback first;
  /* Constant after create (remote_* set before the future is shared): */
  crew_pool *pool;
  crew_fn fn;
  size_t out_size;
  uint64_t submitted_ns; /* for the pool's timing; 0 if it does not time */
  bool remote;           /* runs in a worker process: cancel asks the pool */
  uint32_t remote_entry; /* the pool's names for the task */
  uint64_t remote_ticket;
  void *in;                                  /* NULL when in_size is 0 */
  void *out;                                 /* NULL when out_size is 0 */
  alignas(max_align_t) unsigned char data[]; /* input, then output */
};

static bool is_resolved(int state)
{
  return state == DONE || state == FAILED || state == CANCELLED;
}

static int load_state(const crew_future *f)
{
  return atomic_load_explicit(&((crew_future *)f)->state, memory_order_acquire);
}

/* ------------------------------------------------------------- lifetime */

/* Payload bytes (input rounded up, then output) of a recycled future. */
#define CACHED_ROOM 64
/* Futures a cache keeps at most (about 70 MB of them). */
#define CACHE_MAX 262144

struct crew__future_cache {
  crew__spinlock lock;
  /* Guarded by lock: */
  crew_future *free; /* freed futures, ready for reuse */
  size_t nfree;
  size_t out;    /* futures taken from the cache and not yet back */
  bool orphaned; /* the pool is gone: the last future back frees it all */
};

int crew__future_cache_create(struct crew__future_cache **cp)
{
  struct crew__future_cache *c = crew__malloc(sizeof *c);
  if (c == NULL)
    return CREW_ENOMEM;
  *c = (struct crew__future_cache){.lock = CREW__SPINLOCK_INIT};
  *cp = c;
  return 0;
}

/* Free c and what it keeps: nobody holds a future from it any more. */
static void cache_free(struct crew__future_cache *c)
{
  for (crew_future *f = c->free, *next; f != NULL; f = next) {
    next = f->next;
    crew__mutex_destroy(&f->lock);
    free(f);
  }
  free(c);
}

void crew__future_cache_release(struct crew__future_cache *c)
{
  if (c == NULL)
    return;
  crew__spin_lock(&c->lock);
  c->orphaned = true;
  bool last = c->out == 0;
  crew__spin_unlock(&c->lock);
  if (last)
    cache_free(c);
}

/* Count one future out of c, and take a recycled one (its lock initialised)
 * if there is one; NULL: the caller makes a new one. */
static crew_future *cache_take(struct crew__future_cache *c)
{
  crew__spin_lock(&c->lock);
  c->out++;
  crew_future *f = c->free;
  if (f != NULL) {
    c->free = f->next;
    c->nfree--;
  }
  crew__spin_unlock(&c->lock);
  return f;
}

/* Give back a future counted out of c: keep f (if not NULL) for reuse
 * unless the cache is full or orphaned, in which case free it; free the
 * cache too if it was orphaned and this was its last future. */
static void cache_give_back(struct crew__future_cache *c, crew_future *f)
{
  crew__spin_lock(&c->lock);
  c->out--;
  bool kept = f != NULL && !c->orphaned && c->nfree < CACHE_MAX;
  if (kept) {
    f->next = c->free;
    c->free = f;
    c->nfree++;
  }
  bool last = c->orphaned && c->out == 0;
  crew__spin_unlock(&c->lock);
  if (f != NULL && !kept) {
    crew__mutex_destroy(&f->lock);
    free(f);
  }
  if (last)
    cache_free(c);
}

static size_t round_up(size_t n, size_t to)
{
  return (n + to - 1) / to * to;
}

int crew__future_create(crew_future **fp, crew_pool *pool, crew_fn fn,
                        const void *in, size_t in_size, size_t out_size)
{
  const size_t align = alignof(max_align_t);
  if (in_size > SIZE_MAX / 2 - align || out_size > SIZE_MAX / 2 - align ||
      round_up(in_size, align) + out_size > SIZE_MAX - sizeof(crew_future))
    return CREW_EINVAL;
  size_t in_room = round_up(in_size, align);
  struct crew__future_cache *cache =
      in_room + out_size <= CACHED_ROOM && pool != NULL
          ? crew__pool_future_cache(pool)
          : NULL;
  crew_future *f = cache != NULL ? cache_take(cache) : NULL;
  if (f == NULL) {
    size_t room = cache != NULL ? CACHED_ROOM : in_room + out_size;
    f = crew__malloc(sizeof *f + room);
    if (f != NULL && crew__mutex_init(&f->lock) != 0) {
      free(f);
      f = NULL;
    }
    if (f == NULL) {
      if (cache != NULL)
        cache_give_back(cache, NULL);
      return CREW_ENOMEM;
    }
  }
  f->cache = cache;
  atomic_init(&f->state, QUEUED);
  atomic_init(&f->refs, 2);
  f->status = 0;
  f->cv_ready = false;
  f->sleepers = 0;
  f->waiters = NULL;
  f->callbacks = NULL;
  f->callbacks_tail = &f->callbacks;
  f->callbacks_done = false;
  f->first_used = false;
  f->pool = pool;
  f->fn = fn;
  f->out_size = out_size;
  f->submitted_ns = 0;
  f->remote = false;
  f->in = in_size > 0 ? f->data : NULL;
  f->out = out_size > 0 ? f->data + in_room : NULL;
  if (in_size > 0)
    memcpy(f->in, in, in_size);
  *fp = f;
  return 0;
}

static void future_free(crew_future *f)
{
  crew__assert(f->waiters == NULL && f->callbacks == NULL);
  if (f->cv_ready)
    crew__cond_destroy(&f->resolved_cv);
  if (f->cache != NULL) {
    cache_give_back(f->cache, f);
    return;
  }
  crew__mutex_destroy(&f->lock);
  free(f);
}

void crew__future_discard(crew_future *f)
{
  future_free(f);
}

static void future_ref(crew_future *f)
{
  atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
}

static void future_unref(crew_future *f)
{
  if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
    future_free(f);
}

void crew__future_retain(crew_future *f)
{
  future_ref(f);
}

void crew__future_set_submitted(crew_future *f, uint64_t ns)
{
  f->submitted_ns = ns;
}

uint64_t crew__future_submitted(const crew_future *f)
{
  return f->submitted_ns;
}

void crew__future_release_slot(crew_future *f)
{
  /* If a cancel won the slot, it counts the cancellation under the lock:
   * wait for it to finish before the pool may go away. */
  int state = load_state(f);
  if (state == CANCELLING || state == CANCELLED) {
    crew__mutex_lock(&f->lock);
    crew__mutex_unlock(&f->lock);
  }
  future_unref(f);
}

void crew_future_release(crew_future *f)
{
  if (f != NULL)
    future_unref(f);
}

/* ------------------------------------------------------------ resolving */

/* Wake every sleeper, and wake and unlink every waiter. */
static void wake_waiters(crew_future *f)
{
  crew__assert_held(&f->lock);
  if (f->sleepers > 0)
    crew__cond_broadcast(&f->resolved_cv);
  for (struct waiter_link *l = f->waiters; l != NULL; l = l->next) {
    crew__mutex_lock(&l->waiter->lock);
    l->waiter->woken = true;
    crew__cond_signal(&l->waiter->cond);
    crew__mutex_unlock(&l->waiter->lock);
    l->linked = false;
  }
  f->waiters = NULL;
}

/* Run the callbacks, oldest first, including any added while they run. */
static void run_callbacks(crew_future *f)
{
  for (;;) {
    crew__mutex_lock(&f->lock);
    struct callback *cb = f->callbacks;
    if (cb == NULL) {
      f->callbacks_done = true;
      crew__mutex_unlock(&f->lock);
      return;
    }
    f->callbacks = cb->next;
    if (f->callbacks == NULL)
      f->callbacks_tail = &f->callbacks;
    crew__mutex_unlock(&f->lock);
    cb->fn(f, cb->arg); /* no lock held: it may submit, wait or release */
    if (cb != &f->first)
      free(cb);
  }
}

/*
 * With the lock held: publish the outcome and wake the waiters. Returns
 * whether callbacks wait to be run (by the caller, after the unlock).
 */
static bool resolve_locked(crew_future *f, int state, int status)
{
  crew__assert_held(&f->lock);
  (void)CREW__HOOK(CREW_TP_PUBLISH, f);
  f->status = status;
  atomic_store_explicit(&f->state, state, memory_order_release);
  if (f->callbacks == NULL) /* a callback added from now on runs at once */
    f->callbacks_done = true;
  wake_waiters(f);
  return !f->callbacks_done;
}

bool crew__future_claim(crew_future *f)
{
  int expected = QUEUED;
  return atomic_compare_exchange_strong_explicit(&f->state, &expected, RUNNING,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire);
}

void crew__future_parts(crew_future *f, crew_fn *fn, void **in, void **out)
{
  crew__assert(load_state(f) == RUNNING);
  *fn = f->fn;
  *in = f->in;
  *out = f->out;
}

void crew__future_set_remote(crew_future *f, uint32_t entry, uint64_t ticket)
{
  f->remote = true;
  f->remote_entry = entry;
  f->remote_ticket = ticket;
}

void *crew__future_out(crew_future *f)
{
  return f->out;
}

/* Run f's callbacks now, or hand them to `later` (NULL: now). */
static void callbacks_due(crew_future *f, struct crew__callbacks *later);

bool crew__future_settle(crew_future *f, bool ran, int status,
                         struct crew__callbacks *later)
{
  if (!crew__future_claim(f)) /* a cancel won: it resolved the future */
    return false;
  crew__mutex_lock(&f->lock);
  bool callbacks = resolve_locked(f, ran ? DONE : FAILED, status);
  crew__mutex_unlock(&f->lock);
  if (callbacks)
    callbacks_due(f, later);
  return true;
}

void crew__future_complete(crew_future *f, int status)
{
  crew__mutex_lock(&f->lock);
  bool callbacks = resolve_locked(f, DONE, status);
  crew__mutex_unlock(&f->lock);
  if (callbacks)
    run_callbacks(f);
}

/*
 * With the lock held: QUEUED -> CANCELLING, if nothing else took the task.
 * A remote task is cancelled where it is queued, in shared memory, first;
 * the pool counts it then.
 */
static bool take_for_cancel(crew_future *f)
{
  crew__assert_held(&f->lock);
  if (load_state(f) != QUEUED)
    return false;
  if (f->remote &&
      !crew__pool_cancel_remote(f->pool, f->remote_entry, f->remote_ticket))
    return false;
  int expected = QUEUED;
  return atomic_compare_exchange_strong_explicit(
      &f->state, &expected, CANCELLING, memory_order_acq_rel,
      memory_order_acquire);
}

/* Resolve as cancelled, holding the lock and a reference of our own. */
static void finish_cancel(crew_future *f, struct crew__callbacks *later)
{
  bool callbacks = resolve_locked(f, CANCELLED, CREW_ECANCELED);
  crew__mutex_unlock(&f->lock);
  if (callbacks)
    callbacks_due(f, later);
  future_unref(f);
}

bool crew__future_settle_cancelled(crew_future *f,
                                   struct crew__callbacks *later)
{
  future_ref(f);
  crew__mutex_lock(&f->lock);
  int expected = QUEUED;
  if (!atomic_compare_exchange_strong_explicit(&f->state, &expected, CANCELLING,
                                               memory_order_acq_rel,
                                               memory_order_acquire)) {
    crew__mutex_unlock(&f->lock);
    future_unref(f);
    return false;
  }
  finish_cancel(f, later);
  return true;
}

int crew__future_cancel(crew_future *f)
{
  future_ref(f); /* a callback may drop the caller's reference */
  crew__mutex_lock(&f->lock);
  if (!take_for_cancel(f)) {
    crew__mutex_unlock(&f->lock);
    future_unref(f);
    return CREW_EBUSY;
  }
  /* Counted under the lock: the pool outlives a queued task's slot, and the
   * slot's popper waits for this lock (crew__future_release_slot). */
  if (!f->remote)
    crew__pool_count_cancelled(f->pool, 1);
  finish_cancel(f, NULL);
  return 0;
}

int crew_future_cancel(crew_future *f)
{
  return f == NULL ? CREW_EINVAL : crew__future_cancel(f);
}

/* ------------------------------------------------------ callback threads */

/*
 * A thread that runs the done callbacks of futures resolved elsewhere, one
 * future after the other, oldest first. `lock` guards the list and
 * `stopping`; callbacks run without it.
 */
struct crew__callbacks {
  crew__mutex lock;
  crew__cond wake;
  crew_future *head, *tail; /* due, each holding a reference for us */
  bool stopping;
  crew__thread thread;
  const char *name; /* the pool's, for the thread's name */
};

/* The callback thread running on this thread, if any. */
static _Thread_local const struct crew__callbacks *current_callbacks;

static void *callbacks_main(void *arg)
{
  struct crew__callbacks *c = arg;
  current_callbacks = c;
  crew__thread_set_name(c->name, "-cb");
  for (;;) {
    crew__mutex_lock(&c->lock);
    while (c->head == NULL && !c->stopping)
      crew__cond_wait(&c->wake, &c->lock, (crew__deadline){CREW__NEVER});
    crew_future *f = c->head;
    if (f != NULL && (c->head = f->next) == NULL)
      c->tail = NULL;
    crew__mutex_unlock(&c->lock);
    if (f == NULL) /* stopping, and nothing is left */
      return NULL;
    run_callbacks(f); /* no lock held: they may wait, submit or stop */
    future_unref(f);
  }
}

int crew__callbacks_start(struct crew__callbacks **cp, const char *name)
{
  struct crew__callbacks *c = crew__calloc(1, sizeof *c);
  if (c == NULL)
    return CREW_ENOMEM;
  c->name = name;
  if (crew__mutex_init(&c->lock) != 0)
    goto fail_lock;
  if (crew__cond_init(&c->wake) != 0)
    goto fail_cond;
  if (crew__thread_start(&c->thread, callbacks_main, c) != 0)
    goto fail_thread;
  *cp = c;
  return 0;

fail_thread:
  crew__cond_destroy(&c->wake);
fail_cond:
  crew__mutex_destroy(&c->lock);
fail_lock:
  free(c);
  return CREW_ENOMEM;
}

void crew__callbacks_stop(struct crew__callbacks *c)
{
  if (c == NULL)
    return;
  crew__mutex_lock(&c->lock);
  c->stopping = true;
  crew__cond_signal(&c->wake);
  crew__mutex_unlock(&c->lock);
  crew__thread_join(&c->thread); /* it runs what is left first */
  crew__cond_destroy(&c->wake);
  crew__mutex_destroy(&c->lock);
  free(c);
}

bool crew__callbacks_here(const struct crew__callbacks *c)
{
  return c != NULL && current_callbacks == c;
}

static void callbacks_due(crew_future *f, struct crew__callbacks *later)
{
  if (later == NULL) {
    run_callbacks(f);
    return;
  }
  future_ref(f); /* the callbacks may release every other reference */
  crew__mutex_lock(&later->lock);
  f->next = NULL;
  if (later->tail != NULL)
    later->tail->next = f;
  else
    later->head = f;
  later->tail = f;
  crew__cond_signal(&later->wake);
  crew__mutex_unlock(&later->lock);
}

/* ------------------------------------------------------------ callbacks */

int crew_future_on_done(crew_future *f, crew_done_fn fn, void *arg)
{
  if (f == NULL || fn == NULL)
    return CREW_EINVAL;
  crew__mutex_lock(&f->lock);
  if (f->callbacks_done) {
    crew__mutex_unlock(&f->lock);
    fn(f, arg);
    return 0;
  }
  struct callback *cb = &f->first;
  if (f->first_used) {
    cb = crew__malloc(sizeof *cb);
    if (cb == NULL) {
      crew__mutex_unlock(&f->lock);
      return CREW_ENOMEM;
    }
  }
  f->first_used = true;
  *cb = (struct callback){.fn = fn, .arg = arg, .next = NULL};
  *f->callbacks_tail = cb;
  f->callbacks_tail = &cb->next;
  crew__mutex_unlock(&f->lock);
  return 0;
}

/* -------------------------------------------------------------- waiting */

bool crew_future_done(const crew_future *f)
{
  return f != NULL && is_resolved(load_state(f));
}

int crew_future_status(const crew_future *f)
{
  if (f == NULL)
    return CREW_EINVAL;
  return is_resolved(load_state(f)) ? f->status : CREW_EBUSY;
}

/* If the calling worker can run f's queued task itself, do it. */
static bool help(crew_future *f)
{
  if (load_state(f) != QUEUED || crew__pool_worker(f->pool) == NULL)
    return false;
  future_ref(f); /* its callbacks may drop every other reference */
  bool ran = crew__pool_help(f->pool, f);
  future_unref(f);
  return ran;
}

#define LINKS_ON_STACK 8

/*
 * Sleep until one of the n futures resolves or `d` passes. Returns 0 (look
 * again), CREW_ETIMEDOUT or CREW_ENOMEM.
 */
static int sleep_on_any(crew_future *const *fs, size_t n, crew__deadline d)
{
  struct waiter_link stack_links[LINKS_ON_STACK];
  struct waiter_link *links = stack_links;
  if (n > LINKS_ON_STACK && (links = crew__calloc(n, sizeof *links)) == NULL)
    return CREW_ENOMEM;
  struct waiter w = {.woken = false};
  int rc = crew__mutex_init(&w.lock);
  if (rc == 0 && (rc = crew__cond_init(&w.cond)) != 0)
    crew__mutex_destroy(&w.lock);
  if (rc != 0)
    goto out;

  size_t listed = 0;
  bool resolved = false;
  for (; listed < n && !resolved; listed++) {
    crew_future *f = fs[listed];
    struct waiter_link *l = &links[listed];
    crew__mutex_lock(&f->lock);
    resolved = is_resolved(load_state(f));
    *l = (struct waiter_link){
        .waiter = &w, .next = f->waiters, .linked = !resolved};
    if (!resolved) {
      if (f->waiters != NULL)
        f->waiters->prev = l;
      f->waiters = l;
    }
    crew__mutex_unlock(&f->lock);
  }

  crew__mutex_lock(&w.lock);
  while (!resolved && !w.woken && rc == 0)
    rc = crew__cond_wait(&w.cond, &w.lock, d);
  crew__mutex_unlock(&w.lock);

  for (size_t i = 0; i < listed; i++) {
    crew_future *f = fs[i];
    struct waiter_link *l = &links[i];
    crew__mutex_lock(&f->lock);
    if (l->linked) {
      if (l->prev != NULL)
        l->prev->next = l->next;
      else
        f->waiters = l->next;
      if (l->next != NULL)
        l->next->prev = l->prev;
    }
    crew__mutex_unlock(&f->lock);
  }
  crew__cond_destroy(&w.cond);
  crew__mutex_destroy(&w.lock);
out:
  if (links != stack_links)
    free(links);
  return rc;
}

/* Sleep until f resolves or `d` passes: 0, CREW_ETIMEDOUT or CREW_ENOMEM. */
static int sleep_on_one(crew_future *f, crew__deadline d)
{
  int rc = 0;
  crew__mutex_lock(&f->lock);
  if (!f->cv_ready) {
    if (crew__cond_init(&f->resolved_cv) != 0) {
      crew__mutex_unlock(&f->lock);
      return CREW_ENOMEM;
    }
    f->cv_ready = true;
  }
  while (rc == 0 && !is_resolved(load_state(f))) {
    f->sleepers++;
    rc = crew__cond_wait(&f->resolved_cv, &f->lock, d);
    f->sleepers--;
  }
  crew__mutex_unlock(&f->lock);
  return rc;
}

/* Wait for f to resolve until `d`: 0, CREW_ETIMEDOUT or CREW_ENOMEM. */
/* How long a waiter (not a worker of the pool: it helps instead) spins on
 * its future's state before it sleeps: most tasks a caller waits on right away
 * are short, and a waiter that sleeps costs the resolver a futex wake and
 * itself a wake-up (tens of microseconds on a virtual machine). */
#define WAIT_SPIN_NS 20000u

/* Spin up to WAIT_SPIN_NS (or d) while f is unresolved; whether it
 * resolved. */
static bool spin_until_resolved(crew_future *f, crew__deadline d)
{
  uint64_t start = crew__now_ns();
  for (unsigned i = 1; !is_resolved(load_state(f)); i++) {
    crew__cpu_relax();
    if (i % 64 == 0) {
      uint64_t now = crew__now_ns();
      if (now - start >= WAIT_SPIN_NS || now >= d.at)
        break;
    }
  }
  return is_resolved(load_state(f));
}

static int wait_until(crew_future *f, crew__deadline d)
{
  bool spun = d.at == 0; /* a poll does not spin */
  for (;;) {
    if (is_resolved(load_state(f)))
      return 0;
    if (help(f))
      continue;
    if (crew__deadline_passed(d))
      return CREW_ETIMEDOUT;
    if (!spun) {
      spun = true;
      if (spin_until_resolved(f, d))
        return 0;
    }
    int rc = sleep_on_one(f, d);
    if (rc == CREW_ENOMEM)
      return rc;
  }
}

int crew_future_wait(crew_future *f)
{
  return crew_future_wait_timed(f, CREW_FOREVER);
}

int crew_future_wait_timed(crew_future *f, uint64_t timeout_ns)
{
  if (f == NULL)
    return CREW_EINVAL;
  int rc = wait_until(f, crew__deadline_in(timeout_ns));
  return rc != 0 ? rc : f->status;
}

int crew_future_get(crew_future *f, void *out, size_t out_size)
{
  return crew_future_get_timed(f, out, out_size, CREW_FOREVER);
}

int crew_future_get_timed(crew_future *f, void *out, size_t out_size,
                          uint64_t timeout_ns)
{
  if (f == NULL || (out == NULL && out_size > 0) || out_size > f->out_size)
    return CREW_EINVAL;
  int rc = wait_until(f, crew__deadline_in(timeout_ns));
  if (rc != 0)
    return rc;
  if (out_size > 0 && load_state(f) == DONE)
    memcpy(out, f->out, out_size);
  return f->status;
}

static int check_array(crew_future *const *fs, size_t n)
{
  if (fs == NULL || n == 0)
    return CREW_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (fs[i] == NULL)
      return CREW_EINVAL;
  return 0;
}

int crew_wait_any(crew_future *const *fs, size_t n, uint64_t timeout_ns,
                  size_t *index)
{
  int rc = check_array(fs, n);
  if (rc != 0 || index == NULL)
    return CREW_EINVAL;
  crew__deadline d = crew__deadline_in(timeout_ns);
  for (;;) {
    for (size_t i = 0; i < n; i++) {
      if (is_resolved(load_state(fs[i]))) {
        *index = i;
        return 0;
      }
    }
    bool helped = false;
    for (size_t i = 0; i < n && !helped; i++)
      helped = help(fs[i]);
    if (helped)
      continue;
    if (crew__deadline_passed(d))
      return CREW_ETIMEDOUT;
    rc = sleep_on_any(fs, n, d);
    if (rc == CREW_ENOMEM)
      return rc;
  }
}

int crew_wait_all(crew_future *const *fs, size_t n, uint64_t timeout_ns)
{
  int rc = check_array(fs, n);
  if (rc != 0)
    return rc;
  crew__deadline d = crew__deadline_in(timeout_ns);
  for (size_t i = 0; i < n; i++) /* in a worker: run what is still queued */
    help(fs[i]);
  for (size_t i = 0; i < n; i++) {
    rc = wait_until(fs[i], d);
    if (rc != 0)
      return rc;
  }
  return 0;
}
