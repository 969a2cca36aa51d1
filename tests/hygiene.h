/*
 * hygiene.h - what the fork, signal and limit suites (check_fork,
 * check_signals, check_limits) and the harness's own tests share: forked
 * children that report through their exit status, pools with extras, a
 * gate that worker processes can pass, and gated tasks for either mode.
 */
#ifndef CREW_HYGIENE_H
#define CREW_HYGIENE_H

#include "testutil.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#else
#define UNDER_TSAN 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#else
#define UNDER_ASAN 0
#endif

/* Wait at most timeout_ns for child `pid`; returns its wait status. A child
 * still running then is killed and the test fails. (The naps bound the
 * wait; they decide nothing.) */
int wait_child(pid_t pid, uint64_t timeout_ns);

/* Run fn(arg) in a forked child, which exits with what fn returns (0: all
 * its checks held). Waits at most 20 s; returns the wait status. */
int in_child(int (*fn)(void *), void *arg);

/* Evaluates `status` (a call that runs a child) once. */
#define ck_assert_child_ok(status)                                             \
  do {                                                                         \
    int st_ = (status);                                                        \
    ck_assert_msg(WIFEXITED(st_) && WEXITSTATUS(st_) == 0,                     \
                  "child failed: %s %d (its message is on stderr)",            \
                  WIFEXITED(st_) ? "exit status" : "signal",                   \
                  WIFEXITED(st_) ? WEXITSTATUS(st_) : WTERMSIG(st_));          \
  } while (0)

/* Checks inside a forked child: print, and return 1 from fn. */
#define CHILD_CHECK(expr)                                                      \
  do {                                                                         \
    if (!(expr)) {                                                             \
      fprintf(stderr, "%s:%d: in child %d: check failed: %s\n", __FILE__,      \
              __LINE__, (int)getpid(), #expr);                                 \
      return 1;                                                                \
    }                                                                          \
  } while (0)
#define CHILD_EQ(x, y)                                                         \
  do {                                                                         \
    long long x_ = (long long)(x), y_ = (long long)(y);                        \
    if (x_ != y_) {                                                            \
      fprintf(stderr, "%s:%d: in child %d: %s == %lld, expected %s == %lld\n", \
              __FILE__, __LINE__, (int)getpid(), #x, x_, #y, y_);              \
      return 1;                                                                \
    }                                                                          \
  } while (0)

/* A pool of `workers` processes (or threads) with the given extras. */
crew_pool *pool_with(int mode, size_t workers, size_t capacity,
                     uint64_t task_timeout_ns, uint64_t max_tasks,
                     const char *name);

/*
 * A gate for process workers: two CREW_SHARED queues, made before the pool
 * so that every worker has them. A task posts "started", then takes a token.
 */
struct xgate {
  crew_queue *tokens; /* char */
  crew_queue *posts;  /* int: whatever the task posts (its pid) */
};

void xgate_init(struct xgate *g);
void xgate_fini(struct xgate *g);
void xgate_open(struct xgate *g, size_t n);

/* Wait for n posts; returns the last one. */
int xgate_wait(struct xgate *g, size_t n);

/* What a gated task gets: the gate (by value) and a value to return. */
struct gated_in {
  struct xgate gate;
  int value;
};

/* Post our pid, take a token, write value * 2, return value. Works in
 * threads and processes alike. */
int task_gated(const void *in, void *out);

/* Return the input int; write it doubled. */
int task_value(const void *in, void *out);

/* Gated tasks on a thread pool use testutil's gate and signal. */
struct tgated_in {
  gate *g;
  signal_box *started;
  int value;
};

int task_tgated(const void *in, void *out);

/* Whether descriptor fd is close-on-exec. */
bool has_cloexec(int fd);

/* Signal state as a task sees it: handlers not SIG_DFL, signals blocked. */
struct sigstate {
  int not_default; /* signals whose handler is not SIG_DFL */
  int first_not_default;
  uint64_t blocked; /* bit sig-1 for each blocked signal 1..64 */
};

/* out: a struct sigstate of the thread it runs on. */
int task_signal_state(const void *in, void *out);

/* A handler that counts the signals it gets in signals_seen. */
extern atomic_int signals_seen;
void on_signal_count(int sig);

/* The mask crew's worker threads have: everything but their own faults
 * (pool.h), less what cannot be blocked (KILL, STOP, glibc's 32 and 33). */
uint64_t worker_thread_mask(void);

/* A timed call must end at its deadline: not before, and not restarted
 * from scratch by every interruption (the storm interrupts every 100 us). */
#define SLACK_NS (2000 * MS)
#define ck_assert_timed_out_in(start, timeout)                                 \
  do {                                                                         \
    uint64_t took_ = now_ns() - (start);                                       \
    ck_assert_msg(took_ >= (timeout) && took_ < (timeout) + SLACK_NS,          \
                  "took %llu ns for a timeout of %llu ns",                     \
                  (unsigned long long)took_, (unsigned long long)(timeout));   \
  } while (0)

/* in: a struct xgate; takes a token, returns 7 (100 if the gate broke). */
int task_child_waits(const void *in, void *out);

#endif
