/*
 * wait.c - waiting for futures: one (crew_future_wait, _get and their timed
 * twins), any or all of several; and looking at one without waiting
 * (crew_future_done, _status, _exit).
 *
 * A waiter first looks; a worker of the future's pool that waits on a task
 * still queued runs it itself (the owner's help hook), so waits cannot
 * deadlock a pool on itself. Otherwise it spins a short while (most tasks a
 * caller waits on at once are short), then sleeps, having flagged the
 * future WAITED under its stripe (see future.c): on the stripe's condition
 * variable, or, waiting on several, on a `struct waiter` of its own stack
 * linked into each future's waiter list. The resolver (future.c) sees the
 * flag, broadcasts the stripe's condition variable and wakes and unlinks
 * every listed waiter under the stripe's lock; a waiter that leaves
 * unlinks itself under the same lock, so once it has, no resolver can
 * touch its stack. A sleeper may be woken for a neighbour of its stripe:
 * it rechecks its own future. Lock order: stripe, then waiter.
 */
#include "config.h"

#include "future_impl.h"

#include <stdlib.h>
#include <string.h>

bool crew_future_done(const crew_future *f)
{
  return f != NULL && crew__is_resolved(crew__load_state(f));
}

/* The status of a resolved future. */
static int status_of(const crew_future *f, int state)
{
  return state == CANCELLED ? CREW_ECANCELED : f->status;
}

int crew_future_status(const crew_future *f)
{
  if (f == NULL)
    return CREW_EINVAL;
  int state = crew__load_state(f);
  return crew__is_resolved(state) ? status_of(f, state) : CREW_EBUSY;
}

int crew_future_exit(const crew_future *f, crew_exit *e)
{
  if (f == NULL || e == NULL || crew__load_state(f) != FAILED)
    return CREW_EINVAL;
  if (f->end.pid <= 0 ||
      (f->status != CREW_ECRASHED && f->status != CREW_EDEADLINE))
    return CREW_EINVAL; /* lost without a death to tell of */
  *e = f->end;
  return 0;
}

/* If the calling thread may run f's queued task itself (a worker of its
 * pool), do it. */
static bool help(crew_future *f)
{
  struct crew__owner *o = f->owner;
  return crew__load_state(f) == QUEUED && o->help != NULL && o->help(o, f);
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
    struct crew__stripe *st = crew__future_stripe(f);
    crew__mutex_lock(&st->lock);
    resolved = !crew__future_flag(f, WAITED);
    *l = (struct waiter_link){
        .waiter = &w, .next = f->waiters, .linked = !resolved};
    if (!resolved) {
      if (f->waiters != NULL)
        f->waiters->prev = l;
      f->waiters = l;
    }
    crew__mutex_unlock(&st->lock);
  }

  crew__mutex_lock(&w.lock);
  while (!resolved && !w.woken && rc == 0)
    rc = crew__cond_wait(&w.cond, &w.lock, d);
  crew__mutex_unlock(&w.lock);

  for (size_t i = 0; i < listed; i++) {
    crew_future *f = fs[i];
    struct waiter_link *l = &links[i];
    struct crew__stripe *st = crew__future_stripe(f);
    crew__mutex_lock(&st->lock);
    if (l->linked) {
      if (l->prev != NULL)
        l->prev->next = l->next;
      else
        f->waiters = l->next;
      if (l->next != NULL)
        l->next->prev = l->prev;
    }
    crew__mutex_unlock(&st->lock);
  }
  crew__cond_destroy(&w.cond);
  crew__mutex_destroy(&w.lock);
out:
  if (links != stack_links)
    free(links);
  return rc;
}

/* Sleep on f's stripe until f resolves or `d` passes: 0 or
 * CREW_ETIMEDOUT. The WAITED flag tells the resolver to wake the stripe. */
static int sleep_on_one(crew_future *f, crew__deadline d)
{
  int rc = 0;
  struct crew__stripe *st = crew__future_stripe(f);
  crew__mutex_lock(&st->lock);
  while (rc == 0 && crew__future_flag(f, WAITED))
    rc = crew__cond_wait(&st->cond, &st->lock, d);
  crew__mutex_unlock(&st->lock);
  return rc;
}

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
  for (unsigned i = 1; !crew__is_resolved(crew__load_state(f)); i++) {
    crew__cpu_relax();
    if (i % 64 == 0) {
      uint64_t now = crew__now_ns();
      if (now - start >= WAIT_SPIN_NS || now >= d.at)
        break;
    }
  }
  return crew__is_resolved(crew__load_state(f));
}

/* Wait for f to resolve until `d`: 0 or CREW_ETIMEDOUT. */
static int wait_until(crew_future *f, crew__deadline d)
{
  bool spun = d.at == 0; /* a poll does not spin */
  for (;;) {
    if (crew__is_resolved(crew__load_state(f)))
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
    (void)sleep_on_one(f, d); /* woken, or timed out: look again */
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
  return rc != 0 ? rc : status_of(f, crew__load_state(f));
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
  int state = crew__load_state(f);
  if (out_size > 0 && state == DONE)
    memcpy(out, crew__future_out(f), out_size);
  return status_of(f, state);
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
      if (crew__is_resolved(crew__load_state(fs[i]))) {
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
