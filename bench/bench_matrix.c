/*
 * bench_matrix.c - W1 (empty fire-and-forget tasks) for P producer threads
 * and W workers, P and W in {1, 2, 4, 8} (--max: powers of two up to 64):
 * what happens to crew's one lock, and to the peers', as threads are added
 * (on a small machine, past the core count: oversubscribed).
 *
 *   bench/bench_matrix [--tasks N] [--reps N] [--max N] [--json]
 *
 * Each producer submits N/P empty tasks; the timed part ends when the pool
 * has run all of them and its workers are gone (crew: crew_pool_shutdown
 * with CREW_DRAIN; the textbook pool of bench/bench.c: tb_destroy; libuv:
 * uv_run to the end). Pools are made before the timing. A cell: the median
 * of --reps runs (default 5) after a warm-up of N/10, the implementations
 * taking turns; M tasks/s, and the voluntary plus involuntary context
 * switches of the whole process per task (getrusage), a proxy for the
 * futex sleeps and wake-ups a task costs.
 *
 * libuv only for P = 1: uv_queue_work must be called on the loop's thread,
 * so the loop thread is the one producer. Its thread pool is sized once
 * per process (UV_THREADPOOL_SIZE, read at the first uv_queue_work), so
 * each libuv run is a fork()ed child that sets it, warms up and reports.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "bench.h"

#include <crew.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_LIBUV
#include <uv.h>
#endif

enum impl { CREW, TEXTBOOK, LIBUV, NIMPL };
static const char *const impl_name[NIMPL] = {"crew", "textbook", "libuv"};
#define MAX_THREADS 64
#define MAX_REPS    32

struct run {
  double seconds, switches;
};

static void die(const char *what)
{
  fprintf(stderr, "bench_matrix: %s\n", what);
  exit(1);
}

/* Context switches of the whole process so far. */
static double switches(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_nvcsw + (double)ru.ru_nivcsw;
}

static int crew_nothing(const void *in, void *out)
{
  (void)in;
  (void)out;
  return 0;
}

static void tb_nothing(void *arg)
{
  (void)arg;
}

/* --------------------------------------------- crew and the textbook pool */

struct producers {
  enum impl impl;
  crew_pool *pool;
  struct tb_pool *tb;
  size_t per_producer;
  pthread_barrier_t go;
};

static void *produce(void *arg)
{
  struct producers *c = arg;
  pthread_barrier_wait(&c->go);
  for (size_t i = 0; i < c->per_producer; i++)
    if (c->impl == TEXTBOOK)
      tb_submit(c->tb, tb_nothing, NULL);
    else if (crew_submit(c->pool, crew_nothing, NULL, 0, 0, NULL) != 0)
      die("crew_submit failed");
  return NULL;
}

/* One run of crew or the textbook pool: P producers of n/P tasks each. */
static struct run run_threads(enum impl impl, size_t p, size_t w, size_t n)
{
  struct producers c = {.impl = impl, .per_producer = n / p};
  if (impl == CREW) {
    crew_config cfg;
    crew_config_init(&cfg);
    cfg.workers = w;
    if (crew_pool_create(&c.pool, &cfg) != 0)
      die("crew_pool_create failed");
  } else {
    c.tb = tb_create(w, 1024);
  }
  pthread_barrier_init(&c.go, NULL, (unsigned)p + 1);
  pthread_t th[MAX_THREADS];
  for (size_t i = 0; i < p; i++)
    if (pthread_create(&th[i], NULL, produce, &c) != 0)
      die("pthread_create failed");
  double sw0 = switches();
  pthread_barrier_wait(&c.go);
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < p; i++)
    pthread_join(th[i], NULL);
  if (impl == CREW) {
    if (crew_pool_shutdown(c.pool, CREW_DRAIN) != 0)
      die("crew_pool_shutdown failed");
  } else {
    tb_destroy(c.tb);
  }
  struct run r = {(double)(now_ns() - t0) / 1e9, switches() - sw0};
  if (impl == CREW) {
    crew_stats st;
    if (crew_pool_stats(c.pool, &st) != 0 || st.completed != n / p * p)
      die("crew: tasks lost");
    crew_pool_destroy(c.pool);
  }
  pthread_barrier_destroy(&c.go);
  return r;
}

/* ------------------------------------------------------------------ libuv */

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

/* One loop of n requests (allocated and touched before the timing). */
static struct run uv_batch(uv_work_t *reqs, size_t n)
{
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0)
    die("uv_loop_init failed");
  memset(reqs, 0, n * sizeof *reqs);
  uv_done = 0;
  double sw0 = switches();
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++)
    if (uv_queue_work(&loop, &reqs[i], uv_nothing, uv_count) != 0)
      die("uv_queue_work failed");
  uv_run(&loop, UV_RUN_DEFAULT);
  struct run r = {(double)(now_ns() - t0) / 1e9, switches() - sw0};
  if (uv_done != n)
    die("libuv: tasks lost");
  uv_loop_close(&loop);
  return r;
}

/* A child with a pool of w threads: a warm-up, then one run. */
static struct run run_libuv(size_t w, size_t n)
{
  int fd[2];
  if (pipe(fd) != 0)
    die("pipe failed");
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    die("fork failed");
  if (pid == 0) {
    char size[16];
    snprintf(size, sizeof size, "%zu", w);
    setenv("UV_THREADPOOL_SIZE", size, 1);
    uv_work_t *reqs = malloc(n * sizeof *reqs);
    if (reqs == NULL)
      die("out of memory");
    uv_batch(reqs, n / 10 + 1);
    struct run r = uv_batch(reqs, n);
    _exit(write(fd[1], &r, sizeof r) == (ssize_t)sizeof r ? 0 : 1);
  }
  close(fd[1]);
  struct run r;
  ssize_t got = read(fd[0], &r, sizeof r);
  close(fd[0]);
  int status;
  waitpid(pid, &status, 0);
  if (got != (ssize_t)sizeof r || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0)
    die("libuv child failed");
  return r;
}
#endif

static bool available(enum impl impl, size_t p)
{
#ifdef HAVE_LIBUV
  return impl != LIBUV || p == 1;
#else
  return impl != LIBUV && p > 0;
#endif
}

static struct run run_one(enum impl impl, size_t p, size_t w, size_t n)
{
#ifdef HAVE_LIBUV
  if (impl == LIBUV)
    return run_libuv(w, n);
#endif
  return run_threads(impl, p, w, n);
}

/* ------------------------------------------------------------------- main */

static double load_average(void)
{
  double a = -1;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f != NULL) {
    if (fscanf(f, "%lf", &a) != 1)
      a = -1;
    fclose(f);
  }
  return a;
}

int main(int argc, char **argv)
{
  size_t n = 1000000, reps = 5, max = 8;
  bool json = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--tasks") == 0 && i + 1 < argc)
      n = strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
      reps = strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--max") == 0 && i + 1 < argc)
      max = strtoul(argv[++i], NULL, 10);
    else if (strcmp(argv[i], "--json") == 0)
      json = true;
    else {
      fprintf(stderr,
              "usage: bench_matrix [--tasks N] [--reps N] [--max N] [--json]\n"
              "  --tasks N  tasks per run, all producers together "
              "(default 1000000)\n"
              "  --reps N   runs per cell after a warm-up (default "
              "5, at most 32)\n"
              "  --max N    P and W from 1 to N by powers of two "
              "(default 8, at most 64)\n"
              "  --json     one JSON object on stdout, the table on "
              "stderr\n");
      return strcmp(argv[i], "--help") == 0 ? 0 : 2;
    }
  }
  if (n < 10 * MAX_THREADS || reps < 1 || reps > MAX_REPS || max < 1 ||
      max > MAX_THREADS || (max & (max - 1)) != 0)
    die("--tasks at least 640, --reps 1..32, --max a power of two to 64");
  FILE *tbl = json ? stderr : stdout;
  fprintf(tbl,
          "W1 matrix: %zu empty fire-and-forget tasks per run from P "
          "producers to W workers; median of %zu runs after a warm-up; "
          "%ld cores online, load average %.2f at the start\n",
          n, reps, sysconf(_SC_NPROCESSORS_ONLN), load_average());
  fprintf(tbl,
          "%2s %2s | M tasks/s: crew, textbook, libuv | switches per "
          "task: crew, textbook, libuv\n",
          "P", "W");
  if (json)
    printf("{\"tasks\": %zu, \"reps\": %zu, \"cells\": [", n, reps);
  bool first = true;
  for (size_t p = 1; p <= max; p *= 2)
    for (size_t w = 1; w <= max; w *= 2) {
      static double rate[NIMPL][MAX_REPS], sw[NIMPL][MAX_REPS];
      for (int k = 0; k < NIMPL; k++)
        if (available((enum impl)k, p) && k != LIBUV) /* libuv's own */
          run_one((enum impl)k, p, w, n / 10);
      for (size_t r = 0; r < reps; r++)
        for (int j = 0; j < NIMPL; j++) {
          enum impl k = (enum impl)((j + r) % NIMPL);
          if (!available(k, p))
            continue;
          struct run one = run_one(k, p, w, n);
          size_t done = k == LIBUV ? n : n / p * p;
          rate[k][r] = (double)done / one.seconds / 1e6;
          sw[k][r] = one.switches / (double)done;
        }
      struct summary s[NIMPL], c[NIMPL];
      for (int k = 0; k < NIMPL; k++)
        if (available((enum impl)k, p)) {
          s[k] = summarise(rate[k], reps);
          c[k] = summarise(sw[k], reps);
        }
      fprintf(tbl, "%2zu %2zu |", p, w);
      for (int k = 0; k < 2 * NIMPL; k++)
        if (available((enum impl)(k % NIMPL), p))
          fprintf(tbl, k < NIMPL ? " %8.2f" : " %8.4f",
                  k < NIMPL ? s[k].median : c[k - NIMPL].median);
        else
          fprintf(tbl, " %8s", "-");
      fprintf(tbl, "\n");
      fflush(tbl);
      for (int k = 0; json && k < NIMPL; k++) {
        if (!available((enum impl)k, p))
          continue;
        printf("%s\n {\"impl\": \"%s\", \"producers\": %zu, \"workers\": "
               "%zu, \"mtasks_per_s\": %.4g, \"min\": %.4g, \"max\": %.4g, "
               "\"switches_per_task\": %.4g}",
               first ? "" : ",", impl_name[k], p, w, s[k].median, s[k].min,
               s[k].max, c[k].median);
        first = false;
      }
    }
  fprintf(tbl, "load average %.2f at the end\n", load_average());
  if (json)
    printf("]}\n");
  return 0;
}
