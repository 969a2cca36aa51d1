/*
 * procpool.c - a pool whose workers are processes (CREW_PROCESSES).
 *
 * Pieces, all made at create, before any worker exists:
 *  - the arena (arena.c): shared memory holding each task's record (state,
 *    status, fn, input, output) and each map's job (arrays, chunk results);
 *  - `tasks`, a CREW_SHARED crew_queue of descriptors {entry, ticket, kind,
 *    arena offset}: the same bounded queue the thread pool uses, in shared
 *    memory; workers pop from it;
 *  - `events`, another CREW_SHARED queue, on which workers report finished
 *    tasks and the fork server reports workers started and dead; only the
 *    manager pops it;
 *  - `ctrl`, shared: per worker slot the descriptor it holds, since when it
 *    is busy, which map chunk it runs and how far; and the cancel flag;
 *  - the manager thread, which forks the fork server (forkserver.c), asks
 *    it for workers, settles tasks from the events, kills workers at their
 *    deadline and replaces dead ones.
 *
 * A task's life: submit takes a free entry (the backpressure: entries are
 * queue_capacity + workers), allocates its record, copies the input in,
 * pushes the descriptor. A worker pops the descriptor straight into its
 * shared slot (so at every instant the task is either in the queue or in a
 * slot), claims the record (QUEUED -> RUNNING, compare-and-swap in shared
 * memory), runs it, writes status and output, marks it DONE and pushes an
 * event. The manager copies the output into the future, resolves it, frees
 * the record and the entry. If the worker dies instead, the fork server
 * reports it; the manager reads the slot: a record still RUNNING resolves
 * with CREW_ECRASHED (CREW_EDEADLINE if the manager killed it), one not yet
 * claimed goes back on the queue, one DONE is settled normally. A cancel
 * wins the record with QUEUED -> CANCELLED; the worker that pops it reports
 * it skipped.
 *
 * Trust: workers run application code and may scribble on shared memory.
 * The parent keeps its own copy of what matters (entries: kind, ticket,
 * offsets, sizes) and accepts a shared descriptor or event only if its entry
 * and ticket match a live entry; tickets never repeat, so a stale or torn
 * value names nothing.
 *
 * Locking: `lock` guards everything below it in struct crew__procpool.
 * Futures are resolved and callbacks run without it. Lock order: lock, then
 * a shared queue's lock (pushes made while holding it never block).
 *
 * Shutdown: `stop` is set once; submits and maps then fail with
 * CREW_ECLOSED. With CREW_CANCEL the cancel flag is raised and the queue
 * drained, each descriptor settled as cancelled. The manager closes the task
 * queue once no entry is in use (so a drain can still re-queue work), the
 * workers leave on CREW_ECLOSED, and the manager stops the fork server once
 * every worker is reaped.
 */
#include "config.h"

#include "procpool.h"

#include "arena.h"
#include "forkserver.h"

#include <errno.h>
#include <signal.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#ifdef HAVE_DL_ITERATE_PHDR
#include <link.h>
#endif

#define NO_ENTRY UINT32_MAX
#define MS       1000000ull
#define POLL_NS  (20 * MS) /* deadline checks, when task_timeout_ns is set */

/* ------------------------------------------------------ shared structures */

enum desc_kind { DESC_TASK = 1, DESC_RUNNER = 2 };
enum record_state { R_QUEUED = 0, R_RUNNING = 1, R_DONE = 2, R_CANCELLED = 3 };
enum event_kind {
  EV_DONE = 1,        /* a task ran: its record is DONE */
  EV_SKIPPED = 2,     /* a popped task was cancelled: it did not run */
  EV_RUNNER_DONE = 3, /* a map runner stopped claiming chunks */
  EV_SPAWNED = 4,     /* the fork server started a worker */
  EV_SPAWN_FAILED = 5,
  EV_DIED = 6,  /* a worker ended (not yet reaped) */
  EV_NUDGE = 7, /* look again: shutdown began */
};

/* One item of the task queue. */
struct crew__pdesc {
  uint32_t entry;
  uint32_t kind;
  uint64_t ticket;
  uint64_t offset; /* arena: the record, or the map job */
};

/* One item of the event queue. */
struct pevent {
  uint32_t kind;
  uint32_t slot;
  uint32_t entry;
  int32_t value; /* pid, errno or wait code */
  uint64_t ticket;
};

/* A task in the arena: header, input, output. */
struct precord {
  _Atomic uint32_t state;
  int32_t status;
  crew_fn fn;
  uint64_t in_size, out_size, out_at;
  uint64_t submitted_ns, started_ns, finished_ns; /* if the pool times */
  alignas(max_align_t) unsigned char data[];
};

/* A map chunk's outcome, written by the worker that ran it. */
struct pchunk {
  _Atomic uint32_t done;
  uint32_t lost; /* the worker died in it (written by the parent) */
  int32_t fail_status;
  uint64_t fail_index; /* lowest failed item, or UINT64_MAX */
  uint64_t failures;
  uint64_t ran;
};

/* A map in the arena: header, chunk outcomes, input array, output array. */
struct pjob {
  crew_fn fn;
  uint64_t count, chunk, nchunks;
  uint64_t in_stride, out_stride;
  uint64_t in_at, out_at; /* offsets from the job; 0: no array */
  _Atomic uint64_t next_chunk;
  struct pchunk chunks[];
};

/* A worker slot's state, written by its worker. */
struct shared_slot {
  alignas(64) struct crew__pdesc current; /* entry NO_ENTRY: none */
  _Atomic uint64_t busy_since;            /* monotonic ns; 0: idle */
  _Atomic uint64_t chunk;                 /* claimed chunk + 1; 0: none */
  _Atomic uint64_t chunk_done;            /* its items finished */
};

struct shared_ctrl {
  _Atomic int pool_state; /* the pool's state word: see pool.c */
  struct shared_slot slots[];
};

/* ------------------------------------------------------ parent structures */

enum entry_kind { E_FREE = 0, E_TASK = 1, E_RUNNER = 2 };

struct pmap;

struct pentry {
  int kind;
  uint64_t ticket;
  bool user_cancelled;   /* crew_future_cancel won the record */
  uint64_t submitted_ns; /* if the pool times tasks */
  crew_future *future;   /* TASK: NULL for fire and forget */
  size_t offset, size;   /* TASK: the record's block */
  size_t out_at, out_size;
  struct pmap *map; /* RUNNER */
};

struct pmap {
  struct pjob *job;
  size_t offset;   /* the job's arena block */
  size_t runners;  /* runner entries queued or running */
  bool complete;   /* no runner left and nothing left to run */
  crew__cond done; /* the mapping thread waits here (pp->lock) */
};

enum worker_state { W_EMPTY, W_STARTING, W_ALIVE };

struct pworker {
  int state;
  pid_t pid;
  bool deadline_kill; /* the manager killed it at a deadline */
  bool respawn;       /* a replacement is due at respawn_at */
  uint64_t started_ns, backoff_ns, respawn_at;
};

struct code_range {
  uintptr_t start, end;
};

struct crew__procpool {
  crew_pool *pool;
  size_t nworkers, nentries;
  size_t max_in, max_out;
  uint64_t timeout_ns, max_tasks;
  bool timed, latency; /* as in pool.c */
  crew_task_hook on_start, on_finish;
  void *hook_arg;
  struct crew__hist hist[2]; /* queue wait, run: written by the manager */
  void (*init)(void *arg);
  void *init_arg;
  char *name;
  struct crew__arena *arena;
  crew_queue *tasks;
  crew_queue *events;
  struct shared_ctrl *ctrl;
  size_t ctrl_size;
  struct code_range *code; /* executable segments loaded at create */
  size_t ncode;
  struct crew__forkserver server;
  crew__thread manager;

  crew__mutex lock;
  crew__cond changed; /* an entry freed; start-up progressed */
  struct pentry *entries;
  uint32_t *free_entries;
  size_t nfree;
  uint64_t next_ticket;
  struct pworker *workers;
  size_t alive, starting;
  int stop; /* 0, or CREW_DRAIN + 1, or CREW_CANCEL + 1 */
  bool starting_up, tasks_closed;
  int start_error;
  uint64_t submitted, completed, failed, cancelled, crashed, deadline_killed,
      restarted;
};

static size_t round_up(size_t n, size_t to)
{
  return (n + to - 1) / to * to;
}

static struct precord *record_at(struct crew__procpool *pp, size_t offset)
{
  return crew__arena_at(pp->arena, offset);
}

/* Whether a CREW_CANCEL shutdown began (decided in shared memory). */
static bool cancelling(const struct crew__procpool *pp)
{
  return atomic_load_explicit(&pp->ctrl->pool_state, memory_order_acquire) ==
         CREW__POOL_CANCELLING;
}

_Atomic int *crew__procpool_state(struct crew__procpool *pp)
{
  return &pp->ctrl->pool_state;
}

/* ===================================================== the worker process */

static void push_event(struct crew__procpool *pp, struct pevent ev)
{
  crew_queue_push(pp->events, &ev);
}

static void run_record(struct crew__procpool *pp, struct shared_slot *s,
                       const struct crew__pdesc *d)
{
  struct precord *rec = record_at(pp, d->offset);
  uint32_t expected = R_QUEUED;
  uint32_t kind = EV_SKIPPED;
  if (cancelling(pp)) {
    atomic_compare_exchange_strong(&rec->state, &expected, R_CANCELLED);
  } else if (atomic_compare_exchange_strong(&rec->state, &expected,
                                            R_RUNNING)) {
    uint64_t now = crew__now_ns();
    atomic_store(&s->busy_since, now);
    void *in = rec->in_size > 0 ? rec->data : NULL;
    void *out = rec->out_size > 0 ? rec->data + rec->out_at : NULL;
    if (pp->timed) {
      crew_task_info info = {.fn = rec->fn,
                             .worker = (size_t)(s - pp->ctrl->slots),
                             .submitted_ns = rec->submitted_ns,
                             .started_ns = now};
      if (pp->on_start != NULL)
        pp->on_start(&info, pp->hook_arg);
      info.status = rec->fn(in, out);
      info.finished_ns = crew__now_ns();
      if (pp->on_finish != NULL)
        pp->on_finish(&info, pp->hook_arg);
      rec->started_ns = info.started_ns;
      rec->finished_ns = info.finished_ns;
      rec->status = info.status;
    } else {
      rec->status = rec->fn(in, out);
    }
    atomic_store_explicit(&rec->state, R_DONE, memory_order_release);
    atomic_store(&s->busy_since, 0);
    kind = EV_DONE;
  }
  push_event(pp, (struct pevent){
                     .kind = kind, .entry = d->entry, .ticket = d->ticket});
}

/* Run one chunk of a map; record its outcome in the job. */
static void run_chunk(struct pjob *job, struct shared_slot *s, uint64_t c)
{
  uint64_t first = c * job->chunk;
  uint64_t end =
      first + job->chunk < job->count ? first + job->chunk : job->count;
  unsigned char *base = (unsigned char *)job;
  struct pchunk *pc = &job->chunks[c];
  pc->fail_index = UINT64_MAX;
  atomic_store(&s->chunk_done, 0);
  atomic_store(&s->chunk, c + 1);
  atomic_store(&s->busy_since, crew__now_ns());
  for (uint64_t i = first; i < end; i++) {
    const void *in = job->in_at ? base + job->in_at + i * job->in_stride : NULL;
    void *out = job->out_at ? base + job->out_at + i * job->out_stride : NULL;
    int status = job->fn(in, out);
    if (status != 0) {
      pc->failures++;
      if (pc->fail_index == UINT64_MAX) {
        pc->fail_index = i;
        pc->fail_status = status;
      }
    }
    atomic_store_explicit(&s->chunk_done, i - first + 1, memory_order_relaxed);
  }
  pc->ran = end - first;
  atomic_store_explicit(&pc->done, 1, memory_order_release);
  atomic_store(&s->busy_since, 0);
  atomic_store(&s->chunk, 0);
}

static void run_runner(struct crew__procpool *pp, struct shared_slot *s,
                       const struct crew__pdesc *d, uint64_t *tasks)
{
  struct pjob *job = crew__arena_at(pp->arena, d->offset);
  while (!cancelling(pp)) {
    uint64_t c = atomic_fetch_add(&job->next_chunk, 1);
    if (c >= job->nchunks)
      break;
    run_chunk(job, s, c);
    if (pp->max_tasks != 0 && ++*tasks >= pp->max_tasks)
      break; /* recycle: the manager re-queues a runner if chunks remain */
  }
  push_event(pp, (struct pevent){.kind = EV_RUNNER_DONE,
                                 .entry = d->entry,
                                 .ticket = d->ticket});
}

/*
 * A worker process: run init, then pop descriptors into the shared slot and
 * run them until the queue is closed, or until max_tasks_per_worker.
 */
static void worker_main(void *arg, uint32_t slot)
{
  struct crew__procpool *pp = arg;
  char suffix[16];
  snprintf(suffix, sizeof suffix, "-%u", slot);
  crew__thread_set_name(pp->name, suffix);
  struct shared_slot *s = &pp->ctrl->slots[slot];
  s->current.entry = NO_ENTRY;
  atomic_store(&s->busy_since, 0);
  atomic_store(&s->chunk, 0);
  if (pp->init != NULL)
    pp->init(pp->init_arg);

  uint64_t tasks = 0;
  while (crew_queue_pop(pp->tasks, &s->current) == 0) {
    struct crew__pdesc d = s->current;
    if (d.kind == DESC_RUNNER) {
      run_runner(pp, s, &d, &tasks);
    } else {
      run_record(pp, s, &d);
      tasks++;
    }
    s->current.entry = NO_ENTRY; /* after the event: see handle_death */
    fflush(stdout);
    fflush(stderr);
    if (pp->max_tasks != 0 && tasks >= pp->max_tasks)
      break;
  }
  _exit(0);
}

/* In the fork server: pass its news on through the event queue. */
static void server_report(void *arg, int kind, uint32_t slot, pid_t pid,
                          int value)
{
  struct crew__procpool *pp = arg;
  struct pevent ev = {.slot = slot, .entry = NO_ENTRY, .value = value};
  if (kind == CREW__FS_SPAWNED) {
    ev.kind = EV_SPAWNED;
    ev.value = (int32_t)pid;
  } else if (kind == CREW__FS_FAILED) {
    ev.kind = EV_SPAWN_FAILED;
  } else {
    ev.kind = EV_DIED;
    ev.ticket = (uint64_t)pid;
  }
  push_event(pp, ev);
}

/* ======================================================= entries (parent) */

static struct pentry *valid_entry(struct crew__procpool *pp, uint32_t index,
                                  uint64_t ticket)
{
  crew__assert_held(&pp->lock);
  if (index >= pp->nentries)
    return NULL;
  struct pentry *e = &pp->entries[index];
  return e->kind != E_FREE && e->ticket == ticket ? e : NULL;
}

static size_t in_use(const struct crew__procpool *pp)
{
  return pp->nentries - pp->nfree;
}

/* Wait for a free entry until `d`: 0, CREW_ETIMEDOUT or CREW_ECLOSED. */
static int take_entry(struct crew__procpool *pp, crew__deadline d,
                      uint32_t *index)
{
  crew__assert_held(&pp->lock);
  while (pp->nfree == 0 && pp->stop == 0)
    if (crew__cond_wait(&pp->changed, &pp->lock, d) == CREW_ETIMEDOUT &&
        pp->nfree == 0 && pp->stop == 0)
      return CREW_ETIMEDOUT;
  if (pp->stop != 0)
    return CREW_ECLOSED;
  *index = pp->free_entries[--pp->nfree];
  pp->entries[*index].ticket = ++pp->next_ticket;
  return 0;
}

static void free_entry(struct crew__procpool *pp, struct pentry *e)
{
  crew__assert_held(&pp->lock);
  if (e->kind == E_TASK)
    crew__arena_free(pp->arena, e->offset, e->size);
  *e = (struct pentry){.kind = E_FREE, .ticket = e->ticket};
  pp->free_entries[pp->nfree++] = (uint32_t)(e - pp->entries);
  crew__cond_broadcast(&pp->changed);
}

static void push_desc(struct crew__procpool *pp, const struct pentry *e,
                      uint32_t kind, size_t offset)
{
  struct crew__pdesc d = {.entry = (uint32_t)(e - pp->entries),
                          .kind = kind,
                          .ticket = e->ticket,
                          .offset = offset};
  /* Never blocks: the queue holds as many items as there are entries, and
   * it is closed only once no entry is in use. */
  crew_queue_push_timed(pp->tasks, &d, 0);
}

/* ======================================================= settling (parent) */

/* What to do with a task's future once the lock is dropped. */
struct settlement {
  crew_future *future;
  struct pentry *entry; /* to free after */
  enum { S_NONE, S_RAN, S_FAILED, S_CANCELLED } how;
  int status;
  const void *out; /* S_RAN: the output in the arena */
  size_t out_size;
};

/* Resolve the future outside the lock, then free the entry under it. */
static void settle(struct crew__procpool *pp, struct settlement *s)
{
  crew_future *f = s->future;
  if (f != NULL) {
    if (s->how == S_RAN) {
      if (s->out_size > 0)
        memcpy(crew__future_out(f), s->out, s->out_size);
      crew__future_settle(f, true, s->status);
    } else if (s->how == S_FAILED) {
      crew__future_settle(f, false, s->status);
    } else if (s->how == S_CANCELLED) {
      crew__future_settle_cancelled(f);
    }
    crew_future_release(f); /* the entry's reference */
  }
  if (s->entry != NULL) {
    crew__mutex_lock(&pp->lock);
    free_entry(pp, s->entry);
    crew__mutex_unlock(&pp->lock);
  }
}

/* With the lock held: the task of entry e ran and its record says so. */
static struct settlement task_ran(struct crew__procpool *pp, struct pentry *e)
{
  struct precord *rec = record_at(pp, e->offset);
  int status = rec->status;
  pp->completed++;
  if (status != 0)
    pp->failed++;
  if (pp->latency) { /* the worker's times, checked against ours */
    uint64_t start = rec->started_ns, end = rec->finished_ns;
    uint64_t epoch = crew__pool_latency_epoch(pp->pool);
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
static struct settlement task_cancelled(struct crew__procpool *pp,
                                        struct pentry *e)
{
  if (e->user_cancelled) /* counted and resolved by crew_future_cancel */
    return (struct settlement){.entry = e, .future = e->future, .how = S_NONE};
  pp->cancelled++;
  return (struct settlement){.entry = e,
                             .future = e->future,
                             .how = S_CANCELLED,
                             .status = CREW_ECANCELED};
}

/* With the lock held: the job has no runner and nothing left to claim. */
static void map_complete(struct pmap *m)
{
  m->complete = true;
  crew__cond_broadcast(&m->done);
}

/*
 * With the lock held: a runner of entry e stopped (done, recycled, dead or
 * dropped). The last one out re-queues a runner if chunks are left and the
 * pool is not cancelling (reusing its entry), or completes the job.
 */
static void runner_finished(struct crew__procpool *pp, struct pentry *e)
{
  struct pmap *m = e->map;
  m->runners--;
  if (m->runners == 0) {
    uint64_t next = atomic_load(&m->job->next_chunk);
    if (next < m->job->nchunks && pp->stop != CREW_CANCEL + 1) {
      e->ticket = ++pp->next_ticket;
      m->runners++;
      push_desc(pp, e, DESC_RUNNER, m->offset);
      return;
    }
    map_complete(m);
  }
  free_entry(pp, e);
}

/* ======================================================== events (parent) */

static void handle_done(struct crew__procpool *pp, const struct pevent *ev)
{
  crew__mutex_lock(&pp->lock);
  struct pentry *e = valid_entry(pp, ev->entry, ev->ticket);
  struct settlement s = {.how = S_NONE};
  if (e != NULL && e->kind == E_TASK) {
    uint32_t state = atomic_load_explicit(&record_at(pp, e->offset)->state,
                                          memory_order_acquire);
    if (ev->kind == EV_DONE && state == R_DONE)
      s = task_ran(pp, e);
    else if (ev->kind == EV_SKIPPED && state == R_CANCELLED)
      s = task_cancelled(pp, e);
  } else if (e != NULL && e->kind == E_RUNNER && ev->kind == EV_RUNNER_DONE) {
    runner_finished(pp, e);
  }
  crew__mutex_unlock(&pp->lock);
  settle(pp, &s);
}

/*
 * With the lock held: worker slot `slot` died holding descriptor d. Settle
 * what it held: see the head comment.
 */
static struct settlement dead_task(struct crew__procpool *pp, uint32_t slot,
                                   struct crew__pdesc d, int cause)
{
  struct pentry *e = valid_entry(pp, d.entry, d.ticket);
  if (e == NULL)
    return (struct settlement){.how = S_NONE};
  if (e->kind == E_RUNNER) {
    struct shared_slot *s = &pp->ctrl->slots[slot];
    struct pjob *job = e->map->job;
    uint64_t chunk = atomic_load(&s->chunk);
    if (chunk >= 1 && chunk <= job->nchunks &&
        !atomic_load(&job->chunks[chunk - 1].done)) {
      struct pchunk *pc = &job->chunks[chunk - 1];
      uint64_t first = (chunk - 1) * job->chunk;
      uint64_t len =
          job->chunk < job->count - first ? job->chunk : job->count - first;
      uint64_t progress = atomic_load(&s->chunk_done);
      pc->ran = progress < len ? progress : len - 1;
      pc->fail_index = first + pc->ran;
      pc->fail_status = cause;
      pc->lost = 1;
      atomic_store(&pc->done, 1);
      if (cause == CREW_EDEADLINE)
        pp->deadline_killed++;
      else
        pp->crashed++;
    }
    runner_finished(pp, e);
    return (struct settlement){.how = S_NONE};
  }
  struct precord *rec = record_at(pp, e->offset);
  switch (atomic_load_explicit(&rec->state, memory_order_acquire)) {
  case R_DONE: /* it ran; the worker died before saying so */
    return task_ran(pp, e);
  case R_QUEUED: /* popped, never started: back on the queue */
    if (!pp->tasks_closed) {
      push_desc(pp, e, DESC_TASK, e->offset);
      return (struct settlement){.how = S_NONE};
    }
    break;
  case R_CANCELLED:
    return task_cancelled(pp, e);
  default:
    break;
  }
  if (cause == CREW_EDEADLINE)
    pp->deadline_killed++;
  else
    pp->crashed++;
  return (struct settlement){
      .future = e->future, .entry = e, .how = S_FAILED, .status = cause};
}

/* With the lock held: schedule a replacement for slot w, if one is needed. */
static void plan_respawn(struct crew__procpool *pp, struct pworker *w,
                         bool crashed)
{
  bool needed = pp->stop == 0 || (pp->stop == CREW_DRAIN + 1 && in_use(pp) > 0);
  if (!needed)
    return;
  uint64_t now = crew__now_ns();
  /* The first crash is replaced at once; a slot whose workers keep crashing
   * young waits 10 ms, then twice as long each time, up to 1 s. A task that
   * crashes every time cannot turn the pool into a fork storm. */
  uint64_t delay = 0;
  if (crashed && now - w->started_ns < 1000 * MS) {
    delay = w->backoff_ns;
    w->backoff_ns = w->backoff_ns == 0          ? 10 * MS
                    : w->backoff_ns >= 500 * MS ? 1000 * MS
                                                : w->backoff_ns * 2;
  } else {
    w->backoff_ns = 0;
  }
  w->respawn = true;
  w->respawn_at = now + delay;
}

static void handle_death(struct crew__procpool *pp, const struct pevent *ev)
{
  crew__mutex_lock(&pp->lock);
  uint32_t slot = ev->slot;
  struct pworker *w = slot < pp->nworkers ? &pp->workers[slot] : NULL;
  if (w == NULL || w->state != W_ALIVE || (uint64_t)w->pid != ev->ticket) {
    crew__mutex_unlock(&pp->lock);
    return;
  }
  w->state = W_EMPTY;
  pp->alive--;
  int cause = w->deadline_kill ? CREW_EDEADLINE : CREW_ECRASHED;
  w->deadline_kill = false;
  struct shared_slot *ss = &pp->ctrl->slots[slot];
  struct crew__pdesc held = ss->current;
  struct settlement s = dead_task(pp, slot, held, cause);
  /* Clear the slot for its next worker: a stale busy_since would have the
   * replacement killed at once for its predecessor's deadline. */
  ss->current.entry = NO_ENTRY;
  atomic_store(&ss->busy_since, 0);
  atomic_store(&ss->chunk, 0);
  crew__forkserver_reap(&pp->server, slot); /* only now: see forkserver.c */
  w->pid = 0;
  plan_respawn(pp, w, ev->value != 0 || s.how == S_FAILED);
  crew__mutex_unlock(&pp->lock);
  settle(pp, &s);
  crew__queue_forget_waiters(pp->tasks); /* it may have died waiting */
}

static void handle_spawn(struct crew__procpool *pp, const struct pevent *ev)
{
  crew__mutex_lock(&pp->lock);
  struct pworker *w = ev->slot < pp->nworkers ? &pp->workers[ev->slot] : NULL;
  if (w != NULL && w->state == W_STARTING) {
    pp->starting--;
    if (ev->kind == EV_SPAWNED) {
      w->state = W_ALIVE;
      w->pid = ev->value;
      w->started_ns = crew__now_ns();
      pp->alive++;
    } else {
      w->state = W_EMPTY;
      if (pp->starting_up)
        pp->start_error = CREW_ENOMEM;
      else
        plan_respawn(pp, w, true);
    }
    if (pp->starting_up && pp->starting == 0) {
      pp->starting_up = false;
      crew__cond_broadcast(&pp->changed);
    }
  }
  crew__mutex_unlock(&pp->lock);
}

/* ================================================ the manager (parent) */

/* With the lock held: ask for the replacements that are due. */
static void respawn_due(struct crew__procpool *pp, uint64_t now)
{
  for (uint32_t i = 0; i < pp->nworkers; i++) {
    struct pworker *w = &pp->workers[i];
    if (!w->respawn || w->state != W_EMPTY || now < w->respawn_at)
      continue;
    w->respawn = false;
    if (crew__forkserver_spawn(&pp->server, i) == 0) {
      w->state = W_STARTING;
      pp->starting++;
      pp->restarted++;
    }
  }
}

/* With the lock held: kill (the process group of) workers past deadline. */
static void kill_overdue(struct crew__procpool *pp, uint64_t now)
{
  if (pp->timeout_ns == 0)
    return;
  for (uint32_t i = 0; i < pp->nworkers; i++) {
    struct pworker *w = &pp->workers[i];
    uint64_t since = atomic_load(&pp->ctrl->slots[i].busy_since);
    if (w->state != W_ALIVE || w->deadline_kill || since == 0 || since > now ||
        now - since < pp->timeout_ns)
      continue;
    kill(-w->pid, SIGKILL); /* reserved until we ask for the reap */
    w->deadline_kill = true;
  }
}

/* With the lock held: when the manager must look again, or CREW__NEVER. */
static uint64_t next_wake(struct crew__procpool *pp, uint64_t now)
{
  uint64_t at = CREW__NEVER;
  if (pp->timeout_ns != 0 && pp->alive > 0)
    at = now + (pp->timeout_ns < POLL_NS ? pp->timeout_ns : POLL_NS);
  for (uint32_t i = 0; i < pp->nworkers; i++)
    if (pp->workers[i].respawn && pp->workers[i].respawn_at < at)
      at = pp->workers[i].respawn_at;
  return at;
}

/* With the lock held: past shutdown, close the queue once nothing is left;
 * true once every worker is gone. */
static bool finished(struct crew__procpool *pp)
{
  if (pp->stop == 0 || in_use(pp) > 0)
    return false;
  if (!pp->tasks_closed) {
    pp->tasks_closed = true;
    crew_queue_close(pp->tasks);
  }
  return pp->alive == 0 && pp->starting == 0;
}

static void handle_event(struct crew__procpool *pp, const struct pevent *ev)
{
  switch (ev->kind) {
  case EV_DONE:
  case EV_SKIPPED:
  case EV_RUNNER_DONE:
    handle_done(pp, ev);
    break;
  case EV_SPAWNED:
  case EV_SPAWN_FAILED:
    handle_spawn(pp, ev);
    break;
  case EV_DIED:
    handle_death(pp, ev);
    break;
  default: /* EV_NUDGE */
    break;
  }
}

static void *manager_main(void *arg)
{
  struct crew__procpool *pp = arg;
  crew__thread_set_name(pp->name, "-mgr");
  struct crew__forkserver_ops ops = {.worker_main = worker_main,
                                     .report = server_report,
                                     .arg = pp,
                                     .nslots = (uint32_t)pp->nworkers};
  crew__mutex_lock(&pp->lock);
  int rc = crew__forkserver_start(&pp->server, &ops);
  if (rc != 0) {
    pp->start_error = rc;
    pp->starting_up = false;
    crew__cond_broadcast(&pp->changed);
    crew__mutex_unlock(&pp->lock);
    return NULL;
  }
  for (uint32_t i = 0; i < pp->nworkers; i++) {
    if (crew__forkserver_spawn(&pp->server, i) != 0) {
      pp->start_error = CREW_ENOMEM;
      break;
    }
    pp->workers[i].state = W_STARTING;
    pp->starting++;
  }
  if (pp->starting == 0) {
    pp->starting_up = false;
    crew__cond_broadcast(&pp->changed);
  }
  for (;;) {
    uint64_t now = crew__now_ns();
    kill_overdue(pp, now);
    respawn_due(pp, now);
    if (finished(pp))
      break;
    uint64_t at = next_wake(pp, now);
    crew__mutex_unlock(&pp->lock);
    struct pevent ev;
    uint64_t wait = at == CREW__NEVER ? CREW_FOREVER : at > now ? at - now : 0;
    if (crew_queue_pop_timed(pp->events, &ev, wait) == 0)
      handle_event(pp, &ev);
    crew__mutex_lock(&pp->lock);
  }
  crew__mutex_unlock(&pp->lock);
  crew__forkserver_stop(&pp->server);
  return NULL;
}

/* ===================================================== create, destroy */

#ifdef HAVE_DL_ITERATE_PHDR
static int add_code(struct dl_phdr_info *info, size_t size, void *arg)
{
  (void)size;
  struct crew__procpool *pp = arg;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
      continue;
    struct code_range *grown =
        crew__realloc(pp->code, (pp->ncode + 1) * sizeof *grown);
    if (grown == NULL)
      return 1;
    pp->code = grown;
    uintptr_t start = (uintptr_t)info->dlpi_addr + ph->p_vaddr;
    pp->code[pp->ncode++] = (struct code_range){start, start + ph->p_memsz};
  }
  return 0;
}
#endif

/* Whether fn is in code loaded at create (the workers' image has it). */
static bool code_known(const struct crew__procpool *pp, crew_fn fn)
{
  if (pp->ncode == 0) /* no list on this platform: trust the caller */
    return true;
  uintptr_t at = (uintptr_t)fn;
  for (size_t i = 0; i < pp->ncode; i++)
    if (at >= pp->code[i].start && at < pp->code[i].end)
      return true;
  return false;
}

static int alloc_parent_side(struct crew__procpool *pp)
{
  pp->entries = crew__calloc(pp->nentries, sizeof *pp->entries);
  pp->free_entries = crew__calloc(pp->nentries, sizeof *pp->free_entries);
  pp->workers = crew__calloc(pp->nworkers, sizeof *pp->workers);
  if (pp->entries == NULL || pp->free_entries == NULL || pp->workers == NULL)
    return CREW_ENOMEM;
  for (size_t i = 0; i < pp->nentries; i++)
    pp->free_entries[i] = (uint32_t)(pp->nentries - 1 - i);
  pp->nfree = pp->nentries;
#ifdef HAVE_DL_ITERATE_PHDR
  dl_iterate_phdr(add_code, pp);
#endif
  return 0;
}

static int alloc_shared_side(struct crew__procpool *pp)
{
  int rc = crew__arena_create(&pp->arena);
  if (rc == 0)
    rc = crew_queue_create(&pp->tasks, pp->nentries, sizeof(struct crew__pdesc),
                           CREW_SHARED);
  if (rc == 0) /* room for every possible event: pushes never block */
    rc = crew_queue_create(&pp->events, pp->nentries + 4 * pp->nworkers + 16,
                           sizeof(struct pevent), CREW_SHARED);
  if (rc != 0)
    return rc;
  pp->ctrl_size =
      sizeof(struct shared_ctrl) + pp->nworkers * sizeof(struct shared_slot);
  void *p = crew__mmap(NULL, pp->ctrl_size, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return CREW_ENOMEM;
  pp->ctrl = p;
  return 0;
}

void crew__procpool_destroy(struct crew__procpool *pp)
{
  if (pp == NULL)
    return;
  if (pp->ctrl != NULL)
    munmap(pp->ctrl, pp->ctrl_size);
  crew_queue_destroy(pp->events);
  crew_queue_destroy(pp->tasks);
  crew__arena_destroy(pp->arena);
  crew__cond_destroy(&pp->changed);
  crew__mutex_destroy(&pp->lock);
  free(pp->code);
  free(pp->workers);
  free(pp->free_entries);
  free(pp->entries);
  free(pp->name);
  free(pp);
}

static int configure(struct crew__procpool *pp, crew_pool *pool,
                     const crew_config *cfg, size_t nworkers)
{
  pp->pool = pool;
  pp->nworkers = nworkers;
  size_t capacity = cfg->queue_capacity != 0 ? cfg->queue_capacity
                                             : CREW_QUEUE_CAPACITY_DEFAULT;
  if (capacity > UINT32_MAX - 1 - nworkers)
    return CREW_EINVAL;
  pp->nentries = capacity + nworkers;
  pp->max_in =
      cfg->max_in_size != 0 ? cfg->max_in_size : CREW_TASK_BYTES_DEFAULT;
  pp->max_out =
      cfg->max_out_size != 0 ? cfg->max_out_size : CREW_TASK_BYTES_DEFAULT;
  pp->timeout_ns = cfg->task_timeout_ns;
  pp->max_tasks = cfg->max_tasks_per_worker;
  pp->init = cfg->init;
  pp->init_arg = cfg->init_arg;
  pp->latency = cfg->latency_stats;
  pp->on_start = cfg->on_task_start;
  pp->on_finish = cfg->on_task_finish;
  pp->hook_arg = cfg->hook_arg;
  pp->timed = pp->latency || pp->on_start != NULL || pp->on_finish != NULL;
  pp->name = strdup(cfg->name != NULL ? cfg->name : "crew");
  return pp->name == NULL ? CREW_ENOMEM : 0;
}

int crew__procpool_create(struct crew__procpool **out, crew_pool *pool,
                          const crew_config *cfg, size_t nworkers)
{
  struct crew__procpool *pp = crew__calloc(1, sizeof *pp);
  if (pp == NULL)
    return CREW_ENOMEM;
  int rc = crew__mutex_init(&pp->lock);
  if (rc == 0 && (rc = crew__cond_init(&pp->changed)) != 0)
    crew__mutex_destroy(&pp->lock);
  if (rc != 0) {
    free(pp);
    return rc;
  }
  if ((rc = configure(pp, pool, cfg, nworkers)) == 0 &&
      (rc = alloc_parent_side(pp)) == 0)
    rc = alloc_shared_side(pp);
  pp->starting_up = true;
  if (rc == 0)
    rc = crew__thread_start(&pp->manager, manager_main, pp);
  if (rc != 0) {
    crew__procpool_destroy(pp);
    return rc;
  }
  crew__mutex_lock(&pp->lock);
  while (pp->starting_up)
    crew__cond_wait(&pp->changed, &pp->lock, (crew__deadline){CREW__NEVER});
  rc = pp->start_error;
  crew__mutex_unlock(&pp->lock);
  if (rc != 0) { /* undo: the workers that did start leave with the queue */
    atomic_store(&pp->ctrl->pool_state, CREW__POOL_CANCELLING);
    crew__procpool_begin_stop(pp, CREW_CANCEL);
    crew__procpool_join(pp);
    crew__procpool_destroy(pp);
    return rc;
  }
  *out = pp;
  return 0;
}

/* =============================================== submit, map (parent) */

int crew__procpool_check_submit(const struct crew__procpool *pp, crew_fn fn,
                                size_t in_size, size_t out_size)
{
  if (in_size > pp->max_in || out_size > pp->max_out || !code_known(pp, fn))
    return CREW_EINVAL;
  return 0;
}

int crew__procpool_submit(struct crew__procpool *pp, crew_fn fn, const void *in,
                          size_t in_size, size_t out_size,
                          crew_future **futurep, uint64_t timeout_ns)
{
  crew__deadline d = crew__deadline_in(timeout_ns);
  crew_future *f = NULL;
  int rc;
  if (futurep != NULL &&
      (rc = crew__future_create(&f, pp->pool, NULL, NULL, 0, out_size)) != 0)
    return rc;
  size_t out_at = round_up(in_size, alignof(max_align_t));
  size_t size = sizeof(struct precord) + out_at + out_size;
  uint32_t index;
  size_t offset = 0;
  crew__mutex_lock(&pp->lock);
  rc = take_entry(pp, d, &index);
  if (rc == 0 && (rc = crew__arena_alloc(pp->arena, size, &offset)) != 0)
    pp->free_entries[pp->nfree++] = index;
  if (rc != 0) {
    crew__mutex_unlock(&pp->lock);
    if (f != NULL)
      crew__future_discard(f);
    return rc;
  }
  struct pentry *e = &pp->entries[index];
  *e = (struct pentry){.kind = E_TASK,
                       .ticket = e->ticket,
                       .submitted_ns = pp->timed ? crew__now_ns() : 0,
                       .future = f, /* the entry's reference */
                       .offset = offset,
                       .size = size,
                       .out_at = out_at,
                       .out_size = out_size};
  if (f != NULL)
    crew__future_set_remote(f, index, e->ticket);
  pp->submitted++;
  struct precord *rec = record_at(pp, offset);
  atomic_store(&rec->state, R_QUEUED);
  rec->status = 0;
  rec->fn = fn;
  rec->in_size = in_size;
  rec->out_size = out_size;
  rec->out_at = out_at;
  rec->submitted_ns = e->submitted_ns;
  rec->started_ns = rec->finished_ns = 0;
  if (in_size > 0)
    memcpy(rec->data, in, in_size);
  push_desc(pp, e, DESC_TASK, offset);
  crew__mutex_unlock(&pp->lock);
  if (futurep != NULL)
    *futurep = f;
  return 0;
}

bool crew__procpool_cancel(struct crew__procpool *pp, uint32_t index,
                           uint64_t ticket)
{
  crew__mutex_lock(&pp->lock);
  struct pentry *e = valid_entry(pp, index, ticket);
  bool won = false;
  if (e != NULL && e->kind == E_TASK && !e->user_cancelled) {
    uint32_t expected = R_QUEUED;
    won = atomic_compare_exchange_strong(&record_at(pp, e->offset)->state,
                                         &expected, R_CANCELLED);
  }
  if (won) {
    e->user_cancelled = true;
    pp->cancelled++;
  }
  crew__mutex_unlock(&pp->lock);
  return won;
}

/* Lay a map out in one arena block: sizes, or CREW_EINVAL on overflow. */
static int map_layout(size_t count, size_t chunk, bool has_in, size_t in_stride,
                      bool has_out, size_t out_stride, size_t *in_at,
                      size_t *out_at, size_t *size)
{
  size_t nchunks = count / chunk + (count % chunk != 0);
  if (nchunks > (SIZE_MAX / 4) / sizeof(struct pchunk))
    return CREW_EINVAL;
  size_t at = round_up(sizeof(struct pjob) + nchunks * sizeof(struct pchunk),
                       alignof(max_align_t));
  size_t in_bytes = has_in ? count * in_stride : 0;
  size_t out_bytes = has_out ? count * out_stride : 0;
  if (in_bytes > SIZE_MAX / 4 || out_bytes > SIZE_MAX / 4)
    return CREW_EINVAL;
  *in_at = has_in ? at : 0;
  at = round_up(at + in_bytes, alignof(max_align_t));
  *out_at = has_out ? at : 0;
  *size = at + out_bytes;
  return 0;
}

/* With the lock held: add up a complete job's chunks into the counters and
 * find the lowest failure. */
static int map_outcome(struct crew__procpool *pp, struct pjob *job)
{
  uint64_t fail_index = UINT64_MAX;
  int status = 0;
  uint64_t claimed = atomic_load(&job->next_chunk);
  for (uint64_t c = 0; c < job->nchunks; c++) {
    struct pchunk *pc = &job->chunks[c];
    uint64_t first = c * job->chunk;
    uint64_t len =
        job->chunk < job->count - first ? job->chunk : job->count - first;
    uint64_t index = pc->fail_index;
    int st = pc->fail_status;
    if (!atomic_load(&pc->done) && c < claimed) {
      /* claimed by a runner that died before it could say which chunk */
      index = first;
      st = CREW_ECRASHED;
      pp->crashed++;
      pp->cancelled += len - 1;
    } else if (!atomic_load(&pc->done)) { /* never claimed: cancelled */
      index = first;
      st = CREW_ECANCELED;
      pp->cancelled += len;
    } else if (pc->lost) { /* the crashed item was counted at the death */
      pp->completed += pc->ran;
      pp->cancelled += len - pc->ran - 1;
    } else {
      pp->completed += pc->ran;
      pp->failed += pc->failures;
    }
    if (index < fail_index) {
      fail_index = index;
      status = st;
    }
  }
  return status;
}

/* Queue up to `want` runners for m; returns how many went in. */
static size_t queue_runners(struct crew__procpool *pp, struct pmap *m,
                            size_t job_offset, size_t want)
{
  crew__assert_held(&pp->lock);
  size_t queued = 0;
  uint32_t index;
  while (queued < want &&
         take_entry(pp, (crew__deadline){CREW__NEVER}, &index) == 0) {
    struct pentry *e = &pp->entries[index];
    *e = (struct pentry){.kind = E_RUNNER, .ticket = e->ticket, .map = m};
    m->runners++;
    push_desc(pp, e, DESC_RUNNER, job_offset);
    queued++;
  }
  return queued;
}

int crew__procpool_check_map(const struct crew__procpool *pp, crew_fn fn,
                             const void *in, size_t in_stride, const void *out,
                             size_t out_stride)
{
  /* Each item's bytes must lie within its stride: that is what travels. */
  if (!code_known(pp, fn) || (in != NULL && in_stride == 0) ||
      (out != NULL && out_stride == 0))
    return CREW_EINVAL;
  return 0;
}

int crew__procpool_map(struct crew__procpool *pp, crew_fn fn, const void *in,
                       size_t in_stride, void *out, size_t out_stride,
                       size_t count)
{
  size_t pieces = pp->nworkers * 4;
  size_t chunk = count / pieces + (count % pieces != 0);
  size_t in_at, out_at, size, offset;
  int rc = map_layout(count, chunk, in != NULL, in_stride, out != NULL,
                      out_stride, &in_at, &out_at, &size);
  if (rc != 0)
    return rc;
  crew__mutex_lock(&pp->lock);
  rc = pp->stop != 0 ? CREW_ECLOSED
                     : crew__arena_alloc(pp->arena, size, &offset);
  crew__mutex_unlock(&pp->lock);
  if (rc != 0)
    return rc;

  struct pjob *job = crew__arena_at(pp->arena, offset);
  memset(job, 0, in_at != 0 ? in_at : out_at != 0 ? out_at : size);
  *job = (struct pjob){.fn = fn,
                       .count = count,
                       .chunk = chunk,
                       .nchunks = count / chunk + (count % chunk != 0),
                       .in_stride = in_stride,
                       .out_stride = out_stride,
                       .in_at = in_at,
                       .out_at = out_at};
  if (in != NULL)
    memcpy((unsigned char *)job + in_at, in, count * in_stride);
  if (out != NULL) /* bytes the task does not write come back unchanged */
    memcpy((unsigned char *)job + out_at, out, count * out_stride);

  struct pmap m = {.job = job, .offset = offset};
  crew__cond_init(&m.done);
  crew__mutex_lock(&pp->lock);
  size_t want = job->nchunks < pp->nworkers ? job->nchunks : pp->nworkers;
  if (queue_runners(pp, &m, offset, want) == 0) {
    rc = CREW_ECLOSED;
  } else {
    pp->submitted += count;
    while (!m.complete)
      crew__cond_wait(&m.done, &pp->lock, (crew__deadline){CREW__NEVER});
    rc = map_outcome(pp, job);
  }
  crew__mutex_unlock(&pp->lock);
  if (rc != CREW_ECLOSED && out != NULL)
    memcpy(out, (unsigned char *)job + out_at, count * out_stride);
  crew__cond_destroy(&m.done);
  crew__mutex_lock(&pp->lock);
  crew__arena_free(pp->arena, offset, size);
  crew__mutex_unlock(&pp->lock);
  return rc;
}

/* ======================================================= stop, stats */

/* With the lock dropped: settle a descriptor the parent took off the queue
 * after a CREW_CANCEL shutdown began. */
static void cancel_popped(struct crew__procpool *pp,
                          const struct crew__pdesc *d)
{
  crew__mutex_lock(&pp->lock);
  struct pentry *e = valid_entry(pp, d->entry, d->ticket);
  struct settlement s = {.how = S_NONE};
  if (e != NULL && e->kind == E_RUNNER) {
    runner_finished(pp, e);
  } else if (e != NULL && e->kind == E_TASK) {
    uint32_t expected = R_QUEUED;
    atomic_compare_exchange_strong(&record_at(pp, e->offset)->state, &expected,
                                   R_CANCELLED);
    s = task_cancelled(pp, e);
  }
  crew__mutex_unlock(&pp->lock);
  settle(pp, &s);
}

void crew__procpool_begin_stop(struct crew__procpool *pp, int how)
{
  crew__mutex_lock(&pp->lock);
  if (pp->stop != 0) {
    crew__mutex_unlock(&pp->lock);
    return;
  }
  pp->stop = how + 1;
  crew__cond_broadcast(&pp->changed); /* waiting submitters: CREW_ECLOSED */
  crew__mutex_unlock(&pp->lock);
  if (how == CREW_CANCEL) {
    struct crew__pdesc d;
    while (crew_queue_pop_timed(pp->tasks, &d, 0) == 0)
      cancel_popped(pp, &d);
  }
  struct pevent nudge = {.kind = EV_NUDGE};
  crew_queue_push(pp->events, &nudge);
}

void crew__procpool_join(struct crew__procpool *pp)
{
  crew__thread_join(&pp->manager);
}

void crew__procpool_histograms(struct crew__procpool *pp,
                               struct crew__hist *h[2])
{
  h[0] = &pp->hist[0];
  h[1] = &pp->hist[1];
}

void crew__procpool_stats(struct crew__procpool *pp, crew_stats *st)
{
  size_t running = 0;
  for (size_t i = 0; i < pp->nworkers; i++)
    running += atomic_load(&pp->ctrl->slots[i].busy_since) != 0;
  crew__mutex_lock(&pp->lock);
  uint64_t settled =
      pp->completed + pp->cancelled + pp->crashed + pp->deadline_killed;
  uint64_t pending = pp->submitted > settled ? pp->submitted - settled : 0;
  *st = (crew_stats){.submitted = pp->submitted,
                     .completed = pp->completed,
                     .failed = pp->failed,
                     .cancelled = pp->cancelled,
                     .running = running < pending ? running : pending,
                     .queued = pending > running ? pending - running : 0,
                     .workers = pp->alive,
                     .crashed = pp->crashed,
                     .deadline_killed = pp->deadline_killed,
                     .restarted = pp->restarted};
  crew__mutex_unlock(&pp->lock);
}
