/* hygiene.c - see hygiene.h. */
#include "hygiene.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <time.h>

int wait_child(pid_t pid, uint64_t timeout_ns)
{
  uint64_t deadline = now_ns() + timeout_ns;
  for (;;) {
    int status;
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid)
      return status;
    ck_assert_msg(w == 0 || errno == EINTR, "waitpid: %s", strerror(errno));
    if (now_ns() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      ck_abort_msg("child %d still running after %llu ms: killed", (int)pid,
                   (unsigned long long)(timeout_ns / MS));
    }
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
}

int in_child(int (*fn)(void *), void *arg)
{
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0)
    _exit(fn(arg));
  return wait_child(pid, 20000 * MS);
}

crew_pool *pool_with(int mode, size_t workers, size_t capacity,
                     uint64_t task_timeout_ns, uint64_t max_tasks,
                     const char *name)
{
  crew_config cfg = pool_config(mode, workers);
  cfg.queue_capacity = capacity;
  cfg.task_timeout_ns = task_timeout_ns;
  cfg.max_tasks_per_worker = max_tasks;
  cfg.name = name;
  return pool_create(&cfg);
}

void xgate_init(struct xgate *g)
{
  ck_assert_int_eq(crew_queue_create(&g->tokens, 256, 1, CREW_SHARED), 0);
  ck_assert_int_eq(crew_queue_create(&g->posts, 256, sizeof(int), CREW_SHARED),
                   0);
}

void xgate_fini(struct xgate *g)
{
  crew_queue_destroy(g->tokens);
  crew_queue_destroy(g->posts);
}

void xgate_open(struct xgate *g, size_t n)
{
  for (size_t i = 0; i < n; i++)
    ck_assert_int_eq(crew_queue_push(g->tokens, "t"), 0);
}

int xgate_wait(struct xgate *g, size_t n)
{
  int v = 0;
  for (size_t i = 0; i < n; i++)
    ck_assert_msg(crew_queue_pop_timed(g->posts, &v, 10000 * MS) == 0,
                  "waited 10 s for post %zu of %zu", i + 1, n);
  return v;
}

int task_gated(const void *in, void *out)
{
  const struct gated_in *g = in;
  int pid = (int)getpid();
  if (crew_queue_push(g->gate.posts, &pid) != 0)
    return 100;
  char t;
  if (crew_queue_pop(g->gate.tokens, &t) != 0)
    return 101;
  if (out != NULL)
    *(int *)out = g->value * 2;
  return g->value;
}

int task_value(const void *in, void *out)
{
  int v = *(const int *)in;
  if (out != NULL)
    *(int *)out = 2 * v;
  return v;
}

int task_tgated(const void *in, void *out)
{
  const struct tgated_in *t = in;
  signal_post(t->started);
  gate_pass(t->g);
  if (out != NULL)
    *(int *)out = t->value * 2;
  return t->value;
}

bool has_cloexec(int fd)
{
  int flags = fcntl(fd, F_GETFD);
  return flags >= 0 && (flags & FD_CLOEXEC);
}

int task_signal_state(const void *in, void *out)
{
  (void)in;
  struct sigstate *s = out;
  memset(s, 0, sizeof *s);
  for (int sig = 1; sig < NSIG && sig <= 64; sig++) {
    struct sigaction sa;
    if (sigaction(sig, NULL, &sa) != 0)
      continue; /* glibc's reserved signals */
    if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL)
      continue;
    if (s->not_default++ == 0)
      s->first_not_default = sig;
  }
  sigset_t mask;
  pthread_sigmask(SIG_SETMASK, NULL, &mask);
  for (int sig = 1; sig < NSIG && sig <= 64; sig++)
    if (sigismember(&mask, sig) == 1)
      s->blocked |= 1ull << (sig - 1);
  return 0;
}

atomic_int signals_seen;

void on_signal_count(int sig)
{
  (void)sig;
  atomic_fetch_add(&signals_seen, 1);
}

uint64_t worker_thread_mask(void)
{
  uint64_t m = 0;
  for (int sig = 1; sig <= 64 && sig < NSIG; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP || sig == SIGSEGV || sig == SIGBUS ||
        sig == SIGFPE || sig == SIGILL || sig == SIGTRAP || sig == SIGSYS ||
        sig == SIGABRT || (sig > 31 && sig < SIGRTMIN))
      continue;
    m |= 1ull << (sig - 1);
  }
  return m;
}

int task_child_waits(const void *in, void *out)
{
  (void)out;
  const struct xgate *g = in;
  char t;
  return crew_queue_pop(g->tokens, &t) == 0 ? 7 : 100;
}
