/*
 * suite.h - what the parts of bench_suite share: suite.c (the options, the
 * basics, the report and the driver), suite_workloads.c (W1 to W6 and
 * ALLOC: crew's side and the runs) and suite_peers.c (the textbook pool,
 * future and queue, GLib, libuv and OpenMP adapters). Benchmark code only:
 * it exits on any failure.
 */
#ifndef CREW_BENCH_SUITE_H
#define CREW_BENCH_SUITE_H

#include "bench.h"

#include <crew.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

/* The malloc interposer of suite.c counts allocations on glibc, outside
 * the sanitizers (which bring their own malloc). */
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
/* Count this program's allocations from now; stop, and how many. */
void alloc_count_begin(void);
unsigned long alloc_count_end(void);
#endif

/* ---------------------------------------------------------------- basics */

extern size_t opt_workers, opt_reps;
extern bool opt_quick, opt_json;

/* Sizes of the full run; --quick makes them smaller. */
extern size_t n_w1, n_w2, n_w3, n_w4, n_w5, n_pstart, n_prtt, n_pw1, n_pw2,
    n_alloc;
extern unsigned idle_s;

/* --callgrind: idle workers sleep at once (see suite.c). */
extern bool no_idle_spin;

/* Seconds since t0 (now_ns, bench.h); spin until the clock says t. */
double seconds_since(uint64_t t0);
void spin_until(uint64_t t);

/* CPU time of the whole process, in ns. */
uint64_t process_cpu_ns(void);

/* Exit with a message: what failed with crew error rc; check: if rc is
 * not 0; expect: if a result is wrong. */
void fail(const char *what, int rc);
void check(const char *what, int rc);
void expect(bool ok, const char *what);

/* malloc, exiting when it fails. */
void *xmalloc(size_t size);

/* A zeroed buffer kept between runs, so that big arrays (libuv requests,
 * future pointers) are allocated and touched outside the timed part. */
void *scratch(size_t bytes);
void scratch_release(void);

/* ------------------------------------------------------------ reporting */

enum metric {
  RATE,   /* n / seconds, in millions per second */
  PER_OP, /* seconds / n, in microseconds */
  WALL    /* seconds, in milliseconds */
};

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

/* The table: stdout, or stderr with --json (stdout then holds the JSON). */
extern FILE *tbl;

/* A new row of the report (the JSON holds every row). */
struct row *add_row(void);

/* A note under the current workload, kept for the JSON too. */
void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

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

/*
 * Run the variants of one workload: each once on warm_n to warm up, then
 * opt_reps times on n, taking turns; v[base] is the baseline.
 */
void run_group(const char *group, const char *title, enum metric m, size_t n,
               size_t warm_n, const struct variant *v, size_t nv, size_t base);

/* ------------------------------------------------- crew and the workloads */

extern const int mode_threads, mode_processes; /* a variant's arg */

/* A pool of `workers` in `mode` (no idle spin under --callgrind). */
crew_pool *crew_start(int mode, size_t workers);

/* Tasks: nothing; out = in * in (a long). */
int crew_nothing(const void *in, void *out);
int crew_square(const void *in, void *out);

/* The sum of i*i for i < n. */
long squares_sum(size_t n);

/* W1 and W2 of crew (arg: the mode), also for --callgrind. */
double w1_crew(size_t n, const void *arg);
double w2_crew(size_t n, const void *arg);

/* W3: ~50 us of pure computation (burn_iters rounds, calibrated at start),
 * its items and their outputs; w3_reset clears the outputs, w3_right
 * checks them. */
uint64_t burn(uint64_t iters, uint64_t seed);
extern uint64_t burn_iters;
void calibrate(void);
struct w3_in {
  uint64_t iters, seed;
};
extern struct w3_in *w3_ins;
extern uint64_t *w3_outs;
void w3_reset(size_t n);
bool w3_right(size_t n);

/* A run of W4: rounds of (spin 50 us, submit one task, wait for it), the
 * submit->start and submit->result of each in ns. */
typedef void (*lat_fn)(size_t rounds, const void *arg, uint64_t *start,
                       uint64_t *result);

#define W4_IDLE_NS 50000

/* W5: one producer/consumer mix of one queue. */
enum q_impl { Q_CREW, Q_TEXTBOOK, Q_GLIB };

struct q_arg {
  enum q_impl impl;
  int producers, consumers;
  bool batch;
};

#define Q_BATCH    64
#define Q_CAPACITY 1024

struct tb_queue;

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

/* The workloads, run by main in this order: W6-start first, while the
 * process is small. */
void workload_w6_start(void);
void workload_w1(void);
void workload_w2(void);
void workload_w3(void);
void workload_w4(void);
void workload_w5(void);
void workload_alloc(void);
void workload_w6(void);

/* ------------------------------------------------------------- the peers */

/* W1 to W4 of the textbook pool, and of the peers configure found. */
double w1_textbook(size_t n, const void *arg);
double w2_textbook(size_t n, const void *arg);
double w3_textbook(size_t n, const void *arg);
void w4_textbook(size_t rounds, const void *arg, uint64_t *start,
                 uint64_t *result);
#ifdef HAVE_GLIB
double w1_glib(size_t n, const void *arg);
double w2_glib(size_t n, const void *arg);
double w3_glib(size_t n, const void *arg);
void w4_glib(size_t rounds, const void *arg, uint64_t *start, uint64_t *result);
#endif
#ifdef HAVE_LIBUV
double w1_libuv(size_t n, const void *arg);
double w2_libuv(size_t n, const void *arg);
void w4_libuv(size_t rounds, const void *arg, uint64_t *start,
              uint64_t *result);
#endif
#ifdef HAVE_OPENMP
double w1_openmp(size_t n, const void *arg);
double w2_openmp(size_t n, const void *arg);
double w3_openmp(size_t n, const void *arg);
#endif

/* W5 of the textbook queue and GAsyncQueue (c->a->impl): make the queue,
 * push this producer's items 1..n, pop until the end of the stream (the
 * count and the sum of the items), end the stream for every consumer, and
 * free the queue. */
void w5_peer_open(struct q_ctx *c);
void w5_peer_produce(struct q_ctx *c, size_t n);
void w5_peer_consume(struct q_ctx *c, uint64_t *count, uint64_t *sum);
void w5_peer_close(struct q_ctx *c);
void w5_peer_free(struct q_ctx *c);

#ifdef ALLOC_COUNTER
/* ALLOC of the textbook pool (W1, W2) and of the peers (W1). */
double allocs_textbook_w1(size_t n);
double allocs_textbook_w2(size_t n);
#ifdef HAVE_GLIB
double allocs_glib_w1(size_t n);
#endif
#ifdef HAVE_LIBUV
double allocs_libuv_w1(size_t n);
#endif
#endif

#endif
