#!/bin/sh
# test.sh - mpi_map's test, run by 'make check' once mpi_map and map_ref are
# built (the Makefile says SKIP instead when mpicc or mpirun is missing).
#
# map_ref maps the same items in one process without MPI; every mpi_map run
# (1, 2 and 3 ranks, threads and processes, several chunk and pool sizes)
# must print its checksum, 0 failed items, and leave no worker process or
# fork server behind; --crash-item K with processes must complete with
# "failed 1" and the checksum map_ref gives with item K counted as failed;
# with threads it must be refused, and so must bad arguments. The sizes
# are small: the whole test takes seconds, mostly Open MPI starting up.
set -eu

cd "$(dirname "$0")"
MPIRUN=${MPIRUN:-mpirun}
items=300
rounds=20000
crash=123

# Oversubscribe: 3 ranks on a 2-core machine. Bind to nothing: by default
# Open MPI pins each of 1 or 2 ranks to one core, and a rank's workers
# would all share it. As root, Open MPI wants to be told it is allowed.
mpirun_flags="--oversubscribe --bind-to none"
if [ "$(id -u)" = 0 ]; then
  mpirun_flags="$mpirun_flags --allow-run-as-root"
fi
# Large messages between ranks on one machine go by cross-process reads
# (CMA), which containers often forbid; copying through shared memory
# works everywhere.
OMPI_MCA_btl_vader_single_copy_mechanism=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
export OMPI_MCA_btl_vader_single_copy_mechanism
# A hang fails the test instead of holding up CI (timeout is in coreutils).
guard=""
if command -v timeout >/dev/null 2>&1; then
  guard="timeout 120"
fi

out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
failures=0

fail() {
  echo "FAIL: $*"
  sed 's/^/  stdout: /' "$out"
  sed 's/^/  stderr: /' "$err"
  failures=$((failures + 1))
}

# Fork servers and workers of mpi_map's pools are named mpi_map-mgr,
# mpi_map-0, ...; after mpirun returns none may be left.
leftovers() {
  n=0
  for f in /proc/[0-9]*/comm; do
    c=$(cat "$f" 2>/dev/null) || continue
    case $c in mpi_map-*) n=$((n + 1)) ;; esac
  done
  echo "$n"
}

# run NP ARGS...: mpi_map on NP ranks; its stdout in $out, stderr in $err.
run() {
  np=$1
  shift
  # shellcheck disable=SC2086 # the flags are words on purpose
  $guard "$MPIRUN" $mpirun_flags -np "$np" ./mpi_map "$@" >"$out" 2>"$err"
}

ref=$(./map_ref --items $items --rounds $rounds) || {
  echo "FAIL: map_ref"
  exit 1
}
sum=${ref##* }
ref_crash=$(./map_ref --items $items --rounds $rounds --fail-item $crash)
sum_crash=${ref_crash##* }
echo "reference, one process without MPI: $ref"

# check WHAT ITEMS RANKS MODE CHECKSUM FAILED: the one line it must print.
check() {
  line=$(cat "$out")
  pattern="^mpi_map: items $2 ranks $3 workers [1-9][0-9]* mode $4"
  pattern="$pattern checksum $5 failed $6 seconds [0-9]*\.[0-9][0-9]*\$"
  if [ "$(wc -l <"$out")" -ne 1 ] || ! echo "$line" | grep -q "$pattern"; then
    fail "$1: want items $2 ranks $3 mode $4 checksum $5 failed $6"
  elif [ "$(leftovers)" -ne 0 ]; then
    fail "$1: a worker process or fork server was left behind"
  else
    echo "ok: $1: $line"
  fi
}

for np in 1 2 3; do
  for mode in threads processes; do
    flag=""
    [ $mode = processes ] && flag=--processes
    # Chunks of several items per worker; one item with one worker; a
    # chunk larger than the map, with one worker per CPU.
    case $np in
    2) other="--chunk 1 --workers 1" ;;
    *) other="--chunk 1000 --workers 0" ;;
    esac
    for pool in "--chunk 7 --workers 2" "$other"; do
      what="$np ranks, $mode, $pool"
      # shellcheck disable=SC2086
      if run "$np" --items $items --rounds $rounds $pool $flag; then
        check "$what" $items "$np" $mode "$sum" 0
      else
        fail "$what: exit status $?"
      fi
    done
  done
done

# Fewer items than ranks: a rank with nothing to do still finishes.
if run 3 --items 2 --rounds $rounds --chunk 1 --workers 1 --processes; then
  two=$(./map_ref --items 2 --rounds $rounds)
  check "2 items on 3 ranks" 2 3 processes "${two##* }" 0
else
  fail "2 items on 3 ranks: exit status $?"
fi

# A crash in a worker process: that item fails, the others all count.
for np in 1 2; do
  what="$np ranks, processes, --crash-item $crash"
  if run "$np" --items $items --rounds $rounds --chunk 16 --workers 2 \
    --processes --crash-item $crash; then
    check "$what" $items "$np" processes "$sum_crash" 1
  else
    fail "$what: exit status $?"
  fi
done

# Refused: a crash in thread mode, and bad arguments; usage, nonzero exit.
for args in "--crash-item $crash" "--chunk 0" "--items -1" "--bogus"; do
  # shellcheck disable=SC2086
  if run 2 $args; then
    fail "mpi_map $args: accepted"
  elif ! grep -q "^usage: mpi_map" "$err" || [ -s "$out" ]; then
    fail "mpi_map $args: no usage message on stderr"
  else
    echo "ok: mpi_map $args: refused ($(head -n 1 "$err"))"
  fi
done

if [ "$failures" -ne 0 ]; then
  echo "$failures FAILED"
  exit 1
fi
echo "all passed"
