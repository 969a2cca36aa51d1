/*
 * harness.h - the fault harness of crew's reliability suites.
 *
 * Check already runs each test in its own child with a timeout. The harness
 * adds what a fault test needs on top:
 *   - a watchdog that, shortly before Check's timeout, prints "HUNG:" with
 *     the test case's name, the test's threads (from /proc: name, state,
 *     kernel wait channel) and every thread's backtrace (gdb, if env GDB
 *     names it or gdb is in PATH, unless CREW_HARNESS_GDB=0), then kills
 *     the test's children and the test (its process group when the test
 *     leads one, as Check's fork mode makes it), so a hang names itself and
 *     Check reports the test as failed;
 *   - a baseline of the process's resources taken before the test (open
 *     descriptors, threads, children, zombies, mappings) and compared after
 *     it: a test that leaks any of them fails, with a message naming the
 *     resource and both numbers. Threads and children may take a moment to
 *     go after a pool is destroyed, so the comparison waits up to 2 s for
 *     the counts to come back before it fails.
 *
 * Use: harness_tcase(tc, timeout_s) on a TCase (instead of
 * tcase_set_timeout): it sets the timeout and adds the checked fixture.
 * Each TCase keeps its own timeout (up to 64 distinct timeout values per
 * program). Check honours CK_TIMEOUT_MULTIPLIER, and so does the watchdog.
 *
 * The watchdog is a child process of the test, forked at setup (after the
 * baseline) and reaped at teardown (before the comparison): it keeps the
 * test single-threaded, and it still works when the test is wedged (a lock
 * held, malloc's included). So, during a test:
 *   - the test has one child more than it made, which harness_count() shows;
 *   - a test must not reap children it did not make (waitpid(-1, ...), or a
 *     SIGCHLD handler that reaps everything): do that in a forked child of
 *     your own. Teardown fails the test if the watchdog was reaped by
 *     someone else.
 *
 * Before the baseline, setup starts and joins one thread, so that threads a
 * sanitizer runtime starts on the first pthread_create (ThreadSanitizer's
 * background thread) count in the baseline, not against the test.
 *
 * What counts (Linux /proc; elsewhere every count is 0 and nothing is
 * checked): see struct harness_resources. Private anonymous mappings are
 * not counted, because glibc keeps the stacks of exited threads and the
 * malloc arenas of threads mapped (a cache, not a leak); heap leaks are
 * LeakSanitizer's to find. The mappings crew itself makes are counted:
 * every MAP_SHARED mapping (queues, arenas, process outputs) and every
 * wipe-on-fork page (a pool's fork guard).
 */
#ifndef CREW_HARNESS_H
#define CREW_HARNESS_H

#include <check.h>
#include <stddef.h>

/* What the harness counts, for tests that want to look themselves. */
struct harness_resources {
  size_t fds;        /* entries of /proc/self/fd (less the one reading it) */
  size_t threads;    /* entries of /proc/self/task */
  size_t children;   /* live children of this process (any state) */
  size_t zombies;    /* children in state Z */
  size_t mappings;   /* mappings crew makes: shared ones (MAP_SHARED) and
                        wipe-on-fork ones, from /proc/self/smaps */
  size_t maps_total; /* every line of /proc/self/maps: reported in messages,
                        not compared (see above) */
};

void harness_count(struct harness_resources *r);

/*
 * Compare two counts: returns how many of fds, threads, children, zombies
 * and mappings grew from `before` to `after` (fewer is not a leak: a thread
 * of the baseline may have been on its way out), and (if msg is not NULL)
 * writes a message naming each, such as "fds: 5 after, 4 before; ", into msg
 * (at most size bytes, always terminated). The fixture's teardown uses it.
 */
int harness_compare(const struct harness_resources *before,
                    const struct harness_resources *after, char *msg,
                    size_t size);

/*
 * The fixture: baseline and watchdog before, comparison after. Used alone
 * (tcase_add_checked_fixture(tc, harness_setup, harness_teardown)), the
 * watchdog uses the timeout of the last harness_tcase() call, or else
 * Check's default (CK_DEFAULT_TIMEOUT, 4 s).
 */
void harness_setup(void);
void harness_teardown(void);

/* tcase_set_timeout(tc, timeout_s) plus the checked fixture above. */
void harness_tcase(TCase *tc, double timeout_s);

/*
 * Start and join one thread: a runtime that starts threads of its own on
 * the first pthread_create (ThreadSanitizer's background thread) has them
 * running from then on. Setup calls it before the baseline, so that they
 * count there, not as the test's; a forked child calls it before a
 * baseline of its own.
 */
void harness_settle_threads(void);

#endif
