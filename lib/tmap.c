/*
 * tmap.c - crew_map on the thread backend: one job shared by a few runner
 * slots that claim chunks of items until none are left (dynamic
 * scheduling, like OpenMP's schedule(dynamic)), while the caller waits.
 *
 * The job: `next` is the first unclaimed item; a runner claims
 * [next, next + chunk) with a compare-and-swap, so every item is claimed
 * exactly once. The chunk size is task.h's policy, shared with the process
 * backend. Items are read from and written to the caller's arrays in place:
 * the caller does not return before every item is finished, and no runner
 * touches the arrays after finishing its last claimed item.
 *
 * Runners: the caller queues at most one runner per worker (fewer if there
 * are fewer chunks). A caller that is itself a worker of the pool runs as a
 * runner too, so a map from inside a task finishes even with one worker.
 * `runners` counts runners that may still claim; a runner that a
 * CREW_CANCEL shutdown drops instead of running only leaves, and the last
 * one out settles the items nobody claimed as CREW_ECANCELED, so the caller
 * never waits for work that will not run.
 *
 * Cancelling: while it runs, a map is on its pool's list (struct
 * crew__maps), so that a CREW_CANCEL shutdown claims, at once, every chunk
 * no runner has claimed; the runners then find nothing left.
 *
 * Locking: `lock` guards done, fail_index and fail_status, and all_done is
 * signalled under it when done reaches count. The list's lock guards
 * prev_map and next_map; lock order: list, then job. The job is reference
 * counted (the caller and each queued runner) because a runner that starts
 * after the last item finished still touches it.
 */
#include "config.h"

#include "threads.h"

#include <stdlib.h>

struct crew__map {
  _Atomic unsigned refs;
  _Atomic size_t next;    /* first unclaimed item */
  _Atomic size_t runners; /* runners that may still claim items */
  crew__mutex lock;
  crew__cond all_done;
  size_t done;       /* items finished (lock) */
  size_t fail_index; /* lowest failed item so far, or count (lock) */
  int fail_status;   /* its status (lock) */
  struct crew__map *prev_map, *next_map; /* on the pool's list */
  /* Constant after create: */
  struct crew__tpool *tp;
  struct crew__map_args m;
  size_t chunk;
};

/* ------------------------------------------------------------ the job */

static void job_unref(struct crew__map *job)
{
  if (atomic_fetch_sub_explicit(&job->refs, 1, memory_order_acq_rel) != 1)
    return;
  crew__cond_destroy(&job->all_done);
  crew__mutex_destroy(&job->lock);
  free(job);
}

/* Claim the next chunk: true and [*start, *end) if any is left. */
static bool claim_chunk(struct crew__map *job, size_t *start, size_t *end)
{
  size_t next = atomic_load_explicit(&job->next, memory_order_relaxed);
  for (;;) {
    if (next >= job->m.count)
      return false;
    size_t left = job->m.count - next;
    size_t stop = next + (left < job->chunk ? left : job->chunk);
    if (atomic_compare_exchange_weak_explicit(&job->next, &next, stop,
                                              memory_order_relaxed,
                                              memory_order_relaxed)) {
      *start = next;
      *end = stop;
      return true;
    }
  }
}

/* Record n finished items, the lowest failure among them at `index`. */
static void finish_items(struct crew__map *job, size_t n, size_t index,
                         int status)
{
  crew__mutex_lock(&job->lock);
  job->done += n;
  if (status != 0 && index < job->fail_index) {
    job->fail_index = index;
    job->fail_status = status;
  }
  if (job->done == job->m.count)
    crew__cond_broadcast(&job->all_done);
  crew__mutex_unlock(&job->lock);
}

/* Run items [start, end) in worker w. */
static void run_chunk(struct crew__map *job, struct crew__tworker *w,
                      size_t start, size_t end)
{
  struct crew__outcome o = {.fail_index = UINT64_MAX};
  crew__map_items(job->m.fn, job->m.in, job->m.in_stride, job->m.out,
                  job->m.out_stride, start, end, &o, &w->exec.counters, NULL);
  finish_items(job, end - start, (size_t)o.fail_index, o.fail_status);
}

/* Claim every chunk left and settle its items as cancelled. */
static void cancel_unclaimed(struct crew__map *job)
{
  size_t start, end;
  while (claim_chunk(job, &start, &end)) {
    atomic_fetch_add_explicit(&job->tp->cancelled, end - start,
                              memory_order_relaxed);
    finish_items(job, end - start, start, CREW_ECANCELED);
  }
}

/*
 * A runner leaves. If it was the last that could claim items and some are
 * still unclaimed (their runners were dropped), settle them as cancelled.
 */
static void runner_exit(struct crew__map *job)
{
  if (atomic_fetch_sub_explicit(&job->runners, 1, memory_order_acq_rel) == 1)
    cancel_unclaimed(job);
}

void crew__tmap_runner(struct crew__map *job, struct crew__tworker *w)
{
  size_t start, end;
  while (w != NULL && claim_chunk(job, &start, &end))
    run_chunk(job, w, start, end);
  runner_exit(job);
  job_unref(job);
}

/* ---------------------------------------------------- the pool's maps */

void crew__tmap_cancel(struct crew__maps *maps)
{
  crew__mutex_lock(&maps->lock);
  maps->cancelled = true;
  for (struct crew__map *job = maps->head; job != NULL; job = job->next_map)
    cancel_unclaimed(job); /* its caller is waiting: the job is alive */
  crew__mutex_unlock(&maps->lock);
}

/* Put job on the list; if a cancel came first, cancel what is unclaimed. */
static void maps_add(struct crew__maps *maps, struct crew__map *job)
{
  crew__mutex_lock(&maps->lock);
  job->prev_map = NULL;
  job->next_map = maps->head;
  if (maps->head != NULL)
    maps->head->prev_map = job;
  maps->head = job;
  if (maps->cancelled)
    cancel_unclaimed(job);
  crew__mutex_unlock(&maps->lock);
}

static void maps_remove(struct crew__maps *maps, struct crew__map *job)
{
  crew__mutex_lock(&maps->lock);
  if (job->prev_map != NULL)
    job->prev_map->next_map = job->next_map;
  else
    maps->head = job->next_map;
  if (job->next_map != NULL)
    job->next_map->prev_map = job->prev_map;
  crew__mutex_unlock(&maps->lock);
}

/* --------------------------------------------------------------- map */

static int job_create(struct crew__map **jp, struct crew__tpool *tp,
                      const struct crew__map_args *m)
{
  struct crew__map *job = crew__malloc(sizeof *job);
  if (job == NULL)
    return CREW_ENOMEM;
  if (crew__mutex_init(&job->lock) != 0) {
    free(job);
    return CREW_ENOMEM;
  }
  if (crew__cond_init(&job->all_done) != 0) {
    crew__mutex_destroy(&job->lock);
    free(job);
    return CREW_ENOMEM;
  }
  atomic_init(&job->refs, 1);
  atomic_init(&job->next, 0);
  atomic_init(&job->runners, 0);
  job->done = 0;
  job->fail_index = m->count;
  job->fail_status = 0;
  job->tp = tp;
  job->m = *m;
  job->chunk = crew__map_chunk(m->count, tp->nworkers);
  *jp = job;
  return 0;
}

/* Queue up to `want` runners; how many went in before a shutdown. From a
 * worker of the pool, a full queue runs the runner here instead. */
static size_t queue_runners(struct crew__map *job, size_t want,
                            struct crew__tworker *self)
{
  struct crew__tpool *tp = job->tp;
  crew__deadline d = {self != NULL ? 0 : CREW__NEVER};
  size_t queued = 0;
  for (; queued < want; queued++) {
    struct crew__slot t = {.kind = CREW__SLOT_MAP, .ptr = job};
    atomic_fetch_add_explicit(&job->refs, 1, memory_order_relaxed);
    /* a runner slot is not a task: the map's items are counted */
    atomic_fetch_sub_explicit(&tp->adjust, 1, memory_order_relaxed);
    int rc = crew__queue_put(tp->queue, &t, sizeof t, d);
    if (rc != 0)
      atomic_fetch_add_explicit(&tp->adjust, 1, memory_order_relaxed);
    if (rc == CREW_ETIMEDOUT && self != NULL) {
      crew__tmap_runner(job, self);
    } else if (rc != 0) {
      atomic_fetch_sub_explicit(&job->refs, 1, memory_order_relaxed);
      break;
    }
  }
  return queued;
}

static int wait_done(struct crew__map *job)
{
  crew__mutex_lock(&job->lock);
  while (job->done < job->m.count)
    crew__cond_wait(&job->all_done, &job->lock, (crew__deadline){CREW__NEVER});
  int status = job->fail_status;
  crew__mutex_unlock(&job->lock);
  return status;
}

int crew__tmap(struct crew__tpool *tp, const struct crew__map_args *m)
{
  struct crew__map *job;
  int rc = job_create(&job, tp, m);
  if (rc != 0)
    return rc;
  struct crew__tworker *self = crew__tpool_self(tp);
  size_t chunks = crew__map_nchunks(m->count, job->chunk);
  size_t want = chunks < tp->nworkers ? chunks : tp->nworkers;
  if (self != NULL)
    want--; /* this worker is one of the runners */
  atomic_store_explicit(&job->runners, want + (self != NULL),
                        memory_order_relaxed);

  atomic_fetch_add_explicit(&tp->adjust, (int64_t)m->count,
                            memory_order_relaxed);
  size_t queued = queue_runners(job, want, self);
  if (queued == 0 && self == NULL) {
    /* Shut down before any runner went in: nothing ran, nothing will. */
    atomic_fetch_sub_explicit(&tp->adjust, (int64_t)m->count,
                              memory_order_relaxed);
    job_unref(job);
    return CREW_ECLOSED;
  }
  /* On the list only now: wait_idle sees the runners' slots until then,
   * and once every one is handled, every item is finished. */
  maps_add(&tp->maps, job);
  for (size_t i = queued; i < want; i++)
    runner_exit(job); /* runners that never went in */
  if (self != NULL) {
    size_t start, end;
    while (claim_chunk(job, &start, &end))
      run_chunk(job, self, start, end);
    runner_exit(job);
  }
  rc = wait_done(job);
  maps_remove(&tp->maps, job);
  job_unref(job);
  crew__tpool_poke(tp);
  return rc;
}
