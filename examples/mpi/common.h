/*
 * common.h - what the two programs of this example share: the work they
 * map, the checksum they print, and how they read a number argument, in
 * one place so that they cannot drift apart.
 *
 * An item is the tour's computation (demo/tour.c, compute): R steps of a
 * 64-bit mixing function. Here the starting value also depends on the
 * item's index, so item i gives a value that depends only on i and R,
 * whichever process, thread or machine computes it.
 *
 * The checksum is FNV-1a (64 bits) over the results in item order, each
 * result taken as its 8 bytes, least significant first; an item whose task
 * failed counts as the value 0. Only the order of the items matters, never
 * how they were split between ranks, workers or chunks.
 */
#ifndef MPI_EXAMPLE_COMMON_H
#define MPI_EXAMPLE_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

/* Item i after `rounds` steps of the tour's mixing function. */
static inline uint64_t item_value(uint64_t i, uint64_t rounds)
{
  uint64_t x = 0x9e3779b97f4a7c15u ^ (i * 0xd1b54a32d192ed03u);
  for (uint64_t s = 0; s < rounds; s++)
    x = (x ^ (x >> 31)) * 0xbf58476d1ce4e5b9u + s;
  return x;
}

#define CHECKSUM_START 0xcbf29ce484222325u /* FNV-1a 64 offset basis */

/* Fold one result into a running FNV-1a 64 checksum. */
static inline uint64_t checksum_add(uint64_t h, uint64_t value)
{
  for (int b = 0; b < 8; b++) {
    h ^= (value >> (8 * b)) & 0xffu;
    h *= 0x100000001b3u; /* FNV 64 prime */
  }
  return h;
}

/* Read a whole decimal number into *v; false for anything else (a sign,
 * junk after the digits, an empty string, out of range). */
static inline bool parse_u64(const char *s, uint64_t *v)
{
  if (s == NULL || *s < '0' || *s > '9')
    return false;
  char *end;
  errno = 0;
  unsigned long long x = strtoull(s, &end, 10);
  if (errno != 0 || *end != '\0')
    return false;
  *v = x;
  return true;
}

/* The value after option argv[*a], read as a number into *v (*a moves on
 * to it). */
static inline bool number_arg(int argc, char **argv, int *a, uint64_t *v)
{
  if (*a + 1 >= argc)
    return false;
  return parse_u64(argv[++*a], v);
}

#endif /* MPI_EXAMPLE_COMMON_H */
