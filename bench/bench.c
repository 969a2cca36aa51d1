/* bench.c - see bench.h. */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void *bench_alloc(size_t n)
{
  void *p = calloc(1, n);
  if (p == NULL) {
    fprintf(stderr, "bench: out of memory\n");
    exit(1);
  }
  return p;
}

static void *tb_worker(void *arg)
{
  struct tb_pool *p = arg;
  for (;;) {
    pthread_mutex_lock(&p->lock);
    while (p->count == 0 && !p->stop)
      pthread_cond_wait(&p->not_empty, &p->lock);
    if (p->count == 0) {
      pthread_mutex_unlock(&p->lock);
      return NULL;
    }
    struct tb_job job = p->ring[p->head];
    p->head = (p->head + 1) % p->cap;
    p->count--;
    pthread_cond_signal(&p->not_full);
    pthread_mutex_unlock(&p->lock);
    job.fn(job.arg);
  }
}

struct tb_pool *tb_create(size_t nthreads, size_t cap)
{
  struct tb_pool *p = bench_alloc(sizeof *p);
  pthread_mutex_init(&p->lock, NULL);
  pthread_cond_init(&p->not_empty, NULL);
  pthread_cond_init(&p->not_full, NULL);
  p->ring = bench_alloc(cap * sizeof *p->ring);
  p->cap = cap;
  p->nthreads = nthreads;
  p->threads = bench_alloc(nthreads * sizeof *p->threads);
  for (size_t i = 0; i < nthreads; i++)
    if (pthread_create(&p->threads[i], NULL, tb_worker, p) != 0) {
      fprintf(stderr, "bench: pthread_create failed\n");
      exit(1);
    }
  return p;
}

void tb_submit(struct tb_pool *p, void (*fn)(void *), void *arg)
{
  pthread_mutex_lock(&p->lock);
  while (p->count == p->cap)
    pthread_cond_wait(&p->not_full, &p->lock);
  p->ring[(p->head + p->count) % p->cap] = (struct tb_job){fn, arg};
  p->count++;
  pthread_cond_signal(&p->not_empty);
  pthread_mutex_unlock(&p->lock);
}

void tb_destroy(struct tb_pool *p)
{
  pthread_mutex_lock(&p->lock);
  p->stop = 1;
  pthread_cond_broadcast(&p->not_empty);
  pthread_mutex_unlock(&p->lock);
  for (size_t i = 0; i < p->nthreads; i++)
    pthread_join(p->threads[i], NULL);
  free(p->threads);
  free(p->ring);
  pthread_cond_destroy(&p->not_full);
  pthread_cond_destroy(&p->not_empty);
  pthread_mutex_destroy(&p->lock);
  free(p);
}

static int compare_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct summary summarise(double *v, size_t n)
{
  qsort(v, n, sizeof *v, compare_double);
  return (struct summary){v[n / 2], v[0], v[n - 1]};
}
