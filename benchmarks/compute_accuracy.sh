#!/usr/bin/env bash
# What the int8 compute path costs in accuracy on the bundled fused models (issue 18): each model is
# quantized at several widths, and every quantized model is compared with itself run exact —
# KL(exact ‖ int8) teacher-forced on the exact run's replies, top-1 agreement over the reply positions,
# and decisions (tool call or answer) that flip — on dev40 and seed5. A second table puts both paths
# against the fused float model, so the int8 rounding can be read beside the quantization's own cost.
#
#   benchmarks/compute_accuracy.sh [BUILD_DIR] [OUT_DIR]      (~1 minute on 2 cores)
# Writes OUT_DIR/compute-accuracy.jsonl (one line per model, width, suite and comparison) and prints a
# Markdown table (docs/compute-paths.md has the last one).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
out=${2:-$(mktemp -d)}
quantlab=$build/bin/quantlab
data=$root/tests/data/tool-calling
mkdir -p "$out"
results=$out/compute-accuracy.jsonl
: > "$results"

models=("dense-fused-strong-f16:dense-base-f16" "dense-fused-gentle-f16:dense-base-f16" "moe-fused-strong-f16:moe-base-f16")
echo "| model | bits | suite | KL(exact ‖ int8) reply | top-1 agreement | flips exact→int8 | KL(fused ‖ exact) | KL(fused ‖ int8) | flips vs fused: exact / int8 |"
echo "|---|---|---|---|---|---|---|---|---|"
for pair in "${models[@]}"; do
  fused=${pair%%:*} base=${pair##*:}
  for bits in 8 6 4; do
    q=$out/$fused-q$bits
    "$quantlab" quantize "$data/$fused" "$q" --bits "$bits" --group-size 64 --overwrite > /dev/null
    for suite in dev40 seed5; do
      self=$("$quantlab" divergence "$q" --base "$data/$base" --suite "$data/queries/$suite.jsonl" \
        --tools "$data/tools.json" --model int8="$q" --model-compute int8=int8 --json)
      float=$("$quantlab" divergence "$data/$fused" --base "$data/$base" --suite "$data/queries/$suite.jsonl" \
        --tools "$data/tools.json" --model exact="$q" --model int8="$q" --model-compute int8=int8 --json)
      jq -c --arg m "$fused" --argjson b "$bits" --arg s "$suite" --argjson f "$float" \
        '{model: $m, bits: $b, suite: $s, queries, int8_vs_exact: .models[0], vs_fused: $f.models}' <<< "$self" >> "$results"
      jq -r --arg m "$fused" --argjson b "$bits" --arg s "$suite" --argjson f "$float" \
        '"| \($m) | \($b) | \($s) (\(.queries)) | \(.models[0].kl_reply | . * 1e6 | round / 1e6) | \(.models[0].top1_agreement * 1000 | round / 10) % | \(.models[0].flipped) | \($f.models[0].kl_reply | . * 1e5 | round / 1e5) | \($f.models[1].kl_reply | . * 1e5 | round / 1e5) | \($f.models[0].flipped) / \($f.models[1].flipped) |"' <<< "$self"
    done
    rm -rf "$q"
  done
done
echo
echo "int8 kernel: $("$quantlab" generate "$data/dense-fused-strong-f16" --ids 1,2 --max-tokens 1 --compute int8 --json | jq -r .compute_kernel);" \
  "CPU: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo); results: $results"
