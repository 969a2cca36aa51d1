/*
 * check_fork.c - catalog scenarios 48-52 of the reliability suite, fork
 * safety: the application forks while a pool is busy (both modes) or while
 * other threads hammer its locks, workers spawn from a busy multi-threaded
 * parent, and what workers inherit: descriptors and signal state.
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

/* ============================================================ fork safety */

/* The pool calls a forked child makes: every one CREW_EINVAL, destroy a
 * no-op; then the child exits normally (exit, not _exit). */
static int child_calls_pool(void *arg)
{
  crew_pool *pool = arg;
  int seven = 7, out = 0;
  int ins[4] = {1, 2, 3, 4}, outs[4] = {0};
  crew_future *f = NULL;
  crew_stats st;
  CHILD_EQ(crew_submit(pool, task_value, &seven, sizeof seven, sizeof out, &f),
           CREW_EINVAL);
  CHILD_CHECK(f == NULL);
  CHILD_EQ(crew_submit(pool, task_value, &seven, sizeof seven, 0, NULL),
           CREW_EINVAL);
  CHILD_EQ(
      crew_submit_timed(pool, task_value, &seven, sizeof seven, 0, NULL, 0),
      CREW_EINVAL);
  CHILD_EQ(
      crew_map(pool, task_value, ins, sizeof ins[0], outs, sizeof outs[0], 4),
      CREW_EINVAL);
  CHILD_EQ(outs[0], 0);
  CHILD_EQ(crew_pool_stats(pool, &st), CREW_EINVAL);
  CHILD_EQ(crew_pool_shutdown(pool, CREW_DRAIN), CREW_EINVAL);
  CHILD_EQ(crew_pool_shutdown(pool, CREW_CANCEL), CREW_EINVAL);
  crew_pool_destroy(pool); /* leaves the child's copy alone */
  exit(0);
}

/* catalog 48: the application forks while a pool is busy (threads). The
 * child's pool calls return CREW_EINVAL (pool.h: "a pool belongs to the
 * process that created it"), its exit neither aborts nor hangs, and the
 * parent's pool goes on: every task resolves with its own value. */
START_TEST(catalog48_fork_while_thread_pool_busy)
{
  crew_pool *pool = pool_with(CREW_THREADS, 2, 8, 0, 0, "hyg48");
  gate g;
  signal_box started;
  gate_init(&g);
  signal_init(&started);
  crew_future *f[5];
  for (int i = 0; i < 5; i++) {
    struct tgated_in in = {&g, &started, i + 1};
    ck_assert_int_eq(
        crew_submit(pool, task_tgated, &in, sizeof in, sizeof(int), &f[i]), 0);
  }
  signal_wait(&started, 2); /* both workers inside a task, three queued */
  ck_assert_child_ok(in_child(child_calls_pool, pool));
  gate_open(&g, 5);
  for (int i = 0; i < 5; i++) {
    int out = 0;
    ck_assert_int_eq(crew_future_get(f[i], &out, sizeof out), i + 1);
    ck_assert_int_eq(out, 2 * (i + 1));
    crew_future_release(f[i]);
  }
  int seven = 7;
  crew_future *more;
  ck_assert_int_eq(
      crew_submit(pool, task_value, &seven, sizeof seven, 0, &more), 0);
  ck_assert_int_eq(crew_future_wait(more), 7);
  crew_future_release(more);
  crew_stats st;
  ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
  ck_assert_uint_eq(st.submitted, 6);
  ck_assert_uint_eq(st.completed, 6);
  crew_pool_destroy(pool);
  signal_fini(&started);
  gate_fini(&g);
}
END_TEST

/* catalog 48, process mode: the same with worker processes busy. */
START_TEST(catalog48_fork_while_process_pool_busy)
{
  struct xgate g;
  xgate_init(&g);
  crew_pool *pool = pool_with(CREW_PROCESSES, 2, 8, 0, 0, "hyg48p");
  crew_future *f[5];
  for (int i = 0; i < 5; i++) {
    struct gated_in in = {g, i + 1};
    ck_assert_int_eq(
        crew_submit(pool, task_gated, &in, sizeof in, sizeof(int), &f[i]), 0);
  }
  xgate_wait(&g, 2); /* both workers inside a task */
  ck_assert_child_ok(in_child(child_calls_pool, pool));
  xgate_open(&g, 5);
  for (int i = 0; i < 5; i++) {
    int out = 0;
    ck_assert_int_eq(crew_future_get(f[i], &out, sizeof out), i + 1);
    ck_assert_int_eq(out, 2 * (i + 1));
    crew_future_release(f[i]);
  }
  xgate_wait(&g, 3); /* the posts of the three that were queued */
  crew_stats st;
  ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
  ck_assert_uint_eq(st.completed, 5);
  ck_assert_uint_eq(st.crashed, 0);
  crew_pool_destroy(pool);
  xgate_fini(&g);
}
END_TEST

struct hammer {
  crew_pool *pool;
  atomic_bool stop;
  atomic_ulong done;
};

static void *hammer_pool(void *arg)
{
  struct hammer *h = arg;
  while (!atomic_load(&h->stop)) {
    int v = (int)(atomic_load(&h->done) % 1000);
    crew_future *f;
    quiet_assert_int_eq(crew_submit(h->pool, task_value, &v, sizeof v, 0, &f),
                        0);
    quiet_assert_int_eq(crew_future_wait(f), v);
    crew_future_release(f);
    atomic_fetch_add(&h->done, 1);
  }
  return NULL;
}

/* In a child forked while other threads hammer the pool: the pool calls
 * fail with CREW_EINVAL before they touch a lock (crew has no atfork
 * handlers; the fork guard comes first), and crew objects the child makes
 * itself work. */
static int child_after_hammer_fork(void *arg)
{
  crew_pool *pool = arg;
  int v = 1;
  crew_stats st;
  CHILD_EQ(crew_submit(pool, task_value, &v, sizeof v, 0, NULL), CREW_EINVAL);
  CHILD_EQ(crew_pool_stats(pool, &st), CREW_EINVAL);
  CHILD_EQ(crew_pool_shutdown(pool, CREW_CANCEL), CREW_EINVAL);
  crew_pool_destroy(pool);
  crew_queue *q;
  CHILD_EQ(crew_queue_create(&q, 4, sizeof v, 0), 0);
  CHILD_EQ(crew_queue_push(q, &v), 0);
  int got = 0;
  CHILD_EQ(crew_queue_pop_timed(q, &got, 0), 0);
  CHILD_EQ(got, 1);
  crew_queue_destroy(q);
  return 0;
}

/* catalog 49: fork while crew's locks are taken and released in a tight
 * loop (two submitter threads, two workers). Every child finishes within
 * the bound (no deadlock on a lock copied while held) and exits 0. */
START_TEST(catalog49_fork_while_locks_are_hammered)
{
  struct hammer h = {.pool = pool_with(CREW_THREADS, 2, 4, 0, 0, "hyg49")};
  atomic_init(&h.stop, false);
  atomic_init(&h.done, 0);
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(pthread_create(&t[i], NULL, hammer_pool, &h), 0);
  size_t forks = scaled(UNDER_TSAN ? 40 : 200);
  for (size_t i = 0; i < forks; i++) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0)
      _exit(child_after_hammer_fork(h.pool));
    ck_assert_child_ok(wait_child(pid, 5000 * MS));
  }
  atomic_store(&h.stop, true);
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(pthread_join(t[i], NULL), 0);
  crew_stats st;
  ck_assert_int_eq(crew_pool_stats(h.pool, &st), 0);
  ck_assert_uint_eq(st.completed, atomic_load(&h.done));
  crew_pool_destroy(h.pool);
}
END_TEST

/* Catalog 50's task: malloc, stdio and a user mutex, all of which the
 * application's threads hold in tight loops meanwhile. */
static FILE *devnull50;
static pthread_mutex_t user_mutex50 = PTHREAD_MUTEX_INITIALIZER;

static int task_uses_locks(const void *in, void *out)
{
  int v = *(const int *)in;
  char *p = malloc(1000 + (size_t)v);
  if (p == NULL)
    return 100;
  memset(p, v, 1000);
  fprintf(devnull50, "task %d %c\n", v, p[0] == (char)v ? 'y' : 'n');
  fflush(devnull50);
  free(p);
  pthread_mutex_lock(&user_mutex50);
  pthread_mutex_unlock(&user_mutex50);
  *(int *)out = v;
  return 0;
}

struct busy50 {
  atomic_bool stop;
  int kind;
};

static void *hold_locks(void *arg)
{
  struct busy50 *b = arg;
  while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
    if (b->kind == 0) {
      void *p = malloc(4096);
      free(p);
    } else if (b->kind == 1) {
      fprintf(devnull50, "busy\n");
      fflush(devnull50);
    } else {
      pthread_mutex_lock(&user_mutex50);
      pthread_mutex_unlock(&user_mutex50);
    }
  }
  return NULL;
}

/* catalog 50: workers spawned and respawned (max_tasks_per_worker 1: every
 * task gets a fresh worker) while the parent's threads hold malloc, stdio
 * and a user mutex in tight loops. crew forks workers from its fork server
 * (design C3), so no worker starts with a lock held: every task completes.
 * As pool.h says, the pool is created before the threads start. */
START_TEST(catalog50_spawn_from_busy_parent)
{
  devnull50 = fopen("/dev/null", "w");
  ck_assert_ptr_nonnull(devnull50);
  crew_pool *pool = pool_with(CREW_PROCESSES, 2, 64, 0, 1, "hyg50");
  struct busy50 b[3];
  pthread_t t[3];
  for (int i = 0; i < 3; i++) {
    atomic_init(&b[i].stop, false);
    b[i].kind = i;
    ck_assert_int_eq(pthread_create(&t[i], NULL, hold_locks, &b[i]), 0);
  }
  size_t n = scaled(30);
  crew_future **f = calloc(n, sizeof *f);
  ck_assert_ptr_nonnull(f);
  for (size_t i = 0; i < n; i++) {
    int v = (int)i;
    ck_assert_int_eq(
        crew_submit(pool, task_uses_locks, &v, sizeof v, sizeof v, &f[i]), 0);
  }
  for (size_t i = 0; i < n; i++) {
    int out = -1;
    ck_assert_int_eq(crew_future_get_timed(f[i], &out, sizeof out, 10000 * MS),
                     0);
    ck_assert_int_eq(out, (int)i);
    crew_future_release(f[i]);
  }
  free(f);
  for (int i = 0; i < 3; i++)
    atomic_store(&b[i].stop, true);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(pthread_join(t[i], NULL), 0);
  crew_stats st;
  ck_assert_int_eq(crew_pool_stats(pool, &st), 0);
  ck_assert_uint_eq(st.completed, n);
  ck_assert_uint_eq(st.crashed, 0);
  /* n tasks, one worker each: all but the first two workers were
   * replacements (a few may still be starting) */
  ck_assert_uint_ge(st.restarted, n - 2);
  crew_pool_destroy(pool);
  fclose(devnull50);
}
END_TEST

/* A worker's descriptors: number, device and inode of each. */
#define MAX_FDS 64
struct fd_list {
  int n;
  struct {
    int fd;
    dev_t dev;
    ino_t ino;
  } e[MAX_FDS];
};

static int list_fds(struct fd_list *l)
{
  memset(l, 0, sizeof *l);
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL)
    return 1;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    int fd = atoi(e->d_name);
    struct stat st;
    if (fd == dirfd(d) || fstat(fd, &st) != 0)
      continue;
    if (l->n == MAX_FDS) {
      closedir(d);
      return 2;
    }
    l->e[l->n].fd = fd;
    l->e[l->n].dev = st.st_dev;
    l->e[l->n].ino = st.st_ino;
    l->n++;
  }
  closedir(d);
  return 0;
}

static int task_list_fds(const void *in, void *out)
{
  (void)in;
  return list_fds(out);
}

/* Whether list `a` holds exactly the descriptors of `b`. */
static bool same_fds(const struct fd_list *a, const struct fd_list *b)
{
  if (a->n != b->n)
    return false;
  for (int i = 0; i < a->n; i++) {
    bool found = false;
    for (int j = 0; j < b->n && !found; j++)
      found = a->e[i].fd == b->e[j].fd && a->e[i].dev == b->e[j].dev &&
              a->e[i].ino == b->e[j].ino;
    if (!found)
      return false;
  }
  return true;
}

static void print_fds(const char *what, const struct fd_list *l)
{
  fprintf(stderr, "%s:", what);
  for (int i = 0; i < l->n; i++)
    fprintf(stderr, " %d(ino %lu)", l->e[i].fd, (unsigned long)l->e[i].ino);
  fprintf(stderr, "\n");
}

static int listen_tcp(int *port)
{
  int s = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(s, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
  ck_assert_int_eq(listen(s, 4), 0);
  socklen_t len = sizeof a;
  ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &len), 0);
  if (port != NULL)
    *port = ntohs(a.sin_port);
  return s;
}

/* The app's descriptors of catalog 51: a listening socket, a pipe, a file. */
struct app_fds {
  int sock, pipe[2], file;
};

static void open_app_fds(struct app_fds *a)
{
  a->sock = listen_tcp(NULL);
  ck_assert_int_eq(pipe(a->pipe), 0);
  FILE *f = tmpfile();
  ck_assert_ptr_nonnull(f);
  a->file = dup(fileno(f));
  fclose(f);
  ck_assert_int_ge(a->file, 0);
}

static void close_app_fds(struct app_fds *a)
{
  close(a->sock);
  close(a->pipe[0]);
  close(a->pipe[1]);
  close(a->file);
}

/* The descriptors of a worker of `pool` (a fresh one each call when the
 * pool recycles after every task). */
static void worker_fds(crew_pool *pool, struct fd_list *l)
{
  crew_future *f;
  ck_assert_int_eq(crew_submit(pool, task_list_fds, NULL, 0, sizeof *l, &f), 0);
  ck_assert_int_eq(crew_future_get(f, l, sizeof *l), 0);
  crew_future_release(f);
}

/*
 * catalog 51: descriptor hygiene, as pool.h documents it (which differs
 * from the catalog's "workers hold none of them"): workers inherit the
 * descriptors the application had open at create, as any fork does, and
 * nothing else: not the application's later ones, not crew's own. So a
 * worker's descriptors are exactly the application's at create, for the
 * first worker and for a replacement. Every descriptor crew opens in the
 * parent is close-on-exec, so a fork+exec'd child inherits none.
 */
START_TEST(catalog51_workers_hold_exactly_the_fds_at_create)
{
  struct app_fds before;
  open_app_fds(&before);
  struct fd_list app;
  ck_assert_int_eq(list_fds(&app), 0);
  crew_pool *pool = pool_with(CREW_PROCESSES, 1, 4, 0, 1, "hyg51");
  struct app_fds after;
  open_app_fds(&after);
  for (int round = 0; round < 2; round++) {
    struct fd_list w;
    worker_fds(pool, &w);
    if (!same_fds(&w, &app)) {
      print_fds("application at create", &app);
      print_fds("worker", &w);
      ck_abort_msg("round %d: the worker's descriptors differ from the "
                   "application's at create (see stderr)",
                   round);
    }
  }
  /* crew's own descriptors in this process (the fork server's socket, a
   * channel's descriptor, a process's pidfd): all close-on-exec */
  crew_channel *ch;
  ck_assert_int_eq(crew_channel_create(&ch), 0);
  ck_assert(has_cloexec(crew_channel_fd(ch)));
  crew_process *p;
  int v = 1;
  ck_assert_int_eq(crew_process_start(&p, task_value, &v, sizeof v, 0), 0);
  struct fd_list now;
  ck_assert_int_eq(list_fds(&now), 0);
  int crew_fds = 0;
  for (int i = 0; i < now.n; i++) {
    int fd = now.e[i].fd;
    bool apps = fd == after.sock || fd == after.pipe[0] ||
                fd == after.pipe[1] || fd == after.file;
    for (int j = 0; j < app.n && !apps; j++)
      apps = app.e[j].fd == fd && app.e[j].ino == now.e[i].ino;
    if (apps)
      continue;
    crew_fds++;
    ck_assert_msg(has_cloexec(fd), "crew's descriptor %d is not CLOEXEC", fd);
  }
  ck_assert_int_ge(crew_fds, 2); /* at least the socket and the channel */
  int code = -1;
  ck_assert_int_eq(crew_process_join(p, &code), 0);
  ck_assert_int_eq(code, 1);
  crew_process_destroy(p);
  crew_channel_destroy(ch);
  crew_pool_destroy(pool);
  close_app_fds(&after);
  close_app_fds(&before);
}
END_TEST

static int task_sleep_on_gate(const void *in, void *out)
{
  (void)out;
  const struct xgate *g = in;
  char t;
  return crew_queue_pop(g->tokens, &t);
}

/*
 * catalog 51, with other crew objects alive: a second process pool created
 * while a first one runs (its socket to its fork server open here), a
 * channel exists (its descriptor) and a crew_process runs (its pidfd). As
 * pool.h documents, the second pool's workers inherit what this process had
 * open at create, as any fork does: the application's descriptors, and
 * crew's descriptors of those other objects, which are all close-on-exec
 * (crew keeps no process-wide registry of its descriptors to close them
 * in a fork). The test checks exactly that: every descriptor a worker holds
 * is the application's, or one that this process holds close-on-exec.
 */
START_TEST(catalog51_workers_hold_no_fd_of_other_crew_objects)
{
  struct xgate g;
  xgate_init(&g);
  struct fd_list app;
  ck_assert_int_eq(list_fds(&app), 0);
  crew_pool *first = pool_with(CREW_PROCESSES, 1, 4, 0, 0, "hyg51a");
  crew_channel *ch;
  ck_assert_int_eq(crew_channel_create(&ch), 0);
  crew_process *p;
  ck_assert_int_eq(crew_process_start(&p, task_sleep_on_gate, &g, sizeof g, 0),
                   0);
  struct fd_list here;
  ck_assert_int_eq(list_fds(&here), 0);
  crew_pool *second = pool_with(CREW_PROCESSES, 1, 4, 0, 0, "hyg51b");
  struct fd_list w;
  worker_fds(second, &w);
  int extra = 0;
  for (int i = 0; i < w.n; i++) {
    bool apps = false;
    for (int j = 0; j < app.n && !apps; j++)
      apps = app.e[j].fd == w.e[i].fd && app.e[j].ino == w.e[i].ino;
    if (apps)
      continue;
    bool crews = false;
    for (int j = 0; j < here.n && !crews; j++)
      crews = here.e[j].fd == w.e[i].fd && here.e[j].ino == w.e[i].ino &&
              has_cloexec(here.e[j].fd);
    if (!crews) {
      print_fds("application", &app);
      print_fds("this process at create", &here);
      print_fds("worker of the second pool", &w);
    }
    ck_assert_msg(crews,
                  "worker descriptor %d is neither the application's nor a "
                  "close-on-exec one of crew's (see stderr)",
                  w.e[i].fd);
    extra++;
  }
  ck_assert_int_ge(extra, 2); /* the channel's, the first pool's socket */
  xgate_open(&g, 1);
  int code = -1;
  ck_assert_int_eq(crew_process_join(p, &code), 0);
  ck_assert_int_eq(code, 0);
  crew_process_destroy(p);
  crew_pool_destroy(second);
  crew_channel_destroy(ch);
  crew_pool_destroy(first);
  xgate_fini(&g);
}
END_TEST

/* The parent of catalog 51's port test: a process pool, then a listening
 * socket whose port it reports on fd `report`; then it waits to be killed. */
static int report_fd51;

static int child_pool_then_listen(void *arg)
{
  (void)arg;
  crew_config cfg = pool_config(CREW_PROCESSES, 2);
  crew_pool *pool;
  CHILD_EQ(crew_pool_create(&pool, &cfg), 0);
  int port = 0;
  int s = listen_tcp(&port);
  CHILD_CHECK(s >= 0);
  CHILD_EQ(write(report_fd51, &port, sizeof port), (long long)sizeof port);
  for (;;)
    pause();
}

/* catalog 51: after SIGKILL of a parent that opened a listening socket
 * after creating its process pool, the port can be bound again at once: no
 * worker kept a copy. */
START_TEST(catalog51_port_free_after_parent_sigkill)
{
  int pfd[2];
  ck_assert_int_eq(pipe(pfd), 0);
  report_fd51 = pfd[1];
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(pfd[0]);
    _exit(child_pool_then_listen(NULL));
  }
  close(pfd[1]);
  int port = 0;
  ck_assert_int_eq(read(pfd[0], &port, sizeof port), (ssize_t)sizeof port);
  close(pfd[0]);
  ck_assert_int_eq(kill(pid, SIGKILL), 0);
  int status = wait_child(pid, 5000 * MS);
  ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ge(s, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  ck_assert_msg(bind(s, (struct sockaddr *)&a, sizeof a) == 0,
                "port %d still held: %s", port, strerror(errno));
  close(s);
}
END_TEST

/*
 * catalog 52: signal state in workers. The application installs handlers
 * for SIGTERM and SIGUSR1, ignores SIGPIPE and blocks SIGUSR2 and SIGINT,
 * then starts pools. Process workers: every handler SIG_DFL (pool.h: they
 * "start with default signal handlers") and nothing blocked (forkserver.c's
 * design note). Worker threads: crew's mask, not the application thread's
 * (every signal but the fault signals, pool.h).
 */
START_TEST(catalog52_signal_state_in_workers)
{
  struct sigaction on = {.sa_handler = on_signal_count}, ign = {0}, old[3];
  sigemptyset(&on.sa_mask);
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  ck_assert_int_eq(sigaction(SIGTERM, &on, &old[0]), 0);
  ck_assert_int_eq(sigaction(SIGUSR1, &on, &old[1]), 0);
  ck_assert_int_eq(sigaction(SIGPIPE, &ign, &old[2]), 0);
  sigset_t block, old_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR2);
  sigaddset(&block, SIGINT);
  ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &block, &old_mask), 0);

  crew_pool *procs = pool_with(CREW_PROCESSES, 1, 4, 0, 0, "hyg52p");
  crew_pool *threads = pool_with(CREW_THREADS, 1, 4, 0, 0, "hyg52t");
  struct sigstate ps, ts;
  crew_future *f;
  ck_assert_int_eq(
      crew_submit(procs, task_signal_state, NULL, 0, sizeof ps, &f), 0);
  ck_assert_int_eq(crew_future_get(f, &ps, sizeof ps), 0);
  crew_future_release(f);
  ck_assert_int_eq(
      crew_submit(threads, task_signal_state, NULL, 0, sizeof ts, &f), 0);
  ck_assert_int_eq(crew_future_get(f, &ts, sizeof ts), 0);
  crew_future_release(f);
  crew_pool_destroy(threads);
  crew_pool_destroy(procs);

  ck_assert_int_eq(sigaction(SIGTERM, &old[0], NULL), 0);
  ck_assert_int_eq(sigaction(SIGUSR1, &old[1], NULL), 0);
  ck_assert_int_eq(sigaction(SIGPIPE, &old[2], NULL), 0);
  ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, &old_mask, NULL), 0);

  ck_assert_msg(ps.not_default == 0,
                "process worker: %d handlers not SIG_DFL, first signal %d",
                ps.not_default, ps.first_not_default);
  ck_assert_msg(ps.blocked == 0, "process worker blocks %#llx",
                (unsigned long long)ps.blocked);
  ck_assert_msg(ts.blocked == worker_thread_mask(),
                "worker thread blocks %#llx, expected %#llx",
                (unsigned long long)ts.blocked,
                (unsigned long long)worker_thread_mask());
}
END_TEST

/* ================================================================ main */

int main(void)
{
  Suite *s = suite_create("fork");

  TCase *tc = tcase_create("fork");
  harness_tcase(tc, 20);
  tcase_add_test(tc, catalog48_fork_while_thread_pool_busy);
  tcase_add_test(tc, catalog48_fork_while_process_pool_busy);
  tcase_add_test(tc, catalog49_fork_while_locks_are_hammered);
  tcase_add_test(tc, catalog50_spawn_from_busy_parent);
  tcase_add_test(tc, catalog51_workers_hold_exactly_the_fds_at_create);
  tcase_add_test(tc, catalog51_workers_hold_no_fd_of_other_crew_objects);
  tcase_add_test(tc, catalog51_port_free_after_parent_sigkill);
  tcase_add_test(tc, catalog52_signal_state_in_workers);
  suite_add_tcase(s, tc);

  return run_suite(s);
}
