/* catalog.c - see catalog.h. */
#include "catalog.h"

#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

void spin_ns(uint64_t ns)
{
  uint64_t until = now_ns() + ns;
  while (now_ns() < until)
    ;
}

void pause_us(long us)
{
  struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = us % 1000000 * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

size_t count_threads(void)
{
  DIR *d = opendir("/proc/self/task");
  quiet_assert_ptr_nonnull(d);
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n;
}

void expect_threads(size_t want)
{
  uint64_t t0 = now_ns();
  size_t n;
  while ((n = count_threads()) != want && now_ns() - t0 < 2000 * MS)
    pause_us(1000);
  quiet_assert_msg(n == want, "%zu threads, expected %zu", n, want);
}

crew_queue *make_queue(size_t capacity, size_t item_size, unsigned flags)
{
  crew_queue *q = NULL;
  quiet_assert_int_eq(crew_queue_create(&q, capacity, item_size, flags), 0);
  return q;
}

TCase *catalog_tcase(Suite *s, const char *name, double timeout_s)
{
  TCase *tc = tcase_create(name);
  harness_tcase(tc, timeout_s * (double)scaled(1));
  suite_add_tcase(s, tc);
  return tc;
}

int gate_task(const void *in, void *out)
{
  (void)out;
  gate_pass(*(gate *const *)in);
  return 0;
}

int noop_task(const void *in, void *out)
{
  (void)in;
  (void)out;
  return 0;
}

int count_task(const void *in, void *out)
{
  _Atomic uint32_t *ran = *(_Atomic uint32_t *const *)in;
  uint32_t v = atomic_fetch_add(ran, 1) + 1;
  if (out != NULL)
    memcpy(out, &v, sizeof v);
  return 0;
}

void *bg_shutdown_main(void *arg)
{
  struct bg_shutdown *b = arg;
  signal_post(b->ready);
  b->rc = crew_pool_shutdown(b->pool, b->how);
  signal_post(b->done);
  return NULL;
}

crew_pool *make_proc_pool(size_t workers, uint64_t task_timeout_ns,
                          size_t max_out)
{
  crew_config cfg = pool_config(CREW_PROCESSES, workers);
  cfg.task_timeout_ns = task_timeout_ns;
  cfg.max_out_size = max_out;
  cfg.max_in_size = max_out;
  return pool_create(&cfg);
}
