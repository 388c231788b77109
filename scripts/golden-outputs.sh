#!/usr/bin/env bash
# Prints a digest of every output quantlab writes for the bundled fixtures: quantize at 2-8 bits (and
# group sizes 32/128, the MoE model), dequantize, fuse into float and quantized bases, logits, and the
# bench results without timings. Refactors must leave this list unchanged: tests/golden_outputs_test.sh
# compares it with tests/data/golden/outputs.sha256, which was written by the code before the seams
# refactor (issue 14). Regenerate that file only when an output is meant to change, and say why.
# Usage: scripts/golden-outputs.sh QUANTLAB_BINARY WORKDIR   (WORKDIR is created; ~40 MB)
set -euo pipefail
QL=$(realpath "$1")
WORK=$2
cd "$(dirname "$0")/.."
F=tests/data/tool-calling
mkdir -p "$WORK"
run() { "$QL" "$@" >/dev/null 2>"$WORK/last.err" || { cat "$WORK/last.err" >&2; exit 1; }; }

for bits in 2 3 4 5 6 7 8; do run quantize "$F/dense-fused-strong-f16" "$WORK/q$bits" --bits "$bits" --quiet; done
run quantize "$F/dense-fused-strong-f16" "$WORK/q4g32" --bits 4 --group-size 32 --quiet
run quantize "$F/dense-fused-strong-f16" "$WORK/q3g128" --bits 3 --group-size 128 --quiet
run quantize "$F/moe-fused-strong-f16" "$WORK/moe-q4" --bits 4 --quiet
run quantize "$F/moe-fused-strong-f16" "$WORK/moe-q6" --bits 6 --dtype bfloat16 --quiet
run dequantize "$WORK/q4" "$WORK/dq4"
run fuse "$F/dense-base-f16" "$F/dense-lora-strong" "$WORK/fused"
run quantize "$F/dense-base-f16" "$WORK/base-q4" --bits 4 --quiet
run fuse "$WORK/base-q4" "$F/dense-lora-strong" "$WORK/fused-q4"
run fuse "$F/moe-base-f16" "$F/moe-lora-strong" "$WORK/moe-fused"
run logits "$WORK/q4" --ids 1,2,3,4,5,6,7,8 --out "$WORK/logits-q4.safetensors"
run logits "$WORK/moe-q4" --ids 1,2,3,4,5,6,7,8 --out "$WORK/logits-moe-q4.safetensors"
run bench --model q8="$WORK/q8" --model q6="$WORK/q6" --model moe4="$WORK/moe-q4" \
  --suite "$F/queries/seed5.jsonl" --no-cold --bandwidth 30 --threads 2 --out "$WORK/bench.json"
# Bench results without timings, memory probes and paths: the keys whose values depend on the model's
# arithmetic and files only.
KEYS='id|reply|decision|correct|decision_correct|tool_correct|called_tool|arguments_correct|expected|expected_tool'
KEYS+='|stop_reason|prompt_tokens|generated_tokens|first_token_margin|best_other_token|total|pct|disk_bytes'
KEYS+='|tensor_bytes|params|bits|group_size|weights_mapped_bytes|weights_copied_bytes|kv_cache_bytes|scratch_bytes'
grep -E "^ *\"($KEYS)\":" "$WORK/bench.json" >"$WORK/bench-stable.txt"
rm -f "$WORK/bench.json" "$WORK/last.err"

(cd "$WORK" && find . -type f | LC_ALL=C sort | xargs sha256sum)
