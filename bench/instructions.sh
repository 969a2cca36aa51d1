#!/bin/sh
# bench/instructions.sh - instructions per task for W1 (empty fire-and-forget
# tasks) and W2 (tasks returning x*x through a future), counted by
# valgrind --tool=callgrind: repeatable where wall time is noisy.
#
#   bench/instructions.sh [BUILD_DIR]        (default: the current directory)
#
# For each implementation it runs `bench_suite --callgrind W --impl I
# --tasks N` under callgrind at two sizes, N1 and N2, and prints
# (instructions(N2) - instructions(N1)) / (N2 - N1): the instructions one
# more task costs, over every thread of the process (the producer's submit,
# the worker's pop and run, and waiting and waking), with pool start-up and
# shutdown cancelled out. Environment: N1 (default 20000), N2 (default
# 220000), WORKERS (default 2), IMPLS (default "crew textbook glib libuv";
# the peers missing from the build are skipped).
#
# Valgrind runs one thread at a time, so spinning and lock contention do not
# look as they do on real cores: read these as the work per task, not as
# its time. For that reason crew's idle workers do not spin here (an idle
# spin would only count instructions until valgrind switches threads);
# CREW_BENCH_SPIN=1 keeps the default spin.
set -eu

build=${1:-.}
suite=$build/bench/bench_suite
libtool=$build/libtool
n1=${N1:-20000}
n2=${N2:-220000}
workers=${WORKERS:-2}
impls=${IMPLS:-crew textbook glib libuv}

if [ ! -x "$suite" ]; then
  echo "instructions.sh: no $suite; run 'make bench/bench_suite' in $build" >&2
  exit 2
fi
if ! command -v valgrind >/dev/null 2>&1; then
  echo "instructions.sh: valgrind is not installed" >&2
  exit 2
fi
if [ -x "$libtool" ]; then
  run="$libtool --mode=execute"
else
  run=
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# instructions WORKLOAD IMPL N: total instructions of one run, or nothing if
# this implementation lacks the workload (or is not in the build).
instructions() {
  out=$tmp/cg.$1.$2.$3
  if ! $run valgrind --tool=callgrind --callgrind-out-file="$out" \
    "$suite" --callgrind "$1" --impl "$2" --tasks "$3" --workers "$workers" \
    >"$tmp/log" 2>&1; then
    return 0
  fi
  sed -n 's/^summary: *//p' "$out"
}

echo "instructions per task (valgrind --tool=callgrind, all threads),"
echo "$workers workers, (Ir($n2 tasks) - Ir($n1 tasks)) / $((n2 - n1))"
printf '%-10s %-4s %14s %14s %10s\n' impl load "Ir($n1)" "Ir($n2)" "Ir/task"
for w in W1 W2; do
  for impl in $impls; do
    a=$(instructions "$w" "$impl" "$n1")
    if [ -z "$a" ]; then
      printf '%-10s %-4s %14s\n' "$impl" "$w" "(not available)"
      continue
    fi
    b=$(instructions "$w" "$impl" "$n2")
    per=$(awk -v a="$a" -v b="$b" -v n1="$n1" -v n2="$n2" \
      'BEGIN { printf "%.1f", (b - a) / (n2 - n1) }')
    printf '%-10s %-4s %14s %14s %10s\n' "$impl" "$w" "$a" "$b" "$per"
  done
done
