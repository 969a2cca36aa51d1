/*
 * check_signals.c - catalog scenarios 53-57 of the reliability suite,
 * signals and EINTR: a signal storm during every blocking call, process
 * signals that reach the application and task masks that do not leak, no
 * global signal side effects, Ctrl-C to the process group, and SIGSTOP and
 * SIGCONT of a worker.
 *
 * Every TCase uses harness_tcase(), so every test also proves it leaves no
 * descriptor, thread, child, zombie or crew mapping behind.
 *
 * Children: tests that must change process-wide state they cannot undo
 * (rlimits, a uid, a process group, a SIGKILL of the parent) run that part
 * in a forked child (in_child) that reports through its exit status and a
 * message on stderr, never through Check's ck_assert (a failing ck_assert
 * in a grandchild would talk to Check's runner in the test's name).
 */
#include "config.h"

#include "harness.h"
#include "hygiene.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* ====================================================== signals and EINTR */

static void start_storm(struct sigaction *old)
{
  atomic_store(&signals_seen, 0);
  struct sigaction sa = {.sa_handler = on_signal_count}; /* no SA_RESTART */
  sigemptyset(&sa.sa_mask);
  ck_assert_int_eq(sigaction(SIGALRM, &sa, old), 0);
  struct itimerval it = {{0, 100}, {0, 100}};
  ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
}

static void stop_storm(const struct sigaction *old)
{
  sigset_t alrm, prev;
  sigemptyset(&alrm);
  sigaddset(&alrm, SIGALRM);
  pthread_sigmask(SIG_BLOCK, &alrm, &prev);
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  signal(SIGALRM, SIG_IGN); /* drops one still pending */
  sigaction(SIGALRM, old, NULL);
  pthread_sigmask(SIG_SETMASK, &prev, NULL);
}

struct blocked_submit {
  crew_pool *pool;
  gate *g;
  signal_box *started, *done;
  crew_future *f;
  atomic_int rc;
};

static void *submit_blocking(void *arg)
{
  struct blocked_submit *b = arg;
  struct tgated_in in = {b->g, b->started, 42};
  atomic_store(&b->rc, crew_submit(b->pool, task_tgated, &in, sizeof in,
                                   sizeof(int), &b->f));
  signal_post(b->done);
  return NULL;
}

/* catalog 53, a thread pool of one worker held at a gate, its queue of one
 * full: timed submit, timed wait, a blocked submit, shutdown. */
static void storm_thread_pool_calls(void)
{
  int item = 0;
  uint64_t t0;
  crew_pool *pool = pool_with(CREW_THREADS, 1, 1, 0, 0, "hyg53");
  gate g;
  signal_box started, done;
  gate_init(&g);
  signal_init(&started);
  signal_init(&done);
  crew_future *first, *queued;
  struct tgated_in in1 = {&g, &started, 1}, in2 = {&g, &started, 2};
  ck_assert_int_eq(
      crew_submit(pool, task_tgated, &in1, sizeof in1, sizeof(int), &first), 0);
  signal_wait(&started, 1);
  ck_assert_int_eq(
      crew_submit(pool, task_tgated, &in2, sizeof in2, sizeof(int), &queued),
      0);
  t0 = now_ns();
  ck_assert_int_eq(
      crew_submit_timed(pool, task_value, &item, sizeof item, 0, NULL, 20 * MS),
      CREW_ETIMEDOUT);
  ck_assert_timed_out_in(t0, 20 * MS);
  t0 = now_ns();
  ck_assert_int_eq(crew_future_wait_timed(first, 20 * MS), CREW_ETIMEDOUT);
  ck_assert_timed_out_in(t0, 20 * MS);
  struct blocked_submit b = {
      .pool = pool, .g = &g, .started = &started, .done = &done};
  atomic_init(&b.rc, 1);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, submit_blocking, &b), 0);
  /* negative check: the blocked submit does not return early */
  ck_assert_int_eq(signal_try(&done, 50 * MS), CREW_ETIMEDOUT);
  gate_open(&g, 3);
  signal_wait(&done, 1);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  ck_assert_int_eq(atomic_load(&b.rc), 0);
  ck_assert_int_eq(crew_future_wait(first), 1);
  ck_assert_int_eq(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  ck_assert_int_eq(crew_future_wait(queued), 2);
  ck_assert_int_eq(crew_future_wait(b.f), 42);
  crew_future_release(first);
  crew_future_release(queued);
  crew_future_release(b.f);
  crew_pool_destroy(pool);
  signal_fini(&done);
  signal_fini(&started);
  gate_fini(&g);
}

/* catalog 53, process mode: submit, wait, map; and a crew_process join. */
static void storm_process_calls(void)
{
  struct xgate xg;
  xgate_init(&xg);
  crew_pool *procs = pool_with(CREW_PROCESSES, 2, 16, 0, 0, "hyg53p");
  for (int i = 0; i < 20; i++) {
    crew_future *f;
    int out = 0;
    ck_assert_int_eq(
        crew_submit(procs, task_value, &i, sizeof i, sizeof out, &f), 0);
    ck_assert_int_eq(crew_future_get(f, &out, sizeof out), i);
    ck_assert_int_eq(out, 2 * i);
    crew_future_release(f);
  }
  int ins[100], outs[100];
  for (int i = 0; i < 100; i++)
    ins[i] = 0;
  ck_assert_int_eq(crew_map(procs, task_value, ins, sizeof ins[0], outs,
                            sizeof outs[0], 100),
                   0);
  for (int i = 0; i < 100; i++)
    ck_assert_int_eq(outs[i], 0);
  crew_process *p;
  ck_assert_int_eq(crew_process_start(&p, task_child_waits, &xg, sizeof xg, 0),
                   0);
  int code = -1;
  uint64_t t0 = now_ns();
  ck_assert_int_eq(crew_process_join_timed(p, &code, 20 * MS), CREW_ETIMEDOUT);
  ck_assert_timed_out_in(t0, 20 * MS);
  xgate_open(&xg, 1);
  ck_assert_int_eq(crew_process_join(p, &code), 0);
  ck_assert_int_eq(code, 7);
  crew_process_destroy(p);
  ck_assert_int_eq(crew_pool_shutdown(procs, CREW_DRAIN), 0);
  crew_pool_destroy(procs);
  xgate_fini(&xg);
}

/*
 * catalog 53: a signal storm (SIGALRM every 100 us, a handler without
 * SA_RESTART) during every blocking call: timed pop, timed and blocking
 * submit, timed and plain future waits, shutdown, process-mode submit, wait
 * and map, process join. crew has no EINTR error: every call returns what
 * it would without the storm, and timed calls end at their deadline.
 */
START_TEST(catalog53_signal_storm)
{
  struct sigaction old;
  start_storm(&old);

  crew_queue *q;
  ck_assert_int_eq(crew_queue_create(&q, 1, sizeof(int), 0), 0);
  int item;
  uint64_t t0 = now_ns();
  ck_assert_int_eq(crew_queue_pop_timed(q, &item, 30 * MS), CREW_ETIMEDOUT);
  ck_assert_timed_out_in(t0, 30 * MS);
  crew_queue_destroy(q);

  storm_thread_pool_calls();
  storm_process_calls();

  stop_storm(&old);
  ck_assert_int_gt(atomic_load(&signals_seen), 0); /* the storm did blow */
}
END_TEST

struct waiter54 {
  sigset_t set;
  int n;
  signal_box *got;
  atomic_int received[2];
};

static void *sigwait_loop(void *arg)
{
  struct waiter54 *w = arg;
  for (int i = 0; i < w->n; i++) {
    int sig = 0;
    if (sigwait(&w->set, &sig) != 0)
      break;
    atomic_fetch_add(&w->received[sig == SIGUSR1 ? 0 : 1], 1);
    signal_post(w->got);
  }
  return NULL;
}

/* SigBlk of every thread whose name starts with `prefix`; returns how many
 * differ from `want` (and how many there are in *n). */
static int threads_with_other_mask(const char *prefix, uint64_t want, int *n)
{
  *n = 0;
  int differ = 0;
  DIR *d = opendir("/proc/self/task");
  if (d == NULL)
    return 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    char path[300], buf[4096];
    snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
    if (read_text(path, buf, sizeof buf) < 0)
      continue;
    const char *name = strstr(buf, "Name:\t");
    const char *blk = strstr(buf, "SigBlk:\t");
    if (name == NULL || blk == NULL ||
        strncmp(name + 6, prefix, strlen(prefix)) != 0 ||
        name[6 + strlen(prefix)] == 'm') /* the -mgr thread */
      continue;
    (*n)++;
    if (strtoull(blk + 8, NULL, 16) != want)
      differ++;
  }
  closedir(d);
  return differ;
}

static int task_unblock_usr1(const void *in, void *out)
{
  (void)in;
  (void)out;
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR1);
  return pthread_sigmask(SIG_UNBLOCK, &s, NULL);
}

/*
 * catalog 54: process-directed signals reach the application. An app
 * thread waits in sigwait(SIGTERM, SIGUSR1) while three workers are busy;
 * kill(getpid(), ...) 20 times: the app thread gets every one, and a
 * handler (that only a thread with the signal unblocked could run) never
 * runs. Every worker thread's mask (/proc SigBlk) is crew's.
 */
START_TEST(catalog54_process_signals_reach_the_app)
{
  sigset_t set, old_mask;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGTERM);
  ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &set, &old_mask), 0);
  struct sigaction on = {.sa_handler = on_signal_count}, old[2];
  sigemptyset(&on.sa_mask);
  ck_assert_int_eq(sigaction(SIGUSR1, &on, &old[0]), 0);
  ck_assert_int_eq(sigaction(SIGTERM, &on, &old[1]), 0);
  atomic_store(&signals_seen, 0);

  crew_pool *pool = pool_with(CREW_THREADS, 3, 8, 0, 0, "hyg54");
  gate g;
  signal_box started, got;
  gate_init(&g);
  signal_init(&started);
  signal_init(&got);
  crew_future *f[3];
  for (int i = 0; i < 3; i++) {
    struct tgated_in in = {&g, &started, i};
    ck_assert_int_eq(
        crew_submit(pool, task_tgated, &in, sizeof in, sizeof(int), &f[i]), 0);
  }
  signal_wait(&started, 3);
  int nthreads = 0;
  ck_assert_int_eq(
      threads_with_other_mask("hyg54-", worker_thread_mask(), &nthreads), 0);
  ck_assert_int_eq(nthreads, 3);

  struct waiter54 w = {.set = set, .n = 20, .got = &got};
  atomic_init(&w.received[0], 0);
  atomic_init(&w.received[1], 0);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, sigwait_loop, &w), 0);
  for (int i = 0; i < 20; i++) {
    ck_assert_int_eq(kill(getpid(), i % 2 ? SIGTERM : SIGUSR1), 0);
    signal_wait(&got, 1);
  }
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  ck_assert_int_eq(atomic_load(&w.received[0]), 10);
  ck_assert_int_eq(atomic_load(&w.received[1]), 10);
  ck_assert_int_eq(atomic_load(&signals_seen), 0);

  gate_open(&g, 3);
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(crew_future_wait(f[i]), i);
    crew_future_release(f[i]);
  }
  crew_pool_destroy(pool);
  signal_fini(&got);
  signal_fini(&started);
  gate_fini(&g);
  ck_assert_int_eq(sigaction(SIGUSR1, &old[0], NULL), 0);
  ck_assert_int_eq(sigaction(SIGTERM, &old[1], NULL), 0);
  ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, &old_mask, NULL), 0);
}
END_TEST

/* catalog 54: a task that changes its thread's mask. crew documents
 * (pool.h) that it does not reset a worker's mask between tasks (that would
 * cost a system call per task): a task that unblocks a signal must restore
 * the mask itself. The test pins that contract: the next task on the same
 * worker sees exactly the changed mask. */
START_TEST(catalog54_task_mask_does_not_leak)
{
  crew_pool *pool = pool_with(CREW_THREADS, 1, 4, 0, 0, "hyg54m");
  crew_future *f;
  ck_assert_int_eq(crew_submit(pool, task_unblock_usr1, NULL, 0, 0, &f), 0);
  ck_assert_int_eq(crew_future_wait(f), 0);
  crew_future_release(f);
  struct sigstate s;
  ck_assert_int_eq(crew_submit(pool, task_signal_state, NULL, 0, sizeof s, &f),
                   0);
  ck_assert_int_eq(crew_future_get(f, &s, sizeof s), 0);
  crew_future_release(f);
  crew_pool_destroy(pool);
  ck_assert_msg(s.blocked == (worker_thread_mask() & ~(1ull << (SIGUSR1 - 1))),
                "the next task's mask is %#llx, crew's is %#llx less SIGUSR1 "
                "(bit %#llx)",
                (unsigned long long)s.blocked,
                (unsigned long long)worker_thread_mask(),
                1ull << (SIGUSR1 - 1));
}
END_TEST

/* Every signal's disposition, and this thread's mask. */
struct sig_snapshot {
  int rc[65];
  void (*handler[65])(int);
  int flags[65];
  uint64_t mask[65]; /* sa_mask as bits */
  uint64_t thread_mask;
};

static uint64_t set_bits(const sigset_t *s)
{
  uint64_t m = 0;
  for (int sig = 1; sig <= 64 && sig < NSIG; sig++)
    if (sigismember(s, sig) == 1)
      m |= 1ull << (sig - 1);
  return m;
}

static void snapshot_signals(struct sig_snapshot *s)
{
  memset(s, 0, sizeof *s);
  for (int sig = 1; sig <= 64 && sig < NSIG; sig++) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    s->rc[sig] = sigaction(sig, NULL, &sa);
    s->handler[sig] = sa.sa_handler;
    s->flags[sig] = sa.sa_flags;
    s->mask[sig] = set_bits(&sa.sa_mask);
  }
  sigset_t m;
  pthread_sigmask(SIG_SETMASK, NULL, &m);
  s->thread_mask = set_bits(&m);
}

static void ck_assert_same_signals(const struct sig_snapshot *a,
                                   const struct sig_snapshot *b,
                                   const char *when)
{
  for (int sig = 1; sig <= 64 && sig < NSIG; sig++)
    ck_assert_msg(
        a->rc[sig] == b->rc[sig] && a->handler[sig] == b->handler[sig] &&
            a->flags[sig] == b->flags[sig] && a->mask[sig] == b->mask[sig],
        "%s: the disposition of signal %d changed", when, sig);
  ck_assert_msg(a->thread_mask == b->thread_mask,
                "%s: the calling thread's mask changed", when);
}

/*
 * catalog 55: no global signal side effects. Every signal's disposition
 * (SIGCHLD included) and the calling thread's mask are the same before,
 * while thread and process pools, a crew_process and a shared queue are in
 * use, and after they are gone. And crew reaps only its own children: an
 * application child outlives all of it unreaped, and its status is ours.
 */
START_TEST(catalog55_no_global_signal_side_effects)
{
  struct sig_snapshot before, now;
  snapshot_signals(&before);
  int pfd[2];
  ck_assert_int_eq(pipe(pfd), 0);
  fflush(stdout);
  fflush(stderr);
  pid_t app_child = fork();
  ck_assert_int_ge(app_child, 0);
  if (app_child == 0) {
    char c;
    close(pfd[1]);
    _exit(read(pfd[0], &c, 1) == 0 ? 33 : 34);
  }
  close(pfd[0]);

  struct xgate g;
  xgate_init(&g);
  crew_pool *threads = pool_with(CREW_THREADS, 2, 8, 0, 0, "hyg55t");
  crew_pool *procs = pool_with(CREW_PROCESSES, 2, 8, 0, 0, "hyg55p");
  crew_process *p;
  ck_assert_int_eq(crew_process_start(&p, task_child_waits, &g, sizeof g, 0),
                   0);
  crew_future *f[4];
  for (int i = 0; i < 2; i++) {
    ck_assert_int_eq(crew_submit(threads, task_value, &i, sizeof i, 0, &f[i]),
                     0);
    ck_assert_int_eq(crew_submit(procs, task_value, &i, sizeof i, 0, &f[2 + i]),
                     0);
  }
  snapshot_signals(&now);
  ck_assert_same_signals(&before, &now, "during use");
  for (int i = 0; i < 4; i++) {
    ck_assert_int_eq(crew_future_wait(f[i]), i % 2);
    crew_future_release(f[i]);
  }
  xgate_open(&g, 1);
  int code = -1;
  ck_assert_int_eq(crew_process_join(p, &code), 0);
  ck_assert_int_eq(code, 7);
  crew_process_destroy(p);
  crew_pool_destroy(procs);
  crew_pool_destroy(threads);
  xgate_fini(&g);
  snapshot_signals(&now);
  ck_assert_same_signals(&before, &now, "after destroy");

  siginfo_t info;
  memset(&info, 0, sizeof info);
  ck_assert_int_eq(
      waitid(P_PID, (id_t)app_child, &info, WEXITED | WNOHANG | WNOWAIT), 0);
  ck_assert_int_eq(info.si_pid, 0); /* still running, still ours */
  close(pfd[1]);
  int status = wait_child(app_child, 5000 * MS);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 33);
}
END_TEST

/* catalog 56's parent, in its own process group: SIGINT to the group while
 * tasks run on worker processes. */
static int child_sigint_group(void *arg)
{
  (void)arg;
  CHILD_EQ(setpgid(0, 0), 0);
  struct sigaction on = {.sa_handler = on_signal_count};
  sigemptyset(&on.sa_mask);
  CHILD_EQ(sigaction(SIGINT, &on, NULL), 0);
  atomic_store(&signals_seen, 0);
  struct xgate g;
  CHILD_EQ(crew_queue_create(&g.tokens, 16, 1, CREW_SHARED), 0);
  CHILD_EQ(crew_queue_create(&g.posts, 16, sizeof(int), CREW_SHARED), 0);
  crew_config cfg = pool_config(CREW_PROCESSES, 2);
  crew_pool *pool;
  CHILD_EQ(crew_pool_create(&pool, &cfg), 0);
  crew_future *f[2];
  for (int i = 0; i < 2; i++) {
    struct gated_in in = {g, i + 1};
    CHILD_EQ(crew_submit(pool, task_gated, &in, sizeof in, 0, &f[i]), 0);
  }
  int pid;
  for (int i = 0; i < 2; i++)
    CHILD_EQ(crew_queue_pop_timed(g.posts, &pid, 10000 * MS), 0);
  CHILD_EQ(killpg(0, SIGINT), 0);
  CHILD_EQ(atomic_load(&signals_seen), 1); /* delivered before killpg returns */
  for (int i = 0; i < 2; i++)
    CHILD_EQ(crew_queue_push(g.tokens, "t"), 0);
  for (int i = 0; i < 2; i++) {
    CHILD_EQ(crew_future_wait(f[i]), i + 1); /* not CREW_ECRASHED */
    crew_future_release(f[i]);
  }
  crew_stats st;
  CHILD_EQ(crew_pool_stats(pool, &st), 0);
  CHILD_EQ(st.crashed, 0);
  CHILD_EQ(crew_pool_shutdown(pool, CREW_DRAIN), 0);
  crew_pool_destroy(pool);
  crew_queue_destroy(g.tokens);
  crew_queue_destroy(g.posts);
  struct harness_resources r;
  harness_count(&r);
  CHILD_EQ(r.children, 0); /* no orphans: the fork server is reaped */
  return 0;
}

/* catalog 56: Ctrl-C (SIGINT to the process group) while tasks run in
 * process mode. pool.h's policy: workers lead their own process groups, so
 * only the application gets it; the tasks finish normally and shutdown
 * completes with no child left. */
START_TEST(catalog56_sigint_to_the_process_group)
{
  ck_assert_child_ok(in_child(child_sigint_group, NULL));
}
END_TEST

/* Catalog 57's task: post our pid, then spin until `go` is set (no crew
 * lock held while we may be stopped). */
struct spin57 {
  crew_queue *pids;
  _Atomic int *go;
  int value;
};

static int task_post_pid_and_spin(const void *in, void *out)
{
  (void)out;
  const struct spin57 *s = in;
  int pid = (int)getpid();
  if (crew_queue_push(s->pids, &pid) != 0)
    return 100;
  while (atomic_load(s->go) == 0)
    sched_yield();
  return s->value;
}

/*
 * catalog 57: SIGSTOP a worker for longer than the task timeout: the
 * manager kills it at the deadline anyway (CREW_EDEADLINE), it resolves
 * once, and the replacement serves the next task. Then stop a worker for
 * less than the timeout: SIGCONT, and the task completes normally.
 */
START_TEST(catalog57_sigstop_a_worker)
{
  crew_queue *pids;
  ck_assert_int_eq(crew_queue_create(&pids, 8, sizeof(int), CREW_SHARED), 0);
  _Atomic int *go = mmap(NULL, sizeof *go, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ck_assert_ptr_ne(go, MAP_FAILED);
  atomic_store(go, 0);

  /* longer than the timeout */
  crew_pool *pool = pool_with(CREW_PROCESSES, 1, 4, 200 * MS, 0, "hyg57");
  struct spin57 s = {pids, go, 5};
  crew_future *f;
  ck_assert_int_eq(
      crew_submit(pool, task_post_pid_and_spin, &s, sizeof s, 0, &f), 0);
  int pid = 0;
  ck_assert_int_eq(crew_queue_pop_timed(pids, &pid, 10000 * MS), 0);
  ck_assert_int_eq(kill(pid, SIGSTOP), 0);
  ck_assert_int_eq(crew_future_wait(f), CREW_EDEADLINE);
  kill(pid, SIGCONT); /* too late: killed, maybe reaped */
  ck_assert_int_eq(crew_future_wait(f), CREW_EDEADLINE);
  crew_future_release(f);
  int v = 3;
  ck_assert_int_eq(crew_submit(pool, task_value, &v, sizeof v, 0, &f), 0);
  ck_assert_int_eq(crew_future_wait(f), 3);
  crew_future_release(f);
  crew_stats st;
  ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
  ck_assert_uint_eq(st.deadline_killed, 1);
  ck_assert_uint_eq(st.crashed, 0);
  ck_assert_uint_eq(st.completed, 1);
  crew_pool_destroy(pool);

  /* shorter than the timeout */
  pool = pool_with(CREW_PROCESSES, 1, 4, 10000 * MS, 0, "hyg57b");
  s.value = 9;
  ck_assert_int_eq(
      crew_submit(pool, task_post_pid_and_spin, &s, sizeof s, 0, &f), 0);
  ck_assert_int_eq(crew_queue_pop_timed(pids, &pid, 10000 * MS), 0);
  ck_assert_int_eq(kill(pid, SIGSTOP), 0);
  atomic_store(go, 1);
  /* negative check: stopped, it cannot finish */
  ck_assert_int_eq(crew_future_wait_timed(f, 50 * MS), CREW_ETIMEDOUT);
  ck_assert_int_eq(kill(pid, SIGCONT), 0);
  ck_assert_int_eq(crew_future_wait(f), 9);
  crew_future_release(f);
  ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
  ck_assert_uint_eq(st.deadline_killed, 0);
  ck_assert_uint_eq(st.crashed, 0);
  ck_assert_uint_eq(st.completed, 1);
  crew_pool_destroy(pool);
  munmap(go, sizeof *go);
  crew_queue_destroy(pids);
}
END_TEST

/* ================================================================ main */

int main(void)
{
  Suite *s = suite_create("signals");

  TCase *tc = tcase_create("signals");
  harness_tcase(tc, 20);
  tcase_add_test(tc, catalog53_signal_storm);
  tcase_add_test(tc, catalog54_process_signals_reach_the_app);
  tcase_add_test(tc, catalog54_task_mask_does_not_leak);
  tcase_add_test(tc, catalog55_no_global_signal_side_effects);
  tcase_add_test(tc, catalog56_sigint_to_the_process_group);
  tcase_add_test(tc, catalog57_sigstop_a_worker);
  suite_add_tcase(s, tc);

  return run_suite(s);
}
