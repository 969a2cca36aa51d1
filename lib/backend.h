/*
 * backend.h - the one interface between the pool's front end (pool.c) and
 * where its tasks run: worker threads (threads.c, tmap.c) or worker
 * processes (procs*.c). The front end picks a backend at create, from
 * crew_config.mode, and from then on calls only its ops: it never asks
 * which mode it is in.
 *
 * What the front end owns: argument checks, the configuration (resolved
 * once, below), the fork guard, the pool's state word (OPEN, DRAINING,
 * CANCELLING: the first shutdown decides, by one compare-and-swap), joining
 * once, and the latency resets. What a backend owns: its workers, its
 * queue, its futures and counters.
 */
#ifndef CREW_BACKEND_H
#define CREW_BACKEND_H

#include "histogram.h"
#include "internal.h"
#include "task.h"

/* The pool's state word (pool.c; a backend reads it). */
#define CREW__POOL_OPEN       0
#define CREW__POOL_DRAINING   1
#define CREW__POOL_CANCELLING 2

/* crew_config, resolved once at create: no backend reads crew_config. */
struct crew__cfg {
  size_t workers;         /* resolved: the CPU count for 0 */
  size_t capacity;        /* queue_capacity resolved */
  size_t max_in, max_out; /* resolved: SIZE_MAX means no limit */
  int (*init)(void *arg);
  void *init_arg;
  char *name;               /* a copy */
  uint64_t task_timeout_ns; /* processes */
  uint64_t max_tasks;       /* processes: max_tasks_per_worker */
  uint64_t idle_spin_ns;    /* resolved; 0: none */
  struct crew__hooks hooks; /* the task hooks, timing and latency */
};

/* A submit's arguments, checked by the front end. */
struct crew__call {
  crew_fn fn;
  const void *in;
  size_t in_size, out_size;
  crew_future **future; /* NULL: fire and forget */
  crew__deadline d;     /* how long to wait for room */
};

/* A map's arguments, checked by the front end. */
struct crew__map_args {
  crew_fn fn;
  const void *in;
  size_t in_stride;
  void *out;
  size_t out_stride;
  size_t count; /* > 0 */
};

struct crew__backend; /* each backend's own */

struct crew__backend_ops {
  /*
   * Start the workers and return once every one has run its init: 0,
   * CREW_EINIT or CREW_ENOMEM (nothing is left on failure). cfg and state
   * outlive the backend.
   */
  int (*create)(struct crew__backend **b, const struct crew__cfg *cfg,
                const _Atomic int *state);
  /* Arguments only the backend can judge, before the pool's state is
   * looked at (m NULL: a submit of fn). 0, CREW_EINVAL or why the pool is
   * broken. NULL: nothing to judge. */
  int (*check)(struct crew__backend *b, crew_fn fn,
               const struct crew__map_args *m);
  /* Queue c->fn with a copy of its input; the front end checked the
   * arguments and that the pool is open. As crew_submit_timed(). */
  int (*submit)(struct crew__backend *b, const struct crew__call *c);
  /* As crew_map(), arguments checked, count > 0. */
  int (*map)(struct crew__backend *b, const struct crew__map_args *m);
  /* Every shutdown call, once the state word says how (CREW_DRAIN or
   * CREW_CANCEL): the first closes the queue, and with CREW_CANCEL every
   * call cancels what is queued at once (a CREW_CANCEL after a CREW_DRAIN
   * comes only before a kill). Never blocks on a worker. */
  void (*stop)(struct crew__backend *b, int how);
  /* After stop(CREW_CANCEL): kill every worker that runs a task; its task
   * settles CREW_ECANCELED and nothing is respawned. Never blocks. NULL:
   * the backend's workers cannot be killed (CREW_KILL is refused). */
  void (*kill)(struct crew__backend *b);
  /* As crew_pool_wait_idle(), on a thread that is not one of the
   * backend's: 0 or CREW_ETIMEDOUT. */
  int (*wait_idle)(struct crew__backend *b, crew__deadline d);
  /* Wait until every worker (and thread of the backend) is gone and every
   * future resolved, its callbacks run. Once, after stop. */
  void (*join)(struct crew__backend *b);
  /* Whether the calling thread is one join would wait for. */
  bool (*owns_thread)(const struct crew__backend *b);
  void (*stats)(struct crew__backend *b, crew_stats *st);
  /* Add the histograms' sums for `epoch`: [0] queue wait, [1] run. */
  void (*latency)(struct crew__backend *b, struct crew__hist_sum sums[2],
                  uint64_t epoch);
  /* Free everything; after join (or a failed create: never). */
  void (*destroy)(struct crew__backend *b);
};

extern const struct crew__backend_ops crew__threads_ops;   /* threads.c */
extern const struct crew__backend_ops crew__processes_ops; /* procs.c */

#endif
