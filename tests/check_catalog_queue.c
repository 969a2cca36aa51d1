/*
 * check_catalog_queue.c - scenarios 1-10 of the reliability catalog, queue
 * semantics, that the older suites (check_queue, check_future, check_pool,
 * check_stress) do not already check, or check only in part: every
 * producer and consumer mix at capacity one and two, 8x8 with mixed calls
 * and idle consumers and workers woken, a signal storm, timed calls and
 * clocks, capacities lapped many times, nested submits on a saturated
 * pool, waiting right after submit, and a shutdown racing a worker paused
 * at its wait.
 *
 * Every test's comment starts with "catalog N:" and names the invariant it
 * checks (INV-1 exactly once, INV-2 accounting, INV-3 liveness, INV-4
 * bounded shutdown, INV-5 containment, INV-7 limits); tests/CATALOG.md
 * says what each scenario asks. Where crew's documented behaviour differs
 * from the scenario's wording, the test checks crew's header contract and
 * says so.
 *
 * Sizes: `make check` runs the short sizes (the whole suite takes a few
 * seconds); CREW_STRESS_SCALE=N multiplies the loop counts (scaled()).
 * Scenarios 4 (injected delays) and 7 (a worker paused at its wait) also
 * have tests that need the test hooks: they exist only in a build
 * configured with --enable-test-hooks.
 *
 * Failures in the test's own pthreads use the quiet assertions of testutil.h
 * (in Check's fork mode they end the test from any thread); failures inside
 * tasks are counted in atomics and asserted by the test's main thread.
 */
#include "config.h"

#include "catalog.h"
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef CREW_TEST_HOOKS
#include <crew/testhook.h>
#endif

/* ======================================================= queue semantics */

/*
 * One MPMC run on a bare queue, shared by catalog 1, 3, 4 and 6: producers
 * push (producer, seq) items, consumers pop them; every item must be taken
 * exactly once and, per consumer, the items of one producer must come in
 * order (FIFO). Options: mixed call kinds (blocking, timed, zero-timeout,
 * batches), work per item, a sampler that checks the size under the queue's
 * lock, stealers that take items with zero-timeout pops (so a woken popper
 * may find the queue empty again), and a signal storm at the threads.
 */

#define MP_MAX_THREADS 8
#define MP_MAGIC       0x6361746cu

struct mp_item {
  uint32_t producer;
  uint32_t seq;
  uint32_t magic;
};

struct mp_opts {
  size_t producers, consumers, capacity, items;
  unsigned flags;       /* 0 or CREW_SHARED */
  bool mixed;           /* mix every call kind */
  uint64_t work_max_ns; /* consumers work 0..work_max_ns per item */
  bool sample;          /* a thread samples crew_queue_size() */
  size_t stealers;      /* extra consumers polling with timeout 0 */
  bool storm;           /* SIGUSR1 at every thread every 100 us */
  uint64_t per_consumer[MP_MAX_THREADS * 2]; /* out: items each one took */
};

struct mp_ctx {
  struct mp_opts *o;
  crew_queue *q;
  size_t per_producer;
  _Atomic uint8_t *seen;
  _Atomic uint64_t taken;
  _Atomic uint64_t early; /* timed calls that timed out before their time */
  _Atomic int done;       /* everyone finished (sampler, storm stop) */
  _Atomic size_t producers_done, consumers_done;
  _Atomic uint64_t max_size;
};

struct mp_thread {
  struct mp_ctx *ctx;
  uint32_t index;
  bool stealer;
  uint64_t taken;
  pthread_t th;
};

static struct mp_item mp_make(uint32_t producer, uint32_t seq)
{
  return (struct mp_item){.producer = producer, .seq = seq, .magic = MP_MAGIC};
}

/* A timed call that gave ETIMEDOUT must have waited its time. */
static void mp_check_timeout(struct mp_ctx *ctx, uint64_t t0, uint64_t timeout)
{
  if (now_ns() - t0 < timeout)
    atomic_fetch_add(&ctx->early, 1);
}

static void *mp_producer(void *arg)
{
  struct mp_thread *t = arg;
  struct mp_ctx *ctx = t->ctx;
  uint64_t rng = 0x9e3779b97f4a7c15ull * (t->index + 1);
  uint32_t n = (uint32_t)ctx->per_producer;
  for (uint32_t seq = 0; seq < n;) {
    uint64_t r = next_rand(&rng);
    unsigned kind = ctx->o->mixed ? (unsigned)(r % 5) : 0;
    struct mp_item batch[8];
    if (kind <= 1) { /* blocking push, or timed push FOREVER */
      struct mp_item it = mp_make(t->index, seq);
      quiet_assert_int_eq(
          kind == 0 ? crew_queue_push(ctx->q, &it)
                    : crew_queue_push_timed(ctx->q, &it, CREW_FOREVER),
          0);
      seq++;
    } else if (kind == 2) { /* poll */
      struct mp_item it = mp_make(t->index, seq);
      int rc = crew_queue_push_timed(ctx->q, &it, 0);
      quiet_assert_msg(rc == 0 || rc == CREW_ETIMEDOUT, "push gave %d", rc);
      if (rc == 0)
        seq++;
      else
        sched_yield();
    } else if (kind == 3) { /* short timeout */
      struct mp_item it = mp_make(t->index, seq);
      uint64_t t0 = now_ns();
      int rc = crew_queue_push_timed(ctx->q, &it, MS / 4);
      quiet_assert_msg(rc == 0 || rc == CREW_ETIMEDOUT, "push gave %d", rc);
      if (rc == 0)
        seq++;
      else
        mp_check_timeout(ctx, t0, MS / 4);
    } else { /* a batch, forever or a short timeout */
      uint32_t k = 1 + (uint32_t)(r >> 8) % 8;
      if (k > n - seq)
        k = n - seq;
      for (uint32_t i = 0; i < k; i++)
        batch[i] = mp_make(t->index, seq + i);
      bool forever = (r >> 16) % 2 == 0;
      size_t pushed = 99;
      uint64_t t0 = now_ns();
      int rc = crew_queue_push_many(ctx->q, batch, k, &pushed,
                                    forever ? CREW_FOREVER : MS / 4);
      quiet_assert_msg(rc == 0 || (!forever && rc == CREW_ETIMEDOUT),
                       "push_many gave %d", rc);
      quiet_assert_uint_eq(pushed == k, rc == 0);
      if (rc == CREW_ETIMEDOUT)
        mp_check_timeout(ctx, t0, MS / 4);
      seq += (uint32_t)pushed;
    }
  }
  atomic_fetch_add(&ctx->producers_done, 1);
  return NULL;
}

static void mp_take(struct mp_thread *t, const struct mp_item *it,
                    int64_t *last)
{
  struct mp_ctx *ctx = t->ctx;
  quiet_assert_uint_eq(it->magic, MP_MAGIC);
  quiet_assert_uint_lt(it->producer, ctx->o->producers);
  quiet_assert_uint_lt(it->seq, ctx->per_producer);
  quiet_assert_msg((int64_t)it->seq > last[it->producer],
                   "consumer %u: producer %u seq %u after %lld", t->index,
                   it->producer, it->seq, (long long)last[it->producer]);
  last[it->producer] = it->seq;
  uint8_t before = atomic_fetch_add_explicit(
      &ctx->seen[it->producer * ctx->per_producer + it->seq], 1,
      memory_order_relaxed);
  quiet_assert_msg(before == 0, "producer %u seq %u taken twice", it->producer,
                   it->seq);
  atomic_fetch_add_explicit(&ctx->taken, 1, memory_order_relaxed);
  t->taken++;
  if (ctx->o->work_max_ns > 0)
    spin_ns((it->seq * 2654435761u) % (ctx->o->work_max_ns + 1));
}

static void *mp_consumer(void *arg)
{
  struct mp_thread *t = arg;
  struct mp_ctx *ctx = t->ctx;
  uint64_t rng = 0xd1b54a32d192ed03ull * (t->index + 3);
  int64_t last[MP_MAX_THREADS];
  for (size_t i = 0; i < MP_MAX_THREADS; i++)
    last[i] = -1;
  for (;;) {
    struct mp_item items[8];
    uint64_t r = next_rand(&rng);
    unsigned kind = t->stealer ? 2 : ctx->o->mixed ? (unsigned)(r % 5) : 0;
    int rc;
    size_t got = 0;
    if (kind <= 1) {
      rc = kind == 0 ? crew_queue_pop(ctx->q, items)
                     : crew_queue_pop_timed(ctx->q, items, CREW_FOREVER);
      got = rc == 0;
    } else if (kind == 2) {
      rc = crew_queue_pop_timed(ctx->q, items, 0);
      got = rc == 0;
      if (rc == CREW_ETIMEDOUT) {
        sched_yield();
        continue;
      }
    } else if (kind == 3) {
      uint64_t t0 = now_ns();
      rc = crew_queue_pop_timed(ctx->q, items, MS / 4);
      got = rc == 0;
      if (rc == CREW_ETIMEDOUT) {
        mp_check_timeout(ctx, t0, MS / 4);
        continue;
      }
    } else {
      size_t max = 1 + (size_t)(r >> 8) % 8;
      bool forever = (r >> 16) % 2 == 0;
      uint64_t t0 = now_ns();
      rc = crew_queue_pop_many(ctx->q, items, max, &got,
                               forever ? CREW_FOREVER : MS / 4);
      if (rc == 0)
        quiet_assert(got >= 1 && got <= max);
      else
        quiet_assert_uint_eq(got, 0);
      if (rc == CREW_ETIMEDOUT) {
        quiet_assert(!forever);
        mp_check_timeout(ctx, t0, MS / 4);
        continue;
      }
    }
    for (size_t i = 0; i < got; i++)
      mp_take(t, &items[i], last);
    if (rc == CREW_ECLOSED)
      break;
    quiet_assert_int_eq(rc, 0);
  }
  atomic_fetch_add(&ctx->consumers_done, 1);
  return NULL;
}

static void *mp_sampler(void *arg)
{
  struct mp_ctx *ctx = arg;
  while (!atomic_load(&ctx->done)) {
    uint64_t n = crew_queue_size(ctx->q); /* read under the queue's lock */
    if (n > atomic_load(&ctx->max_size))
      atomic_store(&ctx->max_size, n);
    quiet_assert_msg(n <= ctx->o->capacity, "size %llu above capacity %zu",
                     (unsigned long long)n, ctx->o->capacity);
    sched_yield();
  }
  return NULL;
}

/* The signal storm: SIGUSR1 has a handler installed without SA_RESTART. */
static _Atomic uint64_t storm_hits;

static void storm_handler(int sig)
{
  (void)sig;
  atomic_fetch_add_explicit(&storm_hits, 1, memory_order_relaxed);
}

struct storm {
  struct mp_ctx *ctx;
  pthread_t *targets;
  size_t ntargets;
  _Atomic uint64_t rounds;
};

static void *storm_main(void *arg)
{
  struct storm *s = arg;
  while (!atomic_load(&s->ctx->done)) {
    for (size_t i = 0; i < s->ntargets; i++)
      pthread_kill(s->targets[i], SIGUSR1);
    atomic_fetch_add(&s->rounds, 1);
    pause_us(100);
  }
  return NULL;
}

static void mp_run(struct mp_opts *o)
{
  quiet_assert(o->producers <= MP_MAX_THREADS &&
               o->consumers + o->stealers <= 2 * MP_MAX_THREADS);
  struct mp_ctx ctx = {.o = o, .per_producer = o->items / o->producers};
  size_t total = ctx.per_producer * o->producers;
  ctx.q = make_queue(o->capacity, sizeof(struct mp_item), o->flags);
  ctx.seen = calloc(total, sizeof *ctx.seen);
  quiet_assert_ptr_nonnull(ctx.seen);
  atomic_init(&ctx.taken, 0);
  atomic_init(&ctx.early, 0);
  atomic_init(&ctx.done, 0);
  atomic_init(&ctx.producers_done, 0);
  atomic_init(&ctx.consumers_done, 0);
  atomic_init(&ctx.max_size, 0);

  struct sigaction old_sa;
  if (o->storm) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = storm_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: interrupted waits return EINTR */
    quiet_assert_int_eq(sigaction(SIGUSR1, &sa, &old_sa), 0);
    atomic_store(&storm_hits, 0);
  }

  size_t ncons = o->consumers + o->stealers;
  struct mp_thread prod[MP_MAX_THREADS], cons[2 * MP_MAX_THREADS];
  pthread_t targets[3 * MP_MAX_THREADS];
  for (size_t i = 0; i < ncons; i++) {
    cons[i] = (struct mp_thread){
        .ctx = &ctx, .index = (uint32_t)i, .stealer = i >= o->consumers};
    start_thread(&cons[i].th, mp_consumer, &cons[i]);
    targets[i] = cons[i].th;
  }
  pthread_t sampler, storm_th;
  if (o->sample)
    start_thread(&sampler, mp_sampler, &ctx);
  struct storm st = {.ctx = &ctx, .targets = targets};
  atomic_init(&st.rounds, 0);
  for (size_t i = 0; i < o->producers; i++) {
    prod[i] = (struct mp_thread){.ctx = &ctx, .index = (uint32_t)i};
    start_thread(&prod[i].th, mp_producer, &prod[i]);
    targets[ncons + i] = prod[i].th;
  }
  if (o->storm) {
    st.ntargets = ncons + o->producers;
    start_thread(&storm_th, storm_main, &st);
  }
  /* Every thread stays joinable until the storm stops (it must never
   * signal a joined thread): watch the counters, then join. The TCase
   * timeout is the hang watchdog. */
  while (atomic_load(&ctx.producers_done) < o->producers)
    pause_us(200);
  crew_queue_close(ctx.q); /* consumers drain, then see CREW_ECLOSED */
  while (atomic_load(&ctx.consumers_done) < ncons)
    pause_us(200);
  atomic_store(&ctx.done, 1);
  if (o->storm)
    join_thread(storm_th);
  if (o->sample)
    join_thread(sampler);
  for (size_t i = 0; i < o->producers; i++)
    join_thread(prod[i].th);
  for (size_t i = 0; i < ncons; i++) {
    join_thread(cons[i].th);
    o->per_consumer[i] = cons[i].taken;
  }
  if (o->storm)
    quiet_assert_int_eq(sigaction(SIGUSR1, &old_sa, NULL), 0);

  uint64_t taken = atomic_load(&ctx.taken);
  quiet_assert_uint_eq(taken, total);
  for (size_t id = 0; id < total; id++)
    quiet_assert_msg(atomic_load(&ctx.seen[id]) == 1, "item %zu taken %u times",
                     id, (unsigned)atomic_load(&ctx.seen[id]));
  quiet_assert_uint_eq(crew_queue_size(ctx.q), 0);
  uint64_t early = atomic_load(&ctx.early);
  quiet_assert_msg(early == 0, "%llu timed calls timed out early",
                   (unsigned long long)early);
  free(ctx.seen);
  crew_queue_destroy(ctx.q);
}

/*
 * catalog 1: the signal-versus-broadcast deadlock hunt. Capacity 1 and 2,
 * every mix of 1..4 producers and 1..4 consumers, blocking calls only (each
 * call waits at the full or empty edge as often as it can). INV-3: no hang
 * (the TCase timeout is the watchdog); INV-1/2: every item consumed exactly
 * once, per-producer order kept. `make check` moves 1500 items per mix;
 * CREW_STRESS_SCALE=700 gives the scenario's 10^6.
 */
START_TEST(catalog1_every_mix_at_capacity_one_and_two)
{
  size_t cap = 1 + (size_t)_i / 16;
  struct mp_opts o = {.producers = 1 + (size_t)_i % 4,
                      .consumers = 1 + (size_t)_i / 4 % 4,
                      .capacity = cap,
                      .items = scaled(1500)};
  mp_run(&o);
}
END_TEST

/*
 * catalog 3: MPMC exactly once, 8 producers x 8 consumers, every call kind
 * (blocking, timed, zero-timeout, batches), consumers working 0-50 us per
 * item, a sampler thread reading the size under the queue's lock. INV-1/2:
 * the multiset consumed equals the multiset produced, no item twice, the
 * size never above capacity, timed calls never time out early.
 */
START_TEST(catalog3_eight_by_eight_mixed_calls_with_work)
{
  struct mp_opts o = {.producers = 8,
                      .consumers = 8,
                      .capacity = 16,
                      .items = scaled(8 * 800),
                      .mixed = true,
                      .work_max_ns = 50000,
                      .sample = true};
  mp_run(&o);
  uint64_t sum = 0;
  for (size_t i = 0; i < 8; i++)
    sum += o.per_consumer[i];
  ck_assert_uint_eq(sum, 8 * (scaled(8 * 800) / 8));
}
END_TEST

/*
 * catalog 3 (B8, idle consumers woken while work exists), on the bare
 * queue: 8 consumers block in crew_queue_pop; the test pushes 8 items (one
 * push_many, or 8 single pushes); every consumer must get one item. A
 * consumer that got its item parks at a gate, so it cannot take a second:
 * if any push failed to wake an idle consumer, an item stays queued and
 * fewer than 8 report (signal_wait fails after 10 s). INV-3.
 */
struct idle_consumer {
  crew_queue *q;
  signal_box *ready, *got;
  gate *g;
  uint64_t taken;
  pthread_t th;
};

static void *idle_consumer_main(void *arg)
{
  struct idle_consumer *c = arg;
  uint64_t v;
  for (;;) {
    signal_post(c->ready);
    int rc = crew_queue_pop(c->q, &v);
    if (rc == CREW_ECLOSED)
      return NULL;
    quiet_assert_int_eq(rc, 0);
    c->taken++;
    signal_post(c->got);
    gate_pass(c->g);
  }
}

START_TEST(catalog3_every_idle_consumer_is_woken)
{
  enum { N = 8 };
  crew_queue *q = make_queue(N, sizeof(uint64_t), 0);
  signal_box ready, got;
  signal_init(&ready);
  signal_init(&got);
  gate g;
  gate_init(&g);
  struct idle_consumer c[N];
  for (size_t i = 0; i < N; i++) {
    c[i] =
        (struct idle_consumer){.q = q, .ready = &ready, .got = &got, .g = &g};
    start_thread(&c[i].th, idle_consumer_main, &c[i]);
  }
  size_t rounds = scaled(150);
  for (size_t r = 0; r < rounds; r++) {
    signal_wait(&ready, N); /* all N are at (or in) their pop */
    uint64_t items[N];
    for (size_t i = 0; i < N; i++)
      items[i] = r * N + i;
    if (r % 2 == 0) {
      size_t pushed = 0;
      quiet_assert_int_eq(
          crew_queue_push_many(q, items, N, &pushed, CREW_FOREVER), 0);
      quiet_assert_uint_eq(pushed, N);
    } else {
      for (size_t i = 0; i < N; i++)
        quiet_assert_int_eq(crew_queue_push(q, &items[i]), 0);
    }
    signal_wait(&got, N); /* one item each: nobody was left asleep */
    quiet_assert_uint_eq(crew_queue_size(q), 0);
    gate_open(&g, N);
  }
  signal_wait(&ready, N);
  crew_queue_close(q);
  for (size_t i = 0; i < N; i++) {
    join_thread(c[i].th);
    ck_assert_uint_eq(c[i].taken, rounds);
  }
  crew_queue_destroy(q);
  gate_fini(&g);
  signal_fini(&ready);
  signal_fini(&got);
}
END_TEST

/*
 * catalog 3 (B8) on the pool: 8 workers, 8 tasks submitted at once; each
 * task says it runs and parks at a gate, so all 8 must run at the same
 * time: a worker left asleep while a task is queued makes signal_wait fail.
 * INV-3. Per-worker counts: every worker ran exactly one task per round
 * (tasks report their worker through the task hook's index).
 */
struct parked_ctx {
  signal_box running, finished;
  gate g;
  _Atomic uint64_t per_worker[8];
};

static int parked_task(const void *in, void *out)
{
  (void)out;
  struct parked_ctx *p = *(struct parked_ctx *const *)in;
  signal_post(&p->running);
  gate_pass(&p->g);
  signal_post(&p->finished);
  return 0;
}

static void count_worker_hook(const crew_task_info *info, void *arg)
{
  struct parked_ctx *p = arg;
  quiet_assert_uint_lt(info->worker, 8);
  atomic_fetch_add(&p->per_worker[info->worker], 1);
}

START_TEST(catalog3_every_idle_worker_is_woken)
{
  enum { N = 8 };
  struct parked_ctx p, *pp = &p;
  signal_init(&p.running);
  signal_init(&p.finished);
  gate_init(&p.g);
  for (size_t i = 0; i < N; i++)
    atomic_init(&p.per_worker[i], 0);
  crew_config cfg = pool_config(CREW_THREADS, N);
  cfg.queue_capacity = 64;
  cfg.on_task_start = count_worker_hook;
  cfg.hook_arg = &p;
  crew_pool *pool = pool_create(&cfg);
  size_t rounds = scaled(150);
  for (size_t r = 0; r < rounds; r++) {
    for (size_t i = 0; i < N; i++)
      quiet_assert_int_eq(
          crew_submit(pool, parked_task, &pp, sizeof pp, 0, NULL), 0);
    signal_wait(&p.running, N); /* all 8 at once: every worker woke */
    gate_open(&p.g, N);
    signal_wait(&p.finished, N); /* this round's tokens are all taken */
  }
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  for (size_t i = 0; i < N; i++)
    ck_assert_uint_eq(atomic_load(&p.per_worker[i]), rounds);
  crew_pool_destroy(pool);
  gate_fini(&p.g);
  signal_fini(&p.running);
  signal_fini(&p.finished);
}
END_TEST

/*
 * catalog 4: early wake-ups. crew's hooks cannot make a wait return early,
 * so the early returns come from two real sources: (a) a SIGUSR1 handler
 * (installed without SA_RESTART) hit every 100 us at every producer and
 * consumer: a CREW_SHARED queue sleeps on a futex, which returns EINTR into
 * crew's predicate loop (a private queue's condition variable absorbs it in
 * glibc, and is run for comparison); (b) stealer threads polling with
 * timeout 0, so a popper woken by a push often finds the item gone. INV-1/2:
 * every item exactly once, no extra item; timed calls never time out
 * before their time.
 */
START_TEST(catalog4_signal_storm_and_stealers)
{
  struct mp_opts o = {.producers = 2,
                      .consumers = 3,
                      .stealers = 2,
                      .capacity = 2,
                      .flags = _i == 0 ? 0 : CREW_SHARED,
                      .items = scaled(20000),
                      .mixed = true,
                      .storm = true};
  mp_run(&o);
  ck_assert_uint_gt(atomic_load(&storm_hits), 0);
}
END_TEST

/*
 * catalog 6: counter wrap-around. crew's queue counts items ever put and
 * taken in uint64_t head/tail (lib/queue.c) and finds slot k at k %
 * capacity: a wrap needs 2^64 operations (585 years at 10^9 a second), so
 * the scenario's "start 1000 below the wrap" has nothing to reach, and crew
 * has no hook to preset the counters. What applies: a capacity that is not
 * a power of two (3, 5, 7, 1000 do not divide 2^64, so the % mapping must
 * not assume one) lapped thousands of times by 4 producers and 4 consumers
 * with every call kind. INV-1/2. (The CREW_SHARED futex word counts
 * wake-ups in 32 bits; a wrap there needs 2^32 wake-ups between one
 * waiter's load and its sleep, and the 100 ms slice bounds its cost.)
 */
START_TEST(catalog6_capacities_not_a_power_of_two_lapped_many_times)
{
  static const size_t caps[] = {3, 5, 7, 1000};
  struct mp_opts o = {.producers = 4,
                      .consumers = 4,
                      .capacity = caps[_i],
                      .items = scaled(caps[_i] == 1000 ? 40000 : 12000),
                      .mixed = true,
                      .sample = true};
  mp_run(&o);
}
END_TEST

/*
 * Scenario 5's tools: a pool of one worker parked at a gate, with its queue
 * (capacity 1) full behind it, so every timed call on it has to wait.
 */
struct stuck_pool {
  crew_pool *pool;
  gate g;
  gate *gp;
  crew_future *parked, *queued;
};

static void stuck_pool_init(struct stuck_pool *s)
{
  gate_init(&s->g);
  s->gp = &s->g;
  s->pool = make_pool(1, 1);
  ck_assert_int_eq(
      crew_submit(s->pool, gate_task, &s->gp, sizeof s->gp, 0, &s->parked), 0);
  /* Once the worker runs the parked task, one more task fills the queue. */
  crew_stats st;
  do {
    ck_assert_int_eq(crew_pool_stats(s->pool, &st), 0);
    if (st.running != 1)
      sched_yield();
  } while (st.running != 1);
  ck_assert_int_eq(crew_submit(s->pool, noop_task, NULL, 0, 0, &s->queued), 0);
}

static void stuck_pool_fini(struct stuck_pool *s)
{
  gate_open(&s->g, 1);
  ck_assert_int_eq(crew_future_wait(s->parked), 0);
  ck_assert_int_eq(crew_future_wait(s->queued), 0);
  crew_future_release(s->parked);
  crew_future_release(s->queued);
  crew_pool_destroy(s->pool);
  gate_fini(&s->g);
}

enum timed_kind {
  T_POP,
  T_PUSH,
  T_SUBMIT,
  T_WAIT,
  T_GET,
  T_ANY,
  T_ALL,
  T_KINDS
};

static const char *const timed_names[T_KINDS] = {
    "crew_queue_pop_timed",   "crew_queue_push_timed", "crew_submit_timed",
    "crew_future_wait_timed", "crew_future_get_timed", "crew_wait_any",
    "crew_wait_all"};

/* One timed call of `kind` that cannot succeed (empty/full queue, parked
 * future, full pool). */
static int timed_call(enum timed_kind kind, struct stuck_pool *s,
                      crew_queue *empty, crew_queue *full, uint64_t timeout)
{
  uint64_t v = 0;
  crew_future *f = NULL, *fs[2] = {s->parked, s->queued};
  size_t index = 99;
  int rc = CREW_EINVAL;
  switch (kind) {
  case T_POP:
    rc = crew_queue_pop_timed(empty, &v, timeout);
    break;
  case T_PUSH:
    rc = crew_queue_push_timed(full, &v, timeout);
    break;
  case T_SUBMIT:
    rc = crew_submit_timed(s->pool, noop_task, NULL, 0, 0, &f, timeout);
    quiet_assert_ptr_null(f);
    break;
  case T_WAIT:
    rc = crew_future_wait_timed(s->parked, timeout);
    break;
  case T_GET:
    rc = crew_future_get_timed(s->parked, NULL, 0, timeout);
    break;
  case T_ANY:
    rc = crew_wait_any(fs, 2, timeout, &index);
    quiet_assert_uint_eq(index, 99);
    break;
  case T_ALL:
    rc = crew_wait_all(fs, 2, timeout);
    break;
  case T_KINDS:
    break;
  }
  return rc;
}

/*
 * catalog 5: timed operations never return early. Every timed call of crew
 * (queue push/pop, submit, future wait/get, wait_any/all) on something that
 * cannot become ready, with timeouts 0, 1 ms and 100 ms: CREW_ETIMEDOUT,
 * after at least the timeout (CLOCK_MONOTONIC); 0 tries once without
 * waiting. crew's timeouts are relative uint64_t nanoseconds (common.h):
 * there is no timespec to carry a tv_nsec of -1 or 2e9, and a "past
 * deadline" is the timeout 0. INV-3.
 */
START_TEST(catalog5_timed_calls_never_return_early)
{
  static const uint64_t timeouts[] = {0, MS, 100 * MS};
  struct stuck_pool s;
  stuck_pool_init(&s);
  crew_queue *empty = make_queue(1, sizeof(uint64_t), 0);
  crew_queue *full = make_queue(1, sizeof(uint64_t), 0);
  uint64_t v = 1;
  ck_assert_int_eq(crew_queue_push(full, &v), 0);
  for (int k = 0; k < T_KINDS; k++)
    for (size_t t = 0; t < sizeof timeouts / sizeof timeouts[0]; t++) {
      uint64_t t0 = now_ns();
      int rc = timed_call((enum timed_kind)k, &s, empty, full, timeouts[t]);
      uint64_t took = now_ns() - t0;
      ck_assert_msg(rc == CREW_ETIMEDOUT, "%s(%llu ns) gave %d", timed_names[k],
                    (unsigned long long)timeouts[t], rc);
      ck_assert_msg(took >= timeouts[t], "%s(%llu ns) returned after %llu ns",
                    timed_names[k], (unsigned long long)timeouts[t],
                    (unsigned long long)took);
      if (timeouts[t] == 0)
        ck_assert_msg(took < 50 * MS, "%s(0) took %llu ns", timed_names[k],
                      (unsigned long long)took);
    }
  ck_assert(!crew_future_done(s.parked));
  crew_queue_destroy(empty);
  crew_queue_destroy(full);
  stuck_pool_fini(&s);
}
END_TEST

/*
 * catalog 5: huge timeouts wait, without overflow. INT64_MAX, 2^63 and
 * "minus one millisecond" (what a negative int64 becomes as crew's uint64_t)
 * and UINT64_MAX - 1 must wait like CREW_FOREVER: still waiting after 50 ms
 * (a deadline that overflowed would time out at once), then woken by the
 * event with success. Every waiting call kind, on its own thread, at once.
 */
struct huge_call {
  enum timed_kind kind;
  struct stuck_pool *s;
  uint64_t timeout;
  signal_box *ready, *done;
  int rc;
  pthread_t th;
};

static void *huge_call_main(void *arg)
{
  struct huge_call *c = arg;
  signal_post(c->ready);
  crew_future *f = NULL, *fs[2] = {c->s->parked, c->s->queued};
  size_t index = 99;
  switch (c->kind) {
  case T_SUBMIT:
    c->rc =
        crew_submit_timed(c->s->pool, noop_task, NULL, 0, 0, &f, c->timeout);
    if (c->rc == 0) {
      quiet_assert_int_eq(crew_future_wait(f), 0);
      crew_future_release(f);
    }
    break;
  case T_WAIT:
    c->rc = crew_future_wait_timed(c->s->parked, c->timeout);
    break;
  case T_GET:
    c->rc = crew_future_get_timed(c->s->parked, NULL, 0, c->timeout);
    break;
  case T_ANY:
    c->rc = crew_wait_any(fs, 2, c->timeout, &index);
    if (c->rc == 0)
      quiet_assert_uint_eq(index, 0);
    break;
  default:
    c->rc = crew_wait_all(fs, 2, c->timeout);
    break;
  }
  signal_post(c->done);
  return NULL;
}

START_TEST(catalog5_huge_timeouts_wait_like_forever)
{
  static const uint64_t huge[] = {(uint64_t)INT64_MAX, (uint64_t)INT64_MAX + 1,
                                  (uint64_t)(-(int64_t)MS), UINT64_MAX - 1,
                                  CREW_FOREVER};
  static const enum timed_kind kinds[] = {T_SUBMIT, T_WAIT, T_GET, T_ANY,
                                          T_ALL};
  enum { NK = sizeof kinds / sizeof kinds[0] };
  uint64_t timeout = huge[_i];
  struct stuck_pool s;
  stuck_pool_init(&s);
  signal_box ready, done;
  signal_init(&ready);
  signal_init(&done);
  struct huge_call c[NK];
  for (size_t k = 0; k < NK; k++) {
    c[k] = (struct huge_call){.kind = kinds[k],
                              .s = &s,
                              .timeout = timeout,
                              .ready = &ready,
                              .done = &done,
                              .rc = 99};
    start_thread(&c[k].th, huge_call_main, &c[k]);
  }
  signal_wait(&ready, NK);
  ck_assert_int_eq(signal_try(&done, NEG_WAIT), CREW_ETIMEDOUT);
  gate_open(&s.g, 1);
  signal_wait(&done, NK);
  for (size_t k = 0; k < NK; k++) {
    join_thread(c[k].th);
    ck_assert_msg(c[k].rc == 0, "%s(%llu ns) gave %d", timed_names[kinds[k]],
                  (unsigned long long)timeout, c[k].rc);
  }
  /* The gate is open: fini's gate_open leaves one spare token. */
  stuck_pool_fini(&s);
  signal_fini(&ready);
  signal_fini(&done);
}
END_TEST

/*
 * catalog 5: the waits run on CLOCK_MONOTONIC. The scenario asks for
 * pthread_condattr_getclock on crew's condition variables, which are
 * private; what can be checked from outside: this build takes the
 * monotonic path of lib/sync.c (HAVE_PTHREAD_CONDATTR_SETCLOCK), and this
 * platform honours it. (A wall-clock jump needs CAP_SYS_TIME: not tested.)
 */
START_TEST(catalog5_condvars_wait_on_the_monotonic_clock)
{
#ifdef HAVE_PTHREAD_CONDATTR_SETCLOCK
  pthread_condattr_t attr;
  clockid_t clock = CLOCK_REALTIME;
  ck_assert_int_eq(pthread_condattr_init(&attr), 0);
  ck_assert_int_eq(pthread_condattr_setclock(&attr, CLOCK_MONOTONIC), 0);
  ck_assert_int_eq(pthread_condattr_getclock(&attr, &clock), 0);
  ck_assert_int_eq(clock, CLOCK_MONOTONIC);
  ck_assert_int_eq(pthread_condattr_destroy(&attr), 0);
#else
  ck_abort_msg("built without pthread_condattr_setclock: crew's waits "
               "convert deadlines to CLOCK_REALTIME");
#endif
}
END_TEST

/*
 * catalog 8: nested submit and wait on a saturated pool. Documented
 * behaviour (pool.h, "Nested work"): a worker whose submit finds its own
 * pool's queue full runs the new task itself at once, and a worker waiting
 * on a still-queued future runs that task itself; so there is no
 * EWOULDBLOCK/EDEADLK: every submit from a task succeeds at once. 4 workers,
 * queue capacity 2, 16 parents (more than the workers and the queue hold),
 * each submitting 6 children (crew_submit, or crew_submit_timed with timeout
 * 0) and waiting for all of them. INV-3: no deadlock (the TCase timeout);
 * INV-1: every child ran exactly once with its output; every submit
 * returned 0.
 */
#define NEST_PARENTS  16
#define NEST_CHILDREN 6

struct nest_ctx {
  crew_pool *pool;
  _Atomic uint32_t ran[NEST_PARENTS * NEST_CHILDREN];
};

struct nest_in {
  struct nest_ctx *ctx;
  uint32_t id;
};

static int nest_child(const void *in, void *out)
{
  struct nest_in t;
  memcpy(&t, in, sizeof t);
  atomic_fetch_add(&t.ctx->ran[t.id], 1);
  uint32_t v = t.id * 3 + 1;
  memcpy(out, &v, sizeof v);
  return 0;
}

static int nest_parent(const void *in, void *out)
{
  (void)out;
  struct nest_in t;
  memcpy(&t, in, sizeof t);
  crew_future *fs[NEST_CHILDREN];
  for (uint32_t k = 0; k < NEST_CHILDREN; k++) {
    struct nest_in c = {.ctx = t.ctx, .id = t.id * NEST_CHILDREN + k};
    int rc = k % 2 == 0
                 ? crew_submit(t.ctx->pool, nest_child, &c, sizeof c,
                               sizeof(uint32_t), &fs[k])
                 : crew_submit_timed(t.ctx->pool, nest_child, &c, sizeof c,
                                     sizeof(uint32_t), &fs[k], 0);
    if (rc != 0)
      return 100 + (rc < 0 ? -rc : rc); /* reported through the status */
  }
  int status = crew_wait_all(fs, NEST_CHILDREN, CREW_FOREVER);
  for (uint32_t k = 0; k < NEST_CHILDREN; k++) {
    uint32_t v = 0;
    if (status == 0 && (crew_future_get(fs[k], &v, sizeof v) != 0 ||
                        v != (t.id * NEST_CHILDREN + k) * 3 + 1))
      status = 99;
    crew_future_release(fs[k]);
  }
  return status;
}

START_TEST(catalog8_nested_submit_and_wait_on_a_saturated_pool)
{
  size_t rounds = scaled(20);
  struct nest_ctx *ctx = malloc(sizeof *ctx);
  ck_assert_ptr_nonnull(ctx);
  for (size_t r = 0; r < rounds; r++) {
    for (size_t i = 0; i < NEST_PARENTS * NEST_CHILDREN; i++)
      atomic_init(&ctx->ran[i], 0);
    ctx->pool = make_pool(4, 2);
    crew_future *ps[NEST_PARENTS];
    for (uint32_t p = 0; p < NEST_PARENTS; p++) {
      struct nest_in in = {.ctx = ctx, .id = p};
      quiet_assert_int_eq(
          crew_submit(ctx->pool, nest_parent, &in, sizeof in, 0, &ps[p]), 0);
    }
    for (uint32_t p = 0; p < NEST_PARENTS; p++) {
      quiet_assert_msg(crew_future_wait(ps[p]) == 0, "round %zu parent %u: %d",
                       r, p, crew_future_status(ps[p]));
      crew_future_release(ps[p]);
    }
    for (size_t i = 0; i < NEST_PARENTS * NEST_CHILDREN; i++)
      quiet_assert_uint_eq(atomic_load(&ctx->ran[i]), 1);
    quiet_assert_int_eq(crew_pool_shutdown(ctx->pool, CREW_DRAIN), 0);
    crew_stats st;
    quiet_assert_int_eq(crew_pool_stats(ctx->pool, &st), 0);
    quiet_assert_uint_eq(st.submitted, NEST_PARENTS * (NEST_CHILDREN + 1));
    quiet_assert_uint_eq(st.completed, st.submitted);
    crew_pool_destroy(ctx->pool);
  }
  free(ctx);
}
END_TEST

/*
 * catalog 8, the documented rule exactly: every worker busy (worker A in a
 * parent task, worker B parked) and the queue (capacity 1) full; the parent
 * submits with crew_submit, crew_submit_timed(FOREVER) and
 * crew_submit_timed(0). Each returns 0 at once with the child already done,
 * and the child ran on the parent's own thread (pool.h: "a worker whose
 * submit finds its own pool's queue full runs the new task itself at once
 * instead of waiting for room").
 */
static _Thread_local char thread_marker;

static int where_task(const void *in, void *out)
{
  (void)in;
  uintptr_t me = (uintptr_t)&thread_marker;
  memcpy(out, &me, sizeof me);
  return 0;
}

struct inline_in {
  crew_pool *pool;
  gate *go;
};

/* out: int[6]: per submit, the child was done when it returned (1/0);
 * then, per submit, it ran on this thread (1/0). */
static int inline_parent(const void *in, void *out)
{
  struct inline_in t;
  memcpy(&t, in, sizeof t);
  gate_pass(t.go);
  int res[6] = {0};
  for (int k = 0; k < 3; k++) {
    crew_future *f = NULL;
    int rc =
        k == 0
            ? crew_submit(t.pool, where_task, NULL, 0, sizeof(uintptr_t), &f)
            : crew_submit_timed(t.pool, where_task, NULL, 0, sizeof(uintptr_t),
                                &f, k == 1 ? CREW_FOREVER : 0);
    if (rc != 0)
      return 100 - rc;
    res[k] = crew_future_done(f);
    uintptr_t where = 0;
    if (crew_future_get_timed(f, &where, sizeof where, 0) == 0)
      res[3 + k] = where == (uintptr_t)&thread_marker;
    crew_future_release(f);
  }
  memcpy(out, res, sizeof res);
  return 0;
}

START_TEST(catalog8_a_full_pool_runs_a_worker_submit_inline_at_once)
{
  crew_pool *pool = make_pool(2, 1);
  gate park, go, *pp = &park;
  gate_init(&park);
  gate_init(&go);
  crew_future *b = NULL, *parent = NULL, *q = NULL;
  ck_assert_int_eq(crew_submit(pool, gate_task, &pp, sizeof pp, 0, &b), 0);
  struct inline_in in = {.pool = pool, .go = &go};
  ck_assert_int_eq(crew_submit(pool, inline_parent, &in, sizeof in,
                               6 * sizeof(int), &parent),
                   0);
  crew_stats st;
  do { /* both workers busy */
    ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
    if (st.running != 2)
      sched_yield();
  } while (st.running != 2);
  ck_assert_int_eq(crew_submit(pool, gate_task, &pp, sizeof pp, 0, &q), 0);
  crew_future *extra = NULL; /* the queue is full */
  ck_assert_int_eq(crew_submit_timed(pool, noop_task, NULL, 0, 0, &extra, 0),
                   CREW_ETIMEDOUT);
  gate_open(&go, 1);
  int res[6] = {0};
  ck_assert_int_eq(crew_future_get(parent, res, sizeof res), 0);
  for (int k = 0; k < 3; k++) {
    ck_assert_msg(res[k] == 1, "submit %d: child not done when it returned", k);
    ck_assert_msg(res[3 + k] == 1, "submit %d: child ran on another thread", k);
  }
  ck_assert(!crew_future_done(q)); /* still queued: nobody waited for room */
  gate_open(&park, 2);
  ck_assert_int_eq(crew_future_wait(b), 0);
  ck_assert_int_eq(crew_future_wait(q), 0);
  crew_future_release(b);
  crew_future_release(q);
  crew_future_release(parent);
  crew_pool_destroy(pool);
  gate_fini(&park);
  gate_fini(&go);
}
END_TEST

/*
 * catalog 9: wait for everything right after submitting. crew has no
 * "wait for idle" call; its equivalents are crew_wait_all() on the futures
 * and crew_map() (which returns when every item is done). 1 worker, 5
 * tasks, the wait at once, many rounds. INV-1/3: the wait returns only
 * after all 5 ran (their outputs are there, the run count is exact).
 */
START_TEST(catalog9_wait_all_and_map_right_after_submit)
{
  crew_pool *pool = make_pool(1, 0);
  _Atomic uint32_t ran = 0, *rp = &ran;
  size_t rounds = scaled(1000);
  for (size_t r = 0; r < rounds; r++) {
    atomic_store(&ran, 0);
    if (r % 2 == 0) {
      crew_future *fs[5];
      for (int i = 0; i < 5; i++)
        quiet_assert_int_eq(crew_submit(pool, count_task, &rp, sizeof rp,
                                        sizeof(uint32_t), &fs[i]),
                            0);
      quiet_assert_int_eq(crew_wait_all(fs, 5, CREW_FOREVER), 0);
      quiet_assert_uint_eq(atomic_load(&ran), 5);
      for (int i = 0; i < 5; i++) {
        uint32_t v = 0;
        quiet_assert(crew_future_done(fs[i]));
        quiet_assert_int_eq(crew_future_get_timed(fs[i], &v, sizeof v, 0), 0);
        quiet_assert_uint_eq(v, (uint32_t)i + 1); /* one worker: in order */
        crew_future_release(fs[i]);
      }
    } else {
      uint32_t out[5] = {0};
      quiet_assert_int_eq(
          crew_map(pool, count_task, &rp, 0, out, sizeof out[0], 5), 0);
      quiet_assert_uint_eq(atomic_load(&ran), 5);
      uint32_t seen = 0;
      for (int i = 0; i < 5; i++) {
        quiet_assert(out[i] >= 1 && out[i] <= 5);
        seen |= 1u << out[i];
      }
      quiet_assert_uint_eq(seen, 0x3e);
    }
  }
  crew_stats st;
  ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
  ck_assert_uint_eq(st.completed, rounds * 5);
  crew_pool_destroy(pool);
}
END_TEST

#ifdef CREW_TEST_HOOKS
/*
 * catalog 7: predicate changes only under the mutex (B5). A hook pauses a
 * pool worker at CREW_TP_WAIT: it has found the queue empty and open and
 * holds the lock, about to sleep. The test calls shutdown exactly then. A
 * shutdown that changed the predicate without the lock would be lost in
 * that window and the worker would sleep forever. INV-4: every shutdown
 * returns (the TCase timeout is the watchdog) and every worker exits.
 */
static _Thread_local bool cat7_worker;
static _Atomic int cat7_at_wait;

static int cat7_mark_worker(void *arg)
{
  (void)arg;
  cat7_worker = true;
  return 0;
}

static int cat7_hook(enum crew_test_point point, const void *object, void *arg)
{
  (void)object;
  (void)arg;
  static _Thread_local uint64_t rng;
  if (point != CREW_TP_WAIT || !cat7_worker)
    return 0;
  if (rng == 0)
    rng = (uint64_t)(uintptr_t)&rng | 1;
  atomic_store(&cat7_at_wait, 1);
  /* Hold the window open a little: 0 to ~100 us, yielding. */
  uint64_t until = now_ns() + next_rand(&rng) % 100000;
  while (now_ns() < until)
    sched_yield();
  return 0;
}

START_TEST(catalog7_shutdown_while_a_worker_is_paused_at_its_wait)
{
  size_t rounds = scaled(300);
  ck_assert_int_eq(crew_test_hook_set(cat7_hook, NULL), 0);
  for (size_t r = 0; r < rounds; r++) {
    atomic_store(&cat7_at_wait, 0);
    crew_config cfg = pool_config(CREW_THREADS, 1 + r % 2);
    cfg.queue_capacity = 4;
    cfg.init = cat7_mark_worker;
    crew_pool *pool = NULL;
    quiet_assert_int_eq(crew_pool_create(&pool, &cfg), 0);
    if (r % 3 == 1)
      quiet_assert_int_eq(crew_submit(pool, noop_task, NULL, 0, 0, NULL), 0);
    uint64_t t0 = now_ns();
    while (!atomic_load(&cat7_at_wait))
      quiet_assert_msg(now_ns() - t0 < 10000 * MS,
                       "round %zu: no worker reached its wait", r);
    quiet_assert_int_eq(
        crew_pool_shutdown(pool, r % 2 == 0 ? CREW_DRAIN : CREW_CANCEL), 0);
    crew_stats st;
    quiet_assert_int_eq(crew_pool_stats(pool, &st), 0);
    quiet_assert_uint_eq(st.workers, 0);
    crew_pool_destroy(pool);
  }
  ck_assert_int_eq(crew_test_hook_set(NULL, NULL), 0);
}
END_TEST

/*
 * catalog 4 (with hooks): catalog4_signal_storm_and_stealers again, with a
 * hook that yields at random at every lock, unlock, wait and wake of the
 * library, to shake the interleavings of the predicate loops. INV-1/2.
 */
static int yield_hook(enum crew_test_point point, const void *object, void *arg)
{
  (void)object;
  (void)arg;
  static _Thread_local uint64_t rng;
  if (point > CREW_TP_WAKE)
    return 0;
  if (rng == 0)
    rng = (uint64_t)(uintptr_t)&rng | 1;
  if (next_rand(&rng) % 4 == 0)
    sched_yield();
  return 0;
}

START_TEST(catalog4_signal_storm_with_injected_yields)
{
  ck_assert_int_eq(crew_test_hook_set(yield_hook, NULL), 0);
  struct mp_opts o = {.producers = 2,
                      .consumers = 3,
                      .stealers = 2,
                      .capacity = 2,
                      .flags = _i == 0 ? 0 : CREW_SHARED,
                      .items = scaled(10000),
                      .mixed = true,
                      .storm = true};
  mp_run(&o);
  ck_assert_int_eq(crew_test_hook_set(NULL, NULL), 0);
  ck_assert_uint_gt(atomic_load(&storm_hits), 0);
}
END_TEST
#endif

/* =================================================================== main */

int main(void)
{
  Suite *s = suite_create("catalog_queue");

  TCase *tc = catalog_tcase(s, "queue_semantics", 60);
  tcase_add_loop_test(tc, catalog1_every_mix_at_capacity_one_and_two, 0, 32);
  tcase_add_test(tc, catalog3_eight_by_eight_mixed_calls_with_work);
  tcase_add_test(tc, catalog3_every_idle_consumer_is_woken);
  tcase_add_test(tc, catalog3_every_idle_worker_is_woken);
  tcase_add_loop_test(tc, catalog4_signal_storm_and_stealers, 0, 2);
  tcase_add_test(tc, catalog5_timed_calls_never_return_early);
  tcase_add_loop_test(tc, catalog5_huge_timeouts_wait_like_forever, 0, 5);
  tcase_add_test(tc, catalog5_condvars_wait_on_the_monotonic_clock);
  tcase_add_loop_test(
      tc, catalog6_capacities_not_a_power_of_two_lapped_many_times, 0, 4);
  tcase_add_test(tc, catalog8_nested_submit_and_wait_on_a_saturated_pool);
  tcase_add_test(tc, catalog8_a_full_pool_runs_a_worker_submit_inline_at_once);
  tcase_add_test(tc, catalog9_wait_all_and_map_right_after_submit);
#ifdef CREW_TEST_HOOKS
  tcase_add_loop_test(tc, catalog4_signal_storm_with_injected_yields, 0, 2);
  tcase_add_test(tc, catalog7_shutdown_while_a_worker_is_paused_at_its_wait);
#endif
  return run_suite(s);
}
