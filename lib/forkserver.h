/*
 * forkserver.h - a single-threaded process that forks a pool's workers (see
 * forkserver.c). Called by one thread of the parent only (the process pool's
 * manager); not thread-safe.
 */
#ifndef CREW_FORKSERVER_H
#define CREW_FORKSERVER_H

#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>

/* What the server reports, through ops->report, from its own process. */
enum crew__fs_report {
  CREW__FS_SPAWNED = 1, /* slot's worker started: pid */
  CREW__FS_FAILED = 2,  /* fork for slot failed: errno in `value` */
  CREW__FS_DIED = 3     /* slot's worker ended: pid, wait code in `value` */
};

struct crew__forkserver_ops {
  /* In a new worker process of `slot`: run it. Must not return. */
  void (*worker_main)(void *arg, uint32_t slot);
  /* In the server process: tell the parent (through shared memory). The
   * wait code is the exit status 0..255, or -N if signal N ended it. */
  void (*report)(void *arg, int kind, uint32_t slot, pid_t pid, int value);
  void *arg;
  uint32_t nslots;
};

struct crew__forkserver {
  pid_t pid;   /* the server */
  int fd;      /* this end of the request socket, close-on-exec */
  bool reaped; /* the server died and was waited for */
};

/*
 * Fork the server from the calling thread. The server dies with that thread
 * (PR_SET_PDEATHSIG) or when asked, killing its workers first. Returns 0 or
 * CREW_ENOMEM.
 */
int crew__forkserver_start(struct crew__forkserver *fs,
                           const struct crew__forkserver_ops *ops);

/* What the parent asks of the server. */
enum crew__fs_ask {
  CREW__FS_SPAWN = 1, /* a worker in `slot` (the slot must be free: never
                         spawned, or reaped); the answer comes as a report */
  CREW__FS_REAP = 2,  /* reap the worker of `slot` after its death was
                         reported: until then its pid stays reserved, so
                         the parent may signal it safely */
  CREW__FS_QUIT = 3   /* (crew__forkserver_stop) */
};

/* Send a request: 0 or CREW_ENOMEM (the server is gone). */
int crew__forkserver_ask(struct crew__forkserver *fs, int op, uint32_t slot);

/* Whether the server still runs: false once it has died (a crash, a kill
 * from outside, a failure at its start), which this notices with a waitpid
 * that does not block. Call from the thread that started it. */
bool crew__forkserver_alive(struct crew__forkserver *fs);

/* Stop the server: it kills (SIGKILL) and reaps every worker left, then
 * exits; this waits for it. */
void crew__forkserver_stop(struct crew__forkserver *fs);

#endif
