/*
 * procs_map.c - crew_map on worker processes, the parent's half (the
 * runners are procs_worker.c's).
 *
 * The arrays travel through the arena: one block holds the job's head, one
 * outcome per chunk, a copy of the input array and one of the output array
 * (so bytes a task does not write come back unchanged). The chunk size is
 * task.h's policy, shared with the thread backend. The caller queues at
 * most one runner per worker and waits; runners claim chunks with a
 * fetch-and-add on the job's next_chunk. The last runner out re-queues a
 * runner if chunks are left (a recycled worker's), or completes the map
 * (procs_settle.c: runner_finished).
 *
 * Trust: the outcome of each chunk is read once and checked against the
 * map's geometry, which the parent keeps (struct crew__pmap), never the
 * job's copy in shared memory: a chunk whose outcome cannot be true counts
 * as crashed at its first item.
 */
#include "config.h"

#include "procs.h"

#include <string.h>

static size_t round_up(size_t n, size_t to)
{
  return (n + to - 1) / to * to;
}

/* Where a map's parts go in its arena block. */
struct layout {
  size_t chunk, nchunks;
  size_t in_at, out_at; /* offsets from the job; 0: no array */
  size_t size;
};

/* Lay a map out in one arena block: 0, or CREW_EINVAL on overflow. */
static int map_layout(const struct crew__map_args *m, size_t workers,
                      struct layout *l)
{
  l->chunk = crew__map_chunk(m->count, workers);
  l->nchunks = crew__map_nchunks(m->count, l->chunk);
  if (l->nchunks > (SIZE_MAX / 4) / sizeof(struct crew__pchunk))
    return CREW_EINVAL;
  size_t at = round_up(sizeof(struct crew__pjob) +
                           l->nchunks * sizeof(struct crew__pchunk),
                       alignof(max_align_t));
  size_t in_bytes = m->in != NULL ? m->count * m->in_stride : 0;
  size_t out_bytes = m->out != NULL ? m->count * m->out_stride : 0;
  if (in_bytes > SIZE_MAX / 4 || out_bytes > SIZE_MAX / 4)
    return CREW_EINVAL;
  l->in_at = m->in != NULL ? at : 0;
  at = round_up(at + in_bytes, alignof(max_align_t));
  l->out_at = m->out != NULL ? at : 0;
  l->size = at + out_bytes;
  return 0;
}

/* Write the job's head and the arrays into its block. */
static struct crew__pjob *fill_job(struct crew__procs *pp, size_t offset,
                                   const struct crew__map_args *m,
                                   const struct layout *l)
{
  struct crew__pjob *job = crew__arena_at(pp->arena, offset);
  memset(job, 0,
         l->in_at != 0    ? l->in_at
         : l->out_at != 0 ? l->out_at
                          : l->size);
  *job = (struct crew__pjob){.fn = m->fn,
                             .count = m->count,
                             .chunk = l->chunk,
                             .nchunks = l->nchunks,
                             .in_stride = m->in_stride,
                             .out_stride = m->out_stride,
                             .in_at = l->in_at,
                             .out_at = l->out_at};
  if (m->in != NULL)
    memcpy((unsigned char *)job + l->in_at, m->in, m->count * m->in_stride);
  if (m->out != NULL)
    memcpy((unsigned char *)job + l->out_at, m->out, m->count * m->out_stride);
  return job;
}

/*
 * With the lock held: chunk c's outcome, counted into the pool's counters:
 * its lowest failed item in *index (UINT64_MAX: none) with its status.
 * `claimed`: the chunks from there on were never claimed.
 */
static int chunk_outcome(struct crew__procs *pp, struct crew__pmap *m,
                         uint64_t c, uint64_t claimed, uint64_t *index)
{
  struct crew__pchunk *pc = &m->job->chunks[c];
  uint64_t first = c * m->chunk, len = crew__chunk_len(m, c);
  bool done = atomic_load(&pc->done) != 0, lost = pc->lost != 0;
  uint64_t ran = pc->ran;
  struct crew__outcome o = pc->outcome;
  bool failed_ok = o.failures <= ran && o.fail_index >= first &&
                   o.fail_index < first + ran && o.fail_status != 0;
  bool none = o.failures == 0;
  bool sane =
      lost ? ran < len &&
                 (none ? o.fail_index == first + ran && o.fail_status < 0
                       : failed_ok)
           : ran == len && (none ? o.fail_index == UINT64_MAX : failed_ok);
  *index = o.fail_index;
  if (done && sane) { /* a lost item was counted at the death */
    pp->completed += ran;
    pp->failed += o.failures;
    pp->cancelled += lost ? len - ran - 1 : 0;
    return o.fail_status;
  }
  *index = first;
  if (!done && c >= claimed) { /* never claimed: never run */
    if (!m->cut)               /* else counted when the shutdown cut the map */
      pp->cancelled += len;
    return !m->cut && pp->broken != 0 ? pp->broken : CREW_ECANCELED;
  }
  /* claimed by a runner that died before it could say which chunk, or an
   * outcome no runner of crew wrote */
  pp->crashed++;
  pp->cancelled += len - 1;
  return CREW_ECRASHED;
}

/* With the lock held: add up a complete map's chunks; the status of the
 * lowest failed item (0 if none). */
static int map_outcome(struct crew__procs *pp, struct crew__pmap *m)
{
  uint64_t fail_index = UINT64_MAX;
  int status = 0;
  uint64_t claimed = m->cut ? m->cut_at : atomic_load(&m->job->next_chunk);
  for (uint64_t c = 0; c < m->nchunks; c++) {
    uint64_t index;
    int st = chunk_outcome(pp, m, c, claimed, &index);
    if (index < fail_index) {
      fail_index = index;
      status = st;
    }
  }
  return status;
}

/* With the lock held: queue up to `want` runners for m; how many went in. */
static size_t queue_runners(struct crew__procs *pp, struct crew__pmap *m,
                            size_t want)
{
  size_t queued = 0;
  uint32_t index;
  while (queued < want && crew__procs_take_entry(
                              pp, (crew__deadline){CREW__NEVER}, &index) == 0) {
    struct crew__pentry *e = &pp->entries[index];
    *e = (struct crew__pentry){.kind = E_RUNNER, .ticket = e->ticket, .map = m};
    if (!crew__procs_push(pp, e, CREW__DESC_RUNNER, m->offset)) {
      crew__procs_free_entry(pp, e);
      break;
    }
    m->runners++;
    queued++;
  }
  return queued;
}

/* With the lock held: queue the runners and wait for the map to end. */
static int run_map(struct crew__procs *pp, struct crew__pmap *m, bool *started)
{
  size_t want = m->nchunks < pp->nworkers ? m->nchunks : pp->nworkers;
  *started = queue_runners(pp, m, want) > 0;
  if (!*started)
    return pp->stop == 0 && pp->broken != 0 ? pp->broken : CREW_ECLOSED;
  pp->submitted += m->count;
  while (!m->complete)
    crew__cond_wait(&m->done, &pp->lock, (crew__deadline){CREW__NEVER});
  return map_outcome(pp, m);
}

int crew__procs_map(struct crew__procs *pp, const struct crew__map_args *m)
{
  struct layout l;
  size_t offset;
  int rc = map_layout(m, pp->nworkers, &l);
  if (rc != 0)
    return rc;
  crew__mutex_lock(&pp->lock);
  rc = pp->stop != 0     ? CREW_ECLOSED
       : pp->broken != 0 ? pp->broken
                         : crew__arena_alloc(pp->arena, l.size, &offset);
  pp->maps += rc == 0; /* in flight: wait_idle waits for it */
  crew__mutex_unlock(&pp->lock);
  if (rc != 0)
    return rc;
  struct crew__pjob *job = fill_job(pp, offset, m, &l);
  struct crew__pmap map = {.job = job,
                           .offset = offset,
                           .count = m->count,
                           .chunk = l.chunk,
                           .nchunks = l.nchunks};
  if (crew__cond_init(&map.done) != 0) {
    rc = CREW_ENOMEM;
  } else {
    bool started;
    crew__mutex_lock(&pp->lock);
    rc = run_map(pp, &map, &started);
    crew__mutex_unlock(&pp->lock);
    if (started && m->out != NULL)
      memcpy(m->out, (unsigned char *)job + l.out_at, m->count * m->out_stride);
    crew__cond_destroy(&map.done);
  }
  crew__mutex_lock(&pp->lock);
  crew__arena_free(pp->arena, offset, l.size);
  pp->maps--;
  crew__cond_broadcast(&pp->changed); /* wait_idle */
  crew__mutex_unlock(&pp->lock);
  return rc;
}
