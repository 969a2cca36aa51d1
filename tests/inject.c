/* inject.c - see inject.h. */
#include "inject.h"

#include "harness.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

struct inject *inj;

static _Thread_local uint64_t tl_rng; /* 0: not seeded yet */
_Thread_local int tl_in_worker;       /* a worker of a catalog-7 pool */
_Thread_local int tl_parked;          /* parked once already */
_Thread_local int tl_caller;          /* this thread arms the hook */

static uint64_t splitmix(uint64_t x)
{
  x += 0x9e3779b97f4a7c15u;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
  return x ^ (x >> 31);
}

uint64_t rng_next(void)
{
  if (tl_rng == 0) {
    uint64_t idx = atomic_fetch_add(&inj->threads, 1) + 1;
    tl_rng = splitmix(atomic_load(&inj->seed) ^ (idx * 0x2545f4914f6cdd1du));
    if (tl_rng == 0)
      tl_rng = 1;
  }
  tl_rng ^= tl_rng >> 12; /* xorshift64* */
  tl_rng ^= tl_rng << 25;
  tl_rng ^= tl_rng >> 27;
  return tl_rng * 0x2545f4914f6cdd1du;
}

void nap_us(uint64_t us)
{
  struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(us * 1000)};
  nanosleep(&ts, NULL);
}

/* Yield, or sleep 1-50 us, or nothing, as the dice say. */
static void perturb(void)
{
  unsigned roll = (unsigned)(rng_next() % 1000);
  unsigned yields =
      atomic_load_explicit(&inj->yield_permille, memory_order_relaxed);
  unsigned sleeps =
      atomic_load_explicit(&inj->sleep_permille, memory_order_relaxed);
  if (roll < yields)
    sched_yield();
  else if (roll < yields + sleeps)
    nap_us(1 + rng_next() % 50);
  else
    return;
  atomic_fetch_add_explicit(&inj->perturbed, 1, memory_order_relaxed);
}

int hook(enum crew_test_point point, const void *object, void *arg)
{
  struct inject *s = arg;
  if (!atomic_load_explicit(&s->armed, memory_order_acquire))
    return 0;
  if (atomic_load_explicit(&s->perturb_mask, memory_order_relaxed) &
      (1u << point))
    perturb();
  if (point == CREW_TP_PUBLISH) {
    uint64_t max = atomic_load(&s->publish_delay_us);
    if (max > 0)
      nap_us(1 + rng_next() % max);
  }
  if (point == CREW_TP_WAIT && tl_in_worker && !tl_parked &&
      atomic_exchange(&s->park, 0)) {
    /* Catalog 7: between the predicate check and the wait, lock held. */
    tl_parked = 1;
    atomic_fetch_add(&s->parked, 1);
    while (!atomic_load(&s->go))
      sched_yield();
    nap_us(rng_next() % 50);
  }
  if ((int)point == atomic_load_explicit(&s->point, memory_order_relaxed) &&
      (atomic_load(&s->all_procs) || getpid() == atomic_load(&s->self))) {
    long n = atomic_fetch_add(&s->calls, 1) + 1;
    if (n == atomic_load(&s->k)) {
      atomic_store(&s->failed_object, (uintptr_t)object);
      atomic_store(&s->failed_pid, getpid());
      atomic_store(&s->failed_on_caller, tl_caller);
      atomic_fetch_add(&s->failed, 1);
      /* In a child (the fork server): fail 20 ms late, so the parent's
       * requests sent meanwhile meet a failure that comes after them, the
       * same way every run. */
      if (getpid() != atomic_load(&s->self))
        nap_us(20000);
      return CREW_ENOMEM;
    }
  }
  return 0;
}

void inject_setup(void)
{
  harness_settle_threads();
  memset(inj, 0, sizeof *inj);
  atomic_store(&inj->self, getpid());
  const char *env = getenv("CREW_INJECT_SEED");
  uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : now_ns();
  atomic_store(&inj->seed, seed);
}

void inject_teardown(void)
{
  atomic_store(&inj->armed, 0);
}

uint64_t seed_of(void)
{
  return atomic_load(&inj->seed);
}

void arm(void)
{
  tl_caller = 1;
  atomic_store(&inj->armed, 1);
}

void disarm(void)
{
  atomic_store(&inj->armed, 0);
}

int task_inc(const void *in, void *out)
{
  int v;
  memcpy(&v, in, sizeof v);
  v++;
  if (out != NULL)
    memcpy(out, &v, sizeof v);
  return 0;
}

int task_gated(const void *in, void *out)
{
  gate *g = *(gate *const *)in;
  gate_pass(g);
  if (out != NULL)
    memset(out, 7, sizeof(int));
  return 7;
}

int inject_main(Suite *s)
{
  /* Shared, so forked pool workers and the fork server count with us. */
  void *p = mmap(NULL, sizeof *inj, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    return EXIT_FAILURE;
  }
  inj = p;
  crew_test_hook_set(hook, inj);
  return run_suite(s);
}
