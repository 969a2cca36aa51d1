/*
 * process.c - crew_process: one function run in a forked child.
 *
 * The child's output lives in a small MAP_SHARED mapping made before the
 * fork, with a flag the child sets after fn returns, so the parent can tell
 * "fn returned" from "the child died in fn" (an exit status alone cannot).
 *
 * Reaping: waits use waitid(WNOWAIT) (or poll() on a pidfd where the
 * kernel has them) and do not reap; the reap itself (waitpid) happens under
 * `lock`, which also guards kill. So a kill never reaches a pid that was
 * reaped and may have been reused, and several threads may join, kill and
 * ask at once.
 *
 * Locking: `lock` guards reaped, lost and exit_code. It is never held while
 * waiting for the child.
 */
#include "config.h"

#include "internal.h"

#include <crew/process.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct shared_out {
  _Atomic uint32_t returned; /* set by the child once fn has returned */
  alignas(max_align_t) unsigned char data[];
};

struct crew_process {
  crew__mutex lock;
  bool reaped;   /* waitpid() done: the pid is no longer ours */
  bool lost;     /* something else reaped it: no exit code */
  int exit_code; /* valid once reaped and not lost */
  /* Constant after start: */
  pid_t pid;
  int pidfd; /* -1 where the kernel has none */
  struct shared_out *shared;
  size_t map_size, out_size;
};

static int open_pidfd(pid_t pid)
{
#if HAVE_DECL_SYS_PIDFD_OPEN
  return (int)syscall(SYS_pidfd_open, pid, 0); /* close-on-exec */
#else
  (void)pid;
  return -1;
#endif
}

/*
 * With the lock held: signal the child unless it is known reaped. Through
 * the pidfd where there is one: it names this process only, so a child that
 * an application handler reaped behind our back is never mistaken for a
 * new process with the same pid. Without one, a child reaped elsewhere
 * shows as not ours (ECHILD) first.
 */
static void send_signal(crew_process *p, int signo)
{
  if (p->reaped)
    return;
#if HAVE_DECL_SYS_PIDFD_SEND_SIGNAL
  if (p->pidfd >= 0) {
    syscall(SYS_pidfd_send_signal, p->pidfd, signo, NULL, 0);
    return;
  }
#endif
  siginfo_t info;
  memset(&info, 0, sizeof info);
  if (waitid(P_PID, (id_t)p->pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0 &&
      errno == ECHILD) {
    p->reaped = p->lost = true;
    return;
  }
  kill(p->pid, signo);
}

int crew_process_start(crew_process **pp, crew_fn fn, const void *in,
                       size_t in_size, size_t out_size)
{
  if (pp == NULL || fn == NULL || (in == NULL && in_size > 0))
    return CREW_EINVAL;
  if (out_size > SIZE_MAX - sizeof(struct shared_out))
    return CREW_ENOMEM;
  crew_process *p = crew__calloc(1, sizeof *p);
  if (p == NULL)
    return CREW_ENOMEM;
  p->map_size = sizeof(struct shared_out) + out_size;
  void *map = crew__mmap(NULL, p->map_size, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED || crew__mutex_init(&p->lock) != 0) {
    if (map != MAP_FAILED)
      munmap(map, p->map_size);
    free(p);
    return CREW_ENOMEM;
  }
  p->shared = map;
  p->out_size = out_size;
  fflush(stdout); /* or the child would write it again */
  fflush(stderr);
  pid_t pid = crew__fork();
  if (pid == 0) {
    int rc = fn(in_size > 0 ? in : NULL, out_size > 0 ? p->shared->data : NULL);
    atomic_store(&p->shared->returned, 1);
    fflush(stdout);
    fflush(stderr);
    _exit(rc); /* keeps the low 8 bits, as exit() does */
  }
  if (pid < 0) {
    crew__mutex_destroy(&p->lock);
    munmap(map, p->map_size);
    free(p);
    return CREW_ENOMEM;
  }
  p->pid = pid;
  p->pidfd = open_pidfd(pid);
  *pp = p;
  return 0;
}

/* ------------------------------------------------------------- waiting */

/* Whether the child has ended (not reaped); false and *gone if it is not
 * our child any more. */
static bool has_ended(crew_process *p, bool *gone)
{
  siginfo_t info;
  memset(&info, 0, sizeof info);
  if (waitid(P_PID, (id_t)p->pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    *gone = errno == ECHILD;
    return *gone;
  }
  return info.si_pid == p->pid;
}

/* Sleep until the child may have ended or `d` passes. */
static void wait_for_end(crew_process *p, crew__deadline d)
{
  if (p->pidfd >= 0) {
    int ms = -1;
    if (d.at != CREW__NEVER) {
      uint64_t now = crew__now_ns();
      uint64_t left = d.at > now ? d.at - now : 0;
      ms = left / 1000000u > INT32_MAX ? INT32_MAX
                                       : (int)((left + 999999u) / 1000000u);
    }
    struct pollfd pfd = {.fd = p->pidfd, .events = POLLIN};
    poll(&pfd, 1, ms);
    return;
  }
  if (d.at == CREW__NEVER) {
    siginfo_t info;
    waitid(P_PID, (id_t)p->pid, &info, WEXITED | WNOWAIT);
    return;
  }
  struct timespec nap = {.tv_sec = 0, .tv_nsec = 1000000}; /* no pidfd */
  nanosleep(&nap, NULL);
}

/* Reap the ended child under the lock, once. */
static void reap(crew_process *p, bool gone)
{
  crew__mutex_lock(&p->lock);
  if (!p->reaped) {
    int status = 0;
    pid_t r;
    while ((r = waitpid(p->pid, &status, 0)) < 0 && errno == EINTR)
      ;
    p->reaped = true;
    p->lost = gone || r != p->pid;
    p->exit_code = WIFEXITED(status)     ? WEXITSTATUS(status)
                   : WIFSIGNALED(status) ? -WTERMSIG(status)
                                         : 0;
  }
  crew__mutex_unlock(&p->lock);
}

int crew_process_join_timed(crew_process *p, int *exit_code,
                            uint64_t timeout_ns)
{
  if (p == NULL)
    return CREW_EINVAL;
  crew__deadline d = crew__deadline_in(timeout_ns);
  for (;;) {
    crew__mutex_lock(&p->lock);
    bool reaped = p->reaped;
    crew__mutex_unlock(&p->lock);
    bool gone = false;
    if (reaped || has_ended(p, &gone)) {
      reap(p, gone);
      break;
    }
    if (crew__deadline_passed(d))
      return CREW_ETIMEDOUT;
    wait_for_end(p, d);
  }
  crew__mutex_lock(&p->lock);
  int rc = p->lost ? CREW_ECRASHED : 0;
  if (exit_code != NULL && !p->lost)
    *exit_code = p->exit_code;
  crew__mutex_unlock(&p->lock);
  return rc;
}

int crew_process_join(crew_process *p, int *exit_code)
{
  return crew_process_join_timed(p, exit_code, CREW_FOREVER);
}

/* ---------------------------------------------------------- the rest */

int crew_process_result(crew_process *p, void *out, size_t out_size)
{
  if (p == NULL || (out == NULL && out_size > 0) || out_size > p->out_size)
    return CREW_EINVAL;
  crew__mutex_lock(&p->lock);
  bool reaped = p->reaped;
  crew__mutex_unlock(&p->lock);
  if (!reaped)
    return CREW_EBUSY;
  if (!atomic_load(&p->shared->returned))
    return CREW_ECRASHED;
  if (out_size > 0)
    memcpy(out, p->shared->data, out_size);
  return 0;
}

int crew_process_kill(crew_process *p, int signo)
{
  if (p == NULL || signo < 0 || signo >= NSIG)
    return CREW_EINVAL;
  crew__mutex_lock(&p->lock);
  send_signal(p, signo);
  crew__mutex_unlock(&p->lock);
  return 0;
}

bool crew_process_alive(crew_process *p)
{
  if (p == NULL)
    return false;
  crew__mutex_lock(&p->lock);
  bool gone = false;
  bool alive = !p->reaped && !has_ended(p, &gone);
  crew__mutex_unlock(&p->lock);
  return alive;
}

pid_t crew_process_pid(const crew_process *p)
{
  return p == NULL ? -1 : p->pid;
}

void crew_process_destroy(crew_process *p)
{
  if (p == NULL)
    return;
  crew__mutex_lock(&p->lock);
  send_signal(p, SIGKILL);
  bool reaped = p->reaped;
  crew__mutex_unlock(&p->lock);
  if (!reaped)
    reap(p, false);
  if (p->pidfd >= 0)
    close(p->pidfd);
  munmap(p->shared, p->map_size);
  crew__mutex_destroy(&p->lock);
  free(p);
}
