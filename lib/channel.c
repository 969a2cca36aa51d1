/*
 * channel.c - completions for event loops: futures that resolve are queued
 * on a channel whose fd is readable while the queue is not empty.
 *
 * A watch is an on_done callback on the future with a node {channel, tag}.
 * When the future resolves, the callback (on the resolving thread) appends
 * the node to the ready list; the append that makes the list non-empty
 * writes the fd, the drain that empties it reads the fd back to quiet. Both
 * happen under `lock`, so the fd is readable exactly while the list is not
 * empty, and each empty -> non-empty change is one write: a new edge for
 * edge-triggered pollers, one system call per batch.
 *
 * Locking: `lock` guards every field below it. It is taken by the resolving
 * thread (a worker, a canceller, or a process pool's manager) for a few
 * instructions, never while calling out. Lock order: a future's callbacks
 * run with no crew lock held, so this lock is always innermost.
 *
 * Lifetime: the channel holds one reference for its user and one for each
 * watched future that has not resolved yet. Destroy closes the fd, empties
 * the ready list (releasing those futures) and drops the user's reference;
 * a watched future resolving later finds the channel closed, releases
 * itself, and drops its reference; the last one frees the channel.
 */
#include "config.h"

#include "future.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#ifdef HAVE_SYS_EVENTFD_H
#include <sys/eventfd.h>
#endif

struct node {
  crew_channel *ch;
  crew_future *future;
  void *tag;
  struct node *next;
  struct crew__callback cb; /* its place in the future's callbacks */
};

struct crew_channel {
  _Atomic unsigned refs;
  int rfd, wfd; /* the same eventfd, or a pipe's two ends */
  crew__mutex lock;
  crew__cond ready_cv; /* crew_channel_wait() sleeps here */
  /* Guarded by lock: */
  bool closed;
  struct node *head, **tail; /* ready completions, oldest first */
  size_t ready, watching;
  unsigned sleepers;
};

/* ---------------------------------------------------------- the fd */

static int open_fds(crew_channel *ch)
{
#if defined(HAVE_SYS_EVENTFD_H) && defined(HAVE_EVENTFD)
  ch->rfd = ch->wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (ch->rfd >= 0)
    return 0;
#endif
  int p[2];
  if (pipe(p) != 0)
    return CREW_ENOMEM;
  for (int i = 0; i < 2; i++) {
    fcntl(p[i], F_SETFD, FD_CLOEXEC);
    fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
  }
  ch->rfd = p[0];
  ch->wfd = p[1];
  return 0;
}

static void close_fds(crew_channel *ch)
{
  if (ch->wfd != ch->rfd)
    close(ch->wfd);
  close(ch->rfd);
  ch->rfd = ch->wfd = -1;
}

/* Make the fd readable (the list just became non-empty). */
static void raise_fd(crew_channel *ch)
{
  uint64_t one = 1; /* an eventfd takes 8 bytes; a pipe, any */
  ssize_t n = write(ch->wfd, &one, ch->wfd == ch->rfd ? sizeof one : 1);
  (void)n; /* full pipe or counter: readable already */
}

/* Make the fd quiet (the list just became empty). */
static void lower_fd(crew_channel *ch)
{
  uint64_t buf[8];
  while (read(ch->rfd, buf, ch->wfd == ch->rfd ? sizeof buf[0] : sizeof buf) >
         0)
    if (ch->wfd == ch->rfd)
      break; /* an eventfd read resets the counter */
}

/* ------------------------------------------------------- lifetime */

int crew_channel_create(crew_channel **out)
{
  if (out == NULL)
    return CREW_EINVAL;
  crew_channel *ch = crew__calloc(1, sizeof *ch);
  if (ch == NULL)
    return CREW_ENOMEM;
  int rc = open_fds(ch);
  if (rc == 0 && (rc = crew__mutex_init(&ch->lock)) != 0)
    close_fds(ch);
  if (rc == 0 && (rc = crew__cond_init(&ch->ready_cv)) != 0) {
    crew__mutex_destroy(&ch->lock);
    close_fds(ch);
  }
  if (rc != 0) {
    free(ch);
    return rc;
  }
  atomic_init(&ch->refs, 1);
  ch->tail = &ch->head;
  *out = ch;
  return 0;
}

static void channel_unref(crew_channel *ch)
{
  if (atomic_fetch_sub_explicit(&ch->refs, 1, memory_order_acq_rel) != 1)
    return;
  crew__cond_destroy(&ch->ready_cv);
  crew__mutex_destroy(&ch->lock);
  free(ch);
}

/* Release taken nodes' futures and free them. */
static void release_nodes(struct node *n)
{
  while (n != NULL) {
    struct node *next = n->next;
    crew_future_release(n->future);
    free(n);
    n = next;
  }
}

void crew_channel_destroy(crew_channel *ch)
{
  if (ch == NULL)
    return;
  crew__mutex_lock(&ch->lock);
  ch->closed = true;
  struct node *ready = ch->head;
  ch->head = NULL;
  ch->tail = &ch->head;
  ch->ready = 0;
  close_fds(ch);
  crew__cond_broadcast(&ch->ready_cv);
  crew__mutex_unlock(&ch->lock);
  release_nodes(ready);
  channel_unref(ch);
}

int crew_channel_fd(const crew_channel *ch)
{
  return ch == NULL ? -1 : ch->rfd;
}

/* ---------------------------------------------------------- watching */

/* The on_done callback: queue the completion, or drop it if closed. */
static void on_resolved(crew_future *f, void *arg)
{
  struct node *n = arg;
  crew_channel *ch = n->ch;
  crew__mutex_lock(&ch->lock);
  ch->watching--;
  bool closed = ch->closed;
  if (!closed) {
    n->next = NULL;
    *ch->tail = n;
    ch->tail = &n->next;
    if (ch->ready++ == 0)
      raise_fd(ch);
    if (ch->sleepers > 0)
      crew__cond_signal(&ch->ready_cv);
  }
  crew__mutex_unlock(&ch->lock);
  if (closed) {
    crew_future_release(f);
    free(n);
  }
  channel_unref(ch); /* the watch's reference; a queued node needs none */
}

/* Watch f with a node the caller allocated (its callback's place too):
 * cannot fail. */
static int watch_with(crew_channel *ch, crew_future *f, void *tag,
                      struct node *n)
{
  *n = (struct node){.ch = ch, .future = f, .tag = tag};
  crew__future_retain(f); /* the channel's reference */
  atomic_fetch_add_explicit(&ch->refs, 1, memory_order_relaxed);
  crew__mutex_lock(&ch->lock);
  ch->watching++;
  crew__mutex_unlock(&ch->lock);
  crew__future_watch(f, &n->cb, on_resolved, n);
  return 0;
}

int crew_channel_watch(crew_channel *ch, crew_future *f, void *tag)
{
  if (ch == NULL || f == NULL)
    return CREW_EINVAL;
  struct node *n = crew__malloc(sizeof *n);
  if (n == NULL)
    return CREW_ENOMEM;
  int rc = watch_with(ch, f, tag, n);
  if (rc != 0)
    free(n);
  return rc;
}

int crew_submit_to_timed(crew_pool *pool, crew_channel *ch, void *tag,
                         crew_fn fn, const void *in, size_t in_size,
                         size_t out_size, uint64_t timeout_ns)
{
  if (ch == NULL)
    return CREW_EINVAL;
  struct node *n =
      crew__malloc(sizeof *n); /* first: a failed submit makes nothing */
  if (n == NULL)
    return CREW_ENOMEM;
  crew_future *f;
  int rc = crew_submit_timed(pool, fn, in, in_size, out_size, &f, timeout_ns);
  if (rc != 0) {
    free(n);
    return rc;
  }
  watch_with(ch, f, tag, n); /* a fresh future: cannot fail */
  crew_future_release(f);    /* the completion carries the channel's */
  return 0;
}

int crew_submit_to(crew_pool *pool, crew_channel *ch, void *tag, crew_fn fn,
                   const void *in, size_t in_size, size_t out_size)
{
  return crew_submit_to_timed(pool, ch, tag, fn, in, in_size, out_size,
                              CREW_FOREVER);
}

/* ---------------------------------------------------------- draining */

/* With the lock held: move up to max ready nodes to out. */
static size_t take(crew_channel *ch, crew_completion *out, size_t max,
                   struct node **taken)
{
  size_t k = 0;
  struct node *first = ch->head, **last = &first;
  while (k < max && ch->head != NULL) {
    struct node *n = ch->head;
    out[k++] = (crew_completion){.future = n->future, .tag = n->tag};
    ch->head = n->next;
    last = &n->next;
  }
  *last = NULL;
  *taken = k > 0 ? first : NULL;
  if (ch->head == NULL)
    ch->tail = &ch->head;
  ch->ready -= k;
  if (k > 0 && ch->ready == 0 && !ch->closed)
    lower_fd(ch);
  return k;
}

/* Free taken nodes; their future references went to the caller. */
static void free_nodes(struct node *n)
{
  while (n != NULL) {
    struct node *next = n->next;
    free(n);
    n = next;
  }
}

int crew_channel_wait(crew_channel *ch, crew_completion *out, size_t max,
                      size_t *n, uint64_t timeout_ns)
{
  if (n != NULL)
    *n = 0;
  if (ch == NULL || n == NULL || (out == NULL && max > 0))
    return CREW_EINVAL;
  if (max == 0)
    return 0;
  crew__deadline d = crew__deadline_in(timeout_ns);
  int rc = 0;
  crew__mutex_lock(&ch->lock);
  while (ch->ready == 0 && !ch->closed && rc == 0) {
    ch->sleepers++;
    rc = crew__cond_wait(&ch->ready_cv, &ch->lock, d);
    ch->sleepers--;
  }
  struct node *taken;
  *n = take(ch, out, max, &taken);
  crew__mutex_unlock(&ch->lock);
  free_nodes(taken);
  return *n > 0 ? 0 : CREW_ETIMEDOUT;
}

int crew_channel_drain(crew_channel *ch, crew_completion *out, size_t max,
                       size_t *n)
{
  if (n != NULL)
    *n = 0;
  if (ch == NULL || n == NULL || (out == NULL && max > 0))
    return CREW_EINVAL;
  struct node *taken;
  crew__mutex_lock(&ch->lock);
  *n = take(ch, out, max, &taken);
  crew__mutex_unlock(&ch->lock);
  free_nodes(taken);
  return 0;
}

size_t crew_channel_pending(const crew_channel *cch)
{
  if (cch == NULL)
    return 0;
  crew_channel *ch = (crew_channel *)cch; /* the lock is not the value */
  crew__mutex_lock(&ch->lock);
  size_t n = ch->ready + ch->watching;
  crew__mutex_unlock(&ch->lock);
  return n;
}
