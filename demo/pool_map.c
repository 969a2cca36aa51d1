/*
 * pool_map - apply a function to every item of a list on a pool of
 * workers, keeping the order. The Python original:
 *
 *     from multiprocessing import Pool
 *
 *     def square(n):
 *         return n * n
 *
 *     if __name__ == "__main__":
 *         numbers = [1, 2, 3, 4, 5]
 *         with Pool() as pool:
 *             squared = pool.map(square, numbers)
 *         print("Original numbers:", numbers)
 *         print("Squared numbers:", squared)
 *
 * It prints
 *
 *     Original numbers: [1, 2, 3, 4, 5]
 *     Squared numbers: [1, 4, 9, 16, 25]
 *
 * In C with crew: crew_map() is pool.map(). Python needs worker processes
 * to compute in parallel (the GIL lets one thread run Python code at a
 * time); C threads have no such limit, so crew's default pool, one worker
 * thread per CPU, is the natural choice. (process_pool.c shows the same
 * map on worker processes.) --tick is accepted, as by every demo, and has
 * nothing to slow down here.
 */
#include "demo.h"

/* The function to map: one int in, its square out. crew_map() calls it
 * once per item, with pointers to that item's input and output. */
static int square(const void *in, void *out)
{
  int n = *(const int *)in;
  *(int *)out = n * n;
  return 0;
}

int main(int argc, char **argv)
{
  demo_start(argc, argv, "pool_map",
             "Squares the numbers 1..5 with crew_map on a pool of threads.");

  int numbers[] = {1, 2, 3, 4, 5};
  enum { COUNT = sizeof numbers / sizeof numbers[0] };
  int squared[COUNT];

  /* with Pool() as pool: NULL asks for the defaults, one worker per CPU. */
  crew_pool *pool;
  int rc = crew_pool_create(&pool, NULL);
  if (rc != 0)
    return demo_fail("crew_pool_create", rc);

  /* squared = pool.map(square, numbers): item i is read from numbers[i]
   * and written to squared[i] (the strides say how far apart items are);
   * crew_map() returns once every item is done. */
  rc = crew_map(pool, square, numbers, sizeof numbers[0], squared,
                sizeof squared[0], COUNT);
  crew_pool_destroy(pool); /* the end of the with block */
  if (rc != 0)
    return demo_fail("crew_map", rc);

  demo_print_ints("Original numbers: ", numbers, COUNT);
  demo_print_ints("Squared numbers: ", squared, COUNT);
  return 0;
}
