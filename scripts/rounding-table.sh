#!/usr/bin/env bash
# The rounding comparison of docs/rounding.md (issue 21), rerunnable: every bundled fine-tune quantized
# at 2, 3 and 4 bits with rtn, gptq and delta (and gptq/delta with sequential statistics), calibrated on
# one half of dev40 and scored with `quantlab divergence` on the other half (never seen by the
# calibration): KL(fused ‖ model) at the first reply token and over the fused model's reply
# (teacher-forced), retention of the fine-tune's change, decisions flipped and correct. Both directions:
# calibrated on the first half and scored on the second (with seed5 too), then the other way round, so
# every dev40 query is scored once as a held-out query. Prints two Markdown tables: the first direction
# row by row, and per fine-tune, width and method the reply KL and retention of each direction and
# their mean.
#   scripts/rounding-table.sh [BUILD_DIR] [WORK_DIR]     (defaults: build, a temporary directory)
# Needs jq (Debian's package). About five minutes on two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/rounding-tables.sh
source scripts/lib/rounding-tables.sh "$@"

# fine-tune name, fused dir, base dir
MODELS=("dense-strong $DATA/dense-fused-strong-f16 $DATA/dense-base-f16"
        "dense-gentle $DATA/dense-fused-gentle-f16 $DATA/dense-base-f16"
        "moe-strong $DATA/moe-fused-strong-f16 $DATA/moe-base-f16")
METHODS=(rtn gptq delta gptq+seq delta+seq)

# quantize_all NAME FUSED BASE CALIBRATION DIR: every width and method of one fine-tune, calibrated on
# CALIBRATION, into DIR; sets MODEL_ARGS to divergence's --model arguments ("BITS METHOD=DIR/...").
quantize_all() {
  local name=$1 fused=$2 base=$3 calibration=$4 dir=$5 bits method
  local stats="$dir/$name.stats.safetensors" on=(--calibration "$calibration" --tools $TOOLS --calibration-tokens 32)
  mkdir -p "$dir"
  "$Q" calibrate "$fused" --suite "$calibration" --tools $TOOLS --max-tokens 32 --second-moments --quiet \
    --out "$stats" > /dev/null
  MODEL_ARGS=()
  for bits in 2 3 4; do
    "$Q" quantize "$fused" "$dir/$name-rtn-$bits" --bits $bits --quiet --overwrite > /dev/null
    "$Q" quantize "$fused" "$dir/$name-gptq-$bits" --bits $bits --method gptq --stats "$stats" --quiet \
      --overwrite > /dev/null
    "$Q" quantize "$fused" "$dir/$name-delta-$bits" --bits $bits --method delta --base "$base" --stats "$stats" \
      --quiet --overwrite > /dev/null
    # Sequential: each module's statistics recorded with the modules before it already rounded.
    "$Q" quantize "$fused" "$dir/$name-gptq+seq-$bits" --bits $bits --method gptq --sequential "${on[@]}" \
      --quiet --overwrite > /dev/null
    "$Q" quantize "$fused" "$dir/$name-delta+seq-$bits" --bits $bits --method delta --base "$base" --sequential \
      "${on[@]}" --quiet --overwrite > /dev/null
    for method in "${METHODS[@]}"; do MODEL_ARGS+=(--model "$bits $method=$dir/$name-$method-$bits"); done
  done
}

# direction, fine-tune, bits, method, KL reply, retention (reply), flipped: one line per model.
: > "$WORK/both.tsv"
scores() {
  local direction=$1 name=$2 fused=$3 base=$4 suite=$5
  shift 5
  "$Q" divergence "$fused" --base "$base" --suite "$suite" --tools $TOOLS --max-tokens 16 --json "$@" |
    jq -r --arg d "$direction" --arg n "$name" '.models[] | [$d, $n, (.name | split(" ") | .[0], .[1]),
      .kl_reply, .retention_reply, .flipped] | @tsv' >> "$WORK/both.tsv"
}

echo "| fine-tune | bits | method | suite | KL first | KL reply | retained (reply) | flipped | correct | float correct |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for entry in "${MODELS[@]}"; do
  read -r name fused base <<< "$entry"
  quantize_all "$name" "$fused" "$base" "$WORK/calibration.jsonl" "$WORK/first"
  divergence_rows "$name" "$fused" "$base" "$WORK/held-out.jsonl" "${MODEL_ARGS[@]}"
  scores "first → second" "$name" "$fused" "$base" "$WORK/held-out.jsonl" "${MODEL_ARGS[@]}"
  quantize_all "$name" "$fused" "$base" "$WORK/held-out.jsonl" "$WORK/second"
  scores "second → first" "$name" "$fused" "$base" "$WORK/calibration.jsonl" "${MODEL_ARGS[@]}"
done

echo
echo "| fine-tune | bits | method | KL reply, first → second | second → first | mean | retained, first → second | second → first | mean | flipped (of 40) |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"
awk -F'\t' '
  { key = $2 "|" $3 "|" $4; if (!(key in seen)) { seen[key] = 1; order[++n] = key }
    kl[key, $1] = $5; ret[key, $1] = $6; flips[key] += $7 }
  END { a = "first → second"; b = "second → first"
        for (i = 1; i <= n; ++i) { k = order[i]; split(k, p, "|")
          printf "| %s | %s | %s | %.4f | %.4f | %.4f | %.1f %% | %.1f %% | %.1f %% | %d |\n", p[1], p[2], p[3],
                 kl[k, a], kl[k, b], (kl[k, a] + kl[k, b]) / 2, 100 * ret[k, a], 100 * ret[k, b],
                 50 * (ret[k, a] + ret[k, b]), flips[k] } }' "$WORK/both.tsv"
