/*
 * check_stress.c - the stress suite: the pool, futures and queue under many
 * threads at once, with exact accounting (every task or item exactly once,
 * checksums in closed form, pool counters that add up):
 *   1. exactly once: 4 producers, 4 workers, 10^6 tasks, fire and forget and
 *      with a window of futures;
 *   2. mixed outcomes (failing and cancelled tasks, on_done callbacks), and
 *      2b. cancel racing observers of the same future;
 *   3. shutdown (DRAIN, CANCEL) racing 8 submitters;
 *   4. submit, cancel, shutdown, destroy, many rounds;
 *   5. tasks submitting tasks while the pool drains;
 *   6. the queue alone: 4 producers, 4 consumers, every push and pop kind;
 *   7. 8 pools used by 8 threads, destroyed one by one while in use.
 *
 * Sizes come from scaled(n): `make check` runs the short version and
 * `make stress` (CREW_STRESS_SCALE=20) the long one. The TCase timeouts are
 * the hang watchdogs and grow with the scale.
 *
 * Failures inside tasks are counted in atomics and asserted by the test's
 * main thread; failures in the test's own pthreads use ck_assert directly
 * (in Check's fork mode that ends the test process from any thread).
 */
#define _POSIX_C_SOURCE 200809L

#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/*
 * Every build, the sanitizer builds included, runs the full sizes: on
 * 2 cores the default run takes about 6 s, and well under a minute under
 * ThreadSanitizer. To shrink the sizes anyway (a slower machine), build
 * with -DSIZE_DIVISOR=N.
 */
#ifndef SIZE_DIVISOR
#define SIZE_DIVISOR 1
#endif

#define MAGIC 0x5eedc0deu

/*
 * Base sizes (before scaled()): the 10^6 tasks through 4 producers
 * and 4 workers, fire and forget and with futures, and 10^6 items through
 * the bare queue. `make stress` (x20) runs 2 * 10^7 of each. Assertions on
 * the hot paths are the quiet ones of testutil.h: Check's own would send a
 * message per passing check and serialise the threads under test.
 */
#define ONCE_TASKS        1000000 /* fire and forget */
#define ONCE_WINDOW_TASKS 1000000 /* each with a future */
#define QT_ITEMS          1000000

/* scaled(n) divided by SIZE_DIVISOR, at least 1. */
static size_t size_of(size_t n)
{
  size_t v = scaled(n) / SIZE_DIVISOR;
  return v > 0 ? v : 1;
}

/* A generous hang watchdog for a TCase, growing with the scale. */
static double watchdog(void)
{
  return (double)scaled(120);
}

/* Shut the pool down with CREW_DRAIN and read its final counters. */
static crew_stats drain_and_stats(crew_pool *pool)
{
  crew_stats st;
  quiet_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  quiet_assert_int_eq(crew_pool_stats(pool, &st), 0);
  quiet_assert_uint_eq(st.queued, 0);
  quiet_assert_uint_eq(st.running, 0);
  quiet_assert_uint_eq(st.workers, 0);
  return st;
}

/* ------------------------------------------------ 1. exactly once, 4 x 4 */

#define ONCE_PRODUCERS 4
#define ONCE_WINDOW    64

struct once_ctx {
  crew_pool *pool;
  size_t per_producer;
  _Atomic uint32_t *marks; /* one per (producer, seq) */
  _Atomic uint64_t checksum;
  _Atomic uint64_t bad; /* tasks that got a corrupted input */
};

struct once_in {
  struct once_ctx *ctx;
  uint32_t producer;
  uint32_t seq;
  uint32_t magic;
};

/* Mark (producer, seq), add id + 1 to the checksum, output seq * 2 + 1. */
static int once_task(const void *in, void *out)
{
  struct once_in t;
  memcpy(&t, in, sizeof t);
  struct once_ctx *ctx = t.ctx;
  if (t.magic != MAGIC || t.producer >= ONCE_PRODUCERS ||
      t.seq >= ctx->per_producer) {
    atomic_fetch_add(&ctx->bad, 1);
    return 1;
  }
  size_t id = t.producer * ctx->per_producer + t.seq;
  atomic_fetch_add_explicit(&ctx->marks[id], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&ctx->checksum, id + 1, memory_order_relaxed);
  if (out != NULL) {
    uint64_t v = (uint64_t)t.seq * 2 + 1;
    memcpy(out, &v, sizeof v);
  }
  return 0;
}

struct once_producer {
  struct once_ctx *ctx;
  uint32_t index;
  bool window; /* keep ONCE_WINDOW futures outstanding */
};

/* Get a windowed future in order: it ran, returned 0, output seq*2+1. */
static void once_settle(crew_future *f, uint32_t seq)
{
  uint64_t v = 0;
  quiet_assert_int_eq(crew_future_get(f, &v, sizeof v), 0);
  quiet_assert_int_eq(crew_future_status(f), 0);
  quiet_assert_uint_eq(v, (uint64_t)seq * 2 + 1);
  crew_future_release(f);
}

static void *once_producer_main(void *arg)
{
  struct once_producer *p = arg;
  struct once_ctx *ctx = p->ctx;
  crew_future *window[ONCE_WINDOW];
  uint32_t n = (uint32_t)ctx->per_producer;
  for (uint32_t seq = 0; seq < n; seq++) {
    struct once_in in;
    memset(&in, 0, sizeof in);
    in.ctx = ctx;
    in.producer = p->index;
    in.seq = seq;
    in.magic = MAGIC;
    if (!p->window) {
      quiet_assert_int_eq(
          crew_submit(ctx->pool, once_task, &in, sizeof in, 0, NULL), 0);
      continue;
    }
    if (seq >= ONCE_WINDOW)
      once_settle(window[seq % ONCE_WINDOW], seq - ONCE_WINDOW);
    quiet_assert_int_eq(crew_submit(ctx->pool, once_task, &in, sizeof in,
                                    sizeof(uint64_t),
                                    &window[seq % ONCE_WINDOW]),
                        0);
  }
  if (p->window)
    for (uint32_t seq = n > ONCE_WINDOW ? n - ONCE_WINDOW : 0; seq < n; seq++)
      once_settle(window[seq % ONCE_WINDOW], seq);
  return NULL;
}

/* 10^6 tasks (scaled) from 4 producers through 4 workers and 64 slots. */
static void run_exactly_once(bool window, size_t tasks)
{
  struct once_ctx ctx = {.per_producer = tasks / ONCE_PRODUCERS};
  size_t total = ctx.per_producer * ONCE_PRODUCERS;
  ctx.marks = calloc(total, sizeof *ctx.marks);
  quiet_assert_ptr_nonnull(ctx.marks);
  atomic_init(&ctx.checksum, 0);
  atomic_init(&ctx.bad, 0);
  ctx.pool = make_pool(4, 64);

  struct once_producer prods[ONCE_PRODUCERS];
  pthread_t threads[ONCE_PRODUCERS];
  for (uint32_t i = 0; i < ONCE_PRODUCERS; i++) {
    prods[i] =
        (struct once_producer){.ctx = &ctx, .index = i, .window = window};
    start_thread(&threads[i], once_producer_main, &prods[i]);
  }
  for (size_t i = 0; i < ONCE_PRODUCERS; i++)
    join_thread(threads[i]);

  crew_stats st = drain_and_stats(ctx.pool);
  uint64_t bad = atomic_load(&ctx.bad), checksum = atomic_load(&ctx.checksum);
  quiet_assert_uint_eq(bad, 0);
  for (size_t id = 0; id < total; id++)
    quiet_assert_msg(atomic_load(&ctx.marks[id]) == 1,
                     "task %zu (producer %zu seq %zu) ran %u times", id,
                     id / ctx.per_producer, id % ctx.per_producer,
                     (unsigned)atomic_load(&ctx.marks[id]));
  quiet_assert_uint_eq(checksum, (uint64_t)total * (total + 1) / 2);
  quiet_assert_uint_eq(st.submitted, total);
  quiet_assert_uint_eq(st.completed, total);
  quiet_assert_uint_eq(st.failed, 0);
  quiet_assert_uint_eq(st.cancelled, 0);
  crew_pool_destroy(ctx.pool);
  free(ctx.marks);
}

START_TEST(exactly_once_fire_and_forget)
{
  run_exactly_once(false, size_of(ONCE_TASKS));
}
END_TEST

START_TEST(exactly_once_with_future_window)
{
  run_exactly_once(true, size_of(ONCE_WINDOW_TASKS));
}
END_TEST

/* ------------------------------------------- 2. mixed outcomes under load */

#define MIXED_PRODUCERS 2

struct mixed_ctx {
  crew_pool *pool;
  size_t per_producer;
  _Atomic uint32_t *ran;  /* body runs, per task */
  _Atomic uint32_t *done; /* on_done calls, per task (+1000 if resolved
                             state looked wrong in the callback) */
  int *cancel_rc;         /* written by the task's producer only */
};

struct mixed_in {
  struct mixed_ctx *ctx;
  uint32_t producer;
  uint32_t seq;
};

static int mixed_status(uint32_t seq)
{
  return seq % 7 == 0 ? 3 : 0;
}

static int mixed_task(const void *in, void *out)
{
  (void)out;
  struct mixed_in t;
  memcpy(&t, in, sizeof t);
  size_t id = t.producer * t.ctx->per_producer + t.seq;
  atomic_fetch_add(&t.ctx->ran[id], 1);
  return mixed_status(t.seq);
}

static void mixed_on_done(crew_future *f, void *arg)
{
  _Atomic uint32_t *done = arg;
  bool ok = crew_future_done(f) && crew_future_status(f) != CREW_EBUSY;
  atomic_fetch_add(done, ok ? 1u : 1000u);
}

struct mixed_producer {
  struct mixed_ctx *ctx;
  uint32_t index;
};

static void *mixed_producer_main(void *arg)
{
  struct mixed_producer *p = arg;
  struct mixed_ctx *ctx = p->ctx;
  size_t n = ctx->per_producer;
  crew_future **fs = calloc(n, sizeof *fs);
  quiet_assert_ptr_nonnull(fs);
  for (uint32_t seq = 0; seq < n; seq++) {
    size_t id = p->index * n + seq;
    struct mixed_in in = {.ctx = ctx, .producer = p->index, .seq = seq};
    quiet_assert_int_eq(
        crew_submit(ctx->pool, mixed_task, &in, sizeof in, 0, &fs[seq]), 0);
    quiet_assert_int_eq(
        crew_future_on_done(fs[seq], mixed_on_done, &ctx->done[id]), 0);
    ctx->cancel_rc[id] = 1; /* not tried */
    if (seq % 3 == 1) {
      int rc = crew_future_cancel(fs[seq]);
      quiet_assert_msg(rc == 0 || rc == CREW_EBUSY, "cancel gave %d", rc);
      ctx->cancel_rc[id] = rc;
    }
  }
  for (uint32_t seq = 0; seq < n; seq++) {
    size_t id = p->index * n + seq;
    int st = crew_future_wait(fs[seq]);
    uint32_t ran = atomic_load(&ctx->ran[id]);
    bool cancelled = ctx->cancel_rc[id] == 0;
    /* cancel() == 0 <=> CREW_ECANCELED <=> the body never ran */
    quiet_assert_int_eq(cancelled, st == CREW_ECANCELED);
    quiet_assert_uint_eq(ran, cancelled ? 0 : 1);
    if (!cancelled)
      quiet_assert_int_eq(st, mixed_status(seq));
    quiet_assert_int_eq(crew_future_status(fs[seq]), st);
    /* A second cancel finds it resolved. */
    quiet_assert_int_eq(crew_future_cancel(fs[seq]), CREW_EBUSY);
    crew_future_release(fs[seq]);
  }
  free(fs);
  return NULL;
}

START_TEST(mixed_outcomes_under_load)
{
  struct mixed_ctx ctx = {.per_producer = size_of(30000)};
  size_t total = ctx.per_producer * MIXED_PRODUCERS;
  ctx.ran = calloc(total, sizeof *ctx.ran);
  ctx.done = calloc(total, sizeof *ctx.done);
  ctx.cancel_rc = calloc(total, sizeof *ctx.cancel_rc);
  quiet_assert(ctx.ran != NULL && ctx.done != NULL && ctx.cancel_rc != NULL);
  ctx.pool = make_pool(2, 64);

  struct mixed_producer prods[MIXED_PRODUCERS];
  pthread_t threads[MIXED_PRODUCERS];
  for (uint32_t i = 0; i < MIXED_PRODUCERS; i++) {
    prods[i] = (struct mixed_producer){.ctx = &ctx, .index = i};
    start_thread(&threads[i], mixed_producer_main, &prods[i]);
  }
  for (size_t i = 0; i < MIXED_PRODUCERS; i++)
    join_thread(threads[i]);

  /* Joined workers and producers: every callback has returned. */
  crew_stats st = drain_and_stats(ctx.pool);
  uint64_t cancelled = 0, failing_ran = 0;
  for (size_t id = 0; id < total; id++) {
    quiet_assert_msg(atomic_load(&ctx.done[id]) == 1,
                     "future %zu: on_done count %u", id,
                     (unsigned)atomic_load(&ctx.done[id]));
    if (ctx.cancel_rc[id] == 0)
      cancelled++;
    else if (mixed_status((uint32_t)(id % ctx.per_producer)) != 0)
      failing_ran++;
  }
  quiet_assert_uint_eq(st.submitted, total);
  quiet_assert_uint_eq(st.completed + st.cancelled, st.submitted);
  quiet_assert_uint_eq(st.cancelled, cancelled);
  quiet_assert_uint_eq(st.failed, failing_ran);
  crew_pool_destroy(ctx.pool);
  free(ctx.ran);
  free(ctx.done);
  free(ctx.cancel_rc);
}
END_TEST

/*
 * 2b. Cancel racing observers: while one thread cancels a queued task, one
 * observer waits on the future and another polls crew_future_status(). A
 * cancelled future must look cancelled to everyone: no observer may see it
 * resolved with any status but CREW_ECANCELED, not even for an instant.
 */

#define OBS_BATCH 1000 /* cancelled slots a parked pool holds at once */

struct observer {
  crew_queue *inbox; /* of crew_future *, from the cancelling thread */
  signal_box *ready; /* posted when it has the future, about to look */
  signal_box *seen;  /* posted when it saw the future resolved */
  bool poll;         /* poll crew_future_status instead of waiting */
  uint64_t wrong;    /* futures seen resolved with a status != ECANCELED */
  int last_wrong;
};

static void *observer_main(void *arg)
{
  struct observer *o = arg;
  crew_future *f;
  while (crew_queue_pop(o->inbox, &f) == 0) {
    signal_post(o->ready);
    int st;
    if (o->poll) {
      while ((st = crew_future_status(f)) == CREW_EBUSY)
        ;
    } else {
      st = crew_future_wait(f);
    }
    if (st != CREW_ECANCELED || !crew_future_done(f)) {
      o->wrong++;
      o->last_wrong = st;
    }
    signal_post(o->seen);
  }
  return NULL;
}

static int gate_task(const void *in, void *out)
{
  (void)out;
  gate_pass(*(gate *const *)in);
  return 0;
}

static int never_task(const void *in, void *out)
{
  (void)in;
  (void)out;
  return 99; /* cancelled before it could run: never called */
}

START_TEST(cancel_races_observers)
{
  size_t rounds = size_of(20000);
  signal_box ready, seen;
  signal_init(&ready);
  signal_init(&seen);
  gate g;
  gate_init(&g);
  gate *gp = &g;
  struct observer obs[2];
  pthread_t threads[2];
  for (size_t i = 0; i < 2; i++) {
    obs[i] = (struct observer){.ready = &ready, .seen = &seen, .poll = i == 1};
    quiet_assert_int_eq(
        crew_queue_create(&obs[i].inbox, 1, sizeof(crew_future *), 0), 0);
    start_thread(&threads[i], observer_main, &obs[i]);
  }
  for (size_t done = 0; done < rounds;) {
    /* One worker, parked at the gate: every task behind it stays queued. */
    crew_pool *pool = make_pool(1, OBS_BATCH + 1);
    quiet_assert_int_eq(crew_submit(pool, gate_task, &gp, sizeof gp, 0, NULL),
                        0);
    for (size_t k = 0; k < OBS_BATCH && done < rounds; k++, done++) {
      crew_future *f = NULL;
      quiet_assert_int_eq(crew_submit(pool, never_task, NULL, 0, 0, &f), 0);
      for (size_t i = 0; i < 2; i++)
        quiet_assert_int_eq(crew_queue_push(obs[i].inbox, &f), 0);
      signal_wait(&ready, 2); /* both observers are about to look */
      quiet_assert_int_eq(crew_future_cancel(f), 0);
      signal_wait(&seen, 2);
      quiet_assert_int_eq(crew_future_status(f), CREW_ECANCELED);
      crew_future_release(f);
    }
    gate_open(&g, 1);
    crew_stats st = drain_and_stats(pool);
    crew_pool_destroy(pool);
    quiet_assert_uint_eq(st.completed, 1);
    quiet_assert_uint_eq(st.cancelled, st.submitted - 1);
  }
  for (size_t i = 0; i < 2; i++) {
    crew_queue_close(obs[i].inbox);
    join_thread(threads[i]);
    crew_queue_destroy(obs[i].inbox);
  }
  quiet_assert_msg(obs[0].wrong == 0 && obs[1].wrong == 0,
                   "of %zu cancelled futures, crew_future_wait saw %llu "
                   "(last: %d) and crew_future_status saw %llu (last: %d) "
                   "resolved with a status other than CREW_ECANCELED",
                   rounds, (unsigned long long)obs[0].wrong, obs[0].last_wrong,
                   (unsigned long long)obs[1].wrong, obs[1].last_wrong);
  gate_fini(&g);
  signal_fini(&ready);
  signal_fini(&seen);
}
END_TEST

/* -------------------------------------------- 3. shutdown racing submit */

#define RACERS          8
#define RACE_POST_AFTER 64 /* a racer posts after this many accepted */
#define RACE_WINDOW     16

struct race_ctx {
  crew_pool *pool;
  int how;
  signal_box going;
  _Atomic uint64_t ran_plain;
  _Atomic uint64_t ran_future;
};

struct race_in {
  struct race_ctx *ctx;
  bool future;
};

static int race_task(const void *in, void *out)
{
  (void)out;
  struct race_in t;
  memcpy(&t, in, sizeof t);
  atomic_fetch_add(t.future ? &t.ctx->ran_future : &t.ctx->ran_plain, 1);
  return 0;
}

struct racer {
  struct race_ctx *ctx;
  unsigned index;
  uint64_t plain_accepted, future_accepted, future_ran, future_cancelled;
};

static void race_settle(struct racer *r, crew_future *f)
{
  int st = crew_future_wait(f);
  if (st == 0)
    r->future_ran++;
  else if (st == CREW_ECANCELED && r->ctx->how == CREW_CANCEL)
    r->future_cancelled++;
  else
    ck_abort_msg("racer %u: future resolved with %d", r->index, st);
  crew_future_release(f);
}

static void *racer_main(void *arg)
{
  struct racer *r = arg;
  struct race_ctx *ctx = r->ctx;
  crew_future *window[RACE_WINDOW];
  size_t outstanding = 0, oldest = 0;
  for (uint64_t i = 0;; i++) {
    struct race_in in = {.ctx = ctx, .future = (i + r->index) % 2 == 0};
    crew_future *f = NULL;
    int rc = crew_submit(ctx->pool, race_task, &in, sizeof in, 0,
                         in.future ? &f : NULL);
    if (rc == CREW_ECLOSED) {
      quiet_assert_ptr_null(f); /* no task, no future */
      /* Closed stays closed. */
      quiet_assert_int_eq(crew_submit(ctx->pool, race_task, &in, sizeof in, 0,
                                      in.future ? &f : NULL),
                          CREW_ECLOSED);
      break;
    }
    quiet_assert_msg(rc == 0, "racer %u: submit gave %d", r->index, rc);
    if (in.future) {
      r->future_accepted++;
      if (outstanding == RACE_WINDOW) {
        race_settle(r, window[oldest]);
        oldest = (oldest + 1) % RACE_WINDOW;
        outstanding--;
      }
      window[(oldest + outstanding) % RACE_WINDOW] = f;
      outstanding++;
    } else {
      r->plain_accepted++;
    }
    if (i + 1 == RACE_POST_AFTER)
      signal_post(&ctx->going);
  }
  for (; outstanding > 0; outstanding--) {
    race_settle(r, window[oldest]);
    oldest = (oldest + 1) % RACE_WINDOW;
  }
  return NULL;
}

static void race_round(int how)
{
  struct race_ctx ctx = {.how = how};
  atomic_init(&ctx.ran_plain, 0);
  atomic_init(&ctx.ran_future, 0);
  signal_init(&ctx.going);
  ctx.pool = make_pool(2, 16);

  struct racer racers[RACERS];
  pthread_t threads[RACERS];
  for (unsigned i = 0; i < RACERS; i++) {
    racers[i] = (struct racer){.ctx = &ctx, .index = i};
    start_thread(&threads[i], racer_main, &racers[i]);
  }
  signal_wait(&ctx.going, RACERS); /* every racer is submitting */
  quiet_assert_int_eq(crew_pool_shutdown(ctx.pool, how), 0);
  for (size_t i = 0; i < RACERS; i++)
    join_thread(threads[i]);

  uint64_t plain = 0, future = 0, future_ran = 0, future_cancelled = 0;
  for (size_t i = 0; i < RACERS; i++) {
    plain += racers[i].plain_accepted;
    future += racers[i].future_accepted;
    future_ran += racers[i].future_ran;
    future_cancelled += racers[i].future_cancelled;
  }
  crew_stats st;
  quiet_assert_int_eq(crew_pool_stats(ctx.pool, &st), 0);
  uint64_t ran_plain = atomic_load(&ctx.ran_plain);
  uint64_t ran_future = atomic_load(&ctx.ran_future);
  quiet_assert_uint_eq(st.submitted, plain + future);
  quiet_assert_uint_eq(st.completed, ran_plain + ran_future);
  quiet_assert_uint_eq(st.failed, 0);
  quiet_assert_uint_eq(st.queued, 0);
  quiet_assert_uint_eq(st.running, 0);
  quiet_assert_uint_eq(future, future_ran + future_cancelled);
  quiet_assert_uint_eq(ran_future, future_ran);
  if (how == CREW_DRAIN) {
    quiet_assert_uint_eq(st.cancelled, 0);
    quiet_assert_uint_eq(plain, ran_plain);
    quiet_assert_uint_eq(future_cancelled, 0);
  } else {
    quiet_assert_uint_ge(st.cancelled, future_cancelled);
    quiet_assert_uint_eq(plain, ran_plain + (st.cancelled - future_cancelled));
  }
  quiet_assert_uint_eq(plain + future, ran_plain + ran_future + st.cancelled);
  crew_pool_destroy(ctx.pool);
  signal_fini(&ctx.going);
}

START_TEST(shutdown_drain_races_submit)
{
  for (size_t round = 0, n = scaled(20); round < n; round++)
    race_round(CREW_DRAIN);
}
END_TEST

START_TEST(shutdown_cancel_races_submit)
{
  for (size_t round = 0, n = scaled(20); round < n; round++)
    race_round(CREW_CANCEL);
}
END_TEST

/* ---------------------------------------- 4. submit, cancel, shutdown */

static int flag_task(const void *in, void *out)
{
  _Atomic int *flag = *(_Atomic int *const *)in;
  atomic_fetch_add(flag, 1);
  if (out != NULL)
    memcpy(out, &(uint32_t){7}, sizeof(uint32_t));
  return 0;
}

static void count_done(crew_future *f, void *arg)
{
  (void)f;
  atomic_fetch_add((_Atomic int *)arg, 1);
}

START_TEST(submit_cancel_shutdown_rounds)
{
  size_t rounds = size_of(2000);
  for (size_t round = 0; round < rounds; round++) {
    _Atomic int ran = 0, done = 0;
    _Atomic int *flag = &ran;
    crew_pool *pool = make_pool(1 + round % 2, 4);
    crew_future *f = NULL;
    quiet_assert_int_eq(
        crew_submit(pool, flag_task, &flag, sizeof flag, sizeof(uint32_t), &f),
        0);
    quiet_assert_int_eq(crew_future_on_done(f, count_done, &done), 0);
    int crc = crew_future_cancel(f);
    quiet_assert_msg(crc == 0 || crc == CREW_EBUSY, "round %zu: cancel gave %d",
                     round, crc);
    quiet_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
    crew_stats st;
    quiet_assert_int_eq(crew_pool_stats(pool, &st), 0);
    crew_pool_destroy(pool);

    quiet_assert(crew_future_done(f));
    int ran_count = atomic_load(&ran), done_count = atomic_load(&done);
    quiet_assert_int_eq(done_count, 1);
    uint32_t out = 0;
    if (crc == 0) {
      quiet_assert_int_eq(crew_future_get(f, &out, sizeof out), CREW_ECANCELED);
      quiet_assert_uint_eq(out, 0);
      quiet_assert_int_eq(ran_count, 0);
      quiet_assert_uint_eq(st.cancelled, 1);
      quiet_assert_uint_eq(st.completed, 0);
    } else {
      quiet_assert_int_eq(crew_future_get(f, &out, sizeof out), 0);
      quiet_assert_uint_eq(out, 7);
      quiet_assert_int_eq(ran_count, 1);
      quiet_assert_uint_eq(st.cancelled, 0);
      quiet_assert_uint_eq(st.completed, 1);
    }
    quiet_assert_uint_eq(st.submitted, 1);
    crew_future_release(f);
  }
}
END_TEST

/* ------------------------------------ 5. tasks submitting during a drain */

#define TREE_DEPTH 8 /* levels 0..8: node ids 1 .. 2^9 - 1, heap order */
#define TREE_NODES (1u << (TREE_DEPTH + 1))

struct tree_ctx {
  crew_pool *pool;
  signal_box midway;
  uint32_t trigger; /* the task that makes this many runs posts `midway` */
  _Atomic uint32_t total_ran;
  _Atomic uint32_t ran[TREE_NODES];
  _Atomic uint32_t accepted[TREE_NODES]; /* submits of the node that gave 0 */
  _Atomic uint32_t closed[TREE_NODES];   /* ... that gave CREW_ECLOSED */
  _Atomic uint32_t bad;                  /* submits that gave anything else */
};

struct node_in {
  struct tree_ctx *ctx;
  uint32_t id;
  uint32_t depth;
};

static int node_task(const void *in, void *out)
{
  (void)out;
  struct node_in t;
  memcpy(&t, in, sizeof t);
  struct tree_ctx *ctx = t.ctx;
  atomic_fetch_add(&ctx->ran[t.id], 1);
  if (atomic_fetch_add(&ctx->total_ran, 1) + 1 == ctx->trigger)
    signal_post(&ctx->midway);
  if (t.depth == TREE_DEPTH)
    return 0;
  for (uint32_t c = 0; c < 2; c++) {
    struct node_in child = {
        .ctx = ctx, .id = t.id * 2 + c, .depth = t.depth + 1};
    int rc = crew_submit(ctx->pool, node_task, &child, sizeof child, 0, NULL);
    if (rc == 0)
      atomic_fetch_add(&ctx->accepted[child.id], 1);
    else if (rc == CREW_ECLOSED)
      atomic_fetch_add(&ctx->closed[child.id], 1);
    else
      atomic_fetch_add(&ctx->bad, 1);
  }
  return 0;
}

START_TEST(fan_out_during_drain)
{
  size_t rounds = size_of(300);
  struct tree_ctx *ctx = malloc(sizeof *ctx);
  quiet_assert_ptr_nonnull(ctx);
  for (size_t round = 0; round < rounds; round++) {
    memset(ctx, 0, sizeof *ctx);
    signal_init(&ctx->midway);
    ctx->trigger = 1 + (uint32_t)(round * 37 % (TREE_NODES - 1));
    ctx->pool = make_pool(2 + round % 3, 8);

    struct node_in root = {.ctx = ctx, .id = 1, .depth = 0};
    quiet_assert_int_eq(
        crew_submit(ctx->pool, node_task, &root, sizeof root, 0, NULL), 0);
    atomic_fetch_add(&ctx->accepted[1], 1);
    signal_wait(&ctx->midway, 1);
    crew_stats st = drain_and_stats(ctx->pool);

    uint32_t bad = atomic_load(&ctx->bad);
    quiet_assert_uint_eq(bad, 0);
    uint64_t accepted = 0, ran = 0;
    for (uint32_t id = 1; id < TREE_NODES; id++) {
      uint32_t a = atomic_load(&ctx->accepted[id]);
      uint32_t c = atomic_load(&ctx->closed[id]);
      uint32_t r = atomic_load(&ctx->ran[id]);
      quiet_assert_msg(a + c <= 1, "round %zu node %u submitted %u times",
                       round, id, a + c);
      quiet_assert_msg(r == a, "round %zu node %u: accepted %u, ran %u", round,
                       id, a, r);
      /* A node that ran submitted both children; one that did not, none. */
      for (uint32_t k = id * 2; id < TREE_NODES / 2 && k <= id * 2 + 1; k++) {
        uint32_t sub =
            atomic_load(&ctx->accepted[k]) + atomic_load(&ctx->closed[k]);
        quiet_assert_msg(sub == r,
                         "round %zu node %u ran %u times, child %u "
                         "submitted %u times",
                         round, id, r, k, sub);
      }
      accepted += a;
      ran += r;
    }
    quiet_assert_uint_ge(ran, ctx->trigger);
    quiet_assert_uint_eq(st.submitted, accepted);
    quiet_assert_uint_eq(st.completed, ran);
    quiet_assert_uint_eq(st.cancelled, 0);
    quiet_assert_uint_eq(st.failed, 0);
    crew_pool_destroy(ctx->pool);
    signal_fini(&ctx->midway);
  }
  free(ctx);
}
END_TEST

/* -------------------------------------------------- 6. queue torture */

#define QT_PRODUCERS 4
#define QT_CONSUMERS 4
#define QT_BATCH     8
#define QT_POP_MAX   16

struct qt_item {
  uint32_t producer;
  uint32_t seq;
  uint32_t magic;
};

struct qt_ctx {
  crew_queue *q;
  size_t per_producer;
  _Atomic uint32_t *marks;
  _Atomic uint64_t checksum;
};

struct qt_thread {
  struct qt_ctx *ctx;
  uint32_t index;
  int final_rc; /* consumers: what ended the loop */
  uint64_t taken;
};

static struct qt_item qt_make(uint32_t producer, uint32_t seq)
{
  return (struct qt_item){.producer = producer, .seq = seq, .magic = MAGIC};
}

static void *qt_producer_main(void *arg)
{
  struct qt_thread *t = arg;
  struct qt_ctx *ctx = t->ctx;
  uint32_t n = (uint32_t)ctx->per_producer;
  uint64_t rng = 0x9e3779b97f4a7c15ull * (t->index + 1);
  uint32_t seq = 0;
  while (seq < n) {
    struct qt_item batch[QT_BATCH];
    switch (next_rand(&rng) % 4) {
    case 0: {
      struct qt_item it = qt_make(t->index, seq);
      quiet_assert_int_eq(crew_queue_push(ctx->q, &it), 0);
      seq++;
      break;
    }
    case 1: {
      struct qt_item it = qt_make(t->index, seq);
      int rc = crew_queue_push_timed(ctx->q, &it, 0);
      quiet_assert_msg(rc == 0 || rc == CREW_ETIMEDOUT, "push_timed gave %d",
                       rc);
      if (rc == 0)
        seq++;
      break;
    }
    default: {
      uint32_t k = 1 + (uint32_t)(next_rand(&rng) % QT_BATCH);
      if (k > n - seq)
        k = n - seq;
      for (uint32_t i = 0; i < k; i++)
        batch[i] = qt_make(t->index, seq + i);
      bool forever = next_rand(&rng) % 2 == 0;
      size_t pushed = 99;
      int rc = crew_queue_push_many(ctx->q, batch, k, &pushed,
                                    forever ? CREW_FOREVER : 0);
      if (forever)
        quiet_assert_int_eq(rc, 0);
      else
        quiet_assert_msg(rc == 0 || rc == CREW_ETIMEDOUT, "push_many gave %d",
                         rc);
      quiet_assert_uint_eq(pushed == k, rc == 0);
      quiet_assert_uint_le(pushed, k);
      seq += (uint32_t)pushed;
      break;
    }
    }
  }
  return NULL;
}

/* Take one item: exactly once, magic intact, per-producer order kept. */
static void qt_take(struct qt_thread *t, const struct qt_item *it,
                    int64_t *last)
{
  struct qt_ctx *ctx = t->ctx;
  quiet_assert_uint_eq(it->magic, MAGIC);
  quiet_assert_uint_lt(it->producer, QT_PRODUCERS);
  quiet_assert_uint_lt(it->seq, ctx->per_producer);
  quiet_assert_msg((int64_t)it->seq > last[it->producer],
                   "consumer %u: producer %u seq %u after %lld", t->index,
                   it->producer, it->seq, (long long)last[it->producer]);
  last[it->producer] = it->seq;
  size_t id = it->producer * ctx->per_producer + it->seq;
  atomic_fetch_add_explicit(&ctx->marks[id], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&ctx->checksum, id + 1, memory_order_relaxed);
  t->taken++;
}

static void *qt_consumer_main(void *arg)
{
  struct qt_thread *t = arg;
  struct qt_ctx *ctx = t->ctx;
  uint64_t rng = 0xd1b54a32d192ed03ull * (t->index + 1);
  int64_t last[QT_PRODUCERS];
  for (size_t i = 0; i < QT_PRODUCERS; i++)
    last[i] = -1;
  for (;;) {
    struct qt_item items[QT_POP_MAX];
    int rc;
    switch (next_rand(&rng) % 4) {
    case 0:
      rc = crew_queue_pop(ctx->q, &items[0]);
      if (rc == 0)
        qt_take(t, &items[0], last);
      break;
    case 1:
      rc = crew_queue_pop_timed(ctx->q, &items[0], 0);
      if (rc == 0)
        qt_take(t, &items[0], last);
      else if (rc == CREW_ETIMEDOUT)
        continue;
      break;
    default: {
      size_t max = 1 + next_rand(&rng) % QT_POP_MAX, popped = 99;
      bool forever = next_rand(&rng) % 2 == 0;
      rc = crew_queue_pop_many(ctx->q, items, max, &popped,
                               forever ? CREW_FOREVER : 0);
      if (rc == 0) {
        quiet_assert_uint_ge(popped, 1);
        quiet_assert_uint_le(popped, max);
      } else {
        quiet_assert_uint_eq(popped, 0);
      }
      for (size_t i = 0; i < popped; i++)
        qt_take(t, &items[i], last);
      if (rc == CREW_ETIMEDOUT && !forever)
        continue;
      break;
    }
    }
    if (rc != 0) {
      t->final_rc = rc;
      return NULL;
    }
  }
}

START_TEST(queue_torture)
{
  struct qt_ctx ctx = {.per_producer = size_of(QT_ITEMS) / QT_PRODUCERS};
  size_t total = ctx.per_producer * QT_PRODUCERS;
  ctx.marks = calloc(total, sizeof *ctx.marks);
  quiet_assert_ptr_nonnull(ctx.marks);
  atomic_init(&ctx.checksum, 0);
  quiet_assert_int_eq(crew_queue_create(&ctx.q, 64, sizeof(struct qt_item), 0),
                      0);

  struct qt_thread prods[QT_PRODUCERS], cons[QT_CONSUMERS];
  pthread_t pt[QT_PRODUCERS], ct[QT_CONSUMERS];
  for (uint32_t i = 0; i < QT_CONSUMERS; i++) {
    cons[i] = (struct qt_thread){.ctx = &ctx, .index = i, .final_rc = 1};
    start_thread(&ct[i], qt_consumer_main, &cons[i]);
  }
  for (uint32_t i = 0; i < QT_PRODUCERS; i++) {
    prods[i] = (struct qt_thread){.ctx = &ctx, .index = i};
    start_thread(&pt[i], qt_producer_main, &prods[i]);
  }
  for (size_t i = 0; i < QT_PRODUCERS; i++)
    join_thread(pt[i]);
  crew_queue_close(ctx.q);
  struct qt_item late = qt_make(0, 0);
  quiet_assert_int_eq(crew_queue_push(ctx.q, &late), CREW_ECLOSED);
  uint64_t taken = 0;
  for (size_t i = 0; i < QT_CONSUMERS; i++) {
    join_thread(ct[i]);
    quiet_assert_int_eq(cons[i].final_rc, CREW_ECLOSED);
    taken += cons[i].taken;
  }
  quiet_assert_uint_eq(taken, total);
  quiet_assert_uint_eq(crew_queue_size(ctx.q), 0);
  for (size_t id = 0; id < total; id++)
    quiet_assert_msg(atomic_load(&ctx.marks[id]) == 1,
                     "item %zu taken %u times", id,
                     (unsigned)atomic_load(&ctx.marks[id]));
  uint64_t checksum = atomic_load(&ctx.checksum);
  quiet_assert_uint_eq(checksum, (uint64_t)total * (total + 1) / 2);
  crew_queue_destroy(ctx.q);
  free(ctx.marks);
}
END_TEST

/* -------------------------------------------------------- 7. many pools */

#define NPOOLS     8
#define POOL_USERS 8
#define KEEP_EVERY 8 /* of every KEEP_EVERY submits: one got, one kept */

/*
 * A pool with a users count: a thread enters before a submit and leaves
 * after; the destroyer marks the pool dead and waits for its users to leave,
 * so no thread calls a pool after its destroy began.
 */
struct guarded_pool {
  crew_pool *pool;
  pthread_mutex_t lock;
  pthread_cond_t idle;
  unsigned users; /* guarded by lock */
  bool dead;      /* guarded by lock */
  _Atomic uint64_t accepted;
  _Atomic uint64_t ran;
};

struct many_ctx {
  struct guarded_pool pools[NPOOLS];
  _Atomic unsigned epoch;
  _Atomic unsigned destroyed;
  signal_box progress;
  size_t per_epoch;
};

struct many_in {
  struct guarded_pool *gp;
  uint64_t value;
};

static int many_task(const void *in, void *out)
{
  struct many_in t;
  memcpy(&t, in, sizeof t);
  atomic_fetch_add(&t.gp->ran, 1);
  if (out != NULL) {
    uint64_t v = t.value * 3 + 1;
    memcpy(out, &v, sizeof v);
  }
  return 0;
}

static bool gp_enter(struct guarded_pool *gp)
{
  quiet_assert_int_eq(pthread_mutex_lock(&gp->lock), 0);
  bool ok = !gp->dead;
  if (ok)
    gp->users++;
  quiet_assert_int_eq(pthread_mutex_unlock(&gp->lock), 0);
  return ok;
}

static void gp_leave(struct guarded_pool *gp)
{
  quiet_assert_int_eq(pthread_mutex_lock(&gp->lock), 0);
  if (--gp->users == 0 && gp->dead)
    quiet_assert_int_eq(pthread_cond_broadcast(&gp->idle), 0);
  quiet_assert_int_eq(pthread_mutex_unlock(&gp->lock), 0);
}

/* Mark dead and wait until no thread is inside a call on the pool. */
static void gp_retire(struct guarded_pool *gp)
{
  quiet_assert_int_eq(pthread_mutex_lock(&gp->lock), 0);
  gp->dead = true;
  while (gp->users > 0)
    quiet_assert_int_eq(pthread_cond_wait(&gp->idle, &gp->lock), 0);
  quiet_assert_int_eq(pthread_mutex_unlock(&gp->lock), 0);
}

struct pool_user {
  struct many_ctx *ctx;
  unsigned index;
};

static void *pool_user_main(void *arg)
{
  struct pool_user *u = arg;
  struct many_ctx *ctx = u->ctx;
  uint64_t rng = 0xa0761d6478bd642full * (u->index + 1);
  crew_future *kept[NPOOLS] = {NULL};
  uint64_t kept_value[NPOOLS] = {0};
  unsigned seen_epoch = 0;
  size_t in_epoch = 0;
  for (uint64_t i = 0; atomic_load(&ctx->destroyed) < NPOOLS;) {
    unsigned e = atomic_load(&ctx->epoch);
    if (e != seen_epoch) {
      seen_epoch = e;
      in_epoch = 0;
    }
    size_t p = next_rand(&rng) % NPOOLS;
    struct guarded_pool *gp = &ctx->pools[p];
    if (!gp_enter(gp))
      continue;
    struct many_in in = {.gp = gp, .value = (uint64_t)u->index << 32 | i};
    crew_future *f = NULL;
    bool with_future = i % KEEP_EVERY == 0 || i % KEEP_EVERY == 4;
    quiet_assert_int_eq(crew_submit(gp->pool, many_task, &in, sizeof in,
                                    with_future ? sizeof(uint64_t) : 0,
                                    with_future ? &f : NULL),
                        0);
    atomic_fetch_add(&gp->accepted, 1);
    gp_leave(gp);
    if (i % KEEP_EVERY == 0) {
      uint64_t v = 0;
      quiet_assert_int_eq(crew_future_get(f, &v, sizeof v), 0);
      quiet_assert_uint_eq(v, in.value * 3 + 1);
      crew_future_release(f);
    } else if (i % KEEP_EVERY == 4) {
      crew_future_release(kept[p]); /* unresolved or not: allowed */
      kept[p] = f;
      kept_value[p] = in.value;
    }
    i++;
    if (++in_epoch == ctx->per_epoch)
      signal_post(&ctx->progress);
  }
  /* Every pool is destroyed: the kept futures resolved and stay valid. */
  for (size_t p = 0; p < NPOOLS; p++) {
    if (kept[p] == NULL)
      continue;
    quiet_assert(crew_future_done(kept[p]));
    uint64_t v = 0;
    quiet_assert_int_eq(crew_future_get_timed(kept[p], &v, sizeof v, 0), 0);
    quiet_assert_uint_eq(v, kept_value[p] * 3 + 1);
    crew_future_release(kept[p]);
  }
  return NULL;
}

START_TEST(many_pools_destroyed_while_others_work)
{
  struct many_ctx *ctx = calloc(1, sizeof *ctx);
  quiet_assert_ptr_nonnull(ctx);
  ctx->per_epoch = size_of(2000);
  atomic_init(&ctx->epoch, 0);
  atomic_init(&ctx->destroyed, 0);
  signal_init(&ctx->progress);
  for (size_t p = 0; p < NPOOLS; p++) {
    struct guarded_pool *gp = &ctx->pools[p];
    gp->pool = make_pool(2, 32);
    quiet_assert_int_eq(pthread_mutex_init(&gp->lock, NULL), 0);
    quiet_assert_int_eq(pthread_cond_init(&gp->idle, NULL), 0);
    atomic_init(&gp->accepted, 0);
    atomic_init(&gp->ran, 0);
  }
  /* A random destroy order; the seed is in the failure messages. */
  uint64_t seed = now_ns() | 1, rng = seed;
  size_t order[NPOOLS];
  for (size_t p = 0; p < NPOOLS; p++)
    order[p] = p;
  for (size_t p = NPOOLS - 1; p > 0; p--) {
    size_t j = next_rand(&rng) % (p + 1), tmp = order[p];
    order[p] = order[j];
    order[j] = tmp;
  }

  struct pool_user users[POOL_USERS];
  pthread_t threads[POOL_USERS];
  for (unsigned i = 0; i < POOL_USERS; i++) {
    users[i] = (struct pool_user){.ctx = ctx, .index = i};
    start_thread(&threads[i], pool_user_main, &users[i]);
  }
  for (size_t k = 0; k < NPOOLS; k++) {
    /* Every user did per_epoch submits since the last destroy. */
    signal_wait(&ctx->progress, POOL_USERS);
    struct guarded_pool *gp = &ctx->pools[order[k]];
    gp_retire(gp);
    crew_stats st = drain_and_stats(gp->pool);
    uint64_t accepted = atomic_load(&gp->accepted);
    quiet_assert_msg(
        st.submitted == accepted && st.completed == accepted,
        "seed %llu pool %zu: accepted %llu, submitted %llu, "
        "completed %llu",
        (unsigned long long)seed, order[k], (unsigned long long)accepted,
        (unsigned long long)st.submitted, (unsigned long long)st.completed);
    quiet_assert_uint_eq(st.failed, 0);
    quiet_assert_uint_eq(st.cancelled, 0);
    crew_pool_destroy(gp->pool);
    uint64_t ran = atomic_load(&gp->ran);
    quiet_assert_uint_eq(ran, accepted);
    atomic_fetch_add(&ctx->epoch, 1);
    atomic_fetch_add(&ctx->destroyed, 1);
  }
  for (size_t i = 0; i < POOL_USERS; i++)
    join_thread(threads[i]);

  uint64_t total = 0;
  for (size_t p = 0; p < NPOOLS; p++) {
    total += atomic_load(&ctx->pools[p].accepted);
    quiet_assert_int_eq(pthread_mutex_destroy(&ctx->pools[p].lock), 0);
    quiet_assert_int_eq(pthread_cond_destroy(&ctx->pools[p].idle), 0);
  }
  quiet_assert_uint_ge(total, (uint64_t)NPOOLS * POOL_USERS * ctx->per_epoch);
  signal_fini(&ctx->progress);
  free(ctx);
}
END_TEST

static TCase *add_tcase(Suite *s, const char *name)
{
  TCase *tc = tcase_create(name);
  tcase_set_timeout(tc, watchdog());
  suite_add_tcase(s, tc);
  return tc;
}

int main(void)
{
  Suite *s = suite_create("stress");
  TCase *tc = add_tcase(s, "exactly_once");
  tcase_add_test(tc, exactly_once_fire_and_forget);
  tc = add_tcase(s, "exactly_once_window");
  tcase_add_test(tc, exactly_once_with_future_window);
  tc = add_tcase(s, "mixed_outcomes");
  tcase_add_test(tc, mixed_outcomes_under_load);
  tc = add_tcase(s, "cancel_observers");
  tcase_add_test(tc, cancel_races_observers);
  tc = add_tcase(s, "shutdown_race");
  tcase_add_test(tc, shutdown_drain_races_submit);
  tcase_add_test(tc, shutdown_cancel_races_submit);
  tc = add_tcase(s, "cancel_shutdown");
  tcase_add_test(tc, submit_cancel_shutdown_rounds);
  tc = add_tcase(s, "fan_out_drain");
  tcase_add_test(tc, fan_out_during_drain);
  tc = add_tcase(s, "queue_torture");
  tcase_add_test(tc, queue_torture);
  tc = add_tcase(s, "many_pools");
  tcase_add_test(tc, many_pools_destroyed_while_others_work);
  return run_suite(s);
}
