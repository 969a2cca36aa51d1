/*
 * histogram.h - fixed-size latency histograms (see histogram.c).
 */
#ifndef CREW_HISTOGRAM_H
#define CREW_HISTOGRAM_H

#include "internal.h"

/* 8 buckets per power of two, from 1 ns to 2^40 ns (18 minutes), and
 * everything longer in the last. */
#define CREW__HIST_SUB     8
#define CREW__HIST_BUCKETS (41 * CREW__HIST_SUB)

/*
 * One writer's histogram: only its owning thread writes it (relaxed load and
 * store, no read-modify-write); anyone reads. `epoch` tells which reset the
 * max belongs to.
 */
struct crew__hist {
  _Atomic uint64_t bucket[CREW__HIST_BUCKETS];
  _Atomic uint64_t max;
  _Atomic uint64_t max_epoch;
};

/* The bucket of a value (see histogram.c). */
static inline unsigned crew__hist_bucket(uint64_t ns)
{
  if (ns < CREW__HIST_SUB)
    return (unsigned)ns;
  unsigned top = 63u - (unsigned)__builtin_clzll(ns); /* >= 3 */
  unsigned sub = (unsigned)(ns >> (top - 3)) & (CREW__HIST_SUB - 1);
  unsigned b = (top - 2) * CREW__HIST_SUB + sub;
  return b < CREW__HIST_BUCKETS ? b : CREW__HIST_BUCKETS - 1;
}

/* Record a value (owner thread only); `epoch` is the reader's reset count. */
static inline void crew__hist_record(struct crew__hist *h, uint64_t ns,
                                     uint64_t epoch)
{
  crew__count(&h->bucket[crew__hist_bucket(ns)], 1);
  if (crew__read(&h->max_epoch) != epoch) {
    atomic_store_explicit(&h->max, ns, memory_order_relaxed);
    atomic_store_explicit(&h->max_epoch, epoch, memory_order_relaxed);
  } else if (ns > crew__read(&h->max)) {
    atomic_store_explicit(&h->max, ns, memory_order_relaxed);
  }
}

/*
 * A reader's sum of several histograms, minus a baseline taken at the last
 * reset: counts per bucket and the max of those whose max_epoch is `epoch`.
 */
struct crew__hist_sum {
  uint64_t bucket[CREW__HIST_BUCKETS];
  uint64_t max;
};

void crew__hist_add(struct crew__hist_sum *sum, struct crew__hist *h,
                    uint64_t epoch);

/* sum - base, bucket by bucket (a reset keeps `base`). */
void crew__hist_subtract(struct crew__hist_sum *sum,
                         const struct crew__hist_sum *base);

/* The percentiles of a sum. */
void crew__hist_report(const struct crew__hist_sum *sum, crew_latency *out);

#endif
