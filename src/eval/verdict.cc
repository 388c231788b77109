#include "eval/verdict.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>

#include "core/error.h"
#include "eval/stats.h"
#include "eval/verdict_causes.h"

namespace quantlab::eval {

namespace {

double relative_pct_less(double baseline, double candidate) {
  return baseline > 0 ? 100.0 * (1.0 - candidate / baseline) : 0.0;
}

struct RuleInput {
  std::string_view rule;
  std::optional<double> CriteriaLevel::*field;
  double value;
  std::string_view format;  // fmt pattern for value and threshold
  bool measured = true;
};

void check_level(const CriteriaLevel& level, Level which, std::span<const RuleInput> inputs,
                 std::vector<CriterionCheck>& out) {
  for (const RuleInput& in : inputs) {
    const std::optional<double>& threshold = level.*(in.field);
    if (!threshold) continue;
    CriterionCheck c;
    c.level = which;
    c.rule = in.rule;
    c.value = in.value;
    c.threshold = *threshold;
    c.measured = in.measured;
    c.passed = in.measured && in.value + kTolerance >= *threshold;
    c.text = in.measured ? fmt::format(fmt::runtime(in.format), in.value, *threshold) + (c.passed ? ": passes" : ": fails")
                         : fmt::format("{}: not measured (a server without @DIR), so not passed", in.rule);
    out.push_back(std::move(c));
  }
}

bool level_passes(const std::vector<CriterionCheck>& checks, Level level) {
  for (const auto& c : checks)
    if (c.level == level && !c.passed) return false;
  return true;
}

void add_failing(Comparison& c, Level level) {
  for (const auto& check : c.checks)
    if (check.level == level && !check.passed) c.failing.push_back(check.text);
}

void advise(Comparison& c, const Criteria& criteria, const ModelFigures& baseline, const ModelFigures& candidate) {
  switch (c.verdict) {
    case Verdict::kOptimal:
      c.next_steps = {NextStep::kSwitch};
      c.advice = fmt::format("switch to {}: it meets every optimal rule (new standard)", candidate.name);
      return;
    case Verdict::kMinimumViable:
      c.next_steps = {NextStep::kSwitch};
      c.advice = fmt::format("switch to {} if its savings matter: minimum viable, not optimal ({})", candidate.name,
                             fmt::join(c.failing, "; "));
      if (!c.problems.empty() && c.problems.front() == Problem::kSuite)
        c.advice += fmt::format("; the baseline {} fails the optimal accuracy rule too: a suite problem, not the "
                                "quantization", baseline.name);
      break;
    case Verdict::kFailure:
      c.next_steps = {NextStep::kKeepBaseline};
      c.advice = failure_headline(c, criteria, baseline, candidate);
      break;
  }
  add_problem_steps(c, baseline, candidate);
}

void warn_accuracy_resolution(Comparison& c, const Criteria& criteria) {
  const PairedAccuracy& p = c.paired;
  if (const SuiteNeed& need = c.suite_need; need.queries > p.n && (criteria.optimal.accuracy_min_pct ||
                                                                   criteria.minimum_viable.accuracy_min_pct))
    c.warnings.push_back(fmt::format(
        "the suite is too small for the accuracy rules: {} queries; resolving a {:g}-point drop at the baseline's "
        "{:.1f} % with {:.4g} % of the queries flipping needs {} (`quantlab suite-size`, docs/criteria.md)",
        p.n, need.drop_pct, need.baseline_accuracy_pct, need.discordance_pct, need.queries));
  if (p.min_detectable_pct > 100.0) {
    c.warnings.push_back(fmt::format(
        "{} queries cannot show any accuracy difference as significant (the exact McNemar test needs at least 6 "
        "queries flipped one way); use a larger suite such as dev40",
        p.n));
  } else if (p.lost + p.gained > 0 && p.mcnemar_p >= 0.05) {
    c.warnings.push_back(fmt::format(
        "the accuracy difference of {:+.1f} points ({} lost, {} gained) is not significant (exact McNemar p = "
        "{:.3g}); {} queries resolve only differences of at least {:.1f} points",
        p.difference_pct, p.lost, p.gained, p.mcnemar_p, p.n, p.min_detectable_pct));
  } else if (p.lost + p.gained == 0 && criteria.optimal.accuracy_min_pct && criteria.minimum_viable.accuracy_min_pct) {
    const double gap = *criteria.optimal.accuracy_min_pct - *criteria.minimum_viable.accuracy_min_pct;
    if (p.min_detectable_pct > gap)
      c.warnings.push_back(fmt::format(
          "equal accuracy, but {} queries resolve only differences of at least {:.1f} points, more than the "
          "{:g}-point gap between the accuracy rules",
          p.n, p.min_detectable_pct, gap));
  }
}

void warn_accuracy_interval(Comparison& c, const Criteria& criteria, const ModelFigures& baseline) {
  const PairedAccuracy& p = c.paired;
  if (const auto& t = criteria.minimum_viable.accuracy_min_pct; t && p.n > 0) {
    const Interval ci = wilson_interval(p.both_right + p.gained, p.n);
    if (100 * ci.low < *t && *t <= 100 * ci.high)
      c.warnings.push_back(fmt::format(
          "the candidate's 95 % accuracy interval [{:.1f} %, {:.1f} %] contains the minimum-viable threshold of "
          "{:g} %: more queries are needed to settle the accuracy rule",
          100 * ci.low, 100 * ci.high, *t));
  }
  if (const auto& t = criteria.optimal.accuracy_min_pct; t && baseline.accuracy_pct + kTolerance < *t)
    c.warnings.push_back(fmt::format(
        "the baseline {} itself scores {:.1f} % (< {:g} %): the accuracy rules are absolute, not relative to it",
        baseline.name, baseline.accuracy_pct, *t));
}

void warn_speed_noise(Comparison& c, const Criteria& criteria, const ModelFigures& baseline,
                      const ModelFigures& candidate) {
  const double spread = std::hypot(baseline.decode_tps_rel_spread, candidate.decode_tps_rel_spread);
  const bool measured_once = baseline.runs < 2 || candidate.runs < 2;
  for (const CriteriaLevel* level : {&criteria.optimal, &criteria.minimum_viable}) {
    if (!level->speed_ratio) continue;
    const double distance = std::abs(c.speed_ratio / *level->speed_ratio - 1.0);
    if (measured_once && distance < 0.05) {
      c.warnings.push_back(fmt::format(
          "the speed ratio {:.3f}x lies within 5 % of the {:g}x threshold and was measured in one run: use --runs 3 "
          "or more",
          c.speed_ratio, *level->speed_ratio));
    } else if (!measured_once && distance < 2 * spread) {
      c.warnings.push_back(
          fmt::format("the speed ratio {:.3f}x is within the run-to-run spread (+/- {:.1f} %) of the {:g}x threshold",
                      c.speed_ratio, 200 * spread, *level->speed_ratio));
    }
  }
}

}  // namespace

std::string_view relation_name(Relation r) {
  switch (r) {
    case Relation::kNotApplicable:
      return "";
    case Relation::kWorse:
      return "worse";
    case Relation::kNotWorse:
      return "not worse";
    case Relation::kCannotTell:
      return "cannot tell";
  }
  return "?";
}

std::string_view problem_name(Problem p) {
  switch (p) {
    case Problem::kNone:
      return "none";
    case Problem::kSuite:
      return "suite";
    case Problem::kAccuracy:
      return "accuracy";
    case Problem::kSize:
      return "size";
    case Problem::kSpeed:
      return "speed";
  }
  return "?";
}

std::string_view level_name(Level level) { return level == Level::kOptimal ? "optimal" : "minimum_viable"; }

std::string_view verdict_name(Verdict v) {
  switch (v) {
    case Verdict::kOptimal:
      return "optimal";
    case Verdict::kMinimumViable:
      return "minimum viable";
    case Verdict::kFailure:
      return "failure";
  }
  return "?";
}

std::string_view next_step_name(NextStep s) {
  switch (s) {
    case NextStep::kSwitch:
      return "switch";
    case NextStep::kKeepBaseline:
      return "keep_baseline";
    case NextStep::kTry7Bit:
      return "try_7bit";
    case NextStep::kTrySmallerBase:
      return "try_smaller_base";
    case NextStep::kPruneExperts:
      return "prune_unused_experts";
    case NextStep::kTryLargerGroupOrFewerBits:
      return "try_larger_group_or_fewer_bits";
    case NextStep::kGrowSuite:
      return "grow_suite";
    case NextStep::kTryMixedPlan:
      return "try_mixed_plan";
    case NextStep::kPinRouters:
      return "pin_routers";
    case NextStep::kTryMoreBits:
      return "try_more_bits";
    case NextStep::kRepeatSpeedRuns:
      return "repeat_speed_runs";
  }
  return "?";
}

PairedAccuracy compare_paired(const std::vector<bool>& baseline_correct, const std::vector<bool>& candidate_correct) {
  QL_CHECK(baseline_correct.size() == candidate_correct.size(), "{} vs {} paired outcomes", baseline_correct.size(),
           candidate_correct.size());
  PairedAccuracy p;
  p.n = baseline_correct.size();
  for (size_t i = 0; i < p.n; ++i) {
    const bool b = baseline_correct[i], c = candidate_correct[i];
    (b && c ? p.both_right : !b && !c ? p.both_wrong : b ? p.lost : p.gained) += 1;
  }
  p.difference_pct = p.n ? 100.0 * (static_cast<double>(p.gained) - static_cast<double>(p.lost)) / p.n : 0.0;
  p.mcnemar_p = mcnemar_exact_p(p.lost, p.gained);
  p.min_detectable_pct = p.n ? 100.0 * min_detectable_difference(p.n) : 100.0 + 1e-6;
  return p;
}

Comparison compare_models(const Criteria& criteria, const ModelFigures& baseline, const ModelFigures& candidate,
                          const PairedAccuracy& paired) {
  Comparison c;
  c.baseline = baseline.name;
  c.candidate = candidate.name;
  c.paired = paired;
  c.disk_smaller_pct =
      relative_pct_less(static_cast<double>(baseline.disk_bytes), static_cast<double>(candidate.disk_bytes));
  c.memory_less_pct =
      relative_pct_less(static_cast<double>(baseline.memory_bytes), static_cast<double>(candidate.memory_bytes));
  c.speed_ratio = baseline.decode_tps > 0 ? candidate.decode_tps / baseline.decode_tps : 0.0;
  const RuleInput inputs[] = {
      {"accuracy_min_pct", &CriteriaLevel::accuracy_min_pct, candidate.accuracy_pct, "accuracy {:.1f} % >= {:g} %", true},
      {"disk_smaller_pct", &CriteriaLevel::disk_smaller_pct, c.disk_smaller_pct, "disk {:.1f} % smaller >= {:g} %",
       baseline.disk_measured && candidate.disk_measured},
      {"memory_less_pct", &CriteriaLevel::memory_less_pct, c.memory_less_pct, "memory {:.1f} % less >= {:g} %",
       baseline.memory_measured && candidate.memory_measured},
      {"speed_ratio", &CriteriaLevel::speed_ratio, c.speed_ratio, "decode speed {:.3f}x >= {:g}x", true},
  };
  check_level(criteria.optimal, Level::kOptimal, inputs, c.checks);
  check_level(criteria.minimum_viable, Level::kMinimumViable, inputs, c.checks);
  // Meeting the optimal rules makes a candidate optimal even where a custom file sets a stricter
  // minimum-viable rule: the levels are read top down.
  if (level_passes(c.checks, Level::kOptimal)) {
    c.verdict = Verdict::kOptimal;
  } else if (level_passes(c.checks, Level::kMinimumViable)) {
    c.verdict = Verdict::kMinimumViable;
    add_failing(c, Level::kOptimal);
  } else {
    c.verdict = Verdict::kFailure;
    add_failing(c, Level::kMinimumViable);
  }
  explain_failed_checks(c, criteria, baseline, candidate);
  c.suite_need = suite_need(criteria, baseline, paired);
  advise(c, criteria, baseline, candidate);
  add_suite_option(c);
  warn_accuracy_resolution(c, criteria);
  warn_accuracy_interval(c, criteria, baseline);
  warn_speed_noise(c, criteria, baseline, candidate);
  return c;
}

}  // namespace quantlab::eval
