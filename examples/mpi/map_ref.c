/*
 * map_ref - the reference for mpi_map's checksum: the same items, mapped
 * by one crew_map over all of them in a single process, without MPI (this
 * file is built with the plain C compiler and never sees mpi.h). It
 * shares only common.h with mpi_map: the item function and the checksum.
 *
 *   map_ref [--items N] [--rounds R] [--workers W] [--processes]
 *           [--fail-item K]
 *
 * Prints one line, "map_ref: items N rounds R checksum HEX", and exits 0
 * when the map succeeded and every result equals the same item computed
 * again one by one on this thread; otherwise it says what differs and
 * exits 1. --fail-item K counts item K as failed (the value 0), which is
 * what mpi_map --crash-item K must then print.
 */
#include "common.h"

#include <crew.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct item_in {
  uint64_t item, rounds;
};

static int map_item(const void *in, void *out)
{
  const struct item_in *a = in;
  uint64_t v = item_value(a->item, a->rounds);
  memcpy(out, &v, sizeof v);
  return 0;
}

static void usage(FILE *to)
{
  fprintf(to, "usage: map_ref [--items N] [--rounds R] [--workers W] "
              "[--processes] [--fail-item K]\n");
}

int main(int argc, char **argv)
{
  uint64_t items = 2000, rounds = 1000000, workers = 0, fail = UINT64_MAX;
  bool processes = false;
  for (int a = 1; a < argc; a++) {
    const char *arg = argv[a];
    bool ok = true;
    if (strcmp(arg, "--items") == 0)
      ok = number_arg(argc, argv, &a, &items);
    else if (strcmp(arg, "--rounds") == 0)
      ok = number_arg(argc, argv, &a, &rounds);
    else if (strcmp(arg, "--workers") == 0)
      ok = number_arg(argc, argv, &a, &workers) && workers <= CREW_WORKERS_MAX;
    else if (strcmp(arg, "--fail-item") == 0)
      ok = number_arg(argc, argv, &a, &fail);
    else if (strcmp(arg, "--processes") == 0)
      processes = true;
    else if (strcmp(arg, "--help") == 0) {
      usage(stdout);
      return 0;
    } else
      ok = false;
    if (!ok) {
      fprintf(stderr, "map_ref: bad argument: %s\n", arg);
      usage(stderr);
      return 2;
    }
  }
  if (items > SIZE_MAX / sizeof(struct item_in)) {
    fprintf(stderr, "map_ref: --items %" PRIu64 " is too many\n", items);
    return 2;
  }

  size_t n = (size_t)items;
  struct item_in *in = malloc(n ? n * sizeof *in : 1);
  uint64_t *out = malloc(n ? n * sizeof *out : 1);
  if (in == NULL || out == NULL) {
    fprintf(stderr, "map_ref: out of memory\n");
    return 1;
  }
  for (size_t i = 0; i < n; i++)
    in[i] = (struct item_in){.item = i, .rounds = rounds};

  crew_config cfg;
  crew_config_init(&cfg);
  cfg.mode = processes ? CREW_PROCESSES : CREW_THREADS;
  cfg.workers = (size_t)workers;
  cfg.name = "map_ref";
  crew_pool *pool;
  int rc = crew_pool_create(&pool, &cfg);
  if (rc != 0) {
    fprintf(stderr, "map_ref: crew_pool_create: %s\n", crew_strerror(rc));
    return 1;
  }
  rc = crew_map(pool, map_item, in, sizeof *in, out, sizeof *out, n);
  crew_pool_destroy(pool);
  if (rc != 0) {
    fprintf(stderr, "map_ref: crew_map: %s\n", crew_strerror(rc));
    return 1;
  }

  uint64_t sum = CHECKSUM_START;
  for (size_t i = 0; i < n; i++) {
    uint64_t want = item_value(i, rounds);
    if (out[i] != want) {
      fprintf(stderr,
              "map_ref: item %zu: crew_map gave %016" PRIx64
              ", one by one %016" PRIx64 "\n",
              i, out[i], want);
      return 1;
    }
    sum = checksum_add(sum, i == fail ? 0 : out[i]);
  }
  free(in);
  free(out);
  printf("map_ref: items %" PRIu64 " rounds %" PRIu64 " checksum %016" PRIx64
         "\n",
         items, rounds, sum);
  return 0;
}
