/* queuetest.c - see queuetest.h. */
#include "queuetest.h"

#include <sched.h>
#include <string.h>

crew_queue *make_queue(size_t capacity, size_t item_size)
{
  crew_queue *q = NULL;
  ck_assert_int_eq(crew_queue_create(&q, capacity, item_size, 0), 0);
  ck_assert_ptr_nonnull(q);
  return q;
}

void push_u64(crew_queue *q, uint64_t v)
{
  ck_assert_int_eq(crew_queue_push_timed(q, &v, 0), 0);
}

uint64_t pop_u64(crew_queue *q)
{
  uint64_t v = SENTINEL;
  ck_assert_int_eq(crew_queue_pop_timed(q, &v, 0), 0);
  return v;
}

bool all_bytes(const void *p, unsigned char b, size_t n)
{
  const unsigned char *c = p;
  for (size_t i = 0; i < n; i++)
    if (c[i] != b)
      return false;
  return true;
}

void *op_main(void *arg)
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

void op_start(op *o, crew_queue *q, op_kind kind, uint64_t timeout,
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

bool op_returned(op *o)
{
  return atomic_load(&o->returned);
}

void expect_blocked(signal_box *started, signal_box *done, op *ops, size_t n)
{
  signal_wait(started, n);
  ck_assert_int_eq(signal_try(done, NEG_WAIT), CREW_ETIMEDOUT);
  for (size_t i = 0; i < n; i++)
    ck_assert_msg(!op_returned(&ops[i]), "op %zu returned early", i);
}

size_t the_one_returned(op *ops, size_t n)
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

unsigned char pattern(size_t k, size_t j, size_t sz)
{
  return (unsigned char)(k * 131u + j * 7u + sz * 3u + (k >> 8));
}

void fill_item(unsigned char *buf, size_t k, size_t sz)
{
  for (size_t j = 0; j < sz; j++)
    buf[j] = pattern(k, j, sz);
}

void check_item(const unsigned char *buf, size_t k, size_t sz)
{
  for (size_t j = 0; j < sz; j++)
    if (buf[j] != pattern(k, j, sz))
      ck_abort_msg("item %zu (size %zu): byte %zu is %u, expected %u", k, sz, j,
                   buf[j], pattern(k, j, sz));
}
