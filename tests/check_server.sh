#!/bin/sh
# The server demo (demo/server.c) under load from demo/loadgen, which checks
# every answer: with worker threads, with worker processes, with --inline,
# the protocol's corner cases, and a graceful shutdown under load (every
# request sent is answered, new connects are refused, the drain timeout
# closes idle clients). Linux only: skipped (77) elsewhere.
set -u

case $(uname -s) in
Linux) ;;
*)
  echo "the server demo needs Linux (epoll, signalfd): skipped"
  exit 77
  ;;
esac

b=${top_builddir:-.}
server=$b/demo/server
loadgen=$b/demo/loadgen
[ -x "$server" ] && [ -x "$loadgen" ] || {
  echo "demo/server or demo/loadgen not built"
  exit 99
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check_server.XXXXXX") || exit 99
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
    [ -f "$f" ] || continue
    echo "--- $f"
    cat "$f"
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

# wait_exit PID SECONDS: wait for PID to exit (bounded); sets $status.
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

# start_server NAME ARGS...: start the server, wait for its port.
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
  [ "$status" -eq 0 ] || fail "$name: server exited $status after SIGTERM"
  spid=
}

# value FILE KEY: the value of "KEY: value" in loadgen's output.
value() {
  sed -n "s/^$2: //p" "$1"
}

# load NAME CONNECTIONS REQUESTS ARGS...: run loadgen, require exit 0 and
# every request answered correctly.
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
    "$(value "$lout" correct) correct," \
    "$(value "$lout" throughput_rps) requests/s"
}

protocol() {
  "$loadgen" --port "$port" --protocol-check >"$tmp/$1.protocol" 2>&1 ||
    fail "$1: protocol check failed"
  echo "ok: $1: protocol check (pipelining, errors, split lines," \
    "half-close, 64 KiB lines)"
}

# (1) worker threads.
start_server threads --workers 2
protocol threads
load threads 16 200 --rounds 200
load threads-pipelined 16 200 --rounds 200 --pipeline 8
stop_server

# (1b) backpressure: a queue of 2 fills at once; every answer still comes.
start_server backpressure --workers 2 --queue 2 --stats
load backpressure 16 200 --rounds 200 --pipeline 4
stop_server
pauses=$(sed -n 's/.* \([0-9][0-9]*\) backpressure pauses$/\1/p' "$out")
[ -n "$pauses" ] && [ "$pauses" -gt 0 ] ||
  fail "backpressure: the server never paused a client (pauses '$pauses')"
echo "ok: backpressure: queue of 2, $pauses pauses, no answer lost"

# (2) worker processes.
start_server processes --workers 2 --processes
protocol processes
load processes 16 200 --rounds 200 --pipeline 2
stop_server

# (3) shutdown under load: SIGTERM once loadgen reports progress (a twentieth
# of its requests answered). The open connections are served to the end,
# new connects are refused, exit 0. The drain limit is far above the run's
# length even under ThreadSanitizer (about 5 s there, 0.5 s plain).
start_server shutdown --workers 2 --drain-ms 60000
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
[ "$status" -eq 0 ] || fail "shutdown: server exited $status"
echo "ok: shutdown under load: SIGTERM with $open connections open," \
  "all $((c * r)) requests answered, new connects refused, exit 0"

# (3b) the drain timeout: clients that keep their connections open are
# closed after --drain-ms, and the server exits 0.
start_server drain --workers 2 --drain-ms 300
c=4
r=20
lout=$tmp/drain.loadgen
"$loadgen" --port "$port" --connections $c --requests $r --linger-ms 60000 \
  --progress-at $((c * r)) >"$lout" 2>&1 &
lpid=$!
wait_line "$lout" '^progress: ' 30 "$lpid"
kill -TERM "$spid"
wait_exit "$spid" 20
spid=
[ "$status" -eq 0 ] || fail "drain: server exited $status"
grep -q "^drain timeout: closing $c connections" "$out" ||
  fail "drain: no drain timeout for $c connections"
wait_exit "$lpid" 20
lpid=
[ "$status" -eq 0 ] || fail "drain: loadgen exited $status"
echo "ok: drain timeout: $c idle connections closed after 300 ms, exit 0"

# (4) --inline: no pool, the loop hashes.
start_server inline --inline
protocol inline
load inline 16 200 --rounds 200 --pipeline 2
stop_server

echo "server demo: all checks passed"
