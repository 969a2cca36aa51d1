/* check_inject.c - placeholder until its suite lands. */
#include "harness.h"
#include "testutil.h"

START_TEST(test_placeholder)
{
  ck_assert_int_eq(crew_strerror(0)[0], 's');
}
END_TEST

int main(void)
{
  Suite *s = suite_create("inject");
  TCase *tc = tcase_create("placeholder");
  harness_tcase(tc, 10);
  tcase_add_test(tc, test_placeholder);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
