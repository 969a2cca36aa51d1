/*
 * histogram.c - latency histograms with no lock on the hot path.
 *
 * Buckets are log-linear: a value v >= 8 falls in octave floor(log2 v) - 2
 * and, within it, in one of 8 equal sub-buckets (the three bits below the
 * top bit), so a bucket's upper bound is at most 1/8 above anything in it.
 * Values below 8 ns get a bucket each.
 *
 * Each writer (a worker thread, or the process pool's manager) owns its
 * histogram and updates it with a relaxed load and store: one writer per
 * counter, no read-modify-write, no lock. Readers sum the histograms. A
 * reset does not touch the writers' counters: the reader keeps the sum at
 * the reset as a baseline and subtracts it. The max cannot be subtracted, so
 * each writer tags its max with the reset count (epoch) it last saw, and
 * starts afresh when that changes.
 */
#include "config.h"

#include "histogram.h"

/* The largest value bucket b holds. */
static uint64_t bucket_top(unsigned b)
{
  if (b < CREW__HIST_SUB)
    return b;
  unsigned top = b / CREW__HIST_SUB + 2;
  uint64_t sub = b % CREW__HIST_SUB;
  return ((CREW__HIST_SUB + sub + 1) << (top - 3)) - 1;
}

void crew__hist_add(struct crew__hist_sum *sum, struct crew__hist *h,
                    uint64_t epoch)
{
  for (unsigned b = 0; b < CREW__HIST_BUCKETS; b++)
    sum->bucket[b] += crew__read(&h->bucket[b]);
  if (crew__read(&h->max_epoch) == epoch && crew__read(&h->max) > sum->max)
    sum->max = crew__read(&h->max);
}

void crew__hist_subtract(struct crew__hist_sum *sum,
                         const struct crew__hist_sum *base)
{
  for (unsigned b = 0; b < CREW__HIST_BUCKETS; b++)
    sum->bucket[b] =
        sum->bucket[b] > base->bucket[b] ? sum->bucket[b] - base->bucket[b] : 0;
}

/* The upper bound of the bucket holding the rank-th value (1-based). */
static uint64_t value_at(const struct crew__hist_sum *sum, uint64_t rank)
{
  uint64_t seen = 0;
  for (unsigned b = 0; b < CREW__HIST_BUCKETS; b++) {
    seen += sum->bucket[b];
    if (seen >= rank)
      return bucket_top(b);
  }
  return sum->max;
}

void crew__hist_report(const struct crew__hist_sum *sum, crew_latency *out)
{
  uint64_t n = 0;
  for (unsigned b = 0; b < CREW__HIST_BUCKETS; b++)
    n += sum->bucket[b];
  *out = (crew_latency){.count = n};
  if (n == 0)
    return;
  /* Percentile p: the value ranked ceil(p * n). */
  out->p50_ns = value_at(sum, (n * 50 + 99) / 100);
  out->p90_ns = value_at(sum, (n * 90 + 99) / 100);
  out->p99_ns = value_at(sum, (n * 99 + 99) / 100);
  out->max_ns = sum->max;
  /* A bucket's top may pass the true max: never report above it. */
  if (out->p50_ns > out->max_ns)
    out->p50_ns = out->max_ns;
  if (out->p90_ns > out->max_ns)
    out->p90_ns = out->max_ns;
  if (out->p99_ns > out->max_ns)
    out->p99_ns = out->max_ns;
}
