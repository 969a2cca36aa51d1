/*
 * arena.h - shared memory for process-mode tasks (see arena.c). Parent only;
 * not thread-safe: the process pool calls it under its lock.
 */
#ifndef CREW_ARENA_H
#define CREW_ARENA_H

#include <stddef.h>

/* The arena's address range, first in struct crew__arena: what a block's
 * offset means, in this process and in every worker. */
struct crew__arena_range {
  unsigned char *base;
  size_t size;
};

struct crew__arena;

/* Reserve the shared range (before forking anything that must see it). */
int crew__arena_create(struct crew__arena **a);
void crew__arena_destroy(struct crew__arena *a);

/* The address of a block, in this process and in every worker. */
static inline void *crew__arena_at(const struct crew__arena *a, size_t offset)
{
  return ((const struct crew__arena_range *)(const void *)a)->base + offset;
}

static inline size_t crew__arena_size(const struct crew__arena *a)
{
  return ((const struct crew__arena_range *)(const void *)a)->size;
}

/* A block of at least n bytes, aligned to its size: 0 or CREW_ENOMEM. */
int crew__arena_alloc(struct crew__arena *a, size_t n, size_t *offset);

/* Give back a block crew__arena_alloc() returned for n bytes. */
void crew__arena_free(struct crew__arena *a, size_t offset, size_t n);

#endif
