/* check_queue.c - placeholder while the suite is written. */
#include "testutil.h"

START_TEST(builds)
{
  ck_assert_int_eq(0, 0);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("queue");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, builds);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
