/*
 * future.c - futures: one task's input, output and fate, its done
 * callbacks, and the cache that recycles them (waiting is wait.c's).
 *
 * States: QUEUED -> RUNNING -> DONE (ran: status and output) or FAILED
 * (a process worker died under it: status, no output), or QUEUED ->
 * CANCELLING -> CANCELLED. DONE, FAILED and CANCELLED are "resolved" and
 * final. QUEUED -> RUNNING is a compare-and-swap without the lock ("claim"):
 * whoever wins runs the task, the others do nothing: the worker that pops
 * the task's slot, or a worker of the pool waiting on the future
 * (crew__future_run owns claim, run and resolve). QUEUED -> CANCELLING is
 * the same compare-and-swap, made under the lock, after the future's owner
 * (the backend that queued it) agreed and counted it; CANCELLING is not
 * resolved, so nobody reads the status before the cancel has written it.
 * `status` is written before the resolving store to `state` (release), so
 * whoever sees a resolved state (acquire) may read it.
 *
 * Locking: `lock` guards the sleepers, the waiter list, the callback list
 * and callbacks_done, and every transition to a resolved state. A waiter has
 * its own lock; the order is future lock, then waiter lock. Callbacks and
 * tasks run with no lock held.
 *
 * Where callbacks run: on the thread that resolves the future, unless the
 * resolver hands them to a callback thread (struct crew__callbacks): a
 * process pool's manager resolves every future of its pool and must never
 * run application code, which may wait for the manager itself. The future
 * is resolved first either way, so its waiters never wait for callbacks.
 *
 * References: a future starts with two, the caller's and its queue slot's
 * (dropped by the worker that pops the slot, whatever it finds). A thread
 * that resolves it from elsewhere (a cancel, a waiting worker that runs it)
 * holds a reference of its own meanwhile, so done callbacks may release the
 * caller's reference. The memory goes with the last reference.
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

#include "future_impl.h"

#include <stdlib.h>
#include <string.h>

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

int crew__future_create(crew_future **fp, struct crew__owner *owner,
                        struct crew__future_cache *cache, crew_fn fn,
                        const void *in, size_t in_size, size_t out_size,
                        uint64_t submit_ns)
{
  const size_t align = alignof(max_align_t);
  if (in_size > SIZE_MAX / 2 - align || out_size > SIZE_MAX / 2 - align ||
      round_up(in_size, align) + out_size > SIZE_MAX - sizeof(crew_future))
    return CREW_EINVAL;
  size_t in_room = round_up(in_size, align);
  if (in_room + out_size > CACHED_ROOM)
    cache = NULL;
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
  f->owner = owner;
  f->fn = fn;
  f->out_size = out_size;
  f->submitted_ns = submit_ns;
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

static void future_unref(crew_future *f)
{
  if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
    future_free(f);
}

void crew__future_retain(crew_future *f)
{
  crew__future_ref(f);
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

/* Run f's callbacks now, or hand them to `later` (NULL: now). */
static void callbacks_due(crew_future *f, struct crew__callbacks *later);
static bool settle_cancelled(crew_future *f, struct crew__callbacks *later);

/* Resolve a claimed future as `state` with `status`. */
static void resolve(crew_future *f, int state, int status,
                    struct crew__callbacks *later)
{
  crew__mutex_lock(&f->lock);
  bool callbacks = resolve_locked(f, state, status);
  crew__mutex_unlock(&f->lock);
  if (callbacks)
    callbacks_due(f, later);
}

static bool claim(crew_future *f)
{
  int expected = QUEUED;
  return atomic_compare_exchange_strong_explicit(&f->state, &expected, RUNNING,
                                                 memory_order_acq_rel,
                                                 memory_order_acquire);
}

bool crew__future_run(crew_future *f, struct crew__exec *x)
{
  if (!claim(f))
    return false;
  int status = crew__exec_run(x, f->fn, f->in, f->out, f->submitted_ns);
  resolve(f, DONE, status, NULL); /* counted first: waiters see counts */
  return true;
}

bool crew__future_settle(crew_future *f, enum crew__settle how, int status,
                         const void *out, size_t out_size,
                         struct crew__callbacks *later)
{
  if (how == CREW__CANCELLED)
    return settle_cancelled(f, later);
  if (!claim(f)) /* a cancel won: it resolved the future */
    return false;
  if (how == CREW__RAN && out_size > 0)
    memcpy(f->out, out, out_size);
  resolve(f, how == CREW__RAN ? DONE : FAILED, status, later);
  return true;
}

/*
 * With the lock held: QUEUED -> CANCELLING, if nothing else took the task
 * (and its owner, if it must take it out of a queue of its own, could);
 * then the owner counts it.
 */
static bool take_for_cancel(crew_future *f)
{
  crew__assert_held(&f->lock);
  struct crew__owner *o = f->owner;
  if (crew__load_state(f) != QUEUED || (o->take != NULL && !o->take(o, f)))
    return false;
  int expected = QUEUED;
  if (!atomic_compare_exchange_strong_explicit(&f->state, &expected, CANCELLING,
                                               memory_order_acq_rel,
                                               memory_order_acquire))
    return false; /* claimed meanwhile (never after a take: see procs.c) */
  if (o->cancelled != NULL)
    o->cancelled(o);
  return true;
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

/* QUEUED -> cancelled, whoever owns the task having settled it; false if
 * it was not queued. */
static bool settle_cancelled(crew_future *f, struct crew__callbacks *later)
{
  crew__future_ref(f);
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

/* Cancel a queued future: 0, or CREW_EBUSY if it was not queued. */
static int cancel(crew_future *f)
{
  crew__future_ref(f); /* a callback may drop the caller's reference */
  crew__mutex_lock(&f->lock);
  if (!take_for_cancel(f)) {
    crew__mutex_unlock(&f->lock);
    future_unref(f);
    return CREW_EBUSY;
  }
  finish_cancel(f, NULL);
  return 0;
}

int crew_future_cancel(crew_future *f)
{
  return f == NULL ? CREW_EINVAL : cancel(f);
}

void crew__future_popped(crew_future *f, struct crew__exec *x)
{
  if (x != NULL)
    crew__future_run(f, x); /* else cancelled, or run by a waiter */
  else
    cancel(f); /* CREW_EBUSY if a waiter ran it: fine */
  /* A cancel that won counts the task under the future's lock: wait for
   * it to finish before the pool may go away. */
  int state = crew__load_state(f);
  if (state == CANCELLING || state == CANCELLED) {
    crew__mutex_lock(&f->lock);
    crew__mutex_unlock(&f->lock);
  }
  future_unref(f);
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
  crew__future_ref(f); /* the callbacks may release every other reference */
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
