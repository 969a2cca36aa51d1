/* testutil.c - see testutil.h. */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

void gate_init(gate *g)
{
  ck_assert_int_eq(crew_queue_create(&g->tokens, 1024, 1, 0), 0);
}

void gate_pass(gate *g)
{
  char token;
  ck_assert_int_eq(crew_queue_pop(g->tokens, &token), 0);
}

void gate_open(gate *g, size_t n)
{
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(crew_queue_push(g->tokens, "t"), 0);
}

void gate_fini(gate *g)
{
  crew_queue_destroy(g->tokens);
}

void signal_init(signal_box *s)
{
  ck_assert_int_eq(crew_queue_create(&s->posts, 1 << 16, 1, 0), 0);
}

void signal_post(signal_box *s)
{
  ck_assert_int_eq(crew_queue_push(s->posts, "p"), 0);
}

void signal_wait(signal_box *s, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    char post;
    ck_assert_msg(crew_queue_pop_timed(s->posts, &post, 10000 * MS) == 0,
                  "waited 10 s for post %zu of %zu", i + 1, n);
  }
}

int signal_try(signal_box *s, uint64_t timeout_ns)
{
  char post;
  return crew_queue_pop_timed(s->posts, &post, timeout_ns);
}

void signal_fini(signal_box *s)
{
  crew_queue_destroy(s->posts);
}

void start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
  quiet_assert_int_eq(pthread_create(t, NULL, fn, arg), 0);
}

void join_thread(pthread_t t)
{
  quiet_assert_int_eq(pthread_join(t, NULL), 0);
}

uint64_t next_rand(uint64_t *state)
{
  uint64_t x = *state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *state = x;
  return x;
}

uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

size_t scaled(size_t n)
{
  const char *s = getenv("CREW_STRESS_SCALE");
  long k = s != NULL ? strtol(s, NULL, 10) : 1;
  return n * (size_t)(k > 0 ? k : 1);
}

void *shared_map(size_t size)
{
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
  ck_assert_msg(p != MAP_FAILED, "mmap of %zu shared bytes failed", size);
  return p;
}

crew_config pool_config(int mode, size_t workers)
{
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.mode = mode;
  cfg.workers = workers;
  return cfg;
}

crew_pool *pool_create(const crew_config *cfg)
{
  crew_pool *pool = NULL;
  ck_assert_int_eq(crew_pool_create(&pool, cfg), 0);
  ck_assert_ptr_nonnull(pool);
  return pool;
}

crew_pool *make_pool(size_t workers, size_t capacity)
{
  crew_config cfg = pool_config(CREW_THREADS, workers);
  cfg.queue_capacity = capacity;
  return pool_create(&cfg);
}

int run_suite(Suite *s)
{
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

void pause_ms(unsigned ms)
{
  struct timespec ts = {.tv_sec = ms / 1000,
                        .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

long read_text(const char *path, char *buf, size_t size)
{
  FILE *f = fopen(path, "re");
  if (f == NULL)
    return -1;
  size_t n = fread(buf, 1, size - 1, f);
  fclose(f);
  buf[n] = '\0';
  return (long)n;
}

char proc_state(pid_t pid)
{
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  char buf[512];
  if (read_text(path, buf, sizeof buf) < 0)
    return 0;
  const char *p = strrchr(buf, ')');
  return p != NULL && p[1] == ' ' ? p[2] : 0;
}

bool proc_gone(pid_t pid)
{
  char st = proc_state(pid);
  return st == 0 || st == 'Z' || st == 'X';
}

crew_stats pool_stats(crew_pool *pool)
{
  crew_stats st;
  memset(&st, 0xab, sizeof st);
  ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
  return st;
}

void assert_pool_settled(crew_pool *pool)
{
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.queued, 0);
  ck_assert_uint_eq(st.running, 0);
  ck_assert_uint_eq(st.submitted, st.completed + st.cancelled + st.crashed +
                                      st.deadline_killed);
}

void wait_pool_workers(crew_pool *pool, size_t n)
{
  crew_stats st = {0};
  for (int i = 0; i < 2000; i++) {
    st = pool_stats(pool);
    if (st.workers == n)
      return;
    pause_ms(5);
  }
  ck_abort_msg("the pool has %zu workers after 10 s, not %zu", st.workers, n);
}

TCase *timed_tcase(Suite *s, const char *name, double timeout_s)
{
  TCase *tc = tcase_create(name);
  tcase_set_timeout(tc, timeout_s);
  suite_add_tcase(s, tc);
  return tc;
}
