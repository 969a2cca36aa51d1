/*
 * bench.h - what the benchmarks share: the textbook thread pool they
 * measure crew against (a bounded ring of (fn, arg), one mutex, two
 * condition variables, as a textbook writes it), the clock, and the median
 * of a run's repetitions. Benchmark code only: it exits on allocation failure.
 */
#ifndef CREW_BENCH_H
#define CREW_BENCH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct tb_job {
  void (*fn)(void *);
  void *arg;
};

struct tb_pool {
  pthread_mutex_t lock;
  pthread_cond_t not_empty, not_full;
  struct tb_job *ring;
  size_t cap, head, count;
  int stop;
  size_t nthreads;
  pthread_t *threads;
};

/* A textbook pool of nthreads workers and a cap-slot queue. */
struct tb_pool *tb_create(size_t nthreads, size_t cap);

/* Queue fn(arg), blocking while the queue is full. */
void tb_submit(struct tb_pool *p, void (*fn)(void *), void *arg);

/* Run what is queued, then join the workers and free the pool. */
void tb_destroy(struct tb_pool *p);

/* CLOCK_MONOTONIC, in nanoseconds. */
uint64_t now_ns(void);

struct summary {
  double median, min, max;
};

/* Sorts v. The median of an even count is the upper middle value. */
struct summary summarise(double *v, size_t n);

#endif
