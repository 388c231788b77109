#!/usr/bin/env bash
# Two quantlab builds' quantize, alternately, on one warm checkpoint (issue 18, item 3): per pair the
# memory read bandwidth probe, then both builds (order swapped every pair, `sync` before each run so no
# earlier output is still being written back), 6-bit g64, 2 threads; prints a Markdown table with the
# seconds, the new build's input GB/s as a fraction of the probe, and both peak RSS.
# Usage: benchmarks/quantize_compare.sh OLD_QUANTLAB NEW_QUANTLAB SRC_DIR [ROUNDS]
#   e.g. OLD = a clone's build/bin/quantlab at the previous commit, SRC = synth --like qwen3-30b-a3b --layers 4.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 OLD_QUANTLAB NEW_QUANTLAB SRC_DIR [ROUNDS]" >&2; exit 2; }
old=$1 new=$2 src=$3 rounds=${4:-5}
out=$(mktemp -d)/q6
trap 'rm -rf "$(dirname "$out")"' EXIT
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
input_gb=$(du -cb "$src"/*.safetensors | tail -1 | awk '{print $1 / 1e9}')
cat "$src"/*.safetensors > /dev/null  # warm the input
echo "| pair | probe GB/s | old s | new s | new input GB/s | new / probe | peak RSS old, new |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for pair in $(seq 1 "$rounds"); do
  bw=$("$new" machine --threads 2 --json | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["read_bandwidth_gb_per_s"],1))')
  order="old new"
  [ $((pair % 2)) = 0 ] && order="new old"
  for which in $order; do
    bin=$old
    [ "$which" = new ] && bin=$new
    rm -rf "$out"
    sync
    /usr/bin/time -f "%e %M" -o "$out.$which" "$bin" quantize "$src" "$out" --bits 6 --group-size 64 --threads 2 --quiet >/dev/null
  done
  read -r old_s old_kb < "$out.old"
  read -r new_s new_kb < "$out.new"
  python3 -c "
bw, o, n, gb = $bw, $old_s, $new_s, $input_gb
print(f'| $pair | {bw} | {o:.2f} | {n:.2f} | {gb / n:.2f} | {gb / n / bw:.3f} | {$old_kb / 1024:.0f} MB, {$new_kb / 1024:.0f} MB |')"
done
