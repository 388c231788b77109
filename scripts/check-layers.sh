#!/usr/bin/env bash
# Checks the layer graph where code is written: every #include "<layer>/..." under src/ against the
# quantlab_layer(name DEPS ... TEST_DEPS ...) declarations of CMakeLists.txt (only ql_* entries are
# layers; the rest are third-party targets). Fails, naming file:line, when
#   - a file of layer L includes a layer that is neither L nor in L's DEPS; a *_test.cc may also
#     include L's TEST_DEPS;
#   - a DEPS or TEST_DEPS layer of L is included by no file under src/L/ (an unused edge);
#   - a DEPS layer of L is not declared before L (layers stack in the order of CMakeLists.txt), or a
#     ql_* entry names no layer;
#   - a folder src/X/ has no quantlab_layer(X ...) (its files would be neither built nor checked).
# The compiler enforces the coarser rule (a layer's include path holds only the layers it may see,
# cmake/QuantlabLayers.cmake); this script adds what it cannot: direct includes only, no unused DEPS.
#
# Usage: scripts/check-layers.sh [ROOT]     ROOT: the tree to check (default: this repository)
# Exit status: 0 clean (one summary line), 1 violations (listed on stderr), 2 usage error.
set -euo pipefail

root=${1:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"}
if [ ! -f "$root/CMakeLists.txt" ] || [ ! -d "$root/src" ]; then
  echo "check-layers: $root has no CMakeLists.txt and src/" >&2
  exit 2
fi
cd "$root"

# One line per quantlab_layer() call, in declaration order: name, line, DEPS layers, TEST_DEPS layers
# (tab-separated; the layer lists space-separated, without ql_). A call may span lines.
table=$(awk '
  { sub(/#.*/, "") }
  !open && /(^|[^A-Za-z0-9_])quantlab_layer[ \t]*\(/ {
    open = 1; start = NR; buf = ""
    sub(/.*quantlab_layer[ \t]*\(/, "")
  }
  open {
    p = index($0, ")")
    if (!p) { buf = buf " " $0; next }
    buf = buf " " substr($0, 1, p - 1); open = 0
    n = split(buf, tok)
    mode = ""; deps = ""; tdeps = ""
    for (i = 2; i <= n; i++) {
      if (tok[i] == "DEPS" || tok[i] == "TEST_DEPS") { mode = tok[i]; continue }
      if (tok[i] !~ /^ql_/) continue
      l = substr(tok[i], 4)
      if (mode == "DEPS") deps = deps " " l
      else if (mode == "TEST_DEPS") tdeps = tdeps " " l
    }
    printf "%s\t%d\t%s\t%s\n", tok[1], start, deps, tdeps
  }
' CMakeLists.txt)
if [ -z "$table" ]; then
  echo "check-layers: no quantlab_layer() in $root/CMakeLists.txt" >&2
  exit 2
fi

dirs=$(find src -mindepth 1 -maxdepth 1 -type d | sed 's|^src/||' | sort)
files=$(find src -mindepth 2 -type f \( -name '*.cc' -o -name '*.h' -o -name '*.cpp' -o -name '*.hpp' -o -name '*.inc' \) | wc -l)
# path:line:text of every quoted include whose first path component could be a layer.
includes=$(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[A-Za-z0-9_]+/' src \
             --include='*.cc' --include='*.h' --include='*.cpp' --include='*.hpp' --include='*.inc' || true)

# The records go to awk as three sections: "T" layer table, "D" folders of src/, "I" includes.
set +e
{
  printf '%s\n' "$table" | sed 's/^/T\t/'
  printf '%s\n' "$dirs" | sed '/^$/d; s/^/D\t/'
  printf '%s\n' "$includes" | sed '/^$/d; s/^/I\t/'
} | awk -F'\t' -v files="$files" '
  function err(msg) { print msg > "/dev/stderr"; bad++ }
  $1 == "T" {
    name = $2; nl++; order[name] = nl; layer[nl] = name; decl[name] = $3
    nd[name] = split($4, d, " ");  for (i = 1; i <= nd[name]; i++) { dep[name, i] = d[i]; isdep[name, d[i]] = 1 }
    nt[name] = split($5, t, " ");  for (i = 1; i <= nt[name]; i++) { tdep[name, i] = t[i]; istdep[name, t[i]] = 1 }
    next
  }
  $1 == "D" {
    if (!($2 in order)) err("src/" $2 "/: no quantlab_layer(" $2 " ...) in CMakeLists.txt")
    next
  }
  $1 == "I" {
    rec = substr($0, 3)
    p = index(rec, ":"); file = substr(rec, 1, p - 1); rest = substr(rec, p + 1)
    q = index(rest, ":"); line = substr(rest, 1, q - 1); text = substr(rest, q + 1)
    split(file, part, "/"); L = part[2]
    match(text, /"[^"]*"/); path = substr(text, RSTART, RLENGTH)
    inc = substr(path, 2, index(path, "/") - 2)
    if (!(L in order) || !(inc in order)) next     # not a layer (e.g. "hwy/"), or reported above
    checked++
    used[L, inc] = 1
    if (inc == L || isdep[L, inc]) next
    test = (file ~ /_test\.cc$/)
    if (test && istdep[L, inc]) next
    why = test ? "neither in its DEPS nor in its TEST_DEPS" : "not in its DEPS"
    if (!test && istdep[L, inc]) why = "only in its TEST_DEPS, and this is not a *_test.cc"
    if (order[inc] > order[L]) why = why "; " inc " is above " L " in the stack, the include points up"
    err(file ":" line ": #include " path ": layer " L " uses layer " inc ", " why)
    next
  }
  END {
    edges = 0
    for (k = 1; k <= nl; k++) {
      L = layer[k]
      for (i = 1; i <= nd[L]; i++) {
        D = dep[L, i]; edges++
        if (!(D in order)) { err("CMakeLists.txt:" decl[L] ": " L " DEPS ql_" D ", which is not a layer"); continue }
        if (order[D] >= order[L])
          err("CMakeLists.txt:" decl[L] ": " L " DEPS ql_" D ", which is not declared before " L)
        if (!used[L, D])
          err("CMakeLists.txt:" decl[L] ": " L " DEPS ql_" D ", but no file under src/" L "/ includes \"" D "/...\" (unused edge)")
      }
      for (i = 1; i <= nt[L]; i++) {
        D = tdep[L, i]; edges++
        if (!(D in order)) { err("CMakeLists.txt:" decl[L] ": " L " TEST_DEPS ql_" D ", which is not a layer"); continue }
        if (!used[L, D])
          err("CMakeLists.txt:" decl[L] ": " L " TEST_DEPS ql_" D ", but no file under src/" L "/ includes \"" D "/...\" (unused edge)")
      }
    }
    if (bad) { printf "check-layers: %d violation(s)\n", bad > "/dev/stderr"; exit 1 }
    printf "check-layers: OK (%d layers, %d edges, %d files, %d layer includes)\n", nl, edges, files, checked + 0
  }
'
status=$?
set -e
exit $status
