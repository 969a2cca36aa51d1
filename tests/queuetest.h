/*
 * queuetest.h - what the queue suites (check_queue, check_queue_batch,
 * check_queue_mpmc) share: queues of uint64_t, one queue call run on a
 * thread of its own (which says "I am about to block" through a signal_box
 * before the call, and "I returned" after it; "still blocked" is a
 * negative check: no return within NEG_WAIT), and items whose every byte
 * is known.
 */
#ifndef CREW_QUEUETEST_H
#define CREW_QUEUETEST_H

#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NEG_WAIT (50 * MS) /* how long a negative check waits */

#define SENTINEL 0xABABABABABABABABull /* what a pop overwrites */

/* A private queue, asserting crew_queue_create succeeds. */
crew_queue *make_queue(size_t capacity, size_t item_size);

/* Push or pop one uint64_t without waiting, asserting it succeeds. */
void push_u64(crew_queue *q, uint64_t v);
uint64_t pop_u64(crew_queue *q);

/* Whether all n bytes at p are b. */
bool all_bytes(const void *p, unsigned char b, size_t n);

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

/* The thread of an op: posts started, makes the call, posts done. */
void *op_main(void *arg);

/*
 * Start `o` as a call of `kind` on q. For a push, items[0..] are the values
 * first + 0, first + 1, ...; for a pop they are SENTINEL.
 */
void op_start(op *o, crew_queue *q, op_kind kind, uint64_t timeout,
              size_t count, uint64_t first, signal_box *started,
              signal_box *done);

/* Whether o's call has returned. */
bool op_returned(op *o);

/* Wait for `n` threads to be at their call, then check none has returned. */
void expect_blocked(signal_box *started, signal_box *done, op *ops, size_t n);

/* Exactly one of ops[0..n) has returned: its index. */
size_t the_one_returned(op *ops, size_t n);

/* Byte j of the k-th item of size sz. */
unsigned char pattern(size_t k, size_t j, size_t sz);

/* Write the k-th item of size sz to buf; check that buf holds it. */
void fill_item(unsigned char *buf, size_t k, size_t sz);
void check_item(const unsigned char *buf, size_t k, size_t sz);

#endif
