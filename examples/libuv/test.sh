#!/bin/sh
# test.sh - line_server under demo/loadgen, which checks every answer
# ('make check' builds both, then runs this): the protocol's corner cases
# and load on worker threads and on worker processes, a queue small enough
# to pause clients (backpressure), a SIGTERM under load that answers every
# request sent on an open connection, refuses new connects and exits 0, and
# a second signal that closes idle connections at once. Every wait polls
# for what it waits for, with a bound.
set -u

cd "$(dirname "$0")" || exit 1
server=./line_server
loadgen=./loadgen
[ -x "$server" ] && [ -x "$loadgen" ] || {
  echo "FAIL: build line_server and loadgen first (make line_server loadgen)"
  exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/line_server_test.XXXXXX") || exit 1
spid=
lpid=
cleanup() {
  [ -n "$lpid" ] && kill -KILL "$lpid" 2>/dev/null
  [ -n "$spid" ] && kill -KILL "$spid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

fail() {
  echo "FAIL: $*"
  for f in "$tmp"/*; do
    [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }
  done
  exit 1
}

# wait_line FILE PATTERN SECONDS [PID]: poll (every 20 ms) until FILE holds
# a line matching PATTERN; fail after SECONDS, or at once if PID exits.
wait_line() {
  i=0
  while ! grep -q "$2" "$1" 2>/dev/null; do
    if [ -n "${4:-}" ] && ! kill -0 "$4" 2>/dev/null; then
      grep -q "$2" "$1" 2>/dev/null && return 0
      fail "process $4 exited before printing '$2' in $1"
    fi
    i=$((i + 1))
    [ "$i" -le $(($3 * 50)) ] || fail "no '$2' in $1 after $3 s"
    sleep 0.02
  done
}

# wait_exit PID SECONDS: wait (bounded) for PID to exit; sets $status.
wait_exit() {
  i=0
  while kill -0 "$1" 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -le $(($2 * 50)) ] || fail "process $1 still running after $2 s"
    sleep 0.02
  done
  wait "$1"
  status=$?
}

# start_server NAME ARGS...: start it, wait for its port.
start_server() {
  name=$1
  shift
  out=$tmp/$name.server
  "$server" --port 0 "$@" >"$out" 2>&1 &
  spid=$!
  wait_line "$out" '^listening on 127\.0\.0\.1:[0-9][0-9]*$' 20 "$spid"
  port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$out")
}

# stop_server: SIGTERM, then it must exit 0 promptly.
stop_server() {
  kill -TERM "$spid"
  wait_exit "$spid" 20
  spid=
  [ "$status" -eq 0 ] || fail "$name: exit status $status after SIGTERM"
}

# value FILE KEY: the value of "KEY: value" in loadgen's output.
value() {
  sed -n "s/^$2: //p" "$1"
}

# load NAME CONNECTIONS REQUESTS ARGS...: run loadgen; every request must
# be answered right.
load() {
  lname=$1
  c=$2
  r=$3
  shift 3
  lout=$tmp/$lname.loadgen
  "$loadgen" --port "$port" --connections "$c" --requests "$r" "$@" \
    >"$lout" 2>&1
  rc=$?
  [ "$rc" -eq 0 ] || fail "$lname: loadgen exited $rc"
  [ "$(value "$lout" correct)" = $((c * r)) ] ||
    fail "$lname: correct is '$(value "$lout" correct)', expected $((c * r))"
  echo "ok: $lname: $c connections x $r requests $*:" \
    "$(value "$lout" correct) right," \
    "$(value "$lout" throughput_rps) requests/s"
}

protocol() {
  "$loadgen" --port "$port" --protocol-check >"$tmp/$1.protocol" 2>&1 ||
    fail "$1: the protocol check failed"
  echo "ok: $1: protocol check (pipelining, errors, split lines," \
    "half-close, 64 KiB lines, a client leaving mid-request)"
}

# (1) Worker threads.
start_server threads --workers 2
protocol threads
load threads 16 200 --rounds 200
load threads-pipelined 16 200 --rounds 200 --pipeline 8
stop_server

# (2) Backpressure: a queue of 2 fills at once; every answer still comes.
start_server backpressure --workers 2 --queue 2
load backpressure 16 200 --rounds 200 --pipeline 4
stop_server
pauses=$(sed -n 's/.* \([0-9][0-9]*\) backpressure pauses$/\1/p' "$out")
[ -n "$pauses" ] && [ "$pauses" -gt 0 ] ||
  fail "backpressure: the server never paused a client (pauses '$pauses')"
echo "ok: backpressure: queue of 2, $pauses pauses, no answer lost"

# (3) Worker processes.
start_server processes --workers 2 --processes
protocol processes
load processes 16 200 --rounds 200 --pipeline 2
stop_server

# (4) SIGTERM under load, once loadgen reports progress: the open
# connections are served to the end, new connects are refused, exit 0.
start_server shutdown --workers 2
c=8
r=1000
lout=$tmp/shutdown.loadgen
"$loadgen" --port "$port" --connections $c --requests $r --rounds 1000 \
  --shutdown-check --progress-at 400 >"$lout" 2>&1 &
lpid=$!
wait_line "$lout" '^progress: ' 30 "$lpid"
kill -TERM "$spid"
wait_line "$out" '^shutting down' 10 "$spid"
open=$(sed -n 's/^shutting down.*: \([0-9]*\) connections open.*/\1/p' "$out")
[ -n "$open" ] && [ "$open" -gt 0 ] ||
  fail "shutdown: no connection open at SIGTERM ('$open'): not under load"
"$loadgen" --port "$port" --connections 2 --requests 1 --shutdown-check \
  >"$tmp/refused.loadgen" 2>&1 || fail "shutdown: the connect probe failed"
[ "$(value "$tmp/refused.loadgen" refused)" = 2 ] ||
  fail "shutdown: connects after the shutdown began were not refused"
wait_exit "$lpid" 60
lpid=
[ "$status" -eq 0 ] || fail "shutdown: loadgen exited $status"
[ "$(value "$lout" correct)" = $((c * r)) ] ||
  fail "shutdown: correct is $(value "$lout" correct), expected $((c * r))"
wait_exit "$spid" 20
spid=
[ "$status" -eq 0 ] || fail "shutdown: exit status $status"
echo "ok: shutdown under load: SIGTERM with $open connections open," \
  "all $((c * r)) requests answered, new connects refused, exit 0"

# (5) Clients that keep their connections open hold the drain; a second
# signal closes them at once, and the server exits 0.
start_server twice --workers 2
c=4
r=20
lout=$tmp/twice.loadgen
"$loadgen" --port "$port" --connections $c --requests $r --linger-ms 60000 \
  --progress-at $((c * r)) >"$lout" 2>&1 &
lpid=$!
wait_line "$lout" '^progress: ' 30 "$lpid"
kill -TERM "$spid"
wait_line "$out" "^shutting down on SIGTERM: $c connections open" 10 "$spid"
kill -INT "$spid"
wait_exit "$spid" 10
spid=
[ "$status" -eq 0 ] || fail "twice: exit status $status"
grep -q "^SIGINT again: closing $c connections" "$out" ||
  fail "twice: the second signal did not close the $c connections"
wait_exit "$lpid" 10
lpid=
[ "$status" -eq 0 ] || fail "twice: loadgen exited $status"
echo "ok: a second signal closes $c idle connections at once, exit 0"

echo "line_server: all checks passed"
