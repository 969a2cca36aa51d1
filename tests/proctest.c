/* proctest.c - see proctest.h. */
#include "proctest.h"

#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

crew_queue *gate_q;
crew_queue *box_q;
struct shm *shm;
_Atomic uint32_t *hits;
size_t nhits;

void shared_setup(size_t n)
{
  ck_assert_int_eq(crew_queue_create(&gate_q, 1024, 1, CREW_SHARED), 0);
  ck_assert_int_eq(
      crew_queue_create(&box_q, 4096, sizeof(uint64_t), CREW_SHARED), 0);
  shm = shared_map(sizeof *shm);
  nhits = n > 0 ? n : 1;
  hits = shared_map(nhits * sizeof *hits);
}

void shared_teardown(void)
{
  munmap((void *)hits, nhits * sizeof *hits);
  munmap(shm, sizeof *shm);
  crew_queue_destroy(box_q);
  crew_queue_destroy(gate_q);
}

void reset_hits(size_t n)
{
  for (size_t i = 0; i < n; i++)
    atomic_store_explicit(&hits[i], 0, memory_order_relaxed);
}

void post(uint64_t v)
{
  crew_queue_push(box_q, &v);
}

int gate_wait(void)
{
  char token;
  return crew_queue_pop(gate_q, &token) == 0 ? 0 : 1;
}

void open_gate(size_t n)
{
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(crew_queue_push(gate_q, "t"), 0);
}

uint64_t take(void)
{
  uint64_t v = 0;
  ck_assert_msg(crew_queue_pop_timed(box_q, &v, TAKE_LIMIT) == 0,
                "waited 10 s for a post from a task");
  return v;
}

char sentinel;

crew_config pcfg(size_t workers, size_t capacity)
{
  crew_config cfg = pool_config(CREW_PROCESSES, workers);
  cfg.queue_capacity = capacity;
  return cfg;
}

crew_pool *ppool(size_t workers, size_t capacity)
{
  crew_config cfg = pcfg(workers, capacity);
  return pool_create(&cfg);
}

int add_task(const void *in, void *out)
{
  int64_t x = *(const int64_t *)in;
  if (out != NULL)
    *(int64_t *)out = x + 1;
  atomic_fetch_add(&shm->ran, 1);
  return 0;
}

int status_task(const void *in, void *out)
{
  (void)out;
  return *(const int *)in;
}

int gated_task(const void *in, void *out)
{
  (void)in;
  post((uint64_t)getpid());
  int rc = gate_wait();
  if (out != NULL)
    *(int64_t *)out = getpid();
  atomic_fetch_add(&shm->ran, 1);
  return rc;
}

volatile sig_atomic_t exiting_on_purpose;
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
  return exiting_on_purpose;
}

int crash_task(const void *in, void *out)
{
  (void)out;
  switch (*(const int *)in) {
  case CRASH_SEGV:
    raise(SIGSEGV);
    break;
  case CRASH_ABORT:
    abort();
  case CRASH_EXIT3:
    _exit(3);
  case CRASH_EXIT0:
    exiting_on_purpose = 1;
    exit(0);
  case CRASH_KILLED:
    post((uint64_t)getpid());
    for (;;)
      pause();
  default:
    break;
  }
  return 99;
}

crew_future *submit_add(crew_pool *pool, int64_t x)
{
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, add_task, &x, sizeof x, sizeof x, &f), 0);
  ck_assert_ptr_nonnull(f);
  return f;
}

void expect_add(crew_future *f, int64_t x)
{
  int64_t out = -1;
  ck_assert_int_eq(crew_future_get(f, &out, sizeof out), 0);
  ck_assert_int_eq(out, x + 1);
  crew_future_release(f);
}

void run_adds(crew_pool *pool, size_t n)
{
  crew_future **fs = calloc(n, sizeof *fs);
  ck_assert_ptr_nonnull(fs);
  for (size_t i = 0; i < n; i++)
    quiet_assert_int_eq(crew_submit(pool, add_task, &(int64_t){(int64_t)i},
                                    sizeof(int64_t), sizeof(int64_t), &fs[i]),
                        0);
  for (size_t i = 0; i < n; i++) {
    int64_t out = -1;
    quiet_assert_int_eq(crew_future_get(fs[i], &out, sizeof out), 0);
    quiet_assert_int_eq(out, (int64_t)i + 1);
    crew_future_release(fs[i]);
  }
  free(fs);
}

size_t hits_not_once(size_t n)
{
  size_t wrong = 0;
  for (size_t i = 0; i < n; i++)
    wrong += atomic_load(&hits[i]) != 1;
  return wrong;
}

int fail_item_task(const void *in, void *out)
{
  const struct fail_item *it = in;
  if (it->crash)
    raise(SIGSEGV);
  *(int64_t *)out = it->x * 3;
  atomic_fetch_add(&hits[it->x], 1);
  return it->status;
}

struct fail_item *fail_items(size_t n, int64_t **out)
{
  struct fail_item *items = calloc(n, sizeof *items);
  *out = malloc(n * sizeof **out);
  ck_assert(items != NULL && *out != NULL);
  for (size_t i = 0; i < n; i++) {
    items[i].x = (int64_t)i;
    (*out)[i] = -1;
  }
  return items;
}

void wait_state(pid_t pid, char state)
{
  for (int i = 0; i < 5000; i++) {
    if (proc_state(pid) == state)
      return;
    sched_yield();
    if (i > 100)
      pause_ms(1);
  }
  ck_abort_msg("process %d never reached state %c (it is in %c)", (int)pid,
               state, proc_state(pid));
}

void wait_sleeping(pid_t pid)
{
  wait_state(pid, 'S');
}

crew_config flt_cfg(size_t workers)
{
  crew_config cfg = pcfg(workers, 0);
  cfg.name = "flt";
  return cfg;
}

int counted_task(const void *in, void *out)
{
  const struct counted_in *c = in;
  atomic_fetch_add(&shm->runs[c->id % NRUNS], 1);
  if (out != NULL)
    *(int64_t *)out = 2 * c->x + 1;
  return 0;
}

crew_future *submit_counted(crew_pool *pool, int64_t x, uint32_t id)
{
  struct counted_in c = {.x = x, .id = id};
  crew_future *f = NULL;
  ck_assert_int_eq(
      crew_submit(pool, counted_task, &c, sizeof c, sizeof(int64_t), &f), 0);
  return f;
}

void expect_counted(crew_future *f, int64_t x, uint32_t id)
{
  int64_t out = -1;
  ck_assert_int_eq(crew_future_get(f, &out, sizeof out), 0);
  ck_assert_int_eq(out, 2 * x + 1);
  ck_assert_uint_eq(atomic_load(&shm->runs[id]), 1);
  crew_future_release(f);
}

int triple_item(const void *in, void *out)
{
  int64_t x = *(const int64_t *)in;
  atomic_fetch_add(&shm->runs[x % NRUNS], 1);
  *(int64_t *)out = 3 * x;
  return 0;
}
