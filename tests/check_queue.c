/*
 * check_queue.c - the bounded MPMC queue (crew/queue.h), one item at a
 * time: argument errors, FIFO order and copying by value, capacity,
 * timeouts, close, and wake-ups of blocked callers. Batches are
 * check_queue_batch.c, producers x consumers under load
 * check_queue_mpmc.c.
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

/* ========================================================= argument errors */

static char marker;
#define MARKER_Q ((crew_queue *)(void *)&marker)

static void expect_create_einval(size_t capacity, size_t item_size,
                                 unsigned flags)
{
  crew_queue *q = MARKER_Q;
  ck_assert_int_eq(crew_queue_create(&q, capacity, item_size, flags),
                   CREW_EINVAL);
  ck_assert_ptr_eq(q, MARKER_Q);
}

START_TEST(create_with_null_q_is_einval)
{
  ck_assert_int_eq(crew_queue_create(NULL, 4, 8, 0), CREW_EINVAL);
}
END_TEST

START_TEST(create_with_zero_capacity_is_einval)
{
  expect_create_einval(0, 8, 0);
  expect_create_einval(0, 1, 0);
}
END_TEST

START_TEST(create_with_zero_item_size_is_einval)
{
  expect_create_einval(4, 0, 0);
  expect_create_einval(1, 0, 0);
  expect_create_einval(0, 0, 0);
}
END_TEST

START_TEST(create_with_overflowing_size_is_einval)
{
  size_t half = (size_t)1 << (sizeof(size_t) * 4); /* half * half == 2^bits */
  expect_create_einval(SIZE_MAX, 2, 0);
  expect_create_einval(2, SIZE_MAX, 0);
  expect_create_einval(SIZE_MAX / 2 + 1, 2, 0);
  expect_create_einval(2, SIZE_MAX / 2 + 1, 0);
  expect_create_einval(SIZE_MAX, SIZE_MAX, 0);
  expect_create_einval(half, half, 0);
  expect_create_einval(SIZE_MAX / 3 + 1, 3, 0);
}
END_TEST

START_TEST(create_with_unknown_flags_is_einval)
{
  expect_create_einval(4, 8, CREW_SHARED << 1);
  expect_create_einval(4, 8, 0x80000000u);
  expect_create_einval(4, 8, CREW_SHARED | 0x80000000u);
  expect_create_einval(4, 8, 2u);
  expect_create_einval(4, 8, ~0u);
}
END_TEST

START_TEST(create_gives_an_empty_open_queue)
{
  crew_queue *q = make_queue(5, 24);
  ck_assert_uint_eq(crew_queue_capacity(q), 5);
  ck_assert_uint_eq(crew_queue_item_size(q), 24);
  ck_assert_uint_eq(crew_queue_size(q), 0);
  ck_assert(!crew_queue_is_closed(q));
  crew_queue_destroy(q);

  q = make_queue(1, 1);
  ck_assert_uint_eq(crew_queue_capacity(q), 1);
  ck_assert_uint_eq(crew_queue_item_size(q), 1);
  crew_queue_destroy(q);
}
END_TEST

START_TEST(single_item_calls_reject_null)
{
  crew_queue *q = make_queue(4, 8);
  uint64_t v = 42;
  ck_assert_int_eq(crew_queue_push(NULL, &v), CREW_EINVAL);
  ck_assert_int_eq(crew_queue_push_timed(NULL, &v, 0), CREW_EINVAL);
  ck_assert_int_eq(crew_queue_push_timed(NULL, &v, CREW_FOREVER), CREW_EINVAL);
  ck_assert_int_eq(crew_queue_pop(NULL, &v), CREW_EINVAL);
  ck_assert_int_eq(crew_queue_pop_timed(NULL, &v, 0), CREW_EINVAL);
  ck_assert_int_eq(crew_queue_pop_timed(NULL, &v, CREW_FOREVER), CREW_EINVAL);
  ck_assert_uint_eq(v, 42);

  ck_assert_int_eq(crew_queue_push(q, NULL), CREW_EINVAL);
  ck_assert_int_eq(crew_queue_push_timed(q, NULL, 0), CREW_EINVAL);
  ck_assert_int_eq(crew_queue_push_timed(q, NULL, CREW_FOREVER), CREW_EINVAL);
  ck_assert_uint_eq(crew_queue_size(q), 0);

  /* With an item queued, a NULL destination must not take it. */
  push_u64(q, 7);
  ck_assert_int_eq(crew_queue_pop(q, NULL), CREW_EINVAL);
  ck_assert_int_eq(crew_queue_pop_timed(q, NULL, 0), CREW_EINVAL);
  ck_assert_int_eq(crew_queue_pop_timed(q, NULL, CREW_FOREVER), CREW_EINVAL);
  ck_assert_uint_eq(crew_queue_size(q), 1);
  ck_assert_uint_eq(pop_u64(q), 7);
  crew_queue_destroy(q);
}
END_TEST

START_TEST(push_many_rejects_bad_arguments)
{
  crew_queue *q = make_queue(4, 8);
  uint64_t items[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  size_t pushed = 99;

  ck_assert_int_eq(crew_queue_push_many(NULL, items, 2, &pushed, 0),
                   CREW_EINVAL);
  ck_assert_uint_eq(pushed, 0);
  pushed = 99;
  ck_assert_int_eq(crew_queue_push_many(NULL, items, 2, NULL, 0), CREW_EINVAL);
  ck_assert_int_eq(crew_queue_push_many(q, NULL, 1, &pushed, 0), CREW_EINVAL);
  ck_assert_uint_eq(pushed, 0);
  pushed = 99;
  ck_assert_int_eq(crew_queue_push_many(q, NULL, 3, &pushed, CREW_FOREVER),
                   CREW_EINVAL);
  ck_assert_uint_eq(pushed, 0);

  /* count * item_size overflows size_t. */
  pushed = 99;
  ck_assert_int_eq(crew_queue_push_many(q, items, SIZE_MAX / 8 + 1, &pushed, 0),
                   CREW_EINVAL);
  ck_assert_uint_eq(pushed, 0);
  pushed = 99;
  ck_assert_int_eq(crew_queue_push_many(q, items, SIZE_MAX, &pushed, 0),
                   CREW_EINVAL);
  ck_assert_uint_eq(pushed, 0);
  ck_assert_uint_eq(crew_queue_size(q), 0);

  /* items NULL with count 0 is fine. */
  pushed = 99;
  ck_assert_int_eq(crew_queue_push_many(q, NULL, 0, &pushed, 0), 0);
  ck_assert_uint_eq(pushed, 0);
  ck_assert_uint_eq(crew_queue_size(q), 0);
  crew_queue_destroy(q);

  /* Overflow with an odd item size. */
  q = make_queue(4, 3);
  unsigned char bytes[12] = {0};
  pushed = 99;
  ck_assert_int_eq(crew_queue_push_many(q, bytes, SIZE_MAX / 3 + 1, &pushed, 0),
                   CREW_EINVAL);
  ck_assert_uint_eq(pushed, 0);
  ck_assert_uint_eq(crew_queue_size(q), 0);
  crew_queue_destroy(q);
}
END_TEST

START_TEST(pop_many_rejects_bad_arguments)
{
  crew_queue *q = make_queue(4, 8);
  uint64_t out[4] = {SENTINEL, SENTINEL, SENTINEL, SENTINEL};
  size_t popped = 99;
  push_u64(q, 1);
  push_u64(q, 2);

  ck_assert_int_eq(crew_queue_pop_many(NULL, out, 2, &popped, 0), CREW_EINVAL);
  ck_assert_uint_eq(popped, 0);
  ck_assert_int_eq(crew_queue_pop_many(q, out, 2, NULL, 0), CREW_EINVAL);
  ck_assert_int_eq(crew_queue_pop_many(q, out, 2, NULL, CREW_FOREVER),
                   CREW_EINVAL);
  popped = 99;
  ck_assert_int_eq(crew_queue_pop_many(q, NULL, 1, &popped, 0), CREW_EINVAL);
  ck_assert_uint_eq(popped, 0);
  popped = 99;
  ck_assert_int_eq(crew_queue_pop_many(q, out, SIZE_MAX / 8 + 1, &popped, 0),
                   CREW_EINVAL);
  ck_assert_uint_eq(popped, 0);
  popped = 99;
  ck_assert_int_eq(crew_queue_pop_many(q, out, SIZE_MAX, &popped, 0),
                   CREW_EINVAL);
  ck_assert_uint_eq(popped, 0);
  ck_assert(all_bytes(out, 0xAB, sizeof out));
  ck_assert_uint_eq(crew_queue_size(q), 2);

  /* items NULL with max 0 is fine and takes nothing. */
  popped = 99;
  ck_assert_int_eq(crew_queue_pop_many(q, NULL, 0, &popped, 0), 0);
  ck_assert_uint_eq(popped, 0);
  ck_assert_uint_eq(crew_queue_size(q), 2);
  ck_assert_uint_eq(pop_u64(q), 1);
  ck_assert_uint_eq(pop_u64(q), 2);
  crew_queue_destroy(q);
}
END_TEST

START_TEST(null_queue_accessors_and_no_ops)
{
  crew_queue_destroy(NULL);
  crew_queue_close(NULL);
  ck_assert_uint_eq(crew_queue_size(NULL), 0);
  ck_assert_uint_eq(crew_queue_capacity(NULL), 0);
  ck_assert_uint_eq(crew_queue_item_size(NULL), 0);
  ck_assert(!crew_queue_is_closed(NULL));
}
END_TEST

START_TEST(destroy_frees_a_queue_with_items_in_it)
{
  crew_queue *q = make_queue(8, 100);
  unsigned char item[100];
  for (int i = 0; i < 5; i++) {
    memset(item, i, sizeof item);
    ck_assert_int_eq(crew_queue_push(q, item), 0);
  }
  crew_queue_destroy(q); /* ASan's leak check makes this exact */

  q = make_queue(3, 8);
  push_u64(q, 1);
  crew_queue_close(q);
  crew_queue_destroy(q);
}
END_TEST

/* ============================================================ FIFO, values */

static const size_t item_sizes[] = {1, 3, 8, 64, 1000};

START_TEST(fifo_by_value_for_item_sizes)
{
  size_t sz = item_sizes[_i];
  const size_t cap = 7;
  crew_queue *q = make_queue(cap, sz);
  unsigned char *in = malloc(sz);
  unsigned char *out = malloc(sz + 1);
  ck_assert_ptr_nonnull(in);
  ck_assert_ptr_nonnull(out);
  size_t next_in = 0, next_out = 0;

  /* Push 3, pop 2, until full; the head goes round the ring many times. */
  for (int round = 0; round < 400; round++) {
    for (int i = 0; i < 3 && crew_queue_size(q) < cap; i++) {
      fill_item(in, next_in++, sz);
      ck_assert_int_eq(crew_queue_push(q, in), 0);
      memset(in, 0xEE, sz); /* the queue has its own copy */
    }
    for (int i = 0; i < 2; i++) {
      out[sz] = 0x5A; /* canary: the pop writes exactly sz bytes */
      ck_assert_int_eq(crew_queue_pop(q, out), 0);
      ck_assert_uint_eq(out[sz], 0x5A);
      check_item(out, next_out++, sz);
    }
    ck_assert_uint_eq(crew_queue_size(q), next_in - next_out);
  }
  /* Fill and empty completely a few times from odd head positions. */
  for (int round = 0; round < 5; round++) {
    while (crew_queue_size(q) < cap) {
      fill_item(in, next_in++, sz);
      ck_assert_int_eq(crew_queue_push_timed(q, in, 0), 0);
      memset(in, 0xEE, sz);
    }
    ck_assert_int_eq(crew_queue_push_timed(q, in, 0), CREW_ETIMEDOUT);
    while (next_out < next_in - (size_t)round) {
      ck_assert_int_eq(crew_queue_pop_timed(q, out, 0), 0);
      check_item(out, next_out++, sz);
    }
  }
  while (next_out < next_in) {
    ck_assert_int_eq(crew_queue_pop_timed(q, out, 0), 0);
    check_item(out, next_out++, sz);
  }
  ck_assert_uint_ge(next_out, 800);
  memset(out, 0xAB, sz);
  ck_assert_int_eq(crew_queue_pop_timed(q, out, 0), CREW_ETIMEDOUT);
  ck_assert(all_bytes(out, 0xAB, sz));
  ck_assert_uint_eq(crew_queue_size(q), 0);
  free(in);
  free(out);
  crew_queue_destroy(q);
}
END_TEST

START_TEST(fifo_with_capacity_one)
{
  crew_queue *q = make_queue(1, 8);
  for (uint64_t i = 0; i < 1000; i++) {
    push_u64(q, i);
    ck_assert_uint_eq(crew_queue_size(q), 1);
    ck_assert_int_eq(crew_queue_push_timed(q, &i, 0), CREW_ETIMEDOUT);
    ck_assert_uint_eq(pop_u64(q), i);
    ck_assert_uint_eq(crew_queue_size(q), 0);
  }
  crew_queue_destroy(q);
}
END_TEST

static const size_t capacities[] = {1, 2, 5, 64, 1000};

START_TEST(capacity_is_respected)
{
  size_t cap = capacities[_i];
  crew_queue *q = make_queue(cap, 8);
  for (uint64_t i = 0; i < cap; i++) {
    ck_assert_int_eq(crew_queue_push_timed(q, &i, 0), 0);
    ck_assert_uint_eq(crew_queue_size(q), i + 1);
  }
  uint64_t extra = 12345;
  ck_assert_int_eq(crew_queue_push_timed(q, &extra, 0), CREW_ETIMEDOUT);
  size_t pushed = 99;
  ck_assert_int_eq(crew_queue_push_many(q, &extra, 1, &pushed, 0),
                   CREW_ETIMEDOUT);
  ck_assert_uint_eq(pushed, 0);
  ck_assert_uint_eq(crew_queue_size(q), cap);

  /* One pop makes room for exactly one. */
  ck_assert_uint_eq(pop_u64(q), 0);
  ck_assert_int_eq(crew_queue_push_timed(q, &extra, 0), 0);
  ck_assert_int_eq(crew_queue_push_timed(q, &extra, 0), CREW_ETIMEDOUT);
  for (uint64_t i = 1; i < cap; i++)
    ck_assert_uint_eq(pop_u64(q), i);
  ck_assert_uint_eq(pop_u64(q), extra);

  uint64_t v = SENTINEL;
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, 0), CREW_ETIMEDOUT);
  ck_assert_uint_eq(v, SENTINEL);
  crew_queue_destroy(q);
}
END_TEST

START_TEST(timeout_zero_polls)
{
  crew_queue *q = make_queue(2, 8);
  uint64_t v = SENTINEL;
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, 0), CREW_ETIMEDOUT);
  ck_assert_uint_eq(v, SENTINEL);
  size_t popped = 99;
  uint64_t many[2] = {SENTINEL, SENTINEL};
  ck_assert_int_eq(crew_queue_pop_many(q, many, 2, &popped, 0), CREW_ETIMEDOUT);
  ck_assert_uint_eq(popped, 0);
  ck_assert(all_bytes(many, 0xAB, sizeof many));

  v = 5;
  ck_assert_int_eq(crew_queue_push_timed(q, &v, 0), 0);
  v = 6;
  ck_assert_int_eq(crew_queue_push_timed(q, &v, 0), 0);
  v = 7;
  ck_assert_int_eq(crew_queue_push_timed(q, &v, 0), CREW_ETIMEDOUT);
  ck_assert_uint_eq(crew_queue_size(q), 2);
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, 0), 0);
  ck_assert_uint_eq(v, 5);
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, 0), 0);
  ck_assert_uint_eq(v, 6);
  crew_queue_destroy(q);
}
END_TEST

/* ================================================================ timeouts */

static void expect_at_least(uint64_t start, uint64_t ns)
{
  uint64_t took = now_ns() - start;
  ck_assert_msg(took >= ns, "returned after %llu ns, before %llu ns",
                (unsigned long long)took, (unsigned long long)ns);
  ck_assert_msg(took < 5000 * MS, "took %llu ns", (unsigned long long)took);
}

START_TEST(timed_pop_times_out_no_earlier_than_asked)
{
  crew_queue *q = make_queue(4, 8);
  uint64_t v = SENTINEL;
  uint64_t t0 = now_ns();
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, 20 * MS), CREW_ETIMEDOUT);
  expect_at_least(t0, 20 * MS);
  ck_assert_uint_eq(v, SENTINEL);

  uint64_t many[3] = {SENTINEL, SENTINEL, SENTINEL};
  size_t popped = 99;
  t0 = now_ns();
  ck_assert_int_eq(crew_queue_pop_many(q, many, 3, &popped, 20 * MS),
                   CREW_ETIMEDOUT);
  expect_at_least(t0, 20 * MS);
  ck_assert_uint_eq(popped, 0);
  ck_assert(all_bytes(many, 0xAB, sizeof many));

  /* A tiny timeout times out too. */
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, 1), CREW_ETIMEDOUT);
  ck_assert_uint_eq(v, SENTINEL);
  crew_queue_destroy(q);
}
END_TEST

START_TEST(timed_push_times_out_no_earlier_than_asked)
{
  crew_queue *q = make_queue(2, 8);
  push_u64(q, 1);
  push_u64(q, 2);
  uint64_t v = 3;
  uint64_t t0 = now_ns();
  ck_assert_int_eq(crew_queue_push_timed(q, &v, 20 * MS), CREW_ETIMEDOUT);
  expect_at_least(t0, 20 * MS);
  ck_assert_int_eq(crew_queue_push_timed(q, &v, 1), CREW_ETIMEDOUT);

  /* A batch that half fits: the fitting half goes in, then it times out. */
  ck_assert_uint_eq(pop_u64(q), 1);
  uint64_t items[3] = {10, 11, 12};
  size_t pushed = 99;
  t0 = now_ns();
  ck_assert_int_eq(crew_queue_push_many(q, items, 3, &pushed, 20 * MS),
                   CREW_ETIMEDOUT);
  expect_at_least(t0, 20 * MS);
  ck_assert_uint_eq(pushed, 1);
  ck_assert_uint_eq(crew_queue_size(q), 2);
  ck_assert_uint_eq(pop_u64(q), 2);
  ck_assert_uint_eq(pop_u64(q), 10);
  crew_queue_destroy(q);
}
END_TEST

/* Timeouts that are "forever" or absurdly long: must wait, never overflow. */
static const uint64_t long_timeouts[] = {
    CREW_FOREVER,
    UINT64_MAX - 1,
    (uint64_t)INT64_MAX,
    (uint64_t)INT64_MAX + 1,
    UINT64_MAX - 1000 * MS,
    UINT64_MAX / 3,
    10000 * MS,
};
#define N_LONG_TIMEOUTS (sizeof long_timeouts / sizeof long_timeouts[0])

START_TEST(long_timed_pop_waits_and_is_woken_by_a_push)
{
  crew_queue *q = make_queue(2, 8);
  signal_box started, done;
  signal_init(&started);
  signal_init(&done);
  op o;
  op_start(&o, q, OP_POP_TIMED, long_timeouts[_i], 1, 0, &started, &done);
  expect_blocked(&started, &done, &o, 1);
  push_u64(q, 77);
  signal_wait(&done, 1);
  join_thread(o.th);
  ck_assert_int_eq(o.rc, 0);
  ck_assert_uint_eq(o.items[0], 77);
  ck_assert_uint_eq(crew_queue_size(q), 0);

  /* pop_many with the same timeout. */
  op_start(&o, q, OP_POP_MANY, long_timeouts[_i], 4, 0, &started, &done);
  expect_blocked(&started, &done, &o, 1);
  push_u64(q, 78);
  signal_wait(&done, 1);
  join_thread(o.th);
  ck_assert_int_eq(o.rc, 0);
  ck_assert_uint_eq(o.n, 1);
  ck_assert_uint_eq(o.items[0], 78);
  ck_assert_uint_eq(o.items[1], SENTINEL);
  signal_fini(&started);
  signal_fini(&done);
  crew_queue_destroy(q);
}
END_TEST

START_TEST(long_timed_push_waits_and_is_woken_by_a_pop)
{
  crew_queue *q = make_queue(1, 8);
  push_u64(q, 1);
  signal_box started, done;
  signal_init(&started);
  signal_init(&done);
  op o;
  op_start(&o, q, OP_PUSH_TIMED, long_timeouts[_i], 1, 50, &started, &done);
  expect_blocked(&started, &done, &o, 1);
  ck_assert_uint_eq(pop_u64(q), 1);
  signal_wait(&done, 1);
  join_thread(o.th);
  ck_assert_int_eq(o.rc, 0);
  ck_assert_uint_eq(pop_u64(q), 50);

  /* push_many with the same timeout, waiting part way. */
  push_u64(q, 2);
  op_start(&o, q, OP_PUSH_MANY, long_timeouts[_i], 2, 60, &started, &done);
  expect_blocked(&started, &done, &o, 1);
  ck_assert_uint_eq(pop_u64(q), 2);
  uint64_t v = SENTINEL;
  ck_assert_int_eq(crew_queue_pop(q, &v), 0);
  ck_assert_uint_eq(v, 60);
  ck_assert_int_eq(crew_queue_pop(q, &v), 0);
  ck_assert_uint_eq(v, 61);
  signal_wait(&done, 1);
  join_thread(o.th);
  ck_assert_int_eq(o.rc, 0);
  ck_assert_uint_eq(o.n, 2);
  ck_assert_uint_eq(crew_queue_size(q), 0);
  signal_fini(&started);
  signal_fini(&done);
  crew_queue_destroy(q);
}
END_TEST

START_TEST(blocking_pop_is_woken_by_a_push)
{
  crew_queue *q = make_queue(3, 8);
  signal_box started, done;
  signal_init(&started);
  signal_init(&done);
  op o;
  op_start(&o, q, OP_POP, 0, 1, 0, &started, &done);
  expect_blocked(&started, &done, &o, 1);
  push_u64(q, 9);
  signal_wait(&done, 1);
  join_thread(o.th);
  ck_assert_int_eq(o.rc, 0);
  ck_assert_uint_eq(o.items[0], 9);
  ck_assert_uint_eq(o.items[1], SENTINEL);
  signal_fini(&started);
  signal_fini(&done);
  crew_queue_destroy(q);
}
END_TEST

/* =================================================================== close */

START_TEST(close_rejects_pushes_and_drains_in_order)
{
  crew_queue *q = make_queue(4, 8);
  push_u64(q, 1);
  push_u64(q, 2);
  push_u64(q, 3);
  ck_assert(!crew_queue_is_closed(q));
  crew_queue_close(q);
  ck_assert(crew_queue_is_closed(q));

  uint64_t v = 100;
  ck_assert_int_eq(crew_queue_push(q, &v), CREW_ECLOSED);
  ck_assert_int_eq(crew_queue_push_timed(q, &v, 0), CREW_ECLOSED);
  ck_assert_int_eq(crew_queue_push_timed(q, &v, 20 * MS), CREW_ECLOSED);
  ck_assert_int_eq(crew_queue_push_timed(q, &v, CREW_FOREVER), CREW_ECLOSED);
  uint64_t items[2] = {100, 101};
  size_t pushed = 99;
  ck_assert_int_eq(crew_queue_push_many(q, items, 2, &pushed, 0), CREW_ECLOSED);
  ck_assert_uint_eq(pushed, 0);
  pushed = 99;
  ck_assert_int_eq(crew_queue_push_many(q, items, 1, &pushed, CREW_FOREVER),
                   CREW_ECLOSED);
  ck_assert_uint_eq(pushed, 0);
  ck_assert_int_eq(crew_queue_push_many(q, items, 2, NULL, 0), CREW_ECLOSED);
  ck_assert_uint_eq(crew_queue_size(q), 3);

  crew_queue_close(q); /* idempotent */
  ck_assert(crew_queue_is_closed(q));
  ck_assert_uint_eq(crew_queue_size(q), 3);

  ck_assert_int_eq(crew_queue_pop(q, &v), 0);
  ck_assert_uint_eq(v, 1);
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, 0), 0);
  ck_assert_uint_eq(v, 2);
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, CREW_FOREVER), 0);
  ck_assert_uint_eq(v, 3);

  v = SENTINEL;
  ck_assert_int_eq(crew_queue_pop(q, &v), CREW_ECLOSED);
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, 0), CREW_ECLOSED);
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, 20 * MS), CREW_ECLOSED);
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, CREW_FOREVER), CREW_ECLOSED);
  ck_assert_uint_eq(v, SENTINEL);
  crew_queue_close(q);
  ck_assert(crew_queue_is_closed(q));
  crew_queue_destroy(q);
}
END_TEST

START_TEST(close_of_a_full_queue_rejects_pushes_not_times_out)
{
  crew_queue *q = make_queue(2, 8);
  push_u64(q, 1);
  push_u64(q, 2);
  crew_queue_close(q);
  uint64_t v = 3;
  ck_assert_int_eq(crew_queue_push_timed(q, &v, 0), CREW_ECLOSED);
  ck_assert_int_eq(crew_queue_push_timed(q, &v, 20 * MS), CREW_ECLOSED);
  ck_assert_int_eq(crew_queue_push(q, &v), CREW_ECLOSED);
  size_t pushed = 99;
  ck_assert_int_eq(crew_queue_push_many(q, &v, 1, &pushed, 0), CREW_ECLOSED);
  ck_assert_uint_eq(pushed, 0);
  ck_assert_uint_eq(crew_queue_size(q), 2);
  ck_assert_uint_eq(pop_u64(q), 1);
  ck_assert_uint_eq(pop_u64(q), 2);
  crew_queue_destroy(q);
}
END_TEST

START_TEST(close_wakes_every_blocked_popper)
{
  enum { N = 5 };
  crew_queue *q = make_queue(4, 8);
  signal_box started, done;
  signal_init(&started);
  signal_init(&done);
  op ops[N];
  op_start(&ops[0], q, OP_POP, 0, 1, 0, &started, &done);
  op_start(&ops[1], q, OP_POP_TIMED, CREW_FOREVER, 1, 0, &started, &done);
  op_start(&ops[2], q, OP_POP_TIMED, 10000 * MS, 1, 0, &started, &done);
  op_start(&ops[3], q, OP_POP_MANY, CREW_FOREVER, 4, 0, &started, &done);
  op_start(&ops[4], q, OP_POP_MANY, 10000 * MS, 4, 0, &started, &done);
  expect_blocked(&started, &done, ops, N);

  crew_queue_close(q);
  signal_wait(&done, N);
  for (size_t i = 0; i < N; i++) {
    join_thread(ops[i].th);
    ck_assert_msg(ops[i].rc == CREW_ECLOSED, "op %zu: rc %d", i, ops[i].rc);
    ck_assert(all_bytes(ops[i].items, 0xAB, sizeof ops[i].items));
  }
  ck_assert_uint_eq(ops[3].n, 0);
  ck_assert_uint_eq(ops[4].n, 0);
  ck_assert_uint_eq(crew_queue_size(q), 0);
  signal_fini(&started);
  signal_fini(&done);
  crew_queue_destroy(q);
}
END_TEST

START_TEST(close_wakes_every_blocked_pusher)
{
  enum { N = 5 };
  crew_queue *q = make_queue(2, 8);
  push_u64(q, 1);
  push_u64(q, 2);
  signal_box started, done;
  signal_init(&started);
  signal_init(&done);
  op ops[N];
  op_start(&ops[0], q, OP_PUSH, 0, 1, 100, &started, &done);
  op_start(&ops[1], q, OP_PUSH_TIMED, CREW_FOREVER, 1, 200, &started, &done);
  op_start(&ops[2], q, OP_PUSH_TIMED, 10000 * MS, 1, 300, &started, &done);
  op_start(&ops[3], q, OP_PUSH_MANY, CREW_FOREVER, 3, 400, &started, &done);
  op_start(&ops[4], q, OP_PUSH_MANY, 10000 * MS, 1, 500, &started, &done);
  expect_blocked(&started, &done, ops, N);
  ck_assert_uint_eq(crew_queue_size(q), 2);

  crew_queue_close(q);
  signal_wait(&done, N);
  for (size_t i = 0; i < N; i++) {
    join_thread(ops[i].th);
    ck_assert_msg(ops[i].rc == CREW_ECLOSED, "op %zu: rc %d", i, ops[i].rc);
  }
  ck_assert_uint_eq(ops[3].n, 0);
  ck_assert_uint_eq(ops[4].n, 0);
  ck_assert_uint_eq(crew_queue_size(q), 2);
  ck_assert_uint_eq(pop_u64(q), 1);
  ck_assert_uint_eq(pop_u64(q), 2);
  uint64_t v = SENTINEL;
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, 0), CREW_ECLOSED);
  ck_assert_uint_eq(v, SENTINEL);
  signal_fini(&started);
  signal_fini(&done);
  crew_queue_destroy(q);
}
END_TEST

/* ================================================= wake-ups of blocked callers
 */

START_TEST(one_push_wakes_exactly_one_of_three_poppers)
{
  enum { N = 3 };
  crew_queue *q = make_queue(4, 8);
  signal_box started, done;
  signal_init(&started);
  signal_init(&done);
  op ops[N];
  op_start(&ops[0], q, OP_POP, 0, 1, 0, &started, &done);
  op_start(&ops[1], q, OP_POP_TIMED, CREW_FOREVER, 1, 0, &started, &done);
  op_start(&ops[2], q, OP_POP_TIMED, 10000 * MS, 1, 0, &started, &done);
  expect_blocked(&started, &done, ops, N);

  push_u64(q, 42);
  signal_wait(&done, 1);
  size_t w = the_one_returned(ops, N);
  ck_assert_int_eq(ops[w].rc, 0);
  ck_assert_uint_eq(ops[w].items[0], 42);
  /* The other two keep waiting. */
  ck_assert_int_eq(signal_try(&done, NEG_WAIT), CREW_ETIMEDOUT);
  ck_assert_uint_eq(the_one_returned(ops, N), w);
  ck_assert_uint_eq(crew_queue_size(q), 0);

  crew_queue_close(q);
  signal_wait(&done, N - 1);
  for (size_t i = 0; i < N; i++) {
    join_thread(ops[i].th);
    if (i != w) {
      ck_assert_int_eq(ops[i].rc, CREW_ECLOSED);
      ck_assert_uint_eq(ops[i].items[0], SENTINEL);
    }
  }
  signal_fini(&started);
  signal_fini(&done);
  crew_queue_destroy(q);
}
END_TEST

START_TEST(a_batch_of_two_wakes_exactly_two_of_three_poppers)
{
  enum { N = 3 };
  crew_queue *q = make_queue(4, 8);
  signal_box started, done;
  signal_init(&started);
  signal_init(&done);
  op ops[N];
  for (size_t i = 0; i < N; i++)
    op_start(&ops[i], q, OP_POP, 0, 1, 0, &started, &done);
  expect_blocked(&started, &done, ops, N);

  uint64_t items[2] = {7, 8};
  size_t pushed = 99;
  ck_assert_int_eq(crew_queue_push_many(q, items, 2, &pushed, 0), 0);
  ck_assert_uint_eq(pushed, 2);
  signal_wait(&done, 2);
  ck_assert_int_eq(signal_try(&done, NEG_WAIT), CREW_ETIMEDOUT);
  size_t loser = N, got7 = 0, got8 = 0;
  for (size_t i = 0; i < N; i++) {
    if (!op_returned(&ops[i])) {
      ck_assert_uint_eq(loser, N);
      loser = i;
      continue;
    }
    ck_assert_int_eq(ops[i].rc, 0);
    got7 += ops[i].items[0] == 7;
    got8 += ops[i].items[0] == 8;
  }
  ck_assert_uint_lt(loser, N);
  ck_assert_uint_eq(got7, 1);
  ck_assert_uint_eq(got8, 1);

  crew_queue_close(q);
  signal_wait(&done, 1);
  for (size_t i = 0; i < N; i++)
    join_thread(ops[i].th);
  ck_assert_int_eq(ops[loser].rc, CREW_ECLOSED);
  signal_fini(&started);
  signal_fini(&done);
  crew_queue_destroy(q);
}
END_TEST

START_TEST(one_pop_releases_exactly_one_of_two_pushers)
{
  enum { N = 2 };
  crew_queue *q = make_queue(1, 8);
  push_u64(q, 1);
  signal_box started, done;
  signal_init(&started);
  signal_init(&done);
  op ops[N];
  op_start(&ops[0], q, OP_PUSH, 0, 1, 100, &started, &done);
  op_start(&ops[1], q, OP_PUSH_TIMED, CREW_FOREVER, 1, 200, &started, &done);
  expect_blocked(&started, &done, ops, N);

  ck_assert_uint_eq(pop_u64(q), 1);
  signal_wait(&done, 1);
  size_t w = the_one_returned(ops, N);
  ck_assert_int_eq(ops[w].rc, 0);
  ck_assert_int_eq(signal_try(&done, NEG_WAIT), CREW_ETIMEDOUT);
  ck_assert_uint_eq(the_one_returned(ops, N), w);
  ck_assert_uint_eq(crew_queue_size(q), 1);

  uint64_t v = SENTINEL;
  ck_assert_int_eq(crew_queue_pop(q, &v), 0);
  ck_assert_uint_eq(v, ops[w].items[0]);
  signal_wait(&done, 1);
  size_t other = 1 - w;
  ck_assert_int_eq(ops[other].rc, 0);
  ck_assert_int_eq(crew_queue_pop(q, &v), 0);
  ck_assert_uint_eq(v, ops[other].items[0]);
  ck_assert_uint_eq(crew_queue_size(q), 0);
  for (size_t i = 0; i < N; i++)
    join_thread(ops[i].th);
  signal_fini(&started);
  signal_fini(&done);
  crew_queue_destroy(q);
}
END_TEST

START_TEST(a_batch_pop_of_two_releases_exactly_two_of_three_pushers)
{
  enum { N = 3 };
  crew_queue *q = make_queue(2, 8);
  push_u64(q, 1);
  push_u64(q, 2);
  signal_box started, done;
  signal_init(&started);
  signal_init(&done);
  op ops[N];
  for (size_t i = 0; i < N; i++)
    op_start(&ops[i], q, OP_PUSH, 0, 1, 100 * (i + 1), &started, &done);
  expect_blocked(&started, &done, ops, N);

  uint64_t out[2];
  size_t popped = 99;
  ck_assert_int_eq(crew_queue_pop_many(q, out, 2, &popped, 0), 0);
  ck_assert_uint_eq(popped, 2);
  ck_assert_uint_eq(out[0], 1);
  ck_assert_uint_eq(out[1], 2);
  signal_wait(&done, 2);
  ck_assert_int_eq(signal_try(&done, NEG_WAIT), CREW_ETIMEDOUT);
  ck_assert_uint_eq(crew_queue_size(q), 2);

  crew_queue_close(q);
  signal_wait(&done, 1);
  uint64_t winners = 0, losers = 0;
  for (size_t i = 0; i < N; i++) {
    join_thread(ops[i].th);
    if (ops[i].rc == 0)
      winners += ops[i].items[0];
    else {
      ck_assert_int_eq(ops[i].rc, CREW_ECLOSED);
      losers++;
    }
  }
  ck_assert_uint_eq(losers, 1);
  /* The queue holds exactly the two winners' items. */
  uint64_t a = pop_u64(q), b = pop_u64(q);
  ck_assert_uint_ne(a, b);
  ck_assert_uint_eq(a + b, winners);
  ck_assert_uint_eq(crew_queue_size(q), 0);
  signal_fini(&started);
  signal_fini(&done);
  crew_queue_destroy(q);
}
END_TEST

/* ==================================================================== main */

int main(void)
{
  Suite *s = suite_create("queue");
  TCase *tc = timed_tcase(s, "errors", 2);
  tcase_add_test(tc, create_with_null_q_is_einval);
  tcase_add_test(tc, create_with_zero_capacity_is_einval);
  tcase_add_test(tc, create_with_zero_item_size_is_einval);
  tcase_add_test(tc, create_with_overflowing_size_is_einval);
  tcase_add_test(tc, create_with_unknown_flags_is_einval);
  tcase_add_test(tc, create_gives_an_empty_open_queue);
  tcase_add_test(tc, single_item_calls_reject_null);
  tcase_add_test(tc, push_many_rejects_bad_arguments);
  tcase_add_test(tc, pop_many_rejects_bad_arguments);
  tcase_add_test(tc, null_queue_accessors_and_no_ops);
  tcase_add_test(tc, destroy_frees_a_queue_with_items_in_it);

  tc = timed_tcase(s, "fifo", 3);
  tcase_add_loop_test(tc, fifo_by_value_for_item_sizes, 0,
                      sizeof item_sizes / sizeof item_sizes[0]);
  tcase_add_test(tc, fifo_with_capacity_one);
  tcase_add_loop_test(tc, capacity_is_respected, 0,
                      sizeof capacities / sizeof capacities[0]);
  tcase_add_test(tc, timeout_zero_polls);

  tc = timed_tcase(s, "timeouts", 3);
  tcase_add_test(tc, timed_pop_times_out_no_earlier_than_asked);
  tcase_add_test(tc, timed_push_times_out_no_earlier_than_asked);
  tcase_add_loop_test(tc, long_timed_pop_waits_and_is_woken_by_a_push, 0,
                      N_LONG_TIMEOUTS);
  tcase_add_loop_test(tc, long_timed_push_waits_and_is_woken_by_a_pop, 0,
                      N_LONG_TIMEOUTS);
  tcase_add_test(tc, blocking_pop_is_woken_by_a_push);

  tc = timed_tcase(s, "close", 3);
  tcase_add_test(tc, close_rejects_pushes_and_drains_in_order);
  tcase_add_test(tc, close_of_a_full_queue_rejects_pushes_not_times_out);
  tcase_add_test(tc, close_wakes_every_blocked_popper);
  tcase_add_test(tc, close_wakes_every_blocked_pusher);

  tc = timed_tcase(s, "wakeups", 3);
  tcase_add_test(tc, one_push_wakes_exactly_one_of_three_poppers);
  tcase_add_test(tc, a_batch_of_two_wakes_exactly_two_of_three_poppers);
  tcase_add_test(tc, one_pop_releases_exactly_one_of_two_pushers);
  tcase_add_test(tc, a_batch_pop_of_two_releases_exactly_two_of_three_pushers);
  return run_suite(s);
}
