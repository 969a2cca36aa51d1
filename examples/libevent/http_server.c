/*
 * http_server - crew behind libevent's HTTP server. An evhttp server on
 * 127.0.0.1 whose request handler hands the work to a crew pool and returns
 * at once; the pool's completion channel is one more event of the same
 * libevent loop,
 *
 *   event_new(base, crew_channel_fd(ch), EV_READ | EV_PERSIST, on_done, s)
 *
 * and on_done drains the channel and answers each finished request. The
 * loop thread never computes, so it keeps accepting connections and
 * answering /ping while the workers hash (--inline, the comparison, hashes
 * on the loop thread instead).
 *
 *   make                                    (crew and libevent through
 *                                            pkg-config)
 *   ./http_server --port 8080 --workers 2   (prints: listening on
 *                                            127.0.0.1:8080)
 *   curl 'http://127.0.0.1:8080/hash?rounds=1000&data=hello'
 *   make check                              (test.sh: curl asks it)
 *
 * Requests (GET only):
 *   /hash?rounds=R&data=D  200 and the 16 hex digits of hashwork(D, R) from
 *                          demo/hashwork.h, then '\n'. D is URL-decoded
 *                          ('+' is a space, %XX a byte) and holds at most
 *                          4096 bytes; R is a decimal in 1..1000000.
 *   /ping                  200 "pong\n".
 *   400 when rounds or data is missing or out of range, 404 for another
 *   path, 405 for another method, 503 with "Retry-After: 1" when the pool's
 *   queue is full (the submit never blocks the loop), 500 with the reason
 *   when the task failed (its worker process died, with --processes).
 *
 * Options: --port N (0, the default, picks a free port), --workers N (0:
 * one per CPU), --processes (worker processes instead of threads), --queue
 * N (the pool's queue capacity; 0: crew's default), --inline (no pool).
 *
 * Shutdown: the first SIGINT or SIGTERM closes the listening socket (new
 * connects are refused), answers every request already read, each with
 * "Connection: close", and exits 0 once every answer is written (or its
 * client has gone). Idle keep-alive connections are closed then. A second
 * signal exits at once, status 1, dropping what is unanswered.
 */
#define _POSIX_C_SOURCE 200809L

#include "hashwork.h"

#include <crew.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define DATA_MAX    4096 /* bytes of data in one /hash request */
#define DRAIN_BATCH 64   /* completions taken per crew_channel_drain() */
#define IO_TIMEOUT  10   /* seconds a connection may sit idle or stall */

/* -------------------------------------------------------------- options */

struct options {
  unsigned port;
  size_t workers;   /* 0: one per CPU */
  size_t queue;     /* 0: crew's default */
  bool processes;   /* worker processes instead of threads */
  bool inline_work; /* no pool: hash on the loop thread */
};

static void usage(FILE *f)
{
  fprintf(f, "usage: http_server [--port N] [--workers N] [--processes] "
             "[--queue N] [--inline]\n"
             "An HTTP server on 127.0.0.1 that hashes on a crew pool:\n"
             "  GET /hash?rounds=R&data=D   the hex digest of hashwork(D, R)\n"
             "  GET /ping                   pong\n"
             "  --port N      port to listen on; 0 (default) picks a free one\n"
             "  --workers N   pool workers; 0 (default) one per CPU\n"
             "  --processes   worker processes instead of threads\n"
             "  --queue N     the pool's queue capacity (a full queue answers "
             "503);\n"
             "                0 (default) crew's default\n"
             "  --inline      no pool: hash on the event loop's thread\n"
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
      fprintf(stderr, "http_server: %s needs a number (at most %lu)\n", a, max);
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
    else if (strcmp(a, "--inline") == 0)
      o->inline_work = true;
    else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "http_server: unknown option '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (o->processes && o->inline_work) {
    fprintf(stderr, "http_server: --processes and --inline exclude each "
                    "other\n");
    return 2;
  }
  return -1;
}

/* ------------------------------------------------------------ the task */

/* A task's input, passed by value: the same bytes reach a worker thread (a
 * copy made at submit) or a worker process (a copy in shared memory), so
 * the task holds no pointer into the server. Only the first `len` bytes of
 * data are submitted. */
struct hash_in {
  uint32_t rounds;
  uint32_t len;
  char data[DATA_MAX];
};

static int hash_task(const void *in, void *out)
{
  const struct hash_in *h = in;
  uint64_t digest = hashwork(h->data, h->len, h->rounds);
  memcpy(out, &digest, sizeof digest);
  return 0;
}

/* --------------------------------------------------------------- server */

struct server {
  struct options opt;
  crew_pool *pool;  /* NULL with --inline */
  crew_channel *ch; /* NULL with --inline */
  struct event_base *base;
  struct evhttp *http;
  struct evhttp_bound_socket *listener; /* NULL once closed */
  struct event *done_ev, *sigint_ev, *sigterm_ev;
  bool draining;      /* a signal came: answer what we have, then stop */
  size_t jobs;        /* requests taken, their answers not yet written */
  uint64_t answered;  /* answers written */
  uint64_t dropped;   /* requests whose client went before its answer */
  uint64_t submitted; /* tasks handed to the pool */
  uint64_t rejected;  /* 503s: the pool's queue was full */
};

/*
 * One request, from the handler until its answer is written. evhttp owns
 * the request; a job follows it through two stages:
 *  - running: the task is in the pool (the job is its channel tag). If the
 *    client goes meanwhile, evhttp detaches the request from its connection
 *    and the answer, sent to nobody, frees it.
 *  - sending: evhttp_send_reply() was called. The request ends in one of
 *    two callbacks: on_written (the answer is written) or on_conn_closed
 *    (the connection died first; evhttp frees the request).
 */
struct job {
  struct server *s;
  struct evhttp_request *req;
  bool sending;
};

static void job_end(struct job *j, bool written)
{
  struct server *s = j->s;
  if (written)
    s->answered++;
  else
    s->dropped++;
  s->jobs--;
  free(j);
  if (s->draining && s->jobs == 0)
    event_base_loopexit(s->base, NULL);
}

static void on_written(struct evhttp_request *req, void *arg)
{
  /* The connection may serve the next request: it is no longer ours. */
  evhttp_connection_set_closecb(evhttp_request_get_connection(req), NULL, NULL);
  job_end(arg, true);
}

static void on_conn_closed(struct evhttp_connection *evcon, void *arg)
{
  struct job *j = arg;
  (void)evcon;
  if (j->sending)
    job_end(j, false); /* evhttp frees the request right after this */
  /* running: the request lives on, detached; the answer frees it */
}

static struct job *job_new(struct server *s, struct evhttp_request *req)
{
  struct job *j = malloc(sizeof *j);
  if (j == NULL)
    return NULL;
  *j = (struct job){.s = s, .req = req};
  s->jobs++;
  evhttp_request_set_on_complete_cb(req, on_written, j);
  evhttp_connection_set_closecb(evhttp_request_get_connection(req),
                                on_conn_closed, j);
  return j;
}

/* Answer j's request: status, reason phrase, a text body of n bytes. */
static void reply(struct job *j, int code, const char *reason, const char *body,
                  size_t n)
{
  struct evhttp_request *req = j->req;
  struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
  if (code == 503)
    evhttp_add_header(headers, "Retry-After", "1");
  if (code == 405)
    evhttp_add_header(headers, "Allow", "GET");
  if (j->s->draining) /* the client should not send another request */
    evhttp_add_header(headers, "Connection", "close");
  evbuffer_add(evhttp_request_get_output_buffer(req), body, n);
  if (evhttp_request_get_connection(req) == NULL) {
    /* The client went while the task ran: this only frees the request. */
    evhttp_send_reply(req, code, reason, NULL);
    job_end(j, false);
    return;
  }
  j->sending = true;
  evhttp_send_reply(req, code, reason, NULL);
}

static void reply_text(struct job *j, int code, const char *reason,
                       const char *text)
{
  reply(j, code, reason, text, strlen(text));
}

/* ---------------------------------------------------------- the request */

/*
 * Find key in a query string ("rounds=5&data=a+b") and URL-decode its value
 * into a new string (*len bytes, NUL-terminated, and it may hold NULs): 1,
 * 0 if the key is absent, -1 if memory ran out. The first one counts.
 */
static int query_get(const char *query, const char *key, char **val,
                     size_t *len)
{
  size_t klen = strlen(key);
  for (const char *p = query; p != NULL && *p != '\0';) {
    const char *amp = strchr(p, '&');
    size_t n = amp != NULL ? (size_t)(amp - p) : strlen(p);
    if (n >= klen && memcmp(p, key, klen) == 0 &&
        (n == klen || p[klen] == '=')) {
      size_t vlen = n > klen ? n - klen - 1 : 0;
      char *raw = strndup(p + klen + (n > klen), vlen);
      if (raw == NULL)
        return -1;
      *val = evhttp_uridecode(raw, 1, len); /* '+' decodes to a space */
      free(raw);
      return *val != NULL ? 1 : -1;
    }
    p = amp != NULL ? amp + 1 : NULL;
  }
  return 0;
}

/* Read rounds and data from the query into *in: 0, or the status to
 * answer (400 or 500) and *why. */
static int parse_hash_query(const char *query, struct hash_in *in,
                            const char **why)
{
  char *rounds = NULL, *data = NULL;
  size_t rlen = 0, dlen = 0;
  int r = query_get(query, "rounds", &rounds, &rlen);
  int d = r < 0 ? -1 : query_get(query, "data", &data, &dlen);
  unsigned long v = 0;
  int code = 400;
  if (r < 0 || d < 0) {
    code = 500;
    *why = "out of memory";
  } else if (r == 0) {
    *why = "rounds: missing (GET /hash?rounds=R&data=D)";
  } else if (d == 0) {
    *why = "data: missing (GET /hash?rounds=R&data=D)";
  } else if (rlen == 0 || strspn(rounds, "0123456789") != rlen ||
             !parse_num(rounds, HW_ROUNDS_MAX, &v) || v < 1) {
    *why = "rounds: a decimal in 1..1000000";
  } else if (dlen > DATA_MAX) {
    *why = "data: at most 4096 bytes";
  } else {
    in->rounds = (uint32_t)v;
    in->len = (uint32_t)dlen;
    memcpy(in->data, data, dlen);
    code = 0;
  }
  free(rounds);
  free(data);
  return code;
}

static void on_request(struct evhttp_request *req, void *arg)
{
  struct server *s = arg;
  struct job *j = job_new(s, req);
  if (j == NULL) {
    evhttp_send_error(req, 503, "Out of memory");
    return;
  }
  const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
  const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
  const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
  bool ping = path != NULL && strcmp(path, "/ping") == 0;
  bool hash = path != NULL && strcmp(path, "/hash") == 0;
  if (!ping && !hash) {
    reply_text(j, 404, "Not Found", "not found: try /hash or /ping\n");
    return;
  }
  if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
    reply_text(j, 405, "Method Not Allowed", "method not allowed: GET\n");
    return;
  }
  if (ping) {
    reply_text(j, 200, "OK", "pong\n");
    return;
  }

  struct hash_in in;
  const char *why = NULL;
  int code = parse_hash_query(query != NULL ? query : "", &in, &why);
  if (code != 0) {
    char text[128];
    snprintf(text, sizeof text, "%s\n", why);
    reply_text(j, code, code == 400 ? "Bad Request" : "Internal Server Error",
               text);
    return;
  }
  if (s->pool == NULL) { /* --inline: the loop thread does the work */
    char digest[HW_DIGEST_LEN + 1];
    hw_format_digest(hashwork(in.data, in.len, in.rounds), digest);
    reply(j, 200, "OK", digest, sizeof digest);
    return;
  }
  /* Never block the loop: a full queue is the client's 503, not our wait.
   * On success the job is the task's tag: on_done answers it. */
  int rc = crew_submit_to_timed(s->pool, s->ch, j, hash_task, &in,
                                offsetof(struct hash_in, data) + in.len,
                                sizeof(uint64_t), 0);
  if (rc == 0) {
    s->submitted++;
  } else if (rc == CREW_ETIMEDOUT) {
    s->rejected++;
    reply_text(j, 503, "Service Unavailable", "busy: the queue is full\n");
  } else {
    char text[128];
    snprintf(text, sizeof text, "submit failed: %s\n", crew_strerror(rc));
    reply_text(j, 500, "Internal Server Error", text);
  }
}

/* --------------------------------------------------------- completions */

/* The channel's fd is readable: take every finished task and answer it. */
static void on_done(evutil_socket_t fd, short what, void *arg)
{
  struct server *s = arg;
  crew_completion done[DRAIN_BATCH];
  size_t n;
  (void)fd;
  (void)what;
  do {
    if (crew_channel_drain(s->ch, done, DRAIN_BATCH, &n) != 0)
      return;
    for (size_t i = 0; i < n; i++) {
      struct job *j = done[i].tag;
      uint64_t digest;
      int rc = crew_future_get(done[i].future, &digest, sizeof digest);
      crew_future_release(done[i].future);
      if (rc == 0) {
        char text[HW_DIGEST_LEN + 1];
        hw_format_digest(digest, text);
        reply(j, 200, "OK", text, sizeof text);
      } else {
        char text[128];
        snprintf(text, sizeof text, "task failed: %s\n", crew_strerror(rc));
        reply_text(j, 500, "Internal Server Error", text);
      }
    }
  } while (n == DRAIN_BATCH); /* fewer than asked: the channel is empty */
}

/* ------------------------------------------------------------- shutdown */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
  struct server *s = arg;
  const char *name = sig == SIGINT ? "SIGINT" : "SIGTERM";
  (void)what;
  if (s->draining) {
    printf("%s again: exiting now, unanswered requests: %zu\n", name, s->jobs);
    fflush(stdout);
    exit(1); /* workers die with us; the kernel closes the sockets */
  }
  s->draining = true;
  if (s->listener != NULL) { /* new connects are refused from now on */
    evhttp_del_accept_socket(s->http, s->listener);
    s->listener = NULL;
  }
  printf("shutting down on %s: %zu requests in progress\n", name, s->jobs);
  fflush(stdout);
  if (s->jobs == 0)
    event_base_loopexit(s->base, NULL);
}

/* After the loop: nothing runs any more. Let every job go unanswered (none
 * is left after a graceful drain) and free everything. */
static void teardown(struct server *s)
{
  if (s->pool != NULL) {
    crew_pool_shutdown(s->pool, CREW_CANCEL); /* running tasks finish */
    crew_pool_destroy(s->pool);               /* every future resolved */
  }
  if (s->ch != NULL) {
    crew_completion done[DRAIN_BATCH];
    size_t n;
    do {
      crew_channel_drain(s->ch, done, DRAIN_BATCH, &n);
      for (size_t i = 0; i < n; i++) {
        struct job *j = done[i].tag;
        struct evhttp_connection *evcon = evhttp_request_get_connection(j->req);
        crew_future_release(done[i].future);
        if (evcon != NULL) /* evhttp_free() frees the request */
          evhttp_connection_set_closecb(evcon, NULL, NULL);
        else /* detached: ours to free */
          evhttp_request_free(j->req);
        job_end(j, false);
      }
    } while (n == DRAIN_BATCH);
  }
  if (s->http != NULL)
    evhttp_free(s->http); /* closes connections: ends the sending jobs */
  if (s->done_ev != NULL)
    event_free(s->done_ev);
  if (s->sigint_ev != NULL)
    event_free(s->sigint_ev);
  if (s->sigterm_ev != NULL)
    event_free(s->sigterm_ev);
  crew_channel_destroy(s->ch);
  if (s->base != NULL)
    event_base_free(s->base);
}

/* ---------------------------------------------------------------- setup */

static int start_pool(struct server *s)
{
  crew_config cfg;
  crew_config_init(&cfg);
  cfg.mode = s->opt.processes ? CREW_PROCESSES : CREW_THREADS;
  cfg.workers = s->opt.workers;
  cfg.queue_capacity = s->opt.queue;
  cfg.name = "http"; /* workers show as http-0, http-1, ... */
  cfg.max_in_size = sizeof(struct hash_in);
  cfg.max_out_size = sizeof(uint64_t);
  int rc = crew_pool_create(&s->pool, &cfg);
  if (rc != 0) {
    fprintf(stderr, "http_server: crew_pool_create: %s\n", crew_strerror(rc));
    return rc;
  }
  rc = crew_channel_create(&s->ch);
  if (rc != 0)
    fprintf(stderr, "http_server: crew_channel_create: %s\n",
            crew_strerror(rc));
  return rc;
}

static int start_http(struct server *s, unsigned *port)
{
  s->base = event_base_new();
  s->http = s->base != NULL ? evhttp_new(s->base) : NULL;
  if (s->http == NULL)
    return -1;
  evhttp_set_gencb(s->http, on_request, s);
  /* Let every method reach on_request, which answers 405 itself (evhttp
   * would answer 501 for those outside this set). */
  evhttp_set_allowed_methods(
      s->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                   EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                   EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
  evhttp_set_default_content_type(s->http, "text/plain");
  evhttp_set_timeout(s->http, IO_TIMEOUT);
  evhttp_set_max_headers_size(s->http, 8 * DATA_MAX); /* %XX: 3 per byte */
  evhttp_set_max_body_size(s->http, DATA_MAX);

  if (s->ch != NULL) {
    s->done_ev = event_new(s->base, crew_channel_fd(s->ch),
                           EV_READ | EV_PERSIST, on_done, s);
    if (s->done_ev == NULL || event_add(s->done_ev, NULL) != 0)
      return -1;
  }
  s->sigint_ev = evsignal_new(s->base, SIGINT, on_signal, s);
  s->sigterm_ev = evsignal_new(s->base, SIGTERM, on_signal, s);
  if (s->sigint_ev == NULL || s->sigterm_ev == NULL ||
      event_add(s->sigint_ev, NULL) != 0 || event_add(s->sigterm_ev, NULL) != 0)
    return -1;

  s->listener =
      evhttp_bind_socket_with_handle(s->http, "127.0.0.1", (uint16_t)*port);
  if (s->listener == NULL) {
    fprintf(stderr, "http_server: cannot listen on 127.0.0.1:%u: %s\n", *port,
            strerror(errno));
    return -1;
  }
  struct sockaddr_in a;
  socklen_t alen = sizeof a;
  if (getsockname(evhttp_bound_socket_get_fd(s->listener),
                  (struct sockaddr *)&a, &alen) != 0)
    return -1;
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
  if (!s.opt.inline_work && start_pool(&s) != 0)
    goto out;
  unsigned port = s.opt.port;
  if (start_http(&s, &port) != 0) {
    fprintf(stderr, "http_server: cannot set up the event loop\n");
    goto out;
  }
  printf("listening on 127.0.0.1:%u\n", port);
  fflush(stdout);

  if (event_base_dispatch(s.base) == 0)
    status = 0;
  teardown(&s);
  printf("stopped: %llu requests answered, %llu dropped (client gone), "
         "%llu tasks, %llu refused (queue full)\n",
         (unsigned long long)s.answered, (unsigned long long)s.dropped,
         (unsigned long long)s.submitted, (unsigned long long)s.rejected);
  return status;

out:
  teardown(&s);
  return status;
}
