/*
 * squares - the "hello world" of parallel map: square the numbers 1..5 on a
 * pool of worker threads, as Python's Pool.map does:
 *
 *     with Pool() as pool:
 *         print(pool.map(square, [1, 2, 3, 4, 5]))
 *
 * Prints [1, 4, 9, 16, 25].
 */
#include <crew.h>

#include <stdio.h>

/* A task: reads one int, writes its square. */
static int square(const void *in, void *out)
{
  int x = *(const int *)in;
  *(int *)out = x * x;
  return 0;
}

int main(void)
{
  int numbers[] = {1, 2, 3, 4, 5};
  int squares[5];
  size_t n = sizeof numbers / sizeof numbers[0];

  crew_pool *pool;
  int rc = crew_pool_create(&pool, NULL); /* one worker per CPU */
  if (rc != 0) {
    fprintf(stderr, "squares: %s\n", crew_strerror(rc));
    return 1;
  }
  rc = crew_map(pool, square, numbers, sizeof numbers[0], squares,
                sizeof squares[0], n);
  crew_pool_destroy(pool);
  if (rc != 0) {
    fprintf(stderr, "squares: %s\n", crew_strerror(rc));
    return 1;
  }

  printf("[");
  for (size_t i = 0; i < n; i++)
    printf("%s%d", i > 0 ? ", " : "", squares[i]);
  printf("]\n");
  return 0;
}
