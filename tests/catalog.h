/*
 * catalog.h - what the catalog suites (check_catalog_queue,
 * check_catalog_lifecycle, check_catalog_futures) share: pacing and work
 * that synchronise nothing, thread counts, queues, and their test cases.
 */
#ifndef CREW_CATALOG_H
#define CREW_CATALOG_H

#include "testutil.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define NEG_WAIT (50 * MS) /* how long a negative check waits */

/* Busy for about ns nanoseconds (a task's "work"; never synchronisation). */
void spin_ns(uint64_t ns);

/* A short pause that does not synchronise anything (pacing only). */
void pause_us(long us);

/* Entries of /proc/self/task: this process's threads. */
size_t count_threads(void);

/* Wait (at most 2 s) for the thread count to come back to `want`. */
void expect_threads(size_t want);

/* crew_queue_create(capacity, item_size, flags), quietly asserted. */
crew_queue *make_queue(size_t capacity, size_t item_size, unsigned flags);

/* A TCase under the harness (tests/harness.h), its timeout scaled with
 * CREW_STRESS_SCALE. */
TCase *catalog_tcase(Suite *s, const char *name, double timeout_s);

/* in: a gate *; passes it. */
int gate_task(const void *in, void *out);

/* Does nothing. */
int noop_task(const void *in, void *out);

/* in: an _Atomic uint32_t *; counts a run there, and writes the count
 * (uint32_t) to out if there is one. */
int count_task(const void *in, void *out);

/* A thread that shuts `pool` down with `how`: posts `ready` before, `done`
 * after, and keeps the result in rc. */
struct bg_shutdown {
  crew_pool *pool;
  int how, rc;
  signal_box *ready, *done;
  pthread_t th;
};

void *bg_shutdown_main(void *arg);

/* A process pool with a task deadline and max_in_size = max_out_size =
 * max_out (0: the defaults). */
crew_pool *make_proc_pool(size_t workers, uint64_t task_timeout_ns,
                          size_t max_out);

#endif
