/*
 * procs.h - the process backend's parent side, for its files:
 *   procs.c          the backend's ops: create, submit, cancel, stop, stats
 *   procs_map.c      crew_map on worker processes (the parent's half)
 *   procs_settle.c   entries, and settling tasks from events and deaths
 *   procs_manager.c  the manager thread: events, deaths, deadlines, respawns
 *   procs_worker.c   what runs in a worker process (procs_shm.h only)
 *
 * Locking: `lock` guards everything below it in struct crew__procs.
 * Futures are resolved and callbacks run without it. Lock order: a
 * future's stripe, then `lock`, then a shared queue's lock (pushes made while
 * holding it never block).
 */
#ifndef CREW_PROCS_H
#define CREW_PROCS_H

#include "arena.h"
#include "backend.h"
#include "forkserver.h"
#include "future.h"
#include "procs_shm.h"
#include "queue.h"

enum crew__entry_kind { E_FREE = 0, E_TASK = 1, E_RUNNER = 2 };

struct crew__pmap;

/* The parent's own record of a queued or running task or map runner:
 * what it trusts, whatever the workers write. */
struct crew__pentry {
  int kind; /* enum crew__entry_kind */
  uint64_t ticket;
  bool user_cancelled;   /* crew_future_cancel won the record */
  uint64_t submitted_ns; /* if the pool times tasks */
  crew_future *future;   /* TASK: NULL for fire and forget */
  size_t offset, size;   /* TASK: the record's block */
  size_t out_at, out_size;
  struct crew__pmap *map; /* RUNNER */
};

/* A map in flight, on its caller's stack. */
struct crew__pmap {
  struct crew__pjob *job;
  size_t offset;                  /* the job's arena block */
  uint64_t count, chunk, nchunks; /* the job's geometry, ours to trust */
  size_t runners;                 /* runner entries queued or running */
  bool complete;                  /* no runner left and nothing left to run */
  bool cut;        /* a CREW_CANCEL shutdown took the chunks left ... */
  uint64_t cut_at; /* ... from this one on, and counted them cancelled */
  crew__cond done; /* the mapping thread waits here (lock) */
};

enum crew__worker_state { W_EMPTY, W_STARTING, W_ALIVE };

struct crew__pworker {
  int state; /* enum crew__worker_state */
  pid_t pid;
  bool deadline_kill; /* the manager killed it at a deadline */
  bool ready;         /* its init returned 0 */
  bool respawn;       /* a replacement is due at respawn_at */
  uint64_t started_ns, backoff_ns, respawn_at;
};

struct crew__code_range {
  uintptr_t start, end;
};

struct crew__procs {
  struct crew__owner owner; /* the futures' hook (cancel) */
  const struct crew__cfg *cfg;
  const _Atomic int *state; /* the pool's state word: ctrl has a copy */
  size_t nworkers, nentries;
  struct crew__hist hist[2]; /* queue wait, run: written by the manager */
  struct crew__callbacks *callbacks; /* runs done callbacks: never here */
  struct crew__future_cache *futures;
  struct crew__arena *arena;
  crew_queue *tasks;  /* of struct crew__pdesc: workers pop */
  crew_queue *events; /* of struct crew__pevent: the manager pops */
  struct crew__pctrl *ctrl;
  size_t ctrl_size;
  struct crew__code_range *code; /* executable segments loaded at create */
  size_t ncode;
  struct crew__forkserver server;
  crew__thread manager;

  crew__mutex lock;
  crew__cond changed; /* an entry freed; start-up progressed */
  struct crew__pentry *entries;
  uint32_t *free_entries;
  size_t nfree;
  uint64_t next_ticket;
  struct crew__pworker *workers;
  size_t alive, starting;
  size_t ready;           /* alive workers whose init returned 0 */
  unsigned init_fail_row; /* inits failed since one last succeeded */
  int stop;               /* 0, or CREW_DRAIN + 1, or CREW_CANCEL + 1 */
  bool killing;           /* CREW_KILL: workers die, tasks are cancelled */
  size_t maps;            /* crew_map calls in flight */
  size_t settling;        /* cancelled futures a shutdown resolves now */
  bool starting_up, tasks_closed;
  /* 0, or why no task can run again: CREW_ECRASHED (the fork server died,
   * or a shared queue was found corrupt), CREW_EINIT (no worker starts) */
  _Atomic int broken;
  _Atomic bool corrupt; /* a shared queue was found corrupt: break the pool */
  int start_error;
  uint64_t submitted, completed, failed, cancelled, crashed, deadline_killed,
      restarted, init_failed;
};

/* How often the manager looks at deadlines, at most, and at whether the
 * fork server still runs. */
#define CREW__MS              1000000ull
#define CREW__POLL_NS         (20 * CREW__MS)
#define CREW__SERVER_CHECK_NS (100 * CREW__MS)

static inline struct crew__precord *crew__record(struct crew__procs *pp,
                                                 size_t offset)
{
  return crew__arena_at(pp->arena, offset);
}

/* With the lock held: the entry named (index, ticket), if it is live. */
static inline struct crew__pentry *
crew__procs_entry(struct crew__procs *pp, uint32_t index, uint64_t ticket)
{
  crew__assert_held(&pp->lock);
  if (index >= pp->nentries)
    return NULL;
  struct crew__pentry *e = &pp->entries[index];
  return e->kind != E_FREE && e->ticket == ticket ? e : NULL;
}

static inline size_t crew__procs_in_use(const struct crew__procs *pp)
{
  return pp->nentries - pp->nfree;
}

/* The items of chunk c of map m (its last chunk may be short). */
static inline uint64_t crew__chunk_len(const struct crew__pmap *m, uint64_t c)
{
  uint64_t first = c * m->chunk;
  return m->chunk < m->count - first ? m->chunk : m->count - first;
}

/* Give the workers the pool's state (again, if one scribbled on it). */
static inline void crew__procs_publish(struct crew__procs *pp)
{
  int state = atomic_load_explicit(pp->state, memory_order_acquire);
  if (atomic_load_explicit(&pp->ctrl->pool_state, memory_order_relaxed) !=
      state)
    atomic_store_explicit(&pp->ctrl->pool_state, state, memory_order_release);
}

/* -------------------------------------------------------- procs_settle.c */

/* With the lock held: wait for a free entry until d and give it a new
 * ticket. 0, CREW_ETIMEDOUT, CREW_ECLOSED or why the pool is broken. */
int crew__procs_take_entry(struct crew__procs *pp, crew__deadline d,
                           uint32_t *index);
/* With the lock held: free entry e (and a task's record). */
void crew__procs_free_entry(struct crew__procs *pp, struct crew__pentry *e);
/* With the lock held: queue entry e's descriptor; false if the queue
 * refused it (a worker broke it: the pool will break). Never blocks. */
bool crew__procs_push(struct crew__procs *pp, const struct crew__pentry *e,
                      uint32_t kind, size_t offset);
/* A worker's report (EV_DONE, EV_SKIPPED, EV_RUNNER_DONE): settle it. */
void crew__procs_reported(struct crew__procs *pp,
                          const struct crew__pevent *ev);
/* Worker `pid` of `slot` died (cause: CREW_ECRASHED or CREW_EDEADLINE;
 * code: its wait code, exit status 0..255 or -signal, or INT32_MIN if not
 * known): settle what it held; true if a task it ran was lost (a crash). */
bool crew__procs_dead(struct crew__procs *pp, uint32_t slot, pid_t pid,
                      int cause, int code);
/* The pool broke: settle everything queued or in use with `cause`. */
void crew__procs_lose_all(struct crew__procs *pp, int cause);
/* After a CREW_CANCEL shutdown began: cancel everything queued, here, and
 * cut every map in flight (their unclaimed chunks). */
void crew__procs_cancel_queued(struct crew__procs *pp);

/* --------------------------------------------------------------- others */

/* procs_map.c: the backend's map op. */
int crew__procs_map(struct crew__procs *pp, const struct crew__map_args *m);

/* procs_manager.c: the manager thread's body. */
void *crew__procs_manager(void *arg);

/* procs_worker.c: what the fork server runs in a new worker, and reports
 * through. */
void crew__procs_server_ops(struct crew__procs *pp,
                            struct crew__forkserver_ops *ops);

#endif
