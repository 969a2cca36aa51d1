/*
 * procs_shm.h - what a process pool's parent and its worker processes both
 * read and write: the items of the two shared queues and the layout of the
 * shared memory (the arena's records and map jobs, and `ctrl`).
 *
 * Everything here may be garbage when the parent reads it: a worker runs
 * application code and may scribble anywhere it can reach. The parent keeps
 * its own copy of what matters (procs.h) and checks every value it reads
 * here against it before use. Workers are trusted with nothing either:
 * they read the parent's words once into locals and check them against the
 * arena's size.
 */
#ifndef CREW_PROCS_SHM_H
#define CREW_PROCS_SHM_H

#include "internal.h"
#include "task.h"

#include <stdalign.h>
#include <stddef.h>

#define CREW__NO_ENTRY UINT32_MAX

/* What a task queue item names. */
enum crew__desc_kind { CREW__DESC_TASK = 1, CREW__DESC_RUNNER = 2 };

/* One item of the task queue: an entry of the parent's table (with the
 * ticket it had when queued: tickets never repeat) and an arena offset. */
struct crew__pdesc {
  uint32_t entry;
  uint32_t kind; /* enum crew__desc_kind */
  uint64_t ticket;
  uint64_t offset; /* the record, or the map job */
};

enum crew__event_kind {
  CREW__EV_DONE = 1,        /* a task ran: its record is DONE */
  CREW__EV_SKIPPED = 2,     /* a popped task was cancelled: it did not run */
  CREW__EV_RUNNER_DONE = 3, /* a map runner stopped claiming chunks */
  CREW__EV_SPAWNED = 4,     /* the fork server started a worker */
  CREW__EV_SPAWN_FAILED = 5,
  CREW__EV_DIED = 6,  /* a worker ended (not yet reaped) */
  CREW__EV_NUDGE = 7, /* look again: shutdown began */
  CREW__EV_READY = 8, /* a worker's init returned 0: it takes tasks now */
};

/* One item of the event queue: workers' and the fork server's news. */
struct crew__pevent {
  uint32_t kind; /* enum crew__event_kind */
  uint32_t slot;
  uint32_t entry;
  int32_t value; /* pid, errno or wait code */
  uint64_t ticket;
};

/*
 * A record's state word: QUEUED (0) and CANCELLED (3) as is; RUNNING and
 * DONE carry the pid of the worker that claimed the task above the low two
 * bits (Linux pids fit in 22 bits), so that the parent can find what a dead
 * worker held even when its slot no longer says.
 */
enum crew__rstate { R_QUEUED = 0, R_RUNNING = 1, R_DONE = 2, R_CANCELLED = 3 };
#define CREW__STATE_OF(word)    ((word)&3u)
#define CREW__OWNER_OF(word)    ((pid_t)((word) >> 2))
#define CREW__OWNED(state, pid) ((uint32_t)(state) | (uint32_t)(pid) << 2)

/* A task in the arena: header, input, output. */
struct crew__precord {
  _Atomic uint32_t state; /* see above */
  int32_t status;
  crew_fn fn;
  uint64_t in_size, out_size, out_at;
  uint64_t submitted_ns, started_ns, finished_ns; /* if the pool times */
  alignas(max_align_t) unsigned char data[];
};

/* A map chunk's outcome, written by the worker that ran it. */
struct crew__pchunk {
  _Atomic uint32_t done;
  uint32_t lost; /* the worker died in it (written by the parent) */
  struct crew__outcome outcome;
  uint64_t ran;
};

/* A map in the arena: header, chunk outcomes, input array, output array. */
struct crew__pjob {
  crew_fn fn;
  uint64_t count, chunk, nchunks;
  uint64_t in_stride, out_stride;
  uint64_t in_at, out_at; /* offsets from the job; 0: no array */
  _Atomic uint64_t next_chunk;
  struct crew__pchunk chunks[];
};

/* A worker slot: 64 bytes, written by its worker (and reset by the parent
 * between two workers). */
struct crew__pslot {
  alignas(64) struct crew__pdesc current; /* entry CREW__NO_ENTRY: none */
  _Atomic uint64_t busy_since;            /* monotonic ns; 0: idle */
  _Atomic uint64_t chunk;                 /* claimed chunk + 1; 0: none */
  _Atomic uint64_t chunk_done;            /* its items finished */
  _Atomic int32_t ready_pid; /* the worker's pid once its init returned 0 */
};

/* `ctrl`: a page-aligned mapping, the pool's state word first, then the
 * slots (64 bytes each, after a 64-byte head). */
struct crew__pctrl {
  _Atomic int pool_state; /* a copy of the pool's state word, for workers */
  struct crew__pslot slots[];
};

/* The exit status of a worker that found crew's shared memory changed under
 * it, and of one whose init returned nonzero. */
#define CREW__SCRIBBLED_EXIT   70
#define CREW__INIT_FAILED_EXIT 71

#endif
