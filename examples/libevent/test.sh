#!/bin/sh
# test.sh - http_server asked by curl ('make check' builds it and hashref,
# then runs this): every status code of its API, a few hundred concurrent
# requests on threads, processes and --inline with each answer checked
# against hashref (demo/hashwork.h), keep-alive, a worker process killed
# under a task (500), a full queue (503), a graceful SIGTERM under load that
# loses no request it read, and a second signal that ends it at once.
# Every wait polls for what it waits for, with a bound.
set -u

cd "$(dirname "$0")" || exit 1
server=./http_server
ref=./hashref
[ -x "$server" ] && [ -x "$ref" ] || {
  echo "FAIL: build http_server and hashref first (make http_server hashref)"
  exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/http_server_test.XXXXXX") || exit 1
spid=
bgpids=
cleanup() {
  for p in $bgpids $spid; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

fail() {
  echo "FAIL: $*"
  for f in "$tmp"/*.server; do
    [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }
  done
  exit 1
}

# wait_for SECONDS WHAT COMMAND...: poll (every 20 ms) until COMMAND
# succeeds; fail after SECONDS.
wait_for() {
  limit=$(($1 * 50))
  what=$2
  shift 2
  i=0
  until "$@"; do
    i=$((i + 1))
    [ "$i" -le "$limit" ] || fail "$what: still not so after $limit polls"
    sleep 0.02
  done
}

# wait_exit PID SECONDS: wait (bounded) for PID to exit; sets $status.
wait_exit() {
  wait_for "$2" "process $1 to exit" not_running "$1"
  wait "$1"
  status=$?
}
not_running() { ! kill -0 "$1" 2>/dev/null; }

# start_server NAME ARGS...: start it, wait for "listening on", set $url.
start_server() {
  name=$1
  shift
  out=$tmp/$name.server
  "$server" --port 0 "$@" >"$out" 2>&1 &
  spid=$!
  wait_for 20 "$name: the 'listening on' line" listening
  port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$out")
  url=http://127.0.0.1:$port
}
listening() {
  grep -q '^listening on 127\.0\.0\.1:[0-9][0-9]*$' "$out" && return 0
  kill -0 "$spid" 2>/dev/null || fail "$name: the server exited at start"
  return 1
}

# stop_server: SIGTERM, then it must exit 0 promptly.
stop_server() {
  kill -TERM "$spid"
  wait_exit "$spid" 20
  spid=
  [ "$status" -eq 0 ] || fail "$name: exit status $status after SIGTERM"
}

# ask WHAT EXPECT_STATUS EXPECT_BODY CURL_ARGS...: one request; its status
# and whole body must be these (the body's trailing newline aside).
ask() {
  what=$1
  want_code=$2
  want_body=$3
  shift 3
  code=$(curl -s -o "$tmp/body" -D "$tmp/head" -w '%{http_code}' "$@")
  [ "$code" = "$want_code" ] ||
    fail "$what: status $code, expected $want_code ($(cat "$tmp/body"))"
  [ "$(cat "$tmp/body")" = "$want_body" ] ||
    fail "$what: body '$(cat "$tmp/body")', expected '$want_body'"
}

# ask_prefix WHAT EXPECT_STATUS BODY_PREFIX CURL_ARGS...: as ask, for the
# start of the body.
ask_prefix() {
  what=$1
  want_code=$2
  prefix=$3
  shift 3
  code=$(curl -s -o "$tmp/body" -D "$tmp/head" -w '%{http_code}' "$@")
  [ "$code" = "$want_code" ] ||
    fail "$what: status $code, expected $want_code ($(cat "$tmp/body"))"
  case $(cat "$tmp/body") in
  "$prefix"*) ;;
  *) fail "$what: body '$(cat "$tmp/body")' does not start '$prefix'" ;;
  esac
}

# make_load NAME N SEED [ROUNDS]: a curl config of N /hash requests
# (hashref's queries), each to its own output file, and the digests they
# must get.
make_load() {
  mkdir -p "$tmp/$1"
  "$ref" --queries "$2" "$3" ${4:-} | awk -v url="$url" -v dir="$tmp/$1" \
    -v want="$tmp/$1.want" '{
      printf "url = \"%s/hash?%s\"\noutput = \"%s/%d\"\n", url, $1, dir, NR
      print NR, $2 > want
    }' >"$tmp/$1.curl"
}

# run_load NAME PARALLEL: run it, concurrently; one result line per
# transfer: "exitcode status bytes file".
run_load() {
  curl -s --no-progress-meter --parallel --parallel-max "$2" -K "$tmp/$1.curl" \
    -w '%{exitcode} %{http_code} %{size_download} %{filename_effective}\n' \
    >"$tmp/$1.results"
}

# check_load NAME: count answers that are right (200, the digest and a
# newline: 17 bytes) and refused connects (curl's exit 7); print
# "RIGHT REFUSED OTHER", the other results on stderr.
check_load() {
  awk -v dir="$tmp/$1" '
    FILENAME == ARGV[1] { want[$1] = $2; next }
    {
      n = $4; sub(".*/", "", n)
      if ($1 == 7 && $2 == "000") { refused++; next }
      got = ""
      if ($1 == 0 && $2 == 200 && $3 == 17) {
        f = dir "/" n; getline got < f; close(f)
      }
      if (got == want[n]) right++
      else { other++; print "request " n ": " $0 " body " got \
               " expected " want[n] > "/dev/stderr" }
    }
    END { print right + 0, refused + 0, other + 0 }' "$tmp/$1.want" \
    "$tmp/$1.results"
}

# load NAME N PARALLEL: N concurrent /hash requests, every answer right.
load() {
  make_load "$1" "$2" "$4"
  run_load "$1" "$3"
  counts=$(check_load "$1")
  [ "$counts" = "$2 0 0" ] ||
    fail "$1: right, refused, other: $counts; expected $2 0 0"
  echo "ok: $1: $2 requests, $3 at a time, every answer right"
}

# stat_of PID: the state letter of a process or thread (R: running).
stat_of() {
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  echo "${s%% *}"
}

# process_running: whether $worker is running (R).
process_running() { [ "$(stat_of "$worker")" = R ]; }

# thread_running NAME: whether the server's thread NAME is running (R).
thread_running() {
  for t in /proc/"$spid"/task/*; do
    [ "$(cat "$t/comm" 2>/dev/null)" = "$1" ] &&
      [ "$(stat_of "$spid/task/${t##*/}")" = R ] && return 0
  done
  return 1
}

# children PID: the processes whose parent is PID (read from /proc).
children() {
  for f in /proc/[0-9]*/stat; do
    s=$(cat "$f" 2>/dev/null) || continue
    rest=${s##*) }
    set -- "$1" $rest
    [ "$3" = "$1" ] && echo "${s%% *}"
  done
}

# (1) The API, with worker threads.
start_server threads --workers 2
ask "GET /ping" 200 pong "$url/ping"
ask "GET /hash" 200 "$("$ref" 5 a)" "$url/hash?rounds=5&data=a"
ask "GET /hash, data empty" 200 "$("$ref" 3 "")" "$url/hash?rounds=3&data="
enc='a%20b%26c%3Dd%2Be+f%00g%25%E2%82%AC'
ask "GET /hash, URL-decoded data with a NUL" 200 "$("$ref" -d 7 "$enc")" \
  "$url/hash?data=$enc&rounds=7"
ask "GET /hash, curl --data-urlencode" 200 "$("$ref" 9 'x y&z=1+2%')" \
  -G --data-urlencode 'data=x y&z=1+2%' --data-urlencode rounds=9 "$url/hash"
ask "GET /hash, the largest data" 200 "$("$ref" 1 "$(printf '%4096s' '')")" \
  -G --data-urlencode "data=$(printf '%4096s' '')" "$url/hash?rounds=1"
ask_prefix "rounds missing" 400 "rounds: missing" "$url/hash?data=a"
ask_prefix "data missing" 400 "data: missing" "$url/hash?rounds=1"
ask_prefix "no query" 400 "rounds: missing" "$url/hash"
ask_prefix "rounds 0" 400 "rounds: a decimal" "$url/hash?rounds=0&data=a"
ask_prefix "rounds 1000001" 400 "rounds: a decimal" \
  "$url/hash?rounds=1000001&data=a"
ask_prefix "rounds not a number" 400 "rounds: a decimal" \
  "$url/hash?rounds=1x&data=a"
ask_prefix "rounds negative" 400 "rounds: a decimal" \
  "$url/hash?rounds=-1&data=a"
ask_prefix "rounds with a sign" 400 "rounds: a decimal" \
  "$url/hash?rounds=%2B1&data=a"
ask_prefix "rounds empty" 400 "rounds: a decimal" "$url/hash?rounds=&data=a"
ask_prefix "data too long" 400 "data: at most 4096 bytes" \
  -G --data-urlencode "data=$(printf '%4097s' '')" "$url/hash?rounds=1"
ask_prefix "another path" 404 "not found" "$url/hashes?rounds=1&data=a"
ask_prefix "the root" 404 "not found" "$url/"
ask_prefix "POST /hash" 405 "method not allowed" -d x "$url/hash?rounds=1"
ask_prefix "DELETE /ping" 405 "method not allowed" -X DELETE "$url/ping"
grep -q '^Allow: GET' "$tmp/head" || fail "405 without 'Allow: GET'"
echo "ok: threads: 200, 400, 404 and 405 answers, URL-decoding, 4096 bytes"

# Keep-alive: three requests in one curl run share one connection.
curl -s -o /dev/null -o /dev/null -o /dev/null \
  -w '%{http_code} %{num_connects}\n' "$url/ping" \
  "$url/hash?rounds=10&data=k" "$url/ping" >"$tmp/keepalive"
[ "$(tr '\n' ' ' <"$tmp/keepalive")" = "200 1 200 0 200 0 " ] ||
  fail "keep-alive: '$(tr '\n' ' ' <"$tmp/keepalive")', expected" \
    "'200 1 200 0 200 0' (connects per request)"
echo "ok: threads: keep-alive, three requests on one connection"

load threads-load 400 64 1
stop_server
grep -q '^stopped: .* 0 dropped' "$out" || fail "threads: $(tail -1 "$out")"

# (2) Worker processes: the same load, then a worker killed in a task.
start_server processes --workers 1 --processes
load processes-load 300 64 2
worker=
for c in $(children "$spid"); do worker=$worker$(children "$c"); done
[ -n "$worker" ] || fail "processes: no worker process found"
long="/hash?rounds=1000000&data=$(printf '%1000s' '' | tr ' ' q)"
curl -s -o "$tmp/crash.body" -w '%{http_code}' "$url$long" \
  >"$tmp/crash.code" &
cpid=$!
bgpids="$bgpids $cpid"
wait_for 10 "processes: the worker to run the long task" process_running
kill -KILL "$worker"
wait_exit "$cpid" 10
[ "$(cat "$tmp/crash.code")" = 500 ] ||
  fail "worker killed: status $(cat "$tmp/crash.code"), expected 500"
case $(cat "$tmp/crash.body") in
"task failed: the worker process died"*) ;;
*) fail "worker killed: body '$(cat "$tmp/crash.body")'" ;;
esac
ask "after the crash" 200 "$("$ref" 4 b)" "$url/hash?rounds=4&data=b"
stop_server
echo "ok: processes: a killed worker's request answers 500 with the reason;" \
  "the next request works"

# (3) A full queue answers 503 with Retry-After: 1. One worker and room for
# one task: A runs (about a second), B waits in the queue, C finds it full.
# Which of B and C comes first is up to curl; exactly one gets the 503.
start_server queue --workers 1 --queue 1
curl -s -o "$tmp/a.body" -w '%{http_code}' "$url$long" >"$tmp/a.code" &
apid=$!
bgpids="$bgpids $apid"
wait_for 10 "queue: the worker to run A" thread_running http-0
curl -s -o "$tmp/b.body" -D "$tmp/b.head" -w '%{http_code}' \
  "$url/hash?rounds=2&data=B" >"$tmp/b.code" &
bpid=$!
bgpids="$bgpids $bpid"
curl -s -o "$tmp/c.body" -D "$tmp/c.head" -w '%{http_code}' \
  "$url/hash?rounds=2&data=C" >"$tmp/c.code"
ask_prefix "/ping while the pool is full" 200 pong "$url/ping"
wait_exit "$bpid" 20
wait_exit "$apid" 20
codes="$(cat "$tmp/a.code") $(cat "$tmp/b.code") $(cat "$tmp/c.code")"
case $codes in
"200 200 503") full=c ok=b ;;
"200 503 200") full=b ok=c ;;
*) fail "queue: statuses of A, B, C: $codes; expected one 503 of B, C" ;;
esac
grep -q '^Retry-After: 1' "$tmp/$full.head" || fail "503 without Retry-After"
[ "$(cat "$tmp/$full.body")" = "busy: the queue is full" ] ||
  fail "503 body: '$(cat "$tmp/$full.body")'"
[ "$(cat "$tmp/$ok.body")" = "$("$ref" 2 "$(echo $ok | tr bc BC)")" ] ||
  fail "queue: the request that was queued got a wrong answer"
stop_server
echo "ok: queue: a full queue answers 503 with Retry-After: 1 at once;" \
  "/ping is answered meanwhile"

# (4) --inline: the loop thread hashes.
start_server inline --inline
ask "inline GET /hash" 200 "$("$ref" 5 a)" "$url/hash?rounds=5&data=a"
load inline-load 200 64 3
stop_server

# (5) SIGTERM under load: every request the server read is answered, the
# rest are refused at connect; the server exits 0, and the answers it says
# it wrote are the ones curl got. 600 requests of about 2 ms on 2 workers,
# 32 at a time on keep-alive connections; SIGTERM once 100 are answered.
start_server sigterm --workers 2
make_load sigterm 600 4 40000
run_load sigterm 32 &
lpid=$!
bgpids="$bgpids $lpid"
answered_100() { [ "$(ls "$tmp/sigterm" | wc -l)" -ge 100 ]; }
wait_for 60 "sigterm: 100 answers" answered_100
kill -TERM "$spid"
wait_exit "$lpid" 60
wait_exit "$spid" 30
spid=
[ "$status" -eq 0 ] || fail "sigterm: exit status $status"
inflight=$(sed -n 's/^shutting down on SIGTERM: \([0-9]*\) requests in progress$/\1/p' "$out")
[ -n "$inflight" ] && [ "$inflight" -gt 0 ] ||
  fail "sigterm: no request in progress at the signal: not under load"
set -- $(check_load sigterm)
[ "$3" = 0 ] || fail "sigterm: $3 requests neither answered nor refused"
[ "$2" -gt 0 ] || fail "sigterm: no request refused: the load ended first"
answered=$(sed -n 's/^stopped: \([0-9]*\) requests answered, 0 dropped.*/\1/p' "$out")
[ "$answered" = "$1" ] ||
  fail "sigterm: the server wrote '$answered' answers, curl got $1 right"
echo "ok: sigterm: $inflight requests in progress at the signal; $1 answered" \
  "right, $2 refused, none lost; exit 0"

# (6) A second signal ends it at once: the long request gets no answer.
start_server twice --workers 1
curl -s -o /dev/null -w '%{http_code}' "$url$long" >"$tmp/twice.code" &
tpid=$!
bgpids="$bgpids $tpid"
wait_for 10 "twice: the worker to run the long task" thread_running http-0
kill -TERM "$spid"
wait_for 10 "twice: the 'shutting down' line" grep -q '^shutting down' "$out"
kill -INT "$spid"
wait_exit "$spid" 10
spid=
[ "$status" -eq 1 ] || fail "twice: exit status $status, expected 1"
grep -q '^SIGINT again: exiting now, unanswered requests: 1$' "$out" ||
  fail "twice: $(tail -1 "$out")"
wait_exit "$tpid" 10
[ "$(cat "$tmp/twice.code")" = 000 ] ||
  fail "twice: the long request got status $(cat "$tmp/twice.code")"
echo "ok: a second signal exits at once (status 1)"

echo "http_server: all checks passed"
