/* futures.c - see futures.h. */
#include "futures.h"

#include <string.h>

unsigned char pattern(size_t i)
{
  return (unsigned char)(i * 7 + 3);
}

int job_fn(const void *in, void *out)
{
  struct job j;
  memcpy(&j, in, sizeof j);
  if (j.started != NULL)
    signal_post(j.started);
  if (j.g != NULL)
    gate_pass(j.g);
  if (j.runs != NULL)
    atomic_fetch_add(j.runs, 1);
  for (size_t i = 0; i < j.out_len; i++)
    ((unsigned char *)out)[i] = pattern(i);
  return j.status;
}

crew_future *submit_job(crew_pool *pool, struct job j, size_t out_size)
{
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, job_fn, &j, sizeof j, out_size, &f), 0);
  ck_assert_ptr_nonnull(f);
  return f;
}

crew_future *submit_parked(crew_pool *pool, gate *g, int status)
{
  return submit_job(pool, (struct job){.g = g, .status = status}, 0);
}

crew_future *submit_status(crew_pool *pool, int status)
{
  return submit_job(pool, (struct job){.status = status}, 0);
}

void park_workers(crew_pool *pool, size_t n, gate *g, signal_box *parked)
{
  for (size_t i = 0; i < n; i++) {
    struct job j = {.started = parked, .g = g};
    ck_assert_int_eq(crew_submit(pool, job_fn, &j, sizeof j, 0, NULL), 0);
  }
  signal_wait(parked, n);
}

int value_fn(const void *in, void *out)
{
  int v;
  memcpy(&v, in, sizeof v);
  if (out != NULL) {
    int twice = 2 * v;
    memcpy(out, &twice, sizeof twice);
  }
  return v;
}

crew_future *submit_value(crew_pool *pool, int v, size_t out_size)
{
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, value_fn, &v, sizeof v, out_size, &f), 0);
  ck_assert_ptr_nonnull(f);
  return f;
}

int self_fn(const void *in, void *out)
{
  pthread_t self = pthread_self();
  memcpy(out, &self, sizeof self);
  return 0;
}

void destroy_pool(crew_pool *pool)
{
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  crew_pool_destroy(pool);
}

void log_cb(crew_future *f, void *arg)
{
  struct cb_arg *a = arg;
  int slot = atomic_fetch_add(&a->log->next, 1);
  if (slot < LOG_MAX) {
    a->log->order[slot] = a->id;
    a->log->seen[slot] = f;
    a->log->thread[slot] = pthread_self();
  }
  if (a->log->sig != NULL)
    signal_post(a->log->sig);
}

void noop_cb(crew_future *f, void *arg)
{
  atomic_fetch_add((atomic_int *)arg, 1);
}

void *waiter_main(void *arg)
{
  struct waiter *w = arg;
  signal_post(w->ready);
  int out = 0;
  switch (w->how) {
  case WAIT_PLAIN:
    w->rc = crew_future_wait(w->f);
    break;
  case WAIT_TIMED_LONG:
    w->rc = crew_future_wait_timed(w->f, 10000 * MS);
    break;
  case WAIT_GET:
    w->rc = crew_future_get(w->f, &out, 0);
    break;
  case WAIT_ANY:
    w->idx = 999;
    w->rc = crew_wait_any(w->fs, w->n, CREW_FOREVER, &w->idx);
    break;
  }
  signal_post(w->woke);
  return NULL;
}

void waiter_start(struct waiter *w)
{
  ck_assert_int_eq(pthread_create(&w->th, NULL, waiter_main, w), 0);
}

void waiter_join(struct waiter *w)
{
  ck_assert_int_eq(pthread_join(w->th, NULL), 0);
}
