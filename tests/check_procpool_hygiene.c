/*
 * check_procpool_hygiene.c - what a process pool leaves to the rest of the
 * program: no child after destroy, no orphan when the parent is killed, the
 * descriptors workers get, an application's SIGCHLD handler left alone,
 * code the workers lack refused, and a forked child that cannot use the
 * pool.
 *
 * Tasks run in other processes: they talk to the test through the shared
 * state of proctest.h (a gate, a box of posts, counters), made before the
 * pool by shared_setup().
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* pthread_getname_np */
#endif

#include "proctest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ============================================================ hygiene */

START_TEST(no_child_is_left_after_destroy)
{
  shared_setup(0);
  crew_config cfg = pcfg(2, 0);
  cfg.max_tasks_per_worker = 3;
  crew_pool *pool = pool_create(&cfg);
  run_adds(pool, 20);
  int kind = CRASH_SEGV;
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, crash_task, &kind, sizeof kind, 0, &f), 0);
  ck_assert_int_eq(crew_future_wait(f), CREW_ECRASHED);
  crew_future_release(f);
  run_adds(pool, 10);
  crew_pool_destroy(pool);
  int wstatus;
  errno = 0;
  ck_assert_int_eq(waitpid(-1, &wstatus, WNOHANG), -1);
  ck_assert_int_eq(errno, ECHILD);
  shared_teardown();
}
END_TEST

/* Posts (pid << 32 | parent pid), then blocks until killed. */
static int report_and_block_task(const void *in, void *out)
{
  (void)in;
  (void)out;
  post((uint64_t)getpid() << 32 | (uint64_t)getppid());
  for (;;)
    pause();
  return 0;
}

START_TEST(workers_die_with_a_killed_parent)
{
  shared_setup(0);
  /* Orphans come to us, so that we can reap what dies. */
  ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  pid_t parent = fork();
  ck_assert_int_ge(parent, 0);
  if (parent == 0) {
    crew_config cfg = pcfg(2, 0);
    crew_pool *pool = NULL;
    if (crew_pool_create(&pool, &cfg) != 0)
      _exit(1);
    for (int i = 0; i < 2; i++)
      if (crew_submit(pool, report_and_block_task, NULL, 0, 0, NULL) != 0)
        _exit(2);
    for (;;)
      pause();
  }
  pid_t pids[3]; /* two workers, then the fork server */
  for (int i = 0; i < 2; i++) {
    uint64_t v = take();
    pids[i] = (pid_t)(v >> 32);
    pid_t server = (pid_t)(v & 0xffffffffu);
    if (i == 0)
      pids[2] = server;
    ck_assert_int_eq(server, pids[2]);
  }
  ck_assert_int_ne(pids[0], pids[1]);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_ne(pids[i], parent);
    ck_assert_int_ne(pids[i], getpid());
    ck_assert(!proc_gone(pids[i]));
  }
  ck_assert_int_eq(kill(parent, SIGKILL), 0);
  uint64_t t0 = now_ns();
  int wstatus = 0;
  ck_assert_int_eq(waitpid(parent, &wstatus, 0), parent);
  ck_assert(WIFSIGNALED(wstatus));
  bool gone = false;
  while (!gone && now_ns() - t0 < 1000 * MS) {
    while (waitpid(-1, NULL, WNOHANG) > 0)
      ;
    gone = proc_gone(pids[0]) && proc_gone(pids[1]) && proc_gone(pids[2]);
    if (!gone)
      pause_ms(2);
  }
  ck_assert_msg(gone, "after 1 s: worker %d %s, worker %d %s, server %d %s",
                (int)pids[0], proc_gone(pids[0]) ? "gone" : "alive",
                (int)pids[1], proc_gone(pids[1]) ? "gone" : "alive",
                (int)pids[2], proc_gone(pids[2]) ? "gone" : "alive");
  /* Reap what came to us. */
  for (int i = 0; i < 500; i++) {
    pid_t r = waitpid(-1, NULL, WNOHANG);
    if (r < 0)
      break;
    if (r == 0)
      pause_ms(2);
  }
  shared_teardown();
}
END_TEST

/* The open descriptors of this process, sorted. */
struct fdset {
  int32_t n;
  int32_t fds[255];
};

/* 0, or 1 if /proc/self/fd cannot be listed or has too many entries. */
static int list_fds(struct fdset *s)
{
  s->n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL)
    return 1;
  int self = dirfd(d);
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    int fd = atoi(e->d_name);
    if (fd == self)
      continue;
    if (s->n == 255) {
      rc = 1;
      break;
    }
    int i = s->n++;
    while (i > 0 && s->fds[i - 1] > fd) { /* insertion sort */
      s->fds[i] = s->fds[i - 1];
      i--;
    }
    s->fds[i] = fd;
  }
  closedir(d);
  return rc;
}

static int list_fds_task(const void *in, void *out)
{
  (void)in;
  return list_fds(out);
}

static void fds_str(const struct fdset *s, char *buf, size_t size)
{
  size_t at = 0;
  buf[0] = '\0';
  for (int i = 0; i < s->n && at + 12 < size; i++)
    at += (size_t)snprintf(buf + at, size - at, "%d ", (int)s->fds[i]);
}

static void expect_worker_fds(crew_pool *pool, const struct fdset *want)
{
  struct fdset got;
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, list_fds_task, NULL, 0, sizeof got, &f),
                   0);
  ck_assert_int_eq(crew_future_get(f, &got, sizeof got), 0);
  crew_future_release(f);
  char a[1024], b[1024];
  fds_str(&got, a, sizeof a);
  fds_str(want, b, sizeof b);
  ck_assert_msg(got.n == want->n &&
                    memcmp(got.fds, want->fds,
                           (size_t)want->n * sizeof want->fds[0]) == 0,
                "worker has { %s}, the test had { %s} at create", a, b);
}

START_TEST(workers_get_the_descriptors_of_create_and_no_crew_one)
{
  shared_setup(0);
  int extra[6];
  int p1[2], p2[2];
  extra[0] = open("/dev/null", O_RDONLY);
  extra[1] = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ck_assert_int_eq(pipe(p1), 0);
  ck_assert_int_eq(pipe2(p2, O_CLOEXEC), 0);
  extra[2] = p1[0];
  extra[3] = p1[1];
  extra[4] = p2[0];
  extra[5] = p2[1];
  for (int i = 0; i < 6; i++)
    ck_assert_int_ge(extra[i], 0);
  struct fdset before, after;
  ck_assert_int_eq(list_fds(&before), 0);
  crew_pool *pool = ppool(1, 0);
  ck_assert_int_eq(list_fds(&after), 0);

  /* crew's own descriptors here are close-on-exec. */
  size_t added = 0;
  for (int i = 0; i < after.n; i++) {
    bool old = false;
    for (int j = 0; j < before.n; j++)
      old |= before.fds[j] == after.fds[i];
    if (old)
      continue;
    added++;
    int flags = fcntl(after.fds[i], F_GETFD);
    ck_assert_int_ge(flags, 0);
    ck_assert_msg(flags & FD_CLOEXEC, "crew's descriptor %d is not cloexec",
                  (int)after.fds[i]);
  }
  ck_assert_uint_ge((uintmax_t)after.n, (uintmax_t)before.n);
  ck_assert_uint_eq(added, (size_t)(after.n - before.n));

  /* A worker has exactly what we had at create; so does a replacement. */
  expect_worker_fds(pool, &before);
  int kind = CRASH_ABORT;
  crew_future *f = NULL;
  ck_assert_int_eq(crew_submit(pool, crash_task, &kind, sizeof kind, 0, &f), 0);
  ck_assert_int_eq(crew_future_wait(f), CREW_ECRASHED);
  crew_future_release(f);
  int later = open("/dev/null", O_RDONLY); /* after create: not inherited */
  ck_assert_int_ge(later, 0);
  expect_worker_fds(pool, &before);
  ck_assert_uint_eq(pool_stats(pool).restarted, 1);
  crew_pool_destroy(pool);
  close(later);
  for (int i = 0; i < 6; i++)
    close(extra[i]);
  shared_teardown();
}
END_TEST

/* The application's SIGCHLD handler writes each si_pid to this pipe. */
static int chld_pipe[2] = {-1, -1};

static void on_sigchld(int sig, siginfo_t *info, void *ctx)
{
  (void)sig;
  (void)ctx;
  int saved = errno;
  int32_t pid = (int32_t)info->si_pid;
  ssize_t n = write(chld_pipe[1], &pid, sizeof pid);
  (void)n;
  errno = saved;
}

/* Read the handler's reports until pid shows up (10 s at most). */
static bool handler_saw(pid_t pid)
{
  uint64_t end = now_ns() + TAKE_LIMIT;
  while (now_ns() < end) {
    struct pollfd p = {.fd = chld_pipe[0], .events = POLLIN};
    int ready = poll(&p, 1, 100);
    if (ready < 0 && errno != EINTR)
      return false;
    if (ready <= 0)
      continue;
    int32_t got;
    ssize_t n = read(chld_pipe[0], &got, sizeof got);
    if (n == (ssize_t)sizeof got && got == (int32_t)pid)
      return true;
  }
  return false;
}

/* out: the parent pid (the fork server). */
static int ppid_task(const void *in, void *out)
{
  (void)in;
  *(int64_t *)out = getppid();
  return 0;
}

START_TEST(an_application_sigchld_handler_is_left_alone)
{
  shared_setup(0);
  ck_assert_int_eq(pipe2(chld_pipe, O_CLOEXEC | O_NONBLOCK), 0);
  struct sigaction sa, old;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigchld;
  sa.sa_flags = SA_SIGINFO; /* no SA_RESTART: crew must bear EINTR */
  sigemptyset(&sa.sa_mask);
  ck_assert_int_eq(sigaction(SIGCHLD, &sa, NULL), 0);

  crew_pool *pool = ppool(2, 0);
  crew_future *f = NULL;
  int64_t server = 0;
  ck_assert_int_eq(crew_submit(pool, ppid_task, NULL, 0, sizeof server, &f), 0);
  ck_assert_int_eq(crew_future_get(f, &server, sizeof server), 0);
  crew_future_release(f);
  ck_assert_int_ne(server, getpid());
  run_adds(pool, 20);
  int kind = CRASH_SEGV;
  ck_assert_int_eq(crew_submit(pool, crash_task, &kind, sizeof kind, 0, &f), 0);
  ck_assert_int_eq(crew_future_wait(f), CREW_ECRASHED);
  crew_future_release(f);
  run_adds(pool, 20);

  /* Our own child: the handler sees it, and we reap it ourselves. */
  pid_t child = fork();
  ck_assert_int_ge(child, 0);
  if (child == 0)
    _exit(7);
  ck_assert(handler_saw(child));
  int wstatus = 0;
  pid_t r;
  while ((r = waitpid(child, &wstatus, 0)) < 0 && errno == EINTR)
    ;
  ck_assert_int_eq(r, child);
  ck_assert(WIFEXITED(wstatus));
  ck_assert_int_eq(WEXITSTATUS(wstatus), 7);

  ck_assert_int_eq(sigaction(SIGCHLD, NULL, &old), 0);
  ck_assert(old.sa_flags & SA_SIGINFO);
  ck_assert(old.sa_sigaction == on_sigchld);
  run_adds(pool, 20);
  crew_pool_destroy(pool);
  /* The fork server was our child: its end reached the handler too. */
  ck_assert(handler_saw((pid_t)server));
  ck_assert_int_eq(sigaction(SIGCHLD, NULL, &old), 0);
  ck_assert(old.sa_sigaction == on_sigchld);
  errno = 0;
  ck_assert_int_eq(waitpid(-1, &wstatus, WNOHANG), -1);
  ck_assert_int_eq(errno, ECHILD);
  signal(SIGCHLD, SIG_DFL);
  close(chld_pipe[0]);
  close(chld_pipe[1]);
  shared_teardown();
}
END_TEST

START_TEST(code_the_workers_lack_is_refused)
{
  shared_setup(0);
  crew_pool *pool = ppool(2, 0);
  unsigned char *heap = malloc(64);
  ck_assert_ptr_nonnull(heap);
  memset(heap, 0xc3, 64); /* ret, were it ever run */
  crew_fn bogus[2] = {(crew_fn)(uintptr_t)0x1000,
                      (crew_fn)(uintptr_t)(void *)heap};
  for (int i = 0; i < 2; i++) {
    int64_t x = 1, in[4] = {1, 2, 3, 4}, out[4];
    crew_future *f = NO_FUTURE;
    ck_assert_int_eq(crew_submit(pool, bogus[i], &x, sizeof x, 0, &f),
                     CREW_EINVAL);
    ck_assert_ptr_eq(f, NO_FUTURE);
    ck_assert_int_eq(crew_submit(pool, bogus[i], &x, sizeof x, 0, NULL),
                     CREW_EINVAL);
    ck_assert_int_eq(crew_submit_timed(pool, bogus[i], &x, sizeof x, 0, &f, 0),
                     CREW_EINVAL);
    ck_assert_int_eq(
        crew_map(pool, bogus[i], in, sizeof in[0], out, sizeof out[0], 4),
        CREW_EINVAL);
  }
  free(heap);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, 0);
  ck_assert_uint_eq(st.crashed, 0);
  run_adds(pool, 10);
  st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, 10);
  ck_assert_uint_eq(st.crashed, 0);
  ck_assert_uint_eq(st.restarted, 0);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

START_TEST(a_forked_child_cannot_use_the_pool)
{
  shared_setup(0);
  crew_pool *pool = ppool(2, 0);
  run_adds(pool, 5);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    /* No Check asserts here: report through the exit status. */
    int bad = 0;
    int64_t x = 1;
    crew_future *f = NO_FUTURE;
    crew_stats st;
    if (crew_submit(pool, add_task, &x, sizeof x, sizeof x, &f) !=
            CREW_EINVAL ||
        f != NO_FUTURE)
      bad |= 1;
    if (crew_submit_timed(pool, add_task, &x, sizeof x, 0, NULL, 0) !=
        CREW_EINVAL)
      bad |= 2;
    if (crew_map(pool, add_task, &x, 0, NULL, 0, 3) != CREW_EINVAL)
      bad |= 4;
    if (crew_pool_stats(pool, &st) != CREW_EINVAL)
      bad |= 8;
    if (crew_pool_shutdown(pool, CREW_CANCEL) != CREW_EINVAL)
      bad |= 16;
    crew_pool_destroy(pool); /* frees nothing in a child */
    _exit(bad);
  }
  int wstatus = 0;
  ck_assert_int_eq(waitpid(pid, &wstatus, 0), pid);
  ck_assert(WIFEXITED(wstatus));
  ck_assert_int_eq(WEXITSTATUS(wstatus), 0);
  run_adds(pool, 5);
  crew_stats st = pool_stats(pool);
  ck_assert_uint_eq(st.submitted, 10);
  ck_assert_uint_eq(st.completed, 10);
  ck_assert_uint_eq(atomic_load(&shm->ran), 10);
  crew_pool_destroy(pool);
  shared_teardown();
}
END_TEST

/* ================================================================ main */

int main(void)
{
  Suite *s = suite_create("procpool_hygiene");

  TCase *tc = tcase_create("hygiene");
  tcase_set_timeout(tc, 20);
  tcase_add_test(tc, no_child_is_left_after_destroy);
  tcase_add_test(tc, workers_die_with_a_killed_parent);
  tcase_add_test(tc, workers_get_the_descriptors_of_create_and_no_crew_one);
  tcase_add_test(tc, an_application_sigchld_handler_is_left_alone);
  tcase_add_test(tc, code_the_workers_lack_is_refused);
  tcase_add_test(tc, a_forked_child_cannot_use_the_pool);
  suite_add_tcase(s, tc);

  return run_suite(s);
}
