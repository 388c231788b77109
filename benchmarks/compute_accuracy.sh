#!/usr/bin/env bash
# What the int8 and bf16 compute paths cost in accuracy on the bundled fused models (issue 18): each
# model is quantized at several widths, and every quantized model is compared with itself run exact —
# KL(exact ‖ path) teacher-forced on the exact run's replies, top-1 agreement over the reply positions,
# and decisions (tool call or answer) that flip — on dev40 and seed5. The same rows put every path
# against the fused float model, so a path's rounding can be read beside the quantization's own cost.
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
paths=(int8 bf16)
named=() computes=()
for p in "${paths[@]}"; do named+=(--model "$p=PLACEHOLDER"); computes+=(--model-compute "$p=$p"); done
echo "| model | bits | suite | path | KL(exact ‖ path) reply | top-1 agreement | flips exact→path | KL(fused ‖ exact) | KL(fused ‖ path) | flips vs fused: exact / path |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for pair in "${models[@]}"; do
  fused=${pair%%:*} base=${pair##*:}
  for bits in 8 6 4; do
    q=$out/$fused-q$bits
    "$quantlab" quantize "$data/$fused" "$q" --bits "$bits" --group-size 64 --overwrite > /dev/null
    for suite in dev40 seed5; do
      common=(--base "$data/$base" --suite "$data/queries/$suite.jsonl" --tools "$data/tools.json")
      self=$("$quantlab" divergence "$q" "${common[@]}" "${named[@]/PLACEHOLDER/$q}" "${computes[@]}" --json)
      float=$("$quantlab" divergence "$data/$fused" "${common[@]}" --model exact="$q" "${named[@]/PLACEHOLDER/$q}" \
        "${computes[@]}" --json)
      jq -c --arg m "$fused" --argjson b "$bits" --arg s "$suite" --argjson f "$float" \
        '{model: $m, bits: $b, suite: $s, queries, paths_vs_exact: .models, vs_fused: $f.models}' <<< "$self" >> "$results"
      for i in "${!paths[@]}"; do
        jq -r --arg m "$fused" --argjson b "$bits" --arg s "$suite" --argjson f "$float" --argjson i "$i" \
          '.models[$i] as $p | $f.models[0] as $e | $f.models[$i + 1] as $fp |
           "| \($m) | \($b) | \($s) (\(.queries)) | \($p.name) | \($p.kl_reply | . * 1e6 | round / 1e6) | \($p.top1_agreement * 1000 | round / 10) % | \($p.flipped) | \($e.kl_reply | . * 1e5 | round / 1e5) | \($fp.kl_reply | . * 1e5 | round / 1e5) | \($e.flipped) / \($fp.flipped) |"' <<< "$self"
      done
    done
    rm -rf "$q"
  done
done
echo
kernel_of() { "$quantlab" generate "$data/dense-fused-strong-f16" --ids 1,2 --max-tokens 1 --compute "$1" --json | jq -r .compute_kernel; }
echo "int8 kernel: $(kernel_of int8); bf16 kernel: $(kernel_of bf16);" \
  "CPU: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo); results: $results"
