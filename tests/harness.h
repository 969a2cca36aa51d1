/*
 * harness.h - the fault harness of crew's reliability suites.
 *
 * Check already runs each test in its own child with a timeout. The harness
 * adds what a fault test needs on top:
 *   - a watchdog in the test's child that, shortly before Check's timeout,
 *     prints every thread's backtrace (gdb if present, else the test's name
 *     and the threads of /proc/self/task) and kills the process group, so a
 *     hang names itself;
 *   - a baseline of the process's resources taken before the test (open
 *     descriptors, threads, children, zombies, mappings) and compared after
 *     it: a test that leaks any of them fails.
 *
 * Use: harness_tcase(tc, timeout_s) on a TCase (instead of
 * tcase_set_timeout): it sets the timeout and adds the checked fixture.
 */
#ifndef CREW_HARNESS_H
#define CREW_HARNESS_H

#include <check.h>
#include <stddef.h>

/* What the harness counts, for tests that want to look themselves. */
struct harness_resources {
  size_t fds;      /* entries of /proc/self/fd */
  size_t threads;  /* entries of /proc/self/task */
  size_t children; /* live children of this process (any state) */
  size_t zombies;  /* children in state Z */
  size_t mappings; /* lines of /proc/self/maps */
};

void harness_count(struct harness_resources *r);

/* The fixture: baseline and watchdog before, comparison after. */
void harness_setup(void);
void harness_teardown(void);

/* tcase_set_timeout(tc, timeout_s) plus the checked fixture above. */
void harness_tcase(TCase *tc, double timeout_s);

#endif
