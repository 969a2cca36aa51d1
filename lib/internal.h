/*
 * internal.h - what every file of lib/ includes: the public API, the
 * operating-system layer (sync.h), the test hooks, and the counters that
 * one thread writes and anyone reads. Not installed. Each object's
 * internal interface has a header of its own beside it (queue.h, future.h,
 * task.h, backend.h, threads.h, procs.h ...); DESIGN.md draws the layers.
 * Every name shared between files starts with crew__; everything else in
 * lib/ is static.
 */
#ifndef CREW_INTERNAL_H
#define CREW_INTERNAL_H

#include <crew.h>

#include "sync.h"
#include "testhook.h"

#include <stdalign.h>
#include <stdatomic.h>

/*
 * A worker's counters. Each is written only by its worker's thread (a
 * relaxed load and store, no read-modify-write) and read by anyone.
 */
struct crew__counters {
  _Atomic uint64_t started;
  _Atomic uint64_t completed;
  _Atomic uint64_t failed;
};

/* Add n to a counter that only the calling thread writes. */
static inline void crew__count(_Atomic uint64_t *c, uint64_t n)
{
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                        memory_order_relaxed);
}

/* a - b, or 0 if b is larger (counters read one by one). */
static inline size_t crew__minus(uint64_t a, uint64_t b)
{
  return a > b ? (size_t)(a - b) : 0;
}

static inline uint64_t crew__read(const _Atomic uint64_t *c)
{
  return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed);
}

/* pool.c: whether a task of fn with these sizes may go to pool now: 0,
 * CREW_EINVAL (pool or fn NULL, a size above the pool's limits, a forked
 * child, a function process workers lack), CREW_ECLOSED or why the pool
 * is broken. crew_submit's slow path, and crew_imap before its first
 * input. */
int crew__pool_admits(crew_pool *pool, crew_fn fn, size_t in_size,
                      size_t out_size);

#endif /* CREW_INTERNAL_H */
