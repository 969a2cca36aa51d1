/*
 * task.h - running tasks, the same way in every worker, thread or process
 * (see task.c): a worker's start, a task's call with the pool's hooks and
 * timing, a worker's counters and histograms, and how a map is cut into
 * chunks and its items run.
 */
#ifndef CREW_TASK_H
#define CREW_TASK_H

#include "histogram.h"
#include "internal.h"

/* What the pool asks of every task's run, from crew_config. */
struct crew__hooks {
  crew_task_hook on_start, on_finish;
  void *arg;
  bool timed;   /* latency or a hook: read the clock around each task */
  bool latency; /* record queue wait and run time */
  const _Atomic uint64_t *epoch; /* the pool's latency resets */
};

/*
 * A worker thread's accounting: counters and histograms that only its
 * thread writes (a relaxed load and store, no read-modify-write), and
 * anyone reads.
 */
struct crew__exec {
  alignas(64) struct crew__counters counters; /* own cache line */
  const struct crew__hooks *hooks;
  size_t index;                          /* the worker's */
  struct crew__hist wait_hist, run_hist; /* if hooks->latency */
};

/*
 * Call info->fn(in, out) with the hooks around it, reading the clock if
 * they want it: fills info's started_ns, finished_ns and status (the
 * caller fills fn, worker and submitted_ns). Returns the status.
 */
int crew__task_call(const struct crew__hooks *h, crew_task_info *info,
                    const void *in, void *out);

/* Run one task in worker x's accounting: counted, timed, recorded. */
static inline int crew__exec_run(struct crew__exec *x, crew_fn fn,
                                 const void *in, void *out, uint64_t submit_ns)
{
  crew__count(&x->counters.started, 1);
  int status;
  if (!x->hooks->timed) {
    status = fn(in, out);
  } else {
    crew_task_info info = {
        .fn = fn, .worker = x->index, .submitted_ns = submit_ns};
    status = crew__task_call(x->hooks, &info, in, out);
    if (x->hooks->latency) {
      uint64_t epoch = crew__read(x->hooks->epoch);
      if (submit_ns != 0 && info.started_ns >= submit_ns)
        crew__hist_record(&x->wait_hist, info.started_ns - submit_ns, epoch);
      crew__hist_record(&x->run_hist, info.finished_ns - info.started_ns,
                        epoch);
    }
  }
  crew__count(&x->counters.completed, 1);
  if (status != 0)
    crew__count(&x->counters.failed, 1);
  return status;
}

/*
 * A worker's start, thread or process: name the calling thread NAME-INDEX
 * and run init. Returns 0 (ready) or CREW_EINIT (init returned nonzero).
 */
int crew__worker_begin(const char *name, size_t index, int (*init)(void *),
                       void *init_arg);

/* --------------------------------------------------------------- maps */

/* How a map is cut: about four chunks per worker (Python's Pool.map). */
static inline size_t crew__map_chunk(size_t count, size_t workers)
{
  size_t pieces = workers * 4;
  return count / pieces + (count % pieces != 0);
}

static inline size_t crew__map_nchunks(size_t count, size_t chunk)
{
  return count / chunk + (count % chunk != 0);
}

/* A chunk's outcome: its failures and the lowest failed item. In process
 * mode it lives in shared memory and the parent reads it if the worker
 * dies in the chunk. */
struct crew__outcome {
  int32_t fail_status;
  uint64_t fail_index; /* lowest failed item, or UINT64_MAX */
  uint64_t failures;
};

/*
 * Run items [first, end) of a map: item i reads in + i * in_stride (NULL if
 * in is NULL) and writes out + i * out_stride. Failures go to *o as they
 * happen; counters (if not NULL) count each item; *progress (if not NULL)
 * gets how many have finished after each.
 */
void crew__map_items(crew_fn fn, const unsigned char *in, size_t in_stride,
                     unsigned char *out, size_t out_stride, uint64_t first,
                     uint64_t end, struct crew__outcome *o,
                     struct crew__counters *c, _Atomic uint64_t *progress);

#endif
