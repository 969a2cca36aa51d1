/*
 * future.c - futures: one task's input, output and fate, its done
 * callbacks, and the slabs they come from (waiting is wait.c's).
 *
 * States (the low bits of `state`): QUEUED -> RUNNING -> DONE (ran: status
 * and output) or FAILED (a process worker died under it: status, and in
 * `end`, over the submit time it no longer needs, how the worker ended), or
 * QUEUED -> CANCELLED. DONE, FAILED and CANCELLED are "resolved" and
 * final. QUEUED -> RUNNING is a compare-and-swap ("claim"): whoever wins
 * runs the task, the others do nothing: the worker that pops
 * the task's slot, or a worker of the pool waiting on the future
 * (crew__future_run owns claim, run and resolve). The thread that claimed
 * it resolves it with one fetch-and-add (RUNNING + 1 is DONE, + 2 FAILED),
 * after writing `status`, so whoever sees a resolved state (acquire) may
 * read it. QUEUED -> CANCELLED is a compare-and-swap too, made with the
 * future's stripe held, after the future's owner (the backend that queued
 * it) agreed; its status is CREW_ECANCELED, never written.
 *
 * No lock of its own: a future's slow paths (a thread sleeping on it, a
 * waiter linked into it, its callbacks, a cancel) lock its *stripe*, one of
 * STRIPES mutex and condition variable pairs of its cache, chosen by its
 * address. The flags above the state say whether a resolver must take that
 * path: WAITED (someone sleeps on the stripe's condition variable, or is
 * linked in `waiters`) and CALLBACKS (callbacks were added). A flag is set
 * with a compare-and-swap that fails once the future is resolved, and the
 * resolver reads the flags in the same atomic step that resolves it, so
 * either the resolver sees the flag or the waiter sees the resolution. A
 * future nobody waits for and nobody watches resolves with one atomic
 * step and no lock.
 *
 * Locking: a stripe's lock guards `waiters`, the callback list and
 * `callbacks_done` of its futures, and every cancel. A waiter has its own
 * lock; the order is stripe, then waiter. Callbacks and tasks run with no
 * lock held.
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
 * caller's reference.
 *
 * Memory: a future whose input and output fit CREW__FUTURE_ROOM bytes comes
 * from its pool's cache: a free list under the cache's spin lock (its
 * critical section is a few stores), fed by slabs of 64 futures and more
 * (doubling, up to SLAB_MAX), and by futures whose last reference went. So
 * a steady stream of submits allocates nothing, and a burst allocates once
 * per 64 futures or fewer; the pool keeps the memory of its busiest moment
 * until it is destroyed. A larger future is allocated alone. The cache
 * counts the futures out of it under the same lock, so it outlives its pool
 * (with its stripes): the pool orphans it, and the last future to come
 * back frees it.
 */
#include "config.h"

#include "future_impl.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- the cache */

static void destroy_stripes(struct crew__future_cache *c, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    crew__cond_destroy(&c->stripes[i].cond);
    crew__mutex_destroy(&c->stripes[i].lock);
  }
}

int crew__future_cache_create(struct crew__future_cache **cp)
{
  struct crew__future_cache *c = crew__calloc(1, sizeof *c);
  if (c == NULL)
    return CREW_ENOMEM;
  c->lock = (crew__spinlock)CREW__SPINLOCK_INIT;
  c->next_slab = SLAB_MIN;
  for (size_t i = 0; i < STRIPES; i++) {
    if (crew__mutex_init(&c->stripes[i].lock) != 0) {
      destroy_stripes(c, i);
      free(c);
      return CREW_ENOMEM;
    }
    if (crew__cond_init(&c->stripes[i].cond) != 0) {
      crew__mutex_destroy(&c->stripes[i].lock);
      destroy_stripes(c, i);
      free(c);
      return CREW_ENOMEM;
    }
  }
  *cp = c;
  return 0;
}

/* Free c and its slabs: nobody holds a future from it any more. */
static void cache_free(struct crew__future_cache *c)
{
  for (struct slab *s = c->slabs, *next; s != NULL; s = next) {
    next = s->next;
    free(s);
  }
  destroy_stripes(c, STRIPES);
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

/* Count one future out of c and take one from the free list, growing it
 * by a slab when it is empty; NULL (nothing counted) if that failed. */
static crew_future *cache_take(struct crew__future_cache *c)
{
  crew__spin_lock(&c->lock);
  crew_future *f = c->free;
  if (f != NULL) {
    c->free = f->next;
    c->out++;
    crew__spin_unlock(&c->lock);
    return f;
  }
  size_t n = c->next_slab;
  c->next_slab = n < SLAB_MAX ? 2 * n : n;
  crew__spin_unlock(&c->lock);
  struct slab *s = crew__malloc(sizeof *s + n * STRIDE);
  if (s == NULL)
    return NULL;
  crew__spin_lock(&c->lock);
  s->next = c->slabs;
  c->slabs = s;
  for (size_t i = 1; i < n; i++) { /* the first is the caller's */
    crew_future *g = (crew_future *)(void *)(s->futures + i * STRIDE);
    g->next = c->free;
    c->free = g;
  }
  c->out++;
  crew__spin_unlock(&c->lock);
  return (crew_future *)(void *)s->futures;
}

/* Give back a future counted out of c (NULL: one allocated alone, freed
 * already); free the cache if it was orphaned and this was the last. */
static void cache_give_back(struct crew__future_cache *c, crew_future *f)
{
  crew__spin_lock(&c->lock);
  c->out--;
  if (f != NULL) {
    f->next = c->free;
    c->free = f;
  }
  bool last = c->orphaned && c->out == 0;
  crew__spin_unlock(&c->lock);
  if (last)
    cache_free(c);
}

/* ------------------------------------------------------------- lifetime */

static size_t round_up(size_t n, size_t to)
{
  return (n + to - 1) / to * to;
}

/* A future of `room` payload bytes from cache c, or alone: NULL if out of
 * memory. */
static crew_future *future_alloc(struct crew__future_cache *c, size_t room)
{
  if (room <= CREW__FUTURE_ROOM) {
    crew_future *f = cache_take(c);
    if (f != NULL)
      f->large = false;
    return f;
  }
  crew__spin_lock(&c->lock); /* counted out: it holds the cache too */
  c->out++;
  crew__spin_unlock(&c->lock);
  crew_future *f = crew__malloc(sizeof *f + room);
  if (f == NULL) {
    cache_give_back(c, NULL);
    return NULL;
  }
  f->large = true;
  return f;
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
  crew_future *f = future_alloc(cache, in_room + out_size);
  if (f == NULL)
    return CREW_ENOMEM;
  atomic_init(&f->state, QUEUED);
  atomic_init(&f->refs, 2);
  f->status = 0;
  f->has_in = in_size > 0;
  f->in_room = in_room;
  f->out_size = out_size;
  f->cache = cache;
  f->owner = owner;
  f->fn = fn;
  f->submitted_ns = submit_ns;
  f->waiters = NULL;
  f->callbacks = NULL;
  f->callbacks_tail = &f->callbacks;
  f->callbacks_done = false;
  if (in_size > 0)
    memcpy(f->data, in, in_size);
  *fp = f;
  return 0;
}

static void future_unref(crew_future *f)
{
  if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
    return;
  crew__assert(f->waiters == NULL && f->callbacks == NULL);
  struct crew__future_cache *c = f->cache;
  if (f->large) {
    free(f);
    f = NULL;
  }
  cache_give_back(c, f);
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

/* With f's stripe held: wake every sleeper of the stripe (they recheck
 * their own futures), and wake and unlink every waiter linked into f. */
static void wake_waiters(crew_future *f, struct crew__stripe *s)
{
  crew__assert_held(&s->lock);
  crew__cond_broadcast(&s->cond);
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
  struct crew__stripe *s = crew__future_stripe(f);
  for (;;) {
    crew__mutex_lock(&s->lock);
    struct crew__callback *cb = f->callbacks;
    if (cb == NULL) {
      f->callbacks_done = true;
      crew__mutex_unlock(&s->lock);
      return;
    }
    f->callbacks = cb->next;
    if (f->callbacks == NULL)
      f->callbacks_tail = &f->callbacks;
    crew__mutex_unlock(&s->lock);
    crew_done_fn fn = cb->fn;
    void *arg = cb->arg;
    if (!cb->owned) /* else the caller's (crew__future_watch): its own */
      free(cb);
    fn(f, arg); /* no lock held: it may submit, wait or release */
  }
}

/* Run f's callbacks now, or hand them to `later` (NULL: now). */
static void callbacks_due(crew_future *f, struct crew__callbacks *later);

/* After a resolution whose old state word had flags: the slow path. With
 * the stripe held if `held`. */
static void resolved_slow(crew_future *f, uint32_t old,
                          struct crew__callbacks *later, bool held)
{
  struct crew__stripe *s = crew__future_stripe(f);
  if (!held)
    crew__mutex_lock(&s->lock);
  (void)CREW__HOOK(CREW_TP_PUBLISH, f);
  if (old & WAITED)
    wake_waiters(f, s);
  crew__mutex_unlock(&s->lock);
  if (old & CALLBACKS)
    callbacks_due(f, later);
}

/* The thread that claimed f resolves it: DONE or FAILED with status. */
static void resolve(crew_future *f, int state, int status,
                    struct crew__callbacks *later)
{
  f->status = status;
  uint32_t old = atomic_fetch_add_explicit(
      &f->state, (uint32_t)(state - RUNNING), memory_order_acq_rel);
  if (old & (WAITED | CALLBACKS))
    resolved_slow(f, old, later, false);
}

static bool claim(crew_future *f)
{
  uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
  while (crew__state_of(s) == QUEUED)
    if (atomic_compare_exchange_weak_explicit(
            &f->state, &s, (s & ~STATE_MASK) | RUNNING, memory_order_acq_rel,
            memory_order_relaxed))
      return true;
  return false;
}

bool crew__future_run(crew_future *f, struct crew__exec *x)
{
  if (!claim(f))
    return false;
  int status = crew__exec_run(x, f->fn, crew__future_in(f, f->has_in),
                              crew__future_out(f), f->submitted_ns);
  resolve(f, DONE, status, NULL); /* counted first: waiters see counts */
  return true;
}

/* ------------------------------------------------------------ cancelling */

/*
 * With f's stripe held: QUEUED -> CANCELLED, if nothing else took the task
 * (and its owner, if it must take it out of a queue of its own, could);
 * then the owner counts it. Returns the old state word, or 0 if it was not
 * cancelled.
 */
static uint32_t take_for_cancel(crew_future *f, bool ask_owner)
{
  struct crew__owner *o = f->owner;
  uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
  if (crew__state_of(s) != QUEUED ||
      (ask_owner && o->take != NULL && !o->take(o, f)))
    return 0;
  do { /* a flag may change meanwhile, not the state after a take */
    if (crew__state_of(s) != QUEUED)
      return 0; /* claimed meanwhile (never after a take: see procs.c) */
  } while (!atomic_compare_exchange_weak_explicit(
      &f->state, &s, (s & ~STATE_MASK) | CANCELLED, memory_order_acq_rel,
      memory_order_acquire));
  if (ask_owner && o->cancelled != NULL)
    o->cancelled(o);
  return s | CANCELLED; /* nonzero: CANCELLED is */
}

/* Cancel a queued future (ask_owner: through its owner, as
 * crew_future_cancel; else the owner settled it already). Its callbacks
 * run on `later`, or here. 0, or CREW_EBUSY if it was not queued. */
static int cancel(crew_future *f, bool ask_owner, struct crew__callbacks *later)
{
  crew__future_ref(f); /* a callback may drop the caller's reference */
  struct crew__stripe *s = crew__future_stripe(f);
  crew__mutex_lock(&s->lock);
  uint32_t old = take_for_cancel(f, ask_owner);
  if (old == 0)
    crew__mutex_unlock(&s->lock);
  else
    resolved_slow(f, old, later, true); /* unlocks */
  future_unref(f);
  return old != 0 ? 0 : CREW_EBUSY;
}

int crew_future_cancel(crew_future *f)
{
  return f == NULL ? CREW_EINVAL : cancel(f, true, NULL);
}

void crew__future_popped(crew_future *f, struct crew__exec *x)
{
  if (x != NULL)
    crew__future_run(f, x); /* else cancelled, or run by a waiter */
  else
    cancel(f, true, NULL); /* CREW_EBUSY if a waiter ran it: fine */
  /* A cancel that won counts the task with the stripe held: wait for it
   * to finish before the pool may go away. */
  if (crew__load_state(f) == CANCELLED) {
    struct crew__stripe *s = crew__future_stripe(f);
    crew__mutex_lock(&s->lock);
    crew__mutex_unlock(&s->lock);
  }
  future_unref(f);
}

bool crew__future_settle(crew_future *f, enum crew__settle how, int status,
                         const void *out, size_t out_size, const crew_exit *end,
                         struct crew__callbacks *later)
{
  if (how == CREW__CANCELLED)
    return cancel(f, false, later) == 0;
  if (!claim(f)) /* a cancel won: it resolved the future */
    return false;
  if (how == CREW__RAN && out_size > 0)
    memcpy(crew__future_out(f), out, out_size);
  if (how == CREW__FAILED) /* published by the resolve, like the status */
    f->end = end != NULL ? *end : (crew_exit){.pid = 0, .code = 0};
  resolve(f, how == CREW__RAN ? DONE : FAILED, status, later);
  return true;
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
  bool running;             /* a future's callbacks run */
  bool stopping, joined;
  crew__thread thread;
  const char *name; /* the pool's, for the thread's name */
  void (*drained)(void *);
  void *drained_arg;
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
    c->running = f != NULL;
    crew__mutex_unlock(&c->lock);
    if (f == NULL) /* stopping, and nothing is left */
      return NULL;
    run_callbacks(f); /* no lock held: they may wait, submit or stop */
    future_unref(f);
    crew__mutex_lock(&c->lock);
    c->running = false;
    bool drained = c->head == NULL;
    crew__mutex_unlock(&c->lock);
    if (drained)
      c->drained(c->drained_arg);
  }
}

int crew__callbacks_start(struct crew__callbacks **cp, const char *name,
                          void (*drained)(void *), void *arg)
{
  struct crew__callbacks *c = crew__calloc(1, sizeof *c);
  if (c == NULL)
    return CREW_ENOMEM;
  c->name = name;
  c->drained = drained;
  c->drained_arg = arg;
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

void crew__callbacks_stop(struct crew__callbacks *c, bool release)
{
  if (c == NULL)
    return;
  crew__mutex_lock(&c->lock);
  bool joined = c->joined;
  c->stopping = c->joined = true;
  crew__cond_signal(&c->wake);
  crew__mutex_unlock(&c->lock);
  if (!joined)
    crew__thread_join(&c->thread); /* it runs what is left first */
  if (!release)
    return;
  crew__cond_destroy(&c->wake);
  crew__mutex_destroy(&c->lock);
  free(c);
}

unsigned crew__callbacks_state(struct crew__callbacks *c, unsigned ask)
{
  if (c == NULL)
    return 0;
  unsigned state = current_callbacks == c ? CREW__CB_HERE : 0;
  if (ask & CREW__CB_BUSY) {
    crew__mutex_lock(&c->lock);
    if (c->head != NULL || c->running)
      state |= CREW__CB_BUSY;
    crew__mutex_unlock(&c->lock);
  }
  return state & ask;
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

/*
 * Add cb to f's callbacks, unless f has resolved and no resolver will run
 * callbacks any more (it had none when it resolved, or they have all run):
 * then the caller runs cb at once. Returns whether cb was queued.
 */
static bool add_callback(crew_future *f, struct crew__callback *cb)
{
  struct crew__stripe *s = crew__future_stripe(f);
  crew__mutex_lock(&s->lock);
  bool queue = crew__future_flag(f, CALLBACKS);
  if (!queue) /* resolved: a resolver runs callbacks only if flagged */
    queue = !f->callbacks_done &&
            (atomic_load_explicit(&f->state, memory_order_acquire) & CALLBACKS);
  if (queue) {
    cb->next = NULL;
    *f->callbacks_tail = cb;
    f->callbacks_tail = &cb->next;
  }
  crew__mutex_unlock(&s->lock);
  return queue;
}

void crew__future_watch(crew_future *f, struct crew__callback *cb,
                        crew_done_fn fn, void *arg)
{
  *cb = (struct crew__callback){.fn = fn, .arg = arg, .owned = true};
  if (!add_callback(f, cb))
    fn(f, arg);
}

int crew_future_on_done(crew_future *f, crew_done_fn fn, void *arg)
{
  if (f == NULL || fn == NULL)
    return CREW_EINVAL;
  struct crew__callback *cb = crew__malloc(sizeof *cb);
  if (cb == NULL)
    return CREW_ENOMEM;
  *cb = (struct crew__callback){.fn = fn, .arg = arg, .owned = false};
  if (!add_callback(f, cb)) {
    free(cb);
    fn(f, arg);
  }
  return 0;
}
