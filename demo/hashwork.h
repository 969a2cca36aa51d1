/*
 * demo/hashwork.h - what the server demo computes, and the line protocol
 * that its load generator speaks: shared by demo/server.c and
 * demo/loadgen.c, so both sides agree on every digest and every byte.
 *
 * The work: hashwork(payload, len, rounds) is FNV-1a 64 iterated. Round i
 * hashes, from the FNV offset basis, the 8 bytes of the previous digest
 * (little-endian; the offset basis before round 1) followed by the payload;
 * the result is the digest after `rounds` rounds. It costs
 * hw_cost(rounds, len) = rounds * (len + 8) dependent multiplies:
 * deterministic, CPU-bound, and easy to size (about 1 ns each on a 2020s
 * x86 core, so the largest request the syntax allows, a million rounds of
 * a 65,523-byte payload, is over a minute of CPU).
 *
 * The protocol, one request per line ('\n'; a '\r' just before it is
 * dropped, so `nc -C` works), answered in request order:
 *   HASH <rounds> <payload>\n -> <16 lowercase hex digits>\n
 *   PING\n                    -> PONG\n
 *   anything else             -> ERR <reason>\n
 * <rounds> is a decimal in 1..HW_ROUNDS_MAX; <payload> is every byte after
 * the single space that follows it, up to the end of the line (it may be
 * empty, and may hold spaces). A line longer than HW_LINE_MAX bytes is an
 * error after which the server closes the connection.
 *
 * A well-formed HASH may still get an ERR instead of its digest:
 *  - declined by one of the server's limits (demo/server.c sets them):
 *      ERR request too costly (max N)  its hw_cost() passes N; it never ran
 *  - failed in the server after it was accepted:
 *      ERR task failed: deadline       it ran past the server's deadline
 *                                      for one task, and its worker process
 *                                      was killed
 *      ERR task failed: <reason>       the work did not complete otherwise:
 *                                      with worker processes, the worker
 *                                      died during the task (a crash, or
 *                                      killed from outside) and <reason>
 *                                      says how: "worker 1234 killed by
 *                                      SIGSEGV", "worker 1234 exited with
 *                                      3" (or, if that is not known, "the
 *                                      worker process died during the
 *                                      task")
 *    The work is a pure function of the request, and such a failure is the
 *    server's, not the request's: sending the same request again is safe,
 *    and gets the digest unless the server fails again (a request that
 *    overran the deadline may well overrun it again).
 *
 * A server may also end a connection, with one last ERR as the answer to
 * the oldest request it has not answered (none after it is answered;
 * sending them again, on a new connection, is safe):
 *      ERR read timeout     the client left a line unfinished for longer
 *                           than the server's idle timeout
 *      ERR server busy      the server has no room for the connection (at
 *                           its descriptor limit, or its cap on buffered
 *                           input): the first line a new client reads, or
 *                           the answer to a client whose wait for room
 *                           outlasted the idle timeout
 *      ERR server shutting down
 *                           the server is shutting down and its time to
 *                           finish ran out: the answer to every request it
 *                           read and did not answer, each in its turn
 */
#ifndef DEMO_HASHWORK_H
#define DEMO_HASHWORK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define HW_LINE_MAX   65536u   /* bytes in a request line, '\n' excluded */
#define HW_ROUNDS_MAX 1000000u /* the most rounds one request may ask for */
#define HW_DIGEST_LEN 16       /* hex digits in an answer */

#define HW_FNV_OFFSET 14695981039346656037ull
#define HW_FNV_PRIME  1099511628211ull

/* FNV-1a 64 of n bytes at p, continuing from state h. */
static inline uint64_t hw_fnv1a(uint64_t h, const void *p, size_t n)
{
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    h ^= b[i];
    h *= HW_FNV_PRIME;
  }
  return h;
}

/* The work: FNV-1a 64 over (previous digest, payload), `rounds` times. */
static inline uint64_t hashwork(const char *payload, size_t len,
                                unsigned rounds)
{
  uint64_t digest = HW_FNV_OFFSET;
  for (unsigned r = 0; r < rounds; r++) {
    unsigned char prev[8];
    for (int i = 0; i < 8; i++)
      prev[i] = (unsigned char)(digest >> (8 * i));
    uint64_t h = hw_fnv1a(HW_FNV_OFFSET, prev, sizeof prev);
    digest = hw_fnv1a(h, payload, len);
  }
  return digest;
}

/* What hashwork(payload, len, rounds) costs: the bytes it hashes. */
static inline uint64_t hw_cost(unsigned rounds, size_t len)
{
  return (uint64_t)rounds * ((uint64_t)len + 8);
}

/* Write the 16 hex digits of d and a '\n' to out (17 bytes, no NUL). */
static inline void hw_format_digest(uint64_t d, char out[HW_DIGEST_LEN + 1])
{
  static const char hex[] = "0123456789abcdef";
  for (int i = HW_DIGEST_LEN - 1; i >= 0; i--) {
    out[i] = hex[d & 0xf];
    d >>= 4;
  }
  out[HW_DIGEST_LEN] = '\n';
}

/* Read an answer line (without its '\n') as a digest: 1 if it is exactly
 * 16 lowercase hex digits, 0 otherwise. */
static inline int hw_parse_digest(const char *line, size_t len, uint64_t *d)
{
  if (len != HW_DIGEST_LEN)
    return 0;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    char c = line[i];
    unsigned x;
    if (c >= '0' && c <= '9')
      x = (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      x = (unsigned)(c - 'a' + 10);
    else
      return 0;
    v = v << 4 | x;
  }
  *d = v;
  return 1;
}

/* Write "HASH <rounds> <payload>\n" to out (cap bytes): the length written,
 * or 0 if it does not fit. The payload must not hold a '\n'. */
static inline size_t hw_format_request(char *out, size_t cap, unsigned rounds,
                                       const char *payload, size_t len)
{
  char head[32];
  int h = snprintf(head, sizeof head, "HASH %u ", rounds);
  if (h < 0 || (size_t)h + len + 1 > cap)
    return 0;
  memcpy(out, head, (size_t)h);
  memcpy(out + h, payload, len);
  out[(size_t)h + len] = '\n';
  return (size_t)h + len + 1;
}

/* What a request line asks for. */
enum hw_kind { HW_HASH, HW_PING, HW_ERR };

typedef struct hw_request {
  enum hw_kind kind;
  unsigned rounds;     /* HW_HASH */
  const char *payload; /* HW_HASH: points into the line */
  size_t len;
  const char *reason; /* HW_ERR: static text for "ERR <reason>" */
} hw_request;

/* Parse one request line of len bytes, without its '\n' (a final '\r' is
 * dropped here). Never fails: a bad line gives HW_ERR with a reason. */
static inline hw_request hw_parse_request(const char *line, size_t len)
{
  hw_request r = {.kind = HW_ERR, .reason = "unknown command"};
  if (len > 0 && line[len - 1] == '\r')
    len--;
  if (len == 4 && memcmp(line, "PING", 4) == 0) {
    r.kind = HW_PING;
    return r;
  }
  if (len < 5 || memcmp(line, "HASH ", 5) != 0)
    return r;
  size_t i = 5;
  unsigned long rounds = 0;
  size_t digits = 0;
  while (i < len && line[i] >= '0' && line[i] <= '9') {
    rounds = rounds * 10 + (unsigned long)(line[i] - '0');
    if (rounds > HW_ROUNDS_MAX)
      rounds = HW_ROUNDS_MAX + 1ul; /* saturate: out of range anyway */
    i++;
    digits++;
  }
  if (digits == 0 || i >= len || line[i] != ' ') {
    r.reason = "usage: HASH <rounds> <payload>";
    return r;
  }
  if (rounds < 1 || rounds > HW_ROUNDS_MAX) {
    r.reason = "rounds out of range (1..1000000)";
    return r;
  }
  r.kind = HW_HASH;
  r.rounds = (unsigned)rounds;
  r.payload = line + i + 1;
  r.len = len - i - 1;
  return r;
}

#endif /* DEMO_HASHWORK_H */
