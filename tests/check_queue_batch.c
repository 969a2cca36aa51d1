/*
 * check_queue_batch.c - the bounded MPMC queue's batch calls
 * (crew_queue_push_many, crew_queue_pop_many): what fits, timeout zero,
 * zero items, a batch that waits part way (and is closed part way), pops
 * that take what is there and wait for the first item only, a closed
 * queue, and batches of varying length round a ring of odd capacity.
 *
 * Threads of the tests themselves are pthreads. They say "I am about to
 * block" through a signal_box before the call, and "I returned" after it;
 * "still blocked" is a negative check (no return within 50 ms).
 */
#include "queuetest.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================= batches */

START_TEST(push_many_that_fits_pushes_all)
{
  crew_queue *q = make_queue(8, 8);
  uint64_t items[5] = {10, 11, 12, 13, 14};
  size_t pushed = 99;
  ck_assert_int_eq(crew_queue_push_many(q, items, 5, &pushed, 0), 0);
  ck_assert_uint_eq(pushed, 5);
  memset(items, 0, sizeof items); /* copied by value */
  ck_assert_uint_eq(crew_queue_size(q), 5);
  uint64_t out[8];
  memset(out, 0xAB, sizeof out);
  size_t popped = 99;
  ck_assert_int_eq(crew_queue_pop_many(q, out, 8, &popped, 0), 0);
  ck_assert_uint_eq(popped, 5);
  for (size_t i = 0; i < 5; i++)
    ck_assert_uint_eq(out[i], 10 + i);
  ck_assert(all_bytes(out + 5, 0xAB, 3 * sizeof out[0]));

  /* Exactly the capacity fits, with FOREVER too. */
  uint64_t full[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  pushed = 99;
  ck_assert_int_eq(crew_queue_push_many(q, full, 8, &pushed, CREW_FOREVER), 0);
  ck_assert_uint_eq(pushed, 8);
  ck_assert_uint_eq(crew_queue_size(q), 8);
  for (uint64_t i = 0; i < 8; i++)
    ck_assert_uint_eq(pop_u64(q), i);
  crew_queue_destroy(q);
}
END_TEST

START_TEST(push_many_with_timeout_zero_pushes_what_fits)
{
  crew_queue *q = make_queue(8, 8);
  push_u64(q, 100);
  push_u64(q, 101);
  push_u64(q, 102);
  uint64_t items[10];
  for (size_t i = 0; i < 10; i++)
    items[i] = i;
  size_t pushed = 99;
  ck_assert_int_eq(crew_queue_push_many(q, items, 10, &pushed, 0),
                   CREW_ETIMEDOUT);
  ck_assert_uint_eq(pushed, 5);
  ck_assert_uint_eq(crew_queue_size(q), 8);
  ck_assert_uint_eq(pop_u64(q), 100);
  ck_assert_uint_eq(pop_u64(q), 101);
  ck_assert_uint_eq(pop_u64(q), 102);
  for (uint64_t i = 0; i < 5; i++)
    ck_assert_uint_eq(pop_u64(q), i);
  ck_assert_uint_eq(crew_queue_size(q), 0);

  /* pushed may be NULL. */
  ck_assert_int_eq(crew_queue_push_many(q, items, 3, NULL, 0), 0);
  ck_assert_int_eq(crew_queue_push_many(q, items + 3, 7, NULL, 0),
                   CREW_ETIMEDOUT);
  ck_assert_uint_eq(crew_queue_size(q), 8);
  for (uint64_t i = 0; i < 8; i++)
    ck_assert_uint_eq(pop_u64(q), i);
  crew_queue_destroy(q);
}
END_TEST

START_TEST(push_many_of_zero_items_pushes_nothing)
{
  crew_queue *q = make_queue(2, 8);
  uint64_t items[1] = {5};
  size_t pushed = 99;
  ck_assert_int_eq(crew_queue_push_many(q, items, 0, &pushed, 0), 0);
  ck_assert_uint_eq(pushed, 0);
  ck_assert_uint_eq(crew_queue_size(q), 0);
  ck_assert_int_eq(crew_queue_push_many(q, items, 0, NULL, 0), 0);
  /* Even on a full queue and with FOREVER it does not wait. */
  push_u64(q, 1);
  push_u64(q, 2);
  pushed = 99;
  ck_assert_int_eq(crew_queue_push_many(q, items, 0, &pushed, CREW_FOREVER), 0);
  ck_assert_uint_eq(pushed, 0);
  ck_assert_uint_eq(crew_queue_size(q), 2);
  ck_assert_uint_eq(pop_u64(q), 1);
  ck_assert_uint_eq(pop_u64(q), 2);
  crew_queue_destroy(q);
}
END_TEST

/* A push_many that has to wait for room several times. */
typedef struct big_batch {
  crew_queue *q;
  uint64_t items[200];
  size_t count;
  size_t pushed;
  int rc;
  signal_box *started;
} big_batch;

static void *big_batch_main(void *arg)
{
  big_batch *b = arg;
  signal_post(b->started);
  b->rc =
      crew_queue_push_many(b->q, b->items, b->count, &b->pushed, CREW_FOREVER);
  return NULL;
}

START_TEST(push_many_waits_part_way_and_completes)
{
  crew_queue *q = make_queue(4, 8);
  signal_box started;
  signal_init(&started);
  big_batch b = {.q = q, .count = 200, .pushed = 99, .rc = 1};
  b.started = &started;
  for (size_t i = 0; i < b.count; i++)
    b.items[i] = 1000 + i;
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, big_batch_main, &b), 0);
  signal_wait(&started, 1);
  /* It fills the queue and waits. */
  uint64_t v = SENTINEL;
  for (size_t i = 0; i < b.count; i++) {
    ck_assert_int_eq(crew_queue_pop(q, &v), 0);
    ck_assert_uint_eq(v, 1000 + i);
  }
  join_thread(th);
  ck_assert_int_eq(b.rc, 0);
  ck_assert_uint_eq(b.pushed, b.count);
  ck_assert_uint_eq(crew_queue_size(q), 0);
  signal_fini(&started);
  crew_queue_destroy(q);
}
END_TEST

START_TEST(push_many_blocked_part_way_then_closed_reports_what_went_in)
{
  crew_queue *q = make_queue(4, 8);
  push_u64(q, 1);
  signal_box started, done;
  signal_init(&started);
  signal_init(&done);
  op o;
  op_start(&o, q, OP_PUSH_MANY, CREW_FOREVER, 10, 100, &started, &done);
  expect_blocked(&started, &done, &o, 1);
  ck_assert_uint_eq(crew_queue_size(q), 4);
  crew_queue_close(q);
  signal_wait(&done, 1);
  join_thread(o.th);
  ck_assert_int_eq(o.rc, CREW_ECLOSED);
  ck_assert_uint_eq(o.n, 3);
  ck_assert_uint_eq(pop_u64(q), 1);
  ck_assert_uint_eq(pop_u64(q), 100);
  ck_assert_uint_eq(pop_u64(q), 101);
  ck_assert_uint_eq(pop_u64(q), 102);
  uint64_t v = SENTINEL;
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, 0), CREW_ECLOSED);
  signal_fini(&started);
  signal_fini(&done);
  crew_queue_destroy(q);
}
END_TEST

START_TEST(pop_many_takes_at_most_what_is_there)
{
  crew_queue *q = make_queue(8, 8);
  for (uint64_t i = 0; i < 5; i++)
    push_u64(q, i);
  uint64_t out[10];
  memset(out, 0xAB, sizeof out);
  size_t popped = 99;
  ck_assert_int_eq(crew_queue_pop_many(q, out, 3, &popped, 0), 0);
  ck_assert_uint_eq(popped, 3);
  for (uint64_t i = 0; i < 3; i++)
    ck_assert_uint_eq(out[i], i);
  ck_assert(all_bytes(out + 3, 0xAB, 7 * sizeof out[0]));
  ck_assert_uint_eq(crew_queue_size(q), 2);

  memset(out, 0xAB, sizeof out);
  popped = 99;
  ck_assert_int_eq(crew_queue_pop_many(q, out, 10, &popped, CREW_FOREVER), 0);
  ck_assert_uint_eq(popped, 2);
  ck_assert_uint_eq(out[0], 3);
  ck_assert_uint_eq(out[1], 4);
  ck_assert(all_bytes(out + 2, 0xAB, 8 * sizeof out[0]));
  ck_assert_uint_eq(crew_queue_size(q), 0);
  crew_queue_destroy(q);
}
END_TEST

START_TEST(pop_many_waits_for_the_first_item_only)
{
  crew_queue *q = make_queue(8, 8);
  signal_box started, done;
  signal_init(&started);
  signal_init(&done);
  op o;
  op_start(&o, q, OP_POP_MANY, CREW_FOREVER, 10, 0, &started, &done);
  expect_blocked(&started, &done, &o, 1);
  push_u64(q, 5);
  signal_wait(&done, 1);
  join_thread(o.th);
  ck_assert_int_eq(o.rc, 0);
  ck_assert_uint_eq(o.n, 1);
  ck_assert_uint_eq(o.items[0], 5);
  ck_assert_uint_eq(o.items[1], SENTINEL);

  /* A batch pushed under one lock is taken whole. */
  op_start(&o, q, OP_POP_MANY, 10000 * MS, 10, 0, &started, &done);
  expect_blocked(&started, &done, &o, 1);
  uint64_t items[3] = {6, 7, 8};
  ck_assert_int_eq(crew_queue_push_many(q, items, 3, NULL, 0), 0);
  signal_wait(&done, 1);
  join_thread(o.th);
  ck_assert_int_eq(o.rc, 0);
  ck_assert_uint_eq(o.n, 3);
  ck_assert_uint_eq(o.items[0], 6);
  ck_assert_uint_eq(o.items[1], 7);
  ck_assert_uint_eq(o.items[2], 8);
  ck_assert_uint_eq(o.items[3], SENTINEL);
  signal_fini(&started);
  signal_fini(&done);
  crew_queue_destroy(q);
}
END_TEST

START_TEST(pop_many_on_a_closed_queue)
{
  crew_queue *q = make_queue(8, 8);
  for (uint64_t i = 0; i < 5; i++)
    push_u64(q, i);
  crew_queue_close(q);
  uint64_t out[4];
  size_t popped = 99;
  ck_assert_int_eq(crew_queue_pop_many(q, out, 4, &popped, 0), 0);
  ck_assert_uint_eq(popped, 4);
  for (uint64_t i = 0; i < 4; i++)
    ck_assert_uint_eq(out[i], i);
  popped = 99;
  ck_assert_int_eq(crew_queue_pop_many(q, out, 4, &popped, CREW_FOREVER), 0);
  ck_assert_uint_eq(popped, 1);
  ck_assert_uint_eq(out[0], 4);

  memset(out, 0xAB, sizeof out);
  popped = 99;
  ck_assert_int_eq(crew_queue_pop_many(q, out, 4, &popped, 0), CREW_ECLOSED);
  ck_assert_uint_eq(popped, 0);
  popped = 99;
  ck_assert_int_eq(crew_queue_pop_many(q, out, 4, &popped, CREW_FOREVER),
                   CREW_ECLOSED);
  ck_assert_uint_eq(popped, 0);
  popped = 99;
  ck_assert_int_eq(crew_queue_pop_many(q, out, 4, &popped, 20 * MS),
                   CREW_ECLOSED);
  ck_assert_uint_eq(popped, 0);
  ck_assert(all_bytes(out, 0xAB, sizeof out));
  crew_queue_destroy(q);
}
END_TEST

START_TEST(pop_many_of_zero_takes_nothing)
{
  crew_queue *q = make_queue(4, 8);
  uint64_t out[2] = {SENTINEL, SENTINEL};
  size_t popped = 99;
  /* On an empty queue, even with FOREVER, it returns at once. */
  ck_assert_int_eq(crew_queue_pop_many(q, out, 0, &popped, CREW_FOREVER), 0);
  ck_assert_uint_eq(popped, 0);
  push_u64(q, 3);
  popped = 99;
  ck_assert_int_eq(crew_queue_pop_many(q, out, 0, &popped, 0), 0);
  ck_assert_uint_eq(popped, 0);
  ck_assert(all_bytes(out, 0xAB, sizeof out));
  ck_assert_uint_eq(crew_queue_size(q), 1);
  ck_assert_uint_eq(pop_u64(q), 3);
  crew_queue_destroy(q);
}
END_TEST

/* Batches of varying length round a ring of odd capacity and item size. */
START_TEST(batches_wrap_the_ring)
{
  enum { CAP = 7, SZ = 5, MAXB = 9 };
  crew_queue *q = make_queue(CAP, SZ);
  unsigned char in[MAXB * SZ], out[(MAXB + 1) * SZ];
  size_t next_in = 0, next_out = 0;
  for (size_t round = 0; round < 2000; round++) {
    size_t free_now = CAP - crew_queue_size(q);
    size_t want = 1 + (round * 5) % MAXB; /* 1..9, sometimes over free */
    for (size_t k = 0; k < want; k++)
      fill_item(in + k * SZ, next_in + k, SZ);
    size_t pushed = 99;
    int rc = crew_queue_push_many(q, in, want, &pushed, 0);
    if (want <= free_now) {
      ck_assert_int_eq(rc, 0);
      ck_assert_uint_eq(pushed, want);
    } else {
      ck_assert_int_eq(rc, CREW_ETIMEDOUT);
      ck_assert_uint_eq(pushed, free_now);
    }
    next_in += pushed;

    size_t have = crew_queue_size(q);
    ck_assert_uint_eq(have, next_in - next_out);
    size_t max = 1 + (round * 3) % 6; /* 1..6 */
    memset(out, 0xCD, sizeof out);
    size_t popped = 99;
    ck_assert_int_eq(crew_queue_pop_many(q, out, max, &popped, 0), 0);
    ck_assert_uint_eq(popped, have < max ? have : max);
    for (size_t k = 0; k < popped; k++)
      check_item(out + k * SZ, next_out + k, SZ);
    ck_assert(all_bytes(out + popped * SZ, 0xCD, sizeof out - popped * SZ));
    next_out += popped;
  }
  ck_assert_uint_gt(next_out, 3000);
  crew_queue_destroy(q);
}
END_TEST

/* ==================================================================== main */

int main(void)
{
  Suite *s = suite_create("queue_batch");
  TCase *tc = timed_tcase(s, "batches", 3);
  tcase_add_test(tc, push_many_that_fits_pushes_all);
  tcase_add_test(tc, push_many_with_timeout_zero_pushes_what_fits);
  tcase_add_test(tc, push_many_of_zero_items_pushes_nothing);
  tcase_add_test(tc, push_many_waits_part_way_and_completes);
  tcase_add_test(tc,
                 push_many_blocked_part_way_then_closed_reports_what_went_in);
  tcase_add_test(tc, pop_many_takes_at_most_what_is_there);
  tcase_add_test(tc, pop_many_waits_for_the_first_item_only);
  tcase_add_test(tc, pop_many_on_a_closed_queue);
  tcase_add_test(tc, pop_many_of_zero_takes_nothing);
  tcase_add_test(tc, batches_wrap_the_ring);
  return run_suite(s);
}
