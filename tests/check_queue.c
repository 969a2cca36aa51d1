/*
 * check_queue.c - the bounded MPMC queue (crew/queue.h): argument errors,
 * FIFO order and copying by value, capacity, timeouts, close, wake-ups of
 * blocked callers, batches, and producers x consumers under load.
 *
 * Threads of the tests themselves are pthreads. They say "I am about to
 * block" through a signal_box before the call, and "I returned" after it;
 * "still blocked" is a negative check (no return within 50 ms).
 */
#include "testutil.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Hot paths use testutil.h's quiet assertions: silent on success. */
#define NEG_WAIT (50 * MS) /* how long a negative check waits */
#define SENTINEL 0xABABABABABABABABull

/* ------------------------------------------------------------- helpers */

static crew_queue *make_queue(size_t capacity, size_t item_size)
{
  crew_queue *q = NULL;
  ck_assert_int_eq(crew_queue_create(&q, capacity, item_size, 0), 0);
  ck_assert_ptr_nonnull(q);
  return q;
}

static void push_u64(crew_queue *q, uint64_t v)
{
  ck_assert_int_eq(crew_queue_push_timed(q, &v, 0), 0);
}

static uint64_t pop_u64(crew_queue *q)
{
  uint64_t v = SENTINEL;
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, 0), 0);
  return v;
}

static bool all_bytes(const void *p, unsigned char b, size_t n)
{
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++)
    if (c[i] != b)
      return false;
  return true;
}

/* -------------------------------------------- one call on its own thread */

typedef enum op_kind {
  OP_PUSH,
  OP_PUSH_TIMED,
  OP_POP,
  OP_POP_TIMED,
  OP_PUSH_MANY,
  OP_POP_MANY
} op_kind;

#define OP_ITEMS 16

/* One queue call (items of uint64_t) run on a thread of its own. */
typedef struct op {
  crew_queue *q;
  op_kind kind;
  uint64_t timeout;
  size_t count;             /* PUSH_MANY: items to push; POP_MANY: max */
  uint64_t items[OP_ITEMS]; /* in for pushes, out for pops */
  size_t n;                 /* *pushed or *popped */
  int rc;
  atomic_bool returned;
  signal_box *started;
  signal_box *done;
  pthread_t th;
} op;

static void *op_main(void *arg)
{
  op *o = arg;
  size_t n = (size_t)-1;
  int rc = 1;
  signal_post(o->started);
  switch (o->kind) {
  case OP_PUSH:
    rc = crew_queue_push(o->q, o->items);
    break;
  case OP_PUSH_TIMED:
    rc = crew_queue_push_timed(o->q, o->items, o->timeout);
    break;
  case OP_POP:
    rc = crew_queue_pop(o->q, o->items);
    break;
  case OP_POP_TIMED:
    rc = crew_queue_pop_timed(o->q, o->items, o->timeout);
    break;
  case OP_PUSH_MANY:
    rc = crew_queue_push_many(o->q, o->items, o->count, &n, o->timeout);
    break;
  case OP_POP_MANY:
    rc = crew_queue_pop_many(o->q, o->items, o->count, &n, o->timeout);
    break;
  }
  o->rc = rc;
  o->n = n;
  atomic_store(&o->returned, true);
  signal_post(o->done);
  return NULL;
}

/*
 * Start `o` as a call of `kind` on q. For a push, items[0..] are the values
 * first + 0, first + 1, ...; for a pop they are SENTINEL.
 */
static void op_start(op *o, crew_queue *q, op_kind kind, uint64_t timeout,
                     size_t count, uint64_t first, signal_box *started,
                     signal_box *done)
{
  ck_assert_uint_le(count, OP_ITEMS);
  o->q = q;
  o->kind = kind;
  o->timeout = timeout;
  o->count = count;
  bool is_pop = kind == OP_POP || kind == OP_POP_TIMED || kind == OP_POP_MANY;
  for (size_t i = 0; i < OP_ITEMS; i++)
    o->items[i] = is_pop ? SENTINEL : first + i;
  o->n = (size_t)-1;
  o->rc = 1;
  atomic_init(&o->returned, false);
  o->started = started;
  o->done = done;
  ck_assert_int_eq(pthread_create(&o->th, NULL, op_main, o), 0);
}

static bool op_returned(op *o)
{
  return atomic_load(&o->returned);
}

/* Wait for `n` threads to be at their call, then check none has returned. */
static void expect_blocked(signal_box *started, signal_box *done, op *ops,
                           size_t n)
{
  signal_wait(started, n);
  ck_assert_int_eq(signal_try(done, NEG_WAIT), CREW_ETIMEDOUT);
  for (size_t i = 0; i < n; i++)
    ck_assert_msg(!op_returned(&ops[i]), "op %zu returned early", i);
}

/* Exactly one of ops[0..n) has returned: its index. */
static size_t the_one_returned(op *ops, size_t n)
{
  size_t which = n, count = 0;
  for (size_t i = 0; i < n; i++) {
    if (op_returned(&ops[i])) {
      which = i;
      count++;
    }
  }
  ck_assert_uint_eq(count, 1);
  return which;
}

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

/* Byte j of the k-th item of size sz. */
static unsigned char pattern(size_t k, size_t j, size_t sz)
{
  return (unsigned char)(k * 131u + j * 7u + sz * 3u + (k >> 8));
}

static void fill_item(unsigned char *buf, size_t k, size_t sz)
{
  for (size_t j = 0; j < sz; j++)
    buf[j] = pattern(k, j, sz);
}

static void check_item(const unsigned char *buf, size_t k, size_t sz)
{
  for (size_t j = 0; j < sz; j++)
    if (buf[j] != pattern(k, j, sz))
      ck_abort_msg("item %zu (size %zu): byte %zu is %u, expected %u", k, sz, j,
                   buf[j], pattern(k, j, sz));
}

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

/* ============================================ producers x consumers, load */

#define TAG_MAGIC 0x5EC7E7C0FFEE1234ull

typedef struct tagged {
  uint32_t producer;
  uint32_t check; /* ~(uint32_t)seq */
  uint64_t seq;
  uint64_t magic; /* TAG_MAGIC ^ producer ^ seq */
} tagged;

static tagged make_tag(uint32_t producer, uint64_t seq)
{
  return (tagged){.producer = producer,
                  .check = ~(uint32_t)seq,
                  .seq = seq,
                  .magic = TAG_MAGIC ^ ((uint64_t)producer << 40) ^ seq};
}

typedef struct mpmc {
  crew_queue *q;
  size_t producers;
  size_t consumers;
  size_t per_producer;
  bool mixed;         /* mix blocking, timed, zero-timeout and batch calls */
  atomic_uchar *seen; /* [producer * per_producer + seq]: times consumed */
  atomic_size_t consumed;
} mpmc;

typedef struct mpmc_thread {
  mpmc *m;
  uint32_t id;
  pthread_t th;
} mpmc_thread;

/* Push items seq .. seq + n - 1 of producer `id` in one of many ways. */
static void produce(mpmc *m, uint32_t id, uint64_t seq, size_t n, uint64_t r)
{
  tagged batch[8];
  crew_queue *q = m->q;
  if (!m->mixed || n == 1) {
    quiet_assert(n == 1);
    tagged t = make_tag(id, seq);
    switch (m->mixed ? r % 4 : 0) {
    case 0:
      quiet_assert_int_eq(crew_queue_push(q, &t), 0);
      break;
    case 1:
      quiet_assert_int_eq(crew_queue_push_timed(q, &t, CREW_FOREVER), 0);
      break;
    case 2: /* poll */
      for (int rc; (rc = crew_queue_push_timed(q, &t, 0)) != 0;) {
        quiet_assert_int_eq(rc, CREW_ETIMEDOUT);
        sched_yield();
      }
      break;
    default: /* short timeout */
      for (int rc; (rc = crew_queue_push_timed(q, &t, MS)) != 0;)
        quiet_assert_int_eq(rc, CREW_ETIMEDOUT);
      break;
    }
    return;
  }
  quiet_assert(n <= 8);
  for (size_t i = 0; i < n; i++)
    batch[i] = make_tag(id, seq + i);
  uint64_t timeout = r % 3 == 0 ? CREW_FOREVER : r % 3 == 1 ? 0 : MS;
  size_t done = 0;
  while (done < n) {
    size_t pushed = 99;
    int rc = crew_queue_push_many(q, batch + done, n - done, &pushed, timeout);
    quiet_assert(pushed <= n - done);
    done += pushed;
    if (rc == 0)
      quiet_assert(done == n);
    else {
      quiet_assert_int_eq(rc, CREW_ETIMEDOUT);
      quiet_assert(timeout != CREW_FOREVER);
      if (timeout == 0)
        sched_yield();
    }
  }
}

static void *producer_main(void *arg)
{
  mpmc_thread *t = arg;
  mpmc *m = t->m;
  uint64_t rng = 0x9E3779B97F4A7C15ull * (t->id + 1);
  for (uint64_t seq = 0; seq < m->per_producer;) {
    uint64_t r = next_rand(&rng);
    size_t n = 1;
    if (m->mixed && r % 5 == 4) {
      n = 1 + (size_t)(r >> 8) % 8;
      if (n > m->per_producer - seq)
        n = (size_t)(m->per_producer - seq);
    }
    produce(m, t->id, seq, n, r >> 3);
    seq += n;
  }
  return NULL;
}

/* Check one consumed item; last[p] is 1 + the last seq seen of producer p. */
static void consume(mpmc *m, const tagged *t, uint64_t *last)
{
  quiet_assert(t->producer < m->producers);
  quiet_assert(t->seq < m->per_producer);
  quiet_assert(t->check == ~(uint32_t)t->seq);
  quiet_assert(t->magic ==
               (TAG_MAGIC ^ ((uint64_t)t->producer << 40) ^ t->seq));
  if (t->seq + 1 <= last[t->producer])
    ck_abort_msg("producer %u: seq %llu after %llu", t->producer,
                 (unsigned long long)t->seq,
                 (unsigned long long)last[t->producer] - 1);
  last[t->producer] = t->seq + 1;
  unsigned char before = atomic_fetch_add_explicit(
      &m->seen[t->producer * m->per_producer + t->seq], 1,
      memory_order_relaxed);
  if (before != 0)
    ck_abort_msg("producer %u seq %llu consumed twice", t->producer,
                 (unsigned long long)t->seq);
  atomic_fetch_add_explicit(&m->consumed, 1, memory_order_relaxed);
}

/* One pop of one of many kinds; false once the queue is closed and empty. */
static bool consume_some(mpmc *m, uint64_t *last, uint64_t r)
{
  tagged buf[8];
  int rc;
  switch (m->mixed ? r % 6 : 0) {
  case 0:
    rc = crew_queue_pop(m->q, buf);
    break;
  case 1:
    rc = crew_queue_pop_timed(m->q, buf, CREW_FOREVER);
    break;
  case 2:
    rc = crew_queue_pop_timed(m->q, buf, 0);
    if (rc == CREW_ETIMEDOUT) {
      sched_yield();
      return true;
    }
    break;
  case 3:
    rc = crew_queue_pop_timed(m->q, buf, MS);
    if (rc == CREW_ETIMEDOUT)
      return true;
    break;
  default: {
    size_t max = 1 + (size_t)(r >> 8) % 8, popped = 99;
    uint64_t timeout = r % 6 == 4 ? CREW_FOREVER : 0;
    rc = crew_queue_pop_many(m->q, buf, max, &popped, timeout);
    if (rc == CREW_ETIMEDOUT) {
      quiet_assert(timeout == 0);
      quiet_assert(popped == 0);
      sched_yield();
      return true;
    }
    if (rc == 0) {
      quiet_assert(popped >= 1 && popped <= max);
      for (size_t i = 0; i < popped; i++)
        consume(m, &buf[i], last);
    } else {
      quiet_assert(popped == 0);
    }
    goto done;
  }
  }
  if (rc == 0)
    consume(m, buf, last);
done:
  if (rc == CREW_ECLOSED)
    return false;
  quiet_assert_int_eq(rc, 0);
  return true;
}

static void *consumer_main(void *arg)
{
  mpmc_thread *t = arg;
  mpmc *m = t->m;
  uint64_t *last = calloc(m->producers, sizeof *last);
  ck_assert_ptr_nonnull(last);
  uint64_t rng = 0xD1B54A32D192ED03ull * (t->id + 7);
  while (consume_some(m, last, next_rand(&rng) >> 3))
    ;
  free(last);
  return NULL;
}

typedef struct mpmc_config {
  size_t producers, consumers, capacity;
} mpmc_config;

static const mpmc_config mpmc_configs[] = {
    {1, 1, 1},  {1, 4, 1},  {4, 1, 1},  {4, 4, 1},  {2, 3, 1},
    {1, 1, 2},  {1, 4, 2},  {4, 1, 2},  {4, 4, 2},  {2, 3, 2},
    {1, 1, 64}, {1, 4, 64}, {4, 1, 64}, {4, 4, 64}, {2, 3, 64},
};
#define N_MPMC (sizeof mpmc_configs / sizeof mpmc_configs[0])

static void run_mpmc(const mpmc_config *c, bool mixed, size_t total)
{
  mpmc m = {.producers = c->producers,
            .consumers = c->consumers,
            .per_producer = total / c->producers,
            .mixed = mixed};
  m.q = make_queue(c->capacity, sizeof(tagged));
  size_t n = m.producers * m.per_producer;
  m.seen = calloc(n, sizeof *m.seen);
  ck_assert_ptr_nonnull(m.seen);
  for (size_t i = 0; i < n; i++)
    atomic_init(&m.seen[i], 0);
  atomic_init(&m.consumed, 0);

  mpmc_thread prod[4], cons[4];
  for (size_t i = 0; i < m.consumers; i++) {
    cons[i] = (mpmc_thread){.m = &m, .id = (uint32_t)i};
    ck_assert_int_eq(pthread_create(&cons[i].th, NULL, consumer_main, &cons[i]),
                     0);
  }
  for (size_t i = 0; i < m.producers; i++) {
    prod[i] = (mpmc_thread){.m = &m, .id = (uint32_t)i};
    ck_assert_int_eq(pthread_create(&prod[i].th, NULL, producer_main, &prod[i]),
                     0);
  }
  for (size_t i = 0; i < m.producers; i++)
    join_thread(prod[i].th);
  crew_queue_close(m.q); /* consumers drain what is left, then stop */
  for (size_t i = 0; i < m.consumers; i++)
    join_thread(cons[i].th);

  size_t consumed = atomic_load(&m.consumed);
  ck_assert_uint_eq(consumed, n);
  for (size_t i = 0; i < n; i++)
    if (atomic_load(&m.seen[i]) != 1)
      ck_abort_msg("item %zu consumed %u times", i,
                   (unsigned)atomic_load(&m.seen[i]));
  ck_assert_uint_eq(crew_queue_size(m.q), 0);
  free(m.seen);
  crew_queue_destroy(m.q);
}

START_TEST(mpmc_blocking_every_item_once_in_order)
{
  run_mpmc(&mpmc_configs[_i], false, scaled(4000));
}
END_TEST

START_TEST(mpmc_mixed_calls_every_item_once_in_order)
{
  run_mpmc(&mpmc_configs[_i], true, scaled(4000));
}
END_TEST

/* Capacity 1: every push after the first waits for the consumer's pop. */
typedef struct stream {
  crew_queue *q;
  uint64_t rounds;
} stream;

static void *stream_producer(void *arg)
{
  stream *s = arg;
  for (uint64_t i = 0; i < s->rounds; i++)
    quiet_assert_int_eq(crew_queue_push(s->q, &i), 0);
  crew_queue_close(s->q);
  return NULL;
}

START_TEST(ping_pong_through_capacity_one)
{
  stream s = {.q = make_queue(1, 8), .rounds = scaled(20000)};
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, stream_producer, &s), 0);
  uint64_t v = SENTINEL;
  for (uint64_t i = 0; i < s.rounds; i++) {
    quiet_assert_int_eq(crew_queue_pop(s.q, &v), 0);
    quiet_assert(v == i);
  }
  ck_assert_int_eq(crew_queue_pop(s.q, &v), CREW_ECLOSED);
  join_thread(th);
  crew_queue_destroy(s.q);
}
END_TEST

/* Two queues of capacity 1: each pop waits on empty, each push on full. */
typedef struct echo {
  crew_queue *there, *back;
} echo;

static void *echo_main(void *arg)
{
  echo *e = arg;
  uint64_t v;
  int rc;
  while ((rc = crew_queue_pop(e->there, &v)) == 0)
    quiet_assert_int_eq(crew_queue_push(e->back, &v), 0);
  ck_assert_int_eq(rc, CREW_ECLOSED);
  return NULL;
}

START_TEST(round_trips_through_two_capacity_one_queues)
{
  echo e = {.there = make_queue(1, 8), .back = make_queue(1, 8)};
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, echo_main, &e), 0);
  uint64_t rounds = scaled(5000);
  for (uint64_t i = 0; i < rounds; i++) {
    uint64_t v = SENTINEL;
    quiet_assert_int_eq(crew_queue_push(e.there, &i), 0);
    quiet_assert_int_eq(crew_queue_pop(e.back, &v), 0);
    quiet_assert(v == i);
  }
  crew_queue_close(e.there);
  join_thread(th);
  ck_assert_uint_eq(crew_queue_size(e.back), 0);
  crew_queue_destroy(e.there);
  crew_queue_destroy(e.back);
}
END_TEST

/*
 * The thread that pops the last item other threads pushed may destroy the
 * queue at once, while those pushes may not have returned yet (queue.h). A
 * push that touched the queue after its item could be popped (say, a signal
 * sent after the unlock) is a use after free here under ASan and TSan.
 */
typedef struct last_pusher {
  crew_queue *q;
  uint64_t first;
  int how; /* 0 push, 1 push_timed FOREVER, 2 push_many by twos */
  int rc;
  pthread_t th;
} last_pusher;

#define LAST_PUSHES 4

static void *last_pusher_main(void *arg)
{
  last_pusher *p = arg;
  int rc = 0;
  for (uint64_t i = 0; i < LAST_PUSHES && rc == 0;) {
    uint64_t v[2] = {p->first + i, p->first + i + 1};
    if (p->how == 2) {
      rc = crew_queue_push_many(p->q, v, 2, NULL, CREW_FOREVER);
      i += 2;
    } else {
      rc = p->how == 0 ? crew_queue_push(p->q, v)
                       : crew_queue_push_timed(p->q, v, CREW_FOREVER);
      i++;
    }
  }
  p->rc = rc; /* not the queue: it may be gone by now */
  return NULL;
}

START_TEST(popper_of_the_last_item_may_destroy_the_queue_at_once)
{
  size_t rounds = scaled(300);
  for (size_t round = 0; round < rounds; round++) {
    crew_queue *q = make_queue(1 + round % 3, 8);
    last_pusher p[2];
    for (int i = 0; i < 2; i++) {
      p[i] = (last_pusher){.q = q,
                           .first = 100u * (uint64_t)(i + 1),
                           .how = (int)((round + (size_t)i) % 3),
                           .rc = 1};
      quiet_assert_int_eq(
          pthread_create(&p[i].th, NULL, last_pusher_main, &p[i]), 0);
    }
    uint64_t next[2] = {100, 200};
    for (int k = 0; k < 2 * LAST_PUSHES; k++) {
      uint64_t v = SENTINEL;
      quiet_assert_int_eq(crew_queue_pop(q, &v), 0);
      int from = v >= 200;
      quiet_assert(v == next[from]);
      next[from]++;
    }
    crew_queue_destroy(q); /* the pushers may still be returning */
    for (int i = 0; i < 2; i++) {
      quiet_assert_int_eq(pthread_join(p[i].th, NULL), 0);
      quiet_assert_int_eq(p[i].rc, 0);
    }
  }
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

  tc = timed_tcase(s, "batches", 3);
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

  tc = timed_tcase(s, "concurrency", 20);
  tcase_add_loop_test(tc, mpmc_blocking_every_item_once_in_order, 0, N_MPMC);
  tcase_add_loop_test(tc, mpmc_mixed_calls_every_item_once_in_order, 0, N_MPMC);
  tcase_add_test(tc, ping_pong_through_capacity_one);
  tcase_add_test(tc, round_trips_through_two_capacity_one_queues);
  tcase_add_test(tc, popper_of_the_last_item_may_destroy_the_queue_at_once);

  return run_suite(s);
}
