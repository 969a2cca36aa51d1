/*
 * demo/demo.h - what the small demos share, so that each demo's own file
 * shows only the Python example and its crew translation:
 *
 *  - demo_start(): line-buffered stdout, and the options every demo takes:
 *    --tick MS (the length of Python's time.sleep(1), 1000 by default, so
 *    that tests can run the sleeping demos fast) and --help;
 *  - demo_sleep_ticks(): time.sleep() in ticks, with nanosleep();
 *  - demo_now_ns(): a CLOCK_MONOTONIC timestamp (one clock for every
 *    process on the machine, so children's times compare with the parent's);
 *  - demo_trace(): an optional machine-readable trace for the tests. When
 *    the environment variable CREW_DEMO_TRACE names a file, each task
 *    appends lines such as "A start 123456789" and "A end 223456789" to it
 *    (nanoseconds of demo_now_ns()); tests/check_demos.sh reads them to check
 *    that two tasks really overlapped;
 *  - demo_fail(): report a failed crew call with crew_strerror();
 *  - demo_print_ints(): print an array of ints as Python prints a list.
 *
 * Include it first (it asks for POSIX before any system header). Every
 * function is static inline: each demo is a single .c file and uses what it
 * needs.
 */
#ifndef CREW_DEMO_H
#define CREW_DEMO_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* nanosleep, clock_gettime, O_CLOEXEC */
#endif

#include <crew.h>

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEMO_NS_PER_MS UINT64_C(1000000)

/* The demo's name, for messages (set by demo_start). */
static const char *demo_name = "demo";

/* Print the usage text to `to`. */
static inline void demo_usage(FILE *to, const char *about)
{
  fprintf(
      to,
      "usage: %s [--tick MS] [--help]\n"
      "%s\n"
      "\n"
      "  --tick MS  how long one tick (Python's time.sleep(1)) lasts, in\n"
      "             milliseconds; 1000 by default\n"
      "  --help     print this and exit\n"
      "\n"
      "If CREW_DEMO_TRACE names a file, tasks append \"NAME start NS\" and\n"
      "\"NAME end NS\" lines to it (CLOCK_MONOTONIC nanoseconds).\n",
      demo_name, about);
}

/* Parse a tick length in milliseconds, 0..3600000; false if it is not one. */
static inline bool demo_parse_ms(const char *s, uint64_t *ms)
{
  if (s == NULL || *s < '0' || *s > '9')
    return false; /* strtoull would accept " 5", "-5" and "" */
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0' || v > 3600000)
    return false;
  *ms = v;
  return true;
}

/*
 * demo_start - set stdout up and read the options. Returns the tick length
 * in nanoseconds. Exits with status 0 after --help, 2 after a bad option.
 * `name` is the demo's name, `about` one line saying what it shows.
 */
static inline uint64_t demo_start(int argc, char **argv, const char *name,
                                  const char *about)
{
  /*
   * Line-buffer stdout, before anything is printed. Written to a pipe or a
   * file, stdout is otherwise block-buffered: a thread's or a child
   * process's lines would sit in a buffer and come out in one lump at the
   * end (crew flushes stdout before it forks and when a child exits, so
   * nothing would be lost or written twice, but the interleaving these
   * demos are about would not show). With line buffering every line goes
   * out as it is printed, in one write(2), so lines from two threads or
   * two processes never tear into each other; within a process, stdio's
   * own lock keeps each printf whole.
   */
  setvbuf(stdout, NULL, _IOLBF, 0);

  demo_name = name;
  uint64_t tick_ms = 1000;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *ms = NULL; /* the value of --tick MS or --tick=MS */
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      demo_usage(stdout, about);
      exit(0);
    } else if (strcmp(arg, "--tick") == 0) {
      ms = i + 1 < argc ? argv[++i] : "";
    } else if (strncmp(arg, "--tick=", 7) == 0) {
      ms = arg + 7;
    } else {
      fprintf(stderr, "%s: unknown option '%s'\n", name, arg);
      demo_usage(stderr, about);
      exit(2);
    }
    if (!demo_parse_ms(ms, &tick_ms)) {
      fprintf(stderr, "%s: --tick wants milliseconds, 0 to 3600000, not '%s'\n",
              name, ms);
      exit(2);
    }
  }
  return tick_ms * DEMO_NS_PER_MS;
}

/* demo_now_ns - CLOCK_MONOTONIC now, in nanoseconds. */
static inline uint64_t demo_now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* demo_sleep_ticks - sleep n ticks of tick_ns each (Python's time.sleep). */
static inline void demo_sleep_ticks(uint64_t tick_ns, unsigned n)
{
  uint64_t ns = tick_ns * n;
  struct timespec left = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  while (nanosleep(&left, &left) != 0 && errno == EINTR)
    continue; /* a signal cut the sleep short: sleep the rest */
}

/*
 * demo_trace - if CREW_DEMO_TRACE names a file, append "TASK EVENT NS\n" to
 * it. Each call opens the file with O_APPEND and writes the line with one
 * write(2), so lines from several threads and processes never mix. Only for
 * the tests: a failure is reported on stderr and otherwise ignored.
 */
static inline void demo_trace(const char *task, const char *event)
{
  const char *path = getenv("CREW_DEMO_TRACE");
  if (path == NULL || *path == '\0')
    return;
  char line[128];
  int len = snprintf(line, sizeof line, "%s %s %llu\n", task, event,
                     (unsigned long long)demo_now_ns());
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0 || len < 0 || (size_t)len >= sizeof line ||
      write(fd, line, (size_t)len) != (ssize_t)len)
    fprintf(stderr, "%s: cannot trace to %s\n", demo_name, path);
  if (fd >= 0)
    close(fd);
}

/*
 * demo_fail - report that `what` failed with crew error `rc`, on stderr.
 * Returns 1, the exit status of a demo that failed:
 * `return demo_fail("crew_pool_create", rc);`
 */
static inline int demo_fail(const char *what, int rc)
{
  fprintf(stderr, "%s: %s: %s\n", demo_name, what, crew_strerror(rc));
  return 1;
}

/* demo_print_ints - print `prefix` then v[0..n) as Python prints a list of
 * ints: "[1, 2, 3]". */
static inline void demo_print_ints(const char *prefix, const int *v, size_t n)
{
  printf("%s[", prefix);
  for (size_t i = 0; i < n; i++)
    printf("%s%d", i > 0 ? ", " : "", v[i]);
  printf("]\n");
}

#endif /* CREW_DEMO_H */
