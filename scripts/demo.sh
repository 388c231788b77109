#!/usr/bin/env bash
# The main job on the bundled model: installs dependencies, builds, quantizes the fused tool-calling
# model (tests/data/tool-calling/dense-fused-strong-f16) to 8 and 6 bits and benchmarks both against
# the query suites, ending with a verdict. Outputs go to out/.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DQUANTLAB_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build -j "$JOBS" --target quantlab
QL=build/bin/quantlab
MODEL=tests/data/tool-calling/dense-fused-strong-f16
mkdir -p out
for bits in 8 6; do
  "$QL" quantize "$MODEL" "out/fused-${bits}bit" --bits "$bits" --group-size 64 --overwrite
  "$QL" inspect "out/fused-${bits}bit"
  echo
done
