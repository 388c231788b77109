// A candidate quantization against its baseline: relative size, memory and speed, paired accuracy,
// the decision rules of a Criteria evaluated one by one, the verdict (optimal / minimum viable /
// failure) with the criteria that decided it, the recommended next step, and warnings where the suite
// or the runs are too small to resolve what the numbers seem to say.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "eval/criteria.h"

namespace quantlab::eval {

// What the rules compare, per model (filled from a bench result).
struct ModelFigures {
  std::string name;
  double accuracy_pct = 0;
  uint64_t disk_bytes = 0;
  uint64_t memory_bytes = 0;         // model memory: weights + KV cache + scratch (docs/bench-schema.md)
  double decode_tps = 0;             // median over runs
  double decode_tps_rel_spread = 0;  // robust spread over runs (scaled MAD) / median; 0 with one run
  int runs = 1;
  int bits = 0;  // quantization bits (0: float or mixed/unknown)
  int group_size = 0;  // quantization group size (0: float or unknown)
  bool moe = false;
};

// Outcomes of the same queries under baseline and candidate (paired by query).
struct PairedAccuracy {
  size_t n = 0;
  size_t both_right = 0, both_wrong = 0;
  size_t lost = 0;                // right under the baseline only
  size_t gained = 0;              // right under the candidate only
  double difference_pct = 0;      // candidate minus baseline, percentage points
  double mcnemar_p = 1;           // exact two-sided
  double min_detectable_pct = 0;  // min_detectable_difference(n) in points (> 100: none)
};
// Throws Error(kInternal) when the sizes differ.
PairedAccuracy compare_paired(const std::vector<bool>& baseline_correct, const std::vector<bool>& candidate_correct);

enum class Level { kOptimal, kMinimumViable };
std::string_view level_name(Level level);  // "optimal", "minimum_viable"

struct CriterionCheck {
  Level level = Level::kOptimal;
  std::string rule;  // the criteria key: accuracy_min_pct, disk_smaller_pct, memory_less_pct, speed_ratio
  double value = 0;
  double threshold = 0;
  bool passed = false;
  std::string text;  // "disk 23.4 % smaller >= 25 %: fails"
};

enum class Verdict { kOptimal, kMinimumViable, kFailure };
std::string_view verdict_name(Verdict v);  // "optimal", "minimum viable", "failure"

// kTryLargerGroupOrFewerBits: the candidate kept the fine-tune but saves too little; a larger group
// (fewer scales and biases) or one bit fewer can pass the size rules (`quantlab plan` shows which).
enum class NextStep { kSwitch, kKeepBaseline, kTry7Bit, kTrySmallerBase, kPruneExperts, kTryLargerGroupOrFewerBits };
std::string_view next_step_name(NextStep s);  // "switch", "keep_baseline", "try_7bit", ...

struct Comparison {
  std::string baseline, candidate;
  double disk_smaller_pct = 0;  // 100 * (1 - candidate / baseline)
  double memory_less_pct = 0;
  double speed_ratio = 0;  // decode tokens/s, candidate / baseline
  PairedAccuracy paired;
  std::vector<CriterionCheck> checks;  // optimal rules first, then minimum viable
  Verdict verdict = Verdict::kFailure;
  std::vector<std::string> failing;  // rules that kept the candidate from the level above its verdict
  std::vector<NextStep> next_steps;
  std::string advice;                 // the next step in one or two sentences
  std::vector<std::string> warnings;  // resolution and noise warnings
};

Comparison compare_models(const Criteria& criteria, const ModelFigures& baseline, const ModelFigures& candidate,
                          const PairedAccuracy& paired);

}  // namespace quantlab::eval
