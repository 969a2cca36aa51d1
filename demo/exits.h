/*
 * demo/exits.h - how a worker process ended, in words, for the demos that
 * report a task whose worker died (server, tour): "worker 1234 killed by
 * SIGSEGV" or "worker 1234 exited with 3", from crew_future_exit().
 */
#ifndef CREW_DEMO_EXITS_H
#define CREW_DEMO_EXITS_H

#include <crew.h>

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

/* The name of signal sig ("SIGSEGV"), or NULL for one not listed here. */
static inline const char *demo_signal_name(int sig)
{
  static const struct {
    int sig;
    const char *name;
  } names[] = {
      {SIGABRT, "SIGABRT"}, {SIGALRM, "SIGALRM"}, {SIGBUS, "SIGBUS"},
      {SIGFPE, "SIGFPE"},   {SIGHUP, "SIGHUP"},   {SIGILL, "SIGILL"},
      {SIGINT, "SIGINT"},   {SIGKILL, "SIGKILL"}, {SIGPIPE, "SIGPIPE"},
      {SIGQUIT, "SIGQUIT"}, {SIGSEGV, "SIGSEGV"}, {SIGSYS, "SIGSYS"},
      {SIGTERM, "SIGTERM"}, {SIGTRAP, "SIGTRAP"}, {SIGUSR1, "SIGUSR1"},
      {SIGUSR2, "SIGUSR2"}, {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"},
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (names[i].sig == sig)
      return names[i].name;
  return NULL;
}

/*
 * Write how the worker that ran f's task ended into buf ("worker 1234
 * killed by SIGSEGV", "worker 1234 exited with 3"): true, or false with buf
 * untouched when crew knows of no worker's death under it (the task ran, was
 * cancelled, ran on a thread, or was lost when its pool broke).
 */
static inline bool demo_describe_exit(const crew_future *f, char *buf,
                                      size_t size)
{
  crew_exit e;
  if (crew_future_exit(f, &e) != 0)
    return false;
  const char *name = e.code < 0 ? demo_signal_name(-e.code) : NULL;
  if (e.code >= 0)
    snprintf(buf, size, "worker %ld exited with %d", (long)e.pid, e.code);
  else if (name != NULL)
    snprintf(buf, size, "worker %ld killed by %s", (long)e.pid, name);
  else
    snprintf(buf, size, "worker %ld killed by signal %d", (long)e.pid, -e.code);
  return true;
}

#endif
