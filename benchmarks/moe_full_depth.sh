#!/usr/bin/env bash
# The full-depth Qwen3-30B-A3B shape (48 layers x 128 experts, 8 active) at 4 bits on this machine:
# write it straight into MLX's 4-bit layout (`synth --bits 4`: 17 GB; the 61 GB bfloat16 checkpoint is
# never written), then measure load time, resident memory, decode (64 tokens after a 16-token prompt,
# the router's own choices) against the roofline of the bytes one token actually reads (the k active
# experts, attention, router, the output head), how many distinct experts the 64 tokens touched per
# layer, and a 512-token prefill. Bandwidth probed before and after each run. Every round runs each
# compute path (docs/compute-paths.md; default both, exact first on odd rounds).
#   bash benchmarks/moe_full_depth.sh [--work DIR] [--rounds 3] [--threads 2] [--compute exact,int8] [--build build]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=benchmarks/bench_lib.sh
source "$root/benchmarks/bench_lib.sh"
work=/tmp/quantlab-moe-full rounds=3 threads=2 computes="exact,int8" build="$root/build"
while [ $# -gt 0 ]; do
  case "$1" in
    --work) work=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --compute) computes=$2; shift 2 ;;
    --build) build=$(cd "$2" && pwd); shift 2 ;;
    *) echo "quantlab: error: moe_full_depth.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
quantlab="$build/bin/quantlab"
model="$work/qwen3-30b-a3b-4bit"
mkdir -p "$work"
if [ ! -f "$model/config.json" ]; then
  echo "moe: writing $model (synth --bits 4 --group-size 64)"
  "$quantlab" synth "$model" --like qwen3-30b-a3b --bits 4 --group-size 64 --threads "$threads" --json --quiet
fi
per_token=$("$quantlab" plan --like qwen3-30b-a3b --bits 4 --group-size 64 --bandwidth 1 --json |
            node -e 'const j = JSON.parse(require("fs").readFileSync(0)); const s = JSON.stringify(j);
                     console.log(s.match(/"bytes_per_token":(\d+)/)[1]);')
echo "moe: $(cpu_name), $threads threads;" \
     "weights $(du -sb "$model" | cut -f1) bytes on disk, $per_token bytes read per decoded token"
echo "moe: warming the page cache"; cat "$model"/*.safetensors > /dev/null
for round in $(seq 1 "$rounds"); do
 order=${computes//,/ }
 [ $((round % 2)) -eq 0 ] && order=$(echo "$order" | tr ' ' '\n' | tac | tr '\n' ' ')
 for compute in $order; do
  before=$(probe_bandwidth "$quantlab" "$threads")
  decode=$("$quantlab" generate "$model" --ids "$(prompt_ids 16)" --max-tokens 64 --ignore-eos --temperature 0 --threads "$threads" --compute "$compute" --json)
  middle=$(probe_bandwidth "$quantlab" "$threads")
  prefill=$("$quantlab" generate "$model" --ids "$(prompt_ids 512)" --max-tokens 1 --ignore-eos --temperature 0 --threads "$threads" --compute "$compute" --json)
  after=$(probe_bandwidth "$quantlab" "$threads")
  node -e '
    const [d, p] = [JSON.parse(process.argv[1]), JSON.parse(process.argv[2])];
    const [before, middle, after, perToken] = process.argv.slice(3).map(Number);
    const bw = Math.min(before, middle), stallFree = 1 / d.stats.decode.median_token_seconds;
    const r = d.routing.distinct_experts_per_layer;
    console.log(`round ${process.argv[7]} ${process.argv[8]}: load ${d.stats.load_seconds.toFixed(2)} s; resident weights ` +
      `${(d.stats.memory_bytes.weights_resident / 1e9).toFixed(2)} GB; decode ${d.stats.decode.tokens_per_second.toFixed(2)} tok/s ` +
      `(stall-free ${stallFree.toFixed(2)}), roofline ${(bw * 1e9 / perToken).toFixed(2)} tok/s at ${bw.toFixed(1)} GB/s ` +
      `= ${(stallFree * perToken / (bw * 1e9)).toFixed(2)} of it; distinct experts per layer over ` +
      `${d.routing.decode_tokens} tokens: mean ${r.mean.toFixed(1)} (min ${r.min}, max ${r.max}) of ${d.routing.experts}; ` +
      `prefill ${p.stats.prefill.tokens_per_second.toFixed(1)} tok/s (${Math.min(middle, after).toFixed(1)} GB/s)`);
  ' "$decode" "$prefill" "$before" "$middle" "$after" "$per_token" "$round" "$compute"
 done
done
