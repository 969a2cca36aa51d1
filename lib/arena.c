/*
 * arena.c - the shared memory that carries process-mode tasks: one large
 * MAP_SHARED mapping, reserved once before any worker is forked (so every
 * worker sees it at the same address) and handed out by an allocator that
 * lives in the parent only.
 *
 * The mapping is MAP_NORESERVE: its size is an address range, not memory;
 * pages are made when first touched, and crew__arena_free() gives large
 * blocks' pages back with MADV_REMOVE. So a map over a gigabyte array needs
 * no setting, and an idle pool holds almost nothing. The reservation starts
 * at 64 GiB and halves until the system accepts it (sanitizers and valgrind
 * accept less).
 *
 * Allocator: blocks are powers of two from 64 bytes up. A free block goes on
 * the free list of its size class and is reused as is; new blocks come from
 * a bump pointer. No coalescing: the waste is bounded by a factor of two and
 * the address range is large. Only the parent calls it, under the process
 * pool's lock, so the arena has no lock of its own. Workers only read and
 * write inside the blocks the parent names to them.
 */
#include "config.h"

#include "arena.h"

#include "internal.h"

#include <stdlib.h>
#include <sys/mman.h>

#define MIN_SHIFT 6  /* 64-byte blocks */
#define NCLASSES  48 /* up to 2^53 bytes */
#define RELEASE_SHIFT                                                          \
  16 /* free blocks from 64 KiB up give their pages back                       \
      */
#define RESERVE_MAX ((size_t)64 << 30)
#define RESERVE_MIN ((size_t)64 << 20)

struct free_list {
  size_t *offsets;
  size_t count, room;
};

struct crew__arena {
  struct crew__arena_range r; /* first: see arena.h */
  size_t bump;                /* first byte never handed out */
  struct free_list free[NCLASSES];
};

static unsigned class_of(size_t n)
{
  unsigned c = 0;
  while (((size_t)1 << (c + MIN_SHIFT)) < n)
    c++;
  return c;
}

static size_t class_size(unsigned c)
{
  return (size_t)1 << (c + MIN_SHIFT);
}

int crew__arena_create(struct crew__arena **ap)
{
  struct crew__arena *a = crew__calloc(1, sizeof *a);
  if (a == NULL)
    return CREW_ENOMEM;
  for (size_t size = RESERVE_MAX; size >= RESERVE_MIN; size /= 2) {
    void *p = crew__mmap(NULL, size, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) {
      a->r.base = p;
      a->r.size = size;
      break;
    }
  }
  if (a->r.base == NULL) {
    free(a);
    return CREW_ENOMEM;
  }
#ifdef MADV_DONTDUMP
  madvise(a->r.base, a->r.size, MADV_DONTDUMP); /* no 64 GiB core files */
#endif
  *ap = a;
  return 0;
}

void crew__arena_destroy(struct crew__arena *a)
{
  if (a == NULL)
    return;
  munmap(a->r.base, a->r.size);
  for (unsigned c = 0; c < NCLASSES; c++)
    free(a->free[c].offsets);
  free(a);
}

int crew__arena_alloc(struct crew__arena *a, size_t n, size_t *offset)
{
  if (n > a->r.size)
    return CREW_ENOMEM;
  unsigned c = class_of(n == 0 ? 1 : n);
  struct free_list *fl = &a->free[c];
  if (fl->count > 0) {
    *offset = fl->offsets[--fl->count];
    return 0;
  }
  size_t size = class_size(c);
  size_t at = (a->bump + size - 1) & ~(size - 1); /* natural alignment */
  if (at > a->r.size || size > a->r.size - at)
    return CREW_ENOMEM;
  a->bump = at + size;
  *offset = at;
  return 0;
}

void crew__arena_free(struct crew__arena *a, size_t offset, size_t n)
{
  unsigned c = class_of(n == 0 ? 1 : n);
  struct free_list *fl = &a->free[c];
  if (c + MIN_SHIFT >= RELEASE_SHIFT)
    madvise(a->r.base + offset, class_size(c), MADV_REMOVE);
  if (fl->count == fl->room) {
    size_t room = fl->room ? fl->room * 2 : 16;
    size_t *grown = crew__realloc(fl->offsets, room * sizeof *grown);
    if (grown == NULL)
      return; /* the block is lost to reuse, not to correctness */
    fl->offsets = grown;
    fl->room = room;
  }
  fl->offsets[fl->count++] = offset;
}
