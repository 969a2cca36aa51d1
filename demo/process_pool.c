/*
 * process_pool - map a function over a list on a pool of three worker
 * processes. The Python original:
 *
 *     from multiprocessing import Pool
 *
 *     def square(x):
 *         return x * x
 *
 *     if __name__ == "__main__":
 *         with Pool(processes=3) as pool:
 *             results = pool.map(square, [1, 2, 3, 4, 5])
 *         print(results)
 *
 * It prints [1, 4, 9, 16, 25].
 *
 * In C with crew: a pool made with cfg.mode = CREW_PROCESSES runs its tasks
 * in worker processes, and crew_map() is pool.map(). The numbers travel to
 * the workers, and the squares back, through shared memory: a task must
 * not keep pointers to this process's memory, only read its input and
 * write its output. --tick is accepted, as by every demo, and has nothing
 * to slow down here.
 */
#include "demo.h"

/* The function to map. It runs in a worker process: `in` and `out` point
 * into memory shared with this one. */
static int square(const void *in, void *out)
{
  int x = *(const int *)in;
  *(int *)out = x * x;
  return 0;
}

int main(int argc, char **argv)
{
  demo_start(argc, argv, "process_pool",
             "Squares [1, 2, 3, 4, 5] on a pool of three worker processes.");

  /* Pool(processes=3). The workers are forked now, from this process as it
   * is: create a process pool early, before starting threads. */
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.mode = CREW_PROCESSES;
  cfg.workers = 3;
  crew_pool *pool;
  int rc = crew_pool_create(&pool, &cfg);
  if (rc != 0)
    return demo_fail("crew_pool_create", rc);

  /* results = pool.map(square, [1, 2, 3, 4, 5]) */
  int numbers[] = {1, 2, 3, 4, 5};
  enum { COUNT = sizeof numbers / sizeof numbers[0] };
  int results[COUNT];
  rc = crew_map(pool, square, numbers, sizeof numbers[0], results,
                sizeof results[0], COUNT);
  crew_pool_destroy(pool); /* the end of the with block: workers exit */
  if (rc != 0)
    return demo_fail("crew_map", rc);

  demo_print_ints("", results, COUNT); /* print(results) */
  return 0;
}
