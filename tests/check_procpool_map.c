/*
 * check_procpool_map.c - crew_map on a pool of worker processes: the same
 * results as thread mode, one array of structs read and written, NULL input
 * or output, items larger than max_in_size, the lowest failing item wins,
 * the same checksum in both modes, and a stride of zero refused.
 *
 * Tasks run in other processes: they count their runs per item in the
 * shared hits of proctest.h, made before the pool by shared_setup(n).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* pthread_getname_np */
#endif

#include "proctest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ================================================================ map */

/* out = in * in for int64_t items; counts the item's run. */
static int square_task(const void *in, void *out)
{
  int64_t x = *(const int64_t *)in;
  *(int64_t *)out = x * x;
  atomic_fetch_add(&hits[x], 1);
  return 0;
}

/* 24-byte items with padding the task must not change. */
struct in24 {
  int64_t x;
  unsigned char pad[16];
};
struct out24 {
  int64_t y;
  unsigned char pad[16];
};

static int square24_task(const void *in, void *out)
{
  int64_t x = ((const struct in24 *)in)->x;
  ((struct out24 *)out)->y = x * x;
  atomic_fetch_add(&hits[x], 1);
  return 0;
}

/* Map the squares of 0..n-1 with stride 8 on pool into out; check it. */
static void map_squares8(crew_pool *pool, size_t n, int64_t *out)
{
  int64_t *in = malloc(n * sizeof *in);
  ck_assert_ptr_nonnull(in);
  for (size_t i = 0; i < n; i++) {
    in[i] = (int64_t)i;
    out[i] = -1;
  }
  reset_hits(n);
  ck_assert_int_eq(
      crew_map(pool, square_task, in, sizeof *in, out, sizeof *out, n), 0);
  ck_assert_uint_eq(hits_not_once(n), 0);
  size_t wrong = 0;
  for (size_t i = 0; i < n; i++)
    wrong += out[i] != (int64_t)(i * i) || in[i] != (int64_t)i;
  ck_assert_msg(wrong == 0, "n %zu: %zu items wrong", n, wrong);
  free(in);
}

/* The same with 24-byte items whose padding must come back untouched. */
static void map_squares24(crew_pool *pool, size_t n, struct out24 *out)
{
  struct in24 *in = malloc(n * sizeof *in);
  ck_assert_ptr_nonnull(in);
  for (size_t i = 0; i < n; i++) {
    in[i].x = (int64_t)i;
    memset(in[i].pad, 0xee, sizeof in[i].pad);
    out[i].y = -1;
    memset(out[i].pad, (int)(0x30 + i % 64), sizeof out[i].pad);
  }
  reset_hits(n);
  ck_assert_int_eq(
      crew_map(pool, square24_task, in, sizeof *in, out, sizeof *out, n), 0);
  ck_assert_uint_eq(hits_not_once(n), 0);
  size_t wrong = 0;
  for (size_t i = 0; i < n; i++) {
    wrong += out[i].y != (int64_t)(i * i) || in[i].x != (int64_t)i;
    for (size_t b = 0; b < sizeof in[i].pad; b++)
      wrong += in[i].pad[b] != 0xee || out[i].pad[b] != 0x30 + i % 64;
  }
  ck_assert_msg(wrong == 0, "n %zu: %zu items or bytes wrong", n, wrong);
  free(in);
}

START_TEST(map_squares_match_thread_mode)
{
  static const size_t counts[] = {1, 7, 1000, 100000};
  shared_setup(100000);
  crew_pool *pp = ppool(3, 0);
  crew_pool *tp = make_pool(3, 0);
  int64_t *t8 = malloc(100000 * sizeof *t8), *p8 = malloc(100000 * sizeof *p8);
  struct out24 *t24 = malloc(100000 * sizeof *t24),
               *p24 = malloc(100000 * sizeof *p24);
  ck_assert(t8 != NULL && p8 != NULL && t24 != NULL && p24 != NULL);
  for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
    size_t n = counts[k];
    map_squares8(tp, n, t8);
    map_squares8(pp, n, p8);
    ck_assert_mem_eq(t8, p8, n * sizeof *t8);
    map_squares24(tp, n, t24);
    map_squares24(pp, n, p24);
    ck_assert(memcmp(t24, p24, n * sizeof *t24) == 0);
  }
  crew_stats st = pool_stats(pp);
  ck_assert_uint_eq(st.submitted, 2 * (1 + 7 + 1000 + 100000));
  ck_assert_uint_eq(st.completed, st.submitted);
  ck_assert_uint_eq(st.failed, 0);
  assert_pool_settled(pp);
  free(t8);
  free(p8);
  free(t24);
  free(p24);
  crew_pool_destroy(tp);
  crew_pool_destroy(pp);
  shared_teardown();
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
  shared_setup(N);
  crew_pool *pool = ppool(3, 0);
  /* count * stride bytes from &a[0].x and &a[0].y travel (see crew_map):
   * they reach into one item of slack, which must come back unchanged. */
  struct both *a = malloc((N + 1) * sizeof *a);
  ck_assert_ptr_nonnull(a);
  for (int i = 0; i <= N; i++)
    a[i] = (struct both){
        .canary0 = 11, .x = i, .canary1 = 22, .y = -1, .canary2 = 33};
  ck_assert_int_eq(crew_map(pool, square_task, &a[0].x, sizeof a[0], &a[0].y,
                            sizeof a[0], N),
                   0);
  ck_assert_uint_eq(hits_not_once(N), 0);
  for (int i = 0; i < N; i++) {
    quiet_assert_int_eq(a[i].x, i);
    quiet_assert_int_eq(a[i].y, (int64_t)i * i);
    quiet_assert_int_eq(a[i].canary0, 11);
    quiet_assert_int_eq(a[i].canary1, 22);
    quiet_assert_int_eq(a[i].canary2, 33);
  }
  ck_assert_int_eq(a[N].canary0, 11);
  ck_assert_int_eq(a[N].x, N);
  ck_assert_int_eq(a[N].canary1, 22);
  ck_assert_int_eq(a[N].y, -1);
  ck_assert_int_eq(a[N].canary2, 33);
  free(a);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* Writes 1 if it got no input, 2 if it did. */
static int null_in_task(const void *in, void *out)
{
  *(int *)out = in == NULL ? 1 : 2;
  atomic_fetch_add(&shm->ran, 1);
  return 0;
}

/* Counts its item; fails (status 1) if it got an output pointer. */
static int null_out_task(const void *in, void *out)
{
  atomic_fetch_add(&hits[*(const int64_t *)in], 1);
  return out == NULL ? 0 : 1;
}

/* Fails (status 1) unless it got neither input nor output. */
static int null_both_task(const void *in, void *out)
{
  atomic_fetch_add(&shm->ran, 1);
  return in == NULL && out == NULL ? 0 : 1;
}

START_TEST(map_without_input_or_output_passes_null)
{
  enum { N = 300 };
  shared_setup(N);
  crew_pool *pool = ppool(3, 0);
  int outs[N];
  for (int i = 0; i < N; i++)
    outs[i] = 0;
  ck_assert_int_eq(
      crew_map(pool, null_in_task, NULL, 0, outs, sizeof outs[0], N), 0);
  for (int i = 0; i < N; i++)
    quiet_assert_int_eq(outs[i], 1);
  ck_assert_uint_eq(atomic_load(&shm->ran), N);

  int64_t ins[N];
  for (int i = 0; i < N; i++)
    ins[i] = i;
  ck_assert_int_eq(
      crew_map(pool, null_out_task, ins, sizeof ins[0], NULL, 0, N), 0);
  ck_assert_uint_eq(hits_not_once(N), 0);

  ck_assert_int_eq(crew_map(pool, null_both_task, NULL, 0, NULL, 0, N), 0);
  ck_assert_uint_eq(atomic_load(&shm->ran), 2 * N);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

#define BIG_ITEM ((size_t)64 << 10)

/* Items of 64 KiB: reads the first and last int64_t of its input, writes
 * first squared and first + last at the ends of its output. */
static int big_item_task(const void *in, void *out)
{
  const unsigned char *p = in;
  unsigned char *o = out;
  int64_t first, last;
  memcpy(&first, p, sizeof first);
  memcpy(&last, p + BIG_ITEM - sizeof last, sizeof last);
  int64_t a = first * first, b = first + last;
  memcpy(o, &a, sizeof a);
  memcpy(o + BIG_ITEM - sizeof b, &b, sizeof b);
  atomic_fetch_add(&hits[first], 1);
  return 0;
}

START_TEST(map_items_may_be_larger_than_max_in_size)
{
  enum { N = 24 };
  shared_setup(N);
  crew_config cfg = pcfg(2, 0);
  cfg.max_in_size = 4096;
  cfg.max_out_size = 4096;
  crew_pool *pool = pool_create(&cfg);
  unsigned char *in = malloc(N * BIG_ITEM), *out = malloc(N * BIG_ITEM);
  ck_assert(in != NULL && out != NULL);
  memset(in, 0x11, N * BIG_ITEM);
  memset(out, 0x22, N * BIG_ITEM);
  for (int64_t i = 0; i < N; i++) {
    int64_t last = 1000 * i;
    memcpy(in + (size_t)i * BIG_ITEM, &i, sizeof i);
    memcpy(in + (size_t)(i + 1) * BIG_ITEM - sizeof last, &last, sizeof last);
  }
  ck_assert_int_eq(
      crew_map(pool, big_item_task, in, BIG_ITEM, out, BIG_ITEM, N), 0);
  ck_assert_uint_eq(hits_not_once(N), 0);
  size_t wrong = 0;
  for (int64_t i = 0; i < N; i++) {
    const unsigned char *o = out + (size_t)i * BIG_ITEM;
    int64_t a, b;
    memcpy(&a, o, sizeof a);
    memcpy(&b, o + BIG_ITEM - sizeof b, sizeof b);
    wrong += a != i * i || b != i + 1000 * i;
    for (size_t k = sizeof a; k < BIG_ITEM - sizeof b; k++)
      wrong += o[k] != 0x22;
  }
  ck_assert_msg(wrong == 0, "%zu items or bytes wrong", wrong);
  free(in);
  free(out);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

START_TEST(map_returns_the_lowest_failing_item)
{
  enum { N = 1000 };
  shared_setup(N);
  crew_pool *pool = ppool(2, 0);
  int64_t *out;
  struct fail_item *items = fail_items(N, &out);
  items[700].status = 70;
  items[5].status = 50;
  items[3].status = 30;
  ck_assert_int_eq(
      crew_map(pool, fail_item_task, items, sizeof *items, out, sizeof *out, N),
      30);
  ck_assert_uint_eq(hits_not_once(N), 0);
  for (int i = 0; i < N; i++)
    quiet_assert_int_eq(out[i], 3 * i);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, N);
  ck_assert_uint_eq(st.completed, N);
  ck_assert_uint_eq(st.failed, 3);
  ck_assert_uint_eq(st.crashed, 0);
  free(items);
  free(out);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

static uint64_t mix64(uint64_t z)
{
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static int mix_task(const void *in, void *out)
{
  uint64_t x = *(const uint64_t *)in, z = x;
  for (int r = 0; r < 8; r++)
    z = mix64(z + x);
  *(uint64_t *)out = z;
  return 0;
}

/* A checksum of mix_task over n items, mapped on pool (NULL: serially). */
static uint64_t mix_checksum(crew_pool *pool, size_t n)
{
  uint64_t *in = malloc(n * sizeof *in), *out = calloc(n, sizeof *out);
  ck_assert(in != NULL && out != NULL);
  for (size_t i = 0; i < n; i++)
    in[i] = mix64(i);
  if (pool != NULL)
    ck_assert_int_eq(
        crew_map(pool, mix_task, in, sizeof *in, out, sizeof *out, n), 0);
  else
    for (size_t i = 0; i < n; i++)
      mix_task(&in[i], &out[i]);
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++)
    sum = mix64(sum ^ out[i]) + i;
  free(in);
  free(out);
  return sum;
}

START_TEST(map_checksum_is_the_same_in_both_modes)
{
  enum { N = 100000 };
  shared_setup(0);
  crew_pool *pp = ppool(3, 0);
  crew_pool *tp = make_pool(3, 0);
  uint64_t serial = mix_checksum(NULL, N);
  ck_assert_uint_eq(mix_checksum(tp, N), serial);
  ck_assert_uint_eq(mix_checksum(pp, N), serial);
  crew_pool_destroy(tp);
  crew_pool_destroy(pp);
  shared_teardown();
}
END_TEST

/* In process mode an item's bytes are its stride: a stride of 0 with an
 * array is refused, before the pool's state is looked at. */
START_TEST(map_refuses_a_stride_of_zero_with_an_array)
{
  enum { N = 20 };
  shared_setup(0);
  crew_pool *pool = ppool(2, 0);
  int64_t value = 42, in[N], out[N];
  for (int i = 0; i < N; i++) {
    in[i] = i;
    out[i] = -1;
  }
  ck_assert_int_eq(crew_map(pool, add_task, &value, 0, out, sizeof out[0], N),
                   CREW_EINVAL);
  ck_assert_int_eq(crew_map(pool, add_task, in, sizeof in[0], out, 0, N),
                   CREW_EINVAL);
  ck_assert_int_eq(crew_map(pool, add_task, &value, 0, NULL, 0, N),
                   CREW_EINVAL);
  for (int i = 0; i < N; i++)
    ck_assert_int_eq(out[i], -1);
  ck_assert_uint_eq(pool_stats(pool).submitted, 0);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  /* "Arguments are checked first, then the pool." */
  ck_assert_int_eq(crew_map(pool, add_task, &value, 0, out, sizeof out[0], N),
                   CREW_EINVAL);
  ck_assert_int_eq(crew_map(pool, add_task, in, sizeof in[0], out, 0, N),
                   CREW_EINVAL);
  ck_assert_uint_eq(atomic_load(&shm->ran), 0);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* ================================================================ main */

int main(void)
{
  Suite *s = suite_create("procpool_map");

  TCase *tc = tcase_create("map");
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, map_squares_match_thread_mode);
  tcase_add_test(tc, map_reads_and_writes_one_array_of_structs);
  tcase_add_test(tc, map_without_input_or_output_passes_null);
  tcase_add_test(tc, map_items_may_be_larger_than_max_in_size);
  tcase_add_test(tc, map_returns_the_lowest_failing_item);
  tcase_add_test(tc, map_checksum_is_the_same_in_both_modes);
  tcase_add_test(tc, map_refuses_a_stride_of_zero_with_an_array);
  suite_add_tcase(s, tc);

  return run_suite(s);
}
