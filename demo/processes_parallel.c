/*
 * processes_parallel - the two tasks of threads_concurrency, each in a
 * process of its own. The Python original:
 *
 *     import multiprocessing
 *     import time
 *
 *     def task(name):
 *         for _ in range(5):
 *             print(f"Task {name}")
 *             time.sleep(1)
 *
 *     if __name__ == "__main__":
 *         p1 = multiprocessing.Process(target=task, args=("A",))
 *         p2 = multiprocessing.Process(target=task, args=("B",))
 *         p1.start()
 *         p2.start()
 *         p1.join()
 *         p2.join()
 *
 * It prints "Task A" and "Task B" five times each, interleaved in an order
 * that may change from run to run; the two processes run side by side, so
 * it takes about five seconds, not ten.
 *
 * In C with crew: crew_process_start() is Process(...).start(): it forks a
 * child that runs the task and exits with what the task returns.
 * crew_process_join() is join(): it waits for the child and reaps it.
 */
#include "demo.h"

/* What one task gets. The child starts as a copy of this process, so it
 * sees these bytes as they were at the fork. */
struct task_args {
  char name;        /* 'A' or 'B' */
  uint64_t tick_ns; /* how long time.sleep(1) lasts */
};

/* The task, run in a child process. Its return value is the child's exit
 * code. */
static int task(const void *in, void *out)
{
  const struct task_args *args = in;
  char trace_name[2] = {args->name, '\0'};

  demo_trace(trace_name, "start");
  for (int i = 0; i < 5; i++) {
    /* stdout is line-buffered (see demo_start), so this line leaves the
     * child now, not when the child exits. */
    printf("Task %c\n", args->name);
    demo_sleep_ticks(args->tick_ns, 1);
  }
  demo_trace(trace_name, "end");
  return 0;
}

/* p.join(), then check how the child ended: 0 is success. */
static int join(crew_process *p, char name)
{
  int exit_code;
  int rc = crew_process_join(p, &exit_code);
  if (rc != 0)
    return demo_fail("crew_process_join", rc);
  if (exit_code != 0) {
    /* Python's convention: -N if signal N killed the child. */
    fprintf(stderr, "%s: task %c exited with %d\n", demo_name, name, exit_code);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv)
{
  uint64_t tick_ns =
      demo_start(argc, argv, "processes_parallel",
                 "Two tasks print \"Task A\" and \"Task B\" five times, one "
                 "tick apart, in two processes.");

  /* p1.start(); p2.start() */
  struct task_args a = {'A', tick_ns};
  struct task_args b = {'B', tick_ns};
  crew_process *p1 = NULL;
  crew_process *p2 = NULL;
  int status = 0;
  int rc = crew_process_start(&p1, task, &a, sizeof a, 0);
  if (rc != 0) {
    status = demo_fail("crew_process_start", rc);
  } else {
    rc = crew_process_start(&p2, task, &b, sizeof b, 0);
    if (rc != 0)
      status = demo_fail("crew_process_start", rc);
  }

  /* p1.join(); p2.join() */
  if (p1 != NULL && join(p1, 'A') != 0)
    status = 1;
  if (p2 != NULL && join(p2, 'B') != 0)
    status = 1;

  /* Free what crew kept for each child (both are reaped by now). */
  crew_process_destroy(p1);
  crew_process_destroy(p2);
  return status;
}
