/*
 * check_perturb.c - schedule perturbation under crew's test hooks
 * (crew/testhook.h; the hook is inject.h's): a seeded hook (env
 * CREW_INJECT_SEED; the seed is printed in every failure message) that at
 * the LOCK, UNLOCK, WAIT, WAKE, ENQUEUE, DEQUEUE and PUBLISH points randomly
 * yields or sleeps 1-50 us, with one random-number state per thread
 * (thread-local), under the scenarios of catalog 1/3, 7, 13/15 and 27.
 * CREW_STRESS_SCALE multiplies the sizes. Built only with
 * --enable-test-hooks.
 */
#include "config.h"

#include "harness.h"
#include "inject.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* ====================================== part 2: schedule perturbation */

#define SEEDED_MSG(fmt, ...)                                                   \
  fmt " (CREW_INJECT_SEED=%" PRIu64 ")", __VA_ARGS__, seed_of()
#define seed_check(expr)                                                       \
  quiet_assert_msg((expr), SEEDED_MSG("'%s' failed", #expr))
#define seed_check_int(x, y)                                                   \
  do {                                                                         \
    long long x_ = (x), y_ = (y);                                              \
    quiet_assert_msg(x_ == y_,                                                 \
                     SEEDED_MSG("%s == %lld, expected %lld", #x, x_, y_));     \
  } while (0)

static void perturb_on(unsigned yields, unsigned sleeps)
{
  atomic_store(&inj->yield_permille, yields);
  atomic_store(&inj->sleep_permille, sleeps);
  atomic_store(&inj->perturb_mask,
               1u << CREW_TP_LOCK | 1u << CREW_TP_UNLOCK | 1u << CREW_TP_WAIT |
                   1u << CREW_TP_WAKE | 1u << CREW_TP_ENQUEUE |
                   1u << CREW_TP_DEQUEUE | 1u << CREW_TP_PUBLISH);
  arm();
}

static void perturb_off(void)
{
  disarm();
  atomic_store(&inj->perturb_mask, 0);
}

/* At a test's end: the hook must have acted (a test whose hook never ran
 * would pass for nothing). */
static void check_perturbed(void)
{
  ck_assert_msg(atomic_load(&inj->perturbed) > 0,
                "the schedule was never perturbed: hooks not called?");
}

/* ------------------------------------------- catalog 1/3: MPMC, exactly once
 */

enum { PRODUCERS = 3, CONSUMERS = 3 };

struct item {
  uint32_t producer;
  uint32_t seq;
};

struct mpmc {
  crew_queue *q;
  size_t per_producer;
  _Atomic uint8_t *seen; /* [producer * per_producer + seq] */
  _Atomic size_t consumed;
};

struct producer_arg {
  struct mpmc *m;
  uint32_t id;
};

static void *producer_main(void *arg)
{
  struct producer_arg *a = arg;
  struct mpmc *m = a->m;
  for (uint32_t seq = 0; seq < m->per_producer; seq++) {
    struct item it = {a->id, seq};
    int rc;
    if (seq % 3 == 0) { /* mixed: blocking, timed, and try-again */
      rc = crew_queue_push(m->q, &it);
    } else if (seq % 3 == 1) {
      while ((rc = crew_queue_push_timed(m->q, &it, 1 * MS)) == CREW_ETIMEDOUT)
        ;
    } else {
      while ((rc = crew_queue_push_timed(m->q, &it, 0)) == CREW_ETIMEDOUT)
        sched_yield();
    }
    seed_check_int(rc, 0);
  }
  return NULL;
}

static void *consumer_main(void *arg)
{
  struct mpmc *m = arg;
  uint32_t last[PRODUCERS];
  bool any[PRODUCERS] = {false};
  for (;;) {
    struct item got[2];
    size_t n = 0;
    int rc;
    if (atomic_load(&m->consumed) % 2 == 0) {
      rc = crew_queue_pop(m->q, &got[0]);
      n = rc == 0;
    } else {
      rc = crew_queue_pop_many(m->q, got, 2, &n, CREW_FOREVER);
    }
    if (rc == CREW_ECLOSED)
      break;
    seed_check_int(rc, 0);
    for (size_t i = 0; i < n; i++) {
      seed_check(got[i].producer < PRODUCERS);
      seed_check(got[i].seq < m->per_producer);
      uint32_t p = got[i].producer;
      /* One producer's items leave in the order they went in. */
      seed_check(!any[p] || got[i].seq > last[p]);
      any[p] = true;
      last[p] = got[i].seq;
      atomic_fetch_add(&m->seen[p * m->per_producer + got[i].seq], 1);
      atomic_fetch_add(&m->consumed, 1);
    }
  }
  return NULL;
}

/*
 * Catalog 1 and 3 (MPMC exactly once, signal-vs-broadcast hunt): capacity 1
 * and 2, 3 producers x 3 consumers, per-producer sequence numbers, mixed
 * blocking/timed/try calls, every lock, wait, wake, enqueue and dequeue
 * perturbed. Invariants: INV-1/2 (every item consumed exactly once, per
 * producer in order), INV-3 (no hang: the harness timeout).
 */
START_TEST(mpmc_exactly_once_perturbed)
{
  size_t capacity = (size_t)_i + 1;
  struct mpmc m = {.per_producer = scaled(1000)};
  m.seen = calloc(PRODUCERS * m.per_producer, sizeof *m.seen);
  ck_assert_ptr_nonnull(m.seen);
  ck_assert_int_eq(crew_queue_create(&m.q, capacity, sizeof(struct item), 0),
                   0);
  perturb_on(150, 30);
  pthread_t prod[PRODUCERS], cons[CONSUMERS];
  struct producer_arg pa[PRODUCERS];
  for (int i = 0; i < CONSUMERS; i++)
    ck_assert_int_eq(pthread_create(&cons[i], NULL, consumer_main, &m), 0);
  for (uint32_t i = 0; i < PRODUCERS; i++) {
    pa[i] = (struct producer_arg){&m, i};
    ck_assert_int_eq(pthread_create(&prod[i], NULL, producer_main, &pa[i]), 0);
  }
  for (int i = 0; i < PRODUCERS; i++)
    pthread_join(prod[i], NULL);
  crew_queue_close(m.q);
  for (int i = 0; i < CONSUMERS; i++)
    pthread_join(cons[i], NULL);
  perturb_off();
  seed_check_int(atomic_load(&m.consumed), PRODUCERS * m.per_producer);
  for (size_t i = 0; i < PRODUCERS * m.per_producer; i++)
    seed_check_int(atomic_load(&m.seen[i]), 1);
  crew_queue_destroy(m.q);
  free(m.seen);
  check_perturbed();
}
END_TEST

/* ------------------------------- catalog 7: shutdown racing parked workers */

static int mark_worker(void *arg)
{
  (void)arg;
  tl_in_worker = 1;
  return 0;
}

struct releaser {
  uint64_t delay_us;
};

static void *release_main(void *arg)
{
  struct releaser *r = arg;
  nap_us(r->delay_us);
  atomic_store(&inj->go, 1);
  return NULL;
}

/*
 * Catalog 7 (predicate changes only under the mutex): the first worker to
 * find the queue empty and open is parked by the hook at CREW_TP_WAIT,
 * after its predicate check and before it sleeps, holding the queue's lock
 * (the other workers queue up on that lock, or spin, or sleep). Then
 * shutdown (DRAIN or CANCEL) or destroy is called while another thread lets
 * the parked worker go after a random 0-100 us (it then waits a random
 * 0-50 us more). Pools alternate the default idle spin and none, so the
 * race also meets the spin's unlocked look at the queue. Invariants: the
 * shutdown returns 0, every worker exits (stats.workers 0, the harness's
 * thread count), no hang (INV-4).
 */
START_TEST(shutdown_races_parked_worker)
{
  size_t rounds = scaled(90);
  for (size_t round = 0; round < rounds; round++) {
    size_t workers = 1 + round % 3;
    crew_config cfg = pool_config(CREW_THREADS, workers);
    cfg.queue_capacity = 4;
    cfg.init = mark_worker;
    cfg.idle_spin_ns = round % 2 == 0 ? 0 : CREW_IDLE_SPIN_OFF;
    atomic_store(&inj->parked, 0);
    atomic_store(&inj->go, 0);
    atomic_store(&inj->park, 1);
    perturb_on(100, 20);
    crew_pool *pool;
    ck_assert_int_eq(crew_pool_create(&pool, &cfg), 0);
    uint64_t until = now_ns() + 10000 * MS;
    while (atomic_load(&inj->parked) < 1) {
      seed_check(now_ns() < until);
      sched_yield();
    }
    struct releaser r = {.delay_us = rng_next() % 100};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, release_main, &r), 0);
    int how = (int)(round / 2 % 3);
    if (how < 2) {
      seed_check_int(
          crew_pool_shutdown(pool, how == 0 ? CREW_DRAIN : CREW_CANCEL), 0);
      crew_stats st;
      ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
      seed_check_int(st.workers, 0);
    }
    crew_pool_destroy(pool);
    pthread_join(t, NULL);
    perturb_off();
    atomic_store(&inj->park, 0);
  }
  check_perturbed();
}
END_TEST

/* ------------------------------------- catalog 15: submit, cancel, shutdown */

static int task_count(const void *in, void *out)
{
  _Atomic int *ran = *(_Atomic int *const *)in;
  atomic_fetch_add(ran, 1);
  if (out != NULL)
    memset(out, 1, sizeof(int));
  return 0;
}

/*
 * Catalog 15: submit(x); cancel(x); shutdown(DRAIN), repeated, every
 * protocol step perturbed. Invariants: shutdown returns every time (INV-3);
 * exactly one outcome (INV-1): cancel 0 -> CREW_ECANCELED and the body never
 * ran; cancel CREW_EBUSY -> the body ran once and the status is 0; the
 * counters add up.
 */
START_TEST(submit_cancel_shutdown_perturbed)
{
  size_t rounds = scaled(300);
  perturb_on(150, 30);
  for (size_t round = 0; round < rounds; round++) {
    crew_pool *pool = make_pool(1 + round % 2, 4);
    _Atomic int ran = 0;
    _Atomic int *rp = &ran;
    crew_future *f;
    seed_check_int(
        crew_submit(pool, task_count, &rp, sizeof rp, sizeof(int), &f), 0);
    int rc = crew_future_cancel(f);
    seed_check(rc == 0 || rc == CREW_EBUSY);
    seed_check_int(crew_pool_shutdown(pool, CREW_DRAIN), 0);
    seed_check(crew_future_done(f));
    crew_stats st;
    ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
    seed_check_int(st.submitted, 1);
    if (rc == 0) {
      seed_check_int(crew_future_status(f), CREW_ECANCELED);
      seed_check_int(atomic_load(&ran), 0);
      seed_check_int(st.cancelled, 1);
      seed_check_int(st.completed, 0);
    } else {
      seed_check_int(crew_future_status(f), 0);
      seed_check_int(atomic_load(&ran), 1);
      seed_check_int(st.cancelled, 0);
      seed_check_int(st.completed, 1);
    }
    crew_future_release(f);
    crew_pool_destroy(pool);
  }
  perturb_off();
  check_perturbed();
}
END_TEST

/* ------------------------------------------ catalog 13: shutdown vs submit */

enum { SUBMITTERS = 3, KEEP = 128 };

struct racer {
  crew_pool *pool;
  _Atomic int *ran;
  _Atomic size_t *accepted;
  int how;
  size_t ok, cancelled; /* this thread's futures, by outcome */
};

/* Wait for and check a batch of futures; count outcomes. */
static void settle_batch(struct racer *r, crew_future **fs, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    int st = crew_future_wait(fs[i]);
    if (st == 0)
      r->ok++;
    else if (st == CREW_ECANCELED && r->how == CREW_CANCEL)
      r->cancelled++;
    else
      quiet_assert_msg(0, SEEDED_MSG("a future resolved with %d", st));
    crew_future_release(fs[i]);
  }
}

static void *submitter_main(void *arg)
{
  struct racer *r = arg;
  crew_future *fs[KEEP];
  size_t n = 0;
  for (;;) {
    int rc = crew_submit(r->pool, task_count, &r->ran, sizeof r->ran,
                         sizeof(int), &fs[n]);
    if (rc == CREW_ECLOSED)
      break;
    seed_check_int(rc, 0);
    atomic_fetch_add(r->accepted, 1);
    if (++n == KEEP) {
      settle_batch(r, fs, n);
      n = 0;
    }
  }
  settle_batch(r, fs, n);
  return NULL;
}

/*
 * Catalog 13: 3 threads submit in a loop while the test shuts the pool down
 * (DRAIN or CANCEL) once some tasks went in, every step perturbed.
 * Invariants: each submit succeeds and its future resolves, or fails with
 * CREW_ECLOSED (crew's word for the catalog's ESHUTDOWN) and makes nothing;
 * with DRAIN every accepted task ran; with CANCEL each ran or was
 * cancelled, never both; ran == futures that completed; the counters add up.
 */
START_TEST(shutdown_races_submit_perturbed)
{
  size_t rounds = scaled(20);
  perturb_on(150, 30);
  for (size_t round = 0; round < rounds; round++) {
    crew_pool *pool = make_pool(2, 8);
    _Atomic int ran = 0;
    _Atomic size_t accepted = 0;
    struct racer r[SUBMITTERS];
    pthread_t t[SUBMITTERS];
    int how = round % 2 == 0 ? CREW_DRAIN : CREW_CANCEL;
    for (int i = 0; i < SUBMITTERS; i++) {
      r[i] = (struct racer){
          .pool = pool, .ran = &ran, .accepted = &accepted, .how = how};
      ck_assert_int_eq(pthread_create(&t[i], NULL, submitter_main, &r[i]), 0);
    }
    size_t want = 20 + rng_next() % 200;
    uint64_t until = now_ns() + 10000 * MS;
    while (atomic_load(&accepted) < want) {
      seed_check(now_ns() < until);
      sched_yield();
    }
    seed_check_int(crew_pool_shutdown(pool, how), 0);
    size_t ok = 0, cancelled = 0;
    for (int i = 0; i < SUBMITTERS; i++) {
      pthread_join(t[i], NULL);
      ok += r[i].ok;
      cancelled += r[i].cancelled;
    }
    crew_stats st;
    ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
    seed_check_int(ok + cancelled, atomic_load(&accepted));
    seed_check_int((size_t)atomic_load(&ran), ok);
    seed_check_int(st.submitted, atomic_load(&accepted));
    seed_check_int(st.completed, ok);
    seed_check_int(st.cancelled, cancelled);
    if (how == CREW_DRAIN)
      seed_check_int(cancelled, 0);
    crew_pool_destroy(pool);
  }
  perturb_off();
  check_perturbed();
}
END_TEST

/* ---------------------------- catalog 27: many waiters, publish delayed */

enum { WAITERS = 24 };

struct waiter_arg {
  crew_future *f;
  crew_future *never; /* a future that resolves only at the end */
  signal_box *started;
  int kind;
  int status;
  int out;
};

static void *waiter_main(void *arg)
{
  struct waiter_arg *w = arg;
  signal_post(w->started);
  size_t index = 99;
  crew_future *pair[2] = {w->never, w->f};
  switch (w->kind) {
  case 0: /* plain wait */
    w->status = crew_future_wait(w->f);
    break;
  case 1: /* get: the output too */
    w->status = crew_future_get(w->f, &w->out, sizeof w->out);
    break;
  case 2: /* timed: the result or CREW_ETIMEDOUT; after that, wait again */
    for (;;) {
      int rc = crew_future_wait_timed(w->f, (1 + rng_next() % 200) * 1000);
      if (rc != CREW_ETIMEDOUT) {
        w->status = rc;
        break;
      }
    }
    break;
  case 3: /* on the waiter list, with another future */
    seed_check_int(crew_wait_any(pair, 2, CREW_FOREVER, &index), 0);
    seed_check_int(index, 1);
    w->status = crew_future_status(w->f);
    break;
  default: /* wait_all on the one future */
    seed_check_int(crew_wait_all(&w->f, 1, CREW_FOREVER), 0);
    w->status = crew_future_status(w->f);
    break;
  }
  return NULL;
}

/*
 * Catalog 27 (many waiters): 24 threads wait on one future in five ways
 * (wait, get, timed waits in a loop, wait_any with a future that stays
 * queued, wait_all), the task is let go, and the hook delays the publish
 * itself by 1-50 us (plus the usual perturbation). Invariants: every waiter
 * wakes (broadcast, not signal) with the task's status 7 and output; a timed
 * waiter sees either the result or CREW_ETIMEDOUT, and a later wait after
 * CREW_ETIMEDOUT sees the result (INV-1).
 */
START_TEST(many_waiters_delayed_publish)
{
  size_t rounds = scaled(12);
  crew_pool *pool = make_pool(2, 16);
  for (size_t round = 0; round < rounds; round++) {
    gate g, hold;
    gate_init(&g);
    gate_init(&hold);
    gate *gp = &g, *hp = &hold;
    crew_future *f, *never;
    ck_assert_int_eq(
        crew_submit(pool, task_gated, &hp, sizeof hp, sizeof(int), &never), 0);
    ck_assert_int_eq(
        crew_submit(pool, task_gated, &gp, sizeof gp, sizeof(int), &f), 0);
    signal_box started;
    signal_init(&started);
    struct waiter_arg w[WAITERS];
    pthread_t t[WAITERS];
    perturb_on(100, 20);
    atomic_store(&inj->publish_delay_us, 50);
    for (int i = 0; i < WAITERS; i++) {
      w[i] = (struct waiter_arg){
          .f = f, .never = never, .started = &started, .kind = i % 5};
      ck_assert_int_eq(pthread_create(&t[i], NULL, waiter_main, &w[i]), 0);
    }
    signal_wait(&started, WAITERS);
    gate_open(&g, 1);
    for (int i = 0; i < WAITERS; i++) {
      pthread_join(t[i], NULL);
      seed_check_int(w[i].status, 7);
      if (w[i].kind == 1)
        seed_check_int(w[i].out, 0x07070707);
    }
    perturb_off();
    atomic_store(&inj->publish_delay_us, 0);
    seed_check_int(crew_future_wait_timed(f, 0), 7);
    gate_open(&hold, 1);
    seed_check_int(crew_future_wait(never), 7);
    crew_future_release(f);
    crew_future_release(never);
    signal_fini(&started);
    gate_fini(&g);
    gate_fini(&hold);
  }
  crew_pool_destroy(pool);
  check_perturbed();
}
END_TEST

/* ------------------------------------------------------------------ main */

int main(void)
{
  Suite *s = suite_create("perturb");
  TCase *tc = tcase_create("perturb");
  tcase_add_checked_fixture(tc, inject_setup, inject_teardown); /* first */
  harness_tcase(tc, 30);
  tcase_add_loop_test(tc, mpmc_exactly_once_perturbed, 0, 2);
  tcase_add_test(tc, shutdown_races_parked_worker);
  tcase_add_test(tc, submit_cancel_shutdown_perturbed);
  tcase_add_test(tc, shutdown_races_submit_perturbed);
  tcase_add_test(tc, many_waiters_delayed_publish);
  suite_add_tcase(s, tc);
  return inject_main(s);
}
