/*
 * check_map.c - crew_map: argument errors, every item computed exactly once
 * with any stride and pool size, failures, concurrent maps, maps from
 * inside tasks, counters, and a CREW_CANCEL shutdown racing a map.
 *
 * Items count their own runs (atomic per-item counters), so "every item ran
 * exactly once" is checked item by item.
 */
#include "testutil.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* -------------------------------------------------------------- helpers */

/* Per-item run counts of the items of the current map (test thread sets it
 * before mapping; the map hands it to the workers). */
static _Atomic unsigned *hits;
/* Calls of the tasks that do not know their item. */
static _Atomic size_t calls;

static _Atomic unsigned *new_hits(size_t n)
{
  _Atomic unsigned *h = calloc(n, sizeof *h);
  ck_assert_ptr_nonnull(h);
  for (size_t i = 0; i < n; i++)
    atomic_init(&h[i], 0);
  return h;
}

/* out = in * in for int64_t items; counts the item's run. */
static int square_task(const void *in, void *out)
{
  int64_t x = *(const int64_t *)in;
  *(int64_t *)out = x * x;
  atomic_fetch_add(&hits[x], 1);
  return 0;
}

static int count_task(const void *in, void *out)
{
  (void)in;
  (void)out;
  atomic_fetch_add(&calls, 1);
  return 0;
}

/* An item that carries its own run counter: for maps that run at once. */
struct rec {
  int64_t x;
  _Atomic unsigned *hit;
};

static int rec_task(const void *in, void *out)
{
  const struct rec *r = in;
  *(int64_t *)out = r->x * r->x;
  atomic_fetch_add(r->hit, 1);
  return 0;
}

/* n records x = i with counters h[i], and outputs set to -1. */
static void make_recs(struct rec *recs, int64_t *outs, _Atomic unsigned *h,
                      size_t n)
{
  for (size_t i = 0; i < n; i++) {
    recs[i] = (struct rec){.x = (int64_t)i, .hit = &h[i]};
    outs[i] = -1;
  }
}

/* How many of n records are wrong: not run exactly once, or wrong output. */
static size_t wrong_recs(const int64_t *outs, _Atomic unsigned *h, size_t n)
{
  size_t wrong = 0;
  for (size_t i = 0; i < n; i++)
    wrong += atomic_load(&h[i]) != 1 || outs[i] != (int64_t)(i * i);
  return wrong;
}

/* The squares of 0..n-1 on pool: every output right, every item once. */
static void map_squares(crew_pool *pool, size_t n)
{
  int64_t *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
  ck_assert_ptr_nonnull(in);
  ck_assert_ptr_nonnull(out);
  hits = new_hits(n);
  for (size_t i = 0; i < n; i++) {
    in[i] = (int64_t)i;
    out[i] = -1;
  }
  ck_assert_int_eq(
      crew_map(pool, square_task, in, sizeof *in, out, sizeof *out, n), 0);
  size_t wrong = 0, first = n;
  for (size_t i = 0; i < n; i++) {
    if (atomic_load(&hits[i]) != 1 || out[i] != (int64_t)(i * i) ||
        in[i] != (int64_t)i) {
      wrong++;
      if (first == n)
        first = i;
    }
  }
  ck_assert_msg(wrong == 0, "n %zu: %zu items wrong, first %zu", n, wrong,
                first);
  free((void *)hits);
  hits = NULL;
  free(in);
  free(out);
}

/* --------------------------------------------------------------- errors */

START_TEST(map_refuses_bad_arguments)
{
  crew_pool *pool = make_pool(2, 0);
  int64_t in[4] = {0, 1, 2, 3}, out[4];
  ck_assert_int_eq(crew_map(NULL, count_task, in, 8, out, 8, 4), CREW_EINVAL);
  ck_assert_int_eq(crew_map(pool, NULL, in, 8, out, 8, 4), CREW_EINVAL);
  ck_assert_int_eq(crew_map(pool, count_task, NULL, 8, out, 8, 4), CREW_EINVAL);
  ck_assert_int_eq(crew_map(pool, count_task, in, 8, NULL, 8, 4), CREW_EINVAL);
  ck_assert_int_eq(crew_map(pool, count_task, in, 4, NULL, 0, SIZE_MAX / 2),
                   CREW_EINVAL);
  ck_assert_int_eq(crew_map(pool, count_task, NULL, 0, out, 4, SIZE_MAX / 2),
                   CREW_EINVAL);
  ck_assert_int_eq(crew_map(pool, count_task, in, 8, out, 8, SIZE_MAX),
                   CREW_EINVAL);
  ck_assert_uint_eq(atomic_load(&calls), 0);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, 0);
  crew_pool_destroy(pool);
}
END_TEST

START_TEST(map_refuses_count_times_stride_overflowing_by_one_item)
{
  /* count * stride overflows, (count - 1) * stride does not. */
  crew_pool *pool = make_pool(2, 0);
  int64_t in[2] = {0, 1}, out[2];
  size_t stride = SIZE_MAX / 2 + 1;
  ck_assert_int_eq(crew_map(pool, count_task, in, stride, NULL, 0, 2),
                   CREW_EINVAL);
  ck_assert_int_eq(crew_map(pool, count_task, NULL, 0, out, stride, 2),
                   CREW_EINVAL);
  ck_assert_uint_eq(atomic_load(&calls), 0);
  crew_pool_destroy(pool);
}
END_TEST

START_TEST(map_of_nothing_calls_nothing)
{
  crew_pool *pool = make_pool(2, 0);
  int64_t in[1] = {0}, out[1] = {0};
  ck_assert_int_eq(crew_map(pool, count_task, in, 8, out, 8, 0), 0);
  ck_assert_int_eq(crew_map(pool, count_task, NULL, 0, NULL, 0, 0), 0);
  ck_assert_uint_eq(atomic_load(&calls), 0);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, 0);
  ck_assert_uint_eq(st.completed, 0);
  crew_pool_destroy(pool);
}
END_TEST

START_TEST(map_on_a_shut_down_pool_is_closed)
{
  crew_pool *pool = make_pool(2, 0);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  int64_t in[3] = {0, 1, 2}, out[3];
  ck_assert_int_eq(crew_map(pool, count_task, in, 8, out, 8, 3), CREW_ECLOSED);
  ck_assert_int_eq(crew_map(pool, count_task, NULL, 0, NULL, 0, 3),
                   CREW_ECLOSED);
  ck_assert_uint_eq(atomic_load(&calls), 0);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, 0);
  crew_pool_destroy(pool);
}
END_TEST

/* ---------------------------------------------------------- correctness */

static const size_t pool_sizes[] = {1, 2, 5};
static const size_t map_sizes[] = {1, 2, 3, 7, 100, 1001, 100000};

START_TEST(map_computes_every_item_exactly_once)
{
  crew_pool *pool = make_pool(pool_sizes[_i], 0);
  uint64_t total = 0;
  for (size_t k = 0; k < sizeof map_sizes / sizeof map_sizes[0]; k++) {
    map_squares(pool, map_sizes[k]);
    total += map_sizes[k];
  }
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, total);
  ck_assert_uint_eq(st.completed, total);
  ck_assert_uint_eq(st.failed, 0);
  crew_pool_destroy(pool);
}
END_TEST

/* Records larger than their element, with padding the map must not touch. */
struct in_rec {
  int32_t x;
  unsigned char pad[20];
};

struct out_rec {
  int64_t y;
  unsigned char pad[32];
};

_Static_assert(sizeof(struct in_rec) == 24, "in_rec is 24 bytes");
_Static_assert(sizeof(struct out_rec) == 40, "out_rec is 40 bytes");

static int padded_square_task(const void *in, void *out)
{
  int32_t x = ((const struct in_rec *)in)->x;
  ((struct out_rec *)out)->y = (int64_t)x * x;
  atomic_fetch_add(&hits[x], 1);
  return 0;
}

START_TEST(map_honours_strides_larger_than_the_element)
{
  enum { N = 1000 };
  crew_pool *pool = make_pool(3, 0);
  static struct in_rec in[N];
  static struct out_rec out[N];
  unsigned char in_pad[20], out_pad[32];
  memset(in_pad, 0xee, sizeof in_pad);
  memset(out_pad, 0x5a, sizeof out_pad);
  for (int i = 0; i < N; i++) {
    in[i].x = i;
    memcpy(in[i].pad, in_pad, sizeof in_pad);
    out[i].y = -1;
    memcpy(out[i].pad, out_pad, sizeof out_pad);
  }
  hits = new_hits(N);
  ck_assert_int_eq(crew_map(pool, padded_square_task, in, sizeof in[0], out,
                            sizeof out[0], N),
                   0);
  for (int i = 0; i < N; i++) {
    ck_assert_uint_eq(atomic_load(&hits[i]), 1);
    ck_assert_int_eq(out[i].y, (int64_t)i * i);
    ck_assert_int_eq(in[i].x, i);
    ck_assert_mem_eq(in[i].pad, in_pad, sizeof in_pad);
    ck_assert_mem_eq(out[i].pad, out_pad, sizeof out_pad);
  }
  free((void *)hits);
  crew_pool_destroy(pool);
}
END_TEST

/* Input and output fields of one array of structs. */
struct both {
  int64_t canary0;
  int64_t x;
  int64_t canary1;
  int64_t y;
  int64_t canary2;
};

START_TEST(map_reads_and_writes_one_array_of_structs)
{
  enum { N = 777 };
  crew_pool *pool = make_pool(4, 0);
  static struct both a[N];
  for (int i = 0; i < N; i++)
    a[i] = (struct both){
        .canary0 = 11, .x = i, .canary1 = 22, .y = -1, .canary2 = 33};
  hits = new_hits(N);
  ck_assert_int_eq(crew_map(pool, square_task, &a[0].x, sizeof a[0], &a[0].y,
                            sizeof a[0], N),
                   0);
  for (int i = 0; i < N; i++) {
    ck_assert_uint_eq(atomic_load(&hits[i]), 1);
    ck_assert_int_eq(a[i].x, i);
    ck_assert_int_eq(a[i].y, (int64_t)i * i);
    ck_assert_int_eq(a[i].canary0, 11);
    ck_assert_int_eq(a[i].canary1, 22);
    ck_assert_int_eq(a[i].canary2, 33);
  }
  free((void *)hits);
  crew_pool_destroy(pool);
}
END_TEST

/* Writes 1 if it got no input, 2 if it did. */
static int null_in_task(const void *in, void *out)
{
  *(int *)out = in == NULL ? 1 : 2;
  atomic_fetch_add(&calls, 1);
  return 0;
}

/* Counts its item; counts in `calls` if it got an output pointer. */
static int null_out_task(const void *in, void *out)
{
  atomic_fetch_add(&hits[*(const int64_t *)in], 1);
  if (out != NULL)
    atomic_fetch_add(&calls, 1);
  return 0;
}

/* Fails (status 1) unless it got neither input nor output. */
static int null_both_task(const void *in, void *out)
{
  atomic_fetch_add(&calls, 1);
  return in == NULL && out == NULL ? 0 : 1;
}

START_TEST(map_without_input_or_output_passes_null)
{
  enum { N = 300 };
  crew_pool *pool = make_pool(3, 0);

  int outs[N];
  for (int i = 0; i < N; i++)
    outs[i] = 0;
  ck_assert_int_eq(
      crew_map(pool, null_in_task, NULL, 0, outs, sizeof outs[0], N), 0);
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(outs[i], 1);
  ck_assert_uint_eq(atomic_load(&calls), N);

  atomic_store(&calls, 0);
  int64_t ins[N];
  for (int i = 0; i < N; i++)
    ins[i] = i;
  hits = new_hits(N);
  ck_assert_int_eq(
      crew_map(pool, null_out_task, ins, sizeof ins[0], NULL, 0, N), 0);
  for (int i = 0; i < N; i++)
    ck_assert_uint_eq(atomic_load(&hits[i]), 1);
  ck_assert_uint_eq(atomic_load(&calls), 0);
  free((void *)hits);

  ck_assert_int_eq(crew_map(pool, null_both_task, NULL, 0, NULL, 0, N), 0);
  ck_assert_uint_eq(atomic_load(&calls), N);
  crew_pool_destroy(pool);
}
END_TEST

/* Writes the input pointer it got. */
static int same_in_task(const void *in, void *out)
{
  memcpy(out, &in, sizeof in);
  return 0;
}

START_TEST(map_with_input_stride_zero_shares_one_input)
{
  enum { N = 500 };
  crew_pool *pool = make_pool(3, 0);
  int64_t value = 42;
  static const void *got[N];
  ck_assert_int_eq(
      crew_map(pool, same_in_task, &value, 0, got, sizeof got[0], N), 0);
  for (int i = 0; i < N; i++)
    ck_assert_ptr_eq(got[i], &value);
  ck_assert_int_eq(value, 42);
  crew_pool_destroy(pool);
}
END_TEST

/* ------------------------------------------------------------- failures */

/* Statuses by item for fail_task (0: succeed). */
static int *fail_status;

static int fail_task(const void *in, void *out)
{
  int64_t x = *(const int64_t *)in;
  *(int64_t *)out = x;
  atomic_fetch_add(&hits[x], 1);
  return fail_status[x];
}

/* Map n items failing as fail_status says; check every item ran once. */
static int map_failing(crew_pool *pool, size_t n)
{
  int64_t *in = malloc(n * sizeof *in), *out = malloc(n * sizeof *out);
  ck_assert_ptr_nonnull(in);
  ck_assert_ptr_nonnull(out);
  hits = new_hits(n);
  for (size_t i = 0; i < n; i++) {
    in[i] = (int64_t)i;
    out[i] = -1;
  }
  int rc = crew_map(pool, fail_task, in, sizeof *in, out, sizeof *out, n);
  for (size_t i = 0; i < n; i++) {
    ck_assert_uint_eq(atomic_load(&hits[i]), 1);
    ck_assert_int_eq(out[i], (int64_t)i);
  }
  free((void *)hits);
  hits = NULL;
  free(in);
  free(out);
  return rc;
}

START_TEST(map_returns_the_lowest_failing_item)
{
  enum { N = 100 };
  crew_pool *pool = make_pool(3, 0);
  static int st[N];
  fail_status = st;
  st[5] = 50;
  st[3] = 30;
  ck_assert_int_eq(map_failing(pool, N), 30);
  crew_stats s = pool_stats(pool);
  ck_assert_uint_eq(s.submitted, N);
  ck_assert_uint_eq(s.completed, N);
  ck_assert_uint_eq(s.failed, 2);
  crew_pool_destroy(pool);
}
END_TEST

START_TEST(map_failures_are_ordered_by_index_not_by_time)
{
  enum { N = 1000, ROUNDS = 20 };
  crew_pool *pool = make_pool(4, 0);
  static int st[N];
  fail_status = st;
  for (int r = 0; r < ROUNDS; r++) {
    memset(st, 0, sizeof st);
    st[997] = 7;
    st[400] = 4;
    st[N - 1] = 9;
    ck_assert_int_eq(map_failing(pool, N), 4);
    /* A crew code returned by an item is reported unchanged too. */
    st[10] = CREW_ETIMEDOUT;
    ck_assert_int_eq(map_failing(pool, N), CREW_ETIMEDOUT);
    st[0] = 1;
    ck_assert_int_eq(map_failing(pool, N), 1);
  }
  crew_stats s = pool_stats(pool);
  ck_assert_uint_eq(s.submitted, 3 * N * ROUNDS);
  ck_assert_uint_eq(s.completed, 3 * N * ROUNDS);
  ck_assert_uint_eq(s.failed, (3 + 4 + 5) * ROUNDS);
  crew_pool_destroy(pool);
}
END_TEST

/* ----------------------------------------------------------- concurrency */

enum { MAPPERS = 4, MAPS_EACH = 3, MAP_N = 10000 };

struct mapper {
  pthread_t thread;
  crew_pool *pool;
  int rc[MAPS_EACH];
  size_t wrong[MAPS_EACH];
};

static void *mapper_main(void *arg)
{
  struct mapper *m = arg;
  struct rec *recs = malloc(MAP_N * sizeof *recs);
  int64_t *outs = malloc(MAP_N * sizeof *outs);
  for (int k = 0; k < MAPS_EACH; k++) {
    _Atomic unsigned *h = new_hits(MAP_N);
    make_recs(recs, outs, h, MAP_N);
    m->rc[k] = crew_map(m->pool, rec_task, recs, sizeof *recs, outs,
                        sizeof *outs, MAP_N);
    m->wrong[k] = wrong_recs(outs, h, MAP_N);
    free((void *)h);
  }
  free(recs);
  free(outs);
  return NULL;
}

START_TEST(several_threads_map_on_one_pool)
{
  crew_pool *pool = make_pool(3, 0);
  struct mapper m[MAPPERS];
  for (int t = 0; t < MAPPERS; t++) {
    m[t].pool = pool;
    ck_assert_int_eq(pthread_create(&m[t].thread, NULL, mapper_main, &m[t]), 0);
  }
  for (int t = 0; t < MAPPERS; t++) {
    ck_assert_int_eq(pthread_join(m[t].thread, NULL), 0);
    for (int k = 0; k < MAPS_EACH; k++) {
      ck_assert_int_eq(m[t].rc[k], 0);
      ck_assert_uint_eq(m[t].wrong[k], 0);
    }
  }
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, MAPPERS * MAPS_EACH * MAP_N);
  ck_assert_uint_eq(st.completed, MAPPERS * MAPS_EACH * MAP_N);
  crew_pool_destroy(pool);
}
END_TEST

/* A task that maps n squares on its own pool, optionally after waiting at
 * a gate, and reports the map's status and the wrong items. */
struct nest_in {
  crew_pool *pool;
  size_t n;
  gate *g;           /* NULL: map at once */
  signal_box *ready; /* posted before waiting at g */
};

struct nest_out {
  int rc;
  size_t wrong;
};

static int nested_map_task(const void *in, void *out)
{
  const struct nest_in *a = in;
  if (a->g != NULL) {
    signal_post(a->ready);
    gate_pass(a->g);
  }
  struct rec *recs = malloc(a->n * sizeof *recs);
  int64_t *outs = malloc(a->n * sizeof *outs);
  _Atomic unsigned *h = new_hits(a->n);
  make_recs(recs, outs, h, a->n);
  struct nest_out r;
  r.rc =
      crew_map(a->pool, rec_task, recs, sizeof *recs, outs, sizeof *outs, a->n);
  r.wrong = wrong_recs(outs, h, a->n);
  memcpy(out, &r, sizeof r);
  free((void *)h);
  free(recs);
  free(outs);
  return 0;
}

START_TEST(map_from_inside_a_task_with_one_worker)
{
  crew_pool *pool = make_pool(1, 0);
  struct nest_in a = {.pool = pool, .n = 5000};
  crew_future *f;
  ck_assert_int_eq(crew_submit(pool, nested_map_task, &a, sizeof a,
                               sizeof(struct nest_out), &f),
                   0);
  ck_assert_int_eq(crew_future_wait_timed(f, 10000 * MS), 0);
  struct nest_out r = {-1, 1};
  ck_assert_int_eq(crew_future_get(f, &r, sizeof r), 0);
  ck_assert_int_eq(r.rc, 0);
  ck_assert_uint_eq(r.wrong, 0);
  crew_future_release(f);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, 5001);
  ck_assert_uint_eq(st.completed, 5001);
  crew_pool_destroy(pool);
}
END_TEST

static int park_task(const void *in, void *out)
{
  (void)out;
  const struct nest_in *a = in; /* only g and ready */
  signal_post(a->ready);
  gate_pass(a->g);
  return 0;
}

START_TEST(map_from_inside_a_task_while_the_queue_is_full)
{
  /* Two workers: one parked, one about to map; the queue (capacity 1) is
   * full. The map cannot queue its runner and must still finish. */
  crew_pool *pool = make_pool(2, 1);
  gate park_gate, map_gate;
  signal_box ready;
  gate_init(&park_gate);
  gate_init(&map_gate);
  signal_init(&ready);

  struct nest_in p = {.pool = pool, .g = &park_gate, .ready = &ready};
  ck_assert_int_eq(crew_submit(pool, park_task, &p, sizeof p, 0, NULL), 0);
  signal_wait(&ready, 1);
  struct nest_in a = {.pool = pool, .n = 5000, .g = &map_gate, .ready = &ready};
  crew_future *f;
  ck_assert_int_eq(crew_submit(pool, nested_map_task, &a, sizeof a,
                               sizeof(struct nest_out), &f),
                   0);
  signal_wait(&ready, 1);
  ck_assert_int_eq(crew_submit(pool, count_task, NULL, 0, 0, NULL), 0);
  ck_assert_int_eq(crew_submit_timed(pool, count_task, NULL, 0, 0, NULL, 0),
                   CREW_ETIMEDOUT);

  gate_open(&map_gate, 1);
  ck_assert_int_eq(crew_future_wait_timed(f, 10000 * MS), 0);
  struct nest_out r = {-1, 1};
  ck_assert_int_eq(crew_future_get(f, &r, sizeof r), 0);
  ck_assert_int_eq(r.rc, 0);
  ck_assert_uint_eq(r.wrong, 0);
  crew_future_release(f);

  gate_open(&park_gate, 1);
  crew_pool_destroy(pool);
  ck_assert_uint_eq(atomic_load(&calls), 1);
  gate_fini(&park_gate);
  gate_fini(&map_gate);
  signal_fini(&ready);
}
END_TEST

/* ---------------------------------------------------------------- stats */

START_TEST(map_counts_every_item_in_the_stats)
{
  enum { N = 777 };
  crew_pool *pool = make_pool(2, 0);
  map_squares(pool, 10);
  crew_stats before = pool_stats(pool);
  static int st[N];
  fail_status = st;
  st[10] = 3;
  st[20] = 4;
  st[30] = 5;
  ck_assert_int_eq(map_failing(pool, N), 3);
  crew_stats after = pool_stats(pool);
  ck_assert_uint_eq(after.submitted - before.submitted, N);
  ck_assert_uint_eq(after.completed - before.completed, N);
  ck_assert_uint_eq(after.failed - before.failed, 3);
  ck_assert_uint_eq(after.cancelled, 0);
  ck_assert_uint_eq(after.queued, 0);
  ck_assert_uint_eq(after.running, 0);
  ck_assert_uint_eq(after.workers, 2);
  crew_pool_destroy(pool);
}
END_TEST

/* ------------------------------------------------ shutdown racing a map */

struct racer {
  pthread_t thread;
  crew_pool *pool;
  struct rec *recs;
  int64_t *outs;
  size_t n;
  int rc;
  signal_box done;
};

static void *racer_main(void *arg)
{
  struct racer *r = arg;
  r->rc = crew_map(r->pool, rec_task, r->recs, sizeof *r->recs, r->outs,
                   sizeof *r->outs, r->n);
  signal_post(&r->done);
  return NULL;
}

START_TEST(cancel_shutdown_racing_a_map)
{
  enum { ROUNDS = 200, MAXN = 64 };
  struct rec recs[MAXN];
  int64_t outs[MAXN];
  _Atomic unsigned h[MAXN];
  size_t seen[3] = {0, 0, 0}; /* rounds ending 0, ECANCELED, ECLOSED */
  for (int round = 0; round < ROUNDS; round++) {
    size_t n = 1 + (size_t)(round * 13) % MAXN;
    crew_pool *pool = make_pool(1 + (size_t)round % 3, 0);
    for (size_t i = 0; i < MAXN; i++)
      atomic_init(&h[i], 0);
    make_recs(recs, outs, h, n);
    struct racer r = {.pool = pool, .recs = recs, .outs = outs, .n = n};
    signal_init(&r.done);
    ck_assert_int_eq(pthread_create(&r.thread, NULL, racer_main, &r), 0);
    for (int k = 0; k < round % 4; k++)
      sched_yield(); /* vary who goes first */
    ck_assert_int_eq(crew_pool_shutdown(pool, CREW_CANCEL), 0);
    signal_wait(&r.done, 1); /* fails instead of hanging */
    ck_assert_int_eq(pthread_join(r.thread, NULL), 0);
    signal_fini(&r.done);

    size_t ran = 0;
    for (size_t i = 0; i < n; i++) {
      unsigned c = atomic_load(&h[i]);
      ck_assert_uint_le(c, 1);
      ran += c;
      ck_assert_int_eq(outs[i], c == 1 ? (int64_t)(i * i) : -1);
    }
    crew_stats st = pool_stats(pool);
    ck_assert_uint_eq(st.completed, ran);
    ck_assert_uint_eq(st.failed, 0);
    ck_assert_uint_eq(st.submitted, st.completed + st.cancelled);
    ck_assert_uint_eq(st.queued, 0);
    ck_assert_uint_eq(st.running, 0);
    ck_assert_uint_eq(st.workers, 0);
    if (r.rc == 0) {
      ck_assert_uint_eq(ran, n);
      ck_assert_uint_eq(st.submitted, n);
      seen[0]++;
    } else if (r.rc == CREW_ECANCELED) {
      ck_assert_uint_lt(ran, n);
      ck_assert_uint_eq(st.submitted, n);
      ck_assert_uint_eq(st.cancelled, n - ran);
      seen[1]++;
    } else {
      ck_assert_int_eq(r.rc, CREW_ECLOSED);
      ck_assert_uint_eq(ran, 0);
      ck_assert_uint_eq(st.submitted, 0);
      seen[2]++;
    }
    crew_pool_destroy(pool);
  }
  ck_assert_uint_eq(seen[0] + seen[1] + seen[2], ROUNDS);
}
END_TEST

/* ----------------------------------------------------------------- main */

int main(void)
{
  Suite *s = suite_create("map");

  TCase *tc = tcase_create("errors");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, map_refuses_bad_arguments);
  tcase_add_test(tc, map_refuses_count_times_stride_overflowing_by_one_item);
  tcase_add_test(tc, map_of_nothing_calls_nothing);
  tcase_add_test(tc, map_on_a_shut_down_pool_is_closed);
  suite_add_tcase(s, tc);

  tc = tcase_create("correctness");
  tcase_set_timeout(tc, 20);
  tcase_add_loop_test(tc, map_computes_every_item_exactly_once, 0,
                      sizeof pool_sizes / sizeof pool_sizes[0]);
  tcase_add_test(tc, map_honours_strides_larger_than_the_element);
  tcase_add_test(tc, map_reads_and_writes_one_array_of_structs);
  tcase_add_test(tc, map_without_input_or_output_passes_null);
  tcase_add_test(tc, map_with_input_stride_zero_shares_one_input);
  suite_add_tcase(s, tc);

  tc = tcase_create("failures");
  tcase_set_timeout(tc, 10);
  tcase_add_test(tc, map_returns_the_lowest_failing_item);
  tcase_add_test(tc, map_failures_are_ordered_by_index_not_by_time);
  tcase_add_test(tc, map_counts_every_item_in_the_stats);
  suite_add_tcase(s, tc);

  tc = tcase_create("concurrency");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, several_threads_map_on_one_pool);
  tcase_add_test(tc, map_from_inside_a_task_with_one_worker);
  tcase_add_test(tc, map_from_inside_a_task_while_the_queue_is_full);
  tcase_add_test(tc, cancel_shutdown_racing_a_map);
  suite_add_tcase(s, tc);

  return run_suite(s);
}
