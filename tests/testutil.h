/*
 * testutil.h - what the Check suites share: gates and signals built on
 * crew's own queue (tests synchronise with the library, never with sleeps),
 * a monotonic clock, and sizes scaled from the environment.
 */
#ifndef CREW_TESTUTIL_H
#define CREW_TESTUTIL_H

#include <crew.h>

#include <check.h>
#include <stdint.h>

#define MS 1000000ull /* nanoseconds in a millisecond */

/*
 * A gate: tasks that call gate_pass() block until the test lets them through
 * with gate_open(g, n), n tasks at a time. It is a crew_queue of tokens, so
 * a parked task blocks in crew's own wait.
 */
typedef struct gate {
  crew_queue *tokens;
} gate;

void gate_init(gate *g);
void gate_pass(gate *g);
void gate_open(gate *g, size_t n);
void gate_fini(gate *g);

/*
 * A signal: tasks call signal_post() to say "I got here"; the test calls
 * signal_wait(s, n) to block until n posts arrived (failing the test after
 * 10 s instead of hanging).
 */
typedef struct signal_box {
  crew_queue *posts;
} signal_box;

void signal_init(signal_box *s);
void signal_post(signal_box *s);
void signal_wait(signal_box *s, size_t n);
/* Whether a post arrives within timeout_ns (for negative checks only). */
int signal_try(signal_box *s, uint64_t timeout_ns);
void signal_fini(signal_box *s);

/* CLOCK_MONOTONIC now, in nanoseconds. */
uint64_t now_ns(void);

/* n times CREW_STRESS_SCALE (default 1, at least 1). */
size_t scaled(size_t n);

/* A pool with `workers` workers and the given queue capacity (0: default). */
crew_pool *make_pool(size_t workers, size_t capacity);

/* Run a suite in Check's fork mode; returns the process exit status. */
int run_suite(Suite *s);

#endif
