#!/bin/sh
# The C sources follow .clang-format. Skipped where clang-format is absent,
# or is not the major version the style was written for (formatting differs
# between versions).
set -u
cf=${CLANG_FORMAT:-}
[ -n "$cf" ] || cf=$(command -v clang-format 2>/dev/null || true)
if [ -z "$cf" ]; then
  echo "clang-format not found: skipped"
  exit 77
fi
major=$("$cf" --version | sed -n 's/.*version \([0-9]*\).*/\1/p')
if [ "$major" != 14 ]; then
  echo "clang-format $major, the style is checked with 14: skipped"
  exit 77
fi
cd "${top_srcdir:-.}" || exit 99
status=0
for f in include/crew.h include/crew/*.h lib/*.c lib/*.h tests/*.c tests/*.h \
         examples/*/*.c demo/*.c demo/*.h bench/*.c; do
  [ -f "$f" ] || continue
  if ! "$cf" --style=file --dry-run -Werror "$f" >/dev/null 2>&1; then
    echo "not formatted: $f (run: clang-format -i $f)"
    status=1
  fi
done
exit $status
