/*
 * suite.c - bench_suite, crew's benchmark suite: crew against the C
 * libraries a user would otherwise pick (GLib, libuv and OpenMP, when
 * configure found them) and against a textbook mutex+condvar pool
 * (bench/bench.c), on the same machine, in the same run, interleaved.
 * This file holds the options, the basics, the report (the table and the
 * JSON) and the driver; the workloads are in suite_workloads.c, the peers'
 * adapters in suite_peers.c.
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

#include "suite.h"

#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------ malloc counting */

/*
 * A counting interposer: this program's malloc, calloc, realloc,
 * aligned_alloc, posix_memalign and memalign count a call (only while
 * `counting` is on) and forward to glibc's allocator, so libcrew and the
 * peers, which call malloc through the dynamic linker, are counted too.
 * free is glibc's own. Not under sanitizers, which bring their own malloc.
 */
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

void alloc_count_begin(void)
{
  atomic_store(&allocations, 0);
  atomic_store(&counting, true);
}

unsigned long alloc_count_end(void)
{
  atomic_store(&counting, false);
  return atomic_load(&allocations);
}
#endif

/* ---------------------------------------------------------------- basics */

size_t opt_workers = 2, opt_reps = 5;
bool opt_quick, opt_json;

/* Sizes of the full run; --quick makes them smaller. */
size_t n_w1 = 1000000, n_w2 = 200000, n_w3 = 20000, n_w4 = 20000,
       n_w5 = 10000000, n_pstart = 300, n_prtt = 5000, n_pw1 = 200000,
       n_pw2 = 50000, n_alloc = 100000;
unsigned idle_s = 10;

double seconds_since(uint64_t t0)
{
  return (double)(now_ns() - t0) / 1e9;
}

void spin_until(uint64_t t)
{
  while (now_ns() < t)
    ;
}

uint64_t process_cpu_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void fail(const char *what, int rc)
{
  fprintf(stderr, "bench_suite: %s: %s\n", what, crew_strerror(rc));
  exit(1);
}

void check(const char *what, int rc)
{
  if (rc != 0)
    fail(what, rc);
}

void expect(bool ok, const char *what)
{
  if (!ok) {
    fprintf(stderr, "bench_suite: wrong result: %s\n", what);
    exit(1);
  }
}

void *xmalloc(size_t size)
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
bool scratch_touch = true; /* false under --callgrind: no memset */
/* --callgrind: idle workers sleep at once. Valgrind runs one thread at a
 * time, so an idle worker's spin only burns instructions until the
 * scheduler switches, a count that depends on timing, not on the work. */
bool no_idle_spin;

void *scratch(size_t bytes)
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

void scratch_release(void)
{
  free(scratch_buf);
  scratch_buf = NULL;
  scratch_size = 0;
}

/* ------------------------------------------------------------ reporting */

static const char *const metric_unit[] = {"M/s", "us", "ms"};

#define MAX_ROWS 160
static struct row rows[MAX_ROWS];
static size_t nrows;

#define MAX_NOTES 64
static char notes[MAX_NOTES][240];
static size_t nnotes;

FILE *tbl;

struct row *add_row(void)
{
  if (nrows == MAX_ROWS) {
    fprintf(stderr, "bench_suite: too many rows\n");
    exit(1);
  }
  struct row *r = &rows[nrows++];
  memset(r, 0, sizeof *r);
  return r;
}

void note(const char *fmt, ...)
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
void run_group(const char *group, const char *title, enum metric m, size_t n,
               size_t warm_n, const struct variant *v, size_t nv, size_t base)
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
  fprintf(tbl, ", textbook mutex+condvar pool (bench/bench.c) and queue "
               "(bench/suite_peers.c)\n");
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
