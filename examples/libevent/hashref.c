/*
 * hashref - the reference answers for http_server's test (test.sh): what
 * GET /hash must answer, computed here with demo/hashwork.h and a URL
 * decoder of its own, so the test does not trust the server's.
 *
 *   ./hashref ROUNDS DATA       the 16 hex digits of hashwork(DATA, ROUNDS)
 *   ./hashref -d ROUNDS ENC     the same for ENC URL-decoded first (%XX is a
 *                               byte, NUL included; '+' is a space)
 *   ./hashref --queries N SEED [ROUNDS]
 *                               N lines "QUERY DIGEST": a query string
 *                               (rounds=R&data=D, D URL-encoded, with spaces,
 *                               '&', '=', '+', '%', '/', '?', '#' and UTF-8
 *                               in it) and the digest it must get; R varies
 *                               from 1 to 2000 unless ROUNDS is given
 *   ./hashref --time ROUNDS LEN microseconds one hashwork(LEN bytes, ROUNDS)
 *                               takes here (the median of 101 calls)
 */
#define _POSIX_C_SOURCE 200809L

#include "hashwork.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void print_digest(uint64_t d)
{
  char text[HW_DIGEST_LEN + 1];
  hw_format_digest(d, text);
  fwrite(text, 1, sizeof text, stdout);
}

static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* URL-decode s into out (as long as s): the decoded length. */
static size_t url_decode(const char *s, char *out)
{
  size_t n = 0;
  for (size_t i = 0; s[i] != '\0'; i++) {
    int hi, lo;
    if (s[i] == '+') {
      out[n++] = ' ';
    } else if (s[i] == '%' && (hi = hexval(s[i + 1])) >= 0 &&
               (lo = hexval(s[i + 2])) >= 0) {
      out[n++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      out[n++] = s[i];
    }
  }
  return n;
}

/* Append the URL encoding of n bytes at p to out: the length written. */
static size_t url_encode(const unsigned char *p, size_t n, char *out)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = p[i];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
        c == '~') {
      out[k++] = (char)c;
    } else {
      out[k++] = '%';
      out[k++] = hex[c >> 4];
      out[k++] = hex[c & 15];
    }
  }
  return k;
}

/* N queries from a seed: varied payloads, the awkward bytes of a query
 * string among them, and varied rounds unless `rounds` is not 0. */
static void queries(unsigned long count, unsigned long seed, unsigned rounds)
{
  static const char *const pieces[] = {
      "a",    " ", "&",   "=",   "+",    "%",        "/",
      "?",    "#", "x=y", "%20", "\t",   "\xc3\xa9", "\xe2\x82\xac",
      "crew", "0", "key", ";",   "a&b=", ":",        "\"",
      "~",    ".", "'"};
  size_t npieces = sizeof pieces / sizeof pieces[0];
  uint64_t x = seed * 2654435761u + 1;
  for (unsigned long i = 0; i < count; i++) {
    unsigned char data[256];
    size_t len = 0;
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    size_t pieces_n = (size_t)(x >> 59); /* 0..31 pieces */
    for (size_t k = 0; k < pieces_n; k++) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      const char *p = pieces[(x >> 33) % npieces];
      size_t pl = strlen(p);
      memcpy(data + len, p, pl);
      len += pl;
    }
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    unsigned r = rounds != 0 ? rounds : 1 + (unsigned)((x >> 33) % 2000);
    char enc[3 * sizeof data + 1];
    size_t elen = url_encode(data, len, enc);
    printf("rounds=%u&data=%.*s ", r, (int)elen, enc);
    print_digest(hashwork((const char *)data, len, r));
  }
}

static double now_us(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void time_it(unsigned rounds, size_t len)
{
  char *data = malloc(len + 1);
  double t[101];
  if (data == NULL)
    exit(1);
  memset(data, 'x', len);
  volatile uint64_t sink = 0;
  for (int i = 0; i < 101; i++) {
    double t0 = now_us();
    sink += hashwork(data, len, rounds);
    t[i] = now_us() - t0;
  }
  (void)sink;
  qsort(t, 101, sizeof t[0], cmp_double);
  printf("%.1f us (median of 101; min %.1f, max %.1f)\n", t[50], t[0], t[100]);
  free(data);
}

static unsigned long num(const char *s)
{
  char *end;
  unsigned long v = strtoul(s, &end, 10);
  if (end == s || *end != '\0') {
    fprintf(stderr, "hashref: '%s' is not a number\n", s);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv)
{
  if (argc == 3 && strcmp(argv[1], "-d") != 0) {
    print_digest(hashwork(argv[2], strlen(argv[2]), (unsigned)num(argv[1])));
  } else if (argc == 4 && strcmp(argv[1], "-d") == 0) {
    char *data = malloc(strlen(argv[3]) + 1);
    if (data == NULL)
      return 1;
    size_t len = url_decode(argv[3], data);
    print_digest(hashwork(data, len, (unsigned)num(argv[2])));
    free(data);
  } else if ((argc == 4 || argc == 5) && strcmp(argv[1], "--queries") == 0) {
    queries(num(argv[2]), num(argv[3]), argc == 5 ? (unsigned)num(argv[4]) : 0);
  } else if (argc == 4 && strcmp(argv[1], "--time") == 0) {
    time_it((unsigned)num(argv[2]), num(argv[3]));
  } else {
    fprintf(stderr, "usage: hashref ROUNDS DATA | -d ROUNDS URL-ENCODED-DATA"
                    " | --queries N SEED [ROUNDS] | --time ROUNDS LEN\n");
    return 2;
  }
  return 0;
}
