/* jobs.c - see jobs.h. */
#include "jobs.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

void *tag_of(size_t i)
{
  return (void *)(uintptr_t)(i + 1);
}

size_t index_of(const void *tag)
{
  return (size_t)(uintptr_t)tag - 1;
}

bool readable(int fd, int timeout_ms)
{
  struct pollfd p = {.fd = fd, .events = POLLIN};
  int r;
  do
    r = poll(&p, 1, timeout_ms);
  while (r < 0 && errno == EINTR);
  quiet_assert_msg(r >= 0, "poll failed: errno %d", errno);
  return r == 1 && (p.revents & POLLIN) != 0;
}

uint64_t load(_Atomic uint64_t *p)
{
  return atomic_load(p);
}

void sleep_at_least(uint64_t ns)
{
  uint64_t t0 = now_ns();
  for (uint64_t t = t0; t - t0 < ns; t = now_ns()) {
    uint64_t left = ns - (t - t0);
    struct timespec ts = {.tv_sec = (time_t)(left / 1000000000u),
                          .tv_nsec = (long)(left % 1000000000u)};
    nanosleep(&ts, NULL);
  }
}

void shared_gate_init(gate *g)
{
  ck_assert_int_eq(crew_queue_create(&g->tokens, 1024, 1, CREW_SHARED), 0);
}

void shared_signal_init(signal_box *s)
{
  ck_assert_int_eq(crew_queue_create(&s->posts, 4096, 1, CREW_SHARED), 0);
}

void mode_gate_init(gate *g, bool shared)
{
  if (shared)
    shared_gate_init(g);
  else
    gate_init(g);
}

void mode_signal_init(signal_box *s, bool shared)
{
  if (shared)
    shared_signal_init(s);
  else
    signal_init(s);
}

_Atomic uint64_t *counter_new(bool shared)
{
  _Atomic uint64_t *c = shared ? shared_map(sizeof *c) : calloc(1, sizeof *c);
  ck_assert_ptr_nonnull(c);
  return c;
}

void counter_free(_Atomic uint64_t *c, bool shared)
{
  if (shared)
    munmap(c, sizeof *c);
  else
    free(c);
}

crew_channel *make_channel(void)
{
  crew_channel *ch = NULL;
  ck_assert_int_eq(crew_channel_create(&ch), 0);
  ck_assert_ptr_nonnull(ch);
  return ch;
}

struct hooks *hooks_g;

_Thread_local int64_t tls_seq = -1;

void note_task(uint64_t v, int status)
{
  struct hooks *h = hooks_g;
  if (h == NULL)
    return;
  if (tls_seq < 0) {
    atomic_fetch_add(&h->unhooked, 1);
    return;
  }
  struct hook_rec *r = &h->rec[tls_seq];
  r->task = v;
  r->task_status = status;
  r->task_thread = pthread_self();
  r->task_pid = getpid();
  r->task_seen = 1;
}

int job_fn(const void *in, void *out)
{
  struct job j;
  memcpy(&j, in, sizeof j);
  if (j.started != NULL && crew_queue_push(j.started, "s") != 0)
    return 90;
  char token;
  if (j.gate != NULL && crew_queue_pop(j.gate, &token) != 0)
    return 91;
  if (j.sleep_ns > 0)
    sleep_at_least(j.sleep_ns);
  if (j.ran != NULL)
    atomic_fetch_add_explicit(j.ran, 1, memory_order_relaxed);
  note_task(j.v, j.status);
  if (out != NULL) {
    uint64_t r = j.v * 3;
    memcpy(out, &r, sizeof r);
  }
  return j.status;
}

int triple_fn(const void *in, void *out)
{
  uint64_t v;
  memcpy(&v, in, sizeof v);
  if (out != NULL) {
    uint64_t r = v * 3;
    memcpy(out, &r, sizeof r);
  }
  return 0;
}

int spin_fn(const void *in, void *out)
{
  struct spin_in s;
  memcpy(&s, in, sizeof s);
  uint64_t t0 = now_ns();
  while (now_ns() - t0 < s.spin_ns)
    ;
  memcpy(out, &s.index, sizeof s.index);
  return 0;
}

crew_future *submit_job(crew_pool *pool, struct job j, size_t out_size)
{
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, job_fn, &j, sizeof j, out_size, &f), 0);
  ck_assert_ptr_nonnull(f);
  return f;
}

void post_cb(crew_future *f, void *arg)
{
  (void)f;
  signal_box *s = arg;
  quiet_assert_int_eq(crew_queue_push(s->posts, "m"), 0);
}

void watch_marked(crew_channel *ch, crew_future *f, void *tag, signal_box *s)
{
  ck_assert_int_eq(crew_channel_watch(ch, f, tag), 0);
  ck_assert_int_eq(crew_future_on_done(f, post_cb, s), 0);
}
