#!/bin/sh
# The Python-classics demos (demo/threads_concurrency.c and the others that
# include demo/demo.h) print what their Python originals print: exactly,
# where the original is deterministic; where two tasks take turns, every
# interleaving is accepted, but each task's own lines must be complete, in
# order, and never lost or written twice. For the demos whose point is that
# two tasks run at the same time, the tasks' own timestamps (the trace file
# named by CREW_DEMO_TRACE) must show that each started before the other
# ended. No wall-clock threshold: a slow machine stretches both tasks alike.
set -u

demos=${top_builddir:-.}/demo
tick=20 # ms: each sleeping demo takes 5 ticks

# A demo that hangs fails (status 124) instead of hanging make check.
limit=
command -v timeout >/dev/null 2>&1 && limit="timeout 60"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check_demos.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

failed=0
fail() {
  echo "FAIL: $*"
  failed=1
}

# run NAME: run demo NAME with --tick $tick, its stdout through a pipe (where
# stdio buffers by blocks unless told otherwise, so lost or doubled output
# would show), into $tmp/NAME.out; its trace into $tmp/NAME.trace. Fails
# unless it exits with 0 and prints nothing on stderr.
run() {
  rm -f "$tmp/$1.trace"
  # shellcheck disable=SC2086 # $limit is empty or a command and its argument
  { CREW_DEMO_TRACE="$tmp/$1.trace" $limit "$demos/$1" --tick "$tick" \
      2>"$tmp/$1.err"; echo $? >"$tmp/$1.rc"; } | cat >"$tmp/$1.out"
  rc=$(cat "$tmp/$1.rc")
  if [ "$rc" != 0 ]; then
    fail "$1 exited with status $rc"
    cat "$tmp/$1.err"
    return 1
  fi
  if [ -s "$tmp/$1.err" ]; then
    fail "$1 wrote to stderr:"
    cat "$tmp/$1.err"
    return 1
  fi
  return 0
}

# same NAME WHAT FILE EXPECTED: FILE holds exactly the lines EXPECTED.
same() {
  printf '%s\n' "$4" >"$tmp/want"
  if ! cmp -s "$tmp/want" "$3"; then
    fail "$1: $2 differs from what Python prints (- expected, + got):"
    diff -u "$tmp/want" "$3" | sed '1,2d'
  fi
}

# output_is NAME EXPECTED: all of NAME's output is exactly EXPECTED.
output_is() {
  same "$1" "the output" "$tmp/$1.out" "$2"
}

# lines_are NAME REGEX EXPECTED: the lines of NAME's output that match
# REGEX are, in their order, exactly EXPECTED (a task's own lines).
lines_are() {
  grep -e "$2" "$tmp/$1.out" >"$tmp/lines"
  same "$1" "the lines matching '$2'" "$tmp/lines" "$3"
}

# line_count NAME N: NAME printed N lines in all (nothing else slipped in,
# nothing was doubled).
line_count() {
  n=$(wc -l <"$tmp/$1.out" | tr -d ' ')
  [ "$n" = "$2" ] || fail "$1 printed $n lines, expected $2"
}

# stamp NAME TASK EVENT: the timestamp of the line "TASK EVENT NS" in NAME's
# trace; nothing unless there is exactly one such line.
stamp() {
  grep -e "^$2 $3 [0-9][0-9]*\$" "$tmp/$1.trace" >"$tmp/stamp" 2>/dev/null
  [ "$(wc -l <"$tmp/stamp" | tr -d ' ')" = 1 ] && sed 's/.* //' "$tmp/stamp"
}

# overlapped NAME T1 T2: tasks T1 and T2 of NAME ran at the same time: each
# started before the other ended, by their own CLOCK_MONOTONIC stamps.
overlapped() {
  lines=$(wc -l <"$tmp/$1.trace" 2>/dev/null | tr -d ' ')
  [ "$lines" = 4 ] || fail "$1: the trace has ${lines:-no} lines, expected 4"
  s1=$(stamp "$1" "$2" start)
  e1=$(stamp "$1" "$2" end)
  s2=$(stamp "$1" "$3" start)
  e2=$(stamp "$1" "$3" end)
  if [ -z "$s1" ] || [ -z "$e1" ] || [ -z "$s2" ] || [ -z "$e2" ]; then
    fail "$1: the trace lacks a start or end of $2 or $3:"
    cat "$tmp/$1.trace" 2>/dev/null
  elif [ "$s1" -lt "$e2" ] && [ "$s2" -lt "$e1" ]; then
    both=$((((e1 < e2 ? e1 : e2) - (s1 > s2 ? s1 : s2)) / 1000000))
    echo "$1: $2 and $3 ran side by side for $both ms: ok"
  else
    fail "$1: $2 and $3 did not overlap:"
    cat "$tmp/$1.trace"
  fi
}

five_a='Task A
Task A
Task A
Task A
Task A'
five_b='Task B
Task B
Task B
Task B
Task B'

# 1. threads_concurrency: Task A and Task B five times each, on two threads.
if run threads_concurrency; then
  line_count threads_concurrency 10
  lines_are threads_concurrency '^Task A$' "$five_a"
  lines_are threads_concurrency '^Task B$' "$five_b"
  overlapped threads_concurrency A B
fi

# 2. processes_parallel: the same, in two processes.
if run processes_parallel; then
  line_count processes_parallel 10
  lines_are processes_parallel '^Task A$' "$five_a"
  lines_are processes_parallel '^Task B$' "$five_b"
  overlapped processes_parallel A B
fi

# 3. pool_map: deterministic.
if run pool_map; then
  output_is pool_map 'Original numbers: [1, 2, 3, 4, 5]
Squared numbers: [1, 4, 9, 16, 25]'
fi

# 4. process_class: numbers and letters interleaved, then the parent's line.
if run process_class; then
  line_count process_class 11
  lines_are process_class '^Number: ' 'Number: 0
Number: 1
Number: 2
Number: 3
Number: 4'
  lines_are process_class '^Letter: ' 'Letter: A
Letter: B
Letter: C
Letter: D
Letter: E'
  tail -n 1 "$tmp/process_class.out" >"$tmp/last"
  same process_class "the last line" "$tmp/last" 'Both processes are done!'
  overlapped process_class numbers letters
fi

# 5. process_pool: deterministic.
if run process_pool; then
  output_is process_pool '[1, 4, 9, 16, 25]'
fi

# 6. task_queue: deterministic (one consumer runs the tasks in order).
if run task_queue; then
  output_is task_queue 'Task 1 executed
Task 2 executed
Task 3 executed'
fi

# The options: --help prints the usage on stdout and exits 0; a bad option
# or tick prints nothing on stdout and exits 2; --tick=MS works too.
for d in threads_concurrency processes_parallel pool_map process_class \
         process_pool task_queue; do
  out=$("$demos/$d" --help 2>&1)
  rc=$?
  case $rc:$out in
  "0:usage: $d [--tick MS] [--help]"*) ;;
  *) fail "$d --help: status $rc, output: $out" ;;
  esac
  for bad in --bogus "--tick x" "--tick -5" --tick=; do
    # shellcheck disable=SC2086 # "--tick x" is meant to split
    out=$("$demos/$d" $bad 2>/dev/null)
    rc=$?
    [ "$rc:$out" = 2: ] || fail "$d $bad: status $rc (expected 2), output: $out"
  done
done
out=$("$demos/task_queue" --tick=5 2>&1)
rc=$?
if [ "$rc:$out" != '0:Task 1 executed
Task 2 executed
Task 3 executed' ]; then
  fail "task_queue --tick=5: status $rc, output: $out"
fi

[ "$failed" = 0 ] && echo "all demos print what Python prints"
exit "$failed"
