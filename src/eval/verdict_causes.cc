#include "eval/verdict_causes.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace quantlab::eval {

namespace {

const CriterionCheck* failed_check(const Comparison& c, Level level, std::string_view rule) {
  for (const auto& k : c.checks)
    if (k.level == level && k.rule == rule && !k.passed) return &k;
  return nullptr;
}

// The level whose failed rules the verdict reports: minimum viable for a failure, optimal for a
// minimum-viable candidate.
Level decisive_level(Verdict v) { return v == Verdict::kFailure ? Level::kMinimumViable : Level::kOptimal; }

std::string paired_counts(const PairedAccuracy& p) {
  return fmt::format("{} lost, {} gained", p.lost, p.gained);
}

void explain_accuracy(CriterionCheck& k, const ModelFigures& baseline, const PairedAccuracy& p) {
  k.baseline_fails = baseline.accuracy_pct + kTolerance < k.threshold;
  if (p.lost <= p.gained) {
    k.relation = Relation::kNotWorse;
  } else {
    k.relation = p.mcnemar_p < 0.05 ? Relation::kWorse : Relation::kCannotTell;
  }
  const std::string against = k.baseline_fails
                                  ? fmt::format("like the baseline {} ({:.1f} %)", baseline.name, baseline.accuracy_pct)
                                  : fmt::format("where the baseline {} passes ({:.1f} %)", baseline.name,
                                                baseline.accuracy_pct);
  switch (k.relation) {
    case Relation::kWorse:
      k.cause = fmt::format("{}, and worse: {}, exact McNemar p = {:.3g}", against, paired_counts(p), p.mcnemar_p);
      break;
    case Relation::kCannotTell:
      k.cause = fmt::format("{}; worse or not, {} queries cannot tell: {}, exact McNemar p = {:.3g}", against, p.n,
                            paired_counts(p), p.mcnemar_p);
      break;
    default:
      k.cause = fmt::format("{}, and not worse: {}", against, paired_counts(p));
  }
}

void explain_speed(CriterionCheck& k, const ModelFigures& baseline, const ModelFigures& candidate) {
  const double spread = std::hypot(baseline.decode_tps_rel_spread, candidate.decode_tps_rel_spread);
  const double distance = std::abs(k.value / k.threshold - 1.0);
  const bool once = baseline.runs < 2 || candidate.runs < 2;
  if (once ? distance < 0.05 : distance < 2 * spread) {
    k.relation = Relation::kCannotTell;
    k.cause = once ? "within 5 % of the threshold, measured in one run: cannot tell"
                   : fmt::format("within the run-to-run spread (+/- {:.1f} %): cannot tell", 200 * spread);
  } else {
    k.relation = Relation::kWorse;
    k.cause = once ? "more than 5 % short of the threshold"
                   : fmt::format("short of the threshold beyond the run-to-run spread (+/- {:.1f} %)", 200 * spread);
  }
}

Problem accuracy_problem(const CriterionCheck& k) {
  return k.baseline_fails && k.relation != Relation::kWorse ? Problem::kSuite : Problem::kAccuracy;
}

}  // namespace

void explain_failed_checks(Comparison& c, const Criteria& criteria, const ModelFigures& baseline,
                           const ModelFigures& candidate) {
  (void)criteria;
  for (CriterionCheck& k : c.checks) {
    if (k.passed) continue;
    if (k.rule == "accuracy_min_pct") {
      explain_accuracy(k, baseline, c.paired);
    } else if (k.rule == "speed_ratio") {
      explain_speed(k, baseline, candidate);
    } else if (!k.measured) {
      k.cause = "not measured: give the server's model directory (NAME=URL@DIR)";
    } else {
      k.cause = "measured exactly: a size shortfall";
    }
  }
  if (c.verdict == Verdict::kOptimal) return;
  const Level level = decisive_level(c.verdict);
  if (const CriterionCheck* k = failed_check(c, level, "accuracy_min_pct")) c.problems.push_back(accuracy_problem(*k));
  if (failed_check(c, level, "disk_smaller_pct") || failed_check(c, level, "memory_less_pct"))
    c.problems.push_back(Problem::kSize);
  if (failed_check(c, level, "speed_ratio")) c.problems.push_back(Problem::kSpeed);
}

SuiteNeed suite_need(const Criteria& criteria, const ModelFigures& baseline, const PairedAccuracy& paired) {
  SuiteNeed need;
  const auto& opt = criteria.optimal.accuracy_min_pct;
  const auto& viable = criteria.minimum_viable.accuracy_min_pct;
  // The drop the rules must resolve: the gap between the two accuracy rules moves a candidate from
  // optimal to minimum viable; with one rule, 10 points.
  need.drop_pct = opt && viable && *opt > *viable ? *opt - *viable : 10.0;
  const double measured = paired.n ? 100.0 * static_cast<double>(paired.lost + paired.gained) / paired.n : 0.0;
  need.discordance_pct = std::max(need.drop_pct, measured);
  need.baseline_accuracy_pct = baseline.accuracy_pct;
  try {
    need.queries = suite_size({baseline.accuracy_pct, need.drop_pct, 0.05, 0.8, need.discordance_pct}).queries;
  } catch (const Error& e) {
    need.note = e.what();
  }
  return need;
}

std::string failure_headline(const Comparison& c, const Criteria& criteria, const ModelFigures& baseline,
                             const ModelFigures& candidate) {
  (void)criteria;
  if (stores_more_bits(baseline, candidate)) return fmt::format("keep {}; {} stores more bits per weight than it", baseline.name, candidate.name);
  const Level level = decisive_level(c.verdict);
  std::vector<std::string> parts;
  for (Problem p : c.problems) {
    const CriterionCheck* acc = failed_check(c, level, "accuracy_min_pct");
    switch (p) {
      case Problem::kSuite:
        parts.push_back(fmt::format(
            "the suite, not the quantization, is what fails: the baseline {} itself scores {:.1f} % (< {:g} %) and "
            "{} is not shown worse ({}); check the suite and the fine-tune{}",
            baseline.name, baseline.accuracy_pct, acc->threshold, candidate.name, paired_counts(c.paired),
            c.suite_need.queries ? fmt::format(", and grow the suite to {} queries to resolve a {:g}-point drop",
                                               c.suite_need.queries, c.suite_need.drop_pct)
                                 : std::string()));
        break;
      case Problem::kAccuracy:
        parts.push_back(fmt::format("{} loses accuracy: {:.1f} % < {:g} %, {}", candidate.name, acc->value,
                                    acc->threshold, acc->cause));
        break;
      case Problem::kSize: {
        std::vector<std::string> texts;
        for (const char* rule : {"disk_smaller_pct", "memory_less_pct"})
          if (const CriterionCheck* k = failed_check(c, level, rule)) texts.push_back(k->text);
        parts.push_back(fmt::format("{} saves too little{}: {}", candidate.name,
                                    acc ? std::string() : " though it keeps the accuracy", fmt::join(texts, "; ")));
        break;
      }
      case Problem::kSpeed: {
        const CriterionCheck* k = failed_check(c, level, "speed_ratio");
        parts.push_back(fmt::format("{} is slower: {} ({})", candidate.name, k->text, k->cause));
        break;
      }
      case Problem::kNone:
        break;
    }
  }
  std::string text = fmt::format("keep {}", baseline.name);
  for (size_t i = 0; i < parts.size(); ++i) text += (i == 0 ? "; " : "; also, ") + parts[i];
  return text;
}

bool stores_more_bits(const ModelFigures& baseline, const ModelFigures& candidate) {
  if (!baseline.disk_measured || !candidate.disk_measured) return false;  // a server's width is unknown
  return candidate.bits == 0 ? baseline.bits != 0 : baseline.bits != 0 && candidate.bits > baseline.bits;
}

void add_problem_steps(Comparison& c, const ModelFigures& baseline, const ModelFigures& candidate) {
  if (stores_more_bits(baseline, candidate)) return;
  const auto add = [&c](NextStep s) {
    if (std::find(c.next_steps.begin(), c.next_steps.end(), s) == c.next_steps.end()) c.next_steps.push_back(s);
  };
  for (Problem p : c.problems) {
    switch (p) {
      case Problem::kSuite:
        add(NextStep::kGrowSuite);
        break;
      case Problem::kAccuracy:
        add(NextStep::kTryMixedPlan);
        if (candidate.moe) add(NextStep::kPinRouters);
        if (candidate.bits > 0 && candidate.bits < 8) add(NextStep::kTryMoreBits);
        break;
      case Problem::kSize:
        if (candidate.bits > 2) add(NextStep::kTryLargerGroupOrFewerBits);
        add(NextStep::kTryMixedPlan);
        break;
      case Problem::kSpeed:
        for (const auto& k : c.checks)
          if (k.rule == "speed_ratio" && !k.passed && k.relation == Relation::kCannotTell)
            add(NextStep::kRepeatSpeedRuns);
        break;
      case Problem::kNone:
        break;
    }
  }
}

void add_suite_option(Comparison& c) {
  if (c.problems.empty() || c.problems.front() != Problem::kSuite || !c.suite_need.queries) return;
  const SuiteNeed& n = c.suite_need;
  NextOption o;
  o.step = NextStep::kGrowSuite;
  o.command = fmt::format("quantlab suite-size --baseline-acc {:.4g} --drop {:g} --discordance {:.4g}",
                          n.baseline_accuracy_pct, n.drop_pct, n.discordance_pct);
  o.prediction = fmt::format("{} queries detect a {:g}-point drop with 80 % power (exact McNemar, alpha 0.05)",
                             n.queries, n.drop_pct);
  o.evidence = fmt::format("this suite has {} queries; the baseline scores {:.1f} %", c.paired.n,
                           n.baseline_accuracy_pct);
  c.options.push_back(std::move(o));
}

}  // namespace quantlab::eval
