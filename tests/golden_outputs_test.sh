#!/usr/bin/env bash
# Outputs stay byte-identical across refactors: runs scripts/golden-outputs.sh with the built binary
# and compares every digest with tests/data/golden/outputs.sha256 (written by the code before the seams
# refactor of issue 14). Usage: tests/golden_outputs_test.sh QUANTLAB_BINARY
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
bash "$ROOT/scripts/golden-outputs.sh" "$1" "$WORK/out" >"$WORK/actual.sha256"
if ! diff -u "$ROOT/tests/data/golden/outputs.sha256" "$WORK/actual.sha256"; then
  echo "golden outputs: FAILED (lines above: - expected, + this build)" >&2
  exit 1
fi
echo "golden outputs: $(wc -l <"$WORK/actual.sha256") files identical"
