#!/bin/sh
# check_model.sh - check the spin model of crew_queue's wait/wake protocol
# (model/queue.pml; model/README.md maps it to lib/queue.c, lib/shqueue.c
# and lib/slock.c).
#
# For each configuration: spin -a, compile pan with $CC, then
#   safety:   pan -DSAFETY: assertions (count <= capacity, every item taken
#             exactly once and in order, all pushed items taken) and invalid
#             end states (a deadlock; the watchdog first asserts that no
#             blocked waiter's predicate holds: no lost wake-up);
#   liveness: pan -a with the LTL property `live` (<> done): every run,
#             including those that loop through 100 ms slices, ends with
#             every call returned.
# Any error fails the test. Then the deliberately broken variants must FAIL
# (spin must find their counterexample, printed as a short story).
#
# Environment (make check): SPIN (path, may be empty), CC, top_srcdir.
# Skips (77) without spin or a C compiler. MODEL_JOBS: parallel pan runs
# (default 2). `make model` runs this script.

: "${top_srcdir:=$(dirname "$0")/..}"
model="$top_srcdir/model/queue.pml"
[ -n "$SPIN" ] || SPIN=$(command -v spin 2>/dev/null)
CC=${CC:-cc}
jobs=${MODEL_JOBS:-2}

if [ -z "$SPIN" ] || ! [ -x "$SPIN" ]; then
  echo "check_model: spin not found (apt-get install spin): skipped"
  exit 77
fi
if ! [ -r "$model" ]; then
  echo "check_model: $model not found"
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/crew_model.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP

start=$(date +%s)
printf 'int main(void) { return 0; }\n' >"$tmp/cc_test.c"
if ! $CC -o "$tmp/cc_test" "$tmp/cc_test.c" >/dev/null 2>&1; then
  echo "check_model: no working C compiler (CC='$CC') to build pan: skipped"
  exit 77
fi

echo "check_model: $($SPIN -V 2>&1 | head -n 1), CC=$CC, $jobs jobs"

# name | -D flags | expect:
#   safe: no error in the safety search. Without SHARED every run of the
#         model is finite (all loops are bounded by items, budgets and
#         signals), so "no invalid end state" already means every run ends
#         with all calls returned; one of them also gets the LTL search.
#   live: no error in the liveness (LTL) search, which checks the same
#         assertions, reports a deadlock as a run that never reaches `done`,
#         and finds cycles. SHARED models loop (the 100 ms slice), so they
#         need it.
#   fail: a broken variant: spin must find a counterexample.
configs='
cap1-quota|-DCAP=1 -DNOPS=3|safe
cap2-quota|-DCAP=2 -DNOPS=3|safe
cap2-many|-DCAP=2 -DNOPS=3 -DPBATCH=2 -DCBATCH=2|live
cap1-close|-DCAP=1 -DWORKLOAD=W_CLOSE_ANY -DSPURIOUS=0|safe
cap2-close|-DCAP=2 -DWORKLOAD=W_CLOSE_ANY -DSPURIOUS=0|safe
cap1-spin|-DCAP=1 -DSPINNING -DSPURIOUS=0 -DTMO=0|safe
cap2-spin|-DCAP=2 -DSPINNING -DSPURIOUS=0|safe
cap2-spin-exact|-DCAP=2 -DSPINNING -DSPURIOUS=0 -DTMO=0|safe
shared1-kill|-DCAP=1 -DSHARED -DKILLS=1 -DKILL_LOCKED -DWORKLOAD=W_CLOSE_AFTER -DSPURIOUS=0|live
shared2-kill-nosup|-DCAP=2 -DSHARED -DKILLS=1 -DKILL_LOCKED -DNO_SUPERVISOR -DWORKLOAD=W_CLOSE_AFTER -DSPURIOUS=0|live
bug-was-empty|-DCAP=2 -DBUG_WAS_EMPTY -DSPURIOUS=0 -DTMO=0|fail
bug-one-set|-DCAP=1 -DBUG_ONE_SET -DSPURIOUS=0 -DTMO=0|fail
bug-sig-keep|-DCAP=2 -DBUG_SIG_KEEP -DSPURIOUS=0 -DTMO=0|fail
bug-spin-every|-DCAP=2 -DSPINNING -DBUG_SPIN_EVERY -DSPURIOUS=0 -DTMO=0|fail
bug-no-slice|-DCAP=1 -DSHARED -DKILLS=1 -DNO_SLICE -DNO_SUPERVISOR -DWORKLOAD=W_CLOSE_AFTER -DSPURIOUS=0 -DTMO=0|fail
'

# -O1: pan compiles in half the time of -O2 and runs about as fast here.
pan_cflags="-O1 -w -DNOFAIR -DNOBOUNDCHECK"

# Build and run one configuration in its own directory ($tmp/name).
# $flags, $CC and $pan_cflags are split into words on purpose.
# shellcheck disable=SC2086
run_one() {
  name=$1 flags=$2 expect=$3
  d="$tmp/$name"
  mkdir -p "$d" && cp "$model" "$d/queue.pml" || return
  (
    cd "$d" || exit 1
    if ! "$SPIN" -a $flags queue.pml >spin.log 2>&1; then
      echo "spin -a failed" >build.err
      exit 1
    fi
    if [ "$expect" = live ]; then
      if ! $CC $pan_cflags -o pan_live pan.c >cc.log 2>&1; then
        echo "cc pan (liveness) failed" >build.err
        exit 1
      fi
      ./pan_live -a -m100000 >live.out 2>&1
    else
      if ! $CC $pan_cflags -DSAFETY -DNOCLAIM -o pan_safety pan.c >cc.log 2>&1; then
        echo "cc pan (safety) failed" >build.err
        exit 1
      fi
      ./pan_safety -m100000 >safety.out 2>&1
    fi
    # a counterexample: replay it as a story (the model's printf lines)
    [ -f queue.pml.trail ] && "$SPIN" -t $flags queue.pml >story.out 2>&1
    exit 0
  )
}

# Pull one number out of pan's report.
field() { # file, sed expression
  sed -n "$2" "$1" | head -n 1
}
summary() { # pan output file -> one line
  f=$1
  st=$(field "$f" 's/^ *\([0-9.e+]*\) states, stored.*/\1/p')
  dp=$(field "$f" 's/.*depth reached \([0-9]*\).*/\1/p')
  er=$(field "$f" 's/.*errors: \([0-9]*\).*/\1/p')
  mem=$(field "$f" 's/^ *\([0-9.]*\)[[:space:]]*total actual memory usage.*/\1/p')
  tm=$(field "$f" 's/^pan: elapsed time \([0-9.e+]*\) seconds.*/\1/p')
  echo "states stored ${st:-?}, depth ${dp:-?}, errors ${er:-?}, memory ${mem:-?} MB, ${tm:-?} s"
}
story() { # the counterexample's printf lines, up to the violation
  [ -f "$1/story.out" ] || return 0
  sed -e 's/^[[:space:]]*//' -e '/^$/d' -e '/^ltl /d' -e '/^Never claim/d' \
    "$1/story.out" |
    awk '{ print "      " $0 } /LOST WAKE-UP|assertion violated/ { exit }
         NR >= 60 { exit }'
}
errors_of() {
  er=$(field "$1" 's/.*errors: \([0-9]*\).*/\1/p')
  echo "${er:-missing}"
}

# Run them, $jobs at a time.
n=0
list=$(echo "$configs" | sed '/^$/d')
echo "$list" >"$tmp/list"
while IFS='|' read -r name flags expect; do
  run_one "$name" "$flags" "$expect" &
  n=$((n + 1))
  if [ "$n" -ge "$jobs" ]; then
    wait
    n=0
  fi
done <"$tmp/list"
wait

# Report.
fail=0
while IFS='|' read -r name flags expect; do
  d="$tmp/$name"
  echo "== $name ($flags)"
  if [ -f "$d/build.err" ]; then
    echo "   FAIL: $(cat "$d/build.err")"
    cat "$d/spin.log" "$d/cc.log" 2>/dev/null | head -n 20
    fail=1
    continue
  fi
  if [ "$expect" != fail ]; then
    kinds=safety
    [ "$expect" = live ] && kinds=live
    for kind in $kinds; do
      out="$d/$kind.out"
      e=$(errors_of "$out")
      echo "   $kind: $(summary "$out")"
      if [ "$e" != 0 ] || grep -q 'max search depth too small' "$out"; then
        echo "   FAIL: spin found an error or did not finish ($kind):"
        grep -E '^pan:1|max search depth' "$out" | cut -c1-200
        story "$d"
        fail=1
      fi
    done
  else
    out="$d/safety.out"
    e=$(errors_of "$out")
    echo "   broken variant: $(summary "$out")"
    if [ "$e" = missing ] || [ "$e" = 0 ]; then
      echo "   FAIL: the broken variant passed: the model cannot catch this bug"
      fail=1
    else
      echo "   ok: counterexample found: $(grep -m 1 '^pan:1' "$out" | cut -c1-60)..."
      story "$d"
    fi
  fi
done <"$tmp/list"

end=$(date +%s)
echo "check_model: $((end - start)) s"
if [ "$fail" != 0 ]; then
  echo "check_model: FAILED"
  exit 1
fi
echo "check_model: all configurations verified, all broken variants caught"
exit 0
