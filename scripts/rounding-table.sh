#!/usr/bin/env bash
# The rounding comparison of docs/rounding.md (issue 21), rerunnable: every bundled fine-tune quantized
# at 2, 3 and 4 bits with rtn, gptq and delta (and gptq/delta with sequential statistics), calibrated on the first half of dev40 and scored on the
# second half (never seen by the calibration) and on seed5 with `quantlab divergence`: KL(fused ‖ model)
# at the first reply token and over the fused model's reply (teacher-forced), retention of the
# fine-tune's change, decisions flipped and correct. Prints a Markdown table.
#   scripts/rounding-table.sh [BUILD_DIR] [WORK_DIR]     (defaults: build, a temporary directory)
# Needs jq (Debian's package). About four minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/rounding-tables.sh
source scripts/lib/rounding-tables.sh "$@"

# fine-tune name, fused dir, base dir
MODELS=("dense-strong $DATA/dense-fused-strong-f16 $DATA/dense-base-f16"
        "dense-gentle $DATA/dense-fused-gentle-f16 $DATA/dense-base-f16"
        "moe-strong $DATA/moe-fused-strong-f16 $DATA/moe-base-f16")

echo "| fine-tune | bits | method | suite | KL first | KL reply | retained (reply) | flipped | correct | float correct |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for entry in "${MODELS[@]}"; do
  read -r name fused base <<< "$entry"
  stats="$WORK/$name.stats.safetensors"
  "$Q" calibrate "$fused" --suite "$WORK/calibration.jsonl" --tools $TOOLS --max-tokens 32 --second-moments \
    --quiet --out "$stats" > /dev/null
  models=()
  for bits in 2 3 4; do
    "$Q" quantize "$fused" "$WORK/$name-rtn-$bits" --bits $bits --quiet --overwrite > /dev/null
    "$Q" quantize "$fused" "$WORK/$name-gptq-$bits" --bits $bits --method gptq --stats "$stats" --quiet \
      --overwrite > /dev/null
    "$Q" quantize "$fused" "$WORK/$name-delta-$bits" --bits $bits --method delta --base "$base" --stats "$stats" \
      --quiet --overwrite > /dev/null
    # Sequential: each module's statistics recorded with the modules before it already rounded.
    "$Q" quantize "$fused" "$WORK/$name-gptq+seq-$bits" --bits $bits --method gptq --sequential \
      --calibration "$WORK/calibration.jsonl" --tools $TOOLS --calibration-tokens 32 --quiet --overwrite > /dev/null
    "$Q" quantize "$fused" "$WORK/$name-delta+seq-$bits" --bits $bits --method delta --base "$base" --sequential \
      --calibration "$WORK/calibration.jsonl" --tools $TOOLS --calibration-tokens 32 --quiet --overwrite > /dev/null
    for method in rtn gptq delta gptq+seq delta+seq; do models+=(--model "$bits $method=$WORK/$name-$method-$bits"); done
  done
  divergence_rows "$name" "$fused" "$base" "$WORK/held-out.jsonl" "${models[@]}"
done
