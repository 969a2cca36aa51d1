/*
 * futures.h - what the future suites (check_future, check_future_wait)
 * share: tasks that park on gates and say "I got here" with signals
 * (testutil.h), getting pointers to the test's gates and counters by value
 * in their input; done callbacks that log what they saw; threads that wait
 * on futures.
 */
#ifndef CREW_FUTURES_H
#define CREW_FUTURES_H

#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

/* The input of job_fn, copied at submit. */
struct job {
  signal_box *started; /* posted first, if not NULL */
  gate *g;             /* passed next, if not NULL */
  atomic_int *runs;    /* incremented once the gate let it through */
  int status;          /* what the task returns */
  size_t out_len;      /* bytes of out filled with pattern(i) */
};

/* Byte i of a job's output. */
unsigned char pattern(size_t i);

/* in: a struct job. Posts `started`, passes `g`, counts a run, fills
 * out_len bytes of out with pattern(i), and returns status. */
int job_fn(const void *in, void *out);

/* Submit job_fn with j, keeping out_size bytes of output. */
crew_future *submit_job(crew_pool *pool, struct job j, size_t out_size);

/* A task parked on g, returning status. */
crew_future *submit_parked(crew_pool *pool, gate *g, int status);

/* A task that returns status at once. */
crew_future *submit_status(crew_pool *pool, int status);

/*
 * Park n workers of pool on g (fire-and-forget tasks) and return once all n
 * are running, so that whatever is submitted next stays queued. The tasks
 * post `parked` when they start; a poster may still be inside signal_post
 * when signal_wait returns, so the caller destroys `parked` only after the
 * pool.
 */
void park_workers(crew_pool *pool, size_t n, gate *g, signal_box *parked);

/* Returns its int input; writes twice it to out if there is an out. */
int value_fn(const void *in, void *out);

/* Submit value_fn(v), asserting it is accepted. */
crew_future *submit_value(crew_pool *pool, int v, size_t out_size);

/* Writes the thread it runs on to out. */
int self_fn(const void *in, void *out);

/* A drain shutdown (asserted to succeed), then destroy. */
void destroy_pool(crew_pool *pool);

#define LOG_MAX 16

/* What done callbacks saw, in the order they ran. */
struct cb_log {
  atomic_int next; /* calls so far */
  int order[LOG_MAX];
  crew_future *seen[LOG_MAX];
  pthread_t thread[LOG_MAX];
  signal_box *sig; /* posted after each call, if not NULL */
};

/* A log_cb's argument: the log, and the id it writes there. */
struct cb_arg {
  struct cb_log *log;
  int id;
};

/* A done callback: logs its id, future and thread in a->log, then posts
 * a->log->sig (if any). */
void log_cb(crew_future *f, void *arg);

/* A done callback that counts its calls in the atomic_int arg. */
void noop_cb(crew_future *f, void *arg);

enum wait_how { WAIT_PLAIN, WAIT_TIMED_LONG, WAIT_GET, WAIT_ANY };

/* A thread that waits on a future (or on several, with WAIT_ANY). */
struct waiter {
  pthread_t th;
  int how; /* enum wait_how */
  crew_future *f;
  crew_future *const *fs; /* WAIT_ANY */
  size_t n;               /* WAIT_ANY */
  signal_box *ready;      /* posted before waiting */
  signal_box *woke;       /* posted after waiting */
  int rc;
  size_t idx; /* WAIT_ANY */
};

/* A struct waiter's thread: posts ready, waits as `how` says, keeps the
 * result in rc (and idx), posts woke. */
void *waiter_main(void *arg);

/* Start and join the thread of w (asserted). */
void waiter_start(struct waiter *w);
void waiter_join(struct waiter *w);

#endif
