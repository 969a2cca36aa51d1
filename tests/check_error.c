/* check_error.c - crew_strerror and crew_version. */
#include "testutil.h"

#include <string.h>

static const int codes[] = {CREW_EINVAL,   CREW_ENOMEM,    CREW_ETIMEDOUT,
                            CREW_ECLOSED,  CREW_ECANCELED, CREW_EBUSY,
                            CREW_ECRASHED, CREW_EDEADLINE, CREW_EINIT};
#define NCODES (sizeof codes / sizeof codes[0])

START_TEST(success_is_named_success)
{
  ck_assert_str_eq(crew_strerror(0), "success");
}
END_TEST

START_TEST(every_code_has_a_distinct_message)
{
  for (size_t i = 0; i < NCODES; i++) {
    const char *m = crew_strerror(codes[i]);
    ck_assert_ptr_nonnull(m);
    ck_assert_ptr_null(strstr(m, "unknown"));
    ck_assert_str_ne(m, "success");
    for (size_t j = 0; j < i; j++)
      ck_assert_str_ne(m, crew_strerror(codes[j]));
  }
}
END_TEST

START_TEST(codes_are_negative_and_distinct)
{
  for (size_t i = 0; i < NCODES; i++) {
    ck_assert_int_lt(codes[i], 0);
    for (size_t j = 0; j < i; j++)
      ck_assert_int_ne(codes[i], codes[j]);
  }
}
END_TEST

START_TEST(other_values_are_unknown)
{
  const int others[] = {1, 42, -10, -1000, 2147483647, -2147483647 - 1};
  for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
    ck_assert_ptr_nonnull(strstr(crew_strerror(others[i]), "unknown"));
}
END_TEST

START_TEST(init_failure_has_its_own_message)
{
  ck_assert_int_eq(CREW_EINIT, -9);
  ck_assert_str_eq(crew_strerror(CREW_EINIT),
                   "a worker could not be started: its init failed");
}
END_TEST

START_TEST(version_matches_the_header)
{
  ck_assert_str_eq(crew_version(), CREW_VERSION);
}
END_TEST

int main(void)
{
  Suite *s = suite_create("error");
  TCase *tc = tcase_create("strerror");
  tcase_add_test(tc, success_is_named_success);
  tcase_add_test(tc, every_code_has_a_distinct_message);
  tcase_add_test(tc, codes_are_negative_and_distinct);
  tcase_add_test(tc, init_failure_has_its_own_message);
  tcase_add_test(tc, other_values_are_unknown);
  tcase_add_test(tc, version_matches_the_header);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
