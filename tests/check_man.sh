#!/bin/sh
# The manual pages in doc/ are clean and complete:
#  1. every page passes 'mandoc -T lint -W warning' without a message (or,
#     where mandoc is absent, 'groff -mandoc -ww -z' without a warning);
#  2. every function declared with CREW_API in include/crew/*.h has a
#     SYNOPSIS entry (.Fn, or .Fo/.Fa/.Fc) in some doc/*.3 or doc/crew.7
#     page (all but crew/testhook.h: test-only, not installed), and
#     that entry matches the header's prototype exactly (return
#     type, name, argument types and names, in order);
#  3. no SYNOPSIS names a crew_ function that the headers do not declare.
# So a function added, renamed or changed without its manual fails here.
#
# The environment gives top_srcdir and MANDOC (the path to mandoc, or empty
# when configure found none). Exits 0 when all is well, 1 on a failure, 77
# (skipped) when the pages are complete but neither mandoc nor groff exists
# to lint them.
set -u
srcdir=${top_srcdir:-.}
docdir=$srcdir/doc
status=0

tmp=${TMPDIR:-/tmp}/check_man.$$
mkdir "$tmp" || exit 99
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

pages=
for page in "$docdir"/*.[1-9]; do
  [ -f "$page" ] && pages="$pages $page"
done
if [ -z "$pages" ]; then
  echo "no manual pages found in $docdir"
  exit 1
fi

# ------------------------------------------------------------ 1. lint
if [ "${MANDOC+set}" = set ]; then
  mandoc=$MANDOC               # from configure: empty means none was found
else
  mandoc=$(command -v mandoc 2>/dev/null || true)
fi
linter=
if [ -n "$mandoc" ]; then
  linter=mandoc
  for page in $pages; do
    out=$("$mandoc" -T lint -W warning "$page" 2>&1)
    rc=$?
    if [ -n "$out" ] || [ $rc -ne 0 ]; then
      echo "mandoc -T lint -W warning $page: exit $rc"
      [ -n "$out" ] && printf '%s\n' "$out"
      status=1
    fi
  done
elif command -v groff >/dev/null 2>&1; then
  linter=groff
  for page in $pages; do
    out=$(groff -mandoc -ww -z "$page" 2>&1)
    rc=$?
    if [ -n "$out" ] || [ $rc -ne 0 ]; then
      echo "groff -mandoc -ww -z $page: exit $rc"
      [ -n "$out" ] && printf '%s\n' "$out"
      status=1
    fi
  done
fi

# ------------------------------------------- 2. and 3. the synopses
# The headers' prototypes, one a line: "name<TAB>prototype<TAB>header".
# A declaration runs from a line starting with CREW_API to the first ';'.
awk '
  /^[ \t]*CREW_API[ \t]/ { decl = ""; inside = 1; file = FILENAME }
  inside {
    decl = decl " " $0
    if (index($0, ";") > 0) {
      inside = 0
      sub(/;.*/, "", decl)
      sub(/^[ \t]*CREW_API[ \t]+/, "", decl)
      gsub(/[ \t]+/, " ", decl)
      gsub(/\( /, "(", decl); gsub(/ \)/, ")", decl); gsub(/ ,/, ",", decl)
      gsub(/\* /, "*", decl)
      sub(/^ /, "", decl); sub(/ $/, "", decl)
      name = decl
      sub(/[ \t]*\(.*/, "", name)
      sub(/.*[ *]/, "", name)
      n = split(file, parts, "/")
      print name "\t" decl "\tinclude/crew/" parts[n]
    }
  }
' $(ls "$srcdir"/include/crew/*.h | grep -v '/testhook\.h$') |
  sort > "$tmp/headers"

# The pages' SYNOPSIS entries, one a line: "name<TAB>prototype<TAB>page".
# .Ft gives the type; .Fn name "arg" "arg" or .Fo name / .Fa "arg" / .Fc
# the rest.
awk '
  # Split the arguments of a macro line: quoted strings or bare words.
  function args(line, out,    n, a) {
    n = 0
    sub(/^\.[A-Za-z]+[ \t]*/, "", line)
    while (line != "") {
      if (substr(line, 1, 1) == "\"") {
        line = substr(line, 2)
        a = index(line, "\"")
        if (a == 0) a = length(line) + 1
        out[++n] = substr(line, 1, a - 1)
        line = substr(line, a + 1)
      } else {
        a = match(line, /[ \t]/)
        if (a == 0) a = length(line) + 1
        out[++n] = substr(line, 1, a - 1)
        line = substr(line, a)
      }
      sub(/^[ \t]+/, "", line)
    }
    return n
  }
  function emit(name, type, list,    p, n, parts) {
    p = type " " name "(" list ")"
    gsub(/\\&/, "", p)
    gsub(/[ \t]+/, " ", p)
    gsub(/\( /, "(", p); gsub(/ \)/, ")", p); gsub(/ ,/, ",", p)
    gsub(/\* /, "*", p)
    sub(/^ /, "", p)
    n = split(FILENAME, parts, "/")
    print name "\t" p "\tdoc/" parts[n]
  }
  FNR == 1 { insyn = 0; fo = "" }
  /^\.Sh[ \t]/ { insyn = ($0 ~ /^\.Sh[ \t]+"?SYNOPSIS"?[ \t]*$/); next }
  !insyn { next }
  /^\.Ft[ \t]/ { n = args($0, a); type = ""; for (i = 1; i <= n; i++) type = type " " a[i]; next }
  /^\.Fn[ \t]/ {
    n = args($0, a)
    list = ""
    for (i = 2; i <= n; i++) list = list (i > 2 ? ", " : "") a[i]
    emit(a[1], type, list)
    type = ""
    next
  }
  /^\.Fo[ \t]/ { n = args($0, a); fo = a[1]; folist = ""; next }
  /^\.Fa[ \t]/ && fo != "" {
    n = args($0, a)
    for (i = 1; i <= n; i++) folist = folist (folist != "" ? ", " : "") a[i]
    next
  }
  /^\.Fc([ \t]|$)/ && fo != "" { emit(fo, type, folist); fo = ""; type = ""; next }
' "$docdir"/*.3 "$docdir"/crew.7 | sort > "$tmp/pages"

# Compare: each header function needs a synopsis, and every synopsis of it
# must match; each crew_ synopsis needs a header function.
awk -F '\t' '
  FNR == NR { proto[$1] = $2; where[$1] = $3; next }
  {
    seen[$1] = 1
    if (!($1 in proto)) {
      if ($1 ~ /^crew_/) {
        printf "%s: SYNOPSIS of %s, which no header declares with CREW_API\n", $3, $1
        bad = 1
      }
      next
    }
    if ($2 != proto[$1]) {
      printf "%s: SYNOPSIS of %s differs from %s:\n  page:   %s;\n  header: %s;\n", \
             $3, $1, where[$1], $2, proto[$1]
      bad = 1
    }
  }
  END {
    for (f in proto)
      if (!(f in seen)) {
        printf "undocumented: %s (%s) has no .Fn or .Fo in the SYNOPSIS of any doc/*.3 or doc/crew.7 page\n", f, where[f]
        bad = 1
      }
    exit bad
  }
' "$tmp/headers" "$tmp/pages" || status=1

nfuncs=$(wc -l < "$tmp/headers" | tr -d ' ')
if [ "$nfuncs" -eq 0 ]; then
  echo "no CREW_API function found in $srcdir/include/crew/*.h"
  status=1
fi

if [ $status -ne 0 ]; then
  exit 1
fi
if [ -z "$linter" ]; then
  echo "all $nfuncs functions documented; neither mandoc nor groff found to lint the pages: skipped"
  exit 77
fi
echo "$(echo $pages | wc -w | tr -d ' ') pages lint clean with $linter; all $nfuncs CREW_API functions documented with matching synopses"
exit 0
