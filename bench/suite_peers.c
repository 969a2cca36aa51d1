/*
 * suite_peers.c - what bench_suite measures crew against, one adapter per
 * workload: the textbook mutex+condvar pool (bench/bench.c) with a
 * textbook future and bounded queue (here), GLib's GThreadPool and
 * GAsyncQueue, libuv's uv_queue_work, and OpenMP tasks, each of the last
 * three only when configure found it. The workloads that run them, and
 * crew, are in suite_workloads.c; the driver and the report in suite.c.
 */
#include "suite.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------- the textbook future and queue */

/* A textbook future: a mutex, a condition variable, a flag and values. */
struct tb_future {
  pthread_mutex_t lock;
  pthread_cond_t done_cv;
  int done;
  long x, result;
  uint64_t started; /* W4: when the task began */
};

static struct tb_future *tb_future_new(long x)
{
  struct tb_future *f = xmalloc(sizeof *f);
  pthread_mutex_init(&f->lock, NULL);
  pthread_cond_init(&f->done_cv, NULL);
  f->done = 0;
  f->x = x;
  f->result = 0;
  f->started = 0;
  return f;
}

static void tb_future_set(struct tb_future *f, long result)
{
  pthread_mutex_lock(&f->lock);
  f->result = result;
  f->done = 1;
  pthread_cond_signal(&f->done_cv);
  pthread_mutex_unlock(&f->lock);
}

static long tb_future_get(struct tb_future *f)
{
  pthread_mutex_lock(&f->lock);
  while (!f->done)
    pthread_cond_wait(&f->done_cv, &f->lock);
  long r = f->result;
  pthread_mutex_unlock(&f->lock);
  return r;
}

static void tb_future_free(struct tb_future *f)
{
  pthread_cond_destroy(&f->done_cv);
  pthread_mutex_destroy(&f->lock);
  free(f);
}

static void tb_nothing(void *arg)
{
  (void)arg;
}

static void tb_square(void *arg)
{
  struct tb_future *f = arg;
  tb_future_set(f, f->x * f->x);
}

/* A textbook bounded queue of pointer-sized items, with close. */
struct tb_queue {
  pthread_mutex_t lock;
  pthread_cond_t not_empty, not_full;
  uintptr_t *ring;
  size_t cap, head, count;
  bool closed;
};

static struct tb_queue *tbq_create(size_t cap)
{
  struct tb_queue *q = xmalloc(sizeof *q);
  memset(q, 0, sizeof *q);
  pthread_mutex_init(&q->lock, NULL);
  pthread_cond_init(&q->not_empty, NULL);
  pthread_cond_init(&q->not_full, NULL);
  q->ring = xmalloc(cap * sizeof *q->ring);
  q->cap = cap;
  return q;
}

static void tbq_push(struct tb_queue *q, uintptr_t item)
{
  pthread_mutex_lock(&q->lock);
  while (q->count == q->cap)
    pthread_cond_wait(&q->not_full, &q->lock);
  q->ring[(q->head + q->count) % q->cap] = item;
  q->count++;
  pthread_cond_signal(&q->not_empty);
  pthread_mutex_unlock(&q->lock);
}

/* false once the queue is closed and empty. */
static bool tbq_pop(struct tb_queue *q, uintptr_t *item)
{
  pthread_mutex_lock(&q->lock);
  while (q->count == 0 && !q->closed)
    pthread_cond_wait(&q->not_empty, &q->lock);
  if (q->count == 0) {
    pthread_mutex_unlock(&q->lock);
    return false;
  }
  *item = q->ring[q->head];
  q->head = (q->head + 1) % q->cap;
  q->count--;
  pthread_cond_signal(&q->not_full);
  pthread_mutex_unlock(&q->lock);
  return true;
}

static void tbq_close(struct tb_queue *q)
{
  pthread_mutex_lock(&q->lock);
  q->closed = true;
  pthread_cond_broadcast(&q->not_empty);
  pthread_mutex_unlock(&q->lock);
}

static void tbq_destroy(struct tb_queue *q)
{
  pthread_cond_destroy(&q->not_full);
  pthread_cond_destroy(&q->not_empty);
  pthread_mutex_destroy(&q->lock);
  free(q->ring);
  free(q);
}

/* ------------------------------------------------------------------- W1 */

double w1_textbook(size_t n, const void *arg)
{
  (void)arg;
  struct tb_pool *p = tb_create(opt_workers, 1024);
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++)
    tb_submit(p, tb_nothing, NULL);
  tb_destroy(p);
  return seconds_since(t0);
}

#ifdef HAVE_GLIB
/* A GThreadPool of opt_workers exclusive threads that runs fn. */
static GThreadPool *glib_pool(GFunc fn)
{
  GThreadPool *pool =
      g_thread_pool_new(fn, NULL, (gint)opt_workers, TRUE, NULL);
  expect(pool != NULL, "g_thread_pool_new");
  return pool;
}

static char glib_item; /* GThreadPool refuses NULL data */

static void glib_nothing(gpointer data, gpointer user)
{
  (void)data;
  (void)user;
}

double w1_glib(size_t n, const void *arg)
{
  (void)arg;
  GThreadPool *pool = glib_pool(glib_nothing);
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++)
    g_thread_pool_push(pool, &glib_item, NULL);
  g_thread_pool_free(pool, FALSE, TRUE);
  return seconds_since(t0);
}
#endif

#ifdef HAVE_LIBUV
static size_t uv_done;

static void uv_nothing(uv_work_t *req)
{
  (void)req;
}

static void uv_count(uv_work_t *req, int status)
{
  (void)req;
  if (status == 0)
    uv_done++;
}

/* The loop and the requests are made (and touched) before the timing. */
double w1_libuv(size_t n, const void *arg)
{
  (void)arg;
  uv_loop_t loop;
  expect(uv_loop_init(&loop) == 0, "uv_loop_init");
  uv_work_t *reqs = scratch(n * sizeof *reqs);
  uv_done = 0;
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++)
    if (uv_queue_work(&loop, &reqs[i], uv_nothing, uv_count) != 0)
      fail("uv_queue_work", CREW_ENOMEM);
  uv_run(&loop, UV_RUN_DEFAULT);
  double s = seconds_since(t0);
  expect(uv_done == n, "W1 libuv: tasks completed");
  uv_loop_close(&loop);
  return s;
}
#endif

#ifdef HAVE_OPENMP
static void omp_nothing(void) __attribute__((noinline));

static void omp_nothing(void)
{
  __asm__ __volatile__("" ::: "memory");
}

double w1_openmp(size_t n, const void *arg)
{
  (void)arg;
  int nw = (int)opt_workers;
  uint64_t t0 = now_ns();
#pragma omp parallel num_threads(nw)
#pragma omp single
  for (size_t i = 0; i < n; i++) {
#pragma omp task
    omp_nothing();
  }
  return seconds_since(t0);
}
#endif

/* ------------------------------------------------------------------- W2 */

double w2_textbook(size_t n, const void *arg)
{
  (void)arg;
  struct tb_pool *p = tb_create(opt_workers, 1024);
  struct tb_future **fs = scratch(n * sizeof *fs);
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++) {
    fs[i] = tb_future_new((long)i);
    tb_submit(p, tb_square, fs[i]);
  }
  long sum = 0;
  for (size_t i = 0; i < n; i++) {
    sum += tb_future_get(fs[i]);
    tb_future_free(fs[i]);
  }
  double s = seconds_since(t0);
  tb_destroy(p);
  expect(sum == squares_sum(n), "W2 textbook: sum");
  return s;
}

#ifdef HAVE_GLIB
static void glib_square(gpointer data, gpointer user)
{
  (void)user;
  tb_square(data);
}

/* GLib has no futures: the textbook future (mutex+condvar) per task. */
double w2_glib(size_t n, const void *arg)
{
  (void)arg;
  GThreadPool *pool = glib_pool(glib_square);
  struct tb_future **fs = scratch(n * sizeof *fs);
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++) {
    fs[i] = tb_future_new((long)i);
    g_thread_pool_push(pool, fs[i], NULL);
  }
  long sum = 0;
  for (size_t i = 0; i < n; i++) {
    sum += tb_future_get(fs[i]);
    tb_future_free(fs[i]);
  }
  double s = seconds_since(t0);
  g_thread_pool_free(pool, FALSE, TRUE);
  expect(sum == squares_sum(n), "W2 GLib: sum");
  return s;
}
#endif

#ifdef HAVE_LIBUV
struct uv_square {
  uv_work_t req;
  long x, r;
};

static long uv_sum;

static void uv_square_work(uv_work_t *req)
{
  struct uv_square *s = (struct uv_square *)req;
  s->r = s->x * s->x;
}

static void uv_square_done(uv_work_t *req, int status)
{
  struct uv_square *s = (struct uv_square *)req;
  if (status == 0)
    uv_sum += s->r;
}

/* libuv has no futures: the result stays in the request and the
 * after-work callback (on the loop thread) adds it up. */
double w2_libuv(size_t n, const void *arg)
{
  (void)arg;
  uv_loop_t loop;
  expect(uv_loop_init(&loop) == 0, "uv_loop_init");
  struct uv_square *reqs = scratch(n * sizeof *reqs);
  uv_sum = 0;
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++) {
    reqs[i].x = (long)i;
    if (uv_queue_work(&loop, &reqs[i].req, uv_square_work, uv_square_done) != 0)
      fail("uv_queue_work", CREW_ENOMEM);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  double s = seconds_since(t0);
  uv_loop_close(&loop);
  expect(uv_sum == squares_sum(n), "W2 libuv: sum");
  return s;
}
#endif

#ifdef HAVE_OPENMP
/* OpenMP has no futures: each task writes its slot of an array. */
double w2_openmp(size_t n, const void *arg)
{
  (void)arg;
  int nw = (int)opt_workers;
  long *res = scratch(n * sizeof *res);
  uint64_t t0 = now_ns();
#pragma omp parallel num_threads(nw)
#pragma omp single
  for (size_t i = 0; i < n; i++) {
#pragma omp task firstprivate(i)
    res[i] = (long)i * (long)i;
  }
  long sum = 0;
  for (size_t i = 0; i < n; i++)
    sum += res[i];
  double s = seconds_since(t0);
  expect(sum == squares_sum(n), "W2 OpenMP: sum");
  return s;
}
#endif

/* ------------------------------------------------------------------- W3 */

static void tb_w3_item(void *arg)
{
  const struct w3_in *in = arg;
  w3_outs[in - w3_ins] = burn(in->iters, in->seed);
}

double w3_textbook(size_t n, const void *arg)
{
  (void)arg;
  struct tb_pool *p = tb_create(opt_workers, 1024);
  w3_reset(n);
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++)
    tb_submit(p, tb_w3_item, &w3_ins[i]);
  tb_destroy(p);
  double s = seconds_since(t0);
  expect(w3_right(n), "W3 textbook: outputs");
  return s;
}

#ifdef HAVE_GLIB
static void glib_w3_item(gpointer data, gpointer user)
{
  (void)user;
  tb_w3_item(data);
}

double w3_glib(size_t n, const void *arg)
{
  (void)arg;
  GThreadPool *pool = glib_pool(glib_w3_item);
  w3_reset(n);
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++)
    g_thread_pool_push(pool, &w3_ins[i], NULL);
  g_thread_pool_free(pool, FALSE, TRUE);
  double s = seconds_since(t0);
  expect(w3_right(n), "W3 GLib: outputs");
  return s;
}
#endif

#ifdef HAVE_OPENMP
double w3_openmp(size_t n, const void *arg)
{
  (void)arg;
  int nw = (int)opt_workers;
  long count = (long)n;
  w3_reset(n);
  uint64_t t0 = now_ns();
#pragma omp parallel for schedule(dynamic) num_threads(nw)
  for (long i = 0; i < count; i++)
    w3_outs[i] = burn(w3_ins[i].iters, w3_ins[i].seed);
  double s = seconds_since(t0);
  expect(w3_right(n), "W3 OpenMP: outputs");
  return s;
}
#endif

/* ------------------------------------------------------------------- W4 */

static void tb_w4_task(void *arg)
{
  struct tb_future *f = arg;
  f->started = now_ns(); /* before the lock: tb_future_set publishes it */
  tb_future_set(f, 0);
}

void w4_textbook(size_t rounds, const void *arg, uint64_t *start,
                 uint64_t *result)
{
  (void)arg;
  struct tb_pool *p = tb_create(opt_workers, 1024);
  struct tb_future *f = tb_future_new(0);
  for (size_t i = 0; i < rounds; i++) {
    spin_until(now_ns() + W4_IDLE_NS);
    f->done = 0; /* nobody else touches f between rounds */
    uint64_t t0 = now_ns();
    tb_submit(p, tb_w4_task, f);
    tb_future_get(f);
    uint64_t t1 = now_ns();
    start[i] = f->started - t0;
    result[i] = t1 - t0;
  }
  tb_destroy(p);
  tb_future_free(f);
}

#ifdef HAVE_GLIB
struct glib_lat {
  GAsyncQueue *done;
  uint64_t started;
};

static void glib_w4_task(gpointer data, gpointer user)
{
  (void)user;
  struct glib_lat *l = data;
  l->started = now_ns();
  g_async_queue_push(l->done, l);
}

void w4_glib(size_t rounds, const void *arg, uint64_t *start, uint64_t *result)
{
  (void)arg;
  GThreadPool *pool = glib_pool(glib_w4_task);
  struct glib_lat l = {g_async_queue_new(), 0};
  for (size_t i = 0; i < rounds; i++) {
    spin_until(now_ns() + W4_IDLE_NS);
    uint64_t t0 = now_ns();
    g_thread_pool_push(pool, &l, NULL);
    g_async_queue_pop(l.done);
    uint64_t t1 = now_ns();
    start[i] = l.started - t0;
    result[i] = t1 - t0;
  }
  g_thread_pool_free(pool, FALSE, TRUE);
  g_async_queue_unref(l.done);
}
#endif

#ifdef HAVE_LIBUV
struct uv_lat {
  uv_work_t req;
  uint64_t started, done;
};

static void uv_w4_work(uv_work_t *req)
{
  ((struct uv_lat *)req)->started = now_ns();
}

static void uv_w4_done(uv_work_t *req, int status)
{
  (void)status;
  ((struct uv_lat *)req)->done = now_ns();
}

/* The loop thread submits, then waits in uv_run for the after-work
 * callback, which notes when the result was observed. */
void w4_libuv(size_t rounds, const void *arg, uint64_t *start, uint64_t *result)
{
  (void)arg;
  uv_loop_t loop;
  expect(uv_loop_init(&loop) == 0, "uv_loop_init");
  struct uv_lat l;
  for (size_t i = 0; i < rounds; i++) {
    spin_until(now_ns() + W4_IDLE_NS);
    memset(&l, 0, sizeof l);
    uint64_t t0 = now_ns();
    if (uv_queue_work(&loop, &l.req, uv_w4_work, uv_w4_done) != 0)
      fail("uv_queue_work", CREW_ENOMEM);
    uv_run(&loop, UV_RUN_DEFAULT);
    start[i] = l.started - t0;
    result[i] = l.done - t0;
  }
  uv_loop_close(&loop);
}
#endif

/* ------------------------------------------------------------------- W5 */

void w5_peer_open(struct q_ctx *c)
{
  if (c->a->impl == Q_TEXTBOOK)
    c->tq = tbq_create(Q_CAPACITY);
#ifdef HAVE_GLIB
  else
    c->gq = g_async_queue_new();
#endif
}

#ifdef HAVE_GLIB
static char glib_stop; /* the end-of-stream item for GAsyncQueue */
#endif

void w5_peer_produce(struct q_ctx *c, size_t n)
{
  const struct q_arg *a = c->a;
  if (a->impl == Q_TEXTBOOK) {
    for (size_t i = 1; i <= n; i++)
      tbq_push(c->tq, i);
  }
#ifdef HAVE_GLIB
  else if (!a->batch) {
    for (size_t i = 1; i <= n; i++)
      g_async_queue_push(c->gq, (void *)(uintptr_t)i);
  } else {
    for (size_t i = 1; i <= n;) {
      g_async_queue_lock(c->gq);
      for (size_t k = 0; k < Q_BATCH && i <= n; k++)
        g_async_queue_push_unlocked(c->gq, (void *)(uintptr_t)i++);
      g_async_queue_unlock(c->gq);
    }
  }
#endif
}

void w5_peer_consume(struct q_ctx *c, uint64_t *countp, uint64_t *sump)
{
  const struct q_arg *a = c->a;
  uint64_t count = 0, sum = 0;
  if (a->impl == Q_TEXTBOOK) {
    uintptr_t item;
    while (tbq_pop(c->tq, &item)) {
      count++;
      sum += item;
    }
  }
#ifdef HAVE_GLIB
  else if (!a->batch) {
    for (;;) {
      void *item = g_async_queue_pop(c->gq);
      if (item == &glib_stop)
        break;
      count++;
      sum += (uintptr_t)item;
    }
  } else {
    bool stop = false;
    while (!stop) {
      g_async_queue_lock(c->gq);
      void *item = g_async_queue_pop_unlocked(c->gq);
      for (int k = 1; item != NULL; k++) {
        if (item == &glib_stop) {
          stop = true;
          break;
        }
        count++;
        sum += (uintptr_t)item;
        item = k < Q_BATCH ? g_async_queue_try_pop_unlocked(c->gq) : NULL;
      }
      g_async_queue_unlock(c->gq);
    }
  }
#endif
  *countp = count;
  *sump = sum;
}

void w5_peer_close(struct q_ctx *c)
{
  if (c->a->impl == Q_TEXTBOOK)
    tbq_close(c->tq);
#ifdef HAVE_GLIB
  else
    for (int i = 0; i < c->a->consumers; i++)
      g_async_queue_push(c->gq, &glib_stop);
#endif
}

void w5_peer_free(struct q_ctx *c)
{
  if (c->a->impl == Q_TEXTBOOK)
    tbq_destroy(c->tq);
#ifdef HAVE_GLIB
  else
    g_async_queue_unref(c->gq);
#endif
}

/* ---------------------------------------------------------------- ALLOC */

#ifdef ALLOC_COUNTER
double allocs_textbook_w1(size_t n)
{
  struct tb_pool *p = tb_create(opt_workers, 1024);
  for (size_t i = 0; i < n; i++)
    tb_submit(p, tb_nothing, NULL);
  alloc_count_begin();
  for (size_t i = 0; i < n; i++)
    tb_submit(p, tb_nothing, NULL);
  tb_destroy(p);
  return (double)alloc_count_end() / (double)n;
}

double allocs_textbook_w2(size_t n)
{
  alloc_count_begin();
  w2_textbook(n, NULL);
  unsigned long a = alloc_count_end();
  /* The pool itself: 3 allocations (pool, ring, threads) + the threads'. */
  return (double)a / (double)n;
}

#ifdef HAVE_GLIB
double allocs_glib_w1(size_t n)
{
  GThreadPool *pool = glib_pool(glib_nothing);
  for (size_t i = 0; i < n; i++)
    g_thread_pool_push(pool, &glib_item, NULL);
  alloc_count_begin();
  for (size_t i = 0; i < n; i++)
    g_thread_pool_push(pool, &glib_item, NULL);
  g_thread_pool_free(pool, FALSE, TRUE);
  return (double)alloc_count_end() / (double)n;
}
#endif

#ifdef HAVE_LIBUV
double allocs_libuv_w1(size_t n)
{
  w1_libuv(n, NULL);
  alloc_count_begin();
  w1_libuv(n, NULL);
  return (double)alloc_count_end() / (double)n;
}
#endif
#endif
