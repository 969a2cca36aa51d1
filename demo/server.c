/*
 * server - crew inside an event loop: a small TCP server on 127.0.0.1 whose
 * epoll loop never does the heavy work itself. Each request goes to a crew
 * pool with crew_submit_to_timed(..., 0), which never blocks; the results
 * come back through a crew_channel whose descriptor sits in the same epoll
 * set as the sockets. Linux only (epoll, signalfd, accept4).
 *
 *   demo/server --port 0 --workers 2      (prints: listening on 127.0.0.1:N)
 *   printf 'PING\nHASH 100 hello\n' | nc -q1 127.0.0.1 N
 *
 * The protocol (demo/hashwork.h): "HASH <rounds> <payload>" answers the 16
 * hex digits of hashwork(payload, rounds), "PING" answers "PONG", anything
 * else "ERR <reason>". A well-formed HASH may also be declined by one of
 * the limits below ("ERR request too costly (max N)"), or fail here after
 * it was accepted: "ERR task failed: <reason>" when its task did not
 * complete. With --processes that is "ERR task failed: deadline" when it
 * overran --task-timeout-ms, how the worker process ended when it died
 * during it (a crash, or killed from outside; crew replaces the worker),
 * from crew_future_exit(): "worker 1234 killed by SIGSEGV", "worker 1234
 * exited with 3"; and crew_strerror()'s text otherwise. The work is a pure
 * function of the request, so a client may safely send a failed request again.
 * The server may also end a connection after a last ERR: "ERR read timeout" or
 * "ERR server busy" (limits below) answers its oldest unanswered request, "ERR
 * server shutting down" (Shutdown below) every one still unanswered.
 * demo/loadgen drives it and checks every answer.
 *
 * Design:
 *  - Order: a client may pipeline requests; answers go back in request
 *    order. Each connection keeps its requests in a FIFO of records, in the
 *    order they were read; PING and ERR records are answered at once, HASH
 *    records when their completion is drained (the record is the task's
 *    channel tag). Answers leave from the head of the FIFO only, so a
 *    completion that arrives early waits in its record for those before it.
 *    Requests of one connection run in parallel; nothing is serialised.
 *  - Backpressure: when the pool's queue is full the submit fails at once
 *    with CREW_ETIMEDOUT; the line stays in the connection's input buffer,
 *    the connection stops reading (EPOLLIN off) and waits in a FIFO of
 *    blocked connections, retried after each drain of the channel (a drain
 *    means workers took tasks off the queue). A full queue means tasks are
 *    queued, so a completion, and a retry, always follows. A connection
 *    also stops reading while it has too many unanswered requests
 *    (CONN_REQ_MAX) or too much unsent output (CONN_OUT_MAX): a client that
 *    does not read its answers cannot make the server buffer without bound.
 *  - Shutdown: SIGINT and SIGTERM are blocked before the pool exists (no
 *    worker takes them) and read from a signalfd in the epoll set. The first
 *    one accepts what already waits in the backlog, closes the listening
 *    socket (new connects are refused: the pool is created before the
 *    socket, so no worker process holds a copy of it) and keeps serving the
 *    open connections until their clients close them, for at most
 *    --drain-ms. Then every request still unanswered on the rest (running,
 *    queued in the pool, or read but not yet taken) is answered "ERR
 *    server shutting down", after the answers already made before it, as
 *    much as each socket takes at once is sent, and they are closed. A
 *    second signal ends the drain at once, the same way. Finally the pool
 *    is shut down (CREW_CANCEL: no client waits for what is still queued;
 *    running tasks finish, within --task-timeout-ms with --processes), its
 *    completions drained and freed, and the channel destroyed. Exit status
 *    0. After a second signal in process mode the pool is shut down with
 *    CREW_KILL: the workers running tasks are killed, so the server exits
 *    at once even while long requests run.
 *  - A client that half-closes (EOF) still gets every answer, then the
 *    server closes. One that goes away (a reset, a failed send) is closed
 *    at once; the records of its running requests stay until their
 *    completions come back (crew_submit_to gives no future to cancel).
 *  - Limits, each with what the client is told:
 *    - A line holds at most HW_LINE_MAX bytes: "ERR line too long (max
 *      65536 bytes)", then the connection is closed.
 *    - A HASH may cost at most --max-cost (default 100,000,000) bytes
 *      hashed, hw_cost() = rounds * (payload bytes + 8), about 0.1 s of
 *      CPU: a costlier one is answered "ERR request too costly (max N)"
 *      at once and never runs; the connection goes on. Without the bound
 *      the syntax allows over a minute of CPU per request, and a few such
 *      requests hold every worker.
 *    - With --processes, a task may run at most --task-timeout-ms (default
 *      5000; 0: no deadline): crew kills its worker at the deadline
 *      (crew_config.task_timeout_ns) and it is answered "ERR task failed:
 *      deadline". Worker threads cannot be killed: with threads (and
 *      --inline) only --max-cost bounds a task's run time.
 *    - Idle and read timeout: while the server waits on a client (it owes
 *      no answer: every request read is answered and none waits for room
 *      in the queue), the client must make progress within --idle-ms
 *      (default 30000; 0: never), or the connection is closed. Progress is
 *      a complete request line, or answer bytes taken by the client; bytes
 *      of a line that does not end do not count, so a client sending one
 *      byte a second is closed as surely as a silent one. A client closed
 *      with a partial line is told "ERR read timeout" first; one that sent
 *      nothing, or does not read its answers, is closed without a word.
 *      The clock stops while the server owes: a request that waits for a
 *      worker for longer is still answered.
 *    - Descriptors: each connection takes one, up to the process's limit
 *      (ulimit -n; raise it for more clients). The server keeps one spare
 *      descriptor open: when accept finds none free, it closes the spare,
 *      accepts the next waiting client with it, tells it "ERR server
 *      busy", closes it and opens the spare again, so a client beyond the
 *      limit is answered at once instead of waiting unanswered in the
 *      backlog (as is one the server has no memory for). Only when that
 *      fails too (the spare could not be opened again, or the kernel is
 *      short of memory) does it stop accepting until a connection closes.
 *    - Input memory: a connection buffers at most one line (HW_LINE_MAX + 1
 *      bytes), in a buffer that grows as its line needs and is given back
 *      as lines are taken, and all connections together at most
 *      --max-buffered bytes (default 16 MiB), plus one line. A connection
 *      that needs more room than is left stops reading and waits, oldest
 *      first, for room; one of them at a time may go past the cap, so that
 *      a line being received can always complete. While any waits, new
 *      clients are told "ERR server busy" and closed. A waiting client is
 *      still on its idle clock: when it runs out it is told "ERR server
 *      busy" (not "ERR read timeout": the server stopped reading) and
 *      closed, which gives its room back. Without the cap, 1,000 clients
 *      each holding a partial line of 64 KiB took 64 MiB.
 */
#define _GNU_SOURCE /* accept4 */

#include "exits.h"
#include "hashwork.h"

#include <crew.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONN_IN_MAX  (HW_LINE_MAX + 1) /* one longest line and its '\n' */
#define CONN_IN_MIN  4096u             /* the first input buffer */
#define CONN_OUT_MAX (256u << 10)      /* unsent answers before we pause */
#define CONN_REQ_MAX 1024u             /* unanswered requests before we pause */
#define ANSWER_MAX   64                /* "ERR ..." lines fit */
#define EVENTS_MAX   64
#define DRAIN_BATCH  64

/* How the pool is shut down after a second signal with worker processes:
 * kill the running tasks' workers (threads cannot be killed: there running
 * tasks finish). */
#define SHUTDOWN_HURRIED CREW_KILL

/* The limits' defaults (see "Limits" above, and --help). */
#define DEFAULT_MAX_COST        100000000ul /* about 0.1 s of CPU */
#define DEFAULT_TASK_TIMEOUT_MS 5000ul      /* with --processes */
#define DEFAULT_IDLE_MS         30000ul
#define DEFAULT_MAX_BUFFERED    (16ul << 20)
/* The costliest request the syntax allows (as an unsigned long). */
#define COST_ALL                                                               \
  ((uint64_t)HW_ROUNDS_MAX * (HW_LINE_MAX + 8) < ULONG_MAX                     \
       ? (unsigned long)((uint64_t)HW_ROUNDS_MAX * (HW_LINE_MAX + 8))          \
       : ULONG_MAX)

/* -------------------------------------------------------------- options */

struct options {
  unsigned port;
  size_t workers;   /* 0: one per CPU */
  size_t queue;     /* 0: crew's default */
  bool processes;   /* worker processes instead of threads */
  bool inline_work; /* no pool: hash on the loop thread */
  bool stats;
  unsigned long drain_ms;
  unsigned long max_cost;        /* the most hw_cost() a HASH may have */
  unsigned long task_timeout_ms; /* processes: a task's deadline; 0 none */
  unsigned long idle_ms;         /* idle and read timeout; 0 none */
  unsigned long max_buffered;    /* input bytes of all connections */
};

static void usage(FILE *f)
{
  fprintf(f,
          "usage: server [options]\n"
          "A TCP server on 127.0.0.1 that hashes on a crew pool (protocol: "
          "demo/hashwork.h).\n"
          "  --port N       port to listen on; 0 (default) picks a free one\n"
          "  --workers N    pool workers; 0 (default) one per CPU\n"
          "  --processes    worker processes instead of threads (the task\n"
          "                 gets the payload bytes by value in shared "
          "memory)\n"
          "  --inline       no pool: hash on the event loop thread (the\n"
          "                 contrast: one slow request stalls every "
          "client)\n"
          "  --queue N      pool queue capacity; 0 (default) crew's default\n"
          "                 (a full queue stops reading from clients)\n"
          "  --drain-ms N   on SIGINT/SIGTERM, serve open connections at most\n"
          "                 N ms more (default 10000), then close them\n"
          "  --max-cost N   the most a HASH may cost, in bytes hashed:\n"
          "                 rounds * (payload bytes + 8); default "
          "100000000\n"
          "                 (about 0.1 s of CPU). A costlier one gets \"ERR\n"
          "                 request too costly (max N)\"\n"
          "  --task-timeout-ms N  with --processes: kill a task's worker "
          "after\n"
          "                 N ms of running (default 5000; 0: never) and "
          "answer\n"
          "                 \"ERR task failed: deadline\"\n"
          "  --idle-ms N    close a connection whose client, owed nothing,\n"
          "                 neither completes a request line nor reads an\n"
          "                 answer for N ms (default 30000; 0: never); "
          "one\n"
          "                 holding a partial line is told \"ERR read "
          "timeout\"\n"
          "  --max-buffered N  input bytes all connections may buffer "
          "together\n"
          "                 (default 16777216; one more line may pass it). "
          "Past\n"
          "                 it, connections that need room stop reading "
          "and\n"
          "                 new clients are told \"ERR server busy\"\n"
          "  --stats        at exit, print the pool's counters and task\n"
          "                 latencies\n"
          "  --help         this text\n"
          "Prints \"listening on 127.0.0.1:PORT\" once it listens.\n");
}

static bool parse_num(const char *s, unsigned long max, unsigned long *v)
{
  char *end;
  errno = 0;
  unsigned long x = strtoul(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || x > max)
    return false;
  *v = x;
  return true;
}

static int parse_options(int argc, char **argv, struct options *o)
{
  *o = (struct options){.drain_ms = 10000,
                        .max_cost = DEFAULT_MAX_COST,
                        .task_timeout_ms = ULONG_MAX, /* not given */
                        .idle_ms = DEFAULT_IDLE_MS,
                        .max_buffered = DEFAULT_MAX_BUFFERED};
  unsigned long port = 0, workers = 0, queue = 0;
  struct {
    const char *name;
    unsigned long *v, min, max;
  } nums[] = {
      {"--port", &port, 0, 65535},
      {"--workers", &workers, 0, CREW_WORKERS_MAX},
      {"--queue", &queue, 0, 1ul << 24},
      {"--drain-ms", &o->drain_ms, 0, 1ul << 31},
      {"--max-cost", &o->max_cost, 1, COST_ALL},
      {"--task-timeout-ms", &o->task_timeout_ms, 0, 1ul << 31},
      {"--idle-ms", &o->idle_ms, 0, 1ul << 31},
      {"--max-buffered", &o->max_buffered, CONN_IN_MAX, ULONG_MAX / 2},
  };
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    size_t k = 0;
    while (k < sizeof nums / sizeof nums[0] && strcmp(a, nums[k].name) != 0)
      k++;
    if (k < sizeof nums / sizeof nums[0]) {
      if (i + 1 >= argc || !parse_num(argv[i + 1], nums[k].max, nums[k].v) ||
          *nums[k].v < nums[k].min) {
        fprintf(stderr, "server: %s needs a number in %lu..%lu\n", a,
                nums[k].min, nums[k].max);
        return 2;
      }
      i++;
    } else if (strcmp(a, "--processes") == 0) {
      o->processes = true;
    } else if (strcmp(a, "--inline") == 0) {
      o->inline_work = true;
    } else if (strcmp(a, "--stats") == 0) {
      o->stats = true;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "server: unknown option '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  o->port = (unsigned)port;
  o->workers = workers;
  o->queue = queue;
  if (o->processes && o->inline_work) {
    fprintf(stderr, "server: --processes and --inline exclude each other\n");
    return 2;
  }
  if (o->task_timeout_ms == ULONG_MAX) {
    o->task_timeout_ms = o->processes ? DEFAULT_TASK_TIMEOUT_MS : 0;
  } else if (!o->processes) {
    fprintf(stderr, "server: --task-timeout-ms needs --processes (a worker "
                    "thread cannot be killed)\n");
    return 2;
  }
  return -1; /* go on */
}

/* ------------------------------------------------------------ the task */

/* A HASH task's input: this header, then the payload bytes. The same bytes
 * reach a worker thread (a copy made at submit) or a worker process (the
 * copy lies in shared memory): the task needs no pointer into the server. */
struct hash_head {
  uint32_t rounds;
  uint32_t len;
};

static int hash_task(const void *in, void *out)
{
  struct hash_head h;
  memcpy(&h, in, sizeof h); /* the payload follows: no alignment assumed */
  uint64_t digest = hashwork((const char *)in + sizeof h, h.len, h.rounds);
  memcpy(out, &digest, sizeof digest);
  return 0;
}

/* ---------------------------------------------------------- connections */

struct conn;

/* One request of a connection, in request order. */
struct req {
  struct req *next;
  struct conn *conn;
  bool done;       /* answer is ready */
  unsigned char n; /* answer bytes */
  char answer[ANSWER_MAX];
};

struct conn {
  int fd;                             /* -1 once closed */
  struct conn *prev, *next;           /* the server's open or closed list */
  struct conn *blocked_next;          /* the blocked FIFO, while blocked */
  struct conn *dirty_next;            /* completions to flush, while dirty */
  struct conn *idle_prev, *idle_next; /* the idle list, while idle */
  struct conn *room_prev, *room_next; /* the room FIFO, while waiting */
  uint64_t idle_since;                /* the server waits on the client since */
  char *in;                           /* unread input: [0, in_len) */
  size_t in_len, in_cap;
  char *out; /* unsent answers: [out_off, out_len) */
  size_t out_off, out_len, out_cap;
  struct req *head, *tail; /* requests not yet moved to out */
  size_t reqs;             /* how many */
  size_t running;          /* of them, submitted and not yet completed */
  uint32_t events;         /* epoll interest now */
  bool blocked;            /* the pool's queue was full: wait for room */
  bool dirty;
  bool peer_eof;   /* the client sends no more */
  bool fatal;      /* a line was too long: answer, then close */
  bool idle;       /* on the idle list */
  bool waits_room; /* stopped reading: no room under --max-buffered */
  bool progress;   /* a line taken or answer bytes sent: restart the clock */
};

struct server {
  struct options opt;
  crew_pool *pool; /* NULL with --inline */
  crew_channel *ch;
  int epfd, lfd, sfd;
  int spare; /* an open descriptor, given up to refuse a client */
  bool draining;
  bool hurried; /* a second signal came */
  uint64_t deadline_ns;
  bool accept_paused;         /* out of descriptors: retry on a close */
  struct conn *open, *closed; /* closed: freed by reap_closed() */
  size_t nopen;
  struct conn *blocked_head, *blocked_tail;
  struct conn *dirty;
  /* Connections the server waits on, by idle_since, oldest first: all
   * have the same timeout, so appending keeps the order. */
  struct conn *idle_head, *idle_tail;
  uint64_t idle_ns; /* 0: no idle timeout */
  /* Input buffers: their bytes, the connections waiting for room (oldest
   * first) and the one connection that may go past --max-buffered. */
  size_t buffered, peak_buffered;
  struct conn *room_head, *room_tail;
  struct conn *overdraft;
  char *scratch; /* a task's input, built here */
  /* counters for --stats */
  uint64_t accepted, hashes, pings, errors, pauses;
  uint64_t too_costly; /* of errors: HASH refused by --max-cost */
  uint64_t deadlines;  /* HASH whose task overran --task-timeout-ms */
  uint64_t timeouts;   /* connections closed by --idle-ms */
  uint64_t busy;       /* clients told "ERR server busy" */
  uint64_t room_waits; /* times a connection stopped reading for room */
  uint64_t unfinished; /* requests answered "ERR server shutting down" */
};

/* Sentinels for epoll's data.ptr: everything else is a struct conn. */
static char tag_listen, tag_signal, tag_channel;

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void list_push(struct conn **list, struct conn *c)
{
  c->prev = NULL;
  c->next = *list;
  if (*list != NULL)
    (*list)->prev = c;
  *list = c;
}

static void list_remove(struct conn **list, struct conn *c)
{
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    *list = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  c->prev = c->next = NULL;
}

static void idle_unlink(struct server *s, struct conn *c)
{
  if (!c->idle)
    return;
  if (c->idle_prev != NULL)
    c->idle_prev->idle_next = c->idle_next;
  else
    s->idle_head = c->idle_next;
  if (c->idle_next != NULL)
    c->idle_next->idle_prev = c->idle_prev;
  else
    s->idle_tail = c->idle_prev;
  c->idle_prev = c->idle_next = NULL;
  c->idle = false;
}

/* Start (or restart) the connection's idle clock now. */
static void idle_start(struct server *s, struct conn *c, uint64_t now)
{
  if (s->idle_ns == 0)
    return;
  idle_unlink(s, c);
  c->idle = true;
  c->idle_since = now;
  c->idle_next = NULL;
  c->idle_prev = s->idle_tail;
  if (s->idle_tail != NULL)
    s->idle_tail->idle_next = c;
  else
    s->idle_head = c;
  s->idle_tail = c;
}

/* After the connection changed: its clock runs while the server waits on
 * the client, and restarts on progress. */
static void idle_update(struct server *s, struct conn *c)
{
  bool waits = c->head == NULL && !c->blocked; /* owes nothing */
  if (!waits)
    idle_unlink(s, c);
  else if (!c->idle || c->progress)
    idle_start(s, c, now_ns());
  c->progress = false;
}

/* Input room (--max-buffered): a connection waits for it in a FIFO. */
static void room_wait(struct server *s, struct conn *c)
{
  c->waits_room = true;
  c->room_next = NULL;
  c->room_prev = s->room_tail;
  if (s->room_tail != NULL)
    s->room_tail->room_next = c;
  else
    s->room_head = c;
  s->room_tail = c;
  s->room_waits++;
}

static void room_leave(struct server *s, struct conn *c)
{
  if (!c->waits_room)
    return;
  if (c->room_prev != NULL)
    c->room_prev->room_next = c->room_next;
  else
    s->room_head = c->room_next;
  if (c->room_next != NULL)
    c->room_next->room_prev = c->room_prev;
  else
    s->room_tail = c->room_prev;
  c->room_prev = c->room_next = NULL;
  c->waits_room = false;
}

/* Whether c may add need bytes to its input buffer: within the cap, or
 * past it as the one connection allowed to (the oldest waiting one, or any
 * if none waits), so that a line being received can always complete. The
 * others only grow within the cap, so the total stays under the cap plus
 * one line. */
static bool room_grant(struct server *s, struct conn *c, size_t need)
{
  if (s->buffered + need <= s->opt.max_buffered || s->overdraft == c)
    return true;
  if (s->overdraft != NULL || (s->room_head != NULL && s->room_head != c))
    return false;
  s->overdraft = c;
  return true;
}

/* Resize c's input buffer to cap bytes (0: free it), counting them. False
 * if out of memory (nothing changed). */
static bool in_resize(struct server *s, struct conn *c, size_t cap)
{
  if (cap == 0) {
    free(c->in);
    c->in = NULL;
  } else {
    char *p = realloc(c->in, cap);
    if (p == NULL)
      return false;
    c->in = p;
  }
  s->buffered = s->buffered - c->in_cap + cap;
  if (s->buffered > s->peak_buffered)
    s->peak_buffered = s->buffered;
  c->in_cap = cap;
  if (s->overdraft == c && s->buffered <= s->opt.max_buffered)
    s->overdraft = NULL; /* back within the cap */
  return true;
}

/* Make room for more input: 1 done, 0 no room now (wait), -1 no memory. */
static int in_grow(struct server *s, struct conn *c)
{
  size_t cap = c->in_cap == 0 ? CONN_IN_MIN : c->in_cap * 2;
  if (cap > CONN_IN_MAX)
    cap = CONN_IN_MAX;
  if (cap <= c->in_cap) /* cannot happen: a full buffer is a long line */
    return -1;
  if (!room_grant(s, c, cap - c->in_cap))
    return 0;
  return in_resize(s, c, cap) ? 1 : -1;
}

/* After lines were taken: give back what the rest no longer needs (the
 * whole buffer if nothing is left). */
static void in_trim(struct server *s, struct conn *c)
{
  size_t cap = 0;
  if (c->in_len > 0)
    for (cap = CONN_IN_MIN; cap < c->in_len; cap *= 2)
      ;
  if (cap > CONN_IN_MAX)
    cap = CONN_IN_MAX;
  if (cap < c->in_cap && !in_resize(s, c, cap)) {
    /* realloc would not shrink it: keep it as it is */
  }
  if (c->waits_room && c->in_len < c->in_cap)
    room_leave(s, c); /* it has room again */
}

static void free_conn(struct conn *c)
{
  while (c->head != NULL) {
    struct req *r = c->head;
    c->head = r->next;
    free(r);
  }
  free(c->in);
  free(c->out);
  free(c);
}

/* Close the socket. The connection stays on the closed list until its
 * running requests' completions come back (they name its records) and the
 * loop iteration ends. */
static void conn_close(struct server *s, struct conn *c)
{
  if (c->fd < 0)
    return;
  close(c->fd); /* also leaves the epoll set */
  c->fd = -1;
  s->nopen--;
  idle_unlink(s, c);
  room_leave(s, c);
  c->in_len = 0;
  in_resize(s, c, 0); /* give the input room back now */
  if (s->overdraft == c)
    s->overdraft = NULL;
  if (c->blocked) { /* leave the blocked FIFO */
    struct conn **p = &s->blocked_head, *prev = NULL;
    while (*p != c) {
      prev = *p;
      p = &(*p)->blocked_next;
    }
    *p = c->blocked_next;
    if (s->blocked_tail == c)
      s->blocked_tail = prev;
    c->blocked = false;
  }
  list_remove(&s->open, c);
  list_push(&s->closed, c); /* freed by reap_closed(), never here: callers
                               may still hold c */
  /* A descriptor came free: for the spare first, then for accept. */
  if (s->spare < 0)
    s->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (s->accept_paused && s->lfd >= 0) {
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &tag_listen};
    if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, s->lfd, &ev) == 0)
      s->accept_paused = false;
  }
}

/* Free closed connections whose requests have all come back. */
static void reap_closed(struct server *s)
{
  struct conn *c = s->closed;
  while (c != NULL) {
    struct conn *next = c->next;
    if (c->running == 0 && !c->dirty) {
      list_remove(&s->closed, c);
      free_conn(c);
    }
    c = next;
  }
}

/* Append r to the connection's requests. */
static void link_req(struct conn *c, struct req *r)
{
  r->conn = c;
  if (c->tail != NULL)
    c->tail->next = r;
  else
    c->head = r;
  c->tail = r;
  c->reqs++;
}

static void set_answer(struct req *r, const char *text)
{
  size_t n = strlen(text);
  if (n > ANSWER_MAX - 1)
    n = ANSWER_MAX - 1;
  memcpy(r->answer, text, n);
  r->answer[n] = '\n';
  r->n = (unsigned char)(n + 1);
  r->done = true;
}

/* Queue an immediate answer ("PONG", "ERR ..."): false if out of memory. */
static bool answer_now(struct conn *c, const char *text)
{
  struct req *r = calloc(1, sizeof *r);
  if (r == NULL)
    return false;
  set_answer(r, text);
  link_req(c, r);
  return true;
}

static bool out_reserve(struct conn *c, size_t n)
{
  if (c->out_off > 0 && c->out_off == c->out_len)
    c->out_off = c->out_len = 0;
  if (c->out_len + n <= c->out_cap)
    return true;
  if (c->out_off > 0) { /* slide the unsent bytes to the front */
    memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
    c->out_len -= c->out_off;
    c->out_off = 0;
    if (c->out_len + n <= c->out_cap)
      return true;
  }
  size_t cap = c->out_cap != 0 ? c->out_cap : 4096;
  while (cap < c->out_len + n)
    cap *= 2;
  char *p = realloc(c->out, cap);
  if (p == NULL)
    return false;
  c->out = p;
  c->out_cap = cap;
  return true;
}

/* Move answered requests from the head of the FIFO to the output buffer:
 * the only place answers are ordered. */
static bool move_answers(struct conn *c)
{
  while (c->head != NULL && c->head->done) {
    struct req *r = c->head;
    if (!out_reserve(c, r->n))
      return false;
    memcpy(c->out + c->out_len, r->answer, r->n);
    c->out_len += r->n;
    c->head = r->next;
    if (c->head == NULL)
      c->tail = NULL;
    c->reqs--;
    free(r);
  }
  return true;
}

/* Send what we can: false if the client is gone. */
static bool conn_write(struct conn *c)
{
  while (c->out_off < c->out_len) {
    ssize_t n =
        send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (n > 0) {
      c->out_off += (size_t)n;
      c->progress = true;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return true; /* EPOLLOUT will tell us */
    } else {
      return false; /* EPIPE, ECONNRESET: the client went away */
    }
  }
  c->out_off = c->out_len = 0;
  return true;
}

/* Whether the connection may take another request now. */
static bool can_take(const struct conn *c)
{
  return !c->blocked && !c->fatal && c->reqs < CONN_REQ_MAX &&
         c->out_len - c->out_off < CONN_OUT_MAX;
}

static void block_conn(struct server *s, struct conn *c)
{
  c->blocked = true;
  c->blocked_next = NULL;
  if (s->blocked_tail != NULL)
    s->blocked_tail->blocked_next = c;
  else
    s->blocked_head = c;
  s->blocked_tail = c;
  s->pauses++;
}

/* Handle one complete line: false if it must wait for room in the queue
 * (nothing was done; the line stays) or memory ran out (c->fatal set). */
static bool handle_line(struct server *s, struct conn *c, const char *line,
                        size_t len)
{
  hw_request q = hw_parse_request(line, len);
  if (q.kind != HW_HASH) {
    char text[ANSWER_MAX];
    if (q.kind == HW_PING) {
      s->pings++;
      snprintf(text, sizeof text, "PONG");
    } else {
      s->errors++;
      snprintf(text, sizeof text, "ERR %s", q.reason);
    }
    if (!answer_now(c, text))
      c->fatal = true;
    return !c->fatal;
  }
  if (hw_cost(q.rounds, q.len) > s->opt.max_cost) { /* never runs */
    char text[ANSWER_MAX];
    snprintf(text, sizeof text, "ERR request too costly (max %lu)",
             s->opt.max_cost);
    s->errors++;
    s->too_costly++;
    if (!answer_now(c, text))
      c->fatal = true;
    return !c->fatal;
  }
  if (s->pool == NULL) { /* --inline: the loop itself does the work */
    char text[HW_DIGEST_LEN + 1];
    hw_format_digest(hashwork(q.payload, q.len, q.rounds), text);
    text[HW_DIGEST_LEN] = '\0';
    s->hashes++;
    if (!answer_now(c, text))
      c->fatal = true;
    return !c->fatal;
  }
  /* The record is the tag. Its completion can only be drained by this
   * thread, later, so it is linked only once the submit succeeded. */
  struct req *r = calloc(1, sizeof *r);
  if (r == NULL) {
    c->fatal = true;
    return false;
  }
  struct hash_head h = {.rounds = q.rounds, .len = (uint32_t)q.len};
  memcpy(s->scratch, &h, sizeof h);
  memcpy(s->scratch + sizeof h, q.payload, q.len);
  int rc = crew_submit_to_timed(s->pool, s->ch, r, hash_task, s->scratch,
                                sizeof h + q.len, sizeof(uint64_t), 0);
  if (rc == 0) {
    link_req(c, r);
    c->running++;
    s->hashes++;
    return true;
  }
  free(r);                    /* no task was made: the line stays unconsumed */
  if (rc == CREW_ETIMEDOUT) { /* the queue is full: backpressure */
    block_conn(s, c);
    return false;
  }
  char text[ANSWER_MAX];
  snprintf(text, sizeof text, "ERR server: %s", crew_strerror(rc));
  s->errors++;
  if (!answer_now(c, text))
    c->fatal = true;
  return !c->fatal;
}

/* Take the complete lines in the input buffer while the connection may. */
static void take_lines(struct server *s, struct conn *c)
{
  size_t off = 0;
  while (off < c->in_len && can_take(c)) {
    char *nl = memchr(c->in + off, '\n', c->in_len - off);
    size_t len = nl != NULL ? (size_t)(nl - (c->in + off)) : c->in_len - off;
    if (len > HW_LINE_MAX) { /* too long, whole or not: answer and close */
      s->errors++;
      answer_now(c, "ERR line too long (max 65536 bytes)");
      c->fatal = true;
      off = c->in_len;
      break;
    }
    if (nl == NULL)
      break; /* an incomplete line: wait for more */
    if (!handle_line(s, c, c->in + off, len))
      break;
    off += len + 1;
  }
  if (off > 0) {
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    c->progress = true;
    in_trim(s, c);
  }
}

/* Set the epoll interest to what the connection wants now. */
static bool conn_interest(struct server *s, struct conn *c)
{
  uint32_t want = 0;
  if (!c->peer_eof && can_take(c) && !c->waits_room)
    want |= EPOLLIN;
  if (c->out_off < c->out_len)
    want |= EPOLLOUT;
  if (want == c->events)
    return true;
  struct epoll_event ev = {.events = want, .data.ptr = c};
  if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
    return false;
  c->events = want;
  return true;
}

/* After anything happened on c: take lines, send answers, close when done
 * (the client finished sending and everything it sent is answered, or a
 * fatal line was answered), and set the interest. */
static void conn_pump(struct server *s, struct conn *c)
{
  if (c->fd < 0)
    return;
  /* Answers leaving make room for more lines, and lines make answers:
   * go round until neither moves (every round consumes input). */
  for (;;) {
    if (!move_answers(c) || !conn_write(c)) {
      conn_close(s, c);
      return;
    }
    size_t had = c->in_len;
    if (!can_take(c) || had == 0)
      break;
    take_lines(s, c);
    if (c->in_len == had)
      break; /* no complete line, or the queue is full */
  }
  bool answered = c->head == NULL && c->out_off == c->out_len;
  bool lines = c->in_len > 0 && memchr(c->in, '\n', c->in_len) != NULL;
  if (answered && (c->fatal || (c->peer_eof && !lines && !c->blocked))) {
    conn_close(s, c);
    return;
  }
  if (!conn_interest(s, c)) {
    conn_close(s, c);
    return;
  }
  idle_update(s, c);
}

/* The client made no progress for --idle-ms while the server waited (or,
 * waiting for input room, stopped reading). */
static void conn_idle_timeout(struct server *s, struct conn *c)
{
  const char *msg = c->waits_room   ? "ERR server busy\n"
                    : c->in_len > 0 ? "ERR read timeout\n"
                                    : NULL;
  if (msg != NULL && c->out_off == c->out_len &&
      send(c->fd, msg, strlen(msg), MSG_NOSIGNAL) < 0) {
    /* the client is gone or not reading: nobody to tell */
  }
  s->timeouts++;
  conn_close(s, c);
}

static void conn_read(struct server *s, struct conn *c)
{
  if (c->in_len == c->in_cap) {
    int grown = in_grow(s, c);
    if (grown < 0) {
      conn_close(s, c);
      return;
    }
    if (grown == 0) { /* stop reading until there is room */
      room_wait(s, c);
      if (!conn_interest(s, c))
        conn_close(s, c);
      return;
    }
  }
  ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
  if (n > 0) {
    c->in_len += (size_t)n;
  } else if (n == 0) {
    c->peer_eof = true; /* answer what was sent, then close */
  } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    conn_close(s, c); /* reset: nobody to answer */
    return;
  }
  conn_pump(s, c);
}

/* Let the connections waiting for input room read again, oldest first,
 * while there is room. Each reads at once what waits in its socket: none
 * is left with room it did not use. */
static void room_feed(struct server *s)
{
  while (s->room_head != NULL) {
    struct conn *c = s->room_head;
    int grown = in_grow(s, c);
    if (grown == 0)
      break;
    room_leave(s, c);
    if (grown < 0)
      conn_close(s, c);
    else
      conn_read(s, c); /* may wait for room again, at the back */
  }
}

static void conn_event(struct server *s, struct conn *c, uint32_t events)
{
  if (c->fd < 0)
    return; /* closed earlier in this batch */
  if (events & (EPOLLERR | EPOLLHUP)) {
    conn_close(s, c); /* reset, or both ways shut: nobody to answer */
    return;
  }
  if (events & EPOLLIN)
    conn_read(s, c);
  else
    conn_pump(s, c); /* EPOLLOUT */
}

/* Tell a client "ERR server busy" and close its connection. */
static void refuse(struct server *s, int fd)
{
  static const char msg[] = "ERR server busy\n";
  if (send(fd, msg, sizeof msg - 1, MSG_NOSIGNAL) < 0) {
    /* the client is gone already: nobody to tell */
  }
  close(fd);
  s->busy++;
}

/* Out of descriptors: accept the oldest client waiting on the spare one
 * and refuse it. Returns 1 if a client was refused, 0 if none waits, -1
 * if it cannot be done (no spare, or accept failed: errno says why). */
static int refuse_on_spare(struct server *s)
{
  if (s->spare < 0) {
    errno = EMFILE;
    return -1;
  }
  close(s->spare);
  int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  int err = errno;
  if (fd >= 0)
    refuse(s, fd);
  /* If this fails (-1), conn_close() tries again. */
  s->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd >= 0)
    return 1;
  errno = err;
  return err == EAGAIN || err == EWOULDBLOCK ? 0 : -1;
}

static void accept_all(struct server *s)
{
  for (;;) {
    int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno == EMFILE || errno == ENFILE) {
        int r = refuse_on_spare(s);
        if (r > 0 || (r < 0 && (errno == EINTR || errno == ECONNABORTED)))
          continue; /* maybe more clients wait */
        if (r == 0)
          return;
      }
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
          errno == ENOMEM) { /* retry when a connection closes */
        struct epoll_event ev = {.events = 0, .data.ptr = &tag_listen};
        if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, s->lfd, &ev) == 0)
          s->accept_paused = true;
        fprintf(stderr, "server: accept: %s (paused)\n", strerror(errno));
      }
      return; /* EAGAIN, or paused */
    }
    if (s->room_head != NULL) { /* out of input room: see room_feed() */
      refuse(s, fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct conn *c = calloc(1, sizeof *c);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (c == NULL || epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      free(c);
      refuse(s, fd); /* out of memory */
      continue;
    }
    c->fd = fd;
    c->events = EPOLLIN;
    idle_start(s, c, now_ns());
    list_push(&s->open, c);
    s->nopen++;
    s->accepted++;
  }
}

/* ---------------------------------------------------------- completions */

static void drain_completions(struct server *s)
{
  crew_completion done[DRAIN_BATCH];
  size_t n;
  do {
    crew_channel_drain(s->ch, done, DRAIN_BATCH, &n);
    for (size_t i = 0; i < n; i++) {
      struct req *r = done[i].tag;
      struct conn *c = r->conn;
      uint64_t digest = 0;
      int rc = crew_future_get(done[i].future, &digest, sizeof digest);
      char text[ANSWER_MAX] = "ERR task failed: ";
      size_t at = strlen(text);
      if (rc != 0 && rc != CREW_EDEADLINE && /* a dead worker: say how */
          !demo_describe_exit(done[i].future, text + at, sizeof text - at))
        snprintf(text + at, sizeof text - at, "%s", crew_strerror(rc));
      crew_future_release(done[i].future);
      if (rc == 0) {
        hw_format_digest(digest, r->answer);
        r->n = HW_DIGEST_LEN + 1;
        r->done = true;
      } else if (rc == CREW_EDEADLINE) { /* --task-timeout-ms */
        s->deadlines++;
        set_answer(r, "ERR task failed: deadline");
      } else {
        set_answer(r, text);
      }
      c->running--;
      if (!c->dirty) {
        c->dirty = true;
        c->dirty_next = s->dirty;
        s->dirty = c;
      }
    }
  } while (n == DRAIN_BATCH);
}

/* After a drain: flush the connections that got answers, then let blocked
 * connections try again, oldest first, until the queue is full again. */
static void after_drain(struct server *s)
{
  while (s->dirty != NULL) {
    struct conn *c = s->dirty;
    s->dirty = c->dirty_next;
    c->dirty = false;
    conn_pump(s, c); /* no-op if closed */
  }
  while (s->blocked_head != NULL) {
    struct conn *c = s->blocked_head;
    s->blocked_head = c->blocked_next;
    if (s->blocked_head == NULL)
      s->blocked_tail = NULL;
    c->blocked = false;
    conn_pump(s, c);
    if (c->fd >= 0 && c->blocked)
      break; /* full again */
  }
  reap_closed(s);
}

/* ------------------------------------------------------------- shutdown */

static void begin_shutdown(struct server *s, int sig)
{
  if (s->draining) { /* a second signal: stop draining now */
    s->deadline_ns = now_ns();
    s->hurried = true;
    return;
  }
  accept_all(s); /* connections the kernel already completed are ours */
  close(s->lfd); /* new connects are refused from now on */
  s->lfd = -1;
  s->draining = true;
  s->deadline_ns = now_ns() + (uint64_t)s->opt.drain_ms * 1000000u;
  printf("shutting down (%s): %zu connections open, draining at most %lu "
         "ms\n",
         strsignal(sig), s->nopen, s->opt.drain_ms);
  fflush(stdout);
}

/* The drain is over: answer every request the connection has not answered
 * "ERR server shutting down", in order after the answers already made,
 * send what the socket takes now, and close it. The records of running
 * requests stay until their completions come back (see conn_close()). */
static void conn_close_unfinished(struct server *s, struct conn *c)
{
  static const char msg[] = "ERR server shutting down\n";
  size_t n = sizeof msg - 1;
  bool ok = true;
  for (struct req *r = c->head; r != NULL && ok; r = r->next) {
    if ((ok = out_reserve(c, r->done ? r->n : n))) {
      memcpy(c->out + c->out_len, r->done ? r->answer : msg,
             r->done ? r->n : n);
      c->out_len += r->done ? r->n : n;
      if (!r->done)
        s->unfinished++;
    }
  }
  for (size_t off = 0; ok && off < c->in_len;) { /* lines not yet taken */
    char *nl = memchr(c->in + off, '\n', c->in_len - off);
    if (nl == NULL)
      break; /* a partial line is no request */
    if ((ok = out_reserve(c, n))) {
      memcpy(c->out + c->out_len, msg, n);
      c->out_len += n;
      s->unfinished++;
    }
    off = (size_t)(nl - c->in) + 1;
  }
  if (!conn_write(c)) {
    /* the client is gone: nobody to tell */
  }
  conn_close(s, c);
}

/* Close the connections whose idle time is up; how long epoll may wait for
 * the next timer (the drain's, or the oldest idle connection's): -1 for no
 * timer. */
static int run_timers(struct server *s)
{
  uint64_t now = now_ns();
  while (s->idle_head != NULL && now - s->idle_head->idle_since >= s->idle_ns)
    conn_idle_timeout(s, s->idle_head);
  uint64_t wake = UINT64_MAX;
  if (s->draining)
    wake = s->deadline_ns;
  if (s->idle_head != NULL && s->idle_head->idle_since + s->idle_ns < wake)
    wake = s->idle_head->idle_since + s->idle_ns;
  if (wake == UINT64_MAX)
    return -1;
  if (now >= wake)
    return 0;
  uint64_t ms = (wake - now + 999999) / 1000000;
  return ms > 60000 ? 60000 : (int)ms;
}

static void run_loop(struct server *s)
{
  struct epoll_event evs[EVENTS_MAX];
  for (;;) {
    int timeout = run_timers(s); /* may close connections */
    if (s->draining && s->nopen == 0)
      break;
    if (s->draining && now_ns() >= s->deadline_ns) {
      size_t open = s->nopen;
      while (s->open != NULL)
        conn_close_unfinished(s, s->open);
      if (open > 0) {
        printf("drain timeout: closing %zu connections, %llu requests "
               "answered \"ERR server shutting down\"\n",
               open, (unsigned long long)s->unfinished);
        fflush(stdout);
      }
      break;
    }
    int n = epoll_wait(s->epfd, evs, EVENTS_MAX, timeout);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      perror("server: epoll_wait");
      break;
    }
    bool drained = false;
    for (int i = 0; i < n; i++) {
      void *p = evs[i].data.ptr;
      if (p == &tag_listen) {
        if (s->lfd >= 0)
          accept_all(s);
      } else if (p == &tag_signal) {
        struct signalfd_siginfo si;
        while (read(s->sfd, &si, sizeof si) == (ssize_t)sizeof si)
          begin_shutdown(s, (int)si.ssi_signo);
      } else if (p == &tag_channel) {
        drain_completions(s);
        drained = true;
      } else {
        conn_event(s, p, evs[i].events);
      }
    }
    room_feed(s);
    if (drained)
      after_drain(s);
    else
      reap_closed(s);
  }
}

/* ---------------------------------------------------------------- setup */

static int listen_on(unsigned port, unsigned *bound)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 512) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  *bound = ntohs(a.sin_port);
  return fd;
}

static bool watch_fd(int epfd, int fd, void *tag)
{
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};
  return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == 0;
}

static void print_latency(const char *what, const crew_latency *l)
{
  printf("%s: %llu tasks, p50 %.1f us, p90 %.1f us, p99 %.1f us, max %.1f "
         "us\n",
         what, (unsigned long long)l->count, (double)l->p50_ns / 1e3,
         (double)l->p90_ns / 1e3, (double)l->p99_ns / 1e3,
         (double)l->max_ns / 1e3);
}

static void print_stats(struct server *s)
{
  printf("server: %llu connections, %llu HASH, %llu PING, %llu ERR, %llu "
         "backpressure pauses\n",
         (unsigned long long)s->accepted, (unsigned long long)s->hashes,
         (unsigned long long)s->pings, (unsigned long long)s->errors,
         (unsigned long long)s->pauses);
  printf("limits: %llu too costly, %llu past the task deadline, %llu idle "
         "timeouts, %llu busy\n",
         (unsigned long long)s->too_costly, (unsigned long long)s->deadlines,
         (unsigned long long)s->timeouts, (unsigned long long)s->busy);
  printf("input buffers: peak %zu bytes (cap %lu), %llu waits for room\n",
         s->peak_buffered, s->opt.max_buffered,
         (unsigned long long)s->room_waits);
  if (s->pool == NULL)
    return;
  crew_stats st;
  if (crew_pool_stats(s->pool, &st) == 0)
    printf("pool: %zu workers, submitted %llu, completed %llu, failed %llu, "
           "cancelled %llu, crashed %llu, restarted %llu\n",
           crew_pool_workers(s->pool), (unsigned long long)st.submitted,
           (unsigned long long)st.completed, (unsigned long long)st.failed,
           (unsigned long long)st.cancelled, (unsigned long long)st.crashed,
           (unsigned long long)st.restarted);
  crew_latency wait, run;
  int rc = crew_pool_latency(s->pool, &wait, &run);
  if (rc == 0) {
    print_latency("queue wait", &wait);
    print_latency("run", &run);
  } else {
    printf("latency: %s\n", crew_strerror(rc));
  }
}

int main(int argc, char **argv)
{
  struct server s = {.epfd = -1, .lfd = -1, .sfd = -1, .spare = -1};
  int rc = parse_options(argc, argv, &s.opt);
  if (rc >= 0)
    return rc;
  s.idle_ns = (uint64_t)s.opt.idle_ms * 1000000u;

  /* Signals first: blocked here before any worker thread exists, so every
   * thread inherits the mask and only the signalfd sees them. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  if (sigprocmask(SIG_BLOCK, &sigs, NULL) != 0) {
    perror("server: sigprocmask");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN); /* sends use MSG_NOSIGNAL; belt and braces */

  /* The pool next, before the listening socket: worker processes inherit
   * the descriptors open at create, and one holding the listening socket
   * would keep accepting connects after we close it. */
  int status = 1;
  if (!s.opt.inline_work) {
    crew_config cfg;
    crew_config_init(&cfg);
    cfg.mode = s.opt.processes ? CREW_PROCESSES : CREW_THREADS;
    cfg.workers = s.opt.workers;
    cfg.queue_capacity = s.opt.queue;
    cfg.name = "hash";
    cfg.max_in_size = sizeof(struct hash_head) + HW_LINE_MAX;
    cfg.max_out_size = sizeof(uint64_t);
    cfg.task_timeout_ns = (uint64_t)s.opt.task_timeout_ms * 1000000u;
    cfg.latency_stats = s.opt.stats;
    if ((rc = crew_pool_create(&s.pool, &cfg)) != 0) {
      fprintf(stderr, "server: crew_pool_create: %s\n", crew_strerror(rc));
      return 1;
    }
    if ((rc = crew_channel_create(&s.ch)) != 0) {
      fprintf(stderr, "server: crew_channel_create: %s\n", crew_strerror(rc));
      goto out;
    }
  }
  s.scratch = malloc(sizeof(struct hash_head) + HW_LINE_MAX);
  unsigned port = 0;
  if (s.scratch == NULL) {
    fprintf(stderr, "server: out of memory\n");
    goto out;
  }
  if ((s.lfd = listen_on(s.opt.port, &port)) < 0) {
    fprintf(stderr, "server: listen on 127.0.0.1:%u: %s\n", s.opt.port,
            strerror(errno));
    goto out;
  }
  if ((s.spare = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 ||
      (s.sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 ||
      (s.epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
      !watch_fd(s.epfd, s.lfd, &tag_listen) ||
      !watch_fd(s.epfd, s.sfd, &tag_signal) ||
      (s.ch != NULL &&
       !watch_fd(s.epfd, crew_channel_fd(s.ch), &tag_channel))) {
    perror("server: setup");
    goto out;
  }
  printf("listening on 127.0.0.1:%u\n", port);
  fflush(stdout);

  run_loop(&s);
  status = 0;

out:
  /* Every connection is closed by now (or none was opened). What is still
   * queued has no client: cancel it; running tasks finish, unless a second
   * signal came in process mode (SHUTDOWN_HURRIED). */
  while (s.open != NULL)
    conn_close(&s, s.open);
  int how = s.hurried && s.opt.processes ? SHUTDOWN_HURRIED : CREW_CANCEL;
  if (s.pool != NULL && (rc = crew_pool_shutdown(s.pool, how)) != 0)
    fprintf(stderr, "server: crew_pool_shutdown: %s\n", crew_strerror(rc));
  if (s.opt.stats && status == 0)
    print_stats(&s);
  crew_pool_destroy(s.pool);
  if (s.ch != NULL) { /* every future has resolved: take them back */
    drain_completions(&s);
    s.dirty = NULL;
    for (struct conn *c = s.closed; c != NULL; c = c->next)
      c->dirty = false;
  }
  while (s.closed != NULL) {
    struct conn *c = s.closed;
    list_remove(&s.closed, c);
    free_conn(c);
  }
  crew_channel_destroy(s.ch);
  if (s.lfd >= 0)
    close(s.lfd);
  if (s.sfd >= 0)
    close(s.sfd);
  if (s.spare >= 0)
    close(s.spare);
  if (s.epfd >= 0)
    close(s.epfd);
  free(s.scratch);
  fflush(stdout);
  return status;
}
