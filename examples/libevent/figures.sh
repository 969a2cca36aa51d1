#!/bin/sh
# figures.sh - the README's figures for http_server, measured with wrk:
# GET /hash at a concurrency of 64 with the work on crew threads, on crew
# processes and --inline (on the loop thread), for three sizes of work
# (tiny, about 50 us, about 1 ms); then tiny work from one client at a
# time; then GET /ping from one more client while 64 others ask for 1 ms
# of work. Prints what the work costs here (hashref --time) and wrk's own
# output for each run.
#
#   make http_server hashref && ./figures.sh [SECONDS] [WORKERS]
#
# SECONDS per run (default 10); WORKERS for the pool (default: the CPUs).
# Needs wrk (Debian: apt-get install wrk). Client and server share the
# machine: on a few cores, the figures include wrk's own CPU time.
set -u
cd "$(dirname "$0")" || exit 1
secs=${1:-10}
workers=${2:-0}
command -v wrk >/dev/null 2>&1 || {
  echo "figures.sh needs wrk (Debian: apt-get install wrk)"
  exit 1
}
[ -x ./http_server ] && [ -x ./hashref ] || {
  echo "build first: make http_server hashref"
  exit 1
}

data=0123456789abcdef0123456789abcdef # 32 bytes
tiny=1                                # about 0.05 us of work
small=1100                            # about 50 us here
large=20000                           # about 1 ms
tmp=$(mktemp -d "${TMPDIR:-/tmp}/figures.XXXXXX") || exit 1
spid=
trap '[ -n "$spid" ] && kill -KILL "$spid" 2>/dev/null; rm -rf "$tmp"' EXIT

start() { # ARGS...: start http_server, wait for its port
  rm -f "$tmp/server"
  ./http_server --port 0 "$@" >"$tmp/server" 2>&1 &
  spid=$!
  i=0
  until grep -q '^listening on 127\.0\.0\.1:[0-9][0-9]*$' "$tmp/server" \
    2>/dev/null; do
    i=$((i + 1))
    [ "$i" -le 500 ] && kill -0 "$spid" 2>/dev/null || {
      cat "$tmp/server"
      exit 1
    }
    sleep 0.02
  done
  url=http://127.0.0.1:$(sed -n 's/^listening on 127\.0\.0\.1://p' \
    "$tmp/server")
}

stop() {
  kill -TERM "$spid"
  wait "$spid"
  spid=
}

echo "== the work: hashwork of $(printf %s "$data" | wc -c) bytes"
for rounds in $tiny $small $large; do
  echo "rounds=$rounds: $(./hashref --time $rounds 32)"
done

for rounds in $tiny $small $large; do
  for mode in threads processes inline; do
    case $mode in
    threads) start --workers "$workers" ;;
    processes) start --workers "$workers" --processes ;;
    inline) start --inline ;;
    esac
    echo
    echo "== $mode, rounds=$rounds: wrk -t1 -c64 -d${secs}s --latency" \
      "'/hash?rounds=$rounds&data=$data'"
    wrk -t1 -c64 -d"${secs}s" --latency "$url/hash?rounds=$rounds&data=$data"
    stop
  done
done

# One client at a time, tiny work: the hop to a worker and back is all
# the pool adds.
for mode in threads processes inline; do
  case $mode in
  threads) start --workers "$workers" ;;
  processes) start --workers "$workers" --processes ;;
  inline) start --inline ;;
  esac
  echo
  echo "== $mode, one client, rounds=$tiny: wrk -t1 -c1 -d${secs}s --latency" \
    "'/hash?rounds=$tiny&data=$data'"
  wrk -t1 -c1 -d"${secs}s" --latency "$url/hash?rounds=$tiny&data=$data"
  stop
done

# The loop stays responsive: /ping from one client while 64 others keep
# the workers (or the loop itself) busy with 1 ms requests.
for mode in threads processes inline; do
  case $mode in
  threads) start --workers "$workers" ;;
  processes) start --workers "$workers" --processes ;;
  inline) start --inline ;;
  esac
  wrk -t1 -c64 -d"$((secs + 2))s" "$url/hash?rounds=$large&data=$data" \
    >"$tmp/load" 2>&1 &
  wpid=$!
  sleep 1 # let the load reach its steady state before measuring /ping
  echo
  echo "== $mode, /ping while 64 clients ask for rounds=$large:" \
    "wrk -t1 -c1 -d${secs}s --latency '/ping'"
  wrk -t1 -c1 -d"${secs}s" --latency "$url/ping"
  wait "$wpid"
  echo "(the load meanwhile: $(grep -E 'Requests/sec|Non-2xx|Socket errors' \
    "$tmp/load" | tr -s ' ' | tr '\n' ' '))"
  stop
done
