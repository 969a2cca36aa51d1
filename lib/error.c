/*
 * error.c - names for crew's error codes, from the one table in
 * crew/common.h (CREW_ERRNO_MAP), and the library's version.
 *
 * No state: the strings are constants.
 */
#include "config.h"

#include "internal.h"

const char *crew_strerror(int code)
{
  switch (code) {
  case 0:
    return "success";
#define CREW_ERRNO_CASE_(name, value, message)                                 \
  case CREW_##name:                                                            \
    return message;
    CREW_ERRNO_MAP(CREW_ERRNO_CASE_)
#undef CREW_ERRNO_CASE_
  default:
    return "unknown error code";
  }
}

const char *crew_version(void)
{
  return PACKAGE_VERSION;
}
