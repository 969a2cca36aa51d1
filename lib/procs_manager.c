/*
 * procs_manager.c - the process pool's manager thread (NAME-mgr), in the
 * application's process: it forks the fork server, asks it for workers,
 * reads the event queue (tasks done or skipped, runners done, workers
 * spawned, ready and dead), settles tasks from it (procs_settle.c), kills
 * workers past their deadline, replaces dead ones and breaks the pool when
 * no worker can run again. It never runs application code: done callbacks
 * go to the callback thread.
 *
 * Start: the manager spawns every worker; create waits (`starting_up`)
 * until each is ready (its init returned 0, its pid in its slot's
 * ready_pid and an EV_READY event; either that or EV_SPAWNED may come
 * first) or one failed (`start_error`: CREW_EINIT if a worker died or
 * exited before it was ready, CREW_ENOMEM if one could not be forked).
 *
 * Deaths: the fork server reports a death and leaves the zombie until the
 * manager has settled what the worker held and asks for the reap, so the
 * manager can kill a worker's process group at a deadline without ever
 * hitting a recycled pid. A replacement is due at once, or after a growing
 * delay when the slot's workers keep dying young. A worker that dies before
 * it is ready failed its init: with no worker ready and
 * INIT_FAILURES_MAX failures in a row, the pool breaks (CREW_EINIT).
 *
 * Stop: once a shutdown began and no entry is in use, the manager closes
 * the task queue; the workers leave; once every worker is reaped it stops
 * the fork server and returns.
 */
#include "config.h"

#include "procs.h"

#include <signal.h>

/* Replacements whose init failed in a row, with no worker ready, that
 * break the pool (see crew/pool.h). */
#define INIT_FAILURES_MAX 5

/* ------------------------------------------------------------ starting */

/* With the lock held: the pool is starting and stops waiting (ready, or
 * start_error set): crew_pool_create goes on. */
static void startup_progress(struct crew__procs *pp)
{
  crew__assert_held(&pp->lock);
  if (pp->starting_up && (pp->start_error != 0 || pp->ready == pp->nworkers)) {
    pp->starting_up = false;
    crew__cond_broadcast(&pp->changed);
  }
}

/* With the lock held: slot i's worker said (or its slot shows) that its
 * init returned 0. Either its READY or its SPAWNED event may come first. */
static void check_ready(struct crew__procs *pp, uint32_t i)
{
  struct crew__pworker *w = &pp->workers[i];
  if (w->state != W_ALIVE || w->ready ||
      atomic_load(&pp->ctrl->slots[i].ready_pid) != (int32_t)w->pid)
    return;
  w->ready = true;
  pp->ready++;
  pp->init_fail_row = 0;
  startup_progress(pp);
}

/* With the lock held: kill every live worker whose init has not returned
 * (the pool broke, or create failed: nothing will be given to it). */
static void kill_unready(struct crew__procs *pp)
{
  for (uint32_t i = 0; i < pp->nworkers; i++)
    if (pp->workers[i].state == W_ALIVE && !pp->workers[i].ready)
      kill(-pp->workers[i].pid, SIGKILL); /* reserved until the reap */
}

/* With the lock held: schedule a replacement for slot w, if one is needed. */
static void plan_respawn(struct crew__procs *pp, struct crew__pworker *w,
                         bool crashed)
{
  bool needed = pp->stop == 0 ||
                (pp->stop == CREW_DRAIN + 1 && crew__procs_in_use(pp) > 0);
  if (!needed || pp->broken != 0)
    return;
  uint64_t now = crew__now_ns();
  /* The first crash is replaced at once; a slot whose workers keep crashing
   * young waits 10 ms, then twice as long each time, up to 1 s. A task that
   * crashes every time cannot turn the pool into a fork storm. */
  uint64_t delay = 0;
  if (crashed && now - w->started_ns < 1000 * CREW__MS) {
    delay = w->backoff_ns;
    w->backoff_ns = w->backoff_ns == 0                ? 10 * CREW__MS
                    : w->backoff_ns >= 500 * CREW__MS ? 1000 * CREW__MS
                                                      : w->backoff_ns * 2;
  } else {
    w->backoff_ns = 0;
  }
  w->respawn = true;
  w->respawn_at = now + delay;
}

/*
 * With the lock held: worker w died in its init, or its init failed. At
 * create that fails the pool; later it is a failed replacement: retried
 * with the back-off, until the pool has no ready worker and
 * INIT_FAILURES_MAX failed in a row. Returns whether the pool must break.
 */
static bool init_failed(struct crew__procs *pp, struct crew__pworker *w)
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

/* ------------------------------------------------------------ breaking */

/*
 * No task can run again: the fork server died (CREW_ECRASHED) or no worker
 * can start (CREW_EINIT). Submits fail with the cause from now on, nothing
 * is respawned, workers still in their init are killed, the task queue is
 * closed and everything queued settles with the cause; shutdown and destroy
 * return as usual.
 */
static void break_pool(struct crew__procs *pp, int cause)
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
  crew__procs_lose_all(pp, cause);
}

/* ------------------------------------------------------------- events */

static void handle_death(struct crew__procs *pp, const struct crew__pevent *ev)
{
  crew__mutex_lock(&pp->lock);
  uint32_t slot = ev->slot;
  struct crew__pworker *w = slot < pp->nworkers ? &pp->workers[slot] : NULL;
  if (w == NULL || w->state != W_ALIVE || (uint64_t)w->pid != ev->ticket) {
    crew__mutex_unlock(&pp->lock);
    return;
  }
  check_ready(pp, slot); /* its READY event may be late */
  bool was_ready = w->ready;
  w->state = W_EMPTY;
  w->ready = false;
  pp->alive--;
  pp->ready -= was_ready;
  int cause = pp->killing        ? CREW_ECANCELED
              : w->deadline_kill ? CREW_EDEADLINE
                                 : CREW_ECRASHED;
  w->deadline_kill = false;
  pid_t pid = w->pid;
  crew__mutex_unlock(&pp->lock);
  bool lost = crew__procs_dead(pp, slot, pid, cause, ev->value);
  crew__mutex_lock(&pp->lock);
  crew__forkserver_ask(&pp->server, CREW__FS_REAP,
                       slot); /* only now: see forkserver.c */
  w->pid = 0;
  bool broke = false;
  if (pp->killing)
    ; /* CREW_KILL: none is replaced */
  else if (!was_ready && pp->broken == 0)
    broke = init_failed(pp, w);
  else
    plan_respawn(pp, w, ev->value != 0 || lost);
  crew__mutex_unlock(&pp->lock);
  crew__shq_forget_waiters(pp->tasks); /* it may have died waiting */
  if (broke)
    break_pool(pp, CREW_EINIT);
}

static void handle_spawn(struct crew__procs *pp, const struct crew__pevent *ev)
{
  crew__mutex_lock(&pp->lock);
  struct crew__pworker *w =
      ev->slot < pp->nworkers ? &pp->workers[ev->slot] : NULL;
  if (w != NULL && w->state == W_STARTING) {
    pp->starting--;
    if (ev->kind == CREW__EV_SPAWNED && ev->value > 0) {
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

static void handle_ready(struct crew__procs *pp, const struct crew__pevent *ev)
{
  crew__mutex_lock(&pp->lock);
  if (ev->slot < pp->nworkers)
    check_ready(pp, ev->slot);
  crew__mutex_unlock(&pp->lock);
}

static void handle_event(struct crew__procs *pp, const struct crew__pevent *ev)
{
  /* First: a worker may have scribbled on the workers' copy of the state. */
  crew__procs_publish(pp);
  switch (ev->kind) {
  case CREW__EV_DONE:
  case CREW__EV_SKIPPED:
  case CREW__EV_RUNNER_DONE:
    crew__procs_reported(pp, ev);
    break;
  case CREW__EV_SPAWNED:
  case CREW__EV_SPAWN_FAILED:
    handle_spawn(pp, ev);
    break;
  case CREW__EV_DIED:
    handle_death(pp, ev);
    break;
  case CREW__EV_READY:
    handle_ready(pp, ev);
    break;
  default: /* CREW__EV_NUDGE */
    break;
  }
}

/*
 * The fork server died (killed from outside, or it failed at its start):
 * its workers died with it (PR_SET_PDEATHSIG) and no new one can be
 * started, since forking this process again is what the server exists to
 * avoid. Every worker's death is handled as if the server had reported it,
 * then the pool breaks with CREW_ECRASHED.
 */
static void server_died(struct crew__procs *pp)
{
  crew__mutex_lock(&pp->lock);
  atomic_store(&pp->broken, CREW_ECRASHED);
  if (pp->starting_up) {
    pp->start_error = CREW_ENOMEM;
    startup_progress(pp);
  }
  for (uint32_t i = 0; i < pp->nworkers; i++) {
    struct crew__pworker *w = &pp->workers[i];
    w->respawn = false;
    if (w->state == W_STARTING) {
      w->state = W_EMPTY;
      pp->starting--;
    }
  }
  crew__mutex_unlock(&pp->lock);
  for (uint32_t i = 0; i < pp->nworkers; i++) {
    crew__mutex_lock(&pp->lock);
    struct crew__pworker *w = &pp->workers[i];
    struct crew__pevent ev = {.kind = CREW__EV_DIED,
                              .slot = i,
                              .ticket = (uint64_t)w->pid,
                              .value = INT32_MIN}; /* no wait code known */
    bool alive = w->state == W_ALIVE;
    crew__mutex_unlock(&pp->lock);
    if (alive)
      handle_death(pp, &ev);
  }
  break_pool(pp, CREW_ECRASHED);
}

/* ------------------------------------------------------------ the loop */

/* With the lock held: ask for the replacements that are due. */
static void respawn_due(struct crew__procs *pp, uint64_t now)
{
  for (uint32_t i = 0; i < pp->nworkers; i++) {
    struct crew__pworker *w = &pp->workers[i];
    if (!w->respawn || w->state != W_EMPTY || now < w->respawn_at)
      continue;
    w->respawn = false;
    if (crew__forkserver_ask(&pp->server, CREW__FS_SPAWN, i) == 0) {
      w->state = W_STARTING;
      pp->starting++;
      pp->restarted++;
    }
  }
}

/* With the lock held: kill (the process group of) workers past deadline. */
static void kill_overdue(struct crew__procs *pp, uint64_t now)
{
  uint64_t timeout = pp->cfg->task_timeout_ns;
  if (timeout == 0)
    return;
  for (uint32_t i = 0; i < pp->nworkers; i++) {
    struct crew__pworker *w = &pp->workers[i];
    uint64_t since = atomic_load(&pp->ctrl->slots[i].busy_since);
    if (w->state != W_ALIVE || w->deadline_kill || since == 0 || since > now ||
        now - since < timeout)
      continue;
    kill(-w->pid, SIGKILL); /* reserved until we ask for the reap */
    w->deadline_kill = true;
  }
}

/* With the lock held: when the manager must look again, at the latest. */
static uint64_t next_wake(struct crew__procs *pp, uint64_t now)
{
  uint64_t at = now + CREW__SERVER_CHECK_NS;
  uint64_t timeout = pp->cfg->task_timeout_ns;
  if (timeout != 0 && pp->alive > 0)
    at = now + (timeout < CREW__POLL_NS ? timeout : CREW__POLL_NS);
  for (uint32_t i = 0; i < pp->nworkers; i++)
    if (pp->workers[i].respawn && pp->workers[i].respawn_at < at)
      at = pp->workers[i].respawn_at;
  return at;
}

/* With the lock held: past shutdown, close the queue once nothing is left;
 * true once every worker is gone. */
static bool finished(struct crew__procs *pp)
{
  if (pp->stop == 0 || crew__procs_in_use(pp) > 0)
    return false;
  if (!pp->tasks_closed) {
    pp->tasks_closed = true;
    crew_queue_close(pp->tasks);
  }
  return pp->alive == 0 && pp->starting == 0;
}

/* Start the fork server and ask for every worker; false if it failed. */
static bool start(struct crew__procs *pp)
{
  struct crew__forkserver_ops ops;
  crew__procs_server_ops(pp, &ops);
  crew__mutex_lock(&pp->lock);
  int rc = crew__forkserver_start(&pp->server, &ops);
  if (rc != 0) {
    pp->start_error = rc;
    startup_progress(pp);
    crew__mutex_unlock(&pp->lock);
    return false;
  }
  for (uint32_t i = 0; i < pp->nworkers && pp->start_error == 0; i++) {
    if (crew__forkserver_ask(&pp->server, CREW__FS_SPAWN, i) != 0) {
      pp->start_error = CREW_ENOMEM;
      break;
    }
    pp->workers[i].state = W_STARTING;
    pp->starting++;
  }
  startup_progress(pp);
  crew__mutex_unlock(&pp->lock);
  return true;
}

/* Wait until `wait` ns pass or an event comes, and handle it. */
static void wait_for_news(struct crew__procs *pp, uint64_t wait)
{
  struct crew__pevent ev;
  if (pp->server.reaped) { /* nothing comes through the queues any more */
    crew__mutex_lock(&pp->lock);
    crew__cond_wait(&pp->changed, &pp->lock, crew__deadline_in(wait));
    crew__mutex_unlock(&pp->lock);
    return;
  }
  if ((atomic_load(&pp->corrupt) || crew__shq_broken(pp->events)) &&
      !pp->server.reaped)
    kill(pp->server.pid, SIGKILL); /* not reaped: still ours */
  if (crew_queue_pop_timed(pp->events, &ev, wait) == 0) {
    handle_event(pp, &ev);
    if (ev.kind == CREW__EV_DIED && crew__shq_verify(pp->tasks))
      atomic_store(&pp->corrupt, true); /* it may have scribbled on it */
  } else if (!crew__forkserver_alive(&pp->server)) {
    server_died(pp);
  } else if (crew__shq_verify(pp->tasks)) { /* quiet: look now and then */
    atomic_store(&pp->corrupt, true);
  }
}

void *crew__procs_manager(void *arg)
{
  struct crew__procs *pp = arg;
  crew__thread_set_name(pp->cfg->name, "-mgr");
  if (!start(pp))
    return NULL;
  crew__mutex_lock(&pp->lock);
  for (;;) {
    uint64_t now = crew__now_ns();
    crew__procs_publish(pp);
    kill_overdue(pp, now);
    respawn_due(pp, now);
    if (finished(pp))
      break;
    uint64_t at = next_wake(pp, now);
    crew__mutex_unlock(&pp->lock);
    wait_for_news(pp, at > now ? at - now : 0);
    crew__mutex_lock(&pp->lock);
  }
  crew__mutex_unlock(&pp->lock);
  crew__forkserver_stop(&pp->server);
  return NULL;
}
