#!/usr/bin/env bash
# Quantizer throughput and memory (issue 2): synth Qwen3-30B-A3B-shaped checkpoints with 4 and 8 layers in
# float16, quantize each to 6-bit g64 with a warm page cache, and report input GB/s, peak RSS, and this
# machine's memory read bandwidth measured in the same run (plus the scalar reference path as a second
# yardstick). Usage: benchmarks/quantize_bench.sh [WORKDIR] (default /tmp/quantlab-bench; needs ~25 GB free).
set -euo pipefail
cd "$(dirname "$0")/.."
QL=${QL:-build/bin/quantlab}
WORK=${1:-/tmp/quantlab-bench}
THREADS=${THREADS:-2}
mkdir -p "$WORK"
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)"; exit 1; }

bw=$("$QL" machine --threads "$THREADS" --json | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["read_bandwidth_gb_per_s"],2))')
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), threads $THREADS, read bandwidth $bw GB/s"
echo
echo "| layers | kernel | input GB | seconds | input GB/s | peak RSS MB | GB/s / bandwidth |"
echo "|---:|---|---:|---:|---:|---:|---:|"
for layers in 4 8; do
  src="$WORK/a3b-$layers-f16"
  [ -d "$src" ] || "$QL" synth "$src" --like qwen3-30b-a3b --layers "$layers" --dtype float16 --threads "$THREADS" >/dev/null
  kernels="simd"
  [ "$layers" = 4 ] && kernels="simd scalar"
  for kernel in $kernels; do
    sync; cat "$src"/*.safetensors >/dev/null  # flush earlier output (no writeback during the run), warm the input
    out="$WORK/a3b-$layers-q6"
    /usr/bin/time -f "%M" -o "$WORK/rss" "$QL" quantize "$src" "$out" --bits 6 --group-size 64 --overwrite \
      --threads "$THREADS" --kernel "$kernel" --json --quiet > "$WORK/q.json"
    python3 - "$WORK/q.json" "$WORK/rss" "$layers" "$kernel" "$bw" <<'PY'
import json, sys
q = json.load(open(sys.argv[1])); rss_kb = int(open(sys.argv[2]).read().split()[-1])
gbps = q["input_gb_per_s"]; bw = float(sys.argv[5])
print(f"| {sys.argv[3]} | {sys.argv[4]} | {q['input_bytes']/1e9:.2f} | {q['seconds']:.2f} | {gbps:.2f} | {rss_kb/1024:.0f} | {gbps/bw:.3f} |")
PY
    rm -rf "$out"
  done
done
