/*
 * process_class - two different functions, each in a process of its own,
 * then the parent waits for both. The Python original:
 *
 *     from multiprocessing import Process
 *     import time
 *
 *     def print_numbers():
 *         for i in range(5):
 *             print(f"Number: {i}")
 *             time.sleep(1)
 *
 *     def print_letters():
 *         for letter in "ABCDE":
 *             print(f"Letter: {letter}")
 *             time.sleep(1)
 *
 *     if __name__ == "__main__":
 *         p1 = Process(target=print_numbers)
 *         p2 = Process(target=print_letters)
 *         p1.start()
 *         p2.start()
 *         p1.join()
 *         p2.join()
 *         print("Both processes are done!")
 *
 * It prints "Number: 0" to "Number: 4" and "Letter: A" to "Letter: E",
 * the two lists interleaved in an order that may change from run to run,
 * and then, always last, "Both processes are done!".
 *
 * In C with crew: crew_process_start() is Process(target=...).start() and
 * crew_process_join() is join(). The functions have crew's task signature;
 * their input here is the tick length, which the child reads from its copy
 * of the parent's memory.
 */
#include "demo.h"

/* Both functions print five lines, one tick apart. stdout is line-buffered
 * (see demo_start), so each line leaves the child as it is printed. */
static int print_numbers(const void *in, void *out)
{
  uint64_t tick_ns = *(const uint64_t *)in;

  demo_trace("numbers", "start");
  for (int i = 0; i < 5; i++) {
    printf("Number: %d\n", i);
    demo_sleep_ticks(tick_ns, 1);
  }
  demo_trace("numbers", "end");
  return 0;
}

static int print_letters(const void *in, void *out)
{
  uint64_t tick_ns = *(const uint64_t *)in;

  demo_trace("letters", "start");
  for (const char *letter = "ABCDE"; *letter != '\0'; letter++) {
    printf("Letter: %c\n", *letter);
    demo_sleep_ticks(tick_ns, 1);
  }
  demo_trace("letters", "end");
  return 0;
}

/* p.join(), then check how the child ended: 0 is success. */
static int join(crew_process *p, const char *what)
{
  int exit_code;
  int rc = crew_process_join(p, &exit_code);
  if (rc != 0)
    return demo_fail("crew_process_join", rc);
  if (exit_code != 0) {
    /* Python's convention: -N if signal N killed the child. */
    fprintf(stderr, "%s: %s exited with %d\n", demo_name, what, exit_code);
    return 1;
  }
  return 0;
}

int main(int argc, char **argv)
{
  uint64_t tick_ns = demo_start(
      argc, argv, "process_class",
      "One process prints Number: 0..4, another Letter: A..E, one tick "
      "apart; then the parent says both are done.");

  /* p1 = Process(target=print_numbers); p1.start(); the same for p2. */
  crew_process *p1 = NULL;
  crew_process *p2 = NULL;
  int status = 0;
  int rc = crew_process_start(&p1, print_numbers, &tick_ns, sizeof tick_ns, 0);
  if (rc != 0) {
    status = demo_fail("crew_process_start", rc);
  } else {
    rc = crew_process_start(&p2, print_letters, &tick_ns, sizeof tick_ns, 0);
    if (rc != 0)
      status = demo_fail("crew_process_start", rc);
  }

  /* p1.join(); p2.join() */
  if (p1 != NULL && join(p1, "print_numbers") != 0)
    status = 1;
  if (p2 != NULL && join(p2, "print_letters") != 0)
    status = 1;
  crew_process_destroy(p1);
  crew_process_destroy(p2);
  if (status != 0)
    return status;

  /* Both children have been joined: nothing of theirs can follow this. */
  printf("Both processes are done!\n");
  return 0;
}
