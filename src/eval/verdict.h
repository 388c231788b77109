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
#include "eval/suite_size.h"

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
  // A model behind a server without its directory (bench --model NAME=URL) has no disk size or memory:
  // its disk and memory rules are "not measured", which never passes.
  bool disk_measured = true, memory_measured = true;
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

// How a failed rule stands against the baseline (issue 22). Accuracy: the paired exact McNemar test
// on the suite says whether the candidate got worse; speed: the run-to-run spread says whether the
// shortfall is real. The size rules are measured exactly: kNotApplicable.
enum class Relation { kNotApplicable, kWorse, kNotWorse, kCannotTell };
std::string_view relation_name(Relation r);  // "", "worse", "not worse", "cannot tell"

struct CriterionCheck {
  Level level = Level::kOptimal;
  std::string rule;  // the criteria key: accuracy_min_pct, disk_smaller_pct, memory_less_pct, speed_ratio
  double value = 0;
  double threshold = 0;
  bool passed = false;
  bool measured = true;  // false: the figure is unknown (a server without @DIR); the rule does not pass
  std::string text;  // "disk 23.4 % smaller >= 25 %: fails"
  // Failed rules only: against the baseline, and whether the baseline fails the same (absolute) rule.
  Relation relation = Relation::kNotApplicable;
  bool baseline_fails = false;
  std::string cause;  // "like the baseline (40.0 %), and not worse: 0 lost, 0 gained"
};

// What keeps a candidate from the level above its verdict, read from the causes of its failed rules:
// the suite (the baseline fails the accuracy rule too and the candidate is not shown worse), accuracy
// (the candidate got worse, or fails where the baseline passes), size (disk or memory), speed.
enum class Problem { kNone, kSuite, kAccuracy, kSize, kSpeed };
std::string_view problem_name(Problem p);  // "none", "suite", "accuracy", "size", "speed"

enum class Verdict { kOptimal, kMinimumViable, kFailure };
std::string_view verdict_name(Verdict v);  // "optimal", "minimum viable", "failure"

// kTryLargerGroupOrFewerBits: the candidate kept the fine-tune but saves too little; a larger group
// (fewer scales and biases) or one bit fewer can pass the size rules (`quantlab plan` shows which).
// kTry7Bit, kTrySmallerBase and kPruneExperts are read from older results only: the next steps now
// offer only what quantlab can run (kTryMoreBits replaces kTry7Bit).
enum class NextStep {
  kSwitch,
  kKeepBaseline,
  kTry7Bit,
  kTrySmallerBase,
  kPruneExperts,
  kTryLargerGroupOrFewerBits,
  kGrowSuite,
  kTryMixedPlan,
  kPinRouters,
  kTryMoreBits,
  kRepeatSpeedRuns,
};
std::string_view next_step_name(NextStep s);  // "switch", "keep_baseline", "grow_suite", ...

// One thing to try next, ranked: a command line that runs as printed, what the plan predicts for it,
// and what this run measured that bears on it. Filled by bench (bench/next_options.h), which has the
// plan and the model directories; the verdict itself fills the suite-size option.
struct NextOption {
  NextStep step = NextStep::kSwitch;
  std::string command;
  std::string prediction;  // "5.5 bits/weight, 3.1 MB on disk: 35.3 % smaller (passes >= 25 %)"
  std::string evidence;    // "measured here: q6 (6-bit) 40.0 %, 0 lost"
};

// The queries a suite needs to resolve the accuracy rules: a drop of the gap between the optimal and
// minimum-viable accuracy thresholds (10 points with only one rule), at the baseline's accuracy and the
// measured discordance (at least the drop). queries == 0: not computable (say why in `note`).
struct SuiteNeed {
  double drop_pct = 0, discordance_pct = 0, baseline_accuracy_pct = 0;
  size_t queries = 0;
  std::string note;
};
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
  std::string advice;                 // the headline: what to do now and why, in one or two sentences
  std::vector<std::string> warnings;  // resolution and noise warnings
  std::vector<Problem> problems;      // in order of weight; the first decides the headline; empty when optimal
  SuiteNeed suite_need;
  std::vector<NextOption> options;    // at most three, ranked
};

Comparison compare_models(const Criteria& criteria, const ModelFigures& baseline, const ModelFigures& candidate,
                          const PairedAccuracy& paired);

}  // namespace quantlab::eval
