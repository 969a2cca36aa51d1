/*
 * bench_submit - what one task costs: empty fire-and-forget tasks and tasks
 * with futures, on crew and on a textbook mutex+condvar pool written here as
 * the baseline, interleaved in one process.
 *
 *   bench/bench_submit [--quick] [--tasks N] [--workers N] [--reps N]
 *
 * Each row runs once to warm up, then --reps times (default 5), alternating
 * crew and the baseline; it prints the median and the min-max in tasks per
 * second and the ratio of the medians. Wall time on a small shared machine
 * is noisy: read the ratio, and repeat.
 */
#include "bench.h"

#include <crew.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------ the textbook baseline */

/* A future for the baseline: a mutex, a condition variable, a value. */
struct tb_future {
  pthread_mutex_t lock;
  pthread_cond_t done_cv;
  int done;
  long x, result;
};

static void tb_square(void *arg)
{
  struct tb_future *f = arg;
  pthread_mutex_lock(&f->lock);
  f->result = f->x * f->x;
  f->done = 1;
  pthread_cond_signal(&f->done_cv);
  pthread_mutex_unlock(&f->lock);
}

static void tb_nothing(void *arg)
{
  (void)arg;
}

/* ------------------------------------------------------------ workloads */

static size_t opt_tasks = 1000000, opt_workers = 2, opt_reps = 5;

static int crew_nothing(const void *in, void *out)
{
  (void)in;
  (void)out;
  return 0;
}

static int crew_square(const void *in, void *out)
{
  long x = *(const long *)in;
  *(long *)out = x * x;
  return 0;
}

static crew_pool *crew_start(void)
{
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.workers = opt_workers;
  crew_pool *pool;
  if (crew_pool_create(&pool, &cfg) != 0) {
    fprintf(stderr, "bench: cannot create a pool\n");
    exit(1);
  }
  return pool;
}

/* Empty fire-and-forget tasks, from submit of the first to the last done. */
static double crew_empty(size_t n)
{
  crew_pool *pool = crew_start();
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++)
    crew_submit(pool, crew_nothing, NULL, 0, 0, NULL);
  crew_pool_shutdown(pool, CREW_DRAIN);
  uint64_t t1 = now_ns();
  crew_pool_destroy(pool);
  return (double)n / ((double)(t1 - t0) / 1e9);
}

static double textbook_empty(size_t n)
{
  struct tb_pool *p = tb_create(opt_workers, 1024);
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++)
    tb_submit(p, tb_nothing, NULL);
  tb_destroy(p);
  uint64_t t1 = now_ns();
  return (double)n / ((double)(t1 - t0) / 1e9);
}

/* Tasks returning x*x through a future; all kept, then summed. */
static double crew_futures(size_t n)
{
  crew_pool *pool = crew_start();
  crew_future **fs = malloc(n * sizeof *fs);
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++) {
    long x = (long)i;
    crew_submit(pool, crew_square, &x, sizeof x, sizeof x, &fs[i]);
  }
  long sum = 0;
  for (size_t i = 0; i < n; i++) {
    long r = 0;
    crew_future_get(fs[i], &r, sizeof r);
    sum += r;
    crew_future_release(fs[i]);
  }
  uint64_t t1 = now_ns();
  crew_pool_destroy(pool);
  free(fs);
  if (sum == 42)
    puts(""); /* keep the sum alive */
  return (double)n / ((double)(t1 - t0) / 1e9);
}

static double textbook_futures(size_t n)
{
  struct tb_pool *p = tb_create(opt_workers, 1024);
  struct tb_future **fs = malloc(n * sizeof *fs);
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++) {
    struct tb_future *f = malloc(sizeof *f);
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->done_cv, NULL);
    f->done = 0;
    f->x = (long)i;
    fs[i] = f;
    tb_submit(p, tb_square, f);
  }
  long sum = 0;
  for (size_t i = 0; i < n; i++) {
    struct tb_future *f = fs[i];
    pthread_mutex_lock(&f->lock);
    while (!f->done)
      pthread_cond_wait(&f->done_cv, &f->lock);
    sum += f->result;
    pthread_mutex_unlock(&f->lock);
    pthread_cond_destroy(&f->done_cv);
    pthread_mutex_destroy(&f->lock);
    free(f);
  }
  uint64_t t1 = now_ns();
  tb_destroy(p);
  free(fs);
  if (sum == 42)
    puts("");
  return (double)n / ((double)(t1 - t0) / 1e9);
}

/* ------------------------------------------------------------- reporting */

static void row(const char *name, double (*ours)(size_t),
                double (*baseline)(size_t), size_t n)
{
  double a[64], b[64];
  ours(n / 10); /* warm up */
  baseline(n / 10);
  for (size_t r = 0; r < opt_reps; r++) {
    a[r] = ours(n);
    b[r] = baseline(n);
  }
  struct summary s = summarise(a, opt_reps), t = summarise(b, opt_reps);
  printf("%-28s %9.2f M/s (%6.2f-%6.2f)   %9.2f M/s (%6.2f-%6.2f)   %5.2fx\n",
         name, s.median / 1e6, s.min / 1e6, s.max / 1e6, t.median / 1e6,
         t.min / 1e6, t.max / 1e6, s.median / t.median);
}

int main(int argc, char **argv)
{
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      opt_tasks = 100000;
      opt_reps = 3;
    } else if (strcmp(argv[i], "--tasks") == 0 && i + 1 < argc) {
      opt_tasks = strtoul(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
      opt_workers = strtoul(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      opt_reps = strtoul(argv[++i], NULL, 10);
    } else {
      fprintf(stderr,
              "usage: %s [--quick] [--tasks N] [--workers N] "
              "[--reps N]\n",
              argv[0]);
      return 2;
    }
  }
  if (opt_reps < 1 || opt_reps > 64 || opt_tasks < 10 || opt_workers < 1) {
    fprintf(stderr, "bench: reps 1..64, tasks >= 10, workers >= 1\n");
    return 2;
  }
  printf("crew %s: %zu workers, %zu tasks, median of %zu (min-max)\n",
         crew_version(), opt_workers, opt_tasks, opt_reps);
  printf("%-28s %-31s %-31s %s\n", "workload", "crew", "textbook pool",
         "ratio");
  row("empty, fire and forget", crew_empty, textbook_empty, opt_tasks);
  row("x*x through a future", crew_futures, textbook_futures, opt_tasks / 5);
  return 0;
}
