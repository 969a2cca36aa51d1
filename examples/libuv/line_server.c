/*
 * line_server - crew from a libuv loop: a TCP server on uv_tcp_t that
 * speaks demo/server's line protocol (demo/hashwork.h), so demo/loadgen
 * can drive it and check every answer. The loop never hashes: each HASH
 * line goes to a crew pool with crew_submit_to_timed(..., 0), which never
 * blocks, and the results come back through a uv_poll_t watching the
 * completion channel's descriptor:
 *
 *   uv_poll_init(loop, &done, crew_channel_fd(ch));
 *   uv_poll_start(&done, UV_READABLE, on_done);   drains, answers
 *
 *   make                                    (crew and libuv through
 *                                            pkg-config)
 *   ./line_server --port 7000 --workers 2   (prints: listening on
 *                                            127.0.0.1:7000)
 *   make check                              (test.sh: demo/loadgen drives
 *                                            it)
 *
 * The protocol, one request a line: "HASH <rounds> <payload>" answers the
 * 16 hex digits of hashwork(payload, rounds), "PING" answers "PONG",
 * anything else "ERR <reason>"; a line longer than 65536 bytes gets an ERR
 * and the connection is closed. A HASH that would hash more than MAX_COST
 * bytes (hw_cost: about 0.1 s of CPU, demo/server's default --max-cost) is
 * answered "ERR request too costly (max N)" at once and never runs, so no
 * one request can hold a worker for minutes.
 *
 * Options: --port N (0, the default, picks a free port), --workers N (0:
 * one per CPU), --processes (worker processes instead of threads), --queue
 * N (the pool's queue capacity; 0: crew's default).
 *
 * How it works, as demo/server.c (which does the same on a bare epoll):
 *  - Order: a client may pipeline; answers go back in request order. Each
 *    connection keeps its requests in a FIFO of records; a HASH record is
 *    the task's channel tag and is filled when its completion is drained.
 *    Answers leave from the head only, while requests run in parallel.
 *  - Backpressure: when the pool's queue is full the submit says
 *    CREW_ETIMEDOUT; the line stays in the connection's buffer, reading
 *    stops (uv_read_stop) and the connection waits in a FIFO, retried after
 *    each drain. A connection also stops reading while it has CONN_REQ_MAX
 *    unanswered requests or CONN_OUT_MAX bytes of answers unsent.
 *  - Shutdown: the first SIGINT or SIGTERM (uv_signal_t) accepts what the
 *    kernel already queued, closes the listening socket (new connects are
 *    refused) and serves the open connections until their clients close
 *    them, for at most DRAIN_MS; a second signal closes them at once. Then
 *    the pool is shut down (what is queued has no client: CREW_CANCEL) and
 *    everything is freed. Exit status 0.
 */
#define _POSIX_C_SOURCE 200809L

#include "hashwork.h"

#include <crew.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONN_IN_MAX  (HW_LINE_MAX + 1) /* the longest line and its '\n' */
#define CONN_OUT_MAX (256u << 10)      /* unsent answers before we pause */
#define CONN_REQ_MAX 1024u             /* unanswered requests before we pause */
#define ANSWER_MAX   64                /* "ERR ..." lines fit */
#define MAX_COST     100000000ul       /* the most hw_cost() a HASH may have */
#define DRAIN_BATCH  64                /* completions per crew_channel_drain */
#define DRAIN_MS     10000             /* how long a shutdown serves clients */

/* -------------------------------------------------------------- options */

struct options {
  unsigned port;
  size_t workers; /* 0: one per CPU */
  size_t queue;   /* 0: crew's default */
  bool processes; /* worker processes instead of threads */
};

static void usage(FILE *f)
{
  fprintf(f, "usage: line_server [--port N] [--workers N] [--processes] "
             "[--queue N]\n"
             "A TCP server on 127.0.0.1 that hashes on a crew pool (protocol: "
             "demo/hashwork.h).\n"
             "  --port N      port to listen on; 0 (default) picks a free one\n"
             "  --workers N   pool workers; 0 (default) one per CPU\n"
             "  --processes   worker processes instead of threads\n"
             "  --queue N     the pool's queue capacity (a full queue stops "
             "reading\n"
             "                from clients); 0 (default) crew's default\n"
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

/* -1: go on; otherwise the exit status. */
static int parse_options(int argc, char **argv, struct options *o)
{
  *o = (struct options){0};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    unsigned long v = 0;
    unsigned long max = strcmp(a, "--port") == 0      ? 65535
                        : strcmp(a, "--workers") == 0 ? CREW_WORKERS_MAX
                        : strcmp(a, "--queue") == 0   ? 1ul << 24
                                                      : 0;
    if (max > 0 && (i + 1 >= argc || !parse_num(argv[++i], max, &v))) {
      fprintf(stderr, "line_server: %s needs a number (at most %lu)\n", a, max);
      return 2;
    }
    if (strcmp(a, "--port") == 0)
      o->port = (unsigned)v;
    else if (strcmp(a, "--workers") == 0)
      o->workers = v;
    else if (strcmp(a, "--queue") == 0)
      o->queue = v;
    else if (strcmp(a, "--processes") == 0)
      o->processes = true;
    else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "line_server: unknown option '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  return -1;
}

/* ------------------------------------------------------------ the task */

/* A task's input, passed by value (a worker process gets a copy in shared
 * memory): only the first `len` bytes of payload are submitted. */
struct hash_in {
  uint32_t rounds;
  uint32_t len;
  char payload[HW_LINE_MAX];
};

static int hash_task(const void *in, void *out)
{
  const struct hash_in *h = in;
  uint64_t digest = hashwork(h->payload, h->len, h->rounds);
  memcpy(out, &digest, sizeof digest);
  return 0;
}

/* --------------------------------------------------------- connections */

struct server;
struct conn;

/* One request of a connection, in request order. */
struct req {
  struct req *next;
  struct conn *conn;
  bool done;       /* the answer is ready */
  unsigned char n; /* answer bytes */
  char answer[ANSWER_MAX];
};

/* One uv_write() in flight: the bytes it sends live here until its end. */
struct write_req {
  uv_write_t req;
  struct conn *conn;
  size_t n;
  char data[];
};

struct conn {
  uv_tcp_t tcp; /* tcp.data points back here */
  struct server *s;
  struct conn *prev, *next;  /* every connection not yet freed */
  struct conn *blocked_next; /* the blocked FIFO, while blocked */
  struct conn *dirty_next;   /* answers to send, after a drain */
  char *in;                  /* unread input: [0, in_len) */
  size_t in_len, in_cap;
  char *out; /* answers not yet written: [0, out_len) */
  size_t out_len, out_cap;
  size_t writing;          /* bytes in uv_write() calls not yet done */
  struct req *head, *tail; /* requests not yet moved to out */
  size_t reqs;             /* how many */
  size_t running;          /* of them, in the pool */
  bool reading;            /* uv_read_start() is on */
  bool blocked;            /* the pool's queue was full: wait for room */
  bool dirty;
  bool peer_eof; /* the client sends no more */
  bool fatal;    /* a line was too long: answer, then close */
  bool closing;  /* uv_close() was called */
  bool closed;   /* its close callback ran: freed once nothing runs */
};

struct server {
  struct options opt;
  uv_loop_t loop;
  crew_pool *pool;
  crew_channel *ch;
  uv_tcp_t listener;
  uv_poll_t done;
  uv_signal_t sigint, sigterm;
  uv_timer_t drain_timer;
  bool handles; /* the five handles above exist */
  bool draining;
  struct conn *conns; /* every connection not yet freed */
  size_t nopen;       /* of them, not closing */
  struct conn *blocked_head, *blocked_tail;
  struct conn *dirty;
  struct hash_in *scratch; /* a task's input, built here */
  uint64_t accepted, hashes, pings, errors, pauses;
};

static void free_conn(struct conn *c)
{
  struct server *s = c->s;
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  while (c->head != NULL) {
    struct req *r = c->head;
    c->head = r->next;
    free(r);
  }
  free(c->in);
  free(c->out);
  free(c);
}

static void on_conn_closed(uv_handle_t *h)
{
  struct conn *c = h->data;
  c->closed = true;
  if (c->running == 0) /* else the last completion frees it */
    free_conn(c);
}

static void stop_if_done(struct server *s);
static void conn_pump(struct conn *c);

/* Close now: nobody is left to answer (or everything was answered). The
 * records of running requests stay until their completions come back. */
static void conn_close(struct conn *c)
{
  struct server *s = c->s;
  if (c->closing)
    return;
  c->closing = true;
  s->nopen--;
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
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
  stop_if_done(s);
}

/* Append bytes to the connection's output. */
static bool out_add(struct conn *c, const char *p, size_t n)
{
  if (c->out_len + n > c->out_cap) {
    size_t cap = c->out_cap == 0 ? 4096 : c->out_cap;
    while (cap < c->out_len + n)
      cap *= 2;
    char *q = realloc(c->out, cap);
    if (q == NULL)
      return false;
    c->out = q;
    c->out_cap = cap;
  }
  memcpy(c->out + c->out_len, p, n);
  c->out_len += n;
  return true;
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

static struct req *new_req(struct conn *c)
{
  struct req *r = calloc(1, sizeof *r);
  if (r == NULL)
    return NULL;
  r->conn = c;
  if (c->tail != NULL)
    c->tail->next = r;
  else
    c->head = r;
  c->tail = r;
  c->reqs++;
  return r;
}

/* Queue an answer that is ready now, behind those still running. */
static bool answer_now(struct conn *c, const char *text)
{
  struct req *r = new_req(c);
  if (r == NULL)
    return false;
  set_answer(r, text);
  return true;
}

/* Move the finished answers at the head of the FIFO to the output. */
static bool move_answers(struct conn *c)
{
  while (c->head != NULL && c->head->done) {
    struct req *r = c->head;
    if (!out_add(c, r->answer, r->n))
      return false;
    c->head = r->next;
    if (c->head == NULL)
      c->tail = NULL;
    c->reqs--;
    free(r);
  }
  return true;
}

static void on_written(uv_write_t *req, int status)
{
  struct write_req *w = (struct write_req *)req;
  struct conn *c = w->conn;
  c->writing -= w->n;
  free(w);
  if (c->closing)
    return; /* UV_ECANCELED: the close callback comes next */
  if (status < 0)
    conn_close(c); /* EPIPE, ECONNRESET: the client went away */
  else
    conn_pump(c); /* room for more, or everything is sent */
}

/* Hand the output to one uv_write(): false if that failed. */
static bool conn_flush(struct conn *c)
{
  if (c->out_len == 0)
    return true;
  struct write_req *w = malloc(sizeof *w + c->out_len);
  if (w == NULL)
    return false;
  memcpy(w->data, c->out, c->out_len);
  w->conn = c;
  w->n = c->out_len;
  uv_buf_t buf = uv_buf_init(w->data, (unsigned)w->n);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0) {
    free(w);
    return false;
  }
  c->writing += w->n;
  c->out_len = 0;
  return true;
}

/* Whether the connection may take another request now. */
static bool can_take(const struct conn *c)
{
  return !c->blocked && !c->fatal && c->reqs < CONN_REQ_MAX &&
         c->out_len + c->writing < CONN_OUT_MAX;
}

static void block_conn(struct conn *c)
{
  struct server *s = c->s;
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
static bool handle_line(struct conn *c, const char *line, size_t len)
{
  struct server *s = c->s;
  hw_request q = hw_parse_request(line, len);
  if (q.kind != HW_HASH || hw_cost(q.rounds, q.len) > MAX_COST) {
    char text[ANSWER_MAX];
    if (q.kind == HW_PING) {
      s->pings++;
      snprintf(text, sizeof text, "PONG");
    } else if (q.kind == HW_HASH) { /* never runs */
      s->errors++;
      snprintf(text, sizeof text, "ERR request too costly (max %lu)", MAX_COST);
    } else {
      s->errors++;
      snprintf(text, sizeof text, "ERR %s", q.reason);
    }
    if (!answer_now(c, text))
      c->fatal = true;
    return !c->fatal;
  }
  /* The record is the tag; it is linked only once the submit succeeded. */
  struct req *r = calloc(1, sizeof *r);
  if (r == NULL) {
    c->fatal = true;
    return false;
  }
  r->conn = c;
  s->scratch->rounds = q.rounds;
  s->scratch->len = (uint32_t)q.len;
  memcpy(s->scratch->payload, q.payload, q.len);
  int rc = crew_submit_to_timed(s->pool, s->ch, r, hash_task, s->scratch,
                                offsetof(struct hash_in, payload) + q.len,
                                sizeof(uint64_t), 0);
  if (rc == 0) {
    if (c->tail != NULL)
      c->tail->next = r;
    else
      c->head = r;
    c->tail = r;
    c->reqs++;
    c->running++;
    s->hashes++;
    return true;
  }
  free(r);                    /* no task was made: the line stays */
  if (rc == CREW_ETIMEDOUT) { /* the queue is full: backpressure */
    block_conn(c);
    return false;
  }
  char text[ANSWER_MAX];
  snprintf(text, sizeof text, "ERR server: %s", crew_strerror(rc));
  s->errors++;
  if (!answer_now(c, text))
    c->fatal = true;
  return !c->fatal;
}

/* Take the complete lines in the input while the connection may. */
static void take_lines(struct conn *c)
{
  size_t off = 0;
  while (off < c->in_len && can_take(c)) {
    char *nl = memchr(c->in + off, '\n', c->in_len - off);
    size_t len = nl != NULL ? (size_t)(nl - (c->in + off)) : c->in_len - off;
    if (len > HW_LINE_MAX) { /* too long, whole or not: answer and close */
      c->s->errors++;
      answer_now(c, "ERR line too long (max 65536 bytes)");
      c->fatal = true;
      off = c->in_len;
      break;
    }
    if (nl == NULL)
      break; /* an incomplete line: wait for more */
    if (!handle_line(c, c->in + off, len))
      break;
    off += len + 1;
  }
  if (off > 0) {
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  struct conn *c = h->data;
  (void)suggested;
  if (c->in_len == c->in_cap && c->in_cap < CONN_IN_MAX) {
    size_t cap = c->in_cap == 0 ? 4096 : c->in_cap * 2;
    if (cap > CONN_IN_MAX)
      cap = CONN_IN_MAX;
    char *p = realloc(c->in, cap);
    if (p != NULL) {
      c->in = p;
      c->in_cap = cap;
    }
  }
  /* No room gives UV_ENOBUFS in on_read: reading pauses. */
  *buf = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void on_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
  struct conn *c = stream->data;
  (void)buf;
  if (n > 0)
    c->in_len += (size_t)n;
  else if (n == UV_EOF)
    c->peer_eof = true; /* answer what was sent, then close */
  else if (n < 0 && n != UV_ENOBUFS) {
    conn_close(c); /* a reset: nobody to answer */
    return;
  }
  conn_pump(c);
}

/* Start or stop reading as the connection may take requests or not. */
static bool set_reading(struct conn *c, bool want)
{
  if (want == c->reading)
    return true;
  int rc = want ? uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)
                : uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = want;
  return rc == 0;
}

/* After anything happened on c: take lines, send answers, close when done
 * (the client finished sending and everything it sent is answered, or a
 * fatal line was answered), and read only while it may take more. */
static void conn_pump(struct conn *c)
{
  if (c->closing)
    return;
  /* Answers leaving make room for more lines, and lines make answers:
   * go round until neither moves. */
  for (;;) {
    if (!move_answers(c)) {
      conn_close(c);
      return;
    }
    size_t had = c->in_len;
    if (!can_take(c) || had == 0)
      break;
    take_lines(c);
    if (c->in_len == had)
      break; /* no complete line, or the queue is full */
  }
  if (!conn_flush(c)) {
    conn_close(c);
    return;
  }
  bool answered = c->head == NULL && c->writing == 0;
  bool lines = c->in_len > 0 && memchr(c->in, '\n', c->in_len) != NULL;
  if (answered && (c->fatal || (c->peer_eof && !lines && !c->blocked))) {
    conn_close(c);
    return;
  }
  if (!set_reading(c, !c->peer_eof && can_take(c)))
    conn_close(c);
}

/* The close callback of a connection that was never served. */
static void free_unstarted(uv_handle_t *h)
{
  free(h->data);
}

/* Serve a connection (the listener's, or one accepted at shutdown). */
static void conn_start(struct conn *c)
{
  struct server *s = c->s;
  c->tcp.data = c;
  c->next = s->conns;
  if (s->conns != NULL)
    s->conns->prev = c;
  s->conns = c;
  s->nopen++;
  s->accepted++;
  uv_tcp_nodelay(&c->tcp, 1);
  if (!set_reading(c, true))
    conn_close(c);
}

static void on_connection(uv_stream_t *listener, int status)
{
  struct server *s = listener->data;
  if (status < 0) {
    fprintf(stderr, "line_server: accept: %s\n", uv_strerror(status));
    return;
  }
  struct conn *c = calloc(1, sizeof *c);
  if (c == NULL || uv_tcp_init(&s->loop, &c->tcp) != 0) {
    free(c); /* out of memory: libuv holds the connection for a later try */
    return;
  }
  c->s = s;
  c->tcp.data = c;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, free_unstarted);
    return;
  }
  conn_start(c);
}

/* ---------------------------------------------------------- completions */

/* The channel's descriptor is readable: take every finished task, fill its
 * record, then send what became sendable and retry blocked connections. */
static void on_done(uv_poll_t *poll, int status, int events)
{
  struct server *s = poll->data;
  crew_completion done[DRAIN_BATCH];
  size_t n;
  (void)status; /* an error here would be the channel's: drain anyway */
  (void)events;
  do {
    if (crew_channel_drain(s->ch, done, DRAIN_BATCH, &n) != 0)
      return;
    for (size_t i = 0; i < n; i++) {
      struct req *r = done[i].tag;
      struct conn *c = r->conn;
      uint64_t digest = 0;
      int rc = crew_future_get(done[i].future, &digest, sizeof digest);
      crew_future_release(done[i].future);
      if (rc == 0) {
        hw_format_digest(digest, r->answer);
        r->n = HW_DIGEST_LEN + 1;
        r->done = true;
      } else {
        char text[ANSWER_MAX];
        snprintf(text, sizeof text, "ERR task failed: %s", crew_strerror(rc));
        set_answer(r, text);
      }
      c->running--;
      if (c->closed && c->running == 0) {
        free_conn(c); /* its client left; this was its last task */
      } else if (!c->closing && !c->dirty) {
        c->dirty = true;
        c->dirty_next = s->dirty;
        s->dirty = c;
      }
    }
  } while (n == DRAIN_BATCH); /* fewer than asked: the channel is empty */

  while (s->dirty != NULL) {
    struct conn *c = s->dirty;
    s->dirty = c->dirty_next;
    c->dirty = false;
    conn_pump(c);
  }
  /* Workers took tasks off the queue: let blocked connections retry, oldest
   * first, until the queue is full again. */
  while (s->blocked_head != NULL) {
    struct conn *c = s->blocked_head;
    s->blocked_head = c->blocked_next;
    if (s->blocked_head == NULL)
      s->blocked_tail = NULL;
    c->blocked = false;
    conn_pump(c);
    if (!c->closing && c->blocked)
      break; /* full again */
  }
}

/* ------------------------------------------------------------- shutdown */

static void close_handle(uv_handle_t *h)
{
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

/* Draining, and no connection left: close the server's own handles, and
 * uv_run() returns once they are closed. */
static void stop_if_done(struct server *s)
{
  if (!s->draining || s->nopen > 0)
    return;
  close_handle((uv_handle_t *)&s->done);
  close_handle((uv_handle_t *)&s->sigint);
  close_handle((uv_handle_t *)&s->sigterm);
  close_handle((uv_handle_t *)&s->drain_timer);
}

static void close_all(struct server *s)
{
  for (struct conn *c = s->conns; c != NULL;) {
    struct conn *next = c->next; /* c is freed later, by its close callback */
    conn_close(c);
    c = next;
  }
}

static void on_drain_timeout(uv_timer_t *t)
{
  struct server *s = t->data;
  printf("drain timeout: closing %zu connections\n", s->nopen);
  fflush(stdout);
  close_all(s);
}

/* Connections the kernel completed before the signal are accepted ones:
 * take them before closing the listening socket. */
static void accept_pending(struct server *s)
{
  uv_os_fd_t lfd;
  if (uv_fileno((uv_handle_t *)&s->listener, &lfd) != 0)
    return;
  for (;;) {
    int fd = accept(lfd, NULL, NULL);
    if (fd < 0 && errno == EINTR)
      continue;
    if (fd < 0)
      return; /* EAGAIN: none left (or an error: nothing more to take) */
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL || uv_tcp_init(&s->loop, &c->tcp) != 0) {
      free(c);
      close(fd);
      continue;
    }
    c->s = s;
    c->tcp.data = c;
    if (uv_tcp_open(&c->tcp, fd) != 0) { /* also makes it non-blocking */
      close(fd);
      uv_close((uv_handle_t *)&c->tcp, free_unstarted);
      continue;
    }
    conn_start(c);
  }
}

static void on_signal(uv_signal_t *sig, int signum)
{
  struct server *s = sig->data;
  const char *name = signum == SIGINT ? "SIGINT" : "SIGTERM";
  if (s->draining) { /* a second signal: stop serving now */
    printf("%s again: closing %zu connections\n", name, s->nopen);
    fflush(stdout);
    close_all(s);
    return;
  }
  accept_pending(s);
  uv_close((uv_handle_t *)&s->listener, NULL); /* new connects refused */
  s->draining = true;
  printf("shutting down on %s: %zu connections open, draining at most %d "
         "ms\n",
         name, s->nopen, DRAIN_MS);
  fflush(stdout);
  if (uv_timer_start(&s->drain_timer, on_drain_timeout, DRAIN_MS, 0) != 0)
    close_all(s);
  stop_if_done(s);
}

/* ---------------------------------------------------------------- setup */

static int start_pool(struct server *s)
{
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.mode = s->opt.processes ? CREW_PROCESSES : CREW_THREADS;
  cfg.workers = s->opt.workers;
  cfg.queue_capacity = s->opt.queue;
  cfg.name = "line"; /* workers show as line-0, line-1, ... */
  cfg.max_in_size = sizeof(struct hash_in);
  cfg.max_out_size = sizeof(uint64_t);
  int rc = crew_pool_create(&s->pool, &cfg);
  if (rc != 0) {
    fprintf(stderr, "line_server: crew_pool_create: %s\n", crew_strerror(rc));
    return rc;
  }
  rc = crew_channel_create(&s->ch);
  if (rc != 0)
    fprintf(stderr, "line_server: crew_channel_create: %s\n",
            crew_strerror(rc));
  return rc;
}

/* The loop and its handles; s->handles once all of them exist (until then
 * a failure leaves nothing to close). */
static int start_loop(struct server *s, unsigned *port)
{
  int rc;
  if ((rc = uv_loop_init(&s->loop)) != 0)
    return rc;
  s->loop.data = s;
  if ((rc = uv_poll_init(&s->loop, &s->done, crew_channel_fd(s->ch))) != 0 ||
      (rc = uv_signal_init(&s->loop, &s->sigint)) != 0 ||
      (rc = uv_signal_init(&s->loop, &s->sigterm)) != 0 ||
      (rc = uv_timer_init(&s->loop, &s->drain_timer)) != 0 ||
      (rc = uv_tcp_init(&s->loop, &s->listener)) != 0)
    return rc;
  s->handles = true;
  s->done.data = s->sigint.data = s->sigterm.data = s;
  s->drain_timer.data = s->listener.data = s;
  if ((rc = uv_poll_start(&s->done, UV_READABLE, on_done)) != 0 ||
      (rc = uv_signal_start(&s->sigint, on_signal, SIGINT)) != 0 ||
      (rc = uv_signal_start(&s->sigterm, on_signal, SIGTERM)) != 0)
    return rc;

  struct sockaddr_in a;
  int alen = sizeof a;
  if ((rc = uv_ip4_addr("127.0.0.1", (int)*port, &a)) != 0 ||
      (rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&a, 0)) != 0 ||
      (rc = uv_listen((uv_stream_t *)&s->listener, 512, on_connection)) != 0 ||
      (rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&a, &alen)) !=
          0)
    return rc;
  *port = ntohs(a.sin_port);
  return 0;
}

int main(int argc, char **argv)
{
  struct server s = {0};
  int rc = parse_options(argc, argv, &s.opt);
  if (rc >= 0)
    return rc;
  signal(SIGPIPE, SIG_IGN); /* a client that left: a write error, no signal */

  /* The pool first: worker processes are forked now and inherit what is
   * open, and one holding the listening socket would keep the port
   * accepting after we close it. */
  int status = 1;
  s.scratch = malloc(sizeof *s.scratch);
  if (s.scratch == NULL || start_pool(&s) != 0)
    goto out;
  unsigned port = s.opt.port;
  if ((rc = start_loop(&s, &port)) != 0) {
    fprintf(stderr, "line_server: listen on 127.0.0.1:%u: %s\n", s.opt.port,
            uv_strerror(rc));
    goto out;
  }
  printf("listening on 127.0.0.1:%u\n", port);
  fflush(stdout);

  if (uv_run(&s.loop, UV_RUN_DEFAULT) == 0)
    status = 0; /* every handle closed: the drain is over */

out:
  if (s.handles && status != 0) { /* a failed setup: close what is open */
    close_handle((uv_handle_t *)&s.listener);
    s.draining = true;
    stop_if_done(&s);
    uv_run(&s.loop, UV_RUN_DEFAULT);
  }
  /* Every connection is closed (or none was opened). What is still queued
   * has no client: cancel it; running tasks finish. */
  if (s.pool != NULL) {
    crew_pool_shutdown(s.pool, CREW_CANCEL);
    crew_pool_destroy(s.pool); /* every future has resolved */
  }
  if (s.ch != NULL) { /* free the records of what ran for closed clients */
    crew_completion done[DRAIN_BATCH];
    size_t n;
    do {
      crew_channel_drain(s.ch, done, DRAIN_BATCH, &n);
      for (size_t i = 0; i < n; i++) {
        struct req *r = done[i].tag;
        crew_future_release(done[i].future);
        if (--r->conn->running == 0)
          free_conn(r->conn);
      }
    } while (n == DRAIN_BATCH);
  }
  if (s.loop.data != NULL)
    uv_loop_close(&s.loop);
  crew_channel_destroy(s.ch);
  free(s.scratch);
  if (status == 0)
    printf("stopped: %llu connections, %llu HASH, %llu PING, %llu ERR, %llu "
           "backpressure pauses\n",
           (unsigned long long)s.accepted, (unsigned long long)s.hashes,
           (unsigned long long)s.pings, (unsigned long long)s.errors,
           (unsigned long long)s.pauses);
  fflush(stdout);
  return status;
}
