/*
 * loadgen - load generator and checker for demo/server: many non-blocking
 * connections on one epoll loop, each sending a bounded number of HASH
 * requests (pipelined up to --pipeline deep) and checking every answer
 * against the digest computed here with demo/hashwork.h. Linux only (epoll).
 *
 *   demo/loadgen --port N --connections 32 --requests 1000 --rounds 600
 *
 * Prints requests, correct, wrong, missing, errors (connection failures),
 * refused, the requests the server declined by its limits (one count per
 * reason, below), duration, throughput and latency percentiles (send to
 * answer, per request), one "name: value" a line. Exits 1 if any answer was
 * wrong or missing (sent, but the server closed the connection or time ran
 * out before it answered) or any connection failed, 0 otherwise.
 *
 * Declined requests (demo/hashwork.h) are neither correct nor wrong, and
 * each is checked as far as the client can: too_costly ("ERR request too
 * costly (max N)") only if the request's hw_cost() is above N (else the
 * answer is wrong); task_failed ("ERR task failed: <reason>": the server's
 * worker failed, as a process that died or overran the server's deadline
 * does) whatever the request; read_timeout ("ERR read timeout": the
 * server waited longer than its idle timeout for the rest of a line, as it
 * may when it stopped reading for want of memory) whatever the request;
 * busy ("ERR server busy": it has no descriptor, or no memory, for one more
 * connection) whatever the request; shutting_down ("ERR server shutting
 * down": its drain time ran out) whatever the request. After a
 * read_timeout, a busy or a shutting_down the server closes the
 * connection: the requests it leaves unanswered are counted with it, not
 * as missing.
 *
 * The expected digests are computed before the clock starts, for a table of
 * PAYLOADS distinct payloads that consecutive requests take in turn (request
 * j of connection i uses payload (i * R + j) % PAYLOADS): an answer that
 * comes back in the wrong order, or for another request, does not match,
 * and the generator spends no CPU hashing while it measures.
 *
 * --shutdown-check: connections the server refuses (it has begun shutting
 * down) are counted as refused, not as errors; every request sent on an
 * established connection must still be answered correctly.
 * --protocol-check: instead of load, run a script of protocol exchanges
 * (PING, errors, pipelining, split lines, CRLF, half-close, the longest
 * line and one byte more, more pipelined requests than the server holds
 * unanswered per connection, the costliest request the syntax allows) and
 * check each answer.
 */
#define _GNU_SOURCE

#include "hashwork.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define PAYLOADS   251 /* distinct payloads (a prime: neighbours differ) */
#define ANSWER_CAP 512 /* a longer answer line is wrong */
#define EVENTS_MAX 64

struct options {
  unsigned port;
  unsigned long connections, requests, rounds, pipeline, payload_bytes;
  unsigned long progress_at; /* print "progress: N answers" at N */
  unsigned long linger_ms;   /* keep finished connections open this long */
  unsigned long timeout_s;   /* give up (missing) after this long */
  bool shutdown_check, protocol_check;
};

static void usage(FILE *f)
{
  fprintf(f,
          "usage: loadgen --port N [options]\n"
          "Drives demo/server and checks every answer.\n"
          "  --port N            the server's port on 127.0.0.1 (required)\n"
          "  --connections C     concurrent connections (default 16)\n"
          "  --requests R        HASH requests per connection (default 100)\n"
          "  --rounds K          hash rounds per request: its cost (default "
          "100)\n"
          "  --pipeline P        requests in flight per connection (default "
          "1)\n"
          "  --payload-bytes B   payload size (default 32)\n"
          "  --progress-at N     print \"progress: N answers\" (flushed) once "
          "N\n"
          "                      answers have come back\n"
          "  --linger-ms N       keep each connection open N ms after its "
          "last\n"
          "                      answer, unless the server closes it "
          "(default 0)\n"
          "  --timeout-s N       give up after N s: unanswered requests are\n"
          "                      missing (default 60)\n"
          "  --shutdown-check    refused connections are not errors\n"
          "  --protocol-check    run the protocol script instead of load\n"
          "Exits 1 if an answer was wrong or missing or a connection "
          "failed.\n");
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
  *o = (struct options){.connections = 16,
                        .requests = 100,
                        .rounds = 100,
                        .pipeline = 1,
                        .payload_bytes = 32,
                        .timeout_s = 60};
  unsigned long port = 0;
  bool have_port = false;
  struct {
    const char *name;
    unsigned long *v, min, max;
  } nums[] = {
      {"--port", &port, 1, 65535},
      {"--connections", &o->connections, 1, 100000},
      {"--requests", &o->requests, 1, 100000000},
      {"--rounds", &o->rounds, 1, HW_ROUNDS_MAX},
      {"--pipeline", &o->pipeline, 1, 100000},
      {"--payload-bytes", &o->payload_bytes, 0, HW_LINE_MAX - 16},
      {"--progress-at", &o->progress_at, 0, ~0ul},
      {"--linger-ms", &o->linger_ms, 0, 3600000},
      {"--timeout-s", &o->timeout_s, 1, 86400},
  };
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    size_t k = 0;
    while (k < sizeof nums / sizeof nums[0] && strcmp(a, nums[k].name) != 0)
      k++;
    if (k < sizeof nums / sizeof nums[0]) {
      if (i + 1 >= argc || !parse_num(argv[i + 1], nums[k].max, nums[k].v) ||
          *nums[k].v < nums[k].min) {
        fprintf(stderr, "loadgen: %s needs a number in %lu..%lu\n", a,
                nums[k].min, nums[k].max);
        return 2;
      }
      if (k == 0)
        have_port = true;
      i++;
    } else if (strcmp(a, "--shutdown-check") == 0) {
      o->shutdown_check = true;
    } else if (strcmp(a, "--protocol-check") == 0) {
      o->protocol_check = true;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "loadgen: unknown option '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (!have_port) {
    fprintf(stderr, "loadgen: --port is required\n");
    return 2;
  }
  o->port = (unsigned)port;
  if (o->connections * o->requests > 100000000ul) {
    fprintf(stderr, "loadgen: at most 100000000 requests in all\n");
    return 2;
  }
  return -1;
}

static uint64_t now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct sockaddr_in server_addr(unsigned port)
{
  return (struct sockaddr_in){.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
}

/* Payload k: printable bytes from a xorshift stream seeded by k. */
static void make_payload(char *out, size_t n, unsigned k)
{
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789 -_";
  uint64_t x = 0x9e3779b97f4a7c15ull * (k + 1);
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = alphabet[x % (sizeof alphabet - 1)];
  }
}

/* ---------------------------------------------------------------- load */

/* Why the server declined a request it was right to decline. */
enum decline {
  DECLINE_COSTLY,
  DECLINE_FAILED,
  DECLINE_TIMEOUT,  /* closes the connection */
  DECLINE_BUSY,     /* closes the connection */
  DECLINE_SHUTDOWN, /* closes the connection */
  DECLINE_KINDS
};

static const char *const decline_names[DECLINE_KINDS] = {
    "too_costly", "task_failed", "read_timeout", "busy", "shutting_down"};

/* Whether the server closes the connection after such an answer. */
static bool decline_closes(int why)
{
  return why == DECLINE_TIMEOUT || why == DECLINE_BUSY ||
         why == DECLINE_SHUTDOWN;
}

/* Whether the answer line is a legitimate refusal of a request of this
 * cost, and which: -1 if it is not one. */
static int declined(const char *line, size_t len, uint64_t cost)
{
  static const char costly[] = "ERR request too costly (max ";
  static const char failed[] = "ERR task failed: ";
  static const char timeout[] = "ERR read timeout";
  static const char busy[] = "ERR server busy";
  static const char stopping[] = "ERR server shutting down";
  if (len == sizeof stopping - 1 && memcmp(line, stopping, len) == 0)
    return DECLINE_SHUTDOWN;
  if (len == sizeof timeout - 1 && memcmp(line, timeout, len) == 0)
    return DECLINE_TIMEOUT;
  if (len == sizeof busy - 1 && memcmp(line, busy, len) == 0)
    return DECLINE_BUSY;
  size_t n = sizeof failed - 1;
  if (len > n && memcmp(line, failed, n) == 0)
    return DECLINE_FAILED;
  n = sizeof costly - 1;
  if (len > n + 1 && memcmp(line, costly, n) == 0 && line[len - 1] == ')') {
    uint64_t max = 0;
    for (size_t i = n; i < len - 1; i++) {
      if (line[i] < '0' || line[i] > '9' || max > UINT64_MAX / 10 - 1)
        return -1;
      max = max * 10 + (uint64_t)(line[i] - '0');
    }
    return cost > max ? DECLINE_COSTLY : -1;
  }
  return -1;
}

enum cstate { C_CONNECTING, C_OPEN, C_DONE };

struct lconn {
  int fd; /* -1 once closed */
  enum cstate state;
  unsigned long index;
  unsigned long sent, answered;
  uint64_t *sent_ns; /* [pipeline]: request k was sent at sent_ns[k % P] */
  uint64_t linger_until;
  char *out; /* requests not yet written: [out_off, out_len) */
  size_t out_off, out_len, out_cap;
  char in[ANSWER_CAP]; /* a partial answer line */
  size_t in_len;
  uint32_t events;
  bool closing;             /* the server said it closes the connection */
  enum decline closing_why; /* how, while closing */
};

struct load {
  struct options o;
  int epfd;
  char *payload_bytes; /* PAYLOADS payloads of o.payload_bytes each */
  uint64_t expected[PAYLOADS];
  struct lconn *conns;
  unsigned long live; /* connections not yet finished */
  uint64_t *lat;      /* send-to-answer times, one per answer */
  unsigned long nlat;
  unsigned long sent, correct, wrong, missing, errors, refused;
  unsigned long declined[DECLINE_KINDS]; /* by enum decline */
  unsigned long wrong_shown;
  bool progress_done;
};

static const char *payload_of(const struct load *L, unsigned long c,
                              unsigned long j)
{
  return L->payload_bytes +
         ((c * L->o.requests + j) % PAYLOADS) * L->o.payload_bytes;
}

static void set_interest(struct load *L, struct lconn *c, uint32_t want)
{
  if (c->fd < 0 || want == c->events)
    return;
  struct epoll_event ev = {.events = want, .data.ptr = c};
  if (epoll_ctl(L->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
    c->events = want;
}

/* Finish a connection: close it, count what it left unanswered. */
static void conn_finish(struct load *L, struct lconn *c, bool failed)
{
  if (c->state == C_DONE)
    return;
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  if (c->sent > c->answered && c->closing) /* the server said why */
    L->declined[c->closing_why] += c->sent - c->answered;
  else if (c->sent > c->answered)
    L->missing += c->sent - c->answered;
  if (failed)
    L->errors++;
  c->state = C_DONE;
  L->live--;
}

/* Queue requests up to the pipeline depth and write what we can. */
static void conn_send(struct load *L, struct lconn *c)
{
  const struct options *o = &L->o;
  while (c->sent < o->requests && c->sent - c->answered < o->pipeline) {
    size_t need = o->payload_bytes + 32;
    if (c->out_len + need > c->out_cap) {
      if (c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
      }
      if (c->out_len + need > c->out_cap) {
        size_t cap = (c->out_cap + need) * 2;
        char *p = realloc(c->out, cap);
        if (p == NULL) {
          conn_finish(L, c, true);
          return;
        }
        c->out = p;
        c->out_cap = cap;
      }
    }
    c->out_len += hw_format_request(
        c->out + c->out_len, c->out_cap - c->out_len, (unsigned)o->rounds,
        payload_of(L, c->index, c->sent), o->payload_bytes);
    c->sent_ns[c->sent % o->pipeline] = now_ns();
    c->sent++;
    L->sent++;
  }
  while (c->out_off < c->out_len) {
    ssize_t n =
        send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
    if (n > 0) {
      c->out_off += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      break;
    } else {
      conn_finish(L, c, !c->closing); /* the server went away */
      return;
    }
  }
  if (c->out_off == c->out_len)
    c->out_off = c->out_len = 0;
  set_interest(L, c, EPOLLIN | (c->out_len > c->out_off ? EPOLLOUT : 0));
}

/* One answer line (without '\n'): check it against the oldest request. */
static void take_answer(struct load *L, struct lconn *c, const char *line,
                        size_t len)
{
  const struct options *o = &L->o;
  if (c->answered >= c->sent) {
    L->wrong++; /* an answer to nothing */
    return;
  }
  uint64_t d;
  uint64_t want =
      L->expected[(c->index * o->requests + c->answered) % PAYLOADS];
  int why;
  if (hw_parse_digest(line, len, &d) && d == want) {
    L->correct++;
  } else if ((why = declined(line, len,
                             hw_cost((unsigned)o->rounds, o->payload_bytes))) >=
             0) {
    L->declined[why]++;
    if (decline_closes(why)) {
      c->closing = true;
      c->closing_why = (enum decline)why;
    }
  } else {
    L->wrong++;
    if (L->wrong_shown++ < 5)
      fprintf(stderr, "loadgen: connection %lu request %lu: got '%.*s'\n",
              c->index, c->answered, (int)(len < 80 ? len : 80), line);
  }
  L->lat[L->nlat++] = now_ns() - c->sent_ns[c->answered % o->pipeline];
  c->answered++;
  if (!L->progress_done && o->progress_at > 0 && L->nlat >= o->progress_at) {
    L->progress_done = true;
    printf("progress: %lu answers\n", L->nlat);
    fflush(stdout);
  }
}

static void conn_read(struct load *L, struct lconn *c)
{
  for (;;) {
    ssize_t n = recv(c->fd, c->in + c->in_len, sizeof c->in - c->in_len, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      break;
    if (n <= 0) { /* closed by the server: an error unless all answered */
      conn_finish(L, c, c->answered < L->o.requests && !c->closing);
      return;
    }
    c->in_len += (size_t)n;
    size_t off = 0;
    char *nl;
    while ((nl = memchr(c->in + off, '\n', c->in_len - off)) != NULL) {
      take_answer(L, c, c->in + off, (size_t)(nl - (c->in + off)));
      off = (size_t)(nl - c->in) + 1;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    if (c->in_len == sizeof c->in) { /* no answer is this long */
      L->wrong++;
      conn_finish(L, c, true);
      return;
    }
  }
  if (c->answered == L->o.requests) {
    if (L->o.linger_ms == 0) {
      conn_finish(L, c, false);
      return;
    }
    if (c->linger_until == 0)
      c->linger_until = now_ns() + L->o.linger_ms * 1000000u;
    set_interest(L, c, EPOLLIN); /* to see the server close it */
    return;
  }
  conn_send(L, c);
}

static void conn_connected(struct load *L, struct lconn *c)
{
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    err = errno;
  if (err == 0) {
    c->state = C_OPEN;
    conn_send(L, c);
    return;
  }
  if (err == ECONNREFUSED && L->o.shutdown_check) {
    L->refused++;
    conn_finish(L, c, false);
    return;
  }
  if (err == ECONNREFUSED)
    L->refused++;
  fprintf(stderr, "loadgen: connect: %s\n", strerror(err));
  conn_finish(L, c, true);
}

static void conn_start(struct load *L, struct lconn *c)
{
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    perror("loadgen: socket");
    conn_finish(L, c, true);
    return;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a = server_addr(L->o.port);
  int rc = connect(c->fd, (struct sockaddr *)&a, sizeof a);
  if (rc != 0 && errno != EINPROGRESS) {
    int err = errno;
    close(c->fd);
    c->fd = -1;
    if (err == ECONNREFUSED)
      L->refused++;
    if (err == ECONNREFUSED && L->o.shutdown_check) {
      conn_finish(L, c, false);
    } else {
      fprintf(stderr, "loadgen: connect: %s\n", strerror(err));
      conn_finish(L, c, true);
    }
    return;
  }
  c->events = EPOLLOUT;
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
  if (epoll_ctl(L->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
    perror("loadgen: epoll_ctl");
    conn_finish(L, c, true);
    return;
  }
  if (rc == 0) /* connected at once (loopback may) */
    conn_connected(L, c);
}

static void conn_event(struct load *L, struct lconn *c, uint32_t events)
{
  if (c->state == C_DONE)
    return;
  if (c->state == C_CONNECTING) {
    conn_connected(L, c);
    return;
  }
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
    conn_read(L, c); /* reads the error or the end, if any */
  if (c->state == C_OPEN && (events & EPOLLOUT))
    conn_send(L, c);
}

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static double pct_us(const uint64_t *sorted, unsigned long n, double p)
{
  if (n == 0)
    return 0;
  unsigned long rank = (unsigned long)(p * (double)n + 0.999999);
  if (rank < 1)
    rank = 1;
  if (rank > n)
    rank = n;
  return (double)sorted[rank - 1] / 1e3;
}

static int run_load(struct load *L)
{
  const struct options *o = &L->o;
  L->payload_bytes = malloc(PAYLOADS * o->payload_bytes + 1);
  L->conns = calloc(o->connections, sizeof *L->conns);
  L->lat = malloc((o->connections * o->requests + 1) * sizeof *L->lat);
  L->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (L->payload_bytes == NULL || L->conns == NULL || L->lat == NULL ||
      L->epfd < 0) {
    perror("loadgen: setup");
    return 1;
  }
  for (unsigned k = 0; k < PAYLOADS; k++) {
    char *p = L->payload_bytes + k * o->payload_bytes;
    make_payload(p, o->payload_bytes, k);
    L->expected[k] = hashwork(p, o->payload_bytes, (unsigned)o->rounds);
  }

  uint64_t start = now_ns();
  uint64_t give_up = start + o->timeout_s * 1000000000u;
  L->live = o->connections;
  for (unsigned long i = 0; i < o->connections; i++) {
    struct lconn *c = &L->conns[i];
    c->index = i;
    c->fd = -1;
    c->state = C_CONNECTING;
    c->sent_ns = calloc(o->pipeline, sizeof *c->sent_ns);
    if (c->sent_ns == NULL)
      conn_finish(L, c, true);
    else
      conn_start(L, c);
  }
  bool timed_out = false;
  struct epoll_event evs[EVENTS_MAX];
  while (L->live > 0) {
    uint64_t now = now_ns();
    uint64_t wake = give_up;
    for (unsigned long i = 0; i < o->connections; i++) {
      struct lconn *c = &L->conns[i];
      if (c->state == C_DONE || c->linger_until == 0)
        continue;
      if (now >= c->linger_until)
        conn_finish(L, c, false);
      else if (c->linger_until < wake)
        wake = c->linger_until;
    }
    if (L->live == 0)
      break;
    if (now >= give_up) {
      timed_out = true;
      break;
    }
    int ms = (int)((wake - now + 999999) / 1000000);
    int n = epoll_wait(L->epfd, evs, EVENTS_MAX, ms);
    if (n < 0 && errno != EINTR) {
      perror("loadgen: epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; i++)
      conn_event(L, evs[i].data.ptr, evs[i].events);
  }
  uint64_t end = now_ns();
  if (timed_out) {
    fprintf(stderr, "loadgen: gave up after %lu s\n", o->timeout_s);
    for (unsigned long i = 0; i < o->connections; i++)
      if (L->conns[i].state != C_DONE)
        conn_finish(L, &L->conns[i], true);
  }
  double secs = (double)(end - start) / 1e9;
  qsort(L->lat, L->nlat, sizeof *L->lat, cmp_u64);
  printf("connections: %lu\n", o->connections);
  printf("requests: %lu\n", L->sent);
  printf("correct: %lu\n", L->correct);
  printf("wrong: %lu\n", L->wrong);
  printf("missing: %lu\n", L->missing);
  printf("errors: %lu\n", L->errors);
  printf("refused: %lu\n", L->refused);
  unsigned long declined_all = 0;
  for (int k = 0; k < DECLINE_KINDS; k++) {
    printf("%s: %lu\n", decline_names[k], L->declined[k]);
    declined_all += L->declined[k];
  }
  printf("duration_s: %.3f\n", secs);
  printf("throughput_rps: %.0f\n", secs > 0 ? (double)L->nlat / secs : 0);
  printf("latency_p50_us: %.1f\n", pct_us(L->lat, L->nlat, 0.50));
  printf("latency_p90_us: %.1f\n", pct_us(L->lat, L->nlat, 0.90));
  printf("latency_p99_us: %.1f\n", pct_us(L->lat, L->nlat, 0.99));
  printf("latency_max_us: %.1f\n",
         L->nlat > 0 ? (double)L->lat[L->nlat - 1] / 1e3 : 0.0);
  fflush(stdout);
  for (unsigned long i = 0; i < o->connections; i++) {
    free(L->conns[i].sent_ns);
    free(L->conns[i].out);
  }
  bool ok = L->wrong == 0 && L->missing == 0 && L->errors == 0 &&
            L->correct + declined_all == L->sent;
  return ok ? 0 : 1;
}

/* ------------------------------------------------------ protocol check */

static int failures;

static int pc_connect(unsigned port)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct timeval tv = {.tv_sec = 10}; /* never hang on a broken server */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = server_addr(port);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static bool pc_send(int fd, const char *p, size_t n)
{
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return false;
    p += k;
    n -= (size_t)k;
  }
  return true;
}

/* Read one line (without '\n') into buf; -1 at EOF or error. */
static long pc_line(int fd, char *buf, size_t cap)
{
  size_t n = 0;
  for (;;) {
    char ch;
    ssize_t k = recv(fd, &ch, 1, 0);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return -1;
    if (ch == '\n')
      break;
    if (n + 1 < cap)
      buf[n++] = ch;
  }
  buf[n] = '\0';
  return (long)n;
}

static void pc_fail(const char *what, const char *got, const char *want)
{
  printf("FAIL: %s: got '%s', expected '%s'\n", what, got, want);
  failures++;
}

static void pc_expect(int fd, const char *what, const char *want)
{
  char buf[256];
  if (pc_line(fd, buf, sizeof buf) < 0)
    snprintf(buf, sizeof buf, "<end of stream>");
  if (strcmp(buf, want) != 0)
    pc_fail(what, buf, want);
}

static void pc_expect_prefix(int fd, const char *what, const char *prefix)
{
  char buf[256];
  if (pc_line(fd, buf, sizeof buf) < 0)
    snprintf(buf, sizeof buf, "<end of stream>");
  if (strncmp(buf, prefix, strlen(prefix)) != 0)
    pc_fail(what, buf, prefix);
}

static void pc_expect_eof(int fd, const char *what)
{
  char buf[256];
  if (pc_line(fd, buf, sizeof buf) >= 0)
    pc_fail(what, buf, "<end of stream>");
}

/* The next answer must decline a request of this cost, for this reason. */
static void pc_expect_declined(int fd, const char *what, uint64_t cost,
                               enum decline why)
{
  char buf[256];
  long n = pc_line(fd, buf, sizeof buf);
  if (n < 0)
    snprintf(buf, sizeof buf, "<end of stream>");
  if (n < 0 || declined(buf, (size_t)n, cost) != (int)why)
    pc_fail(what, buf, decline_names[why]);
}

static void digest_of(const char *payload, unsigned rounds, char out[17])
{
  hw_format_digest(hashwork(payload, strlen(payload), rounds), out);
  out[HW_DIGEST_LEN] = '\0';
}

static int run_protocol_check(unsigned port)
{
  char d1[17], d2[17];
  int fd = pc_connect(port);
  if (fd < 0) {
    printf("FAIL: connect: %s\n", strerror(errno));
    return 1;
  }
  /* 1: PING, errors, and a pipelined mix answered in order. */
  const char *mix = "PING\nHASH 5 a\nPING\nBAD\nHASH 7 b b\n"
                    "HASH 0 x\nHASH 12\nhash 1 x\nHASH 1000001 x\nHASH 3 \n"
                    "PING\r\n";
  pc_send(fd, mix, strlen(mix));
  pc_expect(fd, "PING", "PONG");
  digest_of("a", 5, d1);
  pc_expect(fd, "HASH 5 a", d1);
  pc_expect(fd, "PING after HASH", "PONG");
  pc_expect_prefix(fd, "BAD", "ERR ");
  digest_of("b b", 7, d2);
  pc_expect(fd, "HASH with spaces in the payload", d2);
  pc_expect_prefix(fd, "HASH 0 (rounds out of range)", "ERR ");
  pc_expect_prefix(fd, "HASH without payload", "ERR ");
  pc_expect_prefix(fd, "lower-case hash", "ERR ");
  pc_expect_prefix(fd, "HASH 1000001 (rounds out of range)", "ERR ");
  digest_of("", 3, d1);
  pc_expect(fd, "HASH with an empty payload", d1);
  pc_expect(fd, "PING with CRLF", "PONG");
  printf("%s: pipelined PING/HASH/ERR mix answered in order\n",
         failures ? "FAIL" : "ok");

  /* 2: a line split over several writes. */
  int before = failures;
  pc_send(fd, "HASH 3 hel", 10);
  usleep(20000); /* let the server see the partial line on its own */
  pc_send(fd, "lo\nPI", 5);
  usleep(20000);
  pc_send(fd, "NG\n", 3);
  digest_of("hello", 3, d1);
  pc_expect(fd, "split HASH", d1);
  pc_expect(fd, "split PING", "PONG");
  printf("%s: lines split across writes\n", failures > before ? "FAIL" : "ok");

  /* 3: more pipelined requests than a connection may hold unanswered
   * (1024): the server pauses and resumes reading, answers all in order. */
  before = failures;
  enum { MANY = 3000 };
  char *big = malloc(MANY * 32);
  size_t n = 0;
  for (int i = 0; i < MANY; i++)
    n += (size_t)sprintf(big + n, i % 3 == 2 ? "PING\n" : "HASH 2 p%d\n", i);
  pc_send(fd, big, n);
  free(big);
  for (int i = 0; i < MANY && failures == before; i++) {
    char p[32];
    snprintf(p, sizeof p, "p%d", i);
    digest_of(p, 2, d1);
    pc_expect(fd, "deep pipeline", i % 3 == 2 ? "PONG" : d1);
  }
  printf("%s: %d pipelined requests answered in order\n",
         failures > before ? "FAIL" : "ok", MANY);

  /* 4: half-close: answers still come, then the server closes. */
  before = failures;
  pc_send(fd, "HASH 50 z\n", 10);
  shutdown(fd, SHUT_WR);
  digest_of("z", 50, d1);
  pc_expect(fd, "HASH before half-close", d1);
  pc_expect_eof(fd, "after half-close");
  close(fd);
  printf("%s: half-closed client gets its answers, then EOF\n",
         failures > before ? "FAIL" : "ok");

  /* 5: the longest line is served; one byte more is an error and a close. */
  before = failures;
  char *line = malloc(HW_LINE_MAX + 2);
  memcpy(line, "HASH 1 ", 7);
  memset(line + 7, 'q', HW_LINE_MAX - 7);
  line[HW_LINE_MAX] = '\n';
  fd = pc_connect(port);
  pc_send(fd, line, HW_LINE_MAX + 1);
  hw_format_digest(hashwork(line + 7, HW_LINE_MAX - 7, 1), d1);
  d1[HW_DIGEST_LEN] = '\0';
  pc_expect(fd, "a line of HW_LINE_MAX bytes", d1);
  line[HW_LINE_MAX] = 'q';
  pc_send(fd, "PING\n", 5);
  pc_send(fd, line, HW_LINE_MAX + 1); /* no '\n': one byte too many */
  pc_expect(fd, "PING before the long line", "PONG");
  pc_expect_prefix(fd, "a line of HW_LINE_MAX + 1 bytes", "ERR ");
  pc_expect_eof(fd, "after a too long line");
  close(fd);
  free(line);
  printf("%s: a %u-byte line is served, one byte more gets ERR and a close\n",
         failures > before ? "FAIL" : "ok", HW_LINE_MAX);

  /* 6: a client that leaves with requests in flight; the server goes on. */
  before = failures;
  fd = pc_connect(port);
  pc_send(fd, "HASH 100000 gone\nHASH 100000 gone\n", 34);
  close(fd);
  fd = pc_connect(port);
  pc_send(fd, "PING\n", 5);
  pc_expect(fd, "PING after another client left", "PONG");
  close(fd);
  printf("%s: a client leaving mid-request does not disturb others\n",
         failures > before ? "FAIL" : "ok");

  /* 7: the costliest request the syntax allows (over a minute of CPU) is
   * declined at once, within the receive timeout, and the connection goes
   * on. */
  before = failures;
  line = malloc(HW_LINE_MAX + 1);
  memcpy(line, "HASH 1000000 ", 13);
  memset(line + 13, 'c', HW_LINE_MAX - 13);
  line[HW_LINE_MAX] = '\n';
  fd = pc_connect(port);
  pc_send(fd, line, HW_LINE_MAX + 1);
  pc_send(fd, "PING\n", 5);
  pc_expect_declined(fd, "HASH 1000000 <65523 bytes>",
                     hw_cost(1000000, HW_LINE_MAX - 13), DECLINE_COSTLY);
  pc_expect(fd, "PING after a declined HASH", "PONG");
  close(fd);
  free(line);
  printf("%s: the costliest HASH is declined at once, the connection goes "
         "on\n",
         failures > before ? "FAIL" : "ok");

  printf("protocol check: %s\n", failures ? "FAILED" : "passed");
  return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
  struct load L = {.epfd = -1};
  int rc = parse_options(argc, argv, &L.o);
  if (rc >= 0)
    return rc;
  signal(SIGPIPE, SIG_IGN);
  if (L.o.protocol_check)
    return run_protocol_check(L.o.port);
  rc = run_load(&L);
  free(L.payload_bytes);
  free(L.conns);
  free(L.lat);
  if (L.epfd >= 0)
    close(L.epfd);
  return rc;
}
