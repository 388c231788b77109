#!/usr/bin/env bash
# Quantizing a checkpoint larger than RAM from a cold page cache (issue 18, item 3): the disk is the
# bound, so the disk's own read speed is measured beside it. Writes a bfloat16 Qwen3-30B-A3B-shaped
# checkpoint of LAYERS layers (22: 28.7 GB, beyond this machine's 24 GiB), drops the page cache (root:
# /proc/sys/vm/drop_caches), reads the last shard alone with dd (O_DIRECT) to measure the disk, drops the cache
# again and quantizes to 6-bit g64; peak RSS from /usr/bin/time. Needs ~45 GB free.
#   bash benchmarks/quantize_cold.sh [WORKDIR] [LAYERS]      (default /tmp/quantlab-cold, 22)
set -euo pipefail
cd "$(dirname "$0")/.."
QL=${QL:-build/bin/quantlab}
WORK=${1:-/tmp/quantlab-cold}
LAYERS=${2:-22}
THREADS=${THREADS:-2}
[ -w /proc/sys/vm/drop_caches ] || { echo "quantlab: error: dropping the page cache needs root" >&2; exit 5; }
src="$WORK/a3b-$LAYERS-bf16"
mkdir -p "$WORK"
[ -f "$src/config.json" ] || "$QL" synth "$src" --like qwen3-30b-a3b --layers "$LAYERS" --threads "$THREADS" --quiet >/dev/null
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
input=$(du -cb "$src"/*.safetensors | tail -1 | cut -f1)
ram=$(awk '/MemTotal/ { printf "%.0f", $2 * 1024 }' /proc/meminfo)
last=$(ls "$src"/*.safetensors | tail -1)
drop
disk=$(dd if="$last" of=/dev/null bs=16M iflag=direct 2>&1 | awk '/copied/ { print $(NF-1), $NF }')
drop
bw=$("$QL" machine --threads "$THREADS" --json | awk -F': ' '/read_bandwidth/ { gsub(/[ ,]/, "", $2); print $2 }')
rm -rf "$WORK/q6"
/usr/bin/time -f "%e %M" -o "$WORK/time" "$QL" quantize "$src" "$WORK/q6" --bits 6 --group-size 64 --threads "$THREADS" --quiet >/dev/null
read -r seconds rss_kb < "$WORK/time"
drop
disk_after=$(dd if="$last" of=/dev/null bs=16M iflag=direct 2>&1 | awk '/copied/ { print $(NF-1), $NF }')
echo "cpu: $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $THREADS threads; RAM $((ram / 1000000)) MB"
echo "input: $((input / 1000000)) MB ($LAYERS layers, bfloat16), cold page cache"
echo "disk read (dd, 16 MiB blocks, O_DIRECT): before $disk, after $disk_after; memory read bandwidth $bw GB/s"
awk -v s="$seconds" -v b="$input" -v r="$rss_kb" 'BEGIN { printf "quantize 6-bit g64: %.1f s, %.2f GB/s of input, peak RSS %.1f MB\n", s, b / s / 1e9, r / 1024 }'
rm -rf "$WORK/q6"
