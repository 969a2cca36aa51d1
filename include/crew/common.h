/*
 * crew/common.h - error codes, time conventions and export macros shared by
 * every crew header.
 *
 * Thread safety: everything declared here is safe to call from any thread at
 * any time; nothing here blocks.
 *
 * Error convention: every crew call that can fail returns an int, 0 on
 * success or one of the negative CREW_E* codes below. crew never sets errno
 * for its callers, never prints, never aborts and never exits. Task
 * functions return 0 or a positive code of their own; negative values are
 * reserved for crew.
 *
 * Time convention: every timeout is a relative uint64_t count of
 * nanoseconds, measured on CLOCK_MONOTONIC (a change of the wall clock
 * changes nothing). A timeout of 0 tries once without blocking;
 * CREW_FOREVER (UINT64_MAX) waits as long as needed. crew turns the timeout
 * into a deadline once, on entry, so spurious wake-ups never stretch a wait.
 */
#ifndef CREW_COMMON_H
#define CREW_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CREW_BUILDING) && defined(__GNUC__)
#define CREW_API __attribute__((visibility("default")))
#else
#define CREW_API
#endif

/* Wait as long as needed: pass as any timeout_ns. */
#define CREW_FOREVER UINT64_MAX

/*
 * The error codes, with the message crew_strerror() gives for each. One
 * table, so codes and messages cannot drift apart.
 */
#define CREW_ERRNO_MAP(X)                                                      \
  X(EINVAL, -1, "invalid argument")                                            \
  X(ENOMEM, -2, "out of memory or another resource")                           \
  X(ETIMEDOUT, -3, "timed out")                                                \
  X(ECLOSED, -4, "closed: the queue is closed or the pool is shut down")       \
  X(ECANCELED, -5, "cancelled before it ran")                                  \
  X(EBUSY, -6, "busy: already running, resolved or in progress")               \
  X(ECRASHED, -7, "the worker process died during the task")                   \
  X(EDEADLINE, -8, "the task overran its deadline and was killed")             \
  X(EINIT, -9, "a worker could not be started: its init failed")

enum crew_error {
#define CREW_ERRNO_ENUM_(name, value, message) CREW_##name = (value),
  CREW_ERRNO_MAP(CREW_ERRNO_ENUM_)
#undef CREW_ERRNO_ENUM_
};

/*
 * crew_strerror - name an error code.
 *
 * Returns "success" for 0, a distinct message for each CREW_E* code, and a
 * message containing "unknown" for any other value (a task's own positive
 * status included). The string is static: never free it. Never blocks.
 */
CREW_API const char *crew_strerror(int code);

/*
 * crew_version - the library's version as "MAJOR.MINOR.PATCH".
 *
 * The string is static. Compare with the CREW_VERSION the headers were
 * compiled against to detect a mismatch between header and library.
 */
CREW_API const char *crew_version(void);

#define CREW_VERSION "0.2.0"

#ifdef __cplusplus
}
#endif

#endif /* CREW_COMMON_H */
