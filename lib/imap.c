/*
 * imap.c - crew_imap: a map fed by a function and drained into another,
 * with at most `window` inputs in flight. Built on the public calls only
 * (crew_submit_timed, crew_future_wait, crew_wait_any, crew_future_cancel),
 * so it works the same on either backend and from inside a task: a worker
 * of the pool that waits runs the queued task it waits for itself.
 *
 * State (all on the caller's thread; nothing here is shared): the futures
 * in flight and their input indexes, in `fs` and `idx`, `n` of them. In
 * input order they are a ring starting at `head`, and the caller waits on
 * the oldest; unordered they are packed at 0..n-1 (a delivered one is
 * replaced by the last), and the caller gives every resolved one to the
 * sink, or waits for any with crew_wait_any. One input buffer (crew copies
 * the input at submit) and one output buffer: memory is the window's,
 * whatever the input's length.
 *
 * Window: an input counts from the next() that wrote it to the sink() that
 * got its result. `pending` is the one input taken but not yet submitted
 * (the queue was full): next() is called only when n < window and nothing
 * is pending, so n + pending <= window. The window is refilled once at
 * most half of it is in flight, and every result already done goes to the
 * sink before the caller waits again: submits and results come in runs,
 * not one for one, so workers take queued tasks in batches and the caller
 * sleeps at most once per half window (measured: one for one ran at about
 * two thirds of the speed with a window of 64).
 *
 * A full queue: a submit that finds no room while results are in flight
 * goes to wait for a result instead of for room, so a window larger than
 * the queue works and results flow; with nothing in flight it waits for
 * room (other work fills the queue and will drain).
 *
 * Ending: normally once next() said no more and n is 0. A sink that stops
 * cancels what is queued and waits for every future, so no task of ours
 * runs once crew_imap returns. A submit that fails midway (the pool shut
 * down or broke) ends the input: what is in flight still goes to the sink,
 * then the pending input with CREW_ECANCELED.
 */
#include "config.h"

#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct imap {
  crew_pool *pool;
  crew_fn fn;
  size_t in_size, out_size, window;
  bool unordered;
  crew_next_fn next;
  crew_sink_fn sink;
  void *arg;
  crew_future **fs; /* window entries: the futures in flight */
  size_t *idx;      /* their inputs' indexes */
  size_t head, n;   /* ordered: the ring fs[head], ... ; unordered: head 0 */
  size_t taken;     /* inputs next() gave: the next index */
  bool more;        /* next() has not yet returned 0 */
  bool pending;     /* input `taken` is in `in`, not yet submitted */
  unsigned char *in, *out;
};

/* ------------------------------------------------------------ in flight */

static size_t at(const struct imap *im, size_t k)
{
  size_t i = im->head + k;
  return i < im->window ? i : i - im->window;
}

static void push(struct imap *im, crew_future *f)
{
  size_t i = at(im, im->n++);
  im->fs[i] = f;
  im->idx[i] = im->taken++;
  im->pending = false;
}

/* Take entry i out (the oldest, when ordered). */
static void drop(struct imap *im, size_t i)
{
  im->n--;
  if (!im->unordered) {
    im->head = at(im, 1);
  } else if (i != im->n) {
    im->fs[i] = im->fs[im->n];
    im->idx[i] = im->idx[im->n];
  }
}

/* Give resolved entry i to the sink and drop it: the sink's value. */
static int deliver(struct imap *im, size_t i)
{
  crew_future *f = im->fs[i];
  size_t index = im->idx[i];
  drop(im, i);
  int status = crew_future_get(f, im->out, im->out_size);
  if (status < 0 && im->out_size > 0) {
    /* Zeros if the task did not run; a task that ran and returned one of
     * crew's codes keeps its output. */
    memset(im->out, 0, im->out_size);
    (void)crew_future_get(f, im->out, im->out_size);
  }
  crew_future_release(f);
  return im->sink(im->arg, index, status, im->out);
}

/* Give at least one result to the sink, waiting for it if need be (n > 0).
 * 0, or the sink's nonzero value. */
static int deliver_some(struct imap *im)
{
  if (!im->unordered) {
    int rc = deliver(im, im->head); /* crew_future_get waits on the oldest */
    while (rc == 0 && im->n > 0 && crew_future_done(im->fs[im->head]))
      rc = deliver(im, im->head);
    return rc;
  }
  size_t before = im->n;
  for (size_t i = 0; i < im->n;) {
    if (!crew_future_done(im->fs[i])) {
      i++;
      continue;
    }
    int rc = deliver(im, i); /* entry i is now another: look at it again */
    if (rc != 0)
      return rc;
  }
  if (im->n < before)
    return 0;
  size_t i = 0;
  if (crew_wait_any(im->fs, im->n, CREW_FOREVER, &i) != 0)
    (void)crew_future_wait(im->fs[0]); /* no memory to wait on all */
  return deliver(im, i);
}

/* The sink stopped us: cancel what is queued, wait for what runs. */
static void abandon(struct imap *im)
{
  for (size_t k = 0; k < im->n; k++)
    (void)crew_future_cancel(im->fs[at(im, k)]);
  for (size_t k = 0; k < im->n; k++) {
    crew_future *f = im->fs[at(im, k)];
    (void)crew_future_wait(f);
    crew_future_release(f);
  }
  im->n = 0;
}

/* ---------------------------------------------------------------- input */

/*
 * Take inputs and submit them until the window is full, the input ends or
 * the queue is full while results are in flight. 0, or why a submit failed.
 */
static int fill(struct imap *im)
{
  while (im->pending || (im->more && im->n < im->window)) {
    if (!im->pending) {
      if (im->next(im->arg, im->in) == 0) {
        im->more = false;
        return 0;
      }
      im->pending = true;
    }
    crew_future *f;
    int rc = crew_submit_timed(im->pool, im->fn, im->in, im->in_size,
                               im->out_size, &f, 0);
    if (rc == CREW_ETIMEDOUT && im->n > 0)
      return 0; /* no room: wait for a result instead */
    if (rc == CREW_ETIMEDOUT)
      rc = crew_submit(im->pool, im->fn, im->in, im->in_size, im->out_size, &f);
    if (rc != 0)
      return rc;
    push(im, f);
  }
  return 0;
}

/* A submit failed with `why` midway: give the sink what is in flight, then
 * the input that could not go. why, or the sink's nonzero value. */
static int end_early(struct imap *im, int why)
{
  while (im->n > 0) {
    int rc = deliver_some(im);
    if (rc != 0) {
      abandon(im);
      return rc;
    }
  }
  if (!im->pending)
    return why;
  if (im->out_size > 0)
    memset(im->out, 0, im->out_size);
  int rc = im->sink(im->arg, im->taken, CREW_ECANCELED, im->out);
  return rc != 0 ? rc : why;
}

static int run(struct imap *im)
{
  for (;;) {
    int rc = fill(im);
    if (rc == CREW_EINVAL && im->taken == 0)
      return rc; /* the first submit: sizes above the pool's limits */
    if (rc != 0)
      return end_early(im, rc);
    if (im->n == 0)
      return 0; /* the input ended and every result went */
    do
      rc = deliver_some(im);
    while (rc == 0 && im->n > im->window / 2);
    if (rc != 0) {
      abandon(im);
      return rc;
    }
  }
}

/* ------------------------------------------------------------- crew_imap */

static int imap_alloc(struct imap *im)
{
  if (im->window > SIZE_MAX / (sizeof *im->fs + sizeof *im->idx))
    return CREW_EINVAL;
  im->fs = crew__malloc(im->window * sizeof *im->fs);
  im->idx = crew__malloc(im->window * sizeof *im->idx);
  im->in = crew__malloc(im->in_size);
  im->out = im->out_size > 0 ? crew__malloc(im->out_size) : NULL;
  if (im->fs == NULL || im->idx == NULL || im->in == NULL ||
      (im->out_size > 0 && im->out == NULL))
    return CREW_ENOMEM;
  return 0;
}

static void imap_free(struct imap *im)
{
  free(im->fs);
  free(im->idx);
  free(im->in);
  free(im->out);
}

int crew_imap(crew_pool *pool, crew_fn fn, size_t in_size, size_t out_size,
              size_t window, unsigned flags, crew_next_fn next,
              crew_sink_fn sink, void *arg)
{
  if (pool == NULL || fn == NULL || next == NULL || sink == NULL ||
      in_size == 0 || (flags & ~CREW_UNORDERED) != 0)
    return CREW_EINVAL;
  /* What a submit would refuse, before any input is taken: sizes above the
   * pool's limits, a forked child, a function process workers lack, a pool
   * shut down or broken. */
  int rc = crew__pool_admits(pool, fn, in_size, out_size);
  if (rc != 0)
    return rc;
  struct imap im = {.pool = pool,
                    .fn = fn,
                    .in_size = in_size,
                    .out_size = out_size,
                    .window =
                        window != 0 ? window : 4 * crew_pool_workers(pool),
                    .unordered = (flags & CREW_UNORDERED) != 0,
                    .next = next,
                    .sink = sink,
                    .arg = arg,
                    .more = true};
  rc = imap_alloc(&im);
  if (rc == 0)
    rc = run(&im);
  imap_free(&im);
  return rc;
}
