/*
 * mpi_map - a map spread over MPI ranks, with a crew pool inside each
 * rank: the hybrid pattern, one rank per machine (or socket) and a pool of
 * workers inside each.
 *
 *   mpirun -np P --bind-to none ./mpi_map [--items N] [--rounds R]
 *          [--chunk C] [--workers W] [--processes] [--crash-item K]
 *          [--stats]
 *
 * It maps common.h's item function (the tour's computation: item i gives a
 * 64-bit value that depends only on i and R) over items 0 .. N-1. Rank 0
 * hands out chunks of C items on request, so a faster rank asks more often;
 * every rank, rank 0 included, runs its chunks with crew_map on its own
 * pool of W workers (threads, or processes with --processes; W 0: one per
 * CPU the rank may run on); results go back to rank 0, which prints one
 * line on stdout:
 *
 *   mpi_map: items N ranks P workers W mode threads|processes checksum HEX
 *            failed F seconds S
 *
 * (on one line). The checksum is common.h's (FNV-1a 64 over the results
 * in item order, a failed item counting as 0), so it depends on N and R
 * only; F counts the items whose task failed; S is the wall time of the
 * map on rank 0, from a barrier after start-up to the last result, with
 * rank 0's W workers (another rank may have another count with W 0).
 * --stats adds, on stderr, what each rank ran and its mean round trip to
 * rank 0 for a chunk. --crash-item K makes item K crash its worker: with
 * processes that item fails with CREW_ECRASHED and the rest of the run
 * completes; with threads the flag is refused, as the crash would take the
 * rank, and the job, down.
 *
 * What travels between ranks: numbers, never pointers. Function addresses
 * differ between processes (and binaries, and machines), so an order names
 * its task by an index into tasks[], a table every rank has, and carries
 * the inputs by value; results come back by value.
 *
 *   order,   rank 0 -> rank r: {task, first item, count, rounds, crash
 *                               item}; count 0 means there is no more work
 *   results, rank r -> rank 0: {first item, count, then count pairs
 *                               (value, status)}; the first request of a
 *                               rank carries no results (count 0)
 *
 * Threads and MPI: only the main thread of each rank calls MPI
 * (MPI_THREAD_FUNNELED); crew's workers never do, and nor does the one
 * helper thread on rank 0 that runs rank 0's own chunks while the main
 * thread answers the other ranks. A main thread waits for a message by
 * testing for it, then napping between tests (wait_all), not in a
 * blocking call: Open MPI's blocking calls spin, and a spinning main
 * thread would take a core from its rank's workers. The naps cost a round
 * trip up to about a millisecond, so a chunk should run for much longer.
 *
 * Fork and MPI: the pool is created before MPI_Init, so in process mode
 * its fork server, and every worker it forks later, replacements
 * included, start from a process that has no MPI state: no
 * connection to the MPI runtime, no shared-memory segments, no memory
 * registered with a network card. None of them calls MPI. The pool is
 * destroyed (its workers and fork server joined) before MPI_Finalize. On a
 * fatal error the job is aborted (MPI_Abort), and a process pool's fork
 * server and workers die with their rank.
 */
#include "common.h"

#include <crew.h>
#include <mpi.h>

#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* A main thread waiting for a message tests for it for SPIN_NS, then naps
 * between tests, 50 us at first, twice as long each time, up to
 * SERVE_NAP_NS on rank 0 (which waits for requests for as long as a chunk
 * runs) and ORDER_NAP_NS on the others (which wait for a round trip). See
 * wait_all. */
#ifndef SPIN_NS
#define SPIN_NS 20000
#endif
#ifndef SERVE_NAP_NS
#define SERVE_NAP_NS 1000000
#endif
#ifndef ORDER_NAP_NS
#define ORDER_NAP_NS 100000
#endif

/* ------------------------------------------------------------- options */

struct options {
  uint64_t items, rounds, chunk, workers;
  uint64_t crash; /* UINT64_MAX: none */
  bool processes, stats;
};

enum parsed { PARSED_OK, PARSED_HELP, PARSED_BAD };

static void usage(FILE *to)
{
  fprintf(to,
          "usage: mpi_map [--items N] [--rounds R] [--chunk C] [--workers W]\n"
          "               [--processes] [--crash-item K] [--stats]\n"
          "\n"
          "Maps R steps of a mixing function over items 0 .. N-1 across the\n"
          "MPI ranks, in chunks of C items handed out by rank 0, each rank\n"
          "running its chunks on a crew pool of W workers (threads, or\n"
          "processes with --processes; W 0: one per CPU). Defaults: N 2000,\n"
          "R 1000000, C 32, W 0. --crash-item K (processes only) makes item\n"
          "K crash its worker; --stats prints each rank's share on stderr.\n"
          "Run it under mpirun; give --bind-to none (or a binding with\n"
          "several cores per rank) so that a rank's workers are not all\n"
          "pinned to one core.\n");
}

/* Reads the arguments; on PARSED_BAD, *why says what is wrong. */
static enum parsed parse_options(int argc, char **argv, struct options *o,
                                 char *why, size_t why_size)
{
  *o = (struct options){.items = 2000,
                        .rounds = 1000000,
                        .chunk = 32,
                        .workers = 0,
                        .crash = UINT64_MAX};
  for (int a = 1; a < argc; a++) {
    const char *arg = argv[a];
    bool ok = true;
    if (strcmp(arg, "--items") == 0)
      ok = number_arg(argc, argv, &a, &o->items);
    else if (strcmp(arg, "--rounds") == 0)
      ok = number_arg(argc, argv, &a, &o->rounds);
    else if (strcmp(arg, "--chunk") == 0)
      ok = number_arg(argc, argv, &a, &o->chunk) && o->chunk > 0;
    else if (strcmp(arg, "--workers") == 0)
      ok = number_arg(argc, argv, &a, &o->workers) &&
           o->workers <= CREW_WORKERS_MAX;
    else if (strcmp(arg, "--crash-item") == 0)
      ok = number_arg(argc, argv, &a, &o->crash) && o->crash != UINT64_MAX;
    else if (strcmp(arg, "--processes") == 0)
      o->processes = true;
    else if (strcmp(arg, "--stats") == 0)
      o->stats = true;
    else if (strcmp(arg, "--help") == 0)
      return PARSED_HELP;
    else
      ok = false;
    if (!ok) {
      snprintf(why, why_size, "bad argument: %s%s%s", arg,
               a < argc && argv[a] != arg ? " " : "",
               a < argc && argv[a] != arg ? argv[a] : "");
      return PARSED_BAD;
    }
  }
  if (o->crash != UINT64_MAX && !o->processes) {
    snprintf(why, why_size,
             "--crash-item needs --processes: a crashing worker thread "
             "takes its rank, and the whole job, down");
    return PARSED_BAD;
  }
  /* Rank 0 keeps a value and a status per item. */
  if (o->items > SIZE_MAX / (sizeof(uint64_t) + sizeof(int))) {
    snprintf(why, why_size, "--items %" PRIu64 " is too many", o->items);
    return PARSED_BAD;
  }
  /* A chunk larger than the map is the whole map; a results message must
   * count its words in an int. */
  if (o->chunk > o->items && o->items > 0)
    o->chunk = o->items;
  if (o->chunk > (INT_MAX - 2) / 2) {
    snprintf(why, why_size, "--chunk is at most %d", (INT_MAX - 2) / 2);
    return PARSED_BAD;
  }
  return PARSED_OK;
}

/* ---------------------------------------------------------------- tasks */

struct item_in {
  uint64_t item, rounds;
  uint64_t crash; /* 1: crash instead */
};

struct item_out {
  uint64_t value;
  uint64_t done; /* set by the task: an item left at 0 did not run */
};

static int mix_item(const void *in, void *out)
{
  const struct item_in *a = in;
  struct item_out *r = out;
  if (a->crash) {
    struct rlimit none = {0, 0};
    setrlimit(RLIMIT_CORE, &none); /* no core file for a planned crash */
    signal(SIGSEGV, SIG_DFL);
    raise(SIGSEGV);
  }
  r->value = item_value(a->item, a->rounds);
  r->done = 1;
  return 0;
}

/* The tasks an order may name, by index: the same table on every rank. */
enum { TASK_MIX, NTASKS };
static const crew_fn tasks[NTASKS] = {[TASK_MIX] = mix_item};

/* ------------------------------------------------------------- messages */

enum { TAG_RESULTS = 1, TAG_ORDER = 2 };
enum { O_TASK, O_FIRST, O_COUNT, O_ROUNDS, O_CRASH, ORDER_WORDS };
#define RESULTS_HEAD 2 /* first, count; then (value, status) pairs */

static void fatal(int rank, const char *what, const char *why)
{
  fprintf(stderr, "mpi_map: rank %d: %s: %s\n", rank, what, why);
  MPI_Abort(MPI_COMM_WORLD, 1);
  exit(1); /* MPI_Abort does not return; this is for the compiler */
}

/* MPI_COMM_WORLD returns errors (MPI_ERRORS_RETURN): check each call. */
static void mpi_check(int rank, int rc, const char *what)
{
  if (rc == MPI_SUCCESS)
    return;
  char why[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, why, &len) != MPI_SUCCESS)
    snprintf(why, sizeof why, "MPI error %d", rc);
  fatal(rank, what, why);
}

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Wait for n requests to complete without holding a core: test them for
 * SPIN_NS (an answer that comes at once costs no nap), then nap between
 * tests, from 50 us up to max_nap_ns. MPI_Waitall would spin instead (Open
 * MPI polls its transports until the message is there), and on a rank
 * whose workers use every core that spin would slow them down; short naps
 * cost wake-ups, long ones delay the answer. Progress happens inside
 * MPI_Testall.
 */
static void wait_all(int rank, int n, MPI_Request *reqs, MPI_Status *st,
                     long max_nap_ns)
{
  double until = now_s() + SPIN_NS / 1e9;
  long nap_ns = 50000;
  for (;;) {
    int done = 0;
    mpi_check(rank, MPI_Testall(n, reqs, &done, st), "MPI_Testall");
    if (done)
      return;
    if (now_s() >= until) {
      struct timespec nap = {0, nap_ns < max_nap_ns ? nap_ns : max_nap_ns};
      nanosleep(&nap, NULL);
      if (nap_ns < max_nap_ns)
        nap_ns *= 2;
    }
  }
}

/* ----------------------------------------------------- a chunk, locally */

/* Room to map one chunk: inputs, outputs, and which items are left. */
struct chunk_room {
  struct item_in *in;
  struct item_out *out;
  size_t *left;
};

static int room_alloc(struct chunk_room *r, size_t chunk)
{
  r->in = malloc(chunk * sizeof *r->in);
  r->out = malloc(chunk * sizeof *r->out);
  r->left = malloc(chunk * sizeof *r->left);
  return r->in && r->out && r->left ? 0 : CREW_ENOMEM;
}

static void room_free(struct chunk_room *r)
{
  free(r->in);
  free(r->out);
  free(r->left);
}

/*
 * Run an order's items on the pool with crew_map: value[j] and status[j]
 * for item first + j. A worker process that dies in a map takes the item
 * it ran (the lowest-index item of the map that did not run: crew runs a
 * map's internal chunks in order) and loses the rest of its internal
 * chunk; that item fails with the map's status (CREW_ECRASHED), and the
 * lost ones are mapped again, until every item ran or failed. Returns 0,
 * or a crew error that stops this rank (a map that could not run at all).
 */
static int run_order(crew_pool *pool, const uint64_t order[ORDER_WORDS],
                     struct chunk_room *room, uint64_t *value, int *status)
{
  crew_fn fn = tasks[order[O_TASK]];
  size_t n = (size_t)order[O_COUNT];
  for (size_t j = 0; j < n; j++)
    room->left[j] = j;
  while (n > 0) {
    for (size_t k = 0; k < n; k++) {
      uint64_t item = order[O_FIRST] + room->left[k];
      room->in[k] = (struct item_in){.item = item,
                                     .rounds = order[O_ROUNDS],
                                     .crash = item == order[O_CRASH]};
      room->out[k] = (struct item_out){0};
    }
    int rc = crew_map(pool, fn, room->in, sizeof *room->in, room->out,
                      sizeof *room->out, n);
    if (rc == CREW_EINVAL || rc == CREW_ECLOSED || rc == CREW_ENOMEM)
      return rc;
    size_t still = 0;
    bool blamed = false;
    for (size_t k = 0; k < n; k++) {
      size_t j = room->left[k];
      if (room->out[k].done) {
        value[j] = room->out[k].value;
        status[j] = 0;
      } else if (!blamed && rc != 0) {
        value[j] = 0;
        status[j] = rc;
        blamed = true;
      } else if (rc == 0) {
        return CREW_ECRASHED; /* crew_map said every item ran: it did not */
      } else {
        room->left[still++] = j;
      }
    }
    n = still;
  }
  return 0;
}

/* What one rank did, gathered on rank 0 for --stats. */
enum { S_CHUNKS, S_ITEMS, S_MAP_S, S_WAIT_S, NSTATS };

/* -------------------------------------------------- rank 0's dispenser */

struct dispenser {
  pthread_mutex_t lock;
  uint64_t next, items, chunk;
};

/* The next chunk into order (count 0 once every item is handed out). */
static void take_order(struct dispenser *d, const struct options *o,
                       uint64_t order[ORDER_WORDS])
{
  pthread_mutex_lock(&d->lock);
  uint64_t first = d->next;
  uint64_t count = d->items - first < d->chunk ? d->items - first : d->chunk;
  d->next += count;
  pthread_mutex_unlock(&d->lock);
  order[O_TASK] = TASK_MIX;
  order[O_FIRST] = first;
  order[O_COUNT] = count;
  order[O_ROUNDS] = o->rounds;
  order[O_CRASH] = o->crash;
}

/* Rank 0's own share: a helper thread, which never calls MPI. */
struct local {
  crew_pool *pool;
  struct dispenser *d;
  const struct options *o;
  uint64_t *value;
  int *status;
  struct chunk_room room;
  double stats[NSTATS];
  int rc;
};

static void *local_main(void *arg)
{
  struct local *l = arg;
  for (;;) {
    uint64_t order[ORDER_WORDS];
    take_order(l->d, l->o, order);
    if (order[O_COUNT] == 0)
      break;
    double t0 = now_s();
    uint64_t first = order[O_FIRST];
    l->rc = run_order(l->pool, order, &l->room, l->value + first,
                      l->status + first);
    l->stats[S_MAP_S] += now_s() - t0;
    if (l->rc != 0)
      break;
    l->stats[S_CHUNKS]++;
    l->stats[S_ITEMS] += (double)order[O_COUNT];
  }
  return NULL;
}

/* Rank 0's main thread: answer the other ranks until each has been told
 * there is no more work, storing the results they send. */
static void serve(int nranks, const struct options *o, struct dispenser *d,
                  uint64_t *value, int *status)
{
  size_t cap = RESULTS_HEAD + 2 * (size_t)o->chunk;
  uint64_t *msg = malloc(cap * sizeof *msg);
  uint64_t(*given)[2] = calloc((size_t)nranks, sizeof *given);
  if (msg == NULL || given == NULL)
    fatal(0, "serve", "out of memory");
  int active = nranks - 1;
  while (active > 0) {
    MPI_Request req;
    MPI_Status st;
    int src, words = 0;
    mpi_check(0,
              MPI_Irecv(msg, (int)cap, MPI_UINT64_T, MPI_ANY_SOURCE,
                        TAG_RESULTS, MPI_COMM_WORLD, &req),
              "MPI_Irecv");
    wait_all(0, 1, &req, &st, SERVE_NAP_NS);
    src = st.MPI_SOURCE;
    mpi_check(0, MPI_Get_count(&st, MPI_UINT64_T, &words), "MPI_Get_count");
    /* Results must be those of the order this rank was given. */
    uint64_t first = msg[0], count = msg[1];
    if (words < RESULTS_HEAD || first != given[src][0] ||
        count != given[src][1] || (uint64_t)words != RESULTS_HEAD + 2 * count)
      fatal(0, "serve", "results that match no order");
    for (uint64_t j = 0; j < count; j++) {
      value[first + j] = msg[RESULTS_HEAD + 2 * j];
      status[first + j] = (int)(int64_t)msg[RESULTS_HEAD + 2 * j + 1];
    }
    uint64_t order[ORDER_WORDS];
    take_order(d, o, order);
    given[src][0] = order[O_FIRST];
    given[src][1] = order[O_COUNT];
    if (order[O_COUNT] == 0)
      active--;
    /* The rank posted its receive for this before it sent its results:
     * the send matches at once. */
    mpi_check(0,
              MPI_Send(order, ORDER_WORDS, MPI_UINT64_T, src, TAG_ORDER,
                       MPI_COMM_WORLD),
              "MPI_Send");
  }
  free(msg);
  free(given);
}

/* Ranks other than 0: ask for an order (with the previous results), run
 * it, until told there is no more. */
static void work(int rank, crew_pool *pool, const struct options *o,
                 struct chunk_room *room, double stats[NSTATS])
{
  size_t chunk = (size_t)o->chunk;
  uint64_t *msg = malloc((RESULTS_HEAD + 2 * chunk) * sizeof *msg);
  uint64_t *value = malloc(chunk * sizeof *value);
  int *status = malloc(chunk * sizeof *status);
  if (msg == NULL || value == NULL || status == NULL)
    fatal(rank, "work", "out of memory");
  msg[0] = msg[1] = 0;
  int words = RESULTS_HEAD;
  for (;;) {
    uint64_t order[ORDER_WORDS];
    MPI_Request reqs[2];
    MPI_Status st[2];
    double t0 = MPI_Wtime();
    mpi_check(rank,
              MPI_Irecv(order, ORDER_WORDS, MPI_UINT64_T, 0, TAG_ORDER,
                        MPI_COMM_WORLD, &reqs[0]),
              "MPI_Irecv");
    mpi_check(rank,
              MPI_Isend(msg, words, MPI_UINT64_T, 0, TAG_RESULTS,
                        MPI_COMM_WORLD, &reqs[1]),
              "MPI_Isend");
    wait_all(rank, 2, reqs, st, ORDER_NAP_NS);
    stats[S_WAIT_S] += MPI_Wtime() - t0;
    uint64_t count = order[O_COUNT];
    if (count == 0)
      break;
    if (order[O_TASK] >= NTASKS || count > chunk)
      fatal(rank, "work", "an order it cannot run");
    double t1 = MPI_Wtime();
    int rc = run_order(pool, order, room, value, status);
    if (rc != 0)
      fatal(rank, "crew_map", crew_strerror(rc));
    stats[S_MAP_S] += MPI_Wtime() - t1;
    stats[S_CHUNKS]++;
    stats[S_ITEMS] += (double)count;
    msg[0] = order[O_FIRST];
    msg[1] = count;
    for (uint64_t j = 0; j < count; j++) {
      msg[RESULTS_HEAD + 2 * j] = value[j];
      msg[RESULTS_HEAD + 2 * j + 1] = (uint64_t)(int64_t)status[j];
    }
    words = (int)(RESULTS_HEAD + 2 * count);
  }
  free(msg);
  free(value);
  free(status);
}

/* ----------------------------------------------------------------- main */

/* Rank 0: run the map with the other ranks; print the line. */
static void lead(int nranks, crew_pool *pool, const struct options *o,
                 struct chunk_room *room, uint64_t *value, int *status)
{
  struct dispenser d = {.next = 0, .items = o->items, .chunk = o->chunk};
  if (pthread_mutex_init(&d.lock, NULL) != 0)
    fatal(0, "pthread_mutex_init", "failed");
  struct local l = {.pool = pool,
                    .d = &d,
                    .o = o,
                    .value = value,
                    .status = status,
                    .room = *room};
  double t0 = MPI_Wtime();
  if (nranks == 1) {
    local_main(&l); /* nobody to answer: no helper thread */
  } else {
    pthread_t helper;
    int rc = pthread_create(&helper, NULL, local_main, &l);
    if (rc != 0)
      fatal(0, "pthread_create", strerror(rc));
    serve(nranks, o, &d, value, status);
    rc = pthread_join(helper, NULL);
    if (rc != 0)
      fatal(0, "pthread_join", strerror(rc));
  }
  double seconds = MPI_Wtime() - t0;
  pthread_mutex_destroy(&d.lock);
  if (l.rc != 0)
    fatal(0, "crew_map", crew_strerror(l.rc));

  double *all = malloc((size_t)nranks * NSTATS * sizeof *all);
  if (all == NULL)
    fatal(0, "stats", "out of memory");
  mpi_check(0,
            MPI_Gather(l.stats, NSTATS, MPI_DOUBLE, all, NSTATS, MPI_DOUBLE, 0,
                       MPI_COMM_WORLD),
            "MPI_Gather");

  uint64_t sum = CHECKSUM_START, failed = 0;
  for (size_t i = 0; i < (size_t)o->items; i++) {
    failed += status[i] != 0;
    sum = checksum_add(sum, status[i] != 0 ? 0 : value[i]);
  }
  printf("mpi_map: items %" PRIu64 " ranks %d workers %zu mode %s checksum "
         "%016" PRIx64 " failed %" PRIu64 " seconds %.3f\n",
         o->items, nranks, crew_pool_workers(pool),
         o->processes ? "processes" : "threads", sum, failed, seconds);
  fflush(stdout);
  if (o->stats) {
    for (int r = 0; r < nranks; r++) {
      const double *s = &all[(size_t)r * NSTATS];
      fprintf(stderr, "mpi_map: rank %d: chunks %.0f items %.0f mapping %.3f s",
              r, s[S_CHUNKS], s[S_ITEMS], s[S_MAP_S]);
      if (r > 0) /* a round trip per chunk, and one for the last word */
        fprintf(stderr, " waiting %.3f s, %.1f us per round trip", s[S_WAIT_S],
                s[S_WAIT_S] / (s[S_CHUNKS] + 1) * 1e6);
      fprintf(stderr, "\n");
    }
  }
  free(all);
}

int main(int argc, char **argv)
{
  /* Before MPI_Init: read the arguments (every rank has the same) and, if
   * they are good, create the pool, so that a process pool's fork server
   * is forked from a process without MPI state. */
  struct options o;
  char why[256] = "";
  enum parsed parsed = parse_options(argc, argv, &o, why, sizeof why);
  crew_pool *pool = NULL;
  int pool_rc = 0;
  if (parsed == PARSED_OK) {
    crew_config cfg;
    crew_config_init(&cfg);
    cfg.mode = o.processes ? CREW_PROCESSES : CREW_THREADS;
    cfg.workers = (size_t)o.workers;
    cfg.name = "mpi_map";
    pool_rc = crew_pool_create(&pool, &cfg);
  }

  int provided = 0;
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) !=
      MPI_SUCCESS) {
    fprintf(stderr, "mpi_map: MPI_Init_thread failed\n");
    if (pool != NULL)
      crew_pool_destroy(pool);
    return 1;
  }
  int rank = 0, nranks = 1;
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  mpi_check(0, MPI_Comm_rank(MPI_COMM_WORLD, &rank), "MPI_Comm_rank");
  mpi_check(rank, MPI_Comm_size(MPI_COMM_WORLD, &nranks), "MPI_Comm_size");
  if (provided < MPI_THREAD_FUNNELED)
    fatal(rank, "MPI_Init_thread", "no MPI_THREAD_FUNNELED");

  if (parsed != PARSED_OK) {
    if (rank == 0 && parsed == PARSED_HELP)
      usage(stdout);
    if (rank == 0 && parsed == PARSED_BAD) {
      fprintf(stderr, "mpi_map: %s\n", why);
      usage(stderr);
    }
    mpi_check(rank, MPI_Finalize(), "MPI_Finalize");
    return parsed == PARSED_HELP ? 0 : 2;
  }

  /* Everything a rank needs, then whether every rank has it. */
  struct chunk_room room = {0};
  uint64_t *value = NULL;
  int *status = NULL;
  int ok = pool_rc == 0;
  if (!ok)
    fprintf(stderr, "mpi_map: rank %d: crew_pool_create: %s\n", rank,
            crew_strerror(pool_rc));
  else if (room_alloc(&room, (size_t)o.chunk) != 0)
    ok = 0;
  if (ok && rank == 0) {
    size_t n = (size_t)o.items;
    value = malloc(n ? n * sizeof *value : 1);
    status = malloc(n ? n * sizeof *status : 1);
    ok = value != NULL && status != NULL;
  }
  if (pool_rc == 0 && !ok)
    fprintf(stderr, "mpi_map: rank %d: out of memory\n", rank);
  int all_ok = 0;
  mpi_check(rank,
            MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD),
            "MPI_Allreduce");
  if (all_ok) {
    mpi_check(rank, MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
    if (rank == 0) {
      lead(nranks, pool, &o, &room, value, status);
    } else {
      double stats[NSTATS] = {0};
      work(rank, pool, &o, &room, stats);
      mpi_check(rank,
                MPI_Gather(stats, NSTATS, MPI_DOUBLE, NULL, 0, MPI_DOUBLE, 0,
                           MPI_COMM_WORLD),
                "MPI_Gather");
    }
  }
  room_free(&room);
  free(value);
  free(status);
  /* The pool, its workers and its fork server are gone before MPI is. */
  if (pool != NULL)
    crew_pool_destroy(pool);
  mpi_check(rank, MPI_Finalize(), "MPI_Finalize");
  return all_ok ? 0 : 1;
}
