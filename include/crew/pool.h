/*
 * crew/pool.h - a fixed pool of workers fed by a bounded queue, with futures
 * and an ordered map (Python's ThreadPoolExecutor and Pool.map, for C).
 *
 * Thread safety: every function may be called from any thread at once,
 * tasks of the pool included, except crew_pool_destroy(), which must be the
 * pool's last call and must not be made from one of its own tasks. A pool
 * belongs to the process that created it: in a child made by fork(), pool
 * calls return CREW_EINVAL.
 *
 * Tasks: a task is a function and bytes of input copied at submit, so the
 * caller may reuse its buffer at once, and the same function can run in a
 * worker thread or (with process workers) a worker process. To hand a
 * pointer to a task in thread mode, pass the pointer by value:
 * crew_submit(pool, fn, &ptr, sizeof ptr, ...). `in` and `out` point to
 * memory aligned for any type (max_align_t), so a task may read and write
 * them as its own structs (crew_map passes pointers into your arrays). The
 * task writes at most out_size bytes of output to `out` (NULL when out_size
 * is 0) and returns 0 or a positive error code of its own, which its future
 * reports. Negative values are crew's; a task that returns one
 * (CREW_ECANCELED when it gives up on its own, say) has it reported
 * unchanged.
 *
 * Worker threads block every signal but those of their own faults
 * (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT), so signals go
 * to the application's own threads and a crashing task still crashes; they
 * are named "NAME-INDEX" (see crew_config.name). crew sets that mask when a
 * worker starts and does not reset it between tasks (a system call per
 * task): a task that unblocks a signal must block it again before it
 * returns, or later tasks on that worker run with it unblocked.
 *
 * Nested work: a task may submit to its own pool, wait on its futures and
 * map on it without deadlock, even with one worker. A worker that waits on a
 * future whose task is still queued runs that task itself; a worker whose
 * submit finds its own pool's queue full runs the new task itself at once
 * instead of waiting for room.
 *
 * Process mode (cfg.mode = CREW_PROCESSES): the same calls, run on worker
 * processes. At create, crew forks a small fork server (once), which forks
 * every worker, replacements included: workers start from the image of this
 * process at pool creation, whatever its other threads hold later. Create
 * the pool before starting threads that hold locks your tasks need.
 *  - Input and output bytes travel through shared memory, at most
 *    cfg.max_in_size / max_out_size per task (CREW_EINVAL beyond). Pointers
 *    passed as input mean nothing in a worker unless they point into memory
 *    that existed at create (the worker's copy) or is shared.
 *  - The task function must exist in the workers: one from a library loaded
 *    (dlopen) after create is refused with CREW_EINVAL at submit.
 *  - init runs in every worker process, replacements included, never here.
 *    A replacement whose init fails (returns nonzero, dies or exits in it)
 *    is retried with the back-off below; once the pool has no live worker
 *    and 5 replacements in a row failed their init, the pool is broken:
 *    every queued task resolves with CREW_EINIT, later submits and maps
 *    return CREW_EINIT, shutdown and destroy return at once, and
 *    crew_pool_stats() says broken == CREW_EINIT.
 *  - on_done callbacks run here, on the pool's callback thread (NAME-cb),
 *    never on the manager thread (NAME-mgr) that resolves the futures: a
 *    callback may wait on other futures of the pool, submit to it (blocking
 *    while it is full) or shut it down (CREW_EBUSY, as from a task) without
 *    holding up the pool. A future is resolved, and its waiters woken,
 *    before its callbacks run.
 *  - A worker that dies in a task (a crash, abort, exit, an outside
 *    SIGKILL) resolves that task with CREW_ECRASHED and is replaced; every
 *    other task goes on. cfg.task_timeout_ns kills a task's worker and its
 *    process group at the deadline: CREW_EDEADLINE. A dead worker is
 *    replaced at once; a slot whose workers keep dying young backs off
 *    (10 ms, doubling to 1 s). Workers are forked by a fork server
 *    process the pool starts at create; if it dies (killed from outside),
 *    its workers die with it and none can be started again: within about
 *    100 ms every running and queued task resolves with CREW_ECRASHED, and
 *    later submits fail with CREW_ECRASHED (shutdown and destroy work).
 *  - A worker cannot corrupt the parent: whatever it writes into the
 *    memory it shares with the parent is checked before use, and a task
 *    whose worker wrote nonsense about it resolves with CREW_ECRASHED.
 *  - Workers die with this process (even by SIGKILL), lead their own
 *    process groups (a terminal's ^C reaches only the application), start
 *    with default signal handlers, and inherit the descriptors this process
 *    had open at create, as any fork does. crew's own descriptors are
 *    close-on-exec; a pool's socket to its fork server is closed in its
 *    workers, but descriptors of other crew objects open at create
 *    (another process pool's socket, a channel's, a crew_process's pidfd)
 *    are inherited like the application's: crew keeps no process-wide
 *    list of them. A server should create its
 *    process pools before it opens listening sockets: a worker's copy would
 *    keep the port accepting after the server closes its own. crew installs no
 * signal handler in this process and reaps only its own children.
 *  - A crew call on the pool from inside a worker process returns
 *    CREW_EINVAL. Stats add crashed, deadline_killed and restarted.
 */
#ifndef CREW_POOL_H
#define CREW_POOL_H

#include <crew/common.h>
#include <crew/future.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct crew_pool crew_pool;

/* A task: reads its input bytes, writes its output bytes, returns a status. */
typedef int (*crew_fn)(const void *in, void *out);

/* Where the workers run. */
enum crew_mode {
  CREW_THREADS = 0,  /* worker threads in this process (the default) */
  CREW_PROCESSES = 1 /* worker processes forked from this one */
};

/* How crew_pool_shutdown() treats tasks still queued, and running. */
enum crew_shutdown {
  CREW_DRAIN = 0,  /* run every queued task, then stop */
  CREW_CANCEL = 1, /* cancel queued tasks, let running ones finish */
  CREW_KILL = 2    /* cancel queued tasks, kill the workers running tasks
                      (process mode only) */
};

/* Or'ed into crew_pool_shutdown()'s `how`: begin the shutdown and return
 * at once, without waiting for the workers. */
#define CREW_NOWAIT 0x100

/* The most workers a pool may have; more gives CREW_EINVAL. */
#define CREW_WORKERS_MAX 4096

/* The queue capacity a pool gets when crew_config.queue_capacity is 0. */
#define CREW_QUEUE_CAPACITY_DEFAULT 1024

/* In process mode, the input and output bytes one task may carry when
 * crew_config.max_in_size / max_out_size are 0. */
#define CREW_TASK_BYTES_DEFAULT ((size_t)16 << 20)

/*
 * What a task hook is told (see crew_config.on_task_start). Times are
 * CLOCK_MONOTONIC nanoseconds; a time not yet known is 0.
 */
typedef struct crew_task_info {
  crew_fn fn;            /* the task function */
  size_t worker;         /* index of the worker running it */
  uint64_t submitted_ns; /* when crew_submit accepted it */
  uint64_t started_ns;   /* when the worker began it */
  uint64_t finished_ns;  /* when it returned (finish hook only) */
  int status;            /* what it returned (finish hook only) */
} crew_task_info;

/* A task hook: info describes the task, arg is crew_config.hook_arg. */
typedef void (*crew_task_hook)(const crew_task_info *info, void *arg);

/*
 * A pool's configuration. Fill it with crew_config_init(), then change what
 * you need: fields may be added at the end in later versions, and
 * crew_config_init() gives them their defaults.
 */
typedef struct crew_config {
  int mode;                 /* enum crew_mode; default CREW_THREADS */
  size_t workers;           /* 0 (default): one per CPU this process may run on,
                               by its affinity mask; at most CREW_WORKERS_MAX */
  size_t queue_capacity;    /* tasks the queue holds before submit blocks
                               (cancelled ones too, until a worker drops
                               them); 0 (default):
                               CREW_QUEUE_CAPACITY_DEFAULT */
  int (*init)(void *arg);   /* if not NULL, run once in each worker before it
                               takes any task (Python's Pool initializer):
                               return 0 when the worker is ready, anything
                               else when it cannot work (see
                               crew_pool_create and CREW_EINIT) */
  void *init_arg;           /* passed to init */
  const char *name;         /* worker name prefix, copied at create; NULL
                               (default): "crew". Workers are named NAME-INDEX,
                               cut to the 15 characters Linux keeps (the name
                               is shortened, never the index) */
  size_t max_in_size;       /* input bytes one submitted task may carry; a
                               larger one gets CREW_EINVAL. 0 (default): no
                               limit with threads, CREW_TASK_BYTES_DEFAULT
                               with processes */
  size_t max_out_size;      /* the same for output bytes */
  uint64_t task_timeout_ns; /* processes only: a task running longer has its
                               worker (and the worker's process group)
                               killed, within about 50 ms, and its future
                               resolves with CREW_EDEADLINE. 0 (default):
                               none. Nonzero with threads: CREW_EINVAL */
  uint64_t max_tasks_per_worker; /* processes only: a worker exits cleanly
                                    after this many tasks (a map chunk
                                    counts as one) and is replaced. 0
                                    (default): never. Nonzero with threads:
                                    CREW_EINVAL */
  bool latency_stats; /* measure every submitted task's queue wait and run
                         time for crew_pool_latency() (three clock reads a
                         task). false (default): off */
  crew_task_hook on_task_start;  /* if not NULL, called on the worker just
                                    before each task given to crew_submit*
                                    runs (not map items; in process mode:
                                    inside the worker process) */
  crew_task_hook on_task_finish; /* the same, just after it returns */
  void *hook_arg;                /* passed to both hooks */
  /* How long a worker (thread or process) that finds the queue empty
   * keeps looking, without the lock and one worker at a time, before it
   * sleeps, so that a task submitted soon after starts without a wake-up
   * system call. 0 (default): CREW_IDLE_SPIN_DEFAULT_NS;
   * CREW_IDLE_SPIN_OFF: sleep at once. */
  uint64_t idle_spin_ns;
} crew_config;

/* The default of crew_config.idle_spin_ns: 100 microseconds. An idle pool
 * spends at most this much CPU after its last task, then none. */
#define CREW_IDLE_SPIN_DEFAULT_NS 100000u
/* crew_config.idle_spin_ns: never spin. */
#define CREW_IDLE_SPIN_OFF UINT64_MAX

/*
 * A latency distribution, from a fixed-size histogram of log-spaced buckets.
 * Percentile p is the value of nearest rank, the ceil(p/100 * count)-th
 * smallest, reported as the upper bound of its bucket: at most 1/8 above the
 * true value, and never above max. Times in nanoseconds.
 */
typedef struct crew_latency {
  uint64_t count; /* tasks measured */
  uint64_t p50_ns, p90_ns, p99_ns;
  uint64_t max_ns; /* exact */
} crew_latency;

/* Counters of a pool, read by crew_pool_stats(). */
typedef struct crew_stats {
  uint64_t submitted; /* tasks accepted (each item of a map counts as one),
                         counted as the submit call starts to queue them:
                         a submit blocked on a full queue counts */
  uint64_t completed; /* tasks that ran and returned, whatever the status */
  uint64_t failed;    /* completed with a nonzero status */
  uint64_t cancelled; /* tasks resolved without running: cancelled, or
                         failed with CREW_EINIT on a broken pool */
  size_t queued;      /* submitted, not yet started nor cancelled, now
                         (blocked submits included, so it may exceed
                         queue_capacity) */
  size_t running;     /* running now */
  size_t workers;     /* workers alive now */
  uint64_t crashed;   /* processes: tasks whose worker died under them */
  uint64_t deadline_killed; /* processes: tasks killed at task_timeout_ns */
  uint64_t restarted;       /* processes: replacement workers started, for any
                               reason (a crash, a deadline, recycling) */
  uint64_t init_failed;     /* processes: replacement workers whose init
                               failed (returned nonzero, died or exited) */
  int broken; /* 0, or why the pool can run no more tasks (processes):
                 CREW_EINIT (no worker could start) or CREW_ECRASHED (its
                 fork server died); submits then fail with it */
} crew_stats;

/*
 * crew_config_init - fill cfg with the defaults: CREW_THREADS, workers 0,
 * queue_capacity 0, no init, name NULL. NULL is a no-op.
 */
CREW_API void crew_config_init(crew_config *cfg);

/*
 * crew_pool_create - start a pool as cfg says (NULL: the defaults).
 *
 * Every worker is started, and has finished its init (if any), before it
 * returns; it blocks for as long as the slowest init takes. On success *pool
 * owns the pool until crew_pool_destroy(). Returns 0, CREW_EINVAL (pool
 * NULL, an unknown mode, task_timeout_ns or max_tasks_per_worker with
 * threads, workers above CREW_WORKERS_MAX or above what this process may
 * start (RLIMIT_NPROC), a queue capacity whose size overflows size_t),
 * CREW_EINIT (a worker's init returned nonzero, or in process mode the
 * worker died or exited during its init) or CREW_ENOMEM (memory, threads or
 * processes ran out). On failure everything started is undone (no thread,
 * process, descriptor or mapping is left) and *pool is left untouched.
 */
CREW_API int crew_pool_create(crew_pool **pool, const crew_config *cfg);

/*
 * crew_submit - queue fn to run once with a copy of in_size bytes at `in`.
 *
 * in may be NULL only when in_size is 0 (the task then gets NULL). out_size
 * bytes of output are kept for the future (the task gets NULL when out_size
 * is 0). If `future` is not NULL, *future receives a new future holding the
 * caller's reference; if it is NULL the task is fire and forget and its
 * status only shows in the pool's counters.
 *
 * Blocks while the queue is full (backpressure), except in a worker of this
 * pool, which runs the task at once instead. Returns 0, CREW_ECLOSED (the
 * pool is or became shut down while waiting: the task does not exist, no
 * future was made), CREW_EINVAL (pool or fn NULL, in NULL with in_size > 0,
 * in_size or out_size above the pool's limits, in process mode a function
 * the workers lack, a call from a forked child or a worker process),
 * CREW_ENOMEM, or in process mode, once the pool is broken (see
 * crew_stats.broken), CREW_EINIT or CREW_ECRASHED.
 */
CREW_API int crew_submit(crew_pool *pool, crew_fn fn, const void *in,
                         size_t in_size, size_t out_size, crew_future **future);

/*
 * crew_submit_timed - crew_submit() waiting at most timeout_ns for room in
 * the queue; CREW_ETIMEDOUT (no task, no future) if there was none. Timeout 0
 * submits only if there is room now.
 */
CREW_API int crew_submit_timed(crew_pool *pool, crew_fn fn, const void *in,
                               size_t in_size, size_t out_size,
                               crew_future **future, uint64_t timeout_ns);

/*
 * crew_map - compute fn(in + i*in_stride, out + i*out_stride) for every
 * i < count, spread over the workers in chunks, and wait for all of them
 * (Python's Pool.map).
 *
 * Items are read from `in` and written to `out` in place (the arrays must
 * stay valid until it returns). Every item runs even when some fail. in may
 * be NULL with in_stride 0 (fn gets NULL), and out NULL with out_stride 0
 * (fn gets NULL). Several threads may map on one pool at once, tasks of the
 * pool included.
 *
 * In process mode the arrays travel through shared memory: count *
 * in_stride bytes go to the workers and count * out_stride bytes come back
 * (bytes the task does not write come back unchanged), so each item must lie
 * within its stride, and a stride of 0 with a non-NULL array is CREW_EINVAL.
 * A worker that dies in a chunk loses the rest of that chunk: those items do
 * not run, and the map returns CREW_ECRASHED (or CREW_EDEADLINE) unless an
 * item at a lower index failed otherwise.
 *
 * Blocks until every item is done. Returns 0 if every item returned 0, else
 * the status of the lowest-index item that failed (CREW_ECANCELED for items
 * a concurrent CREW_CANCEL shutdown kept from running); 0 for count 0 on an
 * open pool. Arguments are checked first, then the pool: CREW_EINVAL (pool
 * or fn NULL, in or out NULL with a nonzero stride, count * stride
 * overflowing size_t, a call from a forked child), CREW_ECLOSED (the pool is
 * shut down, whatever the count), CREW_ENOMEM, or CREW_EINIT / CREW_ECRASHED
 * as crew_submit() on a broken process pool.
 */
CREW_API int crew_map(crew_pool *pool, crew_fn fn, const void *in,
                      size_t in_stride, void *out, size_t out_stride,
                      size_t count);

/*
 * crew_pool_shutdown - stop accepting tasks, settle the queued ones, and join
 * the workers.
 *
 * how is CREW_DRAIN (run every queued task) or CREW_CANCEL (cancel every
 * queued task at once, in this call, without waiting for any worker: their
 * futures resolve with CREW_ECANCELED, their done callbacks run and their
 * channel completions are delivered, fire-and-forget tasks and the items of
 * a crew_map that no worker has taken yet included, and they count in
 * stats.cancelled; running tasks finish). Once it begins, submits and maps
 * fail with CREW_ECLOSED, blocked submitters included (their tasks never
 * exist), and so do submits from the tasks still running. Blocks until
 * every worker has exited (and, in process mode, the manager and callback
 * threads), then returns 0. A later or concurrent call waits for the first
 * to finish, then returns 0 and changes nothing but this: after a
 * CREW_CANCEL began, every call (crew_pool_destroy() too) cancels what is
 * still queued before it waits.
 *
 * CREW_KILL (process mode only) is CREW_CANCEL, and then every worker
 * running a task is killed with its process group (SIGKILL): those tasks'
 * futures resolve with CREW_ECANCELED and count in stats.cancelled, a
 * crew_map whose items were killed returns nonzero, no replacement worker
 * is started, and the call returns once every worker is reaped. It is the
 * one exception to "the first shutdown decides how": after a CREW_DRAIN or
 * CREW_CANCEL shutdown began (and is perhaps still waiting for a long
 * task, in another thread), a CREW_KILL cancels whatever is still queued
 * and kills what runs, and the waiting call returns too (a server's second
 * SIGTERM). In thread mode CREW_KILL returns CREW_EINVAL and changes
 * nothing: a thread cannot be killed without killing the process.
 *
 * CREW_NOWAIT, or'ed into how (CREW_DRAIN | CREW_NOWAIT, ...), begins the
 * shutdown exactly as without it and returns 0 at once, without waiting for
 * any worker (Python's shutdown(wait=False)); a later crew_pool_shutdown()
 * without it, or crew_pool_destroy(), waits. Tasks still run meanwhile.
 *
 * From inside one of the pool's own tasks, or a done callback running on a
 * process pool's callback thread, shutdown begins but cannot wait for the
 * workers (the caller is one of the threads it would join): it returns
 * CREW_EBUSY (0 with CREW_NOWAIT, which does not wait anyway), and a later
 * call from outside the pool, or crew_pool_destroy(), does the joining.
 * Returns CREW_EINVAL for NULL, an unknown `how` or flag, or a forked child.
 * Thread safe: any thread may call it, several at once.
 */
CREW_API int crew_pool_shutdown(crew_pool *pool, int how);

/*
 * crew_pool_wait_idle - wait until the pool is idle, without shutting it
 * down: returns 0 at the first moment nothing is queued and nothing runs,
 * that is once every task submitted before the call (and any submitted while
 * it waits, up to that moment) has resolved its future and its done
 * callbacks have returned; the items of a crew_map in flight count as
 * running, until the map returns. (The callbacks of a future cancelled by
 * crew_future_cancel() run on the cancelling thread, inside that call: they
 * are not waited for.) The pool stays open: later submits work. Waits at
 * most timeout_ns nanoseconds (CREW_FOREVER: no limit; 0: only looks),
 * then returns CREW_ETIMEDOUT. On a pool that is shut down it returns 0
 * once every task has resolved (workers may still be exiting).
 *
 * Thread safe: several threads may wait at once, while others submit. From
 * inside a task of the same pool, or a done callback on a process pool's
 * callback thread, it returns CREW_EBUSY at once (it would wait for
 * itself). Returns CREW_EINVAL for NULL or a call from a forked child (a
 * worker process included). Python: concurrent.futures.wait() on every
 * future submitted, or a join on a JoinableQueue.
 */
CREW_API int crew_pool_wait_idle(crew_pool *pool, uint64_t timeout_ns);

/*
 * crew_pool_destroy - shut the pool down with CREW_DRAIN if no shutdown has
 * begun (a shutdown already begun keeps its CREW_DRAIN or CREW_CANCEL), wait
 * for the workers, then free the pool. Futures of the pool stay valid until
 * released. Must be the last call on the pool, and not made from one of its
 * tasks or done callbacks. NULL is a no-op. Blocks while the queued tasks run.
 * When it returns, every task of the pool has resolved its future and run its
 * done callbacks (completion channels included). In a child made by fork() it
 * frees nothing: the child's copy of the pool is left alone.
 */
CREW_API void crew_pool_destroy(crew_pool *pool);

/*
 * crew_pool_stats - read the pool's counters into *stats.
 *
 * Counters are read one by one while work goes on, so fields may disagree by
 * the tasks in flight at that moment; once the pool is idle they add up:
 * submitted == completed + cancelled + crashed + deadline_killed + queued +
 * running. In process mode a map's items are counted when the map ends. Valid
 * from create until destroy, after shutdown too. Never blocks. Returns 0 or
 * CREW_EINVAL (NULL argument, a call from a forked child).
 */
CREW_API int crew_pool_stats(crew_pool *pool, crew_stats *stats);

/*
 * crew_pool_latency - how long submitted tasks waited in the queue (submit
 * to start) and ran (start to return), since create or the last reset, for
 * a pool made with cfg.latency_stats. Either pointer may be NULL. Tasks are
 * counted when they finish; map items are not counted. Workers record into
 * their own histograms without a lock; this reads them all, so it is a
 * snapshot that may miss tasks finishing meanwhile. Never blocks. Returns 0
 * or CREW_EINVAL (pool NULL, latency_stats off, a forked child).
 */
CREW_API int crew_pool_latency(crew_pool *pool, crew_latency *queue_wait,
                               crew_latency *run);

/*
 * crew_pool_latency_reset - start both distributions afresh. Safe while
 * tasks run (a task finishing during the reset may count on either side).
 * Returns 0 or CREW_EINVAL as crew_pool_latency().
 */
CREW_API int crew_pool_latency_reset(crew_pool *pool);

/*
 * crew_pool_workers - how many workers the pool was created with (after
 * resolving workers 0 to the CPU count). 0 for NULL.
 */
CREW_API size_t crew_pool_workers(const crew_pool *pool);

#ifdef __cplusplus
}
#endif

#endif /* CREW_POOL_H */
