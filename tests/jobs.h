/*
 * jobs.h - what the channel and latency suites (check_channel,
 * check_channel_load, check_latency) share: tags, a readable fd, gates and
 * signals that worker processes can pass too, the records the task hooks
 * and the tasks write, and tasks that run in either mode.
 *
 * Process mode: tasks reach the test only through memory made before the
 * pool (CREW_SHARED queues for gates and signals, MAP_SHARED records for
 * hooks and counters). Tasks never use Check's assertions.
 */
#ifndef CREW_JOBS_H
#define CREW_JOBS_H

#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define WAIT_LIMIT    (10000 * MS) /* the longest any positive wait may take */
#define WAIT_LIMIT_MS 10000

/*
 * What the hooks and the tasks record, one record per task start (in the
 * order of starts). In process mode it lives in MAP_SHARED memory.
 */
#define HOOK_MAX 512

struct hook_rec {
  _Atomic int state; /* 0, 1 started, 2 finished */
  crew_task_info start, finish;
  pthread_t start_thread, task_thread, finish_thread;
  pid_t start_pid, task_pid, finish_pid;
  void *start_arg, *finish_arg;
  uint64_t task;   /* the task's value, written by the task */
  int task_status; /* what the task returned */
  int task_seen;
};

struct hooks {
  _Atomic uint64_t starts, finishes;
  _Atomic uint64_t anomalies;  /* a hook or task out of order */
  _Atomic uint64_t unhooked;   /* hooked_fn ran with no start hook */
  _Atomic uint64_t map_items;  /* map_item_fn ran */
  _Atomic uint64_t map_hooked; /* ... inside a start hook's task */
  struct hook_rec rec[HOOK_MAX];
};

/* Tags are never NULL: tag i is i + 1. */
void *tag_of(size_t i);

/* The i of tag_of(i). */
size_t index_of(const void *tag);

/* Whether fd is readable within timeout_ms (0: now). */
bool readable(int fd, int timeout_ms);

/* An atomic counter's value (keeps assertion messages readable). */
uint64_t load(_Atomic uint64_t *p);

/* Sleep ns nanoseconds at least (EINTR and early wake-ups resume it). */
void sleep_at_least(uint64_t ns);

/* A gate and a signal that worker processes can use too. */
void shared_gate_init(gate *g);
void shared_signal_init(signal_box *s);

/* A gate, a signal box and a run counter, process-shared when `shared`
 * (for tests that run in both modes). */
void mode_gate_init(gate *g, bool shared);
void mode_signal_init(signal_box *s, bool shared);

/* A zeroed counter, in MAP_SHARED memory when `shared`. */
_Atomic uint64_t *counter_new(bool shared);
void counter_free(_Atomic uint64_t *c, bool shared);

/* crew_channel_create, asserting it succeeds. */
crew_channel *make_channel(void);

/* Set before a hooked pool is created (workers forked later see it). */
extern struct hooks *hooks_g;

/* The record of the task running on this thread, or -1. */
extern _Thread_local int64_t tls_seq;

/* In a task: note in this thread's hook record that the task v ran. */
void note_task(uint64_t v, int status);

/* A general task's input, passed by value (the input is copied). */
struct job {
  crew_queue *gate;    /* if not NULL: pop a token first */
  crew_queue *started; /* if not NULL: push "I started" first */
  _Atomic uint64_t *ran;
  uint64_t v;
  uint64_t sleep_ns;
  int status;
};

/* in: a struct job. Pushes "started" and pops a gate token if asked,
 * sleeps sleep_ns, counts its run in *ran, notes itself for the hooks,
 * writes 3 * v to out (if any) and returns status. */
int job_fn(const void *in, void *out);

/* out = 3 * in; 8 bytes of input, so fire-and-forget stays inline. */
int triple_fn(const void *in, void *out);

/* Spins for a tiny time derived from its index; out = index. */
struct spin_in {
  uint64_t index;
  uint64_t spin_ns;
};

int spin_fn(const void *in, void *out);

/* crew_submit(job_fn, j), asserting it is accepted. */
crew_future *submit_job(crew_pool *pool, struct job j, size_t out_size);

/* A done callback that posts to the signal_box arg. */
void post_cb(crew_future *f, void *arg);

/* Watch f on ch, then post to s once the completion is queued. */
void watch_marked(crew_channel *ch, crew_future *f, void *tag, signal_box *s);

#endif
