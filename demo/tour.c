/*
 * tour - threads or processes? The same workloads run one after another,
 * on a pool of worker threads and on a pool of worker processes, with the
 * wall times, the speedups, a sentence on what each row shows, and a
 * picture of it all.
 *
 *   demo/tour                  # about half a minute on 2 cores
 *   demo/tour --quick          # a few seconds
 *   demo/tour --help
 *
 * The workloads:
 *   cpu    pure computation, one piece per item: threads and processes both
 *          use every core; one by one uses one.
 *   io     waiting (sleeps standing in for disk or network): the pool keeps
 *          more tasks waiting at once than there are cores.
 *   tiny   thousands of tasks that do almost nothing: handing work over costs
 *          more than the work, and one by one wins.
 *   crash  one task crashes (SIGSEGV): with processes its future says
 *          CREW_ECRASHED, and crew_future_exit() which worker died and by
 *          which signal, and the others finish; with threads the whole
 *          program dies (shown safely: that part runs in a child process).
 *   hang   one task never returns: with processes it is killed at its
 *          deadline (CREW_EDEADLINE); with threads nothing can stop it (the
 *          child running that part has to be killed from outside).
 *   stream a million items through crew_imap with 64 in flight, beside
 *          crew_map over the same items in arrays (threads): imap's memory
 *          is its window's, map's grows with the input.
 *
 * The picture: with gnuplot installed (apt-get install gnuplot-nox) the tour
 * writes tour.png; without it, it writes the data and the gnuplot script
 * next to where the PNG would go, and says how to draw them.
 */
#include "exits.h"

#include <crew.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------- options */

struct options {
  size_t workers;   /* 0: one per CPU */
  double scale;     /* sizes: 1 normal, 0.2 quick */
  const char *only; /* comma-separated workloads, or NULL: all */
  const char *plot; /* the picture's path */
  bool python;      /* also time Python's threads and processes */
  bool progress;    /* a progress line (stdout is a terminal) */
};

static struct options opt = {.scale = 1.0, .plot = "tour.png"};

static void usage(FILE *out)
{
  fprintf(out,
          "usage: tour [--quick] [--workers N] [--scale X] [--only LIST]\n"
          "            [--plot FILE] [--no-plot] [--python] [--help]\n"
          "\n"
          "Runs the same workloads one by one, on worker threads and on\n"
          "worker processes, and prints wall times and speedups.\n"
          "\n"
          "  --quick       small sizes: a few seconds (--scale 0.2)\n"
          "  --workers N   workers per pool (default: one per CPU)\n"
          "  --scale X     multiply every size by X (default 1)\n"
          "  --only LIST   run only these, comma-separated:\n"
          "                cpu, io, tiny, crash, hang, stream\n"
          "  --plot FILE   where to draw the picture (default tour.png)\n"
          "  --no-plot     no picture\n"
          "  --python      also run the cpu workload with Python's threads\n"
          "                and multiprocessing (needs python3)\n");
}

static void parse(int argc, char **argv)
{
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--quick") == 0) {
      opt.scale = 0.2;
    } else if (strcmp(a, "--workers") == 0 && i + 1 < argc) {
      opt.workers = strtoul(argv[++i], NULL, 10);
    } else if (strcmp(a, "--scale") == 0 && i + 1 < argc) {
      opt.scale = strtod(argv[++i], NULL);
    } else if (strcmp(a, "--only") == 0 && i + 1 < argc) {
      opt.only = argv[++i];
    } else if (strcmp(a, "--plot") == 0 && i + 1 < argc) {
      opt.plot = argv[++i];
    } else if (strcmp(a, "--no-plot") == 0) {
      opt.plot = NULL;
    } else if (strcmp(a, "--python") == 0) {
      opt.python = true;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      exit(0);
    } else {
      usage(stderr);
      exit(2);
    }
  }
  if (opt.scale <= 0 || opt.scale > 100) {
    fprintf(stderr, "tour: --scale must be in (0, 100]\n");
    exit(2);
  }
  opt.progress = isatty(STDOUT_FILENO);
}

static bool wanted(const char *name)
{
  if (opt.only == NULL)
    return true;
  size_t n = strlen(name);
  for (const char *p = opt.only; (p = strstr(p, name)) != NULL; p += n)
    if ((p == opt.only || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
      return true;
  return false;
}

static size_t scaled(size_t n)
{
  size_t v = (size_t)((double)n * opt.scale);
  return v > 0 ? v : 1;
}

/* ----------------------------------------------------------- utilities */

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress(const char *what)
{
  if (opt.progress) {
    printf("\r\033[K  running: %s ...", what);
    fflush(stdout);
  }
}

static void progress_done(void)
{
  if (opt.progress) {
    printf("\r\033[K");
    fflush(stdout);
  }
}

static crew_pool *start_pool(int mode, size_t workers, uint64_t timeout_ns)
{
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.mode = mode;
  cfg.workers = workers;
  cfg.task_timeout_ns = timeout_ns;
  cfg.name = mode == CREW_PROCESSES ? "tour-proc" : "tour";
  crew_pool *pool;
  int rc = crew_pool_create(&pool, &cfg);
  if (rc != 0) {
    fprintf(stderr, "tour: crew_pool_create: %s\n", crew_strerror(rc));
    exit(1);
  }
  return pool;
}

/* ---------------------------------------------------------------- tasks */

/* Pure computation: a few million steps of a mixing function. */
static int compute(const void *in, void *out)
{
  uint64_t steps, x = 0x9e3779b97f4a7c15u;
  memcpy(&steps, in, sizeof steps);
  for (uint64_t i = 0; i < steps; i++)
    x = (x ^ (x >> 31)) * 0xbf58476d1ce4e5b9u + i;
  memcpy(out, &x, sizeof x);
  return 0;
}

/* Waiting: sleep for the given microseconds. */
static int wait_for(const void *in, void *out)
{
  (void)out;
  uint64_t us;
  memcpy(&us, in, sizeof us);
  struct timespec ts = {.tv_sec = (time_t)(us / 1000000),
                        .tv_nsec = (long)(us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
  return 0;
}

/* Almost nothing. */
static int add_one(const void *in, void *out)
{
  uint64_t x;
  memcpy(&x, in, sizeof x);
  x++;
  if (out != NULL) /* submitted without room for output: nothing to keep */
    memcpy(out, &x, sizeof x);
  return 0;
}

/* A crash: in a worker process only that worker dies. */
static int crash(const void *in, void *out)
{
  (void)in;
  (void)out;
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none); /* no core file for a demo */
  signal(SIGSEGV, SIG_DFL);
  raise(SIGSEGV);
  return 0;
}

/* A hang: never returns. */
static int hang(const void *in, void *out)
{
  (void)in;
  (void)out;
  for (;;)
    pause();
  return 0;
}

/* ------------------------------------------------------------- results */

#define MAX_ROWS 8

struct row {
  const char *name;                 /* short, for the picture */
  char title[64];                   /* for the table */
  double seq, thr, proc;            /* seconds; < 0: not measured */
  const char *thr_note, *proc_note; /* instead of a time */
  char sentence[256];
};

static struct row rows[MAX_ROWS];
static size_t nrows;

static struct row *new_row(const char *name)
{
  struct row *r = &rows[nrows++];
  *r = (struct row){.name = name, .seq = -1, .thr = -1, .proc = -1};
  return r;
}

/* ------------------------------------------------------------ workloads */

/* Run `items` of fn on the pool with crew_map, or one by one if NULL. */
static double run_map(crew_pool *pool, crew_fn fn, uint64_t arg, size_t items)
{
  uint64_t *in = malloc(items * sizeof *in), *out = malloc(items * sizeof *out);
  for (size_t i = 0; i < items; i++)
    in[i] = arg;
  double t0 = now_s();
  if (pool == NULL) {
    for (size_t i = 0; i < items; i++)
      fn(&in[i], &out[i]);
  } else {
    int rc = crew_map(pool, fn, in, sizeof *in, out, sizeof *out, items);
    if (rc != 0)
      fprintf(stderr, "tour: crew_map: %s\n", crew_strerror(rc));
  }
  double t = now_s() - t0;
  free(in);
  free(out);
  return t;
}

/* One workload three ways; `workers` 0 uses the default. */
static void three_ways(struct row *r, crew_fn fn, uint64_t arg, size_t items,
                       size_t workers)
{
  progress(r->title);
  r->seq = run_map(NULL, fn, arg, items);
  crew_pool *pool = start_pool(CREW_THREADS, workers, 0);
  r->thr = run_map(pool, fn, arg, items);
  crew_pool_destroy(pool);
  pool = start_pool(CREW_PROCESSES, workers, 0);
  r->proc = run_map(pool, fn, arg, items);
  crew_pool_destroy(pool);
  progress_done();
}

static size_t pool_workers(void)
{
  crew_pool *pool = start_pool(CREW_THREADS, opt.workers, 0);
  size_t n = crew_pool_workers(pool);
  crew_pool_destroy(pool);
  return n;
}

static void cpu_workload(size_t workers)
{
  size_t n = scaled(128);
  struct row *r = new_row("cpu");
  snprintf(r->title, sizeof r->title, "CPU-bound: %zu pieces of computation",
           n);
  three_ways(r, compute, 16000000, n, opt.workers);
  snprintf(r->sentence, sizeof r->sentence,
           "Computation scales with cores: %zu workers do it %.1fx (threads) "
           "and %.1fx (processes) faster than one by one.",
           workers, r->seq / r->thr, r->seq / r->proc);
}

static void io_workload(void)
{
  size_t waiting = 16;
  size_t n = scaled(64);
  struct row *r = new_row("io");
  snprintf(r->title, sizeof r->title, "Waiting: %zu tasks that each wait 20 ms",
           n);
  three_ways(r, wait_for, 20000, n, waiting);
  snprintf(r->sentence, sizeof r->sentence,
           "Waiting costs no CPU, so a pool of %zu workers (more than the "
           "cores) overlaps the waits: %.0fx faster, threads or processes.",
           waiting, r->seq / r->thr);
}

static void tiny_workload(size_t workers)
{
  struct row *r = new_row("tiny");
  size_t n = scaled(100000);
  snprintf(r->title, sizeof r->title, "Tiny: %zu tasks that add one", n);
  progress(r->title);
  r->seq = run_map(NULL, add_one, 1, n);
  /* Submitted one by one, as a server would: here hand-over is all. */
  for (int mode = CREW_THREADS; mode <= CREW_PROCESSES; mode++) {
    crew_pool *pool = start_pool(mode, workers, 0);
    uint64_t x = 1;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++)
      crew_submit(pool, add_one, &x, sizeof x, 0, NULL);
    crew_pool_shutdown(pool, CREW_DRAIN);
    double t = now_s() - t0;
    crew_pool_destroy(pool);
    if (mode == CREW_THREADS)
      r->thr = t;
    else
      r->proc = t;
  }
  progress_done();
  snprintf(r->sentence, sizeof r->sentence,
           "When a task is a few instructions, handing it over costs more "
           "than doing it: one by one is %.0fx faster than threads and %.0fx "
           "faster than processes.",
           r->thr / r->seq, r->proc / r->seq);
}

/* In a child process: a thread pool whose one task crashes. */
static int crash_in_threads(const void *in, void *out)
{
  (void)in;
  (void)out;
  crew_pool *pool = start_pool(CREW_THREADS, 2, 0);
  crew_future *f;
  crew_submit(pool, crash, NULL, 0, 0, &f);
  crew_future_wait(f); /* never returns: the crash takes the process */
  return 0;
}

static void crash_workload(size_t workers)
{
  struct row *r = new_row("crash");
  snprintf(r->title, sizeof r->title, "A crash: 1 of 20 tasks segfaults");
  progress(r->title);
  /* Threads: the child is the whole program; it dies. */
  crew_process *child;
  double t0 = now_s();
  int code = 0;
  if (crew_process_start(&child, crash_in_threads, NULL, 0, 0) == 0) {
    crew_process_join(child, &code);
    crew_process_destroy(child);
  }
  r->thr = now_s() - t0;
  static char thr_note[64];
  const char *sig = demo_signal_name(-code);
  if (sig != NULL)
    snprintf(thr_note, sizeof thr_note, "program died (%s)", sig);
  else
    snprintf(thr_note, sizeof thr_note, "program died (signal %d)", -code);
  r->thr_note = thr_note;
  /* Processes: only that task fails. */
  crew_pool *pool = start_pool(CREW_PROCESSES, workers, 0);
  crew_future *fs[20];
  uint64_t us = 1000;
  t0 = now_s();
  for (int i = 0; i < 20; i++)
    crew_submit(pool, i == 7 ? crash : wait_for, &us, sizeof us, 0, &fs[i]);
  int crashed = 0, fine = 0;
  char how[64] = "its worker died"; /* crew_future_exit() says how */
  for (int i = 0; i < 20; i++) {
    int st = crew_future_wait(fs[i]);
    crashed += st == CREW_ECRASHED;
    fine += st == 0;
    if (st == CREW_ECRASHED)
      demo_describe_exit(fs[i], how, sizeof how);
    crew_future_release(fs[i]);
  }
  r->proc = now_s() - t0;
  crew_pool_destroy(pool);
  static char proc_note[64];
  snprintf(proc_note, sizeof proc_note, "%d crashed, %d fine", crashed, fine);
  r->proc_note = proc_note;
  progress_done();
  snprintf(r->sentence, sizeof r->sentence,
           "A thread that crashes takes the whole program with it; a worker "
           "process that crashes (here %s) loses only its task "
           "(CREW_ECRASHED), is replaced, and the other %d tasks finish.",
           how, fine);
}

/* In a child process: a thread pool whose one task hangs. */
static int hang_in_threads(const void *in, void *out)
{
  (void)in;
  (void)out;
  crew_pool *pool = start_pool(CREW_THREADS, 2, 0);
  crew_future *f;
  crew_submit(pool, hang, NULL, 0, 0, &f);
  crew_future_wait(f); /* never returns */
  return 0;
}

static void hang_workload(size_t workers)
{
  struct row *r = new_row("hang");
  snprintf(r->title, sizeof r->title, "A hang: a task never returns");
  progress(r->title);
  uint64_t limit = 200 * 1000000ull;
  /* Threads: nothing can stop it; after twice the limit we kill the child
   * that stands for the whole program. */
  crew_process *child;
  double t0 = now_s();
  if (crew_process_start(&child, hang_in_threads, NULL, 0, 0) == 0) {
    int code;
    if (crew_process_join_timed(child, &code, 2 * limit) == CREW_ETIMEDOUT)
      crew_process_kill(child, SIGKILL);
    crew_process_join(child, &code);
    crew_process_destroy(child);
  }
  r->thr = now_s() - t0;
  r->thr_note = "still stuck; killed the program";
  /* Processes: killed at the deadline, CREW_EDEADLINE. */
  crew_pool *pool = start_pool(CREW_PROCESSES, workers, limit);
  crew_future *f;
  t0 = now_s();
  crew_submit(pool, hang, NULL, 0, 0, &f);
  int st = crew_future_wait(f);
  r->proc = now_s() - t0;
  crew_future_release(f);
  crew_pool_destroy(pool);
  static char proc_note[64];
  snprintf(proc_note, sizeof proc_note, "%s",
           st == CREW_EDEADLINE ? "killed at its deadline" : crew_strerror(st));
  r->proc_note = proc_note;
  progress_done();
  snprintf(r->sentence, sizeof r->sentence,
           "Threads cannot be killed, so a stuck task holds its worker "
           "forever; a worker process is killed at task_timeout_ns (%.0f ms "
           "here) and replaced.",
           r->proc * 1000);
}

/* What a stream child is asked, and what it says. */
struct stream_in {
  int imap; /* 1: crew_imap, 0: crew_map */
  size_t n, window;
};

struct stream_out {
  double seconds;
  long peak_kib; /* ru_maxrss */
  int rc;
};

struct counter {
  uint64_t next, n, sum;
};

static int count_up(void *arg, void *in)
{
  struct counter *c = arg;
  if (c->next == c->n)
    return 0;
  memcpy(in, &c->next, sizeof c->next);
  c->next++;
  return 1;
}

static int add_up(void *arg, size_t index, int status, const void *out)
{
  struct counter *c = arg;
  uint64_t y;
  (void)index;
  memcpy(&y, out, sizeof y);
  c->sum += y;
  return status;
}

/* In a child process of its own (its own peak memory): n items of add_one
 * on a thread pool, through crew_imap or crew_map. */
static int stream_child(const void *in, void *out)
{
  struct stream_in a;
  memcpy(&a, in, sizeof a);
  struct stream_out o = {0};
  crew_pool *pool = start_pool(CREW_THREADS, opt.workers, 0);
  double t0 = now_s();
  if (a.imap) {
    struct counter c = {.n = a.n};
    o.rc = crew_imap(pool, add_one, sizeof(uint64_t), sizeof(uint64_t),
                     a.window, 0, count_up, add_up, &c);
  } else {
    uint64_t *xs = malloc(a.n * sizeof *xs), *ys = malloc(a.n * sizeof *ys);
    for (size_t i = 0; xs != NULL && i < a.n; i++)
      xs[i] = i;
    o.rc = xs == NULL || ys == NULL
               ? CREW_ENOMEM
               : crew_map(pool, add_one, xs, sizeof *xs, ys, sizeof *ys, a.n);
    free(xs);
    free(ys);
  }
  o.seconds = now_s() - t0;
  crew_pool_destroy(pool);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  o.peak_kib = ru.ru_maxrss;
  memcpy(out, &o, sizeof o);
  return 0;
}

static struct stream_out stream_run(int imap, size_t n, size_t window)
{
  struct stream_in a = {imap, n, window};
  struct stream_out o = {.rc = CREW_ENOMEM};
  crew_process *child;
  if (crew_process_start(&child, stream_child, &a, sizeof a, sizeof o) == 0) {
    int code;
    crew_process_join(child, &code);
    if (code != 0 || crew_process_result(child, &o, sizeof o) != 0)
      o.rc = CREW_ECRASHED;
    crew_process_destroy(child);
  }
  return o;
}

static void stream_workload(void)
{
  struct row *r = new_row("stream");
  size_t n = scaled(1000000), window = 64;
  snprintf(r->title, sizeof r->title, "A long input: %zu items, imap vs map",
           n);
  progress(r->title);
  struct stream_out im = stream_run(1, n, window);
  struct stream_out m = stream_run(0, n, window);
  progress_done();
  static char thr_note[64];
  snprintf(thr_note, sizeof thr_note, "imap %.1f / map %.1f MiB peak",
           (double)im.peak_kib / 1024, (double)m.peak_kib / 1024);
  r->thr_note = im.rc == 0 && m.rc == 0 ? thr_note : "failed";
  r->proc_note = "(threads only)";
  snprintf(r->sentence, sizeof r->sentence,
           "crew_imap keeps %zu items in flight, so its memory stays that of "
           "its window (%.2f s); crew_map needs the input and output arrays "
           "whole, which grow with the input (%.2f s: it hands out chunks).",
           window, im.seconds, m.seconds);
}

/* ------------------------------------------------------------- python */

static const char python_script[] =
    "import sys, time, threading, multiprocessing\n"
    "def work(steps):\n"
    "    x = 0x9e3779b97f4a7c15\n"
    "    for i in range(steps):\n"
    "        x = ((x ^ (x >> 31)) * 0xbf58476d1ce4e5b9 + i) & (2**64 - 1)\n"
    "    return x\n"
    "n, steps, workers = int(sys.argv[1]), int(sys.argv[2]), "
    "int(sys.argv[3])\n"
    "t = time.monotonic(); [work(steps) for _ in range(n)]\n"
    "seq = time.monotonic() - t\n"
    "t = time.monotonic()\n"
    "ts = [threading.Thread(target=lambda: [work(steps) for _ in "
    "range(n // workers)]) for _ in range(workers)]\n"
    "[x.start() for x in ts]; [x.join() for x in ts]\n"
    "thr = time.monotonic() - t\n"
    "t = time.monotonic()\n"
    "with multiprocessing.Pool(workers) as p: p.map(work, [steps] * n)\n"
    "prc = time.monotonic() - t\n"
    "print(seq, thr, prc)\n";

static void python_workload(size_t workers)
{
  if (system("command -v python3 >/dev/null 2>&1") != 0) {
    printf("(python3 not found: skipping the Python comparison)\n");
    return;
  }
  struct row *r = new_row("python");
  snprintf(r->title, sizeof r->title, "Python, the same kind of work");
  progress(r->title);
  size_t n = workers * 4;
  char cmd[256];
  char script_path[] = "/tmp/crew-tour-XXXXXX";
  int fd = mkstemp(script_path);
  if (fd < 0)
    return;
  if (write(fd, python_script, sizeof python_script - 1) < 0) {
    close(fd);
    unlink(script_path);
    return;
  }
  close(fd);
  snprintf(cmd, sizeof cmd, "python3 %s %zu 400000 %zu", script_path, n,
           workers);
  FILE *p = popen(cmd, "r");
  if (p != NULL && fscanf(p, "%lf %lf %lf", &r->seq, &r->thr, &r->proc) != 3)
    r->seq = r->thr = r->proc = -1;
  if (p != NULL)
    pclose(p);
  unlink(script_path);
  progress_done();
  snprintf(r->sentence, sizeof r->sentence,
           "Python's threads take turns on the GIL (%.1fx, no gain); its "
           "processes %s (%.1fx) after paying for start-up and pickling. C "
           "threads need neither.",
           r->seq / r->thr, r->seq / r->proc > 1.2 ? "scale" : "barely help",
           r->seq / r->proc);
}

/* ------------------------------------------------------------- report */

static void print_time(double t, const char *note)
{
  if (note != NULL)
    printf(" %-31s", note);
  else if (t < 0)
    printf(" %-31s", "-");
  else
    printf(" %9.3f s%21s", t, "");
}

static void print_table(size_t workers)
{
  printf("\n%zu workers (threads or processes), %ld CPUs; wall times, "
         "speedup over one by one\n\n",
         workers, sysconf(_SC_NPROCESSORS_ONLN));
  printf("%-44s %-13s %-31s %-31s\n", "workload", "one by one", "threads",
         "processes");
  for (size_t i = 0; i < nrows; i++) {
    struct row *r = &rows[i];
    printf("%-44s", r->title);
    if (r->seq >= 0)
      printf(" %9.3f s  ", r->seq);
    else
      printf(" %-13s", "-");
    if (r->thr_note == NULL && r->thr > 0 && r->seq > 0) {
      char buf[40];
      snprintf(buf, sizeof buf, "%.3f s (%.2fx)", r->thr, r->seq / r->thr);
      printf(" %-31s", buf);
    } else {
      print_time(r->thr, r->thr_note);
    }
    if (r->proc_note == NULL && r->proc > 0 && r->seq > 0) {
      char buf[40];
      snprintf(buf, sizeof buf, "%.3f s (%.2fx)", r->proc, r->seq / r->proc);
      printf(" %-31s", buf);
    } else {
      print_time(r->proc, r->proc_note);
    }
    printf("\n    %s\n", r->sentence);
  }
}

/* The picture: speedups over one by one, threads and processes, per row
 * that has them. */
static void draw(void)
{
  if (opt.plot == NULL)
    return;
  char data[512], script[512];
  snprintf(data, sizeof data, "%s.dat", opt.plot);
  snprintf(script, sizeof script, "%s.gp", opt.plot);
  FILE *d = fopen(data, "w");
  FILE *g = fopen(script, "w");
  if (d == NULL || g == NULL) {
    fprintf(stderr, "tour: cannot write %s or %s\n", data, script);
    if (d != NULL)
      fclose(d);
    if (g != NULL)
      fclose(g);
    return;
  }
  fprintf(d, "# workload threads processes (speedup over one by one)\n");
  for (size_t i = 0; i < nrows; i++) {
    struct row *r = &rows[i];
    if (r->seq > 0 && r->thr > 0 && r->proc > 0 && r->thr_note == NULL)
      fprintf(d, "%s %.3f %.3f\n", r->name, r->seq / r->thr, r->seq / r->proc);
  }
  fclose(d);
  fprintf(g,
          "set terminal pngcairo size 800,480 noenhanced\n"
          "set output '%s'\n"
          "set title 'crew: speedup over running the tasks one by one'\n"
          "set style data histograms\n"
          "set style histogram clustered gap 1\n"
          "set style fill solid 0.8 border -1\n"
          "set logscale y\n"
          "set yrange [0.01:*]\n"
          "set ylabel 'speedup (log scale; below 1 is slower)'\n"
          "set grid ytics\n"
          "set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2\n"
          "plot '%s' using 2:xtic(1) title 'threads', '' using 3 title "
          "'processes'\n",
          opt.plot, data);
  fclose(g);
  char cmd[1100];
  snprintf(cmd, sizeof cmd,
           "command -v gnuplot >/dev/null 2>&1 && gnuplot '%s' 2>/dev/null",
           script);
  if (system(cmd) == 0)
    printf("\nThe picture: %s (drawn by gnuplot from %s and %s)\n", opt.plot,
           data, script);
  else
    printf("\nNo picture: gnuplot is not installed (apt-get install "
           "gnuplot-nox), or could not draw. The data is in %s; draw it with: "
           "gnuplot %s\n",
           data, script);
}

int main(int argc, char **argv)
{
  parse(argc, argv);
  setvbuf(stdout, NULL, _IOLBF, 0);
  size_t workers = pool_workers();
  printf("crew %s: threads or processes? (sizes x%g)\n", crew_version(),
         opt.scale);
  if (wanted("cpu"))
    cpu_workload(workers);
  if (wanted("io"))
    io_workload();
  if (wanted("tiny"))
    tiny_workload(workers);
  if (wanted("crash"))
    crash_workload(workers);
  if (wanted("hang"))
    hang_workload(workers);
  if (wanted("stream"))
    stream_workload();
  if (opt.python)
    python_workload(workers);
  print_table(workers);
  draw();
  return 0;
}
