/*
 * testhook.h - the hook points of crew/testhook.h. Without CREW_TEST_HOOKS
 * (the default) every macro here is a constant 0 and compiles to nothing.
 */
#ifndef CREW_LIB_TESTHOOK_H
#define CREW_LIB_TESTHOOK_H

#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>

#ifdef CREW_TEST_HOOKS
#include <crew/testhook.h>

/* Call the installed hook, if any; its verdict (0 or a CREW_E* code). */
int crew__hook(enum crew_test_point point, const void *object);
#define CREW__HOOK(point, object) crew__hook((point), (object))
#else
#define CREW__HOOK(point, object) ((void)(object), 0)
#endif

/*
 * The library's allocator calls: malloc and friends, behind the
 * CREW_TP_ALLOC point so that tests can fail the k-th allocation.
 */
static inline void *crew__malloc(size_t size)
{
  if (CREW__HOOK(CREW_TP_ALLOC, (const void *)(uintptr_t)size) != 0)
    return NULL;
  return malloc(size);
}

static inline void *crew__calloc(size_t n, size_t size)
{
  if (CREW__HOOK(CREW_TP_ALLOC, (const void *)(uintptr_t)size) != 0)
    return NULL;
  return calloc(n, size);
}

static inline void *crew__realloc(void *p, size_t size)
{
  if (CREW__HOOK(CREW_TP_ALLOC, (const void *)(uintptr_t)size) != 0)
    return NULL;
  return realloc(p, size);
}

static inline void *crew__aligned_alloc(size_t align, size_t size)
{
  if (CREW__HOOK(CREW_TP_ALLOC, (const void *)(uintptr_t)size) != 0)
    return NULL;
  return aligned_alloc(align, size);
}

static inline char *crew__strdup(const char *s)
{
  if (CREW__HOOK(CREW_TP_ALLOC, (const void *)(uintptr_t)(strlen(s) + 1)) != 0)
    return NULL;
  return strdup(s);
}

/* mmap(), behind the CREW_TP_MAP point. */
static inline void *crew__mmap(void *addr, size_t size, int prot, int flags,
                               int fd, off_t off)
{
  if (CREW__HOOK(CREW_TP_MAP, (const void *)(uintptr_t)size) != 0) {
    errno = ENOMEM;
    return MAP_FAILED;
  }
  return mmap(addr, size, prot, flags, fd, off);
}

/* fork(), behind the CREW_TP_FORK point. */
static inline pid_t crew__fork(void)
{
  if (CREW__HOOK(CREW_TP_FORK, NULL) != 0) {
    errno = EAGAIN;
    return -1;
  }
  return fork();
}

#endif
