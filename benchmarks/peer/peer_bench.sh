#!/usr/bin/env bash
# Same-run peer benchmark: quantlab against llama.cpp on the same weights, the same prompts, the same
# thread count, alternating run by run with the memory bandwidth probed before and after each run.
#
#   bash benchmarks/peer/peer_bench.sh [--work DIR] [--rounds 5] [--threads 2] [--like qwen3-0.6b]
#                                      [--layers N] [--decode 128] [--prefill 512] [--build build]
#
# llama.cpp is the prebuilt CPU backend of the npm package node-llama-cpp (pinned in package.json and
# package-lock.json here), installed into DIR/node on first use by install_llama_cpp.sh (the npm
# registry is the only download; nothing else is fetched). The weights:
# `quantlab synth --dtype float16` writes one checkpoint; quantlab runs it as it is and quantized to MLX
# 8-bit and 4-bit with groups of 64 (8.5 and 4.5 bits per weight); gguf_export writes the same float16
# weights as GGUF F16, Q8_0 and Q4_0 (8.5 and 4.5 bits per weight, ggml's reference rounding).
# quantlab runs three times at 8 and 4 bits: exact (the default), --compute int8 (system "quantlab-int8")
# and --compute bf16 (system "quantlab-bf16").
# Per width and round: decode (a 16-token prompt, then DECODE greedy tokens, EOS ignored) and prefill of
# PREFILL tokens, each a fresh process of either system, the order flipped every round. Results go to
# DIR/results.jsonl, one line per run; peer_summary.mjs prints medians, ranges, fractions of the
# roofline and the ratios. Needs the Release build with benchmarks (build/bin/quantlab, gguf_export).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=benchmarks/bench_lib.sh
source "$root/benchmarks/bench_lib.sh"
work=/tmp/quantlab-peer rounds=5 threads=2 like=qwen3-0.6b layers="" decode=128 prefill=512 build="$root/build"
while [ $# -gt 0 ]; do
  case "$1" in
    --work) work=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --like) like=$2; shift 2 ;;
    --layers) layers=$2; shift 2 ;;
    --decode) decode=$2; shift 2 ;;
    --prefill) prefill=$2; shift 2 ;;
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    *) echo "quantlab: error: peer_bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
quantlab="$build/bin/quantlab"
exporter="$build/bin/gguf_export"
for program in "$quantlab" "$exporter"; do
  [ -x "$program" ] || { echo "quantlab: error: $program missing: build with -DQUANTLAB_BUILD_BENCHMARKS=ON" >&2; exit 5; }
done
mkdir -p "$work"

bash "$here/install_llama_cpp.sh" "$work/node"

name="$like${layers:+-L$layers}"
models="$work/$name"
if [ ! -f "$models/f16/config.json" ]; then
  echo "peer: writing the $name checkpoint (float16) and its quantizations"
  "$quantlab" synth "$models/f16" --like "$like" ${layers:+--layers "$layers"} --dtype float16 --quiet --overwrite
  rm -rf "$models/q8" "$models/q4" "$models"/*.gguf
fi
for bits in 8 4; do
  [ -f "$models/q$bits/config.json" ] ||
    "$quantlab" quantize "$models/f16" "$models/q$bits" --bits "$bits" --group-size 64 --quiet >/dev/null
done
tokenizer="$root/tests/data/tokenizers/qwen3/tokenizer.json"
for type in f16 q8_0 q4_0; do
  [ -f "$models/$type.gguf" ] || "$exporter" "$models/f16" "$models/$type.gguf" --type "$type" --tokenizer "$tokenizer"
done

short=$(prompt_ids 16)
long=$(prompt_ids "$prefill")
quantlab_dir() { case $1 in f16) echo "$models/f16" ;; 8) echo "$models/q8" ;; 4) echo "$models/q4" ;; esac; }
gguf_file() { case $1 in f16) echo "$models/f16.gguf" ;; 8) echo "$models/q8_0.gguf" ;; 4) echo "$models/q4_0.gguf" ;; esac; }
tensor_bytes() { du -cb "$@" | tail -1 | cut -f1; }

run_llama() {  # width mode
  local prompt=$short count=$decode
  [ "$2" = prefill ] && prompt=$long && count=0
  (cd "$work/node" && node llama_cpp_run.mjs "$(gguf_file "$1")" "$2" "$prompt" "$threads" "$count")
}
run_quantlab() {  # width mode [compute]: the same fields as llama_cpp_run.mjs prints
  local dir compute=${3:-exact}; dir=$(quantlab_dir "$1")
  if [ "$2" = decode ]; then
    "$quantlab" generate "$dir" --ids "$short" --max-tokens "$decode" --ignore-eos --temperature 0 \
      --threads "$threads" --compute "$compute" --json | node -e '
        const s = JSON.parse(require("fs").readFileSync(0)).stats;
        console.log(JSON.stringify({load_seconds: s.load_seconds, first_token_seconds: s.first_token_seconds,
          tokens: s.decode.tokens + 1, seconds: s.decode.seconds, tokens_per_second: s.decode.tokens_per_second,
          median_token_seconds: s.decode.median_token_seconds, kernel_target: s.kernel_target}));'
  else
    "$quantlab" generate "$dir" --ids "$long" --max-tokens 1 --ignore-eos --temperature 0 \
      --threads "$threads" --compute "$compute" --json | node -e '
        const s = JSON.parse(require("fs").readFileSync(0)).stats;
        console.log(JSON.stringify({load_seconds: s.load_seconds, tokens: s.prefill.tokens,
          seconds: s.prefill.seconds, tokens_per_second: s.prefill.tokens_per_second, kernel_target: s.kernel_target}));'
  fi
}

# Bytes a decode step reads: every matrix once (the tied embedding as the output head), the same for
# both systems (MLX g64 and Q8_0/Q4_0 both store 8.5 / 4.5 bits per weight; the GGUF file's size would
# add its vocabulary). The safetensors files' size, headers included (< 0.1 %).
results="$work/results.jsonl"
: > "$results"
cpu=$(cpu_name)
echo "peer: $cpu, $threads threads, $rounds rounds; results in $results"
for round in $(seq 1 "$rounds"); do
  for width in f16 8 4; do
    for mode in decode prefill; do
      # The rounded paths (--compute int8, bf16) only where there are quantized matrices; the order rotates.
      systems=(llama.cpp quantlab)
      [ "$width" != f16 ] && systems+=(quantlab-int8 quantlab-bf16)
      order=()
      for i in "${!systems[@]}"; do order+=("${systems[$(((i + round) % ${#systems[@]}))]}"); done
      for system in "${order[@]}"; do
        before=$(probe_bandwidth "$quantlab" "$threads")
        case $system in
          quantlab) line=$(run_quantlab "$width" "$mode") ;;
          quantlab-int8) line=$(run_quantlab "$width" "$mode" int8) ;;
          quantlab-bf16) line=$(run_quantlab "$width" "$mode" bf16) ;;
          *) line=$(run_llama "$width" "$mode") ;;
        esac
        after=$(probe_bandwidth "$quantlab" "$threads")
        bytes=$(tensor_bytes "$(quantlab_dir "$width")"/*.safetensors)
        echo "{\"round\":$round,\"width\":\"$width\",\"mode\":\"$mode\",\"system\":\"$system\",\"cpu\":\"$cpu\",\"weight_bytes\":$bytes,\"bandwidth_before\":$before,\"bandwidth_after\":$after,\"run\":$line}" >> "$results"
        printf 'round %s %-4s %-8s %-10s %s\n' "$round" "$width" "$mode" "$system" \
          "$(echo "$line" | node -e 'const r = JSON.parse(require("fs").readFileSync(0)); console.log(r.tokens_per_second.toFixed(1) + " tok/s")')"
      done
    done
  done
done
node "$here/peer_summary.mjs" "$results"
