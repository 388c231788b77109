#!/usr/bin/env bash
# How the default of `--vocab-prior` was chosen (docs/rounding.md, "The vocabulary prior"), rerunnable:
# two-fold cross-validation inside the *calibration* half of dev40 (its queries 1–10 and 11–20; the
# held-out half that docs/rounding.md's tables score on is never read here). For each fold, each bundled
# fine-tune, gptq and delta at 2 and 3 bits and each prior weight: calibrate on one fold, round, and
# measure KL(fused ‖ quantized) over the reply on the other fold (`quantlab divergence`, 16 tokens).
# Prints one row per weight: the geometric mean over the 24 cases of KL(weight) / KL(0), and in how many
# of them the weight beat 0.
#   scripts/vocab-prior-cv.sh [BUILD_DIR] [WORK_DIR]     (defaults: build, a temporary directory)
# Needs jq. About two minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/rounding-tables.sh
source scripts/lib/rounding-tables.sh "$@"
WEIGHTS=(0 0.03 0.1 0.2 0.4 0.7 1)
head -10 "$WORK/calibration.jsonl" > "$WORK/fold-a.jsonl"
tail -n +11 "$WORK/calibration.jsonl" > "$WORK/fold-b.jsonl"
MODELS=("dense-strong $DATA/dense-fused-strong-f16 $DATA/dense-base-f16"
        "dense-gentle $DATA/dense-fused-gentle-f16 $DATA/dense-base-f16"
        "moe-strong $DATA/moe-fused-strong-f16 $DATA/moe-base-f16")
: > "$WORK/cv.txt"
for entry in "${MODELS[@]}"; do
  read -r name fused base <<< "$entry"
  for fold in a b; do
    other=b; [ $fold = b ] && other=a
    stats="$WORK/$name-$fold.stats.safetensors"
    "$Q" calibrate "$fused" --suite "$WORK/fold-$fold.jsonl" --tools $TOOLS --max-tokens 32 --second-moments \
      --quiet --out "$stats" > /dev/null
    models=()
    for bits in 2 3; do
      for method in gptq delta; do
        extra=(); [ $method = delta ] && extra=(--base "$base")
        for w in "${WEIGHTS[@]}"; do
          out="$WORK/$name-$fold-$method-$bits-$w"
          "$Q" quantize "$fused" "$out" --bits $bits --method $method "${extra[@]}" --stats "$stats" --vocab-prior $w \
            --quiet --overwrite > /dev/null
          models+=(--model "$bits/$method/$w=$out")
        done
      done
    done
    "$Q" divergence "$fused" --base "$base" --suite "$WORK/fold-$other.jsonl" --tools $TOOLS --max-tokens 16 --json \
      "${models[@]}" | jq -r --arg case "$name/$fold" '.models[] | "\($case)/\(.name | split("/")[0:2] | join("/")) \(.name | split("/")[2]) \(.kl_reply)"' \
      >> "$WORK/cv.txt"
  done
done
# cv.txt: CASE WEIGHT KL. Against weight 0 of the same case.
echo "| vocab prior | geometric mean KL / KL(0) | cases better than 0 |"
echo "|---:|---:|---:|"
awk '{ kl[$1" "$2] = $3; if (!($2 in seen)) { seen[$2] = 1; order[++n] = $2 } cases[$1] = 1 }
     END { for (i = 1; i <= n; ++i) { w = order[i]; s = 0; c = 0; better = 0
             for (k in cases) { r = kl[k" "w] / kl[k" 0"]; s += log(r); c++; if (r < 1) better++ }
             printf "| %s | %.3f | %d of %d |\n", w, exp(s / c), better, c } }' "$WORK/cv.txt"
