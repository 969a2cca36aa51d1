/*
 * threads_concurrency - two tasks that take turns on two threads. The
 * Python original:
 *
 *     import threading
 *     import time
 *
 *     def task(name):
 *         for _ in range(5):
 *             print(f"Task {name}")
 *             time.sleep(1)
 *
 *     thread1 = threading.Thread(target=task, args=("A",))
 *     thread2 = threading.Thread(target=task, args=("B",))
 *     thread1.start()
 *     thread2.start()
 *     thread1.join()
 *     thread2.join()
 *
 * It prints "Task A" and "Task B" five times each. The two threads run at
 * the same time, so the program takes about five seconds, not ten, and the
 * A and B lines come out interleaved in an order that may change from run
 * to run.
 *
 * In C with crew: a pool of two worker threads plays the two Thread
 * objects. crew_submit() is start() (it hands the task to a worker) and
 * waiting on the task's future is join(). Run with --tick 100 to make a
 * "second" last 100 ms.
 */
#include "demo.h"

/* What one task gets: crew copies these bytes at submit, as Python copies
 * args=("A",) into the Thread. */
struct task_args {
  char name;        /* 'A' or 'B' */
  uint64_t tick_ns; /* how long time.sleep(1) lasts */
};

/*
 * The task, run on a worker thread. Every crew task has this signature: it
 * reads its input bytes, may write output bytes (none here), and returns 0
 * or an error code of its own.
 */
static int task(const void *in, void *out)
{
  const struct task_args *args = in;
  char trace_name[2] = {args->name, '\0'};

  demo_trace(trace_name, "start");
  for (int i = 0; i < 5; i++) {
    printf("Task %c\n", args->name);
    demo_sleep_ticks(args->tick_ns, 1);
  }
  demo_trace(trace_name, "end");
  return 0;
}

int main(int argc, char **argv)
{
  uint64_t tick_ns =
      demo_start(argc, argv, "threads_concurrency",
                 "Two tasks print \"Task A\" and \"Task B\" five times, one "
                 "tick apart, on two threads.");

  /* Two worker threads, one for each task (two threading.Thread). */
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.workers = 2;
  crew_pool *pool;
  int rc = crew_pool_create(&pool, &cfg);
  if (rc != 0)
    return demo_fail("crew_pool_create", rc);

  /* thread1.start(); thread2.start(): each submit returns at once, and the
   * future it gives is how we join the task later. */
  struct task_args a = {'A', tick_ns};
  struct task_args b = {'B', tick_ns};
  crew_future *fa = NULL;
  crew_future *fb = NULL;
  int status = 0;
  rc = crew_submit(pool, task, &a, sizeof a, 0, &fa);
  if (rc != 0) {
    status = demo_fail("crew_submit", rc);
  } else {
    rc = crew_submit(pool, task, &b, sizeof b, 0, &fb);
    if (rc != 0)
      status = demo_fail("crew_submit", rc);
  }

  /* thread1.join(); thread2.join(): a wait returns what the task returned. */
  if (fa != NULL && (rc = crew_future_wait(fa)) != 0)
    status = demo_fail("task A", rc);
  if (fb != NULL && (rc = crew_future_wait(fb)) != 0)
    status = demo_fail("task B", rc);

  /* Each future is ours to release; then the pool's threads are joined. */
  crew_future_release(fa);
  crew_future_release(fb);
  crew_pool_destroy(pool);
  return status;
}
