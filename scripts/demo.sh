#!/usr/bin/env bash
# The main job on the bundled model: installs dependencies, builds, then runs the experiment the project
# exists for on the fused tool-calling model (tests/data/tool-calling/dense-fused-strong-f16): what does
# each bit width cost (plan), quantize to 8 and 6 bits, benchmark both (accuracy, size, memory, speed,
# load time) on the seed5 and dev40 suites, and give a verdict with its reasons and the next step.
# Outputs go to out/ (RESULTS-*.json, REPORT-*.md).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DQUANTLAB_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build -j "$JOBS" --target quantlab
QL=build/bin/quantlab
DATA=tests/data/tool-calling
MODEL=$DATA/dense-fused-strong-f16
mkdir -p out

echo "== Plan: predicted size and speed per bit width (no weights read)"
"$QL" plan "$MODEL" --bits 4,5,6,7,8 --group-size 64,128
echo
for bits in 8 6; do
  echo "== Quantize to ${bits} bits, group 64"
  "$QL" quantize "$MODEL" "out/fused-${bits}bit" --bits "$bits" --group-size 64 --overwrite --quiet
done
for suite in seed5 dev40; do
  echo
  echo "== Bench on $suite"
  "$QL" bench --model q8=out/fused-8bit --model q6=out/fused-6bit --baseline q8 \
    --suite "$DATA/queries/$suite.jsonl" --tools "$DATA/tools.json" --max-tokens 48 \
    --source "$MODEL" --out "out/RESULTS-$suite.json" --report "out/REPORT-$suite.md"
done
echo
echo "Reports: out/REPORT-seed5.md, out/REPORT-dev40.md (JSON: out/RESULTS-*.json, schema docs/bench-schema.md)"
