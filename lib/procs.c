/*
 * procs.c - the process backend (CREW_PROCESSES): its ops, called by the
 * pool's front end from the application's threads.
 *
 * Pieces, all made at create, before any worker exists (so that every
 * worker, forked later by the fork server, has them at the same address):
 *  - the arena (arena.c): shared memory holding each task's record (state,
 *    status, fn, input, output) and each map's job (procs_shm.h);
 *  - `tasks`, a CREW_SHARED crew_queue of descriptors: workers pop it;
 *  - `events`, another CREW_SHARED queue, on which workers report finished
 *    tasks and the fork server reports workers started and dead: only the
 *    manager pops it;
 *  - `ctrl`, shared: the pool's state for the workers, and a slot per
 *    worker (the descriptor it holds, since when it is busy, which map
 *    chunk it runs and how far it got);
 *  - the callback thread (future.c), which runs done callbacks;
 *  - the manager thread (procs_manager.c).
 *
 * A task's life: submit takes a free entry (the backpressure: entries are
 * queue_capacity + workers), allocates its record in the arena, copies the
 * input in and pushes the descriptor. A worker runs it (procs_worker.c) and
 * reports; the manager settles it (procs_settle.c): copies the output into
 * the future, resolves it, frees the record and the entry, and hands the
 * future's callbacks to the callback thread.
 *
 * A cancel (crew_future_cancel) wins the record with QUEUED -> CANCELLED
 * under the lock; the worker that later pops it reports it skipped. A
 * CREW_CANCEL shutdown cancels what is queued on the calling thread.
 */
#include "config.h"

#include "procs.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef HAVE_DL_ITERATE_PHDR
#include <link.h>
#endif

static struct crew__procs *pp_of(const struct crew__backend *b)
{
  return (struct crew__procs *)b;
}

static size_t round_up(size_t n, size_t to)
{
  return (n + to - 1) / to * to;
}

/* --------------------------------------------------- the workers' code */

#ifdef HAVE_DL_ITERATE_PHDR
static int add_code(struct dl_phdr_info *info, size_t size, void *arg)
{
  (void)size;
  struct crew__procs *pp = arg;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
      continue;
    struct crew__code_range *grown =
        crew__realloc(pp->code, (pp->ncode + 1) * sizeof *grown);
    if (grown == NULL)
      return 1;
    pp->code = grown;
    uintptr_t start = (uintptr_t)info->dlpi_addr + ph->p_vaddr;
    pp->code[pp->ncode++] =
        (struct crew__code_range){start, start + ph->p_memsz};
  }
  return 0;
}
#endif

/* Whether fn is in code loaded at create (the workers' image has it). */
static bool code_known(const struct crew__procs *pp, crew_fn fn)
{
  if (pp->ncode == 0) /* no list on this platform: trust the caller */
    return true;
  uintptr_t at = (uintptr_t)fn;
  for (size_t i = 0; i < pp->ncode; i++)
    if (at >= pp->code[i].start && at < pp->code[i].end)
      return true;
  return false;
}

static int check(struct crew__backend *b, crew_fn fn,
                 const struct crew__map_args *m)
{
  struct crew__procs *pp = pp_of(b);
  if (!code_known(pp, fn))
    return CREW_EINVAL;
  if (m == NULL) /* a submit: a broken pool takes no task */
    return atomic_load_explicit(&pp->broken, memory_order_acquire);
  /* Each item's bytes must lie within its stride: that is what travels. */
  if ((m->in != NULL && m->in_stride == 0) ||
      (m->out != NULL && m->out_stride == 0))
    return CREW_EINVAL;
  return 0;
}

/* ------------------------------------------------------ create, destroy */

static int alloc_parent_side(struct crew__procs *pp)
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

static int alloc_shared_side(struct crew__procs *pp)
{
  int rc = crew__arena_create(&pp->arena);
  if (rc == 0)
    rc = crew_queue_create(&pp->tasks, pp->nentries, sizeof(struct crew__pdesc),
                           CREW_SHARED);
  if (rc == 0) /* room for every possible event: pushes never block */
    rc = crew_queue_create(&pp->events, pp->nentries + 4 * pp->nworkers + 16,
                           sizeof(struct crew__pevent), CREW_SHARED);
  if (rc != 0)
    return rc;
  /* Only this process pushes tasks and pops events: a shared counter of
   * those sides that moves without it is a worker's garbage. */
  crew__shq_own_side(pp->tasks, true);
  crew__shq_own_side(pp->events, false);
  pp->ctrl_size =
      sizeof(struct crew__pctrl) + pp->nworkers * sizeof(struct crew__pslot);
  void *p = crew__mmap(NULL, pp->ctrl_size, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return CREW_ENOMEM;
  pp->ctrl = p;
  return 0;
}

static void destroy(struct crew__backend *b)
{
  struct crew__procs *pp = pp_of(b);
  crew__callbacks_stop(pp->callbacks, true);
  crew__future_cache_release(pp->futures);
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
  free(pp);
}

static bool owner_take(struct crew__owner *o, crew_future *f);
static void stop(struct crew__backend *b, int how);
static void join(struct crew__backend *b);

/* The callback thread ran every callback due: crew_pool_wait_idle may be
 * waiting for that. */
static void callbacks_drained(void *arg)
{
  struct crew__procs *pp = arg;
  crew__mutex_lock(&pp->lock);
  crew__cond_broadcast(&pp->changed);
  crew__mutex_unlock(&pp->lock);
}

/* Make *pp and everything the workers need; nothing runs yet. */
static int procs_alloc(struct crew__procs **out, const struct crew__cfg *cfg,
                       const _Atomic int *state)
{
  if (cfg->capacity > UINT32_MAX - 1 - cfg->workers)
    return CREW_EINVAL;
  struct crew__procs *pp = crew__calloc(1, sizeof *pp);
  if (pp == NULL)
    return CREW_ENOMEM;
  int rc = crew__mutex_init(&pp->lock);
  if (rc == 0 && (rc = crew__cond_init(&pp->changed)) != 0)
    crew__mutex_destroy(&pp->lock);
  if (rc != 0) {
    free(pp);
    return rc;
  }
  pp->owner = (struct crew__owner){.take = owner_take};
  pp->cfg = cfg;
  pp->state = state;
  pp->nworkers = cfg->workers;
  pp->nentries = cfg->capacity + cfg->workers;
  pp->starting_up = true;
  if ((rc = alloc_parent_side(pp)) != 0 || (rc = alloc_shared_side(pp)) != 0 ||
      (rc = crew__future_cache_create(&pp->futures)) != 0 ||
      (rc = crew__callbacks_start(&pp->callbacks, cfg->name, callbacks_drained,
                                  pp)) != 0) {
    destroy((struct crew__backend *)pp);
    return rc;
  }
  *out = pp;
  return 0;
}

static int create(struct crew__backend **b, const struct crew__cfg *cfg,
                  const _Atomic int *state)
{
  struct crew__procs *pp;
  int rc = procs_alloc(&pp, cfg, state);
  if (rc != 0)
    return rc;
  if ((rc = crew__thread_start(&pp->manager, crew__procs_manager, pp)) != 0) {
    destroy((struct crew__backend *)pp);
    return rc;
  }
  crew__mutex_lock(&pp->lock);
  while (pp->starting_up)
    crew__cond_wait(&pp->changed, &pp->lock, (crew__deadline){CREW__NEVER});
  rc = pp->start_error;
  crew__mutex_unlock(&pp->lock);
  if (rc != 0) { /* undo: the workers that did start leave with the queue */
    stop((struct crew__backend *)pp, CREW_CANCEL);
    join((struct crew__backend *)pp);
    destroy((struct crew__backend *)pp);
    return rc;
  }
  *b = (struct crew__backend *)pp;
  return 0;
}

/* ------------------------------------------------------ submit, cancel */

/* With the lock held: write the task's record (its input included). */
static void fill_record(struct crew__procs *pp, const struct crew__pentry *e,
                        crew_fn fn, const void *in, size_t in_size)
{
  struct crew__precord *rec = crew__record(pp, e->offset);
  atomic_store(&rec->state, R_QUEUED);
  rec->status = 0;
  rec->fn = fn;
  rec->in_size = in_size;
  rec->out_size = e->out_size;
  rec->out_at = e->out_at;
  rec->submitted_ns = e->submitted_ns;
  rec->started_ns = rec->finished_ns = 0;
  if (in_size > 0)
    memcpy(rec->data, in, in_size);
}

/* With the lock held: take an entry and a record for a task; 0 or why
 * not. */
static int take_room(struct crew__procs *pp, crew__deadline d, size_t size,
                     uint32_t *index, size_t *offset)
{
  int rc = crew__procs_take_entry(pp, d, index);
  if (rc == 0 && (rc = crew__arena_alloc(pp->arena, size, offset)) != 0)
    pp->free_entries[pp->nfree++] = *index;
  return rc;
}

static int submit(struct crew__backend *b, const struct crew__call *c)
{
  crew_fn fn = c->fn;
  const void *in = c->in;
  size_t in_size = c->in_size, out_size = c->out_size;
  crew_future **futurep = c->future;
  crew__deadline d = c->d;
  struct crew__procs *pp = pp_of(b);
  crew_future *f = NULL;
  int rc;
  if (futurep != NULL &&
      (rc = crew__future_create(&f, &pp->owner, pp->futures, NULL, NULL, 0,
                                out_size, 0)) != 0)
    return rc;
  size_t out_at = round_up(in_size, alignof(max_align_t));
  size_t size = sizeof(struct crew__precord) + out_at + out_size;
  uint32_t index;
  size_t offset = 0;
  crew__mutex_lock(&pp->lock);
  if ((rc = take_room(pp, d, size, &index, &offset)) == 0) {
    struct crew__pentry *e = &pp->entries[index];
    *e = (struct crew__pentry){.kind = E_TASK,
                               .ticket = e->ticket,
                               .submitted_ns =
                                   pp->cfg->hooks.timed ? crew__now_ns() : 0,
                               .future = f, /* the entry's reference */
                               .offset = offset,
                               .size = size,
                               .out_at = out_at,
                               .out_size = out_size};
    fill_record(pp, e, fn, in, in_size);
    pp->submitted++;
    if (!crew__procs_push(pp, e, CREW__DESC_TASK, offset)) {
      pp->submitted--; /* a worker broke the queue */
      e->future = NULL;
      crew__procs_free_entry(pp, e);
      rc = CREW_ENOMEM;
    }
  }
  crew__mutex_unlock(&pp->lock);
  if (rc != 0 && f != NULL) { /* never queued: both references go */
    crew_future_release(f);
    crew_future_release(f);
  } else if (futurep != NULL) {
    *futurep = f;
  }
  return rc;
}

/*
 * crew_future_cancel (the future's stripe held): win the record where it
 * waits in shared memory, QUEUED -> CANCELLED, and count it. Once won, the
 * task never runs and the manager never claims the future (the entry says
 * user_cancelled), so the future's own QUEUED -> CANCELLING cannot fail.
 */
static bool owner_take(struct crew__owner *o, crew_future *f)
{
  struct crew__procs *pp = (struct crew__procs *)o;
  bool won = false;
  crew__mutex_lock(&pp->lock);
  for (size_t i = 0; i < pp->nentries; i++) { /* rare: a scan will do */
    struct crew__pentry *e = &pp->entries[i];
    if (e->kind != E_TASK || e->future != f || e->user_cancelled)
      continue;
    uint32_t expected = R_QUEUED;
    won = atomic_compare_exchange_strong(&crew__record(pp, e->offset)->state,
                                         &expected, R_CANCELLED);
    if (won) {
      e->user_cancelled = true;
      pp->cancelled++;
    }
    break;
  }
  crew__mutex_unlock(&pp->lock);
  return won;
}

static int map(struct crew__backend *b, const struct crew__map_args *m)
{
  return crew__procs_map(pp_of(b), m);
}

/* -------------------------------------------------------- stop, join */

static void stop(struct crew__backend *b, int how)
{
  struct crew__procs *pp = pp_of(b);
  crew__mutex_lock(&pp->lock);
  bool first = pp->stop == 0;
  if (first || how == CREW_CANCEL) { /* a cancel after a drain: a kill */
    pp->stop = how + 1;
    crew__procs_publish(pp);
    crew__cond_broadcast(&pp->changed); /* waiting submitters: CREW_ECLOSED */
  }
  bool cancel = pp->stop == CREW_CANCEL + 1;
  crew__mutex_unlock(&pp->lock);
  if (cancel) /* every call: a dead worker's task may have come back */
    crew__procs_cancel_queued(pp);
  if (first) {
    struct crew__pevent nudge = {.kind = CREW__EV_NUDGE};
    crew_queue_push(pp->events, &nudge);
  }
}

/* CREW_KILL, after stop(CREW_CANCEL): every live worker's process group
 * goes (an idle worker too: it would only leave). The manager reaps them
 * and, seeing `killing`, settles what they ran as cancelled and starts
 * none again. */
static void kill_workers(struct crew__backend *b)
{
  struct crew__procs *pp = pp_of(b);
  crew__mutex_lock(&pp->lock);
  pp->killing = true;
  for (size_t i = 0; i < pp->nworkers; i++) {
    pp->workers[i].respawn = false;
    if (pp->workers[i].state == W_ALIVE)
      kill(-pp->workers[i].pid, SIGKILL); /* reserved until the reap */
  }
  crew__mutex_unlock(&pp->lock);
}

/* With the lock held: nothing queued or running, no map in flight and no
 * callback due or running. */
static bool idle_now(void *arg)
{
  struct crew__procs *pp = arg;
  return crew__procs_in_use(pp) == 0 && pp->maps == 0 && pp->settling == 0 &&
         crew__callbacks_state(pp->callbacks, CREW__CB_BUSY) == 0;
}

/* Every change that may make the pool idle broadcasts `changed`: an entry
 * freed, a map ended, the callback thread drained. */
static int wait_idle(struct crew__backend *b, crew__deadline d)
{
  struct crew__procs *pp = pp_of(b);
  crew__mutex_lock(&pp->lock);
  int rc = crew__cond_wait_for(&pp->changed, &pp->lock, d, idle_now, pp);
  crew__mutex_unlock(&pp->lock);
  return rc;
}

static void join(struct crew__backend *b)
{
  struct crew__procs *pp = pp_of(b);
  crew__thread_join(&pp->manager);
  /* Every future is resolved: run the callbacks still due, then stop the
   * thread (destroy frees it: owns_thread may still be asked). */
  crew__callbacks_stop(pp->callbacks, false);
}

static bool owns_thread(const struct crew__backend *b)
{
  return crew__callbacks_state(pp_of(b)->callbacks, CREW__CB_HERE) != 0;
}

/* ---------------------------------------------------- stats, latency */

static void stats(struct crew__backend *b, crew_stats *st)
{
  struct crew__procs *pp = pp_of(b);
  size_t running = 0;
  for (size_t i = 0; i < pp->nworkers; i++)
    running += atomic_load(&pp->ctrl->slots[i].busy_since) != 0;
  crew__mutex_lock(&pp->lock);
  uint64_t settled =
      pp->completed + pp->cancelled + pp->crashed + pp->deadline_killed;
  uint64_t pending = pp->submitted > settled ? pp->submitted - settled : 0;
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

static void latency(struct crew__backend *b, struct crew__hist_sum sums[2],
                    uint64_t epoch)
{
  struct crew__procs *pp = pp_of(b);
  crew__hist_add(&sums[0], &pp->hist[0], epoch);
  crew__hist_add(&sums[1], &pp->hist[1], epoch);
}

const struct crew__backend_ops crew__processes_ops = {
    .create = create,
    .check = check,
    .submit = submit,
    .map = map,
    .stop = stop,
    .kill = kill_workers,
    .wait_idle = wait_idle,
    .join = join,
    .owns_thread = owns_thread,
    .stats = stats,
    .latency = latency,
    .destroy = destroy,
};
