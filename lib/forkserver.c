/*
 * forkserver.c - the process that forks a pool's workers.
 *
 * Why: fork() copies only the calling thread, and every lock another thread
 * held at that moment stays locked forever in the child. A server that the
 * pool forks once, at create, is single-threaded, so the workers it forks
 * later (replacements included) start from its image, not from the
 * parent's image of that later moment, whatever the parent's threads hold
 * then.
 *
 * Protocol: the parent sends requests (spawn a slot's worker, reap a slot's
 * dead worker, quit) over a SOCK_SEQPACKET socket; the server reports
 * through ops->report (the process pool pushes them onto a shared queue).
 * The server learns of a death with waitid(WNOWAIT), reports it and leaves
 * the zombie until the parent asks for the reap: until then no other process
 * can get that pid or process group id, so the parent may kill a worker's
 * group at a deadline without ever hitting a stranger.
 *
 * Lifetime: the server sets PR_SET_PDEATHSIG to SIGKILL, so it dies with
 * the thread that forked it (the pool's manager thread, which lives until
 * the pool is shut down) and with the parent process; each worker sets it
 * too, against the server, which is single-threaded. The server also leaves
 * when its socket reaches end of file. On the way out it kills every worker's
 * process group and reaps them.
 *
 * Signals: the server and its workers each lead their own process group, so
 * a terminal's ^C reaches the application, not them; the server resets
 * every handler it inherited to the default, ignores SIGPIPE and catches
 * SIGCHLD (in its own process, not the application's) only to wake
 * pselect(). Workers start with default handlers and nothing blocked.
 */
#include "config.h"

#include "forkserver.h"

#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef HAVE_SYS_PRCTL_H
#include <sys/prctl.h>
#endif

struct request {
  uint32_t op;
  uint32_t slot;
};

struct child {
  pid_t pid;     /* 0: none */
  bool reported; /* its death was reported; waiting for CREW__FS_REAP */
};

/* Die when the process that forked us (a single thread of it) is gone. */
static void die_with_parent(pid_t parent)
{
#if HAVE_DECL_PR_SET_PDEATHSIG
  prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
  if (getppid() != parent) /* it died before the prctl */
    _exit(0);
}

static void on_sigchld(int sig)
{
  (void)sig; /* only to interrupt pselect() */
}

static void reset_signals(void)
{
  struct sigaction dfl = {.sa_handler = SIG_DFL};
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; sig++)
    sigaction(sig, &dfl, NULL); /* fails harmlessly for KILL and STOP */
}

/* The wait code of a dead child: exit status, or -signal. */
static int wait_code(const siginfo_t *info)
{
  if (info->si_code == CLD_EXITED)
    return info->si_status;
  return -info->si_status;
}

/* Report each worker that died since we last looked; reap none. */
static void look_for_deaths(const struct crew__forkserver_ops *ops,
                            struct child *kids)
{
  for (uint32_t slot = 0; slot < ops->nslots; slot++) {
    struct child *k = &kids[slot];
    if (k->pid == 0 || k->reported)
      continue;
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, (id_t)k->pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == k->pid) {
      k->reported = true;
      ops->report(ops->arg, CREW__FS_DIED, slot, k->pid, wait_code(&info));
    }
  }
}

static void spawn(const struct crew__forkserver_ops *ops, struct child *kids,
                  uint32_t slot, int fd)
{
  if (slot >= ops->nslots || kids[slot].pid != 0) {
    ops->report(ops->arg, CREW__FS_FAILED, slot, 0, EINVAL);
    return;
  }
  pid_t server = getpid();
  pid_t pid = crew__fork();
  if (pid == 0) {
    close(fd);
    setpgid(0, 0);
    die_with_parent(server);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    ops->worker_main(ops->arg, slot);
    _exit(0);
  }
  if (pid < 0) {
    ops->report(ops->arg, CREW__FS_FAILED, slot, 0, errno);
    return;
  }
  setpgid(pid, pid); /* also here: whichever runs first */
  kids[slot] = (struct child){.pid = pid, .reported = false};
  ops->report(ops->arg, CREW__FS_SPAWNED, slot, pid, 0);
}

static void reap(const struct crew__forkserver_ops *ops, struct child *kids,
                 uint32_t slot)
{
  if (slot >= ops->nslots || kids[slot].pid == 0)
    return;
  while (waitpid(kids[slot].pid, NULL, 0) < 0 && errno == EINTR)
    ;
  kids[slot].pid = 0;
}

/* Kill every worker's process group and reap them all. */
static void kill_all(const struct crew__forkserver_ops *ops, struct child *kids)
{
  for (uint32_t slot = 0; slot < ops->nslots; slot++)
    if (kids[slot].pid != 0)
      kill(-kids[slot].pid, SIGKILL);
  for (uint32_t slot = 0; slot < ops->nslots; slot++)
    reap(ops, kids, slot);
}

static void server_main(int fd, pid_t parent,
                        const struct crew__forkserver_ops *ops)
{
  setpgid(0, 0);
  die_with_parent(parent);
  reset_signals();
  signal(SIGPIPE, SIG_IGN);
  struct sigaction chld = {.sa_handler = on_sigchld};
  sigemptyset(&chld.sa_mask);
  sigaction(SIGCHLD, &chld, NULL);
  /* SIGCHLD is delivered only inside pselect(), so a death between the
   * look and the wait still wakes the wait. */
  sigset_t all, wait_mask;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  sigfillset(&wait_mask);
  sigdelset(&wait_mask, SIGCHLD);

  struct child *kids = crew__calloc(ops->nslots, sizeof *kids);
  if (kids == NULL)
    _exit(1);
  for (;;) {
    look_for_deaths(ops, kids);
    fd_set readable;
    FD_ZERO(&readable);
    FD_SET(fd, &readable);
    if (pselect(fd + 1, &readable, NULL, NULL, NULL, &wait_mask) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    struct request req;
    ssize_t n = recv(fd, &req, sizeof req, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n != (ssize_t)sizeof req || req.op == CREW__FS_QUIT)
      break; /* end of file: the parent is gone */
    if (req.op == CREW__FS_SPAWN)
      spawn(ops, kids, req.slot, fd);
    else if (req.op == CREW__FS_REAP)
      reap(ops, kids, req.slot);
  }
  kill_all(ops, kids);
  _exit(0);
}

int crew__forkserver_start(struct crew__forkserver *fs,
                           const struct crew__forkserver_ops *ops)
{
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return CREW_ENOMEM;
  /* Like Python before a fork: what the application wrote but has not
   * flushed must not be written twice. */
  fflush(stdout);
  fflush(stderr);
  pid_t parent = getpid();
  pid_t pid = crew__fork();
  if (pid == 0) {
    close(sv[0]);
    server_main(sv[1], parent, ops);
  }
  close(sv[1]);
  if (pid < 0) {
    close(sv[0]);
    return CREW_ENOMEM;
  }
  fs->pid = pid;
  fs->fd = sv[0];
  fs->reaped = false;
  return 0;
}

int crew__forkserver_ask(struct crew__forkserver *fs, int op, uint32_t slot)
{
  struct request req = {.op = (uint32_t)op, .slot = slot};
  ssize_t n;
  while ((n = send(fs->fd, &req, sizeof req, MSG_NOSIGNAL)) < 0 &&
         errno == EINTR)
    ;
  return n == (ssize_t)sizeof req ? 0 : CREW_ENOMEM;
}

bool crew__forkserver_alive(struct crew__forkserver *fs)
{
  if (fs->reaped)
    return false;
  pid_t rc;
  while ((rc = waitpid(fs->pid, NULL, WNOHANG)) < 0 && errno == EINTR)
    ;
  /* ECHILD: an application handler reaped it with waitpid(-1). */
  if (rc == fs->pid || (rc < 0 && errno == ECHILD))
    fs->reaped = true;
  return !fs->reaped;
}

void crew__forkserver_stop(struct crew__forkserver *fs)
{
  if (!fs->reaped)
    crew__forkserver_ask(fs, CREW__FS_QUIT, 0);
  close(fs->fd);
  /* ECHILD if an application handler reaped it with waitpid(-1): fine. */
  while (!fs->reaped && waitpid(fs->pid, NULL, 0) < 0 && errno == EINTR)
    ;
  fs->fd = -1;
}
