/*
 * example.c - a program of a CMake project that finds the installed crew
 * through pkg-config (CMakeLists.txt), built twice: linked with
 * libcrew.so (example_shared) and with libcrew.a (example_static).
 *
 *   cmake -S . -B build && cmake --build build && build/example_shared
 *
 * It submits a few tasks with futures and maps over an array, and exits 0
 * only if every result is right.
 */
#include <crew.h>

#include <stdio.h>

#ifndef LINKED
#define LINKED "?"
#endif

static int cube(const void *in, void *out)
{
  long x = *(const long *)in;
  *(long *)out = x * x * x;
  return 0;
}

int main(void)
{
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.workers = 2;
  cfg.name = "cmake";
  crew_pool *pool;
  int rc = crew_pool_create(&pool, &cfg);
  if (rc != 0) {
    fprintf(stderr, "crew_pool_create: %s\n", crew_strerror(rc));
    return 1;
  }

  crew_future *futures[4];
  for (long i = 0; i < 4; i++) {
    rc = crew_submit(pool, cube, &i, sizeof i, sizeof(long), &futures[i]);
    if (rc != 0) {
      fprintf(stderr, "crew_submit: %s\n", crew_strerror(rc));
      for (long k = 0; k < i; k++)
        crew_future_release(futures[k]);
      crew_pool_destroy(pool);
      return 1;
    }
  }
  long sum = 0;
  int failed = 0;
  for (int i = 0; i < 4; i++) {
    long r = 0;
    if (crew_future_get(futures[i], &r, sizeof r) != 0)
      failed = 1;
    sum += r;
    crew_future_release(futures[i]);
  }

  long in[100], out[100];
  for (long i = 0; i < 100; i++)
    in[i] = i;
  rc = crew_map(pool, cube, in, sizeof in[0], out, sizeof out[0], 100);
  crew_pool_destroy(pool);
  if (failed || rc != 0 || sum != 0 + 1 + 8 + 27 || out[99] != 970299) {
    fprintf(stderr, "wrong results (rc %d, sum %ld)\n", rc, sum);
    return 1;
  }
  printf("crew %s, linked " LINKED " through CMake: ok\n", crew_version());
  return 0;
}
