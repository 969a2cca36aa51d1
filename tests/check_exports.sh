#!/bin/sh
# The shared library exports exactly the reviewed list in tests/exports.txt:
# nothing without the crew_ prefix, nothing internal (crew__), nothing new
# that was not added to the list on purpose. (A library configured with
# --enable-test-hooks also has the crew_test_* functions of crew/testhook.h.)
set -u
lib="${top_builddir:-.}/lib/.libs/libcrew.so"
if [ ! -f "$lib" ]; then
  echo "no shared library built: skipped"
  exit 77
fi
nm_cmd=${NM:-nm}
actual=$($nm_cmd -D --defined-only "$lib" | awk 'NF >= 3 && $2 ~ /^[TDBRVW]$/ { print $3 }' |
  grep -v '^crew_test_' | sort) # crew_test_*: only in --enable-test-hooks builds
expected=$(grep -v '^#' "${top_srcdir:-.}/tests/exports.txt" | sort)
if [ "$actual" != "$expected" ]; then
  echo "exported symbols differ from tests/exports.txt (< expected, > actual):"
  printf '%s\n' "$expected" > exports.expected.tmp
  printf '%s\n' "$actual" > exports.actual.tmp
  diff exports.expected.tmp exports.actual.tmp
  rm -f exports.expected.tmp exports.actual.tmp
  exit 1
fi
echo "$(printf '%s\n' "$actual" | wc -l) symbols, all reviewed"
