/*
 * bench_imap - crew_imap against crew_map over the same long input: how
 * fast, and how much memory.
 *
 *   bench/bench_imap [--quick] [--n N] [--window W] [--workers N] [--reps N]
 *
 * N small items (int in, int out: out = 3 * in + 1) on a thread pool of
 * --workers (default 2):
 *  - imap: crew_imap, its next() counting up to N and its sink() checking
 *    and summing the results, --window (default 64) in flight;
 *  - imap unordered: the same with CREW_UNORDERED;
 *  - map: crew_map over an input array of N ints it first fills, into an
 *    output array of N ints, then the same sum.
 * Each run is a child process of its own (fork), so each has its own peak
 * resident memory (getrusage's ru_maxrss, which counts the pool, the arrays
 * and everything the child touched). Throughput is N over the time of the
 * crew_imap or crew_map call alone (filling map's array is not counted).
 * Every row runs --reps times (default 5); it prints the median and the
 * min-max. The machine is small and shared: read ratios, and repeat.
 */
#include "bench.h"

#include <crew.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static size_t opt_n = 1000000, opt_window = 64, opt_workers = 2, opt_reps = 5;

static int affine(const void *in, void *out)
{
  *(int *)out = 3 * *(const int *)in + 1;
  return 0;
}

/* The expected sum of 3i + 1 over i < n. */
static uint64_t expected_sum(size_t n)
{
  return 3 * (uint64_t)n * (n - 1) / 2 + n;
}

struct feed {
  size_t given, n;
  uint64_t sum;
};

static int next_int(void *arg, void *in)
{
  struct feed *f = arg;
  if (f->given == f->n)
    return 0;
  *(int *)in = (int)f->given++;
  return 1;
}

static int sink_int(void *arg, size_t index, int status, const void *out)
{
  struct feed *f = arg;
  (void)index;
  f->sum += (uint64_t) * (const int *)out;
  return status;
}

enum way { IMAP, IMAP_UNORDERED, MAP, NWAYS };
static const char *const way_names[NWAYS] = {"imap", "imap unordered", "map"};

/* One run, in this (child) process: the call's time in ns; 0 on failure. */
static uint64_t run_once(crew_pool *pool, enum way way)
{
  size_t n = opt_n;
  uint64_t t0 = 0, t1 = 0, sum = 0;
  if (way == MAP) {
    int *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
    if (in == NULL || out == NULL)
      return 0;
    for (size_t i = 0; i < n; i++)
      in[i] = (int)i;
    t0 = now_ns();
    int rc = crew_map(pool, affine, in, sizeof *in, out, sizeof *out, n);
    t1 = now_ns();
    for (size_t i = 0; i < n && rc == 0; i++)
      sum += (uint64_t)out[i];
    free(in);
    free(out);
    if (rc != 0)
      return 0;
  } else {
    struct feed f = {.n = n};
    t0 = now_ns();
    int rc =
        crew_imap(pool, affine, sizeof(int), sizeof(int), opt_window,
                  way == IMAP ? 0 : CREW_UNORDERED, next_int, sink_int, &f);
    t1 = now_ns();
    if (rc != 0)
      return 0;
    sum = f.sum;
  }
  return sum == expected_sum(n) ? t1 - t0 : 0;
}

struct result {
  uint64_t ns;     /* 0: failed */
  long maxrss_kib; /* the child's peak resident memory */
};

/* Fork a child for one run of `way`; what it measured. */
static struct result measure(enum way way)
{
  struct result r = {0, 0};
  int fds[2];
  if (pipe(fds) != 0)
    return r;
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    crew_config cfg;
    crew_config_init(&cfg);
    cfg.workers = opt_workers;
    crew_pool *pool;
    if (crew_pool_create(&pool, &cfg) == 0) {
      r.ns = run_once(pool, way);
      crew_pool_destroy(pool);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    r.maxrss_kib = ru.ru_maxrss;
    ssize_t w = write(fds[1], &r, sizeof r);
    _exit(w == (ssize_t)sizeof r ? 0 : 1);
  }
  close(fds[1]);
  if (pid > 0) {
    if (read(fds[0], &r, sizeof r) != (ssize_t)sizeof r)
      r = (struct result){0, 0};
    waitpid(pid, NULL, 0);
  }
  close(fds[0]);
  return r;
}

static void row(enum way way)
{
  double mops[64], mib[64];
  for (size_t k = 0; k < opt_reps; k++) {
    struct result r = measure(way);
    if (r.ns == 0) {
      fprintf(stderr, "bench_imap: %s failed\n", way_names[way]);
      exit(1);
    }
    mops[k] = (double)opt_n / ((double)r.ns / 1e3); /* items per us: M/s */
    mib[k] = (double)r.maxrss_kib / 1024.0;
  }
  struct summary t = summarise(mops, opt_reps);
  struct summary m = summarise(mib, opt_reps);
  printf("%-16s %8.2f M/s (%6.2f-%6.2f)  %8.1f MiB (%6.1f-%6.1f)\n",
         way_names[way], t.median, t.min, t.max, m.median, m.min, m.max);
}

int main(int argc, char **argv)
{
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      opt_n = 100000;
      opt_reps = 3;
    } else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc) {
      opt_n = strtoul(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--window") == 0 && i + 1 < argc) {
      opt_window = strtoul(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
      opt_workers = strtoul(argv[++i], NULL, 10);
    } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      opt_reps = strtoul(argv[++i], NULL, 10);
    } else {
      fprintf(stderr,
              "usage: %s [--quick] [--n N] [--window W] [--workers N] "
              "[--reps N]\n",
              argv[0]);
      return 2;
    }
  }
  if (opt_reps < 1 || opt_reps > 64 || opt_workers < 1 || opt_n < 1 ||
      opt_n > INT32_MAX) {
    fprintf(stderr, "bench_imap: reps 1..64, workers >= 1, n 1..2^31-1\n");
    return 2;
  }
  printf("crew %s: %zu items int -> int, %zu thread workers, window %zu; "
         "median of %zu (min-max), each run a child process of its own\n",
         crew_version(), opt_n, opt_workers, opt_window, opt_reps);
  printf("%-16s %-27s %s\n", "call", "throughput", "peak resident memory");
  for (enum way w = IMAP; w < NWAYS; w++)
    row(w);
  return 0;
}
