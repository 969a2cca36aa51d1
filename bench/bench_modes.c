/*
 * bench_modes - threads or processes? The same workloads on a thread pool
 * and on a process pool, in one run, interleaved:
 *
 *   bench/bench_modes [--quick] [--workers N] [--reps N]
 *
 *  - start-up: crew_pool_create + crew_pool_destroy of an idle pool;
 *  - tiny tasks: fire-and-forget empty tasks, empty tasks whose futures
 *    are all kept and waited for, and empty tasks whose completions an
 *    edge-triggered epoll loop drains from a crew_channel: wall time per
 *    task;
 *  - 50 us tasks: tasks that spin for 50 us, per-task overhead over the
 *    ideal (tasks x 50 us / workers);
 *  - CPU-bound map: crew_map over items of ~50 us, speedup over running
 *    them one after another in this thread;
 *  - a crash (process mode): from a task's last instruction before SIGSEGV
 *    to its future resolving with CREW_ECRASHED, and to the replacement
 *    worker having run a task.
 *
 * Each row runs once to warm up, then --reps times (default 5); it prints
 * the median and min-max. The machine is small and shared: read ratios, and
 * repeat.
 */
#include "bench.h"

#include <crew.h>

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static size_t opt_workers = 2, opt_reps = 5, opt_tiny = 100000, opt_spin = 4000;

/* --------------------------------------------------------------- tasks */

static int nothing(const void *in, void *out)
{
  (void)in;
  (void)out;
  return 0;
}

/* Spin for the given nanoseconds: pure computation, no system calls. */
static int spin(const void *in, void *out)
{
  uint64_t ns;
  memcpy(&ns, in, sizeof ns);
  uint64_t end = now_ns() + ns;
  volatile uint64_t x = 0;
  while (now_ns() < end)
    for (int i = 0; i < 100; i++)
      x = x * 6364136223846793005u + 1;
  if (out != NULL)
    memcpy(out, (const void *)&x, sizeof x);
  return 0;
}

/* Shared with the workers (mapped before any pool): when a crash began. */
static _Atomic uint64_t *crash_at;

static int crash(const void *in, void *out)
{
  (void)in;
  (void)out;
  atomic_store(crash_at, now_ns());
  raise(SIGSEGV);
  return 0;
}

/* ------------------------------------------------------------ workloads */

static crew_pool *start(int mode)
{
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.mode = mode;
  cfg.workers = opt_workers;
  crew_pool *pool;
  int rc = crew_pool_create(&pool, &cfg);
  if (rc != 0) {
    fprintf(stderr, "bench_modes: create: %s\n", crew_strerror(rc));
    exit(1);
  }
  return pool;
}

/* Each measure returns nanoseconds (a time) for one repetition. */
typedef double (*measure_fn)(int mode);

static double startup(int mode)
{
  uint64_t t0 = now_ns();
  crew_pool_destroy(start(mode));
  return (double)(now_ns() - t0);
}

static double tiny_forget(int mode)
{
  crew_pool *pool = start(mode);
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < opt_tiny; i++)
    crew_submit(pool, nothing, NULL, 0, 0, NULL);
  crew_pool_shutdown(pool, CREW_DRAIN);
  double per = (double)(now_ns() - t0) / (double)opt_tiny;
  crew_pool_destroy(pool);
  return per;
}

static double tiny_futures(int mode)
{
  crew_pool *pool = start(mode);
  size_t n = opt_tiny / 4;
  crew_future **fs = malloc(n * sizeof *fs);
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++)
    crew_submit(pool, nothing, NULL, 0, 0, &fs[i]);
  for (size_t i = 0; i < n; i++) {
    crew_future_wait(fs[i]);
    crew_future_release(fs[i]);
  }
  double per = (double)(now_ns() - t0) / (double)n;
  crew_pool_destroy(pool);
  free(fs);
  return per;
}

/* Empty tasks whose completions come back through a channel, drained by an
 * edge-triggered epoll loop as a server would: per task. */
static double tiny_channel(int mode)
{
  crew_pool *pool = start(mode);
  crew_channel *ch;
  crew_channel_create(&ch);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLET};
  epoll_ctl(ep, EPOLL_CTL_ADD, crew_channel_fd(ch), &ev);
  size_t n = opt_tiny / 4, sent = 0, got = 0;
  uint64_t t0 = now_ns();
  while (got < n) {
    while (sent < n &&
           crew_submit_to_timed(pool, ch, NULL, nothing, NULL, 0, 0, 0) == 0)
      sent++;
    epoll_wait(ep, &ev, 1, 1000);
    crew_completion done[64];
    size_t k;
    do {
      crew_channel_drain(ch, done, 64, &k);
      for (size_t i = 0; i < k; i++)
        crew_future_release(done[i].future);
      got += k;
    } while (k == 64);
  }
  double per = (double)(now_ns() - t0) / (double)n;
  close(ep);
  crew_channel_destroy(ch);
  crew_pool_destroy(pool);
  return per;
}

/* Overhead per 50 us task beyond the ideal n * 50 us / workers. */
static double spin_overhead(int mode)
{
  crew_pool *pool = start(mode);
  uint64_t ns = 50000;
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < opt_spin; i++)
    crew_submit(pool, spin, &ns, sizeof ns, 0, NULL);
  crew_pool_shutdown(pool, CREW_DRAIN);
  double wall = (double)(now_ns() - t0);
  crew_pool_destroy(pool);
  return wall * (double)opt_workers / (double)opt_spin - (double)ns;
}

/* Wall time of a map over items of 50 us each. */
static double map_time(int mode)
{
  crew_pool *pool = start(mode);
  uint64_t *in = malloc(opt_spin * sizeof *in);
  for (size_t i = 0; i < opt_spin; i++)
    in[i] = 50000;
  uint64_t t0 = now_ns();
  crew_map(pool, spin, in, sizeof *in, NULL, 0, opt_spin);
  double wall = (double)(now_ns() - t0);
  crew_pool_destroy(pool);
  free(in);
  return wall;
}

static double sequential_time(int mode)
{
  (void)mode;
  uint64_t ns = 50000;
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < opt_spin; i++)
    spin(&ns, NULL);
  return (double)(now_ns() - t0);
}

/* Process mode: crash to CREW_ECRASHED (detect) and to a replacement's
 * first task (restart), in *restart. */
static double crash_once(double *restart)
{
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.mode = CREW_PROCESSES;
  cfg.workers = 1;
  crew_pool *pool;
  crew_pool_create(&pool, &cfg);
  crew_future *f;
  crew_submit(pool, crash, NULL, 0, 0, &f);
  crew_future_wait(f);
  uint64_t detected = now_ns();
  crew_future_release(f);
  crew_submit(pool, nothing, NULL, 0, 0, &f); /* needs the replacement */
  crew_future_wait(f);
  uint64_t replaced = now_ns();
  crew_future_release(f);
  crew_pool_destroy(pool);
  uint64_t at = atomic_load(crash_at);
  *restart = (double)(replaced - at);
  return (double)(detected - at);
}

/* ------------------------------------------------------------- reporting */

/* Run `m` for both modes, interleaved; print in `unit` (divisor). */
static void row(const char *name, measure_fn m, double unit,
                const char *unit_name, struct summary *t, struct summary *p)
{
  double a[64], b[64];
  m(CREW_THREADS);
  m(CREW_PROCESSES);
  for (size_t r = 0; r < opt_reps; r++) {
    a[r] = m(CREW_THREADS) / unit;
    b[r] = m(CREW_PROCESSES) / unit;
  }
  *t = summarise(a, opt_reps);
  *p = summarise(b, opt_reps);
  printf("%-30s %9.2f %-3s (%7.2f-%7.2f)  %9.2f %-3s (%7.2f-%7.2f)  %6.1fx\n",
         name, t->median, unit_name, t->min, t->max, p->median, unit_name,
         p->min, p->max, p->median / t->median);
}

int main(int argc, char **argv)
{
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      opt_reps = 3;
      opt_tiny = 20000;
      opt_spin = 1000;
    } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
      opt_workers = strtoul(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      opt_reps = strtoul(argv[++i], NULL, 10);
    } else {
      fprintf(stderr, "usage: %s [--quick] [--workers N] [--reps N]\n",
              argv[0]);
      return 2;
    }
  }
  if (opt_reps < 1 || opt_reps > 64 || opt_workers < 1) {
    fprintf(stderr, "bench_modes: reps 1..64, workers >= 1\n");
    return 2;
  }
  crash_at = mmap(NULL, sizeof *crash_at, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (crash_at == MAP_FAILED)
    return 1;

  printf("crew %s: %zu workers, median of %zu (min-max); threads, then "
         "processes\n",
         crew_version(), opt_workers, opt_reps);
  printf("%-30s %-31s %-31s %s\n", "workload", "threads", "processes", "p/t");
  struct summary t, p;
  row("start-up (create+destroy)", startup, 1e3, "us", &t, &p);
  row("tiny task, fire and forget", tiny_forget, 1e3, "us", &t, &p);
  row("tiny task, with a future", tiny_futures, 1e3, "us", &t, &p);
  row("tiny task, through a channel", tiny_channel, 1e3, "us", &t, &p);
  row("50 us task: overhead", spin_overhead, 1e3, "us", &t, &p);
  row("map of 50 us items: wall", map_time, 1e6, "ms", &t, &p);
  struct summary s, unused;
  row("the same, one by one", sequential_time, 1e6, "ms", &s, &unused);
  printf("%-30s %9.2fx%33s %9.2fx\n", "map speedup over one by one",
         s.median / t.median, "", s.median / p.median);

  double detect[64], restart[64];
  for (size_t r = 0; r < opt_reps; r++) {
    detect[r] = crash_once(&restart[r]) / 1e3;
    restart[r] /= 1e3;
  }
  struct summary d = summarise(detect, opt_reps);
  struct summary rs = summarise(restart, opt_reps);
  printf("%-30s %-31s %9.2f us  (%7.2f-%7.2f)\n", "crash: detected",
         "(kills the program)", d.median, d.min, d.max);
  printf("%-30s %-31s %9.2f us  (%7.2f-%7.2f)\n",
         "crash: replacement ran a task", "", rs.median, rs.min, rs.max);
  return 0;
}
