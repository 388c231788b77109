# Sourced by the rounding tables (scripts/rounding-table.sh, scripts/budget-methods-table.sh); needs $Q
# (the quantlab binary), $DATA (tests/data/tool-calling) and $TOOLS set, and jq.
#   divergence_rows NAME FUSED BASE HELD_OUT --model "PART PART ...=DIR" ...
# One Markdown row per model and suite (HELD_OUT, then seed5): NAME | the model name's space-separated
# parts | suite | KL first | KL reply | retained (reply) | flipped | correct | float correct, from
# `quantlab divergence` (16 reply tokens, teacher-forced).
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
