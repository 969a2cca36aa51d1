/*
 * fuzz_api.c - libFuzzer target (catalog 68): the input bytes are a small
 * program of queue and pool calls, each checked against a reference model.
 *
 * Byte 0 selects the parts: bit 0 runs part A (queue), bit 1 part B (pool).
 *
 * Part A: a crew_queue (capacity 1..8, item size 1..64, CREW_SHARED or not)
 * driven from this thread alone, so every call's outcome is exact: a FIFO
 * model gives the return code, the items (their bytes), pushed/popped counts
 * and the bytes a failing call must leave untouched (crew/queue.h).
 *
 * Part B: a thread pool (1..4 workers, queue capacity 1..8) fed tasks whose
 * behaviour the bytes pick (return a value, return an error code, spin a few
 * microseconds, submit a child and maybe wait on it). Timing is not ours to
 * choose, so most checks are "consistent with some interleaving": each
 * future resolves exactly once, with the task's status and output if it ran
 * and with CREW_ECANCELED only if it never ran and a cancel or a CREW_CANCEL
 * shutdown may have done it (crew/future.h, crew/pool.h). The "plug" op makes
 * the pool deterministic for a while: it waits until no task is in flight,
 * then parks every worker in a gate task, so the queue is empty and nothing
 * moves until the "unplug": then try-submits, cancels, timed waits, done,
 * wait_any/all and the counters are checked exactly. A shutdown begun while
 * plugged (from a helper thread) checks CREW_CANCEL and CREW_DRAIN exactly:
 * every task still queued must be cancelled, or must run. After the pool is
 * shut down its counters must add up exactly, and after destroy every future
 * must have resolved and run its callbacks. No leak (LSan), no hang: every
 * wait of this thread is timed or on work that is known to finish.
 *
 * A violation prints a message on stderr and aborts, which libFuzzer
 * reports as a crash with the input that caused it.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, pthreads */

#include <crew.h>

#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Functions that run on worker threads are left out of libFuzzer's coverage
 * counters: those are plain bytes, incremented without atomics, so threads
 * bumping the same counter race, and ThreadSanitizer would report the
 * fuzzer's own bookkeeping instead of crew's races.
 */
#if defined(__clang__)
#define ON_WORKERS __attribute__((no_sanitize("coverage")))
#else
#define ON_WORKERS
#endif

/* ------------------------------------------------------------ helpers */

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond))                                                               \
      violation(__LINE__, #cond, __VA_ARGS__);                                 \
  } while (0)

static void violation(int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

ON_WORKERS static void violation(int line, const char *cond, const char *fmt,
                                 ...)
{
  va_list ap;
  fprintf(stderr, "fuzz_api: oracle violation at line %d: %s: ", line, cond);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(stderr);
  abort();
}

ON_WORKERS static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* FUZZ_API_TRACE=1 in the environment: print each op on stderr. */
static int tracing = -1;

#define TRACE(...)                                                             \
  do {                                                                         \
    if (tracing < 0)                                                           \
      tracing = getenv("FUZZ_API_TRACE") != NULL;                              \
    if (tracing)                                                               \
      fprintf(stderr, __VA_ARGS__);                                            \
  } while (0)

/* Bounded waits of this harness: beyond them, report a hang. */
#define HANG_NS ((uint64_t)5000000000u)

/* A byte reader: past the end every read gives 0. */
struct reader {
  const uint8_t *p;
  size_t n;
};

static uint8_t rd(struct reader *r)
{
  if (r->n == 0)
    return 0;
  r->n--;
  return *r->p++;
}

/* A short timeout from a byte: 0, or a few microseconds. */
static uint64_t small_timeout(uint8_t b)
{
  return (uint64_t)(b % 8) * 2000u;
}

/* The bytes an item or a task's output must hold. */
ON_WORKERS static unsigned char pattern(uint32_t seed, size_t i)
{
  uint32_t x = seed * 2654435761u + 0x9e3779b9u;
  return (unsigned char)((x >> ((i % 4) * 8)) ^ (i * 37u));
}

ON_WORKERS static void fill(unsigned char *p, size_t n, uint32_t seed)
{
  for (size_t i = 0; i < n; i++)
    p[i] = pattern(seed, i);
}

ON_WORKERS static bool holds(const unsigned char *p, size_t n, uint32_t seed)
{
  for (size_t i = 0; i < n; i++)
    if (p[i] != pattern(seed, i))
      return false;
  return true;
}

ON_WORKERS static bool all_bytes(const unsigned char *p, size_t n,
                                 unsigned char v)
{
  for (size_t i = 0; i < n; i++)
    if (p[i] != v)
      return false;
  return true;
}

/* ===================================================== part A: queue */

#define QCAP_MAX  8
#define QITEM_MAX 64
#define QMANY_MAX (2 * QCAP_MAX + 1)
#define QOPS_MAX  32
#define UNTOUCHED 0x5a

struct qmodel {
  crew_queue *q;
  size_t cap, isz;
  uint32_t ids[QCAP_MAX]; /* ring of the ids of queued items */
  size_t head, count;
  bool closed;
  uint32_t next_id;
};

/* Make n new items (ids next_id...) at dst. */
static uint32_t q_make(struct qmodel *m, unsigned char *dst, size_t n)
{
  uint32_t first = m->next_id;
  for (size_t i = 0; i < n; i++)
    fill(dst + i * m->isz, m->isz, m->next_id++);
  return first;
}

/* The queue accepted n items with ids first...: append them to the model. */
static void q_accepted(struct qmodel *m, uint32_t first, size_t n)
{
  CHECK(m->count + n <= m->cap, "model overflow: %zu + %zu", m->count, n);
  for (size_t i = 0; i < n; i++)
    m->ids[(m->head + m->count + i) % m->cap] = first + (uint32_t)i;
  m->count += n;
}

/* n items were popped into src: they must be the model's head items. */
static void q_popped(struct qmodel *m, const unsigned char *src, size_t n)
{
  CHECK(n <= m->count, "popped %zu of %zu queued", n, m->count);
  for (size_t i = 0; i < n; i++) {
    uint32_t id = m->ids[m->head];
    CHECK(holds(src + i * m->isz, m->isz, id),
          "item %zu of a pop is not item #%u (FIFO order or bytes)", i,
          (unsigned)id);
    m->head = (m->head + 1) % m->cap;
    m->count--;
  }
}

static int q_push_expect(const struct qmodel *m)
{
  if (m->closed)
    return CREW_ECLOSED;
  return m->count == m->cap ? CREW_ETIMEDOUT : 0;
}

static int q_pop_expect(const struct qmodel *m)
{
  if (m->count > 0)
    return 0;
  return m->closed ? CREW_ECLOSED : CREW_ETIMEDOUT;
}

static void q_check_queries(const struct qmodel *m)
{
  CHECK(crew_queue_size(m->q) == m->count, "size %zu, model %zu",
        crew_queue_size(m->q), m->count);
  CHECK(crew_queue_is_closed(m->q) == m->closed, "is_closed %d",
        (int)m->closed);
  CHECK(crew_queue_capacity(m->q) == m->cap, "capacity");
  CHECK(crew_queue_item_size(m->q) == m->isz, "item_size");
}

/* push, push_timed: `how` 0 tries, 1 waits a little, 2 blocks if it may. */
static void q_op_push(struct qmodel *m, int how, uint8_t b)
{
  unsigned char item[QITEM_MAX];
  uint32_t id = q_make(m, item, 1);
  int want = q_push_expect(m);
  int rc;
  if (how == 2 && want != CREW_ETIMEDOUT)
    rc = crew_queue_push(m->q, item);
  else
    rc = crew_queue_push_timed(m->q, item, how == 0 ? 0 : small_timeout(b));
  CHECK(rc == want, "push: %d, want %d (count %zu cap %zu closed %d)", rc, want,
        m->count, m->cap, (int)m->closed);
  if (rc == 0)
    q_accepted(m, id, 1);
}

static void q_op_pop(struct qmodel *m, int how, uint8_t b)
{
  unsigned char item[QITEM_MAX];
  memset(item, UNTOUCHED, sizeof item);
  int want = q_pop_expect(m);
  int rc;
  if (how == 2 && want != CREW_ETIMEDOUT)
    rc = crew_queue_pop(m->q, item);
  else
    rc = crew_queue_pop_timed(m->q, item, how == 0 ? 0 : small_timeout(b));
  CHECK(rc == want, "pop: %d, want %d", rc, want);
  if (rc == 0) {
    q_popped(m, item, 1);
    CHECK(all_bytes(item + m->isz, sizeof item - m->isz, UNTOUCHED),
          "pop wrote past item_size");
  } else {
    CHECK(all_bytes(item, sizeof item, UNTOUCHED), "failed pop wrote item");
  }
}

static void q_op_push_many(struct qmodel *m, uint8_t b1, uint8_t b2)
{
  static unsigned char items[QMANY_MAX * QITEM_MAX];
  size_t count = b1 % (2 * m->cap + 2);
  uint32_t first = q_make(m, items, count);
  size_t room = m->cap - m->count;
  uint64_t timeout = (b2 & 3) == 0 ? 0 : small_timeout(b2 >> 2);
  if ((b2 & 3) == 3 && (m->closed || count <= room))
    timeout = CREW_FOREVER; /* cannot block: all fit, or closed */
  size_t pushed = 999, *pp = (b2 & 4) != 0 ? NULL : &pushed;
  int rc = crew_queue_push_many(m->q, items, count, pp, timeout);
  size_t want_n = 0;
  int want = 0;
  if (count == 0)
    want = 0;
  else if (m->closed)
    want = CREW_ECLOSED;
  else {
    want_n = count < room ? count : room;
    want = want_n == count ? 0 : CREW_ETIMEDOUT;
  }
  CHECK(rc == want, "push_many(%zu): %d, want %d", count, rc, want);
  if (pp != NULL)
    CHECK(pushed == want_n, "push_many pushed %zu, want %zu", pushed, want_n);
  q_accepted(m, first, want_n);
}

static void q_op_pop_many(struct qmodel *m, uint8_t b1, uint8_t b2)
{
  static unsigned char items[(QMANY_MAX + 1) * QITEM_MAX];
  memset(items, UNTOUCHED, sizeof items);
  size_t max = b1 % (2 * m->cap + 2);
  uint64_t timeout = (b2 & 3) == 0 ? 0 : small_timeout(b2 >> 2);
  if ((b2 & 3) == 3 && (m->closed || m->count > 0 || max == 0))
    timeout = CREW_FOREVER;
  size_t popped = 999;
  int rc = crew_queue_pop_many(m->q, items, max, &popped, timeout);
  size_t want_n = 0;
  int want;
  if (max == 0)
    want = 0;
  else {
    want = q_pop_expect(m);
    if (want == 0)
      want_n = max < m->count ? max : m->count;
  }
  CHECK(rc == want, "pop_many(%zu): %d, want %d", max, rc, want);
  CHECK(popped == want_n, "pop_many popped %zu, want %zu", popped, want_n);
  q_popped(m, items, want_n);
  CHECK(all_bytes(items + want_n * m->isz, sizeof items - want_n * m->isz,
                  UNTOUCHED),
        "pop_many wrote past the items it popped");
}

/* Bad arguments: each must fail with its documented code, changing nothing. */
static void q_op_bad(struct qmodel *m, uint8_t b)
{
  unsigned char item[QITEM_MAX];
  memset(item, UNTOUCHED, sizeof item);
  size_t n = 77;
  crew_queue *sentinel = (crew_queue *)(uintptr_t)0x1234, *q2 = sentinel;
  switch (b % 10) {
  case 0:
    CHECK(crew_queue_push(NULL, item) == CREW_EINVAL, "push(NULL q)");
    CHECK(crew_queue_push_timed(m->q, NULL, 0) == CREW_EINVAL, "push(NULL)");
    CHECK(crew_queue_push(m->q, NULL) == CREW_EINVAL, "push(NULL item)");
    break;
  case 1:
    CHECK(crew_queue_pop(NULL, item) == CREW_EINVAL, "pop(NULL q)");
    CHECK(crew_queue_pop(m->q, NULL) == CREW_EINVAL, "pop(NULL item)");
    CHECK(crew_queue_pop_timed(m->q, NULL, 0) == CREW_EINVAL, "pop(NULL)");
    break;
  case 2:
    CHECK(crew_queue_push_many(m->q, NULL, 1, &n, 0) == CREW_EINVAL && n == 0,
          "push_many(NULL items)");
    n = 77;
    CHECK(crew_queue_push_many(NULL, item, 1, &n, 0) == CREW_EINVAL && n == 0,
          "push_many(NULL q)");
    CHECK(crew_queue_push_many(m->q, NULL, 0, NULL, 0) == 0,
          "push_many(NULL, 0)");
    break;
  case 3:
    if (m->isz > 1) {
      CHECK(crew_queue_push_many(m->q, item, SIZE_MAX / m->isz + 1, &n, 0) ==
                    CREW_EINVAL &&
                n == 0,
            "push_many overflow");
      n = 77;
      CHECK(crew_queue_pop_many(m->q, item, SIZE_MAX / m->isz + 1, &n, 0) ==
                    CREW_EINVAL &&
                n == 0,
            "pop_many overflow");
    }
    break;
  case 4:
    CHECK(crew_queue_pop_many(m->q, item, 1, NULL, 0) == CREW_EINVAL,
          "pop_many(NULL popped)");
    CHECK(crew_queue_pop_many(m->q, NULL, 1, &n, 0) == CREW_EINVAL && n == 0,
          "pop_many(NULL items)");
    n = 77;
    CHECK(crew_queue_pop_many(NULL, item, 1, &n, 0) == CREW_EINVAL && n == 0,
          "pop_many(NULL q)");
    n = 77;
    CHECK(crew_queue_pop_many(m->q, NULL, 0, &n, 0) == 0 && n == 0,
          "pop_many(NULL, 0)");
    break;
  case 5:
    CHECK(crew_queue_create(&q2, 0, 1, 0) == CREW_EINVAL && q2 == sentinel,
          "create capacity 0");
    CHECK(crew_queue_create(&q2, 1, 0, 0) == CREW_EINVAL && q2 == sentinel,
          "create item_size 0");
    CHECK(crew_queue_create(&q2, 1, 1, 0x2u) == CREW_EINVAL && q2 == sentinel,
          "create unknown flag");
    CHECK(crew_queue_create(&q2, SIZE_MAX / 2, 4, 0) == CREW_EINVAL &&
              q2 == sentinel,
          "create overflow");
    CHECK(crew_queue_create(NULL, 1, 1, 0) == CREW_EINVAL, "create(NULL)");
    break;
  case 6:
    CHECK(crew_queue_size(NULL) == 0 && crew_queue_capacity(NULL) == 0 &&
              crew_queue_item_size(NULL) == 0 && !crew_queue_is_closed(NULL),
          "queries on NULL");
    crew_queue_close(NULL);
    crew_queue_destroy(NULL);
    break;
  default: /* a valid create and destroy beside the queue under test */
    CHECK(crew_queue_create(&q2, 1 + b % 3, 1 + b % 5,
                            (b & 0x10) ? CREW_SHARED : 0) == 0,
          "create");
    crew_queue_destroy(q2);
    break;
  }
  CHECK(all_bytes(item, sizeof item, UNTOUCHED), "a failing call wrote");
  q_check_queries(m);
}

static void run_queue(struct reader *r)
{
  struct qmodel m = {0};
  uint8_t b = rd(r);
  m.cap = 1 + b % QCAP_MAX;
  uint8_t b2 = rd(r);
  m.isz = 1 + b2 % QITEM_MAX;
  unsigned flags = (b & 0x80) ? CREW_SHARED : 0;
  int rc = crew_queue_create(&m.q, m.cap, m.isz, flags);
  TRACE("A: queue cap %zu item %zu flags %u\n", m.cap, m.isz, flags);
  CHECK(rc == 0, "queue_create(%zu, %zu, %u): %d", m.cap, m.isz, flags, rc);
  size_t nops = rd(r) % (QOPS_MAX + 1);
  for (size_t i = 0; i < nops && r->n > 0; i++) {
    uint8_t op = rd(r), x = rd(r);
    TRACE("A%zu: op %d x %d (count %zu/%zu closed %d)\n", i, op % 12, x,
          m.count, m.cap, (int)m.closed);
    switch (op % 12) {
    case 0:
    case 1:
    case 2:
      q_op_push(&m, op % 3, x);
      break;
    case 3:
    case 4:
    case 5:
      q_op_pop(&m, op % 3, x);
      break;
    case 6:
      q_op_push_many(&m, x, rd(r));
      break;
    case 7:
      q_op_pop_many(&m, x, rd(r));
      break;
    case 8:
      if (x % 4 == 0) { /* close is rare: it ends the interesting part */
        crew_queue_close(m.q);
        m.closed = true;
      }
      break;
    case 9:
      q_check_queries(&m);
      break;
    case 10:
      q_op_bad(&m, x);
      break;
    default: /* pop everything out with a bounded pop_many */
      q_op_pop_many(&m, (uint8_t)(2 * m.cap + 1), 0);
      break;
    }
  }
  q_check_queries(&m);
  crew_queue_destroy(m.q); /* frees the items still in it */
}

/* ====================================================== part B: pool */

#define MAX_RECS  112
#define POPS_MAX  64
#define OUT_MAX   16
#define MAP_MAX   16
#define NO_RESULT 12345 /* no crew call returns it */

enum behaviour { B_VALUE, B_ERROR, B_SPIN, B_CHILD, B_GATE };

struct ctx;

/* A child task, submitted by its parent from a worker. */
struct kid {
  struct ctx *c;
  uint32_t seed;
  int code;
  size_t out_size;
  bool with_future;
  atomic_int ran;
  atomic_int submit_rc; /* NO_RESULT if the parent did not get that far */
  atomic_int wait_rc;   /* with_future: what wait, then get, returned */
  atomic_int get_rc;
  atomic_int out_ok;
};

/* One task submitted from this thread, and what is known of it. */
struct rec {
  struct ctx *c;
  int beh;
  int code;
  uint32_t seed;
  unsigned spin_us;
  size_t out_size;
  struct kid kid;
  atomic_int ran;
  atomic_int cbs_run;
  /* This thread's view: */
  crew_future *f; /* NULL: fire and forget, or released */
  bool has_future, released;
  bool parked;      /* a gate task of the current plug: running */
  bool cancel_ok;   /* crew_future_cancel returned 0 */
  bool busy_open;   /* cancel said EBUSY while no CANCEL shutdown had begun */
  bool must_run;    /* queued when a plugged DRAIN shutdown began */
  bool must_cancel; /* queued when a plugged CANCEL shutdown began */
  int cbs_added;
  bool seen_valid;
  int seen; /* the status it resolved with, once seen */
};

struct ctx {
  crew_pool *pool;
  size_t workers, cap;
  atomic_int runs, fails, in_flight, kids_accepted;
  atomic_int gate_open, gate_entered;
  uint64_t main_accepted, map_items, cancel_ok_count;
  bool plugged;
  size_t plug_queued; /* tasks queued while plugged, not cancelled (exact) */
  size_t plug_slots;  /* queue slots they hold: a cancelled task keeps its
                         slot until a worker pops it */
  bool shut_begun, cancel_shut, joined;
  size_t nrecs;
  struct rec recs[MAX_RECS];
};

static struct ctx g_ctx;

static int expected_status(const struct rec *r)
{
  return r->beh == B_ERROR ? r->code : 0;
}

/* Wait for an atomic to reach a value, or report a hang. */
static void await_value(atomic_int *v, int want, const char *what)
{
  uint64_t end = now_ns() + HANG_NS;
  while (atomic_load(v) != want) {
    CHECK(now_ns() < end, "hang: %s (%d, want %d)", what, atomic_load(v), want);
    sched_yield();
  }
}

ON_WORKERS static int child_fn(const void *in, void *out)
{
  struct kid *k = *(struct kid *const *)in;
  CHECK(atomic_fetch_add(&k->ran, 1) == 0, "a child task ran twice");
  fill(out, k->out_size, k->seed);
  if (k->code != 0)
    atomic_fetch_add(&k->c->fails, 1);
  atomic_fetch_add(&k->c->runs, 1);
  atomic_fetch_sub(&k->c->in_flight, 1);
  return k->code;
}

/* In a worker: try-submit a child, and wait on it if it has a future. A
 * worker's submit never waits for room: full, it runs the child inline. */
ON_WORKERS static void submit_child(struct ctx *c, struct kid *k)
{
  crew_future *f = NULL;
  atomic_fetch_add(&c->in_flight, 1);
  int rc = crew_submit_timed(c->pool, child_fn, &k, sizeof k, k->out_size,
                             k->with_future ? &f : NULL, 0);
  atomic_store(&k->submit_rc, rc);
  if (rc != 0) {
    atomic_fetch_sub(&c->in_flight, 1);
    return;
  }
  atomic_fetch_add(&c->kids_accepted, 1);
  if (f == NULL)
    return;
  /* Never deadlocks: a queued child is run by this worker itself. */
  atomic_store(&k->wait_rc, crew_future_wait(f));
  unsigned char buf[OUT_MAX];
  memset(buf, UNTOUCHED, sizeof buf);
  int g = crew_future_get(f, buf, k->out_size);
  atomic_store(&k->get_rc, g);
  bool ok = atomic_load(&k->ran) ? holds(buf, k->out_size, k->seed)
                                 : all_bytes(buf, sizeof buf, UNTOUCHED);
  atomic_store(&k->out_ok, ok);
  crew_future_release(f);
}

ON_WORKERS static int task_fn(const void *in, void *out)
{
  struct rec *r = *(struct rec *const *)in;
  struct ctx *c = r->c;
  CHECK(atomic_fetch_add(&r->ran, 1) == 0, "task #%d ran twice",
        (int)(r - c->recs));
  int status = 0;
  switch (r->beh) {
  case B_ERROR:
    status = r->code;
    break;
  case B_SPIN: {
    uint64_t end = now_ns() + (uint64_t)r->spin_us * 1000u;
    while (now_ns() < end)
      ;
    break;
  }
  case B_CHILD:
    submit_child(c, &r->kid);
    break;
  case B_GATE: {
    atomic_fetch_add(&c->gate_entered, 1);
    uint64_t end = now_ns() + 4 * HANG_NS;
    while (!atomic_load(&c->gate_open)) {
      CHECK(now_ns() < end, "gate task never released");
      sched_yield();
    }
    break;
  }
  default:
    break;
  }
  fill(out, r->out_size, r->seed);
  if (status != 0)
    atomic_fetch_add(&c->fails, 1);
  atomic_fetch_add(&c->runs, 1);
  atomic_fetch_sub(&c->in_flight, 1);
  return status;
}

ON_WORKERS static void done_cb(crew_future *f, void *arg)
{
  struct rec *r = arg;
  CHECK(crew_future_done(f), "done callback on an unresolved future");
  atomic_fetch_add(&r->cbs_run, 1);
}

/* A new record, its behaviour read from three bytes. */
static struct rec *new_rec(struct ctx *c, struct reader *rd_, int force_beh)
{
  if (c->nrecs == MAX_RECS)
    return NULL;
  struct rec *r = &c->recs[c->nrecs];
  uint8_t b0 = rd(rd_), b1 = rd(rd_), b2 = rd(rd_);
  r->c = c;
  r->beh = force_beh >= 0 ? force_beh : b0 % 4;
  r->out_size = (size_t)(b0 >> 2) % (OUT_MAX + 1);
  r->seed = (uint32_t)b2 | (uint32_t)c->nrecs << 8;
  if (r->beh == B_ERROR)
    r->code = b1 % 16 == 0 ? CREW_ECANCELED : 1 + b1 % 100;
  r->spin_us = r->beh == B_SPIN ? 1 + b1 % 50u : 0;
  r->kid.c = c;
  r->kid.seed = r->seed ^ 0xabcdu;
  r->kid.with_future = b1 & 1;
  r->kid.code = (b1 & 2) ? 1 + (b1 >> 2) % 50 : 0;
  r->kid.out_size = (size_t)(b1 >> 2) % 9;
  atomic_store(&r->kid.submit_rc, NO_RESULT);
  atomic_store(&r->kid.wait_rc, NO_RESULT);
  atomic_store(&r->kid.get_rc, NO_RESULT);
  c->nrecs++;
  return r;
}

/* While plugged: whether a record's task sits in the queue, not started. */
static bool plugged_queued(const struct rec *r)
{
  return !r->parked && !atomic_load(&r->ran) && !r->cancel_ok;
}

/* While plugged: whether the future has resolved (gates are running). */
static bool plugged_resolved(const struct rec *r)
{
  return !r->parked && !plugged_queued(r);
}

/* A status the future returned as resolved: must fit what happened, and
 * stay the same (it resolves once). */
static void check_final(struct ctx *c, struct rec *r, int rc, const char *op)
{
  int idx = (int)(r - c->recs);
  if (atomic_load(&r->ran))
    CHECK(rc == expected_status(r), "%s of task #%d: %d, want %d", op, idx, rc,
          expected_status(r));
  else
    CHECK(rc == CREW_ECANCELED && (r->cancel_ok || c->cancel_shut),
          "%s of task #%d that never ran: %d (cancel_ok %d cancel_shut %d)", op,
          idx, rc, (int)r->cancel_ok, (int)c->cancel_shut);
  if (r->seen_valid)
    CHECK(rc == r->seen, "%s of task #%d: %d, earlier %d", op, idx, rc,
          r->seen);
  r->seen_valid = true;
  r->seen = rc;
}

static void plug(struct ctx *c);
static void unplug(struct ctx *c);

/* Submit from this thread: how 0 blocks, 1 tries (timed), 2 fire and forget
 * (blocking). force_beh >= 0 fixes the behaviour. */
static void p_op_submit(struct ctx *c, struct reader *rd_, int how,
                        int force_beh)
{
  struct rec *r = new_rec(c, rd_, force_beh);
  uint8_t tb = rd(rd_);
  if (r == NULL)
    return;
  r->has_future = how != 2;
  bool blocking = how != 1;
  uint64_t timeout = (tb & 1) ? small_timeout(tb >> 1) : 0;
  int want = 0; /* NO_RESULT: 0 or CREW_ETIMEDOUT */
  if (c->shut_begun)
    want = CREW_ECLOSED;
  else if (c->plugged) {
    if (c->plug_slots == c->cap) {
      blocking = false; /* would wait for ever */
      want = CREW_ETIMEDOUT;
    }
  } else if (!blocking)
    want = NO_RESULT;
  atomic_fetch_add(&c->in_flight, 1);
  crew_future *f = (crew_future *)(uintptr_t)0x99;
  int rc = blocking
               ? crew_submit(c->pool, task_fn, &r, sizeof r, r->out_size,
                             r->has_future ? &f : NULL)
               : crew_submit_timed(c->pool, task_fn, &r, sizeof r, r->out_size,
                                   r->has_future ? &f : NULL, timeout);
  if (want == NO_RESULT)
    CHECK(rc == 0 || rc == CREW_ETIMEDOUT, "try-submit: %d", rc);
  else
    CHECK(rc == want, "submit (how %d, plugged %d, slots %zu/%zu): %d, want %d",
          how, (int)c->plugged, c->plug_slots, c->cap, rc, want);
  if (rc != 0) {
    atomic_fetch_sub(&c->in_flight, 1);
    CHECK(f == (crew_future *)(uintptr_t)0x99, "failed submit set *future");
    c->nrecs--; /* reuse the record */
    memset(r, 0, sizeof *r);
    return;
  }
  c->main_accepted++;
  if (c->plugged) {
    c->plug_queued++;
    c->plug_slots++;
  }
  if (r->has_future) {
    CHECK(f != NULL, "submit gave no future");
    r->f = f;
  }
}

/* Pick a live future from a byte, or NULL. */
static struct rec *pick(struct ctx *c, uint8_t b)
{
  size_t live = 0;
  for (size_t i = 0; i < c->nrecs; i++)
    live += c->recs[i].f != NULL;
  if (live == 0)
    return NULL;
  size_t k = b % live;
  for (size_t i = 0; i < c->nrecs; i++)
    if (c->recs[i].f != NULL && k-- == 0)
      return &c->recs[i];
  return NULL;
}

static void p_op_cancel(struct ctx *c, uint8_t b)
{
  struct rec *r = pick(c, b);
  if (r == NULL)
    return;
  bool was_queued = c->plugged && plugged_queued(r);
  int rc = crew_future_cancel(r->f);
  if (c->plugged || c->joined || r->cancel_ok)
    CHECK(rc == (was_queued ? 0 : CREW_EBUSY),
          "cancel of task #%d (plugged %d joined %d): %d", (int)(r - c->recs),
          (int)c->plugged, (int)c->joined, rc);
  else
    CHECK(rc == 0 || rc == CREW_EBUSY, "cancel: %d", rc);
  if (rc == 0) {
    r->cancel_ok = true;
    c->cancel_ok_count++;
    atomic_fetch_sub(&c->in_flight, 1);
    if (c->plugged)
      c->plug_queued--;
    CHECK(crew_future_done(r->f), "cancelled future not done");
    check_final(c, r, crew_future_status(r->f), "status after cancel");
    CHECK(atomic_load(&r->cbs_run) == r->cbs_added,
          "cancel ran %d of %d callbacks", atomic_load(&r->cbs_run),
          r->cbs_added);
    CHECK(crew_future_cancel(r->f) == CREW_EBUSY, "second cancel");
  } else if (!c->cancel_shut && !r->cancel_ok) {
    r->busy_open = true; /* running or resolved, never by a cancel */
  }
}

static void p_op_wait_timed(struct ctx *c, uint8_t b, uint8_t t)
{
  struct rec *r = pick(c, b);
  if (r == NULL)
    return;
  int rc = crew_future_wait_timed(r->f, small_timeout(t));
  if (c->plugged && !plugged_resolved(r))
    CHECK(rc == CREW_ETIMEDOUT, "wait_timed on a parked future: %d", rc);
  else if (rc != CREW_ETIMEDOUT || c->plugged || c->joined || r->seen_valid)
    check_final(c, r, rc, "wait_timed");
}

static void p_op_get(struct ctx *c, uint8_t b, uint8_t s)
{
  struct rec *r = pick(c, b);
  if (r == NULL)
    return;
  unsigned char buf[OUT_MAX + 4];
  memset(buf, UNTOUCHED, sizeof buf);
  if (s % 8 == 7) { /* larger than the task's output: at once, even queued */
    int rc = crew_future_get(r->f, buf, r->out_size + 1 + s % 3);
    CHECK(rc == CREW_EINVAL, "get with an oversize out: %d", rc);
    CHECK(all_bytes(buf, sizeof buf, UNTOUCHED), "failed get wrote");
    return;
  }
  size_t k = s % (r->out_size + 1);
  int rc;
  if (s % 8 == 6) { /* get_timed polling */
    rc = crew_future_get_timed(r->f, buf, k, 0);
    if (c->plugged && !plugged_resolved(r)) {
      CHECK(rc == CREW_ETIMEDOUT, "get_timed on a parked future: %d", rc);
      CHECK(all_bytes(buf, sizeof buf, UNTOUCHED), "timed-out get wrote");
      return;
    }
    if (rc == CREW_ETIMEDOUT && !c->joined && !r->seen_valid) {
      CHECK(all_bytes(buf, sizeof buf, UNTOUCHED), "timed-out get wrote");
      return;
    }
  } else {
    if (c->plugged && !plugged_resolved(r))
      unplug(c); /* else it waits for ever */
    rc = crew_future_get(r->f, buf, k);
  }
  check_final(c, r, rc, "get");
  if (atomic_load(&r->ran))
    CHECK(holds(buf, k, r->seed), "get copied wrong output bytes");
  CHECK(all_bytes(buf + (atomic_load(&r->ran) ? k : 0),
                  sizeof buf - (atomic_load(&r->ran) ? k : 0), UNTOUCHED),
        "get wrote past what it should");
}

static void p_op_status(struct ctx *c, uint8_t b)
{
  struct rec *r = pick(c, b);
  if (r == NULL)
    return;
  bool done = crew_future_done(r->f);
  int st = crew_future_status(r->f);
  if (c->plugged || c->joined) {
    bool want = c->joined || plugged_resolved(r);
    CHECK(done == want, "done %d, want %d (plugged %d)", (int)done, (int)want,
          (int)c->plugged);
  }
  if (done) {
    CHECK(st != CREW_EBUSY, "done but status EBUSY");
    check_final(c, r, st, "status");
  } else if (c->plugged) {
    CHECK(st == CREW_EBUSY, "status of a parked future: %d", st);
  } else if (st != CREW_EBUSY) {
    check_final(c, r, st, "status");
  }
}

static void p_op_on_done(struct ctx *c, uint8_t b)
{
  struct rec *r = pick(c, b);
  if (r == NULL)
    return;
  int rc = crew_future_on_done(r->f, done_cb, r);
  CHECK(rc == 0, "on_done: %d", rc);
  r->cbs_added++;
  /* Known resolved with its callbacks run: the new one runs at once. */
  if (c->joined || r->cancel_ok || (c->plugged && plugged_resolved(r)))
    CHECK(atomic_load(&r->cbs_run) == r->cbs_added,
          "on_done on a resolved future did not run at once");
}

static void p_op_release(struct ctx *c, uint8_t b)
{
  struct rec *r = pick(c, b);
  if (r == NULL)
    return;
  crew_future_release(r->f);
  r->f = NULL;
  r->released = true;
}

struct map_in {
  struct ctx *c;
  int code;
  uint32_t seed;
};

struct map_out {
  uint32_t v;
  int hits;
};

ON_WORKERS static int map_fn(const void *in, void *out)
{
  const struct map_in *it = in;
  struct map_out *o = out;
  o->hits++;
  o->v = it->seed * 2654435761u;
  if (it->code != 0)
    atomic_fetch_add(&it->c->fails, 1);
  atomic_fetch_add(&it->c->runs, 1);
  return it->code;
}

static void p_op_map(struct ctx *c, struct reader *rd_)
{
  struct map_in in[MAP_MAX];
  struct map_out out[MAP_MAX];
  size_t n = rd(rd_) % (MAP_MAX + 1);
  int want = 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t b = rd(rd_);
    in[i] = (struct map_in){
        .c = c, .code = b % 4 == 0 ? 1 + b / 4 : 0, .seed = (uint32_t)i * 7u};
    if (want == 0)
      want = in[i].code;
    out[i] = (struct map_out){0};
  }
  if (c->plugged)
    unplug(c); /* the map waits for its items */
  if (c->shut_begun)
    want = CREW_ECLOSED;
  int rc = crew_map(c->pool, map_fn, in, sizeof in[0], out, sizeof out[0], n);
  CHECK(rc == want, "map of %zu: %d, want %d", n, rc, want);
  for (size_t i = 0; i < n; i++) {
    int hits = rc == CREW_ECLOSED ? 0 : 1;
    CHECK(out[i].hits == hits, "map item %zu ran %d times", i, out[i].hits);
    if (hits)
      CHECK(out[i].v == in[i].seed * 2654435761u, "map item %zu output", i);
  }
  if (rc != CREW_ECLOSED)
    c->map_items += n;
}

/* The counters: exact when plugged or joined, bounds otherwise. */
static void p_check_stats(struct ctx *c)
{
  crew_stats st;
  uint64_t kids = (uint64_t)atomic_load(&c->kids_accepted);
  uint64_t known = c->main_accepted + c->map_items;
  CHECK(crew_pool_stats(c->pool, &st) == 0, "stats");
  uint64_t runs = (uint64_t)atomic_load(&c->runs);
  uint64_t fails = (uint64_t)atomic_load(&c->fails);
  kids = (uint64_t)atomic_load(&c->kids_accepted); /* stable when exact */
  if (c->plugged || c->joined) {
    size_t running = c->plugged ? c->workers : 0;
    size_t queued = c->plugged ? c->plug_queued : 0;
    CHECK(st.submitted == known + kids, "submitted %llu, want %llu",
          (unsigned long long)st.submitted, (unsigned long long)(known + kids));
    CHECK(st.completed == runs, "completed %llu, want %llu",
          (unsigned long long)st.completed, (unsigned long long)runs);
    CHECK(st.failed == fails, "failed %llu, want %llu",
          (unsigned long long)st.failed, (unsigned long long)fails);
    CHECK(st.queued == queued && st.running == running,
          "queued %zu running %zu, want %zu %zu", st.queued, st.running, queued,
          running);
    CHECK(st.submitted == st.completed + st.cancelled + st.queued + st.running,
          "counters do not add up");
    CHECK(st.workers == (c->joined ? 0 : c->workers), "workers %zu",
          st.workers);
    if (c->cancel_shut)
      CHECK(st.cancelled >= c->cancel_ok_count, "cancelled %llu < %llu",
            (unsigned long long)st.cancelled,
            (unsigned long long)c->cancel_ok_count);
    else
      CHECK(st.cancelled == c->cancel_ok_count, "cancelled %llu, want %llu",
            (unsigned long long)st.cancelled,
            (unsigned long long)c->cancel_ok_count);
  } else {
    CHECK(st.submitted >= known, "submitted %llu < %llu",
          (unsigned long long)st.submitted, (unsigned long long)known);
    CHECK(st.completed <= runs, "completed %llu > task runs %llu",
          (unsigned long long)st.completed, (unsigned long long)runs);
    CHECK(st.completed <= st.submitted, "completed > submitted");
    CHECK(st.cancelled >= c->cancel_ok_count, "cancelled");
    if (!c->shut_begun)
      CHECK(st.workers == c->workers, "workers %zu of %zu", st.workers,
            c->workers);
  }
}

/* Park every worker in a gate task, once nothing is in flight: the queue is
 * then empty and nothing moves until unplug(). */
static void plug(struct ctx *c)
{
  if (c->plugged || c->shut_begun || c->nrecs + c->workers > MAX_RECS)
    return;
  await_value(&c->in_flight, 0, "tasks in flight before plug");
  atomic_store(&c->gate_open, 0);
  atomic_store(&c->gate_entered, 0);
  for (size_t i = 0; i < c->workers; i++) {
    struct rec *r = &c->recs[c->nrecs++];
    r->c = c;
    r->beh = B_GATE;
    r->seed = (uint32_t)i;
    r->has_future = true;
    r->parked = true;
    atomic_fetch_add(&c->in_flight, 1);
    int rc = crew_submit(c->pool, task_fn, &r, sizeof r, 0, &r->f);
    CHECK(rc == 0, "gate submit: %d", rc);
    c->main_accepted++;
  }
  await_value(&c->gate_entered, (int)c->workers, "gate tasks to start");
  c->plugged = true;
  c->plug_queued = 0;
  c->plug_slots = 0;
}

static void unplug(struct ctx *c)
{
  if (!c->plugged)
    return;
  atomic_store(&c->gate_open, 1);
  c->plugged = false;
  for (size_t i = 0; i < c->nrecs; i++)
    c->recs[i].parked = false;
}

static void p_op_wait_many(struct ctx *c, struct reader *rd_)
{
  uint8_t b = rd(rd_);
  size_t n = 1 + b % 4;
  crew_future *fs[4];
  struct rec *rs[4];
  for (size_t i = 0; i < n; i++) {
    rs[i] = pick(c, rd(rd_));
    if (rs[i] == NULL)
      return;
    fs[i] = rs[i]->f;
  }
  uint64_t t = small_timeout(b >> 3);
  if (b & 4) {
    size_t idx = 99;
    int rc = crew_wait_any(fs, n, t, &idx);
    if (c->plugged || c->joined) {
      size_t first = n;
      for (size_t i = 0; i < n && first == n; i++)
        if (c->joined || plugged_resolved(rs[i]))
          first = i;
      CHECK(rc == (first < n ? 0 : CREW_ETIMEDOUT) &&
                (first == n ? idx == 99 : idx == first),
            "wait_any: %d index %zu, want index %zu", rc, idx, first);
    } else {
      CHECK(rc == 0 || rc == CREW_ETIMEDOUT, "wait_any: %d", rc);
      if (rc == 0)
        CHECK(idx < n && crew_future_done(fs[idx]), "wait_any index %zu", idx);
      else
        CHECK(idx == 99, "timed-out wait_any set the index");
    }
  } else {
    int rc = crew_wait_all(fs, n, t);
    if (c->plugged || c->joined) {
      bool all = true;
      for (size_t i = 0; i < n; i++)
        all = all && (c->joined || plugged_resolved(rs[i]));
      CHECK(rc == (all ? 0 : CREW_ETIMEDOUT), "wait_all: %d", rc);
    } else {
      CHECK(rc == 0 || rc == CREW_ETIMEDOUT, "wait_all: %d", rc);
      for (size_t i = 0; i < n && rc == 0; i++)
        CHECK(crew_future_done(fs[i]), "wait_all returned 0 early");
    }
  }
}

struct shut_arg {
  crew_pool *pool;
  int how;
  int rc;
};

ON_WORKERS static void *shut_thread(void *arg)
{
  struct shut_arg *a = arg;
  a->rc = crew_pool_shutdown(a->pool, a->how);
  return NULL;
}

/* Shut down; while plugged, from a helper thread, so that the tasks still
 * queued when it begins are known exactly. */
static void p_shutdown(struct ctx *c, int how)
{
  bool first = !c->shut_begun;
  if (first)
    c->cancel_shut = how == CREW_CANCEL;
  c->shut_begun = true;
  if (c->plugged) {
    struct shut_arg a = {c->pool, how, NO_RESULT};
    pthread_t th;
    if (pthread_create(&th, NULL, shut_thread, &a) == 0) {
      /* A map of 0 items fails with CREW_ECLOSED once shutdown began. */
      uint64_t end = now_ns() + HANG_NS;
      int rc;
      while ((rc = crew_map(c->pool, map_fn, NULL, 0, NULL, 0, 0)) == 0) {
        CHECK(now_ns() < end, "hang: shutdown did not begin");
        sched_yield();
      }
      CHECK(rc == CREW_ECLOSED, "map(0) probe: %d", rc);
      for (size_t i = 0; i < c->nrecs; i++) {
        struct rec *r = &c->recs[i];
        if (r->c == c && plugged_queued(r)) {
          r->must_cancel = how == CREW_CANCEL;
          r->must_run = how == CREW_DRAIN;
        }
      }
      unplug(c);
      pthread_join(th, NULL);
      CHECK(a.rc == 0, "shutdown: %d", a.rc);
      c->joined = true;
      return;
    }
    unplug(c);
  }
  int rc = crew_pool_shutdown(c->pool, how);
  CHECK(rc == 0, "shutdown(%d): %d", how, rc);
  c->joined = true;
}

static void p_op_shutdown(struct ctx *c, uint8_t b)
{
  if (b % 3 == 2) {
    CHECK(crew_pool_shutdown(c->pool, 7) == CREW_EINVAL, "shutdown(7)");
    return;
  }
  crew_stats before = {0};
  bool again = c->joined;
  if (again)
    CHECK(crew_pool_stats(c->pool, &before) == 0, "stats");
  p_shutdown(c, b % 3 == 0 ? CREW_DRAIN : CREW_CANCEL);
  p_check_stats(c);
  if (again) {
    crew_stats after;
    CHECK(crew_pool_stats(c->pool, &after) == 0, "stats");
    CHECK(memcmp(&before, &after, sizeof before) == 0,
          "a second shutdown changed the counters");
  }
}

static void p_op_bad(struct ctx *c, uint8_t b)
{
  crew_future *f = (crew_future *)(uintptr_t)0x77;
  struct rec *r = pick(c, b >> 4);
  char in[8] = {0};
  size_t idx = 5;
  switch (b % 8) {
  case 0:
    CHECK(crew_submit(NULL, task_fn, in, 0, 0, &f) == CREW_EINVAL, "submit");
    CHECK(crew_submit(c->pool, NULL, in, 0, 0, &f) == CREW_EINVAL, "fn NULL");
    CHECK(crew_submit_timed(c->pool, task_fn, NULL, 8, 0, &f, 0) == CREW_EINVAL,
          "in NULL");
    CHECK(f == (crew_future *)(uintptr_t)0x77, "failed submit set *future");
    break;
  case 1:
    CHECK(crew_future_wait(NULL) == CREW_EINVAL &&
              crew_future_wait_timed(NULL, 0) == CREW_EINVAL &&
              crew_future_get(NULL, NULL, 0) == CREW_EINVAL &&
              crew_future_status(NULL) == CREW_EINVAL &&
              !crew_future_done(NULL) &&
              crew_future_cancel(NULL) == CREW_EINVAL &&
              crew_future_on_done(NULL, done_cb, NULL) == CREW_EINVAL,
          "future calls on NULL");
    crew_future_release(NULL);
    if (r != NULL) {
      CHECK(crew_future_on_done(r->f, NULL, NULL) == CREW_EINVAL, "cb NULL");
      CHECK(crew_future_get(r->f, NULL, 1) == CREW_EINVAL, "get(NULL, 1)");
    }
    break;
  case 2:
    CHECK(crew_pool_stats(NULL, NULL) == CREW_EINVAL &&
              crew_pool_stats(c->pool, NULL) == CREW_EINVAL,
          "stats NULL");
    CHECK(crew_pool_shutdown(NULL, CREW_DRAIN) == CREW_EINVAL, "shutdown");
    CHECK(crew_pool_shutdown(c->pool, -1) == CREW_EINVAL, "shutdown(-1)");
    CHECK(crew_pool_workers(c->pool) == c->workers &&
              crew_pool_workers(NULL) == 0,
          "workers");
    CHECK(crew_pool_latency(c->pool, NULL, NULL) == CREW_EINVAL,
          "latency without latency_stats");
    break;
  case 3: /* arguments are checked before the pool's state */
    CHECK(crew_map(NULL, map_fn, NULL, 0, NULL, 0, 0) == CREW_EINVAL &&
              crew_map(c->pool, NULL, NULL, 0, NULL, 0, 0) == CREW_EINVAL &&
              crew_map(c->pool, map_fn, NULL, 8, NULL, 0, 1) == CREW_EINVAL &&
              crew_map(c->pool, map_fn, NULL, 0, NULL, 8, 1) == CREW_EINVAL &&
              crew_map(c->pool, map_fn, in, 8, NULL, 0, SIZE_MAX / 4) ==
                  CREW_EINVAL,
          "map arguments");
    CHECK(crew_map(c->pool, map_fn, NULL, 0, NULL, 0, 0) ==
              (c->shut_begun ? CREW_ECLOSED : 0),
          "map of 0 items");
    break;
  case 4: {
    crew_config cfg;
    crew_pool *p = (crew_pool *)(uintptr_t)0x55;
    crew_config_init(&cfg);
    cfg.workers = 1;
    cfg.mode = 9;
    CHECK(crew_pool_create(&p, &cfg) == CREW_EINVAL, "mode 9");
    cfg.mode = CREW_THREADS;
    cfg.task_timeout_ns = 1;
    CHECK(crew_pool_create(&p, &cfg) == CREW_EINVAL, "timeout with threads");
    cfg.task_timeout_ns = 0;
    cfg.max_tasks_per_worker = 1;
    CHECK(crew_pool_create(&p, &cfg) == CREW_EINVAL, "recycle with threads");
    cfg.max_tasks_per_worker = 0;
    cfg.workers = CREW_WORKERS_MAX + 1;
    CHECK(crew_pool_create(&p, &cfg) == CREW_EINVAL, "too many workers");
    CHECK(p == (crew_pool *)(uintptr_t)0x55, "failed create set *pool");
    CHECK(crew_pool_create(NULL, &cfg) == CREW_EINVAL, "create(NULL)");
    break;
  }
  case 5:
    if (r == NULL)
      break;
    CHECK(crew_wait_any(NULL, 1, 0, &idx) == CREW_EINVAL &&
              crew_wait_any(&r->f, 0, 0, &idx) == CREW_EINVAL &&
              crew_wait_any(&r->f, 1, 0, NULL) == CREW_EINVAL && idx == 5,
          "wait_any arguments");
    CHECK(crew_wait_all(NULL, 1, 0) == CREW_EINVAL &&
              crew_wait_all(&r->f, 0, 0) == CREW_EINVAL,
          "wait_all arguments");
    {
      crew_future *two[2] = {r->f, NULL};
      CHECK(crew_wait_any(two, 2, 0, &idx) == CREW_EINVAL &&
                crew_wait_all(two, 2, 0) == CREW_EINVAL && idx == 5,
            "NULL entry");
    }
    break;
  default: /* the fire-and-forget and out-size-0 paths, submitted failing */
    if (c->shut_begun)
      CHECK(crew_submit(c->pool, task_fn, in, 0, 0, NULL) == CREW_ECLOSED,
            "submit after shutdown");
    break;
  }
}

/* After destroy: every task resolved, ran at most once and as it should. */
static void p_final(struct ctx *c)
{
  for (size_t i = 0; i < c->nrecs; i++) {
    struct rec *r = &c->recs[i];
    int ran = atomic_load(&r->ran);
    if (r->cancel_ok || r->must_cancel)
      CHECK(!ran, "task #%zu ran after its cancel", i);
    if (!ran)
      CHECK(r->cancel_ok || c->cancel_shut,
            "task #%zu never ran, with no cancel", i);
    if (r->busy_open || r->must_run)
      CHECK(ran, "task #%zu did not run (busy_open %d must_run %d)", i,
            (int)r->busy_open, (int)r->must_run);
    if (ran && r->beh == B_CHILD) {
      struct kid *k = &r->kid;
      int src = atomic_load(&k->submit_rc), kran = atomic_load(&k->ran);
      CHECK(src == 0 || src == CREW_ECLOSED, "child submit: %d", src);
      if (src == 0 && !kran)
        CHECK(c->cancel_shut, "accepted child #%zu never ran", i);
      if (src != 0)
        CHECK(!kran, "refused child ran");
      if (src == 0 && k->with_future) {
        int want = kran ? k->code : CREW_ECANCELED;
        CHECK(atomic_load(&k->wait_rc) == want &&
                  atomic_load(&k->get_rc) == want && atomic_load(&k->out_ok),
              "child #%zu: wait %d get %d out_ok %d, want %d", i,
              atomic_load(&k->wait_rc), atomic_load(&k->get_rc),
              atomic_load(&k->out_ok), want);
      }
    }
    CHECK(atomic_load(&r->cbs_run) == r->cbs_added,
          "task #%zu ran %d of %d callbacks", i, atomic_load(&r->cbs_run),
          r->cbs_added);
    if (r->f == NULL)
      continue;
    CHECK(crew_future_done(r->f), "task #%zu unresolved after destroy", i);
    check_final(c, r, crew_future_wait_timed(r->f, 0), "final wait");
    if (ran && r->out_size > 0) {
      unsigned char buf[OUT_MAX];
      CHECK(crew_future_get(r->f, buf, r->out_size) == r->seen &&
                holds(buf, r->out_size, r->seed),
            "final get of task #%zu", i);
    }
    crew_future_release(r->f);
    r->f = NULL;
  }
}

static void run_pool(struct reader *rd_)
{
  struct ctx *c = &g_ctx;
  memset(c, 0, sizeof *c);
  uint8_t b = rd(rd_);
  c->workers = 1 + b % 4;
  c->cap = 1 + (b >> 2) % 8;
  uint8_t end = rd(rd_); /* how it ends, read first */
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.workers = c->workers;
  cfg.queue_capacity = c->cap;
  cfg.name = "fz";
  int rc = crew_pool_create(&c->pool, &cfg);
  TRACE("B: pool workers %zu cap %zu end %d\n", c->workers, c->cap, end % 3);
  if (rc == CREW_ENOMEM)
    return; /* threads ran out: not crew's fault */
  CHECK(rc == 0, "pool_create: %d", rc);

  for (size_t i = 0; i < POPS_MAX && rd_->n > 0; i++) {
    uint8_t op = rd(rd_);
    TRACE("B%zu: op %d (recs %zu plugged %d queued %zu shut %d joined %d)\n", i,
          op % 16, c->nrecs, (int)c->plugged, c->plug_queued,
          (int)c->shut_begun, (int)c->joined);
    switch (op % 16) {
    case 0:
      p_op_submit(c, rd_, 0, -1);
      break;
    case 1:
      p_op_submit(c, rd_, 1, -1);
      break;
    case 2:
      p_op_submit(c, rd_, 2, -1);
      break;
    case 3:
      p_op_cancel(c, rd(rd_));
      break;
    case 4: {
      uint8_t x = rd(rd_);
      p_op_wait_timed(c, x, rd(rd_));
      break;
    }
    case 5: {
      uint8_t x = rd(rd_);
      p_op_get(c, x, rd(rd_));
      break;
    }
    case 6:
      p_op_status(c, rd(rd_));
      break;
    case 7:
      p_op_on_done(c, rd(rd_));
      break;
    case 8:
      p_op_release(c, rd(rd_));
      break;
    case 9:
      p_op_map(c, rd_);
      break;
    case 10:
      p_check_stats(c);
      break;
    case 11:
      if (c->plugged)
        unplug(c);
      else
        plug(c);
      break;
    case 12:
      p_op_wait_many(c, rd_);
      break;
    case 13:
      p_op_shutdown(c, rd(rd_));
      break;
    case 14:
      p_op_bad(c, rd(rd_));
      break;
    default:
      p_op_submit(c, rd_, op & 0x10 ? 1 : 0, B_CHILD);
      break;
    }
  }

  TRACE("B: end (plugged %d shut %d)\n", (int)c->plugged, (int)c->shut_begun);
  /* The end: shut down (DRAIN or CANCEL) then destroy, or destroy alone. */
  if (!c->shut_begun && end % 3 != 2) {
    p_shutdown(c, end % 3 == 0 ? CREW_DRAIN : CREW_CANCEL);
    p_check_stats(c);
  }
  unplug(c);
  c->shut_begun = true;
  crew_pool_destroy(c->pool);
  c->joined = true;
  p_final(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct reader r = {data, size};
  uint8_t parts = rd(&r);
  if (parts & 1)
    run_queue(&r);
  if (parts & 2)
    run_pool(&r);
  return 0;
}
