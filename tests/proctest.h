/*
 * proctest.h - what the process-mode suites share (check_procpool*,
 * check_faults*): the shared state below, pools, and the tasks more than
 * one suite submits.
 *
 * Tasks run in other processes, so they cannot touch the test's memory. They
 * talk to the test through what exists before the pool is created and is
 * shared with every process forked after it (workers start from the image of
 * the test at create):
 *  - gate_q: a CREW_SHARED crew_queue of tokens; a task that passes the gate
 *    pops one, so it stays parked until the test opens the gate;
 *  - box_q: a CREW_SHARED crew_queue of uint64_t posts (pids, start times,
 *    "I got here"), which the test takes with a 10 s limit;
 *  - shm and hits: MAP_SHARED counters (bodies that ran, init calls, runs
 *    per task id, runs per item), incremented atomically by the tasks.
 * shared_setup() makes them; every test calls it before its first pool.
 * Tasks never use Check's assertions (they run in workers): they report
 * through their status, their output or the shared counters.
 */
#ifndef CREW_PROCTEST_H
#define CREW_PROCTEST_H

#include "testutil.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#define TAKE_LIMIT (10000 * MS) /* how long the test waits for a post */
#define NRUNS      64           /* task ids with a run counter of their own */

/* Counters shared with every worker. */
struct shm {
  _Atomic uint64_t ran;   /* bodies of counted tasks */
  _Atomic uint64_t ninit; /* init calls, in any process */
  _Atomic int64_t init_pids[64];
  _Atomic uint64_t runs[NRUNS]; /* bodies run, per task id */
};

extern crew_queue *gate_q;     /* tokens: CREW_SHARED */
extern crew_queue *box_q;      /* uint64_t posts: CREW_SHARED */
extern struct shm *shm;        /* counters */
extern _Atomic uint32_t *hits; /* runs per item */
extern size_t nhits;

/* Make the shared state, with per-item counters for n items. Call before
 * creating the pool (and before forking). */
void shared_setup(size_t n);
void shared_teardown(void);
void reset_hits(size_t n);

/* In a task: post a value to the test. */
void post(uint64_t v);

/* In a task: wait at the gate; 0 once through, 1 if the gate is broken. */
int gate_wait(void);

/* In the test: let n tasks through the gate. */
void open_gate(size_t n);

/* In the test: the next post, failing after 10 s instead of hanging. */
uint64_t take(void);

/* Something to point at, to see that an out pointer was left untouched. */
extern char sentinel;
#define NO_FUTURE ((crew_future *)(void *)&sentinel)

/* A process pool's configuration: `workers` workers, queue `capacity`. */
crew_config pcfg(size_t workers, size_t capacity);

/* pool_create(pcfg(workers, capacity)). */
crew_pool *ppool(size_t workers, size_t capacity);

/* in: int64_t x; out (if any): x + 1. Counts its run in shm->ran. */
int add_task(const void *in, void *out);

/* Returns the int it gets. */
int status_task(const void *in, void *out);

/* Posts its pid, waits at the gate, counts its run; out (if any): pid. */
int gated_task(const void *in, void *out);

/*
 * A task that calls exit() runs the atexit handlers of the image it was
 * forked from, LeakSanitizer's among them. In a worker, forked from the fork
 * server, itself forked from the pool's manager thread, the test's main
 * stack is no thread's stack, so everything only it points to looks leaked:
 * LSan's report would be about the fork, not about a leak. A task that
 * exits on purpose sets this just before, which turns leak checking off in
 * that worker.
 */
extern volatile sig_atomic_t exiting_on_purpose;

enum crash_kind {
  CRASH_SEGV = 1,
  CRASH_ABORT = 2,
  CRASH_EXIT3 = 3,
  CRASH_EXIT0 = 4,
  CRASH_KILLED = 5 /* posts its pid and waits for the test's SIGKILL */
};

/* in: an int, an enum crash_kind. Dies as in says; returns 99 if it
 * survived. */
int crash_task(const void *in, void *out);

/* Submit add_task(x), asserting it is accepted. */
crew_future *submit_add(crew_pool *pool, int64_t x);

/* Wait for an add_task(x) future: status 0 and output x + 1; release it. */
void expect_add(crew_future *f, int64_t x);

/* n add tasks at once, then all their results (quietly). */
void run_adds(crew_pool *pool, size_t n);

/* How many of the first n items did not run exactly once. */
size_t hits_not_once(size_t n);

/* A map item that fails with `status`, or crashes its worker. */
struct fail_item {
  int64_t x;
  int32_t status;
  int32_t crash;
};

/* Map item: out = 3x, counted in hits[x]; returns `status` (or crashes). */
int fail_item_task(const void *in, void *out);

/* n items {i, 0, 0} and n outputs of -1 (the caller frees both). */
struct fail_item *fail_items(size_t n, int64_t **out);

/* Bounded poll (5 s) until /proc gives pid's state as `state` ('S', 'T'
 * ...); wait_sleeping: until it sleeps, blocked in a wait. */
void wait_state(pid_t pid, char state);
void wait_sleeping(pid_t pid);

/* A process pool of `workers` named "flt" (the hook knows its workers by
 * that name). */
crew_config flt_cfg(size_t workers);

/* A counted task's input: x, and the id its runs are counted under. */
struct counted_in {
  int64_t x;
  uint32_t id;
  uint32_t pad;
};

/* out: 2x + 1; counts its run under its id. */
int counted_task(const void *in, void *out);

/* Submit counted_task(x) under id, asserting it is accepted. */
crew_future *submit_counted(crew_pool *pool, int64_t x, uint32_t id);

/* A counted task's future resolved with its output, and it ran once. */
void expect_counted(crew_future *f, int64_t x, uint32_t id);

/* Map item: out = 3 * in; counts its run under in % NRUNS. */
int triple_item(const void *in, void *out);

#endif
