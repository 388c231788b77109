#!/usr/bin/env bash
# Test of scripts/check-layers.sh (ctest: layers.check_script): builds a tiny fake tree of three layers,
# checks that the script passes on it, then breaks it one way at a time (an include pointing up the
# stack, a TEST_DEPS layer used outside a test, a test including an undeclared layer, a declared but
# unused DEPS / TEST_DEPS edge, a DEPS entry declared out of order, a folder without a layer) and
# checks that each fails naming the place.
# Usage: tests/check_layers_test.sh [path/to/check-layers.sh]
set -euo pipefail
script=${1:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/scripts/check-layers.sh"}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

# The clean tree: base <- mid <- top; top's tests also use base (TEST_DEPS); mid has a subfolder.
make_tree() {
  local t=$1
  mkdir -p "$t/src/base" "$t/src/mid/sub" "$t/src/top"
  cat >"$t/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.25)
project(fake LANGUAGES CXX)
# Layers, top to bottom.
quantlab_layer(base DEPS Threads::Threads)
quantlab_layer(mid  DEPS ql_base
                    fmt::fmt)  # a call may span lines
quantlab_layer(top  DEPS ql_mid TEST_DEPS ql_base)
quantlab_layer_tests()
EOF
  printf '#pragma once\nint base();\n' >"$t/src/base/b.h"
  printf '#include "base/b.h"\n#include <vector>\nint base() { return 1; }\n' >"$t/src/base/b.cc"
  printf '#pragma once\n#include "base/b.h"\nint mid();\n' >"$t/src/mid/m.h"
  printf '#include "mid/m.h"\nint mid() { return base(); }\n' >"$t/src/mid/sub/deep.cc"
  printf '#include "mid/m.h"\n#include "hwy/highway.h"\nint x = mid();\n' >"$t/src/mid/m_test.cc"
  printf '#pragma once\nint top();\n' >"$t/src/top/t.h"
  printf '#include "top/t.h"\n#include "mid/m.h"\nint top() { return mid(); }\n' >"$t/src/top/t.cc"
  printf '#include "top/t.h"\n#include "base/b.h"\nint y = top() + base();\n' >"$t/src/top/t_test.cc"
}

# expect_pass NAME TREE / expect_fail NAME TREE PATTERN...: run the script on TREE; on failure its
# output must contain every PATTERN (fixed strings).
expect_pass() {
  local out rc=0
  out=$(bash "$script" "$2" 2>&1) || rc=$?
  if [ "$rc" -ne 0 ] || [ "$(printf '%s\n' "$out" | wc -l)" -ne 1 ] || [[ "$out" != *OK* ]]; then
    echo "FAIL $1: expected exit 0 and one OK line, got exit $rc:"; printf '%s\n' "$out" | sed 's/^/  /'
    failures=$((failures + 1))
  else
    echo "ok   $1: $out"
  fi
}
expect_fail() {
  local name=$1 tree=$2 out rc=0 p
  shift 2
  out=$(bash "$script" "$tree" 2>&1) || rc=$?
  if [ "$rc" -ne 1 ]; then
    echo "FAIL $name: expected exit 1, got $rc:"; printf '%s\n' "$out" | sed 's/^/  /'
    failures=$((failures + 1)); return
  fi
  for p in "$@"; do
    if [[ "$out" != *"$p"* ]]; then
      echo "FAIL $name: output lacks '$p':"; printf '%s\n' "$out" | sed 's/^/  /'
      failures=$((failures + 1)); return
    fi
  done
  echo "ok   $name: $(printf '%s\n' "$out" | head -1)"
}
# case NAME: a fresh copy of the clean tree in $work/NAME, printed.
case_tree() { make_tree "$work/$1"; echo "$work/$1"; }

t=$(case_tree clean)
expect_pass "clean tree" "$t"

t=$(case_tree upward)
printf '#include "top/t.h"\n' >>"$t/src/mid/sub/deep.cc"
expect_fail "include pointing up the stack" "$t" "src/mid/sub/deep.cc:3" '"top/t.h"' "above mid"

t=$(case_tree test_dep_in_library)
printf '#include "base/b.h"\n' >>"$t/src/top/t.cc"
expect_fail "TEST_DEPS layer included by a non-test file" "$t" "src/top/t.cc:4" "only in its TEST_DEPS"

t=$(case_tree test_undeclared)
printf '#include "base/b.h"\n#include "mid/m.h"\nint z = mid();\n' >"$t/src/base/b_test.cc"
expect_fail "test including an undeclared layer" "$t" "src/base/b_test.cc:2" "neither in its DEPS nor in its TEST_DEPS"

t=$(case_tree unused_dep)
sed -i 's/^quantlab_layer(top  DEPS ql_mid /quantlab_layer(top  DEPS ql_mid ql_extra /' "$t/CMakeLists.txt"
sed -i 's/^quantlab_layer(base DEPS Threads::Threads)$/&\nquantlab_layer(extra DEPS ql_base)/' "$t/CMakeLists.txt"
mkdir -p "$t/src/extra" && printf '#include "base/b.h"\n' >"$t/src/extra/e.cc"
expect_fail "declared but unused DEPS edge" "$t" "CMakeLists.txt:8: top DEPS ql_extra" "unused edge"

t=$(case_tree unused_test_dep)
sed -i '/#include "base\/b.h"/d; s/ + base()//' "$t/src/top/t_test.cc"
expect_fail "declared but unused TEST_DEPS edge" "$t" "top TEST_DEPS ql_base" "unused edge"

t=$(case_tree out_of_order)
sed -i 's/^quantlab_layer(base DEPS Threads::Threads)$/quantlab_layer(base DEPS Threads::Threads ql_top)/' "$t/CMakeLists.txt"
printf '#include "top/t.h"\n' >>"$t/src/base/b.cc"
expect_fail "DEPS entry declared after the layer" "$t" "base DEPS ql_top, which is not declared before base"

t=$(case_tree unknown_layer)
sed -i 's/ql_mid TEST_DEPS/ql_mid ql_nosuch TEST_DEPS/' "$t/CMakeLists.txt"
expect_fail "DEPS entry that is no layer" "$t" "top DEPS ql_nosuch, which is not a layer"

t=$(case_tree stray_folder)
mkdir -p "$t/src/loose" && printf '#include "base/b.h"\n' >"$t/src/loose/l.cc"
expect_fail "folder without a layer" "$t" "src/loose/: no quantlab_layer(loose"

if [ "$failures" -ne 0 ]; then
  echo "check_layers_test: $failures case(s) failed"
  exit 1
fi
echo "check_layers_test: all cases passed"
