/*
 * inject.h - what the fault-injection suites (check_inject, check_perturb)
 * share: the test hook (crew/testhook.h) and its state, which fails the
 * k-th call at one point (check_inject), perturbs the schedule with seeded
 * yields and sleeps at every lock, wait and queue step (check_perturb), and
 * parks catalog 7's pool workers at their first wait. Both suites exist
 * only in a build configured with --enable-test-hooks.
 */
#ifndef CREW_INJECT_H
#define CREW_INJECT_H

#include "testutil.h"

#include <crew/testhook.h>

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The hook's state, in a MAP_SHARED mapping made once in main() (so it is
 * part of every test's resource baseline, and forked children share it).
 */
struct inject {
  _Atomic int armed;     /* count and act only while set */
  _Atomic int all_procs; /* count fail-point calls in every process */
  _Atomic pid_t self;    /* else only in this process */
  /* Part 1: fail the k-th call at `point`. */
  _Atomic int point;
  _Atomic long k;
  _Atomic long calls;              /* calls at `point` while armed */
  _Atomic long failed;             /* failures injected (0 or 1) */
  _Atomic uintptr_t failed_object; /* the failed call's object (a size) */
  _Atomic pid_t failed_pid;        /* the process it failed in */
  _Atomic int failed_on_caller;    /* on the thread that armed the hook */
  /* Part 2: perturbation. */
  _Atomic unsigned perturb_mask; /* bit (1 << point) */
  _Atomic unsigned yield_permille, sleep_permille;
  _Atomic uint64_t seed;
  _Atomic uint64_t threads;          /* per-thread seeds */
  _Atomic uint64_t publish_delay_us; /* extra delay at PUBLISH, max */
  _Atomic uint64_t perturbed;        /* yields and sleeps done */
  /* Catalog 7: park pool workers at their first WAIT. */
  _Atomic int park;
  _Atomic int parked;
  _Atomic int go;
};

/* The hook's state: set by inject_main(), shared with every process. */
extern struct inject *inj;

extern _Thread_local int tl_in_worker; /* a worker of a catalog-7 pool */
extern _Thread_local int tl_parked;    /* parked once already */
extern _Thread_local int tl_caller;    /* this thread arms the hook */

/* The next number of this thread's generator, seeded from inj->seed. */
uint64_t rng_next(void);

/* Sleep us microseconds (less than a second). */
void nap_us(uint64_t us);

/* The hook: counts and fails the k-th call at inj->point, perturbs the
 * points of inj->perturb_mask, delays PUBLISH, parks catalog 7's worker. */
int hook(enum crew_test_point point, const void *object, void *arg);

/*
 * Per test, before the harness's baseline (add this fixture first): a clean
 * state (the mapping outlives tests in fork mode), and one thread started
 * and joined (harness_settle_threads), because ThreadSanitizer starts its
 * background thread at a process's first pthread_create (in Check's forked
 * child: during the test), which the harness would count as a thread the
 * test left behind.
 */
void inject_setup(void);
void inject_teardown(void);

/* The seed of this test's perturbation. */
uint64_t seed_of(void);

/* Arm the hook from this thread (its calls count as the caller's), and
 * disarm it. */
void arm(void);
void disarm(void);

/* in: an int; out (if any): in + 1. */
int task_inc(const void *in, void *out);

/* in: a gate *; passes it, writes 7s to an int out (if any), returns 7. */
int task_gated(const void *in, void *out);

/* Map the hook's state shared, set the hook, and run s. */
int inject_main(Suite *s);

#endif
