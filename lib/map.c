/*
 * map.c - crew_map: one job shared by a few runner tasks that claim chunks
 * of items until none are left (dynamic scheduling, like OpenMP's
 * schedule(dynamic)), while the caller waits.
 *
 * The job: `next` is the first unclaimed item; a runner claims
 * [next, next + chunk) with a compare-and-swap, so every item is claimed
 * exactly once. Items are read from and written to the caller's arrays in
 * place: the caller does not return before every item is finished, and no
 * runner touches the arrays after finishing its last claimed item.
 *
 * Runners: the caller queues at most one runner per worker (fewer if there
 * are fewer chunks). A caller that is itself a worker of the pool runs a
 * runner inline too, so a map from inside a task finishes even with one
 * worker. `runners` counts runners that may still claim; a runner that a
 * CREW_CANCEL shutdown drops instead of running only decrements it, and the
 * last one out settles the items nobody claimed as CREW_ECANCELED, so the
 * caller never waits for work that will not run.
 *
 * Cancelling: while it runs, a map is on its pool's list of maps
 * (struct crew__maps), so that a CREW_CANCEL shutdown claims, at once, every
 * chunk no runner has claimed and settles its items as CREW_ECANCELED; the
 * runners then find nothing left and leave after their current chunk.
 *
 * Locking: `lock` guards done, fail_index and fail_status, and all_done is
 * signalled under it when done reaches count. The list's lock guards prev
 * and next; lock order: list, then job. The job is reference counted (the
 * caller and each queued runner) because a runner that starts after the
 * last item finished still touches it.
 */
#include "config.h"

#include "internal.h"
#include "procpool.h"

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
  /* Constant after create: */
  crew_pool *pool;
  crew_fn fn;
  const unsigned char *in;
  size_t in_stride;
  unsigned char *out;
  size_t out_stride;
  size_t count;
  size_t chunk;
  struct crew__map *prev_map, *next_map; /* on the pool's list (its lock) */
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
    if (next >= job->count)
      return false;
    size_t left = job->count - next;
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
  if (job->done == job->count)
    crew__cond_broadcast(&job->all_done);
  crew__mutex_unlock(&job->lock);
}

/* Run items [start, end) in worker w. */
static void run_chunk(struct crew__map *job, struct crew__worker *w,
                      size_t start, size_t end)
{
  struct crew__counters *c = crew__worker_counters(w);
  size_t fail_index = end;
  int fail_status = 0;
  for (size_t i = start; i < end; i++) {
    const void *in = job->in != NULL ? job->in + i * job->in_stride : NULL;
    void *out = job->out != NULL ? job->out + i * job->out_stride : NULL;
    crew__count(&c->started, 1);
    int status = job->fn(in, out);
    crew__count(&c->completed, 1);
    if (status != 0) {
      crew__count(&c->failed, 1);
      if (fail_index == end) {
        fail_index = i;
        fail_status = status;
      }
    }
  }
  finish_items(job, end - start, fail_index, fail_status);
}

/* Claim every chunk left and settle its items as cancelled. */
static void cancel_unclaimed(struct crew__map *job)
{
  size_t start, end;
  while (claim_chunk(job, &start, &end)) {
    crew__pool_count_cancelled(job->pool, end - start);
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

/* ---------------------------------------------------- the pool's maps */

int crew__maps_init(struct crew__maps *m)
{
  m->head = NULL;
  m->cancelled = false;
  return crew__mutex_init(&m->lock);
}

void crew__maps_fini(struct crew__maps *m)
{
  crew__mutex_destroy(&m->lock);
}

void crew__maps_cancel(struct crew__maps *m)
{
  crew__mutex_lock(&m->lock);
  m->cancelled = true;
  for (struct crew__map *job = m->head; job != NULL; job = job->next_map)
    cancel_unclaimed(job); /* its caller is waiting: the job is alive */
  crew__mutex_unlock(&m->lock);
}

/* Put job on the list; if a cancel came first, cancel what is unclaimed. */
static void maps_add(struct crew__maps *m, struct crew__map *job)
{
  crew__mutex_lock(&m->lock);
  job->prev_map = NULL;
  job->next_map = m->head;
  if (m->head != NULL)
    m->head->prev_map = job;
  m->head = job;
  if (m->cancelled)
    cancel_unclaimed(job);
  crew__mutex_unlock(&m->lock);
}

static void maps_remove(struct crew__maps *m, struct crew__map *job)
{
  crew__mutex_lock(&m->lock);
  if (job->prev_map != NULL)
    job->prev_map->next_map = job->next_map;
  else
    m->head = job->next_map;
  if (job->next_map != NULL)
    job->next_map->prev_map = job->prev_map;
  crew__mutex_unlock(&m->lock);
}

void crew__map_run(struct crew__map *job, struct crew__worker *w)
{
  size_t start, end;
  while (claim_chunk(job, &start, &end))
    run_chunk(job, w, start, end);
  runner_exit(job);
  job_unref(job);
}

void crew__map_drop(struct crew__map *job)
{
  runner_exit(job);
  job_unref(job);
}

/* --------------------------------------------------------------- map */

static int check_args(crew_pool *pool, crew_fn fn, const void *in,
                      size_t in_stride, void *out, size_t out_stride,
                      size_t count)
{
  if (pool == NULL || fn == NULL)
    return CREW_EINVAL;
  if ((in == NULL && in_stride != 0) || (out == NULL && out_stride != 0))
    return CREW_EINVAL;
  if ((in_stride != 0 && count > SIZE_MAX / in_stride) ||
      (out_stride != 0 && count > SIZE_MAX / out_stride))
    return CREW_EINVAL; /* count * stride overflows */
  struct crew__procpool *proc = crew__pool_procpool(pool);
  if (proc != NULL) {
    int rc = crew__procpool_check_map(proc, fn, in, in_stride, out, out_stride);
    if (rc != 0)
      return rc;
  }
  return crew__pool_check_open(pool);
}

static int job_create(struct crew__map **jp, crew_pool *pool, crew_fn fn,
                      const void *in, size_t in_stride, void *out,
                      size_t out_stride, size_t count)
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
  /* Python's Pool.map: about four chunks per worker. */
  size_t pieces = crew__pool_nworkers(pool) * 4;
  atomic_init(&job->refs, 1);
  atomic_init(&job->next, 0);
  atomic_init(&job->runners, 0);
  job->done = 0;
  job->fail_index = count;
  job->fail_status = 0;
  job->pool = pool;
  job->fn = fn;
  job->in = in;
  job->in_stride = in_stride;
  job->out = out;
  job->out_stride = out_stride;
  job->count = count;
  job->chunk = count / pieces + (count % pieces != 0);
  *jp = job;
  return 0;
}

/* Queue up to `want` runners; returns how many went in before a shutdown. */
static size_t queue_runners(struct crew__map *job, size_t want)
{
  size_t queued = 0;
  for (; queued < want; queued++) {
    struct crew__task t = {.kind = CREW__TASK_MAP, .ptr = job};
    atomic_fetch_add_explicit(&job->refs, 1, memory_order_relaxed);
    if (crew__pool_enqueue(job->pool, &t, CREW_FOREVER) != 0) {
      atomic_fetch_sub_explicit(&job->refs, 1, memory_order_relaxed);
      break;
    }
  }
  return queued;
}

static int wait_done(struct crew__map *job)
{
  crew__mutex_lock(&job->lock);
  while (job->done < job->count)
    crew__cond_wait(&job->all_done, &job->lock, (crew__deadline){CREW__NEVER});
  int status = job->fail_status;
  crew__mutex_unlock(&job->lock);
  return status;
}

int crew_map(crew_pool *pool, crew_fn fn, const void *in, size_t in_stride,
             void *out, size_t out_stride, size_t count)
{
  int rc = check_args(pool, fn, in, in_stride, out, out_stride, count);
  if (rc != 0 || count == 0)
    return rc;
  struct crew__procpool *proc = crew__pool_procpool(pool);
  if (proc != NULL)
    return crew__procpool_map(proc, fn, in, in_stride, out, out_stride, count);
  struct crew__map *job;
  if ((rc = job_create(&job, pool, fn, in, in_stride, out, out_stride,
                       count)) != 0)
    return rc;

  struct crew__worker *self = crew__pool_worker(pool);
  size_t chunks = count / job->chunk + (count % job->chunk != 0);
  size_t nworkers = crew__pool_nworkers(pool);
  size_t want = chunks < nworkers ? chunks : nworkers;
  if (self != NULL)
    want--; /* this worker is one of the runners */
  atomic_store_explicit(&job->runners, want + (self != NULL),
                        memory_order_relaxed);

  crew__pool_count_submitted(pool, count);
  size_t queued = queue_runners(job, want);
  if (queued == 0 && self == NULL) {
    /* Shut down before any runner went in: nothing ran, nothing will. */
    crew__pool_uncount_submitted(pool, count);
    job_unref(job);
    return CREW_ECLOSED;
  }
  struct crew__maps *maps = crew__pool_maps(pool);
  maps_add(maps, job);
  for (size_t i = queued; i < want; i++)
    runner_exit(job); /* runners that never went in */
  if (self != NULL) {
    size_t start, end;
    while (claim_chunk(job, &start, &end))
      run_chunk(job, self, start, end);
    runner_exit(job);
  }
  rc = wait_done(job);
  maps_remove(maps, job);
  job_unref(job);
  return rc;
}
