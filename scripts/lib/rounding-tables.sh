# Sourced by the rounding tables (scripts/rounding-table.sh, scripts/budget-methods-table.sh) from the
# repository root, with the table's arguments [BUILD_DIR] [WORK_DIR] (defaults: build, a temporary
# directory): sets Q (the quantlab binary), WORK, DATA and TOOLS, writes dev40's halves
# ($WORK/calibration.jsonl: the first 20 queries, $WORK/held-out.jsonl: the other 20), and defines
#   divergence_rows NAME FUSED BASE HELD_OUT --model "PART PART ...=DIR" ...
# One Markdown row per model and suite (HELD_OUT, then seed5): NAME | the model name's space-separated
# parts | suite | KL first | KL reply | retained (reply) | flipped | correct | float correct, from
# `quantlab divergence` (16 reply tokens, teacher-forced).
Q="${1:-build}/bin/quantlab"
WORK="${2:-$(mktemp -d)}"
DATA=tests/data/tool-calling
TOOLS=$DATA/tools.json
head -20 $DATA/queries/dev40.jsonl > "$WORK/calibration.jsonl"
tail -n +21 $DATA/queries/dev40.jsonl > "$WORK/held-out.jsonl"

divergence_rows() {
  local name=$1 fused=$2 base=$3 held_out=$4
  shift 4
  local suite file
  for suite in held-out seed5; do
    file=$held_out
    [ $suite = seed5 ] && file=$DATA/queries/seed5.jsonl
    "$Q" divergence "$fused" --base "$base" --suite "$file" --tools "$TOOLS" --max-tokens 16 --json "$@" |
      jq -r --arg name "$name" --arg suite "$suite" '.fused_correct as $fc | .queries as $n | .models[] |
        "| \($name) | \(.name | split(" ") | join(" | ")) | \($suite) | \(.kl_first*10000|round/10000) | \(.kl_reply*10000|round/10000) | \(.retention_reply*1000|round/10) % | \(.flipped) | \(.correct)/\($n) | \($fc)/\($n) |"'
  done
}
