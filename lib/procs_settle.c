/*
 * procs_settle.c - a process pool's entries, and settling its tasks: from
 * a worker's report, from a worker's death, from a CREW_CANCEL shutdown and
 * from a pool that broke.
 *
 * Entries: there are queue_capacity + workers of them (the backpressure:
 * submit waits for a free one). Each has a ticket that never repeats, so a
 * descriptor or event that names (entry, ticket) names nothing once the
 * entry was freed: a stale or torn value from shared memory is ignored.
 *
 * Settling: decided under the lock (what happened, the counters, the
 * entry), done outside it (struct settlement, see settle()). Callbacks go
 * to the pool's callback thread when the manager settles, or run on the
 * thread that cancels. Scans of the table settle one
 * entry at a time, dropping the lock for each (settle_each).
 *
 * Trust: a record's state word is read once; what it should be is decided
 * by what happened, so a worker that scribbled on it cannot have its task
 * settled twice or never. A record it claimed names its pid, so a dead
 * worker's tasks are found even when its slot lies.
 */
#include "config.h"

#include "procs.h"

#include <string.h>

/* ---------------------------------------------------------- entries */

int crew__procs_take_entry(struct crew__procs *pp, crew__deadline d,
                           uint32_t *index)
{
  crew__assert_held(&pp->lock);
  while (pp->nfree == 0 && pp->stop == 0 && pp->broken == 0)
    if (crew__cond_wait(&pp->changed, &pp->lock, d) == CREW_ETIMEDOUT &&
        pp->nfree == 0 && pp->stop == 0 && pp->broken == 0)
      return CREW_ETIMEDOUT;
  if (pp->stop != 0)
    return CREW_ECLOSED;
  if (pp->broken != 0)
    return pp->broken;
  *index = pp->free_entries[--pp->nfree];
  pp->entries[*index].ticket = ++pp->next_ticket;
  return 0;
}

void crew__procs_free_entry(struct crew__procs *pp, struct crew__pentry *e)
{
  crew__assert_held(&pp->lock);
  if (e->kind == E_TASK)
    crew__arena_free(pp->arena, e->offset, e->size);
  *e = (struct crew__pentry){.kind = E_FREE, .ticket = e->ticket};
  pp->free_entries[pp->nfree++] = (uint32_t)(e - pp->entries);
  crew__cond_broadcast(&pp->changed);
}

bool crew__procs_push(struct crew__procs *pp, const struct crew__pentry *e,
                      uint32_t kind, size_t offset)
{
  struct crew__pdesc d = {.entry = (uint32_t)(e - pp->entries),
                          .kind = kind,
                          .ticket = e->ticket,
                          .offset = offset};
  /* Never blocks: the queue holds as many items as there are entries, and
   * it is closed only once no entry is in use. It fails only if a worker
   * scribbled on the queue (duplicates, a closed flag): callers then settle
   * the entry as lost instead of waiting for it. */
  if (crew_queue_push_timed(pp->tasks, &d, 0) == 0)
    return true;
  if (crew__shq_broken(pp->tasks)) /* the manager breaks the pool */
    atomic_store(&pp->corrupt, true);
  return false;
}

/* ------------------------------------------------------- settlements */

/* What to do with a task's future once the lock is dropped. */
struct settlement {
  crew_future *future;
  struct crew__pentry *entry; /* to free */
  enum { S_NONE, S_RAN, S_FAILED, S_CANCELLED } how;
  int status;
  const void *out; /* S_RAN: the output in the arena */
  size_t out_size;
  crew_exit end; /* S_FAILED: how its worker ended (pid 0: not known) */
};

#define NOTHING ((struct settlement){.how = S_NONE})

/* Resolve s's future as s says (S_NONE: it is resolved already). */
static void settle_future(struct settlement *s, struct crew__callbacks *later)
{
  crew_future *f = s->future;
  if (s->how == S_RAN)
    crew__future_settle(f, CREW__RAN, s->status, s->out, s->out_size, NULL,
                        later);
  else if (s->how == S_FAILED)
    crew__future_settle(f, CREW__FAILED, s->status, NULL, 0, &s->end, later);
  else if (s->how == S_CANCELLED)
    crew__future_settle(f, CREW__CANCELLED, 0, NULL, 0, NULL, later);
}

/*
 * Outside the lock: do s (see the head comment). A task that ran is
 * resolved first, its output copied out of the arena, then its entry freed;
 * its callbacks never run here (only the manager settles those, and hands
 * them to the callback thread), so none can wait for that entry. So is any
 * other the manager settles (`later`): its entry is freed only once its
 * callbacks are due, so that wait_idle, seeing no entry in use, sees them.
 * One settled on the thread that cancels (`later` NULL) frees its entry
 * first: its callbacks run here, and may submit or shut down.
 */
static void settle(struct crew__procs *pp, struct settlement *s,
                   struct crew__callbacks *later)
{
  crew_future *f = s->future;
  bool future_first = s->how == S_RAN || later != NULL;
  if (f != NULL && future_first)
    settle_future(s, later);
  if (s->entry != NULL) {
    crew__mutex_lock(&pp->lock);
    crew__procs_free_entry(pp, s->entry);
    crew__mutex_unlock(&pp->lock);
  }
  if (f == NULL)
    return;
  if (!future_first)
    settle_future(s, later);
  crew_future_release(f); /* the entry's reference */
}

/* The manager settles: callbacks go to the callback thread. */
static void settle_later(struct crew__procs *pp, struct settlement *s)
{
  settle(pp, s, pp->callbacks);
}

/* With the lock held: the task of entry e ran and its record says so. */
static struct settlement task_ran(struct crew__procs *pp,
                                  struct crew__pentry *e)
{
  struct crew__precord *rec = crew__record(pp, e->offset);
  int status = rec->status;
  pp->completed++;
  if (status != 0)
    pp->failed++;
  if (pp->cfg->hooks.latency) { /* the worker's times, checked against ours */
    uint64_t start = rec->started_ns, end = rec->finished_ns;
    uint64_t epoch = crew__read(pp->cfg->hooks.epoch);
    if (e->submitted_ns <= start && start <= end && end <= crew__now_ns()) {
      crew__hist_record(&pp->hist[0], start - e->submitted_ns, epoch);
      crew__hist_record(&pp->hist[1], end - start, epoch);
    }
  }
  return (struct settlement){.future = e->future,
                             .entry = e,
                             .how = S_RAN,
                             .status = status,
                             .out = rec->data + e->out_at,
                             .out_size = e->out_size};
}

/* With the lock held: entry e's task will never run. */
static struct settlement task_cancelled(struct crew__procs *pp,
                                        struct crew__pentry *e)
{
  if (e->user_cancelled) /* counted and resolved by crew_future_cancel */
    return (struct settlement){.entry = e, .future = e->future, .how = S_NONE};
  pp->cancelled++;
  return (struct settlement){.entry = e,
                             .future = e->future,
                             .how = S_CANCELLED,
                             .status = CREW_ECANCELED};
}

/* With the lock held: entry e's task is lost (its worker died in it, its
 * record says nothing we can believe, or the pool broke). `end`: how its
 * worker ended, if that is known (else NULL). */
static struct settlement task_lost(struct crew__procs *pp,
                                   struct crew__pentry *e, int cause,
                                   const crew_exit *end)
{
  if (e->user_cancelled) /* resolved already: only the entry is left */
    return task_cancelled(pp, e);
  if (cause == CREW_EDEADLINE)
    pp->deadline_killed++;
  else if (cause == CREW_EINIT || cause == CREW_ECANCELED) /* or killed */
    pp->cancelled++;
  else
    pp->crashed++;
  return (struct settlement){.future = e->future,
                             .entry = e,
                             .how = cause == CREW_ECANCELED ? S_CANCELLED
                                                            : S_FAILED,
                             .status = cause,
                             .end = end != NULL ? *end : (crew_exit){0, 0}};
}

/*
 * With the lock held: task entry e was popped but never started. Put it back
 * on the queue, or cancel it if a CREW_CANCEL shutdown began (*s then says
 * how to settle it); false if neither could be done.
 */
static bool requeue(struct crew__procs *pp, struct crew__pentry *e,
                    struct settlement *s)
{
  *s = NOTHING;
  if (pp->stop == CREW_CANCEL + 1) {
    uint32_t expected = R_QUEUED;
    atomic_compare_exchange_strong(&crew__record(pp, e->offset)->state,
                                   &expected, R_CANCELLED);
    *s = task_cancelled(pp, e);
    return true;
  }
  return !pp->tasks_closed &&
         crew__procs_push(pp, e, CREW__DESC_TASK, e->offset);
}

/* With the lock held: the job has no runner and nothing left to run. */
static void map_complete(struct crew__pmap *m)
{
  m->complete = true;
  crew__cond_broadcast(&m->done);
}

/*
 * With the lock held: a runner of entry e stopped (done, recycled, dead or
 * dropped). The last one out re-queues a runner if chunks are left and the
 * pool is not cancelling (reusing its entry), or completes the job.
 */
static void runner_finished(struct crew__procs *pp, struct crew__pentry *e)
{
  struct crew__pmap *m = e->map;
  m->runners--;
  if (m->runners == 0) {
    uint64_t next = atomic_load(&m->job->next_chunk);
    if (next < m->nchunks && pp->stop != CREW_CANCEL + 1) {
      e->ticket = ++pp->next_ticket;
      m->runners++;
      if (crew__procs_push(pp, e, CREW__DESC_RUNNER, m->offset))
        return;
      m->runners--; /* the chunks left count as cancelled */
    }
    map_complete(m);
  }
  crew__procs_free_entry(pp, e);
}

/*
 * Scan the table from entry 0, calling pick on each entry in use under the
 * lock; settle what it returns outside the lock, one at a time, and go on
 * from the next entry. `later` as settle().
 */
static void settle_each(struct crew__procs *pp,
                        struct settlement (*pick)(struct crew__procs *,
                                                  struct crew__pentry *,
                                                  void *),
                        void *arg, struct crew__callbacks *later)
{
  for (size_t i = 0;;) {
    struct settlement s = NOTHING;
    crew__mutex_lock(&pp->lock);
    for (; i < pp->nentries && s.entry == NULL && s.future == NULL; i++)
      if (pp->entries[i].kind != E_FREE)
        s = pick(pp, &pp->entries[i], arg);
    crew__mutex_unlock(&pp->lock);
    if (s.entry == NULL && s.future == NULL)
      return;
    settle(pp, &s, later);
  }
}

/* ---------------------------------------------------------- reports */

/* Whether a record's state word is one crew writes. */
static bool valid_state(uint32_t word)
{
  if (CREW__STATE_OF(word) == R_RUNNING || CREW__STATE_OF(word) == R_DONE)
    return CREW__OWNER_OF(word) > 0;
  return word == R_QUEUED || word == R_CANCELLED;
}

/* The state of e's record, or UINT32_MAX if no one of crew wrote it. */
static uint32_t record_state(struct crew__procs *pp, struct crew__pentry *e,
                             pid_t *owner)
{
  uint32_t word = atomic_load_explicit(&crew__record(pp, e->offset)->state,
                                       memory_order_acquire);
  *owner = CREW__OWNER_OF(word);
  return valid_state(word) ? CREW__STATE_OF(word) : UINT32_MAX;
}

/* With the lock held: a worker said (EV_DONE, EV_SKIPPED) it is finished
 * with task entry e. */
static struct settlement task_reported(struct crew__procs *pp,
                                       struct crew__pentry *e, uint32_t kind)
{
  pid_t owner;
  uint32_t state = record_state(pp, e, &owner);
  if (e->user_cancelled || (kind == CREW__EV_SKIPPED && state == R_CANCELLED))
    return task_cancelled(pp, e);
  if (kind == CREW__EV_DONE && state == R_DONE)
    return task_ran(pp, e);
  if (kind == CREW__EV_SKIPPED && (state == R_RUNNING || state == R_DONE))
    return NOTHING; /* a copy: the worker that claimed it reports */
  struct settlement s;
  if (kind == CREW__EV_SKIPPED && state == R_QUEUED && requeue(pp, e, &s))
    return s; /* popped, not run: again */
  return task_lost(pp, e, CREW_ECRASHED, NULL);
}

void crew__procs_reported(struct crew__procs *pp, const struct crew__pevent *ev)
{
  crew__mutex_lock(&pp->lock);
  struct crew__pentry *e = crew__procs_entry(pp, ev->entry, ev->ticket);
  struct settlement s = NOTHING;
  if (e != NULL && e->kind == E_TASK &&
      (ev->kind == CREW__EV_DONE || ev->kind == CREW__EV_SKIPPED))
    s = task_reported(pp, e, ev->kind);
  else if (e != NULL && e->kind == E_RUNNER && ev->kind == CREW__EV_RUNNER_DONE)
    runner_finished(pp, e);
  crew__mutex_unlock(&pp->lock);
  settle_later(pp, &s);
}

/* ----------------------------------------------------------- deaths */

/*
 * With the lock held: a runner of map m died in the chunk its slot names:
 * the chunk is lost from the item it had reached. An item before that may
 * have failed: it stays the chunk's lowest failure if what the worker wrote
 * is believable. Every value read from shared memory is read once and
 * checked against the map's geometry, which is the parent's.
 */
static void lose_chunk(struct crew__procs *pp, struct crew__pmap *m,
                       const struct crew__pslot *s, int cause)
{
  uint64_t chunk = atomic_load(&s->chunk);
  if (chunk < 1 || chunk > m->nchunks ||
      atomic_load(&m->job->chunks[chunk - 1].done))
    return;
  struct crew__pchunk *pc = &m->job->chunks[chunk - 1];
  uint64_t first = (chunk - 1) * m->chunk, len = crew__chunk_len(m, chunk - 1);
  uint64_t progress = atomic_load(&s->chunk_done);
  uint64_t ran = progress < len ? progress : len - 1;
  struct crew__outcome o = pc->outcome;
  if (o.failures == 0 || o.failures > ran || o.fail_index < first ||
      o.fail_index >= first + ran || o.fail_status == 0)
    o = (struct crew__outcome){
        .failures = 0, .fail_index = first + ran, .fail_status = cause};
  pc->ran = ran;
  pc->outcome = o;
  pc->lost = 1;
  atomic_store(&pc->done, 1);
  if (cause == CREW_EDEADLINE)
    pp->deadline_killed++;
  else if (cause == CREW_ECANCELED) /* CREW_KILL */
    pp->cancelled++;
  else
    pp->crashed++;
}

/* A dead worker: its pid, why it died and how it ended (pid 0: its wait
 * code is not known). */
struct death {
  pid_t pid;
  int cause;
  crew_exit end;
};

/* With the lock held: worker dead->pid of `slot` died holding descriptor
 * d. */
static struct settlement dead_task(struct crew__procs *pp, uint32_t slot,
                                   const struct death *dead,
                                   struct crew__pdesc d)
{
  int cause = dead->cause;
  struct crew__pentry *e = crew__procs_entry(pp, d.entry, d.ticket);
  if (e == NULL)
    return NOTHING;
  if (e->kind == E_RUNNER) {
    lose_chunk(pp, e->map, &pp->ctrl->slots[slot], cause);
    runner_finished(pp, e);
    return NOTHING;
  }
  if (e->user_cancelled)
    return task_cancelled(pp, e);
  pid_t owner;
  uint32_t state = record_state(pp, e, &owner);
  /* Claimed by another worker: the slot lies (a copy of another's); the
   * owner settles it. */
  if ((state == R_RUNNING || state == R_DONE) && owner != dead->pid)
    return NOTHING;
  struct settlement s;
  if (state == R_DONE) /* it ran; the worker died before saying so */
    return task_ran(pp, e);
  if (state == R_QUEUED && requeue(pp, e, &s)) /* popped, never started */
    return s;
  if (state == R_CANCELLED)
    return task_cancelled(pp, e);
  /* RUNNING, or a value crew never wrote */
  return task_lost(pp, e, cause, &dead->end);
}

/* Every other task whose record says the dead worker claimed it: its slot
 * may have been scribbled on, so the records are the second witness. Every
 * event the worker pushed came before its death's, so a record it claimed
 * whose entry is still in use was never reported. */
static struct settlement swept(struct crew__procs *pp, struct crew__pentry *e,
                               void *arg)
{
  const struct death *dead = arg;
  pid_t owner;
  if (e->kind != E_TASK)
    return NOTHING;
  uint32_t state = record_state(pp, e, &owner);
  if (state != R_RUNNING && state != R_DONE)
    return NOTHING;
  if (owner != dead->pid)
    return NOTHING;
  if (e->user_cancelled)
    return task_cancelled(pp, e);
  return state == R_DONE ? task_ran(pp, e)
                         : task_lost(pp, e, dead->cause, &dead->end);
}

/* Whether a wait code, from the event queue (which a worker may have
 * scribbled on), is one: an exit status 0..255, or -signal. */
static bool wait_code(int code)
{
  return code >= -127 && code <= 255;
}

bool crew__procs_dead(struct crew__procs *pp, uint32_t slot, pid_t pid,
                      int cause, int code)
{
  struct death dead = {pid, cause, {0, 0}};
  if (wait_code(code))
    dead.end = (crew_exit){.pid = pid, .code = code};
  crew__mutex_lock(&pp->lock);
  struct crew__pslot *ss = &pp->ctrl->slots[slot];
  struct settlement s = dead_task(pp, slot, &dead, ss->current);
  /* Clear the slot for its next worker: a stale busy_since would have the
   * replacement killed at once for its predecessor's deadline. */
  ss->current.entry = CREW__NO_ENTRY;
  atomic_store(&ss->busy_since, 0);
  atomic_store(&ss->chunk, 0);
  atomic_store(&ss->ready_pid, 0);
  crew__mutex_unlock(&pp->lock);
  bool lost = s.how == S_FAILED;
  settle_later(pp, &s);
  settle_each(pp, swept, &dead, pp->callbacks);
  return lost;
}

/* ------------------------------------------------ a pool that broke */

/* Whatever is still in use: a corrupt queue may have swallowed it. */
static struct settlement lost(struct crew__procs *pp, struct crew__pentry *e,
                              void *arg)
{
  if (e->kind == E_RUNNER) {
    runner_finished(pp, e);
    return NOTHING;
  }
  return task_lost(pp, e, *(const int *)arg, NULL);
}

void crew__procs_lose_all(struct crew__procs *pp, int cause)
{
  struct crew__pdesc d;
  while (crew_queue_pop_timed(pp->tasks, &d, 0) == 0) {
    struct settlement s = NOTHING;
    crew__mutex_lock(&pp->lock);
    struct crew__pentry *e = crew__procs_entry(pp, d.entry, d.ticket);
    if (e != NULL)
      s = lost(pp, e, &cause);
    crew__mutex_unlock(&pp->lock);
    settle_later(pp, &s);
  }
  settle_each(pp, lost, &cause, pp->callbacks);
}

/* ---------------------------------------------------- CREW_CANCEL */

/*
 * With the lock held: take every chunk of map m that no runner has claimed,
 * so that none will, and count their items cancelled now. The runners still
 * in a chunk finish it; the map returns once they have.
 */
static void cut_map(struct crew__procs *pp, struct crew__pmap *m)
{
  if (m->cut)
    return;
  uint64_t next = atomic_exchange(&m->job->next_chunk, UINT64_MAX / 2);
  m->cut = true;
  m->cut_at = next < m->nchunks ? next : m->nchunks;
  for (uint64_t c = m->cut_at; c < m->nchunks; c++)
    pp->cancelled += crew__chunk_len(m, c);
}

/* With the lock held: a descriptor taken off the queue after a CREW_CANCEL
 * shutdown began, settled without running. */
static struct settlement cancel_popped(struct crew__procs *pp,
                                       const struct crew__pdesc *d)
{
  struct crew__pentry *e = crew__procs_entry(pp, d->entry, d->ticket);
  if (e != NULL && e->kind == E_RUNNER) {
    runner_finished(pp, e);
  } else if (e != NULL && e->kind == E_TASK) {
    uint32_t expected = R_QUEUED;
    atomic_compare_exchange_strong(&crew__record(pp, e->offset)->state,
                                   &expected, R_CANCELLED);
    return task_cancelled(pp, e);
  }
  return NOTHING;
}

void crew__procs_cancel_queued(struct crew__procs *pp)
{
  struct crew__pdesc d;
  while (crew_queue_pop_timed(pp->tasks, &d, 0) == 0) {
    crew__mutex_lock(&pp->lock);
    struct settlement s = cancel_popped(pp, &d);
    pp->settling++; /* its entry goes first: wait_idle waits for the rest */
    crew__mutex_unlock(&pp->lock);
    settle(pp, &s, NULL); /* here: the thread that cancels */
    crew__mutex_lock(&pp->lock);
    pp->settling--;
    crew__cond_broadcast(&pp->changed);
    crew__mutex_unlock(&pp->lock);
  }
  crew__mutex_lock(&pp->lock);
  for (size_t i = 0; i < pp->nentries; i++)
    if (pp->entries[i].kind == E_RUNNER)
      cut_map(pp, pp->entries[i].map);
  crew__mutex_unlock(&pp->lock);
}
