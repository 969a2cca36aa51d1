/*
 * task_queue - a worker thread takes functions from a queue and runs them
 * in order. The Python original:
 *
 *     import queue
 *     import threading
 *
 *     def task1():
 *         print("Task 1 executed")
 *
 *     def task2():
 *         print("Task 2 executed")
 *
 *     def task3():
 *         print("Task 3 executed")
 *
 *     def worker(q):
 *         while True:
 *             task = q.get()
 *             if task is None:  # the sentinel: no more tasks
 *                 break
 *             task()
 *
 *     q = queue.Queue()
 *     t = threading.Thread(target=worker, args=(q,))
 *     t.start()
 *     for task in (task1, task2, task3):
 *         q.put(task)
 *     q.put(None)
 *     t.join()
 *
 * It prints
 *
 *     Task 1 executed
 *     Task 2 executed
 *     Task 3 executed
 *
 * In C with crew: a crew_queue holds fixed-size items copied by value; the
 * items here are function pointers. The worker is a crew pool with one
 * thread, running a consumer task. There is no sentinel: closing the queue
 * is crew's shutdown signal. The consumer takes what is left, and then
 * crew_queue_pop() returns CREW_ECLOSED instead of an item. --tick is
 * accepted, as by every demo, and has nothing to slow down here.
 */
#include "demo.h"

/* The kind of function the queue carries. */
typedef void (*task_fn)(void);

static void task1(void)
{
  printf("Task 1 executed\n");
}

static void task2(void)
{
  printf("Task 2 executed\n");
}

static void task3(void)
{
  printf("Task 3 executed\n");
}

/*
 * worker(q), run on the pool's thread. Its input is the queue pointer,
 * passed by value: the submit copied the pointer's bytes, not the queue.
 * It pops until the queue is closed and empty, and returns 0, or the crew
 * error that stopped it.
 */
static int worker(const void *in, void *out)
{
  crew_queue *q = *(crew_queue *const *)in;
  task_fn task;
  int rc;
  while ((rc = crew_queue_pop(q, &task)) == 0)
    task();
  return rc == CREW_ECLOSED ? 0 : rc;
}

int main(int argc, char **argv)
{
  demo_start(argc, argv, "task_queue",
             "A worker thread takes three functions from a crew_queue and "
             "runs them in order.");

  /* q = queue.Queue(): a crew queue is bounded; 8 items is plenty here. A
   * full queue would make q.put() wait for room, not fail. */
  crew_queue *q;
  int rc = crew_queue_create(&q, 8, sizeof(task_fn), 0);
  if (rc != 0)
    return demo_fail("crew_queue_create", rc);

  /* t = threading.Thread(target=worker, args=(q,)); t.start() */
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.workers = 1;
  crew_pool *pool;
  rc = crew_pool_create(&pool, &cfg);
  if (rc != 0) {
    crew_queue_destroy(q);
    return demo_fail("crew_pool_create", rc);
  }
  crew_future *t;
  rc = crew_submit(pool, worker, &q, sizeof q, 0, &t);
  if (rc != 0) {
    crew_pool_destroy(pool);
    crew_queue_destroy(q);
    return demo_fail("crew_submit", rc);
  }

  /* for task in (task1, task2, task3): q.put(task). Each push copies the
   * function pointer into the queue. */
  int status = 0;
  const task_fn tasks[] = {task1, task2, task3};
  for (size_t i = 0; i < sizeof tasks / sizeof tasks[0]; i++) {
    rc = crew_queue_push(q, &tasks[i]);
    if (rc != 0) {
      status = demo_fail("crew_queue_push", rc);
      break;
    }
  }

  /* Instead of q.put(None): close the queue. The worker runs what is
   * queued, then its pop returns CREW_ECLOSED and it returns. Closing also
   * ends the worker if a push above failed, so the join below never hangs. */
  crew_queue_close(q);

  /* t.join(): the future gives what worker() returned. */
  rc = crew_future_wait(t);
  if (rc != 0)
    status = demo_fail("worker", rc);
  crew_future_release(t);
  crew_pool_destroy(pool);
  crew_queue_destroy(q); /* only now: the worker no longer uses it */
  return status;
}
