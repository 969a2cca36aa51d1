#!/bin/sh
# The demos print exactly what their Python originals print.
set -u
out=$("${top_builddir:-.}/demo/squares") || { echo "squares failed"; exit 1; }
if [ "$out" != "[1, 4, 9, 16, 25]" ]; then
  echo "squares printed '$out', expected '[1, 4, 9, 16, 25]'"
  exit 1
fi
echo "squares: $out"
