/*
 * procs_worker.c - what runs in a process pool's worker processes, and in
 * its fork server's callbacks (they push the server's news as events).
 * Nothing here runs in the application's process.
 *
 * A worker: names itself, runs init (exiting with CREW__INIT_FAILED_EXIT
 * if it fails, before it says it is ready), then pops descriptors straight
 * into its shared slot (so at every instant a task is either in the queue
 * or in a slot) and runs them until the queue is closed, or until
 * max_tasks_per_worker. A task: claim the record (QUEUED -> RUNNING with
 * this pid, a compare-and-swap), run it (task.c's hooks and timing), write
 * status and output, mark it DONE, push an event. After a CREW_CANCEL
 * shutdown began it cancels what it pops instead (QUEUED -> CANCELLED) and
 * reports it skipped. A map runner claims chunks (a fetch-and-add on the
 * job's next_chunk) and runs them, keeping its slot's progress current so
 * that the parent knows how far it got if it dies.
 *
 * Trust: the worker reads what the parent wrote once, into locals, and
 * checks it against the arena's size. The application's code (the task,
 * the hooks) may scribble anywhere: after it the worker puts its slot back
 * and, if its record's head changed, gives the task up (exits with the task
 * marked RUNNING, so that it resolves CREW_ECRASHED).
 *
 * Test hooks (--enable-test-hooks): CREW_TP_PROC_CLAIM just after a
 * descriptor was popped into the slot, CREW_TP_PROC_RUN just before the task
 * (or a map chunk) runs, CREW_TP_PROC_RESULT once its result is in the
 * record (DONE) but not yet posted, CREW_TP_PROC_POST once its event is on
 * the event queue, before the slot is cleared. The object of each is the
 * worker's shared slot: 64 bytes beginning with the descriptor it holds
 * ({uint32_t entry, kind; uint64_t ticket, offset}).
 */
#include "config.h"

#include "procs.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define ANY_STATE UINT32_MAX /* before the claim: a cancel may change it */

static void push_event(struct crew__procs *pp, struct crew__pevent ev)
{
  crew_queue_push(pp->events, &ev);
}

static uint32_t slot_index(const struct crew__procs *pp,
                           const struct crew__pslot *s)
{
  return (uint32_t)(s - pp->ctrl->slots);
}

/* Whether a CREW_CANCEL shutdown began (as the parent published it). */
static bool cancelling(const struct crew__procs *pp)
{
  return atomic_load_explicit(&pp->ctrl->pool_state, memory_order_acquire) ==
         CREW__POOL_CANCELLING;
}

/* What a worker read of its task's record when it took the task: the task
 * and the hooks may scribble on the record and the slot, the worker's own
 * copies are on its stack. */
struct claim {
  struct crew__pdesc d;
  crew_fn fn;
  uint64_t in_size, out_size, out_at;
};

static struct claim claim_of(const struct crew__pdesc *d,
                             const struct crew__precord *rec)
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
static void repair_slot(struct crew__pslot *s, const struct crew__pdesc *d)
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
static _Noreturn void give_up(struct crew__pslot *s, struct crew__precord *rec,
                              const struct claim *c, uint32_t state)
{
  s->current = c->d;
  if (state != ANY_STATE) { /* claimed: only this worker writes the state */
    atomic_store(&rec->state, CREW__OWNED(R_RUNNING, getpid()));
  } else { /* not yet claimed: a cancel may win it first */
    uint32_t expected = R_QUEUED;
    atomic_compare_exchange_strong(&rec->state, &expected,
                                   CREW__OWNED(R_RUNNING, getpid()));
  }
  _exit(CREW__SCRIBBLED_EXIT);
}

/*
 * The worker's own check, after the application's code (the task, the task
 * hooks, a test hook) ran: the slot is put back if it changed; if the
 * record's head changed, or the record is not in `state` (ANY_STATE: not
 * checked), the worker gives the task up.
 */
static void check_scribbles(struct crew__pslot *s, struct crew__precord *rec,
                            const struct claim *c, uint32_t state)
{
  repair_slot(s, &c->d);
  if (rec->fn == c->fn && rec->in_size == c->in_size &&
      rec->out_size == c->out_size && rec->out_at == c->out_at &&
      (state == ANY_STATE || atomic_load(&rec->state) == state))
    return;
  give_up(s, rec, c, state);
}

/* Run a claimed task: hooks and timing as in every worker (task.c). */
static int call_task(struct crew__procs *pp, struct crew__pslot *s,
                     struct crew__precord *rec, const struct claim *c)
{
  void *in = c->in_size > 0 ? rec->data : NULL;
  void *out = c->out_size > 0 ? rec->data + c->out_at : NULL;
  if (!pp->cfg->hooks.timed)
    return c->fn(in, out);
  crew_task_info info = {.fn = c->fn,
                         .worker = slot_index(pp, s),
                         .submitted_ns = rec->submitted_ns};
  crew__task_call(&pp->cfg->hooks, &info, in, out);
  rec->started_ns = info.started_ns; /* the parent checks both */
  rec->finished_ns = info.finished_ns;
  return info.status;
}

/* Claim and run a task (or, after a CREW_CANCEL began, cancel it), then
 * report it. */
static void run_record(struct crew__procs *pp, struct crew__pslot *s,
                       const struct claim *c)
{
  struct crew__precord *rec = crew__record(pp, c->d.offset);
  uint32_t expected = R_QUEUED, kind = CREW__EV_SKIPPED;
  uint32_t running = CREW__OWNED(R_RUNNING, getpid());
  uint32_t done = CREW__OWNED(R_DONE, getpid());
  if (cancelling(pp)) {
    atomic_compare_exchange_strong(&rec->state, &expected, R_CANCELLED);
  } else if (atomic_compare_exchange_strong(&rec->state, &expected, running)) {
    atomic_store(&s->busy_since, crew__now_ns());
    (void)CREW__HOOK(CREW_TP_PROC_RUN, s);
    check_scribbles(s, rec, c, running);
    int status = call_task(pp, s, rec, c);
    check_scribbles(s, rec, c, running);
    rec->status = status;
    atomic_store_explicit(&rec->state, done, memory_order_release);
    atomic_store(&s->busy_since, 0);
    (void)CREW__HOOK(CREW_TP_PROC_RESULT, s);
    check_scribbles(s, rec, c, done);
    kind = CREW__EV_DONE;
  }
  push_event(pp, (struct crew__pevent){.kind = kind,
                                       .slot = slot_index(pp, s),
                                       .entry = c->d.entry,
                                       .ticket = c->d.ticket});
}

/* ------------------------------------------------------------ map runners */

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
static bool view_job(const struct crew__pjob *job, uint64_t room,
                     struct jobview *v)
{
  *v = (struct jobview){.fn = job->fn,
                        .count = job->count,
                        .chunk = job->chunk,
                        .nchunks = job->nchunks,
                        .in_stride = job->in_stride,
                        .out_stride = job->out_stride,
                        .in_at = job->in_at,
                        .out_at = job->out_at};
  return v->chunk >= 1 && v->nchunks == crew__map_nchunks(v->count, v->chunk) &&
         fits(sizeof *job, v->nchunks, sizeof(struct crew__pchunk), room) &&
         (v->in_at == 0 || fits(v->in_at, v->count, v->in_stride, room)) &&
         (v->out_at == 0 || fits(v->out_at, v->count, v->out_stride, room));
}

/* Run chunk c of a map; record its outcome in the job. */
static void run_chunk(struct crew__pjob *job, const struct jobview *v,
                      struct crew__pslot *s, uint64_t c)
{
  uint64_t first = c * v->chunk;
  uint64_t end = v->chunk < v->count - first ? first + v->chunk : v->count;
  unsigned char *base = (unsigned char *)job;
  struct crew__pchunk *pc = &job->chunks[c];
  pc->outcome.fail_index = UINT64_MAX;
  atomic_store(&s->chunk_done, 0);
  atomic_store(&s->chunk, c + 1);
  atomic_store(&s->busy_since, crew__now_ns());
  (void)CREW__HOOK(CREW_TP_PROC_RUN, s);
  crew__map_items(v->fn, v->in_at ? base + v->in_at : NULL, v->in_stride,
                  v->out_at ? base + v->out_at : NULL, v->out_stride, first,
                  end, &pc->outcome, NULL, &s->chunk_done);
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
static void run_runner(struct crew__procs *pp, struct crew__pslot *s,
                       const struct crew__pdesc *d, uint64_t *tasks)
{
  struct crew__pjob *job = crew__arena_at(pp->arena, d->offset);
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
      if (pp->cfg->max_tasks != 0 && ++*tasks >= pp->cfg->max_tasks)
        break; /* recycle: the manager re-queues a runner if chunks remain */
    }
  push_event(pp, (struct crew__pevent){.kind = CREW__EV_RUNNER_DONE,
                                       .slot = slot_index(pp, s),
                                       .entry = d->entry,
                                       .ticket = d->ticket});
}

/* ------------------------------------------------------------- the worker */

/* Run what was popped into slot s: a task (counted in *tasks) or a map
 * runner; a descriptor the parent cannot have made ends the worker. */
static void run_popped(struct crew__procs *pp, struct crew__pslot *s,
                       uint64_t *tasks)
{
  struct crew__pdesc d = s->current;
  uint64_t size = crew__arena_size(pp->arena);
  if (d.kind == CREW__DESC_RUNNER &&
      d.offset < size - sizeof(struct crew__pjob)) {
    (void)CREW__HOOK(CREW_TP_PROC_CLAIM, s);
    repair_slot(s, &d);
    run_runner(pp, s, &d, tasks);
  } else if (d.kind == CREW__DESC_TASK &&
             d.offset < size - sizeof(struct crew__precord)) {
    struct crew__precord *rec = crew__record(pp, d.offset);
    struct claim c = claim_of(&d, rec);
    uint64_t room = size - d.offset - sizeof(struct crew__precord);
    if (!fits(0, 1, c.in_size, room) || !fits(c.out_at, 1, c.out_size, room))
      give_up(s, rec, &c, ANY_STATE);
    (void)CREW__HOOK(CREW_TP_PROC_CLAIM, s);
    check_scribbles(s, rec, &c, ANY_STATE);
    run_record(pp, s, &c);
    ++*tasks;
  } else {
    _exit(CREW__SCRIBBLED_EXIT); /* not one the parent made */
  }
}

static void worker_main(void *arg, uint32_t slot)
{
  struct crew__procs *pp = arg;
  const struct crew__cfg *cfg = pp->cfg;
  struct crew__pslot *s = &pp->ctrl->slots[slot];
  s->current.entry = CREW__NO_ENTRY;
  atomic_store(&s->busy_since, 0);
  atomic_store(&s->chunk, 0);
  if (crew__worker_begin(cfg->name, slot, cfg->init, cfg->init_arg) != 0)
    _exit(CREW__INIT_FAILED_EXIT); /* before ready: a failed init */
  atomic_store(&s->ready_pid, (int32_t)getpid());
  push_event(pp, (struct crew__pevent){.kind = CREW__EV_READY,
                                       .slot = slot,
                                       .entry = CREW__NO_ENTRY,
                                       .value = (int32_t)getpid()});
  uint64_t tasks = 0;
  size_t popped;
  while (pp->tasks->ops->pop(pp->tasks, &s->current, 1, &popped,
                             (crew__deadline){CREW__NEVER},
                             cfg->idle_spin_ns) == 0) {
    run_popped(pp, s, &tasks);
    (void)CREW__HOOK(CREW_TP_PROC_POST, s);
    s->current.entry = CREW__NO_ENTRY; /* after the event: see procs_dead */
    fflush(stdout);
    fflush(stderr);
    if (cfg->max_tasks != 0 && tasks >= cfg->max_tasks)
      break;
  }
  _exit(0);
}

/* In the fork server: pass its news on through the event queue. */
static void server_report(void *arg, int kind, uint32_t slot, pid_t pid,
                          int value)
{
  struct crew__procs *pp = arg;
  struct crew__pevent ev = {
      .slot = slot, .entry = CREW__NO_ENTRY, .value = value};
  if (kind == CREW__FS_SPAWNED) {
    ev.kind = CREW__EV_SPAWNED;
    ev.value = (int32_t)pid;
  } else if (kind == CREW__FS_FAILED) {
    ev.kind = CREW__EV_SPAWN_FAILED;
  } else {
    ev.kind = CREW__EV_DIED;
    ev.ticket = (uint64_t)pid;
  }
  push_event(pp, ev);
}

void crew__procs_server_ops(struct crew__procs *pp,
                            struct crew__forkserver_ops *ops)
{
  *ops = (struct crew__forkserver_ops){.worker_main = worker_main,
                                       .report = server_report,
                                       .arg = pp,
                                       .nslots = (uint32_t)pp->nworkers};
}
