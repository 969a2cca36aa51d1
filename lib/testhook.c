/*
 * testhook.c - the process-wide test hook (crew/testhook.h). Built only with
 * --enable-test-hooks: it is the one piece of global state in the library,
 * and release builds do not have it.
 *
 * Owns: the hook pointer and its argument, one atomic pair read at every
 * hook point. No lock: tests install the hook while no pool runs.
 */
#include "config.h"

#include "testhook.h"

#include <stdatomic.h>

static _Atomic(crew_test_hook_fn *) hook_fn;
static void *_Atomic hook_arg;

int crew_test_hook_set(crew_test_hook_fn *fn, void *arg)
{
  atomic_store_explicit(&hook_arg, arg, memory_order_relaxed);
  atomic_store_explicit(&hook_fn, fn, memory_order_release);
  return 0;
}

int crew__hook(enum crew_test_point point, const void *object)
{
  crew_test_hook_fn *fn = atomic_load_explicit(&hook_fn, memory_order_acquire);
  if (fn == NULL)
    return 0;
  return fn(point, object,
            atomic_load_explicit(&hook_arg, memory_order_relaxed));
}
