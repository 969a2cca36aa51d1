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
 * offsets, sizes; a map's count and chunking; the pool's state word, of
 * which ctrl holds only a copy for the workers, put back at every event)
 * and accepts a shared descriptor or event only if its entry and ticket
 * match a live entry; tickets never repeat, so a stale or torn value names
 * nothing. Every other value it reads there (a record's state, a slot's
 * chunk and progress, a chunk's outcome) is read once and checked against
 * its own geometry before use; one that cannot be true settles the task as
 * crashed. A record's state word names the worker that claimed it, so a
 * dead worker's tasks are found even when its slot was scribbled on
 * (sweep_dead). Workers check themselves too: after the application's code
 * they put back their slot and, if their record's head changed, exit with
 * the task marked RUNNING, so it resolves CREW_ECRASHED. Not defended here:
 * the shared queues' own heads (lock, counters, geometry: queue.c, sync.c).
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
#include "queue.h"

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
/* How often the manager looks whether the fork server still runs. */
#define SERVER_CHECK_NS (100 * MS)

/* ------------------------------------------------------ shared structures */

enum desc_kind { DESC_TASK = 1, DESC_RUNNER = 2 };
/*
 * A record's state word: QUEUED (0) and CANCELLED (3) as is; RUNNING and
 * DONE carry the pid of the worker that claimed the task above the low two
 * bits (Linux pids fit in 22 bits), so that the parent can find what a dead
 * worker held even when its slot no longer says (see sweep_dead()).
 */
enum record_state { R_QUEUED = 0, R_RUNNING = 1, R_DONE = 2, R_CANCELLED = 3 };
#define STATE_OF(word)    ((word)&3u)
#define OWNER_OF(word)    ((pid_t)((word) >> 2))
#define OWNED(state, pid) ((uint32_t)(state) | (uint32_t)(pid) << 2)
enum event_kind {
  EV_DONE = 1,        /* a task ran: its record is DONE */
  EV_SKIPPED = 2,     /* a popped task was cancelled: it did not run */
  EV_RUNNER_DONE = 3, /* a map runner stopped claiming chunks */
  EV_SPAWNED = 4,     /* the fork server started a worker */
  EV_SPAWN_FAILED = 5,
  EV_DIED = 6,  /* a worker ended (not yet reaped) */
  EV_NUDGE = 7, /* look again: shutdown began */
  EV_READY = 8, /* a worker's init returned 0: it takes tasks from now on */
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
  _Atomic int32_t ready_pid; /* the worker's pid once its init returned 0 */
};

struct shared_ctrl {
  _Atomic int pool_state; /* a copy of the pool's state word, for workers */
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
  size_t offset;                  /* the job's arena block */
  uint64_t count, chunk, nchunks; /* the job's geometry, ours to trust */
  size_t runners;                 /* runner entries queued or running */
  bool complete;                  /* no runner left and nothing left to run */
  bool cut;        /* a CREW_CANCEL shutdown took the chunks left ... */
  uint64_t cut_at; /* ... from this one on, and counted them cancelled */
  crew__cond done; /* the mapping thread waits here (pp->lock) */
};

enum worker_state { W_EMPTY, W_STARTING, W_ALIVE };

struct pworker {
  int state;
  pid_t pid;
  bool deadline_kill; /* the manager killed it at a deadline */
  bool ready;         /* its init returned 0 */
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
  uint64_t idle_spin_ns; /* how long an idle worker polls the task queue */
  bool timed, latency;   /* as in pool.c */
  crew_task_hook on_start, on_finish;
  void *hook_arg;
  struct crew__hist hist[2]; /* queue wait, run: written by the manager */
  int (*init)(void *arg);
  void *init_arg;
  char *name;
  struct crew__callbacks *callbacks; /* runs done callbacks: never here */
  struct crew__arena *arena;
  crew_queue *tasks;
  crew_queue *events;
  struct shared_ctrl *ctrl;
  size_t ctrl_size;
  struct code_range *code; /* executable segments loaded at create */
  size_t ncode;
  struct crew__forkserver server;
  crew__thread manager;
  _Atomic int state; /* the pool's state word (see pool.c); ctrl has a copy */

  crew__mutex lock;
  crew__cond changed; /* an entry freed; start-up progressed */
  struct pentry *entries;
  uint32_t *free_entries;
  size_t nfree;
  uint64_t next_ticket;
  struct pworker *workers;
  size_t alive, starting;
  size_t ready;           /* alive workers whose init returned 0 */
  unsigned init_fail_row; /* inits failed since one last succeeded */
  int stop;               /* 0, or CREW_DRAIN + 1, or CREW_CANCEL + 1 */
  bool starting_up, tasks_closed;
  /* 0, or why no task can run again: CREW_ECRASHED (the fork server died,
   * or a shared queue was found corrupt), CREW_EINIT (no worker starts) */
  _Atomic int broken;
  _Atomic bool corrupt; /* a shared queue was found corrupt: break the pool */
  int start_error;
  uint64_t submitted, completed, failed, cancelled, crashed, deadline_killed,
      restarted, init_failed;
};

/* Replacements whose init failed in a row, with no worker alive, that
 * break the pool (see crew/pool.h). */
#define INIT_FAILURES_MAX 5

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
  /* Ours: a worker may scribble on the copy in ctrl, never on this one. */
  return &pp->state;
}

/* Give the workers the pool's state (again, if one scribbled on it). */
static void publish_state(struct crew__procpool *pp)
{
  int state = atomic_load_explicit(&pp->state, memory_order_acquire);
  if (atomic_load_explicit(&pp->ctrl->pool_state, memory_order_relaxed) !=
      state)
    atomic_store_explicit(&pp->ctrl->pool_state, state, memory_order_release);
}

/* ===================================================== the worker process */

static void push_event(struct crew__procpool *pp, struct pevent ev)
{
  crew_queue_push(pp->events, &ev);
}

/* The exit status of a worker that found crew's shared memory changed under
 * it (see scribbled()). */
#define SCRIBBLED_EXIT 70
/* The exit status of a worker whose init returned nonzero. */
#define INIT_FAILED_EXIT 71
#define ANY_STATE        UINT32_MAX /* before the claim: a cancel may change it */

/* What a worker read of its task's record when it took the task: the task
 * and the hooks may scribble on the record and the slot, the worker's own
 * copies are on its stack. */
struct claim {
  struct crew__pdesc d;
  crew_fn fn;
  uint64_t in_size, out_size, out_at;
};

static struct claim claim_of(const struct crew__pdesc *d,
                             const struct precord *rec)
{
  return (struct claim){.d = *d,
                        .fn = rec->fn,
                        .in_size = rec->in_size,
                        .out_size = rec->out_size,
                        .out_at = rec->out_at};
}

/* Put the slot's descriptor back if someone scribbled on it (the worker
 * itself, through its task or a hook, or another worker): the parent reads
 * it if this worker dies. */
static void repair_slot(struct shared_slot *s, const struct crew__pdesc *d)
{
  struct crew__pdesc now = s->current;
  if (now.entry != d->entry || now.kind != d->kind || now.ticket != d->ticket ||
      now.offset != d->offset)
    s->current = *d;
}

/*
 * Give up a task whose shared memory cannot be trusted: put the slot back,
 * mark the record RUNNING (this worker's; before the claim, only if no
 * cancel won it) and exit, so that the parent resolves the task with
 * CREW_ECRASHED and replaces the worker. `state` is what the record should
 * be in, or ANY_STATE before the claim.
 */
static _Noreturn void give_up(struct shared_slot *s, struct precord *rec,
                              const struct claim *c, uint32_t state)
{
  s->current = c->d;
  if (state != ANY_STATE) { /* claimed: only this worker writes the state */
    atomic_store(&rec->state, OWNED(R_RUNNING, getpid()));
  } else { /* not yet claimed: a cancel may win it first */
    uint32_t expected = R_QUEUED;
    atomic_compare_exchange_strong(&rec->state, &expected,
                                   OWNED(R_RUNNING, getpid()));
  }
  _exit(SCRIBBLED_EXIT);
}

/*
 * The worker's own check, after the application's code (the task, the task
 * hooks, a test hook) ran: the slot is put back if it changed; if the
 * record's head changed, or the record is not in `state` (ANY_STATE: not
 * checked), the worker gives the task up.
 */
static void check_scribbles(struct shared_slot *s, struct precord *rec,
                            const struct claim *c, uint32_t state)
{
  repair_slot(s, &c->d);
  if (rec->fn == c->fn && rec->in_size == c->in_size &&
      rec->out_size == c->out_size && rec->out_at == c->out_at &&
      (state == ANY_STATE || atomic_load(&rec->state) == state))
    return;
  give_up(s, rec, c, state);
}

static void run_record(struct crew__procpool *pp, struct shared_slot *s,
                       const struct claim *c)
{
  const struct crew__pdesc *d = &c->d;
  struct precord *rec = record_at(pp, d->offset);
  uint32_t expected = R_QUEUED;
  uint32_t kind = EV_SKIPPED;
  uint32_t running = OWNED(R_RUNNING, getpid()), done = OWNED(R_DONE, getpid());
  if (cancelling(pp)) {
    atomic_compare_exchange_strong(&rec->state, &expected, R_CANCELLED);
  } else if (atomic_compare_exchange_strong(&rec->state, &expected, running)) {
    uint64_t now = crew__now_ns();
    atomic_store(&s->busy_since, now);
    (void)CREW__HOOK(CREW_TP_PROC_RUN, s);
    check_scribbles(s, rec, c, running);
    void *in = c->in_size > 0 ? rec->data : NULL;
    void *out = c->out_size > 0 ? rec->data + c->out_at : NULL;
    int status;
    if (pp->timed) {
      crew_task_info info = {.fn = c->fn,
                             .worker = (size_t)(s - pp->ctrl->slots),
                             .submitted_ns = rec->submitted_ns,
                             .started_ns = now};
      if (pp->on_start != NULL)
        pp->on_start(&info, pp->hook_arg);
      info.status = c->fn(in, out);
      info.finished_ns = crew__now_ns();
      if (pp->on_finish != NULL)
        pp->on_finish(&info, pp->hook_arg);
      rec->started_ns = info.started_ns;
      rec->finished_ns = info.finished_ns;
      status = info.status;
    } else {
      status = c->fn(in, out);
    }
    check_scribbles(s, rec, c, running);
    rec->status = status;
    atomic_store_explicit(&rec->state, done, memory_order_release);
    atomic_store(&s->busy_since, 0);
    (void)CREW__HOOK(CREW_TP_PROC_RESULT, s);
    check_scribbles(s, rec, c, done);
    kind = EV_DONE;
  }
  push_event(pp, (struct pevent){.kind = kind,
                                 .slot = (uint32_t)(s - pp->ctrl->slots),
                                 .entry = d->entry,
                                 .ticket = d->ticket});
}

/* A runner's own copy of its job's geometry, read once and checked. */
struct jobview {
  crew_fn fn;
  uint64_t count, chunk, nchunks;
  uint64_t in_stride, out_stride, in_at, out_at;
};

/* Whether n items of `stride` bytes from `at` fit in `room` bytes. */
static bool fits(uint64_t at, uint64_t n, uint64_t stride, uint64_t room)
{
  return at <= room && (stride == 0 || n <= (room - at) / stride);
}

/* Read the job's head once into v; false if it cannot be what the parent
 * wrote (room: the arena's bytes from the job on). */
static bool view_job(const struct pjob *job, uint64_t room, struct jobview *v)
{
  *v = (struct jobview){.fn = job->fn,
                        .count = job->count,
                        .chunk = job->chunk,
                        .nchunks = job->nchunks,
                        .in_stride = job->in_stride,
                        .out_stride = job->out_stride,
                        .in_at = job->in_at,
                        .out_at = job->out_at};
  return v->chunk >= 1 &&
         v->nchunks == v->count / v->chunk + (v->count % v->chunk != 0) &&
         fits(sizeof *job, v->nchunks, sizeof(struct pchunk), room) &&
         (v->in_at == 0 || fits(v->in_at, v->count, v->in_stride, room)) &&
         (v->out_at == 0 || fits(v->out_at, v->count, v->out_stride, room));
}

/* Run chunk c of a map; record its outcome in the job. */
static void run_chunk(struct pjob *job, const struct jobview *v,
                      struct shared_slot *s, uint64_t c)
{
  uint64_t first = c * v->chunk;
  uint64_t end = v->chunk < v->count - first ? first + v->chunk : v->count;
  unsigned char *base = (unsigned char *)job;
  struct pchunk *pc = &job->chunks[c];
  pc->fail_index = UINT64_MAX;
  atomic_store(&s->chunk_done, 0);
  atomic_store(&s->chunk, c + 1);
  atomic_store(&s->busy_since, crew__now_ns());
  (void)CREW__HOOK(CREW_TP_PROC_RUN, s);
  for (uint64_t i = first; i < end; i++) {
    const void *in = v->in_at ? base + v->in_at + i * v->in_stride : NULL;
    void *out = v->out_at ? base + v->out_at + i * v->out_stride : NULL;
    int status = v->fn(in, out);
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
  (void)CREW__HOOK(CREW_TP_PROC_RESULT, s);
}

/*
 * A map runner: claim chunks until none is left. A job whose head was
 * scribbled on is not run: the runner claims every chunk left (so that no
 * other runner is sent for them) and stops; the parent counts the chunks
 * that never finished as crashed.
 */
static void run_runner(struct crew__procpool *pp, struct shared_slot *s,
                       const struct crew__pdesc *d, uint64_t *tasks)
{
  struct pjob *job = crew__arena_at(pp->arena, d->offset);
  struct jobview v;
  if (!view_job(job, crew__arena_size(pp->arena) - d->offset, &v))
    atomic_store(&job->next_chunk, UINT64_MAX / 2);
  else
    while (!cancelling(pp)) {
      uint64_t c = atomic_fetch_add(&job->next_chunk, 1);
      if (c >= v.nchunks)
        break;
      run_chunk(job, &v, s, c);
      repair_slot(s, d);
      if (pp->max_tasks != 0 && ++*tasks >= pp->max_tasks)
        break; /* recycle: the manager re-queues a runner if chunks remain */
    }
  push_event(pp, (struct pevent){.kind = EV_RUNNER_DONE,
                                 .slot = (uint32_t)(s - pp->ctrl->slots),
                                 .entry = d->entry,
                                 .ticket = d->ticket});
}

/*
 * A worker process: run init, then pop descriptors into the shared slot and
 * run them until the queue is closed, or until max_tasks_per_worker.
 *
 * Test hooks (--enable-test-hooks): CREW_TP_PROC_CLAIM just after a
 * descriptor was popped into the slot, CREW_TP_PROC_RUN just before the task
 * (or a map chunk) runs, CREW_TP_PROC_RESULT once its result is in the
 * record (DONE) but not yet posted, CREW_TP_PROC_POST once its event is on
 * the event queue, before the slot is cleared. The object of each is the
 * worker's shared slot: 64 bytes beginning with the descriptor it holds
 * ({uint32_t entry, kind; uint64_t ticket, offset}).
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
  if (pp->init != NULL && pp->init(pp->init_arg) != 0)
    _exit(INIT_FAILED_EXIT); /* before ready: the parent counts a failure */
  atomic_store(&s->ready_pid, (int32_t)getpid());
  push_event(pp, (struct pevent){.kind = EV_READY,
                                 .slot = slot,
                                 .entry = NO_ENTRY,
                                 .value = (int32_t)getpid()});

  uint64_t tasks = 0;
  while (crew__queue_pop_spin(pp->tasks, &s->current, CREW_FOREVER,
                              pp->idle_spin_ns) == 0) {
    struct crew__pdesc d = s->current;
    if (d.kind == DESC_RUNNER &&
        d.offset < crew__arena_size(pp->arena) - sizeof(struct pjob)) {
      (void)CREW__HOOK(CREW_TP_PROC_CLAIM, s);
      repair_slot(s, &d);
      run_runner(pp, s, &d, &tasks);
    } else if (d.kind == DESC_TASK && d.offset < crew__arena_size(pp->arena) -
                                                     sizeof(struct precord)) {
      struct claim c = claim_of(&d, record_at(pp, d.offset));
      uint64_t room =
          crew__arena_size(pp->arena) - d.offset - sizeof(struct precord);
      if (!fits(0, 1, c.in_size, room) || !fits(c.out_at, 1, c.out_size, room))
        give_up(s, record_at(pp, d.offset), &c, ANY_STATE);
      (void)CREW__HOOK(CREW_TP_PROC_CLAIM, s);
      check_scribbles(s, record_at(pp, d.offset), &c, ANY_STATE);
      run_record(pp, s, &c);
      tasks++;
    } else {
      _exit(SCRIBBLED_EXIT); /* not one the parent made */
    }
    (void)CREW__HOOK(CREW_TP_PROC_POST, s);
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

/* Wait for a free entry until `d`: 0, CREW_ETIMEDOUT, CREW_ECLOSED or why
 * the pool is broken. */
static int take_entry(struct crew__procpool *pp, crew__deadline d,
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

static void free_entry(struct crew__procpool *pp, struct pentry *e)
{
  crew__assert_held(&pp->lock);
  if (e->kind == E_TASK)
    crew__arena_free(pp->arena, e->offset, e->size);
  *e = (struct pentry){.kind = E_FREE, .ticket = e->ticket};
  pp->free_entries[pp->nfree++] = (uint32_t)(e - pp->entries);
  crew__cond_broadcast(&pp->changed);
}

static bool push_desc(struct crew__procpool *pp, const struct pentry *e,
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

/*
 * Outside the lock: copy the output out of the arena, free the entry (a
 * submitter may be waiting for it), then resolve the future. Its callbacks
 * run on `later` (the callback thread, when the manager settles: they may
 * wait for the manager), or here if `later` is NULL.
 */
static void settle(struct crew__procpool *pp, struct settlement *s,
                   struct crew__callbacks *later)
{
  crew_future *f = s->future;
  if (f != NULL && s->how == S_RAN && s->out_size > 0)
    memcpy(crew__future_out(f), s->out, s->out_size);
  if (s->entry != NULL) {
    crew__mutex_lock(&pp->lock);
    free_entry(pp, s->entry);
    crew__mutex_unlock(&pp->lock);
  }
  if (f == NULL)
    return;
  if (s->how == S_RAN || s->how == S_FAILED)
    crew__future_settle(f, s->how == S_RAN, s->status, later);
  else if (s->how == S_CANCELLED)
    crew__future_settle_cancelled(f, later);
  crew_future_release(f); /* the entry's reference */
}

/* Settle s from the manager thread. */
static void settle_here(struct crew__procpool *pp, struct settlement *s)
{
  settle(pp, s, pp->callbacks);
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
    if (next < m->nchunks && pp->stop != CREW_CANCEL + 1) {
      e->ticket = ++pp->next_ticket;
      m->runners++;
      if (push_desc(pp, e, DESC_RUNNER, m->offset))
        return;
      m->runners--; /* the chunks left count as cancelled */
    }
    map_complete(m);
  }
  free_entry(pp, e);
}

/* ======================================================== events (parent) */

/* Whether a record's state word is one crew writes. */
static bool valid_state(uint32_t word)
{
  if (STATE_OF(word) == R_RUNNING || STATE_OF(word) == R_DONE)
    return OWNER_OF(word) > 0;
  return word == R_QUEUED || word == R_CANCELLED;
}

/* With the lock held: entry e's task is lost (its record says nothing we
 * can believe, or it could not go back on the queue). */
static struct settlement task_lost(struct crew__procpool *pp, struct pentry *e,
                                   int cause)
{
  if (e->user_cancelled) /* resolved already: only the entry is left */
    return task_cancelled(pp, e);
  if (cause == CREW_EDEADLINE)
    pp->deadline_killed++;
  else if (cause == CREW_EINIT) /* it never ran */
    pp->cancelled++;
  else
    pp->crashed++;
  return (struct settlement){
      .future = e->future, .entry = e, .how = S_FAILED, .status = cause};
}

/*
 * With the lock held: task entry e was popped but never started. Put it back
 * on the queue, or cancel it if a CREW_CANCEL shutdown began (*s then says
 * how to settle it); false if neither could be done.
 */
static bool requeue(struct crew__procpool *pp, struct pentry *e,
                    struct settlement *s)
{
  *s = (struct settlement){.how = S_NONE};
  if (pp->stop == CREW_CANCEL + 1) {
    uint32_t expected = R_QUEUED;
    atomic_compare_exchange_strong(&record_at(pp, e->offset)->state, &expected,
                                   R_CANCELLED);
    *s = task_cancelled(pp, e);
    return true;
  }
  return !pp->tasks_closed && push_desc(pp, e, DESC_TASK, e->offset);
}

/*
 * With the lock held: a worker said (EV_DONE, EV_SKIPPED) it is finished
 * with task entry e. The record's state is read once; what it should be is
 * decided by what happened, so a worker that scribbled on it cannot have
 * the task settled twice or never.
 */
static struct settlement task_reported(struct crew__procpool *pp,
                                       struct pentry *e, uint32_t kind)
{
  uint32_t word = atomic_load_explicit(&record_at(pp, e->offset)->state,
                                       memory_order_acquire);
  uint32_t state = valid_state(word) ? STATE_OF(word) : UINT32_MAX;
  if (e->user_cancelled || (kind == EV_SKIPPED && state == R_CANCELLED))
    return task_cancelled(pp, e);
  if (kind == EV_DONE && state == R_DONE)
    return task_ran(pp, e);
  if (kind == EV_SKIPPED && (state == R_RUNNING || state == R_DONE))
    return (struct settlement){.how = S_NONE}; /* a copy: the other reports */
  struct settlement s;
  if (kind == EV_SKIPPED && state == R_QUEUED && requeue(pp, e, &s))
    return s; /* popped, not run: again */
  return task_lost(pp, e, CREW_ECRASHED);
}

static void handle_done(struct crew__procpool *pp, const struct pevent *ev)
{
  crew__mutex_lock(&pp->lock);
  struct pentry *e = valid_entry(pp, ev->entry, ev->ticket);
  struct settlement s = {.how = S_NONE};
  if (e != NULL && e->kind == E_TASK &&
      (ev->kind == EV_DONE || ev->kind == EV_SKIPPED))
    s = task_reported(pp, e, ev->kind);
  else if (e != NULL && e->kind == E_RUNNER && ev->kind == EV_RUNNER_DONE)
    runner_finished(pp, e);
  crew__mutex_unlock(&pp->lock);
  settle_here(pp, &s);
}

/* The items of chunk c of map m (its last chunk may be short). */
static uint64_t chunk_len(const struct pmap *m, uint64_t c)
{
  uint64_t first = c * m->chunk;
  return m->chunk < m->count - first ? m->chunk : m->count - first;
}

/*
 * With the lock held: worker slot `slot` died holding descriptor d. Settle
 * what it held: see the head comment. Every value read from shared memory
 * is read once and checked against what the parent keeps (the entry, the
 * map's geometry).
 */
static struct settlement dead_task(struct crew__procpool *pp, uint32_t slot,
                                   pid_t pid, struct crew__pdesc d, int cause)
{
  struct pentry *e = valid_entry(pp, d.entry, d.ticket);
  if (e == NULL)
    return (struct settlement){.how = S_NONE};
  if (e->kind == E_RUNNER) {
    struct shared_slot *s = &pp->ctrl->slots[slot];
    struct pmap *m = e->map;
    uint64_t chunk = atomic_load(&s->chunk);
    if (chunk >= 1 && chunk <= m->nchunks &&
        !atomic_load(&m->job->chunks[chunk - 1].done)) {
      struct pchunk *pc = &m->job->chunks[chunk - 1];
      uint64_t first = (chunk - 1) * m->chunk, len = chunk_len(m, chunk - 1);
      uint64_t progress = atomic_load(&s->chunk_done);
      uint64_t ran = progress < len ? progress : len - 1;
      /* An item before the crashed one may have failed: it stays the
       * chunk's lowest failure if what the worker wrote is believable. */
      uint64_t failures = pc->failures, index = pc->fail_index;
      int status = pc->fail_status;
      if (failures == 0 || failures > ran || index < first ||
          index >= first + ran || status == 0) {
        failures = 0;
        index = first + ran;
        status = cause;
      }
      pc->ran = ran;
      pc->failures = failures;
      pc->fail_index = index;
      pc->fail_status = status;
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
  if (e->user_cancelled)
    return task_cancelled(pp, e);
  uint32_t word = atomic_load_explicit(&record_at(pp, e->offset)->state,
                                       memory_order_acquire);
  /* Claimed by another worker: the slot lies (a copy of another's); the
   * owner settles it. */
  if (valid_state(word) && STATE_OF(word) != R_QUEUED &&
      STATE_OF(word) != R_CANCELLED && OWNER_OF(word) != pid)
    return (struct settlement){.how = S_NONE};
  switch (valid_state(word) ? STATE_OF(word) : UINT32_MAX) {
  case R_DONE: /* it ran; the worker died before saying so */
    return task_ran(pp, e);
  case R_QUEUED: { /* popped, never started: back on the queue */
    struct settlement s;
    if (requeue(pp, e, &s))
      return s;
    break;
  }
  case R_CANCELLED:
    return task_cancelled(pp, e);
  default: /* RUNNING, or a value no one of crew wrote */
    break;
  }
  return task_lost(pp, e, cause);
}

/* With the lock held: schedule a replacement for slot w, if one is needed. */
static void plan_respawn(struct crew__procpool *pp, struct pworker *w,
                         bool crashed)
{
  bool needed = pp->stop == 0 || (pp->stop == CREW_DRAIN + 1 && in_use(pp) > 0);
  if (!needed || pp->broken != 0)
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

/*
 * After worker `pid` died and what its slot named was settled: settle every
 * other task whose record says that worker claimed it (RUNNING or DONE,
 * owner pid). Its slot may have been scribbled on, so the records are the
 * second witness. Every event the worker pushed came before its death's, so
 * a record it claimed whose entry is still in use was never reported. One
 * settlement at a time, the lock dropped for each.
 */
static void sweep_dead(struct crew__procpool *pp, pid_t pid, int cause)
{
  size_t i = 0;
  for (;;) {
    struct settlement s = {.how = S_NONE};
    crew__mutex_lock(&pp->lock);
    for (; i < pp->nentries && s.entry == NULL; i++) {
      struct pentry *e = &pp->entries[i];
      if (e->kind != E_TASK)
        continue;
      uint32_t word = atomic_load_explicit(&record_at(pp, e->offset)->state,
                                           memory_order_acquire);
      if (!valid_state(word) || OWNER_OF(word) != pid)
        continue;
      if (e->user_cancelled)
        s = task_cancelled(pp, e);
      else if (STATE_OF(word) == R_DONE)
        s = task_ran(pp, e);
      else
        s = task_lost(pp, e, cause);
    }
    crew__mutex_unlock(&pp->lock);
    if (s.entry == NULL)
      return;
    settle_here(pp, &s);
  }
}

/* With the lock held: the pool is starting and stops waiting (ready, or
 * start_error set): crew__procpool_create goes on. */
static void startup_progress(struct crew__procpool *pp)
{
  crew__assert_held(&pp->lock);
  if (pp->starting_up && (pp->start_error != 0 || pp->ready == pp->nworkers)) {
    pp->starting_up = false;
    crew__cond_broadcast(&pp->changed);
  }
}

/* With the lock held: slot i's worker said (or its slot shows) that its
 * init returned 0. Either its READY or its SPAWNED event may come first. */
static void check_ready(struct crew__procpool *pp, uint32_t i)
{
  struct pworker *w = &pp->workers[i];
  if (w->state != W_ALIVE || w->ready ||
      atomic_load(&pp->ctrl->slots[i].ready_pid) != (int32_t)w->pid)
    return;
  w->ready = true;
  pp->ready++;
  pp->init_fail_row = 0;
  startup_progress(pp);
}

/* With the lock held: kill every live worker whose init has not returned
 * (the pool is broken: nothing will be given to it). */
static void kill_unready(struct crew__procpool *pp)
{
  for (uint32_t i = 0; i < pp->nworkers; i++)
    if (pp->workers[i].state == W_ALIVE && !pp->workers[i].ready)
      kill(-pp->workers[i].pid, SIGKILL); /* reserved until the reap */
}

static void break_pool(struct crew__procpool *pp, int cause);

/*
 * With the lock held: worker w (not ready) died in its init, or its init
 * failed. At create that fails the pool; later it is a failed replacement:
 * retried with the back-off, until the pool has no ready worker and
 * INIT_FAILURES_MAX failed in a row. Returns whether the pool broke.
 */
static bool init_failed(struct crew__procpool *pp, struct pworker *w)
{
  pp->init_failed++;
  if (pp->starting_up) {
    pp->start_error = CREW_EINIT;
    kill_unready(pp); /* create fails: nothing is left */
    startup_progress(pp);
    return false;
  }
  if (++pp->init_fail_row >= INIT_FAILURES_MAX && pp->ready == 0)
    return true;
  plan_respawn(pp, w, true);
  return false;
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
  check_ready(pp, slot); /* its READY event may be late */
  bool was_ready = w->ready;
  w->state = W_EMPTY;
  w->ready = false;
  pp->alive--;
  if (was_ready)
    pp->ready--;
  int cause = w->deadline_kill ? CREW_EDEADLINE : CREW_ECRASHED;
  w->deadline_kill = false;
  struct shared_slot *ss = &pp->ctrl->slots[slot];
  struct crew__pdesc held = ss->current;
  struct settlement s = {.how = S_NONE};
  if (was_ready) /* an unready worker took nothing */
    s = dead_task(pp, slot, w->pid, held, cause);
  /* Clear the slot for its next worker: a stale busy_since would have the
   * replacement killed at once for its predecessor's deadline. */
  ss->current.entry = NO_ENTRY;
  atomic_store(&ss->busy_since, 0);
  atomic_store(&ss->chunk, 0);
  atomic_store(&ss->ready_pid, 0);
  crew__forkserver_reap(&pp->server, slot); /* only now: see forkserver.c */
  pid_t pid = w->pid;
  w->pid = 0;
  bool broke = false;
  if (!was_ready && pp->broken == 0)
    broke = init_failed(pp, w);
  else
    plan_respawn(pp, w, ev->value != 0 || s.how == S_FAILED);
  crew__mutex_unlock(&pp->lock);
  settle_here(pp, &s);
  if (was_ready)
    sweep_dead(pp, pid, cause);
  crew__shq_forget_waiters(pp->tasks); /* it may have died waiting */
  if (broke)
    break_pool(pp, CREW_EINIT);
}

static void handle_spawn(struct crew__procpool *pp, const struct pevent *ev)
{
  crew__mutex_lock(&pp->lock);
  struct pworker *w = ev->slot < pp->nworkers ? &pp->workers[ev->slot] : NULL;
  if (w != NULL && w->state == W_STARTING) {
    pp->starting--;
    if (ev->kind == EV_SPAWNED && ev->value > 0) {
      w->state = W_ALIVE;
      w->ready = false;
      w->pid = ev->value;
      w->started_ns = crew__now_ns();
      pp->alive++;
      check_ready(pp, ev->slot); /* its READY event may have come first */
      if (pp->broken != 0 || pp->start_error != 0)
        kill_unready(pp); /* nothing will be given to it */
    } else {
      w->state = W_EMPTY;
      if (pp->starting_up)
        pp->start_error = CREW_ENOMEM;
      else
        plan_respawn(pp, w, true);
    }
    startup_progress(pp);
  }
  crew__mutex_unlock(&pp->lock);
}

static void handle_ready(struct crew__procpool *pp, const struct pevent *ev)
{
  crew__mutex_lock(&pp->lock);
  if (ev->slot < pp->nworkers)
    check_ready(pp, ev->slot);
  crew__mutex_unlock(&pp->lock);
}

/*
 * Settle everything left once the pool is broken and its task queue closed:
 * what is still queued, then whatever is in use that no worker will report
 * (a corrupt queue may have swallowed it). A map's chunks left over end as
 * cancelled (see runner_finished). One settlement at a time, the lock
 * dropped for each.
 */
static void settle_all_lost(struct crew__procpool *pp, int cause)
{
  struct crew__pdesc d;
  while (crew_queue_pop_timed(pp->tasks, &d, 0) == 0) {
    struct settlement st = {.how = S_NONE};
    crew__mutex_lock(&pp->lock);
    struct pentry *e = valid_entry(pp, d.entry, d.ticket);
    if (e != NULL && e->kind == E_RUNNER)
      runner_finished(pp, e);
    else if (e != NULL && e->kind == E_TASK)
      st = task_lost(pp, e, cause);
    crew__mutex_unlock(&pp->lock);
    settle_here(pp, &st);
  }
  for (size_t i = 0;;) {
    struct settlement st = {.how = S_NONE};
    crew__mutex_lock(&pp->lock);
    for (; i < pp->nentries && st.entry == NULL; i++) {
      struct pentry *e = &pp->entries[i];
      if (e->kind == E_RUNNER)
        runner_finished(pp, e);
      else if (e->kind == E_TASK)
        st = task_lost(pp, e, cause);
    }
    crew__mutex_unlock(&pp->lock);
    if (st.entry == NULL)
      break;
    settle_here(pp, &st);
  }
}

/*
 * No task can run again: the fork server died (CREW_ECRASHED: see
 * server_died) or no worker can start (CREW_EINIT: no worker is ready and
 * the last INIT_FAILURES_MAX replacements failed their init). Submits fail
 * with the cause from now on, nothing is respawned, workers still in their
 * init are killed, the task queue is closed and everything queued settles
 * with the cause; shutdown and destroy return as usual.
 */
static void break_pool(struct crew__procpool *pp, int cause)
{
  crew__mutex_lock(&pp->lock);
  if (pp->broken == 0)
    atomic_store(&pp->broken, cause);
  for (uint32_t i = 0; i < pp->nworkers; i++)
    pp->workers[i].respawn = false;
  kill_unready(pp);
  if (!pp->tasks_closed) {
    pp->tasks_closed = true;
    crew_queue_close(pp->tasks);
  }
  crew__cond_broadcast(&pp->changed); /* blocked submitters: the cause */
  crew__mutex_unlock(&pp->lock);
  settle_all_lost(pp, cause);
}

/*
 * The fork server died (killed from outside, or it failed at its start):
 * its workers died with it (PR_SET_PDEATHSIG) and no new one can be
 * started, since forking this process again is what the server exists to
 * avoid. Every worker's death is handled as if the server had reported it,
 * then the pool breaks with CREW_ECRASHED.
 */
static void server_died(struct crew__procpool *pp)
{
  crew__mutex_lock(&pp->lock);
  atomic_store(&pp->broken, CREW_ECRASHED);
  if (pp->starting_up) {
    pp->start_error = CREW_ENOMEM;
    startup_progress(pp);
  }
  for (uint32_t i = 0; i < pp->nworkers; i++) {
    struct pworker *w = &pp->workers[i];
    w->respawn = false;
    if (w->state == W_STARTING) {
      w->state = W_EMPTY;
      pp->starting--;
    }
  }
  crew__mutex_unlock(&pp->lock);
  for (uint32_t i = 0; i < pp->nworkers; i++) {
    crew__mutex_lock(&pp->lock);
    struct pworker *w = &pp->workers[i];
    struct pevent ev = {.kind = EV_DIED, .slot = i, .ticket = (uint64_t)w->pid};
    bool alive = w->state == W_ALIVE;
    crew__mutex_unlock(&pp->lock);
    if (alive)
      handle_death(pp, &ev);
  }
  break_pool(pp, CREW_ECRASHED);
}

/* Whether the task queue's shared counters still agree with this process's:
 * else break the pool. */
static void check_tasks(struct crew__procpool *pp)
{
  if (crew__shq_verify(pp->tasks))
    atomic_store(&pp->corrupt, true);
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
  /* First: a worker may have scribbled on the workers' copy of the state,
   * and what this event settles may let the application submit again. */
  publish_state(pp);
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
  case EV_READY:
    handle_ready(pp, ev);
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
  startup_progress(pp);
  for (;;) {
    uint64_t now = crew__now_ns();
    publish_state(pp);
    kill_overdue(pp, now);
    respawn_due(pp, now);
    if (finished(pp))
      break;
    uint64_t at = next_wake(pp, now);
    crew__mutex_unlock(&pp->lock);
    struct pevent ev;
    uint64_t wait = at > now ? at - now : 0;
    if (wait > SERVER_CHECK_NS)
      wait = SERVER_CHECK_NS;
    if (pp->server.reaped) { /* nothing comes through the queues any more */
      crew__mutex_lock(&pp->lock);
      crew__cond_wait(&pp->changed, &pp->lock, crew__deadline_in(wait));
      continue;
    }
    if (atomic_load(&pp->corrupt) || crew__shq_broken(pp->events))
      if (!pp->server.reaped)
        kill(pp->server.pid, SIGKILL); /* not reaped: still ours */
    if (crew_queue_pop_timed(pp->events, &ev, wait) == 0) {
      handle_event(pp, &ev);
      if (ev.kind == EV_DIED) /* it may have scribbled on the task queue */
        check_tasks(pp);
    } else if (!crew__forkserver_alive(&pp->server)) {
      server_died(pp);
    } else {
      check_tasks(pp); /* quiet: look at the task queue now and then */
    }
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
  /* A partial list would refuse functions of libraries loaded before
   * create, which pool.h promises to accept: fail instead. */
  if (dl_iterate_phdr(add_code, pp) != 0)
    return CREW_ENOMEM;
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
  /* Only this process pushes tasks and pops events: a shared counter of
   * those sides that moves without it is a worker's garbage. */
  crew__shq_own_side(pp->tasks, true);
  crew__shq_own_side(pp->events, false);
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
  crew__callbacks_stop(pp->callbacks);
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
  pp->idle_spin_ns = crew__idle_spin_ns(cfg);
  pp->init = cfg->init;
  pp->init_arg = cfg->init_arg;
  pp->latency = cfg->latency_stats;
  pp->on_start = cfg->on_task_start;
  pp->on_finish = cfg->on_task_finish;
  pp->hook_arg = cfg->hook_arg;
  pp->timed = pp->latency || pp->on_start != NULL || pp->on_finish != NULL;
  pp->name = crew__strdup(cfg->name != NULL ? cfg->name : "crew");
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
    rc = crew__callbacks_start(&pp->callbacks, pp->name);
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
    atomic_store(&pp->state, CREW__POOL_CANCELLING);
    publish_state(pp);
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
  return atomic_load_explicit(&pp->broken, memory_order_acquire);
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
  if (!push_desc(pp, e, DESC_TASK, offset)) { /* a worker broke the queue */
    pp->submitted--;
    e->future = NULL;
    free_entry(pp, e);
    crew__mutex_unlock(&pp->lock);
    if (f != NULL)
      crew__future_discard(f);
    return CREW_ENOMEM;
  }
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

/*
 * With the lock held: add up a complete map's chunks into the counters and
 * find the lowest failure. Each chunk's outcome is read once and checked
 * against the map's geometry (ours, not the job's copy in shared memory): a
 * chunk whose outcome cannot be true counts as crashed at its first item.
 */
static int map_outcome(struct crew__procpool *pp, struct pmap *m)
{
  uint64_t fail_index = UINT64_MAX;
  int status = 0;
  uint64_t claimed = m->cut ? m->cut_at : atomic_load(&m->job->next_chunk);
  for (uint64_t c = 0; c < m->nchunks; c++) {
    struct pchunk *pc = &m->job->chunks[c];
    uint64_t first = c * m->chunk;
    uint64_t len = chunk_len(m, c);
    bool done = atomic_load(&pc->done) != 0;
    bool lost = pc->lost != 0;
    uint64_t ran = pc->ran, failures = pc->failures, index = pc->fail_index;
    int st = pc->fail_status;
    bool failed_ok =
        failures <= ran && index >= first && index < first + ran && st != 0;
    bool sane =
        lost ? ran < len &&
                   (failures == 0 ? index == first + ran && st < 0 : failed_ok)
             : ran == len && (failures == 0 ? index == UINT64_MAX : failed_ok);
    if (done && lost && sane) { /* the crashed item was counted at the death */
      pp->completed += ran;
      pp->failed += failures;
      pp->cancelled += len - ran - 1;
    } else if (done && sane) {
      pp->completed += ran;
      pp->failed += failures;
    } else if (!done && c >= claimed) { /* never claimed: cancelled */
      index = first;
      /* never run: a shutdown cancelled it, or the pool broke */
      st = !m->cut && pp->broken != 0 ? pp->broken : CREW_ECANCELED;
      if (!m->cut) /* else counted when the shutdown cut the map */
        pp->cancelled += len;
    } else {
      /* claimed by a runner that died before it could say which chunk, or
       * an outcome no runner of crew wrote */
      index = first;
      st = CREW_ECRASHED;
      pp->crashed++;
      pp->cancelled += len - 1;
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
    if (!push_desc(pp, e, DESC_RUNNER, job_offset)) {
      free_entry(pp, e);
      break;
    }
    m->runners++;
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
  rc = pp->stop != 0     ? CREW_ECLOSED
       : pp->broken != 0 ? pp->broken
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

  struct pmap m = {.job = job,
                   .offset = offset,
                   .count = count,
                   .chunk = chunk,
                   .nchunks = count / chunk + (count % chunk != 0)};
  crew__cond_init(&m.done);
  crew__mutex_lock(&pp->lock);
  size_t want = m.nchunks < pp->nworkers ? m.nchunks : pp->nworkers;
  if (queue_runners(pp, &m, offset, want) == 0) {
    rc = pp->stop == 0 && pp->broken != 0 ? pp->broken : CREW_ECLOSED;
  } else {
    pp->submitted += count;
    while (!m.complete)
      crew__cond_wait(&m.done, &pp->lock, (crew__deadline){CREW__NEVER});
    rc = map_outcome(pp, &m);
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

/*
 * With the lock held, after a CREW_CANCEL shutdown began: take every chunk
 * of map m that no runner has claimed, so that none will, and count their
 * items cancelled now. The runners still in a chunk finish it; the map
 * returns once they have.
 */
static void cut_map(struct crew__procpool *pp, struct pmap *m)
{
  crew__assert_held(&pp->lock);
  if (m->cut)
    return;
  uint64_t next = atomic_exchange(&m->job->next_chunk, UINT64_MAX / 2);
  m->cut = true;
  m->cut_at = next < m->nchunks ? next : m->nchunks;
  for (uint64_t c = m->cut_at; c < m->nchunks; c++)
    pp->cancelled += chunk_len(m, c);
}

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
  settle(pp, &s, NULL); /* here: the thread that cancels */
}

void crew__procpool_begin_stop(struct crew__procpool *pp, int how)
{
  crew__mutex_lock(&pp->lock);
  bool first = pp->stop == 0;
  if (first) {
    pp->stop = how + 1;
    publish_state(pp);                  /* set by pool.c before it called us */
    crew__cond_broadcast(&pp->changed); /* waiting submitters: CREW_ECLOSED */
  }
  bool cancel = pp->stop == CREW_CANCEL + 1;
  crew__mutex_unlock(&pp->lock);
  if (cancel) { /* every call: a dead worker's task may have come back */
    struct crew__pdesc d;
    while (crew_queue_pop_timed(pp->tasks, &d, 0) == 0)
      cancel_popped(pp, &d);
    crew__mutex_lock(&pp->lock);
    for (size_t i = 0; i < pp->nentries; i++)
      if (pp->entries[i].kind == E_RUNNER)
        cut_map(pp, pp->entries[i].map);
    crew__mutex_unlock(&pp->lock);
  }
  if (first) {
    struct pevent nudge = {.kind = EV_NUDGE};
    crew_queue_push(pp->events, &nudge);
  }
}

void crew__procpool_join(struct crew__procpool *pp)
{
  crew__thread_join(&pp->manager);
  /* Every future is resolved: run the callbacks still due, then stop. */
  crew__callbacks_stop(pp->callbacks);
  pp->callbacks = NULL;
}

bool crew__procpool_owns_thread(const struct crew__procpool *pp)
{
  return crew__callbacks_here(pp->callbacks);
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
  memset(st, 0, sizeof *st); /* padding too: a caller may compare */
  st->submitted = pp->submitted;
  st->completed = pp->completed;
  st->failed = pp->failed;
  st->cancelled = pp->cancelled;
  st->running = running < pending ? running : pending;
  st->queued = pending > running ? pending - running : 0;
  st->workers = pp->alive;
  st->crashed = pp->crashed;
  st->deadline_killed = pp->deadline_killed;
  st->restarted = pp->restarted;
  st->init_failed = pp->init_failed;
  st->broken = pp->broken;
  crew__mutex_unlock(&pp->lock);
}
