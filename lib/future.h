/*
 * future.h - futures inside lib/ (see future.c): how a backend makes them,
 * runs them and settles them, where their callbacks run, and the cache
 * that recycles them.
 */
#ifndef CREW_FUTURE_INTERNAL_H
#define CREW_FUTURE_INTERNAL_H

#include "internal.h"
#include "task.h"

/*
 * Who runs a future's task: set at create by the backend that queued it.
 * Both are called only while the future is QUEUED, with a reference held.
 */
struct crew__owner {
  /* Under the future's stripe, crew_future_cancel() is about to cancel QUEUED
   * f: take the task out of wherever it waits so that it never runs, and
   * count it cancelled; false if it cannot (it has been taken to run).
   * NULL: nothing to take (the claim decides), count in `cancelled`. */
  bool (*take)(struct crew__owner *o, crew_future *f);
  /* Under the future's stripe, f was cancelled (without `take`): count it. */
  void (*cancelled)(struct crew__owner *o);
  /* The calling thread waits on f: run it here and now if this thread may
   * (a worker of its pool); true if it ran it. NULL: never. */
  bool (*help)(struct crew__owner *o, crew_future *f);
};

/*
 * A pool's cache of freed small futures, so that a steady stream of submits
 * with futures allocates nothing. The pool and every future taken from it
 * hold a reference, so futures may outlive their pool.
 */
struct crew__future_cache;
int crew__future_cache_create(struct crew__future_cache **cp);
/* Drop the pool's reference (the cache goes with the last future). */
void crew__future_cache_release(struct crew__future_cache *c);

/*
 * Make a QUEUED future holding two references, the caller's and the queue
 * slot's: fn's input copied in (in_size bytes), out_size bytes kept for
 * its output, submit_ns for the latency histograms. cache may be NULL.
 * Returns 0, CREW_EINVAL (sizes overflow) or CREW_ENOMEM. A future never
 * queued is undone by releasing both references.
 */
int crew__future_create(crew_future **fp, struct crew__owner *owner,
                        struct crew__future_cache *cache, crew_fn fn,
                        const void *in, size_t in_size, size_t out_size,
                        uint64_t submit_ns);

/*
 * Run a future's task here: claim it (QUEUED -> RUNNING), run it in x's
 * accounting and resolve it (its callbacks run here). False, doing
 * nothing, if it was not QUEUED (cancelled, or run by a waiter).
 */
bool crew__future_run(crew_future *f, struct crew__exec *x);

/*
 * The worker that popped f's queue slot: run f through x, or with x NULL (a
 * CREW_CANCEL shutdown) cancel it, unless a waiter or a cancel took it
 * first; then drop the slot's reference.
 */
void crew__future_popped(crew_future *f, struct crew__exec *x);

/* Take one more reference (released with crew_future_release). */
void crew__future_retain(crew_future *f);

/* A done callback's place in a future's list. */
struct crew__callback {
  crew_done_fn fn;
  void *arg;
  struct crew__callback *next;
  bool owned; /* the caller's (crew__future_watch): never freed here */
};

/*
 * crew_future_on_done() with a node the caller owns, which must stay valid
 * until fn is called (fn may then free it): no allocation, never fails.
 */
void crew__future_watch(crew_future *f, struct crew__callback *cb,
                        crew_done_fn fn, void *arg);

/*
 * A thread that runs done callbacks for a resolver that must not run them
 * itself (a process pool's manager thread), named NAME-cb. Each time it has
 * run every callback handed to it, it calls drained(arg) (no lock held).
 * Stopping it runs every callback handed to it so far, then joins it (once:
 * a second stop only releases); `release` then frees c.
 */
struct crew__callbacks;
int crew__callbacks_start(struct crew__callbacks **c, const char *name,
                          void (*drained)(void *), void *arg);
void crew__callbacks_stop(struct crew__callbacks *c, bool release);
/* Which of `ask` hold for c (NULL: none). Asking CREW__CB_BUSY looks
 * into c: c must not be stopped meanwhile. */
#define CREW__CB_HERE 1u /* the calling thread is c's */
#define CREW__CB_BUSY 2u /* c has callbacks due or running */
unsigned crew__callbacks_state(struct crew__callbacks *c, unsigned ask);

/* How a task that ran elsewhere (a process worker) ended. */
enum crew__settle { CREW__RAN, CREW__FAILED, CREW__CANCELLED };

/*
 * Resolve a QUEUED future whose task ran elsewhere: CREW__RAN (status, and
 * out_size bytes of output copied from `out`), CREW__FAILED (a worker died
 * under it: status, and how the worker ended if `end` is not NULL, for
 * crew_future_exit) or CREW__CANCELLED. Its callbacks run on `later`'s
 * thread, or here if `later` is NULL. False, doing nothing, if a cancel
 * resolved it first.
 */
bool crew__future_settle(crew_future *f, enum crew__settle how, int status,
                         const void *out, size_t out_size, const crew_exit *end,
                         struct crew__callbacks *later);

#endif
