#!/usr/bin/env bash
# Runs every fuzz target (fuzz/*_fuzz.cc) for SECONDS_PER_TARGET seconds each (default 60), JOBS at a
# time (default: the number of cores), on the clang AddressSanitizer + UndefinedBehaviorSanitizer tree.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      e.g. scripts/fuzz.sh 600 safetensors criteria
# Corpora grow in $QUANTLAB_FUZZ_WORK/corpus/<target> (default build-asan/fuzz-work) and are kept
# between runs; each run starts from them plus fuzz/seeds/<target> and fuzz/regressions/<target>.
# A crash leaves its input in $QUANTLAB_FUZZ_WORK/crashes/<target>/; the script prints how to replay it
# and exits 1. Copy a fixed crash's input into fuzz/regressions/<target>/: ctest's fuzz.<target> replays
# it in every build from then on (docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-60}
shift || true
BUILD=${QUANTLAB_FUZZ_BUILD:-build-asan}
WORK=${QUANTLAB_FUZZ_WORK:-$BUILD/fuzz-work}
JOBS=${JOBS:-$(nproc)}

if ! grep -q '^QUANTLAB_FUZZ:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
  bash scripts/sanitizer-tree.sh "$BUILD"
fi
cmake --build "$BUILD" -j "$JOBS" --target fuzz_targets

TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  for src in fuzz/*_fuzz.cc; do
    name=$(basename "$src" .cc)
    TARGETS+=("${name%_fuzz}")
  done
fi

# The dictionary of each target: the keywords of its format (fuzz/dicts/).
dictionaries() {
  case "$1" in
    safetensors) echo safetensors ;;
    adapter) echo json safetensors ;;
    tokenizer_load) echo json tokenizer ;;
    chat_template) echo jinja json ;;
    tool_calls) echo tool_calls json ;;
    criteria) echo toml ;;
    tokenizer_encode) echo tool_calls ;;
    *) echo json ;;
  esac
}

run_target() {
  local t=$1 corpus="$WORK/corpus/$1" crashes="$WORK/crashes/$1" dict="$WORK/dicts/$1.dict"
  mkdir -p "$corpus" "$crashes" "$WORK/dicts" "$WORK/logs"
  for d in "fuzz/seeds/$t" "fuzz/regressions/$t"; do
    [ -d "$d" ] && cp -n "$d"/* "$corpus"/ 2>/dev/null || true
  done
  : >"$dict"
  for d in $(dictionaries "$t"); do cat "fuzz/dicts/$d.dict" >>"$dict"; done
  # -timeout: an input that takes 30 s is a hang (a template that loops, a regex that backtracks). Not
  # less: a template that spends its whole step budget (text/jinja/interpreter.h: 2M steps, 0.6 s in the
  # Release build) takes 10-20 s under ASan and coverage, and is bounded, not hung;
  # -rss_limit_mb: an input that makes a parser allocate without bound is a finding too.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$BUILD/fuzz/${t}_fuzz" "$corpus" -dict="$dict" -max_total_time="$SECONDS_PER_TARGET" -timeout=30 \
    -rss_limit_mb=2560 -print_final_stats=1 -artifact_prefix="$crashes/" \
    >"$WORK/logs/$t.log" 2>&1 && echo "ok" >"$WORK/logs/$t.status" || echo "failed" >"$WORK/logs/$t.status"
}

echo "== fuzzing ${#TARGETS[@]} targets, ${SECONDS_PER_TARGET} s each, $JOBS at a time"
running=0
for t in "${TARGETS[@]}"; do
  [ -x "$BUILD/fuzz/${t}_fuzz" ] || { echo "fuzz.sh: no target '$t' (fuzz/${t}_fuzz.cc)"; exit 2; }
  run_target "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
done
wait

# One line per target: executions, coverage (edges) and features reached, corpus size, crashes.
status=0
printf '%-18s %12s %8s %8s %8s %s\n' target executions cov ft corpus result
for t in "${TARGETS[@]}"; do
  log="$WORK/logs/$t.log"
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(echo "$last" | grep -o 'cov: [0-9]*' | awk '{print $2}')
  ft=$(echo "$last" | grep -o 'ft: [0-9]*' | awk '{print $2}')
  corp=$(echo "$last" | grep -o 'corp: [0-9]*' | awk '{print $2}')
  result=$(cat "$WORK/logs/$t.status")
  printf '%-18s %12s %8s %8s %8s %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
  if [ "$result" != ok ]; then
    status=1
    echo "   log: $log"
    grep -E 'ERROR|SUMMARY|fuzz: |Test unit written' "$log" | head -5 | sed 's/^/   /'
    for f in "$WORK/crashes/$t"/*; do
      [ -f "$f" ] && echo "   replay: $BUILD/fuzz/${t}_fuzz $f"
    done
  fi
done
exit $status
