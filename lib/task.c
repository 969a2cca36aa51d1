/*
 * task.c - what every worker does the same way, thread or process: start
 * (name, init), call a task with the pool's hooks and timing, and run the
 * items of a map chunk. The thread backend (threads.c, tmap.c) and the
 * process workers (procs_worker.c) both run tasks through here, so hooks,
 * timing and a map's failure rule are written once.
 */
#include "config.h"

#include "task.h"

#include <stdio.h>

int crew__task_call(const struct crew__hooks *h, crew_task_info *info,
                    const void *in, void *out)
{
  info->started_ns = crew__now_ns();
  if (h->on_start != NULL)
    h->on_start(info, h->arg);
  info->status = info->fn(in, out);
  info->finished_ns = crew__now_ns();
  if (h->on_finish != NULL)
    h->on_finish(info, h->arg);
  return info->status;
}

int crew__worker_begin(const char *name, size_t index, int (*init)(void *),
                       void *init_arg)
{
  char suffix[24];
  snprintf(suffix, sizeof suffix, "-%zu", index);
  crew__thread_set_name(name, suffix);
  if (init != NULL && init(init_arg) != 0)
    return CREW_EINIT;
  return 0;
}

void crew__map_items(crew_fn fn, const unsigned char *in, size_t in_stride,
                     unsigned char *out, size_t out_stride, uint64_t first,
                     uint64_t end, struct crew__outcome *o,
                     struct crew__counters *c, _Atomic uint64_t *progress)
{
  for (uint64_t i = first; i < end; i++) {
    const void *item_in = in != NULL ? in + i * in_stride : NULL;
    void *item_out = out != NULL ? out + i * out_stride : NULL;
    if (c != NULL)
      crew__count(&c->started, 1);
    int status = fn(item_in, item_out);
    if (c != NULL)
      crew__count(&c->completed, 1);
    if (status != 0) {
      if (c != NULL)
        crew__count(&c->failed, 1);
      o->failures++;
      if (o->fail_index == UINT64_MAX) {
        o->fail_index = i;
        o->fail_status = status;
      }
    }
    if (progress != NULL)
      atomic_store_explicit(progress, i - first + 1, memory_order_relaxed);
  }
}
