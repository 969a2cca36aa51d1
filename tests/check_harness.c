/*
 * check_harness.c - the fault harness's own tests (tests/harness.h): each
 * resource it counts moves by exactly one when one is made, a test that
 * leaks a descriptor fails with a message that names it, and the watchdog
 * names a hung test and kills it before Check's timeout. A nested suite,
 * run in a forked child, plays the failing tests.
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

/* ======================================================= harness self-test */

static void *park_on_gate(void *arg)
{
  gate_pass(arg);
  return NULL;
}

/* The harness: each resource it counts moves by exactly one when one is
 * made, and harness_compare names it with both numbers. */
START_TEST(harness_counts_each_resource)
{
  struct harness_resources base, now;
  char msg[512];
  harness_count(&base);
  ck_assert_uint_ge(base.fds, 3);
  ck_assert_uint_ge(base.threads, 1);  /* sanitizers may add their own */
  ck_assert_uint_eq(base.children, 1); /* the watchdog */
  ck_assert_uint_eq(base.zombies, 0);

  int fd = dup(0);
  ck_assert_int_ge(fd, 0);
  harness_count(&now);
  ck_assert_uint_eq(now.fds, base.fds + 1);
  ck_assert_int_eq(harness_compare(&base, &now, msg, sizeof msg), 1);
  char want[128];
  snprintf(want, sizeof want, "fds: %zu after, %zu before;", base.fds + 1,
           base.fds);
  ck_assert_msg(strstr(msg, want) != NULL, "message \"%s\"", msg);
  close(fd);
  harness_count(&now);
  ck_assert_int_eq(harness_compare(&base, &now, msg, sizeof msg), 0);
  ck_assert_str_eq(msg, "");

  gate g;
  gate_init(&g);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, park_on_gate, &g), 0);
  harness_count(&now);
  ck_assert_uint_eq(now.threads, base.threads + 1);
  ck_assert_int_eq(harness_compare(&base, &now, msg, sizeof msg), 1);
  snprintf(want, sizeof want, "threads: %zu after, %zu before;",
           base.threads + 1, base.threads);
  ck_assert_msg(strstr(msg, want) != NULL, "message \"%s\"", msg);
  gate_open(&g, 1);
  ck_assert_int_eq(pthread_join(t, NULL), 0);
  gate_fini(&g);

  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0)
    _exit(0);
  siginfo_t info;
  memset(&info, 0, sizeof info);
  ck_assert_int_eq(waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT), 0);
  harness_count(&now); /* a zombie now: reaped only below */
  ck_assert_uint_eq(now.children, base.children + 1);
  ck_assert_uint_eq(now.zombies, base.zombies + 1);
  ck_assert_int_eq(harness_compare(&base, &now, msg, sizeof msg), 2);
  ck_assert_ptr_nonnull(strstr(msg, "children: 2 after, 1 before;"));
  ck_assert_ptr_nonnull(strstr(msg, "zombies: 1 after, 0 before;"));
  ck_assert_int_eq(waitpid(pid, NULL, 0), pid);

  long page = sysconf(_SC_PAGESIZE);
  void *shared = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ck_assert_ptr_ne(shared, MAP_FAILED);
  harness_count(&now);
  ck_assert_uint_eq(now.mappings, base.mappings + 1);
  ck_assert_int_eq(harness_compare(&base, &now, NULL, 0), 1);
  munmap(shared, (size_t)page);
#ifdef MADV_WIPEONFORK
  void *wipe = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ck_assert_ptr_ne(wipe, MAP_FAILED);
  if (madvise(wipe, (size_t)page, MADV_WIPEONFORK) == 0) {
    harness_count(&now);
    ck_assert_uint_eq(now.mappings, base.mappings + 1);
  }
  munmap(wipe, (size_t)page);
#endif
  harness_count(&now);
  ck_assert_int_eq(harness_compare(&base, &now, msg, sizeof msg), 0);
}
END_TEST

/* Tests of a nested suite, run in a forked child by the tests below. */
static int leaked_fd = -1;

START_TEST(nested_leaks_an_fd)
{
  leaked_fd = dup(0);
}
END_TEST

START_TEST(nested_is_clean)
{
  int fd = dup(0);
  close(fd);
}
END_TEST

START_TEST(nested_hangs_forever)
{
  gate g;
  gate_init(&g);
  gate_pass(&g); /* nobody opens it */
}
END_TEST

/* Run a nested suite of `tests` in this (forked) process; stderr goes to
 * `err`. Returns 0 if it went as expected: `want_failures` failures, whose
 * messages contain `want_msg`, and in `err`, `want_err` (if not NULL). */
struct nested {
  double timeout_s;
  const TTest *tests[2];
  int ntests;
  int want_failures;
  const char *want_msg;
  const char *want_err;
};

static int run_nested(void *arg)
{
  const struct nested *n = arg;
  FILE *err = tmpfile();
  CHILD_CHECK(err != NULL);
  int saved = dup(STDERR_FILENO);
  CHILD_CHECK(saved >= 0);
  dup2(fileno(err), STDERR_FILENO);
  setenv("CREW_HARNESS_GDB", "0", 1);
  setenv("CK_TIMEOUT_MULTIPLIER", "1", 1);
  Suite *s = suite_create("nested");
  TCase *tc = tcase_create("nested");
  harness_tcase(tc, n->timeout_s);
  for (int i = 0; i < n->ntests; i++)
    _tcase_add_test(tc, n->tests[i], 0, 0, 0, 1);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_set_fork_status(sr, CK_FORK);
  srunner_run_all(sr, CK_SILENT);
  int failures = srunner_ntests_failed(sr);
  int run = srunner_ntests_run(sr);
  TestResult **fails = srunner_failures(sr);
  bool msg_found = n->want_failures == 0;
  for (int i = 0; i < failures; i++)
    if (n->want_msg != NULL && strstr(tr_msg(fails[i]), n->want_msg) != NULL)
      msg_found = true;
  char text[8192] = "";
  fflush(err);
  rewind(err);
  size_t len = fread(text, 1, sizeof text - 1, err);
  text[len] = '\0';
  dup2(saved, STDERR_FILENO);
  close(saved);
  fclose(err);
  if (run != n->ntests || failures != n->want_failures || !msg_found)
    for (int i = 0; i < failures; i++)
      fprintf(stderr, "nested failure: %s\n", tr_msg(fails[i]));
  free(fails);
  srunner_free(sr);
  CHILD_EQ(run, n->ntests);
  CHILD_EQ(failures, n->want_failures);
  CHILD_CHECK(msg_found);
  if (n->want_err != NULL && strstr(text, n->want_err) == NULL) {
    fprintf(stderr, "nested stderr lacks \"%s\":\n%s\n", n->want_err, text);
    return 1;
  }
  return 0;
}

/* The fixture fails a test that leaks a descriptor, naming it, and passes
 * a clean one (a full Check run, nested in a child). */
START_TEST(harness_fails_a_leaky_test)
{
  struct nested n = {.timeout_s = 10,
                     .tests = {nested_leaks_an_fd, nested_is_clean},
                     .ntests = 2,
                     .want_failures = 1,
                     .want_msg = "harness: the test left resources behind: "
                                 "fds: ",
                     .want_err = NULL};
  ck_assert_child_ok(in_child(run_nested, &n));
}
END_TEST

/* The watchdog names a hung test and kills it before Check's timeout:
 * Check then reports signal 9, not "Test timeout expired". */
START_TEST(harness_watchdog_kills_a_hung_test)
{
  struct nested n = {.timeout_s = 1.5,
                     .tests = {nested_hangs_forever},
                     .ntests = 1,
                     .want_failures = 1,
                     .want_msg = "signal 9",
                     .want_err = "HUNG: nested_hangs_forever (pid"};
  ck_assert_child_ok(in_child(run_nested, &n));
}
END_TEST

/* ================================================================ main */

int main(void)
{
  Suite *s = suite_create("harness");

  TCase *tc = tcase_create("harness");
  harness_tcase(tc, 15);
  tcase_add_test(tc, harness_counts_each_resource);
  tcase_add_test(tc, harness_fails_a_leaky_test);
  tcase_add_test(tc, harness_watchdog_kills_a_hung_test);
  suite_add_tcase(s, tc);

  return run_suite(s);
}
