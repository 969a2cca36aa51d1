/*
 * bench_suite - the benchmark suite of issue 6: crew against the C libraries
 * a user would otherwise pick (GLib, libuv and OpenMP, when configure found
 * them) and against a textbook mutex+condvar pool (bench/bench.c), on
 * the same machine, in the same run, interleaved.
 *
 *   bench/bench_suite [--quick] [--json] [--only W1,W3,...] [--workers N]
 *                     [--reps N]
 *   bench/bench_suite --callgrind W1|W2 --impl crew|textbook|glib|libuv
 *                     [--tasks N] [--workers N]
 *
 * Workloads (sizes of the full run; --quick divides most by 10):
 *  W1  empty-task throughput: one producer submits 10^6 no-op fire-and-forget
 *      tasks to 2 workers, then waits for all of them;
 *  W2  tasks with results: 2*10^5 tasks returning x*x through a future, all
 *      kept, then summed;
 *  W3  CPU-bound map: 2*10^4 items of ~50 us of pure computation (a loop
 *      count calibrated at start-up): speedup over running them one by one;
 *  W4  wake-up latency: one task at a time into an idle pool, 50 us of idle
 *      (spinning in the submitter) between, 2*10^4 times: p50/p99/p99.9 of
 *      submit->start and submit->result; and the CPU an idle pool burns;
 *  W5  queue throughput: 10^7 pointer-sized items through capacity 1024,
 *      1 producer/1 consumer and 2/2, single and batch (64) calls;
 *  W6  process costs: crew_process start->join, a process-mode round trip,
 *      process-mode W1 and W2 (at 2*10^5 and 5*10^4 tasks);
 *  ALLOC heap allocations per task, counted by a malloc interposer in this
 *      program: for W2 what the timed run allocates (a fresh pool), and
 *      in steady state (a second round).
 *
 * Every row runs once to warm up, then --reps times (default 5); the
 * variants of a workload take turns (the first to go rotates each
 * repetition). A row prints the median, the min-max, and how many times
 * faster than the workload's named baseline it is (medians, same run).
 *
 * --callgrind runs one workload of one implementation once, and nothing
 * else, for bench/instructions.sh, which runs it under valgrind at two sizes
 * and divides the difference in instructions by the difference in tasks.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "bench.h"

#include <crew.h>

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_GLIB
#include <glib.h>
#endif
#ifdef HAVE_LIBUV
#include <uv.h>
#endif
#ifdef HAVE_OPENMP
#include <omp.h>
#endif

/* ------------------------------------------------------ malloc counting */

/*
 * A counting interposer: this program's malloc, calloc, realloc,
 * aligned_alloc, posix_memalign and memalign count a call (only while
 * `counting` is on) and forward to glibc's allocator, so libcrew and the
 * peers, which call malloc through the dynamic linker, are counted too.
 * free is glibc's own. Not under sanitizers, which bring their own malloc.
 */
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__) &&                    \
    !defined(__SANITIZE_THREAD__)
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||     \
    __has_feature(memory_sanitizer)
#define NO_ALLOC_COUNTER 1
#endif
#endif
#ifndef NO_ALLOC_COUNTER
#define ALLOC_COUNTER 1
#endif
#endif

#ifdef ALLOC_COUNTER
static atomic_bool counting;
static atomic_ulong allocations;

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t align, size_t size);

static inline void count_allocation(void)
{
  if (atomic_load_explicit(&counting, memory_order_relaxed))
    atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
}

void *malloc(size_t size)
{
  count_allocation();
  return __libc_malloc(size);
}

void *calloc(size_t n, size_t size)
{
  count_allocation();
  return __libc_calloc(n, size);
}

void *realloc(void *p, size_t size)
{
  count_allocation();
  return __libc_realloc(p, size);
}

void *aligned_alloc(size_t align, size_t size)
{
  count_allocation();
  return __libc_memalign(align, size);
}

void *memalign(size_t align, size_t size)
{
  count_allocation();
  return __libc_memalign(align, size);
}

int posix_memalign(void **p, size_t align, size_t size)
{
  if (align < sizeof(void *) || (align & (align - 1)) != 0)
    return EINVAL;
  count_allocation();
  void *m = __libc_memalign(align, size);
  if (m == NULL)
    return ENOMEM;
  *p = m;
  return 0;
}

static void alloc_count_begin(void)
{
  atomic_store(&allocations, 0);
  atomic_store(&counting, true);
}

static unsigned long alloc_count_end(void)
{
  atomic_store(&counting, false);
  return atomic_load(&allocations);
}
#endif

/* ---------------------------------------------------------------- basics */

static size_t opt_workers = 2, opt_reps = 5;
static bool opt_quick, opt_json;

/* Sizes of the full run; --quick makes them smaller. */
static size_t n_w1 = 1000000, n_w2 = 200000, n_w3 = 20000, n_w4 = 20000,
              n_w5 = 10000000, n_pstart = 300, n_prtt = 5000, n_pw1 = 200000,
              n_pw2 = 50000, n_alloc = 100000;
static unsigned idle_s = 10;

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double seconds_since(uint64_t t0)
{
  return (double)(now_ns() - t0) / 1e9;
}

static void spin_until(uint64_t t)
{
  while (now_ns() < t)
    ;
}

static uint64_t process_cpu_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fail(const char *what, int rc)
{
  fprintf(stderr, "bench_suite: %s: %s\n", what, crew_strerror(rc));
  exit(1);
}

static void check(const char *what, int rc)
{
  if (rc != 0)
    fail(what, rc);
}

static void expect(bool ok, const char *what)
{
  if (!ok) {
    fprintf(stderr, "bench_suite: wrong result: %s\n", what);
    exit(1);
  }
}

static void *xmalloc(size_t size)
{
  void *p = malloc(size);
  if (p == NULL) {
    fprintf(stderr, "bench_suite: out of memory\n");
    exit(1);
  }
  return p;
}

/* A zeroed buffer kept between runs, so that big arrays (libuv requests,
 * future pointers) are allocated and touched outside the timed part. */
static void *scratch_buf;
static size_t scratch_size;
static bool scratch_touch = true; /* false under --callgrind: no memset */
/* --callgrind: idle workers sleep at once. Valgrind runs one thread at a
 * time, so an idle worker's spin only burns instructions until the
 * scheduler switches, a count that depends on timing, not on the work. */
static bool no_idle_spin;

static void *scratch(size_t bytes)
{
  if (bytes > scratch_size) {
    free(scratch_buf);
    scratch_buf = xmalloc(bytes);
    scratch_size = bytes;
  }
  if (scratch_touch)
    memset(scratch_buf, 0, bytes);
  return scratch_buf;
}

static void scratch_release(void)
{
  free(scratch_buf);
  scratch_buf = NULL;
  scratch_size = 0;
}

/* ------------------------------------------- the textbook pool and queue */

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

/* ------------------------------------------------------------ reporting */

enum metric {
  RATE,   /* n / seconds, in millions per second */
  PER_OP, /* seconds / n, in microseconds */
  WALL    /* seconds, in milliseconds */
};

static const char *const metric_unit[] = {"M/s", "us", "ms"};

struct row {
  const char *group;
  char name[64];
  const char *unit;
  size_t n;
  double median, min, max;
  const char *baseline; /* NULL: no ratio */
  double ratio;         /* how many times faster than the baseline */
  const char *note;
  bool latency;   /* W4: the fields below */
  double lat[6];  /* p50, p99, p99.9 submit->start, then submit->result */
  double lat_min; /* min-max of p50 submit->result over repetitions */
  double lat_max;
};

#define MAX_ROWS 160
static struct row rows[MAX_ROWS];
static size_t nrows;

#define MAX_NOTES 64
static char notes[MAX_NOTES][240];
static size_t nnotes;

/* The table: stdout, or stderr with --json (stdout then holds the JSON). */
static FILE *tbl;

static struct row *add_row(void)
{
  if (nrows == MAX_ROWS) {
    fprintf(stderr, "bench_suite: too many rows\n");
    exit(1);
  }
  struct row *r = &rows[nrows++];
  memset(r, 0, sizeof *r);
  return r;
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void note(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char buf[240];
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(tbl, "  note: %s\n", buf);
  if (nnotes < MAX_NOTES)
    memcpy(notes[nnotes++], buf, sizeof buf);
}

/* A run of one variant: does the work n times, returns the seconds the
 * measured part took. */
typedef double (*run_fn)(size_t n, const void *arg);

struct variant {
  const char *name;
  run_fn run;
  const void *arg;
  const char *note; /* printed beside the row; NULL: none */
};

#define MAX_VARIANTS 12
#define MAX_REPS     64

static double metric_value(enum metric m, size_t n, double seconds)
{
  switch (m) {
  case RATE:
    return (double)n / seconds / 1e6;
  case PER_OP:
    return seconds / (double)n * 1e6;
  case WALL:
    break;
  }
  return seconds * 1e3;
}

static void print_header(const char *unit)
{
  fprintf(tbl, "  %-40s %10s  %-21s %8s\n", "", unit, "(min - max)", "ratio");
}

static void print_row(const struct row *r)
{
  fprintf(tbl, "  %-40s %10.3f  (%8.3f - %8.3f)", r->name, r->median, r->min,
          r->max);
  if (r->baseline != NULL)
    fprintf(tbl, " %7.2fx", r->ratio);
  else
    fprintf(tbl, " %8s", "");
  if (r->note != NULL)
    fprintf(tbl, "  %s", r->note);
  fputc('\n', tbl);
}

/*
 * Run the variants of one workload: each once on warm_n to warm up, then
 * opt_reps times on n, taking turns; v[base] is the baseline.
 */
static void run_group(const char *group, const char *title, enum metric m,
                      size_t n, size_t warm_n, const struct variant *v,
                      size_t nv, size_t base)
{
  static double val[MAX_VARIANTS][MAX_REPS];
  fprintf(tbl, "\n%s %s\n", group, title);
  fflush(tbl);
  for (size_t i = 0; i < nv; i++)
    v[i].run(warm_n, v[i].arg);
  for (size_t r = 0; r < opt_reps; r++)
    for (size_t k = 0; k < nv; k++) {
      size_t i = (k + r) % nv;
      val[i][r] = metric_value(m, n, v[i].run(n, v[i].arg));
    }
  struct summary s[MAX_VARIANTS];
  for (size_t i = 0; i < nv; i++)
    s[i] = summarise(val[i], opt_reps);
  fprintf(tbl, "  ratio: how many times faster than \"%s\" (medians)\n",
          v[base].name);
  print_header(metric_unit[m]);
  for (size_t i = 0; i < nv; i++) {
    struct row *r = add_row();
    r->group = group;
    snprintf(r->name, sizeof r->name, "%s", v[i].name);
    r->unit = metric_unit[m];
    r->n = n;
    r->median = s[i].median;
    r->min = s[i].min;
    r->max = s[i].max;
    r->baseline = v[base].name;
    r->ratio =
        m == RATE ? s[i].median / s[base].median : s[base].median / s[i].median;
    r->note = i == base ? "(baseline)" : v[i].note;
    print_row(r);
  }
  fflush(tbl);
}

/* ------------------------------------------------------------ crew basics */

static const int mode_threads = CREW_THREADS;
static const int mode_processes = CREW_PROCESSES;

static crew_pool *crew_start(int mode, size_t workers)
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

static int crew_nothing(const void *in, void *out)
{
  (void)in;
  (void)out;
  return 0;
}

static int crew_square(const void *in, void *out)
{
  long x;
  memcpy(&x, in, sizeof x);
  x *= x;
  memcpy(out, &x, sizeof x);
  return 0;
}

/* The sum of i*i for i < n (at most 2*10^6: n(n-1)(2n-1) fits 64 bits). */
static long squares_sum(size_t n)
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
static double w1_crew(size_t n, const void *arg)
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

static double w1_textbook(size_t n, const void *arg)
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
static char glib_item; /* GThreadPool refuses NULL data */

static void glib_nothing(gpointer data, gpointer user)
{
  (void)data;
  (void)user;
}

static double w1_glib(size_t n, const void *arg)
{
  (void)arg;
  GThreadPool *pool =
      g_thread_pool_new(glib_nothing, NULL, (gint)opt_workers, TRUE, NULL);
  expect(pool != NULL, "g_thread_pool_new");
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
static double w1_libuv(size_t n, const void *arg)
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

static double w1_openmp(size_t n, const void *arg)
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

static void workload_w1(void)
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

static double w2_crew(size_t n, const void *arg)
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

static double w2_textbook(size_t n, const void *arg)
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
static double w2_glib(size_t n, const void *arg)
{
  (void)arg;
  GThreadPool *pool =
      g_thread_pool_new(glib_square, NULL, (gint)opt_workers, TRUE, NULL);
  expect(pool != NULL, "g_thread_pool_new");
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
static double w2_libuv(size_t n, const void *arg)
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
static double w2_openmp(size_t n, const void *arg)
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

static void workload_w2(void)
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
static uint64_t burn(uint64_t iters, uint64_t seed)
{
  uint64_t x = seed | 1;
  for (uint64_t i = 0; i < iters; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  }
  return x;
}

static uint64_t burn_iters; /* per ~50 us */

static void calibrate(void)
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

struct w3_in {
  uint64_t iters, seed;
};

static struct w3_in *w3_ins;
static uint64_t *w3_outs;
static uint64_t *w3_ref; /* what each item must give, computed once */

static bool w3_right(size_t n)
{
  return memcmp(w3_outs, w3_ref, n * sizeof *w3_outs) == 0;
}

static void w3_reset(size_t n)
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

static void tb_w3_item(void *arg)
{
  const struct w3_in *in = arg;
  w3_outs[in - w3_ins] = burn(in->iters, in->seed);
}

static double w3_textbook(size_t n, const void *arg)
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

static double w3_glib(size_t n, const void *arg)
{
  (void)arg;
  GThreadPool *pool =
      g_thread_pool_new(glib_w3_item, NULL, (gint)opt_workers, TRUE, NULL);
  expect(pool != NULL, "g_thread_pool_new");
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
static double w3_openmp(size_t n, const void *arg)
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

static void workload_w3(void)
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

/* A run of W4: rounds of (spin 50 us, submit one task, wait for it), the
 * submit->start and submit->result of each in ns. */
typedef void (*lat_fn)(size_t rounds, const void *arg, uint64_t *start,
                       uint64_t *result);

#define W4_IDLE_NS 50000

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

static void tb_w4_task(void *arg)
{
  struct tb_future *f = arg;
  f->started = now_ns(); /* before the lock: tb_future_set publishes it */
  tb_future_set(f, 0);
}

static void w4_textbook(size_t rounds, const void *arg, uint64_t *start,
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

static void w4_glib(size_t rounds, const void *arg, uint64_t *start,
                    uint64_t *result)
{
  (void)arg;
  GThreadPool *pool =
      g_thread_pool_new(glib_w4_task, NULL, (gint)opt_workers, TRUE, NULL);
  expect(pool != NULL, "g_thread_pool_new");
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
static void w4_libuv(size_t rounds, const void *arg, uint64_t *start,
                     uint64_t *result)
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

static void workload_w4(void)
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

enum q_impl { Q_CREW, Q_TEXTBOOK, Q_GLIB };

struct q_arg {
  enum q_impl impl;
  int producers, consumers;
  bool batch;
};

#define Q_BATCH    64
#define Q_CAPACITY 1024

struct q_ctx {
  const struct q_arg *a;
  size_t per_producer;
  pthread_barrier_t go;
  crew_queue *cq;
  struct tb_queue *tq;
#ifdef HAVE_GLIB
  GAsyncQueue *gq;
#endif
  _Atomic uint64_t popped, sum;
};

#ifdef HAVE_GLIB
static char glib_stop; /* the end-of-stream item for GAsyncQueue */
#endif

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
  } else if (a->impl == Q_TEXTBOOK) {
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
  } else if (a->impl == Q_TEXTBOOK) {
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
  else if (a->impl == Q_TEXTBOOK)
    c.tq = tbq_create(Q_CAPACITY);
#ifdef HAVE_GLIB
  else
    c.gq = g_async_queue_new();
#endif
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
  else if (a->impl == Q_TEXTBOOK)
    tbq_close(c.tq);
#ifdef HAVE_GLIB
  else
    for (int i = 0; i < a->consumers; i++)
      g_async_queue_push(c.gq, &glib_stop);
#endif
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
  else if (a->impl == Q_TEXTBOOK)
    tbq_destroy(c.tq);
#ifdef HAVE_GLIB
  else
    g_async_queue_unref(c.gq);
#endif
  return s;
}

static void workload_w5(void)
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
static void workload_w6_start(void)
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

static void workload_w6(void)
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

static double allocs_textbook_w1(size_t n)
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

static double allocs_textbook_w2(size_t n)
{
  alloc_count_begin();
  w2_textbook(n, NULL);
  unsigned long a = alloc_count_end();
  /* The pool itself: 3 allocations (pool, ring, threads) + the threads'. */
  return (double)a / (double)n;
}

#ifdef HAVE_GLIB
static double allocs_glib_w1(size_t n)
{
  GThreadPool *pool =
      g_thread_pool_new(glib_nothing, NULL, (gint)opt_workers, TRUE, NULL);
  expect(pool != NULL, "g_thread_pool_new");
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
static double allocs_libuv_w1(size_t n)
{
  w1_libuv(n, NULL);
  alloc_count_begin();
  w1_libuv(n, NULL);
  return (double)alloc_count_end() / (double)n;
}
#endif

struct alloc_variant {
  const char *name;
  double (*run)(size_t n);
  const char *note;
};
#endif

static void workload_alloc(void)
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

/* ------------------------------------------------------------------ JSON */

static void json_string(const char *s)
{
  putchar('"');
  for (; s != NULL && *s != '\0'; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      printf("\\%c", ch);
    else if (ch < 0x20)
      printf("\\u%04x", ch);
    else
      putchar(ch);
  }
  putchar('"');
}

static void json_number(double x)
{
  if (x != x || x > 1e300 || x < -1e300)
    printf("null");
  else
    printf("%.6g", x);
}

static char cpu_model[128] = "unknown";
static struct utsname uts;
static char load_start[64] = "?", load_end[64] = "?";
static double probe_start, probe_end;

/* How many cores this process gets now: opt_workers threads spin for
 * 0.25 s; their CPU time over the wall time. Other work on the machine
 * shows as less than opt_workers. */
static void *probe_spin(void *arg)
{
  uint64_t end = now_ns() + 250000000u;
  volatile uint64_t sink = 0;
  while (now_ns() < end)
    sink += burn(1000, sink);
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  *(double *)arg = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
  return NULL;
}

static double cores_probe(void)
{
  pthread_t th[256];
  double cpu[256];
  uint64_t t0 = now_ns();
  for (size_t i = 0; i < opt_workers; i++)
    if (pthread_create(&th[i], NULL, probe_spin, &cpu[i]) != 0)
      fail("pthread_create", CREW_ENOMEM);
  double sum = 0;
  for (size_t i = 0; i < opt_workers; i++) {
    pthread_join(th[i], NULL);
    sum += cpu[i];
  }
  return sum / seconds_since(t0);
}

/* The 1, 5 and 15 minute load averages: other work on this machine. */
static void read_loadavg(char *buf, size_t size)
{
  FILE *f = fopen("/proc/loadavg", "r");
  if (f == NULL)
    return;
  double a, b, c;
  if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
    snprintf(buf, size, "%.2f %.2f %.2f", a, b, c);
  fclose(f);
}

static void json_print(void)
{
  printf("{\"suite\": \"crew bench_suite\", \"crew_version\": ");
  json_string(crew_version());
  printf(",\n \"machine\": {\"cores_online\": %ld, \"cpu\": ",
         sysconf(_SC_NPROCESSORS_ONLN));
  json_string(cpu_model);
  printf(", \"kernel\": ");
  json_string(uts.release);
  printf(", \"loadavg_start\": ");
  json_string(load_start);
  printf(", \"loadavg_end\": ");
  json_string(load_end);
  printf(", \"cores_got_start\": ");
  json_number(probe_start);
  printf(", \"cores_got_end\": ");
  json_number(probe_end);
  printf("},\n \"workers\": %zu, \"reps\": %zu, \"quick\": %s,\n", opt_workers,
         opt_reps, opt_quick ? "true" : "false");
  printf(" \"peers\": {\"glib\": ");
#ifdef HAVE_GLIB
  printf("\"%u.%u.%u\"", glib_major_version, glib_minor_version,
         glib_micro_version);
#else
  printf("null");
#endif
  printf(", \"libuv\": ");
#ifdef HAVE_LIBUV
  json_string(uv_version_string());
#else
  printf("null");
#endif
  printf(", \"openmp\": ");
#ifdef HAVE_OPENMP
  printf("%d", _OPENMP);
#else
  printf("null");
#endif
  printf("},\n \"notes\": [");
  for (size_t i = 0; i < nnotes; i++) {
    printf(i > 0 ? ",\n   " : "\n   ");
    json_string(notes[i]);
  }
  printf("],\n \"rows\": [");
  for (size_t i = 0; i < nrows; i++) {
    const struct row *r = &rows[i];
    printf(i > 0 ? ",\n  {" : "\n  {");
    printf("\"workload\": ");
    json_string(r->group);
    printf(", \"name\": ");
    json_string(r->name);
    printf(", \"unit\": ");
    json_string(r->unit);
    printf(", \"n\": %zu, \"median\": ", r->n);
    json_number(r->median);
    printf(", \"min\": ");
    json_number(r->min);
    printf(", \"max\": ");
    json_number(r->max);
    printf(", \"baseline\": ");
    if (r->baseline != NULL) {
      json_string(r->baseline);
      printf(", \"ratio\": ");
      json_number(r->ratio);
    } else {
      printf("null, \"ratio\": null");
    }
    if (r->latency) {
      const char *k[6] = {"start_p50_us",  "start_p99_us",  "start_p999_us",
                          "result_p50_us", "result_p99_us", "result_p999_us"};
      for (int j = 0; j < 6; j++) {
        printf(", \"%s\": ", k[j]);
        json_number(r->lat[j]);
      }
      printf(", \"result_p50_min_us\": ");
      json_number(r->lat_min);
      printf(", \"result_p50_max_us\": ");
      json_number(r->lat_max);
    }
    printf(", \"note\": ");
    if (r->note != NULL)
      json_string(r->note);
    else
      printf("null");
    putchar('}');
  }
  printf("\n ]}\n");
}

/* ------------------------------------------------------------------ main */

static void read_machine(void)
{
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (f != NULL) {
    char line[256];
    while (fgets(line, sizeof line, f) != NULL) {
      if (strncmp(line, "model name", 10) != 0)
        continue;
      const char *colon = strchr(line, ':');
      if (colon == NULL)
        continue;
      colon++;
      while (*colon == ' ' || *colon == '\t')
        colon++;
      snprintf(cpu_model, sizeof cpu_model, "%s", colon);
      cpu_model[strcspn(cpu_model, "\n")] = '\0';
      break;
    }
    fclose(f);
  }
  uname(&uts);
}

enum {
  ONLY_W1 = 1,
  ONLY_W2 = 2,
  ONLY_W3 = 4,
  ONLY_W4 = 8,
  ONLY_W5 = 16,
  ONLY_W6 = 32,
  ONLY_ALLOC = 64
};

static unsigned parse_only(const char *list)
{
  static const char *const names[] = {"W1", "W2", "W3",   "W4",
                                      "W5", "W6", "ALLOC"};
  unsigned mask = 0;
  char buf[128];
  snprintf(buf, sizeof buf, "%s", list);
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL;
       tok = strtok_r(NULL, ",", &save)) {
    unsigned bit = 0;
    for (unsigned i = 0; i < 7; i++)
      if (strcasecmp(tok, names[i]) == 0)
        bit = 1u << i;
    if (bit == 0) {
      fprintf(stderr, "bench_suite: --only: unknown workload '%s'\n", tok);
      exit(2);
    }
    mask |= bit;
  }
  return mask;
}

static void usage(FILE *f)
{
  fprintf(f,
          "usage: bench_suite [--quick] [--json] [--only LIST] [--workers N]\n"
          "                   [--reps N]\n"
          "       bench_suite --callgrind W1|W2 --impl "
          "crew|textbook|glib|libuv\n"
          "                   [--tasks N] [--workers N]\n"
          "\n"
          "  --quick      smaller counts (most / 10), 3 repetitions\n"
          "  --json       print one JSON object with every row on stdout\n"
          "               (the table goes to stderr)\n"
          "  --only LIST  run only these, comma-separated: W1 (empty tasks),\n"
          "               W2 (futures), W3 (CPU-bound map), W4 (wake-up\n"
          "               latency, idle CPU), W5 (queue), W6 (processes),\n"
          "               ALLOC (heap allocations per task)\n"
          "  --workers N  workers of every pool (default 2); W5 always runs\n"
          "               1+1 and 2+2 threads\n"
          "  --reps N     repetitions after the warm-up (default 5)\n"
          "  --callgrind  run one workload of one implementation once, for\n"
          "               bench/instructions.sh\n");
}

/* --callgrind: one run of one workload of one implementation. */
static int callgrind_mode(const char *workload, const char *impl, size_t n)
{
  run_fn fn = NULL;
  const void *arg = NULL;
  bool w1 = strcmp(workload, "W1") == 0, w2 = strcmp(workload, "W2") == 0;
  no_idle_spin = getenv("CREW_BENCH_SPIN") == NULL;
  if (strcmp(impl, "crew") == 0) {
    fn = w1 ? w1_crew : w2 ? w2_crew : NULL;
    arg = &mode_threads;
  } else if (strcmp(impl, "textbook") == 0) {
    fn = w1 ? w1_textbook : w2 ? w2_textbook : NULL;
  }
#ifdef HAVE_GLIB
  else if (strcmp(impl, "glib") == 0) {
    fn = w1 ? w1_glib : w2 ? w2_glib : NULL;
  }
#endif
#ifdef HAVE_LIBUV
  else if (strcmp(impl, "libuv") == 0) {
    fn = w1 ? w1_libuv : w2 ? w2_libuv : NULL;
  }
#endif
  if (fn == NULL) {
    fprintf(stderr, "bench_suite: --callgrind %s --impl %s: not available\n",
            workload, impl);
    return 2;
  }
  double s = fn(n, arg);
  printf("%s %s %zu tasks: %.3f s\n", workload, impl, n, s);
  return 0;
}

int main(int argc, char **argv)
{
  unsigned only = ~0u;
  const char *cg_workload = NULL, *cg_impl = "crew";
  size_t cg_tasks = 100000;
  bool reps_given = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool has = i + 1 < argc;
    if (strcmp(a, "--quick") == 0) {
      opt_quick = true;
    } else if (strcmp(a, "--json") == 0) {
      opt_json = true;
    } else if (strcmp(a, "--only") == 0 && has) {
      only = parse_only(argv[++i]);
    } else if (strcmp(a, "--workers") == 0 && has) {
      opt_workers = strtoul(argv[++i], NULL, 10);
    } else if (strcmp(a, "--reps") == 0 && has) {
      opt_reps = strtoul(argv[++i], NULL, 10);
      reps_given = true;
    } else if (strcmp(a, "--callgrind") == 0 && has) {
      cg_workload = argv[++i];
    } else if (strcmp(a, "--impl") == 0 && has) {
      cg_impl = argv[++i];
    } else if (strcmp(a, "--tasks") == 0 && has) {
      cg_tasks = strtoul(argv[++i], NULL, 10);
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (opt_quick) {
    n_w1 /= 10;
    n_w2 /= 10;
    n_w3 /= 10;
    n_w4 /= 10;
    n_w5 /= 10;
    n_pstart /= 6;
    n_prtt /= 5;
    n_pw1 /= 10;
    n_pw2 /= 5;
    n_alloc /= 5;
    idle_s = 1;
    if (!reps_given)
      opt_reps = 3;
  }
  if (opt_reps < 1 || opt_reps > MAX_REPS || opt_workers < 1 ||
      opt_workers > 256 || cg_tasks < 1) {
    fprintf(stderr, "bench_suite: reps 1..%d, workers 1..256, tasks >= 1\n",
            MAX_REPS);
    return 2;
  }
  /* libuv reads it once, at its first uv_queue_work. */
  char uv_size[16];
  snprintf(uv_size, sizeof uv_size, "%zu", opt_workers);
  setenv("UV_THREADPOOL_SIZE", uv_size, 1);

  if (cg_workload != NULL) {
    scratch_touch = false;
    return callgrind_mode(cg_workload, cg_impl, cg_tasks);
  }

  tbl = opt_json ? stderr : stdout;
  read_machine();
  calibrate();
  fprintf(tbl,
          "crew %s benchmark suite: %zu workers, median of %zu after a "
          "warm-up (min - max)%s\n",
          crew_version(), opt_workers, opt_reps, opt_quick ? ", --quick" : "");
  read_loadavg(load_start, sizeof load_start);
  probe_start = cores_probe();
  fprintf(tbl, "machine: %ld cores online, %s, %s %s\n",
          sysconf(_SC_NPROCESSORS_ONLN), cpu_model, uts.sysname, uts.release);
  fprintf(tbl,
          "other work: load average %s; %zu threads spinning 0.25 s got "
          "%.2f cores\n",
          load_start, opt_workers, probe_start);
  note("a small, shared, noisy machine: wall times move from run to run; "
       "compare the ratios, measured in the same run, and repeat");
#ifdef HAVE_GLIB
  fprintf(tbl, "peers: GLib %u.%u.%u", glib_major_version, glib_minor_version,
          glib_micro_version);
#else
  fprintf(tbl, "peers: GLib no");
#endif
#ifdef HAVE_LIBUV
  fprintf(tbl, ", libuv %s", uv_version_string());
#else
  fprintf(tbl, ", libuv no");
#endif
#ifdef HAVE_OPENMP
  fprintf(tbl, ", OpenMP %d (%s)", _OPENMP, __VERSION__);
#else
  fprintf(tbl, ", OpenMP no");
#endif
  fprintf(
      tbl,
      ", textbook mutex+condvar pool (bench/bench.c) and queue (this file)\n");
#ifndef HAVE_GLIB
  note("GLib was not found at configure time: its rows are skipped");
#endif
#ifndef HAVE_LIBUV
  note("libuv was not found at configure time: its rows are skipped");
#endif
#ifndef HAVE_OPENMP
  note("OpenMP was not found at configure time: its rows are skipped");
#endif

  if (only & ONLY_W6)
    workload_w6_start();
  if (only & ONLY_W1)
    workload_w1();
  if (only & ONLY_W2)
    workload_w2();
  if (only & ONLY_W3)
    workload_w3();
  if (only & ONLY_W4)
    workload_w4();
  if (only & ONLY_W5)
    workload_w5();
  if (only & ONLY_ALLOC)
    workload_alloc();
  if (only & ONLY_W6)
    workload_w6();
  scratch_release();
  read_loadavg(load_end, sizeof load_end);
  probe_end = cores_probe();
  fprintf(tbl,
          "\nother work: load average (1, 5, 15 min) %s at the start, %s at "
          "the end; %zu threads spinning 0.25 s got %.2f cores at the end\n",
          load_start, load_end, opt_workers, probe_end);
  if (opt_json)
    json_print();
  return 0;
}
