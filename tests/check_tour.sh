#!/bin/sh
# The tour runs at small sizes, prints a row for every workload, and shows
# what it promises: the thread-mode crash kills its program, the process
# pool loses only the crashing task and names its worker and signal, and
# the hung task is killed at its deadline. Timings are not checked: the
# machine may be busy.
set -u
out=$("${top_builddir:-.}/demo/tour" --quick --no-plot 2>&1)
status=$?
printf '%s\n' "$out"
fail() {
  echo "check_tour: $*"
  exit 1
}
[ "$status" -eq 0 ] || fail "the tour exited with $status"
for row in "CPU-bound:" "Waiting:" "Tiny:" "A crash:" "A hang:" "A long input:"; do
  printf '%s\n' "$out" | grep -q "^$row" || fail "no '$row' row"
done
printf '%s\n' "$out" | grep -q "program died (SIGSEGV)" ||
  fail "the thread-mode crash did not kill its program with SIGSEGV"
printf '%s\n' "$out" | grep -q "1 crashed, 19 fine" ||
  fail "the process pool did not lose exactly the crashing task"
printf '%s\n' "$out" | grep -q "(here worker [0-9][0-9]* killed by SIGSEGV)" ||
  fail "the crashed task's future did not name its worker and SIGSEGV"
printf '%s\n' "$out" | grep -q "killed at its deadline" ||
  fail "the hung task was not killed at its deadline"
printf '%s\n' "$out" | grep -q "imap [0-9.]* / map [0-9.]* MiB peak" ||
  fail "the long input did not run through both crew_imap and crew_map"
"${top_builddir:-.}/demo/tour" --help | grep -q "usage: tour" ||
  fail "--help does not explain the options"
echo "check_tour: ok"
