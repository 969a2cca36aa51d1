/*
 * testutil.h - what the Check suites share: gates and signals built on
 * crew's own queue (tests synchronise with the library, never with sleeps),
 * a monotonic clock, and sizes scaled from the environment.
 */
#ifndef CREW_TESTUTIL_H
#define CREW_TESTUTIL_H

#include <crew.h>

#include <check.h>
#include <pthread.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

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

/*
 * Quiet assertions, for hot loops and for tasks running on many threads at
 * once. Check's ck_assert_* record the location of every check that passes
 * (a message to the test runner, under a lock): in a loop of a million
 * tasks that is a system call per check and a lock that serialises the very
 * threads a stress test means to race. These say nothing unless they fail,
 * and then fail the test as ck_assert_* would.
 */
#define quiet_assert_msg(expr, ...)                                            \
  ((expr) ? (void)0 : ck_abort_msg(__VA_ARGS__))
#define quiet_assert(expr)                                                     \
  quiet_assert_msg(expr, "Assertion '%s' failed", #expr)
#define quiet_cmp_(type, fmt, X, OP, Y)                                        \
  do {                                                                         \
    type x_ = (X), y_ = (Y);                                                   \
    quiet_assert_msg(x_ OP y_,                                                 \
                     "Assertion '%s' failed: %s == " fmt ", %s == " fmt,       \
                     #X " " #OP " " #Y, #X, x_, #Y, y_);                       \
  } while (0)
#define quiet_assert_int_eq(X, Y)   quiet_cmp_(intmax_t, "%jd", X, ==, Y)
#define quiet_assert_uint_eq(X, Y)  quiet_cmp_(uintmax_t, "%ju", X, ==, Y)
#define quiet_assert_uint_ge(X, Y)  quiet_cmp_(uintmax_t, "%ju", X, >=, Y)
#define quiet_assert_uint_le(X, Y)  quiet_cmp_(uintmax_t, "%ju", X, <=, Y)
#define quiet_assert_uint_lt(X, Y)  quiet_cmp_(uintmax_t, "%ju", X, <, Y)
#define quiet_assert_ptr_nonnull(P) quiet_assert((P) != NULL)
#define quiet_assert_ptr_null(P)    quiet_assert((P) == NULL)

/* pthread_create and pthread_join, quietly asserting they succeed. A thread
 * that never ends runs into the TCase timeout. */
void start_thread(pthread_t *t, void *(*fn)(void *), void *arg);
void join_thread(pthread_t t);

/* A small deterministic generator (xorshift64) for the tests' choices:
 * advances *state (never 0) and returns it. */
uint64_t next_rand(uint64_t *state);

/* CLOCK_MONOTONIC now, in nanoseconds. */
uint64_t now_ns(void);

/* n times CREW_STRESS_SCALE (default 1, at least 1). */
size_t scaled(size_t n);

/* A MAP_SHARED anonymous mapping of size bytes (every process forked after
 * it shares it), asserting the mmap succeeds. */
void *shared_map(size_t size);

/* crew_config_init, then the mode and the number of workers. */
crew_config pool_config(int mode, size_t workers);

/* crew_pool_create(cfg), asserting it succeeds. */
crew_pool *pool_create(const crew_config *cfg);

/* A pool with `workers` workers and the given queue capacity (0: default). */
crew_pool *make_pool(size_t workers, size_t capacity);

/* Sleep ms milliseconds (EINTR resumes the sleep). For bounded polls only,
 * never to decide an outcome. */
void pause_ms(unsigned ms);

/* Read the text file at path (a /proc file) into buf, at most size - 1
 * bytes, and terminate it; its length, or -1 if it cannot be opened. */
long read_text(const char *path, char *buf, size_t size);

/* The state letter of process pid from /proc (R, S, Z...), 0 if none. */
char proc_state(pid_t pid);

/* Whether process pid is gone: no /proc entry, or a zombie or dead one. */
bool proc_gone(pid_t pid);

/* crew_pool_stats(pool), asserting it succeeds. */
crew_stats pool_stats(crew_pool *pool);

/* The counters of an idle pool add up: nothing queued or running, and
 * submitted == completed + cancelled + crashed + deadline_killed. */
void assert_pool_settled(crew_pool *pool);

/* Poll (bounded, 10 s) until the pool has n workers alive. */
void wait_pool_workers(crew_pool *pool, size_t n);

/* A TCase named `name` with the given timeout, added to s. */
TCase *timed_tcase(Suite *s, const char *name, double timeout_s);

/* Run a suite in Check's fork mode; returns the process exit status. */
int run_suite(Suite *s);

#endif
