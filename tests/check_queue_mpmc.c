/*
 * check_queue_mpmc.c - the bounded MPMC queue under load: producers x
 * consumers with blocking and mixed calls (every item once, in each
 * producer's order), ping-pong through capacity one, round trips through
 * two queues of capacity one, and the popper of the last item destroying
 * the queue at once.
 */
#include "queuetest.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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
  Suite *s = suite_create("queue_mpmc");
  TCase *tc = timed_tcase(s, "concurrency", 20);
  tcase_add_loop_test(tc, mpmc_blocking_every_item_once_in_order, 0, N_MPMC);
  tcase_add_loop_test(tc, mpmc_mixed_calls_every_item_once_in_order, 0, N_MPMC);
  tcase_add_test(tc, ping_pong_through_capacity_one);
  tcase_add_test(tc, round_trips_through_two_capacity_one_queues);
  tcase_add_test(tc, popper_of_the_last_item_may_destroy_the_queue_at_once);
  return run_suite(s);
}
