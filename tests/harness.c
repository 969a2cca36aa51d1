/*
 * harness.c - see harness.h.
 *
 * How the pieces run under Check's fork mode: harness_tcase() runs in the
 * runner (main), before srunner_run_all(); it gives each TCase a setup
 * function of its own (one of SLOTS generated ones, one per distinct
 * timeout), so the setup, which runs in the test's forked child, knows its
 * TCase's timeout from a table the child inherited. The setup counts the
 * baseline, then forks the watchdog; the teardown kills and reaps the
 * watchdog, then compares.
 */
#include "config.h"

#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_SYS_PRCTL_H
#include <sys/prctl.h>
#endif

/* ------------------------------------------------------------- counting */

/* Entries of a directory, less `skip_own` (its own descriptor, for
 * /proc/self/fd). 0 if it cannot be read. */
static size_t count_dir(const char *path, bool skip_own)
{
  DIR *d = opendir(path);
  if (d == NULL)
    return 0;
  size_t n = 0;
  int own = dirfd(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    if (skip_own && atoi(e->d_name) == own)
      continue;
    n++;
  }
  closedir(d);
  return n;
}

/* Read a small file whole (at most size - 1 bytes); -1 on failure. */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  size_t len = 0;
  while (len + 1 < size) {
    ssize_t k = read(fd, buf + len, size - 1 - len);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      break;
    len += (size_t)k;
  }
  close(fd);
  buf[len] = '\0';
  return (ssize_t)len;
}

/* State and parent of process (or task) `path`/stat; false if gone. */
static bool read_stat(const char *path, char *state, pid_t *ppid)
{
  char buf[1024];
  if (read_small(path, buf, sizeof buf) <= 0)
    return false;
  const char *p = strrchr(buf, ')'); /* the name may hold anything */
  int pp;
  if (p == NULL || sscanf(p + 1, " %c %d", state, &pp) != 2)
    return false;
  *ppid = (pid_t)pp;
  return true;
}

static bool is_number(const char *s)
{
  if (*s == '\0')
    return false;
  for (; *s != '\0'; s++)
    if (*s < '0' || *s > '9')
      return false;
  return true;
}

/*
 * Call fn(pid, state, arg) for every child of `parent`. Returns false if
 * /proc cannot be read.
 */
static bool for_each_child(pid_t parent,
                           void (*fn)(pid_t pid, char state, void *arg),
                           void *arg)
{
  DIR *d = opendir("/proc");
  if (d == NULL)
    return false;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!is_number(e->d_name))
      continue;
    char path[300];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    char state;
    pid_t ppid;
    if (read_stat(path, &state, &ppid) && ppid == parent)
      fn((pid_t)atoi(e->d_name), state, arg);
  }
  closedir(d);
  return true;
}

static void count_child(pid_t pid, char state, void *arg)
{
  struct harness_resources *r = arg;
  (void)pid;
  r->children++;
  if (state == 'Z')
    r->zombies++;
}

/* Mappings crew makes: shared, or wipe-on-fork (VmFlags "wf"). */
static void count_maps(struct harness_resources *r)
{
  FILE *f = fopen("/proc/self/smaps", "re");
  if (f == NULL)
    return;
  char line[512];
  bool shared = false; /* the current mapping */
  bool at_line_start = true;
  while (fgets(line, sizeof line, f) != NULL) {
    bool starts = at_line_start;
    at_line_start = strchr(line, '\n') != NULL;
    if (!starts)
      continue; /* the tail of a long line (a long path) */
    /* A mapping's first line: "start-end perms offset dev inode path". */
    unsigned long lo, hi;
    char perms[8];
    if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 &&
        strlen(perms) == 4) {
      r->maps_total++;
      shared = perms[3] == 's';
      if (shared)
        r->mappings++;
      continue;
    }
    if (strncmp(line, "VmFlags:", 8) == 0 && !shared) {
      /* flags are two letters each, space separated */
      for (const char *p = line + 8; *p != '\0'; p++)
        if (p[0] == 'w' && p[1] == 'f' && p[-1] == ' ' &&
            (p[2] == ' ' || p[2] == '\n' || p[2] == '\0')) {
          r->mappings++;
          break;
        }
    }
  }
  fclose(f);
}

void harness_count(struct harness_resources *r)
{
  memset(r, 0, sizeof *r);
  r->fds = count_dir("/proc/self/fd", true);
  r->threads = count_dir("/proc/self/task", false);
  for_each_child(getpid(), count_child, r);
  count_maps(r);
}

int harness_compare(const struct harness_resources *before,
                    const struct harness_resources *after, char *msg,
                    size_t size)
{
  const struct {
    const char *name;
    size_t before, after;
  } items[] = {
      {"fds", before->fds, after->fds},
      {"threads", before->threads, after->threads},
      {"children", before->children, after->children},
      {"zombies", before->zombies, after->zombies},
      {"mappings (shared or wipe-on-fork)", before->mappings, after->mappings},
  };
  int differ = 0;
  size_t len = 0;
  if (msg != NULL && size > 0)
    msg[0] = '\0';
  /* Only more is a leak: fewer threads after can be a thread of the
   * baseline that was on its way out (its /proc entry outlives its join). */
  for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
    if (items[i].after <= items[i].before)
      continue;
    differ++;
    if (msg != NULL && len + 1 < size) {
      int k = snprintf(msg + len, size - len, "%s: %zu after, %zu before; ",
                       items[i].name, items[i].after, items[i].before);
      if (k > 0)
        len += (size_t)k < size - len ? (size_t)k : size - len - 1;
    }
  }
  return differ;
}

/* ------------------------------------------------------------- time */

static uint64_t mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void nap_ns(uint64_t ns)
{
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    continue;
}

/* ------------------------------------------------------------- watchdog */

/* What setup knows, and the watchdog and teardown use. */
static struct {
  struct harness_resources base;
  pid_t owner;    /* the process whose setup ran (0: none) */
  pid_t watchdog; /* the watchdog process (0: none) */
} fixture;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* stderr, unbuffered, one write per message (the watchdog's voice). */
static void say(const char *fmt, ...)
{
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
  for (size_t off = 0; off < len;) {
    ssize_t k = write(STDERR_FILENO, buf + off, len - off);
    if (k <= 0 && errno != EINTR)
      return;
    if (k > 0)
      off += (size_t)k;
  }
}

/* The test's threads, from /proc: tid, name, state, kernel wait channel. */
static void list_threads(pid_t pid)
{
  char dir[64];
  snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
  DIR *d = opendir(dir);
  if (d == NULL) {
    say("HUNG: (no /proc: cannot list the threads)\n");
    return;
  }
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (!is_number(e->d_name))
      continue;
    char path[400], comm[64] = "?", wchan[128] = "?";
    snprintf(path, sizeof path, "%s/%s/comm", dir, e->d_name);
    if (read_small(path, comm, sizeof comm) > 0)
      comm[strcspn(comm, "\n")] = '\0';
    snprintf(path, sizeof path, "%s/%s/wchan", dir, e->d_name);
    if (read_small(path, wchan, sizeof wchan) <= 0)
      snprintf(wchan, sizeof wchan, "?");
    snprintf(path, sizeof path, "%s/%s/stat", dir, e->d_name);
    char state = '?';
    pid_t ppid;
    if (!read_stat(path, &state, &ppid))
      state = '?';
    say("HUNG:   thread %s \"%s\" state %c wchan %s\n", e->d_name, comm, state,
        wchan);
  }
  closedir(d);
}

/*
 * The running test's name. Check keeps it in current_test_name (set by
 * START_TEST's tcase_fn_start, after setup, in the test's process), which
 * is not in check.h: a weak reference finds it where libcheck is linked
 * statically, as here, and is NULL elsewhere. The watchdog, a fork of the
 * test, has the same addresses, so it reads the test's copy of the pointer
 * and the string through /proc/PID/mem.
 */
extern const char *current_test_name __attribute__((weak));

static void read_test_name(pid_t pid, char *buf, size_t size)
{
  snprintf(buf, size, "(see Check's report of this test)");
  if (&current_test_name == NULL)
    return;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return;
  const char *name = NULL;
  if (pread(fd, &name, sizeof name, (off_t)(uintptr_t)&current_test_name) ==
          (ssize_t)sizeof name &&
      name != NULL) {
    size_t len = 0;
    while (len + 1 < size &&
           pread(fd, buf + len, 1, (off_t)(uintptr_t)(name + len)) == 1 &&
           buf[len] != '\0')
      len++;
    if (len > 0)
      buf[len] = '\0';
    else
      snprintf(buf, size, "(see Check's report of this test)");
  }
  close(fd);
}

static void kill_child(pid_t pid, char state, void *arg)
{
  (void)state;
  pid_t self = *(const pid_t *)arg;
  if (pid != self)
    kill(pid, SIGKILL);
}

/* Run gdb on `pid` until it ends or `deadline` (then kill it). */
static void run_gdb(pid_t pid, uint64_t deadline)
{
  const char *env = getenv("CREW_HARNESS_GDB");
  if (env != NULL && strcmp(env, "0") == 0)
    return;
  const char *gdb = getenv("GDB");
  if (gdb == NULL || gdb[0] == '\0')
    gdb = "gdb";
  char pidarg[32];
  snprintf(pidarg, sizeof pidarg, "%d", (int)pid);
  say("HUNG: backtraces of every thread (%s -batch -p %s):\n", gdb, pidarg);
  pid_t g = fork();
  if (g < 0)
    return;
  if (g == 0) {
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0)
      dup2(null, STDIN_FILENO);
    dup2(STDERR_FILENO, STDOUT_FILENO);
    execlp(gdb, gdb, "-nx", "-batch", "-p", pidarg, "-ex", "set pagination off",
           "-ex", "thread apply all bt", (char *)NULL);
    say("HUNG: cannot run %s: %s\n", gdb, strerror(errno));
    _exit(127);
  }
  for (;;) {
    int status;
    pid_t w = waitpid(g, &status, WNOHANG);
    if (w == g || (w < 0 && errno != EINTR))
      return;
    if (mono_ns() >= deadline) {
      say("HUNG: gdb took too long; killed it\n");
      kill(g, SIGKILL);
      waitpid(g, &status, 0);
      return;
    }
    nap_ns(20 * 1000000u);
  }
}

/*
 * The watchdog process: sleep until fire_ns, leaving early if the test is
 * gone (its parent changed); then describe the test, and kill it.
 */
static void watchdog_main(pid_t test, double timeout_s, double margin_s,
                          uint64_t fire_ns, uint64_t kill_ns)
{
#if defined(HAVE_SYS_PRCTL_H) && defined(PR_SET_PDEATHSIG)
  prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
  /* Default handlers, nothing blocked: the teardown's SIGKILL is enough,
   * but Check's SIGTERM handler must not keep us alive either. */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  for (;;) {
    if (getppid() != test)
      _exit(0);
    uint64_t now = mono_ns();
    if (now >= fire_ns)
      break;
    uint64_t left = fire_ns - now;
    nap_ns(left < 100 * 1000000u ? left : 100 * 1000000u);
  }
  char test_name[128];
  read_test_name(test, test_name, sizeof test_name);
  say("HUNG: %s (pid %d) still running %.1f s before its %.1f s timeout; "
      "its threads:\n",
      test_name, (int)test, margin_s, timeout_s);
  list_threads(test);
  run_gdb(test, kill_ns);
  if (getppid() != test)
    _exit(0); /* it finished after all */
  say("HUNG: killing %s (pid %d) and its children\n", test_name, (int)test);
  pid_t self = getpid();
  for_each_child(test, kill_child, &self);
  if (getpgid(test) == test)
    kill(-test, SIGKILL); /* its group: this watchdog included */
  kill(test, SIGKILL);
  _exit(0);
}

/* ------------------------------------------------------------- timeouts */

#define SLOTS 64

static double slot_timeout[SLOTS];
static size_t slots_used;
static double last_timeout = -1.0; /* the last harness_tcase(): for setup */

static double multiplier(void)
{
  const char *env = getenv("CK_TIMEOUT_MULTIPLIER");
  if (env == NULL)
    return 1.0;
  char *end;
  double m = strtod(env, &end);
  return end != env && *end == '\0' && m >= 0 ? m : 1.0;
}

static double default_timeout(void)
{
  const char *env = getenv("CK_DEFAULT_TIMEOUT");
  if (env != NULL) {
    char *end;
    double t = strtod(env, &end);
    if (end != env && *end == '\0' && t >= 0)
      return t;
  }
  return 4.0;
}

static bool stop_watchdog(void);

static void *no_op(void *arg)
{
  return arg;
}

void harness_settle_threads(void)
{
  pthread_t t;
  if (pthread_create(&t, NULL, no_op, NULL) == 0)
    pthread_join(t, NULL);
}

static void setup_with(double timeout_s)
{
  pid_t self = getpid();
  if (fixture.owner == self)
    stop_watchdog(); /* setup again without teardown (CK_NOFORK) */
  memset(&fixture, 0, sizeof fixture);
  fixture.owner = self;
  harness_settle_threads();
  harness_count(&fixture.base);

  double t = timeout_s * multiplier();
  if (!(t > 0)) /* no timeout: no watchdog */
    return;
  /* Fire early enough for gdb: a quarter of the timeout, at most 2 s. */
  double margin = t / 4 < 2.0 ? t / 4 : 2.0;
  uint64_t start = mono_ns();
  uint64_t fire = start + (uint64_t)((t - margin) * 1e9);
  uint64_t kill_at = start + (uint64_t)((t - margin / 5) * 1e9);
#if defined(HAVE_SYS_PRCTL_H) && defined(PR_SET_PTRACER)
  /* Let the watchdog's gdb attach where Yama restricts ptrace. */
  prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
#endif
  fflush(stdout);
  fflush(stderr);
  pid_t w = fork();
  if (w < 0)
    ck_abort_msg("harness: cannot fork the watchdog: %s", strerror(errno));
  if (w == 0) {
    watchdog_main(self, t, margin, fire, kill_at);
    _exit(0);
  }
  fixture.watchdog = w;
}

static void setup_slot(size_t i)
{
  setup_with(slot_timeout[i]);
}

#define SLOT_FN(name, index)                                                   \
  static void setup_slot_##name(void)                                          \
  {                                                                            \
    setup_slot(index);                                                         \
  }
#define SLOT_FN8(g)                                                            \
  SLOT_FN(g##0, (g)*8 + 0)                                                     \
  SLOT_FN(g##1, (g)*8 + 1)                                                     \
  SLOT_FN(g##2, (g)*8 + 2)                                                     \
  SLOT_FN(g##3, (g)*8 + 3)                                                     \
  SLOT_FN(g##4, (g)*8 + 4)                                                     \
  SLOT_FN(g##5, (g)*8 + 5)                                                     \
  SLOT_FN(g##6, (g)*8 + 6)                                                     \
  SLOT_FN(g##7, (g)*8 + 7)
SLOT_FN8(0)
SLOT_FN8(1)
SLOT_FN8(2)
SLOT_FN8(3)
SLOT_FN8(4)
SLOT_FN8(5)
SLOT_FN8(6)
SLOT_FN8(7)

#define SLOT_REF8(g)                                                           \
  setup_slot_##g##0, setup_slot_##g##1, setup_slot_##g##2, setup_slot_##g##3,  \
      setup_slot_##g##4, setup_slot_##g##5, setup_slot_##g##6,                 \
      setup_slot_##g##7

static void (*const slot_setup[SLOTS])(void) = {
    SLOT_REF8(0), SLOT_REF8(1), SLOT_REF8(2), SLOT_REF8(3),
    SLOT_REF8(4), SLOT_REF8(5), SLOT_REF8(6), SLOT_REF8(7)};

/* ------------------------------------------------------------- fixture */

void harness_setup(void)
{
  setup_with(last_timeout >= 0 ? last_timeout : default_timeout());
}

/* Kill and reap the watchdog; false if someone else reaped it. */
static bool stop_watchdog(void)
{
  pid_t w = fixture.watchdog;
  fixture.watchdog = 0;
  if (w <= 0)
    return true;
  siginfo_t info;
  memset(&info, 0, sizeof info);
  /* Still ours (alive or a zombie): its pid cannot be anyone else's. */
  if (waitid(P_PID, (id_t)w, &info, WEXITED | WNOHANG | WNOWAIT) != 0)
    return false;
  kill(w, SIGKILL);
  int status;
  while (waitpid(w, &status, 0) < 0 && errno == EINTR)
    continue;
  return true;
}

void harness_teardown(void)
{
  if (fixture.owner != getpid())
    return; /* no setup in this process */
  bool ours = stop_watchdog();
  fixture.owner = 0;
  if (!ours)
    ck_abort_msg("harness: the test reaped the harness's watchdog process "
                 "(a waitpid(-1) or a SIGCHLD handler that reaps every "
                 "child: do that in a forked child)");
  struct harness_resources now;
  char msg[512];
  /* Threads and children may take a moment to go: wait up to 2 s for their
   * counts to settle back (the wait bounds the check, never decides it). */
  uint64_t deadline = mono_ns() + 2000 * 1000000ull;
  for (;;) {
    harness_count(&now);
    if (harness_compare(&fixture.base, &now, NULL, 0) == 0)
      return;
    bool may_settle = now.threads > fixture.base.threads ||
                      now.children > fixture.base.children ||
                      now.zombies > fixture.base.zombies;
    if (!may_settle || mono_ns() >= deadline)
      break; /* descriptors and mappings go synchronously, or never */
    nap_ns(10 * 1000000u);
  }
  harness_compare(&fixture.base, &now, msg, sizeof msg);
  ck_abort_msg("harness: the test left resources behind: %s(maps lines: %zu "
               "after, %zu before)",
               msg, now.maps_total, fixture.base.maps_total);
}

void harness_tcase(TCase *tc, double timeout_s)
{
  size_t i = 0;
  while (i < slots_used && slot_timeout[i] != timeout_s)
    i++;
  if (i == slots_used) {
    if (slots_used == SLOTS) {
      fprintf(stderr, "harness: more than %d distinct timeouts\n", SLOTS);
      abort();
    }
    slot_timeout[slots_used++] = timeout_s;
  }
  last_timeout = timeout_s;
  tcase_set_timeout(tc, timeout_s);
  tcase_add_checked_fixture(tc, slot_setup[i], harness_teardown);
}
