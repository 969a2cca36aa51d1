/*
 * suite_workloads.c - bench_suite's workloads, W1 to W6 and ALLOC (see
 * suite.c for what each measures): crew's side of each, the workload that
 * runs its variants and reports them, and what they share (W3's items, W4's
 * percentiles and idle CPU). The peers' sides are in suite_peers.c.
 */
#include "suite.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ crew basics */

const int mode_threads = CREW_THREADS;
const int mode_processes = CREW_PROCESSES;

crew_pool *crew_start(int mode, size_t workers)
{
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.mode = mode;
  cfg.workers = workers;
  if (no_idle_spin)
    cfg.idle_spin_ns = CREW_IDLE_SPIN_OFF;
  crew_pool *pool;
  check("crew_pool_create", crew_pool_create(&pool, &cfg));
  return pool;
}

int crew_nothing(const void *in, void *out)
{
  (void)in;
  (void)out;
  return 0;
}

int crew_square(const void *in, void *out)
{
  long x;
  memcpy(&x, in, sizeof x);
  x *= x;
  memcpy(out, &x, sizeof x);
  return 0;
}

/* The sum of i*i for i < n (at most 2*10^6: n(n-1)(2n-1) fits 64 bits). */
long squares_sum(size_t n)
{
  if (n > 2000000) {
    fprintf(stderr, "bench_suite: at most 2000000 tasks with results\n");
    exit(2);
  }
  unsigned long long m = n; /* n >= 1 */
  return (long)((m - 1) * m * (2 * m - 1) / 6);
}

/* ------------------------------------------------------------------- W1 */

/* arg: the crew mode. Pool creation is outside the timed part; shutdown
 * (which waits for every task) inside. */
double w1_crew(size_t n, const void *arg)
{
  crew_pool *pool = crew_start(*(const int *)arg, opt_workers);
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++) {
    int rc = crew_submit(pool, crew_nothing, NULL, 0, 0, NULL);
    if (rc != 0)
      fail("crew_submit", rc);
  }
  check("crew_pool_shutdown", crew_pool_shutdown(pool, CREW_DRAIN));
  double s = seconds_since(t0);
  crew_stats st;
  check("crew_pool_stats", crew_pool_stats(pool, &st));
  expect(st.completed == n, "W1 crew: tasks completed");
  crew_pool_destroy(pool);
  return s;
}

void workload_w1(void)
{
  struct variant v[MAX_VARIANTS];
  size_t nv = 0;
  v[nv++] = (struct variant){"textbook pool (mutex+condvar)", w1_textbook, NULL,
                             NULL};
  v[nv++] = (struct variant){"crew (threads)", w1_crew, &mode_threads, NULL};
#ifdef HAVE_GLIB
  v[nv++] = (struct variant){"GLib GThreadPool", w1_glib, NULL,
                             "exclusive, max 2 threads"};
#endif
#ifdef HAVE_LIBUV
  v[nv++] = (struct variant){"libuv uv_queue_work", w1_libuv, NULL,
                             "UV_THREADPOOL_SIZE=workers; loop run to end"};
#endif
#ifdef HAVE_OPENMP
  v[nv++] = (struct variant){"OpenMP tasks", w1_openmp, NULL,
                             "producer runs tasks itself past 64/thread"};
#endif
  char title[160];
  snprintf(title, sizeof title,
           "empty-task throughput: %zu no-op fire-and-forget tasks, one "
           "producer, %zu workers, then wait for all [M tasks/s]",
           n_w1, opt_workers);
  run_group("W1", title, RATE, n_w1, n_w1 / 10, v, nv, 0);
#ifdef HAVE_OPENMP
  note("libgomp (GCC's OpenMP) runs a new task at once in the producing "
       "thread while more than 64 per thread are queued: much of its W1 and "
       "W2 never crosses threads");
#endif
}

/* ------------------------------------------------------------------- W2 */

double w2_crew(size_t n, const void *arg)
{
  crew_pool *pool = crew_start(*(const int *)arg, opt_workers);
  crew_future **fs = scratch(n * sizeof *fs);
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++) {
    long x = (long)i;
    int rc = crew_submit(pool, crew_square, &x, sizeof x, sizeof x, &fs[i]);
    if (rc != 0)
      fail("crew_submit", rc);
  }
  long sum = 0;
  for (size_t i = 0; i < n; i++) {
    long r = 0;
    int rc = crew_future_get(fs[i], &r, sizeof r);
    if (rc != 0)
      fail("crew_future_get", rc);
    sum += r;
    crew_future_release(fs[i]);
  }
  double s = seconds_since(t0);
  crew_pool_destroy(pool);
  expect(sum == squares_sum(n), "W2 crew: sum");
  return s;
}

void workload_w2(void)
{
  struct variant v[MAX_VARIANTS];
  size_t nv = 0;
  v[nv++] = (struct variant){"textbook pool + mutex/condvar future",
                             w2_textbook, NULL, "malloc'd future per task"};
  v[nv++] =
      (struct variant){"crew (threads) futures", w2_crew, &mode_threads, NULL};
#ifdef HAVE_GLIB
  v[nv++] = (struct variant){"GLib GThreadPool + emulated future", w2_glib,
                             NULL, "no futures: textbook future per task"};
#endif
#ifdef HAVE_LIBUV
  v[nv++] = (struct variant){"libuv, result in the request", w2_libuv, NULL,
                             "no futures: summed in after-work callbacks"};
#endif
#ifdef HAVE_OPENMP
  v[nv++] =
      (struct variant){"OpenMP tasks, result in an array", w2_openmp, NULL,
                       "no futures; runs tasks itself past 64/thread"};
#endif
  char title[160];
  snprintf(title, sizeof title,
           "tasks with results: %zu tasks returning x*x, all kept, then "
           "summed, %zu workers [M tasks/s]",
           n_w2, opt_workers);
  run_group("W2", title, RATE, n_w2, n_w2 / 10, v, nv, 0);
  note("GLib, libuv and OpenMP have no futures: GLib gets the textbook "
       "future (malloc + mutex + condvar) per task, libuv keeps the result in "
       "its request, OpenMP in an array");
}

/* ------------------------------------------------------------------- W3 */

/* ~50 us of pure computation: a xorshift chain, calibrated at start. */
uint64_t burn(uint64_t iters, uint64_t seed)
{
  uint64_t x = seed | 1;
  for (uint64_t i = 0; i < iters; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  return x;
}

uint64_t burn_iters; /* per ~50 us */

void calibrate(void)
{
  uint64_t probe = 200000, best = UINT64_MAX;
  volatile uint64_t sink = 0;
  for (int i = 0; i < 7; i++) {
    uint64_t t0 = now_ns();
    sink += burn(probe, (uint64_t)i);
    uint64_t t = now_ns() - t0;
    if (t < best)
      best = t;
  }
  (void)sink;
  burn_iters = probe * 50000 / (best > 0 ? best : 1);
  if (burn_iters == 0)
    burn_iters = 1;
}

struct w3_in *w3_ins;
uint64_t *w3_outs;
static uint64_t *w3_ref; /* what each item must give, computed once */

bool w3_right(size_t n)
{
  return memcmp(w3_outs, w3_ref, n * sizeof *w3_outs) == 0;
}

void w3_reset(size_t n)
{
  memset(w3_outs, 0, n * sizeof *w3_outs);
}

static int w3_item(const void *in, void *out)
{
  struct w3_in a;
  memcpy(&a, in, sizeof a);
  uint64_t r = burn(a.iters, a.seed);
  memcpy(out, &r, sizeof r);
  return 0;
}

static double w3_sequential(size_t n, const void *arg)
{
  (void)arg;
  w3_reset(n);
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++)
    w3_outs[i] = burn(w3_ins[i].iters, w3_ins[i].seed);
  double s = seconds_since(t0);
  expect(w3_right(n), "W3 sequential: outputs");
  return s;
}

static double w3_crew(size_t n, const void *arg)
{
  crew_pool *pool = crew_start(*(const int *)arg, opt_workers);
  w3_reset(n);
  uint64_t t0 = now_ns();
  check("crew_map", crew_map(pool, w3_item, w3_ins, sizeof *w3_ins, w3_outs,
                             sizeof *w3_outs, n));
  double s = seconds_since(t0);
  crew_pool_destroy(pool);
  expect(w3_right(n), "W3 crew: outputs");
  return s;
}

void workload_w3(void)
{
  size_t n = n_w3;
  w3_ins = xmalloc(n * sizeof *w3_ins);
  w3_outs = xmalloc(n * sizeof *w3_outs);
  w3_ref = xmalloc(n * sizeof *w3_ref);
  for (size_t i = 0; i < n; i++) {
    w3_ins[i] = (struct w3_in){burn_iters, i};
    w3_ref[i] = burn(burn_iters, i);
  }
  struct variant v[MAX_VARIANTS];
  size_t nv = 0;
  v[nv++] =
      (struct variant){"sequential (this thread)", w3_sequential, NULL, NULL};
  v[nv++] =
      (struct variant){"crew_map (threads)", w3_crew, &mode_threads, NULL};
  v[nv++] =
      (struct variant){"crew_map (processes)", w3_crew, &mode_processes, NULL};
#ifdef HAVE_OPENMP
  v[nv++] = (struct variant){"OpenMP parallel for schedule(dynamic)", w3_openmp,
                             NULL, NULL};
#endif
#ifdef HAVE_GLIB
  v[nv++] = (struct variant){"GLib GThreadPool, one push per item", w3_glib,
                             NULL, NULL};
#endif
  v[nv++] = (struct variant){"textbook pool, one task per item", w3_textbook,
                             NULL, "1024-slot queue"};
  char title[200];
  snprintf(title, sizeof title,
           "CPU-bound map: %zu items of ~50 us (%llu xorshift rounds "
           "each), %zu workers [wall ms; ratio = speedup]",
           n, (unsigned long long)burn_iters, opt_workers);
  run_group("W3", title, WALL, n, n / 10, v, nv, 0);
  free(w3_ins);
  free(w3_outs);
  free(w3_ref);
  w3_ref = NULL;
  w3_ins = NULL;
  w3_outs = NULL;
}

/* ------------------------------------------------------------------- W4 */

static int w4_task(const void *in, void *out)
{
  (void)in;
  uint64_t t = now_ns();
  memcpy(out, &t, sizeof t);
  return 0;
}

static void w4_crew(size_t rounds, const void *arg, uint64_t *start,
                    uint64_t *result)
{
  crew_pool *pool = crew_start(*(const int *)arg, opt_workers);
  for (size_t i = 0; i < rounds; i++) {
    spin_until(now_ns() + W4_IDLE_NS);
    crew_future *f;
    uint64_t t0 = now_ns();
    check("crew_submit", crew_submit(pool, w4_task, NULL, 0, sizeof t0, &f));
    uint64_t started = 0;
    check("crew_future_get", crew_future_get(f, &started, sizeof started));
    uint64_t t1 = now_ns();
    crew_future_release(f);
    start[i] = started - t0;
    result[i] = t1 - t0;
  }
  crew_pool_destroy(pool);
}

static int compare_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

/* Nearest-rank percentile q (0..1) of n sorted values, in us. */
static double percentile_us(const uint64_t *v, size_t n, double q)
{
  size_t k = (size_t)(q * (double)n + 0.999999);
  if (k < 1)
    k = 1;
  if (k > n)
    k = n;
  return (double)v[k - 1] / 1e3;
}

struct lat_variant {
  const char *name;
  lat_fn run;
  const void *arg;
  const char *note;
};

/* CPU the process burns (all threads but this sleeping one) while a pool
 * sits idle for idle_s seconds just after a burst of work; % of one core. */
static double idle_cpu_percent(bool with_pool)
{
  crew_pool *pool = NULL;
  if (with_pool) {
    pool = crew_start(CREW_THREADS, opt_workers);
    crew_future *f = NULL;
    for (int i = 0; i < 1000; i++) {
      check("crew_submit", crew_submit(pool, crew_nothing, NULL, 0, 0, &f));
      if (i < 999)
        crew_future_release(f);
    }
    crew_future_wait(f);
    crew_future_release(f);
  }
  uint64_t c0 = process_cpu_ns(), t0 = now_ns();
  struct timespec ts = {(time_t)idle_s, 0};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
  uint64_t c1 = process_cpu_ns(), t1 = now_ns();
  crew_pool_destroy(pool);
  return 100.0 * (double)(c1 - c0) / (double)(t1 - t0);
}

void workload_w4(void)
{
  size_t n = n_w4;
  struct lat_variant v[MAX_VARIANTS];
  size_t nv = 0;
  v[nv++] =
      (struct lat_variant){"textbook pool + future", w4_textbook, NULL, NULL};
  v[nv++] =
      (struct lat_variant){"crew (threads)", w4_crew, &mode_threads, NULL};
  v[nv++] =
      (struct lat_variant){"crew (processes)", w4_crew, &mode_processes, NULL};
#ifdef HAVE_GLIB
  v[nv++] = (struct lat_variant){"GLib GThreadPool + GAsyncQueue", w4_glib,
                                 NULL, "result via a GAsyncQueue"};
#endif
#ifdef HAVE_LIBUV
  v[nv++] = (struct lat_variant){"libuv uv_queue_work + uv_run", w4_libuv, NULL,
                                 "loop thread submits, waits in uv_run"};
#endif
  fprintf(tbl,
          "\nW4 wake-up latency: one task at a time into an idle pool, "
          "%d us of idle (spinning in the submitter) between, %zu times, "
          "%zu workers [us]\n",
          W4_IDLE_NS / 1000, n, opt_workers);
  fflush(tbl);
  uint64_t *start = xmalloc(n * sizeof *start);
  uint64_t *result = xmalloc(n * sizeof *result);
  static double p[MAX_VARIANTS][6][MAX_REPS];
  for (size_t i = 0; i < nv; i++)
    v[i].run(n / 10, v[i].arg, start, result);
  for (size_t r = 0; r < opt_reps; r++)
    for (size_t k = 0; k < nv; k++) {
      size_t i = (k + r) % nv;
      v[i].run(n, v[i].arg, start, result);
      qsort(start, n, sizeof *start, compare_u64);
      qsort(result, n, sizeof *result, compare_u64);
      const double q[3] = {0.50, 0.99, 0.999};
      for (int j = 0; j < 3; j++) {
        p[i][j][r] = percentile_us(start, n, q[j]);
        p[i][3 + j][r] = percentile_us(result, n, q[j]);
      }
    }
  fprintf(tbl,
          "  ratio: how many times faster than \"%s\" (median p50 "
          "submit->start)\n",
          v[0].name);
  fprintf(tbl, "  %-32s %-38s   %-38s\n", "", "submit->start",
          "submit->result");
  fprintf(tbl, "  %-32s %7s %-15s %7s %7s   %7s %-15s %7s %7s %7s\n", "", "p50",
          "(min - max)", "p99", "p99.9", "p50", "(min - max)", "p99", "p99.9",
          "ratio");
  double base_p50 = 0;
  for (size_t i = 0; i < nv; i++) {
    struct summary s[6];
    for (int j = 0; j < 6; j++)
      s[j] = summarise(p[i][j], opt_reps);
    if (i == 0)
      base_p50 = s[0].median;
    struct row *row = add_row();
    row->group = "W4";
    snprintf(row->name, sizeof row->name, "%s", v[i].name);
    row->unit = "us";
    row->n = n;
    row->median = s[0].median;
    row->min = s[0].min;
    row->max = s[0].max;
    row->baseline = v[0].name;
    row->ratio = base_p50 / s[0].median;
    row->note = i == 0 ? "(baseline)" : v[i].note;
    row->latency = true;
    for (int j = 0; j < 6; j++)
      row->lat[j] = s[j].median;
    row->lat_min = s[3].min;
    row->lat_max = s[3].max;
    fprintf(tbl,
            "  %-32s %7.2f (%6.2f-%6.2f) %7.1f %7.1f   %7.2f (%6.2f-%6.2f) "
            "%7.1f %7.1f %6.2fx  %s\n",
            row->name, s[0].median, s[0].min, s[0].max, s[1].median,
            s[2].median, s[3].median, s[3].min, s[3].max, s[4].median,
            s[5].median, row->ratio, row->note != NULL ? row->note : "");
  }
  free(start);
  free(result);

  fprintf(tbl,
          "  idle CPU: process CPU time over %u s of idle, as %% of one core "
          "(this thread sleeps)\n",
          idle_s);
  fflush(tbl);
  const char *names[2] = {"no pool (the floor)",
                          "crew (threads), idle after work"};
  for (int i = 0; i < 2; i++) {
    double pct = idle_cpu_percent(i == 1);
    struct row *row = add_row();
    row->group = "W4-idle";
    snprintf(row->name, sizeof row->name, "%s", names[i]);
    row->unit = "% core";
    row->n = idle_s;
    row->median = row->min = row->max = pct;
    row->note = "measured once";
    fprintf(tbl, "  %-40s %10.3f %% of a core\n", row->name, pct);
  }
  fflush(tbl);
}

/* ------------------------------------------------------------------- W5 */

static void *q_producer(void *arg)
{
  struct q_ctx *c = arg;
  const struct q_arg *a = c->a;
  size_t n = c->per_producer;
  pthread_barrier_wait(&c->go);
  if (a->impl == Q_CREW && !a->batch) {
    for (size_t i = 1; i <= n; i++) {
      uintptr_t item = i;
      int rc = crew_queue_push(c->cq, &item);
      if (rc != 0)
        fail("crew_queue_push", rc);
    }
  } else if (a->impl == Q_CREW) {
    uintptr_t buf[Q_BATCH];
    for (size_t i = 1; i <= n;) {
      size_t k = 0;
      while (k < Q_BATCH && i <= n)
        buf[k++] = i++;
      size_t pushed = 0;
      check("crew_queue_push_many",
            crew_queue_push_many(c->cq, buf, k, &pushed, CREW_FOREVER));
      expect(pushed == k, "W5 crew: pushed");
    }
  } else {
    w5_peer_produce(c, n);
  }
  return NULL;
}

static void *q_consumer(void *arg)
{
  struct q_ctx *c = arg;
  const struct q_arg *a = c->a;
  uint64_t count = 0, sum = 0;
  pthread_barrier_wait(&c->go);
  if (a->impl == Q_CREW && !a->batch) {
    uintptr_t item;
    int rc;
    while ((rc = crew_queue_pop(c->cq, &item)) == 0) {
      count++;
      sum += item;
    }
    if (rc != CREW_ECLOSED)
      fail("crew_queue_pop", rc);
  } else if (a->impl == Q_CREW) {
    uintptr_t buf[Q_BATCH];
    size_t got;
    int rc;
    while ((rc = crew_queue_pop_many(c->cq, buf, Q_BATCH, &got,
                                     CREW_FOREVER)) == 0) {
      count += got;
      for (size_t k = 0; k < got; k++)
        sum += buf[k];
    }
    if (rc != CREW_ECLOSED)
      fail("crew_queue_pop_many", rc);
  } else {
    w5_peer_consume(c, &count, &sum);
  }
  atomic_fetch_add(&c->popped, count);
  atomic_fetch_add(&c->sum, sum);
  return NULL;
}

static double w5_run(size_t n, const void *arg)
{
  const struct q_arg *a = arg;
  struct q_ctx c;
  memset(&c, 0, sizeof c);
  c.a = a;
  c.per_producer = n / (size_t)a->producers;
  if (a->impl == Q_CREW)
    check("crew_queue_create",
          crew_queue_create(&c.cq, Q_CAPACITY, sizeof(uintptr_t), 0));
  else
    w5_peer_open(&c);
  int nt = a->producers + a->consumers;
  pthread_t th[16];
  pthread_barrier_init(&c.go, NULL, (unsigned)nt + 1);
  for (int i = 0; i < nt; i++)
    if (pthread_create(&th[i], NULL, i < a->producers ? q_producer : q_consumer,
                       &c) != 0)
      fail("pthread_create", CREW_ENOMEM);
  pthread_barrier_wait(&c.go);
  uint64_t t0 = now_ns();
  for (int i = 0; i < a->producers; i++)
    pthread_join(th[i], NULL);
  if (a->impl == Q_CREW)
    crew_queue_close(c.cq);
  else
    w5_peer_close(&c);
  for (int i = a->producers; i < nt; i++)
    pthread_join(th[i], NULL);
  double s = seconds_since(t0);
  pthread_barrier_destroy(&c.go);
  uint64_t per = c.per_producer;
  expect(atomic_load(&c.popped) == per * (uint64_t)a->producers,
         "W5: items popped");
  expect(atomic_load(&c.sum) == per * (per + 1) / 2 * (uint64_t)a->producers,
         "W5: sum of items");
  if (a->impl == Q_CREW)
    crew_queue_destroy(c.cq);
  else
    w5_peer_free(&c);
  return s;
}

void workload_w5(void)
{
  static struct q_arg args[2][5];
  for (int pc = 1; pc <= 2; pc++) {
    struct q_arg *a = args[pc - 1];
    struct variant v[MAX_VARIANTS];
    size_t nv = 0;
    a[0] = (struct q_arg){Q_TEXTBOOK, pc, pc, false};
    v[nv++] =
        (struct variant){"textbook queue, single calls", w5_run, &a[0], NULL};
    a[1] = (struct q_arg){Q_CREW, pc, pc, false};
    v[nv++] = (struct variant){"crew_queue, push/pop", w5_run, &a[1], NULL};
    a[2] = (struct q_arg){Q_CREW, pc, pc, true};
    v[nv++] = (struct variant){"crew_queue, push_many/pop_many 64", w5_run,
                               &a[2], NULL};
#ifdef HAVE_GLIB
    a[3] = (struct q_arg){Q_GLIB, pc, pc, false};
    v[nv++] = (struct variant){"GLib GAsyncQueue, push/pop", w5_run, &a[3],
                               "unbounded"};
    a[4] = (struct q_arg){Q_GLIB, pc, pc, true};
    v[nv++] = (struct variant){"GLib GAsyncQueue, 64 per lock", w5_run, &a[4],
                               "unbounded; _unlocked calls"};
#endif
    char title[200];
    snprintf(title, sizeof title,
             "queue throughput, %d producer%s/%d consumer%s: %zu "
             "pointer-sized items, capacity %d [M items/s]",
             pc, pc > 1 ? "s" : "", pc, pc > 1 ? "s" : "", n_w5, Q_CAPACITY);
    run_group(pc == 1 ? "W5-1/1" : "W5-2/2", title, RATE, n_w5, n_w5 / 10, v,
              nv, 0);
  }
#ifdef HAVE_GLIB
  note("GAsyncQueue is unbounded: its producers never wait for room, the "
       "others stop at 1024 items");
#endif
}

/* ------------------------------------------------------------------- W6 */

static double w6_fork(size_t n, const void *arg)
{
  (void)arg;
  fflush(NULL);
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++) {
    pid_t pid = fork();
    if (pid < 0)
      fail("fork", CREW_ENOMEM);
    if (pid == 0)
      _exit(0);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
      ;
  }
  return seconds_since(t0);
}

static double w6_process(size_t n, const void *arg)
{
  (void)arg;
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++) {
    crew_process *p;
    check("crew_process_start",
          crew_process_start(&p, crew_nothing, NULL, 0, 0));
    int code = -1;
    check("crew_process_join", crew_process_join(p, &code));
    expect(code == 0, "W6: exit code");
    crew_process_destroy(p);
  }
  return seconds_since(t0);
}

/* One task at a time, back to back: submit, wait for the future. */
static double w6_round_trip(size_t n, const void *arg)
{
  crew_pool *pool = crew_start(*(const int *)arg, opt_workers);
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < n; i++) {
    long x = (long)i, r = 0;
    crew_future *f;
    check("crew_submit",
          crew_submit(pool, crew_square, &x, sizeof x, sizeof r, &f));
    check("crew_future_get", crew_future_get(f, &r, sizeof r));
    crew_future_release(f);
    expect(r == x * x, "W6 round trip: result");
  }
  double s = seconds_since(t0);
  crew_pool_destroy(pool);
  return s;
}

/* Run first, while this process is small: what a fork costs grows with
 * the memory the parent maps (its page tables are copied). */
void workload_w6_start(void)
{
  struct variant v[MAX_VARIANTS];
  size_t nv = 0;
  v[nv++] = (struct variant){"fork + _exit + waitpid", w6_fork, NULL, NULL};
  v[nv++] = (struct variant){"crew_process start + join", w6_process, NULL,
                             "empty function"};
  char title[200];
  snprintf(title, sizeof title,
           "process start->join: %zu children one after another, each "
           "joined; run first, while this process is small [us per child]",
           n_pstart);
  run_group("W6-start", title, PER_OP, n_pstart, n_pstart / 10, v, nv, 0);
}

void workload_w6(void)
{
  struct variant v[MAX_VARIANTS];
  size_t nv = 0;
  char title[160];
  v[nv++] = (struct variant){"crew (threads) round trip", w6_round_trip,
                             &mode_threads, NULL};
  v[nv++] = (struct variant){"crew (processes) round trip", w6_round_trip,
                             &mode_processes, NULL};
  snprintf(title, sizeof title,
           "task round trip: %zu x (submit one task, wait for its future), "
           "back to back, %zu workers [us per task]",
           n_prtt, opt_workers);
  run_group("W6-rtt", title, PER_OP, n_prtt, n_prtt / 10, v, nv, 0);

  nv = 0;
  v[nv++] = (struct variant){"crew (threads)", w1_crew, &mode_threads, NULL};
  v[nv++] =
      (struct variant){"crew (processes)", w1_crew, &mode_processes, NULL};
  snprintf(title, sizeof title,
           "process-mode W1: %zu no-op fire-and-forget tasks, %zu workers "
           "[M tasks/s]",
           n_pw1, opt_workers);
  run_group("W6-W1", title, RATE, n_pw1, n_pw1 / 10, v, nv, 0);

  nv = 0;
  v[nv++] =
      (struct variant){"crew (threads) futures", w2_crew, &mode_threads, NULL};
  v[nv++] = (struct variant){"crew (processes) futures", w2_crew,
                             &mode_processes, NULL};
  snprintf(title, sizeof title,
           "process-mode W2: %zu tasks returning x*x through futures, %zu "
           "workers [M tasks/s]",
           n_pw2, opt_workers);
  run_group("W6-W2", title, RATE, n_pw2, n_pw2 / 10, v, nv, 0);
  note("process-mode W1 and W2 run %zu and %zu tasks (W1 and W2 run %zu and "
       "%zu) to keep the suite short",
       n_pw1, n_pw2, n_w1, n_w2);
}

/* ---------------------------------------------------------------- ALLOC */

#ifdef ALLOC_COUNTER

static void wait_completed(crew_pool *pool, uint64_t target)
{
  crew_stats st;
  for (;;) {
    check("crew_pool_stats", crew_pool_stats(pool, &st));
    if (st.completed >= target)
      return;
    sched_yield();
  }
}

static double allocs_crew_w1(size_t n)
{
  crew_pool *pool = crew_start(CREW_THREADS, opt_workers);
  for (size_t i = 0; i < n; i++)
    check("crew_submit", crew_submit(pool, crew_nothing, NULL, 0, 0, NULL));
  wait_completed(pool, n);
  alloc_count_begin();
  for (size_t i = 0; i < n; i++)
    check("crew_submit", crew_submit(pool, crew_nothing, NULL, 0, 0, NULL));
  wait_completed(pool, 2 * n);
  unsigned long a = alloc_count_end();
  crew_pool_destroy(pool);
  return (double)a / (double)n;
}

/* One W2 round on `pool`: n futures kept, then read and released. */
static void crew_w2_round(crew_pool *pool, crew_future **fs, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    long x = (long)i;
    check("crew_submit",
          crew_submit(pool, crew_square, &x, sizeof x, sizeof x, &fs[i]));
  }
  long sum = 0;
  for (size_t i = 0; i < n; i++) {
    long r = 0;
    check("crew_future_get", crew_future_get(fs[i], &r, sizeof r));
    sum += r;
    crew_future_release(fs[i]);
  }
  expect(sum == squares_sum(n), "ALLOC W2: sum");
}

/* What the timed W2 run allocates: a fresh pool, n futures kept, then
 * read and released (the pool's own creation is not counted). */
static double allocs_crew_w2(size_t n)
{
  crew_pool *pool = crew_start(CREW_THREADS, opt_workers);
  crew_future **fs = scratch(n * sizeof *fs);
  alloc_count_begin();
  crew_w2_round(pool, fs, n);
  unsigned long a = alloc_count_end();
  crew_pool_destroy(pool);
  return (double)a / (double)n;
}

/* The same round again on the same pool: what a warm pool allocates. */
static double allocs_crew_w2_warm(size_t n)
{
  crew_pool *pool = crew_start(CREW_THREADS, opt_workers);
  crew_future **fs = scratch(n * sizeof *fs);
  crew_w2_round(pool, fs, n); /* warm-up: the same round, once */
  alloc_count_begin();
  crew_w2_round(pool, fs, n);
  unsigned long a = alloc_count_end();
  crew_pool_destroy(pool);
  return (double)a / (double)n;
}

/* The same, one future at a time (submit, wait, release). */
static double allocs_crew_w2_one(size_t n)
{
  crew_pool *pool = crew_start(CREW_THREADS, opt_workers);
  crew_future **fs = scratch(sizeof *fs);
  for (size_t i = 0; i < n; i++)
    crew_w2_round(pool, fs, 1);
  alloc_count_begin();
  for (size_t i = 0; i < n; i++)
    crew_w2_round(pool, fs, 1);
  unsigned long a = alloc_count_end();
  crew_pool_destroy(pool);
  return (double)a / (double)n;
}

struct alloc_variant {
  const char *name;
  double (*run)(size_t n);
  const char *note;
};
#endif

void workload_alloc(void)
{
  fprintf(tbl,
          "\nALLOC heap allocations per task: %zu tasks, after a warm-up "
          "of as many unless the row says otherwise (crew W2 counts what "
          "the timed W2 run does: a fresh pool), counted by this "
          "program's malloc interposer (malloc, calloc, realloc, "
          "aligned_alloc, posix_memalign, memalign)\n",
          n_alloc);
#ifndef ALLOC_COUNTER
  note("no malloc counter in this build (not glibc, or a sanitizer): "
       "ALLOC skipped");
#else
  struct alloc_variant v[10];
  size_t nv = 0;
  v[nv++] = (struct alloc_variant){"crew W1 (fire and forget)", allocs_crew_w1,
                                   "waits by polling crew_pool_stats"};
  v[nv++] =
      (struct alloc_variant){"crew W2 (futures, all kept)", allocs_crew_w2,
                             "as timed: a fresh pool, no warm-up"};
  v[nv++] = (struct alloc_variant){"crew W2 warm (all kept, again)",
                                   allocs_crew_w2_warm,
                                   "a second round on the same pool"};
  v[nv++] = (struct alloc_variant){"crew W2 (one future at a time)",
                                   allocs_crew_w2_one, "submit, get, release"};
  v[nv++] = (struct alloc_variant){"textbook W1", allocs_textbook_w1,
                                   "counts its shutdown too"};
  v[nv++] = (struct alloc_variant){"textbook W2 (future per task)",
                                   allocs_textbook_w2,
                                   "counts pool start and stop too"};
#ifdef HAVE_GLIB
  v[nv++] = (struct alloc_variant){"GLib GThreadPool W1", allocs_glib_w1,
                                   "counts its shutdown too"};
#endif
#ifdef HAVE_LIBUV
  v[nv++] = (struct alloc_variant){"libuv W1", allocs_libuv_w1,
                                   "requests are the caller's (preallocated)"};
#endif
  fprintf(tbl, "  %-40s %10s\n", "", "allocs/task");
  for (size_t i = 0; i < nv; i++) {
    double per = v[i].run(n_alloc);
    struct row *r = add_row();
    r->group = "ALLOC";
    snprintf(r->name, sizeof r->name, "%s", v[i].name);
    r->unit = "allocs/task";
    r->n = n_alloc;
    r->median = r->min = r->max = per;
    r->note = v[i].note;
    fprintf(tbl, "  %-40s %10.4f  %s\n", r->name, per, r->note);
  }
#endif
  fflush(tbl);
}
