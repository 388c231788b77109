#!/usr/bin/env bash
# Budgets with the rounding method as an axis (docs/rounding.md, "Budgets with methods"; issue 21),
# rerunnable: every bundled fine-tune allocated at 2.75, 3 and 3.5 bits per weight (the smallest the
# bundled models can be stored in is ~2.51) from candidates of
#   rtn            round-to-nearest only, errors under E[x²] (the mixed-precision issue's allocation),
#   rtn,gptq       each width rounded to nearest and with GPTQ, errors under E[x xᵀ],
#   rtn,gptq,delta the same with delta too (objective output, and objective both),
# measured gains on the calibration half in every case; calibrated on the first half of dev40 and scored
# on the second half (never seen by the calibration) and on seed5 with `quantlab divergence`. As
# `quantize --target-bpw --method` does, the methods' candidates are rounded on every other calibration
# query and measured on the rest (--held-out-stats); the models are rounded on all of them. Prints a
# Markdown table.
#   scripts/budget-methods-table.sh [BUILD_DIR] [WORK_DIR]     (defaults: build, a temporary directory)
# Needs jq (Debian's package). About three minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/rounding-tables.sh
source scripts/lib/rounding-tables.sh "$@"
awk 'NR % 2 == 1' "$WORK/calibration.jsonl" > "$WORK/fit.jsonl"
awk 'NR % 2 == 0' "$WORK/calibration.jsonl" > "$WORK/measure.jsonl"

# fine-tune name, fused dir, base dir
MODELS=("dense-strong $DATA/dense-fused-strong-f16 $DATA/dense-base-f16"
        "dense-gentle $DATA/dense-fused-gentle-f16 $DATA/dense-base-f16"
        "moe-strong $DATA/moe-fused-strong-f16 $DATA/moe-base-f16")
# label, sensitivity file, allocate flags
CHOICES=("rtn diagonal --objective output"
         "rtn,gptq methods --method rtn,gptq --objective output"
         "rtn,gptq,delta methods --objective output"
         "rtn,gptq,delta/both methods --objective both")

echo "| fine-tune | budget (bpw) | candidates | bpw | gptq/delta modules | suite | KL first | KL reply | retained (reply) | flipped | correct | float correct |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for entry in "${MODELS[@]}"; do
  read -r name fused base <<< "$entry"
  for part in calibration fit measure; do
    "$Q" calibrate "$fused" --suite "$WORK/$part.jsonl" --tools $TOOLS --max-tokens 32 --second-moments \
      --quiet --out "$WORK/$name.$part.safetensors" > /dev/null
  done
  stats="$WORK/$name.calibration.safetensors"
  gains=(--suite "$WORK/calibration.jsonl" --tools $TOOLS --base "$base" --quiet)
  "$Q" sensitivity "$fused" --stats "$stats" "${gains[@]}" --out "$WORK/$name.diagonal.json" > /dev/null
  "$Q" sensitivity "$fused" --stats "$WORK/$name.fit.safetensors" --held-out-stats "$WORK/$name.measure.safetensors" \
    "${gains[@]}" --method rtn,gptq,delta --out "$WORK/$name.methods.json" > /dev/null
  models=()
  for budget in 2.75 3 3.5; do
    for choice in "${CHOICES[@]}"; do
      read -r label sens flags <<< "$choice"
      dir="$WORK/$name-$budget-${label//[,\/]/-}"
      # shellcheck disable=SC2086
      "$Q" allocate "$WORK/$name.$sens.json" --target-bpw $budget $flags --out "$dir.plan.json" > /dev/null
      # The statistics (and the base) only where the plan has modules rounded with gptq (or delta).
      rounding=()
      jq -e '[.modules[] | objects | select(.method == "gptq" or .method == "delta")] | length > 0' \
        "$dir.plan.json" > /dev/null && rounding=(--stats "$stats")
      jq -e '[.modules[] | objects | select(.method == "delta")] | length > 0' "$dir.plan.json" > /dev/null &&
        rounding+=(--base "$base")
      "$Q" quantize "$fused" "$dir" --plan "$dir.plan.json" "${rounding[@]}" --quiet --overwrite > /dev/null
      bpw=$(jq -r '.bits_per_weight * 1000 | round / 1000' "$dir.plan.json")
      calibrated=$(jq '[.modules[] | objects | select(.method == "gptq" or .method == "delta")] | length' "$dir.plan.json")
      models+=(--model "$budget $label $bpw $calibrated=$dir")
    done
  done
  divergence_rows "$name" "$fused" "$base" "$WORK/held-out.jsonl" "${models[@]}"
done
